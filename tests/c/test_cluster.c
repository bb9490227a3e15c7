/* test_cluster.c — the core's cluster mode (wse_app_cluster) with two or
 * three apps in one process acting as nodes: every PUBLISH action one node
 * queues is handed to the others through wse_app_cluster_input, as a
 * broker would. Session ids naming their node (wse_sid_node,
 * wse_sid_remote), room broadcasts framed once per node with except-lists
 * honoured on the far side and the remote count (remote_fn) in the return
 * value, send_to / close_session to another node's session (a PUBLISH on
 * the node's channel, a SEND / CLOSE there), PRESENCE actions after every
 * membership change, wse_room_count, the chat example's history numbered
 * across nodes ('H' records, WSE_EEXIST for a number already used,
 * replay of loaded events), a node ignoring its own messages, and
 * malformed messages (every truncation, bad version, unknown kind, room
 * lengths, except counts, UTF-8, opcodes, close codes) refused with
 * WSE_EINVAL and nothing queued. The wire layout is written here by hand
 * from the comment in app.c ("Messages between nodes"), independently of
 * the core's encoder, and what the core publishes is compared with it. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS under -D_POSIX_C_SOURCE */
#include "apphost.h"

/* The chat example's app (wsedge_app): linked in by its own Makefile rule. */

#define TS 1700000000000ull

/* ---- the broker: PUBLISH actions copied out of a drain ------------------ */

typedef struct pub {
  uint8_t *b; /* the frame: the message */
  size_t n;
  unsigned chan;
  uint32_t target;
  uint8_t *data; /* the channel's room (WSE_CHAN_ROOM) */
  size_t dn;
} pub_t;

#define MAX_PUBS 64
static pub_t pubs[MAX_PUBS];
static size_t n_pubs;

static void pubs_reset(void) {
  for (size_t i = 0; i < n_pubs; i++) {
    free(pubs[i].b);
    free(pubs[i].data);
  }
  memset(pubs, 0, sizeof pubs);
  n_pubs = 0;
}

/* drain() and keep copies of the PUBLISH actions in pubs[]. */
static size_t take(wse_app_t *app) {
  size_t n = drain(app);
  pubs_reset();
  for (size_t i = 0; i < n_recs && n_pubs < MAX_PUBS; i++) {
    if (recs[i].type != WSE_ACT_PUBLISH) continue;
    pub_t *p = &pubs[n_pubs++];
    p->b = dup_bytes(recs[i].frame, recs[i].frame_len);
    p->n = recs[i].frame_len;
    p->chan = recs[i].op;
    p->target = recs[i].target;
    p->data = dup_bytes(recs[i].data, recs[i].len);
    p->dn = recs[i].len;
  }
  return n;
}

/* A message into a node, its last byte against a PROT_NONE page. */
static int feed(wse_app_t *app, const uint8_t *m, size_t n) {
  guard_t g = guard_copy(m, n);
  int rc = wse_app_cluster_input(app, g.data, n, TS);
  guard_free(&g);
  return rc;
}

static size_t queued(wse_app_t *app) {
  const wse_action_t *a;
  return wse_app_actions(app, &a);
}

/* Feed, then rc must be `rc` and exactly `nq` actions queued (left queued
 * for the caller when nq > 0; cleared when unexpected ones came). */
static int feed_expect(int line, wse_app_t *app, const uint8_t *m, size_t n,
                       int rc, size_t nq, const char *what) {
  int got = feed(app, m, n);
  size_t q = queued(app);
  if (got == rc && q == nq) {
    t_pass++;
    return 1;
  }
  t_fail++;
  fprintf(stderr, "%s:%d: %s (%zu bytes): rc %d with %zu queued, expected %d with %zu\n",
          __FILE__, line, what, n, got, q, rc, nq);
  if (!nq) wse_app_actions_clear(app);
  return 0;
}
#define EXPECT(app, m, n, rc, nq, what) feed_expect(__LINE__, app, m, n, rc, nq, what)

/* Every message of pubs[] into `to`; returns how many gave `rc`. */
static size_t feed_all(wse_app_t *to, int rc) {
  size_t k = 0;
  for (size_t i = 0; i < n_pubs; i++) k += feed(to, pubs[i].b, pubs[i].n) == rc;
  return k;
}

/* ---- the wire layout, by hand ------------------------------------------- */

static uint8_t *put_hdr(uint8_t *b, int kind, uint32_t origin) {
  b[0] = 1;
  b[1] = (uint8_t)kind;
  for (int i = 0; i < 4; i++) b[2 + i] = (uint8_t)(origin >> (8 * i));
  return b + 6;
}

static size_t mk_b(uint8_t *b, uint32_t origin, unsigned op, const char *room,
                   size_t rn, const wse_sid_t *ex, size_t nex, const void *p,
                   size_t n) {
  uint8_t *q = put_hdr(b, 'B', origin);
  *q++ = (uint8_t)op;
  *q++ = (uint8_t)rn;
  if (rn) memcpy(q, room, rn);
  q += rn;
  *q++ = (uint8_t)nex;
  *q++ = (uint8_t)(nex >> 8);
  for (size_t i = 0; i < nex; i++, q += 16) memcpy(q, ex[i].b, 16);
  if (n) memcpy(q, p, n);
  return (size_t)(q + n - b);
}

static size_t mk_s(uint8_t *b, uint32_t origin, const wse_sid_t *id,
                   unsigned op, const void *p, size_t n) {
  uint8_t *q = put_hdr(b, 'S', origin);
  memcpy(q, id->b, 16);
  q[16] = (uint8_t)op;
  if (n) memcpy(q + 17, p, n);
  return 6 + 17 + n;
}

static size_t mk_c(uint8_t *b, uint32_t origin, const wse_sid_t *id,
                   unsigned code, const char *reason, size_t n) {
  uint8_t *q = put_hdr(b, 'C', origin);
  memcpy(q, id->b, 16);
  q[16] = (uint8_t)code;
  q[17] = (uint8_t)(code >> 8);
  if (n) memcpy(q + 18, reason, n);
  return 6 + 18 + n;
}

/* 'H': a HISTORY record [1][room length][room][u64 seq LE][event]. */
static size_t mk_h(uint8_t *b, uint32_t origin, const char *room, size_t rn,
                   uint64_t seq, const void *p, size_t n) {
  uint8_t *q = put_hdr(b, 'H', origin);
  q[0] = 1;
  q[1] = (uint8_t)rn;
  if (rn) memcpy(q + 2, room, rn);
  for (int i = 0; i < 8; i++) q[2 + rn + i] = (uint8_t)(seq >> (8 * i));
  if (n) memcpy(q + 10 + rn, p, n);
  return 6 + 10 + rn + n;
}

/* ---- remote_fn: a fixed count for one room, plus the members of peers --- */

typedef struct stub {
  char room[WSE_TOPIC_MAX + 1];
  size_t far;             /* answered for `room` */
  wse_app_t *peers[2];    /* their members are counted too */
  size_t n_peers;
  int calls;
  char last[WSE_TOPIC_MAX + 1];
  size_t last_n;
} stub_t;

static size_t stub_count(void *ud, const char *room, size_t n) {
  stub_t *s = ud;
  size_t k = 0;
  s->calls++;
  s->last_n = n <= WSE_TOPIC_MAX ? n : 0;
  memcpy(s->last, room, s->last_n);
  s->last[s->last_n] = 0;
  if (n == strlen(s->room) && !memcmp(room, s->room, n)) k += s->far;
  for (size_t i = 0; i < s->n_peers; i++)
    for (int32_t h = wse_app_room_next(s->peers[i], room, n, -1); h >= 0;
         h = wse_app_room_next(s->peers[i], room, n, h))
      k++;
  return k;
}

static void stub_init(stub_t *s, const char *room, size_t far) {
  memset(s, 0, sizeof *s);
  snprintf(s->room, sizeof s->room, "%s", room);
  s->far = far;
}

/* ---- a probe app: "/p/:room[?also=R]", and commands from handlers -------- */

enum { DO_NONE, DO_BCAST, DO_SEND, DO_CLOSE, DO_COUNT, DO_LEAVE };
static struct {
  int op;
  const char *room;
  size_t rn;
  unsigned opcode, code;
  const void *p;
  size_t n;
  const wse_sid_t *ex;
  size_t nex;
  wse_sid_t id;
  long rc;
} cmd;

static void run_cmd(wse_ctx_t *c) {
  switch (cmd.op) {
  case DO_BCAST:
    cmd.rc = wse_broadcast(c, cmd.room, cmd.rn, cmd.opcode, cmd.p, cmd.n, cmd.ex, cmd.nex);
    break;
  case DO_SEND: cmd.rc = wse_send_to(c, &cmd.id, cmd.opcode, cmd.p, cmd.n); break;
  case DO_CLOSE: cmd.rc = wse_close_session(c, &cmd.id, cmd.code, cmd.p, cmd.n); break;
  case DO_COUNT: cmd.rc = (long)wse_room_count(c, cmd.room, cmd.rn); break;
  case DO_LEAVE: cmd.rc = wse_leave_topic(c, cmd.room, cmd.rn); break;
  default: cmd.rc = -999;
  }
}

static void pr_http(wse_ctx_t *c, const wse_request_t *req, const wse_params_t *prm,
                    const uint8_t *body, size_t n) {
  (void)req, (void)prm, (void)body, (void)n;
  run_cmd(c);
  wse_respond(c, 200, "{}", 2);
}

static void pr_message(wse_ctx_t *c, unsigned op, const uint8_t *p, size_t n) {
  (void)op, (void)p, (void)n;
  run_cmd(c);
}

static int pr_upgrade(wse_ctx_t *c, const wse_request_t *req, const wse_params_t *prm) {
  char also[WSE_TOPIC_MAX];
  long k = wse_query_param(req->target, "also", also, sizeof also);
  int rc = wse_join(c, prm->value[0].p, prm->value[0].n);
  if (rc == WSE_OK && k > 0) rc = wse_join(c, also, (size_t)k);
  return rc;
}

