/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/1.1 server: a listener actor and one connection actor per
 * socket, driving the strict codec of <troupe/http.h>. A connection keeps
 * alive, answers pipelined requests in order, reads chunked and
 * fixed-length bodies, answers "Expect: 100-continue", HEAD and HTTP/1.0,
 * and refuses bad input with the status the codec gives (400, 408, 413,
 * 414, 431, 501, 505) and a closed connection.
 *
 * A route is served one of two ways:
 *  - in the connection actor (the fast path): a function fills the
 *    response while the request's bytes are still in the read buffer;
 *  - by any other actor: the connection asks it with a tr_http_request_t
 *    and the tr_http_response_t it replies with becomes the response.
 *    That is how an actor graph serves HTTP.
 * See doc/http.md.
 */
#ifndef TROUPE_HTTP_SERVER_H
#define TROUPE_HTTP_SERVER_H

#include <troupe/http.h>
#include <troupe/net.h>
#include <troupe/tls.h>
#include <troupe/ws.h>

TR_BEGIN_DECLS

/* A request, as views: into the connection's read buffer on the fast
 * path (valid during the call), into the message's own memory when it
 * travels as a tr_http_request_t (valid while the message is). */
typedef struct tr_http_req {
  tr_http_str_t method;   /* "GET" */
  tr_http_str_t target;   /* "/a/b?x=1", as sent */
  tr_http_str_t path;     /* "/a/b": the target up to '?' */
  tr_http_str_t query;    /* "x=1": after '?' (empty if none) */
  int version;            /* 10 or 11 */
  const tr_http_field_t *fields;
  unsigned nfields;
  tr_http_str_t body;     /* the whole body, de-chunked */
  unsigned keep_alive : 1; /* the connection stays open after it */
  unsigned head : 1;       /* a HEAD request: the response's body is not
                              sent (its length is) */
} tr_http_req_t;

/* A request asked of a route's target actor. The asker is the connection
 * actor: answer with tr_reply (or later with tr_reply_to after
 * tr_ctx_take) and a tr_http_response_t. A request freed unanswered makes
 * the connection answer 502; one unanswered after the route's timeout,
 * 504. */
TR_IO_MESSAGE(tr_http_request_t, tr_http_req_t req; void *mem_;)

/* A response: status, extra header fields, body. Make it with
 * tr_http_response_new; the setters below fill it. The server adds Date,
 * Server, Content-Length and Connection itself. */
TR_IO_MESSAGE(tr_http_response_t, int status; char *fields_;
              size_t fields_len_; size_t fields_cap_; uint8_t *body_;
              size_t body_len_; size_t body_cap_; void *file_;
              uint64_t file_off_; uint64_t file_len_;)

/* A new response with the given status (100..999; 0 is taken as 200), no
 * fields, empty body. NULL when out of memory or status is out of
 * range. */
TR_EXTERN tr_http_response_t *tr_http_response_new(int status);

/* Adds a header field. Returns 0, TR_EINVAL (name not a token; value
 * with CR, LF or another control character but HTAB: a response cannot
 * be split; or one of the fields the server sets: Content-Length,
 * Transfer-Encoding, Connection, Date), TR_ENOMEM. */
TR_EXTERN int tr_http_response_header(tr_http_response_t *r, const char *name,
                                      const char *value);

/* Appends n bytes to the body (copied). Returns 0, TR_EINVAL (a file
 * body set), TR_ENOMEM. */
TR_EXTERN int tr_http_response_body(tr_http_response_t *r, const void *p,
                                    size_t n);

/* Makes the body the bytes [off, off + len) of the file at path, sent
 * from a read-only mapping without copying them into the response
 * (len UINT64_MAX: to the end of the file). Returns 0, TR_EINVAL (a body
 * already appended, a range past the end), or the error of opening or
 * mapping it (-ENOENT, -EACCES, TR_EISDIR...). */
TR_EXTERN int tr_http_response_file(tr_http_response_t *r, const char *path,
                                    uint64_t off, uint64_t len);

/* Makes the body the bytes [off, off + len) of a mapping the caller
 * keeps (tr_file_map, <troupe/io.h>): the response takes a reference of
 * its own, so a program can map its static files once and serve them
 * from every connection (len UINT64_MAX: to the end). Returns 0,
 * TR_EINVAL (a body already set, a range past the end). */
TR_EXTERN int tr_http_response_map(tr_http_response_t *r, tr_file_map_t *m,
                                   uint64_t off, uint64_t len);

/* A fast-path route: fills resp (status 200, no fields, empty body when
 * called) for req, inside the connection actor. It must not block. A
 * negative return answers 500. */
