/* SPDX-License-Identifier: MIT */
/*
 * A static file server with an echo route, made of troupe's HTTP actors.
 * Explained in doc/http.md.
 *
 *   httpd --port N [--host ADDR] --root DIR [--echo /echo] [--ws /ws]
 *         [--tls-cert CERT.pem --tls-key KEY.pem] [--workers N]
 *
 * Serves the files under DIR (GET and HEAD; a directory serves its
 * index.html; 404 for anything missing; no path leaves DIR, not even
 * through a symbolic link), answers a POST to the echo path with its
 * body, echoes every WebSocket message sent to the ws path, and prints
 * "listening on HOST:PORT" once ready. With a certificate and key it
 * speaks HTTPS (and wss) only: TLS 1.2 and 1.3, ALPN http/1.1 or http/1.0. Stops on SIGINT or SIGTERM,
 * finishing the requests under way.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <troupe.h>
#include <troupe/http_server.h>

typedef struct site {
  char root[PATH_MAX]; /* canonical, no trailing slash */
  size_t rootlen;
} site_t;

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes a URL path into out (percent escapes), refusing NUL, "." and
 * ".." segments and backslashes. Returns 0 or -1. */
static int decode_path(const tr_http_str_t *p, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < p->n; i++) {
    char ch = p->p[i];
    if (ch == '%') {
      if (i + 2 >= p->n) return -1;
      int h = hexval(p->p[i + 1]), l = hexval(p->p[i + 2]);
      if (h < 0 || l < 0) return -1;
      ch = (char)(h * 16 + l);
      i += 2;
    }
    if (ch == '\0' || ch == '\\') return -1;
    if (o + 1 >= cap) return -1;
    out[o++] = ch;
  }
  out[o] = '\0';
  if (out[0] != '/') return -1;
  /* no "." or ".." segment anywhere */
  for (const char *s = out; *s;) {
    const char *e = strchr(s + 1, '/');
    size_t n = e ? (size_t)(e - s - 1) : strlen(s + 1);
    if ((n == 1 && s[1] == '.') || (n == 2 && s[1] == '.' && s[2] == '.'))
      return -1;
    if (!e) break;
    s = e;
  }
  return 0;
}

static const char *mime(const char *path) {
  static const char *const map[][2] = {
      {".html", "text/html; charset=utf-8"}, {".htm", "text/html"},
      {".txt", "text/plain; charset=utf-8"}, {".css", "text/css"},
      {".js", "text/javascript"},            {".json", "application/json"},
      {".png", "image/png"},                 {".jpg", "image/jpeg"},
      {".svg", "image/svg+xml"},             {".wasm", "application/wasm"},
  };
  const char *dot = strrchr(path, '.');
  if (dot && !strchr(dot, '/'))
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
      if (!strcasecmp(dot, map[i][0])) return map[i][1];
  return "application/octet-stream";
}

static int not_found(tr_http_response_t *resp) {
  resp->status = 404;
  tr_http_response_header(resp, "Content-Type", "text/plain");
  return tr_http_response_body(resp, "404 Not Found\n", 14);
}

/* GET and HEAD of a file under the root (the connection actor runs it:
 * the fast path). */
static int serve_file(tr_ctx_t *ctx, const tr_http_req_t *req,
                      tr_http_response_t *resp, void *arg) {
  site_t *site = arg;
  (void)ctx;
  char rel[PATH_MAX], full[PATH_MAX * 2], real[PATH_MAX];
  if (decode_path(&req->path, rel, sizeof(rel))) {
    resp->status = 400;
    return tr_http_response_body(resp, "400 Bad Request\n", 16);
  }
  snprintf(full, sizeof(full), "%s%s", site->root, rel);
  struct stat st;
  if (stat(full, &st) == 0 && S_ISDIR(st.st_mode)) {
    size_t n = strlen(full);
    snprintf(full + n, sizeof(full) - n, "%sindex.html",
             full[n - 1] == '/' ? "" : "/");
  }
  /* symbolic links may not lead out of the root */
  if (!realpath(full, real)) return not_found(resp);
  if (strncmp(real, site->root, site->rootlen) != 0 ||
      (real[site->rootlen] != '/' && real[site->rootlen] != '\0'))
    return not_found(resp);
  if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) return not_found(resp);
  int rc = tr_http_response_file(resp, real, 0, UINT64_MAX);
  if (rc == -EACCES) {
    resp->status = 403;
    return tr_http_response_body(resp, "403 Forbidden\n", 14);
  }
  if (rc) return not_found(resp);
  return tr_http_response_header(resp, "Content-Type", mime(real));
}

/* POST to the echo path: the body comes back. */
static int echo(tr_ctx_t *ctx, const tr_http_req_t *req,
                tr_http_response_t *resp, void *arg) {
  (void)ctx;
  (void)arg;
  tr_http_response_header(resp, "Content-Type", "application/octet-stream");
  return tr_http_response_body(resp, req->body.p, req->body.n);
}

