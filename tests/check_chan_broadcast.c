/* SPDX-License-Identifier: MIT */
/*
 * Tests of broadcast channels (<troupe/channel.h>): every subscriber sees
 * every value in order through views of one shared value; a subscriber
 * that falls more than capacity behind is told exactly how many it missed
 * and continues from the oldest retained value; that lag accounting is
 * exact with several publishers at once; actor subscribers see everything
 * with a bounded number of views in flight, then one closed notice;
 * values are freed exactly once; publishing with no subscriber fails and
 * leaves the message with the caller; a dead subscriber is dropped; views
 * an actor keeps or forwards stay valid after the ring moved on; a
 * failing subscriber leaves; views follow mailbox routing and the budget.
 */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>

#include <troupe.h>
#include <troupe/channel.h>

#include "testutil.h"

TR_MESSAGE_TYPE(val_t, uint64_t v;)
static _Atomic uint64_t val_freed;
static void val_dtor(void *m) {
  (void)m;
  atomic_fetch_add(&val_freed, 1);
}
TR_MESSAGE_DEFINE(val_t, .dtor = val_dtor);

static val_t *mkval(uint64_t v) {
  val_t *m = val_t_new();
  ck_assert_ptr_nonnull(m);
  m->v = v;
  return m;
}

START_TEST(test_bcast_every_subscriber_in_order) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_broadcast_new(rt, 16, &ch), 0);
  tr_chan_sub_t *s[3];
  for (int i = 0; i < 3; i++) ck_assert_int_eq(tr_chan_sub_new(ch, &s[i]), 0);
  atomic_store(&val_freed, 0);
  for (uint64_t i = 0; i < 10; i++)
    ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(i)), 0);
  const void *first[10];
  for (int k = 0; k < 3; k++) {
    for (uint64_t i = 0; i < 10; i++) {
      tr_chan_view_t *v;
      ck_assert_int_eq(tr_chan_sub_recv(s[k], 0, &v), 0);
      ck_assert_uint_eq(v->seq, i);
      ck_assert_uint_eq(v->lagged, 0);
      ck_assert_uint_eq(((const val_t *)v->value)->v, i);
      if (k == 0) first[i] = v->value;
      else ck_assert_ptr_eq(v->value, first[i]); /* shared, not copied */
      tr_msg_free(v);
    }
    tr_chan_view_t *v;
    ck_assert_int_eq(tr_chan_sub_recv(s[k], 10, &v), TR_ETIMEDOUT);
  }
  ck_assert_uint_eq(atomic_load(&val_freed), 0); /* still retained */
  for (int i = 0; i < 3; i++) tr_chan_sub_free(s[i]);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  ck_assert_uint_eq(atomic_load(&val_freed), 10); /* once each */
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_bcast_lag_is_reported) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_broadcast_new(rt, 4, &ch), 0);
  tr_chan_sub_t *s;
  ck_assert_int_eq(tr_chan_sub_new(ch, &s), 0);
  atomic_store(&val_freed, 0);
  uint64_t tail = 10;
  for (uint64_t i = 0; i < tail; i++)
    ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(i)), 0);
  /* a value still in the ring is never released */
  ck_assert_uint_le(atomic_load(&val_freed), tail - 4);
  /* one that left it is released once no worker can be reading it (the
   * workers pass a quiescent point, which an idle one does by parking):
   * memory stays bounded */
  for (int k = 0; k < 2000 && atomic_load(&val_freed) < tail - 4; k++) {
    tu_sleep_ms(1);
    ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(tail)), 0);
    tail++;
  }
  ck_assert_uint_eq(atomic_load(&val_freed), tail - 4);
  tr_chan_view_t *v;
  ck_assert_int_eq(tr_chan_sub_recv(s, 0, &v), 0);
  ck_assert_uint_eq(v->seq, tail - 4);
  ck_assert_uint_eq(v->lagged, tail - 4);
  tr_msg_free(v);
  for (uint64_t i = tail - 3; i < tail; i++) {
    ck_assert_int_eq(tr_chan_sub_recv(s, 0, &v), 0);
    ck_assert_uint_eq(v->seq, i);
    ck_assert_uint_eq(v->lagged, 0);
    tr_msg_free(v);
  }
  tr_chan_stats_t st;
  tr_chan_stats(ch, &st);
  ck_assert_uint_eq(st.lagged, tail - 4);
  tr_chan_close(ch);
  ck_assert_int_eq(tr_chan_sub_recv(s, 1000, &v), TR_ECLOSED);
  tr_chan_sub_free(s);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_bcast_no_subscriber) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_broadcast_new(rt, 4, &ch), 0);
  val_t *m = mkval(1);
  ck_assert_int_eq(tr_chan_send(NULL, ch, m), TR_ENOENT);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

