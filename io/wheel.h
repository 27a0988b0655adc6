/* SPDX-License-Identifier: MIT */
/*
 * A hierarchical timing wheel with millisecond ticks: 6 levels of 64
 * slots, level L slot covering 64^L ms, so it spans 2^36 ms (about two
 * years; later deadlines wait in the last level and are re-filed when it
 * comes round). Insert and remove are O(1) (intrusive doubly linked slot
 * lists and a 64-bit occupancy mask per level); finding the next deadline
 * is O(levels); an entry is re-filed at most once per level on its way
 * down. The wheel knows nothing about threads or messages: io/timer.c
 * wraps it with a lock and the delivery. Internal, never installed.
 */
#ifndef TR_IO_WHEEL_H
#define TR_IO_WHEEL_H

#include <stddef.h>
#include <stdint.h>

#define TR__WHEEL_LEVELS 6
#define TR__WHEEL_SLOTS 64

typedef struct tr__wnode {
  struct tr__wnode *prev, *next;
  uint64_t when;   /* deadline in wheel ms */
  uint8_t level, slot, linked;
} tr__wnode_t;

typedef struct tr__wheel {
  uint64_t elapsed; /* wheel time processed so far, ms */
  size_t count;     /* entries in the wheel */
  uint64_t occupied[TR__WHEEL_LEVELS];
  tr__wnode_t *slots[TR__WHEEL_LEVELS][TR__WHEEL_SLOTS];
} tr__wheel_t;

/* Empties the wheel; its clock starts at `now`. */
void tr__wheel_init(tr__wheel_t *w, uint64_t now);

/* Files n to fire at `when`. Returns 0, or 1 without filing it when
 * when <= the wheel's clock (the entry is already due). O(1). */
int tr__wheel_insert(tr__wheel_t *w, tr__wnode_t *n, uint64_t when);

/* Unfiles n (which must be in the wheel). O(1). */
void tr__wheel_remove(tr__wheel_t *w, tr__wnode_t *n);

/* The earliest time at which tr__wheel_poll may return something, never
 * later than the earliest deadline; UINT64_MAX when the wheel is empty. */
uint64_t tr__wheel_next(const tr__wheel_t *w);

/* Advances the clock to now (never backwards) and returns the entries
 * whose deadline is <= now, unfiled, as a list linked through next
 * (earliest slots first). */
tr__wnode_t *tr__wheel_poll(tr__wheel_t *w, uint64_t now);

#endif
