/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/1.1 client (<troupe/http_client.h>): one actor owns every
 * connection it opens and serves each request on one of them.
 *
 * A request arrives as an ask. The actor keeps the message (tr_ctx_take)
 * and answers it with tr_reply_to once the response is whole or the
 * request has failed. Each request gets a connection: an idle kept-alive
 * one to the same scheme, host and port if there is one, else a new one
 * (a name is resolved first, on the blocking pool; its addresses are
 * tried in order). A connection carries one request at a time, with no
 * pipelining. The response head is parsed in the read buffer; its fields
 * are copied into the result at once, so the buffer may then move. The
 * body is read by length, chunked, or until the close, and bounded by
 * body_max.
 *
 * A reused connection can turn out closed by the server (it timed out
 * its idle keep-alive as the request went out). If that happens before
 * the first byte of the response and the method is idempotent, the
 * request goes again, once, on a fresh connection.
 *
 * Connections are a linked list, searched linearly: a client holds a
 * handful per host, so lookups by id or cookie stay cheap. One timer per
 * connection serves every timeout (connect is bounded by tr_tcp_connect
 * itself): the connection keeps a deadline and re-arms the timer when it
 * fires early, as the server's connections do.
 */
#include "config.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <troupe.h>
#include <troupe/http_client.h>

#include "internal.h"
#include "proto.h"
#include "stream.h"
#include "ws_conn.h"

#define OUT_PIECE 65536
#define DEFAULT_CONNECT_TIMEOUT 10000
#define DEFAULT_FIRST_BYTE_TIMEOUT 30000
#define DEFAULT_TOTAL_TIMEOUT 60000
#define DEFAULT_IDLE_MAX 4u
#define DEFAULT_IDLE_TIMEOUT 30000
#define DEFAULT_BODY_MAX ((uint64_t)8 << 20)
#define DEFAULT_HEAD_MAX ((size_t)65536)
#define DEFAULT_FIELDS_MAX 100u
#define HOST_MAX 253
#define FIELDS_CAP 65536u

/* ---- Messages ------------------------------------------------------------- */

static void fetch_dtor(void *msg) {
  tr_http_fetch_t *f = msg;
  free(f->method_);
  free(f->host_);
  free(f->target_);
  free(f->fields_);
  free(f->body_);
}

TR_MESSAGE_DEFINE(tr_http_fetch_t, .dtor = fetch_dtor);

static void result_dtor(void *msg) {
  tr_http_result_t *r = msg;
  free(r->body);
  free(r->mem_);
}

TR_MESSAGE_DEFINE(tr_http_result_t, .dtor = result_dtor);





/* Splits url into host, port, target and scheme. 0 or TR_EINVAL. */
int tr__http_url_parse(const char *url, char **host, uint16_t *port,
                       char **target, int *tls) {
  const char *p;
  if (!strncasecmp(url, "http://", 7)) {
    *tls = 0;
    *port = 80;
    p = url + 7;
  } else if (!strncasecmp(url, "https://", 8)) {
    *tls = 1;
    *port = 443;
    p = url + 8;
  } else {
    return TR_EINVAL;
  }
  for (const char *q = url; *q; q++) {
    unsigned char c = (unsigned char)*q;
    if (c <= 0x20 || c == 0x7f) return TR_EINVAL;
  }
  size_t auth = strcspn(p, "/?#");
  const char *hs = p, *he;
  const char *rest = p + auth;
  if (memchr(p, '@', auth)) return TR_EINVAL; /* no user info */
  const char *colon = NULL;
  if (*hs == '[') {
    const char *rb = memchr(hs, ']', auth);
    if (!rb) return TR_EINVAL;
    he = rb;
    hs++;
    if (rb + 1 < rest) {
      if (rb[1] != ':') return TR_EINVAL;
      colon = rb + 1;
    }
  } else {
    colon = memchr(hs, ':', auth);
    he = colon ? colon : rest;
  }
  size_t hl = (size_t)(he - hs);
  if (!hl || hl > HOST_MAX) return TR_EINVAL;
  if (colon) {
    const char *ps = colon + 1;
    if (ps == rest) return TR_EINVAL;
    unsigned long v = 0;
    for (const char *d = ps; d < rest; d++) {
      if (*d < '0' || *d > '9') return TR_EINVAL;
      v = v * 10 + (unsigned long)(*d - '0');
      if (v > 65535) return TR_EINVAL;
    }
    if (!v) return TR_EINVAL;
    *port = (uint16_t)v;
  }
  char *h = malloc(hl + 1);
  if (!h) return TR_ENOMEM;
  memcpy(h, hs, hl);
  h[hl] = 0;
  if (p[0] == '[') {
    unsigned char buf[16];
    if (inet_pton(AF_INET6, h, buf) != 1) {
      free(h);
      return TR_EINVAL;
    }
  } else {
    for (size_t i = 0; i < hl; i++) {
      unsigned char c = (unsigned char)h[i];
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_')) {
        free(h);
        return TR_EINVAL;
      }
    }
  }
  size_t tl = strcspn(rest, "#");
  char *t = malloc(tl + 2);
  if (!t) {
    free(h);
    return TR_ENOMEM;
  }
  if (!tl || rest[0] == '?') {
    t[0] = '/';
    memcpy(t + 1, rest, tl);
    t[tl + 1] = 0;
  } else {
    memcpy(t, rest, tl);
    t[tl] = 0;
  }
  *host = h;
  *target = t;
  return 0;
}

