/* SPDX-License-Identifier: MIT */
/*
 * select benchmark (BENCHMARKS.md): C producer threads each push K
 * messages into their own bounded mpsc channel (capacity 1024, blocking
 * backpressure); one consumer selects over the C channels. By default the
 * consumer is an actor with a select set (values arrive as tr_chan_item_t
 * messages, round-robin among ready channels); with -T 1 it is a thread
 * calling the blocking tr_chan_select. The consumer finishes when every
 * channel has closed (its producer dropped its sender).
 * Checksum: values received, C*K.
 */
#include "benchutil.h"

#include <pthread.h>

#include <troupe/channel.h>

TR_MESSAGE_TYPE(item_t, uint64_t seq;);
TR_MESSAGE_DEFINE(item_t);
TR_MESSAGE_TYPE(count_t, uint64_t n;);
TR_MESSAGE_DEFINE(count_t);

typedef struct consumer {
  tr_ref_t done;
  uint64_t chans, closed, n;
} consumer_t;

static int consumer_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  *(consumer_t *)state = *(consumer_t *)arg;
  return 0;
}

static int consumer_on_item(tr_ctx_t *ctx, void *state, void *msg) {
  consumer_t *c = state;
  (void)ctx;
  (void)msg;
  c->n++;
  return 0;
}

static int consumer_on_closed(tr_ctx_t *ctx, void *state, void *msg) {
  consumer_t *c = state;
  (void)msg;
  if (++c->closed == c->chans) {
    count_t *r = bench_msg_new(TR_TYPE(count_t));
    r->n = c->n;
    BENCH_CHECK(tr_send(ctx, c->done, r));
    tr_stop(ctx, TR_EXIT_NORMAL);
  }
  return 0;
}

static const tr_handler_t consumer_handlers[] = {
    {.type = TR_TYPE(tr_chan_item_t), .fn = consumer_on_item},
    {.type = TR_TYPE(tr_chan_closed_t), .fn = consumer_on_closed}};
static const tr_behavior_t consumer = {
    .name = "select-consumer",
    .state_size = sizeof(consumer_t),
    .init = consumer_init,
    .handlers = TR_HANDLERS(consumer_handlers)};

typedef struct producer {
  tr_chan_t *ch;
  uint64_t k;
  pthread_t thread;
} producer_t;

static void *producer_main(void *arg) {
  producer_t *p = arg;
  for (uint64_t i = 0; i < p->k; i++) {
    item_t *it = bench_msg_new(TR_TYPE(item_t));
    it->seq = i;
    BENCH_CHECK(tr_chan_send_timeout(p->ch, it, -1));
  }
  tr_chan_sender_drop(p->ch);
  return NULL;
}

int main(int argc, char **argv) {
  uint64_t c = 8, k = 1000000, workers = 2, thread_mode = 0, timeout = 600;
  const bench_opt_t opts[] = {{'c', "channels", &c},
                              {'k', "per_channel", &k},
                              {'w', "workers", &workers},
                              {'T', "thread_consumer", &thread_mode},
                              {'t', "timeout_s", &timeout}};
  bench_parse_args(argc, argv, "select", opts, 5);
  if (c == 0 || k == 0) bench_die("need channels and messages");
  bench_print_params("select", opts, 5);

  tr_runtime_t *rt;
  tr_handle_t *h;
  bench_runtime_start(workers, &rt, &h);
  tr_chan_t **chans = calloc(c, sizeof(*chans));
  producer_t *prods = calloc(c, sizeof(*prods));
  if (!chans || !prods) bench_die("out of memory");
  for (uint64_t i = 0; i < c; i++)
    BENCH_CHECK(tr_mpsc_new(rt, 1024, TR_OVERFLOW_BLOCK, &chans[i]));

  tr_chan_select_t *set = NULL;
  if (!thread_mode) {
    consumer_t init = {.done = tr_handle_ref(h), .chans = c};
    tr_ref_t ref;
    BENCH_CHECK(tr_spawn(rt, &consumer, &init, &ref));
    BENCH_CHECK(tr_chan_select_new(rt, ref, 256, 0, &set));
    for (uint64_t i = 0; i < c; i++)
      BENCH_CHECK(tr_chan_select_add(set, chans[i], NULL));
  }

  double t0 = bench_now();
  for (uint64_t i = 0; i < c; i++) {
    prods[i].ch = chans[i];
    prods[i].k = k;
    if (pthread_create(&prods[i].thread, NULL, producer_main, &prods[i]))
      bench_die("pthread_create");
  }
  uint64_t n = 0;
  if (thread_mode) {
    for (;;) {
      size_t idx;
      void *m;
      int rc = tr_chan_select(chans, c, (int)(timeout * 1000), &idx, &m);
      if (rc == TR_ECLOSED) break;
      BENCH_CHECK(rc);
      n++;
      tr_msg_free(m);
    }
  } else {
    count_t *r = bench_wait_done(h, timeout);
    n = r->n;
    tr_msg_free(r);
  }
  double secs = bench_now() - t0;
  for (uint64_t i = 0; i < c; i++) pthread_join(prods[i].thread, NULL);

  bench_result("select", secs, n, " rate=%.0f consumer=%s", (double)n / secs,
               thread_mode ? "thread" : "actor");
  tr_chan_select_free(set);
  for (uint64_t i = 0; i < c; i++) tr_chan_free(chans[i]);
  free(chans);
  free(prods);
  bench_runtime_end(rt, h);
  return 0;
}
