/* SPDX-License-Identifier: MIT */
/*
 * Select for actors: a select set is the receiver of several mpsc/oneshot
 * channels and hands their values to one actor as tr_chan_item_t messages
 * tagged with the channel's index. At most `window` items are in flight;
 * freeing an item (the runtime does it after the handler) makes room for
 * the next, which is taken from the ready channels round-robin, starting
 * after the one served last, so no ready channel starves.
 *
 * Timeouts: sets created with a timeout are watched by one small timer
 * thread of this module (started on demand, gone when no set needs it). It
 * sends the actor a TR_ETIMEDOUT item when the set has delivered nothing
 * for timeout_ms, once per idle period. Activity only stores a timestamp,
 * so the hot path never signals the timer thread.
 */
#include "chan_internal.h"
#include "park.h"

#include <stdlib.h>
#include <string.h>

struct tr_chan_select {
  tr_runtime_t *rt;
  pthread_mutex_t mu;
  _Atomic uint64_t refs;
  uint64_t who;
  unsigned window;
  _Atomic unsigned inflight; /* items not yet freed (no lock) */
  int timeout_ms;
  tr_chan_t **chans;
  unsigned char *closed_sent;
  size_t n, capn;
  size_t start;
  int freed, dead;
  _Atomic uint64_t last_ns;   /* last delivery (timeouts) */
  _Atomic int timeout_sent;
  struct tr_chan_select *tnext; /* timer list */
  int timed;                  /* in the timer list (timer lock) */
};

/* ---- references ------------------------------------------------------------ */

void tr__set_ref(tr_chan_select_t *set) {
  atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
}

/* Racy by design: a sender that sees the set full skips the pump, and
 * the item whose freeing makes room pumps after decrementing (see
 * tr__item_done): one of the two always finds the value. */
int tr__set_has_room(tr_chan_select_t *set) {
  return atomic_load_explicit(&set->inflight, memory_order_seq_cst) <
         set->window;
}

void tr__set_unref(tr_chan_select_t *set) {
  if (atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) != 1)
    return;
  pthread_mutex_destroy(&set->mu);
  free(set->chans);
  free(set->closed_sent);
  free(set);
}

/* ---- the timer thread --------------------------------------------------- */

static pthread_mutex_t timer_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t timer_cv;
static pthread_once_t timer_once = PTHREAD_ONCE_INIT;
static tr_chan_select_t *timer_list;
static int timer_running;

static void timer_init_cv(void) {
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(&timer_cv, &a);
  pthread_condattr_destroy(&a);
}

static void set_fire_timeout(tr_chan_select_t *set) {
  tr_chan_item_t *it = NULL;
  pthread_mutex_lock(&set->mu);
  if (!set->freed && !set->dead &&
      !atomic_load_explicit(&set->timeout_sent, memory_order_relaxed)) {
    it = tr_msg_new(&tr_chan_item_t__type);
    if (it) {
      it->status = TR_ETIMEDOUT;
      atomic_store_explicit(&set->timeout_sent, 1, memory_order_relaxed);
      tr_ref_t r = {set->who};
      if (tr__send_raw(tr__current_worker(set->rt), NULL, r, &it->hdr, 1))
        tr_msg_free(it);
    }
  }
  pthread_mutex_unlock(&set->mu);
}

static void *timer_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&timer_mu);
  while (timer_list) {
    uint64_t now = tr__now_ns(), next = UINT64_MAX;
    tr_chan_select_t *due[16];
    size_t ndue = 0;
    for (tr_chan_select_t *s = timer_list; s; s = s->tnext) {
      uint64_t t = (uint64_t)s->timeout_ms * 1000000ull;
      uint64_t dl;
      if (atomic_load_explicit(&s->timeout_sent, memory_order_relaxed))
        dl = now + t; /* look again in one period */
      else
        dl = atomic_load_explicit(&s->last_ns, memory_order_relaxed) + t;
      if (dl <= now && ndue < 16) {
        tr__set_ref(s);
        due[ndue++] = s;
        dl = now + t;
      }
      if (dl < next) next = dl;
    }
    if (ndue) {
      pthread_mutex_unlock(&timer_mu);
      for (size_t i = 0; i < ndue; i++) {
        set_fire_timeout(due[i]);
        tr__set_unref(due[i]);
      }
      pthread_mutex_lock(&timer_mu);
      continue;
    }
    struct timespec ts = {(time_t)(next / 1000000000ull),
                          (long)(next % 1000000000ull)};
    pthread_cond_timedwait(&timer_cv, &timer_mu, &ts);
  }
  timer_running = 0;
  pthread_mutex_unlock(&timer_mu);
  return NULL;
}