tr_http_fetch_t *tr_http_fetch_new(const char *method, const char *url,
                                   int *err) {
  int e = TR_EINVAL;
  tr_http_fetch_t *f = NULL;
  if (!method || !url || !tr__is_token(method)) goto fail;
  f = tr_msg_new(&tr_http_fetch_t__type);
  if (!f) {
    e = TR_ENOMEM;
    goto fail;
  }
  e = tr__http_url_parse(url, &f->host_, &f->port_, &f->target_, &f->tls_);
  if (e) goto fail;
  f->method_ = strdup(method);
  if (!f->method_) {
    e = TR_ENOMEM;
    goto fail;
  }
  if (err) *err = 0;
  return f;
fail:
  tr_msg_free(f);
  if (err) *err = e;
  return NULL;
}

int tr_http_fetch_header(tr_http_fetch_t *f, const char *name,
                         const char *value) {
  if (!f || !name || !value || !tr__is_token(name)) return TR_EINVAL;
  size_t nn = strlen(name), vn = strlen(value);
  for (size_t i = 0; i < vn; i++) {
    unsigned char c = (unsigned char)value[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f) return TR_EINVAL;
  }
  static const char *const reserved[] = {"host", "content-length",
                                         "transfer-encoding", "connection"};
  for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
    if (!strcasecmp(name, reserved[i])) return TR_EINVAL;
  size_t need = f->fields_len_ + nn + vn + 4;
  if (need < vn || tr__grow(&f->fields_, &f->fields_cap_, need)) return TR_ENOMEM;
  char *p = f->fields_ + f->fields_len_;
  memcpy(p, name, nn);
  p[nn] = ':';
  p[nn + 1] = ' ';
  memcpy(p + nn + 2, value, vn);
  p[nn + 2 + vn] = '\r';
  p[nn + 3 + vn] = '\n';
  f->fields_len_ = need;
  return 0;
}

int tr_http_fetch_body(tr_http_fetch_t *f, const void *data, size_t n) {
  if (!f || (n && !data)) return TR_EINVAL;
  if (!n) return 0;
  size_t need = f->body_len_ + n;
  if (need < n || tr__grow(&f->body_, &f->body_cap_, need)) return TR_ENOMEM;
  memcpy(f->body_ + f->body_len_, data, n);
  f->body_len_ = need;
  return 0;
}

const tr_http_field_t *tr_http_result_field(const tr_http_result_t *r,
                                            const char *name) {
  if (!r || !name) return NULL;
  size_t nl = strlen(name);
  for (unsigned i = 0; i < r->nfields; i++)
    if (r->fields[i].name.n == nl &&
        !strncasecmp(r->fields[i].name.p, name, nl))
      return &r->fields[i];
  return NULL;
}

/* A result holding a copy of h's fields (body to come). */
static tr_http_result_t *result_from_head(const tr_http_head_t *h) {
  size_t sz = h->nfields * sizeof(tr_http_field_t) + 1;
  for (unsigned i = 0; i < h->nfields; i++)
    sz += h->fields[i].name.n + h->fields[i].value.n;
  tr_http_result_t *r = tr_msg_new(&tr_http_result_t__type);
  if (!r) return NULL;
  char *mem = malloc(sz);
  if (!mem) {
    tr_msg_free(r);
    return NULL;
  }
  r->mem_ = mem;
  tr_http_field_t *f = (tr_http_field_t *)(void *)mem;
  char *p = mem + h->nfields * sizeof(tr_http_field_t);
  for (unsigned i = 0; i < h->nfields; i++) {
    memcpy(p, h->fields[i].name.p, h->fields[i].name.n);
    f[i].name.p = p;
    f[i].name.n = h->fields[i].name.n;
    p += f[i].name.n;
    if (h->fields[i].value.n) memcpy(p, h->fields[i].value.p, h->fields[i].value.n);
    f[i].value.p = p;
    f[i].value.n = h->fields[i].value.n;
    p += f[i].value.n;
  }
  r->fields = f;
  r->nfields = h->nfields;
  r->status = h->status;
  r->version = h->version;
  return r;
}

/* ---- The client actor ------------------------------------------------------ */

enum { CS_RESOLVING, CS_CONNECTING, CS_BUSY, CS_IDLE, CS_CLOSING };
enum { RD_HEAD, RD_LENGTH, RD_CHUNKED, RD_CLOSE };