/* Publishers in parallel, slow readers: for every subscriber, each view's
 * seq is the previous seq + 1 + lagged, and received + lagged equals the
 * number published. */
typedef struct pub_arg {
  tr_chan_t *ch;
  uint64_t n;
} pub_arg_t;

static void *publisher(void *p) {
  pub_arg_t *a = p;
  for (uint64_t i = 0; i < a->n; i++) {
    val_t *m = mkval(i);
    if (tr_chan_send(NULL, a->ch, m) != 0) abort();
  }
  return NULL;
}

typedef struct reader_arg {
  tr_chan_sub_t *sub;
  unsigned every;
  uint64_t got, lagged, errors;
} reader_arg_t;

static void *reader(void *p) {
  reader_arg_t *a = p;
  uint64_t expect = 0;
  for (;;) {
    tr_chan_view_t *v;
    int rc = tr_chan_sub_recv(a->sub, 10000, &v);
    if (rc) break;
    if (v->seq != expect + v->lagged) a->errors++;
    expect = v->seq + 1;
    a->got++;
    a->lagged += v->lagged;
    tr_msg_free(v);
    if (a->every && a->got % a->every == 0) tu_sleep_ms(1);
  }
  return NULL;
}

START_TEST(test_bcast_lag_exact_concurrent_publishers) {
  enum { P = 4, R = 3 };
  uint64_t n = (uint64_t)(3000 * tu_stress_scale());
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_broadcast_new(rt, 16, &ch), 0);
  reader_arg_t ra[R];
  pthread_t rt_[R], pt[P];
  for (int i = 0; i < R; i++) {
    ra[i] = (reader_arg_t){.every = i == 0 ? 0 : (unsigned)(50 * i)};
    ck_assert_int_eq(tr_chan_sub_new(ch, &ra[i].sub), 0);
    pthread_create(&rt_[i], NULL, reader, &ra[i]);
  }
  pub_arg_t pa = {.ch = ch, .n = n};
  for (int i = 0; i < P; i++) pthread_create(&pt[i], NULL, publisher, &pa);
  for (int i = 0; i < P; i++) pthread_join(pt[i], NULL);
  tr_chan_close(ch);
  uint64_t total_lag = 0;
  for (int i = 0; i < R; i++) {
    pthread_join(rt_[i], NULL);
    ck_assert_uint_eq(ra[i].errors, 0);
    ck_assert_uint_eq(ra[i].got + ra[i].lagged, P * n);
    total_lag += ra[i].lagged;
    tr_chan_sub_free(ra[i].sub);
  }
  tr_chan_stats_t st;
  tr_chan_stats(ch, &st);
  ck_assert_uint_eq(st.lagged, total_lag);
  ck_assert_uint_eq(st.sent, P * n);
  ck_assert_uint_eq(st.delivered + st.lagged, R * P * n);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

/* ---- actor subscribers --------------------------------------------------- */

typedef struct obs {
  _Atomic uint64_t views, lagged, closed, errors, sum;
  uint64_t expect;
} obs_t;

typedef struct sub_state {
  obs_t *o;
  uint64_t next;
  uint64_t seen;
} sub_state_t;

static int sub_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  ((sub_state_t *)state)->o = arg;
  return 0;
}

static int sub_on_view(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  sub_state_t *s = state;
  tr_chan_view_t *v = msg;
  if (v->seq != s->next + v->lagged) atomic_fetch_add(&s->o->errors, 1);
  s->next = v->seq + 1;
  s->seen++;
  atomic_fetch_add(&s->o->sum, ((const val_t *)v->value)->v);
  atomic_fetch_add(&s->o->lagged, v->lagged);
  atomic_fetch_add(&s->o->views, 1);
  return 0;
}

