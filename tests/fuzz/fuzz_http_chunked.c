/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for tr_http_chunked_decode, the decoder of chunked
 * bodies from the network: any input must decode, wait for more bytes or
 * fail with TR_EPROTO, never crash or read past its input; every data
 * view lies inside the bytes the call consumed; and the input fed whole,
 * a byte at a time and in pieces of a size the input picks must give the
 * same body bytes, the same end (done, waiting or refused) and, unless
 * refused, the same count of bytes consumed, the bytes after the body
 * being left alone. A body decoded whole is encoded again as one chunk
 * (tr_http_chunk_line) and must decode to the same bytes. Each input is
 * decoded with the default trailer bound and with one of 16 bytes.
 * Build and run with tests/fuzz/run.sh.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <troupe/errno.h>
#include <troupe/http.h>

#define CHECK(c)                                                               \
  do {                                                                         \
    if (!(c)) abort();                                                         \
  } while (0)

typedef struct result {
  int rc, done;
  size_t consumed;
  char *data; /* the body bytes, at most the input's size */
  size_t ndata;
} result_t;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feeds p[0, n) in pieces of at most step bytes (0: whole). */
static void decode(const char *p, size_t n, size_t step, size_t tmax,
                   result_t *r) {
  tr_http_chunked_t d;
  tr_http_chunked_init(&d);
  d.trailer_max = tmax;
  r->rc = 0;
  r->consumed = 0;
  r->ndata = 0;
  size_t have = 0;
  while (!d.done) {
    if (r->consumed == have) {
      if (have == n) break;
      have = step && n - have > step ? have + step : n;
    }
    size_t avail = have - r->consumed;
    tr_http_str_t v;
    int64_t k = tr_http_chunked_decode(&d, p + r->consumed, avail, &v);
    if (k < 0) {
      CHECK(k == TR_EPROTO && v.n == 0);
      /* a refusal sticks */
      CHECK(tr_http_chunked_decode(&d, p + r->consumed, avail, &v) ==
            TR_EPROTO);
      r->rc = (int)k;
      break;
    }
    CHECK((size_t)k <= avail);
    /* progress, unless there is nothing to read or the body ended */
    CHECK(k > 0 || avail == 0 || d.done);
    if (v.n) {
      CHECK(v.p >= p + r->consumed && v.n <= (size_t)k &&
            (size_t)(v.p - (p + r->consumed)) + v.n <= (size_t)k);
      CHECK(r->ndata + v.n <= n);
      memcpy(r->data + r->ndata, v.p, v.n);
      r->ndata += v.n;
    }
    r->consumed += (size_t)k;
  }
  r->done = d.done;
  if (d.done) {
    tr_http_str_t v;
    CHECK(tr_http_chunked_decode(&d, p, n, &v) == 0 && v.n == 0);
  }
}

static void same(const result_t *a, const result_t *b) {
  CHECK(a->rc == b->rc && a->done == b->done && a->ndata == b->ndata);
  CHECK(memcmp(a->data, b->data, a->ndata) == 0);
  if (!a->rc) CHECK(a->consumed == b->consumed);
}

static void run(const char *p, size_t n, size_t tmax) {
  result_t whole, other;
  whole.data = malloc(n + 1);
  other.data = malloc(n + 1);
  if (!whole.data || !other.data) abort();
  decode(p, n, 0, tmax, &whole);
  decode(p, n, 1, tmax, &other);
  same(&whole, &other);
  size_t step = n ? (size_t)(unsigned char)p[n - 1] % 17 + 1 : 1;
  decode(p, n, step, tmax, &other);
  same(&whole, &other);
  if (whole.done) {
    /* the body ends where it says */
    decode(p, whole.consumed, 0, tmax, &other);
    same(&whole, &other);
    CHECK(whole.consumed >= 5);
    CHECK(memcmp(p + whole.consumed - 2, "\r\n", 2) == 0);
    /* encoded again as one chunk, it decodes to the same bytes */
    size_t m = whole.ndata + 64;
    char *enc = malloc(m);
    if (!enc) abort();
    size_t e = 0;
    if (whole.ndata) {
      e += tr_http_chunk_line(enc, whole.ndata);
      memcpy(enc + e, whole.data, whole.ndata);
      e += whole.ndata;
      memcpy(enc + e, "\r\n", 2);
      e += 2;
    }
    e += tr_http_chunk_line(enc + e, 0);
    memcpy(enc + e, "\r\n", 2);
    e += 2;
    result_t again;
    again.data = malloc(e + 1);
    if (!again.data) abort();
    decode(enc, e, 0, 0, &again);
    CHECK(again.rc == 0 && again.done && again.consumed == e);
    CHECK(again.ndata == whole.ndata &&
          memcmp(again.data, whole.data, whole.ndata) == 0);
    free(again.data);
    free(enc);
  }
  free(whole.data);
  free(other.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  run((const char *)data, size, 0);
  run((const char *)data, size, 16);
  return 0;
}