typedef struct cconn {
  struct cconn *next;
  uint64_t serial;            /* cookie of its resolve, connect, timer */
  int state;                  /* CS_* */
  char *host;
  uint16_t port;
  int tls;
  tr_tcp_id_t id;
  int has_id;                 /* id names a TCP connection (connecting or
                                 open) */
  int connected;
  int peer_eof;               /* the server closed its side */
  tr__stream_t st;
  tr_addr_t addrs[TR_RESOLVE_MAX];
  unsigned naddrs, next_addr;

  /* the request under way */
  tr_http_fetch_t *f;
  int reused, got_byte, head_req;
  uint64_t req_deadline;      /* 0: none */
  char *out;
  size_t out_len, out_cap, out_off;
  int blocked;

  /* its response */
  tr__sbuf_t in;
  tr_http_head_t head;
  tr_http_field_t *fields;
  int rd;                     /* RD_* */
  tr_http_chunked_t ch;
  tr_http_result_t *res;
  uint8_t *body;
  size_t body_len, body_cap;
  uint64_t body_need;         /* RD_LENGTH: bytes still to come */

  uint64_t deadline;          /* 0: none */
  int tm_armed;
  uint64_t tm_at;
  tr_timer_id_t tm_id;
} cconn_t;

typedef struct client_cfg {
  tr_tls_config_t *tls;
  tr_duration_t connect_timeout, first_byte_timeout, total_timeout;
  tr_duration_t idle_timeout;
  unsigned idle_max;
  uint64_t body_max;
  tr_http_limits_t lim;
  char *ua;
} client_cfg_t;

typedef struct client {
  client_cfg_t cfg;
  tr_runtime_t *rt;
  int tls_err;                /* making the default TLS configuration
                                 failed with it */
  cconn_t *conns;
  uint64_t serial;
} client_t;

static uint64_t now_ms(client_t *cl) { return tr_io_now_ms(cl->rt); }

/* A deadline d ms from now (TR_FOREVER: none, 0). */
static uint64_t after(client_t *cl, tr_duration_t d) {
  if (d < 0) return 0;
  return now_ms(cl) + (uint64_t)d;
}

static uint64_t earliest(uint64_t a, uint64_t b) {
  if (!a) return b;
  if (!b) return a;
  return a < b ? a : b;
}

static void set_deadline(tr_ctx_t *ctx, client_t *cl, cconn_t *c,
                         uint64_t at) {
  c->deadline = at;
  if (!at) return;
  if (c->tm_armed && c->tm_at <= at) return; /* fires first, re-arms */
  if (c->tm_armed) tr_timer_cancel(cl->rt, c->tm_id);
  c->tm_armed = 0;
  uint64_t now = now_ms(cl);
  tr_duration_t ms = at > now ? (tr_duration_t)(at - now) : 0;
  if (tr_timer_start(ctx, ms, TR_FOREVER, c->serial, &c->tm_id) == 0) {
    c->tm_armed = 1;
    c->tm_at = at;
  }
}

static cconn_t *conn_by_serial(client_t *cl, uint64_t serial) {
  for (cconn_t *c = cl->conns; c; c = c->next)
    if (c->serial == serial) return c;
  return NULL;
}

static cconn_t *conn_by_id(client_t *cl, tr_tcp_id_t id) {
  for (cconn_t *c = cl->conns; c; c = c->next)
    if (c->has_id && c->id == id) return c;
  return NULL;
}

static void conn_free(client_t *cl, cconn_t *c) {
  cconn_t **pp = &cl->conns;
  while (*pp && *pp != c) pp = &(*pp)->next;
  if (*pp) *pp = c->next;
  if (c->tm_armed) tr_timer_cancel(cl->rt, c->tm_id);
  tr__stream_fini(&c->st);
  tr_msg_free(c->f); /* never set here with a request unanswered */
  tr_msg_free(c->res);
  free(c->host);
  free(c->out);
  free(c->in.p);
  free(c->fields);
  free(c->body);
  free(c);
}

/* Answers f; consumes both. */
static void answer(tr_ctx_t *ctx, tr_http_fetch_t *f, tr_http_result_t *r) {
  if (!r) {
    tr_msg_free(f); /* the asker gets TR_ENOREPLY */
    return;
  }
  int rc = tr_reply_to(ctx, f, r);
  if (rc == TR_EINVAL) tr_msg_free(f); /* sent, not asked */
}

static void answer_error(tr_ctx_t *ctx, tr_http_fetch_t *f, int err) {
  tr_http_result_t *r = tr_msg_new(&tr_http_result_t__type);
  if (r) r->error = err;
  answer(ctx, f, r);
}

/* Forgets the response state of c (between requests). */
static void conn_reset(client_t *cl, cconn_t *c) {
  tr_msg_free(c->res);
  c->res = NULL;
  free(c->body);
  c->body = NULL;
  c->body_len = c->body_cap = 0;
  c->out_len = c->out_off = 0;
  c->blocked = 0;
  c->got_byte = 0;
  c->rd = RD_HEAD;
  tr_http_head_init(&c->head, c->fields, cl->cfg.lim.fields_max);
}

/* Closes c: its request (if any) is no longer its own. Freed when the
 * tr_tcp_closed_t comes (or now, when it has no TCP connection). A
 * connection still connecting is left to its tr_tcp_connected_t. */
