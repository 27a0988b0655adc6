/* SPDX-License-Identifier: MIT */
/*
 * Tests of select (<troupe/channel.h>): the blocking thread form returns
 * the channel that fired and its value, times out, reports TR_ECLOSED when
 * every channel is closed and empty, and is fair (no ready channel
 * starves); the actor form (a select set) delivers values tagged with the
 * channel index, round-robin among ready channels, with closed notices per
 * channel and an idle timeout; many producers into an actor select lose
 * and duplicate nothing; envelopes the actor keeps or forwards stay valid;
 * a failing selector closes its channels and nothing is lost.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

#include <troupe.h>
#include <troupe/channel.h>

#include "testutil.h"

TR_MESSAGE_TYPE(val_t, uint64_t v;)
TR_MESSAGE_DEFINE(val_t);
TR_MESSAGE_TYPE(gate_t, int unused;)
TR_MESSAGE_DEFINE(gate_t);

/* Holds the selecting actor (a test-only busy handler) until released, so
 * that every channel is in the set before it takes anything. */
static _Atomic int gate_open;
static int sel_on_gate(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  (void)msg;
  for (int i = 0; i < 5000 && !atomic_load(&gate_open); i++) tu_sleep_ms(1);
  return 0;
}

static val_t *mkval(uint64_t v) {
  val_t *m = val_t_new();
  ck_assert_ptr_nonnull(m);
  m->v = v;
  return m;
}

static void mk_chans(tr_runtime_t *rt, tr_chan_t **c, size_t n) {
  for (size_t i = 0; i < n; i++)
    ck_assert_int_eq(tr_chan_mpsc_new(rt, 0, TR_OVERFLOW_FAIL, &c[i]), 0);
}

static void free_chans(tr_chan_t **c, size_t n) {
  for (size_t i = 0; i < n; i++) {
    tr_chan_sender_drop(c[i]);
    tr_chan_free(c[i]);
  }
}

START_TEST(test_select_fires_right_channel) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *c[3];
  mk_chans(rt, c, 3);
  ck_assert_int_eq(tr_chan_send(NULL, c[2], mkval(22)), 0);
  size_t idx = 99;
  void *m;
  ck_assert_int_eq(tr_chan_recv_any(c, 3, 0, &idx, &m), 0);
  ck_assert_uint_eq(idx, 2);
  ck_assert_uint_eq(((val_t *)m)->v, 22);
  tr_msg_free(m);
  free_chans(c, 3);
  tu_runtime_finish(rt);
}
END_TEST

typedef struct late_arg {
  tr_chan_t *ch;
} late_arg_t;

static void *late_sender(void *p) {
  late_arg_t *a = p;
  tu_sleep_ms(30);
  if (tr_chan_send(NULL, a->ch, mkval(5)) != 0) abort();
  return NULL;
}

START_TEST(test_select_blocks_until_value) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *c[4];
  mk_chans(rt, c, 4);
  late_arg_t a = {.ch = c[1]};
  pthread_t t;
  pthread_create(&t, NULL, late_sender, &a);
  size_t idx;
  void *m;
  ck_assert_int_eq(tr_chan_recv_any(c, 4, 5000, &idx, &m), 0);
  ck_assert_uint_eq(idx, 1);
  tr_msg_free(m);
  pthread_join(t, NULL);
  free_chans(c, 4);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_select_timeout_and_closed) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *c[2];
  mk_chans(rt, c, 2);
  size_t idx;
  void *m;
  uint64_t t0 = tu_now_ms();
  ck_assert_int_eq(tr_chan_recv_any(c, 2, 40, &idx, &m), TR_ETIMEDOUT);
  ck_assert_uint_ge(tu_now_ms() - t0, 35);
  tr_chan_close(c[0]);
  ck_assert_int_eq(tr_chan_recv_any(c, 2, 0, &idx, &m), TR_ETIMEDOUT);
  ck_assert_int_eq(tr_chan_send(NULL, c[1], mkval(1)), 0);
  tr_chan_close(c[1]);
  ck_assert_int_eq(tr_chan_recv_any(c, 2, 1000, &idx, &m), 0);
  ck_assert_uint_eq(idx, 1);
  tr_msg_free(m);
  ck_assert_int_eq(tr_chan_recv_any(c, 2, 1000, &idx, &m), TR_ECLOSED);
  ck_assert_int_eq(tr_chan_recv_any(NULL, 2, 0, &idx, &m), TR_EINVAL);
  free_chans(c, 2);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_select_fair_threads) {
  enum { N = 4, EACH = 100 };
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *c[N];
  mk_chans(rt, c, N);
  for (int i = 0; i < N; i++)
    for (int k = 0; k < EACH; k++)
      ck_assert_int_eq(tr_chan_send(NULL, c[i], mkval((uint64_t)k)), 0);
  unsigned hits[N] = {0};
  for (int k = 0; k < EACH; k++) {
    size_t idx;
    void *m;
    ck_assert_int_eq(tr_chan_recv_any(c, N, 0, &idx, &m), 0);
    hits[idx]++;
    tr_msg_free(m);
  }
  /* every channel was always ready: each must get about a quarter */
  for (int i = 0; i < N; i++) ck_assert_uint_ge(hits[i], EACH / N - 2);
  free_chans(c, N);
  tu_runtime_finish(rt);
}
END_TEST

