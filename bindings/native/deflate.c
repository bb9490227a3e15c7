/* deflate.c — permessage-deflate (RFC 7692) on zlib for the native host:
 * raw DEFLATE with Z_SYNC_FLUSH and the 00 00 ff ff tail stripped on the
 * way out and re-appended on the way in, context takeover per the
 * negotiated parameters, the message limit applied to the inflated size,
 * and every byte zlib allocates counted.
 *
 * Memory: a stream reset after every message carries nothing from one
 * message to the next, so all no-context-takeover connections of a thread
 * share one compressor per setting and one inflater (uWebSockets' "shared
 * compressor"); only context takeover costs per-connection zlib memory, and
 * only once that direction is used. A message of a client without context
 * takeover is a whole DEFLATE stream of its own: libdeflate (whole-buffer,
 * about three times zlib's inflate speed) decodes it, as uWebSockets' fast
 * path does; anything it does not take whole goes through zlib, which has
 * the last word (one leniency, uWebSockets' too: a message zlib finds not
 * ending on a block boundary may be taken whole with the appended bytes;
 * limit and UTF-8 still checked). Output lands in per-thread scratch
 * buffers that the host copies from at once; buffers grown past KEEP for a
 * large message are released at the next call. */
#include "deflate.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <libdeflate.h>
#include <zlib.h>

#define ZHDR 16             /* size prefix of counted blocks (keeps alignment) */
#define KEEP (64u << 10)    /* scratch buffers larger than this are not kept */
#define HDR_ROOM 10         /* largest unmasked frame header */
#define SHARED_MAX 8        /* distinct shared compressor settings per thread */
#define CHUNK ((size_t)1 << 30) /* zlib counts in uInt */
#define SHARED_INF_BITS 15  /* inflates any client window */

static _Atomic uint64_t g_mem;

/* ---- counted memory ----------------------------------------------------- */

static void account(size_t *owner, size_t n, int add) {
  if (add) {
    *owner += n;
    atomic_fetch_add_explicit(&g_mem, n, memory_order_relaxed);
  } else {
    *owner -= n;
    atomic_fetch_sub_explicit(&g_mem, n, memory_order_relaxed);
  }
}

static void *cmalloc(size_t *owner, size_t n) {
  if (n > SIZE_MAX - ZHDR) return NULL;
  uint8_t *p = malloc(n + ZHDR);
  if (!p) return NULL;
  memcpy(p, &n, sizeof n);
  account(owner, n + ZHDR, 1);
  return p + ZHDR;
}

static void cfree(size_t *owner, void *q) {
  if (!q) return;
  uint8_t *p = (uint8_t *)q - ZHDR;
  size_t n;
  memcpy(&n, p, sizeof n);
  account(owner, n + ZHDR, 0);
  free(p);
}

static voidpf z_alloc(voidpf opaque, uInt items, uInt size) {
  if (size && items > SIZE_MAX / size) return Z_NULL;
  return cmalloc(opaque, (size_t)items * size);
}

static void z_free(voidpf opaque, voidpf p) { cfree(opaque, p); }

/* A growable byte buffer whose capacity is counted in its owner. */
typedef struct zbuf {
  uint8_t *p;
  size_t cap;
} zbuf_t;

static int zbuf_reserve(size_t *owner, zbuf_t *b, size_t need) {
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  uint8_t *q = cmalloc(owner, cap);
  if (!q) return -1;
  if (b->p) {
    memcpy(q, b->p, b->cap);
    cfree(owner, b->p);
  }
  b->p = q;
  b->cap = cap;
  return 0;
}

/* Grow to exactly `cap` at most (the inflate output never passes the
 * message limit + 1). */
static int zbuf_grow_to(size_t *owner, zbuf_t *b, size_t used, size_t cap) {
  uint8_t *q = cmalloc(owner, cap);
  if (!q) return -1;
  if (used) memcpy(q, b->p, used);
  cfree(owner, b->p);
  b->p = q;
  b->cap = cap;
  return 0;
}

static void zbuf_trim(size_t *owner, zbuf_t *b) {
  if (b->cap > KEEP) {
    cfree(owner, b->p);
    b->p = NULL;
    b->cap = 0;
  }
}

