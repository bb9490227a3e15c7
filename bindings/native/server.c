/* server.c — threads, listeners, the shared app and its lock, cross-thread
 * delivery, timers and graceful shutdown.
 *
 * One uv_loop per thread, each with its own listening socket bound to the
 * same port with SO_REUSEPORT. One wse_app_t for the whole server (rooms and
 * send-to-session work across threads) behind app_lock: every wse_app_* call
 * and the execution of its actions happen under it. Actions for a session on
 * the calling thread append to that connection's corked output (no syscall
 * under the lock); for sessions on other threads the frame is copied once
 * into a refcounted buffer and one item per target thread is queued, then
 * that thread is woken with uv_async_send after the lock is released. A
 * thread drains its queue whenever it takes the lock, so every recipient
 * sees events in the order they were produced under the lock. */
#define _GNU_SOURCE
#include "server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "log.h"

_Static_assert(sizeof(uintptr_t) >= 8, "session host ids need 64-bit pointers");

/* ---- allocator for the core -------------------------------------------- */

static void *a_alloc(void *ud, size_t n) {
  (void)ud;
  return malloc(n);
}
static void *a_realloc(void *ud, void *p, size_t old_n, size_t new_n) {
  (void)ud;
  (void)old_n;
  return realloc(p, new_n);
}
static void a_free(void *ud, void *p, size_t n) {
  (void)ud;
  (void)n;
  free(p);
}

/* ---- clocks and entropy --------------------------------------------------- */

uint32_t wsn_now_s(wsn_thread_t *t) {
  return (uint32_t)((uv_now(&t->loop) - t->srv->start_ms) / 1000);
}

uint32_t wsn_now_ms32(wsn_thread_t *t) {
  return (uint32_t)(uv_now(&t->loop) - t->srv->start_ms);
}

void wsn_entropy(wsn_thread_t *t, uint8_t out[16]) {
  if (t->entropy_off + 16 > sizeof t->entropy) {
    size_t got = 0;
    while (got < sizeof t->entropy) {
      ssize_t r = getrandom(t->entropy + got, sizeof t->entropy - got, 0);
      if (r < 0) {
        if (errno == EINTR) continue;
        wsn_log(WSN_LOG_ERROR, "getrandom: %s", strerror(errno));
        abort(); /* session ids must never be predictable */
      }
      got += (size_t)r;
    }
    t->entropy_off = 0;
  }
  memcpy(out, t->entropy + t->entropy_off, 16);
  t->entropy_off += 16;
}

/* ---- session host ids ---------------------------------------------------- */

void *wsn_host_encode(wsn_thread_t *t, wsn_conn_t *c) {
  uint64_t v = ((uint64_t)t->gens[c->slot] << 32) | ((uint64_t)t->idx << 24) |
               c->slot;
  return (void *)(uintptr_t)v;
}

static wsn_conn_t *lookup(wsn_thread_t *t, uint32_t slot, uint32_t gen) {
  if (slot >= t->cap || t->gens[slot] != gen) return NULL;
  return t->conns[slot];
}

/* ---- the app lock ------------------------------------------------------- */

static void drain_queue(wsn_thread_t *t);

void wsn_app_lock(wsn_thread_t *t) {
  if (t->locked) return;
  uv_mutex_lock(&t->srv->app_lock);
  t->locked = 1;
  t->srv->holder = t;
  /* Items queued for us were produced before this point in lock order:
   * deliver them before anything we are about to produce. */
  drain_queue(t);
}

void wsn_app_unlock(wsn_thread_t *t) {
  if (!t->locked) return;
  t->locked = 0;
  t->srv->holder = NULL;
  uv_mutex_unlock(&t->srv->app_lock);
  uint64_t m = t->wake_mask;
  t->wake_mask = 0;
  while (m) {
    int i = __builtin_ctzll(m);
    m &= m - 1;
    uv_async_send(&t->srv->threads[i].async);
  }
}

/* End of every libuv callback: release the lock, wake other threads, flush
 * corked output. Flushing may fail a connection, which may need the lock
 * again (session end), so loop until quiet. */
void wsn_finish(wsn_thread_t *t) {
  t->wall_ms = 0;
  do {
    wsn_app_unlock(t);
    wsn_log_flush(); /* this callback's lines before its network output */
    wsn_flush_dirty(t);
  } while (t->locked || t->dirty);
}

/* ---- cross-thread items ---------------------------------------------------- */