static wse_app_t *probe_node(uint32_t node, stub_t *st) {
  wse_app_t *app = NULL;
  wse_route_t r = {0};
  wse_http_route_t h = {"POST", "/do", pr_http, NULL, NULL, NULL};
  r.pattern = "/p/:room";
  r.on_upgrade = pr_upgrade;
  r.on_message = pr_message;
  CHECK_EQ(wse_app_new(&app, &t_allocator, NULL), WSE_OK);
  CHECK(wse_app_route(app, &r) >= 0);
  CHECK(wse_app_http_route(app, &h) >= 0);
  if (node) CHECK_EQ(wse_app_cluster(app, node, st ? stub_count : NULL, st), WSE_OK);
  return app;
}

static wse_app_t *chat_node(uint32_t node, stub_t *st) {
  wse_app_t *app = NULL;
  CHECK_EQ(wse_app_new(&app, &t_allocator, NULL), WSE_OK);
  CHECK_EQ(wsedge_app(app), WSE_OK);
  CHECK_EQ(wse_app_cluster(app, node, st ? stub_count : NULL, st), WSE_OK);
  return app;
}

/* The current command in an HTTP handler (no session); returns its rc. */
static long do_http(wse_app_t *app) {
  wse_response_t resp;
  cmd.rc = -998;
  CHECK_EQ(http(app, "POST", "/do", "", &resp), 200);
  return cmd.rc;
}

/* Upgrade + open (actions drained); *id = the session's id. */
static int32_t connect_as(wse_app_t *app, const char *target, uint8_t seed, wse_sid_t *id) {
  int32_t h = ws_connect(app, target, seed, TS);
  CHECK(h >= 0);
  wse_session_t *s = h >= 0 ? wse_app_session(app, (uint32_t)h) : NULL;
  if (id) {
    if (s) *id = s->id;
    else memset(id, 0, sizeof *id);
  }
  drain(app);
  return h;
}

/* The k-th action of `type` in recs[] (NULL: fewer). */
static rec_t *nth(int type, size_t k) {
  for (size_t i = 0; i < n_recs; i++)
    if (recs[i].type == type && !k--) return &recs[i];
  return NULL;
}

static size_t count_of(int type) {
  size_t k = 0;
  for (size_t i = 0; i < n_recs; i++) k += recs[i].type == type;
  return k;
}

static int rcpts(const rec_t *r, size_t n, const int32_t *hs) {
  if (!r || r->n_rcpt != n) return 0;
  for (size_t i = 0; i < n; i++)
    if (r->rcpt[i] != (uint32_t)hs[i]) return 0;
  return 1;
}

static int rec_data_is(const rec_t *r, const void *p, size_t n) {
  return r && r->len == n && (!n || !memcmp(r->data, p, n));
}

static int pub_is(size_t i, unsigned chan, uint32_t target, const uint8_t *m, size_t n) {
  return i < n_pubs && pubs[i].chan == chan && pubs[i].target == target &&
         pubs[i].n == n && !memcmp(pubs[i].b, m, n);
}

/* A node-`node` id that no session has. */
static wse_sid_t stray_id(uint32_t node, uint8_t seed) {
  wse_sid_t id = sid_of(seed);
  for (int i = 0; i < 4; i++) id.b[i] = (uint8_t)(node >> (8 * i));
  id.b[15] ^= 0x5A;
  return id;
}

static uint8_t mb[70000], mb2[70000];

/* ---- session ids ----------------------------------------------------- */

static void test_ids(void) {
  uint8_t ent[16];
  wse_sid_t id1, id2, idx, ids, parsed, other;
  char str[WSE_SID_LEN];
  seed_id(5, ent);

  /* no cluster: the id is the entropy, nobody is remote */
  wse_app_t *solo = probe_node(0, NULL);
  int32_t hs = connect_as(solo, "/p/lobby", 5, &ids);
  CHECK(hs >= 0);
  CHECK_MEM(ids.b, 16, ent, 16);
  wse_sid_format(&ids, str);
  CHECK_STR(str, WSE_SID_LEN, sid_str(5).s);
  other = ids;
  other.b[0] = 2, other.b[1] = other.b[2] = other.b[3] = 0;
  CHECK_EQ(wse_sid_node(&other), 2);
  CHECK_EQ(wse_sid_remote(solo, &ids), 0);
  CHECK_EQ(wse_sid_remote(solo, &other), 0);
  CHECK_EQ(wse_app_cluster(solo, 0, NULL, NULL), WSE_EINVAL);
  CHECK_EQ(wse_app_cluster(NULL, 1, NULL, NULL), WSE_EINVAL);
  CHECK_EQ(wse_sid_remote(solo, &other), 0); /* the refusal changed nothing */
  /* a non-cluster app takes no cluster input, even well-formed */
  uint8_t m[64];
  size_t mn = mk_s(m, 2, &ids, WSE_OP_TEXT, "x", 1);
  CHECK(EXPECT(solo, m, mn, WSE_EINVAL, 0, "input without a cluster"));
  CHECK_EQ(wse_app_cluster_input(NULL, m, mn, TS), WSE_EINVAL);
  wse_app_free(solo);

  wse_app_t *n1 = probe_node(1, NULL), *n2 = probe_node(2, NULL),
            *nx = probe_node(0x0A0B0C0Du, NULL);
  CHECK(connect_as(n1, "/p/lobby", 5, &id1) >= 0);
  CHECK(connect_as(n2, "/p/lobby", 5, &id2) >= 0);
  CHECK(connect_as(nx, "/p/lobby", 5, &idx) >= 0);
  /* the node in the first 4 bytes (little-endian), the entropy after */
  static const uint8_t le1[4] = {1, 0, 0, 0}, le2[4] = {2, 0, 0, 0},
                       lex[4] = {0x0D, 0x0C, 0x0B, 0x0A};
  CHECK_MEM(id1.b, 4, le1, 4);
  CHECK_MEM(id2.b, 4, le2, 4);
  CHECK_MEM(idx.b, 4, lex, 4);
  CHECK_MEM(id1.b + 4, 12, ent + 4, 12);
  CHECK_MEM(id2.b + 4, 12, ent + 4, 12);
  CHECK_MEM(idx.b + 4, 12, ent + 4, 12);
  CHECK_EQ(wse_sid_node(&id1), 1);
  CHECK_EQ(wse_sid_node(&id2), 2);
  CHECK_EQ(wse_sid_node(&idx), 0x0A0B0C0D);
  CHECK(memcmp(id1.b, id2.b, 16) != 0); /* same entropy, two nodes: two ids */
  CHECK_EQ(wse_sid_remote(n1, &id1), 0);
  CHECK_EQ(wse_sid_remote(n1, &id2), 1);
  CHECK_EQ(wse_sid_remote(n2, &id1), 1);
  CHECK_EQ(wse_sid_remote(n2, &id2), 0);
  CHECK_EQ(wse_sid_remote(nx, &id1), 1);
  CHECK_EQ(wse_sid_remote(nx, &idx), 0);
  CHECK_EQ(wse_sid_remote(NULL, &id1), 0);
  CHECK_EQ(wse_sid_remote(n1, NULL), 0);
  CHECK(wse_app_find(n1, &id1) != NULL);
  CHECK(wse_app_find(n1, &id2) == NULL);
  /* the id as text (what apps hand out) keeps its node */
  wse_sid_format(&id2, str);
  CHECK_EQ(wse_sid_parse(str, WSE_SID_LEN, &parsed), WSE_OK);
  CHECK_EQ(wse_sid_node(&parsed), 2);
  CHECK_EQ(wse_sid_remote(n1, &parsed), 1);
  /* entropy differing only in its first 4 bytes makes the same id here */
  req_t q;
  wse_response_t resp;
  uint8_t e2[16];
  memcpy(e2, ent, 16);
  e2[0] ^= 0xFF, e2[3] ^= 0x11;
  req_ws(&q, "/p/lobby");
  CHECK_EQ(wse_app_upgrade(n1, &q.r, e2, TS, NULL, &resp), WSE_EEXIST);
  CHECK_EQ(resp.status, 500);
  e2[4] ^= 1; /* a different id: accepted, and node 1's */
  int32_t h = wse_app_upgrade(n1, &q.r, e2, TS, NULL, &resp);
  CHECK(h >= 0);
  CHECK_EQ(h >= 0 ? wse_sid_node(&wse_app_session(n1, (uint32_t)h)->id) : 0, 1);
  drain(n1);
  wse_app_free(n1);
  wse_app_free(n2);
  wse_app_free(nx);
}

/* ---- broadcasts -------------------------------------------------------- */

