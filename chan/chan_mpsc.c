/* SPDX-License-Identifier: MIT */
/*
 * mpsc and oneshot channels: a ring of queued values under the channel
 * lock (it grows for unbounded channels), the three overflow policies, the
 * thread receiver (tr_chan_recv and the blocking tr_chan_recv_any), and the
 * actor receiver, which gets each value pushed into its mailbox and is
 * paced on bounded channels by acknowledgements. A oneshot is an mpsc of
 * capacity one that closes itself after its value.
 *
 * Bounded channels that fail or block when full queue their values in a
 * lock-free ring (tr__lfring_t, described in chan_internal.h): a send
 * takes no lock unless the receiver side asked to be told (kick), so a
 * sender and its receiver on two cores share the ring's slots and
 * nothing else. Unbounded, drop-oldest and oneshot channels keep a ring
 * under the channel lock (it grows, and drop-oldest sends take from it).
 */
#include "chan_internal.h"
#include "park.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the lock-free ring ---------------------------------------------------- */

int tr__mpsc_ring_new(tr_chan_t *ch) {
  if (ch->kind == TR_CHAN_MPSC && ch->cap &&
      ch->overflow != TR_OVERFLOW_DROP_OLDEST) {
    size_t n = 1;
    while (n < ch->cap) {
      if (n > SIZE_MAX / 2 / sizeof(tr__lfslot_t)) return TR_ENOMEM;
      n *= 2;
    }
    size_t bytes = sizeof(tr__lfring_t) + n * sizeof(tr__lfslot_t);
    void *p = NULL;
    if (posix_memalign(&p, TR__CACHELINE, bytes) != 0) return TR_ENOMEM;
    memset(p, 0, bytes);
    tr__lfring_t *r = p;
    r->mask = n - 1;
#ifdef TR_TEST_HOOKS
    /* For the tests of what a receiver does while a position is reserved
     * and not yet filled: with TR_TEST_CHAN_STALL_MS set when the channel
     * is made, its first sender without the lock sleeps that long between
     * the two. Only the test build of the library (libtroupe_test) has
     * it: the installed library reads no test variable. */
    const char *stall = getenv("TR_TEST_CHAN_STALL_MS");
    if (stall) atomic_init(&r->stall_ms, (uint32_t)strtoul(stall, NULL, 10));
#endif
    /* room for what one select pass or one pump can give back, so that
     * giving back does not allocate */
    r->capstash = ch->cap < TR__LF_STASH ? ch->cap : TR__LF_STASH;
    r->stash = malloc(r->capstash * sizeof(*r->stash));
    if (!r->stash) {
      free(r);
      return TR_ENOMEM;
    }
    ch->lf = r;
    return 0;
  }
  if (!ch->rcap) return 0;
  ch->ring = malloc(ch->rcap * sizeof(*ch->ring));
  return ch->ring ? 0 : TR_ENOMEM;
}

static inline uint64_t lf_tail(const tr__lfring_t *r) {
  return atomic_load_explicit(&r->tail, memory_order_acquire) & TR__LF_POS;
}

/* Values queued, reserved ones included (lock held, or no sender left). */
size_t tr__mpsc_len(const tr_chan_t *ch) {
  const tr__lfring_t *r = ch->lf;
  if (!r) return ch->len;
  return (size_t)(lf_tail(r) -
                  atomic_load_explicit(&r->head, memory_order_relaxed)) +
         r->nstash;
}

/* A value can be taken now (lock held): one reserved and not yet stored
 * does not count, its sender comes through the lock once it is stored. */
static inline int lf_ready(tr__lfring_t *r) {
  if (r->nstash) return 1;
  uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
  return atomic_load_explicit(&r->slot[h & r->mask].m,
                              memory_order_acquire) != NULL;
}

uint64_t tr__mpsc_sent(const tr_chan_t *ch) {
  return ch->lf ? lf_tail(ch->lf) : ch->sent;
}

uint64_t tr__mpsc_peak(const tr_chan_t *ch) {
  if (!ch->lf) return ch->peak;
  uint64_t p = atomic_load_explicit(&ch->lf->peak, memory_order_relaxed);
  return p > ch->peak ? p : ch->peak;
}

