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

/* Runtime-internal system messages. */
typedef struct sys_ref_msg {
  tr_msg_t hdr;
  uint64_t ref; /* the requester */
  uint64_t id;  /* monitor id */
  int reason;   /* exit signal reason */
} sys_ref_msg_t;

static const tr_msgtype_t link_req_type = {
    .name = "tr.link", .size = sizeof(sys_ref_msg_t), .flags = TR_MSG_SYSTEM};
static const tr_msgtype_t unlink_req_type = {
    .name = "tr.unlink", .size = sizeof(sys_ref_msg_t), .flags = TR_MSG_SYSTEM};
static const tr_msgtype_t exit_sig_type = {
    .name = "tr.exit", .size = sizeof(sys_ref_msg_t), .flags = TR_MSG_SYSTEM};
static const tr_msgtype_t mon_req_type = {
    .name = "tr.monitor", .size = sizeof(sys_ref_msg_t), .flags = TR_MSG_SYSTEM};
static const tr_msgtype_t demon_req_type = {
    .name = "tr.demonitor", .size = sizeof(sys_ref_msg_t), .flags = TR_MSG_SYSTEM};

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
  return t == &tr__stop_type || t == &link_req_type || t == &unlink_req_type ||
         t == &exit_sig_type || t == &mon_req_type || t == &demon_req_type ||
         t == &tr_down_t__type;
}

int tr__is_join_msg(const tr_msg_t *m) { return m->type == &join_type; }

/* ---- small owner-only sets ------------------------------------------------ */

tr__ext_t *tr__ext_get(tr__actor_t *a) {
  if (!a->ext) a->ext = tr__zalloc(sizeof(tr__ext_t));
  return a->ext;
}

static int grow(void **arr, uint32_t *cap, uint32_t n, size_t elem) {
  if (n < *cap) return 0;
  uint32_t nc = *cap ? *cap * 2 : 4;
  void *p = realloc(*arr, nc * elem);
  if (!p) return TR_ENOMEM;
  *arr = p;
  *cap = nc;
  return 0;
}

static int links_has(tr__ext_t *x, uint64_t r) {
  for (uint32_t i = 0; i < x->nlinks; i++)
    if (x->links[i] == r) return 1;
  return 0;
}

static int links_add(tr__ext_t *x, uint64_t r) {
  if (links_has(x, r)) return 0;
  if (grow((void **)&x->links, &x->caplinks, x->nlinks, sizeof(uint64_t)))
    return TR_ENOMEM;
  x->links[x->nlinks++] = r;
  return 0;
}

static int links_del(tr__ext_t *x, uint64_t r) {
  for (uint32_t i = 0; i < x->nlinks; i++)
    if (x->links[i] == r) {
      x->links[i] = x->links[--x->nlinks];
      return 1;
    }
  return 0;
}

static int mon_add(tr__mon_t **arr, uint32_t *n, uint32_t *cap, uint64_t ref,
                   uint64_t id) {
  if (grow((void **)arr, cap, *n, sizeof(tr__mon_t))) return TR_ENOMEM;
  (*arr)[*n].ref = ref;
  (*arr)[*n].id = id;
  (*n)++;
  return 0;
}

/* Removes the entry with this id; returns its ref, or 0 if absent. */
static uint64_t mon_del(tr__mon_t *arr, uint32_t *n, uint64_t id) {
  for (uint32_t i = 0; i < *n; i++)
    if (arr[i].id == id) {
      uint64_t r = arr[i].ref;
      arr[i] = arr[--*n];
      return r;
    }
  return 0;
}

void tr__ext_free(tr__actor_t *a) {
  tr__ext_t *x = a->ext;
  if (!x) return;
  free(x->links);
  free(x->mons);
  free(x->watching);
  if (x->result) tr__msg_release(x->result);
  tr__free(x, sizeof(*x));
  a->ext = NULL;
}

/* ---- sending the runtime's own messages ------------------------------------ */

static tr__worker_t *cur_worker(tr__actor_t *a) {
  return tr__current_worker(a->rt);
}

