/* SPDX-License-Identifier: MIT */
/*
 * Failure handling, the Erlang way: links (both directions, exit signals
 * that stop the other side unless it traps exits), monitors (one way, a
 * down message), exit trapping, and join handles that deliver an actor's
 * result or exit reason.
 *
 * Each relation is recorded on both sides, and each side's record is
 * touched only by its own actor: the other side learns of a change through
 * a system message. A request that reaches an actor after it stopped is
 * answered from its dead-letter drain, and one that cannot be pushed at
 * all (the target is gone) is answered at once, so no exit or down is
 * ever missed, whatever the interleaving.
 */
#include "internal.h"
#include "mem.h"
#include "park.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

TR_MESSAGE_DEFINE(tr_exit_t, .flags = TR_MSG_SYSTEM);
TR_MESSAGE_DEFINE(tr_down_t, .flags = TR_MSG_SYSTEM);

/* The runtime's link and monitor signals are tr_exit_t and tr_down_t
 * messages marked in their header's flags (TR__MSGF_SIG_MASK); a down
 * notice itself is an unmarked tr_down_t, and an unmarked tr_exit_t is a
 * user's message like any other. Each relation's closing message is made
 * when the relation is: a link or monitor request is itself the message
 * its receiver sends back when it stops (or at once, if it cannot record
 * the relation or is already gone), and the requester keeps one to send
 * when it unlinks, demonitors or stops. Stopping therefore needs no
 * memory, and an exit or a down is never lost to a failed allocation. */
enum {
  SIG_LINK = 1u << 24,   /* tr_exit_t: link me (from) */
  SIG_UNLINK = 2u << 24, /* tr_exit_t: from unlinked */
  SIG_EXIT = 3u << 24,   /* tr_exit_t: from stopped with reason */
  SIG_MON = 4u << 24,    /* tr_down_t: the sender monitors me, as monitor */
  SIG_DEMON = 5u << 24,  /* tr_down_t: the sender cancelled monitor */
};

static void exit_fill(tr_msg_t *m, uint32_t kind, uint64_t from, int reason) {
  tr_exit_t *e = (tr_exit_t *)m;
  e->hdr.flags = kind;
  e->hdr.sender = from;
  e->hdr.tag = 0;
  e->from.id = from;
  e->reason = reason;
}

static void down_fill(tr_msg_t *m, uint32_t kind, uint64_t sender,
                      uint64_t target, uint64_t id, int reason) {
  tr_down_t *d = (tr_down_t *)m;
  d->hdr.flags = kind;
  d->hdr.sender = sender;
  d->hdr.tag = 0;
  d->ref.id = target;
  d->monitor = id;
  d->reason = reason;
}

/* Join completion carried to an awaiting actor as a reply. */
typedef struct join_msg {
  tr_msg_t hdr;
  int reason;
  tr_msg_t *result;
} join_msg_t;
static void join_msg_dtor(void *p) {
  join_msg_t *m = p;
  if (m->result) tr__msg_release(m->result);
}
static const tr_msgtype_t join_type = {
    .name = "tr.join", .size = sizeof(join_msg_t), .dtor = join_msg_dtor};

int tr__is_internal_sys(const tr_msgtype_t *t) {
  if (!(t->flags & TR_MSG_SYSTEM)) return 0;
  return t == &tr__stop_type || t == &tr_exit_t__type ||
         t == &tr_down_t__type;
}

int tr__is_join_msg(const tr_msg_t *m) { return m->type == &join_type; }

/* ---- small owner-only sets ------------------------------------------------ */

tr__ext_t *tr__ext_get(tr__actor_t *a) {
  if (!a->ext) a->ext = tr__zalloc(sizeof(tr__ext_t));
  return a->ext;
}

static int rel_add(tr__mon_t **arr, uint32_t *n, uint32_t *cap, uint64_t ref,
                   uint64_t id, tr_msg_t *sig) {
  if (*n == *cap) {
    uint32_t nc = *cap ? *cap * 2 : 4;
    tr__mon_t *p = realloc(*arr, nc * sizeof(tr__mon_t));
    if (!p) return TR_ENOMEM;
    *arr = p;
    *cap = nc;
  }
  (*arr)[*n] = (tr__mon_t){.ref = ref, .id = id, .sig = sig};
  (*n)++;
  return 0;
}

/* The index of the entry for the other side ref (links) or with monitor
 * id (monitors), or -1. */
