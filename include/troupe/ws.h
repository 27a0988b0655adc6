/* SPDX-License-Identifier: MIT */
/*
 * The WebSocket codec (RFC 6455): frame headers, payload masking, an
 * incremental UTF-8 validator, close payloads, the opening handshake's
 * keys, a message-level parser and a message writer. Pure code: no I/O,
 * no thread, and no allocation of its own (the parser reassembles
 * fragmented messages in memory that the caller's allocator provides);
 * the WebSocket connection actor drives it, and a program may use it on
 * its own. Every function may be called from any thread; a parser
 * belongs to one caller at a time.
 *
 * No extension is supported (permessage-deflate and others are never
 * negotiated), so the reserved bits RSV1-3 must be 0.
 *
 * What the peer did wrong is reported with the close code the endpoint
 * must answer with (RFC 6455 section 7.4.1): 1002 for a protocol error,
 * 1007 for text that is not UTF-8, 1009 for a message over the limit.
 */
#ifndef TROUPE_WS_H
#define TROUPE_WS_H

#include <stdint.h>

#include <troupe/common.h>

TR_BEGIN_DECLS

/* Which end of the connection the caller is: a server receives masked
 * frames and sends unmasked ones, a client the reverse. */
typedef enum tr_ws_role { TR_WS_SERVER = 1, TR_WS_CLIENT = 2 } tr_ws_role_t;

/* Opcodes (RFC 6455 section 5.2); 0x3-0x7 and 0xB-0xF are reserved. */
#define TR_WS_OP_CONT 0x0
#define TR_WS_OP_TEXT 0x1
#define TR_WS_OP_BINARY 0x2
#define TR_WS_OP_CLOSE 0x8
#define TR_WS_OP_PING 0x9
#define TR_WS_OP_PONG 0xA

/* Close codes (RFC 6455 section 7.4.1). 1005 and 1006 are never sent:
 * they stand for "no code in the close frame" and "closed without a close
 * frame". */
#define TR_WS_CLOSE_NORMAL 1000
#define TR_WS_CLOSE_GOING_AWAY 1001
#define TR_WS_CLOSE_PROTOCOL 1002
#define TR_WS_CLOSE_UNSUPPORTED 1003
#define TR_WS_CLOSE_NO_STATUS 1005
#define TR_WS_CLOSE_ABNORMAL 1006
#define TR_WS_CLOSE_INVALID_DATA 1007
#define TR_WS_CLOSE_POLICY 1008
#define TR_WS_CLOSE_TOO_BIG 1009
#define TR_WS_CLOSE_EXTENSION 1010
#define TR_WS_CLOSE_INTERNAL 1011

#define TR_WS_HEADER_MAX 14   /* longest frame header, masking key included */
#define TR_WS_CONTROL_MAX 125 /* longest control frame payload */
#define TR_WS_REASON_MAX 123  /* longest close reason (125 - the code) */
#define TR_WS_KEY_SIZE 25     /* a Sec-WebSocket-Key, 24 chars and a NUL */
#define TR_WS_ACCEPT_SIZE 29  /* a Sec-WebSocket-Accept, 28 chars and a NUL */
/* The parser's default message limit. */
#define TR_WS_MESSAGE_MAX ((size_t)1 << 20)

/* ---- frames ------------------------------------------------------------- */

/* A frame header, as read by tr_ws_frame_parse or given to
 * tr_ws_frame_write. */
typedef struct tr_ws_frame {
  unsigned fin : 1;    /* the last frame of its message */
  unsigned masked : 1; /* the payload is masked with mask */
  uint8_t opcode;      /* TR_WS_OP_* */
  uint8_t mask[4];     /* the masking key, when masked */
  uint64_t len;        /* payload length, below 2^63 */
  /* When a parse fails: the close code to answer (1002) and a short
   * reason in English, for logs. */
  uint16_t close_code;
  const char *error;
} tr_ws_frame_t;

/* Parses the frame header at buf[0, len) as an endpoint of the given role
 * receives it. Returns the header's length (2..14; the payload starts
 * there), 0 when buf holds only part of a header, or TR_EPROTO with
 * f->close_code (1002) and f->error set: a reserved bit set, a reserved
 * opcode, a control frame that is fragmented or longer than 125 bytes, a
 * mask that does not match the role (a server requires masked frames, a
 * client unmasked ones), a 64-bit length with its top bit set, a length
 * not in its shortest encoding. TR_EINVAL for a NULL f, a NULL buf with
 * len > 0, or an unknown role. */
TR_EXTERN int tr_ws_frame_parse(tr_ws_frame_t *f, const uint8_t *buf,
                                size_t len, tr_ws_role_t role);

