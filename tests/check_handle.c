/* SPDX-License-Identifier: MIT */
/*
 * Tests of the blocking handle for code outside the runtime
 * (<troupe/actor.h>, tr_handle_*): send and receive, the receive timeout
 * (returns TR_ETIMEDOUT no earlier than asked), calls and their timeout,
 * calls to dead actors or dropped requests, messages arriving during a
 * call staying queued for receive, receiving one type while the others
 * stay queued in order, and several threads each using its own handle at
 * once.
 */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>

#include <troupe.h>

#include "testutil.h"

TR_MESSAGE_TYPE(hq_t, uint64_t v;)
TR_MESSAGE_TYPE(note_t, uint64_t v;)

static _Atomic uint64_t hq_freed, errors, stashed;
static void hq_dtor(void *m) {
  (void)m;
  atomic_fetch_add(&hq_freed, 1);
}
TR_MESSAGE_DEFINE(hq_t, .dtor = hq_dtor);
TR_MESSAGE_DEFINE(note_t);

static void reset(void) {
  atomic_store(&hq_freed, 0);
  atomic_store(&errors, 0);
  atomic_store(&stashed, 0);
}

static hq_t *hq_new(uint64_t v) {
  hq_t *m = hq_t_new();
  if (m != NULL)
    m->v = v;
  return m;
}

static note_t *note_new(uint64_t v) {
  note_t *m = note_t_new();
  if (m != NULL)
    m->v = v;
  return m;
}

/* echo: answers v + 1, as a reply to a request or else to the sender. */
static int echo_on_hq(tr_ctx_t *ctx, void *state, void *msg) {
  hq_t *r = hq_new(((hq_t *)msg)->v + 1);
  int rc;
  (void)state;
  if (r == NULL)
    return TR_ENOMEM;
  rc = tr_reply(ctx, r);
  if (rc == TR_EINVAL) /* not a request: the failed reply freed r */
    rc = tr_send(ctx, tr_msg_sender(msg), hq_new(((hq_t *)msg)->v + 1));
  if (rc != 0) {
    atomic_fetch_add(&errors, 1);
  }
  return 0;
}

/* chatty: sends two notes to the caller before replying. */
static int chatty_on_hq(tr_ctx_t *ctx, void *state, void *msg) {
  tr_ref_t from = tr_msg_sender(msg);
  (void)state;
  for (uint64_t i = 1; i <= 2; i++) {
    note_t *n = note_new(i);
    if (n == NULL || tr_send(ctx, from, n) != 0) {
      atomic_fetch_add(&errors, 1);
    }
  }
  return echo_on_hq(ctx, state, msg);
}

/* stash: keeps the request; answers it (v + 100) on a note. */
typedef struct stash_state {
  hq_t *held;
} stash_state_t;

static int stash_on_hq(tr_ctx_t *ctx, void *state, void *msg) {
  stash_state_t *s = state;
  if (s->held != NULL)
    return 0; /* hold one at most; drop the rest */
  tr_ctx_take(ctx);
  s->held = msg;
  atomic_fetch_add(&stashed, 1);
  return 0;
}

static int stash_on_note(tr_ctx_t *ctx, void *state, void *msg) {
  stash_state_t *s = state;
  hq_t *r;
  (void)msg;
  if (s->held == NULL)
    return 0;
  r = hq_new(s->held->v + 100);
  if (r == NULL)
    return TR_ENOMEM;
  (void)tr_reply_to(ctx, s->held, r);
  s->held = NULL;
  return 0;
}

static void stash_on_stop(tr_ctx_t *ctx, void *state, int reason) {
  stash_state_t *s = state;
  (void)ctx;
  (void)reason;
  tr_msg_free(s->held);
  s->held = NULL;
}

static int drop_on_hq(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  (void)msg;
  return 0;
}

static const tr_handler_t echo_h[] = {{.type = TR_TYPE(hq_t), .fn = echo_on_hq}};
static const tr_handler_t chatty_h[] = {{.type = TR_TYPE(hq_t), .fn = chatty_on_hq}};
static const tr_handler_t stash_h[] = {
    {.type = TR_TYPE(hq_t), .fn = stash_on_hq},
    {.type = TR_TYPE(note_t), .fn = stash_on_note},
};
static const tr_handler_t drop_h[] = {{.type = TR_TYPE(hq_t), .fn = drop_on_hq}};
static const tr_handler_t notes_only_h[] = {{.type = TR_TYPE(note_t), .fn = drop_on_hq}};

