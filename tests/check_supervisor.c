/* SPDX-License-Identifier: MIT */
/*
 * Supervisors: each strategy (one-for-one, one-for-all, rest-for-one),
 * each restart policy (permanent, transient, temporary), restart intensity
 * and its escalation through a nested supervisor, orderly shutdown in
 * reverse start order, and a chaos test: a tree of 1,000 workers where
 * random workers fail while messages flow; the tree must recover every
 * time and no actor may leak; and a child that fails while no memory can
 * be had is still restarted.
 */
#include "testutil.h"
#include "failinject/failinject.h"

#include <string.h>

TR_MESSAGE_TYPE(work_t, int op; int arg;);
TR_MESSAGE_DEFINE(work_t);
TR_MESSAGE_TYPE(event_t, int kind; int id; int reason;);
TR_MESSAGE_DEFINE(event_t);

enum { W_FAIL = 1, W_STOP = 2, W_PING = 3 };
enum { E_START = 1, E_STOP = 2, E_PONG = 3 };

static _Atomic uint64_t handled;
static tr_ref_t g_report;

typedef struct {
  int id;
} worker_t;

static void event(tr_ctx_t *ctx, int kind, int id, int reason) {
  if (tr_ref_is_null(g_report)) return;
  event_t *e = event_t_new();
  if (!e) return; /* out of memory: see test_exit_without_memory_restarts */
  e->kind = kind;
  e->id = id;
  e->reason = reason;
  (void)tr_send(ctx, g_report, e);
}

static int worker_init(tr_ctx_t *ctx, void *state, void *arg) {
  worker_t *w = state;
  w->id = (int)(intptr_t)arg;
  event(ctx, E_START, w->id, 0);
  return 0;
}

static void worker_stop(tr_ctx_t *ctx, void *state, int reason) {
  worker_t *w = state;
  event(ctx, E_STOP, w->id, reason);
}

static int worker_work(tr_ctx_t *ctx, void *state, void *msg) {
  worker_t *w = state;
  work_t *m = msg;
  atomic_fetch_add(&handled, 1);
  switch (m->op) {
  case W_FAIL: return m->arg ? m->arg : TR_EFAILED;
  case W_STOP: tr_actor_stop(tr_ctx_self(ctx), m->arg); return 0;
  case W_PING: event(ctx, E_PONG, w->id, 0); return 0;
  default: return 0;
  }
}

static const tr_handler_t worker_h[] = {{TR_TYPE(work_t), worker_work}};
static const tr_behavior_t worker_beh = {
    .name = "worker", .state_size = sizeof(worker_t), .init = worker_init,
    .on_stop = worker_stop, .handlers = TR_HANDLERS(worker_h)};

/* fixture */
static tr_runtime_t *rt;
static tr_handle_t *h;

static void setup(void) {
  rt = tu_runtime(2, 0, 1);
  ck_assert_int_eq(tr_handle_new(rt, &h), 0);
  g_report = tr_handle_ref(h);
  atomic_store(&handled, 0);
}

static void teardown(void) {
  g_report = TR_REF_NULL;
  tr_runtime_shutdown(rt, 10000);
  tr_handle_free(h);
  tr_runtime_free(rt);
}

static tr_sup_info_t *info(tr_ref_t sup) {
  tr_sup_info_t *q = tr_sup_info_t_new();
  void *r = NULL;
  int rc = tr_handle_call(h, sup, q, 5000, &r);
  ck_assert_msg(rc == 0, "info: %s", tr_err_name(rc));
  return r;
}

static void send_work(tr_ref_t to, int op, int arg) {
  work_t *m = work_t_new();
  m->op = op;
  m->arg = arg;
  (void)tr_send(NULL, to, m);
}

/* Collects events until `n` of the kind arrived; writes their ids in
 * order to ids (if not NULL). Other kinds are dropped. */
static void events(int kind, int n, int *ids, int *reasons) {
  int got = 0;
  while (got < n) {
    void *m;
    int rc = tr_handle_receive(h, 5000, &m);
    ck_assert_msg(rc == 0, "waiting for %d events of kind %d, got %d", n, kind, got);
    event_t *e = m;
    if (tr_msg_type(m) == TR_TYPE(event_t) && e->kind == kind) {
      if (ids) ids[got] = e->id;
      if (reasons) reasons[got] = e->reason;
      got++;
    }
    tr_msg_free(m);
  }
}

