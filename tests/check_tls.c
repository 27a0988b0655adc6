/* SPDX-License-Identifier: MIT */
/*
 * Tests of the TLS engine (<troupe/tls.h>), without a runtime and without
 * a network: a client engine and a server engine in this process hand
 * their ciphertext to each other (whole, in packets, a byte at a time),
 * over TLS 1.3 and TLS 1.2. Covered: the handshake, data both ways (1
 * MiB), writes queued before the handshake, ALPN, SNI (exact, wildcard,
 * unknown, IP), certificate verification (unknown CA, expired, wrong host,
 * wrong IP -> TR_ECERT and the reason), garbage and corrupted records ->
 * TR_ETLS, close_notify against truncation, session resumption, client
 * certificates, the configuration's errors and its sharing between
 * threads. Then interoperability with the openssl command-line tools over
 * loopback (blocking sockets in the test): our server against s_client,
 * our client against s_server (skipped without the openssl binary).
 *
 * The certificates are made here with the OpenSSL API, in a temporary
 * directory made before the suite and removed after it.
 */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <troupe/tls.h>

/* ---- the certificates ---------------------------------------------------- */

static char tdir[PATH_MAX];

/* The path of a file of the temporary directory: one buffer per name,
 * kept for the whole run, so paths may be held as long as needed. */
static const char *fp(const char *name) {
  static char names[64][32], paths[64][PATH_MAX];
  static unsigned n;
  for (unsigned i = 0; i < n; i++)
    if (strcmp(names[i], name) == 0) return paths[i];
  if (n == 64 || strlen(name) >= sizeof(names[0])) abort();
  int k = snprintf(paths[n], PATH_MAX, "%s/%s", tdir, name);
  if (k < 0 || k >= PATH_MAX) abort();
  strcpy(names[n], name);
  return paths[n++];
}

static void add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value) {
  X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
  if (e == NULL || !X509_add_ext(x, e, -1)) {
    fprintf(stderr, "extension %d=%s refused\n", nid, value);
    abort();
  }
  X509_EXTENSION_free(e);
}

/* A certificate for key, signed by issuer (NULL: self-signed), valid
 * from `from` to `to` days from now. */
static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer,
                       EVP_PKEY *issuer_key, const char *san, int ca, long from,
                       long to) {
  static long serial = 1;
  X509 *x = X509_new();
  if (x == NULL) abort();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), from * 86400);
  X509_gmtime_adj(X509_getm_notAfter(x), to * 86400);
  X509_set_pubkey(x, key);
  X509_NAME *n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC,
                             (const unsigned char *)"troupe test", -1, -1, 0);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn,
                             -1, -1, 0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
  add_ext(x, &ctx, NID_basic_constraints,
          ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add_ext(x, &ctx, NID_key_usage,
          ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  if (!ca) add_ext(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth");
  add_ext(x, &ctx, NID_subject_key_identifier, "hash");
  if (issuer) add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always");
  if (san) add_ext(x, &ctx, NID_subject_alt_name, san);
  if (!X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256())) abort();
  return x;
}

static EVP_PKEY *make_key(void) {
  EVP_PKEY *k = EVP_EC_gen("P-256");
  if (k == NULL) abort();
  return k;
}

static void write_pem(const char *name, X509 *a, X509 *b, EVP_PKEY *key,
                      const char *pass) {
  FILE *f = fopen(fp(name), "w");
  if (f == NULL) abort();
  if (a && !PEM_write_X509(f, a)) abort();
  if (b && !PEM_write_X509(f, b)) abort();
  if (key && !PEM_write_PrivateKey(f, key, pass ? EVP_aes_128_cbc() : NULL,
                                   (unsigned char *)pass,
                                   pass ? (int)strlen(pass) : 0, NULL, NULL))
    abort();
  fclose(f);
}

/* A leaf for cn/san signed by the root, written as <name>.pem and
 * <name>.key. */
static void leaf(const char *name, const char *cn, const char *san,
                 X509 *issuer, EVP_PKEY *ikey, long from, long to,
                 X509 *chain_extra) {
  char b[64];
  EVP_PKEY *k = make_key();
  X509 *x = make_cert(cn, k, issuer, ikey, san, 0, from, to);
  snprintf(b, sizeof(b), "%s.pem", name);
  write_pem(b, x, chain_extra, NULL, NULL);
  snprintf(b, sizeof(b), "%s.key", name);
  write_pem(b, NULL, NULL, k, NULL);
  X509_free(x);
  EVP_PKEY_free(k);
}

static void make_fixtures(void) {
  const char *t = getenv("TMPDIR");
  snprintf(tdir, sizeof(tdir), "%s/troupe-tls.XXXXXX", t && *t ? t : P_tmpdir);
  if (mkdtemp(tdir) == NULL) {
    perror("mkdtemp");
    exit(99);
  }
  EVP_PKEY *cak = make_key(), *ik = make_key(), *ok = make_key();
  X509 *ca = make_cert("troupe test CA", cak, NULL, NULL, NULL, 1, -1, 30);
  X509 *in =
      make_cert("troupe test intermediate", ik, ca, cak, NULL, 1, -1, 30);
  X509 *other = make_cert("other CA", ok, NULL, NULL, NULL, 1, -1, 30);
  write_pem("ca.pem", ca, NULL, NULL, NULL);
  write_pem("otherca.pem", other, NULL, NULL, NULL);
  leaf("server", "localhost", "DNS:localhost,IP:127.0.0.1", ca, cak, -1, 30,
       NULL);
  /* Issued by the intermediate: the file carries the chain. */
  leaf("alt", "alt.test", "DNS:alt.test", in, ik, -1, 30, in);
  leaf("wild", "*.wild.test", "DNS:*.wild.test", ca, cak, -1, 30, NULL);
  leaf("expired", "localhost", "DNS:localhost", ca, cak, -30, -1, NULL);
  leaf("wrong", "other.example", "DNS:other.example", ca, cak, -1, 30, NULL);
  leaf("untrusted", "localhost", "DNS:localhost", other, ok, -1, 30, NULL);
  leaf("client", "test client", NULL, ca, cak, -1, 30, NULL);
  /* An encrypted key, and files that hold no certificate or key. */
  EVP_PKEY *ek = make_key();
  write_pem("encrypted.key", NULL, NULL, ek, "secret");
  EVP_PKEY_free(ek);
  FILE *f = fopen(fp("garbage.pem"), "w");
  if (f == NULL) abort();
  fputs("this is not a certificate\n", f);
  fclose(f);
  X509_free(ca);
  X509_free(in);
  X509_free(other);
  EVP_PKEY_free(cak);
  EVP_PKEY_free(ik);
  EVP_PKEY_free(ok);
}

static void remove_fixtures(void) {
  DIR *d = opendir(tdir);
  struct dirent *e;
  if (d == NULL) return;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      unlink(fp(e->d_name));
  closedir(d);
  rmdir(tdir);
}

/* ---- configurations and the in-process wire ------------------------------ */

static tr_tls_config_t *server_cfg_ex(const char *cert, const char *key,
                                      int minv, int maxv,
                                      const char *const *alpn, size_t nalpn) {
  tr_tls_server_opts_t o;
  tr_tls_config_t *cfg = NULL;
  char err[256];
  tr_tls_server_opts_init(&o);
  o.cert_file = fp(cert);
  o.key_file = fp(key);
  o.min_version = minv;
  o.max_version = maxv;
  o.alpn = alpn;
  o.alpn_count = nalpn;
  int rc = tr_tls_server_config_new(&o, &cfg, err, sizeof(err));
  if (rc != 0) fprintf(stderr, "server config: %s\n", err);
  ck_assert_int_eq(rc, 0);
  ck_assert_str_eq(err, "");
  return cfg;
}

static tr_tls_config_t *server_cfg(int maxv) {
  return server_cfg_ex("server.pem", "server.key", 0, maxv, NULL, 0);
}

static tr_tls_config_t *client_cfg_ex(const char *ca, int insecure, int minv,
                                      int maxv, const char *const *alpn,
                                      size_t nalpn) {
  tr_tls_client_opts_t o;
  tr_tls_config_t *cfg = NULL;
  char err[256];
  tr_tls_client_opts_init(&o);
  o.ca_file = ca ? fp(ca) : NULL;
  o.insecure_no_verify = insecure;
  o.min_version = minv;
  o.max_version = maxv;
  o.alpn = alpn;
  o.alpn_count = nalpn;
  int rc = tr_tls_client_config_new(&o, &cfg, err, sizeof(err));
  if (rc != 0) fprintf(stderr, "client config: %s\n", err);
  ck_assert_int_eq(rc, 0);
  return cfg;
}

static tr_tls_config_t *client_cfg(int maxv) {
  return client_cfg_ex("ca.pem", 0, 0, maxv, NULL, 0);
}

typedef struct pair {
  tr_tls_t *c, *s;
  int crc, src; /* the first error a feed returned, per receiver */
} pair_t;

static void pair_new(pair_t *p, tr_tls_config_t *ccfg, tr_tls_config_t *scfg,
                     const char *name) {
  memset(p, 0, sizeof(*p));
  ck_assert_int_eq(tr_tls_new(ccfg, name, &p->c), 0);
  ck_assert_int_eq(tr_tls_new(scfg, NULL, &p->s), 0);
}

static void pair_free(pair_t *p) {
  tr_tls_free(p->c);
  tr_tls_free(p->s);
}

/* Hands a's pending ciphertext to b in pieces of at most step bytes. */
static size_t xfer(tr_tls_t *a, tr_tls_t *b, size_t step, int *rc) {
  size_t moved = 0, n;
  const void *p;
  while ((n = tr_tls_pending(a, &p)) > 0) {
    size_t k = n < step ? n : step;
    int r = tr_tls_feed(b, p, k);
    if (r < 0 && *rc == 0) *rc = r;
    tr_tls_consume(a, k);
    moved += k;
  }
  return moved;
}

/* Moves ciphertext both ways until neither side has any. */
static void pump(pair_t *p, size_t step) {
  size_t moved;
  do {
    moved = xfer(p->c, p->s, step, &p->src);
    moved += xfer(p->s, p->c, step, &p->crc);
  } while (moved > 0);
}

static void handshake(pair_t *p, size_t step) {
  pump(p, step);
  if (tr_tls_handshake_done(p->c) != 1 || tr_tls_handshake_done(p->s) != 1)
    fprintf(stderr, "handshake: client %d (%s), server %d (%s)\n",
            tr_tls_handshake_done(p->c), tr_tls_error_string(p->c),
            tr_tls_handshake_done(p->s), tr_tls_error_string(p->s));
  ck_assert_int_eq(p->crc, 0);
  ck_assert_int_eq(p->src, 0);
  ck_assert_int_eq(tr_tls_handshake_done(p->c), 1);
  ck_assert_int_eq(tr_tls_handshake_done(p->s), 1);
}

/* Reads all the plaintext available (no error allowed). */
static size_t read_all(tr_tls_t *t, unsigned char *buf, size_t cap) {
  size_t got = 0;
  for (;;) {
    int64_t n = tr_tls_read(t, buf + got, cap - got);
    ck_assert_int_ge(n, 0);
    if (n == 0) break;
    got += (size_t)n;
    ck_assert_uint_le(got, cap);
    if (got == cap) break;
  }
  return got;
}

/* One message each way, checked. */
static void exchange(pair_t *p, size_t step) {
  unsigned char buf[64];
  ck_assert_int_eq(tr_tls_write(p->c, "ping", 4), 0);
  pump(p, step);
  ck_assert_uint_eq(read_all(p->s, buf, sizeof(buf)), 4);
  ck_assert_int_eq(memcmp(buf, "ping", 4), 0);
  ck_assert_int_eq(tr_tls_write(p->s, "pong!", 5), 0);
  pump(p, step);
  ck_assert_uint_eq(read_all(p->c, buf, sizeof(buf)), 5);
  ck_assert_int_eq(memcmp(buf, "pong!", 5), 0);
}

static void subject_has(tr_tls_t *t, const char *want) {
  char subj[256];
  int n = tr_tls_peer_subject(t, subj, sizeof(subj));
  ck_assert_int_gt(n, 0);
  ck_assert_uint_eq((size_t)n, strlen(subj));
  if (strstr(subj, want) == NULL)
    ck_abort_msg("peer subject \"%s\" lacks \"%s\"", subj, want);
}

static void reason_has(tr_tls_t *t, const char *want) {
  const char *r = tr_tls_error_string(t);
  if (strstr(r, want) == NULL)
    ck_abort_msg("reason \"%s\" lacks \"%s\"", r, want);
}

static void fill_random(unsigned char *b, size_t n, unsigned seed) {
  uint64_t x = 0x9e3779b97f4a7c15ull ^ seed;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b[i] = (unsigned char)x;
  }
}

