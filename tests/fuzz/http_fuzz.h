/* SPDX-License-Identifier: MIT */
/*
 * What the request and response fuzz targets check of a head parse
 * (tr_http_request_parse, tr_http_response_parse), included by both:
 * parsed whole, a byte at a time in a buffer that moves between calls,
 * and in two pieces, the input must end the same way (same result, same
 * status, same views as offsets); a head that is accepted lies inside
 * the input, ends in CR LF CR LF, and holds only what the grammar allows;
 * a refusal carries a status the documentation lists; the limits only
 * ever add refusals. Any breach aborts.
 */
#ifndef TROUPE_HTTP_FUZZ_H
#define TROUPE_HTTP_FUZZ_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <troupe/errno.h>
#include <troupe/http.h>

#define FZ_FIELDS 32

typedef struct fz_outcome {
  int rc, error_status, version, status;
  unsigned nfields, keep_alive, expect_continue, upgrade;
  int body, unused_;
  uint64_t content_length;
  size_t method[2], target[2], reason[2], host[2];
  size_t fields[FZ_FIELDS][4];
} fz_outcome_t;

#define FZ_CHECK(c)                                                            \
  do {                                                                         \
    if (!(c)) abort();                                                         \
  } while (0)

static int fz_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
      (c >= 'A' && c <= 'Z'))
    return 1;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A view inside base[0, len), as an offset (SIZE_MAX for none). */
static void fz_view(size_t out[2], tr_http_str_t v, const char *base,
                    size_t len) {
  if (v.p == NULL) {
    FZ_CHECK(v.n == 0);
    out[0] = SIZE_MAX;
    out[1] = 0;
    return;
  }
  FZ_CHECK(v.p >= base && v.p <= base + len && v.n <= len &&
           (size_t)(v.p - base) + v.n <= len);
  out[0] = (size_t)(v.p - base);
  out[1] = v.n;
}

/* Checks one parse's result against the grammar and returns it as an
 * outcome. */
static fz_outcome_t fz_outcome(int resp, int head_req, int rc,
                               const tr_http_head_t *h, const char *base,
                               size_t len) {
  fz_outcome_t o;
  memset(&o, 0, sizeof(o));
  o.rc = rc;
  FZ_CHECK(rc == TR_EPROTO || (rc >= 0 && (size_t)rc <= len));
  if (rc == TR_EPROTO) {
    FZ_CHECK(h->error != NULL);
    if (resp) FZ_CHECK(h->error_status == 502);
    else
      FZ_CHECK(h->error_status == 400 || h->error_status == 414 ||
               h->error_status == 417 || h->error_status == 431 ||
               h->error_status == 501 || h->error_status == 505);
    o.error_status = h->error_status;
    return o;
  }
  if (rc == 0) return o;
  size_t hl = (size_t)rc;
  FZ_CHECK(hl >= 4 && memcmp(base + hl - 4, "\r\n\r\n", 4) == 0);
  FZ_CHECK(h->error_status == 0 && h->error == NULL);
  FZ_CHECK(h->version == 10 || h->version == 11);
  FZ_CHECK(h->nfields <= h->fields_cap);
  o.version = h->version;
  o.status = h->status;
  o.nfields = h->nfields;
  o.keep_alive = h->keep_alive;
  o.expect_continue = h->expect_continue;
  o.upgrade = h->upgrade;
  o.body = (int)h->body;
  o.content_length = h->content_length;
  fz_view(o.method, h->method, base, hl);
  fz_view(o.target, h->target, base, hl);
  fz_view(o.reason, h->reason, base, hl);
  fz_view(o.host, h->host, base, hl);
  if (resp) {
    FZ_CHECK(h->status >= 100 && h->status <= 999);
    FZ_CHECK(h->method.n == 0 && h->target.n == 0);
    FZ_CHECK(h->body != TR_HTTP_BODY_CLOSE || !h->keep_alive);
    if (head_req || h->status < 200 || h->status == 204 || h->status == 304)
      FZ_CHECK(h->body == TR_HTTP_BODY_NONE);
    for (size_t i = 0; i < h->reason.n; i++) {
      unsigned char c = (unsigned char)h->reason.p[i];
      FZ_CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
    }
  } else {
    FZ_CHECK(h->status == 0 && h->body != TR_HTTP_BODY_CLOSE);
    FZ_CHECK(h->method.n > 0 && h->target.n > 0);
    for (size_t i = 0; i < h->method.n; i++)
      FZ_CHECK(fz_tchar((unsigned char)h->method.p[i]));
    for (size_t i = 0; i < h->target.n; i++)
      FZ_CHECK(h->target.p[i] > 0x20 && h->target.p[i] < 0x7f);
    if (h->version == 11) FZ_CHECK(tr_http_head_field(h, "host") != NULL);
    if (h->expect_continue) FZ_CHECK(h->version == 11);
  }
  if (h->body != TR_HTTP_BODY_LENGTH) FZ_CHECK(h->content_length == 0);
  if (h->body == TR_HTTP_BODY_LENGTH)
    FZ_CHECK(tr_http_head_field(h, "content-length") != NULL &&
             h->content_length <= (uint64_t)INT64_MAX);
  if (h->body == TR_HTTP_BODY_CHUNKED)
    FZ_CHECK(tr_http_head_field(h, "transfer-encoding") != NULL &&
             tr_http_head_field(h, "content-length") == NULL);
  for (unsigned i = 0; i < h->nfields; i++) {
    const tr_http_field_t *f = &h->fields[i];
    FZ_CHECK(f->name.n > 0);
    for (size_t k = 0; k < f->name.n; k++)
      FZ_CHECK(fz_tchar((unsigned char)f->name.p[k]));
    for (size_t k = 0; k < f->value.n; k++) {
      unsigned char c = (unsigned char)f->value.p[k];
      FZ_CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
    }
    if (f->value.n) {
      FZ_CHECK(f->value.p[0] != ' ' && f->value.p[0] != '\t');
      FZ_CHECK(f->value.p[f->value.n - 1] != ' ' &&
               f->value.p[f->value.n - 1] != '\t');
    }
    if (i < FZ_FIELDS) {
      fz_view(o.fields[i], f->name, base, hl);
      fz_view(o.fields[i] + 2, f->value, base, hl);
    }
  }
  return o;
}

