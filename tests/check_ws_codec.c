/* SPDX-License-Identifier: MIT */
/*
 * Tests of the WebSocket codec (<troupe/ws.h>): the examples of RFC 6455
 * section 5.7 byte for byte (written and parsed), the handshake example
 * of section 1.3, every header violation with its close code, masking at
 * any offset, the UTF-8 validator (valid text split at every byte,
 * overlong forms, surrogates, code points above U+10FFFF, text truncated
 * inside a character), close payloads, and the message parser: control
 * frames between fragments, continuation and nesting errors, the size
 * limit (1009) before the payload arrives, the reassembly memory, the
 * fragments mode, and the same events whether the stream arrives whole,
 * a byte at a time or in chunks of any size.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <troupe.h>
#include <troupe/ws.h>

#include "testutil.h"

/* ---- helpers ------------------------------------------------------------- */

/* An assertion for hot loops: Check's ck_assert_* report every check that
 * passes to the parent process (a write each), which costs seconds over
 * the hundreds of thousands made here; this one speaks only on failure. */
#define T_CHECK(c)                                                             \
  do {                                                                         \
    if (!(c)) ck_abort_msg("%s:%d: failed: %s", __FILE__, __LINE__, #c);       \
  } while (0)

static const uint8_t rfc_key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* An allocator over realloc that counts its live blocks and can be told
 * to fail. */
static int alloc_live, alloc_calls, alloc_fail_after = -1;

static void *t_alloc(void *arg, void *ptr, size_t size) {
  (void)arg;
  if (size == 0) {
    if (ptr) alloc_live--;
    free(ptr);
    return NULL;
  }
  if (alloc_fail_after >= 0 && alloc_calls >= alloc_fail_after) return NULL;
  alloc_calls++;
  void *b = realloc(ptr, size);
  if (b && !ptr) alloc_live++;
  return b;
}

static void t_alloc_reset(void) {
  alloc_live = 0;
  alloc_calls = 0;
  alloc_fail_after = -1;
}

static void parser(tr_ws_parser_t *p, tr_ws_role_t role, uint64_t max,
                   int fragments) {
  tr_ws_parser_opts_t o;
  tr_ws_parser_opts_init(&o);
  o.role = role;
  o.max_message = max;
  o.fragments = fragments;
  o.alloc = t_alloc;
  ck_assert_int_eq(tr_ws_parser_init(p, &o), 0);
}

/* One event as recorded: its payload copied. */
typedef struct rec {
  int kind;
  int rc;
  uint16_t code;
  int opcode;
  int last;
  size_t len;
  uint8_t *data;
} rec_t;

#define MAXREC 64

/* With join set, runs of FRAGMENT events are recorded as the one TEXT or
 * BINARY event they add up to, at the place of their last piece, so that
 * the fragments mode can be compared with the whole-message mode; a
 * message left unfinished is dropped. */
typedef struct recs {
  rec_t r[MAXREC];
  int n;
  int join;
  int pending; /* pend holds the first pieces of a joined message */
  rec_t pend;
} recs_t;

static void recs_free(recs_t *rs) {
  for (int i = 0; i < rs->n; i++) free(rs->r[i].data);
  rs->n = 0;
  if (rs->pending) free(rs->pend.data);
  rs->pending = 0;
}

static void rec_push(recs_t *rs, const rec_t *r) {
  T_CHECK(rs->n < MAXREC);
  rs->r[rs->n++] = *r;
}

static void rec_add(recs_t *rs, const tr_ws_event_t *ev, int rc) {
  T_CHECK(ev->data != NULL);
  if (rs->join && ev->kind == TR_WS_EV_FRAGMENT) {
    int kind = ev->opcode == TR_WS_OP_TEXT ? TR_WS_EV_TEXT : TR_WS_EV_BINARY;
    rec_t *o = &rs->pend;
    if (!rs->pending) {
      memset(o, 0, sizeof(*o));
      o->kind = kind;
      rs->pending = 1;
    }
    T_CHECK(o->kind == kind);
    o->data = realloc(o->data, o->len + ev->len + 1);
    T_CHECK(o->data != NULL);
    if (ev->len) memcpy(o->data + o->len, ev->data, ev->len);
    o->len += ev->len;
    if (ev->last) {
      rec_push(rs, o);
      rs->pending = 0;
    }
    return;
  }
  rec_t r;
  memset(&r, 0, sizeof(r));
  r.kind = ev->kind;
  r.rc = rc;
  r.code = ev->code;
  r.opcode = ev->opcode;
  r.last = ev->last;
  r.len = ev->len;
  r.data = malloc(ev->len + 1);
  T_CHECK(r.data != NULL);
  if (ev->len) memcpy(r.data, ev->data, ev->len);
  rec_push(rs, &r);
}

/* Feeds s[0, n) to p in chunks of step bytes (0: all at once), each chunk
 * in a buffer of its own (so a read past it is caught by ASan), and
 * records the events into rs. Stops at the first error. */
static void feed(tr_ws_parser_t *p, const uint8_t *s, size_t n, size_t step,
                 recs_t *rs) {
  if (step == 0) step = n ? n : 1;
  for (size_t at = 0; at < n || at == 0; at += step) {
    size_t clen = n - at < step ? n - at : step;
    uint8_t *b = malloc(clen ? clen : 1);
    T_CHECK(b != NULL);
    if (clen) memcpy(b, s + at, clen);
    size_t off = 0;
    for (;;) {
      tr_ws_event_t ev;
      int64_t rc = tr_ws_parser_next(p, b + off, clen - off, &ev);
      if (rc < 0) {
        T_CHECK(ev.kind == TR_WS_EV_ERROR);
        rec_add(rs, &ev, (int)rc);
        free(b);
        return;
      }
      T_CHECK(rc <= (int64_t)(clen - off));
      off += (size_t)rc;
      if (ev.kind == TR_WS_EV_NONE) break;
      rec_add(rs, &ev, 0);
    }
    free(b);
    if (n == 0) break;
  }
}

static void recs_eq(const recs_t *a, const recs_t *b) {
  ck_assert_int_eq(a->n, b->n);
  for (int i = 0; i < a->n; i++) {
    ck_assert_int_eq(a->r[i].kind, b->r[i].kind);
    ck_assert_int_eq(a->r[i].code, b->r[i].code);
    ck_assert_int_eq(a->r[i].rc, b->r[i].rc);
    ck_assert_uint_eq(a->r[i].len, b->r[i].len);
    ck_assert(memcmp(a->r[i].data, b->r[i].data, a->r[i].len) == 0);
  }
}

/* Appends one frame to a stream being built. */
typedef struct stream {
  uint8_t *b;
  size_t n, cap;
} stream_t;

static void put_frame(stream_t *s, int fin, int op, const void *payload,
                      size_t len, const uint8_t *mask) {
  if (s->cap < s->n + len + TR_WS_HEADER_MAX) {
    s->cap = (s->n + len + TR_WS_HEADER_MAX) * 2;
    s->b = realloc(s->b, s->cap);
    ck_assert_ptr_nonnull(s->b);
  }
  tr_ws_frame_t f;
  memset(&f, 0, sizeof(f));
  f.fin = fin ? 1 : 0;
  f.opcode = (uint8_t)op;
  f.len = len;
  if (mask) {
    f.masked = 1;
    memcpy(f.mask, mask, 4);
  }
  int hl = tr_ws_frame_write(s->b + s->n, &f);
  ck_assert_int_gt(hl, 0);
  s->n += (size_t)hl;
  if (len) memcpy(s->b + s->n, payload, len);
  if (mask) tr_ws_mask(s->b + s->n, len, mask, 0);
  s->n += len;
}

/* The one event (or error) of a parse of s[0, n) as a server or client. */
static rec_t parse_one(tr_ws_role_t role, const uint8_t *s, size_t n,
                       uint64_t max) {
  tr_ws_parser_t p;
  recs_t rs = {.n = 0};
  parser(&p, role, max, 0);
  feed(&p, s, n, 0, &rs);
  ck_assert_int_ge(rs.n, 1);
  rec_t r = rs.r[rs.n - 1];
  for (int i = 0; i < rs.n - 1; i++) free(rs.r[i].data);
  tr_ws_parser_fini(&p);
  return r;
}

static void expect_error(tr_ws_role_t role, const uint8_t *s, size_t n,
                         uint16_t code) {
  /* whole, a byte at a time, and in fragments mode */
  for (int fr = 0; fr < 2; fr++) {
    for (size_t step = 0; step < 2; step++) {
      tr_ws_parser_t p;
      recs_t rs = {.n = 0};
      parser(&p, role, 0, fr);
      feed(&p, s, n, step, &rs);
      ck_assert_int_ge(rs.n, 1);
      rec_t *r = &rs.r[rs.n - 1];
      ck_assert_int_eq(r->kind, TR_WS_EV_ERROR);
      ck_assert_int_eq(r->code, code);
      ck_assert_int_eq(r->rc, code == 1009   ? TR_EMSGSIZE
                              : code == 1011 ? TR_ENOMEM
                                             : TR_EPROTO);
      /* final: the same again, nothing consumed */
      tr_ws_event_t ev;
      uint8_t more[2] = {0x81, 0x00};
      ck_assert_int_eq(tr_ws_parser_next(&p, more, 2, &ev), r->rc);
      ck_assert_int_eq(ev.kind, TR_WS_EV_ERROR);
      ck_assert_int_eq(ev.code, code);
      ck_assert_ptr_nonnull(ev.error);
      recs_free(&rs);
      tr_ws_parser_fini(&p);
    }
  }
}

/* ---- RFC 6455 section 5.7 ------------------------------------------------ */

static const uint8_t ex_text[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t ex_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                    0x7f, 0x9f, 0x4d, 0x51, 0x58};
static const uint8_t ex_frag[] = {0x01, 0x03, 0x48, 0x65, 0x6c,
                                  0x80, 0x02, 0x6c, 0x6f};
static const uint8_t ex_ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t ex_pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                  0x7f, 0x9f, 0x4d, 0x51, 0x58};

