/* SPDX-License-Identifier: MIT */
/*
 * pipeline: the flagship example, an actor graph that turns lines of text
 * into statistics.
 *
 *   source --line--> parse --reading, by sensor--> worker 0..K-1 --report--+
 *      |               |                                                   |
 *      +---report------+-------------------------------------------> sink  |
 *                                                                     |  <-+
 *   main (a tr_handle_t) <--------------- summary -------------------+
 *
 * The source emits N lines of text describing temperature readings from 64
 * sensors, a few of them malformed. The parse stage turns each line into a
 * typed reading, or rejects it, and routes it by sensor number to one of K
 * workers, so that each sensor's statistics live in exactly one actor. At
 * the end every stage sends a report to the sink, which merges them and
 * sends one summary to main. main prints what happened and checks the
 * result against the same computation done sequentially: exit status 1
 * means they differ. main also monitors every actor, so that if one of
 * them fails it says which and why, and exits with status 1 at once.
 *
 * Usage: pipeline [ITEMS [WORKERS]]   (defaults: 100000 items, 4 workers)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <troupe.h>

#define NSENSORS 64     /* sensor numbers are 0..63 */
#define MAX_WORKERS 64  /* fan-out limit of this example */
#define BATCH 512       /* lines the source emits per run */
#define LINE_MAX_LEN 64 /* "seq=18446744073709551615 sensor=63 temp=-9.999" */

/* ---- The data ------------------------------------------------------------
 * Everything below is plain C shared by the actors and by the sequential
 * check in main, so both compute exactly the same thing. */

/* The splitmix64 finaliser: a cheap, well-mixed 64-bit hash. */
static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

/* Writes line number seq into buf, e.g. "seq=7 sensor=42 temp=21.375".
 * The temperature depends on the sensor plus noise; about one line in 500
 * says "temp=n/a" and must be rejected by the parser. */
static void make_line(uint64_t seq, char *buf, size_t size) {
  uint64_t r = mix64(seq + 0x9e3779b97f4a7c15ull);
  unsigned sensor = (unsigned)(r % NSENSORS);
  int base, milli, whole, frac;

  if ((r >> 20) % 500 == 0) {
    snprintf(buf, size, "seq=%" PRIu64 " sensor=%u temp=n/a", seq, sensor);
    return;
  }
  base = -4000 + (int)(sensor * 37u % 19u) * 1500; /* -4.000 .. 23.000 */
  milli = base + (int)((r >> 32) % 6001u) - 3000;  /* +- 3 degrees */
  whole = abs(milli) / 1000;
  frac = abs(milli) % 1000;
  snprintf(buf, size, "seq=%" PRIu64 " sensor=%u temp=%s%d.%03d", seq, sensor,
           milli < 0 ? "-" : "", whole, frac);
}

/* Reads an unsigned decimal number at *p; advances *p past it. */
static int parse_uint(const char **p, uint64_t *out) {
  const char *s = *p;
  uint64_t v = 0;

  if (*s < '0' || *s > '9') return -1;
  for (; *s >= '0' && *s <= '9'; s++) {
    unsigned d = (unsigned)(*s - '0');
    if (v > (UINT64_MAX - d) / 10) return -1; /* overflow */
    v = v * 10 + d;
  }
  *p = s;
  *out = v;
  return 0;
}

static int expect(const char **p, const char *literal) {
  size_t n = strlen(literal);

  if (strncmp(*p, literal, n) != 0) return -1;
  *p += n;
  return 0;
}

/* Parses a line made by make_line. The temperature is converted from
 * decimal degrees to integer milli-degrees, so that every sum below is
 * exact and independent of the order in which it is computed.
 * Returns 0, or -1 for a malformed line. */