typedef int (*tr_http_handler_fn)(tr_ctx_t *ctx, const tr_http_req_t *req,
                                  tr_http_response_t *resp, void *arg);

/* One route. A request is matched against the routes in order: method
 * (NULL matches any; a route for GET also serves HEAD) and path (exact,
 * or a prefix when prefix is nonzero). No path match: 404; a path match
 * with no method match: 405. Set one of fn (with arg), target, or ws
 * (a WebSocket endpoint, with arg: see below). */
typedef struct tr_http_route {
  const char *method;
  const char *path;
  int prefix;
  tr_http_handler_fn fn;
  void *arg;
  tr_ref_t target;       /* asked with a tr_http_request_t */
  tr_duration_t timeout; /* the target's time to reply: 0 = 30 s;
                            TR_FOREVER: no limit; after it, 504 */
  const tr_behavior_t *ws; /* a WebSocket endpoint: the actor spawned
                              for each connection that upgrades */
} tr_http_route_t;

typedef struct tr_http_server_opts {
  size_t size;           /* tr_http_server_opts_init */
  const char *host;      /* numeric address; NULL: "127.0.0.1" */
  uint16_t port;         /* 0: any free port (tr_http_server_port) */
  int backlog;           /* 0: SOMAXCONN */
  const tr_http_route_t *routes;
  size_t nroutes;
  size_t line_max;       /* request line: 0 = TR_HTTP_LINE_MAX (414) */
  size_t head_max;       /* head: 0 = 16 KiB (431) */
  unsigned fields_max;   /* header fields: 0 = 64 (431) */
  uint64_t body_max;     /* request body: 0 = 1 MiB (413) */
  tr_duration_t header_timeout; /* a request's head, from its first byte
                                   (or the connection's start): 0 = 10 s;
                                   after it 408 and close */
  tr_duration_t body_timeout;   /* between two reads of a body: 0 = 30 s */
  tr_duration_t idle_timeout;   /* keep-alive with nothing to do: 0 = 60 s;
                                   then the connection closes */
  unsigned pipeline_max; /* requests read ahead of their responses: 0 = 16;
                            beyond that the connection stops reading */
  const char *server;    /* the Server field; NULL: "troupe" */
  size_t wbuf_max;       /* per connection, as tr_tcp_listen_opts_t
                            (at least 64 KiB: responses go out in pieces
                            of that size) */
  size_t rbuf_max;
  uint64_t ws_message_max; /* WebSocket message: 0 = 1 MiB (1009) */
  size_t ws_backlog_max; /* WebSocket output not yet sent: 0 = 4 MiB;
                            over it, close with 1008 */
  size_t ws_inflight_max; /* bytes of tr_ws_message_t delivered to the
                             owner and not yet freed before the
                             connection stops reading: 0 = 1 MiB */
  tr_tls_config_t *tls;  /* HTTPS (and wss): a server configuration of
                            <troupe/tls.h>; the server takes a reference.
                            NULL: plain TCP */
} tr_http_server_opts_t;

static inline void tr_http_server_opts_init(tr_http_server_opts_t *o) {
  TR_CONFIG_SIZE_INIT(o);
}

typedef struct tr_http_server tr_http_server_t;

/* ---- WebSocket (RFC 6455) ----------------------------------------------------
 * A route with ws set upgrades a valid opening handshake (GET, HTTP/1.1,
 * "Upgrade: websocket", "Connection: upgrade", a valid
 * Sec-WebSocket-Key, Sec-WebSocket-Version 13; otherwise 400, or 426
 * for another version) to a WebSocket. The connection actor answers 101,
 * spawns one actor of behaviour ws for the connection (its owner: init
 * gets a tr_ws_accepted_t), and from then on speaks WebSocket: it
 * reassembles messages, checks UTF-8 (1007), answers pings, enforces
 * the protocol (1002) and ws_message_max (1009), and delivers each whole
 * message to the owner as a tr_ws_message_t. The owner writes with
 * tr_ws_send and closes with tr_ws_close; when the WebSocket ends, for
 * whatever reason, the owner gets one tr_ws_closed_t. An owner that stops
 * closes its connection (1001). Its handlers must accept
 * tr_ws_message_t and tr_ws_closed_t (tr_ws_backlog_t is sent without
 * the accepts-check and may be left unhandled). */

/* The argument of the owner's init. conn is the connection actor, for
 * tr_ws_send; req is the upgrade request (valid during init only). */
typedef struct tr_ws_accepted {
  tr_ref_t conn;
  void *arg;                 /* tr_http_route_t.arg */
  const tr_http_req_t *req;
} tr_ws_accepted_t;

