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

#include <stdlib.h>
#include <string.h>

#ifdef TR_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>

static inline void *tr__alloc(size_t n) { return mallocx(n, 0); }
/* Messages are small: MALLOCX_ZERO's call to memset cost more than the
 * allocation itself (measured on bench/select), so up to 128 bytes the
 * words are cleared inline, one store each. */
static inline void *tr__zalloc(size_t n) {
  if (n > 128 || (n & 7)) return mallocx(n, MALLOCX_ZERO);
  char *p = mallocx(n, 0);
  if (!p) return NULL;
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
  if (p) sdallocx(p, n, 0);
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