static void test_broadcast(void) {
  stub_t sa, sb, sc;
  stub_init(&sa, "lobby", 7);
  stub_init(&sb, "", 0);
  stub_init(&sc, "", 0);
  wse_app_t *A = probe_node(1, &sa), *B = probe_node(2, &sb), *C = probe_node(3, &sc);
  wse_sid_t a1, a2, a3, b1, b2, b3, b4, c1, bl;
  int32_t ha1 = connect_as(A, "/p/lobby", 1, &a1);
  int32_t ha2 = connect_as(A, "/p/lobby", 2, &a2);
  int32_t ha3 = connect_as(A, "/p/other", 3, &a3);
  int32_t hb1 = connect_as(B, "/p/lobby?also=side", 11, &b1);
  int32_t hb2 = connect_as(B, "/p/lobby", 12, &b2);
  int32_t hb3 = connect_as(B, "/p/lobby", 13, &b3);
  int32_t hb4 = connect_as(B, "/p/other", 14, &b4);
  int32_t hc1 = connect_as(C, "/p/lobby", 21, &c1);
  char r128[WSE_TOPIC_MAX + 1], t128[8 + WSE_TOPIC_MAX];
  memset(r128, 'q', WSE_TOPIC_MAX);
  r128[WSE_TOPIC_MAX] = 0;
  snprintf(t128, sizeof t128, "/p/%s", r128);
  int32_t hbl = connect_as(B, t128, 15, &bl);
  drain(A), drain(B), drain(C);
  uint8_t want[1024];
  size_t wn;

  /* text to "lobby" from node 1: its 2 members here + 7 elsewhere */
  memset(&cmd, 0, sizeof cmd);
  cmd.op = DO_BCAST, cmd.room = "lobby", cmd.rn = 5, cmd.opcode = WSE_OP_TEXT;
  cmd.p = "hello", cmd.n = 5;
  sa.calls = 0;
  CHECK_EQ(do_http(A), 2 + 7);
  CHECK_EQ(sa.calls, 1);
  CHECK_STR(sa.last, sa.last_n, "lobby");
  CHECK_EQ(take(A), 2);
  int32_t wa[] = {ha1, ha2};
  CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 2, wa));
  CHECK(rec_data_is(nth(WSE_ACT_BROADCAST, 0), "hello", 5));
  CHECK_EQ(n_pubs, 1);
  wn = mk_b(want, 1, WSE_OP_TEXT, "lobby", 5, NULL, 0, "hello", 5);
  CHECK(pub_is(0, WSE_CHAN_ROOM, 0, want, wn));
  CHECK_STR(pubs[0].data, pubs[0].dn, "lobby");
  rec_t *ra = nth(WSE_ACT_BROADCAST, 0);
  uint8_t *fa = ra ? dup_bytes(ra->frame, ra->frame_len) : NULL;
  size_t fan = ra ? ra->frame_len : 0;
  /* node 2: exactly its members of the room, the same frame */
  CHECK(EXPECT(B, pubs[0].b, pubs[0].n, WSE_OK, 1, "broadcast to node 2"));
  drain(B);
  int32_t wb[] = {hb1, hb2, hb3};
  CHECK_EQ(n_recs, 1);
  CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 3, wb));
  CHECK_EQ(nth(WSE_ACT_BROADCAST, 0) ? nth(WSE_ACT_BROADCAST, 0)->op : 0, WSE_OP_TEXT);
  CHECK(rec_data_is(nth(WSE_ACT_BROADCAST, 0), "hello", 5));
  CHECK(nth(WSE_ACT_BROADCAST, 0) && fa &&
        nth(WSE_ACT_BROADCAST, 0)->frame_len == fan &&
        !memcmp(nth(WSE_ACT_BROADCAST, 0)->frame, fa, fan));
  free(fa);
  /* node 3 too; and node 1 ignores its own message */
  CHECK(EXPECT(C, want, wn, WSE_OK, 1, "broadcast to node 3"));
  drain(C);
  int32_t wc[] = {hc1};
  CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 1, wc));
  CHECK(EXPECT(A, want, wn, WSE_OK, 0, "own broadcast back"));

  /* binary, every byte value, except one member here and one on node 2 */
  uint8_t bin[256];
  for (int i = 0; i < 256; i++) bin[i] = (uint8_t)i;
  wse_sid_t ex1[2] = {a1, b2};
  cmd.opcode = WSE_OP_BINARY, cmd.p = bin, cmd.n = sizeof bin, cmd.ex = ex1, cmd.nex = 2;
  CHECK_EQ(do_http(A), 1 + (7 - 1));
  CHECK_EQ(take(A), 2);
  int32_t wa2[] = {ha2};
  CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 1, wa2));
  wn = mk_b(want, 1, WSE_OP_BINARY, "lobby", 5, ex1, 2, bin, sizeof bin);
  CHECK(pub_is(0, WSE_CHAN_ROOM, 0, want, wn));
  CHECK(EXPECT(B, want, wn, WSE_OK, 1, "binary broadcast, except b2"));
  drain(B);
  int32_t wb2[] = {hb1, hb3};
  CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 2, wb2));
  CHECK_EQ(nth(WSE_ACT_BROADCAST, 0) ? nth(WSE_ACT_BROADCAST, 0)->op : 0, WSE_OP_BINARY);
  CHECK(rec_data_is(nth(WSE_ACT_BROADCAST, 0), bin, sizeof bin));
  CHECK(EXPECT(C, want, wn, WSE_OK, 1, "binary broadcast to node 3"));
  drain(C);
  CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 1, wc));

  /* every member elsewhere excluded: nothing queued there */
  wse_sid_t ex2[4] = {b1, b2, b3, c1};
  cmd.ex = ex2, cmd.nex = 4, cmd.opcode = WSE_OP_TEXT, cmd.p = "x", cmd.n = 1;
  CHECK_EQ(do_http(A), 2 + (7 - 4));
  CHECK_EQ(take(A), 2);
  CHECK_EQ(n_pubs, 1);
  CHECK(EXPECT(B, pubs[0].b, pubs[0].n, WSE_OK, 0, "all of node 2 excluded"));
  CHECK(EXPECT(C, pubs[0].b, pubs[0].n, WSE_OK, 0, "all of node 3 excluded"));

  /* more than 8 excluded ids (the far side compares ids, not handles), the
   * node-2 members at positions 8 and 9 */
  wse_sid_t ex3[10];
  ex3[0] = a1;
  for (int i = 1; i < 8; i++) ex3[i] = stray_id(1, (uint8_t)(100 + i)); /* node 1, no session */
  ex3[8] = b2, ex3[9] = b3;
  cmd.ex = ex3, cmd.nex = 10;
  CHECK_EQ(do_http(A), 1 + (7 - 2)); /* remote: b2, b3 */
  CHECK_EQ(take(A), 2);
  CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 1, wa2));
  wn = mk_b(want, 1, WSE_OP_TEXT, "lobby", 5, ex3, 10, "x", 1);
  CHECK(pub_is(0, WSE_CHAN_ROOM, 0, want, wn));
  CHECK(EXPECT(B, want, wn, WSE_OK, 1, "10 excluded ids"));
  drain(B);
  int32_t wb3[] = {hb1};
  CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 1, wb3));
  cmd.ex = NULL, cmd.nex = 0;

  /* a room with no member on this node: published all the same */
  cmd.room = "side", cmd.rn = 4;
  CHECK_EQ(do_http(A), 0);
  CHECK_EQ(take(A), 1);
  CHECK_EQ(count_of(WSE_ACT_BROADCAST), 0);
  wn = mk_b(want, 1, WSE_OP_TEXT, "side", 4, NULL, 0, "x", 1);
  CHECK(pub_is(0, WSE_CHAN_ROOM, 0, want, wn));
  CHECK_STR(pubs[0].data, pubs[0].dn, "side");
  CHECK(EXPECT(B, want, wn, WSE_OK, 1, "broadcast to side"));
  drain(B);
  CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 1, wb3));
  CHECK(EXPECT(C, want, wn, WSE_OK, 0, "no member of side on node 3"));

  /* a 128-byte room crosses; the empty and a 129-byte one do not */
  cmd.room = r128, cmd.rn = WSE_TOPIC_MAX;
  CHECK_EQ(do_http(A), 0);
  CHECK_EQ(take(A), 1);
  CHECK_EQ(n_pubs, 1);
  CHECK(EXPECT(B, pubs[0].b, pubs[0].n, WSE_OK, 1, "128-byte room"));
  drain(B);
  int32_t wbl[] = {hbl};
  CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 1, wbl));
  char r129[WSE_TOPIC_MAX + 2];
  memset(r129, 'q', sizeof r129);
  cmd.room = r129, cmd.rn = WSE_TOPIC_MAX + 1;
  CHECK_EQ(do_http(A), 0);
  CHECK_EQ(queued(A), 0);
  cmd.room = "", cmd.rn = 0;
  CHECK_EQ(do_http(A), 0);
  CHECK_EQ(queued(A), 0);
  /* refused broadcasts publish nothing */
  cmd.room = "lobby", cmd.rn = 5, cmd.opcode = 9;
  CHECK_EQ(do_http(A), WSE_EINVAL);
  CHECK_EQ(queued(A), 0);
  cmd.opcode = WSE_OP_TEXT, cmd.nex = 1;
  CHECK_EQ(do_http(A), WSE_EINVAL);
  CHECK_EQ(queued(A), 0);
  cmd.nex = 0;

  /* wse_room_count: local members + remote_fn */
  cmd.op = DO_COUNT, cmd.room = "lobby", cmd.rn = 5;
  sa.calls = 0;
  CHECK_EQ(do_http(A), 2 + 7);
  CHECK_EQ(sa.calls, 1);
  cmd.room = "other";
  CHECK_EQ(do_http(A), 1);
  CHECK_STR(sa.last, sa.last_n, "other");
  cmd.room = "side", cmd.rn = 4;
  CHECK_EQ(do_http(A), 0);
  sa.far = 40, snprintf(sa.room, sizeof sa.room, "side");
  CHECK_EQ(do_http(A), 40);
  cmd.room = "lobby", cmd.rn = 5;
  CHECK_EQ(do_http(B), 3);
  /* remote_fn counting the peers' members, as a host's would */
  sb.peers[0] = A, sb.peers[1] = C, sb.n_peers = 2;
  CHECK_EQ(do_http(B), 3 + 2 + 1);
  cmd.room = "other";
  CHECK_EQ(do_http(B), 1 + 1);
  cmd.op = DO_BCAST, cmd.room = "lobby", cmd.rn = 5, cmd.p = "y", cmd.n = 1;
  CHECK_EQ(do_http(B), 3 + 3);
  CHECK_EQ(take(B), 2);
  wn = mk_b(want, 2, WSE_OP_TEXT, "lobby", 5, NULL, 0, "y", 1);
  CHECK(pub_is(0, WSE_CHAN_ROOM, 0, want, wn));
  CHECK(EXPECT(A, want, wn, WSE_OK, 1, "node 2 to node 1"));
  drain(A);
  CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 2, wa));
  /* a cluster node without remote_fn counts its own members only */
  wse_app_t *D = probe_node(4, NULL);
  CHECK(connect_as(D, "/p/lobby", 31, NULL) >= 0);
  drain(D);
  CHECK_EQ(do_http(D), 1);
  CHECK_EQ(take(D), 2);
  CHECK_EQ(n_pubs, 1);
  cmd.op = DO_COUNT;
  CHECK_EQ(do_http(D), 1);
  (void)ha3, (void)hb4;
  wse_app_free(A);
  wse_app_free(B);
  wse_app_free(C);
  wse_app_free(D);
  pubs_reset();
}

/* ---- send_to and close_session across nodes ---------------------------- */

