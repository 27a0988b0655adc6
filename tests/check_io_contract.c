/* SPDX-License-Identifier: MIT */
/*
 * The reactor contract suite, compiled once per backend
 * (-DTR_TEST_BACKEND=TR_IO_BACKEND_URING|EPOLL|POLL; exits 77 when the
 * backend is unavailable here). Every backend must: report readiness of an
 * owned fd as a tr_io_ready_t to its owner; keep interest one-shot until
 * tr_io_want; deliver nothing for an fd after its close acknowledgement;
 * refuse another actor's fd; close an actor's fds when it stops; wake a
 * worker blocked in the kernel when mail arrives from outside; fire timers;
 * carry a small TCP echo; and complete file operations.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <troupe.h>
#include <troupe/io.h>
#include <troupe/net.h>

#include "testutil.h"

#ifndef TR_TEST_BACKEND
#define TR_TEST_BACKEND TR_IO_BACKEND_AUTO
#endif

static const char *expected_name(void) {
  switch (TR_TEST_BACKEND) {
  case TR_IO_BACKEND_URING: return "uring";
  case TR_IO_BACKEND_EPOLL: return "epoll";
  case TR_IO_BACKEND_POLL: return "poll";
  case TR_IO_BACKEND_KQUEUE: return "kqueue";
  default: return NULL;
  }
}

static tr_runtime_t *rt_new(unsigned workers) {
  tr_runtime_t *rt = tu_runtime(workers, 0, 0);
  tr_io_config_t cfg;
  tr_io_config_init(&cfg);
  cfg.backend = TR_TEST_BACKEND;
  ck_assert_int_eq(tr_io_attach(rt, &cfg), 0);
  ck_assert_int_eq(tr_runtime_start(rt), 0);
  return rt;
}

static void rt_done(tr_runtime_t *rt) {
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_int_eq(tr_runtime_shutdown(rt, 10000), 0);
  ck_assert_int_eq(tr_io_fini(rt), 0);
  tr_runtime_free(rt);
}

/* ---- a probe actor that owns the read end of a pipe --------------------- */

TR_MESSAGE_TYPE(cmd_t, int op; int arg; uint64_t id;)
TR_MESSAGE_DEFINE(cmd_t);
enum { CMD_REGISTER, CMD_WANT, CMD_CLOSE, CMD_WANT_FOREIGN };

static _Atomic uint64_t n_ready, n_closed, n_after_close, bytes_read;
static _Atomic uint64_t last_id;
static _Atomic int last_rc;

typedef struct probe {
  tr_io_id_t id;
  int fd;
  int closed;
} probe_t;

static int probe_cmd(tr_ctx_t *ctx, void *st, void *msg) {
  probe_t *p = st;
  cmd_t *c = msg;
  int rc = 0;
  switch (c->op) {
  case CMD_REGISTER:
    p->fd = c->arg;
    rc = tr_io_register(ctx, c->arg, TR_IO_READ, &p->id);
    atomic_store(&last_id, p->id);
    break;
  case CMD_WANT:
    rc = tr_io_want(ctx, p->id, TR_IO_READ);
    break;
  case CMD_CLOSE:
    rc = tr_io_close(ctx, p->id);
    break;
  case CMD_WANT_FOREIGN:
    rc = tr_io_want(ctx, c->id, TR_IO_READ);
    break;
  }
  atomic_store(&last_rc, rc);
  return 0;
}

static int probe_ready(tr_ctx_t *ctx, void *st, void *msg) {
  (void)ctx;
  probe_t *p = st;
  tr_io_ready_t *r = msg;
  if (p->closed) atomic_fetch_add(&n_after_close, 1);
  ck_assert_uint_eq(r->id, p->id);
  ck_assert(r->events & TR_IO_READ);
  char buf[64];
  ssize_t n = read(r->fd, buf, 1); /* one byte per event: stays readable */
  if (n > 0) atomic_fetch_add(&bytes_read, (uint64_t)n);
  atomic_fetch_add(&n_ready, 1);
  return 0;
}

