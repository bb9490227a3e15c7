/* cluster.c — wsedge processes sharing rooms through Redis pub/sub.
 *
 * Keys and channels (PREFIX "wsedge:"):
 *   r:ROOM       channel: a room's messages, subscribed by every node with
 *                a member in it (SUBSCRIBE on the first, UNSUBSCRIBE after
 *                the last)
 *   n:NODE       channel: send_to / close_session for a node's sessions
 *   presence     channel: "P NODE COUNT VER ROOM" (a room's member count
 *                on NODE), "A NODE" (alive, every TTL/3), "B NODE" (gone)
 *   p:NODE       hash ROOM -> "COUNT VER", expires TTL after NODE's last
 *                heartbeat: a node that dies stops counting within TTL
 *   node:NODE    key, same expiry (the node's id is taken while it lives)
 *   nodes        set of node ids (read at connect, stale ones removed)
 *   h:ROOM       list: the room's last WSE_HISTORY_MAX history records
 *
 * Two async connections on thread 0's loop (commands, subscriptions);
 * any thread queues commands under a mutex and wakes thread 0. While Redis
 * is away the queue keeps what other nodes must still get, up to
 * redis_queue_max bytes (then drops, counted); on reconnect (backoff 100 ms
 * doubling to 5 s) the node resubscribes, writes its presence again,
 * reloads the others' and sends what waited. A blocking connection, used
 * only when a room gets its first member on this node, reads the room's
 * history so the node numbers on where the cluster is. */
#define _GNU_SOURCE
#include "cluster.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "log.h"

#define P "wsedge:"
#define CL_BACKOFF_MAX 5000
/* What other nodes may make this one keep (Redis is trusted, but a bug or
 * a stranger on the channel must not grow us without bound): rooms known
 * only from other nodes' presence, and nodes. Past them the news is
 * dropped (logged once); rooms with members here are never refused. */
#define CL_REMOTE_ROOMS_MAX 1000000
#define CL_NODES_MAX 4096
#define CL_HISTORY_TTL "86400" /* a room's stored history outlives its last event by a day */

/* What a room looks like from here: members on this node, and on others. */
typedef struct cl_pc {
  uint32_t node, count;
  uint64_t ver;
} cl_pc_t;

typedef struct cl_room {
  struct cl_room *next;
  uint32_t local;           /* members on this node (PRESENCE actions) */
  uint32_t remote;          /* sum of pc[].count */
  uint8_t subscribed;
  uint8_t len;
  cl_pc_t *pc;              /* per other node */
  size_t n_pc, cap_pc;
  char name[];
} cl_room_t;

typedef struct cl_node {
  uint32_t id;
  uint64_t seen_ms;
} cl_node_t;

typedef struct cl_cmd {
  struct cl_cmd *next;
  uint8_t sub;              /* for the subscription connection */
  size_t len;
  char *cmd;                /* formatted (redisFormatCommandArgv) */
} cl_cmd_t;

struct wsn_cluster {
  wsn_server_t *srv;
  wsn_thread_t *t0;
  const wsn_opts_t *o;
  uint32_t node;
  char hex[9];
  char k_pres[32], k_node[32], c_node[32];

  redisAsyncContext *cmd, *sub;
  int cmd_ok, sub_ok;       /* connected */
  atomic_int up;            /* both connected and set up */
  int closing;
  int first_setup;          /* nothing to catch up on yet */
  int down_logged;
  int bound_logged;         /* over_bound said it once */
  uint32_t backoff_ms;
  uv_timer_t retry, beat;
  uv_async_t wake;

  uv_mutex_t qlock;         /* the outgoing queue (any thread) */
  cl_cmd_t *qh, *qt;
  size_t q_bytes;

  /* under the app lock */
  cl_room_t **tab;
  size_t tab_n, n_rooms;
  cl_node_t *nodes;
  size_t n_nodes, cap_nodes;
  uint64_t pver;            /* our presence version */
  int loading;              /* other nodes' presence being read */
  redisContext *sync;       /* blocking, for room history */

  atomic_uint_fast64_t published, received, dropped, reconnects, conflicts,
      malformed, syncs;
};

static wsn_cluster_t *CL(wsn_server_t *srv) { return srv->cluster; }

/* ---- the room table ------------------------------------------------------ */

static uint32_t hash(const char *p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 16777619u;
  return h;
}

static cl_room_t **slot(wsn_cluster_t *cl, const char *p, size_t n) {
  cl_room_t **k = &cl->tab[hash(p, n) & (cl->tab_n - 1)];
  while (*k && !((*k)->len == n && memcmp((*k)->name, p, n) == 0)) k = &(*k)->next;
  return k;
}

static cl_room_t *room_find(wsn_cluster_t *cl, const char *p, size_t n) {
  return cl->tab_n ? *slot(cl, p, n) : NULL;
}

static void over_bound(wsn_cluster_t *cl, const char *what) {
  if (!cl->bound_logged++)
    wsn_log(WSN_LOG_WARN, "cluster: more %s than this node keeps; further ones are ignored", what);
}

