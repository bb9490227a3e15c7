/* handshake.c — RFC 6455 §4.2.1 upgrade validation, RFC 7692 offer parsing
 * and negotiation, and the HTTP responses that go with them. The host parses
 * HTTP into a wse_request_t; everything here works on (pointer, length)
 * pairs and never reads past them. */
#include "internal.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ---- small string helpers ------------------------------------------- */

static int is_ows(char c) { return c == ' ' || c == '\t'; }

static wse_str_t trim(const char *p, size_t n) {
  while (n && is_ows(p[0])) p++, n--;
  while (n && is_ows(p[n - 1])) n--;
  wse_str_t s = {p, n};
  return s;
}

static int str_eq(wse_str_t a, const char *b) {
  return wse__caseeq(a.p, a.n, b, wse__strlen(b));
}

static int name_is(const wse_header_t *h, const char *name) {
  return wse__caseeq(h->name.p, h->name.n, name, wse__strlen(name));
}

const wse_str_t *wse_header_get(const wse_request_t *req, const char *name) {
  for (size_t i = 0; i < req->n_headers; i++)
    if (name_is(&req->headers[i], name)) return &req->headers[i].value;
  return NULL;
}

/* Next element of a comma-separated list starting at *pos; quoted strings
 * may contain commas. Returns 0 when the list is exhausted. Empty elements
 * (", ,") are skipped as RFC 7230 §7 requires. */
static int list_next(const char *p, size_t n, size_t *pos, wse_str_t *elem) {
  while (*pos < n) {
    size_t s = *pos, i = s;
    int q = 0;
    for (; i < n; i++) {
      char c = p[i];
      if (q) {
        if (c == '\\' && i + 1 < n) i++;
        else if (c == '"') q = 0;
      } else if (c == '"') {
        q = 1;
      } else if (c == ',') {
        break;
      }
    }
    *pos = i < n ? i + 1 : n;
    *elem = trim(p + s, i - s);
    if (elem->n) return 1;
  }
  return 0;
}

static int value_has_token(wse_str_t v, const char *token, int icase) {
  size_t pos = 0, tn = wse__strlen(token);
  wse_str_t e = trim(v.p, v.n);
  /* the common case: the value is the token alone */
  if (e.n == tn && (icase ? wse__caseeq(e.p, e.n, token, tn) : wse__memeq(e.p, token, tn)))
    return 1;
  while (list_next(v.p, v.n, &pos, &e)) {
    if (icase ? wse__caseeq(e.p, e.n, token, tn) : (e.n == tn && wse__memeq(e.p, token, tn)))
      return 1;
  }
  return 0;
}

/* Whether any header `name` lists `token` (icase: case-insensitively). */
static int has_token(const wse_request_t *req, const char *name, const char *token, int icase) {
  for (size_t i = 0; i < req->n_headers; i++)
    if (name_is(&req->headers[i], name) && value_has_token(req->headers[i].value, token, icase))
      return 1;
  return 0;
}

int wse_header_has_token(const wse_request_t *req, const char *name, const char *token) {
  return has_token(req, name, token, 1);
}

/* The headers the handshake reads, found in one pass over the request (a
 * name is told by its length, then compared once): no scan per question. */
enum { HX_HOST, HX_ORIGIN, HX_UPGRADE, HX_CONNECTION, HX_KEY, HX_VERSION,
       HX_PROTOCOL, HX_N };
typedef struct hidx {
  const wse_str_t *v[HX_N]; /* the first of each */
  uint8_t n[HX_N];          /* how many (saturating) */
} hidx_t;

static int hx_of(wse_str_t nm) {
  static const char *const names[HX_N] = {
      "host", "origin", "upgrade", "connection", "sec-websocket-key",
      "sec-websocket-version", "sec-websocket-protocol"};
  int k;
  switch (nm.n) {
  case 4: k = HX_HOST; break;
  case 6: k = HX_ORIGIN; break;
  case 7: k = HX_UPGRADE; break;
  case 10: k = HX_CONNECTION; break;
  case 17: k = HX_KEY; break;
  case 21: k = HX_VERSION; break;
  case 22: k = HX_PROTOCOL; break;
  default: return -1;
  }
  /* names[k] is lower case: only the request's side needs folding */
  for (size_t i = 0; i < nm.n; i++)
    if (wse__lower((uint8_t)nm.p[i]) != (uint8_t)names[k][i]) return -1;
  return k;
}

