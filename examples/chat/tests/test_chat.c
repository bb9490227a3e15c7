/* test_chat.c — the example application (echo + chat) through the recording
 * host: upgrade checks (room, name, subprotocol), the chat events byte for
 * byte including escaping, direct messages, errors to the sender only,
 * binary relay, leave, the HTTP push and stats routes, and a simulated
 * Durable Object wake (restore from the ATTACH actions). */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS under -D_POSIX_C_SOURCE */
#include "apphost.h"

#define TS 1700000000123ull

static wse_app_t *chat_app(void) {
  wse_app_t *app = NULL;
  CHECK_EQ(wse_app_new(&app, &t_allocator, NULL), WSE_OK);
  CHECK_EQ(wsedge_app(app), WSE_OK);
  return app;
}

static char want[8192];

/* The one action of a given type in recs[] (NULL when not exactly one). */
static rec_t *only(int type) {
  rec_t *r = NULL;
  for (size_t i = 0; i < n_recs; i++)
    if (recs[i].type == type) {
      if (r) return NULL;
      r = &recs[i];
    }
  return r;
}

static int rcpts_are(const rec_t *r, size_t n, const int32_t *hs) {
  if (!r || r->n_rcpt != n) return 0;
  for (size_t i = 0; i < n; i++)
    if (r->rcpt[i] != (uint32_t)hs[i]) return 0;
  return 1;
}

static void test_upgrade_checks(void) {
  wse_app_t *app = chat_app();
  wse_response_t resp;
  wse_upgrade_t u;
  req_t q;
  uint8_t ent[16];
  static const char *const bad_rooms[] = {
      "/chat/a%20b", "/chat/a+b", "/chat/caf%C3%A9", "/chat/a:b", "/chat/a!",
      "/chat/01234567890123456789012345678901234567890123456789012345678901234"};
  for (size_t i = 0; i < sizeof bad_rooms / sizeof *bad_rooms; i++) {
    req_ws(&q, bad_rooms[i]);
    seed_id(1, ent);
    CHECK_EQ(wse_app_upgrade(app, &q.r, ent, 1, NULL, &resp), WSE_EPOLICY);
    CHECK_EQ(resp.status, 400);
    CHECK_STR(resp.body, resp.body_len, "{\"error\":\"invalid room\"}");
  }
  static const char *const bad_names[] = {
      "/chat/r?name=", "/chat/r?name", "/chat/r?name=%FF", "/chat/r?name=%C3",
      "/chat/r?name=a%01b", "/chat/r?name=tab%09", "/chat/r?name=del%7F",
      "/chat/r?name=c1%C2%85", "/chat/r?name=%G1", "/chat/r?name=%4",
      "/chat/r?name=123456789012345678901234567890123",
      ("/chat/r?name=%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9"
       "%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9x")}; /* 33 bytes */
  for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
    req_ws(&q, bad_names[i]);
    CHECK_EQ(wse_app_upgrade(app, &q.r, ent, 1, NULL, &resp), WSE_EPOLICY);
    CHECK_EQ(resp.status, 400);
    CHECK_STR(resp.body, resp.body_len, "{\"error\":\"invalid name\"}");
  }
  wse_app_stats_t st;
  wse_app_stats(app, &st);
  CHECK_EQ(st.sessions, 0);
  CHECK_EQ(drain(app), 0);

  /* the limits themselves are fine */
  int32_t h = ws_connect(app,
                         "/chat/0123456789012345678901234567890123456789012345678901234567890123"
                         "?name=12345678901234567890123456789012",
                         1, 1);
  CHECK(h >= 0);
  /* the room is the session's one topic, the name its user blob */
  wse_session_t *s = wse_app_session(app, (uint32_t)h);
  CHECK_EQ(s->n_topics, 1);
  CHECK_EQ(topic_of(app, s, 0).n, 64);
  CHECK_EQ(s->user_len, 32);
  h = ws_connect(app, "/chat/a.B-c_9?name=J%C3%B6rg+%C2%A0x&other=1", 2, 1);
  CHECK(h >= 0);
  s = wse_app_session(app, (uint32_t)h);
  CHECK_STR(s->user, s->user_len, "J\xc3\xb6rg \xc2\xa0x");
  CHECK(topics_are(app, s, (const char *const[]){"a.B-c_9", NULL}));
  /* no name: guest- and the first 6 characters of the id */
  h = ws_connect(app, "/chat/r", 3, 1);
  CHECK(h >= 0);
  sidstr_t id3 = sid_str(3);
  snprintf(want, sizeof want, "guest-%.6s", id3.s);
  s = wse_app_session(app, (uint32_t)h);
  CHECK_STR(s->user, s->user_len, want);
  drain(app);

  /* chat.v1 is offered, not required */
  req_ws(&q, "/chat/r?name=p");
  req_hdr(&q, "Sec-WebSocket-Protocol", "other, chat.v1");
  seed_id(4, ent);
  CHECK(wse_app_upgrade(app, &q.r, ent, 1, &u, &resp) >= 0);
  CHECK_EQ(u.subprotocol, 0);
  CHECK_STR(resp.headers, resp.headers_len,
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            "Sec-WebSocket-Protocol: chat.v1\r\n");
  req_ws(&q, "/chat/r?name=p");
  req_hdr(&q, "Sec-WebSocket-Protocol", "other");
  seed_id(5, ent);
  CHECK(wse_app_upgrade(app, &q.r, ent, 1, &u, &resp) >= 0);
  CHECK_EQ(u.subprotocol, -1);
  CHECK_STR(resp.headers, resp.headers_len,
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n");
  /* /ws has no subprotocols at all */
  req_ws(&q, "/ws");
  req_hdr(&q, "Sec-WebSocket-Protocol", "chat.v1");
  seed_id(6, ent);
  CHECK(wse_app_upgrade(app, &q.r, ent, 1, &u, &resp) >= 0);
  CHECK_EQ(u.subprotocol, -1);
  wse_app_free(app);
}