static int timer_add(tr_chan_select_t *set) {
  pthread_once(&timer_once, timer_init_cv);
  pthread_mutex_lock(&timer_mu);
  tr__set_ref(set);
  set->timed = 1;
  set->tnext = timer_list;
  timer_list = set;
  int rc = 0;
  if (!timer_running) {
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &a, timer_main, NULL) == 0) {
      timer_running = 1;
    } else {
      timer_list = set->tnext;
      set->timed = 0;
      atomic_fetch_sub(&set->refs, 1);
      rc = TR_ENOMEM;
    }
    pthread_attr_destroy(&a);
  }
  pthread_cond_signal(&timer_cv);
  pthread_mutex_unlock(&timer_mu);
  return rc;
}

static void timer_del(tr_chan_select_t *set) {
  int had = 0;
  pthread_mutex_lock(&timer_mu);
  for (tr_chan_select_t **pp = &timer_list; *pp; pp = &(*pp)->tnext) {
    if (*pp == set) {
      *pp = set->tnext;
      set->timed = 0;
      had = 1;
      break;
    }
  }
  pthread_cond_signal(&timer_cv);
  pthread_mutex_unlock(&timer_mu);
  if (had) tr__set_unref(set);
}

/* ---- the set ------------------------------------------------------------- */

int tr_chan_select_new(tr_runtime_t *rt, tr_ref_t who, unsigned window,
                       int timeout_ms, tr_chan_select_t **out) {
  if (!out) return TR_EINVAL;
  *out = NULL;
  if (!rt || tr_ref_is_null(who)) return TR_EINVAL;
  tr_chan_select_t *set = calloc(1, sizeof(*set));
  if (!set) return TR_ENOMEM;
  if (pthread_mutex_init(&set->mu, NULL) != 0) {
    free(set);
    return TR_ENOMEM;
  }
  set->rt = rt;
  set->who = who.id;
  set->window = window ? window : 64;
  set->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
  atomic_init(&set->refs, 1);
  atomic_init(&set->last_ns, tr__now_ns());
  if (set->timeout_ms && timer_add(set) != 0) {
    tr__set_unref(set);
    return TR_ENOMEM;
  }
  *out = set;
  return 0;
}

int tr_chan_select_add(tr_chan_select_t *set, tr_chan_t *ch,
                       unsigned *index) {
  if (!set || !ch) return TR_EINVAL;
  if (ch->kind != TR_CHAN_MPSC && ch->kind != TR_CHAN_ONESHOT)
    return TR_EINVAL;
  int rc = 0;
  pthread_mutex_lock(&set->mu);
  if (set->n == set->capn) {
    size_t nc = set->capn ? set->capn * 2 : 8;
    tr_chan_t **c = realloc(set->chans, nc * sizeof(*c));
    if (c) set->chans = c;
    unsigned char *cs = realloc(set->closed_sent, nc);
    if (cs) set->closed_sent = cs;
    if (!c || !cs) {
      pthread_mutex_unlock(&set->mu);
      return TR_ENOMEM;
    }
    set->capn = nc;
  }
  pthread_mutex_lock(&ch->mu);
  if (ch->rx_kind != TR__RX_NONE) {
    rc = TR_EBUSY;
  } else {
    ch->rx_kind = TR__RX_SET;
    ch->rx_set = set;
    ch->rx_index = (unsigned)set->n;
    tr__chan_ref(ch);
  }
  pthread_mutex_unlock(&ch->mu);
  if (rc == 0) {
    if (index) *index = (unsigned)set->n;
    set->chans[set->n] = ch;
    set->closed_sent[set->n] = 0;
    set->n++;
  }
  pthread_mutex_unlock(&set->mu);
  if (rc == 0) tr__set_pump(set);
  return rc;
}

void tr_chan_select_free(tr_chan_select_t *set) {
  if (!set) return;
  if (set->timeout_ms) timer_del(set);
  pthread_mutex_lock(&set->mu);
  set->freed = 1;
  for (size_t i = 0; i < set->n; i++) {
    tr_chan_t *ch = set->chans[i];
    tr__defer_t d = {0};
    pthread_mutex_lock(&ch->mu);
    if (ch->rx_kind == TR__RX_SET && ch->rx_set == set) {
      ch->rx_kind = TR__RX_NONE;
      ch->rx_set = NULL;
      if (ch->owner_gone) {
        tr__chan_close_locked(ch, TR_CHAN_CLOSED_RECEIVER, &d);
        tr__mpsc_drain_dead(ch, TR_ECLOSED, &d);
      }
    }
    pthread_mutex_unlock(&ch->mu);
    tr__defer_run(ch, &d);
    tr__chan_unref(ch);
  }
  set->n = 0;
  pthread_mutex_unlock(&set->mu);
  tr__set_unref(set);
}

