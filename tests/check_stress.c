/* SPDX-License-Identifier: MIT */
/*
 * Stress tests of the runtime, also run under ThreadSanitizer: many
 * external threads and actors sending over a million messages to one actor
 * (none lost, none duplicated, each sender's messages in order); a hundred
 * thousand actors spawned and stopped while messages fly (the live count
 * returns to 0, sends to stopped refs fail cleanly); and concurrent sends
 * to actors being stopped, with exact accounting: every message is either
 * handled, refused at the send, or counted as a dead letter, and freed
 * exactly once. Counts scale with $TR_STRESS_SCALE (smaller under TSan).
 */
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include <troupe.h>

#include "testutil.h"

static uint64_t scaled(double base, uint64_t min) {
  double v = base * tu_stress_scale();
  return v < (double)min ? min : (uint64_t)v;
}

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

static _Atomic uint64_t errors;

/* ---- fan-in: ordered, lossless, duplicate-free ------------------------- */

enum { FAN_THREADS = 4, FAN_ACTORS = 4, FAN_SENDERS = 8, FAN_CHUNK = 1000 };

TR_MESSAGE_TYPE(seq_t, uint32_t sender; uint64_t seq;)
TR_MESSAGE_TYPE(chunk_t, tr_ref_t sink; uint32_t sender; uint64_t next;
                uint64_t count;)
TR_MESSAGE_DEFINE(seq_t);
TR_MESSAGE_DEFINE(chunk_t);

static _Atomic uint64_t fan_next[FAN_SENDERS]; /* next expected seq */
static _Atomic uint64_t fan_received, fan_bad_order;

static int fan_sink_on_seq(tr_ctx_t *ctx, void *state, void *msg) {
  seq_t *m = msg;
  (void)ctx;
  (void)state;
  if (m->sender >= FAN_SENDERS) {
    atomic_fetch_add(&errors, 1);
    return 0;
  }
  if (atomic_load_explicit(&fan_next[m->sender], memory_order_relaxed) !=
      m->seq)
    atomic_fetch_add(&fan_bad_order, 1);
  atomic_store_explicit(&fan_next[m->sender], m->seq + 1,
                        memory_order_relaxed);
  atomic_fetch_add_explicit(&fan_received, 1, memory_order_relaxed);
  return 0;
}

static int send_seq(tr_ctx_t *ctx, tr_ref_t to, uint32_t sender,
                    uint64_t seq) {
  seq_t *m = seq_t_new();
  int rc;
  if (m == NULL)
    return TR_ENOMEM;
  m->sender = sender;
  m->seq = seq;
  rc = tr_send(ctx, to, m);
  return rc;
}

/* An actor sender works in chunks, forwarding its chunk_t to itself to
 * continue, so that no handler runs for long. */
static int fan_actor_on_chunk(tr_ctx_t *ctx, void *state, void *msg) {
  chunk_t *c = msg;
  uint64_t end = c->next + FAN_CHUNK < c->count ? c->next + FAN_CHUNK
                                                : c->count;
  (void)state;
  for (; c->next < end; c->next++)
    if (send_seq(ctx, c->sink, c->sender, c->next) != 0)
      atomic_fetch_add(&errors, 1);
  if (c->next < c->count && tr_send(ctx, tr_ctx_self(ctx), c) != 0)
    atomic_fetch_add(&errors, 1);
  return 0;
}

static const tr_handler_t fan_sink_h[] = {{.type = TR_TYPE(seq_t), .fn = fan_sink_on_seq}};
static const tr_handler_t fan_actor_h[] = {
    {.type = TR_TYPE(chunk_t), .fn = fan_actor_on_chunk}};
static const tr_behavior_t fan_sink = {.name = "fan_sink",
                                       .handlers = TR_HANDLERS(fan_sink_h)};
static const tr_behavior_t fan_actor = {.name = "fan_actor",
                                        .handlers = TR_HANDLERS(fan_actor_h)};

struct fan_thread {
  tr_ref_t sink;
  uint32_t sender;
  uint64_t count;
};

