/* SPDX-License-Identifier: MIT */
/*
 * broadcast and watch channels. A published value is stored once in a
 * reference-counted box; each subscriber sees it through a small
 * tr_chan_view_t (const pointer + sequence + lag). A broadcast keeps the
 * last `capacity` boxes in a ring; every subscriber has a cursor, and one that falls further behind than the ring
 * is moved to the oldest retained value and told, in that view's `lagged`,
 * exactly how many it missed. Publishing and cursor moves happen under the
 * channel lock, so seq + lagged accounting is exact whatever the number of
 * publishers.
 *
 * Actor subscribers of a broadcast read the ring themselves. Each holds a
 * token (tr__bcast_tick_t); the run loop hands it to tr__expand_run, which
 * calls the actor's view handler once per value, up to the run's budget,
 * with one view reused from value to value. That view holds no reference:
 * a box that leaves the ring is only released once every worker has
 * passed a quiescent point (the runtime's epochs), so a worker that read
 * it from the ring during a run can use it until the run ends. A view the
 * handler keeps (takes, forwards, replies with) escapes: it gets a
 * reference of its own at that moment (tr__bcast_view_escape). A subscriber that
 * has read everything parks its token on the channel (under the lock, the
 * lock the publisher holds while it stores the tail and sends the parked
 * tokens back), so a publish costs one message per idle subscriber and
 * nothing per busy one; a delivery costs no allocation, no lock and no
 * atomic read-modify-write. Memory stays bounded: the ring, the boxes
 * awaiting their grace period, and the views subscribers kept.
 *
 * Watch subscribers and threads get views with a reference each (counted
 * in two halves: see tr__shared_t), made under the lock; a watch actor
 * has one view in flight at a time, whose destructor sends the next.
 */
#include "chan_internal.h"
#include "park.h"

#include <stdlib.h>
#include <string.h>

static void tick_dtor(void *msg);

const tr_msgtype_t tr__bcast_tick_type = {.name = "tr.chan.tick",
                                          .size = sizeof(tr__bcast_tick_t),
                                          .flags = TR__MSG_EXPAND,
                                          .dtor = tick_dtor};

/* A view of s was freed. */
void tr__shared_unref(tr__shared_t *s) {
  if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
    tr_msg_free(s->value);
    free(s);
  }
}

/* The channel lets s go (overwritten or destroyed); s->taken is final
 * (it was last written under the channel lock, which the caller took). */
void tr__shared_retire(tr__shared_t *s) {
  uint64_t add = s->taken - TR__SHARED_BIAS;
  if (atomic_fetch_add_explicit(&s->refs, add, memory_order_acq_rel) + add ==
      0) {
    tr_msg_free(s->value);
    free(s);
  }
}

static tr__shared_t *shared_new(tr_msg_t *m) {
  tr__shared_t *s = aligned_alloc(TR__CACHELINE, sizeof(*s));
  if (!s) return NULL;
  atomic_init(&s->refs, TR__SHARED_BIAS);
  s->value = m;
  s->taken = 0;
  return s;
}

void tr__sub_unref(tr_chan_sub_t *s) {
  if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
    tr_chan_t *ch = s->ch;
    if (s->view) {
      s->view->priv_[0] = s->view->priv_[1] = NULL; /* lent, owes nothing */
      tr_msg_free(s->view);
    }
    free(s);
    tr__chan_unref(ch);
  }
}

/* Parks the token of s, which has read everything published. Lock held. */
static void sub_park(tr_chan_t *ch, tr_chan_sub_t *s, tr_msg_t *tick) {
  s->tick = tick;
  s->pkprev = NULL;
  s->pknext = ch->parked;
  if (ch->parked) ch->parked->pkprev = s;
  ch->parked = s;
}

/* Takes back the parked token of s (NULL if it is not parked). Lock held. */
static tr_msg_t *sub_unpark(tr_chan_t *ch, tr_chan_sub_t *s) {
  if (!s->tick) return NULL;
  if (s->pkprev) s->pkprev->pknext = s->pknext;
  else ch->parked = s->pknext;
  if (s->pknext) s->pknext->pkprev = s->pkprev;
  s->pknext = s->pkprev = NULL;
  tr_msg_t *tick = s->tick;
  s->tick = NULL;
  return tick;
}