static void test_send_close(void) {
  wse_app_t *A = probe_node(1, NULL), *B = probe_node(2, NULL), *C = probe_node(3, NULL);
  wse_sid_t a1, b1, b2, c1;
  int32_t ha1 = connect_as(A, "/p/lobby", 1, &a1);
  int32_t hb1 = connect_as(B, "/p/lobby", 11, &b1);
  int32_t hb2 = connect_as(B, "/p/lobby", 12, &b2);
  int32_t hc1 = connect_as(C, "/p/lobby", 21, &c1);
  drain(A), drain(B), drain(C);
  uint8_t want[512];
  size_t wn;

  /* from a handler on node 1 to node 2's b1 */
  memset(&cmd, 0, sizeof cmd);
  cmd.op = DO_SEND, cmd.id = b1, cmd.opcode = WSE_OP_TEXT, cmd.p = "hi", cmd.n = 2;
  CHECK_EQ(do_http(A), WSE_OK);
  CHECK_EQ(take(A), 1);
  CHECK_EQ(count_of(WSE_ACT_SEND), 0);
  wn = mk_s(want, 1, &b1, WSE_OP_TEXT, "hi", 2);
  CHECK(pub_is(0, WSE_CHAN_NODE, 2, want, wn));
  CHECK(EXPECT(B, want, wn, WSE_OK, 1, "send to b1"));
  drain(B);
  rec_t *r = nth(WSE_ACT_SEND, 0);
  CHECK(r != NULL);
  CHECK_EQ(r ? r->target : 99, hb1);
  CHECK_EQ(r ? r->op : 0, WSE_OP_TEXT);
  CHECK(rec_data_is(r, "hi", 2));
  /* not node 3's: it has no such session */
  CHECK(EXPECT(C, want, wn, WSE_ENOTFOUND, 0, "send to b1 on node 3"));
  CHECK(EXPECT(A, want, wn, WSE_OK, 0, "own send back"));

  /* outside a handler, binary */
  static const uint8_t bin[] = {0, 0xFF, 0x80, 7};
  CHECK_EQ(wse_app_send_to(A, &b2, WSE_OP_BINARY, bin, sizeof bin), WSE_OK);
  CHECK_EQ(take(A), 1);
  wn = mk_s(want, 1, &b2, WSE_OP_BINARY, bin, sizeof bin);
  CHECK(pub_is(0, WSE_CHAN_NODE, 2, want, wn));
  CHECK(EXPECT(B, want, wn, WSE_OK, 1, "binary send to b2"));
  drain(B);
  r = nth(WSE_ACT_SEND, 0);
  CHECK_EQ(r ? r->target : 99, hb2);
  CHECK_EQ(r ? r->op : 0, WSE_OP_BINARY);
  CHECK(rec_data_is(r, bin, sizeof bin));
  /* an empty message */
  CHECK_EQ(wse_app_send_to(A, &b2, WSE_OP_TEXT, NULL, 0), WSE_OK);
  CHECK_EQ(take(A), 1);
  CHECK(EXPECT(B, pubs[0].b, pubs[0].n, WSE_OK, 1, "empty send"));
  drain(B);
  CHECK(rec_data_is(nth(WSE_ACT_SEND, 0), "", 0));

  /* node 3's session: node 3's channel */
  cmd.id = c1;
  CHECK_EQ(do_http(A), WSE_OK);
  CHECK_EQ(take(A), 1);
  wn = mk_s(want, 1, &c1, WSE_OP_TEXT, "hi", 2);
  CHECK(pub_is(0, WSE_CHAN_NODE, 3, want, wn));
  CHECK(EXPECT(B, want, wn, WSE_ENOTFOUND, 0, "c1's message on node 2"));
  CHECK(EXPECT(C, want, wn, WSE_OK, 1, "c1's message on node 3"));
  drain(C);
  CHECK_EQ(nth(WSE_ACT_SEND, 0) ? nth(WSE_ACT_SEND, 0)->target : 99, hc1);

  /* a local session: a SEND, no PUBLISH */
  cmd.id = a1;
  CHECK_EQ(do_http(A), WSE_OK);
  CHECK_EQ(take(A), 1);
  CHECK_EQ(n_pubs, 0);
  CHECK_EQ(nth(WSE_ACT_SEND, 0) ? nth(WSE_ACT_SEND, 0)->target : 99, ha1);

  /* close_session: code and reason */
  cmd.op = DO_CLOSE, cmd.id = b1, cmd.code = 4001, cmd.p = "bye", cmd.n = 3;
  CHECK_EQ(do_http(A), WSE_OK);
  CHECK_EQ(take(A), 1);
  CHECK_EQ(count_of(WSE_ACT_CLOSE), 0);
  wn = mk_c(want, 1, &b1, 4001, "bye", 3);
  CHECK(pub_is(0, WSE_CHAN_NODE, 2, want, wn));
  CHECK(EXPECT(B, want, wn, WSE_OK, 1, "close b1"));
  drain(B);
  r = nth(WSE_ACT_CLOSE, 0);
  static const uint8_t cf[] = {0x88, 5, 0x0F, 0xA1, 'b', 'y', 'e'};
  CHECK_EQ(r ? r->target : 99, hb1);
  CHECK_EQ(r ? r->code : 0, 4001);
  CHECK(rec_data_is(r, "bye", 3));
  CHECK(r && r->frame_len == sizeof cf && !memcmp(r->frame, cf, sizeof cf));
  CHECK(EXPECT(C, want, wn, WSE_ENOTFOUND, 0, "close b1 on node 3"));
  /* no status, no reason */
  cmd.code = WSE_CLOSE_NO_STATUS, cmd.p = NULL, cmd.n = 0, cmd.id = b2;
  CHECK_EQ(do_http(A), WSE_OK);
  CHECK_EQ(take(A), 1);
  wn = mk_c(want, 1, &b2, WSE_CLOSE_NO_STATUS, NULL, 0);
  CHECK(pub_is(0, WSE_CHAN_NODE, 2, want, wn));
  CHECK(EXPECT(B, want, wn, WSE_OK, 1, "close b2, no status"));
  drain(B);
  r = nth(WSE_ACT_CLOSE, 0);
  static const uint8_t cf0[] = {0x88, 0};
  CHECK_EQ(r ? r->target : 99, hb2);
  CHECK_EQ(r ? r->code : 0, WSE_CLOSE_NO_STATUS);
  CHECK(r && r->frame_len == 2 && !memcmp(r->frame, cf0, 2));
  CHECK_EQ(r ? r->len : 99, 0);

  /* refused on node 1: nothing published */
  cmd.id = b1;
  cmd.code = 999, cmd.p = "x", cmd.n = 1;
  CHECK_EQ(do_http(A), WSE_EINVAL);
  CHECK_EQ(queued(A), 0);
  cmd.code = 1006;
  CHECK_EQ(do_http(A), WSE_EINVAL);
  CHECK_EQ(queued(A), 0);
  cmd.code = 1000, cmd.p = "\xC3", cmd.n = 1;
  CHECK_EQ(do_http(A), WSE_EINVAL);
  CHECK_EQ(queued(A), 0);
  cmd.p = NULL, cmd.n = 3;
  CHECK_EQ(do_http(A), WSE_EINVAL);
  CHECK_EQ(queued(A), 0);
  cmd.op = DO_SEND, cmd.opcode = 9, cmd.p = "x", cmd.n = 1;
  CHECK_EQ(do_http(A), WSE_EINVAL);
  CHECK_EQ(queued(A), 0);
  CHECK_EQ(wse_app_send_to(A, &b1, WSE_OP_CLOSE, "x", 1), WSE_EINVAL);
  CHECK_EQ(wse_app_send_to(A, &b1, WSE_OP_TEXT, NULL, 1), WSE_EINVAL);
  CHECK_EQ(queued(A), 0);
  /* node 1's own id with no session: not found, not published */
  wse_sid_t gone1 = stray_id(1, 77);
  cmd.opcode = WSE_OP_TEXT, cmd.id = gone1;
  CHECK_EQ(do_http(A), WSE_ENOTFOUND);
  CHECK_EQ(queued(A), 0);
  cmd.op = DO_CLOSE, cmd.code = 1000;
  CHECK_EQ(do_http(A), WSE_ENOTFOUND);
  CHECK_EQ(queued(A), 0);

  /* a node-2 id with no session: published, WSE_ENOTFOUND on node 2 */
  wse_sid_t gone2 = stray_id(2, 78);
  CHECK_EQ(wse_app_send_to(A, &gone2, WSE_OP_TEXT, "hi", 2), WSE_OK);
  CHECK_EQ(take(A), 1);
  CHECK(pub_is(0, WSE_CHAN_NODE, 2, pubs[0].b, pubs[0].n));
  CHECK(EXPECT(B, pubs[0].b, pubs[0].n, WSE_ENOTFOUND, 0, "send to a stray id"));
  cmd.id = gone2, cmd.code = 1000, cmd.p = "x", cmd.n = 1;
  CHECK_EQ(do_http(A), WSE_OK);
  CHECK_EQ(take(A), 1);
  CHECK(EXPECT(B, pubs[0].b, pubs[0].n, WSE_ENOTFOUND, 0, "close a stray id"));
  /* upgraded on node 2 but not open yet; then gone */
  req_t q;
  wse_response_t resp;
  uint8_t ent[16];
  seed_id(40, ent);
  req_ws(&q, "/p/lobby");
  int32_t hp = wse_app_upgrade(B, &q.r, ent, TS, NULL, &resp);
  CHECK(hp >= 0);
  wse_sid_t pend = hp >= 0 ? wse_app_session(B, (uint32_t)hp)->id : gone2;
  drain(B);
  wn = mk_s(want, 1, &pend, WSE_OP_TEXT, "hi", 2);
  CHECK(EXPECT(B, want, wn, WSE_ENOTFOUND, 0, "send to a session not open"));
  wn = mk_c(want, 1, &pend, 1000, NULL, 0);
  CHECK(EXPECT(B, want, wn, WSE_ENOTFOUND, 0, "close a session not open"));
  CHECK_EQ(wse_app_open(B, (uint32_t)hp, TS), WSE_OK);
  drain(B);
  wn = mk_s(want, 1, &pend, WSE_OP_TEXT, "hi", 2);
  CHECK(EXPECT(B, want, wn, WSE_OK, 1, "send to it once open"));
  drain(B);
  CHECK_EQ(wse_app_close(B, (uint32_t)hb1, 1000, NULL, 0, TS), WSE_OK);
  drain(B);
  wn = mk_s(want, 1, &b1, WSE_OP_TEXT, "hi", 2);
  CHECK(EXPECT(B, want, wn, WSE_ENOTFOUND, 0, "send to a closed session"));
  wn = mk_c(want, 1, &b1, 1000, NULL, 0);
  CHECK(EXPECT(B, want, wn, WSE_ENOTFOUND, 0, "close a closed session"));
  wse_app_free(A);
  wse_app_free(B);
  wse_app_free(C);
  pubs_reset();
}

