/* test_session.c — session ids (22-char base64url) and the attachment codec
 * (layout version 2): exact layout, round trips at the size limits, and
 * every decode error with the input against a PROT_NONE guard page. */
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

static int decode_guarded(const uint8_t *p, size_t n, wse_attachment_t *a) {
  guard_t g = guard_copy(p, n);
  int r = wse_attachment_decode(g.data, n, a);
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

/* An attachment: id A0..AF, the two clocks, pattern "/r", the given topics
 * (NULL-terminated), `ul` bytes of user data i*7+3 written to user. */
static void fill_att(wse_attachment_t *a, const char *const *topics,
                     uint8_t *user, size_t ul) {
  memset(a, 0, sizeof *a);
  for (int i = 0; i < 16; i++) a->id.b[i] = (uint8_t)(0xA0 + i);
  a->joined_at_ms = 0x0102030405060708ull;
  a->last_seen_ms = 0x1112131415161718ull;
  a->pattern.p = "/r";
  a->pattern.n = 2;
  for (; topics && topics[a->n_topics]; a->n_topics++) {
    a->topics[a->n_topics].p = topics[a->n_topics];
    a->topics[a->n_topics].n = strlen(topics[a->n_topics]);
  }
  for (size_t i = 0; i < ul; i++) user[i] = (uint8_t)(i * 7 + 3);
  a->user = ul ? user : NULL;
  a->user_len = ul;
}

static const uint8_t head_ids[] = {
    0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF,
    8, 7, 6, 5, 4, 3, 2, 1, 0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11};

static void test_layout(void) {
  wse_attachment_t s, d;
  uint8_t user[3], buf[128], before[sizeof d];
  fill_att(&s, (const char *const[]){"ab", "xyz", NULL}, user, 3);
  long n = wse_attachment_encode(&s, buf, sizeof buf);
  CHECK_EQ(n, 41 + 2 + (1 + 2) + (1 + 3) + 3 + 4);
  /* header: magic, version, flags, pattern_len, n_topics, user_len u16 */
  static const uint8_t head[] = {'W', 'S', 'E', 2, 0, 2, 2, 3, 0};
  CHECK_MEM(buf, 9, head, 9);
  CHECK_MEM(buf + 9, 32, head_ids, 32); /* id, joined_at, last_seen (LE) */
  /* the pattern, each topic as length + bytes, the user data */
  static const uint8_t body[] = {'/', 'r', 2, 'a', 'b', 3, 'x', 'y', 'z', 3, 10, 17};
  CHECK_MEM(buf + 41, (size_t)n - 45, body, sizeof body);
  uint32_t crc = ref_crc32(buf, (size_t)n - 4);
  uint8_t want[4];
  put32(want, crc);
  CHECK_MEM(buf + n - 4, 4, want, 4);

  /* decoded: every slice points into the attachment bytes */
  memset(&d, 0xEE, sizeof d);
  memcpy(before, &d, sizeof d);
  CHECK_EQ(wse_attachment_decode(buf, (size_t)n, &d), WSE_OK);
  CHECK(memcmp(d.id.b, s.id.b, 16) == 0);
  CHECK(d.joined_at_ms == s.joined_at_ms);
  CHECK(d.last_seen_ms == s.last_seen_ms);
  CHECK(d.pattern.p == (const char *)buf + 41);
  CHECK_STR(d.pattern.p, d.pattern.n, "/r");
  CHECK_EQ(d.n_topics, 2);
  CHECK(d.topics[0].p == (const char *)buf + 44);
  CHECK_STR(d.topics[0].p, d.topics[0].n, "ab");
  CHECK(d.topics[1].p == (const char *)buf + 47);
  CHECK_STR(d.topics[1].p, d.topics[1].n, "xyz");
  CHECK(d.user == buf + 50);
  CHECK_MEM(d.user, d.user_len, user, 3);
  /* topic slots past n_topics are left alone */
  CHECK(memcmp(&d.topics[2], before + offsetof(wse_attachment_t, topics) + 2 * sizeof(wse_str_t),
               (WSE_TOPICS_MAX - 2) * sizeof(wse_str_t)) == 0);
  { /* the same against a guard page (the slices then point into it) */
    guard_t g = guard_copy(buf, (size_t)n);
    memset(&d, 0, sizeof d);
    CHECK_EQ(wse_attachment_decode(g.data, (size_t)n, &d), WSE_OK);
    CHECK_EQ(d.n_topics, 2);
    CHECK(d.topics[1].p == (const char *)g.data + 47);
    CHECK_STR(d.topics[1].p, d.topics[1].n, "xyz");
    CHECK(d.user + d.user_len == g.data + n - 4);
    guard_free(&g);
  }
  CHECK_EQ(wse_attachment_decode(buf, (size_t)n, &d), WSE_OK); /* slices into buf again */
  /* re-encoding the decoded attachment gives the same bytes */
  {
    uint8_t again[128];
    CHECK_EQ(wse_attachment_encode(&d, again, sizeof again), n);
    CHECK_MEM(again, (size_t)n, buf, (size_t)n);
  }

  /* an empty session: no topics, no user data */
  fill_att(&s, NULL, user, 0);
  n = wse_attachment_encode(&s, buf, sizeof buf);
  CHECK_EQ(n, 45 + 2); /* + the pattern "/r" */
  static const uint8_t head0[] = {'W', 'S', 'E', 2, 0, 2, 0, 0, 0};
  CHECK_MEM(buf, 9, head0, 9);
  CHECK_MEM(buf + 41, 2, "/r", 2);
  memset(&d, 0xEE, sizeof d);
  CHECK_EQ(decode_guarded(buf, (size_t)n, &d), WSE_OK);
  CHECK_EQ(d.n_topics, 0);
  CHECK_EQ(d.user_len, 0);
  CHECK(d.user == NULL);
  /* no pattern at all: 45 bytes, still decodable (restore maps it to no route) */
  s.pattern.p = NULL;
  s.pattern.n = 0;
  n = wse_attachment_encode(&s, buf, sizeof buf);
  CHECK_EQ(n, 45);
  CHECK_EQ(decode_guarded(buf, (size_t)n, &d), WSE_OK);
  CHECK_EQ(d.pattern.n, 0);

  /* encoder refusals: what the decoder would refuse is never written */
  fill_att(&s, (const char *const[]){"ab", NULL}, user, 3);
  n = wse_attachment_encode(&s, buf, sizeof buf);
  CHECK_EQ(n, 41 + 2 + 3 + 3 + 4);
  memset(buf, '#', sizeof buf);
  CHECK_EQ(wse_attachment_encode(&s, buf, (size_t)n - 1), WSE_ENOSPC);
  CHECK_EQ(buf[0], '#'); /* nothing written */
  CHECK_EQ(wse_attachment_encode(&s, buf, (size_t)n), n); /* exactly enough */
  CHECK_EQ(wse_attachment_encode(&s, NULL, 0), WSE_ENOSPC);
  CHECK_EQ(wse_attachment_encode(NULL, buf, sizeof buf), WSE_EINVAL);
  s.n_topics = WSE_TOPICS_MAX + 1; /* more topics than a session may have */
  for (size_t i = 1; i < WSE_TOPICS_MAX; i++) s.topics[i] = s.topics[0];
  CHECK_EQ(wse_attachment_encode(&s, buf, sizeof buf), WSE_EINVAL);
  s.n_topics = 1;
  s.topics[0].n = 0; /* an empty topic */
  CHECK_EQ(wse_attachment_encode(&s, buf, sizeof buf), WSE_EINVAL);
  static char long_topic[WSE_TOPIC_MAX + 1];
  memset(long_topic, 't', sizeof long_topic);
  s.topics[0].p = long_topic;
  s.topics[0].n = WSE_TOPIC_MAX + 1;
  CHECK_EQ(wse_attachment_encode(&s, buf, sizeof buf), WSE_EINVAL);
  s.topics[0].n = WSE_TOPIC_MAX; /* the limit itself is fine */
  {
    uint8_t big[256];
    CHECK_EQ(wse_attachment_encode(&s, big, sizeof big), 41 + 2 + 1 + WSE_TOPIC_MAX + 3 + 4);
  }
  s.topics[0].p = NULL; /* a length without bytes */
  s.topics[0].n = 1;
  CHECK_EQ(wse_attachment_encode(&s, buf, sizeof buf), WSE_EINVAL);
  s.topics[0].p = "a\xff"; /* not UTF-8: would not decode */
  s.topics[0].n = 2;
  CHECK_EQ(wse_attachment_encode(&s, buf, sizeof buf), WSE_EINVAL);
  fill_att(&s, NULL, user, 0);
  s.user_len = 1; /* length without data */
  CHECK_EQ(wse_attachment_encode(&s, buf, sizeof buf), WSE_EINVAL);
  s.user = user;
  s.user_len = WSE_USERDATA_MAX + 1;
  CHECK_EQ(wse_attachment_encode(&s, buf, sizeof buf), WSE_EINVAL);
  fill_att(&s, NULL, user, 0);
  s.pattern.p = NULL; /* a pattern length without bytes */
  CHECK_EQ(wse_attachment_encode(&s, buf, sizeof buf), WSE_EINVAL);
  static char long_pattern[WSE_PATTERN_MAX + 1];
  memset(long_pattern, 'p', sizeof long_pattern);
  s.pattern.p = long_pattern;
  s.pattern.n = WSE_PATTERN_MAX + 1; /* does not fit its u8 */
  CHECK_EQ(wse_attachment_encode(&s, buf, sizeof buf), WSE_EINVAL);
}

/* The largest attachment: a 255-byte pattern, 16 topics of 128 bytes (topic
 * i spelled with letter 'a' + i), 8 KiB of user data. */
static char max_pattern[WSE_PATTERN_MAX], max_topics[WSE_TOPICS_MAX][WSE_TOPIC_MAX];
static size_t max_attachment(uint8_t *buf, size_t cap, uint8_t *user) {
  wse_attachment_t s;
  fill_att(&s, NULL, user, WSE_USERDATA_MAX);
  memset(max_pattern, 'p', sizeof max_pattern);
  max_pattern[0] = '/';
  s.pattern.p = max_pattern;
  s.pattern.n = WSE_PATTERN_MAX;
  for (size_t i = 0; i < WSE_TOPICS_MAX; i++) {
    memset(max_topics[i], 'a' + (int)i, WSE_TOPIC_MAX);
    s.topics[i].p = max_topics[i];
    s.topics[i].n = WSE_TOPIC_MAX;
  }
  s.n_topics = WSE_TOPICS_MAX;
  long n = wse_attachment_encode(&s, buf, cap);
  return n < 0 ? 0 : (size_t)n;
}

#define MAX_TOPIC_AT(j) (41 + WSE_PATTERN_MAX + (size_t)(j) * (1 + WSE_TOPIC_MAX))

static void test_limits_and_errors(void) {
  static uint8_t buf[WSE_ATTACHMENT_MAX + 64], user[WSE_USERDATA_MAX],
      work[WSE_ATTACHMENT_MAX + 64];
  wse_attachment_t d, before;
  size_t n = max_attachment(buf, sizeof buf, user);
  CHECK_EQ(n, 41 + WSE_PATTERN_MAX + WSE_TOPICS_MAX * (1 + WSE_TOPIC_MAX) + WSE_USERDATA_MAX + 4);
  CHECK_EQ(n, 10556); /* the bound app.h states */
  CHECK(n <= WSE_ATTACHMENT_MAX);
  static const uint8_t headmax[] = {'W', 'S', 'E', 2, 0, 255, 16, 0x00, 0x20};
  CHECK_MEM(buf, 9, headmax, 9);
  CHECK_EQ(decode_guarded(buf, n, &d), WSE_OK); /* no byte read past the end */
  CHECK_EQ(wse_attachment_decode(buf, n, &d), WSE_OK); /* slices into buf */
  CHECK_EQ(d.pattern.n, WSE_PATTERN_MAX);
  CHECK_MEM(d.pattern.p, d.pattern.n, max_pattern, WSE_PATTERN_MAX);
  CHECK_EQ(d.n_topics, WSE_TOPICS_MAX);
  int topics_ok = 1;
  for (size_t i = 0; i < WSE_TOPICS_MAX; i++)
    topics_ok &= d.topics[i].n == WSE_TOPIC_MAX &&
                 memcmp(d.topics[i].p, max_topics[i], WSE_TOPIC_MAX) == 0;
  CHECK(topics_ok);
  CHECK_EQ(d.user_len, WSE_USERDATA_MAX);
  CHECK(memcmp(d.user, user, WSE_USERDATA_MAX) == 0);
  CHECK_EQ(wse_attachment_decode(buf, n, NULL), WSE_EINVAL); /* needs *out */
  {
    static uint8_t again[WSE_ATTACHMENT_MAX];
    CHECK_EQ(wse_attachment_decode(buf, n, &d), WSE_OK);
    CHECK_EQ(wse_attachment_encode(&d, again, sizeof again), (long)n);
    CHECK(memcmp(again, buf, n) == 0);
  }

  /* every truncation: ETRUNC, output untouched */
  memset(&before, 0x3C, sizeof before);
  int all_trunc = 1, untouched = 1;
  for (size_t k = 0; k < n; k++) {
    memcpy(&d, &before, sizeof d);
    int r = decode_guarded(buf, k, &d);
    if (r != WSE_ATT_ETRUNC) {
      all_trunc = 0;
      fprintf(stderr, "truncated at %zu: %d\n", k, r);
    }
    if (memcmp(&d, &before, sizeof d) != 0) untouched = 0;
  }
  CHECK(all_trunc);
  CHECK(untouched);

  /* bits flipped one at a time, against a guard page: all 8 of every
   * header and topic length byte, one per byte elsewhere (bit i % 8; CRC-32
   * catches every single-bit error, and the small attachment below gets all
   * 8 everywhere):
   * magic -> EMAGIC, version -> EVERSION, n_topics -> EFIELD, user_len ->
   * ESIZE (0x2000 -> 0 leaves trailing bytes: EFIELD), each topic's length
   * (128 -> 0 or > 128) -> EFIELD; pattern_len (255 -> shorter) starts the
   * topic walk inside the pattern, which here always ends on an invalid
   * length or with trailing bytes (EFIELD); everything else (flags, pattern,
   * topic bytes, user data, CRC) -> ECHECKSUM. Never OK, never a partial
   * write. */
  {
    guard_t g = guard_copy(buf, n);
    int classified = 1;
    for (size_t i = 0; i < n; i++) {
      int is_tlen = i >= MAX_TOPIC_AT(0) && i < MAX_TOPIC_AT(WSE_TOPICS_MAX) &&
                    (i - MAX_TOPIC_AT(0)) % (1 + WSE_TOPIC_MAX) == 0;
      int structural = i < 41 || is_tlen;
      for (int bit = structural ? 0 : (int)(i % 8); bit < (structural ? 8 : (int)(i % 8) + 1); bit++) {
        g.data[i] ^= (uint8_t)(1u << bit);
        memcpy(&d, &before, sizeof d);
        int r = wse_attachment_decode(g.data, n, &d);
        g.data[i] ^= (uint8_t)(1u << bit);
        if (memcmp(&d, &before, sizeof d) != 0) untouched = 0;
        int want;
        if (i < 3) want = WSE_ATT_EMAGIC;
        else if (i == 3) want = WSE_ATT_EVERSION;
        else if (i == 5) want = WSE_ATT_EFIELD;
        else if (i == 6) want = WSE_ATT_EFIELD;
        else if (i == 7) want = WSE_ATT_ESIZE;
        else if (i == 8) want = bit == 5 ? WSE_ATT_EFIELD : WSE_ATT_ESIZE;
        else if (is_tlen) want = WSE_ATT_EFIELD;
        else want = WSE_ATT_ECHECKSUM;
        if (r != want) {
          if (classified) fprintf(stderr, "flip %zu.%d: %d, expected %d\n", i, bit, r, want);
          classified = 0;
        }
      }
    }
    guard_free(&g);
    CHECK(classified);
  }
  CHECK(untouched);

  /* foreign data */
  CHECK_EQ(decode_guarded((const uint8_t *)"{\"id\":1}", 8, &d), WSE_ATT_EMAGIC);
  CHECK_EQ(decode_guarded((const uint8_t *)"X", 1, &d), WSE_ATT_EMAGIC);
  CHECK_EQ(decode_guarded((const uint8_t *)"WSX", 3, &d), WSE_ATT_EMAGIC);
  CHECK_EQ(decode_guarded((const uint8_t *)"wse\x02", 4, &d), WSE_ATT_EMAGIC);
  CHECK_EQ(decode_guarded((const uint8_t *)"W", 1, &d), WSE_ATT_ETRUNC);
  CHECK_EQ(decode_guarded((const uint8_t *)"WSE", 3, &d), WSE_ATT_ETRUNC);
  CHECK_EQ(decode_guarded((const uint8_t *)"", 0, &d), WSE_ATT_ETRUNC);
  CHECK_EQ(wse_attachment_decode(NULL, 0, &d), WSE_ATT_ETRUNC);
  CHECK_EQ(wse_attachment_decode(NULL, 5, &d), WSE_EINVAL);

  /* versions other than 2, even with a valid checksum: 1 named the route
   * by its registration index, which a deploy may have reordered */
  int versions_ok = 1;
  for (int v = 0; v < 256; v++) {
    if (v == WSE_ATTACHMENT_VERSION) continue;
    memcpy(work, buf, n);
    work[3] = (uint8_t)v;
    reseal(work, n);
    versions_ok &= decode_guarded(work, n, &d) == WSE_ATT_EVERSION;
  }
  CHECK(versions_ok);
  { /* a real version-1 attachment (43-byte header, one room, a name) */
    uint8_t v1[64] = {'W', 'S', 'E', 1, 0, 2, 0, 1, 1, 0, 0};
    memcpy(v1 + 11, head_ids, 32);
    memcpy(v1 + 43, "rn/r", 4);
    reseal(v1, 51);
    memcpy(&d, &before, sizeof d);
    CHECK_EQ(decode_guarded(v1, 51, &d), WSE_ATT_EVERSION);
    CHECK(memcmp(&d, &before, sizeof d) == 0);
  }

  /* oversized input */
  memset(work, 0, sizeof work);
  memcpy(work, buf, n);
  CHECK_EQ(decode_guarded(work, WSE_ATTACHMENT_MAX + 1, &d), WSE_ATT_ESIZE);

  /* fields over their limits, sealed correctly */
  uint8_t small[64 + 256], u3[3];
  wse_attachment_t s;
  fill_att(&s, (const char *const[]){"ab", "xyz", NULL}, u3, 3);
  long sn = wse_attachment_encode(&s, small, sizeof small);
  CHECK_EQ(sn, 57);
  /* more topics than a session may have */
  memcpy(work, small, (size_t)sn);
  work[6] = WSE_TOPICS_MAX + 1;
  reseal(work, (size_t)sn);
  CHECK_EQ(decode_guarded(work, (size_t)sn, &d), WSE_ATT_EFIELD);
  work[6] = 255;
  reseal(work, (size_t)sn);
  CHECK_EQ(decode_guarded(work, (size_t)sn, &d), WSE_ATT_EFIELD);
  { /* ... even when 17 one-byte topics are really there and add up */
    size_t k = 41;
    memcpy(work, small, 41);
    work[5] = 0, work[6] = WSE_TOPICS_MAX + 1, work[7] = 0, work[8] = 0;
    for (int i = 0; i <= WSE_TOPICS_MAX; i++) work[k++] = 1, work[k++] = (uint8_t)('a' + i);
    k += 4;
    reseal(work, k);
    CHECK_EQ(decode_guarded(work, k, &d), WSE_ATT_EFIELD);
    /* 16 of them, the 17th pair (1, 'q') read as 2 bytes of user data: fine */
    work[6] = WSE_TOPICS_MAX;
    work[7] = 2;
    reseal(work, k);
    CHECK_EQ(decode_guarded(work, k, &d), WSE_OK);
    CHECK_EQ(d.n_topics, WSE_TOPICS_MAX);
    CHECK_EQ(d.user_len, 2);
  }
  { /* an empty topic and a 129-byte topic, the lengths adding up */
    size_t k = 41;
    memcpy(work, small, 41);
    work[5] = 0, work[6] = 1, work[7] = 0, work[8] = 0;
    work[k++] = 0;
    k += 4;
    reseal(work, k);
    CHECK_EQ(decode_guarded(work, k, &d), WSE_ATT_EFIELD);
    k = 41;
    work[k++] = WSE_TOPIC_MAX + 1;
    memset(work + k, 't', WSE_TOPIC_MAX + 1);
    k += WSE_TOPIC_MAX + 1 + 4;
    reseal(work, k);
    CHECK_EQ(decode_guarded(work, k, &d), WSE_ATT_EFIELD);
    work[41] = WSE_TOPIC_MAX; /* 128 and one byte of user data: fine */
    work[7] = 1;
    reseal(work, k);
    CHECK_EQ(decode_guarded(work, k, &d), WSE_OK);
    CHECK_EQ(d.topics[0].n, WSE_TOPIC_MAX);
  }
  /* user data over its limit: in the header alone, and really there */
  memcpy(work, small, (size_t)sn);
  work[7] = (WSE_USERDATA_MAX + 1) & 0xFF, work[8] = (WSE_USERDATA_MAX + 1) >> 8;
  reseal(work, (size_t)sn);
  CHECK_EQ(decode_guarded(work, (size_t)sn, &d), WSE_ATT_ESIZE);
  {
    size_t k = 41 + 2 + 7 + WSE_USERDATA_MAX + 1 + 4;
    memcpy(work, small, 50);
    work[7] = (WSE_USERDATA_MAX + 1) & 0xFF, work[8] = (WSE_USERDATA_MAX + 1) >> 8;
    memset(work + 50, 'u', WSE_USERDATA_MAX + 1);
    reseal(work, k);
    CHECK_EQ(decode_guarded(work, k, &d), WSE_ATT_ESIZE);
  }
  /* a trailing byte: the lengths do not add up */
  memcpy(work, small, (size_t)sn);
  work[sn] = 0;
  reseal(work, (size_t)sn + 1);
  CHECK_EQ(decode_guarded(work, (size_t)sn + 1, &d), WSE_ATT_EFIELD);
  /* unknown flags */
  memcpy(work, small, (size_t)sn);
  work[4] = 1;
  reseal(work, (size_t)sn);
  CHECK_EQ(decode_guarded(work, (size_t)sn, &d), WSE_ATT_EFIELD);
  /* topic bytes that are not UTF-8: a lone lead byte, a stray continuation,
   * an overlong NUL across the two bytes of "ab" */
  memcpy(work, small, (size_t)sn);
  work[44] = 0xC0;
  reseal(work, (size_t)sn);
  CHECK_EQ(decode_guarded(work, (size_t)sn, &d), WSE_ATT_EFIELD);
  memcpy(work, small, (size_t)sn);
  work[50 - 1] = 0x80; /* the last byte of "xyz" */
  reseal(work, (size_t)sn);
  CHECK_EQ(decode_guarded(work, (size_t)sn, &d), WSE_ATT_EFIELD);
  memcpy(work, small, (size_t)sn);
  work[44] = 0xC0, work[45] = 0x80;
  reseal(work, (size_t)sn);
  CHECK_EQ(decode_guarded(work, (size_t)sn, &d), WSE_ATT_EFIELD);
  /* ... while user data is opaque: any bytes */
  memcpy(work, small, (size_t)sn);
  work[50] = 0xFF, work[51] = 0xC0;
  reseal(work, (size_t)sn);
  CHECK_EQ(decode_guarded(work, (size_t)sn, &d), WSE_OK);
  /* the same bytes sealed as they were: accepted */
  CHECK_EQ(decode_guarded(small, (size_t)sn, &d), WSE_OK);

  /* every bit flip of the small one: the topic length bytes (44-1, 47-1)
   * give ETRUNC, EFIELD or (lengths adding up by chance) ECHECKSUM; every
   * other byte as above; never OK, never a partial write */
  {
    guard_t g = guard_copy(small, (size_t)sn);
    int classified = 1, untouched2 = 1;
    for (size_t i = 0; i < (size_t)sn; i++)
      for (int bit = 0; bit < 8; bit++) {
        g.data[i] ^= (uint8_t)(1u << bit);
        memcpy(&d, &before, sizeof d);
        int r = wse_attachment_decode(g.data, (size_t)sn, &d);
        g.data[i] ^= (uint8_t)(1u << bit);
        untouched2 &= memcmp(&d, &before, sizeof d) == 0;
        int ok;
        if (i < 3) ok = r == WSE_ATT_EMAGIC;
        else if (i == 3) ok = r == WSE_ATT_EVERSION;
        else if (i == 5 || i == 43 || i == 46)
          ok = r == WSE_ATT_ETRUNC || r == WSE_ATT_EFIELD || r == WSE_ATT_ECHECKSUM;
        else if (i == 6) ok = r == WSE_ATT_ETRUNC || r == WSE_ATT_EFIELD;
        else if (i == 7 || i == 8)
          ok = r == WSE_ATT_ETRUNC || r == WSE_ATT_EFIELD || r == WSE_ATT_ESIZE;
        else ok = r == WSE_ATT_ECHECKSUM;
        if (!ok && classified) fprintf(stderr, "small flip %zu.%d: %d\n", i, bit, r);
        classified &= ok;
      }
    guard_free(&g);
    CHECK(classified);
    CHECK(untouched2);
  }
}

int main(void) {
  test_sid();
  test_layout();
  test_limits_and_errors();
  TEST_REPORT();
}
