/* SPDX-License-Identifier: MIT */
/*
 * Timers: the timing wheel of wheel.c, sharded: one shard (a wheel, a
 * slab of timer nodes and a lock) per worker and one for threads outside
 * the workers. A timer lives in the shard of the thread that armed it; its
 * id names the shard, the slot and a generation, so cancel is O(1) from
 * any thread and a stale id is harmless. Worker i is the only one that
 * arms into shard i, so its lock is uncontended but for cancels from
 * elsewhere and the poller, which takes it only when the shard has
 * something due (each shard publishes its next expiration for the poller
 * to read without the lock). run() (the poll-token holder) fires due
 * timers of every shard; the armed timers are counted per shard.
 *
 * Deadlines are rounded up to the next millisecond, so a timer never
 * fires early. An interval keeps its schedule (start + k * interval);
 * when it falls behind by whole periods it skips them and reports how
 * many in the tick (Tokio's MissedTickBehavior::Skip), rather than
 * bursting.
 */
#include "io_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

TR_MESSAGE_DEFINE(tr_timer_fired_t, .flags = TR_MSG_SYSTEM);

#define IDX_MASK ((1u << TR__TSHARD_BITS) - 1u)

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int tr__timers_init(tr__io_t *io) {
  unsigned n = tr_runtime_workers(io->rt) + 1;
  if (n > TR__TSHARD_MAX) n = TR__TSHARD_MAX;
  io->tshards = aligned_alloc(_Alignof(tr__tshard_t),
                              n * sizeof(tr__tshard_t));
  if (!io->tshards) return TR_ENOMEM;
  memset(io->tshards, 0, n * sizeof(tr__tshard_t));
  for (unsigned i = 0; i < n; i++) {
    tr__tshard_t *sh = &io->tshards[i];
    pthread_mutex_init(&sh->mu, NULL);
    tr__wheel_init(&sh->wheel, 0);
    sh->index = i;
    atomic_init(&sh->next, UINT64_MAX);
    atomic_init(&sh->armed, 0);
  }
  io->ntshards = n;
  return 0;
}

/* The shard the calling thread arms into. */
static tr__tshard_t *my_shard(tr__io_t *io) {
  tr__worker_t *w = tr__current_worker(io->rt);
  unsigned i = w ? w->index : io->ntshards - 1;
  if (i >= io->ntshards - 1) i = io->ntshards - 1;
  return &io->tshards[i];
}

/* After a change to the wheel (sh->mu held). */
static void publish_next(tr__tshard_t *sh) {
  /* seq_cst: arm() stores this, then reads io->in_wait; the poller stores
   * in_wait, then reads this (hook_wait): one of them sees the other */
  atomic_store_explicit(&sh->next, tr__wheel_next(&sh->wheel),
                        memory_order_seq_cst);
}

/* sh->mu held. */
static tr__timer_t *t_alloc(tr__tshard_t *sh) {
  if (!sh->free) {
    if (sh->nchunks >= TR__MAX_CHUNKS_IO) return NULL;
    if (sh->nchunks == sh->cap) {
      uint32_t nc = sh->cap ? sh->cap * 2 : 4;
      tr__timer_t **a = realloc(sh->chunks, nc * sizeof(*a));
      if (!a) return NULL;
      sh->chunks = a;
      sh->cap = nc;
    }
    tr__timer_t *c = calloc(TR__CHUNK, sizeof(*c));
    if (!c) return NULL;
    uint32_t base = sh->nchunks * TR__CHUNK;
    for (uint32_t i = TR__CHUNK; i-- > 0;) {
      c[i].idx = base + i;
      c[i].gen = 1;
      c[i].free_next = sh->free;
      sh->free = &c[i];
    }
    sh->chunks[sh->nchunks++] = c;
  }
  tr__timer_t *t = sh->free;
  sh->free = t->free_next;
  t->free_next = NULL;
  /* The free list is in the order timers were released, by whichever
   * thread fired them, so its next node is usually cold (or in another
   * core's cache): reading its link was most of an arm's time when an
   * init or a handler arms several timers in a row. Fetch it now. */
  if (sh->free) __builtin_prefetch(sh->free, 1);
  return t;
}

static uint64_t t_id(const tr__tshard_t *sh, const tr__timer_t *t) {
  return ((uint64_t)t->gen << 32) |
         ((uint64_t)sh->index << TR__TSHARD_BITS) | t->idx;
}

