/* SPDX-License-Identifier: MIT */
/*
 * Failure handling: exit reasons, links (both directions, trapping,
 * normal exits), monitors (down messages, monitoring the dead,
 * demonitor), races where both sides die at once or a monitor is set while
 * the target exits, join handles from actors and from outside threads, and
 * cancellation of queued requests when an actor stops, and exits and
 * downs that still arrive when no memory can be had as the actor stops.
 */
#include "testutil.h"
#include "failinject/failinject.h"

#include <string.h>

TR_MESSAGE_TYPE(cmd_t, int op; int arg; tr_ref_t ref;);
TR_MESSAGE_DEFINE(cmd_t);
TR_MESSAGE_TYPE(note_t, int kind; int reason; tr_ref_t ref; uint64_t id;);
TR_MESSAGE_DEFINE(note_t);
TR_MESSAGE_TYPE(val_t, int v;);
TR_MESSAGE_DEFINE(val_t);

enum { OP_FAIL, OP_STOP, OP_LINK, OP_UNLINK, OP_MONITOR, OP_DEMONITOR,
       OP_TRAP, OP_SPAWN_LINKED, OP_RESULT, OP_NOP };
enum { N_EXIT = 1, N_DOWN = 2, N_STOPPED = 3, N_JOIN = 4, N_REPLY = 5 };

typedef struct {
  tr_ref_t report; /* a handle that receives notes */
  uint64_t last_monitor;
} probe_t;

static void note(tr_ctx_t *ctx, tr_ref_t to, int kind, int reason,
                 tr_ref_t ref, uint64_t id) {
  note_t *n = note_t_new();
  if (!n) return; /* out of memory (tests/failinject/run.sh) */
  n->kind = kind;
  n->reason = reason;
  n->ref = ref;
  n->id = id;
  (void)tr_send(ctx, to, n);
}

static int probe_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  probe_t *p = state;
  p->report = *(tr_ref_t *)arg;
  return 0;
}

static const tr_behavior_t probe_beh;

static int probe_cmd(tr_ctx_t *ctx, void *state, void *msg) {
  probe_t *p = state;
  cmd_t *c = msg;
  switch (c->op) {
  case OP_FAIL: return c->arg;
  case OP_STOP: tr_actor_stop(tr_ctx_self(ctx), c->arg); return 0;
  case OP_LINK: {
    int rc = tr_link(ctx, c->ref);
    note(ctx, p->report, N_REPLY, rc, tr_ctx_self(ctx), 0);
    return 0;
  }
  case OP_UNLINK: note(ctx, p->report, N_REPLY, tr_unlink(ctx, c->ref), tr_ctx_self(ctx), 0); return 0;
  case OP_MONITOR: {
    uint64_t id = 0;
    int rc = tr_monitor(ctx, c->ref, &id);
    p->last_monitor = id;
    note(ctx, p->report, N_REPLY, rc, tr_ctx_self(ctx), id);
    return 0;
  }
  case OP_DEMONITOR: note(ctx, p->report, N_REPLY, tr_demonitor(ctx, p->last_monitor), tr_ctx_self(ctx), 0); return 0;
  case OP_TRAP: tr_ctx_trap_exit(ctx, c->arg); note(ctx, p->report, N_REPLY, 0, tr_ctx_self(ctx), 0); return 0;
  case OP_SPAWN_LINKED: {
    tr_spawn_opts_t o = {.flags = TR_SPAWN_LINK};
    tr_ref_t child;
    int rc = tr_spawn_ex(tr_ctx_runtime(ctx), &probe_beh, &p->report, &o, &child);
    note(ctx, p->report, N_REPLY, rc, child, 0);
    return 0;
  }
  case OP_RESULT: {
    val_t *v = val_t_new();
    v->v = c->arg;
    tr_ctx_set_result(ctx, v);
    return 0;
  }
  default: return 0;
  }
}

static int probe_exit(tr_ctx_t *ctx, void *state, void *msg) {
  probe_t *p = state;
  tr_exit_t *e = msg;
  note(ctx, p->report, N_EXIT, e->reason, e->from, 0);
  return 0;
}

static int probe_down(tr_ctx_t *ctx, void *state, void *msg) {
  probe_t *p = state;
  tr_down_t *d = msg;
  note(ctx, p->report, N_DOWN, d->reason, d->ref, d->monitor);
  return 0;
}

