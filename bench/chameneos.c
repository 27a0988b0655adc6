/* SPDX-License-Identifier: MIT */
/*
 * chameneos benchmark: C creatures, each of one of three colours, go to a
 * mall to meet; the mall pairs them two by two M times. Both creatures of a
 * pair learn the other's colour and id, take the complement colour and go
 * back at once, so every message crosses the one mall actor: a many-to-one
 * request/reply graph whose hub is always busy. Each creature keeps one
 * message for its whole life (no allocation per meeting). When the M
 * meetings are done the mall answers "stop", each creature reports its
 * count of meetings and the sum of its partners' ids, and the mall checks
 * that sum against its own (a meeting seen by only one side, or twice,
 * would break it). Checksum: the meetings counted by the creatures, 2·M.
 */
#include "benchutil.h"

#include <pthread.h>

enum { MEET, MET, STOP, REPORT };

TR_MESSAGE_TYPE(visit_t, uint32_t kind; uint32_t id; uint32_t colour;
                uint32_t partner_id; uint32_t partner_colour;
                uint64_t meetings; uint64_t partner_sum;);
TR_MESSAGE_DEFINE(visit_t);

/* The mall starts the run: it spawns the creatures. */
TR_MESSAGE_TYPE(open_t, uint64_t creatures;);
TR_MESSAGE_DEFINE(open_t);

/* What the main thread receives at the end. */
TR_MESSAGE_TYPE(closed_t, uint64_t meetings; uint64_t colours;
                uint64_t moves;);
TR_MESSAGE_DEFINE(closed_t);

typedef struct mall {
  tr_ref_t done;
  uint64_t left;       /* meetings still to arrange */
  visit_t *waiting;    /* a creature waiting for a partner, or NULL */
  uint64_t pair_sum;   /* sum over meetings of both ids */
  uint64_t creatures;  /* creatures that have not reported */
  uint64_t meetings;   /* meetings reported by the creatures */
  uint64_t partners;   /* partner ids reported by the creatures */
  uint64_t colours;    /* the creatures' final colours, summed */
  pthread_t last;      /* the worker thread of the previous visit */
  uint64_t moves;      /* visits handled on another thread than the last */
} mall_t;

typedef struct creature {
  tr_ref_t mall;
  uint32_t id;
  uint32_t colour;
  uint64_t meetings;
  uint64_t partner_sum;
} creature_t;

/* The colour a creature takes after meeting one of colour b. */
static uint32_t complement(uint32_t a, uint32_t b) {
  return a == b ? a : 3 - a - b;
}

static int creature_init(tr_ctx_t *ctx, void *state, void *arg) {
  creature_t *c = state;
  *c = *(const creature_t *)arg;
  visit_t *v = bench_msg_new(TR_TYPE(visit_t));
  v->kind = MEET;
  v->id = c->id;
  v->colour = c->colour;
  BENCH_CHECK(tr_send(ctx, c->mall, v));
  return 0;
}

static int creature_on_visit(tr_ctx_t *ctx, void *state, void *msg) {
  creature_t *c = state;
  visit_t *v = msg;
  if (v->kind == STOP) {
    v->kind = REPORT;
    v->colour = c->colour;
    v->meetings = c->meetings;
    v->partner_sum = c->partner_sum;
    BENCH_CHECK(tr_send(ctx, c->mall, v));
    tr_actor_stop(tr_ctx_self(ctx), TR_EXIT_NORMAL);
    return 0;
  }
  if (v->partner_id == c->id)
    bench_die("creature %u met itself", c->id);
  c->colour = complement(c->colour, v->partner_colour);
  c->meetings++;
  c->partner_sum += v->partner_id;
  v->kind = MEET;
  v->colour = c->colour;
  BENCH_CHECK(tr_send(ctx, c->mall, v));
  return 0;
}

static const tr_handler_t creature_handlers[] = {
    {.type = TR_TYPE(visit_t), .fn = creature_on_visit}};
static const tr_behavior_t creature = {
    .name = "creature",
    .state_size = sizeof(creature_t),
    .init = creature_init,
    .handlers = TR_HANDLERS(creature_handlers)};

static int mall_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  *(mall_t *)state = *(const mall_t *)arg;
  return 0;
}