static void rbuf_unref(wsn_rbuf_t *b) {
  if (b && atomic_fetch_sub(&b->refs, 1) == 1) free(b);
}

static void drain_queue(wsn_thread_t *t) {
  if (!atomic_load_explicit(&t->qpending, memory_order_acquire)) return;
  uv_mutex_lock(&t->qlock);
  wsn_item_t *it = t->qhead;
  t->qhead = t->qtail = NULL;
  atomic_store_explicit(&t->qpending, 0, memory_order_relaxed);
  uv_mutex_unlock(&t->qlock);
  while (it) {
    wsn_item_t *next = it->next;
    if (t->dfl) { /* a new message to deliver, to one or to several */
      wsn_deflate_next_message(t->dfl);
      wsn_deflate_fanout(t->dfl, it->n > 1);
    }
    for (uint32_t i = 0; i < it->n; i++) {
      wsn_conn_t *c = lookup(t, it->tg[i].slot, it->tg[i].gen);
      if (!c) continue;
      if (it->kind == WSN_ITEM_SEND)
        wsn_conn_deliver(t, c, it->buf->data, it->buf->len);
      else
        wsn_conn_close_ws(t, c, it->code, (const char *)it->buf->data,
                          it->buf->len);
    }
    rbuf_unref(it->buf);
    free(it);
    it = next;
  }
}

static void stage(wsn_thread_t *t, int ti, uint32_t slot, uint32_t gen) {
  if (t->stage_n[ti] == t->stage_cap[ti]) {
    uint32_t cap = t->stage_cap[ti] ? t->stage_cap[ti] * 2 : 16;
    wsn_target_t *p = realloc(t->stage[ti], cap * sizeof *p);
    if (!p) {
      wsn_log(WSN_LOG_ERROR, "out of memory staging a cross-thread delivery");
      return;
    }
    t->stage[ti] = p;
    t->stage_cap[ti] = cap;
  }
  t->n_staged++;
  t->stage[ti][t->stage_n[ti]].slot = slot;
  t->stage[ti][t->stage_n[ti]].gen = gen;
  t->stage_n[ti]++;
}

/* Queue the staged targets: the bytes are copied once and shared. */
static void flush_stage(wsn_thread_t *t, int kind, unsigned code,
                        const uint8_t *p, size_t n) {
  if (!t->n_staged) return; /* everything was local */
  t->n_staged = 0;
  wsn_server_t *srv = t->srv;
  unsigned items = 0;
  for (int i = 0; i < srv->nthreads; i++)
    if (t->stage_n[i]) items++;
  if (!items) return;
  wsn_rbuf_t *b = malloc(sizeof *b + n);
  if (!b) {
    wsn_log(WSN_LOG_ERROR, "out of memory queueing %zu bytes", n);
    for (int i = 0; i < srv->nthreads; i++) t->stage_n[i] = 0;
    return;
  }
  atomic_init(&b->refs, items);
  b->len = (uint32_t)n;
  if (n) memcpy(b->data, p, n);
  for (int i = 0; i < srv->nthreads; i++) {
    uint32_t k = t->stage_n[i];
    if (!k) continue;
    t->stage_n[i] = 0;
    wsn_item_t *it = malloc(sizeof *it + k * sizeof(wsn_target_t));
    if (!it) {
      wsn_log(WSN_LOG_ERROR, "out of memory queueing to thread %d", i);
      rbuf_unref(b);
      continue;
    }
    it->next = NULL;
    it->kind = (uint8_t)kind;
    it->code = (uint16_t)code;
    it->buf = b;
    it->n = k;
    memcpy(it->tg, t->stage[i], k * sizeof(wsn_target_t));
    wsn_thread_t *d = &srv->threads[i];
    uv_mutex_lock(&d->qlock);
    if (d->qtail)
      d->qtail->next = it;
    else
      d->qhead = it;
    d->qtail = it;
    atomic_store_explicit(&d->qpending, 1, memory_order_release);
    uv_mutex_unlock(&d->qlock);
    t->wake_mask |= (uint64_t)1 << i;
  }
}

/* ---- executing the app's actions ------------------------------------------ */

