/* SPDX-License-Identifier: MIT */
/*
 * Tests of TCP actors (<troupe/net.h>) against plain sockets driven by the
 * test thread: connection refused (at once or as a message), connect
 * timeout, a peer's reset reported as tr_tcp_closed_t with -ECONNRESET,
 * half-close (the peer's end-of-file arrives as tr_tcp_eof_t and the
 * connection can still answer), and backpressure (a peer that does not
 * read makes writes queue up to the bound, then TR_EAGAIN, then a
 * tr_tcp_writable_t once it reads).
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <troupe.h>
#include <troupe/io.h>
#include <troupe/net.h>

#include "testutil.h"

static tr_runtime_t *rt_new(void) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  ck_assert_ptr_nonnull(tr_io_backend_name(rt));
  return rt;
}

static void rt_done(tr_runtime_t *rt) {
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_int_eq(tr_runtime_shutdown(rt, 10000), 0);
  ck_assert_int_eq(tr_io_fini(rt), 0);
  tr_runtime_free(rt);
}

static int plain_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  return fd;
}

/* A port with nothing listening: bind, read the port, close. */
static uint16_t dead_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  socklen_t l = sizeof(sa);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &l), 0);
  ck_assert_int_eq(close(fd), 0);
  return ntohs(sa.sin_port);
}

/* ---- outbound connects ------------------------------------------------------- */

static _Atomic int conn_status, conn_msgs;
static _Atomic uint16_t target_port;
static _Atomic uint64_t target_timeout;
static int dialer_init(tr_ctx_t *ctx, void *st, void *arg) {
  (void)st;
  (void)arg;
  tr_tcp_id_t id;
  int rc = tr_tcp_connect(ctx, "127.0.0.1", atomic_load(&target_port),
                          atomic_load(&target_timeout), 3, &id);
  if (rc) {
    atomic_store(&conn_status, rc);
    atomic_fetch_add(&conn_msgs, 1);
    tr_actor_stop(tr_ctx_self(ctx), 0);
  }
  return 0;
}
static int dialer_connected(tr_ctx_t *ctx, void *st, void *msg) {
  (void)st;
  tr_tcp_connected_t *m = msg;
  ck_assert_uint_eq(m->cookie, 3);
  atomic_store(&conn_status, m->status);
  atomic_fetch_add(&conn_msgs, 1);
  if (m->status == 0) tr_tcp_close(ctx, m->conn);
  else tr_actor_stop(tr_ctx_self(ctx), 0);
  return 0;
}
static int dialer_closed(tr_ctx_t *ctx, void *st, void *msg) {
  (void)st;
  (void)msg;
  tr_actor_stop(tr_ctx_self(ctx), 0);
  return 0;
}
static const tr_handler_t dialer_h[] = {
    {&tr_tcp_connected_t__type, dialer_connected},
    {&tr_tcp_closed_t__type, dialer_closed}};
static const tr_behavior_t dialer_b = {
    .name = "dialer", .init = dialer_init, .handlers = TR_HANDLERS(dialer_h)};

static void dial(uint16_t port, uint64_t timeout) {
  atomic_store(&conn_status, 1);
  atomic_store(&conn_msgs, 0);
  atomic_store(&target_port, port);
  atomic_store(&target_timeout, timeout);
  tr_runtime_t *rt = rt_new();
  ck_assert_int_eq(tr_spawn(rt, &dialer_b, NULL, NULL), 0);
  rt_done(rt);
  ck_assert_int_eq(atomic_load(&conn_msgs), 1);
}

START_TEST(test_connect_refused) {
  dial(dead_port(), 2000);
  ck_assert_int_eq(atomic_load(&conn_status), -ECONNREFUSED);
}
END_TEST

START_TEST(test_connect_ok) {
  struct sockaddr_in sa;
  int l = tu_listen_loopback(8, &sa);
  dial(ntohs(sa.sin_port), 2000);
  ck_assert_int_eq(atomic_load(&conn_status), 0);
  ck_assert_int_eq(close(l), 0);
}
END_TEST