/* remote: made for another node's presence (bounded), else for our own. */
static cl_room_t *room_get(wsn_cluster_t *cl, const char *p, size_t n, int remote) {
  if (!n || n > WSE_TOPIC_MAX) return NULL;
  if (remote && cl->n_rooms >= CL_REMOTE_ROOMS_MAX && !room_find(cl, p, n)) {
    over_bound(cl, "rooms of other nodes");
    return NULL;
  }
  if (cl->n_rooms >= cl->tab_n) { /* grow: load factor 1 */
    size_t nn = cl->tab_n ? cl->tab_n * 2 : 64;
    cl_room_t **t = calloc(nn, sizeof *t);
    if (!t) return NULL;
    for (size_t i = 0; i < cl->tab_n; i++)
      for (cl_room_t *r = cl->tab[i], *nx; r; r = nx) {
        nx = r->next;
        cl_room_t **k = &t[hash(r->name, r->len) & (nn - 1)];
        r->next = *k;
        *k = r;
      }
    free(cl->tab);
    cl->tab = t;
    cl->tab_n = nn;
  }
  cl_room_t **k = slot(cl, p, n);
  if (*k) return *k;
  cl_room_t *r = calloc(1, sizeof *r + n);
  if (!r) return NULL;
  r->len = (uint8_t)n;
  memcpy(r->name, p, n);
  *k = r;
  cl->n_rooms++;
  return r;
}

/* A room nobody is in, here or elsewhere, goes. */
static void room_gc(wsn_cluster_t *cl, cl_room_t *r) {
  if (r->local || r->subscribed || r->n_pc) return;
  cl_room_t **k = slot(cl, r->name, r->len);
  *k = r->next;
  free(r->pc);
  free(r);
  cl->n_rooms--;
}

static void pc_recount(cl_room_t *r) {
  uint32_t s = 0;
  for (size_t i = 0; i < r->n_pc; i++) s += r->pc[i].count;
  r->remote = s;
}

/* Room for element n in a doubling array `arr` of `cap` elements (its
 * element type kept: no void ** in between). 1, or 0 out of memory. */
#define ROOM_FOR(arr, cap, n, first)                                          \
  ((n) < (cap) || grow_to((void *)&(arr), &(cap), sizeof *(arr), (first)))

static int grow_to(void *pp, size_t *cap, size_t sz, size_t first) {
  size_t c = *cap ? *cap * 2 : first;
  void *old;
  memcpy(&old, pp, sizeof old);
  void *q = realloc(old, c * sz);
  if (!q) return 0;
  memcpy(pp, &q, sizeof q);
  *cap = c;
  return 1;
}

/* Node `node` has `count` members in room r as of version `ver`. While
 * loading, a 0 stays as a tombstone (an older snapshot must not bring the
 * count back). */
static void pc_set(wsn_cluster_t *cl, cl_room_t *r, uint32_t node,
                   uint32_t count, uint64_t ver) {
  size_t i = 0;
  while (i < r->n_pc && r->pc[i].node != node) i++;
  if (i < r->n_pc && r->pc[i].ver >= ver) return;
  if (i == r->n_pc) {
    if ((!count && !cl->loading) || !ROOM_FOR(r->pc, r->cap_pc, i, 4)) return;
    r->n_pc++;
  }
  r->pc[i] = (cl_pc_t){node, count, ver};
  if (!count && !cl->loading) r->pc[i] = r->pc[--r->n_pc];
  pc_recount(r);
}

static void node_seen(wsn_cluster_t *cl, uint32_t id, uint64_t now) {
  for (size_t i = 0; i < cl->n_nodes; i++)
    if (cl->nodes[i].id == id) {
      cl->nodes[i].seen_ms = now;
      return;
    }
  if (cl->n_nodes >= CL_NODES_MAX) {
    over_bound(cl, "nodes");
    return;
  }
  if (!ROOM_FOR(cl->nodes, cl->cap_nodes, cl->n_nodes, 8)) return;
  cl->nodes[cl->n_nodes++] = (cl_node_t){id, now};
  wsn_log(WSN_LOG_INFO, "cluster: node %08x joined", id);
}

/* Node `id` is gone (goodbye, or no heartbeat for a TTL): its counts go. */
static void node_gone(wsn_cluster_t *cl, uint32_t id, const char *why) {
  for (size_t i = 0; i < cl->n_nodes; i++)
    if (cl->nodes[i].id == id) {
      cl->nodes[i] = cl->nodes[--cl->n_nodes];
      wsn_log(WSN_LOG_INFO, "cluster: node %08x %s", id, why);
      break;
    }
  for (size_t b = 0; b < cl->tab_n; b++)
    for (cl_room_t *r = cl->tab[b], *nx; r; r = nx) {
      nx = r->next;
      for (size_t i = 0; i < r->n_pc; i++)
        if (r->pc[i].node == id) {
          r->pc[i] = r->pc[--r->n_pc];
          pc_recount(r);
          break;
        }
      room_gc(cl, r);
    }
}

static size_t remote_count(void *ud, const char *room, size_t n) {
  cl_room_t *r = room_find(ud, room, n);
  return r ? r->remote : 0;
}

/* ---- the outgoing queue ---------------------------------------------------- */

