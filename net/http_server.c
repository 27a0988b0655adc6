/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/1.1 server: one actor per connection drives the codec
 * (http_parse.c) over the connection's bytes.
 *
 * A connection reads into one buffer (the first read's bytes are taken
 * from their message without a copy), parses a head, reads the body
 * (fixed length: left in the buffer; chunked: decoded into a body buffer),
 * then dispatches: a fast-path route runs at once, an actor route is
 * asked. Every request gets its place in an ordered queue of responses,
 * so pipelined requests are answered in order whatever order their
 * actors reply in; a response that is the next one due and ready goes
 * straight into the output buffer. The output is written through
 * tr_tcp_write in pieces; when the write queue is full the connection
 * waits for tr_tcp_writable_t and stops reading new requests, so a slow
 * reader never makes the server buffer without bound.
 *
 * One timer per connection serves every timeout: the connection keeps a
 * deadline and the reason for it, and a timer that fires before the
 * deadline (because the deadline moved later) is re-armed for the rest.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <troupe.h>
#include <troupe/http_server.h>

#include "internal.h"
#include "proto.h"
#include "stream.h"
#include "ws_conn.h"

#define OUT_PIECE 65536          /* bytes per tr_tcp_write */
#define OUT_BOUND (4 * OUT_PIECE) /* output that stops the parsing of
                                     pipelined requests */
#define LINGER_MS 2000           /* reading on after our last response */
#define DEFAULT_HEAD_MAX 16384
#define DEFAULT_FIELDS_MAX 64u
#define DEFAULT_BODY_MAX ((uint64_t)1 << 20)
#define DEFAULT_HEADER_TIMEOUT 10000
#define DEFAULT_BODY_TIMEOUT 30000
#define DEFAULT_IDLE_TIMEOUT 60000
#define DEFAULT_ROUTE_TIMEOUT 30000
#define DEFAULT_PIPELINE 16u

/* ---- Responses ----------------------------------------------------------- */

static void response_dtor(void *msg) {
  tr_http_response_t *r = msg;
  free(r->fields_);
  free(r->body_);
  tr_file_map_unref(r->file_);
}

TR_MESSAGE_DEFINE(tr_http_response_t, .dtor = response_dtor);

static void request_dtor(void *msg) {
  tr_http_request_t *r = msg;
  free(r->mem_);
}

TR_MESSAGE_DEFINE(tr_http_request_t, .dtor = request_dtor);

tr_http_response_t *tr_http_response_new(int status) {
  if (status == 0) status = 200;
  if (status < 100 || status > 999) return NULL;
  tr_http_response_t *r = tr_msg_new(&tr_http_response_t__type);
  if (r) r->status = status;
  return r;
}



static int name_is(const char *a, size_t n, const char *b) {
  return strlen(b) == n && strncasecmp(a, b, n) == 0;
}

int tr_http_response_header(tr_http_response_t *r, const char *name,
                            const char *value) {
  if (!r || !name || !value || !*name) return TR_EINVAL;
  size_t nn = strlen(name), vn = strlen(value);
  for (size_t i = 0; i < nn; i++)
    if (!tr__is_tchar((unsigned char)name[i])) return TR_EINVAL;
  for (size_t i = 0; i < vn; i++) {
    unsigned char c = (unsigned char)value[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f) return TR_EINVAL;
  }
  static const char *const reserved[] = {"content-length", "transfer-encoding",
                                         "connection", "date"};
  for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
    if (name_is(name, nn, reserved[i])) return TR_EINVAL;
  size_t need = r->fields_len_ + nn + vn + 4;
  if (need < nn || tr__grow(&r->fields_, &r->fields_cap_, need)) return TR_ENOMEM;
  char *p = r->fields_ + r->fields_len_;
  memcpy(p, name, nn);
  p[nn] = ':';
  p[nn + 1] = ' ';
  memcpy(p + nn + 2, value, vn);
  p[nn + 2 + vn] = '\r';
  p[nn + 3 + vn] = '\n';
  r->fields_len_ = need;
  return 0;
}

int tr_http_response_body(tr_http_response_t *r, const void *p, size_t n) {
  if (!r || (n && !p) || r->file_) return TR_EINVAL;
  if (!n) return 0;
  size_t need = r->body_len_ + n;
  if (need < n || tr__grow(&r->body_, &r->body_cap_, need)) return TR_ENOMEM;
  memcpy(r->body_ + r->body_len_, p, n);
  r->body_len_ = need;
  return 0;
}

/* Takes m (one reference) as the body. */
static int set_map(tr_http_response_t *r, tr_file_map_t *m, uint64_t off,
                   uint64_t len) {
  uint64_t size = tr_file_map_size(m);
  if (off > size || (len != UINT64_MAX && len > size - off)) {
    tr_file_map_unref(m);
    return TR_EINVAL;
  }
  r->file_ = m;
  r->file_off_ = off;
  r->file_len_ = len == UINT64_MAX ? size - off : len;
  return 0;
}

int tr_http_response_file(tr_http_response_t *r, const char *path,
                          uint64_t off, uint64_t len) {
  if (!r || !path || r->body_len_ || r->file_) return TR_EINVAL;
  tr_file_map_t *m;
  int rc = tr_file_map(path, 0, &m);
  if (rc) return rc;
  return set_map(r, m, off, len);
}

int tr_http_response_map(tr_http_response_t *r, tr_file_map_t *m,
                         uint64_t off, uint64_t len) {
  if (!r || !m || r->body_len_ || r->file_) return TR_EINVAL;
  return set_map(r, tr_file_map_ref(m), off, len);
}

/* ---- The server ------------------------------------------------------------ */

typedef struct hconn hconn_t;
typedef struct ws_flow ws_flow_t;

struct tr_http_server {
  tr_runtime_t *rt;
  tr_ref_t listener;
  uint16_t port;
  tr_http_route_t *routes;
  size_t nroutes;
  char *strings;                  /* the routes' copied strings */
  tr_http_limits_t lim;
  uint64_t body_max;
  tr_duration_t header_timeout, body_timeout, idle_timeout;
  unsigned pipeline_max;
  char *server;
  size_t server_len;
  size_t wbuf_max;
  uint64_t ws_message_max;
  size_t ws_backlog_max;
  size_t ws_inflight_max;
  tr_tls_config_t *tls;           /* TLS: a reference of our own */
  pthread_mutex_t mu;             /* conns, draining */
  hconn_t *conns;                 /* open connections (a list) */
  int draining;
  tr_duration_t grace;
  _Atomic unsigned refs;          /* the owner's, plus one per connection */
  _Atomic uint64_t n_conn, n_open, n_req, n_err, n_timeout;
};

static void server_unref(tr_http_server_t *s) {
  if (atomic_fetch_sub(&s->refs, 1) != 1) return;
  pthread_mutex_destroy(&s->mu);
  tr_tls_config_free(s->tls);
  free(s->routes);
  free(s->strings);
  free(s->server);
  free(s);
}

/* Asks a connection to finish: sent by tr_http_server_shutdown. */
typedef struct drain_msg {
  tr_msg_t hdr;
} drain_msg_t;
static const tr_msgtype_t drain_type = {.name = "tr_http_drain",
                                        .size = sizeof(drain_msg_t),
                                        .flags = TR_MSG_SYSTEM};

/* ---- A connection ---------------------------------------------------------- */

/* A response in the ordered queue. */
typedef struct pend {
  struct pend *next;
  uint64_t seq;
  int ready;
  int close_after;   /* the connection closes once it is out */
  int interim;       /* "100 Continue": not a request's answer */
  int head_req, keep_alive;
  int ws_switch;     /* the 101 of a WebSocket upgrade */
  tr_http_response_t *resp; /* when ready (owned) */
} pend_t;

enum { RD_HEAD, RD_LENGTH, RD_CHUNKED, RD_DONE };
enum { TM_NONE, TM_HEADER, TM_BODY, TM_IDLE, TM_LINGER, TM_DRAIN, TM_WRITE };

struct hconn {
  hconn_t *prev, *next;      /* in the server's list */
  tr_http_server_t *srv;
  tr_ref_t self;
  tr_tcp_id_t id;
  tr_runtime_t *rt;
  tr__stream_t st;           /* plain TCP or TLS over it */

  char *in;                  /* read buffer: in[off, len) unparsed */
  size_t in_len, in_cap, in_off;
  int rd;                    /* RD_* */
  tr_http_head_t head;
  tr_http_field_t *fields;
  tr_http_chunked_t chunk;
  char *body;                /* a chunked body, decoded */
  size_t body_len, body_cap;
  size_t head_len;           /* the current request's head, in in */
  int stop_reading;          /* no more requests: closing */
  int paused;                /* reading paused for back-pressure */
  int peer_eof;
  int draining;              /* the server is shutting down */
  const char *head_base;     /* where the head was parsed */
  size_t head_off;           /* where it is in in */