static int parse_line(const char *s, uint64_t *seq, uint32_t *sensor,
                      int32_t *milli) {
  uint64_t num, whole, frac;
  const char *frac_start;
  int neg = 0;

  if (expect(&s, "seq=") || parse_uint(&s, seq)) return -1;
  if (expect(&s, " sensor=") || parse_uint(&s, &num) || num >= NSENSORS)
    return -1;
  *sensor = (uint32_t)num;
  if (expect(&s, " temp=")) return -1;
  if (*s == '-') {
    neg = 1;
    s++;
  }
  if (parse_uint(&s, &whole) || whole > 999 || expect(&s, ".")) return -1;
  frac_start = s;
  if (parse_uint(&s, &frac) || s - frac_start != 3 || *s != '\0') return -1;
  *milli = (int32_t)(whole * 1000 + frac);
  if (neg) *milli = -*milli;
  return 0;
}

/* Statistics of one sensor. The checksum is a sum of per-reading hashes:
 * it proves that every reading was counted exactly once, in any order. */
typedef struct sensor_stats {
  uint64_t count;
  int64_t sum; /* milli-degrees */
  int32_t min, max;
  uint64_t checksum;
} sensor_stats_t;

static void stats_add(sensor_stats_t *st, uint64_t seq, int32_t milli) {
  if (st->count == 0 || milli < st->min) st->min = milli;
  if (st->count == 0 || milli > st->max) st->max = milli;
  st->count++;
  st->sum += milli;
  st->checksum += mix64(seq ^ ((uint64_t)(uint32_t)milli << 32));
}

static void stats_merge(sensor_stats_t *into, const sensor_stats_t *from) {
  if (from->count == 0) return;
  if (into->count == 0 || from->min < into->min) into->min = from->min;
  if (into->count == 0 || from->max > into->max) into->max = from->max;
  into->count += from->count;
  into->sum += from->sum;
  into->checksum += from->checksum;
}

/* ---- Messages ------------------------------------------------------------
 * Each type is declared once (TR_MESSAGE_TYPE) and its descriptor defined
 * once (TR_MESSAGE_DEFINE). A program split into several files would put
 * the declarations in a header. */

TR_MESSAGE_TYPE(start_t, uint64_t items;)   /* main -> source */
TR_MESSAGE_TYPE(tick_t, uint32_t batch;)    /* source -> itself */
TR_MESSAGE_TYPE(line_t, uint64_t seq; char text[LINE_MAX_LEN];)
TR_MESSAGE_TYPE(reading_t, uint64_t seq; uint32_t sensor; int32_t milli;)
/* End of stream: "you have been sent `count` items in all". A stage ends
 * once it has seen this and handled that many items. */
TR_MESSAGE_TYPE(eos_t, uint64_t count;)

enum stage { STAGE_SOURCE, STAGE_PARSE, STAGE_WORKER };

/* What one stage did; workers add the statistics of their sensors. */
TR_MESSAGE_TYPE(report_t,
                int stage;
                unsigned index;
                uint64_t in;
                uint64_t out;
                uint64_t rejected;
                sensor_stats_t sensors[NSENSORS];)

/* Everything the sink learns, and main's sequential check computes. */
typedef struct totals {
  uint64_t emitted, lines, parsed, rejected;
  unsigned nworkers;
  uint64_t worker_items[MAX_WORKERS];
  unsigned worker_sensors[MAX_WORKERS];
  uint64_t worker_checksum[MAX_WORKERS];
  sensor_stats_t sensors[NSENSORS];
} totals_t;

/* The sink's answer to main. */
TR_MESSAGE_TYPE(summary_t, totals_t totals;)

TR_MESSAGE_DEFINE(start_t);
TR_MESSAGE_DEFINE(tick_t);
TR_MESSAGE_DEFINE(line_t);
TR_MESSAGE_DEFINE(reading_t);
TR_MESSAGE_DEFINE(eos_t);
TR_MESSAGE_DEFINE(report_t);
TR_MESSAGE_DEFINE(summary_t);

/* Typed references: parse_ref_send_line_t() exists, and there is no
 * parse_ref_send_report_t(), so sending a report to the parser is a
 * compile-time error. */
TR_TYPED_REF(source_ref)
TR_ACCEPTS(source_ref, start_t)
TR_ACCEPTS(source_ref, tick_t)

TR_TYPED_REF(parse_ref)
TR_ACCEPTS(parse_ref, line_t)
TR_ACCEPTS(parse_ref, eos_t)

