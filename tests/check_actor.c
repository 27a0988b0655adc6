/* SPDX-License-Identifier: MIT */
/*
 * Tests of actors (<troupe/actor.h>, "Actors", "Inside a handler",
 * "Sending"): spawning with state and init (a failing init makes spawn fail
 * and leaks nothing), dispatch by message type, the fallback handler,
 * TR_EBADMSG for types not accepted (the caller keeps the message), stopping
 * by tr_actor_stop (itself or another)/a failing handler with on_stop seeing the
 * reason, TR_ENOACTOR for stopped, null and garbage refs, tr_ctx_take,
 * forwarding a received message, per-actor counters, and that the run
 * budget keeps an actor with a long mailbox from starving another.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <troupe.h>

#include "testutil.h"

TR_MESSAGE_TYPE(num_t, uint64_t v;)
TR_MESSAGE_TYPE(other_t, int x;)
TR_MESSAGE_TYPE(keep_t, uint64_t v;)
TR_MESSAGE_TYPE(stopme_t, int reason;)
TR_MESSAGE_TYPE(tagged_t, uint32_t who;)
TR_MESSAGE_TYPE(urgent_t, int unused;)
TR_MESSAGE_TYPE(spawnreq_t, uint64_t v;)

static _Atomic uint64_t num_freed, other_freed, keep_freed;
static void num_dtor(void *m) {
  (void)m;
  atomic_fetch_add(&num_freed, 1);
}
static void other_dtor(void *m) {
  (void)m;
  atomic_fetch_add(&other_freed, 1);
}
static void keep_dtor(void *m) {
  (void)m;
  atomic_fetch_add(&keep_freed, 1);
}
TR_MESSAGE_DEFINE(num_t, .dtor = num_dtor);
TR_MESSAGE_DEFINE(other_t, .dtor = other_dtor);
TR_MESSAGE_DEFINE(keep_t, .dtor = keep_dtor);
TR_MESSAGE_DEFINE(stopme_t);
TR_MESSAGE_DEFINE(tagged_t);
TR_MESSAGE_DEFINE(urgent_t, .flags = TR_MSG_SYSTEM);
TR_MESSAGE_DEFINE(spawnreq_t);

/* Observations made by actors, read by the test thread. */
static _Atomic uint64_t handled, other_handled, fallback_calls, stops;
static _Atomic uint64_t errors, after_stop_ran, init_calls;
static _Atomic int last_reason;
static _Atomic(const void *) seen_type;
static _Atomic uint64_t seen_value, seen_n, init_self;
static _Atomic(void *) init_state, handler_state, init_arg;
static _Atomic(tr_runtime_t *) init_rt;
static _Atomic int init_state_zero, init_send_rc;
static _Atomic uint64_t expect_sender;

static void reset(void) {
  atomic_store(&num_freed, 0);
  atomic_store(&other_freed, 0);
  atomic_store(&keep_freed, 0);
  atomic_store(&handled, 0);
  atomic_store(&other_handled, 0);
  atomic_store(&fallback_calls, 0);
  atomic_store(&stops, 0);
  atomic_store(&errors, 0);
  atomic_store(&after_stop_ran, 0);
  atomic_store(&init_calls, 0);
  atomic_store(&last_reason, -1234);
  atomic_store(&seen_type, NULL);
  atomic_store(&seen_value, 0);
  atomic_store(&seen_n, 0);
  atomic_store(&init_self, 0);
  atomic_store(&init_state, NULL);
  atomic_store(&handler_state, NULL);
  atomic_store(&init_arg, NULL);
  atomic_store(&init_rt, NULL);
  atomic_store(&init_state_zero, 0);
  atomic_store(&init_send_rc, 1);
  atomic_store(&expect_sender, 0);
}

static void note_stop(tr_ctx_t *ctx, void *state, int reason) {
  (void)ctx;
  (void)state;
  atomic_store(&last_reason, reason);
  atomic_fetch_add(&stops, 1);
}

static int count_num(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  if (tr_msg_type(msg) != TR_TYPE(num_t))
    atomic_fetch_add(&errors, 1);
  atomic_fetch_add(&handled, 1);
  return 0;
}

static int count_other(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  if (tr_msg_type(msg) != TR_TYPE(other_t))
    atomic_fetch_add(&errors, 1);
  atomic_fetch_add(&other_handled, 1);
  return 0;
}

static num_t *num_new(uint64_t v) {
  num_t *m = num_t_new();
  ck_assert_ptr_nonnull(m);
  m->v = v;
  return m;
}

static void send_nums(tr_ref_t to, uint64_t first, unsigned n) {
  for (unsigned i = 0; i < n; i++)
    ck_assert_int_eq(tr_send(NULL, to, num_new(first + i)), 0);
}

/* ---- spawn, state and init --------------------------------------------- */

typedef struct probe_state {
  uint64_t n;
  unsigned char pad[240];
} probe_state_t;

