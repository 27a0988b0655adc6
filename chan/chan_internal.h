/* SPDX-License-Identifier: MIT */
/*
 * Internal structures of the channel system, shared by the chan_*.c files
 * and never installed. One mutex per channel guards everything in it but
 * the few atomics named below; a select set has its own mutex, taken
 * before any of its channels' (lock order: set, then channel). Work that
 * may re-enter a channel (freeing a message whose destructor is an
 * envelope's, sending a notification that may fail) is collected in a
 * tr__defer_t while the lock is held and carried out after unlocking.
 * Values delivered to a subscriber are pushed into its mailbox while the
 * channel lock is held, which is what keeps them in channel order.
 */
#ifndef TR_CHAN_INTERNAL_H
#define TR_CHAN_INTERNAL_H

#include "internal.h"

#include <troupe/channel.h>

/* The lock of a channel and of a select set: a mutex on a futex word (0
 * free, 1 held, 2 held and perhaps waited for). Taking it uncontended is
 * one compare-and-swap and releasing it one exchange, both inline; the
 * pthread mutex it replaced cost a tenth of a select benchmark in calls.
 * Contended, it spins briefly, then sleeps on the word. */
typedef struct tr__mutex {
  _Atomic uint32_t v;
} tr__mutex_t;

void tr__mutex_lock_slow(tr__mutex_t *mu);
void tr__mutex_wake(tr__mutex_t *mu);

static inline void tr__mutex_init(tr__mutex_t *mu) { atomic_init(&mu->v, 0); }

static inline void tr__mutex_lock(tr__mutex_t *mu) {
  uint32_t z = 0;
  if (tr__likely(atomic_compare_exchange_strong_explicit(
          &mu->v, &z, 1, memory_order_acquire, memory_order_relaxed)))
    return;
  tr__mutex_lock_slow(mu);
}

static inline void tr__mutex_unlock(tr__mutex_t *mu) {
  if (tr__unlikely(atomic_exchange_explicit(&mu->v, 0, memory_order_release) ==
                   2))
    tr__mutex_wake(mu);
}

/* One queued value and where to return it if it dies (0: nowhere). */
typedef struct tr__chan_ent {
  tr_msg_t *m;
  uint64_t dead_to;
} tr__chan_ent_t;

/* The queue of a bounded mpsc channel that fails or blocks when full
 * (TR_OVERFLOW_FAIL, TR_OVERFLOW_BLOCK): a ring that senders push into
 * without the channel lock, while every taking (receivers, the close)
 * stays under it, so there is one consumer at a time.
 *
 * A sender reserves a position with a compare-and-swap on `tail` (the
 * senders' cache line), waits for the slot to be empty (the receiver
 * empties it before it moves `head` past it), stores the value, then
 * looks at `kick`. A slot whose value is NULL at `head` is empty, or
 * reserved and not yet filled: a reader under the lock that finds it so
 * while tail > head knows a value is on its way. `tail` carries
 * TR__LF_CLOSED from the close on, so no reservation follows it, and
 * the positions reserved before it are still counted: a channel is
 * drained only when head has caught up with tail.
 *
 * `kick`, written only under the lock, tells a sender that after its
 * push it must take the lock and do what the receiver side needs:
 * TR__KICK_SET is armed by a select pass that found nothing to take (the
 * next value must mark the set and may bring its token back; the first
 * sender that sees it under the lock clears it); TR__KICK_HOLD goes with
 * TR__LF_HOLD in `tail`, set while a thread waits to receive, an actor
 * subscriber is paced through the channel, values given back count
 * against the capacity, or the channel is closed: no position is then
 * reserved without the lock (the flag is in the word the reservation
 * swaps), and a sender that reserved before stores its value and comes
 * through the lock. Whoever arms a bit does so with a seq_cst store and
 * fence and then looks at the ring again; a sender fences between
 * storing its value and its look at kick: one of the two sees the other.
 * A receiver that finds the head slot empty takes the channel for empty
 * for now even if a position is reserved: that sender will come.
 *
 * Values given back to the channel (a select pass that stopped early, a
 * paced delivery refused) go to the stash, taken before the ring. */
#define TR__LF_CLOSED (1ull << 63)
#define TR__LF_HOLD (1ull << 62)
#define TR__LF_POS (TR__LF_HOLD - 1)
#define TR__LF_STASH 128 /* stash allocated with the ring */
enum { TR__KICK_SET = 1u, TR__KICK_HOLD = 2u };

typedef struct tr__lfslot {
  _Atomic(tr_msg_t *) m;
  uint64_t dead_to;
} tr__lfslot_t;

