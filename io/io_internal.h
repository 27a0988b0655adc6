/* SPDX-License-Identifier: MIT */
/*
 * State shared by the files of io/ and net/: the per-runtime reactor, its
 * registry of file descriptors ("entries"), the per-actor record of what an
 * actor owns, and the timer slab. Never installed.
 *
 * Locks, in the only order they may nest:
 *   entry->mu  ->  io->reg_mu | a timer shard's mu | io->done_mu | io->pool_mu
 * (net/tcp.c's per-connection rx_mu nests between entry->mu and reg_mu.)
 * These locks are leaves: nothing is locked while one is held, and
 * no message is sent under them. Messages about an fd are sent while its
 * entry->mu is held, which is what orders them before the close
 * acknowledgement.
 */
#ifndef TR_IO_INTERNAL_H
#define TR_IO_INTERNAL_H

#include "internal.h"

#include <pthread.h>

#include <troupe/io.h>

#include "backend.h"
#include "wheel.h"

typedef struct tr__io tr__io_t;
typedef struct tr__io_entry tr__io_entry_t;
typedef struct tr__timer tr__timer_t;
typedef struct tr__ask_rec tr__ask_rec_t;

/* What one actor owns (a->io_owned): its fds, its timers, its pending
 * asks with a timeout. entries: under io->reg_mu; timers: one list per
 * timer shard, timers[s] under shard s's mu; asks: the owner's thread
 * only. */
typedef struct tr__io_owner {
  tr__io_entry_t *entries;
  size_t nentries;
  tr__ask_rec_t *asks;
  tr__timer_t *timers[]; /* io->ntshards lists */
} tr__io_owner_t;

/* Kinds of entries: how the reactor treats readiness of the fd. */
typedef struct tr__io_kind {
  const char *name;
  /* Interest the fd should be armed with now (entry->mu held). */
  uint32_t (*interest)(tr__io_entry_t *e);
  /* Readiness reported (entry->mu held, token holder, e OPEN). May send
   * messages and may close e (tr__io_entry_close_locked). */
  void (*on_event)(tr__io_t *io, tr__io_entry_t *e, uint32_t events);
  /* Frees the kind's state; the fd is already closed (entry->mu held). */
  void (*release)(tr__io_entry_t *e);
  /* The message that acknowledges a close (NULL: no message). */
  tr_msg_t *(*closed_msg)(tr__io_entry_t *e, int status);
  /* Nonzero: on_event consumes all the readiness it is told about (reads
   * until a short read or EAGAIN), so on a backend with TR__BK_EDGE the fd
   * stays armed between events (no re-arm per event). An on_event that
   * stops early sets e->armed = 0 to have the fd re-armed and re-checked. */
  int edge;
} tr__io_kind_t;

enum { TR__ENT_FREE = 0, TR__ENT_OPEN = 1, TR__ENT_CLOSING = 2 };

struct tr__io_entry {
  pthread_mutex_t mu;
  tr__io_t *io;
  uint32_t idx;
  uint32_t gen;          /* bumped when the entry is freed */
  uint8_t state;         /* TR__ENT_* */
  uint8_t in_bk;         /* registered with the backend */
  uint8_t queued;        /* on the change queue */
  uint8_t notify_close;  /* send the close acknowledgement */
  int close_status;
  int fd;
  uint32_t want;         /* interest asked for (raw entries) */
  uint32_t armed;        /* interest the backend has armed */
  uint64_t owner;        /* ref id of the owning actor */
  tr__io_owner_t *own;   /* its record, NULL once detached */
  tr__io_entry_t *own_prev, *own_next;
  tr__io_entry_t *chg_next, *free_next;
  const tr__io_kind_t *kind;
  void *ext;             /* the kind's state (net/ connection) */
};

/* Timers: nodes in per-shard slabs; id = gen << 32 | shard << 24 | idx,
 * gen >= 1. */
enum { TR__TMR_TICK = 1, TR__TMR_SEND = 2, TR__TMR_CALL = 3 };

typedef void (*tr__timer_cb)(tr__io_t *io, uint64_t a, uint64_t b);

