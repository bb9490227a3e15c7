/* test_frame.c — the frame codec: header parsing (RFC 6455 §5.7 examples,
 * 7/16/64-bit lengths, need-more at every prefix, the 64-bit top bit),
 * header writing, unmasking against a byte-wise reference at every
 * alignment and offset, message framing with fragmentation, close frames.
 * Parsed input sits right before a PROT_NONE page. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS under -D_POSIX_C_SOURCE */
#include "test.h"

static int parse_guarded(const uint8_t *p, size_t n, wse_frame_header_t *h) {
  guard_t g = guard_copy(p, n);
  int r = wse_frame_parse_header(g.data, n, h);
  guard_free(&g);
  return r;
}

/* every strict prefix needs more input */
static void check_prefixes(const uint8_t *p, size_t hl) {
  wse_frame_header_t h;
  int bad = 0;
  for (size_t k = 0; k < hl; k++)
    if (parse_guarded(p, k, &h) != WSE_EAGAIN) bad++;
  CHECK_EQ(bad, 0);
}

static void test_parse_header(void) {
  wse_frame_header_t h;
  static const uint8_t hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  CHECK_EQ(parse_guarded(hello, sizeof hello, &h), 2);
  CHECK_EQ(h.fin, 1);
  CHECK_EQ(h.rsv, 0);
  CHECK_EQ(h.opcode, WSE_OP_TEXT);
  CHECK_EQ(h.masked, 0);
  CHECK_EQ(h.len, 5);
  CHECK_EQ(h.header_len, 2);
  check_prefixes(hello, 2);

  static const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
  CHECK_EQ(parse_guarded(masked, 6, &h), 6);
  CHECK_EQ(h.masked, 1);
  CHECK_MEM(h.mask, 4, "\x37\xfa\x21\x3d", 4);
  CHECK_EQ(h.len, 5);
  check_prefixes(masked, 6);
  uint8_t payload[5];
  memcpy(payload, masked + 6, 5);
  wse_unmask(payload, 5, h.mask, 0);
  CHECK_MEM(payload, 5, "Hello", 5);

  static const uint8_t frag1[] = {0x01, 0x03, 0x48, 0x65, 0x6c};
  CHECK_EQ(parse_guarded(frag1, sizeof frag1, &h), 2);
  CHECK_EQ(h.fin, 0);
  CHECK_EQ(h.opcode, WSE_OP_TEXT);
  CHECK_EQ(h.len, 3);
  static const uint8_t frag2[] = {0x80, 0x02, 0x6c, 0x6f};
  CHECK_EQ(parse_guarded(frag2, sizeof frag2, &h), 2);
  CHECK_EQ(h.fin, 1);
  CHECK_EQ(h.opcode, WSE_OP_CONT);
  CHECK_EQ(h.len, 2);

  static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  CHECK_EQ(parse_guarded(ping, sizeof ping, &h), 2);
  CHECK_EQ(h.opcode, WSE_OP_PING);

  static const uint8_t l256[] = {0x82, 0x7e, 0x01, 0x00};
  CHECK_EQ(parse_guarded(l256, 4, &h), 4);
  CHECK_EQ(h.opcode, WSE_OP_BINARY);
  CHECK_EQ(h.len, 256);
  check_prefixes(l256, 4);

  static const uint8_t l64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
  CHECK_EQ(parse_guarded(l64k, 10, &h), 10);
  CHECK_EQ(h.len, 65536);
  check_prefixes(l64k, 10);

  static const uint8_t l64m[] = {0x82, 0xff, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
                                 1, 2, 3, 4};
  CHECK_EQ(parse_guarded(l64m, 14, &h), 14);
  CHECK_EQ(h.len, 0x010203040506ull);
  CHECK_MEM(h.mask, 4, "\x01\x02\x03\x04", 4);
  check_prefixes(l64m, 14);

  static const uint8_t top[] = {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0};
  CHECK_EQ(parse_guarded(top, 10, &h), WSE_EPROTO);
  static const uint8_t topm[] = {0x82, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0};
  CHECK_EQ(parse_guarded(topm, 10, &h), WSE_EPROTO); /* before the mask */
  static const uint8_t maxok[] = {0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  CHECK_EQ(parse_guarded(maxok, 10, &h), 10);
  CHECK_EQ(h.len, 0x7fffffffffffffffull);

  static const uint8_t rsv[] = {0xf1, 0x00};
  CHECK_EQ(parse_guarded(rsv, 2, &h), 2);
  CHECK_EQ(h.rsv, 7);
  static const uint8_t rsv1[] = {0xc1, 0x00};
  CHECK_EQ(parse_guarded(rsv1, 2, &h), 2);
  CHECK_EQ(h.rsv, 4);
}

static void test_write_header(void) {
  uint8_t out[WSE_FRAME_HEADER_MAX];
  size_t n = wse_frame_write_header(out, 1, 0, WSE_OP_TEXT, 5, NULL);
  CHECK_MEM(out, n, "\x81\x05", 2);
  n = wse_frame_write_header(out, 1, 0, WSE_OP_TEXT, 5, (const uint8_t *)"\x37\xfa\x21\x3d");
  CHECK_MEM(out, n, "\x81\x85\x37\xfa\x21\x3d", 6);
  n = wse_frame_write_header(out, 0, 0, WSE_OP_TEXT, 3, NULL);
  CHECK_MEM(out, n, "\x01\x03", 2);
  n = wse_frame_write_header(out, 1, 0, WSE_OP_CONT, 2, NULL);
  CHECK_MEM(out, n, "\x80\x02", 2);
  n = wse_frame_write_header(out, 1, 0, WSE_OP_BINARY, 256, NULL);
  CHECK_MEM(out, n, "\x82\x7e\x01\x00", 4);
  n = wse_frame_write_header(out, 1, 0, WSE_OP_BINARY, 65536, NULL);
  CHECK_MEM(out, n, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
  n = wse_frame_write_header(out, 1, 1, WSE_OP_TEXT, 125, NULL);
  CHECK_MEM(out, n, "\xc1\x7d", 2);
  n = wse_frame_write_header(out, 1, 0, WSE_OP_BINARY, 126, NULL);
  CHECK_MEM(out, n, "\x82\x7e\x00\x7e", 4);
  n = wse_frame_write_header(out, 1, 0, WSE_OP_BINARY, 65535, NULL);
  CHECK_MEM(out, n, "\x82\x7e\xff\xff", 4);
  /* sizes, and a round trip through the parser for boundary lengths */
  static const uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 1ull << 32, (1ull << 63) - 1};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    for (int m = 0; m < 2; m++) {
      size_t w = wse_frame_write_header(out, 1, 0, WSE_OP_BINARY, lens[i],
                                        m ? (const uint8_t *)"abcd" : NULL);
      CHECK_EQ(w, wse_frame_header_size(lens[i], m));
      wse_frame_header_t h;
      CHECK_EQ(parse_guarded(out, w, &h), (int)w);
      CHECK(h.len == lens[i]);
      CHECK_EQ(h.masked, m);
    }
  }
  CHECK_EQ(wse_frame_header_size(125, 0), 2);
  CHECK_EQ(wse_frame_header_size(126, 0), 4);
  CHECK_EQ(wse_frame_header_size(65536, 1), 14);
}

