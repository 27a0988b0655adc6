/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/1.1 client end to end over loopback: against our own server
 * (GET, POST, HEAD, 404, keep-alive reuse counted on the server, a host
 * name, body_max, HTTPS with a CA made by the openssl command and a
 * client that does not trust it), against a raw server thread of the
 * test that writes canned responses (chunked, close-delimited, interim
 * 1xx, malformed, truncated, a server that never answers, one that
 * closes a kept-alive connection under the next request), a refused
 * connection, URL and field validation, and python3's http.server as a
 * third-party server.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <troupe.h>
#include <troupe/http_client.h>
#include <troupe/http_server.h>

#include "testutil.h"

/* ---- our server ---------------------------------------------------------- */

static int hello(tr_ctx_t *ctx, const tr_http_req_t *req,
                 tr_http_response_t *resp, void *arg) {
  (void)ctx;
  (void)req;
  (void)arg;
  tr_http_response_header(resp, "Content-Type", "text/plain");
  tr_http_response_header(resp, "X-Test", "yes");
  return tr_http_response_body(resp, "Hello, World!", 13);
}

static int echo(tr_ctx_t *ctx, const tr_http_req_t *req,
                tr_http_response_t *resp, void *arg) {
  (void)ctx;
  (void)arg;
  const tr_http_field_t *f = NULL;
  for (unsigned i = 0; i < req->nfields; i++)
    if (req->fields[i].name.n == 7 &&
        !strncasecmp(req->fields[i].name.p, "x-token", 7))
      f = &req->fields[i];
  if (f) {
    char v[64];
    size_t n = f->value.n < sizeof(v) - 1 ? f->value.n : sizeof(v) - 1;
    memcpy(v, f->value.p, n);
    v[n] = 0;
    tr_http_response_header(resp, "X-Token", v);
  }
  return tr_http_response_body(resp, req->body.p, req->body.n);
}

static const tr_http_route_t routes[] = {
    {.method = "GET", .path = "/hello", .fn = hello},
    {.method = "POST", .path = "/echo", .fn = echo},
};

static tr_http_server_t *server_start(tr_runtime_t *rt, tr_tls_config_t *tls) {
  tr_http_server_opts_t o;
  tr_http_server_opts_init(&o);
  o.routes = routes;
  o.nroutes = sizeof(routes) / sizeof(routes[0]);
  o.tls = tls;
  tr_http_server_t *s = NULL;
  ck_assert_int_eq(tr_http_server_start(rt, &o, &s), 0);
  return s;
}

/* ---- a raw server: canned responses --------------------------------------- */

typedef struct raw {
  int lfd;
  uint16_t port;
  pthread_t th;
  _Atomic uint64_t conns;
  _Atomic int stop;
} raw_t;

static void raw_send(int fd, const char *s) {
  size_t n = strlen(s);
  while (n) {
    ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
    if (k <= 0) return;
    s += k;
    n -= (size_t)k;
  }
}

/* Reads one request head into buf; its length, or 0 at the end. */
static size_t raw_read_head(int fd, char *buf, size_t cap, size_t *len) {
  for (;;) {
    buf[*len] = 0;
    char *e = strstr(buf, "\r\n\r\n");
    if (e) return (size_t)(e - buf) + 4;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 10000) <= 0) return 0;
    ssize_t k = recv(fd, buf + *len, cap - 1 - *len, 0);
    if (k <= 0) return 0;
    *len += (size_t)k;
  }
}