/* ---- handshakes and data ------------------------------------------------- */

START_TEST(test_tr_tls_handshake_tls13) {
  tr_tls_config_t *scfg = server_cfg(0), *ccfg = client_cfg(0);
  pair_t p;
  pair_new(&p, ccfg, scfg, "localhost");
  ck_assert_int_eq(tr_tls_handshake_done(p.c), 0);
  ck_assert_int_eq(tr_tls_version(p.c), 0);
  ck_assert_ptr_null(tr_tls_cipher(p.c));
  /* Nothing to read before the handshake; the ClientHello is pending. */
  unsigned char b[8];
  ck_assert_int_eq(tr_tls_read(p.c, b, sizeof(b)), 0);
  ck_assert_uint_gt(tr_tls_pending(p.c, NULL), 0);
  ck_assert_uint_eq(tr_tls_pending(p.s, NULL), 0);
  handshake(&p, SIZE_MAX);
  ck_assert_int_eq(tr_tls_version(p.c), TR_TLS_VERSION_1_3);
  ck_assert_int_eq(tr_tls_version(p.s), TR_TLS_VERSION_1_3);
  ck_assert_ptr_nonnull(tr_tls_cipher(p.c));
  ck_assert_str_eq(tr_tls_cipher(p.c), tr_tls_cipher(p.s));
  ck_assert_ptr_null(tr_tls_alpn(p.c));
  ck_assert_ptr_null(tr_tls_alpn(p.s));
  ck_assert_int_eq(tr_tls_resumed(p.c), 0);
  ck_assert_str_eq(tr_tls_server_name(p.c), "localhost");
  ck_assert_str_eq(tr_tls_server_name(p.s), "localhost");
  subject_has(p.c, "CN=localhost");
  subject_has(p.c, "O=troupe test");
  char subj[8];
  ck_assert_int_eq(tr_tls_peer_subject(p.s, subj, sizeof(subj)), TR_ENOENT);
  /* A short buffer gets a cut, terminated subject and the full length. */
  int full = tr_tls_peer_subject(p.c, subj, sizeof(subj));
  ck_assert_int_gt(full, (int)sizeof(subj));
  ck_assert_uint_eq(strlen(subj), sizeof(subj) - 1);
  ck_assert_str_eq(tr_tls_error_string(p.c), "");
  exchange(&p, SIZE_MAX);
  pair_free(&p);
  tr_tls_config_free(scfg);
  tr_tls_config_free(ccfg);
}
END_TEST

START_TEST(test_tr_tls_handshake_tls12_forced) {
  /* Capped by the client, then by the server. */
  for (int side = 0; side < 2; side++) {
    tr_tls_config_t *scfg = server_cfg(side ? TR_TLS_VERSION_1_2 : 0);
    tr_tls_config_t *ccfg = client_cfg(side ? 0 : TR_TLS_VERSION_1_2);
    pair_t p;
    pair_new(&p, ccfg, scfg, "localhost");
    handshake(&p, SIZE_MAX);
    ck_assert_int_eq(tr_tls_version(p.c), TR_TLS_VERSION_1_2);
    ck_assert_int_eq(tr_tls_version(p.s), TR_TLS_VERSION_1_2);
    subject_has(p.c, "CN=localhost");
    exchange(&p, SIZE_MAX);
    pair_free(&p);
    tr_tls_config_free(scfg);
    tr_tls_config_free(ccfg);
  }
}
END_TEST

START_TEST(test_tr_tls_handshake_no_common_version) {
  tr_tls_config_t *scfg =
      server_cfg_ex("server.pem", "server.key", TR_TLS_VERSION_1_3, 0, NULL, 0);
  tr_tls_config_t *ccfg = client_cfg(TR_TLS_VERSION_1_2);
  pair_t p;
  pair_new(&p, ccfg, scfg, "localhost");
  pump(&p, SIZE_MAX);
  ck_assert_int_eq(p.src, TR_ETLS);
  ck_assert_int_eq(tr_tls_handshake_done(p.s), TR_ETLS);
  ck_assert_int_eq(tr_tls_handshake_done(p.c), TR_ETLS);
  ck_assert_str_ne(tr_tls_error_string(p.s), "");
  ck_assert_str_ne(tr_tls_error_string(p.c), "");
  /* A dead engine says so to every call. */
  unsigned char b[4];
  ck_assert_int_eq(tr_tls_read(p.s, b, 4), TR_ETLS);
  ck_assert_int_eq(tr_tls_write(p.s, "x", 1), TR_ETLS);
  ck_assert_int_eq(tr_tls_feed(p.s, "x", 1), TR_ETLS);
  ck_assert_int_eq(tr_tls_shutdown(p.s), TR_ETLS);
  ck_assert_int_eq(tr_tls_feed_eof(p.s), TR_ETLS);
  pair_free(&p);
  tr_tls_config_free(scfg);
  tr_tls_config_free(ccfg);
}
END_TEST

START_TEST(test_tr_tls_write_before_handshake) {
  for (int v = 0; v < 2; v++) {
    int maxv = v ? TR_TLS_VERSION_1_2 : 0;
    tr_tls_config_t *scfg = server_cfg(maxv), *ccfg = client_cfg(maxv);
    unsigned char buf[64];
    pair_t p;
    pair_new(&p, ccfg, scfg, "localhost");
    /* Queued inside until the handshake is done, in order. */
    ck_assert_int_eq(tr_tls_write(p.c, "early ", 6), 0);
    ck_assert_int_eq(tr_tls_write(p.c, "bird", 4), 0);
    ck_assert_int_eq(tr_tls_write(p.c, NULL, 0), 0);
    ck_assert_int_eq(tr_tls_write(p.s, "server first", 12), 0);
    handshake(&p, SIZE_MAX);
    pump(&p, SIZE_MAX);
    ck_assert_uint_eq(read_all(p.s, buf, sizeof(buf)), 10);
    ck_assert_int_eq(memcmp(buf, "early bird", 10), 0);
    ck_assert_uint_eq(read_all(p.c, buf, sizeof(buf)), 12);
    ck_assert_int_eq(memcmp(buf, "server first", 12), 0);
    pair_free(&p);
    tr_tls_config_free(scfg);
    tr_tls_config_free(ccfg);
  }
}
END_TEST