static void conn_close(tr_ctx_t *ctx, client_t *cl, cconn_t *c) {
  c->deadline = 0;
  if (c->tm_armed) {
    tr_timer_cancel(cl->rt, c->tm_id);
    c->tm_armed = 0;
  }
  if (!c->has_id) {
    conn_free(cl, c);
    return;
  }
  if (c->state == CS_CLOSING) return;
  if (c->state == CS_CONNECTING) {
    c->state = CS_CLOSING; /* tr_tcp_connected_t will close it */
    return;
  }
  c->state = CS_CLOSING;
  if (tr_tcp_close(ctx, c->id)) conn_free(cl, c);
}

static void conn_fail(tr_ctx_t *ctx, client_t *cl, cconn_t *c, int err) {
  tr_http_fetch_t *f = c->f;
  c->f = NULL;
  if (f) answer_error(ctx, f, err);
  conn_close(ctx, cl, c);
}

static int start_request(tr_ctx_t *ctx, client_t *cl, tr_http_fetch_t *f,
                         uint64_t deadline, int allow_reuse);

/* Writes what is left of the request. */
static void conn_write(tr_ctx_t *ctx, client_t *cl, cconn_t *c) {
  while (!c->blocked && c->out_off < c->out_len) {
    size_t n = c->out_len - c->out_off;
    if (n > OUT_PIECE) n = OUT_PIECE;
    int rc = tr__stream_write(ctx, &c->st, c->out + c->out_off, n);
    if (rc == TR_EAGAIN) {
      c->blocked = 1;
      return;
    }
    if (rc) {
      conn_fail(ctx, cl, c, rc);
      return;
    }
    c->out_off += n;
  }
  if (c->blocked || c->got_byte) return;
  /* all out: the wait for the first byte starts */
  set_deadline(ctx, cl, c,
               earliest(c->req_deadline,
                        after(cl, cl->cfg.first_byte_timeout)));
}

static int out_add(cconn_t *c, const void *p, size_t n) {
  if (tr__grow(&c->out, &c->out_cap, c->out_len + n)) return TR_ENOMEM;
  memcpy(c->out + c->out_len, p, n);
  c->out_len += n;
  return 0;
}

/* Serializes c->f into the output and sends it. */
static void conn_send(tr_ctx_t *ctx, client_t *cl, cconn_t *c) {
  tr_http_fetch_t *f = c->f;
  conn_reset(cl, c);
  c->state = CS_BUSY;
  c->head_req = !strcmp(f->method_, "HEAD");
  char hostport[HOST_MAX + 16];
  int v6 = strchr(c->host, ':') != NULL;
  int dflt = c->port == (c->tls ? 443 : 80);
  if (dflt)
    snprintf(hostport, sizeof(hostport), v6 ? "[%s]" : "%s", c->host);
  else
    snprintf(hostport, sizeof(hostport), v6 ? "[%s]:%u" : "%s:%u", c->host,
             (unsigned)c->port);
  char line[512];
  int rc = out_add(c, f->method_, strlen(f->method_));
  if (!rc) rc = out_add(c, " ", 1);
  if (!rc) rc = out_add(c, f->target_, strlen(f->target_));
  int n = snprintf(line, sizeof(line), " HTTP/1.1\r\nHost: %s\r\n", hostport);
  if (!rc) rc = out_add(c, line, (size_t)n);
  if (!rc) rc = out_add(c, "User-Agent: ", 12);
  if (!rc) rc = out_add(c, cl->cfg.ua, strlen(cl->cfg.ua));
  if (!rc) rc = out_add(c, "\r\n", 2);
  /* a body, or a method that normally has one: say its length */
  if (f->body_len_ || !strcmp(f->method_, "POST") ||
      !strcmp(f->method_, "PUT") || !strcmp(f->method_, "PATCH")) {
    n = snprintf(line, sizeof(line), "Content-Length: %zu\r\n", f->body_len_);
    if (!rc) rc = out_add(c, line, (size_t)n);
  }
  if (!rc && f->fields_len_) rc = out_add(c, f->fields_, f->fields_len_);
  if (!rc) rc = out_add(c, "\r\n", 2);
  if (!rc && f->body_len_) rc = out_add(c, f->body_, f->body_len_);
  if (rc) {
    conn_fail(ctx, cl, c, rc);
    return;
  }
  set_deadline(ctx, cl, c, c->req_deadline);
  conn_write(ctx, cl, c);
}

/* Connects c to its next address. 0, or the error of the last one. */
static int conn_connect(tr_ctx_t *ctx, client_t *cl, cconn_t *c,
                        const char *addr) {
  tr_duration_t to = cl->cfg.connect_timeout;
  if (c->req_deadline) {
    uint64_t now = now_ms(cl);
    tr_duration_t left =
        c->req_deadline > now ? (tr_duration_t)(c->req_deadline - now) : 0;
    if (to < 0 || left < to) to = left;
  }
  c->state = CS_CONNECTING;
  int rc = tr_tcp_connect(ctx, addr, c->port, to, c->serial, &c->id);
  if (rc == 0) c->has_id = 1;
  return rc;
}

