/* SPDX-License-Identifier: MIT */
/*
 * The WebSocket codec of <troupe/ws.h> (RFC 6455): frame headers, masking,
 * UTF-8 validation, close payloads, the handshake keys, the message parser
 * and the message writer. Pure code: no I/O, no thread, no allocation but
 * through the caller's allocator (the parser's reassembly buffer) and
 * libcrypto's own inside the handshake digest.
 *
 * The parser is a push parser with two states, reading a header and
 * reading a payload. A header (at most 14 bytes) is always gathered into
 * the parser first, so that it may be split anywhere; a control payload
 * (at most 125 bytes) too. Data payloads are not copied when they can be
 * delivered as views into the caller's buffer: in fragments mode always,
 * in whole-message mode when a single-frame message lies entirely in the
 * buffer at hand (the common case); otherwise the bytes go into the
 * reassembly buffer as they arrive, each byte copied once.
 */
#include "internal.h"

#include <troupe/ws.h>

#include <openssl/evp.h>
#include <string.h>

/* ---- frames ------------------------------------------------------------- */

static int is_known_opcode(unsigned op) {
  return op <= TR_WS_OP_BINARY || (op >= TR_WS_OP_CLOSE && op <= TR_WS_OP_PONG);
}

static int frame_bad(tr_ws_frame_t *f, const char *why) {
  f->close_code = TR_WS_CLOSE_PROTOCOL;
  f->error = why;
  return TR_EPROTO;
}

/* Checks as soon as the bytes that decide are there, so a bad header is
 * refused from its first byte when it can be. */
int tr_ws_frame_parse(tr_ws_frame_t *f, const uint8_t *buf, size_t len,
                      tr_ws_role_t role) {
  if (!f || (!buf && len) || (role != TR_WS_SERVER && role != TR_WS_CLIENT))
    return TR_EINVAL;
  f->close_code = 0;
  f->error = NULL;
  if (len < 1) return 0;
  unsigned b0 = buf[0], op = b0 & 0x0fu, fin = b0 >> 7;
  if (b0 & 0x70u) return frame_bad(f, "reserved bit set (no extension in use)");
  if (!is_known_opcode(op)) return frame_bad(f, "reserved opcode");
  if (op >= TR_WS_OP_CLOSE && !fin)
    return frame_bad(f, "fragmented control frame");
  if (len < 2) return 0;
  unsigned b1 = buf[1], masked = b1 >> 7, l7 = b1 & 0x7fu;
  if (op >= TR_WS_OP_CLOSE && l7 > TR_WS_CONTROL_MAX)
    return frame_bad(f, "control frame longer than 125 bytes");
  if (role == TR_WS_SERVER && !masked)
    return frame_bad(f, "unmasked frame from a client");
  if (role == TR_WS_CLIENT && masked)
    return frame_bad(f, "masked frame from a server");
  size_t hl = 2;
  uint64_t plen = l7;
  if (l7 == 126) {
    if (len < 4) return 0;
    plen = (uint64_t)buf[2] << 8 | buf[3];
    if (plen < 126) return frame_bad(f, "length not in its shortest form");
    hl = 4;
  } else if (l7 == 127) {
    if (len < 3) return 0;
    if (buf[2] & 0x80u)
      return frame_bad(f, "64-bit length with its top bit set");
    if (len < 10) return 0;
    plen = 0;
    for (int i = 2; i < 10; i++) plen = plen << 8 | buf[i];
    if (plen <= 65535u) return frame_bad(f, "length not in its shortest form");
    hl = 10;
  }
  if (masked) {
    if (len < hl + 4) return 0;
    memcpy(f->mask, buf + hl, 4);
    hl += 4;
  } else {
    memset(f->mask, 0, 4);
  }
  f->fin = fin;
  f->masked = masked;
  f->opcode = (uint8_t)op;
  f->len = plen;
  return (int)hl;
}

