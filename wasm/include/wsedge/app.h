/* wsedge/app.h — the application layer: routes, handlers, sessions, rooms
 * and actions. An application is written once against this API and runs
 * unchanged on both hosts (native server, Durable Object).
 *
 * Flow: the host calls wse_app_upgrade / _open / _message / _close / _http;
 * handlers act through a wse_ctx_t; every operation becomes an action in the
 * app's queue; after each call the host drains wse_app_actions() and
 * executes them (write a frame, send on a WebSocket, close, store an
 * attachment). Nothing here does I/O, reads a clock or draws randomness. */
#ifndef WSEDGE_APP_H
#define WSEDGE_APP_H

#include "common.h"
#include "handshake.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- sessions -------------------------------------------------------- */

#define WSE_SID_LEN 22        /* 128-bit id as unpadded base64url */
#define WSE_TOPIC_MAX 128     /* bytes of a topic (room) name */
#define WSE_ROOM_MAX WSE_TOPIC_MAX
#define WSE_TOPICS_MAX 16     /* topics one session may belong to */
/* Attachments must fit a Durable Object WebSocket attachment (16,384 bytes):
 * fixed fields take 45 bytes, the route's pattern at most 255, the topics
 * at most 16 * 129; the user-data blob at most 8 KiB (≤ 10,556 in all). */
#define WSE_ATTACHMENT_MAX 16384
#define WSE_USERDATA_MAX 8192

typedef struct wse_sid {
  uint8_t b[16];
} wse_sid_t;

/* 22 chars, no NUL written. */
void wse_sid_format(const wse_sid_t *id, char out[WSE_SID_LEN]);
/* Returns WSE_OK or WSE_EINVAL. */
int wse_sid_parse(const char *s, size_t n, wse_sid_t *out);

/* A session: its id, route, topics and an opaque user blob (where an app
 * keeps a display name and the like: the core has no notion of one). */
typedef struct wse_session {
  wse_sid_t id;
  uint32_t handle;          /* slot in the map, stable while the session lives */
  uint16_t route;           /* index of its route in this app */
  uint8_t restored;         /* 1: rebuilt from an attachment */
  uint8_t n_topics;         /* topics joined (wse_app_session_topic) */
  uint8_t pattern_len;
  uint8_t wse__flags;       /* internal: open */
  const char *pattern;      /* its route's pattern: what the attachment
                               stores, so a deploy that adds or reorders
                               routes restores every session onto its own */
  uint64_t joined_at_ms;    /* host clock at open */
  uint64_t last_seen_ms;    /* host clock at the last message */
  uint8_t *user;            /* user-data blob (allocated by the app) */
  uint16_t user_len;
  void *host;               /* the host's pointer for this session */
  /* internal: id hash chain, membership list, slot generation */
  int32_t wse__hnext, wse__memb;
  uint32_t wse__gen;
} wse_session_t;

/* Attachment codec: magic "WSE" + version, lengths, CRC-32. Version 2
 * names the route by its pattern and lists the session's topics (version 1
 * stored a registration index, which a deploy could reorder, and one room:
 * such attachments are refused). */
#define WSE_ATTACHMENT_VERSION 2
#define WSE_PATTERN_MAX 255   /* bytes of a route pattern */

/* A session as stored: every slice points into the encoded bytes (decode)
 * or at the caller's data (encode). */
typedef struct wse_attachment {
  wse_sid_t id;
  uint64_t joined_at_ms, last_seen_ms;
  wse_str_t pattern;
  size_t n_topics;
  wse_str_t topics[WSE_TOPICS_MAX];
  const uint8_t *user;
  size_t user_len;
} wse_attachment_t;

/* Encode; returns length (<= WSE_ATTACHMENT_MAX) or a negative error
 * (WSE_EINVAL for what the decoder would refuse, WSE_ENOSPC). */
long wse_attachment_encode(const wse_attachment_t *a, uint8_t *buf,
                           size_t cap);
/* Decode into *out (slices into p). Returns WSE_OK or a distinct WSE_ATT_E*
 * error; on error *out is untouched. */
int wse_attachment_decode(const uint8_t *p, size_t n, wse_attachment_t *out);

/* ---- routes and handlers -------------------------------------------- */

