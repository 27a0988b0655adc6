/* SPDX-License-Identifier: MIT */
/*
 * Tests of request/reply between actors (<troupe/actor.h>, tr_ask,
 * tr_reply, tr_reply_to): the reply reaches the continuation on the asking
 * actor with its cookie; replying to a non-request or twice is TR_EINVAL;
 * a request dropped without reply, or left queued at a target that stops,
 * gives the continuation TR_ENOREPLY; an ask that fails at once never runs
 * its continuation; a request taken with tr_ctx_take can be answered later
 * with tr_reply_to; replying to an asker that is gone is TR_ENOACTOR; a
 * continuation that returns a negative code fails its actor with it.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include <troupe.h>

#include "testutil.h"

TR_MESSAGE_TYPE(req_t, uint64_t v;)
TR_MESSAGE_TYPE(rep_t, uint64_t v;)
TR_MESSAGE_TYPE(flush_t, int unused;)
TR_MESSAGE_TYPE(go_t, tr_ref_t target; int count; int plain;)

static _Atomic uint64_t req_freed, rep_freed;
static void req_dtor(void *m) {
  (void)m;
  atomic_fetch_add(&req_freed, 1);
}
static void rep_dtor(void *m) {
  (void)m;
  atomic_fetch_add(&rep_freed, 1);
}
TR_MESSAGE_DEFINE(req_t, .dtor = req_dtor);
TR_MESSAGE_DEFINE(rep_t, .dtor = rep_dtor);
TR_MESSAGE_DEFINE(flush_t);
TR_MESSAGE_DEFINE(go_t);

#define COOKIE(v) ((void *)(uintptr_t)(0xc0de0000u + (v)))

/* Observations, read by the test thread. */
static _Atomic uint64_t k_calls, k_ok, k_enoreply, k_other, k_sum, errors;
static _Atomic uint64_t srv_handled, srv_stashed, asks_failed, asker_stops;
static _Atomic int ask_rc, reply_rc, reply_rc2, reply_to_rc;
static _Atomic uint64_t expect_self;
static _Atomic(void *) asker_state_seen;

static void reset(void) {
  atomic_store(&req_freed, 0);
  atomic_store(&rep_freed, 0);
  atomic_store(&k_calls, 0);
  atomic_store(&k_ok, 0);
  atomic_store(&k_enoreply, 0);
  atomic_store(&k_other, 0);
  atomic_store(&k_sum, 0);
  atomic_store(&errors, 0);
  atomic_store(&srv_handled, 0);
  atomic_store(&srv_stashed, 0);
  atomic_store(&asks_failed, 0);
  atomic_store(&asker_stops, 0);
  atomic_store(&ask_rc, 1);
  atomic_store(&reply_rc, 1);
  atomic_store(&reply_rc2, 1);
  atomic_store(&reply_to_rc, 1);
  atomic_store(&expect_self, 0);
  atomic_store(&asker_state_seen, NULL);
}

/* ---- the asking actor -------------------------------------------------- */

typedef struct asker_state {
  uint64_t calls; /* continuations run, as seen from the state */
} asker_state_t;

/* The continuation: a reply to request v carries v * m (m = 2 or 3) and
 * must come with COOKIE(v). */
static int asker_k(tr_ctx_t *ctx, void *state, int status, void *reply,
                   void *cookie) {
  asker_state_t *s = state;
  uintptr_t c = (uintptr_t)cookie;
  s->calls++;
  atomic_store(&asker_state_seen, state);
  if (tr_ctx_self(ctx).id != atomic_load(&expect_self))
    atomic_fetch_add(&errors, 1);
  if (c < 0xc0de0000u || c > 0xc0de0000u + 1000)
    atomic_fetch_add(&errors, 1);
  if (status == 0) {
    rep_t *r = reply;
    uint64_t v = c - 0xc0de0000u;
    if (r == NULL || tr_msg_type(r) != TR_TYPE(rep_t) ||
        (r->v != 2 * v && r->v != 3 * v))
      atomic_fetch_add(&errors, 1);
    else
      atomic_fetch_add(&k_sum, r->v);
    atomic_fetch_add(&k_ok, 1);
  } else {
    if (reply != NULL)
      atomic_fetch_add(&errors, 1);
    if (status == TR_ENOREPLY)
      atomic_fetch_add(&k_enoreply, 1);
    else
      atomic_fetch_add(&k_other, 1);
  }
  atomic_fetch_add(&k_calls, 1);
  return 0;
}

