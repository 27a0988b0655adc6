/* SPDX-License-Identifier: MIT */
/*
 * troupe's server for the "http-hello" and "http-file" workloads of
 * BENCHMARKS.md, driven from outside by wrk (bench/http runs it beside
 * nginx). Two fast-path routes, both answered inside the connection
 * actor:
 *
 *   GET /      200, "Hello, World!" (13 bytes, text/plain)
 *   GET /file  200, the file given with -f, mapped once at start
 *              (tr_file_map) and sent from that mapping by every
 *              connection (tr_http_response_map)
 *
 *   http_server [-w 2] [-p 0] [-f FILE]
 *
 * -w: worker threads; -p: port on 127.0.0.1 (0: any free port); -f: the
 * file of /file (without it, /file answers 404). Prints its parameters,
 * then "listening on 127.0.0.1:PORT" once it serves, and serves until
 * SIGINT or SIGTERM; then it prints the server's counters
 * ("served requests=N connections=N errors=N timeouts=N"), which the
 * driver compares with the responses the client counted.
 */
#define _GNU_SOURCE
#include "benchutil.h"

#include <pthread.h>
#include <signal.h>

#include <troupe/http_server.h>
#include <troupe/io.h>

static const char hello_body[] = "Hello, World!";

static int hello(tr_ctx_t *ctx, const tr_http_req_t *req,
                 tr_http_response_t *resp, void *arg) {
  (void)ctx;
  (void)req;
  (void)arg;
  int rc = tr_http_response_header(resp, "Content-Type", "text/plain");
  if (rc) return rc;
  return tr_http_response_body(resp, hello_body, sizeof(hello_body) - 1);
}

static int file(tr_ctx_t *ctx, const tr_http_req_t *req,
                tr_http_response_t *resp, void *arg) {
  (void)ctx;
  (void)req;
  int rc =
      tr_http_response_header(resp, "Content-Type", "application/octet-stream");
  if (rc) return rc;
  return tr_http_response_map(resp, arg, 0, UINT64_MAX);
}

static void usage(int status) {
  fprintf(status ? stderr : stdout,
          "usage: http_server [-w WORKERS] [-p PORT] [-f FILE]\n"
          "  -w N     worker threads (default 2)\n"
          "  -p N     port on 127.0.0.1, 0: any free port (default 0)\n"
          "  -f FILE  the file GET /file serves (default: none, 404)\n");
  exit(status);
}

int main(int argc, char **argv) {
  uint64_t workers = 2, port = 0;
  const char *path = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) usage(0);
    if (a[0] != '-' || !a[1] || a[2] || i + 1 >= argc) usage(64);
    const char *v = argv[++i];
    switch (a[1]) {
      case 'w':
        if (bench_parse_count(v, &workers) || !workers || workers > 1024)
          usage(64);
        break;
      case 'p':
        if (bench_parse_count(v, &port) || port > 65535) usage(64);
        break;
      case 'f': path = v; break;
      default: usage(64);
    }
  }

  tr_file_map_t *map = NULL;
  if (path) {
    /* read in now: the first requests must not wait on the disk */
    int rc = tr_file_map(path, TR_FILE_MAP_POPULATE, &map);
    if (rc) bench_die("%s: %s", path, tr_strerror(rc));
  }

  /* SIGINT and SIGTERM are taken by sigwait below; blocked before the
   * runtime starts, so that no worker thread gets them */
  sigset_t stop_set;
  sigemptyset(&stop_set);
  sigaddset(&stop_set, SIGINT);
  sigaddset(&stop_set, SIGTERM);
  if (pthread_sigmask(SIG_BLOCK, &stop_set, NULL) != 0)
    bench_die("pthread_sigmask failed");
  signal(SIGPIPE, SIG_IGN);

  tr_runtime_t *rt;
  tr_runtime_config_t cfg;
  tr_runtime_config_init(&cfg);
  cfg.workers = (unsigned)workers;
  BENCH_CHECK(tr_runtime_new(&cfg, &rt));
  BENCH_CHECK(tr_runtime_start(rt));

  tr_http_route_t routes[2];
  memset(routes, 0, sizeof(routes));
  routes[0].method = "GET";
  routes[0].path = "/";
  routes[0].fn = hello;
  size_t nroutes = 1;
  if (map) {
    routes[1].method = "GET";
    routes[1].path = "/file";
    routes[1].fn = file;
    routes[1].arg = map;
    nroutes = 2;
  }
  tr_http_server_opts_t o;
  tr_http_server_opts_init(&o);
  o.host = "127.0.0.1";
  o.port = (uint16_t)port;
  o.routes = routes;
  o.nroutes = nroutes;
  tr_http_server_t *srv;
  BENCH_CHECK(tr_http_server_start(rt, &o, &srv));

  printf("http-server troupe %s: workers=%" PRIu64 " backend=%s", tr_version(),
         workers, tr_io_backend_name(rt));
  printf(" file=%s file_bytes=%zu\n", path ? path : "-",
         map ? tr_file_map_size(map) : (size_t)0);
  printf("listening on 127.0.0.1:%u\n", tr_http_server_port(srv));
  fflush(stdout);

  int sig = 0;
  while (sigwait(&stop_set, &sig) != 0) {
  }

  BENCH_CHECK(tr_http_server_shutdown(srv, 2000));
  tr_http_server_stats_t st;
  BENCH_CHECK(tr_http_server_stats(srv, &st));
  printf("served requests=%" PRIu64 " connections=%" PRIu64 " errors=%" PRIu64
         " timeouts=%" PRIu64 "\n",
         st.requests, st.connections, st.errors, st.timeouts);
  fflush(stdout);
  (void)tr_runtime_shutdown(rt, 3000);
  tr_http_server_free(srv);
  tr_runtime_free(rt);
  tr_file_map_unref(map);
  return 0;
}
