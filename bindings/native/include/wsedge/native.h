/* wsedge/native.h — the native host as a library: a multi-threaded libuv
 * server (one event loop per thread, SO_REUSEPORT) that runs one app.
 *
 * A program hands the server its app's entry point; the server never names
 * an app. The library has no process-wide side effects of its own: ignoring
 * SIGPIPE, raising the fd limit and handling SIGTERM/SIGINT are the
 * program's choice (wse_native_main makes all three, as a server should).
 *
 *   int main(int argc, char **argv) {
 *     return wse_native_main(argc, argv, wsedge_app);
 *   }
 *
 * libwsedge-native.a also holds exactly that main(), used when the program
 * defines none: `cc app.c $(pkg-config --cflags --libs wsedge)` is a server. */
#ifndef WSEDGE_NATIVE_H
#define WSEDGE_NATIVE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "wsedge.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WSE_NATIVE_MAX_THREADS 64
#define WSE_NATIVE_MAX_ORIGINS 32

enum { WSE_LOG_ERROR = 0, WSE_LOG_WARN, WSE_LOG_INFO, WSE_LOG_DEBUG };

/* Everything `serve` takes on its command line (and WSEDGE_* variables). */
typedef struct wse_native_options {
  char listen_host[256];       /* numeric address or a name */
  int port;                    /* 0: pick a free port (wse_server_port) */
  int threads;                 /* 1..64 */
  const char *static_dir;      /* NULL: no static files */
  int log_level;               /* WSE_LOG_* */
  uint64_t max_connections;    /* beyond it: 503 JSON (0: unlimited) */
  uint64_t deflate_max_memory; /* zlib state budget; past it offers are declined (0: none) */
  uint32_t deflate_idle_s;     /* free a context-takeover compressor unused this long (0: never) */
  /* A connection with queued output none of which drains for this long
   * (user-space queue and kernel send queue both unmoved) is cut: session
   * ended with 1008, TCP reset (0: never). */
  uint32_t send_timeout_s;
  wse_config_t cfg;            /* the app's defaults: limits, timeouts, deflate */
  const char *origins[WSE_NATIVE_MAX_ORIGINS]; /* allowed Origins (cfg's list when set) */
  size_t n_origins;
  /* GET / and /index.html when static_dir has no index.html (e.g. a page
   * embedded in the program); NULL: not served. */
  const void *index_html;
  size_t index_html_len;
  int handle_signals;          /* 1: SIGTERM/SIGINT stop the server (1001 to all) */
  const char *program;         /* name in usage and messages ("wsedge") */
  /* --redis redis://HOST[:PORT][/DB]: join the cluster of wsedge processes
   * sharing that Redis (rooms, send_to, close_session, member counts).
   * redis_host "" : no cluster. */
  char redis_host[256];
  int redis_port;              /* default 6379 */
  int redis_db;
  int redis_optional;          /* 1: start (and retry) when Redis is down */
  uint32_t redis_ttl_s;        /* presence lives this long without a heartbeat (15) */
  uint64_t redis_queue_max;    /* bytes kept for Redis while it is away (8 MiB) */
  char wse__buf[WSE_NATIVE_MAX_ORIGINS][256]; /* internal: parsed origins */
  char wse__static[4096];      /* internal: parsed --static */
} wse_native_options_t;

/* The documented defaults: 127.0.0.1:4040, one thread per core, info logs,
 * wse_config_default() limits, deflate budget 256 MiB, deflate idle 10 s,
 * send timeout 10 s. */
void wse_native_options_default(wse_native_options_t *o);
/* Apply WSEDGE_* environment variables, then argv[0..argc) (the options
 * after "serve"; flags win). Returns 0; 1 when --help/--version was printed
 * (exit 0); 2 after printing what is invalid to stderr (exit 2). */
int wse_native_options_parse(wse_native_options_t *o, int argc, char **argv);
void wse_native_usage(const wse_native_options_t *o, FILE *f);

typedef struct wsn_server wse_server_t;

/* Create the app (entry registers its routes), bind every listener. Nothing
 * runs yet. Returns 0, or 1 after printing why (cannot listen, app failed),
 * or 2 when --redis cannot be reached (without redis_optional). */
int wse_server_new(wse_server_t **out, const wse_native_options_t *o,
                   wse_app_entry_t entry);
/* The bound port (useful with port 0). */
int wse_server_port(const wse_server_t *s);
/* Run every loop until stopped; returns 0. Call once, from one thread. */
int wse_server_run(wse_server_t *s);
/* From any thread or a signal handler: stop accepting, close every client
 * with 1001 and wait (up to the close timeout) for their Close frames. A
 * second call drops the connections at once. */
void wse_server_stop(wse_server_t *s);
/* After wse_server_run returned (or instead of it). */
void wse_server_free(wse_server_t *s);

/* Opt-ins for a program (wse_native_main calls both). */
void wse_native_ignore_sigpipe(void);
/* Raise the soft RLIMIT_NOFILE to the hard limit; returns the limit (0:
 * unknown or unlimited). One fd per client: a server wants them all. */
uint64_t wse_native_raise_fd_limit(void);

/* The `serve` command line: `PROG serve [options]`, `--help`, `--version`.
 * Exit codes: 0 clean (also after SIGTERM/SIGINT), 1 a runtime failure,
 * 2 invalid command line or environment. `defaults` (may be NULL) seeds
 * the options before the environment and flags are applied. */
int wse_native_main(int argc, char **argv, wse_app_entry_t entry);
int wse_native_main_with(int argc, char **argv, wse_app_entry_t entry,
                         const wse_native_options_t *defaults);

#ifdef __cplusplus
}
#endif
#endif
