/* SPDX-License-Identifier: MIT */
/*
 * The reactor: attaches the I/O layer to a runtime, chooses the backend,
 * keeps the registry of fds owned by actors, and implements the hooks by
 * which idle workers drive it (lib/internal.h, tr__io_hooks_t): wait()
 * blocks in the backend with the worker offline; run() turns what the
 * backend reported, the due timers and the results of the blocking pool
 * into messages, sent from the calling worker.
 *
 * Ordering of a close: an event is sent while its entry's mutex is held
 * and only while the entry is open; a close marks the entry closing under
 * the same mutex and sends its acknowledgement only after the fd is
 * closed. Both pushes go to the same MPSC mailbox, so every event sent
 * for an fd is queued before its acknowledgement, and none after.
 *
 * Backends without TR__BK_MT_CTL (io_uring, poll) are touched only by the
 * poll-token holder; other threads queue their change (re-arm, close) and
 * wake it. The wake-up is an eventfd registered like any fd.
 */
#include "io_internal.h"
#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* Valgrind's client requests, when the header is there at build time;
 * it is optional: the environment check below works without it. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TR__HAVE_VALGRIND_H 1
#endif
#endif

TR_MESSAGE_DEFINE(tr_io_ready_t, .flags = TR_MSG_SYSTEM);
TR_MESSAGE_DEFINE(tr_io_closed_t, .flags = TR_MSG_SYSTEM);

static pthread_mutex_t attach_mu = PTHREAD_MUTEX_INITIALIZER;
/* The reactor whose hooks this thread is inside (it holds the token). */
static __thread tr__io_t *tls_holder;

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static tr__io_t *io_load(tr_runtime_t *rt) {
  return __atomic_load_n((tr__io_t **)&rt->io, __ATOMIC_ACQUIRE);
}

uint64_t tr__io_now(tr__io_t *io) {
  return (mono_ns() - io->start_ns) / 1000000ull;
}

void tr__io_pending_add(tr__io_t *io, int64_t n) {
  atomic_fetch_add_explicit(&io->npending, n, memory_order_seq_cst);
}

void tr__io_wake(tr__io_t *io) {
  if (atomic_exchange_explicit(&io->wake_pending, 1, memory_order_acq_rel))
    return;
  uint64_t one = 1;
  ssize_t n = write(io->wake_fd, &one, sizeof(one));
  /* EAGAIN: the counter is saturated, so the fd is readable anyway. Any
   * other failure would leave wake-ups suppressed: undo the flag. */
  if (n != (ssize_t)sizeof(one) && errno != EAGAIN)
    atomic_store_explicit(&io->wake_pending, 0, memory_order_release);
}

int tr__io_deliver(tr_runtime_t *rt, uint64_t to, tr_msg_t *m) {
  tr_ref_t r = {to};
  tr__io_t *io = tls_holder;
  if (io && io->rt == rt) io->delivered = 1;
  int rc = tr__send_raw(tr__current_worker(rt), NULL, r, m, 0);
  if (rc) tr__msg_release(m);
  return rc;
}

/* ---- registry ------------------------------------------------------------ */

static tr__io_entry_t *entry_at(tr__io_t *io, uint32_t idx) {
  uint32_t c = idx / TR__CHUNK;
  if (c >= TR__MAX_CHUNKS_IO) return NULL;
  tr__io_entry_t *chunk =
      atomic_load_explicit(&io->echunks[c], memory_order_acquire);
  return chunk ? &chunk[idx % TR__CHUNK] : NULL;
}

/* reg_mu held. */
static tr__io_entry_t *entry_alloc(tr__io_t *io) {
  if (!io->efree) {
    if (io->nechunks >= TR__MAX_CHUNKS_IO) return NULL;
    tr__io_entry_t *c = calloc(TR__CHUNK, sizeof(*c));
    if (!c) return NULL;
    uint32_t base = io->nechunks * TR__CHUNK;
    for (uint32_t i = TR__CHUNK; i-- > 0;) {
      if (pthread_mutex_init(&c[i].mu, NULL) != 0) {
        for (uint32_t j = i + 1; j < TR__CHUNK; j++)
          pthread_mutex_destroy(&c[j].mu);
        free(c);
        io->efree = NULL;
        return NULL;
      }
      c[i].io = io;
      c[i].idx = base + i;
      c[i].gen = 1;
      c[i].fd = -1;
      c[i].free_next = io->efree;
      io->efree = &c[i];
    }
    atomic_store_explicit(&io->echunks[io->nechunks], c, memory_order_release);
    io->nechunks++;
  }
  tr__io_entry_t *e = io->efree;
  io->efree = e->free_next;
  e->free_next = NULL;
  return e;
}