/* ---- select sets (actors) ------------------------------------------------- */

typedef struct selobs {
  _Atomic uint64_t items, closed, timeouts, sum, errors;
  uint64_t per[8];
  uint64_t next[8];
  int order[4096];
  _Atomic int norder;
  uint64_t expect_each;           /* nonzero: values per channel */
  _Atomic uint64_t closed_early;  /* closed notices before the last value */
} selobs_t;

static int sel_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  *(selobs_t **)state = arg;
  return 0;
}

static int sel_on_item(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  selobs_t *o = *(selobs_t **)state;
  tr_chan_item_t *it = msg;
  if (it->status == TR_ETIMEDOUT) {
    atomic_fetch_add(&o->timeouts, 1);
    return 0;
  }
  const val_t *v = it->value;
  if (it->index >= 8 || v->v != o->next[it->index])
    atomic_fetch_add(&o->errors, 1);
  else o->next[it->index]++;
  int k = atomic_load(&o->norder);
  if (k < 4096) {
    o->order[k] = (int)it->index;
    atomic_store(&o->norder, k + 1);
  }
  o->per[it->index]++;
  atomic_fetch_add(&o->sum, v->v);
  atomic_fetch_add(&o->items, 1);
  return 0;
}

static int sel_on_closed(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  selobs_t *o = *(selobs_t **)state;
  const tr_chan_closed_t *c = msg;
  if (o->expect_each && c->index < 8 && o->per[c->index] != o->expect_each)
    atomic_fetch_add(&o->closed_early, 1);
  atomic_fetch_add(&o->closed, 1);
  return 0;
}

static const tr_handler_t sel_handlers[] = {
    {.type = TR_TYPE(tr_chan_item_t), .fn = sel_on_item},
    {.type = TR_TYPE(tr_chan_closed_t), .fn = sel_on_closed},
    {.type = TR_TYPE(gate_t), .fn = sel_on_gate}};
static const tr_behavior_t sel_beh = {.name = "selector",
                                      .state_size = sizeof(void *),
                                      .init = sel_init,
                                      .handlers = TR_HANDLERS(sel_handlers)};

START_TEST(test_select_set_fair_round_robin) {
  enum { N = 4, EACH = 1000 };
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *c[N];
  mk_chans(rt, c, N);
  for (int i = 0; i < N; i++)
    for (int k = 0; k < EACH; k++)
      ck_assert_int_eq(tr_chan_send(NULL, c[i], mkval((uint64_t)k)), 0);
  selobs_t *o = calloc(1, sizeof(*o));
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &sel_beh, o, &a), 0);
  atomic_store(&gate_open, 0);
  ck_assert_int_eq(tr_send(NULL, a, gate_t_new()), 0);
  tr_chan_select_t *set;
  ck_assert_int_eq(tr_chan_select_new(rt, a, 1, TR_FOREVER, &set), 0);
  for (int i = 0; i < N; i++) {
    unsigned idx;
    ck_assert_int_eq(tr_chan_select_add(set, c[i], &idx), 0);
    ck_assert_uint_eq(idx, (unsigned)i);
  }
  atomic_store(&gate_open, 1);
  void *m;
  ck_assert_int_eq(tr_chan_recv(c[0], 0, &m), TR_EBUSY);
  ck_assert(tu_wait_ge(&o->items, N * EACH, 10000));
  ck_assert_uint_eq(atomic_load(&o->errors), 0);
  /* all four were ready before the first item: the first 64 rotate */
  unsigned hits[N] = {0};
  for (int k = 0; k < 64; k++) hits[o->order[k]]++;
  for (int i = 0; i < N; i++) ck_assert_uint_ge(hits[i], 64 / N - 2);
  for (int i = 0; i < N; i++) tr_chan_close(c[i]);
  ck_assert(tu_wait_ge(&o->closed, N, 5000));
  tr_chan_select_free(set);
  free_chans(c, N);
  tr_actor_stop(a, 0);
  tu_runtime_finish(rt);
  free(o);
}
END_TEST

/* A wide window: the set refills in batches, still one value per ready
 * channel per round, each channel in order, its closed notice last. */
START_TEST(test_select_set_batch_round_robin) {
  enum { N = 4, EACH = 1000 };
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_chan_t *c[N];
  mk_chans(rt, c, N);
  for (int i = 0; i < N; i++)
    for (int k = 0; k < EACH; k++)
      ck_assert_int_eq(tr_chan_send(NULL, c[i], mkval((uint64_t)k)), 0);
  selobs_t *o = calloc(1, sizeof(*o));
  o->expect_each = EACH;
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &sel_beh, o, &a), 0);
  atomic_store(&gate_open, 0);
  ck_assert_int_eq(tr_send(NULL, a, gate_t_new()), 0);
  tr_chan_select_t *set;
  ck_assert_int_eq(tr_chan_select_new(rt, a, 64, TR_FOREVER, &set), 0);
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(tr_chan_select_add(set, c[i], NULL), 0);
  for (int i = 0; i < N; i++) tr_chan_close(c[i]); /* after their values */
  atomic_store(&gate_open, 1);
  ck_assert(tu_wait_ge(&o->closed, N, 10000));
  ck_assert_uint_eq(atomic_load(&o->items), N * EACH);
  ck_assert_uint_eq(atomic_load(&o->errors), 0);
  ck_assert_uint_eq(atomic_load(&o->closed_early), 0);
  /* the first add filled the window from channel 0 alone; after that,
   * every group of N consecutive items holds each channel once, as long
   * as all are ready (they are well past item 2048) */
  for (int k = 64; k + N <= 2048; k += N) {
    unsigned seen = 0;
    for (int j = 0; j < N; j++) seen |= 1u << o->order[k + j];
    ck_assert_uint_eq(seen, (1u << N) - 1);
  }
  tr_chan_select_free(set);
  free_chans(c, N);
  tr_actor_stop(a, 0);
  tu_runtime_finish(rt);
  free(o);
}
END_TEST

