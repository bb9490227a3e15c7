/* fuzz_inflate.c — libFuzzer target for the native host's permessage-deflate
 * (bindings/native/deflate.c). Input: 3 mode bytes (takeover flags, client
 * window bits, opcode, a small message limit, level/memLevel/server window),
 * then messages separated by the byte 0xA5 (first one unseparated), each
 * inflated as a compressed message of one connection, so context takeover
 * carries garbage from one message to the next.
 * Promises checked: never crashes or leaks; an accepted message is at most
 * the limit and valid UTF-8 when text; a refused one never inflated more
 * than limit + 1 bytes; the first message agrees with a plain zlib inflate
 * (same bytes when both accept; zlib's refusal is ours too, except that a
 * client without context takeover may have a message zlib finds not ending
 * on a block boundary taken whole by libdeflate, as uWebSockets does: then
 * the bytes are exactly libdeflate's decode of it); and the whole input
 * compressed by our
 * compressor inflates back to itself with the negotiated windows. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <libdeflate.h>
#include <zlib.h>

#include "deflate.h"

static wsn_deflate_ctx_t *ctx;

/* Plain zlib: fresh raw inflater (window 15), tail appended, at most cap
 * bytes. Returns the length, -1 on a zlib error or input not ending between
 * blocks, -2 when more than cap would come out. */
static long reference(const uint8_t *p, size_t n, uint8_t *out, size_t cap, int *ended) {
  z_stream z;
  memset(&z, 0, sizeof z);
  *ended = 0;
  if (inflateInit2(&z, -15) != Z_OK) abort();
  uint8_t *in = malloc(n + 4);
  if (n) memcpy(in, p, n);
  memcpy(in + n, "\x00\x00\xff\xff", 4);
  z.next_in = in;
  z.avail_in = (uInt)(n + 4);
  z.next_out = out;
  z.avail_out = (uInt)(cap + 1);
  int zr = inflate(&z, Z_SYNC_FLUSH);
  long r;
  if (cap + 1 - z.avail_out > cap) r = -2;
  else if (zr == Z_STREAM_END) { r = (long)(cap + 1 - z.avail_out); *ended = 1; }
  else if (zr != Z_OK && zr != Z_BUF_ERROR) r = -1;
  else if (z.avail_in || !(z.data_type & 128)) r = -1;
  else r = (long)(cap + 1 - z.avail_out);
  inflateEnd(&z);
  free(in);
  return r;
}

/* libdeflate on the message + tail + an empty final stored block, as the
 * fast path decodes it: the length, or -1. */
