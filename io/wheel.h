/* SPDX-License-Identifier: MIT */
/*
 * A hierarchical timing wheel with millisecond ticks. Level 0 has 4096
 * slots of 1 ms, so a timer due within about four seconds is filed in the
 * slot it fires from and never moved; levels 1-4 have 64 slots each,
 * level L slot covering 4096 * 64^(L-1) ms, so the wheel spans 2^36 ms
 * (about two years; later deadlines wait in the last level and are
 * re-filed when it comes round). Insert and remove are O(1) (intrusive
 * doubly linked slot lists and occupancy bitmaps); finding the next
 * deadline is O(levels); an entry is re-filed at most once per level on
 * its way down. The wheel knows nothing about threads or messages:
 * io/timer.c wraps it with a lock and the delivery. Internal, never
 * installed.
 */
#ifndef TR_IO_WHEEL_H
#define TR_IO_WHEEL_H

#include <stddef.h>
#include <stdint.h>

#define TR__WHEEL_L0_BITS 12
#define TR__WHEEL_L0_SLOTS (1u << TR__WHEEL_L0_BITS) /* 4096 */
#define TR__WHEEL_LEVELS 5                           /* level 0 and 4 more */
#define TR__WHEEL_SLOTS 64                           /* per upper level */

typedef struct tr__wnode {
  struct tr__wnode *prev, *next;
  uint64_t when;   /* deadline in wheel ms */
  uint16_t slot;
  uint8_t level, linked;
} tr__wnode_t;

typedef struct tr__wheel {
  uint64_t elapsed; /* wheel time processed so far, ms */
  size_t count;     /* entries in the wheel */
  /* level 0: one bit per slot, and one per word of those bits */
  uint64_t occ0_sum;
  uint64_t occ0[TR__WHEEL_L0_SLOTS / 64];
  uint64_t occupied[TR__WHEEL_LEVELS]; /* levels 1..; [0] unused */
  tr__wnode_t *slots0[TR__WHEEL_L0_SLOTS];
  tr__wnode_t *slots[TR__WHEEL_LEVELS][TR__WHEEL_SLOTS]; /* [0] unused */
} tr__wheel_t;

/* Empties the wheel; its clock starts at `now`. */
void tr__wheel_init(tr__wheel_t *w, uint64_t now);

/* Files n to fire at `when` (any value: UINT64_MAX waits in the last
 * level for ever). Returns 0, or 1 without filing it when when <= the
 * wheel's clock (the entry is already due). O(1). */
int tr__wheel_insert(tr__wheel_t *w, tr__wnode_t *n, uint64_t when);

/* Unfiles n (which must be in the wheel). O(1). */
void tr__wheel_remove(tr__wheel_t *w, tr__wnode_t *n);

/* The earliest time at which tr__wheel_poll may return something, never
 * later than the earliest deadline; UINT64_MAX when the wheel is empty. */
uint64_t tr__wheel_next(const tr__wheel_t *w);

/* Advances the clock towards now (never backwards) and returns the
 * entries whose deadline is <= the clock, unfiled, as a list linked
 * through next (earliest slots first). Slots are taken whole, and once
 * `max` entries have been returned no further slot is taken: the clock
 * then stays behind now, tr__wheel_next() stays <= now, and the next
 * call goes on from there. max = SIZE_MAX: everything due. */
tr__wnode_t *tr__wheel_poll(tr__wheel_t *w, uint64_t now, size_t max);

#endif
