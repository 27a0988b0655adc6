/* SPDX-License-Identifier: MIT */
/*
 * spawn benchmark: a spawner actor creates N short-lived actors, CHUNK at a
 * time, and sends each one message carrying its number (1 to N); each child
 * sends that same message back to the spawner and stops. The spawner counts
 * the answers and sums the numbers.
 * Checksum: the sum of the numbers answered, N*(N+1)/2 (every child adds to
 * it, so one that did not answer, or answered twice, shows).
 */
#include "benchutil.h"

TR_MESSAGE_TYPE(hello_t, uint64_t value;);
TR_MESSAGE_DEFINE(hello_t);
TR_MESSAGE_TYPE(more_t, uint8_t unused;);
TR_MESSAGE_DEFINE(more_t);

#define CHUNK 1000

typedef struct spawner {
  tr_ref_t done;
  uint64_t n;
  uint64_t spawned;
  uint64_t answered;
  uint64_t sum;
} spawner_t;

static int child_on_hello(tr_ctx_t *ctx, void *state, void *msg) {
  (void)state;
  BENCH_CHECK(tr_send(ctx, tr_msg_sender(msg), msg));
  tr_actor_stop(tr_ctx_self(ctx), TR_EXIT_NORMAL);
  return 0;
}

static const tr_handler_t child_handlers[] = {
    {.type = TR_TYPE(hello_t), .fn = child_on_hello}};
static const tr_behavior_t child = {
    .name = "spawn-child", .handlers = TR_HANDLERS(child_handlers)};

static int spawner_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  *(spawner_t *)state = *(const spawner_t *)arg;
  return 0;
}

/* Spawns the next chunk of children, then mails itself the same "more"
 * message so that answers get handled between chunks. */
static int spawner_on_more(tr_ctx_t *ctx, void *state, void *msg) {
  spawner_t *s = state;
  tr_runtime_t *rt = tr_ctx_runtime(ctx);
  for (unsigned i = 0; i < CHUNK && s->spawned < s->n; i++, s->spawned++) {
    tr_ref_t ref;
    BENCH_CHECK(tr_spawn(rt, &child, NULL, &ref));
    hello_t *h = bench_msg_new(TR_TYPE(hello_t));
    h->value = s->spawned + 1;
    BENCH_CHECK(tr_send(ctx, ref, h));
  }
  if (s->spawned < s->n)
    BENCH_CHECK(tr_send(ctx, tr_ctx_self(ctx), msg));
  return 0;
}

static int spawner_on_hello(tr_ctx_t *ctx, void *state, void *msg) {
  spawner_t *s = state;
  hello_t *h = msg;
  s->sum += h->value;
  if (++s->answered == s->n) {
    h->value = s->sum;
    BENCH_CHECK(tr_send(ctx, s->done, h));
  }
  return 0;
}

static const tr_handler_t spawner_handlers[] = {
    {.type = TR_TYPE(more_t), .fn = spawner_on_more},
    {.type = TR_TYPE(hello_t), .fn = spawner_on_hello}};
static const tr_behavior_t spawner = {
    .name = "spawner",
    .state_size = sizeof(spawner_t),
    .init = spawner_init,
    .handlers = TR_HANDLERS(spawner_handlers)};

int main(int argc, char **argv) {
  uint64_t n = 1000000, workers = 2, timeout = 600;
  const bench_opt_t opts[] = {{'n', "actors", &n},
                              {'w', "workers", &workers},
                              {'t', "timeout_s", &timeout}};
  bench_parse_args(argc, argv, "spawn", opts, 3);
  bench_print_params_sum("spawn", opts, 3, "N*(N+1)/2");
  if (n == 0)
    bench_die("spawn at least one actor");

  tr_runtime_t *rt;
  tr_handle_t *h;
  bench_runtime_start(workers, &rt, &h);

  spawner_t args = {.done = tr_handle_ref(h), .n = n};
  tr_ref_t ref;
  BENCH_CHECK(tr_spawn(rt, &spawner, &args, &ref));

  double t0 = bench_now();
  BENCH_CHECK(tr_send(NULL, ref, bench_msg_new(TR_TYPE(more_t))));
  hello_t *done = bench_wait_done(h, timeout);
  double secs = bench_now() - t0;

  bench_result("spawn", secs, done->value, " rate=%.0f", (double)n / secs);
  tr_msg_free(done);
  bench_runtime_end(rt, h);
  return 0;
}
