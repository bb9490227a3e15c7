/* test_app.c — the application layer through a recording host: routing and
 * params, upgrade accept/reject paths, every handler and context operation,
 * rooms, topics (several per session: broadcast, leave one, the limit,
 * joins recorded in on_upgrade, join order, restore, freeing), broadcast
 * with exclusions, send-to-session, close, ATTACH coalescing, HTTP routes
 * (404/405/400/500), restore from attachments with corrupt and duplicate
 * entries, arena reuse, allocation failures, and the HTTP response
 * writer. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS under -D_POSIX_C_SOURCE */
#include "apphost.h"

/* ---- a probe route driven by text commands ----------------------------- */

static int last_rc, opens, closes, errors, last_err;
static unsigned close_code;
static char close_reason[64], close_name[64];
static int close_saw_session, close_found_by_id;
static int upgrade_send_rc, up_join_rc, up_topic_rc;
static size_t up_count;
static char up_topic0[WSE_TOPIC_MAX + 1];
static wse_params_t up_params;
static char up_param_buf[4][32];

/* The probe keeps a display name and other data in the session's one user
 * blob: [name length u8][name][data]. */
static wse_str_t blob_name(const uint8_t *u, size_t n) {
  wse_str_t r = {"", 0};
  if (n && u[0] < n) r.p = (const char *)u + 1, r.n = u[0];
  return r;
}

static wse_str_t blob_data(const uint8_t *u, size_t n) {
  wse_str_t r = {"", 0};
  if (n && u[0] < n) r.p = (const char *)u + 1 + u[0], r.n = n - 1 - u[0];
  return r;
}

static int probe_store(wse_ctx_t *c, wse_str_t name, wse_str_t data) {
  static uint8_t b[WSE_USERDATA_MAX];
  if (name.n > 255 || 1 + name.n + data.n > sizeof b) return WSE_EINVAL;
  b[0] = (uint8_t)name.n;
  if (name.n) memmove(b + 1, name.p, name.n);
  if (data.n) memmove(b + 1 + name.n, data.p, data.n);
  return wse_set_user(c, b, 1 + name.n + data.n);
}

static int set_name(wse_ctx_t *c, const char *p, size_t n) {
  wse_session_t *s = wse_ctx_session(c);
  wse_str_t name = {p, n};
  return s ? probe_store(c, name, blob_data(s->user, s->user_len)) : WSE_EINVAL;
}

static int set_data(wse_ctx_t *c, const char *p, size_t n) {
  wse_session_t *s = wse_ctx_session(c);
  wse_str_t data = {p, n};
  return s ? probe_store(c, blob_name(s->user, s->user_len), data) : WSE_EINVAL;
}

static int starts(const uint8_t *p, size_t n, const char *pre, const char **rest,
                  size_t *rn) {
  size_t k = strlen(pre);
  if (n < k || memcmp(p, pre, k) != 0) return 0;
  *rest = (const char *)p + k;
  *rn = n - k;
  return 1;
}

static int probe_upgrade(wse_ctx_t *c, const wse_request_t *req,
                         const wse_params_t *prm) {
  char v[64];
  long n = wse_query_param(req->target, "deny", v, sizeof v);
  up_params = *prm;
  for (size_t i = 0; i < prm->n; i++) { /* keep copies: the request goes away */
    snprintf(up_param_buf[i], sizeof up_param_buf[i], "%.*s", (int)prm->value[i].n,
             prm->value[i].p);
  }
  upgrade_send_rc = wse_send(c, WSE_OP_TEXT, "x", 1);
  if (n == 1 && v[0] == '1') return wse_reject(c, 401, "nope \"x\"");
  if (n == 1 && v[0] == '2') return 1;
  if (n == 1 && v[0] == '3') return wse_reject(c, 200, "not an error status");
  int deny_after_joins = n == 1 && v[0] == '4';
  wse_str_t name = {"", 0};
  if ((n = wse_query_param(req->target, "name", v, sizeof v)) >= 0)
    name.p = v, name.n = (size_t)n;
  probe_store(c, name, S("U"));
  /* topics joined here are recorded; the session is a member once open */
  up_join_rc = up_topic_rc = 1;
  up_count = 99;
  if (prm->n) {
    up_join_rc = wse_join(c, prm->value[0].p, prm->value[0].n);
    up_count = wse_room_count(c, prm->value[0].p, prm->value[0].n);
  }
  if ((n = wse_query_param(req->target, "also", v, sizeof v)) > 0)
    up_join_rc = wse_join(c, v, (size_t)n);
  if (wse_query_param(req->target, "many", v, sizeof v) >= 0)
    for (int i = 0; i < WSE_TOPICS_MAX; i++) { /* m0..m15: the 16th fails */
      char t[8];
      up_join_rc = wse_join(c, t, (size_t)snprintf(t, sizeof t, "m%d", i));
    }
  wse_str_t t0;
  up_topic_rc = wse_ctx_topic(c, 0, &t0);
  snprintf(up_topic0, sizeof up_topic0, "%.*s", up_topic_rc ? 0 : (int)t0.n, t0.p);
  if (deny_after_joins) return wse_reject(c, 409, "after joins");
  return 0;
}

static void probe_open(wse_ctx_t *c) {
  opens++;
  CHECK(wse_ctx_session(c) != NULL);
}

static void probe_message(wse_ctx_t *c, unsigned op, const uint8_t *p, size_t n) {
  const char *r;
  size_t rn;
  wse_session_t *s = wse_ctx_session(c);
  char tmp[64];
  if (op == WSE_OP_BINARY) last_rc = wse_send(c, op, p, n);
  else if (starts(p, n, "echo:", &r, &rn)) last_rc = wse_send(c, WSE_OP_TEXT, r, rn);
  else if (starts(p, n, "join:", &r, &rn)) last_rc = wse_join(c, r, rn);
  else if (starts(p, n, "leave", &r, &rn)) last_rc = wse_leave(c);
  else if (starts(p, n, "part:", &r, &rn)) last_rc = wse_leave_topic(c, r, rn);
  else if (starts(p, n, "move:", &r, &rn)) /* leave every topic, join one */
    last_rc = wse_leave(c) | wse_join(c, r, rn);
  else if (starts(p, n, "topic:", &r, &rn)) { /* topic i, or "-" */
    wse_str_t t = {"-", 1};
    snprintf(tmp, sizeof tmp, "%.*s", (int)(rn < 8 ? rn : 8), r);
    last_rc = wse_ctx_topic(c, (size_t)atoi(tmp), &t);
    if (last_rc) t.p = "-", t.n = 1;
    wse_send(c, WSE_OP_TEXT, t.p, t.n);
  }
  else if (starts(p, n, "name:", &r, &rn)) last_rc = set_name(c, r, rn);
  else if (starts(p, n, "user:", &r, &rn)) last_rc = set_data(c, r, rn);
  else if (starts(p, n, "wipe", &r, &rn)) last_rc = wse_set_user(c, NULL, 0);
  else if (starts(p, n, "bcast:", &r, &rn))
    last_rc = wse_broadcast(c, r, rn, WSE_OP_TEXT, "B", 1, NULL, 0);
  else if (starts(p, n, "bcastx:", &r, &rn))
    last_rc = wse_broadcast(c, r, rn, WSE_OP_BINARY, "\x00\x01", 2, &s->id, 1);
  else if (starts(p, n, "to:", &r, &rn)) {
    wse_sid_t id;
    last_rc = wse_sid_parse(r, WSE_SID_LEN, &id);
    if (!last_rc) last_rc = wse_send_to(c, &id, WSE_OP_TEXT, r + 23, rn - 23);
  } else if (starts(p, n, "close:", &r, &rn)) {
    snprintf(tmp, sizeof tmp, "%.*s", (int)(rn < 8 ? rn : 8), r); /* bounded */
    unsigned code = (unsigned)atoi(tmp);
    const char *colon = memchr(r, ':', rn);
    last_rc = wse_close(c, code, colon ? colon + 1 : NULL,
                        colon ? rn - (size_t)(colon + 1 - r) : 0);
  } else if (starts(p, n, "kill:", &r, &rn)) {
    wse_sid_t id;
    last_rc = wse_sid_parse(r, rn, &id);
    if (!last_rc) last_rc = wse_close_session(c, &id, 4001, "kicked", 6);
  } else if (starts(p, n, "count:", &r, &rn)) {
    int k = snprintf(tmp, sizeof tmp, "%zu", wse_room_count(c, r, rn));
    last_rc = wse_send(c, WSE_OP_TEXT, tmp, (size_t)k);
  } else if (starts(p, n, "multi", &r, &rn)) {
    last_rc = set_name(c, "m1", 2) | set_name(c, "m2", 2) |
              set_data(c, "abc", 3) | wse_join(c, "mroom", 5);
  } else if (starts(p, n, "time", &r, &rn)) {
    int k = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)wse_ctx_now(c));
    last_rc = wse_send(c, WSE_OP_TEXT, tmp, (size_t)k);
  } else if (starts(p, n, "respond", &r, &rn)) {
    last_rc = wse_respond(c, 200, "{}", 2) == WSE_EINVAL &&
              wse_reject(c, 400, "x") == WSE_EINVAL;
  } else if (starts(p, n, "bad", &r, &rn)) {
    static char long_topic[WSE_TOPIC_MAX + 1];
    wse_str_t t;
    memset(long_topic, 't', sizeof long_topic);
    last_rc = (wse_send(c, WSE_OP_PING, "", 0) == WSE_EINVAL) +
              (wse_send(c, WSE_OP_TEXT, NULL, 3) == WSE_EINVAL) +
              (wse_join(c, "", 0) == WSE_EINVAL) +
              (wse_join(c, "\xff", 1) == WSE_EINVAL) +
              (wse_join(c, "\xc0\x80", 2) == WSE_EINVAL) + /* overlong NUL */
              (wse_join(c, NULL, 1) == WSE_EINVAL) +
              (wse_join(c, long_topic, WSE_TOPIC_MAX + 1) == WSE_EINVAL) +
              (wse_leave_topic(c, "nope", 4) == WSE_ENOTFOUND) +
              (wse_ctx_topic(c, WSE_TOPICS_MAX, &t) == WSE_ENOTFOUND) +
              (wse_set_user(c, NULL, 1) == WSE_EINVAL) +
              (wse_set_user(c, "x", WSE_USERDATA_MAX + 1) == WSE_EINVAL) +
              (wse_close(c, 1006, NULL, 0) == WSE_EINVAL) +
              (wse_close(c, 999, NULL, 0) == WSE_EINVAL) +
              (wse_close(c, 1000, "\xff", 1) == WSE_EINVAL) +
              (wse_broadcast(c, "a", 1, 7, "x", 1, NULL, 0) == WSE_EINVAL);
  }
}

static void probe_close(wse_ctx_t *c, unsigned code, const uint8_t *reason, size_t n) {
  wse_session_t *s = wse_ctx_session(c);
  closes++;
  close_code = code;
  snprintf(close_reason, sizeof close_reason, "%.*s", (int)n, (const char *)reason);
  close_saw_session = s != NULL;
  if (s) {
    wse_str_t nm = blob_name(s->user, s->user_len), t;
    snprintf(close_name, sizeof close_name, "%.*s", (int)nm.n, nm.p);
    close_found_by_id = wse_app_find(wse_ctx_app(c), &s->id) == s;
    /* still a member: its topics see it until the core removes it */
    for (size_t i = 0; wse_ctx_topic(c, i, &t) == WSE_OK; i++)
      wse_broadcast(c, t.p, t.n, WSE_OP_TEXT, "bye", 3, &s->id, 1);
  }
}

static void probe_error(wse_ctx_t *c, int err) {
  errors++;
  last_err = err;
  set_name(c, "errored", 7);
}

static void http_item(wse_ctx_t *c, const wse_request_t *req, const wse_params_t *prm,
                      const uint8_t *body, size_t n) {
  char b[128];
  (void)req;
  CHECK(wse_ctx_session(c) == NULL);
  CHECK(wse_send(c, WSE_OP_TEXT, "x", 1) == WSE_EINVAL);
  CHECK(wse_join(c, "r", 1) == WSE_EINVAL);
  CHECK(wse_leave_topic(c, "r", 1) == WSE_EINVAL);
  CHECK(wse_leave(c) == WSE_EINVAL);
  CHECK(wse_set_user(c, "u", 1) == WSE_EINVAL);
  wse_str_t t;
  CHECK(wse_ctx_topic(c, 0, &t) == WSE_EINVAL);
  CHECK(wse_reject(c, 400, "x") == WSE_EINVAL);
  CHECK(strcmp(wse_ctx_user(c), "item-user") == 0);
  int k = snprintf(b, sizeof b, "{\"id\":\"%.*s\",\"body\":%zu}", (int)prm->value[0].n,
                   prm->value[0].p, n);
  (void)body;
  wse_respond(c, 200, b, (size_t)k);
}

static void http_delete(wse_ctx_t *c, const wse_request_t *req, const wse_params_t *prm,
                        const uint8_t *body, size_t n) {
  (void)req, (void)prm, (void)body, (void)n;
  wse_respond(c, 204, NULL, 0);
}

static void http_silent(wse_ctx_t *c, const wse_request_t *req, const wse_params_t *prm,
                        const uint8_t *body, size_t n) {
  (void)c, (void)req, (void)prm, (void)body, (void)n;
}

static void http_push(wse_ctx_t *c, const wse_request_t *req, const wse_params_t *prm,
                      const uint8_t *body, size_t n) {
  (void)req;
  int k = wse_broadcast(c, prm->value[0].p, prm->value[0].n, WSE_OP_TEXT, body, n, NULL, 0);
  char b[32];
  wse_respond(c, 202, b, (size_t)snprintf(b, sizeof b, "{\"n\":%d}", k));
}