static int probe_init(tr_ctx_t *ctx, void *state, void *arg) {
  const unsigned char *p = state;
  int zero = 1;
  for (size_t i = 0; i < sizeof(probe_state_t); i++)
    zero &= p[i] == 0;
  atomic_store(&init_state_zero, zero);
  atomic_store(&init_state, state);
  atomic_store(&init_arg, arg);
  atomic_store(&init_self, tr_ctx_self(ctx).id);
  atomic_store(&init_rt, tr_ctx_runtime(ctx));
  atomic_fetch_add(&init_calls, 1);
  /* Dirty the state: the next actor must still get zeroed state. */
  memset(((probe_state_t *)state)->pad, 0x5a, sizeof(probe_state_t) - 8);
  return 0;
}

static int probe_on_num(tr_ctx_t *ctx, void *state, void *msg) {
  probe_state_t *s = state;
  s->n++;
  atomic_store(&seen_n, s->n);
  atomic_store(&handler_state, state);
  atomic_store(&seen_value, ((num_t *)msg)->v);
  if (!tr_ref_eq(tr_ctx_self(ctx), (tr_ref_t){atomic_load(&init_self)}))
    atomic_fetch_add(&errors, 1);
  atomic_fetch_add(&handled, 1);
  return 0;
}

static const tr_handler_t probe_handlers[] = {{.type = TR_TYPE(num_t), .fn = probe_on_num}};
static const tr_behavior_t probe = {
    .name = "probe",
    .state_size = sizeof(probe_state_t),
    .init = probe_init,
    .on_stop = note_stop,
    .handlers = TR_HANDLERS(probe_handlers),
};

START_TEST(test_tr_spawn_state_and_init) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t r, r2;
  int token;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &probe, &token, &r), 0);
  ck_assert(!tr_ref_is_null(r));
  /* init ran before spawn returned, with a zeroed state and the arg. */
  ck_assert_uint_eq(atomic_load(&init_calls), 1);
  ck_assert_int_eq(atomic_load(&init_state_zero), 1);
  ck_assert_ptr_eq(atomic_load(&init_arg), &token);
  ck_assert_ptr_eq(atomic_load(&init_rt), rt);
  ck_assert_uint_eq(atomic_load(&init_self), r.id);
  ck_assert(tr_actor_alive(r));
  /* The state persists across handlers and is the one init saw. */
  send_nums(r, 1, 3);
  ck_assert(tu_wait_ge(&handled, 3, 10000));
  ck_assert_uint_eq(atomic_load(&seen_n), 3);
  ck_assert_ptr_eq(atomic_load(&handler_state), atomic_load(&init_state));
  ck_assert_uint_eq(atomic_load(&errors), 0);
  /* A second actor of the same kind gets its own, zeroed state. */
  ck_assert_int_eq(tr_spawn(rt, &probe, NULL, &r2), 0);
  ck_assert(!tr_ref_eq(r, r2));
  ck_assert_int_eq(atomic_load(&init_state_zero), 1);
  ck_assert_ptr_null(atomic_load(&init_arg));
  tu_runtime_finish(rt);
  ck_assert_uint_eq(atomic_load(&stops), 2);
}
END_TEST

static int failinit_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)state;
  (void)arg;
  atomic_fetch_add(&init_calls, 1);
  /* Mail to itself must be dropped (and freed) when spawn fails. */
  atomic_store(&init_send_rc, tr_send(ctx, tr_ctx_self(ctx), num_new(1)));
  return TR_EPERM;
}

static const tr_behavior_t failinit = {
    .name = "failinit",
    .state_size = 64,
    .init = failinit_init,
    .handlers = TR_HANDLERS(probe_handlers),
};

START_TEST(test_tr_spawn_init_error) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_runtime_stats_t st;
  tr_ref_t r = TR_REF_NULL, good;
  reset();
  for (int i = 0; i < 100; i++)
    ck_assert_int_eq(tr_spawn(rt, &failinit, NULL, &r), TR_EPERM);
  ck_assert_uint_eq(atomic_load(&init_calls), 100);
  ck_assert_int_eq(atomic_load(&init_send_rc), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert(tu_wait_ge(&num_freed, 100, 10000));
  ck_assert_uint_eq(atomic_load(&num_freed), 100);
  ck_assert_uint_eq(atomic_load(&handled), 0);
  ck_assert_int_eq(tr_runtime_stats(rt, &st), 0);
  ck_assert_uint_eq(st.actors_live, 0);
  /* The runtime is still fine. */
  ck_assert_int_eq(tr_spawn(rt, &probe, NULL, &good), 0);
  send_nums(good, 1, 1);
  ck_assert(tu_wait_ge(&handled, 1, 10000));
  ck_assert_int_eq(tr_runtime_stats(rt, &st), 0);
  ck_assert_uint_eq(st.actors_live, 1);
  tu_runtime_finish(rt);
}
END_TEST

/* ---- dispatch ---------------------------------------------------------- */

static const tr_handler_t two_handlers[] = {
    {.type = TR_TYPE(num_t), .fn = count_num},
    {.type = TR_TYPE(other_t), .fn = count_other},
};
static const tr_behavior_t two = {
    .name = "two",
    .handlers = TR_HANDLERS(two_handlers),
};

