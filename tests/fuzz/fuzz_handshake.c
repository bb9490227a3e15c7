/* fuzz_handshake.c — libFuzzer target for upgrade validation. The input is
 * read as text: a first line "METHOD VERSION", then "Name: value" lines;
 * the first byte also picks a configuration (subprotocols, origins,
 * deflate settings). Every string lives in its own heap block so ASan
 * catches a read past any length. Checks the outcome's invariants and that
 * responses are well-formed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "wsedge.h"

#define MAXH 64

static char *dup_block(const uint8_t *p, size_t n) {
  char *c = malloc(n ? n : 1);
  memcpy(c, p, n);
  return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  unsigned mode = data[0];
  data++;
  size--;
  wse_config_t cfg;
  wse_config_default(&cfg);
  static const char *const protos[] = {"chat", "chat.v2", "mqtt"};
  static const char *const origins[] = {"https://a.example", "*"};
  if (mode & 1) { cfg.subprotocols = protos; cfg.n_subprotocols = 3; }
  if (mode & 2) cfg.require_subprotocol = 1;
  if (mode & 4) { cfg.allowed_origins = origins; cfg.n_allowed_origins = (mode & 8) ? 2 : 1; }
  if (mode & 16) cfg.deflate = 0;
  if (mode & 32) cfg.deflate_server_no_context_takeover = 1;
  if (mode & 64) cfg.deflate_server_max_window_bits = 9 + (mode >> 6);
  if (mode & 128) cfg.deflate_client_max_window_bits = 10;

  /* split into lines */
  wse_header_t h[MAXH];
  char *blocks[2 * MAXH + 2];
  int nb = 0;
  size_t nh = 0, i = 0, line = 0;
  wse_request_t req;
  memset(&req, 0, sizeof req);
  while (i < size && nh < MAXH) {
    size_t s = i;
    while (i < size && data[i] != '\n') i++;
    size_t e = i;
    if (i < size) i++;
    if (e > s && data[e - 1] == '\r') e--;
    if (line++ == 0) {
      size_t sp = s;
      while (sp < e && data[sp] != ' ') sp++;
      char *m = dup_block(data + s, sp - s);
      blocks[nb++] = m;
      req.method.p = m;
      req.method.n = sp - s;
      req.http_version = sp + 1 < e ? data[sp + 1] % 32 : 11;
      req.target.p = "/";
      req.target.n = 1;
      continue;
    }
    size_t colon = s;
    while (colon < e && data[colon] != ':') colon++;
    if (colon == e) continue;
    size_t v = colon + 1;
    while (v < e && data[v] == ' ') v++;
    char *name = dup_block(data + s, colon - s);
    char *val = dup_block(data + v, e - v);
    blocks[nb++] = name;
    blocks[nb++] = val;
    h[nh].name.p = name;
    h[nh].name.n = colon - s;
    h[nh].value.p = val;
    h[nh].value.n = e - v;
    nh++;
  }
  req.headers = h;
  req.n_headers = nh;
  if (!req.method.p) { req.method.p = "GET"; req.method.n = 3; req.http_version = 11; }

  wse_upgrade_t u;
  int rc = wse_upgrade_validate(&cfg, &req, &u);
  if ((rc == WSE_OK) != (u.status == 101)) abort();
  if (u.status != 101 && u.status != 400 && u.status != 403 && u.status != 405 && u.status != 426)
    abort();
  if (u.status == 101) {
    if (u.error || strlen(u.accept) != 28) abort();
    if (u.subprotocol >= (int)cfg.n_subprotocols) abort();
    if (cfg.require_subprotocol && u.subprotocol < 0) abort();
    if (!wse_is_upgrade_request(&req)) abort();
  } else {
    if (!u.error) abort();
    if ((u.status == 405) != u.allow_get) abort();
    if ((u.status == 426) != u.version13) abort();
  }
  if (u.n_deflate_offers > WSE_MAX_DEFLATE_OFFERS) abort();
  for (size_t k = 0; k < u.n_deflate_offers; k++) {
    const wse_deflate_params_t *o = &u.deflate_offers[k];
    if (o->server_max_window_bits != -1 && (o->server_max_window_bits < 8 || o->server_max_window_bits > 15)) abort();
    if (o->client_max_window_bits != -1 && o->client_max_window_bits != 0 &&
        (o->client_max_window_bits < 8 || o->client_max_window_bits > 15)) abort();
  }
  wse_deflate_negotiate(&cfg, &u);
  if (u.deflate_accepted) {
    if (!cfg.deflate) abort();
    if (u.deflate.server_max_window_bits != -1 && (u.deflate.server_max_window_bits < 8 || u.deflate.server_max_window_bits > 15)) abort();
    /* 8 (a 256-byte window; hosts compress with zlib's 9, whose matches
     * stay within 250 bytes) only when the client asked for 8 */
    if (u.deflate.server_max_window_bits == 8) {
      int asked8 = 0;
      for (size_t k = 0; k < u.n_deflate_offers; k++)
        asked8 |= u.deflate_offers[k].server_max_window_bits == 8;
      if (!asked8) abort();
    }
    /* 8 only when the client offered 8: never answered above its value */
    if (u.deflate.client_max_window_bits != -1 && (u.deflate.client_max_window_bits < 8 || u.deflate.client_max_window_bits > 15)) abort();
    if (u.deflate.client_max_window_bits == 8) {
      int offered8 = 0;
      for (size_t k = 0; k < u.n_deflate_offers; k++)
        offered8 |= u.deflate_offers[k].client_max_window_bits == 8;
      if (!offered8) abort();
    }
  }
  char *buf = malloc(4096);
  int n = wse_upgrade_response(&cfg, &u, buf, 4096);
  if (n <= 0) abort();
  if (memcmp(buf, "HTTP/1.1 ", 9) || memcmp(buf + n - (u.status == 101 ? 4 : 1), u.status == 101 ? "\r\n\r\n" : "}", u.status == 101 ? 4 : 1)) abort();
  if (u.status != 101 && n > 512) abort();
  /* a response never fits a smaller buffer partially */
  if (wse_upgrade_response(&cfg, &u, buf, (size_t)n - 1) != WSE_ENOSPC) abort();
  free(buf);
  /* JSON escaping of arbitrary bytes: output has no raw control chars */
  char json[1024];
  size_t jl = size < 150 ? size : 150;
  int j = wse_json_error((const char *)data, jl, json, sizeof json);
  if (j < 0) abort();
  for (int k = 0; k < j; k++)
    if ((unsigned char)json[k] < 0x20) abort();
  for (int k = 0; k < nb; k++) free(blocks[k]);
  return 0;
}