static void push(wsn_cluster_t *cl, int sub, int argc, const char **argv,
                 const size_t *lens) {
  char *f = NULL;
  int n = redisFormatCommandArgv(&f, argc, argv, lens);
  cl_cmd_t *c = n > 0 ? malloc(sizeof *c) : NULL;
  if (!c) {
    if (n > 0) redisFreeCommand(f);
    atomic_fetch_add(&cl->dropped, 1);
    return;
  }
  c->next = NULL;
  c->sub = (uint8_t)sub;
  c->len = (size_t)n;
  c->cmd = f;
  uv_mutex_lock(&cl->qlock);
  if (cl->q_bytes + c->len > cl->o->redis_queue_max) {
    uv_mutex_unlock(&cl->qlock);
    redisFreeCommand(f);
    free(c);
    atomic_fetch_add(&cl->dropped, 1);
    return;
  }
  if (cl->qt) cl->qt->next = c;
  else cl->qh = c;
  cl->qt = c;
  cl->q_bytes += c->len;
  uv_mutex_unlock(&cl->qlock);
  uv_async_send(&cl->wake);
}

#define PUSH(cl, sub, ...) do {                                              \
    const char *av_[] = {__VA_ARGS__};                                       \
    size_t ln_[sizeof av_ / sizeof av_[0]];                                  \
    for (size_t i_ = 0; i_ < sizeof av_ / sizeof av_[0]; i_++)               \
      ln_[i_] = strlen(av_[i_]);                                             \
    push((cl), (sub), (int)(sizeof av_ / sizeof av_[0]), av_, ln_);          \
  } while (0)

/* "PREFIX" + bytes, into buf (cap >= strlen(prefix) + n + 1). */
static size_t key(char *buf, const char *prefix, const void *p, size_t n) {
  size_t k = strlen(prefix);
  memcpy(buf, prefix, k);
  memcpy(buf + k, p, n);
  buf[k + n] = 0;
  return k + n;
}

static void on_message(redisAsyncContext *ac, void *r, void *priv);

/* Thread 0: hand what is queued to hiredis (when connected). */
static void drain(wsn_cluster_t *cl) {
  if (!atomic_load(&cl->up)) return;
  uv_mutex_lock(&cl->qlock);
  cl_cmd_t *c = cl->qh;
  cl->qh = cl->qt = NULL;
  cl->q_bytes = 0;
  uv_mutex_unlock(&cl->qlock);
  while (c) {
    cl_cmd_t *nx = c->next;
    redisAsyncContext *ac = c->sub ? cl->sub : cl->cmd;
    /* Redis not keeping up: hiredis's own buffer is bounded too */
    if (ac && sdslen(ac->c.obuf) + c->len <= cl->o->redis_queue_max)
      redisAsyncFormattedCommand(ac, c->sub ? on_message : NULL, NULL, c->cmd, c->len);
    else
      atomic_fetch_add(&cl->dropped, 1);
    redisFreeCommand(c->cmd);
    free(c);
    c = nx;
  }
}

static void on_wake(uv_async_t *h) {
  drain(h->data);
}

/* ---- presence --------------------------------------------------------------- */

static void presence_out(wsn_cluster_t *cl, cl_room_t *r) {
  char field[48], msg[80 + WSE_TOPIC_MAX], chan[16 + WSE_TOPIC_MAX];
  uint64_t ver = ++cl->pver;
  int fl = snprintf(field, sizeof field, "%u %llu", r->local, (unsigned long long)ver);
  int ml = snprintf(msg, sizeof msg, "P %s %u %llu ", cl->hex, r->local,
                    (unsigned long long)ver);
  memcpy(msg + ml, r->name, r->len);
  const char *av[4] = {r->local ? "HSET" : "HDEL", cl->k_pres, r->name, field};
  size_t ln[4] = {4, strlen(cl->k_pres), r->len, (size_t)fl};
  push(cl, 0, r->local ? 4 : 3, av, ln);
  if (r->local) {
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%u", cl->o->redis_ttl_s);
    PUSH(cl, 0, "EXPIRE", cl->k_pres, ttl);
  }
  const char *pv[3] = {"PUBLISH", P "presence", msg};
  size_t pl[3] = {7, strlen(P "presence"), (size_t)ml + r->len};
  push(cl, 0, 3, pv, pl);
  /* the room's channel: on the first member, off after the last */
  if (!!r->local != r->subscribed) {
    r->subscribed = !!r->local;
    size_t cn = key(chan, P "r:", r->name, r->len);
    const char *sv[2] = {r->local ? "SUBSCRIBE" : "UNSUBSCRIBE", chan};
    size_t sl[2] = {strlen(sv[0]), cn};
    push(cl, 1, 2, sv, sl);
  }
}

/* "P NODE COUNT VER ROOM", "A NODE", "B NODE". */
static void presence_in(wsn_cluster_t *cl, const char *m, size_t n) {
  char buf[64];
  unsigned node = 0, count = 0;
  unsigned long long ver = 0;
  int used = 0;
  size_t k = n < sizeof buf - 1 ? n : sizeof buf - 1;
  memcpy(buf, m, k);
  buf[k] = 0;
  uint64_t now = wsn_wall_ms(cl->t0);
  if (n >= 2 && (m[0] == 'A' || m[0] == 'B') && sscanf(buf + 2, "%8x", &node) == 1) {
    if (node == cl->node) return;
    if (m[0] == 'A') node_seen(cl, node, now);
    else node_gone(cl, node, "left");
    return;
  }
  if (n < 2 || m[0] != 'P' ||
      sscanf(buf + 2, "%8x %u %llu %n", &node, &count, &ver, &used) != 3 || used <= 0 ||
      (size_t)used + 2 >= n || node == cl->node) {
    if (node != cl->node) atomic_fetch_add(&cl->malformed, 1);
    return;
  }
  node_seen(cl, node, now);
  cl_room_t *r = room_get(cl, m + 2 + used, n - 2 - (size_t)used, 1);
  if (!r) return;
  pc_set(cl, r, node, count, ver);
  room_gc(cl, r);
}