static const char *const protos[] = {"p.v2", "p.v1"};

static wse_app_t *probe_app(const wse_allocator_t *al) {
  wse_app_t *app = NULL;
  wse_config_t cfg;
  wse_config_default(&cfg);
  cfg.deflate = 0; /* the default route: no extension header */
  if (wse_app_new(&app, al, &cfg) != WSE_OK) return NULL;
  wse_route_t r = {0};
  r.pattern = "/ws";
  r.on_upgrade = probe_upgrade;
  r.on_open = probe_open;
  r.on_message = probe_message;
  r.on_close = probe_close;
  r.on_error = probe_error;
  r.user = "ws-user";
  if (wse_app_route(app, &r) != 0) goto fail;
  wse_config_t pc = *wse_app_config(app);
  pc.subprotocols = protos;
  pc.n_subprotocols = 2;
  pc.deflate = 1;
  r.pattern = "/p/:room";
  r.config = &pc; /* copied: the stack variable may go */
  if (wse_app_route(app, &r) != 1) goto fail;
  memset(&pc, 0, sizeof pc);
  r.pattern = "/r/:a/x/:b";
  r.config = NULL;
  if (wse_app_route(app, &r) != 2) goto fail;
  wse_http_route_t h = {"GET", "/items/:id", http_item, "item-user", NULL, NULL};
  if (wse_app_http_route(app, &h) < 0) goto fail;
  h.method = "DELETE";
  h.handler = http_delete;
  if (wse_app_http_route(app, &h) < 0) goto fail;
  wse_http_route_t s = {"POST", "/silent", http_silent, NULL, NULL, NULL};
  if (wse_app_http_route(app, &s) < 0) goto fail;
  wse_http_route_t p = {"POST", "/push/:room", http_push, NULL, NULL, NULL};
  if (wse_app_http_route(app, &p) < 0) goto fail;
  return app;
fail:
  wse_app_free(app);
  return NULL;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_routes(void) {
  wse_app_t *app = probe_app(&t_allocator);
  const wse_config_t *cfg = NULL;
  CHECK(app != NULL);
  CHECK_EQ(wse_app_match(app, S("/ws"), &cfg), 1);
  CHECK(cfg == wse_app_config(app));
  CHECK_EQ(wse_app_match(app, S("/ws?x=1&y=/z"), NULL), 1);
  CHECK_EQ(wse_app_match(app, S("/ws#frag"), NULL), 1);
  CHECK_EQ(wse_app_match(app, S("/ws/"), NULL), 0);
  CHECK_EQ(wse_app_match(app, S("/wss"), NULL), 0);
  CHECK_EQ(wse_app_match(app, S("/w"), NULL), 0);
  CHECK_EQ(wse_app_match(app, S(""), NULL), 0);
  CHECK_EQ(wse_app_match(app, S("ws"), NULL), 0);
  CHECK_EQ(wse_app_match(app, S("/p/lobby"), &cfg), 1);
  CHECK(cfg != wse_app_config(app) && cfg->n_subprotocols == 2 && cfg->subprotocols == protos);
  CHECK_EQ(wse_app_match(app, S("/p/"), NULL), 0);
  CHECK_EQ(wse_app_match(app, S("/p"), NULL), 0);
  CHECK_EQ(wse_app_match(app, S("/p/a/b"), NULL), 0);
  CHECK_EQ(wse_app_match(app, S("/p//"), NULL), 0);
  CHECK_EQ(wse_app_match(app, S("/r/1/x/22?q=3"), NULL), 1);
  CHECK_EQ(wse_app_match(app, S("/r/1/y/22"), NULL), 0);
  CHECK_EQ(wse_app_match(app, S("/r/1/x/"), NULL), 0);
  CHECK_EQ(wse_app_match(app, S("/items/1"), NULL), 0); /* HTTP routes are not WS */

  /* params reach on_upgrade */
  CHECK(ws_connect(app, "/r/one/x/two-2?q=3", 1, 10) >= 0);
  CHECK_EQ(up_params.n, 2);
  CHECK_STR(up_params.name[0].p, up_params.name[0].n, "a");
  CHECK_STR(up_params.name[1].p, up_params.name[1].n, "b");
  CHECK(strcmp(up_param_buf[0], "one") == 0);
  CHECK(strcmp(up_param_buf[1], "two-2") == 0);
  CHECK_EQ(upgrade_send_rc, WSE_ENOTFOUND); /* not open yet */

  /* bad route arguments */
  wse_route_t r = {0};
  CHECK_EQ(wse_app_route(app, &r), WSE_EINVAL);
  r.pattern = "nope";
  CHECK_EQ(wse_app_route(app, &r), WSE_EINVAL);
  wse_http_route_t h = {"GET", "/x", NULL, NULL, NULL, NULL};
  CHECK_EQ(wse_app_http_route(app, &h), WSE_EINVAL);
  drain(app);
  wse_app_free(app);
}


/* Upgrade `path` offering `offer`: accepted (with the extension header) or
 * declined (a plain 101 head, no extension); the session is closed again. */
static void offer_deflate(wse_app_t *app, const char *path, const char *offer, int accepted) {
  req_t q;
  uint8_t ent[16];
  wse_upgrade_t u;
  wse_response_t resp;
  seed_id(77, ent);
  req_ws(&q, path);
  req_hdr(&q, "Sec-WebSocket-Extensions", offer);
  int32_t h = wse_app_upgrade(app, &q.r, ent, 1, &u, &resp);
  CHECK(h >= 0 && u.deflate_accepted == accepted);
  if (!accepted)
    CHECK_STR(resp.headers, resp.headers_len,
              "Upgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n");
  if (h >= 0) wse_app_close(app, (uint32_t)h, 1006, NULL, 0, 5);
}
static void test_upgrade(void) {
  wse_app_t *app = probe_app(&t_allocator);
  wse_response_t resp;
  wse_upgrade_t u;
  req_t q;
  uint8_t ent[16];
  wse_app_stats_t st;
  seed_id(9, ent);

  /* unknown path: 404 before anything else */
  req_ws(&q, "/nowhere");
  CHECK_EQ(wse_app_upgrade(app, &q.r, ent, 1, &u, &resp), WSE_ENOTFOUND);
  CHECK_EQ(resp.status, 404);
  CHECK_EQ(u.status, 404);
  CHECK_EQ(resp.headers_len, 0);
  CHECK_STR(resp.body, resp.body_len, "{\"error\":\"not found\"}");

  /* the core's validation with its status, extra header and JSON */
  req_ws(&q, "/ws");
  q.h[4].value = S("12");
  CHECK_EQ(wse_app_upgrade(app, &q.r, ent, 1, &u, &resp), WSE_EPROTO);
  CHECK_EQ(resp.status, 426);
  CHECK_STR(resp.headers, resp.headers_len, "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
  CHECK_STR(resp.body, resp.body_len,
            "{\"error\":\"unsupported Sec-WebSocket-Version (expected 13)\"}");
  req_ws(&q, "/ws");
  q.r.method = S("POST");
  CHECK_EQ(wse_app_upgrade(app, &q.r, ent, 1, NULL, &resp), WSE_EPROTO);
  CHECK_EQ(resp.status, 405);
  CHECK_STR(resp.headers, resp.headers_len, "Allow: GET\r\n");
  CHECK_STR(resp.body, resp.body_len, "{\"error\":\"method not allowed (expected GET)\"}");
  req_ws(&q, "/ws");
  q.r.n_headers = 4; /* no version */
  q.h[3].value = S("short");
  CHECK_EQ(wse_app_upgrade(app, &q.r, ent, 1, NULL, &resp), WSE_EPROTO);
  CHECK_EQ(resp.status, 400);
  CHECK_EQ(resp.headers_len, 0);
  CHECK_STR(resp.body, resp.body_len, "{\"error\":\"missing Sec-WebSocket-Version header\"}");
  wse_app_stats(app, &st);
  CHECK_EQ(st.sessions, 0);

  /* accepted: exact 101 headers, session with the entropy as id */
  req_ws(&q, "/ws?name=al%22ice");
  int32_t h = wse_app_upgrade(app, &q.r, ent, 1234, &u, &resp);
  CHECK(h >= 0);
  CHECK_EQ(resp.status, 101);
  CHECK_EQ(u.status, 101);
  CHECK_EQ(u.subprotocol, -1);
  CHECK_STR(resp.headers, resp.headers_len,
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n");
  CHECK_EQ(resp.body_len, 0);
  wse_session_t *s = wse_app_session(app, (uint32_t)h);
  CHECK(s != NULL && memcmp(s->id.b, ent, 16) == 0);
  CHECK(s->joined_at_ms == 1234 && s->last_seen_ms == 1234);
  CHECK_EQ(s->route, 0);
  CHECK_EQ(s->restored, 0);
  {
    wse_str_t nm = blob_name(s->user, s->user_len);
    CHECK_STR(nm.p, nm.n, "al\"ice");
    CHECK_MEM(s->user, s->user_len, "\x06" "al\"iceU", 8);
  }
  CHECK_EQ(s->n_topics, 0); /* /ws has no room parameter */
  CHECK(wse_app_find(app, &s->id) == s);
  CHECK_EQ(drain(app), 0); /* nothing until open */
  /* the same entropy again: a collision is refused, no second session */
  CHECK_EQ(wse_app_upgrade(app, &q.r, ent, 1, NULL, &resp), WSE_EEXIST);
  CHECK_EQ(resp.status, 500);
  CHECK_STR(resp.body, resp.body_len, "{\"error\":\"internal error\"}");
  wse_app_stats(app, &st);
  CHECK_EQ(st.sessions, 1);
  /* closing a session that never opened: no on_close */
  int before = closes;
  CHECK_EQ(wse_app_close(app, (uint32_t)h, 1006, NULL, 0, 5), WSE_OK);
  CHECK_EQ(closes, before);
  CHECK(wse_app_session(app, (uint32_t)h) == NULL);
  CHECK_EQ(wse_app_open(app, (uint32_t)h, 5), WSE_ENOTFOUND);

  /* subprotocol in the server's order of preference; deflate negotiated */
  req_ws(&q, "/p/lobby");
  req_hdr(&q, "Sec-WebSocket-Protocol", "p.v1, p.v2");
  req_hdr(&q, "Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits");
  seed_id(10, ent);
  h = wse_app_upgrade(app, &q.r, ent, 1, &u, &resp);
  CHECK(h >= 0);
  CHECK_EQ(u.subprotocol, 0);
  CHECK_EQ(u.deflate_accepted, 1);
  CHECK_STR(resp.headers, resp.headers_len,
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            "Sec-WebSocket-Protocol: p.v2\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=15\r\n");
  CHECK_EQ(wse_app_close(app, (uint32_t)h, 1006, NULL, 0, 5), WSE_OK);
  /* host-wide switch off (a spent compression budget): the same offer is
   * declined, no extension header; back on, it is accepted again */
  wse_app_set_deflate(app, 0);
  offer_deflate(app, "/p/lobby", "permessage-deflate; client_max_window_bits", 0);
  wse_app_set_deflate(app, 1);
  offer_deflate(app, "/p/lobby", "permessage-deflate; client_max_window_bits", 1);
  /* deflate off in the /ws config: offer ignored */
  offer_deflate(app, "/ws", "permessage-deflate", 0);

  /* on_upgrade rejections: status + JSON, and no session left behind */
  req_ws(&q, "/p/lobby?deny=1");
  CHECK_EQ(wse_app_upgrade(app, &q.r, ent, 1, &u, &resp), WSE_EPOLICY);
  CHECK_EQ(resp.status, 401);
  CHECK_EQ(u.status, 401);
  CHECK_EQ(resp.headers_len, 0);
  CHECK_STR(resp.body, resp.body_len, "{\"error\":\"nope \\\"x\\\"\"}");
  req_ws(&q, "/ws?deny=2");
  CHECK_EQ(wse_app_upgrade(app, &q.r, ent, 1, NULL, &resp), WSE_EPOLICY);
  CHECK_EQ(resp.status, 403);
  CHECK_STR(resp.body, resp.body_len, "{\"error\":\"forbidden\"}");
  req_ws(&q, "/ws?deny=3");
  CHECK_EQ(wse_app_upgrade(app, &q.r, ent, 1, NULL, &resp), WSE_EPOLICY);
  CHECK_EQ(resp.status, 403);
  wse_app_stats(app, &st);
  CHECK_EQ(st.sessions, 0);
  CHECK_EQ(st.rooms, 0);
  CHECK(wse_app_find(app, (const wse_sid_t *)ent) == NULL);
  CHECK_EQ(drain(app), 0);
  wse_app_free(app);
}

/* The probe's name and data in a decoded attachment's user blob. */
#define CHECK_NAME(U_, N_, W_)                                               \
  do {                                                                       \
    wse_str_t nm_ = blob_name((U_), (N_));                                    \
    CHECK_STR(nm_.p, nm_.n, W_);                                             \
  } while (0)
#define CHECK_DATA(U_, N_, W_, WN_)                                          \
  do {                                                                       \
    wse_str_t d_ = blob_data((U_), (N_));                                     \
    CHECK_MEM(d_.p, d_.n, W_, WN_);                                          \
  } while (0)

#define TOPICS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NO_TOPICS ((const char *const[]){NULL})

static void test_handlers(void) {
  wse_app_t *app = probe_app(&t_allocator);
  wse_attachment_t d;
  sidstr_t a = sid_str(1);
  int o = opens;
  int32_t h = ws_connect(app, "/p/lobby?name=ann", 1, 100);
  CHECK(h >= 0);
  CHECK_EQ(opens, o + 1);
  /* open: one ATTACH with the session as on_upgrade left it */
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].type, WSE_ACT_ATTACH);
  CHECK_EQ(recs[0].target, (uint32_t)h);
  CHECK(decode_rec(&recs[0], &d) != NULL);
  CHECK_NAME(d.user, d.user_len, "ann");
  CHECK(att_topics_are(&d, TOPICS("lobby")));
  CHECK_DATA(d.user, d.user_len, "U", 1);
  CHECK_MEM(d.user, d.user_len, "\x03" "annU", 5); /* the whole blob */
  CHECK(d.joined_at_ms == 100);
  CHECK_STR(d.pattern.p, d.pattern.n, "/p/:room"); /* the route, by name */
  CHECK_EQ(wse_app_open(app, (uint32_t)h, 5), WSE_EINVAL); /* twice */

  /* echo and binary: one SEND each, no ATTACH */
  CHECK_EQ(ws_text(app, h, "echo:hi", 200), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].type, WSE_ACT_SEND);
  CHECK_EQ(recs[0].target, (uint32_t)h);
  CHECK_EQ(recs[0].op, WSE_OP_TEXT);
  CHECK_MEM(recs[0].frame, recs[0].frame_len, "\x81\x02hi", 4);
  CHECK_STR(recs[0].data, recs[0].len, "hi");
  CHECK(wse_app_session(app, (uint32_t)h)->last_seen_ms == 200);
  uint8_t bin[300];
  for (int i = 0; i < 300; i++) bin[i] = (uint8_t)i;
  CHECK_EQ(wse_app_message(app, (uint32_t)h, WSE_OP_BINARY, bin, 300, 201), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].op, WSE_OP_BINARY);
  CHECK_MEM(recs[0].frame, 4, "\x82\x7e\x01\x2c", 4);
  CHECK_MEM(recs[0].data, recs[0].len, bin, 300);
  CHECK_EQ(wse_app_message(app, (uint32_t)h, WSE_OP_BINARY, NULL, 0, 202), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_MEM(recs[0].frame, recs[0].frame_len, "\x82\x00", 2);
  CHECK_EQ(ws_text(app, h, "time", 777), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_STR(recs[0].data, recs[0].len, "777");
  CHECK_EQ(ws_text(app, h, "respond", 1), WSE_OK);
  CHECK_EQ(last_rc, 1);
  CHECK_EQ(ws_text(app, h, "bad", 1), WSE_OK);
  CHECK_EQ(last_rc, 15);
  CHECK_EQ(drain(app), 0); /* the refused operations queued nothing */
  CHECK_EQ(wse_app_message(app, (uint32_t)h, WSE_OP_PING, NULL, 0, 1), WSE_EINVAL);
  CHECK_EQ(wse_app_message(app, 999, WSE_OP_TEXT, NULL, 0, 1), WSE_ENOTFOUND);

  /* changes coalesce into one ATTACH at the end of the call */
  CHECK_EQ(ws_text(app, h, "multi", 300), WSE_OK);
  CHECK_EQ(last_rc, 0);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].type, WSE_ACT_ATTACH);
  CHECK(decode_rec(&recs[0], &d) != NULL);
  CHECK_NAME(d.user, d.user_len, "m2");
  CHECK(att_topics_are(&d, TOPICS("lobby", "mroom"))); /* joined: one more topic */
  CHECK_DATA(d.user, d.user_len, "abc", 3);
  CHECK(d.last_seen_ms == 300);
  CHECK(memcmp(d.id.b, sid_of(1).b, 16) == 0);
  /* the same room again, the same size of user data: still one ATTACH */
  CHECK_EQ(ws_text(app, h, "join:mroom", 301), WSE_OK);
  CHECK_EQ(last_rc, WSE_OK);
  CHECK_EQ(drain(app), 0);
  CHECK_EQ(ws_text(app, h, "user:xyz", 302), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK(decode_rec(&recs[0], &d) != NULL);
  CHECK_DATA(d.user, d.user_len, "xyz", 3);
  CHECK_EQ(ws_text(app, h, "user:", 303), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_MEM(wse_app_session(app, (uint32_t)h)->user, wse_app_session(app, (uint32_t)h)->user_len,
            "\x02m2", 3); /* the name alone is left */
  CHECK_EQ(ws_text(app, h, "wipe", 303), WSE_OK); /* an empty blob frees it */
  CHECK_EQ(drain(app), 1);
  CHECK(wse_app_session(app, (uint32_t)h)->user == NULL);
  CHECK_EQ(wse_app_session(app, (uint32_t)h)->user_len, 0);
  CHECK(decode_rec(&recs[0], &d) != NULL && d.user_len == 0 && d.user == NULL);
  CHECK_EQ(ws_text(app, h, "leave", 304), WSE_OK); /* every topic */
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(wse_app_session(app, (uint32_t)h)->n_topics, 0);
  CHECK(topics_are(app, wse_app_session(app, (uint32_t)h), NO_TOPICS));
  CHECK(decode_rec(&recs[0], &d) != NULL && d.n_topics == 0);
  CHECK_EQ(ws_text(app, h, "leave", 305), WSE_OK); /* not in a room: no change */
  CHECK_EQ(drain(app), 0);

  /* on_error: hook runs, its change is attached */
  CHECK_EQ(wse_app_error(app, (uint32_t)h, WSE_EUTF8, 400), WSE_OK);
  CHECK_EQ(last_err, WSE_EUTF8);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].type, WSE_ACT_ATTACH);

  /* on_close sees the session (findable, still a member), then it is gone */
  CHECK_EQ(ws_text(app, h, "join:lobby", 500), WSE_OK);
  int32_t h2 = ws_connect(app, "/p/lobby?name=bob", 2, 501);
  drain(app);
  CHECK_EQ(wse_app_close(app, (uint32_t)h, 4005, (const uint8_t *)"gone", 4, 600), WSE_OK);
  CHECK_EQ(close_code, 4005);
  CHECK(strcmp(close_reason, "gone") == 0);
  CHECK(close_saw_session && close_found_by_id);
  CHECK(strcmp(close_name, "errored") == 0);
  CHECK_EQ(drain(app), 1); /* the "bye" to bob; no ATTACH for a closed session */
  CHECK_EQ(recs[0].type, WSE_ACT_BROADCAST);
  CHECK_EQ(recs[0].n_rcpt, 1);
  CHECK_EQ(recs[0].rcpt[0], (uint32_t)h2);
  CHECK(wse_app_session(app, (uint32_t)h) == NULL);
  wse_sid_t ida = sid_of(1);
  CHECK(wse_app_find(app, &ida) == NULL);
  CHECK_EQ(wse_app_close(app, (uint32_t)h, 1000, NULL, 0, 1), WSE_ENOTFOUND);
  CHECK_EQ(wse_app_error(app, (uint32_t)h, 0, 1), WSE_ENOTFOUND);
  wse_app_stats_t st;
  wse_app_stats(app, &st);
  CHECK_EQ(st.sessions, 1);
  CHECK_EQ(st.rooms, 1);
  (void)a;
  wse_app_free(app);
}

