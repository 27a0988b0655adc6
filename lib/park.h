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
#include <pthread.h>
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

/* Every timed wait of the library runs on CLOCK_MONOTONIC: a step of the
 * wall clock (NTP, an administrator, a suspended virtual machine set
 * right) must neither end a wait early nor stretch it. Futex waits take a
 * relative timeout, which the kernel measures on CLOCK_MONOTONIC; a
 * condition variable that is waited on with a deadline is initialized by
 * tr__cond_init_monotonic, and its deadlines come from tr__deadline_ts.
 *
 * Huge timeouts saturate: a timeout of INT_MAX or INT64_MAX milliseconds
 * means "very long" (capped at TR__WAIT_MAX_MS, about 68 years), never a
 * deadline that overflowed into the past. */
#define TR__WAIT_MAX_MS ((int64_t)INT32_MAX * 1000)

/* A condition variable whose timed waits measure CLOCK_MONOTONIC.
 * Returns 0 or the error of pthread_cond_init. */
static inline int tr__cond_init_monotonic(pthread_cond_t *cv) {
  pthread_condattr_t a;
  int rc = pthread_condattr_init(&a);
  if (rc) return rc;
  rc = pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  if (rc == 0) rc = pthread_cond_init(cv, &a);
  pthread_condattr_destroy(&a);
  return rc;
}

/* The tr__now_ns time timeout_ms from now; UINT64_MAX when timeout_ms < 0
 * (no limit). Saturates. */
static inline uint64_t tr__deadline_ns(int64_t timeout_ms) {
  if (timeout_ms < 0) return UINT64_MAX;
  if (timeout_ms > TR__WAIT_MAX_MS) timeout_ms = TR__WAIT_MAX_MS;
  return tr__now_ns() + (uint64_t)timeout_ms * 1000000u;
}

/* Milliseconds left until deadline_ns (rounded up, so a wait does not end
 * just before it), clamped to INT_MAX; -1 for UINT64_MAX (no limit). */
static inline int tr__remaining_ms(uint64_t deadline_ns) {
  if (deadline_ns == UINT64_MAX) return -1;
  uint64_t now = tr__now_ns();
  if (now >= deadline_ns) return 0;
  uint64_t ms = (deadline_ns - now + 999999u) / 1000000u;
  return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* CLOCK_MONOTONIC deadline timeout_ms from now, for pthread_cond_timedwait
 * on a condition variable made by tr__cond_init_monotonic (meaningless
 * when timeout_ms < 0: the caller waits without one). Saturates. */
static inline struct timespec tr__deadline_ts(int64_t timeout_ms) {
  struct timespec dl;
  clock_gettime(CLOCK_MONOTONIC, &dl);
  if (timeout_ms >= 0) {
    if (timeout_ms > TR__WAIT_MAX_MS) timeout_ms = TR__WAIT_MAX_MS;
    dl.tv_sec += (time_t)(timeout_ms / 1000);
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
