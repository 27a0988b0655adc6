/* SPDX-License-Identifier: MIT */
/*
 * Tests of the HTTP/1.1 codec (<troupe/http.h>): request and response
 * heads parsed whole, truncated and one byte at a time in a buffer that
 * moves between calls (same result every way); every refusal with the
 * status it must carry, including those that must come before the head
 * is whole (bare CR or LF, a start line or a head over its limit); the
 * framing rules (Content-Length, Transfer-Encoding, Host, Connection,
 * Expect, the bodies of HEAD, 1xx, 204 and 304 responses); the chunked
 * decoder fed whole, split at every byte and a byte at a time, with
 * extensions, trailers, each kind of bad framing and the bytes after the
 * body left alone; and the writers (chunk lines, dates, reasons).
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <troupe/errno.h>
#include <troupe/http.h>

#include "testutil.h"

#define FMAX 16

/* ---- helpers ------------------------------------------------------------ */

/* The outcome of one parse, with views turned into offsets so that parses
 * of copies of the same bytes compare equal. */
typedef struct outcome {
  int rc, error_status, version, status;
  unsigned nfields, keep_alive, expect_continue, upgrade;
  int body, unused_; /* no padding: outcomes are compared as bytes */
  uint64_t content_length;
  long method[2], target[2], reason[2], host[2];
  long fields[FMAX][4];
} outcome_t;

static void view_off(long out[2], tr_http_str_t s, const char *base) {
  out[0] = s.p ? (long)(s.p - base) : -1;
  out[1] = (long)s.n;
}

static outcome_t outcome_of(int rc, const tr_http_head_t *h, const char *base) {
  outcome_t o;
  memset(&o, 0, sizeof(o));
  o.rc = rc;
  if (rc < 0) {
    o.error_status = h->error_status;
    ck_assert_ptr_nonnull(h->error);
    return o;
  }
  if (rc == 0) return o;
  o.version = h->version;
  o.status = h->status;
  o.nfields = h->nfields;
  o.keep_alive = h->keep_alive;
  o.expect_continue = h->expect_continue;
  o.upgrade = h->upgrade;
  o.body = (int)h->body;
  o.content_length = h->content_length;
  view_off(o.method, h->method, base);
  view_off(o.target, h->target, base);
  view_off(o.reason, h->reason, base);
  view_off(o.host, h->host, base);
  for (unsigned i = 0; i < h->nfields && i < FMAX; i++) {
    view_off(o.fields[i], h->fields[i].name, base);
    view_off(o.fields[i] + 2, h->fields[i].value, base);
  }
  return o;
}

static int parse(int resp, tr_http_head_t *h, const char *b, size_t n,
                 const tr_http_limits_t *lim, int head_req) {
  return resp ? tr_http_response_parse(h, b, n, lim, head_req)
              : tr_http_request_parse(h, b, n, lim);
}

/* Parses s[0, n) whole, then a byte at a time in two copies used in
 * turn (the buffer moves between calls), and checks that both end the
 * same way; returns the whole parse's outcome and leaves h as it is. */
static outcome_t parse_both(int resp, const char *s, size_t n,
                            const tr_http_limits_t *lim, int head_req,
                            tr_http_head_t *h, tr_http_field_t *f) {
  tr_http_head_init(h, f, FMAX);
  int rc = parse(resp, h, s, n, lim, head_req);
  outcome_t whole = outcome_of(rc, h, s);

  char *a = malloc(n + 1), *b = malloc(n + 1);
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_nonnull(b);
  memcpy(a, s, n);
  memcpy(b, s, n);
  tr_http_head_t h2;
  tr_http_field_t f2[FMAX];
  tr_http_head_init(&h2, f2, FMAX);
  int rc2 = 0;
  const char *last = a;
  for (size_t k = 0; k <= n; k++) {
    last = k % 2 ? b : a;
    rc2 = parse(resp, &h2, last, k, lim, head_req);
    if (rc2 != 0) break;
  }
  outcome_t bytes = outcome_of(rc2, &h2, last);
  ck_assert_int_eq(bytes.rc, whole.rc);
  ck_assert_int_eq(bytes.error_status, whole.error_status);
  ck_assert_mem_eq(&bytes, &whole, sizeof(whole));
  free(a);
  free(b);
  return whole;
}

static outcome_t req(const char *s, tr_http_head_t *h, tr_http_field_t *f) {
  return parse_both(0, s, strlen(s), NULL, 0, h, f);
}

/* s is refused with status (whole and byte by byte). */
static void req_refused(const char *s, int status) {
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  outcome_t o = req(s, &h, f);
  if (o.rc != TR_EPROTO || o.error_status != status)
    ck_abort_msg("request \"%s\": rc %d status %d, want TR_EPROTO %d", s, o.rc,
                 o.error_status, status);
}

static void resp_refused(const char *s) {
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  outcome_t o = parse_both(1, s, strlen(s), NULL, 0, &h, f);
  if (o.rc != TR_EPROTO || o.error_status != 502)
    ck_abort_msg("response \"%s\": rc %d status %d, want TR_EPROTO 502", s,
                 o.rc, o.error_status);
}

static int str_is(tr_http_str_t v, const char *s) {
  return v.n == strlen(s) && memcmp(v.p, s, v.n) == 0;
}

#define ASSERT_STR(v, s)                                                       \
  ck_assert_msg(str_is((v), (s)), "view is \"%.*s\", want \"%s\"", (int)(v).n, \
                (v).p ? (v).p : "", (s))

/* ---- requests ------------------------------------------------------------ */

START_TEST(test_tr_http_request_parse_get) {
  const char *s =
      "GET /index.html?q=1 HTTP/1.1\r\n"
      "Host:   example.com  \r\n"
      "User-Agent:\tt/1.0\t\r\n"
      "Accept: */*\r\n"
      "X-Empty:\r\n"
      "\r\n";
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  outcome_t o = req(s, &h, f);
  ck_assert_int_eq(o.rc, (int)strlen(s));
  ASSERT_STR(h.method, "GET");
  ASSERT_STR(h.target, "/index.html?q=1");
  ck_assert_int_eq(h.version, 11);
  ck_assert_uint_eq(h.nfields, 4);
  ASSERT_STR(h.fields[0].name, "Host");
  ASSERT_STR(h.fields[0].value, "example.com");
  ASSERT_STR(h.fields[1].value, "t/1.0");
  ASSERT_STR(h.fields[3].name, "X-Empty");
  ck_assert_uint_eq(h.fields[3].value.n, 0);
  ASSERT_STR(h.host, "example.com");
  ck_assert_int_eq(h.body, TR_HTTP_BODY_NONE);
  ck_assert_uint_eq(h.keep_alive, 1);
  ck_assert_uint_eq(h.expect_continue, 0);
  ck_assert_uint_eq(h.upgrade, 0);
  ck_assert_int_eq(h.error_status, 0);
  /* views lie inside the head */
  for (unsigned i = 0; i < h.nfields; i++) {
    ck_assert(h.fields[i].name.p >= s && h.fields[i].value.p >= s);
    ck_assert(h.fields[i].value.p + h.fields[i].value.n <= s + o.rc);
  }
}
END_TEST

