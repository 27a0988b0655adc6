/* SPDX-License-Identifier: MIT */
/*
 * Internal structures of the runtime shared by lib/ and the subsystems
 * built on it. Never installed.
 *
 * Memory safety of refs: actor slots live in chunks that are freed only
 * with the runtime. A stopped actor's slot is reused only after every
 * worker has passed a quiescent point (between two actor runs, or parked)
 * and no foreign thread is inside a send: quiescent-state-based
 * reclamation, as Erlang's "thread progress". A sender that read a live
 * generation therefore always pushes into the right actor's inbox, which
 * is either still open (the message is delivered or counted as a dead
 * letter at the actor's stop) or closed (the send fails).
 */
#ifndef TR_INTERNAL_H
#define TR_INTERNAL_H

#include "config.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <troupe.h>

#include "inbox.h"
#include "runq.h"
#include "debug.h"

#define TR__CACHELINE 64
#define TR__ALIGNED __attribute__((aligned(TR__CACHELINE)))

#define tr__likely(x) __builtin_expect(!!(x), 1)
#define tr__unlikely(x) __builtin_expect(!!(x), 0)

/* A ThreadSanitizer build made without configure's option. */
#if !defined(TR_TSAN) && defined(__SANITIZE_THREAD__)
#define TR_TSAN 1
#endif
#if !defined(TR_TSAN) && defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TR_TSAN 1
#endif
#endif

/* A full fence. ThreadSanitizer does not model fences, so its builds use
 * a sequentially consistent read-modify-write instead. On x86-64 a locked
 * instruction on the stack does it, and costs a fraction of MFENCE on
 * some cores (the send of a bounded channel pays one per value). */
#ifdef TR_TSAN
extern _Atomic int tr__fence_word;
#define tr__fence_seq_cst()                                                  \
  ((void)atomic_fetch_add_explicit(&tr__fence_word, 0, memory_order_seq_cst))
#elif defined(__x86_64__)
#define tr__fence_seq_cst()                                                  \
  __asm__ __volatile__("lock; orl $0, (%%rsp)" ::: "memory", "cc")
#else
#define tr__fence_seq_cst() atomic_thread_fence(memory_order_seq_cst)
#endif

/* A test-and-test-and-set spinlock for very short critical sections
 * (the global run queue): a contended pthread mutex would put a worker to
 * sleep in the kernel for longer than the section lasts. */
typedef struct tr__spin {
  _Atomic int locked;
} tr__spin_t;

static inline void tr__spin_lock(tr__spin_t *l) {
  for (;;) {
    if (!atomic_exchange_explicit(&l->locked, 1, memory_order_acquire)) return;
    while (atomic_load_explicit(&l->locked, memory_order_relaxed)) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
  }
}

static inline void tr__spin_unlock(tr__spin_t *l) {
  atomic_store_explicit(&l->locked, 0, memory_order_release);
}

/* Counters written by one thread and read by any: relaxed atomics, which
 * compile to plain moves but keep ThreadSanitizer informed. */
#define TR__STAT_ADD(field, n)                                               \
  atomic_store_explicit(                                                     \
      &(field), atomic_load_explicit(&(field), memory_order_relaxed) + (n),  \
      memory_order_relaxed)
#define TR__LOAD(field) atomic_load_explicit(&(field), memory_order_relaxed)
/* The same, for a count whose readers must see what came before it (the
 * actors spawned and stopped: a stop read implies its spawn is seen). */
static inline void tr__count_release(_Atomic uint64_t *c) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                        memory_order_release);
}

