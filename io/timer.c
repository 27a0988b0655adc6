/* SPDX-License-Identifier: MIT */
/*
 * Timers: the timing wheel of wheel.c behind one lock, timer nodes in a
 * slab (an id is a slot and a generation, so cancel is O(1) and a stale
 * id is harmless), and the delivery of what fires as messages. run()
 * (the poll-token holder) fires due timers; any thread may arm or cancel.
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
#include <time.h>

TR_MESSAGE_DEFINE(tr_timer_fired_t, .flags = TR_MSG_SYSTEM);

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void tr__timers_init(tr__io_t *io) {
  tr__wheel_init(&io->wheel, 0);
  io->ntchunks = 0;
  io->tfree = NULL;
}

/* tmr_mu held. */
static tr__timer_t *t_alloc(tr__io_t *io) {
  if (!io->tfree) {
    if (io->ntchunks >= TR__MAX_CHUNKS_IO) return NULL;
    tr__timer_t *c = calloc(TR__CHUNK, sizeof(*c));
    if (!c) return NULL;
    uint32_t base = io->ntchunks * TR__CHUNK;
    for (uint32_t i = TR__CHUNK; i-- > 0;) {
      c[i].idx = base + i;
      c[i].gen = 1;
      c[i].free_next = io->tfree;
      io->tfree = &c[i];
    }
    io->tchunks[io->ntchunks++] = c;
  }
  tr__timer_t *t = io->tfree;
  io->tfree = t->free_next;
  t->free_next = NULL;
  return t;
}

static uint64_t t_id(const tr__timer_t *t) {
  return ((uint64_t)t->gen << 32) | t->idx;
}

/* tmr_mu held. */
static tr__timer_t *t_lookup(tr__io_t *io, uint64_t id) {
  uint32_t idx = (uint32_t)id, c = idx / TR__CHUNK;
  if (c >= io->ntchunks) return NULL;
  tr__timer_t *t = &io->tchunks[c][idx % TR__CHUNK];
  if (!t->active || t->gen != (uint32_t)(id >> 32)) return NULL;
  return t;
}

/* Unlinks t from its owner and returns it to the slab (tmr_mu held). */
static void t_release(tr__io_t *io, tr__timer_t *t) {
  if (t->own) {
    if (t->own_prev) t->own_prev->own_next = t->own_next;
    else t->own->timers = t->own_next;
    if (t->own_next) t->own_next->own_prev = t->own_prev;
  }
  t->own = NULL;
  t->own_prev = t->own_next = NULL;
  t->active = 0;
  t->msg = NULL;
  t->cb = NULL;
  t->gen = (t->gen + 1) & 0x7FFFFFFFu;
  if (!t->gen) t->gen = 1;
  t->free_next = io->tfree;
  io->tfree = t;
}

/* Arms a timer at wheel time `when`, filled by the caller through *out
 * while tmr_mu is held. Returns 0 or TR_ENOMEM. */