static int sub_on_closed(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)msg;
  sub_state_t *s = state;
  if (s->seen != s->o->expect) atomic_fetch_add(&s->o->errors, 1);
  atomic_fetch_add(&s->o->closed, 1);
  return 0;
}

static const tr_handler_t sub_handlers[] = {
    {.type = TR_TYPE(tr_chan_view_t), .fn = sub_on_view},
    {.type = TR_TYPE(tr_chan_closed_t), .fn = sub_on_closed}};
static const tr_behavior_t sub_beh = {.name = "bcast-sub",
                                      .state_size = sizeof(sub_state_t),
                                      .init = sub_init,
                                      .handlers = TR_HANDLERS(sub_handlers)};

START_TEST(test_bcast_actor_subscribers) {
  enum { R = 50 };
  uint64_t m = (uint64_t)(2000 * tu_stress_scale());
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_broadcast_new(rt, m, &ch), 0); /* no lag possible */
  obs_t o = {.expect = m};
  tr_ref_t refs[R];
  for (int i = 0; i < R; i++) {
    ck_assert_int_eq(tr_spawn(rt, &sub_beh, &o, &refs[i]), 0);
    ck_assert_int_eq(tr_chan_subscribe(ch, refs[i], (unsigned)i, 0), 0);
  }
  atomic_store(&val_freed, 0);
  for (uint64_t i = 0; i < m; i++)
    ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(i)), 0);
  tr_chan_sender_drop(ch); /* closes: every subscriber gets its notice */
  ck_assert(tu_wait_ge(&o.closed, R, 30000));
  ck_assert_uint_eq(atomic_load(&o.views), R * m);
  ck_assert_uint_eq(atomic_load(&o.lagged), 0);
  ck_assert_uint_eq(atomic_load(&o.errors), 0);
  ck_assert_uint_eq(atomic_load(&o.sum), R * (m * (m - 1) / 2));
  for (int i = 0; i < R; i++) tr_actor_stop(refs[i], 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 5000), 0);
  tr_chan_free(ch);
  ck_assert_uint_eq(atomic_load(&val_freed), m);
  tu_runtime_finish(rt);
}
END_TEST

/* A small ring and a fast publisher: actor subscribers lag, and their
 * views + lag still add up exactly. */
START_TEST(test_bcast_actor_lag_exact) {
  enum { R = 8 };
  uint64_t m = (uint64_t)(5000 * tu_stress_scale());
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_broadcast_new(rt, 8, &ch), 0);
  obs_t o = {.expect = UINT64_MAX};
  tr_ref_t refs[R];
  for (int i = 0; i < R; i++) {
    ck_assert_int_eq(tr_spawn(rt, &sub_beh, &o, &refs[i]), 0);
    ck_assert_int_eq(tr_chan_subscribe(ch, refs[i], (unsigned)i, 0), 0);
  }
  for (uint64_t i = 0; i < m; i++)
    ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(i)), 0);
  tr_chan_close(ch);
  ck_assert(tu_wait_ge(&o.closed, R, 30000));
  ck_assert_uint_eq(atomic_load(&o.views) + atomic_load(&o.lagged), R * m);
  ck_assert_uint_eq(atomic_load(&o.errors), R); /* expect mismatch only */
  tr_chan_stats_t st;
  tr_chan_stats(ch, &st);
  ck_assert_uint_eq(st.lagged, atomic_load(&o.lagged));
  for (int i = 0; i < R; i++) tr_actor_stop(refs[i], 0);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

/* Several publisher threads, a small ring and actor subscribers that
 * read it while it is overwritten: each subscriber's views come in ring
 * order with exact lag, views + lag add up for everyone, and every value
 * is freed exactly once (the overwritten ones after the workers' grace
 * period, the rest with the channel). */
