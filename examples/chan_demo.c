/* SPDX-License-Identifier: MIT */
/*
 * chan_demo: the four channel kinds in one small program (see
 * doc/channels.md). A bounded mpsc channel feeds a summing actor that
 * subscribed to it; when every sender is gone the actor gets the closed
 * notice and answers through a oneshot channel that main waits on. A
 * broadcast reaches two thread subscribers, and a watch holds the latest
 * configuration. Run by make check: it exits non-zero if anything is off.
 */
#include <stdio.h>

#include <troupe.h>
#include <troupe/channel.h>

TR_MESSAGE_TYPE(num_t, long v;)
TR_MESSAGE_DEFINE(num_t);

/* The summing actor: its state points at the channels it needs. */
typedef struct summer {
  tr_chan_t *in;     /* bounded mpsc it receives from */
  tr_chan_t *result; /* oneshot it answers on */
  long sum;
} summer_t;

static int summer_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  *(summer_t *)state = *(summer_t *)arg;
  return 0;
}

/* Each value arrives as an ordinary message. The channel is bounded, so
 * the actor acknowledges each one to let the next in. */
static int summer_on_num(tr_ctx_t *ctx, void *state, void *msg) {
  summer_t *s = state;
  (void)ctx;
  s->sum += ((num_t *)msg)->v;
  tr_chan_ack(s->in, 1);
  return 0;
}

/* Every sender is gone: answer on the oneshot and stop. */
static int summer_on_closed(tr_ctx_t *ctx, void *state, void *msg) {
  summer_t *s = state;
  num_t *r = num_t_new();
  (void)msg;
  if (!r) return TR_ENOMEM;
  r->v = s->sum;
  (void)tr_chan_send(ctx, s->result, r); /* consumed, sent or not */
  tr_chan_sender_drop(s->result);
  tr_actor_stop(tr_ctx_self(ctx), TR_EXIT_NORMAL);
  return 0;
}

static const tr_handler_t summer_handlers[] = {
    {.type = TR_TYPE(num_t), .fn = summer_on_num},
    {.type = TR_TYPE(tr_chan_closed_t), .fn = summer_on_closed},
};
static const tr_behavior_t summer = {
    .name = "summer",
    .state_size = sizeof(summer_t),
    .init = summer_init,
    .handlers = TR_HANDLERS(summer_handlers),
};

static int fail(const char *what, int rc) {
  fprintf(stderr, "chan_demo: %s: %s\n", what, tr_strerror(rc));
  return 1;
}

int main(void) {
  tr_runtime_t *rt;
  tr_chan_t *in, *result, *news, *config;
  tr_ref_t ref;
  void *m;
  int rc;

  if ((rc = tr_runtime_new(NULL, &rt)) || (rc = tr_runtime_start(rt)))
    return fail("runtime", rc);

  /* mpsc + oneshot: 100 numbers through a channel of 8, blocking main
   * whenever the actor falls behind; the answer comes back on a oneshot. */
  if ((rc = tr_chan_mpsc_new(rt, 8, TR_OVERFLOW_BLOCK, &in)) ||
      (rc = tr_chan_oneshot_new(rt, &result)))
    return fail("channels", rc);
  summer_t init = {.in = in, .result = result};
  if ((rc = tr_spawn(rt, &summer, &init, &ref)) ||
      (rc = tr_chan_subscribe(in, ref, 0, 0)))
    return fail("spawn/subscribe", rc);
  for (long i = 1; i <= 100; i++) {
    num_t *n = num_t_new();
    n->v = i;
    if ((rc = tr_chan_send(NULL, in, n)) != 0) return fail("send", rc);
  }
  tr_chan_sender_drop(in); /* the last sender: the actor hears "closed" */
  if ((rc = tr_chan_recv(result, 5000, &m)) != 0) return fail("recv", rc);
  printf("sum over the mpsc channel: %ld\n", ((num_t *)m)->v);
  if (((num_t *)m)->v != 5050) return fail("sum", TR_EINVAL);
  tr_msg_free(m);
  tr_chan_free(result);
  tr_chan_free(in);

  /* broadcast: two subscribers see the same three values, stored once. */
  tr_chan_sub_t *a, *b;
  if ((rc = tr_chan_broadcast_new(rt, 16, &news)) ||
      (rc = tr_chan_sub_new(news, &a)) || (rc = tr_chan_sub_new(news, &b)))
    return fail("broadcast", rc);
  for (long i = 0; i < 3; i++) {
    num_t *n = num_t_new();
    n->v = i * 10;
    if ((rc = tr_chan_send(NULL, news, n)) != 0) return fail("publish", rc);
  }
  for (tr_chan_sub_t *s = a; s; s = s == a ? b : NULL) {
    tr_chan_view_t *v;
    while (tr_chan_sub_recv(s, 0, &v) == 0) {
      printf("subscriber %c: #%llu = %ld\n", s == a ? 'a' : 'b',
             (unsigned long long)v->seq, ((const num_t *)v->value)->v);
      tr_msg_free(v);
    }
  }
  tr_chan_sub_free(a);
  tr_chan_sub_free(b);
  tr_chan_sender_drop(news);
  tr_chan_free(news);

  /* watch: only the latest value matters. */
  if ((rc = tr_chan_watch_new(rt, &config)) != 0) return fail("watch", rc);
  for (long i = 1; i <= 3; i++) {
    num_t *n = num_t_new();
    n->v = i;
    tr_chan_send(NULL, config, n);
  }
  tr_chan_view_t *cur;
  if ((rc = tr_chan_watch_borrow(config, &cur)) != 0) return fail("borrow", rc);
  printf("config version %llu = %ld\n", (unsigned long long)cur->seq,
         ((const num_t *)cur->value)->v);
  tr_msg_free(cur);
  tr_chan_sender_drop(config);
  tr_chan_free(config);

  if ((rc = tr_runtime_shutdown(rt, 5000)) != 0) return fail("shutdown", rc);
  tr_runtime_free(rt);
  return 0;
}