START_TEST(test_connect_timeout) {
  /* a listener whose accept queue is full drops further SYNs, so a
   * connect to it hangs until our timeout */
  struct sockaddr_in sa;
  int l = tu_listen_loopback(0, &sa);
  int fill[4];
  for (int i = 0; i < 4; i++) {
    fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = connect(fill[i], (struct sockaddr *)&sa, sizeof(sa));
    ck_assert(rc == 0 || errno == EINPROGRESS);
  }
  tu_sleep_ms(50);
  uint64_t t0 = tu_now_ms();
  dial(ntohs(sa.sin_port), 150);
  uint64_t el = tu_now_ms() - t0;
  ck_assert_int_eq(atomic_load(&conn_status), TR_ETIMEDOUT);
  ck_assert_uint_ge(el, 150);
  for (int i = 0; i < 4; i++) ck_assert_int_eq(close(fill[i]), 0);
  ck_assert_int_eq(close(l), 0);
}
END_TEST

/* ---- server-side connection behaviours -------------------------------------------- */

static _Atomic int srv_closed_status, srv_eofs, srv_closes;
static _Atomic uint64_t srv_bytes, srv_written, srv_eagain, srv_writable;
typedef struct sconn {
  tr_tcp_id_t id;
  uint8_t buf[4096];
  size_t n;
  int mode;
} sconn_t;
enum { MODE_RESET, MODE_HALF, MODE_FLOOD };

static void flood(tr_ctx_t *ctx, sconn_t *c) {
  static uint8_t chunk[65536];
  for (;;) {
    int rc = tr_tcp_write(ctx, c->id, chunk, sizeof(chunk));
    if (rc == TR_EAGAIN) {
      atomic_fetch_add(&srv_eagain, 1);
      return;
    }
    ck_assert_int_eq(rc, 0);
    atomic_fetch_add(&srv_written, sizeof(chunk));
    if (atomic_load(&srv_written) >= 32u << 20) {
      ck_assert_int_eq(tr_tcp_shutdown(ctx, c->id), 0);
      return;
    }
  }
}

static int sconn_init(tr_ctx_t *ctx, void *st, void *arg) {
  sconn_t *c = st;
  tr_tcp_accepted_t *acc = arg;
  c->mode = (int)(intptr_t)acc->arg;
  int rc = tr_tcp_adopt(ctx, acc, &c->id);
  if (rc) return rc;
  if (c->mode == MODE_FLOOD) {
    ck_assert_int_eq(tr_tcp_set_wbuf(ctx, c->id, 256 * 1024), 0);
    flood(ctx, c);
  }
  return 0;
}
static int sconn_data(tr_ctx_t *ctx, void *st, void *msg) {
  (void)ctx;
  sconn_t *c = st;
  tr_tcp_data_t *d = msg;
  ck_assert_uint_le(c->n + d->len, sizeof(c->buf));
  memcpy(c->buf + c->n, d->data, d->len);
  c->n += d->len;
  atomic_fetch_add(&srv_bytes, d->len);
  return 0;
}
static int sconn_eof(tr_ctx_t *ctx, void *st, void *msg) {
  sconn_t *c = st;
  (void)msg;
  atomic_fetch_add(&srv_eofs, 1);
  if (c->mode == MODE_HALF) {
    /* the peer is done sending; we can still answer */
    ck_assert_int_eq(tr_tcp_write(ctx, c->id, c->buf, c->n), 0);
    ck_assert_int_eq(tr_tcp_write(ctx, c->id, "!", 1), 0);
    ck_assert_int_eq(tr_tcp_shutdown(ctx, c->id), 0);
  }
  return 0;
}
static int sconn_writable(tr_ctx_t *ctx, void *st, void *msg) {
  sconn_t *c = st;
  tr_tcp_writable_t *w = msg;
  ck_assert_uint_le(w->queued, 128 * 1024);
  atomic_fetch_add(&srv_writable, 1);
  flood(ctx, c);
  return 0;
}
static int sconn_closed(tr_ctx_t *ctx, void *st, void *msg) {
  (void)st;
  tr_tcp_closed_t *m = msg;
  atomic_store(&srv_closed_status, m->status);
  atomic_fetch_add(&srv_closes, 1);
  tr_actor_stop(tr_ctx_self(ctx), 0);
  return 0;
}
static const tr_handler_t sconn_h[] = {
    {&tr_tcp_data_t__type, sconn_data},
    {&tr_tcp_eof_t__type, sconn_eof},
    {&tr_tcp_writable_t__type, sconn_writable},
    {&tr_tcp_closed_t__type, sconn_closed},
};
static const tr_behavior_t sconn_b = {.name = "sconn",
                                      .state_size = sizeof(sconn_t),
                                      .init = sconn_init,
                                      .handlers = TR_HANDLERS(sconn_h)};

