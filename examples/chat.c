/* SPDX-License-Identifier: MIT */
/*
 * A WebSocket chat room made of actors. Explained in doc/websocket.md.
 *
 *   chat --port N [--host ADDR]
 *
 *   browser / client --ws--> connection actor <--> client actor --post--> room
 *                                                      ^                   |
 *                                                      +--- broadcast -----+
 *
 * One room actor publishes every line into a broadcast channel; one
 * client actor per WebSocket (spawned by the server on upgrade) posts
 * what its user types to the room and forwards the channel's lines to its
 * socket. A client whose socket cannot keep up is paused by its
 * connection (tr_ws_backlog_t): it leaves the channel until the socket
 * has drained, then comes back and tells its user how many lines it
 * missed. A slow reader never stalls the room or the other clients, and
 * never makes the server buffer without bound.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <troupe.h>
#include <troupe/channel.h>
#include <troupe/http_server.h>

/* A line for everyone, as published in the channel (shared, read-only). */
TR_MESSAGE_TYPE(chat_line_t, size_t len; char *text;);
static void line_dtor(void *m) { free(((chat_line_t *)m)->text); }
TR_MESSAGE_DEFINE(chat_line_t, .dtor = line_dtor);

/* A client's words, sent to the room. */
TR_MESSAGE_TYPE(chat_post_t, size_t len; char *text;);
static void post_dtor(void *m) { free(((chat_post_t *)m)->text); }
TR_MESSAGE_DEFINE(chat_post_t, .dtor = post_dtor);

static char *fmt(size_t *len, const char *f, const char *a, size_t an,
                 uint64_t id) {
  size_t cap = an + 64;
  char *s = malloc(cap);
  if (!s) return NULL;
  int n = snprintf(s, cap, f, id, (int)an, a);
  *len = n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
  return s;
}

/* ---- the room --------------------------------------------------------------- */

typedef struct room {
  tr_chan_t *chan;  /* the broadcast every client reads */
  uint64_t lines;
} room_t;

static int room_post(tr_ctx_t *ctx, void *state, void *msg) {
  room_t *r = state;
  chat_post_t *p = msg;
  chat_line_t *l = chat_line_t_new();
  if (!l) return 0;
  l->text = p->text; /* the post's words become the line */
  l->len = p->len;
  p->text = NULL;
  r->lines++;
  /* TR_ENOENT: nobody is listening; the line goes */
  tr_chan_send(ctx, r->chan, l);
  return 0;
}

static int room_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  ((room_t *)state)->chan = arg;
  return 0;
}

static const tr_handler_t room_handlers[] = {{&chat_post_t__type, room_post}};
static const tr_behavior_t room_behavior = {.name = "room",
                                            .state_size = sizeof(room_t),
                                            .init = room_init,
                                            .handlers = TR_HANDLERS(room_handlers)};

/* What every client actor is given. */
typedef struct chat {
  tr_ref_t room;
  tr_chan_t *chan;
  _Atomic uint64_t next_id;
} chat_t;

/* ---- one client ---------------------------------------------------------------- */

typedef struct client {
  chat_t *chat;
  tr_ref_t conn;
  uint64_t id;
  uint64_t next_seq;   /* the channel's next line for us */
  int subscribed;
  int paused;
} client_t;

static void post(tr_ctx_t *ctx, client_t *c, const char *f, const char *a,
                 size_t an) {
  chat_post_t *p = chat_post_t_new();
  if (!p) return;
  p->text = fmt(&p->len, f, a, an, c->id);
  if (!p->text) {
    tr_msg_free(p);
    return;
  }
  tr_send(ctx, c->chat->room, p);
}

static int client_init(tr_ctx_t *ctx, void *state, void *arg) {
  client_t *c = state;
  tr_ws_accepted_t *acc = arg;
  c->chat = acc->arg;
  c->conn = acc->conn;
  c->id = atomic_fetch_add(&c->chat->next_id, 1);
  int rc = tr_chan_subscribe(c->chat->chan, tr_ctx_self(ctx), 0, 0);
  if (rc) return rc;
  c->subscribed = 1;
  c->next_seq = UINT64_MAX; /* set by the first line */
  post(ctx, c, "* user%" PRIu64 " joined%.*s", "", 0);
  return 0;
}

/* A line of the room: to the socket, after news of what was missed. */
static int client_line(tr_ctx_t *ctx, void *state, void *msg) {
  client_t *c = state;
  tr_chan_view_t *v = msg;
  const chat_line_t *l = v->value;
  if (c->paused) return 0; /* in flight when we left: skipped, counted */
  uint64_t missed = v->lagged;
  if (c->next_seq != UINT64_MAX && v->seq > c->next_seq)
    missed = v->seq - c->next_seq; /* we were away */
  c->next_seq = v->seq + 1;
  if (missed) {
    char note[80];
    int n = snprintf(note, sizeof(note), "(you missed %" PRIu64 " messages)",
                     missed);
    tr_ws_send(ctx, c->conn, TR_WS_OP_TEXT, note, (size_t)n);
  }
  tr_ws_send(ctx, c->conn, TR_WS_OP_TEXT, l->text, l->len);
  return 0;
}

