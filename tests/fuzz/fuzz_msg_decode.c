/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for tr_msg_decode, the decoder of messages that arrive
 * from other nodes: any input must give 0 with a well-formed message,
 * TR_ECODEC or TR_EMSGSIZE, never a crash, a leak or a huge allocation
 * (run.sh caps each allocation with -malloc_limit_mb). Each input is
 * decoded three times: with the default limits, with tight ones, and with
 * no limit on its length (the other limits alone must keep the memory
 * bounded); a message accepted under some limits must be accepted under
 * looser ones.
 *
 * Inputs of many megabytes would make poor corpus files, so an input that
 * starts with 0xc1 (a byte msgpack never uses) is a recipe: the 24-bit
 * big-endian count in its next three bytes, then a body whose last byte
 * is repeated that many more times. "c1 ff ff ff" + a header declaring an
 * array of 2^24 nils + "c0" is that 16 MiB message whole.
 * Build and run with tests/fuzz/run.sh.
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
static void check(int rc, void *m) {
  if (rc == 0) {
    /* a decoded message must encode again */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (tr_msg_encode(m, &sb) != 0) abort();
    msgpack_sbuffer_destroy(&sb);
    tr_msg_free(m);
  } else if (m != NULL ||
             (rc != TR_ECODEC && rc != TR_EMSGSIZE && rc != TR_ENOMEM)) {
    abort();
  }
}

static void decode_all(const char *data, size_t size) {
  const tr_msgtype_t *types[] = {TR_TYPE(fz_text_t)};
  void *m = NULL;
  int rc = tr_msg_decode(data, size, types, 1, &m);
  check(rc, m);

  tr_msg_limits_t tight;
  tr_msg_limits_init(&tight);
  tight.max_bytes = 4096;
  tight.max_depth = 3;
  tight.max_items = 8;
  tight.max_objects = 16;
  void *t = NULL;
  int trc = tr_msg_decode_ex(data, size, types, 1, &tight, &t);
  check(trc, t);

  tr_msg_limits_t any_len;
  tr_msg_limits_init(&any_len);
  any_len.max_bytes = SIZE_MAX;
  void *a = NULL;
  int arc = tr_msg_decode_ex(data, size, types, 1, &any_len, &a);
  check(arc, a);

  /* each set of limits is looser than the one before */
  if (trc == 0 && rc != 0) abort();
  if (rc == 0 && arc != 0) abort();
  /* malformed within tight limits is malformed within any */
  if (trc == TR_ECODEC && arc == TR_EMSGSIZE) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size >= 5 && data[0] == 0xc1) {
    size_t extra = (size_t)data[1] << 16 | (size_t)data[2] << 8 | data[3];
    size_t blen = size - 4, len = blen + extra;
    char *buf = malloc(len);
    if (!buf) return 0;
    memcpy(buf, data + 4, blen);
    memset(buf + blen, data[size - 1], extra);
    decode_all(buf, len);
    free(buf);
    return 0;
  }
  decode_all((const char *)data, size);
  return 0;
}
