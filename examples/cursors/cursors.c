/* cursors.c — "/cursors/:board": shared cursors (presence) over BINARY
 * messages, written once against the app API and run unchanged natively and
 * in a Durable Object (one object of CURSOR_BOARDS per board). Board names
 * are 1..64 bytes of [A-Za-z0-9_.-] (else 400 {"error":"invalid board"}).
 *
 * Wire format (all numbers little-endian, floats IEEE 754 binary32):
 *
 *   client -> server: one binary message of exactly 8 bytes per move,
 *       x f32, y f32     the pointer, as fractions of the board: 0 <= v <= 1
 *     A text message closes the session with 1003 "binary messages only";
 *     a binary one of another length with 1007 "position must be 8 bytes";
 *     NaN, an infinity or a value outside [0,1] with 1007 "position out of
 *     range". -0 is taken as 0. A frame or message over 128 bytes: 1009
 *     "message too big" (the route's limit: the native host
 *     enforces it from the frame header, the edge shim before the message
 *     reaches the app).
 *
 *   server -> client: binary messages, each a run of 31-byte records
 *       kind u8, id 22 bytes (the session id, base64url ASCII), x f32, y f32
 *     kind 1 JOIN   a member is on the board (x, y: its position)
 *          2 MOVE   a member moved its pointer to (x, y)
 *          3 LEAVE  a member left (x, y: its last position)
 *          4 SELF   you: your own id (and position), always a snapshot's first
 *     x = y = -1 means "no position yet" (a member that has not moved).
 *
 *   On open the joiner receives one message, the snapshot: a SELF record,
 *   then a JOIN record for every other member, in board order; the others
 *   receive one JOIN record for it. A move goes to the others only (never
 *   back to its sender), and only when the position changed. A leave (close
 *   or dropped socket) goes to the members that remain.
 *
 * Each session's last position is its user data (8 bytes, x and y as sent,
 * -0 made 0): the host stores it in the session's attachment, so it survives
 * a Durable Object's hibernation and the snapshot after a wake is exact. */
#include "wsedge.h"

#define CURSORS_BOARD_MAX 64
/* a client never needs more than 8 bytes; frames up to 125 bytes stay
 * allowed, as control frames (a Close with its reason) may be that long */
#define CURSORS_MSG_MAX 128
#define CURSORS_POS 8      /* x f32, y f32 */
#define CURSORS_REC (1 + WSE_SID_LEN + CURSORS_POS)

enum { K_JOIN = 1, K_MOVE = 2, K_LEAVE = 3, K_SELF = 4 };

/* -1.0f, twice: no position yet */
static const uint8_t no_pos[CURSORS_POS] = {0x00, 0x00, 0x80, 0xBF,
                                            0x00, 0x00, 0x80, 0xBF};

static int board_ok(wse_str_t b) {
  if (!b.n || b.n > CURSORS_BOARD_MAX) return 0;
  for (size_t i = 0; i < b.n; i++) {
    char ch = b.p[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-'))
      return 0;
  }
  return 1;
}

static uint32_t get_le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16),
  p[3] = (uint8_t)(v >> 24);
}

/* One coordinate: 1 and its canonical bits when 0 <= v <= 1 (NaN fails
 * both comparisons), else 0. */
static int coord(const uint8_t *p, uint32_t *bits) {
  uint32_t u = get_le32(p);
  float f;
  __builtin_memcpy(&f, &u, sizeof f);
  if (!(f >= 0.0f && f <= 1.0f)) return 0;
  *bits = f == 0.0f ? 0u : u; /* -0 -> +0 */
  return 1;
}

/* A session's position: its user data, or "none". */
static const uint8_t *pos_of(const wse_session_t *s) {
  return s->user_len == CURSORS_POS ? s->user : no_pos;
}

static void record(uint8_t *r, unsigned kind, const wse_session_t *s,
                   const uint8_t pos[CURSORS_POS]) {
  r[0] = (uint8_t)kind;
  wse_sid_format(&s->id, (char *)r + 1);
  __builtin_memcpy(r + 1 + WSE_SID_LEN, pos, CURSORS_POS);
}

/* One record to every member of s's board but s. */
static int to_others(wse_ctx_t *c, const wse_session_t *s, const char *board,
                     size_t bn, unsigned kind, const uint8_t *pos) {
  uint8_t r[CURSORS_REC];
  record(r, kind, s, pos);
  return wse_broadcast(c, board, bn, WSE_OP_BINARY, r, sizeof r, &s->id, 1);
}

