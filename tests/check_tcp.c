/* SPDX-License-Identifier: MIT */
/*
 * Tests of TCP actors (<troupe/net.h>) against plain sockets driven by the
 * test thread: connection refused (at once or as a message), connect
 * timeout, a peer's reset reported as tr_tcp_closed_t with -ECONNRESET,
 * half-close (the peer's end-of-file arrives as tr_tcp_eof_t and the
 * connection can still answer), backpressure (a peer that does not
 * read makes writes queue up to the bound, then TR_EAGAIN, then a
 * tr_tcp_writable_t once it reads; a write larger than the bound is
 * refused even into an empty queue), the read bound (an owner that keeps
 * its data messages stops the reading, and everything arrives once it
 * lets them go), and a listener out of file descriptors (it backs off
 * instead of spinning, and accepts the waiting clients once descriptors
 * are free), and file ranges sent without a copy (tr_tcp_write_map:
 * order with plain writes, refused ranges, a peer gone with SIGPIPE at
 * its default action, sendfile's EPIPE on a worker and on an application
 * thread, a file that shrinks while queued).
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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
static _Atomic int64_t target_timeout;
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

static void dial(uint16_t port, tr_duration_t timeout) {
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
  /* MODE_HOARD: data messages kept unconsumed, and the stream position */
  int hoarding;
  tr_tcp_data_t **kept;
  size_t nkept, capkept;
  uint64_t pos;
} sconn_t;
enum { MODE_RESET, MODE_HALF, MODE_FLOOD, MODE_BIG, MODE_HOARD };

/* MODE_BIG: the bound, what the oversized write returned, the queue
 * after it, the largest queue seen after an accepted write */
#define BIG_WBUF (64u * 1024)
#define BIG_WRITE (32u << 20)
#define BIG_TOTAL (4u << 20)
static _Atomic int big_rc, exact_rc;
static _Atomic uint64_t big_queued, max_queued;

/* MODE_HOARD: its ref, the largest count of pending bytes and of stalls
 * it saw, and the first byte out of place (position + 1; 0: none) */
static _Atomic uint64_t hoard_ref, hoard_pending_max, hoard_stalls, hoard_bad;

/* The byte at stream position p: mixes the higher bits in, so that a
 * chunk delivered out of place does not match. */
static uint8_t pattern(uint64_t p) {
  return (uint8_t)(p ^ (p >> 8) ^ (p >> 16) ^ (p >> 24) ^ 0x5a);
}

static void check_pattern(sconn_t *c, const uint8_t *d, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (d[i] != pattern(c->pos + i)) {
      uint64_t none = 0;
      atomic_compare_exchange_strong(&hoard_bad, &none, c->pos + i + 1);
      break;
    }
  }
  c->pos += n;
  atomic_fetch_add(&srv_bytes, n);
}

/* Sent by the test thread to a hoarding connection: consume from now on. */
TR_MESSAGE_TYPE(release_t, int unused;)
TR_MESSAGE_DEFINE(release_t);

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

/* MODE_BIG: writes of 16 KiB until the bound refuses one or BIG_TOTAL
 * is out, recording the queue after each. */
static void flood_small(tr_ctx_t *ctx, sconn_t *c) {
  static uint8_t chunk[16384];
  while (atomic_load(&srv_written) < BIG_TOTAL) {
    int rc = tr_tcp_write(ctx, c->id, chunk, sizeof(chunk));
    if (rc == TR_EAGAIN) {
      atomic_fetch_add(&srv_eagain, 1);
      return;
    }
    ck_assert_int_eq(rc, 0);
    atomic_fetch_add(&srv_written, sizeof(chunk));
    tr_tcp_stats_t st;
    ck_assert_int_eq(tr_tcp_stats(ctx, c->id, &st), 0);
    if (st.wq_queued > atomic_load(&max_queued))
      atomic_store(&max_queued, st.wq_queued);
  }
  ck_assert_int_eq(tr_tcp_shutdown(ctx, c->id), 0);
}