typedef struct wse_app wse_app_t;
typedef struct wse_ctx wse_ctx_t;

#define WSE_MAX_PARAMS 4
typedef struct wse_params {
  size_t n;
  wse_str_t name[WSE_MAX_PARAMS];
  wse_str_t value[WSE_MAX_PARAMS];
} wse_params_t;

/* A WebSocket route. Handlers are optional. */
typedef struct wse_route {
  const char *pattern;            /* "/ws", "/chat/:room" */
  const wse_config_t *config;     /* NULL: the app's defaults */
  /* After the core accepted the handshake and before the session exists:
   * return 0 to accept (may set name/room/user data via ctx), or reject with
   * wse_reject(ctx, status, message) (e.g. 401/403/400). */
  int (*on_upgrade)(wse_ctx_t *c, const wse_request_t *req,
                    const wse_params_t *params);
  void (*on_open)(wse_ctx_t *c);
  void (*on_message)(wse_ctx_t *c, unsigned opcode, const uint8_t *p,
                     size_t n);
  void (*on_close)(wse_ctx_t *c, unsigned code, const uint8_t *reason,
                   size_t n);
  void (*on_error)(wse_ctx_t *c, int err);
  void *user;
  /* At the edge: the Durable Object namespace binding (wrangler.toml
   * `[[durable_objects.bindings]] name`) whose object serves this route,
   * one object per value of the `durable_key` parameter (NULL: the first
   * parameter; a pattern without parameters: one object for the route).
   * NULL: the session lives in the Worker itself. Natively: ignored (one
   * process holds every room). */
  const char *durable;
  const char *durable_key;
} wse_route_t;

/* A plain HTTP route (server push, stats). Respond with wse_respond(). */
typedef struct wse_http_route {
  const char *method;             /* "GET", "POST" */
  const char *pattern;            /* "/chat/:room/messages" */
  void (*handler)(wse_ctx_t *c, const wse_request_t *req,
                  const wse_params_t *params, const uint8_t *body, size_t n);
  void *user;
  const char *durable;            /* as wse_route_t: where it runs at the edge */
  const char *durable_key;
} wse_http_route_t;

/* ---- handler context operations (each becomes an action) ------------ */

wse_session_t *wse_ctx_session(wse_ctx_t *c); /* NULL in HTTP handlers */
wse_app_t *wse_ctx_app(wse_ctx_t *c);
void *wse_ctx_user(wse_ctx_t *c);             /* route->user */
uint64_t wse_ctx_now(wse_ctx_t *c);           /* host clock, ms */

int wse_send(wse_ctx_t *c, unsigned opcode, const void *p, size_t n);
int wse_send_to(wse_ctx_t *c, const wse_sid_t *id, unsigned opcode,
                const void *p, size_t n);
/* Topics (rooms): a session joins up to WSE_TOPICS_MAX of them. Frame
 * once; every member of topic `room` except those in `except` receives the
 * same bytes. Returns the number of recipients. */
int wse_broadcast(wse_ctx_t *c, const char *room, size_t room_len,
                  unsigned opcode, const void *p, size_t n,
                  const wse_sid_t *except, size_t n_except);
int wse_close(wse_ctx_t *c, unsigned code, const char *reason, size_t n);
int wse_close_session(wse_ctx_t *c, const wse_sid_t *id, unsigned code,
                      const char *reason, size_t n);
/* Join topic `room` (1..WSE_TOPIC_MAX bytes of UTF-8; joining twice is a
 * no-op; WSE_ENOSPC past WSE_TOPICS_MAX). In on_upgrade the topic is
 * recorded and the session becomes a member when it opens. */
int wse_join(wse_ctx_t *c, const char *room, size_t n);
/* Leave one topic (WSE_ENOTFOUND when not a member) / every topic. */
int wse_leave_topic(wse_ctx_t *c, const char *room, size_t n);
int wse_leave(wse_ctx_t *c);
size_t wse_room_count(wse_ctx_t *c, const char *room, size_t n);
/* The current session's topic i (join order), as wse_app_session_topic. */
int wse_ctx_topic(wse_ctx_t *c, size_t i, wse_str_t *out);
/* The session's opaque blob (≤ WSE_USERDATA_MAX), kept in its attachment:
 * what an app remembers about a session across hibernation. */
