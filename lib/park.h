/* SPDX-License-Identifier: MIT */
/*
 * Parking a thread on a 32-bit word: a futex on Linux. The waiter sleeps
 * while *word == expected; a waker changes the word and then wakes.
 */
#ifndef TR_PARK_H
#define TR_PARK_H

#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include <troupe/common.h>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Sleeps while *word == expected, at most timeout_ms (< 0: no limit).
 * Spurious returns are possible: callers re-check their condition. */
static inline void tr__futex_wait(_Atomic uint32_t *word, uint32_t expected,
                                  int timeout_ms) {
  struct timespec ts, *tsp = NULL;
  if (timeout_ms >= 0) {
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
    tsp = &ts;
  }
  /* EINTR, EAGAIN (word changed) and ETIMEDOUT all mean "re-check". */
  (void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected,
                tsp, NULL, 0);
}

static inline void tr__futex_wake(_Atomic uint32_t *word, int n) {
  (void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, n, NULL,
                NULL, 0);
}

static inline uint64_t tr__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The CLOCK_MONOTONIC time, in ns, at which a wait of d ends: UINT64_MAX
 * for TR_FOREVER (and for durations too long to represent: saturating). */
static inline uint64_t tr__deadline_ns(tr_duration_t d) {
  if (d < 0) return UINT64_MAX;
  uint64_t now = tr__now_ns();
  if ((uint64_t)d > (UINT64_MAX - now) / 1000000ull) return UINT64_MAX;
  return now + (uint64_t)d * 1000000ull;
}

/* A duration argument other than TR_FOREVER, TR_NOWAIT or a positive count
 * of milliseconds. */
#define TR__DURATION_BAD(d) ((d) < TR_FOREVER)

/* The int milliseconds of d for the waits that take one (TR_FOREVER stays
 * -1; longer than INT_MAX ms saturates, about 24 days: callers loop). */
static inline int tr__duration_int(tr_duration_t d) {
  if (d < 0) return -1;
  return d > 0x7fffffff ? 0x7fffffff : (int)d;
}

/* CLOCK_REALTIME deadline timeout_ms from now, for pthread_cond_timedwait
 * (meaningless when timeout_ms < 0: the caller waits without one). */
static inline struct timespec tr__deadline_ts(int timeout_ms) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  if (timeout_ms >= 0) {
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
      dl.tv_sec++;
      dl.tv_nsec -= 1000000000L;
    }
  }
  return dl;
}

static inline void tr__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

#endif
