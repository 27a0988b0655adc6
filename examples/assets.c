/* SPDX-License-Identifier: MIT */
/*
 * An actor that serves read-mostly data from a memory-mapped file and
 * looks up a host name, the two blocking-prone jobs of a service's start
 * done without blocking a worker (doc/reactor.md, "Memory-mapped files"
 * and "TCP as actors"). It maps a file (the given path, or this program's
 * own binary), has its pages read in on the blocking pool, resolves a
 * host name ("localhost" by default), prints what it found and stops.
 *
 *   assets [FILE [HOST]]
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <troupe.h>
#include <troupe/io.h>
#include <troupe/net.h>

typedef struct assets {
  const char *path, *host;
  tr_file_map_t *map;
  int pending; /* answers still to come */
  int failed;
} assets_t;

static int on_init(tr_ctx_t *ctx, void *st, void *arg) {
  assets_t *a = st;
  const char *const *args = arg;
  a->path = args[0];
  a->host = args[1];
  int rc = tr_file_map(a->path, 0, &a->map);
  if (rc) {
    fprintf(stderr, "assets: cannot map %s: %s\n", a->path, tr_strerror(rc));
    return rc;
  }
  /* both answers arrive as messages; no worker waits on the disk or DNS */
  if ((rc = tr_file_map_prefetch(ctx, a->map, 0)) != 0) return rc;
  if ((rc = tr_resolve(ctx, a->host, AF_UNSPEC, 0)) != 0) return rc;
  a->pending = 2;
  return 0;
}

static void answered(tr_ctx_t *ctx, assets_t *a) {
  if (--a->pending == 0) tr_actor_stop(tr_ctx_self(ctx), a->failed ? TR_EIO : 0);
}

static int on_prefetched(tr_ctx_t *ctx, void *st, void *msg) {
  assets_t *a = st;
  tr_file_done_t *d = msg;
  if (d->result < 0) {
    a->failed = 1;
  } else {
    const unsigned char *b = tr_file_map_data(a->map);
    printf("%s: %zu bytes resident, starting %02x %02x %02x %02x\n",
           a->path, tr_file_map_size(a->map), b ? b[0] : 0, b ? b[1] : 0,
           b ? b[2] : 0, b ? b[3] : 0);
  }
  answered(ctx, a);
  return 0;
}

static int on_resolved(tr_ctx_t *ctx, void *st, void *msg) {
  assets_t *a = st;
  tr_resolved_t *r = msg;
  if (r->status) {
    printf("%s: %s\n", a->host, tr_strerror(r->status));
    a->failed = 1;
  }
  for (unsigned i = 0; i < r->naddrs; i++)
    printf("%s: %s (%s)\n", a->host, r->addrs[i].host,
           r->addrs[i].family == AF_INET6 ? "IPv6" : "IPv4");
  answered(ctx, a);
  return 0;
}

static _Atomic int outcome = 1; /* the actor's stop reason, once stopped */

static void on_stop(tr_ctx_t *ctx, void *st, int reason) {
  (void)ctx;
  tr_file_map_unref(((assets_t *)st)->map);
  atomic_store(&outcome, reason);
}

static const tr_handler_t handlers[] = {
    {&tr_file_done_t__type, on_prefetched},
    {&tr_resolved_t__type, on_resolved}};
static const tr_behavior_t assets_b = {.name = "assets",
                                       .state_size = sizeof(assets_t),
                                       .init = on_init,
                                       .on_stop = on_stop,
                                       .handlers = TR_HANDLERS(handlers)};

int main(int argc, char **argv) {
  const char *args[2] = {argc > 1 ? argv[1] : "/proc/self/exe",
                         argc > 2 ? argv[2] : "localhost"};
  tr_runtime_t *rt;
  int rc = tr_runtime_new(NULL, &rt);
  if (rc) {
    fprintf(stderr, "assets: %s\n", tr_strerror(rc));
    return 1;
  }
  if ((rc = tr_runtime_start(rt)) == 0 &&
      (rc = tr_spawn(rt, &assets_b, args, NULL)) == 0)
    rc = tr_runtime_await_quiescent(rt, 30000);
  int rc2 = tr_runtime_shutdown(rt, 10000);
  if (rc == 0) rc = rc2;
  rc2 = tr_io_fini(rt);
  if (rc == 0) rc = rc2;
  tr_runtime_free(rt);
  if (rc == 0) rc = atomic_load(&outcome);
  if (rc) fprintf(stderr, "assets: %s\n", tr_strerror(rc));
  return rc ? 1 : 0;
}
