/* SPDX-License-Identifier: MIT */
/*
 * The blocking pool: a bounded set of threads (tr_io_config_t
 * blocking_threads, started on demand) that run blocking functions off
 * the workers, and a bounded FIFO of jobs. A finished job's result goes
 * onto the reactor's "done" list and the poller is woken; run() sends it
 * from a worker, so results reach actors exactly like reactor events.
 * Jobs in flight count as pending work: the runtime is not quiescent
 * until their results are delivered.
 */
#include "io_internal.h"

#include <stdlib.h>

TR_MESSAGE_DEFINE(tr_blocking_done_t, .flags = TR_MSG_SYSTEM);

typedef struct job {
  struct job *next;
  void (*fn)(void *);
  void *arg;
} job_t;

struct tr__pool {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  job_t *head, *tail;
  unsigned queued, nthreads, idle, max_threads, max_queue;
  int stop;
  pthread_t *threads;
};

static void *pool_main(void *arg) {
  tr__pool_t *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->head && !p->stop) {
      p->idle++;
      pthread_cond_wait(&p->cv, &p->mu);
      p->idle--;
    }
    job_t *j = p->head;
    if (!j) break; /* stopping and drained */
    p->head = j->next;
    if (!p->head) p->tail = NULL;
    p->queued--;
    pthread_mutex_unlock(&p->mu);
    j->fn(j->arg);
    free(j);
    pthread_mutex_lock(&p->mu);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static tr__pool_t *pool_get(tr__io_t *io) {
  tr__pool_t *p = __atomic_load_n(&io->pool, __ATOMIC_ACQUIRE);
  if (p) return p;
  pthread_mutex_lock(&io->pool_init_mu);
  p = io->pool;
  if (!p && (p = calloc(1, sizeof(*p)))) {
    p->max_threads = io->pool_threads;
    p->max_queue = io->pool_queue;
    p->threads = calloc(p->max_threads, sizeof(pthread_t));
    if (!p->threads || pthread_mutex_init(&p->mu, NULL) != 0) {
      free(p->threads);
      free(p);
      p = NULL;
    } else if (pthread_cond_init(&p->cv, NULL) != 0) {
      pthread_mutex_destroy(&p->mu);
      free(p->threads);
      free(p);
      p = NULL;
    } else {
      __atomic_store_n(&io->pool, p, __ATOMIC_RELEASE);
    }
  }
  pthread_mutex_unlock(&io->pool_init_mu);
  return p;
}

int tr__pool_submit(tr__io_t *io, void (*fn)(void *), void *arg) {
  tr__pool_t *p = pool_get(io);
  if (!p) return TR_ENOMEM;
  job_t *j = malloc(sizeof(*j));
  if (!j) return TR_ENOMEM;
  j->next = NULL;
  j->fn = fn;
  j->arg = arg;
  pthread_mutex_lock(&p->mu);
  if (p->stop) {
    pthread_mutex_unlock(&p->mu);
    free(j);
    return TR_ESHUTDOWN;
  }
  if (p->queued >= p->max_queue) {
    pthread_mutex_unlock(&p->mu);
    free(j);
    return TR_EAGAIN;
  }
  if (p->tail) p->tail->next = j;
  else p->head = j;
  p->tail = j;
  p->queued++;
  int rc = 0;
  if (p->idle == 0 && p->nthreads < p->max_threads) {
    int e = pthread_create(&p->threads[p->nthreads], NULL, pool_main, p);
    if (e == 0) p->nthreads++;
    else if (p->nthreads == 0) rc = -e; /* nobody would ever run it */
  } else {
    pthread_cond_signal(&p->cv);
  }
  if (rc) {
    /* unqueue: it is the tail, and no thread exists to have taken it */
    p->head = p->tail = NULL;
    p->queued = 0;
    free(j);
  }
  pthread_mutex_unlock(&p->mu);
  return rc;
}

void tr__pool_fini(tr__io_t *io) {
  tr__pool_t *p = io->pool;
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  /* running and queued jobs finish: their results are dropped later */
  for (unsigned i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p->threads);
  free(p);
  io->pool = NULL;
}

int tr__pool_submit_op(tr__io_t *io, void (*fn)(void *), void *arg) {
  tr__io_pending_add(io, 1);
  int rc = tr__pool_submit(io, fn, arg);
  if (rc) tr__io_pending_add(io, -1);
  return rc;
}

void tr__io_done_push(tr__io_t *io, uint64_t to, tr_msg_t *m) {
  tr__done_t *d = malloc(sizeof(*d));
  pthread_mutex_lock(&io->done_mu);
  if (d) {
    d->next = NULL;
    d->to = to;
    d->msg = m;
    if (io->done_tail) io->done_tail->next = d;
    else io->done_head = d;
    io->done_tail = d;
  }
  atomic_store_explicit(&io->has_done, 1, memory_order_release);
  pthread_mutex_unlock(&io->done_mu);
  if (!d) {
    /* out of memory: deliver from here rather than lose it */
    (void)tr__io_deliver(io->rt, to, m);
    tr__io_pending_add(io, -1);
  }
  tr__io_wake(io);
}

void tr__io_done_drain(tr__io_t *io) {
  if (!atomic_load_explicit(&io->has_done, memory_order_acquire)) return;
  pthread_mutex_lock(&io->done_mu);
  tr__done_t *d = io->done_head;
  io->done_head = io->done_tail = NULL;
  atomic_store_explicit(&io->has_done, 0, memory_order_relaxed);
  pthread_mutex_unlock(&io->done_mu);
  while (d) {
    tr__done_t *nx = d->next;
    (void)tr__io_deliver(io->rt, d->to, d->msg); /* owner may be gone */
    tr__io_pending_add(io, -1);
    free(d);
    d = nx;
  }
}

/* ---- user jobs ------------------------------------------------------------- */

typedef struct ujob {
  tr__io_t *io;
  tr_blocking_fn fn;
  uint64_t to;
  tr_blocking_done_t *msg;
} ujob_t;

static void ujob_run(void *arg) {
  ujob_t *u = arg;
  u->msg->result = u->fn(u->msg->arg);
  tr__io_done_push(u->io, u->to, &u->msg->hdr);
  free(u);
}

static _Atomic uint64_t job_seq;

int tr_blocking_run(tr_ctx_t *ctx, tr_blocking_fn fn, void *arg,
                    uint64_t cookie, uint64_t *job) {
  if (!ctx || !ctx->a || !fn) return TR_EINVAL;
  tr__io_t *io = tr__io_of_ctx(ctx);
  if (!io) return TR_ENOSYS;
  ujob_t *u = malloc(sizeof(*u));
  tr_blocking_done_t *m = tr_msg_new(&tr_blocking_done_t__type);
  if (!u || !m) {
    free(u);
    tr_msg_free(m);
    return TR_ENOMEM;
  }
  u->io = io;
  u->fn = fn;
  u->to = tr__self_ref(ctx->a).id;
  u->msg = m;
  m->job = atomic_fetch_add(&job_seq, 1) + 1;
  m->arg = arg;
  m->cookie = cookie;
  uint64_t id = m->job;
  int rc = tr__pool_submit_op(io, ujob_run, u);
  if (rc) {
    tr_msg_free(m);
    free(u);
    return rc;
  }
  if (job) *job = id;
  return 0;
}
