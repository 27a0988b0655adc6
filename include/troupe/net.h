/* SPDX-License-Identifier: MIT */
/*
 * TCP as actors. A listener actor accepts connections and spawns one
 * connection actor per socket from a behaviour you supply; an actor can
 * also connect out, with a timeout. A connection belongs to one actor:
 * the reactor reads on its behalf and delivers the bytes as messages
 * (tr_tcp_data_t) until the bytes delivered and not yet consumed reach a
 * bound (then it stops reading until the owner catches up), writes queue
 * up to a bound when the peer is slow (then tr_tcp_write says TR_EAGAIN
 * and a tr_tcp_writable_t follows when the queue has drained), and a
 * listener short of file descriptors pauses accepting with a growing
 * back-off instead of spinning. Peer close, errors and the
 * acknowledgement of your own close arrive as messages. Every message below is a system
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
 * data to NULL (then free() it).
 *
 * The read bound: the len bytes count against the connection's read
 * bound (tr_tcp_set_rbuf, default TR_TCP_RBUF_DEFAULT) from the moment
 * the message is made until it is freed: after its handler returns, when
 * it is dropped undelivered, or when whoever kept it (tr_ctx_take, or a
 * forward to another actor) frees it. Taking data out of the message
 * does not keep the bytes counted: they are consumed when the message
 * goes. At the bound the connection stops reading (the peer's writes back
 * up into its kernel buffers, then block: flow control, as with
 * tr_tcp_pause); when the count falls to half the bound, reading resumes
 * by itself. The message's type descriptor is larger than this struct:
 * allocate one only with tr_msg_new, never on the stack. */
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
  size_t rbuf_max;              /* read bound for the connection */
} tr_tcp_accepted_t;

/* Default bounds of a connection: bytes queued for writing, and bytes
 * delivered in tr_tcp_data_t and not yet consumed. */
#define TR_TCP_WBUF_DEFAULT ((size_t)1 << 20)
#define TR_TCP_RBUF_DEFAULT ((size_t)1 << 20)

/* Back-off of a listener short of file descriptors or memory: the first
 * pause and the longest. */
#define TR_TCP_ACCEPT_BACKOFF_MIN ((tr_duration_t)10)
#define TR_TCP_ACCEPT_BACKOFF_MAX ((tr_duration_t)1000)

typedef struct tr_tcp_listen_opts {
  size_t size;       /* set by tr_tcp_listen_opts_init (<troupe/common.h>:
                        growable config structs); 0 = this release's */
  const char *host;  /* numeric address to bind; NULL: "127.0.0.1" */
  uint16_t port;     /* 0: any free port (reported by tr_tcp_listen) */
  int backlog;       /* 0: SOMAXCONN */
  const tr_behavior_t *conn_behavior; /* spawned per accepted socket */
  void *conn_arg;    /* handed to each connection's init (in accepted) */
  size_t wbuf_max;   /* write-queue bound per connection;
                        0: TR_TCP_WBUF_DEFAULT */
  size_t rbuf_max;   /* read bound per connection (see tr_tcp_data_t);
                        0: TR_TCP_RBUF_DEFAULT */
} tr_tcp_listen_opts_t;

/* Fills o with the defaults (every field 0) and its size (inline). */
static inline void tr_tcp_listen_opts_init(tr_tcp_listen_opts_t *o) {
  TR_CONFIG_SIZE_INIT(o);
}

/* Binds and listens, and spawns the listener actor that accepts. Stop it
 * with tr_actor_stop (its socket is closed then). Returns 0, *listener and
 * *port (the bound port, if port is not NULL), or TR_EINVAL, a socket
 * error (-EADDRINUSE, ...), or the codes of tr_spawn. Any thread.
 *
 * Running out of descriptors: when accept fails with EMFILE or ENFILE
 * (the process's or the system's fd table is full), ENOBUFS or ENOMEM,
 * the listener stops accepting for TR_TCP_ACCEPT_BACKOFF_MIN, then tries
 * again, doubling the pause up to TR_TCP_ACCEPT_BACKOFF_MAX while the
 * shortage lasts; the first accept that succeeds ends the back-off. It
 * does not spin on the socket, which stays readable meanwhile. The
 * clients waiting meanwhile stay in the kernel's backlog (opts.backlog;
 * beyond it the kernel ignores or refuses new connections) and are
 * accepted once descriptors are free again: none is accepted only to be
 * closed, since a shortage is usually short and a closed connection is
 * work lost. Clients that cannot wait need a connect timeout of their
 * own. Other accept errors that concern one connection (ECONNABORTED,
 * EPROTO, the network errors accept(2) passes on) skip that connection;
 * any other error backs off as a shortage does. Read the counters with
 * tr_tcp_listener_stats_t. */