static void probe_stop(tr_ctx_t *ctx, void *state, int reason) {
  probe_t *p = state;
  note(ctx, p->report, N_STOPPED, reason, tr_ctx_self(ctx), 0);
}

static const tr_handler_t probe_h[] = {
    {TR_TYPE(cmd_t), probe_cmd},
    {TR_TYPE(tr_exit_t), probe_exit},
    {TR_TYPE(tr_down_t), probe_down},
};
static const tr_behavior_t probe_beh = {
    .name = "probe", .state_size = sizeof(probe_t), .init = probe_init,
    .on_stop = probe_stop, .handlers = TR_HANDLERS(probe_h)};

/* fixture */
static tr_runtime_t *rt;
static tr_handle_t *h;
static tr_ref_t href;

static void setup(void) {
  rt = tu_runtime(2, 0, 1);
  ck_assert_int_eq(tr_handle_new(rt, &h), 0);
  href = tr_handle_ref(h);
}

static void teardown(void) {
  tr_runtime_shutdown(rt, 5000);
  tr_handle_free(h);
  tr_runtime_free(rt);
}

static tr_ref_t probe(void) {
  tr_ref_t r;
  ck_assert_int_eq(tr_spawn(rt, &probe_beh, &href, &r), 0);
  return r;
}

static void cmd(tr_ref_t to, int op, int arg, tr_ref_t ref) {
  cmd_t *c = cmd_t_new();
  c->op = op;
  c->arg = arg;
  c->ref = ref;
  ck_assert_int_eq(tr_send(NULL, to, c), 0);
}

/* Next note of the given kind about ref (any ref if null); others that
 * arrive first are kept in order for later calls. */
static note_t *stash[256];
static int nstash;
static note_t *expect(int kind, tr_ref_t ref) {
  for (int i = 0; i < nstash; i++)
    if (stash[i]->kind == kind && (tr_ref_is_null(ref) || tr_ref_eq(stash[i]->ref, ref))) {
      note_t *n = stash[i];
      memmove(&stash[i], &stash[i + 1], (size_t)(nstash - i - 1) * sizeof(*stash));
      nstash--;
      return n;
    }
  for (;;) {
    void *m;
    int rc = tr_handle_receive(h, 5000, &m);
    ck_assert_msg(rc == 0, "no note of kind %d: %s", kind, tr_err_name(rc));
    note_t *n = m;
    ck_assert_ptr_eq(tr_msg_type(n), TR_TYPE(note_t));
    if (n->kind == kind && (tr_ref_is_null(ref) || tr_ref_eq(n->ref, ref)))
      return n;
    ck_assert_int_lt(nstash, 256);
    stash[nstash++] = n;
  }
}

static int expect_reason(int kind, tr_ref_t ref) {
  note_t *n = expect(kind, ref);
  int r = n->reason;
  tr_msg_free(n);
  return r;
}

/* The "stopped" note is sent while the actor finalizes, a moment before
 * its ref goes dead: wait for that, so that what follows meets a dead
 * actor rather than a dying one (which answers links and monitors with
 * its stop reason instead). */
static void wait_dead(tr_ref_t ref) {
  for (int i = 0; i < 5000 && tr_actor_alive(ref); i++) tu_sleep_ms(1);
  ck_assert(!tr_actor_alive(ref));
}

static void clear_stash(void) {
  for (int i = 0; i < nstash; i++) tr_msg_free(stash[i]);
  nstash = 0;
}

START_TEST(test_handler_error_is_exit_reason) {
  tr_ref_t a = probe();
  cmd(a, OP_FAIL, TR_EPROTO, TR_REF_NULL);
  ck_assert_int_eq(expect_reason(N_STOPPED, a), TR_EPROTO);
  /* on_stop runs just before the ref goes dead */
  uint64_t end = tu_now_ms() + 5000;
  while (tr_actor_alive(a) && tu_now_ms() < end) tu_sleep_ms(1);
  ck_assert(!tr_actor_alive(a));
  tr_ref_t b = probe();
  cmd(b, OP_STOP, TR_EXIT_USER + 7, TR_REF_NULL);
  ck_assert_int_eq(expect_reason(N_STOPPED, b), TR_EXIT_USER + 7);
  clear_stash();
}
END_TEST

