/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the troupe benchmark programs: a monotonic clock,
 * parsing of "-x N" parameter overrides, resident-memory readings, checked
 * calls into the library, and the RESULT line that bench/run parses
 * (format in BENCHMARKS.md: RESULT <workload> <system> <seconds> <checksum>
 * [k=v ...]). Header-only: every benchmark is a single .c file.
 */
#ifndef TROUPE_BENCHUTIL_H
#define TROUPE_BENCHUTIL_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <troupe.h>

/* One "-c VALUE" option: a letter, what it means, and where it goes. */
typedef struct bench_opt {
  char letter;
  const char *what;
  uint64_t *value;
} bench_opt_t;

/* Seconds on the monotonic clock. */
static inline double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Stops the program at once: a benchmark that went wrong must not print a
 * number. _exit because worker threads may still be running. */
static inline void bench_die(const char *fmt, ...) {
  va_list ap;
  fputs("bench: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fflush(stderr);
  _exit(2);
}

/* Checks the return code of a troupe call; any failure ends the run. */
#define BENCH_CHECK(call)                                                    \
  do {                                                                       \
    int bench_rc_ = (call);                                                  \
    if (bench_rc_ != 0)                                                      \
      bench_die("%s:%d: %s failed: %s (%s)", __FILE__, __LINE__, #call,      \
                tr_err_name(bench_rc_), tr_strerror(bench_rc_));             \
  } while (0)

/* Allocates a message or ends the run. */
static inline void *bench_msg_new(const tr_msgtype_t *type) {
  void *m = tr_msg_new(type);
  if (m == NULL)
    bench_die("out of memory allocating a %s", type->name);
  return m;
}

/* Parses "1000", "10k", "2M", "1G" (decimal multipliers). */
static inline int bench_parse_count(const char *s, uint64_t *out) {
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (end == s)
    return -1;
  switch (*end) {
  case 'k': case 'K': v *= 1000ULL; end++; break;
  case 'm': case 'M': v *= 1000000ULL; end++; break;
  case 'g': case 'G': v *= 1000000000ULL; end++; break;
  default: break;
  }
  if (*end != '\0')
    return -1;
  *out = v;
  return 0;
}

/* Parses argv as a list of "-c VALUE" pairs (or "-cVALUE") matching opts.
 * Prints usage and exits on -h or anything it does not understand. */
static inline void bench_parse_args(int argc, char **argv, const char *name,
                                    const bench_opt_t *opts, size_t nopts) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const bench_opt_t *o = NULL;
    if (a[0] == '-' && a[1] != '\0' && a[1] != 'h') {
      for (size_t j = 0; j < nopts; j++)
        if (opts[j].letter == a[1])
          o = &opts[j];
    }
    const char *val = NULL;
    if (o != NULL)
      val = a[2] != '\0' ? &a[2] : (i + 1 < argc ? argv[++i] : NULL);
    if (o == NULL || val == NULL || bench_parse_count(val, o->value) != 0) {
      fprintf(stderr, "usage: %s", name);
      for (size_t j = 0; j < nopts; j++)
        fprintf(stderr, " [-%c N]", opts[j].letter);
      fputc('\n', stderr);
      for (size_t j = 0; j < nopts; j++)
        fprintf(stderr, "  -%c N  %s (default %" PRIu64 ")\n", opts[j].letter,
                opts[j].what, *opts[j].value);
      exit(a[0] == '-' && a[1] == 'h' ? 0 : 64);
    }
  }
}

/* Prints the parameters in effect, one line, before the run. */
static inline void bench_print_params(const char *workload,
                                      const bench_opt_t *opts, size_t nopts) {
  printf("%s troupe %s:", workload, tr_version());
  for (size_t j = 0; j < nopts; j++)
    printf(" %s=%" PRIu64, opts[j].what, *opts[j].value);
  putchar('\n');
  fflush(stdout);
}

/* The same, followed by how the checksum is formed (" checksum=FORMULA"),
 * for workloads whose checksum is a sum of the values received. */
static inline void bench_print_params_sum(const char *workload,
                                          const bench_opt_t *opts,
                                          size_t nopts, const char *formula) {
  printf("%s troupe %s:", workload, tr_version());
  for (size_t j = 0; j < nopts; j++)
    printf(" %s=%" PRIu64, opts[j].what, *opts[j].value);
  printf(" checksum=%s\n", formula);
  fflush(stdout);
}

/* Prints the RESULT line. extra is "" or printf-style " k=v ..." text. */
static inline void bench_result(const char *workload, double seconds,
                                uint64_t checksum, const char *extra, ...) {
  va_list ap;
  printf("RESULT %s troupe %.6f %" PRIu64, workload, seconds, checksum);
  va_start(ap, extra);
  vprintf(extra, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
}

/* Resident set size of this process in bytes, from /proc/self/statm. */
static inline uint64_t bench_rss_bytes(void) {
  unsigned long long size, resident;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL)
    bench_die("cannot open /proc/self/statm");
  int n = fscanf(f, "%llu %llu", &size, &resident);
  fclose(f);
  if (n != 2)
    bench_die("cannot parse /proc/self/statm");
  return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Creates and starts a runtime with the given number of workers, and a
 * handle through which the main thread receives the "done" message. */
static inline void bench_runtime_start(uint64_t workers, tr_runtime_t **rt,
                                       tr_handle_t **h) {
  tr_runtime_config_t cfg;
  tr_runtime_config_init(&cfg);
  cfg.workers = (unsigned)workers;
  BENCH_CHECK(tr_runtime_new(&cfg, rt));
  BENCH_CHECK(tr_runtime_start(*rt));
  BENCH_CHECK(tr_handle_new(*rt, h));
}

/* Waits for the one message that ends the measured part; the caller owns
 * and frees it. timeout_s bounds a run that would otherwise hang. */
static inline void *bench_wait_done(tr_handle_t *h, uint64_t timeout_s) {
  void *msg = NULL;
  int rc = tr_handle_receive(h, (int)(timeout_s * 1000), &msg);
  if (rc != 0)
    bench_die("no result after %" PRIu64 " s: %s", timeout_s,
              tr_err_name(rc));
  return msg;
}

/* Shuts the runtime down and frees it and the handle. */
/* With BENCH_STATS set in the environment, the workers' counters go to
 * stderr at the end (how often they ran actors, stole and parked). */
static inline void bench_runtime_end(tr_runtime_t *rt, tr_handle_t *h) {
  if (getenv("BENCH_STATS")) {
    tr_runtime_stats_t st;
    BENCH_CHECK(tr_runtime_stats(rt, &st));
    for (unsigned i = 0; i < st.workers; i++) {
      tr_worker_stats_t ws;
      BENCH_CHECK(tr_runtime_worker_stats(rt, i, &ws));
      fprintf(stderr,
              "worker %u: runs %" PRIu64 " handled %" PRIu64 " steals %" PRIu64
              " parks %" PRIu64 " injected %" PRIu64 "\n",
              i, ws.runs, ws.handled, ws.steals, ws.parks, ws.injected);
    }
  }
  BENCH_CHECK(tr_runtime_shutdown(rt, -1));
  tr_handle_free(h);
  tr_runtime_free(rt);
}

#endif
