/* SPDX-License-Identifier: MIT */
/*
 * The TLS engine (<troupe/tls.h>): OpenSSL 3 driven over buffers instead
 * of sockets. Each engine's SSL object reads its ciphertext from, and
 * writes it to, a BIO of our own (tls_bio_method below) whose storage is
 * a plain growable buffer: the input buffer holds what the owner fed and
 * OpenSSL has not read, the output buffer what OpenSSL wrote and the
 * owner has not sent. Owning the output buffer is what lets
 * tr_tls_pending hand out a view and tr_tls_consume drop bytes without a
 * copy (a memory BIO only gives bytes out by copying them), and owning
 * the input lets the engine say "the transport ended" (BIO_eof) only
 * when the owner says so. Neither BIO ever asks OpenSSL to retry a write,
 * so SSL_ERROR_WANT_WRITE cannot happen; a read of an empty input asks to
 * retry until tr_tls_feed_eof, so SSL_ERROR_WANT_READ means "feed more".
 *
 * The handshake is advanced by every call (tls_advance): there is no
 * thread and no timer here. Plaintext written before it completes waits
 * in a third buffer and is encrypted by the call that completes it; a
 * shutdown asked for meanwhile is sent after that plaintext.
 *
 * OpenSSL reports errors through a per-thread queue. Every call clears it
 * before an SSL operation and empties it after a failure (into the
 * engine's reason string), so an engine never sees, nor leaves behind,
 * another connection's errors on a worker thread it shares with them.
 */
#include "internal.h"

#include <troupe/tls.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* ---- buffers ------------------------------------------------------------- */

/* Bytes p[off, off + len) of a block of cap bytes. */
typedef struct tls_buf {
  unsigned char *p;
  size_t off, len, cap;
  int eof;   /* input: the transport ended (tr_tls_feed_eof) */
  int nomem; /* output: an append failed inside OpenSSL's write */
} tls_buf_t;

/* A buffer emptied above this size gives its block back, so an idle
 * connection that once moved a burst does not keep the memory. */
#define TLS_BUF_KEEP ((size_t)64 << 10)
#define TLS_BUF_MIN ((size_t)4 << 10)

static int buf_append(tls_buf_t *b, const void *d, size_t n) {
  if (n == 0) return 0;
  if (b->cap - b->off - b->len < n) {
    if (b->off >= b->len && b->cap - b->len >= n) {
      /* Slide the live bytes down: no more bytes move than were freed
       * before them, so the copying stays linear in the traffic. */
      memmove(b->p, b->p + b->off, b->len);
      b->off = 0;
    } else {
      if (n > SIZE_MAX / 2 - b->len) return TR_ENOMEM;
      size_t need = b->len + n;
      size_t cap = b->cap < TLS_BUF_MIN ? TLS_BUF_MIN : b->cap;
      while (cap < need) cap *= 2;
      unsigned char *p = malloc(cap);
      if (p == NULL) return TR_ENOMEM;
      if (b->len) memcpy(p, b->p + b->off, b->len);
      free(b->p);
      b->p = p;
      b->off = 0;
      b->cap = cap;
    }
  }
  memcpy(b->p + b->off + b->len, d, n);
  b->len += n;
  return 0;
}

static void buf_consume(tls_buf_t *b, size_t n) {
  if (n > b->len) n = b->len;
  b->off += n;
  b->len -= n;
  if (b->len == 0) {
    b->off = 0;
    if (b->cap > TLS_BUF_KEEP) {
      free(b->p);
      b->p = NULL;
      b->cap = 0;
    }
  }
}

static void buf_fini(tls_buf_t *b) {
  free(b->p);
  memset(b, 0, sizeof(*b));
}

/* ---- the BIO over a buffer ----------------------------------------------- */

static int tls_bio_write(BIO *bio, const char *in, size_t n, size_t *done) {
  tls_buf_t *b = BIO_get_data(bio);
  BIO_clear_retry_flags(bio);
  if (buf_append(b, in, n) != 0) {
    /* No retry flag: OpenSSL takes it as a fatal transport error, which
     * tls_fail reports as TR_ENOMEM thanks to the flag. */
    b->nomem = 1;
    *done = 0;
    return 0;
  }
  *done = n;
  return 1;
}

static int tls_bio_read(BIO *bio, char *out, size_t n, size_t *done) {
  tls_buf_t *b = BIO_get_data(bio);
  BIO_clear_retry_flags(bio);
  *done = 0;
  if (b->len == 0) {
    /* Empty: "try again later" until the owner says the transport
     * ended; then a plain 0 with BIO_eof true, which OpenSSL reports as
     * an unexpected EOF unless close_notify came first. */
    if (!b->eof) BIO_set_retry_read(bio);
    return 0;
  }
  if (n > b->len) n = b->len;
  memcpy(out, b->p + b->off, n);
  buf_consume(b, n);
  *done = n;
  return 1;
}

static long tls_bio_ctrl(BIO *bio, int cmd, long num, void *ptr) {
  tls_buf_t *b = BIO_get_data(bio);
  (void)num;
  (void)ptr;
  switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_PENDING: return b->len > LONG_MAX ? LONG_MAX : (long)b->len;
    case BIO_CTRL_WPENDING: return 0;
    case BIO_CTRL_EOF: return b->eof && b->len == 0;
    default: return 0; /* not supported: no kTLS, no push/pop, no dup */
  }
}