/* Boxes that left the ring and whose grace period has passed go to d, to
 * be released after unlocking. Lock held. */
static void bcast_reclaim(tr_chan_t *ch, tr__defer_t *d) {
  if (!ch->retired) return;
  uint64_t min = tr__qsbr_min(ch->rt);
  while (ch->retired && ch->retired->repoch <= min) {
    tr__shared_t *r = ch->retired;
    ch->retired = r->rnext;
    r->rnext = d->retire;
    d->retire = r;
  }
  if (!ch->retired) ch->retired_tail = NULL;
}

/* Sends every parked token back to its subscriber (after unlocking). */
static void bcast_wake_parked(tr_chan_t *ch, tr__defer_t *d) {
  while (ch->parked) {
    tr_msg_t *tick = sub_unpark(ch, ch->parked);
    tick->next = d->ticks;
    d->ticks = tick;
  }
}

static void sub_unlist(tr_chan_t *ch, tr_chan_sub_t *s, tr__defer_t *d) {
  if (!s->listed) return;
  atomic_store_explicit(&s->gone, 1, memory_order_relaxed);
  tr_msg_t *tick = sub_unpark(ch, s);
  if (tick) tr__defer_free(d, tick); /* its destructor drops its reference */
  s->listed = 0;
  if (s->lprev) s->lprev->lnext = s->lnext;
  else ch->subs = s->lnext;
  if (s->lnext) s->lnext->lprev = s->lprev;
  ch->nsubs--;
  s->dnext = d->unref_subs; /* the list's reference, after unlocking */
  d->unref_subs = s;
}

/* Makes the view of box b for subscriber s (s NULL: a thread's view,
 * which owes no credit). */
static tr_chan_view_t *view_new(tr_chan_t *ch, tr_chan_sub_t *s,
                                tr__shared_t *b, uint64_t seq,
                                uint64_t lagged, unsigned index) {
  tr_chan_view_t *v = tr_msg_new(&tr_chan_view_t__type);
  if (!v) return NULL;
  b->taken++; /* under the channel lock (see tr__shared_t) */
  v->chan = ch;
  v->value = b->value;
  v->seq = seq;
  v->lagged = lagged;
  v->index = index;
  v->priv_[0] = b;
  v->priv_[1] = s; /* its reference is taken by the caller (pump_sub) */
  return v;
}

/* A thread subscriber's next view of a broadcast, its cursor at *next:
 * NULL if nothing new. Under the lock. */
static tr_chan_view_t *bcast_take(tr_chan_t *ch, uint64_t *next) {
  uint64_t tail = atomic_load_explicit(&ch->tail, memory_order_relaxed);
  uint64_t n = *next, lag = 0;
  if (n >= tail) return NULL;
  if (tail - n > ch->bcap) {
    lag = tail - ch->bcap - n;
    n = tail - ch->bcap;
  }
  tr_chan_view_t *v = view_new(
      ch, NULL,
      atomic_load_explicit(&ch->bring[n % ch->bcap], memory_order_relaxed), n,
      lag, 0);
  if (!v) return NULL;
  *next = n + 1;
  ch->delivered++;
  ch->lagged += lag;
  return v;
}

static tr_chan_view_t *watch_take(tr_chan_t *ch, tr_chan_sub_t *s,
                                  uint64_t *seen, unsigned index) {
  uint64_t ver = atomic_load_explicit(&ch->version, memory_order_relaxed);
  if (!ch->cur || *seen >= ver) return NULL;
  uint64_t lag = *seen ? ver - *seen - 1 : 0;
  tr_chan_view_t *v = view_new(ch, s, ch->cur, ver, lag, index);
  if (!v) return NULL;
  *seen = ver;
  ch->delivered++;
  ch->lagged += lag;
  return v;
}