static void test_rooms(void) {
  wse_app_t *app = probe_app(&t_allocator);
  int32_t a = ws_connect(app, "/p/red", 1, 1), b = ws_connect(app, "/p/red", 2, 1),
          c = ws_connect(app, "/p/red", 3, 1), d = ws_connect(app, "/p/blue", 4, 1),
          e = ws_connect(app, "/ws", 5, 1); /* in no room */
  wse_app_stats_t st;
  CHECK(a >= 0 && b >= 0 && c >= 0 && d >= 0 && e >= 0);
  drain(app);
  wse_app_stats(app, &st);
  CHECK_EQ(st.sessions, 5);
  CHECK_EQ(st.rooms, 2);
  /* iteration in join order */
  int32_t it = wse_app_room_next(app, "red", 3, -1);
  CHECK_EQ(it, a);
  CHECK_EQ(it = wse_app_room_next(app, "red", 3, it), b);
  CHECK_EQ(it = wse_app_room_next(app, "red", 3, it), c);
  CHECK_EQ(wse_app_room_next(app, "red", 3, it), -1);
  CHECK_EQ(wse_app_room_next(app, "green", 5, -1), -1);
  CHECK_EQ(wse_app_room_next(app, "re", 2, -1), -1);

  /* broadcast framed once, to every member of that room only */
  CHECK_EQ(ws_text(app, b, "bcast:red", 2), WSE_OK);
  CHECK_EQ(last_rc, 3);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].type, WSE_ACT_BROADCAST);
  CHECK_EQ(recs[0].n_rcpt, 3);
  CHECK(recs[0].rcpt[0] == (uint32_t)a && recs[0].rcpt[1] == (uint32_t)b &&
        recs[0].rcpt[2] == (uint32_t)c);
  CHECK_MEM(recs[0].frame, recs[0].frame_len, "\x81\x01" "B", 3);
  /* from outside the room, and into an empty one */
  CHECK_EQ(ws_text(app, e, "bcast:blue", 2), WSE_OK);
  CHECK_EQ(last_rc, 1);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].rcpt[0], (uint32_t)d);
  CHECK_EQ(ws_text(app, e, "bcast:green", 2), WSE_OK);
  CHECK_EQ(last_rc, 0);
  CHECK_EQ(drain(app), 0);
  /* with the sender excluded */
  CHECK_EQ(ws_text(app, b, "bcastx:red", 2), WSE_OK);
  CHECK_EQ(last_rc, 2);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].op, WSE_OP_BINARY);
  CHECK_EQ(recs[0].n_rcpt, 2);
  CHECK(recs[0].rcpt[0] == (uint32_t)a && recs[0].rcpt[1] == (uint32_t)c);
  CHECK_MEM(recs[0].data, recs[0].len, "\x00\x01", 2);
  /* the only member excluded: nothing queued */
  CHECK_EQ(ws_text(app, d, "bcastx:blue", 2), WSE_OK);
  CHECK_EQ(last_rc, 0);
  CHECK_EQ(drain(app), 0);
  CHECK_EQ(wse_app_open(app, (uint32_t)a, 0), WSE_EINVAL);
  {
    /* through the HTTP push route: a context without a session */
    wse_response_t resp;
    CHECK_EQ(http(app, "POST", "/push/red", "hello", &resp), 202);
    CHECK_STR(resp.body, resp.body_len, "{\"n\":3}");
    CHECK_EQ(drain(app), 1);
    CHECK_EQ(recs[0].n_rcpt, 3);
    CHECK_STR(recs[0].data, recs[0].len, "hello");
  }

  /* counts, moving between rooms, empty rooms disappear */
  CHECK_EQ(ws_text(app, e, "count:red", 3), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_STR(recs[0].data, recs[0].len, "3");
  CHECK_EQ(ws_text(app, d, "move:red", 3), WSE_OK);
  CHECK_EQ(last_rc, WSE_OK);
  drain(app);
  wse_app_stats(app, &st);
  CHECK_EQ(st.rooms, 1);
  CHECK_EQ(ws_text(app, e, "count:red", 3), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_STR(recs[0].data, recs[0].len, "4");
  CHECK_EQ(ws_text(app, e, "count:blue", 3), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_STR(recs[0].data, recs[0].len, "0");
  /* remove from the middle, the head and the tail */
  CHECK_EQ(ws_text(app, b, "leave", 3), WSE_OK);
  CHECK_EQ(ws_text(app, a, "move:blue", 3), WSE_OK);
  CHECK_EQ(wse_app_close(app, (uint32_t)d, 1000, NULL, 0, 4), WSE_OK);
  drain(app);
  CHECK_EQ(wse_app_room_next(app, "red", 3, -1), c);
  CHECK_EQ(wse_app_room_next(app, "red", 3, c), -1);
  CHECK_EQ(wse_app_room_next(app, "blue", 4, -1), a);
  CHECK_EQ(ws_text(app, e, "bcast:red", 5), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].n_rcpt, 1);
  CHECK_EQ(recs[0].rcpt[0], (uint32_t)c);
  wse_app_stats(app, &st);
  CHECK_EQ(st.rooms, 2);
  CHECK_EQ(st.sessions, 4);
  wse_app_free(app);
}

/* The recipients of the one BROADCAST in recs[] are exactly `want` (in
 * order, each once); n = -1 ends the list. */
static int bcast_to(const int32_t *want) {
  size_t n = 0;
  if (n_recs != 1 || recs[0].type != WSE_ACT_BROADCAST) return 0;
  for (; want[n] >= 0; n++)
    if (n >= recs[0].n_rcpt || recs[0].rcpt[n] != (uint32_t)want[n]) return 0;
  return recs[0].n_rcpt == n;
}
#define RCPTS(...) ((const int32_t[]){__VA_ARGS__, -1})

/* A topic's members by wse_app_room_next, in order, are exactly `want`. */
static int members_are(wse_app_t *app, const char *topic, const int32_t *want) {
  int32_t it = -1;
  size_t n = strlen(topic);
  for (size_t i = 0; want[i] >= 0; i++)
    if ((it = wse_app_room_next(app, topic, n, it)) != want[i]) return 0;
  return wse_app_room_next(app, topic, n, it) == -1;
}

/* The text the probe answers to `cmd` (one SEND), or "" */
static char answer_buf[WSE_TOPIC_MAX + 1];
static const char *ask(wse_app_t *app, int32_t h, const char *cmd) {
  answer_buf[0] = 0;
  if (ws_text(app, h, cmd, 7) == WSE_OK && drain(app) == 1 &&
      recs[0].type == WSE_ACT_SEND && recs[0].len < sizeof answer_buf)
    snprintf(answer_buf, sizeof answer_buf, "%.*s", (int)recs[0].len, (const char *)recs[0].data);
  return answer_buf;
}

static uint64_t live_rooms(wse_app_t *app) {
  wse_app_stats_t st;
  wse_app_stats(app, &st);
  return st.rooms;
}

/* A session in two topics gets the broadcasts of both, once per broadcast;
 * joining twice changes nothing; leaving one topic keeps the other. */
static void test_topics_broadcast(void) {
  wse_app_t *app = probe_app(&t_allocator);
  wse_attachment_t d;
  int32_t x = ws_connect(app, "/p/t1", 1, 1), y = ws_connect(app, "/p/t1", 2, 1),
          z = ws_connect(app, "/p/t2", 3, 1);
  CHECK(x >= 0 && y >= 0 && z >= 0);
  drain(app);
  CHECK_EQ(ws_text(app, x, "join:t2", 2), WSE_OK);
  CHECK_EQ(last_rc, WSE_OK);
  CHECK_EQ(drain(app), 1); /* the ATTACH carries both topics, in join order */
  CHECK_EQ(recs[0].type, WSE_ACT_ATTACH);
  CHECK_EQ(recs[0].target, (uint32_t)x);
  CHECK(decode_rec(&recs[0], &d) != NULL);
  CHECK(att_topics_are(&d, TOPICS("t1", "t2")));
  CHECK(topics_are(app, wse_app_session(app, (uint32_t)x), TOPICS("t1", "t2")));
  CHECK_EQ(wse_app_session(app, (uint32_t)x)->n_topics, 2);
  /* wse_ctx_topic in a handler: join order, ENOTFOUND past the end */
  CHECK(strcmp(ask(app, x, "topic:0"), "t1") == 0);
  CHECK(strcmp(ask(app, x, "topic:1"), "t2") == 0);
  CHECK(strcmp(ask(app, x, "topic:2"), "-") == 0);
  CHECK_EQ(last_rc, WSE_ENOTFOUND);
  CHECK(strcmp(ask(app, z, "topic:0"), "t2") == 0);
  CHECK(strcmp(ask(app, z, "count:t1"), "2") == 0);
  CHECK(strcmp(ask(app, z, "count:t2"), "2") == 0);
  CHECK_EQ(live_rooms(app), 2);
  /* each topic's broadcast reaches x, and x once */
  CHECK_EQ(ws_text(app, z, "bcast:t1", 3), WSE_OK);
  CHECK_EQ(last_rc, 2);
  CHECK_EQ(drain(app), 1);
  CHECK(bcast_to(RCPTS(x, y)));
  CHECK_EQ(ws_text(app, y, "bcast:t2", 3), WSE_OK);
  CHECK_EQ(last_rc, 2);
  CHECK_EQ(drain(app), 1);
  CHECK(bcast_to(RCPTS(z, x))); /* z was first in t2 */
  /* excluding the sender works per topic too */
  CHECK_EQ(ws_text(app, x, "bcastx:t2", 3), WSE_OK);
  CHECK_EQ(last_rc, 1);
  CHECK_EQ(drain(app), 1);
  CHECK(bcast_to(RCPTS(z)));
  /* joining again is a no-op: no ATTACH, no second delivery */
  CHECK_EQ(ws_text(app, x, "join:t2", 4), WSE_OK);
  CHECK_EQ(last_rc, WSE_OK);
  CHECK_EQ(drain(app), 0);
  CHECK_EQ(ws_text(app, x, "join:t1", 4), WSE_OK);
  CHECK_EQ(last_rc, WSE_OK);
  CHECK_EQ(drain(app), 0);
  CHECK(topics_are(app, wse_app_session(app, (uint32_t)x), TOPICS("t1", "t2")));
  CHECK(strcmp(ask(app, z, "count:t2"), "2") == 0);
  CHECK_EQ(ws_text(app, y, "bcast:t2", 4), WSE_OK);
  CHECK_EQ(last_rc, 2);
  CHECK_EQ(drain(app), 1);
  CHECK(bcast_to(RCPTS(z, x)));
  CHECK(members_are(app, "t2", RCPTS(z, x)));
  {
    wse_response_t resp; /* the HTTP push: a context without a session */
    CHECK_EQ(http(app, "POST", "/push/t2", "hi", &resp), 202);
    CHECK_STR(resp.body, resp.body_len, "{\"n\":2}");
    CHECK_EQ(drain(app), 1);
    CHECK(bcast_to(RCPTS(z, x)));
  }
  /* leave one topic, keep the other */
  CHECK_EQ(ws_text(app, x, "part:t1", 5), WSE_OK);
  CHECK_EQ(last_rc, WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].type, WSE_ACT_ATTACH);
  CHECK(decode_rec(&recs[0], &d) != NULL);
  CHECK(att_topics_are(&d, TOPICS("t2")));
  CHECK(topics_are(app, wse_app_session(app, (uint32_t)x), TOPICS("t2")));
  CHECK(strcmp(ask(app, x, "topic:0"), "t2") == 0);
  CHECK(strcmp(ask(app, z, "count:t1"), "1") == 0);
  CHECK_EQ(ws_text(app, z, "bcast:t1", 6), WSE_OK);
  CHECK_EQ(last_rc, 1);
  CHECK_EQ(drain(app), 1);
  CHECK(bcast_to(RCPTS(y)));
  CHECK_EQ(ws_text(app, y, "bcast:t2", 6), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK(bcast_to(RCPTS(z, x)));
  CHECK_EQ(live_rooms(app), 2);
  /* not a member (any more), or no such topic: ENOTFOUND, nothing changes */
  CHECK_EQ(ws_text(app, x, "part:t1", 7), WSE_OK);
  CHECK_EQ(last_rc, WSE_ENOTFOUND);
  CHECK_EQ(ws_text(app, x, "part:nope", 7), WSE_OK);
  CHECK_EQ(last_rc, WSE_ENOTFOUND);
  CHECK_EQ(ws_text(app, x, "part:", 7), WSE_OK);
  CHECK_EQ(last_rc, WSE_ENOTFOUND);
  CHECK_EQ(drain(app), 0);
  CHECK(topics_are(app, wse_app_session(app, (uint32_t)x), TOPICS("t2")));
  /* rejoining puts x at the end of t1, its topics in the new join order */
  CHECK_EQ(ws_text(app, x, "join:t1", 8), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK(topics_are(app, wse_app_session(app, (uint32_t)x), TOPICS("t2", "t1")));
  CHECK(members_are(app, "t1", RCPTS(y, x)));
  /* closing x: on_close says bye in each topic; both topics stay (y, z) */
  CHECK_EQ(wse_app_close(app, (uint32_t)x, 1000, NULL, 0, 9), WSE_OK);
  CHECK_EQ(drain(app), 2); /* t2 first (x's join order), then t1 */
  CHECK(recs[0].type == WSE_ACT_BROADCAST && recs[0].n_rcpt == 1 && recs[0].rcpt[0] == (uint32_t)z);
  CHECK(recs[1].type == WSE_ACT_BROADCAST && recs[1].n_rcpt == 1 && recs[1].rcpt[0] == (uint32_t)y);
  CHECK_STR(recs[1].data, recs[1].len, "bye");
  CHECK(members_are(app, "t1", RCPTS(y)));
  CHECK(members_are(app, "t2", RCPTS(z)));
  CHECK_EQ(live_rooms(app), 2);
  CHECK(frames_ok);
  wse_app_free(app);
}

/* WSE_TOPICS_MAX topics per session: the next join is refused and changes
 * nothing; an existing membership still "joins" (no-op). */
static void test_topics_limit(void) {
  wse_app_t *app = probe_app(&t_allocator);
  wse_attachment_t d;
  char cmd[32];
  int32_t a = ws_connect(app, "/p/k0", 1, 1), b = ws_connect(app, "/p/k16", 2, 1);
  drain(app);
  int ok = 1;
  for (int i = 1; i < WSE_TOPICS_MAX; i++) {
    snprintf(cmd, sizeof cmd, "join:k%d", i);
    ok &= ws_text(app, a, cmd, 2) == WSE_OK && last_rc == WSE_OK;
    ok &= drain(app) == 1 && recs[0].type == WSE_ACT_ATTACH;
  }
  CHECK(ok);
  /* the last ATTACH: all 16, in order */
  CHECK(decode_rec(&recs[0], &d) != NULL);
  CHECK_EQ(d.n_topics, WSE_TOPICS_MAX);
  CHECK(att_topics_are(&d, TOPICS("k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8",
                                  "k9", "k10", "k11", "k12", "k13", "k14", "k15")));
  wse_session_t *s = wse_app_session(app, (uint32_t)a);
  static const char *const all16[] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8",
                                      "k9", "k10", "k11", "k12", "k13", "k14", "k15", NULL};
  CHECK(topics_are(app, s, all16));
  CHECK_EQ(live_rooms(app), 17);
  /* the 17th: an existing topic (b is in it) and a new one */
  CHECK_EQ(ws_text(app, a, "join:k16", 3), WSE_OK);
  CHECK_EQ(last_rc, WSE_ENOSPC);
  CHECK_EQ(drain(app), 0); /* no ATTACH */
  CHECK(topics_are(app, s, all16));
  CHECK(members_are(app, "k16", RCPTS(b)));
  CHECK(strcmp(ask(app, b, "count:k16"), "1") == 0);
  CHECK_EQ(ws_text(app, a, "join:k17", 3), WSE_OK);
  CHECK_EQ(last_rc, WSE_ENOSPC);
  CHECK_EQ(drain(app), 0);
  CHECK(topics_are(app, s, all16));
  CHECK_EQ(wse_app_room_next(app, "k17", 3, -1), -1);
  CHECK(strcmp(ask(app, b, "count:k17"), "0") == 0);
  CHECK_EQ(live_rooms(app), 17);
  CHECK_EQ(ws_text(app, b, "bcast:k17", 3), WSE_OK);
  CHECK_EQ(last_rc, 0);
  /* at the limit, joining a topic it is in is still a no-op */
  CHECK_EQ(ws_text(app, a, "join:k5", 3), WSE_OK);
  CHECK_EQ(last_rc, WSE_OK);
  CHECK_EQ(drain(app), 0);
  CHECK(topics_are(app, s, all16));
  /* one out, one in: the new one goes last */
  CHECK_EQ(ws_text(app, a, "part:k3", 4), WSE_OK);
  CHECK_EQ(ws_text(app, a, "join:k17", 4), WSE_OK);
  CHECK_EQ(last_rc, WSE_OK);
  CHECK_EQ(drain(app), 2);
  CHECK(topics_are(app, s, TOPICS("k0", "k1", "k2", "k4", "k5", "k6", "k7", "k8", "k9", "k10",
                                  "k11", "k12", "k13", "k14", "k15", "k17")));
  CHECK(decode_rec(&recs[1], &d) != NULL && d.n_topics == WSE_TOPICS_MAX);
  CHECK(d.topics[15].n == 3 && memcmp(d.topics[15].p, "k17", 3) == 0);
  CHECK_EQ(live_rooms(app), 17); /* k3 gone (a was its only member), k17 new */
  CHECK_EQ(wse_app_room_next(app, "k3", 2, -1), -1);
  wse_app_free(app);
}

/* Topics joined in on_upgrade are recorded, and become memberships when
 * the session opens (its membership then starts: join order = open). A
 * rejected upgrade leaves no topic behind. */
static void test_topics_upgrade(void) {
  wse_app_t *app = probe_app(&t_allocator);
  wse_attachment_t d;
  wse_response_t resp;
  req_t q;
  uint8_t ent[16];
  int32_t e = ws_connect(app, "/ws", 5, 1); /* an observer in no topic */
  drain(app);
  req_ws(&q, "/p/u?also=v");
  seed_id(6, ent);
  int32_t h = wse_app_upgrade(app, &q.r, ent, 1, NULL, &resp);
  CHECK(h >= 0);
  CHECK_EQ(up_join_rc, WSE_OK);
  CHECK_EQ(up_count, 0); /* in on_upgrade: recorded, not a member yet */
  CHECK_EQ(up_topic_rc, WSE_OK);
  CHECK(strcmp(up_topic0, "u") == 0);
  wse_session_t *s = wse_app_session(app, (uint32_t)h);
  CHECK(topics_are(app, s, TOPICS("u", "v")));
  /* before open: nobody is in u or v */
  CHECK(strcmp(ask(app, e, "count:u"), "0") == 0);
  CHECK(strcmp(ask(app, e, "count:v"), "0") == 0);
  CHECK_EQ(wse_app_room_next(app, "u", 1, -1), -1);
  CHECK_EQ(live_rooms(app), 0);
  CHECK_EQ(ws_text(app, e, "bcast:u", 2), WSE_OK);
  CHECK_EQ(last_rc, 0);
  CHECK_EQ(drain(app), 0);
  /* a member of both once open; its first ATTACH lists them */
  CHECK_EQ(wse_app_open(app, (uint32_t)h, 3), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK(decode_rec(&recs[0], &d) != NULL);
  CHECK(att_topics_are(&d, TOPICS("u", "v")));
  CHECK(strcmp(ask(app, e, "count:u"), "1") == 0);
  CHECK(strcmp(ask(app, e, "count:v"), "1") == 0);
  CHECK(members_are(app, "u", RCPTS(h)));
  CHECK(members_are(app, "v", RCPTS(h)));
  CHECK_EQ(live_rooms(app), 2);
  CHECK_EQ(ws_text(app, e, "bcast:v", 4), WSE_OK);
  CHECK_EQ(last_rc, 1);
  CHECK_EQ(drain(app), 1);
  CHECK(bcast_to(RCPTS(h)));

  /* the limit applies in on_upgrade too: the 17th join there is refused */
  req_ws(&q, "/p/m?many=1");
  seed_id(7, ent);
  int32_t m = wse_app_upgrade(app, &q.r, ent, 1, NULL, &resp);
  CHECK(m >= 0);
  CHECK_EQ(up_join_rc, WSE_ENOSPC);
  s = wse_app_session(app, (uint32_t)m);
  CHECK(topics_are(app, s, TOPICS("m", "m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8",
                                  "m9", "m10", "m11", "m12", "m13", "m14")));
  CHECK_EQ(live_rooms(app), 2);
  CHECK_EQ(wse_app_open(app, (uint32_t)m, 4), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK(decode_rec(&recs[0], &d) != NULL && d.n_topics == WSE_TOPICS_MAX);
  CHECK_EQ(live_rooms(app), 2 + WSE_TOPICS_MAX);
  CHECK(members_are(app, "m14", RCPTS(m)));
  CHECK_EQ(wse_app_room_next(app, "m15", 3, -1), -1);

  /* rejected after joining u (has a member) and w (new): nothing stays */
  wse_app_stats_t st0, st1;
  wse_app_stats(app, &st0);
  req_ws(&q, "/p/u?also=w&deny=4");
  seed_id(8, ent);
  CHECK_EQ(wse_app_upgrade(app, &q.r, ent, 1, NULL, &resp), WSE_EPOLICY);
  CHECK_EQ(resp.status, 409);
  CHECK_STR(resp.body, resp.body_len, "{\"error\":\"after joins\"}");
  CHECK_EQ(up_join_rc, WSE_OK);
  wse_app_stats(app, &st1);
  CHECK_EQ(st1.sessions, st0.sessions);
  CHECK_EQ(st1.rooms, st0.rooms);
  CHECK(members_are(app, "u", RCPTS(h)));
  CHECK(strcmp(ask(app, e, "count:w"), "0") == 0);
  CHECK_EQ(wse_app_room_next(app, "w", 1, -1), -1);
  /* ... and a session that upgraded and never opened, closed: the same */
  req_ws(&q, "/p/u?also=w");
  int32_t g = wse_app_upgrade(app, &q.r, ent, 1, NULL, &resp);
  CHECK(g >= 0);
  CHECK_EQ(wse_app_close(app, (uint32_t)g, 1006, NULL, 0, 5), WSE_OK);
  CHECK_EQ(drain(app), 0);
  CHECK(members_are(app, "u", RCPTS(h)));
  CHECK_EQ(wse_app_room_next(app, "w", 1, -1), -1);
  wse_app_stats(app, &st1);
  CHECK_EQ(st1.rooms, st0.rooms);

  /* membership starts at open: f upgrades first, o2 opens first */
  req_ws(&q, "/p/o");
  seed_id(9, ent);
  int32_t f = wse_app_upgrade(app, &q.r, ent, 1, NULL, &resp);
  int32_t o2 = ws_connect(app, "/p/o", 10, 1);
  CHECK(f >= 0 && o2 >= 0);
  CHECK(members_are(app, "o", RCPTS(o2)));
  CHECK_EQ(wse_app_open(app, (uint32_t)f, 2), WSE_OK);
  CHECK(members_are(app, "o", RCPTS(o2, f)));
  drain(app);
  wse_app_free(app);
}

/* wse_app_room_next (and broadcast recipients) follow join order across
 * members, whichever route or call joined them. */
static void test_topics_order(void) {
  wse_app_t *app = probe_app(&t_allocator);
  int32_t a = ws_connect(app, "/ws", 1, 1), b = ws_connect(app, "/ws", 2, 1),
          c = ws_connect(app, "/ws", 3, 1);
  drain(app);
  CHECK_EQ(ws_text(app, c, "join:o", 2), WSE_OK);
  CHECK_EQ(ws_text(app, a, "join:p", 2), WSE_OK); /* other topics in between */
  CHECK_EQ(ws_text(app, a, "join:o", 2), WSE_OK);
  CHECK_EQ(ws_text(app, b, "join:p", 2), WSE_OK);
  CHECK_EQ(ws_text(app, b, "join:o", 2), WSE_OK);
  int32_t d = ws_connect(app, "/p/o", 4, 2);
  drain(app);
  CHECK(members_are(app, "o", RCPTS(c, a, b, d)));
  CHECK(members_are(app, "p", RCPTS(a, b)));
  CHECK_EQ(ws_text(app, d, "bcast:o", 3), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK(bcast_to(RCPTS(c, a, b, d)));
  /* leave and rejoin: to the end; leave every topic: out of both */
  CHECK_EQ(ws_text(app, a, "part:o", 4), WSE_OK);
  CHECK_EQ(ws_text(app, a, "join:o", 4), WSE_OK);
  CHECK(members_are(app, "o", RCPTS(c, b, d, a)));
  CHECK(members_are(app, "p", RCPTS(a, b)));
  CHECK(topics_are(app, wse_app_session(app, (uint32_t)a), TOPICS("p", "o")));
  CHECK_EQ(ws_text(app, b, "leave", 5), WSE_OK);
  CHECK(members_are(app, "o", RCPTS(c, d, a)));
  CHECK(members_are(app, "p", RCPTS(a)));
  CHECK(topics_are(app, wse_app_session(app, (uint32_t)b), NO_TOPICS));
  /* iteration from a session not in the topic, or not live: the end */
  CHECK_EQ(wse_app_room_next(app, "o", 1, b), -1);
  CHECK_EQ(wse_app_room_next(app, "o", 1, 999), -1);
  CHECK_EQ(wse_app_room_next(app, "p", 1, a), -1);
  CHECK_EQ(ws_text(app, c, "bcast:o", 6), WSE_OK);
  CHECK_EQ(drain(app), 4); /* the ATTACHes of part, join and leave, then it */
  CHECK_EQ(recs[3].type, WSE_ACT_BROADCAST);
  CHECK(recs[3].n_rcpt == 3 && recs[3].rcpt[0] == (uint32_t)c &&
        recs[3].rcpt[1] == (uint32_t)d && recs[3].rcpt[2] == (uint32_t)a);
  wse_app_free(app);
}

/* A topic exists while it has members: the last one out (leave_topic,
 * leave, close) frees it, and stats.rooms counts only non-empty topics. */
static void test_topics_free(void) {
  counting_t cnt = {0};
  wse_allocator_t al = {c_alloc, c_realloc, c_free, &cnt};
  wse_app_t *app = probe_app(&al);
  int32_t a = ws_connect(app, "/p/f1", 1, 1), b = ws_connect(app, "/p/f1", 2, 1),
          e = ws_connect(app, "/ws", 3, 1);
  drain(app);
  CHECK_EQ(ws_text(app, a, "join:f2", 2), WSE_OK);
  CHECK_EQ(ws_text(app, a, "join:f3", 2), WSE_OK);
  CHECK_EQ(ws_text(app, b, "join:f3", 2), WSE_OK);
  drain(app);
  CHECK_EQ(live_rooms(app), 3);
  /* a topic pointer stays valid while its topic has members, however many
   * topics are made meanwhile */
  wse_str_t f1 = topic_of(app, wse_app_session(app, (uint32_t)a), 0);
  CHECK_STR(f1.p, f1.n, "f1");
  for (int i = 0; i < 100; i++) {
    char cmd[32];
    snprintf(cmd, sizeof cmd, "join:x%d", i % 16);
    if (i % 16 == 0 && i) ws_text(app, e, "leave", 2);
    ws_text(app, e, cmd, 2);
    if (i == 50) ws_text(app, e, "join:keep1", 2), ws_text(app, e, "join:keep2", 2);
  }
  ws_text(app, e, "leave", 2);
  drain(app);
  CHECK_STR(f1.p, f1.n, "f1");
  CHECK_EQ(live_rooms(app), 3);
  /* the last member leaves f2: it is gone */
  CHECK_EQ(ws_text(app, a, "part:f2", 3), WSE_OK);
  drain(app);
  CHECK_EQ(live_rooms(app), 2);
  CHECK(strcmp(ask(app, e, "count:f2"), "0") == 0);
  CHECK_EQ(wse_app_room_next(app, "f2", 2, -1), -1);
  /* a leaves everything: f1 and f3 keep b */
  CHECK_EQ(ws_text(app, a, "leave", 3), WSE_OK);
  drain(app);
  CHECK_EQ(live_rooms(app), 2);
  CHECK(members_are(app, "f1", RCPTS(b)));
  CHECK(members_are(app, "f3", RCPTS(b)));
  /* b, the last member of both, closes: both gone */
  CHECK_EQ(wse_app_close(app, (uint32_t)b, 1000, NULL, 0, 4), WSE_OK);
  wse_app_actions_clear(app);
  CHECK_EQ(live_rooms(app), 0);
  CHECK_EQ(wse_app_room_next(app, "f1", 2, -1), -1);
  CHECK_EQ(wse_app_room_next(app, "f3", 2, -1), -1);
  CHECK(strcmp(ask(app, e, "count:f1"), "0") == 0);
  CHECK_EQ(ws_text(app, e, "bcast:f3", 5), WSE_OK);
  CHECK_EQ(last_rc, 0);
  CHECK_EQ(drain(app), 0);
  /* freed slots are used again: churn allocates nothing once warm */
  for (int round = 0; round < 3; round++) {
    ws_text(app, a, "join:g1", 6), ws_text(app, a, "join:g2", 6), ws_text(app, a, "leave", 6);
    wse_app_actions_clear(app);
  }
  long allocs = cnt.allocs;
  for (int round = 0; round < 200; round++) {
    ws_text(app, a, "join:g1", 6), ws_text(app, e, "join:g1", 6), ws_text(app, a, "join:g2", 6);
    ws_text(app, a, "leave", 6), ws_text(app, e, "part:g1", 6);
    wse_app_actions_clear(app);
  }
  CHECK_EQ(cnt.allocs - allocs, 0);
  CHECK_EQ(live_rooms(app), 0);
  wse_app_free(app);
  CHECK_EQ(cnt.live, 0);
  CHECK_EQ(cnt.bad_sizes, 0);
}

/* A wake rebuilds every topic of every session from the ATTACHes. */
static void test_topics_restore(void) {
  wse_app_t *app = probe_app(&t_allocator);
  uint8_t *att[5] = {0};
  size_t lens[5];
  int32_t hs[5], h[4];
  wse_attachment_t d;
  h[0] = ws_connect(app, "/p/r1?name=a", 1, 10);
  h[1] = ws_connect(app, "/p/r2?name=b", 2, 11);
  h[2] = ws_connect(app, "/ws?name=c", 3, 12);
  h[3] = ws_connect(app, "/ws?name=d", 4, 13); /* in no topic */
  drain(app);
  static const char *const cmds[][2] = {{"0", "join:r2"}, {"0", "join:r3"}, {"1", "join:r1"},
                                        {"2", "join:r3"}, {"2", "join:r2"}, {"0", "name:A"}};
  for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
    CHECK_EQ(ws_text(app, h[cmds[i][0][0] - '0'], cmds[i][1], 20), WSE_OK);
  drain(app);
  /* each session's current attachment, as its last ATTACH would be */
  for (int i = 0; i < 4; i++) {
    att[i] = malloc(WSE_ATTACHMENT_MAX);
    long k = encode_session(app, wse_app_session(app, (uint32_t)h[i]), att[i], WSE_ATTACHMENT_MAX);
    CHECK(k > 0);
    lens[i] = (size_t)k;
  }
  /* they carry the topics */
  CHECK(wse_attachment_decode(att[0], lens[0], &d) == WSE_OK && att_topics_are(&d, TOPICS("r1", "r2", "r3")));
  CHECK(wse_attachment_decode(att[1], lens[1], &d) == WSE_OK && att_topics_are(&d, TOPICS("r2", "r1")));
  CHECK(wse_attachment_decode(att[2], lens[2], &d) == WSE_OK && att_topics_are(&d, TOPICS("r3", "r2")));
  CHECK(wse_attachment_decode(att[3], lens[3], &d) == WSE_OK && d.n_topics == 0);
  {
    /* hand-made: a topic listed twice (one membership), and a new one */
    wse_attachment_t t = {0};
    t.id = sid_of(5);
    t.pattern = S("/ws");
    t.n_topics = 3;
    t.topics[0] = S("z");
    t.topics[1] = S("r1");
    t.topics[2] = S("z");
    t.user = (const uint8_t *)"\x01" "e";
    t.user_len = 2;
    att[4] = malloc(WSE_ATTACHMENT_MAX);
    lens[4] = (size_t)wse_attachment_encode(&t, att[4], WSE_ATTACHMENT_MAX);
  }
  wse_app_free(app);

  app = probe_app(&t_allocator);
  CHECK_EQ(wse_app_restore(app, (const uint8_t *const *)att, lens, 5, hs, 99), 5);
  CHECK(topics_are(app, wse_app_session(app, (uint32_t)hs[0]), TOPICS("r1", "r2", "r3")));
  CHECK(topics_are(app, wse_app_session(app, (uint32_t)hs[1]), TOPICS("r2", "r1")));
  CHECK(topics_are(app, wse_app_session(app, (uint32_t)hs[2]), TOPICS("r3", "r2")));
  CHECK(topics_are(app, wse_app_session(app, (uint32_t)hs[3]), NO_TOPICS));
  CHECK(topics_are(app, wse_app_session(app, (uint32_t)hs[4]), TOPICS("z", "r1")));
  {
    wse_session_t *s = wse_app_session(app, (uint32_t)hs[0]);
    CHECK_NAME(s->user, s->user_len, "A");
    CHECK_DATA(s->user, s->user_len, "U", 1);
  }
  /* members in restore order, then each session's own order */
  CHECK(members_are(app, "r1", RCPTS(hs[0], hs[1], hs[4])));
  CHECK(members_are(app, "r2", RCPTS(hs[0], hs[1], hs[2])));
  CHECK(members_are(app, "r3", RCPTS(hs[0], hs[2])));
  CHECK(members_are(app, "z", RCPTS(hs[4])));
  CHECK_EQ(live_rooms(app), 4);
  CHECK(strcmp(ask(app, hs[3], "count:r2"), "3") == 0);
  /* they work at once, and without an ATTACH */
  CHECK_EQ(ws_text(app, hs[3], "bcast:r2", 100), WSE_OK);
  CHECK_EQ(last_rc, 3);
  CHECK_EQ(drain(app), 1);
  CHECK(bcast_to(RCPTS(hs[0], hs[1], hs[2])));
  CHECK_EQ(ws_text(app, hs[0], "bcastx:r3", 100), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK(bcast_to(RCPTS(hs[2])));
  /* and change like any other: the next ATTACH has the new topics */
  CHECK_EQ(ws_text(app, hs[0], "part:r2", 101), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK(decode_rec(&recs[0], &d) != NULL && att_topics_are(&d, TOPICS("r1", "r3")));
  CHECK(members_are(app, "r2", RCPTS(hs[1], hs[2])));
  /* the restored ones close and free their topics */
  for (int i = 0; i < 5; i++) wse_app_close(app, (uint32_t)hs[i], 1001, NULL, 0, 200);
  wse_app_actions_clear(app);
  CHECK_EQ(live_rooms(app), 0);
  for (int i = 0; i < 5; i++) free(att[i]);
  wse_app_free(app);
}

static void test_send_close(void) {
  wse_app_t *app = probe_app(&t_allocator);
  int32_t a = ws_connect(app, "/p/x", 1, 1), b = ws_connect(app, "/p/y", 2, 1);
  char cmd[128];
  sidstr_t bs = sid_str(2);
  drain(app);
  /* send_to by id, across rooms */
  snprintf(cmd, sizeof cmd, "to:%s:psst", bs.s);
  CHECK_EQ(ws_text(app, a, cmd, 2), WSE_OK);
  CHECK_EQ(last_rc, WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].type, WSE_ACT_SEND);
  CHECK_EQ(recs[0].target, (uint32_t)b);
  CHECK_STR(recs[0].data, recs[0].len, "psst");
  sidstr_t zs = sid_str(77);
  snprintf(cmd, sizeof cmd, "to:%s:psst", zs.s);
  CHECK_EQ(ws_text(app, a, cmd, 2), WSE_OK);
  CHECK_EQ(last_rc, WSE_ENOTFOUND);
  CHECK_EQ(drain(app), 0);
  /* from outside any handler (timers, other threads) */
  wse_sid_t id = sid_of(1), none = sid_of(77);
  CHECK_EQ(wse_app_send_to(app, &id, WSE_OP_BINARY, "\xff", 1), WSE_OK);
  CHECK_EQ(wse_app_send_to(app, &none, WSE_OP_BINARY, "\xff", 1), WSE_ENOTFOUND);
  CHECK_EQ(wse_app_send_to(app, NULL, WSE_OP_BINARY, "\xff", 1), WSE_ENOTFOUND);
  CHECK_EQ(wse_app_send_to(app, &id, WSE_OP_CLOSE, "", 0), WSE_EINVAL);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].target, (uint32_t)a);
  CHECK_MEM(recs[0].frame, recs[0].frame_len, "\x82\x01\xff", 3);

  /* close with code + reason: the exact Close frame */
  CHECK_EQ(ws_text(app, a, "close:1000:bye", 3), WSE_OK);
  CHECK_EQ(last_rc, WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].type, WSE_ACT_CLOSE);
  CHECK_EQ(recs[0].target, (uint32_t)a);
  CHECK_EQ(recs[0].code, 1000);
  CHECK_MEM(recs[0].frame, recs[0].frame_len, "\x88\x05\x03\xe8" "bye", 7);
  CHECK_STR(recs[0].data, recs[0].len, "bye");
  CHECK_EQ(ws_text(app, a, "close:4999", 3), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_MEM(recs[0].frame, recs[0].frame_len, "\x88\x02\x13\x87", 4);
  CHECK_EQ(recs[0].len, 0);
  CHECK_EQ(ws_text(app, a, "close:1005", 3), WSE_OK); /* no status: empty Close */
  CHECK_EQ(drain(app), 1);
  CHECK_MEM(recs[0].frame, recs[0].frame_len, "\x88\x00", 2);
  CHECK_EQ(recs[0].code, 1005);
  /* long reasons are cut to 123 bytes on a character boundary */
  char longr[200] = "close:3000:";
  for (int i = 0; i < 62; i++) strcat(longr, "\xc3\xa9"); /* 124 bytes */
  CHECK_EQ(ws_text(app, a, longr, 3), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].len, 122);
  CHECK_EQ(recs[0].frame_len, 2 + 2 + 122);
  /* close another session by id */
  snprintf(cmd, sizeof cmd, "kill:%s", bs.s);
  CHECK_EQ(ws_text(app, a, cmd, 3), WSE_OK);
  CHECK_EQ(last_rc, WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].target, (uint32_t)b);
  CHECK_EQ(recs[0].code, 4001);
  CHECK_MEM(recs[0].frame, recs[0].frame_len, "\x88\x08\x0f\xa1kicked", 10);
  snprintf(cmd, sizeof cmd, "kill:%s", zs.s);
  CHECK_EQ(ws_text(app, a, cmd, 3), WSE_OK);
  CHECK_EQ(last_rc, WSE_ENOTFOUND);
  CHECK(frames_ok);
  drain(app);
  wse_app_free(app);
}

static void test_http(void) {
  wse_app_t *app = probe_app(&t_allocator);
  wse_response_t r;
  req_t q;
  CHECK_EQ(http(app, "GET", "/items/42?x=1", "", &r), 200);
  CHECK_EQ(r.status, 200);
  CHECK_EQ(r.headers_len, 0);
  CHECK_STR(r.body, r.body_len, "{\"id\":\"42\",\"body\":0}");
  CHECK_EQ(http(app, "GET", "/items/7", "abc", &r), 200);
  CHECK_STR(r.body, r.body_len, "{\"id\":\"7\",\"body\":3}");
  CHECK_EQ(http(app, "DELETE", "/items/7", NULL, &r), 204);
  CHECK_EQ(r.body_len, 0);
  /* wrong method on a known path: 405 with every allowed method */
  CHECK_EQ(http(app, "PUT", "/items/7", NULL, &r), 405);
  CHECK_STR(r.headers, r.headers_len, "Allow: GET, DELETE\r\n");
  CHECK_STR(r.body, r.body_len, "{\"error\":\"method not allowed\"}");
  CHECK_EQ(http(app, "get", "/items/7", NULL, &r), 405); /* methods are case-sensitive */
  CHECK_EQ(http(app, "GET", "/silent", NULL, &r), 405);
  CHECK_STR(r.headers, r.headers_len, "Allow: POST\r\n");
  /* a handler that never responds */
  CHECK_EQ(http(app, "POST", "/silent", NULL, &r), 500);
  CHECK_STR(r.body, r.body_len, "{\"error\":\"no response\"}");
  /* a WebSocket route without an upgrade */
  CHECK_EQ(http(app, "GET", "/ws", NULL, &r), 400);
  CHECK_EQ(r.headers_len, 0);
  CHECK_STR(r.body, r.body_len, "{\"error\":\"This endpoint requires a WebSocket upgrade\"}");
  CHECK_EQ(http(app, "POST", "/p/room?x", "body", &r), 400);
  CHECK_STR(r.body, r.body_len, "{\"error\":\"This endpoint requires a WebSocket upgrade\"}");
  /* ... with a broken upgrade: the core's answer */
  req_ws(&q, "/ws");
  q.h[4].value = S("8");
  CHECK_EQ(wse_app_http(app, &q.r, NULL, 0, 1, &r), 426);
  CHECK_STR(r.headers, r.headers_len, "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
  req_ws(&q, "/ws");
  CHECK_EQ(wse_app_http(app, &q.r, NULL, 0, 1, &r), 500);
  /* nothing there */
  CHECK_EQ(http(app, "GET", "/", NULL, &r), 404);
  CHECK_STR(r.body, r.body_len, "{\"error\":\"not found\"}");
  CHECK_EQ(http(app, "GET", "/items", NULL, &r), 404);
  CHECK_EQ(http(app, "GET", "/items/1/2", NULL, &r), 404);
  CHECK_EQ(drain(app), 0);
  wse_app_free(app);
}

/* Attachments of live sessions, as a Durable Object would have stored them. */
static void test_restore(void) {
  wse_app_t *app = probe_app(&t_allocator);
  static uint8_t big[WSE_USERDATA_MAX];
  uint8_t *att[8];
  size_t lens[8];
  int32_t hs[8];
  for (int i = 0; i < (int)sizeof big; i++) big[i] = (uint8_t)(i * 13);
  ws_connect(app, "/p/red?name=a", 1, 10);
  ws_connect(app, "/p/red?name=b", 2, 11);
  ws_connect(app, "/p/blue?name=c", 3, 12);
  int32_t h4 = ws_connect(app, "/ws?name=d", 4, 13);
  {
    /* the largest session: 16 topics of 128 bytes (topic i all 'A' + i),
     * full user data */
    char cmd[5 + WSE_TOPIC_MAX + 1];
    int joined = 1;
    for (int i = 0; i < WSE_TOPICS_MAX; i++) {
      memcpy(cmd, "join:", 5);
      memset(cmd + 5, 'A' + i, WSE_TOPIC_MAX);
      cmd[5 + WSE_TOPIC_MAX] = 0;
      joined &= ws_text(app, h4, cmd, 14) == WSE_OK && last_rc == WSE_OK;
    }
    CHECK(joined);
    wse_session_t *s = wse_app_session(app, (uint32_t)h4);
    CHECK_EQ(s->n_topics, WSE_TOPICS_MAX);
    free(s->user); /* t_allocator: malloc/free */
    s->user = malloc(WSE_USERDATA_MAX);
    memcpy(s->user, big, WSE_USERDATA_MAX);
    s->user_len = WSE_USERDATA_MAX;
  }
  drain(app);
  size_t n = 0;
  for (int32_t h = 0; h < 4; h++) {
    wse_session_t *s = wse_app_session(app, (uint32_t)h);
    att[n] = malloc(WSE_ATTACHMENT_MAX);
    long k = encode_session(app, s, att[n], WSE_ATTACHMENT_MAX);
    CHECK(k > 0);
    lens[n++] = (size_t)k;
  }
  CHECK_EQ(lens[3], 41 + 3 /* "/ws" */ + WSE_TOPICS_MAX * (1 + WSE_TOPIC_MAX) +
                        WSE_USERDATA_MAX + 4);
  /* a corrupt one (bit flip in the name), a duplicate, a foreign one, a bad route */
  att[4] = malloc(lens[1]);
  memcpy(att[4], att[1], lens[1]);
  lens[4] = lens[1];
  CHECK_EQ(att[1][lens[1] - 6], 'b'); /* the blob "\x01" "bU", then the CRC */
  att[1][lens[1] - 6] ^= 0x20;
  att[5] = malloc(lens[0]);
  memcpy(att[5], att[0], lens[0]); /* duplicate of entry 0 */
  lens[5] = lens[0];
  att[6] = malloc(16);
  memcpy(att[6], "{\"legacy\":true}", 15);
  lens[6] = 15;
  {
    wse_session_t s = *wse_app_session(app, 2);
    s.pattern = "/gone/:room"; /* a route this app does not have (any more) */
    s.pattern_len = 11;
    s.id.b[0] ^= 1;
    att[7] = malloc(WSE_ATTACHMENT_MAX);
    lens[7] = (size_t)encode_session(app, &s, att[7], WSE_ATTACHMENT_MAX);
  }
  wse_app_free(app);

  /* a fresh app (the object woke up): one pass rebuilds everything */
  app = probe_app(&t_allocator);
  long r = wse_app_restore(app, (const uint8_t *const *)att, lens, 8, hs, 999);
  CHECK_EQ(r, 4);
  CHECK(hs[0] >= 0 && hs[2] >= 0 && hs[3] >= 0 && hs[4] >= 0);
  CHECK_EQ(hs[1], WSE_ATT_ECHECKSUM);
  CHECK_EQ(hs[5], WSE_EEXIST);
  CHECK_EQ(hs[6], WSE_ATT_EMAGIC);
  CHECK_EQ(hs[7], WSE_ATT_EROUTE);
  wse_app_stats_t st;
  wse_app_stats(app, &st);
  CHECK_EQ(st.sessions, 4);
  CHECK_EQ(st.rooms, 2 + WSE_TOPICS_MAX); /* red, blue and the 16 long ones */
  CHECK_EQ(st.restored, 4);
  CHECK_EQ(st.restores, 1);
  wse_session_t *s = wse_app_session(app, (uint32_t)hs[4]);
  CHECK(s && s->restored == 1);
  if (s) {
    CHECK_NAME(s->user, s->user_len, "b");
    CHECK(topics_are(app, s, TOPICS("red")));
    CHECK_DATA(s->user, s->user_len, "U", 1);
    CHECK(s->joined_at_ms == 11);
  }
  wse_sid_t id2 = sid_of(2);
  CHECK(wse_app_find(app, &id2) == s);
  s = wse_app_session(app, (uint32_t)hs[3]);
  CHECK(s && s->n_topics == WSE_TOPICS_MAX);
  if (s) {
    int same = 1;
    for (size_t i = 0; i < WSE_TOPICS_MAX; i++) {
      wse_str_t t = topic_of(app, s, i);
      same &= t.n == WSE_TOPIC_MAX;
      for (size_t k = 0; same && k < t.n; k++) same &= t.p[k] == (char)('A' + i);
      /* each of them its own topic, this session its only member */
      same &= wse_app_room_next(app, t.p, t.n, -1) == hs[3] &&
              wse_app_room_next(app, t.p, t.n, hs[3]) == -1;
    }
    CHECK(same);
    CHECK_MEM(s->user, s->user_len, big, WSE_USERDATA_MAX);
    CHECK_EQ(s->route, 0);
  }
  /* rooms rebuilt: members in restore order, and they work at once */
  CHECK_EQ(wse_app_room_next(app, "red", 3, -1), hs[0]);
  CHECK_EQ(wse_app_room_next(app, "red", 3, hs[0]), hs[4]);
  CHECK_EQ(wse_app_room_next(app, "red", 3, hs[4]), -1);
  CHECK_EQ(ws_text(app, hs[2], "bcast:red", 1000), WSE_OK);
  CHECK_EQ(last_rc, 2);
  CHECK_EQ(drain(app), 1); /* no ATTACH: nothing changed */
  CHECK_EQ(recs[0].n_rcpt, 2);
  /* a second wake of a live map: all duplicates, counted as a wake */
  r = wse_app_restore(app, (const uint8_t *const *)att, lens, 1, hs, 1001);
  CHECK_EQ(r, 0);
  CHECK_EQ(hs[0], WSE_EEXIST);
  wse_app_stats(app, &st);
  CHECK_EQ(st.restores, 2);
  CHECK_EQ(st.restored, 4);
  /* seeding adds a base (earlier instances' totals); the counters go on */
  wse_app_stats_seed(app, 3, 9);
  wse_app_stats(app, &st);
  CHECK_EQ(st.restores, 5);
  CHECK_EQ(st.restored, 13);
  CHECK_EQ(st.sessions, 4); /* live counts untouched */
  CHECK_EQ(st.rooms, 2 + WSE_TOPICS_MAX);
  wse_app_stats_seed(app, 0, 0);
  wse_app_stats(app, &st);
  CHECK_EQ(st.restores, 5);
  CHECK_EQ(st.restored, 13);
  /* modulo 2^64: adding UINT64_MAX takes one back */
  wse_app_stats_seed(app, UINT64_MAX, 0);
  wse_app_stats(app, &st);
  CHECK_EQ(st.restores, 4);
  CHECK_EQ(st.restored, 13);
  /* restored sessions close like any other */
  int before = closes;
  CHECK_EQ(wse_app_close(app, (uint32_t)hs[4], 1001, NULL, 0, 1002), WSE_OK);
  CHECK_EQ(closes, before + 1);
  for (int i = 0; i < 8; i++) free(att[i]);
  drain(app);
  wse_app_free(app);
}

/* Steady state allocates nothing: the arena and the action array are kept. */
static void test_arena_reuse(void) {
  counting_t cnt = {0};
  wse_allocator_t al = {c_alloc, c_realloc, c_free, &cnt};
  wse_app_t *app = probe_app(&al);
  int32_t h[4];
  for (int i = 0; i < 4; i++) h[i] = ws_connect(app, "/p/room", (uint8_t)(i + 1), 1);
  drain(app);
  for (int round = 0; round < 3; round++) { /* warm up */
    ws_text(app, h[0], "bcast:room", 2);
    ws_text(app, h[1], "echo:0123456789", 2);
    ws_text(app, h[2], "multi", 2);
    ws_text(app, h[2], "move:room", 2);
    drain(app);
  }
  long allocs = cnt.allocs;
  for (int round = 0; round < 1000; round++) {
    ws_text(app, h[0], "bcast:room", 2);
    ws_text(app, h[1], "echo:0123456789", 2);
    ws_text(app, h[2], "multi", 2);
    ws_text(app, h[2], "move:room", 2);
    wse_app_actions_clear(app);
  }
  CHECK_EQ(cnt.allocs - allocs, 0);
  /* a burst that needs more blocks, then the same burst again: no growth */
  char big[3000];
  memset(big, 'x', sizeof big);
  memcpy(big, "echo:", 5);
  big[sizeof big - 1] = 0;
  for (int i = 0; i < 20; i++) ws_text(app, h[3], big, 3);
  wse_app_actions_clear(app);
  allocs = cnt.allocs;
  for (int round = 0; round < 50; round++) {
    for (int i = 0; i < 20; i++) ws_text(app, h[3], big, 3);
    wse_app_actions_clear(app);
  }
  CHECK_EQ(cnt.allocs - allocs, 0);
  /* a huge message is not kept around */
  size_t hn = (2u << 20) + 6;
  char *huge = malloc(hn);
  memset(huge, 'y', hn);
  memcpy(huge, "echo:", 5);
  huge[hn - 1] = 0;
  long live = cnt.live;
  ws_text(app, h[3], huge, 4);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].len, hn - 6);
  CHECK(cnt.live <= live);
  free(huge);
  wse_app_free(app);
  CHECK_EQ(cnt.live, 0);
  CHECK_EQ(cnt.bad_sizes, 0);
}

