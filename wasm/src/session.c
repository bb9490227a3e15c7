/* session.c — session ids and the attachment codec. A session is stored in a
 * Durable Object WebSocket attachment as a compact, versioned, checksummed
 * byte string; decoding checks every byte before it writes anything, so a
 * truncated, corrupted, foreign or oversized attachment is rejected with a
 * distinct error and never yields a partial session.
 *
 * Layout (version 2, integers little-endian):
 *   0  "WSE"           3  version (2)       4  flags (0)
 *   5  pattern_len u8  6  n_topics u8       7  user_len u16
 *   9  id[16]          25 joined_at u64     33 last_seen u64
 *   41 the route's pattern, the topics (each: length u8, bytes), the user
 *   data, then CRC-32 (IEEE) of everything before it. The route is named by
 *   its pattern, never by its position in the route table, which a deploy
 *   may change. */
#include "internal.h"

#define ATT_HDR 41

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void wse_sid_format(const wse_sid_t *id, char out[WSE_SID_LEN]) {
  uint32_t acc = 0;
  unsigned bits = 0, o = 0;
  for (int i = 0; i < 16; i++) {
    acc = acc << 8 | id->b[i];
    for (bits += 8; bits >= 6;) out[o++] = b64url[acc >> (bits -= 6) & 63];
  }
  out[o] = b64url[acc << (6 - bits) & 63]; /* 128 = 21 * 6 + 2 */
}

int wse_sid_parse(const char *s, size_t n, wse_sid_t *out) {
  uint8_t b[16];
  uint32_t acc = 0;
  unsigned bits = 0, o = 0;
  if (!s || n != WSE_SID_LEN) return WSE_EINVAL;
  for (size_t i = 0; i < n; i++) {
    unsigned v = 0;
    while (v < 64 && b64url[v] != s[i]) v++;
    if (v == 64) return WSE_EINVAL;
    acc = acc << 6 | v;
    bits += 6;
    if (bits >= 8 && o < 16) b[o++] = (uint8_t)(acc >> (bits -= 8));
  }
  /* 132 bits carry 128: the 4 spare bits must be zero (one spelling per id) */
  if (acc & 15) return WSE_EINVAL;
  wse__memcpy(out->b, b, 16);
  return WSE_OK;
}

/* CRC-32 (IEEE 802.3, reflected), a nibble at a time: a 64-byte table. */
static uint32_t crc32(const uint8_t *p, size_t n) {
  static const uint32_t t[16] = {
      0x00000000, 0x1DB71064, 0x3B6E20C8, 0x26D930AC, 0x76DC4190, 0x6B6B51F4,
      0x4DB26158, 0x5005713C, 0xEDB88320, 0xF00F9344, 0xD6D6A3E8, 0xCB61B38C,
      0x9B64C2B0, 0x86D3D2D4, 0xA00AE278, 0xBDBDF21C};
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    c = c >> 4 ^ t[c & 15];
    c = c >> 4 ^ t[c & 15];
  }
  return ~c;
}

static void put_le(uint8_t *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n) {
  uint64_t v = 0;
  while (n--) v = v << 8 | p[n];
  return v;
}

static int topic_ok(wse_str_t t) {
  return t.p && t.n >= 1 && t.n <= WSE_TOPIC_MAX &&
         wse_utf8_valid((const uint8_t *)t.p, t.n);
}