/* 1 MiB each way, in 1400-byte packets, read as it arrives. */
static void big_transfer(int maxv) {
  const size_t N = (size_t)1 << 20;
  unsigned char *a = malloc(N), *b = malloc(N), *got = malloc(N + 1);
  ck_assert(a && b && got);
  fill_random(a, N, 1);
  fill_random(b, N, 2);
  tr_tls_config_t *scfg = server_cfg(maxv), *ccfg = client_cfg(maxv);
  pair_t p;
  pair_new(&p, ccfg, scfg, "localhost");
  handshake(&p, 1400);
  ck_assert_int_eq(tr_tls_write(p.c, a, N), 0);
  ck_assert_int_eq(tr_tls_write(p.s, b, N / 2), 0);
  ck_assert_int_eq(tr_tls_write(p.s, b + N / 2, N - N / 2), 0);
  /* Everything is encrypted already: move it in packets, then read
   * each side in odd-sized pieces. */
  pump(&p, 1400);
  ck_assert_int_eq(p.src, 0);
  ck_assert_int_eq(p.crc, 0);
  size_t gs = 0, gc;
  for (;;) {
    size_t want = N + 1 - gs < 7777 ? N + 1 - gs : 7777;
    int64_t n = tr_tls_read(p.s, got + gs, want);
    ck_assert_int_ge(n, 0);
    if (n == 0) break;
    gs += (size_t)n;
  }
  ck_assert_uint_eq(gs, N);
  ck_assert_int_eq(memcmp(got, a, N), 0);
  gc = read_all(p.c, got, N + 1);
  ck_assert_uint_eq(gc, N);
  ck_assert_int_eq(memcmp(got, b, N), 0);
  pair_free(&p);
  tr_tls_config_free(scfg);
  tr_tls_config_free(ccfg);
  free(a);
  free(b);
  free(got);
}

START_TEST(test_tr_tls_data_1mib_tls13) { big_transfer(0); }
END_TEST

START_TEST(test_tr_tls_data_1mib_tls12) { big_transfer(TR_TLS_VERSION_1_2); }
END_TEST

/* The handshake and data with every byte of ciphertext delivered alone. */
START_TEST(test_tr_tls_byte_at_a_time) {
  for (int v = 0; v < 2; v++) {
    int maxv = v ? TR_TLS_VERSION_1_2 : 0;
    tr_tls_config_t *scfg = server_cfg(maxv), *ccfg = client_cfg(maxv);
    unsigned char msg[1000], got[1100];
    fill_random(msg, sizeof(msg), 3);
    pair_t p;
    pair_new(&p, ccfg, scfg, "localhost");
    handshake(&p, 1);
    pump(&p, 1); /* TLS 1.3 tickets */
    ck_assert_int_eq(tr_tls_read(p.c, got, sizeof(got)), 0);
    /* One record of 1000 bytes: nothing is readable before its last byte
     * arrives, and all of it then. */
    ck_assert_int_eq(tr_tls_write(p.c, msg, sizeof(msg)), 0);
    const void *w;
    size_t n = tr_tls_pending(p.c, &w);
    ck_assert_uint_gt(n, sizeof(msg));
    unsigned char *copy = malloc(n);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, w, n);
    tr_tls_consume(p.c, n);
    ck_assert_uint_eq(tr_tls_pending(p.c, NULL), 0);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
      ck_assert_int_eq(tr_tls_feed(p.s, copy + i, 1), 0);
      int64_t r = tr_tls_read(p.s, got + total, sizeof(got) - total);
      ck_assert_int_ge(r, 0);
      if (i + 1 < n) ck_assert_int_eq(r, 0);
      total += (size_t)r;
    }
    ck_assert_uint_eq(total, sizeof(msg));
    ck_assert_int_eq(memcmp(got, msg, sizeof(msg)), 0);
    free(copy);
    /* And the other way, in 3-byte pieces. */
    ck_assert_int_eq(tr_tls_write(p.s, msg, sizeof(msg)), 0);
    pump(&p, 3);
    ck_assert_uint_eq(read_all(p.c, got, sizeof(got)), sizeof(msg));
    ck_assert_int_eq(memcmp(got, msg, sizeof(msg)), 0);
    pair_free(&p);
    tr_tls_config_free(scfg);
    tr_tls_config_free(ccfg);
  }
}
END_TEST

/* tr_tls_take copies and consumes, in as many calls as the buffer needs. */
START_TEST(test_tr_tls_take) {
  tr_tls_config_t *scfg = server_cfg(0), *ccfg = client_cfg(0);
  pair_t p;
  pair_new(&p, ccfg, scfg, "localhost");
  unsigned char buf[100];
  size_t total = 0, n, want = tr_tls_pending(p.c, NULL);
  ck_assert_uint_gt(want, sizeof(buf));
  while ((n = tr_tls_take(p.c, buf, sizeof(buf))) > 0) {
    ck_assert_uint_le(n, sizeof(buf));
    ck_assert_int_eq(tr_tls_feed(p.s, buf, n), 0);
    total += n;
  }
  ck_assert_uint_eq(total, want);
  ck_assert_uint_eq(tr_tls_take(p.c, buf, 0), 0);
  /* Consuming more than is pending is cut to what is. */
  ck_assert_uint_gt(tr_tls_pending(p.s, NULL), 0);
  tr_tls_consume(p.s, SIZE_MAX);
  ck_assert_uint_eq(tr_tls_pending(p.s, NULL), 0);
  pair_free(&p);
  tr_tls_config_free(scfg);
  tr_tls_config_free(ccfg);
}
END_TEST

/* ---- ALPN and SNI -------------------------------------------------------- */

static void alpn_case(const char *const *salpn, size_t ns,
                      const char *const *calpn, size_t nc, const char *want) {
  tr_tls_config_t *scfg =
      server_cfg_ex("server.pem", "server.key", 0, 0, salpn, ns);
  tr_tls_config_t *ccfg = client_cfg_ex("ca.pem", 0, 0, 0, calpn, nc);
  pair_t p;
  pair_new(&p, ccfg, scfg, "localhost");
  handshake(&p, SIZE_MAX);
  if (want == NULL) {
    ck_assert_ptr_null(tr_tls_alpn(p.c));
    ck_assert_ptr_null(tr_tls_alpn(p.s));
  } else {
    ck_assert_ptr_nonnull(tr_tls_alpn(p.c));
    ck_assert_str_eq(tr_tls_alpn(p.c), want);
    ck_assert_str_eq(tr_tls_alpn(p.s), want);
  }
  exchange(&p, SIZE_MAX);
  pair_free(&p);
  tr_tls_config_free(scfg);
  tr_tls_config_free(ccfg);
}

START_TEST(test_tr_tls_alpn) {
  static const char *const srv[] = {"h2", "http/1.1"};
  static const char *const both[] = {"http/1.1", "h2"};
  static const char *const h1[] = {"http/1.1"};
  static const char *const foo[] = {"foo", "bar"};
  /* The server's preference wins over the client's order. */
  alpn_case(srv, 2, both, 2, "h2");
  alpn_case(srv, 2, h1, 1, "http/1.1");
  /* No ALPN on one side: none agreed, the handshake proceeds. */
  alpn_case(srv, 2, NULL, 0, NULL);
  alpn_case(NULL, 0, both, 2, NULL);
  /* Nothing in common: no_application_protocol, both sides fail. */
  tr_tls_config_t *scfg =
      server_cfg_ex("server.pem", "server.key", 0, 0, srv, 2);
  tr_tls_config_t *ccfg = client_cfg_ex("ca.pem", 0, 0, 0, foo, 2);
  pair_t p;
  pair_new(&p, ccfg, scfg, "localhost");
  pump(&p, SIZE_MAX);
  ck_assert_int_eq(p.src, TR_ETLS);
  ck_assert_int_eq(p.crc, TR_ETLS);
  reason_has(p.s, "no application protocol");
  reason_has(p.c, "no application protocol");
  ck_assert_ptr_null(tr_tls_alpn(p.c));
  pair_free(&p);
  tr_tls_config_free(scfg);
  tr_tls_config_free(ccfg);
}
END_TEST

static tr_tls_config_t *sni_server_cfg(void) {
  tr_tls_sni_cert_t sni[2] = {
      {"*.wild.test", fp("wild.pem"), fp("wild.key")},
      {"alt.test", fp("alt.pem"), fp("alt.key")},
  };
  tr_tls_server_opts_t o;
  tr_tls_config_t *cfg = NULL;
  char err[256];
  tr_tls_server_opts_init(&o);
  o.cert_file = fp("server.pem");
  o.key_file = fp("server.key");
  o.sni = sni;
  o.sni_count = 2;
  int rc = tr_tls_server_config_new(&o, &cfg, err, sizeof(err));
  if (rc) fprintf(stderr, "%s\n", err);
  ck_assert_int_eq(rc, 0);
  return cfg;
}

static void sni_case(tr_tls_config_t *scfg, tr_tls_config_t *ccfg,
                     const char *name, const char *want_cn,
                     const char *want_sni) {
  pair_t p;
  pair_new(&p, ccfg, scfg, name);
  handshake(&p, SIZE_MAX);
  subject_has(p.c, want_cn);
  if (want_sni == NULL) ck_assert_ptr_null(tr_tls_server_name(p.s));
  else
    ck_assert_str_eq(tr_tls_server_name(p.s), want_sni);
  exchange(&p, SIZE_MAX);
  pair_free(&p);
}

START_TEST(test_tr_tls_sni) {
  for (int v = 0; v < 2; v++) {
    int maxv = v ? TR_TLS_VERSION_1_2 : 0;
    tr_tls_config_t *scfg = sni_server_cfg();
    tr_tls_config_t *ccfg = client_cfg(maxv);
    tr_tls_config_t *insecure = client_cfg_ex(NULL, 1, 0, maxv, NULL, 0);
    /* Exact (its chain file brings the intermediate: the client trusts
     * the root only), case-insensitive, wildcard, default. */
    sni_case(scfg, ccfg, "alt.test", "CN=alt.test", "alt.test");
    sni_case(scfg, ccfg, "ALT.Test", "CN=alt.test", "ALT.Test");
    sni_case(scfg, ccfg, "x.wild.test", "CN=*.wild.test", "x.wild.test");
    sni_case(scfg, ccfg, "localhost", "CN=localhost", "localhost");
    /* A wildcard covers one label only; unknown names get the default. */
    sni_case(scfg, insecure, "a.b.wild.test", "CN=localhost", "a.b.wild.test");
    sni_case(scfg, insecure, "wild.test", "CN=localhost", "wild.test");
    sni_case(scfg, insecure, "nowhere.example", "CN=localhost",
             "nowhere.example");
    /* An address is checked against the IP entries, and sent no SNI. */
    sni_case(scfg, ccfg, "127.0.0.1", "CN=localhost", NULL);
    tr_tls_config_free(scfg);
    tr_tls_config_free(ccfg);
    tr_tls_config_free(insecure);
  }
}
END_TEST

