/* SPDX-License-Identifier: MIT */
/*
 * Small helpers the protocol actors share (internal): growing a buffer,
 * HTTP tokens and comma lists, numeric addresses, the WebSocket parser's
 * allocator. Defined once, in proto.c.
 */
#ifndef TR_NET_PROTO_H
#define TR_NET_PROTO_H

#include <stddef.h>

#include <troupe/http_server.h>

/* Grows the buffer *pp (of *cap bytes) to hold need bytes, doubling from
 * 256. 0 or TR_ENOMEM (the buffer is left as it was). */
int tr__grow(void *pp, size_t *cap, size_t need);

/* An HTTP tchar (RFC 9110 token character); a whole non-empty token. */
int tr__is_tchar(unsigned char c);
int tr__is_token(const char *s);

/* Whether the comma-separated list v holds the token t
 * (case-insensitive, whitespace around the items ignored). */
int tr__list_has(tr_http_str_t v, const char *t);

/* Whether s is a numeric IPv4 or IPv6 address (no brackets). */
int tr__is_ip(const char *s);

/* The WebSocket parser's allocator (tr_ws_alloc_fn) over realloc. */
void *tr__ws_realloc(void *arg, void *ptr, size_t size);

/* What the WebSocket connections of both sides (http_server.c,
 * ws_client.c) do alike. */

/* Appends one whole frame of payload p[0, n) to the output buffer
 * *out (bytes [*off, *len) wait in it; capacity *cap), unmasked (a
 * server's) or masked with a fresh key from OpenSSL's generator (a
 * client's). 0, TR_ENOMEM, TR_EIO (no random key), or the codes of
 * tr_ws_message_write. */
int tr__ws_frame_put(char **out, size_t *len, size_t *off, size_t *cap,
                     int opcode, const void *p, size_t n, int masked);

/* The payload of a close frame with code and reason why (NULL, or cut
 * to TR_WS_REASON_MAX bytes) into pl (2 + TR_WS_REASON_MAX bytes): its
 * length, or a negative code. */
int tr__ws_close_payload(uint8_t *pl, int code, const char *why);

/* The payload that answers a peer's close event: its code echoed, or
 * nothing when it sent none (1005). Returns the length (0 or 2). */
size_t tr__ws_close_echo(const tr_ws_event_t *ev, uint8_t pl[2]);

/* A tr_ws_message_t for conn holding a copy of a TEXT or BINARY event's
 * payload (NUL after it); NULL when out of memory. */
tr_ws_message_t *tr__ws_message_new(tr_ref_t conn, const tr_ws_event_t *ev);

/* A tr_ws_closed_t for conn (the reason cut to fit); NULL when out of
 * memory. */
tr_ws_closed_t *tr__ws_closed_new(tr_ref_t conn, int code, int clean,
                                  const uint8_t *reason, size_t rlen);

#endif
