/* wsedge_wasm.c — the wasm host glue, compiled only into the wasm builds.
 *
 * Three things live here:
 *  - a heap over __heap_base and memory.grow (segregated free lists,
 *    boundary tags, coalescing): a Durable Object runs for days, so freed
 *    memory must be reused, never just bumped past;
 *  - weak mem* fallbacks, so the module needs no libc and imports nothing;
 *  - the exports the JS shim (bindings/workers/wsedge.js) calls. Each app
 *    context owns one growable input buffer the JS writes into (request
 *    heads, messages, attachments), a result block and the action tape, so
 *    a call moves bytes without allocating on either side.
 *
 * The only mutable global is the heap (unavoidable in a wasm host); all other
 * state hangs off the context pointer wsx_new() returns. */
#include "wsedge.h"

#define WSX_EXPORT(name) __attribute__((export_name(name), used))

/* ---- heap ------------------------------------------------------------
 * Block at address b (b % 8 == 4): u32 header = size | USED, payload at b+4
 * (8-aligned), u32 footer at b+size-4 = the same word. Free blocks keep the
 * next/prev links of their free list at b+4 / b+8. A used footer word sits
 * just below the first block and a zero-size used header (the epilogue) at
 * the end, so coalescing never runs off the heap. Bins hold sizes in
 * [2^k, 2^(k+1)); a bitmap finds the first non-empty bin above a size. */

extern unsigned char __heap_base;

#define WSX_USED 1u
#define WSX_MIN_BLOCK 16u
#define WSX_NBINS 28 /* 2^4 .. 2^31 */
#define WSX_PAGE 65536u

typedef struct wsx_heap {
  uint32_t start, end;     /* first block, epilogue header */
  uint32_t mem_end;        /* bytes of linear memory we manage up to */
  uint32_t bitmap;         /* bit i: bins[i] non-empty */
  uint32_t bins[WSX_NBINS];
  uint32_t used;           /* bytes in used blocks (headers included) */
  uint32_t init;
} wsx_heap_t;

static wsx_heap_t wsx_heap;

#define W(a) (*(uint32_t *)(uintptr_t)(a))

static unsigned wsx_bin(uint32_t size) {
  return (unsigned)(31 - __builtin_clz(size)) - 4u;
}

static void wsx_mark(uint32_t b, uint32_t size, uint32_t used) {
  W(b) = size | used;
  W(b + size - 4) = size | used;
}

static void wsx_link(uint32_t b, uint32_t size) {
  wsx_heap_t *h = &wsx_heap;
  unsigned i = wsx_bin(size);
  uint32_t head = h->bins[i];
  wsx_mark(b, size, 0);
  W(b + 4) = head;
  W(b + 8) = 0;
  if (head) W(head + 8) = b;
  h->bins[i] = b;
  h->bitmap |= 1u << i;
}

static void wsx_unlink(uint32_t b) {
  wsx_heap_t *h = &wsx_heap;
  uint32_t next = W(b + 4), prev = W(b + 8);
  unsigned i = wsx_bin(W(b) & ~7u);
  if (prev) W(prev + 4) = next;
  else h->bins[i] = next;
  if (next) W(next + 8) = prev;
  if (!h->bins[i]) h->bitmap &= ~(1u << i);
}

/* Insert free block [b, b+size), merging with free neighbours. */
static void wsx_release(uint32_t b, uint32_t size) {
  uint32_t n = b + size;
  if (!(W(n) & WSX_USED)) {
    uint32_t ns = W(n) & ~7u;
    wsx_unlink(n);
    size += ns;
  }
  uint32_t pf = W(b - 4);
  if (!(pf & WSX_USED)) {
    uint32_t ps = pf & ~7u;
    b -= ps;
    wsx_unlink(b);
    size += ps;
  }
  wsx_link(b, size);
}

static void wsx_heap_init(void) {
  wsx_heap_t *h = &wsx_heap;
  uint32_t base = (uint32_t)(uintptr_t)&__heap_base;
  uint32_t mem = (uint32_t)__builtin_wasm_memory_size(0) * WSX_PAGE;
  h->start = ((base + 4 + 7) & ~7u) + 4;
  h->mem_end = mem;
  h->end = ((mem - 8) & ~7u) + 4;
  W(h->start - 4) = WSX_USED; /* prologue footer */
  if (h->end < h->start + WSX_MIN_BLOCK) {
    h->end = h->start;
  } else {
    wsx_link(h->start, h->end - h->start);
  }
  W(h->end) = WSX_USED; /* epilogue */
  h->init = 1;
}