static void hx_index(const wse_request_t *req, hidx_t *x) {
  wse__memset(x, 0, sizeof *x);
  for (size_t i = 0; i < req->n_headers; i++) {
    int k = hx_of(req->headers[i].name);
    if (k < 0) continue;
    if (!x->n[k]) x->v[k] = &req->headers[i].value;
    if (x->n[k] < 255) x->n[k]++;
  }
}

/* Whether header k (named `name`) lists `token`: its one value, or every
 * occurrence when it repeats. */
static int hx_has_token(const wse_request_t *req, const hidx_t *x, int k,
                        const char *name, const char *token, int icase) {
  if (x->n[k] == 1) return value_has_token(*x->v[k], token, icase);
  return x->n[k] && has_token(req, name, token, icase);
}

int wse_is_upgrade_request(const wse_request_t *req) {
  return wse_header_has_token(req, "upgrade", "websocket");
}

/* ---- accept key ----------------------------------------------------- */

void wse_accept_key(const char *key, size_t key_len, char out[29]) {
  /* A valid key is 24 chars; longer ones are only hashed when a caller
   * skips validation, so hash them in bounded pieces of a local buffer. */
  uint8_t buf[128];
  uint8_t digest[20];
  size_t glen = sizeof(WS_GUID) - 1;
  if (key_len <= sizeof buf - glen) {
    if (key_len) wse__memcpy(buf, key, key_len);
    wse__memcpy(buf + key_len, WS_GUID, glen);
    wse_sha1(buf, key_len + glen, digest);
  } else {
    /* Keys this long are invalid anyway; produce a deterministic value
     * without an allocation: hash of the truncated key + GUID. */
    wse__memcpy(buf, key, sizeof buf - glen);
    wse__memcpy(buf + sizeof buf - glen, WS_GUID, glen);
    wse_sha1(buf, sizeof buf, digest);
  }
  size_t n = wse_base64_encode(digest, 20, out);
  out[n] = 0;
}

/* ---- permessage-deflate offers (RFC 7692 §7) ------------------------ */

static int is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
  switch (c) {
  case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
  case '-': case '.': case '^': case '_': case '`': case '|': case '~':
    return 1;
  default:
    return 0;
  }
}

static int is_token(wse_str_t s) {
  if (!s.n) return 0;
  for (size_t i = 0; i < s.n; i++)
    if (!is_tchar(s.p[i])) return 0;
  return 1;
}

/* Window bits value: 1*DIGIT without leading zero, 8..15. -1 if invalid. */
static int parse_bits(wse_str_t v) {
  if (v.n < 1 || v.n > 2 || v.p[0] == '0') return -1;
  int x = 0;
  for (size_t i = 0; i < v.n; i++) {
    if (v.p[i] < '0' || v.p[i] > '9') return -1;
    x = x * 10 + (v.p[i] - '0');
  }
  return x >= 8 && x <= 15 ? x : -1;
}

/* Unquote a quoted-string value into buf (values we accept are tiny). */
static int unquote(wse_str_t v, char *buf, size_t cap, wse_str_t *out) {
  if (v.n < 2 || v.p[0] != '"' || v.p[v.n - 1] != '"') return -1;
  size_t o = 0;
  for (size_t i = 1; i + 1 < v.n; i++) {
    char c = v.p[i];
    if (c == '"') return -1;
    if (c == '\\') {
      if (i + 2 >= v.n) return -1;
      c = v.p[++i];
    }
    if (o >= cap) return -1;
    buf[o++] = c;
  }
  out->p = buf;
  out->n = o;
  return 0;
}

/* Parse "permessage-deflate; p1; p2=v" parameters after the name. Returns 0
 * with *d filled, or -1 when any parameter is unknown, duplicated or has a
 * bad value: such an offer is declined as a whole (RFC 7692 §7). */
