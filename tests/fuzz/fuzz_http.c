/* fuzz_http.c — libFuzzer target for the native host's HTTP/1.1 request head
 * reader (bindings/native/http.c) and what the server feeds it into: the
 * core's upgrade validation and response writer. Checks, beyond "no crash
 * under ASan+UBSan":
 *  - the incremental end-of-head search resumed at every split point finds
 *    the same end as a one-shot scan (a slow sender cannot desync it);
 *  - a parsed head is exactly that long, every pointer stays inside it,
 *    names are non-empty tokens and values carry no CR/LF;
 *  - a small header table gives TOO_MANY, never an overflow;
 *  - validation always yields a known status and a response that fits.
 * Every parse works on an exact-size heap copy so ASan flags any over-read. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../bindings/native/http.h"
#include "wsedge.h"

#define ASSERT(c) do { if (!(c)) __builtin_trap(); } while (0)

static int in_head(const char *base, size_t end, wse_str_t s) {
  return s.p >= base && s.p + s.n <= base + end && (s.n == 0 || s.p < base + end);
}

static void check_parsed(const char *buf, size_t n, int r,
                         const wse_request_t *req, size_t max_headers) {
  if (r == WSN_HTTP_PARTIAL) {
    ASSERT(wsn_http_head_end(buf, n, 0) == 0);
    return;
  }
  if (r == WSN_HTTP_ERROR || r == WSN_HTTP_TOO_MANY) {
    ASSERT(wsn_http_head_end(buf, n, 0) > 0);
    return;
  }
  ASSERT(r > 0);
  size_t end = (size_t)r;
  ASSERT(end <= n && end == wsn_http_head_end(buf, n, 0));
  ASSERT(req->method.n > 0 && in_head(buf, end, req->method));
  /* in the head, or the root an absolute-form URI without a path maps to */
  ASSERT(req->target.n > 0 && (in_head(buf, end, req->target) ||
                               (req->target.n == 1 && req->target.p[0] == '/')));
  ASSERT(req->http_version == 10 || req->http_version == 11);
  ASSERT(req->n_headers <= max_headers);
  for (size_t i = 0; i < req->n_headers; i++) {
    const wse_header_t *h = &req->headers[i];
    ASSERT(h->name.n > 0 && in_head(buf, end, h->name));
    ASSERT(in_head(buf, end, h->value));
    for (size_t j = 0; j < h->name.n; j++)
      ASSERT(h->name.p[j] != ':' && h->name.p[j] > 0x20);
    for (size_t j = 0; j < h->value.n; j++)
      ASSERT(h->value.p[j] != '\r' && h->value.p[j] != '\n');
  }
  wse_str_t path = wsn_http_path(req->target);
  ASSERT(path.p == req->target.p && path.n <= req->target.n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 3 * WSN_HTTP_HEAD_MAX) return 0; /* the server never parses more */
  char *buf = malloc(size ? size : 1);
  if (!buf) return 0;
  memcpy(buf, data, size);

  /* 1. Incremental head search, as the server does it while bytes trickle
   * in: up to 8 growing prefixes, split points taken from the input. */
  size_t one_shot = wsn_http_head_end(buf, size, 0);
  size_t seen = 0, found = 0;
  for (unsigned k = 0; k < 8 && seen < size && !found; k++) {
    size_t have = k == 7 ? size
                         : seen + 1 + (size_t)(data[k % size] * 31u) % (size - seen);
    if (have > size) have = size;
    char *part = malloc(have);
    if (!part) break;
    memcpy(part, buf, have);
    found = wsn_http_head_end(part, have, seen);
    ASSERT(found == wsn_http_head_end(part, have, 0));
    ASSERT(found <= have);
    free(part);
    seen = have;
  }
  if (seen == size || found) ASSERT(found == one_shot);

  /* 2. Full parse with the server's table size and with a tiny one. */
  wse_header_t headers[WSN_HTTP_MAX_HEADERS];
  wse_request_t req;
  memset(&req, 0, sizeof req);
  int r = wsn_http_parse(buf, size, &req, headers, WSN_HTTP_MAX_HEADERS);
  check_parsed(buf, size, r, &req, WSN_HTTP_MAX_HEADERS);

  wse_header_t few[3];
  wse_request_t req2;
  memset(&req2, 0, sizeof req2);
  int r2 = wsn_http_parse(buf, size, &req2, few, 3);
  check_parsed(buf, size, r2, &req2, 3);
  if (r > 0)
    ASSERT(req.n_headers > 3 ? r2 == WSN_HTTP_TOO_MANY : r2 == r);
  else if (r == WSN_HTTP_ERROR) /* a 4th header may come before the error */
    ASSERT(r2 == r || r2 == WSN_HTTP_TOO_MANY);
  else
    ASSERT(r2 == r);

  /* 3. What the server does with a parsed head. */
  if (r > 0) {
    wsn_http_body_t body;
    wsn_http_body_info(&req, &body);
    ASSERT(body.chunked == 0 || body.chunked == 1);
    ASSERT(body.bad_length || body.length < 1000000000000000ull);

    wse_config_t cfg;
    wse_config_default(&cfg);
    wse_upgrade_t u;
    int v = wse_upgrade_validate(&cfg, &req, &u);
    ASSERT((v == WSE_OK) == (u.status == 101));
    ASSERT(u.status == 101 || u.status == 400 || u.status == 403 ||
           u.status == 405 || u.status == 426);
    if (v == WSE_OK) wse_deflate_negotiate(&cfg, &u);
    char out[1024];
    int n = wse_upgrade_response(&cfg, &u, out, sizeof out);
    ASSERT(n > 0 && (size_t)n <= sizeof out);
    (void)wse_is_upgrade_request(&req);
    (void)wse_http_reason(u.status);
  }
  free(buf);
  return 0;
}
