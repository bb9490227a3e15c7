/* test_ws.c — the message engine (wse_ws_*): RFC 6455 §5.7 examples, every
 * protocol error with its close code, limits, the close state machine, and
 * identical events under every chunking of every input. All input is fed
 * from buffers that end at a PROT_NONE page. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS under -D_POSIX_C_SOURCE */
#include "test.h"

/* ---- recording events ---------------------------------------------------- */

typedef struct {
  int type;
  unsigned opcode, close_code;
  int compressed, error;
  size_t len, reason_len;
  uint8_t data[512];
  uint8_t reason[128];
} rec_t;

typedef struct {
  rec_t ev[16];
  int n;
  int state;  /* engine state after the input */
} trace_t;

static void record(trace_t *t, const wse_event_t *ev) {
  if (t->n >= 16) { CHECK(0 && "too many events"); return; }
  rec_t *r = &t->ev[t->n++];
  memset(r, 0, sizeof *r);
  r->type = ev->type;
  r->opcode = ev->opcode;
  r->close_code = ev->close_code;
  r->compressed = ev->compressed;
  r->error = ev->error;
  r->len = ev->len;
  if (ev->len) memcpy(r->data, ev->data, ev->len < 512 ? ev->len : 512);
  r->reason_len = ev->reason_len;
  if (ev->reason_len) memcpy(r->reason, ev->reason, ev->reason_len);
}

/* Feed one chunk the way a host does: call again while input remains or an
 * event came. */
static void feed_chunk(wse_ws_t *ws, const uint8_t *p, size_t n, trace_t *t) {
  guard_t g = guard_copy(p, n);
  size_t off = 0;
  for (int guard = 0; guard < 10000; guard++) {
    wse_event_t ev;
    size_t c = 0;
    int rc = wse_ws_parse(ws, g.data + off, n - off, &c, &ev);
    CHECK(c <= n - off);
    off += c;
    if (ev.type == WSE_EV_ERROR) CHECK_EQ(rc, ev.error);
    else if (rc != WSE_OK) { CHECK_EQ(rc, WSE_OK); break; }
    if (ev.type != WSE_EV_NONE) record(t, &ev);
    else {
      CHECK_EQ(off, n); /* NONE means everything was consumed */
      break;
    }
  }
  guard_free(&g);
}

static wse_config_t cfg;

/* Run p[0..n) split at the given cut points (sorted, 0 < cut < n). */
static void run_cuts(unsigned flags, const uint8_t *p, size_t n, const size_t *cuts, size_t ncuts,
                     trace_t *t) {
  wse_ws_t ws;
  wse_ws_init(&ws, &cfg, &t_allocator, flags);
  memset(t, 0, sizeof *t);
  size_t prev = 0;
  for (size_t k = 0; k <= ncuts; k++) {
    size_t end = k < ncuts ? cuts[k] : n;
    feed_chunk(&ws, p + prev, end - prev, t);
    prev = end;
  }
  t->state = ws.state;
  wse_ws_free(&ws);
}

static void run(unsigned flags, const uint8_t *p, size_t n, trace_t *t) {
  run_cuts(flags, p, n, NULL, 0, t);
}

static int traces_equal(const trace_t *a, const trace_t *b) {
  if (a->n != b->n || a->state != b->state) return 0;
  for (int i = 0; i < a->n; i++) {
    const rec_t *x = &a->ev[i], *y = &b->ev[i];
    if (x->type != y->type || x->opcode != y->opcode || x->close_code != y->close_code ||
        x->compressed != y->compressed || x->error != y->error || x->len != y->len ||
        x->reason_len != y->reason_len)
      return 0;
    if (memcmp(x->data, y->data, x->len < 512 ? x->len : 512)) return 0;
    if (memcmp(x->reason, y->reason, x->reason_len)) return 0;
  }
  return 1;
}

/* Every single split point, every pair of split points for short inputs,
 * and one byte at a time must all give the same events. */
static void check_chunkings(unsigned flags, const uint8_t *p, size_t n, const trace_t *whole) {
  trace_t t;
  int bad = 0;
  for (size_t c = 1; c < n; c++) {
    run_cuts(flags, p, n, &c, 1, &t);
    if (!traces_equal(whole, &t)) { bad++; fprintf(stderr, "  split at %zu differs\n", c); }
  }
  if (n <= 40) {
    for (size_t a = 1; a < n; a++)
      for (size_t b = a + 1; b < n; b++) {
        size_t cuts[2] = {a, b};
        run_cuts(flags, p, n, cuts, 2, &t);
        if (!traces_equal(whole, &t)) bad++;
      }
  }
  size_t *all = malloc(sizeof(size_t) * (n ? n : 1));
  for (size_t c = 1; c < n; c++) all[c - 1] = c;
  run_cuts(flags, p, n, all, n ? n - 1 : 0, &t);
  free(all);
  if (!traces_equal(whole, &t)) { bad++; fprintf(stderr, "  1-byte feeding differs\n"); }
  CHECK_EQ(bad, 0);
}