static int send_sys(tr__actor_t *from, const tr_msgtype_t *t, uint64_t to,
                    uint64_t ref, uint64_t id, int reason) {
  sys_ref_msg_t *m = tr_msg_new(t);
  if (!m) return TR_ENOMEM;
  m->ref = ref;
  m->id = id;
  m->reason = reason;
  m->hdr.sender = ref;
  tr_ref_t r = {to};
  int rc = tr__send_raw(cur_worker(from), NULL, r, &m->hdr, 0);
  if (rc) tr__msg_release(&m->hdr);
  return rc;
}

static void send_down(tr__actor_t *from, uint64_t watcher, uint64_t target,
                      uint64_t id, int reason) {
  tr_down_t *d = tr_msg_new(&tr_down_t__type);
  if (!d) return;
  d->ref.id = target;
  d->reason = reason;
  d->monitor = id;
  d->hdr.sender = target;
  tr_ref_t r = {watcher};
  if (tr__send_raw(cur_worker(from), NULL, r, &d->hdr, 0)) {
    atomic_fetch_add_explicit(&from->rt->dead_letters, 1, memory_order_relaxed);
    tr__msg_release(&d->hdr);
  }
}

/* ---- public calls ------------------------------------------------------------ */

void tr_trap_exit(tr_ctx_t *ctx, int on) {
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
  if (links_has(x, other.id)) return 0;
  /* record first: an exit from other may arrive right after the request */
  if (links_add(x, other.id)) return TR_ENOMEM;
  int rc = send_sys(a, &link_req_type, other.id, self, 0, 0);
  if (rc) links_del(x, other.id);
  return rc;
}

int tr_unlink(tr_ctx_t *ctx, tr_ref_t other) {
  if (!ctx || !ctx->a) return TR_EINVAL;
  tr__actor_t *a = ctx->a;
  if (!a->ext || !links_del(a->ext, other.id)) return TR_ENOENT;
  /* best effort: if other is gone there is nothing to undo */
  (void)send_sys(a, &unlink_req_type, other.id, tr__self_ref(a).id, 0, 0);
  return 0;
}

int tr_monitor(tr_ctx_t *ctx, tr_ref_t target, uint64_t *id) {
  if (!ctx || !ctx->a || tr_ref_is_null(target)) return TR_EINVAL;
  tr__actor_t *a = ctx->a;
  tr__ext_t *x = tr__ext_get(a);
  if (!x) return TR_ENOMEM;
  uint64_t mid = atomic_fetch_add(&a->rt->next_monitor, 1) + 1;
  if (mon_add(&x->watching, &x->nwatch, &x->capwatch, target.id, mid))
    return TR_ENOMEM;
  uint64_t self = tr__self_ref(a).id;
  int rc = send_sys(a, &mon_req_type, target.id, self, mid, 0);
  if (rc == TR_ENOMEM) {
    mon_del(x->watching, &x->nwatch, mid);
    return rc;
  }
  if (rc) send_down(a, self, target.id, mid, TR_ENOACTOR);
  if (id) *id = mid;
  return 0;
}

int tr_demonitor(tr_ctx_t *ctx, uint64_t id) {
  if (!ctx || !ctx->a) return TR_EINVAL;
  tr__actor_t *a = ctx->a;
  uint64_t target = a->ext ? mon_del(a->ext->watching, &a->ext->nwatch, id) : 0;
  if (!target) return TR_ENOENT;
  (void)send_sys(a, &demon_req_type, target, tr__self_ref(a).id, id, 0);
  return 0;
}

