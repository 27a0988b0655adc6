/* SPDX-License-Identifier: MIT */
/*
 * Tests of the runtime (<troupe/actor.h>, "Runtime" and "Counters"):
 * configuration defaults, the new/start/await_quiescent/shutdown/free
 * lifecycle and tr_runtime_run, double start, worker count, runtime
 * counters, a shutdown whose deadline cuts the draining short (nothing is
 * lost silently: handled + dead letters == sent), that an idle runtime uses
 * almost no CPU, and a loose bound on the wake-up latency after idling.
 * Life-cycle faults: refs of a freed runtime stay dead when later runtimes
 * take its index, shutdown/await/run/free refused from actor code, two
 * threads shutting down at once, a free of a running runtime, 100 workers,
 * waits on CLOCK_MONOTONIC (the wall clock is skewed through this
 * program's own clock_gettime) and huge timeouts.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
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
  ck_assert_msg(w >= 1 && (w == (unsigned)online || w == (unsigned)allowed),
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
  for (unsigned i = 0; i < st.workers; i++) {
    tr_worker_stats_t ws;
    ck_assert_int_eq(tr_runtime_worker_stats(rt, i, &ws), 0);
    sum += ws.handled;
  }
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

/* ---- stealing ------------------------------------------------------------ */

/* Work queued behind a long run is taken by an idle worker (whatever
 * limits stealing, for locality, must keep this). The blocker makes
 * helpers runnable on its own worker, then spins (CPU work) until one of
 * them has run, which only the other worker can do; it gives up after
 * 20 s and records whether help came. */
static _Atomic int helped;
static _Atomic int blocker_saw_help;

static int helper_on_tick(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  (void)msg;
  atomic_store(&helped, 1);
  return 0;
}
static const tr_handler_t helper_handlers[] = {
    {.type = TR_TYPE(tick_t), .fn = helper_on_tick}};
static const tr_behavior_t helper = {
    .name = "helper",
    .handlers = TR_HANDLERS(helper_handlers),
};

typedef struct blocker {
  tr_ref_t helpers[3];
} blocker_t;

static int blocker_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  *(blocker_t *)state = *(const blocker_t *)arg;
  return 0;
}

static int blocker_on_tick(tr_ctx_t *ctx, void *state, void *msg) {
  blocker_t *b = state;
  (void)msg;
  /* three sends: the first helper ends up in this worker's stealable
   * queue, the second in its "next" slot, the third in a batch */
  for (int i = 0; i < 3; i++) {
    tick_t *t = tick_t_new();
    if (t == NULL || tr_send(ctx, b->helpers[i], t) != 0)
      return 0;
  }
  uint64_t end = tu_now_ns() + 20000000000ull;
  while (!atomic_load(&helped) && tu_now_ns() < end) {
  }
  atomic_store(&blocker_saw_help, atomic_load(&helped));
  atomic_fetch_add(&handled, 1);
  return 0;
}
static const tr_handler_t blocker_handlers[] = {
    {.type = TR_TYPE(tick_t), .fn = blocker_on_tick}};
static const tr_behavior_t blocker = {
    .name = "blocker",
    .state_size = sizeof(blocker_t),
    .init = blocker_init,
    .handlers = TR_HANDLERS(blocker_handlers),
};

START_TEST(test_tr_runtime_steal_behind_long_run) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  blocker_t args;
  tr_ref_t r;
  reset();
  atomic_store(&helped, 0);
  atomic_store(&blocker_saw_help, 0);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(tr_spawn(rt, &helper, NULL, &args.helpers[i]), 0);
  ck_assert_int_eq(tr_spawn(rt, &blocker, &args, &r), 0);
  tick_t *t = tick_t_new();
  ck_assert_ptr_nonnull(t);
  ck_assert_int_eq(tr_send(NULL, r, t), 0);
  ck_assert(tu_wait_ge(&handled, 1, 40000));
  int saw_help = atomic_load(&blocker_saw_help);
  ck_assert_int_eq(saw_help, 1);
  tu_runtime_finish(rt);
}
END_TEST

/* ---- refs across runtimes ------------------------------------------------ */

/* A ref of a freed runtime never reaches an actor of a later one, even
 * when the later runtimes have taken its index (more runtimes than there
 * are indexes, each spawning into its first slot). */
