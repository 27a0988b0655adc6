/* SPDX-License-Identifier: MIT */
/*
 * The WebSocket client (<troupe/ws_client.h>): one actor per connection,
 * spawned by tr_ws_connect for the calling actor (the owner). It resolves
 * the host if it is a name, connects, runs TLS when the URL says wss,
 * sends the opening handshake with a random key and checks the server's
 * answer (101, Upgrade, Connection, Sec-WebSocket-Accept), then parses
 * the server's frames with the codec in client role and delivers whole
 * messages to the owner. What the owner sends arrives framed as a server
 * frames it (ws_conn.h); it is framed again here with a mask.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include <troupe.h>
#include <troupe/ws_client.h>

#include "internal.h"
#include "proto.h"
#include "stream.h"
#include "ws_conn.h"

#define DEFAULT_TIMEOUT 10000
#define LINGER_MS 2000
#define PIECE 65536

TR_MESSAGE_DEFINE(tr_ws_open_t, .flags = TR_MSG_SYSTEM);

enum { S_RESOLVE, S_CONNECT, S_HANDSHAKE, S_OPEN, S_CLOSING };

typedef struct wsc_args {
  tr_ref_t owner;
  char *host, *target;
  uint16_t port;
  int tls;
  tr_tls_config_t *tlscfg;  /* a reference for the connection */
  tr_duration_t timeout;
  uint64_t message_max;
} wsc_args_t;

typedef struct wsc {
  wsc_args_t a;
  tr_ref_t self;
  tr_runtime_t *rt;
  int state;
  tr_tcp_id_t id;
  int have_conn;
  tr__stream_t st;
  int have_stream;
  tr__sbuf_t in;
  char *out;                 /* bytes to write, out[off, len) */
  size_t out_len, out_off, out_cap;
  int blocked;
  char *pre;                 /* frames sent before the open, masked */
  size_t pre_len, pre_off, pre_cap;
  char key[TR_WS_KEY_SIZE];
  tr_ws_parser_t wsp;
  int parser_ready;
  int told_open, told_closed, close_sent, closing, shut;
  tr_timer_id_t tm;
  int tm_armed;
  tr_http_head_t head;       /* the server's answer, parsed as it comes */
  tr_http_field_t fields[64];
} wsc_t;

static int out_add(wsc_t *w, const void *p, size_t n) {
  if (w->out_off == w->out_len) w->out_off = w->out_len = 0;
  if (tr__grow(&w->out, &w->out_cap, w->out_len + n)) return TR_ENOMEM;
  memcpy(w->out + w->out_len, p, n);
  w->out_len += n;
  return 0;
}

/* Sends what waits; after the last frame, half-closes. */
static void flush(tr_ctx_t *ctx, wsc_t *w) {
  while (!w->blocked && w->out_off < w->out_len) {
    size_t n = w->out_len - w->out_off;
    if (n > PIECE) n = PIECE;
    int rc = tr__stream_write(ctx, &w->st, w->out + w->out_off, n);
    if (rc == TR_EAGAIN) {
      w->blocked = 1;
      return;
    }
    if (rc) {
      tr_tcp_close(ctx, w->id);
      return;
    }
    w->out_off += n;
  }
  if (w->closing && !w->blocked && w->out_off == w->out_len && !w->shut) {
    w->shut = 1;
    tr__stream_shutdown(ctx, &w->st);
  }
}

static void arm(tr_ctx_t *ctx, wsc_t *w, tr_duration_t ms) {
  if (w->tm_armed) tr_timer_cancel(w->rt, w->tm);
  w->tm_armed = tr_timer_start(ctx, ms, TR_FOREVER, 0, &w->tm) == 0;
}

static void tell_open(tr_ctx_t *ctx, wsc_t *w, int status, int http) {
  if (w->told_open) return;
  w->told_open = 1;
  if (status) w->told_closed = 1; /* a failed open is the last word */
  tr_ws_open_t *m = tr_msg_new(&tr_ws_open_t__type);
  if (!m) return;
  m->conn = w->self;
  m->status = status;
  m->http_status = http;
  if (tr__send_raw(ctx->w, ctx, w->a.owner, &m->hdr, 0)) tr_msg_free(m);
}