static long whole(const uint8_t *p, size_t n, uint8_t *out, size_t cap) {
  static struct libdeflate_decompressor *ld;
  static const uint8_t fin[9] = {0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff};
  if (!ld && !(ld = libdeflate_alloc_decompressor())) abort();
  uint8_t *in = malloc(n + sizeof fin);
  if (!in) abort();
  if (n) memcpy(in, p, n);
  memcpy(in + n, fin, sizeof fin);
  size_t used = 0, got = 0;
  enum libdeflate_result r = libdeflate_deflate_decompress_ex(ld, in, n + sizeof fin, out, cap, &used, &got);
  free(in);
  return r == LIBDEFLATE_SUCCESS && used == n + sizeof fin ? (long)got : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  if (!ctx && !(ctx = wsn_deflate_ctx_new())) abort();
  uint8_t m0 = data[0], m1 = data[1], m2 = data[2];
  data += 3;
  size -= 3;
  wse_config_t cfg;
  wse_config_default(&cfg);
  cfg.max_message_size = 1 + (uint64_t)(m1 & 0x7f) * 64; /* 1 .. 8129 */
  cfg.deflate_threshold = 0;
  cfg.deflate_level = 1 + (m2 & 7);
  cfg.deflate_mem_level = 1 + ((m2 >> 3) & 7);
  unsigned op = (m1 & 0x80) ? WSE_OP_TEXT : WSE_OP_BINARY;
  wse_deflate_params_t neg;
  neg.server_no_context_takeover = (m0 & 1) ? 1 : -1;
  neg.client_no_context_takeover = (m0 & 2) ? 1 : -1;
  int cb = (m0 >> 2) & 15;
  neg.client_max_window_bits = cb < 8 ? -1 : cb;
  neg.server_max_window_bits = 9 + (m2 >> 6) * 2; /* 9, 11, 13, 15 */
  wsn_deflate_t *d = wsn_deflate_new(&cfg, &neg);
  if (!d) abort();

  uint8_t *ref = malloc(cfg.max_message_size + 2);
  size_t start = 0;
  int first = 1;
  while (start <= size) {
    size_t end = start;
    while (end < size && data[end] != 0xA5) end++;
    const uint8_t *msg = data + start;
    size_t n = end - start;
    wsn_deflate_stats_t before, after;
    wsn_deflate_stats(d, &before);
    const uint8_t *out;
    size_t on;
    int rc = wsn_deflate_inflate(d, ctx, op, msg, n, &out, &on);
    wsn_deflate_stats(d, &after);
    if (after.in_inflated - before.in_inflated > cfg.max_message_size + 1) abort();
    if (rc == WSE_OK) {
      if (on > cfg.max_message_size) abort();
      if (on && !out) abort();
      if (op == WSE_OP_TEXT && !wse_utf8_valid(out, on)) abort();
    } else if (rc != WSE_ETOOBIG && rc != WSE_EUTF8 && rc != WSN_DEFLATE_EDATA) {
      abort();
    }
    if (first && (cb < 8 || cb == 15)) {
      /* differential against plain zlib on a fresh stream (window 15) */
      int ended;
      long r = reference(msg, n, ref, cfg.max_message_size, &ended);
      if (n == 0) r = 0;
      if (rc == WSE_OK && r < 0) { /* only libdeflate's whole-message leniency */
        long w = neg.client_no_context_takeover > 0 ? whole(msg, n, ref, cfg.max_message_size) : -1;
        if (w < 0 || (size_t)w != on || memcmp(ref, out, on)) abort();
      } else if (rc == WSE_OK && ((size_t)r != on || memcmp(ref, out, on))) {
        abort();
      }
      if (rc == WSE_ETOOBIG && r != -2) abort();
      if (r >= 0 && rc != WSE_OK &&
          !(rc == WSE_EUTF8 && op == WSE_OP_TEXT && !wse_utf8_valid(ref, (size_t)r)))
        abort();
    }
    first = 0;
    if (rc != WSE_OK) break; /* the host closes the connection */
    start = end + 1;
  }
  free(ref);
  wsn_deflate_free(d);

  /* round trip: our compressor, then our inflater as the peer would use it */
  wse_config_t big = cfg;
  big.max_message_size = size + 1;
  wsn_deflate_t *srv = wsn_deflate_new(&big, &neg);
  wse_deflate_params_t peer = neg;
  peer.client_max_window_bits = neg.server_max_window_bits;
  peer.client_no_context_takeover = neg.server_no_context_takeover;
  wsn_deflate_t *cli = wsn_deflate_new(&big, &peer);
  if (!srv || !cli) abort();
  for (int k = 0; k < 2; k++) { /* twice: the second may use the context */
    const uint8_t *f;
    size_t fl;
    if (wsn_deflate_message(srv, ctx, WSE_OP_BINARY, data, size, &f, &fl) != WSE_OK) abort();
    wse_frame_header_t h;
    int hl = wse_frame_parse_header(f, fl, &h);
    if (hl <= 0 || h.rsv != 4 || !h.fin || (size_t)hl + h.len != fl) abort();
    uint8_t *copy = malloc((size_t)h.len + 1);
    memcpy(copy, f + hl, (size_t)h.len);
    const uint8_t *out;
    size_t on;
    if (wsn_deflate_inflate(cli, ctx, WSE_OP_BINARY, copy, (size_t)h.len, &out, &on) != WSE_OK) abort();
    if (on != size || (size && memcmp(out, data, size))) abort();
    free(copy);
  }
  wsn_deflate_free(srv);
  wsn_deflate_free(cli);
  return 0;
}
