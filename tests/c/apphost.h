/* apphost.h — a recording host for the app-layer tests (test_app.c,
 * test_chat.c): it builds requests, drives wse_app_*, and copies every
 * drained action (the app reuses its arena after wse_app_actions_clear) so
 * tests compare exact bytes. It also checks each action's invariants: the
 * frame is a valid unmasked server frame whose payload is `data`. */
#ifndef WSE_APPHOST_H
#define WSE_APPHOST_H
#include "test.h"

#define MAX_RECS 256
#define MAX_RCPT 64

typedef struct rec {
  int type;
  uint32_t target;
  unsigned op, code;
  uint8_t *frame, *data;
  size_t frame_len, len;
  uint32_t rcpt[MAX_RCPT];
  size_t n_rcpt;
} rec_t;

static rec_t recs[MAX_RECS];
static size_t n_recs;
static int frames_ok = 1;
/* HISTORY actions of the last drain (not in recs[]: tests of other things
 * count and index the actions a host sends on) */
static size_t n_hist_recs;
static uint64_t hist_seqs[MAX_RECS];

static void recs_reset(void) {
  for (size_t i = 0; i < n_recs; i++) {
    free(recs[i].frame);
    free(recs[i].data);
  }
  memset(recs, 0, sizeof recs);
  n_recs = 0;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n) {
  uint8_t *q = malloc(n + 1);
  if (n) memcpy(q, p, n);
  q[n] = 0;
  return q;
}

/* A server frame carrying `len` payload bytes at its end, opcode `op`. */
static int frame_valid(const wse_action_t *a, unsigned op) {
  wse_frame_header_t h;
  if (wse_frame_parse_header(a->frame, a->frame_len, &h) <= 0) return 0;
  return h.fin && !h.masked && h.opcode == op && h.len == a->len &&
         h.header_len + a->len == a->frame_len &&
         a->data == a->frame + h.header_len;
}

/* Take the queued actions into recs[] and clear the app's queue. */
static size_t drain(wse_app_t *app) {
  const wse_action_t *a;
  size_t n = wse_app_actions(app, &a);
  recs_reset();
  n_hist_recs = 0;
  size_t kept = 0;
  for (size_t i = 0; i < n && i < MAX_RECS; i++) {
    if (a[i].type == WSE_ACT_HISTORY) {
      const uint8_t *f = a[i].frame;
      uint64_t seq = 0;
      for (int k = 7; k >= 0; k--) seq = seq << 8 | f[2 + f[1] + k];
      /* the record ends with the event, which data points at */
      frames_ok &= f[0] == 1 && a[i].data == f + 10 + f[1] &&
                   a[i].frame_len == 10u + f[1] + a[i].len &&
                   a[i].target == seq % WSE_HISTORY_MAX; /* its slot in the ring */
      hist_seqs[n_hist_recs++ % MAX_RECS] = seq;
      continue;
    }
    kept++;
    rec_t *r = &recs[n_recs++];
    r->type = (int)a[i].type;
    r->target = a[i].target;
    r->op = a[i].opcode;
    r->code = a[i].close_code;
    r->frame = dup_bytes(a[i].frame, a[i].frame ? a[i].frame_len : 0);
    r->frame_len = a[i].frame ? a[i].frame_len : 0;
    r->data = dup_bytes(a[i].data, a[i].len);
    r->len = a[i].len;
    r->n_rcpt = a[i].n_recipients;
    for (size_t k = 0; k < a[i].n_recipients && k < MAX_RCPT; k++)
      r->rcpt[k] = a[i].recipients[k];
    if (a[i].type == WSE_ACT_SEND || a[i].type == WSE_ACT_BROADCAST)
      frames_ok &= frame_valid(&a[i], a[i].opcode);
    if (a[i].type == WSE_ACT_CLOSE)
      frames_ok &= frame_valid(&a[i], WSE_OP_CLOSE) ||
                   (a[i].frame_len >= 4 && a[i].data == a[i].frame + 4);
    if (a[i].type == WSE_ACT_BROADCAST) frames_ok &= a[i].n_recipients > 0;
  }
  wse_app_actions_clear(app);
  return kept + (n > MAX_RECS ? n - MAX_RECS : 0);
}

/* ---- requests ---------------------------------------------------------- */

typedef struct req {
  wse_header_t h[16];
  wse_request_t r;
} req_t;

static wse_str_t S(const char *s) {
  wse_str_t x = {s, strlen(s)};
  return x;
}

static void req_init(req_t *q, const char *method, const char *target) {
  memset(q, 0, sizeof *q);
  q->r.method = S(method);
  q->r.target = S(target);
  q->r.http_version = 11;
  q->r.headers = q->h;
}

static void req_hdr(req_t *q, const char *name, const char *value) {
  q->h[q->r.n_headers].name = S(name);
  q->h[q->r.n_headers++].value = S(value);
}

