/* SPDX-License-Identifier: MIT */
/*
 * The timing wheel of wheel.h. An entry is filed at the level of the
 * highest digit in which its deadline differs from the clock (a 12-bit
 * digit for level 0, 6-bit digits above), in the slot given by that digit
 * of the deadline: level 0 holds the current 4096 ms, level 1 the current
 * 2^18 ms, and so on. When the clock reaches a higher-level slot, its
 * entries are re-filed lower down (cascading), the scheme of Tokio's
 * driver and the Linux kernel's timer wheel.
 *
 * Why level 0 is wide: with 64 slots there, a timer of 65 ms or more sat
 * in a level-1 slot of 64 ms, and the poll that reached that slot walked
 * every timer due in those 64 ms at once (tens of thousands of cold nodes
 * under the shard's lock, with 100,000 actors each arming a few timers).
 * With 4096 slots, timers due within four seconds are filed where they
 * fire, each node is touched when armed and when fired only, and a poll
 * walks one millisecond's worth per slot. Erlang's "soon" wheel makes the
 * same choice. The cost is 32 KiB of slot heads per wheel.
 */
#include "wheel.h"

#define L0_MASK ((uint64_t)TR__WHEEL_L0_SLOTS - 1)
#define UP_BITS 6
#define MAX_SPAN (1ull << (TR__WHEEL_L0_BITS + UP_BITS * (TR__WHEEL_LEVELS - 1)))

static inline unsigned level_shift(unsigned level) {
  return level ? TR__WHEEL_L0_BITS + UP_BITS * (level - 1) : 0;
}

static unsigned level_for(uint64_t elapsed, uint64_t when) {
  uint64_t masked = (elapsed ^ when) | L0_MASK;
  if (masked >= MAX_SPAN) masked = MAX_SPAN - 1;
  unsigned significant = 63u - (unsigned)__builtin_clzll(masked);
  if (significant < TR__WHEEL_L0_BITS) return 0;
  return 1 + (significant - TR__WHEEL_L0_BITS) / UP_BITS;
}

void tr__wheel_init(tr__wheel_t *w, uint64_t now) {
  w->elapsed = now;
  w->count = 0;
  w->occ0_sum = 0;
  for (unsigned i = 0; i < TR__WHEEL_L0_SLOTS / 64; i++) w->occ0[i] = 0;
  for (unsigned s = 0; s < TR__WHEEL_L0_SLOTS; s++) w->slots0[s] = NULL;
  for (unsigned l = 0; l < TR__WHEEL_LEVELS; l++) {
    w->occupied[l] = 0;
    for (unsigned s = 0; s < TR__WHEEL_SLOTS; s++) w->slots[l][s] = NULL;
  }
}

static inline tr__wnode_t **slot_head(tr__wheel_t *w, unsigned level,
                                      unsigned slot) {
  return level ? &w->slots[level][slot] : &w->slots0[slot];
}

static inline void mark(tr__wheel_t *w, unsigned level, unsigned slot) {
  if (level) {
    w->occupied[level] |= 1ull << slot;
  } else {
    w->occ0[slot >> 6] |= 1ull << (slot & 63);
    w->occ0_sum |= 1ull << (slot >> 6);
  }
}

static inline void unmark(tr__wheel_t *w, unsigned level, unsigned slot) {
  if (level) {
    w->occupied[level] &= ~(1ull << slot);
  } else if (!(w->occ0[slot >> 6] &= ~(1ull << (slot & 63)))) {
    w->occ0_sum &= ~(1ull << (slot >> 6));
  }
}

static void file(tr__wheel_t *w, tr__wnode_t *n) {
  unsigned level = level_for(w->elapsed, n->when);
  unsigned slot = level ? (unsigned)(n->when >> level_shift(level)) &
                              (TR__WHEEL_SLOTS - 1)
                        : (unsigned)(n->when & L0_MASK);
  tr__wnode_t **head = slot_head(w, level, slot);
  n->level = (uint8_t)level;
  n->slot = (uint16_t)slot;
  n->prev = NULL;
  n->next = *head;
  if (n->next) n->next->prev = n;
  *head = n;
  mark(w, level, slot);
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
  tr__wnode_t **head = slot_head(w, n->level, n->slot);
  if (n->prev) n->prev->next = n->next;
  else *head = n->next;
  if (n->next) n->next->prev = n->prev;
  if (!*head) unmark(w, n->level, n->slot);
  n->prev = n->next = NULL;
  n->linked = 0;
}

void tr__wheel_remove(tr__wheel_t *w, tr__wnode_t *n) {
  if (!n->linked) return;
  unlink_node(w, n);
  w->count--;
}

/* The first occupied level-0 slot at or after `from`, or -1. */
static int l0_first_from(const tr__wheel_t *w, unsigned from) {
  unsigned word = from >> 6;
  uint64_t x = w->occ0[word] & (~0ull << (from & 63));
  if (x) return (int)(word * 64 + (unsigned)__builtin_ctzll(x));
  uint64_t sum = word == 63 ? 0 : w->occ0_sum & (~0ull << (word + 1));
  if (!sum) return -1;
  word = (unsigned)__builtin_ctzll(sum);
  return (int)(word * 64 + (unsigned)__builtin_ctzll(w->occ0[word]));
}

/* The next occupied slot at or after the clock's position in a level,
 * and the time that slot starts. Returns 0 if the level is empty. */
static int level_next(const tr__wheel_t *w, unsigned level, unsigned *slot,
                      uint64_t *deadline) {
  uint64_t range = 1ull << level_shift(level);
  unsigned nslots = level ? TR__WHEEL_SLOTS : TR__WHEEL_L0_SLOTS;
  uint64_t level_range = range * nslots;
  unsigned now_slot = (unsigned)(w->elapsed >> level_shift(level)) & (nslots - 1);
  unsigned s;
  if (level == 0) {
    if (!w->occ0_sum) return 0;
    int f = l0_first_from(w, now_slot);
    if (f < 0) f = l0_first_from(w, 0); /* wrapped round */
    s = (unsigned)f;
  } else {
    uint64_t occ = w->occupied[level];
    if (!occ) return 0;
    /* rotate so that bit 0 is the clock's slot */
    uint64_t rot = now_slot ? ((occ >> now_slot) | (occ << (64 - now_slot)))
                            : occ;
    s = ((unsigned)__builtin_ctzll(rot) + now_slot) & (TR__WHEEL_SLOTS - 1);
  }
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

tr__wnode_t *tr__wheel_poll(tr__wheel_t *w, uint64_t now, size_t max) {
  tr__wnode_t *head = NULL, **tail = &head;
  size_t got = 0;
  unsigned l, s;
  uint64_t d;
  while (next_expiration(w, &l, &s, &d) && d <= now) {
    if (got >= max) return head; /* the clock stays before slot d */
    tr__wnode_t **sh = slot_head(w, l, s);
    tr__wnode_t *n = *sh;
    *sh = NULL;
    unmark(w, l, s);
    if (d > w->elapsed) w->elapsed = d;
    while (n) {
      tr__wnode_t *nx = n->next;
      n->prev = n->next = NULL;
      n->linked = 0;
      if (n->when <= w->elapsed) {
        w->count--;
        got++;
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