static void zbuf_free(size_t *owner, zbuf_t *b) {
  cfree(owner, b->p);
  b->p = NULL;
  b->cap = 0;
}

/* ---- objects --------------------------------------------------------------- */

struct wsn_deflate {
  z_stream *def;            /* own compressor (server context takeover) */
  z_stream *inf;            /* own inflater (client context takeover) */
  size_t mem;               /* bytes of the two streams */
  uint64_t max_message;
  size_t threshold;
  int8_t swbits, cwbits, level, mem_level;
  uint8_t snctt, cnctt;
  uint8_t used;             /* own compressor used since the last tick */
  uint8_t resync;           /* a shared frame went out: reset own before use */
  uint32_t idle;            /* ticks the own compressor went unused */
  wsn_deflate_stats_t st;
};

typedef struct shared_def {
  z_stream *z;
  int8_t wbits, level, mem_level;
  uint8_t cached;           /* frame holds the compressed current message */
  uint64_t gen;             /* ... of this message generation */
  zbuf_t frame;
  size_t off, len;
} shared_def_t;

struct wsn_deflate_ctx {
  size_t mem;
  uint64_t gen;
  int fanout;               /* the current message goes to several receivers */
  unsigned n_sd, next_evict;
  shared_def_t sd[SHARED_MAX];
  z_stream *inf;            /* shared inflater, reset after every message */
  struct libdeflate_decompressor *ld; /* the same, whole messages at once */
  zbuf_t out;               /* inflated message */
  zbuf_t scratch;           /* frames of context-takeover connections */
};

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

wsn_deflate_ctx_t *wsn_deflate_ctx_new(void) {
  wsn_deflate_ctx_t *x = calloc(1, sizeof *x);
  if (!x) return NULL;
  x->mem = sizeof *x;
  atomic_fetch_add_explicit(&g_mem, x->mem, memory_order_relaxed);
  return x;
}

static void stream_free(size_t *owner, z_stream *z, int deflater) {
  if (!z) return;
  if (deflater) deflateEnd(z);
  else inflateEnd(z);
  cfree(owner, z);
}

void wsn_deflate_ctx_free(wsn_deflate_ctx_t *x) {
  if (!x) return;
  for (unsigned i = 0; i < x->n_sd; i++) {
    stream_free(&x->mem, x->sd[i].z, 1);
    zbuf_free(&x->mem, &x->sd[i].frame);
  }
  stream_free(&x->mem, x->inf, 0);
  if (x->ld) libdeflate_free_decompressor(x->ld);
  zbuf_free(&x->mem, &x->out);
  zbuf_free(&x->mem, &x->scratch);
  atomic_fetch_sub_explicit(&g_mem, x->mem, memory_order_relaxed);
  free(x);
}

wsn_deflate_t *wsn_deflate_new(const wse_config_t *cfg,
                               const wse_deflate_params_t *neg) {
  wsn_deflate_t *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  d->mem = sizeof *d;
  atomic_fetch_add_explicit(&g_mem, d->mem, memory_order_relaxed);
  d->max_message = cfg->max_message_size;
  d->threshold = cfg->deflate_threshold;
  d->level = (int8_t)clampi(cfg->deflate_level, 1, 9);
  d->mem_level = (int8_t)clampi(cfg->deflate_mem_level, 1, 9);
  d->snctt = neg->server_no_context_takeover > 0;
  d->cnctt = neg->client_no_context_takeover > 0;
  /* Our compressor never uses more than the client allowed (or than we
   * announced); for 8 it runs with 9 bits (zlib's raw deflate has no
   * 8-bit mode), whose matches never reach past 250 bytes, so a 256-byte
   * inflater decodes them. The client's window is what it promised; 8 is
   * inflated with 9, since zlib-based senders silently widen 8 to 9. */
  d->swbits = (int8_t)(neg->server_max_window_bits > 0
                           ? clampi(neg->server_max_window_bits, 9, 15) : 15);
  d->cwbits = (int8_t)(neg->client_max_window_bits > 0
                           ? clampi(neg->client_max_window_bits, 9, 15) : 15);
  return d;
}