static void route_to(wsn_thread_t *t, const wse_session_t *s, int kind,
                     const uint8_t *p, size_t n, unsigned code) {
  if (!s || !s->host) return;
  uint64_t v = (uint64_t)(uintptr_t)s->host;
  uint32_t gen = (uint32_t)(v >> 32);
  int ti = (int)((v >> 24) & 0xff);
  uint32_t slot = (uint32_t)(v & 0xffffff);
  if (ti == t->idx) {
    wsn_conn_t *c = lookup(t, slot, gen);
    if (!c) return;
    if (kind == WSN_ITEM_SEND)
      wsn_conn_deliver(t, c, p, n);
    else
      wsn_conn_close_ws(t, c, code, (const char *)p, n);
  } else if (ti < t->srv->nthreads) {
    stage(t, ti, slot, gen);
  }
}

/* The app's direct SEND (wse_app_set_direct_send): a session on the thread
 * holding the lock gets the frame written straight into its output. */
static int direct_send(void *ud, wse_session_t *s, unsigned op,
                       const uint8_t *p, size_t n) {
  wsn_thread_t *t = ((wsn_server_t *)ud)->holder;
  if (!t || !s->host) return 0;
  uint64_t v = (uint64_t)(uintptr_t)s->host;
  if ((int)((v >> 24) & 0xff) != t->idx) return 0;
  wsn_conn_t *c = lookup(t, (uint32_t)(v & 0xffffff), (uint32_t)(v >> 32));
  return c ? wsn_conn_direct(t, c, op, p, n) : 0;
}

static void exec_one(wsn_thread_t *t, const wse_action_t *a) {
  wse_app_t *app = t->srv->app;
  if (t->dfl) wsn_deflate_next_message(t->dfl); /* a new message to deliver */
  switch (a->type) {
  case WSE_ACT_SEND:
    route_to(t, wse_app_session(app, a->target), WSN_ITEM_SEND, a->frame,
             a->frame_len, 0);
    flush_stage(t, WSN_ITEM_SEND, 0, a->frame, a->frame_len);
    break;
  case WSE_ACT_BROADCAST:
    if (t->dfl) wsn_deflate_fanout(t->dfl, a->n_recipients > 1);
    for (size_t i = 0; i < a->n_recipients; i++)
      route_to(t, wse_app_session(app, a->recipients[i]), WSN_ITEM_SEND,
               a->frame, a->frame_len, 0);
    flush_stage(t, WSN_ITEM_SEND, 0, a->frame, a->frame_len);
    break;
  case WSE_ACT_CLOSE:
    route_to(t, wse_app_session(app, a->target), WSN_ITEM_CLOSE, a->data,
             a->len, a->close_code);
    flush_stage(t, WSN_ITEM_CLOSE, a->close_code, a->data, a->len);
    break;
  case WSE_ACT_ATTACH:
    break; /* attachments matter to Durable Objects only */
  case WSE_ACT_TIMER:
    t->apptm_dirty = 1; /* kept in the core's memory: only the clock moves */
    break;
  case WSE_ACT_HISTORY: /* natively the core's memory is the history; */
  case WSE_ACT_PUBLISH: /* a cluster also keeps it in Redis */
  case WSE_ACT_PRESENCE:
    wsn_cluster_exec(t->srv, a);
    break;
  }
}

/* ---- the app's timers ------------------------------------------------------- */

static void on_apptm(uv_timer_t *tm);

/* Set this thread's clock for the app's earliest timer when that is sooner
 * than what it is set for (under the app lock). Any thread may set a timer,
 * so every thread that saw one change sets its own clock: the first to
 * fire runs what is due; the others find nothing and set theirs again. */
static void arm_app_timer(wsn_thread_t *t) {
  uint64_t next = wse_app_timer_next(t->srv->app), now;
  t->apptm_dirty = 0;
  if (!next || t->stopping || (t->apptm_at && t->apptm_at <= next)) return;
  now = wsn_wall_ms(t);
  t->apptm_at = next;
  uv_timer_start(&t->apptm, on_apptm, next > now ? next - now : 0, 0);
}

static void on_apptm(uv_timer_t *tm) {
  wsn_thread_t *t = tm->loop->data;
  t->apptm_at = 0;
  wsn_app_lock(t);
  wse_app_timers_run(t->srv->app, wsn_wall_ms(t));
  wsn_exec_actions(t);
  arm_app_timer(t);
  wsn_finish(t);
}