/* Sends a watch subscriber actor the newest version if it has not seen it
 * and has no view in flight; then, once it has seen the last version of a
 * closed channel, the closed notice. Under the lock. */
static void pump_sub(tr_chan_t *ch, tr_chan_sub_t *s, tr__defer_t *d) {
  if (!s->listed || !s->ref) return;
  uint64_t next = atomic_load_explicit(&s->next, memory_order_relaxed);
  if (!atomic_load_explicit(&s->inflight, memory_order_seq_cst)) {
    uint64_t before = next;
    tr_chan_view_t *v = watch_take(ch, s, &next, s->index);
    if (v) {
      /* the view in flight holds a reference on s (see tr__view_done) */
      atomic_store_explicit(&s->next, next, memory_order_seq_cst);
      atomic_store_explicit(&s->inflight, 1, memory_order_seq_cst);
      atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
      int rc = tr__chan_deliver(ch, s->ref, &v->hdr);
      if (rc != 0) {
        /* undone: the view owes nothing (s is listed: the list's
         * reference keeps it) */
        atomic_store_explicit(&s->next, before, memory_order_seq_cst);
        atomic_store_explicit(&s->inflight, 0, memory_order_seq_cst);
        atomic_fetch_sub_explicit(&s->refs, 1, memory_order_relaxed);
        v->priv_[1] = NULL;
        ch->delivered--;
        ch->lagged -= v->lagged;
        tr__defer_free(d, &v->hdr);
        if (rc != TR_EAGAIN) { /* the subscriber stopped: it leaves */
          ch->dead++;
          sub_unlist(ch, s, d);
        } /* else a full bounded mailbox: retried at the next version */
        return;
      }
    }
  }
  if (atomic_load_explicit(&ch->closed, memory_order_relaxed) &&
      !s->closed_sent &&
      next >= atomic_load_explicit(&ch->version, memory_order_relaxed)) {
    s->closed_sent = 1;
    tr__chan_send_closed(ch, s->ref, s->index, d, 1);
    sub_unlist(ch, s, d);
  }
}

void tr__bcast_pump_all(tr_chan_t *ch, tr__defer_t *d) {
  if (ch->kind == TR_CHAN_BROADCAST) {
    /* the tokens find out themselves what is left, then the close */
    bcast_wake_parked(ch, d);
    tr__waiters_wake(ch->recv_waiters);
    return;
  }
  tr_chan_sub_t *s = ch->subs;
  while (s) {
    tr_chan_sub_t *nx = s->lnext; /* pump_sub may unlist s */
    pump_sub(ch, s, d);
    s = nx;
  }
  tr__waiters_wake(ch->recv_waiters);
}

/* Marks a lent view that escaped (priv_[1]). */
static char view_escaped;

/* Destructor of tr_chan_view_t: drops the view's reference on its box,
 * and for a watch subscriber's view, its reference on s after sending the
 * next version if there is one (the publisher stores the version before it
 * reads inflight, and this clears inflight before it reads the version,
 * all seq_cst: one of the two sends it). */
void tr__view_done(tr_chan_view_t *v) {
  tr__shared_t *b = v->priv_[0];
  tr_chan_sub_t *s = v->priv_[1];
  if (b) tr__shared_unref(b);
  if (s == (void *)&view_escaped) { /* a lent view a handler kept */
    tr__chan_unref(v->chan);
    return;
  }
  if (!s) return;
  tr_chan_t *ch = s->ch;
  atomic_store_explicit(&s->inflight, 0, memory_order_seq_cst);
  uint64_t next = atomic_load_explicit(&s->next, memory_order_seq_cst);
  if (next < atomic_load_explicit(&ch->version, memory_order_seq_cst) ||
      atomic_load_explicit(&ch->closed, memory_order_seq_cst)) {
    tr__defer_t d;
    tr__defer_init(&d);
    tr__mutex_lock(&ch->mu);
    pump_sub(ch, s, &d);
    tr__mutex_unlock(&ch->mu);
    tr__defer_run(ch, &d);
  }
  tr__sub_unref(s); /* the view's */
}