void wsn_deflate_free(wsn_deflate_t *d) {
  if (!d) return;
  stream_free(&d->mem, d->def, 1);
  stream_free(&d->mem, d->inf, 0);
  atomic_fetch_sub_explicit(&g_mem, d->mem, memory_order_relaxed);
  free(d);
}

static z_stream *deflater_new(size_t *owner, int wbits, int level, int mem_level) {
  z_stream *z = cmalloc(owner, sizeof *z);
  if (!z) return NULL;
  memset(z, 0, sizeof *z);
  z->zalloc = z_alloc;
  z->zfree = z_free;
  z->opaque = owner;
  if (deflateInit2(z, level, Z_DEFLATED, -wbits, mem_level, Z_DEFAULT_STRATEGY) != Z_OK) {
    cfree(owner, z);
    return NULL;
  }
  return z;
}

static z_stream *inflater_new(size_t *owner, int wbits) {
  z_stream *z = cmalloc(owner, sizeof *z);
  if (!z) return NULL;
  memset(z, 0, sizeof *z);
  z->zalloc = z_alloc;
  z->zfree = z_free;
  z->opaque = owner;
  if (inflateInit2(z, -wbits) != Z_OK) {
    cfree(owner, z);
    return NULL;
  }
  return z;
}

/* ---- inflate ------------------------------------------------------------------ */

static const uint8_t TAIL[4] = {0x00, 0x00, 0xff, 0xff};

/* A final block (BFINAL=1) ends the zlib stream, but with context takeover
 * the next message may still refer to this one: restart the stream with
 * the window as its dictionary. */
static int restart_keep_window(z_stream *z, wsn_deflate_ctx_t *x) {
  if (zbuf_reserve(&x->mem, &x->scratch, (size_t)1 << 15)) return WSE_ENOMEM;
  uInt n = 0;
  if (inflateGetDictionary(z, x->scratch.p, &n) != Z_OK) return WSN_DEFLATE_EDATA;
  if (inflateReset(z) != Z_OK) return WSN_DEFLATE_EDATA;
  if (n && inflateSetDictionary(z, x->scratch.p, n) != Z_OK) return WSN_DEFLATE_EDATA;
  return WSE_OK;
}

/* libdeflate wants a stream that ends in a final block: the message, the
 * tail RFC 7692 strips, then an empty stored block with BFINAL set. */
static const uint8_t TAIL_FINAL[9] = {0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff};
#define FAST_MAX ((size_t)64 << 10) /* larger messages stream through zlib */

/* A message of a client without context takeover, whole: 1 with *have
 * bytes in x->out, 0 to let zlib decide (not a stream libdeflate takes
 * whole: a final block inside the message, bad data, more than the limit,
 * no memory for its decompressor), or the error (not UTF-8, no memory). */
static int fast_inflate(wsn_deflate_ctx_t *x, unsigned opcode, const uint8_t *in,
                        size_t n, uint64_t limit, size_t lim1, size_t *have) {
  if (n > FAST_MAX) return 0;
  if (!x->ld && !(x->ld = libdeflate_alloc_decompressor())) return 0;
  if (zbuf_reserve(&x->mem, &x->scratch, n + sizeof TAIL_FINAL)) return WSE_ENOMEM;
  memcpy(x->scratch.p, in, n);
  memcpy(x->scratch.p + n, TAIL_FINAL, sizeof TAIL_FINAL);
  size_t cap = x->out.cap < lim1 ? x->out.cap : lim1;
  for (;;) {
    size_t used = 0, got = 0;
    enum libdeflate_result r = libdeflate_deflate_decompress_ex(
        x->ld, x->scratch.p, n + sizeof TAIL_FINAL, x->out.p, cap, &used, &got);
    if (r == LIBDEFLATE_SUCCESS) {
      if (used != n + sizeof TAIL_FINAL) return 0;
      *have = got;
      break;
    }
    if (r != LIBDEFLATE_INSUFFICIENT_SPACE) return 0;
    if (cap >= lim1) return 0; /* too big, or bad data met late: zlib's word */
    size_t next = cap <= lim1 / 4 ? cap * 4 : lim1;
    if (zbuf_grow_to(&x->mem, &x->out, 0, next)) return WSE_ENOMEM;
    cap = next;
  }
  if (*have > limit) return 0;
  if (opcode == WSE_OP_TEXT && !wse_utf8_valid(x->out.p, *have)) return WSE_EUTF8;
  return 1;
}

