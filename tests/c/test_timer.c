/* test_timer.c — app timers: the (due, seq) heap behind one host clock
 * (wse_app_timer_next / wse_app_timers_run), replace and cancel, per-room
 * limits and argument checks, handlers by key prefix and what they may do
 * (broadcast, set timers that wait for the next pass), TIMER actions and
 * their records reloaded into a fresh app (a Durable Object's wake),
 * malformed records, allocation failures, and a randomised comparison with
 * a naive model. */
#include <stdarg.h>

#include "apphost.h"

/* ---- an app whose HTTP route drives timers ------------------------------ */

typedef struct fired {
  char room[WSE_TOPIC_MAX + 1], key[WSE_TIMER_KEY_MAX + 1], data[64];
  size_t data_n;
  uint64_t due;
} fired_t;

static fired_t fired[2048];
static size_t n_fired, n_other;
static int last_set_rc;
static char last_get_data[64];

static void on_t(wse_ctx_t *c, const wse_timer_t *t) {
  fired_t *f = &fired[n_fired < 2048 ? n_fired++ : 2047];
  snprintf(f->room, sizeof f->room, "%.*s", (int)t->room.n, t->room.p);
  snprintf(f->key, sizeof f->key, "%.*s", (int)t->key.n, t->key.p);
  f->data_n = t->len < sizeof f->data ? t->len : sizeof f->data;
  if (t->len) memcpy(f->data, t->data, f->data_n);
  f->due = t->due_ms;
  CHECK(wse_ctx_session(c) == NULL);
  CHECK(*(int *)wse_ctx_user(c) == 7);
  if (t->key.n == 7 && !memcmp(t->key.p, "t:again", 7)) /* itself, at once */
    last_set_rc = wse_timer_set(c, t->room.p, t->room.n, "t:again", 7, 0, "x", 1);
  if (t->key.n == 7 && !memcmp(t->key.p, "t:bcast", 7))
    wse_broadcast(c, t->room.p, t->room.n, WSE_OP_TEXT, t->data, t->len, NULL, 0);
  if (t->key.n == 8 && !memcmp(t->key.p, "t:cancel", 8))
    last_set_rc = wse_timer_cancel(c, t->room.p, t->room.n, "t:other", 7);
}

static void on_other(wse_ctx_t *c, const wse_timer_t *t) {
  (void)c, (void)t;
  n_other++;
}

/* Body: "set ROOM KEY DELAY [DATA]", "cancel ROOM KEY", "count ROOM". */
static void cmd(wse_ctx_t *c, const wse_request_t *req, const wse_params_t *prm,
                const uint8_t *body, size_t n) {
  char b[256], op[16] = "", room[160] = "", key[80] = "", data[128] = "";
  unsigned long long delay = 0;
  char out[32];
  long rc = WSE_EINVAL;
  (void)req, (void)prm;
  snprintf(b, sizeof b, "%.*s", (int)n, (const char *)body);
  int k = sscanf(b, "%15s %159s %79s %llu %127s", op, room, key, &delay, data);
  if (!strcmp(op, "set") && k >= 4)
    rc = wse_timer_set(c, room, strlen(room), key, strlen(key), delay, data, strlen(data));
  else if (!strcmp(op, "cancel") && k >= 3)
    rc = wse_timer_cancel(c, room, strlen(room), key, strlen(key));
  else if (!strcmp(op, "count") && k >= 2)
    rc = (long)wse_timer_count(c, room, strlen(room));
  else if (!strcmp(op, "get") && k >= 3) { /* due time, after checking the slices */
    wse_timer_t t;
    rc = wse_timer_get(c, room, strlen(room), key, strlen(key), &t);
    if (rc == WSE_OK) {
      CHECK(t.room.n == strlen(room) && !memcmp(t.room.p, room, t.room.n));
      CHECK(t.key.n == strlen(key) && !memcmp(t.key.p, key, t.key.n));
      snprintf(last_get_data, sizeof last_get_data, "%.*s", (int)t.len, (const char *)t.data);
      rc = (long)t.due_ms;
    }
    CHECK_EQ(wse_timer_get(c, room, strlen(room), key, strlen(key), NULL), rc > 0 ? WSE_OK : rc);
  }
  wse_respond(c, 200, out, (size_t)snprintf(out, sizeof out, "%ld", rc));
}