static int cursors_upgrade(wse_ctx_t *c, const wse_request_t *req,
                           const wse_params_t *prm) {
  (void)req;
  if (!board_ok(prm->value[0])) return wse_reject(c, 400, "invalid board");
  return wse_join(c, prm->value[0].p, prm->value[0].n); /* member at open */
}

/* A session is on one board: its topic. */
static wse_str_t board_of(wse_ctx_t *c) {
  wse_str_t b = {0, 0};
  wse_ctx_topic(c, 0, &b);
  return b;
}

static void cursors_open(wse_ctx_t *c) {
  wse_session_t *s = wse_ctx_session(c);
  wse_app_t *app = wse_ctx_app(c);
  wse_str_t b = board_of(c);
  size_t n = wse_room_count(c, b.p, b.n); /* s included */
  uint8_t *snap = wse_ctx_alloc(c, (n ? n : 1) * CURSORS_REC), *r;
  if (!snap) {
    wse_close(c, WSE_CLOSE_INTERNAL, "out of memory", 13);
    return;
  }
  record(snap, K_SELF, s, pos_of(s));
  r = snap + CURSORS_REC;
  for (int32_t h = wse_app_room_next(app, b.p, b.n, -1); h >= 0;
       h = wse_app_room_next(app, b.p, b.n, h)) {
    const wse_session_t *m = wse_app_session(app, (uint32_t)h);
    if (!m || m == s || (size_t)(r - snap) >= n * CURSORS_REC) continue;
    record(r, K_JOIN, m, pos_of(m));
    r += CURSORS_REC;
  }
  wse_send(c, WSE_OP_BINARY, snap, (size_t)(r - snap));
  to_others(c, s, b.p, b.n, K_JOIN, pos_of(s));
}

static const char e_text[] = "binary messages only";
static const char e_len[] = "position must be 8 bytes";
static const char e_range[] = "position out of range";

static void cursors_message(wse_ctx_t *c, unsigned opcode, const uint8_t *p,
                            size_t n) {
  wse_session_t *s = wse_ctx_session(c);
  uint8_t pos[CURSORS_POS];
  uint32_t x, y;
  if (opcode != WSE_OP_BINARY) {
    wse_close(c, WSE_CLOSE_UNSUPPORTED, e_text, sizeof e_text - 1);
    return;
  }
  if (n != CURSORS_POS) {
    wse_close(c, WSE_CLOSE_INVALID_DATA, e_len, sizeof e_len - 1);
    return;
  }
  if (!coord(p, &x) || !coord(p + 4, &y)) {
    wse_close(c, WSE_CLOSE_INVALID_DATA, e_range, sizeof e_range - 1);
    return;
  }
  put_le32(pos, x);
  put_le32(pos + 4, y);
  if (s->user_len == CURSORS_POS &&
      __builtin_memcmp(s->user, pos, CURSORS_POS) == 0)
    return; /* not moved: nothing to tell, nothing to store */
  if (wse_set_user(c, pos, CURSORS_POS) < 0) {
    wse_close(c, WSE_CLOSE_INTERNAL, "out of memory", 13);
    return;
  }
  wse_str_t b = board_of(c);
  to_others(c, s, b.p, b.n, K_MOVE, pos);
}

static void cursors_close(wse_ctx_t *c, unsigned code, const uint8_t *reason,
                          size_t n) {
  wse_session_t *s = wse_ctx_session(c);
  char board[WSE_TOPIC_MAX];
  wse_str_t b = board_of(c);
  size_t bn = b.n;
  (void)code, (void)reason, (void)n;
  if (!bn) return;
  __builtin_memcpy(board, b.p, bn); /* b goes with the board's last member */
  wse_leave(c);
  to_others(c, s, board, bn, K_LEAVE, pos_of(s));
}

int wsedge_app(wse_app_t *app) {
  wse_config_t cfg = *wse_app_config(app); /* copied by wse_app_route */
  wse_route_t r = {0};
  cfg.max_message_size = CURSORS_MSG_MAX;
  if (cfg.max_frame_size > CURSORS_MSG_MAX) cfg.max_frame_size = CURSORS_MSG_MAX;
  r.pattern = "/cursors/:board";
  r.config = &cfg;
  r.on_upgrade = cursors_upgrade;
  r.on_open = cursors_open;
  r.on_message = cursors_message;
  r.on_close = cursors_close;
  /* at the edge every board is one Durable Object of CURSOR_BOARDS, named
   * by :board (natively one process holds every board) */
  r.durable = "CURSOR_BOARDS";
  r.durable_key = "board";
  int rc = wse_app_route(app, &r);
  return rc < 0 ? rc : WSE_OK;
}
