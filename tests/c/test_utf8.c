/* test_utf8.c — the incremental UTF-8 validator: Markus Kuhn's decoder
 * stress cases, the exact index of the first impossible byte, every split
 * of every case, and a differential check against a plain reference
 * decoder. Inputs sit right before a PROT_NONE page. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS under -D_POSIX_C_SOURCE */
#include "test.h"

/* Obviously-correct reference: returns the index of the first impossible
 * byte, or -1 when every byte is possible; *complete says whether the input
 * ends on a character boundary. */
static long ref_first_bad(const uint8_t *p, size_t n, int *complete) {
  size_t i = 0;
  *complete = 1;
  while (i < n) {
    uint8_t b = p[i];
    if (b < 0x80) { i++; continue; }
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) need = 1;
    else if (b == 0xE0) { need = 2; lo = 0xA0; }
    else if (b >= 0xE1 && b <= 0xEC) need = 2;
    else if (b == 0xED) { need = 2; hi = 0x9F; }
    else if (b >= 0xEE && b <= 0xEF) need = 2;
    else if (b == 0xF0) { need = 3; lo = 0x90; }
    else if (b >= 0xF1 && b <= 0xF3) need = 3;
    else if (b == 0xF4) { need = 3; hi = 0x8F; }
    else return (long)i;
    for (size_t k = 1; k <= need; k++) {
      if (i + k >= n) { *complete = 0; return -1; }
      uint8_t c = p[i + k];
      uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
      if (c < l || c > h) return (long)(i + k);
    }
    i += need + 1;
  }
  return -1;
}

/* Feed p split at `cut` (two calls) from a guard page; return first bad
 * index over the whole input or -1, and the final state. */
static long feed_split(const uint8_t *p, size_t n, size_t cut, uint32_t *st) {
  *st = WSE_UTF8_ACCEPT;
  size_t bad = 0;
  guard_t a = guard_copy(p, cut), b = guard_copy(p + cut, n - cut);
  long r = -1;
  if (wse_utf8_feed(st, a.data, cut, &bad) < 0) r = (long)bad;
  else if (wse_utf8_feed(st, b.data, n - cut, &bad) < 0) r = (long)(cut + bad);
  guard_free(&a);
  guard_free(&b);
  return r;
}

static long feed_bytes(const uint8_t *p, size_t n, uint32_t *st) {
  *st = WSE_UTF8_ACCEPT;
  for (size_t i = 0; i < n; i++) {
    guard_t g = guard_copy(p + i, 1);
    size_t bad = 99;
    int r = wse_utf8_feed(st, g.data, 1, &bad);
    guard_free(&g);
    if (r < 0) {
      CHECK_EQ(bad, 0);
      return (long)i;
    }
  }
  return -1;
}

/* expect_bad: -1 valid and complete, -2 valid prefix but incomplete, else
 * index of the first impossible byte. */
static void check_case(const char *name, const void *s, size_t n, long expect_bad) {
  const uint8_t *p = s;
  int complete;
  long ref = ref_first_bad(p, n, &complete);
  long ref_code = ref >= 0 ? ref : complete ? -1 : -2;
  if (ref_code != expect_bad)
    fprintf(stderr, "reference disagrees on %s: %ld vs %ld\n", name, ref_code, expect_bad);
  CHECK_EQ(ref_code, expect_bad);
  guard_t g = guard_copy(p, n);
  CHECK_EQ(wse_utf8_valid(g.data, n), expect_bad == -1);
  guard_free(&g);
  int mismatches = 0;
  for (size_t cut = 0; cut <= n; cut++) {
    uint32_t st;
    long r = feed_split(p, n, cut, &st);
    long code = r >= 0 ? r : st == WSE_UTF8_ACCEPT ? -1 : -2;
    if (code != expect_bad) {
      mismatches++;
      fprintf(stderr, "%s: split at %zu gives %ld, expected %ld\n", name, cut, code, expect_bad);
    }
  }
  /* embedded at many offsets in long valid text (ASCII, then mixed) so the
   * block-at-a-time paths see it at every block position */
  static const char filler_mixed[] = "a\xc3\xa9\xce\xb1\xe4\xb8\xad\xf0\x9f\x98\x80";
  uint8_t big[600];
  for (int mode = 0; mode < 2; mode++) {
    for (size_t pre = 0; pre < 200; pre++) {
      size_t o = 0;
      if (mode == 0) { memset(big, 'x', pre); o = pre; }
      else while (o + sizeof filler_mixed - 1 <= pre) { memcpy(big + o, filler_mixed, sizeof filler_mixed - 1); o += sizeof filler_mixed - 1; }
      memcpy(big + o, p, n);
      size_t total = o + n;
      /* valid ASCII tail (only when the case itself ends complete) */
      if (expect_bad != -2) { memset(big + total, 'y', 300); total += 300; }
      guard_t gb = guard_copy(big, total);
      uint32_t st2 = 0;
      size_t at = 0;
      int rr = wse_utf8_feed(&st2, gb.data, total, &at);
      long want = expect_bad >= 0 ? (long)(o + (size_t)expect_bad) : -1;
      long got = rr < 0 ? (long)at : -1;
      if (got != want || (want < 0 && (st2 == WSE_UTF8_ACCEPT) != (expect_bad == -1))) {
        mismatches++;
        fprintf(stderr, "%s: embedded at %zu (mode %d) gives %ld, expected %ld\n", name, o, mode, got, want);
      }
      guard_free(&gb);
    }
  }
  uint32_t st;
  long r = feed_bytes(p, n, &st);
  long code = r >= 0 ? r : st == WSE_UTF8_ACCEPT ? -1 : -2;
  if (code != expect_bad) {
    mismatches++;
    fprintf(stderr, "%s: 1-byte feeding gives %ld, expected %ld\n", name, code, expect_bad);
  }
  CHECK_EQ(mismatches, 0);
}

