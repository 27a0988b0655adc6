/* SPDX-License-Identifier: MIT */
/*
 * The runtime and its worker threads: configuration, start, quiescence,
 * shutdown, and the scheduler (per-worker run queues per priority class, a
 * "next" slot for locality, a global injection queue, throttled stealing,
 * and parking on a futex).
 *
 * Waking a parked worker costs tens of microseconds on a virtual machine,
 * so the scheduler avoids it on the message path: an actor made runnable
 * by a send goes to the sender's "next" slot without waking anybody; only
 * work pushed where another worker could take it wakes a sleeper, and only
 * when no worker is already searching (Tokio's rule). Idle workers spin
 * for a short while before they park, offering the CPU to other threads
 * (sched_yield) after the first few microseconds.
 */
#include "internal.h"
#include "mem.h"
#include "park.h"

#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Atomic(tr_runtime_t *) tr__runtimes[TR__MAX_RUNTIMES + 1];
#ifdef TR_TSAN
_Atomic int tr__fence_word;
#endif
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
/* initial-exec: a plain %fs-relative load rather than a __tls_get_addr
 * call on every send (two pointers of the static TLS surplus glibc keeps
 * for libraries, which also covers a dlopen). */
static __thread tr__worker_t *tls_worker __attribute__((tls_model("initial-exec")));
/* The context of the actor running on this thread: a worker's running
 * actor, or an actor whose init runs inside tr_spawn. */
static __thread tr_ctx_t *tls_ctx __attribute__((tls_model("initial-exec")));

tr_ctx_t *tr__current_ctx(void) { return tls_ctx; }
tr_ctx_t *tr__set_current_ctx(tr_ctx_t *c) {
  tr_ctx_t *old = tls_ctx;
  tls_ctx = c;
  return old;
}

#define TR__NEXT_MAX_RUNS 3     /* "next" slot runs in a row */
#define TR__SPIN_YIELD_AFTER_NS 5000u /* pure spinning before yielding */
#define TR__GLOBAL_INTERVAL 61  /* check the global queue every N picks */

/* Weighted rotation over priority classes: 8 critical, 4 high, 2 normal,
 * 1 low picks out of 15; a class with no work passes its turn down. */
static const uint8_t prio_rotation[15] = {0, 1, 0, 2, 0, 1, 0, 3,
                                          0, 1, 0, 2, 0, 1, 0};

const char *tr_version(void) { return TR_VERSION_STRING; }

tr__worker_t *tr__current_worker(tr_runtime_t *rt) {
  tr__worker_t *w = tls_worker;
  return (w && w->rt == rt) ? w : NULL;
}

int tr__on_worker(void) { return tls_worker != NULL; }

/* Set on a thread that has SIGPIPE blocked for good (the workers). */
static __thread int tls_nopipe;

int tr__sigpipe_blocked(void) { return tls_nopipe; }

/* Workers run with SIGPIPE blocked: sendfile(2), unlike send(2), has no
 * MSG_NOSIGNAL, and a peer that went away must cost its connection an
 * error, not the process its life. A thread-directed SIGPIPE raised here
 * stays pending, harmlessly, while blocked (net/tcp.c takes it back). */
static void block_sigpipe(void) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGPIPE);
  /* fails only on a bad argument; the flag then stays 0 and net/tcp.c
   * guards each sendfile itself */
  if (pthread_sigmask(SIG_BLOCK, &s, NULL) == 0) tls_nopipe = 1;
}

unsigned tr_runtime_workers(const tr_runtime_t *rt) { return rt->nworkers; }

tr_ctx_t *tr__worker_ctx(tr__worker_t *w) { return w ? &w->ctx : NULL; }


/* ---- global injection queue ----------------------------------------------- */

/* Makes room for n more entries in class p. inj_mu held. Returns 0 or
 * TR_ENOMEM (then nothing changed). */
static int inj_reserve(tr_runtime_t *rt, unsigned p, size_t n) {
  size_t need = rt->inj[p].len + n, cap = rt->inj[p].cap;
  if (need <= cap) return 0;
  size_t ncap = cap ? cap : 256;
  while (ncap < need) ncap *= 2;
  tr__actor_t **nb = malloc(ncap * sizeof(*nb));
  if (!nb) return TR_ENOMEM;
  for (size_t i = 0; i < rt->inj[p].len; i++)
    nb[i] = rt->inj[p].buf[(rt->inj[p].head + i) & (cap - 1)];
  free(rt->inj[p].buf);
  rt->inj[p].buf = nb;
  rt->inj[p].cap = ncap;
  rt->inj[p].head = 0;
  return 0;
}

/* Appends n actors of class p. A runnable actor must never be lost, so
 * when memory for the ring cannot be had the caller spins and retries. */
