/* SPDX-License-Identifier: MIT */
/*
 * The supervisor actor (see <troupe/supervisor.h>). It is an ordinary
 * actor built on the public API: it traps exits, links to its children at
 * spawn, and runs a small state machine: while children are being stopped
 * (for a group restart, an escalation or a shutdown) it stops them one at
 * a time in reverse start order, waiting for each one's exit before the
 * next, then carries on with what it was doing.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <troupe.h>
#include <troupe/supervisor.h>

static void info_dtor(void *msg) {
  tr_sup_info_t *q = msg;
  free(q->children);
  q->children = NULL;
}

TR_MESSAGE_DEFINE(tr_sup_info_t, .dtor = info_dtor);

size_t tr_sup_info_children(const tr_sup_info_t *q, tr_ref_t *out,
                            size_t capacity) {
  if (!q) return 0;
  size_t n = q->children && capacity < q->nchildren ? capacity
             : q->children                          ? q->nchildren
                                                    : 0;
  if (n) memcpy(out, q->children, n * sizeof(*out));
  return q->nchildren;
}

enum { CH_STOPPED = 0, CH_RUNNING = 1, CH_STOPPING = 2 };
enum { SUP_RUNNING = 0, SUP_RESTARTING = 1, SUP_SHUTDOWN = 2 };

typedef struct child {
  tr_child_spec_t spec;
  tr_ref_t ref;
  int state;
  int stop;    /* to be stopped in the current round */
  tr_timer_id_t kill_timer; /* armed while it is asked to stop */
  int restart; /* to be started again after the current round */
} child_t;

typedef struct sup {
  tr_sup_strategy_t strategy;
  unsigned max_restarts;
  uint64_t period_ms;
  size_t n;
  child_t *ch;
  uint64_t *stamps; /* ring of the last max_restarts+1 restart times (ms) */
  size_t nstamps, stamp_pos;
  uint64_t restarts;
  int phase;
  int exit_reason; /* SUP_SHUTDOWN: the reason to stop with */
} sup_t;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int start_child(tr_ctx_t *ctx, child_t *c) {
  tr_spawn_opts_t o = {.priority = c->spec.priority, .flags = TR_SPAWN_LINK};
  int rc = tr_spawn_ex(tr_ctx_runtime(ctx), c->spec.behavior, c->spec.arg, &o,
                       &c->ref);
  if (rc) {
    c->ref = TR_REF_NULL;
    c->state = CH_STOPPED;
    return rc;
  }
  c->state = CH_RUNNING;
  return 0;
}

/* Records a restart; returns 0, or 1 when the intensity is exceeded. */
static int note_restart(sup_t *s) {
  uint64_t t = now_ms();
  s->restarts++;
  s->stamps[s->stamp_pos] = t;
  s->stamp_pos = (s->stamp_pos + 1) % s->nstamps;
  if (s->restarts <= s->max_restarts) return 0;
  /* the oldest of the last max_restarts+1 restarts */
  uint64_t oldest = s->stamps[s->stamp_pos];
  return t - oldest < s->period_ms;
}

/* Next step of a stop round: stop the last running child not yet stopped,
 * or, when none is left, finish the round. Returns a handler result. */
static int advance(tr_ctx_t *ctx, sup_t *s);

static int begin_shutdown(tr_ctx_t *ctx, sup_t *s, int reason) {
  s->phase = SUP_SHUTDOWN;
  s->exit_reason = reason;
  for (size_t i = 0; i < s->n; i++) s->ch[i].restart = s->ch[i].stop = 0;
  return advance(ctx, s);
}

static int restart_marked(tr_ctx_t *ctx, sup_t *s) {
  for (size_t i = 0; i < s->n; i++) {
    child_t *c = &s->ch[i];
    if (!c->restart) continue;
    c->restart = 0;
    while (start_child(ctx, c) != 0) {
      /* a child that cannot start counts as one more failure */
      if (note_restart(s)) return begin_shutdown(ctx, s, TR_EFAILED);
    }
  }
  s->phase = SUP_RUNNING;
  return 0;
}