START_TEST(test_bcast_actor_concurrent_publishers) {
  enum { R = 16, P = 3 };
  uint64_t n = (uint64_t)(3000 * tu_stress_scale());
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_broadcast_new(rt, 8, &ch), 0);
  obs_t o = {.expect = UINT64_MAX};
  tr_ref_t refs[R];
  for (int i = 0; i < R; i++) {
    ck_assert_int_eq(tr_spawn(rt, &sub_beh, &o, &refs[i]), 0);
    ck_assert_int_eq(tr_chan_subscribe(ch, refs[i], (unsigned)i, 0), 0);
  }
  atomic_store(&val_freed, 0);
  pthread_t pt[P];
  pub_arg_t pa = {.ch = ch, .n = n};
  for (int i = 0; i < P; i++) pthread_create(&pt[i], NULL, publisher, &pa);
  for (int i = 0; i < P; i++) pthread_join(pt[i], NULL);
  tr_chan_close(ch);
  ck_assert(tu_wait_ge(&o.closed, R, 30000));
  ck_assert_uint_eq(atomic_load(&o.views) + atomic_load(&o.lagged), R * P * n);
  ck_assert_uint_eq(atomic_load(&o.errors), R); /* expect mismatch only */
  tr_chan_stats_t st;
  tr_chan_stats(ch, &st);
  ck_assert_uint_eq(st.lagged, atomic_load(&o.lagged));
  ck_assert_uint_eq(st.delivered, atomic_load(&o.views));
  for (int i = 0; i < R; i++) tr_actor_stop(refs[i], 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 5000), 0);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  ck_assert_uint_eq(atomic_load(&val_freed), P * n);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_bcast_dead_subscriber_dropped) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_broadcast_new(rt, 8, &ch), 0);
  obs_t o = {.expect = 0};
  tr_ref_t a, b;
  ck_assert_int_eq(tr_spawn(rt, &sub_beh, &o, &a), 0);
  ck_assert_int_eq(tr_spawn(rt, &sub_beh, &o, &b), 0);
  ck_assert_int_eq(tr_chan_subscribe(ch, a, 0, 0), 0);
  ck_assert_int_eq(tr_chan_subscribe(ch, b, 1, 0), 0);
  ck_assert_int_eq(tr_chan_subscribe(ch, b, 1, 0), TR_EBUSY);
  tr_actor_stop(a, 0);
  while (tr_actor_alive(a)) tu_sleep_ms(1);
  ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(1)), 0);
  tr_chan_stats_t st;
  tr_chan_stats(ch, &st);
  ck_assert_uint_eq(st.subscribers, 1);
  ck_assert_uint_eq(st.dead_letters, 1);
  ck_assert_int_eq(tr_chan_unsubscribe(ch, b), 0);
  ck_assert_int_eq(tr_chan_unsubscribe(ch, b), TR_ENOENT);
  tr_actor_stop(b, 0);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

/* ---- views the handler keeps --------------------------------------------- */

/* A subscriber keeps every odd view (tr_ctx_take) and forwards every even
 * one to a sink; the ring is small, so the values move out of it while
 * the views still point at them. Each kept or forwarded view must still
 * read its own value, and every value is freed exactly once, after the
 * last view of it. */
enum { KEEP_MAX = 4096 };
#define KEEP_CAP KEEP_MAX
#include "keeputil.h"

static int sink_on_view(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  keep_obs_t *o = *(keep_obs_t **)state;
  tr_chan_view_t *v = msg;
  if (((const val_t *)v->value)->v != v->seq) atomic_fetch_add(&o->bad, 1);
  atomic_fetch_add(&o->sunk, 1);
  return 0;
}

static const tr_handler_t sink_handlers[] = {
    {.type = TR_TYPE(tr_chan_view_t), .fn = sink_on_view}};
static const tr_behavior_t sink_beh = {.name = "bcast-sink",
                                       .state_size = sizeof(keep_obs_t *),
                                       .init = sink_init,
                                       .handlers = TR_HANDLERS(sink_handlers)};

static int keeper_on_view(tr_ctx_t *ctx, void *state, void *msg) {
  keeper_t *k = state;
  tr_chan_view_t *v = msg;
  if (v->seq % 2 == 0) {
    if (tr_send(ctx, k->sink, v) != 0) atomic_fetch_add(&k->o->bad, 1);
  } else if (k->nkept < KEEP_MAX) {
    tr_ctx_take(ctx);
    k->kept[k->nkept++] = v;
  }
  return 0;
}

static int keeper_on_closed(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)msg;
  keeper_t *k = state;
  for (size_t i = 0; i < k->nkept; i++) {
    tr_chan_view_t *v = k->kept[i];
    if (((const val_t *)v->value)->v == v->seq) atomic_fetch_add(&k->o->kept_ok, 1);
    else atomic_fetch_add(&k->o->bad, 1);
    tr_msg_free(v);
  }
  k->nkept = 0;
  atomic_fetch_add(&k->o->closed, 1);
  return 0;
}