/* e->mu held; e is CLOSING and done with. */
static void entry_free(tr__io_t *io, tr__io_entry_t *e) {
  e->gen = (e->gen + 1) & 0x7FFFFFFFu;
  if (!e->gen) e->gen = 1;
  e->state = TR__ENT_FREE;
  e->in_bk = 0;
  e->armed = e->want = 0;
  e->fd = -1;
  e->ext = NULL;
  e->kind = NULL;
  e->owner = 0;
  pthread_mutex_lock(&io->reg_mu);
  e->free_next = io->efree;
  io->efree = e;
  pthread_mutex_unlock(&io->reg_mu);
}

static void owner_unlink(tr__io_t *io, tr__io_entry_t *e) {
  pthread_mutex_lock(&io->reg_mu);
  tr__io_owner_t *own = e->own;
  if (own) {
    if (e->own_prev) e->own_prev->own_next = e->own_next;
    else own->entries = e->own_next;
    if (e->own_next) e->own_next->own_prev = e->own_prev;
    own->nentries--;
    e->own = NULL;
    e->own_prev = e->own_next = NULL;
  }
  pthread_mutex_unlock(&io->reg_mu);
}

/* Queues e for the poll-token holder and wakes it. The queue and
 * e->queued are under reg_mu: callers hold e->mu, except
 * tr__io_entry_poke. */
static void queue_change(tr__io_t *io, tr__io_entry_t *e) {
  pthread_mutex_lock(&io->reg_mu);
  if (!e->queued) {
    e->queued = 1;
    e->chg_next = NULL;
    if (io->chg_tail) io->chg_tail->chg_next = e;
    else io->chg_head = e;
    io->chg_tail = e;
    io->nchg++;
  }
  pthread_mutex_unlock(&io->reg_mu);
  tr__io_wake(io);
}

static int direct(tr__io_t *io) { return io->mt_ctl || tls_holder == io; }

/* Whether a close may complete (and be acknowledged) on this thread: not
 * inside hook_wait, where the worker counts as parked and must deliver
 * nothing. */
static int can_finish(tr__io_t *io) {
  return tls_holder == io ? !io->wait_ctx : io->mt_ctl;
}

/* Closes the fd and acknowledges (e->mu held, e CLOSING, backend
 * reachable from this thread). */
static void finish_close(tr__io_t *io, tr__io_entry_t *e) {
  int status = e->close_status;
  if (e->in_bk) {
    int rc = io->bk->del(io->bks, e->fd);
    /* EBADF: the fd was closed behind the reactor's back (a disarmed fd
     * may be out of the backend's set: epoll's del takes ENOENT as done) */
    if (rc && !status) status = rc;
    e->in_bk = 0;
  }
  if (close(e->fd) != 0 && errno != EINTR && !status) status = -errno;
  if (e->notify_close && e->kind && e->kind->closed_msg) {
    tr_msg_t *m = e->kind->closed_msg(e, status);
    if (m) (void)tr__io_deliver(io->rt, e->owner, m); /* owner may be gone */
  }
  if (e->kind && e->kind->release) e->kind->release(e);
  entry_free(io, e);
}

void tr__io_entry_close_locked(tr__io_entry_t *e, int status, int notify) {
  tr__io_t *io = e->io;
  if (e->state != TR__ENT_OPEN) return;
  e->state = TR__ENT_CLOSING;
  e->close_status = status;
  e->notify_close = (uint8_t)notify;
  owner_unlink(io, e);
  if (can_finish(io)) {
    finish_close(io, e);
  } else {
    tr__io_pending_add(io, 1); /* the acknowledgement is still to come */
    queue_change(io, e);
  }
}

static uint32_t interest_of(tr__io_entry_t *e) {
  return (e->kind && e->kind->interest) ? e->kind->interest(e) : e->want;
}