TR_TYPED_REF(worker_ref)
TR_ACCEPTS(worker_ref, reading_t)
TR_ACCEPTS(worker_ref, eos_t)

TR_TYPED_REF(sink_ref)
TR_ACCEPTS(sink_ref, report_t)

/* A send consumes its message even when it fails (the failed send frees
 * it); the error is returned so that the handler fails the actor with it. */
static int sent(int rc, void *msg) {
  (void)msg;
  return rc;
}

/* ---- The source ------------------------------------------------------------
 * A handler must not block or run for long, so the source does not emit its
 * N lines in one go: each run emits BATCH lines and then sends itself a tick
 * to continue later. In between, the scheduler runs the other actors. */

struct source_args {
  parse_ref parse;
  sink_ref sink;
};

struct source {
  struct source_args to;
  uint64_t total, next;
};

/* init runs inside tr_spawn, on the caller's thread, so it may copy its
 * argument from the caller's stack. */
static int source_init(tr_ctx_t *ctx, void *state, void *arg) {
  struct source *s = state;

  (void)ctx;
  s->to = *(const struct source_args *)arg;
  return 0;
}

static int source_tick_self(tr_ctx_t *ctx) {
  tick_t *t = tick_t_new();

  if (t == NULL) return TR_ENOMEM;
  t->batch = BATCH;
  return sent(source_ref_send_tick_t(ctx, source_ref_from(tr_ctx_self(ctx)), t),
              t);
}

static int source_on_start(tr_ctx_t *ctx, void *state, void *msg) {
  struct source *s = state;
  const start_t *start = msg;

  s->total = start->items;
  s->next = 0;
  return source_tick_self(ctx);
}

static int source_finish(tr_ctx_t *ctx, struct source *s) {
  eos_t *eos = eos_t_new();
  report_t *rep;
  int rc;

  if (eos == NULL) return TR_ENOMEM;
  eos->count = s->total;
  if ((rc = sent(parse_ref_send_eos_t(ctx, s->to.parse, eos), eos)) != 0)
    return rc;

  if ((rep = report_t_new()) == NULL) return TR_ENOMEM;
  rep->stage = STAGE_SOURCE;
  rep->out = s->total;
  if ((rc = sent(sink_ref_send_report_t(ctx, s->to.sink, rep), rep)) != 0)
    return rc;

  tr_actor_stop(tr_ctx_self(ctx), TR_EXIT_NORMAL); /* after this handler returns */
  return 0;
}

static int source_on_tick(tr_ctx_t *ctx, void *state, void *msg) {
  struct source *s = state;
  const tick_t *tick = msg;
  uint64_t end = s->next + tick->batch;
  int rc;

  if (end > s->total) end = s->total;
  for (; s->next < end; s->next++) {
    line_t *line = line_t_new();

    if (line == NULL) return TR_ENOMEM;
    line->seq = s->next;
    make_line(s->next, line->text, sizeof line->text);
    if ((rc = sent(parse_ref_send_line_t(ctx, s->to.parse, line), line)) != 0)
      return rc;
  }
  return s->next < s->total ? source_tick_self(ctx) : source_finish(ctx, s);
}

static const tr_handler_t source_handlers[] = {
    {TR_TYPE(start_t), source_on_start},
    {TR_TYPE(tick_t), source_on_tick},
};

static const tr_behavior_t source_behavior = {
    .name = "source",
    .state_size = sizeof(struct source),
    .init = source_init,
    .handlers = TR_HANDLERS(source_handlers),
};

/* ---- The parse stage -----------------------------------------------------
 * Turns text into typed readings and routes each one by key: sensor s
 * always goes to worker s mod K. */

struct parse_args {
  worker_ref workers[MAX_WORKERS];
  unsigned nworkers;
  sink_ref sink;
};

struct parse {
  struct parse_args to;
  uint64_t lines, parsed, rejected;
  uint64_t expected; /* from the source's eos; UINT64_MAX until then */
  uint64_t sent_to[MAX_WORKERS];
};

