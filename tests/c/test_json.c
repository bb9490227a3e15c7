/* test_json.c — the app layer's JSON: string escaping byte for byte, integer
 * formatting, the overflow-safe writer, and the strict flat-object parser
 * (inputs against a PROT_NONE guard page). */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS under -D_POSIX_C_SOURCE */
#include "test.h"
#include "wsedge.h"

static size_t esc(const char *in, size_t n, char *out, size_t cap) {
  wse_jw_t w = {out, 0, cap};
  wse_jw_str(&w, in, n);
  return w.n;
}

#define ESC(in, want)                                          \
  do {                                                         \
    char o_[256];                                              \
    size_t n_ = esc(in, sizeof(in) - 1, o_, sizeof o_);        \
    CHECK_MEM(o_, n_, want, sizeof(want) - 1);                 \
  } while (0)

static void test_escape(void) {
  ESC("", "\"\"");
  ESC("plain text", "\"plain text\"");
  ESC("a\"b\\c/d", "\"a\\\"b\\\\c/d\"");
  ESC("\n\r\t", "\"\\n\\r\\t\"");
  ESC("\x01\x08\x0c\x1f\x7f", "\"\\u0001\\u0008\\u000c\\u001f\x7f\"");
  ESC("\0x", "\"\\u0000x\"");
  ESC("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  ESC("a\xe2\x80\xa8z\xe2\x80\xa9", "\"a\\u2028z\\u2029\"");
  ESC("\xe2\x80\xa7\xe2\x80\xaa", "\"\xe2\x80\xa7\xe2\x80\xaa\""); /* neighbours pass */
  ESC("\xe2\x80", "\"\xe2\x80\"");                                /* cut short: as is */

  /* every control character */
  for (int ch = 0; ch < 0x20; ch++) {
    char in[1] = {(char)ch}, out[16], want[16];
    size_t n = esc(in, 1, out, sizeof out);
    if (ch == '\n') strcpy(want, "\"\\n\"");
    else if (ch == '\r') strcpy(want, "\"\\r\"");
    else if (ch == '\t') strcpy(want, "\"\\t\"");
    else snprintf(want, sizeof want, "\"\\u%04x\"", ch);
    CHECK_MEM(out, n, want, strlen(want));
  }

  /* worst case is 6n + 2 and fits exactly */
  char in[100], out[602];
  memset(in, 1, sizeof in);
  CHECK_EQ(esc(in, sizeof in, out, sizeof out), 602);
  /* overflow: counts, never writes past cap */
  char small[8];
  memset(small, '#', sizeof small);
  wse_jw_t w = {small, 0, 4};
  wse_jw_str(&w, "abcdef", 6);
  CHECK_EQ(w.n, 8);
  CHECK(w.n > w.cap);
  CHECK(small[4] == '#' && small[7] == '#');
  wse_jw_lit(&w, "x"); /* stays over */
  CHECK_EQ(w.n, 9);
}

static void test_u64(void) {
  char b[32];
  const uint64_t v[] = {0, 7, 10, 4096, 1732000000123ull, 18446744073709551615ull};
  const char *s[] = {"0", "7", "10", "4096", "1732000000123", "18446744073709551615"};
  for (int i = 0; i < 6; i++) {
    wse_jw_t w = {b, 0, sizeof b};
    wse_jw_u64(&w, v[i]);
    CHECK_STR(b, w.n, s[i]);
  }
}

static const char *const keys[] = {"text", "to"};

static int parse(const char *in, wse_str_t *v, char *buf) {
  size_t n = strlen(in);
  guard_t g = guard_copy(in, n);
  int r = wse_json_fields(g.data, n, keys, 2, v, buf, n);
  guard_free(&g);
  return r;
}

