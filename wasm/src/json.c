/* json.c — JSON text for the app layer: string escaping and integers for
 * the events it emits, and a strict parser for the flat objects of string
 * fields clients send ({"text":"...","to":"..."}). */
#include "json.h"

void wse_jw_raw(wse_jw_t *w, const char *s, size_t n) {
  if (n && w->n <= w->cap && n <= w->cap - w->n) wse__memcpy(w->p + w->n, s, n);
  w->n += n; /* once past cap it stays past: one check at the end */
}

void wse_jw_str(wse_jw_t *w, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const uint8_t *p = (const uint8_t *)s;
  size_t start = 0;
  wse_jw_lit(w, "\"");
  for (size_t i = 0; i < n; i++) {
    uint8_t c = p[i];
    char e[6] = {'\\', (char)c, '0', '0', '0', '0'};
    size_t k = 2, skip = 0;
    if (c == '\n') e[1] = 'n';
    else if (c == '\r') e[1] = 'r';
    else if (c == '\t') e[1] = 't';
    else if (c < 0x20) e[1] = 'u', e[4] = hex[c >> 4], e[5] = hex[c & 15], k = 6;
    else if (c == 0xE2 && n - i > 2 && p[i + 1] == 0x80 && (p[i + 2] & 0xFE) == 0xA8)
      /* U+2028/U+2029: valid in JSON, line breaks in older JavaScript */
      e[1] = 'u', e[2] = '2', e[4] = '2', e[5] = (char)('8' + (p[i + 2] & 1)),
      k = 6, skip = 2;
    else if (c != '"' && c != '\\') continue;
    wse_jw_raw(w, s + start, i - start);
    wse_jw_raw(w, e, k);
    i += skip;
    start = i + 1;
  }
  wse_jw_raw(w, s + start, n - start);
  wse_jw_lit(w, "\"");
}

void wse_jw_cstr(wse_jw_t *w, const char *s) {
  wse_jw_raw(w, s, wse__strlen(s));
}

void wse_jw_u64(wse_jw_t *w, uint64_t v) {
  char t[20];
  size_t i = sizeof t;
  do t[--i] = (char)('0' + v % 10);
  while (v /= 10);
  wse_jw_raw(w, t + i, sizeof t - i);
}

/* ---- parser ---------------------------------------------------------- */

typedef struct jr {
  const uint8_t *p;
  size_t n, i;
} jr_t;

static void jws(jr_t *r) {
  while (r->i < r->n && (r->p[r->i] == ' ' || r->p[r->i] == '\t' ||
                         r->p[r->i] == '\n' || r->p[r->i] == '\r'))
    r->i++;
}

/* Skip whitespace; 1 and consume when the next byte is c. */
static int jeat(jr_t *r, uint8_t c) {
  jws(r);
  if (r->i < r->n && r->p[r->i] == c) return ++r->i, 1;
  return 0;
}

int wse__hex2(const char *p) {
  int v = 0;
  for (int k = 0; k < 2; k++) {
    uint8_t c = wse__lower((uint8_t)p[k]);
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return -1;
    v = v << 4 | d;
  }
  return v;
}

static int hex4(jr_t *r, uint32_t *u) {
  int hi, lo;
  if (r->n - r->i < 4 || (hi = wse__hex2((const char *)r->p + r->i)) < 0 ||
      (lo = wse__hex2((const char *)r->p + r->i + 2)) < 0)
    return 0;
  r->i += 4;
  *u = (uint32_t)(hi << 8 | lo);
  return 1;
}

