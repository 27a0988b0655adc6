/* SPDX-License-Identifier: MIT */
/*
 * TCP connections and listeners as actors, on top of the reactor's
 * registry (io/io_internal.h): a connection is an entry of kind "tcp"
 * whose events the reactor handles itself, on the poll-token holder:
 * it reads into fresh buffers that travel to the owner as tr_tcp_data_t
 * (until a short read, so the fd can stay armed edge-triggered between
 * events, see tr__io_kind_t.edge),
 * flushes the write queue, completes connects, and turns end-of-file,
 * resets and errors into messages. Writes from the owner go straight to
 * the socket when nothing is queued, else join a bounded queue.
 *
 * A queued piece is either bytes of its own (copied, counted against the
 * bound) or a range of a file mapping (tr_tcp_write_map: a reference to
 * the map, sent with sendfile(2) from the map's descriptor, not counted:
 * it takes no memory). sendfile has no MSG_NOSIGNAL; a worker runs with
 * SIGPIPE blocked for good (lib/runtime.c) and any other thread blocks it
 * around the call, and the SIGPIPE a closed peer raised is taken back
 * (sendfile_nosig), so a peer gone is an error, never a dead process.
 *
 * The read bound: the bytes of the data messages not yet freed are
 * counted in the connection (rx_pending); at the bound the reader stops
 * and sets rx_stalled, and the message destructor that brings the count
 * down to half the bound clears it and has the reactor re-arm the fd.
 * The destructor runs on whatever thread frees the message (the owner's
 * worker, a thread dropping dead letters, the reactor itself when a
 * delivery fails, under the entry's lock), so it never takes an entry
 * lock: it only queues a re-arm (tr__io_entry_poke). The count and the
 * flag are a Dekker pair: the reader sets the flag, then reads the count;
 * the destructor lowers the count, then reads the flag; all sequentially
 * consistent, so at least one of them sees the other and a stall is
 * never left without someone to end it. Messages may outlive the
 * connection, so its state is reference counted (one per message).
 *
 * The listener is an ordinary actor with a raw fd; when accept runs out
 * of descriptors it backs off on a timer instead of re-arming at once
 * (a full fd table leaves the socket readable: re-arming would spin).
 */
#include "io_internal.h"

#include <troupe/net.h>

#include "stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 65536
#define READS_PER_EVENT 4 /* fairness between connections */

typedef struct wbuf {
  struct wbuf *next;
  size_t len, off;
  tr_file_map_t *map; /* a range of this mapping (one reference), whose
                         bytes are not in data nor counted in queued;
                         NULL: the bytes are data */
  uint64_t map_off;   /* where the range starts in the file */
  uint8_t data[];
} wbuf_t;

static void wbuf_free(wbuf_t *b) {
  tr_file_map_unref(b->map);
  free(b);
}

/* sendfile(2) without the SIGPIPE it raises when the peer is gone (it has
 * no MSG_NOSIGNAL). On a worker SIGPIPE is blocked for good; on another
 * thread it is blocked for the call and the mask restored. A SIGPIPE the
 * call left pending is taken back, so that it is never delivered later:
 * on a worker any pending one (it could never be delivered there anyway),
 * elsewhere only if none was pending before. Costs nothing extra on a
 * worker unless the call fails with EPIPE. */
static ssize_t sendfile_nosig(int sock, int fd, uint64_t pos, size_t n) {
  off_t o = (off_t)pos;
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  int guard = !tr__sigpipe_blocked(), was_pending = 0;
  if (guard) {
    sigset_t pend;
    if (pthread_sigmask(SIG_BLOCK, &pipe_set, &old) != 0) guard = 0;
    else if (sigpending(&pend) == 0)
      was_pending = sigismember(&pend, SIGPIPE);
  }
  ssize_t r = sendfile(sock, fd, &o, n);
  int err = errno;
  if (r < 0 && err == EPIPE && !was_pending) {
    const struct timespec zero = {0, 0};
    /* EAGAIN: nothing pending (the signal was ignored); nothing to do */
    (void)sigtimedwait(&pipe_set, NULL, &zero);
  }
  if (guard && pthread_sigmask(SIG_SETMASK, &old, NULL) != 0) {
    /* restoring a mask read a moment ago cannot fail */
  }
  errno = err;
  return r;
}

/* Sends up to n bytes of m from pos: with sendfile from the map's
 * descriptor (from the page cache, no copy), or, when the map has none,
 * with send from the mapped bytes. Returns what send/sendfile return; 0
 * for n > 0 means the file ended early (it shrank). */
static ssize_t range_send(int sock, tr_file_map_t *m, uint64_t pos, size_t n) {
  int fd = tr__file_map_fd(m);
  if (fd >= 0) return sendfile_nosig(sock, fd, pos, n);
  return send(sock, (const uint8_t *)tr_file_map_data(m) + pos, n,
              MSG_NOSIGNAL | MSG_DONTWAIT);
}