int wsn_deflate_inflate(wsn_deflate_t *d, wsn_deflate_ctx_t *x,
                        unsigned opcode, const uint8_t *in, size_t n,
                        const uint8_t **out, size_t *out_len) {
  *out = (const uint8_t *)"";
  *out_len = 0;
  if (opcode != WSE_OP_TEXT && opcode != WSE_OP_BINARY) return WSE_EINVAL;
  zbuf_trim(&x->mem, &x->out);
  zbuf_trim(&x->mem, &x->scratch);
  d->st.in_messages++;
  d->st.in_compressed += n;
  /* An empty payload is an empty message (some senders drop even the
   * stored-block byte); it must not reach the inflater, whose state would
   * stop between blocks. */
  if (n == 0) return WSE_OK;

  uint64_t limit = d->max_message;
  size_t lim1 = limit >= (uint64_t)SIZE_MAX - 1 ? SIZE_MAX - 1 : (size_t)limit + 1;
  size_t first = n < SIZE_MAX / 4 ? n * 4 : SIZE_MAX;
  if (first < 4096) first = 4096;
  if (first > lim1) first = lim1;
  if (x->out.cap < first && zbuf_grow_to(&x->mem, &x->out, 0, first)) return WSE_ENOMEM;

  if (d->cnctt) {
    size_t got = 0;
    int f = fast_inflate(x, opcode, in, n, limit, lim1, &got);
    if (f) {
      d->st.in_inflated += got;
      if (f < 0) return f;
      *out = x->out.p;
      *out_len = got;
      return WSE_OK;
    }
  }

  z_stream *z;
  if (d->cnctt) {
    if (!x->inf && !(x->inf = inflater_new(&x->mem, SHARED_INF_BITS))) return WSE_ENOMEM;
    z = x->inf;
  } else {
    if (!d->inf && !(d->inf = inflater_new(&d->mem, d->cwbits))) return WSE_ENOMEM;
    z = d->inf;
  }

  const uint8_t *src = in;
  size_t left = n, have = 0;
  int tail_fed = 0, drained = 1, ended = 0, rc = WSE_OK;
  uint32_t u8 = WSE_UTF8_ACCEPT;
  z->next_in = NULL;
  z->avail_in = 0;
  for (;;) {
    if (z->avail_in == 0 && drained) {
      if (left) {
        size_t k = left < CHUNK ? left : CHUNK;
        z->next_in = (Bytef *)(uintptr_t)src;
        z->avail_in = (uInt)k;
        src += k;
        left -= k;
      } else if (!tail_fed) {
        z->next_in = (Bytef *)(uintptr_t)TAIL;
        z->avail_in = sizeof TAIL;
        tail_fed = 1;
      } else {
        break;
      }
    }
    if (have == x->out.cap && have < lim1) {
      size_t cap = x->out.cap <= lim1 / 2 ? x->out.cap * 2 : lim1;
      if (cap <= have) { rc = WSE_ETOOBIG; break; } /* not reached: have > limit first */
      if (zbuf_grow_to(&x->mem, &x->out, have, cap)) { rc = WSE_ENOMEM; break; }
    }
    /* the buffer may be larger than this connection's limit (kept from
     * another's message): never inflate past limit + 1 regardless */
    size_t room = (x->out.cap < lim1 ? x->out.cap : lim1) - have;
    if (room > CHUNK) room = CHUNK;
    z->next_out = x->out.p + have;
    z->avail_out = (uInt)room;
    int zr = inflate(z, Z_SYNC_FLUSH);
    size_t got = room - z->avail_out;
    if (got && opcode == WSE_OP_TEXT) {
      size_t bad;
      if (wse_utf8_feed(&u8, x->out.p + have, got, &bad) < 0) {
        have += got;
        rc = WSE_EUTF8;
        break;
      }
    }
    have += got;
    drained = z->avail_out != 0;
    if (have > limit) { rc = WSE_ETOOBIG; break; }
    if (zr == Z_STREAM_END) { ended = 1; break; }
    if (zr == Z_MEM_ERROR) { rc = WSE_ENOMEM; break; }
    if (zr == Z_BUF_ERROR && z->avail_in && z->avail_out) { rc = WSN_DEFLATE_EDATA; break; }
    if (zr != Z_OK && zr != Z_BUF_ERROR) { rc = WSN_DEFLATE_EDATA; break; }
  }
  d->st.in_inflated += have;
  /* Valid input ends between blocks: the appended tail completes the empty
   * stored block of the sender's flush. Anything else is truncated data. */
  if (rc == WSE_OK && !ended && !(z->data_type & 128)) rc = WSN_DEFLATE_EDATA;
  if (rc == WSE_OK && opcode == WSE_OP_TEXT && u8 != WSE_UTF8_ACCEPT) rc = WSE_EUTF8;
  if (d->cnctt || rc != WSE_OK) {
    inflateReset(z);
  } else if (ended) {
    int r = restart_keep_window(z, x);
    if (r < 0) rc = r;
  }
  if (rc != WSE_OK) return rc;
  *out = x->out.p;
  *out_len = have;
  return WSE_OK;
}

