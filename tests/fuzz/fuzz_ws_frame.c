/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the WebSocket codec (<troupe/ws.h>): the input is
 * a byte stream as it comes from a peer. It is parsed by tr_ws_parser_t
 * as a server and as a client, whole and split at places drawn from the
 * input itself (so a run is repeatable), a byte at a time (inputs up to
 * 4 KiB), in whole-message mode and in fragments mode, with the default
 * size limit and a small one. Invariants checked (abort on violation):
 *  - a call consumes 0..len bytes; TR_WS_EV_NONE means all of them; an
 *    error is TR_EPROTO (1002, 1007), TR_EMSGSIZE (1009) or TR_ENOMEM
 *    (1011) and repeats on the next call without consuming anything;
 *    after a close nothing is consumed;
 *  - every event's data lies in the buffer given or in the parser, and
 *    all its bytes are read (ASan sees a bad view); control payloads are
 *    at most 125 bytes, messages at most the limit, text and close
 *    reasons are UTF-8, close codes are ones allowed on the wire (or 1005
 *    with no reason);
 *  - the same events, with the same bytes, however the stream is split,
 *    and in fragments mode once the pieces are joined;
 *  - each message, ping and pong written again with tr_ws_message_write
 *    parses back to itself; each frame header written again with
 *    tr_ws_frame_write gives back its bytes (the shortest length form is
 *    the only one accepted, so the encoding is unique); a close payload
 *    built again gives back its bytes;
 *  - the UTF-8 validator agrees with a decoder written from the
 *    definition, whole and split.
 * Build and run with tests/fuzz/run.sh.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <troupe/errno.h>
#include <troupe/ws.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                               \
  do {                                                                         \
    if (!(c)) abort();                                                         \
  } while (0)

/* ---- helpers -------------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}
#define FNV0 0xcbf29ce484222325ull

static uint64_t rnd(uint64_t *s) {
  /* xorshift64*: the split points, from a seed made of the input */
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545f4914f6cdd1dull;
}

static void *fz_alloc(void *arg, void *ptr, size_t size) {
  (void)arg;
  if (size == 0) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, size);
}

/* UTF-8 from the definition: decode each sequence by its lead byte, then
 * refuse overlongs, surrogates and values above U+10FFFF. */
static int ref_utf8(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = p[i];
    int k;
    uint32_t cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      k = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      k = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      k = 3;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if ((size_t)k >= n - i) return 0; /* cut short */
    for (int j = 1; j <= k; j++) {
      if ((p[i + (size_t)j] & 0xc0) != 0x80) return 0;
      cp = cp << 6 | (p[i + (size_t)j] & 0x3f);
    }
    static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < min[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    i += (size_t)k + 1;
  }
  return 1;
}

static int utf8_ok(const uint8_t *p, size_t n) {
  tr_ws_utf8_t u;
  tr_ws_utf8_init(&u);
  return tr_ws_utf8_feed(&u, p, n) == 0 && tr_ws_utf8_end(&u) == 0;
}

/* ---- the event log -------------------------------------------------------- */

typedef struct fev {
  int kind, rc, code;
  size_t len;
  uint64_t hash;
} fev_t;

typedef struct flog {
  fev_t *e;
  size_t n, cap;
  /* fragments mode: the pieces of the open message, joined */
  int pending;
  fev_t pend;
  tr_ws_utf8_t pend_utf8;
} flog_t;

static void log_push(flog_t *l, const fev_t *e) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 16;
    l->e = realloc(l->e, l->cap * sizeof(*l->e));
    CHECK(l->e != NULL);
  }
  l->e[l->n++] = *e;
}

static int log_eq(const flog_t *a, const flog_t *b) {
  if (a->n != b->n) return 0;
  for (size_t i = 0; i < a->n; i++)
    if (a->e[i].kind != b->e[i].kind || a->e[i].rc != b->e[i].rc ||
        a->e[i].code != b->e[i].code || a->e[i].len != b->e[i].len ||
        a->e[i].hash != b->e[i].hash)
      return 0;
  return 1;
}

/* ---- one parse of the stream ---------------------------------------------- */

typedef struct run {
  tr_ws_role_t role;
  uint64_t max; /* 0: the default */
  int fragments;
  uint64_t seed; /* 0: whole; 1: a byte at a time; else random splits */
  int roundtrip; /* write each message again and parse it back */
} run_t;

