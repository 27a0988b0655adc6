/* SPDX-License-Identifier: MIT */
/*
 * What the WebSocket connection actors share (internal): the message
 * tr_ws_send and tr_ws_close send to a connection, server side
 * (http_server.c) or client side (ws_client.c). It carries one whole
 * frame as a server sends it (unmasked); a client connection masks it
 * again with a key of its own before it goes out.
 */
#ifndef TR_NET_WS_CONN_H
#define TR_NET_WS_CONN_H

#include <troupe/mailbox.h>

typedef struct ws_out {
  tr_msg_t hdr;
  uint8_t *frame;
  size_t len;
  int close_code; /* a close frame: its code */
} ws_out_t;

extern const tr_msgtype_t tr__ws_out_type;

/* http_client.c: splits an http:// or https:// URL into host (no
 * brackets), port, target ("/..." with the query) and whether it is
 * https. host and target are malloc'ed. 0, TR_EINVAL or TR_ENOMEM. */
int tr__http_url_parse(const char *url, char **host, uint16_t *port,
                       char **target, int *tls);

#endif
