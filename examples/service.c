/* SPDX-License-Identifier: MIT */
/*
 * An HTTP JSON service as an actor graph, the pattern to copy:
 *
 *   connection actors --ask--> front actor --ask--> worker actors
 *        (one per socket)        (the route)         (a pool of 4)
 *
 * The front actor keeps each request (tr_ctx_take), asks the next worker
 * to do the work, and replies to the connection when the worker's answer
 * comes back; it never blocks, so it serves many requests at once while
 * the workers compute. Explained in doc/http.md.
 *
 *   service --port N     serve GET /sum?n=K (the sum 1 + ... + K, as
 *                        JSON) and GET /stats until interrupted
 *   service              self-test (what `make check` runs): serve on a
 *                        free port, ask it 200 questions over keep-alive
 *                        connections, check every answer
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <troupe.h>
#include <troupe/http_server.h>

/* ---- the worker: computes ----------------------------------------------- */

TR_MESSAGE_TYPE(sum_req_t, uint64_t n;);
TR_MESSAGE_TYPE(sum_rep_t, uint64_t n; uint64_t sum; unsigned worker;);
TR_MESSAGE_DEFINE(sum_req_t);
TR_MESSAGE_DEFINE(sum_rep_t);

typedef struct worker {
  unsigned id;
} worker_t;

static int worker_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  ((worker_t *)state)->id = (unsigned)(uintptr_t)arg;
  return 0;
}

static int worker_sum(tr_ctx_t *ctx, void *state, void *msg) {
  worker_t *w = state;
  sum_req_t *q = msg;
  sum_rep_t *r = sum_rep_t_new();
  if (!r) return 0; /* dropped: the asker sees TR_ENOREPLY */
  r->n = q->n;
  for (uint64_t i = 1; i <= q->n; i++) r->sum += i;
  r->worker = w->id;
  return tr_reply(ctx, r);
}

static const tr_handler_t worker_handlers[] = {{&sum_req_t__type, worker_sum}};
static const tr_behavior_t worker_behavior = {
    .name = "worker",
    .state_size = sizeof(worker_t),
    .init = worker_init,
    .handlers = TR_HANDLERS(worker_handlers)};

/* ---- the front actor: the HTTP route -------------------------------------- */

#define NWORKERS 4

typedef struct front {
  tr_ref_t workers[NWORKERS];
  unsigned next;
  uint64_t served;
} front_t;

static int front_init(tr_ctx_t *ctx, void *state, void *arg) {
  front_t *f = state;
  (void)arg;
  for (unsigned i = 0; i < NWORKERS; i++) {
    int rc = tr_spawn(tr_ctx_runtime(ctx), &worker_behavior,
                      (void *)(uintptr_t)i, &f->workers[i]);
    if (rc) return rc;
  }
  return 0;
}

static int json_reply(tr_ctx_t *ctx, tr_http_request_t *req, int status,
                      const char *json) {
  tr_http_response_t *r = tr_http_response_new(status);
  if (!r) {
    tr_msg_free(req); /* unanswered: the connection answers 502 */
    return 0;
  }
  tr_http_response_header(r, "Content-Type", "application/json");
  tr_http_response_body(r, json, strlen(json));
  return tr_reply_to(ctx, req, r);
}

/* The worker answered: the connection gets its JSON. */
static int front_done(tr_ctx_t *ctx, void *state, int status, void *reply,
                      void *cookie) {
  front_t *f = state;
  tr_http_request_t *req = cookie;
  char json[160];
  if (status) {
    snprintf(json, sizeof(json), "{\"error\":\"%s\"}", tr_strerror(status));
    return json_reply(ctx, req, 503, json);
  }
  sum_rep_t *r = reply;
  f->served++;
  snprintf(json, sizeof(json),
           "{\"n\":%" PRIu64 ",\"sum\":%" PRIu64 ",\"worker\":%u}", r->n,
           r->sum, r->worker);
  return json_reply(ctx, req, 200, json);
}

