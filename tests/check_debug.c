/* SPDX-License-Identifier: MIT */
/*
 * Tests of the checks of --enable-debug builds (lib/debug.h): misuse that
 * a release build lets pass silently must stop the program with SIGABRT
 * and one line naming the call. Each misuse runs in a child process made
 * here with fork(), whose stderr goes to a pipe; the parent asserts the
 * child was killed by SIGABRT and said the expected words. A control case
 * checks that correct use does not abort. Skipped (77) in release builds;
 * under AddressSanitizer or ThreadSanitizer the double-free cases are
 * skipped, since the sanitizer reports the read of freed memory first.
 */
#include <check.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <troupe.h>

#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_ASAN 1
#endif
#endif
#ifndef TU_ASAN
#define TU_ASAN 0
#endif
/* The sanitizer stops the child at the read of freed memory. */
#define FREED_READ_CAUGHT (TU_ASAN || TU_TSAN)

TR_MESSAGE_TYPE(probe_t, int v;)
TR_MESSAGE_DEFINE(probe_t);

/* Runs fn in a child; returns its status, with what it wrote on stderr in
 * out (NUL-terminated). */
static int run_child(void (*fn)(void), char *out, size_t cap) {
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    /* no core files for the aborts asked for */
    signal(SIGABRT, SIG_DFL);
    fn();
    _exit(0); /* the misuse went unnoticed */
  }
  close(fds[1]);
  size_t n = 0;
  ssize_t r;
  while (n + 1 < cap && (r = read(fds[0], out + n, cap - 1 - n)) != 0) {
    if (r < 0) break;
    n += (size_t)r;
  }
  out[n] = '\0';
  close(fds[0]);
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  return st;
}

static void expect_abort(void (*fn)(void), const char *words) {
  char err[4096];
  int st = run_child(fn, err, sizeof(err));
  ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
                "child not aborted (status 0x%x), stderr: %s", st, err);
  ck_assert_msg(strstr(err, words) != NULL, "stderr lacks \"%s\": %s", words,
                err);
}

/* ---- messages -------------------------------------------------------- */

static void msg_free_twice(void) {
  probe_t *m = probe_t_new();
  tr_msg_free(m);
  tr_msg_free(m);
  /* unnoticed, the next two messages would share one block */
}

START_TEST(test_tr_msg_free_twice) {
  if (FREED_READ_CAUGHT) return;
  expect_abort(msg_free_twice,
               "troupe: tr_msg_free: message freed twice (type probe_t)");
}
END_TEST

static void msg_send_after_free(void) {
  probe_t *m = probe_t_new();
  tr_msg_free(m);
  (void)tr_send(NULL, TR_REF_NULL, m);
}

START_TEST(test_tr_send_after_free) {
  if (FREED_READ_CAUGHT) return;
  expect_abort(msg_send_after_free,
               "message sent after it was freed (type probe_t)");
}
END_TEST

/* A handler frees the message it received without taking it: the runtime
 * then frees it a second time after the handler. */
static int free_received(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  tr_msg_free(msg);
  return 0;
}
static const tr_handler_t free_received_handlers[] = {
    {.type = TR_TYPE(probe_t), .fn = free_received}};
static const tr_behavior_t free_received_b = {
    .name = "free_received", .handlers = TR_HANDLERS(free_received_handlers)};

static tr_runtime_t *start_runtime(void) {
  tr_runtime_config_t cfg;
  tr_runtime_t *rt;
  tr_runtime_config_init(&cfg);
  cfg.workers = 1;
  if (tr_runtime_new(&cfg, &rt) != 0 || tr_runtime_start(rt) != 0) _exit(3);
  return rt;
}

static void handler_frees_received(void) {
  tr_runtime_t *rt = start_runtime();
  tr_ref_t a;
  if (tr_spawn(rt, &free_received_b, NULL, &a) != 0) _exit(3);
  if (tr_send(NULL, a, probe_t_new()) != 0) _exit(3);
  (void)tr_runtime_await_quiescent(rt, 30000);
  (void)tr_runtime_shutdown(rt, 30000);
  tr_runtime_free(rt);
}

START_TEST(test_tr_msg_free_received_then_runtime_frees) {
  if (FREED_READ_CAUGHT) return;
  expect_abort(handler_frees_received,
               "tr__msg_release: message freed twice (type probe_t)");
}
END_TEST

/* ---- handles and channels ------------------------------------------------ */

static void handle_free_twice(void) {
  tr_runtime_t *rt = start_runtime();
  tr_handle_t *h;
  if (tr_handle_new(rt, &h) != 0) _exit(3);
  tr_handle_free(h);
  tr_handle_free(h);
}