static void test_many_sessions(void) {
  counting_t cnt = {0};
  wse_allocator_t al = {c_alloc, c_realloc, c_free, &cnt};
  wse_app_t *app = probe_app(&al);
  enum { N = 3000 };
  static int32_t h[N];
  req_t q;
  wse_response_t resp;
  int ok = 1;
  for (int i = 0; i < N; i++) {
    uint8_t ent[16] = {0};
    memcpy(ent, &i, sizeof i);
    ent[15] = 0x42;
    req_ws(&q, i % 2 ? "/p/odd" : "/p/even");
    h[i] = wse_app_upgrade(app, &q.r, ent, 1, NULL, &resp);
    ok &= h[i] == i && wse_app_open(app, (uint32_t)h[i], 1) == WSE_OK;
    wse_app_actions_clear(app);
  }
  CHECK(ok);
  for (int i = 0; i < N; i++) {
    wse_sid_t id = {{0}};
    memcpy(id.b, &i, sizeof i);
    id.b[15] = 0x42;
    wse_session_t *s = wse_app_find(app, &id);
    ok &= s && s->handle == (uint32_t)i;
  }
  CHECK(ok);
  for (int i = 0; i < N; i += 2) wse_app_close(app, (uint32_t)h[i], 1000, NULL, 0, 2);
  wse_app_actions_clear(app);
  for (int i = 0; i < N; i++) {
    wse_sid_t id = {{0}};
    memcpy(id.b, &i, sizeof i);
    id.b[15] = 0x42;
    ok &= (wse_app_find(app, &id) != NULL) == (i % 2 == 1);
  }
  CHECK(ok);
  wse_app_stats_t st;
  wse_app_stats(app, &st);
  CHECK_EQ(st.sessions, N / 2);
  CHECK_EQ(st.rooms, 1);
  /* freed slots are reused (newest first) and the old id is gone */
  uint8_t ent[16] = {9, 9, 9};
  req_ws(&q, "/ws");
  int32_t again = wse_app_upgrade(app, &q.r, ent, 1, NULL, &resp);
  CHECK_EQ(again, h[N - 2]);
  wse_app_free(app);
  CHECK_EQ(cnt.live, 0);
  CHECK_EQ(cnt.bad_sizes, 0);
}