static void *raw_conn(void *arg) {
  int fd = (int)(intptr_t)arg;
  char buf[8192];
  size_t len = 0;
  int nreq = 0;
  for (;;) {
    size_t hl = raw_read_head(fd, buf, sizeof(buf), &len);
    if (!hl) break;
    char path[256] = "";
    sscanf(buf, "%*s %255s", path);
    memmove(buf, buf + hl, len - hl);
    len -= hl;
    nreq++;
    if (!strcmp(path, "/chunked")) {
      raw_send(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5\r\nHello\r\n8;ext=1\r\n, World!\r\n0\r\nX-T: 1\r\n\r\n");
      continue;
    }
    if (!strcmp(path, "/interim")) {
      raw_send(fd, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                   "Link: </a>\r\n\r\nHTTP/1.1 200 OK\r\n"
                   "Content-Length: 2\r\n\r\nok");
      continue;
    }
    if (!strcmp(path, "/once")) {
      if (nreq > 1) break; /* closes under the second request */
      raw_send(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
      continue;
    }
    if (!strcmp(path, "/conn_close")) {
      /* says close but keeps the socket open: the client must not reuse
       * it */
      raw_send(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                   "Connection: close\r\n\r\nok");
      continue;
    }
    if (!strcmp(path, "/http10")) {
      raw_send(fd, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n"
                   "Connection: keep-alive\r\n\r\nok");
      continue;
    }
    if (!strcmp(path, "/bighead")) {
      raw_send(fd, "HTTP/1.1 200 OK\r\nX-Big: ");
      char pad[2048];
      memset(pad, 'a', sizeof(pad) - 1);
      pad[sizeof(pad) - 1] = 0;
      raw_send(fd, pad);
      raw_send(fd, "\r\nContent-Length: 0\r\n\r\n");
      break;
    }
    if (!strcmp(path, "/never")) {
      struct pollfd p = {.fd = fd, .events = POLLIN};
      while (poll(&p, 1, 10000) > 0) {
        if (recv(fd, buf, sizeof(buf), 0) <= 0) break;
      }
      break;
    }
    if (!strcmp(path, "/close"))
      raw_send(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
                   "until the end");
    else if (!strcmp(path, "/malformed"))
      raw_send(fd, "HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok");
    else if (!strcmp(path, "/bare_lf"))
      raw_send(fd, "HTTP/1.1 200 OK\nContent-Length: 2\n\nok");
    else if (!strcmp(path, "/badchunk"))
      raw_send(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "zz\r\nhello\r\n0\r\n\r\n");
    else if (!strcmp(path, "/bigchunk"))
      raw_send(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "100000\r\nabc");
    else if (!strcmp(path, "/bigclose"))
      raw_send(fd, "HTTP/1.1 200 OK\r\n\r\n0123456789012345678901234567890");
    else if (!strcmp(path, "/truncated"))
      raw_send(fd, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    else if (!strcmp(path, "/switch"))
      raw_send(fd, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n"
                   "Connection: upgrade\r\n\r\n");
    else
      raw_send(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    break;
  }
  close(fd);
  return NULL;
}

static void *raw_accept(void *arg) {
  raw_t *r = arg;
  while (!atomic_load(&r->stop)) {
    struct pollfd p = {.fd = r->lfd, .events = POLLIN};
    if (poll(&p, 1, 50) <= 0) continue;
    int fd = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) continue;
    atomic_fetch_add(&r->conns, 1);
    pthread_t th;
    if (pthread_create(&th, NULL, raw_conn, (void *)(intptr_t)fd) == 0)
      pthread_detach(th);
    else
      close(fd);
  }
  return NULL;
}

static void raw_start(raw_t *r) {
  memset(r, 0, sizeof(*r));
  struct sockaddr_in sa;
  r->lfd = tu_listen_loopback(16, &sa);
  r->port = ntohs(sa.sin_port);
  ck_assert_int_eq(pthread_create(&r->th, NULL, raw_accept, r), 0);
}

static void raw_stop(raw_t *r) {
  atomic_store(&r->stop, 1);
  pthread_join(r->th, NULL);
  close(r->lfd);
}

/* ---- the client side ------------------------------------------------------- */

typedef struct fx {
  tr_runtime_t *rt;
  tr_handle_t *h;
} fx_t;

static void fx_start(fx_t *fx) {
  fx->rt = tu_runtime(2, 0, 1);
  ck_assert_int_eq(tr_handle_new(fx->rt, &fx->h), 0);
}

static void fx_stop(fx_t *fx) {
  tr_handle_free(fx->h);
  ck_assert_int_eq(tr_runtime_shutdown(fx->rt, 10000), 0);
  tr_runtime_free(fx->rt);
}

static tr_ref_t client_new(fx_t *fx, tr_http_client_opts_t *o) {
  tr_ref_t c;
  ck_assert_int_eq(tr_http_client_start(fx->rt, o, &c), 0);
  return c;
}

static void client_stop(tr_ref_t c) {
  ck_assert_int_eq(tr_actor_stop(c, 0), 0);
  for (int i = 0; i < 5000 && tr_actor_alive(c) > 0; i++) tu_sleep_ms(1);
}

static tr_http_result_t *call(fx_t *fx, tr_ref_t c, tr_http_fetch_t *f) {
  ck_assert_ptr_nonnull(f);
  void *reply = NULL;
  ck_assert_int_eq(tr_handle_call(fx->h, c, f, 20000, &reply), 0);
  ck_assert_ptr_eq(tr_msg_type(reply), &tr_http_result_t__type);
  return reply;
}

static tr_http_result_t *get(fx_t *fx, tr_ref_t c, const char *method,
                             const char *url) {
  int err = 1;
  tr_http_fetch_t *f = tr_http_fetch_new(method, url, &err);
  ck_assert_msg(f != NULL, "fetch_new %s: %d", url, err);
  ck_assert_int_eq(err, 0);
  return call(fx, c, f);
}

static void url(char *buf, size_t n, const char *scheme, const char *host,
                uint16_t port, const char *path) {
  snprintf(buf, n, "%s://%s:%u%s", scheme, host, (unsigned)port, path);
}

/* ---- tests ------------------------------------------------------------------ */

START_TEST(test_fetch_new_validation) {
  int err = 0;
  static const char *const bad[] = {
      "ftp://example.com/", "http://", "http:///x", "http://host:99999/",
      "http://host:0/", "http://host:/", "http://host:8x/", "http://[::1/",
      "http://[zz]/", "http://a b/", "http://user@host/", "http://ho\rst/",
      "example.com/", "http://ho$t/", "https://[::1]x/"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    err = 0;
    ck_assert_msg(tr_http_fetch_new("GET", bad[i], &err) == NULL, "%s", bad[i]);
    ck_assert_int_eq(err, TR_EINVAL);
  }
  ck_assert_ptr_null(tr_http_fetch_new("GE T", "http://a/", &err));
  ck_assert_int_eq(err, TR_EINVAL);
  ck_assert_ptr_null(tr_http_fetch_new("", "http://a/", &err));
  ck_assert_ptr_null(tr_http_fetch_new(NULL, "http://a/", NULL));
  ck_assert_ptr_null(tr_http_fetch_new("GET", NULL, NULL));

  static const char *const good[] = {
      "http://a", "HTTP://a/", "https://a.b-c.example:8443/x?y=1#frag",
      "http://[::1]:8080/p", "http://127.0.0.1?q", "https://[2001:db8::1]"};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    tr_http_fetch_t *f = tr_http_fetch_new("GET", good[i], &err);
    ck_assert_msg(f != NULL, "%s", good[i]);
    ck_assert_int_eq(err, 0);
    tr_msg_free(f);
  }
  tr_http_fetch_t *f = tr_http_fetch_new("POST", "http://a/", NULL);
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(tr_http_fetch_header(f, "X-A", "b\tc"), 0);
  ck_assert_int_eq(tr_http_fetch_header(f, "X-A", "b\r\nX-B: c"), TR_EINVAL);
  ck_assert_int_eq(tr_http_fetch_header(f, "X-A", "b\n"), TR_EINVAL);
  ck_assert_int_eq(tr_http_fetch_header(f, "X A", "b"), TR_EINVAL);
  ck_assert_int_eq(tr_http_fetch_header(f, "", "b"), TR_EINVAL);
  ck_assert_int_eq(tr_http_fetch_header(f, "Host", "b"), TR_EINVAL);
  ck_assert_int_eq(tr_http_fetch_header(f, "content-length", "1"), TR_EINVAL);
  ck_assert_int_eq(tr_http_fetch_header(f, "Transfer-Encoding", "chunked"),
                   TR_EINVAL);
  ck_assert_int_eq(tr_http_fetch_header(f, "Connection", "close"), TR_EINVAL);
  ck_assert_int_eq(tr_http_fetch_body(f, NULL, 1), TR_EINVAL);
  ck_assert_int_eq(tr_http_fetch_body(f, "x", 1), 0);
  tr_msg_free(f);

  tr_http_client_opts_t o;
  tr_http_client_opts_init(&o);
  o.total_timeout = -5;
  tr_ref_t c;
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  ck_assert_int_eq(tr_http_client_start(rt, &o, &c), TR_EINVAL);
  tr_http_client_opts_init(&o);
  o.user_agent = "a\r\nb";
  ck_assert_int_eq(tr_http_client_start(rt, &o, &c), TR_EINVAL);
  ck_assert_int_eq(tr_http_client_start(NULL, NULL, &c), TR_EINVAL);
  ck_assert_int_eq(tr_runtime_shutdown(rt, 10000), 0);
  tr_runtime_free(rt);
}
END_TEST

START_TEST(test_against_own_server) {
  fx_t fx;
  fx_start(&fx);
  tr_http_server_t *srv = server_start(fx.rt, NULL);
  uint16_t port = tr_http_server_port(srv);
  tr_ref_t c = client_new(&fx, NULL);
  char u[256];

  /* GET, with its fields */
  url(u, sizeof(u), "http", "127.0.0.1", port, "/hello");
  tr_http_result_t *r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->error, 0);
  ck_assert_int_eq(r->status, 200);
  ck_assert_int_eq(r->version, 11);
  ck_assert_uint_eq(r->body_len, 13);
  ck_assert_str_eq((char *)r->body, "Hello, World!");
  ck_assert(!r->reused);
  const tr_http_field_t *xf = tr_http_result_field(r, "x-test");
  ck_assert_ptr_nonnull(xf);
  ck_assert_uint_eq(xf->value.n, 3);
  ck_assert(!memcmp(xf->value.p, "yes", 3));
  ck_assert_ptr_null(tr_http_result_field(r, "x-none"));
  /* the body can be taken */
  uint8_t *body = r->body;
  r->body = NULL;
  tr_msg_free(r);
  free(body);

  /* the second request reuses the connection: the server saw one */
  tr_http_server_stats_t st;
  ck_assert_int_eq(tr_http_server_stats(srv, &st), 0);
  uint64_t conns = st.connections;
  r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->error, 0);
  ck_assert_int_eq(r->status, 200);
  ck_assert(r->reused);
  tr_msg_free(r);
  ck_assert_int_eq(tr_http_server_stats(srv, &st), 0);
  ck_assert_uint_eq(st.connections, conns);
  ck_assert_uint_eq(st.connections, 1);

  /* POST with a body and a field of ours, echoed */
  url(u, sizeof(u), "http", "127.0.0.1", port, "/echo");
  tr_http_fetch_t *f = tr_http_fetch_new("POST", u, NULL);
  ck_assert_ptr_nonnull(f);
  static char payload[200000];
  for (size_t i = 0; i < sizeof(payload); i++) payload[i] = (char)('a' + i % 26);
  ck_assert_int_eq(tr_http_fetch_body(f, payload, 100000), 0);
  ck_assert_int_eq(tr_http_fetch_body(f, payload + 100000, 100000), 0);
  ck_assert_int_eq(tr_http_fetch_header(f, "X-Token", "t0k"), 0);
  r = call(&fx, c, f);
  ck_assert_int_eq(r->error, 0);
  ck_assert_int_eq(r->status, 200);
  ck_assert_uint_eq(r->body_len, sizeof(payload));
  ck_assert(!memcmp(r->body, payload, sizeof(payload)));
  xf = tr_http_result_field(r, "X-Token");
  ck_assert_ptr_nonnull(xf);
  ck_assert(xf->value.n == 3 && !memcmp(xf->value.p, "t0k", 3));
  tr_msg_free(r);

  /* POST with no body: Content-Length 0 */
  r = get(&fx, c, "POST", u);
  ck_assert_int_eq(r->error, 0);
  ck_assert_int_eq(r->status, 200);
  ck_assert_uint_eq(r->body_len, 0);
  ck_assert_ptr_nonnull(r->body);
  tr_msg_free(r);

  /* HEAD: the length is said, no body comes */
  url(u, sizeof(u), "http", "127.0.0.1", port, "/hello");
  r = get(&fx, c, "HEAD", u);
  ck_assert_int_eq(r->error, 0);
  ck_assert_int_eq(r->status, 200);
  ck_assert_uint_eq(r->body_len, 0);
  xf = tr_http_result_field(r, "content-length");
  ck_assert_ptr_nonnull(xf);
  ck_assert(xf->value.n == 2 && !memcmp(xf->value.p, "13", 2));
  tr_msg_free(r);
  /* and the connection is still good after it */
  r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq((char *)r->body, "Hello, World!");
  ck_assert(r->reused);
  tr_msg_free(r);

  /* 404 and 405 are responses, not errors */
  url(u, sizeof(u), "http", "127.0.0.1", port, "/nope");
  r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->error, 0);
  ck_assert_int_eq(r->status, 404);
  tr_msg_free(r);
  url(u, sizeof(u), "http", "127.0.0.1", port, "/hello");
  r = get(&fx, c, "DELETE", u);
  ck_assert_int_eq(r->error, 0);
  ck_assert_int_eq(r->status, 405);
  tr_msg_free(r);
  ck_assert_int_eq(tr_http_server_stats(srv, &st), 0);
  ck_assert_uint_eq(st.connections, 1);

  /* a host name, resolved (localhost may come as ::1 first, where no
   * one listens: the next address is tried) */
  url(u, sizeof(u), "http", "localhost", port, "/hello");
  r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->error, 0);
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq((char *)r->body, "Hello, World!");
  tr_msg_free(r);

  /* fetches sent rather than asked are served and dropped; the client
   * stops with them under way */
  for (int i = 0; i < 4; i++) {
    tr_http_fetch_t *g = tr_http_fetch_new("GET", u, NULL);
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(tr_handle_send(fx.h, c, g), 0);
  }
  client_stop(c);

  /* body_max: a larger body is refused */
  tr_http_client_opts_t o;
  tr_http_client_opts_init(&o);
  o.body_max = 12;
  c = client_new(&fx, &o);
  r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->error, TR_EMSGSIZE);
  ck_assert_int_eq(r->status, 0);
  tr_msg_free(r);
  /* an idle timeout closes a kept-alive connection */
  client_stop(c);
  tr_http_client_opts_init(&o);
  o.idle_timeout = 100;
  c = client_new(&fx, &o);
  r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->status, 200);
  tr_msg_free(r);
  tu_sleep_ms(400);
  r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->status, 200);
  ck_assert(!r->reused);
  tr_msg_free(r);
  client_stop(c);

  tr_http_server_shutdown(srv, 1000);
  fx_stop(&fx);
  tr_http_server_free(srv);
}
END_TEST

