/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/1.1 codec of <troupe/http.h>: the head parsers, the chunked
 * body decoder and the small writers (chunk lines, dates, reasons).
 *
 * A head is read by a byte-wise state machine that checks every byte once
 * as it arrives (its position is kept in tr_http_head_t.scan_, its state
 * in state_), so a head fed one byte per call costs linear time, and a
 * byte that makes the head malformed (a bare CR or LF, a control
 * character, a line over its limit) is refused at once, without waiting
 * for the rest. Because the machine sees the same bytes in the same order
 * however they are split between calls, a head parsed whole and the same
 * head parsed a byte at a time end the same way, with the same status.
 * When the empty line that ends the head arrives, a second pass, over
 * bytes now known to be well-formed, fills in the views and the fields
 * and works out what they mean for the body and the connection: one pass
 * over the head, once.
 *
 * Nothing here allocates or keeps a pointer into the caller's buffer
 * between calls (only offsets), so the buffer may move.
 */
#include "internal.h"

#include <limits.h>
#include <string.h>
#include <time.h>

#include <troupe/http.h>

/* ---- character classes (RFC 9110 5.6.2, 5.5) ----------------------------- */

static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* tchar: "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" /
 * "_" / "`" / "|" / "~" / DIGIT / ALPHA */
static int is_tchar(unsigned char c) {
  if (is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')) return 1;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
    case '+': case '-': case '.': case '^': case '_': case '`': case '|':
    case '~':
      return 1;
    default: return 0;
  }
}

