/* SPDX-License-Identifier: MIT */
/*
 * Select for actors: a select set is the receiver of several mpsc/oneshot
 * channels and hands their values to one actor as tr_chan_item_t messages
 * tagged with the channel's index. At most `window` items are in flight;
 * they are taken from the ready channels round-robin, starting after the
 * one served last, so no ready channel starves. Refills come in batches
 * (set_pass): a value sent while at most half the window is in flight
 * pumps at once; otherwise the item whose freeing (the runtime does it
 * after the handler) brings the count down to half pumps.
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
  uint32_t *closing;          /* scratch of the pump: closed notices */
  _Atomic uint64_t pump_req;  /* pump requests; nonzero: a pump runs */
  _Atomic uint64_t ready;     /* channels (index < 64) that got a value or
                                 closed since the pump looked */
  uint64_t carry;             /* channels the pump left non-empty */
  size_t n, capn;
  size_t nrefd;               /* chans[0..nrefd) hold a reference of ours
                                 until the set is destroyed: items in
                                 flight point at them without their own */
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

/* Racy by design: a sender that sees more than half the window in flight
 * skips the pump, and the item whose freeing brings the count down to
 * half pumps after decrementing (see tr__item_done). Items are freed one
 * at a time, so a count above half always comes down through half
 * exactly: one of the two always finds the value, and a consumer that
 * keeps up is refilled once per half window rather than once per item. */
int tr__set_wants_pump(tr_chan_select_t *set) {
  return atomic_load_explicit(&set->inflight, memory_order_seq_cst) <=
         set->window / 2;
}

void tr__set_unref(tr_chan_select_t *set) {
  if (atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) != 1)
    return;
  pthread_mutex_destroy(&set->mu);
  for (size_t i = 0; i < set->nrefd; i++) tr__chan_unref(set->chans[i]);
  free(set->chans);
  free(set->closed_sent);
  free(set->closing);
  free(set);
}

/* A value arrived at (or the close of) channel `index`: the next pass
 * looks at it. Sets of more than 64 channels look at every channel. */
