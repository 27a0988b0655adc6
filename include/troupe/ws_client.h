/* SPDX-License-Identifier: MIT */
/*
 * The WebSocket client: an actor connects to a ws:// or wss:// URL and
 * becomes the owner of the connection, exactly as a server route's owner
 * is (<troupe/http_server.h>, "WebSocket"): it gets tr_ws_open_t when
 * the opening handshake is done (or has failed), then tr_ws_message_t
 * for each whole message and one tr_ws_closed_t at the end; it writes
 * with tr_ws_send and closes with tr_ws_close. The client masks every
 * frame with a fresh key from OpenSSL's random generator, as RFC 6455
 * requires. See doc/websocket.md.
 */
#ifndef TROUPE_WS_CLIENT_H
#define TROUPE_WS_CLIENT_H

#include <troupe/http_server.h>

TR_BEGIN_DECLS

typedef struct tr_ws_connect_opts {
  size_t size;             /* tr_ws_connect_opts_init */
  tr_tls_config_t *tls;    /* wss://: a client configuration (the
                              connection takes a reference); NULL: one
                              verifying against the system's CA store */
  tr_duration_t timeout;   /* connect and opening handshake: 0 = 10 s */
  uint64_t message_max;    /* a message from the server: 0 = 1 MiB
                              (larger: close with 1009) */
} tr_ws_connect_opts_t;

static inline void tr_ws_connect_opts_init(tr_ws_connect_opts_t *o) {
  TR_CONFIG_SIZE_INIT(o);
}

/* The opening handshake's outcome, to the owner: status 0 (conn is open:
 * tr_ws_send may go) or a negative code (the connection failed and is
 * gone; no tr_ws_closed_t follows): a network error (-ECONNREFUSED,
 * ...), TR_ETIMEDOUT, TR_ENOENT (no such host), TR_ECERT / TR_ETLS,
 * TR_EPROTO (the server did not accept the upgrade: http_status is its
 * answer, e.g. 404, or 0 for a response that is not HTTP). Sent without
 * the accepts-check: the owner needs a handler for it. */
TR_IO_MESSAGE(tr_ws_open_t, tr_ref_t conn; int status; int http_status;)

/* Connects to url (ws://host[:port]/path?query or wss://...; host a name,
 * an IPv4 address or [an IPv6 one]) on behalf of the calling actor,
 * which becomes the owner. Returns 0 and *conn (the connection actor,
 * also in every message it sends), TR_EINVAL (not an actor, a bad URL or
 * option), TR_ENOMEM, or the codes of tr_spawn; the outcome of the
 * connection itself comes as tr_ws_open_t. A frame sent with tr_ws_send
 * before the open is sent once the connection is open. */
TR_EXTERN int tr_ws_connect(tr_ctx_t *ctx, const char *url,
                            const tr_ws_connect_opts_t *o, tr_ref_t *conn);

TR_END_DECLS

#endif
