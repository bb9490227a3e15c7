/* utf8.c — incremental, fail-fast UTF-8 validation. A shift-based DFA (each
 * byte class maps to a 64-bit row holding the next state for every state at
 * 6-bit offsets) rejects on the exact byte where a sequence becomes
 * impossible: C0/C1/F5..FF at once, E0 80 at the 80, ED A0 at the A0, F4 90
 * at the 90. Runs of ASCII are skipped 8 bytes at a time while the state is
 * at a character boundary. The state value is the current state's bit
 * offset, so ACCEPT is 0 as the header promises. */
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

int wse_utf8_feed(uint32_t *state, const uint8_t *p, size_t n, size_t *bad) {
  uint64_t s = *state & 63;
  size_t i = 0;
  if (s == UTF8_REJECT) {
    if (bad) *bad = 0;
    return -1;
  }
  for (;;) {
    if (s == 0) {
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