/* Fail every allocation in turn: no crash, no leak, sizes always right. */
static void test_alloc_failures(void) {
  int completed = 0, leaks = 0, bad = 0;
  for (long k = 1; k < 400 && !completed; k++) {
    counting_t cnt = {0};
    cnt.fail_at = k;
    wse_allocator_t al = {c_alloc, c_realloc, c_free, &cnt};
    wse_app_t *app = probe_app(&al);
    if (app) {
      int32_t a = ws_connect(app, "/p/r?name=x", 1, 1);
      int32_t b = ws_connect(app, "/p/r?name=y", 2, 1);
      ws_text(app, a, "multi", 2);
      ws_text(app, b, "bcast:r", 2);
      ws_text(app, b, "echo:hello", 2);
      ws_text(app, b, "join:r2", 2);
      ws_text(app, b, "join:r3", 2);
      ws_text(app, b, "part:r2", 2);
      ws_text(app, a, "move:r3", 2);
      wse_app_actions_clear(app);
      uint8_t buf[256];
      const uint8_t *att[1] = {buf};
      size_t len[1];
      int32_t hs[1];
      wse_attachment_t s = {0};
      s.id = sid_of(7);
      s.n_topics = 3;
      s.topics[0] = S("q");
      s.topics[1] = S("r3");
      s.topics[2] = S("q2");
      s.user = (const uint8_t *)"ud";
      s.user_len = 2;
      s.pattern = S("/p/:room");
      len[0] = (size_t)wse_attachment_encode(&s, buf, sizeof buf);
      long r = wse_app_restore(app, att, len, 1, hs, 3);
      if (r == 1 && a >= 0 && b >= 0 && cnt.allocs < k) completed = 1;
      if (r == 0) CHECK_EQ(hs[0], WSE_ENOMEM);
      wse_app_free(app);
    }
    leaks += cnt.live != 0;
    bad += cnt.bad_sizes != 0;
  }
  CHECK(completed);
  CHECK_EQ(leaks, 0);
  CHECK_EQ(bad, 0);
}