static BIO_METHOD *tls_bio_method;
static pthread_once_t tls_bio_once = PTHREAD_ONCE_INIT;

/* Made once per process and never freed: engines of every configuration
 * share it, and it is a few dozen bytes. */
static void tls_bio_method_make(void) {
  int type = BIO_get_new_index();
  if (type == -1) return;
  BIO_METHOD *m = BIO_meth_new(type | BIO_TYPE_SOURCE_SINK, "troupe buffer");
  if (m == NULL) return;
  if (!BIO_meth_set_write_ex(m, tls_bio_write) ||
      !BIO_meth_set_read_ex(m, tls_bio_read) ||
      !BIO_meth_set_ctrl(m, tls_bio_ctrl)) {
    BIO_meth_free(m);
    return;
  }
  tls_bio_method = m;
}

static BIO *tls_bio_new(tls_buf_t *b) {
  if (pthread_once(&tls_bio_once, tls_bio_method_make) != 0 ||
      tls_bio_method == NULL)
    return NULL;
  BIO *bio = BIO_new(tls_bio_method);
  if (bio == NULL) return NULL;
  BIO_set_data(bio, b);
  BIO_set_init(bio, 1);
  return bio;
}

/* ---- configurations ------------------------------------------------------ */

/* A certificate the server picks by SNI. */
typedef struct sni_entry {
  char *name; /* an exact name, or a wildcard's suffix (".example.com") */
  int wildcard;
  X509 *leaf;
  EVP_PKEY *key;
  STACK_OF(X509) *chain;
} sni_entry_t;

struct tr_tls_config {
  SSL_CTX *ctx;
  atomic_size_t refs;
  int server;
  int verify;          /* client: the peer's certificate is checked */
  unsigned char *alpn; /* server: its ALPN list in wire format */
  size_t alpn_len;
  sni_entry_t *sni;
  size_t nsni;
};