/* ---- hiredis on libuv ------------------------------------------------------------ */

/* hiredis's own adapter (adapters/libuv.h) as Debian 12 ships it (0.14)
 * ignores a poll error: libuv stops the handle and reports the error, the
 * adapter returns, and a refused connect is never reported (the node would
 * wait forever instead of retrying). This one hands errors to hiredis as
 * readiness, so it reads the socket's error and disconnects. */
typedef struct cl_ev {
  redisAsyncContext *ac;
  wsn_thread_t *t0;
  uv_poll_t h;
  int events;
} cl_ev_t;

static void ev_poll(uv_poll_t *h, int status, int events) {
  cl_ev_t *p = h->data;
  if (status < 0) events = p->events ? p->events : UV_READABLE;
  if (p->ac && (events & UV_READABLE)) redisAsyncHandleRead(p->ac);
  if (p->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(p->ac);
  /* every message this read brought is in the members' corked output:
   * written now, a batch per connection (not one write per message) */
  wsn_finish(p->t0);
}

static void ev_set(cl_ev_t *p, int on, int ev) {
  p->events = on ? p->events | ev : p->events & ~ev;
  if (p->events) uv_poll_start(&p->h, p->events, ev_poll);
  else uv_poll_stop(&p->h);
}
static void ev_add_read(void *d) { ev_set(d, 1, UV_READABLE); }
static void ev_del_read(void *d) { ev_set(d, 0, UV_READABLE); }
static void ev_add_write(void *d) { ev_set(d, 1, UV_WRITABLE); }
static void ev_del_write(void *d) { ev_set(d, 0, UV_WRITABLE); }
static void ev_freed(uv_handle_t *h) { free(h->data); }
static void ev_cleanup(void *d) {
  cl_ev_t *p = d;
  p->ac = NULL;
  uv_close((uv_handle_t *)&p->h, ev_freed);
}

static int ev_attach(redisAsyncContext *ac, wsn_thread_t *t0) {
  uv_loop_t *loop = &t0->loop;
  cl_ev_t *p = calloc(1, sizeof *p);
  if (!p) return REDIS_ERR;
  if (uv_poll_init(loop, &p->h, ac->c.fd) != 0) {
    free(p);
    return REDIS_ERR;
  }
  p->ac = ac;
  p->t0 = t0;
  p->h.data = p;
  ac->ev.data = p;
  ac->ev.addRead = ev_add_read;
  ac->ev.delRead = ev_del_read;
  ac->ev.addWrite = ev_add_write;
  ac->ev.delWrite = ev_del_write;
  ac->ev.cleanup = ev_cleanup;
  return REDIS_OK;
}

/* ---- connections -------------------------------------------------------------- */

static void connect_both(wsn_cluster_t *cl);

static void on_retry(uv_timer_t *tm) {
  connect_both(tm->data);
}

static void schedule_retry(wsn_cluster_t *cl) {
  if (cl->closing || uv_is_active((uv_handle_t *)&cl->retry)) return;
  uint32_t d = cl->backoff_ms ? cl->backoff_ms : 100;
  cl->backoff_ms = d * 2 > CL_BACKOFF_MAX ? CL_BACKOFF_MAX : d * 2;
  uint32_t jitter = 0;
  (void)getrandom(&jitter, sizeof jitter, GRND_NONBLOCK);
  d += jitter % (d / 4 + 1);
  uv_timer_start(&cl->retry, on_retry, d, 0);
}

/* Let go of a connection (never the one whose callback is running: its
 * pointer is cleared first). A connected one closes through on_disconnect
 * (clean: after its pending replies); one still connecting is freed. */
static void drop(redisAsyncContext **ac, int *ok, int clean) {
  redisAsyncContext *x = *ac;
  if (!x) return;
  if (!*ok) {
    *ac = NULL;
    redisAsyncFree(x);
  } else if (clean) {
    redisAsyncDisconnect(x);
  } else {
    redisAsyncFree(x); /* on_disconnect clears the pointer */
  }
}

static void lost(wsn_cluster_t *cl, const char *what, const char *err) {
  atomic_store(&cl->up, 0);
  if (!cl->down_logged++) /* once per outage */
    wsn_log(WSN_LOG_WARN, "cluster: Redis %s: %s; local rooms go on, reconnecting",
            what, err && *err ? err : "connection lost");
  /* one is gone: drop the other too, both come back together */
  drop(&cl->cmd, &cl->cmd_ok, 0);
  drop(&cl->sub, &cl->sub_ok, 0);
  schedule_retry(cl);
}

static void on_closed(uv_handle_t *h) {
  (void)h;
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  wsn_cluster_t *cl = ac->data;
  const char *err = status == REDIS_OK ? "" : ac->errstr;
  if (ac == cl->cmd) cl->cmd = NULL, cl->cmd_ok = 0;
  if (ac == cl->sub) cl->sub = NULL, cl->sub_ok = 0;
  if (!cl->closing) lost(cl, "disconnected", err);
  else if (!cl->cmd && !cl->sub && !uv_is_closing((uv_handle_t *)&cl->retry))
    uv_close((uv_handle_t *)&cl->retry, on_closed); /* closed in time */
}

/* Closing, and Redis has not answered within a second: let go. */
static void on_close_deadline(uv_timer_t *tm) {
  wsn_cluster_t *cl = tm->data;
  drop(&cl->cmd, &cl->cmd_ok, 0);
  drop(&cl->sub, &cl->sub_ok, 0);
  if (!uv_is_closing((uv_handle_t *)tm)) uv_close((uv_handle_t *)tm, on_closed);
}

static void setup(wsn_cluster_t *cl);

static void on_connect(const redisAsyncContext *ac, int status) {
  wsn_cluster_t *cl = ac->data;
  if (status != REDIS_OK) {
    if (ac == cl->cmd) cl->cmd = NULL;
    if (ac == cl->sub) cl->sub = NULL;
    if (!cl->closing) lost(cl, "connect", ac->errstr);
    return;
  }
  if (ac == cl->cmd) cl->cmd_ok = 1;
  if (ac == cl->sub) cl->sub_ok = 1;
  if (cl->cmd_ok && cl->sub_ok) setup(cl);
}

static redisAsyncContext *open_one(wsn_cluster_t *cl) {
  redisAsyncContext *ac = redisAsyncConnect(cl->o->redis_host, cl->o->redis_port);
  if (!ac) return NULL;
  if (ac->err) {
    redisAsyncFree(ac);
    return NULL;
  }
  ac->data = cl;
  int one = 1; /* a PUBLISH is latency: never held back for the next */
  (void)setsockopt(ac->c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (ev_attach(ac, cl->t0) != REDIS_OK) {
    redisAsyncFree(ac);
    return NULL;
  }
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  return ac;
}

static void connect_both(wsn_cluster_t *cl) {
  if (cl->closing) return;
  if (cl->cmd || cl->sub) { /* the last ones are still closing */
    schedule_retry(cl);
    return;
  }
  cl->cmd = open_one(cl);
  cl->sub = cl->cmd ? open_one(cl) : NULL;
  if (!cl->sub) {
    if (cl->cmd) redisAsyncFree(cl->cmd);
    cl->cmd = NULL;
    schedule_retry(cl);
  }
}

/* ---- (re)joining ---------------------------------------------------------------- */

static void on_loaded(redisAsyncContext *ac, void *rep, void *priv);

static void on_members(redisAsyncContext *ac, void *rep, void *priv) {
  wsn_cluster_t *cl = ac->data;
  redisReply *r = rep;
  (void)priv;
  if (!r || r->type != REDIS_REPLY_ARRAY) return;
  wsn_app_lock(cl->t0);
  for (size_t i = 0; i < r->elements; i++) {
    unsigned id;
    char k[32];
    if (r->element[i]->type != REDIS_REPLY_STRING ||
        sscanf(r->element[i]->str, "%8x", &id) != 1 || id == cl->node)
      continue;
    snprintf(k, sizeof k, P "p:%08x", id);
    cl->loading++;
    redisAsyncCommand(cl->cmd, on_loaded, (void *)(uintptr_t)id, "HGETALL %s", k);
    snprintf(k, sizeof k, P "node:%08x", id);
    /* a node whose key expired is gone for good: out of the set */
    redisAsyncCommand(cl->cmd, NULL, NULL,
                      "EVAL %s 2 %s " P "nodes %s",
                      "if redis.call('EXISTS', KEYS[1]) == 0 then "
                      "redis.call('SREM', KEYS[2], ARGV[1]) end return 0",
                      k, r->element[i]->str);
  }
  wsn_app_unlock(cl->t0);
}

static void on_loaded(redisAsyncContext *ac, void *rep, void *priv) {
  wsn_cluster_t *cl = ac->data;
  redisReply *r = rep;
  uint32_t id = (uint32_t)(uintptr_t)priv;
  wsn_app_lock(cl->t0);
  if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
    node_seen(cl, id, wsn_wall_ms(cl->t0));
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
      unsigned count;
      unsigned long long ver;
      redisReply *f = r->element[i], *v = r->element[i + 1];
      if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
          sscanf(v->str, "%u %llu", &count, &ver) != 2)
        continue;
      cl_room_t *room = room_get(cl, f->str, f->len, 1);
      if (room) pc_set(cl, room, id, count, ver);
    }
  }
  if (cl->loading && --cl->loading == 0) /* tombstones served their turn */
    for (size_t b = 0; b < cl->tab_n; b++)
      for (cl_room_t *x = cl->tab[b], *nx; x; x = nx) {
        nx = x->next;
        for (size_t i = 0; i < x->n_pc;)
          if (!x->pc[i].count) x->pc[i] = x->pc[--x->n_pc];
          else i++;
        pc_recount(x);
        room_gc(cl, x);
      }
  wsn_app_unlock(cl->t0);
}