static const tr_handler_t keeper_handlers[] = {
    {.type = TR_TYPE(tr_chan_view_t), .fn = keeper_on_view},
    {.type = TR_TYPE(tr_chan_closed_t), .fn = keeper_on_closed}};
static const tr_behavior_t keeper_beh = {.name = "bcast-keeper",
                                         .state_size = sizeof(keeper_t),
                                         .init = keeper_init,
                                         .handlers = TR_HANDLERS(keeper_handlers)};

START_TEST(test_bcast_actor_keeps_and_forwards_views) {
  enum { M = 2000 };
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_broadcast_new(rt, 4, &ch), 0);
  keep_obs_t o = {0};
  tr_ref_t sink, keeper;
  ck_assert_int_eq(tr_spawn(rt, &sink_beh, &o, &sink), 0);
  keeper_arg_t ka = {.o = &o, .sink = sink};
  ck_assert_int_eq(tr_spawn(rt, &keeper_beh, &ka, &keeper), 0);
  ck_assert_int_eq(tr_chan_subscribe(ch, keeper, 0, 0), 0);
  atomic_store(&val_freed, 0);
  for (uint64_t i = 0; i < M; i++) {
    ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(i)), 0);
    if (i % 64 == 0) tu_sleep_ms(1); /* let the ring move under the views */
  }
  tr_chan_close(ch);
  ck_assert(tu_wait_ge(&o.closed, 1, 30000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 5000), 0);
  ck_assert_uint_eq(atomic_load(&o.bad), 0);
  /* whatever was not lagged over was seen, kept or sunk, intact */
  ck_assert_uint_gt(atomic_load(&o.kept_ok), 0);
  ck_assert_uint_gt(atomic_load(&o.sunk), 0);
  tr_chan_stats_t st;
  tr_chan_stats(ch, &st);
  ck_assert_uint_eq(st.delivered, atomic_load(&o.kept_ok) + atomic_load(&o.sunk));
  ck_assert_uint_eq(st.delivered + st.lagged, M);
  tr_actor_stop(keeper, 0);
  tr_actor_stop(sink, 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 5000), 0);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  ck_assert_uint_eq(atomic_load(&val_freed), M); /* each once */
  tu_runtime_finish(rt);
}
END_TEST

/* A subscriber whose handler fails at its fifth value stops; its
 * subscription ends with it, what it had not read is counted as dead
 * letters, and the other subscriber goes on to the end. */
static int failer_on_view(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)msg;
  uint64_t *n = state;
  return ++*n == 5 ? TR_EINVAL : 0;
}

static const tr_handler_t failer_handlers[] = {
    {.type = TR_TYPE(tr_chan_view_t), .fn = failer_on_view}};
static const tr_behavior_t failer_beh = {.name = "bcast-failer",
                                         .state_size = sizeof(uint64_t),
                                         .handlers = TR_HANDLERS(failer_handlers)};

START_TEST(test_bcast_failing_subscriber_leaves) {
  enum { M = 100 };
  tr_runtime_t *rt = tu_runtime(1, 0, 0);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_broadcast_new(rt, M, &ch), 0);
  obs_t o = {.expect = M};
  tr_ref_t good, bad;
  ck_assert_int_eq(tr_spawn(rt, &sub_beh, &o, &good), 0);
  ck_assert_int_eq(tr_spawn(rt, &failer_beh, NULL, &bad), 0);
  ck_assert_int_eq(tr_chan_subscribe(ch, good, 0, 0), 0);
  ck_assert_int_eq(tr_chan_subscribe(ch, bad, 1, 0), 0);
  for (uint64_t i = 0; i < M; i++)
    ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(i)), 0);
  ck_assert_int_eq(tr_runtime_start(rt), 0); /* everything is published */
  for (int k = 0; k < 5000 && tr_actor_alive(bad); k++) tu_sleep_ms(1);
  ck_assert(!tr_actor_alive(bad));
  tr_chan_stats_t st;
  tr_chan_stats(ch, &st);
  ck_assert_uint_eq(st.subscribers, 1);
  /* it read 5 of the values published before it stopped */
  ck_assert_uint_eq(st.dead_letters, M - 5);
  tr_chan_close(ch);
  ck_assert(tu_wait_ge(&o.closed, 1, 30000));
  ck_assert_uint_eq(atomic_load(&o.views), M);
  ck_assert_uint_eq(atomic_load(&o.errors), 0);
  tr_actor_stop(good, 0);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

