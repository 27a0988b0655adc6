/* SPDX-License-Identifier: MIT */
/*
 * A stream: the byte pipe under every protocol actor, plain TCP or TLS
 * over TCP (<troupe/tls.h>), with the same calls either way, so a codec
 * never knows whether its bytes are encrypted. It lives in the state of
 * the actor that owns the connection and is driven from that actor's
 * handlers: the bytes of each tr_tcp_data_t go through
 * tr__stream_recv, writes through tr__stream_write, and a
 * tr_tcp_writable_t through tr__stream_writable. Internal.
 */
#ifndef TR_NET_STREAM_H
#define TR_NET_STREAM_H

#include <troupe/net.h>
#include <troupe/tls.h>

/* A growable byte buffer the owner parses from: bytes [0, len). */
typedef struct tr__sbuf {
  char *p;
  size_t len, cap;
} tr__sbuf_t;

typedef struct tr__stream {
  tr_tcp_id_t id;
  tr_tls_t *tls;       /* NULL: plain TCP */
  int err;             /* the TLS failure, once there is one */
  int eof;             /* the peer closed cleanly (TLS: close_notify) */
  int blocked;         /* ciphertext waits for tr_tcp_writable_t */
  int shut_pending;    /* TCP's FIN goes once that ciphertext is out */
} tr__stream_t;

/* Starts a stream over conn; tls (may be NULL) is the stream's from now
 * on. */
void tr__stream_init(tr__stream_t *s, tr_tcp_id_t conn, tr_tls_t *tls);

/* Releases the TLS engine (not the connection). */
void tr__stream_fini(tr__stream_t *s);

/* Appends the plaintext of d's bytes to b (plain TCP with b empty: takes
 * d's buffer without a copy). Sends what the TLS engine has to say (the
 * handshake). Returns 0, TR_ENOMEM, or the TLS failure (TR_ETLS,
 * TR_ECERT, ...; the alert is on its way: close the connection). */
int tr__stream_recv(tr_ctx_t *ctx, tr__stream_t *s, tr_tcp_data_t *d,
                    tr__sbuf_t *b);

/* The peer closed TCP (tr_tcp_eof_t): appends the plaintext still
 * buffered. Returns 0 for a clean end, TR_ECONNRESET for a TLS stream
 * cut without close_notify, or the TLS failure. */
int tr__stream_recv_eof(tr_ctx_t *ctx, tr__stream_t *s, tr__sbuf_t *b);

/* Writes len bytes, as tr_tcp_write does: 0 (taken), TR_EAGAIN (nothing
 * taken: a tr_tcp_writable_t follows, then call tr__stream_writable),
 * TR_EMSGSIZE, or the connection's error. */
int tr__stream_write(tr_ctx_t *ctx, tr__stream_t *s, const void *p,
                     size_t len);

/* After tr_tcp_writable_t: sends the ciphertext that waited. Returns 0
 * when the stream takes writes again, 1 while it is still blocked, or an
 * error. */
int tr__stream_writable(tr_ctx_t *ctx, tr__stream_t *s);

/* Ends the sending side once everything queued is out: TLS close_notify,
 * then TCP's FIN. */
int tr__stream_shutdown(tr_ctx_t *ctx, tr__stream_t *s);

/* tcp.c: 1 while conn's write queue holds anything (bytes or a range of
 * a file map not yet sent), else 0 (also for a dead conn); *sent (if not
 * NULL) gets the bytes sent from the queue since the connection opened,
 * which tells whether the queue moves. */
int tr__tcp_write_pending(tr_ctx_t *ctx, tr_tcp_id_t conn, uint64_t *sent);

#endif