START_TEST(test_link_abnormal_exit_propagates) {
  tr_ref_t a = probe(), b = probe();
  cmd(a, OP_LINK, 0, b);
  ck_assert_int_eq(expect_reason(N_REPLY, a), 0);
  cmd(b, OP_FAIL, TR_EPROTO, TR_REF_NULL);
  ck_assert_int_eq(expect_reason(N_STOPPED, b), TR_EPROTO);
  /* a dies with the same reason */
  ck_assert_int_eq(expect_reason(N_STOPPED, a), TR_EPROTO);
  clear_stash();
}
END_TEST

START_TEST(test_link_both_directions) {
  tr_ref_t a = probe(), b = probe();
  cmd(a, OP_LINK, 0, b);
  ck_assert_int_eq(expect_reason(N_REPLY, a), 0);
  cmd(a, OP_FAIL, TR_EINVAL, TR_REF_NULL);
  ck_assert_int_eq(expect_reason(N_STOPPED, b), TR_EINVAL);
  clear_stash();
}
END_TEST

START_TEST(test_link_normal_exit_does_not_propagate) {
  tr_ref_t a = probe(), b = probe();
  cmd(a, OP_LINK, 0, b);
  ck_assert_int_eq(expect_reason(N_REPLY, a), 0);
  cmd(b, OP_STOP, TR_EXIT_NORMAL, TR_REF_NULL);
  ck_assert_int_eq(expect_reason(N_STOPPED, b), TR_EXIT_NORMAL);
  /* a is still alive and answers */
  cmd(a, OP_TRAP, 0, TR_REF_NULL);
  ck_assert_int_eq(expect_reason(N_REPLY, a), 0);
  ck_assert(tr_actor_alive(a));
  clear_stash();
}
END_TEST

START_TEST(test_link_trap_exit_receives_message) {
  tr_ref_t a = probe(), b = probe();
  cmd(a, OP_TRAP, 1, TR_REF_NULL);
  ck_assert_int_eq(expect_reason(N_REPLY, a), 0);
  cmd(a, OP_LINK, 0, b);
  ck_assert_int_eq(expect_reason(N_REPLY, a), 0);
  cmd(b, OP_FAIL, TR_EPROTO, TR_REF_NULL);
  note_t *n = expect(N_EXIT, b);
  ck_assert_int_eq(n->reason, TR_EPROTO);
  tr_msg_free(n);
  ck_assert(tr_actor_alive(a));
  clear_stash();
}
END_TEST

START_TEST(test_link_to_dead_actor_fails) {
  tr_ref_t a = probe(), b = probe();
  cmd(b, OP_STOP, 0, TR_REF_NULL);
  ck_assert_int_eq(expect_reason(N_STOPPED, b), 0);
  wait_dead(b);
  cmd(a, OP_LINK, 0, b);
  ck_assert_int_eq(expect_reason(N_REPLY, a), TR_ENOACTOR);
  clear_stash();
}
END_TEST

START_TEST(test_unlink_stops_propagation) {
  tr_ref_t a = probe(), b = probe();
  cmd(a, OP_LINK, 0, b);
  ck_assert_int_eq(expect_reason(N_REPLY, a), 0);
  cmd(a, OP_UNLINK, 0, b);
  ck_assert_int_eq(expect_reason(N_REPLY, a), 0);
  cmd(a, OP_UNLINK, 0, b);
  ck_assert_int_eq(expect_reason(N_REPLY, a), TR_ENOENT);
  cmd(b, OP_FAIL, TR_EPROTO, TR_REF_NULL);
  ck_assert_int_eq(expect_reason(N_STOPPED, b), TR_EPROTO);
  cmd(a, OP_TRAP, 0, TR_REF_NULL);
  ck_assert_int_eq(expect_reason(N_REPLY, a), 0);
  ck_assert(tr_actor_alive(a));
  clear_stash();
}
END_TEST

START_TEST(test_monitor_down_with_reason) {
  tr_ref_t a = probe(), b = probe();
  cmd(a, OP_MONITOR, 0, b);
  note_t *r = expect(N_REPLY, a);
  ck_assert_int_eq(r->reason, 0);
  uint64_t id = r->id;
  tr_msg_free(r);
  cmd(b, OP_FAIL, TR_EPROTO, TR_REF_NULL);
  note_t *d = expect(N_DOWN, b);
  ck_assert_int_eq(d->reason, TR_EPROTO);
  ck_assert_uint_eq(d->id, id);
  tr_msg_free(d);
  ck_assert(tr_actor_alive(a)); /* monitors never kill the watcher */
  clear_stash();
}
END_TEST

