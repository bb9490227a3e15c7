/* fuzz_app.c — libFuzzer target driving the example app (echo + chat), plus
 * a topics route of its own (/t/:a: each message joins, leaves or
 * broadcasts to topics, several per session), the way a host would: the
 * input is a script of upgrades, opens, text/binary messages, closes, HTTP
 * pushes, restores from the attachments the app produced (sometimes
 * mutated), and engine errors; the actions are drained after every call, as
 * hosts do. Checks the promises the hosts rely on: broadcast recipients are
 * distinct live members of the topic, ATTACH only for live sessions, always
 * decodable and equal to the session (id, route, topics in join order, user
 * blob), frames are well formed, restores never yield a partial session and
 * rebuild every topic, the membership lists agree with the sessions' topics
 * and the room counts, history and timer records are well formed and load
 * back, and nothing leaks (LeakSanitizer). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "wsedge.h"

static void *f_alloc(void *ud, size_t n) { (void)ud; return malloc(n ? n : 1); }
static void *f_realloc(void *ud, void *p, size_t o, size_t n) { (void)ud; (void)o; return realloc(p, n ? n : 1); }
static void f_free(void *ud, void *p, size_t n) { (void)ud; (void)n; free(p); }
static const wse_allocator_t fa = {f_alloc, f_realloc, f_free, NULL};

#define MAXH 16
#define MAXATT 32

typedef struct {
  const uint8_t *p;
  size_t n, i;
} rd_t;

static unsigned take(rd_t *r) { return r->i < r->n ? r->p[r->i++] : 0; }

/* ---- the topics route: a message is a list of commands ------------------
 * byte c: c % 6 = 0 join, 1 leave that topic, 2 leave all, 3 broadcast,
 * 4 broadcast except self, 5 set the user blob; the topic is "t" + the
 * next byte % 24 (so 24 names for 16 slots). */

static int same(wse_str_t a, const char *p, size_t n) {
  return a.n == n && memcmp(a.p, p, n) == 0;
}

static int member_of(wse_ctx_t *c, const char *t, size_t n) {
  wse_str_t x;
  for (size_t i = 0; wse_ctx_topic(c, i, &x) == WSE_OK; i++)
    if (same(x, t, n)) return 1;
  return 0;
}

static void topics_message(wse_ctx_t *c, unsigned op, const uint8_t *p, size_t n) {
  wse_session_t *s = wse_ctx_session(c);
  (void)op;
  for (size_t i = 0; i + 1 < n; i += 2) {
    char t[4];
    size_t tn = (size_t)snprintf(t, sizeof t, "t%u", p[i + 1] % 24u);
    unsigned had = s->n_topics;
    int in = member_of(c, t, tn), rc;
    size_t cnt = wse_room_count(c, t, tn);
    switch (p[i] % 6) {
    case 0:
      rc = wse_join(c, t, tn);
      if (in ? rc != WSE_OK || s->n_topics != had /* joining twice: no-op */
             : had == WSE_TOPICS_MAX ? rc != WSE_ENOSPC || s->n_topics != had
                                     : rc != WSE_OK || s->n_topics != had + 1)
        abort();
      if (!member_of(c, t, tn) && rc == WSE_OK) abort();
      if (wse_room_count(c, t, tn) != cnt + (!in && rc == WSE_OK)) abort();
      if (!in && rc == WSE_OK) { /* the new topic is the last one */
        wse_str_t x;
        if (wse_ctx_topic(c, had, &x) != WSE_OK || !same(x, t, tn)) abort();
      }
      break;
    case 1:
      rc = wse_leave_topic(c, t, tn);
      if (rc != (in ? WSE_OK : WSE_ENOTFOUND) || s->n_topics != had - (unsigned)in ||
          member_of(c, t, tn) || wse_room_count(c, t, tn) != cnt - (size_t)in)
        abort();
      break;
    case 2:
      if (wse_leave(c) != WSE_OK || s->n_topics) abort();
      break;
    case 3:
    case 4:
      rc = wse_broadcast(c, t, tn, WSE_OP_BINARY, p, i, &s->id, p[i] % 6 == 4);
      if (rc < 0 || (size_t)rc != cnt - (p[i] % 6 == 4 && in)) abort();
      break;
    default:
      if (wse_set_user(c, p + i, p[i + 1] % 8u < n - i ? p[i + 1] % 8u : n - i) != WSE_OK ||
          s->user_len != (p[i + 1] % 8u < n - i ? p[i + 1] % 8u : n - i))
        abort();
    }
  }
}