int wse_set_user(wse_ctx_t *c, const void *p, size_t n);
/* on_upgrade: reject with an HTTP status and message (JSON body). */
int wse_reject(wse_ctx_t *c, int status, const char *message);
/* HTTP handlers: the response (body is JSON). */
int wse_respond(wse_ctx_t *c, int status, const char *json, size_t n);

/* Timers: work the app schedules for later, keyed by (room, key). A room
 * is any topic name (1..WSE_TOPIC_MAX bytes of UTF-8; it need not have
 * members): at the edge the room's Durable Object keeps its timers in its
 * storage and wakes by its alarm, natively the server keeps them in memory
 * (libuv timers); both count the same limits per room. Setting an existing
 * key replaces it (new due time and data). When due, the handler whose key
 * prefix matches (wse_app_timer_handler) runs with a context like an HTTP
 * handler's (no session): it may broadcast, send to and close sessions,
 * and set timers (which run no earlier than the next pass). A timer runs
 * once; hosts run every due timer at each pass, earliest first. */
#define WSE_TIMER_KEY_MAX 64      /* bytes of a key (UTF-8, at least 1) */
#define WSE_TIMERS_MAX 1024       /* timers per room */
#define WSE_TIMER_DATA_MAX 8192   /* bytes of data kept with a timer */
#define WSE_TIMER_DELAY_MAX ((uint64_t)1 << 40) /* ms (about 34 years) */

/* delay_ms from now (0: at the next pass); data (may be NULL, 0) is
 * copied and handed to the handler. WSE_EINVAL for a bad room, key, delay
 * or size; WSE_ENOSPC past WSE_TIMERS_MAX in the room; WSE_ENOMEM. */
int wse_timer_set(wse_ctx_t *c, const char *room, size_t room_n,
                  const char *key, size_t key_n, uint64_t delay_ms,
                  const void *data, size_t n);
/* WSE_ENOTFOUND when no such timer is pending. */
int wse_timer_cancel(wse_ctx_t *c, const char *room, size_t room_n,
                     const char *key, size_t key_n);
/* Pending timers of a room. */
size_t wse_timer_count(wse_ctx_t *c, const char *room, size_t room_n);

/* A timer as its handler (or wse_timer_get) sees it: slices valid during
 * the call (wse_timer_get: until timers change). */
typedef struct wse_timer {
  wse_str_t room, key;
  const uint8_t *data;
  size_t len;
  uint64_t due_ms;    /* when it is (was) due (host clock, ms) */
} wse_timer_t;
/* A pending timer (*out may be NULL: only whether it exists); WSE_OK or
 * WSE_ENOTFOUND. */
int wse_timer_get(wse_ctx_t *c, const char *room, size_t room_n,
                  const char *key, size_t key_n, wse_timer_t *out);
typedef void (*wse_timer_fn)(wse_ctx_t *c, const wse_timer_t *t);

/* History: a room's last WSE_HISTORY_MAX events (text messages), each with
 * its sequence number (1, 2, 3, … per room: only ever growing), for
 * clients that reconnect and ask what they missed. The app puts the number
 * in the event itself, so it asks for the next one first:
 *   seq = wse_room_seq(c, room, n) + 1; build the event with seq in it;
 *   wse_history_add(c, room, n, seq, event, len); then broadcast it.
 * At the edge the Durable Object keeps the events in its SQLite storage
 * (HISTORY actions) and loads them on a wake; natively they stay in memory,
 * all rooms together at most wse_app_history_limit bytes (default
 * WSE_HISTORY_BYTES): past it the least recently written rooms' histories
 * are dropped, and a room made again numbers on above every number
 * dropped, so a number never repeats. */
#define WSE_HISTORY_MAX 100
#define WSE_HISTORY_BYTES ((size_t)16 << 20)
#define WSE_HISTORY_EVENT_MAX 65536

/* The room's last sequence number (0 before its first event). */
uint64_t wse_room_seq(wse_ctx_t *c, const char *room, size_t n);
/* Record event `seq` (must be wse_room_seq + 1; UTF-8, at most
 * WSE_HISTORY_EVENT_MAX bytes). WSE_EINVAL otherwise, WSE_ENOMEM. */