/* The RFC 6455 §1.3 example handshake. */
static void req_ws(req_t *q, const char *target) {
  req_init(q, "GET", target);
  req_hdr(q, "Host", "example.com");
  req_hdr(q, "Upgrade", "websocket");
  req_hdr(q, "Connection", "keep-alive, Upgrade");
  req_hdr(q, "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
  req_hdr(q, "Sec-WebSocket-Version", "13");
}

static void seed_id(uint8_t seed, uint8_t out[16]) {
  for (int i = 0; i < 16; i++) out[i] = (uint8_t)(seed * 31 + i * 7);
}

static wse_sid_t sid_of(uint8_t seed) {
  wse_sid_t id;
  seed_id(seed, id.b);
  return id;
}

/* "xxxxxxxxxxxxxxxxxxxxxx\0" for a seed. */
typedef struct { char s[WSE_SID_LEN + 1]; } sidstr_t;
static sidstr_t sid_str(uint8_t seed) {
  sidstr_t o;
  wse_sid_t id = sid_of(seed);
  wse_sid_format(&id, o.s);
  o.s[WSE_SID_LEN] = 0;
  return o;
}

static wse_response_t last_resp;

/* Upgrade + open; returns the handle (actions left queued) or the error. */
static int32_t ws_connect(wse_app_t *app, const char *target, uint8_t seed,
                          uint64_t now) {
  req_t q;
  uint8_t ent[16];
  req_ws(&q, target);
  seed_id(seed, ent);
  int32_t h = wse_app_upgrade(app, &q.r, ent, now, NULL, &last_resp);
  if (h < 0) return h;
  int r = wse_app_open(app, (uint32_t)h, now);
  return r < 0 ? r : h;
}

/* Payloads and bodies reach the app against a PROT_NONE guard page. */
static int ws_text(wse_app_t *app, int32_t h, const char *s, uint64_t now) {
  guard_t g = guard_copy(s, strlen(s));
  int r = wse_app_message(app, (uint32_t)h, WSE_OP_TEXT, g.data, strlen(s), now);
  guard_free(&g);
  return r;
}

static int http(wse_app_t *app, const char *method, const char *target,
                const char *body, wse_response_t *resp) {
  req_t q;
  req_init(&q, method, target);
  req_hdr(&q, "Host", "example.com");
  size_t n = body ? strlen(body) : 0;
  guard_t g = guard_copy(body, n);
  int st = wse_app_http(app, &q.r, body ? g.data : NULL, n, 5000, resp);
  guard_free(&g);
  return st;
}

/* ---- topics and attachments --------------------------------------------- */

/* Topic i of session s in join order ({NULL, 0} past the last one). */
static inline wse_str_t topic_of(wse_app_t *app, const wse_session_t *s, size_t i) {
  wse_str_t t = {NULL, 0};
  if (s && wse_app_session_topic(app, s, i, &t) != WSE_OK) t.p = NULL, t.n = 0;
  return t;
}

/* 1 when s's topics are exactly `want` (NULL-terminated), in join order. */
static inline int topics_are(wse_app_t *app, const wse_session_t *s,
                      const char *const *want) {
  size_t i = 0;
  if (!s) return 0;
  for (; want[i]; i++) {
    wse_str_t t = topic_of(app, s, i);
    if (t.n != strlen(want[i]) || memcmp(t.p, want[i], t.n) != 0) return 0;
  }
  return s->n_topics == i && topic_of(app, s, i).p == NULL;
}

/* The same for a decoded attachment. */
static inline int att_topics_are(const wse_attachment_t *a, const char *const *want) {
  size_t i = 0;
  if (!a) return 0;
  for (; want[i]; i++)
    if (i >= a->n_topics || a->topics[i].n != strlen(want[i]) ||
        memcmp(a->topics[i].p, want[i], a->topics[i].n) != 0)
      return 0;
  return a->n_topics == i;
}

/* A live session's attachment, as the core queues it in its ATTACH. */
static inline long encode_session(wse_app_t *app, const wse_session_t *s,
                           uint8_t *buf, size_t cap) {
  wse_attachment_t t;
  memset(&t, 0, sizeof t);
  t.id = s->id;
  t.joined_at_ms = s->joined_at_ms;
  t.last_seen_ms = s->last_seen_ms;
  t.pattern.p = s->pattern;
  t.pattern.n = s->pattern_len;
  for (; t.n_topics < s->n_topics && t.n_topics < WSE_TOPICS_MAX; t.n_topics++)
    t.topics[t.n_topics] = topic_of(app, s, t.n_topics);
  t.user = s->user;
  t.user_len = s->user_len;
  return wse_attachment_encode(&t, buf, cap);
}

/* A recorded ATTACH decoded (its slices point into r->data, valid until
 * the next drain); NULL when it does not decode. */
static inline wse_attachment_t *decode_rec(const rec_t *r, wse_attachment_t *d) {
  memset(d, 0, sizeof *d);
  return wse_attachment_decode(r->data, r->len, d) == WSE_OK ? d : NULL;
}

/* ---- a counting, size-checking allocator -------------------------------- */

typedef struct counting {
  long allocs, frees, live;
  long fail_at;    /* allocation number that fails (0 = never) */
  long bad_sizes;  /* free/realloc told a size other than the allocated one */
} counting_t;

/* Each block carries its size in a 16-byte prefix. */
static inline void *c_wrap(void *raw, size_t n) {
  if (!raw) return NULL;
  memcpy(raw, &n, sizeof n);
  return (uint8_t *)raw + 16;
}
static inline void *c_raw(counting_t *c, void *p, size_t n) {
  size_t had;
  uint8_t *raw = (uint8_t *)p - 16;
  memcpy(&had, raw, sizeof had);
  if (had != n) c->bad_sizes++;
  return raw;
}
static inline int c_fails(counting_t *c) {
  c->allocs++;
  return c->fail_at && c->allocs == c->fail_at;
}
static inline void *c_alloc(void *ud, size_t n) {
  counting_t *c = ud;
  if (c_fails(c)) return NULL;
  c->live++;
  return c_wrap(malloc(n + 16), n);
}
static inline void *c_realloc(void *ud, void *p, size_t o, size_t n) {
  counting_t *c = ud;
  if (c_fails(c)) return NULL;
  if (!p) return c->live++, c_wrap(malloc(n + 16), n);
  return c_wrap(realloc(c_raw(c, p, o), n + 16), n);
}
static inline void c_free(void *ud, void *p, size_t n) {
  counting_t *c = ud;
  if (!p) return;
  c->frees++, c->live--;
  free(c_raw(c, p, n));
}

#endif