static int probe_closed(tr_ctx_t *ctx, void *st, void *msg) {
  (void)ctx;
  probe_t *p = st;
  tr_io_closed_t *c = msg;
  ck_assert_uint_eq(c->id, p->id);
  ck_assert_int_eq(c->status, 0);
  p->closed = 1;
  atomic_fetch_add(&n_closed, 1);
  return 0;
}

static const tr_handler_t probe_h[] = {
    {TR_TYPE(cmd_t), probe_cmd},
    {&tr_io_ready_t__type, probe_ready},
    {&tr_io_closed_t__type, probe_closed},
};
static const tr_behavior_t probe_b = {.name = "probe",
                                      .state_size = sizeof(probe_t),
                                      .handlers = TR_HANDLERS(probe_h)};

static void reset(void) {
  atomic_store(&n_ready, 0);
  atomic_store(&n_closed, 0);
  atomic_store(&n_after_close, 0);
  atomic_store(&bytes_read, 0);
  atomic_store(&last_id, 0);
  atomic_store(&last_rc, 1);
}

static void cmd(tr_ref_t to, int op, int arg, uint64_t id) {
  cmd_t *c = cmd_t_new();
  c->op = op;
  c->arg = arg;
  c->id = id;
  atomic_store(&last_rc, 1);
  ck_assert_int_eq(tr_send(NULL, to, c), 0);
  uint64_t end = tu_now_ms() + 5000;
  while (atomic_load(&last_rc) == 1 && tu_now_ms() < end) tu_sleep_ms(1);
}

static void make_pipe(int p[2]) {
  ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

static void put(int fd, const char *s) {
  ck_assert_int_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

START_TEST(test_backend_name) {
  tr_runtime_t *rt = rt_new(2);
  ck_assert_str_eq(tr_io_backend_name(rt), expected_name());
  rt_done(rt);
}
END_TEST

START_TEST(test_readiness_oneshot) {
  reset();
  tr_runtime_t *rt = rt_new(2);
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &probe_b, NULL, &a), 0);
  int p[2];
  make_pipe(p);
  cmd(a, CMD_REGISTER, p[0], 0);
  ck_assert_int_eq(atomic_load(&last_rc), 0);
  put(p[1], "abc");
  ck_assert(tu_wait_ge(&n_ready, 1, 5000));
  /* still readable (2 bytes left), but one-shot: no second event */
  tu_sleep_ms(50);
  ck_assert_uint_eq(atomic_load(&n_ready), 1);
  cmd(a, CMD_WANT, 0, 0);
  ck_assert_int_eq(atomic_load(&last_rc), 0);
  ck_assert(tu_wait_ge(&n_ready, 2, 5000));
  cmd(a, CMD_WANT, 0, 0);
  ck_assert(tu_wait_ge(&n_ready, 3, 5000));
  ck_assert_uint_eq(atomic_load(&bytes_read), 3);
  cmd(a, CMD_CLOSE, 0, 0);
  ck_assert(tu_wait_ge(&n_closed, 1, 5000));
  ck_assert_int_eq(close(p[1]), 0);
  tr_actor_stop(a, 0);
  rt_done(rt);
}
END_TEST

/* Close while readable and armed, many times: no event after the ack. */
START_TEST(test_close_ack_is_last) {
  reset();
  tr_runtime_t *rt = rt_new(2);
  for (int i = 0; i < 200; i++) {
    tr_ref_t a;
    ck_assert_int_eq(tr_spawn(rt, &probe_b, NULL, &a), 0);
    int p[2];
    make_pipe(p);
    put(p[1], "xxxxxxxx");
    cmd(a, CMD_REGISTER, p[0], 0);
    if (i & 1) cmd(a, CMD_WANT, 0, 0);
    cmd(a, CMD_CLOSE, 0, 0);
    ck_assert_int_eq(atomic_load(&last_rc), 0);
    ck_assert(tu_wait_ge(&n_closed, (uint64_t)i + 1, 5000));
    ck_assert_int_eq(close(p[1]), 0);
    ck_assert_int_eq(tr_actor_stop(a, 0), 0);
  }
  tu_sleep_ms(20);
  ck_assert_uint_eq(atomic_load(&n_after_close), 0);
  rt_done(rt);
}
END_TEST

