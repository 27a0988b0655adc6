/* SPDX-License-Identifier: MIT */
/*
 * The timing wheel of wheel.h. An entry is filed at the level of the
 * highest 6-bit digit in which its deadline differs from the clock, in the
 * slot given by that digit of the deadline, so level 0 holds the current
 * 64 ms, level 1 the current 4096 ms, and so on. When the clock reaches a
 * higher-level slot, its entries are re-filed lower down (cascading),
 * which is the same scheme as Tokio's driver and the Linux kernel's timer
 * wheel.
 */
#include "wheel.h"

#define LEVEL_BITS 6
#define MAX_SPAN (1ull << (LEVEL_BITS * TR__WHEEL_LEVELS)) /* 2^36 ms */

static inline uint64_t slot_range(unsigned level) {
  return 1ull << (LEVEL_BITS * level);
}

static unsigned level_for(uint64_t elapsed, uint64_t when) {
  uint64_t masked = (elapsed ^ when) | (TR__WHEEL_SLOTS - 1);
  if (masked >= MAX_SPAN) masked = MAX_SPAN - 1;
  unsigned significant = 63u - (unsigned)__builtin_clzll(masked);
  return significant / LEVEL_BITS;
}

void tr__wheel_init(tr__wheel_t *w, uint64_t now) {
  w->elapsed = now;
  w->count = 0;
  for (unsigned l = 0; l < TR__WHEEL_LEVELS; l++) {
    w->occupied[l] = 0;
    for (unsigned s = 0; s < TR__WHEEL_SLOTS; s++) w->slots[l][s] = NULL;
  }
}

static void file(tr__wheel_t *w, tr__wnode_t *n) {
  unsigned level = level_for(w->elapsed, n->when);
  unsigned slot = (unsigned)(n->when >> (LEVEL_BITS * level)) &
                  (TR__WHEEL_SLOTS - 1);
  n->level = (uint8_t)level;
  n->slot = (uint8_t)slot;
  n->prev = NULL;
  n->next = w->slots[level][slot];
  if (n->next) n->next->prev = n;
  w->slots[level][slot] = n;
  w->occupied[level] |= 1ull << slot;
  n->linked = 1;
}

int tr__wheel_insert(tr__wheel_t *w, tr__wnode_t *n, uint64_t when) {
  n->when = when;
  if (when <= w->elapsed) {
    n->linked = 0;
    return 1;
  }
  file(w, n);
  w->count++;
  return 0;
}

static void unlink_node(tr__wheel_t *w, tr__wnode_t *n) {
  if (n->prev) n->prev->next = n->next;
  else w->slots[n->level][n->slot] = n->next;
  if (n->next) n->next->prev = n->prev;
  if (!w->slots[n->level][n->slot])
    w->occupied[n->level] &= ~(1ull << n->slot);
  n->prev = n->next = NULL;
  n->linked = 0;
}

void tr__wheel_remove(tr__wheel_t *w, tr__wnode_t *n) {
  if (!n->linked) return;
  unlink_node(w, n);
  w->count--;
}

/* The next occupied slot at or after the clock's position in a level,
 * and the time that slot starts. Returns 0 if the level is empty. */
static int level_next(const tr__wheel_t *w, unsigned level, unsigned *slot,
                      uint64_t *deadline) {
  uint64_t occ = w->occupied[level];
  if (!occ) return 0;
  uint64_t range = slot_range(level);
  uint64_t level_range = range * TR__WHEEL_SLOTS;
  unsigned now_slot = (unsigned)(w->elapsed / range) & (TR__WHEEL_SLOTS - 1);
  /* rotate so that bit 0 is the clock's slot */
  uint64_t rot = now_slot ? ((occ >> now_slot) | (occ << (64 - now_slot)))
                          : occ;
  unsigned s = ((unsigned)__builtin_ctzll(rot) + now_slot) &
               (TR__WHEEL_SLOTS - 1);
  uint64_t start = w->elapsed & ~(level_range - 1);
  uint64_t d = start + (uint64_t)s * range;
  /* A slot at or behind the clock belongs to the next turn of this level.
   * Only the top level can have one (deadlines beyond the span); the
   * others always hold deadlines ahead of the clock's digit, because the
   * clock never passes the start of a slot it has not processed. */
  if (d <= w->elapsed) d += level_range;
  *slot = s;
  *deadline = d;
  return 1;
}

static int next_expiration(const tr__wheel_t *w, unsigned *level,
                           unsigned *slot, uint64_t *deadline) {
  for (unsigned l = 0; l < TR__WHEEL_LEVELS; l++) {
    if (level_next(w, l, slot, deadline)) {
      *level = l;
      return 1;
    }
  }
  return 0;
}

uint64_t tr__wheel_next(const tr__wheel_t *w) {
  unsigned l, s;
  uint64_t d;
  if (!next_expiration(w, &l, &s, &d)) return UINT64_MAX;
  return d;
}

tr__wnode_t *tr__wheel_poll(tr__wheel_t *w, uint64_t now) {
  tr__wnode_t *head = NULL, **tail = &head;
  unsigned l, s;
  uint64_t d;
  while (next_expiration(w, &l, &s, &d) && d <= now) {
    tr__wnode_t *n = w->slots[l][s];
    w->slots[l][s] = NULL;
    w->occupied[l] &= ~(1ull << s);
    if (d > w->elapsed) w->elapsed = d;
    while (n) {
      tr__wnode_t *nx = n->next;
      n->prev = n->next = NULL;
      n->linked = 0;
      if (n->when <= w->elapsed) {
        w->count--;
        *tail = n;
        tail = &n->next;
      } else {
        file(w, n); /* cascade to a lower level */
      }
      n = nx;
    }
  }
  if (now > w->elapsed) w->elapsed = now;
  return head;
}
