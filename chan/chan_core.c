/* SPDX-License-Identifier: MIT */
/*
 * The channel object shared by every kind: creation and reference
 * counting, sender handles, closing and its notifications, dead letters,
 * the deferred-work list that keeps re-entrant work out of the channel
 * lock, the futex waiters that blocked threads sleep on, the message types
 * the channel system delivers, and the counters.
 */
#include "chan_internal.h"
#include "mem.h"
#include "park.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- message types ------------------------------------------------------ */


static void item_dtor(void *msg) {
  tr_chan_item_t *it = msg;
  if (it->value) tr_msg_free(it->value);
  it->value = NULL;
  tr__item_done(it);
}

static void view_dtor(void *msg) { tr__view_done(msg); }

static void dead_dtor(void *msg) {
  tr_chan_dead_t *d = msg;
  if (d->value) tr_msg_free(d->value);
}

TR_EXTERN const tr_msgtype_t tr_chan_item_t__type = {
    .name = "tr_chan_item_t", .size = sizeof(tr_chan_item_t),
    .dtor = item_dtor};
TR_EXTERN const tr_msgtype_t tr_chan_view_t__type = {
    .name = "tr_chan_view_t", .size = sizeof(tr_chan_view_t),
    .dtor = view_dtor};
TR_EXTERN const tr_msgtype_t tr_chan_closed_t__type = {
    .name = "tr_chan_closed_t", .size = sizeof(tr_chan_closed_t)};
TR_EXTERN const tr_msgtype_t tr_chan_writable_t__type = {
    .name = "tr_chan_writable_t", .size = sizeof(tr_chan_writable_t)};
TR_EXTERN const tr_msgtype_t tr_chan_dead_t__type = {
    .name = "tr_chan_dead_t", .size = sizeof(tr_chan_dead_t),
    .dtor = dead_dtor};

/* ---- tokens: messages the run loop expands -------------------------------- */

int tr__expand_run(tr_ctx_t *ctx, tr_msg_t *m, unsigned room,
                   unsigned *used) {
  if (m->type == &tr__set_tick_type) return tr__set_run(ctx, m, room, used);
  return tr__bcast_run(ctx, m, room, used);
}

const tr_msgtype_t *tr__expand_as(const tr_msgtype_t *t) {
  return t == &tr__set_tick_type ? &tr_chan_item_t__type
                                 : &tr_chan_view_t__type;
}

void tr__token_send(tr__worker_t *w, uint64_t to, tr_msg_t *m) {
  tr_ref_t r = {to};
  /* unchecked: a token is not in the handler table, and no mailbox bound
   * refuses it (it stands for values that wait in their channels) */
  if (tr__send_raw(w, NULL, r, m, 0) != 0)
    tr_msg_free(m); /* the actor is gone: the token's end says so */
}

void tr__lent_escape(tr_ctx_t *ctx) {
  tr_msg_t *m = ctx->cur;
  ctx->borrowed = NULL;
  if (m->type == &tr_chan_item_t__type)
    tr__set_item_escape((tr_chan_item_t *)m);
  else
    tr__bcast_view_escape((tr_chan_view_t *)m);
}

/* ---- time and waiting ---------------------------------------------------- */

/* A waiter's word: 0 waiting (awake), TR__WORD_SLEEPING asleep in the
 * kernel, 1 woken. A waker only makes the futex system call when the
 * waiter is asleep; a waiter spins a little before it sleeps, since the
 * value it waits for is often a few hundred nanoseconds away. */
#define TR__WORD_SLEEPING 2u
#define TR__WAIT_SPINS 200

/* Sleeps while *word == 0, until deadline_ns. Returns 0 (woken or
 * spurious: re-check) or TR_ETIMEDOUT. */