static tr_ref_t serve(tr_runtime_t *rt, int mode, uint16_t *port) {
  atomic_store(&srv_closed_status, 1);
  atomic_store(&srv_eofs, 0);
  atomic_store(&srv_closes, 0);
  atomic_store(&srv_bytes, 0);
  atomic_store(&srv_written, 0);
  atomic_store(&srv_eagain, 0);
  atomic_store(&srv_writable, 0);
  tr_tcp_listen_opts_t o = {.conn_behavior = &sconn_b,
                            .conn_arg = (void *)(intptr_t)mode};
  tr_ref_t l;
  ck_assert_int_eq(tr_tcp_listen(rt, &o, &l, port), 0);
  return l;
}

START_TEST(test_peer_reset) {
  tr_runtime_t *rt = rt_new();
  uint16_t port;
  tr_ref_t l = serve(rt, MODE_RESET, &port);
  int fd = plain_connect(port);
  ck_assert_int_eq(write(fd, "hi", 2), 2);
  ck_assert(tu_wait_ge(&srv_bytes, 2, 5000));
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
  ck_assert_int_eq(close(fd), 0); /* sends RST */
  uint64_t end = tu_now_ms() + 5000;
  while (atomic_load(&srv_closes) == 0 && tu_now_ms() < end) tu_sleep_ms(1);
  ck_assert_int_eq(atomic_load(&srv_closed_status), -ECONNRESET);
  tr_actor_stop(l, 0);
  rt_done(rt);
}
END_TEST

START_TEST(test_half_close) {
  tr_runtime_t *rt = rt_new();
  uint16_t port;
  tr_ref_t l = serve(rt, MODE_HALF, &port);
  int fd = plain_connect(port);
  ck_assert_int_eq(write(fd, "question", 8), 8);
  ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
  char buf[64];
  size_t got = 0;
  for (;;) {
    ssize_t n = read(fd, buf + got, sizeof(buf) - got);
    ck_assert_int_ge(n, 0);
    if (n == 0) break;
    got += (size_t)n;
  }
  ck_assert_uint_eq(got, 9);
  ck_assert(memcmp(buf, "question!", 9) == 0);
  ck_assert_int_eq(atomic_load(&srv_eofs), 1);
  ck_assert_int_eq(close(fd), 0);
  tr_actor_stop(l, 0);
  rt_done(rt);
}
END_TEST

START_TEST(test_backpressure) {
  tr_runtime_t *rt = rt_new();
  uint16_t port;
  tr_ref_t l = serve(rt, MODE_FLOOD, &port);
  int fd = plain_connect(port);
  /* not reading: the server must hit the bound */
  ck_assert(tu_wait_ge(&srv_eagain, 1, 5000));
  uint64_t w = atomic_load(&srv_written);
  tu_sleep_ms(50);
  ck_assert_uint_eq(atomic_load(&srv_written), w); /* stalled, bounded */
  /* now read everything: writable messages let it finish */
  static char buf[65536];
  uint64_t total = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    ck_assert_int_ge(n, 0);
    if (n == 0) break;
    total += (uint64_t)n;
  }
  ck_assert_uint_eq(total, atomic_load(&srv_written));
  ck_assert_uint_ge(total, 32u << 20);
  ck_assert_uint_ge(atomic_load(&srv_writable), 1);
  ck_assert_int_eq(close(fd), 0);
  tr_actor_stop(l, 0);
  rt_done(rt);
}
END_TEST

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  Suite *s = suite_create("tcp");
  TCase *tc = tcase_create("tcp");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_connect_refused);
  tcase_add_test(tc, test_connect_ok);
  tcase_add_test(tc, test_connect_timeout);
  tcase_add_test(tc, test_peer_reset);
  tcase_add_test(tc, test_half_close);
  tcase_add_test(tc, test_backpressure);
  suite_add_tcase(s, tc);
  return tu_run(s);
}