static void global_push_many(tr_runtime_t *rt, unsigned p, tr__actor_t **v,
                             size_t n) {
  for (;;) {
    tr__spin_lock(&rt->inj_mu);
    if (inj_reserve(rt, p, n) == 0) break;
    tr__spin_unlock(&rt->inj_mu);
    sched_yield();
  }
  size_t mask = rt->inj[p].cap - 1, tail = rt->inj[p].head + rt->inj[p].len;
  for (size_t i = 0; i < n; i++) rt->inj[p].buf[(tail + i) & mask] = v[i];
  rt->inj[p].len += n;
  atomic_fetch_add_explicit(&rt->inj_len, n, memory_order_release);
  tr__spin_unlock(&rt->inj_mu);
}

static void global_push(tr_runtime_t *rt, tr__actor_t *a) {
  global_push_many(rt, a->prio, &a, 1);
}

static void local_push_class(tr__worker_t *w, tr__actor_t *a, unsigned p);

/* Takes a batch from the global queue (highest class first): returns one
 * actor and moves the rest of the batch into w's local queue, so that the
 * lock is taken once per batch rather than once per actor. */
static tr__actor_t *global_pop(tr_runtime_t *rt, tr__worker_t *w) {
  uint64_t len = atomic_load_explicit(&rt->inj_len, memory_order_acquire);
  if (len == 0) return NULL;
  size_t want = len / rt->nworkers + 1;
  if (want > 64) want = 64;
  tr__actor_t *got[64];
  size_t n = 0;
  unsigned p;
  tr__spin_lock(&rt->inj_mu);
  for (p = 0; p < TR_PRIO_COUNT; p++) {
    size_t avail = rt->inj[p].len;
    if (!avail) continue;
    n = avail < want ? avail : want;
    size_t mask = rt->inj[p].cap - 1, h = rt->inj[p].head;
    for (size_t i = 0; i < n; i++) got[i] = rt->inj[p].buf[(h + i) & mask];
    rt->inj[p].head = (h + n) & mask;
    rt->inj[p].len -= n;
    atomic_fetch_sub_explicit(&rt->inj_len, n, memory_order_relaxed);
    break;
  }
  tr__spin_unlock(&rt->inj_mu);
  if (!n) return NULL;
  /* the class is known: the (cold) actors are not touched here */
  for (size_t i = 1; i < n; i++) local_push_class(w, got[i], p);
  return got[0];
}

/* ---- idle workers: searching, parking, waking ------------------------------ */

static int work_visible(tr_runtime_t *rt) {
  if (atomic_load_explicit(&rt->inj_len, memory_order_acquire)) return 1;
  for (unsigned i = 0; i < rt->nworkers; i++)
    for (unsigned p = 0; p < TR_PRIO_COUNT; p++)
      if (tr__runq_len(&rt->workers[i].q[p])) return 1;
  return 0;
}

/* Wakes one parked worker if nobody is searching and someone sleeps. */
static void notify_parked(tr_runtime_t *rt) {
  tr__fence_seq_cst();
  if (atomic_load_explicit(&rt->nsearching, memory_order_relaxed) != 0 ||
      atomic_load_explicit(&rt->nunparked, memory_order_relaxed) >= rt->nworkers)
    return;
  pthread_mutex_lock(&rt->sleep_mu);
  tr__worker_t *w = NULL;
  if (atomic_load_explicit(&rt->nsearching, memory_order_relaxed) == 0 &&
      (w = rt->sleepers)) {
    rt->sleepers = w->sleep_next;
    w->in_sleepers = 0;
    /* the woken worker starts out searching; it reads the flag after
     * taking sleep_mu on its way out of park() */
    w->searching = 1;
    atomic_fetch_add_explicit(&rt->nsearching, 1, memory_order_seq_cst);
    atomic_fetch_add_explicit(&rt->nunparked, 1, memory_order_seq_cst);
  }
  pthread_mutex_unlock(&rt->sleep_mu);
  if (w) {
    atomic_store_explicit(&w->park_word, 1, memory_order_release);
    if (atomic_load_explicit(&rt->poller, memory_order_acquire) == w) {
      const tr__io_hooks_t *io =
          atomic_load_explicit(&rt->io_hooks, memory_order_acquire);
      io->wake(io->arg);
    } else {
      tr__futex_wake(&w->park_word, 1);
    }
  }
}

int tr__runtime_set_io_hooks(tr_runtime_t *rt, const tr__io_hooks_t *h) {
  const tr__io_hooks_t *expect = NULL;
  if (!atomic_compare_exchange_strong(&rt->io_hooks, &expect, h))
    return TR_EBUSY;
  /* parked workers re-park so that one of them becomes the poller */
  for (unsigned i = 0; i < rt->nworkers; i++)
    tr__futex_wake(&rt->workers[i].park_word, 1);
  return 0;
}

/* One turn of the I/O layer on worker w: the events it delivers may make
 * several actors runnable, but other workers are woken once, at the end,
 * not once per event. */
static void io_run(tr__worker_t *w, const tr__io_hooks_t *io) {
  if (w) w->in_io_run = 1;
  io->run(io->arg);
  if (w) {
    w->in_io_run = 0;
    if (w->io_notify) {
      w->io_notify = 0;
      notify_parked(w->rt);
    }
  }
}