static void roundtrip(const run_t *r, int kind, const uint8_t *d, size_t n);

static void on_event(const run_t *r, flog_t *l, const tr_ws_parser_t *p,
                     const uint8_t *chunk, size_t clen, const tr_ws_event_t *ev,
                     int64_t rc) {
  uint64_t max = r->max ? r->max : TR_WS_MESSAGE_MAX;
  CHECK(ev->data != NULL);
  /* the view lies in the chunk or in the parser */
  const uint8_t *d = ev->data;
  int in_chunk =
      clen && d >= chunk && ev->len <= clen && d <= chunk + (clen - ev->len);
  int in_ctl = d >= p->ctl_ && ev->len <= sizeof(p->ctl_) &&
               d <= p->ctl_ + (sizeof(p->ctl_) - ev->len);
  int in_acc = p->acc_ && d >= p->acc_ && ev->len <= p->acc_cap_ &&
               d <= p->acc_ + (p->acc_cap_ - ev->len);
  CHECK(in_chunk || in_ctl || in_acc || ev->len == 0);
  fev_t e = {ev->kind, (int)rc, ev->code, ev->len, fnv(FNV0, d, ev->len)};
  switch (ev->kind) {
    case TR_WS_EV_TEXT:
      CHECK(utf8_ok(d, ev->len));
      /* fall through */
    case TR_WS_EV_BINARY:
      CHECK(!r->fragments);
      CHECK(ev->len <= max);
      CHECK(!l->pending);
      if (r->roundtrip) roundtrip(r, ev->kind, d, ev->len);
      log_push(l, &e);
      break;
    case TR_WS_EV_FRAGMENT: {
      CHECK(r->fragments);
      CHECK(ev->opcode == TR_WS_OP_TEXT || ev->opcode == TR_WS_OP_BINARY);
      CHECK(ev->len > 0 || ev->last);
      int kind = ev->opcode == TR_WS_OP_TEXT ? TR_WS_EV_TEXT : TR_WS_EV_BINARY;
      if (!l->pending) {
        memset(&l->pend, 0, sizeof(l->pend));
        l->pend.kind = kind;
        l->pend.hash = FNV0;
        l->pending = 1;
        tr_ws_utf8_init(&l->pend_utf8);
      }
      CHECK(l->pend.kind == kind);
      l->pend.len += ev->len;
      l->pend.hash = fnv(l->pend.hash, d, ev->len);
      CHECK(l->pend.len <= max);
      if (kind == TR_WS_EV_TEXT)
        CHECK(tr_ws_utf8_feed(&l->pend_utf8, d, ev->len) == 0);
      if (ev->last) {
        if (kind == TR_WS_EV_TEXT) CHECK(tr_ws_utf8_end(&l->pend_utf8) == 0);
        log_push(l, &l->pend);
        l->pending = 0;
      }
      break;
    }
    case TR_WS_EV_PING:
    case TR_WS_EV_PONG:
      CHECK(ev->len <= TR_WS_CONTROL_MAX);
      if (r->roundtrip) roundtrip(r, ev->kind, d, ev->len);
      log_push(l, &e);
      break;
    case TR_WS_EV_CLOSE:
      CHECK(ev->len <= TR_WS_REASON_MAX);
      CHECK(utf8_ok(d, ev->len));
      if (ev->code == TR_WS_CLOSE_NO_STATUS) {
        CHECK(ev->len == 0);
      } else {
        CHECK(tr_ws_close_valid(ev->code));
        uint8_t b[TR_WS_CONTROL_MAX];
        int n = tr_ws_close_build(b, ev->code, (const char *)d, ev->len);
        CHECK(n == (int)ev->len + 2);
        CHECK(memcmp(b + 2, d, ev->len) == 0);
      }
      log_push(l, &e);
      break;
    default: abort();
  }
}