static void say(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(char *err, size_t errlen, const char *fmt, ...) {
  if (err == NULL || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* The first error of the thread's OpenSSL queue as "reason (detail)",
 * and the queue emptied. */
static void ossl_reason(char *buf, size_t n) {
  const char *data = NULL;
  int flags = 0;
  unsigned long e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags);
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  if (r == NULL) r = e ? "unknown OpenSSL error" : "no reason given";
  if (data != NULL && *data != '\0' && (flags & ERR_TXT_STRING))
    snprintf(buf, n, "%s (%s)", r, data);
  else
    snprintf(buf, n, "%s", r);
  ERR_clear_error();
}

/* Encrypted keys are refused rather than prompted for on a terminal. */
static int no_password(char *buf, int size, int rwflag, void *u) {
  (void)buf;
  (void)size;
  (void)rwflag;
  (void)u;
  return -1;
}

static int errno_code(int e) {
  switch (e) {
    case ENOENT:
    case ENOTDIR: return TR_ENOENT;
    case EACCES:
    case EPERM: return TR_EPERM;
    case ENOMEM: return TR_ENOMEM;
    default: return TR_EIO;
  }
}

static const char *errno_text(int e) {
  switch (e) {
    case ENOENT:
    case ENOTDIR: return "no such file";
    case EACCES:
    case EPERM: return "permission denied";
    case EISDIR: return "is a directory";
    case ENOMEM: return "out of memory";
    default: return "cannot be read";
  }
}

/* Opens a PEM file ourselves, so that its errno gives the code. */
static int pem_open(const char *path, const char *what, BIO **out, char *err,
                    size_t errlen) {
  FILE *f = fopen(path, "re");
  if (f == NULL) {
    int e = errno;
    say(err, errlen, "%s %s: %s", what, path, errno_text(e));
    return errno_code(e);
  }
  BIO *b = BIO_new_fp(f, BIO_CLOSE);
  if (b == NULL) {
    fclose(f);
    say(err, errlen, "out of memory");
    return TR_ENOMEM;
  }
  *out = b;
  return 0;
}

static int readable_file(const char *path, const char *what, char *err,
                         size_t errlen) {
  BIO *b = NULL;
  int rc = pem_open(path, what, &b, err, errlen);
  BIO_free(b);
  return rc;
}

/* A certificate chain file: the leaf, then the rest of the chain. */
static int load_chain(const char *path, X509 **leafp,
                      STACK_OF(X509) **chainp,
                      char *err, size_t errlen) {
  BIO *b = NULL;
  char why[160];
  int rc = pem_open(path, "certificate file", &b, err, errlen);
  if (rc) return rc;
  ERR_clear_error();
  X509 *leaf = PEM_read_bio_X509_AUX(b, NULL, no_password, NULL);
  if (leaf == NULL) {
    ossl_reason(why, sizeof(why));
    say(err, errlen, "certificate file %s: no certificate in it: %s", path,
        why);
    BIO_free(b);
    return TR_EINVAL;
  }
  STACK_OF(X509) *chain = sk_X509_new_null();
  if (chain == NULL) goto nomem;
  for (;;) {
    X509 *c = PEM_read_bio_X509(b, NULL, no_password, NULL);
    if (c == NULL) break;
    if (!sk_X509_push(chain, c)) {
      X509_free(c);
      goto nomem;
    }
  }
  /* The loop ends on "no start line" at the end of the file; any other
   * error is a certificate that does not parse. */
  unsigned long e = ERR_peek_last_error();
  if (e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM &&
                  ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
    ossl_reason(why, sizeof(why));
    say(err, errlen, "certificate file %s: a certificate does not parse: %s",
        path, why);
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    BIO_free(b);
    return TR_EINVAL;
  }
  ERR_clear_error();
  BIO_free(b);
  *leafp = leaf;
  *chainp = chain;
  return 0;
nomem:
  ERR_clear_error();
  X509_free(leaf);
  sk_X509_pop_free(chain, X509_free);
  BIO_free(b);
  say(err, errlen, "out of memory");
  return TR_ENOMEM;
}

static int load_key(const char *path, X509 *leaf, EVP_PKEY **keyp, char *err,
                    size_t errlen) {
  BIO *b = NULL;
  char why[160];
  int rc = pem_open(path, "key file", &b, err, errlen);
  if (rc) return rc;
  ERR_clear_error();
  EVP_PKEY *key = PEM_read_bio_PrivateKey(b, NULL, no_password, NULL);
  BIO_free(b);
  if (key == NULL) {
    ossl_reason(why, sizeof(why));
    say(err, errlen,
        "key file %s: no private key in it, or an encrypted one: %s", path,
        why);
    return TR_EINVAL;
  }
  if (X509_check_private_key(leaf, key) != 1) {
    ERR_clear_error();
    say(err, errlen, "key file %s does not match its certificate", path);
    EVP_PKEY_free(key);
    return TR_EINVAL;
  }
  *keyp = key;
  return 0;
}

/* Loads a certificate chain and its key into ctx. */
static int ctx_use_files(SSL_CTX *ctx, const char *cert, const char *key,
                         char *err, size_t errlen) {
  X509 *leaf = NULL;
  STACK_OF(X509) *chain = NULL;
  EVP_PKEY *pk = NULL;
  char why[160];
  int rc = load_chain(cert, &leaf, &chain, err, errlen);
  if (rc) return rc;
  rc = load_key(key, leaf, &pk, err, errlen);
  if (rc == 0 && SSL_CTX_use_cert_and_key(ctx, leaf, pk, chain, 1) != 1) {
    ossl_reason(why, sizeof(why));
    say(err, errlen, "certificate %s: refused: %s", cert, why);
    rc = TR_EINVAL;
  }
  X509_free(leaf);
  EVP_PKEY_free(pk);
  sk_X509_pop_free(chain, X509_free);
  return rc;
}

/* ALPN names to wire format: each a length byte and the name. */
static int alpn_wire(const char *const *names, size_t count,
                     unsigned char **out, size_t *outlen, char *err,
                     size_t errlen) {
  size_t total = 0;
  *out = NULL;
  *outlen = 0;
  if (count == 0) return 0;
  if (names == NULL) {
    say(err, errlen, "alpn is NULL with alpn_count %zu", count);
    return TR_EINVAL;
  }
  for (size_t i = 0; i < count; i++) {
    size_t l = names[i] ? strlen(names[i]) : 0;
    if (l == 0 || l > 255) {
      say(err, errlen, "ALPN protocol %zu: empty or over 255 bytes", i);
      return TR_EINVAL;
    }
    total += 1 + l;
  }
  if (total > 65535) {
    say(err, errlen, "ALPN list over 65535 bytes");
    return TR_EINVAL;
  }
  unsigned char *w = malloc(total);
  if (w == NULL) {
    say(err, errlen, "out of memory");
    return TR_ENOMEM;
  }
  size_t at = 0;
  for (size_t i = 0; i < count; i++) {
    size_t l = strlen(names[i]);
    w[at++] = (unsigned char)l;
    memcpy(w + at, names[i], l);
    at += l;
  }
  *out = w;
  *outlen = total;
  return 0;
}

/* The server's choice: the first protocol of its own list that the
 * client offers; none in common fails the handshake with the
 * no_application_protocol alert (RFC 7301, 3.2). */
static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
  const tr_tls_config_t *cfg = arg;
  (void)ssl;
  for (size_t i = 0; i < cfg->alpn_len; i += 1u + cfg->alpn[i]) {
    unsigned l = cfg->alpn[i];
    const unsigned char *p = cfg->alpn + i + 1;
    for (unsigned j = 0; j < inlen;) {
      unsigned cl = in[j];
      if (cl == 0 || cl > inlen - j - 1) break; /* malformed: stop */
      if (cl == l && memcmp(in + j + 1, p, l) == 0) {
        *out = p;
        *outlen = (unsigned char)l;
        return SSL_TLSEXT_ERR_OK;
      }
      j += 1 + cl;
    }
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static const sni_entry_t *sni_find(const tr_tls_config_t *cfg,
                                   const char *name) {
  for (size_t i = 0; i < cfg->nsni; i++)
    if (!cfg->sni[i].wildcard && strcasecmp(cfg->sni[i].name, name) == 0)
      return &cfg->sni[i];
  const char *dot = strchr(name, '.');
  if (dot == NULL || dot == name) return NULL;
  for (size_t i = 0; i < cfg->nsni; i++)
    if (cfg->sni[i].wildcard && strcasecmp(cfg->sni[i].name, dot) == 0)
      return &cfg->sni[i];
  return NULL;
}

/* Runs while the ClientHello is processed, before the certificate is
 * chosen: a listed name swaps the default certificate for its own. */
static int sni_select(SSL *ssl, int *alert, void *arg) {
  const tr_tls_config_t *cfg = arg;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == NULL) return SSL_TLSEXT_ERR_OK;
  const sni_entry_t *e = sni_find(cfg, name);
  if (e == NULL) return SSL_TLSEXT_ERR_OK; /* the default certificate */
  /* Clear first: a default of another key type would otherwise stay
   * beside the new one, and OpenSSL could pick it. */
  SSL_certs_clear(ssl);
  if (SSL_use_cert_and_key(ssl, e->leaf, e->key, e->chain, 1) != 1) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  return SSL_TLSEXT_ERR_OK;
}

/* A name of SNI or a wildcard pattern: letters, digits, '-', '.', '_';
 * a wildcard only as a whole first label ("*.example.com"). */
static int sni_name_ok(const char *n) {
  size_t l = n ? strlen(n) : 0;
  if (l == 0 || l > 255) return 0;
  if (n[0] == '*') {
    if (n[1] != '.' || n[2] == '\0') return 0;
    n += 2;
  }
  for (; *n; n++) {
    unsigned char c = (unsigned char)*n;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
      return 0;
  }
  return 1;
}

static int sni_load(tr_tls_config_t *cfg, const tr_tls_sni_cert_t *list,
                    size_t count, char *err, size_t errlen) {
  if (count == 0) return 0;
  if (list == NULL) {
    say(err, errlen, "sni is NULL with sni_count %zu", count);
    return TR_EINVAL;
  }
  cfg->sni = calloc(count, sizeof(*cfg->sni));
  if (cfg->sni == NULL) {
    say(err, errlen, "out of memory");
    return TR_ENOMEM;
  }
  for (size_t i = 0; i < count; i++) {
    const tr_tls_sni_cert_t *s = &list[i];
    sni_entry_t *e = &cfg->sni[i];
    if (!sni_name_ok(s->server_name) || s->cert_file == NULL ||
        s->key_file == NULL) {
      say(err, errlen,
          "SNI entry %zu: a bad server_name, or no cert_file or key_file", i);
      return TR_EINVAL;
    }
    e->wildcard = s->server_name[0] == '*';
    e->name = strdup(s->server_name + (e->wildcard ? 1 : 0));
    if (e->name == NULL) {
      say(err, errlen, "out of memory");
      return TR_ENOMEM;
    }
    cfg->nsni = i + 1; /* freed with the configuration from here on */
    int rc = load_chain(s->cert_file, &e->leaf, &e->chain, err, errlen);
    if (rc) return rc;
    rc = load_key(s->key_file, e->leaf, &e->key, err, errlen);
    if (rc) return rc;
  }
  return 0;
}

static int version_ok(int v) {
  return v == 0 || v == TR_TLS_VERSION_1_2 || v == TR_TLS_VERSION_1_3;
}

/* What both sides set: versions, no renegotiation, buffers released
 * while a connection is idle. */
static int ctx_common(SSL_CTX *ctx, int minv, int maxv, char *err,
                      size_t errlen) {
  if (!version_ok(minv) || !version_ok(maxv) ||
      (minv != 0 && maxv != 0 && minv > maxv)) {
    say(err, errlen, "bad TLS versions (min 0x%04x, max 0x%04x)",
        (unsigned)minv, (unsigned)maxv);
    return TR_EINVAL;
  }
  if (!SSL_CTX_set_min_proto_version(ctx, minv ? minv : TLS1_2_VERSION) ||
      !SSL_CTX_set_max_proto_version(ctx, maxv)) {
    ERR_clear_error();
    say(err, errlen, "TLS versions refused by OpenSSL");
    return TR_EINVAL;
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(
      ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  return 0;
}

static tr_tls_config_t *config_alloc(int server, char *err, size_t errlen) {
  tr_tls_config_t *cfg = calloc(1, sizeof(*cfg));
  if (cfg == NULL) {
    say(err, errlen, "out of memory");
    return NULL;
  }
  atomic_init(&cfg->refs, 1);
  cfg->server = server;
  ERR_clear_error();
  cfg->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (cfg->ctx == NULL) {
    char why[160];
    ossl_reason(why, sizeof(why));
    say(err, errlen, "SSL_CTX_new: %s", why);
    free(cfg);
    return NULL;
  }
  return cfg;
}

static void config_destroy(tr_tls_config_t *cfg) {
  SSL_CTX_free(cfg->ctx);
  for (size_t i = 0; i < cfg->nsni; i++) {
    free(cfg->sni[i].name);
    X509_free(cfg->sni[i].leaf);
    EVP_PKEY_free(cfg->sni[i].key);
    sk_X509_pop_free(cfg->sni[i].chain, X509_free);
  }
  free(cfg->sni);
  free(cfg->alpn);
  free(cfg);
}

int tr_tls_server_config_new(const tr_tls_server_opts_t *opts,
                             tr_tls_config_t **out, char *err, size_t errlen) {
  tr_tls_server_opts_t o;
  say(err, errlen, "%s", "");
  if (out == NULL || opts == NULL ||
      tr__config_copy(&o, sizeof(o), sizeof(o), opts) != 0) {
    say(err, errlen, "NULL argument or bad size field");
    return TR_EINVAL;
  }
  *out = NULL;
  if (o.cert_file == NULL || o.key_file == NULL) {
    say(err, errlen, "a server needs cert_file and key_file");
    return TR_EINVAL;
  }
  tr_tls_config_t *cfg = config_alloc(1, err, errlen);
  if (cfg == NULL) return TR_ENOMEM;
  SSL_CTX *ctx = cfg->ctx;
  int rc = ctx_common(ctx, o.min_version, o.max_version, err, errlen);
  if (rc == 0) rc = ctx_use_files(ctx, o.cert_file, o.key_file, err, errlen);
  if (rc == 0)
    rc = alpn_wire(o.alpn, o.alpn_count, &cfg->alpn, &cfg->alpn_len, err,
                   errlen);
  if (rc == 0) rc = sni_load(cfg, o.sni, o.sni_count, err, errlen);
  if (rc == 0 && o.client_ca_file != NULL)
    rc = readable_file(o.client_ca_file, "client CA file", err, errlen);
  if (rc) goto fail;

  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  /* With tickets, a session travels with its client: the server-side
   * cache would only take memory and a lock every connection shares.
   * Without them, the cache is what resumes sessions. */
  if (o.no_tickets)
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  else
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  /* Sessions are resumable only within one context id: one for all of
   * troupe's servers is enough, the ticket keys are per configuration. */
  if (!SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"troupe", 6))
    goto nomem;
  if (cfg->alpn_len) SSL_CTX_set_alpn_select_cb(ctx, alpn_select, cfg);
  if (cfg->nsni) {
    SSL_CTX_set_tlsext_servername_callback(ctx, sni_select);
    SSL_CTX_set_tlsext_servername_arg(ctx, cfg);
  }
  if (o.client_ca_file != NULL) {
    char why[160];
    ERR_clear_error();
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o.client_ca_file);
    if (names == NULL ||
        SSL_CTX_load_verify_locations(ctx, o.client_ca_file, NULL) != 1) {
      sk_X509_NAME_pop_free(names, X509_NAME_free);
      ossl_reason(why, sizeof(why));
      say(err, errlen, "client CA file %s: no certificate in it: %s",
          o.client_ca_file, why);
      rc = TR_EINVAL;
      goto fail;
    }
    SSL_CTX_set_client_CA_list(ctx, names); /* takes names */
    SSL_CTX_set_verify(
        ctx,
        SSL_VERIFY_PEER |
            (o.client_cert_optional ? 0 : SSL_VERIFY_FAIL_IF_NO_PEER_CERT),
        NULL);
  }
  ERR_clear_error();
  *out = cfg;
  return 0;
nomem:
  say(err, errlen, "out of memory");
  rc = TR_ENOMEM;
fail:
  ERR_clear_error();
  config_destroy(cfg);
  return rc;
}

int tr_tls_client_config_new(const tr_tls_client_opts_t *opts,
                             tr_tls_config_t **out, char *err, size_t errlen) {
  tr_tls_client_opts_t o;
  char why[160];
  say(err, errlen, "%s", "");
  if (out == NULL || opts == NULL ||
      tr__config_copy(&o, sizeof(o), sizeof(o), opts) != 0) {
    say(err, errlen, "NULL argument or bad size field");
    return TR_EINVAL;
  }
  *out = NULL;
  if ((o.cert_file == NULL) != (o.key_file == NULL)) {
    say(err, errlen, "cert_file and key_file go together");
    return TR_EINVAL;
  }
  tr_tls_config_t *cfg = config_alloc(0, err, errlen);
  if (cfg == NULL) return TR_ENOMEM;
  SSL_CTX *ctx = cfg->ctx;
  cfg->verify = !o.insecure_no_verify;
  int rc = ctx_common(ctx, o.min_version, o.max_version, err, errlen);
  if (rc == 0 && o.cert_file != NULL)
    rc = ctx_use_files(ctx, o.cert_file, o.key_file, err, errlen);
  if (rc) goto fail;

  if (!cfg->verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (o.ca_file == NULL && o.ca_dir == NULL) {
      /* The system's store: a failure here leaves an empty store, which
       * every verification then refuses (TR_ECERT), so it is not fatal. */
      if (SSL_CTX_set_default_verify_paths(ctx) != 1) ERR_clear_error();
    } else {
      if (o.ca_file != NULL &&
          (rc = readable_file(o.ca_file, "CA file", err, errlen)) != 0)
        goto fail;
      if (o.ca_dir != NULL) {
        struct stat st;
        if (stat(o.ca_dir, &st) != 0) {
          int e = errno;
          say(err, errlen, "CA directory %s: %s", o.ca_dir, errno_text(e));
          rc = errno_code(e);
          goto fail;
        }
        if (!S_ISDIR(st.st_mode)) {
          say(err, errlen, "CA directory %s: not a directory", o.ca_dir);
          rc = TR_EINVAL;
          goto fail;
        }
      }
      ERR_clear_error();
      if (SSL_CTX_load_verify_locations(ctx, o.ca_file, o.ca_dir) != 1) {
        ossl_reason(why, sizeof(why));
        say(err, errlen, "CA file %s: no certificate in it: %s",
            o.ca_file ? o.ca_file : "(none)", why);
        rc = TR_EINVAL;
        goto fail;
      }
    }
  }
  rc = alpn_wire(o.alpn, o.alpn_count, &cfg->alpn, &cfg->alpn_len, err, errlen);
  if (rc) goto fail;
  /* The client's list lives in the context (0 is success here). */
  if (cfg->alpn_len &&
      SSL_CTX_set_alpn_protos(ctx, cfg->alpn, (unsigned)cfg->alpn_len) != 0) {
    say(err, errlen, "out of memory");
    rc = TR_ENOMEM;
    goto fail;
  }
  ERR_clear_error();
  *out = cfg;
  return 0;
fail:
  ERR_clear_error();
  config_destroy(cfg);
  return rc;
}

tr_tls_config_t *tr_tls_config_ref(tr_tls_config_t *cfg) {
  if (cfg != NULL)
    atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
  return cfg;
}

void tr_tls_config_free(tr_tls_config_t *cfg) {
  if (cfg == NULL) return;
  if (atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) == 1)
    config_destroy(cfg);
}

/* ---- engines ------------------------------------------------------------- */

#define TLS_REASON_MAX 256

struct tr_tls {
  SSL *ssl;
  tr_tls_config_t *cfg;
  tls_buf_t in;         /* ciphertext fed, not yet read by OpenSSL */
  tls_buf_t out;        /* ciphertext made, not yet consumed by the owner */
  tls_buf_t plain;      /* plaintext written before the handshake finished */
  char *name;           /* client: the server name it was made with */
  int err;              /* the failure that ended the connection, or 0 */
  unsigned started : 1; /* the handshake has been driven once */
  unsigned hs_done : 1;
  unsigned peer_closed : 1;   /* the peer's close_notify was read */
  unsigned want_shutdown : 1; /* tr_tls_shutdown was called */
  unsigned shut_sent : 1;     /* our close_notify is in out */
  char alpn[256];
  char reason[TLS_REASON_MAX];
};

/* Classifies a failed SSL call (e from SSL_get_error) and records it:
 * returns 0 for "feed more", TR_ECLOSED for the peer's close_notify, and
 * otherwise the connection's error, which sticks. */
static int tls_fail(tr_tls_t *t, int e) {
  if (e == SSL_ERROR_WANT_READ) {
    ERR_clear_error();
    return 0;
  }
  if (e == SSL_ERROR_ZERO_RETURN) {
    ERR_clear_error();
    t->peer_closed = 1;
    return TR_ECLOSED;
  }
  int verify_failed = 0, no_cert = 0, eof = 0, nomem = 0;
  unsigned long first = 0;
  const char *data = NULL;
  int flags = 0;
  const char *d;
  int f;
  unsigned long x;
  while ((x = ERR_get_error_all(NULL, NULL, NULL, &d, &f)) != 0) {
    /* The reason to give: the first of the TLS layer's own errors (a
     * lower layer's, such as a cipher's, comes before it and says less),
     * else the first of all. */
    if (first == 0 ||
        (ERR_GET_LIB(first) != ERR_LIB_SSL && ERR_GET_LIB(x) == ERR_LIB_SSL)) {
      first = x;
      data = (f & ERR_TXT_STRING) ? d : NULL;
      flags = f;
    }
    if (ERR_GET_LIB(x) == ERR_LIB_SSL) {
      switch (ERR_GET_REASON(x)) {
        case SSL_R_CERTIFICATE_VERIFY_FAILED: verify_failed = 1; break;
        case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE: no_cert = 1; break;
        case SSL_R_UNEXPECTED_EOF_WHILE_READING: eof = 1; break;
        default: break;
      }
    }
    if (ERR_GET_REASON(x) == ERR_R_MALLOC_FAILURE) nomem = 1;
  }
  (void)flags;
  int rc;
  if (t->out.nomem || nomem) {
    rc = TR_ENOMEM;
    snprintf(t->reason, sizeof(t->reason), "out of memory");
  } else if (verify_failed) {
    long v = SSL_get_verify_result(t->ssl);
    rc = TR_ECERT;
    if (v == X509_V_ERR_HOSTNAME_MISMATCH ||
        v == X509_V_ERR_IP_ADDRESS_MISMATCH)
      snprintf(t->reason, sizeof(t->reason),
               "certificate verify failed: %s (the certificate is not for "
               "%s)",
               X509_verify_cert_error_string(v), t->name ? t->name : "?");
    else
      snprintf(t->reason, sizeof(t->reason), "certificate verify failed: %s",
               X509_verify_cert_error_string(v));
  } else if (no_cert) {
    rc = TR_ECERT;
    snprintf(t->reason, sizeof(t->reason),
             "the peer sent no certificate and one is required");
  } else if (eof || (e == SSL_ERROR_SYSCALL && t->in.eof)) {
    rc = TR_ECONNRESET;
    snprintf(t->reason, sizeof(t->reason),
             "the transport ended without close_notify (truncated)");
  } else {
    const char *r = first ? ERR_reason_error_string(first) : NULL;
    rc = TR_ETLS;
    if (r == NULL)
      r = e == SSL_ERROR_SYSCALL ? "transport failure" : "TLS failure";
    if (data != NULL && *data != '\0')
      snprintf(t->reason, sizeof(t->reason), "%s (%s)", r, data);
    else
      snprintf(t->reason, sizeof(t->reason), "%s", r);
  }
  ERR_clear_error();
  t->err = rc;
  return rc;
}

/* Drives the connection as far as it goes without more input: the
 * handshake, then the plaintext queued during it, then a close_notify
 * asked for. Returns 0 or the connection's error. */
static int tls_advance(tr_tls_t *t) {
  int r, e;
  if (t->err) return t->err;
  t->started = 1;
  if (!t->hs_done) {
    ERR_clear_error();
    r = SSL_do_handshake(t->ssl);
    if (r != 1) {
      e = SSL_get_error(t->ssl, r);
      if (e == SSL_ERROR_ZERO_RETURN) {
        /* close_notify in the middle of a handshake: it cannot finish. */
        ERR_clear_error();
        snprintf(t->reason, sizeof(t->reason),
                 "the peer closed during the handshake");
        return t->err = TR_ETLS;
      }
      return tls_fail(t, e);
    }
    t->hs_done = 1;
    const unsigned char *p = NULL;
    unsigned n = 0;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    if (p != NULL && n > 0 && n < sizeof(t->alpn)) {
      memcpy(t->alpn, p, n);
      t->alpn[n] = '\0';
    }
  }
  while (t->plain.len > 0) {
    size_t w = 0;
    ERR_clear_error();
    if (!SSL_write_ex(t->ssl, t->plain.p + t->plain.off, t->plain.len, &w))
      return tls_fail(t, SSL_get_error(t->ssl, 0));
    buf_consume(&t->plain, w);
  }
  if (t->want_shutdown && !t->shut_sent) {
    ERR_clear_error();
    r = SSL_shutdown(t->ssl);
    if (r < 0) {
      e = SSL_get_error(t->ssl, r);
      if (e == SSL_ERROR_WANT_READ) {
        ERR_clear_error();
        return 0;
      }
      return tls_fail(t, e);
    }
    t->shut_sent = 1;
  }
  return 0;
}

static int is_ip(const char *s) {
  unsigned char a[16];
  return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

int tr_tls_new(tr_tls_config_t *cfg, const char *server_name, tr_tls_t **out) {
  if (out == NULL) return TR_EINVAL;
  *out = NULL;
  if (cfg == NULL) return TR_EINVAL;
  if (cfg->server ? server_name != NULL : (server_name == NULL && cfg->verify))
    return TR_EINVAL;
  if (server_name != NULL &&
      (server_name[0] == '\0' || strlen(server_name) > 255))
    return TR_EINVAL;
  tr_tls_t *t = calloc(1, sizeof(*t));
  if (t == NULL) return TR_ENOMEM;
  ERR_clear_error();
  t->ssl = SSL_new(cfg->ctx);
  if (t->ssl == NULL) goto nomem;
  BIO *rb = tls_bio_new(&t->in);
  BIO *wb = rb ? tls_bio_new(&t->out) : NULL;
  if (wb == NULL) {
    BIO_free(rb);
    goto nomem;
  }
  SSL_set_bio(t->ssl, rb, wb); /* the SSL owns them now */
  if (cfg->server) {
    SSL_set_accept_state(t->ssl);
  } else {
    SSL_set_connect_state(t->ssl);
    if (server_name != NULL) {
      int ip = is_ip(server_name);
      t->name = strdup(server_name);
      if (t->name == NULL) goto nomem;
      /* SNI carries DNS names only (RFC 6066, 3). */
      if (!ip && !SSL_set_tlsext_host_name(t->ssl, server_name)) goto nomem;
      if (cfg->verify) {
        if (ip) {
          if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl),
                                             server_name))
            goto nomem;
        } else {
          SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
          if (!SSL_set1_host(t->ssl, server_name)) goto nomem;
        }
      }
    }
  }
  t->cfg = tr_tls_config_ref(cfg);
  *out = t;
  return 0;
