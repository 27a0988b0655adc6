/* SPDX-License-Identifier: MIT */
/*
 * Actors: slots and refs, spawn, send, the per-run dispatch loop, stop and
 * the dead-letter drain, ask/reply and the counters of one actor.
 */
#include "internal.h"
#include "mem.h"

#include <stdlib.h>
#include <string.h>

/* ---- slots --------------------------------------------------------------- */

/* idx < TR__MAX_CHUNKS * TR__CHUNK_SLOTS by the ref layout. */
static inline tr__actor_t *slot_at(tr_runtime_t *rt, uint32_t idx) {
  tr__actor_t *chunk = atomic_load_explicit(&rt->chunks[idx >> TR__CHUNK_SHIFT],
                                            memory_order_acquire);
  return chunk ? &chunk[idx & (TR__CHUNK_SLOTS - 1)] : NULL;
}

/* Finds the live actor (or handle) named by id, or NULL. The caller is a
 * worker between quiescent points or a foreign thread inside
 * tr__foreign_enter, so the slot cannot be reused under it. Entry 0 of
 * tr__runtimes stays NULL, so TR_REF_NULL needs no test of its own; the
 * key compare refuses a ref of a runtime that held the same index before. */
tr__actor_t *tr__lookup(uint64_t id) {
  tr_runtime_t *rt =
      atomic_load_explicit(&tr__runtimes[tr__ref_rt(id)], memory_order_acquire);
  if (tr__unlikely(!rt || rt->key != tr__ref_key(id))) return NULL;
  tr__actor_t *a = slot_at(rt, tr__ref_idx(id));
  if (tr__unlikely(!a)) return NULL;
  uint32_t g = atomic_load_explicit(&a->gen, memory_order_seq_cst);
  if (tr__unlikely(!(g & 1) || (g & TR__GEN_MASK) != tr__ref_gen(id)))
    return NULL;
  return a;
}

static int chunk_grow(tr_runtime_t *rt) {
  if (rt->nchunks >= TR__MAX_CHUNKS) return TR_ENOSPC;
  /* zeroed: generation 0 (dead) until a slot is handed out */
  tr__actor_t *c = calloc(TR__CHUNK_SLOTS, sizeof(tr__actor_t));
  if (!c) return TR_ENOMEM;
  atomic_store_explicit(&rt->chunks[rt->nchunks], c, memory_order_release);
  rt->nchunks++;
  rt->bump = 0;
  return 0;
}

/* Hands out a never-used slot of the newest chunk. slot_mu held. */
static tr__actor_t *slot_bump(tr_runtime_t *rt) {
  if (rt->nchunks == 0 || rt->bump == TR__CHUNK_SLOTS)
    if (chunk_grow(rt)) return NULL;
  tr__actor_t *chunk =
      atomic_load_explicit(&rt->chunks[rt->nchunks - 1], memory_order_relaxed);
  tr__actor_t *a = &chunk[rt->bump];
  a->idx = ((rt->nchunks - 1) << TR__CHUNK_SHIFT) | rt->bump;
  a->rt = rt;
  atomic_store_explicit(&a->inbox, TR__INBOX_CLOSED, memory_order_relaxed);
  rt->bump++;
  return a;
}

/* Smallest quiescent epoch among the workers other than self. */
static uint64_t min_epoch(tr_runtime_t *rt, tr__worker_t *self) {
  uint64_t min = UINT64_MAX;
  for (unsigned i = 0; i < rt->nworkers; i++) {
    if (&rt->workers[i] == self) continue;
    uint64_t e = atomic_load_explicit(&rt->workers[i].qs_epoch,
                                      memory_order_acquire);
    if (e < min) min = e;
  }
  return min;
}

uint64_t tr__qsbr_stamp(tr_runtime_t *rt) {
  return atomic_fetch_add_explicit(&rt->epoch, 1, memory_order_seq_cst) + 1;
}

uint64_t tr__qsbr_min(tr_runtime_t *rt) { return min_epoch(rt, NULL); }

/* Closes w's open batch of retired slots: stamps it with a new epoch. */
static void limbo_seal(tr__worker_t *w) {
  if (!w->ob_head) return;
  tr_runtime_t *rt = w->rt;
  uint64_t e = atomic_fetch_add_explicit(&rt->epoch, 1, memory_order_seq_cst) + 1;
  if (w->sealed_count == TR__LIMBO_BATCHES) {
    /* no room: merge into the newest batch, which then waits longer */
    unsigned last = (w->sealed_first + w->sealed_count - 1) % TR__LIMBO_BATCHES;
    w->sealed[last].tail->link = w->ob_head;
    w->sealed[last].tail = w->ob_tail;
    w->sealed[last].epoch = e;
  } else {
    unsigned i = (w->sealed_first + w->sealed_count) % TR__LIMBO_BATCHES;
    w->sealed[i].head = w->ob_head;
    w->sealed[i].tail = w->ob_tail;
    w->sealed[i].epoch = e;
    w->sealed_count++;
  }
  w->ob_head = w->ob_tail = NULL;
  w->ob_count = 0;
}

/* Moves w's sealed batches whose grace period has passed to its free
 * list: one splice per batch, the slots themselves are not touched. */
static void limbo_reclaim_worker(tr__worker_t *w) {
  tr_runtime_t *rt = w->rt;
  limbo_seal(w);
  if (!w->sealed_count) return;
  if (atomic_load_explicit(&rt->foreign, memory_order_seq_cst) != 0) return;
  uint64_t min = min_epoch(rt, w);
  while (w->sealed_count && w->sealed[w->sealed_first].epoch <= min) {
    unsigned i = w->sealed_first;
    w->sealed[i].tail->link = w->free;
    w->free = w->sealed[i].head;
    w->sealed_first = (i + 1) % TR__LIMBO_BATCHES;
    w->sealed_count--;
  }
}

/* The global limbo (slots retired by foreign threads), slot_mu held. */
static void limbo_reclaim_global(tr_runtime_t *rt) {
  if (!rt->limbo_head) return;
  if (atomic_load_explicit(&rt->foreign, memory_order_seq_cst) != 0) return;
  uint64_t min = min_epoch(rt, NULL);
  while (rt->limbo_head && rt->limbo_head->retire_epoch <= min) {
    tr__actor_t *a = rt->limbo_head;
    rt->limbo_head = a->link;
    a->link = rt->free;
    rt->free = a;
  }
  if (!rt->limbo_head) rt->limbo_tail = NULL;
}

#define TR__SLOT_BATCH 64

tr__actor_t *tr__slot_alloc(tr_runtime_t *rt, tr__worker_t *w) {
  tr__actor_t *a;
  if (w) {
    if (tr__unlikely(!w->free)) {
      limbo_reclaim_worker(w);
      if (!w->free) {
        pthread_mutex_lock(&rt->slot_mu);
        limbo_reclaim_global(rt);
        for (unsigned i = 0; i < TR__SLOT_BATCH; i++) {
          if ((a = rt->free)) rt->free = a->link;
          else if (!(a = slot_bump(rt))) break;
          a->link = w->free;
          w->free = a;
        }
        pthread_mutex_unlock(&rt->slot_mu);
      }
    }
    a = w->free;
    if (a) {
      w->free = a->link;
      /* the next spawn's slot is likely cold: start fetching it */
      if (w->free) __builtin_prefetch(w->free, 1);
    }
    return a;
  }
  pthread_mutex_lock(&rt->slot_mu);
  limbo_reclaim_global(rt);
  if ((a = rt->free)) rt->free = a->link;
  else a = slot_bump(rt);
  pthread_mutex_unlock(&rt->slot_mu);
  return a;
}

