/* test_handshake.c — SHA-1, base64, the RFC 6455 §1.3 accept key, upgrade
 * validation with every error path and its exact status, token lists,
 * Origin policy, subprotocol choice, permessage-deflate offer parsing and
 * negotiation, and the exact bytes of every response. Every string of a
 * request (method, names, values) sits right before a PROT_NONE page. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS under -D_POSIX_C_SOURCE */
#include "test.h"

/* ---- SHA-1 and base64 --------------------------------------------------- */

static void hex(const uint8_t *d, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

static void check_sha1(const uint8_t *p, size_t n, const char *want) {
  guard_t g = guard_copy(p, n);
  uint8_t d[20];
  char h[41];
  wse_sha1(g.data, n, d);
  hex(d, 20, h);
  CHECK_STR(h, 40, want);
  guard_free(&g);
}

static void test_sha1(void) {
  check_sha1((const uint8_t *)"", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  check_sha1((const uint8_t *)"abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
  const char *s56 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  check_sha1((const uint8_t *)s56, 56, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  uint8_t *m = malloc(1000000);
  memset(m, 'a', 1000000);
  check_sha1(m, 1000000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  free(m);
  /* padding boundaries: bytes (i*7)&255 */
  static const struct { size_t n; const char *h; } v[] = {
      {55, "aecd1643c9903b9bae8cb94f53c50f8a4e18605b"},
      {56, "f5d65c621c02cc8e785159feff8088e3072da1bc"},
      {63, "4952f0fe097e4d6410ae9eab4855aa836caf3bff"},
      {64, "1e17ae1fc093e5daca033553c97a5192ca164486"},
      {65, "ac44f5dbe3e9b5d2733fc9537fcad715c3c20bc3"},
      {119, "b4a4e69060d0b1e7e8ebbf7041a4211c63438b57"},
      {120, "b651390c2996406336a3f6647e4b590c18cdd6f8"},
      {128, "516846cd40bd1fe431119c3b0a0f362957992ee8"},
  };
  uint8_t buf[128];
  for (size_t i = 0; i < 128; i++) buf[i] = (uint8_t)((i * 7) & 255);
  for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) check_sha1(buf, v[k].n, v[k].h);
}

static void test_base64(void) {
  static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  static const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (int i = 0; i < 7; i++) {
    char out[16];
    size_t n = wse_base64_encode((const uint8_t *)plain[i], strlen(plain[i]), out);
    CHECK_STR(out, n, enc[i]);
    guard_t g = guard_copy(enc[i], strlen(enc[i]));
    uint8_t dec[16];
    long d = wse_base64_decode((const char *)g.data, strlen(enc[i]), dec, sizeof dec);
    CHECK_EQ(d, (long)strlen(plain[i]));
    if (d > 0) CHECK_MEM(dec, (size_t)d, plain[i], strlen(plain[i]));
    guard_free(&g);
  }
  /* all byte values round-trip */
  uint8_t all[256], back[256];
  char e[400];
  for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
  size_t n = wse_base64_encode(all, 256, e);
  CHECK_EQ(n, 344);
  CHECK_EQ(wse_base64_decode(e, n, back, sizeof back), 256);
  CHECK_MEM(back, 256, all, 256);
  /* invalid */
  static const char *bad[] = {"Zg", "Zg=", "Zm9", "Z===", "Zg==Zg==", "Zm9v!A==", "Zh==",
                              "Zm9=", "=Zm9", "Zm 9v", "Zm9v\n", "Zm9vY==="};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    guard_t g = guard_copy(bad[i], strlen(bad[i]));
    uint8_t dec[16];
    long d = wse_base64_decode((const char *)g.data, strlen(bad[i]), dec, sizeof dec);
    if (d != -1) fprintf(stderr, "base64 accepted %s\n", bad[i]);
    CHECK_EQ(d, -1);
    guard_free(&g);
  }
  /* output capacity is respected */
  uint8_t small[2];
  CHECK_EQ(wse_base64_decode("Zm9v", 4, small, 2), -1);
  CHECK_EQ(wse_base64_decode("Zm8=", 4, small, 2), 2);
}

static void test_accept_key(void) {
  char out[29];
  guard_t g = guard_copy("dGhlIHNhbXBsZSBub25jZQ==", 24);
  wse_accept_key((const char *)g.data, 24, out);
  CHECK(strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
  guard_free(&g);
  /* second well-known pair (from the ws / autobahn test suites) */
  wse_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", 24, out);
  CHECK(strcmp(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=") == 0);
}

/* ---- building guarded requests --------------------------------------------------- */

typedef struct {
  wse_request_t req;
  wse_header_t h[32];
  guard_t g[70];
  int ng;
} greq_t;

static const char *gstr(greq_t *r, const char *s, size_t n) {
  r->g[r->ng] = guard_copy(s, n);
  return (const char *)r->g[r->ng++].data;
}

/* lines: "Name: value" strings, NULL-terminated */
static void build(greq_t *r, const char *method, int version, const char *const *lines) {
  memset(r, 0, sizeof *r);
  r->req.method.p = gstr(r, method, strlen(method));
  r->req.method.n = strlen(method);
  r->req.target.p = gstr(r, "/chat?room=1", 12);
  r->req.target.n = 12;
  r->req.http_version = version;
  size_t n = 0;
  for (; lines && lines[n]; n++) {
    const char *colon = strchr(lines[n], ':');
    size_t nl = (size_t)(colon - lines[n]);
    const char *v = colon + 1;
    while (*v == ' ') v++;
    r->h[n].name.p = gstr(r, lines[n], nl);
    r->h[n].name.n = nl;
    r->h[n].value.p = gstr(r, v, strlen(v));
    r->h[n].value.n = strlen(v);
  }
  r->req.headers = r->h;
  r->req.n_headers = n;
}

static void release(greq_t *r) {
  for (int i = 0; i < r->ng; i++) guard_free(&r->g[i]);
}

static wse_config_t cfg;

#define KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
#define BASE "Host: example.com", "Upgrade: websocket", "Connection: Upgrade", KEY, \
             "Sec-WebSocket-Version: 13"

/* validate a request and return the outcome; checks the return code agrees */
static wse_upgrade_t check_req(const char *method, int version, const char *const *lines) {
  greq_t r;
  build(&r, method, version, lines);
  wse_upgrade_t u;
  int rc = wse_upgrade_validate(&cfg, &r.req, &u);
  CHECK_EQ(rc, u.status == 101 ? WSE_OK : WSE_EPROTO);
  if (u.status == 101) CHECK(u.error == NULL);
  else CHECK(u.error != NULL);
  /* any error response fits in 512 bytes */
  char buf[512];
  CHECK(wse_upgrade_response(&cfg, &u, buf, sizeof buf) > 0);
  release(&r);
  return u;
}

#define REQ(...) ((const char *const[]){__VA_ARGS__, NULL})

static void expect_status(const char *const *lines, int status, const char *msg) {
  wse_upgrade_t u = check_req("GET", 11, lines);
  CHECK_EQ(u.status, status);
  if (msg) {
    CHECK(u.error && strcmp(u.error, msg) == 0);
    if (u.error && strcmp(u.error, msg)) fprintf(stderr, "  error was: %s\n", u.error);
  }
}

static void test_validate_ok(void) {
  /* what Chrome sends */
  wse_upgrade_t u = check_req("GET", 11, REQ("Host: example.com", "Connection: keep-alive, Upgrade",
      "Pragma: no-cache", "Upgrade: websocket", "Origin: http://example.com",
      "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"));
  CHECK_EQ(u.status, 101);
  CHECK(strcmp(u.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
  CHECK_EQ(u.subprotocol, -1);
  CHECK_EQ(u.n_deflate_offers, 1);
  CHECK_EQ(u.deflate_offers[0].client_max_window_bits, 0);
  CHECK_EQ(u.deflate_offers[0].server_max_window_bits, -1);
  CHECK_EQ(u.deflate_accepted, 0);
  CHECK_EQ(u.allow_get, 0);
  CHECK_EQ(u.version13, 0);
  /* host and origin point into the request (checked before it is released) */
  greq_t r;
  build(&r, "GET", 11, REQ(BASE, "Origin: http://example.com"));
  CHECK_EQ(wse_upgrade_validate(&cfg, &r.req, &u), WSE_OK);
  CHECK_STR(u.host.p, u.host.n, "example.com");
  CHECK_STR(u.origin.p, u.origin.n, "http://example.com");
  CHECK(u.host.p == r.h[0].value.p);
  release(&r);

  /* Firefox: "keep-alive, Upgrade"; header names in any case; tokens in any case */
  u = check_req("GET", 11, REQ("HOST: example.com", "upgrade: WebSocket",
      "CONNECTION: keep-alive, upgrade", "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
      "SEC-WEBSOCKET-VERSION: 13"));
  CHECK_EQ(u.status, 101);
  /* token lists and repeated headers */
  u = check_req("GET", 11, REQ("Host: example.com", "Upgrade: foo/1, websocket",
      "Connection: keep-alive", "Connection: Upgrade", KEY, "Sec-WebSocket-Version: 13"));
  CHECK_EQ(u.status, 101);
  u = check_req("GET", 11, REQ("Host: example.com", "Upgrade: h2c", "Upgrade: websocket",
      "Connection: ,, Upgrade ,", KEY, "Sec-WebSocket-Version:  13 "));
  CHECK_EQ(u.status, 101);
  u = check_req("GET", 11, REQ("Host: example.com", "Upgrade:\twebsocket\t",
      "Connection: close,\tUpgrade", KEY, "Sec-WebSocket-Version: 13",
      "Sec-WebSocket-Version: 13"));
  CHECK_EQ(u.status, 101);
  /* HTTP version unknown (Workers): no version or Host requirement */
  u = check_req("GET", 0, REQ("Upgrade: websocket", "Connection: Upgrade", KEY,
      "Sec-WebSocket-Version: 13"));
  CHECK_EQ(u.status, 101);
  /* HTTP/2+ style version numbers pass the version check */
  u = check_req("GET", 20, REQ(BASE));
  CHECK_EQ(u.status, 101);
}

static void test_validate_errors(void) {
  wse_upgrade_t u;
  /* 405 for anything but GET, with Allow: GET */
  static const char *methods[] = {"POST", "HEAD", "PUT", "get", "GETX", "OPTIONS"};
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    u = check_req(methods[i], 11, REQ(BASE));
    CHECK_EQ(u.status, 405);
    CHECK_EQ(u.allow_get, 1);
    CHECK(strcmp(u.error, "method not allowed (expected GET)") == 0);
  }
  /* HTTP/1.0 */
  u = check_req("GET", 10, REQ(BASE));
  CHECK_EQ(u.status, 400);
  CHECK(strcmp(u.error, "HTTP/1.1 or later required") == 0);
  u = check_req("GET", 9, REQ(BASE));
  CHECK_EQ(u.status, 400);
  /* HTTP/1.1 without Host */
  expect_status(REQ("Upgrade: websocket", "Connection: Upgrade", KEY, "Sec-WebSocket-Version: 13"),
                400, "missing Host header");
  /* a plain request (no upgrade at all) */
  expect_status(REQ("Host: example.com", "Accept: text/html"), 400,
                "missing or invalid Upgrade: websocket header");
  expect_status(REQ("Host: example.com", "Upgrade: h2c", "Connection: Upgrade", KEY,
                    "Sec-WebSocket-Version: 13"), 400, "missing or invalid Upgrade: websocket header");
  expect_status(REQ("Host: example.com", "Upgrade: websockets", "Connection: Upgrade", KEY,
                    "Sec-WebSocket-Version: 13"), 400, "missing or invalid Upgrade: websocket header");
  expect_status(REQ("Host: example.com", "Upgrade: web socket", "Connection: Upgrade", KEY,
                    "Sec-WebSocket-Version: 13"), 400, "missing or invalid Upgrade: websocket header");
  /* Connection */
  expect_status(REQ("Host: example.com", "Upgrade: websocket", KEY, "Sec-WebSocket-Version: 13"),
                400, "missing Connection: Upgrade header");
  expect_status(REQ("Host: example.com", "Upgrade: websocket", "Connection: keep-alive", KEY,
                    "Sec-WebSocket-Version: 13"), 400, "Connection header lacks the upgrade token");
  expect_status(REQ("Host: example.com", "Upgrade: websocket", "Connection: upgrade-insecure", KEY,
                    "Sec-WebSocket-Version: 13"), 400, "Connection header lacks the upgrade token");
  expect_status(REQ("Host: example.com", "Upgrade: websocket", "Connection: \"upgrade\"", KEY,
                    "Sec-WebSocket-Version: 13"), 400, "Connection header lacks the upgrade token");
  /* Sec-WebSocket-Version: a wrong value is 426 with the version header */
  static const char *versions[] = {"Sec-WebSocket-Version: 8", "Sec-WebSocket-Version: 12",
                                   "Sec-WebSocket-Version: 14", "Sec-WebSocket-Version: 13, 8",
                                   "Sec-WebSocket-Version: 013", "Sec-WebSocket-Version: ",
                                   "Sec-WebSocket-Version: 1 3"};
  for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
    u = check_req("GET", 11, REQ("Host: example.com", "Upgrade: websocket", "Connection: Upgrade",
                                 KEY, versions[i]));
    CHECK_EQ(u.status, 426);
    CHECK_EQ(u.version13, 1);
    CHECK(strcmp(u.error, "unsupported Sec-WebSocket-Version (expected 13)") == 0);
  }
  u = check_req("GET", 11, REQ("Host: example.com", "Upgrade: websocket", "Connection: Upgrade",
                               KEY, "Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"));
  CHECK_EQ(u.status, 426);
  /* missing version: malformed handshake, 400 */
  u = check_req("GET", 11, REQ("Host: example.com", "Upgrade: websocket", "Connection: Upgrade", KEY));
  CHECK_EQ(u.status, 400);
  CHECK_EQ(u.version13, 0);
  CHECK(strcmp(u.error, "missing Sec-WebSocket-Version header") == 0);
  /* Sec-WebSocket-Key */
  expect_status(REQ("Host: example.com", "Upgrade: websocket", "Connection: Upgrade",
                    "Sec-WebSocket-Version: 13"), 400, "missing Sec-WebSocket-Key");
  expect_status(REQ(BASE, KEY), 400, "Sec-WebSocket-Key must appear exactly once");
  static const char *keys[] = {
      "Sec-WebSocket-Key: ",
      "Sec-WebSocket-Key: hello",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ",      /* no padding */
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=",     /* bad padding */
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ===",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZSE=",    /* 17 bytes */
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j",        /* 15 bytes */
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==",    /* non-canonical */
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ!=",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j ZQ==",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==dGhlIHNhbXBsZSBub25jZQ==",
  };
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    expect_status(REQ("Host: example.com", "Upgrade: websocket", "Connection: Upgrade", keys[i],
                      "Sec-WebSocket-Version: 13"), 400, "Sec-WebSocket-Key must be base64 of 16 bytes");
  /* a key with surrounding whitespace is trimmed */
  u = check_req("GET", 11, REQ("Host: example.com", "Upgrade: websocket", "Connection: Upgrade",
                               "Sec-WebSocket-Key:  dGhlIHNhbXBsZSBub25jZQ== \t",
                               "Sec-WebSocket-Version: 13"));
  CHECK_EQ(u.status, 101);
  CHECK(strcmp(u.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);

  /* order: the first failing rule decides */
  u = check_req("POST", 10, REQ("Sec-WebSocket-Version: 8"));
  CHECK_EQ(u.status, 405);
  u = check_req("GET", 10, REQ("Sec-WebSocket-Version: 8"));
  CHECK_EQ(u.status, 400);
  u = check_req("GET", 11, REQ("Host: a", "Upgrade: websocket", "Connection: Upgrade",
                               "Sec-WebSocket-Version: 8", "Sec-WebSocket-Key: x"));
  CHECK_EQ(u.status, 426);
  u = check_req("GET", 11, REQ(BASE, "Origin: http://evil.example"));
  CHECK_EQ(u.status, 403);
  u = check_req("GET", 11, REQ("Host: a", "Upgrade: websocket", "Connection: Upgrade",
                               "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: x",
                               "Origin: http://evil.example"));
  CHECK_EQ(u.status, 400); /* key before origin */
}

static void test_origin(void) {
  /* default policy: absent, or same host as Host */
  expect_status(REQ(BASE), 101, NULL);
  expect_status(REQ(BASE, "Origin: http://example.com"), 101, NULL);
  expect_status(REQ(BASE, "Origin: https://example.com"), 101, NULL);
  expect_status(REQ(BASE, "Origin: HTTPS://Example.COM"), 101, NULL);
  expect_status(REQ(BASE, "Origin: https://example.com:443"), 101, NULL);
  expect_status(REQ(BASE, "Origin: http://example.com:80"), 101, NULL);
  expect_status(REQ(BASE, "Origin: http://example.com:8080"), 403, "origin not allowed");
  expect_status(REQ(BASE, "Origin: https://example.com:80"), 403, "origin not allowed");
  expect_status(REQ(BASE, "Origin: http://evil.com"), 403, "origin not allowed");
  expect_status(REQ(BASE, "Origin: http://example.com.evil.com"), 403, "origin not allowed");
  expect_status(REQ(BASE, "Origin: http://evil.com/example.com"), 403, "origin not allowed");
  expect_status(REQ(BASE, "Origin: http://example.com@evil.com"), 403, "origin not allowed");
  expect_status(REQ(BASE, "Origin: null"), 403, "origin not allowed");
  expect_status(REQ(BASE, "Origin: example.com"), 403, "origin not allowed");
  expect_status(REQ(BASE, "Origin: "), 403, "origin not allowed");
  expect_status(REQ(BASE, "Origin: http://example.com", "Origin: http://example.com"), 403,
                "origin not allowed");
  const char *const ports[] = {"Host: 127.0.0.1:4040", "Upgrade: websocket", "Connection: Upgrade",
                               KEY, "Sec-WebSocket-Version: 13", "Origin: http://127.0.0.1:4040", NULL};
  expect_status(ports, 101, NULL);
  const char *const v6[] = {"Host: [::1]:8787", "Upgrade: websocket", "Connection: Upgrade", KEY,
                            "Sec-WebSocket-Version: 13", "Origin: http://[::1]:8787", NULL};
  expect_status(v6, 101, NULL);
  const char *const hport[] = {"Host: example.com:443", "Upgrade: websocket", "Connection: Upgrade",
                               KEY, "Sec-WebSocket-Version: 13", "Origin: https://example.com", NULL};
  expect_status(hport, 101, NULL);

  /* an allow-list: exact (case-insensitive) match */
  const char *const allowed[] = {"https://app.example.com", "http://localhost:3000"};
  cfg.allowed_origins = allowed;
  cfg.n_allowed_origins = 2;
  expect_status(REQ(BASE, "Origin: https://app.example.com"), 101, NULL);
  expect_status(REQ(BASE, "Origin: HTTPS://APP.EXAMPLE.COM"), 101, NULL);
  expect_status(REQ(BASE, "Origin: http://localhost:3000"), 101, NULL);
  expect_status(REQ(BASE, "Origin: http://localhost:3001"), 403, "origin not allowed");
  expect_status(REQ(BASE, "Origin: https://example.com"), 403, "origin not allowed");
  expect_status(REQ(BASE, "Origin: https://app.example.com.evil"), 403, "origin not allowed");
  expect_status(REQ(BASE), 101, NULL); /* non-browser clients send none */
  const char *const star[] = {"*"};
  cfg.allowed_origins = star;
  cfg.n_allowed_origins = 1;
  expect_status(REQ(BASE, "Origin: http://anything.example"), 101, NULL);
  expect_status(REQ(BASE, "Origin: null"), 101, NULL);
  cfg.allowed_origins = NULL;
  cfg.n_allowed_origins = 0;
}

static void test_subprotocols(void) {
  const char *const protos[] = {"chat.v2", "chat"};
  cfg.subprotocols = protos;
  cfg.n_subprotocols = 2;
  wse_upgrade_t u = check_req("GET", 11, REQ(BASE, "Sec-WebSocket-Protocol: chat, chat.v2"));
  CHECK_EQ(u.subprotocol, 0); /* server preference, not client order */
  u = check_req("GET", 11, REQ(BASE, "Sec-WebSocket-Protocol: chat"));
  CHECK_EQ(u.subprotocol, 1);
  u = check_req("GET", 11, REQ(BASE, "Sec-WebSocket-Protocol: mqtt", "Sec-WebSocket-Protocol: chat"));
  CHECK_EQ(u.subprotocol, 1);
  u = check_req("GET", 11, REQ(BASE, "Sec-WebSocket-Protocol: Chat, CHAT.V2"));
  CHECK_EQ(u.subprotocol, -1); /* subprotocol names are case-sensitive */
  u = check_req("GET", 11, REQ(BASE, "Sec-WebSocket-Protocol: chat.v"));
  CHECK_EQ(u.subprotocol, -1);
  u = check_req("GET", 11, REQ(BASE));
  CHECK_EQ(u.subprotocol, -1);
  CHECK_EQ(u.status, 101);
  cfg.require_subprotocol = 1;
  expect_status(REQ(BASE), 400, "no supported subprotocol");
  expect_status(REQ(BASE, "Sec-WebSocket-Protocol: mqtt"), 400, "no supported subprotocol");
  expect_status(REQ(BASE, "Sec-WebSocket-Protocol: mqtt,chat"), 101, NULL);
  cfg.require_subprotocol = 0;
  /* the 101 names the chosen one */
  greq_t r;
  build(&r, "GET", 11, REQ(BASE, "Sec-WebSocket-Protocol: chat"));
  wse_upgrade_validate(&cfg, &r.req, &u);
  char buf[512];
  int n = wse_upgrade_response(&cfg, &u, buf, sizeof buf);
  CHECK_STR(buf, n, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                    "Sec-WebSocket-Protocol: chat\r\n\r\n");
  release(&r);
  cfg.subprotocols = NULL;
  cfg.n_subprotocols = 0;
}

/* ---- permessage-deflate ---------------------------------------------------------- */

static wse_upgrade_t ext(const char *line) {
  return check_req("GET", 11, REQ(BASE, line));
}

static void test_deflate_offers(void) {
  wse_upgrade_t u = ext("Sec-WebSocket-Extensions: permessage-deflate");
  CHECK_EQ(u.n_deflate_offers, 1);
  CHECK_EQ(u.deflate_malformed, 0);
  CHECK_EQ(u.deflate_offers[0].server_no_context_takeover, -1);
  CHECK_EQ(u.deflate_offers[0].client_no_context_takeover, -1);
  CHECK_EQ(u.deflate_offers[0].server_max_window_bits, -1);
  CHECK_EQ(u.deflate_offers[0].client_max_window_bits, -1);
  u = ext("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
          "client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12, "
          "permessage-deflate; client_max_window_bits, x-webkit-deflate-frame");
  CHECK_EQ(u.n_deflate_offers, 2);
  CHECK_EQ(u.deflate_malformed, 0);
  CHECK_EQ(u.deflate_offers[0].server_no_context_takeover, 1);
  CHECK_EQ(u.deflate_offers[0].client_no_context_takeover, 1);
  CHECK_EQ(u.deflate_offers[0].server_max_window_bits, 10);
  CHECK_EQ(u.deflate_offers[0].client_max_window_bits, 12);
  CHECK_EQ(u.deflate_offers[1].client_max_window_bits, 0);
  /* quoted values, any case of names, odd spacing */
  u = ext("Sec-WebSocket-Extensions: Permessage-Deflate ;server_max_window_bits=\"9\" ; "
          "CLIENT_MAX_WINDOW_BITS = \"15\"");
  CHECK_EQ(u.n_deflate_offers, 1);
  CHECK_EQ(u.deflate_offers[0].server_max_window_bits, 9);
  CHECK_EQ(u.deflate_offers[0].client_max_window_bits, 15);
  /* offers split over repeated headers */
  u = check_req("GET", 11, REQ(BASE, "Sec-WebSocket-Extensions: foo",
                               "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8",
                               "Sec-WebSocket-Extensions: permessage-deflate"));
  CHECK_EQ(u.n_deflate_offers, 2);
  CHECK_EQ(u.deflate_offers[0].server_max_window_bits, 8);
  /* malformed: each makes only its own offer invalid */
  static const char *bad[] = {
      "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
      "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
      "permessage-deflate; server_max_window_bits",
      "permessage-deflate; server_max_window_bits=7",
      "permessage-deflate; server_max_window_bits=16",
      "permessage-deflate; server_max_window_bits=08",
      "permessage-deflate; server_max_window_bits=1a",
      "permessage-deflate; client_max_window_bits=0",
      "permessage-deflate; client_max_window_bits=\"\"",
      "permessage-deflate; client_no_context_takeover=1",
      "permessage-deflate; server_no_context_takeover=\"\"",
      "permessage-deflate; unknown_param",
      "permessage-deflate; max_window_bits=10",
      "permessage-deflate;",
      "permessage-deflate; ; server_no_context_takeover",
      "permessage-deflate; server_no_context_takeover;",
      "permessage-deflate; =10",
      "permessage-deflate; client_max_window_bits=1 0",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char line[200];
    snprintf(line, sizeof line, "Sec-WebSocket-Extensions: %s, permessage-deflate", bad[i]);
    u = ext(line);
    if (u.n_deflate_offers != 1 || !u.deflate_malformed) fprintf(stderr, "  offer: %s\n", bad[i]);
    CHECK_EQ(u.status, 101);
    CHECK_EQ(u.deflate_malformed, 1);
    CHECK_EQ(u.n_deflate_offers, 1); /* only the trailing valid offer */
  }
  /* an unterminated quote swallows the rest of the list: one bad offer */
  u = ext("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=\"10, permessage-deflate");
  CHECK_EQ(u.deflate_malformed, 1);
  CHECK_EQ(u.n_deflate_offers, 0);
  /* more offers than fit are dropped, not overflowed */
  u = ext("Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate, permessage-deflate, "
          "permessage-deflate, permessage-deflate, permessage-deflate");
  CHECK_EQ(u.n_deflate_offers, WSE_MAX_DEFLATE_OFFERS);
}

static int negotiate(const char *line, char *resp, size_t cap) {
  wse_upgrade_t u = ext(line);
  wse_deflate_negotiate(&cfg, &u);
  if (!u.deflate_accepted) return 0;
  int n = wse_deflate_response(&u, resp, cap);
  CHECK(n > 0);
  resp[n > 0 ? n : 0] = 0;
  return 1;
}

#define NEG(line, want)                                             \
  do {                                                              \
    char _r[200];                                                   \
    int _ok = negotiate("Sec-WebSocket-Extensions: " line, _r, 199); \
    if (want) {                                                     \
      CHECK(_ok);                                                   \
      if (_ok) CHECK_STR(_r, strlen(_r), (const char *)(want));     \
    } else {                                                        \
      CHECK(!_ok);                                                  \
    }                                                               \
  } while (0)

static void test_deflate_negotiate(void) {
  NEG("permessage-deflate", "permessage-deflate");
  NEG("permessage-deflate; client_max_window_bits", "permessage-deflate; client_max_window_bits=15");
  NEG("permessage-deflate; client_max_window_bits=10", "permessage-deflate; client_max_window_bits=10");
  /* never answer above the client's value (npm ws refuses that); 8 is
   * echoed, the inflater decodes it with a 9-bit window */
  NEG("permessage-deflate; client_max_window_bits=8", "permessage-deflate; client_max_window_bits=8");
  NEG("permessage-deflate; client_max_window_bits=9", "permessage-deflate; client_max_window_bits=9");
  NEG("permessage-deflate; client_max_window_bits=15", "permessage-deflate; client_max_window_bits=15");
  /* every parameter at once */
  NEG("permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
      "server_max_window_bits=10; client_max_window_bits=11",
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
      "server_max_window_bits=10; client_max_window_bits=11");
  NEG("permessage-deflate; server_max_window_bits=15", "permessage-deflate; server_max_window_bits=15");
  /* a malformed or duplicate parameter declines that offer, never ignored */
  NEG("permessage-deflate; server_max_window_bits=10; server_max_window_bits=10", NULL);
  NEG("permessage-deflate; client_no_context_takeover; client_no_context_takeover", NULL);
  NEG("permessage-deflate; server_max_window_bits=7", NULL);
  NEG("permessage-deflate; client_max_window_bits=16, permessage-deflate; server_no_context_takeover",
      "permessage-deflate; server_no_context_takeover");
  NEG("permessage-deflate; server_no_context_takeover",
      "permessage-deflate; server_no_context_takeover");
  NEG("permessage-deflate; client_no_context_takeover",
      "permessage-deflate; client_no_context_takeover");
  NEG("permessage-deflate; server_max_window_bits=12", "permessage-deflate; server_max_window_bits=12");
  NEG("permessage-deflate; server_max_window_bits=9", "permessage-deflate; server_max_window_bits=9");
  /* server_max_window_bits=8 is honoured (the host compresses with 9 bits,
   * whose distances stay within 250 bytes) */
  NEG("permessage-deflate; server_max_window_bits=8", "permessage-deflate; server_max_window_bits=8");
  NEG("permessage-deflate; server_max_window_bits=8, permessage-deflate; client_max_window_bits",
      "permessage-deflate; server_max_window_bits=8");
  NEG("permessage-deflate; server_max_window_bits=8; client_max_window_bits=8; client_no_context_takeover",
      "permessage-deflate; client_no_context_takeover; server_max_window_bits=8; client_max_window_bits=8");
  /* malformed offers are skipped, a later valid one is taken */
  NEG("permessage-deflate; foo, permessage-deflate", "permessage-deflate");
  NEG("permessage-deflate; foo", NULL);
  NEG("x-webkit-deflate-frame", NULL);
  /* configured limits */
  cfg.deflate_server_no_context_takeover = 1;
  cfg.deflate_client_no_context_takeover = 1;
  NEG("permessage-deflate", "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
  cfg.deflate_server_no_context_takeover = 0;
  cfg.deflate_client_no_context_takeover = 0;
  cfg.deflate_server_max_window_bits = 12;
  NEG("permessage-deflate", "permessage-deflate; server_max_window_bits=12");
  NEG("permessage-deflate; server_max_window_bits=10", "permessage-deflate; server_max_window_bits=10");
  NEG("permessage-deflate; server_max_window_bits=14", "permessage-deflate; server_max_window_bits=12");
  cfg.deflate_server_max_window_bits = 15;
  cfg.deflate_client_max_window_bits = 11;
  /* a client that did not offer client_max_window_bits cannot be limited:
   * declined rather than accepted with a window we did not budget for */
  NEG("permessage-deflate", NULL);
  NEG("permessage-deflate, permessage-deflate; client_max_window_bits",
      "permessage-deflate; client_max_window_bits=11");
  NEG("permessage-deflate; client_max_window_bits", "permessage-deflate; client_max_window_bits=11");
  NEG("permessage-deflate; client_max_window_bits=8", "permessage-deflate; client_max_window_bits=8");
  NEG("permessage-deflate; client_max_window_bits=10", "permessage-deflate; client_max_window_bits=10");
  NEG("permessage-deflate; client_max_window_bits=13", "permessage-deflate; client_max_window_bits=11");
  cfg.deflate_client_max_window_bits = 15;
  /* disabled */
  cfg.deflate = 0;
  NEG("permessage-deflate", NULL);
  cfg.deflate = 1;
  /* the full 101 with the extension */
  greq_t r;
  build(&r, "GET", 11, REQ(BASE, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"));
  wse_upgrade_t u;
  wse_upgrade_validate(&cfg, &r.req, &u);
  wse_deflate_negotiate(&cfg, &u);
  char buf[512];
  int n = wse_upgrade_response(&cfg, &u, buf, sizeof buf);
  const char *want = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                     "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=15\r\n\r\n";
  CHECK_STR(buf, n, want);
  /* every too-small buffer is refused */
  int bad = 0;
  for (size_t cap = 0; cap < strlen(want); cap++)
    if (wse_upgrade_response(&cfg, &u, buf, cap) != WSE_ENOSPC) bad++;
  CHECK_EQ(bad, 0);
  CHECK_EQ(wse_deflate_response(&u, buf, 10), WSE_ENOSPC);
  release(&r);
  /* not negotiated: no extension header, and wse_deflate_response refuses */
  wse_upgrade_t none;
  memset(&none, 0, sizeof none);
  CHECK(wse_deflate_response(&none, buf, sizeof buf) < 0);
}

/* ---- responses ------------------------------------------------------------------- */

static void test_responses(void) {
  char buf[512];
  wse_upgrade_t u = check_req("GET", 11, REQ(BASE));
  int n = wse_upgrade_response(&cfg, &u, buf, sizeof buf);
  CHECK_STR(buf, n, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
  u = check_req("POST", 11, REQ(BASE));
  n = wse_upgrade_response(&cfg, &u, buf, sizeof buf);
  CHECK_STR(buf, n, "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\nConnection: close\r\n"
                    "Content-Type: application/json\r\nContent-Length: 45\r\n\r\n"
                    "{\"error\":\"method not allowed (expected GET)\"}");
  u = check_req("GET", 11, REQ("Host: example.com"));
  n = wse_upgrade_response(&cfg, &u, buf, sizeof buf);
  CHECK_STR(buf, n, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
                    "Content-Type: application/json\r\nContent-Length: 56\r\n\r\n"
                    "{\"error\":\"missing or invalid Upgrade: websocket header\"}");
  u = check_req("GET", 11, REQ("Host: a", "Upgrade: websocket", "Connection: Upgrade", KEY,
                               "Sec-WebSocket-Version: 8"));
  n = wse_upgrade_response(&cfg, &u, buf, sizeof buf);
  CHECK_STR(buf, n, "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nConnection: close\r\n"
                    "Content-Type: application/json\r\nContent-Length: 59\r\n\r\n"
                    "{\"error\":\"unsupported Sec-WebSocket-Version (expected 13)\"}");
  u = check_req("GET", 11, REQ(BASE, "Origin: http://evil.example"));
  n = wse_upgrade_response(&cfg, &u, buf, sizeof buf);
  CHECK_STR(buf, n, "HTTP/1.1 403 Forbidden\r\nConnection: close\r\n"
                    "Content-Type: application/json\r\nContent-Length: 30\r\n\r\n{\"error\":\"origin not allowed\"}");
  /* Content-Length always matches the body */
  const char *body = strstr(buf, "\r\n\r\n") + 4;
  CHECK_EQ((size_t)(buf + n - body), 30);
  /* a hook-set error with characters that need escaping */
  u.status = 400;
  u.error = "bad \"name\"\n";
  n = wse_upgrade_response(&cfg, &u, buf, sizeof buf);
  CHECK_STR(buf, n, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
                    "Content-Type: application/json\r\nContent-Length: 26\r\n\r\n"
                    "{\"error\":\"bad \\\"name\\\"\\n\"}");
  int bad = 0;
  for (int cap = 0; cap < n; cap++)
    if (wse_upgrade_response(&cfg, &u, buf, (size_t)cap) != WSE_ENOSPC) bad++;
  CHECK_EQ(bad, 0);
}

static void test_json_error(void) {
  char buf[128];
  int n = wse_json_error("plain", 5, buf, sizeof buf);
  CHECK_STR(buf, n, "{\"error\":\"plain\"}");
  n = wse_json_error("q\"b\\s/\x01\x1f\t\x7f\xc3\xa9", 12, buf, sizeof buf);
  CHECK_STR(buf, n, "{\"error\":\"q\\\"b\\\\s/\\u0001\\u001f\\t\x7f\xc3\xa9\"}");
  n = wse_json_error("a\0b", 3, buf, sizeof buf);
  CHECK_STR(buf, n, "{\"error\":\"a\\u0000b\"}");
  n = wse_json_error("", 0, buf, sizeof buf);
  CHECK_STR(buf, n, "{\"error\":\"\"}");
  CHECK_EQ(wse_json_error("plain", 5, buf, 16), WSE_ENOSPC);
  CHECK_EQ(wse_json_error("plain", 5, buf, 17), 17);
}

static void test_header_helpers(void) {
  greq_t r;
  build(&r, "GET", 11, REQ("Host: h", "Connection: keep-alive", "connection: Upgrade",
                           "X-List: a, b ,c", "Upgrade: WebSocket"));
  const wse_str_t *h = wse_header_get(&r.req, "CONNECTION");
  CHECK(h != NULL);
  if (h) CHECK_STR(h->p, h->n, "keep-alive");
  CHECK(wse_header_get(&r.req, "missing") == NULL);
  CHECK_EQ(wse_header_has_token(&r.req, "connection", "upgrade"), 1);
  CHECK_EQ(wse_header_has_token(&r.req, "x-list", "b"), 1);
  CHECK_EQ(wse_header_has_token(&r.req, "x-list", "C"), 1);
  CHECK_EQ(wse_header_has_token(&r.req, "x-list", "a, b"), 0);
  CHECK_EQ(wse_header_has_token(&r.req, "x-list", "d"), 0);
  CHECK_EQ(wse_header_has_token(&r.req, "host", "h"), 1);
  CHECK_EQ(wse_is_upgrade_request(&r.req), 1);
  release(&r);
  build(&r, "GET", 11, REQ("Host: h", "Accept: */*"));
  CHECK_EQ(wse_is_upgrade_request(&r.req), 0);
  release(&r);
  build(&r, "GET", 11, NULL);
  CHECK_EQ(wse_is_upgrade_request(&r.req), 0);
  wse_upgrade_t u;
  CHECK_EQ(wse_upgrade_validate(&cfg, &r.req, &u), WSE_EPROTO);
  CHECK_EQ(u.status, 400);
  release(&r);
}

int main(void) {
  wse_config_default(&cfg);
  test_sha1();
  test_base64();
  test_accept_key();
  test_validate_ok();
  test_validate_errors();
  test_origin();
  test_subprotocols();
  test_deflate_offers();
  test_deflate_negotiate();
  test_responses();
  test_json_error();
  test_header_helpers();
  TEST_REPORT();
}