/* ---- compress ------------------------------------------------------------------ */

/* Compress p[0..n) with z into b as one frame: the header is written right
 * before the data inside HDR_ROOM. Sets *off and *len to the frame. */
static int compress_frame(z_stream *z, size_t *owner, zbuf_t *b, unsigned opcode,
                          const uint8_t *p, size_t n, size_t *off, size_t *len) {
  if (n == 0) {
    /* zlib refuses a second flush without input (Z_BUF_ERROR, no output).
     * An empty message is an empty stored block, tail stripped: one 00
     * byte, which leaves the stream byte-aligned as a flush does. */
    if (zbuf_reserve(owner, b, HDR_ROOM + 1)) return WSE_ENOMEM;
    b->p[HDR_ROOM - 2] = (uint8_t)(0xC0 | opcode);
    b->p[HDR_ROOM - 1] = 1;
    b->p[HDR_ROOM] = 0;
    *off = HDR_ROOM - 2;
    *len = 3;
    return WSE_OK;
  }
  uLong bound = deflateBound(z, n < CHUNK ? (uLong)n : (uLong)CHUNK);
  size_t need = HDR_ROOM + (size_t)bound + 16;
  if (n >= CHUNK) need = HDR_ROOM + n + n / 64 + 64;
  if (zbuf_reserve(owner, b, need)) return WSE_ENOMEM;
  const uint8_t *src = p;
  size_t left = n, used = HDR_ROOM;
  z->next_in = NULL;
  z->avail_in = 0;
  for (;;) {
    if (z->avail_in == 0 && left) {
      size_t k = left < CHUNK ? left : CHUNK;
      z->next_in = (Bytef *)(uintptr_t)src;
      z->avail_in = (uInt)k;
      src += k;
      left -= k;
    }
    if (used == b->cap && zbuf_reserve(owner, b, b->cap + 1)) return WSE_ENOMEM;
    size_t room = b->cap - used;
    if (room > CHUNK) room = CHUNK;
    z->next_out = b->p + used;
    z->avail_out = (uInt)room;
    int zr = deflate(z, left ? Z_NO_FLUSH : Z_SYNC_FLUSH);
    used += room - z->avail_out;
    if (zr == Z_MEM_ERROR) return WSE_ENOMEM;
    if (zr != Z_OK && zr != Z_BUF_ERROR) return WSE_EINVAL;
    /* the flush is complete once deflate leaves output space unused */
    if (!left && z->avail_in == 0 && z->avail_out != 0) break;
  }
  size_t clen = used - HDR_ROOM;
  if (clen < 4 || memcmp(b->p + used - 4, TAIL, 4) != 0) return WSE_EINVAL;
  clen -= 4;
  uint8_t h[WSE_FRAME_HEADER_MAX];
  size_t hs = wse_frame_write_header(h, 1, 1, opcode, clen, NULL);
  memcpy(b->p + HDR_ROOM - hs, h, hs);
  *off = HDR_ROOM - hs;
  *len = hs + clen;
  return WSE_OK;
}