/* Grow linear memory so a free block of at least `size` exists at the top. */
static int wsx_grow(uint32_t size) {
  wsx_heap_t *h = &wsx_heap;
  uint32_t pages = (size + 16 + WSX_PAGE - 1) / WSX_PAGE;
  size_t old = __builtin_wasm_memory_grow(0, pages);
  if (old == (size_t)-1) return -1;
  uint32_t old_end = (uint32_t)old * WSX_PAGE;
  uint32_t new_end = old_end + pages * WSX_PAGE;
  uint32_t b = h->end; /* the old epilogue becomes a block header */
  if (old_end != h->mem_end) {
    /* Someone else grew memory: fence off the gap as a used block. */
    uint32_t gap = ((old_end + 4 + 7) & ~7u) + 4 - b;
    wsx_mark(b, gap, WSX_USED);
    b += gap;
  }
  h->mem_end = new_end;
  h->end = ((new_end - 8) & ~7u) + 4;
  W(h->end) = WSX_USED;
  W(b) = WSX_USED; /* so wsx_release sees a used block; it rewrites it */
  wsx_release(b, h->end - b);
  return 0;
}

static uint32_t wsx_size_for(size_t n) {
  if (n > 0x7fff0000u) return 0;
  uint32_t s = ((uint32_t)n + 8 + 7) & ~7u;
  return s < WSX_MIN_BLOCK ? WSX_MIN_BLOCK : s;
}

/* Turn free block b (already unlinked) into a used block of `size`,
 * returning the tail to the free lists. */
static void *wsx_take(uint32_t b, uint32_t size) {
  uint32_t have = W(b) & ~7u;
  if (have - size >= WSX_MIN_BLOCK) {
    wsx_mark(b, size, WSX_USED);
    wsx_mark(b + size, have - size, WSX_USED);
    wsx_release(b + size, have - size);
  } else {
    size = have;
    wsx_mark(b, size, WSX_USED);
  }
  wsx_heap.used += size;
  return (void *)(uintptr_t)(b + 4);
}

static void *wsx_malloc(size_t n) {
  wsx_heap_t *h = &wsx_heap;
  if (!h->init) wsx_heap_init();
  uint32_t size = wsx_size_for(n);
  if (!size) return 0;
  for (int tries = 0; tries < 2; tries++) {
    unsigned i = wsx_bin(size);
    /* first fit inside the exact bin (sizes there may be smaller) */
    for (uint32_t b = h->bins[i]; b; b = W(b + 4)) {
      if ((W(b) & ~7u) >= size) {
        wsx_unlink(b);
        return wsx_take(b, size);
      }
    }
    /* any block of a higher bin fits */
    uint32_t mask = h->bitmap & ~((2u << i) - 1u);
    if (mask) {
      uint32_t b = h->bins[__builtin_ctz(mask)];
      wsx_unlink(b);
      return wsx_take(b, size);
    }
    if (wsx_grow(size) < 0) return 0;
  }
  return 0;
}

static void wsx_mfree(void *p) {
  if (!p) return;
  uint32_t b = (uint32_t)(uintptr_t)p - 4;
  uint32_t size = W(b) & ~7u;
  wsx_heap.used -= size;
  wsx_release(b, size);
}

static void *wsx_mrealloc(void *p, size_t n) {
  if (!p) return wsx_malloc(n);
  uint32_t b = (uint32_t)(uintptr_t)p - 4;
  uint32_t have = W(b) & ~7u;
  uint32_t size = wsx_size_for(n);
  if (!size) return 0;
  if (size <= have) {
    if (have - size >= WSX_MIN_BLOCK) { /* give the tail back */
      wsx_mark(b, size, WSX_USED);
      wsx_mark(b + size, have - size, WSX_USED);
      wsx_heap.used -= have - size;
      wsx_release(b + size, have - size);
    }
    return p;
  }
  uint32_t nb = b + have;
  if (!(W(nb) & WSX_USED) && have + (W(nb) & ~7u) >= size) {
    uint32_t ns = W(nb) & ~7u;
    wsx_unlink(nb);
    wsx_heap.used -= have;
    wsx_mark(b, have + ns, 0);
    return wsx_take(b, size);
  }
  void *q = wsx_malloc(n);
  if (!q) return 0;
  __builtin_memcpy(q, p, have - 8);
  wsx_mfree(p);
  return q;
}