START_TEST(test_select_set_timeout) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *c[2];
  mk_chans(rt, c, 2);
  selobs_t *o = calloc(1, sizeof(*o));
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &sel_beh, o, &a), 0);
  tr_chan_select_t *set;
  uint64_t t0 = tu_now_ms(); /* the idle period starts with the set */
  ck_assert_int_eq(tr_chan_select_new(rt, a, 0, 30, &set), 0);
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(tr_chan_select_add(set, c[i], NULL), 0);
  ck_assert(tu_wait_ge(&o->timeouts, 1, 5000));
  ck_assert_uint_ge(tu_now_ms() - t0, 29);
  tu_sleep_ms(10);
  ck_assert_uint_eq(atomic_load(&o->timeouts), 1); /* once per idle period */
  ck_assert_int_eq(tr_chan_send(NULL, c[1], mkval(0)), 0);
  ck_assert(tu_wait_ge(&o->items, 1, 5000));
  ck_assert(tu_wait_ge(&o->timeouts, 2, 5000)); /* idle again */
  tr_chan_select_free(set);
  free_chans(c, 2);
  tr_actor_stop(a, 0);
  tu_runtime_finish(rt);
  free(o);
}
END_TEST

typedef struct prod_arg {
  tr_chan_t *ch;
  uint64_t n;
} prod_arg_t;

static void *producer(void *p) {
  prod_arg_t *a = p;
  for (uint64_t i = 0; i < a->n; i++) {
    val_t *m = mkval(i);
    int rc;
    while ((rc = tr_chan_send_ex(NULL, a->ch, m, TR_REF_NULL, 10000,
                                 TR_SEND_KEEP)) == TR_EAGAIN) {
    }
    if (rc) abort();
  }
  tr_chan_sender_drop(a->ch);
  return NULL;
}

START_TEST(test_select_set_stress_producers) {
  enum { N = 8 };
  uint64_t n = (uint64_t)(5000 * tu_stress_scale());
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_chan_t *c[N];
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(tr_chan_mpsc_new(rt, 64, TR_OVERFLOW_BLOCK, &c[i]), 0);
  selobs_t *o = calloc(1, sizeof(*o));
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &sel_beh, o, &a), 0);
  tr_chan_select_t *set;
  ck_assert_int_eq(tr_chan_select_new(rt, a, 16, TR_FOREVER, &set), 0);
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(tr_chan_select_add(set, c[i], NULL), 0);
  pthread_t t[N];
  prod_arg_t pa[N];
  for (int i = 0; i < N; i++) {
    pa[i] = (prod_arg_t){.ch = c[i], .n = n};
    pthread_create(&t[i], NULL, producer, &pa[i]);
  }
  for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
  ck_assert(tu_wait_ge(&o->closed, N, 30000));
  ck_assert_uint_eq(atomic_load(&o->items), N * n);
  ck_assert_uint_eq(atomic_load(&o->errors), 0);
  ck_assert_uint_eq(atomic_load(&o->sum), N * (n * (n - 1) / 2));
  for (int i = 0; i < N; i++) {
    ck_assert_uint_eq(o->per[i], n);
    tr_chan_stats_t st;
    tr_chan_stats(c[i], &st);
    ck_assert_uint_le(st.peak, 64);
  }
  tr_chan_select_free(set);
  for (int i = 0; i < N; i++) tr_chan_free(c[i]);
  tr_actor_stop(a, 0);
  tu_runtime_finish(rt);
  free(o);
}
END_TEST

/* ---- envelopes the handler keeps, and a failing selector ---------------- */

/* The selector keeps every third envelope (tr_ctx_take), forwards the
 * next one to a sink actor and lets the runtime free the rest: the kept
 * and forwarded ones keep their value and channel after the set moved on
 * and after the set is gone. */
enum { KEEP_N = 3, KEEP_EACH = 300 };
#define KEEP_CAP (KEEP_N * KEEP_EACH)
#include "keeputil.h"

static tr_chan_t *keep_chans[KEEP_N];

static int ksink_on_item(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  keep_obs_t *o = *(keep_obs_t **)state;
  tr_chan_item_t *it = msg;
  if (it->index >= KEEP_N || it->chan != keep_chans[it->index] || !it->value)
    atomic_fetch_add(&o->bad, 1);
  atomic_fetch_add(&o->sunk, 1);
  return 0;
}

static const tr_handler_t ksink_handlers[] = {
    {.type = TR_TYPE(tr_chan_item_t), .fn = ksink_on_item}};
static const tr_behavior_t ksink_beh = {.name = "select-sink",
                                        .state_size = sizeof(keep_obs_t *),
                                        .init = sink_init,
                                        .handlers = TR_HANDLERS(ksink_handlers)};

