/* SPDX-License-Identifier: MIT */
/*
 * The HTTP client from outside the runtime: start a client actor, ask it
 * with a tr_http_fetch_t through a blocking handle, print the answer.
 * Explained in doc/http-client.md.
 *
 *   fetch URL [URL...]     GET each URL (http:// or https://, verified
 *                          against the system's CA store) on one client,
 *                          so a second URL on the same host reuses the
 *                          connection; prints the status and the body
 *   fetch                  self-test (what `make check` runs): serve a
 *                          page on a free loopback port with the HTTP
 *                          server, fetch it three times, check the body
 *                          and that the connection was reused
 */
#include <stdio.h>
#include <string.h>

#include <troupe.h>
#include <troupe/http_client.h>
#include <troupe/http_server.h>

/* One GET through the client; the result is the caller's (or NULL). */
static tr_http_result_t *get(tr_handle_t *h, tr_ref_t client, const char *url) {
  int err = 0;
  tr_http_fetch_t *f = tr_http_fetch_new("GET", url, &err);
  if (!f) {
    fprintf(stderr, "fetch: %s: %s\n", url, tr_strerror(err));
    return NULL;
  }
  void *reply = NULL;
  int rc = tr_handle_call(h, client, f, 70000, &reply); /* f is consumed */
  if (rc) {
    fprintf(stderr, "fetch: %s: %s\n", url, tr_strerror(rc));
    return NULL;
  }
  return reply;
}

static int page(tr_ctx_t *ctx, const tr_http_req_t *req,
                tr_http_response_t *resp, void *arg) {
  (void)ctx;
  (void)req;
  (void)arg;
  return tr_http_response_body(resp, "fetched\n", 8);
}

int main(int argc, char **argv) {
  tr_runtime_t *rt;
  if (tr_runtime_new(NULL, &rt) || tr_runtime_start(rt)) return 1;
  tr_ref_t client;
  tr_handle_t *h;
  if (tr_http_client_start(rt, NULL, &client) || tr_handle_new(rt, &h))
    return 1;
  int status = 0;
  tr_http_server_t *srv = NULL;
  if (argc > 1) {
    for (int i = 1; i < argc; i++) {
      tr_http_result_t *r = get(h, client, argv[i]);
      if (!r) {
        status = 1;
        continue;
      }
      if (r->error) {
        fprintf(stderr, "fetch: %s: %s\n", argv[i], tr_strerror(r->error));
        status = 1;
      } else {
        printf("%s: %d%s\n", argv[i], r->status, r->reused ? " (reused)" : "");
        fwrite(r->body, 1, r->body_len, stdout);
      }
      tr_msg_free(r);
    }
  } else {
    tr_http_route_t routes[] = {{.method = "GET", .path = "/", .fn = page}};
    tr_http_server_opts_t o;
    tr_http_server_opts_init(&o);
    o.routes = routes;
    o.nroutes = 1;
    if (tr_http_server_start(rt, &o, &srv)) return 1;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/",
             tr_http_server_port(srv));
    int reused = 0;
    for (int i = 0; i < 3; i++) {
      tr_http_result_t *r = get(h, client, url);
      if (!r || r->error || r->status != 200 || r->body_len != 8 ||
          memcmp(r->body, "fetched\n", 8))
        status = 1;
      if (r && r->reused) reused++;
      tr_msg_free(r);
    }
    if (reused != 2) status = 1;
    printf("fetch self-test: %s (3 answers, %d on a reused connection)\n",
           status ? "FAILED" : "ok", reused);
    tr_http_server_shutdown(srv, 1000);
  }
  tr_handle_free(h);
  tr_actor_stop(client, 0);
  tr_runtime_shutdown(rt, 5000);
  tr_http_server_free(srv);
  tr_runtime_free(rt);
  return status;
}