/* Busy workers give the I/O layer a non-blocking turn now and then, so
 * events and timers are delivered even when nobody is idle. */
static void io_poll_nonblocking(tr_runtime_t *rt) {
  const tr__io_hooks_t *io =
      atomic_load_explicit(&rt->io_hooks, memory_order_acquire);
  if (!io || atomic_load_explicit(&rt->poll_token, memory_order_relaxed) ||
      atomic_exchange_explicit(&rt->poll_token, 1, memory_order_acquire))
    return;
  io_run(tls_worker, io);
  atomic_store_explicit(&rt->poll_token, 0, memory_order_release);
}

static int to_searching(tr__worker_t *w) {
  tr_runtime_t *rt = w->rt;
  if (w->searching) return 1;
  /* at most half of the workers search at once */
  uint32_t s = atomic_load_explicit(&rt->nsearching, memory_order_relaxed);
  if (2 * s >= rt->nworkers) return 0;
  atomic_fetch_add_explicit(&rt->nsearching, 1, memory_order_seq_cst);
  w->searching = 1;
  return 1;
}

static void from_searching(tr__worker_t *w) {
  if (!w->searching) return;
  w->searching = 0;
  /* the last searcher to find work makes sure somebody keeps looking */
  if (atomic_fetch_sub_explicit(&w->rt->nsearching, 1, memory_order_seq_cst) == 1)
    notify_parked(w->rt);
}

static inline void quiescent(tr__worker_t *w) {
  atomic_store_explicit(
      &w->qs_epoch, atomic_load_explicit(&w->rt->epoch, memory_order_acquire),
      memory_order_release);
}

/* Takes w off the sleepers by itself (unless a notifier already did) and
 * counts it awake again. */
static void leave_sleepers(tr__worker_t *w) {
  tr_runtime_t *rt = w->rt;
  pthread_mutex_lock(&rt->sleep_mu);
  if (w->in_sleepers) {
    tr__worker_t **pp = &rt->sleepers;
    while (*pp != w) pp = &(*pp)->sleep_next;
    *pp = w->sleep_next;
    w->in_sleepers = 0;
    atomic_fetch_add_explicit(&rt->nunparked, 1, memory_order_seq_cst);
    atomic_store_explicit(&w->park_word, 1, memory_order_relaxed);
  }
  pthread_mutex_unlock(&rt->sleep_mu);
}

/* Parks w until notified or the runtime stops. */
static void park(tr__worker_t *w) {
  tr_runtime_t *rt = w->rt;
  pthread_mutex_lock(&rt->sleep_mu);
  if (w->searching) {
    w->searching = 0;
    atomic_fetch_sub_explicit(&rt->nsearching, 1, memory_order_seq_cst);
  }
  atomic_store_explicit(&w->park_word, 0, memory_order_relaxed);
  w->sleep_next = rt->sleepers;
  rt->sleepers = w;
  w->in_sleepers = 1;
  if (atomic_fetch_sub_explicit(&rt->nunparked, 1, memory_order_seq_cst) == 1)
    pthread_cond_broadcast(&rt->quiet_cv);
  pthread_mutex_unlock(&rt->sleep_mu);

  atomic_store_explicit(&w->qs_epoch, UINT64_MAX, memory_order_seq_cst);
  tr__fence_seq_cst();
  /* Re-check after announcing: work pushed by someone who saw us awake. */
  if (work_visible(rt) || atomic_load(&rt->stopping)) {
    leave_sleepers(w);
  }
  TR__STAT_ADD(w->st.parks, 1);
  const tr__io_hooks_t *io =
      atomic_load_explicit(&rt->io_hooks, memory_order_acquire);
  while (atomic_load_explicit(&w->park_word, memory_order_acquire) == 0) {
    if (io && !atomic_exchange_explicit(&rt->poll_token, 1, memory_order_acquire)) {
      /* this worker drives the reactor while it sleeps */
      atomic_store_explicit(&rt->poller, w, memory_order_release);
      if (atomic_load_explicit(&w->park_word, memory_order_acquire) == 0)
        io->wait(io->arg, io->timeout(io->arg));
      atomic_store_explicit(&rt->poller, NULL, memory_order_release);
      /* leave the sleepers before delivering, so that nobody takes the
       * runtime for quiescent while the events become work here */
      leave_sleepers(w);
      atomic_store_explicit(&w->qs_epoch,
                            atomic_load_explicit(&rt->epoch, memory_order_seq_cst),
                            memory_order_seq_cst);
      /* back online before reading anything epochs protect */
      tr__fence_seq_cst();
      io_run(w, io);
      atomic_store_explicit(&rt->poll_token, 0, memory_order_release);
      break;
    }
    tr__futex_wait(&w->park_word, 0, -1);
    io = atomic_load_explicit(&rt->io_hooks, memory_order_acquire);
  }
  atomic_store_explicit(&w->qs_epoch,
                        atomic_load_explicit(&rt->epoch, memory_order_seq_cst),
                        memory_order_seq_cst);
  tr__fence_seq_cst(); /* as above */
  /* notify_parked counted us as searching; to_searching sees the flag */
  pthread_mutex_lock(&rt->sleep_mu);
  pthread_mutex_unlock(&rt->sleep_mu);
}

