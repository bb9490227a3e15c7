/* app.c — @NAME@: chat rooms, written once against wsedge.h and served
 * unchanged by the native program (build/@NAME@) and by the Worker (the
 * same code compiled to build/@NAME@.wasm). Edit it: this is your app.
 *
 *   WebSocket /room/:name?user=USER   join room :name (1..64 bytes of
 *       [A-Za-z0-9_-]) as USER (1..32 bytes of UTF-8 without control
 *       characters; absent: "anonymous"); anything else: 400 JSON.
 *   GET /room/:name/info              200 {"room":R,"members":N}
 *
 * Events the members receive, exactly these bytes:
 *   {"type":"join","user":U,"count":N}     every member, the joiner included
 *   {"type":"message","user":U,"text":T}   every member, the sender included
 *   {"type":"leave","user":U,"count":N}    the remaining members
 *   {"type":"error","error":MSG}           the sender only
 * A text frame is the message's text (at most 4096 bytes). Binary frames go
 * unchanged to the other members. {"type":"ping"} is answered
 * {"type":"pong"} (at the edge by the runtime, without waking the room).
 *
 * At the edge each room is one Durable Object of the ROOMS namespace
 * (wrangler.toml), named by :name; natively one process holds every room.
 * No libc in wasm: use __builtin_memcpy/memcmp/strlen and wsedge/json.h. */
#include "wsedge.h"

#define ROOM_MAX 64
#define USER_MAX 32
#define TEXT_MAX 4096