START_TEST(test_tr_send_dispatch_by_type) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t r;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &two, NULL, &r), 0);
  for (int i = 0; i < 30; i++) {
    if (i % 3 == 0) {
      other_t *o = other_t_new();
      ck_assert_ptr_nonnull(o);
      ck_assert_int_eq(tr_send(NULL, r, o), 0);
    } else {
      ck_assert_int_eq(tr_send(NULL, r, num_new((uint64_t)i)), 0);
    }
  }
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&handled), 20);
  ck_assert_uint_eq(atomic_load(&other_handled), 10);
  ck_assert_uint_eq(atomic_load(&errors), 0);
  ck_assert_uint_eq(atomic_load(&num_freed), 20);
  ck_assert_uint_eq(atomic_load(&other_freed), 10);
  tu_runtime_finish(rt);
}
END_TEST

static int fb_handler(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  atomic_store(&seen_type, (const void *)tr_msg_type(msg));
  atomic_fetch_add(&fallback_calls, 1);
  return 0;
}

static const tr_handler_t num_only[] = {{.type = TR_TYPE(num_t), .fn = count_num}};
static const tr_behavior_t withfb = {
    .name = "withfb",
    .handlers = TR_HANDLERS(num_only),
    .fallback = fb_handler,
};
static const tr_behavior_t nofb = {
    .name = "nofb",
    .on_stop = note_stop,
    .handlers = TR_HANDLERS(num_only),
};

START_TEST(test_tr_send_fallback) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t r;
  other_t *o = other_t_new();
  reset();
  ck_assert_ptr_nonnull(o);
  ck_assert_int_eq(tr_spawn(rt, &withfb, NULL, &r), 0);
  ck_assert_int_eq(tr_send(NULL, r, o), 0);
  send_nums(r, 1, 2);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&fallback_calls), 1);
  ck_assert_ptr_eq(atomic_load(&seen_type), TR_TYPE(other_t));
  ck_assert_uint_eq(atomic_load(&handled), 2); /* not via the fallback */
  ck_assert_uint_eq(atomic_load(&other_freed), 1);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_send_not_accepted) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t r, r2;
  other_t *o = other_t_new();
  reset();
  ck_assert_ptr_nonnull(o);
  o->x = 4242;
  ck_assert_int_eq(tr_spawn(rt, &nofb, NULL, &r), 0);
  ck_assert_int_eq(tr_send_ex(NULL, r, o, TR_SEND_KEEP), TR_EBADMSG);
  /* Kept as asked: an intact message the caller may send elsewhere. */
  ck_assert_int_eq(o->x, 4242);
  ck_assert_ptr_eq(tr_msg_type(o), TR_TYPE(other_t));
  ck_assert_uint_eq(atomic_load(&other_freed), 0);
  ck_assert_int_eq(tr_spawn(rt, &two, NULL, &r2), 0);
  ck_assert_int_eq(tr_send(NULL, r2, o), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&other_handled), 1);
  ck_assert_uint_eq(atomic_load(&other_freed), 1);
  /* A plain send that fails consumes the message at once. */
  o = other_t_new();
  ck_assert_ptr_nonnull(o);
  ck_assert_int_eq(tr_send(NULL, r, o), TR_EBADMSG);
  ck_assert_uint_eq(atomic_load(&other_freed), 2);
  /* The rejecting actor is unharmed. */
  ck_assert(tr_actor_alive(r));
  ck_assert_uint_eq(atomic_load(&stops), 0);
  send_nums(r, 1, 1);
  ck_assert(tu_wait_ge(&handled, 1, 10000));
  tu_runtime_finish(rt);
}
END_TEST

/* ---- stopping ---------------------------------------------------------- */

static int stopper_on_stopme(tr_ctx_t *ctx, void *state, void *msg) {
  (void)state;
  tr_actor_stop(tr_ctx_self(ctx), ((stopme_t *)msg)->reason);
  /* a stop of itself takes effect after the handler returns. */
  atomic_fetch_add(&after_stop_ran, 1);
  return 0;
}

static const tr_handler_t stopper_handlers[] = {
    {.type = TR_TYPE(num_t), .fn = count_num},
    {.type = TR_TYPE(stopme_t), .fn = stopper_on_stopme},
};
static const tr_behavior_t stopper = {
    .name = "stopper",
    .on_stop = note_stop,
    .handlers = TR_HANDLERS(stopper_handlers),
};

/* A failed send with TR_SEND_KEEP leaves the message intact with the
 * caller; a plain one consumes it (the handle-side tests count frees). */
static void assert_send_enoactor(tr_ref_t r) {
  num_t *m = num_new(99);
  ck_assert_int_eq(tr_send_ex(NULL, r, m, TR_SEND_KEEP), TR_ENOACTOR);
  ck_assert_uint_eq(m->v, 99);
  ck_assert_ptr_eq(tr_msg_type(m), TR_TYPE(num_t));
  ck_assert_int_eq(tr_send(NULL, r, m), TR_ENOACTOR);
}