nomem:
  ERR_clear_error();
  SSL_free(t->ssl);
  free(t->name);
  free(t);
  return TR_ENOMEM;
}

void tr_tls_free(tr_tls_t *t) {
  if (t == NULL) return;
  /* OpenSSL takes an SSL freed before it sent close_notify for a failed
   * connection and makes its session unresumable. A connection that did
   * not fail is dropped by its owner's choice (an HTTP client done with
   * it, a timeout): its session stays good. A fatal error has already
   * invalidated it, as TLS requires. */
  if (t->hs_done && t->err == 0)
    SSL_set_shutdown(t->ssl, SSL_get_shutdown(t->ssl) | SSL_SENT_SHUTDOWN);
  SSL_free(t->ssl);
  buf_fini(&t->in);
  buf_fini(&t->out);
  buf_fini(&t->plain);
  free(t->name);
  tr_tls_config_free(t->cfg);
  free(t);
}

int tr_tls_feed(tr_tls_t *t, const void *data, size_t len) {
  if (t == NULL || (data == NULL && len > 0)) return TR_EINVAL;
  if (t->err) return t->err;
  if (t->in.eof) return TR_EINVAL;
  if (buf_append(&t->in, data, len) != 0) return TR_ENOMEM;
  return t->hs_done ? 0 : tls_advance(t);
}

