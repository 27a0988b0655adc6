/* SPDX-License-Identifier: MIT */
/*
 * TCP as actors. A listener actor accepts connections and spawns one
 * connection actor per socket from a behaviour you supply; an actor can
 * also connect out, with a timeout. A connection belongs to one actor:
 * the reactor reads on its behalf and delivers the bytes as messages
 * (tr_tcp_data_t), writes queue up to a bound when the peer is slow (then
 * tr_tcp_write says TR_EAGAIN and a tr_tcp_writable_t follows when the
 * queue has drained), and peer close, errors and the acknowledgement of
 * your own close arrive as messages. Every message below is a system
 * message (served before data mail), sent without the accepts-check: the
 * owning behaviour should have handlers for those it cares about, at
 * least tr_tcp_data_t and tr_tcp_closed_t; the others are counted as
 * dead letters if unhandled. See doc/reactor.md.
 *
 * Addresses are numeric IPv4 or IPv6 strings; tr_resolve turns a host
 * name into them (the system resolver, run on the blocking pool). Functions taking a tr_ctx_t * are for the owning actor,
 * inside its handlers or init. Errors from the network are negative errno
 * values (-ECONNREFUSED, -ECONNRESET, -EPIPE, ...), as TR_E* codes are.
 */
#ifndef TROUPE_NET_H
#define TROUPE_NET_H

#include <sys/socket.h>

#include <troupe/io.h>

TR_BEGIN_DECLS

/* Names one connection; like tr_io_id_t, never reused. */
typedef tr_io_id_t tr_tcp_id_t;

/* Bytes read from conn. data (len bytes, malloc'ed) belongs to the
 * message and is freed with it, unless the handler takes it by setting
 * data to NULL (then free() it). */
TR_IO_MESSAGE(tr_tcp_data_t, tr_tcp_id_t conn; size_t len; uint8_t *data;)

/* The peer closed its sending side (read returned end-of-file). The
 * connection stays open for writing until you close it. */
TR_IO_MESSAGE(tr_tcp_eof_t, tr_tcp_id_t conn;)

/* The connection is closed and conn is dead: status 0 acknowledges
 * tr_tcp_close (no message about conn follows it); a negative code says
 * the connection failed (-ECONNRESET, -EPIPE, ...) and the library closed
 * it. Queued writes are dropped. */
TR_IO_MESSAGE(tr_tcp_closed_t, tr_tcp_id_t conn; int status;)

/* After tr_tcp_write returned TR_EAGAIN: the write queue has drained to
 * half its bound (queued bytes still waiting). */
TR_IO_MESSAGE(tr_tcp_writable_t, tr_tcp_id_t conn; size_t queued;)

/* Outcome of tr_tcp_connect: status 0 (conn is open, reading starts) or a
 * negative code (-ECONNREFUSED, TR_ETIMEDOUT, ...; conn is dead and no
 * tr_tcp_closed_t follows). */
TR_IO_MESSAGE(tr_tcp_connected_t, tr_tcp_id_t conn; int status;
              uint64_t cookie;)

/* ---- Name resolution --------------------------------------------------------- */

#define TR_RESOLVE_MAX 8 /* addresses a tr_resolved_t carries at most */

/* One resolved address, numeric, ready for tr_tcp_connect. An IPv6
 * scope (the "%eth0" of a link-local address) is not kept: link-local
 * addresses cannot be connected to by tr_tcp_connect. */
typedef struct tr_addr {
  int family;     /* AF_INET or AF_INET6 */
  char host[46];  /* "192.0.2.1", "2001:db8::1" (INET6_ADDRSTRLEN) */
} tr_addr_t;

/* The answer of tr_resolve: status 0 and naddrs (1..TR_RESOLVE_MAX)
 * distinct addresses in the resolver's order of preference, or status
 * TR_ENOENT (no such host, or no address of the family asked for),
 * TR_EAGAIN (temporary failure: try again later), TR_ENOMEM or TR_EIO
 * (any other resolver failure) and naddrs 0. */
TR_IO_MESSAGE(tr_resolved_t, int status; unsigned naddrs; uint64_t cookie;
              tr_addr_t addrs[TR_RESOLVE_MAX];)

/* Resolves host (a name, or a numeric address, which is returned as it
 * is) for TCP with the system resolver (getaddrinfo: /etc/hosts, DNS, as
 * the system is configured), on the blocking pool since it blocks; the
 * calling actor gets a tr_resolved_t. family: AF_UNSPEC (both), AF_INET
 * or AF_INET6. Returns 0, TR_EINVAL (NULL or empty host, host longer
 * than 253 bytes, unknown family), TR_ENOMEM, TR_EAGAIN (pool queue
 * full), TR_ESHUTDOWN (the pool is stopping), TR_ENOSYS (no reactor), or
 * a negative errno if a pool thread could not be started. */
