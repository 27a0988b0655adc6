/* SPDX-License-Identifier: MIT */
/*
 * Small helpers the protocol actors share (internal): growing a buffer,
 * HTTP tokens and comma lists, numeric addresses, the WebSocket parser's
 * allocator. Defined once, in proto.c.
 */
#ifndef TR_NET_PROTO_H
#define TR_NET_PROTO_H

#include <stddef.h>

#include <troupe/http.h>

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

#endif
