/* app.c — the application layer: routes, handler contexts, the session map
 * (slots with a free list and generations, an id hash), topics (a hash of
 * names to doubly linked member lists of memberships; a session belongs to
 * up to WSE_TOPICS_MAX of them) and the action queue. Handlers never
 * do I/O: each operation becomes an action the host executes. Action bytes
 * live in an arena of blocks that stay put until wse_app_actions_clear,
 * which folds them into one reused block: no allocation in steady state. */
#include "internal.h"
#include "json.h"

#define F_OPEN 1u
#define ARENA_MIN 4096u
#define ARENA_KEEP ((size_t)1 << 20) /* bigger arenas are released at clear */
#define ATT_FIXED 45u                /* attachment bytes besides the fields */

typedef struct route_ent {
  wse_route_t r;
  wse_config_t cfg; /* the route's own copy when r.config was given */
} route_ent_t;

/* A topic ("room"): its members are memberships, linked in join order. A
 * slot lives while memberships refer to it (refs), members or not yet. Its
 * name has a block of its own (made with the slot, kept when the slot is
 * free): wse_app_session_topic hands out pointers to it, which must stay
 * put when the slot array grows. */
typedef struct room {
  int32_t head, tail, hnext; /* member memberships; hash chain / free list */
  uint32_t count;            /* linked members (open sessions) */
  uint32_t refs;             /* memberships, linked or pending */
  int32_t timers;   /* the topic's timers (a list through tmr_t.next) */
  uint16_t n_timers;
  uint64_t seq;      /* its last event's sequence number */
  struct hist *h;    /* its last events, or NULL */
  uint8_t len; /* 0 = free slot */
  char *name;  /* WSE_TOPIC_MAX bytes */
} room_t;

/* A timer: keyed by (topic, key), ordered in a binary min-heap by (due,
 * seq); it holds a ref on its topic's slot, whose name it shares. */
typedef struct tmr {
  uint64_t due, seq;
  int32_t room, next; /* the topic's timer list, or the free list */
  int32_t hpos;       /* index in the heap */
  uint16_t dn;
  uint8_t kn;
  uint8_t *mem;       /* the key (kn bytes), then the data (dn bytes) */
} tmr_t;

/* A topic's history: its last WSE_HISTORY_MAX events (oldest at head),
 * on the app's least-recently-appended list. It holds a ref on the slot. */
typedef struct hent {
  uint64_t seq;
  uint32_t n;
  uint8_t d[];
} hent_t;
typedef struct hist {
  hent_t *e[WSE_HISTORY_MAX];
  uint16_t head, n;
  int32_t room;
  struct hist *prev, *next;
} hist_t;

typedef struct timer_h {
  const char *prefix;
  size_t n;
  wse_timer_fn fn;
  void *user;
} timer_h_t;
#define TIMER_HANDLERS 8
#define TIMER_REC_V 1

/* A session's membership of one topic: in the topic's member list once the
 * session is open (linked), and in the session's own list (snext, join
 * order); free slots chain through snext. */
typedef struct memb {
  int32_t sess, room;
  int32_t next, prev; /* the topic's member list (linked only) */
  int32_t snext;      /* the session's list, or the free list */
  uint8_t linked;
} memb_t;

typedef struct blk {
  struct blk *next;
  size_t cap, used;
  uint64_t d[];
} blk_t;

struct wse_app {
  wse_allocator_t a;
  wse_config_t defaults;
  route_ent_t *routes;
  size_t n_routes, cap_routes;
  wse_http_route_t *http;
  size_t n_http, cap_http;
  wse_session_t *s;
  size_t n_s, cap_s, sb_n;
  int32_t free_s, free_rm;
  int32_t *sb, *rb; /* hash buckets: sessions by id, rooms by name */
  room_t *rm;
  size_t n_rm, cap_rm, rb_n;
  memb_t *mb;
  size_t n_mb, cap_mb;
  int32_t free_mb;
  wse_action_t *act;
  size_t n_act, cap_act;
  blk_t *arena;
  char *rbuf; /* the last response's headers and body */
  size_t rbuf_cap;
  wse_app_stats_t st; /* .sessions and .rooms are live counts */
  wse_direct_send_fn direct; /* host fast path for SENDs (optional) */
  void *direct_ud;
  uint8_t deflate_off; /* host-wide: decline permessage-deflate offers */
  uint8_t attach_off;  /* the host keeps no attachments: no ATTACH actions */
  const char *hb[2];    /* the heartbeat pair (ping, pong), or NULL */
  uint16_t hb_n[2];
  tmr_t *tm;
  size_t n_tm, cap_tm;
  int32_t free_tm;
  int32_t *hp; /* the timer heap */
  size_t n_hp, cap_hp;
  uint64_t tm_seq;
  timer_h_t th[TIMER_HANDLERS];
  size_t n_th;
  hist_t *lru_head, *lru_tail; /* histories, least recently appended first */
  size_t hist_bytes, hist_cap;
  uint64_t seq_floor; /* above every sequence number whose history was dropped */
  uint32_t node;      /* cluster: this node's id (0: no cluster) */
  wse_remote_count_fn remote; /* cluster: members of a room on other nodes */
  void *remote_ud;
};

#if !WSE_WASM /* the cluster (native only; below, after the history) */
struct room;
static void cl_presence(wse_app_t *a, const struct room *m);
static int cl_bcast(wse_app_t *a, const char *room, size_t rn, unsigned op,
                    const void *p, size_t n, const wse_sid_t *ex, size_t nex);
static int cl_to(wse_app_t *a, const wse_sid_t *id, unsigned kind,
                 unsigned x, const void *p, size_t n);
static size_t cl_remote(wse_app_t *a, const char *room, size_t n);
#endif

enum { K_UPGRADE = 1, K_WS, K_HTTP, K_TIMER };

struct wse_ctx {
  wse_app_t *app;
  wse_session_t *s;
  void *user;
  uint64_t now;
  int kind, dirty, status;
  size_t body_n;
};

/* ---- memory ----------------------------------------------------------- */

static void *grow(wse_app_t *a, void *p, size_t *cap, size_t need,
                  size_t el) {
  if (need <= *cap) return p;
  size_t nc = *cap ? *cap : 8;
  while (nc < need) nc *= 2;
  void *q = p ? wse__realloc(&a->a, p, *cap * el, nc * el)
              : wse__alloc(&a->a, nc * el);
  if (q) *cap = nc;
  return q;
}

/* Fresh empty buckets when `want` outgrew them (NULL: nothing to redo). */
static int32_t *rebucket(wse_app_t *a, int32_t **b, size_t *n, size_t want) {
  if (*n >= want) return NULL;
  int32_t *nb = wse__alloc(&a->a, want * sizeof *nb);
  if (!nb) return NULL; /* keep the old ones: longer chains, still right */
  wse__free(&a->a, *b, *n * sizeof *nb);
  wse__memset(nb, 0xFF, want * sizeof *nb);
  *b = nb;
  *n = want;
  return nb;
}

static uint32_t hash(const void *p, size_t n) {
  const uint8_t *b = (const uint8_t *)p;
  uint32_t h = 2166136261u;
  while (n--) h = (h ^ *b++) * 16777619u;
  return h;
}

static void *arena(wse_app_t *a, size_t n) {
  blk_t *b = a->arena;
  if (n > ((size_t)-1) / 4) return NULL;
  n = (n + 7) & ~(size_t)7;
  if (!b || b->cap - b->used < n) {
    size_t cap = b ? b->cap * 2 : ARENA_MIN;
    if (cap < n) cap = n;
    blk_t *nb = wse__alloc(&a->a, sizeof *nb + cap);
    if (!nb) return NULL;
    nb->next = b;
    nb->cap = cap;
    nb->used = 0;
    a->arena = b = nb;
  }
  b->used += n;
  return (uint8_t *)b->d + b->used - n;
}

static void arena_free(wse_app_t *a) {
  size_t total = 0;
  for (blk_t *b = a->arena, *next; b; b = next) {
    next = b->next;
    total += b->cap;
    wse__free(&a->a, b, sizeof *b + b->cap);
  }
  a->arena = NULL;
  if (total <= ARENA_KEEP) { /* one block that holds what this call needed */
    arena(a, total);
    if (a->arena) a->arena->used = 0;
  }
}

static int rbuf_reserve(wse_app_t *a, size_t n) {
  if (n <= a->rbuf_cap) return WSE_OK;
  char *q = grow(a, a->rbuf, &a->rbuf_cap, n, 1);
  if (!q) return WSE_ENOMEM;
  a->rbuf = q;
  return WSE_OK;
}

/* ---- sessions and rooms ---------------------------------------------- */

static int32_t *sbucket(wse_app_t *a, const wse_sid_t *id) {
  return &a->sb[hash(id->b, 16) & (a->sb_n - 1)];
}

static void slink(wse_app_t *a, int32_t h) {
  int32_t *k = sbucket(a, &a->s[h].id);
  a->s[h].wse__hnext = *k;
  *k = h;
}

wse_session_t *wse_app_session(wse_app_t *a, uint32_t h) {
  return a && h < a->n_s && (a->s[h].wse__gen & 1) ? &a->s[h] : NULL;
}

wse_session_t *wse_app_find(wse_app_t *a, const wse_sid_t *id) {
  if (!a || !id) return NULL;
  for (int32_t h = *sbucket(a, id); h >= 0; h = a->s[h].wse__hnext)
    if (wse__memeq(a->s[h].id.b, id->b, 16)) return &a->s[h];
  return NULL;
}

static int is_open(const wse_session_t *s) {
  return s && (s->wse__flags & F_OPEN);
}

static int32_t sess_new(wse_app_t *a, const wse_sid_t *id) {
  int32_t h = a->free_s;
  if (wse_app_find(a, id)) return WSE_EEXIST;
  if (h >= 0) {
    a->free_s = a->s[h].wse__hnext;
  } else {
    wse_session_t *q = grow(a, a->s, &a->cap_s, a->n_s + 1, sizeof *q);
    if (!q) return WSE_ENOMEM;
    a->s = q;
    if (rebucket(a, &a->sb, &a->sb_n, a->cap_s))
      for (size_t i = 0; i < a->n_s; i++)
        if (a->s[i].wse__gen & 1) slink(a, (int32_t)i);
    h = (int32_t)a->n_s++;
    a->s[h].wse__gen = 0;
  }
  wse_session_t *s = &a->s[h];
  uint32_t gen = s->wse__gen + 1; /* odd: live */
  wse__memset(s, 0, sizeof *s);
  s->id = *id;
  s->handle = (uint32_t)h;
  s->wse__gen = gen;
  s->wse__memb = -1;
  slink(a, h);
  a->st.sessions++;
  return h;
}