typedef struct tcp {
  /* under the entry's mu */
  uint8_t connecting, eof, paused, shut_pending, shut_done, tell_writable;
  uint64_t cookie;
  uint64_t ctimer; /* connect timeout, 0 if none */
  wbuf_t *wq_head, *wq_tail;
  size_t queued, wmax;
  uint64_t wq_sent;  /* bytes sent from the queue so far (progress) */
  uint64_t rx_bytes, rx_stalls;
  /* the read bound, shared with the data messages (see the top) */
  _Atomic size_t rx_pending;  /* bytes in data messages not yet freed */
  _Atomic size_t rx_max;
  _Atomic int rx_stalled;     /* reading stopped at the bound */
  _Atomic unsigned refs;      /* the entry's, plus one per data message */
  pthread_mutex_t rx_mu;      /* e against the connection's release */
  tr__io_entry_t *e;          /* NULL once released */
} tcp_t;

/* A data message as the connection makes it: the public part, and the
 * connection whose bound counts its bytes (NULL in a message made by
 * anyone else). The descriptor's size is this struct's. */
typedef struct data_msg {
  tr_tcp_data_t pub;
  tcp_t *t;
  size_t counted; /* len as delivered: the handler may change len */
} data_msg_t;

static void tcp_unref(tcp_t *t) {
  if (atomic_fetch_sub(&t->refs, 1) != 1) return;
  pthread_mutex_destroy(&t->rx_mu);
  free(t);
}

/* The destructor of a data message lowered the count by n. */
static void rx_consumed(tcp_t *t, size_t n) {
  size_t left = atomic_fetch_sub(&t->rx_pending, n) - n;
  if (left > atomic_load(&t->rx_max) / 2) return;
  /* the exchange: of several destructors, one re-arms */
  if (!atomic_load(&t->rx_stalled) || !atomic_exchange(&t->rx_stalled, 0))
    return;
  pthread_mutex_lock(&t->rx_mu);
  if (t->e) tr__io_entry_poke(t->e);
  pthread_mutex_unlock(&t->rx_mu);
}

/* After a delivery (entry->mu held): 1 if the bound stops reading. */
static int rx_stall(tcp_t *t) {
  size_t max = atomic_load(&t->rx_max);
  if (atomic_load(&t->rx_pending) < max) return 0;
  atomic_store(&t->rx_stalled, 1);
  /* the owner may have consumed since, before the flag was up, and then
   * seen nobody to wake: look again */
  if (atomic_load(&t->rx_pending) <= max / 2) {
    atomic_store(&t->rx_stalled, 0);
    return 0;
  }
  t->rx_stalls++;
  return 1;
}

static void data_dtor(void *msg) {
  data_msg_t *m = msg;
  free(m->pub.data);
  m->pub.data = NULL;
  tcp_t *t = m->t;
  if (!t) return;
  m->t = NULL;
  rx_consumed(t, m->counted);
  tcp_unref(t);
}

/* By hand rather than TR_MESSAGE_DEFINE: the message is a data_msg_t. */
const tr_msgtype_t tr_tcp_data_t__type = {.name = "tr_tcp_data_t",
                                          .size = sizeof(data_msg_t),
                                          .flags = TR_MSG_SYSTEM,
                                          .dtor = data_dtor};
TR_MESSAGE_DEFINE(tr_tcp_eof_t, .flags = TR_MSG_SYSTEM);
TR_MESSAGE_DEFINE(tr_tcp_closed_t, .flags = TR_MSG_SYSTEM);
TR_MESSAGE_DEFINE(tr_tcp_writable_t, .flags = TR_MSG_SYSTEM);
TR_MESSAGE_DEFINE(tr_tcp_connected_t, .flags = TR_MSG_SYSTEM);
TR_MESSAGE_DEFINE(tr_tcp_listener_stats_t, .flags = TR_MSG_SYSTEM);

/* ---- the entry kind --------------------------------------------------------- */

static uint32_t tcp_interest(tr__io_entry_t *e) {
  tcp_t *t = e->ext;
  if (t->connecting) return TR__EV_OUT;
  uint32_t r = 0;
  if (!t->eof && !t->paused && !atomic_load(&t->rx_stalled)) r |= TR__EV_IN;
  if (t->wq_head || t->shut_pending) r |= TR__EV_OUT;
  return r;
}

static void tcp_release(tr__io_entry_t *e) {
  tcp_t *t = e->ext;
  if (!t) return;
  if (t->ctimer) (void)tr__timer_cancel(e->io, t->ctimer);
  while (t->wq_head) {
    wbuf_t *b = t->wq_head;
    t->wq_head = b->next;
    wbuf_free(b);
  }
  pthread_mutex_lock(&t->rx_mu);
  t->e = NULL; /* destructors from now on re-arm nothing */
  pthread_mutex_unlock(&t->rx_mu);
  tcp_unref(t);
  e->ext = NULL;
}