int tr_ws_frame_write(uint8_t *out, const tr_ws_frame_t *f) {
  if (!out || !f) return TR_EINVAL;
  unsigned op = f->opcode;
  if (op > 0x0fu || !is_known_opcode(op)) return TR_EINVAL;
  if (op >= TR_WS_OP_CLOSE && (!f->fin || f->len > TR_WS_CONTROL_MAX))
    return TR_EINVAL;
  if (f->len >> 63) return TR_EINVAL;
  uint64_t n = f->len;
  size_t hl = 2;
  out[0] = (uint8_t)((f->fin ? 0x80u : 0u) | op);
  uint8_t m = f->masked ? 0x80u : 0u;
  if (n <= 125) {
    out[1] = (uint8_t)(m | n);
  } else if (n <= 65535u) {
    out[1] = (uint8_t)(m | 126u);
    out[2] = (uint8_t)(n >> 8);
    out[3] = (uint8_t)n;
    hl = 4;
  } else {
    out[1] = (uint8_t)(m | 127u);
    for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(n >> (56 - 8 * i));
    hl = 10;
  }
  if (f->masked) {
    memcpy(out + hl, f->mask, 4);
    hl += 4;
  }
  return (int)hl;
}

/* Eight bytes at a time: the key, rotated to the offset, repeated twice
 * as a byte string, so the word XOR is the same on any byte order. memcpy
 * keeps the loads and stores legal at any alignment; compilers turn them
 * into plain moves (and vectorise the loop at -O2). */
void tr_ws_mask(uint8_t *p, size_t n, const uint8_t key[4], uint64_t offset) {
  if (!p || !key || n == 0) return;
  uint8_t k[8];
  for (unsigned i = 0; i < 8; i++) k[i] = key[(offset + i) & 3u];
  uint64_t kw;
  memcpy(&kw, k, 8);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    w ^= kw;
    memcpy(p + i, &w, 8);
  }
  for (; i < n; i++) p[i] ^= k[i & 7u];
}

int64_t tr_ws_message_write(uint8_t *out, size_t cap, int opcode,
                            const void *payload, size_t len,
                            const uint8_t *mask) {
  if (!out || (!payload && len)) return TR_EINVAL;
  if (opcode < 0 || opcode > 0x0f || opcode == TR_WS_OP_CONT ||
      !is_known_opcode((unsigned)opcode))
    return TR_EINVAL;
  if (opcode >= TR_WS_OP_CLOSE && len > TR_WS_CONTROL_MAX) return TR_EINVAL;
  size_t hl = tr_ws_header_size(len, mask != NULL);
  if ((uint64_t)len > (uint64_t)INT64_MAX - hl) return TR_EINVAL;
  if (cap < hl || cap - hl < len) return TR_ENOSPC;
  tr_ws_frame_t f;
  memset(&f, 0, sizeof(f));
  f.fin = 1;
  f.opcode = (uint8_t)opcode;
  f.len = len;
  if (mask) {
    f.masked = 1;
    memcpy(f.mask, mask, 4);
  }
  /* the payload first: it may overlap the header's bytes */
  if (len) memmove(out + hl, payload, len);
  int rc = tr_ws_frame_write(out, &f);
  assert(rc == (int)hl);
  (void)rc;
  if (mask) tr_ws_mask(out + hl, len, f.mask, 0);
  return (int64_t)(hl + len);
}

/* ---- UTF-8 -------------------------------------------------------------- */

/* The state packs what the next byte may be: 0 at a character boundary,
 * else the count of continuation bytes still due (1..3) in bits 0-7 and
 * the range allowed for the next one in bits 8-15 and 16-23. The ranges
 * are those of the well-formed sequences of Unicode (chapter 3, table
 * 3-7): after E0 only A0..BF (no overlong), after ED only 80..9F (no
 * surrogate), after F0 only 90..BF (no overlong), after F4 only 80..8F
 * (nothing above U+10FFFF); C0, C1 and F5..FF never appear. */
#define U8_FAIL 0xffu
#define U8_STATE(need, lo, hi)                                                 \
  ((uint32_t)(need) | (uint32_t)(lo) << 8 | (uint32_t)(hi) << 16)

void tr_ws_utf8_init(tr_ws_utf8_t *u) {
  if (u) u->state_ = 0;
}

