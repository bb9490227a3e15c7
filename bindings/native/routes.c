/* routes.c — the host's own HTTP routes (the program's page, static files,
 * /healthz, /stats) and response writing. Every plain HTTP response closes
 * the connection (Connection: close) after a lingering half-close. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster.h"
#include "http.h"
#include "log.h"
#include "server.h"

#define STATIC_MAX ((off_t)64 << 20)

static const char common_headers[] =
    "Connection: close\r\nCache-Control: no-store\r\n"
    "X-Content-Type-Options: nosniff\r\n";

void wsn_respond(wsn_thread_t *t, wsn_conn_t *c, int status,
                 const char *extra_headers, const char *ctype,
                 const void *body, size_t n, int head_only) {
  char head[1024];
  int hl = snprintf(head, sizeof head,
                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
                    status, wse_http_reason(status), ctype, n, common_headers,
                    extra_headers ? extra_headers : "");
  if (hl < 0 || (size_t)hl >= sizeof head ||
      wsn_conn_append(t, c, (const uint8_t *)head, (size_t)hl) < 0 ||
      (!head_only && n && wsn_conn_append(t, c, body, n) < 0)) {
    wsn_conn_abort(t, c);
    return;
  }
  wsn_conn_linger(t, c);
}

void wsn_respond_json_error(wsn_thread_t *t, wsn_conn_t *c, int status,
                            const char *msg, const char *extra_headers) {
  char body[512];
  int n = wse_json_error(msg, strlen(msg), body, sizeof body);
  if (n < 0) n = 0;
  wsn_respond(t, c, status, extra_headers, "application/json", body, (size_t)n, 0);
}

/* An app response (wse_response_t) plus Connection: close. */
void wsn_respond_app(wsn_thread_t *t, wsn_conn_t *c, const wse_response_t *r,
                     int head_only) {
  size_t cap = 512 + r->headers_len + r->body_len + sizeof common_headers;
  char stack[2048];
  char *buf = cap <= sizeof stack ? stack : malloc(cap);
  char *hdrs = malloc(r->headers_len + sizeof common_headers);
  if (!buf || !hdrs) {
    if (buf != stack) free(buf);
    free(hdrs);
    wsn_conn_abort(t, c);
    return;
  }
  memcpy(hdrs, r->headers, r->headers_len);
  memcpy(hdrs + r->headers_len, common_headers, sizeof common_headers - 1);
  wse_response_t rr = *r;
  rr.headers = hdrs;
  rr.headers_len = r->headers_len + sizeof common_headers - 1;
  long n = wse_response_write(&rr, buf, cap);
  if (n > 0 && head_only) n -= (long)r->body_len; /* HEAD: no body */
  if (n < 0 || wsn_conn_append(t, c, (const uint8_t *)buf, (size_t)n) < 0)
    wsn_conn_abort(t, c);
  else
    wsn_conn_linger(t, c);
  if (buf != stack) free(buf);
  free(hdrs);
}

/* ---- static files ------------------------------------------------------------ */

static const char *content_type(const char *path, size_t n) {
  static const struct { const char *ext, *type; } types[] = {
      {".html", "text/html; charset=utf-8"},
      {".htm", "text/html; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".json", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},
      {".webp", "image/webp"},
      {".ico", "image/x-icon"},
      {".wasm", "application/wasm"},
      {".woff2", "font/woff2"},
      {".map", "application/json"},
  };
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    size_t el = strlen(types[i].ext);
    if (n >= el && strncasecmp(path + n - el, types[i].ext, el) == 0)
      return types[i].type;
  }
  return "application/octet-stream";
}

/* A safe relative path: no "..", no hidden segments, no backslashes, no
 * percent-escapes (we do not decode them, so refuse them), no NUL. */
static int safe_path(wse_str_t p) {
  if (p.n == 0 || p.p[0] != '/' || p.n > 1024) return 0;
  for (size_t i = 0; i < p.n; i++) {
    char ch = p.p[i];
    if (ch == '\\' || ch == '%' || ch == 0) return 0;
    if (ch == '/' && i + 1 < p.n && p.p[i + 1] == '.') return 0;
    if (ch == '/' && i + 1 < p.n && p.p[i + 1] == '/') return 0;
  }
  return 1;
}

