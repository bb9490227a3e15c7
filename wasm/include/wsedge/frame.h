/* wsedge/frame.h — RFC 6455 frames and the per-connection message engine.
 * Bytes in (unmasked in place), events out; bytes for the wire are produced
 * into caller buffers. The host owns sockets, timers and write queues. */
#ifndef WSEDGE_FRAME_H
#define WSEDGE_FRAME_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WSE_FRAME_HEADER_MAX 14 /* 2 + 8 (64-bit length) + 4 (mask) */

typedef struct wse_frame_header {
  uint8_t fin;
  uint8_t rsv;      /* RSV1..3 as bits 0x4,0x2,0x1 (i.e. byte0 >> 4 & 7) */
  uint8_t opcode;
  uint8_t masked;
  uint8_t mask[4];
  uint64_t len;
  size_t header_len;
} wse_frame_header_t;

/* Parse one frame header from p[0..n). Returns the header length (> 0),
 * WSE_EAGAIN when more bytes are needed, or WSE_EPROTO (64-bit length with
 * the top bit set). Opcode/RSV/mask rules are checked by wse_ws_parse. */
int wse_frame_parse_header(const uint8_t *p, size_t n, wse_frame_header_t *h);

/* Write a frame header; mask NULL for server frames. Returns its length. */
size_t wse_frame_write_header(uint8_t out[WSE_FRAME_HEADER_MAX], int fin,
                              int rsv1, unsigned opcode, uint64_t len,
                              const uint8_t *mask);

/* Length of the header wse_frame_write_header would write. */
size_t wse_frame_header_size(uint64_t len, int masked);

/* XOR p[0..n) with mask, starting at mask byte (offset & 3). In place,
 * word at a time. */
void wse_unmask(uint8_t *p, size_t n, const uint8_t mask[4], size_t offset);

/* Frame a whole server message (unmasked) into out, split into frames of at
 * most `frag` payload bytes (0 = one frame). Returns bytes written or
 * WSE_ENOSPC. wse_frame_message_size() gives the exact size needed. */
long wse_frame_message(uint8_t *out, size_t cap, unsigned opcode, int rsv1,
                       const uint8_t *p, size_t n, size_t frag);
size_t wse_frame_message_size(size_t n, size_t frag);

/* A close frame payload: 2-byte code + reason (reason truncated to 123
 * bytes on a UTF-8 boundary). Returns the full frame length (<= 127). */
size_t wse_frame_close(uint8_t out[127], unsigned code, const char *reason,
                       size_t reason_len);

/* ---- message engine -------------------------------------------------- */

typedef enum wse_event_type {
  WSE_EV_NONE = 0,    /* input consumed, no complete event */
  WSE_EV_MESSAGE,     /* a complete Text/Binary message */
  WSE_EV_PING,
  WSE_EV_PONG,
  WSE_EV_CLOSE,       /* peer's Close, validated; reply with wse_ws_close */
  WSE_EV_ERROR,       /* protocol error: send close(close_code), then drop */
} wse_event_type_t;

typedef struct wse_event {
  wse_event_type_t type;
  unsigned opcode;            /* WSE_OP_TEXT / WSE_OP_BINARY for messages */
  int compressed;             /* RSV1 on the first frame (permessage-deflate);
                                 text then is NOT UTF-8 checked by the engine */
  uint8_t *data;              /* payload (valid until the next call) */
  size_t len;
  unsigned close_code;        /* CLOSE: peer's code (1005 = none);
                                 ERROR: the code to close with */
  int error;                  /* ERROR: the wse_err_t */
  const uint8_t *reason;      /* CLOSE: reason bytes */
  size_t reason_len;
} wse_event_t;

enum {
  WSE_WS_SERVER = 1,      /* peer frames must be masked */
  WSE_WS_CLIENT = 2,      /* peer frames must be unmasked */
  WSE_WS_RSV1 = 4,        /* an extension (permessage-deflate) owns RSV1 */
};

typedef enum wse_ws_state {
  WSE_WS_OPEN = 0,
  WSE_WS_CLOSE_SENT,      /* we sent Close, waiting for the peer's */
  WSE_WS_CLOSE_RECEIVED,  /* peer sent Close, we must answer */
  WSE_WS_CLOSED,          /* both sent (or failed): nothing more */
} wse_ws_state_t;

/* Embedded in the host's connection; no allocation until a message needs
 * reassembly (fragmented, or split across reads). */
typedef struct wse_ws {
  const wse_config_t *cfg;
  wse_allocator_t alloc;
  uint8_t flags;
  uint8_t state;
  uint8_t hdr_have;          /* bytes of the current header accumulated */
  uint8_t in_frame;          /* header parsed, payload pending */
  uint8_t hdr[WSE_FRAME_HEADER_MAX];
  wse_frame_header_t fh;     /* current frame */
  uint64_t frame_got;        /* payload bytes of the current frame seen */
  uint8_t msg_op;            /* opcode of the message in progress, 0 = none */
  uint8_t msg_compressed;
  uint32_t utf8_state;
  uint8_t *msg;              /* reassembly buffer */
  size_t msg_len, msg_cap;
  uint8_t ctl_len;
  uint8_t ctl[125];          /* control frame payload being collected */
} wse_ws_t;

void wse_ws_init(wse_ws_t *ws, const wse_config_t *cfg,
                 const wse_allocator_t *a, unsigned flags);
void wse_ws_free(wse_ws_t *ws);

/* Parse buf[0..n) (modified: payloads unmasked in place). Sets *consumed and
 * fills *ev; call again with the rest while *consumed < n or an event came.
 * Returns WSE_OK, or the error also reported as WSE_EV_ERROR. After an
 * error or a completed close the engine consumes and ignores input. */
int wse_ws_parse(wse_ws_t *ws, uint8_t *buf, size_t n, size_t *consumed,
                 wse_event_t *ev);

/* Produce our Close frame into out (<= 127 bytes) and advance the close
 * state machine. Returns the length, or 0 when a Close was already sent.
 * Answering a peer's Close: pass its code (1005 -> empty payload). */
size_t wse_ws_close(wse_ws_t *ws, uint8_t out[127], unsigned code,
                    const char *reason, size_t reason_len);

/* 1 once nothing more may be sent (our Close is out). */
int wse_ws_closing(const wse_ws_t *ws);

#ifdef __cplusplus
}
#endif
#endif