static int arm(tr__io_t *io, tr__io_owner_t *own, uint64_t when, int kind,
               uint64_t target, tr_msg_t *msg, uint64_t cookie,
               uint64_t interval, tr__timer_cb cb, uint64_t a, uint64_t b,
               uint64_t *id) {
  pthread_mutex_lock(&io->tmr_mu);
  tr__timer_t *t = t_alloc(io);
  if (!t) {
    pthread_mutex_unlock(&io->tmr_mu);
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
  if (when <= io->wheel.elapsed) when = io->wheel.elapsed + 1;
  int due = tr__wheel_insert(&io->wheel, &t->wn, when);
  (void)due; /* when > elapsed: always filed */
  t->own = own;
  t->own_prev = NULL;
  if (own) {
    t->own_next = own->timers;
    if (own->timers) own->timers->own_prev = t;
    own->timers = t;
  } else {
    t->own_next = NULL;
  }
  if (id) *id = t_id(t);
  pthread_mutex_unlock(&io->tmr_mu);
  tr__io_pending_add(io, 1);
  /* a poller blocked past this deadline must recompute its timeout */
  if (atomic_load_explicit(&io->in_wait, memory_order_seq_cst) &&
      when < atomic_load_explicit(&io->wait_until, memory_order_seq_cst))
    tr__io_wake(io);
  return 0;
}

static uint64_t when_after(tr__io_t *io, uint64_t delay_ms) {
  uint64_t at = mono_ns() - io->start_ns + delay_ms * 1000000ull;
  return (at + 999999ull) / 1000000ull; /* round up: never early */
}

int tr__timer_call(tr__io_t *io, tr__io_owner_t *own, uint64_t delay_ms,
                   tr__timer_cb cb, uint64_t a, uint64_t b, uint64_t *id) {
  return arm(io, own, when_after(io, delay_ms), TR__TMR_CALL, 0, NULL, 0, 0,
             cb, a, b, id);
}

int tr__timer_cancel(tr__io_t *io, uint64_t id) {
  pthread_mutex_lock(&io->tmr_mu);
  tr__timer_t *t = t_lookup(io, id);
  if (!t) {
    pthread_mutex_unlock(&io->tmr_mu);
    return TR_ENOENT;
  }
  tr__wheel_remove(&io->wheel, &t->wn);
  tr_msg_t *m = t->msg;
  t_release(io, t);
  pthread_mutex_unlock(&io->tmr_mu);
  tr__io_pending_add(io, -1);
  if (m) tr__msg_release(m);
  return 0;
}

void tr__timers_owner_stop(tr__io_t *io, tr__io_owner_t *own) {
  tr_msg_t *msgs = NULL;
  int64_t n = 0;
  pthread_mutex_lock(&io->tmr_mu);
  while (own->timers) {
    tr__timer_t *t = own->timers;
    tr__wheel_remove(&io->wheel, &t->wn);
    if (t->msg) {
      t->msg->next = msgs;
      msgs = t->msg;
    }
    t_release(io, t);
    n++;
  }
  pthread_mutex_unlock(&io->tmr_mu);
  if (n) tr__io_pending_add(io, -n);
  while (msgs) {
    tr_msg_t *nx = msgs->next;
    tr__msg_release(msgs);
    msgs = nx;
  }
}

int tr__timers_timeout(tr__io_t *io) {
  pthread_mutex_lock(&io->tmr_mu);
  uint64_t next = tr__wheel_next(&io->wheel);
  pthread_mutex_unlock(&io->tmr_mu);
  if (next == UINT64_MAX) return -1;
  uint64_t target = io->start_ns + next * 1000000ull, now = mono_ns();
  if (target <= now) return 0;
  uint64_t ms = (target - now + 999999ull) / 1000000ull;
  return ms > INT_MAX ? INT_MAX : (int)ms;
}

typedef struct fire {
  uint64_t to;
  tr_msg_t *msg;
  tr__timer_cb cb;
  uint64_t a, b;
} fire_t;

void tr__timers_fire(tr__io_t *io) {
  uint64_t now = tr__io_now(io);
  fire_t local[64], *f = local;
  size_t n = 0, cap = 64;
  int64_t done = 0;
  pthread_mutex_lock(&io->tmr_mu);
  if (tr__wheel_next(&io->wheel) > now) {
    if (now > io->wheel.elapsed) io->wheel.elapsed = now;
    pthread_mutex_unlock(&io->tmr_mu);
    return;
  }
  tr__wnode_t *list = tr__wheel_poll(&io->wheel, now);
  while (list) {
    tr__timer_t *t = (tr__timer_t *)list; /* wn is the first member */
    list = list->next;
    t->wn.next = NULL;
    if (n == cap) {
      size_t nc = cap * 2;
      fire_t *nf = malloc(nc * sizeof(*nf));
      if (!nf) {
        /* keep it for the next turn rather than lose it */
        (void)tr__wheel_insert(&io->wheel, &t->wn, now + 1);
        continue;
      }
      for (size_t i = 0; i < n; i++) nf[i] = f[i];
      if (f != local) free(f);
      f = nf;
      cap = nc;
    }
    fire_t *x = &f[n];
    x->to = t->target;
    x->msg = NULL;
    x->cb = NULL;
    if (t->kind == TR__TMR_TICK) {
      tr_timer_fired_t *m = tr_msg_new(&tr_timer_fired_t__type);
      uint64_t when = t->wn.when, missed = 0;
      if (t->interval && now > when) missed = (now - when) / t->interval;
      t->seq += 1 + missed;
      if (m) {
        m->id = t_id(t);
        m->cookie = t->cookie;
        m->seq = t->seq;
        m->missed = missed;
        m->when_ms = when;
        x->msg = &m->hdr;
        n++;
      }
      if (t->interval) {
        (void)tr__wheel_insert(&io->wheel, &t->wn,
                               when + (missed + 1) * t->interval);
        continue;
      }
    } else if (t->kind == TR__TMR_SEND) {
      x->msg = t->msg;
      t->msg = NULL;
      n++;
    } else {
      x->cb = t->cb;
      x->a = t->cb_a;
      x->b = t->cb_b;
      n++;
    }
    t_release(io, t);
    done++;
  }
  pthread_mutex_unlock(&io->tmr_mu);
  for (size_t i = 0; i < n; i++) {
    if (f[i].msg) (void)tr__io_deliver(io->rt, f[i].to, f[i].msg);
    else if (f[i].cb) f[i].cb(io, f[i].a, f[i].b);
  }
  if (f != local) free(f);
  /* after the sends, so quiescence is never seen in between */
  if (done) tr__io_pending_add(io, -done);
}

void tr__timers_fini(tr__io_t *io) {
  for (uint32_t c = 0; c < io->ntchunks; c++) {
    for (uint32_t i = 0; i < TR__CHUNK; i++) {
      tr__timer_t *t = &io->tchunks[c][i];
      if (t->active && t->msg) tr__msg_release(t->msg);
    }
    free(io->tchunks[c]);
  }
  io->ntchunks = 0;
  io->tfree = NULL;
  tr__wheel_init(&io->wheel, 0);
}

/* ---- public API ------------------------------------------------------------ */

int tr_timer_send_after(tr_ctx_t *ctx, tr_ref_t to, uint64_t delay_ms,
                        void *msg, tr_timer_id_t *id) {
  tr_msg_t *m = msg;
  if (!m || !m->type || tr_ref_is_null(to)) return TR_EINVAL;
  tr__ctx_publish(ctx, m);
  tr_runtime_t *rt =
      ctx ? ctx->rt
          : atomic_load_explicit(&tr__runtimes[tr__ref_rt(to.id)],
                                 memory_order_acquire);
  if (!rt) return TR_EINVAL;
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

int tr_timer_start(tr_ctx_t *ctx, uint64_t delay_ms, uint64_t interval_ms,
                   uint64_t cookie, tr_timer_id_t *id) {
  if (!ctx || !ctx->a) return TR_EINVAL;
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