static void test_query_param(void) {
  char out[16];
  wse_str_t t = S("/chat/x?a=1&name=J%C3%B6rg+X&b=&c&name=second#name=frag");
  CHECK_EQ(wse_query_param(t, "name", out, sizeof out), 7);
  CHECK_MEM(out, 7, "J\xc3\xb6rg X", 7);
  CHECK_EQ(wse_query_param(t, "a", out, sizeof out), 1);
  CHECK_EQ(wse_query_param(t, "b", out, sizeof out), 0);
  CHECK_EQ(wse_query_param(t, "c", out, sizeof out), 0);
  CHECK_EQ(wse_query_param(t, "nam", out, sizeof out), -1);
  CHECK_EQ(wse_query_param(t, "frag", out, sizeof out), -1);
  CHECK_EQ(wse_query_param(S("/x#?name=1"), "name", out, sizeof out), -1);
  CHECK_EQ(wse_query_param(S("/x"), "name", out, sizeof out), -1);
  CHECK_EQ(wse_query_param(S("/x?"), "name", out, sizeof out), -1);
  CHECK_EQ(wse_query_param(S("/x?name=%4a%4A%2b"), "name", out, sizeof out), 3);
  CHECK_MEM(out, 3, "JJ+", 3);
  CHECK_EQ(wse_query_param(S("/x?name=%4"), "name", out, sizeof out), -2);
  CHECK_EQ(wse_query_param(S("/x?name=%"), "name", out, sizeof out), -2);
  CHECK_EQ(wse_query_param(S("/x?name=%G0"), "name", out, sizeof out), -2);
  CHECK_EQ(wse_query_param(S("/x?name=%4&b=1"), "name", out, sizeof out), -2);
  CHECK_EQ(wse_query_param(S("/x?name=0123456789abcdef"), "name", out, 16), 16);
  CHECK_EQ(wse_query_param(S("/x?name=0123456789abcdefg"), "name", out, 16), -2);
  /* the value ends at the string's length, not at a NUL */
  wse_str_t cut = {"/x?name=abcdef", 10};
  CHECK_EQ(wse_query_param(cut, "name", out, sizeof out), 2);
  guard_t g = guard_copy("/x?name=ab%4", 12);
  wse_str_t gs = {(const char *)g.data, 12};
  CHECK_EQ(wse_query_param(gs, "name", out, sizeof out), -2);
  guard_free(&g);
}