/* What to hand the backend for interest want: edge-triggered and
 * persistent when both the kind and the backend allow it. */
static uint32_t bk_events(tr__io_t *io, tr__io_entry_t *e, uint32_t want) {
  return (want && io->edge && e->kind && e->kind->edge) ? want | TR__EV_EDGE
                                                       : want;
}

/* Applies the wanted interest to the backend (e->mu held, direct). */
static void apply(tr__io_t *io, tr__io_entry_t *e) {
  uint32_t want = interest_of(e);
  if (e->in_bk && want == e->armed) return;
  int rc;
  uint32_t bev = bk_events(io, e, want);
  if (!e->in_bk) {
    rc = io->bk->add(io->bks, e->fd, bev, tr__io_entry_id(e));
    if (rc == 0) e->in_bk = 1;
  } else {
    rc = io->bk->mod(io->bks, e->fd, bev, tr__io_entry_id(e));
  }
  if (rc == 0) e->armed = want;
  else tr__io_entry_close_locked(e, rc, 1);
}

void tr__io_entry_sync(tr__io_entry_t *e) {
  tr__io_t *io = e->io;
  if (e->state != TR__ENT_OPEN) return;
  if (e->in_bk && interest_of(e) == e->armed) return;
  if (direct(io)) apply(io, e);
  else queue_change(io, e);
}

void tr__io_entry_poke(tr__io_entry_t *e) { queue_change(e->io, e); }

/* Token holder: applies the changes queued so far and submits file ops.
 * Closes complete here too, except inside hook_wait, where they go back
 * on the queue for run(); returns 1 if any did. */
static int apply_changes(tr__io_t *io) {
  int deferred = 0;
  pthread_mutex_lock(&io->reg_mu);
  uint32_t n = io->nchg;
  pthread_mutex_unlock(&io->reg_mu);
  for (; n > 0; n--) {
    pthread_mutex_lock(&io->reg_mu);
    tr__io_entry_t *e = io->chg_head;
    if (e) {
      io->chg_head = e->chg_next;
      if (!io->chg_head) io->chg_tail = NULL;
      e->chg_next = NULL;
      e->queued = 0;
      io->nchg--;
    }
    pthread_mutex_unlock(&io->reg_mu);
    if (!e) break;
    pthread_mutex_lock(&e->mu);
    if (e->state == TR__ENT_CLOSING) {
      if (io->wait_ctx) {
        queue_change(io, e);
        deferred = 1;
      } else {
        finish_close(io, e);
        tr__io_pending_add(io, -1);
      }
    } else if (e->state == TR__ENT_OPEN) {
      apply(io, e);
    }
    pthread_mutex_unlock(&e->mu);
  }
  if (io->bk->submit) tr__fops_submit(io);
  return deferred;
}

tr__io_entry_t *tr__io_entry_new(tr_ctx_t *ctx, int fd,
                                 const tr__io_kind_t *kind, uint32_t want,
                                 void *ext, int *rc) {
  if (!ctx || !ctx->a || fd < 0) {
    *rc = TR_EINVAL;
    return NULL;
  }
  tr__io_t *io = tr__io_of_ctx(ctx);
  if (!io) {
    *rc = TR_ENOSYS;
    return NULL;
  }
  if (fcntl(fd, F_GETFD) < 0) {
    *rc = -errno;
    return NULL;
  }
  tr__io_owner_t *own = tr__io_owner(ctx);
  if (!own) {
    *rc = TR_ENOMEM;
    return NULL;
  }
  pthread_mutex_lock(&io->reg_mu);
  tr__io_entry_t *e = entry_alloc(io);
  pthread_mutex_unlock(&io->reg_mu);
  if (!e) {
    *rc = TR_ENOMEM;
    return NULL;
  }
  pthread_mutex_lock(&e->mu);
  e->state = TR__ENT_OPEN;
  e->fd = fd;
  e->kind = kind;
  e->ext = ext;
  e->want = want;
  e->armed = 0;
  e->in_bk = 0;
  e->close_status = 0;
  e->notify_close = 0;
  e->owner = tr__self_ref(ctx->a).id;
  if (direct(io)) {
    int r = io->bk->add(io->bks, fd, bk_events(io, e, interest_of(e)),
                        tr__io_entry_id(e));
    if (r) {
      entry_free(io, e);
      pthread_mutex_unlock(&e->mu);
      *rc = r;
      return NULL;
    }
    e->in_bk = 1;
    e->armed = interest_of(e);
  } else {
    queue_change(io, e);
  }
  pthread_mutex_lock(&io->reg_mu);
  e->own = own;
  e->own_prev = NULL;
  e->own_next = own->entries;
  if (own->entries) own->entries->own_prev = e;
  own->entries = e;
  own->nentries++;
  pthread_mutex_unlock(&io->reg_mu);
  *rc = 0;
  return e;
}