static void lf_note_peak(tr__lfring_t *r, uint64_t occ) {
  uint64_t p = atomic_load_explicit(&r->peak, memory_order_relaxed);
  while (occ > p && !atomic_compare_exchange_weak_explicit(
                        &r->peak, &p, occ, memory_order_relaxed,
                        memory_order_relaxed)) {
  }
}

#ifdef TR_TEST_HOOKS
static void lf_test_stall(tr__lfring_t *r) {
  uint32_t ms = atomic_exchange_explicit(&r->stall_ms, 0, memory_order_relaxed);
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (ms && nanosleep(&ts, &ts) != 0) {
  }
}
#endif

/* Pushes one value: 0, TR_EAGAIN (the ring holds cap values), TR_ECLOSED,
 * or TR_EBUSY when the receiver side holds sends to the lock and the
 * caller does not have it (`locked`). */
static int lf_push(tr_chan_t *ch, tr__lfring_t *r, tr_msg_t *m,
                   uint64_t dead_to, int locked) {
  uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
  uint64_t h, pos;
  for (;;) {
    if (t & TR__LF_CLOSED) return TR_ECLOSED;
    if ((t & TR__LF_HOLD) && !locked) return TR_EBUSY;
    pos = t & TR__LF_POS;
    h = atomic_load_explicit(&r->head_seen, memory_order_relaxed);
    /* signed: a stale t may lie behind the head another sender saw */
    if ((int64_t)(pos - h) >= (int64_t)ch->cap) {
      h = atomic_load_explicit(&r->head, memory_order_acquire);
      atomic_store_explicit(&r->head_seen, h, memory_order_relaxed);
      if ((int64_t)(pos - h) >= (int64_t)ch->cap) {
        uint64_t t2 = atomic_load_explicit(&r->tail, memory_order_relaxed);
        if (t2 == t) return TR_EAGAIN;
        t = t2;
        continue;
      }
    }
    /* the flags travel in the same word: a hold or a close set since the
     * load makes this fail */
    if (atomic_compare_exchange_weak_explicit(&r->tail, &t, t + 1,
                                              memory_order_relaxed,
                                              memory_order_relaxed))
      break;
  }
#ifdef TR_TEST_HOOKS
  if (tr__unlikely(atomic_load_explicit(&r->stall_ms, memory_order_relaxed)))
    lf_test_stall(r);
#endif
  tr__lfslot_t *s = &r->slot[pos & r->mask];
  /* position pos - slots was taken (it is behind the head we saw); the
   * receiver's NULL may not have reached us yet */
  while (tr__unlikely(atomic_load_explicit(&s->m, memory_order_acquire) != NULL))
    tr__cpu_relax();
  s->dead_to = dead_to;
  if (tr__unlikely(pos + 1 - h > atomic_load_explicit(&r->peak,
                                                      memory_order_relaxed))) {
    /* a new peak by the head we saw: measure it against the real one */
    uint64_t h2 = atomic_load_explicit(&r->head, memory_order_acquire);
    if (h2 > h) h = h2;
    if (pos + 1 > h) lf_note_peak(r, pos + 1 - h);
  }
  atomic_store_explicit(&s->m, m, memory_order_release);
  return 0;
}

/* Takes the oldest value that is there (lock held). 0: none yet. */
static int lf_pop(tr__lfring_t *r, tr__chan_ent_t *e) {
  if (r->nstash) {
    *e = r->stash[--r->nstash];
    return 1;
  }
  uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
  tr__lfslot_t *s = &r->slot[h & r->mask];
  tr_msg_t *m = atomic_load_explicit(&s->m, memory_order_acquire);
  if (!m) return 0;
  e->m = m;
  e->dead_to = s->dead_to;
  atomic_store_explicit(&s->m, NULL, memory_order_release);
  atomic_store_explicit(&r->head, h + 1, memory_order_release);
  return 1;
}

/* Sets kick bits, then fences: the caller looks at the ring next. */
static void lf_kick_or(tr__lfring_t *r, uint32_t bits) {
  uint32_t k = atomic_load_explicit(&r->kick, memory_order_relaxed);
  if ((k & bits) != bits)
    atomic_store_explicit(&r->kick, k | bits, memory_order_seq_cst);
  tr__fence_seq_cst();
}