static int keeper_on_item(tr_ctx_t *ctx, void *state, void *msg) {
  keeper_t *k = state;
  tr_chan_item_t *it = msg;
  uint64_t n = atomic_fetch_add(&k->o->seen, 1);
  if (n % 3 == 0 && k->nkept < KEEP_N * KEEP_EACH) {
    tr_ctx_take(ctx);
    k->kept[k->nkept++] = it;
  } else if (n % 3 == 1) {
    if (tr_send(ctx, k->sink, it) != 0) atomic_fetch_add(&k->o->bad, 1);
  }
  return 0;
}

static int keeper_on_closed(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)msg;
  keeper_t *k = state;
  if (atomic_fetch_add(&k->o->closed, 1) + 1 < KEEP_N) return 0;
  for (size_t i = 0; i < k->nkept; i++) {
    tr_chan_item_t *it = k->kept[i];
    const val_t *v = it->value;
    if (it->index < KEEP_N && it->chan == keep_chans[it->index] && v &&
        v->v < KEEP_EACH)
      atomic_fetch_add(&k->o->kept_ok, 1);
    else
      atomic_fetch_add(&k->o->bad, 1);
  }
  return 0;
}

static void keeper_on_stop(tr_ctx_t *ctx, void *state, int reason) {
  (void)ctx;
  (void)reason;
  keeper_t *k = state;
  for (size_t i = 0; i < k->nkept; i++) tr_msg_free(k->kept[i]);
}

static const tr_handler_t keeper_handlers[] = {
    {.type = TR_TYPE(tr_chan_item_t), .fn = keeper_on_item},
    {.type = TR_TYPE(tr_chan_closed_t), .fn = keeper_on_closed}};
static const tr_behavior_t keeper_beh = {.name = "select-keeper",
                                         .state_size = sizeof(keeper_t),
                                         .init = keeper_init,
                                         .on_stop = keeper_on_stop,
                                         .handlers = TR_HANDLERS(keeper_handlers)};

START_TEST(test_select_set_kept_items) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  mk_chans(rt, keep_chans, KEEP_N);
  keep_obs_t o = {0};
  tr_ref_t sink, a;
  ck_assert_int_eq(tr_spawn(rt, &ksink_beh, &o, &sink), 0);
  keeper_arg_t ka = {.o = &o, .sink = sink};
  ck_assert_int_eq(tr_spawn(rt, &keeper_beh, &ka, &a), 0);
  tr_chan_select_t *set;
  ck_assert_int_eq(tr_chan_select_new(rt, a, 8, TR_FOREVER, &set), 0);
  for (int i = 0; i < KEEP_N; i++)
    ck_assert_int_eq(tr_chan_select_add(set, keep_chans[i], NULL), 0);
  for (int k = 0; k < KEEP_EACH; k++)
    for (int i = 0; i < KEEP_N; i++)
      ck_assert_int_eq(tr_chan_send(NULL, keep_chans[i], mkval((uint64_t)k)), 0);
  for (int i = 0; i < KEEP_N; i++) tr_chan_close(keep_chans[i]);
  ck_assert(tu_wait_ge(&o.closed, KEEP_N, 10000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 5000), 0);
  ck_assert_uint_eq(atomic_load(&o.seen), KEEP_N * KEEP_EACH);
  ck_assert_uint_eq(atomic_load(&o.kept_ok), KEEP_N * KEEP_EACH / 3);
  ck_assert_uint_eq(atomic_load(&o.sunk), KEEP_N * KEEP_EACH / 3);
  ck_assert_uint_eq(atomic_load(&o.bad), 0);
  /* the set and the channels' handles go first; the kept envelopes hold
   * their channels until the actor frees them */
  tr_chan_select_free(set);
  free_chans(keep_chans, KEEP_N);
  tr_actor_stop(a, 0);
  tr_actor_stop(sink, 0);
  tu_runtime_finish(rt);
}
END_TEST

/* A selector whose handler fails at its tenth value stops; its channels
 * lose their receiver: they close (TR_CHAN_CLOSED_RECEIVER), later sends
 * fail with TR_ECLOSED, and what was queued is counted as dead letters. */
static int failer_on_item(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)msg;
  uint64_t *n = state;
  return ++*n == 10 ? TR_EINVAL : 0;
}

static const tr_handler_t failer_handlers[] = {
    {.type = TR_TYPE(tr_chan_item_t), .fn = failer_on_item}};
static const tr_behavior_t failer_beh = {.name = "select-failer",
                                         .state_size = sizeof(uint64_t),
                                         .handlers = TR_HANDLERS(failer_handlers)};