/* The length of the header of a frame carrying len bytes, masked or not
 * (2 to 14). */
static inline size_t tr_ws_header_size(uint64_t len, int masked) {
  return 2u + (len > 65535u ? 8u : len > 125u ? 2u : 0u) + (masked ? 4u : 0u);
}

/* Writes the header f describes (fin, opcode, masked, mask, len; RSV bits
 * 0, the length in its shortest form) into out, which has room for
 * TR_WS_HEADER_MAX bytes. It does not touch the payload: mask that with
 * tr_ws_mask. Returns the header's length, or TR_EINVAL: a NULL argument,
 * a reserved opcode, a control frame with fin 0 or a payload over 125
 * bytes, a len of 2^63 or more. */
TR_EXTERN int tr_ws_frame_write(uint8_t *out, const tr_ws_frame_t *f);

/* Masks or unmasks (the same XOR) the n bytes at p in place with key.
 * offset is the position of p[0] in the frame's payload, so a payload
 * that arrives in pieces is unmasked piece by piece. */
TR_EXTERN void tr_ws_mask(uint8_t *p, size_t n, const uint8_t key[4],
                          uint64_t offset);

/* Writes a whole message as one frame (FIN set) into out[0, cap): the
 * header, then the payload, masked when mask (the 4-byte key; a client
 * must use a fresh random key for each frame) is not NULL, as a client
 * sends, unmasked when mask is NULL, as a server sends. opcode is
 * TR_WS_OP_TEXT, _BINARY, _CLOSE, _PING or _PONG. The payload is copied
 * and may overlap out (it may already sit at out + the header's length);
 * the caller's copy elsewhere is left unmasked. Text is not checked for
 * UTF-8. Returns the frame's length, tr_ws_header_size(len, mask != NULL)
 * + len; TR_ENOSPC when cap is smaller; TR_EINVAL for a NULL out, a NULL
 * payload with len > 0, TR_WS_OP_CONT or a reserved opcode, a control
 * payload over 125 bytes. */
TR_EXTERN int64_t tr_ws_message_write(uint8_t *out, size_t cap, int opcode,
                                      const void *payload, size_t len,
                                      const uint8_t *mask);

/* ---- UTF-8 -------------------------------------------------------------- */

/* An incremental UTF-8 validator (RFC 3629: no overlong form, no
 * surrogate, nothing above U+10FFFF). Feed it a text in pieces split
 * anywhere. Zero it or call tr_ws_utf8_init before a text. */
typedef struct tr_ws_utf8 {
  uint32_t state_; /* internal */
} tr_ws_utf8_t;

TR_EXTERN void tr_ws_utf8_init(tr_ws_utf8_t *u);

/* Checks the next n bytes of the text. Returns 0 while the text is valid
 * so far (it may end in the middle of a character, to be completed by the
 * next piece) or TR_EPROTO at the first byte that cannot be part of valid
 * UTF-8; the failure sticks until tr_ws_utf8_init. */
TR_EXTERN int tr_ws_utf8_feed(tr_ws_utf8_t *u, const uint8_t *p, size_t n);

/* The text ends here: 0 when it is valid and whole, TR_EPROTO when it
 * failed or stops in the middle of a character. */
TR_EXTERN int tr_ws_utf8_end(const tr_ws_utf8_t *u);

/* ---- close frames ------------------------------------------------------- */

/* 1 when code may be carried by a close frame (1000-1003, 1007-1011,
 * 3000-4999), else 0. */
TR_EXTERN int tr_ws_close_valid(unsigned code);

/* Parses the payload of a close frame: empty (then *code is
 * TR_WS_CLOSE_NO_STATUS, 1005) or a 2-byte code in network order followed
 * by a UTF-8 reason. Returns 0 with *code and the reason (a view into p,
 * *reason_len bytes, not NUL-terminated; empty for none), or TR_EPROTO
 * with *code set to the close code to answer: 1002 for a 1-byte payload,
 * a payload over 125 bytes, or a code that tr_ws_close_valid refuses;
 * 1007 for a reason that is not UTF-8. reason and reason_len may be NULL
 * (the reason is then only checked). TR_EINVAL for a NULL code, or a NULL
 * p with n > 0. */
TR_EXTERN int tr_ws_close_parse(const uint8_t *p, size_t n, uint16_t *code,
                                const uint8_t **reason, size_t *reason_len);

