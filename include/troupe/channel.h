/* SPDX-License-Identifier: MIT */
/*
 * Channels: first-class, typed conduits of troupe messages that any number
 * of actors and threads can hold. Four kinds share one handle type:
 *
 *   mpsc       many senders, one receiver; unbounded or bounded with an
 *              overflow policy (fail, drop oldest, block/backpressure)
 *   oneshot    one value, then closed
 *   broadcast  every subscriber sees every value, in order; the value is
 *              stored once and shared; a subscriber that falls more than
 *              `capacity` values behind is told how many it missed
 *   watch      subscribers see the latest value, with a version number
 *
 * A value is an ordinary message (a struct that starts with a tr_msg_t).
 * A send consumes it: a successful send moves it into the channel, a failed
 * one frees it (TR_SEND_KEEP with tr_chan_send_ex keeps it to retry), the
 * rule of every send (<troupe/actor.h>, tr_send). The receiver is either an outside thread (blocking receive
 * with a timeout, or tr_chan_recv_any over several channels) or an actor that
 * subscribed: then each value arrives in its mailbox as a message.
 *
 * Handles and lifetime: tr_*_new returns a channel holding two references:
 * the owner's (released by tr_chan_free, which also means "the receiver is
 * gone") and a first sender's (released by tr_chan_sender_drop). Every
 * extra sender takes one with tr_chan_sender_clone. When the last sender
 * is dropped the channel closes ("all senders gone"); queued values can
 * still be received. Memory is released when every reference is gone. Each
 * sender holds its reference until its sends have returned: a value can
 * reach the receiver before tr_chan_send returns, so the reference a send
 * uses must not be the one another thread drops on receiving it.
 *
 * Nothing is lost silently: a value that was accepted but cannot be
 * delivered (the channel closed or the receiver went away with it queued,
 * the subscriber actor stopped, DROP_OLDEST evicted it) is counted in the
 * channel's stats and, if the sender asked for it with tr_chan_send_ex,
 * returned to the sender as a tr_chan_dead_t message.
 *
 * Threads: every function may be called from any thread, inside a handler
 * or outside the runtime, except those documented as blocking (the
 * *_recv, select and timed send functions with a nonzero timeout), which
 * must not be called from a handler: handlers never block.
 */
#ifndef TROUPE_CHANNEL_H
#define TROUPE_CHANNEL_H

#include <troupe/common.h>
#include <troupe/mailbox.h>
#include <troupe/actor.h>

TR_BEGIN_DECLS

typedef struct tr_chan tr_chan_t;
typedef struct tr_chan_sub tr_chan_sub_t;
typedef struct tr_chan_recv_any tr_chan_select_t;

/* The kind of a channel, fixed at creation. */
typedef enum tr_chan_kind {
  TR_CHAN_MPSC = 0,
  TR_CHAN_ONESHOT = 1,
  TR_CHAN_BROADCAST = 2,
  TR_CHAN_WATCH = 3
} tr_chan_kind_t;

/* Why a channel closed (tr_chan_closed_t.reason, tr_chan_stats_t). */
typedef enum tr_chan_close_reason {
  TR_CHAN_OPEN = 0,
  TR_CHAN_CLOSED_EXPLICIT = 1,   /* tr_chan_close */
  TR_CHAN_CLOSED_SENDERS = 2,    /* the last sender was dropped */
  TR_CHAN_CLOSED_RECEIVER = 3,   /* the owner freed it / subscriber died */
  TR_CHAN_CLOSED_DONE = 4        /* a oneshot delivered its value */
} tr_chan_close_reason_t;

/* Creation options. Zeroed = unbounded mpsc (broadcast: capacity 1024,
 * every other field "choose"). */
typedef struct tr_chan_opts {
  size_t size;            /* set by tr_chan_opts_init (<troupe/common.h>:
                             growable config structs); 0 = this release's */
  size_t capacity;        /* mpsc: max queued values, 0 = unbounded;
                             broadcast: values retained for laggards */
  tr_overflow_t overflow; /* bounded mpsc only */
  size_t low_water;       /* BLOCK: queue length at which waiting actor
                             senders are told writable; 0 = capacity/2 */
} tr_chan_opts_t;

/* Fills o with the defaults (every field 0) and its size (inline). */
static inline void tr_chan_opts_init(tr_chan_opts_t *o) {
  TR_CONFIG_SIZE_INIT(o);
}