void wsn_exec_actions(wsn_thread_t *t) {
  if (t->in_exec) return; /* the running loop below picks new ones up */
  wse_app_t *app = t->srv->app;
  const wse_action_t *first = NULL;
  if (!wse_app_actions(app, &first) && !t->n_ends) {
    wse_app_actions_clear(app); /* scratch memory only (direct sends) */
    return;
  }
  t->in_exec = 1;
  size_t next_end = 0;
  for (;;) {
    const wse_action_t *acts = NULL;
    size_t n = wse_app_actions(app, &acts);
    for (size_t i = 0; i < n; i++) exec_one(t, &acts[i]);
    wse_app_actions_clear(app);
    if (next_end == t->n_ends) break;
    /* Sessions whose close was triggered while executing: end them now
     * (on_close may produce more actions, e.g. a "leave" broadcast). */
    wsn_conn_end_deferred(t, t->ends[next_end++]);
  }
  t->n_ends = 0;
  t->in_exec = 0;
  if (t->apptm_dirty) arm_app_timer(t);
}

/* ---- per-thread callbacks ----------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h) {
  (void)h;
}

static void thread_close_handles(wsn_thread_t *t) {
  if (t->handles_closed) return;
  t->handles_closed = 1;
  if (t->listening) {
    uv_close((uv_handle_t *)&t->listener, on_handle_closed);
    t->listening = 0;
  }
  uv_close((uv_handle_t *)&t->tick, on_handle_closed);
  uv_close((uv_handle_t *)&t->apptm, on_handle_closed);
  uv_close((uv_handle_t *)&t->async, on_handle_closed);
  uv_close((uv_handle_t *)&t->log_check, on_handle_closed);
  if (t->idx == 0) wsn_cluster_close(t->srv);
  if (t->idx == 0 && t->srv->signals) {
    uv_close((uv_handle_t *)&t->srv->sigterm, on_handle_closed);
    uv_close((uv_handle_t *)&t->srv->sigint, on_handle_closed);
  }
}

/* A stopping thread whose last connection is gone produces nothing more,
 * but another thread may still be about to uv_async_send it (a wake for an
 * item queued before our sessions ended). So async handles close only once
 * every thread is idle: the last one to get there wakes them all. */
static void maybe_stopped(wsn_thread_t *t) {
  if (!t->stopping || t->n_conns != 0 || t->idle) return;
  t->idle = 1;
  uv_timer_stop(&t->tick);
  uv_timer_stop(&t->apptm); /* timers live in memory: they end with the server */
  wsn_server_t *srv = t->srv;
  if (atomic_fetch_add(&srv->n_idle, 1) + 1 == srv->nthreads) {
    atomic_store(&srv->all_idle, 1);
    for (int i = 0; i < srv->nthreads; i++) uv_async_send(&srv->threads[i].async);
  }
}

void wsn_thread_conn_gone(wsn_thread_t *t) {
  maybe_stopped(t);
}

static void begin_stop(wsn_thread_t *t) {
  if (t->stopping) return;
  t->stopping = 1;
  if (t->listening) {
    uv_close((uv_handle_t *)&t->listener, on_handle_closed);
    t->listening = 0;
  }
  for (uint32_t i = 0; i < t->cap; i++)
    if (t->conns[i]) wsn_conn_shutdown(t, t->conns[i]);
  wsn_finish(t);
  maybe_stopped(t);
}

static void on_async(uv_async_t *a) {
  wsn_thread_t *t = a->loop->data;
  if (atomic_load(&t->srv->all_idle)) {
    thread_close_handles(t); /* the loop ends */
    return;
  }
  int sd = atomic_load(&t->srv->shutting_down);
  if (sd) begin_stop(t);
  if (sd == 2) /* second signal: do not wait for close frames */
    for (uint32_t i = 0; i < t->cap; i++)
      if (t->conns[i]) wsn_conn_abort(t, t->conns[i]);
  if (atomic_load_explicit(&t->qpending, memory_order_acquire))
    wsn_app_lock(t); /* drains, in lock order */
  wsn_finish(t);
}

/* A WebSocket server holds one fd per client: take the whole hard limit
 * (as Bun and nginx's worker_rlimit_nofile do), not the often-1024 soft one.
 * A program's choice (wse_native_main makes it), never the library's. */
uint64_t wse_native_raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    struct rlimit want = rl;
    want.rlim_cur = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
  }
  return rl.rlim_cur == RLIM_INFINITY ? 0 : (uint64_t)rl.rlim_cur;
}

void wse_native_ignore_sigpipe(void) {
  signal(SIGPIPE, SIG_IGN); /* a peer gone mid-write: EPIPE, not death */
}

/* The fd limit in force (whoever set it). */
static uint64_t fd_limit_now(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 0;
  return (uint64_t)rl.rlim_cur;
}