START_TEST(test_tr_actor_stop_self_from_handler) {
  tr_runtime_t *rt = tu_runtime(2, 0, 0);
  tr_runtime_stats_t st;
  stopme_t *sm = stopme_t_new();
  tr_ref_t r;
  reset();
  ck_assert_ptr_nonnull(sm);
  sm->reason = TR_EXIT_NORMAL;
  ck_assert_int_eq(tr_spawn(rt, &stopper, NULL, &r), 0);
  /* Queued before the start: num, stop, num, num. */
  send_nums(r, 1, 1);
  ck_assert_int_eq(tr_send(NULL, r, sm), 0);
  send_nums(r, 2, 2);
  ck_assert_int_eq(tr_runtime_start(rt), 0);
  ck_assert(tu_wait_ge(&stops, 1, 10000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_int_eq(atomic_load(&last_reason), TR_EXIT_NORMAL);
  ck_assert_uint_eq(atomic_load(&after_stop_ran), 1);
  ck_assert_uint_eq(atomic_load(&handled), 1);
  ck_assert_uint_eq(atomic_load(&num_freed), 3);
  ck_assert_int_eq(tr_runtime_stats(rt, &st), 0);
  ck_assert_uint_eq(st.dead_letters, 2);
  ck_assert(!tr_actor_alive(r));
  assert_send_enoactor(r);
  ck_assert_uint_eq(atomic_load(&stops), 1);
  tu_runtime_finish(rt);
  ck_assert_uint_eq(atomic_load(&stops), 1); /* on_stop ran once */
}
END_TEST

START_TEST(test_tr_actor_stop_reason) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_actor_stats_t as;
  tr_ref_t r;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &stopper, NULL, &r), 0);
  send_nums(r, 1, 5);
  ck_assert(tu_wait_ge(&handled, 5, 10000));
  ck_assert_int_eq(tr_actor_stop(r, TR_EXIT_KILLED), 0);
  ck_assert(tu_wait_ge(&stops, 1, 10000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_int_eq(atomic_load(&last_reason), TR_EXIT_KILLED);
  ck_assert(!tr_actor_alive(r));
  assert_send_enoactor(r);
  ck_assert_int_eq(tr_actor_stop(r, TR_EXIT_NORMAL), TR_ENOACTOR);
  ck_assert_int_eq(tr_actor_stats(r, &as), TR_ENOACTOR);
  tu_runtime_finish(rt);
  ck_assert_uint_eq(atomic_load(&stops), 1);
}
END_TEST

START_TEST(test_tr_actor_stop_overtakes_data) {
  tr_runtime_t *rt = tu_runtime(2, 0, 0);
  tr_runtime_stats_t st;
  tr_ref_t r;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &stopper, NULL, &r), 0);
  send_nums(r, 1, 10);
  ck_assert_int_eq(tr_actor_stop(r, TR_EXIT_NORMAL), 0);
  ck_assert_int_eq(tr_runtime_start(rt), 0);
  ck_assert(tu_wait_ge(&stops, 1, 10000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&handled), 0);
  ck_assert_uint_eq(atomic_load(&num_freed), 10);
  ck_assert_int_eq(tr_runtime_stats(rt, &st), 0);
  ck_assert_uint_eq(st.dead_letters, 10);
  tu_runtime_finish(rt);
}
END_TEST

static int failer_on_num(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  atomic_fetch_add(&handled, 1);
  return ((num_t *)msg)->v == 3 ? TR_EFAILED : 0;
}
static const tr_handler_t failer_handlers[] = {
    {.type = TR_TYPE(num_t), .fn = failer_on_num}};
static const tr_behavior_t failer = {
    .name = "failer",
    .on_stop = note_stop,
    .handlers = TR_HANDLERS(failer_handlers),
};

