/* SPDX-License-Identifier: MIT */
/*
 * requesters benchmark: R requester actors each ask one server K times, one
 * request outstanding at a time: the server is the hub of R request/reply
 * loops. With -a 1 (the default) a request is a tr_ask and the answer a
 * tr_reply (a new message each time, handed to the asker's continuation);
 * with -a 0 it is a plain send, and the server answers by sending the very
 * message back to its sender. Request i (1..K) of requester j (0..R-1) is
 * answered with j·K + i, which the requester adds up. Checksum: the sum of
 * all the answers, K²·R(R-1)/2 + R·K(K+1)/2.
 */
#include "benchutil.h"

#include <pthread.h>

TR_MESSAGE_TYPE(request_t, uint64_t who; uint64_t seq; uint64_t answer;);
TR_MESSAGE_DEFINE(request_t);
TR_MESSAGE_TYPE(answer_t, uint64_t value;);
TR_MESSAGE_DEFINE(answer_t);

/* Starts a requester; and what a requester sends the server when done. */
TR_MESSAGE_TYPE(go_t, uint64_t sum; uint64_t moves;);
TR_MESSAGE_DEFINE(go_t);

typedef struct server {
  tr_ref_t done;
  uint64_t per;     /* K, requests per requester */
  uint64_t left;    /* requesters not done yet */
  uint64_t sum;
  pthread_t last;   /* the worker thread of the previous request */
  uint64_t moves;   /* requests handled on another thread than the last */
} server_t;

typedef struct requester {
  tr_ref_t server;
  uint64_t who;
  uint64_t n;       /* K */
  uint64_t seq;     /* requests answered so far */
  uint64_t sum;
  int ask;
} requester_t;

static int server_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  *(server_t *)state = *(const server_t *)arg;
  return 0;
}

static int server_on_request(tr_ctx_t *ctx, void *state, void *msg) {
  server_t *s = state;
  request_t *r = msg;
  uint64_t value = r->who * s->per + r->seq;
  /* how often the hub changes worker (its state and inbox follow) */
  if (!pthread_equal(s->last, pthread_self())) {
    s->moves++;
    s->last = pthread_self();
  }
  if (r->answer == 0) {
    answer_t *a = bench_msg_new(TR_TYPE(answer_t));
    a->value = value;
    BENCH_CHECK(tr_reply(ctx, a));
    return 0;
  }
  r->answer = value;
  BENCH_CHECK(tr_send(ctx, tr_msg_sender(r), r));
  return 0;
}

static int server_on_go(tr_ctx_t *ctx, void *state, void *msg) {
  server_t *s = state;
  s->sum += ((go_t *)msg)->sum;
  if (--s->left > 0)
    return 0;
  go_t *g = bench_msg_new(TR_TYPE(go_t));
  g->sum = s->sum;
  g->moves = s->moves;
  BENCH_CHECK(tr_send(ctx, s->done, g));
  return 0;
}

static const tr_handler_t server_handlers[] = {
    {.type = TR_TYPE(request_t), .fn = server_on_request},
    {.type = TR_TYPE(go_t), .fn = server_on_go}};
static const tr_behavior_t server = {
    .name = "server",
    .state_size = sizeof(server_t),
    .init = server_init,
    .handlers = TR_HANDLERS(server_handlers)};

static void requester_next(tr_ctx_t *ctx, requester_t *q);

static void requester_finish(tr_ctx_t *ctx, requester_t *q) {
  go_t *g = bench_msg_new(TR_TYPE(go_t));
  g->sum = q->sum;
  BENCH_CHECK(tr_send(ctx, q->server, g));
}

/* The continuation of an ask: one answer in, the next request out. */
static int requester_on_answer(tr_ctx_t *ctx, void *state, int status,
                               void *reply, void *cookie) {
  requester_t *q = state;
  (void)cookie;
  if (status != 0)
    bench_die("ask failed: %s", tr_err_name(status));
  q->sum += ((answer_t *)reply)->value;
  if (++q->seq == q->n) {
    requester_finish(ctx, q);
    return 0;
  }
  requester_next(ctx, q);
  return 0;
}

