/* SPDX-License-Identifier: MIT */
/*
 * The TLS engine: TLS 1.2 and 1.3 (OpenSSL 3) over memory buffers, with
 * no socket, no thread and no blocking call. Whoever owns the transport
 * (a connection actor, a test, a program with its own sockets) feeds the
 * ciphertext it reads into the engine, reads the plaintext out, writes
 * plaintext in and sends the ciphertext the engine has pending:
 *
 *     transport bytes --tr_tls_feed--> engine --tr_tls_read--> plaintext
 *     plaintext --tr_tls_write--> engine --tr_tls_pending/consume--> wire
 *
 * After every feed, read until tr_tls_read returns 0, then send what
 * tr_tls_pending shows; after a write, send what is pending. The handshake
 * runs inside these calls: nothing happens between them, so a handshake
 * timeout is the owner's business (a timer that frees the engine).
 *
 * A configuration (tr_tls_config_t) holds the certificates, the trust
 * store and the options of one side, client or server. It is made once,
 * is read-only afterwards and may be shared by any number of engines on
 * any number of threads. An engine (tr_tls_t) is one connection, used by
 * one thread at a time (its owner); engines of one configuration may run
 * on different threads at once.
 */
#ifndef TROUPE_TLS_H
#define TROUPE_TLS_H

#include <stdint.h>

#include <troupe/common.h>

TR_BEGIN_DECLS

/* Protocol versions, as on the wire (the values of tr_tls_version). */
#define TR_TLS_VERSION_1_2 0x0303
#define TR_TLS_VERSION_1_3 0x0304

/* A configuration: an OpenSSL SSL_CTX and what the engines of one side
 * need. Reference counted (tr_tls_config_ref, tr_tls_config_free). */
typedef struct tr_tls_config tr_tls_config_t;

/* One connection's engine. */
typedef struct tr_tls tr_tls_t;

/* A client session that a later connection to the same server may resume
 * (tr_tls_session_get, tr_tls_session_set). */
typedef struct tr_tls_session tr_tls_session_t;

/* A server certificate chosen by the name the client asks for (SNI). A
 * fixed table entry: it does not grow. */
typedef struct tr_tls_sni_cert {
  const char *server_name; /* "www.example.com", or "*.example.com", which
                              matches one label in place of the star
                              ("a.example.com", not "example.com" nor
                              "a.b.example.com"); case-insensitive; an
                              exact name wins over a wildcard */
  const char *cert_file;   /* PEM: the certificate, then its chain */
  const char *key_file;    /* PEM: its private key, not encrypted */
} tr_tls_sni_cert_t;

/* A server's options. Growable (<troupe/common.h>): fill it with
 * tr_tls_server_opts_init, then set what you need. */
typedef struct tr_tls_server_opts {
  size_t size;             /* set by tr_tls_server_opts_init; 0 = this
                              release's */
  const char *cert_file;   /* PEM: the default certificate, then the
                              intermediates of its chain (required) */
  const char *key_file;    /* PEM: its private key, not encrypted
                              (required) */
  const tr_tls_sni_cert_t *sni; /* other certificates, chosen by SNI; a
                                   client asking for a name not listed, or
                                   for none, gets the default */
  size_t sni_count;
  const char *const *alpn; /* ALPN protocols, most preferred first: the
                              server picks the first of its list that the
                              client offers. A client that offers none of
                              them fails the handshake (no_application_
                              protocol alert); one that offers no ALPN at
                              all proceeds without it. NULL: no ALPN */
  size_t alpn_count;
  int min_version;         /* TR_TLS_VERSION_1_2 or _1_3; 0: 1.2 */
  int max_version;         /* 0: the highest (1.3) */
  int no_tickets;          /* nonzero: no session tickets (they are on by
                              default, so clients can resume); sessions
                              are then kept in the configuration's cache */
  const char *client_ca_file; /* PEM: ask every client for a certificate
                                 and verify it against these CAs; NULL:
                                 no client certificates */
  int client_cert_optional;   /* with client_ca_file: a client without a
                                 certificate is let in (one that sends a
                                 bad certificate is not) */
} tr_tls_server_opts_t;