START_TEST(test_canned_responses) {
  fx_t fx;
  fx_start(&fx);
  raw_t raw;
  raw_start(&raw);
  tr_http_client_opts_t o;
  tr_http_client_opts_init(&o);
  o.first_byte_timeout = 300;
  o.body_max = 1000;
  tr_ref_t c = client_new(&fx, &o);
  char u[256];
  tr_http_result_t *r;

  url(u, sizeof(u), "http", "127.0.0.1", raw.port, "/chunked");
  r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->error, 0);
  ck_assert_int_eq(r->status, 200);
  ck_assert_uint_eq(r->body_len, 13);
  ck_assert_str_eq((char *)r->body, "Hello, World!");
  tr_msg_free(r);
  /* kept alive after a chunked body */
  r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->error, 0);
  ck_assert_str_eq((char *)r->body, "Hello, World!");
  ck_assert(r->reused);
  tr_msg_free(r);

  url(u, sizeof(u), "http", "127.0.0.1", raw.port, "/close");
  r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->error, 0);
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq((char *)r->body, "until the end");
  tr_msg_free(r);

  /* "Connection: close" is honoured (the socket stays open: a new
   * connection is made) */
  uint64_t n0 = atomic_load(&raw.conns);
  url(u, sizeof(u), "http", "127.0.0.1", raw.port, "/conn_close");
  for (int i = 0; i < 2; i++) {
    r = get(&fx, c, "GET", u);
    ck_assert_int_eq(r->error, 0);
    ck_assert_str_eq((char *)r->body, "ok");
    ck_assert(!r->reused);
    tr_msg_free(r);
  }
  ck_assert_uint_eq(atomic_load(&raw.conns) - n0, 2);
  /* HTTP/1.0 with keep-alive: kept */
  n0 = atomic_load(&raw.conns);
  url(u, sizeof(u), "http", "127.0.0.1", raw.port, "/http10");
  for (int i = 0; i < 2; i++) {
    r = get(&fx, c, "GET", u);
    ck_assert_int_eq(r->error, 0);
    ck_assert_int_eq(r->version, 10);
    ck_assert_int_eq(r->reused, i == 1);
    tr_msg_free(r);
  }
  ck_assert_uint_eq(atomic_load(&raw.conns) - n0, 1);

  url(u, sizeof(u), "http", "127.0.0.1", raw.port, "/interim");
  r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->error, 0);
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq((char *)r->body, "ok");
  ck_assert_ptr_null(tr_http_result_field(r, "link"));
  tr_msg_free(r);

  static const char *const proto[] = {"/malformed", "/bare_lf", "/badchunk",
                                      "/switch"};
  for (size_t i = 0; i < sizeof(proto) / sizeof(proto[0]); i++) {
    url(u, sizeof(u), "http", "127.0.0.1", raw.port, proto[i]);
    r = get(&fx, c, "GET", u);
    ck_assert_msg(r->error == TR_EPROTO, "%s: %d", proto[i], r->error);
    ck_assert_int_eq(r->status, 0);
    tr_msg_free(r);
  }

  url(u, sizeof(u), "http", "127.0.0.1", raw.port, "/bigchunk");
  r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->error, TR_EMSGSIZE);
  tr_msg_free(r);
  /* a close-delimited body over the bound */
  client_stop(c);
  tr_http_client_opts_init(&o);
  o.body_max = 20;
  c = client_new(&fx, &o);
  /* a head over head_max */
  client_stop(c);
  tr_http_client_opts_init(&o);
  o.body_max = 20;
  o.head_max = 1024;
  c = client_new(&fx, &o);
  url(u, sizeof(u), "http", "127.0.0.1", raw.port, "/bighead");
  r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->error, TR_EPROTO);
  tr_msg_free(r);
  url(u, sizeof(u), "http", "127.0.0.1", raw.port, "/bigclose");
  r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->error, TR_EMSGSIZE);
  tr_msg_free(r);
  url(u, sizeof(u), "http", "127.0.0.1", raw.port, "/truncated");
  r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->error, TR_ECONNRESET);
  tr_msg_free(r);
  client_stop(c);

  /* the first-byte timeout */
  tr_http_client_opts_init(&o);
  o.first_byte_timeout = 300;
  c = client_new(&fx, &o);
  url(u, sizeof(u), "http", "127.0.0.1", raw.port, "/never");
  uint64_t t0 = tu_now_ms();
  r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->error, TR_ETIMEDOUT);
  ck_assert_uint_ge(tu_now_ms() - t0, 250);
  tr_msg_free(r);
  client_stop(c);
  /* the total timeout */
  tr_http_client_opts_init(&o);
  o.total_timeout = 300;
  c = client_new(&fx, &o);
  r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->error, TR_ETIMEDOUT);
  tr_msg_free(r);

  /* a kept-alive connection the server closes under the next request:
   * sent again, once, on a fresh connection */
  uint64_t before = atomic_load(&raw.conns);
  url(u, sizeof(u), "http", "127.0.0.1", raw.port, "/once");
  r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->error, 0);
  ck_assert_str_eq((char *)r->body, "first");
  tr_msg_free(r);
  r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->error, 0);
  ck_assert_str_eq((char *)r->body, "first");
  ck_assert(!r->reused);
  tr_msg_free(r);
  ck_assert_uint_eq(atomic_load(&raw.conns) - before, 2);
  /* not for a POST: that one fails */
  r = get(&fx, c, "POST", u);
  ck_assert_int_eq(r->error, TR_ECONNRESET);
  ck_assert_uint_eq(atomic_load(&raw.conns) - before, 2);
  tr_msg_free(r);

  /* a request under way when the client stops is answered */
  url(u, sizeof(u), "http", "127.0.0.1", raw.port, "/never");
  tr_http_fetch_t *f = tr_http_fetch_new("GET", u, NULL);
  ck_assert_int_eq(tr_handle_send(fx.h, c, f), 0);
  client_stop(c);

  /* a refused connection */
  struct sockaddr_in sa;
  int l = tu_listen_loopback(1, &sa);
  close(l);
  c = client_new(&fx, NULL);
  url(u, sizeof(u), "http", "127.0.0.1", ntohs(sa.sin_port), "/");
  r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->error, -ECONNREFUSED);
  ck_assert_int_eq(r->status, 0);
  tr_msg_free(r);
  client_stop(c);

  fx_stop(&fx);
  raw_stop(&raw);
}
END_TEST

