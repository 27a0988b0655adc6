/* SPDX-License-Identifier: MIT */
/*
 * Tests of mpsc channels (<troupe/channel.h>): FIFO order, the three
 * overflow policies (fail keeps the message with the caller, drop-oldest
 * counts and returns, block times out and wakes), closing while threads
 * wait, closing when every sender is gone, dead letters when the receiver
 * goes, actor subscribers (values as messages, closed notice last, paced
 * by acks), the writable message that is an actor's backpressure, and a
 * stress run of many producer threads and actors into a bounded channel
 * whose peak queue length must stay under the bound, with nothing lost or
 * duplicated. Bounded channels take sends without the lock: their
 * counters, and closes that race with senders, are tested on their own.
 */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <troupe.h>
#include <troupe/channel.h>

#include "testutil.h"

TR_MESSAGE_TYPE(val_t, uint64_t v; uint32_t producer;)
static _Atomic uint64_t val_freed;
static void val_dtor(void *m) {
  (void)m;
  atomic_fetch_add(&val_freed, 1);
}
TR_MESSAGE_DEFINE(val_t, .dtor = val_dtor);
TR_MESSAGE_TYPE(go_t, int unused;)
TR_MESSAGE_DEFINE(go_t);

static val_t *mkval(uint64_t v, uint32_t p) {
  val_t *m = val_t_new();
  ck_assert_ptr_nonnull(m);
  m->v = v;
  m->producer = p;
  return m;
}

static uint64_t recv_v(tr_chan_t *ch, int timeout_ms) {
  void *m = NULL;
  ck_assert_int_eq(tr_chan_recv(ch, timeout_ms, &m), 0);
  uint64_t v = ((val_t *)m)->v;
  tr_msg_free(m);
  return v;
}

START_TEST(test_chan_send_recv_fifo) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_mpsc_new(rt, 0, TR_OVERFLOW_FAIL, &ch), 0);
  for (uint64_t i = 0; i < 100; i++)
    ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(i, 0)), 0);
  for (uint64_t i = 0; i < 100; i++) ck_assert_uint_eq(recv_v(ch, 0), i);
  tr_chan_stats_t st;
  ck_assert_int_eq(tr_chan_stats(ch, &st), 0);
  ck_assert_uint_eq(st.sent, 100);
  ck_assert_uint_eq(st.delivered, 100);
  ck_assert_uint_eq(st.peak, 100);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_chan_bounded_fail_keeps_msg) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_mpsc_new(rt, 4, TR_OVERFLOW_FAIL, &ch), 0);
  for (uint64_t i = 0; i < 4; i++)
    ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(i, 0)), 0);
  val_t *extra = mkval(99, 0);
  ck_assert_int_eq(tr_chan_send_ex(NULL, ch, extra, TR_REF_NULL, TR_NOWAIT,
                                   TR_SEND_KEEP),
                   TR_EAGAIN);
  ck_assert_uint_eq(extra->v, 99); /* kept, as asked */
  ck_assert_uint_eq(recv_v(ch, 0), 0);
  ck_assert_int_eq(tr_chan_send(NULL, ch, extra), 0);
  for (uint64_t i = 1; i < 4; i++) ck_assert_uint_eq(recv_v(ch, 0), i);
  ck_assert_uint_eq(recv_v(ch, 0), 99);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_chan_drop_oldest_counts_and_returns) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_handle_t *h;
  ck_assert_int_eq(tr_handle_new(rt, &h), 0);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_mpsc_new(rt, 3, TR_OVERFLOW_DROP_OLDEST, &ch), 0);
  for (uint64_t i = 0; i < 5; i++)
    ck_assert_int_eq(
        tr_chan_send_ex(NULL, ch, mkval(i, 0), tr_handle_ref(h), 0, 0), 0);
  for (uint64_t i = 2; i < 5; i++) ck_assert_uint_eq(recv_v(ch, 0), i);
  tr_chan_stats_t st;
  tr_chan_stats(ch, &st);
  ck_assert_uint_eq(st.dropped, 2);
  ck_assert_uint_eq(st.returned, 2);
  ck_assert_uint_le(st.peak, 3);
  for (uint64_t i = 0; i < 2; i++) {
    void *m;
    ck_assert_int_eq(tr_handle_receive(h, 1000, &m), 0);
    ck_assert_ptr_eq(tr_msg_type(m), TR_TYPE(tr_chan_dead_t));
    tr_chan_dead_t *d = m;
    ck_assert_int_eq(d->reason, TR_ENOSPC);
    ck_assert_uint_eq(((val_t *)d->value)->v, i);
    tr_msg_free(m);
  }
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tr_handle_free(h);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_chan_block_timeout) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_mpsc_new(rt, 1, TR_OVERFLOW_BLOCK, &ch), 0);
  ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(1, 0)), 0);
  val_t *m = mkval(2, 0);
  uint64_t t0 = tu_now_ms();
  ck_assert_int_eq(tr_chan_send_ex(NULL, ch, m, TR_REF_NULL, 50, TR_SEND_KEEP),
                   TR_ETIMEDOUT);
  ck_assert_uint_ge(tu_now_ms() - t0, 45);
  ck_assert_int_eq(
      tr_chan_send_ex(NULL, ch, m, TR_REF_NULL, TR_NOWAIT, TR_SEND_KEEP),
      TR_EAGAIN);
  ck_assert_uint_eq(recv_v(ch, 0), 1);
  ck_assert_int_eq(tr_chan_send_timeout(ch, m, 0), 0);
  ck_assert_uint_eq(recv_v(ch, 0), 2);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

