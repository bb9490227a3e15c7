/* conn.c — one TCP connection: the HTTP request head, the upgrade, the
 * WebSocket frames, corked output with a bound, and every way a connection
 * ends (close handshake, protocol error, timeouts, slow consumer, send
 * timeout, reset).
 *
 * Reads land in the thread's 64 KiB buffer; the core's wse_ws keeps any
 * partial message, so an idle connection holds no read buffer. Output is
 * appended to a lazily allocated buffer and flushed once per callback
 * (uv_try_write first, uv_write for the remainder); drained buffers go back
 * to a small per-thread cache. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#ifdef __linux__
#include <linux/sockios.h>
#endif

#include "cluster.h"
#include "http.h"
#include "log.h"
#include "cluster.h"
#include "server.h"

/* Output buffer size classes: small ones for the common case (a few frames
 * per callback; also what a broadcast leaves on each idle member), large
 * ones for bulk traffic. Drained buffers wait in per-thread caches. */
#define OBUF_SMALL 2048
#define OBUF_LARGE 65536
#define OBUF_CACHE_SMALL 256
#define OBUF_CACHE_LARGE 16
#define LINGER_S 2

static void close_now(wsn_thread_t *t, wsn_conn_t *c);
static void close_conn(wsn_thread_t *t, wsn_conn_t *c, int reset);
static void do_end(wsn_thread_t *t, wsn_conn_t *c, const uint8_t *reason,
                   size_t rn);

/* Wall clock for the app (chat `ts`), read once per libuv callback: a
 * clock_gettime per message showed up in profiles. wsn_finish clears it. */
uint64_t wsn_wall_ms(wsn_thread_t *t) {
  if (!t->wall_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    t->wall_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
  }
  return t->wall_ms;
}

static void peer_str(wsn_conn_t *c, char *out, size_t cap) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  char ip[INET6_ADDRSTRLEN];
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0) {
    snprintf(out, cap, "?");
  } else if (ss.ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    snprintf(out, cap, "%s:%u", ip, ntohs(a->sin_port));
  } else {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    snprintf(out, cap, "[%s]:%u", ip, ntohs(a->sin6_port));
  }
}

/* ---- output buffers --------------------------------------------------------- */

static wsn_obuf_t *obuf_new(wsn_thread_t *t, size_t need) {
  wsn_obuf_t *o = NULL;
  size_t cap = need <= OBUF_SMALL ? OBUF_SMALL : need <= OBUF_LARGE ? OBUF_LARGE : need;
  if (cap == OBUF_SMALL && t->n_cache[0]) o = t->cache[0][--t->n_cache[0]];
  else if (cap == OBUF_LARGE && t->n_cache[1]) o = t->cache[1][--t->n_cache[1]];
  if (!o) {
    if (cap > UINT32_MAX) return NULL;
    o = malloc(sizeof *o + cap);
    if (!o) return NULL;
    o->cap = (uint32_t)cap;
  }
  o->len = 0;
  o->off = 0;
  return o;
}

static void obuf_release(wsn_thread_t *t, wsn_obuf_t *o) {
  int k = o->cap == OBUF_SMALL ? 0 : o->cap == OBUF_LARGE ? 1 : -1;
  size_t max = k == 0 ? OBUF_CACHE_SMALL : OBUF_CACHE_LARGE;
  if (k >= 0) {
    if (!t->cache[k]) t->cache[k] = malloc(max * sizeof *t->cache[k]);
    if (t->cache[k] && t->n_cache[k] < max) {
      t->cache[k][t->n_cache[k]++] = o;
      return;
    }
  }
  free(o);
}

void wsn_obuf_cache_free(wsn_thread_t *t) {
  for (int k = 0; k < 2; k++) {
    for (size_t i = 0; i < t->n_cache[k]; i++) free(t->cache[k][i]);
    free(t->cache[k]);
    t->cache[k] = NULL;
    t->n_cache[k] = 0;
  }
}

static void want_flush(wsn_thread_t *t, wsn_conn_t *c) {
  if (c->flags & WSN_F_DIRTY) return;
  c->flags |= WSN_F_DIRTY;
  c->next_dirty = t->dirty;
  t->dirty = c;
}

static size_t queued(const wsn_conn_t *c) {
  return (c->wr ? c->wr->len - c->wr->off : 0) + (c->out ? c->out->len : 0);
}

static void conn_flush(wsn_thread_t *t, wsn_conn_t *c);

/* Room for n more bytes at the end of the corked output (unbounded; the
 * caller writes them). NULL when out of memory. */
static uint8_t *out_reserve(wsn_thread_t *t, wsn_conn_t *c, size_t n) {
  wsn_obuf_t *o = c->out;
  if (!o) {
    o = obuf_new(t, n);
    if (!o) return NULL;
    c->out = o;
  } else if (o->cap - o->len < n) {
    size_t need = (size_t)o->len + n;
    if (need <= OBUF_LARGE) { /* small -> large class, from the cache */
      wsn_obuf_t *q = obuf_new(t, need);
      if (!q) return NULL;
      memcpy(q->data, o->data, o->len);
      q->len = o->len;
      obuf_release(t, o);
      c->out = o = q;
    } else {
      size_t cap = (size_t)o->cap * 2;
      if (cap < need) cap = need;
      if (cap > UINT32_MAX) return NULL;
      wsn_obuf_t *q = realloc(o, sizeof *o + cap);
      if (!q) return NULL;
      q->cap = (uint32_t)cap;
      c->out = o = q;
    }
  }
  uint8_t *d = o->data + o->len;
  o->len += (uint32_t)n;
  want_flush(t, c);
  return d;
}

