/* fuzz_cluster.c — libFuzzer target for what a cluster node reads from the
 * broker: wse_app_cluster_input. An app with the chat example's routes runs
 * as node 1 with four sessions (chat rooms r1 (two), r2, and /ws echo;
 * opened once through real upgrades, each input starts from their
 * attachments and history records), then takes the input as a script of
 * entries:
 *   [ctl][len u16 LE][message]  a message from another node; ctl & 3:
 *                               0, 1 origin node 2, 2 node 3, 3 this node
 *                               (ignored: WSE_OK, nothing queued); ctl & 4:
 *                               put session (ctl >> 5) % 4's id in an 'S' /
 *                               'C' message, ctl & 8: live ids in a 'B''s
 *                               except slots; ctl & 16: the bytes as they
 *                               are (origin too)
 *   [0xFE][i]                   session i sends a chat message (a local,
 *                               numbered event: HISTORY and PUBLISH)
 *   [0xFD][i]                   session i closes and another takes its place
 *                               (restored from its attachment, a new id)
 * An independent reading of the layout in app.c ("Messages between nodes")
 * says what each message must do: malformed -> WSE_EINVAL and nothing
 * queued; a broadcast -> exactly the room's members here but the excepted
 * ones, the same payload; 'S' / 'C' -> a SEND / CLOSE to that session when
 * it is open here, else WSE_ENOTFOUND; 'H' -> loaded when its number is
 * above the room's (wse_room_seq, read through an HTTP route of this
 * target) else WSE_EEXIST. Every action is checked well formed (frames
 * parse, recipients live and distinct, PRESENCE counts, PUBLISH headers),
 * the node's own PUBLISH messages fed back are ignored, and nothing leaks.
 * Malformed always wins: WSE_EINVAL before WSE_EEXIST or WSE_ENOTFOUND. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "wsedge.h"

static void *f_alloc(void *ud, size_t n) { (void)ud; return malloc(n ? n : 1); }
static void *f_realloc(void *ud, void *p, size_t o, size_t n) { (void)ud; (void)o; return realloc(p, n ? n : 1); }
static void f_free(void *ud, void *p, size_t n) { (void)ud; (void)n; free(p); }
static const wse_allocator_t fa = {f_alloc, f_realloc, f_free, NULL};

#define NODE 1u
#define NS 4
#define FAIL(why) fail(__LINE__, why)

static void fail(int line, const char *why) {
  fprintf(stderr, "fuzz_cluster.c:%d: %s\n", line, why);
  abort();
}

/* ---- the app: chat routes, node 1, and POST /seq (body: a room) -------- */

static uint64_t seq_answer;

static void seq_handler(wse_ctx_t *c, const wse_request_t *req, const wse_params_t *prm,
                        const uint8_t *body, size_t n) {
  (void)req, (void)prm;
  seq_answer = wse_room_seq(c, (const char *)body, n);
  wse_respond(c, 200, "{}", 2);
}

static size_t remote_count(void *ud, const char *room, size_t n) {
  (void)ud, (void)room;
  return n % 3; /* some members elsewhere */
}

static uint64_t room_seq(wse_app_t *app, const uint8_t *room, size_t n) {
  wse_request_t req = {{"POST", 4}, {"/seq", 4}, 11, NULL, 0};
  wse_response_t resp;
  seq_answer = (uint64_t)-1;
  if (wse_app_http(app, &req, room, n, 0, &resp) != 200) FAIL("POST /seq");
  return seq_answer;
}

typedef struct {
  int32_t h;
  wse_sid_t id;
  const char *target;
} sess_t;

static sess_t S[NS];
static int debug; /* FUZZ_DEBUG=1: each message's answer on stderr */
static uint8_t next_seed;
static uint64_t now;

static const char *const targets[NS] = {"/chat/r1?name=a", "/chat/r1?name=b",
                                        "/chat/r2?name=c", "/ws"};

static int32_t node_connect(wse_app_t *app, const char *target, uint8_t seed) {
  wse_header_t hs[5] = {
      {{"Host", 4}, {"h", 1}}, {{"Upgrade", 7}, {"websocket", 9}},
      {{"Connection", 10}, {"Upgrade", 7}},
      {{"Sec-WebSocket-Key", 17}, {"dGhlIHNhbXBsZSBub25jZQ==", 24}},
      {{"Sec-WebSocket-Version", 21}, {"13", 2}}};
  wse_request_t req = {{"GET", 3}, {target, strlen(target)}, 11, hs, 5};
  uint8_t ent[16];
  wse_response_t resp;
  for (int i = 0; i < 16; i++) ent[i] = (uint8_t)(seed * 31 + i * 7);
  int32_t h = wse_app_upgrade(app, &req, ent, now, NULL, &resp);
  if (h < 0 || resp.status != 101) FAIL("upgrade");
  if (wse_app_open(app, (uint32_t)h, now) != WSE_OK) FAIL("open");
  return h;
}