static int parse_init(tr_ctx_t *ctx, void *state, void *arg) {
  struct parse *p = state;

  (void)ctx;
  p->to = *(const struct parse_args *)arg;
  p->expected = UINT64_MAX;
  return 0;
}

/* Once every promised line has been handled, passes the end of stream on
 * to each worker, telling it how many readings it was sent. */
static int parse_maybe_finish(tr_ctx_t *ctx, struct parse *p) {
  report_t *rep;
  int rc;

  if (p->lines != p->expected) return 0;
  for (unsigned i = 0; i < p->to.nworkers; i++) {
    eos_t *eos = eos_t_new();

    if (eos == NULL) return TR_ENOMEM;
    eos->count = p->sent_to[i];
    if ((rc = sent(worker_ref_send_eos_t(ctx, p->to.workers[i], eos), eos)))
      return rc;
  }
  if ((rep = report_t_new()) == NULL) return TR_ENOMEM;
  rep->stage = STAGE_PARSE;
  rep->in = p->lines;
  rep->out = p->parsed;
  rep->rejected = p->rejected;
  if ((rc = sent(sink_ref_send_report_t(ctx, p->to.sink, rep), rep)) != 0)
    return rc;
  tr_actor_stop(tr_ctx_self(ctx), TR_EXIT_NORMAL);
  return 0;
}

static int parse_on_line(tr_ctx_t *ctx, void *state, void *msg) {
  struct parse *p = state;
  const line_t *line = msg;
  uint64_t seq;
  uint32_t sensor;
  int32_t milli;
  int rc;

  p->lines++;
  if (parse_line(line->text, &seq, &sensor, &milli) != 0) {
    p->rejected++;
  } else {
    unsigned k = sensor % p->to.nworkers;
    reading_t *r = reading_t_new();

    if (r == NULL) return TR_ENOMEM;
    r->seq = seq;
    r->sensor = sensor;
    r->milli = milli;
    if ((rc = sent(worker_ref_send_reading_t(ctx, p->to.workers[k], r), r)))
      return rc;
    p->sent_to[k]++;
    p->parsed++;
  }
  /* The runtime frees `line` when this handler returns. */
  return parse_maybe_finish(ctx, p);
}

static int parse_on_eos(tr_ctx_t *ctx, void *state, void *msg) {
  struct parse *p = state;

  p->expected = ((const eos_t *)msg)->count;
  return parse_maybe_finish(ctx, p);
}

static const tr_handler_t parse_handlers[] = {
    {TR_TYPE(line_t), parse_on_line},
    {TR_TYPE(eos_t), parse_on_eos},
};

static const tr_behavior_t parse_behavior = {
    .name = "parse",
    .state_size = sizeof(struct parse),
    .init = parse_init,
    .handlers = TR_HANDLERS(parse_handlers),
};

/* ---- The workers ---------------------------------------------------------
 * Each keeps the statistics of its own sensors. Nothing is shared between
 * actors, so nothing needs a lock: an actor never runs on two threads at
 * once. */

struct worker_args {
  unsigned index;
  sink_ref sink;
};

struct worker {
  struct worker_args a;
  uint64_t received, expected;
  sensor_stats_t sensors[NSENSORS];
};

static int worker_init(tr_ctx_t *ctx, void *state, void *arg) {
  struct worker *w = state;

  (void)ctx;
  w->a = *(const struct worker_args *)arg;
  w->expected = UINT64_MAX;
  return 0;
}

static int worker_maybe_finish(tr_ctx_t *ctx, struct worker *w) {
  report_t *rep;
  int rc;

  if (w->received != w->expected) return 0;
  if ((rep = report_t_new()) == NULL) return TR_ENOMEM;
  rep->stage = STAGE_WORKER;
  rep->index = w->a.index;
  rep->in = rep->out = w->received;
  memcpy(rep->sensors, w->sensors, sizeof rep->sensors);
  if ((rc = sent(sink_ref_send_report_t(ctx, w->a.sink, rep), rep)) != 0)
    return rc;
  tr_actor_stop(tr_ctx_self(ctx), TR_EXIT_NORMAL);
  return 0;
}