/* The slot's actor has stopped: its generation is already even and its
 * inbox closed. Park it in limbo until the grace period has passed. */
void tr__slot_retire(tr__worker_t *w, tr__actor_t *a) {
  tr_runtime_t *rt = a->rt;
  a->link = NULL;
  if (w) {
    if (w->ob_tail) w->ob_tail->link = a;
    else w->ob_head = a;
    w->ob_tail = a;
    if (++w->ob_count >= TR__LIMBO_BATCH_SLOTS) limbo_seal(w);
    return;
  }
  a->retire_epoch = atomic_fetch_add_explicit(&rt->epoch, 1,
                                              memory_order_seq_cst) + 1;
  pthread_mutex_lock(&rt->slot_mu);
  if (rt->limbo_tail) rt->limbo_tail->link = a;
  else rt->limbo_head = a;
  rt->limbo_tail = a;
  pthread_mutex_unlock(&rt->slot_mu);
}

void tr__slots_free(tr_runtime_t *rt) {
  for (uint32_t c = 0; c < rt->nchunks; c++) {
    tr__actor_t *chunk = atomic_load_explicit(&rt->chunks[c], memory_order_relaxed);
    for (uint32_t i = 0; i < TR__CHUNK_SLOTS; i++) free(chunk[i].mbox);
    free(chunk);
  }
  rt->nchunks = 0;
}

/* ---- pending asks: open addressing, linear probing ---------------------- */

typedef struct tr__pend_entry {
  uint64_t tag; /* 0 empty, UINT64_MAX deleted */
  tr_reply_fn k;
  void *cookie;
} tr__pend_entry_t;

struct tr__pending {
  uint32_t cap, used, live;
  tr__pend_entry_t e[];
};

#define TR__PEND_DEL UINT64_MAX

static int pending_put(tr__actor_t *a, uint64_t tag, tr_reply_fn k,
                       void *cookie) {
  tr__pending_t *p = a->pending;
  if (!p || (p->used + 1) * 4 > p->cap * 3) {
    uint32_t ncap = p ? p->cap : 8;
    while ((p ? p->live + 1 : 1) * 2 > ncap) ncap *= 2;
    if (p && (p->live + 1) * 2 <= p->cap) ncap = p->cap; /* just rehash */
    tr__pending_t *np =
        tr__zalloc(sizeof(*np) + ncap * sizeof(tr__pend_entry_t));
    if (!np) return TR_ENOMEM;
    np->cap = ncap;
    if (p) {
      for (uint32_t i = 0; i < p->cap; i++) {
        uint64_t t = p->e[i].tag;
        if (t == 0 || t == TR__PEND_DEL) continue;
        uint32_t j = (uint32_t)t & (ncap - 1);
        while (np->e[j].tag) j = (j + 1) & (ncap - 1);
        np->e[j] = p->e[i];
        np->used++;
        np->live++;
      }
      tr__free(p, sizeof(*p) + p->cap * sizeof(tr__pend_entry_t));
    }
    a->pending = p = np;
  }
  uint32_t j = (uint32_t)tag & (p->cap - 1);
  while (p->e[j].tag != 0 && p->e[j].tag != TR__PEND_DEL)
    j = (j + 1) & (p->cap - 1);
  if (p->e[j].tag == 0) p->used++;
  p->e[j].tag = tag;
  p->e[j].k = k;
  p->e[j].cookie = cookie;
  p->live++;
  return 0;
}

static int pending_take(tr__actor_t *a, uint64_t tag, tr__pend_entry_t *out) {
  tr__pending_t *p = a->pending;
  if (!p) return 0;
  uint32_t j = (uint32_t)tag & (p->cap - 1);
  for (uint32_t n = 0; n < p->cap && p->e[j].tag; n++) {
    if (p->e[j].tag == tag) {
      *out = p->e[j];
      p->e[j].tag = TR__PEND_DEL;
      p->live--;
      return 1;
    }
    j = (j + 1) & (p->cap - 1);
  }
  return 0;
}

void tr__pending_free(tr__actor_t *a) {
  if (a->pending)
    tr__free(a->pending,
             sizeof(*a->pending) + a->pending->cap * sizeof(tr__pend_entry_t));
  a->pending = NULL;
}

/* ---- spawn ---------------------------------------------------------------- */


int tr_spawn(tr_runtime_t *rt, const tr_behavior_t *b, void *arg,
             tr_ref_t *out) {
  return tr_spawn_ex(rt, b, arg, NULL, out);
}