int tr_ws_utf8_feed(tr_ws_utf8_t *u, const uint8_t *p, size_t n) {
  if (!u || (!p && n)) return TR_EINVAL;
  uint32_t s = u->state_;
  if (s == U8_FAIL) return TR_EPROTO;
  size_t i = 0;
  while (i < n) {
    if (s == 0) {
      /* ASCII runs eight bytes at a time */
      while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ull) break;
        i += 8;
      }
      if (i >= n) break;
      unsigned c = p[i++];
      if (c < 0x80u) continue;
      /* clang-format off */
      if (c < 0xc2u) s = U8_FAIL;
      else if (c <= 0xdfu) s = U8_STATE(1, 0x80, 0xbf);
      else if (c == 0xe0u) s = U8_STATE(2, 0xa0, 0xbf);
      else if (c == 0xedu) s = U8_STATE(2, 0x80, 0x9f);
      else if (c <= 0xefu) s = U8_STATE(2, 0x80, 0xbf);
      else if (c == 0xf0u) s = U8_STATE(3, 0x90, 0xbf);
      else if (c <= 0xf3u) s = U8_STATE(3, 0x80, 0xbf);
      else if (c == 0xf4u) s = U8_STATE(3, 0x80, 0x8f);
      else s = U8_FAIL;
      /* clang-format on */
      if (s == U8_FAIL) break;
    } else {
      unsigned c = p[i++];
      if (c < ((s >> 8) & 0xffu) || c > (s >> 16)) {
        s = U8_FAIL;
        break;
      }
      unsigned need = (s & 0xffu) - 1;
      s = need ? U8_STATE(need, 0x80, 0xbf) : 0;
    }
  }
  u->state_ = s;
  return s == U8_FAIL ? TR_EPROTO : 0;
}

int tr_ws_utf8_end(const tr_ws_utf8_t *u) {
  if (!u) return TR_EINVAL;
  return u->state_ == 0 ? 0 : TR_EPROTO;
}

/* ---- close frames ------------------------------------------------------- */

int tr_ws_close_valid(unsigned code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
         (code >= 3000 && code <= 4999);
}

int tr_ws_close_parse(const uint8_t *p, size_t n, uint16_t *code,
                      const uint8_t **reason, size_t *reason_len) {
  if (!code || (!p && n)) return TR_EINVAL;
  if (reason) *reason = p;
  if (reason_len) *reason_len = 0;
  if (n == 0) {
    *code = TR_WS_CLOSE_NO_STATUS;
    return 0;
  }
  if (n == 1 || n > TR_WS_CONTROL_MAX) {
    *code = TR_WS_CLOSE_PROTOCOL;
    return TR_EPROTO;
  }
  unsigned c = (unsigned)p[0] << 8 | p[1];
  if (!tr_ws_close_valid(c)) {
    *code = TR_WS_CLOSE_PROTOCOL;
    return TR_EPROTO;
  }
  tr_ws_utf8_t u;
  tr_ws_utf8_init(&u);
  if (tr_ws_utf8_feed(&u, p + 2, n - 2) || tr_ws_utf8_end(&u)) {
    *code = TR_WS_CLOSE_INVALID_DATA;
    return TR_EPROTO;
  }
  *code = (uint16_t)c;
  if (reason) *reason = p + 2;
  if (reason_len) *reason_len = n - 2;
  return 0;
}

int tr_ws_close_build(uint8_t *out, unsigned code, const char *reason,
                      size_t reason_len) {
  if (!out || (!reason && reason_len)) return TR_EINVAL;
  if (code == 0) return reason_len ? TR_EINVAL : 0;
  if (!tr_ws_close_valid(code) || reason_len > TR_WS_REASON_MAX)
    return TR_EINVAL;
  tr_ws_utf8_t u;
  tr_ws_utf8_init(&u);
  if (tr_ws_utf8_feed(&u, (const uint8_t *)reason, reason_len) ||
      tr_ws_utf8_end(&u))
    return TR_EINVAL;
  out[0] = (uint8_t)(code >> 8);
  out[1] = (uint8_t)code;
  if (reason_len) memmove(out + 2, reason, reason_len);
  return (int)(2 + reason_len);
}