static void do_asks(tr_ctx_t *ctx, tr_ref_t target, int count, int plain) {
  for (int i = 1; i <= count; i++) {
    req_t *q = req_t_new();
    int rc;
    if (q == NULL) {
      atomic_fetch_add(&errors, 1);
      return;
    }
    q->v = (uint64_t)i;
    if (plain)
      rc = tr_send(ctx, target, q);
    else
      rc = tr_ask(ctx, target, q, asker_k, COOKIE((uint64_t)i));
    atomic_store(&ask_rc, rc);
    if (rc != 0) /* the failed send freed the request (req_freed) */
      atomic_fetch_add(&asks_failed, 1);
  }
}

static int asker_on_go(tr_ctx_t *ctx, void *state, void *msg) {
  go_t *g = msg;
  (void)state;
  do_asks(ctx, g->target, g->count, g->plain);
  return 0;
}

static int asker_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)state;
  if (arg != NULL) {
    const go_t *g = arg;
    do_asks(ctx, g->target, g->count, g->plain);
  }
  return 0;
}

static void asker_on_stop(tr_ctx_t *ctx, void *state, int reason) {
  (void)ctx;
  (void)state;
  (void)reason;
  atomic_fetch_add(&asker_stops, 1);
}

static const tr_handler_t asker_handlers[] = {{.type = TR_TYPE(go_t), .fn = asker_on_go}};
static const tr_behavior_t asker = {
    .name = "asker",
    .state_size = sizeof(asker_state_t),
    .init = asker_init,
    .on_stop = asker_on_stop,
    .handlers = TR_HANDLERS(asker_handlers),
};

static tr_ref_t spawn_asker(tr_runtime_t *rt, const go_t *init_asks) {
  tr_ref_t r;
  ck_assert_int_eq(tr_spawn(rt, &asker, (void *)init_asks, &r), 0);
  atomic_store(&expect_self, r.id);
  return r;
}

static void go(tr_ref_t asker_ref, tr_ref_t target, int count, int plain) {
  go_t *g = go_t_new();
  ck_assert_ptr_nonnull(g);
  g->target = target;
  g->count = count;
  g->plain = plain;
  ck_assert_int_eq(tr_send(NULL, asker_ref, g), 0);
}

/* ---- servers ----------------------------------------------------------- */

static rep_t *rep_new(uint64_t v) {
  rep_t *r = rep_t_new();
  if (r != NULL)
    r->v = v;
  return r;
}

/* Replies v * 2; records tr_reply's result. */
static int srv_reply_on_req(tr_ctx_t *ctx, void *state, void *msg) {
  rep_t *r = rep_new(((req_t *)msg)->v * 2);
  int rc;
  (void)state;
  atomic_fetch_add(&srv_handled, 1);
  if (r == NULL)
    return TR_ENOMEM;
  rc = tr_reply(ctx, r);
  atomic_store(&reply_rc, rc);
  return 0;
}

/* Replies twice. */
static int srv_twice_on_req(tr_ctx_t *ctx, void *state, void *msg) {
  rep_t *r1 = rep_new(((req_t *)msg)->v * 2);
  rep_t *r2 = rep_new(((req_t *)msg)->v * 2);
  int rc;
  (void)state;
  atomic_fetch_add(&srv_handled, 1);
  if (r1 == NULL || r2 == NULL)
    return TR_ENOMEM;
  rc = tr_reply(ctx, r1);
  atomic_store(&reply_rc, rc);
  rc = tr_reply(ctx, r2);
  atomic_store(&reply_rc2, rc);
  return 0;
}

