/* test_common.c — error strings, configuration defaults, the close-code
 * table (every code 0..5000 against RFC 6455 §7.4), error -> close code
 * mapping, and the allocator fallback. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS under -D_POSIX_C_SOURCE */
#include "test.h"
#include "../../wasm/src/internal.h"

static void test_strerror(void) {
  static const int codes[] = {WSE_OK, WSE_EAGAIN, WSE_ENOMEM, WSE_EINVAL, WSE_EPROTO, WSE_EUTF8,
                              WSE_ETOOBIG, WSE_ECLOSED, WSE_ENOSPC, WSE_ENOTFOUND, WSE_EEXIST,
                              WSE_EPOLICY, WSE_ATT_ETRUNC, WSE_ATT_EMAGIC, WSE_ATT_EVERSION,
                              WSE_ATT_ECHECKSUM, WSE_ATT_ESIZE, WSE_ATT_EFIELD};
  size_t n = sizeof codes / sizeof codes[0];
  const char *unknown = wse_strerror(-999);
  CHECK(unknown != NULL);
  for (size_t i = 0; i < n; i++) {
    const char *s = wse_strerror(codes[i]);
    CHECK(s != NULL && s[0]);
    CHECK(strcmp(s, unknown) != 0);
    for (size_t j = 0; j < i; j++) CHECK(strcmp(s, wse_strerror(codes[j])) != 0);
  }
  CHECK(strcmp(wse_strerror(WSE_EUTF8), "invalid UTF-8") == 0);
}

static void test_config_default(void) {
  wse_config_t c;
  memset(&c, 0xAB, sizeof c);
  wse_config_default(&c);
  CHECK(c.max_frame_size == 16u * 1024 * 1024);
  CHECK(c.max_message_size == 64u * 1024 * 1024);
  CHECK_EQ(c.write_buffer_size, 128 * 1024);
  CHECK_EQ(c.max_write_buffer_size, 1024 * 1024);
  CHECK(c.subprotocols == NULL);
  CHECK_EQ(c.n_subprotocols, 0);
  CHECK_EQ(c.require_subprotocol, 0);
  CHECK(c.allowed_origins == NULL);
  CHECK_EQ(c.n_allowed_origins, 0);
  CHECK_EQ(c.session_timeout_s, 3600);
  CHECK_EQ(c.idle_timeout_s, 60);
  CHECK_EQ(c.ping_interval_s, 30);
  CHECK_EQ(c.handshake_timeout_s, 10);
  CHECK_EQ(c.close_timeout_s, 5);
  CHECK_EQ(c.deflate, 1);
  CHECK_EQ(c.deflate_server_no_context_takeover, 0);
  CHECK_EQ(c.deflate_client_no_context_takeover, 0);
  CHECK_EQ(c.deflate_server_max_window_bits, 15);
  CHECK_EQ(c.deflate_client_max_window_bits, 15);
  CHECK_EQ(c.deflate_level, 1);
  CHECK_EQ(c.deflate_mem_level, 4);
  CHECK_EQ(c.deflate_threshold, 64);
}

static void test_close_codes(void) {
  /* The rule, spelled out as the RFC's table: */
  static const struct { unsigned lo, hi; int valid; } table[] = {
      {0, 999, 0},       /* not used */
      {1000, 1003, 1},   /* normal, going away, protocol error, unsupported data */
      {1004, 1006, 0},   /* reserved, no status, abnormal: never on the wire */
      {1007, 1011, 1},   /* invalid data, policy, too big, extension, internal */
      {1012, 1014, 1},   /* IANA: service restart, try again later, bad gateway */
      {1015, 1015, 0},   /* TLS failure: never on the wire */
      {1016, 2999, 0},   /* reserved for future RFCs */
      {3000, 3999, 1},   /* libraries and frameworks */
      {4000, 4999, 1},   /* applications */
      {5000, 65535, 0},
  };
  int bad = 0;
  for (unsigned code = 0; code <= 5000; code++) {
    int expect = -1;
    for (size_t k = 0; k < sizeof table / sizeof table[0]; k++)
      if (code >= table[k].lo && code <= table[k].hi) expect = table[k].valid;
    if (wse_close_code_valid(code) != expect) {
      bad++;
      fprintf(stderr, "close code %u: got %d expected %d\n", code, wse_close_code_valid(code), expect);
    }
  }
  CHECK_EQ(bad, 0);
  CHECK_EQ(wse_close_code_valid(65535), 0);
  CHECK_EQ(wse_close_code_valid(4000), 1); /* WSE_CLOSE_TIMEOUT */
  CHECK_EQ(wse_close_code_valid(3000), 1); /* uWebSockets wrongly rejects these */
  CHECK_EQ(wse_close_code_valid(WSE_CLOSE_NO_STATUS), 0);
  CHECK_EQ(wse_close_code_valid(WSE_CLOSE_ABNORMAL), 0);
}