/* ---- refs --------------------------------------------------------------
 * A ref's 64-bit id, from the top:
 *
 *   63..56  runtime index (8 bits): its entry in tr__runtimes, 1..255
 *           (0 only in TR_REF_NULL)
 *   55..50  runtime incarnation (6 bits): which of the runtimes that held
 *           this index the ref belongs to
 *   49..26  generation (24 bits) of the slot; odd while an actor lives in it
 *   25..0   slot index (26 bits): TR__MAX_CHUNKS chunks of TR__CHUNK_SLOTS
 *
 * Index and incarnation together are the runtime's key (14 bits), taken
 * from a process-wide counter that visits the indexes round-robin and
 * never hands out a key again before it wraps: a ref of a freed runtime
 * fails the key compare in tr__lookup even when its index has been reused
 * (one compare, on a line the lookup reads anyway). The counter wraps
 * after 255 * 64 = 16320 runtimes; a ref kept that long could in theory
 * name an actor of a later runtime, as a ref kept while its slot is reused
 * 2^23 times could name a later actor of the same runtime.
 *
 * Room for distribution: 64 bits cannot also hold a node and the node's
 * incarnation. An actor of another node is meant to be reached through a
 * local proxy slot (a third kind beside actors and handles), whose ref has
 * this same layout; the proxy holds the node, its incarnation and the
 * remote ref, and stops when that incarnation of the node goes away, so a
 * stale remote ref fails with TR_ENOACTOR like any other. */
#define TR__MAX_RUNTIMES 255
#define TR__RT_INC_BITS 6
#define TR__RT_INCS (1u << TR__RT_INC_BITS)
#define TR__REF_KEY_SHIFT 50 /* index and incarnation */
#define TR__REF_GEN_SHIFT 26
#define TR__GEN_MASK 0xFFFFFFu
#define TR__IDX_MASK 0x3FFFFFFu
#define TR__CHUNK_SHIFT 12
#define TR__CHUNK_SLOTS (1u << TR__CHUNK_SHIFT)
#define TR__MAX_CHUNKS (1u << 14) /* 64 Mi actors per runtime */
_Static_assert((uint64_t)TR__MAX_CHUNKS * TR__CHUNK_SLOTS - 1 == TR__IDX_MASK,
               "the slot index field holds every slot");
#define TR__LIMBO_BATCHES 32
/* An actor whose private backlog is at least this long after a full run is
 * overloaded: actors sending to it are descheduled until it catches up
 * (Pony's rule), which keeps an unbounded mailbox from growing without
 * limit under a faster producer. */
#define TR__OVERLOAD_QLEN 4096
#define TR__MUTE_OVERLOAD UINT32_MAX
#define TR__LIMBO_BATCH_SLOTS 256

/* key: the runtime's key, (index << TR__RT_INC_BITS) | incarnation. */
static inline uint64_t tr__ref_make(uint32_t key, uint32_t gen, uint32_t idx) {
  return ((uint64_t)key << TR__REF_KEY_SHIFT) |
         ((uint64_t)(gen & TR__GEN_MASK) << TR__REF_GEN_SHIFT) |
         (idx & TR__IDX_MASK);
}
/* The runtime index: where to look the runtime up in tr__runtimes (whose
 * entry may by now hold a later runtime: compare keys). */
static inline unsigned tr__ref_rt(uint64_t id) { return (unsigned)(id >> 56); }
static inline uint32_t tr__ref_key(uint64_t id) {
  return (uint32_t)(id >> TR__REF_KEY_SHIFT);
}
static inline uint32_t tr__ref_gen(uint64_t id) {
  return (uint32_t)(id >> TR__REF_GEN_SHIFT) & TR__GEN_MASK;
}
static inline uint32_t tr__ref_idx(uint64_t id) {
  return (uint32_t)id & TR__IDX_MASK;
}

/* Scheduling classes: 0 critical, 1 high, 2 normal, 3 low (the public
 * enum makes normal the zero value). */
static inline uint8_t tr__prio_class(tr_priority_t p) {
  static const uint8_t cls[TR_PRIO_COUNT] = {2, 0, 1, 3};
  return cls[(unsigned)p];
}
static inline tr_priority_t tr__prio_public(uint8_t c) {
  static const tr_priority_t pub[TR_PRIO_COUNT] = {
      TR_PRIO_CRITICAL, TR_PRIO_HIGH, TR_PRIO_NORMAL, TR_PRIO_LOW};
  return pub[c];
}
#define TR__CLASS_LOW 3

/* request/reply tags: requests carry a nonzero tag; replies the same tag
 * with the top bit set. */