START_TEST(test_tr_send_handler_error_stops) {
  tr_runtime_t *rt = tu_runtime(2, 0, 0);
  tr_runtime_stats_t st;
  tr_ref_t r;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &failer, NULL, &r), 0);
  send_nums(r, 1, 10);
  ck_assert_int_eq(tr_runtime_start(rt), 0);
  ck_assert(tu_wait_ge(&stops, 1, 10000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_int_eq(atomic_load(&last_reason), TR_EFAILED);
  ck_assert_uint_eq(atomic_load(&handled), 3);
  ck_assert_uint_eq(atomic_load(&num_freed), 10);
  ck_assert_int_eq(tr_runtime_stats(rt, &st), 0);
  ck_assert_uint_eq(st.dead_letters, 7);
  ck_assert_uint_eq(st.actors_live, 0);
  assert_send_enoactor(r);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_send_bad_refs) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t live, dead;
  uint64_t x = 0x243f6a8885a308d3ull;
  static const uint64_t fixed[] = {
      UINT64_MAX, 0xdeadbeefdeadbeefull, 0x8000000000000000ull,
      0x00000000ffffffffull, 0xffffffff00000000ull};
  reset();
  ck_assert_int_eq(tr_spawn(rt, &stopper, NULL, &live), 0);
  ck_assert_int_eq(tr_spawn(rt, &stopper, NULL, &dead), 0);
  ck_assert_int_eq(tr_actor_stop(dead, TR_EXIT_NORMAL), 0);
  ck_assert(tu_wait_ge(&stops, 1, 10000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  assert_send_enoactor(dead);
  assert_send_enoactor(TR_REF_NULL);
  ck_assert_int_eq(tr_actor_stop(TR_REF_NULL, 0), TR_ENOACTOR);
  ck_assert(!tr_actor_alive(TR_REF_NULL));
  for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
    if (fixed[i] == live.id)
      continue;
    assert_send_enoactor((tr_ref_t){fixed[i]});
    ck_assert(!tr_actor_alive((tr_ref_t){fixed[i]}));
  }
  for (int i = 0; i < 20000; i++) {
    tr_ref_t g;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    g.id = x;
    if (g.id == live.id || g.id == 0)
      continue;
    assert_send_enoactor(g);
  }
  /* Stale generations of the dead actor's neighbourhood. */
  for (uint64_t d = 1; d < 64; d++) {
    tr_ref_t g = {dead.id ^ (d << 32)};
    if (g.id != live.id)
      assert_send_enoactor(g);
  }
  ck_assert(tr_actor_alive(live));
  send_nums(live, 1, 1);
  ck_assert(tu_wait_ge(&handled, 1, 10000));
  tu_runtime_finish(rt);
}
END_TEST

/* ---- ownership: take and forward --------------------------------------- */

typedef struct taker_state {
  keep_t *stash;
} taker_state_t;

static int taker_on_keep(tr_ctx_t *ctx, void *state, void *msg) {
  taker_state_t *s = state;
  tr_ctx_take(ctx);
  s->stash = msg;
  atomic_fetch_add(&other_handled, 1);
  return 0;
}

static int taker_on_num(tr_ctx_t *ctx, void *state, void *msg) {
  taker_state_t *s = state;
  (void)ctx;
  (void)msg;
  if (s->stash != NULL) {
    atomic_store(&seen_value, s->stash->v);
    tr_msg_free(s->stash);
    s->stash = NULL;
  }
  atomic_fetch_add(&handled, 1);
  return 0;
}

static const tr_handler_t taker_handlers[] = {
    {.type = TR_TYPE(keep_t), .fn = taker_on_keep},
    {.type = TR_TYPE(num_t), .fn = taker_on_num},
};
static const tr_behavior_t taker = {
    .name = "taker",
    .state_size = sizeof(taker_state_t),
    .handlers = TR_HANDLERS(taker_handlers),
};

START_TEST(test_tr_ctx_take_keeps_message) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  keep_t *k = keep_t_new();
  tr_ref_t r;
  reset();
  ck_assert_ptr_nonnull(k);
  k->v = 123456789;
  ck_assert_int_eq(tr_spawn(rt, &taker, NULL, &r), 0);
  ck_assert_int_eq(tr_send(NULL, r, k), 0);
  ck_assert(tu_wait_ge(&other_handled, 1, 10000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&keep_freed), 0); /* still held */
  /* Churn the allocator so a wrongly freed message would be reused. */
  send_nums(r, 1000, 200);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&seen_value), 123456789);
  ck_assert_uint_eq(atomic_load(&keep_freed), 1);
  tu_runtime_finish(rt);
  ck_assert_uint_eq(atomic_load(&keep_freed), 1);
}
END_TEST

typedef struct fwd_state {
  tr_ref_t next;
} fwd_state_t;

static int fwd_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  ((fwd_state_t *)state)->next = *(const tr_ref_t *)arg;
  return 0;
}

static int fwd_on_num(tr_ctx_t *ctx, void *state, void *msg) {
  fwd_state_t *s = state;
  int rc = tr_send(ctx, s->next, msg);
  if (rc != 0 && rc != TR_ENOACTOR)
    atomic_fetch_add(&errors, 1);
  if (rc == TR_ENOACTOR)
    atomic_fetch_add(&other_handled, 1); /* failed forwards */
  return 0;
}

static int sink_on_num(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  if (tr_msg_sender(msg).id != atomic_load(&expect_sender))
    atomic_fetch_add(&errors, 1);
  atomic_fetch_add(&seen_value, ((num_t *)msg)->v);
  atomic_fetch_add(&handled, 1);
  return 0;
}

static const tr_handler_t fwd_handlers[] = {{.type = TR_TYPE(num_t), .fn = fwd_on_num}};
static const tr_behavior_t fwd = {
    .name = "fwd",
    .state_size = sizeof(fwd_state_t),
    .init = fwd_init,
    .handlers = TR_HANDLERS(fwd_handlers),
};
static const tr_handler_t sink_handlers[] = {{.type = TR_TYPE(num_t), .fn = sink_on_num}};
static const tr_behavior_t sink = {
    .name = "sink",
    .handlers = TR_HANDLERS(sink_handlers),
};