static void test_unmask(void) {
  static const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
  uint8_t src[300], a[320], b[320];
  for (size_t i = 0; i < sizeof src; i++) src[i] = (uint8_t)(i * 13 + 5);
  int bad = 0;
  for (size_t align = 0; align < 16; align++)
    for (size_t len = 0; len <= 100; len++)
      for (size_t off = 0; off < 8; off++) {
        memcpy(a + align, src, len);
        memcpy(b + align, src, len);
        wse_unmask(a + align, len, mask, off);
        for (size_t i = 0; i < len; i++) b[align + i] ^= mask[(off + i) & 3];
        if (memcmp(a + align, b + align, len)) bad++;
      }
  CHECK_EQ(bad, 0);
  /* unmasking in pieces equals unmasking at once */
  memcpy(a, src, 300);
  memcpy(b, src, 300);
  wse_unmask(a, 300, mask, 0);
  size_t cuts[] = {0, 1, 3, 10, 11, 64, 97, 300};
  for (size_t k = 0; k + 1 < sizeof cuts / sizeof cuts[0]; k++)
    wse_unmask(b + cuts[k], cuts[k + 1] - cuts[k], mask, cuts[k]);
  CHECK_MEM(a, 300, b, 300);
  /* against a guard page: no access past the end */
  guard_t g = guard_copy(src, 37);
  wse_unmask(g.data, 37, mask, 1);
  for (size_t i = 0; i < 37; i++) b[i] = src[i] ^ mask[(1 + i) & 3];
  CHECK_MEM(g.data, 37, b, 37);
  guard_free(&g);
  /* twice is identity */
  memcpy(a, src, 300);
  wse_unmask(a, 300, mask, 2);
  wse_unmask(a, 300, mask, 2);
  CHECK_MEM(a, 300, src, 300);
}