/* 1 answered, 0 no such file. */
static int serve_file(wsn_thread_t *t, wsn_conn_t *c, wse_str_t path,
                      int head_only) {
  const char *dir = t->srv->opts.static_dir;
  if (!dir || !safe_path(path)) return 0;
  char full[4096];
  int fl = snprintf(full, sizeof full, "%s%.*s%s", dir, (int)path.n, path.p,
                    path.p[path.n - 1] == '/' ? "index.html" : "");
  if (fl < 0 || (size_t)fl >= sizeof full) return 0;
  int fd = open(full, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return 0;
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > STATIC_MAX) {
    close(fd);
    return 0;
  }
  size_t n = (size_t)st.st_size;
  char *body = malloc(n ? n : 1);
  size_t got = 0;
  while (body && got < n) {
    ssize_t r = read(fd, body + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  if (!body || got != n) {
    free(body);
    wsn_log(WSN_LOG_ERROR, "static: cannot read %s", full);
    wsn_respond_json_error(t, c, 500, "cannot read file", NULL);
    return 1;
  }
  wsn_respond(t, c, 200, NULL, content_type(full, (size_t)fl), body, n, head_only);
  free(body);
  return 1;
}

/* ---- /stats ------------------------------------------------------------------------ */

static void stats(wsn_thread_t *t, wsn_conn_t *c, int head_only) {
  wsn_server_t *srv = t->srv;
  wse_app_stats_t st;
  uint64_t members = 0;
  wsn_app_lock(t);
  wse_app_stats(srv->app, &st);
  for (uint32_t h = 0; h < srv->max_handle; h++) {
    const wse_session_t *s = wse_app_session(srv->app, h);
    if (s && s->n_topics) members++;
  }
  char cl[512];
  wsn_cluster_stats(srv, cl, sizeof cl);
  wsn_app_unlock(t);
  char body[1536];
  int n = snprintf(body, sizeof body,
                   "{\"connections\":%llu,\"websockets\":%llu,\"sessions\":%llu,"
                   "\"rooms\":%llu,\"members\":%llu,\"messages_in\":%llu,"
                   "\"messages_out\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu,"
                   "\"uptime_s\":%llu,\"threads\":%d,\"connections_total\":%llu,"
                   "\"deflate_connections\":%llu,\"deflate_memory_bytes\":%llu,"
                   "\"slow_consumers\":%llu,\"send_timeouts\":%llu,\"cluster\":%s}",
                   (unsigned long long)atomic_load(&srv->n_conns),
                   (unsigned long long)atomic_load(&srv->n_ws),
                   (unsigned long long)st.sessions, (unsigned long long)st.rooms,
                   (unsigned long long)members,
                   (unsigned long long)st.messages_in,
                   (unsigned long long)st.messages_out,
                   (unsigned long long)st.bytes_in,
                   (unsigned long long)st.bytes_out,
                   (unsigned long long)wsn_uptime_s(t), srv->nthreads,
                   (unsigned long long)atomic_load(&srv->total_conns),
                   (unsigned long long)atomic_load(&srv->n_deflate),
                   (unsigned long long)wsn_deflate_memory(),
                   (unsigned long long)atomic_load(&srv->n_slow),
                   (unsigned long long)atomic_load(&srv->n_send_timeouts), cl);
  wsn_respond(t, c, 200, NULL, "application/json", body, (size_t)n, head_only);
}

/* ---- dispatch -------------------------------------------------------------------------- */

static int streq(wse_str_t s, const char *lit) {
  size_t n = strlen(lit);
  return s.n == n && memcmp(s.p, lit, n) == 0;
}

int wsn_host_route(wsn_thread_t *t, wsn_conn_t *c, const wse_request_t *req) {
  wse_str_t path = wsn_http_path(req->target);
  int get = streq(req->method, "GET"), head = streq(req->method, "HEAD");
  const wsn_opts_t *o = &t->srv->opts;
  int is_root = (o->index_html || o->static_dir) &&
                (streq(path, "/") || streq(path, "/index.html"));
  if (streq(path, "/healthz") || streq(path, "/stats") || is_root) {
    if (!get && !head) {
      wsn_respond_json_error(t, c, 405, "method not allowed", "Allow: GET, HEAD\r\n");
      return 1;
    }
    if (streq(path, "/healthz")) {
      static const char ok[] = "{\"status\":\"ok\"}";
      wsn_respond(t, c, 200, NULL, "application/json", ok, sizeof ok - 1, head);
      return 1;
    }
    if (streq(path, "/stats")) {
      stats(t, c, head);
      return 1;
    }
    /* the page: DIR/index.html first, else the program's embedded one */
    if (serve_file(t, c, (wse_str_t){"/index.html", 11}, head)) return 1;
    if (!o->index_html) return 0;
    wsn_respond(t, c, 200, NULL, "text/html; charset=utf-8", o->index_html,
                o->index_html_len, head);
    return 1;
  }
  if (!o->static_dir || (!get && !head)) return 0;
  /* a WebSocket route's path is never shadowed by a file */
  wsn_app_lock(t);
  int ws_route = wse_app_match(t->srv->app, req->target, NULL);
  wsn_app_unlock(t);
  if (ws_route) return 0;
  return serve_file(t, c, path, head);
}