START_TEST(test_select_set_failing_actor) {
  enum { N = 2, EACH = 50 };
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *c[N];
  mk_chans(rt, c, N);
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &failer_beh, NULL, &a), 0);
  tr_chan_select_t *set;
  ck_assert_int_eq(tr_chan_select_new(rt, a, 4, TR_FOREVER, &set), 0);
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(tr_chan_select_add(set, c[i], NULL), 0);
  uint64_t accepted = 0;
  for (int k = 0; k < EACH; k++)
    for (int i = 0; i < N; i++) {
      val_t *v = mkval((uint64_t)k);
      int rc = tr_chan_send(NULL, c[i], v);
      if (rc == 0) {
        accepted++;
      } else {
        ck_assert_int_eq(rc, TR_ECLOSED); /* the selector is gone; v freed */
      }
    }
  ck_assert_uint_ge(accepted, 10);
  for (int k = 0; k < 5000 && tr_actor_alive(a); k++) tu_sleep_ms(1);
  ck_assert(!tr_actor_alive(a));
  uint64_t dead = 0, delivered = 0;
  for (int i = 0; i < N; i++) {
    for (int k = 0; k < 5000 && !tr_chan_is_closed(c[i]); k++) tu_sleep_ms(1);
    ck_assert(tr_chan_is_closed(c[i]));
    val_t *v = mkval(1);
    ck_assert_int_eq(tr_chan_send(NULL, c[i], v), TR_ECLOSED);
    tr_chan_stats_t st;
    tr_chan_stats(c[i], &st);
    ck_assert_int_eq(st.closed, TR_CHAN_CLOSED_RECEIVER);
    dead += st.dead_letters;
    delivered += st.delivered;
  }
  /* nothing lost: each value was handled, or is a dead letter */
  ck_assert_uint_ge(delivered, 10);
  ck_assert_uint_eq(delivered + dead, accepted);
  tr_chan_select_free(set);
  free_chans(c, N);
  tu_runtime_finish(rt);
}
END_TEST

/* A selector whose handler stops at its first value after refilling the
 * bounded channel the set had emptied: the values taken but not handled
 * go back in order without overrunning the channel, and nothing is lost
 * or freed twice (each value is handled, queued or a dead letter). */
static tr_chan_t *refill_ch;
static _Atomic uint64_t refill_seen;
static int refill_on_item(tr_ctx_t *ctx, void *state, void *msg) {
  (void)state;
  (void)msg;
  if (atomic_fetch_add(&refill_seen, 1) == 0) {
    for (int i = 0; i < 8; i++)
      if (tr_chan_send(ctx, refill_ch, mkval((uint64_t)(100 + i))) != 0)
        return TR_EINVAL;
    return TR_ECANCELED; /* stop: the 7 others taken with this one go back */
  }
  return 0;
}
static const tr_handler_t refill_handlers[] = {
    {.type = TR_TYPE(tr_chan_item_t), .fn = refill_on_item}};
static const tr_behavior_t refill_beh = {.name = "select-refill",
                                         .handlers = TR_HANDLERS(refill_handlers)};

START_TEST(test_select_set_give_back_refilled) {
  tr_runtime_t *rt = tu_runtime(1, 0, 0);
  ck_assert_int_eq(tr_chan_mpsc_new(rt, 8, TR_OVERFLOW_FAIL, &refill_ch), 0);
  for (int i = 0; i < 8; i++)
    ck_assert_int_eq(tr_chan_send(NULL, refill_ch, mkval((uint64_t)i)), 0);
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &refill_beh, NULL, &a), 0);
  tr_chan_select_t *set;
  ck_assert_int_eq(tr_chan_select_new(rt, a, 8, TR_FOREVER, &set), 0);
  ck_assert_int_eq(tr_chan_select_add(set, refill_ch, NULL), 0);
  ck_assert_int_eq(tr_runtime_start(rt), 0);
  for (int k = 0; k < 5000 && tr_actor_alive(a); k++) tu_sleep_ms(1);
  ck_assert(!tr_actor_alive(a));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 5000), 0);
  tr_chan_stats_t st;
  tr_chan_stats(refill_ch, &st);
  /* 16 accepted: 1 handled, the rest dead letters when the selector
   * stopped (its channel lost its receiver and closed) */
  ck_assert_uint_eq(st.sent, 16);
  ck_assert_uint_eq(st.delivered + st.dead_letters, 16);
  ck_assert_uint_eq(st.len, 0);
  tr_chan_select_free(set);
  tr_chan_sender_drop(refill_ch);
  tr_chan_free(refill_ch);
  tu_runtime_finish(rt);
}
END_TEST

/* A set of 70 channels (more than there are ready bits): an idle set
 * stays idle (the runtime becomes quiescent), and a value sent to any
 * channel, the last ones included, is delivered. */
static _Atomic uint64_t wide_got;
static int wide_on_item(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  (void)msg;
  atomic_fetch_add(&wide_got, 1);
  return 0;
}
static const tr_handler_t wide_handlers[] = {
    {.type = TR_TYPE(tr_chan_item_t), .fn = wide_on_item}};
static const tr_behavior_t wide_beh = {.name = "select-wide",
                                       .handlers = TR_HANDLERS(wide_handlers)};

START_TEST(test_select_set_wide) {
  enum { N = 70 };
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_chan_t *c[N];
  mk_chans(rt, c, N);
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &wide_beh, NULL, &a), 0);
  tr_chan_select_t *set;
  ck_assert_int_eq(tr_chan_select_new(rt, a, 64, TR_FOREVER, &set), 0);
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(tr_chan_select_add(set, c[i], NULL), 0);
  /* nothing to do: the token parks and the workers go to sleep */
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 5000), 0);
  for (int round = 0; round < 3; round++)
    for (int i = 0; i < N; i++) {
      ck_assert_int_eq(tr_chan_send(NULL, c[i], mkval((uint64_t)i)), 0);
      ck_assert(tu_wait_ge(&wide_got, (uint64_t)(round * N + i + 1), 5000));
    }
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 5000), 0);
  ck_assert_uint_eq(atomic_load(&wide_got), 3 * N);
  tr_chan_select_free(set);
  free_chans(c, N);
  tr_actor_stop(a, 0);
  tu_runtime_finish(rt);
}
END_TEST

