/* fuzz_frame.c — libFuzzer target for the message engine. The first bytes
 * pick the role, RSV1 and small limits; the rest is the byte stream. It is
 * fed in chunks whose sizes come from a PRNG seeded by the input, and again
 * one byte at a time: both runs must produce identical events, and every
 * event must respect the engine's promises (limits, UTF-8, close codes). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "wsedge.h"

typedef struct {
  int type, error;
  unsigned opcode, close_code;
  int compressed;
  size_t len, reason_len;
  uint64_t hash;
} fev_t;

#define MAX_EV 4096

typedef struct {
  fev_t ev[MAX_EV];
  int n;
} ftrace_t;

static uint64_t fnv(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

static void *f_alloc(void *ud, size_t n) { (void)ud; return malloc(n ? n : 1); }
static void *f_realloc(void *ud, void *p, size_t o, size_t n) { (void)ud; (void)o; return realloc(p, n ? n : 1); }
static void f_free(void *ud, void *p, size_t n) { (void)ud; (void)n; free(p); }
static const wse_allocator_t fa = {f_alloc, f_realloc, f_free, NULL};

static void check_event(const wse_config_t *cfg, const wse_event_t *ev) {
  switch (ev->type) {
  case WSE_EV_MESSAGE:
    if (ev->len > cfg->max_message_size) abort();
    if (ev->len && !ev->data) abort();
    if (ev->opcode == WSE_OP_TEXT && !ev->compressed && !wse_utf8_valid(ev->data, ev->len)) abort();
    if (ev->opcode != WSE_OP_TEXT && ev->opcode != WSE_OP_BINARY) abort();
    break;
  case WSE_EV_PING:
  case WSE_EV_PONG:
    if (ev->len > 125) abort();
    break;
  case WSE_EV_CLOSE:
    if (ev->close_code != 1005 && !wse_close_code_valid(ev->close_code)) abort();
    if (!wse_utf8_valid(ev->reason, ev->reason_len)) abort();
    break;
  case WSE_EV_ERROR:
    if (ev->close_code != 1002 && ev->close_code != 1007 && ev->close_code != 1009 &&
        ev->close_code != 1011)
      abort();
    break;
  default:
    break;
  }
}

static void run(const wse_config_t *cfg, unsigned flags, const uint8_t *data, size_t n,
                uint32_t seed, int one_byte, ftrace_t *t) {
  uint8_t *buf = malloc(n ? n : 1);
  memcpy(buf, data, n);
  wse_ws_t ws;
  wse_ws_init(&ws, cfg, &fa, flags);
  t->n = 0;
  uint8_t *byte_block = malloc(1);
  size_t off = 0;
  uint32_t r = seed | 1;
  while (off < n) {
    size_t k;
    if (one_byte) k = 1;
    else {
      r ^= r << 13; r ^= r >> 17; r ^= r << 5;
      k = 1 + r % 64;
      if ((r >> 8) % 8 == 0) k += r % 4096;
    }
    if (k > n - off) k = n - off;
    /* each chunk in its own heap block so ASan sees any over-read; 1-byte
     * feeding reuses one block (a malloc per byte would fill ASan's
     * quarantine with tiny chunks) */
    uint8_t *chunk = one_byte ? byte_block : malloc(k);
    memcpy(chunk, buf + off, k);
    size_t used = 0;
    for (;;) {
      wse_event_t ev;
      size_t c = 0;
      int rc = wse_ws_parse(&ws, chunk + used, k - used, &c, &ev);
      if (c > k - used) abort();
      used += c;
      if (ev.type == WSE_EV_ERROR && rc != ev.error) abort();
      if (ev.type != WSE_EV_ERROR && rc != WSE_OK) abort();
      if (ev.type == WSE_EV_NONE) {
        if (used != k) abort();
        break;
      }
      check_event(cfg, &ev);
      if (t->n < MAX_EV) {
        fev_t *e = &t->ev[t->n++];
        memset(e, 0, sizeof *e);
        e->type = ev.type;
        e->error = ev.error;
        e->opcode = ev.opcode;
        e->close_code = ev.close_code;
        e->compressed = ev.compressed;
        e->len = ev.len;
        e->reason_len = ev.reason_len;
        e->hash = fnv(ev.data, ev.len) ^ fnv(ev.reason, ev.reason_len) * 31;
      }
    }
    if (!one_byte) free(chunk);
    off += k;
  }
  /* the close state machine accepts our close exactly once */
  uint8_t out[127];
  size_t cl = wse_ws_close(&ws, out, 1000, "bye", 3);
  if (cl && !wse_ws_closing(&ws)) abort();
  if (wse_ws_close(&ws, out, 1000, NULL, 0) != 0) abort();
  wse_ws_free(&ws);
  free(byte_block);
  free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  unsigned mode = data[0];
  uint32_t seed = (uint32_t)data[1] << 8 | data[2];
  data += 3;
  size -= 3;
  wse_config_t cfg;
  wse_config_default(&cfg);
  if (mode & 0x10) {
    cfg.max_frame_size = 1 + (mode & 0x0f) * 64;
    cfg.max_message_size = cfg.max_frame_size * 3;
  }
  unsigned flags = (mode & 1) ? WSE_WS_CLIENT : WSE_WS_SERVER;
  if (mode & 2) flags |= WSE_WS_RSV1;
  static ftrace_t a, b;
  run(&cfg, flags, data, size, seed, 0, &a);
  run(&cfg, flags, data, size, seed, 1, &b);
  if (a.n != b.n) abort();
  for (int i = 0; i < a.n; i++)
    if (memcmp(&a.ev[i], &b.ev[i], sizeof a.ev[i])) abort();
  return 0;
}
