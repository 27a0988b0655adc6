/* SPDX-License-Identifier: MIT */
/*
 * Blocking handles: an address for code outside the runtime (main, other
 * threads). A handle occupies an actor slot, so it has a ref and an inbox
 * like any actor, but instead of being scheduled when mail arrives it
 * wakes the thread blocked in tr_handle_receive or tr_handle_call.
 */
#include "internal.h"
#include "mem.h"
#include "park.h"

#include <stdlib.h>

struct tr_handle {
  tr__actor_t *a;
  tr_runtime_t *rt;
  tr_msg_t *head, *tail; /* received, not yet handed out */
  uint64_t next_tag;
  _Atomic uint32_t signal;
  uint32_t live; /* HANDLE_LIVE, then HANDLE_FREED (checked in debug) */
};

/* Kept last in the struct: the allocator may reuse the first words of a
 * freed block for its own lists, so a second tr_handle_free still finds
 * HANDLE_FREED there unless the block was handed out again. */
#define HANDLE_LIVE 0x68616e64u
#define HANDLE_FREED 0xf7eeda7au
#define CHECK_HANDLE(h)                                                      \
  TR__ASSERT((h)->live == HANDLE_LIVE, "%s",                                 \
             (h)->live == HANDLE_FREED ? "handle used after tr_handle_free"  \
                                       : "not a handle")

static const tr_behavior_t handle_behavior = {.name = "tr.handle"};

void tr__handle_signal(tr__actor_t *a) {
  struct tr_handle *h = a->handle;
  atomic_store_explicit(&h->signal, 1, memory_order_release);
  tr__futex_wake(&h->signal, 1);
}

int tr_handle_new(tr_runtime_t *rt, tr_handle_t **out) {
  if (!rt || !out) return TR_EINVAL;
  struct tr_handle *h = calloc(1, sizeof(*h));
  if (!h) return TR_ENOMEM;
  tr__actor_t *a = tr__slot_alloc(rt, NULL);
  if (!a) {
    free(h);
    return TR_ENOMEM;
  }
  h->a = a;
  h->rt = rt;
  h->live = HANDLE_LIVE;
  a->handle = h;
  a->state = NULL;
  a->pending = NULL;
  a->sys_head = a->sys_tail = a->data_head = a->data_tail = NULL;
  a->qlen = 0;
  atomic_store_explicit(&a->behavior, &handle_behavior, memory_order_relaxed);
  atomic_store_explicit(&a->kind, TR__KIND_HANDLE, memory_order_relaxed);
  /* busy until a receive waits: only a waiting thread needs a signal */
  atomic_store_explicit(&a->inbox, NULL, memory_order_relaxed);
  atomic_store_explicit(&a->gen, atomic_load_explicit(&a->gen, memory_order_relaxed) + 1,
                        memory_order_release);
  *out = h;
  return 0;
}

tr_ref_t tr_handle_ref(const tr_handle_t *h) { return tr__self_ref(h->a); }

void tr_handle_free(tr_handle_t *h) {
  if (!h) return;
  TR__ASSERT(h->live != HANDLE_FREED, "handle freed twice");
  CHECK_HANDLE(h);
  tr__actor_t *a = h->a;
  atomic_store_explicit(&a->gen, atomic_load_explicit(&a->gen, memory_order_relaxed) + 1,
                        memory_order_seq_cst);
  tr_msg_t *in = tr__inbox_close(&a->inbox);
  tr__drain_dead(h->rt, h->head);
  tr__drain_dead(h->rt, in);
  atomic_store_explicit(&a->kind, TR__KIND_FREE, memory_order_relaxed);
  a->handle = NULL;
  tr__slot_retire(NULL, a);
  /* volatile: a plain store just before free() is optimised away */
  *(volatile uint32_t *)&h->live = HANDLE_FREED;
  free(h);
}

int tr_handle_monitor(tr_handle_t *h, tr_ref_t target, uint64_t *id) {
  if (!h || tr_ref_is_null(target)) return TR_EINVAL;
  return tr__monitor_from(h->rt, tr__self_ref(h->a).id, target, id);
}

int tr_handle_send(tr_handle_t *h, tr_ref_t to, void *msg) {
  tr_msg_t *m = msg;
  if (!m || !m->type) return TR_EINVAL;
  TR__MSG_CHECK_SEND(m);
  if (!h) return tr__msg_drop_failed(NULL, m, TR_EINVAL);
  CHECK_HANDLE(h);
  if (!m->tag) m->sender = tr__self_ref(h->a).id;
  int rc = tr__send_raw(NULL, NULL, to, m, 1);
  return rc ? tr__msg_drop_failed(NULL, m, rc) : 0;
}

/* Moves arrived mail to the handle's private list. */
static void pull(struct tr_handle *h) {
  tr_msg_t *tail;
  uint64_t n;
  uint32_t tflags;
  tr_msg_t *m = tr__inbox_take(&h->a->inbox, &tail, &n, &tflags);
  if (!m) return;
  if (h->tail) h->tail->next = m;
  else h->head = m;
  h->tail = tail;
}