static int32_t *rbucket(wse_app_t *a, const char *name, size_t n) {
  return &a->rb[hash(name, n) & (a->rb_n - 1)];
}

static int32_t room_find(wse_app_t *a, const char *name, size_t n) {
  if (!name || !n || n > WSE_TOPIC_MAX) return -1;
  for (int32_t r = *rbucket(a, name, n); r >= 0; r = a->rm[r].hnext)
    if (a->rm[r].len == n && wse__memeq(a->rm[r].name, name, n)) return r;
  return -1;
}

static void rlink(wse_app_t *a, int32_t r) {
  int32_t *k = rbucket(a, a->rm[r].name, a->rm[r].len);
  a->rm[r].hnext = *k;
  *k = r;
}

/* The topic's slot, made when missing. */
static int32_t room_get(wse_app_t *a, const char *name, size_t n) {
  int32_t r = room_find(a, name, n);
  if (r >= 0) return r;
  if ((r = a->free_rm) >= 0) {
    a->free_rm = a->rm[r].hnext;
  } else {
    char *nm = wse__alloc(&a->a, WSE_TOPIC_MAX);
    room_t *q = nm ? grow(a, a->rm, &a->cap_rm, a->n_rm + 1, sizeof *q) : NULL;
    if (!q) {
      wse__free(&a->a, nm, WSE_TOPIC_MAX);
      return WSE_ENOMEM;
    }
    a->rm = q;
    if (rebucket(a, &a->rb, &a->rb_n, a->cap_rm))
      for (size_t i = 0; i < a->n_rm; i++)
        if (a->rm[i].len) rlink(a, (int32_t)i);
    r = (int32_t)a->n_rm++;
    a->rm[r].name = nm;
  }
  room_t *m = &a->rm[r];
  m->head = m->tail = -1;
  m->count = m->refs = 0;
  m->timers = -1;
  m->n_timers = 0;
  m->seq = a->seq_floor;
  m->h = NULL;
  m->len = (uint8_t)n;
  wse__memmove(m->name, name, n); /* name may be this free slot's old one */
  rlink(a, r);
  return r;
}

static void room_unref(wse_app_t *a, int32_t r) {
  room_t *m = &a->rm[r];
  if (--m->refs) return;
  int32_t *k = rbucket(a, m->name, m->len);
  while (*k != r) k = &a->rm[*k].hnext;
  *k = m->hnext;
  m->len = 0;
  m->hnext = a->free_rm;
  a->free_rm = r;
}

/* Into the topic's member list, at the tail: members are visited in join
 * order. */
static void memb_link(wse_app_t *a, int32_t k) {
  memb_t *x = &a->mb[k];
  room_t *m = &a->rm[x->room];
  if (x->linked) return;
  x->linked = 1;
  x->next = -1;
  x->prev = m->tail;
  if (m->tail >= 0) a->mb[m->tail].next = k;
  else m->head = k;
  m->tail = k;
  if (m->count++ == 0) a->st.rooms++;
#if !WSE_WASM
  if (a->node) cl_presence(a, m);
#endif
}

static void memb_unlink(wse_app_t *a, int32_t k) {
  memb_t *x = &a->mb[k];
  room_t *m = &a->rm[x->room];
  if (!x->linked) return;
  if (x->prev >= 0) a->mb[x->prev].next = x->next;
  else m->head = x->next;
  if (x->next >= 0) a->mb[x->next].prev = x->prev;
  else m->tail = x->prev;
  x->linked = 0;
  x->next = x->prev = -1;
  if (--m->count == 0) a->st.rooms--;
#if !WSE_WASM
  if (a->node) cl_presence(a, m);
#endif
}

/* The session's membership of topic r, or -1 (*prev: the one before it). */
static int32_t memb_of(wse_app_t *a, const wse_session_t *s, int32_t r,
                       int32_t *prev) {
  int32_t p = -1;
  for (int32_t k = s->wse__memb; k >= 0; p = k, k = a->mb[k].snext)
    if (a->mb[k].room == r) {
      if (prev) *prev = p;
      return k;
    }
  return -1;
}

/* Record s in topic `name` (at the end of its own list); linked when open. */
static int memb_add(wse_app_t *a, wse_session_t *s, const char *name,
                    size_t n) {
  int32_t r = room_get(a, name, n), k;
  if (r < 0) return r;
  if (memb_of(a, s, r, NULL) >= 0) return WSE_OK;
  if (s->n_topics >= WSE_TOPICS_MAX) {
    if (!a->rm[r].refs) a->rm[r].refs = 1, room_unref(a, r);
    return WSE_ENOSPC;
  }
  if ((k = a->free_mb) >= 0) {
    a->free_mb = a->mb[k].snext;
  } else {
    memb_t *q = grow(a, a->mb, &a->cap_mb, a->n_mb + 1, sizeof *q);
    if (!q) {
      if (!a->rm[r].refs) a->rm[r].refs = 1, room_unref(a, r);
      return WSE_ENOMEM;
    }
    a->mb = q;
    k = (int32_t)a->n_mb++;
  }
  memb_t *x = &a->mb[k];
  x->sess = (int32_t)s->handle;
  x->room = r;
  x->next = x->prev = x->snext = -1;
  x->linked = 0;
  a->rm[r].refs++;
  int32_t *t = &s->wse__memb;
  while (*t >= 0) t = &a->mb[*t].snext;
  *t = k;
  s->n_topics++;
  if (s->wse__flags & F_OPEN) memb_link(a, k);
  return WSE_OK;
}

static void memb_drop(wse_app_t *a, wse_session_t *s, int32_t k, int32_t prev) {
  memb_t *x = &a->mb[k];
  memb_unlink(a, k);
  if (prev >= 0) a->mb[prev].snext = x->snext;
  else s->wse__memb = x->snext;
  room_unref(a, x->room);
  x->sess = x->room = -1;
  x->snext = a->free_mb;
  a->free_mb = k;
  s->n_topics--;
}

static void memb_drop_all(wse_app_t *a, wse_session_t *s) {
  while (s->wse__memb >= 0) memb_drop(a, s, s->wse__memb, -1);
}

/* An opening (or restored) session becomes a member of what it joined. */
static void memb_link_all(wse_app_t *a, wse_session_t *s) {
  for (int32_t k = s->wse__memb; k >= 0; k = a->mb[k].snext) memb_link(a, k);
}

static void sess_free(wse_app_t *a, int32_t h) {
  wse_session_t *s = &a->s[h];
  memb_drop_all(a, s);
  int32_t *k = sbucket(a, &s->id);
  while (*k != h) k = &a->s[*k].wse__hnext;
  *k = s->wse__hnext;
  wse__free(&a->a, s->user, s->user_len);
  s->user = NULL;
  s->user_len = 0;
  s->wse__flags = 0;
  s->wse__gen++;
  s->wse__hnext = a->free_s;
  a->free_s = h;
  a->st.sessions--;
}

int32_t wse_app_room_next(wse_app_t *a, const char *room, size_t n,
                          int32_t h) {
  int32_t r = room_find(a, room, n), k;
  if (r < 0) return -1;
  if (h < 0) {
    k = a->rm[r].head;
  } else {
    wse_session_t *s = wse_app_session(a, (uint32_t)h);
    if (!s || (k = memb_of(a, s, r, NULL)) < 0 || !a->mb[k].linked) return -1;
    k = a->mb[k].next;
  }
  return k < 0 ? -1 : a->mb[k].sess;
}

int wse_app_session_topic(const wse_app_t *a, const wse_session_t *s,
                          size_t i, wse_str_t *out) {
  if (!a || !s || !out) return WSE_EINVAL;
  int32_t k = s->wse__memb;
  while (k >= 0 && i--) k = a->mb[k].snext;
  if (k < 0) return out->p = NULL, out->n = 0, WSE_ENOTFOUND;
  const room_t *m = &a->rm[a->mb[k].room];
  out->p = m->name;
  out->n = m->len;
  return WSE_OK;
}

/* ---- actions ---------------------------------------------------------- */

static wse_action_t *act(wse_app_t *a, wse_action_type_t t, uint32_t target) {
  wse_action_t *q = grow(a, a->act, &a->cap_act, a->n_act + 1, sizeof *q);
  if (!q) return NULL;
  a->act = q;
  q += a->n_act++;
  wse__memset(q, 0, sizeof *q);
  q->type = t;
  q->target = target;
  return q;
}

/* Frame p once into the arena; nrec > 0 reserves the recipients array. */
static wse_action_t *queue_msg(wse_app_t *a, wse_action_type_t t,
                               uint32_t target, unsigned op, const void *p,
                               size_t n, size_t nrec) {
  size_t fl = wse_frame_message_size(n, 0), rl = nrec * sizeof(uint32_t);
  uint8_t *m = arena(a, rl + fl);
  wse_action_t *x = m ? act(a, t, target) : NULL;
  if (!x) return NULL;
  x->opcode = op;
  x->frame = m + rl;
  x->frame_len =
      (size_t)wse_frame_message(m + rl, fl, op, 0, (const uint8_t *)p, n, 0);
  x->data = x->frame + x->frame_len - n;
  x->len = n;
  x->recipients = nrec ? (const uint32_t *)(void *)m : NULL;
  x->n_recipients = nrec;
  nrec += !nrec;
  a->st.messages_out += nrec;
  a->st.bytes_out += (uint64_t)n * nrec;
  return x;
}

static int bad_payload(unsigned op, const void *p, size_t n) {
  return (op != WSE_OP_TEXT && op != WSE_OP_BINARY) || (n && !p);
}