static shared_def_t *shared_for(wsn_deflate_ctx_t *x, const wsn_deflate_t *d) {
  for (unsigned i = 0; i < x->n_sd; i++) {
    shared_def_t *s = &x->sd[i];
    if (s->z && s->wbits == d->swbits && s->level == d->level &&
        s->mem_level == d->mem_level)
      return s;
  }
  shared_def_t *s;
  if (x->n_sd < SHARED_MAX) {
    s = &x->sd[x->n_sd];
    memset(s, 0, sizeof *s);
  } else {
    /* more settings than slots (many route configs): recycle one */
    s = &x->sd[x->next_evict++ % SHARED_MAX];
    stream_free(&x->mem, s->z, 1);
    s->z = NULL;
    s->cached = 0;
  }
  s->z = deflater_new(&x->mem, d->swbits, d->level, d->mem_level);
  if (!s->z) return NULL; /* a recycled slot stays empty (z == NULL) */
  s->wbits = d->swbits;
  s->level = d->level;
  s->mem_level = d->mem_level;
  if (x->n_sd < SHARED_MAX && s == &x->sd[x->n_sd]) x->n_sd++;
  return s;
}

static void count_out(wsn_deflate_t *d, size_t raw, size_t frame_len) {
  /* payload bytes: the frame minus its header */
  size_t hs = frame_len < 2 + 126 ? 2 : frame_len < 4 + 65536 ? 4 : 10;
  d->st.out_messages++;
  d->st.out_raw += raw;
  d->st.out_compressed += frame_len - hs;
}

/* Compress with the connection's own or the thread's shared stream into b. */
static int compress_msg(wsn_deflate_t *d, wsn_deflate_ctx_t *x, shared_def_t *s,
                        zbuf_t *b, unsigned opcode, const uint8_t *p, size_t n,
                        size_t *off, size_t *len) {
  z_stream *z;
  if (s) {
    z = s->z;
  } else {
    if (!d->def && !(d->def = deflater_new(&d->mem, d->swbits, d->level, d->mem_level)))
      return WSE_ENOMEM;
    else if (d->resync)
      deflateReset(d->def); /* the client's window has bytes ours has not */
    d->resync = 0;
    z = d->def;
    d->used = 1;
  }
  int rc = compress_frame(z, &x->mem, b, opcode, p, n, off, len);
  if (s || d->snctt || rc != WSE_OK) deflateReset(z);
  if (rc == WSE_OK) count_out(d, n, *len);
  return rc;
}

int wsn_deflate_message(wsn_deflate_t *d, wsn_deflate_ctx_t *x, unsigned opcode,
                        const uint8_t *p, size_t n, const uint8_t **frame,
                        size_t *frame_len) {
  if (opcode != WSE_OP_TEXT && opcode != WSE_OP_BINARY) return WSE_EINVAL;
  zbuf_trim(&x->mem, &x->scratch);
  if (n < d->threshold) {
    if (zbuf_reserve(&x->mem, &x->scratch, WSE_FRAME_HEADER_MAX + n)) return WSE_ENOMEM;
    size_t hs = wse_frame_write_header(x->scratch.p, 1, 0, opcode, n, NULL);
    if (n) memcpy(x->scratch.p + hs, p, n);
    *frame = x->scratch.p;
    *frame_len = hs + n;
    return WSE_OK;
  }
  shared_def_t *s = NULL;
  if (d->snctt && !(s = shared_for(x, d))) return WSE_ENOMEM;
  size_t off, len;
  int rc = compress_msg(d, x, s, &x->scratch, opcode, p, n, &off, &len);
  if (rc != WSE_OK) return rc;
  *frame = x->scratch.p + off;
  *frame_len = len;
  return WSE_OK;
}

/* Context takeover is the client's promise to keep its window, never our
 * duty to use it: a compressor dropped here and made afresh for the next
 * message yields blocks that simply refer to nothing before them. The
 * inflater is different (the client may refer back at any time) and stays. */
void wsn_deflate_tick(wsn_deflate_t *d, uint32_t idle_ticks) {
  if (!d || !d->def || !idle_ticks) return;
  if (d->used) {
    d->used = 0;
    d->idle = 0;
    return;
  }
  if (++d->idle < idle_ticks) return;
  stream_free(&d->mem, d->def, 1);
  d->def = NULL;
  d->idle = 0;
}