static int room_ok(wse_str_t r) {
  if (!r.n || r.n > ROOM_MAX) return 0;
  for (size_t i = 0; i < r.n; i++) {
    char ch = r.p[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
      return 0;
  }
  return 1;
}

static int user_ok(const char *p, long n) {
  if (n < 1 || n > USER_MAX || !wse_utf8_valid((const uint8_t *)p, (size_t)n))
    return 0;
  for (long i = 0; i < n; i++)
    if ((unsigned char)p[i] < 0x20 || p[i] == 0x7F) return 0;
  return 1;
}

/* {"type":TYPE,"user":U, then "text":T} or "count":N}, in scratch memory
 * that lives until the actions are executed. NULL when out of memory. */
static const char *event(wse_ctx_t *c, const char *type,
                         const wse_session_t *s, const uint8_t *text,
                         size_t tn, size_t count, size_t *len) {
  size_t cap = 64 + 6 * (s->user_len + tn);
  wse_jw_t w = {wse_ctx_alloc(c, cap), 0, cap};
  *len = 0;
  if (!w.p) return NULL;
  wse_jw_lit(&w, "{\"type\":\"");
  wse_jw_cstr(&w, type);
  wse_jw_lit(&w, "\",\"user\":");
  wse_jw_str(&w, (const char *)s->user, s->user_len); /* the user's name */
  if (text) {
    wse_jw_lit(&w, ",\"text\":");
    wse_jw_str(&w, (const char *)text, tn);
  } else {
    wse_jw_lit(&w, ",\"count\":");
    wse_jw_u64(&w, count);
  }
  wse_jw_lit(&w, "}");
  *len = w.n;
  return wse_jw_ok(&w) ? w.p : NULL;
}

static void to_room(wse_ctx_t *c, const char *room, size_t rn, const char *ev,
                    size_t n) {
  if (ev) wse_broadcast(c, room, rn, WSE_OP_TEXT, ev, n, NULL, 0);
}

/* A session is in one topic: its room (joined in on_upgrade). */
static wse_str_t room_of(wse_ctx_t *c) {
  wse_str_t r = {0, 0};
  wse_ctx_topic(c, 0, &r);
  return r;
}

static int on_upgrade(wse_ctx_t *c, const wse_request_t *req,
                      const wse_params_t *params) {
  char user[USER_MAX];
  long n;
  if (!room_ok(params->value[0])) return wse_reject(c, 400, "invalid room");
  n = wse_query_param(req->target, "user", user, sizeof user);
  if (n == -1) {
    __builtin_memcpy(user, "anonymous", 9);
    n = 9;
  } else if (!user_ok(user, n)) {
    return wse_reject(c, 400, "invalid user");
  }
  /* the session's user blob: kept in its attachment across hibernation */
  wse_set_user(c, user, (size_t)n);
  /* a member of the room from the open on */
  return wse_join(c, params->value[0].p, params->value[0].n);
}

static void on_open(wse_ctx_t *c) {
  wse_session_t *s = wse_ctx_session(c);
  wse_str_t r = room_of(c);
  size_t n;
  const char *ev = event(c, "join", s, NULL, 0, wse_room_count(c, r.p, r.n), &n);
  to_room(c, r.p, r.n, ev, n);
}

static const char too_long[] =
    "{\"type\":\"error\",\"error\":\"message too long\"}";

static void on_message(wse_ctx_t *c, unsigned opcode, const uint8_t *p,
                       size_t n) {
  wse_session_t *s = wse_ctx_session(c);
  wse_str_t r = room_of(c);
  size_t len;
  if (opcode == WSE_OP_BINARY) { /* to everyone else, as it came */
    wse_broadcast(c, r.p, r.n, opcode, p, n, &s->id, 1);
    return;
  }
  if (n > TEXT_MAX) {
    wse_send(c, WSE_OP_TEXT, too_long, sizeof too_long - 1);
    return;
  }
  const char *ev = event(c, "message", s, p, n, 0, &len);
  to_room(c, r.p, r.n, ev, len);
}

static void on_close(wse_ctx_t *c, unsigned code, const uint8_t *reason,
                     size_t n) {
  wse_session_t *s = wse_ctx_session(c);
  char room[WSE_TOPIC_MAX];
  wse_str_t r = room_of(c);
  size_t rn = r.n, left, len;
  (void)code, (void)reason, (void)n;
  if (rn) __builtin_memcpy(room, r.p, rn); /* r goes with the last member */
  wse_leave(c);
  if ((left = wse_room_count(c, room, rn)) > 0)
    to_room(c, room, rn, event(c, "leave", s, NULL, 0, left, &len), len);
}

static void room_info(wse_ctx_t *c, const wse_request_t *req,
                      const wse_params_t *params, const uint8_t *body,
                      size_t n) {
  wse_str_t room = params->value[0];
  char buf[128];
  wse_jw_t w = {buf, 0, sizeof buf};
  (void)req, (void)body, (void)n;
  if (!room_ok(room)) {
    static const char bad[] = "{\"error\":\"invalid room\"}";
    wse_respond(c, 400, bad, sizeof bad - 1);
    return;
  }
  wse_jw_lit(&w, "{\"room\":");
  wse_jw_str(&w, room.p, room.n);
  wse_jw_lit(&w, ",\"members\":");
  wse_jw_u64(&w, wse_room_count(c, room.p, room.n));
  wse_jw_lit(&w, "}");
  wse_respond(c, 200, buf, w.n);
}

/* The entry point both hosts call: register the routes. It keeps no state
 * of its own (it runs once per Durable Object instance at the edge). */
int wsedge_app(wse_app_t *app) {
  wse_route_t room = {0};
  wse_http_route_t info = {0};
  int rc;
  room.pattern = "/room/:name";
  room.on_upgrade = on_upgrade;
  room.on_open = on_open;
  room.on_message = on_message;
  room.on_close = on_close;
  room.durable = "ROOMS"; /* one Durable Object per :name */
  info.method = "GET";
  info.pattern = "/room/:name/info";
  info.handler = room_info;
  info.durable = "ROOMS"; /* answered by the same room's object */
  if ((rc = wse_app_route(app, &room)) < 0 ||
      (rc = wse_app_http_route(app, &info)) < 0 ||
      /* {"type":"ping"} is answered {"type":"pong"} before on_message
       * (at the edge by the runtime, without waking the room) */
      (rc = wse_app_heartbeat(app, "{\"type\":\"ping\"}", "{\"type\":\"pong\"}")) < 0)
    return rc;
  return WSE_OK;
}
