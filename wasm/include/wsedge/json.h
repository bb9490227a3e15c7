/* wsedge/json.h — the little JSON an app needs, without a libc (the wasm
 * build has none): a writer that never overflows (it counts what it could
 * not write, so one check at the end tells whether the buffer was big
 * enough) and a strict reader for flat objects whose values are strings
 * (or unsigned integers). */
#ifndef WSEDGE_JSON_H
#define WSEDGE_JSON_H

#include "common.h"
#include "handshake.h" /* wse_str_t */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wse_jw {
  char *p;
  size_t n;   /* bytes produced so far; may exceed cap (then nothing fits) */
  size_t cap;
} wse_jw_t;

/* 1 when everything written so far fit in the buffer. */
#define wse_jw_ok(w) ((w)->n <= (w)->cap)

void wse_jw_raw(wse_jw_t *w, const char *s, size_t n);
#define wse_jw_lit(w, s) wse_jw_raw((w), (s), sizeof(s) - 1)
/* A JSON string, quotes included: " \ as \" \\, \n \r \t, other control
 * characters as \u00XX, U+2028/U+2029 as \u2028/\u2029, the rest (UTF-8)
 * unchanged. Worst case 6 * n + 2 bytes. */
void wse_jw_str(wse_jw_t *w, const char *s, size_t n);
void wse_jw_u64(wse_jw_t *w, uint64_t v);
/* A C string's bytes, unquoted (for literals chosen at run time). */
void wse_jw_cstr(wse_jw_t *w, const char *s);

/* Parse p[0..n) as one object {"key":"string",...} (JSON whitespace allowed
 * around tokens). keys[0..nkeys) are the accepted names; vals[i] gets the
 * decoded value of keys[i] (p == NULL when absent). Decoded text goes to
 * buf; cap >= n always suffices. Returns WSE_OK, or WSE_EINVAL for bad
 * syntax, an unknown or repeated key, a value that is not a string, a bad
 * escape or lone surrogate, or a raw control character. The input must be
 * valid UTF-8 (the caller checks, e.g. with wse_utf8_valid). */
int wse_json_fields(const uint8_t *p, size_t n, const char *const *keys,
                    size_t nkeys, wse_str_t *vals, char *buf, size_t cap);
/* The same, where a value may also be an unsigned integer (0 or
 * [1-9][0-9]*; no sign, fraction or exponent): vals[i] is then its digits
 * and bit i of *nums is set. nkeys <= 32. */
int wse_json_object(const uint8_t *p, size_t n, const char *const *keys,
                    size_t nkeys, wse_str_t *vals, unsigned *nums, char *buf,
                    size_t cap);
/* Decimal digits (as wse_json_object gives them) as a number: WSE_EINVAL
 * when empty, not digits, with a leading zero or past UINT64_MAX. */
int wse_json_u64(wse_str_t v, uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif
