/* SPDX-License-Identifier: MIT */
/*
 * Tests of oneshot channels (<troupe/channel.h>): one value then closed; a
 * second send fails with TR_ECLOSED and the caller keeps its message; the
 * receiver sees TR_ECLOSED when the sender goes without sending; a
 * receiver that drops the channel tells the sender (tr_chan_closed_wait
 * for threads, a tr_chan_closed_t for registered actors); closing while a
 * receiver waits; an actor receiver gets the value and no closed notice.
 */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>

#include <troupe.h>
#include <troupe/channel.h>

#include "testutil.h"

TR_MESSAGE_TYPE(val_t, uint64_t v;)
TR_MESSAGE_DEFINE(val_t);

static val_t *mkval(uint64_t v) {
  val_t *m = val_t_new();
  ck_assert_ptr_nonnull(m);
  m->v = v;
  return m;
}

START_TEST(test_oneshot_send_twice) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_oneshot_new(rt, &ch), 0);
  ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(42)), 0);
  val_t *second = mkval(43);
  ck_assert_int_eq(tr_chan_send_ex(NULL, ch, second, TR_REF_NULL, TR_NOWAIT,
                                   TR_SEND_KEEP),
                   TR_ECLOSED);
  ck_assert_uint_eq(second->v, 43); /* kept, as asked */
  ck_assert_int_eq(tr_chan_send(NULL, ch, second), TR_ECLOSED); /* freed */
  void *m;
  ck_assert_int_eq(tr_chan_recv(ch, 0, &m), 0);
  ck_assert_uint_eq(((val_t *)m)->v, 42);
  tr_msg_free(m);
  ck_assert_int_eq(tr_chan_recv(ch, 0, &m), TR_ECLOSED);
  tr_chan_stats_t st;
  tr_chan_stats(ch, &st);
  ck_assert_int_eq(st.closed, TR_CHAN_CLOSED_DONE);
  ck_assert_uint_eq(st.sent, 1);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_oneshot_sender_dropped) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_oneshot_new(rt, &ch), 0);
  tr_chan_sender_drop(ch);
  void *m;
  ck_assert_int_eq(tr_chan_recv(ch, 1000, &m), TR_ECLOSED);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

typedef struct waiter_arg {
  tr_chan_t *ch;
  _Atomic int rc;
} waiter_arg_t;

static void *closed_waiter(void *p) {
  waiter_arg_t *a = p;
  atomic_store(&a->rc, tr_chan_closed_wait(a->ch, 5000));
  return NULL;
}

static void *recv_waiter(void *p) {
  waiter_arg_t *a = p;
  void *m = NULL;
  atomic_store(&a->rc, tr_chan_recv(a->ch, 5000, &m));
  if (m) tr_msg_free(m);
  return NULL;
}

static _Atomic uint64_t closed_seen;
static _Atomic int closed_reason;
static int on_closed(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  atomic_store(&closed_reason, ((tr_chan_closed_t *)msg)->reason);
  atomic_fetch_add(&closed_seen, 1);
  return 0;
}
static _Atomic uint64_t vals_seen;
static int on_val(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  atomic_fetch_add(&vals_seen, ((val_t *)msg)->v);
  return 0;
}
static const tr_handler_t obs_handlers[] = {
    {.type = TR_TYPE(tr_chan_closed_t), .fn = on_closed}, {.type = TR_TYPE(val_t), .fn = on_val}};
static const tr_behavior_t obs = {.name = "observer",
                                  .handlers = TR_HANDLERS(obs_handlers)};