static int fz_parse(int resp, tr_http_head_t *h, const char *b, size_t n,
                    const tr_http_limits_t *lim, int head_req) {
  return resp ? tr_http_response_parse(h, b, n, lim, head_req)
              : tr_http_request_parse(h, b, n, lim);
}

static int fz_same(const fz_outcome_t *a, const fz_outcome_t *b) {
  return memcmp(a, b, sizeof(*a)) == 0;
}

/* Parses data every way and checks they agree; returns the outcome. */
static fz_outcome_t fz_head(int resp, const char *data, size_t size,
                            const tr_http_limits_t *lim, int head_req) {
  tr_http_field_t f[FZ_FIELDS];
  tr_http_head_t h;

  /* whole, twice: the second call answers the same */
  tr_http_head_init(&h, f, FZ_FIELDS);
  int rc = fz_parse(resp, &h, data, size, lim, head_req);
  fz_outcome_t whole = fz_outcome(resp, head_req, rc, &h, data, size);
  int again = fz_parse(resp, &h, data, size, lim, head_req);
  fz_outcome_t o2 = fz_outcome(resp, head_req, again, &h, data, size);
  FZ_CHECK(fz_same(&whole, &o2));

  /* a byte at a time, in two copies used in turn */
  char *a = malloc(size + 1), *b = malloc(size + 1);
  if (!a || !b) abort();
  memcpy(a, data, size);
  memcpy(b, data, size);
  tr_http_head_init(&h, f, FZ_FIELDS);
  int r = 0;
  const char *last = a;
  for (size_t k = 0; k <= size; k++) {
    last = (k & 1) ? b : a;
    r = fz_parse(resp, &h, last, k, lim, head_req);
    if (r != 0) break;
    FZ_CHECK(h.scan_ == k);
  }
  fz_outcome_t bytes = fz_outcome(resp, head_req, r, &h, last, size);
  FZ_CHECK(fz_same(&whole, &bytes));

  /* two pieces, split where the input says */
  size_t cut = size ? (unsigned char)data[size / 2] % (size + 1) : 0;
  tr_http_head_init(&h, f, FZ_FIELDS);
  const char *used = a;
  r = fz_parse(resp, &h, a, cut, lim, head_req);
  if (r == 0) {
    used = b;
    r = fz_parse(resp, &h, b, size, lim, head_req);
  }
  fz_outcome_t two = fz_outcome(resp, head_req, r, &h, used, size);
  FZ_CHECK(fz_same(&whole, &two));

  /* a head ends where it says: the bytes after it do not matter */
  if (rc > 0) {
    tr_http_head_init(&h, f, FZ_FIELDS);
    FZ_CHECK(fz_parse(resp, &h, a, (size_t)rc, lim, head_req) == rc);
    tr_http_head_init(&h, f, FZ_FIELDS);
    FZ_CHECK(fz_parse(resp, &h, a, (size_t)rc - 1, lim, head_req) == 0);
  }
  free(a);
  free(b);
  return whole;
}

/* Default limits, then tight ones: what the tight limits accept, the
 * default ones accept the same way. */
static void fz_head_all(int resp, const char *data, size_t size, int head_req) {
  fz_outcome_t d = fz_head(resp, data, size, NULL, head_req);
  tr_http_limits_t lim;
  tr_http_limits_init(&lim);
  lim.line_max = 24;
  lim.head_max = 160;
  lim.fields_max = 4;
  fz_outcome_t t = fz_head(resp, data, size, &lim, head_req);
  if (t.rc > 0) FZ_CHECK(fz_same(&d, &t));
  if (t.rc == TR_EPROTO && d.rc > 0)
    FZ_CHECK(resp || t.error_status == 414 || t.error_status == 431);
}

#endif
