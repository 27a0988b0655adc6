/* SPDX-License-Identifier: MIT */
/*
 * Tests of broadcast channels (<troupe/channel.h>): every subscriber sees
 * every value in order through views of one shared value; a subscriber
 * that falls more than capacity behind is told exactly how many it missed
 * and continues from the oldest retained value; that lag accounting is
 * exact with several publishers at once; actor subscribers see everything
 * with a bounded number of views in flight, then one closed notice;
 * values are freed exactly once; publishing with no subscriber fails and
 * leaves the message with the caller; a dead subscriber is dropped.
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
  ck_assert_int_eq(tr_broadcast_new(rt, 16, &ch), 0);
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
  ck_assert_int_eq(tr_broadcast_new(rt, 4, &ch), 0);
  tr_chan_sub_t *s;
  ck_assert_int_eq(tr_chan_sub_new(ch, &s), 0);
  atomic_store(&val_freed, 0);
  for (uint64_t i = 0; i < 10; i++)
    ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(i)), 0);
  ck_assert_uint_eq(atomic_load(&val_freed), 6); /* memory stays bounded */
  tr_chan_view_t *v;
  ck_assert_int_eq(tr_chan_sub_recv(s, 0, &v), 0);
  ck_assert_uint_eq(v->seq, 6);
  ck_assert_uint_eq(v->lagged, 6);
  tr_msg_free(v);
  for (uint64_t i = 7; i < 10; i++) {
    ck_assert_int_eq(tr_chan_sub_recv(s, 0, &v), 0);
    ck_assert_uint_eq(v->seq, i);
    ck_assert_uint_eq(v->lagged, 0);
    tr_msg_free(v);
  }
  tr_chan_stats_t st;
  tr_chan_stats(ch, &st);
  ck_assert_uint_eq(st.lagged, 6);
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
  ck_assert_int_eq(tr_broadcast_new(rt, 4, &ch), 0);
  val_t *m = mkval(1);
  ck_assert_int_eq(tr_chan_send(NULL, ch, m), TR_ENOENT);
  tr_msg_free(m);
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
  ck_assert_int_eq(tr_broadcast_new(rt, 16, &ch), 0);
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
  ck_assert_int_eq(tr_broadcast_new(rt, m, &ch), 0); /* no lag possible */
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
  ck_assert_int_eq(tr_broadcast_new(rt, 8, &ch), 0);
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

START_TEST(test_bcast_dead_subscriber_dropped) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_broadcast_new(rt, 8, &ch), 0);
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
  suite_add_tcase(s, tc);
  return tu_run(s);
}