  pend_t *q_head, *q_tail;   /* responses not yet written, in order */
  unsigned q_len;
  uint64_t seq;

  char *out;                 /* bytes to write, out[out_off, out_len) */
  size_t out_len, out_cap, out_off;
  int blocked;               /* tr_tcp_write said TR_EAGAIN */
  tr_http_response_t *cur;   /* a large body being written */
  int cur_map;               /* cur's file goes with tr_tcp_write_map */
  const uint8_t *cur_p;
  size_t cur_left;
  int closing;               /* last response queued: shut down after it */
  int shut;                  /* tr_tcp_shutdown done: lingering */

  tr_http_response_t *spare; /* reused by the fast path */

  /* WebSocket, after an upgrade */
  int ws;                    /* speaking WebSocket now */
  int ws_switching;          /* the 101 is queued: switch once it is out */
  int ws_close_sent;         /* our close frame is out (or queued) */
  int ws_told;               /* the owner has had its tr_ws_closed_t */
  int ws_paused;             /* the owner was told to pause */
  tr_ref_t owner;
  tr_ws_parser_t wsp;
  char accept[TR_WS_ACCEPT_SIZE];
  ws_flow_t *flow;           /* what the owner has not consumed yet */
  int ws_rx_paused;          /* reading stopped for it */
  uint8_t *pre;              /* frames the owner sent before the switch */
  size_t pre_len;

  int tm_kind;               /* TM_*: what the deadline is for */
  int tm_after_write;        /* the deadline a send-progress one stood for */
  uint64_t wq_flushed;       /* the write queue's progress when last seen */
  uint64_t deadline;         /* tr_io_now_ms time, 0: none */
  int tm_armed;
  uint64_t tm_at;
  tr_timer_id_t tm_id;
};

static uint64_t now_ms(hconn_t *c) { return tr_io_now_ms(c->rt); }

static void set_deadline(tr_ctx_t *ctx, hconn_t *c, int kind,
                         tr_duration_t ms) {
  if (c->tm_kind == TM_DRAIN && kind != TM_DRAIN) {
    /* the drain deadline stays unless a shorter one comes */
    if (kind == TM_NONE || ms < 0) return;
    uint64_t at = now_ms(c) + (uint64_t)ms;
    if (at >= c->deadline) return;
  }
  c->tm_kind = kind;
  if (kind == TM_NONE || ms < 0) {
    c->deadline = 0;
    return;
  }
  c->deadline = now_ms(c) + (uint64_t)ms;
  if (c->tm_armed && c->tm_at <= c->deadline) return; /* fires first */
  if (c->tm_armed) tr_timer_cancel(c->rt, c->tm_id);
  c->tm_armed = 0;
  if (tr_timer_start(ctx, ms, TR_FOREVER, 0, &c->tm_id) == 0) {
    c->tm_armed = 1;
    c->tm_at = c->deadline;
  }
}

/* The cached Date value of this thread, renewed each second. */
static const char *date_now(void) {
  static __thread time_t sec;
  static __thread char buf[32];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  if (ts.tv_sec != sec || !buf[0]) {
    sec = ts.tv_sec;
    tr_http_date(sec, buf);
  }
  return buf;
}

static int out_append(hconn_t *c, const void *p, size_t n) {
  if (c->out_off && c->out_off == c->out_len) c->out_off = c->out_len = 0;
  if (tr__grow(&c->out, &c->out_cap, c->out_len + n)) return TR_ENOMEM;
  memcpy(c->out + c->out_len, p, n);
  c->out_len += n;
  return 0;
}

static int no_body_status(int st) {
  return st < 200 || st == 204 || st == 304;
}

/* Head building: copies n bytes at p, returns the end. */
static char *put(char *p, const char *s, size_t n) {
  memcpy(p, s, n);
  return p + n;
}