START_TEST(test_oneshot_receiver_dropped_tells_sender) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_oneshot_new(rt, &ch), 0);
  atomic_store(&closed_seen, 0);
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &obs, NULL, &a), 0);
  ck_assert_int_eq(tr_chan_notify_closed(ch, a, 3), 0);
  waiter_arg_t w = {.ch = ch, .rc = 1};
  pthread_t t;
  pthread_create(&t, NULL, closed_waiter, &w);
  ck_assert_int_eq(tr_chan_closed_wait(ch, 20), TR_ETIMEDOUT);
  tu_sleep_ms(10);
  tr_chan_free(ch); /* the receiver goes; the sender ref keeps ch alive */
  pthread_join(t, NULL);
  ck_assert_int_eq(atomic_load(&w.rc), 0);
  ck_assert(tu_wait_ge(&closed_seen, 1, 5000));
  ck_assert_int_eq(atomic_load(&closed_reason), TR_CHAN_CLOSED_RECEIVER);
  val_t *m = mkval(1);
  ck_assert_int_eq(tr_chan_send(NULL, ch, m), TR_ECLOSED);
  tr_chan_sender_drop(ch);
  tr_actor_stop(a, 0);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_oneshot_close_while_waiting) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_oneshot_new(rt, &ch), 0);
  waiter_arg_t w = {.ch = ch, .rc = 1};
  pthread_t t;
  pthread_create(&t, NULL, recv_waiter, &w);
  tu_sleep_ms(20);
  ck_assert_int_eq(tr_chan_close(ch), 0);
  pthread_join(t, NULL);
  ck_assert_int_eq(atomic_load(&w.rc), TR_ECLOSED);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_oneshot_wakes_waiting_receiver) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_oneshot_new(rt, &ch), 0);
  waiter_arg_t w = {.ch = ch, .rc = 1};
  pthread_t t;
  pthread_create(&t, NULL, recv_waiter, &w);
  tu_sleep_ms(10);
  ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(5)), 0);
  pthread_join(t, NULL);
  ck_assert_int_eq(atomic_load(&w.rc), 0);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_oneshot_actor_receiver) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_oneshot_new(rt, &ch), 0);
  atomic_store(&closed_seen, 0);
  atomic_store(&vals_seen, 0);
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &obs, NULL, &a), 0);
  ck_assert_int_eq(tr_chan_subscribe(ch, a, 0, 0), 0);
  tr_chan_free(ch); /* the subscription is the receiver now */
  ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(77)), 0);
  ck_assert(tu_wait_ge(&vals_seen, 77, 5000));
  tr_chan_sender_drop(ch);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 5000), 0);
  ck_assert_uint_eq(atomic_load(&closed_seen), 0); /* done, not closed */
  tr_actor_stop(a, 0);
  tu_runtime_finish(rt);
}
END_TEST

/* Many threads race to complete one oneshot: exactly one wins. */
typedef struct race_arg {
  tr_chan_t *ch;
  _Atomic int *wins;
} race_arg_t;

static void *racer(void *p) {
  race_arg_t *a = p;
  val_t *m = mkval(1);
  if (tr_chan_send(NULL, a->ch, m) == 0) atomic_fetch_add(a->wins, 1);
  return NULL;
}

START_TEST(test_oneshot_race_one_winner) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  for (int round = 0; round < 20; round++) {
    tr_chan_t *ch;
    ck_assert_int_eq(tr_chan_oneshot_new(rt, &ch), 0);
    _Atomic int wins = 0;
    race_arg_t a = {.ch = ch, .wins = &wins};
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, racer, &a);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    ck_assert_int_eq(atomic_load(&wins), 1);
    void *m;
    ck_assert_int_eq(tr_chan_recv(ch, 0, &m), 0);
    tr_msg_free(m);
    tr_chan_sender_drop(ch);
    tr_chan_free(ch);
  }
  tu_runtime_finish(rt);
}
END_TEST

int main(void) {
  Suite *s = suite_create("chan_oneshot");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_oneshot_send_twice);
  tcase_add_test(tc, test_oneshot_sender_dropped);
  tcase_add_test(tc, test_oneshot_receiver_dropped_tells_sender);
  tcase_add_test(tc, test_oneshot_close_while_waiting);
  tcase_add_test(tc, test_oneshot_wakes_waiting_receiver);
  tcase_add_test(tc, test_oneshot_actor_receiver);
  tcase_add_test(tc, test_oneshot_race_one_winner);
  suite_add_tcase(s, tc);
  return tu_run(s);
}