/* ---- publishing ---------------------------------------------------------- */

int tr__bcast_send(tr_chan_t *ch, tr_msg_t *m, uint64_t dead_to) {
  (void)dead_to; /* a published value is never dead: it is retained */
  tr__defer_t d;
  tr__defer_init(&d);
  tr__shared_t *old = NULL;
  int rc = 0;
  tr__mutex_lock(&ch->mu);
  if (atomic_load_explicit(&ch->closed, memory_order_relaxed)) {
    rc = TR_ECLOSED;
  } else if (!ch->nsubs) {
    rc = TR_ENOENT;
  } else {
    tr__shared_t *b = shared_new(m);
    if (!b) {
      rc = TR_ENOMEM;
    } else {
      uint64_t seq = atomic_load_explicit(&ch->tail, memory_order_relaxed);
      _Atomic(tr__shared_t *) *slot = &ch->bring[seq % ch->bcap];
      b->seq = seq;
      old = atomic_load_explicit(slot, memory_order_relaxed);
      atomic_store_explicit(slot, b, memory_order_release);
      atomic_store_explicit(&ch->tail, seq + 1, memory_order_seq_cst);
      ch->sent++;
      if (old) {
        /* actors may still be reading it: it waits for every worker to
         * pass a quiescent point (stamped after it left the ring) */
        old->rnext = NULL;
        old->repoch = tr__qsbr_stamp(ch->rt);
        if (ch->retired_tail) ch->retired_tail->rnext = old;
        else ch->retired = old;
        ch->retired_tail = old;
        old = NULL;
      }
      bcast_reclaim(ch, &d);
      bcast_wake_parked(ch, &d);
      if (ch->recv_waiters) tr__waiters_wake(ch->recv_waiters);
    }
  }
  tr__chan_ref(ch);
  tr__mutex_unlock(&ch->mu);
  tr__defer_run(ch, &d);
  tr__chan_unref(ch);
  return rc;
}

int tr__watch_send(tr_chan_t *ch, tr_msg_t *m) {
  tr__defer_t d;
  tr__defer_init(&d);
  tr__shared_t *old = NULL;
  int rc = 0;
  tr__mutex_lock(&ch->mu);
  if (atomic_load_explicit(&ch->closed, memory_order_relaxed)) {
    rc = TR_ECLOSED;
  } else {
    tr__shared_t *b = shared_new(m);
    if (!b) {
      rc = TR_ENOMEM;
    } else {
      old = ch->cur;
      ch->cur = b;
      atomic_fetch_add_explicit(&ch->version, 1, memory_order_seq_cst);
      ch->sent++;
      tr__bcast_pump_all(ch, &d);
    }
  }
  tr__chan_ref(ch);
  tr__mutex_unlock(&ch->mu);
  tr__defer_run(ch, &d);
  if (old) tr__shared_retire(old);
  tr__chan_unref(ch);
  return rc;
}

/* ---- subscriptions --------------------------------------------------------- */

static tr_chan_sub_t *sub_new(tr_chan_t *ch, uint64_t ref, unsigned index,
                              uint64_t refs) {
  tr_chan_sub_t *s = calloc(1, sizeof(*s));
  if (!s) return NULL;
  s->ch = ch;
  s->ref = ref;
  s->index = index;
  atomic_init(&s->refs, refs);
  tr__chan_ref(ch);
  /* broadcast starts at the next value; watch starts unseen */
  atomic_init(&s->next, ch->kind == TR_CHAN_BROADCAST
                            ? atomic_load_explicit(&ch->tail,
                                                   memory_order_relaxed)
                            : 0);
  s->listed = 1;
  s->lnext = ch->subs;
  if (ch->subs) ch->subs->lprev = s;
  ch->subs = s;
  ch->nsubs++;
  return s;
}