/* Writes v in decimal at p (at most 20 digits), returns the end. */
static char *put_u64(char *p, uint64_t v) {
  char d[20];
  int k = 0;
  do {
    d[k++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (k) *p++ = d[--k];
  return p;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)
#define DATE_LEN 29 /* "Sun, 06 Nov 1994 08:49:37 GMT" */

/* Writes a response's head (and, if small, its body) into out. The head
 * is built by hand: snprintf was the largest user-space cost of a small
 * response. */
static int serialize(hconn_t *c, tr_http_response_t *r, int head_req,
                     int keep_alive, int close_after, int interim) {
  if (interim) {
    char line[64];
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n\r\n", r->status,
                     tr_http_reason(r->status));
    if (n < 0 || (size_t)n >= sizeof(line)) return TR_EINVAL;
    return out_append(c, line, (size_t)n);
  }
  uint64_t blen = r->file_ ? r->file_len_ : r->body_len_;
  const char *conn = close_after ? "Connection: close\r\n"
                     : keep_alive == 2 ? "Connection: keep-alive\r\n"
                                       : "";
  const char *reason = tr_http_reason(r->status);
  const char *date = date_now();
  size_t reason_len = strlen(reason), conn_len = strlen(conn);
  /* "HTTP/1.1 NNN reason", Server, Date, Content-Length (20 digits at
   * most), Connection, the fields, the blank line */
  size_t need =
      sizeof("HTTP/1.1 NNN \r\n") + reason_len + sizeof("Server: \r\n") +
      c->srv->server_len + sizeof("Date: \r\n") + DATE_LEN +
      sizeof("Content-Length: \r\n") + 20 + conn_len + r->fields_len_ + 2;
  if (c->out_off && c->out_off == c->out_len) c->out_off = c->out_len = 0;
  if (tr__grow(&c->out, &c->out_cap, c->out_len + need)) return TR_ENOMEM;
  char *p = c->out + c->out_len;
  p = PUT_LIT(p, "HTTP/1.1 ");
  *p++ = (char)('0' + r->status / 100); /* 100..999: three digits */
  *p++ = (char)('0' + r->status / 10 % 10);
  *p++ = (char)('0' + r->status % 10);
  *p++ = ' ';
  p = put(p, reason, reason_len);
  p = PUT_LIT(p, "\r\nServer: ");
  p = put(p, c->srv->server, c->srv->server_len);
  p = PUT_LIT(p, "\r\nDate: ");
  p = put(p, date, DATE_LEN);
  p = PUT_LIT(p, "\r\n");
  if (!no_body_status(r->status)) {
    p = PUT_LIT(p, "Content-Length: ");
    p = put_u64(p, blen);
    p = PUT_LIT(p, "\r\n");
  }
  p = put(p, conn, conn_len);
  if (r->fields_len_) p = put(p, r->fields_, r->fields_len_);
  p = PUT_LIT(p, "\r\n");
  c->out_len = (size_t)(p - c->out);
  if (head_req || no_body_status(r->status) || !blen) return 0;
  if (!r->file_ && blen <= OUT_PIECE) return out_append(c, r->body_, blen);
  return 1; /* the body goes out from where it is */
}

static void conn_close_now(tr_ctx_t *ctx, hconn_t *c) {
  c->stop_reading = 1;
  tr_tcp_close(ctx, c->id);
}

/* Writes out, then the large body in progress; 1 when blocked. */
static int write_blocked(tr_ctx_t *ctx, hconn_t *c) {
  /* the peer reads nothing: the send-progress timeout (parsing stops
   * meanwhile, and with it the head and body timeouts) */
  c->blocked = 1;
  tr__tcp_write_pending(ctx, c->st.id, &c->wq_flushed);
  set_deadline(ctx, c, TM_WRITE, c->srv->body_timeout);
  return 1;
}

static int write_failed(tr_ctx_t *ctx, hconn_t *c) {
  /* an error that did not close the connection (TR_EMSGSIZE, TR_ENOMEM):
   * a response cut short cannot go on */
  conn_close_now(ctx, c);
  return -1;
}

static int write_out(tr_ctx_t *ctx, hconn_t *c) {
  if (c->blocked) return 1;
  /* a file body on plain TCP goes with the head before it in one
   * tr_tcp_write_map (no copy; the head leaves with its first bytes):
   * up to a piece of out is kept back for it */
  size_t keep = c->cur_map ? OUT_PIECE : 0;
  while (c->out_len - c->out_off > keep) {
    size_t n = c->out_len - c->out_off;
    if (n > OUT_PIECE) n = OUT_PIECE;
    int rc = tr__stream_write(ctx, &c->st, c->out + c->out_off, n);
    if (rc == TR_EAGAIN) return write_blocked(ctx, c);
    if (rc) return write_failed(ctx, c);
    c->out_off += n;
  }
  if (c->cur_map) {
    tr_http_response_t *r = c->cur;
    int rc = tr_tcp_write_map(ctx, c->st.id, c->out + c->out_off,
                              c->out_len - c->out_off, r->file_, r->file_off_,
                              r->file_len_);
    if (rc == TR_EAGAIN) return write_blocked(ctx, c);
    if (rc) return write_failed(ctx, c);
    /* the queue holds its own reference to the map */
    tr_msg_free(r);
    c->cur = NULL;
    c->cur_map = 0;
  }
  c->out_off = c->out_len = 0;
  while (c->cur) {
    size_t n = c->cur_left > OUT_PIECE ? OUT_PIECE : c->cur_left;
    int rc = tr__stream_write(ctx, &c->st, c->cur_p, n);
    if (rc == TR_EAGAIN) return write_blocked(ctx, c);
    if (rc) return write_failed(ctx, c);
    c->cur_p += n;
    c->cur_left -= n;
    if (!c->cur_left) {
      tr_msg_free(c->cur);
      c->cur = NULL;
    }
  }
  return 0;
}

static void process(tr_ctx_t *ctx, hconn_t *c);
static void ws_switch(tr_ctx_t *ctx, hconn_t *c);

/* Moves the ready responses at the head of the queue out, in order. */
static void flush(tr_ctx_t *ctx, hconn_t *c) {
  for (;;) {
    int rc = write_out(ctx, c);
    if (rc) {
      if (rc < 0) c->stop_reading = 1;
      break;
    }
    pend_t *p = c->q_head;
    if (!p || !p->ready || c->closing) break;
    c->q_head = p->next;
    if (!c->q_head) c->q_tail = NULL;
    c->q_len--;
    if (p->ws_switch) {
      free(p);
      ws_switch(ctx, c);
      continue;
    }
    rc = serialize(c, p->resp, p->head_req, p->keep_alive, p->close_after,
                   p->interim);
    if (rc == 1) {
      c->cur = p->resp;
      if (c->cur->file_ && !c->st.tls) {
        /* plain TCP: sent from the page cache (with TLS the bytes must
         * go through the engine, by copy) */
        c->cur_map = 1;
        c->cur_p = NULL;
        c->cur_left = 0;
      } else if (c->cur->file_) {
        c->cur_p = (const uint8_t *)tr_file_map_data(c->cur->file_) +
                   c->cur->file_off_;
        c->cur_left = (size_t)c->cur->file_len_;
      } else {
        c->cur_p = c->cur->body_;
        c->cur_left = c->cur->body_len_;
      }
      p->resp = NULL;
    } else if (rc < 0) {
      c->closing = 1;
    }
    if (p->resp) tr_msg_free(p->resp);
    if (p->close_after) c->closing = 1;
    free(p);
  }
  if (c->closing && !c->blocked && !c->cur && c->out_len == c->out_off &&
      !c->shut) {
    /* the last response is out: half-close and read on a little, so the
     * peer reads the response before any reset */
    c->shut = 1;
    tr__stream_shutdown(ctx, &c->st);
    set_deadline(ctx, c, TM_LINGER, LINGER_MS);
    if (c->peer_eof) conn_close_now(ctx, c);
    return;
  }
  /* between requests with nothing left to write: the idle timeout */
  if (!c->stop_reading && !c->closing && !c->ws && c->rd == RD_HEAD &&
      c->in_len == c->in_off && !c->q_head && !c->blocked && !c->cur &&
      c->out_len == c->out_off && c->tm_kind != TM_DRAIN)
    set_deadline(ctx, c, TM_IDLE, c->srv->idle_timeout);
  /* reading resumes once the queue and the output have room */
  if (c->paused && !c->blocked && c->q_len < c->srv->pipeline_max &&
      c->out_len - c->out_off < OUT_BOUND && !c->stop_reading) {
    c->paused = 0;
    tr_tcp_pause(ctx, c->id, 0);
    process(ctx, c);
  }
}

static pend_t *pend_push(hconn_t *c) {
  pend_t *p = calloc(1, sizeof(*p));
  if (!p) return NULL;
  p->seq = ++c->seq;
  if (c->q_tail) c->q_tail->next = p;
  else c->q_head = p;
  c->q_tail = p;
  c->q_len++;
  return p;
}

/* Queues a ready response; takes r. */
static int respond(hconn_t *c, tr_http_response_t *r, int head_req,
                   int keep_alive, int close_after) {
  pend_t *p = pend_push(c);
  if (!p) {
    tr_msg_free(r);
    return TR_ENOMEM;
  }
  p->ready = 1;
  p->resp = r;
  p->head_req = head_req;
  p->keep_alive = keep_alive;
  p->close_after = close_after;
  return 0;
}

/* Answers with an error status and closes after it. */
static void fail_request(hconn_t *c, int status) {
  tr_http_response_t *r = tr_http_response_new(status);
  c->stop_reading = 1;
  c->rd = RD_DONE;
  atomic_fetch_add(&c->srv->n_err, 1);
  if (!r) {
    c->closing = 1;
    return;
  }
  char text[64];
  int n = snprintf(text, sizeof(text), "%d %s\n", status,
                   tr_http_reason(status));
  tr_http_response_header(r, "Content-Type", "text/plain");
  tr_http_response_body(r, text, (size_t)n);
  respond(c, r, 0, 0, 1);
}

static const tr_http_route_t *route_find(const tr_http_server_t *s,
                                         const tr_http_req_t *q,
                                         int *status) {
  int path_hit = 0;
  for (size_t i = 0; i < s->nroutes; i++) {
    const tr_http_route_t *rt = &s->routes[i];
    size_t pl = strlen(rt->path);
    int hit = rt->prefix ? q->path.n >= pl && !memcmp(q->path.p, rt->path, pl)
                         : q->path.n == pl && !memcmp(q->path.p, rt->path, pl);
    if (!hit) continue;
    path_hit = 1;
    if (!rt->method) return rt;
    size_t ml = strlen(rt->method);
    if (q->method.n == ml && !memcmp(q->method.p, rt->method, ml)) return rt;
    if (q->head && !strcmp(rt->method, "GET")) return rt;
  }
  *status = path_hit ? 405 : 404;
  return NULL;
}

/* The request message: one allocation holds the fields, the strings and
 * the body, and the views point into it. */
static tr_http_request_t *request_copy(const tr_http_req_t *q) {
  size_t sz = q->nfields * sizeof(tr_http_field_t) + q->method.n +
              q->target.n + q->body.n + 1;
  for (unsigned i = 0; i < q->nfields; i++)
    sz += q->fields[i].name.n + q->fields[i].value.n;
  tr_http_request_t *m = tr_msg_new(&tr_http_request_t__type);
  if (!m) return NULL;
  char *mem = malloc(sz);
  if (!mem) {
    tr_msg_free(m);
    return NULL;
  }
  m->mem_ = mem;
  m->req = *q;
  tr_http_field_t *f = (tr_http_field_t *)(void *)mem;
  char *p = mem + q->nfields * sizeof(tr_http_field_t);
#define COPY(dst, src)                                                        \
  do {                                                                        \
    if ((src).n) memcpy(p, (src).p, (src).n);                                 \
    (dst).p = p;                                                              \
    (dst).n = (src).n;                                                        \
    p += (src).n;                                                             \
  } while (0)
  for (unsigned i = 0; i < q->nfields; i++) {
    COPY(f[i].name, q->fields[i].name);
    COPY(f[i].value, q->fields[i].value);
  }
  m->req.fields = f;
  COPY(m->req.method, q->method);
  COPY(m->req.target, q->target);
  COPY(m->req.body, q->body);
#undef COPY
  m->req.path.p = m->req.target.p;
  m->req.query.p = m->req.target.p + (q->query.p - q->target.p);
  return m;
}

static int on_reply(tr_ctx_t *ctx, void *state, int status, void *reply,
                    void *cookie) {
  hconn_t *c = state;
  uint64_t seq = (uint64_t)(uintptr_t)cookie;
  pend_t *p = c->q_head;
  while (p && p->seq != seq) p = p->next;
  if (!p) return 0; /* the connection gave up on it */
  tr_http_response_t *r = NULL;
  if (status == 0 && reply && tr_msg_type(reply) == &tr_http_response_t__type) {
    /* the reply stays the runtime's: move its contents */
    tr_http_response_t *in = reply;
    r = tr_http_response_new(in->status);
    if (r) {
      tr_http_response_t keep = *r;
      *r = *in;
      r->hdr = keep.hdr;
      in->fields_ = NULL;
      in->body_ = NULL;
      in->file_ = NULL;
    }
  } else {
    int st = status == TR_ETIMEDOUT ? 504 : 502;
    r = tr_http_response_new(st);
    if (r) tr_http_response_body(r, st == 504 ? "504 Gateway Timeout\n"
                                              : "502 Bad Gateway\n",
                                 st == 504 ? 20 : 16);
  }
  if (!r) {
    c->closing = 1;
    p->close_after = 1;
    r = NULL;
  }
  p->resp = r;
  p->ready = r != NULL;
  atomic_fetch_add(&c->srv->n_req, 1);
  flush(ctx, c);
  return 0;
}

static void ws_upgrade(tr_ctx_t *ctx, hconn_t *c, const tr_http_route_t *rt,
                       const tr_http_req_t *q);

/* A whole request is in: route it. */
static void dispatch(tr_ctx_t *ctx, hconn_t *c, tr_http_str_t body) {
  tr_http_head_t *h = &c->head;
  if (c->head_base != c->in + c->head_off) {
    /* the read buffer moved while the body came in: the head's views
     * are found again by parsing it once more where it is now */
    tr_http_head_init(h, c->fields, c->srv->lim.fields_max);
    if (tr_http_request_parse(h, c->in + c->head_off, c->head_len,
                              &c->srv->lim) != (int)c->head_len) {
      fail_request(c, 500);
      return;
    }
  }
  tr_http_req_t q;
  memset(&q, 0, sizeof(q));
  q.method = h->method;
  q.target = h->target;
  q.path = h->target;
  const char *qm = memchr(h->target.p, '?', h->target.n);
  if (qm) {
    q.path.n = (size_t)(qm - h->target.p);
    q.query.p = qm + 1;
    q.query.n = h->target.n - q.path.n - 1;
  } else {
    q.query.p = h->target.p + h->target.n;
  }
  q.version = h->version;
  q.fields = h->fields;
  q.nfields = h->nfields;
  q.body = body;
  q.keep_alive = h->keep_alive && !c->stop_reading && !c->draining;
  q.head = name_is(h->method.p, h->method.n, "HEAD");
  int ka = q.keep_alive ? (h->version == 10 ? 2 : 1) : 0;
  int close_after = !q.keep_alive;
  if (close_after) c->stop_reading = 1;

  int status = 0;
  const tr_http_route_t *rt = route_find(c->srv, &q, &status);
  if (!rt) {
    tr_http_response_t *r = tr_http_response_new(status);
    if (r) {
      tr_http_response_header(r, "Content-Type", "text/plain");
      tr_http_response_body(r, status == 404 ? "404 Not Found\n"
                                             : "405 Method Not Allowed\n",
                            status == 404 ? 14 : 23);
    }
    if (!r || respond(c, r, q.head, ka, close_after)) c->closing = 1;
    atomic_fetch_add(&c->srv->n_req, 1);
    return;
  }
  if (rt->ws) {
    ws_upgrade(ctx, c, rt, &q);
    return;
  }
  if (rt->fn) {
    tr_http_response_t *r = c->spare ? c->spare : tr_http_response_new(200);
    c->spare = NULL;
    if (!r) {
      c->closing = 1;
      return;
    }
    int rc = rt->fn(ctx, &q, r, rt->arg);
    if (rc < 0) {
      tr_msg_free(r);
      r = tr_http_response_new(500);
      if (r) tr_http_response_body(r, "500 Internal Server Error\n", 26);
    }
    atomic_fetch_add(&c->srv->n_req, 1);
    if (!r) {
      c->closing = 1;
      return;
    }
    /* the next response due, small: straight into the output */
    if (!c->q_head && !c->closing && !r->file_ &&
        r->body_len_ <= OUT_PIECE) {
      int sr = serialize(c, r, q.head, ka, close_after, 0);
      if (sr) c->closing = 1;
      if (close_after) c->closing = 1;
      /* keep the buffers for the next request */
      r->status = 200;
      r->fields_len_ = 0;
      r->body_len_ = 0;
      c->spare = r;
      return;
    }
    if (respond(c, r, q.head, ka, close_after)) c->closing = 1;
    return;
  }
  tr_http_request_t *m = request_copy(&q);
  pend_t *p = m ? pend_push(c) : NULL;
  if (!p) {
    tr_msg_free(m);
    fail_request(c, 503);
    return;
  }
  p->head_req = q.head;
  p->keep_alive = ka;
  p->close_after = close_after;
  tr_duration_t to = rt->timeout ? rt->timeout : DEFAULT_ROUTE_TIMEOUT;
  int rc = tr_ask_timeout(ctx, rt->target, m, to, on_reply,
                          (void *)(uintptr_t)p->seq);
  if (rc) {
    tr_http_response_t *r = tr_http_response_new(503);
    if (r) tr_http_response_body(r, "503 Service Unavailable\n", 24);
    p->resp = r;
    p->ready = 1;
    if (!r) p->close_after = 1;
    atomic_fetch_add(&c->srv->n_req, 1);
  }
}

/* A head is whole: check its framing against the limits. */
static void head_done(tr_ctx_t *ctx, hconn_t *c, size_t head_len) {
  tr_http_head_t *h = &c->head;
  c->head_len = head_len;
  c->head_base = c->in + c->in_off;
  c->head_off = c->in_off;
  set_deadline(ctx, c, TM_NONE, 0);
  if (h->body == TR_HTTP_BODY_LENGTH && h->content_length > c->srv->body_max) {
    fail_request(c, 413);
    return;
  }
  int body = h->body == TR_HTTP_BODY_CHUNKED ||
             (h->body == TR_HTTP_BODY_LENGTH && h->content_length);
  if (h->expect_continue && body && h->version == 11 &&
      c->in_len - c->in_off == head_len) {
    tr_http_response_t *r = tr_http_response_new(100);
    if (r) {
      pend_t *p = pend_push(c);
      if (p) {
        p->ready = 1;
        p->interim = 1;
        p->resp = r;
      } else {
        tr_msg_free(r);
      }
    }
  }
  if (h->body == TR_HTTP_BODY_CHUNKED) {
    tr_http_chunked_init(&c->chunk);
    c->body_len = 0;
    c->rd = RD_CHUNKED;
    set_deadline(ctx, c, TM_BODY, c->srv->body_timeout);
  } else if (body) {
    c->rd = RD_LENGTH;
    set_deadline(ctx, c, TM_BODY, c->srv->body_timeout);
  } else {
    c->rd = RD_HEAD;
    c->in_off += head_len;
    tr_http_str_t none = {c->in + c->in_off, 0};
    c->head_len = head_len;
    dispatch(ctx, c, none);
    tr_http_head_init(&c->head, c->fields, c->srv->lim.fields_max);
  }
}

/* Parses and dispatches what the read buffer holds. */
static void ws_process(tr_ctx_t *ctx, hconn_t *c);

static void process(tr_ctx_t *ctx, hconn_t *c) {
  if (c->ws) {
    ws_process(ctx, c);
    return;
  }
  while (!c->stop_reading && !c->closing) {
    if (c->q_len >= c->srv->pipeline_max || c->blocked ||
        c->out_len - c->out_off >= OUT_BOUND) {
      if (!c->paused) {
        c->paused = 1;
        tr_tcp_pause(ctx, c->id, 1);
      }
      break;
    }
    size_t avail = c->in_len - c->in_off;
    if (c->rd == RD_HEAD) {
      if (!avail) break;
      int rc = tr_http_request_parse(&c->head, c->in + c->in_off, avail,
                                     &c->srv->lim);
      if (rc == 0) {
        if (c->tm_kind != TM_HEADER)
          set_deadline(ctx, c, TM_HEADER, c->srv->header_timeout);
        break;
      }
      if (rc < 0) {
        fail_request(c, c->head.error_status ? c->head.error_status : 400);
        break;
      }
      head_done(ctx, c, (size_t)rc);
      continue;
    }
    if (c->rd == RD_LENGTH) {
      uint64_t need = c->head_len + c->head.content_length;
      if (avail < need) break;
      c->in_off += c->head_len;
      tr_http_str_t body = {c->in + c->in_off,
                            (size_t)c->head.content_length};
      c->in_off += (size_t)c->head.content_length;
      c->rd = RD_HEAD;
      dispatch(ctx, c, body);
      tr_http_head_init(&c->head, c->fields, c->srv->lim.fields_max);
      continue;
    }
    if (c->rd == RD_CHUNKED) {
      /* the head stays in the buffer (its views are needed at dispatch);
       * the chunked bytes after it are decoded into the body buffer */
      size_t start = c->in_off + c->head_len;
      size_t pos = start;
      int done = 0, bad = 0;
      while (pos < c->in_len) {
        tr_http_str_t d = {NULL, 0};
        int64_t k = tr_http_chunked_decode(&c->chunk, c->in + pos,
                                           c->in_len - pos, &d);
        if (k < 0) {
          bad = 400;
          break;
        }
        if (c->body_len + d.n + c->chunk.left_ > c->srv->body_max) {
          bad = 413; /* refused as soon as a chunk's size says so */
          break;
        }
        if (d.n) {
          if (c->body_len + d.n > c->srv->body_max) {
            bad = 413;
            break;
          }
          if (tr__grow(&c->body, &c->body_cap, c->body_len + d.n)) {
            bad = 503;
            break;
          }
          memcpy(c->body + c->body_len, d.p, d.n);
          c->body_len += d.n;
        }
        pos += (size_t)k;
        if (c->chunk.done) {
          done = 1;
          break;
        }
        if (k == 0) break;
      }
      if (bad) {
        fail_request(c, bad);
        break;
      }
      /* drop the framing bytes decoded so far: keep head + rest */
      memmove(c->in + start, c->in + pos, c->in_len - pos);
      c->in_len -= pos - start;
      if (!done) break;
      tr_http_str_t body = {c->body, c->body_len};
      c->in_off += c->head_len;
      c->rd = RD_HEAD;
      dispatch(ctx, c, body);
      tr_http_head_init(&c->head, c->fields, c->srv->lim.fields_max);
      continue;
    }
    break;
  }
  /* compact: the unparsed bytes move to the front between requests */
  if (c->rd == RD_HEAD && c->in_off) {
    memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
    c->in_len -= c->in_off;
    c->in_off = 0;
  }
  flush(ctx, c);
}

/* ---- WebSocket ------------------------------------------------------------- */

TR_MESSAGE_DEFINE(tr_ws_closed_t);
TR_MESSAGE_DEFINE(tr_ws_backlog_t, .flags = TR_MSG_SYSTEM);

/* The count of what a connection delivered to its owner and the owner
 * has not freed yet, shared by the connection and those messages. */
struct ws_flow {
  _Atomic unsigned refs;     /* the connection's, plus one per message */
  _Atomic size_t bytes;
  _Atomic int stalled;       /* the connection stopped reading */
  tr_runtime_t *rt;
  tr_ref_t conn;
  size_t max;
};

/* Tells a stalled connection that its owner caught up. */
typedef struct ws_resume {
  tr_msg_t hdr;
} ws_resume_t;
static const tr_msgtype_t ws_resume_type = {.name = "tr_ws_resume",
                                            .size = sizeof(ws_resume_t),
                                            .flags = TR_MSG_SYSTEM};

static void flow_unref(ws_flow_t *f) {
  if (f && atomic_fetch_sub(&f->refs, 1) == 1) free(f);
}

static void ws_message_dtor(void *msg) {
  tr_ws_message_t *m = msg;
  free(m->data);
  ws_flow_t *f = m->flow_;
  if (!f) return;
  size_t left = atomic_fetch_sub(&f->bytes, m->counted_) - m->counted_;
  if (left <= f->max / 2 && atomic_load(&f->stalled) &&
      atomic_exchange(&f->stalled, 0)) {
    ws_resume_t *r = tr_msg_new(&ws_resume_type);
    if (r && tr__send_raw(tr__current_worker(f->rt), NULL, f->conn, &r->hdr, 0))
      tr_msg_free(r);
  }
  flow_unref(f);
}
TR_MESSAGE_DEFINE(tr_ws_message_t, .dtor = ws_message_dtor);

static void ws_out_dtor(void *msg) { free(((ws_out_t *)msg)->frame); }
const tr_msgtype_t tr__ws_out_type = {.name = "tr_ws_out",
                                      .size = sizeof(ws_out_t),
                                      .dtor = ws_out_dtor};



/* Tells the owner, once, that the WebSocket has ended. */
static void ws_tell(tr_ctx_t *ctx, hconn_t *c, int code, int clean,
                    const uint8_t *reason, size_t rlen) {
  if (c->ws_told || tr_ref_is_null(c->owner)) return;
  c->ws_told = 1;
  tr_ws_closed_t *m = tr__ws_closed_new(c->self, code, clean, reason, rlen);
  if (m) tr_send(ctx, c->owner, m);
}

/* Frames a message into the output. */
static int ws_frame(hconn_t *c, int opcode, const void *p, size_t n) {
  return tr__ws_frame_put(&c->out, &c->out_len, &c->out_off, &c->out_cap,
                          opcode, p, n, 0);
}

/* Sends our close frame (once) and ends the connection after it. */
static void ws_fail(tr_ctx_t *ctx, hconn_t *c, int code, const char *why) {
  if (!c->ws_close_sent) {
    uint8_t pl[2 + TR_WS_REASON_MAX];
    int n = tr__ws_close_payload(pl, code, why);
    if (n >= 0) ws_frame(c, TR_WS_OP_CLOSE, pl, (size_t)n);
    c->ws_close_sent = 1;
  }
  ws_tell(ctx, c, code, 0, (const uint8_t *)why, why ? strlen(why) : 0);
  c->closing = 1;
}

static void ws_upgrade(tr_ctx_t *ctx, hconn_t *c, const tr_http_route_t *rt,
                       const tr_http_req_t *q) {
  tr_http_head_t *h = &c->head;
  const tr_http_field_t *up = tr_http_head_field(h, "upgrade");
  const tr_http_field_t *ver = tr_http_head_field(h, "sec-websocket-version");
  const tr_http_field_t *key = tr_http_head_field(h, "sec-websocket-key");
  int status = 0;
  if (!name_is(q->method.p, q->method.n, "GET") || h->version != 11 ||
      !h->upgrade || !up || !tr__list_has(up->value, "websocket") || !key ||
      tr_ws_key_check(key->value.p, key->value.n) != 0 || q->body.n)
    status = 400;
  else if (!ver || ver->value.n != 2 || memcmp(ver->value.p, "13", 2))
    status = 426;
  tr_ws_parser_opts_t po;
  tr_ws_parser_opts_init(&po);
  po.role = TR_WS_SERVER;
  po.max_message = c->srv->ws_message_max;
  po.alloc = tr__ws_realloc;
  if (!status && (tr_ws_accept_key(key->value.p, key->value.n, c->accept) ||
                  tr_ws_parser_init(&c->wsp, &po)))
    status = 503;
  if (!status) {
    tr_ws_accepted_t acc = {.conn = c->self, .arg = rt->arg, .req = q};
    if (tr_spawn(c->rt, rt->ws, &acc, &c->owner)) {
      c->owner = TR_REF_NULL;
      tr_ws_parser_fini(&c->wsp);
      status = 503;
    }
  }
  pend_t *p = status ? NULL : pend_push(c);
  if (!status && !p) {
    tr_actor_stop(c->owner, 0);
    c->owner = TR_REF_NULL;
    tr_ws_parser_fini(&c->wsp);
    status = 503;
  }
  if (status) {
    atomic_fetch_add(&c->srv->n_err, 1);
    tr_http_response_t *r = tr_http_response_new(status);
    if (r && status == 426)
      tr_http_response_header(r, "Sec-WebSocket-Version", "13");
    c->stop_reading = 1;
    if (!r || respond(c, r, 0, 0, 1)) c->closing = 1;
    return;
  }
  c->flow = calloc(1, sizeof(*c->flow));
  if (c->flow) {
    atomic_init(&c->flow->refs, 1);
    c->flow->rt = c->rt;
    c->flow->conn = c->self;
    c->flow->max = c->srv->ws_inflight_max;
  }
  uint64_t mon;
  tr_monitor(ctx, c->owner, &mon); /* an owner that stops closes us */
  p->ready = 1;
  p->ws_switch = 1;
  c->ws_switching = 1;
  if (!c->paused) { /* the next bytes wait for the switch */
    c->paused = 1;
    tr_tcp_pause(ctx, c->id, 1);
  }
  c->stop_reading = 1; /* no more HTTP on this connection */
  atomic_fetch_add(&c->srv->n_req, 1);
}

/* The 101 goes out and the connection speaks WebSocket from here. */
static void ws_switch(tr_ctx_t *ctx, hconn_t *c) {
  char head[160];
  int n = snprintf(head, sizeof(head),
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                   c->accept);
  c->ws = 1;
  c->ws_switching = 0;
  c->stop_reading = 0;
  c->rd = RD_DONE;
  set_deadline(ctx, c, TM_NONE, 0);
  if (out_append(c, head, (size_t)n) ||
      (c->pre_len && out_append(c, c->pre, c->pre_len))) {
    ws_fail(ctx, c, TR_WS_CLOSE_INTERNAL, "out of memory");
    return;
  }
  free(c->pre);
  c->pre = NULL;
  c->pre_len = 0;
  if (c->paused) {
    c->paused = 0;
    tr_tcp_pause(ctx, c->id, 0);
  }
  if (c->draining || c->peer_eof) {
    /* shut down, or the peer left, while the 101 waited */
    ws_fail(ctx, c, TR_WS_CLOSE_GOING_AWAY, "going away");
    flush(ctx, c);
    return;
  }
  if (c->ws_close_sent) /* the owner closed before the switch */
    set_deadline(ctx, c, TM_LINGER, LINGER_MS);
  ws_process(ctx, c); /* frames that came right after the request */
}

static void ws_backlog_tell(tr_ctx_t *ctx, hconn_t *c, size_t queued,
                            int paused) {
  tr_ws_backlog_t *m = tr_msg_new(&tr_ws_backlog_t__type);
  if (!m) return;
  m->conn = c->self;
  m->queued = queued;
  m->paused = paused;
  c->ws_paused = paused;
  /* without the accepts-check: owners may leave it unhandled */
  if (tr__send_raw(ctx->w, ctx, c->owner, &m->hdr, 0)) tr_msg_free(m);
}

/* After output moved: tells the owner to pause or resume, or closes a
 * WebSocket whose owner writes on regardless. */
static void ws_pace(tr_ctx_t *ctx, hconn_t *c) {
  if (!c->ws || c->ws_told) return;
  size_t backlog = c->out_len - c->out_off + (c->cur ? c->cur_left : 0);
  if (!c->closing && backlog > c->srv->ws_backlog_max) {
    ws_fail(ctx, c, TR_WS_CLOSE_POLICY, "reader too slow");
    flush(ctx, c);
    return;
  }
  if (!c->ws_paused && c->blocked && backlog > c->srv->ws_backlog_max / 8)
    ws_backlog_tell(ctx, c, backlog, 1);
  else if (c->ws_paused && !c->blocked && !backlog)
    ws_backlog_tell(ctx, c, 0, 0);
}

/* Parses the frames in the read buffer. */
static void ws_process(tr_ctx_t *ctx, hconn_t *c) {
  while (!c->closing && c->in_off < c->in_len) {
    tr_ws_event_t ev;
    int64_t k = tr_ws_parser_next(&c->wsp, (uint8_t *)c->in + c->in_off,
                                  c->in_len - c->in_off, &ev);
    if (k < 0) {
      ws_fail(ctx, c, ev.code ? ev.code : TR_WS_CLOSE_PROTOCOL, ev.error);
      break;
    }
    c->in_off += (size_t)k;
    if (ev.kind == TR_WS_EV_NONE) break;
    if (ev.kind == TR_WS_EV_TEXT || ev.kind == TR_WS_EV_BINARY) {
      if (c->ws_close_sent) continue; /* closing: no more deliveries */
      tr_ws_message_t *m = tr__ws_message_new(c->self, &ev);
      if (!m) {
        ws_fail(ctx, c, TR_WS_CLOSE_INTERNAL, "out of memory");
        break;
      }
      if (c->flow) {
        m->flow_ = c->flow;
        m->counted_ = ev.len + 1;
        atomic_fetch_add(&c->flow->refs, 1);
        size_t now = atomic_fetch_add(&c->flow->bytes, m->counted_) +
                     m->counted_;
        if (now > c->flow->max && !c->ws_rx_paused) {
          /* the owner is behind: hold the peer back until it catches up */
          atomic_store(&c->flow->stalled, 1);
          c->ws_rx_paused = 1;
          tr_tcp_pause(ctx, c->id, 1);
          /* it may have caught up meanwhile, and seen nobody to tell */
          if (atomic_load(&c->flow->bytes) <= c->flow->max / 2 &&
              atomic_exchange(&c->flow->stalled, 0)) {
            c->ws_rx_paused = 0;
            tr_tcp_pause(ctx, c->id, 0);
          }
        }
      }
      tr_send(ctx, c->owner, m);
    } else if (ev.kind == TR_WS_EV_PING) {
      if (!c->ws_close_sent) ws_frame(c, TR_WS_OP_PONG, ev.data, ev.len);
    } else if (ev.kind == TR_WS_EV_CLOSE) {
      /* the peer's close: answer it (echoing its code) unless ours went
       * first, and end */
      if (!c->ws_close_sent) {
        uint8_t pl[2];
        ws_frame(c, TR_WS_OP_CLOSE, pl, tr__ws_close_echo(&ev, pl));
        c->ws_close_sent = 1;
      }
      ws_tell(ctx, c, ev.code, 1, ev.data, ev.len);
      c->closing = 1;
    }
  }
  if (c->in_off) {
    memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
    c->in_len -= c->in_off;
    c->in_off = 0;
  }
  flush(ctx, c);
  ws_pace(ctx, c);
}

static int hconn_ws_out(tr_ctx_t *ctx, void *state, void *msg) {
  hconn_t *c = state;
  ws_out_t *m = msg;
  if (c->ws_close_sent || c->closing) return 0;
  if (!c->ws) {
    if (!c->ws_switching) return 0;
    uint8_t *b = realloc(c->pre, c->pre_len + m->len);
    if (!b) return 0;
    memcpy(b + c->pre_len, m->frame, m->len);
    c->pre = b;
    c->pre_len += m->len;
    if (m->close_code) c->ws_close_sent = 1;
    return 0;
  }
  if (out_append(c, m->frame, m->len)) {
    ws_fail(ctx, c, TR_WS_CLOSE_INTERNAL, "out of memory");
  } else if (m->close_code) {
    /* ours first: wait (a little) for the peer's close */
    c->ws_close_sent = 1;
    set_deadline(ctx, c, TM_LINGER, LINGER_MS);
  }
  ws_process(ctx, c);
  return 0;
}

static int hconn_ws_resume(tr_ctx_t *ctx, void *state, void *msg) {
  hconn_t *c = state;
  (void)msg;
  if (c->ws_rx_paused) {
    c->ws_rx_paused = 0;
    tr_tcp_pause(ctx, c->id, 0);
  }
  return 0;
}

static int hconn_down(tr_ctx_t *ctx, void *state, void *msg) {
  hconn_t *c = state;
  tr_down_t *d = msg;
  if (!c->ws && !c->ws_switching) return 0;
  if (!tr_ref_eq(d->ref, c->owner)) return 0;
  c->ws_told = 1; /* nobody to tell */
  if (c->ws) {
    ws_fail(ctx, c, TR_WS_CLOSE_GOING_AWAY, "going away");
    flush(ctx, c);
  } else {
    conn_close_now(ctx, c);
  }
  return 0;
}

static int ws_send_frame(tr_ctx_t *ctx, tr_ref_t conn, int opcode,
                         const void *data, size_t len, int close_code) {
  size_t need = tr_ws_header_size(len, 0) + len;
  ws_out_t *m = tr_msg_new(&tr__ws_out_type);
  if (!m) return TR_ENOMEM;
  m->frame = malloc(need ? need : 1);
  if (!m->frame) {
    tr_msg_free(m);
    return TR_ENOMEM;
  }
  int64_t k = tr_ws_message_write(m->frame, need, opcode, data, len, NULL);
  if (k < 0) {
    tr_msg_free(m);
    return (int)k;
  }
  m->len = (size_t)k;
  m->close_code = close_code;
  return tr_send(ctx, conn, m);
}

int tr_ws_send(tr_ctx_t *ctx, tr_ref_t conn, int opcode, const void *data,
               size_t len) {
  if (opcode != TR_WS_OP_TEXT && opcode != TR_WS_OP_BINARY &&
      opcode != TR_WS_OP_PING)
    return TR_EINVAL;
  if ((len && !data) || (opcode == TR_WS_OP_PING && len > TR_WS_CONTROL_MAX))
    return TR_EINVAL;
  return ws_send_frame(ctx, conn, opcode, data, len, 0);
}

int tr_ws_close(tr_ctx_t *ctx, tr_ref_t conn, int code, const char *reason) {
  size_t rl = reason ? strlen(reason) : 0;
  if (!tr_ws_close_valid((unsigned)code) || rl > TR_WS_REASON_MAX)
    return TR_EINVAL;
  uint8_t pl[2 + TR_WS_REASON_MAX];
  int n = tr_ws_close_build(pl, (unsigned)code, reason, rl);
  if (n < 0) return n;
  return ws_send_frame(ctx, conn, TR_WS_OP_CLOSE, pl, (size_t)n, code);
}

static int hconn_init(tr_ctx_t *ctx, void *state, void *arg) {
  hconn_t *c = state;
  tr_tcp_accepted_t *acc = arg;
  tr_http_server_t *s = acc->arg;
  c->srv = s;
  c->self = tr_ctx_self(ctx);
  c->rt = tr_ctx_runtime(ctx);
  c->fields = malloc(s->lim.fields_max * sizeof(tr_http_field_t));
  if (!c->fields) return TR_ENOMEM;
  int rc = tr_tcp_adopt(ctx, acc, &c->id);
  if (rc) {
    free(c->fields);
    c->fields = NULL;
    return rc;
  }
  tr_tls_t *tls = NULL;
  if (s->tls && tr_tls_new(s->tls, NULL, &tls)) {
    free(c->fields);
    c->fields = NULL;
    tr_tcp_close(ctx, c->id);
    return TR_ENOMEM;
  }
  tr__stream_init(&c->st, c->id, tls);
  tr_http_head_init(&c->head, c->fields, s->lim.fields_max);
  atomic_fetch_add(&s->refs, 1);
  atomic_fetch_add(&s->n_conn, 1);
  atomic_fetch_add(&s->n_open, 1);
  pthread_mutex_lock(&s->mu);
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  int draining = s->draining;
  pthread_mutex_unlock(&s->mu);
  if (draining) {
    conn_close_now(ctx, c);
    return 0;
  }
  set_deadline(ctx, c, TM_HEADER, s->header_timeout);
  return 0;
}

static void hconn_stop(tr_ctx_t *ctx, void *state, int reason) {
  hconn_t *c = state;
  (void)reason;
  tr_http_server_t *s = c->srv;
  if (!s) return;
  if (c->tm_armed) tr_timer_cancel(c->rt, c->tm_id);
  if (c->ws || c->ws_switching) {
    ws_tell(ctx, c, TR_WS_CLOSE_ABNORMAL, 0, NULL, 0);
    tr_ws_parser_fini(&c->wsp);
  }
  free(c->pre);
  flow_unref(c->flow);
  while (c->q_head) {
    pend_t *p = c->q_head;
    c->q_head = p->next;
    tr_msg_free(p->resp);
    free(p);
  }
  tr_msg_free(c->cur);
  tr_msg_free(c->spare);
  free(c->in);
  free(c->out);
  free(c->body);
  free(c->fields);
  tr__stream_fini(&c->st);
  pthread_mutex_lock(&s->mu);
  if (c->prev) c->prev->next = c->next;
  else if (s->conns == c) s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  pthread_mutex_unlock(&s->mu);
  atomic_fetch_sub(&s->n_open, 1);
  server_unref(s);
}

static int hconn_data(tr_ctx_t *ctx, void *state, void *msg) {
  hconn_t *c = state;
  tr_tcp_data_t *d = msg;
  if ((c->stop_reading && !c->ws_switching) || c->closing)
    return 0; /* lingering: discard */
  /* the plaintext joins the read buffer (plain TCP into an empty buffer:
   * the message's bytes are taken, not copied) */
  if (!c->in_len) c->in_off = 0;
  tr__sbuf_t b = {c->in, c->in_len, c->in_cap};
  int rc = tr__stream_recv(ctx, &c->st, d, &b);
  c->in = b.p;
  c->in_len = b.len;
  c->in_cap = b.cap;
  if (rc == TR_ENOMEM) {
    fail_request(c, 503);
    flush(ctx, c);
    return 0;
  }
  if (rc) { /* TLS failed: the alert is on its way */
    conn_close_now(ctx, c);
    return 0;
  }
  if (c->rd == RD_LENGTH || c->rd == RD_CHUNKED)
    set_deadline(ctx, c, TM_BODY, c->srv->body_timeout);
  process(ctx, c);
  return 0;
}

static int hconn_writable(tr_ctx_t *ctx, void *state, void *msg) {
  hconn_t *c = state;
  (void)msg;
  int rc = tr__stream_writable(ctx, &c->st);
  if (rc == 1) return 0; /* TLS records still wait */
  if (rc < 0) {
    conn_close_now(ctx, c);
    return 0;
  }
  c->blocked = 0;
  if (c->tm_kind == TM_WRITE) set_deadline(ctx, c, TM_NONE, 0);
  flush(ctx, c); /* blocked again: the timeout starts over (progress) */
  if (!c->blocked && !c->paused) process(ctx, c);
  return 0;
}

static int hconn_eof(tr_ctx_t *ctx, void *state, void *msg) {
  hconn_t *c = state;
  (void)msg;
  c->peer_eof = 1;
  if (c->ws && !c->closing) {
    /* the peer went without a close frame */
    ws_tell(ctx, c, TR_WS_CLOSE_ABNORMAL, 0, NULL, 0);
    conn_close_now(ctx, c);
    return 0;
  }
  if (c->shut || (!c->q_head && c->out_len == c->out_off && !c->cur)) {
    /* nothing more to answer (a partial request is dropped) */
    conn_close_now(ctx, c);
    return 0;
  }
  /* answer what was asked, then close */
  c->stop_reading = 1;
  if (c->q_tail) c->q_tail->close_after = 1;
  else c->closing = 1;
  flush(ctx, c);
  return 0;
}

static int hconn_closed(tr_ctx_t *ctx, void *state, void *msg) {
  (void)state;
  (void)msg;
  tr_actor_stop(tr_ctx_self(ctx), 0);
  return 0;
}

static int hconn_timer(tr_ctx_t *ctx, void *state, void *msg) {
  hconn_t *c = state;
  tr_timer_fired_t *f = msg;
  if (!c->tm_armed || f->id != c->tm_id) return 0;
  c->tm_armed = 0;
  if (!c->deadline) return 0;
  uint64_t now = now_ms(c);
  if (now < c->deadline) {
    if (tr_timer_start(ctx, (tr_duration_t)(c->deadline - now), TR_FOREVER, 0,
                       &c->tm_id) == 0) {
      c->tm_armed = 1;
      c->tm_at = c->deadline;
    }
    return 0;
  }
  int kind = c->tm_kind;
  c->deadline = 0;
  c->tm_kind = TM_NONE;
  uint64_t flushed = 0;
  if ((kind == TM_IDLE || kind == TM_LINGER || kind == TM_WRITE) &&
      tr__tcp_write_pending(ctx, c->st.id, &flushed) &&
      (flushed != c->wq_flushed || kind != TM_WRITE)) {
    /* a file body is still leaving from the write queue (it went there
     * whole, by tr_tcp_write_map): not idle yet, and the linger starts
     * once it is out; meanwhile the send-progress timeout applies: a
     * peer that takes nothing for body_timeout is dropped */
    c->wq_flushed = flushed;
    set_deadline(ctx, c, TM_WRITE, c->srv->body_timeout);
    c->tm_after_write = kind == TM_WRITE ? c->tm_after_write : kind;
    return 0;
  }
  if (kind == TM_WRITE && !c->blocked &&
      !tr__tcp_write_pending(ctx, c->st.id, &flushed)) {
    /* the queue drained: back to what was waiting */
    int after = c->tm_after_write;
    c->tm_after_write = TM_NONE;
    if (after == TM_LINGER) {
      set_deadline(ctx, c, TM_LINGER, LINGER_MS);
      return 0;
    }
    if (after == TM_IDLE) {
      set_deadline(ctx, c, TM_IDLE, c->srv->idle_timeout);
      return 0;
    }
    flush(ctx, c);
    return 0;
  }
  if ((kind == TM_HEADER || kind == TM_BODY) && !c->q_head &&
      c->out_len == c->out_off && !c->cur) {
    /* a request that did not arrive in time: 408, then close */
    atomic_fetch_add(&c->srv->n_timeout, 1);
    fail_request(c, 408);
    flush(ctx, c);
    if (!c->shut) conn_close_now(ctx, c);
    return 0;
  }
  if (kind != TM_NONE) {
    if (kind != TM_LINGER) atomic_fetch_add(&c->srv->n_timeout, 1);
    conn_close_now(ctx, c);
  }
  return 0;
}

static int hconn_drain(tr_ctx_t *ctx, void *state, void *msg) {
  hconn_t *c = state;
  (void)msg;
  if (c->ws) {
    ws_fail(ctx, c, TR_WS_CLOSE_GOING_AWAY, "server shutting down");
    set_deadline(ctx, c, TM_DRAIN, c->srv->grace);
    flush(ctx, c);
    return 0;
  }
  int mid_request = c->rd != RD_HEAD || c->in_len != c->in_off;
  if (!c->q_head && c->out_len == c->out_off && !c->cur && !mid_request &&
      !tr__tcp_write_pending(ctx, c->st.id, NULL)) {
    conn_close_now(ctx, c);
    return 0;
  }
  /* finish the requests under way (the last response says "Connection:
   * close"), then close; whatever is still open at the grace closes */
  c->draining = 1;
  if (!mid_request) {
    c->stop_reading = 1;
    if (c->q_tail) c->q_tail->close_after = 1;
  }
  set_deadline(ctx, c, TM_DRAIN, c->srv->grace);
  flush(ctx, c);
  return 0;
}

static const tr_handler_t hconn_handlers[] = {
    {&tr_tcp_data_t__type, hconn_data},
    {&tr_tcp_writable_t__type, hconn_writable},
    {&tr_tcp_eof_t__type, hconn_eof},
    {&tr_tcp_closed_t__type, hconn_closed},
    {&tr_timer_fired_t__type, hconn_timer},
    {&drain_type, hconn_drain},
    {&tr__ws_out_type, hconn_ws_out},
    {&ws_resume_type, hconn_ws_resume},
    {&tr_down_t__type, hconn_down},
};

static const tr_behavior_t hconn_behavior = {
    .name = "http_conn",
    .state_size = sizeof(hconn_t),
    .init = hconn_init,
    .on_stop = hconn_stop,
    .handlers = TR_HANDLERS(hconn_handlers),
};

/* ---- Starting and stopping --------------------------------------------------- */

static int copy_routes(tr_http_server_t *s, const tr_http_route_t *r,
                       size_t n) {
  size_t sz = 0;
  for (size_t i = 0; i < n; i++) {
    if (!r[i].path || r[i].path[0] != '/') return TR_EINVAL;
    int ways = (r[i].fn != NULL) + !tr_ref_is_null(r[i].target) +
               (r[i].ws != NULL);
    if (ways != 1) return TR_EINVAL;
    if (r[i].timeout < TR_FOREVER) return TR_EINVAL;
    sz += strlen(r[i].path) + 1 + (r[i].method ? strlen(r[i].method) + 1 : 0);
  }
  s->routes = malloc(n * sizeof(*r));
  s->strings = malloc(sz ? sz : 1);
  if (!s->routes || !s->strings) return TR_ENOMEM;
  char *p = s->strings;
  for (size_t i = 0; i < n; i++) {
    s->routes[i] = r[i];
    size_t l = strlen(r[i].path) + 1;
    memcpy(p, r[i].path, l);
    s->routes[i].path = p;
    p += l;
    if (r[i].method) {
      l = strlen(r[i].method) + 1;
      memcpy(p, r[i].method, l);
      s->routes[i].method = p;
      p += l;
    }
  }
  s->nroutes = n;
  return 0;
}

static tr_duration_t dur_or(tr_duration_t d, tr_duration_t dflt) {
  return d == 0 ? dflt : d;
}

int tr_http_server_start(tr_runtime_t *rt, const tr_http_server_opts_t *o,
                         tr_http_server_t **out) {
  if (!rt || !o || !out || !o->routes || !o->nroutes) return TR_EINVAL;
  tr_http_server_opts_t opts;
  int rc = tr__config_copy(&opts, sizeof(opts), sizeof(opts), o);
  if (rc) return rc;
  if (opts.wbuf_max && opts.wbuf_max < OUT_PIECE)
    return TR_EINVAL; /* responses go out in pieces of OUT_PIECE */
  if (TR__DURATION_BAD(opts.header_timeout) ||
      TR__DURATION_BAD(opts.body_timeout) ||
      TR__DURATION_BAD(opts.idle_timeout))
    return TR_EINVAL;
  tr_http_server_t *s = calloc(1, sizeof(*s));
  if (!s) return TR_ENOMEM;
  pthread_mutex_init(&s->mu, NULL);
  atomic_init(&s->refs, 1);
  s->rt = rt;
  rc = copy_routes(s, opts.routes, opts.nroutes);
  s->server = strdup(opts.server ? opts.server : "troupe");
  if (!rc && !s->server) rc = TR_ENOMEM;
  if (!rc && strpbrk(s->server, "\r\n")) rc = TR_EINVAL;
  if (!rc) s->server_len = strlen(s->server);
  if (rc) {
    server_unref(s);
    return rc;
  }
  tr_http_limits_init(&s->lim);
  s->lim.line_max = opts.line_max ? opts.line_max : TR_HTTP_LINE_MAX;
  s->lim.head_max = opts.head_max ? opts.head_max : DEFAULT_HEAD_MAX;
  s->lim.fields_max = opts.fields_max ? opts.fields_max : DEFAULT_FIELDS_MAX;
  s->body_max = opts.body_max ? opts.body_max : DEFAULT_BODY_MAX;
  s->header_timeout = dur_or(opts.header_timeout, DEFAULT_HEADER_TIMEOUT);
  s->body_timeout = dur_or(opts.body_timeout, DEFAULT_BODY_TIMEOUT);
  s->idle_timeout = dur_or(opts.idle_timeout, DEFAULT_IDLE_TIMEOUT);
  s->pipeline_max = opts.pipeline_max ? opts.pipeline_max : DEFAULT_PIPELINE;
  s->wbuf_max = opts.wbuf_max;
  if (opts.tls) s->tls = tr_tls_config_ref(opts.tls);
  s->ws_message_max = opts.ws_message_max ? opts.ws_message_max
                                          : TR_WS_MESSAGE_MAX;
  s->ws_backlog_max = opts.ws_backlog_max ? opts.ws_backlog_max
                                          : (size_t)4 << 20;
  s->ws_inflight_max = opts.ws_inflight_max ? opts.ws_inflight_max
                                            : (size_t)1 << 20;

  tr_tcp_listen_opts_t lo;
  tr_tcp_listen_opts_init(&lo);
  lo.host = opts.host;
  lo.port = opts.port;
  lo.backlog = opts.backlog;
  lo.conn_behavior = &hconn_behavior;
  lo.conn_arg = s;
  lo.wbuf_max = opts.wbuf_max;
  lo.rbuf_max = opts.rbuf_max;
  rc = tr_tcp_listen(rt, &lo, &s->listener, &s->port);
  if (rc) {
    server_unref(s);
    return rc;
  }
  *out = s;
  return 0;
}

uint16_t tr_http_server_port(const tr_http_server_t *s) {
  return s ? s->port : 0;
}

int tr_http_server_shutdown(tr_http_server_t *s, tr_duration_t grace) {
  if (!s || TR__DURATION_BAD(grace)) return TR_EINVAL;
  pthread_mutex_lock(&s->mu);
  if (s->draining) {
    pthread_mutex_unlock(&s->mu);
    return 0;
  }
  s->draining = 1;
  s->grace = grace == TR_FOREVER ? INT64_MAX / 4 : grace;
  pthread_mutex_unlock(&s->mu);
  tr_actor_stop(s->listener, 0);
  /* the refs are collected under the lock, the sends made outside it */
  size_t n = 0, cap = 0;
  tr_ref_t *refs = NULL;
  pthread_mutex_lock(&s->mu);
  for (hconn_t *c = s->conns; c; c = c->next) n++;
  cap = n;
  refs = cap ? malloc(cap * sizeof(*refs)) : NULL;
  n = 0;
  if (refs)
    for (hconn_t *c = s->conns; c && n < cap; c = c->next) refs[n++] = c->self;
  pthread_mutex_unlock(&s->mu);
  for (size_t i = 0; i < n; i++) {
    drain_msg_t *m = tr_msg_new(&drain_type);
    if (m) tr_send(NULL, refs[i], m);
  }
  free(refs);
  return 0;
}

int tr_http_server_stats(const tr_http_server_t *s,
                         tr_http_server_stats_t *out) {
  if (!s || !out) return TR_EINVAL;
  tr_http_server_t *m = (tr_http_server_t *)s;
  out->connections = atomic_load(&m->n_conn);
  out->open = atomic_load(&m->n_open);
  out->requests = atomic_load(&m->n_req);
  out->errors = atomic_load(&m->n_err);
  out->timeouts = atomic_load(&m->n_timeout);
  return 0;
}

void tr_http_server_free(tr_http_server_t *s) {
  if (!s) return;
  tr_http_server_shutdown(s, 0);
  /* the listener holds s as its connections' argument: wait until it is
   * gone (stopping it takes a moment) so no connection starts after */
  for (int i = 0; i < 5000 && tr_actor_alive(s->listener) > 0; i++) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  server_unref(s);
}