static const tr_behavior_t echo = {.name = "echo",
                                   .handlers = TR_HANDLERS(echo_h)};
static const tr_behavior_t chatty = {.name = "chatty",
                                     .handlers = TR_HANDLERS(chatty_h)};
static const tr_behavior_t stash = {
    .name = "stash",
    .state_size = sizeof(stash_state_t),
    .on_stop = stash_on_stop,
    .handlers = TR_HANDLERS(stash_h),
};
static const tr_behavior_t drop = {.name = "drop",
                                   .handlers = TR_HANDLERS(drop_h)};
static const tr_behavior_t notes_only = {
    .name = "notes_only", .handlers = TR_HANDLERS(notes_only_h)};

static tr_handle_t *handle(tr_runtime_t *rt) {
  tr_handle_t *h = NULL;
  ck_assert_int_eq(tr_handle_new(rt, &h), 0);
  ck_assert_ptr_nonnull(h);
  return h;
}

static void expect_reply(void *reply, const tr_msgtype_t *type, uint64_t v) {
  ck_assert_ptr_nonnull(reply);
  ck_assert_ptr_eq(tr_msg_type(reply), type);
  ck_assert_uint_eq(((hq_t *)reply)->v, v); /* hq_t and note_t agree */
  tr_msg_free(reply);
}

/* ---- tests ------------------------------------------------------------- */

START_TEST(test_tr_handle_new_ref) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_handle_t *a = handle(rt), *b = handle(rt);
  ck_assert(!tr_ref_is_null(tr_handle_ref(a)));
  ck_assert(!tr_ref_is_null(tr_handle_ref(b)));
  ck_assert(!tr_ref_eq(tr_handle_ref(a), tr_handle_ref(b)));
  tr_handle_free(a);
  tr_handle_free(b);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_handle_send_receive) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_handle_t *h = handle(rt);
  void *m = NULL;
  tr_ref_t e;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &echo, NULL, &e), 0);
  ck_assert_int_eq(tr_handle_send(h, e, hq_new(5)), 0);
  ck_assert_int_eq(tr_handle_receive(h, 10000, &m), 0);
  ck_assert(tr_ref_eq(tr_msg_sender(m), e));
  expect_reply(m, TR_TYPE(hq_t), 6);
  /* Anyone may send to the handle's ref; order per sender is kept. */
  for (uint64_t i = 0; i < 20; i++)
    ck_assert_int_eq(tr_send(NULL, tr_handle_ref(h), note_new(i)), 0);
  for (uint64_t i = 0; i < 20; i++) {
    m = NULL;
    ck_assert_int_eq(tr_handle_receive(h, 10000, &m), 0);
    ck_assert(tr_ref_is_null(tr_msg_sender(m)));
    expect_reply(m, TR_TYPE(note_t), i);
  }
  ck_assert_uint_eq(atomic_load(&errors), 0);
  tr_handle_free(h);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_handle_receive_timeout) {
  static const int waits[] = {0, 20, 150};
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_handle_t *h = handle(rt);
  for (size_t i = 0; i < sizeof(waits) / sizeof(waits[0]); i++) {
    void *m = NULL;
    uint64_t t0 = tu_now_ns(), dt;
    ck_assert_int_eq(tr_handle_receive(h, waits[i], &m), TR_ETIMEDOUT);
    dt = tu_now_ns() - t0;
    /* 1 ms of slack for rounding to the clock's granularity. */
    ck_assert_msg(dt + 1000000u >= (uint64_t)waits[i] * 1000000u,
                  "receive(%d ms) timed out after %llu us", waits[i],
                  (unsigned long long)(dt / 1000));
    ck_assert_msg(dt < (uint64_t)waits[i] * 1000000u + 2000000000u,
                  "receive(%d ms) took %llu us", waits[i],
                  (unsigned long long)(dt / 1000));
  }
  tr_handle_free(h);
  tu_runtime_finish(rt);
}
END_TEST