static tr_msg_t *tcp_closed(tr__io_entry_t *e, int status) {
  tr_tcp_closed_t *m = tr_msg_new(&tr_tcp_closed_t__type);
  if (!m) return NULL;
  m->conn = tr__io_entry_id(e);
  m->status = status;
  return &m->hdr;
}

static void send_connected(tr__io_t *io, tr__io_entry_t *e, int status) {
  tcp_t *t = e->ext;
  tr_tcp_connected_t *m = tr_msg_new(&tr_tcp_connected_t__type);
  if (!m) return;
  m->conn = tr__io_entry_id(e);
  m->status = status;
  m->cookie = t->cookie;
  (void)tr__io_deliver(io->rt, e->owner, &m->hdr);
}

/* Writes what is queued. 0, or a negative code when the socket failed. */
static int flush(tr__io_entry_t *e) {
  tcp_t *t = e->ext;
  while (t->wq_head) {
    wbuf_t *b = t->wq_head;
    ssize_t n;
    if (b->map) {
      n = range_send(e->fd, b->map, b->map_off + b->off, b->len - b->off);
      if (n == 0) return TR_EIO; /* the file shrank: the rest is missing */
    } else {
      /* bytes before a range (a response's head) leave with its first
       * bytes rather than in a segment of their own */
      int more = b->next && b->next->map ? MSG_MORE : 0;
      n = send(e->fd, b->data + b->off, b->len - b->off,
               MSG_NOSIGNAL | MSG_DONTWAIT | more);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return -errno;
    }
    b->off += (size_t)n;
    t->wq_sent += (uint64_t)n;
    if (!b->map) t->queued -= (size_t)n;
    if (b->off < b->len) return 0; /* the kernel buffer is full */
    t->wq_head = b->next;
    if (!t->wq_head) t->wq_tail = NULL;
    wbuf_free(b);
  }
  if (t->shut_pending) {
    t->shut_pending = 0;
    t->shut_done = 1;
    if (shutdown(e->fd, SHUT_WR) != 0 && errno != ENOTCONN) return -errno;
  }
  return 0;
}

static void after_flush(tr__io_t *io, tr__io_entry_t *e) {
  tcp_t *t = e->ext;
  if (t->tell_writable && t->queued <= t->wmax / 2) {
    t->tell_writable = 0;
    tr_tcp_writable_t *m = tr_msg_new(&tr_tcp_writable_t__type);
    if (m) {
      m->conn = tr__io_entry_id(e);
      m->queued = t->queued;
      (void)tr__io_deliver(io->rt, e->owner, &m->hdr);
    }
  }
}

static int sock_error(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -errno;
  return -err;
}

