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
static inline void *tr__zalloc(size_t n) { return mallocx(n, MALLOCX_ZERO); }
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