typedef struct sender_arg {
  tr_chan_t *ch;
  uint32_t id;
  uint64_t n;
  int timeout_ms;
  _Atomic int rc;
} sender_arg_t;

static void *sender_thread(void *p) {
  sender_arg_t *a = p;
  for (uint64_t i = 0; i < a->n; i++) {
    val_t *m = mkval(i, a->id);
    int rc = tr_chan_send_timeout(a->ch, m, a->timeout_ms);
    if (rc) {
      atomic_store(&a->rc, rc);
      break;
    }
  }
  return NULL;
}

START_TEST(test_chan_block_wakes_sender) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_mpsc_new(rt, 2, TR_OVERFLOW_BLOCK, &ch), 0);
  sender_arg_t a = {.ch = ch, .id = 1, .n = 50, .timeout_ms = 5000};
  pthread_t t;
  pthread_create(&t, NULL, sender_thread, &a);
  for (uint64_t i = 0; i < 50; i++) {
    if (i % 10 == 0) tu_sleep_ms(2);
    ck_assert_uint_eq(recv_v(ch, 5000), i);
  }
  pthread_join(t, NULL);
  ck_assert_int_eq(atomic_load(&a.rc), 0);
  tr_chan_stats_t st;
  tr_chan_stats(ch, &st);
  ck_assert_uint_le(st.peak, 2);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

typedef struct recv_arg {
  tr_chan_t *ch;
  _Atomic int rc;
  _Atomic int started;
} recv_arg_t;

static void *recv_thread(void *p) {
  recv_arg_t *a = p;
  void *m = NULL;
  atomic_store(&a->started, 1);
  int rc = tr_chan_recv(a->ch, 5000, &m);
  if (m) tr_msg_free(m);
  atomic_store(&a->rc, rc);
  return NULL;
}