static uint64_t count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return 32; /* a fair guess for stdio, loops, listeners */
  uint64_t n = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n > 0 ? n - 1 : 0; /* not the directory's own fd */
}

/* libuv refuses connections past the fd limit silently (it accepts and
 * closes them): say so, at most every 10 s. */
static void check_fd_limit(wsn_thread_t *t, uint32_t now) {
  wsn_server_t *srv = t->srv;
  if (t->idx != 0 || !srv->fd_limit) return;
  uint64_t used = atomic_load(&srv->n_conns) + srv->base_fds;
  if (used + 8 < srv->fd_limit) return;
  if (srv->fd_warned_s && now - srv->fd_warned_s < 10) return;
  srv->fd_warned_s = now ? now : 1;
  wsn_log(WSN_LOG_WARN, "near the fd limit: %llu connections open, ulimit -n %llu; "
          "new connections are being refused", (unsigned long long)atomic_load(&srv->n_conns),
          (unsigned long long)srv->fd_limit);
}

static int make_listen_socket(const struct sockaddr *sa, socklen_t len);

static void on_listener_closed(uv_handle_t *h) {
  wsn_thread_t *t = h->loop->data;
  t->listen_closed = 1;
}

/* libuv sheds connections past the fd limit with one spare fd per loop (it
 * closes the spare, accepts and closes what is queued, reopens the spare).
 * Our threads share the fd table: another thread's accept may take the
 * slot meanwhile, and a loop left without its spare gets EMFILE back from
 * every accept, retried in a loop that never returns (no timers, no other
 * connection served). Then this thread's listener is closed instead (the
 * kernel resets what was queued on it: those clients are refused, as they
 * would have been) and made again by the tick once fds are free; the other
 * threads' listeners keep the port. */
void wsn_thread_listen_pause(wsn_thread_t *t) {
  if (!t->listening) return;
  t->listening = 0;
  t->listen_paused = 1;
  t->listen_closed = 0;
  uv_close((uv_handle_t *)&t->listener, on_listener_closed);
}

static void listen_resume(wsn_thread_t *t) {
  wsn_server_t *srv = t->srv;
  if (!t->listen_paused || !t->listen_closed || t->stopping) return;
  /* no guess at what is free: a socket made is room; a thread still at the
   * limit sheds again (at most once a tick) */
  socklen_t sl = srv->addr.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
  int fd = make_listen_socket((const struct sockaddr *)&srv->addr, sl);
  if (fd < 0) return; /* still no fd: the next tick */
  int e = uv_tcp_init(&t->loop, &t->listener);
  if (e) {
    close(fd);
    return;
  }
  t->listener.data = t;
  t->listen_closed = 0;
  e = uv_tcp_open(&t->listener, fd);
  if (e) close(fd);
  else e = uv_listen((uv_stream_t *)&t->listener, 1024, wsn_on_connection);
  if (e) {
    uv_close((uv_handle_t *)&t->listener, on_listener_closed);
    return;
  }
  t->listening = 1;
  t->listen_paused = 0;
  wsn_log(WSN_LOG_INFO, "thread %d: listening again", t->idx);
}

static void on_tick(uv_timer_t *tm) {
  wsn_thread_t *t = tm->loop->data;
  uint32_t now = wsn_now_s(t);
  check_fd_limit(t, now);
  listen_resume(t);
  for (uint32_t i = 0; i < t->cap; i++)
    if (t->conns[i]) wsn_conn_tick(t, t->conns[i], now);
  wsn_finish(t);
  maybe_stopped(t);
}

/* First call: graceful stop; a second one drops every connection. Only
 * atomics and uv_async_send: safe from any thread and a signal handler. */
static int request_stop(wsn_server_t *srv) {
  int already = atomic_exchange(&srv->shutting_down, 1);
  if (already) atomic_store(&srv->shutting_down, 2);
  for (int i = 0; i < srv->nthreads; i++) uv_async_send(&srv->threads[i].async);
  return already;
}

void wse_server_stop(wse_server_t *srv) {
  request_stop(srv);
}

static void on_signal(uv_signal_t *s, int signum) {
  wsn_server_t *srv = s->data;
  const char *name = signum == SIGINT ? "SIGINT" : "SIGTERM";
  if (request_stop(srv))
    wsn_log(WSN_LOG_WARN, "second %s: closing every connection now", name);
  else
    wsn_log(WSN_LOG_INFO, "%s: shutting down (closing clients with 1001)", name);
}

