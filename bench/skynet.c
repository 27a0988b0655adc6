/* SPDX-License-Identifier: MIT */
/*
 * skynet benchmark: a 10-ary tree of actors, 1,000,000 leaves (6 levels
 * below the root). A "go" message makes an inner actor spawn its 10
 * children and send each a "go"; a leaf answers its parent with its number.
 * Each inner actor sums its children's results, passes the sum up in the
 * last result message it received (no new allocation), then stops.
 * Checksum: the sum of the leaf numbers, 499999500000 for 1,000,000 leaves.
 */
#include "benchutil.h"

TR_MESSAGE_TYPE(go_t, uint8_t unused;);
TR_MESSAGE_DEFINE(go_t);
TR_MESSAGE_TYPE(sum_t, uint64_t value;);
TR_MESSAGE_DEFINE(sum_t);

#define FANOUT 10

typedef struct node {
  tr_ref_t parent;
  uint64_t num;     /* first leaf number of this subtree */
  uint64_t size;    /* leaves in this subtree */
  uint64_t sum;
  unsigned pending; /* children that have not answered yet */
} node_t;

static int node_init(tr_ctx_t *ctx, void *state, void *arg);
static int node_on_go(tr_ctx_t *ctx, void *state, void *msg);
static int node_on_sum(tr_ctx_t *ctx, void *state, void *msg);

static const tr_handler_t node_handlers[] = {
    {.type = TR_TYPE(go_t), .fn = node_on_go},
    {.type = TR_TYPE(sum_t), .fn = node_on_sum}};
static const tr_behavior_t node = {
    .name = "skynet",
    .state_size = sizeof(node_t),
    .init = node_init,
    .handlers = TR_HANDLERS(node_handlers)};

static int node_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  *(node_t *)state = *(const node_t *)arg;
  return 0;
}

static int node_on_go(tr_ctx_t *ctx, void *state, void *msg) {
  node_t *n = state;
  (void)msg;
  if (n->size == 1) {
    sum_t *s = bench_msg_new(TR_TYPE(sum_t));
    s->value = n->num;
    BENCH_CHECK(tr_send(ctx, n->parent, s));
    tr_actor_stop(tr_ctx_self(ctx), TR_EXIT_NORMAL);
    return 0;
  }
  node_t child = {.parent = tr_ctx_self(ctx), .size = n->size / FANOUT};
  for (unsigned i = 0; i < FANOUT; i++) {
    tr_ref_t ref;
    child.num = n->num + i * child.size;
    BENCH_CHECK(tr_spawn(tr_ctx_runtime(ctx), &node, &child, &ref));
    BENCH_CHECK(tr_send(ctx, ref, bench_msg_new(TR_TYPE(go_t))));
  }
  n->pending = FANOUT;
  return 0;
}

static int node_on_sum(tr_ctx_t *ctx, void *state, void *msg) {
  node_t *n = state;
  sum_t *s = msg;
  n->sum += s->value;
  if (--n->pending == 0) {
    s->value = n->sum;
    BENCH_CHECK(tr_send(ctx, n->parent, s));
    tr_actor_stop(tr_ctx_self(ctx), TR_EXIT_NORMAL);
  }
  return 0;
}

int main(int argc, char **argv) {
  uint64_t leaves = 1000000, workers = 2, timeout = 600;
  const bench_opt_t opts[] = {{'n', "leaves", &leaves},
                              {'w', "workers", &workers},
                              {'t', "timeout_s", &timeout}};
  bench_parse_args(argc, argv, "skynet", opts, 3);
  bench_print_params("skynet", opts, 3);
  uint64_t p = 1;
  while (p < leaves)
    p *= FANOUT;
  if (p != leaves)
    bench_die("leaves must be a power of %d", FANOUT);

  tr_runtime_t *rt;
  tr_handle_t *h;
  bench_runtime_start(workers, &rt, &h);

  double t0 = bench_now();
  node_t root = {.parent = tr_handle_ref(h), .size = leaves};
  tr_ref_t ref;
  BENCH_CHECK(tr_spawn(rt, &node, &root, &ref));
  BENCH_CHECK(tr_send(NULL, ref, bench_msg_new(TR_TYPE(go_t))));
  sum_t *s = bench_wait_done(h, timeout);
  double secs = bench_now() - t0;

  /* Every inner node and leaf is an actor: leaves * 10/9 of them. */
  uint64_t actors = (leaves * FANOUT - 1) / (FANOUT - 1);
  bench_result("skynet", secs, s->value, " actors=%" PRIu64 " rate=%.0f",
               actors, (double)actors / secs);
  tr_msg_free(s);
  bench_runtime_end(rt, h);
  return 0;
}
