/* SPDX-License-Identifier: MIT */
/*
 * Tests of watch channels (<troupe/channel.h>): a new subscriber sees the
 * current value; versions count up; a slow subscriber sees only the latest
 * (with the number of skipped versions); borrowing the current value; an
 * actor subscriber that is slower than the writer ends on the last version
 * and then gets the closed notice; closing wakes a waiting thread; old
 * values are freed once no view holds them.
 */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>

#include <troupe.h>
#include <troupe/channel.h>

#include "testutil.h"

TR_MESSAGE_TYPE(cfg_t, uint64_t v;)
static _Atomic uint64_t cfg_freed;
static void cfg_dtor(void *m) {
  (void)m;
  atomic_fetch_add(&cfg_freed, 1);
}
TR_MESSAGE_DEFINE(cfg_t, .dtor = cfg_dtor);

static cfg_t *mkcfg(uint64_t v) {
  cfg_t *m = cfg_t_new();
  ck_assert_ptr_nonnull(m);
  m->v = v;
  return m;
}

START_TEST(test_watch_latest_only) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_watch_new(rt, &ch), 0);
  tr_chan_view_t *v;
  ck_assert_int_eq(tr_chan_watch_borrow(ch, &v), TR_ENOENT);
  tr_chan_sub_t *s;
  ck_assert_int_eq(tr_chan_sub_new(ch, &s), 0);
  ck_assert_int_eq(tr_chan_sub_recv(s, 10, &v), TR_ETIMEDOUT);
  atomic_store(&cfg_freed, 0);
  ck_assert_int_eq(tr_chan_send(NULL, ch, mkcfg(10)), 0);
  ck_assert_int_eq(tr_chan_sub_recv(s, 0, &v), 0);
  ck_assert_uint_eq(v->seq, 1);
  ck_assert_uint_eq(((const cfg_t *)v->value)->v, 10);
  tr_chan_view_t *held = v; /* keeps version 1 alive */
  ck_assert_int_eq(tr_chan_send(NULL, ch, mkcfg(20)), 0);
  ck_assert_int_eq(tr_chan_send(NULL, ch, mkcfg(30)), 0);
  ck_assert_uint_eq(atomic_load(&cfg_freed), 1); /* 20 replaced, unseen */
  ck_assert_int_eq(tr_chan_sub_recv(s, 0, &v), 0);
  ck_assert_uint_eq(v->seq, 3);
  ck_assert_uint_eq(v->lagged, 1);
  ck_assert_uint_eq(((const cfg_t *)v->value)->v, 30);
  tr_msg_free(v);
  ck_assert_int_eq(tr_chan_sub_recv(s, 0, &v), TR_ETIMEDOUT);
  ck_assert_uint_eq(((const cfg_t *)held->value)->v, 10);
  tr_msg_free(held);
  ck_assert_uint_eq(atomic_load(&cfg_freed), 2);
  ck_assert_int_eq(tr_chan_watch_borrow(ch, &v), 0);
  ck_assert_uint_eq(v->seq, 3);
  tr_msg_free(v);
  /* a late subscriber starts with the current value */
  tr_chan_sub_t *late;
  ck_assert_int_eq(tr_chan_sub_new(ch, &late), 0);
  ck_assert_int_eq(tr_chan_sub_recv(late, 0, &v), 0);
  ck_assert_uint_eq(v->seq, 3);
  tr_msg_free(v);
  tr_chan_sub_free(late);
  tr_chan_sub_free(s);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  ck_assert_uint_eq(atomic_load(&cfg_freed), 3);
  tu_runtime_finish(rt);
}
END_TEST

typedef struct wait_arg {
  tr_chan_sub_t *s;
  _Atomic int rc;
} wait_arg_t;

static void *waiter(void *p) {
  wait_arg_t *a = p;
  tr_chan_view_t *v = NULL;
  atomic_store(&a->rc, tr_chan_sub_recv(a->s, 5000, &v));
  if (v) tr_msg_free(v);
  return NULL;
}