static int topics_upgrade(wse_ctx_t *c, const wse_request_t *req, const wse_params_t *prm) {
  (void)req;
  /* recorded now, member at open; joined twice on purpose (a no-op) */
  if (wse_join(c, prm->value[0].p, prm->value[0].n) != WSE_OK ||
      wse_join(c, prm->value[0].p, prm->value[0].n) != WSE_OK ||
      wse_ctx_session(c)->n_topics != 1)
    abort();
  return 0;
}

static wse_app_t *new_app(void) {
  wse_app_t *app = NULL;
  wse_route_t r = {0};
  r.pattern = "/t/:a";
  r.on_upgrade = topics_upgrade;
  r.on_message = topics_message;
  if (wse_app_new(&app, &fa, NULL) || wsedge_app(app) || wse_app_route(app, &r) < 0) abort();
  return app;
}

/* Every live session's topics against the topics' member lists. */
static void check_memberships(wse_app_t *app, const int32_t *h, size_t nh) {
  wse_app_stats_t st;
  wse_app_stats(app, &st);
  for (size_t i = 0; i < nh; i++) {
    wse_session_t *s = wse_app_session(app, (uint32_t)h[i]);
    wse_str_t t;
    size_t k = 0;
    if (!s) abort();
    for (; wse_app_session_topic(app, s, k, &t) == WSE_OK; k++) {
      size_t seen = 0, members = 0;
      for (int32_t it = wse_app_room_next(app, t.p, t.n, -1); it >= 0;
           it = wse_app_room_next(app, t.p, t.n, it)) {
        seen += it == h[i];
        if (++members > st.sessions) abort(); /* a cycle, or a dead member */
      }
      if (seen != 1) abort(); /* open sessions are members, once */
      for (size_t j = 0; j < k; j++) { /* a topic appears once per session */
        wse_str_t u;
        if (wse_app_session_topic(app, s, j, &u) || (u.n == t.n && !memcmp(u.p, t.p, t.n))) abort();
      }
    }
    if (k != s->n_topics || k > WSE_TOPICS_MAX) abort();
  }
}

static size_t take_bytes(rd_t *r, const uint8_t **out) {
  size_t want = take(r);
  if (want > r->n - r->i) want = r->n - r->i;
  *out = r->p + r->i;
  r->i += want;
  return want;
}

typedef struct {
  wse_app_t *app;
  int32_t h[MAXH];
  size_t nh;
  uint8_t *att[MAXATT];
  size_t att_len[MAXATT], natt;
} world_t;

static void check_frame(const wse_action_t *a) {
  wse_frame_header_t fh;
  if (wse_frame_parse_header(a->frame, a->frame_len, &fh) <= 0) abort();
  if (fh.masked || !fh.fin || fh.header_len + fh.len != a->frame_len) abort();
  if (a->data + a->len != a->frame + a->frame_len) abort();
}

/* The attachment is exactly the session as it is now. */
static void check_attach(wse_app_t *app, const wse_session_t *s, const wse_attachment_t *d) {
  wse_str_t t;
  if (memcmp(d->id.b, s->id.b, 16) || d->joined_at_ms != s->joined_at_ms ||
      d->last_seen_ms != s->last_seen_ms || d->pattern.n != s->pattern_len ||
      memcmp(d->pattern.p, s->pattern, s->pattern_len) || d->n_topics != s->n_topics ||
      d->user_len != s->user_len || (s->user_len && memcmp(d->user, s->user, s->user_len)))
    abort();
  for (size_t k = 0; k < d->n_topics; k++)
    if (wse_app_session_topic(app, s, k, &t) || !same(t, d->topics[k].p, d->topics[k].n)) abort();
}