typedef struct tr__lfring {
  _Atomic uint64_t tail;       /* senders: positions reserved | CLOSED */
  _Atomic uint64_t head_seen;  /* senders: a head read earlier (<= head) */
  _Atomic uint64_t peak;       /* highest occupancy seen by a sender */
  TR__ALIGNED _Atomic uint64_t head; /* receiver side, under the lock */
  tr__chan_ent_t *stash;       /* given back, newest-given last */
  size_t nstash, capstash;
  TR__ALIGNED _Atomic uint32_t kick; /* read by every sender */
#ifdef TR_TEST_HOOKS
  _Atomic uint32_t stall_ms;   /* test knob, see tr__mpsc_ring_new */
#endif
  uint64_t mask;               /* slots - 1, fixed */
  TR__ALIGNED tr__lfslot_t slot[];
} tr__lfring_t;

/* A thread waiting on a channel: the futex word it sleeps on (shared by
 * the nodes of one select call) and its place in the channel's list. */
typedef struct tr__waiter {
  _Atomic uint32_t *word;
  struct tr__waiter *next, *prev;
} tr__waiter_t;

/* An actor to notify (closed, writable). */
typedef struct tr__notify {
  uint64_t ref;
  unsigned index;
  struct tr__notify *next;
} tr__notify_t;

/* A broadcast or watch value, stored once and shared by reference.
 * Views are counted in two halves so that making one costs no atomic
 * operation: `taken` counts the views made (under the channel lock, on
 * its own cache line), and `refs`, which starts at TR__SHARED_BIAS while
 * the channel retains the box, loses one per view freed. When the channel
 * lets the box go it adds taken - TR__SHARED_BIAS; whoever brings refs to
 * zero frees the box. */
#define TR__SHARED_BIAS (1ull << 62)
typedef struct tr__shared {
  _Atomic uint64_t refs;        /* the consumers' line */
  TR__ALIGNED tr_msg_t *value;  /* the pumps' line */
  uint64_t seq;                 /* broadcast: its sequence number */
  uint64_t taken;
  struct tr__shared *rnext;     /* retired list / tr__defer_t list */
  uint64_t repoch;              /* epoch stamped when it left the ring */
} tr__shared_t;

/* A broadcast subscription's token (TR__MSG_EXPAND): while an actor
 * subscriber has it (in its mailbox, or running it) the actor reads the
 * channel's ring itself, one handler call per value; once it has read
 * everything the token is parked on the channel until the next publish.
 * Freeing it ends the subscription (the actor stopped with it queued). */
typedef struct tr__bcast_tick {
  tr_msg_t hdr;
  struct tr_chan_sub *sub;      /* holds a reference */
} tr__bcast_tick_t;
extern const tr_msgtype_t tr__bcast_tick_type;
int tr__bcast_run(tr_ctx_t *ctx, tr_msg_t *m, unsigned room, unsigned *used);
void tr__bcast_view_escape(tr_chan_view_t *v);

/* Sends a token to actor `to` (unchecked), or frees it if the actor is
 * gone (which ends what it stands for). */
void tr__token_send(tr__worker_t *w, uint64_t to, tr_msg_t *m);
/* Hands the lent message m (a view, an envelope) to the running actor's
 * handler; *escaped: the handler kept or passed it on, so the caller must
 * not reuse it. Returns the handler's code. Inline: once per value. */
static inline int tr__lend(tr_ctx_t *ctx, tr_msg_t *m, int *escaped) {
  ctx->borrowed = m;
  int rc = tr__dispatch_current(ctx, m);
  /* escaped: it has references of its own; kept, passed on, or (a send
   * that failed) still ours, so freed here */
  *escaped = ctx->borrowed == NULL;
  if (*escaped && ctx->cur_owned) tr_msg_free(m);
  ctx->borrowed = NULL;
  return rc;
}

/* A select set's token (see chan_select.c); holds a reference on it. */
typedef struct tr__set_tick {
  tr_msg_t hdr;
  struct tr_chan_recv_any *set;
} tr__set_tick_t;
extern const tr_msgtype_t tr__set_tick_type;
int tr__set_run(tr_ctx_t *ctx, tr_msg_t *m, unsigned room, unsigned *used);
void tr__set_item_escape(tr_chan_item_t *it);

/* Work to do after the channel lock is released. */
typedef struct tr__defer_send {
  tr_msg_t *m;
  uint64_t to;
} tr__defer_send_t;