#define CASE(s, bad) check_case(#s, s, sizeof(s) - 1, bad)

static void test_kuhn(void) {
  /* 1 correct UTF-8 text */
  CASE("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", -1);
  /* 2.1 first possible sequence of each length */
  CASE("\x00", -1);
  CASE("\xc2\x80", -1);
  CASE("\xe0\xa0\x80", -1);
  CASE("\xf0\x90\x80\x80", -1);
  CASE("\xf8\x88\x80\x80\x80", 0);    /* 5-byte form */
  CASE("\xfc\x84\x80\x80\x80\x80", 0); /* 6-byte form */
  /* 2.2 last possible sequence of each length */
  CASE("\x7f", -1);
  CASE("\xdf\xbf", -1);
  CASE("\xef\xbf\xbf", -1);
  CASE("\xf4\x8f\xbf\xbf", -1);       /* U+10FFFF */
  CASE("\xf7\xbf\xbf\xbf", 0);        /* U+1FFFFF is beyond Unicode */
  CASE("\xfb\xbf\xbf\xbf\xbf", 0);
  CASE("\xfd\xbf\xbf\xbf\xbf\xbf", 0);
  /* 2.3 other boundary conditions */
  CASE("\xed\x9f\xbf", -1);           /* U+D7FF */
  CASE("\xee\x80\x80", -1);           /* U+E000 */
  CASE("\xef\xbf\xbd", -1);           /* U+FFFD */
  CASE("\xf4\x90\x80\x80", 1);        /* U+110000 fails at 0x90 */
  /* 3.1 unexpected continuation bytes */
  CASE("\x80", 0);
  CASE("\xbf", 0);
  CASE("a\x80\xbf", 1);
  CASE("\x80\xbf\x80\xbf\x80\xbf\x80", 0);
  {
    uint8_t all[64];
    for (int i = 0; i < 64; i++) all[i] = (uint8_t)(0x80 + i);
    check_case("all continuations", all, 64, 0);
  }
  /* 3.2 lonely start characters followed by a space */
  for (int b = 0xc0; b <= 0xfd; b++) {
    uint8_t s[2] = {(uint8_t)b, ' '};
    long expect = (b == 0xc0 || b == 0xc1 || b >= 0xf5) ? 0 : 1;
    check_case("lonely start", s, 2, expect);
  }
  /* 3.3 sequences with the last continuation byte missing */
  CASE("\xc2", -2);
  CASE("\xe0\xa0", -2);
  CASE("\xf0\x90\x80", -2);
  CASE("\xdf", -2);
  CASE("\xef\xbf", -2);
  CASE("\xf4\x8f\xbf", -2);
  CASE("\xc0", 0);
  CASE("\xf7\xbf\xbf", 0);
  /* 3.4 concatenation of incomplete sequences */
  CASE("\xc2\xe0\xa0\xf0\x90\x80", 1);
  CASE("\xe0\xa0" "a", 2);
  /* 3.5 impossible bytes */
  CASE("\xfe", 0);
  CASE("\xff", 0);
  CASE("\xfe\xfe\xff\xff", 0);
  CASE("abc\xff", 3);
  /* 4.1 overlong ASCII '/' */
  CASE("\xc0\xaf", 0);
  CASE("\xe0\x80\xaf", 1);
  CASE("\xf0\x80\x80\xaf", 1);
  CASE("\xf8\x80\x80\x80\xaf", 0);
  CASE("\xfc\x80\x80\x80\x80\xaf", 0);
  /* 4.2 maximum overlong sequences */
  CASE("\xc1\xbf", 0);
  CASE("\xe0\x9f\xbf", 1);
  CASE("\xf0\x8f\xbf\xbf", 1);
  CASE("\xf8\x87\xbf\xbf\xbf", 0);
  CASE("\xfc\x83\xbf\xbf\xbf\xbf", 0);
  /* 4.3 overlong NUL */
  CASE("\xc0\x80", 0);
  CASE("\xe0\x80\x80", 1);
  CASE("\xf0\x80\x80\x80", 1);
  /* 5.1 single UTF-16 surrogates */
  CASE("\xed\xa0\x80", 1);
  CASE("\xed\xad\xbf", 1);
  CASE("\xed\xae\x80", 1);
  CASE("\xed\xaf\xbf", 1);
  CASE("\xed\xb0\x80", 1);
  CASE("\xed\xbe\x80", 1);
  CASE("\xed\xbf\xbf", 1);
  /* 5.2 paired surrogates */
  CASE("\xed\xa0\x80\xed\xb0\x80", 1);
  CASE("\xed\xaf\xbf\xed\xbf\xbf", 1);
  /* 5.3 noncharacters are valid UTF-8 */
  CASE("\xef\xbf\xbe", -1);
  CASE("\xef\xbf\xbf", -1);
  CASE("\xef\xb7\x90", -1);
  CASE("\xf0\x9f\xbf\xbe", -1);
  CASE("\xf4\x8f\xbf\xbe", -1);
  /* Autobahn 6.x: fail-fast position inside long text */
  CASE("Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!", -1);
  CASE("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80" "edited", 12);
  CASE("0123456789abcdef0123456789abcdef0123456789\xc3\x28", 43);
  CASE("0123456789abcdef0123456789abcdef\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82", -2);
}