int tr_spawn_ex(tr_runtime_t *rt, const tr_behavior_t *b, void *arg,
                const tr_spawn_opts_t *opts, tr_ref_t *out) {
  if (!rt || !b || (b->nhandlers && !b->handlers)) return TR_EINVAL;
  if (opts && (unsigned)opts->priority >= TR_PRIO_COUNT) return TR_EINVAL;
  if (b->nmailboxes) {
    if (!b->mailboxes || b->nmailboxes > 64) return TR_EINVAL;
    for (size_t i = 0; i < b->nmailboxes; i++)
      if (b->mailboxes[i].ntypes && !b->mailboxes[i].types) return TR_EINVAL;
  }
  if (atomic_load_explicit(&rt->stopping, memory_order_relaxed))
    return TR_ESHUTDOWN;
  tr__worker_t *w = tr__current_worker(rt);
  tr_ctx_t *pctx = tr__current_ctx();
  tr__actor_t *parent = (pctx && pctx->rt == rt) ? pctx->a : NULL;
  tr__actor_t *a = tr__slot_alloc(rt, w);
  if (!a) return TR_ENOMEM;
  void *state = NULL;
  if (b->state_size) {
    state = tr__zalloc(b->state_size);
    if (!state) {
      /* the slot never lived: give it straight back */
      atomic_store_explicit(&a->gen, atomic_load(&a->gen) + 2,
                            memory_order_relaxed);
      tr__slot_retire(w, a);
      return TR_ENOMEM;
    }
  }
  atomic_store_explicit(&a->behavior, b, memory_order_relaxed);
  a->state = state;
  a->sys_head = a->sys_tail = a->data_head = a->data_tail = NULL;
  a->pending = NULL;
  a->handle = NULL;
  a->io_owned = NULL;
  a->ext = NULL;
  atomic_store_explicit(&a->overloaded, 0, memory_order_relaxed);
  atomic_store_explicit(&a->muted, NULL, memory_order_relaxed);
  if (tr__unlikely(b->nmailboxes) || a->nmbox) {
    /* the array outlives each actor of this slot (late senders may still
     * read it); grow it only here, where no sender can see the slot */
    if (b->nmailboxes > a->mbox_cap) {
      tr__mbox_t *nm = realloc(a->mbox, b->nmailboxes * sizeof(*nm));
      if (!nm) {
        atomic_store_explicit(&a->gen, atomic_load(&a->gen) + 2,
                              memory_order_relaxed);
        if (state) tr__free(state, b->state_size);
        tr__slot_retire(w, a);
        return TR_ENOMEM;
      }
      a->mbox = nm;
      a->mbox_cap = (uint32_t)b->nmailboxes;
    }
    for (size_t i = 0; i < b->nmailboxes; i++) {
      tr__mbox_t *mb = &a->mbox[i];
      mb->head = mb->tail = NULL;
      mb->len = 0;
      atomic_store_explicit(&mb->count, 0, memory_order_relaxed);
      atomic_store_explicit(&mb->muted, NULL, memory_order_relaxed);
      atomic_store_explicit(&mb->closed, 0, memory_order_relaxed);
    }
    a->nmbox = (uint32_t)b->nmailboxes;
    a->mb_cur = 0;
    unsigned w0 = b->mailboxes[0].weight;
    a->mb_credit = (uint16_t)(w0 == 0 ? 1 : w0 > 65535 ? 65535 : w0);
  }
  a->parent = parent ? tr__self_ref(parent).id : 0;
  a->next_tag = 0;
  a->qlen = 0;
  a->prio = tr__prio_class(opts ? opts->priority : TR_PRIO_NORMAL);
  atomic_store_explicit(&a->handled, 0, memory_order_relaxed);
  atomic_store_explicit(&a->depth, 0, memory_order_relaxed);
  atomic_store_explicit(&a->depth_hwm, 0, memory_order_relaxed);
  atomic_store_explicit(&a->kind, TR__KIND_ACTOR, memory_order_relaxed);
  /* Busy (NULL) while init runs, so that mail sent meanwhile does not
   * schedule the actor on another worker before init has returned. */
  atomic_store_explicit(&a->inbox, NULL, memory_order_relaxed);
  atomic_store_explicit(&a->gen, atomic_load_explicit(&a->gen, memory_order_relaxed) + 1,
                        memory_order_release);
  /* counted per worker: a shared counter's cache line passed between
   * the workers on every spawn and stop (skynet: 1.1M of each) */
  if (w) tr__count_release(&w->st.spawned);
  else atomic_fetch_add_explicit(&rt->spawned, 1, memory_order_relaxed);
  tr_ref_t ref = tr__self_ref(a);
  if (opts && (opts->flags || opts->join)) {
    int rc = tr__spawn_relations(parent, a, opts);
    if (rc) {
      struct tr_ctx ictx = {.rt = rt, .w = w, .a = a};
      tr__spawn_unwind(parent, a);
      tr__finalize(&ictx, a, rc, 0);
      return rc;
    }
  }

  if (b->init) {
    struct tr_ctx ictx = {.rt = rt, .w = w, .a = a};
    tr_ctx_t *saved = tr__set_current_ctx(&ictx);
    int rc = b->init(&ictx, state, arg);
    tr__set_current_ctx(saved);
    if (rc < 0) {
      tr__spawn_unwind(parent, a);
      tr__finalize(&ictx, a, rc, 0);
      return rc;
    }
    if (ictx.stop_req) {
      tr__finalize(&ictx, a, ictx.stop_reason, 1);
      if (out) *out = ref;
      return 0;
    }
  }
  if (!tr__inbox_try_idle(&a->inbox)) tr__schedule(w, a);
  if (out) *out = ref;
  return 0;
}

static inline const tr_handler_t *find_entry(const tr_behavior_t *b,
                                             const tr_msgtype_t *t) {
  for (size_t i = 0; i < b->nhandlers; i++)
    if (b->handlers[i].type == t) return &b->handlers[i];
  return NULL;
}

static inline tr_handler_fn find_handler(const tr_behavior_t *b,
                                         const tr_msgtype_t *t) {
  const tr_handler_t *e = find_entry(b, t);
  return e ? e->fn : b->fallback;
}

/* The data mailbox a message type goes to: the first that lists it. */
static inline unsigned mbox_of_type(const tr_behavior_t *b,
                                    const tr_msgtype_t *t) {
  unsigned dflt = 0, have_dflt = 0;
  /* a token goes where the messages it stands for would go */
  if (tr__unlikely(t->flags & TR__MSG_EXPAND)) t = tr__expand_as(t);
  for (size_t i = 0; i < b->nmailboxes; i++) {
    if (!b->mailboxes[i].ntypes && !have_dflt) {
      dflt = (unsigned)i;
      have_dflt = 1;
    }
    for (size_t k = 0; k < b->mailboxes[i].ntypes; k++)
      if (b->mailboxes[i].types[k] == t) return (unsigned)i;
  }
  return dflt;
}

static inline unsigned mbox_of(const tr_behavior_t *b, const tr__actor_t *a,
                               const tr_msg_t *m) {
  unsigned i = mbox_of_type(b, m->type);
  return i < a->nmbox ? i : 0;
}

/* Muted senders go again once the count is below this: at least 1, so
 * that a mailbox of capacity 1 lets them go when it is empty. */
static inline size_t low_water(const tr_mailbox_spec_t *sp) {
  if (sp->low_water && sp->low_water < sp->capacity) return sp->low_water;
  return sp->capacity / 2 ? sp->capacity / 2 : 1;
}

/* Reschedules every sender muted on a list. */
static void unmute_list(tr__worker_t *w, _Atomic(tr__actor_t *) *list) {
  tr__actor_t *s = atomic_exchange_explicit(list, NULL, memory_order_seq_cst);
  while (s) {
    tr__actor_t *nx = s->link;
    if (w) tr__reschedule(w, s);
    else tr__schedule(NULL, s);
    s = nx;
  }
}

static void unmute_all(tr__worker_t *w, tr__mbox_t *mb) {
  unmute_list(w, &mb->muted);
}

/* a caught up (or stopped): senders muted on its backlog go on. */
static void overload_clear(tr__worker_t *w, tr__actor_t *a) {
  atomic_store_explicit(&a->overloaded, 0, memory_order_seq_cst);
  if (atomic_load_explicit(&a->muted, memory_order_seq_cst))
    unmute_list(w, &a->muted);
}

/* ---- stop ----------------------------------------------------------------- */

TR_MESSAGE_DEFINE(tr_dead_letter_t, .dtor = tr__dead_letter_dtor);

void tr__dead_letter_dtor(void *p) {
  tr_dead_letter_t *d = p;
  if (d->msg) tr__msg_release(d->msg);
}

/* m could not be delivered to a (NULL: to a handle) for `reason`: it is
 * counted, and returned to its sender if the sender asked for that. */