START_TEST(test_chan_close_wakes_receiver) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_mpsc_new(rt, 0, TR_OVERFLOW_FAIL, &ch), 0);
  recv_arg_t a = {.ch = ch, .rc = 1};
  pthread_t t;
  pthread_create(&t, NULL, recv_thread, &a);
  while (!atomic_load(&a.started)) tu_sleep_ms(1);
  tu_sleep_ms(20);
  uint64_t t0 = tu_now_ms();
  ck_assert_int_eq(tr_chan_close(ch), 0);
  ck_assert_int_eq(tr_chan_close(ch), TR_ECLOSED);
  pthread_join(t, NULL);
  ck_assert_int_eq(atomic_load(&a.rc), TR_ECLOSED);
  ck_assert_uint_lt(tu_now_ms() - t0, 1000);
  val_t *m = mkval(1, 0);
  ck_assert_int_eq(tr_chan_send(NULL, ch, m), TR_ECLOSED);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_chan_close_wakes_blocked_sender) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_mpsc_new(rt, 1, TR_OVERFLOW_BLOCK, &ch), 0);
  sender_arg_t a = {.ch = ch, .id = 1, .n = 3, .timeout_ms = 5000};
  pthread_t t;
  pthread_create(&t, NULL, sender_thread, &a);
  tu_sleep_ms(30);
  tr_chan_close(ch);
  pthread_join(t, NULL);
  ck_assert_int_eq(atomic_load(&a.rc), TR_ECLOSED);
  /* the queued value can still be received, then ECLOSED */
  ck_assert_uint_eq(recv_v(ch, 0), 0);
  void *m;
  ck_assert_int_eq(tr_chan_recv(ch, 100, &m), TR_ECLOSED);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_chan_senders_gone_closes) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_mpsc_new(rt, 0, TR_OVERFLOW_FAIL, &ch), 0);
  ck_assert_int_eq(tr_chan_sender_clone(ch), 0);
  ck_assert_int_eq(tr_chan_sender_clone(ch), 0);
  ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(7, 0)), 0);
  tr_chan_sender_drop(ch);
  tr_chan_sender_drop(ch);
  ck_assert(!tr_chan_is_closed(ch));
  tr_chan_sender_drop(ch);
  ck_assert(tr_chan_is_closed(ch));
  tr_chan_stats_t st;
  tr_chan_stats(ch, &st);
  ck_assert_int_eq(st.closed, TR_CHAN_CLOSED_SENDERS);
  ck_assert_uint_eq(recv_v(ch, 0), 7);
  void *m;
  ck_assert_int_eq(tr_chan_recv(ch, 0, &m), TR_ECLOSED);
  ck_assert_int_eq(tr_chan_sender_clone(ch), TR_ECLOSED);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_chan_recv_timeout) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_mpsc_new(rt, 0, TR_OVERFLOW_FAIL, &ch), 0);
  void *m;
  uint64_t t0 = tu_now_ms();
  ck_assert_int_eq(tr_chan_recv(ch, 0, &m), TR_ETIMEDOUT);
  ck_assert_int_eq(tr_chan_recv(ch, 40, &m), TR_ETIMEDOUT);
  uint64_t el = tu_now_ms() - t0;
  ck_assert_uint_ge(el, 35);
  ck_assert_uint_lt(el, 2000);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_chan_receiver_gone_dead_letters) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_handle_t *h;
  ck_assert_int_eq(tr_handle_new(rt, &h), 0);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_mpsc_new(rt, 0, TR_OVERFLOW_FAIL, &ch), 0);
  for (uint64_t i = 0; i < 5; i++)
    ck_assert_int_eq(tr_chan_send_ex(NULL, ch, mkval(i, 0),
                                     i < 3 ? tr_handle_ref(h) : TR_REF_NULL,
                                     0, 0),
                     0);
  atomic_store(&val_freed, 0);
  tr_chan_free(ch); /* the receiver is gone; we still hold a sender ref */
  ck_assert_uint_eq(atomic_load(&val_freed), 2); /* counted, not returned */
  tr_chan_stats_t st;
  tr_chan_stats(ch, &st);
  ck_assert_uint_eq(st.dead_letters, 5);
  ck_assert_uint_eq(st.returned, 3);
  ck_assert_int_eq(st.closed, TR_CHAN_CLOSED_RECEIVER);
  for (uint64_t i = 0; i < 3; i++) {
    void *m;
    ck_assert_int_eq(tr_handle_receive(h, 1000, &m), 0);
    tr_chan_dead_t *d = m;
    ck_assert_int_eq(d->reason, TR_ECLOSED);
    val_t *v = tr_chan_dead_take(d);
    ck_assert_uint_eq(v->v, i);
    tr_msg_free(v);
    tr_msg_free(m);
  }
  val_t *m = mkval(9, 0);
  ck_assert_int_eq(tr_chan_send(NULL, ch, m), TR_ECLOSED);
  tr_chan_sender_drop(ch);
  tr_handle_free(h);
  tu_runtime_finish(rt);
}
END_TEST