/* Sends go through the lock from now on (lock held): no new reservation
 * without it, and senders that reserved before come through it after
 * storing their value. */
static void lf_hold(tr__lfring_t *r) {
  if (!(atomic_load_explicit(&r->tail, memory_order_relaxed) & TR__LF_HOLD))
    atomic_fetch_or_explicit(&r->tail, TR__LF_HOLD, memory_order_seq_cst);
  lf_kick_or(r, TR__KICK_HOLD);
}

/* A thread waits, an actor subscribed: sends come through the lock. */
void tr__mpsc_kick_hold(tr_chan_t *ch) {
  if (ch->lf) lf_hold(ch->lf);
}

static int lf_unpop(tr__lfring_t *r, tr__chan_ent_t e) {
  if (r->nstash == r->capstash) {
    size_t nc = r->capstash ? r->capstash * 2 : 8;
    tr__chan_ent_t *n = realloc(r->stash, nc * sizeof(*n));
    if (!n) return TR_ENOMEM;
    r->stash = n;
    r->capstash = nc;
  }
  r->stash[r->nstash++] = e;
  /* what is given back counts against the capacity, which a sender
   * without the lock does not see */
  lf_hold(r);
  return 0;
}

/* Nothing can be taken now (lock held): a select pass asks the next
 * sender to mark the set, then looks again. 1: still nothing, and the
 * sender of a value on its way will mark it; 0: a value is there. */
int tr__mpsc_arm_empty(tr_chan_t *ch) {
  tr__lfring_t *r = ch->lf;
  if (!r) return ch->len == 0;
  if (lf_ready(r)) return 0;
  lf_kick_or(r, TR__KICK_SET);
  return !lf_ready(r);
}

/* A value can be taken now (lock held). */
int tr__mpsc_ready(tr_chan_t *ch) {
  return ch->lf ? lf_ready(ch->lf) : ch->len != 0;
}

/* The channel closes (lock held): no position is reserved after this,
 * and senders that reserved one before come through the lock. */
void tr__mpsc_closing(tr_chan_t *ch) {
  tr__lfring_t *r = ch->lf;
  if (!r) return;
  atomic_fetch_or_explicit(&r->tail, TR__LF_CLOSED, memory_order_seq_cst);
  lf_hold(r);
}

/* Lock held, after a push that came through it: keeps sends on the lock
 * while the receiver side needs them there, lets them go without it
 * otherwise, and clears a select pass's request (it was just served). */
static void lf_kick_settle(tr_chan_t *ch) {
  tr__lfring_t *r = ch->lf;
  int hold = ch->rx_kind == TR__RX_ACTOR || ch->recv_waiters ||
             atomic_load_explicit(&ch->closed, memory_order_relaxed) ||
             r->nstash || ch->inflight;
  uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
  if (hold && !(t & TR__LF_HOLD))
    atomic_fetch_or_explicit(&r->tail, TR__LF_HOLD, memory_order_seq_cst);
  else if (!hold && (t & TR__LF_HOLD))
    atomic_fetch_and_explicit(&r->tail, ~TR__LF_HOLD, memory_order_seq_cst);
  uint32_t k = hold ? TR__KICK_HOLD : 0;
  if (atomic_load_explicit(&r->kick, memory_order_relaxed) != k)
    atomic_store_explicit(&r->kick, k, memory_order_seq_cst);
}

/* ---- the locked ring ------------------------------------------------------ */

static int ring_grow(tr_chan_t *ch) {
  size_t ncap = ch->rcap * 2;
  tr__chan_ent_t *n = malloc(ncap * sizeof(*n));
  if (!n) return TR_ENOMEM;
  for (size_t i = 0; i < ch->len; i++)
    n[i] = ch->ring[(ch->head + i) % ch->rcap];
  free(ch->ring);
  ch->ring = n;
  ch->rcap = ncap;
  ch->head = 0;
  return 0;
}

static int ring_push(tr_chan_t *ch, tr_msg_t *m, uint64_t dead_to) {
  if (ch->len == ch->rcap && ring_grow(ch) != 0) return TR_ENOMEM;
  /* head < rcap and len < rcap here: a compare, not a division */
  size_t at = ch->head + ch->len;
  if (at >= ch->rcap) at -= ch->rcap;
  tr__chan_ent_t *e = &ch->ring[at];
  e->m = m;
  e->dead_to = dead_to;
  ch->len++;
  return 0;
}

