/* sha1.c — SHA-1 (FIPS 180-4) for Sec-WebSocket-Accept. Own code: the wasm
 * build has no libc. Not constant-time and not meant for anything secret. */
#include "internal.h"

static uint32_t rol32(uint32_t x, unsigned n) { return (x << n) | (x >> (32 - n)); }

/* One 64-byte block. The schedule is a ring of 16 words and each group of
 * 20 rounds has its own loop, without a branch per round: about a third of
 * the instructions of the textbook form (it was 30% of a native connect +
 * handshake + close cycle under callgrind). */
#define SHA1_ROUND(f, k, x)                                   \
  do {                                                        \
    uint32_t t_ = rol32(a, 5) + (f) + e + (k) + (x);          \
    e = d;                                                    \
    d = c;                                                    \
    c = rol32(bb, 30);                                        \
    bb = a;                                                   \
    a = t_;                                                   \
  } while (0)
#define SHA1_W(i)                                                             \
  (w[(i) & 15] = rol32(w[((i) + 13) & 15] ^ w[((i) + 8) & 15] ^               \
                           w[((i) + 2) & 15] ^ w[(i) & 15], 1))

static void sha1_block(uint32_t h[5], const uint8_t b[64]) {
  uint32_t w[16];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 |
           (uint32_t)b[4 * i + 2] << 8 | (uint32_t)b[4 * i + 3];
  uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];
  int i = 0;
  for (; i < 16; i++) SHA1_ROUND(d ^ (bb & (c ^ d)), 0x5A827999u, w[i]);
  for (; i < 20; i++) SHA1_ROUND(d ^ (bb & (c ^ d)), 0x5A827999u, SHA1_W(i));
  for (; i < 40; i++) SHA1_ROUND(bb ^ c ^ d, 0x6ED9EBA1u, SHA1_W(i));
  for (; i < 60; i++) SHA1_ROUND((bb & c) | (d & (bb | c)), 0x8F1BBCDCu, SHA1_W(i));
  for (; i < 80; i++) SHA1_ROUND(bb ^ c ^ d, 0xCA62C1D6u, SHA1_W(i));
  h[0] += a; h[1] += bb; h[2] += c; h[3] += d; h[4] += e;
}

void wse_sha1(const uint8_t *data, size_t n, uint8_t out[20]) {
  uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
  uint64_t bits = (uint64_t)n * 8;
  size_t i = 0;
  for (; n - i >= 64; i += 64) sha1_block(h, data + i);
  uint8_t tail[128];
  size_t rem = n - i;
  wse__memset(tail, 0, sizeof tail);
  if (rem) wse__memcpy(tail, data + i, rem);
  tail[rem] = 0x80;
  size_t tl = rem + 1 + 8 <= 64 ? 64 : 128;
  for (int k = 0; k < 8; k++) tail[tl - 1 - k] = (uint8_t)(bits >> (8 * k));
  sha1_block(h, tail);
  if (tl == 128) sha1_block(h, tail + 64);
  for (int k = 0; k < 5; k++) {
    out[4 * k] = (uint8_t)(h[k] >> 24);
    out[4 * k + 1] = (uint8_t)(h[k] >> 16);
    out[4 * k + 2] = (uint8_t)(h[k] >> 8);
    out[4 * k + 3] = (uint8_t)h[k];
  }
}