static int64_t rel_find(const tr__mon_t *arr, uint32_t n, uint64_t ref,
                        uint64_t id) {
  for (uint32_t i = 0; i < n; i++)
    if (id ? arr[i].id == id : arr[i].ref == ref) return i;
  return -1;
}

/* Removes that entry into *out; 0 if there was none. */
static int rel_take(tr__mon_t *arr, uint32_t *n, uint64_t ref, uint64_t id,
                    tr__mon_t *out) {
  int64_t i = rel_find(arr, *n, ref, id);
  if (i < 0) return 0;
  *out = arr[i];
  arr[i] = arr[--*n];
  return 1;
}

/* Removes that entry and frees the message it kept; 0 if there was none. */
static int rel_drop(tr__mon_t *arr, uint32_t *n, uint64_t ref, uint64_t id) {
  tr__mon_t e;
  if (!rel_take(arr, n, ref, id, &e)) return 0;
  tr__msg_release(e.sig);
  return 1;
}

static void rel_free(tr__mon_t *arr, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) tr__msg_release(arr[i].sig);
  free(arr);
}

void tr__ext_free(tr__actor_t *a) {
  tr__ext_t *x = a->ext;
  if (!x) return;
  rel_free(x->links, x->nlinks);
  rel_free(x->mons, x->nmons);
  rel_free(x->watching, x->nwatch);
  if (x->result) tr__msg_release(x->result);
  tr__free(x, sizeof(*x));
  a->ext = NULL;
}

/* ---- sending the runtime's own messages ------------------------------------ */

static int sig_try(tr_runtime_t *rt, tr_msg_t *m, uint64_t to) {
  tr_ref_t r = {to};
  return tr__send_raw(tr__current_worker(rt), NULL, r, m, 0);
}

/* Sends a signal whose receiver may be gone, which makes it moot. */
static void sig_send(tr_runtime_t *rt, tr_msg_t *m, uint64_t to) {
  if (sig_try(rt, m, to)) tr__msg_release(m);
}

/* Sends a down notice; a watcher already gone counts it a dead letter. */
static void down_send(tr_runtime_t *rt, tr_msg_t *m, uint64_t watcher) {
  if (sig_try(rt, m, watcher)) {
    atomic_fetch_add_explicit(&rt->dead_letters, 1, memory_order_relaxed);
    tr__msg_release(m);
  }
}

/* ---- public calls ------------------------------------------------------------ */

void tr_ctx_trap_exit(tr_ctx_t *ctx, int on) {
  tr__ext_t *x = tr__ext_get(ctx->a);
  if (x) x->trap_exit = on != 0;
}

int tr_link(tr_ctx_t *ctx, tr_ref_t other) {
  if (!ctx || !ctx->a || tr_ref_is_null(other)) return TR_EINVAL;
  tr__actor_t *a = ctx->a;
  uint64_t self = tr__self_ref(a).id;
  if (other.id == self) return TR_EINVAL;
  tr__ext_t *x = tr__ext_get(a);
  if (!x) return TR_ENOMEM;
  if (rel_find(x->links, x->nlinks, other.id, 0) >= 0) return 0;
  /* mine: what this side sends when it unlinks or stops; req: the
   * request, which the other side keeps for its own stop */
  tr_msg_t *mine = tr_msg_new(&tr_exit_t__type);
  tr_msg_t *req = tr_msg_new(&tr_exit_t__type);
  /* record first: an exit from other may arrive right after the request */
  if (!mine || !req ||
      rel_add(&x->links, &x->nlinks, &x->caplinks, other.id, 0, mine)) {
    tr_msg_free(mine);
    tr_msg_free(req);
    return TR_ENOMEM;
  }
  exit_fill(req, SIG_LINK, self, 0);
  int rc = sig_try(a->rt, req, other.id);
  if (rc) {
    rel_drop(x->links, &x->nlinks, other.id, 0);
    tr__msg_release(req);
  }
  return rc;
}

int tr_unlink(tr_ctx_t *ctx, tr_ref_t other) {
  if (!ctx || !ctx->a) return TR_EINVAL;
  tr__actor_t *a = ctx->a;
  tr__mon_t e;
  if (!a->ext || !rel_take(a->ext->links, &a->ext->nlinks, other.id, 0, &e))
    return TR_ENOENT;
  /* if other is gone there is nothing to undo */
  exit_fill(e.sig, SIG_UNLINK, tr__self_ref(a).id, 0);
  sig_send(a->rt, e.sig, other.id);
  return 0;
}