/* ---- presence ----------------------------------------------------------- */

static int presence_is(size_t k, const char *room, uint32_t count) {
  rec_t *r = nth(WSE_ACT_PRESENCE, k);
  return r && r->target == count && r->len == strlen(room) && !memcmp(r->data, room, r->len);
}

static void test_presence(void) {
  wse_app_t *A = probe_node(1, NULL);
  int32_t h1 = ws_connect(A, "/p/lobby", 1, TS);
  CHECK(h1 >= 0);
  drain(A);
  CHECK_EQ(count_of(WSE_ACT_PRESENCE), 1);
  CHECK(presence_is(0, "lobby", 1));
  int32_t h2 = ws_connect(A, "/p/lobby", 2, TS);
  drain(A);
  CHECK_EQ(count_of(WSE_ACT_PRESENCE), 1);
  CHECK(presence_is(0, "lobby", 2));
  int32_t h3 = ws_connect(A, "/p/lobby?also=side", 3, TS);
  drain(A);
  CHECK_EQ(count_of(WSE_ACT_PRESENCE), 2); /* join order */
  CHECK(presence_is(0, "lobby", 3));
  CHECK(presence_is(1, "side", 1));
  /* upgraded, not open: not a member yet */
  req_t q;
  wse_response_t resp;
  uint8_t ent[16];
  seed_id(4, ent);
  req_ws(&q, "/p/lobby");
  int32_t h4 = wse_app_upgrade(A, &q.r, ent, TS, NULL, &resp);
  CHECK(h4 >= 0);
  drain(A);
  CHECK_EQ(count_of(WSE_ACT_PRESENCE), 0);
  CHECK_EQ(wse_app_close(A, (uint32_t)h4, 1006, NULL, 0, TS), WSE_OK);
  drain(A);
  CHECK_EQ(count_of(WSE_ACT_PRESENCE), 0);
  /* leaving one topic */
  memset(&cmd, 0, sizeof cmd);
  cmd.op = DO_LEAVE, cmd.room = "side", cmd.rn = 4;
  CHECK_EQ(ws_text(A, h3, "leave", TS), WSE_OK);
  CHECK_EQ(cmd.rc, WSE_OK);
  drain(A);
  CHECK_EQ(count_of(WSE_ACT_PRESENCE), 1);
  CHECK(presence_is(0, "side", 0));
  /* closes */
  CHECK_EQ(wse_app_close(A, (uint32_t)h1, 1000, NULL, 0, TS), WSE_OK);
  drain(A);
  CHECK_EQ(count_of(WSE_ACT_PRESENCE), 1);
  CHECK(presence_is(0, "lobby", 2));
  CHECK_EQ(wse_app_close(A, (uint32_t)h3, 1000, NULL, 0, TS), WSE_OK);
  drain(A);
  CHECK_EQ(count_of(WSE_ACT_PRESENCE), 1);
  CHECK(presence_is(0, "lobby", 1));
  int32_t h5 = ws_connect(A, "/p/lobby?also=side", 5, TS);
  drain(A);
  CHECK(presence_is(0, "lobby", 2));
  CHECK(presence_is(1, "side", 1));
  CHECK_EQ(wse_app_close(A, (uint32_t)h2, 1000, NULL, 0, TS), WSE_OK);
  drain(A);
  CHECK_EQ(count_of(WSE_ACT_PRESENCE), 1);
  CHECK(presence_is(0, "lobby", 1));
  CHECK_EQ(wse_app_close(A, (uint32_t)h5, 1000, NULL, 0, TS), WSE_OK);
  drain(A);
  CHECK_EQ(count_of(WSE_ACT_PRESENCE), 2);
  CHECK(presence_is(0, "lobby", 0));
  CHECK(presence_is(1, "side", 0));
  wse_app_free(A);
  /* no cluster, no PRESENCE */
  wse_app_t *solo = probe_node(0, NULL);
  int32_t hs = ws_connect(solo, "/p/lobby", 1, TS);
  drain(solo);
  CHECK_EQ(count_of(WSE_ACT_PRESENCE), 0);
  CHECK_EQ(wse_app_close(solo, (uint32_t)hs, 1000, NULL, 0, TS), WSE_OK);
  drain(solo);
  CHECK_EQ(count_of(WSE_ACT_PRESENCE), 0);
  wse_app_free(solo);
}

/* ---- the chat example's history across nodes ---------------------------- */

static char ev[16][512];
static size_t ev_n[16];

static size_t fmt_join(char *out, const char *type, const wse_sid_t *id, const char *name,
                       size_t count, uint64_t seq) {
  char s[WSE_SID_LEN + 1];
  wse_sid_format(id, s);
  s[WSE_SID_LEN] = 0;
  return (size_t)snprintf(out, 512, "{\"type\":\"%s\",\"id\":\"%s\",\"name\":\"%s\",\"count\":%zu,\"seq\":%llu}",
                          type, s, name, count, (unsigned long long)seq);
}

static size_t fmt_msg(char *out, const char *type, const wse_sid_t *id, const char *name,
                      const char *text, uint64_t ts, uint64_t seq) {
  char s[WSE_SID_LEN + 1];
  wse_sid_format(id, s);
  s[WSE_SID_LEN] = 0;
  if (!seq)
    return (size_t)snprintf(out, 512, "{\"type\":\"%s\",\"id\":\"%s\",\"name\":\"%s\",\"text\":\"%s\",\"ts\":%llu}",
                            type, s, name, text, (unsigned long long)ts);
  return (size_t)snprintf(out, 512, "{\"type\":\"%s\",\"id\":\"%s\",\"name\":\"%s\",\"text\":\"%s\",\"ts\":%llu,\"seq\":%llu}",
                          type, s, name, text, (unsigned long long)ts, (unsigned long long)seq);
}

/* The PUBLISH 'H' of room r1 for event e numbered seq, from `origin`. */
static int pub_h_is(size_t i, uint32_t origin, const char *room, uint64_t seq,
                    const char *e, size_t en) {
  size_t wn = mk_h(mb2, origin, room, strlen(room), seq, e, en);
  return pub_is(i, WSE_CHAN_ROOM, 0, mb2, wn) && pubs[i].dn == strlen(room) &&
         !memcmp(pubs[i].data, room, pubs[i].dn);
}

static int pub_b_is(size_t i, uint32_t origin, const char *room, const char *e, size_t en) {
  size_t wn = mk_b(mb2, origin, WSE_OP_TEXT, room, strlen(room), NULL, 0, e, en);
  return pub_is(i, WSE_CHAN_ROOM, 0, mb2, wn);
}

/* The types of recs[] are exactly `want` (0-terminated). */
static int types_are(const int *want) {
  size_t i = 0;
  for (; want[i]; i++)
    if (i >= n_recs || recs[i].type != want[i]) return 0;
  return i == n_recs;
}

