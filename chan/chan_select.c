/* SPDX-License-Identifier: MIT */
/*
 * Select for actors: a select set is the receiver of several mpsc/oneshot
 * channels and hands their values to one actor as tr_chan_item_t messages
 * tagged with the channel's index. The set has a token
 * (tr__set_tick_t): while the actor holds it (in its mailbox, or running
 * it), the run loop hands it to tr__expand_run, which takes values from
 * the ready channels (one lock acquisition per channel per pass, at most
 * `window` values per pass, an equal share from each), interleaves them
 * round-robin starting after the channel served last, so no ready channel
 * starves, and calls the actor's item handler once per value with one
 * envelope lent from value to value (one the handler keeps escapes with a
 * reference on its channel). A pass is bounded by the run's budget; then
 * the token goes to the back of the mailbox. With nothing left the token
 * is parked on the set; a send marks its channel ready, then takes the
 * parked token and sends it back (the parker re-reads the marks after
 * parking, both seq_cst, so one of the two sees the other). A delivery
 * costs no allocation and no inbox operation.
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

struct tr_chan_recv_any {
  tr_runtime_t *rt;
  tr__mutex_t mu;
  _Atomic uint64_t refs;
  uint64_t who;
  unsigned window;
  _Atomic(tr_msg_t *) parked; /* the token, while nothing is ready */
  tr_chan_item_t *lent;       /* envelope lent to the handler (token
                                 holder only) */
  int timeout_ms;
  tr_chan_t **chans;
  unsigned char *closed_sent;
  uint32_t *closing;          /* scratch of a pass: closed notices */
  _Atomic uint64_t ready;     /* channels (ready_bit) that got a value or
                                 closed since a pass looked */
  uint64_t carry;             /* channels a pass left non-empty */
  size_t n, capn;
  size_t nrefd;               /* chans[0..nrefd) hold a reference of ours
                                 until the set is destroyed: items in
                                 flight point at them without their own */
  size_t start;
  int freed, dead;
  _Atomic uint64_t last_ns;   /* last delivery (timeouts) */
  _Atomic int timeout_sent;
  struct tr_chan_recv_any *tnext; /* timer list */
  int timed;                  /* in the timer list (timer lock) */
};

static void tick_end_quietly(tr_chan_select_t *set, tr_msg_t *tick);

/* ---- references ------------------------------------------------------------ */

void tr__set_ref(tr_chan_select_t *set) {
  atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
}

/* A send to one of the set's channels marked it ready: does the parked
 * token need sending back? */
int tr__set_is_parked(tr_chan_select_t *set) {
  return atomic_load_explicit(&set->parked, memory_order_seq_cst) != NULL;
}

void tr__set_unref(tr_chan_select_t *set) {
  if (atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) != 1)
    return;
  if (set->lent) { /* lent, never kept: owes nothing */
    set->lent->chan = NULL;
    set->lent->value = NULL;
    tr_msg_free(set->lent);
  }
  for (size_t i = 0; i < set->nrefd; i++) tr__chan_unref(set->chans[i]);
  free(set->chans);
  free(set->closed_sent);
  free(set->closing);
  free(set);
}

/* The ready bit of channel i: its own below 63; channels 63 and up
 * share the last one (a pass then looks at all of them). */
static inline uint64_t ready_bit(size_t i) {
  return i < 63 ? 1ull << i : 1ull << 63;
}

/* A value arrived at (or the close of) channel `index`: the next pass
 * looks at it. */