/* ---- verification -------------------------------------------------------- */

/* The client must refuse the server's certificate with TR_ECERT and say
 * why; the server hears an alert (TR_ETLS). */
static void refused(const char *cert, const char *key, const char *name,
                    int maxv, const char *why) {
  tr_tls_config_t *scfg = server_cfg_ex(cert, key, 0, 0, NULL, 0);
  tr_tls_config_t *ccfg = client_cfg(maxv);
  pair_t p;
  pair_new(&p, ccfg, scfg, name);
  pump(&p, SIZE_MAX);
  ck_assert_int_eq(p.crc, TR_ECERT);
  ck_assert_int_eq(tr_tls_handshake_done(p.c), TR_ECERT);
  reason_has(p.c, "certificate verify failed");
  reason_has(p.c, why);
  ck_assert_int_eq(p.src, TR_ETLS);
  ck_assert_int_eq(tr_tls_handshake_done(p.s), TR_ETLS);
  reason_has(p.s, "alert");
  /* The refused certificate can be named in a log. */
  subject_has(p.c, "CN=");
  unsigned char b[4];
  ck_assert_int_eq(tr_tls_read(p.c, b, sizeof(b)), TR_ECERT);
  ck_assert_int_eq(tr_tls_write(p.c, "x", 1), TR_ECERT);
  pair_free(&p);
  tr_tls_config_free(scfg);
  tr_tls_config_free(ccfg);
}

START_TEST(test_tr_tls_verify_unknown_ca) {
  refused("untrusted.pem", "untrusted.key", "localhost", 0,
          "unable to get local issuer certificate");
  refused("untrusted.pem", "untrusted.key", "localhost", TR_TLS_VERSION_1_2,
          "unable to get local issuer certificate");
}
END_TEST

START_TEST(test_tr_tls_verify_expired) {
  refused("expired.pem", "expired.key", "localhost", 0,
          "certificate has expired");
  refused("expired.pem", "expired.key", "localhost", TR_TLS_VERSION_1_2,
          "certificate has expired");
}
END_TEST

START_TEST(test_tr_tls_verify_wrong_host) {
  refused("wrong.pem", "wrong.key", "localhost", 0, "hostname mismatch");
  refused("wrong.pem", "wrong.key", "localhost", 0, "not for localhost");
  refused("server.pem", "server.key", "otherhost", 0, "hostname mismatch");
  refused("server.pem", "server.key", "127.0.0.2", 0, "IP address mismatch");
  refused("server.pem", "server.key", "::1", 0, "IP address mismatch");
  /* No partial wildcards: "*.wild.test" is not "wild.test". */
  refused("wild.pem", "wild.key", "wild.test", 0, "hostname mismatch");
}
END_TEST

/* insecure_no_verify accepts anything; a system-store client does not
 * know our CA. */
START_TEST(test_tr_tls_verify_insecure_and_system_store) {
  const char *certs[] = {"expired", "untrusted", "wrong"};
  tr_tls_config_t *ccfg = client_cfg_ex(NULL, 1, 0, 0, NULL, 0);
  for (int i = 0; i < 3; i++) {
    char c[32], k[32];
    snprintf(c, sizeof(c), "%s.pem", certs[i]);
    snprintf(k, sizeof(k), "%s.key", certs[i]);
    tr_tls_config_t *scfg = server_cfg_ex(c, k, 0, 0, NULL, 0);
    pair_t p;
    pair_new(&p, ccfg, scfg, "localhost");
    handshake(&p, SIZE_MAX);
    exchange(&p, SIZE_MAX);
    pair_free(&p);
    tr_tls_config_free(scfg);
  }
  /* And without a name at all. */
  tr_tls_config_t *scfg = server_cfg(0);
  pair_t p;
  pair_new(&p, ccfg, scfg, NULL);
  handshake(&p, SIZE_MAX);
  ck_assert_ptr_null(tr_tls_server_name(p.c));
  ck_assert_ptr_null(tr_tls_server_name(p.s));
  pair_free(&p);
  tr_tls_config_free(ccfg);
  ccfg = client_cfg_ex(NULL, 0, 0, 0, NULL, 0);
  pair_new(&p, ccfg, scfg, "localhost");
  pump(&p, SIZE_MAX);
  ck_assert_int_eq(p.crc, TR_ECERT);
  pair_free(&p);
  tr_tls_config_free(scfg);
  tr_tls_config_free(ccfg);
}
END_TEST

/* ---- failures of the stream ---------------------------------------------- */

START_TEST(test_tr_tls_garbage_handshake) {
  tr_tls_config_t *scfg = server_cfg(0), *ccfg = client_cfg(0);
  tr_tls_t *s, *c;
  /* Plain HTTP to a TLS server. */
  static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ck_assert_int_eq(tr_tls_new(scfg, NULL, &s), 0);
  ck_assert_int_eq(tr_tls_feed(s, http, sizeof(http) - 1), TR_ETLS);
  ck_assert_int_eq(tr_tls_handshake_done(s), TR_ETLS);
  ck_assert_str_ne(tr_tls_error_string(s), "");
  tr_tls_free(s);
  /* A record header announcing a handshake, then nonsense. */
  static const unsigned char bad[] = {0x16, 0x03, 0x01, 0x00, 0x05,
                                      0xff, 0xff, 0xff, 0xff, 0xff};
  ck_assert_int_eq(tr_tls_new(scfg, NULL, &s), 0);
  ck_assert_int_eq(tr_tls_feed(s, bad, sizeof(bad)), TR_ETLS);
  /* The alert is pending for the peer. */
  ck_assert_uint_gt(tr_tls_pending(s, NULL), 0);
  tr_tls_free(s);
  /* A client that gets garbage for an answer. */
  ck_assert_int_eq(tr_tls_new(ccfg, "localhost", &c), 0);
  ck_assert_uint_gt(tr_tls_pending(c, NULL), 0);
  tr_tls_consume(c, SIZE_MAX);
  ck_assert_int_eq(tr_tls_feed(c, http, sizeof(http) - 1), TR_ETLS);
  ck_assert_str_ne(tr_tls_error_string(c), "");
  tr_tls_free(c);
  /* Random bytes, fed in random splits: never more than "feed more" or
   * TR_ETLS (and no crash, which the sanitizer builds check). */
  unsigned char junk[600];
  for (unsigned i = 0; i < 300; i++) {
    fill_random(junk, sizeof(junk), 100 + i);
    if (i % 3 == 0) { /* a plausible record header in front */
      junk[0] = 0x16;
      junk[1] = 0x03;
      junk[2] = 0x01;
      junk[3] = 0x02;
      junk[4] = 0x00;
    }
    tr_tls_t *t;
    ck_assert_int_eq(
        tr_tls_new(i % 2 ? ccfg : scfg, i % 2 ? "localhost" : NULL, &t), 0);
    tr_tls_consume(t, tr_tls_pending(t, NULL));
    size_t at = 0;
    int rc = 0;
    while (at < sizeof(junk) && rc == 0) {
      size_t k = 1 + junk[at] % 97;
      if (k > sizeof(junk) - at) k = sizeof(junk) - at;
      rc = tr_tls_feed(t, junk + at, k);
      at += k;
    }
    ck_assert(rc == 0 || rc == TR_ETLS);
    tr_tls_free(t);
  }
  tr_tls_config_free(scfg);
  tr_tls_config_free(ccfg);
}
END_TEST

START_TEST(test_tr_tls_corrupted_record) {
  for (int v = 0; v < 2; v++) {
    int maxv = v ? TR_TLS_VERSION_1_2 : 0;
    tr_tls_config_t *scfg = server_cfg(maxv), *ccfg = client_cfg(maxv);
    pair_t p;
    unsigned char buf[256];
    pair_new(&p, ccfg, scfg, "localhost");
    handshake(&p, SIZE_MAX);
    ck_assert_int_eq(tr_tls_write(p.c, "integrity matters", 17), 0);
    const void *w;
    size_t n = tr_tls_pending(p.c, &w);
    ck_assert_uint_gt(n, 20);
    memcpy(buf, w, n);
    tr_tls_consume(p.c, n);
    buf[n - 3] ^= 0x40; /* inside the tag */
    ck_assert_int_eq(tr_tls_feed(p.s, buf, n), 0);
    ck_assert_int_eq(tr_tls_read(p.s, buf, sizeof(buf)), TR_ETLS);
    reason_has(p.s, "bad record mac");
    ck_assert_int_eq(tr_tls_handshake_done(p.s), TR_ETLS);
    /* The alert reaches the client, which fails too. */
    pump(&p, SIZE_MAX);
    ck_assert_int_eq(tr_tls_read(p.c, buf, sizeof(buf)), TR_ETLS);
    reason_has(p.c, "alert");
    pair_free(&p);
    tr_tls_config_free(scfg);
    tr_tls_config_free(ccfg);
  }
}
END_TEST