tr__io_entry_t *tr__io_entry_lock_id(tr__io_t *io, uint64_t id) {
  tr__io_entry_t *e = entry_at(io, (uint32_t)id);
  if (!e) return NULL;
  pthread_mutex_lock(&e->mu);
  if (e->gen != (uint32_t)(id >> 32) || e->state != TR__ENT_OPEN) {
    pthread_mutex_unlock(&e->mu);
    return NULL;
  }
  return e;
}

tr__io_entry_t *tr__io_entry_lock(tr_ctx_t *ctx, uint64_t id, int *rc) {
  if (!ctx || !ctx->a) {
    *rc = TR_EINVAL;
    return NULL;
  }
  tr__io_t *io = io_load(ctx->rt);
  tr__io_entry_t *e = io ? tr__io_entry_lock_id(io, id) : NULL;
  if (!e) {
    *rc = TR_ENOENT;
    return NULL;
  }
  if (e->owner != tr__self_ref(ctx->a).id) {
    pthread_mutex_unlock(&e->mu);
    *rc = TR_EPERM;
    return NULL;
  }
  *rc = 0;
  return e;
}

void tr__io_entry_unlock(tr__io_entry_t *e) { pthread_mutex_unlock(&e->mu); }

/* ---- raw fds and the wake-up fd ------------------------------------------------ */

static void raw_event(tr__io_t *io, tr__io_entry_t *e, uint32_t events) {
  tr_io_ready_t *m = tr_msg_new(&tr_io_ready_t__type);
  if (!m) return; /* keep it quiet: the owner re-arms on its next want */
  m->id = tr__io_entry_id(e);
  m->fd = e->fd;
  m->events = events & (TR_IO_READ | TR_IO_WRITE | TR_IO_ERROR | TR_IO_HUP);
  e->want = 0; /* one-shot for the owner too */
  (void)tr__io_deliver(io->rt, e->owner, &m->hdr);
}

static tr_msg_t *raw_closed(tr__io_entry_t *e, int status) {
  tr_io_closed_t *m = tr_msg_new(&tr_io_closed_t__type);
  if (!m) return NULL;
  m->id = tr__io_entry_id(e);
  m->fd = e->fd;
  m->status = status;
  return &m->hdr;
}

static const tr__io_kind_t raw_kind = {
    .name = "fd", .on_event = raw_event, .closed_msg = raw_closed};

static uint32_t wake_interest(tr__io_entry_t *e) {
  (void)e;
  return TR__EV_IN;
}

static void wake_event(tr__io_t *io, tr__io_entry_t *e, uint32_t events) {
  (void)events;
  uint64_t v;
  ssize_t n = read(e->fd, &v, sizeof(v));
  if (n < 0 && errno != EAGAIN && errno != EINTR) {
    /* an eventfd read cannot fail otherwise; nothing to recover */
  }
  atomic_store_explicit(&io->wake_pending, 0, memory_order_release);
}

/* edge: one read empties the eventfd's counter */
static const tr__io_kind_t wake_kind = {.name = "wake",
                                        .interest = wake_interest,
                                        .on_event = wake_event,
                                        .edge = 1};

/* ---- the hooks -------------------------------------------------------------------- */

static void dispatch(tr__io_t *io, const tr__bk_event_t *ev) {
  if (ev->events & TR__EV_DONE) {
    tr__fop_complete(io, ev->udata, ev->res);
    return;
  }
  tr__io_entry_t *e = tr__io_entry_lock_id(io, ev->udata);
  if (!e) return; /* closed since: dropped, as promised */
  /* one-shot reports disarm; an edge registration stays armed */
  if (!(ev->events & TR__EV_ARMED)) e->armed = 0;
  if (e->kind && e->kind->on_event) e->kind->on_event(io, e, ev->events);
  else raw_event(io, e, ev->events);
  if (e->state == TR__ENT_OPEN) tr__io_entry_sync(e);
  pthread_mutex_unlock(&e->mu);
}