/* A room event ends ,"seq":N}: tests that are about something else give
 * the event without it; then any N >= 1 is accepted (test_history checks
 * the numbers). */
static uint64_t last_seq;
static void expect_event(const rec_t *r, const char *json) {
  CHECK(r != NULL);
  if (!r) return;
  size_t n = r->len, wn = strlen(json);
  const char *d = (const char *)r->data;
  last_seq = 0;
  if (!strstr(json, "\"seq\":") && n > wn && d[n - 1] == '}') {
    size_t k = n - 1;
    while (k > 0 && d[k - 1] >= '0' && d[k - 1] <= '9') k--;
    if (k >= 7 && !memcmp(d + k - 7, ",\"seq\":", 7) && k < n - 1) {
      last_seq = strtoull(d + k, NULL, 10);
      CHECK(last_seq >= 1);
      char buf[8192];
      snprintf(buf, sizeof buf, "%.*s}", (int)(k - 7), d);
      CHECK_STR(buf, strlen(buf), json);
      return;
    }
  }
  CHECK_STR(d, n, json);
}

static void test_events(void) {
  wse_app_t *app = chat_app();
  sidstr_t A = sid_str(1), B = sid_str(2), C = sid_str(3);
  int32_t a = ws_connect(app, "/chat/room1?name=alice", 1, TS);
  /* join: to every member, the joiner included; then its attachment */
  CHECK_EQ(drain(app), 2);
  CHECK_EQ(recs[0].type, WSE_ACT_BROADCAST);
  CHECK_EQ(recs[1].type, WSE_ACT_ATTACH);
  snprintf(want, sizeof want, "{\"type\":\"join\",\"id\":\"%s\",\"name\":\"alice\",\"count\":1}", A.s);
  expect_event(&recs[0], want);
  CHECK(rcpts_are(&recs[0], 1, (int32_t[]){a}));
  /* a name needing escapes */
  int32_t b = ws_connect(app, "/chat/room1?name=q%22b%5Cs%2F%C3%A9", 2, TS);
  CHECK_EQ(drain(app), 2);
  snprintf(want, sizeof want,
           "{\"type\":\"join\",\"id\":\"%s\",\"name\":\"q\\\"b\\\\s/\xc3\xa9\",\"count\":2}", B.s);
  expect_event(only(WSE_ACT_BROADCAST), want);
  CHECK(rcpts_are(only(WSE_ACT_BROADCAST), 2, (int32_t[]){a, b}));
  int32_t c = ws_connect(app, "/chat/room2?name=carol", 3, TS);
  CHECK_EQ(drain(app), 2);
  snprintf(want, sizeof want, "{\"type\":\"join\",\"id\":\"%s\",\"name\":\"carol\",\"count\":1}", C.s);
  expect_event(only(WSE_ACT_BROADCAST), want);
  CHECK(rcpts_are(only(WSE_ACT_BROADCAST), 1, (int32_t[]){c}));

  /* plain text: to every member including the sender; room2 untouched */
  CHECK_EQ(ws_text(app, a, "hi", TS + 1), WSE_OK);
  CHECK_EQ(drain(app), 1);
  snprintf(want, sizeof want,
           "{\"type\":\"message\",\"id\":\"%s\",\"name\":\"alice\",\"text\":\"hi\",\"ts\":%llu}",
           A.s, TS + 1);
  expect_event(&recs[0], want);
  CHECK(rcpts_are(&recs[0], 2, (int32_t[]){a, b}));
  CHECK_EQ(recs[0].op, WSE_OP_TEXT);

  /* escaping: quotes, backslashes, control characters, non-ASCII, U+2028 */
  CHECK_EQ(ws_text(app, b, "say \"x\" \\ n\n r\r t\t \x01\x1f\x7f caf\xc3\xa9 \xe2\x82\xac "
                           "\xf0\x9f\x98\x80 \xe2\x80\xa8|\xe2\x80\xa9", TS + 2), WSE_OK);
  CHECK_EQ(drain(app), 1);
  snprintf(want, sizeof want,
           "{\"type\":\"message\",\"id\":\"%s\",\"name\":\"q\\\"b\\\\s/\xc3\xa9\","
           "\"text\":\"say \\\"x\\\" \\\\ n\\n r\\r t\\t \\u0001\\u001f\x7f caf\xc3\xa9 \xe2\x82\xac "
           "\xf0\x9f\x98\x80 \\u2028|\\u2029\",\"ts\":%llu}",
           B.s, TS + 2);
  expect_event(&recs[0], want);

  /* JSON form, with escapes decoded then re-encoded */
  CHECK_EQ(ws_text(app, a, "{\"text\":\"a\\u00e9\\ud83d\\ude00\\n\\/\"}", TS + 3), WSE_OK);
  CHECK_EQ(drain(app), 1);
  snprintf(want, sizeof want,
           "{\"type\":\"message\",\"id\":\"%s\",\"name\":\"alice\","
           "\"text\":\"a\xc3\xa9\xf0\x9f\x98\x80\\n/\",\"ts\":%llu}", A.s, TS + 3);
  expect_event(&recs[0], want);
  /* text that merely looks like JSON later on is plain */
  CHECK_EQ(ws_text(app, a, " {\"text\":1}", TS + 3), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].type, WSE_ACT_BROADCAST);

  /* the size limit: 4096 bytes pass, 4097 do not */
  static char big[4200];
  memset(big, 'x', 4096);
  big[4096] = 0;
  CHECK_EQ(ws_text(app, a, big, TS + 4), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].type, WSE_ACT_BROADCAST);
  CHECK_EQ(recs[0].len, 4096 + 22 + 5 + 52 + 13 + 8); /* ,"seq":N with N < 10 */

  /* errors go to the sender only */
  static const struct { const char *in, *err; } errs[] = {
      {"", "empty message"},
      {"{\"text\":\"\"}", "empty message"},
      {"{", "invalid message"},
      {"{}", "missing text"},
      {"{\"to\":\"x\"}", "missing text"},
      {"{\"text\":5}", "invalid message"},
      {"{\"text\":\"a\",\"extra\":\"b\"}", "invalid message"},
      {"{\"text\":\"a\",\"text\":\"b\"}", "invalid message"},
      {"{\"text\":\"a\"} trailing", "invalid message"},
      {"{\"text\":\"\\ud800\"}", "invalid message"},
      {"{\"to\":\"nope\",\"text\":\"a\"}", "no such session"},
      {"{\"to\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"text\":\"a\"}", "no such session"},
  };
  for (size_t i = 0; i < sizeof errs / sizeof *errs; i++) {
    CHECK_EQ(ws_text(app, b, errs[i].in, TS + 5), WSE_OK);
    CHECK_EQ(drain(app), 1);
    CHECK_EQ(recs[0].type, WSE_ACT_SEND);
    CHECK_EQ(recs[0].target, (uint32_t)b);
    snprintf(want, sizeof want, "{\"type\":\"error\",\"error\":\"%s\"}", errs[i].err);
    expect_event(&recs[0], want);
  }
  memset(big, 'y', 4097);
  big[4097] = 0;
  CHECK_EQ(ws_text(app, b, big, TS + 5), WSE_OK);
  CHECK_EQ(drain(app), 1);
  expect_event(&recs[0], "{\"type\":\"error\",\"error\":\"message too long\"}");
  /* 4097 bytes after decoding, 4095 characters + an escaped pair */
  char *jb = malloc(5000);
  strcpy(jb, "{\"text\":\"");
  memset(jb + 9, 'z', 4095);
  strcpy(jb + 9 + 4095, "\\u00e9\"}");
  CHECK_EQ(ws_text(app, b, jb, TS + 5), WSE_OK);
  CHECK_EQ(drain(app), 1);
  expect_event(&recs[0], "{\"type\":\"error\",\"error\":\"message too long\"}");
  free(jb);
  /* a session of another room cannot be addressed */
  snprintf(want, sizeof want, "{\"to\":\"%s\",\"text\":\"psst\"}", C.s);
  CHECK_EQ(ws_text(app, a, want, TS + 6), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].target, (uint32_t)a);
  expect_event(&recs[0], "{\"type\":\"error\",\"error\":\"no such session\"}");

  /* direct: the addressee and a copy to the sender, same bytes */
  snprintf(want, sizeof want, "{\"to\":\"%s\",\"text\":\"psst\"}", B.s);
  CHECK_EQ(ws_text(app, a, want, TS + 7), WSE_OK);
  CHECK_EQ(drain(app), 2);
  snprintf(want, sizeof want,
           "{\"type\":\"direct\",\"id\":\"%s\",\"name\":\"alice\",\"text\":\"psst\",\"ts\":%llu}",
           A.s, TS + 7);
  CHECK(recs[0].type == WSE_ACT_SEND && recs[0].target == (uint32_t)b);
  CHECK(recs[1].type == WSE_ACT_SEND && recs[1].target == (uint32_t)a);
  expect_event(&recs[0], want);
  expect_event(&recs[1], want);
  /* to oneself: once */
  snprintf(want, sizeof want, "{\"text\":\"me\",\"to\":\"%s\"}", A.s);
  CHECK_EQ(ws_text(app, a, want, TS + 8), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].target, (uint32_t)a);

  /* the heartbeat (what the Workers runtime auto-responds): the sender only;
   * anything else that looks like it is an ordinary message or an error */
  CHECK_EQ(ws_text(app, a, "{\"type\":\"ping\"}", TS + 8), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK(recs[0].type == WSE_ACT_SEND && recs[0].target == (uint32_t)a);
  expect_event(&recs[0], "{\"type\":\"pong\"}");
  CHECK_EQ(ws_text(app, a, "{\"type\": \"ping\"}", TS + 8), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].target, (uint32_t)a);
  expect_event(&recs[0], "{\"type\":\"error\",\"error\":\"invalid message\"}");

  /* binary: unchanged, to the other members only */
  uint8_t bin[5] = {0, 0xff, '{', 1, 2};
  CHECK_EQ(wse_app_message(app, (uint32_t)a, WSE_OP_BINARY, bin, 5, TS + 9), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].op, WSE_OP_BINARY);
  CHECK_MEM(recs[0].data, recs[0].len, bin, 5);
  CHECK(rcpts_are(&recs[0], 1, (int32_t[]){b}));
  CHECK_EQ(wse_app_message(app, (uint32_t)c, WSE_OP_BINARY, bin, 5, TS + 9), WSE_OK);
  CHECK_EQ(drain(app), 0); /* alone in room2 */

  /* leave: the remaining members, with the count after leaving */
  CHECK_EQ(wse_app_close(app, (uint32_t)b, 1000, NULL, 0, TS + 10), WSE_OK);
  CHECK_EQ(drain(app), 1);
  snprintf(want, sizeof want,
           "{\"type\":\"leave\",\"id\":\"%s\",\"name\":\"q\\\"b\\\\s/\xc3\xa9\",\"count\":1}", B.s);
  expect_event(&recs[0], want);
  CHECK(rcpts_are(&recs[0], 1, (int32_t[]){a}));
  /* an abrupt disconnect looks the same to the others */
  int32_t d = ws_connect(app, "/chat/room1?name=dan", 4, TS);
  drain(app);
  CHECK_EQ(wse_app_close(app, (uint32_t)d, 1006, NULL, 0, TS + 11), WSE_OK);
  CHECK_EQ(drain(app), 1);
  sidstr_t D = sid_str(4);
  snprintf(want, sizeof want, "{\"type\":\"leave\",\"id\":\"%s\",\"name\":\"dan\",\"count\":1}", D.s);
  expect_event(&recs[0], want);
  /* the last one out: nobody to tell */
  CHECK_EQ(wse_app_close(app, (uint32_t)a, 1001, NULL, 0, TS + 12), WSE_OK);
  CHECK_EQ(drain(app), 0);
  CHECK_EQ(wse_app_close(app, (uint32_t)c, 1006, NULL, 0, TS + 12), WSE_OK);
  CHECK_EQ(drain(app), 0);
  wse_app_stats_t st;
  wse_app_stats(app, &st);
  CHECK_EQ(st.sessions, 0);
  CHECK_EQ(st.rooms, 0);
  CHECK(frames_ok);
  wse_app_free(app);
}