static void tell_closed(tr_ctx_t *ctx, wsc_t *w, int code, int clean,
                        const uint8_t *reason, size_t rl) {
  if (w->told_closed || !w->told_open) return;
  w->told_closed = 1;
  tr_ws_closed_t *m = tr__ws_closed_new(w->self, code, clean, reason, rl);
  if (m && tr__send_raw(ctx->w, ctx, w->a.owner, &m->hdr, 0)) tr_msg_free(m);
}

/* The connection failed before it opened. */
static void fail(tr_ctx_t *ctx, wsc_t *w, int status, int http) {
  tell_open(ctx, w, status, http);
  if (w->have_conn) tr_tcp_close(ctx, w->id);
  else tr_actor_stop(w->self, 0);
}

/* Frames a payload as a client must: masked with a fresh key. */
static int frame_out(wsc_t *w, int opcode, const void *p, size_t n) {
  return tr__ws_frame_put(&w->out, &w->out_len, &w->out_off, &w->out_cap,
                          opcode, p, n, 1);
}

static void ws_close_with(tr_ctx_t *ctx, wsc_t *w, int code, const char *why) {
  if (!w->close_sent) {
    uint8_t pl[2 + TR_WS_REASON_MAX];
    int n = tr__ws_close_payload(pl, code, why);
    if (n >= 0) frame_out(w, TR_WS_OP_CLOSE, pl, (size_t)n);
    w->close_sent = 1;
  }
  tell_closed(ctx, w, code, 0, (const uint8_t *)why, why ? strlen(why) : 0);
  w->closing = 1;
  w->state = S_CLOSING;
  arm(ctx, w, LINGER_MS);
  flush(ctx, w);
}

static void deliver(tr_ctx_t *ctx, wsc_t *w, const tr_ws_event_t *ev) {
  tr_ws_message_t *m = tr__ws_message_new(w->self, ev);
  if (!m) {
    ws_close_with(ctx, w, TR_WS_CLOSE_INTERNAL, "out of memory");
    return;
  }
  tr_send(ctx, w->a.owner, m);
}

/* Frames from the server. */
static void ws_input(tr_ctx_t *ctx, wsc_t *w) {
  size_t off = 0;
  while (w->state == S_OPEN && off < w->in.len) {
    tr_ws_event_t ev;
    int64_t k = tr_ws_parser_next(&w->wsp, (uint8_t *)w->in.p + off,
                                  w->in.len - off, &ev);
    if (k < 0) {
      ws_close_with(ctx, w, ev.code ? ev.code : TR_WS_CLOSE_PROTOCOL,
                    ev.error);
      break;
    }
    off += (size_t)k;
    if (ev.kind == TR_WS_EV_NONE) break;
    if (ev.kind == TR_WS_EV_TEXT || ev.kind == TR_WS_EV_BINARY) {
      if (!w->close_sent) deliver(ctx, w, &ev);
    } else if (ev.kind == TR_WS_EV_PING) {
      if (!w->close_sent) frame_out(w, TR_WS_OP_PONG, ev.data, ev.len);
    } else if (ev.kind == TR_WS_EV_CLOSE) {
      if (!w->close_sent) {
        uint8_t pl[2];
        frame_out(w, TR_WS_OP_CLOSE, pl, tr__ws_close_echo(&ev, pl));
        w->close_sent = 1;
      }
      tell_closed(ctx, w, ev.code, 1, ev.data, ev.len);
      w->closing = 1;
      w->state = S_CLOSING;
      arm(ctx, w, LINGER_MS);
    }
  }
  if (w->state != S_OPEN) off = w->in.len; /* closing: the rest goes */
  memmove(w->in.p, w->in.p + off, w->in.len - off);
  w->in.len -= off;
  flush(ctx, w);
}



