/* SPDX-License-Identifier: MIT */
/*
 * Tests of actor priorities (tr_spawn_ex with tr_spawn_opts_t.priority) on
 * a single worker, where the order in which messages are handled shows the
 * scheduler's choices: busy critical and high actors must not starve normal
 * and low ones (every class makes progress), and while every class has
 * work, a higher class gets at least as much of the worker as a lower one.
 */
#include <check.h>
#include <stdlib.h>

#include <troupe.h>

#include "testutil.h"

TR_MESSAGE_TYPE(work_t, uint32_t cls;)
TR_MESSAGE_DEFINE(work_t);

enum { N = 20000 }; /* messages per class */

static _Atomic uint64_t handled, per_class[TR_PRIO_COUNT];
static _Atomic uint32_t log_idx;
static uint8_t order_log[TR_PRIO_COUNT * N];
static _Atomic int flood_on;

static void reset(void) {
  atomic_store(&handled, 0);
  atomic_store(&log_idx, 0);
  atomic_store(&flood_on, 1);
  for (int i = 0; i < TR_PRIO_COUNT; i++)
    atomic_store(&per_class[i], 0);
}

static int logger_on_work(tr_ctx_t *ctx, void *state, void *msg) {
  uint32_t cls = ((work_t *)msg)->cls;
  uint32_t i = atomic_fetch_add(&log_idx, 1);
  (void)ctx;
  (void)state;
  if (i < TR_PRIO_COUNT * N)
    order_log[i] = (uint8_t)cls;
  atomic_fetch_add(&per_class[cls], 1);
  atomic_fetch_add(&handled, 1);
  return 0;
}

/* flooder: resends each message to itself while flood_on is set. */
static int flooder_on_work(tr_ctx_t *ctx, void *state, void *msg) {
  (void)state;
  atomic_fetch_add(&per_class[((work_t *)msg)->cls], 1);
  if (atomic_load(&flood_on))
    (void)tr_send(ctx, tr_ctx_self(ctx), msg);
  return 0;
}

static const tr_handler_t logger_h[] = {{.type = TR_TYPE(work_t), .fn = logger_on_work}};
static const tr_handler_t flooder_h[] = {{.type = TR_TYPE(work_t), .fn = flooder_on_work}};
static const tr_behavior_t logger = {.name = "logger",
                                     .handlers = TR_HANDLERS(logger_h)};
static const tr_behavior_t flooder = {.name = "flooder",
                                      .handlers = TR_HANDLERS(flooder_h)};

static tr_ref_t spawn_prio(tr_runtime_t *rt, const tr_behavior_t *b,
                           tr_priority_t p) {
  tr_spawn_opts_t o = {.priority = p};
  tr_ref_t r;
  ck_assert_int_eq(tr_spawn_ex(rt, b, NULL, &o, &r), 0);
  return r;
}

static void send_work(tr_ref_t to, uint32_t cls, int n) {
  for (int i = 0; i < n; i++) {
    work_t *w = work_t_new();
    ck_assert_ptr_nonnull(w);
    w->cls = cls;
    ck_assert_int_eq(tr_send(NULL, to, w), 0);
  }
}

/* Loads N messages into one actor of each class before the start and
 * records the order in which the single worker handles them. Returns the
 * length of the prefix in which every class still had mail, with the
 * per-class counts over that prefix in cnt. */
static uint32_t run_all_busy(unsigned budget, uint32_t cnt[TR_PRIO_COUNT]) {
  tr_runtime_t *rt = tu_runtime(1, budget, 0);
  uint32_t total[TR_PRIO_COUNT] = {0, 0, 0, 0};
  uint32_t end = 0;
  tr_ref_t r[TR_PRIO_COUNT];
  reset();
  /* Lowest first, so that arrival order favours the lower classes. */
  for (int c = TR_PRIO_COUNT - 1; c >= 0; c--)
    r[c] = spawn_prio(rt, &logger, (tr_priority_t)c);
  for (int c = TR_PRIO_COUNT - 1; c >= 0; c--)
    send_work(r[c], (uint32_t)c, N);
  ck_assert_int_eq(tr_runtime_start(rt), 0);
  ck_assert(tu_wait_ge(&handled, TR_PRIO_COUNT * N, 60000));
  tu_runtime_finish(rt);
  for (int c = 0; c < TR_PRIO_COUNT; c++)
    cnt[c] = 0;
  for (uint32_t i = 0; i < TR_PRIO_COUNT * N; i++) {
    uint8_t c = order_log[i];
    ck_assert_uint_lt(c, TR_PRIO_COUNT);
    total[c]++;
    cnt[c]++;
    if (total[c] == N) {
      end = i + 1;
      break;
    }
  }
  return end;
}