/* Waits until mail arrives or the deadline passes. 0 or TR_ETIMEDOUT. */
static int wait_mail(struct tr_handle *h, uint64_t deadline_ns) {
  atomic_store_explicit(&h->signal, 0, memory_order_relaxed);
  if (!tr__inbox_try_idle(&h->a->inbox)) return 0; /* mail arrived */
  for (;;) {
    if (atomic_load_explicit(&h->signal, memory_order_acquire)) return 0;
    /* a relative futex timeout: CLOCK_MONOTONIC */
    int ms = tr__remaining_ms(deadline_ns);
    if (ms == 0) {
      /* leave idle: a racing push has either signalled or will see the
       * inbox busy once we reclaim it */
      tr_msg_t *idle = TR__INBOX_IDLE;
      atomic_compare_exchange_strong(&h->a->inbox, &idle, NULL);
      return TR_ETIMEDOUT;
    }
    tr__futex_wait(&h->signal, 0, ms);
  }
}

/* Unlinks and returns the first message matching `want` (0: any message
 * that is not a stale reply and, if type is not NULL, is of that type),
 * dropping stale replies on the way: one thread uses a handle at a time,
 * so a reply found while no call waits belongs to a call that timed out.
 * Messages passed over keep their order. Linear in the queued messages. */
static tr_msg_t *pick(struct tr_handle *h, uint64_t want,
                      const tr_msgtype_t *type) {
  tr_msg_t **pp = &h->head, *prev = NULL;
  while (*pp) {
    tr_msg_t *m = *pp;
    int match;
    if (want) match = m->tag == want;
    else match = !(m->tag & TR__TAG_REPLY) && (!type || m->type == type);
    if (match || (!want && (m->tag & TR__TAG_REPLY))) {
      *pp = m->next;
      if (h->tail == m) h->tail = prev;
      m->next = NULL;
      if (match) return m;
      /* a reply to a call that timed out: nobody waits for it */
      atomic_fetch_add_explicit(&h->rt->dead_letters, 1, memory_order_relaxed);
      tr__msg_release(m);
      continue;
    }
    prev = m;
    pp = &m->next;
  }
  return NULL;
}

/* Waits for the first message of `type` (NULL: any) that is not a
 * reply; others stay queued in order. */
static int receive(struct tr_handle *h, const tr_msgtype_t *type,
                   tr_duration_t timeout_ms, void **msg) {
  if (timeout_ms != 0) TR__ASSERT_MAY_BLOCK();
  uint64_t dl = tr__deadline_ns(timeout_ms);
  for (;;) {
    pull(h);
    tr_msg_t *m = pick(h, 0, type);
    if (m) {
      *msg = m;
      return 0;
    }
    int rc = wait_mail(h, dl);
    if (rc) {
      pull(h);
      if ((m = pick(h, 0, type))) {
        *msg = m;
        return 0;
      }
      return rc;
    }
  }
}

int tr_handle_receive(tr_handle_t *h, tr_duration_t timeout_ms, void **msg) {
  if (!h || !msg || TR__DURATION_BAD(timeout_ms)) return TR_EINVAL;
  CHECK_HANDLE(h);
  return receive(h, NULL, timeout_ms, msg);
}

int tr_handle_receive_type(tr_handle_t *h, const tr_msgtype_t *type,
                           tr_duration_t timeout_ms, void **msg) {
  if (!h || !type || !msg || TR__DURATION_BAD(timeout_ms)) return TR_EINVAL;
  CHECK_HANDLE(h);
  return receive(h, type, timeout_ms, msg);
}

int tr_handle_call(tr_handle_t *h, tr_ref_t to, void *req,
                   tr_duration_t timeout_ms, void **reply) {
  tr_msg_t *m = req;
  if (!m || !m->type) return TR_EINVAL;
  TR__MSG_CHECK_SEND(m);
  if (!h || !reply || TR__DURATION_BAD(timeout_ms))
    return tr__msg_drop_failed(NULL, m, TR_EINVAL);
  CHECK_HANDLE(h);
  TR__ASSERT_MAY_BLOCK();
  *reply = NULL;
  uint64_t tag = ++h->next_tag & ~TR__TAG_REPLY;
  if (!tag) tag = h->next_tag = 1;
  m->tag = tag;
  m->sender = tr__self_ref(h->a).id;
  int rc = tr__send_raw(NULL, NULL, to, m, 1);
  if (rc) {
    m->tag = 0;
    return tr__msg_drop_failed(NULL, m, rc);
  }
  uint64_t want = tag | TR__TAG_REPLY, dl = tr__deadline_ns(timeout_ms);
  for (;;) {
    pull(h);
    tr_msg_t *r = pick(h, want, NULL);
    if (r) {
      if (r->type == &tr__noreply_type) {
        rc = ((tr__noreply_msg_t *)r)->status;
        tr__msg_release(r);
        return rc;
      }
      r->tag = 0;
      *reply = r;
      return 0;
    }
    if (tr__now_ns() >= dl) return TR_ETIMEDOUT;
    /* a timeout here loops once more to pick up a reply that raced it */
    (void)wait_mail(h, dl);
  }
}
