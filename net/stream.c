/* SPDX-License-Identifier: MIT */
/*
 * Streams (stream.h): plain TCP passes the bytes through; TLS feeds the
 * engine with what TCP read, reads the plaintext out, and writes the
 * engine's ciphertext to TCP. Ciphertext that TCP's write queue refuses
 * stays in the engine (tr_tls_pending) until tr_tcp_writable_t, and
 * meanwhile the stream refuses plaintext with TR_EAGAIN, so the
 * all-or-nothing bound of tr_tcp_write holds for the owner as it is.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <troupe.h>

#include "proto.h"
#include "stream.h"

#define PIECE 65536

void tr__stream_init(tr__stream_t *s, tr_tcp_id_t conn, tr_tls_t *tls) {
  memset(s, 0, sizeof(*s));
  s->id = conn;
  s->tls = tls;
}

void tr__stream_fini(tr__stream_t *s) {
  tr_tls_free(s->tls);
  s->tls = NULL;
}

/* Room for more bytes after b's. */
static int sbuf_reserve(tr__sbuf_t *b, size_t more) {
  return b->len + more < more ? TR_ENOMEM
                              : tr__grow(&b->p, &b->cap, b->len + more);
}

/* Sends the engine's pending ciphertext; 1 when TCP's queue is full. */
static int push(tr_ctx_t *ctx, tr__stream_t *s) {
  if (s->blocked) return 1;
  const void *p;
  size_t n;
  while ((n = tr_tls_pending(s->tls, &p)) > 0) {
    if (n > PIECE) n = PIECE;
    int rc = tr_tcp_write(ctx, s->id, p, n);
    if (rc == TR_EAGAIN) return s->blocked = 1;
    if (rc) return rc;
    tr_tls_consume(s->tls, n);
  }
  return 0;
}

/* Reads the plaintext the engine has into b. */
static int drain(tr__stream_t *s, tr__sbuf_t *b) {
  for (;;) {
    if (sbuf_reserve(b, 16384)) return TR_ENOMEM;
    int64_t n = tr_tls_read(s->tls, b->p + b->len, b->cap - b->len);
    if (n > 0) {
      b->len += (size_t)n;
      continue;
    }
    if (n == 0) return 0;
    if (n == TR_ECLOSED) {
      s->eof = 1;
      return 0;
    }
    return s->err = (int)n;
  }
}

int tr__stream_recv(tr_ctx_t *ctx, tr__stream_t *s, tr_tcp_data_t *d,
                    tr__sbuf_t *b) {
  if (!d->len) return 0;
  if (!s->tls) {
    if (!b->len) {
      free(b->p);
      b->p = (char *)d->data;
      b->cap = b->len = d->len;
      d->data = NULL;
      return 0;
    }
    if (sbuf_reserve(b, d->len)) return TR_ENOMEM;
    memcpy(b->p + b->len, d->data, d->len);
    b->len += d->len;
    return 0;
  }
  if (s->err) return s->err;
  int rc = tr_tls_feed(s->tls, d->data, d->len);
  if (!rc) rc = drain(s, b);
  int prc = push(ctx, s); /* the handshake's answer, or the alert */
  if (rc) return s->err = rc;
  return prc < 0 ? prc : 0;
}

int tr__stream_recv_eof(tr_ctx_t *ctx, tr__stream_t *s, tr__sbuf_t *b) {
  (void)ctx;
  if (!s->tls) return 0;
  if (s->err) return s->err;
  int rc = tr_tls_feed_eof(s->tls);
  if (!rc) rc = drain(s, b);
  if (rc) return s->err = rc;
  return s->eof ? 0 : TR_ECONNRESET;
}

int tr__stream_write(tr_ctx_t *ctx, tr__stream_t *s, const void *p,
                     size_t len) {
  if (!s->tls) return tr_tcp_write(ctx, s->id, p, len);
  if (s->err) return s->err;
  if (s->blocked) return TR_EAGAIN;
  int rc = tr_tls_write(s->tls, p, len);
  if (rc) return s->err = rc;
  rc = push(ctx, s);
  return rc < 0 ? rc : 0; /* blocked: the rest waits in the engine */
}

int tr__stream_writable(tr_ctx_t *ctx, tr__stream_t *s) {
  if (!s->tls) return 0;
  s->blocked = 0;
  int rc = push(ctx, s);
  if (rc == 0 && s->shut_pending) {
    s->shut_pending = 0;
    return tr_tcp_shutdown(ctx, s->id);
  }
  return rc;
}

int tr__stream_shutdown(tr_ctx_t *ctx, tr__stream_t *s) {
  if (s->tls && !s->err) {
    tr_tls_shutdown(s->tls);
    int rc = push(ctx, s);
    if (rc < 0) return rc;
    if (rc == 1) {
      s->shut_pending = 1; /* after the ciphertext that waits */
      return 0;
    }
  }
  return tr_tcp_shutdown(ctx, s->id);
}