static tr__chan_ent_t ring_pop(tr_chan_t *ch) {
  tr__chan_ent_t e = ch->ring[ch->head];
  if (++ch->head == ch->rcap) ch->head = 0;
  ch->len--;
  return e;
}

/* Room appeared (a pop or an ack). Blocked threads and refused actors
 * are woken once the queue is down to the low-water mark: the hysteresis
 * turns one wake-up per freed slot into one per half a queue. */
void tr__mpsc_space_slow(tr_chan_t *ch, tr__defer_t *d) {
  if (tr__mpsc_len(ch) + ch->inflight > ch->low_water) return;
  if (ch->send_waiters) tr__waiters_wake(ch->send_waiters);
  if (ch->writable) {
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
  }
}

/* Puts a popped value back at the head (its delivery was refused for
 * now: a full bounded mailbox answered TR_EAGAIN). */
int tr__mpsc_unpop(tr_chan_t *ch, tr__chan_ent_t e) {
  if (ch->lf) return lf_unpop(ch->lf, e);
  /* senders may have refilled a bounded channel since the pop: it holds
   * more than its capacity until drained (they see it full meanwhile) */
  if (ch->len == ch->rcap && ring_grow(ch) != 0) return TR_ENOMEM;
  ch->head = ch->head ? ch->head - 1 : ch->rcap - 1;
  ch->ring[ch->head] = e;
  ch->len++;
  return 0;
}

/* Takes the oldest value there is (lock held); 0 if none is there yet. */
static inline int q_pop(tr_chan_t *ch, tr__chan_ent_t *e) {
  if (ch->lf) return lf_pop(ch->lf, e);
  if (!ch->len) return 0;
  *e = ring_pop(ch);
  return 1;
}

/* Frees what is still queued and the ring (no sender or receiver left). */
void tr__mpsc_ring_free(tr_chan_t *ch) {
  tr__chan_ent_t e;
  while (q_pop(ch, &e)) tr_msg_free(e.m);
  if (ch->lf) {
    free(ch->lf->stash);
    free(ch->lf);
    ch->lf = NULL;
  }
  free(ch->ring);
  ch->ring = NULL;
}

int tr__mpsc_pop(tr_chan_t *ch, tr__chan_ent_t *e, tr__defer_t *d) {
  if (!q_pop(ch, e)) return 0;
  ch->delivered++;
  tr__mpsc_space(ch, d);
  return 1;
}

/* The receiver is gone: everything queued is a dead letter. */
void tr__mpsc_drain_dead(tr_chan_t *ch, int reason, tr__defer_t *d) {
  /* a value still on its way is drained by its sender (see after_push) */
  ch->rx_gone = 1;
  int popped = 0;
  tr__chan_ent_t e;
  while (q_pop(ch, &e)) {
    popped = 1;
    tr__chan_dead_letter(ch, e.m, e.dead_to, reason, 0, d);
  }
  if (popped) tr__mpsc_space(ch, d);
}

tr_chan_item_t *tr__item_new(tr_chan_t *ch, unsigned index, tr_msg_t *v) {
  tr_chan_item_t *it = tr_msg_new(&tr_chan_item_t__type);
  if (!it) return NULL;
  it->chan = ch;
  it->index = index;
  it->value = v;
  tr__chan_ref(ch);
  return it;
}

/* How many values a subscribed actor may hold unacknowledged. */
static uint64_t window_of(const tr_chan_t *ch) {
  if (!ch->cap) return UINT64_MAX;
  return ch->overflow == TR_OVERFLOW_DROP_OLDEST ? 1 : ch->cap;
}

/* Puts a value the pump could not deliver back at the head; one that
 * cannot go back (no memory) is a dead letter, never lost. */
static void give_back(tr_chan_t *ch, tr__chan_ent_t e, tr__defer_t *d) {
  if (tr__mpsc_unpop(ch, e) != 0)
    tr__chan_dead_letter(ch, e.m, e.dead_to, TR_ENOMEM, 0, d);
}