int wse_history_add(wse_ctx_t *c, const char *room, size_t n, uint64_t seq,
                    const void *p, size_t len);
/* Send the current session, in order, every kept event of the room with a
 * number above `since`; *oldest (may be NULL) = the oldest number kept (0:
 * none kept), so the app can tell a client what it can no longer get.
 * Returns how many were sent (WSE_EINVAL outside a session's handler). */
long wse_history_replay(wse_ctx_t *c, const char *room, size_t n,
                        uint64_t since, uint64_t *oldest);

/* Scratch memory (8-byte aligned) valid until the actions are cleared: for
 * building a message without malloc. NULL when out of memory. */
void *wse_ctx_alloc(wse_ctx_t *c, size_t n);

/* Query string helper: percent-decodes the value of `key` from the target's
 * query into out ('+' is a space). Returns its length, -1 when absent, -2
 * when longer than cap or with a bad % escape. */
long wse_query_param(wse_str_t target, const char *key, char *out,
                     size_t cap);

/* ---- actions --------------------------------------------------------- */

typedef enum wse_action_type {
  WSE_ACT_SEND = 1,    /* frame/data to session `target` */
  WSE_ACT_BROADCAST,   /* the same frame to each of recipients[] */
  WSE_ACT_CLOSE,       /* close `target`: frame is its Close frame */
  WSE_ACT_ATTACH,      /* store `data` as `target`'s attachment */
  WSE_ACT_TIMER,       /* a timer was set (opcode 1) or removed (opcode 0):
                          frame = its record (wse_app_timer_load takes it
                          back), data = its id (a prefix-free slice of the
                          record: room and key); hosts that keep timers
                          across restarts store or delete the record */
  WSE_ACT_HISTORY,     /* an event joined a room's history: frame = its
                          record (wse_app_history_load takes it back), data
                          = the event, target = its slot in the room's ring
                          (seq mod WSE_HISTORY_MAX); a host that keeps
                          history stores it there, replacing the event
                          WSE_HISTORY_MAX before it */
  WSE_ACT_PUBLISH,     /* cluster: a message for the other nodes (frame =
                          its bytes, wse_app_cluster_input takes them):
                          opcode WSE_CHAN_ROOM: on the channel of room
                          `data` (len bytes); WSE_CHAN_NODE: on the channel
                          of node `target` */
  WSE_ACT_PRESENCE,    /* cluster: room `data` (len bytes) now has
                          `target` members on this node (0: none left) */
} wse_action_type_t;

typedef struct wse_action {
  wse_action_type_t type;
  uint32_t target;             /* session handle (not BROADCAST) */
  unsigned opcode;             /* SEND/BROADCAST: text/binary */
  unsigned close_code;         /* CLOSE */
  const uint8_t *frame;        /* the complete server frame(s) */
  size_t frame_len;
  const uint8_t *data;         /* payload (inside frame), reason, attachment */
  size_t len;
  const uint32_t *recipients;  /* BROADCAST: session handles */
  size_t n_recipients;
} wse_action_t;

/* ---- host side ------------------------------------------------------- */


int wse_app_new(wse_app_t **out, const wse_allocator_t *a,
                const wse_config_t *defaults);
/* The app's default config (a copy of `defaults`), e.g. to derive a route's. */
const wse_config_t *wse_app_config(const wse_app_t *app);
void wse_app_free(wse_app_t *app);
/* Routes are copied, and so is a route's config (its strings and lists
 * must outlive the app, like patterns). Returns the route's index. */
int wse_app_route(wse_app_t *app, const wse_route_t *r);
int wse_app_http_route(wse_app_t *app, const wse_http_route_t *r);

/* The config WebSocket route i runs with (its own, or the app's defaults);
 * NULL for no such route. */
const wse_config_t *wse_app_route_config(const wse_app_t *app, size_t i);

/* 1 when `target`'s path matches a WebSocket route (sets its config). */
int wse_app_match(wse_app_t *app, wse_str_t target, const wse_config_t **cfg);

/* Where a request goes, from the app's own route table (the Worker routes
 * with it: one table, declared once in C). */