/* Drops every request without replying. */
static int srv_drop_on_req(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  (void)msg;
  atomic_fetch_add(&srv_handled, 1);
  return 0;
}

/* Stops itself at the first request, without replying. */
static int srv_stop_on_req(tr_ctx_t *ctx, void *state, void *msg) {
  (void)state;
  (void)msg;
  atomic_fetch_add(&srv_handled, 1);
  tr_actor_stop(tr_ctx_self(ctx), TR_EXIT_NORMAL);
  return 0;
}

/* Keeps requests; answers them (v * 3) when told to flush. */
typedef struct defer_state {
  req_t *held[16];
  int n;
} defer_state_t;

static int srv_defer_on_req(tr_ctx_t *ctx, void *state, void *msg) {
  defer_state_t *s = state;
  atomic_fetch_add(&srv_handled, 1);
  if (s->n == 16)
    return TR_ENOSPC;
  tr_ctx_take(ctx);
  s->held[s->n++] = msg;
  atomic_fetch_add(&srv_stashed, 1);
  return 0;
}

static int srv_defer_on_flush(tr_ctx_t *ctx, void *state, void *msg) {
  defer_state_t *s = state;
  (void)msg;
  for (int i = 0; i < s->n; i++) {
    rep_t *r = rep_new(s->held[i]->v * 3);
    int rc;
    if (r == NULL)
      return TR_ENOMEM;
    rc = tr_reply_to(ctx, s->held[i], r);
    atomic_store(&reply_to_rc, rc);
  }
  s->n = 0;
  return 0;
}

static const tr_handler_t srv_reply_h[] = {{.type = TR_TYPE(req_t), .fn = srv_reply_on_req}};
static const tr_handler_t srv_twice_h[] = {{.type = TR_TYPE(req_t), .fn = srv_twice_on_req}};
static const tr_handler_t srv_drop_h[] = {{.type = TR_TYPE(req_t), .fn = srv_drop_on_req}};
static const tr_handler_t srv_stop_h[] = {{.type = TR_TYPE(req_t), .fn = srv_stop_on_req}};
static const tr_handler_t srv_defer_h[] = {
    {.type = TR_TYPE(req_t), .fn = srv_defer_on_req},
    {.type = TR_TYPE(flush_t), .fn = srv_defer_on_flush},
};
static const tr_handler_t srv_flush_only_h[] = {
    {.type = TR_TYPE(flush_t), .fn = srv_drop_on_req}};

static const tr_behavior_t srv_reply = {.name = "srv_reply",
                                        .handlers = TR_HANDLERS(srv_reply_h)};
static const tr_behavior_t srv_twice = {.name = "srv_twice",
                                        .handlers = TR_HANDLERS(srv_twice_h)};
static const tr_behavior_t srv_drop = {.name = "srv_drop",
                                       .handlers = TR_HANDLERS(srv_drop_h)};
static const tr_behavior_t srv_stop = {.name = "srv_stop",
                                       .handlers = TR_HANDLERS(srv_stop_h)};
static const tr_behavior_t srv_defer = {
    .name = "srv_defer",
    .state_size = sizeof(defer_state_t),
    .handlers = TR_HANDLERS(srv_defer_h),
};
static const tr_behavior_t srv_flush_only = {
    .name = "srv_flush_only", .handlers = TR_HANDLERS(srv_flush_only_h)};

static void flush(tr_ref_t srv) {
  flush_t *f = flush_t_new();
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(tr_send(NULL, srv, f), 0);
}

/* ---- tests ------------------------------------------------------------- */