static void dead_letter(tr_runtime_t *rt, tr__actor_t *a, tr_msg_t *m,
                        int reason) {
  atomic_fetch_add_explicit(&rt->dead_letters, 1, memory_order_relaxed);
  if ((m->flags & TR_SEND_RETURN_DEAD) && m->sender && !m->tag) {
    tr_dead_letter_t *d = tr_msg_new(&tr_dead_letter_t__type);
    if (d) {
      m->flags &= ~TR_SEND_RETURN_DEAD; /* never bounce twice */
      d->to = a ? tr__self_ref(a) : TR_REF_NULL;
      d->reason = reason;
      d->msg = m;
      tr_ref_t back = {m->sender};
      if (tr__send_raw(tr__current_worker(rt), NULL, back, &d->hdr, 0) == 0)
        return;
      d->msg = NULL;
      tr__msg_release(&d->hdr);
    }
  }
  tr__msg_release(m);
}

/* Drops a list of undelivered messages of a (stopped with reason), or of
 * a handle when a is NULL: link and monitor requests are answered, the
 * rest are dead letters. */
static void queue_drain(tr_runtime_t *rt, tr_msg_t *m, tr__actor_t *a,
                        int reason) {
  while (m) {
    tr_msg_t *nx = m->next;
    if (a && (m->flags & TR__MSGF_COUNTED)) {
      const tr_behavior_t *b = atomic_load_explicit(&a->behavior, memory_order_relaxed);
      atomic_fetch_sub_explicit(&a->mbox[mbox_of(b, a, m)].count, 1,
                                memory_order_seq_cst);
    }
    if (!a || !tr__drain_sys(a, m, reason)) dead_letter(rt, a, m, TR_ENOACTOR);
    m = nx;
  }
}

void tr__drain_dead(tr_runtime_t *rt, tr_msg_t *list) {
  queue_drain(rt, list, NULL, 0);
}

/* Stops actor a for good: on_stop, then the generation turns even (new
 * sends fail), the inbox closes, and everything still queued is a dead
 * letter (requests among them get TR_ENOREPLY replies). */
static void batch_flush(tr_ctx_t *ctx);

void tr__finalize(tr_ctx_t *ctx, tr__actor_t *a, int reason, int run_stop) {
  tr_runtime_t *rt = a->rt;
  batch_flush(ctx);
  const tr_behavior_t *b = atomic_load_explicit(&a->behavior, memory_order_relaxed);
  if (run_stop && b->on_stop) b->on_stop(ctx, a->state, reason);
  if (a->io_owned) {
    const tr__io_hooks_t *io = atomic_load(&rt->io_hooks);
    if (io && io->actor_stop) io->actor_stop(io->arg, a);
    a->io_owned = NULL;
  }
  if (a->ext) tr__ext_on_stop(ctx, a, reason);
  atomic_store_explicit(&a->gen, atomic_load_explicit(&a->gen, memory_order_relaxed) + 1,
                        memory_order_seq_cst);
  tr_msg_t *in = tr__inbox_close(&a->inbox);
  queue_drain(rt, a->sys_head, a, reason);
  queue_drain(rt, a->data_head, a, reason);
  a->sys_head = a->sys_tail = a->data_head = a->data_tail = NULL;
  /* the closed chain is newest first: order does not matter here */
  queue_drain(rt, in, a, reason);
  overload_clear(ctx->w, a);
  for (uint32_t i = 0; i < a->nmbox; i++) {
    tr__mbox_t *mb = &a->mbox[i];
    queue_drain(rt, mb->head, a, reason);
    mb->head = mb->tail = NULL;
    mb->len = 0;
    /* senders parked on a full mailbox of ours go on (their sends to us
     * now fail) */
    atomic_store_explicit(&mb->closed, 1, memory_order_seq_cst);
    unmute_all(ctx->w, mb);
  }
  tr__pending_free(a);
  tr__ext_free(a);
  if (a->state) tr__free(a->state, b->state_size);
  a->state = NULL;
  a->qlen = 0;
  atomic_store_explicit(&a->kind, TR__KIND_FREE, memory_order_relaxed);
  tr__worker_t *cw = tr__current_worker(rt);
  if (cw) tr__count_release(&cw->st.stopped);
  else atomic_fetch_add_explicit(&rt->stopped, 1, memory_order_relaxed);
  tr__slot_retire(ctx->w, a);
}

int tr_actor_stop(tr_ref_t ref, int reason) {
  /* An actor stopping itself from its handler or init: a flag the run loop
   * (or spawn) reads when the handler returns, nothing to allocate. */
  tr_ctx_t *c = tr__current_ctx();
  if (c && c->a && tr__self_ref(c->a).id == ref.id) {
    c->stop_req = 1;
    c->stop_reason = reason;
    return 0;
  }
  tr__stop_msg_t *m = tr_msg_new(&tr__stop_type);
  if (!m) return TR_ENOMEM;
  m->reason = reason;
  int rc = tr__send_raw(NULL, NULL, ref, &m->hdr, 0);
  if (rc) tr__msg_release(&m->hdr);
  return rc;
}

/* After shutdown has joined the workers: stop every remaining actor. */
void tr__actor_stop_all(tr_runtime_t *rt) {
  struct tr_ctx ctx = {.rt = rt};
  for (uint32_t c = 0; c < rt->nchunks; c++) {
    tr__actor_t *chunk = atomic_load_explicit(&rt->chunks[c], memory_order_relaxed);
    for (uint32_t i = 0; i < TR__CHUNK_SLOTS; i++) {
      tr__actor_t *a = &chunk[i];
      if (atomic_load_explicit(&a->kind, memory_order_relaxed) != TR__KIND_ACTOR)
        continue;
      ctx.a = a;
      ctx.cur = NULL;
      tr__finalize(&ctx, a, TR_EXIT_SHUTDOWN, 1);
    }
  }
}

int tr_actor_alive(tr_ref_t ref) {
  tr_runtime_t *rt = tr__ref_runtime(ref.id);
  if (!rt) return 0;
  tr__foreign_enter(rt);
  int alive = tr__lookup(ref.id) != NULL;
  tr__foreign_exit(rt);
  return alive;
}

/* ---- send ----------------------------------------------------------------- */

/* The calling actor's send hit backpressure: it parks on the receiver's
 * mailbox until that drains below its low-water mark. Last thing the run
 * does with self: once on the list, another worker may run it. */
static void mute_self(tr__worker_t *w, tr__actor_t *self, tr__actor_t *recv,
                      unsigned idx) {
  _Atomic(tr__actor_t *) *list;
  if (idx == TR__MUTE_OVERLOAD) {
    list = &recv->muted;
  } else {
    list = &recv->mbox[idx].muted;
  }
  tr__actor_t *h = atomic_load_explicit(list, memory_order_relaxed);
  do {
    self->link = h;
  } while (!atomic_compare_exchange_weak_explicit(list, &h, self,
                                                  memory_order_seq_cst,
                                                  memory_order_relaxed));
  /* the receiver may have drained (or stopped) before we got on the list */
  if (idx == TR__MUTE_OVERLOAD) {
    if (!atomic_load_explicit(&recv->overloaded, memory_order_seq_cst))
      unmute_list(w, list);
    return;
  }
  tr__mbox_t *mb = &recv->mbox[idx];
  const tr_behavior_t *b = atomic_load_explicit(&recv->behavior, memory_order_relaxed);
  if (atomic_load_explicit(&mb->count, memory_order_seq_cst) < low_water(&b->mailboxes[idx]) ||
      atomic_load_explicit(&mb->closed, memory_order_seq_cst))
    unmute_list(w, list);
}