/* The user typed something. */
static int client_message(tr_ctx_t *ctx, void *state, void *msg) {
  client_t *c = state;
  tr_ws_message_t *m = msg;
  if (m->opcode != TR_WS_OP_TEXT) return 0;
  post(ctx, c, "user%" PRIu64 ": %.*s", (const char *)m->data, m->len);
  return 0;
}

/* The socket is backed up: leave the channel until it has drained. */
static int client_backlog(tr_ctx_t *ctx, void *state, void *msg) {
  client_t *c = state;
  tr_ws_backlog_t *b = msg;
  if (b->paused && c->subscribed) {
    tr_chan_unsubscribe(c->chat->chan, tr_ctx_self(ctx));
    c->subscribed = 0;
    c->paused = 1;
  } else if (!b->paused && !c->subscribed) {
    c->paused = 0;
    if (tr_chan_subscribe(c->chat->chan, tr_ctx_self(ctx), 0, 0) == 0)
      c->subscribed = 1;
  }
  return 0;
}

static int client_closed(tr_ctx_t *ctx, void *state, void *msg) {
  client_t *c = state;
  (void)msg;
  post(ctx, c, "* user%" PRIu64 " left%.*s", "", 0);
  tr_actor_stop(tr_ctx_self(ctx), 0); /* unsubscribes */
  return 0;
}

static const tr_handler_t client_handlers[] = {
    {&tr_chan_view_t__type, client_line},
    {&tr_ws_message_t__type, client_message},
    {&tr_ws_backlog_t__type, client_backlog},
    {&tr_ws_closed_t__type, client_closed},
};
static const tr_behavior_t client_behavior = {
    .name = "chat_client",
    .state_size = sizeof(client_t),
    .init = client_init,
    .handlers = TR_HANDLERS(client_handlers)};

/* ---- main ------------------------------------------------------------------------ */

static const char page[] =
    "<!doctype html><title>chat</title><pre id=log></pre>"
    "<input id=in autofocus><script>"
    "var w=new WebSocket('ws://'+location.host+'/chat');"
    "w.onmessage=function(e){log.textContent+=e.data+'\\n'};"
    "document.getElementById('in').onkeydown=function(e){"
    "if(e.key=='Enter'){w.send(this.value);this.value=''}}</script>";

static int index_page(tr_ctx_t *ctx, const tr_http_req_t *req,
                      tr_http_response_t *resp, void *arg) {
  (void)ctx;
  (void)req;
  (void)arg;
  tr_http_response_header(resp, "Content-Type", "text/html; charset=utf-8");
  return tr_http_response_body(resp, page, sizeof(page) - 1);
}

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  long port = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--port")) port = strtol(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--host")) host = argv[i + 1];
  }
  if (port < 0 || port > 65535 || argc % 2 == 0) {
    fprintf(stderr, "usage: chat --port N [--host ADDR]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  tr_runtime_t *rt;
  if (tr_runtime_new(NULL, &rt) || tr_runtime_start(rt)) return 1;
  static chat_t chat;
  /* 256 lines kept for laggards: a client further behind is told */
  if (tr_chan_broadcast_new(rt, 256, &chat.chan) ||
      tr_spawn(rt, &room_behavior, chat.chan, &chat.room))
    return 1;
  tr_http_route_t routes[] = {
      {.method = "GET", .path = "/chat", .ws = &client_behavior, .arg = &chat},
      {.method = "GET", .path = "/", .fn = index_page},
  };
  tr_http_server_opts_t o;
  tr_http_server_opts_init(&o);
  o.host = host;
  o.port = (uint16_t)port;
  o.routes = routes;
  o.nroutes = 2;
  o.ws_message_max = 64 << 10;
  o.wbuf_max = 256 << 10; /* a client may lag by this much in TCP's queue */
  tr_http_server_t *srv;
  int rc = tr_http_server_start(rt, &o, &srv);
  if (rc) {
    fprintf(stderr, "chat: %s\n", tr_strerror(rc));
    return 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  printf("listening on %s:%u\n", host, tr_http_server_port(srv));
  fflush(stdout);
  while (!stop_flag) pause();
  tr_http_server_shutdown(srv, 2000);
  tr_runtime_shutdown(rt, 5000);
  tr_http_server_free(srv);
  tr_chan_free(chat.chan);
  tr_runtime_free(rt);
  return 0;
}