/* ---- helpers -------------------------------------------------------------- */

static uint64_t le(const uint8_t *p, int n) {
  uint64_t v = 0;
  while (n--) v = v << 8 | p[n];
  return v;
}

static int code_ok(unsigned c) {
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999) ||
         c == 1005;
}

/* The open session with this id (NULL: none here). */
static wse_session_t *open_by_id(wse_app_t *app, const uint8_t *id) {
  for (int i = 0; i < NS; i++)
    if (!memcmp(S[i].id.b, id, 16)) return wse_app_session(app, (uint32_t)S[i].h);
  return NULL;
}

static void check_frame(const wse_action_t *a, unsigned op) {
  wse_frame_header_t fh;
  if (!a->frame || wse_frame_parse_header(a->frame, a->frame_len, &fh) <= 0) FAIL("frame parse");
  if (fh.masked || !fh.fin || fh.opcode != op || fh.header_len + fh.len != a->frame_len)
    FAIL("frame header");
  if (op != WSE_OP_CLOSE && (a->data != a->frame + fh.header_len || a->len != fh.len))
    FAIL("frame payload");
}

static int is_member(wse_app_t *app, const uint8_t *room, size_t rn, uint32_t h) {
  for (int32_t k = wse_app_room_next(app, (const char *)room, rn, -1); k >= 0;
       k = wse_app_room_next(app, (const char *)room, rn, k))
    if ((uint32_t)k == h) return 1;
  return 0;
}

static size_t members(wse_app_t *app, const uint8_t *room, size_t rn) {
  size_t c = 0;
  for (int32_t k = wse_app_room_next(app, (const char *)room, rn, -1); k >= 0;
       k = wse_app_room_next(app, (const char *)room, rn, k))
    if (++c > 64) FAIL("member list cycle");
  return c;
}

/* Every queued action well formed; the node's own PUBLISH messages are
 * fed back (ignored), then the queue is cleared. */
static void check_drain(wse_app_t *app) {
  const wse_action_t *a;
  size_t n = wse_app_actions(app, &a);
  uint8_t *own[64];
  size_t own_n[64], n_own = 0;
  for (size_t i = 0; i < n; i++) {
    const wse_action_t *x = &a[i];
    switch (x->type) {
    case WSE_ACT_SEND:
      if (!wse_app_session(app, x->target)) FAIL("SEND to a dead session");
      check_frame(x, x->opcode);
      break;
    case WSE_ACT_BROADCAST:
      check_frame(x, x->opcode);
      if (!x->n_recipients) FAIL("empty BROADCAST");
      for (size_t k = 0; k < x->n_recipients; k++) {
        if (!wse_app_session(app, x->recipients[k])) FAIL("BROADCAST to a dead session");
        for (size_t j = 0; j < k; j++)
          if (x->recipients[j] == x->recipients[k]) FAIL("BROADCAST recipient twice");
      }
      break;
    case WSE_ACT_CLOSE:
      if (!wse_app_session(app, x->target)) FAIL("CLOSE of a dead session");
      check_frame(x, WSE_OP_CLOSE);
      break;
    case WSE_ACT_ATTACH: {
      wse_attachment_t d;
      if (wse_attachment_decode(x->data, x->len, &d) != WSE_OK) FAIL("ATTACH decode");
      break;
    }
    case WSE_ACT_HISTORY: {
      const uint8_t *f = x->frame;
      if (!f || x->frame_len < 11 || f[0] != 1 || !f[1] || f[1] > WSE_TOPIC_MAX ||
          x->frame_len != 10u + f[1] + x->len || x->data != f + 10 + f[1] ||
          x->target != le(f + 2 + f[1], 8) % WSE_HISTORY_MAX)
        FAIL("HISTORY record");
      break;
    }
    case WSE_ACT_PUBLISH: {
      const uint8_t *f = x->frame;
      if (!f || x->frame_len < 6 || f[0] != 1 || le(f + 2, 4) != NODE) FAIL("PUBLISH header");
      if (f[1] == 'S' || f[1] == 'C') {
        if (x->opcode != WSE_CHAN_NODE || x->frame_len < 6u + 17 + (f[1] == 'C') ||
            x->target != le(f + 6, 4) || x->target == NODE)
          FAIL("PUBLISH to a node");
      } else if (f[1] == 'B' || f[1] == 'H') {
        if (x->opcode != WSE_CHAN_ROOM || x->frame_len < 6u + 4 ||
            x->data != f + 8 || x->len != f[7])
          FAIL("PUBLISH to a room");
      } else {
        FAIL("PUBLISH kind");
      }
      if (n_own < 64) {
        own[n_own] = malloc(x->frame_len);
        memcpy(own[n_own], f, x->frame_len);
        own_n[n_own++] = x->frame_len;
      }
      break;
    }
    case WSE_ACT_PRESENCE: {
      int last = 1; /* the last PRESENCE of its room: the count now */
      for (size_t j = i + 1; j < n; j++)
        if (a[j].type == WSE_ACT_PRESENCE && a[j].len == x->len && !memcmp(a[j].data, x->data, x->len))
          last = 0;
      if (last && x->target != members(app, x->data, x->len)) FAIL("PRESENCE count");
      break;
    }
    default: FAIL("action type");
    }
  }
  wse_app_actions_clear(app);
  for (size_t i = 0; i < n_own; i++) {
    if (wse_app_cluster_input(app, own[i], own_n[i], now) != WSE_OK) FAIL("own message not ignored");
    if (wse_app_actions(app, &a)) FAIL("own message queued");
    free(own[i]);
  }
}