/* ---- Message types the channel system delivers -------------------------
 * Actors that subscribe or send add handlers for the types they expect.
 * Each is freed by the runtime after the handler like any message. */

/* A value wrapped for delivery: to a select set (index = the channel's
 * index in the set) and to subscriptions made with TR_SUB_ENVELOPE.
 * status is 0 with a value, TR_ETIMEDOUT for a select-set timeout (value
 * NULL). The value belongs to the envelope: take it with
 * tr_chan_item_take() to keep it past the handler, otherwise it is freed
 * with the envelope. Freeing the envelope also tells the channel the value
 * was consumed (that is how an enveloped subscription is paced). */
typedef struct tr_chan_item {
  tr_msg_t hdr;
  tr_chan_t *chan;  /* the channel it came from (NULL for a timeout) */
  unsigned index;   /* subscription index */
  int status;
  void *value;
  void *priv_;      /* runtime use */
} tr_chan_item_t;

/* One broadcast value or watch version, as seen by one subscriber. The
 * value is shared by every subscriber and immutable: read it through the
 * const pointer, never free it. A view handed to an actor's handler is
 * valid during the call; keep it (tr_ctx_take), forward it or reply with
 * it and it holds the value until it is freed. Freeing a view (the
 * runtime does it after the handler) drops its reference.
 *   broadcast: seq = the value's sequence number (0, 1, 2, ... in publish
 *              order); lagged = how many values this subscriber missed
 *              right before this one because it fell more than capacity
 *              behind (0 normally).
 *   watch:     seq = the version (1 for the first value); lagged = how
 *              many versions were skipped since the previous view. */
typedef struct tr_chan_view {
  tr_msg_t hdr;
  tr_chan_t *chan;
  const void *value;
  uint64_t seq;
  uint64_t lagged;
  unsigned index;
  void *priv_[2];   /* runtime use */
} tr_chan_view_t;

/* The channel closed; sent to subscribed actors (after every value they
 * will still get) and to actors registered with tr_chan_notify_closed. */
typedef struct tr_chan_closed {
  tr_msg_t hdr;
  tr_chan_t *chan;
  unsigned index;
  int reason;       /* tr_chan_close_reason_t */
} tr_chan_closed_t;

/* A bounded TR_OVERFLOW_BLOCK channel that refused an actor's send with
 * TR_EAGAIN has drained to its low-water mark (or closed): retry. */
typedef struct tr_chan_writable {
  tr_msg_t hdr;
  tr_chan_t *chan;
} tr_chan_writable_t;

/* A value accepted by a channel that could not be delivered, returned to
 * the sender that asked for it (tr_chan_send_ex). reason: TR_ECLOSED
 * (closed or the receiver went away with the value queued), TR_ENOACTOR
 * (the subscriber stopped), TR_ENOSPC (dropped by DROP_OLDEST). The value
 * belongs to the message; take it with tr_chan_dead_take(). */
typedef struct tr_chan_dead {
  tr_msg_t hdr;
  tr_chan_t *chan;
  int reason;
  void *value;
} tr_chan_dead_t;

TR_EXTERN extern const tr_msgtype_t tr_chan_item_t__type;
TR_EXTERN extern const tr_msgtype_t tr_chan_view_t__type;
TR_EXTERN extern const tr_msgtype_t tr_chan_closed_t__type;
TR_EXTERN extern const tr_msgtype_t tr_chan_writable_t__type;
TR_EXTERN extern const tr_msgtype_t tr_chan_dead_t__type;

/* Takes the value out of an item or dead-letter message: the caller owns
 * it afterwards (the message's destructor will not free it). */
static inline void *tr_chan_item_take(tr_chan_item_t *it) {
  void *v = it->value;
  it->value = (void *)0;
  return v;
}
static inline void *tr_chan_dead_take(tr_chan_dead_t *d) {
  void *v = d->value;
  d->value = (void *)0;
  return v;
}

/* ---- Creating, sharing, closing ----------------------------------------- */

/* Creates a channel of the given kind on runtime rt (used to deliver to
 * subscribed actors). opts may be NULL. oneshot ignores opts (capacity 1).
 * watch ignores capacity and overflow. Returns 0 and the channel in *out
 * (owner reference + one sender reference), TR_EINVAL, or TR_ENOMEM. */