START_TEST(test_monitor_dead_actor_down_at_once) {
  tr_ref_t a = probe(), b = probe();
  cmd(b, OP_STOP, 0, TR_REF_NULL);
  ck_assert_int_eq(expect_reason(N_STOPPED, b), 0);
  wait_dead(b);
  cmd(a, OP_MONITOR, 0, b);
  ck_assert_int_eq(expect_reason(N_REPLY, a), 0);
  ck_assert_int_eq(expect_reason(N_DOWN, b), TR_ENOACTOR);
  clear_stash();
}
END_TEST

START_TEST(test_demonitor_no_down) {
  tr_ref_t a = probe(), b = probe();
  cmd(a, OP_MONITOR, 0, b);
  ck_assert_int_eq(expect_reason(N_REPLY, a), 0);
  cmd(a, OP_DEMONITOR, 0, TR_REF_NULL);
  ck_assert_int_eq(expect_reason(N_REPLY, a), 0);
  cmd(a, OP_DEMONITOR, 0, TR_REF_NULL);
  ck_assert_int_eq(expect_reason(N_REPLY, a), TR_ENOENT);
  cmd(b, OP_STOP, 0, TR_REF_NULL);
  ck_assert_int_eq(expect_reason(N_STOPPED, b), 0);
  /* make sure a has processed anything b sent, then check no down came */
  cmd(a, OP_TRAP, 0, TR_REF_NULL);
  ck_assert_int_eq(expect_reason(N_REPLY, a), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 5000), 0);
  for (int i = 0; i < nstash; i++) ck_assert_int_ne(stash[i]->kind, N_DOWN);
  void *m;
  while (tr_handle_receive(h, 50, &m) == 0) {
    ck_assert_int_ne(((note_t *)m)->kind, N_DOWN);
    tr_msg_free(m);
  }
  clear_stash();
}
END_TEST

START_TEST(test_handle_monitor) {
  tr_ref_t b = probe();
  uint64_t id;
  ck_assert_int_eq(tr_handle_monitor(h, b, &id), 0);
  ck_assert_int_eq(tr_actor_stop(b, TR_EXIT_KILLED), 0);
  for (;;) {
    void *m;
    ck_assert_int_eq(tr_handle_receive(h, 5000, &m), 0);
    if (tr_msg_type(m) == TR_TYPE(tr_down_t)) {
      tr_down_t *d = m;
      ck_assert(tr_ref_eq(d->ref, b));
      ck_assert_int_eq(d->reason, TR_EXIT_KILLED);
      ck_assert_uint_eq(d->monitor, id);
      tr_msg_free(m);
      break;
    }
    tr_msg_free(m);
  }
}
END_TEST

/* Many pairs linked and monitored, both sides failing at the same time:
 * every actor ends, every monitor fires exactly once. */
START_TEST(test_race_both_die_at_once) {
  enum { PAIRS = 200 };
  tr_ref_t a[PAIRS], b[PAIRS];
  for (int i = 0; i < PAIRS; i++) {
    a[i] = probe();
    b[i] = probe();
    cmd(a[i], OP_LINK, 0, b[i]);
  }
  for (int i = 0; i < PAIRS; i++) ck_assert_int_eq(expect_reason(N_REPLY, a[i]), 0);
  uint64_t ids[PAIRS];
  for (int i = 0; i < PAIRS; i++) ck_assert_int_eq(tr_handle_monitor(h, a[i], &ids[i]), 0);
  for (int i = 0; i < PAIRS; i++) {
    cmd(a[i], OP_FAIL, TR_EPROTO, TR_REF_NULL);
    /* b may already be gone, taken down by the link: that is the race */
    cmd_t *c = cmd_t_new();
    c->op = OP_FAIL;
    c->arg = TR_EPERM;
    int rc = tr_send(NULL, b[i], c);
    ck_assert(rc == 0 || rc == TR_ENOACTOR);
  }
  int downs = 0, stopped = 0;
  while (downs < PAIRS || stopped < 2 * PAIRS) {
    void *m;
    ck_assert_int_eq(tr_handle_receive(h, 5000, &m), 0);
    if (tr_msg_type(m) == TR_TYPE(tr_down_t)) downs++;
    else if (((note_t *)m)->kind == N_STOPPED) {
      int r = ((note_t *)m)->reason;
      ck_assert(r == TR_EPROTO || r == TR_EPERM);
      stopped++;
    }
    tr_msg_free(m);
  }
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 5000), 0);
  tr_runtime_stats_t st;
  tr_runtime_stats(rt, &st);
  ck_assert_uint_eq(st.actors_live, 0);
  void *m;
  ck_assert_int_eq(tr_handle_receive(h, 20, &m), TR_ETIMEDOUT);
}
END_TEST

