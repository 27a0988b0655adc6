/* SPDX-License-Identifier: MIT */
/*
 * Tests of the runtime (<troupe/actor.h>, "Runtime" and "Counters"):
 * configuration defaults, the new/start/await_quiescent/shutdown/free
 * lifecycle and tr_runtime_run, double start, worker count, runtime
 * counters, a shutdown whose deadline cuts the draining short (nothing is
 * lost silently: handled + dead letters == sent), that an idle runtime uses
 * almost no CPU, and a loose bound on the wake-up latency after idling.
 */
#define _GNU_SOURCE
#include <check.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <troupe.h>

#include "testutil.h"

TR_MESSAGE_TYPE(tick_t, uint64_t v;)

static _Atomic uint64_t ticks_freed;
static void tick_dtor(void *msg) {
  (void)msg;
  atomic_fetch_add(&ticks_freed, 1);
}
TR_MESSAGE_DEFINE(tick_t, .dtor = tick_dtor);

/* Results shared by the actors of one test (each test is a fresh process
 * under CK_FORK; reset() also makes CK_FORK=no work). */
static _Atomic uint64_t handled;
static _Atomic uint64_t stops;
static _Atomic int last_reason;
static _Atomic int reason_all_shutdown;

static void reset(void) {
  atomic_store(&ticks_freed, 0);
  atomic_store(&handled, 0);
  atomic_store(&stops, 0);
  atomic_store(&last_reason, -1234);
  atomic_store(&reason_all_shutdown, 1);
}

static void note_stop(tr_ctx_t *ctx, void *state, int reason) {
  (void)ctx;
  (void)state;
  atomic_store(&last_reason, reason);
  if (reason != TR_EXIT_SHUTDOWN)
    atomic_store(&reason_all_shutdown, 0);
  atomic_fetch_add(&stops, 1);
}

/* counter: counts ticks. */
static int counter_on_tick(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  (void)msg;
  atomic_fetch_add(&handled, 1);
  return 0;
}
static const tr_handler_t counter_handlers[] = {
    {.type = TR_TYPE(tick_t), .fn = counter_on_tick}};
static const tr_behavior_t counter = {
    .name = "counter",
    .on_stop = note_stop,
    .handlers = TR_HANDLERS(counter_handlers),
};

/* slow: spins about 200 us per tick (CPU work, not blocking). */
static int slow_on_tick(tr_ctx_t *ctx, void *state, void *msg) {
  uint64_t end = tu_now_ns() + 200000;
  (void)ctx;
  (void)state;
  (void)msg;
  while (tu_now_ns() < end) {
  }
  atomic_fetch_add(&handled, 1);
  return 0;
}
static const tr_handler_t slow_handlers[] = {{.type = TR_TYPE(tick_t), .fn = slow_on_tick}};
static const tr_behavior_t slow = {
    .name = "slow",
    .on_stop = note_stop,
    .handlers = TR_HANDLERS(slow_handlers),
};

/* looper: sends every tick back to itself, so it never goes idle. If the
 * send fails (the actor is being stopped) the runtime frees the tick. */
static int looper_on_tick(tr_ctx_t *ctx, void *state, void *msg) {
  (void)state;
  atomic_fetch_add(&handled, 1);
  (void)tr_send(ctx, tr_ctx_self(ctx), msg);
  return 0;
}
static const tr_handler_t looper_handlers[] = {
    {.type = TR_TYPE(tick_t), .fn = looper_on_tick}};
static const tr_behavior_t looper = {
    .name = "looper",
    .on_stop = note_stop,
    .handlers = TR_HANDLERS(looper_handlers),
};

/* echo: replies to a tick with a tick carrying v + 1. */
static int echo_on_tick(tr_ctx_t *ctx, void *state, void *msg) {
  tick_t *r = tick_t_new();
  (void)state;
  if (r == NULL)
    return TR_ENOMEM;
  r->v = ((tick_t *)msg)->v + 1;
  (void)tr_reply(ctx, r);
  return 0;
}
static const tr_handler_t echo_handlers[] = {{.type = TR_TYPE(tick_t), .fn = echo_on_tick}};
static const tr_behavior_t echo = {
    .name = "echo",
    .handlers = TR_HANDLERS(echo_handlers),
};

static void send_ticks(tr_ref_t to, unsigned n) {
  for (unsigned i = 0; i < n; i++) {
    tick_t *t = tick_t_new();
    ck_assert_ptr_nonnull(t);
    t->v = i;
    ck_assert_int_eq(tr_send(NULL, to, t), 0);
  }
}