static int push(wse_app_t *app, const char *room, const char *body, wse_response_t *r) {
  char target[128];
  snprintf(target, sizeof target, "/chat/%s/messages", room);
  return http(app, "POST", target, body, r);
}

static void test_http_routes(void) {
  wse_app_t *app = chat_app();
  wse_response_t r;
  sidstr_t A = sid_str(1);
  int32_t a = ws_connect(app, "/chat/room1?name=alice", 1, 1);
  int32_t b = ws_connect(app, "/chat/room1?name=bob", 2, 1);
  ws_connect(app, "/chat/room2?name=carol", 3, 1);
  drain(app);

  CHECK_EQ(push(app, "room1", "hello \"all\"", &r), 200);
  CHECK_STR(r.body, r.body_len, "{\"delivered\":2}");
  CHECK_EQ(drain(app), 1);
  expect_event(&recs[0], "{\"type\":\"message\",\"id\":\"server\",\"name\":\"server\","
                         "\"text\":\"hello \\\"all\\\"\",\"ts\":5000}");
  CHECK(rcpts_are(&recs[0], 2, (int32_t[]){a, b}));
  CHECK_EQ(push(app, "room1", "{\"text\":\"json\"}", &r), 200);
  CHECK_STR(r.body, r.body_len, "{\"delivered\":2}");
  CHECK_EQ(drain(app), 1);
  expect_event(&recs[0], "{\"type\":\"message\",\"id\":\"server\",\"name\":\"server\","
                         "\"text\":\"json\",\"ts\":5000}");
  /* direct from the server */
  snprintf(want, sizeof want, "{\"to\":\"%s\",\"text\":\"just you\"}", A.s);
  CHECK_EQ(push(app, "room1", want, &r), 200);
  CHECK_STR(r.body, r.body_len, "{\"delivered\":1}");
  CHECK_EQ(drain(app), 1);
  CHECK(recs[0].type == WSE_ACT_SEND && recs[0].target == (uint32_t)a);
  expect_event(&recs[0], "{\"type\":\"direct\",\"id\":\"server\",\"name\":\"server\","
                         "\"text\":\"just you\",\"ts\":5000}");
  CHECK_EQ(push(app, "room2", want, &r), 404); /* alice is not in room2 */
  CHECK_STR(r.body, r.body_len, "{\"error\":\"no such session\"}");
  CHECK_EQ(push(app, "room1", "{\"to\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"text\":\"x\"}", &r), 404);
  CHECK_STR(r.body, r.body_len, "{\"error\":\"no such session\"}");
  /* an empty room */
  CHECK_EQ(push(app, "nobody", "anyone?", &r), 200);
  CHECK_STR(r.body, r.body_len, "{\"delivered\":0}");
  CHECK_EQ(drain(app), 0);
  /* bad bodies and rooms */
  static const struct { const char *room, *body, *json; } bad[] = {
      {"room1", "", "{\"error\":\"empty message\"}"},
      {"room1", "{", "{\"error\":\"invalid message\"}"},
      {"room1", "{\"text\":5}", "{\"error\":\"invalid message\"}"},
      {"room1", "{\"to\":\"x\"}", "{\"error\":\"missing text\"}"},
      {"room1", "\xff\xfe", "{\"error\":\"invalid message\"}"},
      {"room1", "{\"text\":\"\xc3\"}", "{\"error\":\"invalid message\"}"},
      {"a%20b", "x", "{\"error\":\"invalid room\"}"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    CHECK_EQ(push(app, bad[i].room, bad[i].body, &r), 400);
    CHECK_STR(r.body, r.body_len, bad[i].json);
  }
  static char big[4200];
  memset(big, 'x', 4097);
  CHECK_EQ(push(app, "room1", big, &r), 400);
  CHECK_STR(r.body, r.body_len, "{\"error\":\"message too long\"}");
  CHECK_EQ(drain(app), 0);

  /* stats */
  CHECK_EQ(http(app, "GET", "/chat/room1/stats", NULL, &r), 200);
  CHECK_STR(r.body, r.body_len,
            "{\"room\":\"room1\",\"members\":2,\"sessions\":3,\"restored\":0,\"wakes\":0}");
  CHECK_EQ(http(app, "GET", "/chat/empty/stats?x=1", NULL, &r), 200);
  CHECK_STR(r.body, r.body_len,
            "{\"room\":\"empty\",\"members\":0,\"sessions\":3,\"restored\":0,\"wakes\":0}");
  CHECK_EQ(http(app, "GET", "/chat/a%22b/stats", NULL, &r), 400);
  CHECK_STR(r.body, r.body_len, "{\"error\":\"invalid room\"}");

  /* methods and paths */
  CHECK_EQ(http(app, "GET", "/chat/room1/messages", NULL, &r), 405);
  CHECK_STR(r.headers, r.headers_len, "Allow: POST\r\n");
  CHECK_EQ(http(app, "POST", "/chat/room1/stats", NULL, &r), 405);
  CHECK_STR(r.headers, r.headers_len, "Allow: GET\r\n");
  CHECK_EQ(http(app, "GET", "/chat/room1", NULL, &r), 400);
  CHECK_STR(r.body, r.body_len, "{\"error\":\"This endpoint requires a WebSocket upgrade\"}");
  CHECK_EQ(http(app, "GET", "/ws", NULL, &r), 400);
  CHECK_EQ(http(app, "GET", "/", NULL, &r), 404);
  CHECK_STR(r.body, r.body_len, "{\"error\":\"not found\"}");
  CHECK_EQ(http(app, "GET", "/chat", NULL, &r), 404);
  CHECK_EQ(http(app, "GET", "/chat/room1/other", NULL, &r), 404);
  CHECK_EQ(drain(app), 0);
  wse_app_free(app);
}

static void test_echo(void) {
  wse_app_t *app = chat_app();
  int32_t h = ws_connect(app, "/ws", 1, 1);
  CHECK(h >= 0);
  CHECK_EQ(drain(app), 1); /* its ATTACH; echo says nothing on open */
  CHECK_EQ(recs[0].type, WSE_ACT_ATTACH);
  size_t sizes[] = {0, 1, 125, 126, 65535, 65536, 200000};
  int ok = 1;
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    uint8_t *p = malloc(sizes[i] + 1);
    for (size_t k = 0; k < sizes[i]; k++) p[k] = (uint8_t)(k * 31 + i);
    for (unsigned op = WSE_OP_TEXT; op <= WSE_OP_BINARY; op++) {
      CHECK_EQ(wse_app_message(app, (uint32_t)h, op, p, sizes[i], 2), WSE_OK);
      ok &= drain(app) == 1 && recs[0].type == WSE_ACT_SEND && recs[0].op == op &&
            recs[0].target == (uint32_t)h && recs[0].len == sizes[i] &&
            (sizes[i] == 0 || memcmp(recs[0].data, p, sizes[i]) == 0);
    }
    free(p);
  }
  CHECK(ok);
  CHECK(frames_ok);
  wse_app_free(app);
}