static void *fan_thread_main(void *arg) {
  struct fan_thread *t = arg;
  for (uint64_t i = 0; i < t->count; i++)
    if (send_seq(NULL, t->sink, t->sender, i) != 0)
      atomic_fetch_add(&errors, 1);
  return NULL;
}

START_TEST(test_tr_send_fanin_ordered) {
  uint64_t total = scaled(1200000, 200000);
  uint64_t per = (total + FAN_SENDERS - 1) / FAN_SENDERS;
  tr_runtime_t *rt = tu_runtime(0, 0, 1);
  struct fan_thread ft[FAN_THREADS];
  pthread_t th[FAN_THREADS];
  tr_ref_t sink;
  atomic_store(&errors, 0);
  atomic_store(&fan_received, 0);
  atomic_store(&fan_bad_order, 0);
  for (int i = 0; i < FAN_SENDERS; i++)
    atomic_store(&fan_next[i], 0);
  ck_assert_int_eq(tr_spawn(rt, &fan_sink, NULL, &sink), 0);
  for (uint32_t i = 0; i < FAN_ACTORS; i++) {
    tr_ref_t a;
    chunk_t *c = chunk_t_new();
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(tr_spawn(rt, &fan_actor, NULL, &a), 0);
    c->sink = sink;
    c->sender = FAN_THREADS + i;
    c->count = per;
    ck_assert_int_eq(tr_send(NULL, a, c), 0);
  }
  for (uint32_t i = 0; i < FAN_THREADS; i++) {
    ft[i].sink = sink;
    ft[i].sender = i;
    ft[i].count = per;
    ck_assert_int_eq(pthread_create(&th[i], NULL, fan_thread_main, &ft[i]),
                     0);
  }
  for (int i = 0; i < FAN_THREADS; i++)
    ck_assert_int_eq(pthread_join(th[i], NULL), 0);
  ck_assert_msg(tu_wait_ge(&fan_received, per * FAN_SENDERS, 100000),
                "received %llu of %llu",
                (unsigned long long)atomic_load(&fan_received),
                (unsigned long long)(per * FAN_SENDERS));
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 30000), 0);
  ck_assert_uint_eq(atomic_load(&errors), 0);
  ck_assert_uint_eq(atomic_load(&fan_bad_order), 0);
  ck_assert_uint_eq(atomic_load(&fan_received), per * FAN_SENDERS);
  for (int i = 0; i < FAN_SENDERS; i++)
    ck_assert_msg(atomic_load(&fan_next[i]) == per,
                  "sender %d: last seq %llu + 1, sent %llu", i,
                  (unsigned long long)atomic_load(&fan_next[i]),
                  (unsigned long long)per);
  tu_runtime_finish(rt);
}
END_TEST

/* ---- accounting shared by the churn tests ------------------------------ */

TR_MESSAGE_TYPE(ping_t, uint64_t rnd; uint32_t hops;)
TR_MESSAGE_TYPE(poison_t, int unused;)

static _Atomic uint64_t attempted, sent_ok, send_failed, handled, freed;
static _Atomic uint64_t poison_freed;
static void ping_dtor(void *m) {
  (void)m;
  atomic_fetch_add(&freed, 1);
}
static void poison_dtor(void *m) {
  (void)m;
  atomic_fetch_add(&poison_freed, 1);
}
TR_MESSAGE_DEFINE(ping_t, .dtor = ping_dtor);
TR_MESSAGE_DEFINE(poison_t, .dtor = poison_dtor);

static void acct_reset(void) {
  atomic_store(&errors, 0);
  atomic_store(&attempted, 0);
  atomic_store(&sent_ok, 0);
  atomic_store(&send_failed, 0);
  atomic_store(&handled, 0);
  atomic_store(&freed, 0);
  atomic_store(&poison_freed, 0);
}

/* Sends a ping; counts the outcome; ENOACTOR is the only acceptable
 * failure (unless `must` is set, then none is). */
