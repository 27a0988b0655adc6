/* SPDX-License-Identifier: MIT */
/*
 * select benchmark (BENCHMARKS.md): C producer threads each push K
 * messages into their own bounded mpsc channel (capacity 1024, blocking
 * backpressure); one consumer selects over the C channels. By default the
 * consumer is an actor with a select set (values arrive as tr_chan_item_t
 * messages, round-robin among ready channels); with -T 1 it is a thread
 * calling the blocking tr_chan_recv_any. The consumer finishes when every
 * channel has closed (its producer dropped its sender).
 * Checksum: values received, C*K.
 *
 * Producers: by default (-A 1) each producer is an actor, like the peers'
 * goroutines and tasks: it sends until the channel refuses (TR_EAGAIN,
 * the actor form of blocking backpressure), then waits for the
 * tr_chan_writable_t notice; it yields after every 256 values so that it
 * shares its worker. -A 0 makes them threads blocked in
 * tr_chan_send_timeout instead.
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
    tr_actor_stop(tr_ctx_self(ctx), TR_EXIT_NORMAL);
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

/* ---- actor producers ---- */

TR_MESSAGE_TYPE(go_t, int unused;);
TR_MESSAGE_DEFINE(go_t);

typedef struct aprod {
  tr_chan_t *ch;
  uint64_t k, i;
  item_t *held; /* refused by a full channel: sent first on writable */
} aprod_t;

static int aprod_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  *(aprod_t *)state = *(aprod_t *)arg;
  return 0;
}

/* Sends until the channel is full (then writable wakes us) or 256 values
 * went out (then a go_t to ourselves lets the others run). */
static int aprod_run(tr_ctx_t *ctx, void *state, void *msg) {
  aprod_t *p = state;
  (void)msg;
  for (unsigned burst = 0; p->i < p->k; burst++) {
    if (burst == 256) {
      BENCH_CHECK(tr_send(ctx, tr_ctx_self(ctx), bench_msg_new(TR_TYPE(go_t))));
      return 0;
    }
    item_t *it = p->held;
    if (!it) {
      it = bench_msg_new(TR_TYPE(item_t));
      it->seq = p->i;
    }
    int rc = tr_chan_send_ex(ctx, p->ch, it, TR_REF_NULL, TR_NOWAIT,
                             TR_SEND_KEEP);
    if (rc == TR_EAGAIN) {
      p->held = it; /* kept: sent again on tr_chan_writable_t */
      return 0;
    }
    BENCH_CHECK(rc);
    p->held = NULL;
    p->i++;
  }
  tr_chan_sender_drop(p->ch);
  tr_actor_stop(tr_ctx_self(ctx), TR_EXIT_NORMAL);
  return 0;
}

static const tr_handler_t aprod_handlers[] = {
    {.type = TR_TYPE(go_t), .fn = aprod_run},
    {.type = TR_TYPE(tr_chan_writable_t), .fn = aprod_run}};
static const tr_behavior_t aproducer = {
    .name = "select-producer",
    .state_size = sizeof(aprod_t),
    .init = aprod_init,
    .handlers = TR_HANDLERS(aprod_handlers)};

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
  uint64_t actor_prods = 1;
  const bench_opt_t opts[] = {{'c', "channels", &c},
                              {'k', "per_channel", &k},
                              {'w', "workers", &workers},
                              {'T', "thread_consumer", &thread_mode},
                              {'A', "actor_producers", &actor_prods},
                              {'t', "timeout_s", &timeout}};
  bench_parse_args(argc, argv, "select", opts, 6);
  if (c == 0 || k == 0) bench_die("need channels and messages");
  bench_print_params("select", opts, 6);

  tr_runtime_t *rt;
  tr_handle_t *h;
  bench_runtime_start(workers, &rt, &h);
  tr_chan_t **chans = calloc(c, sizeof(*chans));
  producer_t *prods = calloc(c, sizeof(*prods));
  if (!chans || !prods) bench_die("out of memory");
  for (uint64_t i = 0; i < c; i++)
    BENCH_CHECK(tr_chan_mpsc_new(rt, 1024, TR_OVERFLOW_BLOCK, &chans[i]));

  tr_chan_select_t *set = NULL;
  if (!thread_mode) {
    consumer_t init = {.done = tr_handle_ref(h), .chans = c};
    tr_ref_t ref;
    BENCH_CHECK(tr_spawn(rt, &consumer, &init, &ref));
    BENCH_CHECK(tr_chan_select_new(rt, ref, 256, TR_FOREVER, &set));
    for (uint64_t i = 0; i < c; i++)
      BENCH_CHECK(tr_chan_select_add(set, chans[i], NULL));
  }

  double t0 = bench_now();
  for (uint64_t i = 0; i < c; i++) {
    prods[i].ch = chans[i];
    prods[i].k = k;
    if (actor_prods) {
      aprod_t init = {.ch = chans[i], .k = k};
      tr_ref_t ref;
      BENCH_CHECK(tr_spawn(rt, &aproducer, &init, &ref));
      BENCH_CHECK(tr_send(NULL, ref, bench_msg_new(TR_TYPE(go_t))));
    } else if (pthread_create(&prods[i].thread, NULL, producer_main,
                              &prods[i])) {
      bench_die("pthread_create");
    }
  }
  uint64_t n = 0;
  if (thread_mode) {
    for (;;) {
      size_t idx;
      void *m;
      int rc = tr_chan_recv_any(chans, c, (int)(timeout * 1000), &idx, &m);
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
  if (!actor_prods)
    for (uint64_t i = 0; i < c; i++) pthread_join(prods[i].thread, NULL);

  bench_result("select", secs, n, " rate=%.0f consumer=%s producers=%s",
               (double)n / secs, thread_mode ? "thread" : "actor",
               actor_prods ? "actor" : "thread");
  tr_chan_select_free(set);
  for (uint64_t i = 0; i < c; i++) tr_chan_free(chans[i]);
  free(chans);
  free(prods);
  bench_runtime_end(rt, h);
  return 0;
}