/* The duration convention, checked on every blocking call of the
 * runtime and channel API: a negative duration other than TR_FOREVER is
 * TR_EINVAL (it used to mean "forever" in some calls), TR_NOWAIT looks
 * without waiting, and a huge one waits (no overflow into the past). */
START_TEST(test_duration_convention) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_handle_t *h = handle(rt);
  tr_chan_t *ch, *sel[1];
  tr_chan_select_t *set;
  void *m = NULL;
  size_t idx;
  uint64_t t0;
  ck_assert_int_eq(tr_chan_mpsc_new(rt, 1, TR_OVERFLOW_BLOCK, &ch), 0);
  sel[0] = ch;
  ck_assert_int_eq(tr_handle_receive(h, -2, &m), TR_EINVAL);
  ck_assert_int_eq(tr_handle_receive(h, INT64_MIN, &m), TR_EINVAL);
  ck_assert_int_eq(tr_chan_recv(ch, -5, &m), TR_EINVAL);
  ck_assert_int_eq(tr_chan_recv_any(sel, 1, -100, &idx, &m), TR_EINVAL);
  ck_assert_int_eq(tr_chan_closed_wait(ch, -3), TR_EINVAL);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, -2), TR_EINVAL);
  ck_assert_int_eq(tr_runtime_shutdown(rt, -2), TR_EINVAL);
  ck_assert_int_eq(tr_chan_select_new(rt, tr_handle_ref(h), 0, TR_NOWAIT, &set),
                   TR_EINVAL);
  ck_assert_int_eq(tr_chan_select_new(rt, tr_handle_ref(h), 0, -9, &set),
                   TR_EINVAL);
  /* TR_NOWAIT: no wait at all */
  t0 = tu_now_ms();
  ck_assert_int_eq(tr_handle_receive(h, TR_NOWAIT, &m), TR_ETIMEDOUT);
  ck_assert_int_eq(tr_chan_recv(ch, TR_NOWAIT, &m), TR_ETIMEDOUT);
  ck_assert_int_eq(tr_chan_send_timeout(ch, hq_new(1), TR_NOWAIT), 0);
  ck_assert_int_eq(tr_chan_send_timeout(ch, hq_new(2), TR_NOWAIT), TR_EAGAIN);
  ck_assert_uint_lt(tu_now_ms() - t0, 1000);
  /* huge: waits, then the value arrives from another thread's receive */
  ck_assert_int_eq(tr_chan_recv(ch, INT64_MAX, &m), 0);
  tr_msg_free(m);
  ck_assert_int_eq(tr_chan_send_timeout(ch, hq_new(3), INT64_MAX), 0);
  ck_assert_int_eq(tr_chan_recv(ch, TR_FOREVER, &m), 0);
  tr_msg_free(m);
  tr_chan_free(ch);
  tr_chan_sender_drop(ch);
  tr_handle_free(h);
  tu_runtime_finish(rt);
}
END_TEST

struct delayed {
  tr_ref_t to;
  unsigned ms;
};

static void *send_later(void *arg) {
  struct delayed *d = arg;
  note_t *n = note_new(77);
  tu_sleep_ms(d->ms);
  if (n == NULL || tr_send(NULL, d->to, n) != 0) {
    atomic_fetch_add(&errors, 1);
  }
  return NULL;
}