static void send_ping(tr_ctx_t *ctx, tr_ref_t to, uint64_t rnd,
                      uint32_t hops, int must) {
  ping_t *p = ping_t_new();
  int rc;
  if (p == NULL) {
    atomic_fetch_add(&errors, 1);
    return;
  }
  p->rnd = rnd;
  p->hops = hops;
  atomic_fetch_add(&attempted, 1);
  rc = tr_send(ctx, to, p);
  if (rc == 0) {
    atomic_fetch_add(&sent_ok, 1);
    return;
  }
  if (rc != TR_ENOACTOR || must)
    atomic_fetch_add(&errors, 1);
  atomic_fetch_add(&send_failed, 1); /* the failed send freed p */
}

static void check_accounting(tr_runtime_t *rt) {
  tr_runtime_stats_t st;
  ck_assert_int_eq(tr_runtime_stats(rt, &st), 0);
  ck_assert_uint_eq(atomic_load(&errors), 0);
  ck_assert_uint_eq(atomic_load(&sent_ok) + atomic_load(&send_failed),
                    atomic_load(&attempted));
  ck_assert_msg(atomic_load(&handled) + st.dead_letters ==
                    atomic_load(&sent_ok),
                "handled %llu + dead letters %llu != sent %llu",
                (unsigned long long)atomic_load(&handled),
                (unsigned long long)st.dead_letters,
                (unsigned long long)atomic_load(&sent_ok));
  ck_assert_msg(atomic_load(&freed) == atomic_load(&attempted),
                "freed %llu of %llu messages",
                (unsigned long long)atomic_load(&freed),
                (unsigned long long)atomic_load(&attempted));
  ck_assert_uint_eq(st.actors_live, 0);
}

/* ---- spawn churn ------------------------------------------------------- */

enum { CHURN_SPAWNERS = 2, CHURN_FLIERS = 2, CHURN_LAG = 64 };

static _Atomic uint64_t *churn_refs;
static uint64_t churn_n;
static _Atomic int churn_spawning;

static tr_ref_t churn_pick(uint64_t *rng) {
  tr_ref_t r;
  r.id = atomic_load(&churn_refs[xorshift(rng) % churn_n]);
  return r;
}

/* Handles a ping and, for a first hop, sends one on to a random actor. */
static int churn_on_ping(tr_ctx_t *ctx, void *state, void *msg) {
  ping_t *p = msg;
  (void)state;
  atomic_fetch_add(&handled, 1);
  if (p->hops == 0) {
    uint64_t rng = p->rnd | 1;
    tr_ref_t to = churn_pick(&rng);
    if (!tr_ref_is_null(to))
      send_ping(ctx, to, rng, 1, 0);
  }
  return 0;
}

static int churn_on_poison(tr_ctx_t *ctx, void *state, void *msg) {
  (void)state;
  (void)msg;
  tr_actor_stop(tr_ctx_self(ctx), TR_EXIT_NORMAL);
  return 0;
}

static const tr_handler_t churn_h[] = {
    {.type = TR_TYPE(ping_t), .fn = churn_on_ping},
    {.type = TR_TYPE(poison_t), .fn = churn_on_poison},
};
static const tr_behavior_t churn = {.name = "churn",
                                    .state_size = 32,
                                    .handlers = TR_HANDLERS(churn_h)};

struct spawner {
  tr_runtime_t *rt;
  uint64_t first, end;
};

/* Stops actor i: even ones by tr_actor_stop (which overtakes their mail),
 * odd ones by a poison message queued behind the spawner's own pings, so
 * those pings are handled for sure. */
static void churn_stop(uint64_t i) {
  tr_ref_t r = {atomic_load(&churn_refs[i])};
  if (i % 2 == 0) {
    if (tr_actor_stop(r, TR_EXIT_NORMAL) != 0)
      atomic_fetch_add(&errors, 1);
  } else {
    poison_t *p = poison_t_new();
    if (p == NULL || tr_send(NULL, r, p) != 0)
      atomic_fetch_add(&errors, 1);
  }
}

static void *spawner_main(void *arg) {
  struct spawner *s = arg;
  uint64_t rng = 0x9e3779b97f4a7c15ull ^ s->first;
  for (uint64_t i = s->first; i < s->end; i++) {
    tr_ref_t r;
    if (tr_spawn(s->rt, &churn, NULL, &r) != 0) {
      atomic_fetch_add(&errors, 1);
      continue;
    }
    atomic_store(&churn_refs[i], r.id);
    send_ping(NULL, r, xorshift(&rng), 0, 1);
    send_ping(NULL, r, xorshift(&rng), 0, 1);
    if (i >= s->first + CHURN_LAG)
      churn_stop(i - CHURN_LAG);
  }
  for (uint64_t i = s->end > s->first + CHURN_LAG ? s->end - CHURN_LAG
                                                  : s->first;
       i < s->end; i++)
    churn_stop(i);
  return NULL;
}

