/* SPDX-License-Identifier: MIT */
/*
 * Tests of the timing wheel at the data-structure level (io/wheel.c,
 * compiled into this program): every entry comes out at the first poll
 * whose time has reached its deadline, never earlier and never later,
 * across all levels and beyond the wheel's span; tr__wheel_next never
 * overshoots the earliest deadline; and one million entries armed with
 * half of them cancelled yield exactly the other half.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wheel.h"

#include "testutil.h"

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void) {
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}

typedef struct node {
  tr__wnode_t wn; /* first */
  int fired;
  int cancelled;
} node_t;

/* Polls from `from` to `to` in random steps, checking each fired entry. */
static size_t drain(tr__wheel_t *w, uint64_t from, uint64_t to,
                    uint64_t maxstep) {
  size_t fired = 0;
  uint64_t prev = from, now = from;
  while (now < to) {
    now += 1 + rnd() % maxstep;
    if (now > to) now = to;
    uint64_t next = tr__wheel_next(w);
    for (tr__wnode_t *n = tr__wheel_poll(w, now, SIZE_MAX), *nx; n; n = nx) {
      nx = n->next;
      node_t *x = (node_t *)n;
      ck_assert_msg(n->when <= now, "fired early: when %llu now %llu",
                    (unsigned long long)n->when, (unsigned long long)now);
      ck_assert_msg(n->when > prev, "fired late: when %llu prev poll %llu",
                    (unsigned long long)n->when, (unsigned long long)prev);
      ck_assert_uint_ge(n->when, next);
      ck_assert(!x->fired && !x->cancelled);
      x->fired = 1;
      fired++;
    }
    prev = now;
  }
  return fired;
}

START_TEST(test_wheel_exact_all_levels) {
  tr__wheel_t w;
  tr__wheel_init(&w, 1000);
  enum { N = 20000 };
  node_t *v = calloc(N, sizeof(*v));
  for (int i = 0; i < N; i++) {
    uint64_t span = 1ull << (rnd() % 30); /* every level */
    ck_assert_int_eq(tr__wheel_insert(&w, &v[i].wn, 1001 + rnd() % span), 0);
  }
  ck_assert_uint_eq(w.count, N);
  size_t fired = drain(&w, 1000, 1000 + (1ull << 30), 1ull << 16);
  ck_assert_uint_eq(fired, N);
  ck_assert_uint_eq(w.count, 0);
  ck_assert_uint_eq(tr__wheel_next(&w), UINT64_MAX);
  free(v);
}
END_TEST

START_TEST(test_wheel_fine_steps) {
  tr__wheel_t w;
  tr__wheel_init(&w, 0);
  enum { N = 5000 };
  node_t *v = calloc(N, sizeof(*v));
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(tr__wheel_insert(&w, &v[i].wn, 1 + rnd() % 300000), 0);
  /* steps of 1..3 ms, as the reactor polls */
  ck_assert_uint_eq(drain(&w, 0, 300001, 3), N);
  free(v);
}
END_TEST

START_TEST(test_wheel_beyond_span) {
  tr__wheel_t w;
  tr__wheel_init(&w, 5);
  node_t a = {0}, b = {0};
  uint64_t far = (1ull << 37) + 12345;
  ck_assert_int_eq(tr__wheel_insert(&w, &a.wn, far), 0);
  ck_assert_int_eq(tr__wheel_insert(&w, &b.wn, 70), 0);
  ck_assert_uint_le(tr__wheel_next(&w), 70);
  ck_assert_ptr_eq(tr__wheel_poll(&w, 70, SIZE_MAX), &b.wn);
  ck_assert_ptr_null(tr__wheel_poll(&w, far - 1, SIZE_MAX));
  ck_assert_ptr_eq(tr__wheel_poll(&w, far, SIZE_MAX), &a.wn);
  ck_assert_uint_eq(w.count, 0);
}
END_TEST

START_TEST(test_wheel_insert_due) {
  tr__wheel_t w;
  tr__wheel_init(&w, 100);
  node_t a = {0};
  ck_assert_int_eq(tr__wheel_insert(&w, &a.wn, 100), 1);
  ck_assert_int_eq(tr__wheel_insert(&w, &a.wn, 50), 1);
  ck_assert_uint_eq(w.count, 0);
}
END_TEST

START_TEST(test_wheel_million_half_cancelled) {
  tr__wheel_t w;
  tr__wheel_init(&w, 0);
  /* a million in plain builds; a tenth under ThreadSanitizer, whose
   * instrumentation of this single-threaded loop is what takes the time */
  enum { N = TU_TSAN ? 100000 : 1000000 };
  node_t *v = calloc(N, sizeof(*v));
  ck_assert_ptr_nonnull(v);
  uint64_t t0 = tu_now_ns();
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(tr__wheel_insert(&w, &v[i].wn, 1 + rnd() % 1000), 0);
  for (int i = 0; i < N; i += 2) {
    tr__wheel_remove(&w, &v[i].wn);
    v[i].cancelled = 1;
  }
  ck_assert_uint_eq(w.count, N / 2);
  size_t fired = 0;
  for (uint64_t now = 1; now <= 1001; now++) {
    for (tr__wnode_t *n = tr__wheel_poll(&w, now, SIZE_MAX), *nx; n; n = nx) {
      nx = n->next;
      ck_assert_uint_eq(n->when, now);
      fired++;
    }
  }
  uint64_t dt = tu_now_ns() - t0;
  ck_assert_uint_eq(fired, N / 2);
  for (int i = 1; i < N; i += 2) ck_assert(!v[i].wn.linked);
  /* speed is bench/timers' business; this only guards against a
   * pathological (non-O(1)) regression, with room for a loaded machine */
  ck_assert_msg(dt < 60000000000ull, "took %llu ns", (unsigned long long)dt);
  free(v);
}
END_TEST

