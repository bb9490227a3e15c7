/* cli.c — `wsedge serve` options: flags and WSEDGE_* environment variables
 * (flags win). Every value is validated; anything invalid is reported by
 * name and the process exits with 2, never falling back to a default. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "server.h"

enum kind { K_LISTEN, K_REDIS, K_THREADS, K_STATIC, K_LEVEL, K_COUNT, K_SIZE, K_SECS, K_ORIGIN,
            K_BOOL /* a flag without value; its env var takes 0 or 1 */ };

typedef struct opt {
  const char *flag;
  const char *env;
  enum kind kind;
  uint64_t min, max;
  const char *arg;
  const char *help;
} opt_t;

#define GiB ((uint64_t)1 << 30)

static const opt_t opts[] = {
    {"--listen", "WSEDGE_LISTEN", K_LISTEN, 0, 0, "HOST:PORT",
     "address to listen on (default 127.0.0.1:4040; port 0 picks a free one)"},
    {"--threads", "WSEDGE_THREADS", K_THREADS, 1, WSN_MAX_THREADS, "N",
     "event-loop threads (default: number of cores, at most 64)"},
    {"--static", "WSEDGE_STATIC", K_STATIC, 0, 0, "DIR",
     "serve files from DIR (GET /<file>; / is DIR/index.html when present)"},
    {"--log-level", "WSEDGE_LOG_LEVEL", K_LEVEL, 0, 0, "LEVEL",
     "error, warn, info (default: one line per connection) or debug"},
    {"--max-connections", "WSEDGE_MAX_CONNECTIONS", K_COUNT, 0, 10000000, "N",
     "connections beyond N get 503 (default 0: unlimited)"},
    {"--max-frame-size", "WSEDGE_MAX_FRAME_SIZE", K_SIZE, 1, GiB, "BYTES",
     "larger frame -> close 1009 (default 16M)"},
    {"--max-message-size", "WSEDGE_MAX_MESSAGE_SIZE", K_SIZE, 1, GiB, "BYTES",
     "larger message -> close 1009 (default 64M)"},
    {"--max-write-buffer-size", "WSEDGE_MAX_WRITE_BUFFER_SIZE", K_SIZE, 1, GiB,
     "BYTES", "queued output past it -> close 1008 (default 1M)"},
    {"--send-timeout", "WSEDGE_SEND_TIMEOUT", K_SECS, 0, 2000000, "SECS",
     "queued output not draining at all for SECS -> 1008 + reset (default 10; 0 off)"},
    {"--idle-timeout", "WSEDGE_IDLE_TIMEOUT", K_SECS, 0, 2000000, "SECS",
     "no data or pong for SECS -> close 1001 (default 60; 0 off)"},
    {"--ping-interval", "WSEDGE_PING_INTERVAL", K_SECS, 0, 2000000, "SECS",
     "ping a quiet client every SECS (default 30; 0 off)"},
    {"--session-timeout", "WSEDGE_WEBSOCKET_TIMEOUT", K_SECS, 0, 2000000, "SECS",
     "session lifetime, then close 4000 \"timeout\" (default 3600; 0 off)"},
    {"--handshake-timeout", "WSEDGE_HANDSHAKE_TIMEOUT", K_SECS, 1, 3600, "SECS",
     "request head must arrive within SECS (default 10)"},
    {"--close-timeout", "WSEDGE_CLOSE_TIMEOUT", K_SECS, 1, 3600, "SECS",
     "wait SECS for the peer's Close, then drop TCP (default 5)"},
    {"--allow-origin", "WSEDGE_ALLOW_ORIGINS", K_ORIGIN, 0, 0, "ORIGIN",
     "allowed Origin (repeatable; env: comma-separated; default: same host)"},
    {"--deflate", "WSEDGE_DEFLATE", K_BOOL, 0, 1, "",
     "negotiate permessage-deflate when offered (default; env 0 or 1)"},
    {"--no-deflate", NULL, K_BOOL, 0, 1, "", "decline permessage-deflate"},
    {"--deflate-threshold", "WSEDGE_DEFLATE_THRESHOLD", K_SIZE, 0, GiB, "BYTES",
     "smaller messages are sent uncompressed (default 64; 0: all)"},
    {"--deflate-level", "WSEDGE_DEFLATE_LEVEL", K_COUNT, 1, 9, "N",
     "zlib compression level 1 (fast) .. 9 (small) (default 1)"},
    {"--deflate-mem-level", "WSEDGE_DEFLATE_MEM_LEVEL", K_COUNT, 1, 9, "N",
     "zlib memLevel 1..9: compressor memory vs ratio (default 4)"},
    {"--deflate-window-bits", "WSEDGE_DEFLATE_WINDOW_BITS", K_COUNT, 9, 15, "N",
     "our compressor's largest window, 9..15 (server_max_window_bits; default 15)"},
    {"--deflate-max-memory", "WSEDGE_DEFLATE_MAX_MEMORY", K_SIZE, 0, (uint64_t)64 * GiB, "BYTES",
     "all connections' zlib state; past it new offers are declined (default 256M; 0: no cap)"},
    {"--deflate-idle", "WSEDGE_DEFLATE_IDLE", K_SECS, 0, 2000000, "SECS",
     "free a connection's compressor after SECS without output (default 10; 0: never)"},
    {"--redis", "WSEDGE_REDIS", K_REDIS, 0, 0, "URL",
     "join the cluster of wsedge processes sharing this Redis: redis://HOST[:PORT][/DB]"},
    {"--redis-optional", "WSEDGE_REDIS_OPTIONAL", K_BOOL, 0, 1, "",
     "start even when Redis is down, and keep retrying (default: exit 2)"},
    {"--redis-ttl", "WSEDGE_REDIS_TTL", K_SECS, 1, 3600, "SECS",
     "a node silent for SECS stops counting in room sizes (default 15)"},
    {"--redis-queue", "WSEDGE_REDIS_QUEUE", K_SIZE, 4096, GiB, "BYTES",
     "kept for Redis while it is away or slow; past it dropped, counted (default 8M)"},
    {"--deflate-server-no-context-takeover", "WSEDGE_DEFLATE_SERVER_NO_CONTEXT_TAKEOVER",
     K_BOOL, 0, 1, "", "reset our compressor after every message (env 0 or 1; default off)"},
};
#define N_OPTS (sizeof opts / sizeof opts[0])