/* Monitors set while the target is exiting: each gets exactly one down. */
START_TEST(test_race_monitor_while_exiting) {
  enum { N = 300 };
  for (int i = 0; i < N; i++) {
    tr_ref_t b = probe();
    cmd(b, OP_STOP, TR_EXIT_USER, TR_REF_NULL);
    uint64_t id;
    ck_assert_int_eq(tr_handle_monitor(h, b, &id), 0);
    int got_down = 0, got_stop = 0;
    while (!got_down || !got_stop) {
      void *m;
      ck_assert_int_eq(tr_handle_receive(h, 5000, &m), 0);
      if (tr_msg_type(m) == TR_TYPE(tr_down_t)) {
        tr_down_t *d = m;
        ck_assert_uint_eq(d->monitor, id);
        ck_assert(d->reason == TR_EXIT_USER || d->reason == TR_ENOACTOR);
        got_down++;
      } else {
        got_stop++;
      }
      tr_msg_free(m);
    }
    ck_assert_int_eq(got_down, 1);
  }
  void *m;
  ck_assert_int_eq(tr_handle_receive(h, 20, &m), TR_ETIMEDOUT);
}
END_TEST

START_TEST(test_spawn_link_child_dies_with_parent) {
  tr_ref_t p = probe();
  cmd(p, OP_SPAWN_LINKED, 0, TR_REF_NULL);
  note_t *n = expect(N_REPLY, TR_REF_NULL);
  ck_assert_int_eq(n->reason, 0);
  tr_ref_t child = n->ref;
  tr_msg_free(n);
  cmd(p, OP_FAIL, TR_EPROTO, TR_REF_NULL);
  ck_assert_int_eq(expect_reason(N_STOPPED, child), TR_EPROTO);
  clear_stash();
}
END_TEST

START_TEST(test_join_wait_result_and_failure) {
  tr_join_t *j;
  tr_spawn_opts_t o = {.join = &j};
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn_ex(rt, &probe_beh, &href, &o, &a), 0);
  int reason = -1;
  void *res = NULL;
  ck_assert_int_eq(tr_join_wait(j, 30, &reason, &res), TR_ETIMEDOUT);
  cmd(a, OP_RESULT, 42, TR_REF_NULL);
  cmd(a, OP_STOP, TR_EXIT_NORMAL, TR_REF_NULL);
  ck_assert_int_eq(tr_join_wait(j, 5000, &reason, &res), 0);
  ck_assert_int_eq(reason, 0);
  ck_assert_ptr_nonnull(res);
  ck_assert_int_eq(((val_t *)res)->v, 42);
  tr_msg_free(res);
  tr_join_free(j);

  ck_assert_int_eq(tr_spawn_ex(rt, &probe_beh, &href, &o, &a), 0);
  cmd(a, OP_FAIL, TR_EPROTO, TR_REF_NULL);
  ck_assert_int_eq(tr_join_wait(j, 5000, &reason, &res), 0);
  ck_assert_int_eq(reason, TR_EPROTO);
  ck_assert_ptr_null(res);
  tr_join_free(j);
  clear_stash();
}
END_TEST

/* An actor awaiting a join handle gets the child's result as a message. */
typedef struct {
  tr_ref_t report;
  tr_join_t *j;
} waiter_t;

static int on_joined(tr_ctx_t *ctx, void *state, int status, void *reply,
                     void *cookie) {
  waiter_t *w = state;
  (void)cookie;
  note(ctx, w->report, N_JOIN, status, TR_REF_NULL,
       reply ? (uint64_t)((val_t *)reply)->v : 0);
  tr_join_free(w->j);
  tr_actor_stop(tr_ctx_self(ctx), 0);
  return 0;
}