/* The server's answer to the opening handshake. */
static void handshake_input(tr_ctx_t *ctx, wsc_t *w) {
  tr_http_head_t *hp = &w->head;
  int n = tr_http_response_parse(hp, w->in.p, w->in.len, NULL, 0);
  if (n == 0) return;
  if (n < 0) {
    fail(ctx, w, TR_EPROTO, 0);
    return;
  }
  const tr_http_field_t *up = tr_http_head_field(hp, "upgrade");
  const tr_http_field_t *cn = tr_http_head_field(hp, "connection");
  const tr_http_field_t *ac = tr_http_head_field(hp, "sec-websocket-accept");
  if (hp->status != 101 || !up || !tr__list_has(up->value, "websocket") || !cn ||
      !tr__list_has(cn->value, "upgrade") || !ac ||
      tr_ws_accept_check(w->key, strlen(w->key), ac->value.p, ac->value.n)) {
    fail(ctx, w, TR_EPROTO, hp->status);
    return;
  }
  tr_ws_parser_opts_t po;
  tr_ws_parser_opts_init(&po);
  po.role = TR_WS_CLIENT;
  po.max_message = w->a.message_max;
  po.alloc = tr__ws_realloc;
  if (tr_ws_parser_init(&w->wsp, &po)) {
    fail(ctx, w, TR_ENOMEM, 0);
    return;
  }
  w->parser_ready = 1;
  memmove(w->in.p, w->in.p + n, w->in.len - (size_t)n);
  w->in.len -= (size_t)n;
  w->state = S_OPEN;
  if (w->tm_armed) tr_timer_cancel(w->rt, w->tm);
  w->tm_armed = 0;
  tell_open(ctx, w, 0, 101);
  if (w->close_sent) arm(ctx, w, LINGER_MS); /* closed before the open */
  if (w->pre_len && out_add(w, w->pre, w->pre_len)) {
    ws_close_with(ctx, w, TR_WS_CLOSE_INTERNAL, "out of memory");
    return;
  }
  free(w->pre);
  w->pre = NULL;
  w->pre_len = 0;
  ws_input(ctx, w); /* frames that came with the answer */
}


static void start_connect(tr_ctx_t *ctx, wsc_t *w, const char *addr) {
  w->state = S_CONNECT;
  int rc = tr_tcp_connect(ctx, addr, w->a.port, w->a.timeout, 0, &w->id);
  if (rc) {
    fail(ctx, w, rc, 0);
    return;
  }
  w->have_conn = 1;
}

static int wsc_init(tr_ctx_t *ctx, void *state, void *arg) {
  wsc_t *w = state;
  w->a = *(wsc_args_t *)arg;
  w->self = tr_ctx_self(ctx);
  w->rt = tr_ctx_runtime(ctx);
  tr_http_head_init(&w->head, w->fields, 64);
  uint8_t rnd[16];
  if (RAND_bytes(rnd, sizeof(rnd)) != 1 || tr_ws_key_build(rnd, w->key) < 0) {
    w->a.host = w->a.target = NULL; /* still tr_ws_connect's to free */
    w->a.tlscfg = NULL;
    w->told_open = w->told_closed = 1;
    return TR_EIO;
  }
  uint64_t mon;
  tr_monitor(ctx, w->a.owner, &mon); /* an owner that stops closes us */
  arm(ctx, w, w->a.timeout);
  if (tr__is_ip(w->a.host)) {
    start_connect(ctx, w, w->a.host);
  } else {
    w->state = S_RESOLVE;
    int rc = tr_resolve(ctx, w->a.host, AF_UNSPEC, 0);
    if (rc) {
      w->a.host = w->a.target = NULL;
      w->a.tlscfg = NULL;
      w->told_open = w->told_closed = 1;
      if (w->tm_armed) tr_timer_cancel(w->rt, w->tm);
      w->tm_armed = 0;
      return rc;
    }
  }
  return 0;
}

static void wsc_stop(tr_ctx_t *ctx, void *state, int reason) {
  wsc_t *w = state;
  (void)reason;
  tell_open(ctx, w, TR_ECANCELED, 0);
  tell_closed(ctx, w, TR_WS_CLOSE_ABNORMAL, 0, NULL, 0);
  if (w->tm_armed) tr_timer_cancel(w->rt, w->tm);
  if (w->parser_ready) tr_ws_parser_fini(&w->wsp);
  if (w->have_stream) tr__stream_fini(&w->st);
  tr_tls_config_free(w->a.tlscfg);
  free(w->a.host);
  free(w->a.target);
  free(w->in.p);
  free(w->out);
  free(w->pre);
}

static int wsc_resolved(tr_ctx_t *ctx, void *state, void *msg) {
  wsc_t *w = state;
  tr_resolved_t *r = msg;
  if (w->state != S_RESOLVE) return 0;
  if (r->status || !r->naddrs) {
    fail(ctx, w, r->status ? r->status : TR_ENOENT, 0);
    return 0;
  }
  start_connect(ctx, w, r->addrs[0].host);
  return 0;
}