static void test_chat_history(void) {
  stub_t sa, sb;
  stub_init(&sa, "", 0);
  stub_init(&sb, "", 0);
  wse_app_t *A = chat_node(1, &sa), *B = chat_node(2, &sb);
  sa.peers[0] = B, sa.n_peers = 1;
  sb.peers[0] = A, sb.n_peers = 1;
  wse_sid_t alice, bob, carol;
  static const int t_open[] = {WSE_ACT_PRESENCE, WSE_ACT_PUBLISH, WSE_ACT_BROADCAST,
                               WSE_ACT_PUBLISH, WSE_ACT_ATTACH, 0};
  static const int t_msg[] = {WSE_ACT_PUBLISH, WSE_ACT_BROADCAST, WSE_ACT_PUBLISH, 0};

  /* alice joins r1 on node 1: event 1 */
  int32_t ha = ws_connect(A, "/chat/r1?name=alice", 1, TS);
  CHECK(ha >= 0);
  alice = wse_app_session(A, (uint32_t)ha)->id;
  take(A);
  CHECK(types_are(t_open));
  CHECK_EQ(n_hist_recs, 1);
  CHECK_EQ(hist_seqs[0], 1);
  CHECK(presence_is(0, "r1", 1));
  ev_n[1] = fmt_join(ev[1], "join", &alice, "alice", 1, 1);
  CHECK(rec_data_is(nth(WSE_ACT_BROADCAST, 0), ev[1], ev_n[1]));
  CHECK_EQ(n_pubs, 2);
  CHECK(pub_h_is(0, 1, "r1", 1, ev[1], ev_n[1]));
  CHECK(pub_b_is(1, 1, "r1", ev[1], ev_n[1]));
  /* node 2 loads it (no members there yet: nothing queued) */
  CHECK(EXPECT(B, pubs[0].b, pubs[0].n, WSE_OK, 0, "alice's join 'H' on node 2"));
  CHECK(EXPECT(B, pubs[1].b, pubs[1].n, WSE_OK, 0, "alice's join 'B' on node 2"));

  /* bob joins r1 on node 2: event 2, count 1 here + 1 there */
  int32_t hb = ws_connect(B, "/chat/r1?name=bob", 2, TS);
  CHECK(hb >= 0);
  bob = wse_app_session(B, (uint32_t)hb)->id;
  take(B);
  CHECK(types_are(t_open));
  CHECK_EQ(n_hist_recs, 1);
  CHECK_EQ(hist_seqs[0], 2);
  ev_n[2] = fmt_join(ev[2], "join", &bob, "bob", 2, 2);
  CHECK(rec_data_is(nth(WSE_ACT_BROADCAST, 0), ev[2], ev_n[2]));
  CHECK(pub_h_is(0, 2, "r1", 2, ev[2], ev_n[2]));
  CHECK(pub_b_is(1, 2, "r1", ev[2], ev_n[2]));
  CHECK(EXPECT(A, pubs[0].b, pubs[0].n, WSE_OK, 0, "bob's join 'H' on node 1"));
  CHECK(EXPECT(A, pubs[1].b, pubs[1].n, WSE_OK, 1, "bob's join 'B' on node 1"));
  drain(A);
  int32_t wa[] = {ha}, wb[] = {hb};
  CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 1, wa));
  CHECK(rec_data_is(nth(WSE_ACT_BROADCAST, 0), ev[2], ev_n[2]));
  CHECK_EQ(n_hist_recs, 0); /* a loaded event is no HISTORY action */

  /* alice's message: HISTORY + PUBLISH 'H' + BROADCAST + PUBLISH 'B' */
  CHECK_EQ(ws_text(A, ha, "hello", TS + 1), WSE_OK);
  take(A);
  CHECK(types_are(t_msg));
  CHECK_EQ(n_hist_recs, 1);
  CHECK_EQ(hist_seqs[0], 3);
  ev_n[3] = fmt_msg(ev[3], "message", &alice, "alice", "hello", TS + 1, 3);
  CHECK(rec_data_is(nth(WSE_ACT_BROADCAST, 0), ev[3], ev_n[3]));
  CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 1, wa));
  CHECK(pub_h_is(0, 1, "r1", 3, ev[3], ev_n[3]));
  CHECK(pub_b_is(1, 1, "r1", ev[3], ev_n[3]));
  /* own messages: ignored, the numbers untouched */
  CHECK(EXPECT(A, pubs[0].b, pubs[0].n, WSE_OK, 0, "own 'H'"));
  CHECK(EXPECT(A, pubs[1].b, pubs[1].n, WSE_OK, 0, "own 'B'"));
  CHECK_EQ(feed_all(B, WSE_OK), 2);
  drain(B);
  CHECK_EQ(n_recs, 1);
  CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 1, wb));
  CHECK(rec_data_is(nth(WSE_ACT_BROADCAST, 0), ev[3], ev_n[3]));
  CHECK_EQ(n_hist_recs, 0);

  /* bob's answer on node 2 is number 4 */
  CHECK_EQ(ws_text(B, hb, "hi", TS + 2), WSE_OK);
  take(B);
  CHECK(types_are(t_msg));
  CHECK_EQ(n_hist_recs, 1);
  CHECK_EQ(hist_seqs[0], 4);
  ev_n[4] = fmt_msg(ev[4], "message", &bob, "bob", "hi", TS + 2, 4);
  CHECK(rec_data_is(nth(WSE_ACT_BROADCAST, 0), ev[4], ev_n[4]));
  CHECK(pub_h_is(0, 2, "r1", 4, ev[4], ev_n[4]));
  CHECK_EQ(feed_all(A, WSE_OK), 2);
  drain(A);
  CHECK(rec_data_is(nth(WSE_ACT_BROADCAST, 0), ev[4], ev_n[4]));

  /* both nodes number an event 5 at once: each refuses the other's */
  CHECK_EQ(ws_text(A, ha, "x", TS + 3), WSE_OK);
  take(A);
  CHECK_EQ(hist_seqs[0], 5);
  size_t a5 = mk_h(mb, 1, "r1", 2, 5, recs[1].data, recs[1].len);
  memcpy(mb + a5, pubs[1].b, pubs[1].n); /* A's 'B' after it */
  size_t a5b = pubs[1].n;
  CHECK(pub_is(0, WSE_CHAN_ROOM, 0, mb, a5));
  CHECK_EQ(ws_text(B, hb, "y", TS + 3), WSE_OK);
  take(B);
  CHECK_EQ(hist_seqs[0], 5);
  ev_n[5] = fmt_msg(ev[5], "message", &bob, "bob", "y", TS + 3, 5);
  CHECK(pub_h_is(0, 2, "r1", 5, ev[5], ev_n[5]));
  CHECK(EXPECT(A, pubs[0].b, pubs[0].n, WSE_EEXIST, 0, "bob's 5 on node 1"));
  CHECK(EXPECT(A, pubs[1].b, pubs[1].n, WSE_OK, 1, "bob's 'B' 5 on node 1"));
  drain(A);
  CHECK(EXPECT(B, mb, a5, WSE_EEXIST, 0, "alice's 5 on node 2"));
  CHECK(EXPECT(B, mb + a5, a5b, WSE_OK, 1, "alice's 'B' 5 on node 2"));
  drain(B);
  /* an older number: refused too */
  size_t old = mk_h(mb, 1, "r1", 2, 3, ev[3], ev_n[3]);
  CHECK(EXPECT(B, mb, old, WSE_EEXIST, 0, "an old number"));
  old = mk_h(mb, 1, "r1", 2, 1, "{}", 2);
  CHECK(EXPECT(B, mb, old, WSE_EEXIST, 0, "number 1 again"));

  /* carol on node 2 with ?since=0 is replayed node 2's history, alice's
   * events from node 1 included; her join is 6 */
  int32_t hc = ws_connect(B, "/chat/r1?name=carol&since=0", 3, TS + 4);
  CHECK(hc >= 0);
  carol = wse_app_session(B, (uint32_t)hc)->id;
  take(B);
  CHECK_EQ(count_of(WSE_ACT_SEND), 5);
  for (size_t i = 0; i < 5; i++) {
    rec_t *r = nth(WSE_ACT_SEND, i);
    CHECK_EQ(r ? r->target : 99, hc);
    CHECK(rec_data_is(r, ev[i + 1], ev_n[i + 1]));
  }
  CHECK_EQ(n_hist_recs, 1);
  CHECK_EQ(hist_seqs[0], 6);
  ev_n[6] = fmt_join(ev[6], "join", &carol, "carol", 3, 6);
  CHECK(rec_data_is(nth(WSE_ACT_BROADCAST, 0), ev[6], ev_n[6]));
  int32_t wbc[] = {hb, hc};
  CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 2, wbc));
  CHECK_EQ(n_pubs, 2);
  CHECK(pub_h_is(0, 2, "r1", 6, ev[6], ev_n[6]));
  CHECK_EQ(feed_all(A, WSE_OK), 2); /* 6 follows alice's 5 on node 1 */
  drain(A);
  CHECK(rec_data_is(nth(WSE_ACT_BROADCAST, 0), ev[6], ev_n[6]));
  CHECK_EQ(ws_text(A, ha, "seven", TS + 5), WSE_OK);
  take(A);
  CHECK_EQ(hist_seqs[0], 7);
  CHECK_EQ(feed_all(B, WSE_OK), 2);
  drain(B);
  CHECK_EQ(count_of(WSE_ACT_BROADCAST), 1);
  CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 2, wbc));

  /* a direct message to another node's session */
  char body[128], as[WSE_SID_LEN + 1];
  wse_sid_format(&alice, as);
  as[WSE_SID_LEN] = 0;
  snprintf(body, sizeof body, "{\"to\":\"%s\",\"text\":\"psst\"}", as);
  CHECK_EQ(ws_text(B, hb, body, TS + 6), WSE_OK);
  take(B);
  CHECK_EQ(n_hist_recs, 0);
  ev_n[8] = fmt_msg(ev[8], "direct", &bob, "bob", "psst", TS + 6, 0);
  CHECK_EQ(n_pubs, 1);
  size_t wn = mk_s(mb, 2, &alice, WSE_OP_TEXT, ev[8], ev_n[8]);
  CHECK(pub_is(0, WSE_CHAN_NODE, 1, mb, wn));
  CHECK_EQ(nth(WSE_ACT_SEND, 0) ? nth(WSE_ACT_SEND, 0)->target : 99, hb); /* bob's copy */
  CHECK(rec_data_is(nth(WSE_ACT_SEND, 0), ev[8], ev_n[8]));
  CHECK(EXPECT(A, pubs[0].b, pubs[0].n, WSE_OK, 1, "direct to alice"));
  drain(A);
  CHECK_EQ(nth(WSE_ACT_SEND, 0) ? nth(WSE_ACT_SEND, 0)->target : 99, ha);
  CHECK(rec_data_is(nth(WSE_ACT_SEND, 0), ev[8], ev_n[8]));

  /* alice leaves: node 1 has nobody left, the room's 2 elsewhere hear it */
  CHECK_EQ(wse_app_close(A, (uint32_t)ha, 1000, NULL, 0, TS + 7), WSE_OK);
  take(A);
  static const int t_leave[] = {WSE_ACT_PRESENCE, WSE_ACT_PUBLISH, WSE_ACT_PUBLISH, 0};
  CHECK(types_are(t_leave));
  CHECK(presence_is(0, "r1", 0));
  CHECK_EQ(hist_seqs[0], 8);
  ev_n[9] = fmt_join(ev[9], "leave", &alice, "alice", 2, 8);
  CHECK(pub_h_is(0, 1, "r1", 8, ev[9], ev_n[9]));
  CHECK(pub_b_is(1, 1, "r1", ev[9], ev_n[9]));
  CHECK_EQ(feed_all(B, WSE_OK), 2);
  drain(B);
  CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 2, wbc));
  CHECK(rec_data_is(nth(WSE_ACT_BROADCAST, 0), ev[9], ev_n[9]));

  /* a room node 2 has never seen: loaded, numbers go on from it (a gap
   * is fine: loads need increasing numbers only) */
  size_t hn = mk_h(mb, 1, "r9", 2, 7, "{\"seq\":7}", 9);
  CHECK(EXPECT(B, mb, hn, WSE_OK, 0, "r9 event 7"));
  hn = mk_h(mb, 3, "r9", 2, 9, "{\"seq\":9}", 9);
  CHECK(EXPECT(B, mb, hn, WSE_OK, 0, "r9 event 9 from node 3"));
  hn = mk_h(mb, 1, "r9", 2, 10, "{\"bad\":\"\xC3\"}", 11);
  CHECK(EXPECT(B, mb, hn, WSE_EINVAL, 0, "r9 event 10, not UTF-8"));
  hn = mk_h(mb, 1, "r9", 2, 0, "{}", 2);
  CHECK(EXPECT(B, mb, hn, WSE_EINVAL, 0, "r9 event 0: numbers start at 1"));
  wse_sid_t dave;
  int32_t hd = ws_connect(B, "/chat/r9?name=dave&since=8", 4, TS + 8);
  CHECK(hd >= 0);
  dave = wse_app_session(B, (uint32_t)hd)->id;
  take(B);
  CHECK_EQ(hist_seqs[0], 10);
  CHECK_EQ(count_of(WSE_ACT_SEND), 1); /* replay: event 9 only */
  CHECK(rec_data_is(nth(WSE_ACT_SEND, 0), "{\"seq\":9}", 9));
  CHECK_EQ(nth(WSE_ACT_SEND, 0) ? nth(WSE_ACT_SEND, 0)->target : 99, hd);
  ev_n[10] = fmt_join(ev[10], "join", &dave, "dave", 1, 10);
  CHECK(rec_data_is(nth(WSE_ACT_BROADCAST, 0), ev[10], ev_n[10]));
  /* node 1 has no r9 history: it takes number 10 as the first one */
  CHECK_EQ(feed_all(A, WSE_OK), 2);
  drain(A);
  CHECK_EQ(n_recs, 0);

  /* a record that is not history: nothing loaded, numbers unchanged */
  hn = mk_h(mb, 1, "r9", 2, 11, "{}", 2);
  mb[6] = 2; /* the record's version */
  CHECK(EXPECT(B, mb, hn, WSE_EINVAL, 0, "history record version 2"));
  CHECK_EQ(ws_text(B, hd, "after", TS + 8), WSE_OK);
  take(B);
  CHECK_EQ(hist_seqs[0], 11);
  wse_app_free(A);
  wse_app_free(B);
  pubs_reset();
}