struct tr__timer {
  tr__wnode_t wn;
  uint32_t idx, gen;
  uint8_t kind, active;
  uint64_t target;       /* ref id the message goes to */
  tr_msg_t *msg;         /* TR__TMR_SEND */
  uint64_t cookie;
  uint64_t interval, seq;
  tr__timer_cb cb;       /* TR__TMR_CALL: run by the firing thread */
  uint64_t cb_a, cb_b;
  tr__io_owner_t *own;
  tr__timer_t *own_prev, *own_next;
  tr__timer_t *free_next;
};

#define TR__CHUNK 1024u
#define TR__MAX_CHUNKS_IO 4096u
#define TR__TSHARD_BITS 24          /* timer index bits below the shard */
#define TR__TSHARD_MAX 255u         /* shards: one per worker + outsiders */

/* A timer shard: a wheel, its slab and its lock. Worker i arms into shard
 * i, threads outside the workers into the last one, so arming and
 * cancelling from a worker takes a lock nobody else wants except the
 * poller, and only when the shard has something due. */
typedef struct tr__tshard {
  pthread_mutex_t mu;
  tr__wheel_t wheel;
  tr__timer_t **chunks;
  uint32_t nchunks, cap;
  tr__timer_t *free;
  uint32_t index;
  /* the shard's earliest expiration (tr__wheel_next), read unlocked by
   * the poller; UINT64_MAX: empty */
  _Atomic uint64_t next;
  /* timers armed here: the runtime is not quiescent while any is */
  _Atomic int64_t armed;
} __attribute__((aligned(64))) tr__tshard_t;

/* Work finished outside the workers (blocking pool), delivered by run(). */
typedef struct tr__done {
  struct tr__done *next;
  uint64_t to;           /* ref id */
  tr_msg_t *msg;
} tr__done_t;

/* A file operation travelling through io_uring. */
typedef struct tr__fop {
  struct tr__fop *next;
  tr__io_t *io;
  tr__bk_fileop_t op;
  uint64_t to;
  tr_msg_t *msg;         /* the tr_file_done_t to fill and deliver */
} tr__fop_t;

typedef struct tr__pool tr__pool_t;

struct tr__io {
  tr_runtime_t *rt;
  tr__io_hooks_t hooks;
  const tr__backend_ops_t *bk;
  void *bks;
  int mt_ctl;
  int edge;       /* the backend supports TR__EV_EDGE */
  uint64_t start_ns;

  /* wake-up */
  int wake_fd;
  tr__io_entry_t *wake_e;
  _Atomic int wake_pending;
  _Atomic int in_wait;
  _Atomic uint64_t wait_until; /* wheel ms the blocked wait ends, or max */

  /* events collected by wait() for run() (token holder only) */
  tr__bk_event_t ev[256];
  int nev;
  int wait_ctx;   /* inside hook_wait: deliver nothing */
  int grace;      /* holds one unit of npending, see hook_run */
  int delivered;  /* run() sent something */

  /* registry */
  pthread_mutex_t reg_mu;
  _Atomic(tr__io_entry_t *) echunks[TR__MAX_CHUNKS_IO];
  uint32_t nechunks;
  tr__io_entry_t *efree;
  tr__io_entry_t *chg_head, *chg_tail; /* change queue (non-MT backends) */
  uint32_t nchg;
  tr__fop_t *fop_head, *fop_tail;      /* file ops to submit */
  int64_t fops_inflight;               /* in the ring (token holder) */

  /* timers: ntshards shards, one per worker and one for other threads */
  tr__tshard_t *tshards;
  unsigned ntshards;

  /* results from other threads */
  pthread_mutex_t done_mu;
  tr__done_t *done_head, *done_tail;
  _Atomic int has_done;

  /* armed timers + operations in flight: the runtime is not quiescent */
  _Atomic int64_t npending;

  tr__pool_t *pool;
  pthread_mutex_t pool_init_mu;
  unsigned pool_threads, pool_queue;
};

/* reactor.c */
tr__io_t *tr__io_get(tr_runtime_t *rt);          /* attaches on demand */
tr__io_t *tr__io_of_ctx(tr_ctx_t *ctx);
tr__io_owner_t *tr__io_owner(tr_ctx_t *ctx);     /* creates on demand */
uint64_t tr__io_now(tr__io_t *io);               /* wheel ms */
void tr__io_wake(tr__io_t *io);
/* Sends m to `to` from whatever thread this is (a worker or not),
 * without the accepts-check. On failure frees m and returns the code. */