int tr_monitor(tr_ctx_t *ctx, tr_ref_t target, uint64_t *id) {
  if (!ctx || !ctx->a || tr_ref_is_null(target)) return TR_EINVAL;
  tr__actor_t *a = ctx->a;
  tr__ext_t *x = tr__ext_get(a);
  if (!x) return TR_ENOMEM;
  uint64_t mid = atomic_fetch_add(&a->rt->next_monitor, 1) + 1;
  /* undo: the demonitor this side sends when it cancels or stops; req:
   * the request, which the target keeps as the down it owes */
  tr_msg_t *undo = tr_msg_new(&tr_down_t__type);
  tr_msg_t *req = tr_msg_new(&tr_down_t__type);
  if (!undo || !req ||
      rel_add(&x->watching, &x->nwatch, &x->capwatch, target.id, mid, undo)) {
    tr_msg_free(undo);
    tr_msg_free(req);
    return TR_ENOMEM;
  }
  uint64_t self = tr__self_ref(a).id;
  down_fill(req, SIG_MON, self, target.id, mid, 0);
  if (sig_try(a->rt, req, target.id)) {
    /* target already gone: the request comes back as the down */
    down_fill(req, 0, target.id, target.id, mid, TR_ENOACTOR);
    down_send(a->rt, req, self);
  }
  if (id) *id = mid;
  return 0;
}

int tr_demonitor(tr_ctx_t *ctx, uint64_t id) {
  if (!ctx || !ctx->a) return TR_EINVAL;
  tr__actor_t *a = ctx->a;
  tr__mon_t e;
  if (!id || !a->ext || !rel_take(a->ext->watching, &a->ext->nwatch, 0, id, &e))
    return TR_ENOENT;
  down_fill(e.sig, SIG_DEMON, tr__self_ref(a).id, e.ref, id, 0);
  sig_send(a->rt, e.sig, e.ref);
  return 0;
}

/* A monitor whose watcher is not an actor (a handle): no demonitor. */
int tr__monitor_from(tr_runtime_t *rt, uint64_t watcher, tr_ref_t target,
                     uint64_t *id) {
  uint64_t mid = atomic_fetch_add(&rt->next_monitor, 1) + 1;
  tr_msg_t *req = tr_msg_new(&tr_down_t__type);
  if (!req) return TR_ENOMEM;
  down_fill(req, SIG_MON, watcher, target.id, mid, 0);
  if (sig_try(rt, req, target.id)) {
    down_fill(req, 0, target.id, target.id, mid, TR_ENOACTOR);
    down_send(rt, req, watcher);
  }
  if (id) *id = mid;
  return 0;
}

/* ---- join handles -------------------------------------------------------------- */

struct tr_join {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int refs;       /* the actor's side and the holder's side */
  int done;
  int reason;
  int taken;      /* the result went to an awaiter or a waiter */
  tr_msg_t *result;
  uint64_t awaiter; /* actor awaiting, with its reply tag */
  uint64_t tag;
  join_msg_t *reply; /* made by the await, sent when the actor stops */
};

static void join_unref(struct tr_join *j) {
  pthread_mutex_lock(&j->mu);
  int left = --j->refs;
  pthread_mutex_unlock(&j->mu);
  if (left) return;
  if (j->result) tr__msg_release(j->result);
  if (j->reply) tr__msg_release(&j->reply->hdr);
  pthread_mutex_destroy(&j->mu);
  pthread_cond_destroy(&j->cv);
  free(j);
}

/* Sends the completion to the awaiting actor; called with j->mu held. */
static void join_deliver(tr_runtime_t *rt, struct tr_join *j) {
  join_msg_t *m = j->reply;
  j->reply = NULL;
  m->reason = j->reason;
  m->result = j->result;
  j->result = NULL;
  j->taken = 1;
  m->hdr.tag = j->tag | TR__TAG_REPLY;
  tr_ref_t to = {j->awaiter};
  if (tr__send_raw(tr__current_worker(rt), NULL, to, &m->hdr, 0)) {
    atomic_fetch_add_explicit(&rt->dead_letters, 1, memory_order_relaxed);
    tr__msg_release(&m->hdr);
  }
}

int tr_ctx_set_result(tr_ctx_t *ctx, void *msg) {
  if (!ctx || !ctx->a || !msg) return TR_EINVAL;
  tr__ext_t *x = tr__ext_get(ctx->a);
  if (!x) return TR_ENOMEM;
  if (x->result && x->result != msg) tr__msg_release(x->result);
  x->result = msg;
  if (msg == ctx->cur) tr__ctx_disown(ctx);
  return 0;
}