static int worker_on_reading(tr_ctx_t *ctx, void *state, void *msg) {
  struct worker *w = state;
  const reading_t *r = msg;

  stats_add(&w->sensors[r->sensor], r->seq, r->milli);
  w->received++;
  return worker_maybe_finish(ctx, w);
}

static int worker_on_eos(tr_ctx_t *ctx, void *state, void *msg) {
  struct worker *w = state;

  w->expected = ((const eos_t *)msg)->count;
  return worker_maybe_finish(ctx, w);
}

static const tr_handler_t worker_handlers[] = {
    {TR_TYPE(reading_t), worker_on_reading},
    {TR_TYPE(eos_t), worker_on_eos},
};

static const tr_behavior_t worker_behavior = {
    .name = "worker",
    .state_size = sizeof(struct worker),
    .init = worker_init,
    .handlers = TR_HANDLERS(worker_handlers),
};

/* ---- The sink ------------------------------------------------------------
 * Waits for one report per stage (source, parse, K workers), merges them
 * and sends the summary to main's handle. */

struct sink_args {
  tr_ref_t reply_to;
  unsigned nworkers;
};

struct sink {
  struct sink_args a;
  unsigned reports;
  totals_t acc;
};

static int sink_init(tr_ctx_t *ctx, void *state, void *arg) {
  struct sink *s = state;

  (void)ctx;
  s->a = *(const struct sink_args *)arg;
  s->acc.nworkers = s->a.nworkers;
  return 0;
}

static int sink_on_report(tr_ctx_t *ctx, void *state, void *msg) {
  struct sink *s = state;
  const report_t *rep = msg;
  summary_t *sum;
  int rc;

  switch (rep->stage) {
  case STAGE_SOURCE:
    s->acc.emitted = rep->out;
    break;
  case STAGE_PARSE:
    s->acc.lines = rep->in;
    s->acc.parsed = rep->out;
    s->acc.rejected = rep->rejected;
    break;
  case STAGE_WORKER:
    s->acc.worker_items[rep->index] = rep->in;
    for (unsigned i = 0; i < NSENSORS; i++) {
      if (rep->sensors[i].count == 0) continue;
      s->acc.worker_sensors[rep->index]++;
      s->acc.worker_checksum[rep->index] += rep->sensors[i].checksum;
      stats_merge(&s->acc.sensors[i], &rep->sensors[i]);
    }
    break;
  }
  if (++s->reports < s->a.nworkers + 2) return 0;

  /* Every stage has reported: hand the summary to main. main is not an
   * actor, so there is no typed ref for it; plain tr_send works for any
   * address, a handle included. */
  if ((sum = summary_t_new()) == NULL) return TR_ENOMEM;
  sum->totals = s->acc;
  if ((rc = sent(tr_send(ctx, s->a.reply_to, sum), sum)) != 0) return rc;
  tr_actor_stop(tr_ctx_self(ctx), TR_EXIT_NORMAL);
  return 0;
}

static const tr_handler_t sink_handlers[] = {
    {TR_TYPE(report_t), sink_on_report},
};

static const tr_behavior_t sink_behavior = {
    .name = "sink",
    .state_size = sizeof(struct sink),
    .init = sink_init,
    .handlers = TR_HANDLERS(sink_handlers),
};

/* ---- main ---------------------------------------------------------------- */

static void die(const char *what, int rc) {
  fprintf(stderr, "pipeline: %s: %s (%s)\n", what, tr_strerror(rc),
          tr_err_name(rc));
  exit(1);
}

static double now_seconds(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_arg(const char *s, uint64_t min, uint64_t max,
                     uint64_t *out) {
  char *end;
  unsigned long long v;

  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min ||
      v > max)
    return -1;
  *out = v;
  return 0;
}