/* Run whole, check the chunkings agree, return the whole-input trace. */
static trace_t expect(unsigned flags, const uint8_t *p, size_t n) {
  trace_t t;
  run(flags, p, n, &t);
  check_chunkings(flags, p, n, &t);
  return t;
}

#define S WSE_WS_SERVER
#define C WSE_WS_CLIENT

/* Build a masked client frame. */
static size_t mk(uint8_t *out, int fin, int rsv, unsigned op, const void *payload, size_t len,
                 int masked) {
  static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
  size_t o = wse_frame_write_header(out, fin, 0, op, len, masked ? mask : NULL);
  out[0] |= (uint8_t)(rsv << 4);
  memcpy(out + o, payload, len);
  if (masked) wse_unmask(out + o, len, mask, 0);
  return o + len;
}

static void expect_error(unsigned flags, const uint8_t *p, size_t n, unsigned code, int err) {
  trace_t t = expect(flags, p, n);
  CHECK(t.n >= 1);
  if (t.n < 1) return;
  CHECK_EQ(t.ev[t.n - 1].type, WSE_EV_ERROR);
  CHECK_EQ(t.ev[t.n - 1].close_code, code);
  CHECK_EQ(t.ev[t.n - 1].error, err);
}

/* ---- RFC 6455 §5.7 ---------------------------------------------------------- */

static void test_rfc_examples(void) {
  /* A single-frame unmasked text message (as a client receives it) */
  static const uint8_t hello_unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  trace_t t = expect(C, hello_unmasked, sizeof hello_unmasked);
  CHECK_EQ(t.n, 1);
  CHECK_EQ(t.ev[0].type, WSE_EV_MESSAGE);
  CHECK_EQ(t.ev[0].opcode, WSE_OP_TEXT);
  CHECK_STR(t.ev[0].data, t.ev[0].len, "Hello");
  /* the same unmasked frame sent to a server: 1002 */
  expect_error(S, hello_unmasked, sizeof hello_unmasked, 1002, WSE_EPROTO);

  /* A single-frame masked text message */
  static const uint8_t hello_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                         0x7f, 0x9f, 0x4d, 0x51, 0x58};
  t = expect(S, hello_masked, sizeof hello_masked);
  CHECK_EQ(t.n, 1);
  CHECK_EQ(t.ev[0].type, WSE_EV_MESSAGE);
  CHECK_STR(t.ev[0].data, t.ev[0].len, "Hello");
  CHECK_EQ(t.state, WSE_WS_OPEN);
  /* a masked frame sent to a client: 1002 */
  expect_error(C, hello_masked, sizeof hello_masked, 1002, WSE_EPROTO);

  /* A fragmented unmasked text message */
  static const uint8_t frag[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
  t = expect(C, frag, sizeof frag);
  CHECK_EQ(t.n, 1);
  CHECK_EQ(t.ev[0].type, WSE_EV_MESSAGE);
  CHECK_EQ(t.ev[0].opcode, WSE_OP_TEXT);
  CHECK_STR(t.ev[0].data, t.ev[0].len, "Hello");

  /* Unmasked Ping request and masked Pong response */
  static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  t = expect(C, ping, sizeof ping);
  CHECK_EQ(t.n, 1);
  CHECK_EQ(t.ev[0].type, WSE_EV_PING);
  CHECK_STR(t.ev[0].data, t.ev[0].len, "Hello");
  static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  t = expect(S, pong, sizeof pong);
  CHECK_EQ(t.n, 1);
  CHECK_EQ(t.ev[0].type, WSE_EV_PONG);
  CHECK_STR(t.ev[0].data, t.ev[0].len, "Hello");

  /* 256 bytes binary message in a single unmasked frame */
  static uint8_t b256[4 + 256];
  b256[0] = 0x82; b256[1] = 0x7e; b256[2] = 0x01; b256[3] = 0x00;
  for (int i = 0; i < 256; i++) b256[4 + i] = (uint8_t)i;
  run(C, b256, sizeof b256, &t);
  CHECK_EQ(t.n, 1);
  CHECK_EQ(t.ev[0].type, WSE_EV_MESSAGE);
  CHECK_EQ(t.ev[0].opcode, WSE_OP_BINARY);
  CHECK_EQ(t.ev[0].len, 256);
  CHECK_MEM(t.ev[0].data, 256, b256 + 4, 256);
  /* 64 KiB binary message in a single unmasked frame */
  size_t n64 = 10 + 65536;
  uint8_t *b64 = malloc(n64);
  static const uint8_t h64[10] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
  memcpy(b64, h64, 10);
  for (size_t i = 0; i < 65536; i++) b64[10 + i] = (uint8_t)(i * 7);
  run(C, b64, n64, &t);
  CHECK_EQ(t.n, 1);
  CHECK_EQ(t.ev[0].type, WSE_EV_MESSAGE);
  CHECK_EQ(t.ev[0].len, 65536);
  CHECK_MEM(t.ev[0].data, 512, b64 + 10, 512);
  /* split at a few points including inside the 8-byte length */
  size_t cuts[] = {1, 2, 5, 9, 10, 11, 4000, 65000};
  for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
    trace_t t2;
    run_cuts(C, b64, n64, &cuts[k], 1, &t2);
    CHECK(traces_equal(&t, &t2));
  }
  free(b64);
}