static int advance(tr_ctx_t *ctx, sup_t *s) {
  for (size_t i = s->n; i-- > 0;) {
    child_t *c = &s->ch[i];
    if (c->state == CH_STOPPING) return 0; /* still waiting for it */
    if (c->state == CH_RUNNING && (s->phase == SUP_SHUTDOWN || c->stop)) {
      c->state = CH_STOPPING;
      c->stop = 0;
      tr_duration_t ms = c->spec.shutdown_ms ? c->spec.shutdown_ms : 5000;
      c->kill_timer = 0;
      if (ms > 0 &&
          tr_timer_start(ctx, ms, TR_FOREVER, (uint64_t)i, &c->kill_timer) != 0)
        c->kill_timer = 0; /* no timer: wait as long as it takes */
      if (tr_actor_stop(c->ref, TR_EXIT_SHUTDOWN) != 0) {
        /* already gone: its exit is on the way */
      }
      return 0;
    }
  }
  if (s->phase == SUP_SHUTDOWN) {
    tr_actor_stop(tr_ctx_self(ctx), s->exit_reason);
    return 0;
  }
  return restart_marked(ctx, s);
}

static int on_exit_msg(tr_ctx_t *ctx, void *state, void *msg) {
  sup_t *s = state;
  tr_exit_t *e = msg;
  size_t idx = s->n;
  for (size_t i = 0; i < s->n; i++)
    if (s->ch[i].state != CH_STOPPED && tr_ref_eq(s->ch[i].ref, e->from)) {
      idx = i;
      break;
    }
  if (idx == s->n) {
    /* not a child: a stop request or the parent's exit */
    if (tr_ref_is_null(e->from) || e->reason != TR_EXIT_NORMAL)
      return begin_shutdown(ctx, s, e->reason);
    return 0;
  }
  child_t *c = &s->ch[idx];
  int was_stopping = c->state == CH_STOPPING;
  if (c->kill_timer) {
    (void)tr_timer_cancel(tr_ctx_runtime(ctx), c->kill_timer); /* may have fired */
    c->kill_timer = 0;
  }
  c->state = CH_STOPPED;
  c->ref = TR_REF_NULL;
  c->stop = 0;
  if (was_stopping || s->phase == SUP_SHUTDOWN) return advance(ctx, s);

  int wants = c->spec.restart == TR_RESTART_PERMANENT ||
              (c->spec.restart == TR_RESTART_TRANSIENT &&
               e->reason != TR_EXIT_NORMAL && e->reason != TR_EXIT_SHUTDOWN);
  if (!wants) return s->phase == SUP_RESTARTING ? advance(ctx, s) : 0;
  if (note_restart(s)) return begin_shutdown(ctx, s, TR_EFAILED);

  c->restart = 1;
  size_t from = s->n; /* first sibling that goes down with it */
  if (s->strategy == TR_SUP_ONE_FOR_ALL) from = 0;
  else if (s->strategy == TR_SUP_REST_FOR_ONE) from = idx + 1;
  for (size_t i = from; i < s->n; i++) {
    child_t *d = &s->ch[i];
    if (d->state != CH_RUNNING) continue;
    d->stop = 1;
    /* temporary children go down with the group but stay down */
    d->restart = d->spec.restart != TR_RESTART_TEMPORARY;
  }
  s->phase = SUP_RESTARTING;
  return advance(ctx, s);
}

/* A child asked to stop did not stop within its shutdown_ms: kill it. */
static int on_kill_timer(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  sup_t *s = state;
  tr_timer_fired_t *t = msg;
  size_t i = (size_t)t->cookie;
  if (i < s->n && s->ch[i].state == CH_STOPPING && s->ch[i].kill_timer == t->id) {
    s->ch[i].kill_timer = 0;
    (void)tr_actor_stop(s->ch[i].ref, TR_EXIT_KILLED);
  }
  return 0;
}

