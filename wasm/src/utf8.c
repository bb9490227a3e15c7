/* utf8.c — incremental, fail-fast UTF-8 validation. A shift-based DFA (each
 * byte class maps to a 64-bit row holding the next state for every state at
 * 6-bit offsets) rejects on the exact byte where a sequence becomes
 * impossible: C0/C1/F5..FF at once, E0 80 at the 80, ED A0 at the A0, F4 90
 * at the 90. Runs of ASCII are skipped 8 bytes at a time while the state is
 * at a character boundary, and natively on x86-64 long runs of any text go
 * through an AVX2 block validator first (below). The state value is the
 * current state's bit offset, so ACCEPT is 0 as the header promises. */
#include "internal.h"

#define UTF8_REJECT 6u /* bit offset of the sticky reject state */

/* Byte classes: 0 ASCII, 1 80-8F, 2 90-9F, 3 A0-BF, 4 C2-DF, 5 E0,
 * 6 E1-EC/EE-EF, 7 ED, 8 F0, 9 F1-F3, 10 F4, 11 never valid. */
static const uint8_t utf8_class[256] = {
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,
    3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,
    11,11,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,4,
    5,6,6,6,6,6,6,6,6,6,6,6,6,7,6,6,8,9,9,9,10,11,11,11,11,11,11,11,11,11,11,11,
};

static const uint64_t utf8_row[12] = {
    0x0006186186186180ull,
    0x0012486306300186ull,
    0x0006492306300186ull,
    0x000649218c300186ull,
    0x000618618618618cull,
    0x0006186186186198ull,
    0x0006186186186192ull,
    0x000618618618619eull,
    0x00061861861861a4ull,
    0x00061861861861aaull,
    0x00061861861861b0ull,
    0x0006186186186186ull,
};

#define HI8 0x8080808080808080ull

static inline uint64_t load64(const uint8_t *p) {
  uint64_t v;
  __builtin_memcpy(&v, p, 8);
  return v;
}

/* Index of the first byte >= 0x80 in p[i..n), or n. */
static inline size_t skip_ascii(const uint8_t *p, size_t i, size_t n) {
  while (n - i >= 32) {
    uint64_t a = load64(p + i), b = load64(p + i + 8);
    uint64_t c = load64(p + i + 16), d = load64(p + i + 24);
    if ((a | b | c | d) & HI8) break;
    i += 32;
  }
  while (n - i >= 8) {
    uint64_t w = load64(p + i) & HI8;
    if (w) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
      return i + ((size_t)__builtin_ctzll(w) >> 3);
#else
      break;
#endif
    }
    i += 8;
  }
  while (i < n && p[i] < 0x80) i++;
  return i;
}

/* ---- x86-64 native: AVX2 block validation ----------------------------------
 * The Keiser-Lemire lookup algorithm ("Validating UTF-8 In Less Than One
 * Instruction Per Byte", 2021): three 16-entry nibble tables classify every
 * (previous byte, byte) pair, and saturating subtractions find where third
 * and fourth bytes must be continuations. It validates 64-byte blocks and
 * stops at the first block with an error; the scalar DFA then resumes from
 * the last character boundary and finds the exact byte. Only built natively
 * on x86-64 (immintrin.h is a compiler header, not libc); chosen at run
 * time, so the portable build still runs on CPUs without AVX2. The wasm
 * build never sees this code. */
#if defined(__x86_64__) && !defined(WSE_WASM) && (defined(__clang__) || defined(__GNUC__))
#define WSE_UTF8_SIMD 1
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2")))

/* error bits */
#define TOO_SHORT 1
#define TOO_LONG 2
#define OVERLONG_3 4
#define TOO_LARGE 8
#define SURROGATE 16
#define OVERLONG_2 32
#define TOO_LARGE_1000 64
#define OVERLONG_4 64
#define TWO_CONTS 128
#define CARRY (TOO_SHORT | TOO_LONG | TWO_CONTS)

static const uint8_t kl_byte1_high[16] = {
    TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG,
    TWO_CONTS, TWO_CONTS, TWO_CONTS, TWO_CONTS,
    TOO_SHORT | OVERLONG_2,
    TOO_SHORT,
    TOO_SHORT | OVERLONG_3 | SURROGATE,
    TOO_SHORT | TOO_LARGE | TOO_LARGE_1000 | OVERLONG_4};
static const uint8_t kl_byte1_low[16] = {
    CARRY | OVERLONG_3 | OVERLONG_2 | OVERLONG_4,
    CARRY | OVERLONG_2,
    CARRY, CARRY,
    CARRY | TOO_LARGE,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000 | SURROGATE,
    CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000};
static const uint8_t kl_byte2_high[16] = {
    TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT,
    TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE_1000 | OVERLONG_4,
    TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE,
    TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,
    TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,
    TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT};
/* a byte above these in the last three positions starts a sequence that
 * needs bytes from the next block */
static const uint8_t kl_incomplete[32] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0xEF, 0xDF, 0xBF};

