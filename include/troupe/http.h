/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/1.1 codec (RFC 9110, RFC 9112): a strict, incremental parser
 * of request and response heads and of chunked bodies, and the small
 * writers a server or client needs. Pure code: no I/O, no allocation,
 * no thread; the connection actors of <troupe/http_server.h> drive it,
 * and a program may use it on its own.
 *
 * Strict means: every line ends in CR LF (a bare CR or a bare LF is an
 * error, never a line end: that is the request-smuggling vector of
 * lenient parsers), no control character outside HTAB in a field value,
 * no whitespace between a field name and its colon, no obs-fold, one
 * Content-Length at most and never with Transfer-Encoding, chunked as the
 * only transfer coding. What is refused is refused with the status a
 * server should answer (400, 414, 417, 431, 501, 505; 502 for a response
 * a client reads). doc/ref-http.md lists every refusal and its status.
 *
 * Zero copy: a parsed head is a set of views (tr_http_str_t) into the
 * caller's buffer, valid while that buffer is.
 */
#ifndef TROUPE_HTTP_H
#define TROUPE_HTTP_H

#include <stdint.h>
#include <time.h>

#include <troupe/common.h>

TR_BEGIN_DECLS

/* A view of n bytes at p (not NUL-terminated). */
typedef struct tr_http_str {
  const char *p;
  size_t n;
} tr_http_str_t;

/* One header (or trailer) field: name and value, the value without its
 * leading and trailing whitespace. */
typedef struct tr_http_field {
  tr_http_str_t name;
  tr_http_str_t value;
} tr_http_field_t;

/* How the body of a parsed message is delimited. */
typedef enum tr_http_body {
  TR_HTTP_BODY_NONE = 0, /* no body */
  TR_HTTP_BODY_LENGTH,   /* exactly content_length bytes (may be 0) */
  TR_HTTP_BODY_CHUNKED,  /* chunked: feed it to tr_http_chunked_decode */
  TR_HTTP_BODY_CLOSE     /* a response read until the connection closes */
} tr_http_body_t;

/* Limits of a head; a 0 field takes its default. */
typedef struct tr_http_limits {
  size_t size;        /* set by tr_http_limits_init (<troupe/common.h>) */
  size_t line_max;    /* request or status line, CR LF excluded:
                         TR_HTTP_LINE_MAX; longer: 414 */
  size_t head_max;    /* the whole head, line and fields, CR LFs and
                         leading empty lines included: TR_HTTP_HEAD_MAX
                         (at most INT_MAX); larger: 431 */
  unsigned fields_max; /* number of fields: TR_HTTP_FIELDS_MAX; more: 431
                          (also bounded by tr_http_head_t.fields_cap) */
} tr_http_limits_t;

#define TR_HTTP_LINE_MAX ((size_t)8192)
#define TR_HTTP_HEAD_MAX ((size_t)65536)
#define TR_HTTP_FIELDS_MAX 100u

static inline void tr_http_limits_init(tr_http_limits_t *l) {
  TR_CONFIG_SIZE_INIT(l);
}

/* A parsed request or response head. Before the first parse of a message,
 * zero it (or call tr_http_head_init) and point fields at an array of
 * fields_cap entries; then call the parser each time more bytes arrive,
 * with the same head and the whole buffer so far (the buffer may move
 * between calls, its first bytes must stay the same): the parser resumes
 * where it stopped, so a head that arrives a byte at a time costs linear
 * time. */
typedef struct tr_http_head {
  tr_http_field_t *fields; /* caller's array ... */
  unsigned fields_cap;     /* ... of this many entries */
  unsigned nfields;        /* fields parsed */

  /* A request: method and target exactly as sent. */
  tr_http_str_t method;
  tr_http_str_t target;
  /* A response: status code (100..999) and reason phrase (may be empty). */
  int status;
  tr_http_str_t reason;

  int version;             /* 10 (HTTP/1.0) or 11 (HTTP/1.1) */

  /* What the fields mean for the connection, filled when the head is
   * whole. */
  tr_http_body_t body;
  uint64_t content_length; /* TR_HTTP_BODY_LENGTH: the body's size */
  tr_http_str_t host;      /* a request's Host value (empty for none) */
  unsigned keep_alive : 1; /* the connection may carry another message
                              (1.1 without "Connection: close", 1.0 with
                              "Connection: keep-alive") */
  unsigned expect_continue : 1; /* request: "Expect: 100-continue" */
  unsigned upgrade : 1;    /* "Connection: upgrade" with an Upgrade field */

  /* When a parse fails: the status a server answers (400, 414, 417, 431,
   * 501, 505; always 502 for a response) and a short reason in English,
   * for logs. */
  int error_status;
  const char *error;

  size_t scan_;            /* internal: bytes already checked */
  int state_;              /* internal */
} tr_http_head_t;