static int wsc_connected(tr_ctx_t *ctx, void *state, void *msg) {
  wsc_t *w = state;
  tr_tcp_connected_t *m = msg;
  if (m->status) {
    w->have_conn = 0; /* dead: no tr_tcp_closed_t follows */
    fail(ctx, w, m->status, 0);
    return 0;
  }
  tr_tls_t *tls = NULL;
  if (w->a.tls && tr_tls_new(w->a.tlscfg, w->a.host, &tls)) {
    fail(ctx, w, TR_ENOMEM, 0);
    return 0;
  }
  tr__stream_init(&w->st, w->id, tls);
  w->have_stream = 1;
  w->state = S_HANDSHAKE;
  char req[1024];
  int v6 = strchr(w->a.host, ':') != NULL;
  int n = snprintf(req, sizeof(req),
                   "GET %s HTTP/1.1\r\nHost: %s%s%s:%u\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                   "User-Agent: troupe\r\n\r\n",
                   w->a.target, v6 ? "[" : "", w->a.host, v6 ? "]" : "",
                   w->a.port, w->key);
  if (n < 0 || (size_t)n >= sizeof(req) || out_add(w, req, (size_t)n)) {
    fail(ctx, w, TR_EINVAL, 0);
    return 0;
  }
  flush(ctx, w);
  return 0;
}

static int wsc_data(tr_ctx_t *ctx, void *state, void *msg) {
  wsc_t *w = state;
  tr_tcp_data_t *d = msg;
  if (!w->have_stream) return 0;
  int rc = tr__stream_recv(ctx, &w->st, d, &w->in);
  if (rc) {
    if (w->state == S_HANDSHAKE) fail(ctx, w, rc, 0);
    else tr_tcp_close(ctx, w->id);
    return 0;
  }
  if (w->state == S_HANDSHAKE) handshake_input(ctx, w);
  else if (w->state == S_OPEN) ws_input(ctx, w);
  else w->in.len = 0; /* closing: discarded */
  flush(ctx, w);
  return 0;
}

static int wsc_writable(tr_ctx_t *ctx, void *state, void *msg) {
  wsc_t *w = state;
  (void)msg;
  int rc = tr__stream_writable(ctx, &w->st);
  if (rc == 1) return 0;
  w->blocked = 0;
  flush(ctx, w);
  return 0;
}

static int wsc_eof(tr_ctx_t *ctx, void *state, void *msg) {
  wsc_t *w = state;
  (void)msg;
  if (w->state == S_HANDSHAKE) {
    fail(ctx, w, TR_ECONNRESET, 0);
    return 0;
  }
  tell_closed(ctx, w, TR_WS_CLOSE_ABNORMAL, 0, NULL, 0);
  tr_tcp_close(ctx, w->id);
  return 0;
}

static int wsc_closed(tr_ctx_t *ctx, void *state, void *msg) {
  wsc_t *w = state;
  tr_tcp_closed_t *m = msg;
  w->have_conn = 0;
  tell_open(ctx, w, m->status ? m->status : TR_ECONNRESET, 0);
  tell_closed(ctx, w, TR_WS_CLOSE_ABNORMAL, 0, NULL, 0);
  tr_actor_stop(w->self, 0);
  return 0;
}

static int wsc_timer(tr_ctx_t *ctx, void *state, void *msg) {
  wsc_t *w = state;
  tr_timer_fired_t *f = msg;
  if (!w->tm_armed || f->id != w->tm) return 0;
  w->tm_armed = 0;
  if (w->state == S_CLOSING || w->close_sent) {
    if (w->have_conn) tr_tcp_close(ctx, w->id);
    else tr_actor_stop(w->self, 0);
  } else if (w->state != S_OPEN) {
    fail(ctx, w, TR_ETIMEDOUT, 0);
  }
  return 0;
}

/* A frame from the owner (tr_ws_send, tr_ws_close): unmasked, as a
 * server frames it; masked again here. */