static int send_session(wse_app_t *a, wse_session_t *s, unsigned op,
                        const void *p, size_t n) {
  if (bad_payload(op, p, n)) return WSE_EINVAL;
  if (!is_open(s)) return WSE_ENOTFOUND;
  /* nothing queued before it: writing now keeps the order of actions */
  if (a->direct && !a->n_act &&
      a->direct(a->direct_ud, s, op, (const uint8_t *)p, n)) {
    a->st.messages_out++;
    a->st.bytes_out += n;
    return WSE_OK;
  }
  return queue_msg(a, WSE_ACT_SEND, s->handle, op, p, n, 0) ? WSE_OK
                                                            : WSE_ENOMEM;
}

void wse_app_set_deflate(wse_app_t *a, int allowed) { a->deflate_off = !allowed; }
void wse_app_set_attachments(wse_app_t *a, int on) { a->attach_off = !on; }

void wse_app_set_direct_send(wse_app_t *a, wse_direct_send_fn fn, void *ud) {
  a->direct = fn;
  a->direct_ud = ud;
}

static int queue_close(wse_app_t *a, wse_session_t *s, unsigned code,
                       const char *reason, size_t n) {
  if (!is_open(s)) return WSE_ENOTFOUND;
  if ((!wse_close_code_valid(code) && code != WSE_CLOSE_NO_STATUS) ||
      (n && !reason) || !wse_utf8_valid((const uint8_t *)reason, n))
    return WSE_EINVAL;
  uint8_t *f = arena(a, 127);
  wse_action_t *x = f ? act(a, WSE_ACT_CLOSE, s->handle) : NULL;
  if (!x) return WSE_ENOMEM;
  x->close_code = code;
  x->frame = f;
  x->frame_len = wse_frame_close(f, code, reason, n);
  x->data = f + (x->frame_len > 2 ? 4 : 2); /* the reason, after the code */
  x->len = x->frame_len - (size_t)(x->data - f);
  return WSE_OK;
}

static int queue_attach(wse_app_t *a, wse_session_t *s) {
  wse_attachment_t t;
  size_t n = ATT_FIXED + s->pattern_len + s->user_len;
  t.id = s->id;
  t.joined_at_ms = s->joined_at_ms;
  t.last_seen_ms = s->last_seen_ms;
  t.pattern.p = s->pattern;
  t.pattern.n = s->pattern_len;
  t.n_topics = 0;
  for (int32_t k = s->wse__memb; k >= 0; k = a->mb[k].snext) {
    const room_t *m = &a->rm[a->mb[k].room];
    t.topics[t.n_topics].p = m->name;
    t.topics[t.n_topics++].n = m->len;
    n += 1 + m->len;
  }
  t.user = s->user;
  t.user_len = s->user_len;
  uint8_t *b = arena(a, n);
  wse_action_t *x = b ? act(a, WSE_ACT_ATTACH, s->handle) : NULL;
  if (!x) return WSE_ENOMEM;
  long k = wse_attachment_encode(&t, b, n);
  if (k < 0) return a->n_act--, (int)k;
  x->data = b;
  x->len = (size_t)k;
  return WSE_OK;
}

size_t wse_app_actions(wse_app_t *a, const wse_action_t **out) {
  *out = a->act;
  return a->n_act;
}

void wse_app_actions_clear(wse_app_t *a) {
  blk_t *b = a->arena;
  a->n_act = 0;
  if (b && (b->next || b->cap > ARENA_KEEP)) arena_free(a);
  else if (b) b->used = 0;
}

/* ---- handler context -------------------------------------------------- */

static void ctx_init(wse_ctx_t *c, wse_app_t *a, wse_session_t *s, int kind,
                     uint64_t now) {
  wse__memset(c, 0, sizeof *c);
  c->app = a;
  c->s = s;
  c->kind = kind;
  c->now = now;
  if (s) c->user = a->routes[s->route].r.user;
}

/* End of a host call: one ATTACH when the handler changed the session. */
static int finish(wse_ctx_t *c) {
  if (c->dirty && is_open(c->s) && !c->app->attach_off)
    return queue_attach(c->app, c->s);
  return WSE_OK;
}

wse_session_t *wse_ctx_session(wse_ctx_t *c) { return c->s; }
wse_app_t *wse_ctx_app(wse_ctx_t *c) { return c->app; }
void *wse_ctx_user(wse_ctx_t *c) { return c->user; }
uint64_t wse_ctx_now(wse_ctx_t *c) { return c->now; }
void *wse_ctx_alloc(wse_ctx_t *c, size_t n) { return arena(c->app, n); }

int wse_send(wse_ctx_t *c, unsigned opcode, const void *p, size_t n) {
  return c->s ? send_session(c->app, c->s, opcode, p, n) : WSE_EINVAL;
}

int wse_send_to(wse_ctx_t *c, const wse_sid_t *id, unsigned opcode,
                const void *p, size_t n) {
  return wse_app_send_to(c->app, id, opcode, p, n);
}

int wse_app_send_to(wse_app_t *a, const wse_sid_t *id, unsigned opcode,
                    const void *p, size_t n) {
  wse_session_t *s = wse_app_find(a, id);
#if !WSE_WASM
  if (!s && wse_sid_remote(a, id))
    return bad_payload(opcode, p, n) ||
                   (opcode == WSE_OP_TEXT && !wse_utf8_valid((const uint8_t *)p, n))
               ? WSE_EINVAL
               : cl_to(a, id, 'S', opcode, p, n);
#endif
  return send_session(a, s, opcode, p, n);
}

static int excluded(const wse_session_t *s, const wse_sid_t *ex, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (wse__memeq(s->id.b, ex[i].b, 16)) return 1;
  return 0;
}

/* A BROADCAST to this node's members of topic r but those in except[]. */
static int bcast_local(wse_app_t *a, int32_t r, unsigned opcode,
                       const void *p, size_t n, const wse_sid_t *except,
                       size_t n_except) {
  int32_t h;
  size_t cnt = 0;
  if (r < 0 || !a->rm[r].count) return 0;
  /* Ids are unique in the map and every member is in it: a few excluded
   * ids become handles (one hash lookup each), compared per member. */
  int32_t exh[8];
  size_t nh = 0, cap = a->rm[r].count;
  int by_handle = n_except <= 8;
  if (by_handle)
    for (size_t i = 0; i < n_except; i++) {
      const wse_session_t *e = wse_app_find(a, &except[i]);
      if (e) exh[nh++] = (int32_t)e->handle;
    }
  /* recipients first in the arena, room for every member */
  wse_action_t *x = queue_msg(a, WSE_ACT_BROADCAST, 0, opcode, p, n, cap);
  if (!x) return WSE_ENOMEM;
  uint32_t *rec = (uint32_t *)(void *)(x->frame - cap * sizeof *rec);
  for (int32_t mk = a->rm[r].head; mk >= 0; mk = a->mb[mk].next) {
    size_t k = 0;
    h = a->mb[mk].sess;
    if (by_handle)
      while (k < nh && exh[k] != h) k++;
    if (by_handle ? k < nh : excluded(&a->s[h], except, n_except)) continue;
    rec[cnt++] = (uint32_t)h;
  }
  x->n_recipients = cnt;
  a->st.messages_out -= cap - cnt;
  a->st.bytes_out -= (uint64_t)n * (cap - cnt);
  if (!cnt) {
    a->n_act--; /* everyone excluded: no action (its arena bytes idle) */
    return 0;
  }
  return (int)cnt;
}

int wse_broadcast(wse_ctx_t *c, const char *room, size_t room_len,
                  unsigned opcode, const void *p, size_t n,
                  const wse_sid_t *except, size_t n_except) {
  wse_app_t *a = c->app;
  if (bad_payload(opcode, p, n) || (n_except && !except)) return WSE_EINVAL;
#if !WSE_WASM
  /* what the other nodes would refuse is refused here, before any of it
   * is queued (they check text as untrusted input) */
  if (a->node && (n_except > 0xffff ||
                  (opcode == WSE_OP_TEXT && !wse_utf8_valid((const uint8_t *)p, n))))
    return WSE_EINVAL;
#endif
  int cnt = bcast_local(a, room_find(a, room, room_len), opcode, p, n, except,
                        n_except);
#if !WSE_WASM
  if (a->node && cnt >= 0 && room_len && room_len <= WSE_TOPIC_MAX) {
    int k = cl_bcast(a, room, room_len, opcode, p, n, except, n_except);
    if (k < 0) return k;
    cnt += k;
  }
#endif
  return cnt;
}

int wse_close(wse_ctx_t *c, unsigned code, const char *reason, size_t n) {
  return c->s ? queue_close(c->app, c->s, code, reason, n) : WSE_EINVAL;
}

int wse_close_session(wse_ctx_t *c, const wse_sid_t *id, unsigned code,
                      const char *reason, size_t n) {
  wse_session_t *s = wse_app_find(c->app, id);
#if !WSE_WASM
  if (!s && wse_sid_remote(c->app, id)) {
    if ((!wse_close_code_valid(code) && code != WSE_CLOSE_NO_STATUS) ||
        (n && !reason) || !wse_utf8_valid((const uint8_t *)reason, n))
      return WSE_EINVAL;
    return cl_to(c->app, id, 'C', code, reason, n);
  }
#endif
  return queue_close(c->app, s, code, reason, n);
}

/* In on_upgrade the session is not open yet: the topic is recorded and the
 * session becomes a member when it opens. */
int wse_join(wse_ctx_t *c, const char *room, size_t n) {
  wse_session_t *s = c->s;
  if (!s || !room || !n || n > WSE_TOPIC_MAX ||
      !wse_utf8_valid((const uint8_t *)room, n))
    return WSE_EINVAL;
  uint8_t had = s->n_topics;
  int rc = memb_add(c->app, s, room, n);
  c->dirty |= s->n_topics != had;
  return rc;
}

int wse_leave_topic(wse_ctx_t *c, const char *room, size_t n) {
  wse_session_t *s = c->s;
  int32_t r, k, prev;
  if (!s) return WSE_EINVAL;
  if ((r = room_find(c->app, room, n)) < 0 || (k = memb_of(c->app, s, r, &prev)) < 0)
    return WSE_ENOTFOUND;
  memb_drop(c->app, s, k, prev);
  c->dirty = 1;
  return WSE_OK;
}

int wse_leave(wse_ctx_t *c) {
  if (!c->s) return WSE_EINVAL;
  c->dirty |= c->s->n_topics != 0;
  memb_drop_all(c->app, c->s);
  return WSE_OK;
}