TR_EXTERN int tr_chan_new(tr_runtime_t *rt, tr_chan_kind_t kind,
                          const tr_chan_opts_t *opts, tr_chan_t **out);

/* Shorthands for tr_chan_new. tr_chan_mpsc_new: capacity 0 = unbounded. */
TR_EXTERN int tr_chan_mpsc_new(tr_runtime_t *rt, size_t capacity,
                          tr_overflow_t overflow, tr_chan_t **out);
TR_EXTERN int tr_chan_oneshot_new(tr_runtime_t *rt, tr_chan_t **out);
TR_EXTERN int tr_chan_broadcast_new(tr_runtime_t *rt, size_t capacity,
                               tr_chan_t **out);
TR_EXTERN int tr_chan_watch_new(tr_runtime_t *rt, tr_chan_t **out);

/* Adds a sender reference (give it to one more producer). Returns 0 or
 * TR_ECLOSED if the channel is already closed (no reference is taken). */
TR_EXTERN int tr_chan_sender_clone(tr_chan_t *ch);

/* Drops a sender reference. Dropping the last one closes the channel
 * (TR_CHAN_CLOSED_SENDERS); values already queued remain receivable. The
 * caller must not use ch afterwards unless it holds another reference. */
TR_EXTERN void tr_chan_sender_drop(tr_chan_t *ch);

/* Closes the channel: sends fail with TR_ECLOSED, blocked senders and
 * receivers wake up (TR_ECLOSED once the queue is empty), subscribed and
 * registered actors get a tr_chan_closed_t after their last value.
 * A second close changes nothing. Returns 0, TR_ECLOSED (already closed,
 * for whatever reason), or TR_EINVAL (NULL ch). */
TR_EXTERN int tr_chan_close(tr_chan_t *ch);

/* Releases the owner's reference. For mpsc and oneshot without a
 * subscribed actor or select set this means "the receiver is gone": the
 * channel closes (TR_CHAN_CLOSED_RECEIVER), values still queued become
 * dead letters (returned where asked), and senders are told (TR_ECLOSED
 * from sends, tr_chan_closed_t to registered actors). With a subscribed
 * actor the subscription is the receiver from then on, and that happens
 * when it unsubscribes or stops. For broadcast and watch only the
 * reference goes: they close by tr_chan_close or when the senders are
 * gone. NULL is ignored. */
TR_EXTERN void tr_chan_free(tr_chan_t *ch);

/* Registers actor `who` to receive one tr_chan_closed_t (with `index`)
 * when ch closes, at once if it is closed already: how an actor sender
 * learns that the receiver dropped. Returns 0, TR_ENOMEM or TR_EINVAL. */
TR_EXTERN int tr_chan_notify_closed(tr_chan_t *ch, tr_ref_t who,
                                    unsigned index);

/* Blocks the calling thread until ch is closed or timeout passes: how a thread sender learns that the receiver dropped.
 * Returns 0 (closed) or TR_ETIMEDOUT. Not from a handler. */
TR_EXTERN int tr_chan_closed_wait(tr_chan_t *ch, tr_duration_t timeout);

/* Whether ch is closed (racy by nature). */
TR_EXTERN int tr_chan_is_closed(const tr_chan_t *ch);

TR_EXTERN tr_chan_kind_t tr_chan_kind(const tr_chan_t *ch);

/* ---- Sending ------------------------------------------------------------ */

/* Sends msg into ch. ctx is the sending actor's context (a handler's),
 * or NULL from a thread outside the runtime. On success the message
 * belongs to the channel; on failure it is freed (an actor that retries
 * after tr_chan_writable_t sends with TR_SEND_KEEP).
 * Returns 0, TR_EINVAL, TR_ECLOSED (closed; a oneshot that already has
 * its value), TR_EAGAIN (bounded and full: FAIL policy, or BLOCK policy
 * from an actor, which will get a tr_chan_writable_t later),
 * TR_ENOENT (broadcast with no subscriber), TR_ENOMEM. Under the BLOCK
 * policy a thread blocks without limit; tr_chan_send_timeout bounds it.
 * Broadcast never blocks: slow subscribers lag instead. Watch replaces the
 * current value (the old one is released when no view holds it). */
TR_EXTERN int tr_chan_send(tr_ctx_t *ctx, tr_chan_t *ch, void *msg);