static int is_idempotent(const char *m) {
  return !strcmp(m, "GET") || !strcmp(m, "HEAD") || !strcmp(m, "PUT") ||
         !strcmp(m, "DELETE") || !strcmp(m, "OPTIONS") || !strcmp(m, "TRACE");
}

/* The connection ended (or failed) under the request. A reused one that
 * ends before any byte of the response sends an idempotent request again
 * on a fresh connection, once. */
static void conn_lost(tr_ctx_t *ctx, client_t *cl, cconn_t *c, int err) {
  tr_http_fetch_t *f = c->f;
  if (f && c->reused && !c->got_byte && !f->retried_ &&
      is_idempotent(f->method_)) {
    c->f = NULL;
    f->retried_ = 1;
    uint64_t dl = c->req_deadline;
    conn_close(ctx, cl, c);
    start_request(ctx, cl, f, dl, 0);
    return;
  }
  conn_fail(ctx, cl, c, err);
}

/* The response is whole: answer, then keep the connection or close it. */
static void conn_done(tr_ctx_t *ctx, client_t *cl, cconn_t *c, int keep) {
  tr_http_result_t *r = c->res;
  c->res = NULL;
  if (!c->body) {
    c->body = malloc(1);
    if (!c->body) {
      tr_msg_free(r);
      conn_fail(ctx, cl, c, TR_ENOMEM);
      return;
    }
  } else if (c->body_len == c->body_cap &&
             tr__grow(&c->body, &c->body_cap, c->body_len + 1)) {
    tr_msg_free(r);
    conn_fail(ctx, cl, c, TR_ENOMEM);
    return;
  }
  c->body[c->body_len] = 0;
  r->body = c->body;
  r->body_len = c->body_len;
  r->reused = c->reused ? 1 : 0;
  c->body = NULL;
  c->body_len = c->body_cap = 0;
  tr_http_fetch_t *f = c->f;
  c->f = NULL;
  answer(ctx, f, r);
  /* a request whose body has not all gone out (the server answered
   * early) leaves the connection out of step: never reuse it */
  if (c->out_off < c->out_len || c->blocked || c->st.blocked) keep = 0;
  if (!keep || c->in.len || c->st.err || c->st.eof || c->peer_eof) {
    conn_close(ctx, cl, c);
    return;
  }
  /* idle: kept unless there are enough idle ones to this place already */
  unsigned idle = 0;
  for (cconn_t *o = cl->conns; o; o = o->next)
    if (o != c && o->state == CS_IDLE && o->port == c->port &&
        o->tls == c->tls && !strcasecmp(o->host, c->host))
      idle++;
  if (idle >= cl->cfg.idle_max) {
    conn_close(ctx, cl, c);
    return;
  }
  conn_reset(cl, c);
  c->state = CS_IDLE;
  c->req_deadline = 0;
  set_deadline(ctx, cl, c, after(cl, cl->cfg.idle_timeout));
}

/* Takes n bytes of body. 0, or TR_EMSGSIZE / TR_ENOMEM. */
static int body_add(client_t *cl, cconn_t *c, const void *p, size_t n) {
  if (!n) return 0;
  if ((uint64_t)c->body_len + n > cl->cfg.body_max) return TR_EMSGSIZE;
  if (tr__grow(&c->body, &c->body_cap, c->body_len + n + 1)) return TR_ENOMEM;
  memcpy(c->body + c->body_len, p, n);
  c->body_len += n;
  return 0;
}

static void in_drop(cconn_t *c, size_t n) {
  memmove(c->in.p, c->in.p + n, c->in.len - n);
  c->in.len -= n;
}