static void *wsx_a_alloc(void *ud, size_t n) {
  (void)ud;
  return wsx_malloc(n);
}
static void *wsx_a_realloc(void *ud, void *p, size_t old_n, size_t new_n) {
  (void)ud;
  (void)old_n;
  return wsx_mrealloc(p, new_n);
}
static void wsx_a_free(void *ud, void *p, size_t n) {
  (void)ud;
  (void)n;
  wsx_mfree(p);
}

/* ---- libc fallbacks --------------------------------------------------
 * clang lowers the core's __builtin_mem* to bulk-memory instructions, but
 * may still emit calls for struct copies; emscripten's own versions win when
 * its libc is linked (these are weak). */

__attribute__((weak)) void *memcpy(void *restrict d, const void *restrict s,
                                   size_t n) {
  __builtin_memmove(d, s, n); /* memory.copy */
  return d;
}
__attribute__((weak)) void *memmove(void *d, const void *s, size_t n) {
  __builtin_memmove(d, s, n);
  return d;
}
__attribute__((weak)) void *memset(void *d, int c, size_t n) {
  __builtin_memset(d, c, n); /* memory.fill */
  return d;
}
__attribute__((weak)) size_t strlen(const char *s) {
  const volatile char *p = s;
  size_t n = 0;
  while (p[n]) n++;
  return n;
}
__attribute__((weak)) int memcmp(const void *a, const void *b, size_t n) {
  const volatile unsigned char *x = a, *y = b;
  for (size_t i = 0; i < n; i++)
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  return 0;
}

/* ---- the app context the shim drives -------------------------------- */

/* Result block words (wsx_result). */
enum {
  R_STATUS = 0,    /* HTTP status / return value */
  R_HDRS, R_HDRS_LEN, /* "Name: value\r\n"... */
  R_BODY, R_BODY_LEN,
  R_NACT, R_TAPE,  /* action count, tape pointer (8 words per action) */
  R_HANDLE,        /* upgrade: the new session's handle */
  R_SID,           /* upgrade / wsx_sid: pointer to WSE_SID_LEN chars */
  R_HANDLES,       /* restore: pointer to i32[n] */
  R_RESTORES,      /* restore/seed: lifetime restore passes (saturated u32) */
  R_RESTORED,      /* restore/seed: lifetime restored sessions */
  R_ROUTE_INDEX,   /* route info: the route's index in its table, -1 */
  R_PATTERN, R_PATTERN_LEN, /* route info: its pattern */
  R_DURABLE, R_DURABLE_LEN, /* route info: its Durable Object binding */
  R_KEY, R_KEY_LEN, /* route info: the object's name (in the input) */
  R_NEXT_LO, R_NEXT_HI, /* expire: the next lifetime end (ms), 0 = none */
  R_NWORDS = 22
};

#define TAPE_WORDS 8

typedef struct wsx {
  wse_app_t *app;
  wse_config_t cfg;
  wse_allocator_t alloc;
  uint8_t *in;              /* input buffer the JS writes into */
  size_t in_cap;
  wse_header_t *hdrs;
  size_t hdrs_cap;
  uint32_t *tape;
  size_t tape_cap;          /* actions */
  const uint8_t **att;      /* restore scratch */
  size_t *att_len;
  int32_t *handles;
  size_t att_cap;
  wse_upgrade_t up;
  wse_response_t resp;
  uint32_t res[R_NWORDS];
  char sid[WSE_SID_LEN];
  char *origins;            /* the configured Origin list's strings */
  const char *origin_ptrs[32];
} wsx_t;

static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static uint64_t ms(double now) { return now > 0 ? (uint64_t)now : 0; }

static int grow_buf(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 16;
  while (c < need) c *= 2;
  void *q = wsx_mrealloc(*p, c * elem);
  if (!q) return -1;
  *p = q;
  *cap = c;
  return 0;
}

static void set_resp(wsx_t *x, const wse_response_t *r) {
  x->res[R_STATUS] = (uint32_t)r->status;
  x->res[R_HDRS] = (uint32_t)(uintptr_t)r->headers;
  x->res[R_HDRS_LEN] = r->headers ? (uint32_t)r->headers_len : 0;
  x->res[R_BODY] = (uint32_t)(uintptr_t)r->body;
  x->res[R_BODY_LEN] = r->body ? (uint32_t)r->body_len : 0;
}