/* The same work without actors: the reference the summary must match. */
static void compute_sequentially(uint64_t items, unsigned nworkers,
                                 totals_t *ref) {
  char text[LINE_MAX_LEN];
  uint64_t seq;
  uint32_t sensor;
  int32_t milli;

  memset(ref, 0, sizeof *ref);
  ref->emitted = ref->lines = items;
  ref->nworkers = nworkers;
  for (uint64_t i = 0; i < items; i++) {
    make_line(i, text, sizeof text);
    if (parse_line(text, &seq, &sensor, &milli) != 0) {
      ref->rejected++;
      continue;
    }
    ref->parsed++;
    ref->worker_items[sensor % nworkers]++;
    stats_add(&ref->sensors[sensor], seq, milli);
  }
  for (unsigned i = 0; i < NSENSORS; i++) {
    if (ref->sensors[i].count == 0) continue;
    ref->worker_sensors[i % nworkers]++;
    ref->worker_checksum[i % nworkers] += ref->sensors[i].checksum;
  }
}

static int totals_equal(const totals_t *a, const totals_t *b) {
  return a->emitted == b->emitted && a->lines == b->lines &&
         a->parsed == b->parsed && a->rejected == b->rejected &&
         a->nworkers == b->nworkers &&
         memcmp(a->worker_items, b->worker_items, sizeof a->worker_items) == 0 &&
         memcmp(a->worker_sensors, b->worker_sensors,
                sizeof a->worker_sensors) == 0 &&
         memcmp(a->worker_checksum, b->worker_checksum,
                sizeof a->worker_checksum) == 0 &&
         memcmp(a->sensors, b->sensors, sizeof a->sensors) == 0;
}

static void print_degrees(const char *label, int64_t milli) {
  printf("%s%s%" PRId64 ".%03" PRId64 " C", label, milli < 0 ? "-" : "",
         (milli < 0 ? -milli : milli) / 1000, (milli < 0 ? -milli : milli) % 1000);
}

static void print_totals(const totals_t *s, double elapsed) {
  sensor_stats_t all;
  unsigned warm = 0, cold = 0, nsensors = 0;
  uint64_t checksum = 0;

  memset(&all, 0, sizeof all);
  for (unsigned i = 0; i < NSENSORS; i++) {
    const sensor_stats_t *st = &s->sensors[i];

    if (st->count == 0) continue;
    if (nsensors == 0 ||
        st->sum * (int64_t)s->sensors[warm].count >
            s->sensors[warm].sum * (int64_t)st->count)
      warm = i;
    if (nsensors == 0 ||
        st->sum * (int64_t)s->sensors[cold].count <
            s->sensors[cold].sum * (int64_t)st->count)
      cold = i;
    nsensors++;
    stats_merge(&all, st);
  }
  for (unsigned i = 0; i < s->nworkers; i++) checksum += s->worker_checksum[i];

  printf("  %-10s %10s %10s\n", "stage", "in", "out");
  printf("  %-10s %10s %10" PRIu64 "  lines of text\n", "source", "-",
         s->emitted);
  printf("  %-10s %10" PRIu64 " %10" PRIu64 "  readings (%" PRIu64
         " malformed lines rejected)\n",
         "parse", s->lines, s->parsed, s->rejected);
  for (unsigned i = 0; i < s->nworkers; i++)
    printf("  worker %-3u %10" PRIu64 " %10s  %u sensors, checksum %016" PRIx64
           "\n",
           i, s->worker_items[i], "-", s->worker_sensors[i],
           s->worker_checksum[i]);
  printf("  %-10s %10u %10s  reports merged into one summary\n\n", "sink",
         s->nworkers + 2, "1");

  printf("  %" PRIu64 " readings from %u sensors", all.count, nsensors);
  if (all.count > 0) {
    print_degrees(": mean ", all.sum / (int64_t)all.count);
    print_degrees(", min ", all.min);
    print_degrees(", max ", all.max);
    printf("\n  warmest sensor %u", warm);
    print_degrees(" (mean ",
                  s->sensors[warm].sum / (int64_t)s->sensors[warm].count);
    printf("), coldest sensor %u", cold);
    print_degrees(" (mean ",
                  s->sensors[cold].sum / (int64_t)s->sensors[cold].count);
    printf(")");
  }
  printf("\n  checksum %016" PRIx64 "\n", checksum);
  printf("  elapsed %.3f s", elapsed);
  if (elapsed > 0)
    printf(", %.0f lines/s through the whole graph", (double)s->emitted / elapsed);
  printf("\n");
}