/* Writes a close payload into out (room for TR_WS_CONTROL_MAX bytes): the
 * code in network order and the reason. code 0 writes the empty payload
 * (no code, no reason). Returns the payload's length, or TR_EINVAL: a
 * NULL out, a code that tr_ws_close_valid refuses (other than 0), a reason
 * with code 0, a reason over TR_WS_REASON_MAX bytes or not UTF-8, a NULL
 * reason with reason_len > 0. */
TR_EXTERN int tr_ws_close_build(uint8_t *out, unsigned code, const char *reason,
                                size_t reason_len);

/* ---- the opening handshake ---------------------------------------------- */

/* Checks a client's Sec-WebSocket-Key: 0 when it is the base64 encoding
 * of 16 bytes (24 characters of the standard alphabet, the last two "=",
 * in the canonical form), TR_EPROTO otherwise (the server answers 400).
 * The caller has removed the field's surrounding whitespace. TR_EINVAL
 * for a NULL key. */
TR_EXTERN int tr_ws_key_check(const char *key, size_t keylen);

/* Builds a Sec-WebSocket-Key from 16 random bytes (which the caller draws
 * from a cryptographic source, e.g. RAND_bytes or getrandom) into out:
 * 24 characters and a NUL, TR_WS_KEY_SIZE bytes. Returns 0, or TR_EINVAL
 * for a NULL argument. */
TR_EXTERN int tr_ws_key_build(const uint8_t random[16], char *out);

/* Computes the Sec-WebSocket-Accept answering key (the base64 of the
 * SHA-1 of the key followed by the GUID 258EAFA5-E914-47DA-95CA-
 * C5AB0DC85B11) into out: 28 characters and a NUL, TR_WS_ACCEPT_SIZE
 * bytes. The key is used as given (check it first with tr_ws_key_check).
 * Returns 0; TR_EINVAL for a NULL argument; TR_ENOMEM or TR_EIO when
 * libcrypto fails. */
TR_EXTERN int tr_ws_accept_key(const char *key, size_t keylen, char *out);

/* A client checks the server's Sec-WebSocket-Accept against the key it
 * sent: 0 when it matches, TR_EPROTO when not (the client fails the
 * connection). TR_EINVAL, TR_ENOMEM, TR_EIO as tr_ws_accept_key. */
TR_EXTERN int tr_ws_accept_check(const char *key, size_t keylen,
                                 const char *accept, size_t acceptlen);

/* ---- the message parser ------------------------------------------------- */

/* A realloc-like allocator for the parser's reassembly buffer: grows ptr
 * (NULL at first) to size bytes keeping its contents and returns the new
 * block, or NULL on failure (ptr is then untouched); size 0 frees ptr and
 * returns NULL. arg is tr_ws_parser_opts_t.alloc_arg. */
typedef void *(*tr_ws_alloc_fn)(void *arg, void *ptr, size_t size);

/* The parser's options; a 0 field takes its default. */
typedef struct tr_ws_parser_opts {
  size_t size;          /* set by tr_ws_parser_opts_init */
  tr_ws_role_t role;    /* TR_WS_SERVER or TR_WS_CLIENT: required */
  uint64_t max_message; /* the largest message payload accepted, summed
                           over its fragments: TR_WS_MESSAGE_MAX; larger:
                           1009 */
  int fragments;        /* nonzero: deliver data as TR_WS_EV_FRAGMENT
                          pieces as they arrive, never reassembled */
  tr_ws_alloc_fn alloc; /* the reassembly memory: required unless
                           fragments is set */
  void *alloc_arg;
} tr_ws_parser_opts_t;

static inline void tr_ws_parser_opts_init(tr_ws_parser_opts_t *o) {
  TR_CONFIG_SIZE_INIT(o);
}

/* What tr_ws_parser_next found. */
typedef enum tr_ws_event_kind {
  TR_WS_EV_NONE = 0, /* everything given was consumed; feed more */
  TR_WS_EV_TEXT,     /* a whole text message (valid UTF-8) */
  TR_WS_EV_BINARY,   /* a whole binary message */
  TR_WS_EV_FRAGMENT, /* fragments mode: a piece of a data message */
  TR_WS_EV_PING,     /* a ping: answer with a pong of the same payload */
  TR_WS_EV_PONG,     /* a pong */
  TR_WS_EV_CLOSE,    /* the peer's close frame: code and reason */
  TR_WS_EV_ERROR     /* the peer broke the protocol: close with code */
} tr_ws_event_kind_t;