static void drain(world_t *w) {
  const wse_action_t *a;
  size_t n = wse_app_actions(w->app, &a);
  for (size_t i = 0; i < n; i++) {
    if (a[i].type == WSE_ACT_BROADCAST) {
      check_frame(&a[i]);
      if (!a[i].n_recipients) abort();
      for (size_t k = 0; k < a[i].n_recipients; k++) {
        if (!wse_app_session(w->app, a[i].recipients[k])) abort();
        for (size_t j = 0; j < k; j++)
          if (a[i].recipients[j] == a[i].recipients[k]) abort();
      }
      continue;
    }
    /* a handler may still address the session closing in this very call */
    if (a[i].type == WSE_ACT_ATTACH) {
      wse_attachment_t d;
      wse_session_t *s = wse_app_session(w->app, a[i].target);
      if (!s) abort();
      if (wse_attachment_decode(a[i].data, a[i].len, &d) != WSE_OK) abort();
      check_attach(w->app, s, &d);
      if (w->natt < MAXATT) {
        w->att[w->natt] = malloc(a[i].len);
        memcpy(w->att[w->natt], a[i].data, a[i].len);
        w->att_len[w->natt++] = a[i].len;
      }
    } else if (a[i].type == WSE_ACT_SEND) {
      check_frame(&a[i]);
    } else if (a[i].type == WSE_ACT_HISTORY || a[i].type == WSE_ACT_TIMER) {
      /* a record a host stores: the layout of wsedge/app.h, and it loads
       * back (into a scratch app: history in order, timers by key) */
      const uint8_t *f = a[i].frame;
      if (!f || a[i].frame_len < 3 || f[0] != 1 || !f[1] || f[1] > WSE_TOPIC_MAX) abort();
      if (a[i].type == WSE_ACT_HISTORY) {
        uint64_t seq = 0;
        for (int b = 7; b >= 0; b--) seq = seq << 8 | f[2 + f[1] + b];
        if (a[i].data != f + 10 + f[1] || a[i].frame_len != 10u + f[1] + a[i].len ||
            !wse_utf8_valid(a[i].data, a[i].len) || a[i].target != seq % WSE_HISTORY_MAX)
          abort();
      } else if (a[i].data != f + 1 || a[i].len != 2u + f[1] + f[2 + f[1]]) {
        abort();
      }
      wse_app_t *scratch;
      if (wse_app_new(&scratch, &fa, NULL) != WSE_OK) abort();
      int rc = a[i].type == WSE_ACT_HISTORY ? wse_app_history_load(scratch, f, a[i].frame_len)
               : a[i].opcode ? wse_app_timer_load(scratch, f, a[i].frame_len) : WSE_OK;
      if (rc != WSE_OK) abort();
      wse_app_free(scratch);
    } else if (a[i].type != WSE_ACT_CLOSE) {
      abort();
    }
  }
  wse_app_actions_clear(w->app);
}

static const char *const targets[] = {
    "/ws", "/chat/a?name=x", "/chat/a?name=y%22", "/chat/b", "/chat/a?name=",
    "/chat/b?name=%C3%A9", "/nope", "/chat/a%20b", "/chat/a?name=z&since=2",
    "/chat/b?since=0", "/chat/a?since=x"};