/* ---- actor receivers ------------------------------------------------------ */

typedef struct sink {
  tr_chan_t *ch;
  int ack;           /* call tr_chan_ack per value */
  unsigned spin_us;  /* be slow */
  uint32_t nprod;
  _Atomic uint64_t count, closed, order_errors, sum;
  uint64_t next[16];
  _Atomic int closed_after_all;
  uint64_t expect;
} sink_t;

static int sink_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  *(sink_t **)state = arg;
  return 0;
}

static int sink_on_val(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  sink_t *s = *(sink_t **)state;
  val_t *v = msg;
  if (v->producer < 16) {
    if (v->v != s->next[v->producer]) atomic_fetch_add(&s->order_errors, 1);
    s->next[v->producer] = v->v + 1;
  }
  atomic_fetch_add(&s->sum, v->v);
  if (s->spin_us) {
    uint64_t end = tu_now_ns() + s->spin_us * 1000ull;
    while (tu_now_ns() < end) {
    }
  }
  atomic_fetch_add(&s->count, 1);
  if (s->ack) tr_chan_ack(s->ch, 1);
  return 0;
}

static int sink_on_closed(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)msg;
  sink_t *s = *(sink_t **)state;
  if (atomic_load(&s->count) == s->expect) atomic_store(&s->closed_after_all, 1);
  atomic_fetch_add(&s->closed, 1);
  return 0;
}

static const tr_handler_t sink_handlers[] = {
    {.type = TR_TYPE(val_t), .fn = sink_on_val},
    {.type = TR_TYPE(tr_chan_closed_t), .fn = sink_on_closed}};
static const tr_behavior_t sink_beh = {.name = "sink",
                                       .state_size = sizeof(void *),
                                       .init = sink_init,
                                       .handlers = TR_HANDLERS(sink_handlers)};

START_TEST(test_chan_actor_subscriber) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_mpsc_new(rt, 0, TR_OVERFLOW_FAIL, &ch), 0);
  sink_t s = {.ch = ch, .expect = 1000};
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &sink_beh, &s, &a), 0);
  /* values sent before the subscription wait in the channel */
  for (uint64_t i = 0; i < 10; i++)
    ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(i, 0)), 0);
  ck_assert_int_eq(tr_chan_subscribe(ch, a, 0, 0), 0);
  ck_assert_int_eq(tr_chan_subscribe(ch, a, 0, 0), TR_EBUSY);
  void *m;
  ck_assert_int_eq(tr_chan_recv(ch, 0, &m), TR_EBUSY);
  for (uint64_t i = 10; i < 1000; i++)
    ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(i, 0)), 0);
  tr_chan_sender_drop(ch); /* all senders gone: closed after the values */
  ck_assert(tu_wait_ge(&s.closed, 1, 10000));
  ck_assert_uint_eq(atomic_load(&s.count), 1000);
  ck_assert_int_eq(atomic_load(&s.closed_after_all), 1);
  ck_assert_uint_eq(atomic_load(&s.order_errors), 0);
  tr_chan_free(ch);
  tr_actor_stop(a, 0);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_chan_subscriber_dies_dead_letter) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_handle_t *h;
  ck_assert_int_eq(tr_handle_new(rt, &h), 0);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_mpsc_new(rt, 0, TR_OVERFLOW_FAIL, &ch), 0);
  sink_t s = {.ch = ch, .expect = 0};
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &sink_beh, &s, &a), 0);
  ck_assert_int_eq(tr_chan_subscribe(ch, a, 0, 0), 0);
  ck_assert_int_eq(tr_actor_stop(a, 0), 0);
  while (tr_actor_alive(a)) tu_sleep_ms(1);
  ck_assert_int_eq(tr_chan_send_ex(NULL, ch, mkval(5, 0), tr_handle_ref(h), 0, 0),
                   0);
  void *m;
  ck_assert_int_eq(tr_handle_receive(h, 1000, &m), 0);
  ck_assert_ptr_eq(tr_msg_type(m), TR_TYPE(tr_chan_dead_t));
  ck_assert_int_eq(((tr_chan_dead_t *)m)->reason, TR_ENOACTOR);
  tr_msg_free(m);
  ck_assert(tr_chan_is_closed(ch));
  tr_chan_stats_t st;
  tr_chan_stats(ch, &st);
  ck_assert_uint_eq(st.dead_letters, 1);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tr_handle_free(h);
  tu_runtime_finish(rt);
}
END_TEST