START_TEST(test_foreign_fd_refused) {
  reset();
  tr_runtime_t *rt = rt_new(2);
  tr_ref_t a, b;
  ck_assert_int_eq(tr_spawn(rt, &probe_b, NULL, &a), 0);
  ck_assert_int_eq(tr_spawn(rt, &probe_b, NULL, &b), 0);
  int p[2];
  make_pipe(p);
  cmd(a, CMD_REGISTER, p[0], 0);
  uint64_t id = atomic_load(&last_id);
  cmd(b, CMD_WANT_FOREIGN, 0, id);
  ck_assert_int_eq(atomic_load(&last_rc), TR_EPERM);
  cmd(b, CMD_WANT_FOREIGN, 0, id ^ (1ull << 40));
  ck_assert_int_eq(atomic_load(&last_rc), TR_ENOENT);
  ck_assert_int_eq(close(p[1]), 0);
  tr_actor_stop(a, 0);
  tr_actor_stop(b, 0);
  rt_done(rt);
}
END_TEST

START_TEST(test_stop_closes_fds) {
  reset();
  tr_runtime_t *rt = rt_new(2);
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &probe_b, NULL, &a), 0);
  int p[2];
  make_pipe(p);
  cmd(a, CMD_REGISTER, p[0], 0);
  ck_assert_int_eq(tr_actor_stop(a, 0), 0);
  /* the read end closes: writing then fails with EPIPE */
  uint64_t end = tu_now_ms() + 5000;
  int gone = 0;
  while (!gone && tu_now_ms() < end) {
    if (write(p[1], "x", 1) < 0 && errno == EPIPE) gone = 1;
    else tu_sleep_ms(2);
  }
  ck_assert(gone);
  ck_assert_int_eq(close(p[1]), 0);
  rt_done(rt);
}
END_TEST

/* One worker, blocked in the backend with no timer: mail from outside
 * must wake it at once. */
TR_MESSAGE_TYPE(ping_t, uint64_t sent_ns;)
TR_MESSAGE_DEFINE(ping_t);
static _Atomic uint64_t ping_lat_ns, pings;
static int on_ping(tr_ctx_t *ctx, void *st, void *msg) {
  (void)ctx;
  (void)st;
  ping_t *p = msg;
  atomic_store(&ping_lat_ns, tu_now_ns() - p->sent_ns);
  atomic_fetch_add(&pings, 1);
  return 0;
}
static const tr_handler_t ping_h[] = {{TR_TYPE(ping_t), on_ping}};
static const tr_behavior_t ping_b = {.name = "ping",
                                     .handlers = TR_HANDLERS(ping_h)};

START_TEST(test_wake_blocked_poller) {
  atomic_store(&pings, 0);
  tr_runtime_t *rt = rt_new(1);
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &ping_b, NULL, &a), 0);
  uint64_t worst = 0;
  for (int i = 0; i < 20; i++) {
    tu_sleep_ms(5); /* let the worker park in the backend */
    ping_t *p = ping_t_new();
    p->sent_ns = tu_now_ns();
    ck_assert_int_eq(tr_send(NULL, a, p), 0);
    ck_assert(tu_wait_ge(&pings, (uint64_t)i + 1, 5000));
    uint64_t l = atomic_load(&ping_lat_ns);
    if (l > worst) worst = l;
  }
  ck_assert_msg(worst < 500000000ull, "worst wake latency %llu ns",
                (unsigned long long)worst);
  tr_actor_stop(a, 0);
  rt_done(rt);
}
END_TEST