/* Pushes the running handler's batch (see struct tr_ctx). */
static void batch_flush(tr_ctx_t *ctx) {
  tr__actor_t *a = ctx->batch_to;
  if (!a) return;
  tr_msg_t *newest = ctx->batch_head, *oldest = ctx->batch_tail;
  ctx->batch_to = NULL;
  ctx->batch_head = ctx->batch_tail = NULL;
  ctx->batch_n = 0;
  int r = tr__inbox_push_chain(&a->inbox, newest, oldest);
  if (tr__unlikely(r < 0)) {
    /* it stopped since the sends: as if it had stopped with them queued */
    oldest->next = NULL;
    while (newest) {
      tr_msg_t *nx = newest->next;
      newest->next = NULL;
      dead_letter(a->rt, a, newest, TR_ENOACTOR);
      newest = nx;
    }
    return;
  }
  if (r) tr__schedule(ctx->w, a);
  if (tr__unlikely(atomic_load_explicit(&a->overloaded, memory_order_relaxed)) &&
      ctx->a && ctx->a != a && !ctx->mute_on &&
      !atomic_load_explicit(&ctx->a->overloaded, memory_order_relaxed)) {
    ctx->mute_on = a;
    ctx->mute_box = TR__MUTE_OVERLOAD;
  }
}

#define TR__BATCH_MAX 256

static inline int push_to(tr__worker_t *w, tr_ctx_t *sctx, tr__actor_t *a,
                          tr_msg_t *m, int check) {
  tr__mbox_t *counted = NULL;
  /* anything else this worker pushes to a goes after its batched sends */
  if (tr__unlikely(w && w->ctx.batch_to == a)) batch_flush(&w->ctx);
  if (check && atomic_load_explicit(&a->kind, memory_order_relaxed) == TR__KIND_ACTOR) {
    const tr_behavior_t *b = atomic_load_explicit(&a->behavior, memory_order_relaxed);
    const tr_handler_t *e = find_entry(b, m->type);
    if (!e && !b->fallback) return TR_EBADMSG;
    unsigned idx;
    if (tr__unlikely(b->nmailboxes &&
                     b->mailboxes[idx = mbox_of_type(b, m->type)].capacity)) {
      const tr_mailbox_spec_t *sp = &b->mailboxes[idx];
      tr__mbox_t *mb = &a->mbox[idx];
      uint64_t c = atomic_fetch_add_explicit(&mb->count, 1, memory_order_seq_cst);
      if (c >= sp->capacity) {
        if (sp->overflow == TR_OVERFLOW_FAIL ||
            (sp->overflow == TR_OVERFLOW_BLOCK &&
             !(sctx && sctx->a && sctx->w && !sctx->mute_on))) {
          atomic_fetch_sub_explicit(&mb->count, 1, memory_order_seq_cst);
          return TR_EAGAIN;
        }
        if (sp->overflow == TR_OVERFLOW_BLOCK) {
          sctx->mute_on = a;
          sctx->mute_box = idx;
        }
      }
      m->flags |= TR__MSGF_COUNTED;
      counted = mb;
    }
  }
  int r = tr__inbox_push(&a->inbox, m);
  if (tr__unlikely(r < 0)) {
    if (counted) {
      atomic_fetch_sub_explicit(&counted->count, 1, memory_order_seq_cst);
      m->flags &= ~TR__MSGF_COUNTED;
      if (sctx && sctx->mute_on == a) sctx->mute_on = NULL;
    }
    return TR_ENOACTOR;
  }
  if (r) {
    if (atomic_load_explicit(&a->kind, memory_order_relaxed) == TR__KIND_HANDLE)
      tr__handle_signal(a);
    else
      tr__schedule(w, a);
  } else if (tr__unlikely(atomic_load_explicit(&a->overloaded,
                                               memory_order_relaxed)) &&
             sctx && sctx->a && sctx->w && sctx->a != a && !sctx->mute_on &&
             !atomic_load_explicit(&sctx->a->overloaded, memory_order_relaxed)) {
    /* the receiver is behind: this sender waits until it catches up */
    sctx->mute_on = a;
    sctx->mute_box = TR__MUTE_OVERLOAD;
  }
  return 0;
}

int tr__send_raw(tr__worker_t *w, tr_ctx_t *sctx, tr_ref_t to, tr_msg_t *m,
                 int check) {
  if (tr__likely(w != NULL)) {
    tr__actor_t *a = tr__lookup(to.id);
    if (tr__unlikely(!a)) return TR_ENOACTOR;
    return push_to(w, sctx, a, m, check);
  }
  tr_runtime_t *rt = tr__ref_runtime(to.id);
  if (!rt) return TR_ENOACTOR;
  tr__foreign_enter(rt);
  tr__actor_t *a = tr__lookup(to.id);
  int rc = a ? push_to(NULL, NULL, a, m, check) : TR_ENOACTOR;
  tr__foreign_exit(rt);
  return rc;
}

/* The ownership rule of every call that takes a message: it is consumed,
 * handed over on success and freed here on failure (a request among them
 * gets its TR_ENOREPLY, as any request dropped unanswered), unless the
 * caller asked to keep it. The message a handler is handling stays with
 * the runtime, which frees it after the handler. */
int tr__msg_drop_failed(tr_ctx_t *ctx, void *msg, int rc) {
  tr_msg_t *m = msg;
  if (!m || !m->type) return rc;
  if (ctx && m == ctx->cur && ctx->cur_owned) return rc;
  tr__ctx_publish(ctx, m);
  tr_msg_free(m);
  return rc;
}

/* Inlined into both public sends: the send is the hottest path, and an
 * extra call frame for the ownership wrapper showed in pingpong. */
static inline __attribute__((always_inline)) int send_ex(tr_ctx_t *ctx,
                                                         tr_ref_t to,
                                                         void *msg,
                                                         unsigned flags);

int tr_send(tr_ctx_t *ctx, tr_ref_t to, void *msg) {
  int rc = send_ex(ctx, to, msg, 0);
  return tr__unlikely(rc != 0) ? tr__msg_drop_failed(ctx, msg, rc) : 0;
}

int tr_send_ex(tr_ctx_t *ctx, tr_ref_t to, void *msg, unsigned flags) {
  int rc = send_ex(ctx, to, msg, flags);
  if (tr__unlikely(rc != 0) && !(flags & TR_SEND_KEEP))
    return tr__msg_drop_failed(ctx, msg, rc);
  return rc;
}

