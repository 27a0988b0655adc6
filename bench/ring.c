/* SPDX-License-Identifier: MIT */
/*
 * ring benchmark: A actors linked in a ring pass one token M times; each
 * hop decrements the token's count and moves the same message on (no
 * allocation per hop). The first actor builds the rest of the ring in its
 * init so that the last one can point back at it. Checksum: hops made, M.
 */
#include "benchutil.h"

TR_MESSAGE_TYPE(token_t, uint64_t left; uint64_t hops;);
TR_MESSAGE_DEFINE(token_t);

typedef struct node {
  tr_ref_t next;
  tr_ref_t done;
} node_t;

typedef struct ring_args {
  tr_ref_t next;    /* for the other nodes: who comes next */
  tr_ref_t done;
  uint64_t actors;  /* for the first node: the size of the ring */
} ring_args_t;

static int node_on_token(tr_ctx_t *ctx, void *state, void *msg) {
  node_t *n = state;
  token_t *t = msg;
  if (t->left == 0) {
    BENCH_CHECK(tr_send(ctx, n->done, t));
    return 0;
  }
  t->left--;
  t->hops++;
  BENCH_CHECK(tr_send(ctx, n->next, t));
  return 0;
}

static const tr_handler_t node_handlers[] = {
    {.type = TR_TYPE(token_t), .fn = node_on_token}};

static int node_init(tr_ctx_t *ctx, void *state, void *arg);

static const tr_behavior_t node = {
    .name = "ring-node",
    .state_size = sizeof(node_t),
    .init = node_init,
    .handlers = TR_HANDLERS(node_handlers)};

/* The first node (arg->actors > 1) spawns nodes A-1 down to 1, each
 * pointing at the one spawned before it, node A-1 pointing back at itself. */
static int node_init(tr_ctx_t *ctx, void *state, void *arg) {
  const ring_args_t *a = arg;
  node_t *n = state;
  n->done = a->done;
  n->next = a->next;
  if (a->actors > 0) {
    ring_args_t sub = {.next = tr_ctx_self(ctx), .done = a->done};
    for (uint64_t i = 1; i < a->actors; i++)
      BENCH_CHECK(tr_spawn(tr_ctx_runtime(ctx), &node, &sub, &sub.next));
    n->next = sub.next;
  }
  return 0;
}

int main(int argc, char **argv) {
  uint64_t actors = 1000, m = 10000000, workers = 2, timeout = 600;
  const bench_opt_t opts[] = {{'a', "actors", &actors},
                              {'n', "hops", &m},
                              {'w', "workers", &workers},
                              {'t', "timeout_s", &timeout}};
  bench_parse_args(argc, argv, "ring", opts, 4);
  bench_print_params("ring", opts, 4);
  if (actors < 1)
    bench_die("the ring needs at least one actor");

  tr_runtime_t *rt;
  tr_handle_t *h;
  bench_runtime_start(workers, &rt, &h);

  ring_args_t args = {.done = tr_handle_ref(h), .actors = actors};
  tr_ref_t first;
  BENCH_CHECK(tr_spawn(rt, &node, &args, &first));

  double t0 = bench_now();
  token_t *t = bench_msg_new(TR_TYPE(token_t));
  t->left = m;
  BENCH_CHECK(tr_send(NULL, first, t));
  t = bench_wait_done(h, timeout);
  double secs = bench_now() - t0;

  bench_result("ring", secs, t->hops, " rate=%.0f", (double)t->hops / secs);
  tr_msg_free(t);
  bench_runtime_end(rt, h);
  return 0;
}