/* Fills o with the defaults (every field 0) and its size (inline). */
static inline void tr_tls_server_opts_init(tr_tls_server_opts_t *o) {
  TR_CONFIG_SIZE_INIT(o);
}

/* A client's options. Growable: fill it with tr_tls_client_opts_init. */
typedef struct tr_tls_client_opts {
  size_t size;             /* set by tr_tls_client_opts_init; 0 = this
                              release's */
  const char *ca_file;     /* PEM file of trusted CAs; with ca_dir NULL
                              too, the system's default store */
  const char *ca_dir;      /* directory of hashed CA files (c_rehash) */
  const char *const *alpn; /* ALPN protocols offered, preferred first;
                              NULL: no ALPN */
  size_t alpn_count;
  int min_version;         /* as in tr_tls_server_opts_t */
  int max_version;
  int insecure_no_verify;  /* nonzero: accept any server certificate,
                              for tests only: the peer is then not
                              authenticated at all (ca_file and ca_dir
                              are ignored) */
  const char *cert_file;   /* PEM: a client certificate and its chain, for
                              servers that ask (with key_file; NULL: none) */
  const char *key_file;
} tr_tls_client_opts_t;

static inline void tr_tls_client_opts_init(tr_tls_client_opts_t *o) {
  TR_CONFIG_SIZE_INIT(o);
}

/* Makes a server configuration: loads the certificates and keys (each key
 * checked against its certificate) and sets the options. Returns 0 and
 * *out (one reference, the caller's), or TR_EINVAL (a NULL or malformed
 * argument, a bad version, an ALPN name empty or over 255 bytes, a bad
 * SNI name, a file that holds no certificate or key, a key that does not
 * match its certificate, an encrypted key), TR_ENOENT (a file does not
 * exist), TR_EPERM (a file may not be read), TR_EIO (another failure to
 * read a file) or TR_ENOMEM. When err is not NULL, it receives a short
 * reason in English (NUL-terminated, cut to errlen bytes), "" on success.
 * Any thread. */
TR_EXTERN int tr_tls_server_config_new(const tr_tls_server_opts_t *opts,
                                       tr_tls_config_t **out, char *err,
                                       size_t errlen);

/* Makes a client configuration: the trust store (ca_file/ca_dir or the
 * system's), the ALPN list, the versions and the optional client
 * certificate. Returns as tr_tls_server_config_new does; also TR_EINVAL
 * for a ca_file without certificates, a ca_dir that is not a directory,
 * or only one of cert_file and key_file, and TR_ENOENT for a ca_dir that
 * does not exist. */
TR_EXTERN int tr_tls_client_config_new(const tr_tls_client_opts_t *opts,
                                       tr_tls_config_t **out, char *err,
                                       size_t errlen);

/* Adds a reference to cfg and returns it. Any thread. */
TR_EXTERN tr_tls_config_t *tr_tls_config_ref(tr_tls_config_t *cfg);

/* Drops a reference; the last one frees the configuration. Every engine
 * holds a reference of its own, so a configuration may be dropped while
 * its engines live. NULL is ignored. Any thread. */
TR_EXTERN void tr_tls_config_free(tr_tls_config_t *cfg);

/* Makes an engine for one connection. A client passes the server's name:
 * a DNS name, which is sent as SNI and must match the certificate, or a
 * numeric IPv4 or IPv6 address ("127.0.0.1", "::1", no brackets), which
 * must match an IP entry of the certificate and is not sent as SNI; NULL
 * only with insecure_no_verify. A server passes NULL. The client's first
 * message (ClientHello) is made by the first call that drives the engine
 * (tr_tls_pending, tr_tls_take, tr_tls_feed, tr_tls_read, tr_tls_write).
 * Returns 0 and *out, TR_EINVAL (NULL cfg or out, a server given a name,
 * a verifying client given none, an empty name or one over 255 bytes) or
 * TR_ENOMEM. Any thread; the engine is then used by one thread at a
 * time. */
