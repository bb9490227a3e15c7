/* chat.c — "/chat/:room?name=NAME": chat rooms, written once against the
 * app API and run unchanged natively and in a Durable Object. Room names are
 * 1..64 bytes of [A-Za-z0-9_.-]; names 1..32 bytes of UTF-8 without control
 * characters (absent: "guest-" + the first 6 characters of the id).
 *
 * Events, exactly these bytes (JSON strings escaped by wse_jw_str):
 *   {"type":"join","id":ID,"name":NAME,"count":N}        every member, joiner included
 *   {"type":"message","id":ID,"name":NAME,"text":T,"ts":MS}  every member, sender included
 *   {"type":"direct","id":FROM,"name":NAME,"text":T,"ts":MS} addressee + a copy to the sender
 *   {"type":"leave","id":ID,"name":NAME,"count":N}       the remaining members
 *   {"type":"error","error":MSG}                          the sender only
 * A client text is plain text, or (starting with '{') {"text":T} or
 * {"to":ID,"text":T}. Binary messages go unchanged to the other members.
 * HTTP: POST /chat/:room/messages (same body forms; id and name "server")
 * -> 200 {"delivered":N}; with "at":MS (Unix ms, at most 7 days ahead; not
 * with "to") the room broadcasts it when due (a timer: a Durable Object
 * alarm at the edge) -> 200 {"scheduled":true,"due_at":MS,"seq_due_at":MS};
 * GET /chat/:room/stats -> 200
 * {"room":R,"members":N,"sessions":S,"restored":X,"wakes":W}. */
#include "wsedge.h"

#include "../echo/echo.h"

#define CHAT_ROOM_MAX 64
#define CHAT_NAME_MAX 32
#define CHAT_TEXT_MAX 4096
#define CHAT_AT_MAX ((uint64_t)7 * 24 * 3600 * 1000) /* "at": 7 days ahead */

static const char e_no_session[] = "no such session";

/* No libc at the edge: the wasm glue provides memcpy/memset/memmove/memcmp
 * and strlen for the compiler's builtins; this compare is all chat needs. */
static int chat_memeq(const void *a, const void *b, size_t n) {
  return __builtin_memcmp(a, b, n) == 0;
}