static int mall_on_open(tr_ctx_t *ctx, void *state, void *msg) {
  mall_t *m = state;
  const open_t *o = msg;
  m->creatures = o->creatures;
  for (uint64_t i = 0; i < o->creatures; i++) {
    creature_t c = {.mall = tr_ctx_self(ctx),
                    .id = (uint32_t)i + 1,
                    .colour = (uint32_t)(i % 3)};
    tr_ref_t ref;
    BENCH_CHECK(tr_spawn(tr_ctx_runtime(ctx), &creature, &c, &ref));
  }
  return 0;
}

static int mall_on_visit(tr_ctx_t *ctx, void *state, void *msg) {
  mall_t *m = state;
  visit_t *v = msg;
  /* how often the hub changes worker: each move drags its state and
   * inbox to another core's cache */
  if (!pthread_equal(m->last, pthread_self())) {
    m->moves++;
    m->last = pthread_self();
  }
  if (v->kind == REPORT) {
    m->meetings += v->meetings;
    m->partners += v->partner_sum;
    m->colours += v->colour;
    if (--m->creatures > 0)
      return 0;
    if (m->partners != m->pair_sum)
      bench_die("partner ids: creatures saw %" PRIu64 ", the mall %" PRIu64,
                m->partners, m->pair_sum);
    closed_t *c = bench_msg_new(TR_TYPE(closed_t));
    c->meetings = m->meetings;
    c->colours = m->colours;
    c->moves = m->moves;
    BENCH_CHECK(tr_send(ctx, m->done, c));
    return 0;
  }
  if (m->left == 0) {
    v->kind = STOP;
    BENCH_CHECK(tr_send(ctx, tr_msg_sender(v), v));
    return 0;
  }
  if (m->waiting == NULL) {
    tr_ctx_take(ctx);
    m->waiting = v;
    return 0;
  }
  visit_t *w = m->waiting;
  m->waiting = NULL;
  m->left--;
  m->pair_sum += (uint64_t)v->id + w->id;
  v->kind = w->kind = MET;
  v->partner_id = w->id;
  v->partner_colour = w->colour;
  w->partner_id = v->id;
  w->partner_colour = v->colour;
  BENCH_CHECK(tr_send(ctx, tr_msg_sender(w), w));
  BENCH_CHECK(tr_send(ctx, tr_msg_sender(v), v));
  return 0;
}

static const tr_handler_t mall_handlers[] = {
    {.type = TR_TYPE(open_t), .fn = mall_on_open},
    {.type = TR_TYPE(visit_t), .fn = mall_on_visit}};
static const tr_behavior_t mall = {
    .name = "mall",
    .state_size = sizeof(mall_t),
    .init = mall_init,
    .handlers = TR_HANDLERS(mall_handlers)};

int main(int argc, char **argv) {
  uint64_t creatures = 500, meetings = 2000000, workers = 2, timeout = 600;
  const bench_opt_t opts[] = {{'c', "creatures", &creatures},
                              {'n', "meetings", &meetings},
                              {'w', "workers", &workers},
                              {'t', "timeout_s", &timeout}};
  bench_parse_args(argc, argv, "chameneos", opts, 4);
  bench_print_params("chameneos", opts, 4);
  if (creatures < 2 || creatures > UINT32_MAX - 1)
    bench_die("the mall needs at least two creatures");

  tr_runtime_t *rt;
  tr_handle_t *h;
  bench_runtime_start(workers, &rt, &h);

  mall_t args = {.done = tr_handle_ref(h), .left = meetings};
  tr_ref_t ref;
  BENCH_CHECK(tr_spawn(rt, &mall, &args, &ref));

  double t0 = bench_now();
  open_t *o = bench_msg_new(TR_TYPE(open_t));
  o->creatures = creatures;
  BENCH_CHECK(tr_send(NULL, ref, o));
  closed_t *c = bench_wait_done(h, timeout);
  double secs = bench_now() - t0;

  bench_result("chameneos", secs, c->meetings,
               " rate=%.0f colours=%" PRIu64 " mall_moves=%" PRIu64,
               (double)meetings / secs, c->colours, c->moves);
  tr_msg_free(c);
  bench_runtime_end(rt, h);
  return 0;
}
