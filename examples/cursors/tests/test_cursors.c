/* test_cursors.c — the cursors example through the recording host
 * (tests/c/apphost.h): the board check, the snapshot a joiner receives
 * (SELF + every other member's JOIN), JOIN/MOVE/LEAVE records byte for byte
 * with their recipients, bad input closed with 1003/1007, the route's
 * limits and Durable Object binding, and a simulated wake: a fresh app
 * restored from the ATTACH actions keeps every position.
 *
 * The test programs link the chat example's objects (its wsedge_app among
 * them), so the cursors app is compiled into this file under another name. */
#include "apphost.h"


#define REC 31

static wse_app_t *new_app(void) {
  wse_app_t *app = NULL;
  CHECK_EQ(wse_app_new(&app, &t_allocator, NULL), WSE_OK);
  CHECK_EQ(wsedge_app(app), WSE_OK);
  return app;
}

static void le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16),
  p[3] = (uint8_t)(v >> 24);
}

static uint32_t fbits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* The 8 bytes a client sends. */
static void pos8(uint8_t out[8], uint32_t xb, uint32_t yb) {
  le32(out, xb);
  le32(out + 4, yb);
}

#define NONE 0xBF800000u /* -1.0f */

/* Expected record: kind, the id of `seed`, x and y bits. */
static uint8_t *rec_at(uint8_t *buf, size_t i, unsigned kind, uint8_t seed,
                       uint32_t xb, uint32_t yb) {
  uint8_t *r = buf + i * REC;
  sidstr_t id = sid_str(seed);
  r[0] = (uint8_t)kind;
  memcpy(r + 1, id.s, WSE_SID_LEN);
  pos8(r + 23, xb, yb);
  return r;
}

static int move(wse_app_t *app, int32_t h, uint32_t xb, uint32_t yb, uint64_t now) {
  uint8_t p[8];
  pos8(p, xb, yb);
  guard_t g = guard_copy(p, 8);
  int r = wse_app_message(app, (uint32_t)h, WSE_OP_BINARY, g.data, 8, now);
  guard_free(&g);
  return r;
}

static int rcpts_are(const rec_t *r, size_t n, const int32_t *hs) {
  if (!r || r->n_rcpt != n) return 0;
  for (size_t i = 0; i < n; i++)
    if (r->rcpt[i] != (uint32_t)hs[i]) return 0;
  return 1;
}

/* The user data stored in an ATTACH action's attachment. */
static int attach_has(const rec_t *r, uint32_t h, uint32_t xb, uint32_t yb) {
  wse_attachment_t s;
  uint8_t want[8];
  if (!r || r->type != WSE_ACT_ATTACH || r->target != h) return 0;
  memset(&s, 0, sizeof s);
  if (wse_attachment_decode(r->data, r->len, &s) != WSE_OK) return 0;
  pos8(want, xb, yb);
  return s.user_len == 8 && memcmp(s.user, want, 8) == 0;
}

static uint8_t want[64 * REC];