/* ---- zero copy and reassembly ----------------------------------------------- */

static void test_zero_copy(void) {
  uint8_t f[64];
  size_t n = mk(f, 1, 0, WSE_OP_BINARY, "abcdef", 6, 1);
  guard_t g = guard_copy(f, n);
  wse_ws_t ws;
  wse_ws_init(&ws, &cfg, &t_allocator, S);
  wse_event_t ev;
  size_t c;
  CHECK_EQ(wse_ws_parse(&ws, g.data, n, &c, &ev), WSE_OK);
  CHECK_EQ(c, n);
  CHECK_EQ(ev.type, WSE_EV_MESSAGE);
  CHECK(ev.data == g.data + 6);  /* points into the input, unmasked in place */
  CHECK_STR(ev.data, ev.len, "abcdef");
  CHECK(ws.msg == NULL);         /* nothing allocated */
  guard_free(&g);

  /* two frames in one buffer: two calls, two events, consumed advances */
  uint8_t two[64];
  size_t a = mk(two, 1, 0, WSE_OP_TEXT, "one", 3, 1);
  size_t b = mk(two + a, 1, 0, WSE_OP_TEXT, "two", 3, 1);
  g = guard_copy(two, a + b);
  CHECK_EQ(wse_ws_parse(&ws, g.data, a + b, &c, &ev), WSE_OK);
  CHECK_EQ(c, a);
  CHECK_STR(ev.data, ev.len, "one");
  CHECK_EQ(wse_ws_parse(&ws, g.data + c, a + b - c, &c, &ev), WSE_OK);
  CHECK_EQ(c, b);
  CHECK_STR(ev.data, ev.len, "two");
  CHECK_EQ(wse_ws_parse(&ws, g.data + a + b, 0, &c, &ev), WSE_OK);
  CHECK_EQ(ev.type, WSE_EV_NONE);
  CHECK_EQ(c, 0);
  guard_free(&g);
  wse_ws_free(&ws);
}

static void test_fragmentation(void) {
  uint8_t buf[256];
  size_t n = 0;
  /* text in three fragments with a ping and a pong interleaved */
  n += mk(buf + n, 0, 0, WSE_OP_TEXT, "Hel", 3, 1);
  n += mk(buf + n, 1, 0, WSE_OP_PING, "p1", 2, 1);
  n += mk(buf + n, 0, 0, WSE_OP_CONT, "lo ", 3, 1);
  n += mk(buf + n, 1, 0, WSE_OP_PONG, "", 0, 1);
  n += mk(buf + n, 1, 0, WSE_OP_CONT, "w\xc3\xb6rld", 6, 1);
  n += mk(buf + n, 1, 0, WSE_OP_BINARY, "\x00\xff", 2, 1);
  trace_t t = expect(S, buf, n);
  CHECK_EQ(t.n, 4);
  CHECK_EQ(t.ev[0].type, WSE_EV_PING);
  CHECK_STR(t.ev[0].data, t.ev[0].len, "p1");
  CHECK_EQ(t.ev[1].type, WSE_EV_PONG);
  CHECK_EQ(t.ev[1].len, 0);
  CHECK_EQ(t.ev[2].type, WSE_EV_MESSAGE);
  CHECK_EQ(t.ev[2].opcode, WSE_OP_TEXT);
  CHECK_STR(t.ev[2].data, t.ev[2].len, "Hello w\xc3\xb6rld");
  CHECK_EQ(t.ev[3].opcode, WSE_OP_BINARY);
  CHECK_MEM(t.ev[3].data, t.ev[3].len, "\x00\xff", 2);

  /* a UTF-8 sequence split across fragments is fine */
  n = 0;
  n += mk(buf + n, 0, 0, WSE_OP_TEXT, "\xf0\x9f", 2, 1);
  n += mk(buf + n, 0, 0, WSE_OP_CONT, "\x98", 1, 1);
  n += mk(buf + n, 1, 0, WSE_OP_CONT, "\x80", 1, 1);
  t = expect(S, buf, n);
  CHECK_EQ(t.n, 1);
  CHECK_EQ(t.ev[0].type, WSE_EV_MESSAGE);
  CHECK_STR(t.ev[0].data, t.ev[0].len, "\xf0\x9f\x98\x80");

  /* empty fragments, empty message */
  n = 0;
  n += mk(buf + n, 0, 0, WSE_OP_TEXT, "", 0, 1);
  n += mk(buf + n, 0, 0, WSE_OP_CONT, "", 0, 1);
  n += mk(buf + n, 1, 0, WSE_OP_CONT, "", 0, 1);
  n += mk(buf + n, 1, 0, WSE_OP_BINARY, "", 0, 1);
  t = expect(S, buf, n);
  CHECK_EQ(t.n, 2);
  CHECK_EQ(t.ev[0].type, WSE_EV_MESSAGE);
  CHECK_EQ(t.ev[0].len, 0);
  CHECK_EQ(t.ev[1].type, WSE_EV_MESSAGE);
  CHECK_EQ(t.ev[1].opcode, WSE_OP_BINARY);

  /* a large fragmented message reassembles exactly */
  size_t big = 300000, fragsz = 7001;
  uint8_t *src = malloc(big), *wire = malloc(big + 64 * 14);
  for (size_t i = 0; i < big; i++) src[i] = (uint8_t)(i * 31 + 7);
  size_t w = 0;
  for (size_t off = 0; off < big; off += fragsz) {
    size_t k = big - off < fragsz ? big - off : fragsz;
    w += mk(wire + w, off + k == big, 0, off ? WSE_OP_CONT : WSE_OP_BINARY, src + off, k, 1);
  }
  wse_ws_t ws;
  wse_ws_init(&ws, &cfg, &t_allocator, S);
  guard_t g = guard_copy(wire, w);
  size_t off = 0, c;
  wse_event_t ev;
  int msgs = 0;
  /* feed in uneven chunks of 999 bytes */
  while (off < w) {
    size_t k = w - off < 999 ? w - off : 999;
    size_t used = 0;
    do {
      CHECK_EQ(wse_ws_parse(&ws, g.data + off + used, k - used, &c, &ev), WSE_OK);
      used += c;
      if (ev.type == WSE_EV_MESSAGE) {
        msgs++;
        CHECK_EQ(ev.len, big);
        CHECK(memcmp(ev.data, src, big) == 0);
      }
    } while (used < k);
    off += k;
  }
  CHECK_EQ(msgs, 1);
  guard_free(&g);
  wse_ws_free(&ws);
  free(src);
  free(wire);
}

