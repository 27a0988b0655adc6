/* SPDX-License-Identifier: MIT */
/*
 * The "tcp-echo" workload of BENCHMARKS.md: C loopback connections each
 * bounce a 64-byte message off an echo server for D seconds (the next
 * message leaves when the echo is back and checked). The client is one
 * plain epoll thread (-t N: N threads sharing the connections, for when
 * one client thread saturates before the server does); the server is
 * troupe's (listener + one actor per connection, backend from
 * TROUPE_IO_BACKEND) or, with -P PORT, an external one such as
 * bench/epoll_echo. Checksum: round trips completed.
 *
 *   tcp_echo [-c 100] [-d 10] [-w 1] [-t 1] [-s 0]   troupe in-process
 *   tcp_echo -P PORT [-t 1]                   external server ("epoll-c")
 *
 * -s sets the workers' spin before parking (tr_runtime_config_t.spin_us,
 * 0: the runtime's default).
 */
#define _GNU_SOURCE
#include "benchutil.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <troupe/io.h>
#include <troupe/net.h>

static uint64_t n_conns = 100, seconds = 10, n_workers = 1, ext_port = 0,
                n_clients = 1, spin_us = 0;

static int conn_init(tr_ctx_t *ctx, void *st, void *arg) {
  return tr_tcp_adopt(ctx, arg, (tr_tcp_id_t *)st);
}
static int conn_data(tr_ctx_t *ctx, void *st, void *msg) {
  (void)st;
  tr_tcp_data_t *d = msg;
  int rc = tr_tcp_write(ctx, d->conn, d->data, d->len);
  if (rc) bench_die("server write: %s", tr_err_name(rc));
  return 0;
}
static int conn_eof(tr_ctx_t *ctx, void *st, void *msg) {
  (void)msg;
  return tr_tcp_close(ctx, *(tr_tcp_id_t *)st);
}
static int conn_closed(tr_ctx_t *ctx, void *st, void *msg) {
  (void)st;
  (void)msg;
  tr_actor_stop(tr_ctx_self(ctx), 0);
  return 0;
}
static const tr_handler_t conn_h[] = {
    {&tr_tcp_data_t__type, conn_data},
    {&tr_tcp_eof_t__type, conn_eof},
    {&tr_tcp_closed_t__type, conn_closed},
};
static const tr_behavior_t conn_b = {.name = "bench_echo",
                                     .state_size = sizeof(tr_tcp_id_t),
                                     .init = conn_init,
                                     .handlers = TR_HANDLERS(conn_h)};

typedef struct cli {
  int fd;
  uint64_t seq;
  size_t got;
  uint8_t msg[64];
} cli_t;

static void fill(cli_t *c) {
  for (int i = 0; i < 64; i++) c->msg[i] = (uint8_t)(c->seq * 7 + (uint64_t)i);
}