int tr__wait_word(_Atomic uint32_t *word, uint64_t deadline_ns) {
  int ms = tr__remaining_ms(deadline_ns);
  if (ms == 0) return TR_ETIMEDOUT;
  for (int i = 0; i < TR__WAIT_SPINS; i++) {
    if (atomic_load_explicit(word, memory_order_acquire) != 0) return 0;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  uint32_t expect = 0;
  if (atomic_compare_exchange_strong_explicit(word, &expect, TR__WORD_SLEEPING,
                                              memory_order_acq_rel,
                                              memory_order_acquire))
    tr__futex_wait(word, TR__WORD_SLEEPING, ms);
  return 0;
}

void tr__waiter_add(tr__waiter_t **list, tr__waiter_t *w) {
  w->prev = NULL;
  w->next = *list;
  if (*list) (*list)->prev = w;
  *list = w;
}

void tr__waiter_del(tr__waiter_t **list, tr__waiter_t *w) {
  if (w->prev) w->prev->next = w->next;
  else if (*list == w) *list = w->next;
  else return; /* not listed */
  if (w->next) w->next->prev = w->prev;
  w->next = w->prev = NULL;
}

/* Wakes every waiting thread. Under the channel lock: a waiter registers
 * itself under the same lock after finding nothing, so no wake-up is
 * lost. */
void tr__waiters_wake(tr__waiter_t *list) {
  for (tr__waiter_t *w = list; w; w = w->next)
    if (atomic_exchange_explicit(w->word, 1, memory_order_acq_rel) ==
        TR__WORD_SLEEPING)
      tr__futex_wake(w->word, 1);
}

/* ---- delivery and deferred work ------------------------------------------ */

tr__worker_t *tr__chan_worker(tr_chan_t *ch) {
  return tr__current_worker(ch->rt);
}

/* Pushes m into actor `to`'s mailbox (check: the actor must accept the
 * type). Returns 0 or the code of the send; on failure m stays ours. */
int tr__chan_deliver(tr_chan_t *ch, uint64_t to, tr_msg_t *m) {
  tr_ref_t r = {to};
  return tr__send_raw(tr__chan_worker(ch), NULL, r, m, 1);
}

void tr__defer_send(tr__defer_t *d, uint64_t to, tr_msg_t *m) {
  if (!d->sends) {
    d->sends = d->inl;
    d->cap = sizeof(d->inl) / sizeof(d->inl[0]);
  }
  if (d->nsends == d->cap) {
    size_t ncap = d->cap * 2;
    tr__defer_send_t *n = malloc(ncap * sizeof(*n));
    if (!n) {
      /* cannot remember it: give up the notification, never the value */
      if (m->type == &tr_chan_dead_t__type) tr__defer_free(d, m);
      else tr_msg_free(m);
      return;
    }
    memcpy(n, d->sends, d->nsends * sizeof(*n));
    if (d->sends != d->inl) free(d->sends);
    d->sends = n;
    d->cap = ncap;
  }
  d->sends[d->nsends].m = m;
  d->sends[d->nsends].to = to;
  d->nsends++;
}

void tr__defer_free(tr__defer_t *d, tr_msg_t *m) {
  m->next = d->free_head;
  d->free_head = m;
}

/* Carries out what was deferred. The caller holds a reference on ch and
 * no channel or set lock. */
void tr__defer_run(tr_chan_t *ch, tr__defer_t *d) {
  for (size_t i = 0; i < d->nsends; i++) {
    tr_msg_t *m = d->sends[i].m;
    if (tr__chan_deliver(ch, d->sends[i].to, m) != 0) tr_msg_free(m);
  }
  if (d->sends && d->sends != d->inl) free(d->sends);
  d->sends = NULL;
  d->nsends = d->cap = 0;
  while (d->free_head) {
    tr_msg_t *m = d->free_head;
    d->free_head = m->next;
    m->next = NULL;
    tr_msg_free(m);
  }
  while (d->ticks) {
    tr_msg_t *m = d->ticks;
    d->ticks = m->next;
    m->next = NULL;
    tr__token_send(tr__chan_worker(ch), ((tr__bcast_tick_t *)m)->sub->ref, m);
  }
  while (d->retire) {
    tr__shared_t *b = d->retire;
    d->retire = b->rnext;
    tr__shared_retire(b);
  }
  while (d->unref_subs) {
    tr_chan_sub_t *s = d->unref_subs;
    d->unref_subs = s->dnext;
    tr__sub_unref(s);
  }
  if (d->unpark_set) {
    struct tr_chan_recv_any *set = d->unpark_set;
    d->unpark_set = NULL;
    tr__set_unpark(set);
    tr__set_unref(set);
  }
}

/* A value that was accepted cannot be delivered: count it, and return it
 * to dead_to if the sender asked. Under the channel lock. */
void tr__chan_dead_letter(tr_chan_t *ch, tr_msg_t *m, uint64_t dead_to,
                          int reason, int dropped, tr__defer_t *d) {
  if (dropped) ch->dropped++;
  else ch->dead++;
  if (dead_to) {
    tr_chan_dead_t *dm = tr_msg_new(&tr_chan_dead_t__type);
    if (dm) {
      dm->chan = ch;
      dm->reason = reason;
      dm->value = m;
      ch->returned++;
      tr__defer_send(d, dead_to, &dm->hdr);
      return;
    }
  }
  tr__defer_free(d, m);
}

/* Sends a tr_chan_closed_t to `to`: now (under the lock, so it follows
 * the values pushed before it) or deferred. */
void tr__chan_send_closed(tr_chan_t *ch, uint64_t to, unsigned index,
                          tr__defer_t *d, int now) {
  tr_chan_closed_t *c = tr_msg_new(&tr_chan_closed_t__type);
  if (!c) return;
  c->chan = ch;
  c->index = index;
  c->reason = atomic_load_explicit(&ch->closed, memory_order_relaxed);
  if (!now) {
    tr__defer_send(d, to, &c->hdr);
    return;
  }
  if (tr__chan_deliver(ch, to, &c->hdr) != 0) tr__defer_free(d, &c->hdr);
}

void tr__chan_close_locked(tr_chan_t *ch, int reason, tr__defer_t *d) {
  if (atomic_load_explicit(&ch->closed, memory_order_relaxed)) return;
  atomic_store_explicit(&ch->closed, reason, memory_order_seq_cst);
  tr__mpsc_closing(ch);
  tr__waiters_wake(ch->recv_waiters);
  tr__waiters_wake(ch->send_waiters);
  while (ch->writable) {
    tr__notify_t *n = ch->writable;
    ch->writable = n->next;
    tr_chan_writable_t *w = tr_msg_new(&tr_chan_writable_t__type);
    if (w) {
      w->chan = ch;
      tr__defer_send(d, n->ref, &w->hdr);
    }
    free(n);
  }
  while (ch->on_close) {
    tr__notify_t *n = ch->on_close;
    ch->on_close = n->next;
    tr__chan_send_closed(ch, n->ref, n->index, d, 0);
    free(n);
  }
  switch (ch->kind) {
  case TR_CHAN_MPSC:
  case TR_CHAN_ONESHOT:
    if (reason == TR_CHAN_CLOSED_RECEIVER)
      tr__mpsc_drain_dead(ch, TR_ECLOSED, d);
    if (ch->rx_kind == TR__RX_ACTOR) tr__mpsc_pump(ch, d);
    else if (ch->rx_kind == TR__RX_SET) {
      tr__set_mark(ch->rx_set, ch->rx_index);
      if (!d->unpark_set) {
        tr__set_ref(ch->rx_set);
        d->unpark_set = ch->rx_set;
      }
    }
    break;
  case TR_CHAN_BROADCAST:
  case TR_CHAN_WATCH:
    tr__bcast_pump_all(ch, d);
    break;
  }
}

/* ---- creation and references --------------------------------------------- */

/* Channel and set locks are held for a few dozen nanoseconds, by threads
 * that are mostly all running (the workers): a contended lock spins a
 * little before it sleeps in the kernel (glibc's adaptive mutex), rather
 * than paying a futex sleep and wake-up for a section that short. */
void tr__mutex_lock_slow(tr__mutex_t *mu) {
  /* a holder is usually out within a few hundred cycles: spin first */
  for (int i = 0; i < 64; i++) {
    tr__cpu_relax();
    uint32_t z = 0;
    if (atomic_load_explicit(&mu->v, memory_order_relaxed) == 0 &&
        atomic_compare_exchange_weak_explicit(&mu->v, &z, 1,
                                              memory_order_acquire,
                                              memory_order_relaxed))
      return;
  }
  /* 2: held and perhaps waited for, so the unlocker wakes somebody */
  while (atomic_exchange_explicit(&mu->v, 2, memory_order_acquire) != 0)
    tr__futex_wait(&mu->v, 2, -1);
}

void tr__mutex_wake(tr__mutex_t *mu) { tr__futex_wake(&mu->v, 1); }

int tr_chan_new(tr_runtime_t *rt, tr_chan_kind_t kind,
                const tr_chan_opts_t *opts, tr_chan_t **out) {
  tr_chan_opts_t o;
  if (!out) return TR_EINVAL;
  *out = NULL;
  if (!rt || (unsigned)kind > TR_CHAN_WATCH) return TR_EINVAL;
  if (opts) {
    if (tr__config_copy(&o, sizeof(o), sizeof(o), opts)) return TR_EINVAL;
  } else {
    memset(&o, 0, sizeof(o));
  }
  if ((unsigned)o.overflow > TR_OVERFLOW_BLOCK) return TR_EINVAL;
  if (o.capacity && o.low_water >= o.capacity) return TR_EINVAL;
  tr_chan_t *ch = calloc(1, sizeof(*ch));
  if (!ch) return TR_ENOMEM;
  ch->rt = rt;
  ch->kind = kind;
  atomic_init(&ch->refs, 2); /* the owner and the first sender */
  ch->senders = 1;
  switch (kind) {
  case TR_CHAN_MPSC:
    ch->cap = o.capacity;
    ch->overflow = o.overflow;
    ch->low_water = o.low_water ? o.low_water : o.capacity / 2;
    ch->rcap = o.capacity ? o.capacity : 16;
    break;
  case TR_CHAN_ONESHOT:
    ch->cap = 1;
    ch->overflow = TR_OVERFLOW_FAIL;
    ch->rcap = 1;
    break;
  case TR_CHAN_BROADCAST:
    ch->bcap = o.capacity ? o.capacity : 1024;
    ch->bring = calloc(ch->bcap, sizeof(*ch->bring));
    if (!ch->bring) {
      free(ch);
      return TR_ENOMEM;
    }
    break;
  case TR_CHAN_WATCH:
    break;
  }
  if (tr__mpsc_ring_new(ch) != 0) {
    free(ch->bring);
    free(ch);
    return TR_ENOMEM;
  }
  tr__mutex_init(&ch->mu);
  *out = ch;
  return 0;
}

int tr_chan_mpsc_new(tr_runtime_t *rt, size_t capacity, tr_overflow_t overflow,
                tr_chan_t **out) {
  tr_chan_opts_t o = {.capacity = capacity, .overflow = overflow};
  return tr_chan_new(rt, TR_CHAN_MPSC, &o, out);
}

int tr_chan_oneshot_new(tr_runtime_t *rt, tr_chan_t **out) {
  return tr_chan_new(rt, TR_CHAN_ONESHOT, NULL, out);
}

int tr_chan_broadcast_new(tr_runtime_t *rt, size_t capacity, tr_chan_t **out) {
  tr_chan_opts_t o = {.capacity = capacity};
  return tr_chan_new(rt, TR_CHAN_BROADCAST, &o, out);
}

int tr_chan_watch_new(tr_runtime_t *rt, tr_chan_t **out) {
  return tr_chan_new(rt, TR_CHAN_WATCH, NULL, out);
}

void tr__chan_ref(tr_chan_t *ch) {
  atomic_fetch_add_explicit(&ch->refs, 1, memory_order_relaxed);
}

static void chan_destroy(tr_chan_t *ch) {
  /* nobody else can see the channel now: no lock needed */
  tr__mpsc_ring_free(ch);
  tr__bcast_fini(ch);
  tr__notify_t *lists[2] = {ch->writable, ch->on_close};
  for (int i = 0; i < 2; i++)
    while (lists[i]) {
      tr__notify_t *n = lists[i];
      lists[i] = n->next;
      free(n);
    }
  free(ch);
}

void tr__chan_unref(tr_chan_t *ch) {
  uint64_t was = atomic_fetch_sub_explicit(&ch->refs, 1, memory_order_acq_rel);
  TR__ASSERT(was > 0, "channel reference dropped below zero");
  if (was == 1) chan_destroy(ch);
}

int tr_chan_sender_clone(tr_chan_t *ch) {
  if (!ch) return TR_EINVAL;
  tr__mutex_lock(&ch->mu);
  int rc = 0;
  if (atomic_load_explicit(&ch->closed, memory_order_relaxed)) {
    rc = TR_ECLOSED;
  } else {
    ch->senders++;
    tr__chan_ref(ch);
  }
  tr__mutex_unlock(&ch->mu);
  return rc;
}

void tr_chan_sender_drop(tr_chan_t *ch) {
  if (!ch) return;
  tr__defer_t d;
  tr__defer_init(&d);
  tr__mutex_lock(&ch->mu);
  if (ch->senders && --ch->senders == 0)
    tr__chan_close_locked(ch, TR_CHAN_CLOSED_SENDERS, &d);
  tr__mutex_unlock(&ch->mu);
  tr__defer_run(ch, &d);
  tr__chan_unref(ch);
}

int tr_chan_close(tr_chan_t *ch) {
  if (!ch) return TR_EINVAL;
  tr__defer_t d;
  tr__defer_init(&d);
  int rc = 0;
  tr__mutex_lock(&ch->mu);
  if (atomic_load_explicit(&ch->closed, memory_order_relaxed)) rc = TR_ECLOSED;
  else tr__chan_close_locked(ch, TR_CHAN_CLOSED_EXPLICIT, &d);
  tr__mutex_unlock(&ch->mu);
  tr__defer_run(ch, &d);
  return rc;
}

void tr_chan_free(tr_chan_t *ch) {
  if (!ch) return;
  /* owner_gone stays set in the freed block unless it was reused */
  TR__ASSERT(!ch->owner_gone, "channel freed twice");
  tr__defer_t d;
  tr__defer_init(&d);
  tr__mutex_lock(&ch->mu);
  ch->owner_gone = 1;
  if ((ch->kind == TR_CHAN_MPSC || ch->kind == TR_CHAN_ONESHOT) &&
      ch->rx_kind == TR__RX_NONE) {
    tr__chan_close_locked(ch, TR_CHAN_CLOSED_RECEIVER, &d);
    tr__mpsc_drain_dead(ch, TR_ECLOSED, &d); /* closed earlier: still dead */
  }
  tr__mutex_unlock(&ch->mu);
  tr__defer_run(ch, &d);
  tr__chan_unref(ch);
}

int tr_chan_notify_closed(tr_chan_t *ch, tr_ref_t who, unsigned index) {
  if (!ch || tr_ref_is_null(who)) return TR_EINVAL;
  tr__defer_t d;
  tr__defer_init(&d);
  int rc = 0;
  tr__mutex_lock(&ch->mu);
  if (atomic_load_explicit(&ch->closed, memory_order_relaxed)) {
    tr__chan_send_closed(ch, who.id, index, &d, 0);
  } else {
    tr__notify_t *n = malloc(sizeof(*n));
    if (!n) {
      rc = TR_ENOMEM;
    } else {
      n->ref = who.id;
      n->index = index;
      n->next = ch->on_close;
      ch->on_close = n;
    }
  }
  tr__mutex_unlock(&ch->mu);
  tr__defer_run(ch, &d);
  return rc;
}

int tr_chan_closed_wait(tr_chan_t *ch, tr_duration_t timeout_ms) {
  if (TR__DURATION_BAD(timeout_ms)) return TR_EINVAL;
  if (!ch) return TR_EINVAL;
  if (timeout_ms != 0) TR__ASSERT_MAY_BLOCK();
  uint64_t dl = tr__deadline_ns(timeout_ms);
  _Atomic uint32_t word;
  tr__waiter_t node = {.word = &word};
  for (;;) {
    tr__mutex_lock(&ch->mu);
    tr__waiter_del(&ch->recv_waiters, &node);
    if (atomic_load_explicit(&ch->closed, memory_order_relaxed)) {
      tr__mutex_unlock(&ch->mu);
      return 0;
    }
    atomic_store_explicit(&word, 0, memory_order_relaxed);
    tr__waiter_add(&ch->recv_waiters, &node);
    tr__mutex_unlock(&ch->mu);
    if (tr__wait_word(&word, dl) == TR_ETIMEDOUT) {
      tr__mutex_lock(&ch->mu);
      tr__waiter_del(&ch->recv_waiters, &node);
      int closed = atomic_load_explicit(&ch->closed, memory_order_relaxed);
      tr__mutex_unlock(&ch->mu);
      return closed ? 0 : TR_ETIMEDOUT;
    }
  }
}

int tr_chan_is_closed(const tr_chan_t *ch) {
  return ch && atomic_load_explicit(&ch->closed, memory_order_acquire) != 0;
}

tr_chan_kind_t tr_chan_kind(const tr_chan_t *ch) { return ch->kind; }

/* ---- sending (dispatch by kind) ------------------------------------------ */

static int chan_send(tr_ctx_t *ctx, tr_chan_t *ch, void *msg, tr_ref_t dead_to,
                     tr_duration_t timeout_ms) {
  tr_msg_t *m = msg;
  if (!ch || !m || !m->type || TR__DURATION_BAD(timeout_ms)) return TR_EINVAL;
  if (!m->tag) m->sender = ctx ? tr__self_ref(ctx->a).id : 0;
  tr__ctx_publish(ctx, m);
  int rc = TR_EINVAL;
  switch (ch->kind) {
  case TR_CHAN_MPSC:
  case TR_CHAN_ONESHOT:
    rc = tr__mpsc_send(ctx, ch, m, dead_to.id, timeout_ms);
    break;
  case TR_CHAN_BROADCAST:
    rc = tr__bcast_send(ch, m, dead_to.id);
    break;
  case TR_CHAN_WATCH:
    rc = tr__watch_send(ch, m);
    break;
  }
  /* a handler passing on the message it is handling gives it up */
  if (rc == 0 && ctx && m == ctx->cur) tr__ctx_disown(ctx);
  return rc;
}

/* A failed send frees the value unless the caller keeps it (the rule of
 * every send: lib/actor.c, tr__msg_drop_failed). */
int tr_chan_send_ex(tr_ctx_t *ctx, tr_chan_t *ch, void *msg, tr_ref_t dead_to,
                    tr_duration_t timeout_ms, unsigned flags) {
  int rc = chan_send(ctx, ch, msg, dead_to, timeout_ms);
  if (rc && !(flags & TR_SEND_KEEP)) return tr__msg_drop_failed(ctx, msg, rc);
  return rc;
}

int tr_chan_send(tr_ctx_t *ctx, tr_chan_t *ch, void *msg) {
  return tr_chan_send_ex(ctx, ch, msg, TR_REF_NULL, TR_FOREVER, 0);
}

int tr_chan_send_timeout(tr_chan_t *ch, void *msg, tr_duration_t timeout_ms) {
  if (timeout_ms != 0) TR__ASSERT_MAY_BLOCK();
  return tr_chan_send_ex(NULL, ch, msg, TR_REF_NULL, timeout_ms, 0);
}

/* ---- counters ----------------------------------------------------------- */

int tr_chan_stats(tr_chan_t *ch, tr_chan_stats_t *out) {
  if (!ch || !out) return TR_EINVAL;
  tr__mutex_lock(&ch->mu);
  memset(out, 0, sizeof(*out));
  out->kind = ch->kind;
  out->closed = atomic_load_explicit(&ch->closed, memory_order_relaxed);
  out->sent = ch->kind == TR_CHAN_MPSC ? tr__mpsc_sent(ch) : ch->sent;
  out->delivered = ch->delivered +
                   atomic_load_explicit(&ch->adelivered, memory_order_relaxed);
  out->dropped = ch->dropped;
  out->dead_letters = ch->dead;
  out->returned = ch->returned;
  out->lagged = ch->lagged +
                atomic_load_explicit(&ch->alagged, memory_order_relaxed);
  out->peak = tr__mpsc_peak(ch);
  out->subscribers = ch->nsubs + (ch->rx_kind != TR__RX_NONE);
  out->senders = ch->senders;
  out->version = atomic_load_explicit(&ch->version, memory_order_relaxed);
  if (ch->kind == TR_CHAN_BROADCAST) {
    uint64_t t = atomic_load_explicit(&ch->tail, memory_order_relaxed);
    out->len = t < ch->bcap ? t : ch->bcap;
  } else {
    out->len = tr__mpsc_len(ch) + ch->inflight;
  }
  tr__mutex_unlock(&ch->mu);
  return 0;
}
