/* sha1.c — SHA-1 (FIPS 180-4) for Sec-WebSocket-Accept. Own code: the wasm
 * build has no libc. Not constant-time and not meant for anything secret. */
#include "internal.h"

static uint32_t rol32(uint32_t x, unsigned n) { return (x << n) | (x >> (32 - n)); }

/* One 64-byte block, fully unrolled: the five working variables change
 * names every round instead of moving (no register shuffle), and the
 * schedule is a ring of 16 words with constant indices. About 60% of the
 * instructions of the looped form (SHA-1 is a third of a native connect +
 * handshake + close cycle's user-space instructions under callgrind). */
#define SHA1_F1(b, c, d) ((d) ^ ((b) & ((c) ^ (d))))
#define SHA1_F2(b, c, d) ((b) ^ (c) ^ (d))
#define SHA1_F3(b, c, d) (((b) & (c)) | ((d) & ((b) | (c))))
#define SHA1_W(i)                                                             \
  (w[(i) & 15] = rol32(w[((i) + 13) & 15] ^ w[((i) + 8) & 15] ^               \
                           w[((i) + 2) & 15] ^ w[(i) & 15], 1))
#define SHA1_R(v, x, y, z, u, f, k, wi)                                       \
  do {                                                                        \
    u += rol32(v, 5) + f(x, y, z) + (k) + (wi);                               \
    x = rol32(x, 30);                                                         \
  } while (0)
/* rounds 0-15 read the block's words, later ones extend the schedule (i is
 * a constant: the choice is made at compile time) */
#define SHA1_WX(i) ((i) < 16 ? w[(i) & 15] : SHA1_W(i))
/* five rounds: after them every variable has its name back */
#define SHA1_R5(f, k, i)                                                      \
  do {                                                                        \
    SHA1_R(a, bb, c, d, e, f, k, SHA1_WX(i));                                 \
    SHA1_R(e, a, bb, c, d, f, k, SHA1_WX((i) + 1));                           \
    SHA1_R(d, e, a, bb, c, f, k, SHA1_WX((i) + 2));                           \
    SHA1_R(c, d, e, a, bb, f, k, SHA1_WX((i) + 3));                           \
    SHA1_R(bb, c, d, e, a, f, k, SHA1_WX((i) + 4));                           \
  } while (0)
#define SHA1_R20(f, k, i)                                                     \
  do {                                                                        \
    SHA1_R5(f, k, i);                                                         \
    SHA1_R5(f, k, (i) + 5);                                                   \
    SHA1_R5(f, k, (i) + 10);                                                  \
    SHA1_R5(f, k, (i) + 15);                                                  \
  } while (0)

static void sha1_block(uint32_t h[5], const uint8_t b[64]) {
  uint32_t w[16];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 |
           (uint32_t)b[4 * i + 2] << 8 | (uint32_t)b[4 * i + 3];
  uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];
  SHA1_R20(SHA1_F1, 0x5A827999u, 0);
  SHA1_R20(SHA1_F2, 0x6ED9EBA1u, 20);
  SHA1_R20(SHA1_F3, 0x8F1BBCDCu, 40);
  SHA1_R20(SHA1_F2, 0xCA62C1D6u, 60);
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