/* Serialise the app's queued actions into the tape. Layout per action, u32
 * words: type, target, opcode, close_code, data ptr, data len, recipients
 * ptr, n_recipients (a TIMER: its record as the data, the record's id
 * length for close_code). Pointers stay valid until the next call. */
static void flush(wsx_t *x) {
  const wse_action_t *a;
  size_t n = wse_app_actions(x->app, &a);
  if (grow_buf((void **)&x->tape, &x->tape_cap, n, TAPE_WORDS * 4) < 0) n = 0;
  uint32_t *w = x->tape;
  for (size_t i = 0; i < n; i++, w += TAPE_WORDS) {
    /* TIMER and HISTORY: the record; word 3: a TIMER's id length */
    int tm = a[i].type == WSE_ACT_TIMER || a[i].type == WSE_ACT_HISTORY;
    w[0] = (uint32_t)a[i].type;
    w[1] = a[i].target;
    w[2] = a[i].opcode;
    w[3] = tm ? (uint32_t)a[i].len : a[i].close_code;
    w[4] = (uint32_t)(uintptr_t)(tm ? a[i].frame : a[i].data);
    w[5] = (uint32_t)(tm ? a[i].frame_len : a[i].len);
    w[6] = (uint32_t)(uintptr_t)a[i].recipients;
    w[7] = (uint32_t)a[i].n_recipients;
  }
  x->res[R_NACT] = (uint32_t)n;
  x->res[R_TAPE] = (uint32_t)(uintptr_t)x->tape;
}

static void begin(wsx_t *x) {
  wse_app_actions_clear(x->app);
  x->res[R_NACT] = 0;
}

/* Packed request in the input buffer (little endian):
 *   [0,16)  entropy (upgrade only)
 *   [16,20) n_headers   [20,24) body length
 *   [24,..) u32 lengths: method, target, name0, value0, name1, ...
 *   then those strings back to back, then the body. */
static int unpack(wsx_t *x, size_t n, wse_request_t *req, const uint8_t **body,
                  size_t *body_n) {
  const uint8_t *in = x->in;
  if (n < 24 || n > x->in_cap) return -1;
  uint32_t nh = rd32(in + 16), bn = rd32(in + 20);
  if (nh > 1024) return -1;
  size_t nlen = 2 + 2 * (size_t)nh, off = 24 + 4 * nlen;
  if (off > n) return -1;
  if (grow_buf((void **)&x->hdrs, &x->hdrs_cap, nh ? nh : 1,
               sizeof(wse_header_t)) < 0)
    return -1;
  wse_str_t *s = 0;
  for (size_t i = 0; i < nlen; i++) {
    uint32_t l = rd32(in + 24 + 4 * i);
    if (l > n - off) return -1;
    if (i == 0) s = &req->method;
    else if (i == 1) s = &req->target;
    else if (i & 1) s = &x->hdrs[(i - 2) / 2].value;
    else s = &x->hdrs[(i - 2) / 2].name;
    s->p = (const char *)in + off;
    s->n = l;
    off += l;
  }
  if (bn > n - off) return -1;
  req->http_version = 0; /* Workers do not say */
  req->headers = x->hdrs;
  req->n_headers = nh;
  if (body) {
    *body = in + off;
    *body_n = bn;
  }
  return 0;
}

/* A context in two steps, so the host's settings (wrangler vars) become the
 * app's defaults before its entry point derives route configs from them:
 * wsx_new, then wsx_start with them. */
WSX_EXPORT("wsx_new") wsx_t *wsx_new(void) {
  wsx_t *x = wsx_malloc(sizeof *x);
  if (!x) return 0;
  __builtin_memset(x, 0, sizeof *x);
  x->alloc.alloc_fn = wsx_a_alloc;
  x->alloc.realloc_fn = wsx_a_realloc;
  x->alloc.free_fn = wsx_a_free;
  wse_config_default(&x->cfg);
  x->cfg.deflate = 0; /* workerd owns the frame layer at the edge */
  return x;
}

/* Create the app and run its entry point. max_message (0: the default)
 * and session_timeout_s (< 0: the default) are the app's defaults; the
 * input's first n bytes are the allowed Origins, each NUL-terminated (the
 * shim has validated them; copied, as they must outlive the app). Returns
 * 0, or a negative error (the entry point's own). */