/* After an outage: the history events of our rooms stored while we were
 * away (another node's queue, flushed before we subscribed again) reach
 * our members now. */
static void on_catchup(redisAsyncContext *ac, void *rep, void *priv) {
  wsn_cluster_t *cl = ac->data;
  redisReply *r = rep;
  free(priv);
  if (!r || r->type != REDIS_REPLY_ARRAY || cl->closing) return;
  wsn_app_lock(cl->t0);
  for (size_t i = 0; i < r->elements; i++)
    if (r->element[i]->type == REDIS_REPLY_STRING)
      (void)wse_app_history_deliver(cl->srv->app, (const uint8_t *)r->element[i]->str,
                                    r->element[i]->len);
  wsn_exec_actions(cl->t0);
  wsn_finish(cl->t0);
}

static void heartbeat(wsn_cluster_t *cl) {
  char ttl[16], alive[16];
  snprintf(ttl, sizeof ttl, "%u", cl->o->redis_ttl_s);
  snprintf(alive, sizeof alive, "A %s", cl->hex);
  redisAsyncCommand(cl->cmd, NULL, NULL, "SET %s 1 EX %s", cl->k_node, ttl);
  redisAsyncCommand(cl->cmd, NULL, NULL, "EXPIRE %s %s", cl->k_pres, ttl);
  redisAsyncCommand(cl->cmd, NULL, NULL, "PUBLISH " P "presence %s", alive);
}