/* A Durable Object wakes: a fresh app rebuilt from the stored attachments. */
static void test_wake(void) {
  wse_app_t *app = chat_app();
  uint8_t *att[4] = {0};
  size_t lens[4];
  int32_t hs[4];
  sidstr_t A = sid_str(1), B = sid_str(2);
  const char *targets[3] = {"/chat/h?name=ann", "/chat/h?name=bo%22b", "/chat/h?name=cy"};
  for (int i = 0; i < 3; i++) {
    int32_t h = ws_connect(app, targets[i], (uint8_t)(i + 1), 100 + (uint64_t)i);
    drain(app);
    rec_t *r = only(WSE_ACT_ATTACH);
    CHECK(r && r->target == (uint32_t)h);
    att[i] = malloc(r->len);
    memcpy(att[i], r->data, r->len);
    lens[i] = r->len;
  }
  att[3] = malloc(lens[2]);
  memcpy(att[3], att[2], lens[2]);
  lens[3] = lens[2];
  att[2][lens[2] - 1] ^= 1; /* corrupt cy's stored copy */
  wse_app_free(app);

  app = chat_app();
  long n = wse_app_restore(app, (const uint8_t *const *)att, lens, 3, hs, 5000);
  CHECK_EQ(n, 2);
  CHECK(hs[0] >= 0 && hs[1] >= 0);
  CHECK_EQ(hs[2], WSE_ATT_ECHECKSUM);
  for (int i = 0; i < 2; i++) { /* the stored room and name are back */
    wse_session_t *s = wse_app_session(app, (uint32_t)hs[i]);
    CHECK(topics_are(app, s, (const char *const[]){"h", NULL}));
    CHECK_STR(s->user, s->user_len, i ? "bo\"b" : "ann");
  }
  {
    wse_attachment_t d; /* what the ATTACH of an open stored */
    CHECK_EQ(wse_attachment_decode(att[1], lens[1], &d), WSE_OK);
    CHECK_EQ(d.n_topics, 1);
    CHECK_STR(d.topics[0].p, d.topics[0].n, "h");
    CHECK_STR(d.user, d.user_len, "bo\"b");
    CHECK_STR(d.pattern.p, d.pattern.n, "/chat/:room");
  }
  wse_response_t r;
  CHECK_EQ(http(app, "GET", "/chat/h/stats", NULL, &r), 200);
  CHECK_STR(r.body, r.body_len,
            "{\"room\":\"h\",\"members\":2,\"sessions\":2,\"restored\":2,\"wakes\":1}");
  /* a message right after the wake: ids and names intact */
  CHECK_EQ(ws_text(app, hs[1], "back", 6000), WSE_OK);
  CHECK_EQ(drain(app), 1);
  snprintf(want, sizeof want,
           "{\"type\":\"message\",\"id\":\"%s\",\"name\":\"bo\\\"b\",\"text\":\"back\",\"ts\":6000}",
           B.s);
  expect_event(&recs[0], want);
  CHECK(rcpts_are(&recs[0], 2, (int32_t[]){hs[0], hs[1]}));
  /* a second wake restores the good copy of the third */
  n = wse_app_restore(app, (const uint8_t *const *)&att[3], &lens[3], 1, &hs[3], 7000);
  CHECK_EQ(n, 1);
  CHECK_EQ(http(app, "GET", "/chat/h/stats", NULL, &r), 200);
  CHECK_STR(r.body, r.body_len,
            "{\"room\":\"h\",\"members\":3,\"sessions\":3,\"restored\":3,\"wakes\":2}");
  CHECK_EQ(wse_app_close(app, (uint32_t)hs[0], 1000, NULL, 0, 8000), WSE_OK);
  CHECK_EQ(drain(app), 1);
  snprintf(want, sizeof want, "{\"type\":\"leave\",\"id\":\"%s\",\"name\":\"ann\",\"count\":2}", A.s);
  expect_event(&recs[0], want);
  for (int i = 0; i < 4; i++) free(att[i]);
  wse_app_free(app);
}