START_TEST(test_tr_ws_message_write_rfc_examples) {
  uint8_t out[128];
  ck_assert_int_eq(
      tr_ws_message_write(out, sizeof(out), TR_WS_OP_TEXT, "Hello", 5, NULL),
      7);
  ck_assert(memcmp(out, ex_text, 7) == 0);
  ck_assert_int_eq(
      tr_ws_message_write(out, sizeof(out), TR_WS_OP_TEXT, "Hello", 5, rfc_key),
      11);
  ck_assert(memcmp(out, ex_masked, 11) == 0);
  ck_assert_int_eq(
      tr_ws_message_write(out, sizeof(out), TR_WS_OP_PING, "Hello", 5, NULL),
      7);
  ck_assert(memcmp(out, ex_ping, 7) == 0);
  ck_assert_int_eq(
      tr_ws_message_write(out, sizeof(out), TR_WS_OP_PONG, "Hello", 5, rfc_key),
      11);
  ck_assert(memcmp(out, ex_pong, 11) == 0);

  /* the fragmented example, header by header */
  tr_ws_frame_t f;
  memset(&f, 0, sizeof(f));
  f.opcode = TR_WS_OP_TEXT;
  f.len = 3;
  ck_assert_int_eq(tr_ws_frame_write(out, &f), 2);
  memcpy(out + 2, "Hel", 3);
  f.fin = 1;
  f.opcode = TR_WS_OP_CONT;
  f.len = 2;
  ck_assert_int_eq(tr_ws_frame_write(out + 5, &f), 2);
  memcpy(out + 7, "lo", 2);
  ck_assert(memcmp(out, ex_frag, sizeof(ex_frag)) == 0);
}
END_TEST

START_TEST(test_tr_ws_message_write_lengths) {
  /* 256 bytes: 7E and a 16-bit length; 64 KiB: 7F and a 64-bit one */
  static uint8_t pl[65536], out[65536 + 14];
  for (size_t i = 0; i < sizeof(pl); i++) pl[i] = (uint8_t)(i * 7);
  ck_assert_int_eq(
      tr_ws_message_write(out, sizeof(out), TR_WS_OP_BINARY, pl, 256, NULL),
      4 + 256);
  static const uint8_t h256[] = {0x82, 0x7e, 0x01, 0x00};
  ck_assert(memcmp(out, h256, 4) == 0);
  ck_assert(memcmp(out + 4, pl, 256) == 0);
  ck_assert_int_eq(
      tr_ws_message_write(out, sizeof(out), TR_WS_OP_BINARY, pl, 65536, NULL),
      10 + 65536);
  static const uint8_t h64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0};
  ck_assert(memcmp(out, h64k, 10) == 0);
  ck_assert(memcmp(out + 10, pl, 65536) == 0);

  /* the boundaries of the three encodings */
  ck_assert_uint_eq(tr_ws_header_size(0, 0), 2);
  ck_assert_uint_eq(tr_ws_header_size(125, 0), 2);
  ck_assert_uint_eq(tr_ws_header_size(126, 0), 4);
  ck_assert_uint_eq(tr_ws_header_size(65535, 1), 8);
  ck_assert_uint_eq(tr_ws_header_size(65536, 0), 10);
  ck_assert_uint_eq(tr_ws_header_size(65536, 1), 14);
}
END_TEST

START_TEST(test_tr_ws_parser_next_rfc_examples) {
  rec_t r = parse_one(TR_WS_CLIENT, ex_text, sizeof(ex_text), 0);
  ck_assert_int_eq(r.kind, TR_WS_EV_TEXT);
  ck_assert_uint_eq(r.len, 5);
  ck_assert(memcmp(r.data, "Hello", 5) == 0);
  free(r.data);

  r = parse_one(TR_WS_SERVER, ex_masked, sizeof(ex_masked), 0);
  ck_assert_int_eq(r.kind, TR_WS_EV_TEXT);
  ck_assert_uint_eq(r.len, 5);
  ck_assert(memcmp(r.data, "Hello", 5) == 0);
  free(r.data);

  r = parse_one(TR_WS_CLIENT, ex_frag, sizeof(ex_frag), 0);
  ck_assert_int_eq(r.kind, TR_WS_EV_TEXT);
  ck_assert_uint_eq(r.len, 5);
  ck_assert(memcmp(r.data, "Hello", 5) == 0);
  free(r.data);

  r = parse_one(TR_WS_CLIENT, ex_ping, sizeof(ex_ping), 0);
  ck_assert_int_eq(r.kind, TR_WS_EV_PING);
  ck_assert_uint_eq(r.len, 5);
  ck_assert(memcmp(r.data, "Hello", 5) == 0);
  free(r.data);

  r = parse_one(TR_WS_SERVER, ex_pong, sizeof(ex_pong), 0);
  ck_assert_int_eq(r.kind, TR_WS_EV_PONG);
  ck_assert_uint_eq(r.len, 5);
  ck_assert(memcmp(r.data, "Hello", 5) == 0);
  free(r.data);

  /* the 256-byte and 64 KiB examples, as a client reads them */
  static uint8_t pl[65536], s[65536 + 10];
  for (size_t i = 0; i < sizeof(pl); i++) pl[i] = (uint8_t)(i * 13 + 1);
  int64_t n = tr_ws_message_write(s, sizeof(s), TR_WS_OP_BINARY, pl, 256, NULL);
  r = parse_one(TR_WS_CLIENT, s, (size_t)n, 0);
  ck_assert_int_eq(r.kind, TR_WS_EV_BINARY);
  ck_assert_uint_eq(r.len, 256);
  ck_assert(memcmp(r.data, pl, 256) == 0);
  free(r.data);
  n = tr_ws_message_write(s, sizeof(s), TR_WS_OP_BINARY, pl, 65536, NULL);
  r = parse_one(TR_WS_CLIENT, s, (size_t)n, 0);
  ck_assert_int_eq(r.kind, TR_WS_EV_BINARY);
  ck_assert_uint_eq(r.len, 65536);
  ck_assert(memcmp(r.data, pl, 65536) == 0);
  free(r.data);
}
END_TEST

/* ---- frame headers -------------------------------------------------------- */

START_TEST(test_tr_ws_frame_parse_fields) {
  tr_ws_frame_t f;
  ck_assert_int_eq(
      tr_ws_frame_parse(&f, ex_masked, sizeof(ex_masked), TR_WS_SERVER), 6);
  ck_assert_uint_eq(f.fin, 1);
  ck_assert_uint_eq(f.masked, 1);
  ck_assert_uint_eq(f.opcode, TR_WS_OP_TEXT);
  ck_assert_uint_eq(f.len, 5);
  ck_assert(memcmp(f.mask, rfc_key, 4) == 0);
  ck_assert_int_eq(f.close_code, 0);
  ck_assert_ptr_null(f.error);
  /* every prefix of a header is "need more" */
  for (size_t i = 0; i < 6; i++)
    ck_assert_int_eq(tr_ws_frame_parse(&f, ex_masked, i, TR_WS_SERVER), 0);
  ck_assert_int_eq(tr_ws_frame_parse(&f, ex_frag, 5, TR_WS_CLIENT), 2);
  ck_assert_uint_eq(f.fin, 0);
  ck_assert_uint_eq(f.masked, 0);
  ck_assert_uint_eq(f.len, 3);

  /* write and read back every length class, masked and not */
  static const uint64_t lens[] = {0,
                                  1,
                                  125,
                                  126,
                                  127,
                                  65535,
                                  65536,
                                  (uint64_t)1 << 32,
                                  ((uint64_t)1 << 63) - 1};
  for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
    for (int m = 0; m < 2; m++) {
      tr_ws_frame_t w, r;
      uint8_t out[TR_WS_HEADER_MAX];
      memset(&w, 0, sizeof(w));
      w.fin = 1;
      w.opcode = TR_WS_OP_BINARY;
      w.len = lens[i];
      w.masked = (unsigned)m;
      memcpy(w.mask, rfc_key, 4);
      int hl = tr_ws_frame_write(out, &w);
      ck_assert_int_eq(hl, (int)tr_ws_header_size(lens[i], m));
      for (int k = 0; k < hl; k++)
        ck_assert_int_eq(tr_ws_frame_parse(&r, out, (size_t)k,
                                           m ? TR_WS_SERVER : TR_WS_CLIENT),
                         0);
      ck_assert_int_eq(tr_ws_frame_parse(&r, out, (size_t)hl,
                                         m ? TR_WS_SERVER : TR_WS_CLIENT),
                       hl);
      ck_assert_uint_eq(r.len, lens[i]);
      ck_assert_uint_eq(r.masked, (unsigned)m);
      if (m) ck_assert(memcmp(r.mask, rfc_key, 4) == 0);
    }
  }
}
END_TEST