size_t wse_room_count(wse_ctx_t *c, const char *room, size_t n) {
  int32_t r = room_find(c->app, room, n);
  size_t k = r < 0 ? 0 : c->app->rm[r].count;
#if !WSE_WASM
  if (c->app->node) k += cl_remote(c->app, room, n);
#endif
  return k;
}

int wse_ctx_topic(wse_ctx_t *c, size_t i, wse_str_t *out) {
  return wse_app_session_topic(c->app, c->s, i, out);
}

int wse_set_user(wse_ctx_t *c, const void *p, size_t n) {
  wse_session_t *s = c->s;
  if (!s || n > WSE_USERDATA_MAX || (n && !p)) return WSE_EINVAL;
  uint8_t *q = s->user;
  if (n != s->user_len) {
    q = n ? wse__alloc(&c->app->a, n) : NULL;
    if (n && !q) return WSE_ENOMEM;
  }
  if (n) wse__memmove(q, p, n);
  if (q != s->user) wse__free(&c->app->a, s->user, s->user_len);
  s->user = q;
  s->user_len = (uint16_t)n;
  c->dirty = 1;
  return WSE_OK;
}

/* {"error":"<msg>"} into rbuf after `hn` bytes of headers already there. */
static size_t error_body(wse_app_t *a, size_t hn, const char *msg) {
  size_t mn = wse__strlen(msg);
  if (rbuf_reserve(a, hn + 6 * mn + 12)) return 0;
  wse_jw_t w = {a->rbuf + hn, 0, a->rbuf_cap - hn};
  wse_jw_lit(&w, "{\"error\":");
  wse_jw_str(&w, msg, mn);
  wse_jw_lit(&w, "}");
  return w.n;
}

int wse_reject(wse_ctx_t *c, int status, const char *message) {
  if (c->kind != K_UPGRADE || status < 400 || status > 599) return WSE_EINVAL;
  c->status = status;
  c->body_n = error_body(c->app, 0, message ? message : "");
  return WSE_EPOLICY;
}

int wse_respond(wse_ctx_t *c, int status, const char *json, size_t n) {
  if (c->kind != K_HTTP || status < 100 || status > 999 || (n && !json))
    return WSE_EINVAL;
  if (rbuf_reserve(c->app, n)) return WSE_ENOMEM;
  if (n) wse__memmove(c->app->rbuf, json, n);
  c->status = status;
  c->body_n = n;
  return WSE_OK;
}

/* ---- routes ----------------------------------------------------------- */

static wse_str_t path_of(wse_str_t t) {
  size_t e = 0;
  while (e < t.n && t.p[e] != '?' && t.p[e] != '#') e++;
  t.n = e;
  return t;
}

/* "/chat/:room" against a path; a :param takes one non-empty segment. */
static int match(const char *pat, wse_str_t path, wse_params_t *prm) {
  size_t i = 0;
  const char *q = pat;
  prm->n = 0;
  while (*q) {
    if (*q != '/' || i >= path.n || path.p[i] != '/') return 0;
    q++, i++;
    if (*q == ':') {
      const char *nm = ++q;
      size_t st = i;
      while (*q && *q != '/') q++;
      while (i < path.n && path.p[i] != '/') i++;
      if (i == st || prm->n == WSE_MAX_PARAMS) return 0;
      prm->name[prm->n].p = nm;
      prm->name[prm->n].n = (size_t)(q - nm);
      prm->value[prm->n].p = path.p + st;
      prm->value[prm->n++].n = i - st;
    } else {
      for (; *q && *q != '/'; q++, i++)
        if (i >= path.n || path.p[i] != *q) return 0;
      if (i < path.n && path.p[i] != '/') return 0;
    }
  }
  return i == path.n;
}

static int match_ws(wse_app_t *a, wse_str_t target, wse_params_t *prm) {
  wse_str_t path = path_of(target);
  for (size_t i = 0; i < a->n_routes; i++)
    if (match(a->routes[i].r.pattern, path, prm)) return (int)i;
  return -1;
}

static const wse_config_t *route_cfg(wse_app_t *a, int i) {
  return a->routes[i].r.config ? &a->routes[i].cfg : &a->defaults;
}

const wse_config_t *wse_app_route_config(const wse_app_t *a, size_t i) {
  if (!a || i >= a->n_routes) return NULL;
  return a->routes[i].r.config ? &a->routes[i].cfg : &a->defaults;
}

int wse_app_match(wse_app_t *a, wse_str_t target, const wse_config_t **cfg) {
  wse_params_t prm;
  int i = match_ws(a, target, &prm);
  if (i >= 0 && cfg) *cfg = route_cfg(a, i);
  return i >= 0;
}

static wse_str_t durable_key(const char *pattern, const char *key,
                             const wse_params_t *prm) {
  if (!prm->n) return (wse_str_t){pattern, wse__strlen(pattern)};
  if (key) {
    size_t kn = wse__strlen(key);
    for (size_t i = 0; i < prm->n; i++)
      if (prm->name[i].n == kn && wse__memeq(prm->name[i].p, key, kn))
        return prm->value[i];
  }
  return prm->value[0];
}

int wse_app_route_info(wse_app_t *a, wse_str_t target, wse_route_info_t *out) {
  wse_params_t prm;
  wse__memset(out, 0, sizeof *out);
  out->index = -1;
  int i = match_ws(a, target, &prm);
  if (i >= 0) {
    const wse_route_t *r = &a->routes[i].r;
    out->kind = WSE_ROUTE_WS;
    out->index = i;
    out->pattern = r->pattern;
    out->durable = r->durable;
    if (r->durable) out->key = durable_key(r->pattern, r->durable_key, &prm);
    return out->kind;
  }
  wse_str_t path = path_of(target);
  for (size_t k = 0; k < a->n_http; k++) {
    const wse_http_route_t *r = &a->http[k];
    if (!match(r->pattern, path, &prm)) continue;
    out->kind = WSE_ROUTE_HTTP;
    out->index = (int)k;
    out->pattern = r->pattern;
    out->durable = r->durable;
    if (r->durable) out->key = durable_key(r->pattern, r->durable_key, &prm);
    return out->kind;
  }
  return WSE_ROUTE_NONE;
}

int wse_app_route(wse_app_t *a, const wse_route_t *r) {
  if (!a || !r || !r->pattern || r->pattern[0] != '/' ||
      wse__strlen(r->pattern) > WSE_PATTERN_MAX || a->n_routes >= 0xFFFF)
    return WSE_EINVAL;
  /* a pattern names its sessions' route in their attachments: one each */
  for (size_t i = 0; i < a->n_routes; i++) {
    const char *q = a->routes[i].r.pattern, *p = r->pattern;
    while (*q && *q == *p) q++, p++;
    if (*q == *p) return WSE_EEXIST;
  }
  route_ent_t *q = grow(a, a->routes, &a->cap_routes, a->n_routes + 1,
                        sizeof *q);
  if (!q) return WSE_ENOMEM;
  a->routes = q;
  q += a->n_routes;
  q->r = *r;
  if (r->config) q->cfg = *r->config;
  return (int)a->n_routes++;
}

int wse_app_http_route(wse_app_t *a, const wse_http_route_t *r) {
  if (!a || !r || !r->method || !r->pattern || r->pattern[0] != '/' ||
      !r->handler)
    return WSE_EINVAL;
  wse_http_route_t *q = grow(a, a->http, &a->cap_http, a->n_http + 1,
                             sizeof *q);
  if (!q) return WSE_ENOMEM;
  a->http = q;
  q[a->n_http] = *r;
  return (int)a->n_http++;
}

/* ---- the app and host calls ------------------------------------------- */

int wse_app_new(wse_app_t **out, const wse_allocator_t *al,
                const wse_config_t *defaults) {
  if (!out || !al || !al->alloc_fn || !al->free_fn) return WSE_EINVAL;
  wse_app_t *a = wse__alloc(al, sizeof *a);
  if (!a) return WSE_ENOMEM;
  wse__memset(a, 0, sizeof *a);
  a->a = *al;
  if (defaults) a->defaults = *defaults;
  else wse_config_default(&a->defaults);
  a->free_s = a->free_rm = a->free_mb = a->free_tm = -1;
  a->hist_cap = WSE_HISTORY_BYTES;
  if (!rebucket(a, &a->sb, &a->sb_n, 16) ||
      !rebucket(a, &a->rb, &a->rb_n, 16) || rbuf_reserve(a, 256)) {
    wse_app_free(a);
    return WSE_ENOMEM;
  }
  *out = a;
  return WSE_OK;
}

const wse_config_t *wse_app_config(const wse_app_t *a) { return &a->defaults; }

static void hist_drop(wse_app_t *a, struct hist *h);

void wse_app_free(wse_app_t *a) {
  if (!a) return;
  while (a->lru_head) hist_drop(a, a->lru_head); /* before the names go */
  const wse_allocator_t al = a->a;
  for (size_t i = 0; i < a->n_s; i++)
    if (a->s[i].wse__gen & 1) wse__free(&al, a->s[i].user, a->s[i].user_len);
  for (size_t i = 0; i < a->n_rm; i++) wse__free(&al, a->rm[i].name, WSE_TOPIC_MAX);
  for (size_t i = 0; i < a->n_tm; i++)
    wse__free(&al, a->tm[i].mem, (size_t)a->tm[i].kn + a->tm[i].dn);
  for (blk_t *b = a->arena, *next; b; b = next) {
    next = b->next;
    wse__free(&al, b, sizeof *b + b->cap);
  }
#define FREE_ARR(ptr, cap) wse__free(&al, (ptr), (cap) * sizeof *(ptr))
  FREE_ARR(a->routes, a->cap_routes);
  FREE_ARR(a->http, a->cap_http);
  FREE_ARR(a->s, a->cap_s);
  FREE_ARR(a->sb, a->sb_n);
  FREE_ARR(a->rm, a->cap_rm);
  FREE_ARR(a->rb, a->rb_n);
  FREE_ARR(a->mb, a->cap_mb);
  FREE_ARR(a->act, a->cap_act);
  FREE_ARR(a->rbuf, a->rbuf_cap);
  FREE_ARR(a->tm, a->cap_tm);
  FREE_ARR(a->hp, a->cap_hp);
#undef FREE_ARR
  wse__free(&al, a, sizeof *a);
}