START_TEST(test_tr_send_forward_received) {
  enum { N = 2000 };
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t s, f;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &sink, NULL, &s), 0);
  ck_assert_int_eq(tr_spawn(rt, &fwd, &s, &f), 0);
  atomic_store(&expect_sender, f.id);
  send_nums(f, 1, N);
  ck_assert(tu_wait_ge(&handled, N, 10000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&handled), N);
  ck_assert_uint_eq(atomic_load(&seen_value), (uint64_t)N * (N + 1) / 2);
  ck_assert_uint_eq(atomic_load(&errors), 0);
  /* Each message freed exactly once, by the runtime, after the sink. */
  ck_assert_uint_eq(atomic_load(&num_freed), N);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_send_forward_failed) {
  /* A forward that fails leaves the message with the handler, so the
   * runtime frees it when the handler returns: still exactly once. */
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t s, f;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &sink, NULL, &s), 0);
  ck_assert_int_eq(tr_spawn(rt, &fwd, &s, &f), 0);
  ck_assert_int_eq(tr_actor_stop(s, TR_EXIT_NORMAL), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  send_nums(f, 1, 100);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&other_handled), 100);
  ck_assert_uint_eq(atomic_load(&errors), 0);
  ck_assert_uint_eq(atomic_load(&num_freed), 100);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_send_sender_outside_is_null) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_ref_t s;
  reset();
  atomic_store(&expect_sender, 0);
  ck_assert_int_eq(tr_spawn(rt, &sink, NULL, &s), 0);
  send_nums(s, 1, 10);
  ck_assert(tu_wait_ge(&handled, 10, 10000));
  ck_assert_uint_eq(atomic_load(&errors), 0);
  tu_runtime_finish(rt);
}
END_TEST

/* ---- sending from init and handlers ------------------------------------ */

static int selfsend_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)state;
  /* init may send: to itself and to another actor (arg). */
  if (tr_send(ctx, tr_ctx_self(ctx), num_new(1)) != 0)
    return TR_EFAILED;
  if (tr_send(ctx, *(const tr_ref_t *)arg, num_new(2)) != 0)
    return TR_EFAILED;
  return 0;
}

static const tr_behavior_t selfsend = {
    .name = "selfsend",
    .init = selfsend_init,
    .handlers = TR_HANDLERS(num_only),
};

START_TEST(test_tr_spawn_init_sends) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t other, r;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &two, NULL, &other), 0);
  ck_assert_int_eq(tr_spawn(rt, &selfsend, &other, &r), 0);
  ck_assert(tu_wait_ge(&handled, 2, 10000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&handled), 2);
  ck_assert_uint_eq(atomic_load(&num_freed), 2);
  tu_runtime_finish(rt);
}
END_TEST

static int child_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  (void)state;
  (void)arg;
  atomic_fetch_add(&init_calls, 1);
  return 0;
}

static const tr_behavior_t child = {
    .name = "child",
    .init = child_init,
    .on_stop = note_stop,
    .handlers = TR_HANDLERS(num_only),
};

/* parent: spawns a child per request, passes the value on to it. */
static int parent_on_spawnreq(tr_ctx_t *ctx, void *state, void *msg) {
  tr_ref_t kid;
  num_t *n;
  (void)state;
  if (tr_spawn(tr_ctx_runtime(ctx), &child, NULL, &kid) != 0) {
    atomic_fetch_add(&errors, 1);
    return 0;
  }
  n = num_t_new();
  if (n == NULL)
    return TR_ENOMEM;
  n->v = ((spawnreq_t *)msg)->v;
  if (tr_send(ctx, kid, n) != 0)
    atomic_fetch_add(&errors, 1);
  return 0;
}

static const tr_handler_t parent_h[] = {
    {.type = TR_TYPE(spawnreq_t), .fn = parent_on_spawnreq}};
static const tr_behavior_t parent = {.name = "parent",
                                     .handlers = TR_HANDLERS(parent_h)};

START_TEST(test_tr_spawn_from_handler) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_runtime_stats_t st;
  tr_ref_t p;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &parent, NULL, &p), 0);
  for (uint64_t i = 1; i <= 20; i++) {
    spawnreq_t *q = spawnreq_t_new();
    ck_assert_ptr_nonnull(q);
    q->v = i;
    ck_assert_int_eq(tr_send(NULL, p, q), 0);
  }
  ck_assert(tu_wait_ge(&handled, 20, 10000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&init_calls), 20);
  ck_assert_uint_eq(atomic_load(&errors), 0);
  ck_assert_int_eq(tr_runtime_stats(rt, &st), 0);
  ck_assert_uint_eq(st.actors_live, 21);
  ck_assert_uint_eq(st.actors_spawned, 21);
  tu_runtime_finish(rt);
  ck_assert_uint_eq(atomic_load(&stops), 20); /* the children's on_stop */
}
END_TEST

/* ---- system-flagged message types -------------------------------------- */

static _Atomic uint32_t urgent_pos;

static int urgent_on_num(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  (void)msg;
  atomic_fetch_add(&handled, 1);
  return 0;
}

static int urgent_on_urgent(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  (void)msg;
  atomic_store(&urgent_pos, (uint32_t)atomic_load(&handled));
  atomic_fetch_add(&other_handled, 1);
  return 0;
}

static const tr_handler_t urgent_h[] = {
    {.type = TR_TYPE(num_t), .fn = urgent_on_num},
    {.type = TR_TYPE(urgent_t), .fn = urgent_on_urgent},
};
static const tr_behavior_t urgent = {.name = "urgent",
                                     .handlers = TR_HANDLERS(urgent_h)};

