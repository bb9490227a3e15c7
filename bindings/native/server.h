/* server.h — the native host's internals: server, per-thread loops and
 * connections. Names: wsn_* (wsedge native). One wse_app_t serves every
 * thread behind one mutex; everything else (sockets, frame parsing, control
 * frames, HTTP) runs per thread without it. */
#ifndef WSN_SERVER_H
#define WSN_SERVER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <uv.h>

#include "deflate.h"
#include "wsedge.h"
#include "wsedge/native.h"

#define WSN_MAX_THREADS WSE_NATIVE_MAX_THREADS
#define WSN_READ_BUF 65536
#define WSN_MAX_ORIGINS WSE_NATIVE_MAX_ORIGINS

/* ---- options (cli.c): the public wse_native_options_t ------------------ */

typedef wse_native_options_t wsn_opts_t;

/* ---- output buffers ------------------------------------------------------ */

/* Corked output of one connection. The same block becomes the write request
 * when the kernel does not take everything at once; while it is in flight
 * the tick watches it drain (--send-timeout), so an idle connection pays
 * nothing for that. */
typedef struct wsn_obuf {
  uv_write_t req;
  uint32_t off;       /* bytes already written (in-flight buffer) */
  uint32_t len;
  uint32_t cap;
  uint32_t moved_ms;  /* in flight: server clock (ms) of the last progress */
  uint32_t seen_wq;   /* in flight: libuv write queue, kernel send queue */
  uint32_t seen_kq;   /*   (bytes) at the last tick; WSN_UNSEEN: not yet */
  uint8_t data[];
} wsn_obuf_t;

#define WSN_UNSEEN UINT32_MAX

/* ---- connections --------------------------------------------------------- */

enum wsn_conn_state {
  WSN_ST_HTTP = 0,     /* reading the request head (and body) */
  WSN_ST_LINGER,       /* response sent; write side shut; draining input */
  WSN_ST_WS,           /* WebSocket open */
  WSN_ST_WS_CLOSING,   /* our Close sent, waiting for the peer's */
  WSN_ST_DEAD,         /* uv_close called */
};

enum {
  WSN_F_SESSION = 1,    /* the app session is live (wse_app_close pending) */
  WSN_F_DIRTY = 2,      /* on the thread's flush list */
  WSN_F_SHUT = 8,       /* shutdown(SHUT_WR) once flushed (linger) */
  WSN_F_REJECT = 16,    /* over --max-connections: answer 503 */
  WSN_F_WS_INIT = 32,   /* u.ws initialised */
  WSN_F_COUNTED = 64,   /* counted in the server's connection total */
};

/* Compact: an idle WebSocket costs this struct plus the app's session. */
typedef struct wsn_conn {
  uv_tcp_t tcp;
  uint32_t slot;
  uint32_t sess;               /* app session handle when WSN_F_SESSION */
  uint8_t state;
  uint8_t flags;
  uint16_t close_code;
  uint32_t open_ms;            /* server clock at accept (ms, wraps) */
  uint32_t last_rx_s;          /* server clock (s) of the last data/pong */
  uint32_t last_ping_s;
  uint32_t deadline_s;         /* handshake / close / linger deadline */
  struct wsn_conn *next_dirty;
  wsn_obuf_t *out;             /* accumulating (corked) */
  wsn_obuf_t *wr;              /* in flight */
  wsn_deflate_t *dfl;          /* permessage-deflate state when negotiated */
  union {
    struct {
      char *buf;               /* partial head (+ body), lazily allocated */
      uint32_t len, cap;
      uint32_t scanned;        /* end-of-head search resumes here */
    } http;
    wse_ws_t ws;
  } u;
} wsn_conn_t;

/* ---- cross-thread delivery ---------------------------------------------- */

typedef struct wsn_rbuf {
  atomic_uint refs;
  uint32_t len;
  uint8_t data[];
} wsn_rbuf_t;

typedef struct wsn_target {
  uint32_t slot, gen;
} wsn_target_t;

enum { WSN_ITEM_SEND = 1, WSN_ITEM_CLOSE = 2 };

typedef struct wsn_item {
  struct wsn_item *next;
  uint8_t kind;
  uint16_t code;              /* CLOSE */
  wsn_rbuf_t *buf;            /* SEND: frame bytes; CLOSE: reason */
  uint32_t n;
  wsn_target_t tg[];
} wsn_item_t;

/* ---- threads --------------------------------------------------------------- */

struct wsn_server;

typedef struct wsn_thread {
  struct wsn_server *srv;
  int idx;
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_timer_t tick;
  uv_timer_t apptm;             /* the app's timers (wse_app_timer_next) */
  uint64_t apptm_at;            /* when apptm fires (wall ms), 0: not set */
  int apptm_dirty;              /* TIMER actions ran: set apptm again */
  uv_async_t async;
  uv_check_t log_check;         /* flushes this thread's buffered log lines */
  uv_thread_t tid;
  int listening;
  int listen_paused;           /* listener closed at the fd limit: made again by the tick */
  int listen_closed;           /* ...and that close has completed */
  int stopping;                /* shutdown started on this thread */
  int handles_closed;
  int idle;                    /* stopping and without connections */
  uint8_t *rbuf;               /* WSN_READ_BUF shared by every read */

  /* connection slots (only this thread touches them) */
  wsn_conn_t **conns;
  uint32_t *gens;
  uint32_t *free_slots;
  uint32_t n_free, cap;
  uint32_t n_conns;

  wsn_conn_t *dirty;           /* connections with output to flush */
  int locked;                  /* holds srv->app_lock */
  int in_exec;                 /* executing app actions */
  uint64_t wake_mask;          /* threads to uv_async_send after unlock */
  uint64_t wall_ms;            /* wall clock cached for one callback, 0 = stale */

  /* sessions whose wse_app_close was deferred while executing actions */
  wsn_conn_t **ends;
  size_t n_ends, cap_ends;

  /* staging of cross-thread targets while executing one action */
  wsn_target_t *stage[WSN_MAX_THREADS];
  uint32_t stage_n[WSN_MAX_THREADS], stage_cap[WSN_MAX_THREADS];
  uint32_t n_staged;           /* targets staged for any thread */

  /* incoming items from other threads (MPSC: producers hold app_lock) */
  uv_mutex_t qlock;
  wsn_item_t *qhead, *qtail;
  atomic_int qpending;

  /* drained output buffers by size class (small, large) */
  wsn_obuf_t **cache[2];
  size_t n_cache[2];

  uint8_t entropy[1024];
  size_t entropy_off;

  /* permessage-deflate: shared streams, scratch, broadcast cache (lazy) */
  wsn_deflate_ctx_t *dfl;
} wsn_thread_t;

