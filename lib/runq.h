/* SPDX-License-Identifier: MIT */
/*
 * A worker's local run queue: a bounded ring of runnable actors, FIFO for
 * its owner and stealable by other workers (the shape of Tokio's local
 * queue). Only the owner pushes (at the tail); the owner and thieves take
 * at the head with a compare-and-swap. A slot is overwritten only once the
 * head has moved past it, so a value read before a successful CAS of the
 * head is the one that was queued there. When the ring is full the owner
 * spills to the runtime's global queue.
 */
#ifndef TR_RUNQ_H
#define TR_RUNQ_H

#include <stdatomic.h>
#include <stdint.h>

#define TR__RUNQ_CAP 1024u
#define TR__RUNQ_MASK (TR__RUNQ_CAP - 1u)

struct tr__actor;

typedef struct tr__runq {
  _Atomic uint32_t head;
  _Atomic uint32_t tail;
  _Atomic(struct tr__actor *) buf[TR__RUNQ_CAP];
} tr__runq_t;

static inline uint32_t tr__runq_len(tr__runq_t *q) {
  uint32_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
  uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
  return t - h;
}

/* Owner only. Returns 0, or -1 when full. */
static inline int tr__runq_push(tr__runq_t *q, struct tr__actor *a) {
  uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
  uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
  if (t - h >= TR__RUNQ_CAP) return -1;
  atomic_store_explicit(&q->buf[t & TR__RUNQ_MASK], a, memory_order_relaxed);
  atomic_store_explicit(&q->tail, t + 1, memory_order_release);
  return 0;
}

/* Owner or thief: takes the oldest entry, or NULL. */
static inline struct tr__actor *tr__runq_pop(tr__runq_t *q) {
  uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
  for (;;) {
    uint32_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
    if (h == t) return NULL;
    struct tr__actor *a =
        atomic_load_explicit(&q->buf[h & TR__RUNQ_MASK], memory_order_relaxed);
    if (atomic_compare_exchange_weak_explicit(&q->head, &h, h + 1,
                                              memory_order_acq_rel,
                                              memory_order_acquire))
      return a;
  }
}

/* Thief: moves up to half of src (at most max) into out[]; returns count. */
static inline uint32_t tr__runq_steal(tr__runq_t *src, struct tr__actor **out,
                                      uint32_t max) {
  uint32_t h = atomic_load_explicit(&src->head, memory_order_acquire);
  for (;;) {
    uint32_t t = atomic_load_explicit(&src->tail, memory_order_acquire);
    uint32_t n = t - h;
    if (n == 0 || n > TR__RUNQ_CAP) return 0;
    n = n - n / 2;
    if (n > max) n = max;
    for (uint32_t i = 0; i < n; i++)
      out[i] = atomic_load_explicit(&src->buf[(h + i) & TR__RUNQ_MASK],
                                    memory_order_relaxed);
    if (atomic_compare_exchange_weak_explicit(&src->head, &h, h + n,
                                              memory_order_acq_rel,
                                              memory_order_acquire))
      return n;
  }
}

#endif
