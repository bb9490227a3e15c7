/* bench_core.c — micro-benchmarks of the core (make bench-core; never part of
 * the tests): unmask throughput, UTF-8 validation on ASCII and on mixed
 * multilingual text, and frames parsed per second through wse_ws_parse.
 * The two UTF-8 inputs come from the same deterministic generator as
 * bench/utf8_node.mjs, which measures Node's buffer.isUtf8 on them, so the
 * ratio can be read from one `make bench-core` run. Short runs: about a
 * second in total per measurement set on a quiet core. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "wsedge.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static volatile uint64_t sink;

/* ---- the shared deterministic text generator (mirrored in utf8_node.mjs) */

static uint32_t rng;
static uint32_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return rng;
}

static size_t put_utf8(uint8_t *o, uint32_t cp) {
  if (cp < 0x80) { o[0] = (uint8_t)cp; return 1; }
  if (cp < 0x800) { o[0] = (uint8_t)(0xC0 | cp >> 6); o[1] = (uint8_t)(0x80 | (cp & 63)); return 2; }
  if (cp < 0x10000) {
    o[0] = (uint8_t)(0xE0 | cp >> 12); o[1] = (uint8_t)(0x80 | ((cp >> 6) & 63));
    o[2] = (uint8_t)(0x80 | (cp & 63)); return 3;
  }
  o[0] = (uint8_t)(0xF0 | cp >> 18); o[1] = (uint8_t)(0x80 | ((cp >> 12) & 63));
  o[2] = (uint8_t)(0x80 | ((cp >> 6) & 63)); o[3] = (uint8_t)(0x80 | (cp & 63)); return 4;
}

static const uint32_t latin[] = {0xE9, 0xE8, 0xFC, 0xF6, 0xE4, 0xF1, 0xE7, 0xE0, 0xDF, 0xF8};

/* Words separated by spaces: 40% ASCII, 15% Latin with accents, 15% Greek,
 * 20% CJK, 10% emoji. ASCII mode: printable ASCII words only. */
static size_t gen_text(uint8_t *out, size_t n, int mixed) {
  rng = 0x9E3779B9u;
  size_t o = 0;
  while (o + 64 < n) {
    uint32_t kind = mixed ? next() % 100 : 0;
    uint32_t len = 2 + next() % 7;
    for (uint32_t i = 0; i < len; i++) {
      uint32_t r = next(), cp;
      if (kind < 40) cp = 'a' + r % 26;
      else if (kind < 55) cp = (r & 3) == 0 ? latin[(r >> 2) % 10] : 'a' + (r >> 2) % 26;
      else if (kind < 70) cp = 0x3B1 + r % 25;
      else if (kind < 90) cp = 0x4E00 + r % 0x5000;
      else cp = 0x1F600 + r % 0x50;
      o += put_utf8(out + o, cp);
    }
    out[o++] = (next() % 12 == 0) ? '\n' : ' ';
  }
  while (o < n) out[o++] = ' ';
  return o;
}

static uint32_t fnv32(const uint8_t *p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h;
}

/* best of 3 runs of at least `min_s` seconds each; returns bytes/s */
typedef void (*work_fn)(void *ctx);
static double measure(work_fn f, void *ctx, double bytes_per_call, double min_s) {
  double best = 0;
  for (int rep = 0; rep < 3; rep++) {
    long calls = 0;
    double t0 = now(), t;
    do {
      for (int k = 0; k < 16; k++) f(ctx);
      calls += 16;
      t = now() - t0;
    } while (t < min_s);
    double rate = bytes_per_call * (double)calls / t;
    if (rate > best) best = rate;
  }
  return best;
}

typedef struct { uint8_t *p; size_t n; } buf_t;

static void do_unmask(void *ctx) {
  buf_t *b = ctx;
  static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
  wse_unmask(b->p, b->n, mask, 0);
  sink += b->p[b->n / 2];
}

static void do_utf8(void *ctx) {
  buf_t *b = ctx;
  sink += (uint64_t)wse_utf8_valid(b->p, b->n);
}

/* many small masked frames, parsed by one engine */
typedef struct {
  uint8_t *wire, *work;
  size_t n;
  int frames;
  int copy;
  wse_ws_t *ws;
} frames_t;