/* Parses what the read buffer holds. eof: the peer has closed. */
static void conn_process(tr_ctx_t *ctx, client_t *cl, cconn_t *c, int eof) {
  for (;;) {
    if (c->rd == RD_HEAD) {
      if (!c->in.len) break;
      int rc = tr_http_response_parse(&c->head, c->in.p, c->in.len,
                                      &cl->cfg.lim, c->head_req);
      if (rc == 0) break;
      if (rc < 0) {
        conn_fail(ctx, cl, c, TR_EPROTO);
        return;
      }
      tr_http_head_t *h = &c->head;
      if (h->status == 101) {
        /* no upgrade was asked for */
        conn_fail(ctx, cl, c, TR_EPROTO);
        return;
      }
      if (h->status < 200) { /* interim: skipped */
        in_drop(c, (size_t)rc);
        tr_http_head_init(&c->head, c->fields, cl->cfg.lim.fields_max);
        continue;
      }
      c->res = result_from_head(h);
      if (!c->res) {
        conn_fail(ctx, cl, c, TR_ENOMEM);
        return;
      }
      in_drop(c, (size_t)rc);
      /* h's views pointed into the buffer: only its scalars are used
       * from here on */
      switch (h->body) {
      case TR_HTTP_BODY_NONE:
        conn_done(ctx, cl, c, h->keep_alive);
        return;
      case TR_HTTP_BODY_LENGTH:
        if (h->content_length > cl->cfg.body_max) {
          conn_fail(ctx, cl, c, TR_EMSGSIZE);
          return;
        }
        c->body_need = h->content_length;
        c->rd = RD_LENGTH;
        break;
      case TR_HTTP_BODY_CHUNKED:
        tr_http_chunked_init(&c->ch);
        c->rd = RD_CHUNKED;
        break;
      default:
        c->rd = RD_CLOSE;
        break;
      }
      continue;
    }
    if (c->rd == RD_LENGTH) {
      size_t take = c->in.len < c->body_need ? c->in.len : (size_t)c->body_need;
      int rc;
      if (take && !c->body && take == c->in.len && take == c->body_need) {
        /* the whole body is the buffer: take it without a copy */
        c->body = (uint8_t *)c->in.p;
        c->body_len = c->body_cap = c->in.cap;
        c->body_len = take;
        c->in.p = NULL;
        c->in.len = c->in.cap = 0;
        rc = 0;
      } else {
        rc = body_add(cl, c, c->in.p, take);
        if (!rc) in_drop(c, take);
      }
      if (rc) {
        conn_fail(ctx, cl, c, rc);
        return;
      }
      c->body_need -= take;
      if (c->body_need) break;
      conn_done(ctx, cl, c, c->head.keep_alive);
      return;
    }
    if (c->rd == RD_CHUNKED) {
      size_t pos = 0;
      int rc = 0;
      while (pos < c->in.len && !c->ch.done) {
        tr_http_str_t d = {NULL, 0};
        int64_t k = tr_http_chunked_decode(&c->ch, c->in.p + pos,
                                           c->in.len - pos, &d);
        if (k < 0) {
          rc = TR_EPROTO;
          break;
        }
        if ((uint64_t)c->body_len + d.n + c->ch.left_ > cl->cfg.body_max) {
          rc = TR_EMSGSIZE; /* refused as soon as a chunk's size says so */
          break;
        }
        rc = body_add(cl, c, d.p, d.n);
        if (rc) break;
        pos += (size_t)k;
        if (k == 0) break;
      }
      if (rc) {
        conn_fail(ctx, cl, c, rc);
        return;
      }
      in_drop(c, pos);
      if (!c->ch.done) break;
      conn_done(ctx, cl, c, c->head.keep_alive);
      return;
    }
    /* RD_CLOSE: everything up to the end */
    int rc = body_add(cl, c, c->in.p, c->in.len);
    if (rc) {
      conn_fail(ctx, cl, c, rc);
      return;
    }
    c->in.len = 0;
    if (!eof) break;
    conn_done(ctx, cl, c, 0);
    return;
  }
  if (eof) conn_lost(ctx, cl, c, TR_ECONNRESET);
}

/* Starts a request on an idle connection or a new one. f is consumed
 * (answered on failure). */
static int start_request(tr_ctx_t *ctx, client_t *cl, tr_http_fetch_t *f,
                         uint64_t deadline, int allow_reuse) {
  if (f->tls_ && !cl->cfg.tls) {
    if (cl->tls_err) {
      answer_error(ctx, f, TR_EINVAL);
      return 0;
    }
    tr_tls_client_opts_t to;
    tr_tls_client_opts_init(&to);
    int rc = tr_tls_client_config_new(&to, &cl->cfg.tls, NULL, 0);
    if (rc) {
      cl->tls_err = rc;
      cl->cfg.tls = NULL;
      answer_error(ctx, f, TR_EINVAL);
      return 0;
    }
  }
  if (allow_reuse) {
    for (cconn_t *c = cl->conns; c; c = c->next) {
      if (c->state != CS_IDLE || c->port != f->port_ || c->tls != f->tls_ ||
          strcasecmp(c->host, f->host_))
        continue;
      c->f = f;
      c->reused = 1;
      c->req_deadline = deadline;
      conn_send(ctx, cl, c);
      return 0;
    }
  }
  cconn_t *c = calloc(1, sizeof(*c));
  if (c) {
    c->host = strdup(f->host_);
    c->fields = malloc(cl->cfg.lim.fields_max * sizeof(tr_http_field_t));
  }
  if (!c || !c->host || !c->fields) {
    if (c) {
      free(c->host);
      free(c->fields);
      free(c);
    }
    answer_error(ctx, f, TR_ENOMEM);
    return 0;
  }
  c->serial = ++cl->serial;
  c->port = f->port_;
  c->tls = f->tls_;
  c->f = f;
  c->req_deadline = deadline;
  c->next = cl->conns;
  cl->conns = c;
  tr_http_head_init(&c->head, c->fields, cl->cfg.lim.fields_max);
  set_deadline(ctx, cl, c, deadline);
  int rc;
  if (tr__is_ip(c->host)) {
    rc = conn_connect(ctx, cl, c, c->host);
  } else {
    c->state = CS_RESOLVING;
    rc = tr_resolve(ctx, c->host, AF_UNSPEC, c->serial);
  }
  if (rc) conn_fail(ctx, cl, c, rc);
  return 0;
}

static int cl_fetch(tr_ctx_t *ctx, void *state, void *msg) {
  client_t *cl = state;
  tr_http_fetch_t *f = msg;
  tr_ctx_take(ctx);
  return start_request(ctx, cl, f, after(cl, cl->cfg.total_timeout), 1);
}