static void big_start(tr_ctx_t *ctx, sconn_t *c) {
  ck_assert_int_eq(tr_tcp_set_wbuf(ctx, c->id, BIG_WBUF), 0);
  /* into the empty queue of a peer that does not read yet: more than
   * the bound and than the kernel's buffers */
  uint8_t *big = calloc(1, BIG_WRITE);
  ck_assert_ptr_nonnull(big);
  int rc = tr_tcp_write(ctx, c->id, big, BIG_WRITE);
  atomic_store(&big_rc, rc);
  if (rc == 0) atomic_fetch_add(&srv_written, BIG_WRITE);
  free(big);
  tr_tcp_stats_t st;
  ck_assert_int_eq(tr_tcp_stats(ctx, c->id, &st), 0);
  atomic_store(&big_queued, st.wq_queued);
  ck_assert_uint_eq(st.wq_max, BIG_WBUF);
  /* exactly the bound is taken */
  static uint8_t exact[BIG_WBUF];
  rc = tr_tcp_write(ctx, c->id, exact, sizeof(exact));
  atomic_store(&exact_rc, rc);
  if (rc == 0) atomic_fetch_add(&srv_written, sizeof(exact));
  flood_small(ctx, c);
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
  } else if (c->mode == MODE_BIG) {
    big_start(ctx, c);
  } else if (c->mode == MODE_HOARD) {
    c->hoarding = 1;
    atomic_store(&hoard_ref, tr_ctx_self(ctx).id);
  }
  return 0;
}

/* MODE_HOARD: keeps the message unconsumed (its bytes stay counted). */
static void hoard(tr_ctx_t *ctx, sconn_t *c, tr_tcp_data_t *d) {
  if (c->nkept == c->capkept) {
    size_t cap = c->capkept ? 2 * c->capkept : 64;
    tr_tcp_data_t **k = realloc(c->kept, cap * sizeof(*k));
    ck_assert_ptr_nonnull(k);
    c->kept = k;
    c->capkept = cap;
  }
  tr_ctx_take(ctx);
  c->kept[c->nkept++] = d;
  tr_tcp_stats_t st;
  ck_assert_int_eq(tr_tcp_stats(ctx, c->id, &st), 0);
  if (st.rx_pending > atomic_load(&hoard_pending_max))
    atomic_store(&hoard_pending_max, st.rx_pending);
  atomic_store(&hoard_stalls, st.rx_stalls);
}

static void free_kept(sconn_t *c) {
  for (size_t i = 0; i < c->nkept; i++) tr_msg_free(c->kept[i]);
  free(c->kept);
  c->kept = NULL;
  c->nkept = c->capkept = 0;
}

static int sconn_release(tr_ctx_t *ctx, void *st, void *msg) {
  (void)ctx;
  (void)msg;
  sconn_t *c = st;
  c->hoarding = 0;
  for (size_t i = 0; i < c->nkept; i++)
    check_pattern(c, c->kept[i]->data, c->kept[i]->len);
  free_kept(c); /* the bytes are consumed: reading resumes */
  return 0;
}

static void sconn_stop(tr_ctx_t *ctx, void *st, int reason) {
  (void)ctx;
  (void)reason;
  free_kept(st);
}

static int sconn_data(tr_ctx_t *ctx, void *st, void *msg) {
  sconn_t *c = st;
  tr_tcp_data_t *d = msg;
  if (c->mode == MODE_HOARD) {
    if (c->hoarding) hoard(ctx, c, d);
    else check_pattern(c, d->data, d->len);
    return 0;
  }
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
  atomic_fetch_add(&srv_writable, 1);
  if (c->mode == MODE_BIG) {
    ck_assert_uint_le(w->queued, BIG_WBUF / 2);
    flood_small(ctx, c);
    return 0;
  }
  ck_assert_uint_le(w->queued, 128 * 1024);
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
    {&release_t__type, sconn_release},
};
static const tr_behavior_t sconn_b = {.name = "sconn",
                                      .state_size = sizeof(sconn_t),
                                      .init = sconn_init,
                                      .on_stop = sconn_stop,
                                      .handlers = TR_HANDLERS(sconn_h)};