/* An error response: status, extra headers, {"error":msg}. */
static int fail(wse_app_t *a, wse_response_t *r, int status, const char *hdr,
                const char *msg) {
  size_t hn = hdr ? wse__strlen(hdr) : 0;
  r->status = status;
  r->headers_len = r->body_len = 0;
  r->headers = r->body = "";
  if (!rbuf_reserve(a, hn)) {
    if (hn) wse__memcpy(a->rbuf, hdr, hn);
    r->body_len = error_body(a, hn, msg);
    r->headers = a->rbuf;
    r->headers_len = r->body_len ? hn : 0;
    r->body = a->rbuf + hn;
  }
  return status;
}

static int fail_upgrade(wse_app_t *a, wse_response_t *r,
                        const wse_upgrade_t *u) {
  char hdr[96];
  int hn = wse_upgrade_headers(NULL, u, hdr, sizeof hdr - 1);
  hdr[hn > 0 ? hn : 0] = 0;
  return fail(a, r, u->status, hn > 0 ? hdr : NULL,
              u->error ? u->error : "bad request");
}

static int accept_resp(wse_app_t *a, const wse_config_t *cfg,
                       const wse_upgrade_t *u, wse_response_t *r) {
  const char *proto = u->subprotocol >= 0 ? cfg->subprotocols[u->subprotocol]
                                          : NULL;
  size_t cap = 320 + (proto ? wse__strlen(proto) : 0);
  int n;
  if (rbuf_reserve(a, cap) ||
      (n = wse_upgrade_headers(cfg, u, a->rbuf, cap)) < 0)
    return WSE_ENOMEM;
  r->status = 101;
  r->headers = a->rbuf;
  r->headers_len = (size_t)n;
  r->body = "";
  r->body_len = 0;
  return WSE_OK;
}

int wse_app_upgrade(wse_app_t *a, const wse_request_t *req,
                    const uint8_t entropy[16], uint64_t now_ms,
                    wse_upgrade_t *u, wse_response_t *resp) {
  wse_upgrade_t tmp;
  wse_params_t prm;
  wse_ctx_t c;
  int ri, rc;
  if (!u) u = &tmp;
  wse__memset(u, 0, sizeof *u);
  u->subprotocol = -1;
  if ((ri = match_ws(a, req->target, &prm)) < 0) {
    u->status = fail(a, resp, 404, NULL, "not found");
    return WSE_ENOTFOUND;
  }
  const wse_config_t *cfg = route_cfg(a, ri);
  const wse_route_t *rt = &a->routes[ri].r;
  if (wse_upgrade_validate(cfg, req, u) != WSE_OK) {
    fail_upgrade(a, resp, u);
    return WSE_EPROTO;
  }
#if !WSE_WASM /* the edge runtime negotiates permessage-deflate itself */
  if (cfg->deflate && !a->deflate_off) wse_deflate_negotiate(cfg, u);
#endif
  wse_sid_t id;
  wse__memcpy(id.b, entropy, 16);
#if !WSE_WASM
  if (a->node) /* the id names its node: a send to it finds its way */
    for (int i = 0; i < 4; i++) id.b[i] = (uint8_t)(a->node >> (8 * i));
#endif
  int32_t h = sess_new(a, &id);
  if (h < 0) {
    u->status = fail(a, resp, 500, NULL, "internal error");
    return h;
  }
  wse_session_t *s = &a->s[h];
  s->route = (uint16_t)ri;
  s->pattern = rt->pattern;
  s->pattern_len = (uint8_t)wse__strlen(rt->pattern);
  s->joined_at_ms = s->last_seen_ms = now_ms;
  ctx_init(&c, a, s, K_UPGRADE, now_ms);
  if (rt->on_upgrade && rt->on_upgrade(&c, req, &prm) != 0) {
    sess_free(a, h);
    if (c.status) {
      resp->status = u->status = c.status;
      resp->headers = resp->body = a->rbuf;
      resp->headers_len = 0;
      resp->body_len = c.body_n;
    } else {
      u->status = fail(a, resp, 403, NULL, "forbidden");
    }
    return WSE_EPOLICY;
  }
  if ((rc = accept_resp(a, cfg, u, resp)) < 0) {
    sess_free(a, h);
    u->status = fail(a, resp, 500, NULL, "internal error");
    return rc;
  }
  return h;
}

int wse_app_open(wse_app_t *a, uint32_t h, uint64_t now_ms) {
  wse_session_t *s = wse_app_session(a, h);
  wse_ctx_t c;
  if (!s || is_open(s)) return s ? WSE_EINVAL : WSE_ENOTFOUND;
  s->wse__flags |= F_OPEN;
  memb_link_all(a, s);
  ctx_init(&c, a, s, K_WS, now_ms);
  c.dirty = 1;
  const wse_route_t *rt = &a->routes[s->route].r;
  if (rt->on_open) rt->on_open(&c);
  return finish(&c);
}

int wse_app_message(wse_app_t *a, uint32_t h, unsigned opcode,
                    const uint8_t *p, size_t n, uint64_t now_ms) {
  wse_session_t *s = wse_app_session(a, h);
  wse_ctx_t c;
  if (!is_open(s)) return WSE_ENOTFOUND;
  if (bad_payload(opcode, p, n)) return WSE_EINVAL;
  s->last_seen_ms = now_ms;
  a->st.messages_in++;
  a->st.bytes_in += n;
  if (opcode == WSE_OP_TEXT && a->hb[0] && n == a->hb_n[0] &&
      wse__memeq(p, a->hb[0], n))
    return send_session(a, s, WSE_OP_TEXT, a->hb[1], a->hb_n[1]);
  ctx_init(&c, a, s, K_WS, now_ms);
  const wse_route_t *rt = &a->routes[s->route].r;
  if (rt->on_message) rt->on_message(&c, opcode, p ? p : (const uint8_t *)"", n);
  return c.dirty ? finish(&c) : WSE_OK; /* the common case: no attachment */
}

int wse_app_heartbeat(wse_app_t *a, const char *ping, const char *pong) {
  size_t pn = ping ? wse__strlen(ping) : 0, qn = pong ? wse__strlen(pong) : 0;
  if (!ping != !pong) return WSE_EINVAL;
  if (ping && (!pn || !qn || pn > WSE_HEARTBEAT_MAX || qn > WSE_HEARTBEAT_MAX ||
               !wse_utf8_valid((const uint8_t *)ping, pn) ||
               !wse_utf8_valid((const uint8_t *)pong, qn)))
    return WSE_EINVAL;
  a->hb[0] = ping;
  a->hb[1] = pong;
  a->hb_n[0] = (uint16_t)pn;
  a->hb_n[1] = (uint16_t)qn;
  return WSE_OK;
}

const char *wse_app_heartbeat_get(const wse_app_t *a, int pong) {
  return a->hb[pong ? 1 : 0];
}

int wse_app_close(wse_app_t *a, uint32_t h, unsigned code,
                  const uint8_t *reason, size_t n, uint64_t now_ms) {
  wse_session_t *s = wse_app_session(a, h);
  wse_ctx_t c;
  if (!s) return WSE_ENOTFOUND;
  const wse_route_t *rt = &a->routes[s->route].r;
  if (is_open(s) && rt->on_close) {
    ctx_init(&c, a, s, K_WS, now_ms);
    rt->on_close(&c, code, reason ? reason : (const uint8_t *)"", n);
  }
  sess_free(a, (int32_t)h);
  return WSE_OK;
}

int wse_app_error(wse_app_t *a, uint32_t h, int err, uint64_t now_ms) {
  wse_session_t *s = wse_app_session(a, h);
  wse_ctx_t c;
  if (!s) return WSE_ENOTFOUND;
  const wse_route_t *rt = &a->routes[s->route].r;
  ctx_init(&c, a, s, K_WS, now_ms);
  if (rt->on_error) rt->on_error(&c, err);
  return finish(&c);
}

int wse_app_http(wse_app_t *a, const wse_request_t *req, const uint8_t *body,
                 size_t n, uint64_t now_ms, wse_response_t *resp) {
  wse_params_t prm;
  wse_str_t path = path_of(req->target);
  char allow[128];
  wse_jw_t w = {allow, 0, sizeof allow - 3};
  wse_jw_lit(&w, "Allow: ");
  for (size_t i = 0; i < a->n_http; i++) {
    const wse_http_route_t *r = &a->http[i];
    size_t mn = wse__strlen(r->method);
    if (!match(r->pattern, path, &prm)) continue;
    if (req->method.n == mn && wse__memeq(req->method.p, r->method, mn)) {
      wse_ctx_t c;
      ctx_init(&c, a, NULL, K_HTTP, now_ms);
      c.user = r->user;
      r->handler(&c, req, &prm, body ? body : (const uint8_t *)"", n);
      if (!c.status) return fail(a, resp, 500, NULL, "no response");
      resp->status = c.status;
      resp->headers = resp->body = a->rbuf;
      resp->headers_len = 0;
      resp->body_len = c.body_n;
      return c.status;
    }
    if (w.n > 7) wse_jw_lit(&w, ", ");
    wse_jw_raw(&w, r->method, mn);
  }
  if (w.n > 7) {
    wse_jw_lit(&w, "\r\n");
    allow[w.n <= w.cap ? w.n : 0] = 0;
    return fail(a, resp, 405, allow, "method not allowed");
  }
  int ri = match_ws(a, req->target, &prm);
  if (ri < 0) return fail(a, resp, 404, NULL, "not found");
  if (!wse_is_upgrade_request(req))
    return fail(a, resp, 400, NULL, "This endpoint requires a WebSocket upgrade");
  wse_upgrade_t u;
  if (wse_upgrade_validate(route_cfg(a, ri), req, &u) != WSE_OK)
    return fail_upgrade(a, resp, &u);
  /* a valid upgrade belongs in wse_app_upgrade: the host called us wrongly */
  return fail(a, resp, 500, NULL, "upgrade request passed to wse_app_http");
}

