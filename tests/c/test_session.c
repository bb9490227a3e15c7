/* test_session.c — session ids (22-char base64url) and the attachment codec:
 * exact layout, round trips at the size limits, and every decode error with
 * the input against a PROT_NONE guard page. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS under -D_POSIX_C_SOURCE */
#include "test.h"

static uint32_t ref_crc32(const uint8_t *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & -(c & 1));
  }
  return ~c;
}

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Re-seal a hand-modified attachment with a correct CRC. */
static void reseal(uint8_t *p, size_t n) { put32(p + n - 4, ref_crc32(p, n - 4)); }

static int decode_guarded(const uint8_t *p, size_t n, wse_session_t *s,
                          uint8_t *ub) {
  guard_t g = guard_copy(p, n);
  int r = wse_attachment_decode(g.data, n, s, ub);
  guard_free(&g);
  return r;
}

static void test_sid(void) {
  wse_sid_t id, back;
  char s[WSE_SID_LEN];
  for (int i = 0; i < 16; i++) id.b[i] = (uint8_t)i;
  wse_sid_format(&id, s);
  CHECK_MEM(s, WSE_SID_LEN, "AAECAwQFBgcICQoLDA0ODw", 22);
  CHECK_EQ(wse_sid_parse(s, WSE_SID_LEN, &back), WSE_OK);
  CHECK(memcmp(back.b, id.b, 16) == 0);

  memset(id.b, 0xFF, 16);
  wse_sid_format(&id, s);
  CHECK_MEM(s, WSE_SID_LEN, "_____________________w", 22);
  memset(id.b, 0xFB, 16); /* exercises '-' (62) */
  wse_sid_format(&id, s);
  CHECK_MEM(s, WSE_SID_LEN, "-_v7-_v7-_v7-_v7-_v7-w", 22);
  CHECK_EQ(wse_sid_parse(s, WSE_SID_LEN, &back), WSE_OK);
  CHECK(memcmp(back.b, id.b, 16) == 0);

  /* round trips over many ids */
  uint32_t x = 12345;
  int ok = 1;
  for (int t = 0; t < 2000; t++) {
    for (int i = 0; i < 16; i++) x = x * 1103515245u + 12345u, id.b[i] = (uint8_t)(x >> 16);
    wse_sid_format(&id, s);
    guard_t g = guard_copy(s, WSE_SID_LEN);
    memset(&back, 0, sizeof back);
    if (wse_sid_parse((const char *)g.data, WSE_SID_LEN, &back) != WSE_OK ||
        memcmp(back.b, id.b, 16) != 0)
      ok = 0;
    for (int i = 0; i < WSE_SID_LEN; i++) {
      char ch = s[i];
      if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
            (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
        ok = 0;
    }
    guard_free(&g);
  }
  CHECK(ok);

  /* rejections leave *out untouched */
  memset(&back, 0x5A, sizeof back);
  CHECK_EQ(wse_sid_parse("AAECAwQFBgcICQoLDA0OD", 21, &back), WSE_EINVAL);
  CHECK_EQ(wse_sid_parse("AAECAwQFBgcICQoLDA0ODwA", 23, &back), WSE_EINVAL);
  CHECK_EQ(wse_sid_parse("AAECAwQFBgcICQoLDA0OD+", 22, &back), WSE_EINVAL);
  CHECK_EQ(wse_sid_parse("AAECAwQFBgcICQoLDA0OD/", 22, &back), WSE_EINVAL);
  CHECK_EQ(wse_sid_parse("AAECAwQFBgcICQoLDA0OD=", 22, &back), WSE_EINVAL);
  CHECK_EQ(wse_sid_parse("AAECAwQFBgcICQoLDA0O w", 22, &back), WSE_EINVAL);
  CHECK_EQ(wse_sid_parse("AAECAwQFBgcICQoLDA0ODx", 22, &back), WSE_EINVAL); /* spare bits set */
  CHECK_EQ(wse_sid_parse("AAECAwQFBgcICQoLDA0OD\0", 22, &back), WSE_EINVAL);
  CHECK_EQ(wse_sid_parse(NULL, 22, &back), WSE_EINVAL);
  uint8_t pat[sizeof back];
  memset(pat, 0x5A, sizeof pat);
  CHECK(memcmp(&back, pat, sizeof back) == 0);
}

static void fill_session(wse_session_t *s, size_t room, size_t name, uint8_t *user,
                         size_t ul) {
  memset(s, 0, sizeof *s);
  for (int i = 0; i < 16; i++) s->id.b[i] = (uint8_t)(0xA0 + i);
  s->route = 0x0102; /* not encoded: the pattern names the route */
  s->pattern = "/r";
  s->pattern_len = 2;
  s->room_len = (uint8_t)room;
  for (size_t i = 0; i < room; i++) s->room[i] = (char)('a' + i % 26);
  s->name_len = (uint8_t)name;
  for (size_t i = 0; i < name; i++) s->name[i] = (char)('A' + i % 26);
  s->joined_at_ms = 0x0102030405060708ull;
  s->last_seen_ms = 0x1112131415161718ull;
  for (size_t i = 0; i < ul; i++) user[i] = (uint8_t)(i * 7 + 3);
  s->user = ul ? user : NULL;
  s->user_len = (uint16_t)ul;
}

static void test_layout(void) {
  wse_session_t s, d;
  uint8_t user[3], buf[128], ub[WSE_USERDATA_MAX];
  fill_session(&s, 2, 3, user, 3);
  long n = wse_attachment_encode(&s, buf, sizeof buf);
  CHECK_EQ(n, 43 + 2 + 3 + 3 + 2 + 4);
  static const uint8_t head[] = {
      'W', 'S', 'E', 2, 0, 2, 0, 2, 3, 3, 0,
      0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF,
      8, 7, 6, 5, 4, 3, 2, 1, 0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11,
      'a', 'b', 'A', 'B', 'C', 3, 10, 17, '/', 'r'};
  CHECK_MEM(buf, sizeof head, head, sizeof head);
  uint32_t crc = ref_crc32(buf, (size_t)n - 4);
  uint8_t want[4];
  put32(want, crc);
  CHECK_MEM(buf + n - 4, 4, want, 4);

  memset(&d, 0, sizeof d);
  d.handle = 77;
  CHECK_EQ(decode_guarded(buf, (size_t)n, &d, ub), WSE_OK);
  CHECK(memcmp(d.id.b, s.id.b, 16) == 0);
  CHECK_EQ(d.pattern_len, 2);
  { /* the pattern points into the attachment bytes */
    wse_session_t e;
    CHECK_EQ(wse_attachment_decode(buf, (size_t)n, &e, ub), WSE_OK);
    CHECK(e.pattern == (const char *)buf + 51);
    CHECK_STR(e.pattern, e.pattern_len, "/r");
  }
  CHECK_MEM(d.room, d.room_len, "ab", 2);
  CHECK_MEM(d.name, d.name_len, "ABC", 3);
  CHECK(d.joined_at_ms == s.joined_at_ms);
  CHECK(d.last_seen_ms == s.last_seen_ms);
  CHECK(d.user == ub);
  CHECK_MEM(d.user, d.user_len, user, 3);
  CHECK_EQ(d.handle, 77); /* fields outside the encoding are left alone */

  /* an empty session: no room, no name, no user data */
  fill_session(&s, 0, 0, user, 0);
  n = wse_attachment_encode(&s, buf, sizeof buf);
  CHECK_EQ(n, 47 + 2); /* + the pattern "/r" */
  memset(&d, 0xEE, sizeof d);
  CHECK_EQ(decode_guarded(buf, (size_t)n, &d, ub), WSE_OK);
  CHECK_EQ(d.room_len, 0);
  CHECK_EQ(d.name_len, 0);
  CHECK_EQ(d.user_len, 0);
  CHECK_EQ(wse_attachment_decode(buf, (size_t)n, &d, NULL), WSE_OK);

  /* encoder refusals */
  CHECK_EQ(wse_attachment_encode(&s, buf, 46), WSE_ENOSPC);
  CHECK_EQ(wse_attachment_encode(&s, NULL, 0), WSE_ENOSPC);
  s.room_len = WSE_ROOM_MAX + 1;
  CHECK_EQ(wse_attachment_encode(&s, buf, sizeof buf), WSE_EINVAL);
  fill_session(&s, 0, 1, user, 0);
  s.name[0] = (char)0xFF; /* not UTF-8: would not decode */
  CHECK_EQ(wse_attachment_encode(&s, buf, sizeof buf), WSE_EINVAL);
  fill_session(&s, 0, 0, user, 0);
  s.user_len = 1; /* length without data */
  CHECK_EQ(wse_attachment_encode(&s, buf, sizeof buf), WSE_EINVAL);
}

static size_t max_attachment(uint8_t *buf, size_t cap, uint8_t *user) {
  wse_session_t s;
  static char pattern[WSE_PATTERN_MAX];
  fill_session(&s, WSE_ROOM_MAX, WSE_NAME_MAX, user, WSE_USERDATA_MAX);
  memset(pattern, 'p', sizeof pattern);
  pattern[0] = '/';
  s.pattern = pattern; /* the longest route pattern too */
  s.pattern_len = WSE_PATTERN_MAX;
  long n = wse_attachment_encode(&s, buf, cap);
  return n < 0 ? 0 : (size_t)n;
}

static void test_limits_and_errors(void) {
  static uint8_t buf[WSE_ATTACHMENT_MAX + 64], user[WSE_USERDATA_MAX],
      ub[WSE_USERDATA_MAX], work[WSE_ATTACHMENT_MAX + 64];
  wse_session_t d, before;
  size_t n = max_attachment(buf, sizeof buf, user);
  CHECK_EQ(n, 43 + WSE_ROOM_MAX + WSE_NAME_MAX + WSE_USERDATA_MAX + WSE_PATTERN_MAX + 4);
  CHECK(n <= WSE_ATTACHMENT_MAX);
  CHECK_EQ(decode_guarded(buf, n, &d, ub), WSE_OK);
  CHECK_EQ(d.room_len, WSE_ROOM_MAX);
  CHECK_EQ(d.name_len, WSE_NAME_MAX);
  CHECK_EQ(d.user_len, WSE_USERDATA_MAX);
  CHECK(memcmp(ub, user, WSE_USERDATA_MAX) == 0);
  CHECK_EQ(wse_attachment_decode(buf, n, &d, NULL), WSE_EINVAL); /* needs user_buf */

  memset(&before, 0x3C, sizeof before);
  int all_trunc = 1, untouched = 1;
  for (size_t k = 0; k < n; k++) {
    memcpy(&d, &before, sizeof d);
    if (decode_guarded(buf, k, &d, ub) != WSE_ATT_ETRUNC) {
      all_trunc = 0;
      fprintf(stderr, "truncated at %zu: %d\n", k, decode_guarded(buf, k, &d, ub));
    }
    if (memcmp(&d, &before, sizeof d) != 0) untouched = 0;
  }
  CHECK(all_trunc);
  CHECK(untouched);

  /* a flipped bit anywhere but magic, version and the lengths: checksum */
  int all_crc = 1, others = 1;
  for (size_t i = 0; i < n; i++) {
    memcpy(work, buf, n);
    work[i] ^= (uint8_t)(1u << (i % 8));
    memcpy(&d, &before, sizeof d);
    int r = decode_guarded(work, n, &d, ub);
    if (memcmp(&d, &before, sizeof d) != 0) untouched = 0;
    if (i < 3) others &= r == WSE_ATT_EMAGIC;
    else if (i == 3) others &= r == WSE_ATT_EVERSION;
    else if (i >= 5 && i <= 10) /* pattern, room, name, user lengths */
      others &= r == WSE_ATT_ETRUNC || r == WSE_ATT_EFIELD || r == WSE_ATT_ESIZE;
    else if (r != WSE_ATT_ECHECKSUM) {
      all_crc = 0;
      fprintf(stderr, "flip at %zu: %d\n", i, r);
    }
  }
  CHECK(all_crc);
  CHECK(others);
  CHECK(untouched);

  /* foreign data */
  CHECK_EQ(decode_guarded((const uint8_t *)"{\"id\":1}", 8, &d, ub), WSE_ATT_EMAGIC);
  CHECK_EQ(decode_guarded((const uint8_t *)"X", 1, &d, ub), WSE_ATT_EMAGIC);
  CHECK_EQ(decode_guarded((const uint8_t *)"WSX", 3, &d, ub), WSE_ATT_EMAGIC);
  CHECK_EQ(decode_guarded((const uint8_t *)"W", 1, &d, ub), WSE_ATT_ETRUNC);
  CHECK_EQ(decode_guarded((const uint8_t *)"", 0, &d, ub), WSE_ATT_ETRUNC);
  CHECK_EQ(wse_attachment_decode(NULL, 0, &d, ub), WSE_ATT_ETRUNC);
  CHECK_EQ(wse_attachment_decode(NULL, 5, &d, ub), WSE_EINVAL);

  /* versions other than 2, even with a valid checksum: 1 named the route
   * by its registration index, which a deploy may have reordered */
  for (int v = 0; v < 4; v++) {
    if (v == WSE_ATTACHMENT_VERSION) continue;
    memcpy(work, buf, n);
    work[3] = (uint8_t)v;
    reseal(work, n);
    CHECK_EQ(decode_guarded(work, n, &d, ub), WSE_ATT_EVERSION);
  }

  /* oversized input */
  memset(work, 0, sizeof work);
  memcpy(work, buf, n);
  CHECK_EQ(decode_guarded(work, WSE_ATTACHMENT_MAX + 1, &d, ub), WSE_ATT_ESIZE);

  /* fields over their limits, sealed correctly */
  uint8_t small[64 + 256];
  wse_session_t s;
  uint8_t u1[1];
  fill_session(&s, 1, 1, u1, 1);
  long sn = wse_attachment_encode(&s, small, sizeof small);
  CHECK_EQ(sn, 52);
  memcpy(work, small, (size_t)sn);
  work[5] = 0, work[6] = 1; /* a 256-byte pattern */
  CHECK_EQ(decode_guarded(work, (size_t)sn, &d, ub), WSE_ATT_EFIELD);
  memcpy(work, small, (size_t)sn);
  work[7] = WSE_ROOM_MAX + 1;
  CHECK_EQ(decode_guarded(work, (size_t)sn, &d, ub), WSE_ATT_EFIELD);
  memcpy(work, small, (size_t)sn);
  work[8] = WSE_NAME_MAX + 1;
  CHECK_EQ(decode_guarded(work, (size_t)sn, &d, ub), WSE_ATT_EFIELD);
  memcpy(work, small, (size_t)sn);
  work[9] = (WSE_USERDATA_MAX + 1) & 0xFF, work[10] = (WSE_USERDATA_MAX + 1) >> 8;
  CHECK_EQ(decode_guarded(work, (size_t)sn, &d, ub), WSE_ATT_ESIZE);
  /* a trailing byte: the lengths do not add up */
  memcpy(work, small, (size_t)sn);
  work[sn] = 0;
  reseal(work, (size_t)sn + 1);
  CHECK_EQ(decode_guarded(work, (size_t)sn + 1, &d, ub), WSE_ATT_EFIELD);
  /* unknown flags */
  memcpy(work, small, (size_t)sn);
  work[4] = 1;
  reseal(work, (size_t)sn);
  CHECK_EQ(decode_guarded(work, (size_t)sn, &d, ub), WSE_ATT_EFIELD);
  /* room / name bytes that are not UTF-8 */
  memcpy(work, small, (size_t)sn);
  work[43] = 0xC0;
  reseal(work, (size_t)sn);
  CHECK_EQ(decode_guarded(work, (size_t)sn, &d, ub), WSE_ATT_EFIELD);
  memcpy(work, small, (size_t)sn);
  work[44] = 0x80;
  reseal(work, (size_t)sn);
  CHECK_EQ(decode_guarded(work, (size_t)sn, &d, ub), WSE_ATT_EFIELD);
  /* the same bytes sealed as they were: accepted */
  CHECK_EQ(decode_guarded(small, (size_t)sn, &d, ub), WSE_OK);
}

int main(void) {
  test_sid();
  test_layout();
  test_limits_and_errors();
  TEST_REPORT();
}
