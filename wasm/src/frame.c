/* frame.c — RFC 6455 framing: header codec, in-place unmasking, server-side
 * serialisation, and the per-connection engine that turns received bytes
 * into events. The engine is a resumable state machine: any chunking of the
 * input (down to one byte per call) yields the same events, and every limit
 * is enforced from the frame header before a payload byte is buffered. */
#include "internal.h"

/* ---- header codec ---------------------------------------------------- */

int wse_frame_parse_header(const uint8_t *p, size_t n, wse_frame_header_t *h) {
  if (n < 2) return WSE_EAGAIN;
  uint8_t b0 = p[0], b1 = p[1];
  size_t hl = 2, ext = 0;
  uint64_t len = b1 & 0x7F;
  if (len == 126) ext = 2;
  else if (len == 127) ext = 8;
  hl += ext;
  if (n < hl) return WSE_EAGAIN;
  if (ext == 2) {
    len = (uint64_t)p[2] << 8 | p[3];
  } else if (ext == 8) {
    /* RFC 6455 §5.2: the most significant bit MUST be 0. Reported as soon
     * as the length is known, before the mask arrives. */
    if (p[2] & 0x80) return WSE_EPROTO;
    len = 0;
    for (int k = 0; k < 8; k++) len = len << 8 | p[2 + k];
  }
  int masked = b1 >> 7;
  if (masked) hl += 4;
  if (n < hl) return WSE_EAGAIN;
  h->fin = b0 >> 7;
  h->rsv = (b0 >> 4) & 7;
  h->opcode = b0 & 0x0F;
  h->masked = (uint8_t)masked;
  if (masked) wse__memcpy(h->mask, p + 2 + ext, 4);
  else wse__memset(h->mask, 0, 4);
  h->len = len;
  h->header_len = hl;
  return (int)hl;
}

size_t wse_frame_header_size(uint64_t len, int masked) {
  size_t hl = len < 126 ? 2 : len <= 0xFFFF ? 4 : 10;
  return hl + (masked ? 4 : 0);
}

size_t wse_frame_write_header(uint8_t out[WSE_FRAME_HEADER_MAX], int fin, int rsv1,
                              unsigned opcode, uint64_t len, const uint8_t *mask) {
  size_t o = 2;
  out[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (opcode & 0x0F));
  uint8_t m = mask ? 0x80 : 0;
  if (len < 126) {
    out[1] = (uint8_t)(m | len);
  } else if (len <= 0xFFFF) {
    out[1] = (uint8_t)(m | 126);
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    o = 4;
  } else {
    out[1] = (uint8_t)(m | 127);
    for (int k = 0; k < 8; k++) out[2 + k] = (uint8_t)(len >> (56 - 8 * k));
    o = 10;
  }
  if (mask) {
    wse__memcpy(out + o, mask, 4);
    o += 4;
  }
  return o;
}

/* ---- unmasking --------------------------------------------------------- */

static inline uint64_t ld64(const uint8_t *p) {
  uint64_t v;
  __builtin_memcpy(&v, p, 8);
  return v;
}
static inline void st64(uint8_t *p, uint64_t v) { __builtin_memcpy(p, &v, 8); }

/* 32 bytes per iteration with a 64-bit mask (the compiler turns this into
 * vector XORs where it can). Loads and stores go through memcpy, so they
 * need no alignment: no byte-at-a-time prologue, which matters because a
 * small payload starts 6 or 8 bytes into its frame. The mask word is built
 * in memory order, so it is endian-neutral. */
void wse_unmask(uint8_t *p, size_t n, const uint8_t mask[4], size_t offset) {
  size_t i = 0, j = offset & 3;
  if (n >= 8) {
    uint8_t m8[8];
    for (size_t k = 0; k < 8; k++) m8[k] = mask[(j + i + k) & 3];
    uint64_t m = ld64(m8);
    for (; n - i >= 32; i += 32) {
      st64(p + i, ld64(p + i) ^ m);
      st64(p + i + 8, ld64(p + i + 8) ^ m);
      st64(p + i + 16, ld64(p + i + 16) ^ m);
      st64(p + i + 24, ld64(p + i + 24) ^ m);
    }
    for (; n - i >= 8; i += 8) st64(p + i, ld64(p + i) ^ m);
  }
  for (; i < n; i++) p[i] ^= mask[(j + i) & 3];
}

/* ---- serialisation ------------------------------------------------------ */

size_t wse_frame_message_size(size_t n, size_t frag) {
  if (!frag || n <= frag) return wse_frame_header_size(n, 0) + n;
  size_t full = n / frag, rest = n % frag;
  size_t sz = full * (wse_frame_header_size(frag, 0) + frag);
  if (rest) sz += wse_frame_header_size(rest, 0) + rest;
  return sz;
}