int tr_tls_feed_eof(tr_tls_t *t) {
  if (t == NULL) return TR_EINVAL;
  if (t->err) return t->err;
  t->in.eof = 1;
  if (t->hs_done) return 0;
  int rc = tls_advance(t);
  if (rc == 0 && !t->hs_done) { /* cannot happen: EOF is not "retry" */
    snprintf(t->reason, sizeof(t->reason),
             "the transport ended during the handshake");
    rc = t->err = TR_ECONNRESET;
  }
  return rc;
}

int64_t tr_tls_read(tr_tls_t *t, void *buf, size_t cap) {
  if (t == NULL || (buf == NULL && cap > 0)) return TR_EINVAL;
  if (t->err) return t->err;
  int rc = tls_advance(t);
  if (rc < 0) return rc;
  if (!t->hs_done) return 0;
  if (t->peer_closed) return TR_ECLOSED;
  size_t got = 0;
  while (got < cap) {
    size_t n = 0;
    ERR_clear_error();
    if (SSL_read_ex(t->ssl, (char *)buf + got, cap - got, &n)) {
      got += n;
      continue;
    }
    rc = tls_fail(t, SSL_get_error(t->ssl, 0));
    /* Bytes read before a close or an error are returned first; the
     * close or the error (which stick) come with the next call. */
    if (rc == 0 || got > 0) break;
    return rc;
  }
  return (int64_t)got;
}