typedef struct tr__defer {
  tr_msg_t *free_head;          /* messages to free (linked by next) */
  tr__defer_send_t *sends;      /* notifications to send, in order */
  size_t nsends, cap;
  tr__defer_send_t inl[8];
  struct tr_chan_recv_any *unpark_set; /* a set whose token to send back (one ref) */
  struct tr_chan_sub *unref_subs;  /* subscriptions to release */
  tr_msg_t *ticks;                 /* broadcast tokens to send (by next) */
  tr__shared_t *retire;            /* boxes past their grace period */
} tr__defer_t;

/* Leaves inl[] uninitialized: zeroing the whole struct (a `= {0}`) was a
 * measurable part of every send. */
static inline void tr__defer_init(tr__defer_t *d) {
  d->free_head = NULL;
  d->sends = NULL;
  d->nsends = d->cap = 0;
  d->unpark_set = NULL;
  d->unref_subs = NULL;
  d->ticks = NULL;
  d->retire = NULL;
}

/* Nothing was deferred: the caller can skip tr__defer_run. */
static inline int tr__defer_empty(const tr__defer_t *d) {
  return !d->nsends && !d->free_head && !d->unpark_set && !d->unref_subs &&
         !d->ticks && !d->retire;
}

enum { TR__RX_NONE = 0, TR__RX_ACTOR = 1, TR__RX_SET = 2 };

/* A broadcast/watch subscription (an actor's or a thread's). refs: one
 * for the channel's list, one for a broadcast actor's token, one for a
 * watch actor's view in flight, one for a thread's handle. */
struct tr_chan_sub {
  tr_chan_t *ch;
  _Atomic uint64_t refs;
  uint64_t ref;               /* subscriber actor, 0 for a thread */
  unsigned index;
  _Atomic uint64_t next;      /* broadcast: next seq; watch: last seen */
  _Atomic uint32_t inflight;  /* watch actor: a view not yet freed */
  _Atomic uint32_t wake;      /* a thread subscriber sleeps on it */
  int listed;                 /* in ch->subs (under ch lock) */
  int closed_sent;
  tr__waiter_t wnode;
  struct tr_chan_sub *lnext, *lprev;
  struct tr_chan_sub *dnext;  /* tr__defer_t list */
  /* broadcast actor subscribers: the token while it is parked (on
   * ch->parked, under the lock), and the view lent to the handler, reused
   * from value to value (touched by the token's holder only) */
  tr_msg_t *tick;             /* non-NULL: parked */
  _Atomic int gone;           /* unlisted: its token stops reading */
  struct tr_chan_sub *pknext, *pkprev;
  tr_chan_view_t *view;
};

struct tr_chan {
  tr_runtime_t *rt;
  tr_chan_kind_t kind;
  tr__mutex_t mu;
  _Atomic uint64_t refs;
  uint64_t senders;
  _Atomic int closed;          /* tr_chan_close_reason_t */
  int owner_gone;
  size_t cap;
  tr_overflow_t overflow;
  size_t low_water;

  /* mpsc / oneshot: a ring of queued values, or for bounded mpsc
   * channels that fail or block when full, the lock-free ring `lf` */
  tr__lfring_t *lf;
  int rx_gone;                 /* the receiver went: values are dead */
  tr__chan_ent_t *ring;
  size_t rcap, head, len;
  int oneshot_used;
  int rx_kind;
  uint64_t rx_ref;
  unsigned rx_index, rx_flags;
  uint64_t inflight;           /* delivered to a paced actor, not acked */
  int rx_closed_sent;
  struct tr_chan_recv_any *rx_set;

  tr__waiter_t *recv_waiters;  /* threads in recv / select / closed_wait */
  tr__waiter_t *send_waiters;  /* threads blocked in a BLOCK send */
  tr__notify_t *writable;      /* actor senders refused under BLOCK */
  tr__notify_t *on_close;      /* tr_chan_notify_closed */

  /* broadcast: the last bcap values, read by actor subscribers without
   * the lock (a box that leaves the ring waits on the retired list until
   * every worker has passed a quiescent point); watch: the current one */
  _Atomic(tr__shared_t *) *bring;
  size_t bcap;
  tr__shared_t *retired, *retired_tail;
  tr_chan_sub_t *parked;       /* broadcast subscribers waiting for a value */
  _Atomic uint64_t adelivered, alagged; /* counted by actor subscribers */
  _Atomic uint64_t tail;       /* broadcast: values published */
  tr__shared_t *cur;           /* watch */
  _Atomic uint64_t version;    /* watch */
  tr_chan_sub_t *subs;
  uint64_t nsubs;