/* ---- malformed messages -------------------------------------------------- */

/* Every cut of m[0..n) shorter than `fixed` bytes: WSE_EINVAL, nothing
 * queued. */
static void cuts_refused(wse_app_t *app, const uint8_t *m, size_t n, size_t fixed,
                         const char *what) {
  size_t bad = 0;
  for (size_t k = 0; k < fixed && k < n; k++) {
    int rc = feed(app, m, k);
    size_t q = queued(app);
    if (rc != WSE_EINVAL || q) {
      if (bad++ < 4)
        fprintf(stderr, "%s: cut to %zu of %zu bytes: rc %d, %zu queued\n", what, k, n, rc, q);
      wse_app_actions_clear(app);
    }
  }
  CHECK_EQ(bad, 0);
}

static void test_malformed(void) {
  wse_app_t *B = probe_node(2, NULL);
  wse_sid_t b1, b2, b3, b4;
  int32_t hb1 = connect_as(B, "/p/lobby", 11, &b1);
  int32_t hb2 = connect_as(B, "/p/lobby", 12, &b2);
  int32_t hb3 = connect_as(B, "/p/lobby", 13, &b3);
  char r128[256], t128[8 + WSE_TOPIC_MAX];
  memset(r128, 'q', sizeof r128);
  snprintf(t128, sizeof t128, "/p/%.*s", WSE_TOPIC_MAX, r128);
  int32_t hb4 = connect_as(B, t128, 14, &b4);
  drain(B);
  int32_t w13[] = {hb1, hb3}, w123[] = {hb1, hb2, hb3}, w4[] = {hb4};
  size_t n;
  rec_t *r;

  /* the valid ones first */
  static const uint8_t pay[] = {0, 1, 2, 'z', 'z', 0xFF};
  uint8_t vb[128], vs[64], vc[64], vh[64];
  size_t nb = mk_b(vb, 1, WSE_OP_BINARY, "lobby", 5, &b2, 1, pay, sizeof pay);
  size_t ns = mk_s(vs, 1, &b1, WSE_OP_TEXT, "hey", 3);
  size_t nc = mk_c(vc, 1, &b1, 4000, "why", 3);
  size_t nh = mk_h(vh, 1, "hist", 4, 1, "{\"n\":1}", 7);
  CHECK(EXPECT(B, vb, nb, WSE_OK, 1, "valid 'B'"));
  drain(B);
  CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 2, w13));
  CHECK(rec_data_is(nth(WSE_ACT_BROADCAST, 0), pay, sizeof pay));
  CHECK(EXPECT(B, vs, ns, WSE_OK, 1, "valid 'S'"));
  drain(B);
  CHECK(rec_data_is(nth(WSE_ACT_SEND, 0), "hey", 3));
  CHECK(EXPECT(B, vc, nc, WSE_OK, 1, "valid 'C'"));
  drain(B);
  CHECK_EQ(nth(WSE_ACT_CLOSE, 0) ? nth(WSE_ACT_CLOSE, 0)->code : 0, 4000);

  /* every cut into the fixed part; the payload has no length of its own,
   * so a cut inside it is a shorter payload */
  size_t fb = 6 + 4 + 5 + 16, fs = 6 + 17, fc = 6 + 18, fh = 6 + 10 + 4;
  cuts_refused(B, vb, nb, fb, "'B'");
  cuts_refused(B, vs, ns, fs, "'S'");
  cuts_refused(B, vc, nc, fc, "'C'");
  cuts_refused(B, vh, nh, fh, "'H'");
  for (size_t k = fb; k < nb; k++) {
    CHECK(EXPECT(B, vb, k, WSE_OK, 1, "'B' with a shorter payload"));
    drain(B);
    CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 2, w13));
    CHECK(rec_data_is(nth(WSE_ACT_BROADCAST, 0), pay, k - fb));
  }
  for (size_t k = fs; k < ns; k++) {
    CHECK(EXPECT(B, vs, k, WSE_OK, 1, "'S' with a shorter payload"));
    drain(B);
    CHECK(rec_data_is(nth(WSE_ACT_SEND, 0), "hey", k - fs));
  }
  for (size_t k = fc; k < nc; k++) {
    CHECK(EXPECT(B, vc, k, WSE_OK, 1, "'C' with a shorter reason"));
    drain(B);
    CHECK(rec_data_is(nth(WSE_ACT_CLOSE, 0), "why", k - fc));
  }
  /* the cuts of 'H' loaded nothing: the whole record is still new */
  CHECK(EXPECT(B, vh, nh, WSE_OK, 0, "valid 'H'"));
  CHECK(EXPECT(B, vh, nh, WSE_EEXIST, 0, "valid 'H' again"));
  nh = mk_h(vh, 1, "hist", 4, 2, "{\"n\":2}", 7); /* a new number from here on */

  /* bad version byte */
  static const uint8_t vers[] = {0, 2, 0x7F, 0x81, 0xFF};
  uint8_t *const all[] = {vb, vs, vc, vh};
  const size_t all_n[] = {nb, ns, nc, nh};
  for (size_t v = 0; v < sizeof vers; v++)
    for (size_t i = 0; i < 4; i++) {
      memcpy(mb, all[i], all_n[i]);
      mb[0] = vers[v];
      CHECK(EXPECT(B, mb, all_n[i], WSE_EINVAL, 0, "bad version"));
    }
  /* unknown kind */
  static const uint8_t kinds[] = {0, 'A', 'b', 's', 'c', 'h', 'P', 'X', 0x80 | 'B', 0xFF};
  for (size_t v = 0; v < sizeof kinds; v++)
    for (size_t i = 0; i < 4; i++) {
      memcpy(mb, all[i], all_n[i]);
      mb[1] = kinds[v];
      CHECK(EXPECT(B, mb, all_n[i], WSE_EINVAL, 0, "unknown kind"));
    }
  /* a header alone, and nothing */
  CHECK(EXPECT(B, vb, 6, WSE_EINVAL, 0, "'B' header alone"));
  CHECK_EQ(wse_app_cluster_input(B, NULL, 0, TS), WSE_EINVAL);
  CHECK_EQ(wse_app_cluster_input(B, NULL, 20, TS), WSE_EINVAL);

  /* room lengths */
  n = mk_b(mb, 1, WSE_OP_TEXT, "", 0, NULL, 0, "lobby", 5);
  CHECK(EXPECT(B, mb, n, WSE_EINVAL, 0, "'B' room length 0"));
  n = mk_b(mb, 1, WSE_OP_TEXT, r128, WSE_TOPIC_MAX + 1, NULL, 0, "x", 1);
  CHECK(EXPECT(B, mb, n, WSE_EINVAL, 0, "'B' room length 129"));
  n = mk_b(mb, 1, WSE_OP_TEXT, r128, 255, NULL, 0, "x", 1);
  CHECK(EXPECT(B, mb, n, WSE_EINVAL, 0, "'B' room length 255"));
  n = mk_b(mb, 1, WSE_OP_TEXT, r128, WSE_TOPIC_MAX, NULL, 0, "x", 1);
  CHECK(EXPECT(B, mb, n, WSE_OK, 1, "'B' room length 128"));
  drain(B);
  CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 1, w4));
  n = mk_h(mb, 1, "", 0, 5, "{}", 2);
  CHECK(EXPECT(B, mb, n, WSE_EINVAL, 0, "'H' room length 0"));
  n = mk_h(mb, 1, r128, WSE_TOPIC_MAX + 1, 5, "{}", 2);
  CHECK(EXPECT(B, mb, n, WSE_EINVAL, 0, "'H' room length 129"));
  n = mk_h(mb, 1, "\xFF", 1, 5, "{}", 2);
  CHECK(EXPECT(B, mb, n, WSE_EINVAL, 0, "'H' room not UTF-8"));
  n = mk_h(mb, 1, r128, WSE_TOPIC_MAX, 5, "{}", 2);
  CHECK(EXPECT(B, mb, n, WSE_OK, 0, "'H' room length 128"));

  /* except counts larger than the bytes */
  wse_sid_t ex2[2] = {b1, b2};
  n = mk_b(mb, 1, WSE_OP_BINARY, "lobby", 5, ex2, 2, NULL, 0);
  CHECK(EXPECT(B, mb, n, WSE_OK, 1, "two excepted, empty payload"));
  drain(B);
  int32_t w3[] = {hb3};
  CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 1, w3));
  CHECK(rec_data_is(nth(WSE_ACT_BROADCAST, 0), "", 0));
  cuts_refused(B, mb, n, n, "'B' two excepted, cut"); /* every cut is short of an id */
  n = mk_b(mb, 1, WSE_OP_BINARY, "lobby", 5, NULL, 0, pay, sizeof pay);
  for (unsigned cnt = 1; cnt < 0x10000; cnt = cnt * 2 + 1) {
    mb[6 + 2 + 5] = (uint8_t)cnt, mb[6 + 2 + 5 + 1] = (uint8_t)(cnt >> 8);
    CHECK(EXPECT(B, mb, n, WSE_EINVAL, 0, "except count over the bytes"));
  }
  memset(mb2, 0x33, 16 * 3 + 15); /* 3 ids + 15 bytes: 4 ids do not fit */
  n = mk_b(mb, 1, WSE_OP_BINARY, "lobby", 5, NULL, 0, mb2, 16 * 3 + 15);
  mb[6 + 2 + 5] = 4;
  CHECK(EXPECT(B, mb, n, WSE_EINVAL, 0, "4 ids in 63 bytes"));
  mb[6 + 2 + 5] = 3; /* 3 ids (none here) and 15 bytes of payload */
  CHECK(EXPECT(B, mb, n, WSE_OK, 1, "3 ids in 63 bytes"));
  drain(B);
  CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 3, w123));
  CHECK_EQ(nth(WSE_ACT_BROADCAST, 0) ? nth(WSE_ACT_BROADCAST, 0)->len : 0, 15);

  /* text that is not UTF-8 (binary: the same bytes are fine) */
  static const char *const bad_utf8[] = {"\xC3", "\xFF", "\xED\xA0\x80", "\xC0\xAF",
                                         "a\xF4\x90\x80\x80", "ok\x80", "\xE2\x82"};
  for (size_t i = 0; i < sizeof bad_utf8 / sizeof *bad_utf8; i++) {
    size_t bn = strlen(bad_utf8[i]);
    n = mk_b(mb, 1, WSE_OP_TEXT, "lobby", 5, NULL, 0, bad_utf8[i], bn);
    CHECK(EXPECT(B, mb, n, WSE_EINVAL, 0, "'B' text not UTF-8"));
    mb[6] = WSE_OP_BINARY;
    CHECK(EXPECT(B, mb, n, WSE_OK, 1, "'B' binary, same bytes"));
    drain(B);
    n = mk_s(mb, 1, &b1, WSE_OP_TEXT, bad_utf8[i], bn);
    CHECK(EXPECT(B, mb, n, WSE_EINVAL, 0, "'S' text not UTF-8"));
    mb[6 + 16] = WSE_OP_BINARY;
    CHECK(EXPECT(B, mb, n, WSE_OK, 1, "'S' binary, same bytes"));
    drain(B);
    n = mk_c(mb, 1, &b1, 1000, bad_utf8[i], bn);
    CHECK(EXPECT(B, mb, n, WSE_EINVAL, 0, "'C' reason not UTF-8"));
    n = mk_h(mb, 1, "hist", 4, 2, bad_utf8[i], bn);
    CHECK(EXPECT(B, mb, n, WSE_EINVAL, 0, "'H' event not UTF-8"));
  }
  /* UTF-8 text is fine */
  n = mk_b(mb, 1, WSE_OP_TEXT, "lobby", 5, NULL, 0, "caf\xC3\xA9 \xF0\x9F\x98\x80", 10);
  CHECK(EXPECT(B, mb, n, WSE_OK, 1, "'B' UTF-8 text"));
  drain(B);
  /* bad opcodes */
  static const uint8_t ops[] = {0, 3, 7, 8, 9, 10, 0x81, 0x82, 0xFF};
  for (size_t i = 0; i < sizeof ops; i++) {
    n = mk_b(mb, 1, ops[i], "lobby", 5, NULL, 0, "x", 1);
    CHECK(EXPECT(B, mb, n, WSE_EINVAL, 0, "'B' bad opcode"));
    n = mk_s(mb, 1, &b1, ops[i], "x", 1);
    CHECK(EXPECT(B, mb, n, WSE_EINVAL, 0, "'S' bad opcode"));
  }
  /* close codes */
  static const unsigned bad_codes[] = {0, 1, 999, 1004, 1006, 1015, 1016, 2999, 5000, 0xFFFF};
  for (size_t i = 0; i < sizeof bad_codes / sizeof *bad_codes; i++) {
    n = mk_c(mb, 1, &b1, bad_codes[i], "r", 1);
    CHECK(EXPECT(B, mb, n, WSE_EINVAL, 0, "'C' bad code"));
  }
  static const unsigned good_codes[] = {1000, 1001, 1003, 1007, 1014, 3000, 4999};
  for (size_t i = 0; i < sizeof good_codes / sizeof *good_codes; i++) {
    n = mk_c(mb, 1, &b1, good_codes[i], "r", 1);
    CHECK(EXPECT(B, mb, n, WSE_OK, 1, "'C' good code"));
    drain(B);
    r = nth(WSE_ACT_CLOSE, 0);
    CHECK_EQ(r ? r->code : 0, good_codes[i]);
    CHECK(r && r->frame_len == 5 && r->frame[2] == (uint8_t)(good_codes[i] >> 8) &&
          r->frame[3] == (uint8_t)good_codes[i]);
  }
  /* a long reason: the frame keeps 123 bytes of it */
  memset(mb2, 'w', 300);
  n = mk_c(mb, 1, &b1, 1000, (const char *)mb2, 300);
  CHECK(EXPECT(B, mb, n, WSE_OK, 1, "'C' 300-byte reason"));
  drain(B);
  r = nth(WSE_ACT_CLOSE, 0);
  CHECK_EQ(r ? r->frame_len : 0, 2 + 2 + 123);
  CHECK_EQ(r ? r->len : 0, 123);

  /* a node's own messages: ignored whatever they say */
  n = mk_b(mb, 2, WSE_OP_TEXT, "lobby", 5, NULL, 0, "x", 1);
  CHECK(EXPECT(B, mb, n, WSE_OK, 0, "own 'B'"));
  n = mk_s(mb, 2, &b1, WSE_OP_TEXT, "x", 1);
  CHECK(EXPECT(B, mb, n, WSE_OK, 0, "own 'S'"));
  n = mk_c(mb, 2, &b1, 1000, "x", 1);
  CHECK(EXPECT(B, mb, n, WSE_OK, 0, "own 'C'"));
  n = mk_h(mb, 2, "hist", 4, 2, "{}", 2);
  CHECK(EXPECT(B, mb, n, WSE_OK, 0, "own 'H'"));
  n = mk_h(mb, 1, "hist", 4, 2, "{}", 2); /* so 2 was not taken by it */
  CHECK(EXPECT(B, mb, n, WSE_OK, 0, "'H' 2 from node 1"));
  /* an origin differing from this node only in a high byte is another */
  n = mk_s(mb, 2 | 0x01000000u, &b1, WSE_OP_TEXT, "x", 1);
  CHECK(EXPECT(B, mb, n, WSE_OK, 1, "origin 0x01000002"));
  drain(B);
  CHECK_EQ(nth(WSE_ACT_SEND, 0) ? nth(WSE_ACT_SEND, 0)->target : 99, hb1);
  wse_app_free(B);
}

