/* SPDX-License-Identifier: MIT */
/*
 * The WebSocket client against our own server and against a third-party
 * one (the python3-websockets echo server, started here on a free
 * loopback port): the opening handshake, text and binary echoes, the
 * close handshake, and the failures (refused, not a WebSocket, a bad
 * URL). The actors record what happened; the assertions run here, on the
 * test's thread.
 */
#define _GNU_SOURCE
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <troupe.h>
#include <troupe/ws_client.h>

#include "testutil.h"

/* ---- our server's echo owner ------------------------------------------- */

static int echo_msg(tr_ctx_t *ctx, void *state, void *msg) {
  tr_ws_message_t *m = msg;
  (void)state;
  tr_ws_send(ctx, m->conn, m->opcode, m->data, m->len);
  return 0;
}
static int echo_closed(tr_ctx_t *ctx, void *state, void *msg) {
  (void)state;
  (void)msg;
  tr_actor_stop(tr_ctx_self(ctx), 0);
  return 0;
}
static const tr_handler_t echo_handlers[] = {
    {&tr_ws_message_t__type, echo_msg}, {&tr_ws_closed_t__type, echo_closed}};
static const tr_behavior_t echo_behavior = {.name = "echo",
                                           .handlers = TR_HANDLERS(echo_handlers)};

/* ---- the client side: an actor that connects and records ---------------- */

#define BIG (200 * 1000)

typedef struct result {
  _Atomic int done;
  _Atomic int connect_rc;
  _Atomic int open_status;
  _Atomic int http_status;
  _Atomic int echoes_ok;
  _Atomic int echoes_bad;
  _Atomic int closed_code;
  _Atomic int closed_clean;
} result_t;

typedef struct tester {
  result_t *res;
  tr_ref_t conn;
  int got;
} tester_t;

typedef struct tester_arg {
  const char *url;
  result_t *res;
} tester_arg_t;

static uint8_t big[BIG];

static int tester_init(tr_ctx_t *ctx, void *state, void *arg) {
  tester_t *t = state;
  tester_arg_t *a = arg;
  t->res = a->res;
  int rc = tr_ws_connect(ctx, a->url, NULL, &t->conn);
  atomic_store(&t->res->connect_rc, rc);
  if (rc) {
    atomic_store(&t->res->done, 1);
    tr_actor_stop(tr_ctx_self(ctx), 0);
  }
  return 0;
}

static int tester_open(tr_ctx_t *ctx, void *state, void *msg) {
  tester_t *t = state;
  tr_ws_open_t *o = msg;
  atomic_store(&t->res->open_status, o->status);
  atomic_store(&t->res->http_status, o->http_status);
  if (o->status) {
    atomic_store(&t->res->done, 1);
    tr_actor_stop(tr_ctx_self(ctx), 0);
    return 0;
  }
  tr_ws_send(ctx, t->conn, TR_WS_OP_TEXT, "h\xc3\xa9llo", 6);
  tr_ws_send(ctx, t->conn, TR_WS_OP_BINARY, big, BIG);
  return 0;
}

static int tester_msg(tr_ctx_t *ctx, void *state, void *msg) {
  tester_t *t = state;
  tr_ws_message_t *m = msg;
  int ok = t->got == 0 ? (m->opcode == TR_WS_OP_TEXT && m->len == 6 &&
                          !memcmp(m->data, "h\xc3\xa9llo", 6))
                       : (m->opcode == TR_WS_OP_BINARY && m->len == BIG &&
                          !memcmp(m->data, big, BIG));
  atomic_fetch_add(ok ? &t->res->echoes_ok : &t->res->echoes_bad, 1);
  if (++t->got == 2) tr_ws_close(ctx, t->conn, 1000, "done");
  return 0;
}

static int tester_closed(tr_ctx_t *ctx, void *state, void *msg) {
  tester_t *t = state;
  tr_ws_closed_t *c = msg;
  atomic_store(&t->res->closed_code, c->code);
  atomic_store(&t->res->closed_clean, c->clean);
  atomic_store(&t->res->done, 1);
  tr_actor_stop(tr_ctx_self(ctx), 0);
  return 0;
}

static const tr_handler_t tester_handlers[] = {
    {&tr_ws_open_t__type, tester_open},
    {&tr_ws_message_t__type, tester_msg},
    {&tr_ws_closed_t__type, tester_closed},
};
static const tr_behavior_t tester_behavior = {
    .name = "tester",
    .state_size = sizeof(tester_t),
    .init = tester_init,
    .handlers = TR_HANDLERS(tester_handlers)};

static void run_client(tr_runtime_t *rt, const char *url, result_t *res) {
  memset(res, 0, sizeof(*res));
  for (size_t i = 0; i < BIG; i++) big[i] = (uint8_t)(i * 31 + (i >> 9));
  tester_arg_t a = {url, res};
  tr_ref_t t;
  ck_assert_int_eq(tr_spawn(rt, &tester_behavior, &a, &t), 0);
  uint64_t end = tu_now_ms() + 20000;
  while (!atomic_load(&res->done) && tu_now_ms() < end) tu_sleep_ms(2);
  ck_assert(atomic_load(&res->done));
}