/* Zeroes h and gives it the fields array. */
TR_EXTERN void tr_http_head_init(tr_http_head_t *h, tr_http_field_t *fields,
                                 unsigned fields_cap);

/* Parses a request head from buf[0, len). Returns the head's length
 * (> 0: the bytes up to and including the empty line; the body, or the
 * next request, starts there), 0 when the head is not whole yet and no
 * limit is passed, or TR_EPROTO with h->error_status and h->error set.
 * A malformed byte is refused as soon as it arrives, and a head parsed
 * whole ends exactly as the same head parsed in pieces. Leading empty
 * lines (CR LF) before the request line are skipped, up to 4. lim may be
 * NULL (the defaults). Once the head is whole (or refused), another call
 * returns the same result (and refreshes the views, for a moved buffer).
 * TR_EINVAL for a NULL h or buf with len > 0, no fields array
 * (fields NULL or fields_cap 0), a len shorter than before, or a lim
 * whose size field is refused (<troupe/common.h>). */
TR_EXTERN int tr_http_request_parse(tr_http_head_t *h, const char *buf,
                                    size_t len, const tr_http_limits_t *lim);

/* Parses a response head, as tr_http_request_parse does a request.
 * head_request: nonzero when the request was HEAD (the response then has
 * no body whatever its fields say); 1xx, 204 and 304 have none either. A
 * response without Content-Length or chunked is TR_HTTP_BODY_CLOSE. On
 * TR_EPROTO h->error_status is 502. */
TR_EXTERN int tr_http_response_parse(tr_http_head_t *h, const char *buf,
                                     size_t len, const tr_http_limits_t *lim,
                                     int head_request);

/* Finds a field by name (case-insensitive); the first one, or NULL. */
TR_EXTERN const tr_http_field_t *tr_http_head_field(const tr_http_head_t *h,
                                                    const char *name);

/* The chunked decoder: zero it (or tr_http_chunked_init) before a body. */
typedef struct tr_http_chunked {
  uint64_t left_;   /* internal: data bytes left in the current chunk */
  size_t line_;     /* internal: bytes of the current size/trailer line */
  size_t trailer_;  /* internal: trailer bytes so far */
  size_t trailer_max; /* trailer section bound; 0: TR_HTTP_HEAD_MAX */
  int state_;       /* internal */
  unsigned done : 1; /* the last chunk and the trailers have been read */
} tr_http_chunked_t;

TR_EXTERN void tr_http_chunked_init(tr_http_chunked_t *d);

/* Decodes the chunked body in p[0, n). Returns how many bytes it
 * consumed (0..n) and sets *data to body bytes found inside those (a view
 * into p; empty when the consumed bytes were framing only). Call it again
 * on the rest until it has consumed everything or d->done is set: the
 * bytes after the body (the next message) are not consumed. Chunk
 * extensions are checked for syntax and ignored (a chunk-size line,
 * extensions included, is at most 4096 bytes); trailer fields are
 * checked as header fields are and dropped. Returns TR_EPROTO on bad
 * framing (a size that is not hex or overflows 2^63, a missing CR LF
 * after the data, a bare CR or LF, a bad trailer, a trailer section over
 * trailer_max); when body bytes come before the fault in the same call,
 * that call returns them and the next one TR_EPROTO. TR_EINVAL for a
 * NULL d or data, or a NULL p with n > 0. */
TR_EXTERN int64_t tr_http_chunked_decode(tr_http_chunked_t *d, const char *p,
                                         size_t n, tr_http_str_t *data);

/* Writes the line that starts a chunk of n bytes ("1a2b\r\n") into out
 * (at least 19 bytes: the line and a NUL) and returns its length, the NUL
 * excluded. n = 0 writes the last chunk
 * "0\r\n" (the caller then writes trailers, if any, and the final CR LF). */
TR_EXTERN size_t tr_http_chunk_line(char *out, uint64_t n);

/* Writes t as an HTTP date ("Sun, 06 Nov 1994 08:49:37 GMT", IMF-fixdate,
 * 29 bytes and a NUL) into out (at least 30 bytes). Thread-safe, no
 * locale. A time before 1970 or after 9999 is clamped to that range. */
TR_EXTERN void tr_http_date(time_t t, char *out);

/* The reason phrase of a status code ("Not Found"); "" for one not in RFC
 * 9110 or among RFC 6585's (428, 429, 431, 511). */
TR_EXTERN const char *tr_http_reason(int status);

TR_END_DECLS

#endif