/* Delivers queued values to the subscribed actor (under the lock, so they
 * arrive in channel order), then the closed notice once nothing is left. */
void tr__mpsc_pump(tr_chan_t *ch, tr__defer_t *d) {
  if (ch->rx_kind != TR__RX_ACTOR) return;
  uint64_t win = window_of(ch);
  int popped = 0;
  tr__chan_ent_t e;
  while (ch->inflight < win && q_pop(ch, &e)) {
    popped = 1;
    tr_msg_t *m = e.m;
    tr_chan_item_t *it = NULL;
    if (ch->rx_flags & TR_SUB_ENVELOPE) {
      it = tr__item_new(ch, ch->rx_index, e.m);
      if (!it) { /* retry on the next event */
        give_back(ch, e, d);
        break;
      }
      m = &it->hdr;
    }
    int rc = tr__chan_deliver(ch, ch->rx_ref, m);
    if (rc == TR_EAGAIN) {
      /* the actor's bounded mailbox is full: keep the value queued and
       * retry at the next send, ack or close */
      if (it) {
        it->value = NULL;
        it->chan = NULL;
        tr__defer_free(d, &it->hdr);
        tr__chan_unref(ch);
      }
      give_back(ch, e, d);
      break;
    }
    if (rc != 0) {
      /* the subscriber stopped (or does not take the type): the receiver
       * is gone, this value and the queued ones are dead letters */
      if (it) {
        it->value = NULL;
        it->chan = NULL; /* owes no credit */
        tr__defer_free(d, &it->hdr);
        tr__chan_unref(ch); /* the item's reference; ours keeps ch alive */
      }
      ch->rx_kind = TR__RX_NONE;
      tr__chan_dead_letter(ch, e.m, e.dead_to,
                           rc == TR_ENOACTOR ? TR_ENOACTOR : rc, 0, d);
      tr__chan_close_locked(ch, TR_CHAN_CLOSED_RECEIVER, d);
      tr__mpsc_drain_dead(ch, TR_ECLOSED, d);
      tr__mpsc_space(ch, d);
      return;
    }
    ch->delivered++;
    if (it || ch->cap) ch->inflight++;
  }
  if (popped) tr__mpsc_space(ch, d);
  int closed = atomic_load_explicit(&ch->closed, memory_order_relaxed);
  if (closed && !tr__mpsc_len(ch) && !ch->rx_closed_sent &&
      !(ch->kind == TR_CHAN_ONESHOT && closed == TR_CHAN_CLOSED_DONE)) {
    ch->rx_closed_sent = 1;
    tr__chan_send_closed(ch, ch->rx_ref, ch->rx_index, d, 1);
  }
}

/* ---- sending ------------------------------------------------------------ */

static void want_writable(tr_chan_t *ch, uint64_t ref) {
  for (tr__notify_t *n = ch->writable; n; n = n->next)
    if (n->ref == ref) return;
  tr__notify_t *n = malloc(sizeof(*n));
  if (!n) return; /* the actor can still poll */
  n->ref = ref;
  n->index = 0;
  n->next = ch->writable;
  ch->writable = n;
}

/* Unlocks after a send; the channel may only be held by the value's
 * receiver by now, so deferred work keeps it alive until done. */
static void unlock_run(tr_chan_t *ch, tr__defer_t *d) {
  if (tr__defer_empty(d)) {
    /* nothing deferred: the common send touches no reference count */
    tr__mutex_unlock(&ch->mu);
    return;
  }
  tr__chan_ref(ch);
  tr__mutex_unlock(&ch->mu);
  tr__defer_run(ch, d);
  tr__chan_unref(ch);
}

/* A value came to a channel its select set had found empty (lock held):
 * mark it for the set's next pass and send back a parked token. */
static void wake_set(tr_chan_t *ch, tr__defer_t *d) {
  tr__set_mark(ch->rx_set, ch->rx_index);
  if (!d->unpark_set && tr__set_is_parked(ch->rx_set)) {
    tr__set_ref(ch->rx_set);
    d->unpark_set = ch->rx_set;
  }
}

/* A value went into a lock-free ring whose receiver side asked to be
 * told (lock held): wake waiting threads, feed a paced actor, mark a
 * select set that had found the channel empty, and drain a channel
 * whose receiver is gone (the value raced with its close). */
