/* wsedge/handshake.h — RFC 6455 §4.2.1 upgrade validation. The host parses
 * HTTP; the core decides. All strings are (pointer, length) into the host's
 * buffers; nothing is copied or retained past the call except where noted. */
#ifndef WSEDGE_HANDSHAKE_H
#define WSEDGE_HANDSHAKE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wse_str {
  const char *p;
  size_t n;
} wse_str_t;

typedef struct wse_header {
  wse_str_t name;
  wse_str_t value;
} wse_header_t;

typedef struct wse_request {
  wse_str_t method;
  wse_str_t target;          /* origin-form: path [ "?" query ] */
  int http_version;          /* 10 = HTTP/1.0, 11 = HTTP/1.1, 20...; 0 = unknown (Workers) */
  const wse_header_t *headers;
  size_t n_headers;
} wse_request_t;

/* One permessage-deflate offer (RFC 7692 §7.1). -1 = parameter absent,
 * 0 = present without value (client_max_window_bits only). The two
 * *_no_context_takeover flags are 1 when present, so test them with > 0. */
typedef struct wse_deflate_params {
  int server_no_context_takeover;
  int client_no_context_takeover;
  int server_max_window_bits;
  int client_max_window_bits;
} wse_deflate_params_t;

#define WSE_MAX_DEFLATE_OFFERS 4

/* Outcome of validation. On success status == 101. Otherwise status is the
 * HTTP status (400/403/405/426) and error a static message for the JSON body;
 * `allow`/`version13` say which extra header the response carries. */
typedef struct wse_upgrade {
  int status;
  const char *error;          /* static, NUL-terminated; NULL on success */
  int allow_get;              /* 405 -> "Allow: GET" */
  int version13;              /* 426 -> "Sec-WebSocket-Version: 13" */
  char accept[29];            /* base64(SHA-1(key + GUID)), NUL-terminated */
  int subprotocol;            /* index into config->subprotocols, -1 = none */
  size_t n_deflate_offers;    /* syntactically valid offers, in client order */
  wse_deflate_params_t deflate_offers[WSE_MAX_DEFLATE_OFFERS];
  int deflate_malformed;      /* an offer had bad/duplicate params (declined) */
  /* Negotiated by wse_deflate_negotiate(); accepted = 0 until then. */
  int deflate_accepted;
  wse_deflate_params_t deflate;
  wse_str_t host, origin;     /* pointers into the request, for hooks/logs */
} wse_upgrade_t;

/* 1 when the request asks for a WebSocket upgrade at all (Upgrade: websocket
 * token present). A WebSocket route answering a plain request uses it to
 * return 400 JSON "This endpoint requires a WebSocket upgrade". */
int wse_is_upgrade_request(const wse_request_t *req);

/* Validate in RFC order; fills `out`. Returns WSE_OK (101) or WSE_EPROTO
 * with out->status/error set. Never reads past the given lengths. */
int wse_upgrade_validate(const wse_config_t *cfg, const wse_request_t *req,
                         wse_upgrade_t *out);

/* Choose the first acceptable permessage-deflate offer against cfg (RFC 7692
 * §7.1.1/§7.1.2); sets out->deflate_accepted and out->deflate. */
void wse_deflate_negotiate(const wse_config_t *cfg, wse_upgrade_t *u);

/* Write the response extension header value for an accepted offer
 * ("permessage-deflate; ..."). Returns length or WSE_ENOSPC. */
int wse_deflate_response(const wse_upgrade_t *u, char *buf, size_t cap);

/* Sec-WebSocket-Accept for a key (any length; the validator checks it). */
void wse_accept_key(const char *key, size_t key_len, char out[29]);

/* An HTTP response: an app's (valid until the app's next upgrade/http
 * call) or one built from wse_upgrade_headers. */
typedef struct wse_response {
  int status;                  /* 101, or an HTTP status */
  const char *headers;         /* "Name: value\r\n"... (no status line) */
  size_t headers_len;
  const char *body;            /* JSON for non-101 */
  size_t body_len;
} wse_response_t;

/* Write the full HTTP/1.1 response (status line with wse_http_reason,
 * headers, Content-Type and Content-Length for non-101). Returns its length
 * or WSE_ENOSPC. The one response writer of both hosts. */
long wse_response_write(const wse_response_t *r, char *buf, size_t cap);

/* The headers (each ending CRLF) answering `u`: for a 101 Upgrade,
 * Connection, Sec-WebSocket-Accept and the chosen -Protocol/-Extensions;
 * for a 405 Allow: GET; for a 426 Sec-WebSocket-Version: 13 with Upgrade
 * and Connection: Upgrade. Returns the length or WSE_ENOSPC. */
int wse_upgrade_headers(const wse_config_t *cfg, const wse_upgrade_t *u,
                        char *buf, size_t cap);

/* Full HTTP/1.1 response for `u` on a connection that closes after an
 * error: wse_upgrade_headers, "Connection: close" and a JSON body
 * {"error":"..."} for errors, through wse_response_write. Returns the
 * length written or WSE_ENOSPC. 512 bytes always suffice for errors. */
int wse_upgrade_response(const wse_config_t *cfg, const wse_upgrade_t *u,
                         char *buf, size_t cap);

/* JSON error body {"error":"<msg>"} with correct escaping. */
int wse_json_error(const char *msg, size_t msg_len, char *buf, size_t cap);

/* Header lookup helpers (case-insensitive names). */
const wse_str_t *wse_header_get(const wse_request_t *req, const char *name);
/* 1 if any header named `name` holds `token` in its comma-separated list
 * (case-insensitive, optional whitespace). */
int wse_header_has_token(const wse_request_t *req, const char *name,
                         const char *token);

/* Base64 / SHA-1, own code (the wasm build has no libc). */
size_t wse_base64_encode(const uint8_t *in, size_t n, char *out); /* no NUL */
/* Returns decoded length or -1 on invalid base64 (padding required). */
long wse_base64_decode(const char *in, size_t n, uint8_t *out, size_t cap);
void wse_sha1(const uint8_t *data, size_t n, uint8_t out[20]);

#ifdef __cplusplus
}
#endif
#endif