/* A producer actor under BLOCK: sends until TR_EAGAIN, then waits for the
 * writable message. */
typedef struct prod {
  tr_chan_t *ch;
  uint64_t n, i;
  _Atomic uint64_t eagain, writable, done;
} prod_t;

/* The producer holds a sender reference of its own while it sends. */
static int prod_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  *(prod_t **)state = arg;
  return tr_chan_sender_clone(((prod_t *)arg)->ch);
}

static int prod_pump(tr_ctx_t *ctx, void *state, void *msg) {
  (void)msg;
  prod_t *p = *(prod_t **)state;
  if (tr_msg_type(msg) == TR_TYPE(tr_chan_writable_t))
    atomic_fetch_add(&p->writable, 1);
  while (p->i < p->n) {
    val_t *v = mkval(p->i, 0);
    int rc = tr_chan_send(ctx, p->ch, v);
    if (rc == TR_EAGAIN) {
      atomic_fetch_add(&p->eagain, 1);
      return 0; /* a tr_chan_writable_t will come */
    }
    if (rc) return rc;
    p->i++;
  }
  tr_chan_sender_drop(p->ch);
  atomic_store(&p->done, 1);
  return 0;
}

static const tr_handler_t prod_handlers[] = {
    {.type = TR_TYPE(go_t), .fn = prod_pump}, {.type = TR_TYPE(tr_chan_writable_t), .fn = prod_pump}};
static const tr_behavior_t prod_beh = {.name = "prod",
                                       .state_size = sizeof(void *),
                                       .init = prod_init,
                                       .handlers = TR_HANDLERS(prod_handlers)};

START_TEST(test_chan_actor_writable_backpressure) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_chan_t *ch;
  tr_chan_opts_t o = {.capacity = 8, .overflow = TR_OVERFLOW_BLOCK,
                      .low_water = 2};
  ck_assert_int_eq(tr_chan_new(rt, TR_CHAN_MPSC, &o, &ch), 0);
  prod_t p = {.ch = ch, .n = 2000};
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &prod_beh, &p, &a), 0);
  ck_assert_int_eq(tr_send(NULL, a, go_t_new()), 0);
  for (uint64_t i = 0; i < 2000; i++) {
    if (i % 100 == 0) tu_sleep_ms(1);
    ck_assert_uint_eq(recv_v(ch, 5000), i);
  }
  ck_assert(atomic_load(&p.eagain) > 0);
  ck_assert_uint_eq(atomic_load(&p.writable), atomic_load(&p.eagain));
  tr_chan_stats_t st;
  tr_chan_stats(ch, &st);
  ck_assert_uint_le(st.peak, 8);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tr_actor_stop(a, 0);
  tu_runtime_finish(rt);
}
END_TEST

/* Many producer threads into a bounded BLOCK channel; a slow actor
 * consumer acks each value. Nothing lost, nothing duplicated, per-producer
 * order kept, and the queue never held more than the bound. */