START_TEST(test_tr_runtime_free_refs_stay_dead) {
  tr_runtime_t *rt = tu_runtime(1, 0, 0);
  tr_ref_t old, r;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &counter, NULL, &old), 0);
  ck_assert_int_eq(tr_runtime_free(rt), 0);
  for (int i = 0; i < 2 * 255 + 2; i++) {
    rt = tu_runtime(1, 0, 0);
    ck_assert_int_eq(tr_spawn(rt, &counter, NULL, &r), 0);
    ck_assert(!tr_ref_eq(r, old));
    ck_assert(!tr_actor_alive(old));
    tick_t *t = tick_t_new();
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(tr_send(NULL, old, t), TR_ENOACTOR); /* t freed */
    ck_assert(tr_actor_alive(r));
    ck_assert_int_eq(tr_runtime_free(rt), 0);
  }
}
END_TEST

/* ---- life cycle calls from actor code ------------------------------------ */

static _Atomic int rc_shutdown, rc_await, rc_run, rc_free;
static _Atomic uint64_t calls_done;

static void lifecycle_calls(tr_ctx_t *ctx) {
  tr_runtime_t *rt = tr_ctx_runtime(ctx);
  atomic_store(&rc_shutdown, tr_runtime_shutdown(rt, 0));
  atomic_store(&rc_await, tr_runtime_await_quiescent(rt, 0));
  atomic_store(&rc_run, tr_runtime_run(rt));
  atomic_store(&rc_free, tr_runtime_free(rt));
  atomic_fetch_add(&calls_done, 1);
}

static int caller_on_tick(tr_ctx_t *ctx, void *state, void *msg) {
  (void)state;
  (void)msg;
  lifecycle_calls(ctx);
  return 0;
}
static int caller_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)state;
  if (arg) lifecycle_calls(ctx);
  return 0;
}
static const tr_handler_t caller_handlers[] = {
    {.type = TR_TYPE(tick_t), .fn = caller_on_tick}};
static const tr_behavior_t caller = {
    .name = "caller",
    .init = caller_init,
    .handlers = TR_HANDLERS(caller_handlers),
};

static void assert_refused(void) {
  ck_assert_int_eq(atomic_load(&rc_shutdown), TR_EDEADLK);
  ck_assert_int_eq(atomic_load(&rc_await), TR_EDEADLK);
  ck_assert_int_eq(atomic_load(&rc_run), TR_EDEADLK);
  ck_assert_int_eq(atomic_load(&rc_free), TR_EDEADLK);
}

/* From a handler, shutdown would wait for the caller's own worker and join
 * it, and a free would free the runtime under it: both are refused, and
 * so are await_quiescent and run. The runtime works on afterwards. */
START_TEST(test_tr_runtime_shutdown_from_handler) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t r;
  atomic_store(&calls_done, 0);
  ck_assert_int_eq(tr_spawn(rt, &caller, NULL, &r), 0);
  send_ticks(r, 1);
  ck_assert(tu_wait_ge(&calls_done, 1, 30000));
  assert_refused();
  send_ticks(r, 1); /* still served */
  ck_assert(tu_wait_ge(&calls_done, 2, 30000));
  tu_runtime_finish(rt);
}
END_TEST

/* The same from an init, which runs on the thread calling tr_spawn. */
START_TEST(test_tr_runtime_shutdown_from_init) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t r;
  atomic_store(&calls_done, 0);
  ck_assert_int_eq(tr_spawn(rt, &caller, (void *)1, &r), 0);
  ck_assert_uint_eq(atomic_load(&calls_done), 1);
  assert_refused();
  tu_runtime_finish(rt);
}
END_TEST

/* ---- concurrent shutdowns -------------------------------------------------- */

struct shut_arg {
  tr_runtime_t *rt;
  int rc;
};

static void *shutdown_thread(void *p) {
  struct shut_arg *a = p;
  a->rc = tr_runtime_shutdown(a->rt, -1);
  return NULL;
}

/* Two threads shut down at once while slow mail drains: one does it, the
 * other waits for it and returns the same result; nothing is joined twice
 * and every tick is handled. A later call returns that result too. */
START_TEST(test_tr_runtime_shutdown_two_threads) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t r;
  pthread_t th[2];
  struct shut_arg a[2] = {{rt, 1}, {rt, 1}};
  reset();
  ck_assert_int_eq(tr_spawn(rt, &slow, NULL, &r), 0);
  send_ticks(r, 200); /* about 40 ms of work */
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(pthread_create(&th[i], NULL, shutdown_thread, &a[i]), 0);
  for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_join(th[i], NULL), 0);
  ck_assert_int_eq(a[0].rc, 0);
  ck_assert_int_eq(a[1].rc, 0);
  ck_assert_uint_eq(atomic_load(&handled), 200);
  ck_assert_uint_eq(atomic_load(&stops), 1);
  ck_assert_int_eq(tr_runtime_shutdown(rt, -1), 0);
  ck_assert_int_eq(tr_runtime_start(rt), TR_ESHUTDOWN);
  ck_assert_int_eq(tr_runtime_free(rt), 0);
}
END_TEST