START_TEST(test_tr_send_system_flag_first) {
  /* TR_MSG_SYSTEM: served before any data message already queued. */
  tr_runtime_t *rt = tu_runtime(1, 0, 0);
  urgent_t *u = urgent_t_new();
  tr_ref_t r;
  reset();
  atomic_store(&urgent_pos, UINT32_MAX);
  ck_assert_ptr_nonnull(u);
  ck_assert_int_eq(tr_spawn(rt, &urgent, NULL, &r), 0);
  send_nums(r, 1, 50);
  ck_assert_int_eq(tr_send(NULL, r, u), 0);
  ck_assert_int_eq(tr_runtime_start(rt), 0);
  ck_assert(tu_wait_ge(&handled, 50, 10000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&other_handled), 1);
  ck_assert_msg(atomic_load(&urgent_pos) == 0,
                "system-flagged message handled after %u data messages",
                atomic_load(&urgent_pos));
  tu_runtime_finish(rt);
}
END_TEST

/* ---- counters ---------------------------------------------------------- */

START_TEST(test_tr_actor_stats_counters) {
  tr_runtime_t *rt = tu_runtime(1, 0, 0);
  tr_spawn_opts_t opts = {.priority = TR_PRIO_HIGH};
  tr_actor_stats_t as;
  tr_ref_t r, rh;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &probe, NULL, &r), 0);
  ck_assert_int_eq(tr_spawn_ex(rt, &probe, NULL, &opts, &rh), 0);
  send_nums(r, 1, 50);
  ck_assert_int_eq(tr_actor_stats(r, &as), 0);
  ck_assert_uint_eq(as.handled, 0);
  ck_assert_int_eq(tr_runtime_start(rt), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_int_eq(tr_actor_stats(r, &as), 0);
  ck_assert_str_eq(as.name, "probe");
  ck_assert_int_eq(as.priority, TR_PRIO_NORMAL);
  ck_assert_uint_eq(as.handled, 50);
  ck_assert_msg(as.depth_hwm >= 25 && as.depth_hwm <= 50,
                "depth_hwm %llu after 50 queued messages",
                (unsigned long long)as.depth_hwm);
  ck_assert_uint_le(as.depth, as.depth_hwm);
  ck_assert_int_eq(tr_actor_stats(rh, &as), 0);
  ck_assert_int_eq(as.priority, TR_PRIO_HIGH);
  ck_assert_uint_eq(as.handled, 0);
  ck_assert_uint_eq(as.depth_hwm, 0);
  tu_runtime_finish(rt);
}
END_TEST

/* ---- fairness: the budget ---------------------------------------------- */

enum { LOGN = 20000, BUDGET = 50 };
static _Atomic uint32_t log_idx;
static uint8_t order_log[2 * LOGN];

static int tagged_on(tr_ctx_t *ctx, void *state, void *msg) {
  uint32_t i = atomic_fetch_add(&log_idx, 1);
  (void)ctx;
  (void)state;
  if (i < 2 * LOGN)
    order_log[i] = (uint8_t)((tagged_t *)msg)->who;
  atomic_fetch_add(&handled, 1);
  return 0;
}
static const tr_handler_t tagged_handlers[] = {
    {.type = TR_TYPE(tagged_t), .fn = tagged_on}};
static const tr_behavior_t tagged = {
    .name = "tagged",
    .handlers = TR_HANDLERS(tagged_handlers),
};