START_TEST(test_chan_stress_bounded_slow_consumer) {
  enum { P = 6, CAP = 16 };
  uint64_t n = (uint64_t)(4000 * tu_stress_scale());
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_mpsc_new(rt, CAP, TR_OVERFLOW_BLOCK, &ch), 0);
  sink_t s = {.ch = ch, .ack = 1, .spin_us = 2, .expect = P * n};
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &sink_beh, &s, &a), 0);
  ck_assert_int_eq(tr_chan_subscribe(ch, a, 0, 0), 0);
  sender_arg_t args[P];
  pthread_t t[P];
  for (int i = 0; i < P; i++) {
    args[i] = (sender_arg_t){.ch = ch, .id = (uint32_t)i, .n = n,
                             .timeout_ms = 20000};
    ck_assert_int_eq(tr_chan_sender_clone(ch), 0);
    pthread_create(&t[i], NULL, sender_thread, &args[i]);
  }
  for (int i = 0; i < P; i++) {
    pthread_join(t[i], NULL);
    ck_assert_int_eq(atomic_load(&args[i].rc), 0);
    tr_chan_sender_drop(ch);
  }
  tr_chan_sender_drop(ch);
  ck_assert(tu_wait_ge(&s.closed, 1, 30000));
  ck_assert_uint_eq(atomic_load(&s.count), P * n);
  ck_assert_uint_eq(atomic_load(&s.order_errors), 0);
  ck_assert_uint_eq(atomic_load(&s.sum), P * (n * (n - 1) / 2));
  for (int i = 0; i < P; i++) ck_assert_uint_eq(s.next[i], n);
  tr_chan_stats_t st;
  tr_chan_stats(ch, &st);
  ck_assert_uint_le(st.peak, CAP);
  ck_assert_uint_eq(st.sent, P * n);
  ck_assert_uint_eq(st.dead_letters + st.dropped, 0);
  tr_chan_free(ch);
  tr_actor_stop(a, 0);
  tu_runtime_finish(rt);
}
END_TEST

/* Many threads send at once into a bounded FAIL channel drained by one
 * thread: every accepted value arrives exactly once. */
typedef struct fail_arg {
  tr_chan_t *ch;
  uint32_t id;
  uint64_t n;
  _Atomic uint64_t accepted;
} fail_arg_t;

static void *fail_sender(void *p) {
  fail_arg_t *a = p;
  uint64_t i = 0;
  while (i < a->n) {
    val_t *m = mkval(i, a->id);
    if (tr_chan_send(NULL, a->ch, m) == 0) i++;
  }
  atomic_store(&a->accepted, i);
  return NULL;
}

START_TEST(test_chan_stress_many_threads_fail) {
  enum { P = 4 };
  uint64_t n = (uint64_t)(5000 * tu_stress_scale());
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_mpsc_new(rt, 32, TR_OVERFLOW_FAIL, &ch), 0);
  fail_arg_t args[P];
  pthread_t t[P];
  for (int i = 0; i < P; i++) {
    args[i] = (fail_arg_t){.ch = ch, .id = (uint32_t)i, .n = n};
    pthread_create(&t[i], NULL, fail_sender, &args[i]);
  }
  uint64_t next[P] = {0}, got = 0;
  while (got < P * n) {
    void *m;
    ck_assert_int_eq(tr_chan_recv(ch, 10000, &m), 0);
    val_t *v = m;
    ck_assert_uint_eq(v->v, next[v->producer]);
    next[v->producer]++;
    got++;
    tr_msg_free(m);
  }
  for (int i = 0; i < P; i++) pthread_join(t[i], NULL);
  tr_chan_stats_t st;
  tr_chan_stats(ch, &st);
  ck_assert_uint_le(st.peak, 32);
  ck_assert_uint_eq(st.sent, P * n);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

/* ---- the lock-free ring of bounded channels ------------------------------ */

/* Counters of a bounded channel (its queue takes sends without the lock):
 * occupancy, peak and sent after sends, receives and refusals. */