/* A free of a runtime that runs shuts it down first: the actor is stopped
 * (by force) and its mail freed, nothing leaks. */
START_TEST(test_tr_runtime_free_running) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t r;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &looper, NULL, &r), 0);
  send_ticks(r, 1);
  ck_assert(tu_wait_ge(&handled, 10, 30000));
  ck_assert_int_eq(tr_runtime_free(rt), 0);
  ck_assert_uint_eq(atomic_load(&stops), 1);
  ck_assert_uint_eq(atomic_load(&ticks_freed), 1);
}
END_TEST

/* ---- many workers ------------------------------------------------------------ */

/* No fixed bound on workers (the stats used to hold 64): 100 workers
 * start, share a small workload, report their counters, shut down. */
/* Growable config structs (<troupe/common.h>): {0} and designated
 * initialisers are this release's struct, the init function sets the size,
 * and fields this library does not know must be 0. */
START_TEST(test_tr_runtime_config_size_rule) {
  tr_runtime_t *rt = NULL;
  tr_runtime_config_t c = {.workers = 1};
  ck_assert_uint_eq(c.size, 0);
  ck_assert_int_eq(tr_runtime_new(&c, &rt), 0);
  ck_assert_uint_eq(tr_runtime_workers(rt), 1);
  ck_assert_int_eq(tr_runtime_free(rt), 0);
  tr_runtime_config_init(&c);
  ck_assert_uint_eq(c.size, sizeof(c));
  c.workers = 2;
  ck_assert_int_eq(tr_runtime_new(&c, &rt), 0);
  ck_assert_uint_eq(tr_runtime_workers(rt), 2);
  ck_assert_int_eq(tr_runtime_free(rt), 0);
  struct {
    tr_runtime_config_t c;
    uint64_t later;
  } big;
  memset(&big, 0, sizeof(big));
  big.c.size = sizeof(big);
  big.c.workers = 1;
  ck_assert_int_eq(tr_runtime_new(&big.c, &rt), 0); /* unknown tail 0 */
  ck_assert_int_eq(tr_runtime_free(rt), 0);
  big.later = 5;
  rt = NULL;
  ck_assert_int_eq(tr_runtime_new(&big.c, &rt), TR_EINVAL);
  ck_assert_ptr_null(rt);
}
END_TEST

START_TEST(test_tr_runtime_new_100_workers) {
  enum { W = 100, A = 20, N = 50 };
  tr_runtime_t *rt = tu_runtime(W, 0, 1);
  tr_runtime_stats_t st;
  tr_worker_stats_t ws;
  tr_ref_t r[A];
  uint64_t sum = 0;
  reset();
  ck_assert_uint_eq(tr_runtime_workers(rt), W);
  for (int i = 0; i < A; i++) {
    ck_assert_int_eq(tr_spawn(rt, &counter, NULL, &r[i]), 0);
    send_ticks(r[i], N);
  }
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 60000), 0);
  ck_assert_int_eq(tr_runtime_stats(rt, &st), 0);
  ck_assert_uint_eq(st.workers, W);
  ck_assert_uint_eq(st.messages_handled, A * N);
  for (unsigned i = 0; i < st.workers; i++) {
    ck_assert_int_eq(tr_runtime_worker_stats(rt, i, &ws), 0);
    sum += ws.handled;
  }
  ck_assert_uint_eq(sum, A * N);
  ck_assert_int_eq(tr_runtime_worker_stats(rt, W, &ws), TR_ERANGE);
  ck_assert_int_eq(tr_runtime_worker_stats(rt, 0, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_runtime_shutdown(rt, 60000), 0);
  ck_assert_uint_eq(atomic_load(&stops), A);
  tr_runtime_free(rt);
}
END_TEST

/* ---- clocks -------------------------------------------------------------------- */

/* The wall clock this program's clock_gettime reports is set back by
 * realtime_skew_s (the library's calls land here, ahead of the C
 * library's): a wait that took its deadline from CLOCK_REALTIME would end
 * at once, since the kernel measures that clock unskewed. */