/* The selector forwards every envelope to a handle, whose thread frees it
 * at once: the envelope must hold its value and channel before the handle
 * can see it. */
static tr_ref_t fwd_to;
static int fwd_on_item(tr_ctx_t *ctx, void *state, void *msg) {
  (void)state;
  return tr_send(ctx, fwd_to, msg);
}
static const tr_handler_t fwd_handlers[] = {
    {.type = TR_TYPE(tr_chan_item_t), .fn = fwd_on_item}};
static const tr_behavior_t fwd_beh = {.name = "select-forward",
                                      .handlers = TR_HANDLERS(fwd_handlers)};

START_TEST(test_select_set_forward_to_handle) {
  uint64_t n = (uint64_t)(5000 * tu_stress_scale());
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_handle_t *h;
  ck_assert_int_eq(tr_handle_new(rt, &h), 0);
  fwd_to = tr_handle_ref(h);
  tr_chan_t *c[1];
  mk_chans(rt, c, 1);
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &fwd_beh, NULL, &a), 0);
  tr_chan_select_t *set;
  ck_assert_int_eq(tr_chan_select_new(rt, a, 8, TR_FOREVER, &set), 0);
  ck_assert_int_eq(tr_chan_select_add(set, c[0], NULL), 0);
  for (uint64_t i = 0; i < n; i++) {
    ck_assert_int_eq(tr_chan_send(NULL, c[0], mkval(i)), 0);
    void *m;
    ck_assert_int_eq(tr_handle_receive(h, 5000, &m), 0);
    tr_chan_item_t *it = m;
    ck_assert_ptr_eq(it->chan, c[0]);
    ck_assert_uint_eq(((val_t *)it->value)->v, i);
    tr_msg_free(m);
  }
  tr_chan_select_free(set);
  free_chans(c, 1);
  tr_actor_stop(a, 0);
  tr_handle_free(h);
  tu_runtime_finish(rt);
}
END_TEST

/* A select pass stopped by backpressure (its handler was muted by a full
 * mailbox) gives the values it took back to a bounded channel: they still
 * count against its capacity (a send without the lock must not fill the
 * ring behind them), and they are handled first, in order, once the
 * handler runs again. */
static _Atomic int held_in, held_open;
static tr_ref_t held_sink;
static int held_sink_on(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  (void)msg;
  atomic_store(&held_in, 1);
  for (int i = 0; i < 5000 && !atomic_load(&held_open); i++) tu_sleep_ms(1);
  return 0;
}
static const tr_handler_t held_sink_handlers[] = {
    {.type = TR_TYPE(val_t), .fn = held_sink_on}};
static const tr_mailbox_spec_t held_sink_box[] = {
    {.name = "in", .capacity = 1, .overflow = TR_OVERFLOW_BLOCK}};
static const tr_behavior_t held_sink_beh = {
    .name = "select-held-sink",
    .handlers = TR_HANDLERS(held_sink_handlers),
    .mailboxes = held_sink_box,
    .nmailboxes = 1};

static uint64_t held_seen[32];
static _Atomic uint64_t held_n;
static int held_sel_on(tr_ctx_t *ctx, void *state, void *msg) {
  (void)state;
  tr_chan_item_t *it = msg;
  uint64_t k = atomic_load(&held_n);
  if (k < 32) held_seen[k] = ((val_t *)it->value)->v;
  atomic_store(&held_n, k + 1);
  /* the second forward finds the sink's mailbox full: muted */
  return tr_send(ctx, held_sink, mkval(0));
}
static const tr_handler_t held_sel_handlers[] = {
    {.type = TR_TYPE(tr_chan_item_t), .fn = held_sel_on}};
static const tr_behavior_t held_sel_beh = {
    .name = "select-held", .handlers = TR_HANDLERS(held_sel_handlers)};

START_TEST(test_select_set_give_back_keeps_bound) {
  tr_runtime_t *rt = tu_runtime(1, 0, 0);
  tr_chan_t *ch;
  ck_assert_int_eq(tr_chan_mpsc_new(rt, 8, TR_OVERFLOW_FAIL, &ch), 0);
  for (int i = 0; i < 8; i++)
    ck_assert_int_eq(tr_chan_send(NULL, ch, mkval((uint64_t)i)), 0);
  ck_assert_int_eq(tr_spawn(rt, &held_sink_beh, NULL, &held_sink), 0);
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &held_sel_beh, NULL, &a), 0);
  tr_chan_select_t *set;
  ck_assert_int_eq(tr_chan_select_new(rt, a, 8, TR_FOREVER, &set), 0);
  ck_assert_int_eq(tr_chan_select_add(set, ch, NULL), 0);
  ck_assert_int_eq(tr_runtime_start(rt), 0);
  for (int i = 0; i < 5000 && !atomic_load(&held_in); i++) tu_sleep_ms(1);
  ck_assert(atomic_load(&held_in));
  ck_assert_uint_eq(atomic_load(&held_n), 2); /* then muted: 6 given back */
  int accepted = 0;
  for (int i = 0; i < 16; i++) {
    val_t *m = mkval((uint64_t)(100 + i));
    if (tr_chan_send(NULL, ch, m) == 0) accepted++;
  }
  tr_chan_stats_t st;
  tr_chan_stats(ch, &st);
  ck_assert_int_eq(accepted, 2);
  ck_assert_uint_eq(st.len, 8);
  ck_assert_uint_le(st.peak, 8);
  atomic_store(&held_open, 1);
  for (int i = 0; i < 5000 && atomic_load(&held_n) < 10; i++) tu_sleep_ms(1);
  ck_assert_uint_eq(atomic_load(&held_n), 10);
  for (uint64_t i = 0; i < 8; i++) ck_assert_uint_eq(held_seen[i], i);
  ck_assert_uint_eq(held_seen[8], 100);
  ck_assert_uint_eq(held_seen[9], 101);
  tr_chan_select_free(set);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tr_actor_stop(a, 0);
  tu_runtime_finish(rt);
}
END_TEST