static tr_ref_t serve(tr_runtime_t *rt, int mode, uint16_t *port) {
  atomic_store(&srv_closed_status, 1);
  atomic_store(&srv_eofs, 0);
  atomic_store(&srv_closes, 0);
  atomic_store(&srv_bytes, 0);
  atomic_store(&srv_written, 0);
  atomic_store(&srv_eagain, 0);
  atomic_store(&srv_writable, 0);
  atomic_store(&big_rc, 1);
  atomic_store(&exact_rc, 1);
  atomic_store(&big_queued, 0);
  atomic_store(&max_queued, 0);
  atomic_store(&hoard_ref, 0);
  atomic_store(&hoard_pending_max, 0);
  atomic_store(&hoard_stalls, 0);
  atomic_store(&hoard_bad, 0);
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

/* A write larger than the bound is refused whole even into an empty
 * queue (it used to be queued, whatever its size); one of exactly the
 * bound is taken, and no accepted write takes the queue past it. */
START_TEST(test_tcp_write_over_bound_empty_queue) {
  tr_runtime_t *rt = rt_new();
  uint16_t port;
  tr_ref_t l = serve(rt, MODE_BIG, &port);
  int fd = plain_connect(port);
  /* not reading until the writer has tried the oversized write */
  uint64_t end = tu_now_ms() + 10000;
  while (atomic_load(&exact_rc) == 1 && tu_now_ms() < end) tu_sleep_ms(1);
  int over = atomic_load(&big_rc), exact = atomic_load(&exact_rc);
  uint64_t queued_after = atomic_load(&big_queued);
  ck_assert_int_eq(over, TR_EMSGSIZE);
  ck_assert_uint_eq(queued_after, 0);
  ck_assert_int_eq(exact, 0);
  static char buf[65536];
  uint64_t total = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    ck_assert_int_ge(n, 0);
    if (n == 0) break;
    total += (uint64_t)n;
  }
  /* exactly what was accepted, nothing of the refused write */
  uint64_t written = atomic_load(&srv_written);
  uint64_t maxq = atomic_load(&max_queued);
  ck_assert_uint_eq(total, written);
  ck_assert_uint_ge(total, BIG_TOTAL);
  ck_assert_uint_le(maxq, BIG_WBUF);
  ck_assert_int_eq(close(fd), 0);
  tr_actor_stop(l, 0);
  rt_done(rt);
}
END_TEST

/* Writes pattern bytes from stream position *sent on; returns what
 * write() returned. */
static ssize_t write_pattern(int fd, uint64_t *sent, uint64_t total) {
  static uint8_t chunk[65536];
  size_t n = total - *sent < sizeof(chunk) ? (size_t)(total - *sent)
                                           : sizeof(chunk);
  for (size_t i = 0; i < n; i++) chunk[i] = pattern(*sent + i);
  ssize_t w = write(fd, chunk, n);
  if (w > 0) *sent += (uint64_t)w;
  return w;
}

/* An owner that keeps its data messages instead of consuming them: the
 * connection stops reading at the read bound (it used to read and
 * deliver all the peer sent), and once the owner lets the messages go,
 * reading resumes and every byte arrives, in order. */
START_TEST(test_tcp_read_bound_slow_owner) {
  /* half under ThreadSanitizer, ten times slower: still far more than
   * the bound and the kernel's buffers (about 5 MiB here) */
  const uint64_t total = TU_TSAN ? 32u << 20 : 64u << 20;
  tr_runtime_t *rt = rt_new();
  uint16_t port;
  tr_ref_t l = serve(rt, MODE_HOARD, &port);
  int fd = plain_connect(port);
  ck_assert_int_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
  uint64_t sent = 0;
  /* write until no byte has gone for a second: the kernel's buffers
   * and the bound are full (or everything is out) */
  while (sent < total) {
    ssize_t w = write_pattern(fd, &sent, total);
    if (w >= 0) continue;
    ck_assert(errno == EAGAIN || errno == EWOULDBLOCK);
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    if (poll(&p, 1, 1000) == 0) break;
  }
  /* bounded: 1 MiB in messages plus one read past it, and whatever
   * the two sockets' kernel buffers hold, far from all of it */
  uint64_t pending_max = atomic_load(&hoard_pending_max);
  uint64_t stalls = atomic_load(&hoard_stalls);
  ck_assert_uint_lt(sent, total / 2);
  ck_assert_uint_le(pending_max, TR_TCP_RBUF_DEFAULT + 65536);
  ck_assert_uint_ge(pending_max, TR_TCP_RBUF_DEFAULT);
  ck_assert_uint_ge(stalls, 1);
  /* let go: the rest must flow */
  release_t *r = tr_msg_new(&release_t__type);
  ck_assert_ptr_nonnull(r);
  tr_ref_t c = {atomic_load(&hoard_ref)};
  ck_assert_int_eq(tr_send(NULL, c, r), 0);
  uint64_t end = tu_now_ms() + 60000;
  while (sent < total && tu_now_ms() < end) {
    ssize_t w = write_pattern(fd, &sent, total);
    if (w >= 0) continue;
    ck_assert(errno == EAGAIN || errno == EWOULDBLOCK);
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    ck_assert_int_ge(poll(&p, 1, 1000), 0);
  }
  ck_assert_uint_eq(sent, total);
  ck_assert(tu_wait_ge(&srv_bytes, total, 60000));
  uint64_t got = atomic_load(&srv_bytes), bad = atomic_load(&hoard_bad);
  ck_assert_uint_eq(got, total);
  ck_assert_uint_eq(bad, 0); /* else: the first byte out of place + 1 */
  ck_assert_int_eq(close(fd), 0);
  tr_actor_stop(l, 0);
  rt_done(rt);
}
END_TEST