/* ---- one message from another node ---------------------------------------- */

static void one_message(wse_app_t *app, uint8_t *m, size_t n) {
  const wse_action_t *a;
  uint32_t origin = n >= 6 ? (uint32_t)le(m + 2, 4) : 0;
  int rc = WSE_OK, want, lenient = -99; /* lenient: also allowed */
  uint64_t before = 0, hseq = 0;
  const uint8_t *p = m + 6, *hroom = NULL;
  size_t pn = n >= 6 ? n - 6 : 0, hrn = 0;
  unsigned kind = n >= 2 ? m[1] : 0;
  if (n >= 6 && m[0] == 1 && kind == 'H' && pn >= 10 && pn >= 10u + p[1]) {
    hroom = p + 2, hrn = p[1], hseq = le(p + 2 + p[1], 8);
    if (hrn >= 1 && hrn <= WSE_TOPIC_MAX) before = room_seq(app, hroom, hrn);
  }
  rc = wse_app_cluster_input(app, m, n, now);
  size_t nq = wse_app_actions(app, &a);
  if (debug) fprintf(stderr, "kind %c, %zu bytes, origin %u: rc %d, %zu queued\n",
                     kind >= 0x20 && kind < 0x7F ? (int)kind : '?', n, origin, rc, nq);

  if (n < 6 || m[0] != 1) {
    want = WSE_EINVAL;
  } else if (origin == NODE) {
    want = WSE_OK;
    if (nq) FAIL("own message queued");
  } else if (kind == 'B') {
    size_t rn = pn >= 2 ? p[1] : 0, nex = 0, k = 0;
    int ok = pn >= 4 && rn >= 1 && rn <= WSE_TOPIC_MAX && pn >= 4 + rn;
    if (ok) nex = (size_t)le(p + 2 + rn, 2), k = 4 + rn + 16 * nex;
    ok = ok && pn >= k && (p[0] == WSE_OP_TEXT || p[0] == WSE_OP_BINARY) &&
         (p[0] != WSE_OP_TEXT || wse_utf8_valid(p + k, pn - k));
    want = ok ? WSE_OK : WSE_EINVAL;
    if (ok && rc == WSE_OK) {
      /* exactly the members here but the excepted ones */
      size_t expect = 0;
      const uint8_t *room = p + 2;
      for (int32_t h = wse_app_room_next(app, (const char *)room, rn, -1); h >= 0;
           h = wse_app_room_next(app, (const char *)room, rn, h)) {
        wse_session_t *s = wse_app_session(app, (uint32_t)h);
        int ex = 0;
        if (!s) FAIL("dead member");
        for (size_t i = 0; i < nex && !ex; i++) ex = !memcmp(p + 4 + rn + 16 * i, s->id.b, 16);
        expect += !ex;
      }
      if (nq != (expect ? 1u : 0u)) FAIL("broadcast: actions");
      if (nq) {
        if (a[0].type != WSE_ACT_BROADCAST || a[0].n_recipients != expect || a[0].opcode != p[0] ||
            a[0].len != pn - k || (a[0].len && memcmp(a[0].data, p + k, a[0].len)))
          FAIL("broadcast: the action");
        for (size_t r = 0; r < a[0].n_recipients; r++) {
          wse_session_t *s = wse_app_session(app, a[0].recipients[r]);
          if (!s || !is_member(app, room, rn, a[0].recipients[r])) FAIL("broadcast: not a member");
          for (size_t i = 0; i < nex; i++)
            if (!memcmp(p + 4 + rn + 16 * i, s->id.b, 16)) FAIL("broadcast: excepted");
        }
      }
    }
  } else if (kind == 'S' || kind == 'C') {
    size_t fix = kind == 'S' ? 17 : 18;
    int ok = pn >= fix;
    wse_session_t *s = ok ? open_by_id(app, p) : NULL;
    if (ok && kind == 'S')
      ok = (p[16] == WSE_OP_TEXT || p[16] == WSE_OP_BINARY) &&
           (p[16] != WSE_OP_TEXT || wse_utf8_valid(p + 17, pn - 17));
    if (ok && kind == 'C') ok = code_ok((unsigned)le(p + 16, 2)) && wse_utf8_valid(p + 18, pn - 18);
    want = !ok ? WSE_EINVAL : s ? WSE_OK : WSE_ENOTFOUND;
    if (rc == WSE_OK) {
      if (!s || nq != 1 || a[0].target != s->handle) FAIL("S/C: the action");
      if (kind == 'S' && (a[0].type != WSE_ACT_SEND || a[0].opcode != p[16] || a[0].len != pn - 17 ||
                          (a[0].len && memcmp(a[0].data, p + 17, a[0].len))))
        FAIL("S: the SEND");
      if (kind == 'C' && (a[0].type != WSE_ACT_CLOSE || a[0].close_code != le(p + 16, 2)))
        FAIL("C: the CLOSE");
    }
  } else if (kind == 'H') {
    const uint8_t *r = p;
    int ok = pn >= 10 && r[0] == 1 && r[1] >= 1 && r[1] <= WSE_TOPIC_MAX && pn >= 10u + r[1] &&
             pn - 10 - r[1] <= WSE_HISTORY_EVENT_MAX && wse_utf8_valid(r + 2, r[1]) &&
             wse_utf8_valid(r + 10 + r[1], pn - 10 - r[1]);
    /* no history is dropped here (far under the memory bound): a room's
     * number is 0 only while it has none, and numbers start at 1 */
    if (!ok || !hseq) want = WSE_EINVAL; /* numbers start at 1 */
    else if (hseq <= before) want = WSE_EEXIST;
    else want = WSE_OK;
    if (nq) FAIL("H: actions");
    if (rc == WSE_OK && room_seq(app, hroom, hrn) != hseq) FAIL("H: the room's number");
    if (rc != WSE_OK && hroom && hrn >= 1 && hrn <= WSE_TOPIC_MAX && room_seq(app, hroom, hrn) != before)
      FAIL("H: refused but the number moved");
  } else {
    want = WSE_EINVAL;
  }
  if (rc != want && rc != lenient) {
    fprintf(stderr, "kind %u, %zu bytes: rc %d, expected %d\n", kind, n, rc, want);
    FAIL("return value");
  }
  if (rc != WSE_OK && nq) FAIL("refused, yet actions queued");
  check_drain(app);
}

