/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/1.1 server end to end over loopback, driven by a plain
 * blocking-socket client in the test: keep-alive, pipelining in order
 * (also when actor routes reply out of order), chunked and fixed bodies,
 * 100-continue, HEAD, HTTP/1.0, every refusal with its status and a
 * closed connection, actor routes that die, drop or stall, the header,
 * body and idle timeouts (slowloris), a large response to a slow reader,
 * a file body to a slow reader (sent whole with sendfile: not cut by the
 * idle timeout or the linger), and graceful shutdown.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <troupe.h>
#include <troupe/http_server.h>

#include "testutil.h"

/* ---- the client --------------------------------------------------------- */

/* rcvbuf > 0: a small receive buffer, set before connecting (set after,
 * the window shrinks under the peer and Linux stalls the stream). */
static int cli_connect_buf(uint16_t port, int rcvbuf) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

static int cli_connect(uint16_t port) { return cli_connect_buf(port, 0); }

static void cli_send(int fd, const char *s, size_t n) {
  while (n) {
    ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
    ck_assert_int_gt(k, 0);
    s += k;
    n -= (size_t)k;
  }
}
#define SEND(fd, lit) cli_send(fd, lit, sizeof(lit) - 1)

typedef struct resp {
  int status;
  int close;          /* "Connection: close" */
  int keep_alive;     /* "Connection: keep-alive" */
  char *body;
  size_t body_len;
  long content_length; /* -1: none */
  char date[64];
} resp_t;

typedef struct reader {
  int fd;
  char buf[1 << 16];
  size_t len;
  int eof;
} reader_t;

/* Reads more bytes (waits up to ms); 0 at end of file or timeout. */
static int rd_more(reader_t *r, int ms) {
  struct pollfd p = {.fd = r->fd, .events = POLLIN};
  if (poll(&p, 1, ms) <= 0) return 0;
  if (r->len == sizeof(r->buf)) return 0;
  ssize_t k = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, 0);
  if (k <= 0) {
    r->eof = 1;
    return 0;
  }
  r->len += (size_t)k;
  return 1;
}

/* Reads one response (head_req: the request was HEAD). 0 or -1. */
static int rd_resp(reader_t *r, resp_t *out, int head_req) {
  memset(out, 0, sizeof(*out));
  out->content_length = -1;
  tr_http_field_t f[64];
  tr_http_head_t h;
  int n;
  for (;;) {
    tr_http_head_init(&h, f, 64);
    n = tr_http_response_parse(&h, r->buf, r->len, NULL, head_req);
    if (n < 0) return -1;
    if (n > 0) break;
    if (!rd_more(r, 5000)) return -1;
  }
  out->status = h.status;
  const tr_http_field_t *c = tr_http_head_field(&h, "connection");
  if (c && c->value.n == 5 && !strncasecmp(c->value.p, "close", 5))
    out->close = 1;
  if (c && c->value.n == 10 && !strncasecmp(c->value.p, "keep-alive", 10))
    out->keep_alive = 1;
  const tr_http_field_t *d = tr_http_head_field(&h, "date");
  if (d && d->value.n < sizeof(out->date)) memcpy(out->date, d->value.p, d->value.n);
  const tr_http_field_t *cl = tr_http_head_field(&h, "content-length");
  if (cl) out->content_length = strtol(cl->value.p, NULL, 10);
  size_t need = 0;
  if (h.body == TR_HTTP_BODY_LENGTH) {
    out->content_length = (long)h.content_length;
    need = (size_t)h.content_length;
  }
  ck_assert(h.body != TR_HTTP_BODY_CHUNKED);
  size_t hl = (size_t)n;
  if (h.body == TR_HTTP_BODY_CLOSE) {
    while (rd_more(r, 5000)) {
    }
    need = r->len - hl;
  }
  out->body = malloc(need + 1);
  size_t got = 0;
  /* the body may be larger than the buffer: drain it through */
  for (;;) {
    size_t have = r->len - hl;
    size_t take = have < need - got ? have : need - got;
    memcpy(out->body + got, r->buf + hl, take);
    got += take;
    memmove(r->buf, r->buf + hl + take, r->len - hl - take);
    r->len -= hl + take;
    hl = 0;
    if (got == need) break;
    if (!rd_more(r, 5000)) {
      free(out->body);
      out->body = NULL;
      return -1;
    }
  }
  out->body[got] = 0;
  out->body_len = got;
  return 0;
}

/* Whether the server closed: end of file within ms (bytes before it are
 * dropped). */
static int rd_closed(reader_t *r, int ms) {
  uint64_t end = tu_now_ms() + (uint64_t)ms;
  while (tu_now_ms() < end) {
    r->len = 0;
    rd_more(r, 50);
    if (r->eof) return 1;
  }
  return 0;
}

static void resp_free(resp_t *p) { free(p->body); }

/* ---- the server ------------------------------------------------------------ */

static int hello(tr_ctx_t *ctx, const tr_http_req_t *req,
                 tr_http_response_t *resp, void *arg) {
  (void)ctx;
  (void)req;
  (void)arg;
  tr_http_response_header(resp, "Content-Type", "text/plain");
  return tr_http_response_body(resp, "Hello, World!", 13);
}