static tr_child_spec_t specs[8];
static tr_ref_t start_sup(tr_sup_strategy_t st, int n, tr_restart_t policy,
                          unsigned max_restarts) {
  for (int i = 0; i < n; i++) {
    memset(&specs[i], 0, sizeof(specs[i]));
    specs[i].name = "w";
    specs[i].behavior = &worker_beh;
    specs[i].arg = (void *)(intptr_t)i;
    specs[i].restart = policy;
  }
  tr_sup_spec_t spec = {.strategy = st, .max_restarts = max_restarts,
                        .period_ms = 10000, .children = specs,
                        .nchildren = (size_t)n};
  tr_ref_t sup;
  ck_assert_int_eq(tr_sup_spawn(rt, &spec, &sup), 0);
  int ids[8];
  events(E_START, n, ids, NULL);
  for (int i = 0; i < n; i++) ck_assert_int_eq(ids[i], i); /* start order */
  return sup;
}

START_TEST(test_one_for_one_restarts_only_failed) {
  tr_ref_t sup = start_sup(TR_SUP_ONE_FOR_ONE, 3, TR_RESTART_PERMANENT, 5);
  tr_sup_info_t *q = info(sup);
  tr_ref_t c1 = q->children[1], c0 = q->children[0], c2 = q->children[2];
  tr_msg_free(q);
  send_work(c1, W_FAIL, TR_EPROTO);
  int ids[1], reasons[1];
  events(E_STOP, 1, ids, reasons);
  ck_assert_int_eq(ids[0], 1);
  ck_assert_int_eq(reasons[0], TR_EPROTO);
  events(E_START, 1, ids, NULL);
  ck_assert_int_eq(ids[0], 1);
  q = info(sup);
  ck_assert(tr_ref_eq(q->children[0], c0));
  ck_assert(tr_ref_eq(q->children[2], c2));
  ck_assert(!tr_ref_eq(q->children[1], c1));
  ck_assert(tr_actor_alive(q->children[1]));
  ck_assert_uint_eq(q->restarts, 1);
  ck_assert_uint_eq(q->running, 3);
  tr_msg_free(q);
}
END_TEST

START_TEST(test_one_for_all_restarts_everyone) {
  tr_ref_t sup = start_sup(TR_SUP_ONE_FOR_ALL, 4, TR_RESTART_PERMANENT, 5);
  tr_sup_info_t *q = info(sup);
  tr_ref_t c2 = q->children[2];
  tr_msg_free(q);
  send_work(c2, W_FAIL, 0);
  int ids[4];
  events(E_STOP, 4, ids, NULL);
  /* the failed one first, then the others in reverse start order */
  ck_assert_int_eq(ids[0], 2);
  ck_assert_int_eq(ids[1], 3);
  ck_assert_int_eq(ids[2], 1);
  ck_assert_int_eq(ids[3], 0);
  events(E_START, 4, ids, NULL);
  for (int i = 0; i < 4; i++) ck_assert_int_eq(ids[i], i);
  q = info(sup);
  ck_assert_uint_eq(q->running, 4);
  ck_assert_uint_eq(q->restarts, 1);
  tr_msg_free(q);
}
END_TEST

START_TEST(test_rest_for_one_restarts_later_siblings) {
  tr_ref_t sup = start_sup(TR_SUP_REST_FOR_ONE, 4, TR_RESTART_PERMANENT, 5);
  tr_sup_info_t *q = info(sup);
  tr_ref_t c0 = q->children[0], c1 = q->children[1];
  tr_msg_free(q);
  send_work(c1, W_FAIL, 0);
  int ids[3];
  events(E_STOP, 3, ids, NULL);
  ck_assert_int_eq(ids[0], 1);
  ck_assert_int_eq(ids[1], 3);
  ck_assert_int_eq(ids[2], 2);
  events(E_START, 3, ids, NULL);
  ck_assert_int_eq(ids[0], 1);
  ck_assert_int_eq(ids[1], 2);
  ck_assert_int_eq(ids[2], 3);
  q = info(sup);
  ck_assert(tr_ref_eq(q->children[0], c0));
  ck_assert_uint_eq(q->running, 4);
  tr_msg_free(q);
}
END_TEST