static inline __attribute__((always_inline)) int send_ex(tr_ctx_t *ctx,
                                                         tr_ref_t to,
                                                         void *msg,
                                                         unsigned flags) {
  tr_msg_t *m = msg;
  if (tr__unlikely(!m || !m->type)) return TR_EINVAL;
  TR__MSG_CHECK_SEND(m);
  tr__ctx_publish(ctx, m);
  m->flags = flags & TR_SEND_RETURN_DEAD;
  tr__worker_t *w;
  if (ctx) {
    w = ctx->w;
    /* A request keeps its asker as sender when forwarded: the reply goes
     * straight back to whoever asked. */
    if (!m->tag) m->sender = tr__self_ref(ctx->a).id;
  } else {
    w = NULL;
    if (!m->tag) m->sender = 0;
  }
  if (tr__likely(w && ctx == &w->ctx && ctx->a)) {
    /* a send is charged to the run's budget like a message handled: a
     * handler that sends a thousand messages has used up its turn (as an
     * Erlang process pays reductions for its sends), so its receivers
     * get to run before it goes again */
    ctx->charge++;
    /* inside a handler: batch sends to a plain actor */
    if (ctx->batch_to && to.id == ctx->batch_ref && m->type == ctx->batch_type) {
      /* same receiver and type as the last send: already checked */
      m->next = ctx->batch_head;
      ctx->batch_head = m;
      if (++ctx->batch_n >= TR__BATCH_MAX) batch_flush(ctx);
      if (m == ctx->cur) tr__ctx_disown(ctx);
      return 0;
    }
    tr__actor_t *a = tr__lookup(to.id);
    if (tr__unlikely(!a)) return TR_ENOACTOR;
    if (tr__likely(atomic_load_explicit(&a->kind, memory_order_relaxed) ==
                       TR__KIND_ACTOR &&
                   !a->nmbox)) {
      const tr_behavior_t *b =
          atomic_load_explicit(&a->behavior, memory_order_relaxed);
      if (!find_entry(b, m->type) && !b->fallback) return TR_EBADMSG;
      if (ctx->batch_to != a) {
        batch_flush(ctx);
        ctx->batch_to = a;
        ctx->batch_tail = m;
      }
      ctx->batch_ref = to.id;
      ctx->batch_type = m->type;
      m->next = ctx->batch_head;
      ctx->batch_head = m;
      if (++ctx->batch_n >= TR__BATCH_MAX) batch_flush(ctx);
      if (m == ctx->cur) tr__ctx_disown(ctx);
      return 0;
    }
  }
  int rc = tr__send_raw(w, ctx, to, m, 1);
  if (rc == 0 && ctx && m == ctx->cur) tr__ctx_disown(ctx);
  return rc;
}

/* ---- ask / reply ----------------------------------------------------------- */

int tr__pending_register(tr__actor_t *a, tr_reply_fn k, void *cookie,
                         uint64_t *tag) {
  uint64_t t = ++a->next_tag & ~TR__TAG_REPLY;
  if (t == 0 || t == (TR__PEND_DEL & ~TR__TAG_REPLY)) t = a->next_tag = 1;
  int rc = pending_put(a, t, k, cookie);
  if (rc == 0) *tag = t;
  return rc;
}

static int ask(tr_ctx_t *ctx, tr_ref_t to, void *req, tr_reply_fn k,
               void *cookie);

int tr_ask(tr_ctx_t *ctx, tr_ref_t to, void *req, tr_reply_fn k, void *cookie) {
  int rc = ask(ctx, to, req, k, cookie);
  return rc ? tr__msg_drop_failed(ctx, req, rc) : 0;
}

static int ask(tr_ctx_t *ctx, tr_ref_t to, void *req, tr_reply_fn k,
               void *cookie) {
  tr_msg_t *m = req;
  if (!ctx || !m || !m->type || !k) return TR_EINVAL;
  tr__actor_t *a = ctx->a;
  uint64_t tag;
  int rc = tr__pending_register(a, k, cookie, &tag);
  if (rc) return rc;
  uint64_t old_tag = m->tag, old_sender = m->sender;
  m->tag = tag;
  m->sender = tr__self_ref(a).id;
  m->flags = 0;
  tr__ctx_publish(ctx, m);
  rc = tr__send_raw(ctx->w, ctx, to, m, 1);
  if (rc) {
    tr__pend_entry_t e;
    pending_take(a, tag, &e);
    m->tag = old_tag;
    m->sender = old_sender;
    return rc;
  }
  if (m == ctx->cur) tr__ctx_disown(ctx);
  return 0;
}

static int reply_common(tr_ctx_t *ctx, tr_msg_t *req, tr_msg_t *rep) {
  if (!req || !rep || !rep->type) return TR_EINVAL;
  if (!req->tag || (req->tag & TR__TAG_REPLY) || !req->sender)
    return TR_EINVAL;
  tr_ref_t to = {req->sender};
  uint64_t tag = req->tag;
  rep->tag = tag | TR__TAG_REPLY;
  rep->sender = ctx ? tr__self_ref(ctx->a).id : 0;
  tr__ctx_publish(ctx, rep);
  int rc = tr__send_raw(ctx ? ctx->w : NULL, NULL, to, rep, 0);
  if (rc) {
    rep->tag = 0;
    /* the asker is gone: the request counts as answered */
    req->tag = 0;
    return rc;
  }
  req->tag = 0; /* answered: a second reply fails, no TR_ENOREPLY later */
  if (ctx && rep == ctx->cur) tr__ctx_disown(ctx);
  return 0;
}

static int reply_cur(tr_ctx_t *ctx, void *reply);

int tr_reply(tr_ctx_t *ctx, void *reply) {
  int rc = reply_cur(ctx, reply);
  return rc ? tr__msg_drop_failed(ctx, reply, rc) : 0;
}

static int reply_cur(tr_ctx_t *ctx, void *reply) {
  if (!ctx || !ctx->cur) return TR_EINVAL;
  if (reply == ctx->cur) {
    /* replying with the request itself: it becomes the reply */
    tr_msg_t *m = ctx->cur;
    if (!m->tag || (m->tag & TR__TAG_REPLY) || !m->sender) return TR_EINVAL;
    tr_ref_t to = {m->sender};
    uint64_t tag = m->tag;
    m->tag = tag | TR__TAG_REPLY;
    m->sender = tr__self_ref(ctx->a).id;
    tr__ctx_publish(ctx, m);
    int rc = tr__send_raw(ctx->w, NULL, to, m, 0);
    if (rc) {
      m->tag = 0;
      return rc;
    }
    tr__ctx_disown(ctx);
    return 0;
  }
  return reply_common(ctx, ctx->cur, reply);
}

int tr_reply_to(tr_ctx_t *ctx, void *req, void *reply) {
  int rc = reply_common(ctx, req, reply);
  if (rc == 0 || rc == TR_ENOACTOR) {
    if (ctx && req == ctx->cur) tr__ctx_disown(ctx);
    tr__msg_release(req);
  }
  return rc ? tr__msg_drop_failed(ctx, reply, rc) : 0;
}

/* ---- the run loop ----------------------------------------------------------- */

tr_ref_t tr_ctx_self(const tr_ctx_t *ctx) { return tr__self_ref(ctx->a); }
tr_runtime_t *tr_ctx_runtime(const tr_ctx_t *ctx) { return ctx->rt; }
void tr_ctx_take(tr_ctx_t *ctx) { tr__ctx_disown(ctx); }

static void dead_letter(tr_runtime_t *rt, tr__actor_t *a, tr_msg_t *m,
                        int reason);

/* Moves newly arrived mail into the private queues: system messages to
 * their own queue, data messages to their mailbox. */