/* ---- HTTPS -------------------------------------------------------------------- */

static char tmpdir[256];

/* Where temporary directories go: $TMPDIR, else the system's. */
static const char *tmp_base(void) {
  const char *t = getenv("TMPDIR");
  return t && *t && strlen(t) < 200 ? t : P_tmpdir;
}

static int make_certs(void) {
  snprintf(tmpdir, sizeof(tmpdir), "%s/troupe-hc.XXXXXX", tmp_base());
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
  char cmd[2048];
  snprintf(cmd, sizeof(cmd),
           "(cd %s && "
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
           "-nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=troupe test "
           "CA' && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
           "-nodes -keyout server.key -out server.csr -subj /CN=localhost && "
           "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' >ext.cnf && "
           "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
           "-CAcreateserial -out server.pem -days 2 -extfile ext.cnf)",
           tmpdir);
  snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd), " >/dev/null 2>&1");
  return system(cmd) == 0;
}

static void rm_tmp(void) {
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
  ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_https) {
  if (system("openssl version >/dev/null 2>&1") != 0) return; /* no CLI */
  ck_assert(make_certs());
  char cert[512], key[512], ca[512];
  snprintf(cert, sizeof(cert), "%s/server.pem", tmpdir);
  snprintf(key, sizeof(key), "%s/server.key", tmpdir);
  snprintf(ca, sizeof(ca), "%s/ca.pem", tmpdir);
  tr_tls_server_opts_t so;
  tr_tls_server_opts_init(&so);
  so.cert_file = cert;
  so.key_file = key;
  tr_tls_config_t *scfg = NULL;
  ck_assert_int_eq(tr_tls_server_config_new(&so, &scfg, NULL, 0), 0);
  tr_tls_client_opts_t co;
  tr_tls_client_opts_init(&co);
  co.ca_file = ca;
  tr_tls_config_t *ccfg = NULL;
  ck_assert_int_eq(tr_tls_client_config_new(&co, &ccfg, NULL, 0), 0);

  fx_t fx;
  fx_start(&fx);
  tr_http_server_t *srv = server_start(fx.rt, scfg);
  uint16_t port = tr_http_server_port(srv);
  tr_http_client_opts_t o;
  tr_http_client_opts_init(&o);
  o.tls = ccfg;
  tr_ref_t c = client_new(&fx, &o);
  tr_tls_config_free(ccfg); /* the client holds its own reference */
  char u[256];

  url(u, sizeof(u), "https", "localhost", port, "/hello");
  tr_http_result_t *r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->error, 0);
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq((char *)r->body, "Hello, World!");
  tr_msg_free(r);
  r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->error, 0);
  ck_assert(r->reused);
  tr_msg_free(r);
  /* an IP literal: checked against the certificate's IP entry */
  url(u, sizeof(u), "https", "127.0.0.1", port, "/echo");
  tr_http_fetch_t *f = tr_http_fetch_new("POST", u, NULL);
  static char big[300000];
  memset(big, 'z', sizeof(big));
  ck_assert_int_eq(tr_http_fetch_body(f, big, sizeof(big)), 0);
  r = call(&fx, c, f);
  ck_assert_int_eq(r->error, 0);
  ck_assert_int_eq(r->status, 200);
  ck_assert_uint_eq(r->body_len, sizeof(big));
  ck_assert(!memcmp(r->body, big, sizeof(big)));
  tr_msg_free(r);
  /* plain http to the TLS port fails, as a protocol error or a reset */
  url(u, sizeof(u), "http", "127.0.0.1", port, "/hello");
  r = get(&fx, c, "GET", u);
  ck_assert_int_lt(r->error, 0);
  tr_msg_free(r);
  client_stop(c);

  /* a client that does not trust the CA: the system store, by default */
  c = client_new(&fx, NULL);
  url(u, sizeof(u), "https", "localhost", port, "/hello");
  r = get(&fx, c, "GET", u);
  ck_assert_int_eq(r->error, TR_ECERT);
  ck_assert_int_eq(r->status, 0);
  tr_msg_free(r);
  client_stop(c);

  tr_http_server_shutdown(srv, 1000);
  fx_stop(&fx);
  tr_http_server_free(srv);
  tr_tls_config_free(scfg);
  rm_tmp();
}
END_TEST