/* Quiescence and the poller. lib/ counts the poll-token holder as parked
 * while it is inside wait() and run(), and the messages run() sends go to
 * its own run queue; so if a pending count fell to zero inside run(), the
 * runtime could look quiescent while those messages wait. Therefore run()
 * holds one unit of npending (the grace) from its start, keeps it if it
 * delivered anything, and the next wait() releases it and does not block,
 * so that the worker goes round once more and parks with the grace gone
 * (its parking is what wakes tr_runtime_await_quiescent). */
static void hook_wait(void *arg, int timeout_ms) {
  tr__io_t *io = arg;
  tls_holder = io;
  io->wait_ctx = 1;
  if (io->grace) {
    io->grace = 0;
    tr__io_pending_add(io, -1);
    timeout_ms = 0;
  }
  if (apply_changes(io)) timeout_ms = 0;
  if (io->nev == 0) {
    if (atomic_load_explicit(&io->has_done, memory_order_acquire))
      timeout_ms = 0;
    uint64_t until = timeout_ms < 0 ? UINT64_MAX
                                    : tr__io_now(io) + (uint64_t)timeout_ms;
    atomic_store_explicit(&io->wait_until, until, memory_order_seq_cst);
    atomic_store_explicit(&io->in_wait, 1, memory_order_seq_cst);
    /* The timeout was computed before in_wait was set: a timer armed in
     * between saw in_wait 0 and woke nobody, so look at the deadlines
     * again now (arm() publishes, then reads in_wait, all seq_cst). */
    int t = tr__timers_timeout(io);
    if (t >= 0 && (timeout_ms < 0 || t < timeout_ms)) timeout_ms = t;
    int n = io->bk->wait(io->bks, io->ev, 256, timeout_ms);
    atomic_store_explicit(&io->in_wait, 0, memory_order_seq_cst);
    atomic_store_explicit(&io->wait_until, UINT64_MAX, memory_order_relaxed);
    io->nev = n > 0 ? n : 0;
  }
  io->wait_ctx = 0;
  tls_holder = NULL;
}

static void hook_run(void *arg) {
  tr__io_t *io = arg;
  tls_holder = io;
  if (!io->grace) {
    io->grace = 1;
    tr__io_pending_add(io, 1);
  }
  io->delivered = 0;
  if (io->nev == 0) {
    int n = io->bk->wait(io->bks, io->ev, 256, 0);
    io->nev = n > 0 ? n : 0;
  }
  int n = io->nev;
  io->nev = 0;
  for (int i = 0; i < n; i++) dispatch(io, &io->ev[i]);
  tr__timers_fire(io);
  tr__io_done_drain(io);
  (void)apply_changes(io);
  if (!io->delivered) {
    io->grace = 0;
    tr__io_pending_add(io, -1);
  }
  tls_holder = NULL;
}

static int hook_timeout(void *arg) {
  tr__io_t *io = arg;
  if (atomic_load_explicit(&io->has_done, memory_order_acquire)) return 0;
  return tr__timers_timeout(io);
}

static void hook_wake(void *arg) { tr__io_wake(arg); }

static void hook_fini(void *arg);

static int hook_pending(void *arg) {
  tr__io_t *io = arg;
  return atomic_load_explicit(&io->npending, memory_order_seq_cst) > 0 ||
         tr__timers_armed(io) > 0;
}

static void hook_actor_stop(void *arg, tr__actor_t *a) {
  tr__io_t *io = arg;
  tr__io_owner_t *own = a->io_owned;
  if (!own) return;
  /* Snapshot the fds: once detached, an entry may be closed and reused
   * by another thread, so the list links cannot be walked unlocked. */
  uint64_t *ids = NULL;
  size_t n = 0;
  pthread_mutex_lock(&io->reg_mu);
  if (own->nentries) ids = malloc(own->nentries * sizeof(*ids));
  for (tr__io_entry_t *e = own->entries, *nx; e; e = nx) {
    nx = e->own_next;
    if (ids) ids[n++] = tr__io_entry_id(e);
    e->own = NULL;
    e->own_prev = e->own_next = NULL;
  }
  own->entries = NULL;
  own->nentries = 0;
  pthread_mutex_unlock(&io->reg_mu);
  for (size_t i = 0; i < n; i++) {
    tr__io_entry_t *e = tr__io_entry_lock_id(io, ids[i]);
    if (!e) continue;
    tr__io_entry_close_locked(e, 0, 0);
    pthread_mutex_unlock(&e->mu);
  }
  free(ids);
  tr__timers_owner_stop(io, own);
  tr__asks_owner_stop(own);
  free(own);
  a->io_owned = NULL;
}