enum { WSE_ROUTE_NONE = 0, WSE_ROUTE_WS = 1, WSE_ROUTE_HTTP = 2 };
typedef struct wse_route_info {
  int kind;                /* WSE_ROUTE_*: a WebSocket route wins over HTTP */
  int index;               /* the route's index in its table, -1 for none */
  const char *pattern;
  const char *durable;     /* the route's Durable Object binding, or NULL */
  wse_str_t key;           /* the object's name (see wse_route_t.durable) */
} wse_route_info_t;
/* Fills *out; returns out->kind. An HTTP route matches by path whatever the
 * method (wse_app_http answers a wrong method with 405). */
int wse_app_route_info(wse_app_t *app, wse_str_t target,
                       wse_route_info_t *out);

/* Validate and accept an upgrade: route match (404 JSON), the core's
 * validation (route config), on_upgrade. On success creates the session
 * (id from `entropy`), fills *resp with the 101 and returns its handle
 * (>= 0); on rejection returns < 0 with *resp the error response. Also
 * fills *u (may be NULL) with the validation details. */
int wse_app_upgrade(wse_app_t *app, const wse_request_t *req,
                    const uint8_t entropy[16], uint64_t now_ms,
                    wse_upgrade_t *u, wse_response_t *resp);
/* The host completed the handshake: on_open (and an ATTACH action). */
int wse_app_open(wse_app_t *app, uint32_t h, uint64_t now_ms);
int wse_app_message(wse_app_t *app, uint32_t h, unsigned opcode,
                    const uint8_t *p, size_t n, uint64_t now_ms);
/* The session ended (close received/sent, socket gone): on_close, leaves
 * its room, frees it. Use code 1006 for an abrupt disconnect. */
int wse_app_close(wse_app_t *app, uint32_t h, unsigned code,
                  const uint8_t *reason, size_t n, uint64_t now_ms);
int wse_app_error(wse_app_t *app, uint32_t h, int err, uint64_t now_ms);
/* A plain HTTP request: the app's HTTP routes; a WebSocket route without an
 * upgrade -> 400 JSON; nothing matched -> 404 JSON. Returns the status. */
int wse_app_http(wse_app_t *app, const wse_request_t *req,
                 const uint8_t *body, size_t n, uint64_t now_ms,
                 wse_response_t *resp);
/* Session lifetime for hosts without a timer per connection (the Durable
 * Object's alarm): every open session past its route's session_timeout_s
 * (counted from joined_at_ms; 0 = no limit) gets a CLOSE action with 4000
 * "timeout". Returns how many; *next_ms (may be NULL) = the earliest end of
 * the others' lifetimes, 0 when none has one. */
long wse_app_expire(wse_app_t *app, uint64_t now_ms, uint64_t *next_ms);

/* The app's heartbeat pair: a text message exactly `ping` is answered
 * `pong` to its sender, before on_message and instead of it (last_seen_ms
 * still moves). At the edge a Durable Object's runtime answers it without
 * waking the room (setWebSocketAutoResponse, which the shim reads from
 * here); natively and in a Worker the core does. Both strings (1 to
 * WSE_HEARTBEAT_MAX bytes of UTF-8) must outlive the app; NULL, NULL removes
 * the pair. WSE_EINVAL for anything else. */
#define WSE_HEARTBEAT_MAX 2048
int wse_app_heartbeat(wse_app_t *app, const char *ping, const char *pong);
/* The pair's ping (pong = 0) or pong (pong = 1), NULL when none is set. */
const char *wse_app_heartbeat_get(const wse_app_t *app, int pong);

/* The handler of timers whose key starts with `prefix` ("" : any key;
 * the first registered match wins; up to 8 handlers; prefix must outlive
 * the app). wse_ctx_user in it returns `user`. A due timer without a
 * handler is dropped. */
int wse_app_timer_handler(wse_app_t *app, const char *prefix, wse_timer_fn fn,
                          void *user);
/* Run every timer due at now_ms (those set during the pass wait for the
 * next one); each becomes a TIMER action (opcode 0) then its handler's
 * actions. Returns how many ran. Out of memory stops the pass early: the
 * rest stay due for the next one. */
