/* SPDX-License-Identifier: MIT */
/*
 * Tests of the blocking pool (<troupe/io.h>, "The blocking pool"): every
 * job's result comes back to the calling actor with its arg and cookie; at
 * most blocking_threads jobs run at once; a full queue says TR_EAGAIN;
 * a result for an actor that stopped is dropped, and the runtime is not
 * quiescent while jobs are in flight.
 */
#include <check.h>
#include <stdlib.h>
#include <time.h>

#include <troupe.h>
#include <troupe/io.h>

#include "testutil.h"

static _Atomic int running, max_running;
static _Atomic uint64_t results, sum;

static int64_t job(void *arg) {
  int now = atomic_fetch_add(&running, 1) + 1;
  int m = atomic_load(&max_running);
  while (now > m && !atomic_compare_exchange_weak(&max_running, &m, now)) {
  }
  tu_sleep_ms(2); /* a blocking call */
  atomic_fetch_sub(&running, 1);
  return (int64_t)(intptr_t)arg * 2;
}

enum { NJOBS = 200 };

static int user_init(tr_ctx_t *ctx, void *st, void *arg) {
  (void)st;
  (void)arg;
  for (intptr_t i = 1; i <= NJOBS; i++)
    ck_assert_int_eq(tr_blocking_run(ctx, job, (void *)i, (uint64_t)i + 1000,
                                     NULL),
                     0);
  return 0;
}
static int user_done(tr_ctx_t *ctx, void *st, void *msg) {
  (void)ctx;
  (void)st;
  tr_blocking_done_t *d = msg;
  ck_assert_int_eq(d->result, (int64_t)(intptr_t)d->arg * 2);
  ck_assert_uint_eq(d->cookie, (uint64_t)(intptr_t)d->arg + 1000);
  atomic_fetch_add(&sum, (uint64_t)d->result);
  if (atomic_fetch_add(&results, 1) + 1 == NJOBS) tr_actor_stop(tr_ctx_self(ctx), 0);
  return 0;
}
static const tr_handler_t user_h[] = {{&tr_blocking_done_t__type, user_done}};
static const tr_behavior_t user_b = {
    .name = "user", .init = user_init, .handlers = TR_HANDLERS(user_h)};

static tr_runtime_t *rt_with_pool(unsigned threads, unsigned queue) {
  tr_runtime_t *rt = tu_runtime(2, 0, 0);
  tr_io_config_t cfg;
  tr_io_config_init(&cfg);
  cfg.blocking_threads = threads;
  cfg.blocking_queue = queue;
  ck_assert_int_eq(tr_io_attach(rt, &cfg), 0);
  ck_assert_int_eq(tr_runtime_start(rt), 0);
  return rt;
}

static void rt_done(tr_runtime_t *rt) {
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_int_eq(tr_runtime_shutdown(rt, 10000), 0);
  ck_assert_int_eq(tr_io_fini(rt), 0);
  tr_runtime_free(rt);
}

START_TEST(test_blocking_results_and_bound) {
  atomic_store(&results, 0);
  atomic_store(&sum, 0);
  atomic_store(&max_running, 0);
  tr_runtime_t *rt = rt_with_pool(3, 0);
  ck_assert_int_eq(tr_spawn(rt, &user_b, NULL, NULL), 0);
  /* quiescence waits for every result */
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&results), NJOBS);
  ck_assert_uint_eq(atomic_load(&sum), (uint64_t)NJOBS * (NJOBS + 1));
  ck_assert_int_le(atomic_load(&max_running), 3);
  ck_assert_int_ge(atomic_load(&max_running), 2);
  rt_done(rt);
}
END_TEST

static _Atomic int qfull_rc;
static int64_t slow(void *arg) {
  (void)arg;
  tu_sleep_ms(30);
  return 1;
}
static int qfull_init(tr_ctx_t *ctx, void *st, void *arg) {
  (void)st;
  (void)arg;
  int rc = 0;
  for (int i = 0; i < 10 && rc == 0; i++)
    rc = tr_blocking_run(ctx, slow, NULL, 0, NULL);
  atomic_store(&qfull_rc, rc);
  tr_actor_stop(tr_ctx_self(ctx), 0); /* results for a stopped actor are dropped */
  return 0;
}
static const tr_behavior_t qfull_b = {.name = "qfull", .init = qfull_init};

START_TEST(test_blocking_queue_full_and_dropped) {
  tr_runtime_t *rt = rt_with_pool(1, 2);
  ck_assert_int_eq(tr_spawn(rt, &qfull_b, NULL, NULL), 0);
  ck_assert_int_eq(atomic_load(&qfull_rc), TR_EAGAIN);
  rt_done(rt);
}
END_TEST

int main(void) {
  Suite *s = suite_create("blocking");
  TCase *tc = tcase_create("blocking");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_blocking_results_and_bound);
  tcase_add_test(tc, test_blocking_queue_full_and_dropped);
  suite_add_tcase(s, tc);
  return tu_run(s);
}