static void *flier_main(void *arg) {
  uint64_t rng = 0x2545f4914f6cdd1dull + (uintptr_t)arg;
  while (atomic_load(&churn_spawning)) {
    tr_ref_t to = churn_pick(&rng);
    if (tr_ref_is_null(to)) {
      sched_yield();
      continue;
    }
    send_ping(NULL, to, xorshift(&rng), 0, 0);
  }
  return NULL;
}

START_TEST(test_tr_spawn_churn) {
  tr_runtime_t *rt = tu_runtime(0, 0, 1);
  struct spawner sp[CHURN_SPAWNERS];
  pthread_t ts[CHURN_SPAWNERS], tf[CHURN_FLIERS];
  tr_runtime_stats_t st;
  acct_reset();
  churn_n = scaled(100000, 10000);
  churn_refs = calloc(churn_n, sizeof(*churn_refs));
  ck_assert_ptr_nonnull(churn_refs);
  atomic_store(&churn_spawning, 1);
  for (uintptr_t i = 0; i < CHURN_FLIERS; i++)
    ck_assert_int_eq(pthread_create(&tf[i], NULL, flier_main, (void *)i), 0);
  for (int i = 0; i < CHURN_SPAWNERS; i++) {
    sp[i].rt = rt;
    sp[i].first = churn_n * (uint64_t)i / CHURN_SPAWNERS;
    sp[i].end = churn_n * (uint64_t)(i + 1) / CHURN_SPAWNERS;
    ck_assert_int_eq(pthread_create(&ts[i], NULL, spawner_main, &sp[i]), 0);
  }
  for (int i = 0; i < CHURN_SPAWNERS; i++)
    ck_assert_int_eq(pthread_join(ts[i], NULL), 0);
  atomic_store(&churn_spawning, 0);
  for (int i = 0; i < CHURN_FLIERS; i++)
    ck_assert_int_eq(pthread_join(tf[i], NULL), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 60000), 0);
  ck_assert_int_eq(tr_runtime_stats(rt, &st), 0);
  ck_assert_uint_eq(st.actors_live, 0);
  ck_assert_uint_eq(st.actors_spawned, churn_n);
  ck_assert_uint_eq(st.actors_stopped, churn_n);
  ck_assert_uint_eq(atomic_load(&errors), 0);
  /* Every stopped ref now fails cleanly, its slot reused or not. */
  for (uint64_t i = 0; i < churn_n; i++) {
    tr_ref_t r = {atomic_load(&churn_refs[i])};
    uint64_t before = atomic_load(&send_failed);
    send_ping(NULL, r, 1, 1, 0);
    ck_assert_uint_eq(atomic_load(&send_failed), before + 1);
  }
  ck_assert_int_eq(tr_runtime_shutdown(rt, 30000), 0);
  check_accounting(rt);
  /* The spawner's two pings to each odd actor precede its poison. */
  ck_assert_uint_ge(atomic_load(&handled), churn_n / 2 * 2);
  ck_assert_uint_eq(atomic_load(&poison_freed), churn_n / 2);
  tr_runtime_free(rt);
  free(churn_refs);
  churn_refs = NULL;
}
END_TEST

/* ---- sends racing with stops ------------------------------------------- */

enum { RACE_SENDERS = 4 };

static tr_ref_t *race_targets;
static uint64_t race_m, race_total;

static int race_on_ping(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  (void)msg;
  atomic_fetch_add(&handled, 1);
  return 0;
}

static int race_on_poison(tr_ctx_t *ctx, void *state, void *msg) {
  (void)state;
  (void)msg;
  tr_actor_stop(tr_ctx_self(ctx), TR_EXIT_NORMAL);
  return 0;
}