/* k >= 0xE0: the topics route, its first topic one of the 24 */
static const char *const topic_targets[] = {"/t/t0", "/t/t1", "/t/t5", "/t/t23"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  world_t w;
  rd_t r = {data, size, 0};
  uint64_t now = 1;
  memset(&w, 0, sizeof w);
  w.app = new_app();
  while (r.i < r.n) {
    unsigned op = take(&r), k = take(&r);
    const uint8_t *p;
    size_t n;
    now += op;
    switch (op % 8) {
    case 0: { /* upgrade + open */
      wse_header_t hs[5] = {
          {{"Host", 4}, {"h", 1}}, {{"Upgrade", 7}, {"websocket", 9}},
          {{"Connection", 10}, {"Upgrade", 7}},
          {{"Sec-WebSocket-Key", 17}, {"dGhlIHNhbXBsZSBub25jZQ==", 24}},
          {{"Sec-WebSocket-Version", 21}, {"13", 2}}};
      const char *t = k >= 0xE0 ? topic_targets[k % 4] : targets[k % (sizeof targets / sizeof *targets)];
      wse_request_t req = {{"GET", 3}, {t, strlen(t)}, 11, hs, 5};
      uint8_t ent[16] = {0};
      wse_response_t resp;
      ent[0] = (uint8_t)take(&r);
      ent[1] = (uint8_t)take(&r);
      int32_t h = wse_app_upgrade(w.app, &req, ent, now, NULL, &resp);
      if (h >= 0) {
        if (resp.status != 101) abort();
        if (wse_app_open(w.app, (uint32_t)h, now)) abort();
        if (w.nh < MAXH) w.h[w.nh++] = h;
      } else if (resp.status < 400) {
        abort();
      }
      break;
    }
    case 1:
    case 2: /* a message from a session (text must be UTF-8, as the engine ensures) */
      n = take_bytes(&r, &p);
      if (w.nh) {
        unsigned opc = op % 8 == 1 && wse_utf8_valid(p, n) ? WSE_OP_TEXT : WSE_OP_BINARY;
        wse_app_message(w.app, (uint32_t)w.h[k % w.nh], opc, p, n, now);
      }
      break;
    case 3: /* close */
      if (w.nh) {
        size_t i = k % w.nh;
        if (wse_app_close(w.app, (uint32_t)w.h[i], 1000 + k % 12, NULL, 0, now)) abort();
        w.h[i] = w.h[--w.nh];
      }
      break;
    case 4: { /* HTTP push */
      n = take_bytes(&r, &p);
      wse_request_t req = {{k & 1 ? "POST" : "GET", k & 1 ? 4u : 3u},
                           {k & 2 ? "/chat/a/messages" : "/chat/a/stats", k & 2 ? 16u : 13u},
                           11, NULL, 0};
      wse_response_t resp;
      int st = wse_app_http(w.app, &req, p, n, now, &resp);
      if (st < 200 || st > 599 || st != resp.status) abort();
      break;
    }
    case 5: /* the object is evicted and wakes: restore from the attachments */
      if (w.natt) {
        const uint8_t *att[MAXATT];
        int32_t hs[MAXATT];
        unsigned flip = take(&r);
        drain(&w); /* may add attachments: before the list is taken */
        if (flip & 1) w.att[flip % w.natt][(flip >> 1) % w.att_len[flip % w.natt]] ^= (uint8_t)k;
        for (size_t i = 0; i < w.natt; i++) att[i] = w.att[i];
        wse_app_free(w.app);
        w.app = new_app();
        long got = wse_app_restore(w.app, att, w.att_len, w.natt, hs, now);
        w.nh = 0;
        long ok = 0;
        for (size_t i = 0; i < w.natt; i++)
          if (hs[i] >= 0) {
            wse_attachment_t d;
            wse_session_t *s = wse_app_session(w.app, (uint32_t)hs[i]);
            ok++;
            if (!s || !s->restored) abort();
            /* every topic rebuilt, in order (a topic listed twice: once) */
            if (wse_attachment_decode(att[i], w.att_len[i], &d) != WSE_OK) abort();
            size_t nt = 0;
            for (size_t j = 0; j < d.n_topics; j++) {
              int dup = 0;
              for (size_t m = 0; m < j; m++) dup |= same(d.topics[m], d.topics[j].p, d.topics[j].n);
              wse_str_t t;
              if (!dup && (wse_app_session_topic(w.app, s, nt++, &t) ||
                           !same(t, d.topics[j].p, d.topics[j].n)))
                abort();
            }
            if (nt != s->n_topics) abort();
            if (d.user_len != s->user_len || (d.user_len && memcmp(d.user, s->user, d.user_len)))
              abort();
            if (w.nh < MAXH) w.h[w.nh++] = hs[i];
          } else if (hs[i] != WSE_EEXIST && hs[i] != WSE_ATT_ECHECKSUM &&
                     hs[i] != WSE_ATT_EFIELD && hs[i] != WSE_ATT_ETRUNC &&
                     hs[i] != WSE_ATT_ESIZE && hs[i] != WSE_ATT_EMAGIC &&
                     hs[i] != WSE_ATT_EVERSION && hs[i] != WSE_ATT_EROUTE) {
            abort();
          }
        if (ok != got) abort();
        for (size_t i = 0; i < w.natt; i++) free(w.att[i]);
        w.natt = 0;
      }
      break;
    case 6: /* send to a session from outside */
      n = take_bytes(&r, &p);
      if (w.nh) {
        wse_session_t *s = wse_app_session(w.app, (uint32_t)w.h[k % w.nh]);
        if (!s || wse_app_send_to(w.app, &s->id, WSE_OP_BINARY, p, n)) abort();
      }
      break;
    default: /* the engine reported an error on a session */
      if (w.nh) wse_app_error(w.app, (uint32_t)w.h[k % w.nh], WSE_EPROTO, now);
    }
    drain(&w); /* hosts execute the actions after every call */
    check_memberships(w.app, w.h, w.nh);
  }
  drain(&w);
  for (size_t i = 0; i < w.natt; i++) free(w.att[i]);
  wse_app_free(w.app);
  return 0;
}