START_TEST(test_tr_ws_frame_parse_violations) {
  tr_ws_frame_t f;
  /* reserved bits, as a client reads them (unmasked) */
  for (unsigned rsv = 0x10; rsv <= 0x40; rsv <<= 1) {
    uint8_t h[2] = {(uint8_t)(0x81 | rsv), 0x00};
    ck_assert_int_eq(tr_ws_frame_parse(&f, h, 2, TR_WS_CLIENT), TR_EPROTO);
    ck_assert_int_eq(f.close_code, 1002);
    ck_assert_ptr_nonnull(f.error);
    /* refused from the first byte */
    ck_assert_int_eq(tr_ws_frame_parse(&f, h, 1, TR_WS_CLIENT), TR_EPROTO);
    expect_error(TR_WS_CLIENT, h, 2, 1002);
  }
  /* reserved opcodes */
  for (unsigned op = 0; op < 16; op++) {
    uint8_t h[2] = {(uint8_t)(0x80 | op), 0x00};
    int known = op <= 2 || (op >= 8 && op <= 10);
    int rc = tr_ws_frame_parse(&f, h, 2, TR_WS_CLIENT);
    if (known) {
      ck_assert_int_eq(rc, 2);
    } else {
      ck_assert_int_eq(rc, TR_EPROTO);
      ck_assert_int_eq(f.close_code, 1002);
      expect_error(TR_WS_CLIENT, h, 2, 1002);
    }
  }
  /* control frames: fragmented, or longer than 125 */
  for (unsigned op = 8; op <= 10; op++) {
    uint8_t h[2] = {(uint8_t)op, 0x00};
    ck_assert_int_eq(tr_ws_frame_parse(&f, h, 2, TR_WS_CLIENT), TR_EPROTO);
    ck_assert_int_eq(f.close_code, 1002);
    expect_error(TR_WS_CLIENT, h, 2, 1002);
    uint8_t l126[4] = {(uint8_t)(0x80 | op), 126, 0, 126};
    ck_assert_int_eq(tr_ws_frame_parse(&f, l126, 4, TR_WS_CLIENT), TR_EPROTO);
    expect_error(TR_WS_CLIENT, l126, 4, 1002);
    uint8_t l127[10] = {(uint8_t)(0x80 | op), 127, 0, 0, 0, 0, 0, 1, 0, 0};
    ck_assert_int_eq(tr_ws_frame_parse(&f, l127, 10, TR_WS_CLIENT), TR_EPROTO);
    expect_error(TR_WS_CLIENT, l127, 10, 1002);
    uint8_t l125[2] = {(uint8_t)(0x80 | op), 125};
    ck_assert_int_eq(tr_ws_frame_parse(&f, l125, 2, TR_WS_CLIENT), 2);
  }
  /* the mask must match the role */
  ck_assert_int_eq(tr_ws_frame_parse(&f, ex_text, 2, TR_WS_SERVER), TR_EPROTO);
  ck_assert_int_eq(f.close_code, 1002);
  expect_error(TR_WS_SERVER, ex_text, sizeof(ex_text), 1002);
  ck_assert_int_eq(tr_ws_frame_parse(&f, ex_masked, 6, TR_WS_CLIENT),
                   TR_EPROTO);
  expect_error(TR_WS_CLIENT, ex_masked, sizeof(ex_masked), 1002);
  /* a 64-bit length with its top bit set, refused at its first byte */
  uint8_t top[10] = {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0};
  ck_assert_int_eq(tr_ws_frame_parse(&f, top, 3, TR_WS_CLIENT), TR_EPROTO);
  ck_assert_int_eq(tr_ws_frame_parse(&f, top, 10, TR_WS_CLIENT), TR_EPROTO);
  expect_error(TR_WS_CLIENT, top, 10, 1002);
  /* lengths not in their shortest form */
  uint8_t n16[4] = {0x82, 126, 0, 125};
  ck_assert_int_eq(tr_ws_frame_parse(&f, n16, 4, TR_WS_CLIENT), TR_EPROTO);
  expect_error(TR_WS_CLIENT, n16, 4, 1002);
  uint8_t n16z[4] = {0x82, 126, 0, 0};
  expect_error(TR_WS_CLIENT, n16z, 4, 1002);
  uint8_t n64[10] = {0x82, 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  ck_assert_int_eq(tr_ws_frame_parse(&f, n64, 10, TR_WS_CLIENT), TR_EPROTO);
  expect_error(TR_WS_CLIENT, n64, 10, 1002);
  uint8_t n64s[10] = {0x82, 127, 0, 0, 0, 0, 0, 0, 0, 5};
  expect_error(TR_WS_CLIENT, n64s, 10, 1002);
  /* and the shortest forms at the boundaries are fine */
  uint8_t ok16[4] = {0x82, 126, 0, 126};
  ck_assert_int_eq(tr_ws_frame_parse(&f, ok16, 4, TR_WS_CLIENT), 4);
  uint8_t ok64[10] = {0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0};
  ck_assert_int_eq(tr_ws_frame_parse(&f, ok64, 10, TR_WS_CLIENT), 10);
  uint8_t max64[10] = {0x82, 127,  0x7f, 0xff, 0xff,
                       0xff, 0xff, 0xff, 0xff, 0xff};
  ck_assert_int_eq(tr_ws_frame_parse(&f, max64, 10, TR_WS_CLIENT), 10);
  ck_assert_uint_eq(f.len, ((uint64_t)1 << 63) - 1);
  /* bad arguments */
  ck_assert_int_eq(tr_ws_frame_parse(NULL, ex_text, 2, TR_WS_CLIENT),
                   TR_EINVAL);
  ck_assert_int_eq(tr_ws_frame_parse(&f, NULL, 2, TR_WS_CLIENT), TR_EINVAL);
  ck_assert_int_eq(tr_ws_frame_parse(&f, NULL, 0, TR_WS_CLIENT), 0);
  ck_assert_int_eq(tr_ws_frame_parse(&f, ex_text, 2, (tr_ws_role_t)0),
                   TR_EINVAL);
}
END_TEST

START_TEST(test_tr_ws_frame_write_invalid) {
  uint8_t out[TR_WS_HEADER_MAX];
  tr_ws_frame_t f;
  memset(&f, 0, sizeof(f));
  f.fin = 1;
  f.opcode = TR_WS_OP_TEXT;
  ck_assert_int_eq(tr_ws_frame_write(NULL, &f), TR_EINVAL);
  ck_assert_int_eq(tr_ws_frame_write(out, NULL), TR_EINVAL);
  f.len = (uint64_t)1 << 63;
  ck_assert_int_eq(tr_ws_frame_write(out, &f), TR_EINVAL);
  f.len = 0;
  for (unsigned op = 0; op < 256; op++) {
    f.opcode = (uint8_t)op;
    int known = op <= 2 || (op >= 8 && op <= 10);
    ck_assert_int_eq(tr_ws_frame_write(out, &f), known ? 2 : TR_EINVAL);
  }
  f.opcode = TR_WS_OP_PING;
  f.fin = 0;
  ck_assert_int_eq(tr_ws_frame_write(out, &f), TR_EINVAL);
  f.fin = 1;
  f.len = 126;
  ck_assert_int_eq(tr_ws_frame_write(out, &f), TR_EINVAL);
  f.len = 125;
  ck_assert_int_eq(tr_ws_frame_write(out, &f), 2);
}
END_TEST

START_TEST(test_tr_ws_message_write_invalid) {
  uint8_t out[300];
  ck_assert_int_eq(tr_ws_message_write(NULL, 10, TR_WS_OP_TEXT, "a", 1, NULL),
                   TR_EINVAL);
  ck_assert_int_eq(tr_ws_message_write(out, 10, TR_WS_OP_TEXT, NULL, 1, NULL),
                   TR_EINVAL);
  ck_assert_int_eq(tr_ws_message_write(out, 10, TR_WS_OP_CONT, "a", 1, NULL),
                   TR_EINVAL);
  ck_assert_int_eq(tr_ws_message_write(out, 10, 3, "a", 1, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_ws_message_write(out, 10, -1, "a", 1, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_ws_message_write(out, 10, 0x81, "a", 1, NULL), TR_EINVAL);
  ck_assert_int_eq(
      tr_ws_message_write(out, sizeof(out), TR_WS_OP_PING, out, 126, NULL),
      TR_EINVAL);
  /* room: exactly enough, one byte short */
  ck_assert_int_eq(tr_ws_message_write(out, 7, TR_WS_OP_TEXT, "Hello", 5, NULL),
                   7);
  ck_assert_int_eq(tr_ws_message_write(out, 6, TR_WS_OP_TEXT, "Hello", 5, NULL),
                   TR_ENOSPC);
  ck_assert_int_eq(
      tr_ws_message_write(out, 10, TR_WS_OP_TEXT, "Hello", 5, rfc_key),
      TR_ENOSPC);
  ck_assert_int_eq(tr_ws_message_write(out, 1, TR_WS_OP_TEXT, NULL, 0, NULL),
                   TR_ENOSPC);
  ck_assert_int_eq(tr_ws_message_write(out, 2, TR_WS_OP_TEXT, NULL, 0, NULL),
                   2);
  /* the payload may already sit where it goes, or overlap the header */
  memcpy(out + 6, "Hello", 5);
  ck_assert_int_eq(
      tr_ws_message_write(out, sizeof(out), TR_WS_OP_TEXT, out + 6, 5, rfc_key),
      11);
  ck_assert(memcmp(out, ex_masked, 11) == 0);
  memcpy(out, "Hello", 5);
  ck_assert_int_eq(
      tr_ws_message_write(out, sizeof(out), TR_WS_OP_TEXT, out, 5, NULL), 7);
  ck_assert(memcmp(out, ex_text, 7) == 0);
  /* the caller's payload stays unmasked */
  uint8_t pl[5] = {'H', 'e', 'l', 'l', 'o'};
  ck_assert_int_eq(
      tr_ws_message_write(out, sizeof(out), TR_WS_OP_TEXT, pl, 5, rfc_key), 11);
  ck_assert(memcmp(pl, "Hello", 5) == 0);
}
END_TEST

START_TEST(test_tr_ws_mask_offsets) {
  uint8_t ref[100], a[108];
  const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
  for (int i = 0; i < 100; i++) ref[i] = (uint8_t)(i * 31 + 7);
  /* at every alignment, split at every point: the same as byte by byte */
  for (size_t align = 0; align < 8; align++) {
    for (size_t cut = 0; cut <= 100; cut++) {
      uint8_t *b = a + align;
      memcpy(b, ref, 100);
      tr_ws_mask(b, cut, key, 0);
      tr_ws_mask(b + cut, 100 - cut, key, cut);
      for (size_t i = 0; i < 100; i++) T_CHECK(b[i] == (ref[i] ^ key[i & 3]));
      /* the same XOR again restores the data */
      tr_ws_mask(b, 100, key, 0);
      T_CHECK(memcmp(b, ref, 100) == 0);
    }
  }
  /* large offsets, only the low two bits count */
  memcpy(a, ref, 100);
  tr_ws_mask(a, 100, key, ((uint64_t)1 << 40) + 2);
  for (size_t i = 0; i < 100; i++)
    ck_assert_uint_eq(a[i], ref[i] ^ key[(i + 2) & 3]);
  tr_ws_mask(NULL, 0, key, 0); /* nothing to do */
}
END_TEST

/* ---- UTF-8 ---------------------------------------------------------------- */

static const char *utf8_valid[] = {
    "",
    "Hello",
    "\xc2\x80",         /* U+0080 */
    "\xdf\xbf",         /* U+07FF */
    "\xe0\xa0\x80",     /* U+0800 */
    "\xed\x9f\xbf",     /* U+D7FF, below the surrogates */
    "\xee\x80\x80",     /* U+E000, above them */
    "\xef\xbf\xbf",     /* U+FFFF */
    "\xf0\x90\x80\x80", /* U+10000 */
    "\xf4\x8f\xbf\xbf", /* U+10FFFF */
    "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", /* kosme */
    "ab\342\202\254cdefghijklmnop\xf0\x9f\x98\x80xyz", /* octal: c is hex */
};

/* Each: invalid, and at which byte the validator must refuse it (the
 * byte after the longest prefix that could still begin valid text). */
static const struct {
  const char *s;
  size_t bad_at;
} utf8_invalid[] = {
    {"\x80", 0}, /* a lone continuation byte */
    {"\xbf", 0},
    {"\xc0\x80", 0},     /* overlong NUL */
    {"\xc1\xbf", 0},     /* overlong U+007F */
    {"\xe0\x80\x80", 1}, /* overlong 3-byte */
    {"\xe0\x9f\xbf", 1},
    {"\xf0\x80\x80\x80", 1}, /* overlong 4-byte */
    {"\xf0\x8f\xbf\xbf", 1},
    {"\xed\xa0\x80", 1},     /* U+D800, a surrogate */
    {"\xed\xbf\xbf", 1},     /* U+DFFF */
    {"\xf4\x90\x80\x80", 1}, /* U+110000 */
    {"\xf5\x80\x80\x80", 0},
    {"\xf8\x88\x80\x80\x80", 0},
    {"\xfe", 0},
    {"\xff", 0},
    {"\xc2\x41", 1}, /* a missing continuation */
    {"\xe2\x82\x41", 2},
    {"abcdefgh\xc2\xc2", 9},
    {"Hello \xed\xa0\x80 world", 7},
};

/* Valid text cut off inside a character: fine while fed, refused at the
 * end. */
static const char *utf8_truncated[] = {
    "\xc2", "\xe2\x82", "\xf0\x9f\x98", "abc\xf4\x8f\xbf", "\xe0",
};

START_TEST(test_tr_ws_utf8_valid_split_everywhere) {
  for (size_t k = 0; k < sizeof(utf8_valid) / sizeof(utf8_valid[0]); k++) {
    const uint8_t *s = (const uint8_t *)utf8_valid[k];
    size_t n = strlen(utf8_valid[k]);
    for (size_t cut = 0; cut <= n; cut++) {
      tr_ws_utf8_t u;
      tr_ws_utf8_init(&u);
      ck_assert_int_eq(tr_ws_utf8_feed(&u, s, cut), 0);
      ck_assert_int_eq(tr_ws_utf8_feed(&u, s + cut, n - cut), 0);
      ck_assert_int_eq(tr_ws_utf8_end(&u), 0);
    }
    tr_ws_utf8_t u;
    tr_ws_utf8_init(&u);
    for (size_t i = 0; i < n; i++)
      ck_assert_int_eq(tr_ws_utf8_feed(&u, s + i, 1), 0);
    ck_assert_int_eq(tr_ws_utf8_end(&u), 0);
  }
}
END_TEST

START_TEST(test_tr_ws_utf8_invalid) {
  for (size_t k = 0; k < sizeof(utf8_invalid) / sizeof(utf8_invalid[0]); k++) {
    const uint8_t *s = (const uint8_t *)utf8_invalid[k].s;
    size_t n = strlen(utf8_invalid[k].s), bad = utf8_invalid[k].bad_at;
    tr_ws_utf8_t u;
    tr_ws_utf8_init(&u);
    ck_assert_int_eq(tr_ws_utf8_feed(&u, s, n), TR_EPROTO);
    ck_assert_int_eq(tr_ws_utf8_end(&u), TR_EPROTO);
    /* a byte at a time: refused exactly at bad_at, and it sticks */
    tr_ws_utf8_init(&u);
    for (size_t i = 0; i < n; i++) {
      int rc = tr_ws_utf8_feed(&u, s + i, 1);
      ck_assert_int_eq(rc, i < bad ? 0 : TR_EPROTO);
    }
    ck_assert_int_eq(tr_ws_utf8_feed(&u, (const uint8_t *)"a", 1), TR_EPROTO);
    /* init starts over */
    tr_ws_utf8_init(&u);
    ck_assert_int_eq(tr_ws_utf8_feed(&u, (const uint8_t *)"a", 1), 0);
  }
  for (size_t k = 0; k < sizeof(utf8_truncated) / sizeof(utf8_truncated[0]);
       k++) {
    tr_ws_utf8_t u;
    tr_ws_utf8_init(&u);
    ck_assert_int_eq(tr_ws_utf8_feed(&u, (const uint8_t *)utf8_truncated[k],
                                     strlen(utf8_truncated[k])),
                     0);
    ck_assert_int_eq(tr_ws_utf8_end(&u), TR_EPROTO);
  }
  /* a bad byte after an ASCII run, at every position of the fast path */
  uint8_t b[64];
  for (size_t at = 0; at < 40; at++) {
    memset(b, 'a', sizeof(b));
    b[at] = 0xff;
    tr_ws_utf8_t u;
    tr_ws_utf8_init(&u);
    ck_assert_int_eq(tr_ws_utf8_feed(&u, b, sizeof(b)), TR_EPROTO);
    b[at] = 0xc3; /* a lead byte; the continuation 'a' is wrong */
    tr_ws_utf8_init(&u);
    ck_assert_int_eq(tr_ws_utf8_feed(&u, b, sizeof(b)), TR_EPROTO);
  }
  /* every lone byte: ASCII valid, others not whole */
  for (unsigned c = 0; c < 256; c++) {
    uint8_t x = (uint8_t)c;
    tr_ws_utf8_t u;
    tr_ws_utf8_init(&u);
    int rc = tr_ws_utf8_feed(&u, &x, 1);
    if (c < 0x80) {
      ck_assert_int_eq(rc, 0);
      ck_assert_int_eq(tr_ws_utf8_end(&u), 0);
    } else {
      ck_assert_int_eq(tr_ws_utf8_end(&u), TR_EPROTO);
      ck_assert_int_eq(rc, (c >= 0xc2 && c <= 0xf4) ? 0 : TR_EPROTO);
    }
  }
  ck_assert_int_eq(tr_ws_utf8_feed(NULL, b, 1), TR_EINVAL);
  ck_assert_int_eq(tr_ws_utf8_end(NULL), TR_EINVAL);
}
END_TEST

/* Every 2-, 3- and 4-byte sequence whose lead and continuation bytes fit
 * the shapes: the validator must agree with a decoder written from the
 * definition (decode, then refuse overlongs, surrogates, > U+10FFFF). */
START_TEST(test_tr_ws_utf8_exhaustive) {
  for (unsigned c0 = 0xc0; c0 <= 0xff; c0++) {
    int n = c0 < 0xe0 ? 2 : c0 < 0xf0 ? 3 : c0 < 0xf8 ? 4 : 0;
    if (n == 0) continue;
    /* the continuation bytes: 80..BF only, but try the ends of the range
     * and its neighbours for each position */
    static const uint8_t cs[] = {0x7f, 0x80, 0x8f, 0x90,
                                 0x9f, 0xa0, 0xbf, 0xc0};
    size_t ncs = sizeof(cs), total = 1;
    for (int i = 1; i < n; i++) total *= ncs;
    for (size_t idx = 0; idx < total; idx++) {
      uint8_t s[4] = {(uint8_t)c0, 0, 0, 0};
      size_t r = idx;
      int shape = 1;
      for (int i = 1; i < n; i++) {
        s[i] = cs[r % ncs];
        r /= ncs;
        if (s[i] < 0x80 || s[i] > 0xbf) shape = 0;
      }
      uint32_t cp = c0 & (n == 2 ? 0x1fu : n == 3 ? 0x0fu : 0x07u);
      for (int i = 1; i < n; i++) cp = cp << 6 | (s[i] & 0x3fu);
      uint32_t min = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
      int valid = shape && cp >= min && cp <= 0x10ffff &&
                  !(cp >= 0xd800 && cp <= 0xdfff);
      tr_ws_utf8_t u;
      tr_ws_utf8_init(&u);
      int rc = tr_ws_utf8_feed(&u, s, (size_t)n);
      if (rc == 0) rc = tr_ws_utf8_end(&u);
      ck_assert_msg((rc == 0) == valid, "%02x %02x %02x %02x: %d", s[0], s[1],
                    s[2], s[3], rc);
    }
  }
}
END_TEST

START_TEST(test_tr_ws_parser_next_utf8) {
  stream_t s = {0};
  /* a character split between two fragments is fine */
  put_frame(&s, 0, TR_WS_OP_TEXT, "a\xe2", 2, rfc_key);
  put_frame(&s, 1, TR_WS_OP_CONT, "\x82\xac", 2, rfc_key);
  for (int fr = 0; fr < 2; fr++) {
    for (size_t step = 0; step < 3; step++) {
      tr_ws_parser_t p;
      recs_t rs = {.n = 0, .join = fr};
      parser(&p, TR_WS_SERVER, 0, fr);
      feed(&p, s.b, s.n, step, &rs);
      ck_assert_int_eq(rs.n, 1);
      ck_assert_int_eq(rs.r[0].kind, TR_WS_EV_TEXT);
      ck_assert_uint_eq(rs.r[0].len, 4);
      ck_assert(memcmp(rs.r[0].data, "a\xe2\x82\xac", 4) == 0);
      recs_free(&rs);
      tr_ws_parser_fini(&p);
    }
  }
  /* the message ends inside a character: 1007 */
  s.n = 0;
  put_frame(&s, 0, TR_WS_OP_TEXT, "a", 1, rfc_key);
  put_frame(&s, 1, TR_WS_OP_CONT, "\xe2\x82", 2, rfc_key);
  expect_error(TR_WS_SERVER, s.b, s.n, 1007);
  s.n = 0;
  put_frame(&s, 1, TR_WS_OP_TEXT, "\xf0\x9f\x98", 3, rfc_key);
  expect_error(TR_WS_SERVER, s.b, s.n, 1007);
  /* each invalid sequence, single frame or at the end of a fragment */
  for (size_t k = 0; k < sizeof(utf8_invalid) / sizeof(utf8_invalid[0]); k++) {
    s.n = 0;
    put_frame(&s, 1, TR_WS_OP_TEXT, utf8_invalid[k].s,
              strlen(utf8_invalid[k].s), rfc_key);
    expect_error(TR_WS_SERVER, s.b, s.n, 1007);
  }
  /* binary is not checked */
  s.n = 0;
  put_frame(&s, 1, TR_WS_OP_BINARY, "\xff\xfe", 2, rfc_key);
  rec_t r = parse_one(TR_WS_SERVER, s.b, s.n, 0);
  ck_assert_int_eq(r.kind, TR_WS_EV_BINARY);
  free(r.data);
  /* refused early: the first fragment is bad, the rest never comes */
  s.n = 0;
  put_frame(&s, 0, TR_WS_OP_TEXT, "ok \xc0\xaf", 5, rfc_key);
  for (int fr = 0; fr < 2; fr++) {
    tr_ws_parser_t p;
    recs_t rs = {.n = 0};
    parser(&p, TR_WS_SERVER, 0, fr);
    feed(&p, s.b, s.n, 0, &rs);
    ck_assert_int_eq(rs.n, 1);
    ck_assert_int_eq(rs.r[0].kind, TR_WS_EV_ERROR);
    ck_assert_int_eq(rs.r[0].code, 1007);
    recs_free(&rs);
    tr_ws_parser_fini(&p);
  }
  /* a long text split across many reads, bad byte deep inside: refused
   * when that byte arrives, before the frame is whole */
  static uint8_t big[5000];
  memset(big, 'x', sizeof(big));
  big[3000] = 0xff;
  s.n = 0;
  put_frame(&s, 1, TR_WS_OP_TEXT, big, sizeof(big), NULL);
  tr_ws_parser_t p;
  parser(&p, TR_WS_CLIENT, 0, 0);
  tr_ws_event_t ev;
  ck_assert_int_eq(tr_ws_parser_next(&p, s.b, 2000, &ev), 2000);
  ck_assert_int_eq(ev.kind, TR_WS_EV_NONE);
  ck_assert_int_eq(tr_ws_parser_next(&p, s.b + 2000, 1500, &ev), TR_EPROTO);
  ck_assert_int_eq(ev.kind, TR_WS_EV_ERROR);
  ck_assert_int_eq(ev.code, 1007);
  tr_ws_parser_fini(&p);
  free(s.b);
}
END_TEST

/* ---- close frames --------------------------------------------------------- */

START_TEST(test_tr_ws_close_valid_codes) {
  for (unsigned c = 0; c < 70000; c++) {
    int want = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) ||
               (c >= 3000 && c <= 4999);
    T_CHECK(tr_ws_close_valid(c) == want);
  }
  ck_assert_int_eq(tr_ws_close_valid(1004), 0);
  ck_assert_int_eq(tr_ws_close_valid(1005), 0);
  ck_assert_int_eq(tr_ws_close_valid(1006), 0);
  ck_assert_int_eq(tr_ws_close_valid(1015), 0);
}
END_TEST

START_TEST(test_tr_ws_close_parse_rules) {
  uint16_t code = 0;
  const uint8_t *reason = NULL;
  size_t rl = 99;
  ck_assert_int_eq(tr_ws_close_parse(NULL, 0, &code, &reason, &rl), 0);
  ck_assert_int_eq(code, TR_WS_CLOSE_NO_STATUS);
  ck_assert_uint_eq(rl, 0);
  const uint8_t one[1] = {0x03};
  ck_assert_int_eq(tr_ws_close_parse(one, 1, &code, &reason, &rl), TR_EPROTO);
  ck_assert_int_eq(code, 1002);
  const uint8_t bye[] = {0x03, 0xe8, 'b', 'y', 'e'};
  ck_assert_int_eq(tr_ws_close_parse(bye, 5, &code, &reason, &rl), 0);
  ck_assert_int_eq(code, 1000);
  ck_assert_uint_eq(rl, 3);
  ck_assert(memcmp(reason, "bye", 3) == 0);
  ck_assert_int_eq(tr_ws_close_parse(bye, 5, &code, NULL, NULL), 0);
  /* every code: allowed on the wire, or 1002 */
  for (unsigned c = 0; c < 65536; c++) {
    uint8_t b[2] = {(uint8_t)(c >> 8), (uint8_t)c};
    int rc = tr_ws_close_parse(b, 2, &code, &reason, &rl);
    if (tr_ws_close_valid(c)) {
      T_CHECK(rc == 0);
      T_CHECK(code == c);
    } else {
      T_CHECK(rc == TR_EPROTO);
      T_CHECK(code == 1002);
    }
  }
  /* a reason that is not UTF-8: 1007 */
  const uint8_t badr[] = {0x03, 0xe8, 'a', 0xc0, 0x80};
  ck_assert_int_eq(tr_ws_close_parse(badr, 5, &code, &reason, &rl), TR_EPROTO);
  ck_assert_int_eq(code, 1007);
  const uint8_t cut[] = {0x03, 0xe8, 0xe2, 0x82};
  ck_assert_int_eq(tr_ws_close_parse(cut, 4, &code, &reason, &rl), TR_EPROTO);
  ck_assert_int_eq(code, 1007);
  /* longer than a control payload */
  uint8_t longp[126];
  memset(longp, 'a', sizeof(longp));
  longp[0] = 0x03;
  longp[1] = 0xe8;
  ck_assert_int_eq(tr_ws_close_parse(longp, 126, &code, &reason, &rl),
                   TR_EPROTO);
  ck_assert_int_eq(code, 1002);
  ck_assert_int_eq(tr_ws_close_parse(longp, 125, &code, &reason, &rl), 0);
  ck_assert_uint_eq(rl, 123);
  ck_assert_int_eq(tr_ws_close_parse(bye, 5, NULL, &reason, &rl), TR_EINVAL);
  ck_assert_int_eq(tr_ws_close_parse(NULL, 2, &code, &reason, &rl), TR_EINVAL);
}
END_TEST

START_TEST(test_tr_ws_close_build_rules) {
  uint8_t out[TR_WS_CONTROL_MAX];
  ck_assert_int_eq(tr_ws_close_build(out, 1000, "bye", 3), 5);
  const uint8_t bye[] = {0x03, 0xe8, 'b', 'y', 'e'};
  ck_assert(memcmp(out, bye, 5) == 0);
  ck_assert_int_eq(tr_ws_close_build(out, 0, NULL, 0), 0);
  ck_assert_int_eq(tr_ws_close_build(out, 0, "x", 1), TR_EINVAL);
  ck_assert_int_eq(tr_ws_close_build(out, 4999, NULL, 0), 2);
  ck_assert_int_eq(out[0], 0x13);
  ck_assert_int_eq(out[1], 0x87);
  static const unsigned bad[] = {1,    999,  1004, 1005,  1006, 1012,
                                 1015, 2999, 5000, 65535, 70000};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ck_assert_int_eq(tr_ws_close_build(out, bad[i], NULL, 0), TR_EINVAL);
  char r[124];
  memset(r, 'r', sizeof(r));
  ck_assert_int_eq(tr_ws_close_build(out, 1001, r, 123), 125);
  ck_assert_int_eq(tr_ws_close_build(out, 1001, r, 124), TR_EINVAL);
  ck_assert_int_eq(tr_ws_close_build(out, 1001, "\xed\xa0\x80", 3), TR_EINVAL);
  ck_assert_int_eq(tr_ws_close_build(out, 1001, NULL, 1), TR_EINVAL);
  ck_assert_int_eq(tr_ws_close_build(NULL, 1001, NULL, 0), TR_EINVAL);
  /* a round trip through the frame and the parser */
  int n = tr_ws_close_build(out, 3001, "\xce\xba\xcf\x83", 4);
  ck_assert_int_eq(n, 6);
  uint8_t fr[200];
  int64_t fl = tr_ws_message_write(fr, sizeof(fr), TR_WS_OP_CLOSE, out,
                                   (size_t)n, rfc_key);
  rec_t ev = parse_one(TR_WS_SERVER, fr, (size_t)fl, 0);
  ck_assert_int_eq(ev.kind, TR_WS_EV_CLOSE);
  ck_assert_int_eq(ev.code, 3001);
  ck_assert_uint_eq(ev.len, 4);
  ck_assert(memcmp(ev.data, "\xce\xba\xcf\x83", 4) == 0);
  free(ev.data);
}
END_TEST

START_TEST(test_tr_ws_parser_next_close_frames) {
  uint8_t fr[200];
  /* empty: 1005, no reason */
  int64_t n =
      tr_ws_message_write(fr, sizeof(fr), TR_WS_OP_CLOSE, NULL, 0, rfc_key);
  rec_t r = parse_one(TR_WS_SERVER, fr, (size_t)n, 0);
  ck_assert_int_eq(r.kind, TR_WS_EV_CLOSE);
  ck_assert_int_eq(r.code, 1005);
  ck_assert_uint_eq(r.len, 0);
  free(r.data);
  /* one byte: 1002; a bad code: 1002; a bad reason: 1007 */
  n = tr_ws_message_write(fr, sizeof(fr), TR_WS_OP_CLOSE, "\x03", 1, rfc_key);
  expect_error(TR_WS_SERVER, fr, (size_t)n, 1002);
  static const uint16_t bad[] = {0,    999,  1004, 1005, 1006, 1012,
                                 1015, 2000, 2999, 5000, 65535};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    uint8_t c[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
    n = tr_ws_message_write(fr, sizeof(fr), TR_WS_OP_CLOSE, c, 2, NULL);
    expect_error(TR_WS_CLIENT, fr, (size_t)n, 1002);
  }
  n = tr_ws_message_write(fr, sizeof(fr), TR_WS_OP_CLOSE, "\x03\xe8\xff", 3,
                          NULL);
  expect_error(TR_WS_CLIENT, fr, (size_t)n, 1007);
  /* after a close, nothing more is read */
  stream_t s = {0};
  put_frame(&s, 1, TR_WS_OP_CLOSE, "\x0b\xb8ok", 4, NULL);
  put_frame(&s, 1, TR_WS_OP_TEXT, "late", 4, NULL);
  tr_ws_parser_t p;
  parser(&p, TR_WS_CLIENT, 0, 0);
  tr_ws_event_t ev;
  ck_assert_int_eq(tr_ws_parser_next(&p, s.b, s.n, &ev), 6);
  ck_assert_int_eq(ev.kind, TR_WS_EV_CLOSE);
  ck_assert_int_eq(ev.code, 3000);
  ck_assert_uint_eq(ev.len, 2);
  ck_assert(memcmp(ev.data, "ok", 2) == 0);
  ck_assert_int_eq(tr_ws_parser_next(&p, s.b + 6, s.n - 6, &ev), 0);
  ck_assert_int_eq(ev.kind, TR_WS_EV_NONE);
  tr_ws_parser_fini(&p);
  free(s.b);
}
END_TEST

/* ---- the handshake -------------------------------------------------------- */

START_TEST(test_tr_ws_accept_key_rfc_example) {
  char out[TR_WS_ACCEPT_SIZE];
  const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
  ck_assert_int_eq(tr_ws_accept_key(key, strlen(key), out), 0);
  ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  ck_assert_int_eq(
      tr_ws_accept_check(key, strlen(key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28),
      0);
  ck_assert_int_eq(
      tr_ws_accept_check(key, strlen(key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOp=", 28),
      TR_EPROTO);
  ck_assert_int_eq(
      tr_ws_accept_check(key, strlen(key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 27),
      TR_EPROTO);
  ck_assert_int_eq(
      tr_ws_accept_check(key, strlen(key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo= ", 29),
      TR_EPROTO);
  ck_assert_int_eq(tr_ws_accept_key(NULL, 0, out), TR_EINVAL);
  ck_assert_int_eq(tr_ws_accept_key(key, 24, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_ws_accept_check(key, 24, NULL, 0), TR_EINVAL);
}
END_TEST

START_TEST(test_tr_ws_key_check_and_build) {
  char k[TR_WS_KEY_SIZE];
  ck_assert_int_eq(tr_ws_key_build((const uint8_t *)"the sample nonce", k), 0);
  ck_assert_str_eq(k, "dGhlIHNhbXBsZSBub25jZQ==");
  ck_assert_int_eq(tr_ws_key_check(k, strlen(k)), 0);
  /* any 16 bytes give a key that passes */
  uint8_t rnd[16];
  for (unsigned v = 0; v < 256; v++) {
    for (int i = 0; i < 16; i++) rnd[i] = (uint8_t)(v * (i + 1) + i);
    ck_assert_int_eq(tr_ws_key_build(rnd, k), 0);
    ck_assert_uint_eq(strlen(k), 24);
    ck_assert_int_eq(tr_ws_key_check(k, 24), 0);
  }
  static const char *bad[] = {
      "",
      "dGhlIHNhbXBsZSBub25jZQ=",   /* 23 */
      "dGhlIHNhbXBsZSBub25jZQ===", /* 25 */
      "dGhlIHNhbXBsZSBub25jZQ",    /* no padding */
      "dGhlIHNhbXBsZSBub25jZR==",  /* not canonical: stray low bits */
      "dGhlIHNhbXBsZSBub25jZ===",
      "dGhlIHNhbXBs ZSBub25jQ==",
      "dGhlIHNhbXBsZSBub25j*Q==",
      "dGhlIHNhbXBsZSBub25jZQ=A",
      "dGhlIHNhbXBsZSBub25jZQAA",
      "dGhlIHNhbXBsZSBub25jZ-==",
      "dGhlIHNhbXBsZSBub25jZ_==",
      "dGhlIHNhbXBsZSBub25jZQ==\r",
      "dGhlIHNhbXBsZSBub25jZQ=\0",
      "dGhlIHNhbXBzZSBub25jZQ==AAAA", /* 28 bytes of key */
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    size_t l = i == 13 ? 24 : strlen(bad[i]);
    ck_assert_msg(tr_ws_key_check(bad[i], l) == TR_EPROTO, "%s", bad[i]);
  }
  ck_assert_int_eq(tr_ws_key_check(NULL, 0), TR_EINVAL);
  ck_assert_int_eq(tr_ws_key_build(NULL, k), TR_EINVAL);
  ck_assert_int_eq(tr_ws_key_build(rnd, NULL), TR_EINVAL);
}
END_TEST

/* ---- the message parser --------------------------------------------------- */

START_TEST(test_tr_ws_parser_init_args) {
  tr_ws_parser_t p;
  tr_ws_parser_opts_t o;
  tr_ws_parser_opts_init(&o);
  o.alloc = t_alloc;
  ck_assert_int_eq(tr_ws_parser_init(&p, &o), TR_EINVAL); /* no role */
  o.role = (tr_ws_role_t)3;
  ck_assert_int_eq(tr_ws_parser_init(&p, &o), TR_EINVAL);
  o.role = TR_WS_SERVER;
  ck_assert_int_eq(tr_ws_parser_init(&p, &o), 0);
  tr_ws_parser_fini(&p);
  o.alloc = NULL;
  ck_assert_int_eq(tr_ws_parser_init(&p, &o), TR_EINVAL); /* no memory */
  o.fragments = 1;
  ck_assert_int_eq(tr_ws_parser_init(&p, &o), 0);
  tr_ws_parser_fini(&p);
  ck_assert_int_eq(tr_ws_parser_init(NULL, &o), TR_EINVAL);
  ck_assert_int_eq(tr_ws_parser_init(&p, NULL), TR_EINVAL);
  /* a larger struct from a newer program: only zeros past ours */
  struct {
    tr_ws_parser_opts_t o;
    uint64_t more;
  } big;
  memset(&big, 0, sizeof(big));
  big.o = o;
  big.o.size = sizeof(big);
  ck_assert_int_eq(tr_ws_parser_init(&p, &big.o), 0);
  tr_ws_parser_fini(&p);
  big.more = 1;
  ck_assert_int_eq(tr_ws_parser_init(&p, &big.o), TR_EINVAL);
  /* size 0: this release's struct */
  o.size = 0;
  ck_assert_int_eq(tr_ws_parser_init(&p, &o), 0);
  /* arguments of next */
  tr_ws_event_t ev;
  uint8_t b[2] = {0};
  ck_assert_int_eq(tr_ws_parser_next(NULL, b, 2, &ev), TR_EINVAL);
  ck_assert_int_eq(tr_ws_parser_next(&p, b, 2, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_ws_parser_next(&p, NULL, 2, &ev), TR_EINVAL);
  ck_assert_int_eq(tr_ws_parser_next(&p, NULL, 0, &ev), 0);
  ck_assert_int_eq(ev.kind, TR_WS_EV_NONE);
  tr_ws_parser_fini(&p);
  /* a finished (or zeroed) parser is refused */
  ck_assert_int_eq(tr_ws_parser_next(&p, b, 2, &ev), TR_EINVAL);
  memset(&p, 0, sizeof(p));
  ck_assert_int_eq(tr_ws_parser_next(&p, b, 2, &ev), TR_EINVAL);
}
END_TEST

START_TEST(test_tr_ws_parser_next_control_inside_fragments) {
  stream_t s = {0};
  put_frame(&s, 0, TR_WS_OP_TEXT, "Hel", 3, rfc_key);
  put_frame(&s, 1, TR_WS_OP_PING, "p1", 2, rfc_key);
  put_frame(&s, 0, TR_WS_OP_CONT, "l", 1, rfc_key);
  put_frame(&s, 1, TR_WS_OP_PONG, NULL, 0, rfc_key);
  put_frame(&s, 1, TR_WS_OP_CONT, "o", 1, rfc_key);
  put_frame(&s, 1, TR_WS_OP_BINARY, "\x00\x01", 2, rfc_key);
  put_frame(&s, 1, TR_WS_OP_CLOSE, "\x03\xe8", 2, rfc_key);
  tr_ws_parser_t p;
  recs_t rs = {.n = 0};
  parser(&p, TR_WS_SERVER, 0, 0);
  feed(&p, s.b, s.n, 0, &rs);
  ck_assert_int_eq(rs.n, 5);
  ck_assert_int_eq(rs.r[0].kind, TR_WS_EV_PING);
  ck_assert_uint_eq(rs.r[0].len, 2);
  ck_assert(memcmp(rs.r[0].data, "p1", 2) == 0);
  ck_assert_int_eq(rs.r[1].kind, TR_WS_EV_PONG);
  ck_assert_uint_eq(rs.r[1].len, 0);
  ck_assert_int_eq(rs.r[2].kind, TR_WS_EV_TEXT);
  ck_assert_uint_eq(rs.r[2].len, 5);
  ck_assert(memcmp(rs.r[2].data, "Hello", 5) == 0);
  ck_assert_int_eq(rs.r[3].kind, TR_WS_EV_BINARY);
  ck_assert_uint_eq(rs.r[3].len, 2);
  ck_assert_int_eq(rs.r[4].kind, TR_WS_EV_CLOSE);
  ck_assert_int_eq(rs.r[4].code, 1000);
  recs_free(&rs);
  tr_ws_parser_fini(&p);

  /* fragments mode: the pieces in order, the ping between them */
  parser(&p, TR_WS_SERVER, 0, 1);
  feed(&p, s.b, s.n, 0, &rs);
  ck_assert_int_eq(rs.n, 7);
  ck_assert_int_eq(rs.r[0].kind, TR_WS_EV_FRAGMENT);
  ck_assert_int_eq(rs.r[0].opcode, TR_WS_OP_TEXT);
  ck_assert_int_eq(rs.r[0].last, 0);
  ck_assert_uint_eq(rs.r[0].len, 3);
  ck_assert(memcmp(rs.r[0].data, "Hel", 3) == 0);
  ck_assert_int_eq(rs.r[1].kind, TR_WS_EV_PING);
  ck_assert_int_eq(rs.r[2].kind, TR_WS_EV_FRAGMENT);
  ck_assert_int_eq(rs.r[2].opcode, TR_WS_OP_TEXT);
  ck_assert_int_eq(rs.r[2].last, 0);
  ck_assert_int_eq(rs.r[3].kind, TR_WS_EV_PONG);
  ck_assert_int_eq(rs.r[4].kind, TR_WS_EV_FRAGMENT);
  ck_assert_int_eq(rs.r[4].last, 1);
  ck_assert(memcmp(rs.r[4].data, "o", 1) == 0);
  ck_assert_int_eq(rs.r[5].kind, TR_WS_EV_FRAGMENT);
  ck_assert_int_eq(rs.r[5].opcode, TR_WS_OP_BINARY);
  ck_assert_int_eq(rs.r[5].last, 1);
  ck_assert_int_eq(rs.r[6].kind, TR_WS_EV_CLOSE);
  recs_free(&rs);
  tr_ws_parser_fini(&p);
  free(s.b);
}
END_TEST

START_TEST(test_tr_ws_parser_next_sequence_errors) {
  stream_t s = {0};
  /* a continuation without a message */
  put_frame(&s, 1, TR_WS_OP_CONT, "x", 1, rfc_key);
  expect_error(TR_WS_SERVER, s.b, s.n, 1002);
  s.n = 0;
  put_frame(&s, 0, TR_WS_OP_CONT, "x", 1, NULL);
  expect_error(TR_WS_CLIENT, s.b, s.n, 1002);
  /* a continuation after a whole message */
  s.n = 0;
  put_frame(&s, 1, TR_WS_OP_TEXT, "a", 1, rfc_key);
  put_frame(&s, 1, TR_WS_OP_CONT, "b", 1, rfc_key);
  expect_error(TR_WS_SERVER, s.b, s.n, 1002);
  /* a new data message while one is open, even after a ping */
  for (int op = TR_WS_OP_TEXT; op <= TR_WS_OP_BINARY; op++) {
    s.n = 0;
    put_frame(&s, 0, TR_WS_OP_TEXT, "a", 1, rfc_key);
    put_frame(&s, 1, TR_WS_OP_PING, NULL, 0, rfc_key);
    put_frame(&s, 1, op, "b", 1, rfc_key);
    expect_error(TR_WS_SERVER, s.b, s.n, 1002);
  }
  s.n = 0;
  put_frame(&s, 0, TR_WS_OP_BINARY, "a", 1, NULL);
  put_frame(&s, 0, TR_WS_OP_BINARY, "b", 1, NULL);
  expect_error(TR_WS_CLIENT, s.b, s.n, 1002);
  free(s.b);
}
END_TEST

START_TEST(test_tr_ws_parser_next_max_message) {
  stream_t s = {0};
  static uint8_t pl[3000];
  memset(pl, 'm', sizeof(pl));
  /* at the limit: accepted; one over: 1009 */
  put_frame(&s, 1, TR_WS_OP_TEXT, pl, 1000, rfc_key);
  rec_t r = parse_one(TR_WS_SERVER, s.b, s.n, 1000);
  ck_assert_int_eq(r.kind, TR_WS_EV_TEXT);
  ck_assert_uint_eq(r.len, 1000);
  free(r.data);
  r = parse_one(TR_WS_SERVER, s.b, s.n, 999);
  ck_assert_int_eq(r.kind, TR_WS_EV_ERROR);
  ck_assert_int_eq(r.code, 1009);
  ck_assert_int_eq(r.rc, TR_EMSGSIZE);
  free(r.data);
  /* refused at the header, before any payload byte */
  tr_ws_parser_t p;
  tr_ws_event_t ev;
  parser(&p, TR_WS_SERVER, 999, 0);
  ck_assert_int_eq(tr_ws_parser_next(&p, s.b, 8, &ev), TR_EMSGSIZE);
  ck_assert_int_eq(ev.code, 1009);
  tr_ws_parser_fini(&p);
  /* the sum of the fragments counts; a ping between them does not */
  s.n = 0;
  put_frame(&s, 0, TR_WS_OP_BINARY, pl, 600, rfc_key);
  put_frame(&s, 1, TR_WS_OP_PING, pl, 125, rfc_key);
  put_frame(&s, 1, TR_WS_OP_CONT, pl, 400, rfc_key);
  for (int fr = 0; fr < 2; fr++) {
    for (size_t step = 0; step < 2; step++) {
      recs_t rs = {.n = 0, .join = fr};
      parser(&p, TR_WS_SERVER, 1000, fr);
      feed(&p, s.b, s.n, step, &rs);
      ck_assert_int_eq(rs.n, 2);
      ck_assert_int_eq(rs.r[0].kind, TR_WS_EV_PING);
      ck_assert_int_eq(rs.r[1].kind, TR_WS_EV_BINARY);
      ck_assert_uint_eq(rs.r[1].len, 1000);
      recs_free(&rs);
      tr_ws_parser_fini(&p);

      parser(&p, TR_WS_SERVER, 999, fr);
      feed(&p, s.b, s.n, step, &rs);
      ck_assert_int_eq(rs.r[rs.n - 1].kind, TR_WS_EV_ERROR);
      ck_assert_int_eq(rs.r[rs.n - 1].code, 1009);
      recs_free(&rs);
      tr_ws_parser_fini(&p);
    }
  }
  /* the limit is per message: many messages under it pass */
  s.n = 0;
  for (int i = 0; i < 3; i++) {
    put_frame(&s, 0, TR_WS_OP_TEXT, pl, 500, rfc_key);
    put_frame(&s, 1, TR_WS_OP_CONT, pl, 500, rfc_key);
    put_frame(&s, 1, TR_WS_OP_BINARY, pl, 1000, rfc_key);
  }
  for (int fr = 0; fr < 2; fr++) {
    recs_t rs = {.n = 0, .join = fr};
    parser(&p, TR_WS_SERVER, 1000, fr);
    feed(&p, s.b, s.n, 0, &rs);
    ck_assert_int_eq(rs.n, 6);
    for (int i = 0; i < 6; i++) {
      ck_assert_int_eq(rs.r[i].kind, i % 2 ? TR_WS_EV_BINARY : TR_WS_EV_TEXT);
      ck_assert_uint_eq(rs.r[i].len, 1000);
    }
    recs_free(&rs);
    tr_ws_parser_fini(&p);
  }
  /* the default limit */
  uint8_t hdr[10] = {0x82, 127, 0, 0, 0, 0, 0, 0x10, 0, 1}; /* 1 MiB + 1 */
  expect_error(TR_WS_CLIENT, hdr, 10, 1009);
  hdr[9] = 0; /* exactly 1 MiB: waits for the payload */
  parser(&p, TR_WS_CLIENT, 0, 0);
  ck_assert_int_eq(tr_ws_parser_next(&p, hdr, 10, &ev), 10);
  ck_assert_int_eq(ev.kind, TR_WS_EV_NONE);
  tr_ws_parser_fini(&p);
  /* a huge limit and a huge length do not overflow */
  uint8_t huge[10] = {0x82, 127,  0x7f, 0xff, 0xff,
                      0xff, 0xff, 0xff, 0xff, 0xff};
  parser(&p, TR_WS_CLIENT, UINT64_MAX, 1);
  ck_assert_int_eq(tr_ws_parser_next(&p, huge, 10, &ev), 10);
  ck_assert_int_eq(ev.kind, TR_WS_EV_NONE);
  tr_ws_parser_fini(&p);
  free(s.b);
}
END_TEST

START_TEST(test_tr_ws_parser_next_memory) {
  t_alloc_reset();
  tr_ws_parser_t p;
  tr_ws_event_t ev;
  static uint8_t pl[100000], s[100100];
  for (size_t i = 0; i < sizeof(pl); i++) pl[i] = (uint8_t)(i ^ (i >> 8));
  /* a whole frame in one buffer: a view into it, nothing allocated */
  int64_t n =
      tr_ws_message_write(s, sizeof(s), TR_WS_OP_BINARY, pl, 5000, rfc_key);
  parser(&p, TR_WS_SERVER, 0, 0);
  ck_assert_int_eq(tr_ws_parser_next(&p, s, (size_t)n, &ev), n);
  ck_assert_int_eq(ev.kind, TR_WS_EV_BINARY);
  ck_assert_ptr_eq(ev.data, s + 8);
  ck_assert(memcmp(ev.data, pl, 5000) == 0);
  ck_assert_int_eq(alloc_calls, 0);
  /* split: copied into the reassembly buffer, unmasked there */
  n = tr_ws_message_write(s, sizeof(s), TR_WS_OP_BINARY, pl, 100000, rfc_key);
  ck_assert_int_eq(tr_ws_parser_next(&p, s, 50000, &ev), 50000);
  ck_assert_int_eq(ev.kind, TR_WS_EV_NONE);
  ck_assert_int_eq(alloc_live, 1);
  ck_assert_int_eq(tr_ws_parser_next(&p, s + 50000, (size_t)n - 50000, &ev),
                   n - 50000);
  ck_assert_int_eq(ev.kind, TR_WS_EV_BINARY);
  ck_assert_uint_eq(ev.len, 100000);
  ck_assert(memcmp(ev.data, pl, 100000) == 0);
  ck_assert_int_eq(alloc_live, 1);
  /* over 64 KiB: released at the next call */
  ck_assert_int_eq(tr_ws_parser_next(&p, s, 0, &ev), 0);
  ck_assert_int_eq(alloc_live, 0);
  /* a small one is kept, and freed by fini */
  n = tr_ws_message_write(s, sizeof(s), TR_WS_OP_BINARY, pl, 1000, rfc_key);
  ck_assert_int_eq(tr_ws_parser_next(&p, s, 10, &ev), 10);
  ck_assert_int_eq(tr_ws_parser_next(&p, s + 10, (size_t)n - 10, &ev), n - 10);
  ck_assert_int_eq(ev.kind, TR_WS_EV_BINARY);
  ck_assert(memcmp(ev.data, pl, 1000) == 0);
  ck_assert_int_eq(tr_ws_parser_next(&p, s, 0, &ev), 0);
  ck_assert_int_eq(alloc_live, 1);
  tr_ws_parser_fini(&p);
  ck_assert_int_eq(alloc_live, 0);

  /* the allocator fails: 1011, TR_ENOMEM */
  t_alloc_reset();
  alloc_fail_after = 0;
  parser(&p, TR_WS_SERVER, 0, 0);
  ck_assert_int_eq(tr_ws_parser_next(&p, s, 10, &ev), TR_ENOMEM);
  ck_assert_int_eq(ev.kind, TR_WS_EV_ERROR);
  ck_assert_int_eq(ev.code, 1011);
  tr_ws_parser_fini(&p);
  ck_assert_int_eq(alloc_live, 0);
  /* ... when growing, too */
  t_alloc_reset();
  alloc_fail_after = 1;
  n = tr_ws_message_write(s, sizeof(s), TR_WS_OP_BINARY, pl, 100000, rfc_key);
  parser(&p, TR_WS_SERVER, 0, 0);
  ck_assert_int_eq(tr_ws_parser_next(&p, s, 100, &ev), 100);
  ck_assert_int_eq(tr_ws_parser_next(&p, s + 100, (size_t)n - 100, &ev),
                   TR_ENOMEM);
  tr_ws_parser_fini(&p);
  ck_assert_int_eq(alloc_live, 0);
  t_alloc_reset();

  /* fragments mode: views into the buffer as the bytes arrive */
  parser(&p, TR_WS_SERVER, 0, 1);
  ck_assert_int_eq(tr_ws_parser_next(&p, s, 1000, &ev), 1000);
  ck_assert_int_eq(ev.kind, TR_WS_EV_FRAGMENT);
  ck_assert_ptr_eq(ev.data, s + 14);
  ck_assert_uint_eq(ev.len, 986);
  ck_assert_int_eq(ev.last, 0);
  ck_assert(memcmp(ev.data, pl, 986) == 0);
  ck_assert_int_eq(tr_ws_parser_next(&p, s + 1000, (size_t)n - 1000, &ev),
                   n - 1000);
  ck_assert_int_eq(ev.kind, TR_WS_EV_FRAGMENT);
  ck_assert_int_eq(ev.last, 1);
  ck_assert_uint_eq(ev.len, 100000 - 986);
  ck_assert(memcmp(ev.data, pl + 986, 100000 - 986) == 0);
  tr_ws_parser_fini(&p);
  ck_assert_int_eq(alloc_calls, 0);
}
END_TEST

START_TEST(test_tr_ws_parser_next_empty_frames) {
  stream_t s = {0};
  /* empty frames of a message: nothing said until the last one */
  put_frame(&s, 0, TR_WS_OP_TEXT, NULL, 0, NULL);
  put_frame(&s, 0, TR_WS_OP_CONT, NULL, 0, NULL);
  put_frame(&s, 0, TR_WS_OP_CONT, "ab", 2, NULL);
  put_frame(&s, 1, TR_WS_OP_CONT, NULL, 0, NULL);
  put_frame(&s, 1, TR_WS_OP_BINARY, NULL, 0, NULL);
  tr_ws_parser_t p;
  recs_t rs = {.n = 0};
  parser(&p, TR_WS_CLIENT, 0, 1);
  feed(&p, s.b, s.n, 0, &rs);
  ck_assert_int_eq(rs.n, 3);
  ck_assert_int_eq(rs.r[0].kind, TR_WS_EV_FRAGMENT);
  ck_assert_uint_eq(rs.r[0].len, 2);
  ck_assert_int_eq(rs.r[0].last, 0);
  ck_assert_int_eq(rs.r[1].kind, TR_WS_EV_FRAGMENT);
  ck_assert_uint_eq(rs.r[1].len, 0);
  ck_assert_int_eq(rs.r[1].last, 1);
  ck_assert_int_eq(rs.r[1].opcode, TR_WS_OP_TEXT);
  ck_assert_int_eq(rs.r[2].kind, TR_WS_EV_FRAGMENT);
  ck_assert_int_eq(rs.r[2].opcode, TR_WS_OP_BINARY);
  ck_assert_uint_eq(rs.r[2].len, 0);
  ck_assert_int_eq(rs.r[2].last, 1);
  recs_free(&rs);
  tr_ws_parser_fini(&p);
  parser(&p, TR_WS_CLIENT, 0, 0);
  feed(&p, s.b, s.n, 1, &rs);
  ck_assert_int_eq(rs.n, 2);
  ck_assert_int_eq(rs.r[0].kind, TR_WS_EV_TEXT);
  ck_assert_uint_eq(rs.r[0].len, 2);
  ck_assert_int_eq(rs.r[1].kind, TR_WS_EV_BINARY);
  ck_assert_uint_eq(rs.r[1].len, 0);
  recs_free(&rs);
  tr_ws_parser_fini(&p);
  free(s.b);
}
END_TEST

/* A stream of many kinds of frames, parsed whole, a byte at a time and in
 * chunks of every size up to 40 (and some odd larger ones), in both modes
 * and both roles: the same events every time. */
static void build_mixed(stream_t *s, const uint8_t *mask) {
  static uint8_t pl[70000];
  for (size_t i = 0; i < sizeof(pl); i++) pl[i] = (uint8_t)('a' + i % 26);
  static const uint8_t keys[3][4] = {
      {1, 2, 3, 4}, {0xff, 0, 0x80, 0x7f}, {0x37, 0xfa, 0x21, 0x3d}};
  int k = 0;
#define KEY (mask ? keys[k++ % 3] : NULL)
  put_frame(s, 1, TR_WS_OP_TEXT, "Hello", 5, KEY);
  put_frame(s, 1, TR_WS_OP_BINARY, pl, 126, KEY);
  put_frame(s, 0, TR_WS_OP_TEXT, "\xce\xba\xe1", 3, KEY);
  put_frame(s, 1, TR_WS_OP_PING, "ping", 4, KEY);
  put_frame(s, 0, TR_WS_OP_CONT, "\xbd\xb9", 2, KEY);
  put_frame(s, 1, TR_WS_OP_PONG, pl, 125, KEY);
  put_frame(s, 1, TR_WS_OP_CONT, "\xcf\x83\xce\xbc\xce\xb5", 6, KEY);
  put_frame(s, 1, TR_WS_OP_BINARY, pl, 65536, KEY);
  put_frame(s, 1, TR_WS_OP_TEXT, NULL, 0, KEY);
  put_frame(s, 0, TR_WS_OP_BINARY, pl, 300, KEY);
  put_frame(s, 1, TR_WS_OP_CONT, pl + 300, 70, KEY);
  put_frame(s, 1, TR_WS_OP_CLOSE, "\x03\xe9going", 7, KEY);
#undef KEY
}

START_TEST(test_tr_ws_parser_next_any_split) {
  for (int role = TR_WS_SERVER; role <= TR_WS_CLIENT; role++) {
    stream_t s = {0};
    build_mixed(&s, role == TR_WS_SERVER ? rfc_key : NULL);
    recs_t want = {.n = 0};
    tr_ws_parser_t p;
    parser(&p, (tr_ws_role_t)role, 0, 0);
    feed(&p, s.b, s.n, 0, &want);
    tr_ws_parser_fini(&p);
    ck_assert_int_eq(want.n, 9);
    ck_assert_int_eq(want.r[0].kind, TR_WS_EV_TEXT);
    ck_assert_int_eq(want.r[1].kind, TR_WS_EV_BINARY);
    ck_assert_int_eq(want.r[2].kind, TR_WS_EV_PING);
    ck_assert_int_eq(want.r[3].kind, TR_WS_EV_PONG);
    ck_assert_int_eq(want.r[4].kind, TR_WS_EV_TEXT);
    ck_assert_uint_eq(want.r[4].len, 11);
    ck_assert(memcmp(want.r[4].data,
                     "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 11) == 0);
    ck_assert_int_eq(want.r[5].kind, TR_WS_EV_BINARY);
    ck_assert_uint_eq(want.r[5].len, 65536);
    ck_assert_int_eq(want.r[6].kind, TR_WS_EV_TEXT);
    ck_assert_uint_eq(want.r[6].len, 0);
    ck_assert_int_eq(want.r[7].kind, TR_WS_EV_BINARY);
    ck_assert_uint_eq(want.r[7].len, 370);
    ck_assert_int_eq(want.r[8].kind, TR_WS_EV_CLOSE);
    ck_assert_int_eq(want.r[8].code, 1001);
    ck_assert_uint_eq(want.r[8].len, 5);
    static const size_t big_steps[] = {127, 1000, 4093, 65535, 65547};
    for (int fr = 0; fr < 2; fr++) {
      for (size_t i = 0; i < 40 + 5; i++) {
        size_t step = i < 40 ? i + 1 : big_steps[i - 40];
        recs_t got = {.n = 0, .join = fr};
        parser(&p, (tr_ws_role_t)role, 0, fr);
        feed(&p, s.b, s.n, step, &got);
        recs_eq(&got, &want);
        recs_free(&got);
        tr_ws_parser_fini(&p);
        ck_assert_int_eq(alloc_live, 0);
      }
    }
    recs_free(&want);
    free(s.b);
  }
}
END_TEST

static Suite *ws_suite(void) {
  Suite *s = suite_create("ws_codec");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_tr_ws_message_write_rfc_examples);
  tcase_add_test(tc, test_tr_ws_message_write_lengths);
  tcase_add_test(tc, test_tr_ws_parser_next_rfc_examples);
  tcase_add_test(tc, test_tr_ws_frame_parse_fields);
  tcase_add_test(tc, test_tr_ws_frame_parse_violations);
  tcase_add_test(tc, test_tr_ws_frame_write_invalid);
  tcase_add_test(tc, test_tr_ws_message_write_invalid);
  tcase_add_test(tc, test_tr_ws_mask_offsets);
  tcase_add_test(tc, test_tr_ws_utf8_valid_split_everywhere);
  tcase_add_test(tc, test_tr_ws_utf8_invalid);
  tcase_add_test(tc, test_tr_ws_utf8_exhaustive);
  tcase_add_test(tc, test_tr_ws_parser_next_utf8);
  tcase_add_test(tc, test_tr_ws_close_valid_codes);
  tcase_add_test(tc, test_tr_ws_close_parse_rules);
  tcase_add_test(tc, test_tr_ws_close_build_rules);
  tcase_add_test(tc, test_tr_ws_parser_next_close_frames);
  tcase_add_test(tc, test_tr_ws_accept_key_rfc_example);
  tcase_add_test(tc, test_tr_ws_key_check_and_build);
  tcase_add_test(tc, test_tr_ws_parser_init_args);
  tcase_add_test(tc, test_tr_ws_parser_next_control_inside_fragments);
  tcase_add_test(tc, test_tr_ws_parser_next_sequence_errors);
  tcase_add_test(tc, test_tr_ws_parser_next_max_message);
  tcase_add_test(tc, test_tr_ws_parser_next_memory);
  tcase_add_test(tc, test_tr_ws_parser_next_empty_frames);
  tcase_add_test(tc, test_tr_ws_parser_next_any_split);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(ws_suite()); }