long wse_frame_message(uint8_t *out, size_t cap, unsigned opcode, int rsv1,
                       const uint8_t *p, size_t n, size_t frag) {
  if (wse_frame_message_size(n, frag) > cap) return WSE_ENOSPC;
  if (!frag || n <= frag) frag = n;
  size_t o = 0, i = 0;
  int first = 1;
  do {
    size_t k = n - i < frag ? n - i : frag;
    int fin = i + k == n;
    o += wse_frame_write_header(out + o, fin, first && rsv1, first ? opcode : WSE_OP_CONT, k, NULL);
    if (k) wse__memcpy(out + o, p + i, k);
    o += k;
    i += k;
    first = 0;
  } while (i < n);
  return (long)o;
}

size_t wse_frame_close(uint8_t out[127], unsigned code, const char *reason, size_t reason_len) {
  if (code == 0 || code == WSE_CLOSE_NO_STATUS)
    return wse_frame_write_header(out, 1, 0, WSE_OP_CLOSE, 0, NULL);
  size_t r = reason ? reason_len : 0;
  if (r > 123) {
    /* back up over continuation bytes so no character is split */
    r = 123;
    while (r > 0 && ((uint8_t)reason[r] & 0xC0) == 0x80) r--;
  }
  size_t o = wse_frame_write_header(out, 1, 0, WSE_OP_CLOSE, 2 + r, NULL);
  out[o++] = (uint8_t)(code >> 8);
  out[o++] = (uint8_t)code;
  if (r) wse__memcpy(out + o, reason, r);
  return o + r;
}

/* ---- the engine ----------------------------------------------------------- */

#define WS_FAILED 0x80 /* internal flag: a protocol error was reported */

void wse_ws_init(wse_ws_t *ws, const wse_config_t *cfg, const wse_allocator_t *a,
                 unsigned flags) {
  wse__memset(ws, 0, sizeof *ws);
  ws->cfg = cfg;
  if (a) ws->alloc = *a;
  ws->flags = (uint8_t)(flags & (WSE_WS_SERVER | WSE_WS_CLIENT | WSE_WS_RSV1));
  ws->state = WSE_WS_OPEN;
}

void wse_ws_free(wse_ws_t *ws) {
  if (ws->msg) wse__free(&ws->alloc, ws->msg, ws->msg_cap);
  ws->msg = NULL;
  ws->msg_len = ws->msg_cap = 0;
}

static uint64_t max_frame(const wse_ws_t *ws) {
  return ws->cfg ? ws->cfg->max_frame_size : (uint64_t)16 << 20;
}
static uint64_t max_message(const wse_ws_t *ws) {
  return ws->cfg ? ws->cfg->max_message_size : (uint64_t)64 << 20;
}

static int ws_fail(wse_ws_t *ws, wse_event_t *ev, int err) {
  ws->flags |= WS_FAILED;
  ev->type = WSE_EV_ERROR;
  ev->error = err;
  ev->close_code = wse_close_code_for(err);
  return err;
}

/* Checks that need only the first two header bytes, so a bad frame is
 * refused before its length or mask arrive. */
static int check_first2(const wse_ws_t *ws, uint8_t b0, uint8_t b1) {
  unsigned op = b0 & 0x0F, rsv = (b0 >> 4) & 7, fin = b0 >> 7;
  int control = op >= 8;
  if ((op >= 3 && op <= 7) || op >= 0xB) return WSE_EPROTO;
  if (rsv & 3) return WSE_EPROTO;
  if ((rsv & 4) && (!(ws->flags & WSE_WS_RSV1) || control || op == WSE_OP_CONT))
    return WSE_EPROTO;
  unsigned want_mask = (ws->flags & WSE_WS_CLIENT) ? 0 : 1;
  if ((unsigned)(b1 >> 7) != want_mask) return WSE_EPROTO;
  if (control) {
    if (!fin || (b1 & 0x7F) > 125) return WSE_EPROTO;
  } else if (op == WSE_OP_CONT) {
    if (!ws->msg_op) return WSE_EPROTO;
  } else if (ws->msg_op) {
    return WSE_EPROTO;
  }
  return WSE_OK;
}

/* Append to the reassembly buffer, growing geometrically but never past
 * what the message may reach (the final size when this is its last frame,
 * the message limit otherwise). */