/* ---- wse_app_history_deliver (a host catching up after an outage) -------- */

static void test_history_deliver(void) {
  wse_app_t *B = chat_node(2, NULL);
  int32_t hb = ws_connect(B, "/chat/r1?name=bob", 2, TS);
  CHECK(hb >= 0);
  drain(B);
  CHECK_EQ(n_hist_recs, 1);
  uint8_t rec[64];
  size_t n = mk_h(rec, 1, "r1", 2, 5, "{\"e\":5}", 7) - 6;
  memmove(rec, rec + 6, n);
  CHECK_EQ(wse_app_history_deliver(B, rec, n), 1);
  drain(B);
  int32_t wb[] = {hb};
  CHECK(rcpts(nth(WSE_ACT_BROADCAST, 0), 1, wb));
  CHECK(rec_data_is(nth(WSE_ACT_BROADCAST, 0), "{\"e\":5}", 7));
  CHECK_EQ(n_hist_recs, 0);
  CHECK_EQ(wse_app_history_deliver(B, rec, n), 0); /* already had it */
  CHECK_EQ(queued(B), 0);
  CHECK_EQ(wse_app_history_deliver(B, rec, 9 + 2), WSE_EINVAL);
  CHECK_EQ(queued(B), 0);
  CHECK_EQ(ws_text(B, hb, "six", TS + 1), WSE_OK);
  drain(B);
  CHECK_EQ(n_hist_recs, 1);
  CHECK_EQ(hist_seqs[0], 6);
  wse_app_free(B);
}

/* wse_app_history_floor (the edge's lost write window): rooms with history
 * and rooms made later number above it; a lower floor lowers nothing. */
static void test_history_floor(void) {
  wse_app_t *B = chat_node(2, NULL);
  int32_t hb = ws_connect(B, "/chat/r1?name=bob", 2, TS);
  CHECK(hb >= 0);
  drain(B);
  CHECK_EQ(n_hist_recs, 1);
  CHECK_EQ(hist_seqs[0], 1);
  wse_app_history_floor(B, 1000);
  CHECK_EQ(ws_text(B, hb, "a", TS + 1), WSE_OK);
  drain(B);
  CHECK_EQ(n_hist_recs, 1);
  CHECK_EQ(hist_seqs[0], 1001);
  wse_app_history_floor(B, 500);
  CHECK_EQ(ws_text(B, hb, "b", TS + 2), WSE_OK);
  drain(B);
  CHECK_EQ(hist_seqs[0], 1002);
  int32_t hc = ws_connect(B, "/chat/r2?name=cy", 3, TS + 3); /* a new room */
  CHECK(hc >= 0);
  drain(B);
  CHECK_EQ(n_hist_recs, 1);
  CHECK_EQ(hist_seqs[0], 1001);
  wse_app_free(B);
}

int main(void) {
  test_ids();
  test_broadcast();
  test_send_close();
  test_presence();
  test_chat_history();
  test_malformed();
  test_history_deliver();
  test_history_floor();
  CHECK(frames_ok);
  recs_reset();
  pubs_reset();
  TEST_REPORT();
}
