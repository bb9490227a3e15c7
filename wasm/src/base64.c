/* base64.c — standard base64 (RFC 4648 §4) with padding, for the handshake
 * key and accept value. Own code: the wasm build has no libc. */
#include "internal.h"

static const char b64_alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t wse_base64_encode(const uint8_t *in, size_t n, char *out) {
  size_t o = 0, i = 0;
  for (; n - i >= 3; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = b64_alphabet[v >> 18];
    out[o++] = b64_alphabet[(v >> 12) & 63];
    out[o++] = b64_alphabet[(v >> 6) & 63];
    out[o++] = b64_alphabet[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = b64_alphabet[v >> 18];
    out[o++] = b64_alphabet[(v >> 12) & 63];
    out[o++] = '=';
    out[o++] = '=';
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = b64_alphabet[v >> 18];
    out[o++] = b64_alphabet[(v >> 12) & 63];
    out[o++] = b64_alphabet[(v >> 6) & 63];
    out[o++] = '=';
  }
  return o;
}

/* Symbol values + 1 (0: not in the alphabet): one load per symbol. */
static const uint8_t b64_rev[128] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,
    ['G'] = 7,  ['H'] = 8,  ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12,
    ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18,
    ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30,
    ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,
    ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54,
    ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60,
    ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

static int b64_value(uint8_t c) {
  return c < 128 ? (int)b64_rev[c] - 1 : -1;
}

/* Strict: length a multiple of 4, '=' only as the final one or two chars,
 * and the unused bits of the last symbol zero (canonical encoding). */
long wse_base64_decode(const char *in, size_t n, uint8_t *out, size_t cap) {
  if (n % 4) return -1;
  size_t o = 0;
  for (size_t i = 0; i < n; i += 4) {
    const uint8_t *q = (const uint8_t *)in + i;
    int last = i + 4 == n;
    int pad = 0;
    if (last && q[3] == '=') pad = q[2] == '=' ? 2 : 1;
    int v0 = b64_value(q[0]), v1 = b64_value(q[1]);
    int v2 = pad >= 2 ? 0 : b64_value(q[2]);
    int v3 = pad >= 1 ? 0 : b64_value(q[3]);
    if (v0 < 0 || v1 < 0 || v2 < 0 || v3 < 0) return -1;
    uint32_t v = (uint32_t)v0 << 18 | (uint32_t)v1 << 12 | (uint32_t)v2 << 6 | (uint32_t)v3;
    size_t k = 3 - (size_t)pad;
    if (pad == 2 && (v & 0xFFFF)) return -1;
    if (pad == 1 && (v & 0xFF)) return -1;
    if (o + k > cap) return -1;
    out[o++] = (uint8_t)(v >> 16);
    if (k > 1) out[o++] = (uint8_t)(v >> 8);
    if (k > 2) out[o++] = (uint8_t)v;
  }
  return (long)o;
}
