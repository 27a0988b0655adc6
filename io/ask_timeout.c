/* SPDX-License-Identifier: MIT */
/*
 * tr_ask_timeout: an ask whose continuation gets TR_ETIMEDOUT when no
 * reply comes in time. Built from the core's ask and a timer, without
 * touching lib/: the timer delivers to the asker a reply-tagged
 * "no reply" message with status TR_ETIMEDOUT, which the core hands to
 * the pending continuation exactly as it would a TR_ENOREPLY; the entry
 * is then gone, so a real reply arriving later finds no continuation and
 * is dropped (counted as a dead letter). A timely reply runs a trampoline
 * that cancels the timer.
 *
 * The timer must know the request's tag before the request is sent (once
 * sent, the request belongs to the target). The core's rule (lib/actor.c,
 * tr_ask) is tag = ++next_tag without the reply bit, 0 and the deleted
 * marker skipped; it is repeated here and checked after the send.
 */
#include "io_internal.h"

#include <stdlib.h>

struct tr__ask_rec {
  tr_reply_fn k;
  void *cookie;
  uint64_t tid;
  tr__io_t *io;
  tr__io_owner_t *own;
  tr__ask_rec_t *prev, *next;
};

static void timeout_fire(tr__io_t *io, uint64_t asker, uint64_t tag) {
  tr__noreply_msg_t *m = tr_msg_new(&tr__noreply_type);
  if (!m) return;
  m->status = TR_ETIMEDOUT;
  m->hdr.tag = tag | TR__TAG_REPLY;
  (void)tr__io_deliver(io->rt, asker, &m->hdr); /* asker may be gone */
}

static void rec_unlink(tr__ask_rec_t *r) {
  if (r->prev) r->prev->next = r->next;
  else r->own->asks = r->next;
  if (r->next) r->next->prev = r->prev;
}

static int trampoline(tr_ctx_t *ctx, void *state, int status, void *reply,
                      void *cookie) {
  tr__ask_rec_t *r = cookie;
  rec_unlink(r);
  if (status != TR_ETIMEDOUT) (void)tr__timer_cancel(r->io, r->tid);
  tr_reply_fn k = r->k;
  void *c = r->cookie;
  free(r);
  return k(ctx, state, status, reply, c); /* a handler's result */
}

static uint64_t next_tag_of(const tr__actor_t *a) {
  uint64_t tag = (a->next_tag + 1) & ~TR__TAG_REPLY;
  if (tag == 0 || tag == (UINT64_MAX & ~TR__TAG_REPLY)) tag = 1;
  return tag;
}

static int ask_timeout(tr_ctx_t *ctx, tr_ref_t to, void *req,
                       tr_duration_t timeout, tr_reply_fn k, void *cookie);

/* req is consumed whatever happens, as by tr_ask (a failed tr_ask below
 * has freed it already). */
int tr_ask_timeout(tr_ctx_t *ctx, tr_ref_t to, void *req,
                   tr_duration_t timeout, tr_reply_fn k, void *cookie) {
  if (timeout == TR_FOREVER) return tr_ask(ctx, to, req, k, cookie);
  return ask_timeout(ctx, to, req, timeout, k, cookie);
}

static int ask_timeout(tr_ctx_t *ctx, tr_ref_t to, void *req,
                       tr_duration_t timeout, tr_reply_fn k, void *cookie) {
  if (!ctx || !ctx->a || !req || !k || TR__DURATION_BAD(timeout))
    return tr__msg_drop_failed(ctx, req, TR_EINVAL);
  uint64_t timeout_ms = (uint64_t)timeout;
  tr__io_t *io = tr__io_of_ctx(ctx);
  if (!io) return tr__msg_drop_failed(ctx, req, TR_ENOSYS);
  tr__io_owner_t *own = tr__io_owner(ctx);
  tr__ask_rec_t *r = malloc(sizeof(*r));
  if (!own || !r) {
    free(r);
    return tr__msg_drop_failed(ctx, req, TR_ENOMEM);
  }
  r->k = k;
  r->cookie = cookie;
  r->io = io;
  r->own = own;
  uint64_t tag = next_tag_of(ctx->a);
  int rc = tr__timer_call(io, own, timeout_ms, timeout_fire,
                          tr__self_ref(ctx->a).id, tag, &r->tid);
  if (rc) {
    free(r);
    return tr__msg_drop_failed(ctx, req, rc);
  }
  rc = tr_ask(ctx, to, req, trampoline, r); /* frees req if it fails */
  if (rc) {
    (void)tr__timer_cancel(io, r->tid);
    free(r);
    return rc;
  }
  assert((ctx->a->next_tag & ~TR__TAG_REPLY) == tag);
  r->prev = NULL;
  r->next = own->asks;
  if (own->asks) own->asks->prev = r;
  own->asks = r;
  return 0;
}

void tr__asks_owner_stop(tr__io_owner_t *own) {
  while (own->asks) {
    tr__ask_rec_t *r = own->asks;
    own->asks = r->next;
    free(r); /* its timer went with the owner's timers */
  }
}