/* Views go to the mailbox their type is routed to, and with a budget of
 * 4 messages per run the subscriber still handles its other mail while a
 * long stream of values is waiting: the stream does not hold the run. */
TR_MESSAGE_TYPE(ping_t, uint64_t at;)
TR_MESSAGE_DEFINE(ping_t);

typedef struct mb_state {
  _Atomic uint64_t views, pings, views_at_first_ping, closed;
} mb_state_t;

static int mb_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  *(mb_state_t **)state = arg;
  return 0;
}

static int mb_on_view(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)msg;
  atomic_fetch_add(&(*(mb_state_t **)state)->views, 1);
  return 0;
}

static int mb_on_ping(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)msg;
  mb_state_t *o = *(mb_state_t **)state;
  if (atomic_fetch_add(&o->pings, 1) == 0)
    atomic_store(&o->views_at_first_ping, atomic_load(&o->views));
  return 0;
}

static int mb_on_closed(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)msg;
  atomic_fetch_add(&(*(mb_state_t **)state)->closed, 1);
  return 0;
}

static const tr_msgtype_t *const mb_view_types[] = {TR_TYPE(tr_chan_view_t)};
static const tr_msgtype_t *const mb_ping_types[] = {TR_TYPE(ping_t)};
static const tr_mailbox_spec_t mb_boxes[] = {
    {.name = "values", .types = mb_view_types, .ntypes = 1},
    {.name = "rest"},
    {.name = "pings", .types = mb_ping_types, .ntypes = 1}};
static const tr_handler_t mb_handlers[] = {
    {.type = TR_TYPE(tr_chan_view_t), .fn = mb_on_view},
    {.type = TR_TYPE(ping_t), .fn = mb_on_ping},
    {.type = TR_TYPE(tr_chan_closed_t), .fn = mb_on_closed}};
static const tr_behavior_t mb_beh = {.name = "bcast-mailboxes",
                                     .state_size = sizeof(mb_state_t *),
                                     .init = mb_init,
                                     .handlers = TR_HANDLERS(mb_handlers),
                                     .mailboxes = mb_boxes,
                                     .nmailboxes = 3,
                                     .select = TR_SELECT_WEIGHTED};

START_TEST(test_bcast_mailbox_routing_and_budget) {
  enum { M = 20000 };
  tr_runtime_t *rt = tu_runtime(1, 4, 0);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_broadcast_new(rt, M, &ch), 0);
  mb_state_t o = {0};
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &mb_beh, &o, &a), 0);
  ck_assert_int_eq(tr_chan_subscribe(ch, a, 0, 0), 0);
  for (uint64_t i = 0; i < M; i++)
    ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(i)), 0);
  /* all values and one ping wait before the runtime starts */
  ck_assert_int_eq(tr_send(NULL, a, ping_t_new()), 0);
  ck_assert_int_eq(tr_runtime_start(rt), 0);
  tr_chan_close(ch);
  ck_assert(tu_wait_ge(&o.closed, 1, 30000));
  ck_assert(tu_wait_ge(&o.pings, 1, 30000));
  ck_assert_uint_eq(atomic_load(&o.views), M);
  /* weighted rounds: the ping waited for one run's worth of values at
   * most (the budget), not for the whole stream */
  ck_assert_uint_le(atomic_load(&o.views_at_first_ping), 4);
  tr_actor_stop(a, 0);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

/* ---- found by review: unsubscribe, shedding, runtimes, forwarding ------- */

/* Unsubscribing while the token is busy stops the views at once (none
 * published after the unsubscribe arrives), and subscribing again starts
 * a fresh subscription: no value is seen twice. */