static const char *prog(const wsn_opts_t *o) {
  return o && o->program ? o->program : "wsedge";
}

void wse_native_usage(const wse_native_options_t *o, FILE *f) {
  const char *p = prog(o);
  fprintf(f,
          "usage: %s serve [options]\n"
          "       %s --version | --help\n\n"
          "Serves the app's WebSocket and HTTP routes (wsedge %s), GET /healthz\n"
          "and GET /stats%s.\n\n"
          "options (flag / environment variable; flags win):\n",
          p, p, WSE_VERSION_STRING, o && o->index_html ? ", and its page at /" : "");
  for (size_t i = 0; i < N_OPTS; i++) {
    char left[64];
    snprintf(left, sizeof left, "%s%s%s", opts[i].flag, opts[i].arg[0] ? " " : "", opts[i].arg);
    if (strlen(left) > 32) fprintf(f, "  %s\n  %-32s %s\n", left, "", opts[i].help);
    else fprintf(f, "  %-32s %s\n", left, opts[i].help);
    if (opts[i].env) fprintf(f, "  %-32s   env %s\n", "", opts[i].env);
  }
  fprintf(f, "  %-32s %s\n  %-32s %s\n", "--help", "this text", "--version",
          "print \"wsedge " WSE_VERSION_STRING "\"");
  fprintf(f, "\nBYTES accept a k, m or g suffix (KiB, MiB, GiB). Invalid values exit with 2.\n");
}

static int fail_as(const wsn_opts_t *o, const char *who, const char *val, const char *why) {
  fprintf(stderr, "%s: invalid %s '%s': %s (see %s --help)\n", prog(o), who, val, why, prog(o));
  return 2;
}
#define fail(who, val, why) fail_as(o, (who), (val), (why))