static int msg_append(wse_ws_t *ws, const uint8_t *p, size_t k) {
  if (!k) return WSE_OK;
  size_t need = ws->msg_len + k;
  if (need > ws->msg_cap) {
    uint64_t cap = (uint64_t)ws->msg_cap * 2;
    if (cap < 256) cap = 256;
    if (cap < need) cap = need;
    uint64_t limit = max_message(ws);
    if (ws->fh.fin) {
      uint64_t final_len = (uint64_t)ws->msg_len + (ws->fh.len - ws->frame_got);
      if (final_len < limit) limit = final_len;
    }
    if (cap > limit) cap = limit;
    if (cap < need) cap = need;
    if (cap > (uint64_t)(SIZE_MAX / 2)) return WSE_ENOMEM;
    if (!ws->alloc.alloc_fn) return WSE_ENOMEM;
    uint8_t *q = wse__realloc(&ws->alloc, ws->msg, ws->msg_cap, (size_t)cap);
    if (!q) return WSE_ENOMEM;
    ws->msg = q;
    ws->msg_cap = (size_t)cap;
  }
  wse__memcpy(ws->msg + ws->msg_len, p, k);
  ws->msg_len = need;
  return WSE_OK;
}

static int deliver_control(wse_ws_t *ws, uint8_t *p, size_t len, wse_event_t *ev) {
  unsigned op = ws->fh.opcode;
  ev->opcode = op;
  ev->data = p;
  ev->len = len;
  if (op == WSE_OP_PING) {
    ev->type = WSE_EV_PING;
    return WSE_OK;
  }
  if (op == WSE_OP_PONG) {
    ev->type = WSE_EV_PONG;
    return WSE_OK;
  }
  /* Close (RFC 6455 §5.5.1, §7.4) */
  unsigned code = WSE_CLOSE_NO_STATUS;
  if (len == 1) return ws_fail(ws, ev, WSE_EPROTO);
  if (len >= 2) {
    code = (unsigned)p[0] << 8 | p[1];
    if (!wse_close_code_valid(code)) return ws_fail(ws, ev, WSE_EPROTO);
    if (!wse_utf8_valid(p + 2, len - 2)) return ws_fail(ws, ev, WSE_EUTF8);
    ev->reason = p + 2;
    ev->reason_len = len - 2;
  }
  ev->type = WSE_EV_CLOSE;
  ev->close_code = code;
  ws->state = ws->state == WSE_WS_CLOSE_SENT ? WSE_WS_CLOSED : WSE_WS_CLOSE_RECEIVED;
  return WSE_OK;
}