enum { UNSUB_M = 4000 };
static _Atomic uint64_t unsub_views[2], unsub_late, unsub_dup;
static _Atomic int unsub_done;
static _Atomic uint64_t unsub_cut; /* tail when unsubscribe returned */
static unsigned char unsub_seen[UNSUB_M];
static int unsub_on_view(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  tr_chan_view_t *v = msg;
  atomic_fetch_add(&unsub_views[v->index & 1], 1);
  if (v->index == 0 && atomic_load(&unsub_done) &&
      v->seq >= atomic_load(&unsub_cut))
    atomic_fetch_add(&unsub_late, 1);
  if (v->seq < UNSUB_M && unsub_seen[v->seq]++) atomic_fetch_add(&unsub_dup, 1);
  tu_sleep_ms(0);
  return 0;
}
static const tr_handler_t unsub_handlers[] = {
    {.type = TR_TYPE(tr_chan_view_t), .fn = unsub_on_view}};
static const tr_behavior_t unsub_beh = {.name = "bcast-unsub",
                                        .handlers = TR_HANDLERS(unsub_handlers)};

START_TEST(test_bcast_unsubscribe_stops_views) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_broadcast_new(rt, UNSUB_M, &ch), 0);
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &unsub_beh, NULL, &a), 0);
  ck_assert_int_eq(tr_chan_subscribe(ch, a, 0, 0), 0);
  tr_chan_sub_t *keep; /* a thread subscriber: publishing never fails */
  ck_assert_int_eq(tr_chan_sub_new(ch, &keep), 0);
  for (uint64_t i = 0; i < UNSUB_M / 2; i++)
    ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(i)), 0);
  ck_assert_int_eq(tr_chan_unsubscribe(ch, a), 0);
  atomic_store(&unsub_cut, UNSUB_M / 2);
  atomic_store(&unsub_done, 1);
  ck_assert_int_eq(tr_chan_subscribe(ch, a, 1, 0), 0);
  for (uint64_t i = UNSUB_M / 2; i < UNSUB_M; i++)
    ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(i)), 0);
  ck_assert(tu_wait_ge(&unsub_views[1], UNSUB_M / 2, 30000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 5000), 0);
  ck_assert_uint_eq(atomic_load(&unsub_late), 0);
  ck_assert_uint_eq(atomic_load(&unsub_dup), 0);
  ck_assert_uint_eq(atomic_load(&unsub_views[1]), UNSUB_M / 2);
  tr_chan_sub_free(keep);
  tr_chan_close(ch);
  tr_actor_stop(a, 0);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

/* Two subscriptions whose tokens wait in a drop-oldest mailbox of
 * capacity 1: a token is never shed (the subscription would end
 * silently); both subscriptions keep receiving. */
TR_MESSAGE_TYPE(busy_t, int unused;)
TR_MESSAGE_DEFINE(busy_t);
static _Atomic uint64_t shed_views[2];
static int shed_on_busy(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  (void)msg;
  tu_sleep_ms(50); /* both tokens queue up meanwhile */
  return 0;
}
static int shed_on_view(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  atomic_fetch_add(&shed_views[((tr_chan_view_t *)msg)->index & 1], 1);
  return 0;
}
static const tr_msgtype_t *const shed_view_types[] = {TR_TYPE(tr_chan_view_t)};
static const tr_mailbox_spec_t shed_boxes[] = {
    {.name = "views", .types = shed_view_types, .ntypes = 1, .capacity = 1,
     .overflow = TR_OVERFLOW_DROP_OLDEST},
    {.name = "other"}};
static const tr_handler_t shed_handlers[] = {
    {.type = TR_TYPE(tr_chan_view_t), .fn = shed_on_view},
    {.type = TR_TYPE(busy_t), .fn = shed_on_busy}};
static const tr_behavior_t shed_beh = {.name = "bcast-shed",
                                       .handlers = TR_HANDLERS(shed_handlers),
                                       .mailboxes = shed_boxes,
                                       .nmailboxes = 2};

START_TEST(test_bcast_token_never_shed) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_chan_t *c[2];
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &shed_beh, NULL, &a), 0);
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(tr_chan_broadcast_new(rt, 16, &c[i]), 0);
    ck_assert_int_eq(tr_chan_subscribe(c[i], a, (unsigned)i, 0), 0);
  }
  ck_assert_int_eq(tr_send(NULL, a, busy_t_new()), 0);
  tu_sleep_ms(10);
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(tr_chan_send(NULL, c[i], mkval(1)), 0);
  ck_assert(tu_wait_ge(&shed_views[0], 1, 5000));
  ck_assert(tu_wait_ge(&shed_views[1], 1, 5000));
  for (int i = 0; i < 2; i++) {
    tr_chan_stats_t st;
    tr_chan_stats(c[i], &st);
    ck_assert_uint_eq(st.subscribers, 1);
    ck_assert_int_eq(tr_chan_send(NULL, c[i], mkval(2)), 0);
  }
  ck_assert(tu_wait_ge(&shed_views[0], 2, 5000));
  ck_assert(tu_wait_ge(&shed_views[1], 2, 5000));
  tr_actor_stop(a, 0);
  for (int i = 0; i < 2; i++) {
    tr_chan_sender_drop(c[i]);
    tr_chan_free(c[i]);
  }
  tu_runtime_finish(rt);
}
END_TEST