long wse_app_timers_run(wse_app_t *app, uint64_t now_ms);
/* When the earliest timer is due (host clock, ms); 0 when none is set.
 * A host arms one clock for all of them (a libuv timer, the object's
 * alarm) and calls wse_app_timers_run when it fires. */
uint64_t wse_app_timer_next(const wse_app_t *app);
/* Re-create a timer from a record a TIMER action carried (a host that
 * stored it, on restart or wake); no action is queued. Record layout:
 * u8 version 1, u8 room length, room, u8 key length, key, u64 due (LE),
 * u16 data length (LE), data. WSE_EINVAL for a malformed record,
 * WSE_ENOSPC past the room's limit. */
int wse_app_timer_load(wse_app_t *app, const uint8_t *rec, size_t n);

/* The bound on all rooms' history together (bytes; see WSE_HISTORY_MAX). */
void wse_app_history_limit(wse_app_t *app, size_t max_bytes);
/* Re-create a history entry from a record a HISTORY action carried (u8 1,
 * u8 room length, room, u64 seq (LE), event); records of a room must come
 * in increasing seq order. No action is queued. WSE_EINVAL otherwise. */
int wse_app_history_load(wse_app_t *app, const uint8_t *rec, size_t n);
/* Number every room's next event above `seq` (rooms made later too): for a
 * host that may have lost events it had not stored yet (the edge writes
 * history behind, see README), so that no number is ever given twice.
 * Call it after loading the stored records. Lowers nothing. */
void wse_app_history_floor(wse_app_t *app, uint64_t seq);

/* Send to a session from outside a handler (timers, other threads). */
int wse_app_send_to(wse_app_t *app, const wse_sid_t *id, unsigned opcode,
                    const void *p, size_t n);

/* Rebuild the map from attachments in one pass (Durable Object wake).
 * handles[i] = the session handle, or the WSE_ATT_E* error for entry i
 * (that socket must be closed with 1011; the others are restored). Returns
 * the number restored. */
long wse_app_restore(wse_app_t *app, const uint8_t *const *att,
                     const size_t *lens, size_t n, int32_t *handles,
                     uint64_t now_ms);

/* Optional host fast path for a SEND to one session: when set and no action
 * is queued, the app calls fn instead of queuing a SEND action; fn frames
 * and writes the message itself (same order as executing the action right
 * away) and returns 1, or returns 0 to have the action queued as usual.
 * fn must not call back into the app. NULL (the default) turns it off. */
typedef int (*wse_direct_send_fn)(void *ud, wse_session_t *s, unsigned opcode,
                                  const uint8_t *p, size_t n);
void wse_app_set_direct_send(wse_app_t *app, wse_direct_send_fn fn, void *ud);

/* Host-wide switch for permessage-deflate negotiation in wse_app_upgrade
 * (default 1). A host with a memory budget for compression state turns it
 * off while the budget is spent: offers are then declined, never accepted
 * with the state unpaid for. Route configs still decide when it is on. */
void wse_app_set_deflate(wse_app_t *app, int allowed);

/* Whether the host stores sessions' attachments (default 1: ATTACH actions
 * are queued whenever a handler changed a session). A host that keeps
 * every session in memory for its whole life (the native server) turns
 * them off and saves encoding each one. */
void wse_app_set_attachments(wse_app_t *app, int on);

/* Actions queued by the last call(s); their bytes stay put (even across
 * further calls) until wse_app_actions_clear, which recycles the memory. */
size_t wse_app_actions(wse_app_t *app, const wse_action_t **out);
void wse_app_actions_clear(wse_app_t *app);

/* Session pointers stay valid until the next session is created. */
wse_session_t *wse_app_session(wse_app_t *app, uint32_t h);
wse_session_t *wse_app_find(wse_app_t *app, const wse_sid_t *id);
/* Topic i of session s (join order): out points into the app, valid until
 * the topic's last member leaves. WSE_ENOTFOUND past the last one. */
int wse_app_session_topic(const wse_app_t *app, const wse_session_t *s,
                          size_t i, wse_str_t *out);
/* Iterate a room's members: start with h = -1; returns -1 at the end. */
int32_t wse_app_room_next(wse_app_t *app, const char *room, size_t n,
                          int32_t h);

