/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the TLS engine (<troupe/tls.h>): the bytes a peer
 * sends are untrusted, so any input fed to an engine must end in "feed
 * more", a clean close or one of the engine's documented errors, never a
 * crash or a leak. The first byte chooses the side and the split:
 *   bit 0: 0 = a server engine reads the input as a client's flight (the
 *          ClientHello reaches the SNI and ALPN callbacks of the engine),
 *          1 = a client engine, after its ClientHello, reads it as the
 *          server's answer;
 *   bits 1-2: pieces of 1, 7 or 100 bytes, or the whole input at once.
 * After every piece the target reads plaintext, writes a little, and
 * drops the pending ciphertext, as a connection would; at the end it
 * feeds the end of the stream.
 *
 * The server's certificate is made at start-up with the OpenSSL API, in
 * a temporary directory removed once the configurations are loaded.
 * Build and run with tests/fuzz/run.sh.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <troupe.h>

static tr_tls_config_t *server_cfg, *client_cfg;

static void die(const char *what) {
  fprintf(stderr, "fuzz_tls: %s\n", what);
  abort();
}

static void make_configs(void) {
  char dir[512], cert[600], key[600], err[256];
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof(dir), "%s/troupe-fuzz-tls.XXXXXX",
           tmp && *tmp ? tmp : P_tmpdir);
  if (mkdtemp(dir) == NULL) die("mkdtemp");
  snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
  snprintf(key, sizeof(key), "%s/key.pem", dir);
  EVP_PKEY *k = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  if (k == NULL || x == NULL) die("key");
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -86400);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400 * 30);
  X509_set_pubkey(x, k);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             (const unsigned char *)"fuzz.test", -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  if (!X509_sign(x, k, EVP_sha256())) die("sign");
  FILE *f = fopen(cert, "w");
  if (f == NULL || !PEM_write_X509(f, x)) die("write cert");
  fclose(f);
  f = fopen(key, "w");
  if (f == NULL || !PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL))
    die("write key");
  fclose(f);
  X509_free(x);
  EVP_PKEY_free(k);

  static const char *const alpn[] = {"h2", "http/1.1"};
  tr_tls_sni_cert_t sni[2] = {{"*.fuzz.test", cert, key},
                              {"alt.fuzz.test", cert, key}};
  tr_tls_server_opts_t so;
  tr_tls_server_opts_init(&so);
  so.cert_file = cert;
  so.key_file = key;
  so.sni = sni;
  so.sni_count = 2;
  so.alpn = alpn;
  so.alpn_count = 2;
  if (tr_tls_server_config_new(&so, &server_cfg, err, sizeof(err)) != 0)
    die(err);
  tr_tls_client_opts_t co;
  tr_tls_client_opts_init(&co);
  co.ca_file = cert;
  co.alpn = alpn;
  co.alpn_count = 2;
  if (tr_tls_client_config_new(&co, &client_cfg, err, sizeof(err)) != 0)
    die(err);
  unlink(cert);
  unlink(key);
  rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  make_configs();
  return 0;
}

static int code_ok(int64_t rc) {
  return rc >= 0 || rc == TR_ETLS || rc == TR_ECERT || rc == TR_ECONNRESET ||
         rc == TR_ECLOSED || rc == TR_ENOMEM;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const size_t steps[4] = {1, 7, 100, SIZE_MAX};
  unsigned char plain[4096];
  tr_tls_t *t;
  if (size == 0) return 0;
  int client = data[0] & 1;
  size_t step = steps[(data[0] >> 1) & 3];
  data++;
  size--;
  if (tr_tls_new(client ? client_cfg : server_cfg,
                 client ? "alt.fuzz.test" : NULL, &t) != 0)
    abort();
  tr_tls_consume(t, tr_tls_pending(t, NULL)); /* the ClientHello */
  int dead = 0;
  for (size_t at = 0; at < size && !dead;) {
    size_t k = size - at < step ? size - at : step;
    int rc = tr_tls_feed(t, data + at, k);
    if (!code_ok(rc) || rc == TR_ECLOSED) abort();
    at += k;
    int64_t r;
    while ((r = tr_tls_read(t, plain, sizeof(plain))) > 0) {
    }
    if (!code_ok(r)) abort();
    int w = tr_tls_write(t, "x", 1);
    if (!code_ok(w) && w != TR_EPIPE) abort();
    tr_tls_consume(t, tr_tls_pending(t, NULL));
    dead = tr_tls_handshake_done(t) < 0;
    if (rc < 0 && tr_tls_handshake_done(t) != rc) abort();
    if (dead && tr_tls_error_string(t)[0] == '\0') abort();
  }
  int rc = tr_tls_feed_eof(t);
  if (!code_ok(rc)) abort();
  int64_t r = tr_tls_read(t, plain, sizeof(plain));
  if (!code_ok(r)) abort();
  (void)tr_tls_alpn(t);
  (void)tr_tls_server_name(t);
  (void)tr_tls_peer_subject(t, (char *)plain, sizeof(plain));
  tr_tls_free(t);
  return 0;
}