START_TEST(test_transient_normal_exit_not_restarted) {
  tr_ref_t sup = start_sup(TR_SUP_ONE_FOR_ONE, 2, TR_RESTART_TRANSIENT, 5);
  tr_sup_info_t *q = info(sup);
  tr_ref_t c0 = q->children[0], c1 = q->children[1];
  tr_msg_free(q);
  send_work(c0, W_STOP, TR_EXIT_NORMAL);
  int ids[1];
  events(E_STOP, 1, ids, NULL);
  send_work(c1, W_FAIL, 0);
  events(E_STOP, 1, ids, NULL);
  events(E_START, 1, ids, NULL);
  ck_assert_int_eq(ids[0], 1); /* only the abnormal exit restarts */
  /* c0's on_stop ran before its exit reached the supervisor, and the two
   * children's exits come from different actors, in either order: wait
   * until the supervisor has seen c0's */
  uint64_t end = tu_now_ms() + 5000;
  for (;;) {
    q = info(sup);
    if (tr_ref_is_null(q->children[0]) || tu_now_ms() > end) break;
    tr_msg_free(q);
    tu_sleep_ms(1);
  }
  ck_assert(tr_ref_is_null(q->children[0]));
  ck_assert_uint_eq(q->running, 1);
  tr_msg_free(q);
}
END_TEST

START_TEST(test_temporary_never_restarted) {
  tr_ref_t sup = start_sup(TR_SUP_ONE_FOR_ONE, 2, TR_RESTART_TEMPORARY, 5);
  tr_sup_info_t *q = info(sup);
  tr_ref_t c0 = q->children[0];
  tr_msg_free(q);
  send_work(c0, W_FAIL, 0);
  int ids[1];
  events(E_STOP, 1, ids, NULL);
  /* the child's on_stop runs before its exit reaches the supervisor */
  uint64_t end = tu_now_ms() + 5000;
  for (;;) {
    q = info(sup);
    if (q->running == 1 || tu_now_ms() > end) break;
    tr_msg_free(q);
    tu_sleep_ms(1);
  }
  ck_assert_uint_eq(q->running, 1);
  ck_assert_uint_eq(q->restarts, 0);
  tr_msg_free(q);
  /* and it stays down */
  tu_sleep_ms(20);
  q = info(sup);
  ck_assert_uint_eq(q->running, 1);
  ck_assert(tr_ref_is_null(q->children[0]));
  tr_msg_free(q);
}
END_TEST

START_TEST(test_intensity_exceeded_supervisor_fails) {
  tr_ref_t sup = start_sup(TR_SUP_ONE_FOR_ONE, 2, TR_RESTART_PERMANENT, 2);
  uint64_t mid;
  ck_assert_int_eq(tr_handle_monitor(h, sup, &mid), 0);
  for (int round = 0; round < 3; round++) {
    tr_sup_info_t *q = info(sup);
    tr_ref_t c0 = q->children[0];
    tr_msg_free(q);
    send_work(c0, W_FAIL, 0);
    int ids[1];
    events(E_STOP, 1, ids, NULL);
    if (round < 2) events(E_START, 1, ids, NULL);
  }
  /* third failure within the period: the supervisor gives up */
  for (;;) {
    void *m;
    ck_assert_int_eq(tr_handle_receive(h, 5000, &m), 0);
    if (tr_msg_type(m) == TR_TYPE(tr_down_t)) {
      ck_assert_int_eq(((tr_down_t *)m)->reason, TR_EFAILED);
      tr_msg_free(m);
      break;
    }
    tr_msg_free(m);
  }
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 5000), 0);
  tr_runtime_stats_t st;
  tr_runtime_stats(rt, &st);
  ck_assert_uint_eq(st.actors_live, 0); /* its children went with it */
}
END_TEST

/* A failing inner supervisor escalates to the outer one, which restarts
 * it (and with it, its children). */