/* ---- scheduling ---------------------------------------------------------------- */

/* Owner push; a full queue spills half of itself plus a to the global
 * queue in one batch (Tokio's overflow rule). */
static void local_push_class(tr__worker_t *w, tr__actor_t *a, unsigned p) {
  tr__runq_t *q = &w->q[p];
  if (tr__likely(tr__runq_push(q, a) == 0)) return;
  tr__actor_t *buf[TR__RUNQ_CAP / 2 + 1];
  uint32_t n = tr__runq_steal(q, buf, TR__RUNQ_CAP / 2);
  buf[n] = a;
  global_push_many(w->rt, p, buf, n + 1);
}

static void local_push(tr__worker_t *w, tr__actor_t *a) {
  local_push_class(w, a, a->prio);
}

/* a became runnable because of a send (or spawn) by worker w, or by a
 * foreign thread when w is NULL. */
void tr__schedule(tr__worker_t *w, tr__actor_t *a) {
  if (!w) {
    global_push(a->rt, a);
    notify_parked(a->rt);
    return;
  }
  if (a->prio == TR__CLASS_LOW) {
    local_push(w, a);
  } else {
    tr__actor_t *prev = w->next;
    w->next = a;
    if (!prev) return;
    local_push(w, prev);
  }
  if (w->in_io_run) w->io_notify = 1; /* once, when the turn ends */
  else notify_parked(w->rt);
}

/* a used up its budget and still has mail: back of the line. */
void tr__reschedule(tr__worker_t *w, tr__actor_t *a) {
  local_push(w, a);
  if (w->next || tr__runq_len(&w->q[a->prio]) > 1) notify_parked(w->rt);
}

/* Starts fetching the actor that will run after the one just taken from
 * q: in a long queue each actor is cold by the time it runs. */
static inline void prefetch_next(tr__runq_t *q) {
  uint32_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
  if (h != atomic_load_explicit(&q->tail, memory_order_relaxed))
    __builtin_prefetch(
        atomic_load_explicit(&q->buf[h & TR__RUNQ_MASK], memory_order_relaxed), 1);
}

static tr__actor_t *local_pop(tr__worker_t *w) {
  unsigned first = prio_rotation[w->prio_tick++ % 15];
  tr__actor_t *a = tr__runq_pop(&w->q[first]);
  if (a) {
    prefetch_next(&w->q[first]);
    return a;
  }
  for (unsigned p = 0; p < TR_PRIO_COUNT; p++)
    if (p != first && (a = tr__runq_pop(&w->q[p]))) {
      prefetch_next(&w->q[p]);
      return a;
    }
  return NULL;
}

static tr__actor_t *next_task(tr__worker_t *w) {
  tr__actor_t *a;
  ++w->tick;
  if (tr__unlikely((w->tick & 7) == 0) &&
      atomic_load_explicit(&w->rt->io_hooks, memory_order_relaxed)) {
    /* timers and I/O are served by time too, not only every 61 picks,
     * so a long run of cheap actors does not delay them */
    uint64_t now = tr__now_ns();
    if (now - w->last_poll_ns > 1000000u) {
      io_poll_nonblocking(w->rt);
      /* counted from the end of the turn: a long turn (a backlog of
       * timers) is followed by a millisecond of actor runs, not by
       * another turn eight picks later, which starved the actors it
       * had just woken */
      w->last_poll_ns = tr__now_ns();
    }
  }
  if (w->tick % TR__GLOBAL_INTERVAL == 0) {
    io_poll_nonblocking(w->rt);
    if ((a = global_pop(w->rt, w))) {
      TR__STAT_ADD(w->st.injected, 1);
      return a;
    }
  }
  if ((a = w->next)) {
    w->next = NULL;
    if (w->next_runs < TR__NEXT_MAX_RUNS) {
      w->next_runs++;
      return a;
    }
    /* a ping-pong pair has had its turn: let the queue run */
    local_push(w, a);
  }
  w->next_runs = 0;
  if ((a = local_pop(w))) return a;
  if ((a = global_pop(w->rt, w))) {
    TR__STAT_ADD(w->st.injected, 1);
    return a;
  }
  return NULL;
}

static inline uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