START_TEST(test_tr_handle_free_twice) {
  if (FREED_READ_CAUGHT) return;
  expect_abort(handle_free_twice, "troupe: tr_handle_free: handle freed twice");
}
END_TEST

static void chan_free_twice(void) {
  tr_runtime_t *rt = start_runtime();
  tr_chan_t *ch;
  if (tr_chan_mpsc_new(rt, 0, TR_OVERFLOW_FAIL, &ch) != 0) _exit(3);
  /* a sender reference keeps the channel's memory after the first free */
  if (tr_chan_sender_clone(ch) != 0) _exit(3);
  tr_chan_free(ch);
  tr_chan_free(ch);
}

START_TEST(test_tr_chan_free_twice) {
  expect_abort(chan_free_twice, "troupe: tr_chan_free: channel freed twice");
}
END_TEST

/* ---- blocking calls from a handler ---------------------------------------- */

enum { BLOCK_CALL, BLOCK_RECV, RECV_NOWAIT };
static int block_what;
static tr_handle_t *block_h;
static tr_chan_t *block_ch;
static tr_runtime_t *block_rt;
static _Atomic int block_done;

static int block_in_handler(tr_ctx_t *ctx, void *state, void *msg) {
  void *out = NULL;
  (void)state;
  (void)msg;
  switch (block_what) {
    case BLOCK_CALL: {
      probe_t *q = probe_t_new();
      (void)tr_handle_call(block_h, tr_ctx_self(ctx), q, 1000, &out);
      break;
    }
    case BLOCK_RECV: (void)tr_chan_recv(block_ch, 1000, &out); break;
    case RECV_NOWAIT:
      /* not blocking: allowed from a handler */
      if (tr_chan_recv(block_ch, TR_NOWAIT, &out) == 0) tr_msg_free(out);
      break;
  }
  atomic_store(&block_done, 1);
  return 0;
}
static const tr_handler_t block_handlers[] = {
    {.type = TR_TYPE(probe_t), .fn = block_in_handler}};
static const tr_behavior_t block_b = {.name = "blocker",
                                      .handlers = TR_HANDLERS(block_handlers)};

static void block_from_handler(void) {
  block_rt = start_runtime();
  tr_ref_t a;
  if (tr_handle_new(block_rt, &block_h) != 0) _exit(3);
  if (tr_chan_mpsc_new(block_rt, 0, TR_OVERFLOW_FAIL, &block_ch) != 0) _exit(3);
  if (tr_spawn(block_rt, &block_b, NULL, &a) != 0) _exit(3);
  if (tr_send(NULL, a, probe_t_new()) != 0) _exit(3);
  for (int i = 0; i < 30000 && !atomic_load(&block_done); i++) tu_sleep_ms(1);
  if (!atomic_load(&block_done)) _exit(4);
  tr_chan_free(block_ch);
  tr_handle_free(block_h);
  (void)tr_runtime_shutdown(block_rt, 30000);
  tr_runtime_free(block_rt);
}

static void call_from_handler(void) {
  block_what = BLOCK_CALL;
  block_from_handler();
}
static void recv_from_handler(void) {
  block_what = BLOCK_RECV;
  block_from_handler();
}
static void recv_nowait_from_handler(void) {
  block_what = RECV_NOWAIT;
  block_from_handler();
}

START_TEST(test_tr_handle_call_from_handler) {
  expect_abort(call_from_handler,
               "troupe: tr_handle_call: blocking call made on a worker thread");
}
END_TEST

START_TEST(test_tr_chan_recv_from_handler) {
  expect_abort(recv_from_handler,
               "troupe: tr_chan_recv: blocking call made on a worker thread");
}
END_TEST

START_TEST(test_tr_chan_recv_nowait_from_handler_allowed) {
  char err[4096];
  int st = run_child(recv_nowait_from_handler, err, sizeof(err));
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                "child failed (status 0x%x), stderr: %s", st, err);
}
END_TEST

static Suite *debug_suite(void) {
  Suite *s = suite_create("debug");
  TCase *tc = tcase_create("misuse");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_tr_msg_free_twice);
  tcase_add_test(tc, test_tr_send_after_free);
  tcase_add_test(tc, test_tr_msg_free_received_then_runtime_frees);
  tcase_add_test(tc, test_tr_handle_free_twice);
  tcase_add_test(tc, test_tr_chan_free_twice);
  tcase_add_test(tc, test_tr_handle_call_from_handler);
  tcase_add_test(tc, test_tr_chan_recv_from_handler);
  tcase_add_test(tc, test_tr_chan_recv_nowait_from_handler_allowed);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
#ifndef TR_DEBUG
  (void)debug_suite;
  puts("release build (no --enable-debug): the debug checks are not built");
  return 77;
#else
  SRunner *sr = srunner_create(debug_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
#endif
}