typedef struct tr_ws_event {
  tr_ws_event_kind_t kind;
  /* TEXT, BINARY, FRAGMENT, PING, PONG: the payload, unmasked; CLOSE: the
   * reason (UTF-8). Never NULL (when len is 0 it points at no byte to
   * read). Valid until the next call on the parser, and as long as the
   * caller's buffer for a view into it (below). */
  uint8_t *data;
  size_t len;
  /* FRAGMENT: the message's type (TR_WS_OP_TEXT or TR_WS_OP_BINARY) and
   * whether this piece ends the message. */
  int opcode;
  int last;
  /* CLOSE: the peer's code (TR_WS_CLOSE_NO_STATUS when it sent none);
   * ERROR: the code to close with (1002, 1007, 1009, or 1011 when the
   * allocator failed). */
  uint16_t code;
  const char *error; /* ERROR: a short reason in English, for logs */
} tr_ws_event_t;

/* The parser: embed it, or declare it on the stack, and give it to
 * tr_ws_parser_init. Every field is internal. */
typedef struct tr_ws_parser {
  tr_ws_parser_opts_t opts_;
  tr_ws_frame_t frame_; /* the frame being read */
  uint64_t left_;       /* its payload bytes still to come */
  uint64_t off_;        /* its payload bytes already read */
  uint64_t msg_len_;    /* the open data message's bytes so far */
  uint8_t *acc_;        /* reassembly buffer (from opts_.alloc) */
  size_t acc_len_, acc_cap_;
  tr_ws_utf8_t utf8_; /* the open text message's validator */
  int state_;
  uint8_t msg_op_; /* the open data message's opcode, or 0 */
  uint8_t hdr_len_;
  uint8_t release_;
  uint8_t hdr_[TR_WS_HEADER_MAX];
  uint8_t ctl_[TR_WS_CONTROL_MAX];
  uint16_t err_code_;
  const char *err_;
} tr_ws_parser_t;

/* Prepares p with the options o (read during the call only). Returns 0,
 * or TR_EINVAL: a NULL argument, a role that is neither TR_WS_SERVER nor
 * TR_WS_CLIENT, no alloc without fragments, an o larger than this
 * library's struct with fields it does not know set. */
TR_EXTERN int tr_ws_parser_init(tr_ws_parser_t *p,
                                const tr_ws_parser_opts_t *o);

/* Releases the reassembly buffer (through opts.alloc with size 0). p may
 * be initialised again afterwards. */
TR_EXTERN void tr_ws_parser_fini(tr_ws_parser_t *p);

/* Consumes bytes of the stream from buf[0, len), up to and including the
 * next event, and returns how many (0..len) with the event in *ev. The
 * caller calls it again on the rest, buf + the count, until it returns
 * TR_WS_EV_NONE, which means every byte given was consumed; it then feeds
 * the next bytes that arrive. The stream may be split anywhere: a header
 * or a control payload split between two buffers is kept in the parser,
 * so consumed bytes need not be kept. Payload bytes that are delivered as
 * views into buf (below) are unmasked there, in place.
 *
 * Where the data points: a whole message that arrives in a single frame
 * within one buffer is a view into buf (no copy); a message in several
 * frames, or split between buffers, is copied as it arrives into the
 * reassembly buffer, grown by opts.alloc up to the message's size (a
 * buffer grown past 64 KiB is released after its message); control
 * payloads are copied into the parser. In fragments mode every data
 * payload is delivered as TR_WS_EV_FRAGMENT views into buf, as its bytes
 * arrive (a piece may be empty only when it ends the message), with
 * opcode and last set; nothing is copied and alloc is never used.
 *
 * Control frames between the fragments of a message are delivered as
 * they come, and the message goes on. Text is checked for UTF-8 as it
 * arrives, so a bad byte is refused at once, before the message is whole;
 * a text message that ends inside a character is refused. The size limit
 * is applied to each frame's header before its payload arrives.
 *
 * Returns the count, or on failure a negative code and *ev of kind
 * TR_WS_EV_ERROR with the close code to answer: TR_EPROTO (1002: a frame
 * header that tr_ws_frame_parse refuses, a continuation frame without a
 * message to continue, a new data message inside a fragmented one, a
 * close payload that tr_ws_close_parse refuses; 1007: text that is not
 * UTF-8, in a message or a close reason), TR_EMSGSIZE (1009: a message
 * over max_message), TR_ENOMEM (1011: alloc failed). A failure is final:
 * each later call returns it again and consumes nothing. After
 * TR_WS_EV_CLOSE the peer may send nothing more: later calls consume
 * nothing and return TR_WS_EV_NONE. TR_EINVAL (and no event) for a NULL
 * p or ev, a NULL buf with len > 0, or a p not initialised. */
TR_EXTERN int64_t tr_ws_parser_next(tr_ws_parser_t *p, uint8_t *buf, size_t len,
                                    tr_ws_event_t *ev);

TR_END_DECLS

#endif
