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
