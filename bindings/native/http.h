/* http.h — the native host's HTTP/1.1 request head parser: incremental,
 * zero-copy, picohttpparser style. It allocates nothing; the request and its
 * headers point into the caller's buffer. Re-parsing after more bytes arrive
 * is cheap (the end-of-head search resumes where it stopped). */
#ifndef WSN_HTTP_H
#define WSN_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include "wsedge.h"

#define WSN_HTTP_HEAD_MAX 8192   /* longer heads are answered with 431 */
#define WSN_HTTP_MAX_HEADERS 64  /* more headers: 431 as well */
#define WSN_HTTP_BODY_MAX 65536  /* larger Content-Length: 413 */

enum {
  WSN_HTTP_ERROR = -1,    /* malformed head: 400 */
  WSN_HTTP_PARTIAL = -2,  /* need more bytes */
  WSN_HTTP_TOO_MANY = -3, /* over WSN_HTTP_MAX_HEADERS: 431 */
};

/* Length of the head in buf[0..n) including the blank line, or 0 when the
 * head is not complete yet. `from` is the length examined by a previous call
 * on the same buffer (0 the first time), so a slow sender costs O(n) total. */
size_t wsn_http_head_end(const char *buf, size_t n, size_t from);

/* Parse the complete or partial request head in buf[0..n). Returns the head
 * length (> 0) with *req and headers[0..req->n_headers) filled (pointers into
 * buf), WSN_HTTP_PARTIAL, WSN_HTTP_ERROR or WSN_HTTP_TOO_MANY. Accepts CRLF
 * and bare LF line ends; rejects obsolete line folding, whitespace before
 * the colon, control characters and a version other than HTTP/1.x. */
int wsn_http_parse(const char *buf, size_t n, wse_request_t *req,
                   wse_header_t *headers, size_t max_headers);

/* How the request frames its body. */
typedef struct wsn_http_body {
  int chunked;       /* Transfer-Encoding present (we do not take bodies so) */
  int bad_length;    /* Content-Length malformed or repeated with a conflict */
  uint64_t length;   /* Content-Length, 0 when absent */
} wsn_http_body_t;

void wsn_http_body_info(const wse_request_t *req, wsn_http_body_t *out);

/* Path part of the target (up to '?' or '#'). */
wse_str_t wsn_http_path(wse_str_t target);

/* Reason phrases: wse_http_reason() (the core's one table). */

#endif