void tr__set_mark(tr_chan_select_t *set, unsigned index) {
  uint64_t bit = ready_bit(index);
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
  tr__mutex_lock(&set->mu);
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
  tr__mutex_unlock(&set->mu);
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
                       tr_duration_t idle_timeout, tr_chan_select_t **out) {
  if (!out) return TR_EINVAL;
  *out = NULL;
  /* an idle timeout of TR_NOWAIT would fire the moment the set is idle:
   * refused, as is any negative duration but TR_FOREVER (none) */
  if (!rt || tr_ref_is_null(who) || idle_timeout == TR_NOWAIT ||
      TR__DURATION_BAD(idle_timeout))
    return TR_EINVAL;
  tr_chan_select_t *set = calloc(1, sizeof(*set));
  if (!set) return TR_ENOMEM;
  tr__mutex_init(&set->mu);
  set->rt = rt;
  set->who = who.id;
  set->window = window ? window : 64;
  set->timeout_ms = idle_timeout > 0 ? (int)(idle_timeout > 0x7fffffff ? 0x7fffffff : idle_timeout) : 0;
  atomic_init(&set->refs, 2); /* the owner's and the token's */
  atomic_init(&set->last_ns, tr__now_ns());
  tr__set_tick_t *tk = tr_msg_new(&tr__set_tick_type);
  if (!tk) {
    free(set);
    return TR_ENOMEM;
  }
  tk->set = set;
  atomic_init(&set->parked, &tk->hdr);
  if (set->timeout_ms && timer_add(set) != 0) {
    tr_chan_select_free(set);
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
  tr__mutex_lock(&set->mu);
  if (set->n == set->capn) {
    size_t nc = set->capn ? set->capn * 2 : 8;
    tr_chan_t **c = realloc(set->chans, nc * sizeof(*c));
    if (c) set->chans = c;
    unsigned char *cs = realloc(set->closed_sent, nc);
    if (cs) set->closed_sent = cs;
    uint32_t *cl = realloc(set->closing, nc * sizeof(*cl));
    if (cl) set->closing = cl;
    if (!c || !cs || !cl) {
      tr__mutex_unlock(&set->mu);
      return TR_ENOMEM;
    }
    set->capn = nc;
  }
  if (set->dead || set->freed) {
    tr__mutex_unlock(&set->mu);
    return set->dead ? TR_ENOACTOR : TR_EINVAL;
  }
  tr__mutex_lock(&ch->mu);
  if (ch->rx_kind != TR__RX_NONE) {
    rc = TR_EBUSY;
  } else {
    ch->rx_kind = TR__RX_SET;
    ch->rx_set = set;
    ch->rx_index = (unsigned)set->n;
    tr__chan_ref(ch);
  }
  tr__mutex_unlock(&ch->mu);
  if (rc == 0) {
    if (index) *index = (unsigned)set->n;
    set->chans[set->n] = ch;
    set->closed_sent[set->n] = 0;
    set->n++;
    set->nrefd = set->n;
    tr__set_mark(set, (unsigned)set->n - 1); /* it may hold values */
  }
  tr__mutex_unlock(&set->mu);
  if (rc == 0) tr__set_unpark(set);
  return rc;
}

void tr_chan_select_free(tr_chan_select_t *set) {
  if (!set) return;
  if (set->timeout_ms) timer_del(set);
  tr__mutex_lock(&set->mu);
  set->freed = 1;
  for (size_t i = 0; i < set->n; i++) {
    tr_chan_t *ch = set->chans[i];
    tr__defer_t d;
    tr__defer_init(&d);
    tr__mutex_lock(&ch->mu);
    if (ch->rx_kind == TR__RX_SET && ch->rx_set == set) {
      ch->rx_kind = TR__RX_NONE;
      ch->rx_set = NULL;
      if (ch->owner_gone) {
        tr__chan_close_locked(ch, TR_CHAN_CLOSED_RECEIVER, &d);
        tr__mpsc_drain_dead(ch, TR_ECLOSED, &d);
      }
    }
    tr__mutex_unlock(&ch->mu);
    tr__defer_run(ch, &d);
    /* our reference goes with the set (items in flight point at ch) */
  }
  set->n = 0;
  tr__mutex_unlock(&set->mu);
  /* a parked token goes now; one in the actor's mailbox finds the set
   * freed when it runs */
  tr_msg_t *tick = atomic_exchange_explicit(&set->parked, NULL,
                                            memory_order_seq_cst);
  if (tick) tick_end_quietly(set, tick);
  tr__set_unref(set);
}

/* Values one pass may take (bounded stack use). */
#define TR__SET_BATCH 128
/* Values whose headers are fetched ahead of the one handled. */
#define TR__SET_AHEAD 4

/* Puts popped values back at the heads of their channels, newest first,
 * so each channel gets its own order back. Set lock held. */
static void set_give_back(tr_chan_select_t *set, const tr__chan_ent_t *ents,
                          const uint32_t *chan_of, const uint32_t *order,
                          size_t from, size_t to) {
  for (size_t k = to; k-- > from;) {
    uint32_t i = chan_of[order[k]];
    tr_chan_t *ch = set->chans[i];
    set->carry |= ready_bit(i);
    tr__defer_t d;
    tr__defer_init(&d);
    tr__mutex_lock(&ch->mu);
    ch->delivered--;
    if (tr__mpsc_unpop(ch, ents[order[k]]) != 0)
      tr__chan_dead_letter(ch, ents[order[k]].m, ents[order[k]].dead_to,
                           TR_ENOMEM, 0, &d);
    tr__mutex_unlock(&ch->mu);
    tr__defer_run(ch, &d);
  }
}

/* The actor is gone: its channels lose their receiver, and what they
 * hold is dead. Set lock held. */
static void set_die(tr_chan_select_t *set) {
  set->dead = 1;
  for (size_t j = 0; j < set->n; j++) {
    tr_chan_t *c = set->chans[j];
    tr__defer_t d;
    tr__defer_init(&d);
    tr__mutex_lock(&c->mu);
    if (c->rx_set == set) {
      c->rx_kind = TR__RX_NONE;
      c->rx_set = NULL;
      tr__chan_close_locked(c, TR_CHAN_CLOSED_RECEIVER, &d);
      tr__mpsc_drain_dead(c, TR_ECLOSED, &d);
    }
    tr__mutex_unlock(&c->mu);
    tr__defer_run(c, &d);
  }
}

/* Sends the token to the set's actor, unchecked (see tr__defer_run). */
static void tick_send(tr_chan_select_t *set, tr_msg_t *tick) {
  tr__token_send(tr__current_worker(set->rt), set->who, tick);
}

/* The set was dissolved: its token ends without touching the channels. */
static void tick_end_quietly(tr_chan_select_t *set, tr_msg_t *tick) {
  ((tr__set_tick_t *)tick)->set = NULL;
  tr_msg_free(tick);
  tr__set_unref(set); /* the token's */
}

/* A channel of the set got a value or closed (its mark is set): sends the
 * parked token back, if it is parked. */
void tr__set_unpark(tr_chan_select_t *set) {
  tr_msg_t *tick =
      atomic_exchange_explicit(&set->parked, NULL, memory_order_seq_cst);
  if (tick) tick_send(set, tick);
}

/* The token was freed without being parked or sent on: the actor stopped
 * with it in its mailbox, or could not be sent it. */
static void set_tick_dtor(void *msg) {
  tr__set_tick_t *tk = msg;
  tr_chan_select_t *set = tk->set;
  if (!set) return;
  tk->set = NULL;
  tr__mutex_lock(&set->mu);
  if (!set->freed && !set->dead) set_die(set);
  tr__mutex_unlock(&set->mu);
  tr__set_unref(set);
}

const tr_msgtype_t tr__set_tick_type = {.name = "tr.chan.select",
                                        .size = sizeof(tr__set_tick_t),
                                        .flags = TR__MSG_EXPAND,
                                        .dtor = set_tick_dtor};

/* Marks an envelope the handler kept: it holds a reference on its channel
 * (items lent by a set have none of their own). */
static char item_escaped;

void tr__set_item_escape(tr_chan_item_t *it) {
  if (it->chan) tr__chan_ref(it->chan);
  it->priv_ = &item_escaped;
}

/* One pass over the channels, under the set lock: takes up to an equal
 * share of room from each ready one (one lock acquisition per channel),
 * interleaved round-robin (one value per ready channel per round,
 * starting after the channel served last) into ents/chan_of/order.
 * Channels found closed and empty go to set->closing. Returns how many
 * values were taken; *more: another pass may find more. */
static size_t set_take(tr_chan_select_t *set, size_t room,
                       tr__chan_ent_t *ents, uint32_t *chan_of,
                       uint32_t *order, size_t *nclosing, int *more) {
  size_t n = set->n, total = 0, ngroups = 0, maxq = 0;
  size_t q = room / n ? room / n : 1;
  *nclosing = 0;
  *more = 0;
  uint64_t mask =
      atomic_exchange_explicit(&set->ready, 0, memory_order_seq_cst) |
      set->carry;
  set->carry = 0;
  struct {
    uint32_t first, cnt;
  } grp[TR__SET_BATCH];
  for (size_t k = 0; k < n; k++) {
    size_t i = (set->start + k) % n;
    if (!(mask & ready_bit(i))) continue;
    if (set->closed_sent[i]) continue; /* closed and empty for good */
    tr_chan_t *ch = set->chans[i];
    size_t take = total < room ? room - total : 0;
    if (take > q) take = q;
    /* no more than a bounded channel holds: what a pass gives back must
     * fit its stash, and the channel must not hold more than its
     * capacity plus what the pass has in hand */
    if (ch->cap && take > ch->cap) take = ch->cap;
    tr__defer_t d;
    tr__defer_init(&d);
    size_t got = 0;
    tr__mutex_lock(&ch->mu);
    while (got < take && tr__mpsc_pop(ch, &ents[total + got], &d)) got++;
    /* nothing to take: the next value marks the set (a lock-free ring
     * is asked to; a value reserved and not yet stored will) */
    if (tr__mpsc_arm_empty(ch)) {
      int closed = atomic_load_explicit(&ch->closed, memory_order_relaxed);
      if (closed && !tr__mpsc_len(ch) &&
          !(ch->kind == TR_CHAN_ONESHOT && closed == TR_CHAN_CLOSED_DONE)) {
        if (got) { /* its notice goes after these, in the next pass */
          *more = 1;
          set->carry |= ready_bit(i);
        } else {
          set->closed_sent[i] = 1;
          set->closing[(*nclosing)++] = (uint32_t)i;
        }
      }
    } else {
      set->carry |= ready_bit(i); /* values left */
      *more = 1;
    }
    tr__mutex_unlock(&ch->mu);
    tr__defer_run(ch, &d);
    if (got) {
      grp[ngroups].first = (uint32_t)total;
      grp[ngroups].cnt = (uint32_t)got;
      ngroups++;
      for (size_t j = 0; j < got; j++) chan_of[total + j] = (uint32_t)i;
      total += got;
      if (got > maxq) maxq = got;
    }
  }
  size_t m = 0;
  for (size_t r = 0; r < maxq; r++)
    for (size_t g = 0; g < ngroups; g++)
      if (r < grp[g].cnt) order[m++] = grp[g].first + (uint32_t)r;
  return m;
}

int tr__set_run(tr_ctx_t *ctx, tr_msg_t *m, unsigned room_all,
                unsigned *used) {
  tr__set_tick_t *tk = (tr__set_tick_t *)m;
  tr_chan_select_t *set = tk->set;
  tr__chan_ent_t ents[TR__SET_BATCH];
  uint32_t chan_of[TR__SET_BATCH], order[TR__SET_BATCH];
  tr_chan_t *chan_at[TR__SET_BATCH]; /* set->chans may grow meanwhile */
  unsigned k = 0;
  int rc = 0, more = 0, stop = 0;
  ctx->cur = m;
  ctx->cur_owned = 0; /* the token: kept, sent back or freed below */
  while (k < room_all && !stop) {
    size_t room = room_all - k;
    if (room > set->window) room = set->window;
    if (room > TR__SET_BATCH) room = TR__SET_BATCH;
    size_t nclosing, got;
    tr__mutex_lock(&set->mu);
    if (set->freed || set->dead || !set->n) {
      tr__mutex_unlock(&set->mu);
      *used = k;
      tick_end_quietly(set, m);
      return rc;
    }
    got = set_take(set, room, ents, chan_of, order, &nclosing, &more);
    for (size_t j = 0; j < got; j++) chan_at[j] = set->chans[chan_of[order[j]]];
    if (got) {
      set->start = chan_of[order[got - 1]] + 1;
      if (set->timeout_ms) {
        atomic_store_explicit(&set->last_ns, tr__now_ns(),
                              memory_order_relaxed);
        atomic_store_explicit(&set->timeout_sent, 0, memory_order_relaxed);
      }
    }
    for (size_t c = 0; c < nclosing; c++) {
      /* a channel closes only once all its values were handled (none
       * was taken from it in this pass) */
      tr_chan_t *ch = set->chans[set->closing[c]];
      tr__defer_t d2;
      tr__defer_init(&d2);
      tr__chan_send_closed(ch, set->who, set->closing[c], &d2, 1);
      tr__defer_run(ch, &d2);
    }
    tr__mutex_unlock(&set->mu);
    /* each value was written on its sender's core: ask for the next few
     * while this one is handled */
    for (size_t j = 0; j < got && j < TR__SET_AHEAD; j++)
      __builtin_prefetch(ents[order[j]].m);
    size_t done = 0;
    for (; done < got; done++) {
      tr__chan_ent_t *e = &ents[order[done]];
      if (done + TR__SET_AHEAD < got)
        __builtin_prefetch(ents[order[done + TR__SET_AHEAD]].m);
      tr_chan_item_t *it = set->lent;
      if (tr__unlikely(!it)) {
        it = tr_msg_new(&tr_chan_item_t__type);
        if (!it) break; /* out of memory: the rest goes back */
        set->lent = it;
      }
      it->hdr.next = NULL;
      it->hdr.tag = 0;
      it->hdr.flags = 0;
      it->hdr.sender = e->m->sender;
      it->chan = chan_at[done];
      it->index = chan_of[order[done]];
      it->status = 0;
      it->value = e->m;
      it->priv_ = NULL;
      k++;
      int escaped;
      rc = tr__lend(ctx, &it->hdr, &escaped);
      if (escaped) {
        set->lent = NULL; /* with a channel reference: tr__set_item_escape */
      } else {
        /* handled: the value goes (unless taken), the envelope stays */
        if (it->value) tr_msg_free(it->value);
        it->value = NULL;
      }
      if (rc < 0 || ctx->stop_req || ctx->mute_on) {
        done++;
        stop = 1;
        break;
      }
    }
    ctx->cur = m;
    ctx->cur_owned = 0;
    if (done < got) {
      /* stopped early: what was taken and not handled goes back */
      tr__mutex_lock(&set->mu);
      if (!set->freed && !set->dead)
        set_give_back(set, ents, chan_of, order, done, got);
      else
        for (size_t j = done; j < got; j++) tr_msg_free(ents[order[j]].m);
      tr__mutex_unlock(&set->mu);
      more = 1;
      stop = 1;
    }
    if (!more || !got) break; /* nothing taken: let others run first */
  }
  *used = k;
  if (rc < 0 || ctx->stop_req) {
    tr_msg_free(m); /* the actor stops: its channels lose their receiver */
    return rc;
  }
  if (more || k >= room_all) {
    tr__token_send(ctx->w, tr_ctx_self(ctx).id, m); /* after what came meanwhile */
    return rc;
  }
  /* nothing ready: park, then look at the marks once more. Once parked
   * the token (and its reference) may be taken by a sender or by
   * tr_chan_select_free at any moment: hold one of our own meanwhile. */
  tr__set_ref(set);
  atomic_store_explicit(&set->parked, m, memory_order_seq_cst);
  int ready = atomic_load_explicit(&set->ready, memory_order_seq_cst) != 0;
  /* tr_chan_select_free marks the set freed under the lock and then takes
   * the parked token: if it looked before we parked, we see the mark */
  tr__mutex_lock(&set->mu);
  int freed = set->freed;
  tr__mutex_unlock(&set->mu);
  if (ready || freed) {
    tr_msg_t *back =
        atomic_exchange_explicit(&set->parked, NULL, memory_order_seq_cst);
    if (back && freed) {
      tick_end_quietly(set, back);
    } else if (back) {
      tick_send(set, back); /* a sender did not see it parked */
    }
  }
  tr__set_unref(set);
  return rc;
}

/* Destructor side of tr_chan_item_t: the value was consumed. */
void tr__item_done(tr_chan_item_t *it) {
  if (it->priv_ == &item_escaped) { /* a set's envelope the handler kept */
    it->priv_ = NULL;
    if (it->chan) tr__chan_unref(it->chan);
    return;
  }
  if (it->chan) tr__item_done_chan(it);
}