static void on_log_check(uv_check_t *h) {
  (void)h;
  wsn_log_flush(); /* once per loop iteration, after the callbacks ran */
}

static void thread_main(void *arg) {
  wsn_thread_t *t = arg;
  wsn_log_buffered(1);
  uv_run(&t->loop, UV_RUN_DEFAULT);
  wsn_log_buffered(0);
}

/* ---- listening sockets ---------------------------------------------------------- */

static int make_listen_socket(const struct sockaddr *sa, socklen_t len) {
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
      bind(fd, sa, len) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
#ifdef TCP_DEFER_ACCEPT
  /* Every client speaks first (the request head): the kernel hands us a
   * connection only once its first bytes are in, so accepting and reading
   * are one wake-up, and a peer that connects and says nothing costs no fd
   * for the first second (then it is accepted and meets the handshake
   * timeout). As nginx's "deferred" and uSockets do. Best effort. */
  (void)setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &one, sizeof one);
#endif
#ifdef __linux__
  /* Linux hands accepted sockets the listener's TCP_NODELAY: set once here,
   * not once per connection (one system call of the eleven a connect +
   * handshake + close costs). */
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
#endif
  return fd;
}

static int get_port(int fd);

/* Bind a plain socket to the address: the free port it got (or kept). */
static int probe_port(const struct sockaddr_storage *ss, socklen_t len) {
  int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      bind(fd, (const struct sockaddr *)ss, len) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  int port = get_port(fd);
  close(fd);
  return port < 0 ? -EINVAL : port;
}

static int resolve(const char *host, int port, struct sockaddr_storage *ss,
                   socklen_t *len) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  const char *h = host;
  char buf[256];
  size_t hl = strlen(host);
  if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']' && hl - 2 < sizeof buf) {
    memcpy(buf, host + 1, hl - 2);
    buf[hl - 2] = 0;
    h = buf;
  }
  int rc = getaddrinfo(h, NULL, &hints, &res);
  if (rc != 0 || !res) {
    fprintf(stderr, "wsedge: cannot resolve listen address '%s': %s\n", host,
            gai_strerror(rc));
    return -1;
  }
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  if (ss->ss_family == AF_INET)
    ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
  else
    ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
  return 0;
}

static void set_port(struct sockaddr_storage *ss, int port) {
  if (ss->ss_family == AF_INET)
    ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
  else
    ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

static int get_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t l = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &l) < 0) return -1;
  if (ss.ss_family == AF_INET)
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* ---- server lifecycle -------------------------------------------------------------- */

static int thread_init(wsn_server_t *srv, wsn_thread_t *t, int idx, int fd) {
  t->srv = srv;
  t->idx = idx;
  int e = uv_loop_init(&t->loop);
  if (e) return e;
  t->loop.data = t;
  t->rbuf = malloc(WSN_READ_BUF);
  if (!t->rbuf) return UV_ENOMEM;
  uv_mutex_init(&t->qlock);
  atomic_init(&t->qpending, 0);
  t->entropy_off = sizeof t->entropy; /* refill on first use */
  if ((e = uv_tcp_init(&t->loop, &t->listener))) return e;
  t->listener.data = t;
  if ((e = uv_tcp_open(&t->listener, fd))) {
    close(fd);
    return e;
  }
  t->listening = 1;
  if ((e = uv_listen((uv_stream_t *)&t->listener, 1024, wsn_on_connection)))
    return e;
  uv_timer_init(&t->loop, &t->tick);
  uv_timer_start(&t->tick, on_tick, 1000, 1000);
  uv_timer_init(&t->loop, &t->apptm);
  uv_async_init(&t->loop, &t->async, on_async);
  uv_check_init(&t->loop, &t->log_check);
  uv_check_start(&t->log_check, on_log_check);
  uv_unref((uv_handle_t *)&t->log_check); /* never keeps the loop alive */
  return 0;
}

static void thread_free(wsn_thread_t *t) {
  /* everything is closed; run once more so close callbacks fire */
  uv_run(&t->loop, UV_RUN_DEFAULT);
  int e = uv_loop_close(&t->loop);
  if (e) wsn_log(WSN_LOG_WARN, "thread %d: loop not closed: %s", t->idx,
                 uv_strerror(e));
  wsn_item_t *it = t->qhead;
  while (it) {
    wsn_item_t *n = it->next;
    rbuf_unref(it->buf);
    free(it);
    it = n;
  }
  uv_mutex_destroy(&t->qlock);
  wsn_obuf_cache_free(t);
  wsn_deflate_ctx_free(t->dfl);
  t->dfl = NULL;
  for (int i = 0; i < WSN_MAX_THREADS; i++) free(t->stage[i]);
  free(t->rbuf);
  free(t->conns);
  free(t->gens);
  free(t->free_slots);
  free(t->ends);
}

