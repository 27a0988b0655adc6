/* SPDX-License-Identifier: MIT */
/*
 * Message and actor memory. With jemalloc, allocations go through mallocx
 * and sized sdallocx, which use the calling thread's cache and skip the
 * size lookup on free; otherwise (--without-jemalloc, sanitizer builds)
 * through the C library so sanitizers see every object.
 */
#ifndef TR_MEM_H
#define TR_MEM_H

#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef TR_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>

/* Each thread keeps the small blocks it frees (17 to 128 bytes, by
 * jemalloc's 16-byte classes) on a free list of its own, up to
 * TR__MC_CAP per class, and allocates from it first. jemalloc's thread
 * cache does the same but holds about 200 blocks of a class: a bounded
 * channel or a busy actor frees and allocates in bursts of hundreds to
 * thousands of messages, and each overflow and refill went through the
 * arena's lock (bench/select: a fifth of its time). A thread's blocks go
 * back to jemalloc when it exits. */
#define TR__MC_CLASSES 9 /* index = (size + 15) / 16, 2..8 used */
#define TR__MC_CAP 2048
/* TR__MC_CAP once jemalloc's classes from 17 to 128 bytes were found to
 * be 16 bytes apart (the default quantum), else 0: nothing is cached. */
extern uint32_t tr__mc_cap;
typedef struct tr__mcache {
  void *head[TR__MC_CLASSES];
  uint32_t n[TR__MC_CLASSES];
  int registered;
} tr__mcache_t;
extern __thread tr__mcache_t tr__mc __attribute__((tls_model("initial-exec")));
void tr__mc_register(void);

/* The free list of size n: 2..8, or 0 for sizes kept by jemalloc alone. */
static inline size_t tr__mc_class(size_t n) {
  return n > 16 && n <= 128 ? (n + 15) >> 4 : 0;
}

static inline void *tr__mc_get(size_t n) {
  size_t c = tr__mc_class(n);
  if (!c) return NULL;
  void *p = tr__mc.head[c];
  if (p) {
    tr__mc.head[c] = *(void **)p;
    tr__mc.n[c]--;
  }
  return p;
}

static inline void *tr__alloc(size_t n) {
  void *p = tr__mc_get(n);
  return p ? p : mallocx(n, 0);
}
/* Messages are small: MALLOCX_ZERO's call to memset cost more than the
 * allocation itself (measured on bench/select), so up to 128 bytes the
 * words are cleared inline, one store each. */
static inline void *tr__zalloc(size_t n) {
  if (n > 128 || (n & 7)) return mallocx(n, MALLOCX_ZERO);
  char *p = tr__mc_get(n);
  if (!p && !(p = mallocx(n, 0))) return NULL;
  switch (n >> 3) {
  case 16: memset(p + 120, 0, 8); /* fall through */
  case 15: memset(p + 112, 0, 8); /* fall through */
  case 14: memset(p + 104, 0, 8); /* fall through */
  case 13: memset(p + 96, 0, 8); /* fall through */
  case 12: memset(p + 88, 0, 8); /* fall through */
  case 11: memset(p + 80, 0, 8); /* fall through */
  case 10: memset(p + 72, 0, 8); /* fall through */
  case 9: memset(p + 64, 0, 8); /* fall through */
  case 8: memset(p + 56, 0, 8); /* fall through */
  case 7: memset(p + 48, 0, 8); /* fall through */
  case 6: memset(p + 40, 0, 8); /* fall through */
  case 5: memset(p + 32, 0, 8); /* fall through */
  case 4: memset(p + 24, 0, 8); /* fall through */
  case 3: memset(p + 16, 0, 8); /* fall through */
  case 2: memset(p + 8, 0, 8); /* fall through */
  case 1: memset(p, 0, 8); /* fall through */
  default: break;
  }
  return p;
}
static inline void tr__free(void *p, size_t n) {
  if (!p) return;
  size_t c = tr__mc_class(n);
  if (c) {
    if (tr__mc.n[c] < tr__mc_cap) {
      if (__builtin_expect(!tr__mc.registered, 0)) tr__mc_register();
      *(void **)p = tr__mc.head[c];
      tr__mc.head[c] = p;
      tr__mc.n[c]++;
      return;
    }
    /* a cached block may have served a smaller request than its first:
     * its class size is within what sdallocx accepts for it (with the
     * lists off, the block is the one mallocx gave for n) */
    if (tr__mc_cap) n = c << 4;
  }
  sdallocx(p, n, 0);
}
#else
static inline void *tr__alloc(size_t n) { return malloc(n); }
static inline void *tr__zalloc(size_t n) { return calloc(1, n); }
static inline void tr__free(void *p, size_t n) {
  (void)n;
  free(p);
}
#endif

#endif
