/* SPDX-License-Identifier: MIT */
/*
 * The "timers" workload of BENCHMARKS.md: arm T one-shot timers at random
 * delays up to 1 s (spread over A actors), cancel every other one, and
 * count those that fire. Checksum: the fired count (T/2). Also reports the
 * cost of arming and cancelling per timer.
 */
#include "benchutil.h"

#include <stdatomic.h>

#include <troupe/io.h>

static uint64_t n_timers = 1000000, n_actors = 10, n_workers = 0;
static _Atomic uint64_t fired;
static double t_end;

typedef struct arm_arg {
  uint64_t count, seed;
  double arm_s, cancel_s;
} arm_arg_t;

static int on_fired(tr_ctx_t *ctx, void *st, void *msg) {
  (void)ctx;
  (void)st;
  (void)msg;
  if (atomic_fetch_add(&fired, 1) + 1 == n_timers / 2) t_end = bench_now();
  return 0;
}

static int armer_init(tr_ctx_t *ctx, void *st, void *arg) {
  (void)st;
  arm_arg_t *a = arg;
  tr_timer_id_t *ids = malloc(a->count * sizeof(*ids));
  if (!ids) return TR_ENOMEM;
  uint64_t x = a->seed;
  double t0 = bench_now();
  double cancel = 0;
  for (uint64_t i = 0; i < a->count; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    /* 100..1000 ms; every other timer is cancelled right after arming,
     * so the cancel always lands before it is due */
    BENCH_CHECK(tr_timer_start(ctx, 100 + x % 901, TR_FOREVER, i, &ids[i]));
    if (i % 2 == 1) {
      double c0 = bench_now();
      BENCH_CHECK(tr_timer_cancel(tr_ctx_runtime(ctx), ids[i - 1]));
      cancel += bench_now() - c0;
    }
  }
  a->arm_s = bench_now() - t0 - cancel;
  a->cancel_s = cancel;
  free(ids);
  return 0;
}

static const tr_handler_t armer_h[] = {{&tr_timer_fired_t__type, on_fired}};
static const tr_behavior_t armer_b = {
    .name = "armer", .init = armer_init, .handlers = TR_HANDLERS(armer_h)};

int main(int argc, char **argv) {
  bench_opt_t opts[] = {{'t', "timers", &n_timers},
                        {'a', "actors", &n_actors},
                        {'w', "workers", &n_workers}};
  bench_parse_args(argc, argv, "timers", opts, 3);
  bench_print_params("timers", opts, 3);
  if (n_actors == 0 || n_timers % (2 * n_actors)) bench_die("timers must be a multiple of 2*actors");
  tr_runtime_t *rt;
  tr_runtime_config_t cfg;
  tr_runtime_config_init(&cfg);
  cfg.workers = (unsigned)n_workers;
  BENCH_CHECK(tr_runtime_new(&cfg, &rt));
  BENCH_CHECK(tr_runtime_start(rt));
  arm_arg_t *args = calloc(n_actors, sizeof(*args));
  double t0 = bench_now();
  for (uint64_t i = 0; i < n_actors; i++) {
    args[i].count = n_timers / n_actors;
    args[i].seed = 0x9E3779B97F4A7C15ull * (i + 1);
    BENCH_CHECK(tr_spawn(rt, &armer_b, &args[i], NULL));
  }
  BENCH_CHECK(tr_runtime_await_quiescent(rt, 60000));
  double arm = 0, cancel = 0;
  for (uint64_t i = 0; i < n_actors; i++) {
    arm += args[i].arm_s;
    cancel += args[i].cancel_s;
  }
  uint64_t f = atomic_load(&fired);
  if (f != n_timers / 2) bench_die("fired %llu, want %llu", (unsigned long long)f,
                                   (unsigned long long)(n_timers / 2));
  bench_result("timers", t_end - t0, f, " arm_ns=%.1f cancel_ns=%.1f backend=%s",
               arm * 1e9 / (double)n_timers, cancel * 2e9 / (double)n_timers,
               tr_io_backend_name(rt));
  BENCH_CHECK(tr_runtime_shutdown(rt, -1));
  BENCH_CHECK(tr_io_fini(rt));
  tr_runtime_free(rt);
  free(args);
  return 0;
}