/* Steals half of some other worker's queue (highest class first). */
static tr__actor_t *steal(tr__worker_t *w) {
  tr_runtime_t *rt = w->rt;
  unsigned n = rt->nworkers;
  if (n < 2) return NULL;
  unsigned start = (unsigned)(xorshift(&w->rng) % n);
  tr__actor_t *buf[TR__RUNQ_CAP / 2];
  for (unsigned p = 0; p < TR_PRIO_COUNT; p++) {
    for (unsigned k = 0; k < n; k++) {
      tr__worker_t *v = &rt->workers[(start + k) % n];
      if (v == w) continue;
      uint32_t got = tr__runq_steal(&v->q[p], buf, TR__RUNQ_CAP / 2);
      if (!got) continue;
      for (uint32_t i = 1; i < got; i++) local_push_class(w, buf[i], p);
      TR__STAT_ADD(w->st.steals, got);
      return buf[0];
    }
  }
  return NULL;
}

static tr__actor_t *search(tr__worker_t *w) {
  tr__actor_t *a;
  if ((a = global_pop(w->rt, w))) {
    TR__STAT_ADD(w->st.injected, 1);
    return a;
  }
  return steal(w);
}

static void pin_cpu(tr__worker_t *w) {
#ifdef HAVE_PTHREAD_SETAFFINITY_NP
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  if (ncpu < 1) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(w->index % (unsigned)ncpu, &set);
  /* best effort: a restricted cpuset just leaves the thread unpinned */
  (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
#else
  (void)w;
#endif
}

static void *worker_main(void *arg) {
  tr__worker_t *w = arg;
  tr_runtime_t *rt = w->rt;
  block_sigpipe();
  tls_worker = w;
  tls_ctx = &w->ctx;
  if (rt->cfg.pin_cpus) pin_cpu(w);
  uint64_t spin_ns = (uint64_t)rt->cfg.spin_us * 1000u;
  while (!atomic_load_explicit(&rt->stopping, memory_order_relaxed)) {
    tr__actor_t *a = next_task(w);
    if (a) {
      /* a worker woken as a searcher that found work without searching
       * must still stop counting as one, or nobody else is ever woken */
      if (tr__unlikely(w->searching)) from_searching(w);
      tr__run_actor(w, a);
      quiescent(w);
      continue;
    }
    /* nothing local: search, spinning a little before parking */
    uint64_t deadline = 0;
    int found = 0;
    for (unsigned i = 0;; i++) {
      if (to_searching(w) && (a = search(w))) {
        from_searching(w);
        tr__run_actor(w, a);
        quiescent(w);
        found = 1;
        break;
      }
      if (w->next || atomic_load_explicit(&rt->stopping, memory_order_relaxed))
        break;
      quiescent(w);
      if ((i & 15) == 0) {
        uint64_t now = tr__now_ns();
        if (!deadline) {
          deadline = now + spin_ns;
        } else if (now >= deadline) {
          break;
        } else if (spin_ns > TR__SPIN_YIELD_AFTER_NS &&
                   deadline - now < spin_ns - TR__SPIN_YIELD_AFTER_NS) {
          /* Past the first microseconds, let another thread that is
           * waiting for this CPU run: when the workers share the cores
           * with a busy process (a load generator, a database), spinning
           * took the CPU it needed (tcp-echo with two workers: 30% more
           * round trips); with nothing else runnable it returns at once.
           * A yielding worker may be off the CPU for a while, so it stops
           * counting as searching first: work pushed meanwhile wakes a
           * parked worker instead of waiting for this one. */
          if (w->searching) {
            w->searching = 0;
            atomic_fetch_sub_explicit(&rt->nsearching, 1, memory_order_seq_cst);
          }
          sched_yield();
        }
      }
      tr__cpu_relax();
    }
    if (found || w->next) continue;
    if (atomic_load_explicit(&rt->stopping, memory_order_relaxed)) break;
    park(w);
  }
  if (w->searching) {
    w->searching = 0;
    atomic_fetch_sub(&rt->nsearching, 1);
  }
  atomic_store_explicit(&w->qs_epoch, UINT64_MAX, memory_order_seq_cst);
  tls_worker = NULL;
  tls_ctx = NULL;
  return NULL;
}

/* ---- lifecycle ---------------------------------------------------------------- */

/* Hands out runtime keys (see "refs" in internal.h): a process-wide
 * counter that visits the indexes 1..255 in turn, so an index is reused
 * as late as possible and with a new incarnation each time. */
static uint64_t runtime_serial;

/* Whether the calling thread runs actor code: a worker of any runtime (a
 * handler), or a thread inside an actor's init (in tr_spawn). The calls
 * that wait for workers to go idle or to end refuse it: the caller's own
 * actor keeps its runtime busy, and its worker would join itself. */
static int in_actor_code(void) { return tls_worker != NULL || tls_ctx != NULL; }

/* Undoes a tr_runtime_new that failed after its locks were made; returns
 * rc. */
static int new_undo(tr_runtime_t *rt, int rc) {
  for (unsigned p = 0; p < TR_PRIO_COUNT; p++) free(rt->inj[p].buf);
  pthread_mutex_destroy(&rt->sleep_mu);
  pthread_cond_destroy(&rt->quiet_cv);
  pthread_mutex_destroy(&rt->slot_mu);
  pthread_mutex_destroy(&rt->life_mu);
  pthread_cond_destroy(&rt->life_cv);
  free(rt->workers);
  free(rt);
  return rc;
}

int tr_runtime_new(const tr_runtime_config_t *cfg, tr_runtime_t **out) {
  if (!out) return TR_EINVAL;
  tr_runtime_config_t c;
  if (cfg) {
    if (tr__config_copy(&c, sizeof(c), sizeof(c), cfg)) return TR_EINVAL;
  } else {
    tr_runtime_config_init(&c);
  }
  if (c.workers == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    c.workers = n > 0 ? (unsigned)n : 1;
  }
  if (c.budget == 0) c.budget = 100;
  if (c.spin_us == 0) c.spin_us = 50;

  tr_runtime_t *rt;
  if (posix_memalign((void **)&rt, TR__CACHELINE, sizeof(*rt))) return TR_ENOMEM;
  memset(rt, 0, sizeof(*rt));
  rt->cfg = c;
  rt->nworkers = c.workers;
  if (posix_memalign((void **)&rt->workers, TR__CACHELINE,
                     sizeof(tr__worker_t) * c.workers)) {
    free(rt);
    return TR_ENOMEM;
  }
  memset(rt->workers, 0, sizeof(tr__worker_t) * c.workers);
  for (unsigned i = 0; i < c.workers; i++) {
    tr__worker_t *w = &rt->workers[i];
    w->rt = rt;
    w->index = i;
    w->rng = 0x9E3779B97F4A7C15ull * (i + 1);
    w->ctx.rt = rt;
    w->ctx.w = w;
    atomic_init(&w->qs_epoch, UINT64_MAX);
  }
  if (tr__cond_init_monotonic(&rt->quiet_cv)) {
    free(rt->workers);
    free(rt);
    return TR_ENOMEM;
  }
  pthread_mutex_init(&rt->sleep_mu, NULL);
  pthread_mutex_init(&rt->slot_mu, NULL);
  pthread_mutex_init(&rt->life_mu, NULL);
  pthread_cond_init(&rt->life_cv, NULL);
  atomic_init(&rt->epoch, 1);
  atomic_init(&rt->nunparked, c.workers);
  /* The global queue's rings exist from the start: a first send from a
   * thread outside the workers must not depend on memory it may not get
   * (the push retries until it has room, and would spin there). */
  int inj_rc = 0;
  for (unsigned p = 0; p < TR_PRIO_COUNT && !inj_rc; p++)
    inj_rc = inj_reserve(rt, p, 1);
  if (inj_rc) return new_undo(rt, TR_ENOMEM);

  pthread_mutex_lock(&registry_mu);
  for (unsigned tries = 0; tries < TR__MAX_RUNTIMES && !rt->id; tries++) {
    uint64_t n = runtime_serial++;
    unsigned id = (unsigned)(n % TR__MAX_RUNTIMES) + 1;
    if (atomic_load(&tr__runtimes[id])) continue;
    rt->id = id;
    rt->key = (id << TR__RT_INC_BITS) |
              (unsigned)((n / TR__MAX_RUNTIMES) % TR__RT_INCS);
    atomic_store(&tr__runtimes[id], rt); /* publishes the key with it */
  }
  pthread_mutex_unlock(&registry_mu);
  if (!rt->id) return new_undo(rt, TR_ENOSPC);
  *out = rt;
  return 0;
}

/* Actors spawned and stopped so far: the workers' counts and those of
 * threads outside them; returns how many are alive. Stops are read
 * first: an actor's stop follows its spawn, so a snapshot taken while
 * actors come and go does not show more stopped than spawned (live is
 * clamped at 0 all the same). */
static uint64_t actor_counts(tr_runtime_t *rt, uint64_t *spawned,
                             uint64_t *stopped) {
  uint64_t st = atomic_load_explicit(&rt->stopped, memory_order_acquire);
  for (unsigned i = 0; i < rt->nworkers; i++)
    st += atomic_load_explicit(&rt->workers[i].st.stopped, memory_order_acquire);
  uint64_t sp = atomic_load_explicit(&rt->spawned, memory_order_acquire);
  for (unsigned i = 0; i < rt->nworkers; i++)
    sp += atomic_load_explicit(&rt->workers[i].st.spawned, memory_order_acquire);
  *spawned = sp;
  *stopped = st;
  return sp > st ? sp - st : 0;
}

/* The workers are gone (or never ran): stops what is left, counting its
 * mail, single-threaded. Returns the number of actors stopped so. */
static uint64_t stop_remaining(tr_runtime_t *rt) {
  uint64_t sp, st;
  rt->shutdown_forced = actor_counts(rt, &sp, &st);
  tr__actor_stop_all(rt);
  return rt->shutdown_forced;
}

/* Makes the first n workers leave their loops and joins them. */
static void stop_workers(tr_runtime_t *rt, unsigned n) {
  atomic_store(&rt->stopping, 1);
  const tr__io_hooks_t *io = atomic_load(&rt->io_hooks);
  for (unsigned i = 0; i < n; i++) {
    tr__worker_t *w = &rt->workers[i];
    atomic_store(&w->park_word, 1);
    tr__futex_wake(&w->park_word, 1);
  }
  if (io) io->wake(io->arg);
  for (unsigned i = 0; i < n; i++) pthread_join(rt->workers[i].thread, NULL);
}

/* Marks rt shut down with result rc and releases the callers waiting for
 * that. life_mu held. */
static void set_shut(tr_runtime_t *rt, int rc) {
  rt->shut_rc = rc;
  rt->shut = 1;
  rt->life = TR__LIFE_SHUT;
  pthread_cond_broadcast(&rt->life_cv);
}

int tr_runtime_start(tr_runtime_t *rt) {
  if (!rt) return TR_EINVAL;
  pthread_mutex_lock(&rt->life_mu);
  if (rt->life != TR__LIFE_NEW) {
    int rc = rt->life == TR__LIFE_STARTED ? TR_EBUSY : TR_ESHUTDOWN;
    pthread_mutex_unlock(&rt->life_mu);
    return rc;
  }
  atomic_store(&rt->started, 1);
  for (unsigned i = 0; i < rt->nworkers; i++) {
    tr__worker_t *w = &rt->workers[i];
    atomic_store(&w->qs_epoch, atomic_load(&rt->epoch));
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc) {
      /* The runtime is finished: stop the workers already running and,
       * once they are gone, the actors spawned before the start. */
      atomic_store(&w->qs_epoch, UINT64_MAX);
      stop_workers(rt, i);
      (void)stop_remaining(rt);
      atomic_store(&rt->started, 0); /* nothing to await */
      set_shut(rt, TR_ESHUTDOWN);
      pthread_mutex_unlock(&rt->life_mu);
      return -rc;
    }
  }
  rt->life = TR__LIFE_STARTED;
  pthread_mutex_unlock(&rt->life_mu);
  return 0;
}