/* A timer through this backend. */
static _Atomic uint64_t fired_at, armed_at;
static int tmr_init(tr_ctx_t *ctx, void *st, void *arg) {
  (void)st;
  (void)arg;
  atomic_store(&armed_at, tu_now_ns());
  return tr_timer_start(ctx, 20, TR_FOREVER, 7, NULL);
}
static int tmr_fired(tr_ctx_t *ctx, void *st, void *msg) {
  (void)st;
  tr_timer_fired_t *f = msg;
  ck_assert_uint_eq(f->cookie, 7);
  atomic_store(&fired_at, tu_now_ns());
  tr_actor_stop(tr_ctx_self(ctx), 0);
  return 0;
}
static const tr_handler_t tmr_h[] = {{&tr_timer_fired_t__type, tmr_fired}};
static const tr_behavior_t tmr_b = {
    .name = "tmr", .init = tmr_init, .handlers = TR_HANDLERS(tmr_h)};

START_TEST(test_timer_fires) {
  atomic_store(&fired_at, 0);
  tr_runtime_t *rt = rt_new(2);
  ck_assert_int_eq(tr_spawn(rt, &tmr_b, NULL, NULL), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 5000), 0);
  uint64_t f = atomic_load(&fired_at), a = atomic_load(&armed_at);
  ck_assert_uint_ne(f, 0);
  ck_assert_uint_ge(f - a, 20000000ull);
  rt_done(rt);
}
END_TEST

/* ---- TCP echo through this backend -------------------------------------------- */

static int echo_init(tr_ctx_t *ctx, void *st, void *arg) {
  return tr_tcp_adopt(ctx, arg, (tr_tcp_id_t *)st);
}
static int echo_data(tr_ctx_t *ctx, void *st, void *msg) {
  (void)st;
  tr_tcp_data_t *d = msg;
  int rc = tr_tcp_write(ctx, d->conn, d->data, d->len);
  ck_assert_int_eq(rc, 0);
  return 0;
}
static int echo_eof(tr_ctx_t *ctx, void *st, void *msg) {
  (void)st;
  tr_tcp_eof_t *e = msg;
  return tr_tcp_close(ctx, e->conn);
}
static int echo_closed(tr_ctx_t *ctx, void *st, void *msg) {
  (void)st;
  (void)msg;
  tr_actor_stop(tr_ctx_self(ctx), 0);
  return 0;
}
static const tr_handler_t echo_h[] = {
    {&tr_tcp_data_t__type, echo_data},
    {&tr_tcp_eof_t__type, echo_eof},
    {&tr_tcp_closed_t__type, echo_closed},
};
static const tr_behavior_t echo_b = {.name = "echo",
                                     .state_size = sizeof(tr_tcp_id_t),
                                     .init = echo_init,
                                     .handlers = TR_HANDLERS(echo_h)};

/* client actor: connects, sends 1000 numbered lines, checks the echo */
typedef struct cli {
  tr_tcp_id_t conn;
  size_t got;
  uint8_t expect[16000];
  size_t total;
} cli_t;
static _Atomic int cli_result; /* 0 running, 1 ok, <0 failure */
static _Atomic uint16_t srv_port;

static int cli_init(tr_ctx_t *ctx, void *st, void *arg) {
  (void)arg;
  cli_t *c = st;
  return tr_tcp_connect(ctx, "127.0.0.1", atomic_load(&srv_port), 2000, 5,
                        &c->conn);
}
static int cli_connected(tr_ctx_t *ctx, void *st, void *msg) {
  cli_t *c = st;
  tr_tcp_connected_t *m = msg;
  ck_assert_uint_eq(m->cookie, 5);
  if (m->status) {
    atomic_store(&cli_result, m->status);
    tr_actor_stop(tr_ctx_self(ctx), 0);
    return 0;
  }
  for (int i = 0; i < 1000; i++) {
    char line[16];
    int n = snprintf(line, sizeof(line), "%06d\n", i);
    memcpy(c->expect + c->total, line, (size_t)n);
    c->total += (size_t)n;
    ck_assert_int_eq(tr_tcp_write(ctx, c->conn, line, (size_t)n), 0);
  }
  return 0;
}
static int cli_data(tr_ctx_t *ctx, void *st, void *msg) {
  cli_t *c = st;
  tr_tcp_data_t *d = msg;
  if (c->got + d->len > c->total ||
      memcmp(c->expect + c->got, d->data, d->len) != 0) {
    atomic_store(&cli_result, -1000);
    tr_actor_stop(tr_ctx_self(ctx), 0);
    return 0;
  }
  c->got += d->len;
  if (c->got == c->total) tr_tcp_shutdown(ctx, c->conn);
  return 0;
}
static int cli_eof(tr_ctx_t *ctx, void *st, void *msg) {
  cli_t *c = st;
  (void)msg;
  atomic_store(&cli_result, c->got == c->total ? 1 : -2000);
  tr_actor_stop(tr_ctx_self(ctx), 0);
  return 0;
}
static const tr_handler_t cli_h[] = {
    {&tr_tcp_connected_t__type, cli_connected},
    {&tr_tcp_data_t__type, cli_data},
    {&tr_tcp_eof_t__type, cli_eof},
};
static const tr_behavior_t cli_b = {.name = "cli",
                                    .state_size = sizeof(cli_t),
                                    .init = cli_init,
                                    .handlers = TR_HANDLERS(cli_h)};