WSX_EXPORT("wsx_start")
int wsx_start(wsx_t *x, double max_message, double session_timeout_s, size_t n) {
  int rc;
  size_t k = 0;
  if (x->app || n > 8192) return WSE_EINVAL;
  if (max_message >= 1) {
    x->cfg.max_message_size = (uint64_t)max_message;
    if (x->cfg.max_frame_size > x->cfg.max_message_size)
      x->cfg.max_frame_size = x->cfg.max_message_size;
  }
  if (session_timeout_s >= 0) x->cfg.session_timeout_s = (uint32_t)session_timeout_s;
  if (n) {
    if (!(x->origins = wsx_malloc(n))) return WSE_ENOMEM;
    __builtin_memcpy(x->origins, x->in, n);
    for (size_t i = 0; i < n && k < 32; i++)
      if (i == 0 || !x->origins[i - 1]) x->origin_ptrs[k++] = x->origins + i;
    x->origins[n - 1] = 0;
    x->cfg.allowed_origins = x->origin_ptrs;
    x->cfg.n_allowed_origins = k;
  }
  if ((rc = wse_app_new(&x->app, &x->alloc, &x->cfg)) < 0) return rc;
  if ((rc = wsedge_app(x->app)) < 0) {
    wse_app_free(x->app);
    x->app = 0;
  }
  return rc < 0 ? rc : 0;
}

/* A session's route limits: the largest message it accepts (the shim
 * closes with 1009 before a bigger one reaches the core) and when its
 * lifetime ends (ms; 0: no limit). -1 for no such session. */
WSX_EXPORT("wsx_max_message") double wsx_max_message(wsx_t *x, uint32_t h) {
  wse_session_t *s = wse_app_session(x->app, h);
  return s ? (double)wse_app_route_config(x->app, s->route)->max_message_size : -1;
}

WSX_EXPORT("wsx_session_end") double wsx_session_end(wsx_t *x, uint32_t h) {
  wse_session_t *s = wse_app_session(x->app, h);
  if (!s) return -1;
  uint32_t life = wse_app_route_config(x->app, s->route)->session_timeout_s;
  return life ? (double)(s->joined_at_ms + (uint64_t)life * 1000) : 0;
}

/* Close sessions past their lifetime (CLOSE actions on the tape); the next
 * lifetime end goes to R_NEXT_LO/HI. Returns how many were closed. */
WSX_EXPORT("wsx_expire") int wsx_expire(wsx_t *x, double now) {
  uint64_t next = 0;
  begin(x);
  long n = wse_app_expire(x->app, ms(now), &next);
  x->res[R_NEXT_LO] = (uint32_t)next;
  x->res[R_NEXT_HI] = (uint32_t)(next >> 32);
  flush(x);
  return (int)n;
}

/* Timers: run the due ones (actions on the tape; returns how many), when
 * the earliest is due (ms, 0: none), and reload a stored record from the
 * input's first n bytes (0, or WSE_EINVAL/WSE_ENOSPC: the shim drops it). */
WSX_EXPORT("wsx_timers_run") int wsx_timers_run(wsx_t *x, double now) {
  begin(x);
  long n = wse_app_timers_run(x->app, ms(now));
  flush(x);
  return (int)n;
}

WSX_EXPORT("wsx_timer_next") double wsx_timer_next(wsx_t *x) {
  return (double)wse_app_timer_next(x->app);
}

WSX_EXPORT("wsx_timer_load") int wsx_timer_load(wsx_t *x, size_t n) {
  return n > x->in_cap ? WSE_EINVAL : wse_app_timer_load(x->app, x->in, n);
}

/* A stored history record from the input's first n bytes (0 or an error). */
WSX_EXPORT("wsx_history_load") int wsx_history_load(wsx_t *x, size_t n) {
  return n > x->in_cap ? WSE_EINVAL : wse_app_history_load(x->app, x->in, n);
}

/* Number the rooms' next events above seq (hi:lo): see wse_app_history_floor. */
WSX_EXPORT("wsx_history_floor") void wsx_history_floor(wsx_t *x, uint32_t lo, uint32_t hi) {
  wse_app_history_floor(x->app, (uint64_t)hi << 32 | lo);
}

/* The app's heartbeat ping (pong = 0) or pong (1), NUL-terminated, or 0:
 * the shim gives the pair to the runtime (setWebSocketAutoResponse). */
WSX_EXPORT("wsx_heartbeat") const char *wsx_heartbeat(wsx_t *x, int pong) {
  return x->app ? wse_app_heartbeat_get(x->app, pong) : 0;
}