/* The WebSocket echo: one actor per connection sends each message back. */
static int ws_echo(tr_ctx_t *ctx, void *state, void *msg) {
  tr_ws_message_t *m = msg;
  (void)state;
  tr_ws_send(ctx, m->conn, m->opcode, m->data, m->len);
  return 0; /* a failed send means the connection is going: closed follows */
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

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

static void usage(void) {
  fprintf(stderr, "usage: httpd --port N [--host ADDR] --root DIR "
                  "[--echo PATH] [--ws PATH] [--tls-cert F --tls-key F] "
                  "[--workers N]\n");
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1", *root = NULL, *echo_path = NULL;
  const char *ws_path = NULL, *cert = NULL, *key = NULL;
  long port = -1, workers = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--port") && v) port = strtol(v, NULL, 10), i++;
    else if (!strcmp(a, "--host") && v) host = v, i++;
    else if (!strcmp(a, "--root") && v) root = v, i++;
    else if (!strcmp(a, "--echo") && v) echo_path = v, i++;
    else if (!strcmp(a, "--ws") && v) ws_path = v, i++;
    else if (!strcmp(a, "--tls-cert") && v) cert = v, i++;
    else if (!strcmp(a, "--tls-key") && v) key = v, i++;
    else if (!strcmp(a, "--workers") && v) workers = strtol(v, NULL, 10), i++;
    else {
      usage();
      return 2;
    }
  }
  if (port < 0 || port > 65535 || !root || workers < 0 ||
      (echo_path && echo_path[0] != '/') || (ws_path && ws_path[0] != '/') ||
      !cert != !key) {
    usage();
    return 2;
  }
  static site_t site;
  if (!realpath(root, site.root)) {
    fprintf(stderr, "httpd: %s: %s\n", root, strerror(errno));
    return 1;
  }
  site.rootlen = strlen(site.root);
  if (site.rootlen == 1) site.rootlen = 0; /* "/" */

  tr_runtime_config_t cfg;
  tr_runtime_config_init(&cfg);
  cfg.workers = (unsigned)workers;
  tr_runtime_t *rt;
  int rc = tr_runtime_new(&cfg, &rt);
  if (!rc) rc = tr_runtime_start(rt);
  if (rc) {
    fprintf(stderr, "httpd: runtime: %s\n", tr_strerror(rc));
    return 1;
  }
  tr_http_route_t routes[3];
  memset(routes, 0, sizeof(routes));
  size_t n = 0;
  if (echo_path) {
    routes[n].method = "POST";
    routes[n].path = echo_path;
    routes[n].fn = echo;
    n++;
  }
  if (ws_path) {
    routes[n].method = "GET";
    routes[n].path = ws_path;
    routes[n].ws = &ws_behavior;
    n++;
  }
  routes[n].method = "GET";
  routes[n].path = "/";
  routes[n].prefix = 1;
  routes[n].fn = serve_file;
  routes[n].arg = &site;
  n++;

  tr_tls_config_t *tls = NULL;
  if (cert) {
    static const char *const alpn[] = {"http/1.1", "http/1.0"};
    tr_tls_server_opts_t to;
    tr_tls_server_opts_init(&to);
    to.cert_file = cert;
    to.key_file = key;
    to.alpn = alpn;
    to.alpn_count = 2;
    char err[256];
    rc = tr_tls_server_config_new(&to, &tls, err, sizeof(err));
    if (rc) {
      fprintf(stderr, "httpd: TLS: %s (%s)\n", err, tr_strerror(rc));
      return 1;
    }
  }
  tr_http_server_opts_t o;
  tr_http_server_opts_init(&o);
  o.tls = tls;
  o.host = host;
  o.port = (uint16_t)port;
  o.routes = routes;
  o.nroutes = n;
  o.body_max = 64u << 20;
  tr_http_server_t *srv;
  rc = tr_http_server_start(rt, &o, &srv);
  if (rc) {
    fprintf(stderr, "httpd: listen on %s:%ld: %s\n", host, port,
            tr_strerror(rc));
    tr_runtime_shutdown(rt, 1000);
    tr_runtime_free(rt);
    return 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  printf("listening on %s:%u\n", host, tr_http_server_port(srv));
  fflush(stdout);
  while (!stop_flag) pause();

  tr_http_server_shutdown(srv, 5000);
  tr_http_server_stats_t st;
  tr_http_server_stats(srv, &st);
  tr_runtime_shutdown(rt, 6000);
  tr_http_server_free(srv);
  tr_tls_config_free(tls);
  tr_runtime_free(rt);
  fprintf(stderr, "httpd: %llu connections, %llu requests, %llu refused\n",
          (unsigned long long)st.connections,
          (unsigned long long)st.requests, (unsigned long long)st.errors);
  return 0;
}