long wse_attachment_encode(const wse_attachment_t *a, uint8_t *buf,
                           size_t cap) {
  if (!a || a->n_topics > WSE_TOPICS_MAX || a->pattern.n > WSE_PATTERN_MAX ||
      (a->pattern.n && !a->pattern.p) || a->user_len > WSE_USERDATA_MAX ||
      (a->user_len && !a->user))
    return WSE_EINVAL; /* what the decoder would refuse is never written */
  size_t n = ATT_HDR + a->pattern.n + a->user_len + 4;
  for (size_t i = 0; i < a->n_topics; i++) {
    if (!topic_ok(a->topics[i])) return WSE_EINVAL;
    n += 1 + a->topics[i].n;
  }
  if (!buf || cap < n) return WSE_ENOSPC;
  uint8_t *p = buf;
  p[0] = 'W', p[1] = 'S', p[2] = 'E', p[3] = WSE_ATTACHMENT_VERSION, p[4] = 0;
  p[5] = (uint8_t)a->pattern.n;
  p[6] = (uint8_t)a->n_topics;
  put_le(p + 7, a->user_len, 2);
  wse__memcpy(p + 9, a->id.b, 16);
  put_le(p + 25, a->joined_at_ms, 8);
  put_le(p + 33, a->last_seen_ms, 8);
  p += ATT_HDR;
  if (a->pattern.n) wse__memcpy(p, a->pattern.p, a->pattern.n);
  p += a->pattern.n;
  for (size_t i = 0; i < a->n_topics; i++) {
    *p++ = (uint8_t)a->topics[i].n;
    wse__memcpy(p, a->topics[i].p, a->topics[i].n);
    p += a->topics[i].n;
  }
  if (a->user_len) wse__memcpy(p, a->user, a->user_len);
  put_le(buf + n - 4, crc32(buf, n - 4), 4);
  return (long)n;
}

int wse_attachment_decode(const uint8_t *p, size_t n, wse_attachment_t *out) {
  if ((!p && n) || !out) return WSE_EINVAL;
  if (n > WSE_ATTACHMENT_MAX) return WSE_ATT_ESIZE;
  /* a prefix of our magic is ours, cut short; anything else is foreign */
  if (!wse__memeq(p, "WSE", n < 3 ? n : 3)) return WSE_ATT_EMAGIC;
  if (n < 4) return WSE_ATT_ETRUNC;
  if (p[3] != WSE_ATTACHMENT_VERSION) return WSE_ATT_EVERSION;
  if (n < ATT_HDR + 4) return WSE_ATT_ETRUNC;
  size_t pl = p[5], nt = p[6], ul = (size_t)get_le(p + 7, 2);
  if (nt > WSE_TOPICS_MAX) return WSE_ATT_EFIELD;
  if (ul > WSE_USERDATA_MAX) return WSE_ATT_ESIZE;
  /* walk the topic lengths (inside the bytes we have) to the total size */
  size_t want = ATT_HDR + pl, at;
  wse_str_t topics[WSE_TOPICS_MAX];
  for (size_t i = 0; i < nt; i++) {
    if (want + 1 > n - 4) return WSE_ATT_ETRUNC;
    size_t tl = p[want];
    if (tl < 1 || tl > WSE_TOPIC_MAX) return WSE_ATT_EFIELD;
    topics[i].p = (const char *)p + want + 1;
    topics[i].n = tl;
    want += 1 + tl;
  }
  at = want;
  want += ul + 4;
  if (n < want) return WSE_ATT_ETRUNC;
  if (n > want) return WSE_ATT_EFIELD; /* trailing bytes: lengths disagree */
  if (crc32(p, n - 4) != (uint32_t)get_le(p + n - 4, 4))
    return WSE_ATT_ECHECKSUM;
  if (p[4] != 0) return WSE_ATT_EFIELD;
  for (size_t i = 0; i < nt; i++)
    if (!topic_ok(topics[i])) return WSE_ATT_EFIELD;
  /* valid: commit */
  wse__memcpy(out->id.b, p + 9, 16);
  out->joined_at_ms = get_le(p + 25, 8);
  out->last_seen_ms = get_le(p + 33, 8);
  out->pattern.p = (const char *)p + ATT_HDR;
  out->pattern.n = pl;
  out->n_topics = nt;
  for (size_t i = 0; i < nt; i++) out->topics[i] = topics[i];
  out->user = ul ? p + at : NULL;
  out->user_len = ul;
  return WSE_OK;
}