tr__io_owner_t *tr__io_owner(tr_ctx_t *ctx) {
  tr__actor_t *a = ctx->a;
  if (!a->io_owned) {
    tr__io_t *io = tr__io_of_ctx(ctx);
    if (!io) return NULL;
    a->io_owned = calloc(1, sizeof(tr__io_owner_t) +
                                io->ntshards * sizeof(tr__timer_t *));
  }
  return a->io_owned;
}

/* ---- attach / fini ---------------------------------------------------------------- */


static const tr__backend_ops_t *backend_by_kind(tr_io_backend_t k) {
  switch (k) {
#if defined(TR_HAVE_URING_BACKEND)
  case TR_IO_BACKEND_URING: return &tr__backend_uring;
#endif
#if defined(TR_HAVE_EPOLL_BACKEND)
  case TR_IO_BACKEND_EPOLL: return &tr__backend_epoll;
#endif
  case TR_IO_BACKEND_POLL: return &tr__backend_poll;
  default: return NULL;
  }
}

/* Whether the process runs under valgrind. Valgrind does not model the
 * io_uring rings the kernel shares with the process: the worker waiting
 * on the ring never sees its completions and the program hangs. The
 * client request answers when the header was available; otherwise
 * valgrind's preloaded core (vgpreload_*.so in LD_PRELOAD) gives it away. */
static int under_valgrind(void) {
#ifdef TR__HAVE_VALGRIND_H
  if (RUNNING_ON_VALGRIND) return 1;
#endif
  const char *p = getenv("LD_PRELOAD");
  return p && strstr(p, "vgpreload_") != NULL;
}

/* Chooses and initialises the backend. A backend asked for (in the
 * config or in TROUPE_IO_BACKEND) is used or fails; otherwise (auto, or
 * the --with-io-backend default) io_uring is skipped under valgrind. */
static int pick_backend(tr__io_t *io, tr_io_backend_t want) {
  int forced = want != TR_IO_BACKEND_AUTO;
  if (want == TR_IO_BACKEND_AUTO) {
    const char *env = getenv("TROUPE_IO_BACKEND");
    if (env && *env && strcmp(env, "auto") != 0) forced = 1;
#ifdef TR_IO_BACKEND_DEFAULT
    if (!env || !*env) env = TR_IO_BACKEND_DEFAULT; /* --with-io-backend */
#endif
    if (env && *env && strcmp(env, "auto") != 0) {
      if (!strcmp(env, "uring")) want = TR_IO_BACKEND_URING;
      else if (!strcmp(env, "epoll")) want = TR_IO_BACKEND_EPOLL;
      else if (!strcmp(env, "kqueue")) want = TR_IO_BACKEND_KQUEUE;
      else if (!strcmp(env, "poll")) want = TR_IO_BACKEND_POLL;
      else return TR_EINVAL;
    }
  }
  int no_uring = !forced && under_valgrind();
  if (no_uring && want == TR_IO_BACKEND_URING) want = TR_IO_BACKEND_AUTO;
  if (want != TR_IO_BACKEND_AUTO) {
    const tr__backend_ops_t *b = backend_by_kind(want);
    if (!b) return TR_ENOSYS;
    int rc = b->init(&io->bks);
    if (rc) return rc;
    io->bk = b;
    return 0;
  }
  static const tr_io_backend_t order[] = {
      TR_IO_BACKEND_URING, TR_IO_BACKEND_EPOLL, TR_IO_BACKEND_POLL};
  int rc = TR_ENOSYS;
  for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
    if (no_uring && order[i] == TR_IO_BACKEND_URING) continue;
    const tr__backend_ops_t *b = backend_by_kind(order[i]);
    if (!b) continue;
    if ((rc = b->init(&io->bks)) == 0) {
      io->bk = b;
      return 0;
    }
  }
  return rc;
}