static int echo(tr_ctx_t *ctx, const tr_http_req_t *req,
                tr_http_response_t *resp, void *arg) {
  (void)ctx;
  (void)arg;
  return tr_http_response_body(resp, req->body.p, req->body.n);
}

static int fails(tr_ctx_t *ctx, const tr_http_req_t *req,
                 tr_http_response_t *resp, void *arg) {
  (void)ctx;
  (void)req;
  (void)resp;
  (void)arg;
  return TR_EINVAL;
}

static char big[3 << 20];
static char huge[16 << 20];
static int hugebody(tr_ctx_t *ctx, const tr_http_req_t *req,
                    tr_http_response_t *resp, void *arg) {
  (void)ctx;
  (void)req;
  (void)arg;
  return tr_http_response_body(resp, huge, sizeof(huge));
}

static int body64k(tr_ctx_t *ctx, const tr_http_req_t *req,
                   tr_http_response_t *resp, void *arg) {
  (void)ctx;
  (void)req;
  (void)arg;
  return tr_http_response_body(resp, big, 64 << 10);
}
static int bigbody(tr_ctx_t *ctx, const tr_http_req_t *req,
                   tr_http_response_t *resp, void *arg) {
  (void)ctx;
  (void)req;
  (void)arg;
  return tr_http_response_body(resp, big, sizeof(big));
}

/* A file served by /file (from the page cache with sendfile on plain
 * TCP), larger than what the kernel's socket buffers can take at once,
 * so that most of it waits in the connection's write queue. */
#define FILE_SIZE (24u << 20)
static char file_path[512];
static char *file_bytes;
static int filebody(tr_ctx_t *ctx, const tr_http_req_t *req,
                    tr_http_response_t *resp, void *arg) {
  (void)ctx;
  (void)req;
  (void)arg;
  return tr_http_response_file(resp, file_path, 0, UINT64_MAX);
}

static void file_make(void) {
  file_bytes = malloc(FILE_SIZE);
  ck_assert_ptr_nonnull(file_bytes);
  for (size_t i = 0; i < FILE_SIZE; i++)
    file_bytes[i] = (char)(i * 13 + (i >> 11));
  const char *t = getenv("TMPDIR");
  snprintf(file_path, sizeof(file_path), "%s/troupe-http-XXXXXX",
           t && *t ? t : "/tmp");
  int fd = mkstemp(file_path);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, file_bytes, FILE_SIZE), (ssize_t)FILE_SIZE);
  ck_assert_int_eq(close(fd), 0);
}

/* An actor route: answers "<path>" after holding `hold` requests, then
 * answers the held ones last first (so replies come out of order). */
typedef struct holder {
  tr_http_request_t *held[8];
  int n;
} holder_t;
static _Atomic int hold_count = 3;

static int answer(tr_ctx_t *ctx, tr_http_request_t *q) {
  tr_http_response_t *r = tr_http_response_new(200);
  tr_http_response_body(r, q->req.path.p, q->req.path.n);
  return tr_reply_to(ctx, q, r);
}

static int holder_req(tr_ctx_t *ctx, void *state, void *msg) {
  holder_t *h = state;
  tr_http_request_t *q = msg;
  if (!strncmp(q->req.path.p, "/drop", 5)) return 0; /* freed unanswered */
  if (!strncmp(q->req.path.p, "/stall", 6)) {
    tr_ctx_take(ctx);
    h->held[h->n++] = q; /* kept: no answer until later */
    return 0;
  }
  tr_ctx_take(ctx);
  h->held[h->n++] = q;
  if (h->n < atomic_load(&hold_count)) return 0;
  while (h->n) answer(ctx, h->held[--h->n]);
  return 0;
}

static void holder_stop(tr_ctx_t *ctx, void *state, int reason) {
  holder_t *h = state;
  (void)ctx;
  (void)reason;
  while (h->n) tr_msg_free(h->held[--h->n]);
}

static const tr_handler_t holder_handlers[] = {
    {&tr_http_request_t__type, holder_req}};
static const tr_behavior_t holder_behavior = {
    .name = "holder",
    .state_size = sizeof(holder_t),
    .on_stop = holder_stop,
    .handlers = TR_HANDLERS(holder_handlers)};

/* A WebSocket owner that keeps what it gets while told to hold (the
 * test's stand-in for a slow owner), counting the payload bytes it has
 * let go. */
typedef struct sink {
  tr_ws_message_t *held[4096];
  int n;
  int released;
} sink_t;
TR_MESSAGE_TYPE(sink_release_t, int unused;);
TR_MESSAGE_DEFINE(sink_release_t);
static _Atomic uint64_t sink_bytes;
static _Atomic uint64_t sink_ref;

static int sink_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)state;
  (void)arg;
  atomic_store(&sink_ref, tr_ctx_self(ctx).id);
  return 0;
}

static int sink_msg(tr_ctx_t *ctx, void *state, void *msg) {
  sink_t *k = state;
  tr_ws_message_t *m = msg;
  if (k->released || k->n == 4096) {
    atomic_fetch_add(&sink_bytes, m->len);
    return 0;
  }
  tr_ctx_take(ctx);
  k->held[k->n++] = m;
  return 0;
}