/* tr_chan_send from a thread with a bound on how long a TR_OVERFLOW_BLOCK
 * channel blocks it (TR_NOWAIT: TR_EAGAIN at once if full; TR_FOREVER: no
 * limit, as tr_chan_send). Adds TR_ETIMEDOUT to tr_chan_send's codes. */
TR_EXTERN int tr_chan_send_timeout(tr_chan_t *ch, void *msg,
                                   tr_duration_t timeout);

/* The full form. dead_to: where to return the value as a tr_chan_dead_t
 * if it is accepted but cannot be delivered (an actor's tr_ctx_self, a
 * handle's tr_handle_ref), or TR_REF_NULL to only count it. timeout as
 * in tr_chan_send_timeout (ignored when ctx is not NULL). flags:
 * TR_SEND_KEEP (on failure the caller keeps msg) or 0. */
TR_EXTERN int tr_chan_send_ex(tr_ctx_t *ctx, tr_chan_t *ch, void *msg,
                              tr_ref_t dead_to, tr_duration_t timeout,
                              unsigned flags);

/* ---- Receiving on a thread (mpsc, oneshot) ------------------------------- */

/* Takes the next value, waiting up to timeout (TR_NOWAIT: only looks;
 * TR_FOREVER: no limit).
 * Returns 0 with the value in *out (the caller owns it), TR_ETIMEDOUT,
 * TR_ECLOSED (closed and empty), TR_EBUSY (an actor subscribed), or
 * TR_EINVAL (not an mpsc/oneshot channel). Blocking; one receiver. */
TR_EXTERN int tr_chan_recv(tr_chan_t *ch, tr_duration_t timeout,
                           void **out);

/* A thread's select: waits up to timeout for a value on any of the n
 * channels (mpsc or oneshot). Returns 0 with *index = the channel that
 * fired and *out = its value (owned by the caller); TR_ECLOSED when every
 * channel is closed and empty; TR_ETIMEDOUT; TR_EBUSY (a channel has an
 * actor or a select set as receiver); TR_ENOMEM (more than 8 channels and
 * no memory for the wait); TR_EINVAL. Fairness: the channels are tried from a
 * start index that rotates on every call, so no ready channel starves. */
TR_EXTERN int tr_chan_recv_any(tr_chan_t *const *chans, size_t n,
                               tr_duration_t timeout, size_t *index,
                               void **out);

/* ---- Actors as receivers ----------------------------------------------- */

#define TR_SUB_ENVELOPE 0x1u /* mpsc/oneshot: deliver tr_chan_item_t */

/* Subscribes actor `who` to ch. Its values arrive in the actor's mailbox:
 *   mpsc, oneshot  each value itself, moved (the actor needs a handler for
 *                  its type), or wrapped in a tr_chan_item_t with
 *                  TR_SUB_ENVELOPE. One receiver only: a second
 *                  subscription is TR_EBUSY. Bounded channels pace the
 *                  actor: at most `capacity` values are queued or in its
 *                  mailbox. A bare value cannot say when it was handled,
 *                  so the actor calls tr_chan_ack once per value (an
 *                  enveloped one acks itself when freed). Values already
 *                  queued are delivered at once.
 *   broadcast      tr_chan_view_t for every value published from now on;
 *                  the actor must belong to the channel's runtime
 *                  (TR_EINVAL otherwise).
 *   watch          tr_chan_view_t of the current value (if any) and then
 *                  of each new version; at most one view is in flight.
 * When the channel closes the actor gets a tr_chan_closed_t after its
 * last value. If the actor stops, mpsc/oneshot close (receiver gone) and
 * the undelivered value is a dead letter; broadcast/watch unsubscribe it.
 * index is copied into every message for this subscription.
 * Returns 0, TR_EBUSY, TR_ECLOSED, TR_ENOMEM, TR_EINVAL. */
TR_EXTERN int tr_chan_subscribe(tr_chan_t *ch, tr_ref_t who, unsigned index,
                                unsigned flags);

/* Ends who's subscription (values in flight still arrive). For mpsc the
 * channel goes back to having no receiver: values queue up for the next
 * one. Returns 0 or TR_ENOENT. */
TR_EXTERN int tr_chan_unsubscribe(tr_chan_t *ch, tr_ref_t who);

/* Bounded mpsc with a bare-value subscriber: n values were handled and
 * room for n more may be delivered. Any thread. */