static int parse_u64(const char *s, int suffix, uint64_t *out) {
  uint64_t v = 0;
  size_t i = 0;
  if (!s[0]) return -1;
  for (; s[i] >= '0' && s[i] <= '9'; i++) {
    if (v > (UINT64_MAX - 9) / 10) return -1;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  if (i == 0) return -1;
  if (s[i]) {
    if (!suffix || s[i + 1]) return -1;
    unsigned sh;
    switch (s[i]) {
    case 'k': case 'K': sh = 10; break;
    case 'm': case 'M': sh = 20; break;
    case 'g': case 'G': sh = 30; break;
    default: return -1;
    }
    if (v > (UINT64_MAX >> sh)) return -1;
    v <<= sh;
  }
  *out = v;
  return 0;
}

static int add_origin(wsn_opts_t *o, const char *who, const char *s, size_t n) {
  char tmp[300];
  snprintf(tmp, sizeof tmp, "%.*s", (int)(n < 256 ? n : 256), s);
  if (n == 0) return fail(who, tmp, "empty origin");
  if (n >= sizeof o->wse__buf[0]) return fail(who, tmp, "longer than 255 bytes");
  if (!(n == 1 && s[0] == '*') && !(n > 7 && strncmp(s, "http://", 7) == 0) &&
      !(n > 8 && strncmp(s, "https://", 8) == 0))
    return fail(who, tmp, "expected \"*\" or scheme://host[:port]");
  if (o->n_origins == WSN_MAX_ORIGINS) return fail(who, tmp, "too many origins (max 32)");
  memcpy(o->wse__buf[o->n_origins], s, n);
  o->wse__buf[o->n_origins][n] = 0;
  o->origins[o->n_origins] = o->wse__buf[o->n_origins];
  o->n_origins++;
  return 0;
}

static int apply(wsn_opts_t *o, const opt_t *op, const char *who, const char *v) {
  uint64_t n = 0;
  char buf[64];
  switch (op->kind) {
  case K_LISTEN: {
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v) return fail(who, v, "expected HOST:PORT");
    size_t hl = (size_t)(colon - v);
    if (hl >= sizeof o->listen_host) return fail(who, v, "host too long");
    if (v[0] == '[' ? v[hl - 1] != ']' : memchr(v, ':', hl) != NULL)
      return fail(who, v, "write IPv6 addresses as [ADDR]:PORT");
    if (parse_u64(colon + 1, 0, &n) < 0 || n > 65535)
      return fail(who, v, "port must be 0..65535");
    memcpy(o->listen_host, v, hl);
    o->listen_host[hl] = 0;
    o->port = (int)n;
    return 0;
  }
  case K_REDIS: { /* redis://HOST[:PORT][/DB] */
    const char *h = v + 8, *e;
    if (strncmp(v, "redis://", 8)) return fail(who, v, "expected redis://HOST[:PORT][/DB]");
    if (strchr(h, '@')) return fail(who, v, "passwords in the URL are not supported");
    if (*h == '[') {
      if (!(e = strchr(h, ']'))) return fail(who, v, "unclosed [ in the host");
      h++;
    } else {
      e = h + strcspn(h, ":/");
    }
    size_t hl = (size_t)(e - h);
    if (!hl || hl >= sizeof o->redis_host) return fail(who, v, "missing or too long host");
    memcpy(o->redis_host, h, hl);
    o->redis_host[hl] = 0;
    e += *e == ']';
    o->redis_port = 6379;
    o->redis_db = 0;
    if (*e == ':') {
      char port[8];
      size_t pl = strcspn(e + 1, "/");
      if (pl >= sizeof port) return fail(who, v, "port must be 1..65535");
      memcpy(port, e + 1, pl);
      port[pl] = 0;
      if (parse_u64(port, 0, &n) < 0 || n < 1 || n > 65535)
        return fail(who, v, "port must be 1..65535");
      o->redis_port = (int)n;
      e += 1 + pl;
    }
    if (*e == '/' && e[1]) {
      if (parse_u64(e + 1, 0, &n) < 0 || n > 65535)
        return fail(who, v, "database must be a number 0..65535");
      o->redis_db = (int)n;
    } else if (*e && strcmp(e, "/")) {
      return fail(who, v, "expected redis://HOST[:PORT][/DB]");
    }
    return 0;
  }
  case K_STATIC: {
    struct stat st;
    if (!v[0]) return fail(who, v, "empty path");
    if (stat(v, &st) < 0) return fail(who, v, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return fail(who, v, "not a directory");
    size_t l = strlen(v);
    while (l > 1 && v[l - 1] == '/') l--;
    if (l >= sizeof o->wse__static) return fail(who, v, "path too long");
    memcpy(o->wse__static, v, l);
    o->wse__static[l] = 0;
    o->static_dir = o->wse__static;
    return 0;
  }
  case K_LEVEL: {
    int l = wsn_log_parse_level(v);
    if (l < 0) return fail(who, v, "expected error, warn, info or debug");
    o->log_level = l;
    return 0;
  }
  case K_ORIGIN:
    if (op->flag && strcmp(who, op->flag) == 0) return add_origin(o, who, v, strlen(v));
    for (const char *s = v;;) {
      const char *e = strchr(s, ',');
      size_t len = e ? (size_t)(e - s) : strlen(s);
      while (len && (*s == ' ')) s++, len--;
      while (len && s[len - 1] == ' ') len--;
      int rc = add_origin(o, who, s, len);
      if (rc) return rc;
      if (!e) return 0;
      s = e + 1;
    }
  case K_BOOL:
    if (strcmp(v, "0") && strcmp(v, "1")) return fail(who, v, "expected 0 or 1");
    n = v[0] == '1';
    if (!strcmp(op->flag, "--redis-optional")) o->redis_optional = (int)n;
    else if (!strcmp(op->flag, "--no-deflate")) o->cfg.deflate = !n;
    else if (!strcmp(op->flag, "--deflate")) o->cfg.deflate = (int)n;
    else o->cfg.deflate_server_no_context_takeover = (int)n;
    return 0;
  default:
    break;
  }
  if (parse_u64(v, op->kind == K_SIZE, &n) < 0)
    return fail(who, v, op->kind == K_SIZE ? "expected a byte count (e.g. 65536, 64k, 16m)"
                                           : "expected a non-negative integer");
  if (n < op->min || n > op->max) {
    snprintf(buf, sizeof buf, "must be %llu..%llu", (unsigned long long)op->min,
             (unsigned long long)op->max);
    return fail(who, v, buf);
  }
  const char *f = op->flag;
  if (!strcmp(f, "--threads")) o->threads = (int)n;
  else if (!strcmp(f, "--max-connections")) o->max_connections = n;
  else if (!strcmp(f, "--max-frame-size")) o->cfg.max_frame_size = n;
  else if (!strcmp(f, "--max-message-size")) o->cfg.max_message_size = n;
  else if (!strcmp(f, "--max-write-buffer-size")) o->cfg.max_write_buffer_size = (size_t)n;
  else if (!strcmp(f, "--send-timeout")) o->send_timeout_s = (uint32_t)n;
  else if (!strcmp(f, "--idle-timeout")) o->cfg.idle_timeout_s = (uint32_t)n;
  else if (!strcmp(f, "--ping-interval")) o->cfg.ping_interval_s = (uint32_t)n;
  else if (!strcmp(f, "--session-timeout")) o->cfg.session_timeout_s = (uint32_t)n;
  else if (!strcmp(f, "--handshake-timeout")) o->cfg.handshake_timeout_s = (uint32_t)n;
  else if (!strcmp(f, "--close-timeout")) o->cfg.close_timeout_s = (uint32_t)n;
  else if (!strcmp(f, "--deflate-threshold")) o->cfg.deflate_threshold = (size_t)n;
  else if (!strcmp(f, "--deflate-max-memory")) o->deflate_max_memory = n;
  else if (!strcmp(f, "--deflate-idle")) o->deflate_idle_s = (uint32_t)n;
  else if (!strcmp(f, "--redis-ttl")) o->redis_ttl_s = (uint32_t)n;
  else if (!strcmp(f, "--redis-queue")) o->redis_queue_max = n;
  else if (!strcmp(f, "--deflate-level")) o->cfg.deflate_level = (int)n;
  else if (!strcmp(f, "--deflate-mem-level")) o->cfg.deflate_mem_level = (int)n;
  else if (!strcmp(f, "--deflate-window-bits")) o->cfg.deflate_server_max_window_bits = (int)n;
  return 0;
}

void wse_native_options_default(wse_native_options_t *o) {
  memset(o, 0, sizeof *o);
  snprintf(o->listen_host, sizeof o->listen_host, "127.0.0.1");
  o->port = 4040;
  unsigned cores = uv_available_parallelism();
  o->threads = cores < 1 ? 1 : cores > WSN_MAX_THREADS ? WSN_MAX_THREADS : (int)cores;
  o->log_level = WSN_LOG_INFO;
  wse_config_default(&o->cfg);
  o->deflate_max_memory = (uint64_t)256 << 20;
  o->deflate_idle_s = 10;
  o->send_timeout_s = 10;
  o->redis_ttl_s = 15;
  o->redis_queue_max = (uint64_t)8 << 20;
  o->program = "wsedge";
}

int wse_native_options_parse(wse_native_options_t *o, int argc, char **argv) {
  int rc;
  for (size_t i = 0; i < N_OPTS; i++) {
    const char *v = opts[i].env ? getenv(opts[i].env) : NULL;
    if (v && (rc = apply(o, &opts[i], opts[i].env, v))) return rc;
  }
  size_t env_origins = o->n_origins;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      wse_native_usage(o, stdout);
      return 1;
    }
    if (!strcmp(a, "--version")) {
      printf("%s %s\n", prog(o), WSE_VERSION_STRING);
      return 1;
    }
    const char *eq = strchr(a, '=');
    size_t fl = eq ? (size_t)(eq - a) : strlen(a);
    const opt_t *op = NULL;
    for (size_t k = 0; k < N_OPTS; k++)
      if (strlen(opts[k].flag) == fl && !strncmp(a, opts[k].flag, fl)) op = &opts[k];
    if (!op) {
      fprintf(stderr, "%s: unknown option '%s' (see %s --help)\n", prog(o), a, prog(o));
      return 2;
    }
    const char *v = eq ? eq + 1 : NULL;
    if (op->kind == K_BOOL && !v) v = "1"; /* present: on (--no-deflate: off) */
    if (!v) {
      if (i + 1 >= argc) {
        fprintf(stderr, "%s: option %s needs a value (%s)\n", prog(o), op->flag, op->arg);
        return 2;
      }
      v = argv[++i];
    }
    if (op->kind == K_ORIGIN && env_origins) { /* flags replace the env list */
      o->n_origins = 0;
      env_origins = 0;
    }
    if ((rc = apply(o, op, op->flag, v))) return rc;
  }
  return 0;
}