TR_EXTERN int tr_resolve(tr_ctx_t *ctx, const char *host, int family,
                         uint64_t cookie);

/* What a connection actor's init receives as arg when spawned by a
 * listener. Call tr_tcp_adopt from init to take the socket; if init does
 * not, the listener closes it after spawn returns. */
typedef struct tr_tcp_accepted {
  int fd;                       /* -1 once adopted */
  struct sockaddr_storage peer; /* the peer's address */
  socklen_t peerlen;
  void *arg;                    /* tr_tcp_listen_opts_t.conn_arg */
  size_t wbuf_max;              /* write bound for the connection */
  tr_ref_t listener;
} tr_tcp_accepted_t;

typedef struct tr_tcp_listen_opts {
  const char *host;  /* numeric address to bind; NULL: "127.0.0.1" */
  uint16_t port;     /* 0: any free port (reported by tr_tcp_listen) */
  int backlog;       /* 0: SOMAXCONN */
  const tr_behavior_t *conn_behavior; /* spawned per accepted socket */
  void *conn_arg;    /* handed to each connection's init (in accepted) */
  size_t wbuf_max;   /* write-queue bound per connection; 0: 1 MiB */
} tr_tcp_listen_opts_t;

/* Binds and listens, and spawns the listener actor that accepts. Stop it
 * with tr_actor_stop (its socket is closed then). Returns 0, *listener and
 * *port (the bound port, if port is not NULL), or TR_EINVAL, a socket
 * error (-EADDRINUSE, ...), or the codes of tr_spawn. Any thread. */
TR_EXTERN int tr_tcp_listen(tr_runtime_t *rt, const tr_tcp_listen_opts_t *o,
                            tr_ref_t *listener, uint16_t *port);

/* Makes the calling actor the owner of an accepted socket (call from the
 * connection behaviour's init). Reading starts at once. Returns 0 and
 * *conn, TR_EINVAL (already adopted), TR_ENOMEM, or a backend error. */
TR_EXTERN int tr_tcp_adopt(tr_ctx_t *ctx, tr_tcp_accepted_t *acc,
                           tr_tcp_id_t *conn);

/* Connects to host:port without blocking; the calling actor owns the
 * connection and gets a tr_tcp_connected_t (with cookie) when it is
 * established, refused, or timeout_ms (0: no limit) has passed. Writes
 * made before that are queued. Returns 0 and *conn, TR_EINVAL (not a
 * numeric address: resolve names with tr_resolve first), or an immediate
 * socket error (then no message). */
TR_EXTERN int tr_tcp_connect(tr_ctx_t *ctx, const char *host, uint16_t port,
                             uint64_t timeout_ms, uint64_t cookie,
                             tr_tcp_id_t *conn);

/* Writes len bytes (copied when they cannot all go out at once).
 * All-or-nothing: returns 0 (sent or queued), TR_EAGAIN (bytes are queued
 * and these would take the queue past its bound: nothing was taken, a
 * tr_tcp_writable_t will follow; a write into an empty queue is always
 * taken),
 * -EPIPE (after tr_tcp_shutdown), TR_ENOENT/TR_EPERM (dead or foreign
 * conn), TR_ENOMEM, or the connection's error (a tr_tcp_closed_t with it
 * follows). */
TR_EXTERN int tr_tcp_write(tr_ctx_t *ctx, tr_tcp_id_t conn, const void *buf,
                           size_t len);

/* Half-closes: once the queued bytes are out, the peer reads
 * end-of-file; reading goes on. Returns 0, TR_ENOENT, TR_EPERM. */
TR_EXTERN int tr_tcp_shutdown(tr_ctx_t *ctx, tr_tcp_id_t conn);

/* Closes asynchronously; queued writes are dropped. A tr_tcp_closed_t with
 * status 0 acknowledges it; no other message about conn follows that.
 * Returns 0, TR_ENOENT, TR_EPERM. */
TR_EXTERN int tr_tcp_close(tr_ctx_t *ctx, tr_tcp_id_t conn);

/* Stops (paused != 0) or resumes reading: flow control towards the peer.
 * Returns 0, TR_ENOENT, TR_EPERM. */
TR_EXTERN int tr_tcp_pause(tr_ctx_t *ctx, tr_tcp_id_t conn, int paused);

/* Sets the write-queue bound of conn (bytes > 0). Returns 0, TR_EINVAL,
 * TR_ENOENT, TR_EPERM. */
TR_EXTERN int tr_tcp_set_wbuf(tr_ctx_t *ctx, tr_tcp_id_t conn, size_t max);

TR_END_DECLS

#endif