/* One string token, decoded into out. Returns its length or -1. */
static long jstr(jr_t *r, char *out, size_t cap) {
  static const char esc[] = "\"\\/bfnrt", val[] = "\"\\/\b\f\n\r\t";
  size_t o = 0;
  if (!jeat(r, '"')) return -1;
  while (r->i < r->n) {
    uint32_t u = r->p[r->i++];
    if (u == '"') return (long)o;
    if (u < 0x20) return -1;
    if (u == '\\') {
      if (r->i == r->n) return -1;
      u = r->p[r->i++];
      if (u == 'u') {
        uint32_t lo;
        if (!hex4(r, &u)) return -1;
        if (u >= 0xD800 && u < 0xDC00) { /* needs its low half */
          if (r->n - r->i < 2 || r->p[r->i] != '\\' || r->p[r->i + 1] != 'u')
            return -1;
          r->i += 2;
          if (!hex4(r, &lo) || lo < 0xDC00 || lo > 0xDFFF) return -1;
          u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        } else if (u >= 0xDC00 && u < 0xE000) {
          return -1;
        }
        size_t k = u < 0x80 ? 1 : u < 0x800 ? 2 : u < 0x10000 ? 3 : 4;
        if (cap - o < k) return -1;
        for (size_t j = k - 1; j > 0; j--) out[o + j] = (char)(0x80 | (u & 63)), u >>= 6;
        out[o] = (char)(k == 1 ? u : (0xF00u >> k & 0xF0) | u);
        o += k;
        continue;
      }
      size_t e = 0;
      while (esc[e] && esc[e] != (char)u) e++;
      if (!esc[e]) return -1;
      u = (uint8_t)val[e];
    }
    if (o == cap) return -1;
    out[o++] = (char)u;
  }
  return -1;
}

/* An unsigned integer token (0 or [1-9][0-9]*), its digits copied to out.
 * A sign, fraction or exponent is left unread: the caller's next token
 * check fails on it. */
static long jnum(jr_t *r, char *out, size_t cap) {
  size_t o = 0;
  jws(r);
  while (r->i < r->n && r->p[r->i] >= '0' && r->p[r->i] <= '9') {
    if (o == cap || (o == 1 && out[0] == '0')) return -1;
    out[o++] = (char)r->p[r->i++];
  }
  return o ? (long)o : -1;
}

int wse_json_object(const uint8_t *p, size_t n, const char *const *keys,
                    size_t nkeys, wse_str_t *vals, unsigned *nums, char *buf,
                    size_t cap) {
  jr_t r = {p, n, 0};
  size_t used = 0;
  if (nkeys > 32) return WSE_EINVAL;
  for (size_t k = 0; k < nkeys; k++) vals[k].p = NULL, vals[k].n = 0;
  if (nums) *nums = 0;
  if (!jeat(&r, '{')) return WSE_EINVAL;
  if (!jeat(&r, '}')) {
    do {
      long kl = jstr(&r, buf + used, cap - used), vl;
      size_t k = 0;
      if (kl < 0) return WSE_EINVAL;
      while (k < nkeys && !(wse__strlen(keys[k]) == (size_t)kl &&
                            wse__memeq(keys[k], buf + used, (size_t)kl)))
        k++;
      if (k == nkeys || vals[k].p || !jeat(&r, ':')) return WSE_EINVAL;
      jws(&r); /* the key is done with: its bytes are reused */
      if (nums && r.i < n && r.p[r.i] != '"') {
        vl = jnum(&r, buf + used, cap - used);
        *nums |= 1u << k;
      } else {
        vl = jstr(&r, buf + used, cap - used);
      }
      if (vl < 0) return WSE_EINVAL;
      vals[k].p = buf + used;
      vals[k].n = (size_t)vl;
      used += (size_t)vl;
    } while (jeat(&r, ','));
    if (!jeat(&r, '}')) return WSE_EINVAL;
  }
  jws(&r);
  return r.i == n ? WSE_OK : WSE_EINVAL;
}

int wse_json_fields(const uint8_t *p, size_t n, const char *const *keys,
                    size_t nkeys, wse_str_t *vals, char *buf, size_t cap) {
  return wse_json_object(p, n, keys, nkeys, vals, NULL, buf, cap);
}

int wse_json_u64(wse_str_t v, uint64_t *out) {
  uint64_t x = 0;
  if (!v.n || (v.n > 1 && v.p[0] == '0')) return WSE_EINVAL;
  for (size_t i = 0; i < v.n; i++) {
    unsigned d = (unsigned)(uint8_t)v.p[i] - '0';
    if (d > 9 || x > (UINT64_MAX - d) / 10) return WSE_EINVAL;
    x = x * 10 + d;
  }
  *out = x;
  return WSE_OK;
}