static const tr_handler_t race_h[] = {
    {.type = TR_TYPE(ping_t), .fn = race_on_ping},
    {.type = TR_TYPE(poison_t), .fn = race_on_poison},
};
static const tr_behavior_t race = {.name = "race",
                                   .handlers = TR_HANDLERS(race_h)};

static _Atomic int race_stops_done;

/* Sends its share, and goes on until every target has been told to stop
 * (so the stops always race with sends, however the threads are
 * scheduled), then a last few that all target stopping or stopped actors. */
static void *race_sender_main(void *arg) {
  uint64_t rng = 0x853c49e6748fea9bull + (uintptr_t)arg;
  uint64_t i = 0;
  while (i < race_total / RACE_SENDERS || !atomic_load(&race_stops_done)) {
    send_ping(NULL, race_targets[xorshift(&rng) % race_m], 0, 1, 0);
    i++;
  }
  for (i = 0; i < 1000; i++)
    send_ping(NULL, race_targets[xorshift(&rng) % race_m], 0, 1, 0);
  return NULL;
}

/* Stops target i once about (i + 1) / (m + 1) of the sends happened, so
 * that the stops are spread over the whole run; even targets by
 * tr_actor_stop, odd ones by a poison message they act on. */
static void *race_stopper_main(void *arg) {
  (void)arg;
  /* Stop nothing before deliveries are under way. */
  while (atomic_load(&handled) == 0)
    sched_yield();
  for (uint64_t i = 0; i < race_m; i++) {
    uint64_t at = race_total * (i + 1) / (race_m + 1);
    while (atomic_load(&attempted) < at)
      sched_yield();
    if (i % 2 == 0) {
      if (tr_actor_stop(race_targets[i], TR_EXIT_NORMAL) != 0)
        atomic_fetch_add(&errors, 1);
    } else {
      poison_t *p = poison_t_new();
      if (p == NULL || tr_send(NULL, race_targets[i], p) != 0)
        atomic_fetch_add(&errors, 1);
    }
  }
  atomic_store(&race_stops_done, 1);
  return NULL;
}

START_TEST(test_tr_actor_stop_racing_sends) {
  tr_runtime_t *rt = tu_runtime(0, 0, 1);
  pthread_t ts[RACE_SENDERS], tstop;
  acct_reset();
  atomic_store(&race_stops_done, 0);
  race_m = scaled(2000, 400);
  race_total = scaled(800000, 200000) / RACE_SENDERS * RACE_SENDERS;
  race_targets = calloc(race_m, sizeof(*race_targets));
  ck_assert_ptr_nonnull(race_targets);
  for (uint64_t i = 0; i < race_m; i++)
    ck_assert_int_eq(tr_spawn(rt, &race, NULL, &race_targets[i]), 0);
  for (uintptr_t i = 0; i < RACE_SENDERS; i++)
    ck_assert_int_eq(
        pthread_create(&ts[i], NULL, race_sender_main, (void *)i), 0);
  ck_assert_int_eq(pthread_create(&tstop, NULL, race_stopper_main, NULL), 0);
  for (int i = 0; i < RACE_SENDERS; i++)
    ck_assert_int_eq(pthread_join(ts[i], NULL), 0);
  ck_assert_int_eq(pthread_join(tstop, NULL), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 60000), 0);
  ck_assert_uint_eq(atomic_load(&errors), 0);
  for (uint64_t i = 0; i < race_m; i++) {
    uint64_t before = atomic_load(&send_failed);
    send_ping(NULL, race_targets[i], 0, 1, 0);
    ck_assert_uint_eq(atomic_load(&send_failed), before + 1);
  }
  ck_assert_int_eq(tr_runtime_shutdown(rt, 30000), 0);
  check_accounting(rt);
  ck_assert_uint_eq(atomic_load(&poison_freed), race_m / 2);
  tr_runtime_free(rt);
  free(race_targets);
  race_targets = NULL;
}
END_TEST

static Suite *stress_suite(void) {
  Suite *s = suite_create("stress");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_tr_send_fanin_ordered);
  tcase_add_test(tc, test_tr_spawn_churn);
  tcase_add_test(tc, test_tr_actor_stop_racing_sends);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(stress_suite()); }