static int waiter_init(tr_ctx_t *ctx, void *state, void *arg) {
  waiter_t *w = state;
  w->report = *(tr_ref_t *)arg;
  tr_spawn_opts_t o = {.join = &w->j};
  tr_ref_t child;
  int rc = tr_spawn_ex(tr_ctx_runtime(ctx), &probe_beh, &w->report, &o, &child);
  if (rc) return rc;
  ck_assert_int_eq(tr_join_await(ctx, w->j, on_joined, NULL), 0);
  ck_assert_int_eq(tr_join_await(ctx, w->j, on_joined, NULL), TR_EBUSY);
  cmd_t *c = cmd_t_new();
  c->op = OP_RESULT;
  c->arg = 7;
  ck_assert_int_eq(tr_send(ctx, child, c), 0);
  c = cmd_t_new();
  c->op = OP_STOP;
  c->arg = TR_EXIT_USER + 1;
  ck_assert_int_eq(tr_send(ctx, child, c), 0);
  return 0;
}

static const tr_behavior_t waiter_beh = {
    .name = "waiter", .state_size = sizeof(waiter_t), .init = waiter_init};

START_TEST(test_join_await_in_actor) {
  tr_ref_t w;
  ck_assert_int_eq(tr_spawn(rt, &waiter_beh, &href, &w), 0);
  note_t *n = expect(N_JOIN, TR_REF_NULL);
  ck_assert_int_eq(n->reason, TR_EXIT_USER + 1);
  ck_assert_uint_eq(n->id, 7);
  tr_msg_free(n);
  clear_stash();
}
END_TEST

/* Stopping an actor cancels the requests queued for it: each asker gets
 * TR_ENOREPLY; nothing is lost. */
static int slow_handler(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  (void)msg;
  return 0;
}
static const tr_handler_t slow_h[] = {{TR_TYPE(val_t), slow_handler}};
static const tr_behavior_t slow_beh = {.name = "slow", .handlers = TR_HANDLERS(slow_h)};

START_TEST(test_cancel_queued_requests_on_stop) {
  /* one worker is kept busy so the target cannot run before the stop */
  tr_ref_t t;
  ck_assert_int_eq(tr_spawn(rt, &slow_beh, NULL, &t), 0);
  ck_assert_int_eq(tr_actor_stop(t, TR_EXIT_SHUTDOWN), 0);
  val_t *v = val_t_new();
  void *reply = NULL;
  int rc = tr_handle_call(h, t, v, 5000, &reply);
  /* either the request was queued and dropped, or the actor was gone */
  ck_assert_msg(rc == TR_ENOREPLY || rc == TR_ENOACTOR, "got %s", tr_err_name(rc));
}
END_TEST


/* ---- no memory when the actor stops ---------------------------------------
 * A victim fails while every allocation inside the library fails: the
 * exit or down it owes must still arrive (made when the relation was).
 * The actors here allocate nothing in their handlers; the watcher counts
 * what it gets in globals, read by the test once the injector is off. */
static _Atomic uint64_t oom_nops, oom_exits, oom_downs;
static _Atomic int oom_reason;
static _Atomic uint64_t oom_from;
static tr_ref_t oom_victim;

static int victim_cmd(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  cmd_t *c = msg;
  if (c->op == OP_NOP) {
    atomic_fetch_add(&oom_nops, 1);
    return 0;
  }
  return c->arg;
}
static const tr_handler_t victim_h[] = {{TR_TYPE(cmd_t), victim_cmd}};
static const tr_behavior_t victim_beh = {.name = "victim",
                                         .handlers = TR_HANDLERS(victim_h)};

static int oom_exit(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  tr_exit_t *e = msg;
  atomic_store(&oom_reason, e->reason);
  atomic_store(&oom_from, e->from.id);
  atomic_fetch_add(&oom_exits, 1);
  return 0;
}
static int oom_down(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  tr_down_t *d = msg;
  atomic_store(&oom_reason, d->reason);
  atomic_store(&oom_from, d->ref.id);
  atomic_fetch_add(&oom_downs, 1);
  return 0;
}
/* arg: the spawn flags it uses for the victim */
static int oom_watcher_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)state;
  tr_ctx_trap_exit(ctx, 1);
  tr_spawn_opts_t o = {.flags = (unsigned)(uintptr_t)arg};
  return tr_spawn_ex(tr_ctx_runtime(ctx), &victim_beh, NULL, &o, &oom_victim);
}
static const tr_handler_t oom_watcher_h[] = {
    {TR_TYPE(cmd_t), victim_cmd}, /* OP_NOP only */
    {TR_TYPE(tr_exit_t), oom_exit},
    {TR_TYPE(tr_down_t), oom_down},
};
static const tr_behavior_t oom_watcher_beh = {
    .name = "oom-watcher", .init = oom_watcher_init,
    .handlers = TR_HANDLERS(oom_watcher_h)};