START_TEST(test_tr_ask_reply_cookie) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t s, a;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &srv_reply, NULL, &s), 0);
  a = spawn_asker(rt, NULL);
  go(a, s, 10, 0);
  ck_assert(tu_wait_ge(&k_calls, 10, 10000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_int_eq(atomic_load(&ask_rc), 0);
  ck_assert_int_eq(atomic_load(&reply_rc), 0);
  ck_assert_uint_eq(atomic_load(&k_calls), 10);
  ck_assert_uint_eq(atomic_load(&k_ok), 10);
  ck_assert_uint_eq(atomic_load(&k_sum), 2 * 55);
  ck_assert_uint_eq(atomic_load(&errors), 0);
  ck_assert_ptr_nonnull(atomic_load(&asker_state_seen));
  ck_assert_uint_eq(((asker_state_t *)atomic_load(&asker_state_seen))->calls,
                    10);
  /* Requests freed after the server's handler, replies after k. */
  ck_assert_uint_eq(atomic_load(&req_freed), 10);
  ck_assert_uint_eq(atomic_load(&rep_freed), 10);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_reply_not_request) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  req_t *q = req_t_new();
  tr_ref_t s, a;
  reset();
  ck_assert_ptr_nonnull(q);
  q->v = 1;
  ck_assert_int_eq(tr_spawn(rt, &srv_reply, NULL, &s), 0);
  /* From outside the runtime... */
  ck_assert_int_eq(tr_send(NULL, s, q), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&srv_handled), 1);
  ck_assert_int_eq(atomic_load(&reply_rc), TR_EINVAL);
  ck_assert_uint_eq(atomic_load(&rep_freed), 1); /* kept, freed by srv */
  /* ...and a plain tr_send from an actor. */
  atomic_store(&reply_rc, 1);
  a = spawn_asker(rt, NULL);
  go(a, s, 3, 1);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&srv_handled), 4);
  ck_assert_int_eq(atomic_load(&reply_rc), TR_EINVAL);
  ck_assert_uint_eq(atomic_load(&k_calls), 0);
  ck_assert_uint_eq(atomic_load(&rep_freed), 4);
  ck_assert_uint_eq(atomic_load(&req_freed), 4);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_reply_twice) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t s, a;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &srv_twice, NULL, &s), 0);
  a = spawn_asker(rt, NULL);
  go(a, s, 1, 0);
  ck_assert(tu_wait_ge(&k_calls, 1, 10000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_int_eq(atomic_load(&reply_rc), 0);
  ck_assert_int_eq(atomic_load(&reply_rc2), TR_EINVAL);
  ck_assert_uint_eq(atomic_load(&k_calls), 1);
  ck_assert_uint_eq(atomic_load(&k_ok), 1);
  ck_assert_uint_eq(atomic_load(&rep_freed), 2);
  ck_assert_uint_eq(atomic_load(&errors), 0);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_ask_dropped_enoreply) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t s, a;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &srv_drop, NULL, &s), 0);
  a = spawn_asker(rt, NULL);
  go(a, s, 5, 0);
  ck_assert(tu_wait_ge(&k_calls, 5, 10000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&srv_handled), 5);
  ck_assert_uint_eq(atomic_load(&k_calls), 5);
  ck_assert_uint_eq(atomic_load(&k_enoreply), 5);
  ck_assert_uint_eq(atomic_load(&errors), 0); /* reply NULL, cookie ok */
  ck_assert_uint_eq(atomic_load(&req_freed), 5);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_ask_dead_target) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t s, bad, a;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &srv_reply, NULL, &s), 0);
  ck_assert_int_eq(tr_actor_stop(s, TR_EXIT_NORMAL), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  a = spawn_asker(rt, NULL);
  go(a, s, 4, 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_int_eq(atomic_load(&ask_rc), TR_ENOACTOR);
  ck_assert_uint_eq(atomic_load(&asks_failed), 4);
  go(a, TR_REF_NULL, 1, 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_int_eq(atomic_load(&ask_rc), TR_ENOACTOR);
  /* A target that does not accept the type: TR_EBADMSG, likewise. */
  ck_assert_int_eq(tr_spawn(rt, &srv_flush_only, NULL, &bad), 0);
  go(a, bad, 2, 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_int_eq(atomic_load(&ask_rc), TR_EBADMSG);
  ck_assert_uint_eq(atomic_load(&asks_failed), 7);
  tu_sleep_ms(50);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&k_calls), 0);
  ck_assert_uint_eq(atomic_load(&req_freed), 7);
  ck_assert_uint_eq(atomic_load(&errors), 0);
  tu_runtime_finish(rt);
  ck_assert_uint_eq(atomic_load(&k_calls), 0);
}
END_TEST

START_TEST(test_tr_reply_to_deferred) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t s, a;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &srv_defer, NULL, &s), 0);
  a = spawn_asker(rt, NULL);
  go(a, s, 3, 0);
  ck_assert(tu_wait_ge(&srv_stashed, 3, 10000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&k_calls), 0);
  ck_assert_uint_eq(atomic_load(&req_freed), 0);
  flush(s);
  ck_assert(tu_wait_ge(&k_calls, 3, 10000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_int_eq(atomic_load(&reply_to_rc), 0);
  ck_assert_uint_eq(atomic_load(&k_ok), 3);
  ck_assert_uint_eq(atomic_load(&k_sum), 3 * 6);
  ck_assert_uint_eq(atomic_load(&errors), 0);
  ck_assert_uint_eq(atomic_load(&req_freed), 3); /* by tr_reply_to */
  ck_assert_uint_eq(atomic_load(&rep_freed), 3);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_actor_stop_queued_requests_enoreply) {
  /* Everything is queued before the start, so the stop request finds the
   * requests still in the mailbox and overtakes them. */
  tr_runtime_t *rt = tu_runtime(2, 0, 0);
  go_t spec;
  tr_ref_t s;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &srv_reply, NULL, &s), 0);
  spec.target = s;
  spec.count = 8;
  spec.plain = 0;
  (void)spawn_asker(rt, &spec);
  ck_assert_int_eq(atomic_load(&ask_rc), 0);
  ck_assert_int_eq(tr_actor_stop(s, TR_EXIT_NORMAL), 0);
  ck_assert_int_eq(tr_runtime_start(rt), 0);
  ck_assert(tu_wait_ge(&k_calls, 8, 10000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&srv_handled), 0);
  ck_assert_uint_eq(atomic_load(&k_calls), 8);
  ck_assert_msg(atomic_load(&k_enoreply) == 8,
                "%llu of 8 continuations got TR_ENOREPLY, %llu another code",
                (unsigned long long)atomic_load(&k_enoreply),
                (unsigned long long)atomic_load(&k_other));
  ck_assert_uint_eq(atomic_load(&errors), 0);
  ck_assert_uint_eq(atomic_load(&req_freed), 8);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_actor_stop_self_queued_requests_enoreply) {
  tr_runtime_t *rt = tu_runtime(2, 0, 0);
  go_t spec;
  tr_ref_t s;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &srv_stop, NULL, &s), 0);
  spec.target = s;
  spec.count = 5;
  spec.plain = 0;
  (void)spawn_asker(rt, &spec);
  ck_assert_int_eq(tr_runtime_start(rt), 0);
  ck_assert(tu_wait_ge(&k_calls, 5, 10000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_uint_eq(atomic_load(&srv_handled), 1);
  ck_assert_uint_eq(atomic_load(&k_calls), 5);
  ck_assert_uint_eq(atomic_load(&k_enoreply), 5);
  ck_assert_uint_eq(atomic_load(&errors), 0);
  ck_assert_uint_eq(atomic_load(&req_freed), 5);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_reply_to_asker_gone) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t s, a;
  reset();
  ck_assert_int_eq(tr_spawn(rt, &srv_defer, NULL, &s), 0);
  a = spawn_asker(rt, NULL);
  go(a, s, 1, 0);
  ck_assert(tu_wait_ge(&srv_stashed, 1, 10000));
  ck_assert_int_eq(tr_actor_stop(a, TR_EXIT_NORMAL), 0);
  ck_assert(tu_wait_ge(&asker_stops, 1, 10000));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  flush(s);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_int_eq(atomic_load(&reply_to_rc), TR_ENOACTOR);
  ck_assert_uint_eq(atomic_load(&rep_freed), 1); /* kept, freed by srv */
  ck_assert_uint_eq(atomic_load(&k_calls), 0);
  tu_runtime_finish(rt);
  ck_assert_uint_eq(atomic_load(&k_calls), 0);
}
END_TEST