int tr_join_await(tr_ctx_t *ctx, tr_join_t *j, tr_reply_fn k, void *cookie) {
  if (!ctx || !ctx->a || !j || !k) return TR_EINVAL;
  uint64_t tag;
  /* made now: the actor's stop must not need memory to tell us */
  join_msg_t *reply = tr_msg_new(&join_type);
  if (!reply) return TR_ENOMEM;
  pthread_mutex_lock(&j->mu);
  if (j->awaiter || j->taken) {
    pthread_mutex_unlock(&j->mu);
    tr__msg_release(&reply->hdr);
    return TR_EBUSY;
  }
  int rc = tr__pending_register(ctx->a, k, cookie, &tag);
  if (rc) {
    pthread_mutex_unlock(&j->mu);
    tr__msg_release(&reply->hdr);
    return rc;
  }
  j->awaiter = tr__self_ref(ctx->a).id;
  j->tag = tag;
  j->reply = reply;
  if (j->done) join_deliver(ctx->rt, j);
  pthread_mutex_unlock(&j->mu);
  return 0;
}

int tr_join_wait(tr_join_t *j, tr_duration_t timeout, int *reason,
                 void **result) {
  if (!j || TR__DURATION_BAD(timeout)) return TR_EINVAL;
  int64_t timeout_ms = timeout;
  if (timeout != 0) TR__ASSERT_MAY_BLOCK();
  struct timespec dl = tr__deadline_ts(timeout_ms);
  int rc = 0;
  pthread_mutex_lock(&j->mu);
  if (j->awaiter || j->taken) {
    pthread_mutex_unlock(&j->mu);
    return TR_EBUSY;
  }
  while (!j->done) {
    if (timeout_ms < 0) {
      pthread_cond_wait(&j->cv, &j->mu);
    } else if (pthread_cond_timedwait(&j->cv, &j->mu, &dl) == ETIMEDOUT) {
      if (!j->done) rc = TR_ETIMEDOUT;
      break;
    }
  }
  if (rc == 0) {
    if (reason) *reason = j->reason;
    if (result) {
      *result = j->result;
      j->result = NULL;
      j->taken = 1;
    }
  }
  pthread_mutex_unlock(&j->mu);
  return rc;
}

void tr_join_free(tr_join_t *j) {
  if (j) join_unref(j);
}

/* ---- spawn-time relations ------------------------------------------------------ */

int tr__spawn_relations(tr__actor_t *parent, tr__actor_t *child,
                        const tr_spawn_opts_t *o) {
  if ((o->flags & (TR_SPAWN_LINK | TR_SPAWN_MONITOR)) && !parent)
    return TR_EINVAL;
  tr__ext_t *cx = tr__ext_get(child);
  if (!cx) return TR_ENOMEM;
  uint64_t cref = tr__self_ref(child).id;
  uint64_t pref = parent ? tr__self_ref(parent).id : 0;
  if (o->flags & TR_SPAWN_LINK) {
    /* each side's exit signal, made now like tr_link's */
    tr__ext_t *px = tr__ext_get(parent);
    tr_msg_t *ps = tr_msg_new(&tr_exit_t__type);
    tr_msg_t *cs = tr_msg_new(&tr_exit_t__type);
    if (!px || !ps || !cs ||
        rel_add(&px->links, &px->nlinks, &px->caplinks, cref, 0, ps)) {
      tr_msg_free(ps);
      tr_msg_free(cs);
      return TR_ENOMEM;
    }
    if (rel_add(&cx->links, &cx->nlinks, &cx->caplinks, pref, 0, cs)) {
      rel_drop(px->links, &px->nlinks, cref, 0);
      tr_msg_free(cs);
      return TR_ENOMEM;
    }
  }
  if (o->flags & TR_SPAWN_MONITOR) {
    /* the parent's demonitor and the child's down, made now */
    tr__ext_t *px = tr__ext_get(parent);
    uint64_t mid = atomic_fetch_add(&child->rt->next_monitor, 1) + 1;
    tr_msg_t *undo = tr_msg_new(&tr_down_t__type);
    tr_msg_t *down = tr_msg_new(&tr_down_t__type);
    if (!px || !undo || !down ||
        rel_add(&px->watching, &px->nwatch, &px->capwatch, cref, mid, undo)) {
      tr_msg_free(undo);
      tr_msg_free(down);
      return TR_ENOMEM;
    }
    if (rel_add(&cx->mons, &cx->nmons, &cx->capmons, pref, mid, down)) {
      rel_drop(px->watching, &px->nwatch, 0, mid);
      tr_msg_free(down);
      return TR_ENOMEM;
    }
    if (o->monitor_id) *o->monitor_id = mid;
  }
  if (o->join) {
    struct tr_join *j = calloc(1, sizeof(*j));
    if (!j) return TR_ENOMEM;
    /* timed waits (tr_join_wait) measure CLOCK_MONOTONIC */
    if (tr__cond_init_monotonic(&j->cv)) {
      free(j);
      return TR_ENOMEM;
    }
    pthread_mutex_init(&j->mu, NULL);
    j->refs = 2;
    cx->join = j;
    *o->join = j;
  }
  return 0;
}

