/* SPDX-License-Identifier: MIT */
/*
 * The "timer-lateness" workload of BENCHMARKS.md: A actors each arm K
 * one-shot timers at seeded random delays of 1-D ms (A = 100,000, K = 10,
 * D = 200), and every tick is compared with its deadline (the time of the
 * arm plus the delay). Reports the time until the last timer fired, and
 * the worst and 99th percentile lateness (fired - deadline) in ms.
 * Checksum: the fired count, A * K.
 *
 * -m 0 (default): the main thread spawns the actors and each arms its
 * timers in its init (an outside thread arms them); -m 1: a spawner actor
 * spawns them from a handler, 1,000 per message, so the timers are armed
 * on the workers while the workers are busy; -m 2: the main thread spawns
 * the actors and sends each a message, and each arms its timers in that
 * handler, on a worker, as an Erlang process does once started (arming
 * then competes with firing for the workers, as it does there).
 */
#include "benchutil.h"

#include <stdatomic.h>

#include <troupe/io.h>

static uint64_t n_actors = 100000, n_per = 10, max_delay = 200,
                n_workers = 0, seed = 42, mode = 0;
static _Atomic uint64_t fired, early;
static _Atomic uint64_t t_last_ns;
static uint32_t *late_us; /* one slot per timer */
static uint64_t t0_ns;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

typedef struct sleeper {
  uint64_t index; /* of the actor */
  uint64_t nfired;
} sleeper_t;

static void arm_all(tr_ctx_t *ctx, sleeper_t *s) {
  /* splitmix64 of (seed, actor): the same delays on every run */
  uint64_t x = seed + 0x9E3779B97F4A7C15ull * (s->index + 1);
  for (uint64_t k = 0; k < n_per; k++) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    uint64_t delay = 1 + z % max_delay;
    /* the deadline is taken before the arm: the arm's own cost counts
     * as lateness, as it does for the peers */
    uint64_t deadline = now_ns() + delay * 1000000ull;
    BENCH_CHECK(tr_timer_start(ctx, delay, TR_FOREVER, deadline, NULL));
  }
}

static int sleeper_init(tr_ctx_t *ctx, void *st, void *arg) {
  sleeper_t *s = st;
  s->index = (uint64_t)(uintptr_t)arg;
  s->nfired = 0;
  if (mode != 2) arm_all(ctx, s);
  return 0;
}

/* -m 2: the message that makes a sleeper arm */
TR_MESSAGE_TYPE(start_t, uint8_t unused;);
TR_MESSAGE_DEFINE(start_t);

static int sleeper_start(tr_ctx_t *ctx, void *st, void *msg) {
  (void)msg;
  arm_all(ctx, st);
  return 0;
}

static int sleeper_fired(tr_ctx_t *ctx, void *st, void *msg) {
  sleeper_t *s = st;
  tr_timer_fired_t *f = msg;
  uint64_t t = now_ns();
  uint64_t late = 0;
  if (t < f->cookie) atomic_fetch_add_explicit(&early, 1, memory_order_relaxed);
  else late = (t - f->cookie) / 1000u;
  late_us[s->index * n_per + s->nfired] =
      late > UINT32_MAX ? UINT32_MAX : (uint32_t)late;
  if (++s->nfired == n_per) tr_actor_stop(tr_ctx_self(ctx), TR_EXIT_NORMAL);
  if (atomic_fetch_add_explicit(&fired, 1, memory_order_relaxed) + 1 ==
      n_actors * n_per)
    atomic_store(&t_last_ns, t);
  return 0;
}

static const tr_handler_t sleeper_h[] = {
    {&tr_timer_fired_t__type, sleeper_fired},
    {TR_TYPE(start_t), sleeper_start}};
static const tr_behavior_t sleeper_b = {.name = "sleeper",
                                        .state_size = sizeof(sleeper_t),
                                        .init = sleeper_init,
                                        .handlers = TR_HANDLERS(sleeper_h)};

/* -m 1: spawns the sleepers 1,000 per message. */
TR_MESSAGE_TYPE(more_t, uint64_t next;);
TR_MESSAGE_DEFINE(more_t);