static void format_addr(const struct sockaddr_storage *ss, int port, char *out,
                        size_t cap) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (ss->ss_family == AF_INET) {
    inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, ip, sizeof ip);
    snprintf(out, cap, "%s:%d", ip, port);
  } else {
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, ip, sizeof ip);
    snprintf(out, cap, "[%s]:%d", ip, port);
  }
}

/* Startup failed before any loop ran: free what exists, exit code 1. */
static int fail_early(wsn_server_t *srv) {
  if (srv->app) wse_app_free(srv->app);
  uv_mutex_destroy(&srv->app_lock);
  free(srv->static_dir);
  free(srv->threads);
  free(srv);
  return 1;
}

/* The options are copied; strings they point at are copied too, so the
 * caller's options need not outlive the server. */
static int own_options(wsn_server_t *srv, const wsn_opts_t *o) {
  wsn_opts_t *so = &srv->opts;
  *so = *o;
  if (o->static_dir && !(so->static_dir = srv->static_dir = strdup(o->static_dir)))
    return -1;
  if (so->n_origins > WSN_MAX_ORIGINS) so->n_origins = WSN_MAX_ORIGINS;
  for (size_t i = 0; i < so->n_origins; i++) {
    snprintf(srv->origins[i], sizeof srv->origins[i], "%s", o->origins[i]);
    so->origins[i] = srv->origins[i];
  }
  if (so->n_origins) {
    so->cfg.allowed_origins = so->origins;
    so->cfg.n_allowed_origins = so->n_origins;
  }
  if (so->threads < 1) so->threads = 1;
  if (so->threads > WSN_MAX_THREADS) so->threads = WSN_MAX_THREADS;
  if (!so->program) so->program = "wsedge";
  return 0;
}

int wse_server_new(wse_server_t **out, const wse_native_options_t *o,
                   wse_app_entry_t entry) {
  *out = NULL;
  wsn_server_t *srv = calloc(1, sizeof *srv);
  if (!srv) return 1;
  uv_mutex_init(&srv->app_lock);
  if (own_options(srv, o) < 0) return fail_early(srv);
  wsn_opts_t *so = &srv->opts;
  wsn_log_level = so->log_level;
  srv->alloc.alloc_fn = a_alloc;
  srv->alloc.realloc_fn = a_realloc;
  srv->alloc.free_fn = a_free;
  srv->alloc.ud = NULL;
  int rc = wse_app_new(&srv->app, &srv->alloc, &so->cfg);
  if (rc < 0) {
    fprintf(stderr, "%s: cannot create the app: %s\n", so->program, wse_strerror(rc));
    return fail_early(srv);
  }
  wse_app_set_direct_send(srv->app, direct_send, srv);
  wse_app_set_attachments(srv->app, 0); /* sessions live in this process */
  rc = entry ? entry(srv->app) : WSE_EINVAL;
  if (rc < 0) {
    fprintf(stderr, "%s: the app's entry point failed: %s\n", so->program,
            wse_strerror(rc));
    return fail_early(srv);
  }

  srv->fd_limit = fd_limit_now();
  struct sockaddr_storage ss;
  socklen_t sl;
  if (resolve(so->listen_host, so->port, &ss, &sl) < 0) return fail_early(srv);
  srv->nthreads = so->threads;
  srv->threads = calloc((size_t)srv->nthreads, sizeof *srv->threads);
  if (!srv->threads) return fail_early(srv);
  int fds[WSN_MAX_THREADS];
  /* SO_REUSEPORT would let a second wsedge of the same user silently share
   * (and steal from) our port, and bind(port 0) with it may hand out a port
   * such a group already holds. So first claim the port with a plain
   * socket: that fails on any live listener and picks a truly free port. */
  int port = probe_port(&ss, sl);
  if (port < 0) {
    char a[300];
    format_addr(&ss, so->port, a, sizeof a);
    fprintf(stderr, "%s: cannot listen on %s: %s\n", so->program, a, strerror(-port));
    return fail_early(srv);
  }
  set_port(&ss, port);
  for (int i = 0; i < srv->nthreads; i++) {
    fds[i] = make_listen_socket((struct sockaddr *)&ss, sl);
    if (fds[i] < 0) {
      char a[300];
      format_addr(&ss, port, a, sizeof a);
      fprintf(stderr, "%s: cannot listen on %s: %s\n", so->program, a, strerror(-fds[i]));
      for (int k = 0; k < i; k++) close(fds[k]);
      return fail_early(srv);
    }
  }
  srv->addr = ss;
  srv->bound_port = port;
  srv->start_ms = uv_hrtime() / 1000000 - 1000;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  srv->start_wall_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
  for (int i = 0; i < srv->nthreads; i++) {
    int e = thread_init(srv, &srv->threads[i], i, fds[i]);
    if (e) {
      /* loops half set up: not worth unwinding, the process exits */
      fprintf(stderr, "%s: cannot start thread %d: %s\n", so->program, i, uv_strerror(e));
      exit(1);
    }
  }
  if ((rc = wsn_cluster_new(srv))) {
    for (int i = 0; i < srv->nthreads; i++) thread_close_handles(&srv->threads[i]);
    for (int i = 0; i < srv->nthreads; i++) thread_free(&srv->threads[i]);
    fail_early(srv);
    return rc;
  }
  if (so->handle_signals) {
    wsn_thread_t *t0 = &srv->threads[0];
    uv_signal_init(&t0->loop, &srv->sigterm);
    uv_signal_init(&t0->loop, &srv->sigint);
    srv->sigterm.data = srv->sigint.data = srv;
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv->sigint, on_signal, SIGINT);
    srv->signals = 1;
  }
  *out = srv;
  return 0;
}