/* A push at host time `now`. */
static int push_at(wse_app_t *app, const char *room, const char *body, uint64_t now,
                   wse_response_t *r) {
  char target[128];
  req_t q;
  snprintf(target, sizeof target, "/chat/%s/messages", room);
  req_init(&q, "POST", target);
  req_hdr(&q, "Host", "example.com");
  return wse_app_http(app, &q.r, (const uint8_t *)body, strlen(body), now, r);
}

/* "at": scheduled messages are timers of their room. */
static void test_scheduled(void) {
  wse_app_t *app = chat_app();
  wse_response_t r;
  int32_t h1 = ws_connect(app, "/chat/s?name=ann", 1, 1000);
  int32_t h2 = ws_connect(app, "/chat/s?name=bob", 2, 1000);
  CHECK(h1 >= 0 && h2 >= 0);
  drain(app);
  CHECK_EQ(push_at(app, "s", "{\"text\":\"later\",\"at\":15000}", 10000, &r), 200);
  CHECK_STR(r.body, r.body_len, "{\"scheduled\":true,\"due_at\":15000,\"seq_due_at\":15000}");
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].type, WSE_ACT_TIMER);
  CHECK_EQ(recs[0].op, 1);
  uint8_t stored[256];
  size_t stored_n = recs[0].frame_len;
  memcpy(stored, recs[0].frame, stored_n);
  CHECK_EQ(http(app, "GET", "/chat/s/stats", NULL, &r), 200);
  CHECK_STR(r.body, r.body_len,
            "{\"room\":\"s\",\"members\":2,\"sessions\":2,\"restored\":0,\"wakes\":0}");
  CHECK_EQ(wse_app_timer_next(app), 15000);
  CHECK_EQ(wse_app_timers_run(app, 14999), 0);
  CHECK_EQ(wse_app_timers_run(app, 15003), 1);
  CHECK_EQ(drain(app), 2);
  CHECK_EQ(recs[0].type, WSE_ACT_TIMER);
  CHECK_EQ(recs[0].op, 0);
  expect_event(&recs[1], "{\"type\":\"message\",\"id\":\"server\",\"name\":\"server\",\"text\":\"later\",\"ts\":15003}");
  CHECK(rcpts_are(&recs[1], 2, (int32_t[]){h1, h2}));
  CHECK_EQ(wse_app_timer_next(app), 0);

  /* the same "at" twice, and one set after an earlier one ran: every
   * message has a key of its own, none replaces another */
  CHECK_EQ(push_at(app, "s", "{\"text\":\"A\",\"at\":20000}", 16000, &r), 200);
  CHECK_EQ(push_at(app, "s", "{\"text\":\"B\",\"at\":30000}", 16000, &r), 200);
  CHECK_EQ(push_at(app, "s", "{\"text\":\"B2\",\"at\":30000}", 16000, &r), 200);
  drain(app);
  CHECK_EQ(wse_app_timers_run(app, 20000), 1);
  drain(app);
  CHECK_EQ(push_at(app, "s", "{\"text\":\"C\",\"at\":30000}", 21000, &r), 200);
  drain(app);
  CHECK_EQ(wse_app_timers_run(app, 30000), 3);
  CHECK_EQ(drain(app), 6);
  expect_event(&recs[1], "{\"type\":\"message\",\"id\":\"server\",\"name\":\"server\",\"text\":\"B\",\"ts\":30000}");
  expect_event(&recs[3], "{\"type\":\"message\",\"id\":\"server\",\"name\":\"server\",\"text\":\"B2\",\"ts\":30000}");
  expect_event(&recs[5], "{\"type\":\"message\",\"id\":\"server\",\"name\":\"server\",\"text\":\"C\",\"ts\":30000}");

  /* in the past: due at once (the next pass) */
  CHECK_EQ(push_at(app, "s", "{\"text\":\"late\",\"at\":1}", 40000, &r), 200);
  CHECK_STR(r.body, r.body_len, "{\"scheduled\":true,\"due_at\":40000,\"seq_due_at\":40000}");
  drain(app);
  CHECK_EQ(wse_app_timers_run(app, 40000), 1);
  drain(app);

  /* bad "at" */
  static const struct { const char *body, *json; } bad[] = {
      {"{\"text\":\"x\",\"at\":0}", "{\"error\":\"invalid at\"}"},
      {"{\"text\":\"x\",\"at\":\"50000\"}", "{\"error\":\"invalid message\"}"},
      {"{\"text\":\"x\",\"at\":-5}", "{\"error\":\"invalid message\"}"},
      {"{\"text\":\"x\",\"at\":50000.5}", "{\"error\":\"invalid message\"}"},
      {"{\"text\":\"x\",\"at\":5e4}", "{\"error\":\"invalid message\"}"},
      {"{\"text\":\"x\",\"at\":0123}", "{\"error\":\"invalid message\"}"},
      {"{\"text\":\"x\",\"at\":99999999999999999999999}", "{\"error\":\"invalid at\"}"},
      {"{\"text\":5,\"at\":50000}", "{\"error\":\"invalid message\"}"},
      {"{\"at\":50000}", "{\"error\":\"missing text\"}"},
      {"{\"text\":\"x\",\"at\":604850001}", "{\"error\":\"at is more than 7 days ahead\"}"},
      {"{\"text\":\"x\",\"to\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"at\":50000}", "{\"error\":\"at cannot be used with to\"}"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    CHECK_EQ(push_at(app, "s", bad[i].body, 50000, &r), 400);
    CHECK_STR(r.body, r.body_len, bad[i].json);
  }
  /* exactly 7 days ahead is fine */
  CHECK_EQ(push_at(app, "s", "{\"text\":\"x\",\"at\":604850000}", 50000, &r), 200);
  drain(app);
  /* a WebSocket client cannot schedule */
  CHECK_EQ(ws_text(app, h1, "{\"text\":\"x\",\"at\":60000}", 50000), WSE_OK);
  CHECK_EQ(drain(app), 1);
  expect_event(&recs[0], "{\"type\":\"error\",\"error\":\"invalid message\"}");
  wse_app_free(app);

  /* a wake: the stored record goes into a fresh app (a Durable Object's
   * alarm after eviction); the message reaches the members then */
  app = chat_app();
  CHECK_EQ(wse_app_timer_load(app, stored, stored_n), WSE_OK);
  h1 = ws_connect(app, "/chat/s?name=cy", 3, 14000);
  drain(app);
  CHECK_EQ(wse_app_timers_run(app, 15000), 1);
  CHECK_EQ(drain(app), 2);
  expect_event(&recs[1], "{\"type\":\"message\",\"id\":\"server\",\"name\":\"server\",\"text\":\"later\",\"ts\":15000}");
  CHECK(rcpts_are(&recs[1], 1, (int32_t[]){h1}));

  /* the room's limit: 429 past 1,024 scheduled messages */
  for (int i = 0; i < WSE_TIMERS_MAX; i++) {
    if (push_at(app, "full", "{\"text\":\"x\",\"at\":90000}", 16000, &r) != 200) CHECK(0);
    drain(app);
  }
  CHECK_EQ(push_at(app, "full", "{\"text\":\"x\",\"at\":90000}", 16000, &r), 429);
  CHECK_STR(r.body, r.body_len, "{\"error\":\"too many scheduled messages\"}");
  CHECK_EQ(wse_app_timers_run(app, 90000), WSE_TIMERS_MAX);
  drain(app);
  CHECK(frames_ok);
  wse_app_free(app);
}