static void oom_reset(void) {
  atomic_store(&oom_nops, 0);
  atomic_store(&oom_exits, 0);
  atomic_store(&oom_downs, 0);
  atomic_store(&oom_reason, 0);
  atomic_store(&oom_from, 0);
}

/* Makes the victim fail with TR_EPROTO while no allocation of the library
 * succeeds; returns once *counter reached 1 or 10 s passed (then with the
 * injector off again). */
static int oom_fail_victim(_Atomic uint64_t *counter) {
  /* a first send from this thread: the runtime's queue for actors woken
   * from outside is made on first use, and waits for memory */
  cmd(oom_victim, OP_NOP, 0, TR_REF_NULL);
  ck_assert(tu_wait_ge(&oom_nops, 1, 10000));
  cmd_t *c = cmd_t_new();
  c->op = OP_FAIL;
  c->arg = TR_EPROTO;
  failinject_set(1, 0, 0);
  void *none = tr_msg_new(TR_TYPE(val_t)); /* the injector is on */
  int rc = tr_send(NULL, oom_victim, c);
  int got = rc == 0 && tu_wait_ge(counter, 1, 10000);
  failinject_set(0, 0, 0);
  ck_assert_int_eq(rc, 0);
  ck_assert_ptr_null(none);
  return got;
}

START_TEST(test_link_exit_arrives_without_memory) {
  if (!failinject_active()) return; /* sanitizer build */
  oom_reset();
  tr_ref_t w;
  ck_assert_int_eq(tr_spawn(rt, &oom_watcher_beh,
                            (void *)(uintptr_t)TR_SPAWN_LINK, &w), 0);
  ck_assert_msg(oom_fail_victim(&oom_exits), "the exit was lost");
  ck_assert_int_eq(atomic_load(&oom_reason), TR_EPROTO);
  ck_assert_uint_eq(atomic_load(&oom_from), oom_victim.id);
  ck_assert(tr_actor_alive(w)); /* it traps exits: the exit is a message */
}
END_TEST

START_TEST(test_monitor_down_arrives_without_memory) {
  if (!failinject_active()) return; /* sanitizer build */
  oom_reset();
  tr_ref_t w;
  ck_assert_int_eq(tr_spawn(rt, &oom_watcher_beh,
                            (void *)(uintptr_t)TR_SPAWN_MONITOR, &w), 0);
  ck_assert_msg(oom_fail_victim(&oom_downs), "the down was lost");
  ck_assert_int_eq(atomic_load(&oom_reason), TR_EPROTO);
  ck_assert_uint_eq(atomic_load(&oom_from), oom_victim.id);
  ck_assert(tr_actor_alive(w));
}
END_TEST

START_TEST(test_handle_monitor_down_arrives_without_memory) {
  if (!failinject_active()) return; /* sanitizer build */
  oom_reset();
  ck_assert_int_eq(tr_spawn(rt, &victim_beh, NULL, &oom_victim), 0);
  uint64_t id = 0;
  ck_assert_int_eq(tr_handle_monitor(h, oom_victim, &id), 0);
  /* the victim has taken the monitor once it handled a later message */
  cmd(oom_victim, OP_NOP, 0, TR_REF_NULL);
  ck_assert(tu_wait_ge(&oom_nops, 1, 10000));
  cmd_t *c = cmd_t_new();
  c->op = OP_FAIL;
  c->arg = TR_EPROTO;
  failinject_set(1, 0, 0);
  int rc = tr_send(NULL, oom_victim, c);
  void *m = NULL;
  int got = rc == 0 ? tr_handle_receive(h, 10000, &m) : rc;
  failinject_set(0, 0, 0);
  ck_assert_msg(got == 0, "the down was lost: %s", tr_err_name(got));
  ck_assert_ptr_eq(tr_msg_type(m), TR_TYPE(tr_down_t));
  tr_down_t *d = m;
  ck_assert_uint_eq(d->monitor, id);
  ck_assert_int_eq(d->reason, TR_EPROTO);
  ck_assert(tr_ref_eq(d->ref, oom_victim));
  tr_msg_free(m);
}
END_TEST

/* The first send from a thread outside the workers, on a new runtime,
 * while no allocation of the library succeeds: it is delivered (the queue
 * for actors woken from outside exists from the runtime's creation; it was
 * made on first use, and the send spun there waiting for memory). */