/* Both connections up: select the database, subscribe, write our presence
 * again, read the others', then send what waited. */
static void setup(wsn_cluster_t *cl) {
  wsn_thread_t *t0 = cl->t0;
  char db[16];
  snprintf(db, sizeof db, "%d", cl->o->redis_db);
  if (cl->o->redis_db) {
    redisAsyncCommand(cl->cmd, NULL, NULL, "SELECT %s", db);
    redisAsyncCommand(cl->sub, NULL, NULL, "SELECT %s", db);
  }
  redisAsyncCommand(cl->sub, on_message, NULL, "SUBSCRIBE " P "presence %s", cl->c_node);
  redisAsyncCommand(cl->cmd, NULL, NULL, "DEL %s", cl->k_pres);
  redisAsyncCommand(cl->cmd, NULL, NULL, "SADD " P "nodes %s", cl->hex);
  heartbeat(cl);
  wsn_app_lock(t0);
  cl->loading = 1; /* until SMEMBERS' replies are in */
  atomic_store(&cl->up, 1);
  for (size_t b = 0; b < cl->tab_n; b++)
    for (cl_room_t *r = cl->tab[b]; r; r = r->next) {
      r->subscribed = 0;
      if (!r->local) continue;
      presence_out(cl, r);
      char *k = malloc(16 + WSE_TOPIC_MAX);
      if (k && !cl->first_setup)
        redisAsyncCommand(cl->cmd, on_catchup, k, "LRANGE %b 0 -1", k,
                          key(k, P "h:", r->name, r->len));
      else
        free(k);
    }
  cl->first_setup = 0;
  redisAsyncCommand(cl->cmd, on_members, NULL, "SMEMBERS " P "nodes");
  /* the chain above ends the loading with the last HGETALL; one more
   * marker in case there is no other node */
  redisAsyncCommand(cl->cmd, on_loaded, (void *)(uintptr_t)0, "PING");
  wsn_app_unlock(t0);
  if (cl->down_logged)
    wsn_log(WSN_LOG_INFO, "cluster: Redis back at %s:%d, resubscribed",
            cl->o->redis_host, cl->o->redis_port);
  atomic_fetch_add(&cl->reconnects, 1);
  cl->backoff_ms = 0;
  cl->down_logged = 0;
  drain(cl);
  wsn_finish(t0);
}

static void on_beat(uv_timer_t *tm) {
  wsn_cluster_t *cl = tm->data;
  uint64_t now = wsn_wall_ms(cl->t0), ttl = (uint64_t)cl->o->redis_ttl_s * 1000;
  if (atomic_load(&cl->up)) heartbeat(cl);
  wsn_app_lock(cl->t0);
  for (size_t i = 0; i < cl->n_nodes;)
    if (now - cl->nodes[i].seen_ms > ttl) node_gone(cl, cl->nodes[i].id, "timed out");
    else i++;
  wsn_app_unlock(cl->t0);
  wsn_finish(cl->t0);
}

/* ---- incoming ---------------------------------------------------------------- */

static void on_message(redisAsyncContext *ac, void *rep, void *priv) {
  wsn_cluster_t *cl = ac->data;
  redisReply *r = rep;
  (void)priv;
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
      r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") ||
      r->element[2]->type != REDIS_REPLY_STRING)
    return; /* (un)subscribe confirmations */
  redisReply *ch = r->element[1], *m = r->element[2];
  wsn_thread_t *t0 = cl->t0;
  wsn_app_lock(t0);
  if (ch->len == strlen(P "presence") && !memcmp(ch->str, P "presence", ch->len)) {
    presence_in(cl, m->str, m->len);
  } else {
    atomic_fetch_add(&cl->received, 1);
    int rc = wse_app_cluster_input(cl->srv->app, (const uint8_t *)m->str, m->len,
                                   wsn_wall_ms(t0));
    if (rc == WSE_EEXIST) atomic_fetch_add(&cl->conflicts, 1);
    else if (rc == WSE_EINVAL) atomic_fetch_add(&cl->malformed, 1);
    wsn_exec_actions(t0);
  } /* the lock is kept for the rest of this read: ev_poll finishes */
}

/* ---- actions (any thread, under the app lock) ----------------------------------- */