static void tcp_event(tr__io_t *io, tr__io_entry_t *e, uint32_t ev) {
  tcp_t *t = e->ext;
  if (t->connecting) {
    int err = sock_error(e->fd);
    if (!err && !(ev & TR__EV_OUT)) {
      if (!(ev & (TR__EV_ERR | TR__EV_HUP))) return; /* spurious */
      err = -ECONNREFUSED;
    }
    t->connecting = 0;
    send_connected(io, e, err);
    if (t->ctimer) {
      (void)tr__timer_cancel(io, t->ctimer);
      t->ctimer = 0;
    }
    if (err) tr__io_entry_close_locked(e, err, 0);
    return;
  }
  if ((ev & (TR__EV_IN | TR__EV_HUP | TR__EV_ERR)) && !t->eof && !t->paused &&
      !atomic_load(&t->rx_stalled)) {
    uint8_t buf[READ_CHUNK];
    int i;
    for (i = 0; i < READS_PER_EVENT; i++) {
      ssize_t n = read(e->fd, buf, sizeof(buf));
      if (n > 0) {
        data_msg_t *m = tr_msg_new(&tr_tcp_data_t__type);
        uint8_t *d = malloc((size_t)n);
        if (!m || !d) {
          /* out of memory: drop these bytes rather than the process;
           * the connection is no longer trustworthy */
          free(d);
          tr_msg_free(m);
          tr__io_entry_close_locked(e, TR_ENOMEM, 1);
          return;
        }
        memcpy(d, buf, (size_t)n);
        m->pub.conn = tr__io_entry_id(e);
        m->pub.len = (size_t)n;
        m->pub.data = d;
        /* counted before the owner can see it, so the destructor never
         * takes away what was not added */
        m->t = t;
        m->counted = (size_t)n;
        atomic_fetch_add(&t->refs, 1);
        atomic_fetch_add(&t->rx_pending, (size_t)n);
        t->rx_bytes += (size_t)n;
        (void)tr__io_deliver(io->rt, e->owner, &m->pub.hdr);
        /* at the bound: stop here; the fd is re-armed without reading
         * interest, and the owner's consumption re-arms it */
        if (rx_stall(t)) break;
        /* a short read of a stream socket took all it had: data that
         * arrives later is a new edge. Not so for a end-of-file already
         * reported: read on until it shows. */
        if ((size_t)n < sizeof(buf) &&
            !(ev & (TR__EV_RDHUP | TR__EV_HUP | TR__EV_ERR)))
          break;
        continue;
      }
      if (n == 0) {
        t->eof = 1;
        tr_tcp_eof_t *m = tr_msg_new(&tr_tcp_eof_t__type);
        if (m) {
          m->conn = tr__io_entry_id(e);
          (void)tr__io_deliver(io->rt, e->owner, &m->hdr);
        }
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      tr__io_entry_close_locked(e, -errno, 1);
      return;
    }
    /* the budget ran out before the socket was drained: have it re-armed,
     * which reports it again (an edge registration would stay silent) */
    if (i == READS_PER_EVENT) e->armed = 0;
  } else if (ev & TR__EV_ERR) {
    int err = sock_error(e->fd);
    if (err) {
      tr__io_entry_close_locked(e, err, 1);
      return;
    }
  }
  if (t->wq_head || t->shut_pending) {
    int rc = flush(e);
    if (rc) {
      tr__io_entry_close_locked(e, rc, 1);
      return;
    }
    after_flush(io, e);
  }
}

static const tr__io_kind_t tcp_kind = {
    .name = "tcp",
    .interest = tcp_interest,
    .on_event = tcp_event,
    .release = tcp_release,
    .closed_msg = tcp_closed,
    .edge = 1, /* reads until a short read, EAGAIN or the budget */
};

/* Locks conn for its owner and checks it is a TCP entry. */
static tr__io_entry_t *conn_lock(tr_ctx_t *ctx, tr_tcp_id_t conn, int *rc) {
  tr__io_entry_t *e = tr__io_entry_lock(ctx, conn, rc);
  if (e && e->kind != &tcp_kind) {
    tr__io_entry_unlock(e);
    *rc = TR_EINVAL;
    return NULL;
  }
  return e;
}

/* ---- connections -------------------------------------------------------------- */

static int set_nodelay(int fd) {
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
    return -errno;
  return 0;
}

static int attach_conn(tr_ctx_t *ctx, int fd, int connecting, size_t wmax,
                       size_t rmax, uint64_t cookie, tr_tcp_id_t *out) {
  tcp_t *t = calloc(1, sizeof(*t));
  if (!t) return TR_ENOMEM;
  int rc = pthread_mutex_init(&t->rx_mu, NULL);
  if (rc) {
    free(t);
    return -rc;
  }
  t->connecting = (uint8_t)connecting;
  t->wmax = wmax ? wmax : TR_TCP_WBUF_DEFAULT;
  atomic_init(&t->rx_max, rmax ? rmax : TR_TCP_RBUF_DEFAULT);
  atomic_init(&t->rx_pending, 0);
  atomic_init(&t->rx_stalled, 0);
  atomic_init(&t->refs, 1);
  t->cookie = cookie;
  tr__io_entry_t *e = tr__io_entry_new(ctx, fd, &tcp_kind, 0, t, &rc);
  if (!e) {
    pthread_mutex_destroy(&t->rx_mu);
    free(t);
    return rc;
  }
  t->e = e; /* before any data message can read it */
  *out = tr__io_entry_id(e);
  tr__io_entry_unlock(e);
  return 0;
}

int tr_tcp_adopt(tr_ctx_t *ctx, tr_tcp_accepted_t *acc, tr_tcp_id_t *conn) {
  if (!ctx || !acc || acc->fd < 0) return TR_EINVAL;
  tr_tcp_id_t id;
  int rc = set_nodelay(acc->fd);
  if (rc) return rc;
  rc = attach_conn(ctx, acc->fd, 0, acc->wbuf_max, acc->rbuf_max, 0, &id);
  if (rc) return rc;
  acc->fd = -1;
  if (conn) *conn = id;
  return 0;
}

static int parse_addr(const char *host, uint16_t port,
                      struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof(*ss));
  struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
  if (!host) host = "127.0.0.1";
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    *len = sizeof(*v4);
    return 0;
  }
  if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    *len = sizeof(*v6);
    return 0;
  }
  return TR_EINVAL;
}

static void connect_timeout(tr__io_t *io, uint64_t conn, uint64_t unused) {
  (void)unused;
  tr__io_entry_t *e = tr__io_entry_lock_id(io, conn);
  if (!e) return;
  tcp_t *t = e->kind == &tcp_kind ? e->ext : NULL;
  if (t && t->connecting) {
    t->ctimer = 0;
    t->connecting = 0;
    send_connected(io, e, TR_ETIMEDOUT);
    tr__io_entry_close_locked(e, TR_ETIMEDOUT, 0);
  }
  tr__io_entry_unlock(e);
}