TR_EXTERN void tr_chan_ack(tr_chan_t *ch, unsigned n);

/* ---- Subscribing on a thread (broadcast, watch) --------------------------- */

/* Creates a thread subscription of a broadcast (starts at the next value
 * published) or watch (starts unseen: the current value, if any, is the
 * first view). Returns 0, TR_EINVAL, TR_ECLOSED, TR_ENOMEM. */
TR_EXTERN int tr_chan_sub_new(tr_chan_t *ch, tr_chan_sub_t **out);

/* Waits up to timeout (TR_NOWAIT: only looks; TR_FOREVER: no limit) for
 * the next view (the
 * caller frees it with tr_msg_free, which releases the shared value).
 * Returns 0, TR_ETIMEDOUT, or TR_ECLOSED (closed and nothing left).
 * One thread per subscription. */
TR_EXTERN int tr_chan_sub_recv(tr_chan_sub_t *sub, tr_duration_t timeout,
                               tr_chan_view_t **out);

/* Ends a thread subscription. Views already received stay valid. */
TR_EXTERN void tr_chan_sub_free(tr_chan_sub_t *sub);

/* Watch: copies a reference to the current value without waiting: 0 with
 * a view in *out (free it), or TR_ENOENT if no value was ever sent. */
TR_EXTERN int tr_chan_watch_borrow(tr_chan_t *ch, tr_chan_view_t **out);

/* ---- Select for actors -------------------------------------------------- */

/* A select set delivers values from several mpsc/oneshot channels to one
 * actor as tr_chan_item_t messages tagged with the channel's index, taken
 * at most `window` at a time (0 = 64) and chosen round-robin among the
 * ready channels, so none starves. The envelope handed to the handler is
 * valid during the call; keep it (tr_ctx_take) or forward it and it holds
 * its value and channel until freed. If the actor stops, the channels
 * lose their receiver: they close, and what they hold is dead. A channel that closes sends a
 * tr_chan_closed_t with its index. If idle_timeout is not TR_FOREVER and
 * no value arrives for that long while the set is idle, the actor gets a
 * tr_chan_item_t with status TR_ETIMEDOUT (once per idle period).
 * tr_chan_select_new returns 0, TR_ENOMEM, or TR_EINVAL (idle_timeout
 * TR_NOWAIT or negative other than TR_FOREVER). The thread's select is
 * tr_chan_recv_any. */
TR_EXTERN int tr_chan_select_new(tr_runtime_t *rt, tr_ref_t who,
                                 unsigned window, tr_duration_t idle_timeout,
                                 tr_chan_select_t **out);

/* Adds ch (takes a subscription on it, like tr_chan_subscribe) under the
 * next index (0, 1, ...), stored in *index if not NULL. Returns 0,
 * TR_EBUSY (ch already has a receiver), TR_ENOACTOR (the set's actor has
 * stopped), TR_EINVAL, TR_ENOMEM. */
TR_EXTERN int tr_chan_select_add(tr_chan_select_t *set, tr_chan_t *ch,
                                 unsigned *index);

/* Dissolves the set: its channels lose their receiver (values queue up
 * again for the next one). */
TR_EXTERN void tr_chan_select_free(tr_chan_select_t *set);

/* ---- Counters -------------------------------------------------------------- */

typedef struct tr_chan_stats {
  tr_chan_kind_t kind;
  int closed;             /* tr_chan_close_reason_t */
  uint64_t sent;          /* values accepted */
  uint64_t delivered;     /* values handed to a receiver (per subscriber
                             for broadcast) */
  uint64_t dropped;       /* DROP_OLDEST evictions */
  uint64_t dead_letters;  /* accepted but undeliverable */
  uint64_t returned;      /* of dropped + dead_letters, returned to senders */
  uint64_t lagged;        /* broadcast/watch: values missed, all subscribers */
  uint64_t len;           /* mpsc: queued + in flight to a paced actor */
  uint64_t peak;          /* high-water mark of len */
  uint64_t subscribers;
  uint64_t senders;       /* sender references */
  uint64_t version;       /* watch: current version */
} tr_chan_stats_t;

/* Reads the counters. Returns 0 or TR_EINVAL. */
TR_EXTERN int tr_chan_stats(tr_chan_t *ch, tr_chan_stats_t *out);

TR_END_DECLS

#endif