/* Unbounded append (responses, our Close frame). */
static int out_put(wsn_thread_t *t, wsn_conn_t *c, const void *p, size_t n) {
  uint8_t *d = out_reserve(t, c, n);
  if (!d) return -1;
  if (n) memcpy(d, p, n);
  return 0;
}

/* Append bounded by the route's max_write_buffer_size: a single frame may
 * exceed it when nothing else is queued, but queued output never grows past
 * it. Returns -1 when the bound would be crossed. */
int wsn_conn_append(wsn_thread_t *t, wsn_conn_t *c, const uint8_t *p, size_t n) {
  size_t q = queued(c);
  if (q && (c->flags & WSN_F_WS_INIT) &&
      q + n > c->u.ws.cfg->max_write_buffer_size) {
    /* Corking batches a whole callback's output: before calling the peer
     * slow, hand what we hold to the kernel (rare path, so the syscall under
     * the app lock is acceptable). Only what the kernel refuses counts. */
    if (!c->wr && c->out) {
      conn_flush(t, c);
      if (c->state == WSN_ST_DEAD) return -2;
      q = queued(c);
    }
    if (q && q + n > c->u.ws.cfg->max_write_buffer_size) return -1;
  }
  return out_put(t, c, p, n);
}

/* The app's direct SEND (server.c direct_send): frame the message straight
 * into the corked output, no copy through the app's action arena. Returns 0
 * (the app queues the action instead) for anything off the plain path:
 * compression, a closing connection, the write bound, out of memory. */
int wsn_conn_direct(wsn_thread_t *t, wsn_conn_t *c, unsigned op,
                    const uint8_t *p, size_t n) {
  if (c->state != WSN_ST_WS || c->dfl) return 0;
  size_t hl = n < 126 ? 2 : wse_frame_header_size(n, 0), fl = hl + n;
  wsn_obuf_t *o = c->out;
  size_t q = queued(c);
  if (q && q + fl > c->u.ws.cfg->max_write_buffer_size) return 0;
  uint8_t *d;
  if (o && o->cap - o->len >= fl) { /* the common case: room in the cork */
    d = o->data + o->len;
    o->len += (uint32_t)fl;
    want_flush(t, c);
  } else if (!(d = out_reserve(t, c, fl))) {
    return 0;
  }
  if (hl == 2) { /* FIN + opcode, 7-bit length, unmasked */
    d[0] = (uint8_t)(0x80 | op);
    d[1] = (uint8_t)n;
  } else {
    wse_frame_write_header(d, 1, 0, op, n, NULL);
  }
  if (n) memcpy(d + hl, p, n);
  return 1;
}

static void slow_consumer(wsn_thread_t *t, wsn_conn_t *c) {
  wsn_log(WSN_LOG_WARN, "slow consumer on thread %d slot %u: %zu bytes queued, closing with 1008",
          t->idx, c->slot, queued(c));
  atomic_fetch_add_explicit(&t->srv->n_slow, 1, memory_order_relaxed);
  if (c->out) {
    /* only whole frames live here (a partial one is in flight in wr) */
    obuf_release(t, c->out);
    c->out = NULL;
  }
  wsn_conn_close_ws(t, c, WSE_CLOSE_POLICY, "slow consumer", 13);
}

void wsn_conn_deliver(wsn_thread_t *t, wsn_conn_t *c, const uint8_t *p,
                      size_t n) {
  if (c->state != WSN_ST_WS) return;
  wsn_obuf_t *o = c->out;
  /* fast path: room in the corked buffer and under the bound */
  if (o && !c->dfl && o->cap - o->len >= n &&
      (size_t)o->len + n + (c->wr ? c->wr->len - c->wr->off : 0) <=
          c->u.ws.cfg->max_write_buffer_size) {
    memcpy(o->data + o->len, p, n);
    o->len += (uint32_t)n;
    want_flush(t, c);
    return;
  }
  /* data frames are re-framed compressed (control frames never are); no
   * context takeover: the thread's cached frame for this message */
  if (c->dfl && wsn_deflate_frame(c->dfl, t->dfl, p, n, &p, &n) < 0) {
    wsn_conn_close_ws(t, c, WSE_CLOSE_INTERNAL, "compression failed", 18);
    return;
  }
  if (wsn_conn_append(t, c, p, n) == -1) slow_consumer(t, c);
}

/* ---- flushing ----------------------------------------------------------------- */


static void on_shutdown(uv_shutdown_t *req, int status) {
  wsn_conn_t *c = (wsn_conn_t *)req->handle;
  wsn_thread_t *t = c->tcp.loop->data;
  free(req);
  if (status < 0 && c->state != WSN_ST_DEAD) {
    close_now(t, c);
    wsn_finish(t);
  }
}

static void drained(wsn_thread_t *t, wsn_conn_t *c) {
  if (c->flags & WSN_F_SHUT) {
    c->flags &= (uint8_t)~WSN_F_SHUT;
    /* nothing left in libuv's queue either: shutdown(2) at once. uv_shutdown
     * would wait for a POLLOUT it asks the poller for (one epoll_ctl per
     * connection, a malloc) to find the queue it already is empty. */
    uv_os_fd_t fd;
    if (!uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) &&
        !uv_fileno((uv_handle_t *)&c->tcp, &fd)) {
      if (shutdown(fd, SHUT_WR) != 0 && errno != ENOTCONN) close_now(t, c);
      return;
    }
    uv_shutdown_t *r = malloc(sizeof *r);
    if (!r || uv_shutdown(r, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
      free(r);
      close_now(t, c);
    }
  }
}

