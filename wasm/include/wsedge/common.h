/* wsedge/common.h — error codes, allocator, configuration shared by every
 * part of the core. The core is sans-I/O: no sockets, no clock, no entropy,
 * no mutable globals; the host passes all of these in. */
#ifndef WSEDGE_COMMON_H
#define WSEDGE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WSE_VERSION_STRING "0.1.0"

/* Every fallible call returns >= 0 on success or one of these. */
typedef enum wse_err {
  WSE_OK = 0,
  WSE_EAGAIN = -1,       /* need more input */
  WSE_ENOMEM = -2,       /* allocator failed */
  WSE_EINVAL = -3,       /* bad argument from the caller */
  WSE_EPROTO = -4,       /* RFC 6455 protocol violation (close 1002) */
  WSE_EUTF8 = -5,        /* invalid UTF-8 in text or close reason (1007) */
  WSE_ETOOBIG = -6,      /* frame or message over the limit (1009) */
  WSE_ECLOSED = -7,      /* connection already closing/closed */
  WSE_ENOSPC = -8,       /* caller's output buffer too small */
  WSE_ENOTFOUND = -9,    /* no such session / route */
  WSE_EEXIST = -10,      /* duplicate */
  WSE_EPOLICY = -11,     /* rejected by policy/app (1008) */
  /* attachment codec */
  WSE_ATT_ETRUNC = -20,    /* shorter than its header says */
  WSE_ATT_EMAGIC = -21,    /* not a wsedge attachment (foreign data) */
  WSE_ATT_EVERSION = -22,  /* wsedge attachment of an unknown version */
  WSE_ATT_ECHECKSUM = -23, /* checksum mismatch (corrupted) */
  WSE_ATT_ESIZE = -24,     /* over WSE_ATTACHMENT_MAX or a field over its limit */
  WSE_ATT_EFIELD = -25,    /* a field fails validation (bad UTF-8, bad lengths) */
  WSE_ATT_EROUTE = -26,    /* names a route this app no longer has */
} wse_err_t;

const char *wse_strerror(int err);

/* Allocator given by the host. `realloc_fn` may be NULL (the core then uses
 * alloc+copy+free). Sizes are passed to free so a sized allocator works. */
typedef struct wse_allocator {
  void *(*alloc_fn)(void *ud, size_t n);
  void *(*realloc_fn)(void *ud, void *p, size_t old_n, size_t new_n);
  void (*free_fn)(void *ud, void *p, size_t n);
  void *ud;
} wse_allocator_t;

/* RFC 6455 opcodes */
typedef enum wse_opcode {
  WSE_OP_CONT = 0x0,
  WSE_OP_TEXT = 0x1,
  WSE_OP_BINARY = 0x2,
  WSE_OP_CLOSE = 0x8,
  WSE_OP_PING = 0x9,
  WSE_OP_PONG = 0xA,
} wse_opcode_t;

/* Close codes used by the core and hosts */
enum {
  WSE_CLOSE_NORMAL = 1000,
  WSE_CLOSE_GOING_AWAY = 1001,
  WSE_CLOSE_PROTOCOL = 1002,
  WSE_CLOSE_UNSUPPORTED = 1003,
  WSE_CLOSE_NO_STATUS = 1005,   /* never on the wire */
  WSE_CLOSE_ABNORMAL = 1006,    /* never on the wire */
  WSE_CLOSE_INVALID_DATA = 1007,
  WSE_CLOSE_POLICY = 1008,
  WSE_CLOSE_TOO_BIG = 1009,
  WSE_CLOSE_EXTENSION = 1010,
  WSE_CLOSE_INTERNAL = 1011,
  WSE_CLOSE_TIMEOUT = 4000,     /* session lifetime expired (Ohkami) */
};

/* The reason phrase of an HTTP status ("Not Found"; "Unknown" for codes
 * without one here): one table for the core, both hosts and their tests. */
const char *wse_http_reason(int status);

/* 1 when `code` may appear in a Close frame on the wire (RFC 6455 §7.4). */
int wse_close_code_valid(unsigned code);
/* Close code a connection must be closed with for a core error. */
unsigned wse_close_code_for(int err);

/* Limits and timeouts; names follow the seeds (Axum/tungstenite, Ohkami).
 * wse_config_default() fills the documented defaults. Strings are C strings
 * owned by the caller and must outlive every use of the config. */
typedef struct wse_config {
  uint64_t max_frame_size;        /* 16 MiB: larger frame header -> 1009 */
  uint64_t max_message_size;      /* 64 MiB: larger message -> 1009 */
  size_t write_buffer_size;       /* 128 KiB: hosts flush at this size */
  size_t max_write_buffer_size;   /* 1 MiB: queued output past it -> 1008
                                     (one larger frame may be queued alone) */
  const char *const *subprotocols;/* server's list, in order of preference */
  size_t n_subprotocols;
  int require_subprotocol;        /* 1: a client offering none of ours -> 400 */
  const char *const *allowed_origins; /* exact "scheme://host[:port]" or "*" */
  size_t n_allowed_origins;       /* 0: absent Origin or same host as Host */
  uint32_t session_timeout_s;     /* 3600: lifetime, then close 4000 */
  uint32_t idle_timeout_s;        /* 60: no pong/data this long -> 1001 */
  uint32_t ping_interval_s;       /* 30: server ping cadence */
  uint32_t handshake_timeout_s;   /* 10 */
  uint32_t close_timeout_s;       /* 5 */
  /* permessage-deflate (RFC 7692), honoured by hosts that have zlib */
  int deflate;                    /* 1: negotiate when offered (default 1) */
  int deflate_server_no_context_takeover; /* 0 */
  int deflate_client_no_context_takeover; /* 0 */
  int deflate_server_max_window_bits;     /* 15 (9..15) */
  int deflate_client_max_window_bits;     /* 15 (9..15) */
  int deflate_level;              /* 1..9, default 1 (see README: Compression) */
  int deflate_mem_level;          /* 1..9, default 4 */
  size_t deflate_threshold;       /* 64: smaller messages sent uncompressed */
} wse_config_t;

void wse_config_default(wse_config_t *c);

#ifdef __cplusplus
}
#endif
#endif