#define TR__TAG_REPLY (1ull << 63)

enum { TR__KIND_FREE = 0, TR__KIND_ACTOR = 1, TR__KIND_HANDLE = 2 };

typedef struct tr__worker tr__worker_t;
typedef struct tr__pending tr__pending_t;

/* Internal message flags (high bits of tr_msg_t.flags). */
#define TR__MSGF_COUNTED 0x80000000u /* counted in a bounded mailbox */
/* A tr_exit_t or tr_down_t the runtime made for a link or a monitor:
 * which signal it is (failure.c). Public sends clear these bits. */
#define TR__MSGF_SIG_MASK 0x0F000000u

/* Internal message type flag: the run loop hands a message of this type to
 * tr__expand_run, which turns it into several handler calls (a broadcast
 * subscription's token: one per value it reads from the channel). */
#define TR__MSG_EXPAND 0x80000000u

/* One data mailbox of an actor that declares several. */
typedef struct tr__mbox {
  tr_msg_t *head, *tail;          /* private FIFO, owner only */
  uint64_t len;                   /* its length, owner only */
  _Atomic uint64_t count;         /* bounded: counted messages in flight */
  _Atomic(struct tr__actor *) muted; /* senders waiting for room */
  _Atomic int closed;             /* the owner stopped */
} tr__mbox_t;

/* Field order matters: the first cache line holds what every send and
 * every run touches (inbox, generation, kind, priority, behaviour, state,
 * the private data queue), so that a cold actor costs one miss. */
typedef struct tr__actor {
  /* -- line 1: the send and run paths -- */
  tr__inbox_t inbox;
  _Atomic uint32_t gen;
  uint32_t idx;
  _Atomic(const tr_behavior_t *) behavior;
  _Atomic uint8_t kind;
  uint8_t prio;
  _Atomic uint8_t overloaded;      /* its backlog passed TR__OVERLOAD_QLEN */
  uint8_t running_;                /* debug builds: a worker runs it */
  uint32_t nmbox;                  /* declared mailboxes in use */
  void *state;
  tr_msg_t *data_head, *data_tail; /* private FIFOs, owner only */
  tr_msg_t *sys_head;
  /* -- line 2: owner bookkeeping -- */
  tr_msg_t *sys_tail;
  tr_runtime_t *rt;
  struct tr__actor *link;          /* free list / limbo / muted list */
  uint64_t qlen;                   /* private queue length, owner only */
  _Atomic uint64_t handled;
  _Atomic uint64_t depth;
  _Atomic uint64_t depth_hwm;
  tr__pending_t *pending;          /* outstanding asks */
  /* -- line 3: rarer features -- */
  union {
    struct tr_handle *handle;      /* kind == HANDLE */
    void *io_owned;                /* kind == ACTOR: timers/fds it owns,
                                      io/ manages */
  };
  struct tr__ext *ext;             /* links, monitors, join: lazily */
  uint64_t parent;                 /* ref id of the spawning actor, or 0 */
  tr__mbox_t *mbox;                /* declared mailboxes; kept for the
                                      slot's life (senders may still look) */
  uint32_t mbox_cap;
  uint16_t mb_cur;                 /* weighted select: current mailbox */
  uint16_t mb_credit;              /* and what it may still take */
  _Atomic(struct tr__actor *) muted; /* senders waiting for it to catch up */
  union {
    uint64_t next_tag;             /* alive: last ask tag */
    uint64_t retire_epoch;         /* stopped, retired by a foreign thread */
  };
} TR__ALIGNED tr__actor_t;

struct tr_ctx {
  tr_runtime_t *rt;
  tr__worker_t *w;     /* NULL outside the workers */
  tr__actor_t *a;
  tr_msg_t *cur;       /* message being handled */
  int cur_owned;       /* the runtime frees cur after the handler */
  tr_msg_t *borrowed;  /* a message lent to the handler without a
                          reference of its own (see tr__ctx_disown) */
  int stop_req;
  int stop_reason;
  struct tr__actor *mute_on; /* a send hit backpressure at this actor */
  unsigned mute_box;
  /* Sends of the running handler to one receiver, chained newest first and
   * pushed with one compare-and-swap when the handler ends, the receiver
   * changes, or anything else is pushed to that receiver from this worker
   * (so every sender-receiver pair stays in order). */
  struct tr__actor *batch_to;
  uint64_t batch_ref;               /* its ref, and the last type checked */
  const tr_msgtype_t *batch_type;
  tr_msg_t *batch_head, *batch_tail;
  unsigned batch_n;
  unsigned charge;     /* sends made in this run, charged to its budget */
};