START_TEST(test_tcp_echo_small) {
  tr_runtime_t *rt = rt_new(2);
  tr_tcp_listen_opts_t o = {.host = "127.0.0.1", .conn_behavior = &echo_b};
  tr_ref_t l;
  uint16_t port = 0;
  ck_assert_int_eq(tr_tcp_listen(rt, &o, &l, &port), 0);
  ck_assert_uint_ne(port, 0);
  atomic_store(&srv_port, port);
  atomic_store(&cli_result, 0);
  ck_assert_int_eq(tr_spawn(rt, &cli_b, NULL, NULL), 0);
  uint64_t end = tu_now_ms() + 10000;
  while (atomic_load(&cli_result) == 0 && tu_now_ms() < end) tu_sleep_ms(2);
  ck_assert_int_eq(atomic_load(&cli_result), 1);
  tr_actor_stop(l, 0);
  rt_done(rt);
}
END_TEST

/* A bulk upload then a half-close: reads fill whole buffers, so the read
 * budget per event runs out and the connection must be re-armed (on an
 * edge-triggered backend no new edge would come), and the end-of-file
 * arrives behind a pile of data. */
static _Atomic uint64_t sink_bytes;
static _Atomic int sink_eofs;
static int sink_data(tr_ctx_t *ctx, void *st, void *msg) {
  (void)ctx;
  (void)st;
  atomic_fetch_add(&sink_bytes, ((tr_tcp_data_t *)msg)->len);
  return 0;
}
static int sink_eof(tr_ctx_t *ctx, void *st, void *msg) {
  (void)msg;
  atomic_fetch_add(&sink_eofs, 1);
  return tr_tcp_close(ctx, *(tr_tcp_id_t *)st);
}
static const tr_handler_t sink_h[] = {
    {&tr_tcp_data_t__type, sink_data},
    {&tr_tcp_eof_t__type, sink_eof},
    {&tr_tcp_closed_t__type, echo_closed},
};
static const tr_behavior_t sink_b = {.name = "sink",
                                     .state_size = sizeof(tr_tcp_id_t),
                                     .init = echo_init,
                                     .handlers = TR_HANDLERS(sink_h)};

START_TEST(test_tcp_bulk_upload) {
  tr_runtime_t *rt = rt_new(2);
  tr_tcp_listen_opts_t o = {.host = "127.0.0.1", .conn_behavior = &sink_b};
  tr_ref_t l;
  uint16_t port = 0;
  ck_assert_int_eq(tr_tcp_listen(rt, &o, &l, &port), 0);
  atomic_store(&sink_bytes, 0);
  atomic_store(&sink_eofs, 0);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  static uint8_t chunk[1 << 20];
  const uint64_t total = 8u << 20;
  for (uint64_t sent = 0; sent < total;) {
    ssize_t n = write(fd, chunk, sizeof(chunk));
    ck_assert_int_gt(n, 0);
    sent += (uint64_t)n;
  }
  ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
  uint64_t end = tu_now_ms() + 10000;
  while ((atomic_load(&sink_bytes) < total || atomic_load(&sink_eofs) == 0) &&
         tu_now_ms() < end)
    tu_sleep_ms(2);
  ck_assert_uint_eq(atomic_load(&sink_bytes), total);
  ck_assert_int_eq(atomic_load(&sink_eofs), 1);
  char b;
  ck_assert_int_eq(read(fd, &b, 1), 0); /* the server closed */
  ck_assert_int_eq(close(fd), 0);
  tr_actor_stop(l, 0);
  rt_done(rt);
}
END_TEST

