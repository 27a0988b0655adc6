/* SPDX-License-Identifier: MIT */
/*
 * msgpack framing of messages: [type name, payload]. The payload is what
 * the type's encode slot packs; decoding looks the name up among the
 * types the caller accepts, so unknown or malformed input is rejected with
 * TR_ECODEC and never reaches a handler.
 */
#include "internal.h"

#include <msgpack.h>
#include <string.h>

int tr_msg_encode(const void *msg, msgpack_sbuffer *sbuf) {
  const tr_msg_t *m = msg;
  if (!m || !m->type || !sbuf) return TR_EINVAL;
  if (!m->type->encode) return TR_ECODEC;
  msgpack_packer pk;
  msgpack_packer_init(&pk, sbuf, msgpack_sbuffer_write);
  size_t start = sbuf->size;
  size_t nlen = strlen(m->type->name);
  if (msgpack_pack_array(&pk, 2) || msgpack_pack_str(&pk, nlen) ||
      msgpack_pack_str_body(&pk, m->type->name, nlen))
    return TR_ENOMEM;
  int rc = m->type->encode(msg, &pk);
  if (rc) {
    sbuf->size = start; /* leave the buffer as it was */
    return rc < 0 ? rc : TR_ECODEC;
  }
  return 0;
}

/* Walks one msgpack object without building it, checking that every
 * length and count it declares fits in the bytes that remain: msgpack-c
 * sizes its allocations by the declared counts, so a few bytes claiming
 * 2^32 elements must be rejected before they reach it. Returns 0 and
 * advances *off, or -1. */
#define TR__MSGPACK_MAX_DEPTH 64

static int need(size_t len, size_t off, uint64_t n) {
  return off <= len && n <= len - off;
}

static uint64_t be(const unsigned char *p, unsigned n) {
  uint64_t v = 0;
  for (unsigned i = 0; i < n; i++) v = (v << 8) | p[i];
  return v;
}

static int mp_skip(const unsigned char *p, size_t len, size_t *off, int depth) {
  if (depth > TR__MSGPACK_MAX_DEPTH || !need(len, *off, 1)) return -1;
  unsigned c = p[(*off)++];
  uint64_t n = 0, items = 0;
  unsigned w;
  if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) return 0;
  if ((c & 0xf0) == 0x80) { items = 2u * (c & 0x0f); goto container; }
  if ((c & 0xf0) == 0x90) { items = c & 0x0f; goto container; }
  if ((c & 0xe0) == 0xa0) { n = c & 0x1f; goto bytes; }
  switch (c) {
  case 0xc4: case 0xc5: case 0xc6: /* bin 8/16/32 */
  case 0xd9: case 0xda: case 0xdb: /* str 8/16/32 */
    w = (c == 0xc4 || c == 0xd9) ? 1 : (c == 0xc5 || c == 0xda) ? 2 : 4;
    if (!need(len, *off, w)) return -1;
    n = be(p + *off, w);
    *off += w;
    goto bytes;
  case 0xc7: case 0xc8: case 0xc9: /* ext 8/16/32: length, type, data */
    w = c == 0xc7 ? 1 : c == 0xc8 ? 2 : 4;
    if (!need(len, *off, w)) return -1;
    n = be(p + *off, w) + 1;
    *off += w;
    goto bytes;
  case 0xca: n = 4; goto bytes;
  case 0xcb: n = 8; goto bytes;
  case 0xcc: case 0xd0: n = 1; goto bytes;
  case 0xcd: case 0xd1: n = 2; goto bytes;
  case 0xce: case 0xd2: n = 4; goto bytes;
  case 0xcf: case 0xd3: n = 8; goto bytes;
  case 0xd4: n = 2; goto bytes;
  case 0xd5: n = 3; goto bytes;
  case 0xd6: n = 5; goto bytes;
  case 0xd7: n = 9; goto bytes;
  case 0xd8: n = 17; goto bytes;
  case 0xdc: case 0xdd: /* array 16/32 */
  case 0xde: case 0xdf: /* map 16/32 */
    w = (c == 0xdc || c == 0xde) ? 2 : 4;
    if (!need(len, *off, w)) return -1;
    items = be(p + *off, w);
    *off += w;
    if (c >= 0xde) items *= 2;
    goto container;
  default:
    return -1; /* 0xc1 is never used */
  }
bytes:
  if (!need(len, *off, n)) return -1;
  *off += n;
  return 0;
container:
  /* every element takes at least one byte */
  if (!need(len, *off, items)) return -1;
  for (uint64_t i = 0; i < items; i++)
    if (mp_skip(p, len, off, depth + 1)) return -1;
  return 0;
}

int tr_msg_decode(const char *data, size_t len,
                  const tr_msgtype_t *const *types, size_t n, void **out) {
  if (!data || !out || (n && !types)) return TR_EINVAL;
  *out = NULL;
  size_t chk = 0;
  if (mp_skip((const unsigned char *)data, len, &chk, 0)) return TR_ECODEC;
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  int rc = TR_ECODEC;
  if (msgpack_unpack_next(&u, data, len, &off) != MSGPACK_UNPACK_SUCCESS)
    goto done;
  msgpack_object *o = &u.data;
  if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2) goto done;
  msgpack_object *name = &o->via.array.ptr[0];
  if (name->type != MSGPACK_OBJECT_STR) goto done;
  const tr_msgtype_t *t = NULL;
  for (size_t i = 0; i < n; i++) {
    const char *tn = types[i]->name;
    if (strlen(tn) == name->via.str.size &&
        memcmp(tn, name->via.str.ptr, name->via.str.size) == 0) {
      t = types[i];
      break;
    }
  }
  if (!t || !t->decode) goto done;
  void *m = tr_msg_new(t);
  if (!m) {
    rc = TR_ENOMEM;
    goto done;
  }
  int drc = t->decode(&o->via.array.ptr[1], m);
  if (drc) {
    /* a half-decoded message may own memory: the destructor knows */
    tr_msg_free(m);
    rc = drc < 0 ? drc : TR_ECODEC;
    goto done;
  }
  *out = m;
  rc = 0;
done:
  msgpack_unpacked_destroy(&u);
  return rc;
}