  uint64_t sent, delivered, dropped, dead, returned, lagged, peak;
};

/* chan_core.c */
void tr__chan_ref(tr_chan_t *ch);
void tr__chan_unref(tr_chan_t *ch);
int tr__chan_deliver(tr_chan_t *ch, uint64_t to, tr_msg_t *m);
void tr__defer_send(tr__defer_t *d, uint64_t to, tr_msg_t *m);
void tr__defer_free(tr__defer_t *d, tr_msg_t *m);
void tr__defer_run(tr_chan_t *ch, tr__defer_t *d);
void tr__chan_dead_letter(tr_chan_t *ch, tr_msg_t *m, uint64_t dead_to,
                          int reason, int dropped, tr__defer_t *d);
void tr__chan_close_locked(tr_chan_t *ch, int reason, tr__defer_t *d);
void tr__chan_send_closed(tr_chan_t *ch, uint64_t to, unsigned index,
                          tr__defer_t *d, int now);
void tr__waiters_wake(tr__waiter_t *list);
void tr__waiter_add(tr__waiter_t **list, tr__waiter_t *w);
void tr__waiter_del(tr__waiter_t **list, tr__waiter_t *w);
int tr__wait_word(_Atomic uint32_t *word, uint64_t deadline_ns);
tr__worker_t *tr__chan_worker(tr_chan_t *ch);

/* chan_mpsc.c */
int tr__mpsc_ring_new(tr_chan_t *ch);
void tr__mpsc_ring_free(tr_chan_t *ch);
size_t tr__mpsc_len(const tr_chan_t *ch);
uint64_t tr__mpsc_sent(const tr_chan_t *ch);
uint64_t tr__mpsc_peak(const tr_chan_t *ch);
void tr__mpsc_closing(tr_chan_t *ch);
void tr__mpsc_kick_hold(tr_chan_t *ch);
int tr__mpsc_arm_empty(tr_chan_t *ch);
int tr__mpsc_ready(tr_chan_t *ch);
int tr__mpsc_send(tr_ctx_t *ctx, tr_chan_t *ch, tr_msg_t *m, uint64_t dead_to,
                  tr_duration_t timeout_ms);
void tr__mpsc_pump(tr_chan_t *ch, tr__defer_t *d);
void tr__mpsc_drain_dead(tr_chan_t *ch, int reason, tr__defer_t *d);
int tr__mpsc_pop(tr_chan_t *ch, tr__chan_ent_t *e, tr__defer_t *d);
int tr__mpsc_unpop(tr_chan_t *ch, tr__chan_ent_t e);
void tr__mpsc_space_slow(tr_chan_t *ch, tr__defer_t *d);
/* Room appeared: wakes blocked senders and refused actors once the queue
 * is down to the low-water mark. Inline: a pop with nobody waiting (the
 * common case) costs one test. */
static inline void tr__mpsc_space(tr_chan_t *ch, tr__defer_t *d) {
  if (ch->send_waiters || ch->writable) tr__mpsc_space_slow(ch, d);
}
int tr__mpsc_subscribe(tr_chan_t *ch, tr_ref_t who, unsigned index,
                       unsigned flags);
int tr__mpsc_unsubscribe(tr_chan_t *ch, tr_ref_t who);
tr_chan_item_t *tr__item_new(tr_chan_t *ch, unsigned index, tr_msg_t *v);
void tr__item_done_chan(tr_chan_item_t *it);

/* chan_select.c */
void tr__set_unpark(struct tr_chan_recv_any *set);
void tr__set_unref(struct tr_chan_recv_any *set);
void tr__set_ref(struct tr_chan_recv_any *set);
int tr__set_is_parked(struct tr_chan_recv_any *set);
void tr__set_mark(struct tr_chan_recv_any *set, unsigned index);
void tr__item_done(tr_chan_item_t *it);

/* chan_bcast.c */
int tr__bcast_send(tr_chan_t *ch, tr_msg_t *m, uint64_t dead_to);
int tr__watch_send(tr_chan_t *ch, tr_msg_t *m);
void tr__bcast_pump_all(tr_chan_t *ch, tr__defer_t *d);
int tr__bcast_subscribe(tr_chan_t *ch, tr_ref_t who, unsigned index);
int tr__bcast_unsubscribe(tr_chan_t *ch, tr_ref_t who);
void tr__sub_unref(tr_chan_sub_t *s);
void tr__shared_unref(tr__shared_t *s);
void tr__shared_retire(tr__shared_t *s);
void tr__bcast_fini(tr_chan_t *ch);
void tr__view_done(tr_chan_view_t *v);

#endif