static int spawner_more(tr_ctx_t *ctx, void *st, void *msg) {
  (void)st;
  more_t *m = msg;
  tr_runtime_t *rt = tr_ctx_runtime(ctx);
  for (unsigned i = 0; i < 1000 && m->next < n_actors; i++, m->next++)
    BENCH_CHECK(tr_spawn(rt, &sleeper_b, (void *)(uintptr_t)m->next, NULL));
  if (m->next < n_actors) BENCH_CHECK(tr_send(ctx, tr_ctx_self(ctx), msg));
  else tr_actor_stop(tr_ctx_self(ctx), TR_EXIT_NORMAL);
  return 0;
}

static const tr_handler_t spawner_h[] = {{TR_TYPE(more_t), spawner_more}};
static const tr_behavior_t spawner_b = {.name = "spawner",
                                        .handlers = TR_HANDLERS(spawner_h)};

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  bench_opt_t opts[] = {{'a', "actors", &n_actors},
                        {'k', "timers_per_actor", &n_per},
                        {'d', "max_delay_ms", &max_delay},
                        {'s', "seed", &seed},
                        {'m', "mode", &mode},
                        {'w', "workers", &n_workers}};
  bench_parse_args(argc, argv, "timer_lateness", opts, 6);
  bench_print_params("timer-lateness", opts, 6);
  if (!n_actors || !n_per || !max_delay || mode > 2)
    bench_die("actors, timers and delay must be > 0; mode 0, 1 or 2");
  uint64_t total = n_actors * n_per;
  late_us = calloc(total, sizeof(*late_us));
  if (!late_us) bench_die("out of memory");
  tr_runtime_t *rt;
  tr_runtime_config_t cfg;
  tr_runtime_config_init(&cfg);
  cfg.workers = (unsigned)n_workers;
  BENCH_CHECK(tr_runtime_new(&cfg, &rt));
  BENCH_CHECK(tr_runtime_start(rt));
  BENCH_CHECK(tr_io_attach(rt, NULL)); /* not on the clock */
  t0_ns = now_ns();
  if (mode == 0) {
    for (uint64_t i = 0; i < n_actors; i++)
      BENCH_CHECK(tr_spawn(rt, &sleeper_b, (void *)(uintptr_t)i, NULL));
  } else if (mode == 2) {
    for (uint64_t i = 0; i < n_actors; i++) {
      tr_ref_t r;
      BENCH_CHECK(tr_spawn(rt, &sleeper_b, (void *)(uintptr_t)i, &r));
      BENCH_CHECK(tr_send(NULL, r, bench_msg_new(TR_TYPE(start_t))));
    }
  } else {
    tr_ref_t sp;
    BENCH_CHECK(tr_spawn(rt, &spawner_b, NULL, &sp));
    BENCH_CHECK(tr_send(NULL, sp, bench_msg_new(TR_TYPE(more_t))));
  }
  BENCH_CHECK(tr_runtime_await_quiescent(rt, 120000));
  uint64_t f = atomic_load(&fired);
  if (f != total)
    bench_die("fired %llu, want %llu", (unsigned long long)f,
              (unsigned long long)total);
  if (atomic_load(&early))
    bench_die("%llu timers fired early",
              (unsigned long long)atomic_load(&early));
  qsort(late_us, total, sizeof(*late_us), cmp_u32);
  uint64_t p99 = (total * 99 + 99) / 100; /* rank, 1-based, rounded up */
  bench_result("timer-lateness", (double)(atomic_load(&t_last_ns) - t0_ns) * 1e-9,
               f, " worst_ms=%.3f p99_ms=%.3f p50_ms=%.3f backend=%s",
               late_us[total - 1] / 1000.0, late_us[p99 - 1] / 1000.0,
               late_us[(total + 1) / 2 - 1] / 1000.0, tr_io_backend_name(rt));
  BENCH_CHECK(tr_runtime_shutdown(rt, -1));
  BENCH_CHECK(tr_io_fini(rt));
  tr_runtime_free(rt);
  free(late_us);
  return 0;
}