static uint64_t client_conns(uint16_t port, uint64_t nc, double *elapsed) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) bench_die("epoll_create1: %s", strerror(errno));
  cli_t *cl = calloc(nc, sizeof(*cl));
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  for (uint64_t i = 0; i < nc; i++) {
    cl[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (cl[i].fd < 0 || connect(cl[i].fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
      bench_die("connect: %s", strerror(errno));
    if (setsockopt(cl[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
      bench_die("setsockopt: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, cl[i].fd, &ev) != 0)
      bench_die("epoll_ctl: %s", strerror(errno));
  }
  uint64_t trips = 0;
  double t0 = bench_now(), end = t0 + (double)seconds;
  for (uint64_t i = 0; i < nc; i++) {
    fill(&cl[i]);
    if (send(cl[i].fd, cl[i].msg, 64, MSG_NOSIGNAL) != 64) bench_die("send");
  }
  struct epoll_event evs[256];
  uint8_t buf[64];
  while (bench_now() < end) {
    int n = epoll_wait(ep, evs, 256, 1000);
    if (n < 0 && errno != EINTR) bench_die("epoll_wait: %s", strerror(errno));
    for (int k = 0; k < n; k++) {
      cli_t *c = &cl[evs[k].data.u64];
      ssize_t r = recv(c->fd, buf, 64 - c->got, MSG_DONTWAIT);
      if (r <= 0) {
        if (r < 0 && errno == EAGAIN) continue;
        bench_die("recv: %s", r ? strerror(errno) : "closed");
      }
      if (memcmp(buf, c->msg + c->got, (size_t)r) != 0) bench_die("corrupt echo");
      c->got += (size_t)r;
      if (c->got < 64) continue;
      c->got = 0;
      c->seq++;
      trips++;
      fill(c);
      if (send(c->fd, c->msg, 64, MSG_NOSIGNAL) != 64) bench_die("send");
    }
  }
  *elapsed = bench_now() - t0;
  for (uint64_t i = 0; i < nc; i++)
    if (close(cl[i].fd) != 0) bench_die("close");
  if (close(ep) != 0) bench_die("close");
  free(cl);
  return trips;
}

typedef struct cli_thread {
  pthread_t th;
  uint16_t port;
  uint64_t conns, trips;
  double elapsed;
} cli_thread_t;

static void *client_main(void *arg) {
  cli_thread_t *t = arg;
  t->trips = client_conns(t->port, t->conns, &t->elapsed);
  return NULL;
}

/* n_clients threads, the connections split between them. */
static uint64_t client(uint16_t port, double *elapsed) {
  if (n_clients <= 1) return client_conns(port, n_conns, elapsed);
  cli_thread_t *t = calloc(n_clients, sizeof(*t));
  if (!t) bench_die("calloc");
  for (uint64_t i = 0; i < n_clients; i++) {
    t[i].port = port;
    t[i].conns = n_conns / n_clients + (i < n_conns % n_clients ? 1 : 0);
    if (pthread_create(&t[i].th, NULL, client_main, &t[i]) != 0)
      bench_die("pthread_create");
  }
  uint64_t trips = 0;
  *elapsed = 0;
  for (uint64_t i = 0; i < n_clients; i++) {
    if (pthread_join(t[i].th, NULL) != 0) bench_die("pthread_join");
    trips += t[i].trips;
    if (t[i].elapsed > *elapsed) *elapsed = t[i].elapsed;
  }
  free(t);
  return trips;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  bench_opt_t opts[] = {{'c', "connections", &n_conns},
                        {'d', "seconds", &seconds},
                        {'w', "workers", &n_workers},
                        {'P', "external_port", &ext_port},
                        {'t', "client_threads", &n_clients},
                        {'s', "spin_us", &spin_us}};
  bench_parse_args(argc, argv, "tcp_echo", opts, 6);
  bench_print_params("tcp-echo", opts, 6);
  double el;
  if (ext_port) {
    uint64_t trips = client((uint16_t)ext_port, &el);
    printf("RESULT tcp-echo epoll-c %.6f %" PRIu64 " msgs_per_s=%.0f\n", el,
           trips, (double)trips / el);
    return 0;
  }
  tr_runtime_t *rt;
  tr_runtime_config_t cfg;
  tr_runtime_config_init(&cfg);
  cfg.workers = (unsigned)n_workers;
  cfg.spin_us = (unsigned)spin_us; /* 0: the runtime's default */
  BENCH_CHECK(tr_runtime_new(&cfg, &rt));
  BENCH_CHECK(tr_runtime_start(rt));
  tr_tcp_listen_opts_t o = {.host = "127.0.0.1", .conn_behavior = &conn_b};
  tr_ref_t l;
  uint16_t port;
  BENCH_CHECK(tr_tcp_listen(rt, &o, &l, &port));
  uint64_t trips = client(port, &el);
  printf("RESULT tcp-echo troupe-%s %.6f %" PRIu64 " msgs_per_s=%.0f\n",
         tr_io_backend_name(rt), el, trips, (double)trips / el);
  fflush(stdout);
  BENCH_CHECK(tr_actor_stop(l, 0));
  (void)tr_runtime_shutdown(rt, 5000);
  BENCH_CHECK(tr_io_fini(rt));
  tr_runtime_free(rt);
  return 0;
}