/* The code a Close carries on the wire for `code`: itself when RFC 6455
 * lets an endpoint send it, 0 (a Close without a code) otherwise (1005,
 * 1006, 1015, reserved ranges). The shim's one rule, the frame engine's. */
WSX_EXPORT("wsx_wire_code") unsigned wsx_wire_code(unsigned code) {
  return wse_close_code_valid(code) ? code : 0;
}

WSX_EXPORT("wsx_free") void wsx_free(wsx_t *x) {
  if (!x) return;
  if (x->app) wse_app_free(x->app);
  wsx_mfree(x->origins);
  wsx_mfree(x->in);
  wsx_mfree(x->hdrs);
  wsx_mfree(x->tape);
  wsx_mfree(x->att);
  wsx_mfree(x->att_len);
  wsx_mfree(x->handles);
  wsx_mfree(x);
}

WSX_EXPORT("wsx_result") uint32_t *wsx_result(wsx_t *x) { return x->res; }

/* The input buffer, grown to hold n bytes. Returns 0 when out of memory.
 * Memory may grow: the JS refreshes its views after this call. */
WSX_EXPORT("wsx_input") uint8_t *wsx_input(wsx_t *x, size_t n) {
  if (grow_buf((void **)&x->in, &x->in_cap, n ? n : 1, 1) < 0) return 0;
  return x->in;
}

/* Validation only, no session (the Worker in front of a Durable Object).
 * Every rejection is the app's own answer, byte for byte what the object or
 * the native server would say: unknown path -> wse_app_upgrade's 404 (route
 * matching comes before anything else there: no session, no hook); a plain
 * request or a bad handshake on a WebSocket route -> wse_app_http's 400 JSON
 * or the core's 400/403/405/426. Returns the status (101 = acceptable).
 * (After begin(): wsx_validate and wsx_route_validate.) */
static int validate_unpacked(wsx_t *x, const wse_request_t *req, double now) {
  const wse_config_t *cfg = 0;
  if (!wse_app_match(x->app, req->target, &cfg)) {
    wse_app_upgrade(x->app, req, x->in, ms(now), &x->up, &x->resp);
  } else if (wse_is_upgrade_request(req) &&
             wse_upgrade_validate(cfg ? cfg : &x->cfg, req, &x->up) ==
                 WSE_OK) {
    x->resp.status = 101;
    x->resp.headers = x->resp.body = 0;
    x->resp.headers_len = x->resp.body_len = 0;
  } else {
    wse_app_http(x->app, req, 0, 0, ms(now), &x->resp);
  }
  set_resp(x, &x->resp);
  flush(x);
  return x->resp.status;
}

WSX_EXPORT("wsx_validate") int wsx_validate(wsx_t *x, size_t n, double now) {
  wse_request_t req;
  begin(x);
  if (unpack(x, n, &req, 0, 0) < 0) return -1;
  return validate_unpacked(x, &req, now);
}

/* 1 when the packed request asks for a WebSocket upgrade at all, else 0
 * (the host then takes the plain HTTP path); -1 on a malformed packing. */
WSX_EXPORT("wsx_is_upgrade") int wsx_is_upgrade(wsx_t *x, size_t n) {
  wse_request_t req;
  if (unpack(x, n, &req, 0, 0) < 0) return -1;
  return wse_is_upgrade_request(&req) ? 1 : 0;
}

/* Full upgrade: route, validation, on_upgrade; creates the session. Returns
 * its handle (>= 0; result: 101 headers, R_HANDLE, R_SID) or < 0 (result:
 * the rejection). Entropy is the first 16 bytes of the packed request. */
WSX_EXPORT("wsx_upgrade") int wsx_upgrade(wsx_t *x, size_t n, double now) {
  wse_request_t req;
  begin(x);
  if (unpack(x, n, &req, 0, 0) < 0) return -1000;
  int h = wse_app_upgrade(x->app, &req, x->in, ms(now), &x->up, &x->resp);
  set_resp(x, &x->resp);
  x->res[R_HANDLE] = (uint32_t)h;
  x->res[R_SID] = 0;
  if (h >= 0) {
    wse_session_t *s = wse_app_session(x->app, (uint32_t)h);
    if (s) {
      wse_sid_format(&s->id, x->sid);
      x->res[R_SID] = (uint32_t)(uintptr_t)x->sid;
    }
  }
  flush(x);
  return h;
}