/* A sender thread is stopped at a random point of its sending (a signal
 * whose handler sleeps) while the channel is closed and its selecting
 * actor stops. Whatever the sender got accepted is handled or a dead
 * letter once it resumes, and nothing stays queued. (The stop rarely
 * lands between a reservation of the lock-free ring and the store that
 * fills it, the case where the sender itself must drain the value: this
 * is a test of the accounting around close and stop, not of that race.) */
static void stall_handler(int sig) {
  (void)sig;
  struct timespec ts = {0, 20 * 1000 * 1000};
  nanosleep(&ts, NULL);
}

typedef struct stall_arg {
  tr_chan_t *ch;
  _Atomic int started;
  uint64_t accepted;
} stall_arg_t;

static void *stall_sender(void *p) {
  stall_arg_t *a = p;
  val_t *m = mkval(0);
  atomic_store(&a->started, 1);
  for (;;) {
    int rc = tr_chan_send_ex(NULL, a->ch, m, TR_REF_NULL, TR_FOREVER,
                             TR_SEND_KEEP);
    if (rc == 0) {
      a->accepted++;
      m = mkval(a->accepted);
    } else if (rc == TR_ECLOSED) {
      break;
    }
  }
  tr_msg_free(m);
  return NULL;
}

static _Atomic uint64_t stall_handled;
static int stall_on_item(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  (void)msg;
  atomic_fetch_add(&stall_handled, 1);
  return 0;
}
static const tr_handler_t stall_handlers[] = {
    {.type = TR_TYPE(tr_chan_item_t), .fn = stall_on_item}};
static const tr_behavior_t stall_beh = {.name = "select-stall",
                                        .handlers = TR_HANDLERS(stall_handlers)};

START_TEST(test_select_set_close_while_sender_stalled) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = stall_handler;
  sigemptyset(&sa.sa_mask);
  ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
  int rounds = (int)(30 * tu_stress_scale());
  if (rounds < 10) rounds = 10;
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  for (int round = 0; round < rounds; round++) {
    tr_chan_t *ch;
    ck_assert_int_eq(tr_chan_mpsc_new(rt, 16, TR_OVERFLOW_FAIL, &ch), 0);
    atomic_store(&stall_handled, 0);
    tr_ref_t a;
    ck_assert_int_eq(tr_spawn(rt, &stall_beh, NULL, &a), 0);
    tr_chan_select_t *set;
    ck_assert_int_eq(tr_chan_select_new(rt, a, 16, TR_FOREVER, &set), 0);
    ck_assert_int_eq(tr_chan_select_add(set, ch, NULL), 0);
    stall_arg_t arg = {.ch = ch};
    atomic_init(&arg.started, 0);
    pthread_t t;
    pthread_create(&t, NULL, stall_sender, &arg);
    while (!atomic_load(&arg.started)) tu_sleep_ms(1);
    tu_sleep_ms(1 + round % 3);
    pthread_kill(t, SIGUSR1); /* the sender sleeps 20 ms where it is */
    tu_sleep_ms(1);
    ck_assert_int_eq(tr_chan_close(ch), 0);
    ck_assert_int_eq(tr_actor_stop(a, 0), 0);
    for (int k = 0; k < 5000 && tr_actor_alive(a); k++) tu_sleep_ms(1);
    ck_assert(!tr_actor_alive(a));
    pthread_join(t, NULL);
    ck_assert_int_eq(tr_runtime_await_quiescent(rt, 5000), 0);
    tr_chan_stats_t st;
    ck_assert_int_eq(tr_chan_stats(ch, &st), 0);
    ck_assert_uint_eq(st.sent, arg.accepted);
    ck_assert_uint_eq(st.len, 0);
    ck_assert_uint_eq(atomic_load(&stall_handled) + st.dead_letters,
                      arg.accepted);
    tr_chan_select_free(set);
    tr_chan_sender_drop(ch);
    tr_chan_free(ch);
  }
  tu_runtime_finish(rt);
}
END_TEST

/* A sender is held between reserving the head position of a bounded
 * channel's ring and filling it (the TR_TEST_CHAN_STALL_MS knob), while a
 * second value is stored behind it. The selecting actor takes nothing
 * meanwhile and does not hold its worker (another actor on the only
 * worker answers at once); then the channel is closed and the selector
 * stops before the held value is stored: once stored, both values are
 * dead letters, none stays queued. */