/* A whole message: opcode TR_WS_OP_TEXT (valid UTF-8) or
 * TR_WS_OP_BINARY (<troupe/ws.h>); data (len bytes, malloc'ed, NUL after
 * the last byte) belongs to the message unless the handler takes it by
 * setting data to NULL (then free() it). Flow control: the bytes of the
 * messages delivered and not yet freed count against the connection's
 * ws_inflight_max; past it the connection stops reading from its peer
 * until the owner has caught up (to half), so an owner slower than its
 * peer holds its peer back instead of growing its mailbox. The fields
 * ending in _ are the runtime's. */
TR_IO_MESSAGE(tr_ws_message_t, tr_ref_t conn; int opcode; size_t len;
              uint8_t *data; void *flow_; size_t counted_;)

/* The WebSocket has ended and conn is gone (or going). code is the
 * close code: the peer's (1005 when it gave none), the one the
 * connection closed with (1002, 1007, 1009, 1001, ...), or 1006 when the
 * TCP connection ended without a close handshake. clean is nonzero after
 * a completed close handshake. reason is the close reason, NUL-ended. */
TR_IO_MESSAGE(tr_ws_closed_t, tr_ref_t conn; int code; int clean;
              char reason[124];)

/* Flow control towards the owner: the peer reads slower than the owner
 * writes. Sent with paused 1 once the connection's unsent output passes
 * an eighth of ws_backlog_max (the TCP write queue is full by then), and
 * with paused 0 once it has all gone out; queued is the unsent bytes. An
 * owner that feeds a WebSocket from a source it can skip in (a broadcast
 * channel, a ticker) stops sending while paused; one that goes on is
 * closed with 1008 at ws_backlog_max. Handling it is optional. */
TR_IO_MESSAGE(tr_ws_backlog_t, tr_ref_t conn; size_t queued; int paused;)

/* Sends one message on the WebSocket conn (a tr_ws_accepted_t's conn):
 * opcode TR_WS_OP_TEXT, TR_WS_OP_BINARY or TR_WS_OP_PING; len bytes,
 * copied (framed here, on the calling thread). ctx: the calling actor, or
 * NULL from outside the runtime. Returns 0, TR_EINVAL (bad opcode, a
 * ping over 125 bytes), TR_ENOMEM, or the codes of tr_send (TR_ENOACTOR:
 * the connection is gone). A connection whose unsent output passes its
 * bound (ws_backlog_max) closes with 1008: a peer that does not read
 * cannot make the server buffer without bound. */
TR_EXTERN int tr_ws_send(tr_ctx_t *ctx, tr_ref_t conn, int opcode,
                         const void *data, size_t len);

/* Starts the close handshake with code (1000, 1001, 1003, 1007..1011,
 * 3000..4999) and a reason (NULL or at most 123 bytes of UTF-8). Returns
 * 0, TR_EINVAL, TR_ENOMEM, or the codes of tr_send. */
TR_EXTERN int tr_ws_close(tr_ctx_t *ctx, tr_ref_t conn, int code,
                          const char *reason);

/* Binds, listens and starts serving. The routes (and their strings) are
 * copied. Returns 0 and *out, TR_EINVAL (no routes, a route with neither
 * fn nor target, a bad option), TR_ENOMEM, or the codes of
 * tr_tcp_listen. Any thread. */
TR_EXTERN int tr_http_server_start(tr_runtime_t *rt,
                                   const tr_http_server_opts_t *o,
                                   tr_http_server_t **out);

/* The port the server listens on. */
TR_EXTERN uint16_t tr_http_server_port(const tr_http_server_t *s);

/* Graceful shutdown: stops accepting; idle connections close at once,
 * busy ones after the response they are writing (with "Connection:
 * close"); any still open after grace are closed. Returns at once; 0 or
 * TR_EINVAL. Any thread. Calling it again does nothing. */
TR_EXTERN int tr_http_server_shutdown(tr_http_server_t *s,
                                      tr_duration_t grace);

/* Counters of a server. */
typedef struct tr_http_server_stats {
  uint64_t connections;  /* accepted since start */
  uint64_t open;         /* connections open now */
  uint64_t requests;     /* requests answered */
  uint64_t errors;       /* requests refused with a 4xx of the codec, or
                            408 */
  uint64_t timeouts;     /* connections closed by a timeout */
} tr_http_server_stats_t;

TR_EXTERN int tr_http_server_stats(const tr_http_server_t *s,
                                   tr_http_server_stats_t *out);

/* Frees the server once every connection has closed: call after
 * tr_http_server_shutdown (it shuts down first if that was not done),
 * from any thread; the memory goes when the last connection actor
 * stops. */
TR_EXTERN void tr_http_server_free(tr_http_server_t *s);

TR_END_DECLS

#endif
