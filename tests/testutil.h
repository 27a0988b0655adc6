/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the runtime test programs: a monotonic clock, process
 * CPU time, a bounded wait on an atomic counter, a runtime fixture with N
 * workers, a loopback listener, the stress scale, and the Check runner. Header-only: every test
 * file is its own program and includes this once.
 */
#ifndef TROUPE_TESTUTIL_H
#define TROUPE_TESTUTIL_H

#include <check.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <troupe.h>

/* ThreadSanitizer build? (GCC defines the macro, clang has the feature.) */
#if defined(__SANITIZE_THREAD__)
#define TU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TU_TSAN 1
#endif
#endif
#ifndef TU_TSAN
#define TU_TSAN 0
#endif

static inline uint64_t tu_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t tu_now_ms(void) { return tu_now_ns() / 1000000u; }

/* CPU time consumed by the whole process (every thread), in ns. */
static inline uint64_t tu_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void tu_sleep_ms(unsigned ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Waits until *c >= want or timeout_ms passed; returns 1 if reached. */
static inline int tu_wait_ge(_Atomic uint64_t *c, uint64_t want,
                             unsigned timeout_ms) {
  uint64_t end = tu_now_ms() + timeout_ms;
  while (atomic_load(c) < want) {
    if (tu_now_ms() > end)
      return 0;
    tu_sleep_ms(1);
  }
  return 1;
}

/* A runtime with `workers` workers (0 = default) and `budget` (0 =
 * default), started if `start` is nonzero. Fails the test on error. */
static inline tr_runtime_t *tu_runtime(unsigned workers, unsigned budget,
                                       int start) {
  tr_runtime_config_t cfg;
  tr_runtime_t *rt = NULL;
  tr_runtime_config_init(&cfg);
  cfg.workers = workers;
  cfg.budget = budget;
  ck_assert_int_eq(tr_runtime_new(&cfg, &rt), 0);
  ck_assert_ptr_nonnull(rt);
  if (start)
    ck_assert_int_eq(tr_runtime_start(rt), 0);
  return rt;
}

/* A TCP socket listening on 127.0.0.1 at a free port; *sa gets the
 * address. Fails the test on error. */
static inline int tu_listen_loopback(int backlog, struct sockaddr_in *sa) {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(l, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
  ck_assert_int_eq(listen(l, backlog), 0);
  socklen_t len = sizeof(a);
  ck_assert_int_eq(getsockname(l, (struct sockaddr *)&a, &len), 0);
  *sa = a;
  return l;
}

/* Waits for quiescence (bounded), shuts down, frees. */
static inline void tu_runtime_finish(tr_runtime_t *rt) {
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 30000), 0);
  ck_assert_int_eq(tr_runtime_shutdown(rt, 30000), 0);
  tr_runtime_free(rt);
}

/* Multiplier for stress counts: $TR_STRESS_SCALE, else 1 (0.2 under
 * ThreadSanitizer, which runs about ten times slower). */
static inline double tu_stress_scale(void) {
  const char *s = getenv("TR_STRESS_SCALE");
  if (s != NULL && *s != '\0') {
    double v = strtod(s, NULL);
    if (v > 0)
      return v;
  }
  return TU_TSAN ? 0.2 : 1.0;
}

/* Runs the suite with CK_NORMAL output; the exit status of main. */
static inline int tu_run(Suite *s) {
  SRunner *sr = srunner_create(s);
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