static int room_ok(wse_str_t r) {
  if (!r.n || r.n > CHAT_ROOM_MAX) return 0;
  for (size_t i = 0; i < r.n; i++) {
    char ch = r.p[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-'))
      return 0;
  }
  return 1;
}

static int name_ok(const char *p, long n) {
  if (n < 1 || n > CHAT_NAME_MAX ||
      !wse_utf8_valid((const uint8_t *)p, (size_t)n))
    return 0;
  for (long i = 0; i < n; i++) {
    uint8_t ch = (uint8_t)p[i];
    /* C0, DEL and C1 (U+0080..U+009F = C2 80..C2 9F) */
    if (ch < 0x20 || ch == 0x7F || (ch == 0xC2 && (uint8_t)p[i + 1] < 0xA0))
      return 0;
  }
  return 1;
}

/* {"type":TYPE,"id":ID,"name":NAME, then "text":T,"ts":NUM} when text is
 * given, else "count":NUM}; a room event (room given) ends ,"seq":N} and
 * joins the room's history. In scratch memory; w.n > w.cap on failure. */
static wse_jw_t event(wse_ctx_t *c, const char *type, const char *id,
                       size_t idn, const char *name, size_t nn,
                       const char *text, size_t tn, uint64_t num,
                       const char *room, size_t rn) {
  size_t cap = 128 + 6 * (idn + nn + tn);
  uint64_t seq = room ? wse_room_seq(c, room, rn) + 1 : 0;
  wse_jw_t w = {wse_ctx_alloc(c, cap), 0, cap};
  if (!w.p) return w.n = cap + 1, w;
  wse_jw_lit(&w, "{\"type\":\"");
  wse_jw_cstr(&w, type);
  wse_jw_lit(&w, "\",\"id\":");
  wse_jw_str(&w, id, idn);
  wse_jw_lit(&w, ",\"name\":");
  wse_jw_str(&w, name, nn);
  if (text) {
    wse_jw_lit(&w, ",\"text\":");
    wse_jw_str(&w, text, tn);
    wse_jw_lit(&w, ",\"ts\":");
  } else {
    wse_jw_lit(&w, ",\"count\":");
  }
  wse_jw_u64(&w, num);
  if (room) {
    wse_jw_lit(&w, ",\"seq\":");
    wse_jw_u64(&w, seq);
  }
  wse_jw_lit(&w, "}");
  /* numbered events are kept: one the history refused is not sent */
  if (room && w.n <= w.cap && wse_history_add(c, room, rn, seq, w.p, w.n) < 0)
    w.n = w.cap + 1;
  return w;
}

static wse_jw_t session_event(wse_ctx_t *c, const wse_session_t *s,
                               const char *type, const char *text, size_t tn,
                               uint64_t num, wse_str_t room) {
  char id[WSE_SID_LEN];
  wse_sid_format(&s->id, id);
  /* the display name is the session's user blob (set in chat_upgrade);
   * a blob that is not a valid name (an attachment written by other code)
   * is never put on the wire: the guest name instead */
  const char *name = (const char *)s->user;
  size_t nn = s->user_len;
  char guest[12];
  if (!name_ok(name, (long)nn)) {
    __builtin_memcpy(guest, "guest-", 6);
    __builtin_memcpy(guest + 6, id, 6);
    name = guest;
    nn = sizeof guest;
  }
  return event(c, type, id, sizeof id, name, nn, text, tn, num, room.p, room.n);
}

static int to_room(wse_ctx_t *c, const char *room, size_t rn, wse_jw_t w,
                   const wse_sid_t *except) {
  if (w.n > w.cap) return WSE_ENOMEM;
  return wse_broadcast(c, room, rn, WSE_OP_TEXT, w.p, w.n, except, !!except);
}

/* {"error":MSG} ({"type":"error","error":MSG} when typed) on the stack. */
static size_t error_json(char *buf, size_t cap, int typed, const char *msg) {
  wse_jw_t w = {buf, 0, cap};
  if (typed) wse_jw_lit(&w, "{\"type\":\"error\",\"error\":");
  else wse_jw_lit(&w, "{\"error\":");
  wse_jw_str(&w, msg, __builtin_strlen(msg));
  wse_jw_lit(&w, "}");
  return w.n;
}

/* A client message or push body: its text and, for a direct message, the
 * addressee's id (*to: a session in `room`, or in a cluster one of another
 * node, kept in *id); a push (at != NULL) may carry "at" (*at = 0 when
 * absent). Returns NULL or the error message. */
static const char *parse(wse_ctx_t *c, const char *room, size_t rn,
                         const uint8_t *p, size_t n, wse_str_t *text,
                         const wse_sid_t **to, wse_sid_t *id, uint64_t *at) {
  static const char *const keys[] = {"text", "to", "at"};
  wse_str_t v[3] = {{0, 0}, {0, 0}, {0, 0}};
  unsigned nums;
  *to = NULL;
  text->p = (const char *)p;
  text->n = n;
  if (at) *at = 0;
  if (n && p[0] == '{') {
    char *buf = n <= 6 * CHAT_TEXT_MAX + 256 ? wse_ctx_alloc(c, n) : NULL;
    if (!buf) return "message too long";
    if (wse_json_object(p, n, keys, at ? 3 : 2, v, &nums, buf, n) ||
        (nums & 3) || (v[2].p && !(nums & 4)))
      return "invalid message";
    if (!v[0].p) return "missing text";
    if (v[2].p && (wse_json_u64(v[2], at) || !*at))
      return "invalid at";
    if (v[2].p && v[1].p) return "at cannot be used with to";
    *text = v[0];
    if (v[1].p) {
      wse_app_t *app = wse_ctx_app(c);
      wse_session_t *t;
      wse_str_t tr = {0, 0};
      if (wse_sid_parse(v[1].p, v[1].n, id)) return e_no_session;
      if ((t = wse_app_find(app, id))) wse_app_session_topic(app, t, 0, &tr);
      /* in a cluster, another node's session: that node delivers it when
       * the session is there (its room is checked on this node only) */
      if (!t && !wse_sid_remote(app, id)) return e_no_session;
      if (t && (tr.n != rn || !chat_memeq(tr.p, room, rn))) return e_no_session;
      *to = t ? &t->id : id;
    }
  }
  if (!text->n) return "empty message";
  if (text->n > CHAT_TEXT_MAX) return "message too long";
  return NULL;
}

static int chat_upgrade(wse_ctx_t *c, const wse_request_t *req,
                        const wse_params_t *prm) {
  wse_session_t *s = wse_ctx_session(c);
  char name[CHAT_NAME_MAX + 22];
  long n, k;
  uint64_t since;
  if (!room_ok(prm->value[0])) return wse_reject(c, 400, "invalid room");
  n = wse_query_param(req->target, "name", name, sizeof name);
  if (n == -1) {
    char id[WSE_SID_LEN];
    wse_sid_format(&s->id, id);
    __builtin_memcpy(name, "guest-", 6);
    __builtin_memcpy(name + 6, id, 6);
    n = 12;
  } else if (!name_ok(name, n)) {
    return wse_reject(c, 400, "invalid name");
  }
  /* ?since=N: until on_open the blob carries it after the name ('\n' is
   * never in a name) */
  k = wse_query_param(req->target, "since", name + n + 1, 21);
  if (k != -1 && (k < 1 || wse_json_u64((wse_str_t){name + n + 1, (size_t)k}, &since)))
    return wse_reject(c, 400, "invalid since");
  name[n] = '\n';
  if (k > 0) n += 1 + k;
  wse_set_user(c, name, (size_t)n); /* the name, kept across hibernation */
  return wse_join(c, prm->value[0].p, prm->value[0].n); /* member at open */
}

/* A chat session is in one topic: its room. */
static wse_str_t room_of(wse_ctx_t *c) {
  wse_str_t r = {0, 0};
  wse_ctx_topic(c, 0, &r);
  return r;
}

/* A client back with ?since=N: {"type":"gap","from":A,"to":B} when the
 * room's history no longer reaches back to N, then every kept event after
 * N, in order (its own join comes after them). */
static void resume(wse_ctx_t *c, wse_str_t r, uint64_t since) {
  uint64_t last = wse_room_seq(c, r.p, r.n), oldest;
  char buf[80];
  wse_jw_t w = {buf, 0, sizeof buf};
  wse_history_replay(c, r.p, r.n, UINT64_MAX, &oldest); /* only asks */
  if (since < last && (!oldest || oldest > since + 1)) {
    wse_jw_lit(&w, "{\"type\":\"gap\",\"from\":");
    wse_jw_u64(&w, since + 1);
    wse_jw_lit(&w, ",\"to\":");
    wse_jw_u64(&w, oldest ? oldest - 1 : last);
    wse_jw_lit(&w, "}");
    wse_send(c, WSE_OP_TEXT, buf, w.n);
  }
  wse_history_replay(c, r.p, r.n, since, NULL);
}

static void chat_open(wse_ctx_t *c) {
  wse_session_t *s = wse_ctx_session(c);
  wse_str_t r = room_of(c);
  size_t n = wse_room_count(c, r.p, r.n), nl = 0;
  const char *u = (const char *)s->user;
  while (nl < s->user_len && u[nl] != '\n') nl++;
  if (nl < s->user_len) {
    uint64_t since = 0;
    wse_json_u64((wse_str_t){u + nl + 1, s->user_len - nl - 1}, &since);
    wse_set_user(c, u, nl); /* the name alone from now on */
    resume(c, r, since);
  }
  to_room(c, r.p, r.n, session_event(c, s, "join", NULL, 0, n, r), NULL);
}

static void chat_message(wse_ctx_t *c, unsigned opcode, const uint8_t *p,
                         size_t n) {
  wse_session_t *s = wse_ctx_session(c);
  const wse_sid_t *to;
  wse_sid_t id;
  wse_str_t text;
  if (opcode == WSE_OP_BINARY) {
    wse_str_t r = room_of(c);
    wse_broadcast(c, r.p, r.n, opcode, p, n, &s->id, 1);
    return;
  }
  wse_str_t r = room_of(c);
  const char *err = parse(c, r.p, r.n, p, n, &text, &to, &id, NULL);
  if (err) {
    char buf[64];
    wse_send(c, WSE_OP_TEXT, buf, error_json(buf, sizeof buf, 1, err));
    return;
  }
  wse_str_t none = {0, 0};
  wse_jw_t w = session_event(c, s, to ? "direct" : "message", text.p,
                              text.n, wse_ctx_now(c), to ? none : r);
  if (!to) {
    to_room(c, r.p, r.n, w, NULL);
  } else if (w.n <= w.cap) {
    wse_send_to(c, to, WSE_OP_TEXT, w.p, w.n);
    if (to != &s->id) wse_send(c, WSE_OP_TEXT, w.p, w.n);
  }
}

static void chat_close(wse_ctx_t *c, unsigned code, const uint8_t *reason,
                       size_t n) {
  wse_session_t *s = wse_ctx_session(c);
  char room[WSE_TOPIC_MAX];
  wse_str_t r = room_of(c);
  size_t rn = r.n, left;
  (void)code, (void)reason, (void)n;
  if (rn) __builtin_memcpy(room, r.p, rn); /* r goes with the last member */
  wse_leave(c);
  if ((left = wse_room_count(c, room, rn)) > 0)
    to_room(c, room, rn,
            session_event(c, s, "leave", NULL, 0, left, (wse_str_t){room, rn}),
            NULL);
}

static void http_error(wse_ctx_t *c, int status, const char *msg) {
  char buf[64];
  wse_respond(c, status, buf, error_json(buf, sizeof buf, 0, msg));
}

/* A scheduled message: timer "chat:AT:K" of its room (K: the first
 * suffix not taken), the text as the timer's data. */
static void schedule(wse_ctx_t *c, wse_str_t room, wse_str_t text,
                     uint64_t at) {
  char key[48], buf[96];
  wse_jw_t k, out = {buf, 0, sizeof buf};
  uint64_t now = wse_ctx_now(c);
  int rc;
  if (at > now + CHAT_AT_MAX) {
    http_error(c, 400, "at is more than 7 days ahead");
    return;
  }
  for (uint64_t i = wse_timer_count(c, room.p, room.n);; i++) {
    k = (wse_jw_t){key, 0, sizeof key};
    wse_jw_lit(&k, "chat:");
    wse_jw_u64(&k, at);
    wse_jw_lit(&k, ":");
    wse_jw_u64(&k, i);
    if (wse_timer_get(c, room.p, room.n, key, k.n, NULL)) break;
  }
  rc = wse_timer_set(c, room.p, room.n, key, k.n, at > now ? at - now : 0,
                     text.p, text.n);
  if (rc < 0) {
    http_error(c, rc == WSE_ENOSPC ? 429 : 500,
               rc == WSE_ENOSPC ? "too many scheduled messages" : "internal error");
    return;
  }
  if (at < now) at = now; /* the past: at the next pass */
  wse_jw_lit(&out, "{\"scheduled\":true,\"due_at\":");
  wse_jw_u64(&out, at);
  wse_jw_lit(&out, ",\"seq_due_at\":");
  wse_jw_u64(&out, at);
  wse_jw_lit(&out, "}");
  wse_respond(c, 200, buf, out.n);
}

/* Due: the room gets the message from "server", as a push would send it. */
static void chat_timer(wse_ctx_t *c, const wse_timer_t *t) {
  to_room(c, t->room.p, t->room.n,
          event(c, "message", "server", 6, "server", 6, (const char *)t->data,
                t->len, wse_ctx_now(c), t->room.p, t->room.n),
          NULL);
}

static void chat_push(wse_ctx_t *c, const wse_request_t *req,
                      const wse_params_t *prm, const uint8_t *body,
                      size_t n) {
  wse_str_t room = prm->value[0], text;
  const wse_sid_t *to = NULL;
  wse_sid_t id;
  const char *err = "invalid room";
  char buf[40];
  wse_jw_t out = {buf, 0, sizeof buf};
  long delivered;
  uint64_t at;
  (void)req;
  if (room_ok(room))
    err = wse_utf8_valid(body, n)
              ? parse(c, room.p, room.n, body, n, &text, &to, &id, &at)
              : "invalid message";
  if (err) {
    http_error(c, err == e_no_session ? 404 : 400, err);
    return;
  }
  if (at) {
    schedule(c, room, text, at);
    return;
  }
  wse_jw_t w = event(c, to ? "direct" : "message", "server", 6, "server", 6,
                      text.p, text.n, wse_ctx_now(c), to ? NULL : room.p,
                      room.n);
  if (w.n > w.cap) delivered = WSE_ENOMEM;
  else if (!to) delivered = to_room(c, room.p, room.n, w, NULL);
  else if (!(delivered = wse_send_to(c, to, WSE_OP_TEXT, w.p, w.n)))
    delivered = 1;
  if (delivered < 0) {
    if (delivered == WSE_ENOTFOUND) http_error(c, 404, e_no_session);
    else http_error(c, 500, "internal error");
    return;
  }
  wse_jw_lit(&out, "{\"delivered\":");
  wse_jw_u64(&out, (uint64_t)delivered);
  wse_jw_lit(&out, "}");
  wse_respond(c, 200, buf, out.n);
}

static void chat_stats(wse_ctx_t *c, const wse_request_t *req,
                       const wse_params_t *prm, const uint8_t *body,
                       size_t n) {
  wse_str_t room = prm->value[0];
  wse_app_stats_t st;
  char buf[256];
  wse_jw_t w = {buf, 0, sizeof buf};
  (void)req, (void)body, (void)n;
  if (!room_ok(room)) {
    http_error(c, 400, "invalid room");
    return;
  }
  wse_app_stats(wse_ctx_app(c), &st);
  wse_jw_lit(&w, "{\"room\":");
  wse_jw_str(&w, room.p, room.n);
  wse_jw_lit(&w, ",\"members\":");
  wse_jw_u64(&w, wse_room_count(c, room.p, room.n));
  wse_jw_lit(&w, ",\"sessions\":");
  wse_jw_u64(&w, st.sessions);
  wse_jw_lit(&w, ",\"restored\":");
  wse_jw_u64(&w, st.restored);
  wse_jw_lit(&w, ",\"wakes\":");
  wse_jw_u64(&w, st.restores);
  wse_jw_lit(&w, "}");
  wse_respond(c, 200, buf, w.n);
}

static const char *const chat_protocols[] = {"chat.v1"};

static int chat_routes(wse_app_t *app) {
  wse_config_t cfg = *wse_app_config(app); /* copied by wse_app_route */
  wse_route_t r = {0};
  /* at the edge every room is one Durable Object of the CHAT_ROOMS
   * namespace, named by :room; its HTTP routes run in the same object */
  wse_http_route_t push = {"POST", "/chat/:room/messages", chat_push, NULL,
                           "CHAT_ROOMS", "room"};
  wse_http_route_t stats = {"GET", "/chat/:room/stats", chat_stats, NULL,
                            "CHAT_ROOMS", "room"};
  int rc;
  cfg.subprotocols = chat_protocols; /* offered, not required */
  cfg.n_subprotocols = 1;
  r.pattern = "/chat/:room";
  r.config = &cfg;
  r.on_upgrade = chat_upgrade;
  r.on_open = chat_open;
  r.on_message = chat_message;
  r.on_close = chat_close;
  r.durable = "CHAT_ROOMS";
  r.durable_key = "room";
  if ((rc = wse_app_route(app, &r)) < 0 ||
      (rc = wse_app_http_route(app, &push)) < 0 ||
      (rc = wse_app_http_route(app, &stats)) < 0 ||
      (rc = wse_app_timer_handler(app, "chat:", chat_timer, NULL)) < 0)
    return rc;
  return WSE_OK;
}

/* The chat example's app: the chat routes and, beside them, /ws echo. */
int wsedge_app(wse_app_t *app) {
  int rc = echo_routes(app);
  if (rc >= 0) rc = chat_routes(app);
  /* the heartbeat: the core answers it before on_message, and at the edge
   * the runtime without waking the room (setWebSocketAutoResponse) */
  if (rc >= 0) rc = wse_app_heartbeat(app, "{\"type\":\"ping\"}", "{\"type\":\"pong\"}");
  return rc < 0 ? rc : WSE_OK;
}