/* ---- a file round trip through this backend --------------------------------------- */

static _Atomic int file_result;
typedef struct fst {
  int fd;
} fst_t;
static int file_init(tr_ctx_t *ctx, void *st, void *arg) {
  fst_t *f = st;
  f->fd = *(int *)arg;
  return tr_file_write(ctx, f->fd, "hello, file", 11, 0, 1);
}
static int file_done(tr_ctx_t *ctx, void *st, void *msg) {
  fst_t *f = st;
  tr_file_done_t *d = msg;
  if (d->cookie == 1) {
    ck_assert_int_eq(d->op, TR_FILE_WRITE);
    ck_assert_int_eq(d->result, 11);
    return tr_file_fsync(ctx, f->fd, 2);
  }
  if (d->cookie == 2) {
    ck_assert_int_eq(d->result, 0);
    return tr_file_read(ctx, f->fd, 64, 7, 3);
  }
  ck_assert_int_eq(d->result, 4);
  ck_assert_uint_eq(d->len, 4);
  atomic_store(&file_result, memcmp(d->data, "file", 4) == 0 ? 1 : -1);
  tr_actor_stop(tr_ctx_self(ctx), 0);
  return 0;
}
static const tr_handler_t file_h[] = {{&tr_file_done_t__type, file_done}};
static const tr_behavior_t file_b = {.name = "file",
                                     .state_size = sizeof(fst_t),
                                     .init = file_init,
                                     .handlers = TR_HANDLERS(file_h)};

START_TEST(test_file_roundtrip) {
  char path[] = "/tmp/troupe-io-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(unlink(path), 0);
  atomic_store(&file_result, 0);
  tr_runtime_t *rt = rt_new(2);
  ck_assert_int_eq(tr_spawn(rt, &file_b, &fd, NULL), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 5000), 0);
  ck_assert_int_eq(atomic_load(&file_result), 1);
  rt_done(rt);
  ck_assert_int_eq(close(fd), 0);
}
END_TEST

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  /* skip where the backend cannot run (liburing's convention: 77) */
  tr_runtime_t *rt = NULL;
  tr_io_config_t cfg;
  tr_io_config_init(&cfg);
  cfg.backend = TR_TEST_BACKEND;
  if (tr_runtime_new(NULL, &rt) != 0) return 99;
  int rc = tr_io_attach(rt, &cfg);
  (void)tr_runtime_shutdown(rt, 0);
  (void)tr_io_fini(rt);
  tr_runtime_free(rt);
  if (rc == TR_ENOSYS) {
    printf("backend %s unavailable: skipped\n", expected_name());
    return 77;
  }
  if (rc != 0) return 99;

  Suite *s = suite_create("io_contract");
  TCase *tc = tcase_create("contract");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_backend_name);
  tcase_add_test(tc, test_readiness_oneshot);
  tcase_add_test(tc, test_close_ack_is_last);
  tcase_add_test(tc, test_foreign_fd_refused);
  tcase_add_test(tc, test_stop_closes_fds);
  tcase_add_test(tc, test_wake_blocked_poller);
  tcase_add_test(tc, test_timer_fires);
  tcase_add_test(tc, test_tcp_echo_small);
  tcase_add_test(tc, test_tcp_bulk_upload);
  tcase_add_test(tc, test_file_roundtrip);
  suite_add_tcase(s, tc);
  return tu_run(s);
}