static void test_parse(void) {
  wse_str_t v[2];
  char buf[256];
  CHECK_EQ(parse("{\"text\":\"hi\"}", v, buf), WSE_OK);
  CHECK_STR(v[0].p, v[0].n, "hi");
  CHECK(v[1].p == NULL);
  CHECK_EQ(parse(" \t\r\n{ \"to\" : \"abc\" ,\n \"text\":\"\" } \n", v, buf), WSE_OK);
  CHECK_STR(v[1].p, v[1].n, "abc");
  CHECK(v[0].p != NULL);
  CHECK_EQ(v[0].n, 0);
  CHECK_EQ(parse("{}", v, buf), WSE_OK);
  CHECK(v[0].p == NULL && v[1].p == NULL);
  /* escapes */
  CHECK_EQ(parse("{\"text\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"}", v, buf), WSE_OK);
  CHECK_STR(v[0].p, v[0].n, "a\"b\\c/d\b\f\n\r\t");
  CHECK_EQ(parse("{\"text\":\"\\u0041\\u00e9\\u20AC\\ud83d\\ude00\\u0000!\"}", v, buf), WSE_OK);
  CHECK_MEM(v[0].p, v[0].n, "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\0!", 12);
  CHECK_EQ(parse("{\"text\":\"caf\xc3\xa9\"}", v, buf), WSE_OK);
  CHECK_STR(v[0].p, v[0].n, "caf\xc3\xa9");
  /* an escaped key is still the key */
  CHECK_EQ(parse("{\"t\\u0065xt\":\"k\"}", v, buf), WSE_OK);
  CHECK_STR(v[0].p, v[0].n, "k");

  static const char *const bad[] = {
      "", " ", "{", "}", "[]", "\"text\"", "{\"text\"}", "{\"text\":}",
      "{\"text\":\"a\"", "{\"text\":\"a\",}", "{,\"text\":\"a\"}",
      "{\"text\":\"a\"} x", "{\"text\":\"a\"}}", "{\"text\":5}",
      "{\"text\":null}", "{\"text\":[\"a\"]}", "{\"text\":{\"a\":\"b\"}}",
      "{\"text\":true}", "{\"other\":\"a\"}", "{\"text\":\"a\",\"text\":\"b\"}",
      "{\"text\":\"a\nb\"}", "{\"text\":\"\x01\"}", "{\"text\":\"\\x\"}",
      "{\"text\":\"\\u12\"}", "{\"text\":\"\\u12G4\"}", "{\"text\":\"\\ud83d\"}",
      "{\"text\":\"\\ud83d\\u0041\"}", "{\"text\":\"\\ude00\"}",
      "{\"text\":\"\\ud83dx\"}", "{'text':'a'}", "{text:\"a\"}",
      "{\"text\":\"a\" \"to\":\"b\"}", "{\"text\":\"abc", "{\"text\":\"\\",
      };
  int all = 1;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (parse(bad[i], v, buf) != WSE_EINVAL) {
      all = 0;
      fprintf(stderr, "accepted: %s\n", bad[i]);
    }
  CHECK(all);
  /* a trailing NUL byte inside the length is not whitespace */
  CHECK_EQ(wse_json_fields((const uint8_t *)"{}\0", 3, keys, 2, v, buf, 3), WSE_EINVAL);
  /* every truncation of a valid object fails cleanly */
  const char *ok = "{\"to\":\"x\\u00e9\",\"text\":\"\\ud83d\\ude00 hi\"}";
  for (size_t k = 0; k < strlen(ok); k++) {
    guard_t g = guard_copy(ok, k);
    CHECK_EQ(wse_json_fields(g.data, k, keys, 2, v, buf, k), WSE_EINVAL);
    guard_free(&g);
  }
  CHECK_EQ(parse(ok, v, buf), WSE_OK);
  CHECK_STR(v[0].p, v[0].n, "\xf0\x9f\x98\x80 hi");
  CHECK_STR(v[1].p, v[1].n, "x\xc3\xa9");
}

/* wse_json_object: unsigned integers beside strings; wse_json_u64. */
static void test_numbers(void) {
  static const char *const keys[] = {"text", "at", "n"};
  wse_str_t v[3];
  unsigned nums = 99;
  char buf[128];
#define OBJ(s) wse_json_object((const uint8_t *)(s), strlen(s), keys, 3, v, &nums, buf, sizeof buf)
  CHECK_EQ(OBJ("{\"text\":\"hi\",\"at\":1700000000000}"), WSE_OK);
  CHECK_EQ(nums, 2);
  CHECK_STR(v[0].p, v[0].n, "hi");
  CHECK_STR(v[1].p, v[1].n, "1700000000000");
  CHECK(v[2].p == NULL);
  CHECK_EQ(OBJ(" { \"at\" : 0 , \"n\":\"7\" } "), WSE_OK);
  CHECK_EQ(nums, 1u << 1);
  CHECK_STR(v[1].p, v[1].n, "0");
  CHECK_STR(v[2].p, v[2].n, "7");
  CHECK_EQ(OBJ("{}"), WSE_OK);
  CHECK_EQ(nums, 0);
  static const char *const bad[] = {
      "{\"at\":-1}", "{\"at\":1.5}", "{\"at\":1e3}", "{\"at\":1E3}", "{\"at\":01}",
      "{\"at\":00}", "{\"at\":+1}", "{\"at\":}", "{\"at\":true}", "{\"at\":null}",
      "{\"at\":[1]}", "{\"at\":1 2}", "{\"at\":12x}", "{\"at\":1,\"at\":2}", "{\"zz\":1}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    size_t n = strlen(bad[i]);
    guard_t g = guard_copy(bad[i], n);
    int rc = wse_json_object(g.data, n, keys, 3, v, &nums, buf, sizeof buf);
    if (rc != WSE_EINVAL) fprintf(stderr, "accepted: %s\n", bad[i]);
    CHECK_EQ(rc, WSE_EINVAL);
    guard_free(&g);
  }
  /* without nums (wse_json_fields) a number is refused */
  CHECK_EQ(wse_json_fields((const uint8_t *)"{\"at\":1}", 8, keys, 3, v, buf, sizeof buf), WSE_EINVAL);
  CHECK_EQ(wse_json_object((const uint8_t *)"{}", 2, keys, 33, v, &nums, buf, sizeof buf), WSE_EINVAL);
  /* numbers into a buffer too small */
  CHECK_EQ(wse_json_object((const uint8_t *)"{\"at\":123456}", 13, keys, 3, v, &nums, buf, 4), WSE_EINVAL);
#undef OBJ
  uint64_t x = 5;
  wse_str_t s;
#define U64(str) (s.p = (str), s.n = strlen(str), wse_json_u64(s, &x))
  CHECK_EQ(U64("0"), WSE_OK);
  CHECK_EQ(x, 0);
  CHECK_EQ(U64("18446744073709551615"), WSE_OK);
  CHECK(x == UINT64_MAX);
  CHECK_EQ(U64("18446744073709551616"), WSE_EINVAL);
  CHECK_EQ(U64("99999999999999999999"), WSE_EINVAL);
  CHECK_EQ(U64(""), WSE_EINVAL);
  CHECK_EQ(U64("01"), WSE_EINVAL);
  CHECK_EQ(U64("1a"), WSE_EINVAL);
  CHECK_EQ(U64("1700000000000"), WSE_OK);
  CHECK(x == 1700000000000ull);
#undef U64
}

int main(void) {
  test_escape();
  test_u64();
  test_parse();
  test_numbers();
  TEST_REPORT();
}