static tr_tcp_listener_stats_t listener_stats(tr_handle_t *h, tr_ref_t l) {
  tr_tcp_listener_stats_t *req = tr_msg_new(&tr_tcp_listener_stats_t__type);
  ck_assert_ptr_nonnull(req);
  void *rep = NULL;
  ck_assert_int_eq(tr_handle_call(h, l, req, 10000, &rep), 0);
  ck_assert_ptr_eq(tr_msg_type(rep), &tr_tcp_listener_stats_t__type);
  tr_tcp_listener_stats_t s = *(tr_tcp_listener_stats_t *)rep;
  tr_msg_free(rep);
  return s;
}

/* With the fd table full, the listening socket stays readable: the
 * listener must back off rather than retry at once (it used to re-arm
 * and spin, thousands of accepts a second), and accept the clients that
 * waited once descriptors are free. Check runs each test in its own
 * process, so the lowered limit stays here. */
START_TEST(test_tcp_listen_emfile_backoff) {
  enum { NCLI = 4, LIMIT = 256 };
  tr_runtime_t *rt = rt_new();
  tr_handle_t *h;
  ck_assert_int_eq(tr_handle_new(rt, &h), 0);
  uint16_t port;
  tr_ref_t l = serve(rt, MODE_RESET, &port);
  int cli[NCLI];
  for (int i = 0; i < NCLI; i++) {
    cli[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(cli[i], 0);
  }
  struct rlimit old, lim;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
  lim = old;
  if (lim.rlim_cur > LIMIT) lim.rlim_cur = LIMIT;
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
  int fill[LIMIT];
  int nfill = 0;
  for (;;) {
    int f = dup(cli[0]);
    if (f < 0) {
      ck_assert_int_eq(errno, EMFILE);
      break;
    }
    ck_assert_int_lt(nfill, LIMIT);
    fill[nfill++] = f;
  }
  /* connects need no new descriptor; they wait in the backlog */
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < NCLI; i++) {
    ck_assert_int_eq(connect(cli[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(write(cli[i], "x", 1), 1);
  }
  tr_tcp_listener_stats_t s0 = listener_stats(h, l);
  uint64_t end = tu_now_ms() + 10000;
  while (s0.exhausted == 0 && tu_now_ms() < end) {
    tu_sleep_ms(5);
    s0 = listener_stats(h, l);
  }
  ck_assert_uint_ge(s0.exhausted, 1);
  tu_sleep_ms(500); /* the window in which accepts are counted */
  tr_tcp_listener_stats_t s1 = listener_stats(h, l);
  /* a spinning listener makes thousands of attempts in 500 ms; with the
   * back-off (10, 20, 40, ... ms) a handful */
  ck_assert_uint_lt(s1.attempts - s0.attempts, 100);
  ck_assert_uint_eq(s1.accepted, 0);
  ck_assert_int_ge(s1.backoff_ms, TR_TCP_ACCEPT_BACKOFF_MIN);
  ck_assert_int_le(s1.backoff_ms, TR_TCP_ACCEPT_BACKOFF_MAX);
  ck_assert_uint_ge(s1.backoffs, 1);
  /* free the descriptors: the waiting clients are served */
  for (int i = 0; i < nfill; i++) ck_assert_int_eq(close(fill[i]), 0);
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
  end = tu_now_ms() + 10000;
  do {
    tu_sleep_ms(5);
    s1 = listener_stats(h, l);
  } while (s1.accepted < NCLI && tu_now_ms() < end);
  ck_assert_uint_eq(s1.accepted, NCLI);
  ck_assert_uint_eq(s1.spawn_failed, 0);
  ck_assert_int_eq(s1.backoff_ms, 0);
  ck_assert(tu_wait_ge(&srv_bytes, NCLI, 10000));
  for (int i = 0; i < NCLI; i++) ck_assert_int_eq(close(cli[i]), 0);
  tr_handle_free(h);
  tr_actor_stop(l, 0);
  rt_done(rt);
}
END_TEST

/* ---- tr_tcp_write_map ------------------------------------------------------------ */

#define MAP_SIZE (3u << 20)
#define MAP_OFF 1000u
#define MAP_WBUF (64u * 1024)

/* The file the map tests send, its descriptor (to shrink it) and the
 * server side's raw socket (to shut it down behind the connection). */
static tr_file_map_t *g_map;
static int g_map_fd = -1;
static _Atomic int g_raw_fd;
static _Atomic int map_rc[8];
static _Atomic uint64_t map_done, map_closes, map_pipe_pending;
static _Atomic int map_closed_status;

/* The file's byte at offset p. */
static uint8_t fbyte(uint64_t p) { return pattern(p * 7 + 3); }

static void map_file_new(void) {
  const char *t = getenv("TMPDIR");
  char path[512];
  snprintf(path, sizeof(path), "%s/troupe-map-XXXXXX", t && *t ? t : "/tmp");
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(unlink(path), 0);
  uint8_t *b = malloc(MAP_SIZE);
  ck_assert_ptr_nonnull(b);
  for (uint64_t i = 0; i < MAP_SIZE; i++) b[i] = fbyte(i);
  ck_assert_int_eq(write(fd, b, MAP_SIZE), (ssize_t)MAP_SIZE);
  free(b);
  ck_assert_int_eq(tr_file_map_fd(fd, 0, &g_map), 0);
  g_map_fd = fd;
  for (int i = 0; i < 8; i++) atomic_store(&map_rc[i], 1);
  atomic_store(&map_done, 0);
  atomic_store(&map_closes, 0);
  atomic_store(&map_pipe_pending, 0);
  atomic_store(&map_closed_status, 1);
  atomic_store(&g_raw_fd, -1);
}

static void map_file_free(void) {
  tr_file_map_unref(g_map); /* NULL once the test dropped it */
  g_map = NULL;
  ck_assert_int_eq(close(g_map_fd), 0);
  g_map_fd = -1;
}

enum { MAP_ORDER, MAP_WHOLE, MAP_PIPE };

typedef struct mconn {
  tr_tcp_id_t id;
} mconn_t;

/* 1 if SIGPIPE is pending for this thread (or the process). */
static int sigpipe_pending(void) {
  sigset_t p;
  ck_assert_int_eq(sigpending(&p), 0);
  return sigismember(&p, SIGPIPE) == 1;
}

/* MAP_ORDER: bytes, a head and a large range (the peer does not read
 * yet: it waits), a second head and range behind it, refused writes
 * (that must leave nothing in the stream), bytes, end-of-file. Its own
 * reference to the map is dropped at once: the queue keeps one. */
static void map_order(tr_ctx_t *ctx, mconn_t *c) {
  tr_file_map_t *m = tr_file_map_ref(g_map);
  uint64_t size = tr_file_map_size(m);
  ck_assert_int_eq(tr_tcp_set_wbuf(ctx, c->id, MAP_WBUF), 0);
  atomic_store(&map_rc[0], tr_tcp_write(ctx, c->id, "before|", 7));
  atomic_store(&map_rc[1], tr_tcp_write_map(ctx, c->id, "HEAD|", 5, m, MAP_OFF,
                                            size - 2 * MAP_OFF));
  atomic_store(&map_rc[2], tr_tcp_write_map(ctx, c->id, "MID|", 4, m, 0, 10));
  /* past the end, by one byte, or wrapping around; a NULL head */
  int bad = 0;
  if (tr_tcp_write_map(ctx, c->id, "X", 1, m, size, 1) != TR_EINVAL) bad |= 1;
  if (tr_tcp_write_map(ctx, c->id, "X", 1, m, size - 5, 6) != TR_EINVAL)
    bad |= 2;
  if (tr_tcp_write_map(ctx, c->id, "X", 1, m, 2, UINT64_MAX) != TR_EINVAL)
    bad |= 4;
  if (tr_tcp_write_map(ctx, c->id, NULL, 3, m, 0, 1) != TR_EINVAL) bad |= 8;
  if (tr_tcp_write_map(ctx, c->id, "X", 1, NULL, 0, 0) != TR_EINVAL) bad |= 16;
  atomic_store(&map_rc[3], bad);
  /* the head counts against the bound: one larger than it is refused */
  static char bighead[MAP_WBUF + 1];
  atomic_store(&map_rc[4],
               tr_tcp_write_map(ctx, c->id, bighead, sizeof(bighead), m, 0, 1));
  /* an empty range: only the head, still in order */
  atomic_store(&map_rc[5], tr_tcp_write_map(ctx, c->id, "END|", 4, m, 5, 0));
  atomic_store(&map_rc[6], tr_tcp_write(ctx, c->id, "after", 5));
  atomic_store(&map_rc[7], tr_tcp_shutdown(ctx, c->id));
  tr_file_map_unref(m);
}

static int mconn_init(tr_ctx_t *ctx, void *st, void *arg) {
  mconn_t *c = st;
  tr_tcp_accepted_t *acc = arg;
  int mode = (int)(intptr_t)acc->arg;
  atomic_store(&g_raw_fd, acc->fd);
  /* small kernel buffers, so that the ranges must wait in the queue */
  int small = 32 * 1024;
  ck_assert_int_eq(
      setsockopt(acc->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
  int rc = tr_tcp_adopt(ctx, acc, &c->id);
  if (rc) return rc;
  if (mode == MAP_ORDER) {
    map_order(ctx, c);
  } else if (mode == MAP_WHOLE) {
    atomic_store(&map_rc[0], tr_tcp_write_map(ctx, c->id, "H", 1, g_map, 0,
                                              tr_file_map_size(g_map)));
  } else if (mode == MAP_PIPE) {
    /* our side shut down behind the connection's back: sendfile fails
     * with EPIPE, which raises SIGPIPE where nothing stops it */
    ck_assert_int_eq(shutdown(atomic_load(&g_raw_fd), SHUT_WR), 0);
    atomic_store(&map_rc[0], tr_tcp_write_map(ctx, c->id, NULL, 0, g_map, 0,
                                              tr_file_map_size(g_map)));
    atomic_store(&map_pipe_pending, (uint64_t)sigpipe_pending() + 1);
  }
  atomic_store(&map_done, 1);
  return 0;
}

static int mconn_closed(tr_ctx_t *ctx, void *st, void *msg) {
  (void)st;
  tr_tcp_closed_t *m = msg;
  atomic_store(&map_closed_status, m->status);
  atomic_fetch_add(&map_closes, 1);
  tr_actor_stop(tr_ctx_self(ctx), 0);
  return 0;
}

static int mconn_ignore(tr_ctx_t *ctx, void *st, void *msg) {
  (void)ctx;
  (void)st;
  (void)msg;
  return 0;
}

static const tr_handler_t mconn_h[] = {
    {&tr_tcp_data_t__type, mconn_ignore},
    {&tr_tcp_eof_t__type, mconn_ignore},
    {&tr_tcp_writable_t__type, mconn_ignore},
    {&tr_tcp_closed_t__type, mconn_closed},
};
static const tr_behavior_t mconn_b = {.name = "mconn",
                                      .state_size = sizeof(mconn_t),
                                      .init = mconn_init,
                                      .handlers = TR_HANDLERS(mconn_h)};

static tr_ref_t map_serve(tr_runtime_t *rt, int mode, uint16_t *port) {
  tr_tcp_listen_opts_t o = {.conn_behavior = &mconn_b,
                            .conn_arg = (void *)(intptr_t)mode};
  tr_ref_t l;
  ck_assert_int_eq(tr_tcp_listen(rt, &o, &l, port), 0);
  return l;
}

/* A client with a small receive buffer (see mconn_init). */
static int small_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  int small = 32 * 1024;
  ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)),
                   0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  return fd;
}

/* Reads until end-of-file or an error into buf (at most cap), slowly:
 * a pause every few reads. Returns the bytes read. */
static size_t read_slowly(int fd, uint8_t *buf, size_t cap) {
  size_t got = 0;
  for (unsigned i = 0;; i++) {
    size_t want = cap - got < 16384 ? cap - got : 16384;
    if (!want) break;
    ssize_t n = read(fd, buf + got, want);
    if (n <= 0) break;
    got += (size_t)n;
    if (i % 16 == 15) tu_sleep_ms(1);
  }
  return got;
}

/* A head and a 3 MiB range to a peer that reads slowly, between plain
 * writes and behind a range still queued: every byte arrives, in order;
 * refused writes take nothing. */
START_TEST(test_tcp_write_map_order) {
  map_file_new();
  tr_runtime_t *rt = rt_new();
  uint16_t port;
  tr_ref_t l = map_serve(rt, MAP_ORDER, &port);
  int fd = small_connect(port);
  ck_assert(tu_wait_ge(&map_done, 1, 10000));
  /* the queue keeps the map alive on its own */
  tr_file_map_unref(g_map);
  g_map = NULL;
  tu_sleep_ms(20); /* let the queue sit a little */
  size_t body = MAP_SIZE - 2 * MAP_OFF;
  size_t want = 7 + 5 + body + 4 + 10 + 4 + 5;
  uint8_t *buf = malloc(want + 1);
  ck_assert_ptr_nonnull(buf);
  size_t got = read_slowly(fd, buf, want + 1);
  ck_assert_int_eq(atomic_load(&map_rc[0]), 0);
  ck_assert_int_eq(atomic_load(&map_rc[1]), 0);
  ck_assert_int_eq(atomic_load(&map_rc[2]), 0);
  ck_assert_int_eq(atomic_load(&map_rc[3]), 0);
  ck_assert_int_eq(atomic_load(&map_rc[4]), TR_EMSGSIZE);
  ck_assert_int_eq(atomic_load(&map_rc[5]), 0);
  ck_assert_int_eq(atomic_load(&map_rc[6]), 0);
  ck_assert_int_eq(atomic_load(&map_rc[7]), 0);
  ck_assert_uint_eq(got, want);
  const uint8_t *p = buf;
  ck_assert(memcmp(p, "before|HEAD|", 12) == 0);
  p += 12;
  for (size_t i = 0; i < body; i++)
    if (p[i] != fbyte(MAP_OFF + i))
      ck_abort_msg("byte %zu of the range differs", i);
  p += body;
  ck_assert(memcmp(p, "MID|", 4) == 0);
  p += 4;
  for (size_t i = 0; i < 10; i++) ck_assert_uint_eq(p[i], fbyte(i));
  p += 10;
  ck_assert(memcmp(p, "END|after", 9) == 0);
  free(buf);
  ck_assert_int_eq(close(fd), 0);
  tr_actor_stop(l, 0);
  rt_done(rt);
  map_file_free();
}
END_TEST

/* The peer resets the connection while a range is queued: the owner
 * gets tr_tcp_closed_t with an error, and SIGPIPE (default action here:
 * it would kill the test) is never delivered. */
START_TEST(test_tcp_write_map_peer_closes) {
  signal(SIGPIPE, SIG_DFL);
  map_file_new();
  tr_runtime_t *rt = rt_new();
  uint16_t port;
  tr_ref_t l = map_serve(rt, MAP_WHOLE, &port);
  int fd = small_connect(port);
  ck_assert(tu_wait_ge(&map_done, 1, 10000));
  ck_assert_int_eq(atomic_load(&map_rc[0]), 0);
  static uint8_t buf[65536];
  ck_assert_int_gt(read(fd, buf, sizeof(buf)), 0);
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
  ck_assert_int_eq(close(fd), 0); /* sends RST */
  ck_assert(tu_wait_ge(&map_closes, 1, 10000));
  ck_assert_int_lt(atomic_load(&map_closed_status), 0);
  tr_actor_stop(l, 0);
  rt_done(rt);
  map_file_free();
  signal(SIGPIPE, SIG_IGN);
}
END_TEST

/* sendfile failing with EPIPE, on a worker (the connection made by the
 * listener) and on a thread of the application (an actor spawned by the
 * test thread, whose init runs there): the error, a tr_tcp_closed_t, no
 * SIGPIPE delivered (default action here) nor left pending, and the
 * application thread's mask as it was. */
START_TEST(test_tcp_write_map_epipe_no_signal) {
  signal(SIGPIPE, SIG_DFL);
  map_file_new();
  tr_runtime_t *rt = rt_new();
  uint16_t port;
  tr_ref_t l = map_serve(rt, MAP_PIPE, &port);
  int fd = plain_connect(port);
  ck_assert(tu_wait_ge(&map_done, 1, 10000));
  ck_assert_int_eq(atomic_load(&map_rc[0]), -EPIPE);
  ck_assert_uint_eq(atomic_load(&map_pipe_pending), 1); /* not pending */
  ck_assert(tu_wait_ge(&map_closes, 1, 10000));
  ck_assert_int_eq(atomic_load(&map_closed_status), -EPIPE);
  ck_assert_int_eq(close(fd), 0);

  /* the same from this thread */
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(lfd, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof(sa);
  ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sl), 0);
  ck_assert_int_eq(listen(lfd, 1), 0);
  ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
  fd = plain_connect(ntohs(sa.sin_port));
  tr_tcp_accepted_t acc;
  memset(&acc, 0, sizeof(acc));
  acc.fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  ck_assert_int_ge(acc.fd, 0);
  acc.arg = (void *)(intptr_t)MAP_PIPE;
  atomic_store(&map_done, 0);
  atomic_store(&map_rc[0], 1);
  sigset_t before, after;
  ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, NULL, &before), 0);
  ck_assert_int_eq(sigismember(&before, SIGPIPE), 0);
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &mconn_b, &acc, &a), 0);
  ck_assert_uint_eq(atomic_load(&map_done), 1); /* init ran here */
  ck_assert_int_eq(atomic_load(&map_rc[0]), -EPIPE);
  ck_assert_uint_eq(atomic_load(&map_pipe_pending), 1);
  ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, NULL, &after), 0);
  ck_assert_int_eq(sigismember(&after, SIGPIPE), 0);
  ck_assert(tu_wait_ge(&map_closes, 2, 10000));
  ck_assert_int_eq(close(fd), 0);
  ck_assert_int_eq(close(lfd), 0);
  tr_actor_stop(l, 0);
  rt_done(rt);
  map_file_free();
  signal(SIGPIPE, SIG_IGN);
}
END_TEST