static int cl_resolved(tr_ctx_t *ctx, void *state, void *msg) {
  client_t *cl = state;
  tr_resolved_t *r = msg;
  cconn_t *c = conn_by_serial(cl, r->cookie);
  if (!c || c->state != CS_RESOLVING) return 0; /* given up */
  if (r->status) {
    conn_fail(ctx, cl, c, r->status);
    return 0;
  }
  c->naddrs = r->naddrs;
  memcpy(c->addrs, r->addrs, sizeof(c->addrs));
  int rc = TR_ENOENT;
  while (c->next_addr < c->naddrs) {
    rc = conn_connect(ctx, cl, c, c->addrs[c->next_addr++].host);
    if (!rc) return 0;
  }
  conn_fail(ctx, cl, c, rc);
  return 0;
}

static int cl_connected(tr_ctx_t *ctx, void *state, void *msg) {
  client_t *cl = state;
  tr_tcp_connected_t *m = msg;
  cconn_t *c = conn_by_id(cl, m->conn);
  if (!c) return 0;
  if (m->status) {
    c->has_id = 0; /* dead: no tr_tcp_closed_t follows */
    if (c->state == CS_CONNECTING && c->f) {
      while (c->next_addr < c->naddrs) {
        if (!conn_connect(ctx, cl, c, c->addrs[c->next_addr++].host))
          return 0;
      }
      conn_fail(ctx, cl, c, m->status);
      return 0;
    }
    conn_free(cl, c);
    return 0;
  }
  if (c->state != CS_CONNECTING || !c->f) { /* abandoned meanwhile */
    c->state = CS_CLOSING;
    if (tr_tcp_close(ctx, c->id)) conn_free(cl, c);
    return 0;
  }
  c->connected = 1;
  tr_tls_t *tls = NULL;
  if (c->tls) {
    int rc = tr_tls_new(cl->cfg.tls, c->host, &tls);
    if (rc) {
      conn_fail(ctx, cl, c, rc);
      return 0;
    }
  }
  tr__stream_init(&c->st, c->id, tls);
  conn_send(ctx, cl, c);
  return 0;
}

static int cl_data(tr_ctx_t *ctx, void *state, void *msg) {
  client_t *cl = state;
  tr_tcp_data_t *d = msg;
  cconn_t *c = conn_by_id(cl, d->conn);
  if (!c || c->state == CS_CLOSING) return 0;
  int rc = tr__stream_recv(ctx, &c->st, d, &c->in);
  if (rc) { /* TLS failed (the alert is on its way), or no memory */
    conn_fail(ctx, cl, c, rc);
    return 0;
  }
  if (!c->in.len) return 0; /* handshake bytes only */
  if (c->state != CS_BUSY) {
    /* bytes nobody asked for on an idle connection: not reusable */
    conn_close(ctx, cl, c);
    return 0;
  }
  if (!c->got_byte) {
    c->got_byte = 1;
    set_deadline(ctx, cl, c, c->req_deadline);
  }
  conn_process(ctx, cl, c, 0);
  return 0;
}

static int cl_eof(tr_ctx_t *ctx, void *state, void *msg) {
  client_t *cl = state;
  tr_tcp_eof_t *m = msg;
  cconn_t *c = conn_by_id(cl, m->conn);
  if (!c || c->state == CS_CLOSING) return 0;
  if (c->state != CS_BUSY) {
    conn_close(ctx, cl, c);
    return 0;
  }
  c->peer_eof = 1;
  size_t before = c->in.len;
  int rc = tr__stream_recv_eof(ctx, &c->st, &c->in);
  if (c->in.len > before) c->got_byte = 1;
  if (rc && !(rc == TR_ECONNRESET && c->rd == RD_HEAD)) {
    conn_fail(ctx, cl, c, rc);
    return 0;
  }
  conn_process(ctx, cl, c, 1);
  return 0;
}

static int cl_writable(tr_ctx_t *ctx, void *state, void *msg) {
  client_t *cl = state;
  tr_tcp_writable_t *m = msg;
  cconn_t *c = conn_by_id(cl, m->conn);
  if (!c || c->state != CS_BUSY) return 0;
  int rc = tr__stream_writable(ctx, &c->st);
  if (rc == 1) return 0;
  if (rc < 0) {
    conn_fail(ctx, cl, c, rc);
    return 0;
  }
  c->blocked = 0;
  conn_write(ctx, cl, c);
  return 0;
}

static int cl_closed(tr_ctx_t *ctx, void *state, void *msg) {
  client_t *cl = state;
  tr_tcp_closed_t *m = msg;
  cconn_t *c = conn_by_id(cl, m->conn);
  if (!c) return 0;
  c->has_id = 0;
  if (c->state == CS_BUSY && c->f) {
    int err = m->status ? m->status : TR_ECONNRESET;
    if (c->st.err) err = c->st.err;
    conn_lost(ctx, cl, c, err);
    return 0;
  }
  conn_free(cl, c);
  return 0;
}