START_TEST(test_escalation_nested) {
  static tr_child_spec_t inner_children[2];
  for (int i = 0; i < 2; i++) {
    memset(&inner_children[i], 0, sizeof(inner_children[i]));
    inner_children[i].behavior = &worker_beh;
    inner_children[i].arg = (void *)(intptr_t)(10 + i);
  }
  static tr_sup_spec_t inner = {.strategy = TR_SUP_ONE_FOR_ONE,
                                .max_restarts = 1, .period_ms = 10000};
  inner.children = inner_children;
  inner.nchildren = 2;
  tr_child_spec_t outer_children[1] = {
      {.name = "inner", .behavior = &tr_supervisor_behavior, .arg = &inner}};
  tr_sup_spec_t outer = {.strategy = TR_SUP_ONE_FOR_ONE, .max_restarts = 5,
                         .period_ms = 10000, .children = outer_children,
                         .nchildren = 1};
  tr_ref_t top;
  ck_assert_int_eq(tr_sup_spawn(rt, &outer, &top), 0);
  events(E_START, 2, NULL, NULL);
  for (int k = 0; k < 2; k++) {
    tr_sup_info_t *q = info(top);
    tr_ref_t in = q->children[0];
    tr_msg_free(q);
    q = info(in);
    tr_ref_t c = q->children[0];
    tr_msg_free(q);
    send_work(c, W_FAIL, 0);
    events(E_STOP, 1, NULL, NULL);
    events(E_START, 1, NULL, NULL);
  }
  /* the second failure exceeded the inner intensity (1): the inner
   * supervisor stopped its other child and failed; the outer restarted it,
   * which started both children again */
  events(E_START, 1, NULL, NULL);
  tr_sup_info_t *q = info(top);
  ck_assert_uint_eq(q->restarts, 1);
  ck_assert_uint_eq(q->running, 1);
  tr_ref_t in = q->children[0];
  tr_msg_free(q);
  q = info(in);
  ck_assert_uint_eq(q->running, 2);
  ck_assert_uint_eq(q->restarts, 0);
  tr_msg_free(q);
}
END_TEST

START_TEST(test_shutdown_reverse_order) {
  tr_ref_t sup = start_sup(TR_SUP_ONE_FOR_ONE, 5, TR_RESTART_PERMANENT, 5);
  ck_assert_int_eq(tr_actor_stop(sup, TR_EXIT_SHUTDOWN), 0);
  int ids[5], reasons[5];
  events(E_STOP, 5, ids, reasons);
  for (int i = 0; i < 5; i++) {
    ck_assert_int_eq(ids[i], 4 - i);
    ck_assert_int_eq(reasons[i], TR_EXIT_SHUTDOWN);
  }
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 5000), 0);
  ck_assert(!tr_actor_alive(sup));
}
END_TEST

START_TEST(test_runtime_shutdown_stops_tree_top_down) {
  (void)start_sup(TR_SUP_ONE_FOR_ALL, 3, TR_RESTART_PERMANENT, 5);
  ck_assert_int_eq(tr_runtime_shutdown(rt, 5000), 0);
  int ids[3];
  events(E_STOP, 3, ids, NULL);
  ck_assert_int_eq(ids[0], 2);
  ck_assert_int_eq(ids[1], 1);
  ck_assert_int_eq(ids[2], 0);
  tr_runtime_stats_t st;
  tr_runtime_stats(rt, &st);
  ck_assert_uint_eq(st.actors_live, 0);
  ck_assert_uint_eq(st.shutdown_forced, 0);
}
END_TEST

/* A child that traps exits and ignores the stop request is killed once
 * its shutdown_ms has passed. */
static int stubborn_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)state;
  (void)arg;
  tr_ctx_trap_exit(ctx, 1);
  event(ctx, E_START, 99, 0);
  return 0;
}
static int stubborn_exit(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  (void)msg;
  return 0; /* ignores it */
}
static void stubborn_stop(tr_ctx_t *ctx, void *state, int reason) {
  (void)state;
  event(ctx, E_STOP, 99, reason);
}
static const tr_handler_t stubborn_h[] = {{TR_TYPE(tr_exit_t), stubborn_exit}};
static const tr_behavior_t stubborn_beh = {
    .name = "stubborn", .init = stubborn_init, .on_stop = stubborn_stop,
    .handlers = TR_HANDLERS(stubborn_h)};

START_TEST(test_shutdown_deadline_kills) {
  tr_child_spec_t kids[1] = {
      {.behavior = &stubborn_beh, .restart = TR_RESTART_PERMANENT, .shutdown_ms = 50}};
  tr_sup_spec_t spec = {.strategy = TR_SUP_ONE_FOR_ONE, .children = kids,
                        .nchildren = 1};
  tr_ref_t sup;
  ck_assert_int_eq(tr_sup_spawn(rt, &spec, &sup), 0);
  events(E_START, 1, NULL, NULL);
  uint64_t t0 = tu_now_ms();
  ck_assert_int_eq(tr_actor_stop(sup, TR_EXIT_SHUTDOWN), 0);
  int ids[1], reasons[1];
  events(E_STOP, 1, ids, reasons);
  ck_assert_int_eq(ids[0], 99);
  ck_assert_int_eq(reasons[0], TR_EXIT_KILLED);
  ck_assert_uint_ge(tu_now_ms() - t0, 49);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 5000), 0);
  ck_assert(!tr_actor_alive(sup));
}
END_TEST

