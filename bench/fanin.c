/* SPDX-License-Identifier: MIT */
/*
 * fanin benchmark: S sender actors (one per worker by default) each send K
 * messages, carrying the values K, K-1, ..., 1, to a single receiver that
 * counts them and sums the values. A sender sends in chunks of CHUNK
 * messages and then mails itself a "continue" message, so that it yields its
 * worker and the receiver gets to run in between.
 * Checksum: the sum of the values received, S*K*(K+1)/2 (every message adds
 * to it, so a lost or doubled one shows).
 */
#include "benchutil.h"

TR_MESSAGE_TYPE(item_t, uint64_t seq;);
TR_MESSAGE_DEFINE(item_t);
TR_MESSAGE_TYPE(more_t, uint8_t unused;);
TR_MESSAGE_DEFINE(more_t);
TR_MESSAGE_TYPE(count_t, uint64_t n; uint64_t sum;);
TR_MESSAGE_DEFINE(count_t);

#define CHUNK 1000

typedef struct receiver {
  tr_ref_t done;
  uint64_t expected;
  uint64_t count;
  uint64_t sum;
} receiver_t;

typedef struct sender {
  tr_ref_t receiver;
  uint64_t left;
} sender_t;

static int receiver_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  *(receiver_t *)state = *(const receiver_t *)arg;
  return 0;
}

static int receiver_on_item(tr_ctx_t *ctx, void *state, void *msg) {
  receiver_t *r = state;
  const item_t *it = msg;
  r->sum += it->seq;
  if (++r->count == r->expected) {
    count_t *c = bench_msg_new(TR_TYPE(count_t));
    c->n = r->count;
    c->sum = r->sum;
    BENCH_CHECK(tr_send(ctx, r->done, c));
  }
  return 0;
}

static int sender_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  *(sender_t *)state = *(const sender_t *)arg;
  return 0;
}

/* Sends the next chunk, then passes the same "continue" message to itself
 * (so it re-enters the run queue behind everyone else), or stops. */
static int sender_on_more(tr_ctx_t *ctx, void *state, void *msg) {
  sender_t *s = state;
  uint64_t n = s->left < CHUNK ? s->left : CHUNK;
  for (uint64_t i = 0; i < n; i++) {
    item_t *it = bench_msg_new(TR_TYPE(item_t));
    it->seq = s->left - i;
    BENCH_CHECK(tr_send(ctx, s->receiver, it));
  }
  s->left -= n;
  if (s->left > 0)
    BENCH_CHECK(tr_send(ctx, tr_ctx_self(ctx), msg));
  else
    tr_actor_stop(tr_ctx_self(ctx), TR_EXIT_NORMAL);
  return 0;
}

static const tr_handler_t receiver_handlers[] = {
    {.type = TR_TYPE(item_t), .fn = receiver_on_item}};
static const tr_behavior_t receiver = {
    .name = "fanin-receiver",
    .state_size = sizeof(receiver_t),
    .init = receiver_init,
    .handlers = TR_HANDLERS(receiver_handlers)};

static const tr_handler_t sender_handlers[] = {
    {.type = TR_TYPE(more_t), .fn = sender_on_more}};
static const tr_behavior_t sender = {
    .name = "fanin-sender",
    .state_size = sizeof(sender_t),
    .init = sender_init,
    .handlers = TR_HANDLERS(sender_handlers)};

int main(int argc, char **argv) {
  uint64_t k = 5000000, workers = 2, senders = 0, timeout = 600;
  const bench_opt_t opts[] = {{'n', "per_sender", &k},
                              {'s', "senders", &senders},
                              {'w', "workers", &workers},
                              {'t', "timeout_s", &timeout}};
  bench_parse_args(argc, argv, "fanin", opts, 4);
  if (senders == 0)
    senders = workers;
  if (k == 0)
    bench_die("each sender must send at least one message");
  bench_print_params_sum("fanin", opts, 4, "S*K*(K+1)/2");

  tr_runtime_t *rt;
  tr_handle_t *h;
  bench_runtime_start(workers, &rt, &h);

  receiver_t rargs = {.done = tr_handle_ref(h), .expected = senders * k};
  sender_t sargs = {.left = k};
  BENCH_CHECK(tr_spawn(rt, &receiver, &rargs, &sargs.receiver));
  tr_ref_t *refs = calloc(senders, sizeof(*refs));
  if (refs == NULL)
    bench_die("out of memory");
  for (uint64_t i = 0; i < senders; i++)
    BENCH_CHECK(tr_spawn(rt, &sender, &sargs, &refs[i]));

  double t0 = bench_now();
  for (uint64_t i = 0; i < senders; i++)
    BENCH_CHECK(tr_send(NULL, refs[i], bench_msg_new(TR_TYPE(more_t))));
  count_t *c = bench_wait_done(h, timeout);
  double secs = bench_now() - t0;

  /* How far the senders got ahead of the receiver: the mailbox's deepest. */
  tr_actor_stats_t st;
  BENCH_CHECK(tr_actor_stats(sargs.receiver, &st));
  bench_result("fanin", secs, c->sum, " rate=%.0f mailbox_hwm=%" PRIu64,
               (double)c->n / secs, st.depth_hwm);
  tr_msg_free(c);
  free(refs);
  bench_runtime_end(rt, h);
  return 0;
}