struct tr__worker {
  tr__runq_t q[TR_PRIO_COUNT];
  tr_runtime_t *rt;
  tr__actor_t *next;           /* locality slot, not stealable */
  unsigned next_runs;
  unsigned index;
  unsigned tick;
  unsigned prio_tick;
  uint64_t last_poll_ns;       /* last non-blocking turn of the I/O layer */
  int in_io_run;               /* inside the I/O layer's run(): wake-ups of
                                  other workers wait for its end */
  int io_notify;               /* one is owed when it ends */
  int searching;
  uint64_t rng;
  pthread_t thread;
  struct tr_ctx ctx;
  /* slot cache: free slots ready for reuse; retired ones wait in limbo,
   * first in an open batch, then in sealed batches stamped with the epoch
   * that every other worker must reach before they can be reused */
  tr__actor_t *free;
  tr__actor_t *ob_head, *ob_tail;
  unsigned ob_count;
  struct {
    tr__actor_t *head, *tail;
    uint64_t epoch;
  } sealed[TR__LIMBO_BATCHES];
  unsigned sealed_first, sealed_count;
  TR__ALIGNED _Atomic uint64_t qs_epoch; /* UINT64_MAX when offline */
  _Atomic uint32_t park_word;
  tr__worker_t *sleep_next;
  int in_sleepers;
  TR__ALIGNED struct {
    _Atomic uint64_t runs, handled, steals, parks, injected;
    _Atomic uint64_t spawned, stopped; /* actors, on this worker */
  } st;
} TR__ALIGNED;

/* How the I/O layer (io/) plugs into idle workers without lib/ knowing it.
 * At most one worker at a time holds the poll token and calls these:
 *   wait(arg, timeout_ms): blocks until an event is ready, wake() is
 *     called, or timeout_ms passes (< 0: no limit). Delivers nothing: the
 *     calling worker is offline (not counted for reclamation) meanwhile.
 *   run(arg): non-blocking: collects ready events and due timers and
 *     delivers them as messages (tr_send from the calling worker).
 *   timeout(arg): milliseconds until the next timer is due, < 0 if none.
 *   wake(arg): makes a concurrent wait() return soon; any thread.
 *   pending(arg): nonzero while timers are armed (the runtime is then not
 *     quiescent even if every worker sleeps); any thread.
 *   actor_stop(arg, a): actor a is stopping and a->io_owned != NULL:
 *     cancel its timers, close its fds. Runs on the thread finalizing a
 *     (a's worker, or the shutdown thread), before the inbox closes. */
typedef struct tr__io_hooks {
  void *arg;
  void (*wait)(void *arg, int timeout_ms);
  void (*run)(void *arg);
  int (*timeout)(void *arg);
  void (*wake)(void *arg);
  int (*pending)(void *arg);
  void (*actor_stop)(void *arg, struct tr__actor *a);
  /* fini(arg): the runtime is being freed (after shutdown): release
   * everything. May be NULL. */
  void (*fini)(void *arg);
} tr__io_hooks_t;

enum {
  TR__LIFE_NEW = 0,  /* created, not started */
  TR__LIFE_STARTED,  /* workers running */
  TR__LIFE_STOPPING, /* a shutdown is in progress */
  TR__LIFE_SHUT      /* shut down: only tr_runtime_free is left */
};

/* Installs the hooks once per runtime. Returns 0 or TR_EBUSY. */
int tr__runtime_set_io_hooks(tr_runtime_t *rt, const tr__io_hooks_t *h);

