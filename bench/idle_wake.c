/* SPDX-License-Identifier: MIT */
/*
 * Idle cost and wake-up latency: how much CPU a started runtime with no
 * work burns in one second, and how long a request from outside takes to
 * come back when every worker is parked (two wake-ups: main -> worker,
 * worker -> main). Prints the parameters, then
 *   RESULT idle-wake troupe <seconds> <round trips> idle_cpu_ms=... ...
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <troupe.h>

TR_MESSAGE_TYPE(iw_ping_t, int x;);
TR_MESSAGE_DEFINE(iw_ping_t);

static int on_ping(tr_ctx_t *ctx, void *st, void *m) {
  (void)st;
  return tr_reply(ctx, m);
}
static const tr_handler_t hs[] = {{TR_TYPE(iw_ping_t), on_ping}};
static const tr_behavior_t echo = {.name = "echo", .handlers = TR_HANDLERS(hs)};

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 200;
  unsigned workers = argc > 2 ? (unsigned)atoi(argv[2]) : 2;
  if (n < 1 || n > 100000) return 2;
  printf("idle-wake: workers=%u round_trips=%d idle_window_s=1 gap_ms=2\n", workers, n);
  tr_runtime_config_t c;
  tr_runtime_config_init(&c);
  c.workers = workers;
  tr_runtime_t *rt;
  tr_handle_t *h;
  tr_ref_t e;
  if (tr_runtime_new(&c, &rt) || tr_runtime_start(rt) || tr_handle_new(rt, &h) ||
      tr_spawn(rt, &echo, NULL, &e))
    return 1;
  usleep(100000);
  double c0 = cpu();
  sleep(1);
  double idle_ms = (cpu() - c0) * 1e3;
  double *lat = calloc((size_t)n, sizeof(double));
  if (!lat) return 1;
  int ok = 0;
  double t_all = now();
  for (int i = 0; i < n; i++) {
    usleep(2000); /* long enough for every worker to park */
    iw_ping_t *p = iw_ping_t_new();
    void *r;
    double t0 = now();
    if (tr_handle_call(h, e, p, 1000, &r) == 0) {
      lat[ok++] = now() - t0;
      tr_msg_free(r);
    }
  }
  double secs = now() - t_all;
  qsort(lat, (size_t)ok, sizeof(double), cmp);
  double sum = 0;
  for (int i = 0; i < ok; i++) sum += lat[i];
  printf("RESULT idle-wake troupe %.6f %d idle_cpu_ms=%.3f wake_rt_us_median=%.1f "
         "wake_rt_us_mean=%.1f wake_rt_us_best=%.1f\n",
         secs, ok, idle_ms, ok ? lat[ok / 2] * 1e6 : 0, ok ? sum / ok * 1e6 : 0,
         ok ? lat[0] * 1e6 : 0);
  free(lat);
  tr_handle_free(h);
  tr_runtime_shutdown(rt, 1000);
  tr_runtime_free(rt);
  return ok == n ? 0 : 1;
}