/* ---- python3 -m http.server ---------------------------------------------------- */

START_TEST(test_python_http_server) {
  if (access("/usr/bin/python3", X_OK) != 0) return; /* not installed */
  char dir[256];
  snprintf(dir, sizeof(dir), "%s/troupe-hc-py.XXXXXX", tmp_base());
  ck_assert_ptr_nonnull(mkdtemp(dir));
  static unsigned char data[150000];
  srand(42);
  for (size_t i = 0; i < sizeof(data); i++) data[i] = (unsigned char)rand();
  char path[512];
  snprintf(path, sizeof(path), "%s/file.bin", dir);
  FILE *fp = fopen(path, "wb");
  ck_assert_ptr_nonnull(fp);
  ck_assert_uint_eq(fwrite(data, 1, sizeof(data), fp), sizeof(data));
  fclose(fp);

  struct sockaddr_in sa;
  int l = tu_listen_loopback(1, &sa);
  uint16_t port = ntohs(sa.sin_port);
  close(l);
  char ps[16];
  snprintf(ps, sizeof(ps), "%u", (unsigned)port);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    int nul = open("/dev/null", O_RDWR);
    dup2(nul, 1);
    dup2(nul, 2);
    execl("/usr/bin/python3", "python3", "-m", "http.server", ps, "--bind",
          "127.0.0.1", "--directory", dir, (char *)NULL);
    _exit(127);
  }
  /* wait until it listens */
  int up = 0;
  for (int i = 0; i < 200 && !up; i++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    up = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    if (!up) tu_sleep_ms(50);
  }
  fx_t fx;
  fx_start(&fx);
  tr_ref_t c = client_new(&fx, NULL);
  char u[256];
  url(u, sizeof(u), "http", "127.0.0.1", port, "/file.bin");
  tr_http_result_t *r = up ? get(&fx, c, "GET", u) : NULL;
  int ok = r && r->error == 0 && r->status == 200 &&
           r->body_len == sizeof(data) && !memcmp(r->body, data, sizeof(data));
  int err = r ? r->error : 1, status = r ? r->status : 0;
  tr_msg_free(r);
  r = up ? get(&fx, c, "GET", "http://127.0.0.1:1/") : NULL; /* refused */
  tr_msg_free(r);
  url(u, sizeof(u), "http", "127.0.0.1", port, "/missing");
  r = up ? get(&fx, c, "GET", u) : NULL;
  int st404 = r ? r->status : 0;
  tr_msg_free(r);
  client_stop(c);
  fx_stop(&fx);
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  unlink(path);
  rmdir(dir);
  ck_assert_msg(up, "python3 http.server did not start");
  ck_assert_msg(ok, "fetch from http.server: error %d status %d", err, status);
  ck_assert_int_eq(st404, 404);
}
END_TEST

