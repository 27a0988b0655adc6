/* SPDX-License-Identifier: MIT */
/*
 * troupe's server for the "http-hello", "http-file", "ws-echo" and
 * "tls-handshake" workloads of BENCHMARKS.md, driven from outside by wrk,
 * bench/ws_client or bench/tls_client (bench/http runs it beside nginx
 * or the npm ws server). Two fast-path routes, both answered inside the
 * connection actor:
 *
 *   GET /      200, "Hello, World!" (13 bytes, text/plain)
 *   GET /file  200, the file given with -f, mapped once at start
 *              (tr_file_map) and sent from that mapping by every
 *              connection (tr_http_response_map)
 *
 * and, for the "ws-echo" workload, with --ws:
 *
 *   GET /ws    a WebSocket endpoint: one owner actor per connection
 *              sends every message back as it came (tr_ws_send)
 *
 * With --tls-cert and --tls-key (the "tls-handshake" workload) it speaks
 * HTTPS only, configured as examples/httpd.c does (ALPN http/1.1 or
 * http/1.0), but without session tickets.
 *
 *   http_server [-w 2] [-p 0] [-s 0] [-f FILE] [--ws]
 *               [--tls-cert F --tls-key F]
 *
 * -w: worker threads; -p: port on 127.0.0.1 (0: any free port); -s: the
 * workers' spin before parking (tr_runtime_config_t.spin_us, 0: the
 * runtime's default); -f: the file of /file (without it, /file answers
 * 404). Prints its parameters,
 * then "listening on 127.0.0.1:PORT" once it serves, and serves until
 * SIGINT or SIGTERM; then it prints the server's counters
 * ("served requests=N connections=N errors=N timeouts=N", and with --ws
 * "echoed messages=N"), which the driver compares with what the client
 * counted.
 */
#define _GNU_SOURCE
#include "benchutil.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include <troupe/http_server.h>
#include <troupe/io.h>
#include <troupe/tls.h>

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

/* ws-echo: every message goes back on its connection as it came. */
static atomic_uint_fast64_t echoed;

static int ws_echo(tr_ctx_t *ctx, void *state, void *msg) {
  tr_ws_message_t *m = msg;
  (void)state;
  /* a failed send means the connection is going: closed follows */
  if (tr_ws_send(ctx, m->conn, m->opcode, m->data, m->len) == 0)
    atomic_fetch_add_explicit(&echoed, 1, memory_order_relaxed);
  return 0;
}

static int ws_closed(tr_ctx_t *ctx, void *state, void *msg) {
  (void)state;
  (void)msg;
  tr_actor_stop(tr_ctx_self(ctx), 0);
  return 0;
}

static const tr_handler_t ws_handlers[] = {
    {&tr_ws_message_t__type, ws_echo},
    {&tr_ws_closed_t__type, ws_closed},
};
static const tr_behavior_t ws_behavior = {.name = "ws_echo",
                                          .handlers = TR_HANDLERS(ws_handlers)};

static void usage(int status) {
  fprintf(status ? stderr : stdout,
          "usage: http_server [-w WORKERS] [-p PORT] [-s US] [-f FILE] [--ws]\n"
          "                   [--tls-cert CERT.pem --tls-key KEY.pem]\n"
          "  -w N     worker threads (default 2)\n"
          "  -p N     port on 127.0.0.1, 0: any free port (default 0)\n"
          "  -s US    workers' spin before parking, 0: default (default 0)\n"
          "  -f FILE  the file GET /file serves (default: none, 404)\n"
          "  --ws     a WebSocket echo endpoint at /ws\n"
          "  --tls-cert, --tls-key  HTTPS only, with this certificate\n");
  exit(status);
}

int main(int argc, char **argv) {
  uint64_t workers = 2, port = 0, spin = 0;
  const char *path = NULL, *cert = NULL, *key = NULL;
  int ws = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) usage(0);
    if (!strcmp(a, "--ws")) {
      ws = 1;
      continue;
    }
    if (!strcmp(a, "--tls-cert") && i + 1 < argc) {
      cert = argv[++i];
      continue;
    }
    if (!strcmp(a, "--tls-key") && i + 1 < argc) {
      key = argv[++i];
      continue;
    }
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
      case 's':
        if (bench_parse_count(v, &spin) || spin > 1000000) usage(64);
        break;
      case 'f': path = v; break;
      default: usage(64);
    }
  }
  if (!cert != !key) usage(64);

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
  cfg.spin_us = (unsigned)spin;
  BENCH_CHECK(tr_runtime_new(&cfg, &rt));
  BENCH_CHECK(tr_runtime_start(rt));

  tr_http_route_t routes[3];
  memset(routes, 0, sizeof(routes));
  routes[0].method = "GET";
  routes[0].path = "/";
  routes[0].fn = hello;
  size_t nroutes = 1;
  if (map) {
    routes[nroutes].method = "GET";
    routes[nroutes].path = "/file";
    routes[nroutes].fn = file;
    routes[nroutes].arg = map;
    nroutes++;
  }
  if (ws) {
    routes[nroutes].method = "GET";
    routes[nroutes].path = "/ws";
    routes[nroutes].ws = &ws_behavior;
    nroutes++;
  }
  tr_tls_config_t *tls = NULL;
  if (cert) {
    static const char *const alpn[] = {"http/1.1", "http/1.0"};
    tr_tls_server_opts_t to;
    tr_tls_server_opts_init(&to);
    to.cert_file = cert;
    to.key_file = key;
    to.alpn = alpn;
    to.alpn_count = 2;
    /* every connection a full handshake, as nginx's
     * ssl_session_tickets off (the session cache stays: troupe has no
     * switch for it, and a client that never resumes does not use it) */
    to.no_tickets = 1;
    char err[256];
    int rc = tr_tls_server_config_new(&to, &tls, err, sizeof(err));
    if (rc) bench_die("TLS: %s (%s)", err, tr_strerror(rc));
  }
  tr_http_server_opts_t o;
  tr_http_server_opts_init(&o);
  o.tls = tls;
  o.host = "127.0.0.1";
  o.port = (uint16_t)port;
  o.routes = routes;
  o.nroutes = nroutes;
  tr_http_server_t *srv;
  BENCH_CHECK(tr_http_server_start(rt, &o, &srv));

  printf("http-server troupe %s: workers=%" PRIu64
         " backend=%s spin_us=%" PRIu64,
         tr_version(), workers, tr_io_backend_name(rt), spin);
  printf(" file=%s file_bytes=%zu ws=%d tls=%s\n", path ? path : "-",
         map ? tr_file_map_size(map) : (size_t)0, ws, cert ? cert : "-");
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
  if (ws)
    printf("echoed messages=%" PRIu64 "\n",
           (uint64_t)atomic_load_explicit(&echoed, memory_order_relaxed));
  fflush(stdout);
  (void)tr_runtime_shutdown(rt, 3000);
  tr_http_server_free(srv);
  tr_tls_config_free(tls);
  tr_runtime_free(rt);
  tr_file_map_unref(map);
  return 0;
}