/* A continuation's return value counts as a handler's: a negative one
 * fails the asking actor with that reason. The asker below returns
 * TR_EPROTO from the continuation of a successful ask, and the status
 * itself from a failed one; a handle monitoring it sees the reason. */
static int failing_k(tr_ctx_t *ctx, void *state, int status, void *reply,
                     void *cookie) {
  (void)ctx;
  (void)state;
  (void)reply;
  (void)cookie;
  atomic_fetch_add(&k_calls, 1);
  return status == 0 ? TR_EPROTO : status;
}

static int failing_on_go(tr_ctx_t *ctx, void *state, void *msg) {
  go_t *g = msg;
  req_t *q = req_t_new();
  (void)state;
  if (q == NULL)
    return TR_ENOMEM;
  q->v = 1;
  return tr_ask(ctx, g->target, q, failing_k, NULL);
}

static const tr_handler_t failing_asker_h[] = {
    {.type = TR_TYPE(go_t), .fn = failing_on_go}};
static const tr_behavior_t failing_asker = {
    .name = "failing_asker", .handlers = TR_HANDLERS(failing_asker_h)};

/* Spawns the failing asker, monitors it from a handle, makes it ask srv,
 * and returns the reason of its stop. */
static int continuation_exit_reason(const tr_behavior_t *srv) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_handle_t *h;
  tr_ref_t s, a;
  void *m = NULL;
  reset();
  ck_assert_int_eq(tr_handle_new(rt, &h), 0);
  ck_assert_int_eq(tr_spawn(rt, srv, NULL, &s), 0);
  ck_assert_int_eq(tr_spawn(rt, &failing_asker, NULL, &a), 0);
  ck_assert_int_eq(tr_handle_monitor(h, a, NULL), 0);
  go(a, s, 1, 0);
  ck_assert_int_eq(tr_handle_receive(h, 30000, &m), 0);
  ck_assert_ptr_eq(tr_msg_type(m), TR_TYPE(tr_down_t));
  tr_down_t *d = m;
  ck_assert(tr_ref_eq(d->ref, a));
  int reason = d->reason;
  tr_msg_free(m);
  ck_assert_uint_eq(atomic_load(&k_calls), 1);
  tr_handle_free(h);
  tu_runtime_finish(rt);
  return reason;
}

START_TEST(test_tr_ask_continuation_error_fails_actor) {
  ck_assert_int_eq(continuation_exit_reason(&srv_reply), TR_EPROTO);
}
END_TEST

START_TEST(test_tr_ask_continuation_status_fails_actor) {
  ck_assert_int_eq(continuation_exit_reason(&srv_drop), TR_ENOREPLY);
}
END_TEST

static Suite *ask_suite(void) {
  Suite *s = suite_create("ask");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_tr_ask_reply_cookie);
  tcase_add_test(tc, test_tr_reply_not_request);
  tcase_add_test(tc, test_tr_reply_twice);
  tcase_add_test(tc, test_tr_ask_dropped_enoreply);
  tcase_add_test(tc, test_tr_ask_dead_target);
  tcase_add_test(tc, test_tr_reply_to_deferred);
  tcase_add_test(tc, test_tr_actor_stop_queued_requests_enoreply);
  tcase_add_test(tc, test_tr_actor_stop_self_queued_requests_enoreply);
  tcase_add_test(tc, test_tr_reply_to_asker_gone);
  tcase_add_test(tc, test_tr_ask_continuation_error_fails_actor);
  tcase_add_test(tc, test_tr_ask_continuation_status_fails_actor);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(ask_suite()); }