int tr_tls_write(tr_tls_t *t, const void *buf, size_t len) {
  if (t == NULL || (buf == NULL && len > 0)) return TR_EINVAL;
  if (t->err) return t->err;
  if (t->want_shutdown) return TR_EPIPE;
  if (len == 0) return 0;
  if (t->hs_done && t->plain.len == 0) {
    size_t w = 0;
    ERR_clear_error();
    if (SSL_write_ex(t->ssl, buf, len, &w)) return 0;
    int e = SSL_get_error(t->ssl, 0);
    if (e != SSL_ERROR_WANT_READ) return tls_fail(t, e);
    /* OpenSSL wants the same bytes again later (it may have sent part of
     * them): queue them all, the retry below passes them. */
    ERR_clear_error();
  }
  if (buf_append(&t->plain, buf, len) != 0) return TR_ENOMEM;
  return tls_advance(t);
}

size_t tr_tls_pending(tr_tls_t *t, const void **data) {
  if (t->err == 0) (void)tls_advance(t);
  if (data != NULL) *data = t->out.len ? t->out.p + t->out.off : NULL;
  return t->out.len;
}

void tr_tls_consume(tr_tls_t *t, size_t n) { buf_consume(&t->out, n); }

size_t tr_tls_take(tr_tls_t *t, void *buf, size_t cap) {
  const void *p;
  size_t n = tr_tls_pending(t, &p);
  if (n > cap) n = cap;
  if (n > 0) {
    memcpy(buf, p, n);
    buf_consume(&t->out, n);
  }
  return n;
}