/* ---- configuration and lifecycle --------------------------------------- */

START_TEST(test_tr_runtime_config_init_defaults) {
  tr_runtime_config_t cfg;
  memset(&cfg, 0xff, sizeof(cfg));
  tr_runtime_config_init(&cfg);
  ck_assert_uint_eq(cfg.workers, 0);
  ck_assert_int_eq(cfg.pin_cpus, 0);
  ck_assert_uint_eq(cfg.budget, 0);
  ck_assert_uint_eq(cfg.spin_us, 0);
}
END_TEST

START_TEST(test_tr_runtime_new_default_workers) {
  tr_runtime_t *rt = NULL;
  cpu_set_t set;
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  long allowed = online;
  unsigned w;
  if (sched_getaffinity(0, sizeof(set), &set) == 0)
    allowed = CPU_COUNT(&set);
  ck_assert_int_eq(tr_runtime_new(NULL, &rt), 0);
  ck_assert_ptr_nonnull(rt);
  w = tr_runtime_workers(rt);
  ck_assert_msg(w >= 1 && (w == (unsigned)online || w == (unsigned)allowed ||
                           w == TR_STATS_MAX_WORKERS),
                "workers %u, online CPUs %ld, allowed %ld", w, online,
                allowed);
  tr_runtime_free(rt); /* never started */
}
END_TEST

START_TEST(test_tr_runtime_workers_count) {
  tr_runtime_t *rt = tu_runtime(3, 0, 1);
  tr_runtime_stats_t st;
  ck_assert_uint_eq(tr_runtime_workers(rt), 3);
  ck_assert_int_eq(tr_runtime_stats(rt, &st), 0);
  ck_assert_uint_eq(st.workers, 3);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_runtime_start_lifecycle) {
  tr_runtime_t *rt = tu_runtime(2, 0, 0);
  tr_ref_t r;
  reset();
  /* Spawn and send before the start: nothing runs yet. */
  ck_assert_int_eq(tr_spawn(rt, &counter, NULL, &r), 0);
  send_ticks(r, 100);
  tu_sleep_ms(20);
  ck_assert_uint_eq(atomic_load(&handled), 0);
  ck_assert_int_eq(tr_runtime_start(rt), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&handled), 100);
  ck_assert_uint_eq(atomic_load(&ticks_freed), 100);
  /* Quiescent runtime: returns at once. */
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 0), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, -1), 0);
  ck_assert_uint_eq(atomic_load(&stops), 0);
  ck_assert_int_eq(tr_runtime_shutdown(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&stops), 1);
  ck_assert_int_eq(atomic_load(&last_reason), TR_EXIT_SHUTDOWN);
  tr_runtime_free(rt);
}
END_TEST

START_TEST(test_tr_runtime_start_twice) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  ck_assert_int_eq(tr_runtime_start(rt), TR_EBUSY);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_runtime_free_never_started) {
  tr_runtime_t *rt = tu_runtime(2, 0, 0);
  tr_runtime_free(rt);
}
END_TEST

START_TEST(test_tr_runtime_run_drains) {
  tr_runtime_t *rt = tu_runtime(2, 0, 0);
  tr_ref_t r[3];
  reset();
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(tr_spawn(rt, &counter, NULL, &r[i]), 0);
    send_ticks(r[i], 1000);
  }
  ck_assert_int_eq(tr_runtime_run(rt), 0);
  ck_assert_uint_eq(atomic_load(&handled), 3000);
  ck_assert_uint_eq(atomic_load(&ticks_freed), 3000);
  ck_assert_uint_eq(atomic_load(&stops), 3);
  ck_assert_int_eq(atomic_load(&reason_all_shutdown), 1);
  tr_runtime_free(rt);
}
END_TEST