TR_EXTERN int tr_tcp_listen(tr_runtime_t *rt, const tr_tcp_listen_opts_t *o,
                            tr_ref_t *listener, uint16_t *port);

/* The counters of a listener, as a request and its reply: ask the
 * listener (tr_ask from an actor, tr_handle_call from another thread)
 * with a message of this type made by tr_msg_new (its fields are
 * ignored); the reply, of the same type, carries the counters since the
 * listener started (backoff_ms: the pause under way, 0 when it is
 * accepting). One sent with tr_send rather than as a request is freed
 * unanswered. Any actor or thread may ask. */
TR_IO_MESSAGE(tr_tcp_listener_stats_t,
              uint64_t accepted;    /* connections accepted */
              uint64_t attempts;    /* accept calls, failed ones too */
              uint64_t exhausted;   /* accepts failed for lack of fds or
                                       memory (EMFILE, ENFILE, ENOBUFS,
                                       ENOMEM) */
              uint64_t errors;      /* other failed accepts */
              uint64_t backoffs;    /* pauses started */
              uint64_t spawn_failed; /* accepted sockets closed because
                                        the connection actor did not
                                        start or did not adopt them */
              tr_duration_t backoff_ms;)

/* Makes the calling actor the owner of an accepted socket (call from the
 * connection behaviour's init). Reading starts at once. Returns 0 and
 * *conn, TR_EINVAL (already adopted), TR_ENOMEM, or a backend error. */
TR_EXTERN int tr_tcp_adopt(tr_ctx_t *ctx, tr_tcp_accepted_t *acc,
                           tr_tcp_id_t *conn);

/* Connects to host:port without blocking; the calling actor owns the
 * connection and gets a tr_tcp_connected_t (with cookie) when it is
 * established, refused, or timeout has passed (TR_FOREVER: no limit;
 * TR_NOWAIT: only a connection made at once succeeds). Writes
 * made before that are queued. The connection starts with the default
 * bounds (TR_TCP_WBUF_DEFAULT, TR_TCP_RBUF_DEFAULT); tr_tcp_set_wbuf and
 * tr_tcp_set_rbuf change them. Returns 0 and *conn, TR_EINVAL (not a
 * numeric address: resolve names with tr_resolve first; a negative
 * timeout other than TR_FOREVER), or an immediate socket error (then no
 * message). */
TR_EXTERN int tr_tcp_connect(tr_ctx_t *ctx, const char *host, uint16_t port,
                             tr_duration_t timeout, uint64_t cookie,
                             tr_tcp_id_t *conn);

/* Writes len bytes (copied when they cannot all go out at once).
 * All-or-nothing, and the queue never holds more than its bound
 * (tr_tcp_set_wbuf): returns 0 (sent, or partly sent and the rest
 * queued), TR_EAGAIN (bytes are queued and these would take the queue
 * past its bound: nothing was taken, a tr_tcp_writable_t will follow),
 * TR_EMSGSIZE (len is larger than the bound, so the write could never be
 * taken whole, even into an empty queue: nothing was taken and no
 * tr_tcp_writable_t follows; write it in pieces no larger than the bound,
 * or raise the bound), -EPIPE (after tr_tcp_shutdown), TR_ENOENT/TR_EPERM
 * (dead or foreign conn), TR_EINVAL, TR_ENOMEM, or the connection's error
 * (a tr_tcp_closed_t with it follows). */
TR_EXTERN int tr_tcp_write(tr_ctx_t *ctx, tr_tcp_id_t conn, const void *buf,
                           size_t len);