/* The file shrinks while its range waits in the queue: the connection
 * closes with TR_EIO once sendfile finds the end, the peer reads what
 * there was and then end-of-file, nothing crashes. */
START_TEST(test_tcp_write_map_file_shrinks) {
  map_file_new();
  tr_runtime_t *rt = rt_new();
  uint16_t port;
  tr_ref_t l = map_serve(rt, MAP_WHOLE, &port);
  int fd = small_connect(port);
  ck_assert(tu_wait_ge(&map_done, 1, 10000));
  ck_assert_int_eq(atomic_load(&map_rc[0]), 0);
  ck_assert_int_eq(ftruncate(g_map_fd, MAP_SIZE / 3), 0);
  uint8_t *buf = malloc(MAP_SIZE + 1);
  ck_assert_ptr_nonnull(buf);
  size_t got = read_slowly(fd, buf, MAP_SIZE + 1);
  /* what was in the socket buffers before the file shrank may come on
   * top of the new size, but not the whole file */
  ck_assert_uint_lt(got, 1 + MAP_SIZE);
  ck_assert_uint_ge(got, 1);
  ck_assert_uint_eq(buf[0], 'H');
  for (size_t i = 1; i < got; i++)
    if (buf[i] != fbyte(i - 1)) ck_abort_msg("byte %zu differs", i);
  free(buf);
  ck_assert(tu_wait_ge(&map_closes, 1, 10000));
  ck_assert_int_eq(atomic_load(&map_closed_status), TR_EIO);
  ck_assert_int_eq(close(fd), 0);
  tr_actor_stop(l, 0);
  rt_done(rt);
  map_file_free();
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
  tcase_add_test(tc, test_tcp_write_over_bound_empty_queue);
  tcase_add_test(tc, test_tcp_read_bound_slow_owner);
  tcase_add_test(tc, test_tcp_listen_emfile_backoff);
  tcase_add_test(tc, test_tcp_write_map_order);
  tcase_add_test(tc, test_tcp_write_map_peer_closes);
  tcase_add_test(tc, test_tcp_write_map_epipe_no_signal);
  tcase_add_test(tc, test_tcp_write_map_file_shrinks);
  suite_add_tcase(s, tc);
  return tu_run(s);
}
