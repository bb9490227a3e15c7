/* deflate.h — permessage-deflate (RFC 7692) for the native host, on zlib.
 *
 * The core negotiates (wse_deflate_negotiate); this module does the bytes.
 * Two objects:
 *   - wsn_deflate_t, one per connection that negotiated the extension. It
 *     holds only what context takeover makes per-connection: its own zlib
 *     streams, allocated on first use (a connection that never sends or
 *     receives a compressed message holds no zlib memory).
 *   - wsn_deflate_ctx_t, one per thread: scratch buffers, the streams shared
 *     by every no-context-takeover connection (a stream reset after each
 *     message has no state worth keeping apart), and the cache that lets a
 *     broadcast be compressed once per distinct compressor setting.
 * Every zlib allocation is counted, per connection and process-wide. */
#ifndef WSN_DEFLATE_H
#define WSN_DEFLATE_H

#include <stddef.h>
#include <stdint.h>

#include "wsedge.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Errors besides the core's WSE_E* (WSE_ETOOBIG, WSE_EUTF8, WSE_ENOMEM,
 * WSE_EINVAL): a compressed payload that is not valid DEFLATE data. */
enum { WSN_DEFLATE_EDATA = -40 };

typedef struct wsn_deflate wsn_deflate_t;
typedef struct wsn_deflate_ctx wsn_deflate_ctx_t;

/* Per-thread context. NULL when out of memory. */
wsn_deflate_ctx_t *wsn_deflate_ctx_new(void);
void wsn_deflate_ctx_free(wsn_deflate_ctx_t *x);

/* State for a connection whose upgrade accepted permessage-deflate with
 * `neg` (wse_upgrade_t.deflate), under the route's config `cfg` (level,
 * memory level, threshold, max_message_size are copied). NULL when out of
 * memory. Allocates no zlib memory yet. */
wsn_deflate_t *wsn_deflate_new(const wse_config_t *cfg,
                               const wse_deflate_params_t *neg);
void wsn_deflate_free(wsn_deflate_t *d);

/* Inflate one complete compressed message (the engine's WSE_EV_MESSAGE
 * with ev.compressed = 1): appends 00 00 ff ff, inflates with the client's
 * window, at most cfg->max_message_size bytes (past it: WSE_ETOOBIG without
 * inflating further), checks UTF-8 of text as it goes (WSE_EUTF8).
 * Returns WSE_OK with *out and *out_len valid until the next
 * wsn_deflate_inflate on x (compressing meanwhile does not touch them), or an
 * error: WSE_ETOOBIG (1009), WSE_EUTF8 (1007), WSN_DEFLATE_EDATA (1007),
 * WSE_ENOMEM (1011). After an error the connection must be closed. */
int wsn_deflate_inflate(wsn_deflate_t *d, wsn_deflate_ctx_t *x,
                        unsigned opcode, const uint8_t *in, size_t n,
                        const uint8_t **out, size_t *out_len);

/* Compress one message into a single frame with RSV1 set (FIN, `opcode`),
 * the 00 00 ff ff tail stripped, context taken over or reset per the
 * negotiated server_no_context_takeover. Payloads under the threshold are
 * framed uncompressed (RSV1 clear). *frame valid until the next call on x.
 * Returns WSE_OK, WSE_ENOMEM or WSE_EINVAL (not Text/Binary). */
int wsn_deflate_message(wsn_deflate_t *d, wsn_deflate_ctx_t *x,
                        unsigned opcode, const uint8_t *p, size_t n,
                        const uint8_t **frame, size_t *frame_len);

/* The host's send path: `in` is a complete server frame as the app's
 * actions carry it. A single unfragmented Text/Binary frame of at least
 * the threshold is re-framed compressed; anything else (control frames,
 * small or fragmented messages) comes back unchanged (*out = in). For a
 * no-context-takeover connection (and for every receiver of a fan-out
 * message, see wsn_deflate_fanout) the compressed frame is cached for the
 * current message: every such receiver with the same compressor setting
 * gets the same bytes, compressed once. Call wsn_deflate_next_message()
 * before delivering a different message (each action / queued item): the
 * cache is keyed by it, not by the bytes. *out valid until the next call
 * on x. Returns WSE_OK or WSE_ENOMEM. */
int wsn_deflate_frame(wsn_deflate_t *d, wsn_deflate_ctx_t *x,
                      const uint8_t *in, size_t n, const uint8_t **out,
                      size_t *out_len);
void wsn_deflate_next_message(wsn_deflate_ctx_t *x);

/* After wsn_deflate_next_message: the message goes to several receivers
 * (a broadcast). Context-takeover receivers then get the shared frame too,
 * compressed once instead of once each (uWebSockets' shared compressor);
 * their own compressor restarts without history at its next message.
 * Reset to 0 by wsn_deflate_next_message. */
void wsn_deflate_fanout(wsn_deflate_ctx_t *x, int on);

/* Once a second per connection: a context-takeover compressor unused for
 * idle_ticks calls is freed (~256 KiB at the defaults) and made again for
 * the next message, without the old history (always allowed: only the
 * client's inflater must keep its window). 0: never. */
void wsn_deflate_tick(wsn_deflate_t *d, uint32_t idle_ticks);

/* Close code and a short reason for an error from the calls above. */
unsigned wsn_deflate_close_code(int err);
const char *wsn_deflate_strerror(int err);

/* Memory held: by one connection's zlib streams (its bound: about
 * 2^(wbits+2) + 2^(memLevel+9) + 6 KB to compress with context takeover,
 * 2^wbits + 7 KB to inflate with it), by a thread context (shared streams
 * and buffers), and process-wide (all of them; for /stats). */
size_t wsn_deflate_conn_memory(const wsn_deflate_t *d);
size_t wsn_deflate_ctx_memory(const wsn_deflate_ctx_t *x);
uint64_t wsn_deflate_memory(void);

typedef struct wsn_deflate_stats {
  uint64_t in_messages;       /* compressed messages received */
  uint64_t in_compressed;     /* their payload bytes on the wire */
  uint64_t in_inflated;       /* bytes inflated (including a refused one) */
  uint64_t out_messages;      /* messages sent compressed */
  uint64_t out_raw;           /* their payload bytes before compression */
  uint64_t out_compressed;    /* ... and after */
  uint64_t out_cached;        /* frames served from the broadcast cache */
} wsn_deflate_stats_t;
void wsn_deflate_stats(const wsn_deflate_t *d, wsn_deflate_stats_t *out);

/* The negotiated view, for logs and tests: window bits used by our
 * compressor and accepted from the client, and the takeover flags. */
typedef struct wsn_deflate_info {
  int server_window_bits, client_window_bits;
  int server_no_context_takeover, client_no_context_takeover;
  int level, mem_level;
  size_t threshold;
} wsn_deflate_info_t;
void wsn_deflate_info(const wsn_deflate_t *d, wsn_deflate_info_t *out);

#ifdef __cplusplus
}
#endif
#endif