static void do_frames(void *ctx) {
  frames_t *f = ctx;
  if (f->copy) memcpy(f->work, f->wire, f->n);
  size_t off = 0;
  int msgs = 0;
  while (off < f->n) {
    wse_event_t ev;
    size_t c;
    wse_ws_parse(f->ws, f->work + off, f->n - off, &c, &ev);
    off += c;
    msgs += ev.type == WSE_EV_MESSAGE;
  }
  if (msgs != f->frames) { fprintf(stderr, "frame bench: %d of %d messages\n", msgs, f->frames); exit(1); }
  sink += (uint64_t)msgs;
}

static void *b_alloc(void *ud, size_t n) { (void)ud; return malloc(n); }
static void *b_realloc(void *ud, void *p, size_t o, size_t n) { (void)ud; (void)o; return realloc(p, n); }
static void b_free(void *ud, void *p, size_t n) { (void)ud; (void)n; free(p); }

static void bench_frames(size_t payload, unsigned op, int copy, const wse_config_t *cfg) {
  static const uint8_t mask[4] = {1, 2, 3, 4};
  int frames = 20000;
  size_t fsz = wse_frame_header_size(payload, 1) + payload;
  frames_t f;
  f.n = fsz * (size_t)frames;
  f.wire = malloc(f.n);
  f.work = copy ? malloc(f.n) : f.wire;
  f.frames = frames;
  f.copy = copy;
  uint8_t *pl = malloc(payload ? payload : 1);
  for (size_t i = 0; i < payload; i++) pl[i] = (uint8_t)('a' + i % 26);
  size_t o = 0;
  for (int k = 0; k < frames; k++) {
    o += wse_frame_write_header(f.wire + o, 1, 0, op, payload, mask);
    memcpy(f.wire + o, pl, payload);
    wse_unmask(f.wire + o, payload, mask, 0);
    o += payload;
  }
  wse_allocator_t a = {b_alloc, b_realloc, b_free, NULL};
  wse_ws_t ws;
  wse_ws_init(&ws, cfg, &a, WSE_WS_SERVER);
  f.ws = &ws;
  double rate = measure(do_frames, &f, (double)frames, 0.25);
  printf("frames: %.1f M frames/s (%zu B masked %s frames%s, %.2f GB/s of wire)\n", rate / 1e6,
         payload, op == WSE_OP_TEXT ? "text" : "binary", copy ? ", incl. re-copying the input" : "",
         rate * (double)fsz / 1e9);
  wse_ws_free(&ws);
  free(pl);
  if (copy) free(f.work);
  free(f.wire);
}

int main(void) {
  wse_config_t cfg;
  wse_config_default(&cfg);

  /* unmask: a 64 KiB receive buffer, unmasked in place, repeatedly */
  buf_t u = {aligned_alloc(64, 65536), 65536};
  memset(u.p, 0x5a, u.n);
  printf("unmask: %.2f GB/s (64 KiB buffer, in place)\n", measure(do_unmask, &u, 65536, 0.25) / 1e9);
  buf_t u2 = {u.p + 3, 1500};
  printf("unmask: %.2f GB/s (1500 B, misaligned)\n", measure(do_unmask, &u2, 1500, 0.25) / 1e9);

  /* UTF-8: 1 MiB of ASCII text and of mixed multilingual text */
  size_t n = 1 << 20;
  buf_t a = {malloc(n), n}, m = {malloc(n), n};
  gen_text(a.p, n, 0);
  gen_text(m.p, n, 1);
  if (!wse_utf8_valid(a.p, n) || !wse_utf8_valid(m.p, n)) { fprintf(stderr, "generator bug\n"); return 1; }
  size_t multi = 0;
  for (size_t i = 0; i < n; i++) multi += m.p[i] >= 0x80;
  printf("utf8 inputs: ascii fnv=%08x, mixed fnv=%08x (%.0f%% non-ASCII bytes)\n", fnv32(a.p, n),
         fnv32(m.p, n), 100.0 * (double)multi / (double)n);
  printf("utf8 ascii: %.2f GB/s (wse_utf8_valid, 1 MiB)\n", measure(do_utf8, &a, (double)n, 0.3) / 1e9);
  printf("utf8 mixed: %.2f GB/s (wse_utf8_valid, 1 MiB)\n", measure(do_utf8, &m, (double)n, 0.3) / 1e9);

  /* frames */
  bench_frames(32, WSE_OP_BINARY, 0, &cfg);
  bench_frames(32, WSE_OP_TEXT, 1, &cfg);
  bench_frames(1024, WSE_OP_TEXT, 1, &cfg);

  free(u.p);
  free(a.p);
  free(m.p);
  return 0;
}