START_TEST(test_tr_runtime_await_quiescent_timeout) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t r;
  uint64_t t0, dt;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &looper, NULL, &r), 0);
  send_ticks(r, 1);
  t0 = tu_now_ns();
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 100), TR_ETIMEDOUT);
  dt = tu_now_ns() - t0;
  ck_assert_msg(dt >= 99000000u, "timed out after %llu ns",
                (unsigned long long)dt);
  ck_assert_uint_gt(atomic_load(&handled), 1);
  ck_assert_int_eq(tr_actor_stop(r, TR_EXIT_NORMAL), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&stops), 1);
  ck_assert_int_eq(atomic_load(&last_reason), TR_EXIT_NORMAL);
  /* The looping message was freed exactly once, at the stop. */
  ck_assert_uint_eq(atomic_load(&ticks_freed), 1);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_runtime_new_two_runtimes) {
  tr_runtime_t *a = tu_runtime(1, 0, 1);
  tr_runtime_t *b = tu_runtime(1, 0, 1);
  tr_ref_t ra, rb;
  tick_t *t;
  reset();
  ck_assert_int_eq(tr_spawn(a, &counter, NULL, &ra), 0);
  ck_assert_int_eq(tr_spawn(b, &counter, NULL, &rb), 0);
  ck_assert(!tr_ref_eq(ra, rb));
  send_ticks(ra, 50);
  send_ticks(rb, 50);
  ck_assert(tu_wait_ge(&handled, 100, 10000));
  tu_runtime_finish(a);
  /* A ref into a runtime that is gone fails cleanly... */
  t = tick_t_new();
  ck_assert_ptr_nonnull(t);
  ck_assert_int_eq(tr_send(NULL, ra, t), TR_ENOACTOR);
  /* ...and the other runtime is unaffected. */
  send_ticks(rb, 50);
  ck_assert(tu_wait_ge(&handled, 150, 10000));
  tu_runtime_finish(b);
  ck_assert_uint_eq(atomic_load(&handled), 150);
}
END_TEST

START_TEST(test_tr_version_matches_header) {
  ck_assert_str_eq(tr_version(), TR_VERSION_STRING);
}
END_TEST

/* ---- counters ---------------------------------------------------------- */

START_TEST(test_tr_runtime_stats_counts) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_runtime_stats_t st;
  tr_ref_t r[5];
  uint64_t sum = 0;
  reset();
  for (int i = 0; i < 5; i++) {
    ck_assert_int_eq(tr_spawn(rt, &counter, NULL, &r[i]), 0);
    send_ticks(r[i], 100);
  }
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_int_eq(tr_runtime_stats(rt, &st), 0);
  ck_assert_uint_eq(st.workers, 2);
  ck_assert_uint_eq(st.messages_handled, 500);
  for (unsigned i = 0; i < st.workers; i++)
    sum += st.worker[i].handled;
  ck_assert_uint_eq(sum, st.messages_handled);
  ck_assert_uint_eq(st.actors_live, 5);
  ck_assert_uint_eq(st.actors_spawned, 5);
  ck_assert_uint_eq(st.actors_stopped, 0);
  ck_assert_uint_eq(st.dead_letters, 0);
  ck_assert_int_eq(tr_actor_stop(r[1], TR_EXIT_NORMAL), 0);
  ck_assert_int_eq(tr_actor_stop(r[3], TR_EXIT_NORMAL), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert(tu_wait_ge(&stops, 2, 10000));
  ck_assert_int_eq(tr_runtime_stats(rt, &st), 0);
  ck_assert_uint_eq(st.actors_live, 3);
  ck_assert_uint_eq(st.actors_spawned, 5);
  ck_assert_uint_eq(st.actors_stopped, 2);
  ck_assert_int_eq(tr_runtime_shutdown(rt, 10000), 0);
  ck_assert_int_eq(tr_runtime_stats(rt, &st), 0);
  ck_assert_uint_eq(st.actors_live, 0);
  ck_assert_uint_eq(st.actors_stopped, 5);
  ck_assert_uint_eq(st.dead_letters, 0);
  tr_runtime_free(rt);
}
END_TEST

/* ---- shutdown ---------------------------------------------------------- */

START_TEST(test_tr_runtime_shutdown_deadline_accounting) {
  enum { N = 3000 }; /* about 600 ms of work at 200 us a message */
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_runtime_stats_t st;
  tr_ref_t r, r2;
  tick_t *t;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &slow, NULL, &r), 0);
  send_ticks(r, N);
  tu_sleep_ms(20);
  ck_assert_int_eq(tr_runtime_shutdown(rt, 50), TR_ETIMEDOUT);
  ck_assert_int_eq(tr_runtime_stats(rt, &st), 0);
  ck_assert_uint_gt(atomic_load(&handled), 0);
  ck_assert_uint_gt(st.dead_letters, 0);
  ck_assert_msg(atomic_load(&handled) + st.dead_letters == N,
                "handled %llu + dead letters %llu != sent %d",
                (unsigned long long)atomic_load(&handled),
                (unsigned long long)st.dead_letters, N);
  ck_assert_uint_eq(atomic_load(&ticks_freed), N);
  ck_assert_uint_eq(atomic_load(&stops), 1);
  ck_assert_int_eq(atomic_load(&last_reason), TR_EXIT_SHUTDOWN);
  ck_assert_uint_eq(st.actors_live, 0);
  /* After the shutdown: no new actors, no deliveries. */
  ck_assert_int_eq(tr_spawn(rt, &counter, NULL, &r2), TR_ESHUTDOWN);
  t = tick_t_new();
  ck_assert_ptr_nonnull(t);
  ck_assert_int_eq(tr_send(NULL, r, t), TR_ENOACTOR);
  tr_runtime_free(rt);
}
END_TEST