static int parse_deflate_params(wse_str_t rest, wse_deflate_params_t *d) {
  d->server_no_context_takeover = -1;
  d->client_no_context_takeover = -1;
  d->server_max_window_bits = -1;
  d->client_max_window_bits = -1;
  size_t i = 0;
  while (i < rest.n) {
    /* rest starts right after a ';' */
    size_t s = i;
    int q = 0;
    for (; i < rest.n; i++) {
      char c = rest.p[i];
      if (q) {
        if (c == '\\' && i + 1 < rest.n) i++;
        else if (c == '"') q = 0;
      } else if (c == '"') {
        q = 1;
      } else if (c == ';') {
        break;
      }
    }
    if (q) return -1;
    wse_str_t param = trim(rest.p + s, i - s);
    int trailing = i < rest.n; /* a ';' follows */
    i++;
    if (!param.n) return -1; /* "deflate;" or ";;" */
    size_t eq = 0;
    while (eq < param.n && param.p[eq] != '=') eq++;
    wse_str_t name = trim(param.p, eq);
    int has_value = eq < param.n;
    wse_str_t value = {0, 0};
    char qbuf[8];
    if (has_value) {
      value = trim(param.p + eq + 1, param.n - eq - 1);
      if (value.n && value.p[0] == '"') {
        if (unquote(value, qbuf, sizeof qbuf, &value) < 0) return -1;
      } else if (!is_token(value)) {
        return -1;
      }
    }
    if (!is_token(name)) return -1;
    if (str_eq(name, "server_no_context_takeover")) {
      if (has_value || d->server_no_context_takeover != -1) return -1;
      d->server_no_context_takeover = 1;
    } else if (str_eq(name, "client_no_context_takeover")) {
      if (has_value || d->client_no_context_takeover != -1) return -1;
      d->client_no_context_takeover = 1;
    } else if (str_eq(name, "server_max_window_bits")) {
      if (!has_value || d->server_max_window_bits != -1) return -1;
      int b = parse_bits(value);
      if (b < 0) return -1;
      d->server_max_window_bits = b;
    } else if (str_eq(name, "client_max_window_bits")) {
      if (d->client_max_window_bits != -1) return -1;
      if (has_value) {
        int b = parse_bits(value);
        if (b < 0) return -1;
        d->client_max_window_bits = b;
      } else {
        d->client_max_window_bits = 0;
      }
    } else {
      return -1;
    }
    if (!trailing) break;
    if (i >= rest.n) return -1; /* ends with ';' */
  }
  return 0;
}

static void parse_extensions(const wse_request_t *req, wse_upgrade_t *out) {
  for (size_t h = 0; h < req->n_headers; h++) {
    if (!name_is(&req->headers[h], "sec-websocket-extensions")) continue;
    wse_str_t v = req->headers[h].value;
    size_t pos = 0;
    wse_str_t e;
    while (list_next(v.p, v.n, &pos, &e)) {
      size_t semi = 0;
      while (semi < e.n && e.p[semi] != ';') semi++;
      wse_str_t name = trim(e.p, semi);
      if (!str_eq(name, "permessage-deflate")) continue; /* unknown: ignore */
      wse_str_t rest = {e.p + semi, 0};
      if (semi < e.n) {
        rest.p = e.p + semi + 1;
        rest.n = e.n - semi - 1;
        if (!rest.n) { out->deflate_malformed = 1; continue; }
      }
      wse_deflate_params_t d;
      if (parse_deflate_params(rest, &d) < 0) {
        out->deflate_malformed = 1;
        continue;
      }
      if (out->n_deflate_offers < WSE_MAX_DEFLATE_OFFERS)
        out->deflate_offers[out->n_deflate_offers++] = d;
    }
  }
}

static int clamp_bits(int b) { return b < 8 ? 8 : b > 15 ? 15 : b; }

/* RFC 7692 §7.1. server_max_window_bits=8 is honoured: zlib cannot open a
 * raw deflate stream with a 256-byte window, but with a 512-byte one it
 * never emits a match distance beyond 512 - 262 = 250 (MAX_DIST), so that
 * stream inflates within 256 bytes; hosts compress with 9 bits for 8.
 * client_max_window_bits in the response is never above the client's
 * offered value (a client that offered 8 may refuse a larger one) and never
 * above our configured bound; our inflater uses at least 9 bits, which
 * decodes whatever a sender limited to 8 produces. When the configured
 * client bound is below 15 and the offer does not let us send
 * client_max_window_bits, the client could use a 32 KiB window we did not
 * budget for: that offer is declined, not accepted unbounded. */