static void test_frame_message(void) {
  uint8_t out[1024];
  long n = wse_frame_message(out, sizeof out, WSE_OP_TEXT, 0, (const uint8_t *)"Hello", 5, 0);
  CHECK_MEM(out, (size_t)n, "\x81\x05Hello", 7);
  CHECK_EQ(wse_frame_message_size(5, 0), 7);
  /* RFC example fragmentation: "Hel" + "lo" */
  n = wse_frame_message(out, sizeof out, WSE_OP_TEXT, 0, (const uint8_t *)"Hello", 5, 3);
  CHECK_MEM(out, (size_t)n, "\x01\x03Hel\x80\x02lo", 9);
  CHECK_EQ(wse_frame_message_size(5, 3), 9);
  /* exact multiple: no empty trailing frame */
  n = wse_frame_message(out, sizeof out, WSE_OP_BINARY, 0, (const uint8_t *)"abcdef", 6, 2);
  CHECK_MEM(out, (size_t)n, "\x02\x02" "ab" "\x00\x02" "cd" "\x80\x02" "ef", 12);
  CHECK_EQ(wse_frame_message_size(6, 2), 12);
  /* rsv1 only on the first frame */
  n = wse_frame_message(out, sizeof out, WSE_OP_TEXT, 1, (const uint8_t *)"abc", 3, 2);
  CHECK_MEM(out, (size_t)n, "\x41\x02" "ab" "\x80\x01" "c", 7);
  n = wse_frame_message(out, sizeof out, WSE_OP_TEXT, 1, (const uint8_t *)"abc", 3, 0);
  CHECK_MEM(out, (size_t)n, "\xc1\x03" "abc", 5);
  /* empty message */
  n = wse_frame_message(out, sizeof out, WSE_OP_TEXT, 0, NULL, 0, 0);
  CHECK_MEM(out, (size_t)n, "\x81\x00", 2);
  n = wse_frame_message(out, sizeof out, WSE_OP_TEXT, 0, NULL, 0, 16);
  CHECK_MEM(out, (size_t)n, "\x81\x00", 2);
  /* too small */
  CHECK_EQ(wse_frame_message(out, 6, WSE_OP_TEXT, 0, (const uint8_t *)"Hello", 5, 0), WSE_ENOSPC);
  CHECK_EQ(wse_frame_message(out, 8, WSE_OP_TEXT, 0, (const uint8_t *)"Hello", 5, 3), WSE_ENOSPC);
  CHECK_EQ(wse_frame_message(out, 9, WSE_OP_TEXT, 0, (const uint8_t *)"Hello", 5, 3), 9);
  /* a large message parses back to the same bytes */
  size_t big = 200000;
  uint8_t *src = malloc(big);
  for (size_t i = 0; i < big; i++) src[i] = (uint8_t)(i ^ (i >> 8));
  size_t need = wse_frame_message_size(big, 65536);
  CHECK_EQ(need, 3 * (10 + 65536) + 4 + (big - 3 * 65536));
  uint8_t *wire = malloc(need);
  CHECK_EQ(wse_frame_message(wire, need, WSE_OP_BINARY, 0, src, big, 65536), (long)need);
  size_t off = 0, got = 0;
  int frames = 0;
  while (off < need) {
    wse_frame_header_t h;
    int hl = wse_frame_parse_header(wire + off, need - off, &h);
    CHECK(hl > 0);
    if (hl <= 0) break;
    CHECK_EQ(h.opcode, frames ? WSE_OP_CONT : WSE_OP_BINARY);
    CHECK_EQ(h.fin, off + (size_t)hl + h.len == need);
    CHECK(memcmp(wire + off + hl, src + got, h.len) == 0);
    got += h.len;
    off += (size_t)hl + h.len;
    frames++;
  }
  CHECK_EQ(frames, 4);
  CHECK_EQ(got, big);
  free(src);
  free(wire);
}

static void test_frame_close(void) {
  uint8_t out[127];
  size_t n = wse_frame_close(out, 1000, NULL, 0);
  CHECK_MEM(out, n, "\x88\x02\x03\xe8", 4);
  n = wse_frame_close(out, 4000, "session expired", 15);
  CHECK_MEM(out, n, "\x88\x11\x0f\xa0session expired", 19);
  n = wse_frame_close(out, 1005, "ignored", 7);
  CHECK_MEM(out, n, "\x88\x00", 2);
  n = wse_frame_close(out, 0, NULL, 0);
  CHECK_MEM(out, n, "\x88\x00", 2);
  /* a 123-byte reason fits exactly; longer is cut to 123 */
  char reason[200];
  memset(reason, 'r', sizeof reason);
  n = wse_frame_close(out, 1001, reason, 123);
  CHECK_EQ(n, 127);
  CHECK_EQ(out[1], 125);
  n = wse_frame_close(out, 1001, reason, 200);
  CHECK_EQ(n, 127);
  CHECK_EQ(out[1], 125);
  /* the cut never splits a character: "é" (C3 A9) straddling byte 123 */
  memset(reason, 'r', sizeof reason);
  reason[122] = (char)0xc3;
  reason[123] = (char)0xa9;
  n = wse_frame_close(out, 1001, reason, 130);
  CHECK_EQ(n, 2 + 2 + 122);
  CHECK(wse_utf8_valid(out + 4, n - 4));
  /* a 4-byte emoji at 121..124 */
  memset(reason, 'r', sizeof reason);
  memcpy(reason + 121, "\xf0\x9f\x98\x80", 4);
  n = wse_frame_close(out, 1001, reason, 130);
  CHECK_EQ(n, 4 + 121);
  CHECK(wse_utf8_valid(out + 4, n - 4));
  /* a 3-byte character ending exactly at 123 is kept */
  memset(reason, 'r', sizeof reason);
  memcpy(reason + 120, "\xe2\x82\xac", 3);
  n = wse_frame_close(out, 1001, reason, 130);
  CHECK_EQ(n, 4 + 123);
  CHECK(wse_utf8_valid(out + 4, n - 4));
}

int main(void) {
  test_parse_header();
  test_write_header();
  test_unmask();
  test_frame_message();
  test_frame_close();
  TEST_REPORT();
}