static void test_close_code_for(void) {
  CHECK_EQ(wse_close_code_for(WSE_OK), 1000);
  CHECK_EQ(wse_close_code_for(WSE_EPROTO), 1002);
  CHECK_EQ(wse_close_code_for(WSE_EUTF8), 1007);
  CHECK_EQ(wse_close_code_for(WSE_ETOOBIG), 1009);
  CHECK_EQ(wse_close_code_for(WSE_EPOLICY), 1008);
  CHECK_EQ(wse_close_code_for(WSE_ENOMEM), 1011);
  CHECK_EQ(wse_close_code_for(WSE_EINVAL), 1011);
}

/* An allocator whose blocks end at a PROT_NONE page, so a copy that reads
 * or writes past either block's size faults. */
static size_t freed_size;
static guard_t blocks[8];
static void *a_alloc(void *ud, size_t n) {
  (void)ud;
  static const uint8_t zero[256];
  for (int i = 0; i < 8; i++)
    if (!blocks[i].base) { blocks[i] = guard_copy(zero, n); return blocks[i].data; }
  return NULL;
}
static void a_free(void *ud, void *p, size_t n) {
  (void)ud;
  freed_size = n;
  for (int i = 0; i < 8; i++)
    if (blocks[i].base && blocks[i].data == p) { guard_free(&blocks[i]); blocks[i].base = NULL; }
}

static void test_realloc(void) {
  /* with the host's realloc */
  uint8_t *p = wse__realloc(&t_allocator, NULL, 0, 10);
  memcpy(p, "0123456789", 10);
  p = wse__realloc(&t_allocator, p, 10, 1000);
  CHECK_MEM(p, 10, "0123456789", 10);
  wse__free(&t_allocator, p, 1000);
  /* without: alloc + copy + sized free */
  wse_allocator_t a = {a_alloc, NULL, a_free, NULL};
  p = wse__realloc(&a, NULL, 0, 4);
  memcpy(p, "abcd", 4);
  p = wse__realloc(&a, p, 4, 100);
  CHECK_EQ(freed_size, 4);
  CHECK_MEM(p, 4, "abcd", 4);
  p = wse__realloc(&a, p, 100, 2); /* shrink copies only what fits */
  CHECK_EQ(freed_size, 100);
  CHECK_MEM(p, 2, "ab", 2);
  wse__free(&a, p, 2);
  CHECK_EQ(freed_size, 2);
}

/* One reason-phrase table for the core and both hosts. */
static void test_http_reason(void) {
  static const struct { int code; const char *text; } want[] = {
      {101, "Switching Protocols"}, {200, "OK"}, {400, "Bad Request"},
      {403, "Forbidden"}, {404, "Not Found"}, {405, "Method Not Allowed"},
      {426, "Upgrade Required"}, {431, "Request Header Fields Too Large"},
      {502, "Bad Gateway"}, {503, "Service Unavailable"}, {299, "Unknown"},
      {0, "Unknown"}, {-1, "Unknown"}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    CHECK_STR(wse_http_reason(want[i].code), strlen(wse_http_reason(want[i].code)),
              want[i].text);
}

int main(void) {
  test_http_reason();
  test_strerror();
  test_config_default();
  test_close_codes();
  test_close_code_for();
  test_realloc();
  TEST_REPORT();
}