static void io_free_mem(tr__io_t *io) {
  for (uint32_t c = 0; c < io->nechunks; c++) {
    tr__io_entry_t *ch = atomic_load(&io->echunks[c]);
    for (uint32_t i = 0; i < TR__CHUNK; i++) pthread_mutex_destroy(&ch[i].mu);
    free(ch);
  }
  tr__timers_free(io);
  pthread_mutex_destroy(&io->reg_mu);
  pthread_mutex_destroy(&io->done_mu);
  pthread_mutex_destroy(&io->pool_init_mu);
  free(io);
}

int tr_io_attach(tr_runtime_t *rt, const tr_io_config_t *ucfg) {
  if (!rt) return TR_EINVAL;
  tr_io_config_t cfgv, *cfg = NULL;
  if (ucfg) {
    if (tr__config_copy(&cfgv, sizeof(cfgv), sizeof(cfgv), ucfg))
      return TR_EINVAL;
    cfg = &cfgv;
  }
  pthread_mutex_lock(&attach_mu);
  if (io_load(rt)) {
    pthread_mutex_unlock(&attach_mu);
    return TR_EBUSY;
  }
  tr__io_t *io = calloc(1, sizeof(*io));
  if (!io) {
    pthread_mutex_unlock(&attach_mu);
    return TR_ENOMEM;
  }
  io->rt = rt;
  io->start_ns = mono_ns();
  io->wake_fd = -1;
  io->pool_threads = cfg && cfg->blocking_threads ? cfg->blocking_threads : 4;
  io->pool_queue = cfg && cfg->blocking_queue ? cfg->blocking_queue : 65536;
  atomic_init(&io->wait_until, UINT64_MAX);
  pthread_mutex_init(&io->reg_mu, NULL);
  pthread_mutex_init(&io->done_mu, NULL);
  pthread_mutex_init(&io->pool_init_mu, NULL);
  int rc = tr__timers_init(io);
  if (rc) goto fail;
  rc = pick_backend(io, cfg ? cfg->backend : TR_IO_BACKEND_AUTO);
  if (rc) goto fail;
  io->mt_ctl = (io->bk->flags & TR__BK_MT_CTL) != 0;
  io->edge = (io->bk->flags & TR__BK_EDGE) != 0;
  io->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (io->wake_fd < 0) {
    rc = -errno;
    goto fail_bk;
  }
  /* The wake-up entry belongs to no actor. No poller runs yet, so the
   * backend may be called from here whatever its flags. */
  pthread_mutex_lock(&io->reg_mu);
  tr__io_entry_t *e = entry_alloc(io);
  pthread_mutex_unlock(&io->reg_mu);
  if (!e) {
    rc = TR_ENOMEM;
    goto fail_fd;
  }
  e->state = TR__ENT_OPEN;
  e->fd = io->wake_fd;
  e->kind = &wake_kind;
  rc = io->bk->add(io->bks, e->fd, bk_events(io, e, TR__EV_IN),
                   tr__io_entry_id(e));
  if (rc) goto fail_fd;
  e->in_bk = 1;
  e->armed = TR__EV_IN;
  io->wake_e = e;
  io->hooks.arg = io;
  io->hooks.wait = hook_wait;
  io->hooks.run = hook_run;
  io->hooks.timeout = hook_timeout;
  io->hooks.wake = hook_wake;
  io->hooks.pending = hook_pending;
  io->hooks.fini = hook_fini;
  io->hooks.actor_stop = hook_actor_stop;
  __atomic_store_n((tr__io_t **)&rt->io, io, __ATOMIC_RELEASE);
  rc = tr__runtime_set_io_hooks(rt, &io->hooks);
  if (rc) {
    __atomic_store_n((tr__io_t **)&rt->io, NULL, __ATOMIC_RELEASE);
    goto fail_fd;
  }
  pthread_mutex_unlock(&attach_mu);
  return 0;
fail_fd:
  if (close(io->wake_fd) != 0) {
    /* nothing more to undo */
  }
fail_bk:
  io->bk->fini(io->bks);
fail:
  tr__timers_fini(io);
  io_free_mem(io);
  pthread_mutex_unlock(&attach_mu);
  return rc;
}