struct tr_runtime {
  unsigned id;                 /* index in tr__runtimes */
  _Atomic(const tr__io_hooks_t *) io_hooks;
  _Atomic int poll_token;      /* 1 while a worker is inside wait/run */
  _Atomic(tr__worker_t *) poller; /* the worker blocked in wait(), if any */
  void *io;                    /* the I/O layer's per-runtime state */
  unsigned nworkers;
  tr_runtime_config_t cfg;
  tr__worker_t *workers;
  _Atomic int started;
  _Atomic int stopping;
  int shut;                    /* shutdown has finished (life == SHUT) */
  /* Life cycle: start, shutdown and free serialize on life_mu; a second
   * shutdown waits on life_cv for the first and returns its result. */
  pthread_mutex_t life_mu;
  pthread_cond_t life_cv;
  int life;                    /* TR__LIFE_* */
  int shut_rc;                 /* what the shutdown returned */

  TR__ALIGNED _Atomic uint64_t epoch;
  _Atomic int64_t foreign;     /* foreign threads inside a send */

  /* idle workers */
  TR__ALIGNED pthread_mutex_t sleep_mu;
  pthread_cond_t quiet_cv;
  tr__worker_t *sleepers;
  _Atomic uint32_t nsearching;
  _Atomic uint32_t nunparked;

  /* global injection queue, one FIFO ring of pointers per priority class
   * (a ring, not an intrusive list: taking a batch must not touch the
   * actors, which are cold by then) */
  TR__ALIGNED tr__spin_t inj_mu;
  struct {
    tr__actor_t **buf;
    size_t cap, head, len; /* cap is a power of two */
  } inj[TR_PRIO_COUNT];
  _Atomic uint64_t inj_len;

  /* slots */
  TR__ALIGNED pthread_mutex_t slot_mu;
  uint32_t key;                /* of its refs (see "refs"); read by every
                                  lookup, next to the first chunks */
  _Atomic(tr__actor_t *) chunks[TR__MAX_CHUNKS];
  uint32_t nchunks;
  uint32_t bump;               /* slots handed out of the newest chunk */
  tr__actor_t *free;
  tr__actor_t *limbo_head, *limbo_tail;

  TR__ALIGNED _Atomic uint64_t spawned, stopped, dead_letters; /* off-worker */
  _Atomic uint64_t next_monitor;
  uint64_t shutdown_forced;
};

/* runtime.c */
extern _Atomic(tr_runtime_t *) tr__runtimes[TR__MAX_RUNTIMES + 1];
/* The runtime a ref belongs to, or NULL if it has been freed (its index
 * may hold a later runtime by now). */
static inline tr_runtime_t *tr__ref_runtime(uint64_t id) {
  tr_runtime_t *rt = atomic_load_explicit(&tr__runtimes[tr__ref_rt(id)],
                                          memory_order_acquire);
  return rt && rt->key == tr__ref_key(id) ? rt : NULL;
}
tr__worker_t *tr__current_worker(tr_runtime_t *rt);
/* 1 on a thread that has SIGPIPE blocked for good (a worker's). */
int tr__sigpipe_blocked(void);
tr_ctx_t *tr__current_ctx(void);
tr_ctx_t *tr__set_current_ctx(tr_ctx_t *c);
void tr__schedule(tr__worker_t *w, tr__actor_t *a);
void tr__reschedule(tr__worker_t *w, tr__actor_t *a);
void tr__run_actor(tr__worker_t *w, tr__actor_t *a);

/* actor.c */
tr__actor_t *tr__lookup(uint64_t id);
/* Sends m to `to` from worker w (NULL: a foreign thread). check: verify
 * that the receiver accepts the type and apply its mailbox bounds; sctx
 * (may be NULL) is the sending actor's context, for backpressure. */
int tr__send_raw(tr__worker_t *w, tr_ctx_t *sctx, tr_ref_t to,
                 tr_msg_t *m, int check);