/* The route an attachment names, by its pattern (-1: none has it now). */
static int route_by_pattern(wse_app_t *a, const char *p, size_t n) {
  for (size_t i = 0; i < a->n_routes; i++) {
    const char *q = a->routes[i].r.pattern;
    size_t qn = wse__strlen(q);
    if (qn == n && wse__memeq(q, p, n)) return (int)i;
  }
  return -1;
}

long wse_app_restore(wse_app_t *a, const uint8_t *const *att,
                     const size_t *lens, size_t n, int32_t *handles,
                     uint64_t now_ms) {
  wse_attachment_t t;
  long done = 0;
  (void)now_ms;
  a->st.restores++;
  for (size_t i = 0; i < n; i++) {
    int32_t h = wse_attachment_decode(att[i], lens[i], &t);
    int ri = h == WSE_OK ? route_by_pattern(a, t.pattern.p, t.pattern.n) : -1;
    if (h == WSE_OK && ri < 0) h = WSE_ATT_EROUTE;
    if (h == WSE_OK) h = sess_new(a, &t.id);
    if (h >= 0) {
      wse_session_t *s = &a->s[h];
      uint8_t *user = t.user_len ? wse__alloc(&a->a, t.user_len) : NULL;
      int rc = t.user_len && !user ? WSE_ENOMEM : WSE_OK;
      s->route = (uint16_t)ri;
      s->pattern = a->routes[ri].r.pattern;
      s->pattern_len = (uint8_t)t.pattern.n;
      s->joined_at_ms = t.joined_at_ms;
      s->last_seen_ms = t.last_seen_ms;
      s->restored = 1;
      s->wse__flags = F_OPEN;
      for (size_t k = 0; k < t.n_topics && rc == WSE_OK; k++)
        rc = memb_add(a, s, t.topics[k].p, t.topics[k].n);
      if (rc != WSE_OK) {
        wse__free(&a->a, user, t.user_len);
        sess_free(a, h);
        h = rc;
      } else {
        if (user) wse__memcpy(user, t.user, t.user_len);
        s->user = user;
        s->user_len = (uint16_t)t.user_len;
        done++;
      }
    }
    handles[i] = h;
  }
  a->st.restored += (uint64_t)done;
  return done;
}

long wse_app_expire(wse_app_t *a, uint64_t now_ms, uint64_t *next_ms) {
  uint64_t next = 0;
  long n = 0;
  for (size_t h = 0; h < a->n_s; h++) {
    wse_session_t *s = &a->s[h];
    if (!(s->wse__gen & 1) || !is_open(s)) continue;
    uint32_t life = route_cfg(a, s->route)->session_timeout_s;
    if (!life) continue;
    uint64_t end = s->joined_at_ms + (uint64_t)life * 1000;
    if (end <= now_ms) {
      if (queue_close(a, s, WSE_CLOSE_TIMEOUT, "timeout", 7) == WSE_OK) n++;
    } else if (!next || end < next) {
      next = end;
    }
  }
  if (next_ms) *next_ms = next;
  return n;
}

void wse_app_stats(const wse_app_t *a, wse_app_stats_t *out) { *out = a->st; }

void wse_app_stats_seed(wse_app_t *a, uint64_t restores, uint64_t restored) {
  a->st.restores += restores;
  a->st.restored += restored;
}

/* ---- timers ------------------------------------------------------------ */

static int tless(const wse_app_t *a, int32_t x, int32_t y) {
  const tmr_t *p = &a->tm[x], *q = &a->tm[y];
  return p->due < q->due || (p->due == q->due && p->seq < q->seq);
}

static void hset(wse_app_t *a, size_t i, int32_t t) {
  a->hp[i] = t;
  a->tm[t].hpos = (int32_t)i;
}

