/* session.c — session ids and the attachment codec. A session is stored in a
 * Durable Object WebSocket attachment as a compact, versioned, checksummed
 * byte string; decoding checks every byte before it writes anything, so a
 * truncated, corrupted, foreign or oversized attachment is rejected with a
 * distinct error and never yields a partial session.
 *
 * Layout (version 2, integers little-endian):
 *   0  "WSE"          3  version (2)      4  flags (0)
 *   5  pattern_len u16                    7  room_len u8   8  name_len u8
 *   9  user_len u16   11 id[16]           27 joined_at u64 35 last_seen u64
 *   43 room, name, user data, the route's pattern, then CRC-32 (IEEE) of
 *   everything before it. The route is named by its pattern, never by its
 *   position in the route table, which a deploy may change. */
#include "internal.h"

#define ATT_HDR 43

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

long wse_attachment_encode(const wse_session_t *s, uint8_t *buf, size_t cap) {
  if (!s || s->room_len > WSE_ROOM_MAX || s->name_len > WSE_NAME_MAX ||
      s->user_len > WSE_USERDATA_MAX || (s->user_len && !s->user) ||
      (s->pattern_len && !s->pattern) ||
      !wse_utf8_valid((const uint8_t *)s->room, s->room_len) ||
      !wse_utf8_valid((const uint8_t *)s->name, s->name_len))
    return WSE_EINVAL; /* what the decoder would refuse is never written */
  size_t n = ATT_HDR + s->room_len + s->name_len + s->user_len + s->pattern_len + 4;
  if (!buf || cap < n) return WSE_ENOSPC;
  uint8_t *p = buf;
  p[0] = 'W', p[1] = 'S', p[2] = 'E', p[3] = WSE_ATTACHMENT_VERSION, p[4] = 0;
  put_le(p + 5, s->pattern_len, 2);
  p[7] = s->room_len;
  p[8] = s->name_len;
  put_le(p + 9, s->user_len, 2);
  wse__memcpy(p + 11, s->id.b, 16);
  put_le(p + 27, s->joined_at_ms, 8);
  put_le(p + 35, s->last_seen_ms, 8);
  p += ATT_HDR;
  wse__memcpy(p, s->room, s->room_len);
  p += s->room_len;
  wse__memcpy(p, s->name, s->name_len);
  p += s->name_len;
  if (s->user_len) wse__memcpy(p, s->user, s->user_len);
  p += s->user_len;
  if (s->pattern_len) wse__memcpy(p, s->pattern, s->pattern_len);
  put_le(buf + n - 4, crc32(buf, n - 4), 4);
  return (long)n;
}

int wse_attachment_decode(const uint8_t *p, size_t n, wse_session_t *s,
                          uint8_t *user_buf) {
  if ((!p && n) || !s) return WSE_EINVAL;
  if (n > WSE_ATTACHMENT_MAX) return WSE_ATT_ESIZE;
  /* a prefix of our magic is ours, cut short; anything else is foreign */
  if (!wse__memeq(p, "WSE", n < 3 ? n : 3)) return WSE_ATT_EMAGIC;
  if (n < 4) return WSE_ATT_ETRUNC;
  if (p[3] != WSE_ATTACHMENT_VERSION) return WSE_ATT_EVERSION;
  if (n < ATT_HDR) return WSE_ATT_ETRUNC;
  size_t pl = (size_t)get_le(p + 5, 2), rl = p[7], nl = p[8],
         ul = (size_t)get_le(p + 9, 2);
  if (rl > WSE_ROOM_MAX || nl > WSE_NAME_MAX || pl > WSE_PATTERN_MAX)
    return WSE_ATT_EFIELD;
  if (ul > WSE_USERDATA_MAX) return WSE_ATT_ESIZE;
  size_t want = ATT_HDR + rl + nl + ul + pl + 4;
  if (n < want) return WSE_ATT_ETRUNC;
  if (n > want) return WSE_ATT_EFIELD; /* trailing bytes: lengths disagree */
  if (crc32(p, n - 4) != (uint32_t)get_le(p + n - 4, 4))
    return WSE_ATT_ECHECKSUM;
  const uint8_t *room = p + ATT_HDR, *name = room + rl, *user = name + nl,
                *pattern = user + ul;
  if (p[4] != 0 || !wse_utf8_valid(room, rl) || !wse_utf8_valid(name, nl))
    return WSE_ATT_EFIELD;
  if (ul && !user_buf) return WSE_EINVAL;
  /* valid: commit */
  wse__memcpy(s->id.b, p + 11, 16);
  s->route = 0xFFFF; /* the app maps the pattern to its own route */
  s->pattern = (const char *)pattern;
  s->pattern_len = (uint8_t)pl;
  s->room_len = (uint8_t)rl;
  s->name_len = (uint8_t)nl;
  wse__memcpy(s->room, room, rl);
  wse__memcpy(s->name, name, nl);
  s->joined_at_ms = get_le(p + 27, 8);
  s->last_seen_ms = get_le(p + 35, 8);
  if (ul) wse__memcpy(user_buf, user, ul);
  s->user = user_buf;
  s->user_len = (uint16_t)ul;
  return WSE_OK;
}