static int quiet_now(tr_runtime_t *rt) {
  if (atomic_load(&rt->nunparked) != 0 || atomic_load(&rt->inj_len) != 0)
    return 0;
  const tr__io_hooks_t *io = atomic_load(&rt->io_hooks);
  return !io || !io->pending(io->arg);
}

/* Waits for quiescence until deadline_ns (UINT64_MAX: no limit).
 * 0 or TR_ETIMEDOUT. */
static int await_quiet(tr_runtime_t *rt, uint64_t deadline_ns) {
  int rc = 0;
  pthread_mutex_lock(&rt->sleep_mu);
  while (!quiet_now(rt)) {
    if (deadline_ns == UINT64_MAX) {
      pthread_cond_wait(&rt->quiet_cv, &rt->sleep_mu);
      continue;
    }
    /* a deadline on quiet_cv's clock (CLOCK_MONOTONIC), which tr__now_ns
     * also reads */
    struct timespec dl = {(time_t)(deadline_ns / 1000000000u),
                          (long)(deadline_ns % 1000000000u)};
    if (pthread_cond_timedwait(&rt->quiet_cv, &rt->sleep_mu, &dl) == ETIMEDOUT) {
      if (!quiet_now(rt)) rc = TR_ETIMEDOUT;
      break;
    }
  }
  pthread_mutex_unlock(&rt->sleep_mu);
  return rc;
}

