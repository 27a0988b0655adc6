/* SPDX-License-Identifier: MIT */
/*
 * msgpack framing of messages: [type name, payload]. The payload is what
 * the type's encode slot packs; decoding looks the name up among the
 * types the caller accepts, so unknown or malformed input is rejected with
 * TR_ECODEC and never reaches a handler. Input comes from other nodes:
 * before msgpack-c builds anything, a walk over the bytes checks the
 * declared sizes against the caller's limits (TR_EMSGSIZE), so what a
 * message may cost is known before it is paid.
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

/* The bounded walk. msgpack-c sizes its allocations by the counts the
 * input declares (24 bytes per object, 48 per map pair, in a zone it
 * keeps until the message is dropped), so each count is checked here,
 * before the walk descends into it: against the bytes that remain (every
 * element takes at least one, so a few bytes claiming 2^32 elements are
 * malformed), then against the limits. The walk recurses once per level
 * of nesting, at most TR_MSG_MAX_DEPTH deep; it reads each byte once. */
typedef struct scan {
  const unsigned char *p;
  size_t len, off;
  size_t objects;     /* counted so far, those declared by containers
                         included */
  size_t max_objects;
  uint32_t max_depth, max_items;
} scan_t;

static int need(const scan_t *s, uint64_t n) {
  return n <= s->len - s->off;
}

static uint64_t be(const unsigned char *p, unsigned n) {
  uint64_t v = 0;
  for (unsigned i = 0; i < n; i++) v = (v << 8) | p[i];
  return v;
}

/* Skips one object that lies inside `depth` containers (its own slot is
 * already counted in s->objects). Returns 0, TR_ECODEC or TR_EMSGSIZE. */
static int mp_scan(scan_t *s, uint32_t depth) {
  if (!need(s, 1)) return TR_ECODEC;
  unsigned c = s->p[s->off++];
  uint64_t n = 0, items = 0;
  unsigned w;
  int map = 0;
  if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) return 0;
  if ((c & 0xf0) == 0x80) { items = c & 0x0f; map = 1; goto container; }
  if ((c & 0xf0) == 0x90) { items = c & 0x0f; goto container; }
  if ((c & 0xe0) == 0xa0) { n = c & 0x1f; goto bytes; }
  switch (c) {
  case 0xc4: case 0xc5: case 0xc6: /* bin 8/16/32 */
  case 0xd9: case 0xda: case 0xdb: /* str 8/16/32 */
    w = (c == 0xc4 || c == 0xd9) ? 1 : (c == 0xc5 || c == 0xda) ? 2 : 4;
    if (!need(s, w)) return TR_ECODEC;
    n = be(s->p + s->off, w);
    s->off += w;
    goto bytes;
  case 0xc7: case 0xc8: case 0xc9: /* ext 8/16/32: length, type, data */
    w = c == 0xc7 ? 1 : c == 0xc8 ? 2 : 4;
    if (!need(s, w)) return TR_ECODEC;
    n = be(s->p + s->off, w) + 1;
    s->off += w;
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
    if (!need(s, w)) return TR_ECODEC;
    items = be(s->p + s->off, w);
    s->off += w;
    map = c >= 0xde;
    goto container;
  default:
    return TR_ECODEC; /* 0xc1 is never used */
  }
bytes:
  if (!need(s, n)) return TR_ECODEC;
  s->off += n;
  return 0;
container: {
  uint64_t objs = map ? 2 * items : items;
  if (!need(s, objs)) return TR_ECODEC;
  if (depth + 1 > s->max_depth || items > s->max_items ||
      objs > s->max_objects - s->objects)
    return TR_EMSGSIZE;
  s->objects += (size_t)objs;
  for (uint64_t i = 0; i < objs; i++) {
    int rc = mp_scan(s, depth + 1);
    if (rc) return rc;
  }
  return 0;
}
}

/* The limits in force: the caller's fields inside its size, defaults for
 * the rest. Returns 0 or TR_EINVAL. */
static int limits_get(const tr_msg_limits_t *in, tr_msg_limits_t *lim) {
  tr_msg_limits_init(lim);
  /* the rule of every growable config struct (<troupe/common.h>) */
  if (in && tr__config_copy(lim, sizeof(*lim), sizeof(*lim), in))
    return TR_EINVAL;
  if (!lim->max_bytes) lim->max_bytes = TR_MSG_DEFAULT_MAX_BYTES;
  if (!lim->max_depth) lim->max_depth = TR_MSG_DEFAULT_MAX_DEPTH;
  if (!lim->max_items) lim->max_items = TR_MSG_DEFAULT_MAX_ITEMS;
  if (!lim->max_objects) lim->max_objects = TR_MSG_DEFAULT_MAX_OBJECTS;
  if (lim->max_depth > TR_MSG_MAX_DEPTH) return TR_EINVAL;
  return 0;
}

int tr_msg_decode_ex(const char *data, size_t len,
                     const tr_msgtype_t *const *types, size_t n,
                     const tr_msg_limits_t *limits, void **out) {
  if (out) *out = NULL;
  if (!data || !out || (n && !types)) return TR_EINVAL;
  tr_msg_limits_t lim;
  int rc = limits_get(limits, &lim);
  if (rc) return rc;
  if (len > lim.max_bytes) return TR_EMSGSIZE;
  scan_t s = {.p = (const unsigned char *)data,
              .len = len,
              .objects = 1, /* the message itself */
              .max_objects = lim.max_objects,
              .max_depth = lim.max_depth,
              .max_items = lim.max_items};
  rc = mp_scan(&s, 0);
  if (rc) return rc;
  if (s.off != len) return TR_ECODEC; /* bytes after the message */

  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  rc = TR_ECODEC;
  if (msgpack_unpack_next(&u, data, len, &off) != MSGPACK_UNPACK_SUCCESS ||
      off != len)
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

int tr_msg_decode(const char *data, size_t len,
                  const tr_msgtype_t *const *types, size_t n, void **out) {
  return tr_msg_decode_ex(data, len, types, n, NULL, out);
}