/* Move the heap entry at i up or down to its place. */
static void hfix(wse_app_t *a, size_t i) {
  int32_t t = a->hp[i];
  while (i && tless(a, t, a->hp[(i - 1) / 2])) {
    hset(a, i, a->hp[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  for (size_t c; (c = 2 * i + 1) < a->n_hp; i = c) {
    if (c + 1 < a->n_hp && tless(a, a->hp[c + 1], a->hp[c])) c++;
    if (!tless(a, a->hp[c], t)) break;
    hset(a, i, a->hp[c]);
  }
  hset(a, i, t);
}

static int32_t timer_find(wse_app_t *a, int32_t r, const char *key, size_t kn) {
  for (int32_t t = r >= 0 ? a->rm[r].timers : -1; t >= 0; t = a->tm[t].next)
    if (a->tm[t].kn == kn && wse__memeq(a->tm[t].mem, key, kn)) return t;
  return -1;
}

static void timer_drop(wse_app_t *a, int32_t t) {
  tmr_t *x = &a->tm[t];
  room_t *m = &a->rm[x->room];
  int32_t last = a->hp[--a->n_hp];
  if (last != t) {
    hset(a, (size_t)x->hpos, last);
    hfix(a, (size_t)x->hpos);
  }
  int32_t *k = &m->timers;
  while (*k != t) k = &a->tm[*k].next;
  *k = x->next;
  m->n_timers--;
  wse__free(&a->a, x->mem, (size_t)x->kn + x->dn);
  x->mem = NULL;
  room_unref(a, x->room);
  x->next = a->free_tm;
  a->free_tm = t;
  a->st.timers--;
}

static void put_le(uint8_t *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* The TIMER action for t: its record (set) or only its id (removed). */
static int queue_timer(wse_app_t *a, int32_t t, int set) {
  const tmr_t *x = &a->tm[t];
  const room_t *m = &a->rm[x->room];
  size_t idn = 2u + m->len + x->kn, n = 1 + idn + (set ? 10u + x->dn : 0);
  uint8_t *b = arena(a, n);
  wse_action_t *q = b ? act(a, WSE_ACT_TIMER, 0) : NULL;
  if (!q) return WSE_ENOMEM;
  b[0] = TIMER_REC_V;
  b[1] = m->len;
  wse__memcpy(b + 2, m->name, m->len);
  b[2 + m->len] = x->kn;
  wse__memcpy(b + 3 + m->len, x->mem, x->kn);
  if (set) {
    put_le(b + 1 + idn, x->due, 8);
    put_le(b + 9 + idn, x->dn, 2);
    if (x->dn) wse__memcpy(b + 11 + idn, x->mem + x->kn, x->dn);
  }
  q->opcode = (unsigned)set;
  q->frame = b;
  q->frame_len = n;
  q->data = b + 1;
  q->len = idn;
  return WSE_OK;
}

/* Create or replace timer (room, key); quiet: no action (a load). */
static int timer_put(wse_app_t *a, const char *room, size_t rn,
                     const char *key, size_t kn, uint64_t due,
                     const void *data, size_t dn, int quiet) {
  if (!room || !rn || rn > WSE_TOPIC_MAX || !key || !kn ||
      kn > WSE_TIMER_KEY_MAX || dn > WSE_TIMER_DATA_MAX || (dn && !data) ||
      !wse_utf8_valid((const uint8_t *)room, rn) ||
      !wse_utf8_valid((const uint8_t *)key, kn))
    return WSE_EINVAL;
  int32_t r = room_get(a, room, rn), t;
  if (r < 0) return r;
  uint8_t *mem = wse__alloc(&a->a, kn + dn);
  if (!mem) goto nomem;
  if ((t = timer_find(a, r, key, kn)) >= 0) {
    tmr_t *x = &a->tm[t];
    wse__free(&a->a, x->mem, (size_t)x->kn + x->dn);
    x->mem = mem;
  } else {
    if (a->rm[r].n_timers >= WSE_TIMERS_MAX) {
      wse__free(&a->a, mem, kn + dn);
      if (!a->rm[r].refs) a->rm[r].refs = 1, room_unref(a, r);
      return WSE_ENOSPC;
    }
    int32_t *hq = grow(a, a->hp, &a->cap_hp, a->n_hp + 1, sizeof *hq);
    if (hq) a->hp = hq;
    if (hq && (t = a->free_tm) >= 0) {
      a->free_tm = a->tm[t].next;
    } else if (hq) {
      tmr_t *q = grow(a, a->tm, &a->cap_tm, a->n_tm + 1, sizeof *q);
      if (!q) hq = NULL;
      else a->tm = q, t = (int32_t)a->n_tm++;
    }
    if (!hq) {
      wse__free(&a->a, mem, kn + dn);
      goto nomem;
    }
    tmr_t *x = &a->tm[t];
    x->room = r;
    x->mem = mem;
    x->next = a->rm[r].timers;
    a->rm[r].timers = t;
    a->rm[r].n_timers++;
    a->rm[r].refs++;
    x->hpos = (int32_t)a->n_hp;
    a->hp[a->n_hp++] = t;
    a->st.timers++;
  }
  tmr_t *x = &a->tm[t];
  x->due = due ? due : 1;
  x->seq = ++a->tm_seq;
  x->kn = (uint8_t)kn;
  x->dn = (uint16_t)dn;
  wse__memcpy(mem, key, kn);
  if (dn) wse__memcpy(mem + kn, data, dn);
  hfix(a, (size_t)x->hpos);
  return quiet ? WSE_OK : queue_timer(a, t, 1);
nomem:
  if (!a->rm[r].refs) a->rm[r].refs = 1, room_unref(a, r);
  return WSE_ENOMEM;
}

int wse_timer_set(wse_ctx_t *c, const char *room, size_t room_n,
                  const char *key, size_t key_n, uint64_t delay_ms,
                  const void *data, size_t n) {
  if (delay_ms > WSE_TIMER_DELAY_MAX) return WSE_EINVAL;
  return timer_put(c->app, room, room_n, key, key_n, c->now + delay_ms, data,
                   n, 0);
}

int wse_timer_cancel(wse_ctx_t *c, const char *room, size_t room_n,
                     const char *key, size_t key_n) {
  wse_app_t *a = c->app;
  int32_t t = timer_find(a, room_find(a, room, room_n), key, key_n);
  if (t < 0) return WSE_ENOTFOUND;
  int rc = queue_timer(a, t, 0);
  if (rc == WSE_OK) timer_drop(a, t);
  return rc;
}

int wse_timer_get(wse_ctx_t *c, const char *room, size_t room_n,
                  const char *key, size_t key_n, wse_timer_t *out) {
  wse_app_t *a = c->app;
  int32_t r = room_find(a, room, room_n), t = timer_find(a, r, key, key_n);
  if (t < 0) return WSE_ENOTFOUND;
  if (out) {
    const tmr_t *x = &a->tm[t];
    out->room.p = a->rm[r].name;
    out->room.n = a->rm[r].len;
    out->key.p = (const char *)x->mem;
    out->key.n = x->kn;
    out->data = x->mem + x->kn;
    out->len = x->dn;
    out->due_ms = x->due;
  }
  return WSE_OK;
}

size_t wse_timer_count(wse_ctx_t *c, const char *room, size_t room_n) {
  int32_t r = room_find(c->app, room, room_n);
  return r < 0 ? 0 : c->app->rm[r].n_timers;
}

int wse_app_timer_handler(wse_app_t *a, const char *prefix, wse_timer_fn fn,
                          void *user) {
  if (!prefix || !fn) return WSE_EINVAL;
  if (a->n_th >= TIMER_HANDLERS) return WSE_ENOSPC;
  timer_h_t *h = &a->th[a->n_th++];
  h->prefix = prefix;
  h->n = wse__strlen(prefix);
  h->fn = fn;
  h->user = user;
  return WSE_OK;
}

uint64_t wse_app_timer_next(const wse_app_t *a) {
  return a->n_hp ? a->tm[a->hp[0]].due : 0;
}

long wse_app_timers_run(wse_app_t *a, uint64_t now_ms) {
  uint64_t last = a->tm_seq;
  long ran = 0;
  while (a->n_hp) {
    int32_t t = a->hp[0];
    tmr_t *x = &a->tm[t];
    /* one set during this pass is due no earlier than now: every older
     * due timer comes before it in (due, seq) order */
    if (x->due > now_ms || x->seq > last) break;
    if (queue_timer(a, t, 0) < 0) break;
    /* the handler may set and cancel timers: it sees the key and data
     * taken out of the slot, and the room's name kept by a ref */
    int32_t r = x->room;
    wse_timer_t v;
    size_t kn = x->kn, dn = x->dn;
    uint8_t *mem = x->mem;
    a->rm[r].refs++;
    v.room.p = a->rm[r].name;
    v.room.n = a->rm[r].len;
    v.key.p = (const char *)mem;
    v.key.n = kn;
    v.data = mem + kn;
    v.len = dn;
    v.due_ms = x->due;
    x->mem = NULL;
    x->kn = 0;
    x->dn = 0;
    timer_drop(a, t);
    for (size_t i = 0; i < a->n_th; i++) {
      const timer_h_t *h = &a->th[i];
      if (h->n > kn || !wse__memeq(h->prefix, mem, h->n)) continue;
      wse_ctx_t c;
      ctx_init(&c, a, NULL, K_TIMER, now_ms);
      c.user = h->user;
      h->fn(&c, &v);
      break;
    }
    room_unref(a, r);
    wse__free(&a->a, mem, kn + dn);
    ran++;
  }
  return ran;
}

static uint64_t get_le(const uint8_t *p, int n) {
  uint64_t v = 0;
  while (n--) v = v << 8 | p[n];
  return v;
}

int wse_app_timer_load(wse_app_t *a, const uint8_t *p, size_t n) {
  size_t rn, kn, o;
  if (!p || n < 2 || p[0] != TIMER_REC_V) return WSE_EINVAL;
  rn = p[1];
  o = 2 + rn;
  if (o >= n) return WSE_EINVAL;
  kn = p[o++];
  if (o + kn + 10 > n || o + kn + 10 + get_le(p + o + kn + 8, 2) != n)
    return WSE_EINVAL;
  return timer_put(a, (const char *)p + 2, rn, (const char *)p + o, kn,
                   get_le(p + o + kn, 8), p + o + kn + 10, n - o - kn - 10, 1);
}


/* ---- history ---------------------------------------------------------- */

static void hent_free(wse_app_t *a, hent_t *e) {
  a->hist_bytes -= sizeof *e + e->n;
  wse__free(&a->a, e, sizeof *e + e->n);
}

static void lru_unlink(wse_app_t *a, hist_t *h) {
  if (h->prev) h->prev->next = h->next;
  else a->lru_head = h->next;
  if (h->next) h->next->prev = h->prev;
  else a->lru_tail = h->prev;
  h->prev = h->next = NULL;
}

/* Drop a topic's history (memory bound): its sequence numbers stay above
 * what it had, through seq_floor, should its slot be made again. */
static void hist_drop(wse_app_t *a, hist_t *h) {
  int32_t r = h->room;
  if (a->rm[r].seq > a->seq_floor) a->seq_floor = a->rm[r].seq;
  while (h->n) {
    hent_free(a, h->e[h->head]);
    h->head = (uint16_t)((h->head + 1) % WSE_HISTORY_MAX);
    h->n--;
  }
  lru_unlink(a, h);
  a->hist_bytes -= sizeof *h;
  wse__free(&a->a, h, sizeof *h);
  a->rm[r].h = NULL;
  room_unref(a, r);
}

/* Append event `seq` of topic r (quiet: a load, no action). */
static int hist_put(wse_app_t *a, int32_t r, uint64_t seq, const void *p,
                    size_t n, int quiet) {
  room_t *m = &a->rm[r];
  hist_t *h = m->h;
  if (seq <= m->seq || (seq != m->seq + 1 && !quiet)) return WSE_EINVAL;
  hent_t *e = wse__alloc(&a->a, sizeof *e + n);
  if (!e) return WSE_ENOMEM;
  if (!h) {
    if (!(h = wse__alloc(&a->a, sizeof *h))) {
      wse__free(&a->a, e, sizeof *e + n);
      return WSE_ENOMEM;
    }
    wse__memset(h, 0, sizeof *h);
    h->room = r;
    m->h = h;
    m->refs++;
    a->hist_bytes += sizeof *h;
  } else {
    lru_unlink(a, h);
  }
  if (h->n == WSE_HISTORY_MAX) { /* the oldest goes */
    hent_free(a, h->e[h->head]);
    h->head = (uint16_t)((h->head + 1) % WSE_HISTORY_MAX);
    h->n--;
  }
  e->seq = seq;
  e->n = (uint32_t)n;
  if (n) wse__memcpy(e->d, p, n);
  h->e[(h->head + h->n++) % WSE_HISTORY_MAX] = e;
  a->hist_bytes += sizeof *e + n;
  m->seq = seq;
  h->prev = a->lru_tail; /* the most recent: at the tail */
  if (a->lru_tail) a->lru_tail->next = h;
  else a->lru_head = h;
  a->lru_tail = h;
  /* over the bound: other topics' histories go, least recent first, then
   * this one's oldest events (its newest is always kept) */
  while (a->hist_bytes > a->hist_cap && a->lru_head != h) hist_drop(a, a->lru_head);
  while (a->hist_bytes > a->hist_cap && h->n > 1) {
    hent_free(a, h->e[h->head]);
    h->head = (uint16_t)((h->head + 1) % WSE_HISTORY_MAX);
    h->n--;
  }
  if (quiet) return WSE_OK;
  /* the HISTORY action: [1][room length][room][u64 seq][event] */
  size_t rn = m->len, k = 1 + 1 + rn + 8;
  uint8_t *b = arena(a, k + n);
  wse_action_t *q = b ? act(a, WSE_ACT_HISTORY, (uint32_t)(seq % WSE_HISTORY_MAX)) : NULL;
  if (!q) return WSE_ENOMEM;
  b[0] = 1;
  b[1] = (uint8_t)rn;
  wse__memcpy(b + 2, m->name, rn);
  put_le(b + 2 + rn, seq, 8);
  if (n) wse__memcpy(b + k, p, n);
  q->frame = b;
  q->frame_len = k + n;
  q->data = b + k;
  q->len = n;
  q->opcode = WSE_OP_TEXT;
#if !WSE_WASM
  if (a->node) return cl_to(a, NULL, 'H', 0, b, k + n); /* to the others */
#endif
  return WSE_OK;
}

uint64_t wse_room_seq(wse_ctx_t *c, const char *room, size_t n) {
  int32_t r = room_find(c->app, room, n);
  return r < 0 ? c->app->seq_floor : c->app->rm[r].seq;
}

int wse_history_add(wse_ctx_t *c, const char *room, size_t n, uint64_t seq,
                    const void *p, size_t len) {
  wse_app_t *a = c->app;
  if (len > WSE_HISTORY_EVENT_MAX || (len && !p) ||
      !wse_utf8_valid((const uint8_t *)p, len) || !n || n > WSE_TOPIC_MAX ||
      !wse_utf8_valid((const uint8_t *)room, n))
    return WSE_EINVAL;
  int32_t r = room_get(a, room, n);
  if (r < 0) return r;
  int rc = hist_put(a, r, seq, p, len, 0);
  if (rc < 0 && !a->rm[r].refs) a->rm[r].refs = 1, room_unref(a, r);
  return rc;
}

long wse_history_replay(wse_ctx_t *c, const char *room, size_t n,
                        uint64_t since, uint64_t *oldest) {
  wse_app_t *a = c->app;
  int32_t r = room_find(a, room, n);
  hist_t *h = r >= 0 ? a->rm[r].h : NULL;
  long sent = 0;
  if (oldest) *oldest = h && h->n ? h->e[h->head]->seq : 0;
  if (!c->s) return WSE_EINVAL;
  for (uint16_t i = 0; h && i < h->n; i++) {
    const hent_t *e = h->e[(h->head + i) % WSE_HISTORY_MAX];
    if (e->seq <= since) continue;
    int rc = send_session(a, c->s, WSE_OP_TEXT, e->d, e->n);
    if (rc < 0) return rc;
    sent++;
  }
  return sent;
}

void wse_app_history_limit(wse_app_t *a, size_t max_bytes) {
  a->hist_cap = max_bytes;
  while (a->hist_bytes > a->hist_cap && a->lru_head) hist_drop(a, a->lru_head);
}

/* A HISTORY record as wse_app_history_load takes it (version, lengths,
 * UTF-8 room and event); the number is hist_put's to judge. */
static int hist_rec_ok(const uint8_t *p, size_t n) {
  if (!p || n < 2 || p[0] != 1 || n < 10u + p[1]) return 0;
  size_t rn = p[1], k = 10 + rn;
  return rn && rn <= WSE_TOPIC_MAX && n - k <= WSE_HISTORY_EVENT_MAX &&
         wse_utf8_valid(p + 2, rn) && wse_utf8_valid(p + k, n - k);
}

int wse_app_history_load(wse_app_t *a, const uint8_t *p, size_t n) {
  if (!hist_rec_ok(p, n)) return WSE_EINVAL;
  size_t rn = p[1], k = 10 + rn;
  int32_t r = room_get(a, (const char *)p + 2, rn);
  if (r < 0) return r;
  int rc = hist_put(a, r, get_le(p + 2 + rn, 8), p + k, n - k, 1);
  if (rc < 0 && !a->rm[r].refs) a->rm[r].refs = 1, room_unref(a, r);
  return rc;
}

void wse_app_history_floor(wse_app_t *a, uint64_t seq) {
  if (seq > a->seq_floor) a->seq_floor = seq;
  for (size_t i = 0; i < a->n_rm; i++)
    if (a->rm[i].len && a->rm[i].seq < seq) a->rm[i].seq = seq;
}

/* ---- HTTP helpers ----------------------------------------------------- */

long wse_query_param(wse_str_t t, const char *key, char *out, size_t cap) {
  size_t i = 0, kn = wse__strlen(key);
  while (i < t.n && t.p[i] != '?' && t.p[i] != '#') i++;
  while (i < t.n && t.p[i] != '#') { /* at '?' or '&' */
    size_t st = ++i, eq;
    while (i < t.n && t.p[i] != '&' && t.p[i] != '#') i++;
    for (eq = st; eq < i && t.p[eq] != '=';) eq++;
    if (eq - st != kn || !wse__memeq(t.p + st, key, kn)) continue;
    size_t o = 0;
    for (size_t j = eq + 1; j < i; j++) {
      uint8_t c = (uint8_t)t.p[j];
      if (c == '+') c = ' ';
      else if (c == '%') {
        int v = i - j > 2 ? wse__hex2(t.p + j + 1) : -1;
        if (v < 0) return -2;
        c = (uint8_t)v;
        j += 2;
      }
      if (o == cap) return -2;
      out[o++] = (char)c;
    }
    return (long)o;
  }
  return -1;
}


/* ---- cluster (native) --------------------------------------------------- */

uint32_t wse_sid_node(const wse_sid_t *id) {
  return (uint32_t)get_le(id->b, 4);
}

/* In every build (an app asks the same everywhere): at the edge, 0. */
int wse_sid_remote(const wse_app_t *a, const wse_sid_t *id) {
  return a && id && a->node && wse_sid_node(id) != a->node;
}

#if !WSE_WASM
/* Messages between nodes: [1][kind][u32 origin node (LE)] then
 *   'B' [opcode][room length][room][u16 n except][n x 16-byte id][payload]
 *   'S' [16-byte id][opcode][payload]
 *   'C' [16-byte id][u16 code][reason]
 *   'H' a HISTORY record ([1][room length][room][u64 seq][event]). */
#define CL_HDR 6u

int wse_app_cluster(wse_app_t *a, uint32_t node, wse_remote_count_fn fn,
                    void *ud) {
  if (!a || !node) return WSE_EINVAL;
  a->node = node;
  a->remote = fn;
  a->remote_ud = ud;
  return WSE_OK;
}


static size_t cl_remote(wse_app_t *a, const char *room, size_t n) {
  return a->remote && n && n <= WSE_TOPIC_MAX ? a->remote(a->remote_ud, room, n) : 0;
}

/* A PUBLISH of `n` bytes after the header (returned; NULL: no memory). */
static uint8_t *cl_msg(wse_app_t *a, unsigned kind, unsigned chan,
                       uint32_t target, size_t n, wse_action_t **out) {
  uint8_t *m = arena(a, CL_HDR + n);
  wse_action_t *x = m ? act(a, WSE_ACT_PUBLISH, target) : NULL;
  if (!x) return NULL;
  m[0] = 1;
  m[1] = (uint8_t)kind;
  put_le(m + 2, a->node, 4);
  x->opcode = chan;
  x->frame = m;
  x->frame_len = CL_HDR + n;
  *out = x;
  return m + CL_HDR;
}

static void cl_presence(wse_app_t *a, const room_t *m) {
  uint8_t *b = arena(a, m->len);
  wse_action_t *x = b ? act(a, WSE_ACT_PRESENCE, m->count) : NULL;
  if (!x) return; /* out of memory: the count is wrong until the next one */
  wse__memcpy(b, m->name, m->len);
  x->data = b;
  x->len = m->len;
}

/* Publish a broadcast; returns the members elsewhere it reaches. */
static int cl_bcast(wse_app_t *a, const char *room, size_t rn, unsigned op,
                    const void *p, size_t n, const wse_sid_t *ex, size_t nex) {
  wse_action_t *x;
  size_t k = 4 + rn + 16 * nex, far = cl_remote(a, room, rn);
  uint8_t *m = cl_msg(a, 'B', WSE_CHAN_ROOM, 0, k + n, &x);
  if (!m) return WSE_ENOMEM;
  m[0] = (uint8_t)op;
  m[1] = (uint8_t)rn;
  wse__memcpy(m + 2, room, rn);
  put_le(m + 2 + rn, nex, 2);
  for (size_t i = 0; i < nex; i++) {
    wse__memcpy(m + 4 + rn + 16 * i, ex[i].b, 16);
    if (wse_sid_remote(a, &ex[i]) && far) far--; /* a member elsewhere left out */
  }
  if (n) wse__memcpy(m + k, p, n);
  x->data = m + 2;
  x->len = rn;
  return (int)far;
}

/* 'S' or 'C' to node(id), or 'H' (p = the record) to its room's channel. */
static int cl_to(wse_app_t *a, const wse_sid_t *id, unsigned kind,
                 unsigned x, const void *p, size_t n) {
  wse_action_t *q;
  size_t k = kind == 'H' ? 0 : kind == 'S' ? 17 : 18;
  uint8_t *m = cl_msg(a, kind, id ? WSE_CHAN_NODE : WSE_CHAN_ROOM,
                      id ? wse_sid_node(id) : 0, k + n, &q);
  if (!m) return WSE_ENOMEM;
  if (id) wse__memcpy(m, id->b, 16);
  if (kind == 'S') m[16] = (uint8_t)x;
  else if (kind == 'C') put_le(m + 16, x, 2);
  if (n) wse__memcpy(m + k, p, n);
  if (kind == 'H') { /* the record's room */
    q->data = m + 2;
    q->len = m[1];
  }
  return WSE_OK;
}

/* A history record another node sent: WSE_EINVAL when malformed (as
 * wse_app_history_load would find it), WSE_EEXIST when its number is not
 * above the room's here (or the floor, for a room without history). */
static int cl_hist_check(wse_app_t *a, const uint8_t *p, size_t n) {
  if (!hist_rec_ok(p, n)) return WSE_EINVAL;
  size_t rn = p[1];
  int32_t r = room_find(a, (const char *)p + 2, rn);
  uint64_t seq = get_le(p + 2 + rn, 8);
  if (!seq) return WSE_EINVAL; /* numbers start at 1 */
  return seq <= (r >= 0 ? a->rm[r].seq : a->seq_floor) ? WSE_EEXIST : WSE_OK;
}

int wse_app_history_deliver(wse_app_t *a, const uint8_t *p, size_t n) {
  if (!a) return WSE_EINVAL;
  int rc = cl_hist_check(a, p, n);
  if (rc == WSE_EEXIST) return 0;
  if (rc < 0) return rc;
  size_t rn = p[1], k = 10 + rn;
  rc = wse_app_history_load(a, p, n);
  if (rc < 0) return rc;
  rc = bcast_local(a, room_find(a, (const char *)p + 2, rn), WSE_OP_TEXT, p + k,
                   n - k, NULL, 0);
  return rc < 0 ? rc : 1;
}

int wse_app_cluster_input(wse_app_t *a, const uint8_t *m, size_t n,
                          uint64_t now_ms) {
  (void)now_ms;
  if (!a || !a->node || !m || n < CL_HDR || m[0] != 1) return WSE_EINVAL;
  unsigned kind = m[1];
  if (get_le(m + 2, 4) == a->node) return WSE_OK; /* ours: delivered here */
  m += CL_HDR;
  n -= CL_HDR;
  if (kind == 'H') { /* EEXIST: that number was taken here meanwhile */
    int rc = cl_hist_check(a, m, n);
    return rc < 0 ? rc : wse_app_history_load(a, m, n);
  }
  if (kind == 'S' || kind == 'C') {
    if (n < (kind == 'S' ? 17u : 18u)) return WSE_EINVAL;
    wse_sid_t id;
    wse__memcpy(id.b, m, 16);
    wse_session_t *s = wse_app_find(a, &id);
    if (kind == 'C') { /* malformed before not found, as for 'S' */
      unsigned code = (unsigned)get_le(m + 16, 2);
      if ((!wse_close_code_valid(code) && code != WSE_CLOSE_NO_STATUS) ||
          !wse_utf8_valid(m + 18, n - 18))
        return WSE_EINVAL;
      return queue_close(a, s, code, (const char *)m + 18, n - 18);
    }
    if (m[16] == WSE_OP_TEXT && !wse_utf8_valid(m + 17, n - 17)) return WSE_EINVAL;
    return bad_payload(m[16], m + 17, n - 17) ? WSE_EINVAL
                                              : send_session(a, s, m[16], m + 17, n - 17);
  }
  if (kind != 'B' || n < 4) return WSE_EINVAL;
  size_t rn = m[1], nex, k;
  if (!rn || rn > WSE_TOPIC_MAX || n < 4 + rn) return WSE_EINVAL;
  nex = (size_t)get_le(m + 2 + rn, 2);
  k = 4 + rn + 16 * nex;
  if (n < k || bad_payload(m[0], m + k, n - k) ||
      (m[0] == WSE_OP_TEXT && !wse_utf8_valid(m + k, n - k)))
    return WSE_EINVAL;
  int rc = bcast_local(a, room_find(a, (const char *)m + 2, rn), m[0], m + k,
                       n - k, (const wse_sid_t *)(const void *)(m + 4 + rn), nex);
  return rc < 0 ? rc : WSE_OK;
}
#endif