static inline void take_inbox(tr__actor_t *a) {
  tr_msg_t *tail;
  uint64_t n;
  uint32_t tflags;
  tr_msg_t *m = tr__inbox_take(&a->inbox, &tail, &n, &tflags);
  if (!m) return;
  if (tr__likely(!a->nmbox && !(tflags & TR_MSG_SYSTEM))) {
    /* fast path: no system message in the batch */
    if (a->data_tail) a->data_tail->next = m;
    else a->data_head = m;
    a->data_tail = tail;
    goto count;
  }
  const tr_behavior_t *sb = atomic_load_explicit(&a->behavior, memory_order_relaxed);
  while (m) {
    tr_msg_t *nx = m->next;
    m->next = NULL;
    if (m->type->flags & TR_MSG_SYSTEM) {
      if (a->sys_tail) a->sys_tail->next = m;
      else a->sys_head = m;
      a->sys_tail = m;
    } else if (a->nmbox) {
      tr__mbox_t *mb = &a->mbox[mbox_of(sb, a, m)];
      if (mb->tail) mb->tail->next = m;
      else mb->head = m;
      mb->tail = m;
      mb->len++;
    } else {
      if (a->data_tail) a->data_tail->next = m;
      else a->data_head = m;
      a->data_tail = m;
    }
    m = nx;
  }
count:
  a->qlen += n;
  if (tr__unlikely(a->nmbox)) {
    /* drop-oldest mailboxes shed what exceeds their capacity */
    const tr_behavior_t *b = atomic_load_explicit(&a->behavior, memory_order_relaxed);
    for (uint32_t i = 0; i < a->nmbox; i++) {
      const tr_mailbox_spec_t *sp = &b->mailboxes[i];
      tr__mbox_t *mb = &a->mbox[i];
      while (sp->capacity && sp->overflow == TR_OVERFLOW_DROP_OLDEST &&
             mb->len > sp->capacity) {
        /* the oldest that is not a token: a token is a subscription
         * itself (its values lag instead), never dropped */
        tr_msg_t *prev = NULL, *old = mb->head;
        while (old && tr__unlikely(old->type->flags & TR__MSG_EXPAND)) {
          prev = old;
          old = old->next;
        }
        if (!old) break; /* only tokens left */
        if (prev) prev->next = old->next;
        else mb->head = old->next;
        if (mb->tail == old) mb->tail = prev;
        mb->len--;
        a->qlen--;
        if (old->flags & TR__MSGF_COUNTED)
          atomic_fetch_sub_explicit(&mb->count, 1, memory_order_seq_cst);
        old->next = NULL;
        dead_letter(a->rt, a, old, TR_ENOSPC);
      }
    }
  }
  atomic_store_explicit(&a->depth, a->qlen, memory_order_relaxed);
  if (a->qlen > atomic_load_explicit(&a->depth_hwm, memory_order_relaxed))
    atomic_store_explicit(&a->depth_hwm, a->qlen, memory_order_relaxed);
}

/* Takes the next message of mailbox i and settles its bound. */
static inline tr_msg_t *mbox_pop(tr__worker_t *w, tr__actor_t *a, uint32_t i) {
  tr__mbox_t *mb = &a->mbox[i];
  tr_msg_t *m = mb->head;
  if (!(mb->head = m->next)) mb->tail = NULL;
  mb->len--;
  if (m->flags & TR__MSGF_COUNTED) {
    m->flags &= ~TR__MSGF_COUNTED;
    uint64_t c = atomic_fetch_sub_explicit(&mb->count, 1, memory_order_seq_cst) - 1;
    const tr_behavior_t *b = atomic_load_explicit(&a->behavior, memory_order_relaxed);
    const tr_mailbox_spec_t *sp = &b->mailboxes[i];
    if (sp->overflow == TR_OVERFLOW_BLOCK && c < low_water(sp) &&
        atomic_load_explicit(&mb->muted, memory_order_seq_cst))
      unmute_all(w, mb);
  }
  return m;
}

static inline tr_msg_t *pop_private(tr__worker_t *w, tr__actor_t *a) {
  tr_msg_t *m = a->sys_head;
  if (m) {
    if (!(a->sys_head = m->next)) a->sys_tail = NULL;
  } else if (tr__likely(!a->nmbox)) {
    if (!(m = a->data_head)) return NULL;
    if (!(a->data_head = m->next)) a->data_tail = NULL;
  } else {
    const tr_behavior_t *b = atomic_load_explicit(&a->behavior, memory_order_relaxed);
    if (b->select == TR_SELECT_WEIGHTED) {
      /* rounds: mailbox mb_cur may take mb_credit more before the next */
      for (uint32_t k = 0; k <= a->nmbox; k++) {
        uint32_t i = a->mb_cur;
        if (a->mbox[i].head && a->mb_credit > 0) {
          a->mb_credit--;
          m = mbox_pop(w, a, i);
          break;
        }
        a->mb_cur = (uint16_t)((i + 1) % a->nmbox);
        unsigned wt = b->mailboxes[a->mb_cur].weight;
        a->mb_credit = (uint16_t)(wt == 0 ? 1 : wt > 65535 ? 65535 : wt);
      }
    } else {
      for (uint32_t i = 0; i < a->nmbox; i++)
        if (a->mbox[i].head) {
          m = mbox_pop(w, a, i);
          break;
        }
    }
    if (!m) return NULL;
  }
  a->qlen--;
  return m;
}

/* Hands a reply to its continuation. Returns what the continuation
 * returned, which counts as a handler's result (negative: the actor
 * fails). */
static int handle_reply(tr_ctx_t *ctx, tr__actor_t *a, tr_msg_t *m) {
  tr__pend_entry_t e;
  int rc;
  if (!pending_take(a, m->tag & ~TR__TAG_REPLY, &e)) {
    /* nobody waits for it any more */
    atomic_fetch_add_explicit(&a->rt->dead_letters, 1, memory_order_relaxed);
    return 0;
  }
  if (m->type == &tr__noreply_type) {
    rc = e.k(ctx, a->state, ((tr__noreply_msg_t *)m)->status, NULL, e.cookie);
  } else if (tr__unlikely(tr__is_join_msg(m))) {
    /* a join completion: the result is what the continuation owns */
    struct {
      tr_msg_t hdr;
      int reason;
      tr_msg_t *result;
    } *j = (void *)m;
    tr_msg_t *res = j->result;
    j->result = NULL;
    ctx->cur = res;
    ctx->cur_owned = res != NULL;
    rc = e.k(ctx, a->state, j->reason, res, e.cookie);
    if (ctx->cur_owned && res) tr__msg_release(res);
    ctx->cur = m;
    ctx->cur_owned = 1;
  } else {
    m->tag = 0;
    rc = e.k(ctx, a->state, 0, m, e.cookie);
  }
  return rc;
}

/* Calls a's handler for m (ctx->cur and cur_owned set by the caller); a
 * type without one is a dead letter. */
static inline int call_handler(tr_ctx_t *ctx, tr__actor_t *a,
                               const tr_behavior_t *b, tr_msg_t *m) {
  tr_handler_fn fn = find_handler(b, m->type);
  if (tr__likely(fn != NULL)) return fn(ctx, a->state, m);
  atomic_fetch_add_explicit(&a->rt->dead_letters, 1, memory_order_relaxed);
  return 0;
}