/* The last bytes before our FIN (a Close, an HTTP error answer): written
 * with MSG_MORE so that the kernel holds them for the shutdown(2) drained()
 * makes right after, which sends them and the FIN in one segment (one
 * packet less for both ends to process per connection). LAST_WRITE_NONE:
 * not that case, uv_try_write does the write. */
#define LAST_WRITE_NONE INT_MIN
static int last_write(wsn_conn_t *c, const wsn_obuf_t *o) {
#ifdef MSG_MORE
  uv_os_fd_t fd;
  if (!(c->flags & WSN_F_SHUT) || uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) ||
      uv_fileno((uv_handle_t *)&c->tcp, &fd))
    return LAST_WRITE_NONE;
  ssize_t n;
  do n = send(fd, o->data, o->len, MSG_MORE | MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n >= 0) return (int)n;
  return errno == EAGAIN || errno == EWOULDBLOCK ? UV_EAGAIN : uv_translate_sys_error(errno);
#else
  (void)c;
  (void)o;
  return LAST_WRITE_NONE;
#endif
}

static void conn_fail(wsn_thread_t *t, wsn_conn_t *c, int err, const char *what) {
  wsn_log(WSN_LOG_DEBUG, "thread %d slot %u: %s: %s", t->idx, c->slot, what,
          uv_strerror(err));
  if (c->state == WSN_ST_WS) c->close_code = WSE_CLOSE_ABNORMAL;
  close_now(t, c);
}

static void on_write(uv_write_t *req, int status) {
  wsn_obuf_t *o = (wsn_obuf_t *)req;
  wsn_conn_t *c = (wsn_conn_t *)req->handle;
  wsn_thread_t *t = c->tcp.loop->data;
  c->wr = NULL;
  obuf_release(t, o);
  if (status < 0) {
    if (status != UV_ECANCELED && c->state != WSN_ST_DEAD)
      conn_fail(t, c, status, "write");
  } else {
    conn_flush(t, c);
  }
  wsn_finish(t);
}