int tr_tls_shutdown(tr_tls_t *t) {
  if (t == NULL) return TR_EINVAL;
  if (t->err) return t->err;
  t->want_shutdown = 1;
  return t->hs_done ? tls_advance(t) : 0;
}

int tr_tls_handshake_done(const tr_tls_t *t) {
  return t->err ? t->err : (int)t->hs_done;
}

const char *tr_tls_error_string(const tr_tls_t *t) { return t->reason; }

int tr_tls_version(const tr_tls_t *t) {
  return t->hs_done ? SSL_version(t->ssl) : 0;
}

const char *tr_tls_alpn(const tr_tls_t *t) {
  return t->alpn[0] ? t->alpn : NULL;
}

const char *tr_tls_cipher(const tr_tls_t *t) {
  return t->hs_done ? SSL_get_cipher_name(t->ssl) : NULL;
}

const char *tr_tls_server_name(const tr_tls_t *t) {
  if (!t->cfg->server) return t->name;
  return t->started ? SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name)
                    : NULL;
}

int tr_tls_peer_subject(const tr_tls_t *t, char *buf, size_t cap) {
  if (t == NULL || (buf == NULL && cap > 0)) return TR_EINVAL;
  /* Known once verified, or refused (a log wants to name it then). */
  if (!t->hs_done && t->err != TR_ECERT) return TR_ENOENT;
  X509 *x = SSL_get0_peer_certificate(t->ssl);
  if (x == NULL && !t->cfg->server && !t->hs_done) {
    /* A refused server certificate is not made the peer's, but the
     * chain it came in (leaf first, on a client) is kept. */
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(t->ssl);
    if (chain != NULL && sk_X509_num(chain) > 0) x = sk_X509_value(chain, 0);
  }
  if (x == NULL) return TR_ENOENT;
  BIO *m = BIO_new(BIO_s_mem());
  if (m == NULL) return TR_ENOMEM;
  if (X509_NAME_print_ex(m, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) < 0) {
    BIO_free(m);
    ERR_clear_error();
    return TR_ENOMEM;
  }
  char *p = NULL;
  long n = BIO_get_mem_data(m, &p);
  if (n < 0) n = 0;
  if (cap > 0) {
    size_t k = (size_t)n < cap - 1 ? (size_t)n : cap - 1;
    if (k) memcpy(buf, p, k);
    buf[k] = '\0';
  }
  BIO_free(m);
  return n > INT_MAX ? INT_MAX : (int)n;
}

int tr_tls_resumed(const tr_tls_t *t) {
  return t->hs_done && SSL_session_reused(t->ssl) ? 1 : 0;
}

int tr_tls_session_get(tr_tls_t *t, tr_tls_session_t **out) {
  if (t == NULL || out == NULL || t->cfg->server) return TR_EINVAL;
  *out = NULL;
  SSL_SESSION *s = SSL_get1_session(t->ssl);
  if (s == NULL) return TR_ENOENT;
  if (!SSL_SESSION_is_resumable(s)) {
    SSL_SESSION_free(s);
    return TR_ENOENT;
  }
  *out = (tr_tls_session_t *)s;
  return 0;
}

int tr_tls_session_set(tr_tls_t *t, tr_tls_session_t *s) {
  if (t == NULL || s == NULL || t->cfg->server || t->started) return TR_EINVAL;
  ERR_clear_error();
  if (SSL_set_session(t->ssl, (SSL_SESSION *)s) != 1) {
    ERR_clear_error();
    return TR_EINVAL;
  }
  return 0;
}

void tr_tls_session_free(tr_tls_session_t *s) {
  SSL_SESSION_free((SSL_SESSION *)s);
}