/* Writes head (head_len bytes, copied if they must wait; may be empty)
 * and then bytes [off, off + len) of the file mapping m without copying
 * them: sent with sendfile(2) from the map's own descriptor (see
 * tr_file_map), the head with MSG_MORE so that it leaves with the first
 * bytes of the range. When the map has no descriptor the range is sent
 * from the mapped bytes. In order with tr_tcp_write: behind what is
 * queued, ahead of what follows. What the socket does not take at once
 * waits in the write queue, the range as a reference to m (m may be
 * unreferenced by the caller at once). The head counts against the
 * queue's bound as with tr_tcp_write; the range does not (it takes no
 * memory), so a writer queueing many ranges is not held back by
 * TR_EAGAIN: pace such a writer yourself. All-or-nothing like
 * tr_tcp_write. Returns 0 (sent, or partly sent and the rest queued),
 * TR_EAGAIN (bytes are queued and the head would take the queue past its
 * bound: nothing taken, a tr_tcp_writable_t follows), TR_EMSGSIZE
 * (head_len is larger than the bound), TR_EINVAL (NULL m, NULL head with
 * head_len > 0, or the range goes past the end of the map), -EPIPE
 * (after tr_tcp_shutdown), TR_ENOENT/TR_EPERM (dead or foreign conn), or
 * the connection's error; then a tr_tcp_closed_t with it follows. The
 * connection is also closed, with the error returned or reported, when
 * out of memory after part of the write went out (TR_ENOMEM: the rest
 * could not follow), and when the file turns out shorter than the range
 * (it shrank since it was mapped: TR_EIO). A closed peer does not raise
 * SIGPIPE in the process: the connection gets the error. */
TR_EXTERN int tr_tcp_write_map(tr_ctx_t *ctx, tr_tcp_id_t conn,
                               const void *head, size_t head_len,
                               tr_file_map_t *m, uint64_t off, uint64_t len);

/* Half-closes: once the queued bytes are out, the peer reads
 * end-of-file; reading goes on. Returns 0, TR_ENOENT, TR_EPERM. */
TR_EXTERN int tr_tcp_shutdown(tr_ctx_t *ctx, tr_tcp_id_t conn);

/* Closes asynchronously; queued writes are dropped. A tr_tcp_closed_t with
 * status 0 acknowledges it; no other message about conn follows that.
 * Returns 0, TR_ENOENT, TR_EPERM. */
TR_EXTERN int tr_tcp_close(tr_ctx_t *ctx, tr_tcp_id_t conn);

/* Stops (paused != 0) or resumes reading: flow control towards the peer.
 * Independent of the read bound: reading goes on only when neither this
 * pause nor the bound holds it. Returns 0, TR_ENOENT, TR_EPERM. */
TR_EXTERN int tr_tcp_pause(tr_ctx_t *ctx, tr_tcp_id_t conn, int paused);

/* Sets the write-queue bound of conn (bytes > 0). Bytes already queued
 * stay queued if the new bound is lower; it applies to later writes.
 * Returns 0, TR_EINVAL, TR_ENOENT, TR_EPERM. */
TR_EXTERN int tr_tcp_set_wbuf(tr_ctx_t *ctx, tr_tcp_id_t conn, size_t max);

/* Sets the read bound of conn (bytes > 0; SIZE_MAX: unbounded): how many
 * bytes of tr_tcp_data_t may be outstanding (delivered, their message not
 * yet freed) before the connection stops reading; it resumes when they
 * fall to max / 2. A read may take the count past the bound by one read
 * (64 KiB). Returns 0, TR_EINVAL, TR_ENOENT, TR_EPERM. */
TR_EXTERN int tr_tcp_set_rbuf(tr_ctx_t *ctx, tr_tcp_id_t conn, size_t max);

/* The state of a connection's flow control. */
typedef struct tr_tcp_stats {
  size_t rx_pending;   /* bytes of tr_tcp_data_t not yet consumed */
  size_t rx_max;       /* the read bound */
  uint64_t rx_bytes;   /* bytes read since the connection opened */
  uint64_t rx_stalls;  /* times reading stopped at the read bound */
  int rx_stalled;      /* nonzero: stopped at the bound now */
  size_t wq_queued;    /* bytes in the write queue */
  size_t wq_max;       /* the write bound */
} tr_tcp_stats_t;

/* Fills *out with the counters of conn. Returns 0, TR_EINVAL, TR_ENOENT,
 * TR_EPERM. For the owner, as the other calls. */
TR_EXTERN int tr_tcp_stats(tr_ctx_t *ctx, tr_tcp_id_t conn,
                           tr_tcp_stats_t *out);

TR_END_DECLS

#endif