static int cl_timer(tr_ctx_t *ctx, void *state, void *msg) {
  client_t *cl = state;
  tr_timer_fired_t *t = msg;
  cconn_t *c = conn_by_serial(cl, t->cookie);
  if (!c || !c->tm_armed || c->tm_id != t->id) return 0;
  c->tm_armed = 0;
  if (!c->deadline) return 0;
  uint64_t now = now_ms(cl);
  if (now < c->deadline) {
    set_deadline(ctx, cl, c, c->deadline);
    return 0;
  }
  c->deadline = 0;
  if (c->f) {
    conn_fail(ctx, cl, c, TR_ETIMEDOUT);
    return 0;
  }
  conn_close(ctx, cl, c); /* idle for too long */
  return 0;
}

static int cl_init(tr_ctx_t *ctx, void *state, void *arg) {
  client_t *cl = state;
  client_cfg_t *cfg = arg;
  cl->rt = tr_ctx_runtime(ctx);
  cl->cfg = *cfg;
  cl->cfg.ua = strdup(cfg->ua);
  if (!cl->cfg.ua) return TR_ENOMEM;
  if (cl->cfg.tls) tr_tls_config_ref(cl->cfg.tls);
  return 0;
}

static void cl_stop(tr_ctx_t *ctx, void *state, int reason) {
  client_t *cl = state;
  (void)reason;
  while (cl->conns) {
    cconn_t *c = cl->conns;
    if (c->f) {
      answer_error(ctx, c->f, TR_ECANCELED);
      c->f = NULL;
    }
    if (c->has_id && c->state != CS_CLOSING) tr_tcp_close(ctx, c->id);
    conn_free(cl, c);
  }
  tr_tls_config_free(cl->cfg.tls);
  free(cl->cfg.ua);
}

static const tr_handler_t cl_handlers[] = {
    {&tr_http_fetch_t__type, cl_fetch},
    {&tr_resolved_t__type, cl_resolved},
    {&tr_tcp_connected_t__type, cl_connected},
    {&tr_tcp_data_t__type, cl_data},
    {&tr_tcp_eof_t__type, cl_eof},
    {&tr_tcp_writable_t__type, cl_writable},
    {&tr_tcp_closed_t__type, cl_closed},
    {&tr_timer_fired_t__type, cl_timer},
};

static const tr_behavior_t cl_behavior = {
    .name = "http_client",
    .state_size = sizeof(client_t),
    .init = cl_init,
    .on_stop = cl_stop,
    .handlers = TR_HANDLERS(cl_handlers),
};

static tr_duration_t dur_or(tr_duration_t d, tr_duration_t dflt) {
  return d == 0 ? dflt : d;
}

int tr_http_client_start(tr_runtime_t *rt, const tr_http_client_opts_t *o,
                         tr_ref_t *client) {
  if (!rt || !client) return TR_EINVAL;
  tr_http_client_opts_t opts;
  if (o) {
    int rc = tr__config_copy(&opts, sizeof(opts), sizeof(opts), o);
    if (rc) return rc;
  } else {
    tr_http_client_opts_init(&opts);
  }
  if (TR__DURATION_BAD(opts.connect_timeout) ||
      TR__DURATION_BAD(opts.first_byte_timeout) ||
      TR__DURATION_BAD(opts.total_timeout) ||
      TR__DURATION_BAD(opts.idle_timeout))
    return TR_EINVAL;
  const char *ua = opts.user_agent ? opts.user_agent : "troupe";
  for (const char *p = ua; *p; p++) {
    unsigned char ch = (unsigned char)*p;
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return TR_EINVAL;
  }
  client_cfg_t cfg;
  memset(&cfg, 0, sizeof(cfg));
  cfg.tls = opts.tls;
  cfg.connect_timeout = dur_or(opts.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
  cfg.first_byte_timeout =
      dur_or(opts.first_byte_timeout, DEFAULT_FIRST_BYTE_TIMEOUT);
  cfg.total_timeout = dur_or(opts.total_timeout, DEFAULT_TOTAL_TIMEOUT);
  cfg.idle_timeout = dur_or(opts.idle_timeout, DEFAULT_IDLE_TIMEOUT);
  cfg.idle_max = opts.idle_max ? opts.idle_max : DEFAULT_IDLE_MAX;
  cfg.body_max = opts.body_max ? opts.body_max : DEFAULT_BODY_MAX;
  if (cfg.body_max > SIZE_MAX / 2) cfg.body_max = SIZE_MAX / 2;
  tr_http_limits_init(&cfg.lim);
  cfg.lim.head_max = opts.head_max ? opts.head_max : DEFAULT_HEAD_MAX;
  if (cfg.lim.head_max > INT_MAX) cfg.lim.head_max = INT_MAX;
  cfg.lim.fields_max = opts.fields_max ? opts.fields_max : DEFAULT_FIELDS_MAX;
  /* a head of head_max bytes holds fewer fields than this */
  if (cfg.lim.fields_max > FIELDS_CAP) cfg.lim.fields_max = FIELDS_CAP;
  cfg.ua = (char *)(uintptr_t)ua;
  return tr_spawn(rt, &cl_behavior, &cfg, client);
}