/* Chaos: 10 supervisors x 100 workers under a root; random workers fail
 * while messages flow. Every failure is repaired, nothing leaks. */
START_TEST(test_chaos_tree_recovers) {
  enum { SUBS = 10, PER = 100 };
  g_report = TR_REF_NULL; /* no events: too many */
  static tr_child_spec_t leaf[PER];
  for (int i = 0; i < PER; i++) {
    memset(&leaf[i], 0, sizeof(leaf[i]));
    leaf[i].behavior = &worker_beh;
    leaf[i].restart = TR_RESTART_PERMANENT;
  }
  static tr_sup_spec_t sub = {.strategy = TR_SUP_ONE_FOR_ONE,
                              .max_restarts = 1000, .period_ms = 1000};
  sub.children = leaf;
  sub.nchildren = PER;
  static tr_child_spec_t subs[SUBS];
  for (int i = 0; i < SUBS; i++) {
    memset(&subs[i], 0, sizeof(subs[i]));
    subs[i].behavior = &tr_supervisor_behavior;
    subs[i].arg = &sub;
  }
  tr_sup_spec_t root = {.strategy = TR_SUP_ONE_FOR_ONE, .max_restarts = 10,
                        .period_ms = 1000, .children = subs, .nchildren = SUBS};
  tr_ref_t top;
  ck_assert_int_eq(tr_sup_spawn(rt, &root, &top), 0);
  tr_sup_info_t *q = info(top);
  tr_ref_t sref[SUBS];
  for (int i = 0; i < SUBS; i++) sref[i] = q->children[i];
  tr_msg_free(q);

  uint64_t seed = 12345;
  int rounds = TU_TSAN ? 5 : 20, kills = 0;
  for (int r = 0; r < rounds; r++) {
    for (int s = 0; s < SUBS; s++) {
      q = info(sref[s]);
      ck_assert_uint_eq(q->running, PER);
      for (int i = 0; i < PER; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        if ((seed >> 33) % 10 == 0) {
          send_work(q->children[i], W_FAIL, 0);
          kills++;
        } else {
          send_work(q->children[i], W_PING, 0);
        }
      }
      tr_msg_free(q);
    }
    ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  }
  ck_assert_int_gt(kills, 0);
  uint64_t restarts = 0;
  for (int s = 0; s < SUBS; s++) {
    q = info(sref[s]);
    ck_assert_uint_eq(q->running, PER); /* every failure was repaired */
    restarts += q->restarts;
    tr_msg_free(q);
  }
  ck_assert_uint_eq(restarts, (uint64_t)kills);
  q = info(top);
  ck_assert_uint_eq(q->restarts, 0); /* nothing escalated */
  tr_msg_free(q);
  tr_runtime_stats_t st;
  tr_runtime_stats(rt, &st);
  ck_assert_uint_eq(st.actors_live, 1 + SUBS + SUBS * PER);
  ck_assert_int_eq(tr_runtime_shutdown(rt, 10000), 0);
  tr_runtime_stats(rt, &st);
  ck_assert_uint_eq(st.actors_live, 0);
}
END_TEST

/* A permanent child fails while the library's allocations fail: its exit
 * still reaches the supervisor, which restarts it (its first attempts may
 * fail too, for memory, and count as restarts). The child allocates
 * nothing when it stops. */
static int quiet_work(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  work_t *m = msg;
  atomic_fetch_add(&handled, 1);
  return m->op == W_FAIL ? m->arg : 0;
}
static const tr_handler_t quiet_h[] = {{TR_TYPE(work_t), quiet_work}};
static const tr_behavior_t quiet_beh = {.name = "quiet",
                                        .handlers = TR_HANDLERS(quiet_h)};