void tr__actor_stop_all(tr_runtime_t *rt);
void tr__slot_retire(tr__worker_t *w, tr__actor_t *a);
tr__actor_t *tr__slot_alloc(tr_runtime_t *rt, tr__worker_t *w);
void tr__slots_free(tr_runtime_t *rt);
void tr__drain_dead(tr_runtime_t *rt, tr_msg_t *list);
void tr__pending_free(tr__actor_t *a);
/* The ref of a's actor; once it has stopped (even generation), the ref
 * it had while alive, so exits, downs and dead letters name it. */
static inline tr_ref_t tr__self_ref(const tr__actor_t *a) {
  tr_ref_t r;
  uint32_t g = atomic_load_explicit(&a->gen, memory_order_relaxed);
  r.id = tr__ref_make(a->rt->key, (g & 1) ? g : g - 1, a->idx);
  return r;
}

/* failure.c: links, monitors, exits, join handles */
/* One relation: a link (id 0), or a monitor seen from its target or its
 * watcher. sig is the message this side sends when the relation ends
 * (exit signal, down, or demonitor), made when the relation was, so that
 * stopping never needs memory. */
typedef struct tr__mon {
  uint64_t ref; /* the other side: watcher (on the target), target (on the
                   watcher), or the linked actor */
  uint64_t id;
  tr_msg_t *sig;
} tr__mon_t;

typedef struct tr__ext {
  tr__mon_t *links;
  uint32_t nlinks, caplinks;
  tr__mon_t *mons;      /* who monitors me */
  uint32_t nmons, capmons;
  tr__mon_t *watching;  /* whom I monitor */
  uint32_t nwatch, capwatch;
  struct tr_join *join;
  tr_msg_t *result;
  int trap_exit;
} tr__ext_t;

tr__ext_t *tr__ext_get(tr__actor_t *a);
/* Handles a runtime-internal system message. Returns 1 if it stopped the
 * actor (a is finalized), 0 otherwise; m has been consumed either way. */
int tr__sys_dispatch(tr_ctx_t *ctx, tr__actor_t *a, tr_msg_t *m);
int tr__is_internal_sys(const tr_msgtype_t *t);
/* Tells links, monitors and the join handle that a stopped with reason. */
void tr__ext_on_stop(tr_ctx_t *ctx, tr__actor_t *a, int reason);
void tr__ext_free(tr__actor_t *a);
/* A message dropped because a stopped with reason: answers link and
 * monitor requests; returns 1 if it consumed m. */
int tr__drain_sys(tr__actor_t *a, tr_msg_t *m, int reason);
int tr__spawn_relations(tr__actor_t *parent, tr__actor_t *child,
                        const tr_spawn_opts_t *opts);
void tr__finalize(tr_ctx_t *ctx, tr__actor_t *a, int reason, int run_stop);
void tr__spawn_unwind(tr__actor_t *parent, tr__actor_t *child);
int tr__pending_register(tr__actor_t *a, tr_reply_fn k, void *cookie,
                         uint64_t *tag);
int tr__is_join_msg(const tr_msg_t *m);
int tr__monitor_from(tr_runtime_t *rt, uint64_t watcher, tr_ref_t target,
                     uint64_t *id);
/* Delivers a public message (tr_exit_t, tr_down_t) to a's handler table;
 * returns the handler's result. */
int tr__deliver(tr_ctx_t *ctx, tr__actor_t *a, tr_msg_t *m);
/* Calls the running actor's handler for m as the current message (owned:
 * the caller checks ctx->cur_owned afterwards and frees or keeps m) and
 * flushes the sends it batched. Returns the handler's code. */
int tr__dispatch_current(tr_ctx_t *ctx, tr_msg_t *m);
/* Runs an expanding message (TR__MSG_EXPAND): at most room handler calls,
 * counted in *used. Defined by the channel system. */
int tr__expand_run(tr_ctx_t *ctx, tr_msg_t *m, unsigned room, unsigned *used);
/* The type whose mailbox an expanding message is routed to. */
const tr_msgtype_t *tr__expand_as(const tr_msgtype_t *t);
/* A lent message (a broadcast view, a select set's envelope) is leaving
 * the handler's hands (taken, forwarded, replied with): it gets a
 * reference of its own. */
void tr__lent_escape(tr_ctx_t *ctx);

