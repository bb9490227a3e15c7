/* test_deflate.c — permessage-deflate in the native host
 * (bindings/native/deflate.c) driven together with the core's engine: the
 * RFC 7692 §7.2.3 examples byte for byte, round trips against an
 * independent zlib "client" at every parameter combination (takeover flags
 * x window bits 9..15), fragmented compressed messages, empty messages, the
 * threshold, the broadcast cache, limits on the inflated size (a bomb),
 * UTF-8 after inflating, corrupt data, RSV1 rules, and memory accounting. */
#include "test.h"

#include <zlib.h>

#include "deflate.h"

static wse_config_t cfg;

static wse_deflate_params_t params(int sn, int cn, int sb, int cb) {
  wse_deflate_params_t p;
  p.server_no_context_takeover = sn ? 1 : -1;
  p.client_no_context_takeover = cn ? 1 : -1;
  p.server_max_window_bits = sb;
  p.client_max_window_bits = cb;
  return p;
}

/* ---- an independent client built on zlib directly ------------------------- */

typedef struct {
  z_stream def, inf;
  int reset_def, reset_inf; /* no context takeover in that direction */
} client_t;

static void client_init(client_t *c, int def_bits, int inf_bits, int reset_def, int reset_inf) {
  memset(c, 0, sizeof *c);
  if (def_bits < 9) def_bits = 9; /* zlib widens 8 to 9, as zlib clients do */
  CHECK_EQ(deflateInit2(&c->def, 6, Z_DEFLATED, -def_bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
  CHECK_EQ(inflateInit2(&c->inf, -inf_bits), Z_OK);
  c->reset_def = reset_def;
  c->reset_inf = reset_inf;
}

static void client_free(client_t *c) {
  deflateEnd(&c->def);
  inflateEnd(&c->inf);
}

/* Compress a message as RFC 7692 §7.2.1 says: sync flush, tail removed. */
static size_t client_compress(client_t *c, const uint8_t *p, size_t n, uint8_t **out) {
  if (n == 0) {
    /* zlib cannot flush twice without input (Z_BUF_ERROR): an empty
     * message is the empty stored block's first byte, as RFC 7692 senders
     * produce it */
    *out = malloc(1);
    (*out)[0] = 0;
    return 1;
  }
  size_t cap = deflateBound(&c->def, n) + 64;
  uint8_t *b = malloc(cap);
  c->def.next_in = (Bytef *)(uintptr_t)p;
  c->def.avail_in = (uInt)n;
  c->def.next_out = b;
  c->def.avail_out = (uInt)cap;
  CHECK_EQ(deflate(&c->def, Z_SYNC_FLUSH), Z_OK);
  CHECK(c->def.avail_out > 0);
  size_t len = cap - c->def.avail_out;
  int ok = len >= 4 && memcmp(b + len - 4, "\x00\x00\xff\xff", 4) == 0;
  CHECK(ok);
  if (c->reset_def) deflateReset(&c->def);
  *out = b;
  return ok ? len - 4 : 0;
}

/* Inflate a server payload (tail re-appended). Returns the length or -1. */
static long client_inflate(client_t *c, const uint8_t *p, size_t n, uint8_t *out, size_t cap) {
  uint8_t *in = malloc(n + 4);
  if (n) memcpy(in, p, n);
  memcpy(in + n, "\x00\x00\xff\xff", 4);
  c->inf.next_in = in;
  c->inf.avail_in = (uInt)(n + 4);
  c->inf.next_out = out;
  c->inf.avail_out = (uInt)cap;
  int zr = inflate(&c->inf, Z_SYNC_FLUSH);
  long len = (zr == Z_OK || zr == Z_BUF_ERROR) && c->inf.avail_in == 0
                 ? (long)(cap - c->inf.avail_out) : -1;
  if (zr != Z_OK && zr != Z_BUF_ERROR) fprintf(stderr, "  client inflate: %d %s\n", zr, c->inf.msg ? c->inf.msg : "");
  if (c->reset_inf) inflateReset(&c->inf);
  free(in);
  return len;
}

/* Masked client frames: the payload split into `nfrag` frames, RSV1 on the
 * first only. Returns the total length. */
static size_t client_frames(uint8_t *out, unsigned opcode, int rsv1, const uint8_t *p, size_t n,
                            size_t nfrag) {
  static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
  size_t o = 0, i = 0, per = nfrag > 1 ? (n + nfrag - 1) / nfrag : n;
  if (!per) per = n;
  int first = 1;
  do {
    size_t k = n - i < per ? n - i : per;
    int fin = i + k == n;
    o += wse_frame_write_header(out + o, fin, first && rsv1, first ? opcode : WSE_OP_CONT, k, mask);
    for (size_t j = 0; j < k; j++) out[o + j] = p[i + j] ^ mask[j & 3];
    o += k;
    i += k;
    first = 0;
  } while (i < n);
  return o;
}

/* Feed bytes to a server engine until one event; the payload is copied
 * into *data (malloc). Returns the event type. */
static int engine_event(wse_ws_t *ws, uint8_t *buf, size_t n, wse_event_t *ev) {
  size_t off = 0;
  for (;;) {
    size_t used = 0;
    wse_ws_parse(ws, buf + off, n - off, &used, ev);
    off += used;
    if (ev->type != WSE_EV_NONE) return ev->type;
    if (off >= n) return WSE_EV_NONE;
  }
}

/* Parse one server frame: returns the payload offset, sets header fields. */
static size_t server_frame(const uint8_t *f, size_t n, wse_frame_header_t *h) {
  int hl = wse_frame_parse_header(f, n, h);
  CHECK(hl > 0);
  CHECK_EQ(h->masked, 0);
  CHECK_EQ((size_t)hl + h->len, n);
  return hl > 0 ? (size_t)hl : 0;
}

/* ---- RFC 7692 §7.2.3 ---------------------------------------------------------- */

static void test_rfc_examples(void) {
  wsn_deflate_ctx_t *x = wsn_deflate_ctx_new();
  wse_config_t c = cfg;
  c.deflate_threshold = 0;
  /* §7.2.3.1/7.2.3.2: "Hello" compressed, then again sharing the window */
  wse_deflate_params_t p = params(0, 0, -1, -1);
  wsn_deflate_t *d = wsn_deflate_new(&c, &p);
  const uint8_t *f;
  size_t fl;
  CHECK_EQ(wsn_deflate_message(d, x, WSE_OP_TEXT, (const uint8_t *)"Hello", 5, &f, &fl), WSE_OK);
  CHECK_MEM(f, fl, "\xc1\x07\xf2\x48\xcd\xc9\xc9\x07\x00", 9);
  CHECK_EQ(wsn_deflate_message(d, x, WSE_OP_TEXT, (const uint8_t *)"Hello", 5, &f, &fl), WSE_OK);
  CHECK_MEM(f, fl, "\xc1\x05\xf2\x00\x11\x00\x00", 7);
  wsn_deflate_free(d);
  /* without context takeover both are the same 9 bytes */
  p = params(1, 0, -1, -1);
  d = wsn_deflate_new(&c, &p);
  for (int i = 0; i < 2; i++) {
    CHECK_EQ(wsn_deflate_message(d, x, WSE_OP_TEXT, (const uint8_t *)"Hello", 5, &f, &fl), WSE_OK);
    CHECK_MEM(f, fl, "\xc1\x07\xf2\x48\xcd\xc9\xc9\x07\x00", 9);
  }
  wsn_deflate_free(d);

  /* the receiving side: each example masked, through the engine, inflated */
  struct {
    const char *name;
    const char *frames; /* unmasked wire bytes, as in the RFC */
    size_t n;
  } ex[] = {
      {"7.2.3.1 one frame", "\xc1\x07\xf2\x48\xcd\xc9\xc9\x07\x00", 9},
      {"7.2.3.1 two fragments", "\x41\x03\xf2\x48\xcd\x80\x04\xc9\xc9\x07\x00", 11},
      {"7.2.3.3 no compression", "\xc1\x0b\x00\x05\x00\xfa\xff\x48\x65\x6c\x6c\x6f\x00", 13},
      {"7.2.3.4 BFINAL set", "\xc1\x08\xf3\x48\xcd\xc9\xc9\x07\x00\x00", 10},
      {"7.2.3.5 two blocks", "\xc1\x0d\xf2\x48\x05\x00\x00\x00\xff\xff\xca\xc9\xc9\x07\x00", 15},
  };
  for (size_t e = 0; e < sizeof ex / sizeof ex[0]; e++) {
    p = params(0, 0, -1, -1);
    d = wsn_deflate_new(&cfg, &p);
    wse_ws_t ws;
    wse_ws_init(&ws, &cfg, &t_allocator, WSE_WS_SERVER | WSE_WS_RSV1);
    /* re-mask every frame of the example */
    uint8_t wire[64];
    size_t o = 0, i = 0;
    const uint8_t *src = (const uint8_t *)ex[e].frames;
    while (i < ex[e].n) {
      wse_frame_header_t h;
      int hl = wse_frame_parse_header(src + i, ex[e].n - i, &h);
      CHECK(hl > 0);
      static const uint8_t m[4] = {1, 2, 3, 4};
      o += wse_frame_write_header(wire + o, h.fin, (h.rsv & 4) != 0, h.opcode, h.len, m);
      for (size_t k = 0; k < h.len; k++) wire[o + k] = src[i + (size_t)hl + k] ^ m[k & 3];
      o += (size_t)h.len;
      i += (size_t)hl + (size_t)h.len;
    }
    guard_t g = guard_copy(wire, o);
    wse_event_t ev;
    CHECK_EQ(engine_event(&ws, g.data, o, &ev), WSE_EV_MESSAGE);
    CHECK_EQ(ev.compressed, 1);
    const uint8_t *out;
    size_t on;
    int rc = wsn_deflate_inflate(d, x, ev.opcode, ev.data, ev.len, &out, &on);
    if (rc != WSE_OK) fprintf(stderr, "  example %s: %s\n", ex[e].name, wsn_deflate_strerror(rc));
    CHECK_EQ(rc, WSE_OK);
    CHECK_MEM(out, on, "Hello", 5);
    /* with context takeover the next message may refer to this one, even
     * after a BFINAL block ended the sender's stream */
    guard_free(&g);
    uint8_t second[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
    if (e == 0 || e == 3) {
      rc = wsn_deflate_inflate(d, x, WSE_OP_TEXT, second, sizeof second, &out, &on);
      CHECK_EQ(rc, WSE_OK);
      CHECK_MEM(out, on, "Hello", 5);
    }
    wse_ws_free(&ws);
    wsn_deflate_free(d);
  }
  /* §7.2.3.2 the shared-window message means nothing without the window */
  p = params(0, 1, -1, -1);
  d = wsn_deflate_new(&cfg, &p);
  const uint8_t *out;
  size_t on;
  CHECK_EQ(wsn_deflate_inflate(d, x, WSE_OP_TEXT, (const uint8_t *)"\xf2\x48\xcd\xc9\xc9\x07\x00", 7,
                               &out, &on), WSE_OK);
  CHECK_EQ(wsn_deflate_inflate(d, x, WSE_OP_TEXT, (const uint8_t *)"\xf2\x00\x11\x00\x00", 5, &out, &on),
           WSN_DEFLATE_EDATA);
  CHECK_EQ(wsn_deflate_close_code(WSN_DEFLATE_EDATA), 1007);
  wsn_deflate_free(d);
  wsn_deflate_ctx_free(x);
}

/* ---- round trips at every parameter combination --------------------------------- */

/* Messages chosen so context matters: repeats, a text that recurs at a
 * distance beyond small windows, binary, and a 0-byte one. */
static uint8_t *big_text;
static size_t big_n;

static void make_corpus(void) {
  big_n = 100000;
  big_text = malloc(big_n);
  static const char *words[] = {"permessage", "deflate", "window", "takeover", "héllo", "frame",
                                "über", "context", "zlib", "λόγος"};
  size_t o = 0, k = 12345;
  while (o < big_n) {
    k = k * 1103515245 + 12345;
    const char *w = words[(k >> 16) % 10];
    size_t wl = strlen(w);
    if (o + wl + 1 > big_n) break;
    memcpy(big_text + o, w, wl);
    o += wl;
    big_text[o++] = ' ';
  }
  while (o < big_n) big_text[o++] = '.';
}

static int round_trip(int sn, int cn, int sb, int cb, int nfrag) {
  int fails = t_fail;
  wse_config_t c = cfg;
  c.deflate_threshold = 0;
  wse_deflate_params_t p = params(sn, cn, sb, cb);
  wsn_deflate_t *d = wsn_deflate_new(&c, &p);
  wsn_deflate_ctx_t *x = wsn_deflate_ctx_new();
  wsn_deflate_info_t info;
  wsn_deflate_info(d, &info);
  int swb = sb > 0 ? sb : 15, cwb = cb > 0 ? cb : 15;
  CHECK_EQ(info.server_window_bits, swb);
  CHECK_EQ(info.client_window_bits, cwb < 9 ? 9 : cwb);
  client_t cl;
  /* the client compresses with its negotiated window and resets when told
   * to; it inflates with the server's window and resets when the server
   * promised no takeover, so any reference to an old message would fail */
  client_init(&cl, cwb, swb, cn, sn);
  wse_ws_t ws;
  wse_ws_init(&ws, &c, &t_allocator, WSE_WS_SERVER | WSE_WS_RSV1);
  struct { const uint8_t *p; size_t n; unsigned op; } msgs[] = {
      {(const uint8_t *)"Hello", 5, WSE_OP_TEXT},
      {(const uint8_t *)"Hello", 5, WSE_OP_TEXT},
      {big_text, big_n, WSE_OP_TEXT},
      {(const uint8_t *)"", 0, WSE_OP_TEXT},
      {big_text + 50000, 20000, WSE_OP_BINARY},
      {big_text, big_n, WSE_OP_TEXT},
      {(const uint8_t *)"Hello", 5, WSE_OP_BINARY},
  };
  size_t first_hello = 0;
  uint8_t *back = malloc(big_n + 16);
  for (size_t m = 0; m < sizeof msgs / sizeof msgs[0]; m++) {
    /* client -> server */
    uint8_t *cz;
    size_t czn = client_compress(&cl, msgs[m].p, msgs[m].n, &cz);
    uint8_t *wire = malloc(czn + 64 * (nfrag + 1));
    size_t wn = client_frames(wire, msgs[m].op, 1, cz, czn, (size_t)nfrag);
    wse_event_t ev;
    CHECK_EQ(engine_event(&ws, wire, wn, &ev), WSE_EV_MESSAGE);
    CHECK_EQ(ev.compressed, 1);
    CHECK_EQ(ev.len, czn);
    const uint8_t *out;
    size_t on;
    int rc = wsn_deflate_inflate(d, x, ev.opcode, ev.data, ev.len, &out, &on);
    CHECK_EQ(rc, WSE_OK);
    CHECK_MEM(out, on, msgs[m].p, msgs[m].n);
    free(cz);
    free(wire);
    /* server -> client, through the host's frame path */
    uint8_t *appf = malloc(msgs[m].n + 16);
    size_t an = (size_t)wse_frame_message(appf, msgs[m].n + 16, msgs[m].op, 0, msgs[m].p, msgs[m].n, 0);
    wsn_deflate_next_message(x);
    const uint8_t *f;
    size_t fl;
    CHECK_EQ(wsn_deflate_frame(d, x, appf, an, &f, &fl), WSE_OK);
    wse_frame_header_t h;
    size_t off = server_frame(f, fl, &h);
    CHECK_EQ(h.fin, 1);
    CHECK_EQ(h.rsv, 4);
    CHECK_EQ(h.opcode, msgs[m].op);
    long bn = client_inflate(&cl, f + off, (size_t)h.len, back, big_n + 16);
    CHECK_MEM(back, bn < 0 ? 0 : (size_t)bn, msgs[m].p, msgs[m].n);
    if (m == 0) first_hello = (size_t)h.len;
    /* takeover makes the repeated "Hello" smaller; no takeover cannot */
    if (m == 1) {
      if (sn) CHECK_EQ(h.len, first_hello);
      else CHECK((size_t)h.len < first_hello);
    }
    free(appf);
  }
  free(back);
  client_free(&cl);
  wse_ws_free(&ws);
  wsn_deflate_free(d);
  wsn_deflate_ctx_free(x);
  if (t_fail != fails)
    fprintf(stderr, "  round trip failed: sn=%d cn=%d sb=%d cb=%d frag=%d\n", sn, cn, sb, cb, nfrag);
  return t_fail == fails;
}

static void test_round_trips(void) {
  int combos = 0;
  for (int sn = 0; sn <= 1; sn++)
    for (int cn = 0; cn <= 1; cn++)
      for (int bits = 9; bits <= 15; bits++) {
        round_trip(sn, cn, bits, bits, 1);
        round_trip(sn, cn, bits, 24 - bits, 1); /* different windows each way */
        combos += 2;
      }
  /* absent window parameters (15 both ways); client_max_window_bits=8
   * (inflated with 9) */
  round_trip(0, 0, -1, -1, 1);
  round_trip(1, 1, -1, 8, 1);
  /* fragmented compressed messages: the engine reassembles, then inflate */
  round_trip(0, 0, 15, 15, 3);
  round_trip(1, 0, 12, 10, 7);
  round_trip(0, 1, 9, 9, 64);
  printf("round trips: %d parameter combinations\n", combos + 5);
}

/* ---- fragmentation, 1-byte feeding ----------------------------------------------- */

static void test_fragmented_bytewise(void) {
  wsn_deflate_ctx_t *x = wsn_deflate_ctx_new();
  wse_deflate_params_t p = params(0, 0, -1, -1);
  wsn_deflate_t *d = wsn_deflate_new(&cfg, &p);
  client_t cl;
  client_init(&cl, 15, 15, 0, 0);
  wse_ws_t ws;
  wse_ws_init(&ws, &cfg, &t_allocator, WSE_WS_SERVER | WSE_WS_RSV1);
  uint8_t *cz;
  size_t czn = client_compress(&cl, big_text, 3000, &cz);
  uint8_t *wire = malloc(czn + 1024);
  size_t wn = client_frames(wire, WSE_OP_TEXT, 1, cz, czn, 9);
  /* a ping between fragments is allowed and uncompressed */
  int got = 0;
  for (size_t i = 0; i < wn; i++) {
    wse_event_t ev;
    size_t used;
    wse_ws_parse(&ws, wire + i, 1, &used, &ev);
    CHECK_EQ(used, 1);
    if (ev.type == WSE_EV_MESSAGE) {
      got++;
      CHECK_EQ(ev.compressed, 1);
      const uint8_t *out;
      size_t on;
      CHECK_EQ(wsn_deflate_inflate(d, x, ev.opcode, ev.data, ev.len, &out, &on), WSE_OK);
      CHECK_MEM(out, on, big_text, 3000);
    } else {
      CHECK_EQ(ev.type, WSE_EV_NONE);
    }
  }
  CHECK_EQ(got, 1);
  free(cz);
  free(wire);
  client_free(&cl);
  wse_ws_free(&ws);
  wsn_deflate_free(d);
  wsn_deflate_ctx_free(x);
}

/* ---- RSV1 rules (the engine, initialised for deflate) ------------------------------ */

static int first_error(unsigned flags, const uint8_t *frames, size_t n) {
  wse_ws_t ws;
  wse_ws_init(&ws, &cfg, &t_allocator, flags);
  guard_t g = guard_copy(frames, n);
  size_t off = 0;
  int code = 0;
  while (off < n) {
    wse_event_t ev;
    size_t used = 0;
    wse_ws_parse(&ws, g.data + off, n - off, &used, &ev);
    off += used;
    if (ev.type == WSE_EV_ERROR) { code = (int)ev.close_code; break; }
    if (ev.type == WSE_EV_NONE && !used) break;
  }
  guard_free(&g);
  wse_ws_free(&ws);
  return code;
}

static void test_rsv1_rules(void) {
  const unsigned F = WSE_WS_SERVER | WSE_WS_RSV1;
  uint8_t w[64];
  size_t n;
  /* a compressed control frame -> 1002 */
  n = client_frames(w, WSE_OP_PING, 1, (const uint8_t *)"\xf2\x48\x05\x00", 4, 1);
  CHECK_EQ(first_error(F, w, n), 1002);
  n = client_frames(w, WSE_OP_CLOSE, 1, (const uint8_t *)"\x03\xe8", 2, 1);
  CHECK_EQ(first_error(F, w, n), 1002);
  n = client_frames(w, WSE_OP_PONG, 1, NULL, 0, 1);
  CHECK_EQ(first_error(F, w, n), 1002);
  /* RSV1 on a continuation frame -> 1002 */
  static const uint8_t m[4] = {9, 8, 7, 6};
  n = wse_frame_write_header(w, 0, 1, WSE_OP_TEXT, 3, m);
  memcpy(w + n, "\xfb\x40\xca", 3); /* anything: rejected before inflating */
  n += 3;
  n += wse_frame_write_header(w + n, 1, 1, WSE_OP_CONT, 2, m);
  memcpy(w + n, "\x00\x00", 2);
  n += 2;
  CHECK_EQ(first_error(F, w, n), 1002);
  /* RSV1 when deflate was not negotiated -> 1002 */
  n = client_frames(w, WSE_OP_TEXT, 1, (const uint8_t *)"\xf2\x48\xcd\xc9\xc9\x07\x00", 7, 1);
  CHECK_EQ(first_error(WSE_WS_SERVER, w, n), 1002);
  CHECK_EQ(first_error(F, w, n), 0);
  /* RSV2/RSV3 are never ours -> 1002 */
  n = client_frames(w, WSE_OP_TEXT, 0, (const uint8_t *)"a", 1, 1);
  w[0] |= 0x20;
  CHECK_EQ(first_error(F, w, n), 1002);
}

/* ---- empty messages, threshold, pass-through --------------------------------------- */

static void test_empty_threshold_passthrough(void) {
  wsn_deflate_ctx_t *x = wsn_deflate_ctx_new();
  wse_config_t c = cfg;
  c.deflate_threshold = 0;
  wse_deflate_params_t p = params(0, 0, -1, -1);
  wsn_deflate_t *d = wsn_deflate_new(&c, &p);
  const uint8_t *f, *out;
  size_t fl, on;
  /* an empty message compresses to the stored-block byte 00 */
  CHECK_EQ(wsn_deflate_message(d, x, WSE_OP_TEXT, (const uint8_t *)"", 0, &f, &fl), WSE_OK);
  CHECK_MEM(f, fl, "\xc1\x01\x00", 3);
  /* received: "00" and a 0-byte payload are both the empty message, and
   * neither disturbs the context for the next one */
  CHECK_EQ(wsn_deflate_inflate(d, x, WSE_OP_TEXT, (const uint8_t *)"\x00", 1, &out, &on), WSE_OK);
  CHECK_EQ(on, 0);
  CHECK_EQ(wsn_deflate_inflate(d, x, WSE_OP_BINARY, (const uint8_t *)"", 0, &out, &on), WSE_OK);
  CHECK_EQ(on, 0);
  CHECK_EQ(wsn_deflate_inflate(d, x, WSE_OP_TEXT, (const uint8_t *)"\xf2\x48\xcd\xc9\xc9\x07\x00", 7,
                               &out, &on), WSE_OK);
  CHECK_MEM(out, on, "Hello", 5);
  wsn_deflate_stats_t st;
  wsn_deflate_stats(d, &st);
  CHECK_EQ(st.in_messages, 3);
  CHECK_EQ(st.in_inflated, 5);
  wsn_deflate_free(d);

  /* threshold: below it plain frames (RSV1 clear), at it compressed */
  c.deflate_threshold = 6;
  d = wsn_deflate_new(&c, &p);
  CHECK_EQ(wsn_deflate_message(d, x, WSE_OP_TEXT, (const uint8_t *)"Hello", 5, &f, &fl), WSE_OK);
  CHECK_MEM(f, fl, "\x81\x05Hello", 7);
  CHECK_EQ(wsn_deflate_message(d, x, WSE_OP_BINARY, (const uint8_t *)"Hello!", 6, &f, &fl), WSE_OK);
  CHECK_EQ(f[0], 0xc2);
  uint8_t appf[16];
  size_t an = (size_t)wse_frame_message(appf, sizeof appf, WSE_OP_TEXT, 0, (const uint8_t *)"Hello", 5, 0);
  CHECK_EQ(wsn_deflate_frame(d, x, appf, an, &f, &fl), WSE_OK);
  CHECK(f == appf);
  CHECK_EQ(fl, an);
  /* control frames, fragmented messages and non-data opcodes pass as is */
  uint8_t ping[] = {0x89, 0x06, 'a', 'b', 'c', 'd', 'e', 'f'};
  CHECK_EQ(wsn_deflate_frame(d, x, ping, sizeof ping, &f, &fl), WSE_OK);
  CHECK(f == ping && fl == sizeof ping);
  uint8_t frag[64];
  long fn = wse_frame_message(frag, sizeof frag, WSE_OP_TEXT, 0, (const uint8_t *)"Hello, fragments", 16, 8);
  CHECK_EQ(wsn_deflate_frame(d, x, frag, (size_t)fn, &f, &fl), WSE_OK);
  CHECK(f == frag && fl == (size_t)fn);
  CHECK_EQ(wsn_deflate_message(d, x, WSE_OP_PING, (const uint8_t *)"abcdef", 6, &f, &fl), WSE_EINVAL);
  CHECK_EQ(wsn_deflate_inflate(d, x, WSE_OP_CLOSE, (const uint8_t *)"\x00", 1, &out, &on), WSE_EINVAL);
  wsn_deflate_free(d);
  wsn_deflate_ctx_free(x);
}

/* ---- limits: the inflated size, bombs ------------------------------------------------ */

static size_t compress_zeros(size_t n, uint8_t **out) {
  client_t cl;
  client_init(&cl, 15, 15, 1, 1);
  uint8_t *z = calloc(1, n);
  size_t k = client_compress(&cl, z, n, out);
  free(z);
  client_free(&cl);
  return k;
}

static void test_limits(void) {
  wsn_deflate_ctx_t *x = wsn_deflate_ctx_new();
  wse_config_t c = cfg;
  const uint8_t *out;
  size_t on;
  wsn_deflate_stats_t st;
  /* exactly at the limit passes; one byte over is refused, after at most
   * limit + 1 bytes, even when the thread's output buffer is larger (left
   * by another connection's bigger message) */
  for (int cn = 0; cn <= 1; cn++) {
    uint8_t *cz;
    size_t czn = compress_zeros(50000, &cz);
    wse_deflate_params_t p = params(0, cn, -1, -1);
    wsn_deflate_t *other = wsn_deflate_new(&c, &p);
    CHECK_EQ(wsn_deflate_inflate(other, x, WSE_OP_BINARY, cz, czn, &out, &on), WSE_OK);
    CHECK_EQ(on, 50000);
    wsn_deflate_free(other);
    free(cz);
    c.max_message_size = 1000;
    czn = compress_zeros(1000, &cz);
    wsn_deflate_t *d = wsn_deflate_new(&c, &p);
    CHECK_EQ(wsn_deflate_inflate(d, x, WSE_OP_BINARY, cz, czn, &out, &on), WSE_OK);
    CHECK_EQ(on, 1000);
    free(cz);
    czn = compress_zeros(60000, &cz);
    CHECK_EQ(wsn_deflate_inflate(d, x, WSE_OP_BINARY, cz, czn, &out, &on), WSE_ETOOBIG);
    CHECK_EQ(wsn_deflate_close_code(WSE_ETOOBIG), 1009);
    wsn_deflate_stats(d, &st);
    CHECK_EQ(st.in_inflated, 1000 + 1001);
    free(cz);
    wsn_deflate_free(d);
    c.max_message_size = cfg.max_message_size;
  }

  /* a bomb: 100 MB of zeros in ~100 KB, limit 1 MiB, sent over the engine
   * (whose own limit sees only the compressed size) */
  uint8_t *cz;
  size_t czn = compress_zeros((size_t)100 << 20, &cz);
  printf("bomb: 100 MiB of zeros compressed to %zu bytes\n", czn);
  CHECK(czn < 200000);
  c.max_message_size = (uint64_t)1 << 20;
  wse_deflate_params_t p = params(0, 0, -1, -1);
  wsn_deflate_t *d = wsn_deflate_new(&c, &p);
  wse_ws_t ws;
  wse_ws_init(&ws, &c, &t_allocator, WSE_WS_SERVER | WSE_WS_RSV1);
  uint8_t *wire = malloc(czn + 64);
  size_t wn = client_frames(wire, WSE_OP_BINARY, 1, cz, czn, 1);
  wse_event_t ev;
  CHECK_EQ(engine_event(&ws, wire, wn, &ev), WSE_EV_MESSAGE);
  size_t mem_before = wsn_deflate_ctx_memory(x);
  (void)mem_before;
  CHECK_EQ(wsn_deflate_inflate(d, x, ev.opcode, ev.data, ev.len, &out, &on), WSE_ETOOBIG);
  wsn_deflate_stats(d, &st);
  printf("bomb: inflated %llu bytes before refusing (limit %llu)\n",
         (unsigned long long)st.in_inflated, (unsigned long long)c.max_message_size);
  CHECK(st.in_inflated <= c.max_message_size + 1);
  CHECK(st.in_inflated > c.max_message_size);
  /* the output buffer never grew past limit + 1 */
  CHECK(wsn_deflate_ctx_memory(x) <= c.max_message_size + 1 + (64u << 10) + 4096);
  wse_ws_free(&ws);
  wsn_deflate_free(d);
  free(wire);

  /* the same bomb as text: refused for size, not for UTF-8 (zeros are valid) */
  p = params(1, 1, -1, -1);
  d = wsn_deflate_new(&c, &p);
  CHECK_EQ(wsn_deflate_inflate(d, x, WSE_OP_TEXT, cz, czn, &out, &on), WSE_ETOOBIG);
  wsn_deflate_stats(d, &st);
  CHECK(st.in_inflated <= c.max_message_size + 1);
  wsn_deflate_free(d);
  free(cz);

  /* the shared (client no-context-takeover) inflater is reset after a
   * refused message: the next connection on the thread inflates fine */
  d = wsn_deflate_new(&c, &p);
  CHECK_EQ(wsn_deflate_inflate(d, x, WSE_OP_TEXT, (const uint8_t *)"\xf2\x48\xcd\xc9\xc9\x07\x00", 7,
                               &out, &on), WSE_OK);
  CHECK_MEM(out, on, "Hello", 5);
  wsn_deflate_free(d);
  wsn_deflate_ctx_free(x);
}

/* ---- UTF-8 and corrupt data ---------------------------------------------------------- */

static void test_utf8_and_corruption(void) {
  wsn_deflate_ctx_t *x = wsn_deflate_ctx_new();
  const uint8_t *out;
  size_t on;
  client_t cl;
  client_init(&cl, 15, 15, 1, 1);
  uint8_t *cz;
  /* invalid UTF-8 in a compressed text message -> 1007; as binary fine */
  static const uint8_t bad[] = {'o', 'k', 0xc3, 0x28, 'x'};
  size_t czn = client_compress(&cl, bad, sizeof bad, &cz);
  wse_deflate_params_t p = params(0, 1, -1, -1);
  wsn_deflate_t *d = wsn_deflate_new(&cfg, &p);
  CHECK_EQ(wsn_deflate_inflate(d, x, WSE_OP_TEXT, cz, czn, &out, &on), WSE_EUTF8);
  CHECK_EQ(wsn_deflate_close_code(WSE_EUTF8), 1007);
  CHECK_EQ(wsn_deflate_inflate(d, x, WSE_OP_BINARY, cz, czn, &out, &on), WSE_OK);
  CHECK_MEM(out, on, bad, sizeof bad);
  free(cz);
  /* a truncated character at the end -> 1007 */
  czn = client_compress(&cl, (const uint8_t *)"caf\xc3", 4, &cz);
  CHECK_EQ(wsn_deflate_inflate(d, x, WSE_OP_TEXT, cz, czn, &out, &on), WSE_EUTF8);
  free(cz);
  /* invalid UTF-8 deep inside a big message is found (fail-fast, chunked) */
  uint8_t *big = malloc(big_n);
  memcpy(big, big_text, big_n);
  big[big_n - 10] = 0xff;
  czn = client_compress(&cl, big, big_n, &cz);
  CHECK_EQ(wsn_deflate_inflate(d, x, WSE_OP_TEXT, cz, czn, &out, &on), WSE_EUTF8);
  CHECK_EQ(wsn_deflate_inflate(d, x, WSE_OP_TEXT, cz, czn - czn / 2, &out, &on), WSN_DEFLATE_EDATA);
  free(cz);
  free(big);
  /* a valid multi-byte text split across inflate output chunks */
  czn = client_compress(&cl, big_text, big_n, &cz);
  CHECK_EQ(wsn_deflate_inflate(d, x, WSE_OP_TEXT, cz, czn, &out, &on), WSE_OK);
  CHECK_MEM(out, on, big_text, big_n);
  /* truncated: the last byte of the sender's flush block missing (as text
   * the garbage this decodes to may fail UTF-8 first: binary here) */
  CHECK_EQ(wsn_deflate_inflate(d, x, WSE_OP_BINARY, cz, czn - 1, &out, &on), WSN_DEFLATE_EDATA);
  free(cz);
  /* not DEFLATE at all: reserved block type 11 */
  CHECK_EQ(wsn_deflate_inflate(d, x, WSE_OP_BINARY, (const uint8_t *)"\xff\xff\xff", 3, &out, &on),
           WSN_DEFLATE_EDATA);
  /* a stored block whose NLEN does not match */
  CHECK_EQ(wsn_deflate_inflate(d, x, WSE_OP_BINARY, (const uint8_t *)"\x00\x05\x00\x00\x00hello\x00", 11,
                               &out, &on), WSN_DEFLATE_EDATA);
  CHECK(strcmp(wsn_deflate_strerror(WSN_DEFLATE_EDATA), "invalid compressed data") == 0);
  wsn_deflate_free(d);
  client_free(&cl);
  wsn_deflate_ctx_free(x);
}

/* ---- broadcast: one compression per compressor setting ----------------------------- */

static void test_broadcast_cache(void) {
  wsn_deflate_ctx_t *x = wsn_deflate_ctx_new();
  wse_config_t c = cfg;
  c.deflate_threshold = 0;
  wse_deflate_params_t pn = params(1, 0, -1, -1), pn10 = params(1, 0, 10, -1), pt = params(0, 0, -1, -1);
  wsn_deflate_t *a = wsn_deflate_new(&c, &pn), *b = wsn_deflate_new(&c, &pn), *e = wsn_deflate_new(&c, &pn10);
  wsn_deflate_t *t1 = wsn_deflate_new(&c, &pt), *t2 = wsn_deflate_new(&c, &pt);
  uint8_t appf[3000];
  size_t an = (size_t)wse_frame_message(appf, sizeof appf, WSE_OP_TEXT, 0, big_text, 2000, 0);
  const uint8_t *fa, *fb, *fe, *f1;
  size_t la, lb, le, l1;
  uint8_t copy[3000];
  for (int round = 0; round < 2; round++) {
    wsn_deflate_next_message(x);
    CHECK_EQ(wsn_deflate_frame(a, x, appf, an, &fa, &la), WSE_OK);
    memcpy(copy, fa, la);
    CHECK_EQ(wsn_deflate_frame(t1, x, appf, an, &f1, &l1), WSE_OK); /* own stream */
    CHECK_EQ(wsn_deflate_frame(b, x, appf, an, &fb, &lb), WSE_OK);
    CHECK(fb == fa); /* the same cached bytes */
    CHECK_MEM(fb, lb, copy, la);
    CHECK_EQ(wsn_deflate_frame(e, x, appf, an, &fe, &le), WSE_OK);
    CHECK(fe != fa); /* another window: another compression */
    CHECK_EQ(wsn_deflate_frame(t2, x, appf, an, &f1, &l1), WSE_OK);
    if (round == 1) CHECK(l1 < la); /* takeover: the repeat is tiny */
  }
  wsn_deflate_stats_t st;
  wsn_deflate_stats(b, &st);
  CHECK_EQ(st.out_cached, 2);
  CHECK_EQ(st.out_messages, 2);
  wsn_deflate_stats(a, &st);
  CHECK_EQ(st.out_cached, 0);
  /* a new message is not served from the old cache */
  uint8_t appg[3000];
  size_t gn = (size_t)wse_frame_message(appg, sizeof appg, WSE_OP_TEXT, 0, big_text + 5000, 2000, 0);
  wsn_deflate_next_message(x);
  CHECK_EQ(wsn_deflate_frame(b, x, appg, gn, &fb, &lb), WSE_OK);
  client_t cl;
  client_init(&cl, 15, 15, 1, 1);
  uint8_t back[3000];
  wse_frame_header_t h;
  size_t off = server_frame(fb, lb, &h);
  long bn = client_inflate(&cl, fb + off, (size_t)h.len, back, sizeof back);
  CHECK_MEM(back, bn < 0 ? 0 : (size_t)bn, big_text + 5000, 2000);
  client_free(&cl);
  wsn_deflate_free(a);
  wsn_deflate_free(b);
  wsn_deflate_free(e);
  wsn_deflate_free(t1);
  wsn_deflate_free(t2);
  wsn_deflate_ctx_free(x);
}

/* Fan-out messages go to context-takeover receivers as the shared frame
 * (compressed once); their own streams restart without history afterwards,
 * so a client inflater that kept its whole window decodes every message of
 * any interleaving of own and shared frames. */
static void test_fanout_takeover(void) {
  wsn_deflate_ctx_t *x = wsn_deflate_ctx_new();
  wse_config_t c = cfg;
  c.deflate_threshold = 0;
  wse_deflate_params_t pt = params(0, 0, -1, -1), pn = params(1, 0, -1, -1);
  wsn_deflate_t *t1 = wsn_deflate_new(&c, &pt), *t2 = wsn_deflate_new(&c, &pt);
  wsn_deflate_t *n1 = wsn_deflate_new(&c, &pn);
  client_t c1, c2;
  client_init(&c1, 15, 15, 0, 0);
  client_init(&c2, 15, 15, 0, 0);
  uint8_t appf[4200], back[4200];
  /* a pattern of own (0) and fan-out (1) messages, every transition twice */
  static const int plan[] = {0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1, 0};
  for (size_t i = 0; i < sizeof plan / sizeof *plan; i++) {
    size_t n = 1500 + 150 * i;
    const uint8_t *msg = big_text + 37 * (i % 5); /* repeats: references pay off */
    size_t an = (size_t)wse_frame_message(appf, sizeof appf, WSE_OP_TEXT, 0, msg, n, 0);
    wsn_deflate_next_message(x);
    wsn_deflate_fanout(x, plan[i]);
    const uint8_t *f1, *f2, *fn;
    size_t l1, l2, ln;
    uint8_t copy[4200];
    CHECK_EQ(wsn_deflate_frame(t1, x, appf, an, &f1, &l1), WSE_OK);
    memcpy(copy, f1, l1);
    CHECK_EQ(wsn_deflate_frame(t2, x, appf, an, &f2, &l2), WSE_OK);
    CHECK_EQ(wsn_deflate_frame(n1, x, appf, an, &fn, &ln), WSE_OK);
    if (plan[i]) {
      /* one compression for everyone, takeover or not */
      CHECK(f2 == fn);
      CHECK_MEM(f2, l2, copy, l1);
    }
    wse_frame_header_t h;
    size_t off = server_frame(copy, l1, &h);
    long got = client_inflate(&c1, copy + off, (size_t)h.len, back, sizeof back);
    CHECK_MEM(back, got < 0 ? 0 : (size_t)got, msg, n);
    off = server_frame(f2, l2, &h);
    got = client_inflate(&c2, f2 + off, (size_t)h.len, back, sizeof back);
    CHECK_MEM(back, got < 0 ? 0 : (size_t)got, msg, n);
  }
  wsn_deflate_stats_t st;
  wsn_deflate_stats(t2, &st);
  CHECK_EQ(st.out_cached, 7); /* every fan-out message after t1 compressed it */
  client_free(&c1);
  client_free(&c2);
  wsn_deflate_free(t1);
  wsn_deflate_free(t2);
  wsn_deflate_free(n1);
  wsn_deflate_ctx_free(x);
}

/* ---- memory ------------------------------------------------------------------------- */

static void test_memory(void) {
  uint64_t base = wsn_deflate_memory();
  wsn_deflate_ctx_t *x = wsn_deflate_ctx_new();
  wse_config_t c = cfg;
  c.deflate_threshold = 0;
  wse_deflate_params_t p = params(0, 0, -1, -1);
  wsn_deflate_t *d = wsn_deflate_new(&c, &p);
  size_t idle = wsn_deflate_conn_memory(d);
  printf("memory: negotiated, unused connection: %zu bytes\n", idle);
  CHECK(idle < 256);
  const uint8_t *f, *out;
  size_t fl, on;
  CHECK_EQ(wsn_deflate_message(d, x, WSE_OP_TEXT, big_text, 5000, &f, &fl), WSE_OK);
  size_t after_send = wsn_deflate_conn_memory(d);
  CHECK_EQ(wsn_deflate_inflate(d, x, WSE_OP_TEXT, (const uint8_t *)"\xf2\x48\xcd\xc9\xc9\x07\x00", 7,
                               &out, &on), WSE_OK);
  size_t both = wsn_deflate_conn_memory(d);
  printf("memory: window 15/memLevel %d (the defaults) with context takeover: compressor %zu, "
         "inflater %zu, total %zu bytes per connection\n", c.deflate_mem_level,
         after_send - idle, both - after_send, both);
  /* zlib's documented bounds: (1 << (wbits+2)) + (1 << (memLevel+9)) and
   * (1 << wbits) + ~7 KB, plus per-allocation headers */
  CHECK(after_send - idle <= (1u << 17) + (1u << 17) + 8192);
  CHECK(both - after_send <= (1u << 15) + 8192);
  wsn_deflate_free(d);

  /* smaller settings, smaller bounds */
  c.deflate_mem_level = 1;
  p = params(0, 0, 9, 9);
  d = wsn_deflate_new(&c, &p);
  CHECK_EQ(wsn_deflate_message(d, x, WSE_OP_TEXT, big_text, 5000, &f, &fl), WSE_OK);
  CHECK_EQ(wsn_deflate_inflate(d, x, WSE_OP_TEXT, (const uint8_t *)"\xf2\x48\xcd\xc9\xc9\x07\x00", 7,
                               &out, &on), WSE_OK);
  size_t small = wsn_deflate_conn_memory(d);
  printf("memory: window 9/memLevel 1 with context takeover: %zu bytes per connection\n", small);
  CHECK(small <= (1u << 11) + (1u << 10) + (1u << 9) + 8192 + 8192);
  wsn_deflate_free(d);

  /* no context takeover: nothing per connection, the thread's streams */
  c.deflate_mem_level = 8;
  p = params(1, 1, -1, -1);
  d = wsn_deflate_new(&c, &p);
  CHECK_EQ(wsn_deflate_message(d, x, WSE_OP_TEXT, big_text, 5000, &f, &fl), WSE_OK);
  CHECK_EQ(wsn_deflate_inflate(d, x, WSE_OP_TEXT, (const uint8_t *)"\xf2\x48\xcd\xc9\xc9\x07\x00", 7,
                               &out, &on), WSE_OK);
  printf("memory: no context takeover: %zu bytes per connection, thread context %zu\n",
         wsn_deflate_conn_memory(d), wsn_deflate_ctx_memory(x));
  CHECK(wsn_deflate_conn_memory(d) < 256);
  CHECK(wsn_deflate_memory() > base);
  wsn_deflate_free(d);
  wsn_deflate_ctx_free(x);
  /* everything counted was given back */
  CHECK_EQ(wsn_deflate_memory(), base);
}

/* An idle context-takeover compressor is freed by wsn_deflate_tick and made
 * afresh; a client inflater that kept its window decodes everything. */
static void test_idle_release(void) {
  wsn_deflate_ctx_t *x = wsn_deflate_ctx_new();
  wse_config_t c = cfg;
  c.deflate_threshold = 0;
  wse_deflate_params_t p = params(0, 0, -1, -1);
  wsn_deflate_t *d = wsn_deflate_new(&c, &p);
  client_t cl;
  client_init(&cl, 15, 15, 0, 0);
  uint8_t *out = malloc(big_n + 64);
  size_t empty = wsn_deflate_conn_memory(d);
  for (int round = 0; round < 4; round++) {
    for (int m = 0; m < 3; m++) {
      const uint8_t *f;
      size_t fl;
      size_t n = 3000 + (size_t)(round * 3 + m) * 500;
      CHECK_EQ(wsn_deflate_message(d, x, WSE_OP_TEXT, big_text, n, &f, &fl), WSE_OK);
      wse_frame_header_t h;
      size_t hs = server_frame(f, fl, &h);
      CHECK(h.rsv == 4);
      long got = client_inflate(&cl, f + hs, (size_t)h.len, out, big_n + 64);
      CHECK_EQ(got, (long)n);
      CHECK(got == (long)n && memcmp(out, big_text, n) == 0);
      /* used this tick: a tick right after use keeps it */
      wsn_deflate_tick(d, 2);
      CHECK(wsn_deflate_conn_memory(d) > empty + (64u << 10));
    }
    size_t live = wsn_deflate_conn_memory(d);
    wsn_deflate_tick(d, 2); /* idle 1 of 2 */
    CHECK_EQ(wsn_deflate_conn_memory(d), live);
    wsn_deflate_tick(d, 2); /* idle 2 of 2: freed */
    CHECK_EQ(wsn_deflate_conn_memory(d), empty);
    wsn_deflate_tick(d, 0); /* 0: never (and nothing to free) */
  }
  /* idle_ticks 0 keeps a compressor forever */
  const uint8_t *f;
  size_t fl;
  CHECK_EQ(wsn_deflate_message(d, x, WSE_OP_TEXT, big_text, 1000, &f, &fl), WSE_OK);
  size_t live = wsn_deflate_conn_memory(d);
  for (int i = 0; i < 10; i++) wsn_deflate_tick(d, 0);
  CHECK_EQ(wsn_deflate_conn_memory(d), live);
  free(out);
  client_free(&cl);
  wsn_deflate_free(d);
  wsn_deflate_ctx_free(x);
}

int main(void) {
  wse_config_default(&cfg);
  make_corpus();
  test_rfc_examples();
  test_round_trips();
  test_fragmented_bytewise();
  test_rsv1_rules();
  test_empty_threshold_passthrough();
  test_limits();
  test_utf8_and_corruption();
  test_broadcast_cache();
  test_fanout_takeover();
  test_memory();
  test_idle_release();
  CHECK_EQ(wsn_deflate_memory(), 0);
  free(big_text);
  TEST_REPORT();
}