static void run_stream(const run_t *r, const uint8_t *data, size_t size,
                       flog_t *l) {
  tr_ws_parser_t p;
  tr_ws_parser_opts_t o;
  tr_ws_parser_opts_init(&o);
  o.role = r->role;
  o.max_message = r->max;
  o.fragments = r->fragments;
  o.alloc = fz_alloc;
  CHECK(tr_ws_parser_init(&p, &o) == 0);
  uint64_t seed = r->seed;
  int closed = 0, failed = 0;
  size_t at = 0;
  while (!failed && (at < size || at == 0)) {
    size_t clen = size - at;
    if (r->seed == 1 && clen > 1) clen = 1;
    else if (r->seed > 1 && clen > 1) {
      /* mostly short pieces, sometimes long ones */
      uint64_t x = rnd(&seed);
      size_t lim = (x & 3) ? 16 : 4096;
      clen = 1 + (size_t)((x >> 8) % (clen < lim ? clen : lim));
    }
    uint8_t *chunk = malloc(clen ? clen : 1);
    CHECK(chunk != NULL);
    if (clen) memcpy(chunk, data + at, clen);
    size_t off = 0;
    for (;;) {
      tr_ws_event_t ev;
      int64_t rc = tr_ws_parser_next(&p, chunk + off, clen - off, &ev);
      if (rc < 0) {
        CHECK(ev.kind == TR_WS_EV_ERROR && ev.error != NULL);
        CHECK((ev.code == 1009 && rc == TR_EMSGSIZE) ||
              (ev.code == 1011 && rc == TR_ENOMEM) ||
              ((ev.code == 1002 || ev.code == 1007) && rc == TR_EPROTO));
        CHECK(!closed);
        fev_t e = {ev.kind, (int)rc, ev.code, 0, 0};
        log_push(l, &e);
        /* final: the same again, nothing consumed */
        tr_ws_event_t ev2;
        CHECK(tr_ws_parser_next(&p, chunk, clen, &ev2) == rc);
        CHECK(ev2.kind == TR_WS_EV_ERROR && ev2.code == ev.code);
        failed = 1;
        break;
      }
      CHECK((uint64_t)rc <= clen - off);
      off += (size_t)rc;
      if (ev.kind == TR_WS_EV_NONE) {
        CHECK(off == clen || closed);
        CHECK(!closed || rc == 0);
        break;
      }
      CHECK(!closed);
      on_event(r, l, &p, chunk, clen, &ev, 0);
      if (ev.kind == TR_WS_EV_CLOSE) closed = 1;
    }
    free(chunk);
    at += clen;
    if (size == 0) break;
  }
  tr_ws_parser_fini(&p);
  l->pending = 0; /* an unfinished message is not compared */
}

/* A message written again is parsed back to itself, alone. */
static void roundtrip(const run_t *r, int kind, const uint8_t *d, size_t n) {
  static const uint8_t key[4] = {0xa5, 0x01, 0x7e, 0xc3};
  int op = kind == TR_WS_EV_TEXT     ? TR_WS_OP_TEXT
           : kind == TR_WS_EV_BINARY ? TR_WS_OP_BINARY
           : kind == TR_WS_EV_PING   ? TR_WS_OP_PING
                                     : TR_WS_OP_PONG;
  size_t cap = n + TR_WS_HEADER_MAX;
  uint8_t *b = malloc(cap);
  CHECK(b != NULL);
  /* the peer of a server is a client: it masks */
  const uint8_t *mask = r->role == TR_WS_SERVER ? key : NULL;
  size_t need = tr_ws_header_size(n, mask != NULL) + n;
  CHECK(tr_ws_message_write(b, need - 1, op, d, n, mask) == TR_ENOSPC);
  int64_t w = tr_ws_message_write(b, cap, op, d, n, mask);
  CHECK(w == (int64_t)need);
  tr_ws_parser_t p;
  tr_ws_parser_opts_t o;
  tr_ws_parser_opts_init(&o);
  o.role = r->role;
  o.max_message = r->max;
  o.alloc = fz_alloc;
  CHECK(tr_ws_parser_init(&p, &o) == 0);
  tr_ws_event_t ev;
  CHECK(tr_ws_parser_next(&p, b, (size_t)w, &ev) == w);
  CHECK((int)ev.kind == kind && ev.len == n &&
        (n == 0 || memcmp(ev.data, d, n) == 0));
  CHECK(tr_ws_parser_next(&p, b + w, 0, &ev) == 0 && ev.kind == TR_WS_EV_NONE);
  tr_ws_parser_fini(&p);
  free(b);
}