START_TEST(test_first_foreign_send_without_memory) {
  if (!failinject_active()) return; /* sanitizer build */
  tr_runtime_t *r2 = tu_runtime(1, 0, 1);
  tr_ref_t v;
  oom_reset();
  ck_assert_int_eq(tr_spawn(r2, &victim_beh, NULL, &v), 0);
  cmd_t *c = cmd_t_new();
  ck_assert_ptr_nonnull(c);
  c->op = OP_NOP;
  failinject_set(1, 0, 0);
  int rc = tr_send(NULL, v, c);
  int got = rc == 0 && tu_wait_ge(&oom_nops, 1, 10000);
  failinject_set(0, 0, 0);
  ck_assert_int_eq(rc, 0);
  ck_assert_msg(got, "the message was not handled");
  tu_runtime_finish(r2);
}
END_TEST

/* A link or a monitor that cannot be made fails with TR_ENOMEM and has no
 * effect: no exit or down comes of it later. */
static _Atomic int oom_call_rc[2];
static int oom_try_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)state;
  tr_ref_t target = *(tr_ref_t *)arg;
  tr_ctx_trap_exit(ctx, 1);
  failinject_set(1, 0, 0);
  atomic_store(&oom_call_rc[0], tr_link(ctx, target));
  uint64_t id = 0;
  atomic_store(&oom_call_rc[1], tr_monitor(ctx, target, &id));
  failinject_set(0, 0, 0);
  return 0;
}
static const tr_behavior_t oom_try_beh = {
    .name = "oom-try", .init = oom_try_init,
    .handlers = TR_HANDLERS(oom_watcher_h)};

START_TEST(test_link_monitor_without_memory_fail_cleanly) {
  if (!failinject_active()) return; /* sanitizer build */
  oom_reset();
  ck_assert_int_eq(tr_spawn(rt, &victim_beh, NULL, &oom_victim), 0);
  tr_ref_t w;
  ck_assert_int_eq(tr_spawn(rt, &oom_try_beh, &oom_victim, &w), 0);
  ck_assert_int_eq(atomic_load(&oom_call_rc[0]), TR_ENOMEM);
  ck_assert_int_eq(atomic_load(&oom_call_rc[1]), TR_ENOMEM);
  cmd(oom_victim, OP_FAIL, TR_EPROTO, TR_REF_NULL);
  wait_dead(oom_victim);
  /* an exit or a down owed was sent before the victim's ref went dead,
   * and would be handled before this later message */
  cmd(w, OP_NOP, 0, TR_REF_NULL);
  ck_assert(tu_wait_ge(&oom_nops, 1, 10000));
  ck_assert_uint_eq(atomic_load(&oom_exits), 0);
  ck_assert_uint_eq(atomic_load(&oom_downs), 0);
  ck_assert(tr_actor_alive(w));
}
END_TEST

Suite *failure_suite(void);
Suite *failure_suite(void) {
  Suite *s = suite_create("failure");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_handler_error_is_exit_reason);
  tcase_add_test(tc, test_link_abnormal_exit_propagates);
  tcase_add_test(tc, test_link_both_directions);
  tcase_add_test(tc, test_link_normal_exit_does_not_propagate);
  tcase_add_test(tc, test_link_trap_exit_receives_message);
  tcase_add_test(tc, test_link_to_dead_actor_fails);
  tcase_add_test(tc, test_unlink_stops_propagation);
  tcase_add_test(tc, test_monitor_down_with_reason);
  tcase_add_test(tc, test_monitor_dead_actor_down_at_once);
  tcase_add_test(tc, test_demonitor_no_down);
  tcase_add_test(tc, test_handle_monitor);
  tcase_add_test(tc, test_race_both_die_at_once);
  tcase_add_test(tc, test_race_monitor_while_exiting);
  tcase_add_test(tc, test_spawn_link_child_dies_with_parent);
  tcase_add_test(tc, test_join_wait_result_and_failure);
  tcase_add_test(tc, test_join_await_in_actor);
  tcase_add_test(tc, test_cancel_queued_requests_on_stop);
  tcase_add_test(tc, test_link_exit_arrives_without_memory);
  tcase_add_test(tc, test_first_foreign_send_without_memory);
  tcase_add_test(tc, test_monitor_down_arrives_without_memory);
  tcase_add_test(tc, test_handle_monitor_down_arrives_without_memory);
  tcase_add_test(tc, test_link_monitor_without_memory_fail_cleanly);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(failure_suite()); }