WSX_EXPORT("wsx_open") int wsx_open(wsx_t *x, uint32_t h, double now) {
  begin(x);
  int r = wse_app_open(x->app, h, ms(now));
  flush(x);
  return r;
}

/* Message bytes are in the input buffer [0, n). */
WSX_EXPORT("wsx_message")
int wsx_message(wsx_t *x, uint32_t h, unsigned opcode, size_t n, double now) {
  begin(x);
  if (n > x->in_cap) return WSE_EINVAL;
  int r = wse_app_message(x->app, h, opcode, x->in, n, ms(now));
  flush(x);
  return r;
}

/* Reason bytes are in the input buffer [0, n). */
WSX_EXPORT("wsx_close")
int wsx_close(wsx_t *x, uint32_t h, unsigned code, size_t n, double now) {
  begin(x);
  if (n > x->in_cap) n = 0;
  int r = wse_app_close(x->app, h, code, x->in, n, ms(now));
  flush(x);
  return r;
}

WSX_EXPORT("wsx_error")
int wsx_error(wsx_t *x, uint32_t h, int err, double now) {
  begin(x);
  int r = wse_app_error(x->app, h, err, ms(now));
  flush(x);
  return r;
}

/* A plain HTTP request (packed, body after the strings). Returns status. */
WSX_EXPORT("wsx_http") int wsx_http(wsx_t *x, size_t n, double now) {
  wse_request_t req;
  const uint8_t *body;
  size_t bn;
  begin(x);
  if (unpack(x, n, &req, &body, &bn) < 0) return -1;
  int st = wse_app_http(x->app, &req, body, bn, ms(now), &x->resp);
  set_resp(x, &x->resp);
  flush(x);
  return st;
}

static uint32_t sat32(uint64_t v) {
  return v > 0xffffffffu ? 0xffffffffu : (uint32_t)v;
}

static void counters(wsx_t *x) {
  wse_app_stats_t st;
  wse_app_stats(x->app, &st);
  x->res[R_RESTORES] = sat32(st.restores);
  x->res[R_RESTORED] = sat32(st.restored);
}

/* Seed the lifetime counters with earlier instances' totals (the Durable
 * Object keeps them in storage); R_RESTORES/R_RESTORED -> the new totals. */
WSX_EXPORT("wsx_seed")
void wsx_seed(wsx_t *x, double restores, double restored) {
  wse_app_stats_seed(x->app, restores > 0 ? (uint64_t)restores : 0,
                     restored > 0 ? (uint64_t)restored : 0);
  counters(x);
}

/* Restore after a wake. Input: u32 count, u32 lens[count], then the
 * attachments back to back. R_HANDLES -> i32[count]: a handle, or the
 * WSE_ATT_E* error (close that socket with 1011); R_RESTORES/R_RESTORED ->
 * the lifetime totals. same_wake = 1: a socket found later in the same wake
 * (its event came after the first pass), not another wake: the pass is not
 * counted. Returns restored count. */
WSX_EXPORT("wsx_restore")
int wsx_restore(wsx_t *x, size_t n, double now, int same_wake) {
  begin(x);
  if (n < 4 || n > x->in_cap) return -1;
  uint32_t cnt = rd32(x->in);
  if (cnt > (n - 4) / 4) return -1;
  if (cnt > x->att_cap) {
    size_t c = x->att_cap ? x->att_cap : 16;
    while (c < cnt) c *= 2;
    void *a = wsx_mrealloc(x->att, c * sizeof *x->att);
    if (!a) return -1;
    x->att = a;
    a = wsx_mrealloc(x->att_len, c * sizeof *x->att_len);
    if (!a) return -1;
    x->att_len = a;
    a = wsx_mrealloc(x->handles, c * sizeof *x->handles);
    if (!a) return -1;
    x->handles = a;
    x->att_cap = c;
  }
  size_t off = 4 + 4 * (size_t)cnt;
  for (uint32_t i = 0; i < cnt; i++) {
    uint32_t l = rd32(x->in + 4 + 4 * i);
    if (l > n - off) l = 0; /* truncated input: a zero-length attachment */
    x->att[i] = x->in + off;
    x->att_len[i] = l;
    off += l;
  }
  long r = wse_app_restore(x->app, x->att, x->att_len, cnt, x->handles,
                           ms(now));
  if (same_wake) wse_app_stats_seed(x->app, UINT64_MAX, 0); /* -1 mod 2^64 */
  counters(x);
  x->res[R_HANDLES] = (uint32_t)(uintptr_t)x->handles;
  flush(x);
  return (int)r;
}