static void print_runtime_stats(tr_runtime_t *rt) {
  tr_runtime_stats_t st;
  unsigned n;

  if (tr_runtime_stats(rt, &st) != 0) return;
  printf("\n  runtime: %" PRIu64 " actors spawned, %" PRIu64
         " stopped, %" PRIu64 " messages handled, %" PRIu64 " dead letters\n",
         st.actors_spawned, st.actors_stopped, st.messages_handled,
         st.dead_letters);
  n = st.workers;
  for (unsigned i = 0; i < n; i++) {
    tr_worker_stats_t ws;
    if (tr_runtime_worker_stats(rt, i, &ws) != 0) break;
    printf("  thread %-3u %10" PRIu64 " messages in %" PRIu64
           " runs, %" PRIu64 " steals, %" PRIu64 " parks\n",
           i, ws.handled, ws.runs, ws.steals, ws.parks);
  }
}

/* main monitors every actor of the graph, so that it learns at once, from
 * a tr_down_t message, when one of them stops, and why. */
struct watched {
  tr_ref_t refs[MAX_WORKERS + 3];
  const char *names[MAX_WORKERS + 3];
  unsigned n, down;
};

static void watch(tr_handle_t *h, struct watched *w, tr_ref_t ref,
                  const char *name) {
  uint64_t id;
  int rc;

  if ((rc = tr_handle_monitor(h, ref, &id)) != 0) die("tr_handle_monitor", rc);
  w->refs[w->n] = ref;
  w->names[w->n++] = name;
}

/* Handles a tr_down_t that arrived at main's handle. Every actor stops
 * itself with TR_EXIT_NORMAL once its work is done; any other reason means
 * a stage failed and the summary will never come. */
static void on_down(struct watched *w, tr_down_t *down) {
  const char *name = "?";

  for (unsigned i = 0; i < w->n; i++)
    if (tr_ref_eq(w->refs[i], down->ref)) name = w->names[i];
  if (down->reason < 0) {
    fprintf(stderr, "pipeline: actor %s failed: %s (%s)\n", name,
            tr_strerror(down->reason), tr_err_name(down->reason));
    exit(1);
  }
  if (down->reason != TR_EXIT_NORMAL) {
    fprintf(stderr, "pipeline: actor %s stopped with reason %d\n", name,
            down->reason);
    exit(1);
  }
  w->down++;
  tr_msg_free(down);
}