START_TEST(test_tr_runtime_shutdown_no_deadline_drains) {
  enum { N = 500 };
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_runtime_stats_t st;
  tr_ref_t r;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &slow, NULL, &r), 0);
  send_ticks(r, N);
  ck_assert_int_eq(tr_runtime_shutdown(rt, -1), 0);
  ck_assert_uint_eq(atomic_load(&handled), N);
  ck_assert_int_eq(tr_runtime_stats(rt, &st), 0);
  ck_assert_uint_eq(st.dead_letters, 0);
  ck_assert_int_eq(atomic_load(&last_reason), TR_EXIT_SHUTDOWN);
  tr_runtime_free(rt);
}
END_TEST

/* ---- idling ------------------------------------------------------------ */

START_TEST(test_tr_runtime_start_idle_cpu) {
  tr_runtime_t *rt = tu_runtime(0, 0, 1);
  tr_ref_t r;
  uint64_t c0, c1;
  reset();
  /* Some work first, so the workers have been awake. */
  ck_assert_int_eq(tr_spawn(rt, &counter, NULL, &r), 0);
  send_ticks(r, 1000);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  tu_sleep_ms(50);
  c0 = tu_cpu_ns();
  tu_sleep_ms(300);
  c1 = tu_cpu_ns();
  ck_assert_msg(c1 - c0 < 30000000u,
                "idle runtime (%u workers) used %llu us of CPU in 300 ms",
                tr_runtime_workers(rt),
                (unsigned long long)((c1 - c0) / 1000));
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_runtime_start_wakeup_latency) {
  tr_runtime_t *rt = tu_runtime(0, 0, 1);
  tr_handle_t *h = NULL;
  tr_ref_t r;
  ck_assert_int_eq(tr_spawn(rt, &echo, NULL, &r), 0);
  ck_assert_int_eq(tr_handle_new(rt, &h), 0);
  for (int i = 0; i < 3; i++) {
    tick_t *t = tick_t_new();
    void *reply = NULL;
    uint64_t t0, dt;
    ck_assert_ptr_nonnull(t);
    t->v = (uint64_t)i;
    tu_sleep_ms(100);
    t0 = tu_now_ns();
    ck_assert_int_eq(tr_handle_call(h, r, t, 5000, &reply), 0);
    dt = tu_now_ns() - t0;
    ck_assert_ptr_nonnull(reply);
    ck_assert_ptr_eq(tr_msg_type(reply), TR_TYPE(tick_t));
    ck_assert_uint_eq(((tick_t *)reply)->v, (uint64_t)i + 1);
    tr_msg_free(reply);
    ck_assert_msg(dt < 100000000u, "round trip after idle took %llu us",
                  (unsigned long long)(dt / 1000));
  }
  tr_handle_free(h);
  tu_runtime_finish(rt);
}
END_TEST

static Suite *runtime_suite(void) {
  Suite *s = suite_create("runtime");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_tr_runtime_config_init_defaults);
  tcase_add_test(tc, test_tr_runtime_new_default_workers);
  tcase_add_test(tc, test_tr_runtime_workers_count);
  tcase_add_test(tc, test_tr_runtime_start_lifecycle);
  tcase_add_test(tc, test_tr_runtime_start_twice);
  tcase_add_test(tc, test_tr_runtime_free_never_started);
  tcase_add_test(tc, test_tr_runtime_run_drains);
  tcase_add_test(tc, test_tr_runtime_await_quiescent_timeout);
  tcase_add_test(tc, test_tr_runtime_new_two_runtimes);
  tcase_add_test(tc, test_tr_version_matches_header);
  tcase_add_test(tc, test_tr_runtime_stats_counts);
  tcase_add_test(tc, test_tr_runtime_shutdown_deadline_accounting);
  tcase_add_test(tc, test_tr_runtime_shutdown_no_deadline_drains);
  tcase_add_test(tc, test_tr_runtime_start_idle_cpu);
  tcase_add_test(tc, test_tr_runtime_start_wakeup_latency);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(runtime_suite()); }