static void conn_flush(wsn_thread_t *t, wsn_conn_t *c) {
  if (c->state == WSN_ST_DEAD || c->wr) return;
  wsn_obuf_t *o = c->out;
  if (!o || !o->len) {
    if (o) {
      c->out = NULL;
      obuf_release(t, o);
    }
    drained(t, c);
    return;
  }
  uv_buf_t b = uv_buf_init((char *)o->data, o->len);
  int r = last_write(c, o);
  if (r == LAST_WRITE_NONE) r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (r >= 0 && (uint32_t)r == o->len) {
    c->out = NULL;
    obuf_release(t, o);
    drained(t, c);
    return;
  }
  if (r < 0 && r != UV_EAGAIN) {
    conn_fail(t, c, r, "write");
    return;
  }
  if (r < 0) r = 0;
  c->out = NULL;
  c->wr = o;
  o->off = (uint32_t)r;
  o->moved_ms = wsn_now_ms32(t); /* a write starting is progress */
  o->seen_wq = o->seen_kq = WSN_UNSEEN;
  b = uv_buf_init((char *)o->data + r, o->len - (uint32_t)r);
  int e = uv_write(&o->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (e) {
    c->wr = NULL;
    obuf_release(t, o);
    conn_fail(t, c, e, "write");
  }
}

void wsn_flush_dirty(wsn_thread_t *t) {
  while (t->dirty) {
    wsn_conn_t *c = t->dirty;
    t->dirty = c->next_dirty;
    c->next_dirty = NULL;
    c->flags &= (uint8_t)~WSN_F_DIRTY;
    conn_flush(t, c);
  }
}

/* ---- lifecycle ------------------------------------------------------------------- */

static void on_closed(uv_handle_t *h) {
  wsn_conn_t *c = (wsn_conn_t *)h;
  wsn_thread_t *t = h->loop->data;
  if (c->out) obuf_release(t, c->out);
  if (c->wr) obuf_release(t, c->wr); /* not reached: libuv cancels first */
  if (c->flags & WSN_F_WS_INIT)
    wse_ws_free(&c->u.ws);
  else
    free(c->u.http.buf);
  if (c->dfl) {
    wsn_deflate_free(c->dfl);
    atomic_fetch_sub(&t->srv->n_deflate, 1);
  }
  uint32_t s = c->slot;
  t->conns[s] = NULL;
  if (++t->gens[s] == 0) t->gens[s] = 1;
  t->free_slots[t->n_free++] = s;
  t->n_conns--;
  if (c->flags & WSN_F_COUNTED) atomic_fetch_sub(&t->srv->n_conns, 1);
  free(c);
  wsn_thread_conn_gone(t);
}

/* reset: RST (SO_LINGER 0) instead of a FIN behind whatever the kernel
 * still holds; the kernel frees that queue at once. */
static void close_conn(wsn_thread_t *t, wsn_conn_t *c, int reset) {
  if (c->state == WSN_ST_DEAD) return;
  if (c->flags & WSN_F_SESSION) {
    if (!c->close_code) c->close_code = WSE_CLOSE_ABNORMAL;
    wsn_conn_end_session(t, c);
  }
  c->state = WSN_ST_DEAD;
  if (!reset || uv_tcp_close_reset(&c->tcp, on_closed) != 0) /* EINVAL: shutting down */
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void close_now(wsn_thread_t *t, wsn_conn_t *c) {
  close_conn(t, c, 0);
}

void wsn_conn_abort(wsn_thread_t *t, wsn_conn_t *c) {
  close_now(t, c);
}

/* Response queued: shut the write side once it is out, then drain input
 * until the peer closes (closing with unread input would reset the
 * connection and could destroy the response before the client reads it). */
void wsn_conn_linger(wsn_thread_t *t, wsn_conn_t *c) {
  if (c->state == WSN_ST_HTTP) {
    free(c->u.http.buf);
    memset(&c->u.http, 0, sizeof c->u.http);
  }
  c->state = WSN_ST_LINGER;
  c->flags |= WSN_F_SHUT;
  c->deadline_s = wsn_now_s(t) + LINGER_S;
  want_flush(t, c);
}

void wsn_conn_end_session(wsn_thread_t *t, wsn_conn_t *c) {
  if (!(c->flags & WSN_F_SESSION)) return;
  c->flags &= (uint8_t)~WSN_F_SESSION;
  if (t->in_exec) {
    if (t->n_ends == t->cap_ends) {
      size_t cap = t->cap_ends ? t->cap_ends * 2 : 16;
      wsn_conn_t **p = realloc(t->ends, cap * sizeof *p);
      if (!p) {
        wsn_log(WSN_LOG_ERROR, "out of memory deferring a session close");
        abort();
      }
      t->ends = p;
      t->cap_ends = cap;
    }
    t->ends[t->n_ends++] = c;
    return;
  }
  do_end(t, c, NULL, 0);
}

void wsn_conn_end_deferred(wsn_thread_t *t, wsn_conn_t *c) {
  do_end(t, c, NULL, 0);
}

static void do_end(wsn_thread_t *t, wsn_conn_t *c, const uint8_t *reason,
                   size_t rn) {
  wsn_server_t *srv = t->srv;
  wsn_app_lock(t);
  if (wsn_log_on(WSN_LOG_INFO)) {
    wse_session_t *s = wse_app_session(srv->app, c->sess);
    char sid[WSE_SID_LEN + 1] = "?";
    char peer[64];
    wse_str_t topic = {"", 0};
    if (s) wse_sid_format(&s->id, sid), wse_app_session_topic(srv->app, s, 0, &topic);
    sid[WSE_SID_LEN] = 0;
    peer_str(c, peer, sizeof peer);
    wsn_log(WSN_LOG_INFO, "close sid=%s room=%.*s peer=%s code=%u ms=%u", sid,
            (int)topic.n, topic.n ? topic.p : "", peer, c->close_code,
            wsn_now_ms32(t) - c->open_ms);
  }
  wse_app_close(srv->app, c->sess, c->close_code, reason, rn, wsn_wall_ms(t));
  atomic_fetch_sub(&srv->n_ws, 1);
  wsn_exec_actions(t);
}

/* Our side starts the close handshake (app close, timeouts, slow consumer,
 * shutdown). The session ends now; the socket waits for the peer's Close
 * for close_timeout. */
void wsn_conn_close_ws(wsn_thread_t *t, wsn_conn_t *c, unsigned code,
                       const char *reason, size_t n) {
  if (c->state != WSN_ST_WS) return;
  uint8_t f[127];
  size_t k = wse_ws_close(&c->u.ws, f, code, reason, n);
  if (k && out_put(t, c, f, k) < 0) {
    c->close_code = (uint16_t)code;
    close_now(t, c);
    return;
  }
  c->close_code = (uint16_t)code;
  c->state = WSN_ST_WS_CLOSING;
  c->deadline_s = wsn_now_s(t) + c->u.ws.cfg->close_timeout_s;
  wsn_conn_end_session(t, c);
}

/* ---- WebSocket input ------------------------------------------------------------- */

static void send_pong(wsn_thread_t *t, wsn_conn_t *c, const uint8_t *p, size_t n) {
  uint8_t f[WSE_FRAME_HEADER_MAX + 125];
  size_t h = wse_frame_write_header(f, 1, 0, WSE_OP_PONG, n, NULL);
  memcpy(f + h, p, n);
  if (wsn_conn_append(t, c, f, h + n) == -1) slow_consumer(t, c);
}

/* A compressed message that cannot be delivered (bomb past the limit,
 * invalid DEFLATE data, invalid UTF-8 once inflated): our Close, then the
 * normal closing handshake (the engine itself is still in sync). */
static void deflate_failed(wsn_thread_t *t, wsn_conn_t *c, int rc) {
  unsigned code = wsn_deflate_close_code(rc);
  const char *why = wsn_deflate_strerror(rc);
  wsn_log(WSN_LOG_DEBUG, "thread %d slot %u: %s, closing with %u", t->idx,
          c->slot, why, code);
  if (c->flags & WSN_F_SESSION) {
    wsn_app_lock(t);
    wse_app_error(t->srv->app, c->sess, rc == WSN_DEFLATE_EDATA ? WSE_EPROTO : rc,
                  wsn_wall_ms(t));
  }
  wsn_conn_close_ws(t, c, code, why, strlen(why));
}

static void ws_feed(wsn_thread_t *t, wsn_conn_t *c, uint8_t *p, size_t n) {
  wse_ws_t *ws = &c->u.ws;
  c->last_rx_s = wsn_now_s(t);
  while (c->state == WSN_ST_WS || c->state == WSN_ST_WS_CLOSING) {
    size_t used = 0;
    wse_event_t ev; /* wse_ws_parse clears it first */
    wse_ws_parse(ws, p, n, &used, &ev);
    if (used > n) used = n;
    p += used;
    n -= used;
    switch (ev.type) {
    case WSE_EV_NONE:
      break;
    case WSE_EV_MESSAGE: {
      if (c->state != WSN_ST_WS) break;
      const uint8_t *mp = ev.data;
      size_t mn = ev.len;
      /* inflate outside the app lock; RSV1 reaches here only when the
       * engine was told the extension owns it */
      if (ev.compressed) {
        int rc = wsn_deflate_inflate(c->dfl, t->dfl, ev.opcode, ev.data, ev.len, &mp, &mn);
        if (rc < 0) {
          deflate_failed(t, c, rc);
          break;
        }
      }
      if (!t->locked) wsn_app_lock(t); /* may deliver queued items, even a close to us */
      if (c->state == WSN_ST_WS && (c->flags & WSN_F_SESSION)) {
        wse_app_message(t->srv->app, c->sess, ev.opcode, mp, mn, wsn_wall_ms(t));
        wsn_exec_actions(t);
      }
      break;
    }
    case WSE_EV_PING:
      if (c->state == WSN_ST_WS) send_pong(t, c, ev.data, ev.len);
      break;
    case WSE_EV_PONG:
      break;
    case WSE_EV_CLOSE:
      if (c->state == WSN_ST_WS) {
        uint8_t f[127];
        size_t k = wse_ws_close(ws, f, ev.close_code, NULL, 0);
        if (k) out_put(t, c, f, k);
        c->close_code = (uint16_t)ev.close_code;
        c->state = WSN_ST_WS_CLOSING;
        if (c->flags & WSN_F_SESSION) {
          c->flags &= (uint8_t)~WSN_F_SESSION;
          do_end(t, c, ev.reason, ev.reason_len);
        }
      }
      /* handshake complete: the server closes TCP first (RFC 6455 §7.1.1)
       * with a FIN once our Close is out, then discards input until the
       * peer's FIN. Closing outright while frames the peer sent after its
       * Close sit unread would reset the connection, and a reset can
       * destroy our Close before the peer reads it. */
      wsn_conn_linger(t, c);
      return;
    case WSE_EV_ERROR: {
      unsigned code = ev.close_code ? ev.close_code : wse_close_code_for(ev.error);
      wsn_log(WSN_LOG_DEBUG, "thread %d slot %u: %s, closing with %u", t->idx,
              c->slot, wse_strerror(ev.error), code);
      if (c->state == WSN_ST_WS) {
        const char *why = wse_strerror(ev.error);
        uint8_t f[127];
        size_t k = wse_ws_close(ws, f, code, why, strlen(why));
        if (k) out_put(t, c, f, k);
        c->close_code = (uint16_t)code;
        c->state = WSN_ST_WS_CLOSING;
        c->deadline_s = wsn_now_s(t) + ws->cfg->close_timeout_s;
        if (c->flags & WSN_F_SESSION) {
          wsn_app_lock(t);
          wse_app_error(t->srv->app, c->sess, ev.error, wsn_wall_ms(t));
          wsn_conn_end_session(t, c);
        }
        /* the engine ignores further input: half-close and wait for EOF */
        c->flags |= WSN_F_SHUT;
        want_flush(t, c);
      } else {
        wsn_conn_linger(t, c); /* our Close was already out */
      }
      return;
    }
    }
    if (n == 0 && ev.type == WSE_EV_NONE) break;
    if (used == 0 && ev.type == WSE_EV_NONE) break; /* defensive */
  }
}

/* ---- HTTP input --------------------------------------------------------------------- */

static int http_buf_append(wsn_conn_t *c, const char *p, size_t n) {
  size_t need = (size_t)c->u.http.len + n;
  if (need > c->u.http.cap) {
    size_t cap = c->u.http.cap ? c->u.http.cap : 1024;
    while (cap < need) cap *= 2;
    char *b = realloc(c->u.http.buf, cap);
    if (!b) return -1;
    c->u.http.buf = b;
    c->u.http.cap = (uint32_t)cap;
  }
  memcpy(c->u.http.buf + c->u.http.len, p, n);
  c->u.http.len = (uint32_t)need;
  return 0;
}

static void ws_upgrade(wsn_thread_t *t, wsn_conn_t *c, const wse_request_t *req,
                       uint8_t *rest, size_t rn) {
  wsn_server_t *srv = t->srv;
  uint8_t ent[16];
  wsn_entropy(t, ent);
  wsn_app_lock(t);
  wse_upgrade_t u;
  wse_response_t resp;
  memset(&resp, 0, sizeof resp);
  /* past the compression budget, new clients get no permessage-deflate
   * (they still connect): zlib state never grows without bound */
  uint64_t cap = srv->opts.deflate_max_memory;
  wse_app_set_deflate(srv->app, !cap || wsn_deflate_memory() < cap);
  int h = wse_app_upgrade(srv->app, req, ent, wsn_wall_ms(t), &u, &resp);
  if (h < 0) {
    wsn_log(WSN_LOG_DEBUG, "upgrade of %.*s rejected: %d", (int)req->target.n,
            req->target.p, resp.status);
    wsn_respond_app(t, c, &resp, 0);
    return;
  }
  const wse_config_t *cfg = NULL;
  if (!wse_app_match(srv->app, req->target, &cfg) || !cfg) cfg = &srv->opts.cfg;
  /* the route's config negotiated the extension; its state exists before
   * the 101 announces it */
  wsn_deflate_t *dfl = NULL;
  char buf[1024];
  long rl = -1;
  if (!u.deflate_accepted ||
      ((t->dfl || (t->dfl = wsn_deflate_ctx_new())) &&
       (dfl = wsn_deflate_new(cfg, &u.deflate))))
    rl = wse_response_write(&resp, buf, sizeof buf);
  if (rl < 0 || out_put(t, c, buf, (size_t)rl) < 0) {
    wsn_log(WSN_LOG_ERROR, "cannot write the 101 response (%ld)", rl);
    wsn_deflate_free(dfl);
    wse_app_close(srv->app, (uint32_t)h, WSE_CLOSE_ABNORMAL, NULL, 0, wsn_wall_ms(t));
    wsn_exec_actions(t);
    close_now(t, c);
    return;
  }
  wse_session_t *s = wse_app_session(srv->app, (uint32_t)h);
  if ((uint32_t)h >= srv->max_handle) srv->max_handle = (uint32_t)h + 1;
  s->host = wsn_host_encode(t, c);
  c->sess = (uint32_t)h;
  c->flags |= WSN_F_SESSION | WSN_F_WS_INIT;
  c->state = WSN_ST_WS;
  memset(&c->u.http, 0, sizeof c->u.http);
  wse_ws_init(&c->u.ws, cfg, &srv->alloc, WSE_WS_SERVER | (dfl ? WSE_WS_RSV1 : 0));
  if (dfl) {
    c->dfl = dfl;
    atomic_fetch_add(&srv->n_deflate, 1);
  }
  c->open_ms = wsn_now_ms32(t);
  c->last_rx_s = c->last_ping_s = wsn_now_s(t);
  atomic_fetch_add(&srv->n_ws, 1);
  if (wsn_log_on(WSN_LOG_INFO)) {
    char sid[WSE_SID_LEN + 1], peer[64];
    wse_sid_format(&s->id, sid);
    sid[WSE_SID_LEN] = 0;
    peer_str(c, peer, sizeof peer);
    wse_str_t path = wsn_http_path(req->target);
    wsn_log(WSN_LOG_INFO, "open sid=%s path=%.*s peer=%s thread=%d", sid,
            (int)path.n, path.p, peer, t->idx);
  }
  wsn_cluster_before_open(srv, s);
  wse_app_open(srv->app, (uint32_t)h, wsn_wall_ms(t));
  wsn_exec_actions(t);
  /* bytes pipelined after the head belong to the WebSocket */
  if (rn && c->state == WSN_ST_WS) ws_feed(t, c, rest, rn);
}

static void app_http(wsn_thread_t *t, wsn_conn_t *c, const wse_request_t *req,
                     const uint8_t *body, size_t bn) {
  wsn_app_lock(t);
  wse_response_t resp;
  memset(&resp, 0, sizeof resp);
  wsn_cluster_before_http(t->srv, req);
  wse_app_http(t->srv->app, req, body, bn, wsn_wall_ms(t), &resp);
  int head = req->method.n == 4 && memcmp(req->method.p, "HEAD", 4) == 0;
  wsn_respond_app(t, c, &resp, head);
  wsn_exec_actions(t);
}

static void dispatch(wsn_thread_t *t, wsn_conn_t *c, const wse_request_t *req,
                     const uint8_t *body, size_t bn, uint8_t *rest, size_t rn) {
  if (c->flags & WSN_F_REJECT) {
    wsn_respond_json_error(t, c, 503, "too many connections", "Retry-After: 1\r\n");
    return;
  }
  if (wse_is_upgrade_request(req)) {
    ws_upgrade(t, c, req, rest, rn);
    return;
  }
  if (wsn_host_route(t, c, req)) return;
  app_http(t, c, req, body, bn);
}

static void http_feed(wsn_thread_t *t, wsn_conn_t *c, char *p, size_t n) {
  char *data = p;
  size_t len = n;
  if (c->u.http.len) {
    if (http_buf_append(c, p, n) < 0) {
      close_now(t, c);
      return;
    }
    data = c->u.http.buf;
    len = c->u.http.len;
  }
  size_t end = wsn_http_head_end(data, len, c->u.http.scanned);
  if (!end) {
    if (len > WSN_HTTP_HEAD_MAX) {
      wsn_respond_json_error(t, c, 431, "request head too large", NULL);
      return;
    }
    if (data == p && http_buf_append(c, p, n) < 0) {
      close_now(t, c);
      return;
    }
    c->u.http.scanned = (uint32_t)len;
    return;
  }
  if (end > WSN_HTTP_HEAD_MAX) {
    wsn_respond_json_error(t, c, 431, "request head too large", NULL);
    return;
  }
  wse_header_t hdrs[WSN_HTTP_MAX_HEADERS];
  wse_request_t req;
  int rc = wsn_http_parse(data, end, &req, hdrs, WSN_HTTP_MAX_HEADERS);
  if (rc == WSN_HTTP_TOO_MANY) {
    wsn_respond_json_error(t, c, 431, "too many header fields", NULL);
    return;
  }
  if (rc < 0) {
    wsn_respond_json_error(t, c, 400, "malformed request", NULL);
    return;
  }
  wsn_http_body_t bi;
  wsn_http_body_info(&req, &bi);
  if (bi.chunked) {
    wsn_respond_json_error(t, c, 411, "chunked request bodies are not supported; send Content-Length", NULL);
    return;
  }
  if (bi.bad_length) {
    wsn_respond_json_error(t, c, 400, "invalid Content-Length", NULL);
    return;
  }
  if (bi.length > WSN_HTTP_BODY_MAX) {
    wsn_respond_json_error(t, c, 413, "request body too large", NULL);
    return;
  }
  size_t need = end + (size_t)bi.length;
  if (len < need) {
    if (data == p && http_buf_append(c, p, n) < 0) {
      close_now(t, c);
      return;
    }
    c->u.http.scanned = 0;
    return;
  }
  /* take the buffer: the request points into it, and the union is about to
   * become the WebSocket engine */
  char *hbuf = c->u.http.buf;
  memset(&c->u.http, 0, sizeof c->u.http);
  dispatch(t, c, &req, (const uint8_t *)data + end, (size_t)bi.length,
           (uint8_t *)data + need, len - need);
  free(hbuf);
}

/* ---- libuv callbacks ------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  wsn_thread_t *t = h->loop->data;
  buf->base = (char *)t->rbuf;
  buf->len = WSN_READ_BUF;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  wsn_conn_t *c = (wsn_conn_t *)s;
  wsn_thread_t *t = s->loop->data;
  if (nread == 0) return;
  if (nread < 0) {
    if (c->state == WSN_ST_WS) c->close_code = WSE_CLOSE_ABNORMAL;
    if (nread != UV_EOF)
      wsn_log(WSN_LOG_DEBUG, "thread %d slot %u: read: %s", t->idx, c->slot,
              uv_strerror((int)nread));
    close_now(t, c);
    wsn_finish(t);
    return;
  }
  switch (c->state) {
  case WSN_ST_HTTP:
    http_feed(t, c, buf->base, (size_t)nread);
    break;
  case WSN_ST_WS:
  case WSN_ST_WS_CLOSING:
    ws_feed(t, c, (uint8_t *)buf->base, (size_t)nread);
    break;
  default:
    break; /* lingering: discard */
  }
  wsn_finish(t);
}