/* ---- the opening handshake ---------------------------------------------- */

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static int b64_char(unsigned c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* 16 bytes are 128 bits: 21 full characters, a 22nd that carries 2 bits
 * (its low 4 bits 0: A, Q, g or w) and "==". */
int tr_ws_key_check(const char *key, size_t keylen) {
  if (!key) return TR_EINVAL;
  if (keylen != 24 || key[22] != '=' || key[23] != '=') return TR_EPROTO;
  for (int i = 0; i < 21; i++)
    if (!b64_char((unsigned char)key[i])) return TR_EPROTO;
  char c = key[21];
  if (c != 'A' && c != 'Q' && c != 'g' && c != 'w') return TR_EPROTO;
  return 0;
}

int tr_ws_key_build(const uint8_t random[16], char *out) {
  if (!random || !out) return TR_EINVAL;
  /* 24 characters and a NUL; the encoder cannot fail */
  int n = EVP_EncodeBlock((unsigned char *)out, random, 16);
  assert(n == 24);
  (void)n;
  return 0;
}

int tr_ws_accept_key(const char *key, size_t keylen, char *out) {
  if (!key || !out) return TR_EINVAL;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  if (!c) return TR_ENOMEM;
  int ok = EVP_DigestInit_ex(c, EVP_sha1(), NULL) &&
           EVP_DigestUpdate(c, key, keylen) &&
           EVP_DigestUpdate(c, ws_guid, sizeof(ws_guid) - 1) &&
           EVP_DigestFinal_ex(c, md, &mdlen);
  EVP_MD_CTX_free(c);
  if (!ok || mdlen != 20) return TR_EIO;
  return EVP_EncodeBlock((unsigned char *)out, md, 20) == 28 ? 0 : TR_EIO;
}

int tr_ws_accept_check(const char *key, size_t keylen, const char *accept,
                       size_t acceptlen) {
  if (!key || !accept) return TR_EINVAL;
  char want[TR_WS_ACCEPT_SIZE];
  int rc = tr_ws_accept_key(key, keylen, want);
  if (rc) return rc;
  return acceptlen == 28 && memcmp(want, accept, 28) == 0 ? 0 : TR_EPROTO;
}

/* ---- the message parser ------------------------------------------------- */

enum {
  P_UNINIT = 0, /* a zeroed parser: refused */
  P_HEADER,     /* gathering a frame header into hdr_ */
  P_PAYLOAD,    /* reading frame_'s payload: left_ bytes to come */
  P_CLOSED,     /* after a close frame: nothing more is read */
  P_FAILED      /* after an error: it is returned again */
};

/* A reassembly buffer larger than this is released after its message. */
#define WS_ACC_KEEP ((size_t)64 << 10)

int tr_ws_parser_init(tr_ws_parser_t *p, const tr_ws_parser_opts_t *o) {
  if (!p || !o) return TR_EINVAL;
  tr_ws_parser_opts_t c;
  if (tr__config_copy(&c, sizeof(c), sizeof(c), o)) return TR_EINVAL;
  if (c.role != TR_WS_SERVER && c.role != TR_WS_CLIENT) return TR_EINVAL;
  if (!c.fragments && !c.alloc) return TR_EINVAL;
  if (c.max_message == 0) c.max_message = TR_WS_MESSAGE_MAX;
  /* a whole message must fit in memory */
  if (!c.fragments && c.max_message > SIZE_MAX) c.max_message = SIZE_MAX;
  memset(p, 0, sizeof(*p));
  p->opts_ = c;
  p->state_ = P_HEADER;
  return 0;
}

void tr_ws_parser_fini(tr_ws_parser_t *p) {
  if (!p) return;
  if (p->acc_ && p->opts_.alloc) p->opts_.alloc(p->opts_.alloc_arg, p->acc_, 0);
  p->acc_ = NULL;
  p->acc_len_ = p->acc_cap_ = 0;
  p->state_ = P_UNINIT;
}

/* Bytes the header in h[0, n) needs in all, as far as they tell. */
static size_t hdr_need(const uint8_t *h, size_t n) {
  if (n < 2) return 2;
  size_t need = (h[1] & 0x80u) ? 6 : 2;
  unsigned l7 = h[1] & 0x7fu;
  if (l7 == 126) need += 2;
  else if (l7 == 127)
    need += 8;
  return need;
}

static int64_t p_fail(tr_ws_parser_t *p, tr_ws_event_t *ev, uint16_t code,
                      const char *why) {
  p->state_ = P_FAILED;
  p->err_code_ = code;
  p->err_ = why;
  ev->kind = TR_WS_EV_ERROR;
  ev->code = code;
  ev->error = why;
  ev->data = p->ctl_;
  ev->len = 0;
  switch (code) {
    case TR_WS_CLOSE_TOO_BIG: return TR_EMSGSIZE;
    case TR_WS_CLOSE_INTERNAL: return TR_ENOMEM;
    default: return TR_EPROTO;
  }
}

/* Makes room in the reassembly buffer for n more bytes; the message's
 * size has been checked against max_message, so the buffer stays below
 * it. Doubling keeps the copies linear in the message's size. */
static int acc_reserve(tr_ws_parser_t *p, size_t n) {
  size_t need = p->acc_len_ + n;
  if (need <= p->acc_cap_) return 0;
  size_t cap = p->acc_cap_ > SIZE_MAX / 2 ? SIZE_MAX : p->acc_cap_ * 2;
  if (cap < 256) cap = 256;
  if ((uint64_t)cap > p->opts_.max_message) cap = (size_t)p->opts_.max_message;
  if (cap < need) cap = need;
  void *b = p->opts_.alloc(p->opts_.alloc_arg, p->acc_, cap);
  if (!b) return TR_ENOMEM;
  p->acc_ = b;
  p->acc_cap_ = cap;
  return 0;
}

/* The frame in p->frame_ has just been read: check it against the
 * message it belongs to. Returns 0 or the close code. */
static uint16_t p_frame_start(tr_ws_parser_t *p, const char **why) {
  const tr_ws_frame_t *f = &p->frame_;
  p->left_ = f->len;
  p->off_ = 0;
  if (f->opcode >= TR_WS_OP_CLOSE) return 0;
  if (f->opcode == TR_WS_OP_CONT) {
    if (!p->msg_op_) {
      *why = "continuation frame without a message to continue";
      return TR_WS_CLOSE_PROTOCOL;
    }
  } else {
    if (p->msg_op_) {
      *why = "new data message inside a fragmented one";
      return TR_WS_CLOSE_PROTOCOL;
    }
    p->msg_op_ = f->opcode;
    p->msg_len_ = 0;
    p->acc_len_ = 0;
    tr_ws_utf8_init(&p->utf8_);
  }
  if (f->len > p->opts_.max_message - p->msg_len_) {
    *why = "message larger than the limit";
    return TR_WS_CLOSE_TOO_BIG;
  }
  p->msg_len_ += f->len;
  return 0;
}

int64_t tr_ws_parser_next(tr_ws_parser_t *p, uint8_t *buf, size_t len,
                          tr_ws_event_t *ev) {
  if (!p || !ev || (!buf && len) || p->state_ == P_UNINIT) return TR_EINVAL;
  memset(ev, 0, sizeof(*ev));
  ev->data = p->ctl_;
  if (p->state_ == P_FAILED) return p_fail(p, ev, p->err_code_, p->err_);
  if (p->state_ == P_CLOSED) return 0;
  if (len > (uint64_t)INT64_MAX) len = (size_t)INT64_MAX;
  if (p->release_) {
    p->opts_.alloc(p->opts_.alloc_arg, p->acc_, 0);
    p->acc_ = NULL;
    p->acc_cap_ = 0;
    p->release_ = 0;
  }
  size_t pos = 0;
  for (;;) {
    tr_ws_frame_t *f = &p->frame_;
    if (p->state_ == P_HEADER) {
      size_t need = hdr_need(p->hdr_, p->hdr_len_);
      while (p->hdr_len_ < need && pos < len) {
        size_t take = need - p->hdr_len_;
        if (take > len - pos) take = len - pos;
        memcpy(p->hdr_ + p->hdr_len_, buf + pos, take);
        p->hdr_len_ = (uint8_t)(p->hdr_len_ + take);
        pos += take;
        need = hdr_need(p->hdr_, p->hdr_len_);
      }
      int rc = tr_ws_frame_parse(f, p->hdr_, p->hdr_len_, p->opts_.role);
      if (rc < 0) return p_fail(p, ev, f->close_code, f->error);
      if (rc == 0) return (int64_t)pos; /* all of buf taken: need more */
      assert((size_t)rc == p->hdr_len_);
      p->hdr_len_ = 0;
      const char *why = NULL;
      uint16_t code = p_frame_start(p, &why);
      if (code) return p_fail(p, ev, code, why);
      p->state_ = P_PAYLOAD;
    }

    size_t avail = len - pos;
    size_t take = p->left_ < avail ? (size_t)p->left_ : avail;
    uint8_t *d = buf + pos;

    if (f->opcode >= TR_WS_OP_CLOSE) {
      /* control: gathered in ctl_, delivered whole */
      if (take) memcpy(p->ctl_ + p->off_, d, take);
      pos += take;
      p->off_ += take;
      p->left_ -= take;
      if (p->left_) return (int64_t)pos;
      size_t n = (size_t)p->off_;
      if (f->masked) tr_ws_mask(p->ctl_, n, f->mask, 0);
      p->state_ = P_HEADER;
      if (f->opcode == TR_WS_OP_CLOSE) {
        uint16_t code;
        const uint8_t *reason;
        size_t rlen;
        if (tr_ws_close_parse(p->ctl_, n, &code, &reason, &rlen))
          return p_fail(p, ev, code,
                        code == TR_WS_CLOSE_INVALID_DATA
                            ? "close reason is not UTF-8"
                            : "bad close payload");
        ev->kind = TR_WS_EV_CLOSE;
        ev->code = code;
        ev->data = p->ctl_ + (n ? 2 : 0);
        ev->len = rlen;
        p->state_ = P_CLOSED;
      } else {
        ev->kind = f->opcode == TR_WS_OP_PING ? TR_WS_EV_PING : TR_WS_EV_PONG;
        ev->len = n;
      }
      return (int64_t)pos;
    }

    int text = p->msg_op_ == TR_WS_OP_TEXT;
    if (p->opts_.fragments) {
      if (take == 0 && p->left_) return (int64_t)pos;
      if (f->masked) tr_ws_mask(d, take, f->mask, p->off_);
      if (text && tr_ws_utf8_feed(&p->utf8_, d, take))
        return p_fail(p, ev, TR_WS_CLOSE_INVALID_DATA, "text is not UTF-8");
      pos += take;
      p->off_ += take;
      p->left_ -= take;
      int last = p->left_ == 0 && f->fin;
      if (last && text && tr_ws_utf8_end(&p->utf8_))
        return p_fail(p, ev, TR_WS_CLOSE_INVALID_DATA,
                      "text ends inside a character");
      int op = p->msg_op_;
      if (p->left_ == 0) {
        p->state_ = P_HEADER;
        if (last) p->msg_op_ = 0;
      }
      if (take == 0 && !last) continue; /* an empty frame: nothing to say */
      ev->kind = TR_WS_EV_FRAGMENT;
      ev->data = take ? d : p->ctl_;
      ev->len = take;
      ev->opcode = op;
      ev->last = last;
      return (int64_t)pos;
    }

    if (f->opcode != TR_WS_OP_CONT && f->fin && p->off_ == 0 &&
        p->left_ <= avail) {
      /* a whole single-frame message in buf: a view, no copy */
      size_t n = (size_t)p->left_;
      if (f->masked) tr_ws_mask(d, n, f->mask, 0);
      if (text &&
          (tr_ws_utf8_feed(&p->utf8_, d, n) || tr_ws_utf8_end(&p->utf8_)))
        return p_fail(p, ev, TR_WS_CLOSE_INVALID_DATA, "text is not UTF-8");
      pos += n;
      p->left_ = 0;
      p->state_ = P_HEADER;
      p->msg_op_ = 0;
      ev->kind = text ? TR_WS_EV_TEXT : TR_WS_EV_BINARY;
      ev->data = n ? d : p->ctl_;
      ev->len = n;
      return (int64_t)pos;
    }

    if (take) {
      if (acc_reserve(p, take))
        return p_fail(p, ev, TR_WS_CLOSE_INTERNAL,
                      "out of memory for the message");
      uint8_t *a = p->acc_ + p->acc_len_;
      memcpy(a, d, take);
      if (f->masked) tr_ws_mask(a, take, f->mask, p->off_);
      if (text && tr_ws_utf8_feed(&p->utf8_, a, take))
        return p_fail(p, ev, TR_WS_CLOSE_INVALID_DATA, "text is not UTF-8");
      p->acc_len_ += take;
      pos += take;
      p->off_ += take;
      p->left_ -= take;
    }
    if (p->left_) return (int64_t)pos;
    p->state_ = P_HEADER;
    if (!f->fin) continue;
    if (text && tr_ws_utf8_end(&p->utf8_))
      return p_fail(p, ev, TR_WS_CLOSE_INVALID_DATA,
                    "text ends inside a character");
    p->msg_op_ = 0;
    ev->kind = text ? TR_WS_EV_TEXT : TR_WS_EV_BINARY;
    ev->data = p->acc_len_ ? p->acc_ : p->ctl_;
    ev->len = p->acc_len_;
    p->acc_len_ = 0;
    if (p->acc_cap_ > WS_ACC_KEEP) p->release_ = 1;
    return (int64_t)pos;
  }
}