int tr__bcast_subscribe(tr_chan_t *ch, tr_ref_t who, unsigned index) {
  /* its reads of the ring are covered by the grace periods of the
   * channel's runtime only */
  if (ch->kind == TR_CHAN_BROADCAST && tr__ref_rt(who.id) != ch->rt->id)
    return TR_EINVAL;
  tr__defer_t d;
  tr__defer_init(&d);
  int rc = 0;
  tr_msg_t *tick = ch->kind == TR_CHAN_BROADCAST
                       ? tr_msg_new(&tr__bcast_tick_type)
                       : NULL;
  tr__mutex_lock(&ch->mu);
  if (atomic_load_explicit(&ch->closed, memory_order_relaxed)) {
    rc = TR_ECLOSED;
  } else {
    for (tr_chan_sub_t *s = ch->subs; s; s = s->lnext)
      if (s->ref == who.id) rc = TR_EBUSY;
    if (!rc && ch->kind == TR_CHAN_BROADCAST) {
      /* two references: the list's and the token's; the token waits
       * for the first value published from now on */
      tr_chan_sub_t *s = tick ? sub_new(ch, who.id, index, 2) : NULL;
      if (!s) {
        rc = TR_ENOMEM;
      } else {
        ((tr__bcast_tick_t *)tick)->sub = s;
        sub_park(ch, s, tick);
        tick = NULL;
      }
    } else if (!rc) {
      tr_chan_sub_t *s = sub_new(ch, who.id, index, 1);
      if (!s) rc = TR_ENOMEM;
      else pump_sub(ch, s, &d);
    }
  }
  tr__mutex_unlock(&ch->mu);
  tr__defer_run(ch, &d);
  if (tick) tr_msg_free(tick); /* not used: belongs to no subscription */
  return rc;
}

int tr__bcast_unsubscribe(tr_chan_t *ch, tr_ref_t who) {
  tr__defer_t d;
  tr__defer_init(&d);
  int rc = TR_ENOENT;
  tr__mutex_lock(&ch->mu);
  for (tr_chan_sub_t *s = ch->subs; s; s = s->lnext) {
    if (s->ref == who.id) {
      sub_unlist(ch, s, &d);
      rc = 0;
      break;
    }
  }
  tr__chan_ref(ch);
  tr__mutex_unlock(&ch->mu);
  tr__defer_run(ch, &d);
  tr__chan_unref(ch);
  return rc;
}

int tr_chan_sub_new(tr_chan_t *ch, tr_chan_sub_t **out) {
  if (!out) return TR_EINVAL;
  *out = NULL;
  if (!ch || (ch->kind != TR_CHAN_BROADCAST && ch->kind != TR_CHAN_WATCH))
    return TR_EINVAL;
  int rc = 0;
  tr__mutex_lock(&ch->mu);
  if (atomic_load_explicit(&ch->closed, memory_order_relaxed)) rc = TR_ECLOSED;
  else if (!(*out = sub_new(ch, 0, 0, 2))) rc = TR_ENOMEM;
  tr__mutex_unlock(&ch->mu);
  return rc;
}

int tr_chan_sub_recv(tr_chan_sub_t *s, tr_duration_t timeout_ms,
                     tr_chan_view_t **out) {
  if (!s || !out || TR__DURATION_BAD(timeout_ms)) return TR_EINVAL;
  *out = NULL;
  tr_chan_t *ch = s->ch;
  uint64_t dl = tr__deadline_ns(timeout_ms);
  _Atomic uint32_t word;
  tr__waiter_t node = {.word = &word};
  for (;;) {
    tr__mutex_lock(&ch->mu);
    tr__waiter_del(&ch->recv_waiters, &node);
    uint64_t next = atomic_load_explicit(&s->next, memory_order_relaxed);
    tr_chan_view_t *v = ch->kind == TR_CHAN_WATCH
                            ? watch_take(ch, NULL, &next, 0)
                            : bcast_take(ch, &next);
    if (v) {
      atomic_store_explicit(&s->next, next, memory_order_relaxed);
      tr__mutex_unlock(&ch->mu);
      *out = v;
      return 0;
    }
    if (atomic_load_explicit(&ch->closed, memory_order_relaxed)) {
      tr__mutex_unlock(&ch->mu);
      return TR_ECLOSED;
    }
    atomic_store_explicit(&word, 0, memory_order_relaxed);
    tr__waiter_add(&ch->recv_waiters, &node);
    tr__mutex_unlock(&ch->mu);
    if (tr__wait_word(&word, dl) == TR_ETIMEDOUT) {
      tr__mutex_lock(&ch->mu);
      tr__waiter_del(&ch->recv_waiters, &node);
      tr__mutex_unlock(&ch->mu);
      if (timeout_ms == 0) return TR_ETIMEDOUT;
      dl = tr__now_ns(); /* one last look, then time out */
      timeout_ms = 0;
    }
  }
}