START_TEST(test_exit_without_memory_restarts) {
  if (!failinject_active()) return; /* sanitizer build */
  memset(&specs[0], 0, sizeof(specs[0]));
  specs[0].name = "quiet";
  specs[0].behavior = &quiet_beh;
  specs[0].restart = TR_RESTART_PERMANENT;
  tr_sup_spec_t spec = {.strategy = TR_SUP_ONE_FOR_ONE, .max_restarts = 20,
                        .period_ms = 60000, .children = specs, .nchildren = 1};
  tr_ref_t sup;
  ck_assert_int_eq(tr_sup_spawn(rt, &spec, &sup), 0);
  tr_sup_info_t *q = info(sup);
  tr_ref_t c0 = q->children[0];
  tr_msg_free(q);
  /* a first message from this thread (see check_failure.c) */
  send_work(c0, W_PING, 0);
  ck_assert(tu_wait_ge(&handled, 1, 10000));
  work_t *m = work_t_new();
  m->op = W_FAIL;
  m->arg = TR_EPROTO;
  /* the next three allocations of the library fail: without a reserved
   * exit signal, the first is the child's */
  failinject_set(1, 0, 3);
  ck_assert_int_eq(tr_send(NULL, c0, m), 0);
  uint64_t end = tu_now_ms() + 10000;
  while (failinject_failed() < 3 && tu_now_ms() < end) tu_sleep_ms(1);
  uint64_t failed = failinject_failed();
  failinject_set(0, 0, 0);
  ck_assert_msg(failed == 3, "only %u allocations were made: the exit was lost",
                (unsigned)failed);
  /* restarted: a new child runs */
  tr_ref_t c1 = TR_REF_NULL;
  for (end = tu_now_ms() + 10000; tu_now_ms() < end; tu_sleep_ms(1)) {
    q = info(sup);
    c1 = q->children[0];
    tr_msg_free(q);
    if (!tr_ref_is_null(c1) && !tr_ref_eq(c1, c0)) break;
  }
  ck_assert(!tr_ref_eq(c1, c0));
  ck_assert(tr_actor_alive(c1));
  ck_assert(!tr_actor_alive(c0));
}
END_TEST

/* More children than the old fixed array of 64: every ref is reported,
 * and a caller's array that is too small learns the real count. */
START_TEST(test_tr_sup_info_children_many) {
  enum { N = 100 };
  g_report = TR_REF_NULL; /* no start events for the handle */
  tr_child_spec_t many[N];
  memset(many, 0, sizeof(many));
  for (int i = 0; i < N; i++) {
    many[i].behavior = &worker_beh;
    many[i].arg = (void *)(intptr_t)i;
  }
  tr_sup_spec_t spec = {.strategy = TR_SUP_ONE_FOR_ONE, .children = many,
                        .nchildren = N};
  tr_ref_t sup;
  ck_assert_int_eq(tr_sup_spawn(rt, &spec, &sup), 0);
  tr_sup_info_t *q = info(sup);
  ck_assert_int_eq(q->status, 0);
  ck_assert_uint_eq(q->nchildren, N);
  ck_assert_uint_eq(q->running, N);
  tr_ref_t small[10], all[N];
  ck_assert_uint_eq(tr_sup_info_children(q, small, 10), N);
  ck_assert_uint_eq(tr_sup_info_children(q, all, N), N);
  ck_assert_uint_eq(tr_sup_info_children(q, NULL, 0), N);
  for (int i = 0; i < 10; i++) ck_assert(tr_ref_eq(small[i], all[i]));
  for (int i = 0; i < N; i++) {
    ck_assert(tr_actor_alive(all[i]));
    for (int k = 0; k < i; k++) ck_assert(!tr_ref_eq(all[i], all[k]));
  }
  ck_assert(tr_ref_eq(all[N - 1], q->children[N - 1]));
  tr_msg_free(q);
}
END_TEST

Suite *supervisor_suite(void);
Suite *supervisor_suite(void) {
  Suite *s = suite_create("supervisor");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_one_for_one_restarts_only_failed);
  tcase_add_test(tc, test_one_for_all_restarts_everyone);
  tcase_add_test(tc, test_rest_for_one_restarts_later_siblings);
  tcase_add_test(tc, test_transient_normal_exit_not_restarted);
  tcase_add_test(tc, test_temporary_never_restarted);
  tcase_add_test(tc, test_intensity_exceeded_supervisor_fails);
  tcase_add_test(tc, test_escalation_nested);
  tcase_add_test(tc, test_shutdown_reverse_order);
  tcase_add_test(tc, test_runtime_shutdown_stops_tree_top_down);
  tcase_add_test(tc, test_shutdown_deadline_kills);
  tcase_add_test(tc, test_chaos_tree_recovers);
  tcase_add_test(tc, test_exit_without_memory_restarts);
  tcase_add_test(tc, test_tr_sup_info_children_many);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(supervisor_suite()); }