/* ---- stopping ------------------------------------------------------------------ */

/* Sends what every relation of a is owed; allocates nothing. */
void tr__ext_on_stop(tr_ctx_t *ctx, tr__actor_t *a, int reason) {
  (void)ctx;
  tr__ext_t *x = a->ext;
  tr_runtime_t *rt = a->rt;
  uint64_t self = tr__self_ref(a).id;
  for (uint32_t i = 0; i < x->nlinks; i++) {
    exit_fill(x->links[i].sig, SIG_EXIT, self, reason);
    sig_send(rt, x->links[i].sig, x->links[i].ref);
  }
  x->nlinks = 0;
  for (uint32_t i = 0; i < x->nmons; i++) {
    down_fill(x->mons[i].sig, 0, self, self, x->mons[i].id, reason);
    down_send(rt, x->mons[i].sig, x->mons[i].ref);
  }
  x->nmons = 0;
  /* monitors this actor held die with it: tell the targets */
  for (uint32_t i = 0; i < x->nwatch; i++) {
    down_fill(x->watching[i].sig, SIG_DEMON, self, x->watching[i].ref,
              x->watching[i].id, 0);
    sig_send(rt, x->watching[i].sig, x->watching[i].ref);
  }
  x->nwatch = 0;
  struct tr_join *j = x->join;
  if (j) {
    x->join = NULL;
    pthread_mutex_lock(&j->mu);
    j->done = 1;
    j->reason = reason;
    j->result = x->result;
    x->result = NULL;
    if (j->awaiter) join_deliver(rt, j);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    join_unref(j);
  }
}

int tr__drain_sys(tr__actor_t *a, tr_msg_t *m, int reason) {
  const tr_msgtype_t *t = m->type;
  uint32_t kind = m->flags & TR__MSGF_SIG_MASK;
  if (t == &tr__stop_type) {
    /* moot now; the runtime's own requests are not dead letters */
    tr__msg_release(m);
    return 1;
  }
  if ((t != &tr_exit_t__type && t != &tr_down_t__type) || !kind) return 0;
  uint64_t self = tr__self_ref(a).id;
  if (kind == SIG_LINK) {
    /* the request comes back as the exit of the actor it asked */
    uint64_t from = ((tr_exit_t *)m)->from.id;
    exit_fill(m, SIG_EXIT, self, reason);
    sig_send(a->rt, m, from);
  } else if (kind == SIG_MON) {
    tr_down_t *d = (tr_down_t *)m;
    uint64_t watcher = d->hdr.sender;
    down_fill(m, 0, self, self, d->monitor, reason);
    down_send(a->rt, m, watcher);
  } else {
    tr__msg_release(m); /* unlink, exit, demonitor: moot now */
  }
  return 1;
}

/* Runs a handler-level result: a negative rc or a stop of itself ends the actor. */
static int after_handler(tr_ctx_t *ctx, tr__actor_t *a, int rc) {
  if (rc < 0 || ctx->stop_req) {
    tr__finalize(ctx, a, rc < 0 ? rc : ctx->stop_reason, 1);
    return 1;
  }
  return 0;
}

/* A stop request to an actor that traps exits (links need no memory for
 * this: their signal is delivered itself). */
static int deliver_exit(tr_ctx_t *ctx, tr__actor_t *a, uint64_t from,
                        int reason) {
  tr_exit_t *e = tr_msg_new(&tr_exit_t__type);
  if (!e) {
    /* cannot tell it: fail safe, as if it did not trap */
    if (reason != TR_EXIT_NORMAL) {
      tr__finalize(ctx, a, reason, 1);
      return 1;
    }
    return 0;
  }
  e->from.id = from;
  e->reason = reason;
  e->hdr.sender = from;
  return after_handler(ctx, a, tr__deliver(ctx, a, &e->hdr));
}

