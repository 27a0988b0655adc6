/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for tr_msg_decode, the decoder of messages that arrive
 * from other nodes: any input must give 0 with a well-formed message or
 * TR_ECODEC, never a crash, a leak or a huge allocation. Build and run
 * with tests/fuzz/run.sh.
 */
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <troupe.h>

TR_MESSAGE_TYPE(fz_text_t, char *text; int64_t n;);

static void fz_text_dtor(void *p) { free(((fz_text_t *)p)->text); }

static int fz_text_encode(const void *p, msgpack_packer *pk) {
  const fz_text_t *m = p;
  size_t l = m->text ? strlen(m->text) : 0;
  return msgpack_pack_array(pk, 2) || msgpack_pack_str(pk, l) ||
                 msgpack_pack_str_body(pk, m->text, l) ||
                 msgpack_pack_int64(pk, m->n)
             ? TR_ECODEC
             : 0;
}

static int fz_text_decode(const msgpack_object *o, void *p) {
  fz_text_t *m = p;
  if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2) return TR_ECODEC;
  const msgpack_object *s = &o->via.array.ptr[0], *n = &o->via.array.ptr[1];
  if (s->type != MSGPACK_OBJECT_STR) return TR_ECODEC;
  if (n->type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
      n->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
    return TR_ECODEC;
  m->text = malloc(s->via.str.size + 1);
  if (!m->text) return TR_ENOMEM;
  memcpy(m->text, s->via.str.ptr, s->via.str.size);
  m->text[s->via.str.size] = 0;
  m->n = n->via.i64;
  return 0;
}

TR_MESSAGE_DEFINE(fz_text_t, .dtor = fz_text_dtor, .encode = fz_text_encode,
                  .decode = fz_text_decode);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const tr_msgtype_t *types[] = {TR_TYPE(fz_text_t)};
  void *m = NULL;
  int rc = tr_msg_decode((const char *)data, size, types, 1, &m);
  if (rc == 0) {
    /* a decoded message must encode again */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (tr_msg_encode(m, &sb) != 0) abort();
    msgpack_sbuffer_destroy(&sb);
    tr_msg_free(m);
  } else if (rc != TR_ECODEC && rc != TR_ENOMEM) {
    abort();
  }
  return 0;
}