static void after_push(tr_chan_t *ch, tr__defer_t *d) {
  uint32_t k = atomic_load_explicit(&ch->lf->kick, memory_order_relaxed);
  if (ch->recv_waiters) tr__waiters_wake(ch->recv_waiters);
  if (ch->rx_kind == TR__RX_ACTOR) {
    tr__mpsc_pump(ch, d);
  } else if (ch->rx_kind == TR__RX_SET && (k & TR__KICK_SET)) {
    wake_set(ch, d);
  }
  if (ch->rx_gone) tr__mpsc_drain_dead(ch, TR_ECLOSED, d);
  lf_kick_settle(ch);
}

int tr__mpsc_send(tr_ctx_t *ctx, tr_chan_t *ch, tr_msg_t *m, uint64_t dead_to,
                  tr_duration_t timeout_ms) {
  tr__defer_t d;
  tr__lfring_t *r = ch->lf;
  if (r) {
    /* the fast path: no lock unless the receiver side asked for it */
    if (lf_push(ch, r, m, dead_to, 0) == 0) {
      tr__fence_seq_cst();
      if (tr__likely(!atomic_load_explicit(&r->kick, memory_order_relaxed)))
        return 0;
      tr__defer_init(&d);
      tr__mutex_lock(&ch->mu);
      after_push(ch, &d);
      unlock_run(ch, &d);
      return 0;
    }
    /* full, closed or held: decided under the lock */
  }
  tr__defer_init(&d);
  _Atomic uint32_t word;
  tr__waiter_t node = {.word = &word};
  uint64_t dl = 0;
  int have_dl = 0, rc;
  tr__mutex_lock(&ch->mu);
  for (;;) {
    if (atomic_load_explicit(&ch->closed, memory_order_relaxed) ||
        ch->oneshot_used) {
      rc = TR_ECLOSED;
      break;
    }
    int full;
    if (!ch->cap) full = 0;
    else if (ch->overflow == TR_OVERFLOW_DROP_OLDEST) full = ch->len >= ch->cap;
    else full = tr__mpsc_len(ch) + ch->inflight >= ch->cap;
    if (full) {
      if (ch->overflow == TR_OVERFLOW_FAIL) {
        rc = TR_EAGAIN;
        break;
      }
      if (ch->overflow == TR_OVERFLOW_DROP_OLDEST) {
        tr__chan_ent_t e = ring_pop(ch);
        tr__chan_dead_letter(ch, e.m, e.dead_to, TR_ENOSPC, 1, &d);
      } else if (ctx) {
        /* an actor never blocks: it is told when to retry */
        want_writable(ch, tr_ctx_self(ctx).id);
        rc = TR_EAGAIN;
        break;
      } else if (timeout_ms == 0) {
        rc = TR_EAGAIN;
        break;
      } else {
        if (!have_dl) {
          dl = tr__deadline_ns(timeout_ms);
          have_dl = 1;
        }
        atomic_store_explicit(&word, 0, memory_order_relaxed);
        tr__waiter_add(&ch->send_waiters, &node);
        tr__mutex_unlock(&ch->mu);
        int w = tr__wait_word(&word, dl);
        tr__mutex_lock(&ch->mu);
        tr__waiter_del(&ch->send_waiters, &node);
        if (w == TR_ETIMEDOUT) {
          rc = TR_ETIMEDOUT;
          break;
        }
        continue;
      }
    }
    if (r) {
      /* lock-free senders may have filled it since the count: look again */
      if ((rc = lf_push(ch, r, m, dead_to, 1)) == TR_EAGAIN) continue;
      if (rc != 0) break;
      lf_note_peak(r, tr__mpsc_len(ch) + ch->inflight);
      after_push(ch, &d);
      break;
    }
    if ((rc = ring_push(ch, m, dead_to)) != 0) break;
    ch->sent++;
    if (ch->len + ch->inflight > ch->peak) ch->peak = ch->len + ch->inflight;
    if (ch->kind == TR_CHAN_ONESHOT) ch->oneshot_used = 1;
    if (ch->recv_waiters) tr__waiters_wake(ch->recv_waiters);
    if (ch->rx_kind == TR__RX_ACTOR) {
      tr__mpsc_pump(ch, &d);
    } else if (ch->rx_kind == TR__RX_SET && ch->len == 1) {
      /* The channel was empty: mark it ready for the set's next pass and
       * send back a parked token. A channel that already held values
       * needs neither: a pass that leaves values in a channel carries it
       * to the next pass (set->carry), and the token parks only after a
       * pass that carried nothing, so whoever made the channel non-empty
       * marked it, and that mark outlives this push. */
      wake_set(ch, &d);
    }
    if (ch->kind == TR_CHAN_ONESHOT)
      tr__chan_close_locked(ch, TR_CHAN_CLOSED_DONE, &d);
    rc = 0;
    break;
  }
  unlock_run(ch, &d);
  return rc;
}