static _Atomic long realtime_skew_s;

__attribute__((visibility("default"))) int clock_gettime(clockid_t clk,
                                                    struct timespec *ts) {
  static int (*real)(clockid_t, struct timespec *);
  if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
  int rc = real(clk, ts);
  if (rc == 0 && clk == CLOCK_REALTIME) ts->tv_sec -= atomic_load(&realtime_skew_s);
  return rc;
}

/* Waits measure CLOCK_MONOTONIC: with the wall clock an hour off, a 300 ms
 * wait for quiescence (a looper keeps the runtime busy) and a 300 ms join
 * wait still last about 300 ms and then time out. */
START_TEST(test_tr_runtime_await_quiescent_monotonic) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t r;
  tr_join_t *j = NULL;
  tr_spawn_opts_t o = {.join = &j};
  reset();
  ck_assert_int_eq(tr_spawn_ex(rt, &looper, NULL, &o, &r), 0);
  send_ticks(r, 1);
  atomic_store(&realtime_skew_s, 3600);
  uint64_t t0 = tu_now_ms();
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 300), TR_ETIMEDOUT);
  uint64_t t1 = tu_now_ms();
  ck_assert_int_eq(tr_join_wait(j, 300, NULL, NULL), TR_ETIMEDOUT);
  uint64_t t2 = tu_now_ms();
  atomic_store(&realtime_skew_s, 0);
  ck_assert_msg(t1 - t0 >= 250, "await_quiescent returned after %llu ms",
                (unsigned long long)(t1 - t0));
  ck_assert_msg(t2 - t1 >= 250, "join_wait returned after %llu ms",
                (unsigned long long)(t2 - t1));
  ck_assert_int_eq(tr_actor_stop(r, TR_EXIT_NORMAL), 0);
  int reason = -1;
  ck_assert_int_eq(tr_join_wait(j, 30000, &reason, NULL), 0);
  ck_assert_int_eq(reason, TR_EXIT_NORMAL);
  tr_join_free(j);
  tu_runtime_finish(rt);
}
END_TEST

/* Huge timeouts mean "very long", never a deadline in the past: waits of
 * INT_MAX ms end when their condition holds, not at once. */
START_TEST(test_tr_runtime_await_quiescent_huge_timeout) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t r, e;
  tr_join_t *j = NULL;
  tr_spawn_opts_t o = {.join = &j};
  tr_handle_t *h;
  reset();
  ck_assert_int_eq(tr_spawn_ex(rt, &slow, NULL, &o, &r), 0);
  send_ticks(r, 100); /* about 20 ms of work */
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, INT_MAX), 0);
  ck_assert_uint_eq(atomic_load(&handled), 100);
  ck_assert_int_eq(tr_actor_stop(r, TR_EXIT_NORMAL), 0);
  ck_assert_int_eq(tr_join_wait(j, INT_MAX, NULL, NULL), 0);
  tr_join_free(j);
  ck_assert_int_eq(tr_spawn(rt, &echo, NULL, &e), 0);
  ck_assert_int_eq(tr_handle_new(rt, &h), 0);
  tick_t *t = tick_t_new();
  void *reply = NULL;
  ck_assert_int_eq(tr_handle_call(h, e, t, INT_MAX, &reply), 0);
  ck_assert_uint_eq(((tick_t *)reply)->v, 1);
  tr_msg_free(reply);
  ck_assert_int_eq(tr_handle_receive(h, 50, &reply), TR_ETIMEDOUT);
  tr_handle_free(h);
  ck_assert_int_eq(tr_runtime_shutdown(rt, INT_MAX), 0);
  tr_runtime_free(rt);
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
  tcase_add_test(tc, test_tr_runtime_steal_behind_long_run);
  tcase_add_test(tc, test_tr_runtime_free_refs_stay_dead);
  tcase_add_test(tc, test_tr_runtime_shutdown_from_handler);
  tcase_add_test(tc, test_tr_runtime_shutdown_from_init);
  tcase_add_test(tc, test_tr_runtime_shutdown_two_threads);
  tcase_add_test(tc, test_tr_runtime_free_running);
  tcase_add_test(tc, test_tr_runtime_new_100_workers);
  tcase_add_test(tc, test_tr_runtime_config_size_rule);
  tcase_add_test(tc, test_tr_runtime_await_quiescent_monotonic);
  tcase_add_test(tc, test_tr_runtime_await_quiescent_huge_timeout);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(runtime_suite()); }