int main(int argc, char **argv) {
  uint64_t items = 100000, nworkers = 4;
  struct sink_args sink_a;
  struct worker_args worker_a;
  struct parse_args parse_a;
  struct source_args source_a;
  tr_spawn_opts_t low = {.priority = TR_PRIO_LOW};
  struct watched watched = {.n = 0};
  tr_runtime_t *rt;
  tr_handle_t *h;
  tr_ref_t ref;
  source_ref source;
  start_t *start;
  summary_t *sum;
  totals_t *expected;
  void *msg;
  double t0, elapsed;
  int rc, ok;

  if (argc > 3 || (argc > 1 && parse_arg(argv[1], 0, UINT64_MAX / 2, &items)) ||
      (argc > 2 && parse_arg(argv[2], 1, MAX_WORKERS, &nworkers))) {
    fprintf(stderr, "usage: pipeline [ITEMS [WORKERS (1-%d)]]\n", MAX_WORKERS);
    return 2;
  }

  /* A runtime with the default configuration: one worker thread per
   * online CPU, 100 messages per actor run. */
  if ((rc = tr_runtime_new(NULL, &rt)) != 0) die("tr_runtime_new", rc);
  if ((rc = tr_runtime_start(rt)) != 0) die("tr_runtime_start", rc);

  /* main is not an actor; a handle gives it an address, so that the sink
   * can send it the summary, and a way to wait for it. */
  if ((rc = tr_handle_new(rt, &h)) != 0) die("tr_handle_new", rc);

  /* Spawn the graph from its end, so that each actor is given the refs of
   * the actors it sends to. */
  sink_a.reply_to = tr_handle_ref(h);
  sink_a.nworkers = (unsigned)nworkers;
  if ((rc = tr_spawn(rt, &sink_behavior, &sink_a, &ref)) != 0)
    die("spawn sink", rc);
  watch(h, &watched, ref, "sink");
  worker_a.sink = parse_a.sink = source_a.sink = sink_ref_from(ref);

  parse_a.nworkers = (unsigned)nworkers;
  for (unsigned i = 0; i < nworkers; i++) {
    worker_a.index = i;
    if ((rc = tr_spawn(rt, &worker_behavior, &worker_a, &ref)) != 0)
      die("spawn worker", rc);
    watch(h, &watched, ref, "worker");
    parse_a.workers[i] = worker_ref_from(ref);
  }
  if ((rc = tr_spawn(rt, &parse_behavior, &parse_a, &ref)) != 0)
    die("spawn parse", rc);
  watch(h, &watched, ref, "parse");
  source_a.parse = parse_ref_from(ref);

  /* The source runs at low priority: the stages after it are served first,
   * which keeps their mailboxes short. */
  if ((rc = tr_spawn_ex(rt, &source_behavior, &source_a, &low, &ref)) != 0)
    die("spawn source", rc);
  watch(h, &watched, ref, "source");
  source = source_ref_from(ref);

  printf("troupe %s pipeline: %" PRIu64 " lines, %" PRIu64
         " workers, %u threads\n\n",
         tr_version(), items, nworkers, tr_runtime_workers(rt));

  /* Start the source; ctx is NULL because main is not an actor. */
  t0 = now_seconds();
  if ((start = start_t_new()) == NULL) die("start_t_new", TR_ENOMEM);
  start->items = items;
  if ((rc = source_ref_send_start_t(NULL, source, start)) != 0) {
    tr_msg_free(start);
    die("send start", rc);
  }

  /* Block until the sink's summary arrives at the handle. Meanwhile the
   * actors that have finished their part stop, and their tr_down_t
   * notifications arrive too. */
  for (sum = NULL; sum == NULL;) {
    if ((rc = tr_handle_receive(h, 60000, &msg)) != 0)
      die("waiting for the summary", rc);
    if (tr_msg_type(msg) == TR_TYPE(summary_t)) {
      sum = msg;
    } else if (tr_msg_type(msg) == TR_TYPE(tr_down_t)) {
      on_down(&watched, msg);
    } else {
      fprintf(stderr, "pipeline: unexpected message %s\n",
              tr_msg_type(msg)->name);
      return 1;
    }
  }
  elapsed = now_seconds() - t0;
  print_totals(&sum->totals, elapsed);

  /* Check the actors' answer against a plain loop. */
  if ((expected = malloc(sizeof *expected)) == NULL) die("malloc", TR_ENOMEM);
  compute_sequentially(items, (unsigned)nworkers, expected);
  ok = totals_equal(&sum->totals, expected);
  printf("  %s\n", ok ? "verified: identical to the sequential computation"
                      : "MISMATCH: differs from the sequential computation");
  free(expected);
  tr_msg_free(sum);

  /* Every actor stops itself after its report: collect the remaining
   * notifications, wait until the runtime has nothing left to do, then
   * look at the counters. */
  while (watched.down < watched.n) {
    if ((rc = tr_handle_receive(h, 5000, &msg)) != 0)
      die("waiting for the actors to stop", rc);
    if (tr_msg_type(msg) != TR_TYPE(tr_down_t)) {
      fprintf(stderr, "pipeline: unexpected message %s\n",
              tr_msg_type(msg)->name);
      return 1;
    }
    on_down(&watched, msg);
  }
  printf("  all %u actors stopped normally\n", watched.n);
  if ((rc = tr_runtime_await_quiescent(rt, 5000)) != 0)
    die("tr_runtime_await_quiescent", rc);
  print_runtime_stats(rt);

  tr_handle_free(h);
  if ((rc = tr_runtime_shutdown(rt, 1000)) != 0) die("tr_runtime_shutdown", rc);
  tr_runtime_free(rt);
  return ok ? 0 : 1;
}