/* ---- receiving on threads ------------------------------------------------ */

int tr_chan_recv(tr_chan_t *ch, tr_duration_t timeout_ms, void **out) {
  size_t i;
  if (!ch) return TR_EINVAL;
  if (timeout_ms != 0) TR__ASSERT_MAY_BLOCK();
  return tr_chan_recv_any(&ch, 1, timeout_ms, &i, out);
}

static _Thread_local unsigned select_rot;

int tr_chan_recv_any(tr_chan_t *const *chans, size_t n,
                     tr_duration_t timeout_ms, size_t *index, void **out) {
  if (!chans || !n || !index || !out || TR__DURATION_BAD(timeout_ms))
    return TR_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!chans[i] || (chans[i]->kind != TR_CHAN_MPSC &&
                      chans[i]->kind != TR_CHAN_ONESHOT))
      return TR_EINVAL;
  *out = NULL;
  tr__waiter_t inl[8], *nodes = inl;
  unsigned char linl[8], *listed = linl;
  if (n > 8) {
    nodes = malloc(n * sizeof(*nodes));
    listed = malloc(n);
    if (!nodes || !listed) {
      free(nodes);
      free(listed);
      return TR_ENOMEM;
    }
  }
  _Atomic uint32_t word;
  uint64_t dl = tr__deadline_ns(timeout_ms);
  size_t start = select_rot++ % n;
  int rc;
  for (size_t i = 0; i < n; i++) {
    nodes[i].word = &word;
    nodes[i].next = nodes[i].prev = NULL;
    listed[i] = 0;
  }
  for (;;) {
    size_t nclosed = 0;
    rc = 1;
    atomic_store_explicit(&word, 0, memory_order_relaxed);
    for (size_t k = 0; k < n && rc == 1; k++) {
      size_t i = (start + k) % n;
      tr_chan_t *ch = chans[i];
      tr__defer_t d;
      tr__defer_init(&d);
      tr__chan_ent_t e;
      tr__mutex_lock(&ch->mu);
      if (listed[i]) tr__waiter_del(&ch->recv_waiters, &nodes[i]);
      listed[i] = 0;
      if (ch->rx_kind != TR__RX_NONE) {
        rc = TR_EBUSY;
      } else if (tr__mpsc_pop(ch, &e, &d)) {
        *index = i;
        *out = e.m;
        rc = 0;
      } else if (atomic_load_explicit(&ch->closed, memory_order_relaxed) &&
                 !tr__mpsc_len(ch)) {
        nclosed++;
      } else {
        tr__waiter_add(&ch->recv_waiters, &nodes[i]);
        listed[i] = 1;
        /* senders that push without the lock come through it from now
         * on; one that pushed before does not know we wait */
        tr__mpsc_kick_hold(ch);
        if (tr__mpsc_ready(ch))
          atomic_store_explicit(&word, 1, memory_order_relaxed);
      }
      tr__mutex_unlock(&ch->mu);
      tr__defer_run(ch, &d);
    }
    if (rc == 1 && nclosed == n) rc = TR_ECLOSED;
    if (rc == 1 && tr__wait_word(&word, dl) == TR_ETIMEDOUT)
      rc = TR_ETIMEDOUT;
    /* leave every list joined before returning or looking again */
    for (size_t i = 0; i < n; i++) {
      if (!listed[i]) continue;
      tr__mutex_lock(&chans[i]->mu);
      tr__waiter_del(&chans[i]->recv_waiters, &nodes[i]);
      tr__mutex_unlock(&chans[i]->mu);
      listed[i] = 0;
    }
    if (rc != 1) break;
  }
  if (nodes != inl) {
    free(nodes);
    free(listed);
  }
  return rc;
}