/* ---- from an actor, and IPv6 ------------------------------------------------- */

typedef struct asker_arg {
  tr_ref_t client;
  char url[128];
} asker_arg_t;

static _Atomic int actor_status, actor_error = 1, actor_done;

static int asker_result(tr_ctx_t *ctx, void *state, int status, void *reply,
                        void *cookie) {
  (void)ctx;
  (void)state;
  (void)cookie;
  if (status == 0) {
    tr_http_result_t *r = reply;
    atomic_store(&actor_status, r->status);
    atomic_store(&actor_error, r->error);
  } else {
    atomic_store(&actor_error, status);
  }
  atomic_store(&actor_done, 1);
  return 0;
}

static int asker_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)state;
  asker_arg_t *a = arg;
  tr_http_fetch_t *f = tr_http_fetch_new("GET", a->url, NULL);
  if (!f) return TR_ENOMEM;
  return tr_ask_timeout(ctx, a->client, f, 10000, asker_result, NULL);
}

static const tr_behavior_t asker_behavior = {
    .name = "asker", .state_size = 8, .init = asker_init};

START_TEST(test_actor_and_ipv6) {
  fx_t fx;
  fx_start(&fx);
  tr_http_server_t *srv = server_start(fx.rt, NULL);
  tr_ref_t c = client_new(&fx, NULL);
  asker_arg_t a = {.client = c};
  url(a.url, sizeof(a.url), "http", "127.0.0.1", tr_http_server_port(srv),
      "/hello");
  tr_ref_t asker;
  ck_assert_int_eq(tr_spawn(fx.rt, &asker_behavior, &a, &asker), 0);
  for (int i = 0; i < 10000 && !atomic_load(&actor_done); i++) tu_sleep_ms(1);
  ck_assert_int_eq(atomic_load(&actor_done), 1);
  ck_assert_int_eq(atomic_load(&actor_error), 0);
  ck_assert_int_eq(atomic_load(&actor_status), 200);
  tr_actor_stop(asker, 0);
  tr_http_server_shutdown(srv, 1000);

  /* IPv6 loopback, when the system has it */
  tr_http_server_opts_t o;
  tr_http_server_opts_init(&o);
  o.routes = routes;
  o.nroutes = sizeof(routes) / sizeof(routes[0]);
  o.host = "::1";
  tr_http_server_t *srv6 = NULL;
  if (tr_http_server_start(fx.rt, &o, &srv6) == 0) {
    char u[128];
    url(u, sizeof(u), "http", "[::1]", tr_http_server_port(srv6), "/hello");
    tr_http_result_t *r = get(&fx, c, "GET", u);
    ck_assert_int_eq(r->error, 0);
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq((char *)r->body, "Hello, World!");
    tr_msg_free(r);
    tr_http_server_shutdown(srv6, 1000);
  }
  client_stop(c);
  fx_stop(&fx);
  tr_http_server_free(srv);
  if (srv6) tr_http_server_free(srv6);
}
END_TEST

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  Suite *s = suite_create("http_client");
  TCase *tc = tcase_create("http_client");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_fetch_new_validation);
  tcase_add_test(tc, test_against_own_server);
  tcase_add_test(tc, test_canned_responses);
  tcase_add_test(tc, test_https);
  tcase_add_test(tc, test_python_http_server);
  tcase_add_test(tc, test_actor_and_ipv6);
  suite_add_tcase(s, tc);
  return tu_run(s);
}
