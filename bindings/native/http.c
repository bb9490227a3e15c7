/* http.c — incremental, zero-copy HTTP/1.1 request head parser for the
 * native host. Strict where ambiguity could be abused (folding, spaces
 * before the colon, control bytes, conflicting Content-Length), lenient only
 * on bare LF line ends (RFC 9112 §2.2 allows it). */
#include "http.h"

#include <string.h>

/* RFC 9110 tchar */
static const uint8_t tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
    ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

/* Bytes allowed in a field value (RFC 9110 §5.5: VCHAR, obs-text, SP,
 * HTAB) and in a request-target (0x21..0x7E): one table for both loops. */
enum { C_VALUE = 1, C_TARGET = 2 };
static const uint8_t cls[256] = {
    ['\t'] = C_VALUE, [' '] = C_VALUE, [0x21 ... 0x7e] = C_VALUE | C_TARGET,
    [0x80 ... 0xff] = C_VALUE,
};

size_t wsn_http_head_end(const char *buf, size_t n, size_t from) {
  size_t i = from >= 3 ? from - 3 : 0;
  while (i < n) {
    const char *nl = memchr(buf + i, '\n', n - i);
    if (!nl) return 0;
    i = (size_t)(nl - buf);
    if (i + 1 < n && buf[i + 1] == '\n') return i + 2;
    if (i + 2 < n && buf[i + 1] == '\r' && buf[i + 2] == '\n') return i + 3;
    i++;
  }
  return 0;
}

/* Consume a line end at *i: CRLF or LF. */
static int eol(const char *b, size_t end, size_t *i) {
  if (*i < end && b[*i] == '\r') {
    if (*i + 1 < end && b[*i + 1] == '\n') {
      *i += 2;
      return 1;
    }
    return 0;
  }
  if (*i < end && b[*i] == '\n') {
    *i += 1;
    return 1;
  }
  return 0;
}

/* RFC 9112 §3.2.2: a server must accept the absolute-form
 * ("http://host/path?q") too. Routing only needs the path and query, so the
 * target is narrowed to them in place ("/" when the URI has no path). */
static void origin_form(wse_str_t *t) {
  static const char *const schemes[] = {"http://", "https://"};
  for (size_t k = 0; k < 2; k++) {
    size_t sn = strlen(schemes[k]);
    if (t->n < sn) continue;
    size_t j = 0;
    while (j < sn && (t->p[j] | 0x20) == schemes[k][j]) j++;
    if (j < sn) continue;
    while (j < t->n && t->p[j] != '/' && t->p[j] != '?') j++;
    if (j == t->n) { /* "http://host": the root */
      t->p = "/";
      t->n = 1;
      return;
    }
    if (t->p[j] == '?') return; /* "http://host?q" would need a copy: left as is (404) */
    t->p += j;
    t->n -= j;
    return;
  }
}

int wsn_http_parse(const char *buf, size_t n, wse_request_t *req,
                   wse_header_t *headers, size_t max_headers) {
  size_t end = wsn_http_head_end(buf, n, 0);
  if (!end) return WSN_HTTP_PARTIAL;
  const uint8_t *b = (const uint8_t *)buf;
  size_t i = 0;

  /* RFC 9112 §2.2: ignore empty lines received before the request-line
   * (left over from a previous message by some clients); a few at most. */
  for (int k = 0; k < 4 && eol(buf, end, &i); k++) {}

  /* request-line = method SP request-target SP HTTP-version */
  size_t s = i;
  while (i < end && tchar[b[i]]) i++;
  if (i == s || i >= end || b[i] != ' ') return WSN_HTTP_ERROR;
  req->method.p = buf + s;
  req->method.n = i - s;
  i++;
  s = i;
  while (i < end && (cls[b[i]] & C_TARGET)) i++;
  if (i == s || i >= end || b[i] != ' ') return WSN_HTTP_ERROR;
  req->target.p = buf + s;
  req->target.n = i - s;
  origin_form(&req->target);
  i++;
  if (end - i < 8 || memcmp(buf + i, "HTTP/1.", 7) != 0 || b[i + 7] < '0' ||
      b[i + 7] > '9')
    return WSN_HTTP_ERROR;
  req->http_version = b[i + 7] == '0' ? 10 : 11;
  i += 8;
  if (!eol(buf, end, &i)) return WSN_HTTP_ERROR;

  size_t nh = 0;
  for (;;) {
    if (eol(buf, end, &i)) break; /* the blank line */
    if (i >= end) return WSN_HTTP_ERROR;
    s = i;
    while (i < end && tchar[b[i]]) i++;
    if (i == s || i >= end || b[i] != ':') return WSN_HTTP_ERROR;
    size_t name_n = i - s;
    i++;
    while (i < end && (b[i] == ' ' || b[i] == '\t')) i++;
    size_t vs = i;
    while (i < end && (cls[b[i]] & C_VALUE)) i++;
    size_t ve = i;
    while (ve > vs && (b[ve - 1] == ' ' || b[ve - 1] == '\t')) ve--;
    if (!eol(buf, end, &i)) return WSN_HTTP_ERROR;
    if (nh == max_headers) return WSN_HTTP_TOO_MANY;
    headers[nh].name.p = buf + s;
    headers[nh].name.n = name_n;
    headers[nh].value.p = buf + vs;
    headers[nh].value.n = ve - vs;
    nh++;
  }
  if (i != end) return WSN_HTTP_ERROR;
  req->headers = headers;
  req->n_headers = nh;
  return (int)end;
}

static int ieq(wse_str_t s, const char *lit) {
  size_t n = strlen(lit);
  if (s.n != n) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s.p[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
    if (c != lit[i]) return 0;
  }
  return 1;
}

void wsn_http_body_info(const wse_request_t *req, wsn_http_body_t *out) {
  out->chunked = 0;
  out->bad_length = 0;
  out->length = 0;
  int seen = 0;
  for (size_t k = 0; k < req->n_headers; k++) {
    const wse_header_t *h = &req->headers[k];
    if (ieq(h->name, "transfer-encoding")) {
      out->chunked = 1;
    } else if (ieq(h->name, "content-length")) {
      uint64_t v = 0;
      if (h->value.n == 0 || h->value.n > 15) {
        out->bad_length = 1;
        continue;
      }
      for (size_t j = 0; j < h->value.n; j++) {
        char c = h->value.p[j];
        if (c < '0' || c > '9') {
          out->bad_length = 1;
          break;
        }
        v = v * 10 + (uint64_t)(c - '0');
      }
      if (out->bad_length) continue;
      if (seen && v != out->length) out->bad_length = 1;
      out->length = v;
      seen = 1;
    }
  }
}

wse_str_t wsn_http_path(wse_str_t target) {
  wse_str_t p = target;
  for (size_t i = 0; i < target.n; i++) {
    if (target.p[i] == '?' || target.p[i] == '#') {
      p.n = i;
      break;
    }
  }
  return p;
}