int tr_tcp_connect(tr_ctx_t *ctx, const char *host, uint16_t port,
                   tr_duration_t timeout, uint64_t cookie, tr_tcp_id_t *conn) {
  if (!ctx || !ctx->a || TR__DURATION_BAD(timeout)) return TR_EINVAL;
  struct sockaddr_storage ss;
  socklen_t len;
  int rc = parse_addr(host, port, &ss, &len);
  if (rc) return rc;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  if ((rc = set_nodelay(fd)) != 0) goto fail;
  if (connect(fd, (struct sockaddr *)&ss, len) != 0 && errno != EINPROGRESS) {
    rc = -errno;
    goto fail;
  }
  /* even an immediate success is reported through the reactor, so the
   * caller always gets exactly one tr_tcp_connected_t */
  tr_tcp_id_t id;
  rc = attach_conn(ctx, fd, 1, 0, 0, cookie, &id);
  if (rc) goto fail;
  if (timeout != TR_FOREVER) {
    tr__io_t *io = tr__io_of_ctx(ctx);
    uint64_t tid = 0;
    rc = tr__timer_call(io, tr__io_owner(ctx), (uint64_t)timeout,
                        connect_timeout,
                        id, 0, &tid);
    tr__io_entry_t *e = tr__io_entry_lock_id(io, id);
    if (e) {
      tcp_t *t = e->ext;
      if (rc == 0 && t->connecting) t->ctimer = tid;
      else if (rc == 0) (void)tr__timer_cancel(io, tid);
      tr__io_entry_unlock(e);
    } else if (rc == 0) {
      (void)tr__timer_cancel(io, tid);
    }
    /* an unarmed timeout leaves a connect without a limit; report it */
    if (rc) {
      int rc2;
      tr__io_entry_t *c = tr__io_entry_lock(ctx, id, &rc2);
      if (c) {
        tr__io_entry_close_locked(c, rc, 0);
        tr__io_entry_unlock(c);
      }
      return rc;
    }
  }
  if (conn) *conn = id;
  return 0;
fail:
  if (close(fd) != 0 && !rc) rc = -errno;
  return rc;
}