int tr__deliver(tr_ctx_t *ctx, tr__actor_t *a, tr_msg_t *m) {
  const tr_behavior_t *b = atomic_load_explicit(&a->behavior, memory_order_relaxed);
  tr_msg_t *saved = ctx->cur;
  int saved_owned = ctx->cur_owned;
  ctx->cur = m;
  ctx->cur_owned = 1;
  int rc = call_handler(ctx, a, b, m);
  if (ctx->cur_owned) tr__msg_release(m);
  ctx->cur = saved;
  ctx->cur_owned = saved_owned;
  return rc;
}

int tr__dispatch_current(tr_ctx_t *ctx, tr_msg_t *m) {
  tr__actor_t *a = ctx->a;
  ctx->cur = m;
  ctx->cur_owned = 1;
  int rc = call_handler(
      ctx, a, atomic_load_explicit(&a->behavior, memory_order_relaxed), m);
  batch_flush(ctx);
  return rc;
}

/* Runs one batch of actor a on worker w: until `budget` is spent by the
 * messages handled and the messages its handlers sent. */
/* Debug builds check that one worker at a time runs an actor: a run owns
 * it from its start until it hands it away (idle, rescheduled, muted,
 * stopped), and running_ says so. */
#ifdef TR_DEBUG
#define RUN_OWN(a)                                                           \
  TR__ASSERT(!__atomic_exchange_n(&(a)->running_, 1, __ATOMIC_ACQ_REL),      \
             "actor %s run by two workers at once",                          \
             atomic_load_explicit(&(a)->behavior, memory_order_relaxed)->name)
#define RUN_DROP(a) __atomic_store_n(&(a)->running_, 0, __ATOMIC_RELEASE)
#else
#define RUN_OWN(a) ((void)0)
#define RUN_DROP(a) ((void)0)
#endif

void tr__run_actor(tr__worker_t *w, tr__actor_t *a) {
  tr_ctx_t *ctx = &w->ctx;
  TR__ASSERT(ctx->a == NULL, "a worker started an actor inside another's run");
  RUN_OWN(a);
  const tr_behavior_t *b = atomic_load_explicit(&a->behavior, memory_order_relaxed);
  unsigned budget = w->rt->cfg.budget, n = 0;
  ctx->charge = 0;
  ctx->a = a;
  take_inbox(a);
  for (;;) {
    tr_msg_t *m = pop_private(w, a);
    if (!m) {
      if (tr__unlikely(atomic_load_explicit(&a->overloaded, memory_order_relaxed)))
        overload_clear(w, a);
      /* once idle, the actor may run elsewhere: touch nothing after */
      atomic_store_explicit(&a->depth, 0, memory_order_relaxed);
      RUN_DROP(a);
      if (tr__inbox_try_idle(&a->inbox)) break;
      RUN_OWN(a); /* not idle: nobody else may have scheduled it */
      take_inbox(a);
      continue;
    }
    ctx->cur = m;
    ctx->cur_owned = 1;
    ctx->stop_req = 0;
    int rc = 0;
    if (tr__unlikely(m->tag & TR__TAG_REPLY)) {
      rc = handle_reply(ctx, a, m);
    } else if (tr__unlikely((m->type->flags & TR_MSG_SYSTEM) &&
                            tr__is_internal_sys(m->type))) {
      ctx->cur = NULL;
      n++;
      int gone = tr__sys_dispatch(ctx, a, m);
      batch_flush(ctx);
      ctx->mute_on = NULL; /* system work never parks the actor */
      if (gone) {
        RUN_DROP(a);
        break;
      }
      TR__STAT_ADD(a->handled, 1);
      goto next;
    } else if (tr__unlikely(m->type->flags & TR__MSG_EXPAND)) {
      /* several handler calls, each counted against the budget (the
       * token itself is counted by the n++ below) */
      unsigned used = 0;
      unsigned spent = n + ctx->charge;
      rc = tr__expand_run(ctx, m, budget > spent ? budget - spent : 1, &used);
      if (used > 1) {
        n += used - 1;
        TR__STAT_ADD(a->handled, used - 1);
      }
    } else {
      rc = call_handler(ctx, a, b, m);
    }
    if (ctx->cur_owned) tr__msg_release(m);
    ctx->cur = NULL;
    n++;
    TR__STAT_ADD(a->handled, 1);
    batch_flush(ctx);
    if (tr__unlikely(rc < 0 || ctx->stop_req)) {
      ctx->mute_on = NULL;
      RUN_DROP(a);
      tr__finalize(ctx, a, rc < 0 ? rc : ctx->stop_reason, 1);
      break;
    }
    if (tr__unlikely(ctx->mute_on != NULL)) {
      /* backpressure: off the CPU until the receiver drains */
      tr__actor_t *recv = ctx->mute_on;
      ctx->mute_on = NULL;
      atomic_store_explicit(&a->depth, a->qlen, memory_order_relaxed);
      RUN_DROP(a);
      mute_self(w, a, recv, ctx->mute_box);
      break;
    }
  next:
    if (tr__unlikely(n + ctx->charge >= budget)) {
      atomic_store_explicit(&a->depth, a->qlen, memory_order_relaxed);
      if (a->qlen >= TR__OVERLOAD_QLEN) {
        if (!atomic_load_explicit(&a->overloaded, memory_order_relaxed))
          atomic_store_explicit(&a->overloaded, 1, memory_order_seq_cst);
      } else if (a->qlen < TR__OVERLOAD_QLEN / 2 &&
                 atomic_load_explicit(&a->overloaded, memory_order_relaxed)) {
        overload_clear(w, a);
      }
      RUN_DROP(a);
      if (a->qlen || !tr__inbox_try_idle(&a->inbox)) tr__reschedule(w, a);
      break;
    }
  }
  batch_flush(ctx); /* nothing may stay batched past the run */
  TR__STAT_ADD(w->st.handled, n);
  TR__STAT_ADD(w->st.runs, 1);
  ctx->a = NULL;
}

/* ---- counters --------------------------------------------------------------- */

int tr_actor_stats(tr_ref_t ref, tr_actor_stats_t *out) {
  if (!out) return TR_EINVAL;
  tr_runtime_t *rt = tr__ref_runtime(ref.id);
  if (!rt) return TR_ENOACTOR;
  tr__foreign_enter(rt);
  tr__actor_t *a = tr__lookup(ref.id);
  int rc = TR_ENOACTOR;
  if (a && atomic_load_explicit(&a->kind, memory_order_relaxed) == TR__KIND_ACTOR) {
    const tr_behavior_t *b = atomic_load_explicit(&a->behavior, memory_order_relaxed);
    out->name = b->name;
    out->priority = tr__prio_public(a->prio);
    out->handled = TR__LOAD(a->handled);
    out->depth = TR__LOAD(a->depth);
    out->depth_hwm = TR__LOAD(a->depth_hwm);
    rc = 0;
  }
  tr__foreign_exit(rt);
  return rc;
}