/* The events of the last drain, as strings, by type (BROADCAST or SEND). */
static int rec_has(size_t i, int type, const char *json) {
  return i < n_recs && recs[i].type == type && recs[i].len == strlen(json) &&
         !memcmp(recs[i].data, json, recs[i].len);
}

/* Sequence numbers, history and ?since= (the numbers exactly). */
static void test_history(void) {
  wse_app_t *app = chat_app();
  wse_response_t r;
  sidstr_t A = sid_str(1), B = sid_str(2);
  int32_t a = ws_connect(app, "/chat/h?name=ann", 1, 1000);
  CHECK_EQ(drain(app), 2);
  snprintf(want, sizeof want, "{\"type\":\"join\",\"id\":\"%s\",\"name\":\"ann\",\"count\":1,\"seq\":1}", A.s);
  CHECK(rec_has(0, WSE_ACT_BROADCAST, want));
  CHECK_EQ(n_hist_recs, 1);
  CHECK_EQ(hist_seqs[0], 1);
  int32_t b = ws_connect(app, "/chat/h?name=bob", 2, 1001);
  drain(app);
  CHECK_EQ(hist_seqs[0], 2);
  CHECK_EQ(ws_text(app, a, "one", 1002), WSE_OK);
  CHECK_EQ(drain(app), 1);
  snprintf(want, sizeof want, "{\"type\":\"message\",\"id\":\"%s\",\"name\":\"ann\",\"text\":\"one\",\"ts\":1002,\"seq\":3}", A.s);
  CHECK(rec_has(0, WSE_ACT_BROADCAST, want));
  char m3[256];
  snprintf(m3, sizeof m3, "%s", want);
  /* a direct message is not numbered and moves nothing */
  snprintf(want, sizeof want, "{\"to\":\"%s\",\"text\":\"psst\"}", B.s);
  CHECK_EQ(ws_text(app, a, want, 1003), WSE_OK);
  CHECK_EQ(drain(app), 2);
  CHECK_EQ(n_hist_recs, 0);
  CHECK(strstr((const char *)recs[0].data, "seq") == NULL);
  /* a push, a scheduled message: numbered too */
  CHECK_EQ(push_at(app, "h", "pushed", 1004, &r), 200);
  drain(app);
  CHECK_EQ(hist_seqs[0], 4);
  CHECK_EQ(push_at(app, "h", "{\"text\":\"timed\",\"at\":1005}", 1004, &r), 200);
  drain(app);
  CHECK_EQ(wse_app_timers_run(app, 1005), 1);
  drain(app);
  CHECK_EQ(hist_seqs[0], 5);
  CHECK_EQ(wse_app_close(app, (uint32_t)b, 1000, NULL, 0, 1006), WSE_OK);
  CHECK_EQ(drain(app), 1);
  snprintf(want, sizeof want, "{\"type\":\"leave\",\"id\":\"%s\",\"name\":\"bob\",\"count\":1,\"seq\":6}", B.s);
  CHECK(rec_has(0, WSE_ACT_BROADCAST, want));

  /* bob is back with since=2: 3..6 in order, then his own join (7) */
  int32_t b2 = ws_connect(app, "/chat/h?name=bob&since=2", 3, 1007);
  CHECK(b2 >= 0);
  CHECK_EQ(drain(app), 6);
  CHECK(rec_has(0, WSE_ACT_SEND, m3) && recs[0].target == (uint32_t)b2);
  for (int i = 1; i < 4; i++) CHECK(recs[i].type == WSE_ACT_SEND && recs[i].target == (uint32_t)b2);
  CHECK(strstr((const char *)recs[1].data, "\"text\":\"pushed\"") && strstr((const char *)recs[1].data, "\"seq\":4}"));
  CHECK(strstr((const char *)recs[2].data, "\"text\":\"timed\"") && strstr((const char *)recs[2].data, "\"seq\":5}"));
  CHECK(rec_has(3, WSE_ACT_SEND, want)); /* his leave, seq 6 */
  CHECK_EQ(recs[4].type, WSE_ACT_BROADCAST);
  CHECK(strstr((const char *)recs[4].data, "\"type\":\"join\"") && strstr((const char *)recs[4].data, "\"count\":2,\"seq\":7}"));
  CHECK_EQ(recs[5].type, WSE_ACT_ATTACH);
  /* the blob is the name again: the attachment holds no since */
  {
    wse_session_t *sb = wse_app_session(app, (uint32_t)b2);
    CHECK_STR(sb->user, sb->user_len, "bob");
  }
  /* since at the end: nothing missed, only the join */
  int32_t c3 = ws_connect(app, "/chat/h?name=cy&since=7", 4, 1008);
  CHECK(c3 >= 0);
  CHECK_EQ(drain(app), 2);
  CHECK_EQ(recs[0].type, WSE_ACT_BROADCAST);
  /* since=0: everything kept */
  int32_t d4 = ws_connect(app, "/chat/h?name=di&since=0", 5, 1009);
  CHECK(d4 >= 0);
  CHECK_EQ(drain(app), 8 + 2);
  /* a bad since */
  static const char *const bad[] = {"/chat/h?since=abc", "/chat/h?since=-1", "/chat/h?since=01",
                                    "/chat/h?since=", "/chat/h?since=99999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    CHECK(ws_connect(app, bad[i], 9, 1010) < 0);
    CHECK_EQ(last_resp.status, 400);
    CHECK(strstr((const char *)last_resp.body, "invalid since") != NULL);
    drain(app);
  }

  /* past the last 100: a gap, then the 100 kept */
  for (int i = 0; i < 150; i++) {
    char t[16];
    snprintf(t, sizeof t, "m%d", i);
    CHECK_EQ(ws_text(app, a, t, 2000), WSE_OK);
    drain(app);
  }
  /* seq now 9 + 150 = 159; kept 60..159 */
  int32_t e5 = ws_connect(app, "/chat/h?name=eve&since=10", 6, 3000);
  CHECK(e5 >= 0);
  CHECK_EQ(drain(app), 1 + 100 + 2);
  CHECK(rec_has(0, WSE_ACT_SEND, "{\"type\":\"gap\",\"from\":11,\"to\":59}"));
  CHECK(strstr((const char *)recs[1].data, "\"seq\":60}") != NULL);
  CHECK(strstr((const char *)recs[100].data, "\"seq\":159}") != NULL);
  CHECK(strstr((const char *)recs[101].data, "\"seq\":160}") != NULL);
  CHECK(frames_ok); /* every HISTORY record well formed, in its ring slot */
  wse_app_free(app);
}