TR_EXTERN int tr_tls_new(tr_tls_config_t *cfg, const char *server_name,
                         tr_tls_t **out);

/* Frees the engine and whatever it holds (pending ciphertext included:
 * send it first if it matters, such as a close_notify or an alert). NULL
 * is ignored. */
TR_EXTERN void tr_tls_free(tr_tls_t *tls);

/* Hands the engine len bytes of ciphertext received from the peer (any
 * split: a byte at a time works) and advances the handshake if it is not
 * done. The bytes are copied. Returns 0, or the connection's error: the
 * handshake failed (TR_ECERT: the peer's certificate was refused, see
 * tr_tls_error_string; TR_ETLS: anything else, including garbage and an
 * alert from the peer; TR_ECONNRESET: the transport ended during it),
 * TR_ENOMEM, or an earlier failure again. After a failure the engine is
 * dead: send what is pending (the alert telling the peer why), then
 * free it. TR_EINVAL for a NULL tls, NULL data with len > 0, or a feed
 * after tr_tls_feed_eof. */
TR_EXTERN int tr_tls_feed(tr_tls_t *tls, const void *data, size_t len);

/* Tells the engine that the transport ended (the peer closed TCP). Read
 * afterwards: tr_tls_read returns the plaintext still buffered, then
 * TR_ECLOSED if the peer had sent close_notify (a clean end) or
 * TR_ECONNRESET if it had not (a truncation: the data may be cut short).
 * Returns 0, or TR_ECONNRESET when the handshake was not done (it cannot
 * finish now), or an earlier failure. */
TR_EXTERN int tr_tls_feed_eof(tr_tls_t *tls);

/* Reads up to cap bytes of plaintext into buf. Returns the count (> 0), 0
 * when none is available yet (feed more ciphertext; also before the
 * handshake is done), TR_ECLOSED once the peer's close_notify was reached
 * (every byte sent before it has been read), or the connection's error
 * (TR_ETLS: a bad record, an alert; TR_ECERT; TR_ECONNRESET: truncated,
 * see tr_tls_feed_eof; TR_ENOMEM). Reading may also queue ciphertext (a
 * TLS 1.2 alert, a TLS 1.3 key update reply), so check tr_tls_pending
 * after it. TR_EINVAL for a NULL tls, or NULL buf with cap > 0. */
TR_EXTERN int64_t tr_tls_read(tr_tls_t *tls, void *buf, size_t cap);

/* Encrypts len bytes of plaintext into the pending ciphertext. Before the
 * handshake is done the bytes are copied and queued inside the engine,
 * and encrypted as soon as it is done (in the call that finishes it): a
 * write never returns TR_EAGAIN. The engine does not bound what it
 * queues (plaintext or pending ciphertext): the owner bounds what it
 * writes before it has sent what is pending. Returns 0 (all len bytes
 * taken), TR_EPIPE after tr_tls_shutdown, the connection's error, or
 * TR_ENOMEM. TR_EINVAL for a NULL tls, or NULL buf with len > 0. */
TR_EXTERN int tr_tls_write(tr_tls_t *tls, const void *buf, size_t len);

/* The ciphertext waiting to be sent: sets *data to a view of it (valid
 * until the next call on the engine) and returns its length, 0 for none.
 * Mark what was sent with tr_tls_consume. Drives the engine like the
 * other calls (a client's ClientHello appears at the first call); a
 * failure then shows in tr_tls_handshake_done and the next feed, read or
 * write. After a failure, the alert is pending. */
TR_EXTERN size_t tr_tls_pending(tr_tls_t *tls, const void **data);

/* Drops the first n pending bytes (n at most what tr_tls_pending
 * returned; more is cut to that). */
TR_EXTERN void tr_tls_consume(tr_tls_t *tls, size_t n);

/* Copies up to cap pending bytes into buf and consumes them: returns the
 * count. tr_tls_pending and tr_tls_consume without the copy. */
TR_EXTERN size_t tr_tls_take(tr_tls_t *tls, void *buf, size_t cap);

