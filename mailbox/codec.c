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

int tr_msg_decode(const char *data, size_t len,
                  const tr_msgtype_t *const *types, size_t n, void **out) {
  if (!data || !out || (n && !types)) return TR_EINVAL;
  *out = NULL;
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