START_TEST(test_tr_spawn_ex_priority_no_starvation) {
  uint32_t cnt[TR_PRIO_COUNT];
  uint32_t end = run_all_busy(0, cnt);
  /* Before the first class ran dry, every class got some of the worker. */
  for (int c = 0; c < TR_PRIO_COUNT; c++)
    ck_assert_msg(cnt[c] > 0,
                  "class %d starved: counts crit %u high %u normal %u low %u "
                  "over the first %u messages",
                  c, cnt[0], cnt[1], cnt[2], cnt[3], end);
}
END_TEST

START_TEST(test_tr_spawn_ex_priority_share) {
  uint32_t cnt[TR_PRIO_COUNT];
  uint32_t end = run_all_busy(0, cnt);
  ck_assert_msg(cnt[TR_PRIO_CRITICAL] >= cnt[TR_PRIO_HIGH] &&
                    cnt[TR_PRIO_HIGH] >= cnt[TR_PRIO_NORMAL] &&
                    cnt[TR_PRIO_NORMAL] >= cnt[TR_PRIO_LOW] &&
                    cnt[TR_PRIO_CRITICAL] > cnt[TR_PRIO_LOW],
                "shares while all busy (first %u messages): crit %u high %u "
                "normal %u low %u",
                end, cnt[0], cnt[1], cnt[2], cnt[3]);
}
END_TEST

START_TEST(test_tr_spawn_ex_priority_flood_progress) {
  /* Critical and high actors that never run out of work; normal and low
   * mail sent while they flood must still be handled. */
  enum { M = 100 };
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_ref_t fc, fh, ln, ll;
  reset();
  fc = spawn_prio(rt, &flooder, TR_PRIO_CRITICAL);
  fh = spawn_prio(rt, &flooder, TR_PRIO_HIGH);
  ln = spawn_prio(rt, &logger, TR_PRIO_NORMAL);
  ll = spawn_prio(rt, &logger, TR_PRIO_LOW);
  send_work(fc, TR_PRIO_CRITICAL, 4);
  send_work(fh, TR_PRIO_HIGH, 4);
  tu_sleep_ms(20);
  send_work(ln, TR_PRIO_NORMAL, M);
  send_work(ll, TR_PRIO_LOW, M);
  ck_assert_msg(tu_wait_ge(&per_class[TR_PRIO_LOW], M, 10000) &&
                    tu_wait_ge(&per_class[TR_PRIO_NORMAL], M, 10000),
                "normal %llu, low %llu of %d handled under a flood",
                (unsigned long long)atomic_load(&per_class[TR_PRIO_NORMAL]),
                (unsigned long long)atomic_load(&per_class[TR_PRIO_LOW]), M);
  /* The flooders kept running meanwhile. */
  ck_assert_uint_gt(atomic_load(&per_class[TR_PRIO_CRITICAL]), 4);
  ck_assert_uint_gt(atomic_load(&per_class[TR_PRIO_HIGH]), 4);
  atomic_store(&flood_on, 0);
  tu_runtime_finish(rt);
}
END_TEST

static Suite *priority_suite(void) {
  Suite *s = suite_create("priority");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_tr_spawn_ex_priority_no_starvation);
  tcase_add_test(tc, test_tr_spawn_ex_priority_share);
  tcase_add_test(tc, test_tr_spawn_ex_priority_flood_progress);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(priority_suite()); }
