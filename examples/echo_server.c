/* SPDX-License-Identifier: MIT */
/*
 * A TCP echo server made of actors: a listener actor accepts and spawns
 * one connection actor per socket; each connection actor writes back the
 * bytes it receives and closes when the peer does. Explained line by line
 * in doc/reactor.md.
 *
 *   echo_server --port 7000     serve until interrupted
 *   echo_server                 self-test (what `make check` runs): serve
 *                               on a free loopback port, open 1,000
 *                               concurrent connections from a plain epoll
 *                               client thread, and check every byte
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <troupe.h>
#include <troupe/io.h>
#include <troupe/net.h>

/* ---- the server: this is all of it ------------------------------------- */

typedef struct conn {
  tr_tcp_id_t id;
  uint8_t *held;   /* bytes the write queue refused, sent when writable */
  size_t nheld;
} conn_t;

/* Spawned by the listener for each accepted socket: take it. */
static int conn_init(tr_ctx_t *ctx, void *state, void *arg) {
  conn_t *c = state;
  return tr_tcp_adopt(ctx, arg, &c->id);
}

/* Keeps bytes the socket cannot take yet; reading pauses meanwhile. */
static int hold(tr_ctx_t *ctx, conn_t *c, const uint8_t *p, size_t n) {
  uint8_t *b = realloc(c->held, c->nheld + n);
  if (!b) return TR_ENOMEM;
  memcpy(b + c->nheld, p, n);
  c->held = b;
  c->nheld += n;
  return tr_tcp_pause(ctx, c->id, 1);
}

/* Bytes arrived: send them back. When the peer reads slower than it
 * writes, the write queue fills up (TR_EAGAIN): hold the bytes and stop
 * reading until tr_tcp_writable_t says the queue has drained. */
static int conn_data(tr_ctx_t *ctx, void *state, void *msg) {
  conn_t *c = state;
  tr_tcp_data_t *d = msg;
  if (c->nheld) return hold(ctx, c, d->data, d->len);
  int rc = tr_tcp_write(ctx, c->id, d->data, d->len);
  if (rc == TR_EAGAIN) return hold(ctx, c, d->data, d->len);
  return 0; /* an error closes the connection: tr_tcp_closed_t follows */
}

/* The queue has room again: send what was held, in pieces (a write
 * larger than the queue's bound is refused whole, TR_EMSGSIZE). */
#define PIECE 65536
static int conn_writable(tr_ctx_t *ctx, void *state, void *msg) {
  conn_t *c = state;
  (void)msg;
  size_t off = 0;
  while (off < c->nheld) {
    size_t n = c->nheld - off < PIECE ? c->nheld - off : PIECE;
    int rc = tr_tcp_write(ctx, c->id, c->held + off, n);
    if (rc == TR_EAGAIN) break; /* wait for the next one */
    if (rc) return 0; /* closed: tr_tcp_closed_t follows */
    off += n;
  }
  if (off < c->nheld) {
    memmove(c->held, c->held + off, c->nheld - off);
    c->nheld -= off;
    return 0;
  }
  free(c->held);
  c->held = NULL;
  c->nheld = 0;
  return tr_tcp_pause(ctx, c->id, 0);
}

static void conn_stop(tr_ctx_t *ctx, void *state, int reason) {
  conn_t *c = state;
  (void)ctx;
  (void)reason;
  free(c->held);
}

/* The peer finished sending: we are done too. */
static int conn_eof(tr_ctx_t *ctx, void *state, void *msg) {
  conn_t *c = state;
  (void)msg;
  return tr_tcp_close(ctx, c->id);
}

/* Closed (our close acknowledged, or a reset): the actor's job is over. */
static int conn_closed(tr_ctx_t *ctx, void *state, void *msg) {
  (void)state;
  (void)msg;
  tr_actor_stop(tr_ctx_self(ctx), 0);
  return 0;
}

static const tr_handler_t conn_handlers[] = {
    {&tr_tcp_data_t__type, conn_data},
    {&tr_tcp_writable_t__type, conn_writable},
    {&tr_tcp_eof_t__type, conn_eof},
    {&tr_tcp_closed_t__type, conn_closed},
};

static const tr_behavior_t conn_behavior = {
    .name = "echo_conn",
    .state_size = sizeof(conn_t),
    .init = conn_init,
    .on_stop = conn_stop,
    .handlers = TR_HANDLERS(conn_handlers),
};

