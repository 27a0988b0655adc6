/* SPDX-License-Identifier: MIT */
/*
 * The inbox: an intrusive lock-free multi-producer stack with sentinel
 * states, in the manner of CAF's inbox. Its head is one of
 *   TR__INBOX_IDLE    empty, and the owner is not scheduled
 *   NULL              empty, and the owner is scheduled or running
 *   TR__INBOX_CLOSED  the owner has stopped; pushes fail
 *   a message         the newest of a LIFO chain of pending messages
 * A push is one compare-and-swap that also tells the pusher whether it took
 * the inbox out of IDLE, i.e. whether it must schedule the owner. The owner
 * takes the whole chain with one exchange and reverses it (tr__inbox_take),
 * which restores send order. Only the owner takes, idles or closes.
 */
#ifndef TR_INBOX_H
#define TR_INBOX_H

#include <stdatomic.h>
#include <stdint.h>

#include <troupe/mailbox.h>

#define TR__INBOX_IDLE ((tr_msg_t *)(uintptr_t)1)
#define TR__INBOX_CLOSED ((tr_msg_t *)(uintptr_t)2)
#define TR__INBOX_IS_MSG(p) ((uintptr_t)(p) > 2)

typedef _Atomic(tr_msg_t *) tr__inbox_t;

/* Returns 1 if the inbox was idle (schedule the owner), 0 if not, -1 if it
 * is closed (the message stays with the caller). */
static inline int tr__inbox_push(tr__inbox_t *ib, tr_msg_t *m) {
  tr_msg_t *h = atomic_load_explicit(ib, memory_order_relaxed);
  for (;;) {
    if (h == TR__INBOX_CLOSED) return -1;
    m->next = TR__INBOX_IS_MSG(h) ? h : NULL;
    /* acq_rel: a pusher that takes the inbox out of IDLE goes on to
     * schedule the owner, so it must see everything its last run did */
    if (atomic_compare_exchange_weak_explicit(ib, &h, m, memory_order_acq_rel,
                                              memory_order_relaxed))
      return h == TR__INBOX_IDLE;
  }
}

/* Pushes a chain linked newest -> oldest through next (oldest->next is
 * overwritten) with one compare-and-swap. Same results as tr__inbox_push. */
static inline int tr__inbox_push_chain(tr__inbox_t *ib, tr_msg_t *newest,
                                       tr_msg_t *oldest) {
  tr_msg_t *h = atomic_load_explicit(ib, memory_order_relaxed);
  for (;;) {
    if (h == TR__INBOX_CLOSED) return -1;
    oldest->next = TR__INBOX_IS_MSG(h) ? h : NULL;
    if (atomic_compare_exchange_weak_explicit(ib, &h, newest,
                                              memory_order_acq_rel,
                                              memory_order_relaxed))
      return h == TR__INBOX_IDLE;
  }
}

/* Takes every pending message, oldest first; *n receives the count and
 * *tflags the union of their types' flags (the walk that restores order
 * is the one pass over a long chain of cold messages: whatever the owner
 * needs to know of all of them is gathered there). Returns NULL when
 * there is none. Owner only, never on a closed inbox. */
static inline tr_msg_t *tr__inbox_take(tr__inbox_t *ib, tr_msg_t **tail,
                                       uint64_t *n, uint32_t *tflags) {
  tr_msg_t *h = atomic_load_explicit(ib, memory_order_relaxed);
  if (!TR__INBOX_IS_MSG(h)) return NULL;
  h = atomic_exchange_explicit(ib, NULL, memory_order_acquire);
  tr_msg_t *prev = NULL;
  uint64_t k = 0;
  uint32_t f = 0;
  *tail = h;
  while (h) {
    tr_msg_t *nx = h->next;
    f |= h->type->flags;
    h->next = prev;
    prev = h;
    h = nx;
    k++;
  }
  *n = k;
  *tflags = f;
  return prev;
}

/* Marks an empty inbox idle. Returns 1 on success, 0 if mail arrived. */
static inline int tr__inbox_try_idle(tr__inbox_t *ib) {
  tr_msg_t *expect = NULL;
  return atomic_compare_exchange_strong_explicit(
      ib, &expect, TR__INBOX_IDLE, memory_order_acq_rel, memory_order_relaxed);
}

/* Closes the inbox; returns the pending chain (newest first) or NULL. */
static inline tr_msg_t *tr__inbox_close(tr__inbox_t *ib) {
  tr_msg_t *h = atomic_exchange_explicit(ib, TR__INBOX_CLOSED,
                                         memory_order_acquire);
  return TR__INBOX_IS_MSG(h) ? h : NULL;
}

#endif