static void test_response_write(void) {
  char buf[512];
  wse_response_t r = {101, "Upgrade: websocket\r\nConnection: Upgrade\r\n", 41, "", 0};
  long n = wse_response_write(&r, buf, sizeof buf);
  CHECK_STR(buf, (size_t)n,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
  wse_response_t e = {405, "Allow: GET\r\n", 12, "{\"error\":\"x\"}", 13};
  n = wse_response_write(&e, buf, sizeof buf);
  CHECK_STR(buf, (size_t)n,
            "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n"
            "Content-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"error\":\"x\"}");
  wse_response_t z = {204, NULL, 0, NULL, 0};
  n = wse_response_write(&z, buf, sizeof buf);
  CHECK_STR(buf, (size_t)n, "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
  wse_response_t odd = {599, NULL, 0, "{}", 2};
  n = wse_response_write(&odd, buf, sizeof buf);
  CHECK_STR(buf, (size_t)n,
            "HTTP/1.1 599 Unknown\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
  /* exactly enough, one short */
  size_t full = (size_t)n;
  memset(buf, '#', sizeof buf);
  CHECK_EQ(wse_response_write(&odd, buf, full), (long)full);
  CHECK_EQ(wse_response_write(&odd, buf, full - 1), WSE_ENOSPC);
  CHECK_EQ(wse_response_write(&odd, buf, 0), WSE_ENOSPC);
  /* an app response goes straight through */
  wse_app_t *app = probe_app(&t_allocator);
  wse_response_t ar;
  http(app, "PUT", "/items/1", NULL, &ar);
  n = wse_response_write(&ar, buf, sizeof buf);
  CHECK_STR(buf, (size_t)n,
            "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, DELETE\r\n"
            "Content-Type: application/json\r\nContent-Length: 30\r\n\r\n"
            "{\"error\":\"method not allowed\"}");
  wse_app_free(app);
}

/* The host's direct SEND: used only while nothing is queued (order), its
 * refusal queues the action as before, and the counters see both. */
static int direct_ret, direct_calls;
static uint32_t direct_handle;
static unsigned direct_op;
static char direct_buf[32];
static size_t direct_n;
static int direct_hook(void *ud, wse_session_t *s, unsigned op,
                       const uint8_t *p, size_t n) {
  CHECK_EQ(ud, (void *)&direct_calls);
  direct_calls++;
  direct_handle = s->handle;
  direct_op = op;
  direct_n = n < sizeof direct_buf ? n : sizeof direct_buf;
  memcpy(direct_buf, p, direct_n);
  return direct_ret;
}

static void test_direct_send(void) {
  wse_app_t *app = probe_app(&t_allocator);
  int32_t a = ws_connect(app, "/p/x", 1, 1), b = ws_connect(app, "/p/y", 2, 1);
  drain(app);
  wse_app_set_direct_send(app, direct_hook, &direct_calls);
  wse_app_stats_t st0, st1;
  wse_app_stats(app, &st0);
  direct_ret = 1;
  CHECK_EQ(ws_text(app, a, "echo:hi", 2), WSE_OK);
  CHECK_EQ(last_rc, WSE_OK);
  CHECK_EQ(direct_calls, 1);
  CHECK_EQ(direct_handle, (uint32_t)a);
  CHECK_EQ(direct_op, WSE_OP_TEXT);
  CHECK_STR(direct_buf, direct_n, "hi");
  CHECK_EQ(drain(app), 0); /* written by the host, nothing queued */
  wse_app_stats(app, &st1);
  CHECK_EQ(st1.messages_out - st0.messages_out, 1);
  CHECK_EQ(st1.bytes_out - st0.bytes_out, 2);
  /* refused: queued exactly as without the hook */
  direct_ret = 0;
  CHECK_EQ(ws_text(app, a, "echo:yo", 2), WSE_OK);
  CHECK_EQ(direct_calls, 2);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].type, WSE_ACT_SEND);
  CHECK_EQ(recs[0].target, (uint32_t)a);
  CHECK_MEM(recs[0].frame, recs[0].frame_len, "\x81\x02yo", 4);
  wse_app_stats(app, &st0);
  CHECK_EQ(st0.messages_out - st1.messages_out, 1);
  /* an action already queued: the send queues behind it, no direct call */
  direct_ret = 1;
  CHECK_EQ(ws_text(app, a, "close:1000", 3), WSE_OK);
  wse_sid_t idb = sid_of(2);
  CHECK_EQ(wse_app_send_to(app, &idb, WSE_OP_BINARY, "\x07", 1), WSE_OK);
  CHECK_EQ(direct_calls, 2);
  CHECK_EQ(drain(app), 2);
  CHECK_EQ(recs[0].type, WSE_ACT_CLOSE);
  CHECK_EQ(recs[1].type, WSE_ACT_SEND);
  CHECK_EQ(recs[1].target, (uint32_t)b);
  CHECK_MEM(recs[1].frame, recs[1].frame_len, "\x82\x01\x07", 3);
  /* queue empty again: direct, to another session by id */
  CHECK_EQ(wse_app_send_to(app, &idb, WSE_OP_BINARY, "\x08", 1), WSE_OK);
  CHECK_EQ(direct_calls, 3);
  CHECK_EQ(direct_handle, (uint32_t)b);
  CHECK_EQ(direct_op, WSE_OP_BINARY);
  CHECK_EQ(drain(app), 0);
  /* off again */
  wse_app_set_direct_send(app, NULL, NULL);
  CHECK_EQ(ws_text(app, a, "echo:z", 2), WSE_OK);
  CHECK_EQ(direct_calls, 3);
  CHECK_EQ(drain(app), 1);
  wse_app_free(app);
}


/* A deploy that reorders or replaces routes: attachments name their route
 * by pattern, so restored sessions land on their own handlers, and a
 * session whose route is gone is refused (the host closes it 1011). */
static void tag_a(wse_ctx_t *c, unsigned op, const uint8_t *p, size_t n) {
  (void)op, (void)p, (void)n;
  wse_send(c, WSE_OP_TEXT, "A", 1);
}
static void tag_b(wse_ctx_t *c, unsigned op, const uint8_t *p, size_t n) {
  (void)op, (void)p, (void)n;
  wse_send(c, WSE_OP_TEXT, "B", 1);
}
static void tag_c(wse_ctx_t *c, unsigned op, const uint8_t *p, size_t n) {
  (void)op, (void)p, (void)n;
  wse_send(c, WSE_OP_TEXT, "C", 1);
}

static wse_app_t *tagged_app(const char *order) {
  wse_app_t *app = NULL;
  CHECK_EQ(wse_app_new(&app, &t_allocator, NULL), WSE_OK);
  for (const char *o = order; *o; o++) {
    wse_route_t r = {0};
    r.pattern = *o == 'A' ? "/a/:room" : *o == 'B' ? "/b" : "/c/:x";
    r.on_message = *o == 'A' ? tag_a : *o == 'B' ? tag_b : tag_c;
    CHECK(wse_app_route(app, &r) >= 0);
  }
  return app;
}

/* The one SEND the session's handler answers with ("A", "B" or "C"). */
static char answer(wse_app_t *app, int32_t h) {
  if (h < 0 || ws_text(app, h, "?", 50) != WSE_OK || drain(app) != 1 ||
      recs[0].type != WSE_ACT_SEND || recs[0].len != 1)
    return '-';
  return (char)recs[0].data[0];
}

static void test_restore_after_deploy(void) {
  wse_app_t *app = tagged_app("AB");
  uint8_t *att[2];
  size_t lens[2];
  int32_t hs[2];
  const char *targets[2] = {"/a/lobby", "/b"};
  for (int i = 0; i < 2; i++) {
    int32_t h = ws_connect(app, targets[i], (uint8_t)(40 + i), 10);
    CHECK(h >= 0);
    CHECK_EQ(drain(app), 1); /* the ATTACH of the open */
    CHECK_EQ(recs[0].type, WSE_ACT_ATTACH);
    att[i] = dup_bytes(recs[0].data, recs[0].len);
    lens[i] = recs[0].len;
    CHECK_EQ(answer(app, h), i ? 'B' : 'A');
  }
  wse_app_free(app);

  /* [B, A]: every session on its own handler */
  app = tagged_app("BA");
  CHECK_EQ(wse_app_restore(app, (const uint8_t *const *)att, lens, 2, hs, 20), 2);
  CHECK_EQ(answer(app, hs[0]), 'A');
  CHECK_EQ(answer(app, hs[1]), 'B');
  CHECK_EQ(wse_app_session(app, (uint32_t)hs[0])->route, 1);
  wse_app_free(app);

  /* [C, A]: B is gone; its session is refused, A's is restored onto A */
  app = tagged_app("CA");
  CHECK_EQ(wse_app_restore(app, (const uint8_t *const *)att, lens, 2, hs, 30), 1);
  CHECK_EQ(answer(app, hs[0]), 'A');
  CHECK_EQ(hs[1], WSE_ATT_EROUTE);
  CHECK_STR(wse_strerror(WSE_ATT_EROUTE), strlen(wse_strerror(WSE_ATT_EROUTE)),
            "attachment names a route the app does not have");
  wse_app_free(app);

  /* one route per pattern: the pattern is the route's name */
  app = tagged_app("A");
  wse_route_t dup = {0};
  dup.pattern = "/a/:room";
  CHECK_EQ(wse_app_route(app, &dup), WSE_EEXIST);
  wse_app_free(app);
  free(att[0]);
  free(att[1]);
  recs_reset();
}

/* Session lifetime for a host without per-connection timers (the edge's
 * alarm): CLOSE 4000 "timeout" at joined_at + session_timeout_s, the next
 * end reported, routes without a lifetime never expire. */
static void test_expire(void) {
  wse_app_t *app = NULL;
  wse_config_t life, none;
  wse_config_default(&life);
  life.session_timeout_s = 2;
  none = life;
  none.session_timeout_s = 0;
  CHECK_EQ(wse_app_new(&app, &t_allocator, NULL), WSE_OK);
  wse_route_t a = {0}, b = {0};
  a.pattern = "/life";
  a.config = &life;
  b.pattern = "/forever";
  b.config = &none;
  CHECK(wse_app_route(app, &a) >= 0 && wse_app_route(app, &b) >= 0);
  int32_t h1 = ws_connect(app, "/life", 51, 1000);
  int32_t h2 = ws_connect(app, "/life", 52, 1500);
  int32_t h3 = ws_connect(app, "/forever", 53, 1000);
  CHECK(h1 >= 0 && h2 >= 0 && h3 >= 0);
  drain(app);
  uint64_t next = 7;
  CHECK_EQ(wse_app_expire(app, 2999, &next), 0);
  CHECK(next == 3000);
  CHECK_EQ(drain(app), 0);
  CHECK_EQ(wse_app_expire(app, 3000, &next), 1);
  CHECK(next == 3500);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].type, WSE_ACT_CLOSE);
  CHECK_EQ(recs[0].target, (uint32_t)h1);
  CHECK_EQ(recs[0].code, 4000);
  CHECK_STR((const char *)recs[0].data, recs[0].len, "timeout");
  CHECK_EQ(wse_app_close(app, (uint32_t)h1, 4000, NULL, 0, 3000), WSE_OK);
  drain(app);
  CHECK_EQ(wse_app_expire(app, 10000000, &next), 1); /* h2; h3 never */
  CHECK(next == 0);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].target, (uint32_t)h2);
  CHECK_EQ(wse_app_expire(app, 10000000, NULL), 1); /* still open: again */
  drain(app);
  CHECK(wse_app_route_config(app, 0)->session_timeout_s == 2);
  CHECK(wse_app_route_config(app, 2) == NULL);
  wse_app_free(app);
  recs_reset();
}