typedef struct wsn_server {
  wsn_opts_t opts;
  wse_app_t *app;
  uv_mutex_t app_lock;
  wse_allocator_t alloc;
  int nthreads;
  wsn_thread_t *threads;
  uint64_t start_ms;           /* uv_hrtime base, ms */
  uint64_t start_wall_ms;
  atomic_uint_fast64_t n_conns; /* open TCP connections, all threads */
  atomic_uint_fast64_t n_ws;    /* open WebSockets */
  atomic_uint_fast64_t n_deflate; /* ... that negotiated permessage-deflate */
  atomic_uint_fast64_t total_conns;
  atomic_uint_fast64_t n_slow;  /* closed 1008: queue past max_write_buffer_size */
  atomic_uint_fast64_t n_send_timeouts; /* cut: output stuck for send_timeout_s */
  atomic_int shutting_down;    /* 1 after a signal, 2 after a second one */
  atomic_int n_idle;           /* threads stopped and without connections */
  atomic_int all_idle;
  uint32_t max_handle;          /* 1 + the largest session handle (app_lock) */
  wsn_thread_t *holder;         /* the thread holding app_lock, else NULL */
  uv_signal_t sigterm, sigint;
  int signals;                  /* sigterm/sigint are initialised */
  int ran;                      /* wse_server_run has returned */
  struct sockaddr_storage addr;
  int bound_port;
  uint64_t fd_limit;            /* RLIMIT_NOFILE after raising it; 0: unknown */
  uint64_t base_fds;            /* fds open before the first connection */
  uint32_t fd_warned_s;         /* last "near the fd limit" warning (thread 0) */
  char *static_dir;             /* owned copy of opts.static_dir */
  char origins[WSN_MAX_ORIGINS][256]; /* owned copies of opts.origins */
  struct wsn_cluster *cluster;  /* --redis, or NULL */
} wsn_server_t;

/* server.c (wse_server_* in wsedge/native.h) */
void wsn_app_lock(wsn_thread_t *t);
void wsn_app_unlock(wsn_thread_t *t);
void wsn_exec_actions(wsn_thread_t *t);
void wsn_entropy(wsn_thread_t *t, uint8_t out[16]);
uint32_t wsn_now_s(wsn_thread_t *t);
uint32_t wsn_now_ms32(wsn_thread_t *t);
void *wsn_host_encode(wsn_thread_t *t, wsn_conn_t *c);
void wsn_finish(wsn_thread_t *t);
void wsn_thread_conn_gone(wsn_thread_t *t);
/* accept failed for want of fds (or memory): stop listening on this thread
 * until the tick finds them free again */
void wsn_thread_listen_pause(wsn_thread_t *t);
uint64_t wsn_uptime_s(wsn_thread_t *t);

/* conn.c */
void wsn_on_connection(uv_stream_t *server, int status);
void wsn_conn_tick(wsn_thread_t *t, wsn_conn_t *c, uint32_t now_s);
/* The wall clock (ms since the epoch) the app sees, read once per callback. */
uint64_t wsn_wall_ms(wsn_thread_t *t);
void wsn_conn_shutdown(wsn_thread_t *t, wsn_conn_t *c);
void wsn_conn_abort(wsn_thread_t *t, wsn_conn_t *c);
int wsn_conn_append(wsn_thread_t *t, wsn_conn_t *c, const uint8_t *p,
                    size_t n);
void wsn_conn_deliver(wsn_thread_t *t, wsn_conn_t *c, const uint8_t *p,
                      size_t n);
int wsn_conn_direct(wsn_thread_t *t, wsn_conn_t *c, unsigned op,
                    const uint8_t *p, size_t n);
void wsn_conn_close_ws(wsn_thread_t *t, wsn_conn_t *c, unsigned code,
                       const char *reason, size_t n);
void wsn_conn_end_session(wsn_thread_t *t, wsn_conn_t *c);
void wsn_conn_end_deferred(wsn_thread_t *t, wsn_conn_t *c);
void wsn_conn_linger(wsn_thread_t *t, wsn_conn_t *c);
void wsn_flush_dirty(wsn_thread_t *t);
void wsn_obuf_cache_free(wsn_thread_t *t);

/* routes.c: host routes. Returns 1 when the request was answered. */
int wsn_host_route(wsn_thread_t *t, wsn_conn_t *c, const wse_request_t *req);
void wsn_respond(wsn_thread_t *t, wsn_conn_t *c, int status,
                 const char *extra_headers, const char *ctype,
                 const void *body, size_t n, int head_only);
void wsn_respond_app(wsn_thread_t *t, wsn_conn_t *c, const wse_response_t *r,
                     int head_only);
void wsn_respond_json_error(wsn_thread_t *t, wsn_conn_t *c, int status,
                            const char *msg, const char *extra_headers);

#endif