/* ---- the self-test client: plain epoll, no troupe ------------------------- */

#define NCONN 1000
#define PER_CONN 16384

typedef struct cli {
  int fd;
  size_t sent, recvd;
} cli_t;

static uint8_t byte_at(int c, size_t i) {
  return (uint8_t)(c * 31u + i * 7u + (i >> 8));
}

static int client_run(uint16_t port, size_t *total) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return -errno;
  static cli_t cl[NCONN];
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < NCONN; i++) {
    cl[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (cl[i].fd < 0) return -errno;
    if (connect(cl[i].fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 &&
        errno != EINPROGRESS)
      return -errno;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, cl[i].fd, &ev) != 0) return -errno;
  }
  int done = 0, rc = 0;
  uint8_t buf[8192];
  struct epoll_event evs[256];
  while (done < NCONN && rc == 0) {
    int n = epoll_wait(ep, evs, 256, 10000);
    if (n == 0) {
      rc = -ETIMEDOUT;
      break;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      rc = -errno;
      break;
    }
    for (int k = 0; k < n && rc == 0; k++) {
      int i = (int)evs[k].data.u32;
      cli_t *c = &cl[i];
      if ((evs[k].events & EPOLLOUT) && c->sent < PER_CONN) {
        size_t len = PER_CONN - c->sent;
        if (len > sizeof(buf)) len = sizeof(buf);
        for (size_t j = 0; j < len; j++) buf[j] = byte_at(i, c->sent + j);
        ssize_t w = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (w > 0) c->sent += (size_t)w;
        else if (w < 0 && errno != EAGAIN) rc = -errno;
        if (c->sent == PER_CONN) {
          struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
          if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) rc = -errno;
        }
      }
      if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
        if (r < 0 && errno != EAGAIN) {
          rc = -errno;
        } else if (r == 0) {
          rc = -EPIPE; /* the server never closes first */
        } else if (r > 0) {
          for (ssize_t j = 0; j < r; j++)
            if (buf[j] != byte_at(i, c->recvd + (size_t)j)) rc = -EPROTO;
          c->recvd += (size_t)r;
          *total += (size_t)r;
          if (c->recvd == PER_CONN) {
            if (epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL) != 0) rc = -errno;
            if (close(c->fd) != 0) rc = -errno;
            c->fd = -1;
            done++;
          }
        }
      }
    }
  }
  for (int i = 0; i < NCONN; i++)
    if (cl[i].fd >= 0 && close(cl[i].fd) != 0 && rc == 0) rc = -errno;
  if (close(ep) != 0 && rc == 0) rc = -errno;
  return rc;
}

static int run(uint16_t port, int selftest) {
  tr_runtime_t *rt;
  int rc = tr_runtime_new(NULL, &rt);
  if (rc) return rc;
  if ((rc = tr_runtime_start(rt)) != 0) return rc;
  tr_tcp_listen_opts_t o = {
      .host = "127.0.0.1", .port = port, .conn_behavior = &conn_behavior};
  tr_ref_t listener;
  if ((rc = tr_tcp_listen(rt, &o, &listener, &port)) != 0) {
    fprintf(stderr, "listen: %s\n", tr_strerror(rc));
    return rc;
  }
  printf("echo server on 127.0.0.1:%u (backend %s)\n", port,
         tr_io_backend_name(rt));
  fflush(stdout);
  if (!selftest) {
    for (;;) pause(); /* serve until killed */
  }
  size_t total = 0;
  rc = client_run(port, &total);
  if (rc == 0 && total != (size_t)NCONN * PER_CONN) rc = -EPROTO;
  printf("self-test: %d connections, %zu bytes echoed: %s\n", NCONN, total,
         rc ? tr_strerror(rc) : "ok");
  (void)tr_actor_stop(listener, 0);
  int src = tr_runtime_shutdown(rt, 5000);
  if (src && !rc) rc = src;
  int frc = tr_io_fini(rt);
  if (frc && !rc) rc = frc;
  tr_runtime_free(rt);
  return rc;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc == 3 && strcmp(argv[1], "--port") == 0)
    return run((uint16_t)atoi(argv[2]), 0) ? 1 : 0;
  return run(0, 1) ? 1 : 0;
}