static void room_join(wse_ctx_t *c) { wse_join(c, "r1", 2); }

static int timer_app_init(wse_app_t *app) {
  static int seven = 7;
  wse_http_route_t h = {"POST", "/t", cmd, NULL, NULL, NULL};
  wse_route_t r = {0};
  r.pattern = "/ws";
  r.on_open = room_join;
  int rc = wse_app_http_route(app, &h);
  if (rc >= 0) rc = wse_app_route(app, &r);
  if (rc >= 0) rc = wse_app_timer_handler(app, "t:", on_t, &seven);
  if (rc >= 0) rc = wse_app_timer_handler(app, "", on_other, NULL);
  return rc < 0 ? rc : WSE_OK;
}

static wse_app_t *timer_app(const wse_allocator_t *al) {
  wse_app_t *app = NULL;
  if (wse_app_new(&app, al, NULL) != WSE_OK) return NULL;
  if (timer_app_init(app) != WSE_OK) {
    wse_app_free(app);
    return NULL;
  }
  return app;
}

/* Run one command at host time `now`; returns the handler's number. */
static long run_cmd(wse_app_t *app, uint64_t now, const char *fmt, ...) {
  char body[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(body, sizeof body, fmt, ap);
  va_end(ap);
  req_t q;
  req_init(&q, "POST", "/t");
  req_hdr(&q, "Host", "example.com");
  wse_response_t resp;
  if (wse_app_http(app, &q.r, (const uint8_t *)body, strlen(body), now, &resp) != 200)
    return -9999;
  char tmp[32];
  snprintf(tmp, sizeof tmp, "%.*s", (int)resp.body_len, resp.body);
  return atol(tmp);
}

/* The TIMER action at recs[i]: set (op 1) of (room, key)? */
static int rec_is_timer(size_t i, unsigned op, const char *room, const char *key) {
  if (i >= n_recs || recs[i].type != WSE_ACT_TIMER || recs[i].op != op) return 0;
  const uint8_t *p = recs[i].frame;
  size_t rn = strlen(room), kn = strlen(key);
  if (recs[i].frame_len < 3 + rn + kn || p[0] != 1 || p[1] != rn ||
      memcmp(p + 2, room, rn) || p[2 + rn] != kn || memcmp(p + 3 + rn, key, kn))
    return 0;
  /* data: the id, a slice of the record after its version byte */
  return recs[i].len == 2 + rn + kn && !memcmp(recs[i].data, p + 1, recs[i].len) &&
         recs[i].frame_len == (op ? 3 + rn + kn + 10 + (size_t)(p[3 + rn + kn + 8] | p[3 + rn + kn + 9] << 8)
                                  : 3 + rn + kn);
}

static void reset_fired(void) { n_fired = 0, n_other = 0; }

/* ---- tests ------------------------------------------------------------- */

static void test_order_and_next(void) {
  wse_app_t *app = timer_app(&t_allocator);
  CHECK(app != NULL);
  reset_fired();
  CHECK_EQ(wse_app_timer_next(app), 0);
  CHECK_EQ(wse_app_timers_run(app, 1 << 30), 0);
  CHECK_EQ(run_cmd(app, 5000, "set r1 t:a 300 A"), WSE_OK);
  CHECK_EQ(drain(app), 1);
  CHECK(rec_is_timer(0, 1, "r1", "t:a"));
  /* the record: due 5300, data "A" */
  CHECK_EQ(recs[0].frame_len, 3 + 2 + 3 + 10 + 1);
  uint64_t due = 0;
  for (int i = 7; i >= 0; i--) due = due << 8 | recs[0].frame[8 + i];
  CHECK_EQ(due, 5300);
  CHECK_EQ(recs[0].frame[18], 'A');
  CHECK_EQ(run_cmd(app, 5000, "set r1 t:b 100 B"), WSE_OK);
  CHECK_EQ(run_cmd(app, 5000, "set r2 t:c 200 C"), WSE_OK);
  drain(app);
  CHECK_EQ(wse_app_timer_next(app), 5100);
  CHECK_EQ(run_cmd(app, 5000, "count r1"), 2);
  CHECK_EQ(run_cmd(app, 5000, "count r2"), 1);
  CHECK_EQ(run_cmd(app, 5000, "count nope"), 0);
  CHECK_EQ(run_cmd(app, 5000, "get r1 t:a"), 5300);
  CHECK(!strcmp(last_get_data, "A"));
  CHECK_EQ(run_cmd(app, 5000, "get r2 t:c"), 5200);
  CHECK_EQ(run_cmd(app, 5000, "get r2 t:a"), WSE_ENOTFOUND);
  CHECK_EQ(run_cmd(app, 5000, "get zz t:a"), WSE_ENOTFOUND);
  wse_app_stats_t st;
  wse_app_stats(app, &st);
  CHECK_EQ(st.timers, 3);
  CHECK_EQ(st.rooms, 0); /* timers make no members */

  CHECK_EQ(wse_app_timers_run(app, 5099), 0);
  CHECK_EQ(wse_app_timers_run(app, 5150), 1);
  CHECK_EQ(n_fired, 1);
  CHECK(!strcmp(fired[0].key, "t:b") && !strcmp(fired[0].room, "r1"));
  CHECK_MEM(fired[0].data, fired[0].data_n, "B", 1);
  CHECK_EQ(fired[0].due, 5100);
  CHECK_EQ(drain(app), 1);
  CHECK(rec_is_timer(0, 0, "r1", "t:b")); /* the host deletes its record */
  CHECK_EQ(wse_app_timer_next(app), 5200);
  CHECK_EQ(wse_app_timers_run(app, 9999), 2);
  CHECK_EQ(n_fired, 3);
  CHECK(!strcmp(fired[1].key, "t:c") && !strcmp(fired[2].key, "t:a"));
  CHECK_EQ(wse_app_timer_next(app), 0);
  wse_app_stats(app, &st);
  CHECK_EQ(st.timers, 0);
  drain(app);

  /* the same due time: set order; replacing a key moves it to the end */
  reset_fired();
  CHECK_EQ(run_cmd(app, 1000, "set r1 t:1 10 one"), WSE_OK);
  CHECK_EQ(run_cmd(app, 1000, "set r1 t:2 10 two"), WSE_OK);
  CHECK_EQ(run_cmd(app, 1000, "set r1 t:3 10 three"), WSE_OK);
  CHECK_EQ(run_cmd(app, 1000, "set r1 t:1 10 uno"), WSE_OK);
  CHECK_EQ(run_cmd(app, 1000, "count r1"), 3);
  drain(app);
  CHECK_EQ(wse_app_timers_run(app, 1010), 3);
  CHECK(!strcmp(fired[0].key, "t:2") && !strcmp(fired[1].key, "t:3") &&
        !strcmp(fired[2].key, "t:1"));
  CHECK_MEM(fired[2].data, fired[2].data_n, "uno", 3);
  drain(app);

  /* replacing with a later due time reorders; cancel */
  reset_fired();
  CHECK_EQ(run_cmd(app, 1000, "set r1 t:x 10"), WSE_OK);
  CHECK_EQ(run_cmd(app, 1000, "set r1 t:y 20"), WSE_OK);
  CHECK_EQ(run_cmd(app, 1000, "set r1 t:x 30"), WSE_OK);
  CHECK_EQ(wse_app_timer_next(app), 1020);
  CHECK_EQ(run_cmd(app, 1000, "cancel r1 t:y"), WSE_OK);
  CHECK_EQ(drain(app), 4);
  CHECK(rec_is_timer(3, 0, "r1", "t:y"));
  CHECK_EQ(run_cmd(app, 1000, "cancel r1 t:y"), WSE_ENOTFOUND);
  CHECK_EQ(run_cmd(app, 1000, "cancel r9 t:y"), WSE_ENOTFOUND);
  CHECK_EQ(wse_app_timer_next(app), 1030);
  CHECK_EQ(wse_app_timers_run(app, 2000), 1);
  CHECK(!strcmp(fired[0].key, "t:x") && fired[0].data_n == 0);
  drain(app);
  CHECK(frames_ok);
  wse_app_free(app);
}

static void test_limits(void) {
  wse_app_t *app = timer_app(&t_allocator);
  char key65[66], room129[130];
  memset(key65, 'k', 65), key65[65] = 0;
  memset(room129, 'r', 129), room129[129] = 0;
  CHECK_EQ(run_cmd(app, 1000, "set r1 %.64s 5", key65), WSE_OK);
  CHECK_EQ(run_cmd(app, 1000, "set r1 %s 5", key65), WSE_EINVAL);
  CHECK_EQ(run_cmd(app, 1000, "set %.128s k 5", room129), WSE_OK);
  CHECK_EQ(run_cmd(app, 1000, "set %s k 5", room129), WSE_EINVAL);
  CHECK_EQ(run_cmd(app, 1000, "set r1 \xff\xfe 5"), WSE_EINVAL); /* not UTF-8 */
  CHECK_EQ(run_cmd(app, 1000, "set r1 k 1099511627776"), WSE_OK); /* 2^40 */
  CHECK_EQ(run_cmd(app, 1000, "set r1 k 1099511627777"), WSE_EINVAL);
  drain(app);

  wse_app_free(app);

  /* 1,024 per room; another room is not affected; a cancel makes room */
  app = timer_app(&t_allocator);
  for (int i = 0; i < WSE_TIMERS_MAX; i++)
    if (run_cmd(app, 1000, "set full k%d %d", i, i) != WSE_OK) CHECK(0);
  drain(app);
  CHECK_EQ(run_cmd(app, 1000, "count full"), WSE_TIMERS_MAX);
  CHECK_EQ(run_cmd(app, 1000, "set full k-extra 5"), WSE_ENOSPC);
  CHECK_EQ(run_cmd(app, 1000, "set full k7 50"), WSE_OK); /* replace: fine */
  CHECK_EQ(run_cmd(app, 1000, "set other k-extra 5"), WSE_OK);
  CHECK_EQ(run_cmd(app, 1000, "cancel full k3"), WSE_OK);
  CHECK_EQ(run_cmd(app, 1000, "set full k-extra 5"), WSE_OK);
  CHECK_EQ(run_cmd(app, 1000, "set full k-more 5"), WSE_ENOSPC);
  drain(app);
  /* a room refused outright leaves no slot behind */
  CHECK_EQ(run_cmd(app, 1000, "set fresh \xff 5"), WSE_EINVAL);
  CHECK_EQ(run_cmd(app, 1000, "count fresh"), 0);
  reset_fired();
  CHECK_EQ(wse_app_timers_run(app, 1u << 20), WSE_TIMERS_MAX + 1);
  CHECK_EQ(n_other, WSE_TIMERS_MAX + 1); /* "k…" keys: the catch-all handler */
  CHECK_EQ(n_fired, 0);
  drain(app);
  CHECK_EQ(wse_app_timer_next(app), 0);

  /* timer data: up to WSE_TIMER_DATA_MAX bytes, kept in the record */
  wse_app_free(app);
  app = timer_app(&t_allocator);
  wse_app_t *b = timer_app(&t_allocator);
  static uint8_t big[WSE_TIMER_DATA_MAX + 1];
  memset(big, 'd', sizeof big);
  {
    /* a record with the largest data, made by hand and loaded */
    static uint8_t rec[3 + 2 + 3 + 10 + WSE_TIMER_DATA_MAX + 1];
    size_t n = 0;
    rec[n++] = 1, rec[n++] = 2, rec[n++] = 'r', rec[n++] = '1';
    rec[n++] = 3, rec[n++] = 't', rec[n++] = ':', rec[n++] = 'z';
    uint64_t due = 777;
    for (int i = 0; i < 8; i++) rec[n++] = (uint8_t)(due >> (8 * i));
    rec[n++] = WSE_TIMER_DATA_MAX & 0xff, rec[n++] = WSE_TIMER_DATA_MAX >> 8;
    memcpy(rec + n, big, WSE_TIMER_DATA_MAX);
    CHECK_EQ(wse_app_timer_load(b, rec, n + WSE_TIMER_DATA_MAX), WSE_OK);
    rec[n - 2] = (WSE_TIMER_DATA_MAX + 1) & 0xff, rec[n - 1] = (WSE_TIMER_DATA_MAX + 1) >> 8;
    CHECK_EQ(wse_app_timer_load(b, rec, n + WSE_TIMER_DATA_MAX + 1), WSE_EINVAL);
    CHECK_EQ(wse_app_timer_next(b), 777);
    CHECK_EQ(drain(b), 0); /* a load queues nothing */
  }
  /* handlers: the prefix must be given, at most 8 */
  CHECK_EQ(wse_app_timer_handler(app, NULL, on_t, NULL), WSE_EINVAL);
  CHECK_EQ(wse_app_timer_handler(app, "x", NULL, NULL), WSE_EINVAL);
  for (int i = 2; i < 8; i++) CHECK_EQ(wse_app_timer_handler(app, "x", on_other, NULL), WSE_OK);
  CHECK_EQ(wse_app_timer_handler(app, "x", on_other, NULL), WSE_ENOSPC);
  wse_app_free(app);
  wse_app_free(b);
}

static void test_handlers_act(void) {
  wse_app_t *app = timer_app(&t_allocator);
  int32_t h1 = ws_connect(app, "/ws", 1, 100), h2 = ws_connect(app, "/ws", 2, 100);
  CHECK(h1 >= 0 && h2 >= 0);
  drain(app);
  reset_fired();
  /* broadcast from a timer to the room's members */
  CHECK_EQ(run_cmd(app, 1000, "set r1 t:bcast 50 hello"), WSE_OK);
  drain(app);
  CHECK_EQ(wse_app_timers_run(app, 1050), 1);
  CHECK_EQ(drain(app), 2);
  CHECK(rec_is_timer(0, 0, "r1", "t:bcast"));
  CHECK_EQ(recs[1].type, WSE_ACT_BROADCAST);
  CHECK_EQ(recs[1].n_rcpt, 2);
  CHECK_STR(recs[1].data, recs[1].len, "hello");

  /* a timer that sets itself again at once runs at the next pass, not in
   * this one (no endless pass) */
  reset_fired();
  CHECK_EQ(run_cmd(app, 2000, "set r1 t:again 0"), WSE_OK);
  drain(app);
  CHECK_EQ(wse_app_timer_next(app), 2000);
  CHECK_EQ(wse_app_timers_run(app, 2000), 1);
  CHECK_EQ(last_set_rc, WSE_OK);
  CHECK_EQ(drain(app), 2);
  CHECK(rec_is_timer(0, 0, "r1", "t:again") && rec_is_timer(1, 1, "r1", "t:again"));
  CHECK_EQ(wse_app_timer_next(app), 2000);
  CHECK_EQ(wse_app_timers_run(app, 2001), 1);
  CHECK_EQ(n_fired, 2);
  CHECK_EQ(run_cmd(app, 2001, "cancel r1 t:again"), WSE_OK);
  drain(app);

  /* a timer cancelling another due in the same pass: it never runs */
  reset_fired();
  CHECK_EQ(run_cmd(app, 3000, "set r1 t:cancel 5"), WSE_OK);
  CHECK_EQ(run_cmd(app, 3000, "set r1 t:other 6"), WSE_OK);
  drain(app);
  CHECK_EQ(wse_app_timers_run(app, 4000), 1);
  CHECK_EQ(last_set_rc, WSE_OK);
  CHECK_EQ(n_fired, 1);
  CHECK_EQ(wse_app_timer_next(app), 0);
  drain(app);

  /* no handler for a key: dropped (removed, nothing runs) */
  wse_app_t *bare = NULL;
  CHECK_EQ(wse_app_new(&bare, &t_allocator, NULL), WSE_OK);
  wse_http_route_t h = {"POST", "/t", cmd, NULL, NULL, NULL};
  wse_app_http_route(bare, &h);
  CHECK_EQ(run_cmd(bare, 10, "set r z 1"), WSE_OK);
  drain(bare);
  CHECK_EQ(wse_app_timers_run(bare, 11), 1);
  CHECK_EQ(drain(bare), 1);
  CHECK_EQ(wse_app_timer_next(bare), 0);
  wse_app_free(bare);
  CHECK(frames_ok);
  wse_app_free(app);
}

/* A host that stores records and loads them into a new app (a wake). */
static void test_records(void) {
  wse_app_t *app = timer_app(&t_allocator);
  uint8_t store[8][128];
  size_t store_n[8], n_store = 0;
  CHECK_EQ(run_cmd(app, 1000, "set room.a t:first 100 one"), WSE_OK);
  CHECK_EQ(run_cmd(app, 1000, "set room.a t:second 100 two"), WSE_OK);
  CHECK_EQ(run_cmd(app, 1000, "set room.b t:third 50 three"), WSE_OK);
  CHECK_EQ(drain(app), 3);
  for (size_t i = 0; i < n_recs; i++) {
    memcpy(store[n_store], recs[i].frame, recs[i].frame_len);
    store_n[n_store++] = recs[i].frame_len;
  }
  wse_app_free(app);

  app = timer_app(&t_allocator);
  for (size_t i = 0; i < n_store; i++) CHECK_EQ(wse_app_timer_load(app, store[i], store_n[i]), WSE_OK);
  CHECK_EQ(drain(app), 0);
  CHECK_EQ(wse_app_timer_next(app), 1050);
  CHECK_EQ(run_cmd(app, 1000, "count room.a"), 2);
  /* loading the same record again replaces, never duplicates */
  CHECK_EQ(wse_app_timer_load(app, store[0], store_n[0]), WSE_OK);
  CHECK_EQ(run_cmd(app, 1000, "count room.a"), 2);
  reset_fired();
  CHECK_EQ(wse_app_timers_run(app, 5000), 3);
  CHECK(!strcmp(fired[0].key, "t:third") && !strcmp(fired[0].room, "room.b"));
  CHECK_MEM(fired[0].data, fired[0].data_n, "three", 5);
  /* same due: load order (second was loaded before first was reloaded) */
  CHECK(!strcmp(fired[1].key, "t:second") && !strcmp(fired[2].key, "t:first"));
  CHECK_EQ(fired[2].due, 1100);
  drain(app);

  /* malformed records */
  uint8_t r[128];
  memcpy(r, store[0], store_n[0]);
  size_t n = store_n[0];
  CHECK_EQ(wse_app_timer_load(app, NULL, 0), WSE_EINVAL);
  CHECK_EQ(wse_app_timer_load(app, r, 0), WSE_EINVAL);
  CHECK_EQ(wse_app_timer_load(app, r, 1), WSE_EINVAL);
  for (size_t k = 2; k < n; k++) CHECK_EQ(wse_app_timer_load(app, r, k), WSE_EINVAL);
  r[n] = 'x';
  CHECK_EQ(wse_app_timer_load(app, r, n + 1), WSE_EINVAL); /* trailing byte */
  r[0] = 2;
  CHECK_EQ(wse_app_timer_load(app, r, n), WSE_EINVAL); /* version */
  r[0] = 1, r[1] = 0;
  CHECK_EQ(wse_app_timer_load(app, r, n), WSE_EINVAL); /* empty room */
  memcpy(r, store[0], n);
  r[2] = 0xff;
  CHECK_EQ(wse_app_timer_load(app, r, n), WSE_EINVAL); /* room not UTF-8 */
  CHECK_EQ(wse_app_timer_next(app), 0);
  CHECK_EQ(run_cmd(app, 1000, "count \xffoom.a"), 0);
  wse_app_free(app);
}

static void test_alloc_failures(void) {
  for (long fail = 1; fail < 40; fail++) {
    counting_t cnt = {0};
    wse_allocator_t al = {c_alloc, c_realloc, c_free, &cnt};
    wse_app_t *app = timer_app(&al);
    if (!app) continue;
    long base = cnt.allocs;
    cnt.fail_at = base + fail;
    for (int i = 0; i < 12; i++) {
      long rc = run_cmd(app, 1000, "set r%d t:k%d %d data", i % 3, i, i);
      CHECK(rc == WSE_OK || rc == WSE_ENOMEM || rc == -9999);
      drain(app);
    }
    /* whatever got in runs once (a pass that runs out of memory stops;
     * the rest wait for the next), and the app frees everything */
    for (int pass = 0; pass < 3 && wse_app_timer_next(app); pass++) {
      wse_app_timers_run(app, 1 << 20);
      drain(app);
    }
    CHECK_EQ(wse_app_timer_next(app), 0);
    wse_app_free(app);
    CHECK_EQ(cnt.live, 0);
    CHECK_EQ(cnt.bad_sizes, 0);
  }
}

/* Random set / cancel / run against a naive list: the same timers run in
 * the same order. */
static void test_model(void) {
  typedef struct { char room[8], key[8]; uint64_t due, seq; int live; } m_t;
  static m_t m[256];
  size_t nm = 0;
  uint64_t seq = 0, now = 1000;
  uint32_t x = 12345;
  wse_app_t *app = timer_app(&t_allocator);
  int bad = 0;
  for (int step = 0; step < 20000 && !bad; step++) {
    x = x * 1103515245u + 12345u;
    unsigned r = (x >> 8) % 100;
    char room[8], key[8];
    snprintf(room, sizeof room, "r%u", (x >> 16) % 3);
    snprintf(key, sizeof key, "t:%u", (x >> 20) % 40);
    size_t i;
    for (i = 0; i < nm; i++)
      if (m[i].live && !strcmp(m[i].room, room) && !strcmp(m[i].key, key)) break;
    if (r < 55) {
      uint64_t delay = (x >> 4) % 500;
      if (run_cmd(app, now, "set %s %s %llu", room, key, (unsigned long long)delay) != WSE_OK) bad = 1;
      if (i == nm) {
        if (nm == 256) break;
        nm++;
      }
      snprintf(m[i].room, sizeof m[i].room, "%s", room);
      snprintf(m[i].key, sizeof m[i].key, "%s", key);
      m[i].due = now + delay;
      m[i].seq = ++seq;
      m[i].live = 1;
    } else if (r < 70) {
      long rc = run_cmd(app, now, "cancel %s %s", room, key);
      if (rc != (i < nm ? WSE_OK : WSE_ENOTFOUND)) bad = 2;
      if (i < nm) m[i].live = 0;
    } else {
      now += (x >> 3) % 300;
      reset_fired();
      long ran = wse_app_timers_run(app, now);
      /* the model: due <= now, by (due, seq) */
      size_t k = 0;
      for (;;) {
        size_t best = nm;
        for (size_t j = 0; j < nm; j++)
          if (m[j].live && m[j].due <= now &&
              (best == nm || m[j].due < m[best].due ||
               (m[j].due == m[best].due && m[j].seq < m[best].seq)))
            best = j;
        if (best == nm) break;
        if (k >= n_fired || strcmp(fired[k].room, m[best].room) ||
            strcmp(fired[k].key, m[best].key) || fired[k].due != m[best].due)
          bad = 3;
        m[best].live = 0;
        k++;
      }
      if ((size_t)ran != k || n_fired != k) bad = 4;
    }
    drain(app);
    uint64_t next = 0;
    for (size_t j = 0; j < nm; j++)
      if (m[j].live && (!next || m[j].due < next)) next = m[j].due;
    if (wse_app_timer_next(app) != (next ? next : 0)) bad = 5;
  }
  CHECK_EQ(bad, 0);
  wse_app_free(app);
}

int main(void) {
  (void)sid_str, (void)ws_text, (void)http; /* apphost.h helpers unused here */
  test_order_and_next();
  test_limits();
  test_handlers_act();
  test_records();
  test_alloc_failures();
  test_model();
  TEST_REPORT();
}
