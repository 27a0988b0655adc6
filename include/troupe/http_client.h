/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/1.1 client: an actor that fetches URLs (http:// and https://)
 * for whoever asks it. A request is a message (tr_http_fetch_t) asked of
 * the client actor (tr_ask or tr_ask_timeout from an actor,
 * tr_handle_call from another thread); the reply is a tr_http_result_t
 * with the status, the header fields and the whole body, or with an
 * error code. Every ask is answered.
 *
 * The client owns its TCP connections, resolves host names
 * (tr_resolve), speaks TLS for https (SNI and certificate verification
 * through <troupe/tls.h>), keeps idle connections alive per host and
 * port and reuses them, one request at a time per connection, and
 * bounds each request with timeouts and a body limit. See
 * doc/http-client.md.
 */
#ifndef TROUPE_HTTP_CLIENT_H
#define TROUPE_HTTP_CLIENT_H

#include <troupe/http.h>
#include <troupe/net.h>
#include <troupe/tls.h>

TR_BEGIN_DECLS

/* Options of a client. Growable: fill it with tr_http_client_opts_init,
 * then set what you need; every 0 takes the default. */
typedef struct tr_http_client_opts {
  size_t size;              /* set by tr_http_client_opts_init */
  tr_tls_config_t *tls;     /* a client configuration for https (the
                               client takes a reference); NULL: one made
                               at the first https request, verifying
                               against the system's trust store */
  tr_duration_t connect_timeout;    /* TCP connect, per address: 0 = 10 s */
  tr_duration_t first_byte_timeout; /* from the request written to the
                                       first byte of the response:
                                       0 = 30 s; TR_FOREVER: none */
  tr_duration_t total_timeout;      /* a whole request, from its arrival
                                       to the last byte: 0 = 60 s;
                                       TR_FOREVER: none */
  unsigned idle_max;        /* idle keep-alive connections kept per
                               host, port and scheme: 0 = 4 */
  tr_duration_t idle_timeout; /* an idle connection closes after: 0 = 30 s */
  uint64_t body_max;        /* a response's body: 0 = 8 MiB; larger:
                               TR_EMSGSIZE */
  size_t head_max;          /* a response's head: 0 = 64 KiB */
  unsigned fields_max;      /* a response's header fields: 0 = 100
                               (at most 65536) */
  const char *user_agent;   /* the User-Agent value; NULL: "troupe" */
} tr_http_client_opts_t;

static inline void tr_http_client_opts_init(tr_http_client_opts_t *o) {
  TR_CONFIG_SIZE_INIT(o);
}

/* A request: make it with tr_http_fetch_new, add fields and a body, and
 * ask the client actor with it (the ask consumes it). The fields are
 * internal. */
TR_IO_MESSAGE(tr_http_fetch_t, char *method_; char *host_; char *target_;
              uint16_t port_; int tls_; char *fields_; size_t fields_len_;
              size_t fields_cap_; uint8_t *body_; size_t body_len_;
              size_t body_cap_; int retried_;)

/* The answer to a tr_http_fetch_t. error is 0 for a response (whatever
 * its status: a 404 is a response) or a negative code:
 *   TR_ETIMEDOUT    a timeout of the options passed;
 *   -ECONNREFUSED   (and the other network errors: -ECONNRESET, ...)
 *                   connecting or the connection failed; TR_ECONNRESET
 *                   also for a connection closed before the response
 *                   was whole;
 *   TR_ENOENT       the host name does not resolve (TR_EAGAIN: a
 *                   temporary resolver failure);
 *   TR_ECERT        the server's certificate was refused;
 *   TR_ETLS         another TLS failure;
 *   TR_EPROTO       a malformed response (the strict parser of
 *                   <troupe/http.h> refused it);
 *   TR_EMSGSIZE     the body passed body_max (the head: head_max or
 *                   fields_max, reported as TR_EPROTO);
 *   TR_EINVAL       a fetch the client cannot send (no https
 *                   configuration could be made);
 *   TR_ECANCELED    the client stopped with the request under way;
 *   TR_ENOMEM.
 * With an error, status is 0 and there are no fields and no body.
 * fields (nfields, views into the message's own memory, valid while the
 * message is) are the response's header fields in order; body (body_len
 * bytes, malloc'ed, NUL after the last byte, de-chunked) belongs to the
 * message unless the receiver takes it by setting body to NULL (then
 * free() it). reused is 1 when a kept-alive connection served the
 * request, version 10 or 11. */
TR_IO_MESSAGE(tr_http_result_t, int status; int error; int version;
              const tr_http_field_t *fields; unsigned nfields; uint8_t *body;
              size_t body_len; unsigned reused : 1; void *mem_;)

/* Makes a request: method (a token: "GET", "POST", ...) and url
 * ("http://host[:port][/path][?query]" or "https://...", the scheme
 * case-insensitive; host a name, an IPv4 address or an IPv6 address in
 * brackets; no user info, the fragment ("#...") dropped; an empty path is
 * "/"). Returns the message, or NULL with *err (when err is not NULL)
 * set to TR_EINVAL (a NULL or malformed argument, another scheme, a bad
 * port, a host over 253 bytes, a control character or space in the URL)
 * or TR_ENOMEM. Any thread. */
TR_EXTERN tr_http_fetch_t *tr_http_fetch_new(const char *method,
                                             const char *url, int *err);

/* Adds a header field to the request. Returns 0, TR_EINVAL (a NULL
 * argument, a name that is not a token, a value with CR, LF or another
 * control character but HTAB, or one of the fields the client sets:
 * Host, Content-Length, Transfer-Encoding, Connection), TR_ENOMEM. */
TR_EXTERN int tr_http_fetch_header(tr_http_fetch_t *f, const char *name,
                                   const char *value);

/* Appends n bytes (copied) to the request's body, sent with a
 * Content-Length. Returns 0, TR_EINVAL, TR_ENOMEM. */
TR_EXTERN int tr_http_fetch_body(tr_http_fetch_t *f, const void *data,
                                 size_t n);

/* The first header field of a result named name (case-insensitive), or
 * NULL. */
TR_EXTERN const tr_http_field_t *tr_http_result_field(
    const tr_http_result_t *r, const char *name);

/* Spawns a client actor (o may be NULL: the defaults). Stop it with
 * tr_actor_stop: requests under way are answered with TR_ECANCELED and
 * its connections close. Returns 0 and *client, TR_EINVAL (a NULL rt or
 * client; a bad option: its size, a negative duration other than
 * TR_FOREVER, a user_agent with a control character), TR_ENOMEM, or
 * the codes of tr_spawn. Any thread. */
TR_EXTERN int tr_http_client_start(tr_runtime_t *rt,
                                   const tr_http_client_opts_t *o,
                                   tr_ref_t *client);

TR_END_DECLS

#endif