/* Hands values to the actor while the window allows, choosing among the
 * ready channels round-robin. Takes the set lock, then each channel's. */
void tr__set_pump(tr_chan_select_t *set) {
  pthread_mutex_lock(&set->mu);
  while (!set->freed && !set->dead) {
    int found = 0;
    for (size_t k = 0; k < set->n; k++) {
      size_t i = (set->start + k) % set->n;
      tr_chan_t *ch = set->chans[i];
      tr__defer_t d = {0};
      tr__chan_ent_t e;
      int got = 0, send_closed = 0;
      pthread_mutex_lock(&ch->mu);
      if (atomic_load_explicit(&set->inflight, memory_order_relaxed) <
              set->window &&
          tr__mpsc_pop(ch, &e, &d)) {
        got = 1;
      } else if (!ch->len && !set->closed_sent[i] &&
                 atomic_load_explicit(&ch->closed, memory_order_relaxed) &&
                 !(ch->kind == TR_CHAN_ONESHOT &&
                   atomic_load_explicit(&ch->closed, memory_order_relaxed) ==
                       TR_CHAN_CLOSED_DONE)) {
        set->closed_sent[i] = 1;
        send_closed = 1;
      }
      pthread_mutex_unlock(&ch->mu);
      tr__defer_run(ch, &d);
      if (send_closed) {
        /* after every value of this channel: pushed under the set lock */
        tr__defer_t d2 = {0};
        tr__chan_send_closed(ch, set->who, (unsigned)i, &d2, 1);
        tr__defer_run(ch, &d2);
      }
      if (!got) continue;
      tr_chan_item_t *it = tr__item_new(ch, (unsigned)i, e.m);
      int rc = TR_ENOMEM;
      if (it) {
        it->priv_ = set;
        tr__set_ref(set);
        atomic_fetch_add_explicit(&set->inflight, 1, memory_order_seq_cst);
        tr_ref_t r = {set->who};
        rc = tr__send_raw(tr__current_worker(set->rt), NULL, r, &it->hdr, 1);
        if (rc != 0) {
          atomic_fetch_sub_explicit(&set->inflight, 1, memory_order_seq_cst);
          it->value = NULL;
          it->priv_ = NULL;
          it->chan = NULL;
          tr__chan_unref(ch);
          atomic_fetch_sub(&set->refs, 1); /* we still hold one */
          tr_msg_free(it);
        }
      }
      if (rc == TR_EAGAIN) {
        /* a full bounded mailbox: the value goes back; the next item
         * freed or value sent pumps again */
        pthread_mutex_lock(&ch->mu);
        tr__mpsc_unpop(ch, e);
        ch->delivered--;
        pthread_mutex_unlock(&ch->mu);
        break;
      }
      if (rc != 0) {
        /* the actor is gone: the value and what is queued are dead */
        tr__defer_t d3 = {0};
        set->dead = 1;
        pthread_mutex_lock(&ch->mu);
        tr__chan_dead_letter(ch, e.m, e.dead_to, TR_ENOACTOR, 0, &d3);
        pthread_mutex_unlock(&ch->mu);
        tr__defer_run(ch, &d3);
        for (size_t j = 0; j < set->n; j++) {
          tr_chan_t *c = set->chans[j];
          pthread_mutex_lock(&c->mu);
          if (c->rx_set == set) {
            c->rx_kind = TR__RX_NONE;
            c->rx_set = NULL;
            tr__chan_close_locked(c, TR_CHAN_CLOSED_RECEIVER, &d3);
            tr__mpsc_drain_dead(c, TR_ECLOSED, &d3);
          }
          pthread_mutex_unlock(&c->mu);
          tr__defer_run(c, &d3);
        }
        break;
      }
      if (set->timeout_ms) {
        atomic_store_explicit(&set->last_ns, tr__now_ns(),
                              memory_order_relaxed);
        atomic_store_explicit(&set->timeout_sent, 0, memory_order_relaxed);
      }
      set->start = i + 1;
      found = 1;
      break;
    }
    if (!found) break;
  }
  pthread_mutex_unlock(&set->mu);
}

/* Destructor side of tr_chan_item_t: the value was consumed. */
void tr__item_done(tr_chan_item_t *it) {
  tr_chan_select_t *set = it->priv_;
  if (set) {
    tr_chan_t *ch = it->chan;
    atomic_fetch_sub_explicit(&set->inflight, 1, memory_order_seq_cst);
    tr__set_pump(set);
    tr__set_unref(set);
    if (ch) tr__chan_unref(ch);
    return;
  }
  if (it->chan) tr__item_done_chan(it);
}
