/* fuzz_utf8.c — differential libFuzzer target: the incremental validator
 * against a plain reference decoder (decode each code point, then reject
 * overlongs, surrogates and values above U+10FFFF), whole and in chunks
 * whose sizes come from the input. Both must agree on validity and on the
 * index of the first impossible byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "wsedge.h"

/* Reference: decode a code point the textbook way; the first impossible
 * byte is found by trying each prefix: a prefix is possible iff some
 * continuation could still complete it into a valid scalar value. */
static int prefix_possible(const uint8_t *s, size_t k) {
  uint8_t b = s[0];
  size_t need;
  uint32_t cp;
  if (b < 0x80) return k == 1;
  if ((b & 0xE0) == 0xC0) { need = 2; cp = b & 0x1F; }
  else if ((b & 0xF0) == 0xE0) { need = 3; cp = b & 0x0F; }
  else if ((b & 0xF8) == 0xF0) { need = 4; cp = b & 0x07; }
  else return 0;
  if (k > need) return 0;
  for (size_t i = 1; i < k; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (s[i] & 0x3F);
  }
  /* range of code points reachable by completing with any continuations */
  uint32_t lo = cp, hi = cp;
  for (size_t i = k; i < need; i++) { lo = lo << 6; hi = hi << 6 | 0x3F; }
  uint32_t min = need == 2 ? 0x80 : need == 3 ? 0x800 : 0x10000;
  /* is there a valid value in [lo, hi]? valid: >= min, <= 0x10FFFF, not D800..DFFF */
  if (hi < min || lo > 0x10FFFF) return 0;
  if (lo < min) lo = min;
  if (hi > 0x10FFFF) hi = 0x10FFFF;
  if (lo >= 0xD800 && hi <= 0xDFFF) return 0;
  return 1;
}

/* -1: all possible (complete says if ends on a boundary); else index */
static long reference(const uint8_t *p, size_t n, int *complete) {
  size_t i = 0;
  *complete = 1;
  while (i < n) {
    size_t k = 1;
    if (!prefix_possible(p + i, 1)) return (long)i;
    size_t need = p[i] < 0x80 ? 1 : (p[i] & 0xE0) == 0xC0 ? 2 : (p[i] & 0xF0) == 0xE0 ? 3 : 4;
    while (k < need) {
      if (i + k >= n) { *complete = 0; return -1; }
      if (!prefix_possible(p + i, k + 1)) return (long)(i + k);
      k++;
    }
    i += need;
  }
  return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t step = data[0];
  data++;
  size--;
  uint8_t *p = malloc(size ? size : 1);
  memcpy(p, data, size);
  int complete;
  long ref = reference(p, size, &complete);
  /* whole */
  uint32_t st = WSE_UTF8_ACCEPT;
  size_t bad = 0;
  int r = wse_utf8_feed(&st, p, size, &bad);
  long got = r < 0 ? (long)bad : -1;
  if (got != ref) abort();
  if (ref < 0 && (st == WSE_UTF8_ACCEPT) != complete) abort();
  if (wse_utf8_valid(p, size) != (ref < 0 && complete)) abort();
  /* chunked, each chunk in its own heap block */
  st = WSE_UTF8_ACCEPT;
  got = -1;
  size_t off = 0, k = 1 + step % 17;
  while (off < size) {
    size_t m = size - off < k ? size - off : k;
    uint8_t *c = malloc(m);
    memcpy(c, p + off, m);
    r = wse_utf8_feed(&st, c, m, &bad);
    free(c);
    if (r < 0) { got = (long)(off + bad); break; }
    off += m;
    k = 1 + (k * 7 + step) % 23;
  }
  if (got != ref) abort();
  if (ref < 0 && (st == WSE_UTF8_ACCEPT) != complete) abort();
  free(p);
  return 0;
}