void wse_deflate_negotiate(const wse_config_t *cfg, wse_upgrade_t *u) {
  u->deflate_accepted = 0;
  u->deflate.server_no_context_takeover = -1;
  u->deflate.client_no_context_takeover = -1;
  u->deflate.server_max_window_bits = -1;
  u->deflate.client_max_window_bits = -1;
  if (!cfg->deflate) return;
  int cfg_sb = clamp_bits(cfg->deflate_server_max_window_bits);
  int cfg_cb = clamp_bits(cfg->deflate_client_max_window_bits);
  for (size_t i = 0; i < u->n_deflate_offers; i++) {
    const wse_deflate_params_t *o = &u->deflate_offers[i];
    if (o->client_max_window_bits == -1 && cfg_cb < 15) continue;
    wse_deflate_params_t r;
    r.server_no_context_takeover =
        (cfg->deflate_server_no_context_takeover || o->server_no_context_takeover == 1) ? 1 : -1;
    r.client_no_context_takeover =
        (cfg->deflate_client_no_context_takeover || o->client_no_context_takeover == 1) ? 1 : -1;
    if (o->server_max_window_bits != -1)
      r.server_max_window_bits = o->server_max_window_bits < cfg_sb ? o->server_max_window_bits : cfg_sb;
    else
      r.server_max_window_bits = cfg_sb < 15 ? cfg_sb : -1;
    if (o->client_max_window_bits != -1) {
      int b = cfg_cb;
      if (o->client_max_window_bits > 0 && o->client_max_window_bits < b) b = o->client_max_window_bits;
      r.client_max_window_bits = b;
    } else {
      r.client_max_window_bits = -1;
    }
    u->deflate = r;
    u->deflate_accepted = 1;
    return;
  }
}

/* ---- output helpers -------------------------------------------------- */

typedef struct {
  char *p;
  size_t n, cap;
  int overflow;
} wbuf_t;

static void w_bytes(wbuf_t *w, const char *s, size_t n) {
  if (w->overflow || n > w->cap - w->n) { w->overflow = 1; return; }
  if (n) wse__memcpy(w->p + w->n, s, n);
  w->n += n;
}
static void w_str(wbuf_t *w, const char *s) { w_bytes(w, s, wse__strlen(s)); }
static void w_uint(wbuf_t *w, unsigned long v) {
  char t[24];
  size_t k = sizeof t;
  do { t[--k] = (char)('0' + v % 10); v /= 10; } while (v);
  w_bytes(w, t + k, sizeof t - k);
}

int wse_deflate_response(const wse_upgrade_t *u, char *buf, size_t cap) {
  wbuf_t w = {buf, 0, cap, 0};
  if (!u->deflate_accepted) return WSE_EINVAL;
  w_str(&w, "permessage-deflate");
  if (u->deflate.server_no_context_takeover > 0) w_str(&w, "; server_no_context_takeover");
  if (u->deflate.client_no_context_takeover > 0) w_str(&w, "; client_no_context_takeover");
  if (u->deflate.server_max_window_bits > 0) {
    w_str(&w, "; server_max_window_bits=");
    w_uint(&w, (unsigned long)u->deflate.server_max_window_bits);
  }
  if (u->deflate.client_max_window_bits > 0) {
    w_str(&w, "; client_max_window_bits=");
    w_uint(&w, (unsigned long)u->deflate.client_max_window_bits);
  }
  return w.overflow ? WSE_ENOSPC : (int)w.n;
}

int wse_json_error(const char *msg, size_t msg_len, char *buf, size_t cap) {
  wse_jw_t w = {buf, 0, cap};
  wse_jw_lit(&w, "{\"error\":");
  wse_jw_str(&w, msg, msg_len);
  wse_jw_lit(&w, "}");
  return w.n <= cap ? (int)w.n : WSE_ENOSPC;
}

/* The one writer of upgrade responses' headers: the app's 101 and its
 * rejections and wse_upgrade_response all come from here. */