int wse_ws_parse(wse_ws_t *ws, uint8_t *buf, size_t n, size_t *consumed, wse_event_t *ev) {
  wse__memset(ev, 0, sizeof *ev);
  *consumed = 0;
  /* The previous message's buffer was only valid until this call. */
  if (ws->msg && !ws->msg_op) wse_ws_free(ws);
  if ((ws->flags & WS_FAILED) || ws->state == WSE_WS_CLOSE_RECEIVED ||
      ws->state == WSE_WS_CLOSED) {
    *consumed = n;
    return WSE_OK;
  }
  size_t i = 0;
  int rc;
  for (;;) {
    if (!ws->in_frame) {
      if (i == n) break;
      if (ws->hdr_have == 0 && n - i >= 2) {
        if ((rc = check_first2(ws, buf[i], buf[i + 1])) < 0) goto fail;
        rc = wse_frame_parse_header(buf + i, n - i, &ws->fh);
        if (rc == WSE_EAGAIN) {
          wse__memcpy(ws->hdr, buf + i, n - i);
          ws->hdr_have = (uint8_t)(n - i);
          i = n;
          break;
        }
        if (rc < 0) goto fail;
        i += (size_t)rc;
      } else {
        rc = WSE_EAGAIN;
        while (i < n) {
          ws->hdr[ws->hdr_have++] = buf[i++];
          if (ws->hdr_have < 2) continue;
          if (ws->hdr_have == 2 && (rc = check_first2(ws, ws->hdr[0], ws->hdr[1])) < 0) goto fail;
          rc = wse_frame_parse_header(ws->hdr, ws->hdr_have, &ws->fh);
          if (rc != WSE_EAGAIN) break;
        }
        if (rc == WSE_EAGAIN) break;
        if (rc < 0) goto fail;
        ws->hdr_have = 0;
      }
      /* header complete: limits before any payload is buffered */
      const wse_frame_header_t *h = &ws->fh;
      if (h->len > max_frame(ws)) { rc = WSE_ETOOBIG; goto fail; }
      if (h->opcode < 8) {
        uint64_t so_far = h->opcode == WSE_OP_CONT ? ws->msg_len : 0;
        if (so_far + h->len > max_message(ws)) { rc = WSE_ETOOBIG; goto fail; }
        if (h->opcode != WSE_OP_CONT) {
          ws->msg_op = h->opcode;
          ws->msg_compressed = (h->rsv & 4) ? 1 : 0;
          ws->utf8_state = WSE_UTF8_ACCEPT;
          ws->msg_len = 0;
        }
      } else {
        ws->ctl_len = 0;
      }
      ws->in_frame = 1;
      ws->frame_got = 0;
    }

    /* payload */
    wse_frame_header_t *h = &ws->fh;
    uint64_t rem = h->len - ws->frame_got;
    size_t avail = (uint64_t)(n - i) < rem ? n - i : (size_t)rem;
    uint8_t *p = buf + i;
    if (h->masked && avail) wse_unmask(p, avail, h->mask, (size_t)(ws->frame_got & 3));

    if (h->opcode >= 8) {
      if (ws->frame_got == 0 && avail == rem) { /* whole frame here: zero copy */
        i += avail;
        ws->in_frame = 0;
        *consumed = i;
        return deliver_control(ws, avail ? p : ws->ctl, avail, ev);
      }
      if (avail) wse__memcpy(ws->ctl + ws->ctl_len, p, avail);
      ws->ctl_len = (uint8_t)(ws->ctl_len + avail);
      ws->frame_got += avail;
      i += avail;
      if (ws->frame_got < h->len) break;
      ws->in_frame = 0;
      *consumed = i;
      return deliver_control(ws, ws->ctl, ws->ctl_len, ev);
    }

    if (ws->msg_op == WSE_OP_TEXT && !ws->msg_compressed && avail) {
      size_t bad;
      if (wse_utf8_feed(&ws->utf8_state, p, avail, &bad) < 0) { rc = WSE_EUTF8; goto fail; }
    }
    int last = ws->frame_got + avail == h->len && h->fin;
    if (last && ws->frame_got == 0 && h->opcode != WSE_OP_CONT) {
      /* an unfragmented message wholly in this buffer: deliver in place */
      if (ws->msg_op == WSE_OP_TEXT && !ws->msg_compressed && ws->utf8_state != WSE_UTF8_ACCEPT) {
        rc = WSE_EUTF8;
        goto fail;
      }
      i += avail;
      ws->in_frame = 0;
      ev->type = WSE_EV_MESSAGE;
      ev->opcode = ws->msg_op;
      ev->compressed = ws->msg_compressed;
      ev->data = avail ? p : ws->ctl;
      ev->len = avail;
      ws->msg_op = 0;
      *consumed = i;
      return WSE_OK;
    }
    if ((rc = msg_append(ws, p, avail)) < 0) goto fail;
    ws->frame_got += avail;
    i += avail;
    if (ws->frame_got < h->len) break;
    ws->in_frame = 0;
    if (!h->fin) continue;
    if (ws->msg_op == WSE_OP_TEXT && !ws->msg_compressed && ws->utf8_state != WSE_UTF8_ACCEPT) {
      rc = WSE_EUTF8;
      goto fail;
    }
    ev->type = WSE_EV_MESSAGE;
    ev->opcode = ws->msg_op;
    ev->compressed = ws->msg_compressed;
    ev->data = ws->msg ? ws->msg : ws->ctl;
    ev->len = ws->msg_len;
    ws->msg_op = 0; /* buffer released at the next call */
    *consumed = i;
    return WSE_OK;
  }
  *consumed = i;
  return WSE_OK;

fail:
  *consumed = n;
  return ws_fail(ws, ev, rc);
}

size_t wse_ws_close(wse_ws_t *ws, uint8_t out[127], unsigned code, const char *reason,
                    size_t reason_len) {
  if (ws->state == WSE_WS_CLOSE_SENT || ws->state == WSE_WS_CLOSED) return 0;
  /* Codes that must not appear on the wire (1005, 1006, ...) become an
   * empty close payload, which is how a peer's code-less Close is echoed. */
  size_t len = wse_close_code_valid(code)
                   ? wse_frame_close(out, code, reason, reason_len)
                   : wse_frame_close(out, 0, NULL, 0);
  if (ws->state == WSE_WS_CLOSE_RECEIVED || (ws->flags & WS_FAILED)) ws->state = WSE_WS_CLOSED;
  else ws->state = WSE_WS_CLOSE_SENT;
  return len;
}

int wse_ws_closing(const wse_ws_t *ws) {
  return ws->state == WSE_WS_CLOSE_SENT || ws->state == WSE_WS_CLOSED;
}
