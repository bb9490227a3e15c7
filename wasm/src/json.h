/* json.h — internal: the little JSON the app layer and the example app need.
 * A writer that never overflows (it counts what it could not write, so one
 * check at the end tells whether the buffer was big enough) and a strict
 * parser for flat objects whose values are all strings. */
#ifndef WSE_JSON_H
#define WSE_JSON_H

#include "internal.h"

typedef struct wse__jw {
  char *p;
  size_t n;   /* bytes produced so far; may exceed cap (then nothing fits) */
  size_t cap;
} wse__jw_t;

void wse__jw_raw(wse__jw_t *w, const char *s, size_t n);
#define wse__jw_lit(w, s) wse__jw_raw((w), (s), sizeof(s) - 1)
/* A JSON string, quotes included: " \ as \" \\, \n \r \t, other control
 * characters as \u00XX, U+2028/U+2029 as \u2028/\u2029, the rest (UTF-8)
 * unchanged. Worst case 6 * n + 2 bytes. */
void wse__jw_str(wse__jw_t *w, const char *s, size_t n);
void wse__jw_u64(wse__jw_t *w, uint64_t v);

/* Two hex digits (any case) at p[0..2) as a byte, or -1. */
int wse__hex2(const char *p);

/* Parse p[0..n) as one object {"key":"string",...} (JSON whitespace allowed
 * around tokens). keys[0..nkeys) are the accepted names; vals[i] gets the
 * decoded value of keys[i] (p == NULL when absent). Decoded text goes to
 * buf; cap >= n always suffices. Returns WSE_OK, or WSE_EINVAL for bad
 * syntax, an unknown or repeated key, a value that is not a string, a bad
 * escape or lone surrogate, or a raw control character. The input must be
 * valid UTF-8 (the caller checks). */
int wse__json_fields(const uint8_t *p, size_t n, const char *const *keys,
                     size_t nkeys, wse_str_t *vals, char *buf, size_t cap);

#endif