/* Where the target in the input buffer [0, n) goes, from the app's own
 * table (the Worker routes with it): returns WSE_ROUTE_NONE/WS/HTTP, or -1
 * on bad input. Result: R_ROUTE_INDEX, the pattern, the route's Durable
 * Object binding (length 0: none) and the key naming the object (a slice of
 * the input: read it before the next call that writes there). */
static int route_words(wsx_t *x, wse_str_t target) {
  wse_route_info_t ri;
  int k = wse_app_route_info(x->app, target, &ri);
  x->res[R_ROUTE_INDEX] = (uint32_t)ri.index;
  x->res[R_PATTERN] = (uint32_t)(uintptr_t)ri.pattern;
  x->res[R_PATTERN_LEN] = ri.pattern ? (uint32_t)strlen(ri.pattern) : 0;
  x->res[R_DURABLE] = (uint32_t)(uintptr_t)ri.durable;
  x->res[R_DURABLE_LEN] = ri.durable ? (uint32_t)strlen(ri.durable) : 0;
  x->res[R_KEY] = (uint32_t)(uintptr_t)ri.key.p;
  x->res[R_KEY_LEN] = ri.durable ? (uint32_t)ri.key.n : 0;
  return k;
}

WSX_EXPORT("wsx_route_info") int wsx_route_info(wsx_t *x, size_t n) {
  if (n > x->in_cap) return -1;
  return route_words(x, (wse_str_t){(const char *)x->in, n});
}

/* The Worker's one call per request, on a packed request (its handshake
 * headers): where it goes (the words of wsx_route_info; the key is a slice
 * of the input) and, unless an HTTP route takes it, what wsx_validate
 * answers (R_STATUS 101, or the rejection: the app's 404 for no route).
 * Returns WSE_ROUTE_NONE/WS/HTTP, or -1 on a malformed packing. */
WSX_EXPORT("wsx_route_validate")
int wsx_route_validate(wsx_t *x, size_t n, double now) {
  wse_request_t req;
  begin(x);
  if (unpack(x, n, &req, 0, 0) < 0) return -1;
  int k = route_words(x, req.target);
  if (k != WSE_ROUTE_HTTP) validate_unpacked(x, &req, now);
  return k;
}

/* Pointer to the session id (WSE_SID_LEN chars) of handle h, or 0. */
WSX_EXPORT("wsx_sid") const char *wsx_sid(wsx_t *x, uint32_t h) {
  wse_session_t *s = wse_app_session(x->app, h);
  if (!s) return 0;
  wse_sid_format(&s->id, x->sid);
  return x->sid;
}

/* Handle of the session whose id is in the input buffer [0, n), or -1. */
WSX_EXPORT("wsx_find") int wsx_find(wsx_t *x, size_t n) {
  wse_sid_t id;
  if (n > x->in_cap || wse_sid_parse((const char *)x->in, n, &id) < 0)
    return -1;
  wse_session_t *s = wse_app_find(x->app, &id);
  return s ? (int)s->handle : -1;
}

/* Send to a session by id from outside a handler (Rwf's Comms). Input: the
 * id (WSE_SID_LEN chars) then the payload [WSE_SID_LEN, n). */
WSX_EXPORT("wsx_send_to")
int wsx_send_to(wsx_t *x, unsigned opcode, size_t n) {
  wse_sid_t id;
  begin(x);
  if (n < WSE_SID_LEN || n > x->in_cap ||
      wse_sid_parse((const char *)x->in, WSE_SID_LEN, &id) < 0)
    return WSE_EINVAL;
  int r = wse_app_send_to(x->app, &id, opcode, x->in + WSE_SID_LEN,
                          n - WSE_SID_LEN);
  flush(x);
  return r;
}

/* Live sessions of this context (for hosts that free idle contexts). */
WSX_EXPORT("wsx_sessions") uint32_t wsx_sessions(wsx_t *x) {
  wse_app_stats_t st;
  wse_app_stats(x->app, &st);
  return (uint32_t)st.sessions;
}

/* Heap figures: bytes in used blocks, bytes of linear memory managed. */
WSX_EXPORT("wsx_heap_used") uint32_t wsx_heap_used(void) {
  return wsx_heap.used;
}
WSX_EXPORT("wsx_heap_size") uint32_t wsx_heap_size(void) {
  return wsx_heap.init ? wsx_heap.mem_end - wsx_heap.start : 0;
}