static void test_upgrade(void) {
  wse_app_t *app = new_app();
  wse_response_t resp;
  req_t q;
  uint8_t ent[16];
  static const char *const bad[] = {
      "/cursors/a%20b", "/cursors/a+b", "/cursors/caf%C3%A9", "/cursors/a:b", "/cursors/a!",
      "/cursors/01234567890123456789012345678901234567890123456789012345678901234"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    req_ws(&q, bad[i]);
    seed_id(1, ent);
    CHECK_EQ(wse_app_upgrade(app, &q.r, ent, 1, NULL, &resp), WSE_EPOLICY);
    CHECK_EQ(resp.status, 400);
    CHECK_STR(resp.body, resp.body_len, "{\"error\":\"invalid board\"}");
  }
  CHECK_EQ(drain(app), 0);
  /* 64 bytes and every allowed character */
  int32_t h = ws_connect(app, "/cursors/012345678901234567890123456789012345678901234567890123456789-_.Z", 1, 1);
  CHECK(h >= 0);
  wse_session_t *s = wse_app_session(app, (uint32_t)h);
  CHECK_EQ(topic_of(app, s, 0).n, 64); /* the board is its one topic */
  CHECK_EQ(s->n_topics, 1);
  CHECK_EQ(s->user_len, 0); /* no position yet */
  drain(app);
  /* the query string is not part of the board */
  h = ws_connect(app, "/cursors/b1?x=1", 2, 1);
  s = wse_app_session(app, (uint32_t)h);
  CHECK_STR(topic_of(app, s, 0).p, topic_of(app, s, 0).n, "b1");
  drain(app);

  /* not routes of this app; a plain GET on the route */
  CHECK_EQ(http(app, "GET", "/cursors/b1", NULL, &resp), 400);
  CHECK_STR(resp.body, resp.body_len, "{\"error\":\"This endpoint requires a WebSocket upgrade\"}");
  CHECK_EQ(http(app, "GET", "/cursors", NULL, &resp), 404);
  CHECK_EQ(http(app, "GET", "/cursors/b1/x", NULL, &resp), 404);
  CHECK_EQ(http(app, "GET", "/ws", NULL, &resp), 404);
  CHECK_STR(resp.body, resp.body_len, "{\"error\":\"not found\"}");

  /* at the edge: one CURSOR_BOARDS object per board */
  wse_route_info_t info;
  CHECK_EQ(wse_app_route_info(app, S("/cursors/b1?x=2"), &info), WSE_ROUTE_WS);
  CHECK(info.durable && strcmp(info.durable, "CURSOR_BOARDS") == 0);
  CHECK_STR(info.key.p, info.key.n, "b1");
  CHECK_STR(info.pattern, strlen(info.pattern), "/cursors/:board");
  /* the route's limits: 128-byte frames and messages */
  const wse_config_t *cfg = NULL;
  CHECK_EQ(wse_app_match(app, S("/cursors/b1"), &cfg), 1);
  CHECK(cfg && cfg->max_message_size == 128 && cfg->max_frame_size == 128);
  CHECK(frames_ok);
  wse_app_free(app);
}