/* Queues close_notify (after any plaintext queued before it): the peer
 * learns that no more data follows. A shutdown asked for during the
 * handshake is sent when the handshake is done. The engine can still read
 * what the peer sends until its own close_notify (TLS allows half-closed
 * connections; a peer may also just close). Later writes return TR_EPIPE.
 * Returns 0 (also when called again), or the connection's error. */
TR_EXTERN int tr_tls_shutdown(tr_tls_t *tls);

/* 1 when the handshake is done, 0 while it is in progress, the
 * connection's error (negative) once it failed. */
TR_EXTERN int tr_tls_handshake_done(const tr_tls_t *tls);

/* The reason for the connection's failure, in English, for logs ("" when
 * there is none): for TR_ECERT what was wrong with the certificate
 * ("certificate has expired", "hostname mismatch", "unable to get local
 * issuer certificate", ...), for TR_ETLS OpenSSL's reason (an alert the
 * peer sent, a bad record, no shared protocol). Valid until the engine is
 * freed. */
TR_EXTERN const char *tr_tls_error_string(const tr_tls_t *tls);

/* The protocol version agreed: TR_TLS_VERSION_1_2 or _1_3; 0 before the
 * handshake is done. */
TR_EXTERN int tr_tls_version(const tr_tls_t *tls);

/* The ALPN protocol agreed, NUL-terminated, or NULL (none offered,
 * none agreed, handshake not done). Valid until the engine is freed. */
TR_EXTERN const char *tr_tls_alpn(const tr_tls_t *tls);

/* The cipher suite agreed in OpenSSL's naming ("TLS_AES_256_GCM_SHA384"),
 * or NULL before the handshake is done. */
TR_EXTERN const char *tr_tls_cipher(const tr_tls_t *tls);

/* The server name: on a client the name it was made with, on a server
 * the name the client asked for (SNI), once the ClientHello is read; NULL
 * when there is none. */
TR_EXTERN const char *tr_tls_server_name(const tr_tls_t *tls);

/* Writes the subject of the peer's certificate (RFC 2253, as
 * "CN=localhost,O=Example") into buf, NUL-terminated and cut to cap
 * bytes. Returns the subject's full length (as snprintf does: the output
 * was cut if that is >= cap), or TR_ENOENT when the peer sent no
 * certificate (a client with no certificate, a handshake not done yet),
 * TR_EINVAL (NULL tls, NULL buf with cap > 0) or TR_ENOMEM. A client
 * that verifies knows the subject is trustworthy; with
 * insecure_no_verify it proves nothing. */
TR_EXTERN int tr_tls_peer_subject(const tr_tls_t *tls, char *buf,
                                  size_t cap);

/* 1 when the handshake resumed a session (abbreviated handshake), else 0. */
TR_EXTERN int tr_tls_resumed(const tr_tls_t *tls);

/* A client: the session of this connection, for a later connection to
 * the same server to resume (tr_tls_session_set). With TLS 1.3 the
 * server sends its tickets after the handshake: read at least once after
 * the handshake first. Returns 0 and *out (the caller's: free it with
 * tr_tls_session_free), TR_ENOENT when there is no session that can be
 * resumed (yet), TR_EINVAL (NULL argument, a server engine). */
TR_EXTERN int tr_tls_session_get(tr_tls_t *tls, tr_tls_session_t **out);

/* A client: offers session s for resumption. Call it before the first call
 * that drives the engine; s stays the caller's (the engine takes its own
 * reference). The server may decline, which gives a full handshake
 * (tr_tls_resumed tells). Use a session with a configuration equal to the
 * one it came from and the same server name. Returns 0, TR_EINVAL (NULL
 * argument, a server engine, the handshake already started). */
TR_EXTERN int tr_tls_session_set(tr_tls_t *tls, tr_tls_session_t *s);

/* Frees a session got from tr_tls_session_get. NULL is ignored. Any
 * thread. */
TR_EXTERN void tr_tls_session_free(tr_tls_session_t *s);

TR_END_DECLS

#endif