void wsn_deflate_fanout(wsn_deflate_ctx_t *x, int on) { x->fanout = on; }

void wsn_deflate_next_message(wsn_deflate_ctx_t *x) {
  x->gen++;
  x->fanout = 0;
  for (unsigned i = 0; i < x->n_sd; i++) {
    x->sd[i].cached = 0;
    zbuf_trim(&x->mem, &x->sd[i].frame);
  }
}

int wsn_deflate_frame(wsn_deflate_t *d, wsn_deflate_ctx_t *x, const uint8_t *in,
                      size_t n, const uint8_t **out, size_t *out_len) {
  *out = in;
  *out_len = n;
  wse_frame_header_t h;
  int hl = wse_frame_parse_header(in, n, &h);
  if (hl <= 0 || !h.fin || h.rsv || h.masked ||
      (h.opcode != WSE_OP_TEXT && h.opcode != WSE_OP_BINARY) ||
      h.len != (uint64_t)(n - (size_t)hl))
    return WSE_OK; /* control, fragmented or already extended: as is */
  size_t pn = (size_t)h.len;
  if (pn < d->threshold) return WSE_OK;
  const uint8_t *p = in + hl;
  size_t off, len;
  if (!d->snctt && !x->fanout) {
    zbuf_trim(&x->mem, &x->scratch);
    int rc = compress_msg(d, x, NULL, &x->scratch, h.opcode, p, pn, &off, &len);
    if (rc != WSE_OK) return rc;
    *out = x->scratch.p + off;
    *out_len = len;
    return WSE_OK;
  }
  /* no context takeover, or one message to many: the thread's frame for
   * this message and setting, compressed once without history. A
   * context-takeover receiver's inflater appends it to its window, which
   * its own compressor's history then lacks: that is reset before its
   * next use (distances would point at the wrong bytes otherwise). */
  shared_def_t *s = shared_for(x, d);
  if (!s) return WSE_ENOMEM;
  if (!d->snctt) d->resync = 1;
  if (s->cached && s->gen == x->gen) {
    d->st.out_cached++;
    count_out(d, pn, s->len);
  } else {
    s->cached = 0;
    int rc = compress_msg(d, x, s, &s->frame, h.opcode, p, pn, &off, &len);
    if (rc != WSE_OK) return rc;
    s->off = off;
    s->len = len;
    s->gen = x->gen;
    s->cached = 1;
  }
  *out = s->frame.p + s->off;
  *out_len = s->len;
  return WSE_OK;
}

/* ---- reporting --------------------------------------------------------------------- */

unsigned wsn_deflate_close_code(int err) {
  switch (err) {
  case WSE_ETOOBIG: return WSE_CLOSE_TOO_BIG;
  case WSE_EUTF8:
  case WSN_DEFLATE_EDATA: return WSE_CLOSE_INVALID_DATA;
  default: return WSE_CLOSE_INTERNAL;
  }
}

const char *wsn_deflate_strerror(int err) {
  if (err == WSN_DEFLATE_EDATA) return "invalid compressed data";
  if (err == WSE_ETOOBIG) return "message too big";
  return wse_strerror(err);
}

size_t wsn_deflate_conn_memory(const wsn_deflate_t *d) { return d ? d->mem : 0; }
size_t wsn_deflate_ctx_memory(const wsn_deflate_ctx_t *x) { return x ? x->mem : 0; }
uint64_t wsn_deflate_memory(void) {
  return atomic_load_explicit(&g_mem, memory_order_relaxed);
}

void wsn_deflate_stats(const wsn_deflate_t *d, wsn_deflate_stats_t *out) {
  *out = d->st;
}

void wsn_deflate_info(const wsn_deflate_t *d, wsn_deflate_info_t *out) {
  out->server_window_bits = d->swbits;
  out->client_window_bits = d->cwbits;
  out->server_no_context_takeover = d->snctt;
  out->client_no_context_takeover = d->cnctt;
  out->level = d->level;
  out->mem_level = d->mem_level;
  out->threshold = d->threshold;
}