void wsn_cluster_exec(wsn_server_t *srv, const wse_action_t *a) {
  wsn_cluster_t *cl = CL(srv);
  char k[16 + WSE_TOPIC_MAX];
  size_t kn;
  if (!cl) return;
  switch (a->type) {
  case WSE_ACT_PRESENCE: {
    cl_room_t *r = room_get(cl, (const char *)a->data, a->len, 0);
    if (!r) return;
    r->local = a->target;
    if (atomic_load(&cl->up)) presence_out(cl, r);
    else r->subscribed = 0; /* the reconnect writes it all again */
    room_gc(cl, r);
    return;
  }
  case WSE_ACT_HISTORY: { /* [1][room length][room][u64 seq][event] */
    kn = key(k, P "h:", a->frame + 2, a->frame[1]);
    const char *av[3] = {"RPUSH", k, (const char *)a->frame};
    size_t ln[3] = {5, kn, a->frame_len};
    push(cl, 0, 3, av, ln);
    PUSH(cl, 0, "LTRIM", k, "-" "100", "-1");
    PUSH(cl, 0, "EXPIRE", k, CL_HISTORY_TTL);
    return;
  }
  case WSE_ACT_PUBLISH: {
    if (a->opcode == WSE_CHAN_ROOM) {
      kn = key(k, P "r:", a->data, a->len);
    } else {
      kn = (size_t)snprintf(k, sizeof k, P "n:%08x", a->target);
    }
    const char *av[3] = {"PUBLISH", k, (const char *)a->frame};
    size_t ln[3] = {7, kn, a->frame_len};
    push(cl, 0, 3, av, ln);
    atomic_fetch_add(&cl->published, 1);
    return;
  }
  default:
    return;
  }
}

/* ---- a room's history, before its first member here ------------------------------- */

static void sync_room(wsn_cluster_t *cl, const char *room, size_t n) {
  wse_app_t *app = cl->srv->app;
  if (!atomic_load(&cl->up) || wse_app_room_next(app, room, n, -1) >= 0) return;
  struct timeval tv = {0, 250000};
  if (!cl->sync) {
    cl->sync = redisConnectWithTimeout(cl->o->redis_host, cl->o->redis_port, tv);
    if (cl->sync && !cl->sync->err) {
      redisSetTimeout(cl->sync, tv);
      if (cl->o->redis_db) freeReplyObject(redisCommand(cl->sync, "SELECT %d", cl->o->redis_db));
    }
  }
  char k[16 + WSE_TOPIC_MAX];
  key(k, P "h:", room, n);
  redisReply *r = cl->sync && !cl->sync->err
                      ? redisCommand(cl->sync, "LRANGE %b 0 -1", k, strlen(P "h:") + n)
                      : NULL;
  if (!r) {
    wsn_log(WSN_LOG_WARN, "cluster: cannot read the history of a room: %s",
            cl->sync ? cl->sync->errstr : "no connection");
    if (cl->sync) redisFree(cl->sync);
    cl->sync = NULL;
    return;
  }
  atomic_fetch_add(&cl->syncs, 1);
  if (r->type == REDIS_REPLY_ARRAY)
    for (size_t i = 0; i < r->elements; i++)
      if (r->element[i]->type == REDIS_REPLY_STRING) /* older than ours: refused */
        (void)wse_app_history_load(app, (const uint8_t *)r->element[i]->str,
                                   r->element[i]->len);
  freeReplyObject(r);
}

void wsn_cluster_before_open(wsn_server_t *srv, const wse_session_t *s) {
  wse_str_t room;
  if (!CL(srv)) return;
  for (size_t i = 0; wse_app_session_topic(srv->app, s, i, &room) == WSE_OK; i++)
    sync_room(CL(srv), room.p, room.n);
}

void wsn_cluster_before_http(wsn_server_t *srv, const wse_request_t *req) {
  wse_route_info_t ri;
  if (CL(srv) && wse_app_route_info(srv->app, req->target, &ri) == WSE_ROUTE_HTTP &&
      ri.key.n)
    sync_room(CL(srv), ri.key.p, ri.key.n);
}

/* ---- life cycle ---------------------------------------------------------------------- */

int wsn_cluster_stats(wsn_server_t *srv, char *buf, size_t cap) {
  wsn_cluster_t *cl = CL(srv);
  if (!cl) return snprintf(buf, cap, "null");
  size_t q;
  uv_mutex_lock(&cl->qlock);
  q = cl->q_bytes;
  uv_mutex_unlock(&cl->qlock);
  return snprintf(buf, cap,
                  "{\"node\":\"%s\",\"connected\":%s,\"nodes\":%zu,\"published\":%llu,"
                  "\"received\":%llu,\"queued_bytes\":%zu,\"dropped\":%llu,"
                  "\"connects\":%llu,\"seq_conflicts\":%llu,\"malformed\":%llu,"
                  "\"history_reads\":%llu}",
                  cl->hex, atomic_load(&cl->up) ? "true" : "false", cl->n_nodes + 1,
                  (unsigned long long)atomic_load(&cl->published),
                  (unsigned long long)atomic_load(&cl->received), q,
                  (unsigned long long)atomic_load(&cl->dropped),
                  (unsigned long long)atomic_load(&cl->reconnects),
                  (unsigned long long)atomic_load(&cl->conflicts),
                  (unsigned long long)atomic_load(&cl->malformed),
                  (unsigned long long)atomic_load(&cl->syncs));
}