START_TEST(test_chan_bounded_counts) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_mpsc_new(rt, 128, TR_OVERFLOW_FAIL, &ch), 0);
  for (uint64_t i = 0; i < 100; i++)
    ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(i, 0)), 0);
  tr_chan_stats_t st;
  ck_assert_int_eq(tr_chan_stats(ch, &st), 0);
  ck_assert_uint_eq(st.len, 100);
  ck_assert_uint_eq(st.peak, 100);
  ck_assert_uint_eq(st.sent, 100);
  for (uint64_t i = 0; i < 50; i++) ck_assert_uint_eq(recv_v(ch, 0), i);
  for (uint64_t i = 100; i < 178; i++)
    ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(i, 0)), 0);
  val_t *m = mkval(999, 0);
  ck_assert_int_eq(tr_chan_send(NULL, ch, m), TR_EAGAIN); /* 128 queued */
  ck_assert_int_eq(tr_chan_stats(ch, &st), 0);
  ck_assert_uint_eq(st.len, 128);
  ck_assert_uint_eq(st.peak, 128);
  ck_assert_uint_eq(st.sent, 178);
  ck_assert_uint_eq(st.delivered, 50);
  for (uint64_t i = 50; i < 178; i++) ck_assert_uint_eq(recv_v(ch, 0), i);
  void *none;
  ck_assert_int_eq(tr_chan_recv(ch, 0, &none), TR_ETIMEDOUT);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

typedef struct race_arg {
  tr_chan_t *ch;
  uint32_t id;
  _Atomic uint64_t accepted;
} race_arg_t;

/* Sends until the channel closes; a refused value is offered again. */
static void *race_sender(void *p) {
  race_arg_t *a = p;
  uint64_t i = 0;
  val_t *m = mkval(0, a->id);
  for (;;) {
    int rc = tr_chan_send_ex(NULL, a->ch, m, TR_REF_NULL, TR_FOREVER,
                             TR_SEND_KEEP);
    if (rc == 0) {
      m = mkval(++i, a->id);
    } else if (rc == TR_ECLOSED) {
      break;
    } else {
      ck_assert_int_eq(rc, TR_EAGAIN);
      sched_yield();
    }
  }
  tr_msg_free(m); /* kept by the failed send, as asked */
  atomic_store(&a->accepted, i);
  return NULL;
}

/* Senders push without the lock while the receiver takes some values and
 * goes away: every accepted value is received or counted as a dead
 * letter, and each is freed exactly once. Many rounds, so that closes
 * land between a sender's reservation and its value. */
START_TEST(test_chan_close_races_senders) {
  enum { P = 3 };
  int rounds = (int)(40 * tu_stress_scale());
  if (rounds < 10) rounds = 10;
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  for (int round = 0; round < rounds; round++) {
    tr_chan_t *ch;
    ck_assert_int_eq(tr_chan_mpsc_new(rt, 16, TR_OVERFLOW_FAIL, &ch), 0);
    atomic_store(&val_freed, 0);
    race_arg_t args[P];
    pthread_t t[P];
    for (int i = 0; i < P; i++) {
      ck_assert_int_eq(tr_chan_sender_clone(ch), 0);
      args[i] = (race_arg_t){.ch = ch, .id = (uint32_t)i};
      atomic_init(&args[i].accepted, 0);
      pthread_create(&t[i], NULL, race_sender, &args[i]);
    }
    tr_chan_sender_drop(ch); /* only the threads send */
    uint64_t got = 0, next[P] = {0};
    uint64_t want = 50 + (uint64_t)(round * 37) % 400;
    while (got < want) {
      void *v;
      ck_assert_int_eq(tr_chan_recv(ch, 10000, &v), 0);
      val_t *x = v;
      ck_assert_uint_eq(x->v, next[x->producer]); /* per-sender order */
      next[x->producer]++;
      got++;
      tr_msg_free(v);
    }
    tr_chan_free(ch); /* receiver gone: closes, the rest are dead */
    uint64_t accepted = 0;
    for (int i = 0; i < P; i++) {
      pthread_join(t[i], NULL);
      accepted += atomic_load(&args[i].accepted);
    }
    tr_chan_stats_t st;
    ck_assert_int_eq(tr_chan_stats(ch, &st), 0);
    ck_assert_uint_eq(st.sent, accepted);
    ck_assert_uint_eq(got + st.dead_letters, accepted);
    ck_assert_uint_eq(st.len, 0);
    /* received, dead and the last refused value of each sender */
    ck_assert_uint_eq(atomic_load(&val_freed), accepted + P);
    for (int i = 0; i < P; i++) tr_chan_sender_drop(ch);
  }
  tu_runtime_finish(rt);
}
END_TEST