static void test_presence(void) {
  wse_app_t *app = new_app();
  const uint32_t q1 = fbits(0.25f), q3 = fbits(0.75f), half = fbits(0.5f);
  const uint32_t one = fbits(1.0f), tenth = fbits(0.1f);

  /* the first member: a snapshot of itself only, then its attachment */
  int32_t a = ws_connect(app, "/cursors/b", 1, 10);
  CHECK(a >= 0);
  CHECK_EQ(drain(app), 2);
  CHECK(recs[0].type == WSE_ACT_SEND && recs[0].target == (uint32_t)a);
  CHECK_EQ(recs[0].op, WSE_OP_BINARY);
  CHECK_MEM(recs[0].data, recs[0].len, rec_at(want, 0, 4, 1, NONE, NONE), REC);
  CHECK_EQ(recs[1].type, WSE_ACT_ATTACH);

  /* the second: SELF + A's JOIN; A gets B's JOIN */
  int32_t b = ws_connect(app, "/cursors/b", 2, 11);
  CHECK_EQ(drain(app), 3);
  CHECK(recs[0].type == WSE_ACT_SEND && recs[0].target == (uint32_t)b);
  rec_at(want, 0, 4, 2, NONE, NONE);
  rec_at(want, 1, 1, 1, NONE, NONE);
  CHECK_MEM(recs[0].data, recs[0].len, want, 2 * REC);
  CHECK_EQ(recs[1].type, WSE_ACT_BROADCAST);
  CHECK_EQ(recs[1].op, WSE_OP_BINARY);
  CHECK(rcpts_are(&recs[1], 1, (int32_t[]){a}));
  CHECK_MEM(recs[1].data, recs[1].len, rec_at(want, 0, 1, 2, NONE, NONE), REC);
  CHECK_EQ(recs[2].type, WSE_ACT_ATTACH);

  /* another board is another world */
  int32_t o = ws_connect(app, "/cursors/other", 9, 12);
  CHECK_EQ(drain(app), 2);
  CHECK_MEM(recs[0].data, recs[0].len, rec_at(want, 0, 4, 9, NONE, NONE), REC);

  /* A moves: B gets the MOVE, A's attachment holds the position */
  CHECK_EQ(move(app, a, q1, q3, 20), WSE_OK);
  CHECK_EQ(drain(app), 2);
  CHECK_EQ(recs[0].type, WSE_ACT_BROADCAST);
  CHECK(rcpts_are(&recs[0], 1, (int32_t[]){b}));
  CHECK_MEM(recs[0].data, recs[0].len, rec_at(want, 0, 2, 1, q1, q3), REC);
  CHECK(attach_has(&recs[1], (uint32_t)a, q1, q3));
  CHECK_MEM(wse_app_session(app, (uint32_t)a)->user, 8, want + 23, 8);
  /* the same position again: nothing to tell, nothing to store */
  CHECK_EQ(move(app, a, q1, q3, 21), WSE_OK);
  CHECK_EQ(drain(app), 0);
  /* the corners; -0 is stored and sent as +0 */
  CHECK_EQ(move(app, b, 0x80000000u, one, 22), WSE_OK);
  CHECK_EQ(drain(app), 2);
  CHECK(rcpts_are(&recs[0], 1, (int32_t[]){a}));
  CHECK_MEM(recs[0].data, recs[0].len, rec_at(want, 0, 2, 2, 0, one), REC);
  CHECK(attach_has(&recs[1], (uint32_t)b, 0, one));
  CHECK_EQ(move(app, b, 0, one, 23), WSE_OK); /* +0 now: the same */
  CHECK_EQ(drain(app), 0);
  CHECK_EQ(move(app, b, one, 0x80000000u, 23), WSE_OK);
  CHECK_EQ(drain(app), 2);
  CHECK_MEM(recs[0].data, recs[0].len, rec_at(want, 0, 2, 2, one, 0), REC);
  /* the smallest subnormal is in range */
  CHECK_EQ(move(app, b, 1, tenth, 24), WSE_OK);
  CHECK_EQ(drain(app), 2);
  CHECK_MEM(recs[0].data, recs[0].len, rec_at(want, 0, 2, 2, 1, tenth), REC);
  /* a member alone on its board: stored, sent to nobody */
  CHECK_EQ(move(app, o, half, half, 25), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK(attach_has(&recs[0], (uint32_t)o, half, half));

  /* a late joiner: every present member's current position, in board order */
  int32_t c = ws_connect(app, "/cursors/b", 3, 30);
  CHECK_EQ(drain(app), 3);
  CHECK(recs[0].type == WSE_ACT_SEND && recs[0].target == (uint32_t)c);
  rec_at(want, 0, 4, 3, NONE, NONE);
  rec_at(want, 1, 1, 1, q1, q3);
  rec_at(want, 2, 1, 2, 1, tenth);
  CHECK_MEM(recs[0].data, recs[0].len, want, 3 * REC);
  CHECK(rcpts_are(&recs[1], 2, (int32_t[]){a, b}));
  CHECK_MEM(recs[1].data, recs[1].len, rec_at(want, 0, 1, 3, NONE, NONE), REC);
  /* C moves: both others, not C */
  CHECK_EQ(move(app, c, half, q1, 31), WSE_OK);
  CHECK_EQ(drain(app), 2);
  CHECK(rcpts_are(&recs[0], 2, (int32_t[]){a, b}));
  CHECK_MEM(recs[0].data, recs[0].len, rec_at(want, 0, 2, 3, half, q1), REC);

  /* B leaves: the remaining members get its last position */
  CHECK_EQ(wse_app_close(app, (uint32_t)b, 1000, NULL, 0, 40), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].type, WSE_ACT_BROADCAST);
  CHECK(rcpts_are(&recs[0], 2, (int32_t[]){a, c}));
  CHECK_MEM(recs[0].data, recs[0].len, rec_at(want, 0, 3, 2, 1, tenth), REC);
  /* a dropped socket looks the same; a member that never moved: -1, -1 */
  int32_t d = ws_connect(app, "/cursors/b", 4, 41);
  drain(app);
  CHECK_EQ(wse_app_close(app, (uint32_t)d, 1006, NULL, 0, 42), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK(rcpts_are(&recs[0], 2, (int32_t[]){a, c}));
  CHECK_MEM(recs[0].data, recs[0].len, rec_at(want, 0, 3, 4, NONE, NONE), REC);
  CHECK_EQ(wse_app_close(app, (uint32_t)a, 1001, NULL, 0, 43), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK(rcpts_are(&recs[0], 1, (int32_t[]){c}));
  CHECK_MEM(recs[0].data, recs[0].len, rec_at(want, 0, 3, 1, q1, q3), REC);
  /* the last one out: nobody to tell */
  CHECK_EQ(wse_app_close(app, (uint32_t)c, 1000, NULL, 0, 44), WSE_OK);
  CHECK_EQ(drain(app), 0);
  CHECK_EQ(wse_app_close(app, (uint32_t)o, 1000, NULL, 0, 44), WSE_OK);
  CHECK_EQ(drain(app), 0);
  wse_app_stats_t st;
  wse_app_stats(app, &st);
  CHECK_EQ(st.sessions, 0);
  CHECK_EQ(st.rooms, 0);
  CHECK(frames_ok);
  wse_app_free(app);
}

/* Each bad message closes its sender (1003/1007) and tells nobody. */
static void test_bad_input(void) {
  wse_app_t *app = new_app();
  const uint32_t half = fbits(0.5f);
  int32_t w = ws_connect(app, "/cursors/bad", 1, 1); /* a witness */
  drain(app);
  static const struct { unsigned op; size_t n; uint32_t x, y; unsigned code; const char *reason; } bad[] = {
      {WSE_OP_TEXT, 8, 0x3F000000u, 0x3F000000u, 1003, "binary messages only"},
      {WSE_OP_TEXT, 0, 0, 0, 1003, "binary messages only"},
      {WSE_OP_BINARY, 0, 0, 0, 1007, "position must be 8 bytes"},
      {WSE_OP_BINARY, 7, 0x3F000000u, 0x3F000000u, 1007, "position must be 8 bytes"},
      {WSE_OP_BINARY, 9, 0x3F000000u, 0x3F000000u, 1007, "position must be 8 bytes"},
      {WSE_OP_BINARY, 16, 0x3F000000u, 0x3F000000u, 1007, "position must be 8 bytes"},
      {WSE_OP_BINARY, 8, 0x7FC00000u, 0x3F000000u, 1007, "position out of range"}, /* NaN */
      {WSE_OP_BINARY, 8, 0x3F000000u, 0xFFC00001u, 1007, "position out of range"}, /* -NaN */
      {WSE_OP_BINARY, 8, 0x7F800000u, 0x3F000000u, 1007, "position out of range"}, /* +Inf */
      {WSE_OP_BINARY, 8, 0x3F000000u, 0xFF800000u, 1007, "position out of range"}, /* -Inf */
      {WSE_OP_BINARY, 8, 0x3F800001u, 0x3F000000u, 1007, "position out of range"}, /* 1 + ulp */
      {WSE_OP_BINARY, 8, 0x3F000000u, 0x80000001u, 1007, "position out of range"}, /* -subnormal */
      {WSE_OP_BINARY, 8, 0xBF800000u, 0xBF800000u, 1007, "position out of range"}, /* "none" */
      {WSE_OP_BINARY, 8, 0x40000000u, 0x3F000000u, 1007, "position out of range"}, /* 2 */
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    uint8_t msg[16] = {0};
    pos8(msg, bad[i].x, bad[i].y);
    int32_t h = ws_connect(app, "/cursors/bad", (uint8_t)(10 + i), 2);
    CHECK(h >= 0);
    CHECK_EQ(move(app, h, half, half, 3), WSE_OK); /* a position to keep */
    drain(app);
    guard_t g = guard_copy(msg, bad[i].n);
    CHECK_EQ(wse_app_message(app, (uint32_t)h, bad[i].op, g.data, bad[i].n, 4), WSE_OK);
    guard_free(&g);
    CHECK_EQ(drain(app), 1);
    CHECK(recs[0].type == WSE_ACT_CLOSE && recs[0].target == (uint32_t)h);
    CHECK_EQ(recs[0].code, bad[i].code);
    CHECK_STR(recs[0].data, recs[0].len, bad[i].reason);
    /* the Close frame itself: FIN+Close, length, code, reason */
    uint8_t f[64] = {0x88, (uint8_t)(2 + strlen(bad[i].reason)),
                     (uint8_t)(bad[i].code >> 8), (uint8_t)bad[i].code};
    memcpy(f + 4, bad[i].reason, strlen(bad[i].reason));
    CHECK_MEM(recs[0].frame, recs[0].frame_len, f, 4 + strlen(bad[i].reason));
    /* the position did not change */
    CHECK_MEM(wse_app_session(app, (uint32_t)h)->user, 8, "\0\0\0\x3f\0\0\0\x3f", 8);
    /* the host completes the close: the witness sees the leave */
    CHECK_EQ(wse_app_close(app, (uint32_t)h, bad[i].code, NULL, 0, 5), WSE_OK);
    CHECK_EQ(drain(app), 1);
    CHECK(rcpts_are(&recs[0], 1, (int32_t[]){w}));
    CHECK_EQ(recs[0].data[0], 3);
  }
  /* text that looks like a position is still text */
  int32_t t = ws_connect(app, "/cursors/bad", 99, 6);
  drain(app);
  CHECK_EQ(ws_text(app, t, "{\"x\":0.5,\"y\":0.5}", 7), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK(recs[0].type == WSE_ACT_CLOSE && recs[0].code == 1003);
  CHECK_EQ(wse_app_close(app, (uint32_t)t, 1003, NULL, 0, 8), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_MEM(recs[0].data, recs[0].len, rec_at(want, 0, 3, 99, NONE, NONE), REC);
  wse_app_stats_t st;
  wse_app_stats(app, &st);
  CHECK_EQ(st.sessions, 1);
  CHECK(frames_ok);
  wse_app_free(app);
}

/* A Durable Object wakes: a fresh app rebuilt from the last attachment of
 * each session keeps the positions (snapshot, moves and leaves after). */
static void test_wake(void) {
  wse_app_t *app = new_app();
  const uint32_t x1 = fbits(0.125f), y1 = fbits(0.875f), x2 = fbits(0.3f), y2 = fbits(0.6f);
  uint8_t *att[3] = {0};
  size_t lens[3] = {0};
  int32_t hs[3];
  int32_t h[3];
  for (int i = 0; i < 3; i++) h[i] = ws_connect(app, "/cursors/w", (uint8_t)(i + 1), 100);
  drain(app);
  CHECK_EQ(move(app, h[0], fbits(0.9f), fbits(0.9f), 101), WSE_OK);
  drain(app);
  CHECK_EQ(move(app, h[0], x1, y1, 102), WSE_OK); /* the last one counts */
  CHECK_EQ(drain(app), 2);
  att[0] = dup_bytes(recs[1].data, recs[1].len);
  lens[0] = recs[1].len;
  CHECK_EQ(move(app, h[1], x2, y2, 103), WSE_OK);
  CHECK_EQ(drain(app), 2);
  att[1] = dup_bytes(recs[1].data, recs[1].len);
  lens[1] = recs[1].len;
  /* the third never moved: its attachment is the one from its open */
  {
    wse_session_t *s = wse_app_session(app, (uint32_t)h[2]);
    att[2] = malloc(WSE_ATTACHMENT_MAX);
    long k = encode_session(app, s, att[2], WSE_ATTACHMENT_MAX);
    CHECK(k > 0);
    lens[2] = (size_t)k;
  }
  wse_app_free(app);

  app = new_app();
  long n = wse_app_restore(app, (const uint8_t *const *)att, lens, 3, hs, 5000);
  CHECK_EQ(n, 3);
  CHECK(hs[0] >= 0 && hs[1] >= 0 && hs[2] >= 0);
  CHECK_EQ(drain(app), 0);
  /* a joiner after the wake sees everyone where they were */
  int32_t d = ws_connect(app, "/cursors/w", 4, 5001);
  CHECK_EQ(drain(app), 3);
  CHECK(recs[0].type == WSE_ACT_SEND && recs[0].target == (uint32_t)d);
  rec_at(want, 0, 4, 4, NONE, NONE);
  rec_at(want, 1, 1, 1, x1, y1);
  rec_at(want, 2, 1, 2, x2, y2);
  rec_at(want, 3, 1, 3, NONE, NONE);
  CHECK_MEM(recs[0].data, recs[0].len, want, 4 * REC);
  CHECK(rcpts_are(&recs[1], 3, (int32_t[]){hs[0], hs[1], hs[2]}));
  /* the restored session's position is still what a repeat is compared to */
  CHECK_EQ(move(app, hs[0], x1, y1, 5002), WSE_OK);
  CHECK_EQ(drain(app), 0);
  CHECK_EQ(move(app, hs[2], x2, y1, 5003), WSE_OK);
  CHECK_EQ(drain(app), 2);
  CHECK(rcpts_are(&recs[0], 3, (int32_t[]){hs[0], hs[1], d}));
  CHECK_MEM(recs[0].data, recs[0].len, rec_at(want, 0, 2, 3, x2, y1), REC);
  CHECK_EQ(wse_app_close(app, (uint32_t)hs[1], 1001, NULL, 0, 5004), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK(rcpts_are(&recs[0], 3, (int32_t[]){hs[0], hs[2], d}));
  CHECK_MEM(recs[0].data, recs[0].len, rec_at(want, 0, 3, 2, x2, y2), REC);
  for (int i = 0; i < 3; i++) free(att[i]);
  CHECK(frames_ok);
  wse_app_free(app);
}

/* Many members: the snapshot is one message of SELF + N-1 JOIN records. */
static void test_big_board(void) {
  wse_app_t *app = new_app();
  static uint8_t big[200 * REC];
  for (int i = 0; i < 199; i++) {
    int32_t h = ws_connect(app, "/cursors/big", (uint8_t)(i + 1), 1);
    CHECK(h >= 0);
    CHECK_EQ(move(app, h, fbits((float)i / 256.0f), fbits(1.0f - (float)i / 256.0f), 2), WSE_OK);
    drain(app);
  }
  int32_t last = ws_connect(app, "/cursors/big", 200, 3);
  CHECK(last >= 0);
  CHECK_EQ(drain(app), 3);
  CHECK_EQ(recs[0].len, 200 * REC);
  rec_at(big, 0, 4, 200, NONE, NONE);
  for (int i = 0; i < 199; i++)
    rec_at(big, (size_t)i + 1, 1, (uint8_t)(i + 1), fbits((float)i / 256.0f),
           fbits(1.0f - (float)i / 256.0f));
  CHECK_MEM(recs[0].data, recs[0].len, big, sizeof big);
  CHECK_EQ(recs[1].n_rcpt, 199);
  CHECK(frames_ok);
  wse_app_free(app);
}

int main(void) {
  test_upgrade();
  test_presence();
  test_bad_input();
  test_wake();
  test_big_board();
  recs_reset();
  TEST_REPORT();
}