int wse_server_port(const wse_server_t *srv) {
  return srv->bound_port;
}

int wse_server_run(wse_server_t *srv) {
  wsn_opts_t *so = &srv->opts;
  srv->base_fds = count_fds();
  if (srv->fd_limit && so->max_connections &&
      so->max_connections + srv->base_fds > srv->fd_limit)
    wsn_log(WSN_LOG_WARN, "--max-connections %llu is above what ulimit -n %llu allows "
            "(%llu fds in use before any client): past the fd limit connections are "
            "dropped without a 503", (unsigned long long)so->max_connections,
            (unsigned long long)srv->fd_limit, (unsigned long long)srv->base_fds);

  char a[300];
  format_addr(&srv->addr, srv->bound_port, a, sizeof a);
  fprintf(stderr, "%s listening on http://%s\n", so->program, a);
  wsn_log(WSN_LOG_INFO, "%d thread%s, fd limit %llu, static %s, max frame %llu, "
          "max message %llu, max write buffer %zu, send timeout %us, idle %us, ping %us, session %us",
          srv->nthreads, srv->nthreads == 1 ? "" : "s", (unsigned long long)srv->fd_limit,
          so->static_dir ? so->static_dir : so->index_html ? "(embedded page)" : "(none)",
          (unsigned long long)so->cfg.max_frame_size,
          (unsigned long long)so->cfg.max_message_size,
          so->cfg.max_write_buffer_size, so->send_timeout_s, so->cfg.idle_timeout_s,
          so->cfg.ping_interval_s, so->cfg.session_timeout_s);

  for (int i = 1; i < srv->nthreads; i++)
    uv_thread_create(&srv->threads[i].tid, thread_main, &srv->threads[i]);
  thread_main(&srv->threads[0]);
  for (int i = 1; i < srv->nthreads; i++) uv_thread_join(&srv->threads[i].tid);
  srv->ran = 1;
  wsn_log(WSN_LOG_INFO, "stopped after %llu connections",
          (unsigned long long)atomic_load(&srv->total_conns));
  return 0;
}

void wse_server_free(wse_server_t *srv) {
  if (!srv) return;
  if (!srv->ran) { /* never run: close the handles, let the loops finish */
    for (int i = 0; i < srv->nthreads; i++) thread_close_handles(&srv->threads[i]);
  }
  for (int i = 0; i < srv->nthreads; i++) thread_free(&srv->threads[i]);
  wsn_cluster_free(srv);
  wse_app_free(srv->app);
  uv_mutex_destroy(&srv->app_lock);
  free(srv->static_dir);
  free(srv->threads);
  free(srv);
}

uint64_t wsn_uptime_s(wsn_thread_t *t) {
  return (uv_hrtime() / 1000000 - t->srv->start_ms - 1000) / 1000;
}
