/* SPDX-License-Identifier: MIT */
/*
 * The io_uring backend (Linux, the default where the kernel allows it).
 * Readiness uses one-shot IORING_OP_POLL_ADD requests, so it honours the
 * same contract as epoll; file reads, writes and fsyncs are true
 * completions (submit). Submissions are batched and flushed by wait(),
 * except del(), which cancels every request on the fd and submits at once:
 * a pending poll holds a reference to the file, and closing the fd before
 * the cancel would keep a socket open behind the reactor's back.
 *
 * No edge registrations (TR__BK_EDGE): a multishot poll stays bound to
 * the thread that submitted it, whose task work then has to run for every
 * completion; since the poll token moves between workers, that means
 * interrupting or waking another worker per event (measured: slower on
 * tcp_echo with 2 workers). One-shot polls re-armed by the token holder
 * are submitted by the thread that waits next, which runs their task work
 * itself inside io_uring_enter.
 *
 * Not thread-safe (the ring has one submitter at a time): the reactor
 * queues changes and applies them from the poll-token holder. No
 * SINGLE_ISSUER or DEFER_TASKRUN setup flags, because the token moves
 * between worker threads.
 */
#include "backend.h"

#if defined(TR_HAVE_URING_BACKEND)

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <troupe/errno.h>

#define URING_ENTRIES 1024
#define UD_IGNORE UINT64_MAX       /* completions of our own cancels */
#define UD_FILEOP (1ull << 63)     /* marks a submitted file operation */

/* Per-fd record of the pending poll request. A poll's user_data is
 * (gen << 32 | fd), so a completion names its fd, and one that belongs to
 * a request replaced since (older gen) is recognised and dropped: the
 * replacement sees the same readiness when it is armed. */
typedef struct uring_fd {
  uint64_t udata;
  uint32_t gen;
  uint8_t armed;
} uring_fd_t;

typedef struct uring_state {
  struct io_uring ring;
  uring_fd_t *fds;
  int fdcap;
} uring_state_t;

static int ur_init(void **out) {
  uring_state_t *s = calloc(1, sizeof(*s));
  if (!s) return TR_ENOMEM;
  /* Completions of polls are run as task work of the thread that
   * submitted them. By default the kernel interrupts that thread to run
   * it at once (an inter-processor interrupt when it is busy on another
   * core: measured, half the echo throughput); with COOP_TASKRUN it runs
   * at the thread's next entry into the kernel (a sleeping thread is
   * still woken), and TASKRUN_FLAG tells a non-blocking wait() to enter
   * the kernel when some is pending. Older kernels refuse the flags. */
  int rc = io_uring_queue_init(
      URING_ENTRIES, &s->ring,
      IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG);
  if (rc == -EINVAL) rc = io_uring_queue_init(URING_ENTRIES, &s->ring, 0);
  if (rc < 0) {
    free(s);
    /* seccomp, io_uring_disabled, old kernels: let the reactor fall back */
    return (rc == -ENOSYS || rc == -EPERM || rc == -EACCES) ? TR_ENOSYS : rc;
  }
  struct io_uring_probe *p = io_uring_get_probe_ring(&s->ring);
  int ok = p && io_uring_opcode_supported(p, IORING_OP_POLL_ADD) &&
           io_uring_opcode_supported(p, IORING_OP_ASYNC_CANCEL) &&
           io_uring_opcode_supported(p, IORING_OP_READ) &&
           io_uring_opcode_supported(p, IORING_OP_WRITE);
  if (p) io_uring_free_probe(p);
  if (!ok) {
    io_uring_queue_exit(&s->ring);
    free(s);
    return TR_ENOSYS;
  }
  *out = s;
  return 0;
}

static void ur_fini(void *st) {
  uring_state_t *s = st;
  if (!s) return;
  io_uring_queue_exit(&s->ring);
  free(s->fds);
  free(s);
}

static uring_fd_t *fd_rec(uring_state_t *s, int fd) {
  if (fd >= s->fdcap) {
    int nc = s->fdcap ? s->fdcap : 256;
    while (nc <= fd) nc *= 2;
    uring_fd_t *a = realloc(s->fds, (size_t)nc * sizeof(*a));
    if (!a) return NULL;
    memset(a + s->fdcap, 0, (size_t)(nc - s->fdcap) * sizeof(*a));
    s->fds = a;
    s->fdcap = nc;
  }
  return &s->fds[fd];
}

static int is_armed(uring_state_t *s, int fd) {
  return fd < s->fdcap && s->fds[fd].armed;
}

/* A free submission slot, flushing the queue to the kernel if full. */
static struct io_uring_sqe *get_sqe(uring_state_t *s, int *err) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
  if (sqe) return sqe;
  int rc = io_uring_submit(&s->ring);
  if (rc < 0) {
    *err = rc;
    return NULL;
  }
  sqe = io_uring_get_sqe(&s->ring);
  if (!sqe) *err = TR_EAGAIN;
  return sqe;
}

static unsigned to_mask(uint32_t ev) {
  unsigned m = 0;
  if (ev & TR__EV_IN) m |= POLLIN | POLLRDHUP;
  if (ev & TR__EV_OUT) m |= POLLOUT;
  return m;
}

static int cancel_fd(uring_state_t *s, int fd) {
  int err = 0;
  struct io_uring_sqe *sqe = get_sqe(s, &err);
  if (!sqe) return err;
  io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
  io_uring_sqe_set_data64(sqe, UD_IGNORE);
  return 0;
}