/* ---- the pieces alone ----------------------------------------------------- */

static void check_header(const uint8_t *data, size_t size, tr_ws_role_t role) {
  tr_ws_frame_t f;
  int rc = tr_ws_frame_parse(&f, data, size, role);
  CHECK(rc == 0 || rc == TR_EPROTO || (rc >= 2 && rc <= TR_WS_HEADER_MAX));
  if (rc == TR_EPROTO) CHECK(f.close_code == 1002 && f.error != NULL);
  if (rc > 0) {
    uint8_t out[TR_WS_HEADER_MAX];
    CHECK(f.len < ((uint64_t)1 << 63));
    CHECK(f.masked == (role == TR_WS_SERVER));
    CHECK(tr_ws_frame_write(out, &f) == rc);
    CHECK(memcmp(out, data, (size_t)rc) == 0);
    CHECK((size_t)rc == tr_ws_header_size(f.len, f.masked));
  }
  /* a prefix of a header needs more, or is refused as the whole is */
  for (size_t k = 0; k < size && k < TR_WS_HEADER_MAX; k++) {
    int pr = tr_ws_frame_parse(&f, data, k, role);
    if (rc > 0 && k < (size_t)rc) CHECK(pr == 0);
    if (rc == TR_EPROTO) CHECK(pr == 0 || pr == TR_EPROTO);
    if (rc == 0) CHECK(pr == 0);
  }
}

static void check_utf8(const uint8_t *data, size_t size, uint64_t seed) {
  int want = ref_utf8(data, size);
  CHECK(utf8_ok(data, size) == want);
  tr_ws_utf8_t u;
  tr_ws_utf8_init(&u);
  size_t at = 0;
  int bad = 0;
  while (at < size) {
    size_t n = 1 + (size_t)(rnd(&seed) % 9);
    if (n > size - at) n = size - at;
    if (tr_ws_utf8_feed(&u, data + at, n)) bad = 1;
    at += n;
  }
  CHECK((!bad && tr_ws_utf8_end(&u) == 0) == want);
}

static void check_close(const uint8_t *data, size_t size) {
  uint16_t code;
  const uint8_t *reason;
  size_t rl;
  int rc = tr_ws_close_parse(data, size, &code, &reason, &rl);
  if (rc != 0) {
    CHECK(rc == TR_EPROTO && (code == 1002 || code == 1007));
    return;
  }
  if (size == 0) {
    CHECK(code == TR_WS_CLOSE_NO_STATUS && rl == 0);
    return;
  }
  uint8_t b[TR_WS_CONTROL_MAX];
  CHECK(tr_ws_close_build(b, code, (const char *)reason, rl) == (int)size);
  CHECK(memcmp(b, data, size) == 0);
}

/* ---- the target ----------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint64_t seed = fnv(FNV0, data, size) | 2; /* never 0 or 1 */
  check_header(data, size, TR_WS_SERVER);
  check_header(data, size, TR_WS_CLIENT);
  check_utf8(data, size, seed);
  if (size <= TR_WS_CONTROL_MAX) check_close(data, size);

  for (int role = TR_WS_SERVER; role <= TR_WS_CLIENT; role++) {
    static const uint64_t maxes[2] = {0, 300};
    for (int m = 0; m < 2; m++) {
      run_t base = {(tr_ws_role_t)role, maxes[m], 0, 0, m == 0};
      flog_t want = {0};
      run_stream(&base, data, size, &want);
      /* a byte at a time costs a call per byte: small inputs only */
      uint64_t bytewise = size <= 4096 ? 1 : (seed ^ 0xa5a5) | 2;
      run_t variants[] = {
          {(tr_ws_role_t)role, maxes[m], 0, bytewise, 0},
          {(tr_ws_role_t)role, maxes[m], 0, seed, 0}, /* random splits */
          {(tr_ws_role_t)role, maxes[m], 1, 0, 0},    /* fragments */
          {(tr_ws_role_t)role, maxes[m], 1, (seed ^ 0x5a5a) | 2, 0},
      };
      for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
        flog_t got = {0};
        run_stream(&variants[v], data, size, &got);
        CHECK(log_eq(&got, &want));
        free(got.e);
      }
      free(want.e);
    }
  }
  return 0;
}