START_TEST(test_tr_handle_receive_wakes) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_handle_t *h = handle(rt);
  struct delayed d;
  pthread_t th;
  void *m = NULL;
  reset();
  d.to = tr_handle_ref(h);
  d.ms = 50;
  ck_assert_int_eq(pthread_create(&th, NULL, send_later, &d), 0);
  ck_assert_int_eq(tr_handle_receive(h, -1, &m), 0);
  expect_reply(m, TR_TYPE(note_t), 77);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  ck_assert_uint_eq(atomic_load(&errors), 0);
  tr_handle_free(h);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_handle_call_reply) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_handle_t *h = handle(rt);
  tr_ref_t e;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &echo, NULL, &e), 0);
  for (uint64_t i = 0; i < 200; i++) {
    void *r = NULL;
    ck_assert_int_eq(tr_handle_call(h, e, hq_new(i), 10000, &r), 0);
    ck_assert(tr_ref_eq(tr_msg_sender(r), e));
    expect_reply(r, TR_TYPE(hq_t), i + 1);
  }
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&hq_freed), 400); /* requests + replies */
  ck_assert_uint_eq(atomic_load(&errors), 0);
  tr_handle_free(h);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_handle_call_timeout) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_handle_t *h = handle(rt);
  tr_ref_t s, e;
  void *r = NULL;
  uint64_t t0, dt;
  int rc;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &stash, NULL, &s), 0);
  ck_assert_int_eq(tr_spawn(rt, &echo, NULL, &e), 0);
  t0 = tu_now_ns();
  ck_assert_int_eq(tr_handle_call(h, s, hq_new(1), 100, &r), TR_ETIMEDOUT);
  dt = tu_now_ns() - t0;
  ck_assert_msg(dt + 1000000u >= 100000000u, "call timed out after %llu us",
                (unsigned long long)(dt / 1000));
  ck_assert_uint_eq(atomic_load(&stashed), 1);
  /* The late reply must not be taken for the answer to the next call. */
  ck_assert_int_eq(tr_send(NULL, s, note_new(0)), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  r = NULL;
  ck_assert_int_eq(tr_handle_call(h, e, hq_new(10), 10000, &r), 0);
  expect_reply(r, TR_TYPE(hq_t), 11);
  /* Whatever is left (the late reply, if the handle kept it) is ours. */
  while ((rc = tr_handle_receive(h, 50, &r)) == 0)
    tr_msg_free(r);
  ck_assert_int_eq(rc, TR_ETIMEDOUT);
  tr_handle_free(h);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_handle_call_enoreply) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_handle_t *h = handle(rt);
  tr_ref_t d;
  void *r = NULL;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &drop, NULL, &d), 0);
  ck_assert_int_eq(tr_handle_call(h, d, hq_new(1), 10000, &r), TR_ENOREPLY);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&hq_freed), 1);
  tr_handle_free(h);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_handle_call_dead_actor) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_handle_t *h = handle(rt);
  tr_ref_t e, n;
  hq_t *q = hq_new(3);
  void *r = NULL;
  uint64_t t0;
  reset();
  ck_assert_ptr_nonnull(q);
  ck_assert_int_eq(tr_spawn(rt, &echo, NULL, &e), 0);
  ck_assert_int_eq(tr_spawn(rt, &notes_only, NULL, &n), 0);
  ck_assert_int_eq(tr_actor_stop(e, TR_EXIT_NORMAL), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  t0 = tu_now_ms();
  ck_assert_int_eq(tr_handle_call(h, e, hq_new(3), 10000, &r), TR_ENOACTOR);
  ck_assert_int_eq(tr_handle_call(h, TR_REF_NULL, hq_new(3), 10000, &r),
                   TR_ENOACTOR);
  ck_assert_int_eq(tr_handle_call(h, n, hq_new(3), 10000, &r), TR_EBADMSG);
  ck_assert_int_eq(tr_handle_call(h, n, hq_new(3), -2, &r), TR_EINVAL);
  ck_assert_uint_lt(tu_now_ms() - t0, 5000); /* failed at once */
  /* Every failed call consumed its request (the ownership rule)... */
  ck_assert_uint_eq(atomic_load(&hq_freed), 4);
  /* ...unless the caller asked to keep it. */
  ck_assert_int_eq(tr_send_ex(NULL, e, q, TR_SEND_KEEP), TR_ENOACTOR);
  ck_assert_uint_eq(q->v, 3);
  ck_assert_uint_eq(atomic_load(&hq_freed), 4);
  ck_assert_int_eq(tr_handle_send(h, e, q), TR_ENOACTOR);
  ck_assert_uint_eq(atomic_load(&hq_freed), 5);
  tr_handle_free(h);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_handle_call_keeps_other_messages) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_handle_t *h = handle(rt);
  tr_ref_t c;
  void *r = NULL;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &chatty, NULL, &c), 0);
  /* Queued before the call... */
  ck_assert_int_eq(tr_send(NULL, tr_handle_ref(h), note_new(0)), 0);
  /* ...and arriving during it. */
  ck_assert_int_eq(tr_handle_call(h, c, hq_new(41), 10000, &r), 0);
  expect_reply(r, TR_TYPE(hq_t), 42);
  for (uint64_t i = 0; i <= 2; i++) {
    r = NULL;
    ck_assert_int_eq(tr_handle_receive(h, 10000, &r), 0);
    expect_reply(r, TR_TYPE(note_t), i);
  }
  ck_assert_int_eq(tr_handle_receive(h, 50, &r), TR_ETIMEDOUT);
  ck_assert_uint_eq(atomic_load(&errors), 0);
  tr_handle_free(h);
  tu_runtime_finish(rt);
}
END_TEST