static int stall_ping(tr_ctx_t *ctx, void *state, void *msg) {
  (void)state;
  (void)msg;
  return tr_reply(ctx, val_t_new());
}
static const tr_handler_t stall_ping_handlers[] = {
    {.type = TR_TYPE(val_t), .fn = stall_ping}};
static const tr_behavior_t stall_ping_beh = {
    .name = "select-stall-ping", .handlers = TR_HANDLERS(stall_ping_handlers)};

typedef struct held_send {
  tr_chan_t *ch;
  int rc;
  _Atomic int done;
} held_send_t;

static void *held_sender(void *p) {
  held_send_t *h = p;
  h->rc = tr_chan_send(NULL, h->ch, mkval(0));
  atomic_store(&h->done, 1);
  return NULL;
}

START_TEST(test_select_set_reserved_slot) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_chan_t *ch;
  ck_assert_int_eq(setenv("TR_TEST_CHAN_STALL_MS", "400", 1), 0);
  ck_assert_int_eq(tr_chan_mpsc_new(rt, 16, TR_OVERFLOW_FAIL, &ch), 0);
  unsetenv("TR_TEST_CHAN_STALL_MS");
  atomic_store(&stall_handled, 0);
  tr_ref_t sel, ping;
  ck_assert_int_eq(tr_spawn(rt, &stall_beh, NULL, &sel), 0);
  ck_assert_int_eq(tr_spawn(rt, &stall_ping_beh, NULL, &ping), 0);
  tr_chan_select_t *set;
  ck_assert_int_eq(tr_chan_select_new(rt, sel, 16, TR_FOREVER, &set), 0);
  ck_assert_int_eq(tr_chan_select_add(set, ch, NULL), 0);
  ck_assert_int_eq(tr_chan_sender_clone(ch), 0); /* the thread's */
  held_send_t hs = {.ch = ch};
  atomic_init(&hs.done, 0);
  pthread_t t;
  pthread_create(&t, NULL, held_sender, &hs);
  tr_chan_stats_t st;
  for (int k = 0; k < 2000; k++) { /* until the position is reserved */
    tr_chan_stats(ch, &st);
    if (st.sent == 1) break;
    tu_sleep_ms(1);
  }
  ck_assert_uint_eq(st.sent, 1);
  ck_assert_int_eq(tr_chan_send(NULL, ch, mkval(1)), 0); /* behind it */
  tr_handle_t *h;
  ck_assert_int_eq(tr_handle_new(rt, &h), 0);
  uint64_t t0 = tu_now_ns();
  void *rep = NULL;
  ck_assert_int_eq(tr_handle_call(h, ping, val_t_new(), 5000, &rep), 0);
  uint64_t waited_ms = (tu_now_ns() - t0) / 1000000u;
  tr_msg_free(rep);
  ck_assert_msg(!atomic_load(&hs.done) && waited_ms < 250,
                "the worker was held %llu ms", (unsigned long long)waited_ms);
  ck_assert_uint_eq(atomic_load(&stall_handled), 0); /* nothing taken yet */
  ck_assert_int_eq(tr_chan_close(ch), 0);
  ck_assert_int_eq(tr_actor_stop(sel, 0), 0);
  for (int k = 0; k < 5000 && tr_actor_alive(sel); k++) tu_sleep_ms(1);
  ck_assert(!tr_actor_alive(sel));
  ck_assert(!atomic_load(&hs.done)); /* still held */
  pthread_join(t, NULL);
  ck_assert_int_eq(hs.rc, 0);
  tr_chan_stats(ch, &st);
  ck_assert_uint_eq(st.sent, 2);
  ck_assert_uint_eq(st.len, 0);
  ck_assert_uint_eq(st.delivered, 0);
  ck_assert_uint_eq(st.dead_letters, 2);
  tr_handle_free(h);
  tr_chan_select_free(set);
  tr_chan_sender_drop(ch);
  tr_chan_sender_drop(ch);
  tr_chan_free(ch);
  tu_runtime_finish(rt);
}
END_TEST

int main(void) {
  Suite *s = suite_create("chan_select");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_select_fires_right_channel);
  tcase_add_test(tc, test_select_blocks_until_value);
  tcase_add_test(tc, test_select_timeout_and_closed);
  tcase_add_test(tc, test_select_fair_threads);
  tcase_add_test(tc, test_select_set_fair_round_robin);
  tcase_add_test(tc, test_select_set_batch_round_robin);
  tcase_add_test(tc, test_select_set_timeout);
  tcase_add_test(tc, test_select_set_stress_producers);
  tcase_add_test(tc, test_select_set_kept_items);
  tcase_add_test(tc, test_select_set_failing_actor);
  tcase_add_test(tc, test_select_set_give_back_refilled);
  tcase_add_test(tc, test_select_set_wide);
  tcase_add_test(tc, test_select_set_forward_to_handle);
  tcase_add_test(tc, test_select_set_give_back_keeps_bound);
  tcase_add_test(tc, test_select_set_close_while_sender_stalled);
  tcase_add_test(tc, test_select_set_reserved_slot);
  suite_add_tcase(s, tc);
  return tu_run(s);
}