void tr_chan_sub_free(tr_chan_sub_t *s) {
  if (!s) return;
  tr_chan_t *ch = s->ch;
  tr__defer_t d;
  tr__defer_init(&d);
  tr__chan_ref(ch);
  tr__mutex_lock(&ch->mu);
  sub_unlist(ch, s, &d);
  tr__mutex_unlock(&ch->mu);
  tr__defer_run(ch, &d);
  tr__sub_unref(s);
  tr__chan_unref(ch);
}

int tr_chan_watch_borrow(tr_chan_t *ch, tr_chan_view_t **out) {
  if (!ch || !out || ch->kind != TR_CHAN_WATCH) return TR_EINVAL;
  *out = NULL;
  int rc = 0;
  tr__mutex_lock(&ch->mu);
  if (!ch->cur) rc = TR_ENOENT;
  else if (!(*out = view_new(ch, NULL, ch->cur,
                             atomic_load_explicit(&ch->version,
                                                  memory_order_relaxed),
                             0, 0)))
    rc = TR_ENOMEM;
  tr__mutex_unlock(&ch->mu);
  return rc;
}

/* The channel is being destroyed: release the retained values. */
void tr__bcast_fini(tr_chan_t *ch) {
  /* no subscriber is left (each held a reference on the channel), so no
   * actor can be reading a box: no grace period to wait for */
  while (ch->retired) {
    tr__shared_t *r = ch->retired;
    ch->retired = r->rnext;
    tr__shared_retire(r);
  }
  ch->retired_tail = NULL;
  if (ch->bring) {
    for (size_t i = 0; i < ch->bcap; i++) {
      tr__shared_t *b = atomic_load_explicit(&ch->bring[i], memory_order_relaxed);
      if (b) tr__shared_retire(b);
    }
    free(ch->bring);
    ch->bring = NULL;
  }
  if (ch->cur) tr__shared_retire(ch->cur);
  ch->cur = NULL;
}

/* ---- actor subscribers of a broadcast: the token ----------------------- */

/* The token is freed without being parked or sent on: the subscriber
 * stopped with it in its mailbox, or could not be sent it, or the
 * subscription ended. The subscription goes (if it has not already). */
static void tick_dtor(void *msg) {
  tr__bcast_tick_t *tk = msg;
  tr_chan_sub_t *s = tk->sub;
  if (!s) return;
  tk->sub = NULL;
  tr_chan_t *ch = s->ch;
  tr__defer_t d;
  tr__defer_init(&d);
  tr__chan_ref(ch);
  tr__mutex_lock(&ch->mu);
  if (s->listed) {
    /* the subscriber is gone: what it had not read yet (and is still
     * retained) will never reach it */
    uint64_t t = atomic_load_explicit(&ch->tail, memory_order_relaxed);
    uint64_t nx = atomic_load_explicit(&s->next, memory_order_relaxed);
    if (t > nx) ch->dead += t - nx < ch->bcap ? t - nx : ch->bcap;
  }
  sub_unlist(ch, s, &d);
  tr__mutex_unlock(&ch->mu);
  tr__defer_run(ch, &d);
  tr__sub_unref(s);
  tr__chan_unref(ch);
}

/* A view that escaped holds the box and the channel (see view_done). */
void tr__bcast_view_escape(tr_chan_view_t *v) {
  tr__shared_t *b = v->priv_[0];
  /* the box cannot be released before this run ends (see the top) */
  if (b) atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
  tr__chan_ref(v->chan);
  v->priv_[1] = &view_escaped;
}