void tr__set_mark(tr_chan_select_t *set, unsigned index) {
  if (index >= 64) return;
  uint64_t bit = 1ull << index;
  if (!(atomic_load_explicit(&set->ready, memory_order_seq_cst) & bit))
    atomic_fetch_or_explicit(&set->ready, bit, memory_order_seq_cst);
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
  if (tr__chan_mutex_init(&set->mu) != 0) {
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
    uint32_t *cl = realloc(set->closing, nc * sizeof(*cl));
    if (cl) set->closing = cl;
    if (!c || !cs || !cl) {
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
    set->nrefd = set->n;
    tr__set_mark(set, (unsigned)set->n - 1); /* it may hold values */
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
    tr__defer_t d;
    tr__defer_init(&d);
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
    /* our reference goes with the set (items in flight point at ch) */
  }
  set->n = 0;
  pthread_mutex_unlock(&set->mu);
  tr__set_unref(set);
}

/* Items in flight hold one reference on the set between them, taken when
 * the count leaves zero and dropped when it comes back to zero, rather
 * than one each: the consumer's free touches one shared counter, not
 * three. */
static void set_inflight_add(tr_chan_select_t *set, unsigned k) {
  if (atomic_fetch_add_explicit(&set->inflight, k, memory_order_seq_cst) == 0)
    tr__set_ref(set);
}

/* Returns what is left in flight. At zero the caller drops the in-flight
 * reference, holding one of its own. */
static unsigned set_inflight_sub(tr_chan_select_t *set, unsigned k) {
  return atomic_fetch_sub_explicit(&set->inflight, k, memory_order_seq_cst) -
         k;
}

/* Values one pass of the pump may take (bounded stack use). */
#define TR__SET_BATCH 128

/* Puts popped values back at the heads of their channels, newest first,
 * so each channel gets its own order back (its delivery was refused). */
static void set_give_back(tr_chan_select_t *set, const tr__chan_ent_t *ents,
                          const uint32_t *chan_of, const uint32_t *order,
                          size_t from, size_t to) {
  for (size_t k = to; k-- > from;) {
    tr_chan_t *ch = set->chans[chan_of[order[k]]];
    if (chan_of[order[k]] < 64) set->carry |= 1ull << chan_of[order[k]];
    pthread_mutex_lock(&ch->mu);
    tr__mpsc_unpop(ch, ents[order[k]]);
    ch->delivered--;
    pthread_mutex_unlock(&ch->mu);
  }
}

/* The actor is gone: values[from, to) and whatever is queued are dead. */
static void set_die(tr_chan_select_t *set, const tr__chan_ent_t *ents,
                    const uint32_t *chan_of, const uint32_t *order,
                    size_t from, size_t to) {
  set->dead = 1;
  for (size_t k = from; k < to; k++) {
    tr_chan_t *ch = set->chans[chan_of[order[k]]];
    tr__defer_t d;
    tr__defer_init(&d);
    pthread_mutex_lock(&ch->mu);
    tr__chan_dead_letter(ch, ents[order[k]].m, ents[order[k]].dead_to,
                         TR_ENOACTOR, 0, &d);
    pthread_mutex_unlock(&ch->mu);
    tr__defer_run(ch, &d);
  }
  for (size_t j = 0; j < set->n; j++) {
    tr_chan_t *c = set->chans[j];
    tr__defer_t d;
    tr__defer_init(&d);
    pthread_mutex_lock(&c->mu);
    if (c->rx_set == set) {
      c->rx_kind = TR__RX_NONE;
      c->rx_set = NULL;
      tr__chan_close_locked(c, TR_CHAN_CLOSED_RECEIVER, &d);
      tr__mpsc_drain_dead(c, TR_ECLOSED, &d);
    }
    pthread_mutex_unlock(&c->mu);
    tr__defer_run(c, &d);
  }
}

/* One pass over the channels: takes up to an equal share of the free
 * window from each (one lock acquisition per channel), interleaves what it
 * took round-robin (one value per ready channel per round, starting after
 * the channel served last), and pushes the items to the actor as one
 * chain. Closed notices follow, for channels found closed and empty.
 * Returns 1 if another pass may find more. Under the set lock. */
static int set_pass(tr_chan_select_t *set) {
  tr__chan_ent_t ents[TR__SET_BATCH];
  uint32_t chan_of[TR__SET_BATCH], order[TR__SET_BATCH];
  tr_msg_t *ms[TR__SET_BATCH];
  size_t n = set->n, total = 0, ngroups = 0, nclosing = 0, maxq = 0;
  unsigned infl = atomic_load_explicit(&set->inflight, memory_order_seq_cst);
  size_t room = infl < set->window ? set->window - infl : 0;
  if (room > TR__SET_BATCH) room = TR__SET_BATCH;
  size_t q = room / n ? room / n : 1;
  int more = 0;
  /* only the channels marked ready or left non-empty (sets of up to 64) */
  int masked = n <= 64;
  uint64_t mask = 0;
  if (masked) {
    mask = atomic_exchange_explicit(&set->ready, 0, memory_order_seq_cst) |
           set->carry;
    set->carry = 0;
  }
  /* groups: the channels that gave values, in visiting order */
  struct {
    uint32_t i, first, cnt;
  } grp[TR__SET_BATCH];
  for (size_t k = 0; k < n; k++) {
    size_t i = (set->start + k) % n;
    if (masked && !(mask & (1ull << i))) continue;
    if (set->closed_sent[i]) continue; /* closed and empty for good */
    tr_chan_t *ch = set->chans[i];
    size_t take = total < room ? room - total : 0;
    if (take > q) take = q;
    tr__defer_t d;
    tr__defer_init(&d);
    size_t got = 0;
    pthread_mutex_lock(&ch->mu);
    while (got < take && tr__mpsc_pop(ch, &ents[total + got], &d)) got++;
    if (!ch->len) {
      int closed = atomic_load_explicit(&ch->closed, memory_order_relaxed);
      if (closed && !(ch->kind == TR_CHAN_ONESHOT &&
                      closed == TR_CHAN_CLOSED_DONE)) {
        if (got) { /* its notice goes after these, in the next pass */
          more = 1;
          if (masked) set->carry |= 1ull << i;
        } else {
          set->closed_sent[i] = 1;
          set->closing[nclosing++] = (uint32_t)i;
        }
      }
    } else {
      if (masked) set->carry |= 1ull << i; /* values left */
      if (got == take) more = 1;
    }
    pthread_mutex_unlock(&ch->mu);
    tr__defer_run(ch, &d);
    if (got) {
      grp[ngroups].i = (uint32_t)i;
      grp[ngroups].first = (uint32_t)total;
      grp[ngroups].cnt = (uint32_t)got;
      ngroups++;
      for (size_t j = 0; j < got; j++) chan_of[total + j] = (uint32_t)i;
      total += got;
      if (got > maxq) maxq = got;
    }
  }
  /* round-robin interleaving of what was taken */
  size_t m = 0;
  for (size_t r = 0; r < maxq; r++)
    for (size_t g = 0; g < ngroups; g++)
      if (r < grp[g].cnt) order[m++] = grp[g].first + (uint32_t)r;
  size_t made = 0;
  for (; made < m; made++) {
    uint32_t e = order[made];
    tr_chan_item_t *it = tr_msg_new(&tr_chan_item_t__type);
    if (!it) break;
    it->chan = set->chans[chan_of[e]];
    it->index = chan_of[e];
    it->value = ents[e].m;
    it->priv_ = set;
    ms[made] = &it->hdr;
  }
  if (made < m) { /* out of memory: the rest waits in its channels */
    set_give_back(set, ents, chan_of, order, made, m);
    more = 0;
  }
  if (made) {
    set_inflight_add(set, (unsigned)made);
    size_t done = 0;
    int rc = tr__chan_deliver_list(set->rt, set->who, ms, made, &done);
    for (size_t k = done; k < made; k++) { /* refused: undo */
      tr_chan_item_t *it = (tr_chan_item_t *)ms[k];
      it->value = NULL;
      it->priv_ = NULL;
      it->chan = NULL;
      tr_msg_free(it);
    }
    if (done < made &&
        set_inflight_sub(set, (unsigned)(made - done)) == 0)
      tr__set_unref(set); /* our caller still holds one */
    if (done) {
      if (set->timeout_ms) {
        atomic_store_explicit(&set->last_ns, tr__now_ns(),
                              memory_order_relaxed);
        atomic_store_explicit(&set->timeout_sent, 0, memory_order_relaxed);
      }
      set->start = chan_of[order[done - 1]] + 1;
    }
    if (rc == TR_EAGAIN) {
      /* a full bounded mailbox: the values go back; the next item freed
       * or value sent pumps again */
      set_give_back(set, ents, chan_of, order, done, made);
      more = 0;
    } else if (rc != 0) {
      set_die(set, ents, chan_of, order, done, made);
      return 0;
    }
  }
  for (size_t k = 0; k < nclosing; k++) {
    /* after every value of this channel: pushed under the set lock */
    tr_chan_t *ch = set->chans[set->closing[k]];
    tr__defer_t d2;
    tr__defer_init(&d2);
    tr__chan_send_closed(ch, set->who, set->closing[k], &d2, 1);
    tr__defer_run(ch, &d2);
  }
  return more && m > 0;
}

/* Hands values to the actor while the window allows. One thread pumps at a
 * time: a caller that finds a pump running only counts its request, and
 * the running pump goes round again until no request is left, so no value
 * is left behind and nobody waits on the set lock. */
void tr__set_pump(tr_chan_select_t *set) {
  uint64_t req = 1;
  if (atomic_fetch_add_explicit(&set->pump_req, 1, memory_order_acq_rel))
    return;
  do {
    pthread_mutex_lock(&set->mu);
    while (!set->freed && !set->dead && set->n && set_pass(set)) {
    }
    pthread_mutex_unlock(&set->mu);
    req = atomic_fetch_sub_explicit(&set->pump_req, req,
                                    memory_order_acq_rel) -
          req;
  } while (req);
}

/* Destructor side of tr_chan_item_t: the value was consumed. */
void tr__item_done(tr_chan_item_t *it) {
  tr_chan_select_t *set = it->priv_;
  if (set) {
    /* it->chan is kept alive by the set, which the in-flight reference
     * keeps alive. After the decrement the set may be touched only by the
     * item that brings the count to zero (it owns that reference) or by
     * one that took its own reference while still counted: the one that
     * brings it to half the window, which refills (see
     * tr__set_wants_pump). */
    unsigned half = set->window / 2;
    unsigned cur = atomic_load_explicit(&set->inflight, memory_order_relaxed);
    int own = 0;
    for (;;) {
      if (cur - 1 == half && half && !own) {
        tr__set_ref(set);
        own = 1;
      }
      if (atomic_compare_exchange_weak_explicit(&set->inflight, &cur,
                                                cur - 1, memory_order_seq_cst,
                                                memory_order_relaxed))
        break;
    }
    unsigned left = cur - 1;
    if (left == half) tr__set_pump(set);
    if (own) tr__set_unref(set);
    if (left == 0) tr__set_unref(set);
    return;
  }
  if (it->chan) tr__item_done_chan(it);
}