#define KL_PREV(in, prev, k) \
  _mm256_alignr_epi8((in), _mm256_permute2x128_si256((prev), (in), 0x21), 16 - (k))

AVX2 static inline __m256i kl_check(__m256i in, __m256i prev, __m256i t1h, __m256i t1l,
                                    __m256i t2h) {
  const __m256i nib = _mm256_set1_epi8(0x0F);
  __m256i prev1 = KL_PREV(in, prev, 1);
  __m256i b1h = _mm256_shuffle_epi8(t1h, _mm256_and_si256(_mm256_srli_epi16(prev1, 4), nib));
  __m256i b1l = _mm256_shuffle_epi8(t1l, _mm256_and_si256(prev1, nib));
  __m256i b2h = _mm256_shuffle_epi8(t2h, _mm256_and_si256(_mm256_srli_epi16(in, 4), nib));
  __m256i sc = _mm256_and_si256(_mm256_and_si256(b1h, b1l), b2h);
  __m256i third = _mm256_subs_epu8(KL_PREV(in, prev, 2), _mm256_set1_epi8(0xE0 - 0x80));
  __m256i fourth = _mm256_subs_epu8(KL_PREV(in, prev, 3), _mm256_set1_epi8((char)(0xF0 - 0x80)));
  __m256i must23 = _mm256_and_si256(_mm256_or_si256(third, fourth), _mm256_set1_epi8((char)0x80));
  return _mm256_xor_si256(must23, sc);
}

/* Bytes of p[0..j) that end on a character boundary, given that they were
 * found valid so far: j, or the start of a sequence cut at j. */
static size_t kl_boundary(const uint8_t *p, size_t j) {
  for (size_t k = 1; k <= 4 && k <= j; k++) {
    uint8_t c = p[j - k];
    if ((c & 0xC0) == 0x80) continue;
    if (c < 0x80) return j;
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    return k >= len ? j : j - k;
  }
  return j >= 4 ? j - 4 : 0;
}

/* Valid prefix length (ending on a boundary) of p[0..n), starting at a
 * boundary; stops before the first 64-byte block holding an error. */
AVX2 static size_t utf8_avx2(const uint8_t *p, size_t n) {
  const __m256i t1h = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)kl_byte1_high));
  const __m256i t1l = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)kl_byte1_low));
  const __m256i t2h = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)kl_byte2_high));
  const __m256i maxv = _mm256_loadu_si256((const __m256i *)kl_incomplete);
  __m256i prev = _mm256_setzero_si256(), incomplete = _mm256_setzero_si256();
  size_t i = 0;
  for (; n - i >= 64; i += 64) {
    __m256i a = _mm256_loadu_si256((const __m256i *)(p + i));
    __m256i b = _mm256_loadu_si256((const __m256i *)(p + i + 32));
    if (!_mm256_movemask_epi8(_mm256_or_si256(a, b))) {
      if (!_mm256_testz_si256(incomplete, incomplete)) break;
      prev = b;
      continue;
    }
    __m256i err = _mm256_or_si256(kl_check(a, prev, t1h, t1l, t2h), kl_check(b, a, t1h, t1l, t2h));
    if (!_mm256_testz_si256(err, err)) break;
    prev = b;
    incomplete = _mm256_subs_epu8(b, maxv);
  }
  return kl_boundary(p, i);
}

static inline size_t utf8_simd(const uint8_t *p, size_t n) {
#if defined(__AVX2__)
  return utf8_avx2(p, n);
#else
  return __builtin_cpu_supports("avx2") ? utf8_avx2(p, n) : 0;
#endif
}
#endif /* x86-64 */

int wse_utf8_feed(uint32_t *state, const uint8_t *p, size_t n, size_t *bad) {
  uint64_t s = *state & 63;
  size_t i = 0;
  if (s == UTF8_REJECT) {
    if (bad) *bad = 0;
    return -1;
  }
  for (;;) {
    if (s == 0) {
#ifdef WSE_UTF8_SIMD
      if (n - i >= 128) i += utf8_simd(p + i, n - i);
#endif
      i = skip_ascii(p, i, n);
    }
    if (i == n) break;
    /* Run the DFA over a burst without a per-byte branch; the reject state
     * is sticky, so one check at the end tells whether to look closer. */
    size_t end = n - i > 16 ? i + 16 : n;
    uint64_t s0 = s;
    size_t i0 = i;
    for (; i < end; i++) s = utf8_row[utf8_class[p[i]]] >> (s & 63);
    s &= 63;
    if (s == UTF8_REJECT) {
      s = s0;
      for (i = i0;; i++) {
        s = (utf8_row[utf8_class[p[i]]] >> s) & 63;
        if (s == UTF8_REJECT) break;
      }
      if (bad) *bad = i;
      *state = UTF8_REJECT;
      return -1;
    }
  }
  *state = (uint32_t)s;
  return 0;
}

int wse_utf8_valid(const uint8_t *p, size_t n) {
  uint32_t st = WSE_UTF8_ACCEPT;
  size_t bad;
  return wse_utf8_feed(&st, p, n, &bad) == 0 && st == WSE_UTF8_ACCEPT;
}