/* A thread receiver facing a head position that is reserved and not yet
 * filled (the TR_TEST_CHAN_STALL_MS knob holds its sender 300 ms) sleeps
 * until the value is stored instead of spinning, and gets the values in
 * order. */
typedef struct held_arg {
  tr_chan_t *ch;
  int rc;
} held_arg_t;

static void *held_sender(void *p) {
  held_arg_t *h = p;
  h->rc = tr_chan_send(NULL, h->ch, mkval(0, 0));
  return NULL;
}

START_TEST(test_chan_recv_waits_for_reserved) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(setenv("TR_TEST_CHAN_STALL_MS", "300", 1), 0);
  ck_assert_int_eq(tr_chan_mpsc_new(rt, 8, TR_OVERFLOW_FAIL, &ch), 0);
  unsetenv("TR_TEST_CHAN_STALL_MS");
  held_arg_t ha = {.ch = ch};
  pthread_t t;
  pthread_create(&t, NULL, held_sender, &ha);
  tr_chan_stats_t st;
  for (int k = 0; k < 2000; k++) {
    tr_chan_stats(ch, &st);
    if (st.sent == 1) break;
    tu_sleep_ms(1);
  }
  ck_assert_uint_eq(st.sent, 1);
  ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(1, 0)), 0); /* behind it */
  void *none;
  ck_assert_int_eq(tr_chan_recv(ch, 0, &none), TR_ETIMEDOUT); /* not yet */
  struct timespec c0, c1;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
  ck_assert_uint_eq(recv_v(ch, 5000), 0);
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
  uint64_t cpu_ms = (uint64_t)((c1.tv_sec - c0.tv_sec) * 1000 +
                               (c1.tv_nsec - c0.tv_nsec) / 1000000);
  ck_assert_msg(cpu_ms < 100, "the receiver spun for %llu ms of CPU",
                (unsigned long long)cpu_ms);
  ck_assert_uint_eq(recv_v(ch, 0), 1);
  pthread_join(t, NULL);
  ck_assert_int_eq(ha.rc, 0);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

int main(void) {
  Suite *s = suite_create("chan_mpsc");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_chan_send_recv_fifo);
  tcase_add_test(tc, test_chan_bounded_fail_keeps_msg);
  tcase_add_test(tc, test_chan_drop_oldest_counts_and_returns);
  tcase_add_test(tc, test_chan_block_timeout);
  tcase_add_test(tc, test_chan_block_wakes_sender);
  tcase_add_test(tc, test_chan_close_wakes_receiver);
  tcase_add_test(tc, test_chan_close_wakes_blocked_sender);
  tcase_add_test(tc, test_chan_senders_gone_closes);
  tcase_add_test(tc, test_chan_recv_timeout);
  tcase_add_test(tc, test_chan_receiver_gone_dead_letters);
  tcase_add_test(tc, test_chan_actor_subscriber);
  tcase_add_test(tc, test_chan_subscriber_dies_dead_letter);
  tcase_add_test(tc, test_chan_actor_writable_backpressure);
  tcase_add_test(tc, test_chan_stress_bounded_slow_consumer);
  tcase_add_test(tc, test_chan_stress_many_threads_fail);
  tcase_add_test(tc, test_chan_bounded_counts);
  tcase_add_test(tc, test_chan_close_races_senders);
  tcase_add_test(tc, test_chan_recv_waits_for_reserved);
  suite_add_tcase(s, tc);
  return tu_run(s);
}