static int on_info(tr_ctx_t *ctx, void *state, void *msg) {
  sup_t *s = state;
  tr_sup_info_t *q = msg;
  q->nchildren = s->n;
  q->running = 0;
  q->restarts = s->restarts;
  q->status = 0;
  free(q->children); /* a message asked with before */
  q->children = s->n ? malloc(s->n * sizeof(*q->children)) : NULL;
  if (s->n && !q->children) q->status = TR_ENOMEM;
  for (size_t i = 0; i < s->n; i++) {
    if (s->ch[i].state != CH_STOPPED) q->running++;
    if (q->children)
      q->children[i] = s->ch[i].state != CH_STOPPED ? s->ch[i].ref : TR_REF_NULL;
  }
  (void)tr_reply(ctx, q); /* an asker that is gone needs no answer */
  return 0;
}

static int sup_init(tr_ctx_t *ctx, void *state, void *arg) {
  sup_t *s = state;
  const tr_sup_spec_t *spec = arg;
  if (!spec || (spec->nchildren && !spec->children) ||
      spec->nchildren > TR_SUP_MAX_CHILDREN ||
      (unsigned)spec->strategy > TR_SUP_REST_FOR_ONE || spec->period_ms < 0)
    return TR_EINVAL;
  for (size_t i = 0; i < spec->nchildren; i++)
    if (!spec->children[i].behavior ||
        (unsigned)spec->children[i].restart > TR_RESTART_TEMPORARY ||
        spec->children[i].shutdown_ms < TR_FOREVER)
      return TR_EINVAL;
  s->strategy = spec->strategy;
  s->max_restarts = spec->max_restarts ? spec->max_restarts : 3;
  s->period_ms = spec->period_ms ? (uint64_t)spec->period_ms : 5000;
  s->n = spec->nchildren;
  s->nstamps = s->max_restarts + 1;
  s->ch = calloc(s->n ? s->n : 1, sizeof(child_t));
  s->stamps = calloc(s->nstamps, sizeof(uint64_t));
  if (!s->ch || !s->stamps) return TR_ENOMEM;
  for (size_t i = 0; i < s->n; i++) s->ch[i].spec = spec->children[i];
  tr_ctx_trap_exit(ctx, 1);
  for (size_t i = 0; i < s->n; i++) {
    int rc = start_child(ctx, &s->ch[i]);
    if (rc) {
      /* the children started so far are linked to us: our failed start
       * takes them down with this reason */
      return rc;
    }
  }
  return 0;
}

static void sup_stop(tr_ctx_t *ctx, void *state, int reason) {
  (void)ctx;
  (void)reason;
  sup_t *s = state;
  /* children still running are linked: our exit stops them */
  free(s->ch);
  free(s->stamps);
  s->ch = NULL;
  s->stamps = NULL;
}

static const tr_handler_t sup_handlers[] = {
    {TR_TYPE(tr_exit_t), on_exit_msg},
    {TR_TYPE(tr_sup_info_t), on_info},
    {TR_TYPE(tr_timer_fired_t), on_kill_timer},
};

const tr_behavior_t tr_supervisor_behavior = {
    .name = "tr.supervisor",
    .state_size = sizeof(sup_t),
    .init = sup_init,
    .on_stop = sup_stop,
    .handlers = sup_handlers,
    .nhandlers = sizeof(sup_handlers) / sizeof(sup_handlers[0]),
};

int tr_sup_spawn(tr_runtime_t *rt, const tr_sup_spec_t *spec,
                 tr_ref_t *out) {
  if (!rt || !spec) return TR_EINVAL;
  return tr_spawn(rt, &tr_supervisor_behavior, (void *)spec, out);
}