/* A timer due within the current 4096 ms is filed in the slot it fires
 * from: nothing is walked again before it is due. (With 64 level-0
 * slots, a timer of 64 ms or more went to level 1 first, and the poll
 * that reached a level-1 slot walked 64 ms worth of timers at once.) */
START_TEST(test_wheel_insert_short_not_cascaded) {
  tr__wheel_t w;
  tr__wheel_init(&w, 0);
  enum { N = 4095 };
  node_t *v = calloc(N, sizeof(*v));
  ck_assert_ptr_nonnull(v);
  for (unsigned i = 0; i < N; i++) {
    ck_assert_int_eq(tr__wheel_insert(&w, &v[i].wn, 1 + i), 0);
    ck_assert_msg(v[i].wn.level == 0, "deadline %u filed at level %u", 1 + i,
                  (unsigned)v[i].wn.level);
  }
  size_t fired = 0;
  for (uint64_t now = 1; now <= N; now++) {
    ck_assert_uint_eq(tr__wheel_next(&w), now);
    for (tr__wnode_t *n = tr__wheel_poll(&w, now, SIZE_MAX), *nx; n; n = nx) {
      nx = n->next;
      ck_assert_uint_eq(n->when, now);
      fired++;
    }
  }
  ck_assert_uint_eq(fired, N);
  ck_assert_uint_eq(tr__wheel_next(&w), UINT64_MAX);
  free(v);
}
END_TEST

/* poll(max) takes whole slots until max entries are out, then leaves the
 * rest due for the next call, in deadline order, each entry once. */
START_TEST(test_wheel_poll_max_bounds_a_batch) {
  tr__wheel_t w;
  tr__wheel_init(&w, 0);
  enum { SLOTS = 10, PER = 100 };
  static node_t v[SLOTS * PER];
  memset(v, 0, sizeof(v));
  for (unsigned i = 0; i < SLOTS * PER; i++)
    ck_assert_int_eq(tr__wheel_insert(&w, &v[i].wn, 1 + i % SLOTS), 0);
  size_t total = 0, calls = 0;
  uint64_t last = 0;
  for (;;) {
    size_t got = 0;
    for (tr__wnode_t *n = tr__wheel_poll(&w, SLOTS, 150), *nx; n; n = nx) {
      nx = n->next;
      node_t *x = (node_t *)n;
      ck_assert(!x->fired);
      ck_assert_uint_ge(n->when, last);
      last = n->when;
      x->fired = 1;
      got++;
    }
    if (!got) break;
    calls++;
    total += got;
    ck_assert_uint_eq(got, 2 * PER); /* two whole slots */
    if (total < SLOTS * PER) ck_assert_uint_le(tr__wheel_next(&w), SLOTS);
    /* a timer armed meanwhile, behind the caller's clock, is not lost */
    if (calls == 1) {
      static node_t late;
      ck_assert_int_eq(tr__wheel_insert(&w, &late.wn, SLOTS + 2), 0);
    }
  }
  ck_assert_uint_eq(total, SLOTS * PER);
  ck_assert_uint_eq(calls, SLOTS / 2);
  ck_assert_uint_eq(w.count, 1);
  ck_assert_ptr_null(tr__wheel_poll(&w, SLOTS + 1, SIZE_MAX));
  ck_assert_ptr_nonnull(tr__wheel_poll(&w, SLOTS + 2, SIZE_MAX));
  ck_assert_uint_eq(w.count, 0);
}
END_TEST

/* Deadlines at the end of the clock's range wait for ever: nothing is
 * due, whatever the clock, and nothing overflows into the past. */
START_TEST(test_wheel_far_deadlines) {
  tr__wheel_t w;
  tr__wheel_init(&w, 3);
  node_t a = {0}, b = {0}, c = {0};
  ck_assert_int_eq(tr__wheel_insert(&w, &a.wn, UINT64_MAX), 0);
  ck_assert_int_eq(tr__wheel_insert(&w, &b.wn, UINT64_MAX - 1), 0);
  ck_assert_int_eq(tr__wheel_insert(&w, &c.wn, 1ull << 63), 0);
  uint64_t now = 3;
  for (unsigned i = 0; i < 64; i++) {
    now += 1ull << 36; /* a whole turn of the top level per step */
    ck_assert_ptr_null(tr__wheel_poll(&w, now, SIZE_MAX));
    uint64_t next = tr__wheel_next(&w);
    ck_assert_uint_gt(next, now);
    ck_assert_uint_ne(next, UINT64_MAX);
  }
  ck_assert_uint_eq(w.count, 3);
  tr__wheel_remove(&w, &a.wn);
  tr__wheel_remove(&w, &b.wn);
  tr__wheel_remove(&w, &c.wn);
  ck_assert_uint_eq(tr__wheel_next(&w), UINT64_MAX);
}
END_TEST

int main(void) {
  Suite *s = suite_create("timer_wheel");
  TCase *tc = tcase_create("wheel");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_wheel_exact_all_levels);
  tcase_add_test(tc, test_wheel_fine_steps);
  tcase_add_test(tc, test_wheel_beyond_span);
  tcase_add_test(tc, test_wheel_insert_due);
  tcase_add_test(tc, test_wheel_million_half_cancelled);
  tcase_add_test(tc, test_wheel_insert_short_not_cascaded);
  tcase_add_test(tc, test_wheel_poll_max_bounds_a_batch);
  tcase_add_test(tc, test_wheel_far_deadlines);
  suite_add_tcase(s, tc);
  return tu_run(s);
}