static void requester_next(tr_ctx_t *ctx, requester_t *q) {
  request_t *r = bench_msg_new(TR_TYPE(request_t));
  r->who = q->who;
  r->seq = q->seq + 1;
  r->answer = 0; /* zero: answer with tr_reply */
  BENCH_CHECK(tr_ask(ctx, q->server, r, requester_on_answer, NULL));
}

static int requester_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  *(requester_t *)state = *(const requester_t *)arg;
  return 0;
}

static int requester_on_go(tr_ctx_t *ctx, void *state, void *msg) {
  requester_t *q = state;
  (void)msg;
  if (q->n == 0) {
    requester_finish(ctx, q);
    return 0;
  }
  if (q->ask) {
    requester_next(ctx, q);
    return 0;
  }
  request_t *r = bench_msg_new(TR_TYPE(request_t));
  r->who = q->who;
  r->seq = 1;
  r->answer = 1; /* nonzero: answer by sending it back */
  BENCH_CHECK(tr_send(ctx, q->server, r));
  return 0;
}

/* The plain variant: the request comes back with its answer filled in. */
static int requester_on_request(tr_ctx_t *ctx, void *state, void *msg) {
  requester_t *q = state;
  request_t *r = msg;
  q->sum += r->answer;
  if (++q->seq == q->n) {
    requester_finish(ctx, q);
    return 0;
  }
  r->seq = q->seq + 1;
  r->answer = 1;
  BENCH_CHECK(tr_send(ctx, q->server, r));
  return 0;
}

static const tr_handler_t requester_handlers[] = {
    {.type = TR_TYPE(go_t), .fn = requester_on_go},
    {.type = TR_TYPE(request_t), .fn = requester_on_request}};
static const tr_behavior_t requester = {
    .name = "requester",
    .state_size = sizeof(requester_t),
    .init = requester_init,
    .handlers = TR_HANDLERS(requester_handlers)};

int main(int argc, char **argv) {
  uint64_t nreq = 64, per = 50000, ask = 1, workers = 2, timeout = 600;
  const bench_opt_t opts[] = {{'r', "requesters", &nreq},
                              {'n', "requests_each", &per},
                              {'a', "ask", &ask},
                              {'w', "workers", &workers},
                              {'t', "timeout_s", &timeout}};
  bench_parse_args(argc, argv, "requesters", opts, 5);
  bench_print_params("requesters", opts, 5);
  if (nreq < 1)
    bench_die("at least one requester");

  tr_runtime_t *rt;
  tr_handle_t *h;
  bench_runtime_start(workers, &rt, &h);

  server_t sargs = {.done = tr_handle_ref(h), .per = per, .left = nreq};
  tr_ref_t srv;
  BENCH_CHECK(tr_spawn(rt, &server, &sargs, &srv));
  tr_ref_t *refs = calloc(nreq, sizeof(*refs));
  if (refs == NULL)
    bench_die("out of memory");
  for (uint64_t j = 0; j < nreq; j++) {
    requester_t q = {.server = srv, .who = j, .n = per, .ask = ask != 0};
    BENCH_CHECK(tr_spawn(rt, &requester, &q, &refs[j]));
  }

  double t0 = bench_now();
  for (uint64_t j = 0; j < nreq; j++)
    BENCH_CHECK(tr_send(NULL, refs[j], bench_msg_new(TR_TYPE(go_t))));
  go_t *g = bench_wait_done(h, timeout);
  double secs = bench_now() - t0;

  bench_result("requesters", secs, g->sum, " rate=%.0f server_moves=%" PRIu64,
               (double)(nreq * per) / secs, g->moves);
  tr_msg_free(g);
  free(refs);
  bench_runtime_end(rt, h);
  return 0;
}
