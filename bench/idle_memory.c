/* SPDX-License-Identifier: MIT */
/*
 * idle-memory benchmark: spawns N actors that just wait for a message that
 * never comes, then reads the resident set size and reports the growth over
 * the RSS measured before spawning, per actor. Each actor's init counts
 * itself. Checksum: actors alive (counted by their init), N.
 */
#include <stdatomic.h>

#include "benchutil.h"

TR_MESSAGE_TYPE(wake_t, uint8_t unused;);
TR_MESSAGE_DEFINE(wake_t);

typedef struct idler {
  uint64_t wakes;
} idler_t;

static int idler_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  (void)state;
  atomic_fetch_add_explicit((_Atomic uint64_t *)arg, 1, memory_order_relaxed);
  return 0;
}

static int idler_on_wake(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)msg;
  ((idler_t *)state)->wakes++;
  return 0;
}

static const tr_handler_t idler_handlers[] = {
    {.type = TR_TYPE(wake_t), .fn = idler_on_wake}};
static const tr_behavior_t idler = {
    .name = "idler",
    .state_size = sizeof(idler_t),
    .init = idler_init,
    .handlers = TR_HANDLERS(idler_handlers)};

int main(int argc, char **argv) {
  uint64_t n = 1000000, workers = 2, timeout = 600;
  const bench_opt_t opts[] = {{'n', "actors", &n},
                              {'w', "workers", &workers},
                              {'t', "timeout_s", &timeout}};
  bench_parse_args(argc, argv, "idle_memory", opts, 3);
  bench_print_params("idle_memory", opts, 3);
  if (n == 0)
    bench_die("spawn at least one actor");

  tr_runtime_t *rt;
  tr_handle_t *h;
  bench_runtime_start(workers, &rt, &h);
  BENCH_CHECK(tr_runtime_await_quiescent(rt, (int)(timeout * 1000)));

  _Atomic uint64_t alive = 0;
  uint64_t base = bench_rss_bytes();
  double t0 = bench_now();
  for (uint64_t i = 0; i < n; i++) {
    tr_ref_t ref;
    BENCH_CHECK(tr_spawn(rt, &idler, &alive, &ref));
  }
  BENCH_CHECK(tr_runtime_await_quiescent(rt, (int)(timeout * 1000)));
  double secs = bench_now() - t0;
  uint64_t rss = bench_rss_bytes();
  uint64_t count = atomic_load(&alive);
  uint64_t grown = rss > base ? rss - base : 0;

  bench_result("idle_memory", secs, count,
               " bytes_per_actor=%.0f rss_mib=%.1f rate=%.0f",
               (double)grown / (double)n, (double)rss / 1048576.0,
               (double)n / secs);
  bench_runtime_end(rt, h);
  return 0;
}