/* ---- protocol errors ------------------------------------------------------------ */

static void test_protocol_errors(void) {
  uint8_t f[300];
  size_t n;
  /* reserved opcodes 3-7 and B-F */
  for (unsigned op = 3; op <= 15; op++) {
    if (op >= 8 && op <= 10) continue;
    n = mk(f, 1, 0, op, "x", 1, 1);
    expect_error(S, f, n, 1002, WSE_EPROTO);
  }
  /* RSV bits without an extension */
  for (int rsv = 1; rsv <= 7; rsv++) {
    n = mk(f, 1, rsv, WSE_OP_TEXT, "x", 1, 1);
    expect_error(S, f, n, 1002, WSE_EPROTO);
  }
  /* with permessage-deflate only RSV1, only on the first data frame */
  n = mk(f, 1, 4, WSE_OP_TEXT, "\xff\xfe", 2, 1);
  trace_t t = expect(S | WSE_WS_RSV1, f, n);
  CHECK_EQ(t.n, 1);
  CHECK_EQ(t.ev[0].type, WSE_EV_MESSAGE);
  CHECK_EQ(t.ev[0].compressed, 1); /* compressed text is not UTF-8 checked */
  n = mk(f, 1, 2, WSE_OP_TEXT, "x", 1, 1);
  expect_error(S | WSE_WS_RSV1, f, n, 1002, WSE_EPROTO);
  n = mk(f, 1, 1, WSE_OP_TEXT, "x", 1, 1);
  expect_error(S | WSE_WS_RSV1, f, n, 1002, WSE_EPROTO);
  n = mk(f, 1, 4, WSE_OP_PING, "x", 1, 1);
  expect_error(S | WSE_WS_RSV1, f, n, 1002, WSE_EPROTO);
  n = mk(f, 0, 4, WSE_OP_BINARY, "x", 1, 1);
  n += mk(f + n, 1, 4, WSE_OP_CONT, "y", 1, 1);
  expect_error(S | WSE_WS_RSV1, f, n, 1002, WSE_EPROTO);
  /* fragmented compressed message: RSV1 on the first frame only */
  n = mk(f, 0, 4, WSE_OP_TEXT, "a", 1, 1);
  n += mk(f + n, 1, 0, WSE_OP_CONT, "\xff", 1, 1);
  t = expect(S | WSE_WS_RSV1, f, n);
  CHECK_EQ(t.n, 1);
  CHECK_EQ(t.ev[0].type, WSE_EV_MESSAGE);
  CHECK_EQ(t.ev[0].compressed, 1);
  CHECK_STR(t.ev[0].data, t.ev[0].len, "a\xff");

  /* control frames: > 125 bytes, fragmented */
  static uint8_t big[126];
  memset(big, 'a', sizeof big);
  n = mk(f, 1, 0, WSE_OP_PING, big, 126, 1);
  expect_error(S, f, n, 1002, WSE_EPROTO);
  n = mk(f, 1, 0, WSE_OP_PING, big, 125, 1);
  t = expect(S, f, n);
  CHECK_EQ(t.ev[0].type, WSE_EV_PING);
  CHECK_EQ(t.ev[0].len, 125);
  n = mk(f, 0, 0, WSE_OP_PING, "x", 1, 1);
  expect_error(S, f, n, 1002, WSE_EPROTO);
  n = mk(f, 0, 0, WSE_OP_PONG, "", 0, 1);
  expect_error(S, f, n, 1002, WSE_EPROTO);
  n = mk(f, 0, 0, WSE_OP_CLOSE, "", 0, 1);
  expect_error(S, f, n, 1002, WSE_EPROTO);
  /* close with a 126-byte payload via a 16-bit length */
  n = mk(f, 1, 0, WSE_OP_CLOSE, big, 126, 1);
  expect_error(S, f, n, 1002, WSE_EPROTO);

  /* continuation without a start */
  n = mk(f, 1, 0, WSE_OP_CONT, "x", 1, 1);
  expect_error(S, f, n, 1002, WSE_EPROTO);
  /* a new start inside a message */
  n = mk(f, 0, 0, WSE_OP_TEXT, "a", 1, 1);
  n += mk(f + n, 1, 0, WSE_OP_TEXT, "b", 1, 1);
  expect_error(S, f, n, 1002, WSE_EPROTO);
  n = mk(f, 0, 0, WSE_OP_BINARY, "a", 1, 1);
  n += mk(f + n, 1, 0, WSE_OP_TEXT, "b", 1, 1);
  expect_error(S, f, n, 1002, WSE_EPROTO);
  /* continuation after a finished message */
  n = mk(f, 1, 0, WSE_OP_TEXT, "a", 1, 1);
  n += mk(f + n, 1, 0, WSE_OP_CONT, "b", 1, 1);
  t = expect(S, f, n);
  CHECK_EQ(t.n, 2);
  CHECK_EQ(t.ev[0].type, WSE_EV_MESSAGE);
  CHECK_EQ(t.ev[1].type, WSE_EV_ERROR);
  CHECK_EQ(t.ev[1].close_code, 1002);

  /* 64-bit length with the top bit set */
  static const uint8_t top[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
  expect_error(S, top, sizeof top, 1002, WSE_EPROTO);
  /* the error comes from the length alone, before the mask arrives */
  trace_t t2;
  run(S, top, 10, &t2);
  CHECK_EQ(t2.n, 1);
  CHECK_EQ(t2.ev[0].close_code, 1002);

  /* unmasked frame to a server is refused from the first two bytes */
  static const uint8_t unm[] = {0x81, 0x05};
  run(S, unm, 2, &t2);
  CHECK_EQ(t2.n, 1);
  CHECK_EQ(t2.ev[0].close_code, 1002);

  /* after an error, input is ignored */
  n = mk(f, 1, 0, WSE_OP_CONT, "x", 1, 1);
  n += mk(f + n, 1, 0, WSE_OP_TEXT, "ok", 2, 1);
  t = expect(S, f, n);
  CHECK_EQ(t.n, 1);
  CHECK_EQ(t.ev[0].type, WSE_EV_ERROR);
}

/* ---- UTF-8 in text messages ------------------------------------------------------ */

static void test_text_utf8(void) {
  uint8_t f[300];
  size_t n;
  /* invalid in a single frame */
  n = mk(f, 1, 0, WSE_OP_TEXT, "ab\xc0\xafxy", 6, 1);
  expect_error(S, f, n, 1007, WSE_EUTF8);
  /* fail fast: the bad byte is in the first fragment of an unfinished
   * message; the error comes without the message ever ending */
  n = mk(f, 0, 0, WSE_OP_TEXT, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80", 14, 1);
  trace_t t = expect(S, f, n);
  CHECK_EQ(t.n, 1);
  CHECK_EQ(t.ev[0].close_code, 1007);
  /* fail fast inside a frame whose rest has not arrived yet */
  n = mk(f, 1, 0, WSE_OP_TEXT, "hello\xf4\x90\x80\x80world", 14, 1);
  run(S, f, 6 + 6, &t);  /* header + "hello" + F4: still possible */
  CHECK_EQ(t.n, 0);
  run(S, f, 6 + 7, &t);  /* + 0x90: impossible now */
  CHECK_EQ(t.n, 1);
  CHECK_EQ(t.ev[0].close_code, 1007);
  /* invalid in a later fragment */
  n = mk(f, 0, 0, WSE_OP_TEXT, "ok", 2, 1);
  n += mk(f + n, 0, 0, WSE_OP_CONT, "\xff", 1, 1);
  expect_error(S, f, n, 1007, WSE_EUTF8);
  /* truncated sequence at message end */
  n = mk(f, 1, 0, WSE_OP_TEXT, "ab\xe2\x82", 4, 1);
  expect_error(S, f, n, 1007, WSE_EUTF8);
  n = mk(f, 0, 0, WSE_OP_TEXT, "ab\xe2", 3, 1);
  n += mk(f + n, 1, 0, WSE_OP_CONT, "\x82", 1, 1);
  expect_error(S, f, n, 1007, WSE_EUTF8);
  /* binary is never checked */
  n = mk(f, 1, 0, WSE_OP_BINARY, "\xff\xfe\xc0", 3, 1);
  t = expect(S, f, n);
  CHECK_EQ(t.ev[0].type, WSE_EV_MESSAGE);
  /* valid multilingual text */
  const char *ok = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80";
  n = mk(f, 1, 0, WSE_OP_TEXT, ok, strlen(ok), 1);
  t = expect(S, f, n);
  CHECK_EQ(t.ev[0].type, WSE_EV_MESSAGE);
  CHECK_STR(t.ev[0].data, t.ev[0].len, ok);
}

/* ---- limits ------------------------------------------------------------------------ */

static void test_limits(void) {
  wse_config_t saved = cfg;
  cfg.max_frame_size = 100;
  cfg.max_message_size = 250;
  static uint8_t payload[300], f[1000];
  memset(payload, 'a', sizeof payload);
  size_t n = mk(f, 1, 0, WSE_OP_BINARY, payload, 100, 1);
  trace_t t = expect(S, f, n);
  CHECK_EQ(t.ev[0].type, WSE_EV_MESSAGE);
  CHECK_EQ(t.ev[0].len, 100);
  n = mk(f, 1, 0, WSE_OP_BINARY, payload, 101, 1);
  expect_error(S, f, n, 1009, WSE_ETOOBIG);
  /* decided from the header alone (2 + 2 length + 4 mask bytes) */
  run(S, f, 8, &t);
  CHECK_EQ(t.n, 1);
  CHECK_EQ(t.ev[0].close_code, 1009);
  /* message limit across fragments: 100 + 100 + 50 ok, + 51 too big */
  n = mk(f, 0, 0, WSE_OP_TEXT, payload, 100, 1);
  n += mk(f + n, 0, 0, WSE_OP_CONT, payload, 100, 1);
  size_t n2 = n + mk(f + n, 1, 0, WSE_OP_CONT, payload, 50, 1);
  t = expect(S, f, n2);
  CHECK_EQ(t.n, 1);
  CHECK_EQ(t.ev[0].type, WSE_EV_MESSAGE);
  CHECK_EQ(t.ev[0].len, 250);
  n2 = n + mk(f + n, 1, 0, WSE_OP_CONT, payload, 51, 1);
  expect_error(S, f, n2, 1009, WSE_ETOOBIG);
  /* a huge 64-bit length is refused at once */
  static const uint8_t huge[] = {0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                 1, 2, 3, 4};
  expect_error(S, huge, sizeof huge, 1009, WSE_ETOOBIG);
  cfg = saved;
  /* defaults: 16 MiB frame */
  uint8_t h[14];
  size_t hl = wse_frame_write_header(h, 1, 0, WSE_OP_BINARY, (16u << 20) + 1, (const uint8_t *)"abcd");
  expect_error(S, h, hl, 1009, WSE_ETOOBIG);
  hl = wse_frame_write_header(h, 1, 0, WSE_OP_BINARY, 16u << 20, (const uint8_t *)"abcd");
  run(S, h, hl, &t);
  CHECK_EQ(t.n, 0); /* accepted header, waiting for payload */
  /* control frames are not counted against the message */
  cfg.max_frame_size = 100;
  cfg.max_message_size = 100;
  n = mk(f, 0, 0, WSE_OP_TEXT, payload, 100, 1);
  n += mk(f + n, 1, 0, WSE_OP_PING, payload, 50, 1);
  n += mk(f + n, 1, 0, WSE_OP_CONT, "", 0, 1);
  t = expect(S, f, n);
  CHECK_EQ(t.n, 2);
  CHECK_EQ(t.ev[0].type, WSE_EV_PING);
  CHECK_EQ(t.ev[1].type, WSE_EV_MESSAGE);
  CHECK_EQ(t.ev[1].len, 100);
  cfg = saved;
}

/* ---- close handling ---------------------------------------------------------------- */

static size_t mk_close(uint8_t *f, unsigned code, const char *reason, size_t rlen) {
  uint8_t p[130];
  p[0] = (uint8_t)(code >> 8);
  p[1] = (uint8_t)code;
  memcpy(p + 2, reason, rlen);
  return mk(f, 1, 0, WSE_OP_CLOSE, p, 2 + rlen, 1);
}

static void test_close(void) {
  uint8_t f[300];
  size_t n;
  trace_t t;
  /* empty close -> 1005 */
  n = mk(f, 1, 0, WSE_OP_CLOSE, "", 0, 1);
  t = expect(S, f, n);
  CHECK_EQ(t.n, 1);
  CHECK_EQ(t.ev[0].type, WSE_EV_CLOSE);
  CHECK_EQ(t.ev[0].close_code, 1005);
  CHECK_EQ(t.ev[0].reason_len, 0);
  CHECK_EQ(t.state, WSE_WS_CLOSE_RECEIVED);
  /* 1-byte payload -> 1002 */
  n = mk(f, 1, 0, WSE_OP_CLOSE, "\x03", 1, 1);
  expect_error(S, f, n, 1002, WSE_EPROTO);
  /* code and reason */
  n = mk_close(f, 1000, "bye \xe2\x9c\x93", 7);
  t = expect(S, f, n);
  CHECK_EQ(t.ev[0].type, WSE_EV_CLOSE);
  CHECK_EQ(t.ev[0].close_code, 1000);
  CHECK_MEM(t.ev[0].reason, t.ev[0].reason_len, "bye \xe2\x9c\x93", 7);
  /* invalid reason -> 1007 */
  n = mk_close(f, 1000, "bad \xed\xa0\x80", 7);
  expect_error(S, f, n, 1007, WSE_EUTF8);
  n = mk_close(f, 1000, "cut \xe2\x9c", 6);
  expect_error(S, f, n, 1007, WSE_EUTF8);
  /* every code 0..5000 over the wire: valid ones give CLOSE, others 1002 */
  for (unsigned code = 0; code <= 5000; code++) {
    n = mk_close(f, code, "", 0);
    run(S, f, n, &t);
    int valid = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                (code >= 3000 && code <= 4999);
    if (valid) {
      if (t.ev[0].type != WSE_EV_CLOSE || t.ev[0].close_code != code) CHECK_EQ(code, -1);
    } else {
      if (t.ev[0].type != WSE_EV_ERROR || t.ev[0].close_code != 1002) CHECK_EQ(code, -1);
    }
  }
  CHECK(1);
  /* codes above 5000 via the 16-bit field */
  n = mk_close(f, 65535, "", 0);
  expect_error(S, f, n, 1002, WSE_EPROTO);

  /* data after the peer's Close is ignored */
  n = mk_close(f, 1001, "", 0);
  n += mk(f + n, 1, 0, WSE_OP_TEXT, "late", 4, 1);
  n += mk(f + n, 1, 0, WSE_OP_PING, "", 0, 1);
  t = expect(S, f, n);
  CHECK_EQ(t.n, 1);
  CHECK_EQ(t.ev[0].type, WSE_EV_CLOSE);
  CHECK_EQ(t.ev[0].close_code, 1001);

  /* a close in the middle of a fragmented message is fine */
  n = mk(f, 0, 0, WSE_OP_TEXT, "par", 3, 1);
  n += mk_close(f + n, 1000, "", 0);
  t = expect(S, f, n);
  CHECK_EQ(t.n, 1);
  CHECK_EQ(t.ev[0].type, WSE_EV_CLOSE);
}

static void test_close_state_machine(void) {
  wse_ws_t ws;
  uint8_t out[127], f[64];
  wse_event_t ev;
  size_t c;
  /* peer closes first; we echo its code */
  wse_ws_init(&ws, &cfg, &t_allocator, S);
  size_t n = mk_close(f, 4001, "app", 3);
  CHECK_EQ(wse_ws_parse(&ws, f, n, &c, &ev), WSE_OK);
  CHECK_EQ(ev.type, WSE_EV_CLOSE);
  CHECK_EQ(ws.state, WSE_WS_CLOSE_RECEIVED);
  CHECK_EQ(wse_ws_closing(&ws), 0);
  size_t k = wse_ws_close(&ws, out, ev.close_code, NULL, 0);
  static const uint8_t echo[] = {0x88, 0x02, 0x0f, 0xa1};
  CHECK_MEM(out, k, echo, sizeof echo);
  CHECK_EQ(ws.state, WSE_WS_CLOSED);
  CHECK_EQ(wse_ws_closing(&ws), 1);
  CHECK_EQ(wse_ws_close(&ws, out, 1000, NULL, 0), 0); /* nothing after close */
  /* further input is ignored */
  n = mk(f, 1, 0, WSE_OP_TEXT, "x", 1, 1);
  CHECK_EQ(wse_ws_parse(&ws, f, n, &c, &ev), WSE_OK);
  CHECK_EQ(c, n);
  CHECK_EQ(ev.type, WSE_EV_NONE);
  wse_ws_free(&ws);

  /* peer's empty close (1005) is echoed with an empty payload */
  wse_ws_init(&ws, &cfg, &t_allocator, S);
  n = mk(f, 1, 0, WSE_OP_CLOSE, "", 0, 1);
  CHECK_EQ(wse_ws_parse(&ws, f, n, &c, &ev), WSE_OK);
  CHECK_EQ(ev.close_code, 1005);
  k = wse_ws_close(&ws, out, ev.close_code, NULL, 0);
  static const uint8_t empty[] = {0x88, 0x00};
  CHECK_MEM(out, k, empty, 2);
  wse_ws_free(&ws);

  /* we close first; messages still arrive until the peer's Close */
  wse_ws_init(&ws, &cfg, &t_allocator, S);
  k = wse_ws_close(&ws, out, 1000, "done", 4);
  static const uint8_t ours[] = {0x88, 0x06, 0x03, 0xe8, 'd', 'o', 'n', 'e'};
  CHECK_MEM(out, k, ours, sizeof ours);
  CHECK_EQ(ws.state, WSE_WS_CLOSE_SENT);
  CHECK_EQ(wse_ws_closing(&ws), 1);
  CHECK_EQ(wse_ws_close(&ws, out, 1000, NULL, 0), 0);
  n = mk(f, 1, 0, WSE_OP_TEXT, "in flight", 9, 1);
  CHECK_EQ(wse_ws_parse(&ws, f, n, &c, &ev), WSE_OK);
  CHECK_EQ(ev.type, WSE_EV_MESSAGE);
  n = mk_close(f, 1000, "", 0);
  CHECK_EQ(wse_ws_parse(&ws, f, n, &c, &ev), WSE_OK);
  CHECK_EQ(ev.type, WSE_EV_CLOSE);
  CHECK_EQ(ws.state, WSE_WS_CLOSED);
  wse_ws_free(&ws);

  /* after a protocol error: close with the error's code, then closed */
  wse_ws_init(&ws, &cfg, &t_allocator, S);
  n = mk(f, 1, 0, WSE_OP_CONT, "x", 1, 1);
  CHECK_EQ(wse_ws_parse(&ws, f, n, &c, &ev), WSE_EPROTO);
  CHECK_EQ(ev.type, WSE_EV_ERROR);
  k = wse_ws_close(&ws, out, ev.close_code, NULL, 0);
  static const uint8_t perr[] = {0x88, 0x02, 0x03, 0xea};
  CHECK_MEM(out, k, perr, sizeof perr);
  CHECK_EQ(ws.state, WSE_WS_CLOSED);
  wse_ws_free(&ws);

  /* invalid codes never reach the wire: 1006 becomes an empty payload */
  wse_ws_init(&ws, &cfg, &t_allocator, S);
  k = wse_ws_close(&ws, out, 1006, "x", 1);
  CHECK_MEM(out, k, empty, 2);
  wse_ws_free(&ws);
}

/* ---- allocator failure ------------------------------------------------------------- */

static int fail_after;
static void *f_alloc(void *ud, size_t n) { (void)ud; return fail_after-- > 0 ? malloc(n) : NULL; }
static void *f_realloc(void *ud, void *p, size_t o, size_t n) {
  (void)ud; (void)o;
  return fail_after-- > 0 ? realloc(p, n) : NULL;
}
static void f_free(void *ud, void *p, size_t n) { (void)ud; (void)n; free(p); }

static void test_alloc_failure(void) {
  wse_allocator_t fa = {f_alloc, f_realloc, f_free, NULL};
  wse_allocator_t fa_norealloc = {f_alloc, NULL, f_free, NULL};
  uint8_t f[2000];
  static uint8_t payload[600];
  memset(payload, 'z', sizeof payload);
  size_t n = mk(f, 0, 0, WSE_OP_BINARY, payload, 300, 1);
  n += mk(f + n, 1, 0, WSE_OP_CONT, payload, 600, 1);
  for (int which = 0; which < 2; which++) {
    for (int budget = 0; budget < 4; budget++) {
      wse_ws_t ws;
      wse_ws_init(&ws, &cfg, which ? &fa_norealloc : &fa, S);
      fail_after = budget;
      guard_t g = guard_copy(f, n);
      size_t off = 0, c;
      wse_event_t ev;
      int got_msg = 0, got_err = 0;
      while (off < n) {
        wse_ws_parse(&ws, g.data + off, n - off, &c, &ev);
        off += c;
        if (ev.type == WSE_EV_MESSAGE) {
          got_msg = 1;
          CHECK_EQ(ev.len, 900);
        }
        if (ev.type == WSE_EV_ERROR) {
          got_err = 1;
          CHECK_EQ(ev.error, WSE_ENOMEM);
          CHECK_EQ(ev.close_code, 1011);
        }
      }
      CHECK(got_msg != got_err);
      if (budget == 0) CHECK(got_err);
      if (budget >= 3) CHECK(got_msg);
      guard_free(&g);
      wse_ws_free(&ws);
    }
  }
}

int main(void) {
  wse_config_default(&cfg);
  test_rfc_examples();
  test_zero_copy();
  test_fragmentation();
  test_protocol_errors();
  test_text_utf8();
  test_limits();
  test_close();
  test_close_state_machine();
  test_alloc_failure();
  TEST_REPORT();
}
