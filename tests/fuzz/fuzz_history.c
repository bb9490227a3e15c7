/* fuzz_history.c — libFuzzer target for history records (what a Durable
 * Object reads back from its storage: wse_app_history_load). The input is
 * a list of [u8 length][record] entries; an independent reading of the
 * layout in wsedge/app.h (u8 1, u8 room length 1..128, room, u64 seq LE,
 * event; room and event UTF-8) and a model of each room's last number
 * (loads must come in increasing order) must agree with the loader on
 * every record, and WSE_HISTORY_MAX bounds what a room keeps. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "wsedge.h"

static void *f_alloc(void *ud, size_t n) { (void)ud; return malloc(n ? n : 1); }
static void *f_realloc(void *ud, void *p, size_t o, size_t n) { (void)ud; (void)o; return realloc(p, n ? n : 1); }
static void f_free(void *ud, void *p, size_t n) { (void)ud; (void)n; free(p); }

typedef struct { uint8_t name[255]; size_t n; uint64_t last; } room_m;
static room_m rooms[256];
static size_t n_rooms;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wse_allocator_t al = {f_alloc, f_realloc, f_free, NULL};
  wse_app_t *app;
  if (wse_app_new(&app, &al, NULL) != WSE_OK) abort();
  n_rooms = 0;
  size_t i = 0;
  while (i < size && n_rooms < 256) {
    size_t len = data[i++];
    if (len > size - i) len = size - i;
    const uint8_t *p = data + i;
    i += len;
    int ok = len >= 2 && p[0] == 1 && p[1] >= 1 && p[1] <= WSE_TOPIC_MAX && len >= 10u + p[1] &&
             wse_utf8_valid(p + 2, p[1]) && wse_utf8_valid(p + 10 + p[1], len - 10 - p[1]);
    room_m *m = NULL;
    uint64_t seq = 0;
    if (ok) {
      for (int b = 7; b >= 0; b--) seq = seq << 8 | p[2 + p[1] + b];
      for (size_t k = 0; k < n_rooms; k++)
        if (rooms[k].n == p[1] && !memcmp(rooms[k].name, p + 2, p[1])) m = &rooms[k];
      if (m && seq <= m->last) ok = 0;
      if (!m && seq == 0) ok = 0; /* numbers start at 1 */
    }
    int rc = wse_app_history_load(app, p, len);
    if ((rc == WSE_OK) != ok || (rc != WSE_OK && rc != WSE_EINVAL)) {
      if (getenv("FUZZ_DEBUG")) fprintf(stderr, "rc=%d ok=%d len=%zu rn=%d seq=%llu\n", rc, ok, len, len > 1 ? p[1] : -1, (unsigned long long)seq);
      abort();
    }
    if (ok) {
      if (!m) {
        m = &rooms[n_rooms++];
        memcpy(m->name, p + 2, p[1]);
        m->n = p[1];
      }
      m->last = seq;
    }
  }
  wse_app_free(app);
  return 0;
}