START_TEST(test_tr_runtime_config_budget_no_starvation) {
  tr_runtime_t *rt = tu_runtime(1, BUDGET, 0);
  tr_ref_t a, b;
  uint32_t switches = 0, run = 1, max_run = 1, joined = UINT32_MAX;
  uint32_t both_end = 0, cnt[2] = {0, 0};
  reset();
  atomic_store(&log_idx, 0);
  ck_assert_int_eq(tr_spawn(rt, &tagged, NULL, &a), 0);
  ck_assert_int_eq(tr_spawn(rt, &tagged, NULL, &b), 0);
  for (uint32_t who = 0; who < 2; who++)
    for (int i = 0; i < LOGN; i++) {
      tagged_t *t = tagged_t_new();
      ck_assert_ptr_nonnull(t);
      t->who = who;
      ck_assert_int_eq(tr_send(NULL, who == 0 ? a : b, t), 0);
    }
  ck_assert_int_eq(tr_runtime_start(rt), 0);
  ck_assert(tu_wait_ge(&handled, 2 * LOGN, 30000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  /* The part of the log where both still had mail. */
  for (uint32_t i = 0; i < 2 * LOGN; i++) {
    cnt[order_log[i]]++;
    if (cnt[0] == LOGN || cnt[1] == LOGN) {
      both_end = i;
      break;
    }
  }
  /* Where the actor that did not run first got its first turn. */
  for (uint32_t i = 1; i < 2 * LOGN; i++)
    if (order_log[i] != order_log[0]) {
      joined = i;
      break;
    }
  ck_assert_msg(joined < LOGN / 2,
                "the second actor first ran at position %u", joined);
  ck_assert_uint_lt(joined, both_end);
  /* From then on they take turns. (How soon a second actor joins the
   * rotation is the scheduler's business, e.g. a global queue polled every
   * so many picks; it only must not wait for the first to run dry.) */
  for (uint32_t i = joined + 1; i <= both_end; i++) {
    if (order_log[i] != order_log[i - 1]) {
      switches++;
      run = 1;
    } else if (++run > max_run) {
      max_run = run;
    }
  }
  ck_assert_msg(switches >= (both_end - joined) / BUDGET / 2,
                "only %u switches between two busy actors", switches);
  ck_assert_msg(max_run <= 2 * BUDGET,
                "an actor ran %u messages in a row with budget %d", max_run,
                BUDGET);
  tu_runtime_finish(rt);
}
END_TEST

/* Sends are charged to the budget: a producer whose handler sends more
 * than the budget and mails itself to go on yields after each handler,
 * so its receiver runs between its chunks (without the charge it handled
 * up to a budget's worth of its own continuations in a row). */
enum { CHUNK_SENDS = 60, CHUNKS = 20, SEND_BUDGET = 50 };
static char chunk_log[CHUNKS * (CHUNK_SENDS + 1) + 8];
static _Atomic uint32_t chunk_idx;
static tr_ref_t chunk_sink;

static void chunk_note(char c) {
  uint32_t i = atomic_fetch_add(&chunk_idx, 1);
  if (i < sizeof(chunk_log)) chunk_log[i] = c;
}

static int chunk_go(tr_ctx_t *ctx, void *state, void *msg) {
  (void)state;
  num_t *go = msg;
  chunk_note('P');
  for (int i = 0; i < CHUNK_SENDS; i++) {
    tagged_t *t = tagged_t_new();
    t->who = 1;
    ck_assert_int_eq(tr_send(ctx, chunk_sink, t), 0);
  }
  if (++go->v < CHUNKS) return tr_send(ctx, tr_ctx_self(ctx), go);
  return 0;
}
static int chunk_item(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  (void)msg;
  chunk_note('R');
  atomic_fetch_add(&handled, 1);
  return 0;
}
static const tr_handler_t chunk_prod_handlers[] = {{.type = TR_TYPE(num_t), .fn = chunk_go}};
static const tr_behavior_t chunk_prod = {.name = "chunk-producer",
                                         .handlers = TR_HANDLERS(chunk_prod_handlers)};
static const tr_handler_t chunk_sink_handlers[] = {{.type = TR_TYPE(tagged_t), .fn = chunk_item}};
static const tr_behavior_t chunk_sink_beh = {.name = "chunk-sink",
                                             .handlers = TR_HANDLERS(chunk_sink_handlers)};

START_TEST(test_tr_runtime_config_budget_counts_sends) {
  tr_runtime_t *rt = tu_runtime(1, SEND_BUDGET, 0);
  reset();
  atomic_store(&chunk_idx, 0);
  tr_ref_t p;
  ck_assert_int_eq(tr_spawn(rt, &chunk_sink_beh, NULL, &chunk_sink), 0);
  ck_assert_int_eq(tr_spawn(rt, &chunk_prod, NULL, &p), 0);
  num_t *go = num_t_new();
  go->v = 0;
  ck_assert_int_eq(tr_send(NULL, p, go), 0);
  ck_assert_int_eq(tr_runtime_start(rt), 0);
  ck_assert(tu_wait_ge(&handled, CHUNKS * CHUNK_SENDS, 30000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  uint32_t n = atomic_load(&chunk_idx), in_row = 0, max_in_row = 0, ps = 0;
  ck_assert_uint_eq(n, CHUNKS * (CHUNK_SENDS + 1));
  for (uint32_t i = 0; i < n; i++) {
    if (chunk_log[i] == 'P') {
      ps++;
      if (++in_row > max_in_row) max_in_row = in_row;
    } else {
      in_row = 0;
    }
  }
  ck_assert_uint_eq(ps, CHUNKS);
  ck_assert_msg(max_in_row == 1,
                "the producer ran %u chunks in a row with budget %d",
                max_in_row, SEND_BUDGET);
  tu_runtime_finish(rt);
}
END_TEST

static Suite *actor_suite(void) {
  Suite *s = suite_create("actor");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_tr_spawn_state_and_init);
  tcase_add_test(tc, test_tr_spawn_init_error);
  tcase_add_test(tc, test_tr_send_dispatch_by_type);
  tcase_add_test(tc, test_tr_send_fallback);
  tcase_add_test(tc, test_tr_send_not_accepted);
  tcase_add_test(tc, test_tr_actor_stop_self_from_handler);
  tcase_add_test(tc, test_tr_actor_stop_reason);
  tcase_add_test(tc, test_tr_actor_stop_overtakes_data);
  tcase_add_test(tc, test_tr_send_handler_error_stops);
  tcase_add_test(tc, test_tr_send_bad_refs);
  tcase_add_test(tc, test_tr_ctx_take_keeps_message);
  tcase_add_test(tc, test_tr_send_forward_received);
  tcase_add_test(tc, test_tr_send_forward_failed);
  tcase_add_test(tc, test_tr_send_sender_outside_is_null);
  tcase_add_test(tc, test_tr_spawn_init_sends);
  tcase_add_test(tc, test_tr_spawn_from_handler);
  tcase_add_test(tc, test_tr_send_system_flag_first);
  tcase_add_test(tc, test_tr_actor_stats_counters);
  tcase_add_test(tc, test_tr_runtime_config_budget_no_starvation);
  tcase_add_test(tc, test_tr_runtime_config_budget_counts_sends);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(actor_suite()); }