/* The starting state, made once with real upgrades and opens; each input
 * starts from it through wse_app_restore (the sessions' attachments) and
 * wse_app_history_load (the rooms' events): the same sessions, ids, rooms
 * and numbers, without a handshake per input (SHA-1 and header parsing
 * took most of the time and steer nothing here). */
static uint8_t *t_att[NS], *t_hist[NS];
static size_t t_att_n[NS], t_hist_n[NS], t_nhist;

static uint8_t *dup(const uint8_t *p, size_t n) {
  uint8_t *q = malloc(n ? n : 1);
  if (n) memcpy(q, p, n);
  return q;
}

static wse_app_t *new_app(void) {
  wse_app_t *app = NULL;
  wse_http_route_t seq_route = {"POST", "/seq", seq_handler, NULL, NULL, NULL};
  if (wse_app_new(&app, &fa, NULL) != WSE_OK || wsedge_app(app) != WSE_OK ||
      wse_app_http_route(app, &seq_route) < 0 ||
      wse_app_cluster(app, NODE, remote_count, NULL) != WSE_OK)
    FAIL("app");
  return app;
}

static void make_template(void) {
  wse_app_t *app = new_app();
  for (int i = 0; i < NS; i++) {
    const wse_action_t *a;
    int32_t h = node_connect(app, targets[i], next_seed++);
    size_t n = wse_app_actions(app, &a);
    for (size_t k = 0; k < n; k++)
      if (a[k].type == WSE_ACT_ATTACH && a[k].target == (uint32_t)h) {
        free(t_att[i]);
        t_att[i] = dup(a[k].data, a[k].len), t_att_n[i] = a[k].len;
      } else if (a[k].type == WSE_ACT_HISTORY && t_nhist < NS) {
        t_hist[t_nhist] = dup(a[k].frame, a[k].frame_len);
        t_hist_n[t_nhist++] = a[k].frame_len;
      }
    check_drain(app);
    if (!t_att[i]) FAIL("no ATTACH at open");
  }
  wse_app_free(app);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uint8_t m[65536 + 8];
  static int init;
  now = 1700000000000ull;
  if (!init) {
    init = 1;
    debug = getenv("FUZZ_DEBUG") != NULL;
    next_seed = 1;
    make_template();
  }
  next_seed = NS + 1;
  wse_app_t *app = new_app();
  const uint8_t *att[NS];
  int32_t hs[NS];
  for (int i = 0; i < NS; i++) att[i] = t_att[i];
  if (wse_app_restore(app, att, t_att_n, NS, hs, now) != NS) FAIL("restore");
  for (int i = 0; i < NS; i++) {
    S[i].target = targets[i];
    S[i].h = hs[i];
    S[i].id = wse_app_session(app, (uint32_t)hs[i])->id;
    if (wse_sid_node(&S[i].id) != NODE || wse_sid_remote(app, &S[i].id)) FAIL("session id");
  }
  for (size_t k = 0; k < t_nhist; k++)
    if (wse_app_history_load(app, t_hist[k], t_hist_n[k]) != WSE_OK) FAIL("history load");
  check_drain(app);
  size_t i = 0;
  while (i < size) {
    unsigned ctl = data[i++];
    now++;
    if (ctl == 0xFE || ctl == 0xFD) {
      sess_t *s = &S[(i < size ? data[i++] : 0) % NS];
      if (ctl == 0xFE) {
        static const char txt[] = "hello";
        if (wse_app_message(app, (uint32_t)s->h, WSE_OP_TEXT, (const uint8_t *)txt, 5, now) != WSE_OK)
          FAIL("message");
      } else {
        /* closes; one like it, with an id not used yet, is restored */
        size_t k = (size_t)(s - S);
        wse_attachment_t d;
        static uint8_t buf[WSE_ATTACHMENT_MAX];
        if (wse_app_close(app, (uint32_t)s->h, 1000, NULL, 0, now) != WSE_OK) FAIL("close");
        check_drain(app);
        if (wse_attachment_decode(t_att[k], t_att_n[k], &d) != WSE_OK) FAIL("template");
        d.id.b[4] ^= next_seed++;
        long an = wse_attachment_encode(&d, buf, sizeof buf);
        const uint8_t *one = buf;
        size_t one_n = (size_t)an;
        if (an < 0 || wse_app_restore(app, &one, &one_n, 1, &s->h, now) != 1) FAIL("restore one");
        s->id = d.id;
      }
      check_drain(app);
      continue;
    }
    size_t n = i + 2 <= size ? (size_t)(data[i] | data[i + 1] << 8) : 0;
    i = i + 2 <= size ? i + 2 : size;
    if (n > size - i) n = size - i;
    memcpy(m, data + i, n);
    i += n;
    if (!(ctl & 16) && n >= 6) {
      uint32_t origin = (ctl & 3) == 3 ? NODE : (ctl & 3) == 2 ? 3 : 2;
      for (int b = 0; b < 4; b++) m[2 + b] = (uint8_t)(origin >> (8 * b));
      const wse_sid_t *id = &S[(ctl >> 5) % NS].id;
      if ((ctl & 4) && (m[1] == 'S' || m[1] == 'C') && n >= 22) memcpy(m + 6, id->b, 16);
      if ((ctl & 8) && m[1] == 'B' && n >= 10) {
        size_t rn = m[7], k = 6 + 4 + rn;
        size_t nex = k <= n ? (size_t)le(m + 6 + 2 + rn, 2) : 0;
        for (size_t e = 0; e < nex && k + 16 * (e + 1) <= n; e++)
          memcpy(m + k + 16 * e, S[((ctl >> 5) + e) % NS].id.b, 16);
      }
    }
    one_message(app, m, n);
  }
  wse_app_free(app);
  return 0;
}