int tr__bcast_run(tr_ctx_t *ctx, tr_msg_t *m, unsigned room,
                  unsigned *used) {
  tr__bcast_tick_t *tk = (tr__bcast_tick_t *)m;
  tr_chan_sub_t *s = tk->sub;
  tr_chan_t *ch = s->ch;
  const uint64_t cap = ch->bcap;
  uint64_t next = atomic_load_explicit(&s->next, memory_order_relaxed);
  uint64_t delivered = 0, lagged = 0;
  unsigned k = 0;
  int rc = 0, more = 1;
  int gone = 0;
  while (k < room) {
    if (tr__unlikely(atomic_load_explicit(&s->gone, memory_order_relaxed))) {
      gone = 1; /* unsubscribed: nothing more for this token */
      break;
    }
    uint64_t tail = atomic_load_explicit(&ch->tail, memory_order_acquire);
    if (next >= tail) {
      more = 0;
      break;
    }
    uint64_t n = next, lag = 0;
    if (tail - n > cap) {
      lag = tail - cap - n;
      n = tail - cap;
    }
    tr__shared_t *b =
        atomic_load_explicit(&ch->bring[n % cap], memory_order_acquire);
    if (tr__unlikely(b->seq != n)) continue; /* overwritten since: again */
    tr_chan_view_t *v = s->view;
    if (tr__unlikely(!v)) {
      v = tr_msg_new(&tr_chan_view_t__type);
      if (!v) break; /* out of memory: the token comes back later */
      s->view = v;
    }
    v->hdr.next = NULL;
    v->hdr.tag = 0;
    v->hdr.sender = 0;
    v->hdr.flags = 0;
    v->chan = ch;
    v->value = b->value;
    v->seq = n;
    v->lagged = lag;
    v->index = s->index;
    v->priv_[0] = b;
    v->priv_[1] = NULL;
    next = n + 1;
    delivered++;
    lagged += lag;
    k++;
    int escaped;
    rc = tr__lend(ctx, &v->hdr, &escaped);
    if (escaped) s->view = NULL;
    if (rc < 0 || ctx->stop_req || ctx->mute_on) break;
  }
  *used = k;
  atomic_store_explicit(&s->next, next, memory_order_relaxed);
  if (delivered)
    atomic_fetch_add_explicit(&ch->adelivered, delivered, memory_order_relaxed);
  if (lagged)
    atomic_fetch_add_explicit(&ch->alagged, lagged, memory_order_relaxed);
  /* the token is never the runtime's to free after this */
  ctx->cur = m;
  ctx->cur_owned = 0;
  if (rc < 0 || ctx->stop_req || gone) {
    tr_msg_free(m); /* the actor stops: so does its subscription */
    return rc;
  }
  if (more) {
    tr__token_send(ctx->w, tr_ctx_self(ctx).id, m); /* after what came meanwhile */
    return rc;
  }
  tr__defer_t d;
  tr__defer_init(&d);
  int requeue = 0, drop = 0;
  tr__mutex_lock(&ch->mu);
  if (!s->listed) {
    drop = 1; /* unsubscribed meanwhile */
  } else if (next < atomic_load_explicit(&ch->tail, memory_order_relaxed)) {
    requeue = 1;
  } else if (atomic_load_explicit(&ch->closed, memory_order_relaxed)) {
    /* everything read: the close comes last */
    s->closed_sent = 1;
    tr__chan_send_closed(ch, s->ref, s->index, &d, 1);
    sub_unlist(ch, s, &d);
    drop = 1;
  } else {
    sub_park(ch, s, m);
  }
  bcast_reclaim(ch, &d); /* publishers are not the only ones to look */
  tr__mutex_unlock(&ch->mu);
  tr__defer_run(ch, &d); /* the token's reference keeps s and ch */
  if (requeue) tr__token_send(ctx->w, tr_ctx_self(ctx).id, m); /* after what came meanwhile */
  else if (drop) tr_msg_free(m);
  return rc;
}