int wse_upgrade_headers(const wse_config_t *cfg, const wse_upgrade_t *u,
                        char *buf, size_t cap) {
  wbuf_t w = {buf, 0, cap, 0};
  if (u->status == 101) {
    if (!WSE_WASM) { /* at the edge the runtime writes these three itself */
      w_str(&w, "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
      w_str(&w, u->accept);
      w_str(&w, "\r\n");
    }
    if (u->subprotocol >= 0 && cfg && (size_t)u->subprotocol < cfg->n_subprotocols) {
      w_str(&w, "Sec-WebSocket-Protocol: ");
      w_str(&w, cfg->subprotocols[u->subprotocol]);
      w_str(&w, "\r\n");
    }
    if (!WSE_WASM && u->deflate_accepted) {
      w_str(&w, "Sec-WebSocket-Extensions: ");
      if (!w.overflow) {
        int k = wse_deflate_response(u, w.p + w.n, w.cap - w.n);
        if (k < 0) w.overflow = 1;
        else w.n += (size_t)k;
      }
      w_str(&w, "\r\n");
    }
  } else if (u->allow_get) {
    w_str(&w, "Allow: GET\r\n");
  } else if (u->version13) {
    /* RFC 7231 §6.5.15: a 426 names the protocol to upgrade to, and an
     * Upgrade header comes with its Connection option (RFC 7230 §6.7); a
     * host that closes after the response adds its own "Connection: close"
     * (two Connection fields are one list). */
    w_str(&w, "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
  }
  return w.overflow ? WSE_ENOSPC : (int)w.n;
}

long wse_response_write(const wse_response_t *r, char *buf, size_t cap) {
  wbuf_t w = {buf, 0, cap, 0};
  int status = r->status >= 100 && r->status <= 999 ? r->status : 500;
  w_str(&w, "HTTP/1.1 ");
  w_uint(&w, (unsigned long)status);
  w_str(&w, " ");
  w_str(&w, wse_http_reason(status));
  w_str(&w, "\r\n");
  w_bytes(&w, r->headers, r->headers_len);
  if (status != 101) {
    if (r->body_len) w_str(&w, "Content-Type: application/json\r\n");
    w_str(&w, "Content-Length: ");
    w_uint(&w, (unsigned long)r->body_len);
    w_str(&w, "\r\n");
  }
  w_str(&w, "\r\n");
  w_bytes(&w, r->body, r->body_len);
  return w.overflow ? WSE_ENOSPC : (long)w.n;
}

int wse_upgrade_response(const wse_config_t *cfg, const wse_upgrade_t *u,
                         char *buf, size_t cap) {
  char hdr[512], body[160];
  int hn = wse_upgrade_headers(cfg, u, hdr, sizeof hdr - 20), bn = 0;
  if (hn < 0) return hn;
  if (u->status != 101) {
    const char *msg = u->error ? u->error : wse_http_reason(u->status);
    wse__memcpy(hdr + hn, "Connection: close\r\n", 19);
    hn += 19;
    bn = wse_json_error(msg, wse__strlen(msg), body, sizeof body);
    if (bn < 0) return bn;
  }
  wse_response_t r = {u->status, hdr, (size_t)hn, body, (size_t)bn};
  long n = wse_response_write(&r, buf, cap);
  return n < 0 ? WSE_ENOSPC : (int)n;
}

/* ---- validation ------------------------------------------------------ */

static int fail(wse_upgrade_t *out, int status, const char *msg) {
  out->status = status;
  out->error = msg;
  return WSE_EPROTO;
}

/* Authority part of an Origin ("scheme://host[:port]"), with the scheme's
 * default port removed so "https://a" matches "Host: a:443". */
static int origin_authority(wse_str_t origin, wse_str_t *auth, int *https) {
  size_t i = 0;
  while (i + 2 < origin.n && !(origin.p[i] == ':' && origin.p[i + 1] == '/' && origin.p[i + 2] == '/')) i++;
  if (i + 2 >= origin.n || i == 0) return -1;
  wse_str_t scheme = {origin.p, i};
  *https = str_eq(scheme, "https") || str_eq(scheme, "wss");
  auth->p = origin.p + i + 3;
  auth->n = origin.n - i - 3;
  if (!auth->n) return -1;
  for (size_t k = 0; k < auth->n; k++)
    if (auth->p[k] == '/' || auth->p[k] == '?' || auth->p[k] == '#' || auth->p[k] == '@') return -1;
  return 0;
}

static wse_str_t strip_default_port(wse_str_t a, int https) {
  const char *port = https ? ":443" : ":80";
  size_t pl = wse__strlen(port);
  if (a.n > pl && wse__memeq(a.p + a.n - pl, port, pl)) a.n -= pl;
  return a;
}

static int origin_allowed(const wse_config_t *cfg, const wse_upgrade_t *u, int present) {
  /* Origin is a browser mechanism: a request without one (curl, servers,
   * native clients) could forge any value anyway, so absence is allowed. */
  if (!present) return 1;
  wse_str_t origin = trim(u->origin.p, u->origin.n);
  if (cfg->n_allowed_origins) {
    for (size_t i = 0; i < cfg->n_allowed_origins; i++) {
      const char *a = cfg->allowed_origins[i];
      if (a[0] == '*' && a[1] == 0) return 1;
      if (wse__caseeq(origin.p, origin.n, a, wse__strlen(a))) return 1;
    }
    return 0;
  }
  wse_str_t oa, host = trim(u->host.p, u->host.n);
  int https;
  if (!host.n || origin_authority(origin, &oa, &https) < 0) return 0;
  oa = strip_default_port(oa, https);
  host = strip_default_port(host, https);
  return wse__caseeq(oa.p, oa.n, host.p, host.n);
}

int wse_upgrade_validate(const wse_config_t *cfg, const wse_request_t *req,
                         wse_upgrade_t *out) {
  wse__memset(out, 0, sizeof *out);
  out->status = 101;
  out->subprotocol = -1;
  out->deflate.server_no_context_takeover = -1;
  out->deflate.client_no_context_takeover = -1;
  out->deflate.server_max_window_bits = -1;
  out->deflate.client_max_window_bits = -1;
  hidx_t x;
  hx_index(req, &x);
  const wse_str_t *h = x.v[HX_HOST];
  if (h) out->host = *h;
  const wse_str_t *o = x.v[HX_ORIGIN];
  if (o) out->origin = *o;

  if (!(req->method.n == 3 && wse__memeq(req->method.p, "GET", 3))) {
    out->allow_get = 1;
    return fail(out, 405, "method not allowed (expected GET)");
  }
  if (req->http_version != 0 && req->http_version < 11)
    return fail(out, 400, "HTTP/1.1 or later required");
  if (req->http_version >= 11 && req->http_version < 20 && !h)
    return fail(out, 400, "missing Host header");
  if (!hx_has_token(req, &x, HX_UPGRADE, "upgrade", "websocket", 1))
    return fail(out, 400, "missing or invalid Upgrade: websocket header");
  if (!x.n[HX_CONNECTION])
    return fail(out, 400, "missing Connection: Upgrade header");
  if (!hx_has_token(req, &x, HX_CONNECTION, "connection", "upgrade", 1))
    return fail(out, 400, "Connection header lacks the upgrade token");

  if (!x.n[HX_VERSION]) return fail(out, 400, "missing Sec-WebSocket-Version header");
  for (size_t i = 0; i < req->n_headers; i++) {
    const wse_str_t *hv = &req->headers[i].value;
    if (x.n[HX_VERSION] == 1 ? hv != x.v[HX_VERSION]
                             : !name_is(&req->headers[i], "sec-websocket-version"))
      continue;
    wse_str_t v = trim(hv->p, hv->n);
    if (!(v.n == 2 && v.p[0] == '1' && v.p[1] == '3')) {
      out->version13 = 1;
      return fail(out, 426, "unsupported Sec-WebSocket-Version (expected 13)");
    }
  }

  if (!x.n[HX_KEY]) return fail(out, 400, "missing Sec-WebSocket-Key");
  if (x.n[HX_KEY] > 1) return fail(out, 400, "Sec-WebSocket-Key must appear exactly once");
  const wse_str_t *kh = x.v[HX_KEY];
  wse_str_t key = trim(kh->p, kh->n);
  uint8_t raw[18];
  if (key.n != 24 || wse_base64_decode(key.p, key.n, raw, sizeof raw) != 16)
    return fail(out, 400, "Sec-WebSocket-Key must be base64 of 16 bytes");

  if (x.n[HX_ORIGIN] > 1 || !origin_allowed(cfg, out, o != NULL))
    return fail(out, 403, "origin not allowed");

  for (size_t s = 0; s < cfg->n_subprotocols && out->subprotocol < 0; s++)
    if (hx_has_token(req, &x, HX_PROTOCOL, "sec-websocket-protocol", cfg->subprotocols[s], 0))
      out->subprotocol = (int)s;
  if (out->subprotocol < 0 && cfg->require_subprotocol)
    return fail(out, 400, "no supported subprotocol");

#if !WSE_WASM
  /* At the edge the runtime answers the handshake itself (WebSocketPair):
   * it computes Sec-WebSocket-Accept and negotiates permessage-deflate, so
   * the wasm build leaves both out (SHA-1 and the offer parser: ~2 KB of a
   * module that must stay under 32 KiB). */
  /* at the edge the runtime negotiates permessage-deflate: no offers */
  if (!WSE_WASM) parse_extensions(req, out);
  wse_accept_key(key.p, key.n, out->accept);
#else
  (void)parse_extensions;
#endif
  return WSE_OK;
}