static void test_heartbeat(void) {
  wse_app_t *app = probe_app(&t_allocator);
  static char big[WSE_HEARTBEAT_MAX + 2];
  memset(big, 'x', sizeof big - 1);
  CHECK(wse_app_heartbeat_get(app, 0) == NULL);
  CHECK_EQ(wse_app_heartbeat(app, "ping", NULL), WSE_EINVAL);
  CHECK_EQ(wse_app_heartbeat(app, "", "pong"), WSE_EINVAL);
  CHECK_EQ(wse_app_heartbeat(app, big, "pong"), WSE_EINVAL);
  CHECK_EQ(wse_app_heartbeat(app, "ping", "\xff"), WSE_EINVAL);
  big[WSE_HEARTBEAT_MAX] = 0; /* exactly the limit */
  CHECK_EQ(wse_app_heartbeat(app, "ping", big), WSE_OK);
  CHECK_EQ(wse_app_heartbeat(app, "echo:hb", "hb-ack"), WSE_OK);
  CHECK_STR(wse_app_heartbeat_get(app, 0), 7, "echo:hb");
  CHECK_STR(wse_app_heartbeat_get(app, 1), 6, "hb-ack");
  int32_t h = ws_connect(app, "/p/hb?name=ann", 61, 100);
  CHECK(h >= 0);
  drain(app);
  last_rc = 12345;
  /* the exact text: answered before on_message (which would echo "hb") */
  CHECK_EQ(ws_text(app, h, "echo:hb", 200), WSE_OK);
  CHECK_EQ(last_rc, 12345);
  CHECK_EQ(drain(app), 1);
  CHECK_EQ(recs[0].type, WSE_ACT_SEND);
  CHECK_EQ(recs[0].target, (uint32_t)h);
  CHECK_STR(recs[0].data, recs[0].len, "hb-ack");
  CHECK(wse_app_session(app, (uint32_t)h)->last_seen_ms == 200);
  /* anything else, binary included, is the app's */
  CHECK_EQ(ws_text(app, h, "echo:hb ", 201), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_STR(recs[0].data, recs[0].len, "hb ");
  CHECK_EQ(wse_app_message(app, (uint32_t)h, WSE_OP_BINARY, (const uint8_t *)"echo:hb", 7, 202), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_STR(recs[0].data, recs[0].len, "echo:hb");
  /* removed: the app sees it again */
  CHECK_EQ(wse_app_heartbeat(app, NULL, NULL), WSE_OK);
  CHECK(wse_app_heartbeat_get(app, 1) == NULL);
  CHECK_EQ(ws_text(app, h, "echo:hb", 203), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK_STR(recs[0].data, recs[0].len, "hb");
  wse_app_free(app);
  recs_reset();
}

int main(void) {
  test_routes();
  test_heartbeat();
  test_upgrade();
  test_handlers();
  test_rooms();
  test_topics_broadcast();
  test_topics_limit();
  test_topics_upgrade();
  test_topics_order();
  test_topics_free();
  test_topics_restore();
  test_send_close();
  test_direct_send();
  test_http();
  test_restore();
  test_restore_after_deploy();
  test_expire();
  test_arena_reuse();
  test_many_sessions();
  test_alloc_failures();
  test_query_param();
  test_response_write();
  CHECK(frames_ok);
  recs_reset();
  TEST_REPORT();
}