START_TEST(test_watch_close_wakes_thread) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_watch_new(rt, &ch), 0);
  wait_arg_t a = {.rc = 1};
  ck_assert_int_eq(tr_chan_sub_new(ch, &a.s), 0);
  pthread_t t;
  pthread_create(&t, NULL, waiter, &a);
  tu_sleep_ms(20);
  tr_chan_sender_drop(ch); /* senders gone: closed */
  pthread_join(t, NULL);
  ck_assert_int_eq(atomic_load(&a.rc), TR_ECLOSED);
  cfg_t *m = mkcfg(1);
  tr_chan_sub_free(a.s);
  tr_chan_free(ch);
  tr_msg_free(m);
  tu_runtime_finish(rt);
}
END_TEST

typedef struct wobs {
  _Atomic uint64_t views, last, closed, errors;
} wobs_t;

static int w_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  *(wobs_t **)state = arg;
  return 0;
}
static int w_on_view(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  wobs_t *o = *(wobs_t **)state;
  tr_chan_view_t *v = msg;
  if (v->seq <= atomic_load(&o->last)) atomic_fetch_add(&o->errors, 1);
  if (((const cfg_t *)v->value)->v != v->seq) atomic_fetch_add(&o->errors, 1);
  atomic_store(&o->last, v->seq);
  atomic_fetch_add(&o->views, 1);
  uint64_t end = tu_now_ns() + 20000; /* slow reader: 20 us */
  while (tu_now_ns() < end) {
  }
  return 0;
}
static int w_on_closed(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)msg;
  wobs_t *o = *(wobs_t **)state;
  atomic_fetch_add(&o->closed, 1);
  return 0;
}
static const tr_handler_t w_handlers[] = {
    {.type = TR_TYPE(tr_chan_view_t), .fn = w_on_view},
    {.type = TR_TYPE(tr_chan_closed_t), .fn = w_on_closed}};
static const tr_behavior_t w_beh = {.name = "watcher",
                                    .state_size = sizeof(void *),
                                    .init = w_init,
                                    .handlers = TR_HANDLERS(w_handlers)};

START_TEST(test_watch_slow_actor_sees_latest) {
  enum { R = 4 };
  uint64_t n = (uint64_t)(5000 * tu_stress_scale());
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_watch_new(rt, &ch), 0);
  wobs_t o[R];
  tr_ref_t refs[R];
  for (int i = 0; i < R; i++) {
    atomic_init(&o[i].views, 0);
    atomic_init(&o[i].last, 0);
    atomic_init(&o[i].closed, 0);
    atomic_init(&o[i].errors, 0);
    ck_assert_int_eq(tr_spawn(rt, &w_beh, &o[i], &refs[i]), 0);
    ck_assert_int_eq(tr_chan_subscribe(ch, refs[i], 0, 0), 0);
  }
  atomic_store(&cfg_freed, 0);
  for (uint64_t i = 1; i <= n; i++)
    ck_assert_int_eq(tr_chan_send(NULL, ch, mkcfg(i)), 0);
  tr_chan_close(ch);
  for (int i = 0; i < R; i++) {
    ck_assert(tu_wait_ge(&o[i].closed, 1, 20000));
    ck_assert_uint_eq(atomic_load(&o[i].last), n);
    ck_assert_uint_eq(atomic_load(&o[i].errors), 0);
    ck_assert_uint_le(atomic_load(&o[i].views), n);
  }
  tr_chan_stats_t st;
  tr_chan_stats(ch, &st);
  ck_assert_uint_eq(st.version, n);
  for (int i = 0; i < R; i++) tr_actor_stop(refs[i], 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 5000), 0);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  ck_assert_uint_eq(atomic_load(&cfg_freed), n);
  tu_runtime_finish(rt);
}
END_TEST

int main(void) {
  Suite *s = suite_create("chan_watch");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_watch_latest_only);
  tcase_add_test(tc, test_watch_close_wakes_thread);
  tcase_add_test(tc, test_watch_slow_actor_sees_latest);
  suite_add_tcase(s, tc);
  return tu_run(s);
}