/* A monitor whose watcher is not an actor (a handle): no demonitor. */
int tr__monitor_from(tr_runtime_t *rt, uint64_t watcher, tr_ref_t target,
                     uint64_t *id) {
  uint64_t mid = atomic_fetch_add(&rt->next_monitor, 1) + 1;
  sys_ref_msg_t *m = tr_msg_new(&mon_req_type);
  if (!m) return TR_ENOMEM;
  m->ref = watcher;
  m->id = mid;
  m->hdr.sender = watcher;
  if (tr__send_raw(tr__current_worker(rt), NULL, target, &m->hdr, 0)) {
    tr__msg_release(&m->hdr);
    tr_down_t *d = tr_msg_new(&tr_down_t__type);
    if (!d) return TR_ENOMEM;
    d->ref = target;
    d->reason = TR_ENOACTOR;
    d->monitor = mid;
    tr_ref_t w = {watcher};
    if (tr__send_raw(tr__current_worker(rt), NULL, w, &d->hdr, 0))
      tr__msg_release(&d->hdr);
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
};

static void join_unref(struct tr_join *j) {
  pthread_mutex_lock(&j->mu);
  int left = --j->refs;
  pthread_mutex_unlock(&j->mu);
  if (left) return;
  if (j->result) tr__msg_release(j->result);
  pthread_mutex_destroy(&j->mu);
  pthread_cond_destroy(&j->cv);
  free(j);
}

/* Sends the completion to the awaiting actor; called with j->mu held. */
static void join_deliver(tr_runtime_t *rt, struct tr_join *j) {
  join_msg_t *m = tr_msg_new(&join_type);
  if (!m) return;
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

int tr_set_result(tr_ctx_t *ctx, void *msg) {
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
  pthread_mutex_lock(&j->mu);
  if (j->awaiter || j->taken) {
    pthread_mutex_unlock(&j->mu);
    return TR_EBUSY;
  }
  int rc = tr__pending_register(ctx->a, k, cookie, &tag);
  if (rc) {
    pthread_mutex_unlock(&j->mu);
    return rc;
  }
  j->awaiter = tr__self_ref(ctx->a).id;
  j->tag = tag;
  if (j->done) join_deliver(ctx->rt, j);
  pthread_mutex_unlock(&j->mu);
  return 0;
}

int tr_join_wait(tr_join_t *j, int timeout_ms, int *reason, void **result) {
  if (!j) return TR_EINVAL;
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
  if (o->flags & TR_SPAWN_LINK) {
    tr__ext_t *px = tr__ext_get(parent);
    if (!px || links_add(px, cref)) return TR_ENOMEM;
    if (links_add(cx, tr__self_ref(parent).id)) {
      links_del(px, cref);
      return TR_ENOMEM;
    }
  }
  if (o->flags & TR_SPAWN_MONITOR) {
    tr__ext_t *px = tr__ext_get(parent);
    uint64_t mid = atomic_fetch_add(&child->rt->next_monitor, 1) + 1;
    if (!px || mon_add(&px->watching, &px->nwatch, &px->capwatch, cref, mid))
      return TR_ENOMEM;
    if (mon_add(&cx->mons, &cx->nmons, &cx->capmons, tr__self_ref(parent).id,
                mid)) {
      mon_del(px->watching, &px->nwatch, mid);
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

void tr__ext_on_stop(tr_ctx_t *ctx, tr__actor_t *a, int reason) {
  (void)ctx;
  tr__ext_t *x = a->ext;
  uint64_t self = tr__self_ref(a).id;
  for (uint32_t i = 0; i < x->nlinks; i++)
    (void)send_sys(a, &exit_sig_type, x->links[i], self, 0, reason);
  x->nlinks = 0;
  for (uint32_t i = 0; i < x->nmons; i++)
    send_down(a, x->mons[i].ref, self, x->mons[i].id, reason);
  x->nmons = 0;
  /* monitors this actor held die with it: tell the targets (best effort) */
  for (uint32_t i = 0; i < x->nwatch; i++)
    (void)send_sys(a, &demon_req_type, x->watching[i].ref, self,
                   x->watching[i].id, 0);
  x->nwatch = 0;
  struct tr_join *j = x->join;
  if (j) {
    x->join = NULL;
    pthread_mutex_lock(&j->mu);
    j->done = 1;
    j->reason = reason;
    j->result = x->result;
    x->result = NULL;
    if (j->awaiter) join_deliver(a->rt, j);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    join_unref(j);
  }
}

int tr__drain_sys(tr__actor_t *a, tr_msg_t *m, int reason) {
  const tr_msgtype_t *t = m->type;
  if (!(t->flags & TR_MSG_SYSTEM)) return 0;
  sys_ref_msg_t *s = (sys_ref_msg_t *)m;
  uint64_t self = tr__self_ref(a).id;
  if (t == &link_req_type) {
    (void)send_sys(a, &exit_sig_type, s->ref, self, 0, reason);
  } else if (t == &mon_req_type) {
    send_down(a, s->ref, self, s->id, reason);
  } else if (t == &unlink_req_type || t == &demon_req_type ||
             t == &exit_sig_type || t == &tr__stop_type) {
    /* moot now; the runtime's own requests are not dead letters */
  } else {
    return 0;
  }
  tr__msg_release(m);
  return 1;
}

/* Runs a handler-level result: a negative rc or tr_stop ends the actor. */
static int after_handler(tr_ctx_t *ctx, tr__actor_t *a, int rc) {
  if (rc < 0 || ctx->stop_req) {
    tr__finalize(ctx, a, rc < 0 ? rc : ctx->stop_reason, 1);
    return 1;
  }
  return 0;
}

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

int tr__sys_dispatch(tr_ctx_t *ctx, tr__actor_t *a, tr_msg_t *m) {
  const tr_msgtype_t *t = m->type;
  int stopped = 0;
  if (t == &tr__stop_type) {
    int reason = ((tr__stop_msg_t *)m)->reason;
    uint64_t from = m->sender;
    tr__msg_release(m);
    if (a->ext && a->ext->trap_exit && reason != TR_EXIT_KILLED)
      return deliver_exit(ctx, a, from, reason);
    tr__finalize(ctx, a, reason, 1);
    return 1;
  }
  if (t == &tr_down_t__type) {
    tr_down_t *d = (tr_down_t *)m;
    if (!a->ext || !mon_del(a->ext->watching, &a->ext->nwatch, d->monitor)) {
      tr__msg_release(m); /* demonitored meanwhile */
      return 0;
    }
    return after_handler(ctx, a, tr__deliver(ctx, a, m));
  }
  sys_ref_msg_t *s = (sys_ref_msg_t *)m;
  uint64_t ref = s->ref, id = s->id;
  int reason = s->reason;
  tr__msg_release(m);
  tr__ext_t *x;
  if (t == &link_req_type) {
    x = tr__ext_get(a);
    if (!x || links_add(x, ref)) {
      /* cannot record the link: break it from the other side */
      (void)send_sys(a, &exit_sig_type, ref, tr__self_ref(a).id, 0, TR_ENOMEM);
    }
  } else if (t == &unlink_req_type) {
    if (a->ext) links_del(a->ext, ref);
  } else if (t == &mon_req_type) {
    x = tr__ext_get(a);
    if (!x || mon_add(&x->mons, &x->nmons, &x->capmons, ref, id))
      send_down(a, ref, tr__self_ref(a).id, id, TR_ENOMEM);
  } else if (t == &demon_req_type) {
    if (a->ext) mon_del(a->ext->mons, &a->ext->nmons, id);
  } else if (t == &exit_sig_type) {
    if (!a->ext || !links_del(a->ext, ref)) return 0; /* unlinked: stale */
    if (a->ext->trap_exit) return deliver_exit(ctx, a, ref, reason);
    if (reason != TR_EXIT_NORMAL) {
      tr__finalize(ctx, a, reason, 1);
      stopped = 1;
    }
  }
  return stopped;
}

/* spawn failed after relations were set: the caller gets the error code,
 * so the link is dropped silently instead of delivering an exit. */
void tr__spawn_unwind(tr__actor_t *parent, tr__actor_t *child) {
  tr__ext_t *cx = child->ext;
  if (!cx) return;
  if (parent && parent->ext) {
    links_del(parent->ext, tr__self_ref(child).id);
    links_del(cx, tr__self_ref(parent).id);
  }
}