static int arm(uring_state_t *s, int fd, uint32_t events, uint64_t udata) {
  uring_fd_t *r = fd_rec(s, fd);
  if (!r) return TR_ENOMEM;
  int err = 0;
  struct io_uring_sqe *sqe = get_sqe(s, &err);
  if (!sqe) return err;
  r->gen = (r->gen + 1) & 0x7FFFFFFFu;
  r->udata = udata;
  r->armed = 1;
  io_uring_prep_poll_add(sqe, fd, to_mask(events));
  io_uring_sqe_set_data64(sqe, ((uint64_t)r->gen << 32) | (uint32_t)fd);
  return 0;
}

static int ur_add(void *st, int fd, uint32_t events, uint64_t udata) {
  uring_state_t *s = st;
  if (fd < 0) return TR_EINVAL;
  if (!events) {
    uring_fd_t *r = fd_rec(s, fd);
    if (!r) return TR_ENOMEM;
    r->armed = 0;
    r->udata = udata;
    return 0;
  }
  return arm(s, fd, events, udata);
}

static int ur_mod(void *st, int fd, uint32_t events, uint64_t udata) {
  uring_state_t *s = st;
  if (fd < 0) return TR_EINVAL;
  if (is_armed(s, fd)) {
    int rc = cancel_fd(s, fd);
    if (rc) return rc;
    s->fds[fd].armed = 0;
  }
  if (!events) return 0;
  return arm(s, fd, events, udata);
}

static int ur_del(void *st, int fd) {
  uring_state_t *s = st;
  if (fd < 0) return TR_EINVAL;
  if (!is_armed(s, fd)) return 0;
  int rc = cancel_fd(s, fd);
  if (rc) return rc;
  s->fds[fd].armed = 0;
  s->fds[fd].gen = (s->fds[fd].gen + 1) & 0x7FFFFFFFu;
  /* the cancel of poll requests completes inside io_uring_enter, so the
   * file reference is gone when submit returns */
  rc = io_uring_submit(&s->ring);
  return rc < 0 ? rc : 0;
}

static int ur_submit(void *st, const tr__bk_fileop_t *op) {
  uring_state_t *s = st;
  int err = 0;
  struct io_uring_sqe *sqe = get_sqe(s, &err);
  if (!sqe) return err;
  switch (op->kind) {
  case TR__FOP_READ:
    io_uring_prep_read(sqe, op->fd, op->buf, (unsigned)op->len,
                       (__u64)op->off);
    break;
  case TR__FOP_WRITE:
    io_uring_prep_write(sqe, op->fd, op->buf, (unsigned)op->len,
                        (__u64)op->off);
    break;
  case TR__FOP_FSYNC:
    io_uring_prep_fsync(sqe, op->fd, 0);
    break;
  default:
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, UD_IGNORE);
    return TR_EINVAL;
  }
  io_uring_sqe_set_data64(sqe, op->udata | UD_FILEOP);
  return 0;
}

static int ur_wait(void *st, tr__bk_event_t *ev, int max, int timeout_ms) {
  uring_state_t *s = st;
  struct io_uring_cqe *cqe = NULL;
  int rc;
  if (io_uring_cq_ready(&s->ring) > 0 || timeout_ms == 0) {
    rc = io_uring_submit(&s->ring);
  } else if (timeout_ms < 0) {
    rc = io_uring_submit_and_wait(&s->ring, 1);
  } else {
    struct __kernel_timespec ts;
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000LL;
    rc = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
  }
  if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN &&
      rc != -EBUSY)
    return rc;
  unsigned head, seen = 0;
  int got = 0;
  io_uring_for_each_cqe(&s->ring, head, cqe) {
    if (got >= max) break;
    seen++;
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    if (ud == UD_IGNORE) continue;
    if (ud & UD_FILEOP) {
      ev[got].udata = ud & ~UD_FILEOP;
      ev[got].events = TR__EV_DONE;
      ev[got].res = cqe->res;
      got++;
      continue;
    }
    if (cqe->res == -ECANCELED) continue; /* removed by mod/del */
    int fd = (int)(uint32_t)ud;
    uint32_t gen = (uint32_t)(ud >> 32);
    if (fd >= s->fdcap || !s->fds[fd].armed || s->fds[fd].gen != gen)
      continue; /* a request replaced or removed since */
    s->fds[fd].armed = 0;
    uint32_t e = 0;
    if (cqe->res < 0) {
      e = TR__EV_ERR;
    } else {
      unsigned r = (unsigned)cqe->res;
      if (r & (POLLIN | POLLRDHUP)) e |= TR__EV_IN;
      if (r & POLLOUT) e |= TR__EV_OUT;
      if (r & POLLERR) e |= TR__EV_ERR;
      if (r & POLLHUP) e |= TR__EV_HUP | TR__EV_IN;
      if (r & POLLNVAL) e |= TR__EV_ERR;
    }
    ev[got].udata = s->fds[fd].udata;
    ev[got].events = e;
    ev[got].res = 0;
    got++;
  }
  io_uring_cq_advance(&s->ring, seen);
  return got;
}

const tr__backend_ops_t tr__backend_uring = {
    .name = "uring",
    .flags = 0,
    .init = ur_init,
    .fini = ur_fini,
    .add = ur_add,
    .mod = ur_mod,
    .del = ur_del,
    .wait = ur_wait,
    .submit = ur_submit,
};

#endif