static tr_runtime_t *rt;
static tr_http_server_t *srv;
static uint16_t port;

static void server_up(void) {
  rt = tu_runtime(2, 0, 1);
  tr_http_route_t routes[] = {{.method = "GET", .path = "/ws", .ws = &echo_behavior}};
  tr_http_server_opts_t o;
  tr_http_server_opts_init(&o);
  o.routes = routes;
  o.nroutes = 1;
  ck_assert_int_eq(tr_http_server_start(rt, &o, &srv), 0);
  port = tr_http_server_port(srv);
}

static void server_down(void) {
  tr_http_server_shutdown(srv, 1000);
  ck_assert_int_eq(tr_runtime_shutdown(rt, 10000), 0);
  tr_http_server_free(srv);
  tr_runtime_free(rt);
}

START_TEST(test_echo_ours) {
  server_up();
  char url[64];
  result_t res;
  /* by address and by name */
  const char *hosts[] = {"127.0.0.1", "localhost"};
  for (int i = 0; i < 2; i++) {
    snprintf(url, sizeof(url), "ws://%s:%u/ws", hosts[i], port);
    run_client(rt, url, &res);
    ck_assert_int_eq(atomic_load(&res.connect_rc), 0);
    ck_assert_int_eq(atomic_load(&res.open_status), 0);
    ck_assert_int_eq(atomic_load(&res.echoes_ok), 2);
    ck_assert_int_eq(atomic_load(&res.echoes_bad), 0);
    ck_assert_int_eq(atomic_load(&res.closed_code), 1000);
    ck_assert_int_eq(atomic_load(&res.closed_clean), 1);
  }
  server_down();
}
END_TEST

START_TEST(test_failures) {
  server_up();
  char url[64];
  result_t res;
  /* not a WebSocket endpoint: the server's 404 */
  snprintf(url, sizeof(url), "ws://127.0.0.1:%u/nope", port);
  run_client(rt, url, &res);
  ck_assert_int_eq(atomic_load(&res.open_status), TR_EPROTO);
  ck_assert_int_eq(atomic_load(&res.http_status), 404);
  /* nobody listening */
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof(a);
  ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
  ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &al), 0);
  close(s);
  snprintf(url, sizeof(url), "ws://127.0.0.1:%u/ws", ntohs(a.sin_port));
  run_client(rt, url, &res);
  ck_assert_int_eq(atomic_load(&res.open_status), -ECONNREFUSED);
  /* bad URLs */
  const char *bad[] = {"http://127.0.0.1/ws", "ws://", "ws://a b/", "wss//x"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    run_client(rt, bad[i], &res);
    ck_assert_int_eq(atomic_load(&res.connect_rc), TR_EINVAL);
  }
  server_down();
}
END_TEST

/* The python3-websockets echo server: a WebSocket implementation that is
 * not ours. */
START_TEST(test_echo_third_party) {
  if (system("/usr/bin/python3 -c 'import websockets' 2>/dev/null") != 0) {
    fprintf(stderr, "python3-websockets missing: apt-get install python3-websockets\n");
    ck_abort_msg("python3-websockets is not installed");
  }
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof(a);
  ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
  ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &al), 0);
  close(s);
  unsigned p = ntohs(a.sin_port);
  char code[512];
  snprintf(code, sizeof(code),
           "import asyncio, websockets\n"
           "async def echo(ws, path=None):\n"
           "    async for m in ws:\n"
           "        await ws.send(m)\n"
           "async def main():\n"
           "    async with websockets.serve(echo, '127.0.0.1', %u, max_size=None):\n"
           "        await asyncio.Future()\n"
           "asyncio.run(main())\n",
           p);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    execl("/usr/bin/python3", "python3", "-c", code, (char *)NULL);
    _exit(127);
  }
  /* wait until it listens */
  for (int i = 0; i < 100; i++) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    int ok = connect(c, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(c);
    if (ok) break;
    tu_sleep_ms(50);
  }
  tr_runtime_t *r = tu_runtime(2, 0, 1);
  char url[64];
  snprintf(url, sizeof(url), "ws://127.0.0.1:%u/", p);
  result_t res;
  run_client(r, url, &res);
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  ck_assert_int_eq(atomic_load(&res.open_status), 0);
  ck_assert_int_eq(atomic_load(&res.echoes_ok), 2);
  ck_assert_int_eq(atomic_load(&res.echoes_bad), 0);
  ck_assert_int_eq(atomic_load(&res.closed_code), 1000);
  ck_assert_int_eq(atomic_load(&res.closed_clean), 1);
  ck_assert_int_eq(tr_runtime_shutdown(r, 10000), 0);
  tr_runtime_free(r);
}
END_TEST

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  Suite *s = suite_create("ws_client");
  TCase *tc = tcase_create("ws_client");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_echo_ours);
  tcase_add_test(tc, test_failures);
  tcase_add_test(tc, test_echo_third_party);
  suite_add_tcase(s, tc);
  return tu_run(s);
}