int tr__io_deliver(tr_runtime_t *rt, uint64_t to, tr_msg_t *m);
void tr__io_pending_add(tr__io_t *io, int64_t n);

/* Registers fd for the calling actor. Returns the entry locked, or NULL
 * with *rc set. */
tr__io_entry_t *tr__io_entry_new(tr_ctx_t *ctx, int fd,
                                 const tr__io_kind_t *kind, uint32_t want,
                                 void *ext, int *rc);
/* Finds and locks the entry named by id, owned by the calling actor.
 * Returns NULL with *rc = TR_ENOENT (stale or unknown) / TR_EPERM. */
tr__io_entry_t *tr__io_entry_lock(tr_ctx_t *ctx, uint64_t id, int *rc);
void tr__io_entry_unlock(tr__io_entry_t *e);
/* Finds and locks an open entry by id whoever owns it, or NULL. */
tr__io_entry_t *tr__io_entry_lock_id(tr__io_t *io, uint64_t id);
static inline uint64_t tr__io_entry_id(const tr__io_entry_t *e) {
  return ((uint64_t)e->gen << 32) | e->idx;
}
/* Re-arms the fd with kind->interest (entry->mu held). */
void tr__io_entry_sync(tr__io_entry_t *e);
/* Has the poll-token holder re-arm e with kind->interest, from any thread
 * and without e->mu: for a kind whose interest changes outside the
 * entry's lock (net/tcp.c's read bound, released by a message destructor
 * that may run under another entry's lock). e must be an entry of this
 * reactor; if it has been closed (or reused) since, the re-arm is a
 * harmless no-op. Locks io->reg_mu only. */
void tr__io_entry_poke(tr__io_entry_t *e);
/* Starts the asynchronous close (entry->mu held, state OPEN): no further
 * event is delivered; the fd is closed and, if notify, kind->closed_msg
 * is sent with status once it is. */
void tr__io_entry_close_locked(tr__io_entry_t *e, int status, int notify);

/* timer.c */
int tr__timers_init(tr__io_t *io); /* 0 or TR_ENOMEM */
int64_t tr__timers_armed(tr__io_t *io);
void tr__timers_fini(tr__io_t *io);  /* frees the timers */
void tr__timers_free(tr__io_t *io);  /* then the shards */
void tr__timers_fire(tr__io_t *io);
int tr__timers_timeout(tr__io_t *io);
/* Arms a TR__TMR_CALL timer owned by own (may be NULL). */
int tr__timer_call(tr__io_t *io, tr__io_owner_t *own, uint64_t delay_ms,
                   tr__timer_cb cb, uint64_t a, uint64_t b, uint64_t *id);
int tr__timer_cancel(tr__io_t *io, uint64_t id);
void tr__timers_owner_stop(tr__io_t *io, tr__io_owner_t *own);

/* ask_timeout.c */
void tr__asks_owner_stop(tr__io_owner_t *own);

/* blocking.c */
int tr__pool_submit(tr__io_t *io, void (*fn)(void *), void *arg);
/* tr__pool_submit for an operation whose result the runtime waits for:
 * counted in npending until tr__io_done_push delivers it. On failure
 * nothing stays counted and arg is still the caller's. */
int tr__pool_submit_op(tr__io_t *io, void (*fn)(void *), void *arg);
void tr__pool_fini(tr__io_t *io);
/* Queues a finished result for delivery by the reactor (any thread). */
void tr__io_done_push(tr__io_t *io, uint64_t to, tr_msg_t *m);
void tr__io_done_drain(tr__io_t *io);

/* filemap.c: the map's own descriptor of its file (-1: none) */
int tr__file_map_fd(const tr_file_map_t *m);

/* file.c */
void tr__fops_submit(tr__io_t *io);
void tr__fop_complete(tr__io_t *io, uint64_t udata, int32_t res);
void tr__fops_fini(tr__io_t *io);

#endif