/* The shard an id names, or NULL. */
static tr__tshard_t *id_shard(tr__io_t *io, uint64_t id) {
  uint32_t s = (uint32_t)id >> TR__TSHARD_BITS;
  return s < io->ntshards ? &io->tshards[s] : NULL;
}

/* sh->mu held. */
static tr__timer_t *t_lookup(tr__tshard_t *sh, uint64_t id) {
  uint32_t idx = (uint32_t)id & IDX_MASK, c = idx / TR__CHUNK;
  if (c >= sh->nchunks) return NULL;
  tr__timer_t *t = &sh->chunks[c][idx % TR__CHUNK];
  if (!t->active || t->gen != (uint32_t)(id >> 32)) return NULL;
  return t;
}

/* Unlinks t from its owner and returns it to the slab (sh->mu held). */
static void t_release(tr__tshard_t *sh, tr__timer_t *t) {
  if (t->own) {
    if (t->own_prev) t->own_prev->own_next = t->own_next;
    else t->own->timers[sh->index] = t->own_next;
    if (t->own_next) t->own_next->own_prev = t->own_prev;
  }
  t->own = NULL;
  t->own_prev = t->own_next = NULL;
  t->active = 0;
  t->msg = NULL;
  t->cb = NULL;
  t->gen = (t->gen + 1) & 0x7FFFFFFFu;
  if (!t->gen) t->gen = 1;
  t->free_next = sh->free;
  sh->free = t;
}

/* Arms a timer at wheel time `when` in the caller's shard. Returns 0 or
 * TR_ENOMEM. */
static int arm(tr__io_t *io, tr__io_owner_t *own, uint64_t when, int kind,
               uint64_t target, tr_msg_t *msg, uint64_t cookie,
               uint64_t interval, tr__timer_cb cb, uint64_t a, uint64_t b,
               uint64_t *id) {
  tr__tshard_t *sh = my_shard(io);
  pthread_mutex_lock(&sh->mu);
  tr__timer_t *t = t_alloc(sh);
  if (!t) {
    pthread_mutex_unlock(&sh->mu);
    return TR_ENOMEM;
  }
  t->kind = (uint8_t)kind;
  t->active = 1;
  t->target = target;
  t->msg = msg;
  t->cookie = cookie;
  t->interval = interval;
  t->seq = 0;
  t->cb = cb;
  t->cb_a = a;
  t->cb_b = b;
  if (!sh->wheel.count) {
    /* an empty shard's clock stopped when it last fired: bring it to now,
     * so this timer is filed against the present and the poller is not
     * told of a stale slot that makes it poll once for nothing */
    uint64_t now = tr__io_now(io);
    if (now > sh->wheel.elapsed) sh->wheel.elapsed = now;
  }
  if (when <= sh->wheel.elapsed) when = sh->wheel.elapsed + 1;
  int due = tr__wheel_insert(&sh->wheel, &t->wn, when);
  (void)due; /* when > elapsed: always filed */
  publish_next(sh);
  t->own = own;
  t->own_prev = NULL;
  if (own) {
    t->own_next = own->timers[sh->index];
    if (t->own_next) t->own_next->own_prev = t;
    own->timers[sh->index] = t;
  } else {
    t->own_next = NULL;
  }
  if (id) *id = t_id(sh, t);
  atomic_fetch_add_explicit(&sh->armed, 1, memory_order_seq_cst);
  pthread_mutex_unlock(&sh->mu);
  /* a poller blocked past this deadline must recompute its timeout */
  if (atomic_load_explicit(&io->in_wait, memory_order_seq_cst) &&
      when < atomic_load_explicit(&io->wait_until, memory_order_seq_cst))
    tr__io_wake(io);
  return 0;
}

/* a + b, or UINT64_MAX where that overflows: a deadline that far away
 * means "never" and must not wrap round to the past. */