int wsn_cluster_new(wsn_server_t *srv) {
  const wsn_opts_t *o = &srv->opts;
  if (!o->redis_host[0]) return 0;
  struct timeval tv = {1, 0};
  uint32_t node = 0;
  redisContext *c = redisConnectWithTimeout(o->redis_host, o->redis_port, tv);
  redisReply *r = NULL;
  if (c && !c->err) {
    redisSetTimeout(c, tv);
    r = redisCommand(c, "SELECT %d", o->redis_db);
  }
  if (!r || r->type == REDIS_REPLY_ERROR) {
    const char *why = r ? r->str : c && c->err ? c->errstr : "out of memory";
    fprintf(stderr, "%s: cannot reach Redis at %s:%d (db %d): %s%s\n", o->program,
            o->redis_host, o->redis_port, o->redis_db, why,
            o->redis_optional ? "; starting without it (--redis-optional)"
                              : " (--redis-optional starts without it)");
    freeReplyObject(r);
    r = NULL;
    if (!o->redis_optional) {
      if (c) redisFree(c);
      return 2;
    }
  }
  freeReplyObject(r);
  /* a node id nobody alive holds */
  for (int tries = 0; tries < 16; tries++) {
    if (getrandom(&node, sizeof node, 0) != sizeof node || !node) continue;
    if (!c || c->err) break;
    char k[32], ttl[16];
    snprintf(k, sizeof k, P "node:%08x", node);
    snprintf(ttl, sizeof ttl, "%u", o->redis_ttl_s);
    r = redisCommand(c, "SET %s 1 EX %s NX", k, ttl);
    int taken = r && r->type == REDIS_REPLY_NIL;
    freeReplyObject(r);
    if (!taken) break;
  }
  if (c) redisFree(c);
  if (!node) return fprintf(stderr, "%s: no entropy for a node id\n", o->program), 1;

  wsn_cluster_t *cl = calloc(1, sizeof *cl);
  if (!cl) return 1;
  cl->srv = srv;
  cl->t0 = &srv->threads[0];
  cl->o = o;
  cl->node = node;
  cl->first_setup = 1;
  snprintf(cl->hex, sizeof cl->hex, "%08x", node);
  snprintf(cl->k_pres, sizeof cl->k_pres, P "p:%s", cl->hex);
  snprintf(cl->k_node, sizeof cl->k_node, P "node:%s", cl->hex);
  snprintf(cl->c_node, sizeof cl->c_node, P "n:%s", cl->hex);
  uv_mutex_init(&cl->qlock);
  uv_timer_init(&cl->t0->loop, &cl->retry);
  uv_timer_init(&cl->t0->loop, &cl->beat);
  uv_async_init(&cl->t0->loop, &cl->wake, on_wake);
  cl->retry.data = cl->beat.data = cl->wake.data = cl;
  uint64_t period = (uint64_t)o->redis_ttl_s * 1000 / 3;
  uv_timer_start(&cl->beat, on_beat, period ? period : 300, period ? period : 300);
  srv->cluster = cl;
  wse_app_cluster(srv->app, node, remote_count, cl);
  connect_both(cl);
  wsn_log(WSN_LOG_INFO, "cluster: node %s on Redis %s:%d db %d, presence TTL %us",
          cl->hex, o->redis_host, o->redis_port, o->redis_db, o->redis_ttl_s);
  return 0;
}

void wsn_cluster_close(wsn_server_t *srv) {
  wsn_cluster_t *cl = CL(srv);
  if (!cl || cl->closing) return;
  drain(cl); /* the last leave events first */
  cl->closing = 1;
  if (atomic_load(&cl->up)) {
    char bye[16];
    snprintf(bye, sizeof bye, "B %s", cl->hex);
    redisAsyncCommand(cl->cmd, NULL, NULL, "DEL %s %s", cl->k_pres, cl->k_node);
    redisAsyncCommand(cl->cmd, NULL, NULL, "SREM " P "nodes %s", cl->hex);
    redisAsyncCommand(cl->cmd, NULL, NULL, "PUBLISH " P "presence %s", bye);
  }
  atomic_store(&cl->up, 0);
  /* pending replies are read, then each connection closes */
  drop(&cl->cmd, &cl->cmd_ok, 1);
  drop(&cl->sub, &cl->sub_ok, 1);
  if (cl->cmd || cl->sub) /* a Redis that never answers cannot hold the stop */
    uv_timer_start(&cl->retry, on_close_deadline, 1000, 0);
  else
    uv_close((uv_handle_t *)&cl->retry, on_closed);
  uv_close((uv_handle_t *)&cl->beat, on_closed);
  uv_close((uv_handle_t *)&cl->wake, on_closed);
}

void wsn_cluster_free(wsn_server_t *srv) {
  wsn_cluster_t *cl = CL(srv);
  if (!cl) return;
  if (cl->cmd) redisAsyncFree(cl->cmd);
  if (cl->sub) redisAsyncFree(cl->sub);
  if (cl->sync) redisFree(cl->sync);
  for (cl_cmd_t *c = cl->qh, *nx; c; c = nx) {
    nx = c->next;
    redisFreeCommand(c->cmd);
    free(c);
  }
  for (size_t b = 0; b < cl->tab_n; b++)
    for (cl_room_t *r = cl->tab[b], *nx; r; r = nx) {
      nx = r->next;
      free(r->pc);
      free(r);
    }
  free(cl->tab);
  free(cl->nodes);
  uv_mutex_destroy(&cl->qlock);
  free(cl);
  srv->cluster = NULL;
}