int tr_runtime_await_quiescent(tr_runtime_t *rt, tr_duration_t timeout_ms) {
  if (!rt || TR__DURATION_BAD(timeout_ms)) return TR_EINVAL;
  if (in_actor_code()) return TR_EDEADLK;
  if (!atomic_load(&rt->started)) return TR_EINVAL;
  return await_quiet(rt, tr__deadline_ns(timeout_ms));
}

/* Sends a shutdown request to live actors: only the roots of the spawn
 * tree (spawned from outside, or whose parent is gone) when roots_only. */
static unsigned stop_actors(tr_runtime_t *rt, int roots_only) {
  unsigned n = 0;
  tr__foreign_enter(rt);
  pthread_mutex_lock(&rt->slot_mu);
  uint32_t nchunks = rt->nchunks;
  pthread_mutex_unlock(&rt->slot_mu);
  for (uint32_t c = 0; c < nchunks; c++) {
    tr__actor_t *chunk = atomic_load_explicit(&rt->chunks[c], memory_order_acquire);
    for (uint32_t i = 0; i < TR__CHUNK_SLOTS; i++) {
      tr__actor_t *a = &chunk[i];
      uint32_t g = atomic_load_explicit(&a->gen, memory_order_acquire);
      if (!(g & 1) ||
          atomic_load_explicit(&a->kind, memory_order_relaxed) != TR__KIND_ACTOR)
        continue;
      if (roots_only && a->parent && tr__lookup(a->parent)) continue;
      tr_ref_t r = {tr__ref_make(rt->key, g, a->idx)};
      if (tr_actor_stop(r, TR_EXIT_SHUTDOWN) == 0) n++;
    }
  }
  tr__foreign_exit(rt);
  return n;
}