static inline uint64_t sat_add(uint64_t a, uint64_t b) {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* a * b, or UINT64_MAX where that overflows. */
static inline uint64_t sat_mul(uint64_t a, uint64_t b) {
  return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

/* The wheel time delay_ms from now. The current time is rounded up to
 * the next millisecond, so a timer never fires early; the delay is added
 * in milliseconds, saturating, so no delay can overflow. */
static uint64_t when_after(tr__io_t *io, uint64_t delay_ms) {
  uint64_t now_ms = (mono_ns() - io->start_ns + 999999ull) / 1000000ull;
  return sat_add(now_ms, delay_ms);
}

int tr__timer_call(tr__io_t *io, tr__io_owner_t *own, uint64_t delay_ms,
                   tr__timer_cb cb, uint64_t a, uint64_t b, uint64_t *id) {
  return arm(io, own, when_after(io, delay_ms), TR__TMR_CALL, 0, NULL, 0, 0,
             cb, a, b, id);
}

int tr__timer_cancel(tr__io_t *io, uint64_t id) {
  tr__tshard_t *sh = id_shard(io, id);
  if (!sh) return TR_ENOENT;
  pthread_mutex_lock(&sh->mu);
  tr__timer_t *t = t_lookup(sh, id);
  if (!t) {
    pthread_mutex_unlock(&sh->mu);
    return TR_ENOENT;
  }
  tr__wheel_remove(&sh->wheel, &t->wn);
  publish_next(sh);
  tr_msg_t *m = t->msg;
  t_release(sh, t);
  atomic_fetch_sub_explicit(&sh->armed, 1, memory_order_seq_cst);
  pthread_mutex_unlock(&sh->mu);
  if (m) tr__msg_release(m);
  return 0;
}

void tr__timers_owner_stop(tr__io_t *io, tr__io_owner_t *own) {
  tr_msg_t *msgs = NULL;
  for (unsigned s = 0; s < io->ntshards; s++) {
    tr__tshard_t *sh = &io->tshards[s];
    int64_t n = 0;
    pthread_mutex_lock(&sh->mu);
    while (own->timers[s]) {
      tr__timer_t *t = own->timers[s];
      tr__wheel_remove(&sh->wheel, &t->wn);
      if (t->msg) {
        t->msg->next = msgs;
        msgs = t->msg;
      }
      t_release(sh, t);
      n++;
    }
    if (n) {
      publish_next(sh);
      atomic_fetch_sub_explicit(&sh->armed, n, memory_order_seq_cst);
    }
    pthread_mutex_unlock(&sh->mu);
  }
  while (msgs) {
    tr_msg_t *nx = msgs->next;
    tr__msg_release(msgs);
    msgs = nx;
  }
}

int64_t tr__timers_armed(tr__io_t *io) {
  int64_t n = 0;
  for (unsigned s = 0; s < io->ntshards; s++)
    n += atomic_load_explicit(&io->tshards[s].armed, memory_order_seq_cst);
  return n;
}

int tr__timers_timeout(tr__io_t *io) {
  uint64_t next = UINT64_MAX;
  for (unsigned s = 0; s < io->ntshards; s++) {
    uint64_t x =
        atomic_load_explicit(&io->tshards[s].next, memory_order_seq_cst);
    if (x < next) next = x;
  }
  if (next == UINT64_MAX) return -1;
  /* in wheel milliseconds, so that a far deadline cannot overflow the
   * nanoseconds; the wait is rounded up (a poller woken before the
   * deadline would only go back to sleep) */
  uint64_t now_ns = mono_ns() - io->start_ns;
  if (next <= now_ns / 1000000ull) return 0;
  uint64_t ms = next - now_ns / 1000000ull;
  return ms > INT_MAX ? INT_MAX : (int)ms;
}

typedef struct fire {
  uint64_t to;
  tr_msg_t *msg;
  tr__timer_cb cb;
  uint64_t a, b;
} fire_t;

typedef struct fire_buf {
  fire_t local[64], *f;
  size_t n, cap;
} fire_buf_t;

/* Room for one more, or NULL when memory is short. */
static fire_t *fire_slot(fire_buf_t *fb) {
  if (fb->n == fb->cap) {
    size_t nc = fb->cap * 2;
    fire_t *nf = malloc(nc * sizeof(*nf));
    if (!nf) return NULL;
    for (size_t i = 0; i < fb->n; i++) nf[i] = fb->f[i];
    if (fb->f != fb->local) free(fb->f);
    fb->f = nf;
    fb->cap = nc;
  }
  return &fb->f[fb->n];
}

/* Timers taken from a shard per hold of its lock (whole slots, so a slot
 * with more is taken whole): armers and cancellers get the lock between
 * batches, and the messages go out while it is free. */
#define FIRE_BATCH 256
/* Timers fired from one shard in one turn of the poller: a turn that
 * finds a backlog leaves the rest for the next one, so the worker also
 * runs the actors it has just woken (an idle poller is told to come back
 * at once: the shard's next expiration stays in the past). */
#define FIRE_TURN_MAX 4096

/* Collects at most about `max` of what is due in sh into fb; returns how
 * many timers ended. start_ns is the clock's origin (io->start_ns), to
 * give ticks their CLOCK_MONOTONIC times. */
static int64_t shard_poll(tr__tshard_t *sh, uint64_t now, uint64_t start_ns,
                          fire_buf_t *fb, size_t max) {
  int64_t done = 0;
  /* one clock read per batch: the ticks of a batch go out together */
  uint64_t fired_ns = mono_ns();
  pthread_mutex_lock(&sh->mu);
  tr__wnode_t *list = tr__wheel_poll(&sh->wheel, now, max);
  while (list) {
    tr__timer_t *t = (tr__timer_t *)list; /* wn is the first member */
    list = list->next;
    t->wn.next = NULL;
    fire_t *x = fire_slot(fb);
    if (!x) {
      /* keep it for the next turn rather than lose it */
      (void)tr__wheel_insert(&sh->wheel, &t->wn, now + 1);
      continue;
    }
    x->to = t->target;
    x->msg = NULL;
    x->cb = NULL;
    if (t->kind == TR__TMR_TICK) {
      tr_timer_fired_t *m = tr_msg_new(&tr_timer_fired_t__type);
      uint64_t when = t->wn.when, missed = 0;
      if (t->interval && now > when) missed = (now - when) / t->interval;
      t->seq += 1 + missed;
      if (m) {
        m->id = t_id(sh, t);
        m->cookie = t->cookie;
        m->seq = t->seq;
        m->missed = missed;
        m->when_ms = when;
        m->when_ns = sat_add(start_ns, sat_mul(when, 1000000ull));
        m->fired_ns = fired_ns;
        x->msg = &m->hdr;
        fb->n++;
      }
      if (t->interval) {
        (void)tr__wheel_insert(
            &sh->wheel, &t->wn,
            sat_add(when, sat_mul(missed + 1, t->interval)));
        continue;
      }
    } else if (t->kind == TR__TMR_SEND) {
      x->msg = t->msg;
      t->msg = NULL;
      fb->n++;
    } else {
      x->cb = t->cb;
      x->a = t->cb_a;
      x->b = t->cb_b;
      fb->n++;
    }
    t_release(sh, t);
    done++;
  }
  publish_next(sh);
  pthread_mutex_unlock(&sh->mu);
  return done;
}

void tr__timers_fire(tr__io_t *io) {
  uint64_t now = tr__io_now(io);
  fire_buf_t fb;
  fb.f = fb.local;
  fb.n = 0;
  fb.cap = sizeof(fb.local) / sizeof(fb.local[0]);
  for (unsigned s = 0; s < io->ntshards; s++) {
    tr__tshard_t *sh = &io->tshards[s];
    size_t fired = 0;
    while (fired < FIRE_TURN_MAX &&
           atomic_load_explicit(&sh->next, memory_order_acquire) <= now) {
      int64_t done = shard_poll(sh, now, io->start_ns, &fb, FIRE_BATCH);
      for (size_t i = 0; i < fb.n; i++) {
        if (fb.f[i].msg) (void)tr__io_deliver(io->rt, fb.f[i].to, fb.f[i].msg);
        else if (fb.f[i].cb) fb.f[i].cb(io, fb.f[i].a, fb.f[i].b);
      }
      fired += fb.n;
      /* after the sends, so quiescence is never seen in between */
      if (done)
        atomic_fetch_sub_explicit(&sh->armed, done, memory_order_seq_cst);
      if (!fb.n && !done) break; /* nothing taken (memory short) */
      fb.n = 0;
    }
  }
  if (fb.f != fb.local) free(fb.f);
}

void tr__timers_fini(tr__io_t *io) {
  for (unsigned s = 0; s < io->ntshards; s++) {
    tr__tshard_t *sh = &io->tshards[s];
    for (uint32_t c = 0; c < sh->nchunks; c++) {
      for (uint32_t i = 0; i < TR__CHUNK; i++) {
        tr__timer_t *t = &sh->chunks[c][i];
        if (t->active && t->msg) tr__msg_release(t->msg);
      }
      free(sh->chunks[c]);
    }
    free(sh->chunks);
    sh->chunks = NULL;
    sh->nchunks = sh->cap = 0;
    sh->free = NULL;
    tr__wheel_init(&sh->wheel, 0);
    atomic_store(&sh->next, UINT64_MAX);
    atomic_store(&sh->armed, 0);
  }
}

/* Frees the shards (tr__timers_fini first). */
void tr__timers_free(tr__io_t *io) {
  for (unsigned s = 0; s < io->ntshards; s++)
    pthread_mutex_destroy(&io->tshards[s].mu);
  free(io->tshards);
  io->tshards = NULL;
  io->ntshards = 0;
}

/* ---- public API ------------------------------------------------------------ */

/* A delay as the wheel takes it: TR_FOREVER (and any delay too far to
 * reach) saturates to "never". */
static uint64_t delay_of(tr_duration_t d) {
  return d < 0 ? UINT64_MAX : (uint64_t)d;
}

static int send_after(tr_ctx_t *ctx, tr_ref_t to, tr_duration_t delay,
                      void *msg, tr_timer_id_t *id);

int tr_timer_send_after(tr_ctx_t *ctx, tr_ref_t to, tr_duration_t delay,
                        void *msg, tr_timer_id_t *id) {
  int rc = send_after(ctx, to, delay, msg, id);
  return rc ? tr__msg_drop_failed(ctx, msg, rc) : 0;
}

static int send_after(tr_ctx_t *ctx, tr_ref_t to, tr_duration_t delay,
                      void *msg, tr_timer_id_t *id) {
  tr_msg_t *m = msg;
  if (!m || !m->type || tr_ref_is_null(to) || TR__DURATION_BAD(delay))
    return TR_EINVAL;
  uint64_t delay_ms = delay_of(delay);
  tr__ctx_publish(ctx, m);
  tr_runtime_t *rt = ctx ? ctx->rt : tr__ref_runtime(to.id);
  if (!rt) return TR_ENOACTOR;
  tr__io_t *io = tr__io_get(rt);
  if (!io) return TR_ENOSYS;
  tr__io_owner_t *own = NULL;
  if (ctx) {
    own = tr__io_owner(ctx);
    if (!own) return TR_ENOMEM;
  }
  if (!m->tag) m->sender = ctx ? tr__self_ref(ctx->a).id : 0;
  int rc = arm(io, own, when_after(io, delay_ms), TR__TMR_SEND, to.id, m, 0,
               0, NULL, 0, 0, id);
  if (rc == 0 && ctx && m == ctx->cur) tr__ctx_disown(ctx);
  return rc;
}

int tr_timer_start(tr_ctx_t *ctx, tr_duration_t delay, tr_duration_t interval,
                   uint64_t cookie, tr_timer_id_t *id) {
  /* interval: the time to the next repetition; TR_FOREVER (never) makes a
   * one-shot timer, and 0 (a timer firing without pause) is refused */
  if (!ctx || !ctx->a || TR__DURATION_BAD(delay) ||
      TR__DURATION_BAD(interval) || interval == 0)
    return TR_EINVAL;
  uint64_t delay_ms = delay_of(delay);
  uint64_t interval_ms = interval < 0 ? 0 : (uint64_t)interval;
  tr__io_t *io = tr__io_of_ctx(ctx);
  if (!io) return TR_ENOSYS;
  tr__io_owner_t *own = tr__io_owner(ctx);
  if (!own) return TR_ENOMEM;
  return arm(io, own, when_after(io, delay_ms), TR__TMR_TICK,
             tr__self_ref(ctx->a).id, NULL, cookie, interval_ms, NULL, 0, 0,
             id);
}

int tr_timer_deadline(tr_ctx_t *ctx, uint64_t at_ms, uint64_t cookie,
                      tr_timer_id_t *id) {
  if (!ctx || !ctx->a) return TR_EINVAL;
  tr__io_t *io = tr__io_of_ctx(ctx);
  if (!io) return TR_ENOSYS;
  tr__io_owner_t *own = tr__io_owner(ctx);
  if (!own) return TR_ENOMEM;
  return arm(io, own, at_ms, TR__TMR_TICK, tr__self_ref(ctx->a).id, NULL,
             cookie, 0, NULL, 0, 0, id);
}

int tr_timer_cancel(tr_runtime_t *rt, tr_timer_id_t id) {
  if (!rt || !id) return TR_EINVAL;
  tr__io_t *io = __atomic_load_n((tr__io_t **)&rt->io, __ATOMIC_ACQUIRE);
  if (!io) return TR_ENOENT;
  return tr__timer_cancel(io, id);
}