static int sink_release(tr_ctx_t *ctx, void *state, void *msg) {
  sink_t *k = state;
  (void)ctx;
  (void)msg;
  k->released = 1;
  while (k->n) {
    tr_ws_message_t *m = k->held[--k->n];
    atomic_fetch_add(&sink_bytes, m->len);
    tr_msg_free(m);
  }
  return 0;
}

static int sink_closed(tr_ctx_t *ctx, void *state, void *msg) {
  (void)msg;
  sink_release(ctx, state, NULL);
  tr_actor_stop(tr_ctx_self(ctx), 0);
  return 0;
}

static void sink_stop(tr_ctx_t *ctx, void *state, int reason) {
  (void)reason;
  sink_release(ctx, state, NULL);
}

static const tr_handler_t sink_handlers[] = {
    {&tr_ws_message_t__type, sink_msg},
    {&sink_release_t__type, sink_release},
    {&tr_ws_closed_t__type, sink_closed},
};
static const tr_behavior_t sink_behavior = {.name = "sink",
                                            .state_size = sizeof(sink_t),
                                            .init = sink_init,
                                            .on_stop = sink_stop,
                                            .handlers = TR_HANDLERS(sink_handlers)};

typedef struct fixture {
  tr_runtime_t *rt;
  tr_http_server_t *srv;
  uint16_t port;
  tr_ref_t holder;
  tr_ref_t dead;
} fixture_t;

static void fx_start(fixture_t *fx, tr_http_server_opts_t *o) {
  fx->rt = tu_runtime(2, 0, 1);
  ck_assert_int_eq(tr_spawn(fx->rt, &holder_behavior, NULL, &fx->holder), 0);
  ck_assert_int_eq(tr_spawn(fx->rt, &holder_behavior, NULL, &fx->dead), 0);
  ck_assert_int_eq(tr_actor_stop(fx->dead, 0), 0);
  while (tr_actor_alive(fx->dead) > 0) tu_sleep_ms(1);
  tr_http_route_t routes[] = {
      {.method = "GET", .path = "/hello", .fn = hello},
      {.method = "POST", .path = "/echo", .fn = echo},
      {.method = "GET", .path = "/fail", .fn = fails},
      {.method = "GET", .path = "/big", .fn = bigbody},
      {.method = "GET", .path = "/64k", .fn = body64k},
      {.method = "GET", .path = "/huge", .fn = hugebody},
      {.method = "GET", .path = "/file", .fn = filebody},
      {.path = "/actor/", .prefix = 1, .target = fx->holder, .timeout = 300},
      {.path = "/drop", .target = fx->holder},
      {.path = "/stall", .target = fx->holder, .timeout = 200},
      {.path = "/dead", .target = fx->dead},
      {.method = "GET", .path = "/sink", .ws = &sink_behavior},
  };
  tr_http_server_opts_t d;
  if (!o) {
    tr_http_server_opts_init(&d);
    o = &d;
  }
  o->routes = routes;
  o->nroutes = sizeof(routes) / sizeof(routes[0]);
  ck_assert_int_eq(tr_http_server_start(fx->rt, o, &fx->srv), 0);
  fx->port = tr_http_server_port(fx->srv);
  ck_assert_int_ne(fx->port, 0);
}

static void fx_stop(fixture_t *fx) {
  tr_http_server_shutdown(fx->srv, 1000);
  ck_assert_int_eq(tr_runtime_shutdown(fx->rt, 10000), 0);
  tr_http_server_free(fx->srv);
  tr_runtime_free(fx->rt);
}

/* One request on a fresh connection; returns the response. */
static resp_t one(fixture_t *fx, const char *req, int head_req) {
  int fd = cli_connect(fx->port);
  cli_send(fd, req, strlen(req));
  static reader_t r;
  memset(&r, 0, sizeof(r));
  r.fd = fd;
  resp_t p;
  ck_assert_int_eq(rd_resp(&r, &p, head_req), 0);
  close(fd);
  return p;
}

/* A request the server must refuse with status and a closed connection. */
static void refused(fixture_t *fx, const char *req, size_t n, int status) {
  int fd = cli_connect(fx->port);
  cli_send(fd, req, n);
  static reader_t r;
  memset(&r, 0, sizeof(r));
  r.fd = fd;
  resp_t p;
  ck_assert_int_eq(rd_resp(&r, &p, 0), 0);
  ck_assert_int_eq(p.status, status);
  ck_assert(p.close);
  ck_assert(rd_closed(&r, 3000));
  resp_free(&p);
  close(fd);
}
#define REFUSED(fx, lit, st) refused(fx, lit, sizeof(lit) - 1, st)

/* ---- tests ------------------------------------------------------------------- */