tr__io_t *tr__io_get(tr_runtime_t *rt) {
  tr__io_t *io = io_load(rt);
  if (io) return io;
  int rc = tr_io_attach(rt, NULL);
  if (rc && rc != TR_EBUSY) return NULL;
  return io_load(rt);
}

tr__io_t *tr__io_of_ctx(tr_ctx_t *ctx) { return tr__io_get(ctx->rt); }

const char *tr_io_backend_name(tr_runtime_t *rt) {
  tr__io_t *io = rt ? tr__io_get(rt) : NULL;
  return io ? io->bk->name : NULL;
}

uint64_t tr_io_now_ms(tr_runtime_t *rt) {
  tr__io_t *io = tr__io_get(rt);
  return io ? tr__io_now(io) : 0;
}

/* tr_runtime_free calls this when the user did not call tr_io_fini. */
static void hook_fini(void *arg) {
  tr__io_t *io = arg;
  (void)tr_io_fini(io->rt);
}

int tr_io_fini(tr_runtime_t *rt) {
  if (!rt) return TR_EINVAL;
  tr__io_t *io = io_load(rt);
  if (!io) return 0;
  if (!rt->shut) return TR_EBUSY;
  tls_holder = io;
  apply_changes(io);
  /* fds still open belong to actors that are gone */
  for (uint32_t c = 0; c < io->nechunks; c++) {
    tr__io_entry_t *ch = atomic_load(&io->echunks[c]);
    for (uint32_t i = 0; i < TR__CHUNK; i++) {
      tr__io_entry_t *e = &ch[i];
      pthread_mutex_lock(&e->mu);
      if (e->state == TR__ENT_OPEN && e != io->wake_e) {
        owner_unlink(io, e);
        e->state = TR__ENT_CLOSING;
        e->notify_close = 0;
        finish_close(io, e);
      }
      pthread_mutex_unlock(&e->mu);
    }
  }
  tr__pool_fini(io);
  tr__io_done_drain(io); /* the owners are gone: frees the results */
  tr__fops_fini(io);
  tr__timers_fini(io);
  tls_holder = NULL;
  if (io->wake_e && io->wake_e->in_bk) {
    int rc = io->bk->del(io->bks, io->wake_fd);
    (void)rc; /* the backend goes away next */
  }
  io->bk->fini(io->bks);
  int rc = 0;
  if (close(io->wake_fd) != 0) rc = -errno;
  __atomic_store_n((tr__io_t **)&rt->io, NULL, __ATOMIC_RELEASE);
  /* the hooks live in io: the runtime must not call them any more */
  atomic_store(&rt->io_hooks, NULL);
  io_free_mem(io);
  return rc == -EINTR ? 0 : rc;
}

/* ---- the public fd API ---------------------------------------------------------- */

int tr_io_register(tr_ctx_t *ctx, int fd, uint32_t events, tr_io_id_t *id) {
  if (events & ~(uint32_t)(TR_IO_READ | TR_IO_WRITE)) return TR_EINVAL;
  int rc;
  tr__io_entry_t *e = tr__io_entry_new(ctx, fd, &raw_kind, events, NULL, &rc);
  if (!e) return rc;
  if (id) *id = tr__io_entry_id(e);
  pthread_mutex_unlock(&e->mu);
  return 0;
}

int tr_io_want(tr_ctx_t *ctx, tr_io_id_t id, uint32_t events) {
  if (events & ~(uint32_t)(TR_IO_READ | TR_IO_WRITE)) return TR_EINVAL;
  int rc;
  tr__io_entry_t *e = tr__io_entry_lock(ctx, id, &rc);
  if (!e) return rc;
  if (e->kind != &raw_kind) {
    pthread_mutex_unlock(&e->mu);
    return TR_EINVAL;
  }
  e->want = events;
  tr__io_entry_sync(e);
  pthread_mutex_unlock(&e->mu);
  return 0;
}

int tr_io_close(tr_ctx_t *ctx, tr_io_id_t id) {
  int rc;
  tr__io_entry_t *e = tr__io_entry_lock(ctx, id, &rc);
  if (!e) return rc;
  tr__io_entry_close_locked(e, 0, 1);
  pthread_mutex_unlock(&e->mu);
  return 0;
}