/* The shutdown proper, on the one thread that won the right to it. */
static int shutdown_now(tr_runtime_t *rt, int was_started,
                        uint64_t deadline_ns) {
  int rc = 0;
  if (was_started) {
    /* 1: let the mail drain; 2: stop the roots top-down (supervisors stop
     * their children in order); 3: stop whatever is left. Each phase ends
     * when the runtime is quiescent again or at the deadline. */
    rc = await_quiet(rt, deadline_ns);
    if (stop_actors(rt, 1)) (void)await_quiet(rt, deadline_ns);
    if (stop_actors(rt, 0) && await_quiet(rt, deadline_ns) != 0)
      rc = TR_ETIMEDOUT;
    stop_workers(rt, rt->nworkers);
  } else {
    atomic_store(&rt->stopping, 1);
  }
  /* single-threaded from here */
  if (stop_remaining(rt)) rc = TR_ETIMEDOUT;
  return rc;
}

int tr_runtime_shutdown(tr_runtime_t *rt, tr_duration_t deadline_ms) {
  if (!rt || TR__DURATION_BAD(deadline_ms)) return TR_EINVAL;
  if (in_actor_code()) return TR_EDEADLK;
  uint64_t deadline_ns = tr__deadline_ns(deadline_ms);
  pthread_mutex_lock(&rt->life_mu);
  if (rt->life >= TR__LIFE_STOPPING) {
    /* shut down, or being shut down by another thread: that shutdown's
     * result is this call's too */
    while (rt->life != TR__LIFE_SHUT)
      pthread_cond_wait(&rt->life_cv, &rt->life_mu);
    int rc = rt->shut_rc;
    pthread_mutex_unlock(&rt->life_mu);
    return rc;
  }
  int was_started = rt->life == TR__LIFE_STARTED;
  rt->life = TR__LIFE_STOPPING;
  pthread_mutex_unlock(&rt->life_mu);

  int rc = shutdown_now(rt, was_started, deadline_ns);

  pthread_mutex_lock(&rt->life_mu);
  set_shut(rt, rc);
  pthread_mutex_unlock(&rt->life_mu);
  return rc;
}

int tr_runtime_run(tr_runtime_t *rt) {
  if (!rt) return TR_EINVAL;
  if (in_actor_code()) return TR_EDEADLK;
  int rc = tr_runtime_start(rt);
  if (rc && rc != TR_EBUSY) return rc;
  return tr_runtime_shutdown(rt, -1);
}

int tr_runtime_free(tr_runtime_t *rt) {
  if (!rt) return 0;
  if (in_actor_code()) return TR_EDEADLK;
  /* A runtime still running is shut down at once: its mail is dropped and
   * its actors are stopped by force. A shutdown in progress on another
   * thread is waited for. */
  (void)tr_runtime_shutdown(rt, 0);
  const tr__io_hooks_t *io = atomic_load(&rt->io_hooks);
  if (io && io->fini) io->fini(io->arg);
  pthread_mutex_lock(&registry_mu);
  atomic_store(&tr__runtimes[rt->id], NULL);
  pthread_mutex_unlock(&registry_mu);
  tr__slots_free(rt);
  pthread_mutex_destroy(&rt->sleep_mu);
  pthread_cond_destroy(&rt->quiet_cv);
  pthread_mutex_destroy(&rt->slot_mu);
  pthread_mutex_destroy(&rt->life_mu);
  pthread_cond_destroy(&rt->life_cv);
  for (unsigned p = 0; p < TR_PRIO_COUNT; p++) free(rt->inj[p].buf);
  free(rt->workers);
  free(rt);
  return 0;
}

int tr_runtime_stats(tr_runtime_t *rt, tr_runtime_stats_t *out) {
  if (!rt || !out) return TR_EINVAL;
  memset(out, 0, sizeof(*out));
  out->workers = rt->nworkers;
  out->actors_live =
      actor_counts(rt, &out->actors_spawned, &out->actors_stopped);
  out->dead_letters = atomic_load(&rt->dead_letters);
  out->shutdown_forced = rt->shut ? rt->shutdown_forced : 0;
  for (unsigned i = 0; i < rt->nworkers; i++)
    out->messages_handled += TR__LOAD(rt->workers[i].st.handled);
  return 0;
}

int tr_runtime_worker_stats(tr_runtime_t *rt, unsigned index,
                            tr_worker_stats_t *out) {
  if (!rt || !out) return TR_EINVAL;
  if (index >= rt->nworkers) return TR_ERANGE;
  tr__worker_t *w = &rt->workers[index];
  out->runs = TR__LOAD(w->st.runs);
  out->handled = TR__LOAD(w->st.handled);
  out->steals = TR__LOAD(w->st.steals);
  out->parks = TR__LOAD(w->st.parks);
  out->injected = TR__LOAD(w->st.injected);
  return 0;
}