/* Long inputs exercise the ASCII fast path and the burst loop, at every
 * alignment, with the bad byte at every position. */
static void test_fast_paths(void) {
  uint8_t buf[200];
  for (size_t len = 0; len < 120; len += 7) {
    for (size_t align = 0; align < 8; align++) {
      for (size_t pos = 0; pos < len; pos++) {
        memset(buf, 'a', sizeof buf);
        uint8_t *p = buf + align;
        p[pos] = 0xff;
        guard_t g = guard_copy(p, len);
        uint32_t st = 0;
        size_t bad = 0;
        int r = wse_utf8_feed(&st, g.data, len, &bad);
        if (r != -1 || bad != pos) CHECK_EQ(bad, pos);
        guard_free(&g);
      }
    }
  }
  /* multi-byte characters followed by long ASCII runs */
  memset(buf, 'x', sizeof buf);
  memcpy(buf + 50, "\xe2\x82\xac", 3);
  memcpy(buf + 150, "\xf0\x9f\x98\x80", 4);
  CHECK_EQ(wse_utf8_valid(buf, 200), 1);
  buf[199] = 0xc3;
  CHECK_EQ(wse_utf8_valid(buf, 200), 0);
  uint32_t st = 0;
  size_t bad;
  CHECK_EQ(wse_utf8_feed(&st, buf, 200, &bad), 0);
  CHECK(st != WSE_UTF8_ACCEPT);
  uint8_t cont = 0xa9;
  CHECK_EQ(wse_utf8_feed(&st, &cont, 1, &bad), 0);
  CHECK_EQ(st, WSE_UTF8_ACCEPT);
  /* a rejected state stays rejected */
  st = 0;
  CHECK_EQ(wse_utf8_feed(&st, (const uint8_t *)"\xff", 1, &bad), -1);
  CHECK_EQ(wse_utf8_feed(&st, (const uint8_t *)"a", 1, &bad), -1);
  CHECK_EQ(bad, 0);
  /* empty input */
  st = 0;
  CHECK_EQ(wse_utf8_feed(&st, buf, 0, &bad), 0);
  CHECK_EQ(wse_utf8_valid(buf, 0), 1);
}

/* Differential: every 1- and 2-byte string, every 3-byte string starting
 * with a lead byte, and random mixes, against the reference. */