static int slot_alloc(wsn_thread_t *t, wsn_conn_t *c) {
  if (!t->n_free) {
    uint32_t cap = t->cap ? t->cap * 2 : 256;
    if (cap > 0xffffff) return -1;
    wsn_conn_t **cs = realloc(t->conns, cap * sizeof *cs);
    if (!cs) return -1;
    t->conns = cs;
    uint32_t *g = realloc(t->gens, cap * sizeof *g);
    if (!g) return -1;
    t->gens = g;
    uint32_t *f = realloc(t->free_slots, cap * sizeof *f);
    if (!f) return -1;
    t->free_slots = f;
    for (uint32_t i = cap; i > t->cap; i--) {
      t->conns[i - 1] = NULL;
      t->gens[i - 1] = 1;
      t->free_slots[t->n_free++] = i - 1;
    }
    t->cap = cap;
  }
  uint32_t s = t->free_slots[--t->n_free];
  t->conns[s] = c;
  c->slot = s;
  return 0;
}

static void on_reject_closed(uv_handle_t *h) {
  free(h);
}

void wsn_on_connection(uv_stream_t *server, int status) {
  wsn_thread_t *t = server->loop->data;
  wsn_server_t *srv = t->srv;
  if (status < 0) {
    if (status == UV_EMFILE || status == UV_ENFILE || status == UV_ENOBUFS ||
        status == UV_ENOMEM) {
      /* libuv would retry this accept at once, forever: see wsn_thread_listen_pause */
      wsn_log(WSN_LOG_WARN, "thread %d: accept: %s: not listening on this thread until the tick finds room",
              t->idx, uv_strerror(status));
      wsn_thread_listen_pause(t);
      return;
    }
    wsn_log(WSN_LOG_ERROR, "thread %d: accept: %s", t->idx, uv_strerror(status));
    return;
  }
  wsn_conn_t *c = calloc(1, sizeof *c);
  if (!c) {
    wsn_log(WSN_LOG_ERROR, "thread %d: out of memory accepting", t->idx);
    return;
  }
  uv_tcp_init(&t->loop, &c->tcp);
  int e = uv_accept(server, (uv_stream_t *)&c->tcp);
  if (e || slot_alloc(t, c) < 0) {
    if (e) wsn_log(WSN_LOG_ERROR, "thread %d: accept: %s", t->idx, uv_strerror(e));
    uv_close((uv_handle_t *)&c->tcp, on_reject_closed);
    return;
  }
  t->n_conns++;
  c->flags = WSN_F_COUNTED;
  uint64_t n = atomic_fetch_add(&srv->n_conns, 1) + 1;
  atomic_fetch_add(&srv->total_conns, 1);
  if (srv->opts.max_connections && n > srv->opts.max_connections)
    c->flags |= WSN_F_REJECT;
  c->state = WSN_ST_HTTP;
  c->open_ms = wsn_now_ms32(t);
  c->deadline_s = wsn_now_s(t) + srv->opts.cfg.handshake_timeout_s;
#ifndef __linux__
  uv_tcp_nodelay(&c->tcp, 1); /* Linux: the listener's, inherited */
#endif
  e = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (e) close_now(t, c);
  if (t->stopping) close_now(t, c);
}

