/* SPDX-License-Identifier: MIT */
/*
 * pingpong benchmark: two actors bounce one message back and forth N times.
 * The message is never copied or reallocated: each handler sends the very
 * message it received back to its sender, so ownership moves and a hop costs
 * no allocation. Checksum: the number of round trips, N.
 */
#include "benchutil.h"

TR_MESSAGE_TYPE(ball_t, uint64_t trips;);
TR_MESSAGE_DEFINE(ball_t);

typedef struct pinger {
  tr_ref_t ponger;
  tr_ref_t done;
  uint64_t n;
} pinger_t;

static int pinger_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  *(pinger_t *)state = *(const pinger_t *)arg;
  return 0;
}

/* A ball coming back completes one round trip. */
static int pinger_on_ball(tr_ctx_t *ctx, void *state, void *msg) {
  pinger_t *p = state;
  ball_t *b = msg;
  if (b->trips == p->n) {
    BENCH_CHECK(tr_send(ctx, p->done, b));
    return 0;
  }
  b->trips++;
  BENCH_CHECK(tr_send(ctx, p->ponger, b));
  return 0;
}

static int ponger_on_ball(tr_ctx_t *ctx, void *state, void *msg) {
  (void)state;
  BENCH_CHECK(tr_send(ctx, tr_msg_sender(msg), msg));
  return 0;
}

static const tr_handler_t pinger_handlers[] = {
    {.type = TR_TYPE(ball_t), .fn = pinger_on_ball}};
static const tr_behavior_t pinger = {
    .name = "pinger",
    .state_size = sizeof(pinger_t),
    .init = pinger_init,
    .handlers = TR_HANDLERS(pinger_handlers)};

static const tr_handler_t ponger_handlers[] = {
    {.type = TR_TYPE(ball_t), .fn = ponger_on_ball}};
static const tr_behavior_t ponger = {
    .name = "ponger", .handlers = TR_HANDLERS(ponger_handlers)};

int main(int argc, char **argv) {
  uint64_t n = 2000000, workers = 2, timeout = 600;
  const bench_opt_t opts[] = {{'n', "round_trips", &n},
                              {'w', "workers", &workers},
                              {'t', "timeout_s", &timeout}};
  bench_parse_args(argc, argv, "pingpong", opts, 3);
  bench_print_params("pingpong", opts, 3);

  tr_runtime_t *rt;
  tr_handle_t *h;
  bench_runtime_start(workers, &rt, &h);

  pinger_t args = {.done = tr_handle_ref(h), .n = n};
  tr_ref_t ping;
  BENCH_CHECK(tr_spawn(rt, &ponger, NULL, &args.ponger));
  BENCH_CHECK(tr_spawn(rt, &pinger, &args, &ping));

  double t0 = bench_now();
  ball_t *b = bench_msg_new(TR_TYPE(ball_t));
  BENCH_CHECK(tr_send(NULL, ping, b));
  b = bench_wait_done(h, timeout);
  double secs = bench_now() - t0;

  bench_result("pingpong", secs, b->trips, " rate=%.0f",
               (double)b->trips / secs);
  tr_msg_free(b);
  bench_runtime_end(rt, h);
  return 0;
}
