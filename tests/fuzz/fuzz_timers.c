/* fuzz_timers.c — libFuzzer target for timer records (wse_app_timer_load,
 * what a Durable Object reads back from its storage) and the timer heap.
 * The input is a list of [u8 length][record] entries and [0xFF][u8 t]
 * passes; every record the loader accepts is kept in a naive model
 * (replace by (room, key)), every pass must run exactly the model's due
 * timers in (due, load order) with their data, and wse_app_timer_next must
 * be the model's earliest. Rejected records change nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "wsedge.h"

typedef struct {
  uint8_t id[2 + 2 * 255];
  size_t idn;
  const uint8_t *data;
  size_t dn;
  uint64_t due, seq;
} m_t;

static m_t m[256];
static size_t nm, k_run;
static uint64_t seq;
static int order_bad;
static const m_t *want[256];

static void *f_alloc(void *ud, size_t n) { (void)ud; return malloc(n ? n : 1); }
static void *f_realloc(void *ud, void *p, size_t o, size_t n) { (void)ud; (void)o; return realloc(p, n ? n : 1); }
static void f_free(void *ud, void *p, size_t n) { (void)ud; (void)n; free(p); }

static void on_timer(wse_ctx_t *c, const wse_timer_t *t) {
  (void)c;
  const m_t *e = k_run < 256 ? want[k_run] : NULL;
  k_run++;
  if (!e || t->room.n != e->id[0] || memcmp(t->room.p, e->id + 1, t->room.n) ||
      t->key.n != e->id[1 + e->id[0]] ||
      memcmp(t->key.p, e->id + 2 + e->id[0], t->key.n) || t->len != e->dn ||
      (t->len && memcmp(t->data, e->data, t->len)) || t->due_ms != e->due)
    order_bad = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wse_allocator_t al = {f_alloc, f_realloc, f_free, NULL};
  wse_app_t *app;
  if (wse_app_new(&app, &al, NULL) != WSE_OK) abort();
  if (wse_app_timer_handler(app, "", on_timer, NULL) != WSE_OK) abort();
  nm = 0;
  seq = 0;
  size_t i = 0;
  while (i < size) {
    uint8_t len = data[i++];
    if (len == 0xFF) { /* a pass at time t (small: collisions of due times) */
      uint64_t now = i < size ? data[i++] : 0;
      size_t nw = 0;
      for (;;) { /* the model's due timers, earliest first */
        size_t best = nm;
        for (size_t j = 0; j < nm; j++) {
          int taken = 0;
          for (size_t w = 0; w < nw; w++) taken |= want[w] == &m[j];
          if (taken || m[j].due > now) continue;
          if (best == nm || m[j].due < m[best].due ||
              (m[j].due == m[best].due && m[j].seq < m[best].seq))
            best = j;
        }
        if (best == nm) break;
        want[nw++] = &m[best];
      }
      k_run = 0;
      order_bad = 0;
      long ran = wse_app_timers_run(app, now);
      if (ran != (long)nw || k_run != nw || order_bad) abort();
      size_t kept = 0; /* drop what ran */
      for (size_t j = 0; j < nm; j++) {
        int gone = 0;
        for (size_t w = 0; w < nw; w++) gone |= want[w] == &m[j];
        if (!gone) m[kept++] = m[j];
      }
      nm = kept;
    } else {
      if (nm == 256) break; /* the model's capacity: the rest is ignored */
      if (len > size - i) len = (uint8_t)(size - i);
      const uint8_t *rec = data + i;
      i += len;
      int rc = wse_app_timer_load(app, rec, len);
      if (rc != WSE_OK) {
        if (rc != WSE_EINVAL) abort(); /* < 1,024 per room here */
      } else {
        /* accepted: the layout must be what wsedge/app.h says */
        size_t rn = rec[1], kn = rec[2 + rn];
        size_t idn = 2 + rn + kn, dn = (size_t)rec[3 + rn + kn + 8] |
                                       (size_t)rec[3 + rn + kn + 9] << 8;
        if (rec[0] != 1 || !rn || rn > WSE_TOPIC_MAX || !kn ||
            kn > WSE_TIMER_KEY_MAX || 1 + idn + 10 + dn != len)
          abort();
        uint64_t due = 0;
        for (int b = 7; b >= 0; b--) due = due << 8 | rec[3 + rn + kn + b];
        size_t j;
        for (j = 0; j < nm; j++)
          if (m[j].idn == idn && !memcmp(m[j].id, rec + 1, idn)) break;
        if (j == nm) nm++;
        memcpy(m[j].id, rec + 1, idn);
        m[j].idn = idn;
        m[j].data = rec + 1 + idn + 10;
        m[j].dn = dn;
        m[j].due = due ? due : 1; /* due 0 reads as 1: 0 means "none" */
        m[j].seq = ++seq;
      }
    }
    uint64_t next = 0;
    for (size_t j = 0; j < nm; j++)
      if (!next || m[j].due < next) next = m[j].due;
    if (wse_app_timer_next(app) != next) abort();
  }
  wse_app_free(app);
  return 0;
}