START_TEST(test_tr_http_request_parse_value_chars) {
  /* HTAB and SP inside a value, obs-text (0x80-0xFF) too */
  const char *s = "GET / HTTP/1.1\r\nHost: h\r\nX: a \tb\x80\xff c\r\n\r\n";
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  outcome_t o = req(s, &h, f);
  ck_assert_int_eq(o.rc, (int)strlen(s));
  ASSERT_STR(h.fields[1].value, "a \tb\x80\xff c");
}
END_TEST

START_TEST(test_tr_http_request_parse_post_length) {
  const char *s =
      "POST /submit HTTP/1.1\r\nHost: h\r\n"
      "Content-Length: 5\r\n\r\nhello";
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  outcome_t o = req(s, &h, f);
  ck_assert_int_eq(o.rc, (int)strlen(s) - 5);
  ASSERT_STR(h.method, "POST");
  ck_assert_int_eq(h.body, TR_HTTP_BODY_LENGTH);
  ck_assert_uint_eq(h.content_length, 5);
  ck_assert_str_eq(s + o.rc, "hello");

  /* 0 is a length, OWS around it is not part of the value */
  o = req("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:  0 \r\n\r\n", &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_int_eq(h.body, TR_HTTP_BODY_LENGTH);
  ck_assert_uint_eq(h.content_length, 0);

  /* the largest length there is */
  o =
      req("POST / HTTP/1.1\r\nHost: h\r\n"
          "Content-Length: 9223372036854775807\r\n\r\n",
          &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_uint_eq(h.content_length, (uint64_t)INT64_MAX);
  o =
      req("POST / HTTP/1.1\r\nHost: h\r\n"
          "Content-Length: 000000000000000000000000012\r\n\r\n",
          &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_uint_eq(h.content_length, 12);
}
END_TEST

START_TEST(test_tr_http_request_parse_chunked) {
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  outcome_t o =
      req("POST / HTTP/1.1\r\nHost: h\r\n"
          "Transfer-Encoding: chunked\r\n\r\n",
          &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_int_eq(h.body, TR_HTTP_BODY_CHUNKED);
  ck_assert_uint_eq(h.content_length, 0);
  /* case-insensitive, OWS around */
  o =
      req("POST / HTTP/1.1\r\nHost: h\r\n"
          "transfer-encoding: \t ChUnKeD \r\n\r\n",
          &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_int_eq(h.body, TR_HTTP_BODY_CHUNKED);
}
END_TEST

START_TEST(test_tr_http_request_parse_pipelined) {
  const char *s =
      "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"
      "GET /c HTTP/1.1\r\nHost: h\r\n\r\n";
  size_t n = strlen(s), off = 0;
  const char *want[] = {"/a", "/b", "/c"};
  for (int i = 0; i < 3; i++) {
    tr_http_head_t h;
    tr_http_field_t f[FMAX];
    tr_http_head_init(&h, f, FMAX);
    int rc = tr_http_request_parse(&h, s + off, n - off, NULL);
    ck_assert_int_gt(rc, 0);
    ASSERT_STR(h.target, want[i]);
    off += (size_t)rc;
    if (h.body == TR_HTTP_BODY_LENGTH) off += h.content_length;
  }
  ck_assert_uint_eq(off, n);
}
END_TEST

START_TEST(test_tr_http_request_parse_keep_alive) {
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  outcome_t o = req("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_int_eq(h.version, 10);
  ck_assert_uint_eq(h.keep_alive, 1);
  ck_assert_uint_eq(h.host.n, 0); /* HTTP/1.0 needs no Host */

  o = req("GET / HTTP/1.0\r\n\r\n", &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_uint_eq(h.keep_alive, 0);

  o = req("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_uint_eq(h.keep_alive, 0);

  /* a list: close wins, empty elements are allowed */
  o = req("GET / HTTP/1.0\r\nConnection: Keep-Alive , ,CLOSE\r\n\r\n", &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_uint_eq(h.keep_alive, 0);
  o = req(
      "GET / HTTP/1.1\r\nHost: h\r\nConnection: x\r\nConnection: close\r\n\r\n",
      &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_uint_eq(h.keep_alive, 0);
  /* not a list of tokens */
  req_refused("GET / HTTP/1.1\r\nHost: h\r\nConnection: close;x\r\n\r\n", 400);
  req_refused("GET / HTTP/1.1\r\nHost: h\r\nConnection: a b\r\n\r\n", 400);
}
END_TEST

START_TEST(test_tr_http_request_parse_upgrade) {
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  outcome_t o =
      req("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
          "Upgrade: websocket\r\n\r\n",
          &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_uint_eq(h.upgrade, 1);
  ck_assert_uint_eq(h.keep_alive, 1);
  /* "Connection: upgrade" alone is not an upgrade, nor Upgrade alone */
  o = req("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n", &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_uint_eq(h.upgrade, 0);
  o = req("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n", &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_uint_eq(h.upgrade, 0);
}
END_TEST

START_TEST(test_tr_http_request_parse_expect) {
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  outcome_t o =
      req("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
          "Expect: 100-Continue\r\n\r\n",
          &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_uint_eq(h.expect_continue, 1);
  /* ignored in HTTP/1.0 (RFC 9110 10.1.1) */
  o = req("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_uint_eq(h.expect_continue, 0);
  req_refused("PUT / HTTP/1.1\r\nHost: h\r\nExpect: fly\r\n\r\n", 417);
  req_refused("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue, x\r\n\r\n",
              417);
}
END_TEST

START_TEST(test_tr_http_request_parse_leading_crlf) {
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  const char *s = "\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
  outcome_t o = req(s, &h, f);
  ck_assert_int_eq(o.rc, (int)strlen(s));
  ck_assert_ptr_eq(h.method.p, s + 8);
  req_refused("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  req_refused("\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  req_refused("\r\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
}
END_TEST

START_TEST(test_tr_http_request_parse_method_target) {
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  outcome_t o = req("M-SEARCH * HTTP/1.1\r\nHost: h\r\n\r\n", &h, f);
  ck_assert_int_gt(o.rc, 0);
  ASSERT_STR(h.method, "M-SEARCH");
  ASSERT_STR(h.target, "*");
  o = req("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
          &h, f);
  ck_assert_int_gt(o.rc, 0);
  ASSERT_STR(h.target, "example.com:443");

  req_refused("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  req_refused("GET /  HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  req_refused("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400);
  req_refused(" GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  req_refused("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  req_refused("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  req_refused("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  req_refused("GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  req_refused("GET /\x80 HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  req_refused("GET HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  req_refused("GET /\r\nHost: h\r\n\r\n", 400);
  req_refused("GET / http/1.1\r\nHost: h\r\n\r\n", 400);
  req_refused("GET / HTTP/11\r\nHost: h\r\n\r\n", 400);
  req_refused("GET / HTTP/1.1x\r\nHost: h\r\n\r\n", 400);
  req_refused("GET / HTTP/1\r\nHost: h\r\n\r\n", 400);
  req_refused("GET / HTTP/1.\r\nHost: h\r\n\r\n", 400);
}
END_TEST

START_TEST(test_tr_http_request_parse_version) {
  req_refused("GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505);
  req_refused("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505);
  req_refused("GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505);
  req_refused("GET / HTTP/9.9\r\n", 505); /* at the request line's end */
}
END_TEST

/* A refusal that needs no more bytes: whole or a byte at a time, the
 * prefix alone is refused, not waited on. */
static void refused_at_once(const char *s, int status,
                            const tr_http_limits_t *lim) {
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  outcome_t o = parse_both(0, s, strlen(s), lim, 0, &h, f);
  if (o.rc != TR_EPROTO || o.error_status != status)
    ck_abort_msg("prefix \"%s\": rc %d status %d, want TR_EPROTO %d", s, o.rc,
                 o.error_status, status);
}

START_TEST(test_tr_http_request_parse_bare_cr) {
  req_refused("GET / HTTP/1.1\rHost: h\r\n\r\n", 400);
  req_refused("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400);
  req_refused("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400);
  req_refused("GET / HTTP/1.1\r\nHost: h\r\n\r\r\n", 400);
  req_refused("GET /\r HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  refused_at_once("GET / HTTP/1.1\rH", 400, NULL);
  refused_at_once("GET / HTTP/1.1\r\nHost: a\rb", 400, NULL);
  /* a CR at the end of what has arrived may still be followed by LF */
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  tr_http_head_init(&h, f, FMAX);
  ck_assert_int_eq(tr_http_request_parse(&h, "GET / HTTP/1.1\r", 15, NULL), 0);
}
END_TEST

START_TEST(test_tr_http_request_parse_bare_lf) {
  req_refused("GET / HTTP/1.1\nHost: h\n\n", 400);
  req_refused("GET / HTTP/1.1\r\nHost: h\n\r\n", 400);
  req_refused("GET / HTTP/1.1\r\nHost: h\r\n\n", 400);
  req_refused("GET / HTTP/1.1\r\nHost: a\nb\r\n\r\n", 400);
  req_refused("GET /\n HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  refused_at_once("GET / HTTP/1.1\r\nHost: h\n", 400, NULL);
  refused_at_once("GET\n", 400, NULL);
}
END_TEST

START_TEST(test_tr_http_request_parse_framing_refusals) {
  /* Content-Length with Transfer-Encoding */
  req_refused(
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
      "Transfer-Encoding: chunked\r\n\r\n",
      400);
  req_refused(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
      "Content-Length: 3\r\n\r\n",
      400);
  /* two Content-Length, even equal */
  req_refused(
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
      "Content-Length: 3\r\n\r\n",
      400);
  req_refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\n",
              400);
  /* not 1*DIGIT */
  req_refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n", 400);
  req_refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5a\r\n\r\n", 400);
  req_refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400);
  req_refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n", 400);
  req_refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n",
              400);
  req_refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n", 400);
  req_refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", 400);
  /* over 2^63 - 1 */
  req_refused(
      "POST / HTTP/1.1\r\nHost: h\r\n"
      "Content-Length: 9223372036854775808\r\n\r\n",
      400);
  req_refused(
      "POST / HTTP/1.1\r\nHost: h\r\n"
      "Content-Length: 18446744073709551616\r\n\r\n",
      400);
  req_refused(
      "POST / HTTP/1.1\r\nHost: h\r\n"
      "Content-Length: 99999999999999999999999999999\r\n\r\n",
      400);
  /* Host: none in 1.1, two */
  req_refused("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400);
  req_refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
  req_refused("GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", 400);
  /* transfer codings */
  req_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
              501);
  req_refused(
      "POST / HTTP/1.1\r\nHost: h\r\n"
      "Transfer-Encoding: gzip, chunked\r\n\r\n",
      501);
  req_refused(
      "POST / HTTP/1.1\r\nHost: h\r\n"
      "Transfer-Encoding: chunked, chunked\r\n\r\n",
      501);
  req_refused(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
      "Transfer-Encoding: chunked\r\n\r\n",
      501);
  req_refused(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", 501);
  req_refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", 400);
  /* no transfer coding in HTTP/1.0 */
  req_refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
}
END_TEST

START_TEST(test_tr_http_request_parse_field_refusals) {
  /* obs-fold, and whitespace before the first field */
  req_refused("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400);
  req_refused("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", 400);
  req_refused("GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400);
  /* whitespace before the colon */
  req_refused("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400);
  req_refused("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", 400);
  /* names */
  req_refused("GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", 400);
  req_refused("GET / HTTP/1.1\r\nHost: h\r\nX(y): v\r\n\r\n", 400);
  req_refused("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400);
  req_refused("GET / HTTP/1.1\r\nHost: h\r\nX\x80: v\r\n\r\n", 400);
  /* control characters in a value */
  static const char bad[] = {0x00, 0x01, 0x08, 0x0b, 0x0c, 0x1b, 0x1f, 0x7f};
  for (size_t i = 0; i < sizeof(bad); i++) {
    char s[64];
    int n =
        snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nHost: h\r\nX: a?b\r\n\r\n");
    char *q = memchr(s, '?', (size_t)n);
    *q = bad[i];
    tr_http_head_t h;
    tr_http_field_t f[FMAX];
    outcome_t o = parse_both(0, s, (size_t)n, NULL, 0, &h, f);
    ck_assert_int_eq(o.rc, TR_EPROTO);
    ck_assert_int_eq(o.error_status, 400);
    /* refused as soon as the byte arrives */
    tr_http_head_init(&h, f, FMAX);
    ck_assert_int_eq(tr_http_request_parse(&h, s, (size_t)(q - s) + 1, NULL),
                     TR_EPROTO);
  }
}
END_TEST

START_TEST(test_tr_http_request_parse_line_max) {
  tr_http_limits_t lim;
  tr_http_limits_init(&lim);
  lim.line_max = 16;
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  /* exactly 16 bytes before CR LF */
  const char *ok = "GET /23 HTTP/1.1\r\nHost: h\r\n\r\n";
  outcome_t o = parse_both(0, ok, strlen(ok), &lim, 0, &h, f);
  ck_assert_int_eq(o.rc, (int)strlen(ok));
  const char *lng = "GET /234 HTTP/1.1\r\nHost: h\r\n\r\n";
  o = parse_both(0, lng, strlen(lng), &lim, 0, &h, f);
  ck_assert_int_eq(o.rc, TR_EPROTO);
  ck_assert_int_eq(o.error_status, 414);
  /* before CR LF arrives: the 17th byte is enough */
  refused_at_once("GET /aaaaaaaaaaaa", 414, &lim);
  tr_http_head_init(&h, f, FMAX);
  ck_assert_int_eq(tr_http_request_parse(&h, "GET /aaaaaaaaaaa", 16, &lim), 0);
  /* leading empty lines do not count */
  const char *lead = "\r\n\r\nGET /23 HTTP/1.1\r\nHost: h\r\n\r\n";
  o = parse_both(0, lead, strlen(lead), &lim, 0, &h, f);
  ck_assert_int_eq(o.rc, (int)strlen(lead));
  /* fields are not start lines */
  const char *fl = "GET / HTTP/1.1\r\nHost: hhhhhhhhhhhhhhhhhhhhhh\r\n\r\n";
  o = parse_both(0, fl, strlen(fl), &lim, 0, &h, f);
  ck_assert_int_eq(o.rc, (int)strlen(fl));
  /* the default: 8192 */
  static char big[TR_HTTP_LINE_MAX + 64];
  memset(big, 'a', sizeof(big));
  memcpy(big, "GET /", 5);
  tr_http_head_init(&h, f, FMAX);
  ck_assert_int_eq(tr_http_request_parse(&h, big, TR_HTTP_LINE_MAX, NULL), 0);
  ck_assert_int_eq(tr_http_request_parse(&h, big, TR_HTTP_LINE_MAX + 1, NULL),
                   TR_EPROTO);
  ck_assert_int_eq(h.error_status, 414);
}
END_TEST

START_TEST(test_tr_http_request_parse_fields_max) {
  tr_http_limits_t lim;
  tr_http_limits_init(&lim);
  lim.fields_max = 3;
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  const char *three = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
  const char *four =
      "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
  outcome_t o = parse_both(0, three, strlen(three), &lim, 0, &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_uint_eq(h.nfields, 3);
  o = parse_both(0, four, strlen(four), &lim, 0, &h, f);
  ck_assert_int_eq(o.rc, TR_EPROTO);
  ck_assert_int_eq(o.error_status, 431);
  /* refused when the extra field line ends, before the head does */
  tr_http_head_init(&h, f, FMAX);
  ck_assert_int_eq(tr_http_request_parse(&h, four, strlen(four) - 2, &lim),
                   TR_EPROTO);
  /* fields_cap bounds it too */
  tr_http_head_init(&h, f, 2);
  ck_assert_int_eq(tr_http_request_parse(&h, three, strlen(three), NULL),
                   TR_EPROTO);
  ck_assert_int_eq(h.error_status, 431);
  tr_http_head_init(&h, f, 3);
  ck_assert_int_eq(tr_http_request_parse(&h, three, strlen(three), NULL),
                   (int)strlen(three));
}
END_TEST

START_TEST(test_tr_http_request_parse_head_max) {
  tr_http_limits_t lim;
  tr_http_limits_init(&lim);
  lim.head_max = 40;
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  const char *s40 = "GET / HTTP/1.1\r\nHost: h\r\nX: 12345678\r\n\r\n";
  ck_assert_uint_eq(strlen(s40), 40);
  outcome_t o = parse_both(0, s40, 40, &lim, 0, &h, f);
  ck_assert_int_eq(o.rc, 40);
  const char *s41 = "GET / HTTP/1.1\r\nHost: h\r\nX: 123456789\r\n\r\n";
  o = parse_both(0, s41, 41, &lim, 0, &h, f);
  ck_assert_int_eq(o.rc, TR_EPROTO);
  ck_assert_int_eq(o.error_status, 431);
  /* before the head is whole */
  refused_at_once("GET / HTTP/1.1\r\nHost: h\r\nX: 123456789012345", 431, &lim);
  /* the default, 64 KiB */
  static char big[TR_HTTP_HEAD_MAX + 16];
  size_t n = 0;
  n += (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: h\r\nX: ");
  memset(big + n, 'v', sizeof(big) - n);
  tr_http_head_init(&h, f, FMAX);
  ck_assert_int_eq(tr_http_request_parse(&h, big, TR_HTTP_HEAD_MAX, NULL), 0);
  ck_assert_int_eq(tr_http_request_parse(&h, big, sizeof(big), NULL),
                   TR_EPROTO);
  ck_assert_int_eq(h.error_status, 431);
}
END_TEST

START_TEST(test_tr_http_request_parse_incremental) {
  const char *s = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
  size_t hl = strlen(s) - 3;
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  tr_http_head_init(&h, f, FMAX);
  /* every proper prefix of the head asks for more and is checked once */
  for (size_t k = 0; k < hl; k++) {
    ck_assert_int_eq(tr_http_request_parse(&h, s, k, NULL), 0);
    ck_assert_uint_eq(h.scan_, k);
  }
  ck_assert_int_eq(tr_http_request_parse(&h, s, strlen(s), NULL), (int)hl);
  /* whole: the same answer again, the body is not looked at */
  ck_assert_int_eq(tr_http_request_parse(&h, s, strlen(s), NULL), (int)hl);
  /* a buffer that moved: the views follow it */
  char copy[128];
  memcpy(copy, s, strlen(s));
  ck_assert_int_eq(tr_http_request_parse(&h, copy, strlen(s), NULL), (int)hl);
  ck_assert_ptr_eq(h.target.p, copy + 5);
  ck_assert_ptr_eq(h.host.p, copy + 24);
  /* a refusal sticks */
  tr_http_head_init(&h, f, FMAX);
  ck_assert_int_eq(tr_http_request_parse(&h, "GET\n", 4, NULL), TR_EPROTO);
  ck_assert_int_eq(tr_http_request_parse(&h, "GET\n", 4, NULL), TR_EPROTO);
  ck_assert_int_eq(h.error_status, 400);
}
END_TEST

START_TEST(test_tr_http_request_parse_truncated) {
  /* every prefix of a refused head is either waiting or refused the same */
  const char *s =
      "POST / HTTP/1.1\r\nHost: h\r\nX: a\x01"
      "b\r\n\r\n";
  size_t n = strlen(s);
  int refused = 0;
  for (size_t k = 0; k <= n; k++) {
    tr_http_head_t h;
    tr_http_field_t f[FMAX];
    tr_http_head_init(&h, f, FMAX);
    int rc = tr_http_request_parse(&h, s, k, NULL);
    if (rc == 0) {
      ck_assert(!refused);
    } else {
      ck_assert_int_eq(rc, TR_EPROTO);
      ck_assert_int_eq(h.error_status, 400);
      refused = 1;
    }
  }
  ck_assert(refused);
}
END_TEST

START_TEST(test_tr_http_request_parse_einval) {
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  tr_http_head_init(&h, f, FMAX);
  ck_assert_int_eq(tr_http_request_parse(NULL, "G", 1, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_http_request_parse(&h, NULL, 1, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_http_request_parse(&h, NULL, 0, NULL), 0);
  tr_http_head_init(&h, NULL, 4);
  ck_assert_int_eq(tr_http_request_parse(&h, "G", 1, NULL), TR_EINVAL);
  tr_http_head_init(&h, f, 0);
  ck_assert_int_eq(tr_http_request_parse(&h, "G", 1, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_http_response_parse(NULL, "H", 1, NULL, 0), TR_EINVAL);
  /* a buffer that shrank */
  tr_http_head_init(&h, f, FMAX);
  ck_assert_int_eq(tr_http_request_parse(&h, "GET ", 4, NULL), 0);
  ck_assert_int_eq(tr_http_request_parse(&h, "GET ", 3, NULL), TR_EINVAL);
  /* limits: a size too small, a larger struct with unknown fields set */
  struct {
    tr_http_limits_t l;
    uint64_t extra;
  } big;
  memset(&big, 0, sizeof(big));
  big.l.size = sizeof(big);
  tr_http_head_init(&h, f, FMAX);
  ck_assert_int_eq(tr_http_request_parse(&h, "G", 1, &big.l), 0);
  big.extra = 1;
  tr_http_head_init(&h, f, FMAX);
  ck_assert_int_eq(tr_http_request_parse(&h, "G", 1, &big.l), TR_EINVAL);
  tr_http_limits_t small;
  tr_http_limits_init(&small);
  small.size = 1;
  ck_assert_int_eq(tr_http_request_parse(&h, "G", 1, &small), TR_EINVAL);
  /* size 0: this release's struct */
  tr_http_limits_t zero = {0};
  zero.line_max = 4;
  ck_assert_int_eq(tr_http_request_parse(&h, "GETX ", 5, &zero), TR_EPROTO);
  ck_assert_int_eq(h.error_status, 414);
}
END_TEST

START_TEST(test_tr_http_head_field) {
  const char *s =
      "GET / HTTP/1.1\r\nHost: h\r\nX-Thing: 1\r\nx-thing: 2\r\n\r\n";
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  outcome_t o = req(s, &h, f);
  ck_assert_int_gt(o.rc, 0);
  const tr_http_field_t *x = tr_http_head_field(&h, "X-THING");
  ck_assert_ptr_nonnull(x);
  ASSERT_STR(x->value, "1");
  ck_assert_ptr_eq(tr_http_head_field(&h, "host"), &h.fields[0]);
  ck_assert_ptr_null(tr_http_head_field(&h, "X-Thin"));
  ck_assert_ptr_null(tr_http_head_field(&h, "X-Things"));
  ck_assert_ptr_null(tr_http_head_field(&h, ""));
  ck_assert_ptr_null(tr_http_head_field(&h, NULL));
  ck_assert_ptr_null(tr_http_head_field(NULL, "host"));
}
END_TEST

/* ---- responses ----------------------------------------------------------- */

static outcome_t rsp(const char *s, int head_req, tr_http_head_t *h,
                     tr_http_field_t *f) {
  return parse_both(1, s, strlen(s), NULL, head_req, h, f);
}

START_TEST(test_tr_http_response_parse_length) {
  const char *s =
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nServer: t\r\n\r\nabc";
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  outcome_t o = rsp(s, 0, &h, f);
  ck_assert_int_eq(o.rc, (int)strlen(s) - 3);
  ck_assert_int_eq(h.status, 200);
  ck_assert_int_eq(h.version, 11);
  ASSERT_STR(h.reason, "OK");
  ck_assert_int_eq(h.body, TR_HTTP_BODY_LENGTH);
  ck_assert_uint_eq(h.content_length, 3);
  ck_assert_uint_eq(h.keep_alive, 1);
  ck_assert_uint_eq(h.nfields, 2);
  /* a response needs no Host */
  ck_assert_uint_eq(h.host.n, 0);
}
END_TEST

START_TEST(test_tr_http_response_parse_chunked) {
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  outcome_t o = rsp(
      "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n", 0, &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_int_eq(h.status, 404);
  ASSERT_STR(h.reason, "Not Found");
  ck_assert_int_eq(h.body, TR_HTTP_BODY_CHUNKED);
}
END_TEST

START_TEST(test_tr_http_response_parse_close) {
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  outcome_t o = rsp("HTTP/1.1 200 OK\r\nServer: t\r\n\r\nall of it", 0, &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_int_eq(h.body, TR_HTTP_BODY_CLOSE);
  ck_assert_uint_eq(h.keep_alive, 0);
  o = rsp(
      "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
      0, &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_int_eq(h.version, 10);
  ck_assert_uint_eq(h.keep_alive, 1);
}
END_TEST

START_TEST(test_tr_http_response_parse_no_body) {
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  /* HEAD: the fields describe the GET's body */
  outcome_t o = rsp("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", 1, &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_int_eq(h.body, TR_HTTP_BODY_NONE);
  ck_assert_uint_eq(h.keep_alive, 1);
  o = rsp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 1, &h, f);
  ck_assert_int_eq(h.body, TR_HTTP_BODY_NONE);
  o = rsp("HTTP/1.1 200 OK\r\n\r\n", 1, &h, f);
  ck_assert_int_eq(h.body, TR_HTTP_BODY_NONE);
  ck_assert_uint_eq(h.keep_alive, 1);
  /* 204, 304, 1xx */
  o = rsp("HTTP/1.1 204 No Content\r\n\r\n", 0, &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_int_eq(h.body, TR_HTTP_BODY_NONE);
  ck_assert_uint_eq(h.keep_alive, 1);
  o = rsp("HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n", 0, &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_int_eq(h.body, TR_HTTP_BODY_NONE);
  o = rsp("HTTP/1.1 100 Continue\r\n\r\n", 0, &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_int_eq(h.status, 100);
  ck_assert_int_eq(h.body, TR_HTTP_BODY_NONE);
  o =
      rsp("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
          "Upgrade: websocket\r\n\r\n",
          0, &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_int_eq(h.body, TR_HTTP_BODY_NONE);
  ck_assert_uint_eq(h.upgrade, 1);
  o = rsp("HTTP/1.1 199 Whatever\r\n\r\n", 0, &h, f);
  ck_assert_int_eq(h.body, TR_HTTP_BODY_NONE);
  /* 205 and 2xx others follow the fields */
  o = rsp("HTTP/1.1 205 Reset Content\r\nContent-Length: 0\r\n\r\n", 0, &h, f);
  ck_assert_int_eq(h.body, TR_HTTP_BODY_LENGTH);
}
END_TEST

START_TEST(test_tr_http_response_parse_reason) {
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  outcome_t o = rsp("HTTP/1.1 200 \r\n\r\n", 0, &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_uint_eq(h.reason.n, 0);
  o = rsp("HTTP/1.1 999 a\tb \xe9t\xe9 \r\n\r\n", 0, &h, f);
  ck_assert_int_gt(o.rc, 0);
  ck_assert_int_eq(h.status, 999);
  ASSERT_STR(h.reason, "a\tb \xe9t\xe9 ");
  o = rsp("\r\nHTTP/1.1 200 OK\r\n\r\n", 0, &h, f);
  ck_assert_int_gt(o.rc, 0);
}
END_TEST

START_TEST(test_tr_http_response_parse_refusals) {
  resp_refused("HTTP/1.1 200\r\n\r\n");
  resp_refused("HTTP/1.1 20 OK\r\n\r\n");
  resp_refused("HTTP/1.1 2000 OK\r\n\r\n");
  resp_refused("HTTP/1.1 099 OK\r\n\r\n");
  resp_refused("HTTP/1.1 2x0 OK\r\n\r\n");
  resp_refused("HTTP/1.1  200 OK\r\n\r\n");
  resp_refused("HTTP/2.0 200 OK\r\n\r\n");
  resp_refused("HTTP/1.2 200 OK\r\n\r\n");
  resp_refused("HTTP/1.1\r\n\r\n");
  resp_refused("http/1.1 200 OK\r\n\r\n");
  resp_refused("ICY 200 OK\r\n\r\n");
  resp_refused("HTTP/1.1 200 O\x01K\r\n\r\n");
  resp_refused("HTTP/1.1 200 OK\n\n");
  resp_refused("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n");
  resp_refused(
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
      "Transfer-Encoding: chunked\r\n\r\n");
  resp_refused(
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n");
  resp_refused("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n");
  resp_refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
  resp_refused("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  resp_refused("HTTP/1.1 200 OK\r\nX : y\r\n\r\n");
  resp_refused("HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n");
  /* a status line too long: 502 as well */
  tr_http_limits_t lim;
  tr_http_limits_init(&lim);
  lim.line_max = 10;
  tr_http_head_t h;
  tr_http_field_t f[FMAX];
  tr_http_head_init(&h, f, FMAX);
  ck_assert_int_eq(tr_http_response_parse(&h, "HTTP/1.1 200 OK", 15, &lim, 0),
                   TR_EPROTO);
  ck_assert_int_eq(h.error_status, 502);
}
END_TEST

/* ---- the chunked decoder ------------------------------------------------ */

typedef struct dec {
  int rc; /* 0, or the error */
  int done;
  size_t consumed; /* total */
  char data[8192]; /* body bytes, in order */
  size_t ndata;
} dec_t;

/* Feeds p[0, n) in pieces of at most step bytes (0: all at once),
 * calling the decoder until each piece is consumed, the body is done or
 * it fails. */
static void decode(const char *p, size_t n, size_t step, size_t trailer_max,
                   dec_t *out) {
  tr_http_chunked_t d;
  tr_http_chunked_init(&d);
  d.trailer_max = trailer_max;
  memset(out, 0, sizeof(*out));
  size_t have = 0; /* bytes made available */
  while (!d.done) {
    if (out->consumed == have) {
      if (have == n) break;
      have = step && n - have > step ? have + step : n;
    }
    tr_http_str_t v;
    int64_t r =
        tr_http_chunked_decode(&d, p + out->consumed, have - out->consumed, &v);
    if (r < 0) {
      out->rc = (int)r;
      return;
    }
    ck_assert_uint_le((uint64_t)r, have - out->consumed);
    if (v.n) {
      /* the view lies inside the consumed bytes */
      ck_assert(v.p >= p + out->consumed);
      ck_assert(v.p + v.n <= p + out->consumed + (size_t)r);
      ck_assert_uint_le(out->ndata + v.n, sizeof(out->data));
      memcpy(out->data + out->ndata, v.p, v.n);
      out->ndata += v.n;
    }
    out->consumed += (size_t)r;
  }
  out->done = d.done;
  /* once done, nothing more is consumed */
  if (d.done && out->consumed < n) {
    tr_http_str_t v;
    ck_assert_int_eq(
        tr_http_chunked_decode(&d, p + out->consumed, n - out->consumed, &v),
        0);
    ck_assert_uint_eq(v.n, 0);
  }
}

/* Decodes whole, a byte at a time and split at every position, checks
 * they agree, and returns the whole result. */
static dec_t *decode_all_ways(const char *p, size_t n) {
  static dec_t whole, other;
  decode(p, n, 0, 0, &whole);
  decode(p, n, 1, 0, &other);
  ck_assert_int_eq(other.rc, whole.rc);
  ck_assert_int_eq(other.done, whole.done);
  /* (after a refusal, what was consumed before it depends on the calls) */
  if (!whole.rc) ck_assert_uint_eq(other.consumed, whole.consumed);
  ck_assert_uint_eq(other.ndata, whole.ndata);
  ck_assert_mem_eq(other.data, whole.data, whole.ndata);
  for (size_t k = 1; k < n; k++) {
    /* two pieces: k bytes, then the rest */
    tr_http_chunked_t d;
    tr_http_chunked_init(&d);
    size_t off = 0, nd = 0;
    int rc = 0;
    char buf[8192];
    for (int piece = 0; piece < 2 && !rc && !d.done; piece++) {
      size_t lim = piece == 0 ? k : n;
      while (off < lim && !d.done) {
        tr_http_str_t v;
        int64_t r = tr_http_chunked_decode(&d, p + off, lim - off, &v);
        if (r < 0) {
          rc = (int)r;
          break;
        }
        memcpy(buf + nd, v.p, v.n);
        nd += v.n;
        off += (size_t)r;
      }
    }
    ck_assert_int_eq(rc, whole.rc);
    ck_assert_int_eq(d.done, whole.done);
    if (!rc) ck_assert_uint_eq(off, whole.consumed);
    ck_assert_uint_eq(nd, whole.ndata);
    ck_assert_mem_eq(buf, whole.data, nd);
  }
  return &whole;
}

#define DECODE(lit) decode_all_ways((lit), sizeof(lit) - 1)

START_TEST(test_tr_http_chunked_decode_one) {
  dec_t *r = DECODE("5\r\nhello\r\n0\r\n\r\n");
  ck_assert_int_eq(r->rc, 0);
  ck_assert_int_eq(r->done, 1);
  ck_assert_uint_eq(r->consumed, 15);
  ck_assert_uint_eq(r->ndata, 5);
  ck_assert_mem_eq(r->data, "hello", 5);
  /* an empty body */
  r = DECODE("0\r\n\r\n");
  ck_assert_int_eq(r->done, 1);
  ck_assert_uint_eq(r->ndata, 0);
}
END_TEST

START_TEST(test_tr_http_chunked_decode_many) {
  dec_t *r = DECODE(
      "3\r\nabc\r\nA\r\n0123456789\r\n1\r\nz\r\n"
      "1f\r\nABCDEFGHIJKLMNOPQRSTUVWXYZabcde\r\n"
      "00\r\n\r\n");
  ck_assert_int_eq(r->rc, 0);
  ck_assert_int_eq(r->done, 1);
  ck_assert_uint_eq(r->ndata, 3 + 10 + 1 + 31);
  ck_assert_mem_eq(r->data, "abc0123456789zABCDEFGHIJKLMNOPQRSTUVWXYZabcde",
                   45);
  /* leading zeros are allowed */
  r = DECODE("00000000000000000000005\r\nhello\r\n0\r\n\r\n");
  ck_assert_int_eq(r->done, 1);
  ck_assert_uint_eq(r->ndata, 5);
}
END_TEST

START_TEST(test_tr_http_chunked_decode_one_view_per_call) {
  const char *s = "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
  size_t n = strlen(s);
  tr_http_chunked_t d;
  tr_http_chunked_init(&d);
  tr_http_str_t v;
  int64_t r = tr_http_chunked_decode(&d, s, n, &v);
  /* "3\r\nabc\r\n3\r\n" then stops before the next data */
  ck_assert_int_eq(r, 11);
  ck_assert_ptr_eq(v.p, s + 3);
  ck_assert_uint_eq(v.n, 3);
  ck_assert(!d.done);
  int64_t r2 = tr_http_chunked_decode(&d, s + r, n - (size_t)r, &v);
  ck_assert_int_eq(r2, (int64_t)(n - (size_t)r));
  ck_assert_ptr_eq(v.p, s + 11);
  ck_assert_uint_eq(v.n, 3);
  ck_assert(d.done);
  /* partial data: a view of what there is */
  tr_http_chunked_init(&d);
  r = tr_http_chunked_decode(&d, "a\r\n0123", 7, &v);
  ck_assert_int_eq(r, 7);
  ck_assert_uint_eq(v.n, 4);
  r = tr_http_chunked_decode(&d, "456789\r\n", 8, &v);
  ck_assert_int_eq(r, 8);
  ck_assert_uint_eq(v.n, 6);
  ck_assert(!d.done);
  /* framing only */
  r = tr_http_chunked_decode(&d, "0\r\n", 3, &v);
  ck_assert_int_eq(r, 3);
  ck_assert_uint_eq(v.n, 0);
}
END_TEST

START_TEST(test_tr_http_chunked_decode_extensions) {
  dec_t *r = DECODE(
      "5;name=value;flag;q=\"a \\\"quoted\\\" \\\\ str\";x=\"\"\r\n"
      "hello\r\n0;last\r\n\r\n");
  ck_assert_int_eq(r->rc, 0);
  ck_assert_int_eq(r->done, 1);
  ck_assert_mem_eq(r->data, "hello", 5);
  /* BWS around ';' and '=' */
  r = DECODE("5 ; a = b\t;\tc ;d=\"e\" ;f\r\nhello\r\n0\r\n\r\n");
  ck_assert_int_eq(r->rc, 0);
  ck_assert_int_eq(r->done, 1);
  /* malformed extensions */
  ck_assert_int_eq(DECODE("5;\r\nhello\r\n0\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("5;a=\r\nhello\r\n0\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("5;a=b c\r\nhello\r\n0\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("5;a=\"x\r\nhello\r\n0\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("5;a=\"x\"y\r\nhello\r\n0\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("5;(a)\r\nhello\r\n0\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("5 \r\nhello\r\n0\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("5;a \r\nhello\r\n0\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n")->rc, TR_EPROTO);
  /* a chunk-size line over 4096 bytes */
  static char lng[5000];
  size_t n = 0;
  lng[n++] = '1';
  while (n < 4090) {
    memcpy(lng + n, ";ab", 3);
    n += 3;
  }
  memcpy(lng + n, "\r\nx\r\n0\r\n\r\n", 10);
  n += 10;
  dec_t out;
  decode(lng, n, 0, 0, &out);
  ck_assert_int_eq(out.rc, 0); /* 4090 bytes: fine */
  memmove(lng + 4099, lng + 4090, 10);
  memcpy(lng + 4090, ";ab;ab;ab", 9);
  decode(lng, n + 9, 0, 0, &out);
  ck_assert_int_eq(out.rc, TR_EPROTO);
}
END_TEST

START_TEST(test_tr_http_chunked_decode_trailers) {
  dec_t *r = DECODE(
      "5\r\nhello\r\n0\r\nX-Sum: 1234\r\nX-Other:\tz y \r\n"
      "Empty:\r\n\r\n");
  ck_assert_int_eq(r->rc, 0);
  ck_assert_int_eq(r->done, 1);
  ck_assert_uint_eq(r->ndata, 5);
  ck_assert_int_eq(DECODE("0\r\nX Sum: 1\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("0\r\nX-Sum : 1\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("0\r\nX: 1\r\n folded\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("0\r\nX: a\x01z\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("0\r\n: v\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("0\r\nNoColon\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("0\r\nX: 1\r\r\n\r\n")->rc, TR_EPROTO);
  /* the trailer bound: "X: 12\r\n" + "\r\n" is 9 bytes */
  const char *t = "0\r\nX: 12\r\n\r\n";
  dec_t out;
  decode(t, strlen(t), 0, 9, &out);
  ck_assert_int_eq(out.rc, 0);
  ck_assert_int_eq(out.done, 1);
  decode(t, strlen(t), 0, 8, &out);
  ck_assert_int_eq(out.rc, TR_EPROTO);
  decode(t, strlen(t), 1, 8, &out);
  ck_assert_int_eq(out.rc, TR_EPROTO);
}
END_TEST

START_TEST(test_tr_http_chunked_decode_bad_size) {
  ck_assert_int_eq(DECODE("g\r\nhello\r\n0\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("\r\nhello\r\n0\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("-5\r\nhello\r\n0\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("+5\r\nhello\r\n0\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("0x5\r\nhello\r\n0\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE(" 5\r\nhello\r\n0\r\n\r\n")->rc, TR_EPROTO);
  /* overflow: 2^63 and beyond */
  ck_assert_int_eq(DECODE("8000000000000000\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("10000000000000000\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("ffffffffffffffffff\r\n")->rc, TR_EPROTO);
  /* 2^63 - 1 is a size (the data is then awaited) */
  dec_t *r = DECODE("7fffffffffffffff\r\nabc");
  ck_assert_int_eq(r->rc, 0);
  ck_assert_int_eq(r->done, 0);
  ck_assert_uint_eq(r->consumed, 21);
  ck_assert_uint_eq(r->ndata, 3);
}
END_TEST

START_TEST(test_tr_http_chunked_decode_bad_framing) {
  /* no CR LF after the data: the data comes first, then the refusal */
  dec_t *r = DECODE("5\r\nhelloX\r\n0\r\n\r\n");
  ck_assert_int_eq(r->rc, TR_EPROTO);
  ck_assert_uint_eq(r->ndata, 5);
  tr_http_chunked_t d;
  tr_http_chunked_init(&d);
  tr_http_str_t v;
  const char *s = "5\r\nhelloX\r\n";
  int64_t n = tr_http_chunked_decode(&d, s, strlen(s), &v);
  ck_assert_int_eq(n, 8);
  ck_assert_uint_eq(v.n, 5);
  ck_assert_int_eq(tr_http_chunked_decode(&d, s + 8, strlen(s) - 8, &v),
                   TR_EPROTO);
  ck_assert_uint_eq(v.n, 0);
  /* the refusal sticks */
  ck_assert_int_eq(tr_http_chunked_decode(&d, "\r\n", 2, &v), TR_EPROTO);
  ck_assert_int_eq(DECODE("5\r\nhello\r0\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("5\r\nhello0\r\n\r\n")->rc, TR_EPROTO);
  /* bare LF and bare CR, wherever */
  ck_assert_int_eq(DECODE("5\nhello\r\n0\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("5\rhello\r\n0\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("5\r\nhello\n0\r\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("5\r\nhello\r\n0\n\r\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("5\r\nhello\r\n0\r\n\n")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("5\r\nhello\r\n0\r\n\rX")->rc, TR_EPROTO);
  ck_assert_int_eq(DECODE("5;a=b\nhello\r\n0\r\n\r\n")->rc, TR_EPROTO);
}
END_TEST

START_TEST(test_tr_http_chunked_decode_trailing_bytes) {
  const char *s = "4\r\nwiki\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
  dec_t *r = decode_all_ways(s, strlen(s));
  ck_assert_int_eq(r->rc, 0);
  ck_assert_int_eq(r->done, 1);
  ck_assert_uint_eq(r->consumed, 14);
  ck_assert_str_eq(s + r->consumed, "GET / HTTP/1.1\r\n");
  /* the same with a trailer */
  s = "0\r\nT: v\r\n\r\n\r\n";
  r = decode_all_ways(s, strlen(s));
  ck_assert_int_eq(r->done, 1);
  ck_assert_uint_eq(r->consumed, strlen(s) - 2);
  /* truncated: not done, all consumed, no error */
  s = "5\r\nhello\r\n0\r\n";
  r = decode_all_ways(s, strlen(s));
  ck_assert_int_eq(r->rc, 0);
  ck_assert_int_eq(r->done, 0);
  ck_assert_uint_eq(r->consumed, strlen(s));
}
END_TEST

START_TEST(test_tr_http_chunked_decode_einval) {
  tr_http_chunked_t d;
  tr_http_chunked_init(&d);
  tr_http_str_t v;
  ck_assert_int_eq(tr_http_chunked_decode(NULL, "0", 1, &v), TR_EINVAL);
  ck_assert_int_eq(tr_http_chunked_decode(&d, "0", 1, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_http_chunked_decode(&d, NULL, 1, &v), TR_EINVAL);
  ck_assert_int_eq(tr_http_chunked_decode(&d, NULL, 0, &v), 0);
  ck_assert_uint_eq(v.n, 0);
}
END_TEST

/* ---- writers ------------------------------------------------------------ */

START_TEST(test_tr_http_chunk_line) {
  char out[19];
  ck_assert_uint_eq(tr_http_chunk_line(out, 0), 3);
  ck_assert_str_eq(out, "0\r\n");
  ck_assert_uint_eq(tr_http_chunk_line(out, 26), 4);
  ck_assert_str_eq(out, "1a\r\n");
  ck_assert_uint_eq(tr_http_chunk_line(out, 0x1000), 6);
  ck_assert_str_eq(out, "1000\r\n");
  ck_assert_uint_eq(tr_http_chunk_line(out, UINT64_MAX), 18);
  ck_assert_str_eq(out, "ffffffffffffffff\r\n");
  /* what it writes, the decoder reads */
  char body[64];
  size_t n = tr_http_chunk_line(body, 11);
  memcpy(body + n, "hello world\r\n", 13);
  n += 13;
  n += tr_http_chunk_line(body + n, 0);
  memcpy(body + n, "\r\n", 2);
  n += 2;
  dec_t *r = decode_all_ways(body, n);
  ck_assert_int_eq(r->done, 1);
  ck_assert_uint_eq(r->ndata, 11);
  ck_assert_mem_eq(r->data, "hello world", 11);
}
END_TEST

START_TEST(test_tr_http_date) {
  char out[30];
  memset(out, 'x', sizeof(out));
  tr_http_date((time_t)784111777, out);
  ck_assert_str_eq(out, "Sun, 06 Nov 1994 08:49:37 GMT");
  ck_assert_uint_eq(strlen(out), 29);
  tr_http_date((time_t)0, out);
  ck_assert_str_eq(out, "Thu, 01 Jan 1970 00:00:00 GMT");
  tr_http_date((time_t)951782400, out);
  ck_assert_str_eq(out, "Tue, 29 Feb 2000 00:00:00 GMT");
  tr_http_date((time_t)1700000000, out);
  ck_assert_str_eq(out, "Tue, 14 Nov 2023 22:13:20 GMT");
  /* clamped to 1970..9999 */
  tr_http_date((time_t)-1, out);
  ck_assert_str_eq(out, "Thu, 01 Jan 1970 00:00:00 GMT");
  if (sizeof(time_t) > 4) {
    tr_http_date((time_t)INT64_MAX, out);
    ck_assert_str_eq(out, "Fri, 31 Dec 9999 23:59:59 GMT");
  }
}
END_TEST

START_TEST(test_tr_http_reason) {
  ck_assert_str_eq(tr_http_reason(200), "OK");
  ck_assert_str_eq(tr_http_reason(100), "Continue");
  ck_assert_str_eq(tr_http_reason(404), "Not Found");
  ck_assert_str_eq(tr_http_reason(413), "Content Too Large");
  ck_assert_str_eq(tr_http_reason(417), "Expectation Failed");
  ck_assert_str_eq(tr_http_reason(431), "Request Header Fields Too Large");
  ck_assert_str_eq(tr_http_reason(501), "Not Implemented");
  ck_assert_str_eq(tr_http_reason(505), "HTTP Version Not Supported");
  ck_assert_str_eq(tr_http_reason(306), "");
  ck_assert_str_eq(tr_http_reason(418), "");
  ck_assert_str_eq(tr_http_reason(0), "");
  ck_assert_str_eq(tr_http_reason(-1), "");
  ck_assert_str_eq(tr_http_reason(999), "");
  /* every status the parser gives has a reason */
  static const int given[] = {400, 414, 417, 431, 501, 502, 505};
  for (size_t i = 0; i < sizeof(given) / sizeof(given[0]); i++)
    ck_assert_str_ne(tr_http_reason(given[i]), "");
}
END_TEST

static Suite *http_parse_suite(void) {
  Suite *s = suite_create("http_parse");
  TCase *tc = tcase_create("request");
  tcase_add_test(tc, test_tr_http_request_parse_get);
  tcase_add_test(tc, test_tr_http_request_parse_value_chars);
  tcase_add_test(tc, test_tr_http_request_parse_post_length);
  tcase_add_test(tc, test_tr_http_request_parse_chunked);
  tcase_add_test(tc, test_tr_http_request_parse_pipelined);
  tcase_add_test(tc, test_tr_http_request_parse_keep_alive);
  tcase_add_test(tc, test_tr_http_request_parse_upgrade);
  tcase_add_test(tc, test_tr_http_request_parse_expect);
  tcase_add_test(tc, test_tr_http_request_parse_leading_crlf);
  tcase_add_test(tc, test_tr_http_request_parse_method_target);
  tcase_add_test(tc, test_tr_http_request_parse_version);
  tcase_add_test(tc, test_tr_http_request_parse_bare_cr);
  tcase_add_test(tc, test_tr_http_request_parse_bare_lf);
  tcase_add_test(tc, test_tr_http_request_parse_framing_refusals);
  tcase_add_test(tc, test_tr_http_request_parse_field_refusals);
  tcase_add_test(tc, test_tr_http_request_parse_line_max);
  tcase_add_test(tc, test_tr_http_request_parse_fields_max);
  tcase_add_test(tc, test_tr_http_request_parse_head_max);
  tcase_add_test(tc, test_tr_http_request_parse_incremental);
  tcase_add_test(tc, test_tr_http_request_parse_truncated);
  tcase_add_test(tc, test_tr_http_request_parse_einval);
  tcase_add_test(tc, test_tr_http_head_field);
  suite_add_tcase(s, tc);

  tc = tcase_create("response");
  tcase_add_test(tc, test_tr_http_response_parse_length);
  tcase_add_test(tc, test_tr_http_response_parse_chunked);
  tcase_add_test(tc, test_tr_http_response_parse_close);
  tcase_add_test(tc, test_tr_http_response_parse_no_body);
  tcase_add_test(tc, test_tr_http_response_parse_reason);
  tcase_add_test(tc, test_tr_http_response_parse_refusals);
  suite_add_tcase(s, tc);

  tc = tcase_create("chunked");
  tcase_add_test(tc, test_tr_http_chunked_decode_one);
  tcase_add_test(tc, test_tr_http_chunked_decode_many);
  tcase_add_test(tc, test_tr_http_chunked_decode_one_view_per_call);
  tcase_add_test(tc, test_tr_http_chunked_decode_extensions);
  tcase_add_test(tc, test_tr_http_chunked_decode_trailers);
  tcase_add_test(tc, test_tr_http_chunked_decode_bad_size);
  tcase_add_test(tc, test_tr_http_chunked_decode_bad_framing);
  tcase_add_test(tc, test_tr_http_chunked_decode_trailing_bytes);
  tcase_add_test(tc, test_tr_http_chunked_decode_einval);
  suite_add_tcase(s, tc);

  tc = tcase_create("writers");
  tcase_add_test(tc, test_tr_http_chunk_line);
  tcase_add_test(tc, test_tr_http_date);
  tcase_add_test(tc, test_tr_http_reason);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(http_parse_suite()); }
