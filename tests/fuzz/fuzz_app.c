/* fuzz_app.c — libFuzzer target driving the example app (echo + chat) the
 * way a host would: the input is a script of upgrades, opens, text/binary
 * messages, closes, HTTP pushes, restores from the attachments the app
 * produced (sometimes mutated), and engine errors; the actions are drained
 * after every call, as hosts do. Checks the promises the hosts rely on:
 * broadcast recipients are distinct live sessions, ATTACH only for live
 * sessions and always decodable, frames are well formed, restores never
 * yield a partial session, and nothing leaks (LeakSanitizer). */
#include <stdint.h>
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
      wse_session_t s;
      uint8_t ub[WSE_USERDATA_MAX];
      if (!wse_app_session(w->app, a[i].target)) abort();
      if (wse_attachment_decode(a[i].data, a[i].len, &s, ub) != WSE_OK) abort();
      if (w->natt < MAXATT) {
        w->att[w->natt] = malloc(a[i].len);
        memcpy(w->att[w->natt], a[i].data, a[i].len);
        w->att_len[w->natt++] = a[i].len;
      }
    } else if (a[i].type == WSE_ACT_SEND) {
      check_frame(&a[i]);
    } else if (a[i].type != WSE_ACT_CLOSE) {
      abort();
    }
  }
  wse_app_actions_clear(w->app);
}

static const char *const targets[] = {
    "/ws", "/chat/a?name=x", "/chat/a?name=y%22", "/chat/b", "/chat/a?name=",
    "/chat/b?name=%C3%A9", "/nope", "/chat/a%20b"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  world_t w;
  rd_t r = {data, size, 0};
  uint64_t now = 1;
  memset(&w, 0, sizeof w);
  if (wse_app_new(&w.app, &fa, NULL) || wsedge_app(w.app)) abort();
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
      const char *t = targets[k % 8];
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
        if (wse_app_new(&w.app, &fa, NULL) || wsedge_app(w.app)) abort();
        long got = wse_app_restore(w.app, att, w.att_len, w.natt, hs, now);
        w.nh = 0;
        long ok = 0;
        for (size_t i = 0; i < w.natt; i++)
          if (hs[i] >= 0) {
            ok++;
            if (!wse_app_session(w.app, (uint32_t)hs[i])->restored) abort();
            if (w.nh < MAXH) w.h[w.nh++] = hs[i];
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
  }
  drain(&w);
  for (size_t i = 0; i < w.natt; i++) free(w.att[i]);
  wse_app_free(w.app);
  return 0;
}