START_TEST(test_tr_tls_close_notify) {
  for (int v = 0; v < 2; v++) {
    int maxv = v ? TR_TLS_VERSION_1_2 : 0;
    tr_tls_config_t *scfg = server_cfg(maxv), *ccfg = client_cfg(maxv);
    pair_t p;
    unsigned char buf[64];
    pair_new(&p, ccfg, scfg, "localhost");
    handshake(&p, SIZE_MAX);
    ck_assert_int_eq(tr_tls_write(p.c, "bye", 3), 0);
    ck_assert_int_eq(tr_tls_shutdown(p.c), 0);
    ck_assert_int_eq(tr_tls_shutdown(p.c), 0);
    ck_assert_int_eq(tr_tls_write(p.c, "more", 4), TR_EPIPE);
    pump(&p, SIZE_MAX);
    /* The data first, then the clean end, which sticks. */
    ck_assert_int_eq(tr_tls_read(p.s, buf, sizeof(buf)), 3);
    ck_assert_int_eq(memcmp(buf, "bye", 3), 0);
    ck_assert_int_eq(tr_tls_read(p.s, buf, sizeof(buf)), TR_ECLOSED);
    ck_assert_int_eq(tr_tls_read(p.s, buf, sizeof(buf)), TR_ECLOSED);
    ck_assert_int_eq(tr_tls_handshake_done(p.s), 1);
    /* Half-closed: the server may still answer, the client still read. */
    ck_assert_int_eq(tr_tls_write(p.s, "late reply", 10), 0);
    ck_assert_int_eq(tr_tls_shutdown(p.s), 0);
    pump(&p, SIZE_MAX);
    ck_assert_int_eq(tr_tls_read(p.c, buf, sizeof(buf)), 10);
    ck_assert_int_eq(memcmp(buf, "late reply", 10), 0);
    ck_assert_int_eq(tr_tls_read(p.c, buf, sizeof(buf)), TR_ECLOSED);
    /* TCP's end after close_notify is clean. */
    ck_assert_int_eq(tr_tls_feed_eof(p.s), 0);
    ck_assert_int_eq(tr_tls_read(p.s, buf, sizeof(buf)), TR_ECLOSED);
    ck_assert_int_eq(tr_tls_feed(p.s, "x", 1), TR_EINVAL);
    ck_assert_str_eq(tr_tls_error_string(p.s), "");
    pair_free(&p);
    tr_tls_config_free(scfg);
    tr_tls_config_free(ccfg);
  }
}
END_TEST

/* A shutdown asked for during the handshake follows the queued data. */
START_TEST(test_tr_tls_shutdown_before_handshake) {
  tr_tls_config_t *scfg = server_cfg(0), *ccfg = client_cfg(0);
  pair_t p;
  unsigned char buf[64];
  pair_new(&p, ccfg, scfg, "localhost");
  ck_assert_int_eq(tr_tls_write(p.c, "one shot", 8), 0);
  ck_assert_int_eq(tr_tls_shutdown(p.c), 0);
  ck_assert_int_eq(tr_tls_write(p.c, "x", 1), TR_EPIPE);
  handshake(&p, SIZE_MAX);
  pump(&p, SIZE_MAX);
  ck_assert_int_eq(tr_tls_read(p.s, buf, sizeof(buf)), 8);
  ck_assert_int_eq(memcmp(buf, "one shot", 8), 0);
  ck_assert_int_eq(tr_tls_read(p.s, buf, sizeof(buf)), TR_ECLOSED);
  pair_free(&p);
  tr_tls_config_free(scfg);
  tr_tls_config_free(ccfg);
}
END_TEST

START_TEST(test_tr_tls_truncation) {
  for (int v = 0; v < 2; v++) {
    int maxv = v ? TR_TLS_VERSION_1_2 : 0;
    tr_tls_config_t *scfg = server_cfg(maxv), *ccfg = client_cfg(maxv);
    pair_t p;
    unsigned char buf[64], wire[256];
    /* Whole records, then TCP ends without close_notify. */
    pair_new(&p, ccfg, scfg, "localhost");
    handshake(&p, SIZE_MAX);
    ck_assert_int_eq(tr_tls_write(p.s, "complete", 8), 0);
    pump(&p, SIZE_MAX);
    ck_assert_int_eq(tr_tls_feed_eof(p.c), 0);
    ck_assert_int_eq(tr_tls_read(p.c, buf, sizeof(buf)), 8);
    ck_assert_int_eq(tr_tls_read(p.c, buf, sizeof(buf)), TR_ECONNRESET);
    reason_has(p.c, "without close_notify");
    ck_assert_int_eq(tr_tls_handshake_done(p.c), TR_ECONNRESET);
    pair_free(&p);
    /* A record cut in the middle. */
    pair_new(&p, ccfg, scfg, "localhost");
    handshake(&p, SIZE_MAX);
    pump(&p, SIZE_MAX);
    ck_assert_int_eq(tr_tls_read(p.c, buf, sizeof(buf)), 0);
    ck_assert_int_eq(tr_tls_write(p.s, "cut short", 9), 0);
    size_t n = tr_tls_take(p.s, wire, sizeof(wire));
    ck_assert_uint_gt(n, 10);
    ck_assert_int_eq(tr_tls_feed(p.c, wire, n - 5), 0);
    ck_assert_int_eq(tr_tls_read(p.c, buf, sizeof(buf)), 0);
    ck_assert_int_eq(tr_tls_feed_eof(p.c), 0);
    ck_assert_int_eq(tr_tls_read(p.c, buf, sizeof(buf)), TR_ECONNRESET);
    pair_free(&p);
    /* The transport ends during the handshake. */
    pair_new(&p, ccfg, scfg, "localhost");
    xfer(p.c, p.s, SIZE_MAX, &p.src);
    ck_assert_int_eq(tr_tls_feed_eof(p.c), TR_ECONNRESET);
    ck_assert_int_eq(tr_tls_handshake_done(p.c), TR_ECONNRESET);
    ck_assert_int_eq(tr_tls_feed_eof(p.s), TR_ECONNRESET);
    pair_free(&p);
    tr_tls_config_free(scfg);
    tr_tls_config_free(ccfg);
  }
}
END_TEST

/* ---- sessions and client certificates ------------------------------------ */

START_TEST(test_tr_tls_session_resumption) {
  for (int v = 0; v < 2; v++) {
    int maxv = v ? TR_TLS_VERSION_1_2 : 0;
    tr_tls_config_t *scfg = server_cfg(maxv), *ccfg = client_cfg(maxv);
    tr_tls_session_t *sess = NULL;
    pair_t p;
    pair_new(&p, ccfg, scfg, "localhost");
    ck_assert_int_eq(tr_tls_session_get(p.c, &sess), TR_ENOENT);
    ck_assert_int_eq(tr_tls_session_get(p.s, &sess), TR_EINVAL);
    handshake(&p, SIZE_MAX);
    exchange(&p, SIZE_MAX); /* the client reads the TLS 1.3 tickets */
    ck_assert_int_eq(tr_tls_session_get(p.c, &sess), 0);
    ck_assert_ptr_nonnull(sess);
    ck_assert_int_eq(tr_tls_session_set(p.c, sess), TR_EINVAL); /* too late */
    pair_free(&p);
    for (int again = 0; again < 2; again++) {
      pair_new(&p, ccfg, scfg, "localhost");
      ck_assert_int_eq(tr_tls_session_set(p.s, sess), TR_EINVAL);
      ck_assert_int_eq(tr_tls_session_set(p.c, sess), 0);
      handshake(&p, SIZE_MAX);
      ck_assert_int_eq(tr_tls_resumed(p.c), 1);
      ck_assert_int_eq(tr_tls_resumed(p.s), 1);
      ck_assert_int_eq(tr_tls_version(p.c),
                       v ? TR_TLS_VERSION_1_2 : TR_TLS_VERSION_1_3);
      subject_has(p.c, "CN=localhost");
      exchange(&p, SIZE_MAX);
      pair_free(&p);
    }
    tr_tls_session_free(sess);
    /* Another server (other ticket keys) declines: a full handshake. */
    pair_new(&p, ccfg, scfg, "localhost");
    handshake(&p, SIZE_MAX);
    exchange(&p, SIZE_MAX);
    ck_assert_int_eq(tr_tls_session_get(p.c, &sess), 0);
    pair_free(&p);
    tr_tls_config_t *scfg2 = server_cfg(maxv);
    pair_new(&p, ccfg, scfg2, "localhost");
    ck_assert_int_eq(tr_tls_session_set(p.c, sess), 0);
    handshake(&p, SIZE_MAX);
    ck_assert_int_eq(tr_tls_resumed(p.c), 0);
    ck_assert_int_eq(tr_tls_resumed(p.s), 0);
    exchange(&p, SIZE_MAX);
    pair_free(&p);
    tr_tls_session_free(sess);
    tr_tls_session_free(NULL);
    /* Without tickets the server keeps the sessions: still resumed. */
    tr_tls_server_opts_t so;
    tr_tls_config_t *stateful = NULL;
    tr_tls_server_opts_init(&so);
    so.cert_file = fp("server.pem");
    so.key_file = fp("server.key");
    so.max_version = maxv;
    so.no_tickets = 1;
    ck_assert_int_eq(tr_tls_server_config_new(&so, &stateful, NULL, 0), 0);
    pair_new(&p, ccfg, stateful, "localhost");
    handshake(&p, SIZE_MAX);
    exchange(&p, SIZE_MAX);
    ck_assert_int_eq(tr_tls_session_get(p.c, &sess), 0);
    pair_free(&p);
    pair_new(&p, ccfg, stateful, "localhost");
    ck_assert_int_eq(tr_tls_session_set(p.c, sess), 0);
    handshake(&p, SIZE_MAX);
    ck_assert_int_eq(tr_tls_resumed(p.c), 1);
    ck_assert_int_eq(tr_tls_resumed(p.s), 1);
    exchange(&p, SIZE_MAX);
    pair_free(&p);
    tr_tls_session_free(sess);
    tr_tls_config_free(stateful);
    tr_tls_config_free(scfg2);
    tr_tls_config_free(scfg);
    tr_tls_config_free(ccfg);
  }
}
END_TEST

static tr_tls_config_t *mtls_server(int optional) {
  tr_tls_server_opts_t o;
  tr_tls_config_t *cfg = NULL;
  tr_tls_server_opts_init(&o);
  o.cert_file = fp("server.pem");
  o.key_file = fp("server.key");
  o.client_ca_file = fp("ca.pem");
  o.client_cert_optional = optional;
  ck_assert_int_eq(tr_tls_server_config_new(&o, &cfg, NULL, 0), 0);
  return cfg;
}