/* The running handler is about to make m visible to others (send, ask,
 * reply, timer, channel): if m is lent, it gets its own reference first,
 * since its receiver may free it at once. */
static inline void tr__ctx_publish(tr_ctx_t *ctx, tr_msg_t *m) {
  if (tr__unlikely(ctx != NULL && ctx->borrowed != NULL) &&
      ctx->borrowed == m)
    tr__lent_escape(ctx);
}

/* Copies a caller's growable config struct (first member size_t size,
 * <troupe/common.h>) into the library's own of lib_size bytes: the fields
 * the caller knows, defaults (0) for the rest. v1_size is the size that
 * size 0 stands for. Returns 0 or TR_EINVAL (a larger struct with unknown
 * fields set). */
static inline int tr__config_copy(void *dst, size_t lib_size, size_t v1_size,
                                  const void *src) {
  unsigned char *d = (unsigned char *)dst;
  const unsigned char *s = (const unsigned char *)src;
  size_t n = *(const size_t *)src;
  if (n == 0) n = v1_size;
  if (n < sizeof(size_t)) return TR_EINVAL;
  for (size_t i = lib_size; i < n; i++)
    if (s[i]) return TR_EINVAL;
  size_t k = n < lib_size ? n : lib_size;
  for (size_t i = 0; i < lib_size; i++) d[i] = i < k ? s[i] : 0;
  *(size_t *)dst = lib_size;
  return 0;
}

/* A duration argument other than TR_FOREVER, TR_NOWAIT or a positive count
 * of milliseconds (tr_duration_t, <troupe/common.h>): TR_EINVAL. */
#define TR__DURATION_BAD(d) ((d) < TR_FOREVER)

/* Frees a message whose send failed with rc (see the ownership rule in
 * actor.c) and returns rc. */
int tr__msg_drop_failed(tr_ctx_t *ctx, void *msg, int rc);

/* The handler gives up ctx->cur (takes, forwards or replies with it). */
static inline void tr__ctx_disown(tr_ctx_t *ctx) {
  ctx->cur_owned = 0;
  if (tr__unlikely(ctx->borrowed != NULL) && ctx->borrowed == ctx->cur)
    tr__lent_escape(ctx);
}

/* Quiescent-state epochs (actor.c), for memory that actors read without
 * a reference: stamp it when it is unlinked, free it once the smallest
 * epoch the workers have passed reaches the stamp. */
uint64_t tr__qsbr_stamp(tr_runtime_t *rt);
uint64_t tr__qsbr_min(tr_runtime_t *rt);

/* msg.c */
extern const tr_msgtype_t tr__stop_type;
extern const tr_msgtype_t tr__noreply_type;
typedef struct tr__stop_msg {
  tr_msg_t hdr;
  int reason;
} tr__stop_msg_t;
typedef struct tr__noreply_msg {
  tr_msg_t hdr;
  int status;
} tr__noreply_msg_t;
void tr__msg_release(tr_msg_t *m);
#ifdef TR_DEBUG
/* Aborts, in fn's name, if m was freed (lib/msg.c). */
void tr__msg_check_send(const tr_msg_t *m, const char *fn);
#define TR__MSG_CHECK_SEND(m) tr__msg_check_send((m), __func__)
#else
#define TR__MSG_CHECK_SEND(m) ((void)0)
#endif
void tr__dead_letter_dtor(void *p);

/* The ctx of the calling worker's running actor, or NULL on a foreign
 * thread (the I/O layer uses it to send from inside a hook). */
tr_ctx_t *tr__worker_ctx(tr__worker_t *w);

/* handle.c */
void tr__handle_signal(tr__actor_t *a);

/* foreign threads announce themselves around a send (see the top) */
static inline void tr__foreign_enter(tr_runtime_t *rt) {
  atomic_fetch_add_explicit(&rt->foreign, 1, memory_order_seq_cst);
}
static inline void tr__foreign_exit(tr_runtime_t *rt) {
  atomic_fetch_sub_explicit(&rt->foreign, 1, memory_order_release);
}

#endif