typedef struct wse_app_stats {
  uint64_t sessions;           /* live sessions */
  uint64_t rooms;              /* non-empty rooms */
  uint64_t restored;           /* sessions rebuilt from attachments, total */
  uint64_t restores;           /* restore calls (Durable Object wakes) */
  uint64_t messages_in, messages_out, bytes_in, bytes_out;
  uint64_t timers;             /* pending timers */
} wse_app_stats_t;
void wse_app_stats(const wse_app_t *app, wse_app_stats_t *out);
/* Add a base to the restore counters (modulo 2^64): a Durable Object keeps
 * its lifetime totals in storage and seeds each new instance with them, so
 * stats report wakes and restored sessions over the object's life. */
void wse_app_stats_seed(wse_app_t *app, uint64_t restores, uint64_t restored);

/* ---- cluster: native nodes sharing a broker --------------------------- */

/* Natively a room lives in one process; a cluster of processes (or hosts)
 * shares rooms through a broker (the native host's --redis). The core stays
 * sans-I/O: with wse_app_cluster on, whatever must reach another node
 * becomes a PUBLISH action, and what another node published comes back
 * through wse_app_cluster_input as local actions. Crossing nodes: room
 * broadcasts (framed once per node), wse_send_to / wse_close_session to a
 * session of another node (its id names its node), history events (each
 * node keeps the room's history: see README), and room member counts,
 * through the host's count of members elsewhere (remote_fn; wse_broadcast
 * counts each excluded id of another node as one of them). Text sent to
 * another node must be valid UTF-8 (WSE_EINVAL otherwise, nothing queued).
 * Not in the wasm build (at the edge a room is one Durable Object). */
enum { WSE_CHAN_ROOM = 0, WSE_CHAN_NODE = 1 };
/* How many members room `room` has on the other nodes (called under the
 * host's lock from wse_room_count and wse_broadcast; must not call back). */
typedef size_t (*wse_remote_count_fn)(void *ud, const char *room, size_t n);
/* Join a cluster as node `node` (non-zero, unique among the nodes: session
 * ids made from now on carry it in their first 4 bytes). Call before the
 * first session; WSE_EINVAL for node 0. */
int wse_app_cluster(wse_app_t *app, uint32_t node, wse_remote_count_fn fn,
                    void *ud);
/* The node a session id belongs to (its first 4 bytes, little-endian). */
uint32_t wse_sid_node(const wse_sid_t *id);
/* A message another node published (PUBLISH frame bytes): queues what it
 * means here (BROADCAST to this node's members of the room, SEND, CLOSE)
 * or loads a history event. Messages of this node itself are ignored.
 * Returns WSE_OK, WSE_EINVAL for malformed bytes (nothing queued),
 * WSE_ENOTFOUND when it names a session not here, WSE_EEXIST for a
 * history event whose number this node already used (a concurrent event
 * on two nodes), WSE_ENOMEM. */
int wse_app_cluster_input(wse_app_t *app, const uint8_t *msg, size_t n,
                          uint64_t now_ms);
/* Catch up on a history record another node stored (the host read it back
 * from the broker after an outage): when its number is new here it is
 * loaded and its event goes to the room's members on this node. Returns 1
 * (delivered), 0 (already had it, or an older number), WSE_EINVAL. */
int wse_app_history_deliver(wse_app_t *app, const uint8_t *rec, size_t n);
/* 1 when `id` names a session of another node of the cluster. */
int wse_sid_remote(const wse_app_t *app, const wse_sid_t *id);

/* ---- the application's entry point ---------------------------------- */

/* An app is one function that registers its routes (wse_app_route,
 * wse_app_http_route) on a fresh app and returns WSE_OK or a negative
 * error. Hosts are handed this function: the native library takes it as an
 * argument, the wasm glue calls the app's `wsedge_app`. The same function,
 * unmodified, serves both targets; it may run more than once per process
 * (one app per Durable Object instance), so it keeps no state of its own. */
typedef int (*wse_app_entry_t)(wse_app_t *app);

/* The well-known entry point every wsedge app defines. */
int wsedge_app(wse_app_t *app);

#ifdef __cplusplus
}
#endif
#endif