START_TEST(test_tr_tls_client_certificate) {
  for (int v = 0; v < 2; v++) {
    int maxv = v ? TR_TLS_VERSION_1_2 : 0;
    tr_tls_config_t *scfg = mtls_server(0), *opt = mtls_server(1);
    tr_tls_client_opts_t o;
    tr_tls_config_t *with = NULL, *bad = NULL;
    tr_tls_client_opts_init(&o);
    o.ca_file = fp("ca.pem");
    o.cert_file = fp("client.pem");
    o.key_file = fp("client.key");
    o.max_version = maxv;
    ck_assert_int_eq(tr_tls_client_config_new(&o, &with, NULL, 0), 0);
    o.cert_file = fp("untrusted.pem");
    o.key_file = fp("untrusted.key");
    ck_assert_int_eq(tr_tls_client_config_new(&o, &bad, NULL, 0), 0);
    tr_tls_config_t *without = client_cfg(maxv);
    pair_t p;
    /* A trusted client certificate: the server sees who it is. */
    pair_new(&p, with, scfg, "localhost");
    handshake(&p, SIZE_MAX);
    exchange(&p, SIZE_MAX);
    subject_has(p.s, "CN=test client");
    pair_free(&p);
    /* None, where one is required: TR_ECERT on the server. */
    pair_new(&p, without, scfg, "localhost");
    pump(&p, SIZE_MAX);
    ck_assert_int_eq(p.src, TR_ECERT);
    reason_has(p.s, "no certificate");
    /* TLS 1.3 clients finish first, and learn it from the alert. */
    unsigned char b[8];
    ck_assert_int_eq(tr_tls_read(p.c, b, sizeof(b)), TR_ETLS);
    pair_free(&p);
    /* One from an unknown CA: refused even where it is optional. */
    pair_new(&p, bad, opt, "localhost");
    pump(&p, SIZE_MAX);
    ck_assert_int_eq(p.src, TR_ECERT);
    reason_has(p.s, "unable to get local issuer certificate");
    pair_free(&p);
    /* Optional: a client without one is let in. */
    pair_new(&p, without, opt, "localhost");
    handshake(&p, SIZE_MAX);
    exchange(&p, SIZE_MAX);
    char s[8];
    ck_assert_int_eq(tr_tls_peer_subject(p.s, s, sizeof(s)), TR_ENOENT);
    pair_free(&p);
    tr_tls_config_free(scfg);
    tr_tls_config_free(opt);
    tr_tls_config_free(with);
    tr_tls_config_free(bad);
    tr_tls_config_free(without);
  }
}
END_TEST

/* ---- configurations ------------------------------------------------------ */

static int srv_try(const char *cert, const char *key, char *err,
                   size_t errlen) {
  tr_tls_server_opts_t o;
  tr_tls_config_t *cfg = (tr_tls_config_t *)&o; /* must be reset */
  tr_tls_server_opts_init(&o);
  o.cert_file = cert ? fp(cert) : NULL;
  o.key_file = key ? fp(key) : NULL;
  int rc = tr_tls_server_config_new(&o, &cfg, err, errlen);
  if (rc == 0) tr_tls_config_free(cfg);
  else
    ck_assert_ptr_null(cfg);
  return rc;
}

START_TEST(test_tr_tls_config_errors) {
  char err[256];
  tr_tls_config_t *cfg = NULL;
  tr_tls_server_opts_t so;
  tr_tls_client_opts_t co;

  ck_assert_int_eq(tr_tls_server_config_new(NULL, &cfg, err, sizeof(err)),
                   TR_EINVAL);
  ck_assert_str_ne(err, "");
  tr_tls_server_opts_init(&so);
  ck_assert_int_eq(tr_tls_server_config_new(&so, NULL, NULL, 0), TR_EINVAL);
  ck_assert_int_eq(srv_try(NULL, "server.key", err, sizeof(err)), TR_EINVAL);
  ck_assert_int_eq(srv_try("missing.pem", "server.key", err, sizeof(err)),
                   TR_ENOENT);
  ck_assert_ptr_nonnull(strstr(err, "missing.pem"));
  ck_assert_ptr_nonnull(strstr(err, "no such file"));
  ck_assert_int_eq(srv_try("server.pem", "missing.key", err, sizeof(err)),
                   TR_ENOENT);
  ck_assert_int_eq(srv_try("garbage.pem", "server.key", err, sizeof(err)),
                   TR_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "no certificate"));
  ck_assert_int_eq(srv_try("server.pem", "garbage.pem", err, sizeof(err)),
                   TR_EINVAL);
  ck_assert_int_eq(srv_try("server.pem", "wrong.key", err, sizeof(err)),
                   TR_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "does not match"));
  ck_assert_int_eq(srv_try("server.pem", "encrypted.key", err, sizeof(err)),
                   TR_EINVAL);
  ck_assert_int_eq(srv_try("server.pem", "server.key", err, 0), 0);
  ck_assert_int_eq(srv_try("server.pem", "server.key", NULL, 0), 0);
  if (geteuid() != 0) { /* root reads anything */
    ck_assert_int_eq(chmod(fp("encrypted.key"), 0), 0);
    ck_assert_int_eq(srv_try("server.pem", "encrypted.key", err, sizeof(err)),
                     TR_EPERM);
    ck_assert_int_eq(chmod(fp("encrypted.key"), 0600), 0);
  }
  /* A short error buffer is cut and terminated. */
  char tiny[8];
  ck_assert_int_eq(srv_try("missing.pem", "server.key", tiny, sizeof(tiny)),
                   TR_ENOENT);
  ck_assert_uint_eq(strlen(tiny), sizeof(tiny) - 1);

  /* Versions, ALPN, SNI. */
  const int versions[][2] = {{0x0301, 0},
                             {0, 0x0302},
                             {1, 0},
                             {TR_TLS_VERSION_1_3, TR_TLS_VERSION_1_2}};
  for (int i = 0; i < 4; i++) {
    tr_tls_server_opts_init(&so);
    so.cert_file = fp("server.pem");
    so.key_file = fp("server.key");
    so.min_version = versions[i][0];
    so.max_version = versions[i][1];
    ck_assert_int_eq(tr_tls_server_config_new(&so, &cfg, err, sizeof(err)),
                     TR_EINVAL);
  }
  static const char *const empty[] = {"h2", ""};
  char long_name[300];
  memset(long_name, 'a', sizeof(long_name) - 1);
  long_name[sizeof(long_name) - 1] = '\0';
  const char *const too_long[] = {long_name};
  tr_tls_server_opts_init(&so);
  so.cert_file = fp("server.pem");
  so.key_file = fp("server.key");
  so.alpn = empty;
  so.alpn_count = 2;
  ck_assert_int_eq(tr_tls_server_config_new(&so, &cfg, err, sizeof(err)),
                   TR_EINVAL);
  so.alpn = too_long;
  so.alpn_count = 1;
  ck_assert_int_eq(tr_tls_server_config_new(&so, &cfg, err, sizeof(err)),
                   TR_EINVAL);
  so.alpn = NULL;
  so.alpn_count = 1;
  ck_assert_int_eq(tr_tls_server_config_new(&so, &cfg, err, sizeof(err)),
                   TR_EINVAL);
  so.alpn_count = 0;
  const char *bad_names[] = {"",        "a.*.test", "*", "*.",
                             "**.test", "x y.test", NULL};
  for (int i = 0; i < 7; i++) {
    tr_tls_sni_cert_t e = {bad_names[i], fp("alt.pem"), fp("alt.key")};
    so.sni = &e;
    so.sni_count = 1;
    ck_assert_int_eq(tr_tls_server_config_new(&so, &cfg, err, sizeof(err)),
                     TR_EINVAL);
  }
  {
    tr_tls_sni_cert_t e = {"alt.test", fp("missing.pem"), fp("alt.key")};
    so.sni = &e;
    ck_assert_int_eq(tr_tls_server_config_new(&so, &cfg, err, sizeof(err)),
                     TR_ENOENT);
    tr_tls_sni_cert_t m = {"alt.test", fp("alt.pem"), fp("server.key")};
    so.sni = &m;
    ck_assert_int_eq(tr_tls_server_config_new(&so, &cfg, err, sizeof(err)),
                     TR_EINVAL);
    so.sni = NULL;
    ck_assert_int_eq(tr_tls_server_config_new(&so, &cfg, err, sizeof(err)),
                     TR_EINVAL);
    so.sni_count = 0;
  }
  so.client_ca_file = fp("missing.pem");
  ck_assert_int_eq(tr_tls_server_config_new(&so, &cfg, err, sizeof(err)),
                   TR_ENOENT);
  so.client_ca_file = fp("garbage.pem");
  ck_assert_int_eq(tr_tls_server_config_new(&so, &cfg, err, sizeof(err)),
                   TR_EINVAL);
  so.client_ca_file = NULL;

  /* The size field: 0 is this release's struct, a larger struct with
   * unknown fields set is refused, one with them 0 accepted. */
  struct {
    tr_tls_server_opts_t o;
    int extra;
  } big;
  memset(&big, 0, sizeof(big));
  big.o.cert_file = fp("server.pem");
  big.o.key_file = fp("server.key");
  big.o.size = 0;
  ck_assert_int_eq(tr_tls_server_config_new(&big.o, &cfg, err, sizeof(err)), 0);
  tr_tls_config_free(cfg);
  big.o.size = sizeof(big);
  ck_assert_int_eq(tr_tls_server_config_new(&big.o, &cfg, err, sizeof(err)), 0);
  tr_tls_config_free(cfg);
  big.extra = 1;
  ck_assert_int_eq(tr_tls_server_config_new(&big.o, &cfg, err, sizeof(err)),
                   TR_EINVAL);
  big.o.size = 3;
  ck_assert_int_eq(tr_tls_server_config_new(&big.o, &cfg, err, sizeof(err)),
                   TR_EINVAL);

  /* Clients. */
  ck_assert_int_eq(tr_tls_client_config_new(NULL, &cfg, err, sizeof(err)),
                   TR_EINVAL);
  tr_tls_client_opts_init(&co);
  co.ca_file = fp("missing.pem");
  ck_assert_int_eq(tr_tls_client_config_new(&co, &cfg, err, sizeof(err)),
                   TR_ENOENT);
  co.ca_file = fp("garbage.pem");
  ck_assert_int_eq(tr_tls_client_config_new(&co, &cfg, err, sizeof(err)),
                   TR_EINVAL);
  co.ca_file = NULL;
  co.ca_dir = fp("ca.pem");
  ck_assert_int_eq(tr_tls_client_config_new(&co, &cfg, err, sizeof(err)),
                   TR_EINVAL);
  co.ca_dir = fp("missing");
  ck_assert_int_eq(tr_tls_client_config_new(&co, &cfg, err, sizeof(err)),
                   TR_ENOENT);
  co.ca_dir = tdir; /* a directory without hashed names: loads, trusts none */
  ck_assert_int_eq(tr_tls_client_config_new(&co, &cfg, err, sizeof(err)), 0);
  tr_tls_config_free(cfg);
  co.ca_dir = NULL;
  co.cert_file = fp("client.pem");
  ck_assert_int_eq(tr_tls_client_config_new(&co, &cfg, err, sizeof(err)),
                   TR_EINVAL);
  co.key_file = fp("server.key");
  ck_assert_int_eq(tr_tls_client_config_new(&co, &cfg, err, sizeof(err)),
                   TR_EINVAL);
  co.cert_file = co.key_file = NULL;
  co.max_version = 0x0300;
  ck_assert_int_eq(tr_tls_client_config_new(&co, &cfg, err, sizeof(err)),
                   TR_EINVAL);
}
END_TEST