/* A byte allowed inside a field value: VCHAR, obs-text, SP, HTAB. */
static inline int is_value_char(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static inline int is_ows(unsigned char c) { return c == ' ' || c == '\t'; }

static int hex_value(unsigned char c) {
  if (is_digit(c)) return c - '0';
  c |= 0x20;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

static int lower(unsigned char c) {
  return c >= 'A' && c <= 'Z' ? c | 0x20 : c;
}

/* s equals the lowercase literal lit, ignoring case. */
static int str_ieq(tr_http_str_t s, const char *lit, size_t n) {
  if (s.n != n) return 0;
  for (size_t i = 0; i < n; i++)
    if (lower((unsigned char)s.p[i]) != (unsigned char)lit[i]) return 0;
  return 1;
}
#define STR_IEQ(s, lit) str_ieq((s), (lit), sizeof(lit) - 1)

/* ---- limits -------------------------------------------------------------- */

#define LEAD_MAX 4 /* empty lines skipped before a start line */

typedef struct limits {
  size_t line_max, head_max;
  unsigned fields_max;
} limits_t;

static int limits_get(const tr_http_limits_t *in, unsigned fields_cap,
                      limits_t *out) {
  tr_http_limits_t l;
  tr_http_limits_init(&l);
  /* the rule of every growable config struct (<troupe/common.h>) */
  if (in && tr__config_copy(&l, sizeof(l), sizeof(l), in)) return TR_EINVAL;
  out->line_max = l.line_max ? l.line_max : TR_HTTP_LINE_MAX;
  out->head_max = l.head_max ? l.head_max : TR_HTTP_HEAD_MAX;
  /* the head's length is returned as an int */
  if (out->head_max > (size_t)INT_MAX) out->head_max = (size_t)INT_MAX;
  out->fields_max = l.fields_max ? l.fields_max : TR_HTTP_FIELDS_MAX;
  if (out->fields_max > fields_cap) out->fields_max = fields_cap;
  return 0;
}

/* ---- the head scanner ---------------------------------------------------- */

/* state_ holds the scanner state in its low byte and the number of empty
 * lines skipped before the start line above it. Each state is named after
 * what it expects next. */
enum {
  H_START = 0, /* a start line or a leading empty line */
  H_LEAD_LF,   /* the LF of a leading empty line */
  H_METHOD,    /* more of the method, or the SP after it */
  H_TARGET0,   /* the target's first byte */
  H_TARGET,    /* more of the target, or the SP after it */
  H_V0,        /* "HTTP/d.d", byte by byte: 'H' */
  H_V1,        /* 'T' */
  H_V2,        /* 'T' */
  H_V3,        /* 'P' */
  H_V4,        /* '/' */
  H_V5,        /* major digit */
  H_V6,        /* '.' */
  H_V7,        /* minor digit */
  H_LINE_CR,   /* request: the CR after the version */
  H_STATUS_SP, /* response: the SP after the version */
  H_CODE1,     /* the status code's three digits */
  H_CODE2,
  H_CODE3,
  H_CODE_SP,   /* the SP after the status code */
  H_REASON,    /* more of the reason phrase, or CR */
  H_LINE_LF,   /* the LF that ends the start line */
  H_FIELD,     /* a field line's first byte, or the CR of the empty line */
  H_NAME,      /* more of a field name, or the colon */
  H_VALUE,     /* more of a field value, or CR */
  H_FIELD_LF,  /* the LF that ends a field line */
  H_END_LF,    /* the LF of the empty line that ends the head */
  H_DONE,      /* the head is whole: scan_ is its length */
  H_ERROR      /* refused: error_status and error are set */
};

#define H_STATE(s) ((s) & 0xff)
#define H_LEAD(s) (((s) >> 8) & 0xf)
#define H_PACK(st, lead) ((st) | ((lead) << 8))

static int head_fail(tr_http_head_t *h, int resp, int status,
                     const char *why) {
  h->error_status = resp ? 502 : status;
  h->error = why;
  h->state_ = H_PACK(H_ERROR, H_LEAD(h->state_));
  return TR_EPROTO;
}

/* Parses the comma-separated list of tokens of a Connection field
 * (RFC 9110 7.6.1; empty elements are allowed, 5.6.1) and notes the
 * options we act on. Returns 0, or -1 when it is not a list of tokens. */
static int connection_parse(tr_http_str_t v, int *close, int *keep,
                            int *upgrade) {
  size_t i = 0;
  while (i < v.n) {
    while (i < v.n && (is_ows((unsigned char)v.p[i]) || v.p[i] == ',')) i++;
    if (i == v.n) break;
    size_t b = i;
    while (i < v.n && is_tchar((unsigned char)v.p[i])) i++;
    if (i == b) return -1;
    tr_http_str_t t = {v.p + b, i - b};
    while (i < v.n && is_ows((unsigned char)v.p[i])) i++;
    if (i < v.n && v.p[i] != ',') return -1;
    if (STR_IEQ(t, "close"))
      *close = 1;
    else if (STR_IEQ(t, "keep-alive"))
      *keep = 1;
    else if (STR_IEQ(t, "upgrade"))
      *upgrade = 1;
  }
  return 0;
}

/* Content-Length = 1*DIGIT, at most 2^63 - 1. Returns 0 or -1. */
static int length_parse(tr_http_str_t v, uint64_t *out) {
  uint64_t n = 0;
  if (v.n == 0) return -1;
  for (size_t i = 0; i < v.n; i++) {
    unsigned char c = (unsigned char)v.p[i];
    if (!is_digit(c)) return -1;
    if (n > ((uint64_t)INT64_MAX - (c - '0')) / 10) return -1;
    n = n * 10 + (uint64_t)(c - '0');
  }
  *out = n;
  return 0;
}

/* The second pass, over a whole head buf[0, hlen) that the scanner has
 * checked byte by byte: every line ends in CR LF, the start line has its
 * parts, every field line has a token, a colon and a value. Fills in the
 * views and the fields, then the framing. Linear in hlen. It is also run
 * again on a buffer that moved, whose bytes the caller promised are the
 * same: each step is bounds-checked all the same, so a caller who broke
 * that promise gets TR_EINVAL, never a read out of bounds. */
static int head_finish(tr_http_head_t *h, const char *buf, size_t hlen,
                       int resp, int head_request) {
  const char *p = buf + 2 * (size_t)H_LEAD(h->state_);
  const char *end = buf + hlen;
  if (p >= end) return TR_EINVAL;
  const char *eol = memchr(p, '\r', (size_t)(end - p));
  if (!eol) return TR_EINVAL;

  if (!resp) {
    /* "method SP target SP HTTP/d.d" */
    const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    if (!sp1) return TR_EINVAL;
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
    if (!sp2 || eol - sp2 != 9) return TR_EINVAL;
    h->method.p = p;
    h->method.n = (size_t)(sp1 - p);
    h->target.p = sp1 + 1;
    h->target.n = (size_t)(sp2 - sp1 - 1);
    h->version = (sp2[6] - '0') * 10 + (sp2[8] - '0');
  } else {
    /* "HTTP/d.d SP 3DIGIT SP reason" */
    if (eol - p < 13) return TR_EINVAL;
    h->version = (p[5] - '0') * 10 + (p[7] - '0');
    h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    h->reason.p = p + 13;
    h->reason.n = (size_t)(eol - p - 13);
  }

  unsigned n = 0;
  const char *q = eol + 2;
  while (q < end && *q != '\r') {
    const char *colon = memchr(q, ':', (size_t)(end - q));
    if (!colon || n >= h->fields_cap) return TR_EINVAL;
    const char *le = memchr(colon, '\r', (size_t)(end - colon));
    if (!le) return TR_EINVAL;
    const char *vb = colon + 1, *ve = le;
    while (vb < ve && is_ows((unsigned char)*vb)) vb++;
    while (ve > vb && is_ows((unsigned char)ve[-1])) ve--;
    h->fields[n].name.p = q;
    h->fields[n].name.n = (size_t)(colon - q);
    h->fields[n].value.p = vb;
    h->fields[n].value.n = (size_t)(ve - vb);
    n++;
    q = le + 2;
  }
  if (q >= end) return TR_EINVAL;
  h->nfields = n;

  /* What the fields mean. */
  const tr_http_str_t *cl = NULL, *te = NULL, *host = NULL;
  unsigned ncl = 0, nte = 0, nhost = 0;
  int close = 0, keep = 0, conn_upgrade = 0, has_upgrade = 0;
  int expect_100 = 0, expect_other = 0, conn_bad = 0;
  for (unsigned i = 0; i < n; i++) {
    const tr_http_field_t *f = &h->fields[i];
    switch (f->name.n) {
      case 4:
        if (STR_IEQ(f->name, "host")) nhost++, host = &f->value;
        break;
      case 6:
        if (STR_IEQ(f->name, "expect")) {
          if (STR_IEQ(f->value, "100-continue"))
            expect_100 = 1;
          else
            expect_other = 1;
        }
        break;
      case 7:
        if (STR_IEQ(f->name, "upgrade")) has_upgrade = 1;
        break;
      case 10:
        if (STR_IEQ(f->name, "connection") &&
            connection_parse(f->value, &close, &keep, &conn_upgrade))
          conn_bad = 1;
        break;
      case 14:
        if (STR_IEQ(f->name, "content-length")) ncl++, cl = &f->value;
        break;
      case 17:
        if (STR_IEQ(f->name, "transfer-encoding")) nte++, te = &f->value;
        break;
      default: break;
    }
  }

  /* The refusals, 400s first (doc/ref-http.md lists them in this order). */
  uint64_t len = 0;
  if (ncl > 1) return head_fail(h, resp, 400, "more than one Content-Length");
  if (cl && length_parse(*cl, &len))
    return head_fail(h, resp, 400, "bad Content-Length");
  if (!resp && nhost > 1) return head_fail(h, resp, 400, "more than one Host");
  if (te && h->version == 10)
    return head_fail(h, resp, 400, "Transfer-Encoding in HTTP/1.0");
  if (te && cl)
    return head_fail(h, resp, 400, "Content-Length with Transfer-Encoding");
  if (conn_bad) return head_fail(h, resp, 400, "bad Connection");
  if (!resp && h->version == 11 && nhost == 0)
    return head_fail(h, resp, 400, "HTTP/1.1 request without Host");
  if (te && te->n == 0)
    return head_fail(h, resp, 400, "empty Transfer-Encoding");
  if (te && (nte > 1 || !STR_IEQ(*te, "chunked")))
    return head_fail(h, resp, 501, "transfer coding other than chunked");
  if (!resp && expect_other)
    return head_fail(h, resp, 417, "expectation other than 100-continue");

  h->content_length = 0;
  if (resp && (head_request || h->status / 100 == 1 || h->status == 204 ||
               h->status == 304)) {
    h->body = TR_HTTP_BODY_NONE;
  } else if (te) {
    h->body = TR_HTTP_BODY_CHUNKED;
  } else if (cl) {
    h->body = TR_HTTP_BODY_LENGTH;
    h->content_length = len;
  } else {
    h->body = resp ? TR_HTTP_BODY_CLOSE : TR_HTTP_BODY_NONE;
  }
  if (!resp && host) h->host = *host;
  h->keep_alive = !close && (h->version == 11 || keep) &&
                  h->body != TR_HTTP_BODY_CLOSE;
  h->upgrade = conn_upgrade && has_upgrade;
  /* an HTTP/1.0 server ignores 100-continue (RFC 9110 10.1.1) */
  h->expect_continue = !resp && expect_100 && h->version == 11;
  h->error_status = 0;
  h->error = NULL;
  return (int)hlen;
}

/* The scanner: resumes at h->scan_ and checks buf[scan_, len) a byte at a
 * time, stopping at the end of the head. O(new bytes). */
static int head_parse(tr_http_head_t *h, const char *buf, size_t len,
                      const tr_http_limits_t *lim, int resp,
                      int head_request) {
  if (!h || (!buf && len > 0) || !h->fields || h->fields_cap == 0)
    return TR_EINVAL;
  limits_t l;
  if (limits_get(lim, h->fields_cap, &l)) return TR_EINVAL;
  int st = H_STATE(h->state_);
  unsigned lead = (unsigned)H_LEAD(h->state_);
  if (st > H_ERROR || lead > LEAD_MAX) return TR_EINVAL;
  if (st == H_ERROR) return TR_EPROTO;
  if (len < h->scan_) return TR_EINVAL;
  /* whole already: the views again, into the buffer as it is now */
  if (st == H_DONE) return head_finish(h, buf, h->scan_, resp, head_request);

  size_t i = h->scan_;
  for (; i < len; i++) {
    unsigned char c = (unsigned char)buf[i];
    if (i >= l.head_max) return head_fail(h, resp, 431, "head too large");
    /* CR and LF come in pairs and only end lines */
    if (st == H_LEAD_LF || st == H_LINE_LF || st == H_FIELD_LF ||
        st == H_END_LF) {
      if (c != '\n') return head_fail(h, resp, 400, "bare CR");
    } else if (c == '\n') {
      return head_fail(h, resp, 400, "bare LF");
    }
    /* the start line's length, checked before its end arrives */
    if (c != '\r' && (st == H_START || (st >= H_METHOD && st <= H_REASON)) &&
        i - 2 * (size_t)lead >= l.line_max)
      return head_fail(h, resp, 414, "start line too long");

    switch (st) {
      case H_START:
        if (c == '\r') {
          st = H_LEAD_LF;
        } else if (resp) {
          if (c != 'H') return head_fail(h, resp, 400, "bad version");
          st = H_V1;
        } else {
          if (!is_tchar(c)) return head_fail(h, resp, 400, "bad method");
          st = H_METHOD;
        }
        break;
      case H_LEAD_LF:
        if (++lead > LEAD_MAX)
          return head_fail(h, resp, 400, "too many empty lines");
        st = H_START;
        break;
      case H_METHOD:
        if (c == ' ')
          st = H_TARGET0;
        else if (!is_tchar(c))
          return head_fail(h, resp, 400, "bad method");
        break;
      case H_TARGET0:
        if (c < 0x21 || c > 0x7e) return head_fail(h, resp, 400, "bad target");
        st = H_TARGET;
        break;
      case H_TARGET:
        if (c == ' ')
          st = H_V0;
        else if (c < 0x21 || c > 0x7e)
          return head_fail(h, resp, 400, "bad target");
        break;
      case H_V0: case H_V1: case H_V2: case H_V3: case H_V4: case H_V6:
        if (c != (unsigned char)"HTTP/1."[st - H_V0])
          return head_fail(h, resp, 400, "bad version");
        st++;
        break;
      case H_V5:
      case H_V7:
        if (!is_digit(c)) return head_fail(h, resp, 400, "bad version");
        st = st == H_V5 ? H_V6 : resp ? H_STATUS_SP : H_LINE_CR;
        break;
      case H_LINE_CR:
      case H_STATUS_SP: {
        if (c != (st == H_LINE_CR ? '\r' : ' '))
          return head_fail(h, resp, 400, "bad start line");
        /* the version, known good as "HTTP/d.d", ends just before i */
        const char *v = buf + i - 8;
        if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
          return head_fail(h, resp, 505, "HTTP version not supported");
        st = st == H_LINE_CR ? H_LINE_LF : H_CODE1;
        break;
      }
      case H_CODE1:
      case H_CODE2:
      case H_CODE3:
        if (!is_digit(c) || (st == H_CODE1 && c == '0'))
          return head_fail(h, resp, 400, "bad status code");
        st++;
        break;
      case H_CODE_SP:
        if (c != ' ') return head_fail(h, resp, 400, "bad status line");
        st = H_REASON;
        break;
      case H_REASON:
        if (c == '\r')
          st = H_LINE_LF;
        else if (!is_value_char(c))
          return head_fail(h, resp, 400, "bad reason phrase");
        break;
      case H_LINE_LF:
        st = H_FIELD;
        break;
      case H_FIELD:
        if (c == '\r')
          st = H_END_LF;
        else if (is_ows(c))
          return head_fail(h, resp, 400, "obsolete line folding");
        else if (!is_tchar(c))
          return head_fail(h, resp, 400, "bad field name");
        else
          st = H_NAME;
        break;
      case H_NAME:
        if (c == ':')
          st = H_VALUE;
        else if (is_ows(c))
          return head_fail(h, resp, 400, "whitespace before a colon");
        else if (!is_tchar(c))
          return head_fail(h, resp, 400, "bad field name");
        break;
      case H_VALUE:
        if (c == '\r')
          st = H_FIELD_LF;
        else if (!is_value_char(c))
          return head_fail(h, resp, 400, "control character in a value");
        break;
      case H_FIELD_LF:
        if (++h->nfields > l.fields_max)
          return head_fail(h, resp, 431, "too many fields");
        st = H_FIELD;
        break;
      case H_END_LF:
        h->scan_ = i + 1;
        h->state_ = H_PACK(H_DONE, lead);
        return head_finish(h, buf, i + 1, resp, head_request);
      default:
        return TR_EINVAL; /* not reached: st was checked above */
    }
  }
  h->scan_ = i;
  h->state_ = H_PACK(st, lead);
  return 0;
}

void tr_http_head_init(tr_http_head_t *h, tr_http_field_t *fields,
                       unsigned fields_cap) {
  memset(h, 0, sizeof(*h));
  h->fields = fields;
  h->fields_cap = fields_cap;
}

int tr_http_request_parse(tr_http_head_t *h, const char *buf, size_t len,
                          const tr_http_limits_t *lim) {
  return head_parse(h, buf, len, lim, 0, 0);
}

int tr_http_response_parse(tr_http_head_t *h, const char *buf, size_t len,
                           const tr_http_limits_t *lim, int head_request) {
  return head_parse(h, buf, len, lim, 1, head_request);
}

const tr_http_field_t *tr_http_head_field(const tr_http_head_t *h,
                                          const char *name) {
  if (!h || !name || !h->fields) return NULL;
  size_t n = strlen(name);
  unsigned cnt = h->nfields < h->fields_cap ? h->nfields : h->fields_cap;
  for (unsigned i = 0; i < cnt; i++) {
    const tr_http_field_t *f = &h->fields[i];
    if (f->name.n != n) continue;
    size_t k = 0;
    while (k < n && lower((unsigned char)f->name.p[k]) ==
                        lower((unsigned char)name[k]))
      k++;
    if (k == n) return f;
  }
  return NULL;
}

/* ---- the chunked decoder (RFC 9112 7.1) ---------------------------------- */

/* A chunk-size line, extensions included, is bounded: a peer must not
 * make us read extensions forever. */
#define CHUNK_LINE_MAX 4096

enum {
  C_SIZE0 = 0,   /* the first hex digit of a chunk size */
  C_SIZE,        /* more hex digits, BWS, ';' or CR */
  C_BWS,         /* BWS before a ';': more of it or the ';' */
  C_EXT_NAME0,   /* BWS, then an extension name's first byte */
  C_EXT_NAME,    /* more of the name, BWS, '=', ';' or CR */
  C_EXT_NAME_WS, /* BWS after a name: more of it, '=' or ';' */
  C_EXT_VAL0,    /* BWS, then a token or a quoted string */
  C_EXT_TOK,     /* more of a token value, BWS, ';' or CR */
  C_EXT_QS,      /* inside a quoted string */
  C_EXT_QP,      /* the byte after a backslash in a quoted string */
  C_EXT_QEND,    /* after a quoted string: BWS, ';' or CR */
  C_SIZE_LF,     /* the LF that ends a chunk-size line */
  C_DATA,        /* left_ bytes of chunk data */
  C_DATA_CR,     /* the CR after the data */
  C_DATA_LF,     /* the LF after the data */
  C_TRAILER,     /* a trailer field line's first byte, or the final CR */
  C_TNAME,       /* more of a trailer name, or the colon */
  C_TVALUE,      /* more of a trailer value, or CR */
  C_TLF,         /* the LF that ends a trailer line */
  C_FINAL_LF,    /* the LF that ends the body */
  C_DONE,
  C_ERROR
};

void tr_http_chunked_init(tr_http_chunked_t *d) { memset(d, 0, sizeof(*d)); }

int64_t tr_http_chunked_decode(tr_http_chunked_t *d, const char *p, size_t n,
                               tr_http_str_t *data) {
  if (!d || !data || (!p && n > 0)) return TR_EINVAL;
  data->p = p;
  data->n = 0;
  int st = d->state_;
  if (st < 0 || st > C_ERROR) return TR_EINVAL;
  if (st == C_ERROR) return TR_EPROTO;
  if (st == C_DONE || d->done) return 0;
  size_t tmax = d->trailer_max ? d->trailer_max : TR_HTTP_HEAD_MAX;
  size_t i = 0;
  int have = 0; /* a data view is set: stop at the next data */

  while (i < n) {
    if (st == C_DATA) {
      if (have) break;
      size_t take = d->left_ < n - i ? (size_t)d->left_ : n - i;
      data->p = p + i;
      data->n = take;
      have = 1;
      i += take;
      d->left_ -= take;
      if (d->left_ == 0) st = C_DATA_CR;
      continue;
    }
    unsigned char c = (unsigned char)p[i];
    if (st == C_SIZE_LF || st == C_DATA_LF || st == C_TLF ||
        st == C_FINAL_LF) {
      if (c != '\n') goto bad;
    } else if (c == '\n') {
      goto bad; /* a bare LF */
    }
    if (st >= C_SIZE0 && st <= C_EXT_QEND && c != '\r' &&
        ++d->line_ > CHUNK_LINE_MAX)
      goto bad;
    if (st >= C_TRAILER && st <= C_FINAL_LF && ++d->trailer_ > tmax) goto bad;

    switch (st) {
      case C_SIZE0: {
        int v = hex_value(c);
        if (v < 0) goto bad;
        d->left_ = (uint64_t)v;
        st = C_SIZE;
        break;
      }
      case C_SIZE: {
        int v = hex_value(c);
        if (v >= 0) {
          if (d->left_ > ((uint64_t)INT64_MAX >> 4)) goto bad;
          d->left_ = d->left_ << 4 | (uint64_t)v;
        } else if (c == '\r') {
          st = C_SIZE_LF;
        } else if (c == ';') {
          st = C_EXT_NAME0;
        } else if (is_ows(c)) {
          st = C_BWS;
        } else {
          goto bad;
        }
        break;
      }
      case C_BWS:
        if (c == ';')
          st = C_EXT_NAME0;
        else if (!is_ows(c))
          goto bad;
        break;
      case C_EXT_NAME0:
        if (is_tchar(c))
          st = C_EXT_NAME;
        else if (!is_ows(c))
          goto bad;
        break;
      case C_EXT_NAME:
      case C_EXT_NAME_WS:
        if (c == '=')
          st = C_EXT_VAL0;
        else if (c == ';')
          st = C_EXT_NAME0;
        else if (c == '\r' && st == C_EXT_NAME)
          st = C_SIZE_LF;
        else if (is_ows(c))
          st = C_EXT_NAME_WS;
        else if (!(st == C_EXT_NAME && is_tchar(c)))
          goto bad;
        break;
      case C_EXT_VAL0:
        if (c == '"')
          st = C_EXT_QS;
        else if (is_tchar(c))
          st = C_EXT_TOK;
        else if (!is_ows(c))
          goto bad;
        break;
      case C_EXT_TOK:
      case C_EXT_QEND:
        if (c == ';')
          st = C_EXT_NAME0;
        else if (c == '\r')
          st = C_SIZE_LF;
        else if (is_ows(c))
          st = C_BWS;
        else if (!(st == C_EXT_TOK && is_tchar(c)))
          goto bad;
        break;
      case C_EXT_QS:
        /* qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text */
        if (c == '"')
          st = C_EXT_QEND;
        else if (c == '\\')
          st = C_EXT_QP;
        else if (!is_value_char(c))
          goto bad;
        break;
      case C_EXT_QP:
        if (!is_value_char(c)) goto bad;
        st = C_EXT_QS;
        break;
      case C_SIZE_LF:
        d->line_ = 0;
        st = d->left_ ? C_DATA : C_TRAILER;
        break;
      case C_DATA_CR:
        if (c != '\r') goto bad;
        st = C_DATA_LF;
        break;
      case C_DATA_LF:
        st = C_SIZE0;
        break;
      case C_TRAILER:
        if (c == '\r')
          st = C_FINAL_LF;
        else if (!is_tchar(c)) /* obs-fold and bad names alike */
          goto bad;
        else
          st = C_TNAME;
        break;
      case C_TNAME:
        if (c == ':')
          st = C_TVALUE;
        else if (!is_tchar(c))
          goto bad;
        break;
      case C_TVALUE:
        if (c == '\r')
          st = C_TLF;
        else if (!is_value_char(c))
          goto bad;
        break;
      case C_TLF:
        st = C_TRAILER;
        break;
      case C_FINAL_LF:
        d->state_ = C_DONE;
        d->done = 1;
        return (int64_t)(i + 1);
      default:
        goto bad;
    }
    i++;
  }
  d->state_ = st;
  return (int64_t)i;

bad:
  d->state_ = C_ERROR;
  /* data already found in this call is handed over with the bytes before
   * the fault; the next call reports the fault */
  if (have) return (int64_t)i;
  data->n = 0;
  return TR_EPROTO;
}

/* ---- writers ------------------------------------------------------------- */

size_t tr_http_chunk_line(char *out, uint64_t n) {
  static const char hex[] = "0123456789abcdef";
  char tmp[16];
  size_t k = 0;
  do {
    tmp[k++] = hex[n & 15];
    n >>= 4;
  } while (n);
  for (size_t j = 0; j < k; j++) out[j] = tmp[k - 1 - j];
  out[k] = '\r';
  out[k + 1] = '\n';
  out[k + 2] = '\0';
  return k + 2;
}

static char *put2(char *o, int v) {
  o[0] = (char)('0' + v / 10 % 10);
  o[1] = (char)('0' + v % 10);
  return o + 2;
}

void tr_http_date(time_t t, char *out) {
  static const char days[] = "SunMonTueWedThuFriSat";
  static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  /* IMF-fixdate has a four-digit year: clamp to 1970..9999 */
  const long long last = 253402300799LL; /* 9999-12-31 23:59:59 */
  long long v = (long long)t;
  if (v < 0) v = 0;
  if (v > last) v = last;
  time_t c = (time_t)v;
  struct tm tm;
  if (!gmtime_r(&c, &tm)) { /* not for a time in range; the epoch then */
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = 70;
    tm.tm_mday = 1;
    tm.tm_wday = 4;
  }
  int year = tm.tm_year + 1900;
  char *o = out;
  memcpy(o, days + 3 * (tm.tm_wday % 7), 3);
  o += 3;
  *o++ = ',';
  *o++ = ' ';
  o = put2(o, tm.tm_mday);
  *o++ = ' ';
  memcpy(o, months + 3 * (tm.tm_mon % 12), 3);
  o += 3;
  *o++ = ' ';
  o = put2(o, year / 100);
  o = put2(o, year % 100);
  *o++ = ' ';
  o = put2(o, tm.tm_hour);
  *o++ = ':';
  o = put2(o, tm.tm_min);
  *o++ = ':';
  o = put2(o, tm.tm_sec);
  memcpy(o, " GMT", 5);
}

const char *tr_http_reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    /* RFC 6585, which the head parser's 431 comes from */
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 511: return "Network Authentication Required";
    default: return "";
  }
}
