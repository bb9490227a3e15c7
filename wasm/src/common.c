/* common.c — error strings, configuration defaults, close-code rules and the
 * allocator fallback shared by every part of the core. */
#include "internal.h"

const char *wse_strerror(int err) {
  switch (err) {
  case WSE_OK: return "success";
  case WSE_EAGAIN: return "need more input";
  case WSE_ENOMEM: return "out of memory";
  case WSE_EINVAL: return "invalid argument";
  case WSE_EPROTO: return "protocol error";
  case WSE_EUTF8: return "invalid UTF-8";
  case WSE_ETOOBIG: return "frame or message too big";
  case WSE_ECLOSED: return "connection closed";
  case WSE_ENOSPC: return "output buffer too small";
  case WSE_ENOTFOUND: return "not found";
  case WSE_EEXIST: return "already exists";
  case WSE_EPOLICY: return "policy violation";
  case WSE_ATT_ETRUNC: return "attachment truncated";
  case WSE_ATT_EMAGIC: return "not a wsedge attachment";
  case WSE_ATT_EVERSION: return "unknown attachment version";
  case WSE_ATT_ECHECKSUM: return "attachment checksum mismatch";
  case WSE_ATT_ESIZE: return "attachment too large";
  case WSE_ATT_EFIELD: return "invalid attachment field";
  case WSE_ATT_EROUTE: return "attachment names a route the app does not have";
  default: return "unknown error";
  }
}

void wse_config_default(wse_config_t *c) {
  wse__memset(c, 0, sizeof *c);
  c->max_frame_size = (uint64_t)16 << 20;
  c->max_message_size = (uint64_t)64 << 20;
  c->write_buffer_size = (size_t)128 << 10;
  /* 16 messages of 64 KiB: a client that reads (a browser drains its
   * socket far faster than a server fills it) never comes near it; one
   * that stops reading costs at most this much (uWS: 64 KiB). */
  c->max_write_buffer_size = (size_t)1 << 20;
  c->subprotocols = NULL;
  c->n_subprotocols = 0;
  c->require_subprotocol = 0;
  c->allowed_origins = NULL;
  c->n_allowed_origins = 0;
  c->session_timeout_s = 3600;
  c->idle_timeout_s = 60;
  c->ping_interval_s = 30;
  c->handshake_timeout_s = 10;
  c->close_timeout_s = 5;
  c->deflate = 1;
  c->deflate_server_no_context_takeover = 0;
  c->deflate_client_no_context_takeover = 0;
  c->deflate_server_max_window_bits = 15;
  c->deflate_client_max_window_bits = 15;
  c->deflate_level = 1;
  c->deflate_mem_level = 4;
  c->deflate_threshold = 64;
}

/* RFC 6455 §7.4: 1004-1006 and 1015 are reserved and must never be sent;
 * 1016-2999 are reserved for future RFCs; 3000-4999 belong to libraries,
 * frameworks and applications; 1012-1014 are IANA-registered. */
int wse_close_code_valid(unsigned code) {
  if (code >= 1000 && code <= 1003) return 1;
  if (code >= 1007 && code <= 1014) return 1;
  if (code >= 3000 && code <= 4999) return 1;
  return 0;
}

unsigned wse_close_code_for(int err) {
  switch (err) {
  case WSE_OK: return WSE_CLOSE_NORMAL;
  case WSE_EPROTO: return WSE_CLOSE_PROTOCOL;
  case WSE_EUTF8: return WSE_CLOSE_INVALID_DATA;
  case WSE_ETOOBIG: return WSE_CLOSE_TOO_BIG;
  case WSE_EPOLICY: return WSE_CLOSE_POLICY;
  case WSE_ECLOSED: return WSE_CLOSE_NORMAL;
  default: return WSE_CLOSE_INTERNAL;
  }
}

#if WSE_WASM
__attribute__((noinline)) int wse__memeq(const void *a, const void *b, size_t n) {
  const uint8_t *x = (const uint8_t *)a, *y = (const uint8_t *)b;
  for (size_t i = 0; i < n; i++)
    if (x[i] != y[i]) return 0;
  return 1;
}

__attribute__((noinline)) void *wse__alloc(const wse_allocator_t *a, size_t n) {
  return a->alloc_fn(a->ud, n);
}

__attribute__((noinline)) void wse__free(const wse_allocator_t *a, void *p, size_t n) {
  if (p) a->free_fn(a->ud, p, n);
}
#endif

void *wse__realloc(const wse_allocator_t *a, void *p, size_t old_n, size_t new_n) {
  if (a->realloc_fn) return a->realloc_fn(a->ud, p, old_n, new_n);
  void *q = a->alloc_fn(a->ud, new_n);
  if (!q) return NULL;
  if (p) {
    wse__memcpy(q, p, old_n < new_n ? old_n : new_n);
    a->free_fn(a->ud, p, old_n);
  }
  return q;
}

const char *wse_http_reason(int status) {
  static const struct { short code; const char *text; } t[] = {
      {101, "Switching Protocols"}, {200, "OK"},
      {201, "Created"},             {202, "Accepted"},
      {204, "No Content"},          {400, "Bad Request"},
      {401, "Unauthorized"},        {403, "Forbidden"},
      {404, "Not Found"},           {405, "Method Not Allowed"},
      {408, "Request Timeout"},     {409, "Conflict"},
      {411, "Length Required"},     {413, "Content Too Large"},
      {426, "Upgrade Required"},    {429, "Too Many Requests"},
      {431, "Request Header Fields Too Large"},
      {500, "Internal Server Error"}, {501, "Not Implemented"},
      {502, "Bad Gateway"},         {503, "Service Unavailable"}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (t[i].code == status) return t[i].text;
  return "Unknown";
}