/* ---- actors as receivers ------------------------------------------------- */

int tr__mpsc_subscribe(tr_chan_t *ch, tr_ref_t who, unsigned index,
                       unsigned flags) {
  tr__defer_t d;
  tr__defer_init(&d);
  int rc = 0;
  tr__mutex_lock(&ch->mu);
  if (ch->rx_kind != TR__RX_NONE) {
    rc = TR_EBUSY;
  } else if (atomic_load_explicit(&ch->closed, memory_order_relaxed) &&
             !tr__mpsc_len(ch)) {
    rc = TR_ECLOSED;
  } else {
    ch->rx_kind = TR__RX_ACTOR;
    ch->rx_ref = who.id;
    ch->rx_index = index;
    ch->rx_flags = flags;
    ch->rx_closed_sent = 0;
    ch->inflight = 0;
    tr__mpsc_kick_hold(ch); /* every send now feeds the actor */
    tr__mpsc_pump(ch, &d);
  }
  tr__mutex_unlock(&ch->mu);
  tr__defer_run(ch, &d);
  return rc;
}

int tr__mpsc_unsubscribe(tr_chan_t *ch, tr_ref_t who) {
  tr__defer_t d;
  tr__defer_init(&d);
  int rc = TR_ENOENT;
  tr__mutex_lock(&ch->mu);
  if (ch->rx_kind == TR__RX_ACTOR && ch->rx_ref == who.id) {
    ch->rx_kind = TR__RX_NONE;
    ch->inflight = 0; /* what is in flight is the actor's now */
    tr__mpsc_space(ch, &d);
    if (ch->owner_gone) {
      tr__chan_close_locked(ch, TR_CHAN_CLOSED_RECEIVER, &d);
      tr__mpsc_drain_dead(ch, TR_ECLOSED, &d);
    }
    rc = 0;
  }
  tr__chan_ref(ch);
  tr__mutex_unlock(&ch->mu);
  tr__defer_run(ch, &d);
  tr__chan_unref(ch);
  return rc;
}

int tr_chan_subscribe(tr_chan_t *ch, tr_ref_t who, unsigned index,
                      unsigned flags) {
  if (!ch || tr_ref_is_null(who)) return TR_EINVAL;
  if (ch->kind == TR_CHAN_MPSC || ch->kind == TR_CHAN_ONESHOT)
    return tr__mpsc_subscribe(ch, who, index, flags);
  return tr__bcast_subscribe(ch, who, index);
}

int tr_chan_unsubscribe(tr_chan_t *ch, tr_ref_t who) {
  if (!ch) return TR_EINVAL;
  if (ch->kind == TR_CHAN_MPSC || ch->kind == TR_CHAN_ONESHOT)
    return tr__mpsc_unsubscribe(ch, who);
  return tr__bcast_unsubscribe(ch, who);
}

void tr_chan_ack(tr_chan_t *ch, unsigned n) {
  if (!ch || !n) return;
  tr__defer_t d;
  tr__defer_init(&d);
  tr__mutex_lock(&ch->mu);
  if (ch->rx_kind == TR__RX_ACTOR && !(ch->rx_flags & TR_SUB_ENVELOPE)) {
    ch->inflight = ch->inflight > n ? ch->inflight - n : 0;
    tr__mpsc_space(ch, &d);
    tr__mpsc_pump(ch, &d);
  }
  tr__mutex_unlock(&ch->mu);
  tr__defer_run(ch, &d);
}

/* An enveloped value delivered straight to a subscriber was consumed. */
void tr__item_done_chan(tr_chan_item_t *it) {
  tr_chan_t *ch = it->chan;
  tr__defer_t d;
  tr__defer_init(&d);
  tr__mutex_lock(&ch->mu);
  if (ch->rx_kind == TR__RX_ACTOR && ch->inflight) {
    ch->inflight--;
    tr__mpsc_space(ch, &d);
    tr__mpsc_pump(ch, &d);
  }
  tr__mutex_unlock(&ch->mu);
  tr__defer_run(ch, &d);
  tr__chan_unref(ch);
}