static void test_exhaustive(void) {
  int bad = 0;
  uint8_t s[4];
  for (int a = 0; a < 256; a++) {
    for (int b = -1; b < 256; b++) {
      s[0] = (uint8_t)a;
      size_t n = 1;
      if (b >= 0) { s[1] = (uint8_t)b; n = 2; }
      int lim = (b >= 0 && a >= 0xe0) ? 256 : 0;
      for (int c = -1; c < lim; c++) {
        size_t m = n;
        if (c >= 0) { s[2] = (uint8_t)c; m = 3; }
        int complete;
        long ref = ref_first_bad(s, m, &complete);
        uint32_t st = 0;
        size_t at = 0;
        int r = wse_utf8_feed(&st, s, m, &at);
        long got = r < 0 ? (long)at : -1;
        if (got != ref || (ref < 0 && (st == 0) != complete)) bad++;
      }
    }
  }
  CHECK_EQ(bad, 0);
  /* random strings biased toward interesting bytes, fed in random chunks */
  static const uint8_t pool[] = {'a', 'z', 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1,
                                 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1,
                                 0xf3, 0xf4, 0xf5, 0xff};
  uint32_t rnd = 12345;
  bad = 0;
  for (int iter = 0; iter < 20000; iter++) {
    uint8_t buf[64];
    rnd = rnd * 1103515245u + 12345u;
    size_t n = (rnd >> 16) % 64;
    for (size_t i = 0; i < n; i++) {
      rnd = rnd * 1103515245u + 12345u;
      buf[i] = (rnd >> 20) % 3 == 0 ? 'a' : pool[(rnd >> 16) % sizeof pool];
    }
    int complete;
    long ref = ref_first_bad(buf, n, &complete);
    uint32_t st = 0;
    long got = -1;
    size_t off = 0;
    while (off < n || n == 0) {
      rnd = rnd * 1103515245u + 12345u;
      size_t k = 1 + (rnd >> 16) % 9;
      if (k > n - off) k = n - off;
      size_t at;
      if (wse_utf8_feed(&st, buf + off, k, &at) < 0) { got = (long)(off + at); break; }
      off += k;
      if (n == 0) break;
    }
    if (got != ref || (ref < 0 && (st == 0) != complete)) bad++;
  }
  CHECK_EQ(bad, 0);
  /* long strings of valid characters with rare corruption */
  static const char *chars[] = {"a", "Z", " ", "\xc3\xa9", "\xce\xb1", "\xe4\xb8\xad", "\xed\x9f\xbf",
                                "\xee\x80\x80", "\xef\xbf\xbd", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf",
                                "\xe0\xa0\x80", "\xf0\x90\x80\x80", "\xc2\x80"};
  bad = 0;
  for (int iter = 0; iter < 3000; iter++) {
    uint8_t buf[2048];
    size_t n = 0;
    rnd = rnd * 1103515245u + 12345u;
    size_t target = 64 + (rnd >> 16) % 1900;
    while (n + 4 < target) {
      rnd = rnd * 1103515245u + 12345u;
      const char *c = chars[(rnd >> 16) % (sizeof chars / sizeof chars[0])];
      memcpy(buf + n, c, strlen(c));
      n += strlen(c);
    }
    rnd = rnd * 1103515245u + 12345u;
    int corruptions = (rnd >> 16) % 3;
    for (int k = 0; k < corruptions; k++) {
      rnd = rnd * 1103515245u + 12345u;
      size_t at = (rnd >> 8) % n;
      rnd = rnd * 1103515245u + 12345u;
      buf[at] = pool[(rnd >> 16) % sizeof pool];
    }
    int complete;
    long ref = ref_first_bad(buf, n, &complete);
    guard_t g = guard_copy(buf, n);
    uint32_t st = 0;
    size_t at = 0;
    int r = wse_utf8_feed(&st, g.data, n, &at);
    long got = r < 0 ? (long)at : -1;
    if (got != ref || (ref < 0 && (st == 0) != complete)) bad++;
    /* and in two pieces */
    size_t cut = (rnd >> 4) % (n + 1);
    st = 0;
    got = -1;
    if (wse_utf8_feed(&st, g.data, cut, &at) < 0) got = (long)at;
    else if (wse_utf8_feed(&st, g.data + cut, n - cut, &at) < 0) got = (long)(cut + at);
    if (got != ref || (ref < 0 && (st == 0) != complete)) bad++;
    guard_free(&g);
  }
  CHECK_EQ(bad, 0);
}

int main(void) {
  test_kuhn();
  test_fast_paths();
  test_exhaustive();
  TEST_REPORT();
}