static int front_request(tr_ctx_t *ctx, void *state, void *msg) {
  front_t *f = state;
  tr_http_request_t *req = msg;
  const tr_http_req_t *q = &req->req;
  tr_ctx_take(ctx); /* ours until we reply to it */
  if (q->path.n == 6 && !memcmp(q->path.p, "/stats", 6)) {
    char json[64];
    snprintf(json, sizeof(json), "{\"served\":%" PRIu64 "}", f->served);
    return json_reply(ctx, req, 200, json);
  }
  /* /sum?n=K */
  uint64_t n = 0;
  int ok = q->query.n > 2 && !memcmp(q->query.p, "n=", 2);
  for (size_t i = 2; ok && i < q->query.n; i++) {
    char c = q->query.p[i];
    if (c < '0' || c > '9' || n > 10000000) ok = 0;
    else n = n * 10 + (uint64_t)(c - '0');
  }
  if (!ok || n > 10000000)
    return json_reply(ctx, req, 400, "{\"error\":\"want /sum?n=0..10000000\"}");
  sum_req_t *w = sum_req_t_new();
  if (!w) return json_reply(ctx, req, 503, "{\"error\":\"out of memory\"}");
  w->n = n;
  tr_ref_t to = f->workers[f->next++ % NWORKERS];
  int rc = tr_ask_timeout(ctx, to, w, 5000, front_done, req);
  if (rc) return json_reply(ctx, req, 503, "{\"error\":\"no worker\"}");
  return 0;
}

static const tr_handler_t front_handlers[] = {
    {&tr_http_request_t__type, front_request}};
static const tr_behavior_t front_behavior = {
    .name = "front",
    .state_size = sizeof(front_t),
    .init = front_init,
    .handlers = TR_HANDLERS(front_handlers)};

/* ---- main ------------------------------------------------------------------ */

static int start(tr_runtime_t *rt, uint16_t port, tr_http_server_t **srv) {
  tr_ref_t front;
  int rc = tr_spawn(rt, &front_behavior, NULL, &front);
  if (rc) return rc;
  tr_http_route_t routes[] = {
      {.method = "GET", .path = "/sum", .target = front},
      {.method = "GET", .path = "/stats", .target = front},
  };
  tr_http_server_opts_t o;
  tr_http_server_opts_init(&o);
  o.port = port;
  o.routes = routes;
  o.nroutes = 2;
  return tr_http_server_start(rt, &o, srv);
}

/* The self-test client: plain sockets, keep-alive, 200 questions. */
static int selftest(uint16_t port) {
  int bad = 0;
  for (int c = 0; c < 4; c++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a))) return 1;
    for (int i = 0; i < 50; i++) {
      uint64_t n = (uint64_t)(c * 1000 + i * 37);
      char req[128], buf[4096];
      int len = snprintf(req, sizeof(req),
                         "GET /sum?n=%" PRIu64 " HTTP/1.1\r\nHost: t\r\n\r\n", n);
      if (write(fd, req, (size_t)len) != len) return 1;
      size_t got = 0;
      tr_http_field_t fl[32];
      tr_http_head_t h;
      int hl = 0;
      while (hl == 0 || got < (size_t)hl + h.content_length) {
        ssize_t k = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (k <= 0) return 1;
        got += (size_t)k;
        tr_http_head_init(&h, fl, 32);
        hl = tr_http_response_parse(&h, buf, got, NULL, 0);
        if (hl < 0) return 1;
      }
      buf[got] = 0;
      char want[64];
      snprintf(want, sizeof(want), "\"sum\":%" PRIu64 ",", n * (n + 1) / 2);
      if (h.status != 200 || !strstr(buf + hl, want)) {
        fprintf(stderr, "service: bad answer for n=%" PRIu64 ": %s\n", n,
                buf + hl);
        bad++;
      }
    }
    close(fd);
  }
  return bad != 0;
}

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

int main(int argc, char **argv) {
  long port = 0;
  int serve = argc == 3 && !strcmp(argv[1], "--port");
  if (serve) port = strtol(argv[2], NULL, 10);
  if ((argc != 1 && !serve) || port < 0 || port > 65535) {
    fprintf(stderr, "usage: service [--port N]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  tr_runtime_t *rt;
  if (tr_runtime_new(NULL, &rt) || tr_runtime_start(rt)) return 1;
  tr_http_server_t *srv;
  int rc = start(rt, (uint16_t)port, &srv);
  if (rc) {
    fprintf(stderr, "service: %s\n", tr_strerror(rc));
    return 1;
  }
  int status = 0;
  if (serve) {
    printf("listening on 127.0.0.1:%u\n", tr_http_server_port(srv));
    fflush(stdout);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    while (!stop_flag) pause();
  } else {
    status = selftest(tr_http_server_port(srv));
    printf("service self-test: %s\n", status ? "FAILED" : "200 answers ok");
  }
  tr_http_server_shutdown(srv, 2000);
  tr_runtime_shutdown(rt, 5000);
  tr_http_server_free(srv);
  tr_runtime_free(rt);
  return status;
}