START_TEST(test_keep_alive) {
  fixture_t fx;
  fx_start(&fx, NULL);
  int fd = cli_connect(fx.port);
  reader_t *r = calloc(1, sizeof(*r));
  r->fd = fd;
  for (int i = 0; i < 3; i++) {
    SEND(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    resp_t p;
    ck_assert_int_eq(rd_resp(r, &p, 0), 0);
    ck_assert_int_eq(p.status, 200);
    ck_assert_str_eq(p.body, "Hello, World!");
    ck_assert_int_eq(p.content_length, 13);
    ck_assert(!p.close);
    ck_assert_int_eq(strlen(p.date), 29);
    ck_assert(strstr(p.date, " GMT"));
    resp_free(&p);
  }
  /* GET of a POST route: 405; unknown: 404; still the same connection */
  SEND(fd, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
  resp_t p;
  ck_assert_int_eq(rd_resp(r, &p, 0), 0);
  ck_assert_int_eq(p.status, 405);
  resp_free(&p);
  ck_assert_int_eq(rd_resp(r, &p, 0), 0);
  ck_assert_int_eq(p.status, 404);
  resp_free(&p);
  close(fd);
  free(r);
  tr_http_server_stats_t st;
  ck_assert_int_eq(tr_http_server_stats(fx.srv, &st), 0);
  ck_assert_uint_eq(st.requests, 5);
  ck_assert_uint_eq(st.connections, 1);
  fx_stop(&fx);
}
END_TEST

START_TEST(test_pipelining_in_order) {
  fixture_t fx;
  fx_start(&fx, NULL);
  atomic_store(&hold_count, 3);
  int fd = cli_connect(fx.port);
  /* three actor requests, answered last first, with a fast-path request
   * between them: the responses still come in request order */
  SEND(fd, "GET /actor/1 HTTP/1.1\r\nHost: x\r\n\r\n"
           "GET /actor/2 HTTP/1.1\r\nHost: x\r\n\r\n"
           "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
           "GET /actor/3 HTTP/1.1\r\nHost: x\r\n\r\n");
  reader_t *r = calloc(1, sizeof(*r));
  r->fd = fd;
  const char *want[] = {"/actor/1", "/actor/2", "Hello, World!", "/actor/3"};
  for (int i = 0; i < 4; i++) {
    resp_t p;
    ck_assert_int_eq(rd_resp(r, &p, 0), 0);
    ck_assert_int_eq(p.status, 200);
    ck_assert_str_eq(p.body, want[i]);
    resp_free(&p);
  }
  close(fd);
  free(r);
  fx_stop(&fx);
}
END_TEST

START_TEST(test_bodies) {
  fixture_t fx;
  fx_start(&fx, NULL);
  resp_t p = one(&fx, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 0);
  ck_assert_int_eq(p.status, 200);
  ck_assert_str_eq(p.body, "hello");
  resp_free(&p);
  p = one(&fx, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n", 0);
  ck_assert_int_eq(p.status, 200);
  ck_assert_str_eq(p.body, "hello, world");
  resp_free(&p);
  /* a body sent a byte at a time, chunked */
  int fd = cli_connect(fx.port);
  const char *req = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  for (const char *c = req; *c; c++) {
    cli_send(fd, c, 1);
    if ((c - req) % 7 == 0) tu_sleep_ms(1);
  }
  reader_t *r = calloc(1, sizeof(*r));
  r->fd = fd;
  ck_assert_int_eq(rd_resp(r, &p, 0), 0);
  ck_assert_str_eq(p.body, "abcde");
  resp_free(&p);
  /* an actor route gets the body too, and the same connection goes on */
  atomic_store(&hold_count, 1);
  SEND(fd, "POST /actor/x?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
  ck_assert_int_eq(rd_resp(r, &p, 0), 0);
  ck_assert_str_eq(p.body, "/actor/x");
  resp_free(&p);
  close(fd);
  free(r);
  fx_stop(&fx);
}
END_TEST

START_TEST(test_expect_continue) {
  fixture_t fx;
  fx_start(&fx, NULL);
  int fd = cli_connect(fx.port);
  SEND(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  reader_t *r = calloc(1, sizeof(*r));
  r->fd = fd;
  resp_t p;
  ck_assert_int_eq(rd_resp(r, &p, 0), 0);
  ck_assert_int_eq(p.status, 100);
  resp_free(&p);
  SEND(fd, "body");
  ck_assert_int_eq(rd_resp(r, &p, 0), 0);
  ck_assert_int_eq(p.status, 200);
  ck_assert_str_eq(p.body, "body");
  resp_free(&p);
  close(fd);
  free(r);
  fx_stop(&fx);
}
END_TEST

START_TEST(test_head_and_http10) {
  fixture_t fx;
  fx_start(&fx, NULL);
  resp_t p = one(&fx, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n", 1);
  ck_assert_int_eq(p.status, 200);
  ck_assert_int_eq(p.content_length, 13);
  ck_assert_int_eq(p.body_len, 0);
  resp_free(&p);
  /* HTTP/1.0: closed after the response */
  int fd = cli_connect(fx.port);
  SEND(fd, "GET /hello HTTP/1.0\r\n\r\n");
  reader_t *r = calloc(1, sizeof(*r));
  r->fd = fd;
  ck_assert_int_eq(rd_resp(r, &p, 0), 0);
  ck_assert_int_eq(p.status, 200);
  ck_assert(p.close);
  ck_assert(rd_closed(r, 3000));
  resp_free(&p);
  close(fd);
  /* HTTP/1.0 with keep-alive stays open */
  fd = cli_connect(fx.port);
  memset(r, 0, sizeof(*r));
  r->fd = fd;
  for (int i = 0; i < 2; i++) {
    SEND(fd, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    ck_assert_int_eq(rd_resp(r, &p, 0), 0);
    ck_assert_int_eq(p.status, 200);
    ck_assert(p.keep_alive);
    resp_free(&p);
  }
  /* "Connection: close" in 1.1 */
  SEND(fd, "GET /hello HTTP/1.0\r\nConnection: close\r\n\r\n");
  ck_assert_int_eq(rd_resp(r, &p, 0), 0);
  ck_assert(p.close);
  ck_assert(rd_closed(r, 3000));
  resp_free(&p);
  close(fd);
  free(r);
  fx_stop(&fx);
}
END_TEST

START_TEST(test_refusals) {
  tr_http_server_opts_t o;
  tr_http_server_opts_init(&o);
  o.body_max = 100;
  o.fields_max = 10;
  o.line_max = 200;
  fixture_t fx;
  fx_start(&fx, &o);
  REFUSED(&fx, "GET /hello HTTP/1.1\nHost: x\r\n\r\n", 400);      /* bare LF */
  REFUSED(&fx, "GET /hello HTTP/1.1\rHost: x\r\n\r\n", 400);      /* bare CR */
  REFUSED(&fx, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
               "Transfer-Encoding: chunked\r\n\r\n", 400);
  REFUSED(&fx, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
               "Content-Length: 3\r\n\r\nabc", 400);
  REFUSED(&fx, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3x\r\n\r\n", 400);
  REFUSED(&fx, "GET /hello HTTP/1.1\r\n\r\n", 400);               /* no Host */
  REFUSED(&fx, "GET /hello HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400);
  REFUSED(&fx, "GET /hello HTTP/1.1\r\nHost : x\r\n\r\n", 400);
  REFUSED(&fx, "GET /hello HTTP/1.1\r\nHost: x\r\nX: a\x01\r\n\r\n", 400);
  REFUSED(&fx, "GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", 505);
  REFUSED(&fx, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", 413);
  REFUSED(&fx, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501);
  /* a chunked body over the limit */
  REFUSED(&fx, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "65\r\n", 413);
  REFUSED(&fx, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "zz\r\n", 400);
  char line[400];
  memset(line, 'a', sizeof(line));
  memcpy(line, "GET /", 5);
  refused(&fx, line, sizeof(line), 414); /* no line end yet */
  char many[1024];
  size_t n = (size_t)snprintf(many, sizeof(many), "GET /hello HTTP/1.1\r\nHost: x\r\n");
  for (int i = 0; i < 12; i++)
    n += (size_t)snprintf(many + n, sizeof(many) - n, "X-%d: v\r\n", i);
  n += (size_t)snprintf(many + n, sizeof(many) - n, "\r\n");
  refused(&fx, many, n, 431);
  /* a handler that fails: 500, the connection stays */
  resp_t p = one(&fx, "GET /fail HTTP/1.1\r\nHost: x\r\n\r\n", 0);
  ck_assert_int_eq(p.status, 500);
  resp_free(&p);
  tr_http_server_stats_t st;
  tr_http_server_stats(fx.srv, &st);
  ck_assert_uint_ge(st.errors, 16);
  fx_stop(&fx);
}
END_TEST

START_TEST(test_actor_failures) {
  fixture_t fx;
  fx_start(&fx, NULL);
  resp_t p = one(&fx, "GET /dead HTTP/1.1\r\nHost: x\r\n\r\n", 0);
  ck_assert_int_eq(p.status, 503);
  resp_free(&p);
  p = one(&fx, "GET /drop HTTP/1.1\r\nHost: x\r\n\r\n", 0);
  ck_assert_int_eq(p.status, 502);
  resp_free(&p);
  uint64_t t0 = tu_now_ms();
  p = one(&fx, "GET /stall HTTP/1.1\r\nHost: x\r\n\r\n", 0);
  ck_assert_int_eq(p.status, 504);
  ck_assert_uint_ge(tu_now_ms() - t0, 150);
  resp_free(&p);
  fx_stop(&fx);
}
END_TEST

START_TEST(test_slowloris) {
  tr_http_server_opts_t o;
  tr_http_server_opts_init(&o);
  o.header_timeout = 300;
  o.idle_timeout = 300;
  fixture_t fx;
  fx_start(&fx, &o);
  /* 50 clients send half a head a byte at a time, slowly */
  enum { N = 50 };
  int fds[N];
  for (int i = 0; i < N; i++) {
    fds[i] = cli_connect(fx.port);
    SEND(fds[i], "GET /hello HTTP/1.1\r\nHo");
  }
  /* meanwhile a whole request is served at once */
  uint64_t t0 = tu_now_ms();
  resp_t p = one(&fx, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", 0);
  ck_assert_int_eq(p.status, 200);
  resp_free(&p);
  /* trickling bytes does not extend the header timeout: each slow
   * client gets 408 and a closed connection within the bound */
  for (int k = 0; k < 4; k++) {
    tu_sleep_ms(50);
    for (int i = 0; i < N; i++) send(fds[i], "s", 1, MSG_NOSIGNAL);
  }
  reader_t *r = calloc(1, sizeof(*r));
  for (int i = 0; i < N; i++) {
    memset(r, 0, sizeof(*r));
    r->fd = fds[i];
    ck_assert_int_eq(rd_resp(r, &p, 0), 0);
    ck_assert_int_eq(p.status, 408);
    ck_assert(rd_closed(r, 3000));
    resp_free(&p);
    close(fds[i]);
  }
  ck_assert_uint_lt(tu_now_ms() - t0, 3000);
  /* an idle keep-alive connection is closed after idle_timeout */
  int fd = cli_connect(fx.port);
  SEND(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  memset(r, 0, sizeof(*r));
  r->fd = fd;
  ck_assert_int_eq(rd_resp(r, &p, 0), 0);
  resp_free(&p);
  ck_assert(rd_closed(r, 3000));
  close(fd);
  free(r);
  tr_http_server_stats_t st;
  tr_http_server_stats(fx.srv, &st);
  ck_assert_uint_ge(st.timeouts, N + 1);
  fx_stop(&fx);
}
END_TEST

START_TEST(test_large_response_slow_reader) {
  tr_http_server_opts_t o;
  tr_http_server_opts_init(&o);
  o.wbuf_max = 64 << 10;
  fixture_t fx;
  fx_start(&fx, &o);
  for (size_t i = 0; i < sizeof(big); i++) big[i] = (char)(i * 7 + (i >> 12));
  int fd = cli_connect_buf(fx.port, 8192);
  SEND(fd, "GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  tu_sleep_ms(200); /* the server meets a full socket */
  reader_t *r = calloc(1, sizeof(*r));
  r->fd = fd;
  resp_t p;
  ck_assert_int_eq(rd_resp(r, &p, 0), 0);
  ck_assert_int_eq(p.status, 200);
  ck_assert_uint_eq(p.body_len, sizeof(big));
  ck_assert(memcmp(p.body, big, sizeof(big)) == 0);
  resp_free(&p);
  ck_assert_int_eq(rd_resp(r, &p, 0), 0);
  ck_assert_str_eq(p.body, "Hello, World!");
  resp_free(&p);
  close(fd);
  free(r);
  fx_stop(&fx);
}
END_TEST

/* A file body to a slow reader: it leaves the server whole, in one
 * write, and waits in the connection's queue; neither the idle timeout
 * (keep-alive) nor the linger after "Connection: close" may cut it while
 * it is still going out. HEAD of a file has no body. */
START_TEST(test_file_body_slow_reader) {
  file_make();
  tr_http_server_opts_t o;
  tr_http_server_opts_init(&o);
  o.wbuf_max = 64 << 10;
  o.idle_timeout = 200;
  fixture_t fx;
  fx_start(&fx, &o);
  int fd = cli_connect_buf(fx.port, 8192);
  SEND(fd,
       "GET /file HTTP/1.1\r\nHost: x\r\n\r\n"
       "HEAD /file HTTP/1.1\r\nHost: x\r\n\r\n"
       "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  tu_sleep_ms(500); /* past the idle timeout, the file still queued */
  reader_t *r = calloc(1, sizeof(*r));
  r->fd = fd;
  resp_t p;
  ck_assert_int_eq(rd_resp(r, &p, 0), 0);
  ck_assert_int_eq(p.status, 200);
  ck_assert_uint_eq(p.body_len, FILE_SIZE);
  ck_assert(memcmp(p.body, file_bytes, FILE_SIZE) == 0);
  resp_free(&p);
  ck_assert_int_eq(rd_resp(r, &p, 1), 0);
  ck_assert_int_eq(p.status, 200);
  ck_assert_int_eq(p.content_length, (long)FILE_SIZE);
  ck_assert_uint_eq(p.body_len, 0);
  resp_free(&p);
  ck_assert_int_eq(rd_resp(r, &p, 0), 0);
  ck_assert_str_eq(p.body, "Hello, World!");
  resp_free(&p);
  close(fd);

  /* the last response: the linger (2 s) starts once the file is out */
  fd = cli_connect_buf(fx.port, 8192);
  SEND(fd, "GET /file HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  tu_sleep_ms(2500);
  memset(r, 0, sizeof(*r));
  r->fd = fd;
  ck_assert_int_eq(rd_resp(r, &p, 0), 0);
  ck_assert_int_eq(p.status, 200);
  ck_assert(p.close);
  ck_assert_uint_eq(p.body_len, FILE_SIZE);
  ck_assert(memcmp(p.body, file_bytes, FILE_SIZE) == 0);
  resp_free(&p);
  ck_assert(rd_closed(r, 3000));
  close(fd);
  free(r);
  fx_stop(&fx);
  ck_assert_int_eq(unlink(file_path), 0);
  free(file_bytes);
}
END_TEST

START_TEST(test_graceful_shutdown) {
  fixture_t fx;
  fx_start(&fx, NULL);
  atomic_store(&hold_count, 2);
  int idle = cli_connect(fx.port);
  int busy = cli_connect(fx.port);
  SEND(idle, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  reader_t *ri = calloc(1, sizeof(*ri)), *rb = calloc(1, sizeof(*rb));
  ri->fd = idle;
  rb->fd = busy;
  resp_t p;
  ck_assert_int_eq(rd_resp(ri, &p, 0), 0);
  resp_free(&p);
  /* one request held by the actor (it waits for a second) */
  SEND(busy, "GET /actor/a HTTP/1.1\r\nHost: x\r\n\r\n");
  tu_sleep_ms(100);
  ck_assert_int_eq(tr_http_server_shutdown(fx.srv, 5000), 0);
  /* the idle connection closes at once, new connections are refused */
  ck_assert(rd_closed(ri, 3000));
  tu_sleep_ms(100);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(fx.port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_ne(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  close(fd);
  /* the busy one gets its answer, with "Connection: close", once the
   * actor answers (a second request from elsewhere releases it) */
  tr_handle_t *h;
  ck_assert_int_eq(tr_handle_new(fx.rt, &h), 0);
  tr_http_request_t *q = tr_msg_new(&tr_http_request_t__type);
  q->req.path.p = "/actor/b";
  q->req.path.n = 8;
  void *rep = NULL;
  ck_assert_int_eq(tr_handle_call(h, fx.holder, q, 5000, &rep), 0);
  tr_msg_free(rep);
  tr_handle_free(h);
  ck_assert_int_eq(rd_resp(rb, &p, 0), 0);
  ck_assert_int_eq(p.status, 200);
  ck_assert_str_eq(p.body, "/actor/a");
  ck_assert(p.close);
  ck_assert(rd_closed(rb, 3000));
  resp_free(&p);
  close(idle);
  close(busy);
  free(ri);
  free(rb);
  fx_stop(&fx);
}
END_TEST

/* An owner slower than its peer holds the peer back: the connection
 * stops reading once ws_inflight_max bytes wait in the owner, and reads
 * on when the owner catches up; nothing is lost. */
START_TEST(test_ws_owner_flow_control) {
  tr_http_server_opts_t o;
  tr_http_server_opts_init(&o);
  o.ws_inflight_max = 64 << 10;
  o.rbuf_max = 64 << 10;
  fixture_t fx;
  fx_start(&fx, &o);
  atomic_store(&sink_bytes, 0);
  atomic_store(&sink_ref, 0);
  int fd = cli_connect(fx.port);
  SEND(fd, "GET /sink HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n");
  char buf[512];
  ssize_t k = recv(fd, buf, sizeof(buf) - 1, 0);
  ck_assert_int_gt(k, 12);
  ck_assert(!memcmp(buf, "HTTP/1.1 101", 12));
  /* 16 KiB binary frames, masked, as fast as the socket takes them */
  static uint8_t frame[(16 << 10) + 16];
  static uint8_t payload[16 << 10];
  memset(payload, 'p', sizeof(payload));
  uint8_t key[4] = {1, 2, 3, 4};
  int64_t fl = tr_ws_message_write(frame, sizeof(frame), TR_WS_OP_BINARY,
                                   payload, sizeof(payload), key);
  ck_assert_int_gt(fl, 0);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  uint64_t frames = 0, limit = 2048; /* 32 MiB */
  size_t off = 0;
  uint64_t idle_since = tu_now_ms();
  while (frames < limit && tu_now_ms() - idle_since < 500) {
    ssize_t w = send(fd, frame + off, (size_t)fl - off, MSG_NOSIGNAL);
    if (w > 0) {
      off += (size_t)w;
      if (off == (size_t)fl) {
        off = 0;
        frames++;
      }
      idle_since = tu_now_ms();
    } else {
      tu_sleep_ms(5);
    }
  }
  /* held back well before everything went (kernel buffers hold a few
   * MiB, not 32) */
  ck_assert_uint_lt(frames, limit);
  ck_assert_uint_eq(atomic_load(&sink_bytes), 0);
  /* the owner catches up: the rest flows */
  tr_ref_t owner = {atomic_load(&sink_ref)};
  ck_assert(!tr_ref_is_null(owner));
  ck_assert_int_eq(tr_send(NULL, owner, sink_release_t_new()), 0);
  uint64_t end = tu_now_ms() + 20000;
  while (frames < limit && tu_now_ms() < end) {
    ssize_t w = send(fd, frame + off, (size_t)fl - off, MSG_NOSIGNAL);
    if (w > 0) {
      off += (size_t)w;
      if (off == (size_t)fl) {
        off = 0;
        frames++;
      }
    } else {
      tu_sleep_ms(1);
    }
  }
  ck_assert_uint_eq(frames, limit);
  uint64_t want = limit * sizeof(payload);
  end = tu_now_ms() + 20000;
  while (atomic_load(&sink_bytes) < want && tu_now_ms() < end) tu_sleep_ms(5);
  ck_assert_uint_eq(atomic_load(&sink_bytes), want);
  close(fd);
  fx_stop(&fx);
}
END_TEST

/* A client that pipelines requests and reads nothing gets only what the
 * bounds allow answered (the rest waits unparsed); reading, it gets all,
 * in order. */
START_TEST(test_pipeline_output_bounded) {
  fixture_t fx;
  fx_start(&fx, NULL);
  int fd = cli_connect_buf(fx.port, 16384);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  static const char req[] = "GET /64k HTTP/1.1\r\nHost: x\r\n\r\n";
  enum { N = 2000 };
  size_t total = N * (sizeof(req) - 1), sent = 0;
  uint64_t idle = tu_now_ms();
  while (sent < total && tu_now_ms() - idle < 500) {
    size_t at = sent % (sizeof(req) - 1);
    ssize_t w = send(fd, req + at, sizeof(req) - 1 - at, MSG_NOSIGNAL);
    if (w > 0) {
      sent += (size_t)w;
      idle = tu_now_ms();
    } else {
      tu_sleep_ms(5);
    }
  }
  tu_sleep_ms(300);
  tr_http_server_stats_t st;
  tr_http_server_stats(fx.srv, &st);
  /* 2000 answers are 128 MiB: far less is answered while nobody reads */
  ck_assert_uint_lt(st.requests, N / 2);
  /* now read everything, sending the rest as it goes */
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  while (sent < total) {
    size_t at = sent % (sizeof(req) - 1);
    ssize_t w = send(fd, req + at, sizeof(req) - 1 - at, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) sent += (size_t)w;
    else break;
  }
  reader_t *r = calloc(1, sizeof(*r));
  r->fd = fd;
  for (int i = 0; i < N; i++) {
    resp_t p;
    ck_assert_int_eq(rd_resp(r, &p, 0), 0);
    ck_assert_uint_eq(p.body_len, 64 << 10);
    resp_free(&p);
    while (sent < total) {
      size_t at = sent % (sizeof(req) - 1);
      ssize_t w = send(fd, req + at, sizeof(req) - 1 - at, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) sent += (size_t)w;
      else break;
    }
  }
  close(fd);
  free(r);
  fx_stop(&fx);
}
END_TEST

/* A peer that takes none of a response for body_timeout is dropped: it
 * cannot hold a connection (and its memory) forever. */
START_TEST(test_slow_reader_dropped) {
  tr_http_server_opts_t o;
  tr_http_server_opts_init(&o);
  o.body_timeout = 300;
  fixture_t fx;
  fx_start(&fx, &o);
  int fd = cli_connect_buf(fx.port, 8192);
  /* 16 MiB: more than the kernel's socket buffers take */
  SEND(fd, "GET /huge HTTP/1.1\r\nHost: x\r\n\r\n");
  uint64_t end = tu_now_ms() + 10000;
  tr_http_server_stats_t st;
  do {
    tu_sleep_ms(50);
    tr_http_server_stats(fx.srv, &st);
  } while (st.open && tu_now_ms() < end);
  ck_assert_uint_eq(st.open, 0);
  ck_assert_uint_ge(st.timeouts, 1);
  close(fd);
  fx_stop(&fx);
}
END_TEST

START_TEST(test_response_api) {
  tr_http_response_t *r = tr_http_response_new(0);
  ck_assert_ptr_nonnull(r);
  ck_assert_int_eq(r->status, 200);
  ck_assert_int_eq(tr_http_response_header(r, "X-A", "ok\tfine"), 0);
  ck_assert_int_eq(tr_http_response_header(r, "X-B", "a\r\nInjected: 1"), TR_EINVAL);
  ck_assert_int_eq(tr_http_response_header(r, "Bad Name", "v"), TR_EINVAL);
  ck_assert_int_eq(tr_http_response_header(r, "Content-Length", "3"), TR_EINVAL);
  ck_assert_int_eq(tr_http_response_body(r, "abc", 3), 0);
  ck_assert_int_eq(tr_http_response_file(r, "/etc/hostname", 0, UINT64_MAX), TR_EINVAL);
  tr_msg_free(r);
  ck_assert_ptr_null(tr_http_response_new(42));
  r = tr_http_response_new(200);
  ck_assert_int_eq(tr_http_response_file(r, "/nonexistent/file", 0, UINT64_MAX), -ENOENT);
  tr_msg_free(r);
  /* bad options */
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_http_server_opts_t o;
  tr_http_server_opts_init(&o);
  tr_http_server_t *s;
  ck_assert_int_eq(tr_http_server_start(rt, &o, &s), TR_EINVAL);
  tr_http_route_t bad = {.path = "/x"};
  o.routes = &bad;
  o.nroutes = 1;
  ck_assert_int_eq(tr_http_server_start(rt, &o, &s), TR_EINVAL);
  bad.fn = hello;
  bad.path = "x";
  ck_assert_int_eq(tr_http_server_start(rt, &o, &s), TR_EINVAL);
  bad.path = "/x";
  o.idle_timeout = -5;
  ck_assert_int_eq(tr_http_server_start(rt, &o, &s), TR_EINVAL);
  tr_runtime_shutdown(rt, 5000);
  tr_runtime_free(rt);
}
END_TEST

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  Suite *s = suite_create("http_server");
  TCase *tc = tcase_create("http_server");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_keep_alive);
  tcase_add_test(tc, test_pipelining_in_order);
  tcase_add_test(tc, test_bodies);
  tcase_add_test(tc, test_expect_continue);
  tcase_add_test(tc, test_head_and_http10);
  tcase_add_test(tc, test_refusals);
  tcase_add_test(tc, test_actor_failures);
  tcase_add_test(tc, test_slowloris);
  tcase_add_test(tc, test_large_response_slow_reader);
  tcase_add_test(tc, test_file_body_slow_reader);
  tcase_add_test(tc, test_graceful_shutdown);
  tcase_add_test(tc, test_response_api);
  tcase_add_test(tc, test_ws_owner_flow_control);
  tcase_add_test(tc, test_pipeline_output_bounded);
  tcase_add_test(tc, test_slow_reader_dropped);
  suite_add_tcase(s, tc);
  return tu_run(s);
}