/* ---- timers and shutdown ------------------------------------------------------------- */

static const uint8_t ping_frame[2] = {0x89, 0x00};

/* Bytes the kernel holds for the peer, sent or not, until acknowledged. */
static uint32_t kernel_queued(wsn_conn_t *c) {
#ifdef SIOCOUTQ
  uv_os_fd_t fd;
  int n = 0;
  if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) == 0 && ioctl(fd, SIOCOUTQ, &n) == 0 && n > 0)
    return (uint32_t)n;
#else
  (void)c;
#endif
  return 0;
}

/* --send-timeout: a write is in flight and none of the output has drained
 * for send_timeout_s. Progress is a write starting or completing (a new
 * in-flight buffer), libuv's write queue shrinking (a partial write) or the
 * kernel's send queue changing (the peer acknowledged data, or the kernel
 * took more): a slow reader always moves one of them, one that stopped
 * reading (zero window) or vanished moves none. Only connections with a
 * write in flight are looked at; output the kernel took whole costs us
 * nothing (a peer that never reads it meets the idle timeout). */
static int send_stuck(wsn_thread_t *t, wsn_conn_t *c, uint32_t *kq) {
  uint32_t limit = t->srv->opts.send_timeout_s;
  wsn_obuf_t *o = c->wr;
  if (!limit || !o) return 0;
  uint32_t now = wsn_now_ms32(t);
  uint32_t wq = (uint32_t)uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
  *kq = kernel_queued(c);
  if (wq != o->seen_wq || *kq != o->seen_kq) {
    o->seen_wq = wq;
    o->seen_kq = *kq;
    o->moved_ms = now;
    return 0;
  }
  return (uint64_t)(uint32_t)(now - o->moved_ms) >= (uint64_t)limit * 1000;
}