static int wsc_out(tr_ctx_t *ctx, void *state, void *msg) {
  wsc_t *w = state;
  ws_out_t *m = msg;
  if (w->close_sent || w->closing) return 0;
  tr_ws_frame_t f;
  int hl = tr_ws_frame_parse(&f, m->frame, m->len, TR_WS_CLIENT);
  if (hl <= 0 || (size_t)hl + f.len != m->len) return 0;
  if (w->state != S_OPEN) {
    /* before the open: kept, and sent once the server has answered */
    if (tr__ws_frame_put(&w->pre, &w->pre_len, &w->pre_off, &w->pre_cap,
                         f.opcode, m->frame + hl, (size_t)f.len, 1) == 0 &&
        m->close_code)
      w->close_sent = 1;
    return 0;
  }
  if (frame_out(w, f.opcode, m->frame + hl, (size_t)f.len)) {
    ws_close_with(ctx, w, TR_WS_CLOSE_INTERNAL, "out of memory");
    return 0;
  }
  if (m->close_code) {
    w->close_sent = 1; /* the server's close ends it */
    arm(ctx, w, LINGER_MS);
    /* reading goes on: the server's close frame ends it cleanly, or
     * the linger timer does */
  }
  flush(ctx, w);
  return 0;
}

static int wsc_down(tr_ctx_t *ctx, void *state, void *msg) {
  wsc_t *w = state;
  tr_down_t *d = msg;
  if (!tr_ref_eq(d->ref, w->a.owner)) return 0;
  w->told_open = w->told_closed = 1; /* nobody to tell */
  if (w->state == S_OPEN) ws_close_with(ctx, w, TR_WS_CLOSE_GOING_AWAY, "");
  else if (w->have_conn) tr_tcp_close(ctx, w->id);
  else tr_actor_stop(w->self, 0);
  return 0;
}

static const tr_handler_t wsc_handlers[] = {
    {&tr_resolved_t__type, wsc_resolved},
    {&tr_tcp_connected_t__type, wsc_connected},
    {&tr_tcp_data_t__type, wsc_data},
    {&tr_tcp_writable_t__type, wsc_writable},
    {&tr_tcp_eof_t__type, wsc_eof},
    {&tr_tcp_closed_t__type, wsc_closed},
    {&tr_timer_fired_t__type, wsc_timer},
    {&tr__ws_out_type, wsc_out},
    {&tr_down_t__type, wsc_down},
};

static const tr_behavior_t wsc_behavior = {
    .name = "ws_client",
    .state_size = sizeof(wsc_t),
    .init = wsc_init,
    .on_stop = wsc_stop,
    .handlers = TR_HANDLERS(wsc_handlers),
};

int tr_ws_connect(tr_ctx_t *ctx, const char *url, const tr_ws_connect_opts_t *o,
                  tr_ref_t *conn) {
  if (!ctx || !url || !conn) return TR_EINVAL;
  tr_ws_connect_opts_t opts;
  tr_ws_connect_opts_init(&opts);
  if (o) {
    int rc = tr__config_copy(&opts, sizeof(opts), sizeof(opts), o);
    if (rc) return rc;
  }
  if (TR__DURATION_BAD(opts.timeout)) return TR_EINVAL;
  /* ws:// and wss:// are http:// and https:// to the URL parser */
  size_t ul = strlen(url);
  char *u = malloc(ul + 3);
  if (!u) return TR_ENOMEM;
  if (!strncasecmp(url, "ws://", 5)) {
    snprintf(u, ul + 3, "http://%s", url + 5);
  } else if (!strncasecmp(url, "wss://", 6)) {
    snprintf(u, ul + 3, "https://%s", url + 6);
  } else {
    free(u);
    return TR_EINVAL;
  }
  wsc_args_t a;
  memset(&a, 0, sizeof(a));
  a.owner = tr_ctx_self(ctx);
  int rc = tr__http_url_parse(u, &a.host, &a.port, &a.target, &a.tls);
  free(u);
  if (rc) return rc;
  a.timeout = opts.timeout ? opts.timeout : DEFAULT_TIMEOUT;
  if (a.timeout == TR_FOREVER) a.timeout = INT64_MAX / 4;
  a.message_max = opts.message_max ? opts.message_max : TR_WS_MESSAGE_MAX;
  if (a.tls) {
    if (opts.tls) {
      a.tlscfg = tr_tls_config_ref(opts.tls);
    } else {
      tr_tls_client_opts_t to;
      tr_tls_client_opts_init(&to);
      rc = tr_tls_client_config_new(&to, &a.tlscfg, NULL, 0);
      if (rc) {
        free(a.host);
        free(a.target);
        return rc;
      }
    }
  }
  rc = tr_spawn(tr_ctx_runtime(ctx), &wsc_behavior, &a, conn);
  if (rc) { /* init did not run, or failed before it took the args */
    tr_tls_config_free(a.tlscfg);
    free(a.host);
    free(a.target);
  }
  return rc;
}