int tr_tcp_write(tr_ctx_t *ctx, tr_tcp_id_t conn, const void *buf,
                 size_t len) {
  if (!buf && len) return TR_EINVAL;
  int rc;
  tr__io_entry_t *e = conn_lock(ctx, conn, &rc);
  if (!e) return rc;
  tcp_t *t = e->ext;
  size_t done = 0;
  if (t->shut_pending || t->shut_done) {
    rc = -EPIPE;
    goto out;
  }
  if (len > t->wmax) {
    /* could never be taken whole without passing the bound: refuse it
     * before any byte goes out, so the write stays all-or-nothing (a
     * TR_EAGAIN would promise a tr_tcp_writable_t after which it would
     * fail again) */
    rc = TR_EMSGSIZE;
    goto out;
  }
  if (!t->wq_head && !t->connecting) {
    while (done < len) {
      ssize_t n = send(e->fd, (const uint8_t *)buf + done, len - done,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n >= 0) {
        done += (size_t)n;
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      rc = -errno;
      tr__io_entry_close_locked(e, rc, 1);
      goto out;
    }
    if (done == len) {
      rc = 0;
      goto out;
    }
  }
  size_t rest = len - done;
  if (t->queued + rest > t->wmax) {
    /* the bound: refuse the whole write and tell the writer later. Never
     * after a partial send: then the queue was empty and rest < len <=
     * wmax. The queue may hold more than wmax only after tr_tcp_set_wbuf
     * lowered it. */
    t->tell_writable = 1;
    rc = TR_EAGAIN;
    goto out;
  }
  wbuf_t *b = malloc(sizeof(*b) + rest);
  if (!b) {
    rc = TR_ENOMEM;
    goto out;
  }
  memcpy(b->data, (const uint8_t *)buf + done, rest);
  b->len = rest;
  b->off = 0;
  b->map = NULL;
  b->map_off = 0;
  b->next = NULL;
  if (t->wq_tail) t->wq_tail->next = b;
  else t->wq_head = b;
  t->wq_tail = b;
  t->queued += rest;
  if (t->queued > t->wmax) t->tell_writable = 1;
  tr__io_entry_sync(e);
  rc = 0;
out:
  tr__io_entry_unlock(e);
  return rc;
}

/* Appends b to the write queue (entry's mu held). */
static void wq_append(tcp_t *t, wbuf_t *b) {
  b->next = NULL;
  if (t->wq_tail) t->wq_tail->next = b;
  else
    t->wq_head = b;
  t->wq_tail = b;
}

int tr_tcp_write_map(tr_ctx_t *ctx, tr_tcp_id_t conn, const void *head,
                     size_t head_len, tr_file_map_t *m, uint64_t off,
                     uint64_t len) {
  if ((!head && head_len) || !m) return TR_EINVAL;
  uint64_t size = tr_file_map_size(m);
  if (off > size || len > size - off) return TR_EINVAL;
  int rc;
  tr__io_entry_t *e = conn_lock(ctx, conn, &rc);
  if (!e) return rc;
  tcp_t *t = e->ext;
  size_t hdone = 0;   /* of head, sent */
  uint64_t mdone = 0; /* of the range, sent */
  if (t->shut_pending || t->shut_done) {
    rc = -EPIPE;
    goto out;
  }
  if (head_len > t->wmax) {
    rc = TR_EMSGSIZE; /* as tr_tcp_write: it could never be taken */
    goto out;
  }
  int direct = !t->wq_head && !t->connecting;
  if (!direct && t->queued + head_len > t->wmax) {
    /* the head would pass the bound: nothing taken */
    t->tell_writable = 1;
    rc = TR_EAGAIN;
    goto out;
  }
  if (direct) {
    /* the head with MSG_MORE: it leaves with the range's first bytes */
    int more = len ? MSG_MORE : 0;
    while (hdone < head_len) {
      ssize_t n = send(e->fd, (const uint8_t *)head + hdone, head_len - hdone,
                       MSG_NOSIGNAL | MSG_DONTWAIT | more);
      if (n >= 0) {
        hdone += (size_t)n;
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      rc = -errno;
      tr__io_entry_close_locked(e, rc, 1);
      goto out;
    }
    while (hdone == head_len && mdone < len) {
      ssize_t n = range_send(e->fd, m, off + mdone, (size_t)(len - mdone));
      if (n > 0) {
        mdone += (uint64_t)n;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      rc = n < 0 ? -errno : TR_EIO; /* 0: the file shrank */
      tr__io_entry_close_locked(e, rc, 1);
      goto out;
    }
    if (hdone == head_len && mdone == len) {
      rc = 0;
      goto out;
    }
  }
  /* the rest waits: the head's rest copied, the range's by reference */
  wbuf_t *bh = NULL, *bm = NULL;
  if (hdone < head_len) bh = malloc(sizeof(*bh) + head_len - hdone);
  if (mdone < len) bm = malloc(sizeof(*bm));
  if ((hdone < head_len && !bh) || (mdone < len && !bm)) {
    free(bh);
    free(bm);
    rc = TR_ENOMEM;
    /* part of it is out and the rest cannot follow: the peer would read
     * a response cut short and then the next one; end the stream */
    if (hdone || mdone) tr__io_entry_close_locked(e, rc, 1);
    goto out;
  }
  if (bh) {
    memcpy(bh->data, (const uint8_t *)head + hdone, head_len - hdone);
    bh->len = head_len - hdone;
    bh->off = 0;
    bh->map = NULL;
    bh->map_off = 0;
    wq_append(t, bh);
    t->queued += bh->len;
    if (t->queued > t->wmax) t->tell_writable = 1;
  }
  if (bm) {
    bm->len = (size_t)(len - mdone);
    bm->off = 0;
    bm->map = tr_file_map_ref(m);
    bm->map_off = off + mdone;
    wq_append(t, bm);
  }
  tr__io_entry_sync(e);
  rc = 0;
out:
  tr__io_entry_unlock(e);
  return rc;
}

int tr_tcp_shutdown(tr_ctx_t *ctx, tr_tcp_id_t conn) {
  int rc;
  tr__io_entry_t *e = conn_lock(ctx, conn, &rc);
  if (!e) return rc;
  tcp_t *t = e->ext;
  rc = 0;
  if (!t->shut_done && !t->shut_pending) {
    if (t->wq_head || t->connecting) {
      t->shut_pending = 1;
      tr__io_entry_sync(e);
    } else {
      t->shut_done = 1;
      if (shutdown(e->fd, SHUT_WR) != 0) rc = -errno;
    }
  }
  tr__io_entry_unlock(e);
  return rc;
}

int tr_tcp_close(tr_ctx_t *ctx, tr_tcp_id_t conn) {
  int rc;
  tr__io_entry_t *e = conn_lock(ctx, conn, &rc);
  if (!e) return rc;
  tr__io_entry_close_locked(e, 0, 1);
  tr__io_entry_unlock(e);
  return 0;
}

int tr_tcp_pause(tr_ctx_t *ctx, tr_tcp_id_t conn, int paused) {
  int rc;
  tr__io_entry_t *e = conn_lock(ctx, conn, &rc);
  if (!e) return rc;
  tcp_t *t = e->ext;
  t->paused = paused ? 1 : 0;
  tr__io_entry_sync(e);
  tr__io_entry_unlock(e);
  return 0;
}

int tr_tcp_set_wbuf(tr_ctx_t *ctx, tr_tcp_id_t conn, size_t max) {
  if (!max) return TR_EINVAL;
  int rc;
  tr__io_entry_t *e = conn_lock(ctx, conn, &rc);
  if (!e) return rc;
  ((tcp_t *)e->ext)->wmax = max;
  tr__io_entry_unlock(e);
  return 0;
}

int tr_tcp_set_rbuf(tr_ctx_t *ctx, tr_tcp_id_t conn, size_t max) {
  if (!max) return TR_EINVAL;
  int rc;
  tr__io_entry_t *e = conn_lock(ctx, conn, &rc);
  if (!e) return rc;
  tcp_t *t = e->ext;
  atomic_store(&t->rx_max, max);
  /* a raised bound may end a stall that no destructor will end now (the
   * count is already at or below its new half) */
  if (atomic_load(&t->rx_pending) <= max / 2 &&
      atomic_exchange(&t->rx_stalled, 0))
    tr__io_entry_sync(e);
  tr__io_entry_unlock(e);
  return 0;
}

int tr__tcp_write_pending(tr_ctx_t *ctx, tr_tcp_id_t conn, uint64_t *sent) {
  int rc;
  tr__io_entry_t *e = conn_lock(ctx, conn, &rc);
  if (!e) return 0;
  int busy = ((tcp_t *)e->ext)->wq_head != NULL;
  if (sent) *sent = ((tcp_t *)e->ext)->wq_sent;
  tr__io_entry_unlock(e);
  return busy;
}

int tr_tcp_stats(tr_ctx_t *ctx, tr_tcp_id_t conn, tr_tcp_stats_t *out) {
  if (!out) return TR_EINVAL;
  int rc;
  tr__io_entry_t *e = conn_lock(ctx, conn, &rc);
  if (!e) return rc;
  tcp_t *t = e->ext;
  out->rx_pending = atomic_load(&t->rx_pending);
  out->rx_max = atomic_load(&t->rx_max);
  out->rx_bytes = t->rx_bytes;
  out->rx_stalls = t->rx_stalls;
  out->rx_stalled = atomic_load(&t->rx_stalled);
  out->wq_queued = t->queued;
  out->wq_max = t->wmax;
  tr__io_entry_unlock(e);
  return 0;
}

/* ---- the listener actor --------------------------------------------------------- */

typedef struct listener {
  tr_io_id_t id;
  int fd;
  const tr_behavior_t *conn_b;
  void *conn_arg;
  size_t wmax, rmax;
  tr_duration_t backoff; /* the pause under way or last taken; 0: none */
  tr_timer_id_t timer;   /* the pause's timer, 0 when accepting */
  uint64_t accepted, attempts, exhausted, errors, backoffs, spawn_failed;
} listener_t;

typedef struct listen_init {
  const tr_tcp_listen_opts_t *o;
  uint16_t port;
} listen_init_t;

#define ACCEPTS_PER_EVENT 64

/* Errors of accept that concern the connection being accepted, not the
 * listener: accept(2) passes on network errors already pending on the
 * new socket, and asks that they be treated as "try again". */
static int accept_skippable(int err) {
  switch (err) {
  case EINTR:
  case ECONNABORTED:
  case EPROTO:
  case EPERM: /* a firewall rule refused this connection */
  case ENETDOWN:
  case ENETUNREACH:
  case EHOSTDOWN:
  case EHOSTUNREACH:
  case ENOPROTOOPT:
  case EOPNOTSUPP:
#ifdef ENONET
  case ENONET:
#endif
    return 1;
  default:
    return 0;
  }
}

/* Accepts what the backlog holds, up to a budget. Returns 0 when the
 * listener should wait for readiness again (drained, or the budget
 * spent: level-triggered readiness reports what is left), 1 when it must
 * back off (out of descriptors or memory, or an error that would repeat
 * at once: re-arming would report the socket readable again, at once,
 * and spin). */
static int accept_batch(tr_ctx_t *ctx, listener_t *l) {
  tr_runtime_t *rt = tr_ctx_runtime(ctx);
  for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
    tr_tcp_accepted_t acc;
    memset(&acc, 0, sizeof(acc));
    acc.peerlen = sizeof(acc.peer);
    l->attempts++;
    acc.fd = accept4(l->fd, (struct sockaddr *)&acc.peer, &acc.peerlen,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (acc.fd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return 0;
      if (accept_skippable(err)) {
        if (err != EINTR) l->errors++;
        continue;
      }
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
        l->exhausted++;
      else
        l->errors++;
      return 1;
    }
    l->accepted++;
    l->backoff = 0; /* the shortage is over: a new one starts small */
    acc.arg = l->conn_arg;
    acc.wbuf_max = l->wmax;
    acc.rbuf_max = l->rmax;
    acc.listener = tr_ctx_self(ctx);
    (void)tr_spawn(rt, l->conn_b, &acc, NULL); /* failure: closed below */
    if (acc.fd >= 0) {
      l->spawn_failed++;
      if (close(acc.fd) != 0) {
        /* the socket is gone either way */
      }
    }
  }
  return 0;
}

/* Accepts, then waits for readiness or, short of descriptors, for the
 * back-off timer. */
static int listener_accept(tr_ctx_t *ctx, listener_t *l) {
  if (!accept_batch(ctx, l)) {
    l->backoff = 0;
    return tr_io_want(ctx, l->id, TR_IO_READ);
  }
  l->backoff = l->backoff ? l->backoff * 2 : TR_TCP_ACCEPT_BACKOFF_MIN;
  if (l->backoff > TR_TCP_ACCEPT_BACKOFF_MAX)
    l->backoff = TR_TCP_ACCEPT_BACKOFF_MAX;
  l->backoffs++;
  int rc = tr_timer_start(ctx, (uint64_t)l->backoff, TR_FOREVER, 0, &l->timer);
  if (rc == 0) return 0;
  /* no timer (out of memory): spinning on readiness is better than
   * never accepting again */
  l->timer = 0;
  return tr_io_want(ctx, l->id, TR_IO_READ);
}

static int listener_ready(tr_ctx_t *ctx, void *state, void *msg) {
  listener_t *l = state;
  (void)msg;
  if (l->timer) return 0; /* stale: the back-off timer will try */
  return listener_accept(ctx, l);
}

static int listener_timer(tr_ctx_t *ctx, void *state, void *msg) {
  listener_t *l = state;
  tr_timer_fired_t *m = msg;
  if (m->id != l->timer) return 0;
  l->timer = 0;
  return listener_accept(ctx, l);
}

static int listener_stats(tr_ctx_t *ctx, void *state, void *msg) {
  listener_t *l = state;
  (void)msg;
  tr_tcp_listener_stats_t *r = tr_msg_new(&tr_tcp_listener_stats_t__type);
  if (!r) return 0; /* the asker gets TR_ENOREPLY */
  r->accepted = l->accepted;
  r->attempts = l->attempts;
  r->exhausted = l->exhausted;
  r->errors = l->errors;
  r->backoffs = l->backoffs;
  r->spawn_failed = l->spawn_failed;
  r->backoff_ms = l->timer ? l->backoff : 0;
  (void)tr_reply(ctx, r); /* consumed even if not a request or the asker
                            is gone */
  return 0;
}

static int listener_ignore(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  (void)msg;
  return 0;
}

static int listener_init(tr_ctx_t *ctx, void *state, void *arg) {
  listener_t *l = state;
  listen_init_t *li = arg;
  const tr_tcp_listen_opts_t *o = li->o;
  struct sockaddr_storage ss;
  socklen_t len;
  int rc = parse_addr(o->host, o->port, &ss, &len);
  if (rc) return rc;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      bind(fd, (struct sockaddr *)&ss, len) != 0 ||
      listen(fd, o->backlog > 0 ? o->backlog : SOMAXCONN) != 0) {
    rc = -errno;
    goto fail;
  }
  len = sizeof(ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
    rc = -errno;
    goto fail;
  }
  li->port = ntohs(ss.ss_family == AF_INET
                       ? ((struct sockaddr_in *)&ss)->sin_port
                       : ((struct sockaddr_in6 *)&ss)->sin6_port);
  l->fd = fd;
  l->conn_b = o->conn_behavior;
  l->conn_arg = o->conn_arg;
  l->wmax = o->wbuf_max;
  l->rmax = o->rbuf_max;
  rc = tr_io_register(ctx, fd, TR_IO_READ, &l->id);
  if (rc) goto fail;
  return 0;
fail:
  if (close(fd) != 0 && !rc) rc = -errno;
  return rc;
}

static const tr_handler_t listener_handlers[] = {
    {&tr_io_ready_t__type, listener_ready},
    {&tr_timer_fired_t__type, listener_timer},
    {&tr_tcp_listener_stats_t__type, listener_stats},
    {&tr_io_closed_t__type, listener_ignore},
};

static const tr_behavior_t listener_behavior = {
    .name = "tr.tcp_listener",
    .state_size = sizeof(listener_t),
    .init = listener_init,
    .handlers = TR_HANDLERS(listener_handlers),
};

int tr_tcp_listen(tr_runtime_t *rt, const tr_tcp_listen_opts_t *o,
                  tr_ref_t *listener, uint16_t *port) {
  tr_tcp_listen_opts_t ov;
  if (!rt || !o || tr__config_copy(&ov, sizeof(ov), sizeof(ov), o) ||
      !ov.conn_behavior || !ov.conn_behavior->init)
    return TR_EINVAL;
  listen_init_t li = {.o = &ov, .port = 0};
  tr_ref_t ref;
  int rc = tr_spawn(rt, &listener_behavior, &li, &ref);
  if (rc) return rc;
  if (listener) *listener = ref;
  if (port) *port = li.port;
  return 0;
}