/* tr_handle_receive_type takes the first message of one type; messages
 * of other types stay queued in their order. */
START_TEST(test_tr_handle_receive_type_keeps_others) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_handle_t *h = handle(rt);
  tr_ref_t me = tr_handle_ref(h);
  void *m = NULL;
  reset();
  ck_assert_int_eq(tr_send(NULL, me, note_new(0)), 0);
  ck_assert_int_eq(tr_send(NULL, me, hq_new(10)), 0);
  ck_assert_int_eq(tr_send(NULL, me, note_new(1)), 0);
  ck_assert_int_eq(tr_send(NULL, me, hq_new(11)), 0);
  ck_assert_int_eq(tr_send(NULL, me, note_new(2)), 0);
  ck_assert_int_eq(tr_handle_receive_type(h, TR_TYPE(hq_t), 10000, &m), 0);
  expect_reply(m, TR_TYPE(hq_t), 10);
  ck_assert_int_eq(tr_handle_receive_type(h, TR_TYPE(hq_t), TR_NOWAIT, &m), 0);
  expect_reply(m, TR_TYPE(hq_t), 11);
  /* none left of that type: a timeout, the others untouched */
  m = NULL;
  ck_assert_int_eq(tr_handle_receive_type(h, TR_TYPE(hq_t), TR_NOWAIT, &m),
                   TR_ETIMEDOUT);
  ck_assert_int_eq(tr_handle_receive_type(h, TR_TYPE(hq_t), 30, &m),
                   TR_ETIMEDOUT);
  ck_assert_ptr_null(m);
  for (uint64_t i = 0; i <= 2; i++) {
    ck_assert_int_eq(tr_handle_receive(h, 10000, &m), 0);
    expect_reply(m, TR_TYPE(note_t), i);
  }
  ck_assert_int_eq(tr_handle_receive(h, TR_NOWAIT, &m), TR_ETIMEDOUT);
  ck_assert_int_eq(tr_handle_receive_type(NULL, TR_TYPE(hq_t), 0, &m),
                   TR_EINVAL);
  ck_assert_int_eq(tr_handle_receive_type(h, NULL, 0, &m), TR_EINVAL);
  ck_assert_int_eq(tr_handle_receive_type(h, TR_TYPE(hq_t), 0, NULL),
                   TR_EINVAL);
  ck_assert_int_eq(tr_handle_receive_type(h, TR_TYPE(hq_t), -2, &m),
                   TR_EINVAL);
  tr_handle_free(h);
  tu_runtime_finish(rt);
}
END_TEST

/* Sends notes 1..3, then an hq 9, from another thread after a pause. */
static void *send_notes_then_hq(void *arg) {
  tr_ref_t to = *(tr_ref_t *)arg;
  tu_sleep_ms(30);
  for (uint64_t i = 1; i <= 3; i++)
    if (tr_send(NULL, to, note_new(i)) != 0)
      atomic_fetch_add(&errors, 1);
  tu_sleep_ms(30);
  if (tr_send(NULL, to, hq_new(9)) != 0)
    atomic_fetch_add(&errors, 1);
  return NULL;
}

/* A waiting tr_handle_receive_type is woken by other mail, goes back to
 * waiting, and returns once its type arrives. */