START_TEST(test_tr_tls_new_errors) {
  tr_tls_config_t *scfg = server_cfg(0), *ccfg = client_cfg(0);
  tr_tls_config_t *insecure = client_cfg_ex(NULL, 1, 0, 0, NULL, 0);
  tr_tls_t *t = (tr_tls_t *)scfg;
  char name[300];
  memset(name, 'a', sizeof(name) - 1);
  name[sizeof(name) - 1] = '\0';
  ck_assert_int_eq(tr_tls_new(NULL, NULL, &t), TR_EINVAL);
  ck_assert_ptr_null(t);
  ck_assert_int_eq(tr_tls_new(scfg, NULL, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_tls_new(scfg, "localhost", &t), TR_EINVAL);
  ck_assert_int_eq(tr_tls_new(ccfg, NULL, &t), TR_EINVAL);
  ck_assert_int_eq(tr_tls_new(ccfg, "", &t), TR_EINVAL);
  ck_assert_int_eq(tr_tls_new(ccfg, name, &t), TR_EINVAL);
  ck_assert_int_eq(tr_tls_new(insecure, "", &t), TR_EINVAL);
  ck_assert_int_eq(tr_tls_new(ccfg, "localhost", &t), 0);
  ck_assert_int_eq(tr_tls_feed(t, NULL, 1), TR_EINVAL);
  ck_assert_int_eq(tr_tls_feed(t, NULL, 0), 0);
  ck_assert_int_eq(tr_tls_read(t, NULL, 1), TR_EINVAL);
  ck_assert_int_eq(tr_tls_write(t, NULL, 1), TR_EINVAL);
  ck_assert_int_eq(tr_tls_feed(NULL, "x", 1), TR_EINVAL);
  ck_assert_int_eq(tr_tls_read(NULL, name, 1), TR_EINVAL);
  ck_assert_int_eq(tr_tls_write(NULL, "x", 1), TR_EINVAL);
  ck_assert_int_eq(tr_tls_shutdown(NULL), TR_EINVAL);
  ck_assert_int_eq(tr_tls_feed_eof(NULL), TR_EINVAL);
  ck_assert_int_eq(tr_tls_peer_subject(t, NULL, 1), TR_EINVAL);
  ck_assert_int_eq(tr_tls_peer_subject(t, name, sizeof(name)), TR_ENOENT);
  ck_assert_int_eq(tr_tls_session_set(t, NULL), TR_EINVAL);
  tr_tls_free(t);
  tr_tls_free(NULL);
  tr_tls_config_free(NULL);
  tr_tls_config_free(scfg);
  tr_tls_config_free(ccfg);
  tr_tls_config_free(insecure);
}
END_TEST

/* Engines keep their configuration alive; one configuration serves
 * engines on several threads at once. */
START_TEST(test_tr_tls_config_lifetime) {
  tr_tls_config_t *scfg = server_cfg(0), *ccfg = client_cfg(0);
  ck_assert_ptr_eq(tr_tls_config_ref(scfg), scfg);
  tr_tls_config_free(scfg); /* back to one reference */
  pair_t p;
  pair_new(&p, ccfg, scfg, "localhost");
  tr_tls_config_free(scfg);
  tr_tls_config_free(ccfg);
  handshake(&p, SIZE_MAX);
  exchange(&p, SIZE_MAX);
  pair_free(&p);
}
END_TEST

typedef struct {
  tr_tls_config_t *s, *c;
  int ok;
} share_arg_t;

static void *share_thread(void *a) {
  share_arg_t *arg = a;
  for (int i = 0; i < 20; i++) {
    pair_t p;
    unsigned char b[16];
    memset(&p, 0, sizeof(p));
    if (tr_tls_new(arg->c, i % 2 ? "localhost" : "alt.test", &p.c) ||
        tr_tls_new(arg->s, NULL, &p.s))
      return NULL;
    pump(&p, 512);
    if (p.crc || p.src || tr_tls_handshake_done(p.c) != 1 ||
        tr_tls_handshake_done(p.s) != 1 || tr_tls_write(p.c, "mt", 2) != 0)
      return NULL;
    pump(&p, 512);
    if (tr_tls_read(p.s, b, sizeof(b)) != 2) return NULL;
    pair_free(&p);
    arg->ok++;
  }
  return NULL;
}

START_TEST(test_tr_tls_config_shared_by_threads) {
  share_arg_t args[4];
  pthread_t th[4];
  tr_tls_config_t *scfg = sni_server_cfg(), *ccfg = client_cfg(0);
  for (int i = 0; i < 4; i++) {
    args[i].s = scfg;
    args[i].c = ccfg;
    args[i].ok = 0;
    ck_assert_int_eq(pthread_create(&th[i], NULL, share_thread, &args[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    ck_assert_int_eq(args[i].ok, 20);
  }
  tr_tls_config_free(scfg);
  tr_tls_config_free(ccfg);
}
END_TEST

/* ---- interoperability with the openssl command-line tools ---------------- */

static int have_openssl(void) {
  const char *path = getenv("PATH");
  char b[PATH_MAX];
  if (path == NULL) path = "/usr/bin:/bin";
  while (*path) {
    size_t n = strcspn(path, ":");
    snprintf(b, sizeof(b), "%.*s/openssl", (int)n, path);
    if (n > 0 && access(b, X_OK) == 0) return 1;
    path += n + (path[n] == ':');
  }
  return 0;
}

/* Copies a tool's log to stderr, to explain a failure. */
static void dump_log(const char *name) {
  char line[512];
  FILE *f = fopen(fp(name), "r");
  if (f == NULL) return;
  fprintf(stderr, "---- %s:\n", name);
  while (fgets(line, sizeof(line), f) != NULL) fputs(line, stderr);
  fclose(f);
}

/* Starts argv with pipes to its stdin and from its stdout; its stderr
 * goes to a log file of the temporary directory. It dies with us. */
static pid_t spawn(char *const argv[], int *to, int *from, const char *log) {
  int in[2], out[2];
  ck_assert_int_eq(pipe(in), 0);
  ck_assert_int_eq(pipe(out), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int e = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(in[0], 0);
    dup2(out[1], 1);
    if (e >= 0) dup2(e, 2);
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
    execvp(argv[0], argv);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  *to = in[1];
  *from = out[0];
  return pid;
}

/* Appends what fd has within ms to acc (NUL-terminated); returns the bytes
 * read, 0 on timeout, -1 at end of file. */
static int slurp(int fd, char *acc, size_t cap, int ms) {
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  if (poll(&pfd, 1, ms) <= 0) return 0;
  size_t have = strlen(acc);
  if (have + 1 >= cap) return 0;
  ssize_t n = read(fd, acc + have, cap - 1 - have);
  if (n <= 0) return -1;
  acc[have + (size_t)n] = '\0';
  return (int)n;
}

static void send_pending(tr_tls_t *t, int fd) {
  const void *p;
  size_t n;
  while ((n = tr_tls_pending(t, &p)) > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    ck_assert_int_gt(w, 0);
    tr_tls_consume(t, (size_t)w);
  }
}

/* Waits up to ms for ciphertext on fd and feeds it (the end of the stream
 * as tr_tls_feed_eof). Returns the feed's result, 1 at end of file. */
static int recv_feed(tr_tls_t *t, int fd, int ms) {
  unsigned char b[16384];
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  if (poll(&pfd, 1, ms) <= 0) return 0;
  ssize_t n = recv(fd, b, sizeof(b), 0);
  if (n <= 0) {
    int rc = tr_tls_feed_eof(t);
    return rc < 0 ? rc : 1;
  }
  return tr_tls_feed(t, b, (size_t)n);
}

/* Drives t over fd until its handshake is done (bounded). */
static void sock_handshake(tr_tls_t *t, int fd, const char *log) {
  uint64_t end = tu_now_ms() + 20000;
  while (tr_tls_handshake_done(t) == 0 && tu_now_ms() < end) {
    send_pending(t, fd);
    int rc = recv_feed(t, fd, 100);
    if (rc < 0 || rc == 1) break;
  }
  send_pending(t, fd);
  if (tr_tls_handshake_done(t) != 1) dump_log(log);
  if (tr_tls_handshake_done(t) != 1)
    ck_abort_msg("handshake over loopback: %d (%s)", tr_tls_handshake_done(t),
                 tr_tls_error_string(t));
}

/* Drives t over fd, reading plaintext into acc, until acc holds want or
 * the stream ends; returns the last tr_tls_read result. */
static int64_t sock_read_until(tr_tls_t *t, int fd, char *acc, size_t cap,
                               const char *want) {
  uint64_t end = tu_now_ms() + 20000;
  int64_t r = 0;
  while (tu_now_ms() < end) {
    size_t have = strlen(acc);
    r = tr_tls_read(t, acc + have, cap - 1 - have);
    if (r > 0) {
      acc[have + (size_t)r] = '\0';
      if (want && strstr(acc, want)) return r;
      continue;
    }
    if (r < 0) return r;
    send_pending(t, fd);
    int rc = recv_feed(t, fd, 100);
    if (rc < 0) return rc;
  }
  return r;
}

static void reap(pid_t pid, int *status) {
  uint64_t end = tu_now_ms() + 10000;
  while (tu_now_ms() < end) {
    if (waitpid(pid, status, WNOHANG) == pid) return;
    tu_sleep_ms(10);
  }
  kill(pid, SIGKILL);
  waitpid(pid, status, 0);
}

START_TEST(test_tr_tls_interop_s_client) {
  if (!have_openssl()) {
    printf(
        "SKIP: no openssl binary in PATH: interop with s_client not "
        "tested\n");
    return;
  }
  signal(SIGPIPE, SIG_IGN);
  static const char *const alpn[] = {"h2", "http/1.1"};
  tr_tls_config_t *scfg =
      server_cfg_ex("server.pem", "server.key", 0, 0, alpn, 2);
  struct sockaddr_in sa;
  int l = tu_listen_loopback(1, &sa);
  char addr[64];
  snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sa.sin_port));
  char *argv[] = {"openssl",
                  "s_client",
                  "-connect",
                  addr,
                  "-CAfile",
                  (char *)fp("ca.pem"),
                  "-verify_return_error",
                  "-servername",
                  "localhost",
                  "-alpn",
                  "http/1.1",
                  "-brief",
                  "-no_ign_eof",
                  NULL};
  int to, from;
  pid_t pid = spawn(argv, &to, &from, fp("s_client.log"));
  struct pollfd pfd = {.fd = l, .events = POLLIN};
  if (poll(&pfd, 1, 20000) != 1) {
    dump_log("s_client.log");
    ck_abort_msg("openssl s_client did not connect");
  }
  int fd = accept(l, NULL, NULL);
  ck_assert_int_ge(fd, 0);
  close(l);
  tr_tls_t *s;
  ck_assert_int_eq(tr_tls_new(scfg, NULL, &s), 0);
  sock_handshake(s, fd, "s_client.log");
  ck_assert_str_eq(tr_tls_alpn(s), "http/1.1");
  ck_assert_str_eq(tr_tls_server_name(s), "localhost");
  ck_assert_int_eq(tr_tls_version(s), TR_TLS_VERSION_1_3);
  /* s_client sends its stdin and prints what it receives. */
  static const char ping[] = "ping from s_client\n";
  ck_assert_int_eq(write(to, ping, sizeof(ping) - 1), sizeof(ping) - 1);
  char got[4096] = "";
  ck_assert_int_gt(sock_read_until(s, fd, got, sizeof(got), ping), 0);
  ck_assert_str_eq(got, ping);
  static const char pong[] = "pong from the troupe engine\n";
  ck_assert_int_eq(tr_tls_write(s, pong, sizeof(pong) - 1), 0);
  send_pending(s, fd);
  char out[8192] = "";
  uint64_t end = tu_now_ms() + 20000;
  while (strstr(out, pong) == NULL && tu_now_ms() < end)
    if (slurp(from, out, sizeof(out), 100) < 0) break;
  ck_assert_ptr_nonnull(strstr(out, pong));
  /* Its stdin ends: it sends close_notify and leaves, a clean end. */
  close(to);
  got[0] = '\0';
  ck_assert_int_eq(sock_read_until(s, fd, got, sizeof(got), NULL), TR_ECLOSED);
  int status = 0;
  reap(pid, &status);
  ck_assert(WIFEXITED(status));
  ck_assert_int_eq(WEXITSTATUS(status), 0);
  close(from);
  close(fd);
  tr_tls_free(s);
  tr_tls_config_free(scfg);
}
END_TEST

/* Starts s_server on a free loopback port (found by binding port 0 and
 * retried if another program takes it first) and waits for its ACCEPT. */
static pid_t start_s_server(const char *version, int *port, int *to,
                            int *from) {
  for (int attempt = 0; attempt < 5; attempt++) {
    struct sockaddr_in sa;
    int l = tu_listen_loopback(1, &sa);
    *port = ntohs(sa.sin_port);
    close(l);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", *port);
    char *argv[16];
    int n = 0;
    argv[n++] = "openssl";
    argv[n++] = "s_server";
    argv[n++] = "-accept";
    argv[n++] = addr;
    argv[n++] = "-cert";
    argv[n++] = (char *)fp("server.pem");
    argv[n++] = "-key";
    argv[n++] = (char *)fp("server.key");
    argv[n++] = "-naccept";
    argv[n++] = "1";
    argv[n++] = "-rev";
    argv[n++] = "-alpn";
    argv[n++] = "h2,http/1.1";
    if (version) argv[n++] = (char *)version;
    argv[n] = NULL;
    pid_t pid = spawn(argv, to, from, fp("s_server.log"));
    char out[4096] = "";
    uint64_t end = tu_now_ms() + 20000;
    int eof = 0;
    while (strstr(out, "ACCEPT") == NULL && !eof && tu_now_ms() < end)
      eof = slurp(*from, out, sizeof(out), 100) < 0;
    if (strstr(out, "ACCEPT") != NULL) return pid;
    int status;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    close(*to);
    close(*from);
  }
  dump_log("s_server.log");
  ck_abort_msg("openssl s_server did not start");
  return -1;
}

START_TEST(test_tr_tls_interop_s_server) {
  if (!have_openssl()) {
    printf(
        "SKIP: no openssl binary in PATH: interop with s_server not "
        "tested\n");
    return;
  }
  signal(SIGPIPE, SIG_IGN);
  static const char *const alpn[] = {"http/1.1"};
  const char *versions[] = {NULL, "-tls1_2"};
  tr_tls_config_t *ccfg = client_cfg_ex("ca.pem", 0, 0, 0, alpn, 1);
  for (int v = 0; v < 2; v++) {
    int port, to, from;
    pid_t pid = start_s_server(versions[v], &port, &to, &from);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    tr_tls_t *c;
    ck_assert_int_eq(tr_tls_new(ccfg, "localhost", &c), 0);
    sock_handshake(c, fd, "s_server.log");
    ck_assert_int_eq(tr_tls_version(c),
                     v ? TR_TLS_VERSION_1_2 : TR_TLS_VERSION_1_3);
    ck_assert_str_eq(tr_tls_alpn(c), "http/1.1");
    subject_has(c, "CN=localhost");
    /* -rev: every line comes back reversed. */
    ck_assert_int_eq(tr_tls_write(c, "hello troupe\n", 13), 0);
    send_pending(c, fd);
    char got[4096] = "";
    ck_assert_int_gt(sock_read_until(c, fd, got, sizeof(got), "\n"), 0);
    ck_assert_str_eq(got, "epuort olleh\n");
    /* "CLOSE" makes it close the connection with close_notify. */
    ck_assert_int_eq(tr_tls_write(c, "CLOSE\n", 6), 0);
    send_pending(c, fd);
    got[0] = '\0';
    ck_assert_int_eq(sock_read_until(c, fd, got, sizeof(got), NULL),
                     TR_ECLOSED);
    ck_assert_int_eq(tr_tls_shutdown(c), 0);
    send_pending(c, fd);
    close(fd);
    tr_tls_free(c);
    int status;
    reap(pid, &status); /* -naccept 1: it leaves by itself */
    close(to);
    close(from);
  }
  tr_tls_config_free(ccfg);
}
END_TEST

static Suite *tls_suite(void) {
  Suite *s = suite_create("tls");
  TCase *tc = tcase_create("engine");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_tr_tls_handshake_tls13);
  tcase_add_test(tc, test_tr_tls_handshake_tls12_forced);
  tcase_add_test(tc, test_tr_tls_handshake_no_common_version);
  tcase_add_test(tc, test_tr_tls_write_before_handshake);
  tcase_add_test(tc, test_tr_tls_data_1mib_tls13);
  tcase_add_test(tc, test_tr_tls_data_1mib_tls12);
  tcase_add_test(tc, test_tr_tls_byte_at_a_time);
  tcase_add_test(tc, test_tr_tls_take);
  tcase_add_test(tc, test_tr_tls_alpn);
  tcase_add_test(tc, test_tr_tls_sni);
  tcase_add_test(tc, test_tr_tls_verify_unknown_ca);
  tcase_add_test(tc, test_tr_tls_verify_expired);
  tcase_add_test(tc, test_tr_tls_verify_wrong_host);
  tcase_add_test(tc, test_tr_tls_verify_insecure_and_system_store);
  tcase_add_test(tc, test_tr_tls_garbage_handshake);
  tcase_add_test(tc, test_tr_tls_corrupted_record);
  tcase_add_test(tc, test_tr_tls_close_notify);
  tcase_add_test(tc, test_tr_tls_shutdown_before_handshake);
  tcase_add_test(tc, test_tr_tls_truncation);
  tcase_add_test(tc, test_tr_tls_session_resumption);
  tcase_add_test(tc, test_tr_tls_client_certificate);
  tcase_add_test(tc, test_tr_tls_config_errors);
  tcase_add_test(tc, test_tr_tls_new_errors);
  tcase_add_test(tc, test_tr_tls_config_lifetime);
  tcase_add_test(tc, test_tr_tls_config_shared_by_threads);
  suite_add_tcase(s, tc);
  tc = tcase_create("interop");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_tr_tls_interop_s_client);
  tcase_add_test(tc, test_tr_tls_interop_s_server);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  make_fixtures();
  int rc = tu_run(tls_suite());
  remove_fixtures();
  return rc;
}