/* A wake: a fresh app loads the stored records and numbers on. */
static void test_history_wake(void) {
  wse_app_t *app = chat_app();
  uint8_t rec[256];
  const char *ev = "{\"type\":\"message\",\"id\":\"server\",\"name\":\"server\",\"text\":\"old\",\"ts\":1,\"seq\":41}";
  size_t n = 0, en = strlen(ev);
  rec[n++] = 1, rec[n++] = 1, rec[n++] = 'w';
  for (int i = 0; i < 8; i++) rec[n++] = (uint8_t)(41ull >> (8 * i));
  memcpy(rec + n, ev, en);
  CHECK_EQ(wse_app_history_load(app, rec, n + en), WSE_OK);
  CHECK_EQ(wse_app_history_load(app, rec, n + en), WSE_EINVAL); /* not after 41 */
  CHECK_EQ(wse_app_history_load(app, rec, 5), WSE_EINVAL);
  rec[0] = 2;
  CHECK_EQ(wse_app_history_load(app, rec, n + en), WSE_EINVAL);
  int32_t a = ws_connect(app, "/chat/w?name=ann&since=40", 1, 5000);
  CHECK(a >= 0);
  CHECK_EQ(drain(app), 3);
  CHECK(rec_has(0, WSE_ACT_SEND, ev));
  CHECK(strstr((const char *)recs[1].data, "\"seq\":42}") != NULL);
  CHECK_EQ(drain(app), 0);
  wse_app_free(app);

  /* natively the bound: the least recently written room's history goes;
   * a room made again numbers on above it */
  app = chat_app();
  wse_app_history_limit(app, 4096);
  wse_response_t r;
  CHECK_EQ(push_at(app, "r1", "a", 1, &r), 200);
  CHECK_EQ(push_at(app, "r1", "b", 1, &r), 200);
  drain(app);
  for (int i = 0; i < 40; i++) { /* other rooms push r1 out */
    char room[16];
    snprintf(room, sizeof room, "o%d", i);
    CHECK_EQ(push_at(app, room, "filler filler filler filler filler filler", 2, &r), 200);
    drain(app);
  }
  CHECK_EQ(push_at(app, "r1", "c", 3, &r), 200);
  drain(app);
  CHECK(hist_seqs[0] > 2); /* never 1 or 2 again */
  a = ws_connect(app, "/chat/r1?name=ann&since=1", 1, 5000);
  CHECK_EQ(drain(app), 4);
  CHECK(a >= 0);
  /* r1's kept history starts at "c": 2 .. c-1 are gone */
  CHECK(recs[1].type == WSE_ACT_SEND && strstr((const char *)recs[1].data, "\"text\":\"c\""));
  {
    const char *d = strstr((const char *)recs[1].data, "\"seq\":");
    unsigned long long cs = d ? strtoull(d + 6, NULL, 10) : 0;
    snprintf(want, sizeof want, "{\"type\":\"gap\",\"from\":2,\"to\":%llu}", cs - 1);
    CHECK(rec_has(0, WSE_ACT_SEND, want));
    CHECK(cs > 2);
  }
  wse_app_free(app);
}

int main(void) {
  test_upgrade_checks();
  test_events();
  test_http_routes();
  test_echo();
  test_wake();
  test_scheduled();
  test_history();
  test_history_wake();
  recs_reset();
  TEST_REPORT();
}