START_TEST(test_tr_handle_receive_type_waits_past_others) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_handle_t *h = handle(rt);
  tr_ref_t me = tr_handle_ref(h);
  pthread_t th;
  void *m = NULL;
  reset();
  ck_assert_int_eq(pthread_create(&th, NULL, send_notes_then_hq, &me), 0);
  ck_assert_int_eq(tr_handle_receive_type(h, TR_TYPE(hq_t), TR_FOREVER, &m),
                   0);
  expect_reply(m, TR_TYPE(hq_t), 9);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  for (uint64_t i = 1; i <= 3; i++) {
    ck_assert_int_eq(tr_handle_receive(h, 10000, &m), 0);
    expect_reply(m, TR_TYPE(note_t), i);
  }
  ck_assert_uint_eq(atomic_load(&errors), 0);
  tr_handle_free(h);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_handle_free_ref_dead) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_handle_t *h = handle(rt);
  tr_ref_t hr = tr_handle_ref(h);
  note_t *n = note_new(1);
  ck_assert_ptr_nonnull(n);
  tr_handle_free(h);
  ck_assert_int_eq(tr_send(NULL, hr, n), TR_ENOACTOR);
  tu_runtime_finish(rt);
}
END_TEST

struct caller {
  tr_runtime_t *rt;
  tr_ref_t echo;
  uint64_t id;
  unsigned calls;
};

static void *caller_main(void *arg) {
  struct caller *c = arg;
  tr_handle_t *h = NULL;
  if (tr_handle_new(c->rt, &h) != 0) {
    atomic_fetch_add(&errors, 1);
    return NULL;
  }
  for (unsigned i = 0; i < c->calls; i++) {
    uint64_t v = c->id * 1000000u + i;
    void *r = NULL;
    hq_t *q = hq_new(v);
    int rc;
    if (q == NULL) {
      atomic_fetch_add(&errors, 1);
      break;
    }
    rc = tr_handle_call(h, c->echo, q, 30000, &r);
    if (rc != 0) {
      atomic_fetch_add(&errors, 1);
      continue;
    }
    if (tr_msg_type(r) != TR_TYPE(hq_t) || ((hq_t *)r)->v != v + 1)
      atomic_fetch_add(&errors, 1);
    tr_msg_free(r);
  }
  tr_handle_free(h);
  return NULL;
}

START_TEST(test_tr_handle_call_threads) {
  enum { NT = 4 };
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  struct caller c[NT];
  pthread_t th[NT];
  tr_ref_t e[2];
  reset();
  ck_assert_int_eq(tr_spawn(rt, &echo, NULL, &e[0]), 0);
  ck_assert_int_eq(tr_spawn(rt, &echo, NULL, &e[1]), 0);
  for (int i = 0; i < NT; i++) {
    c[i].rt = rt;
    c[i].echo = e[i % 2];
    c[i].id = (uint64_t)i + 1;
    c[i].calls = TU_TSAN ? 500 : 3000;
    ck_assert_int_eq(pthread_create(&th[i], NULL, caller_main, &c[i]), 0);
  }
  for (int i = 0; i < NT; i++)
    ck_assert_int_eq(pthread_join(th[i], NULL), 0);
  ck_assert_uint_eq(atomic_load(&errors), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&hq_freed), 2u * NT * c[0].calls);
  tu_runtime_finish(rt);
}
END_TEST

static Suite *handle_suite(void) {
  Suite *s = suite_create("handle");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_tr_handle_new_ref);
  tcase_add_test(tc, test_tr_handle_send_receive);
  tcase_add_test(tc, test_tr_handle_receive_timeout);
  tcase_add_test(tc, test_duration_convention);
  tcase_add_test(tc, test_tr_handle_receive_wakes);
  tcase_add_test(tc, test_tr_handle_call_reply);
  tcase_add_test(tc, test_tr_handle_call_timeout);
  tcase_add_test(tc, test_tr_handle_call_enoreply);
  tcase_add_test(tc, test_tr_handle_call_dead_actor);
  tcase_add_test(tc, test_tr_handle_call_keeps_other_messages);
  tcase_add_test(tc, test_tr_handle_free_ref_dead);
  tcase_add_test(tc, test_tr_handle_receive_type_keeps_others);
  tcase_add_test(tc, test_tr_handle_receive_type_waits_past_others);
  tcase_add_test(tc, test_tr_handle_call_threads);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(handle_suite()); }