static int exit_dispatch(tr_ctx_t *ctx, tr__actor_t *a, tr_msg_t *m,
                         uint32_t kind) {
  tr_exit_t *e = (tr_exit_t *)m;
  uint64_t from = e->from.id;
  tr__ext_t *x = a->ext;
  if (kind == SIG_LINK) {
    x = tr__ext_get(a);
    if (x && rel_find(x->links, x->nlinks, from, 0) >= 0) {
      tr__msg_release(m); /* linked both ways at once: one signal is kept */
    } else if (!x ||
               rel_add(&x->links, &x->nlinks, &x->caplinks, from, 0, m)) {
      /* cannot record the link: break it from the other side */
      exit_fill(m, SIG_EXIT, tr__self_ref(a).id, TR_ENOMEM);
      sig_send(a->rt, m, from);
    }
    return 0;
  }
  if (kind == SIG_UNLINK) {
    if (x) rel_drop(x->links, &x->nlinks, from, 0);
    tr__msg_release(m);
    return 0;
  }
  if (kind == SIG_EXIT) {
    if (!x || !rel_drop(x->links, &x->nlinks, from, 0)) {
      tr__msg_release(m); /* unlinked meanwhile: stale */
      return 0;
    }
    if (x->trap_exit) {
      e->hdr.flags = 0;
      return after_handler(ctx, a, tr__deliver(ctx, a, m));
    }
    int reason = e->reason;
    tr__msg_release(m);
    if (reason == TR_EXIT_NORMAL) return 0;
    tr__finalize(ctx, a, reason, 1);
    return 1;
  }
  /* a user's tr_exit_t: an ordinary message */
  return after_handler(ctx, a, tr__deliver(ctx, a, m));
}

static int down_dispatch(tr_ctx_t *ctx, tr__actor_t *a, tr_msg_t *m,
                         uint32_t kind) {
  tr_down_t *d = (tr_down_t *)m;
  tr__ext_t *x = a->ext;
  if (kind == SIG_MON) {
    uint64_t watcher = d->hdr.sender;
    x = tr__ext_get(a);
    if (!x || rel_add(&x->mons, &x->nmons, &x->capmons, watcher, d->monitor,
                      m)) {
      /* cannot record the monitor: the down comes at once */
      uint64_t self = tr__self_ref(a).id;
      down_fill(m, 0, self, self, d->monitor, TR_ENOMEM);
      down_send(a->rt, m, watcher);
    }
    return 0;
  }
  if (kind == SIG_DEMON) {
    if (x) rel_drop(x->mons, &x->nmons, 0, d->monitor);
    tr__msg_release(m);
    return 0;
  }
  if (!d->monitor || !x || !rel_drop(x->watching, &x->nwatch, 0, d->monitor)) {
    tr__msg_release(m); /* demonitored meanwhile */
    return 0;
  }
  return after_handler(ctx, a, tr__deliver(ctx, a, m));
}

int tr__sys_dispatch(tr_ctx_t *ctx, tr__actor_t *a, tr_msg_t *m) {
  const tr_msgtype_t *t = m->type;
  uint32_t kind = m->flags & TR__MSGF_SIG_MASK;
  if (t == &tr__stop_type) {
    int reason = ((tr__stop_msg_t *)m)->reason;
    uint64_t from = m->sender;
    tr__msg_release(m);
    if (a->ext && a->ext->trap_exit && reason != TR_EXIT_KILLED)
      return deliver_exit(ctx, a, from, reason);
    tr__finalize(ctx, a, reason, 1);
    return 1;
  }
  if (t == &tr_exit_t__type) return exit_dispatch(ctx, a, m, kind);
  return down_dispatch(ctx, a, m, kind);
}

/* spawn failed after relations were set: the caller gets the error code,
 * so the link is dropped silently instead of delivering an exit. */
void tr__spawn_unwind(tr__actor_t *parent, tr__actor_t *child) {
  tr__ext_t *cx = child->ext;
  if (!cx) return;
  if (parent && parent->ext) {
    rel_drop(parent->ext->links, &parent->ext->nlinks,
             tr__self_ref(child).id, 0);
    rel_drop(cx->links, &cx->nlinks, tr__self_ref(parent).id, 0);
  }
}
