/* SPDX-License-Identifier: MIT */
/*
 * broadcast benchmark (BENCHMARKS.md): one publisher (the main thread)
 * publishes M messages on a broadcast channel that R subscriber actors
 * subscribed to; every subscriber must see every message. Each message is
 * stored once and shared; a subscriber sees it through a small view. When
 * the channel closes each subscriber reports its count to the main thread.
 * Checksum: views seen, summed over subscribers: R*M. The ring retains
 * `capacity` messages (default M, so nobody can lag; a smaller -c shows
 * lagging, which is reported and makes the checksum fall short).
 */
#include "benchutil.h"

#include <troupe/channel.h>

TR_MESSAGE_TYPE(item_t, uint64_t seq;);
TR_MESSAGE_DEFINE(item_t);
TR_MESSAGE_TYPE(count_t, uint64_t n; uint64_t lagged;);
TR_MESSAGE_DEFINE(count_t);

typedef struct sub {
  tr_ref_t done;
  uint64_t n, lagged;
} sub_t;

static int sub_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  ((sub_t *)state)->done = *(tr_ref_t *)arg;
  return 0;
}

static int sub_on_view(tr_ctx_t *ctx, void *state, void *msg) {
  sub_t *s = state;
  tr_chan_view_t *v = msg;
  (void)ctx;
  s->n++;
  s->lagged += v->lagged;
  return 0;
}

static int sub_on_closed(tr_ctx_t *ctx, void *state, void *msg) {
  sub_t *s = state;
  (void)msg;
  count_t *c = bench_msg_new(TR_TYPE(count_t));
  c->n = s->n;
  c->lagged = s->lagged;
  BENCH_CHECK(tr_send(ctx, s->done, c));
  tr_actor_stop(tr_ctx_self(ctx), TR_EXIT_NORMAL);
  return 0;
}

static const tr_handler_t sub_handlers[] = {
    {.type = TR_TYPE(tr_chan_view_t), .fn = sub_on_view},
    {.type = TR_TYPE(tr_chan_closed_t), .fn = sub_on_closed}};
static const tr_behavior_t subscriber = {
    .name = "broadcast-subscriber",
    .state_size = sizeof(sub_t),
    .init = sub_init,
    .handlers = TR_HANDLERS(sub_handlers)};

int main(int argc, char **argv) {
  uint64_t r = 1000, m = 10000, cap = 0, workers = 2, timeout = 600;
  const bench_opt_t opts[] = {{'r', "subscribers", &r},
                              {'m', "messages", &m},
                              {'c', "capacity", &cap},
                              {'w', "workers", &workers},
                              {'t', "timeout_s", &timeout}};
  bench_parse_args(argc, argv, "broadcast", opts, 5);
  if (cap == 0) cap = m;
  if (r == 0 || m == 0) bench_die("need subscribers and messages");
  bench_print_params("broadcast", opts, 5);

  tr_runtime_t *rt;
  tr_handle_t *h;
  bench_runtime_start(workers, &rt, &h);
  tr_chan_t *ch;
  BENCH_CHECK(tr_chan_broadcast_new(rt, cap, &ch));
  tr_ref_t done = tr_handle_ref(h);
  for (uint64_t i = 0; i < r; i++) {
    tr_ref_t ref;
    BENCH_CHECK(tr_spawn(rt, &subscriber, &done, &ref));
    BENCH_CHECK(tr_chan_subscribe(ch, ref, (unsigned)i, 0));
  }

  double t0 = bench_now();
  for (uint64_t i = 0; i < m; i++) {
    item_t *it = bench_msg_new(TR_TYPE(item_t));
    it->seq = i;
    BENCH_CHECK(tr_chan_send(NULL, ch, it));
  }
  tr_chan_sender_drop(ch); /* closes: subscribers report */
  uint64_t sum = 0, lagged = 0;
  for (uint64_t i = 0; i < r; i++) {
    count_t *c = bench_wait_done(h, timeout);
    sum += c->n;
    lagged += c->lagged;
    tr_msg_free(c);
  }
  double secs = bench_now() - t0;

  bench_result("broadcast", secs, sum, " rate=%.0f lagged=%" PRIu64,
               (double)sum / secs, lagged);
  tr_chan_free(ch);
  bench_runtime_end(rt, h);
  return 0;
}