/* An actor of another runtime cannot subscribe (its reads of the ring
 * would not be covered by this runtime's grace periods). */
START_TEST(test_bcast_other_runtime_refused) {
  tr_runtime_t *rt1 = tu_runtime(1, 0, 1), *rt2 = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_broadcast_new(rt1, 4, &ch), 0);
  obs_t o = {.expect = 0};
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt2, &sub_beh, &o, &a), 0);
  ck_assert_int_eq(tr_chan_subscribe(ch, a, 0, 0), TR_EINVAL);
  tr_actor_stop(a, 0);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt2);
  tu_runtime_finish(rt1);
}
END_TEST

/* The subscriber forwards every view to a handle whose thread frees it
 * at once: the view holds its value before the handle can see it. */
static tr_ref_t vfwd_to;
static int vfwd_on_view(tr_ctx_t *ctx, void *state, void *msg) {
  (void)state;
  return tr_send(ctx, vfwd_to, msg);
}
static const tr_handler_t vfwd_handlers[] = {
    {.type = TR_TYPE(tr_chan_view_t), .fn = vfwd_on_view}};
static const tr_behavior_t vfwd_beh = {.name = "bcast-forward",
                                       .handlers = TR_HANDLERS(vfwd_handlers)};

START_TEST(test_bcast_forward_view_to_handle) {
  uint64_t n = (uint64_t)(5000 * tu_stress_scale());
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_handle_t *h;
  ck_assert_int_eq(tr_handle_new(rt, &h), 0);
  vfwd_to = tr_handle_ref(h);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_broadcast_new(rt, 4, &ch), 0);
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &vfwd_beh, NULL, &a), 0);
  ck_assert_int_eq(tr_chan_subscribe(ch, a, 0, 0), 0);
  atomic_store(&val_freed, 0);
  for (uint64_t i = 0; i < n; i++) {
    ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(i)), 0);
    void *m;
    ck_assert_int_eq(tr_handle_receive(h, 5000, &m), 0);
    tr_chan_view_t *v = m;
    ck_assert_uint_eq(v->seq, i);
    ck_assert_uint_eq(((const val_t *)v->value)->v, i);
    tr_msg_free(m);
  }
  tr_actor_stop(a, 0);
  tr_handle_free(h);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 5000), 0);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  ck_assert_uint_eq(atomic_load(&val_freed), n);
  tu_runtime_finish(rt);
}
END_TEST

int main(void) {
  Suite *s = suite_create("chan_broadcast");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_bcast_every_subscriber_in_order);
  tcase_add_test(tc, test_bcast_lag_is_reported);
  tcase_add_test(tc, test_bcast_no_subscriber);
  tcase_add_test(tc, test_bcast_lag_exact_concurrent_publishers);
  tcase_add_test(tc, test_bcast_actor_subscribers);
  tcase_add_test(tc, test_bcast_actor_lag_exact);
  tcase_add_test(tc, test_bcast_dead_subscriber_dropped);
  tcase_add_test(tc, test_bcast_actor_concurrent_publishers);
  tcase_add_test(tc, test_bcast_unsubscribe_stops_views);
  tcase_add_test(tc, test_bcast_token_never_shed);
  tcase_add_test(tc, test_bcast_other_runtime_refused);
  tcase_add_test(tc, test_bcast_forward_view_to_handle);
  tcase_add_test(tc, test_bcast_actor_keeps_and_forwards_views);
  tcase_add_test(tc, test_bcast_failing_subscriber_leaves);
  tcase_add_test(tc, test_bcast_mailbox_routing_and_budget);
  suite_add_tcase(s, tc);
  return tu_run(s);
}