/* Cut a connection whose output is stuck: the session ends with 1008 (the
 * app's on_close runs), queued output is freed and TCP is reset. A Close
 * frame cannot be written: it would go behind a write stuck mid-frame that
 * the peer is not reading; the RST reaches its kernel regardless of its
 * window and frees ours of the unacknowledged queue. */
static void send_timeout(wsn_thread_t *t, wsn_conn_t *c, uint32_t kq) {
  wsn_log(WSN_LOG_WARN, "send timeout on thread %d slot %u: %zu bytes queued, %u in the kernel, "
          "nothing drained for %us: closing (1008, reset)", t->idx, c->slot, queued(c), kq,
          t->srv->opts.send_timeout_s);
  atomic_fetch_add_explicit(&t->srv->n_send_timeouts, 1, memory_order_relaxed);
  if (c->out) {
    obuf_release(t, c->out);
    c->out = NULL;
  }
  if (c->state == WSN_ST_WS) c->close_code = WSE_CLOSE_POLICY;
  close_conn(t, c, 1);
}

void wsn_conn_tick(wsn_thread_t *t, wsn_conn_t *c, uint32_t now) {
  uint32_t kq = 0;
  if ((c->state == WSN_ST_WS || c->state == WSN_ST_WS_CLOSING) && send_stuck(t, c, &kq)) {
    send_timeout(t, c, kq);
    return;
  }
  switch (c->state) {
  case WSN_ST_HTTP:
    if ((int32_t)(now - c->deadline_s) >= 0) {
      wsn_log(WSN_LOG_DEBUG, "thread %d slot %u: handshake timeout", t->idx, c->slot);
      close_now(t, c);
    }
    break;
  case WSN_ST_LINGER:
  case WSN_ST_WS_CLOSING:
    if ((int32_t)(now - c->deadline_s) >= 0) close_now(t, c);
    break;
  case WSN_ST_WS: {
    const wse_config_t *cfg = c->u.ws.cfg;
    uint32_t age_ms = wsn_now_ms32(t) - c->open_ms;
    if (c->dfl) wsn_deflate_tick(c->dfl, t->srv->opts.deflate_idle_s);
    if (cfg->session_timeout_s && age_ms / 1000 >= cfg->session_timeout_s) {
      wsn_conn_close_ws(t, c, WSE_CLOSE_TIMEOUT, "timeout", 7);
    } else if (cfg->idle_timeout_s && now - c->last_rx_s >= cfg->idle_timeout_s) {
      wsn_conn_close_ws(t, c, WSE_CLOSE_GOING_AWAY, "idle timeout", 12);
    } else if (cfg->ping_interval_s && now - c->last_rx_s >= cfg->ping_interval_s &&
               now - c->last_ping_s >= cfg->ping_interval_s) {
      c->last_ping_s = now;
      if (wsn_conn_append(t, c, ping_frame, sizeof ping_frame) == -1)
        slow_consumer(t, c);
    }
    break;
  }
  default:
    break;
  }
}

void wsn_conn_shutdown(wsn_thread_t *t, wsn_conn_t *c) {
  switch (c->state) {
  case WSN_ST_WS:
    wsn_conn_close_ws(t, c, WSE_CLOSE_GOING_AWAY, "going away", 10);
    break;
  case WSN_ST_HTTP:
  case WSN_ST_LINGER:
    close_now(t, c);
    break;
  default:
    break;
  }
}
