/* SPDX-License-Identifier: MIT */
/*
 * Tests of typed messages (<troupe/mailbox.h>): descriptors made by
 * TR_MESSAGE_TYPE/TR_MESSAGE_DEFINE, tr_msg_new (zeroed, typed), tr_msg_free
 * (runs the destructor once), the msgpack codec through tr_msg_encode and
 * tr_msg_decode (round trip, lookup by type name, and TR_ECODEC for
 * malformed, truncated, random or unknown input, for bytes after the
 * message and for types without a codec), the decoder's limits
 * (tr_msg_decode_ex: TR_EMSGSIZE before anything is allocated, messages
 * at the limits still decode, the limits struct's size field), and the
 * send helpers made by TR_TYPED_REF/TR_ACCEPTS.
 */
#include <check.h>
#include <msgpack.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/resource.h>

#include <troupe.h>

#include "testutil.h"

/* Random input may declare a msgpack array of 2^32 elements; msgpack-c then
 * asks malloc for that much, which must fail cleanly (TR_ECODEC) instead of
 * aborting the process as the sanitizers' allocators do by default. */
#if TU_TSAN
const char *__tsan_default_options(void);
__attribute__((visibility("default"))) const char *
__tsan_default_options(void) {
  return "allocator_may_return_null=1";
}
#endif
#if defined(__SANITIZE_ADDRESS__)
const char *__asan_default_options(void);
__attribute__((visibility("default"))) const char *
__asan_default_options(void) {
  return "allocator_may_return_null=1";
}
#endif

/* ---- message types ----------------------------------------------------- */

TR_MESSAGE_TYPE(rec_t, int64_t seq; char *name; int flag; double ratio;)
TR_MESSAGE_TYPE(pt_t, int32_t x; int32_t y;)
TR_MESSAGE_TYPE(noenc_t, int v;)
TR_MESSAGE_TYPE(enconly_t, int v;)
TR_MESSAGE_TYPE(big_t, unsigned char payload[1000];)
TR_MESSAGE_TYPE(sys_t, int v;)
TR_MESSAGE_TYPE(any_t, int got;)

static _Atomic uint64_t rec_dtor_calls;

static void rec_dtor(void *msg) {
  rec_t *m = msg;
  free(m->name);
  m->name = NULL;
  atomic_fetch_add(&rec_dtor_calls, 1);
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n) {
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

static int rec_encode(const void *msg, struct msgpack_packer *pk) {
  const rec_t *m = msg;
  msgpack_pack_array(pk, 4);
  msgpack_pack_int64(pk, m->seq);
  if (m->name != NULL)
    pack_str(pk, m->name, strlen(m->name));
  else
    msgpack_pack_nil(pk);
  if (m->flag)
    msgpack_pack_true(pk);
  else
    msgpack_pack_false(pk);
  msgpack_pack_double(pk, m->ratio);
  return 0;
}

/* Validates everything before allocating, so a failure leaks nothing. */
static int rec_decode(const struct msgpack_object *o, void *msg) {
  rec_t *m = msg;
  const msgpack_object *a;
  if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 4)
    return TR_ECODEC;
  a = o->via.array.ptr;
  if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
      a[0].type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
    return TR_ECODEC;
  if (a[1].type != MSGPACK_OBJECT_STR && a[1].type != MSGPACK_OBJECT_NIL)
    return TR_ECODEC;
  if (a[2].type != MSGPACK_OBJECT_BOOLEAN)
    return TR_ECODEC;
  if (a[3].type != MSGPACK_OBJECT_FLOAT64 &&
      a[3].type != MSGPACK_OBJECT_FLOAT32)
    return TR_ECODEC;
  m->seq = a[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER
               ? (int64_t)a[0].via.u64
               : a[0].via.i64;
  if (a[1].type == MSGPACK_OBJECT_STR) {
    m->name = strndup(a[1].via.str.ptr, a[1].via.str.size);
    if (m->name == NULL)
      return TR_ENOMEM;
  }
  m->flag = a[2].via.boolean;
  m->ratio = a[3].via.f64;
  return 0;
}

static int pt_encode(const void *msg, struct msgpack_packer *pk) {
  const pt_t *m = msg;
  msgpack_pack_array(pk, 2);
  msgpack_pack_int32(pk, m->x);
  msgpack_pack_int32(pk, m->y);
  return 0;
}

static int pt_decode(const struct msgpack_object *o, void *msg) {
  pt_t *m = msg;
  const msgpack_object *a;
  if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2)
    return TR_ECODEC;
  a = o->via.array.ptr;
  for (int i = 0; i < 2; i++)
    if (a[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
        a[i].type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
      return TR_ECODEC;
  m->x = a[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int32_t)a[0].via.u64
                                                      : (int32_t)a[0].via.i64;
  m->y = a[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int32_t)a[1].via.u64
                                                      : (int32_t)a[1].via.i64;
  return 0;
}

static int enconly_encode(const void *msg, struct msgpack_packer *pk) {
  msgpack_pack_int(pk, ((const enconly_t *)msg)->v);
  return 0;
}

TR_MESSAGE_DEFINE(rec_t, .dtor = rec_dtor, .encode = rec_encode,
                  .decode = rec_decode);
TR_MESSAGE_DEFINE(pt_t, .encode = pt_encode, .decode = pt_decode);
TR_MESSAGE_DEFINE(noenc_t);
TR_MESSAGE_DEFINE(enconly_t, .encode = enconly_encode);
TR_MESSAGE_DEFINE(big_t);
TR_MESSAGE_DEFINE(sys_t, .flags = TR_MSG_SYSTEM);

/* Takes any payload: the limit tests shape the payload freely. */
static int any_decode(const struct msgpack_object *o, void *msg) {
  (void)o;
  ((any_t *)msg)->got = 1;
  return 0;
}
TR_MESSAGE_DEFINE(any_t, .decode = any_decode);
static const tr_msgtype_t *const any_types[] = {TR_TYPE(any_t)};

static const tr_msgtype_t *const all_types[] = {TR_TYPE(pt_t),
                                                TR_TYPE(enconly_t),
                                                TR_TYPE(rec_t)};
#define NALL (sizeof(all_types) / sizeof(all_types[0]))

static rec_t *rec_make(int64_t seq, const char *name, int flag,
                       double ratio) {
  rec_t *m = rec_t_new();
  ck_assert_ptr_nonnull(m);
  m->seq = seq;
  m->name = name != NULL ? strdup(name) : NULL;
  m->flag = flag;
  m->ratio = ratio;
  return m;
}

/* ---- descriptors and allocation ---------------------------------------- */

START_TEST(test_tr_message_define_descriptor) {
  ck_assert_uint_eq(offsetof(rec_t, hdr), 0);
  ck_assert_str_eq(TR_TYPE(rec_t)->name, "rec_t");
  ck_assert_str_eq(TR_TYPE(pt_t)->name, "pt_t");
  ck_assert_uint_eq(TR_TYPE(rec_t)->size, sizeof(rec_t));
  ck_assert_uint_eq(TR_TYPE(big_t)->size, sizeof(big_t));
  ck_assert_uint_eq(TR_TYPE(rec_t)->flags, 0);
  ck_assert_uint_eq(TR_TYPE(sys_t)->flags, TR_MSG_SYSTEM);
  ck_assert(TR_TYPE(rec_t)->dtor == rec_dtor);
  ck_assert(TR_TYPE(rec_t)->encode == rec_encode);
  ck_assert(TR_TYPE(rec_t)->decode == rec_decode);
  ck_assert(TR_TYPE(noenc_t)->dtor == NULL);
  ck_assert(TR_TYPE(noenc_t)->encode == NULL);
  ck_assert(TR_TYPE(noenc_t)->decode == NULL);
  {
    sys_t *m = sys_t_new();
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_eq(tr_msg_type(m), TR_TYPE(sys_t));
    ck_assert_uint_eq(tr_msg_type(m)->flags & TR_MSG_SYSTEM, TR_MSG_SYSTEM);
    tr_msg_free(m);
  }
}
END_TEST

START_TEST(test_tr_msg_new_zeroed_typed) {
  /* Allocate, dirty and free repeatedly: recycled memory must come back
   * zeroed too. */
  for (int round = 0; round < 200; round++) {
    big_t *b = big_t_new();
    pt_t *p = tr_msg_new(TR_TYPE(pt_t));
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_eq(tr_msg_type(b), TR_TYPE(big_t));
    ck_assert_ptr_eq(tr_msg_type(p), TR_TYPE(pt_t));
    ck_assert(tr_ref_is_null(tr_msg_sender(b)));
    ck_assert_uint_eq(b->hdr.tag, 0);
    for (size_t i = 0; i < sizeof(b->payload); i++)
      ck_assert_msg(b->payload[i] == 0, "payload[%zu] = %u in round %d", i,
                    b->payload[i], round);
    ck_assert_int_eq(p->x, 0);
    ck_assert_int_eq(p->y, 0);
    memset(b->payload, 0xa5, sizeof(b->payload));
    p->x = -1;
    p->y = -1;
    tr_msg_free(b);
    tr_msg_free(p);
  }
}
END_TEST

START_TEST(test_tr_msg_free_runs_dtor) {
  rec_t *m;
  atomic_store(&rec_dtor_calls, 0);
  m = rec_make(1, "owned string", 1, 0.5);
  tr_msg_free(m);
  ck_assert_uint_eq(atomic_load(&rec_dtor_calls), 1);
  tr_msg_free(NULL);
  ck_assert_uint_eq(atomic_load(&rec_dtor_calls), 1);
  /* A type without destructor is freed without one. */
  tr_msg_free(noenc_t_new());
  ck_assert_uint_eq(atomic_load(&rec_dtor_calls), 1);
}
END_TEST

/* ---- codec ------------------------------------------------------------- */

static void encode_ok(const void *msg, msgpack_sbuffer *sb) {
  msgpack_sbuffer_init(sb);
  ck_assert_int_eq(tr_msg_encode(msg, sb), 0);
  ck_assert_uint_gt(sb->size, 0);
}

START_TEST(test_tr_msg_encode_layout) {
  msgpack_sbuffer sb;
  msgpack_unpacked up;
  size_t off = 0;
  rec_t *m = rec_make(-7, "abc", 1, 2.5);
  encode_ok(m, &sb);
  msgpack_unpacked_init(&up);
  ck_assert_int_eq(msgpack_unpack_next(&up, sb.data, sb.size, &off),
                   MSGPACK_UNPACK_SUCCESS);
  ck_assert_uint_eq(off, sb.size); /* one object, nothing after it */
  ck_assert_int_eq(up.data.type, MSGPACK_OBJECT_ARRAY);
  ck_assert_uint_eq(up.data.via.array.size, 2);
  ck_assert_int_eq(up.data.via.array.ptr[0].type, MSGPACK_OBJECT_STR);
  ck_assert_uint_eq(up.data.via.array.ptr[0].via.str.size, 5);
  ck_assert(memcmp(up.data.via.array.ptr[0].via.str.ptr, "rec_t", 5) == 0);
  ck_assert_int_eq(up.data.via.array.ptr[1].type, MSGPACK_OBJECT_ARRAY);
  ck_assert_uint_eq(up.data.via.array.ptr[1].via.array.size, 4);
  msgpack_unpacked_destroy(&up);
  msgpack_sbuffer_destroy(&sb);
  tr_msg_free(m);
}
END_TEST

START_TEST(test_tr_msg_decode_roundtrip) {
  static const struct {
    int64_t seq;
    const char *name;
    int flag;
    double ratio;
  } cases[] = {
      {0, "", 0, 0.0},
      {42, "hello", 1, 3.25},
      {-1234567890123ll, NULL, 0, -1e300},
      {INT64_MAX, "x", 1, 1e-300},
      {INT64_MIN, "a longer name that needs more than 31 bytes of str", 0,
       0.1},
  };
  atomic_store(&rec_dtor_calls, 0);
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    msgpack_sbuffer sb;
    void *out = NULL;
    rec_t *d;
    rec_t *m = rec_make(cases[i].seq, cases[i].name, cases[i].flag,
                        cases[i].ratio);
    encode_ok(m, &sb);
    ck_assert_int_eq(tr_msg_decode(sb.data, sb.size, all_types, NALL, &out),
                     0);
    ck_assert_ptr_nonnull(out);
    ck_assert_ptr_ne(out, m);
    d = out;
    ck_assert_ptr_eq(tr_msg_type(d), TR_TYPE(rec_t));
    ck_assert_int_eq(d->seq, cases[i].seq);
    ck_assert_int_eq(d->flag, cases[i].flag);
    ck_assert(d->ratio == cases[i].ratio);
    if (cases[i].name == NULL) {
      ck_assert_ptr_null(d->name);
    } else {
      ck_assert_ptr_nonnull(d->name);
      ck_assert_ptr_ne(d->name, m->name);
      ck_assert_str_eq(d->name, cases[i].name);
    }
    tr_msg_free(d);
    tr_msg_free(m);
    msgpack_sbuffer_destroy(&sb);
  }
  ck_assert_uint_eq(atomic_load(&rec_dtor_calls), 10);
}
END_TEST

START_TEST(test_tr_msg_decode_picks_type_by_name) {
  msgpack_sbuffer sb;
  void *out = NULL;
  pt_t *p = pt_t_new();
  ck_assert_ptr_nonnull(p);
  p->x = -5;
  p->y = 77;
  encode_ok(p, &sb);
  ck_assert_int_eq(tr_msg_decode(sb.data, sb.size, all_types, NALL, &out), 0);
  ck_assert_ptr_eq(tr_msg_type(out), TR_TYPE(pt_t));
  ck_assert_int_eq(((pt_t *)out)->x, -5);
  ck_assert_int_eq(((pt_t *)out)->y, 77);
  tr_msg_free(out);
  /* The only candidate. */
  out = NULL;
  ck_assert_int_eq(tr_msg_decode(sb.data, sb.size, &all_types[0], 1, &out),
                   0);
  ck_assert_ptr_eq(tr_msg_type(out), TR_TYPE(pt_t));
  tr_msg_free(out);
  msgpack_sbuffer_destroy(&sb);
  tr_msg_free(p);
}
END_TEST

START_TEST(test_tr_msg_encode_no_encoder) {
  msgpack_sbuffer sb;
  noenc_t *m = noenc_t_new();
  ck_assert_ptr_nonnull(m);
  msgpack_sbuffer_init(&sb);
  ck_assert_int_eq(tr_msg_encode(m, &sb), TR_ECODEC);
  msgpack_sbuffer_destroy(&sb);
  tr_msg_free(m);
}
END_TEST

START_TEST(test_tr_msg_decode_no_decoder) {
  msgpack_sbuffer sb;
  void *out = NULL;
  enconly_t *m = enconly_t_new();
  ck_assert_ptr_nonnull(m);
  m->v = 3;
  encode_ok(m, &sb);
  ck_assert_int_eq(tr_msg_decode(sb.data, sb.size, all_types, NALL, &out),
                   TR_ECODEC);
  msgpack_sbuffer_destroy(&sb);
  tr_msg_free(m);
}
END_TEST

START_TEST(test_tr_msg_decode_unknown_type) {
  msgpack_sbuffer sb;
  void *out = NULL;
  const tr_msgtype_t *const only_pt[] = {TR_TYPE(pt_t)};
  rec_t *m = rec_make(1, "n", 0, 0);
  encode_ok(m, &sb);
  ck_assert_int_eq(tr_msg_decode(sb.data, sb.size, only_pt, 1, &out),
                   TR_ECODEC);
  ck_assert_int_eq(tr_msg_decode(sb.data, sb.size, all_types, 0, &out),
                   TR_ECODEC);
  msgpack_sbuffer_destroy(&sb);
  tr_msg_free(m);
}
END_TEST

START_TEST(test_tr_msg_decode_truncated) {
  msgpack_sbuffer sb;
  rec_t *m = rec_make(99, "truncate me", 1, 9.75);
  encode_ok(m, &sb);
  for (size_t len = 0; len < sb.size; len++) {
    void *out = NULL;
    ck_assert_msg(tr_msg_decode(sb.data, len, all_types, NALL, &out) ==
                      TR_ECODEC,
                  "prefix of %zu of %zu bytes was not TR_ECODEC", len,
                  sb.size);
  }
  msgpack_sbuffer_destroy(&sb);
  tr_msg_free(m);
}
END_TEST

/* Packs [name(namelen bytes), <rec payload>] by hand. */
static void pack_named(msgpack_sbuffer *sb, const char *name, size_t namelen) {
  msgpack_packer pk;
  rec_t tmp;
  memset(&tmp, 0, sizeof(tmp));
  tmp.seq = 5;
  msgpack_sbuffer_init(sb);
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 2);
  pack_str(&pk, name, namelen);
  rec_encode(&tmp, &pk);
}

START_TEST(test_tr_msg_decode_malformed) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  void *out = NULL;
  static const char junk[] = "\xc1\xc1\xc1\xc1"; /* 0xc1 is never used */

  ck_assert_int_eq(tr_msg_decode(junk, 4, all_types, NALL, &out), TR_ECODEC);
  ck_assert_int_eq(tr_msg_decode(junk, 0, all_types, NALL, &out), TR_ECODEC);

  /* Well-formed msgpack of the wrong shape. */
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_int(&pk, 7); /* not an array */
  ck_assert_int_eq(tr_msg_decode(sb.data, sb.size, all_types, NALL, &out),
                   TR_ECODEC);
  msgpack_sbuffer_clear(&sb);
  msgpack_pack_array(&pk, 0); /* empty array */
  ck_assert_int_eq(tr_msg_decode(sb.data, sb.size, all_types, NALL, &out),
                   TR_ECODEC);
  msgpack_sbuffer_clear(&sb);
  msgpack_pack_array(&pk, 1); /* a name and no payload */
  pack_str(&pk, "pt_t", 4);
  ck_assert_int_eq(tr_msg_decode(sb.data, sb.size, all_types, NALL, &out),
                   TR_ECODEC);
  msgpack_sbuffer_clear(&sb);
  msgpack_pack_array(&pk, 2); /* the name is not a string */
  msgpack_pack_int(&pk, 12);
  msgpack_pack_array(&pk, 2);
  msgpack_pack_int(&pk, 1);
  msgpack_pack_int(&pk, 2);
  ck_assert_int_eq(tr_msg_decode(sb.data, sb.size, all_types, NALL, &out),
                   TR_ECODEC);
  msgpack_sbuffer_clear(&sb);
  msgpack_pack_map(&pk, 1); /* a map, not an array */
  pack_str(&pk, "pt_t", 4);
  msgpack_pack_int(&pk, 1);
  ck_assert_int_eq(tr_msg_decode(sb.data, sb.size, all_types, NALL, &out),
                   TR_ECODEC);
  msgpack_sbuffer_clear(&sb);
  msgpack_pack_array(&pk, 2); /* right name, payload the decoder rejects */
  pack_str(&pk, "pt_t", 4);
  pack_str(&pk, "oops", 4);
  ck_assert_int_eq(tr_msg_decode(sb.data, sb.size, all_types, NALL, &out),
                   TR_ECODEC);
  msgpack_sbuffer_destroy(&sb);

  /* Names that only resemble a candidate's must not match it. */
  pack_named(&sb, "rec", 3);
  ck_assert_int_eq(tr_msg_decode(sb.data, sb.size, all_types, NALL, &out),
                   TR_ECODEC);
  msgpack_sbuffer_destroy(&sb);
  pack_named(&sb, "rec_tx", 6);
  ck_assert_int_eq(tr_msg_decode(sb.data, sb.size, all_types, NALL, &out),
                   TR_ECODEC);
  msgpack_sbuffer_destroy(&sb);
  pack_named(&sb, "rec_t\0", 6);
  ck_assert_int_eq(tr_msg_decode(sb.data, sb.size, all_types, NALL, &out),
                   TR_ECODEC);
  msgpack_sbuffer_destroy(&sb);
  /* ...while the exact name does (the hand-made packing is right). */
  pack_named(&sb, "rec_t", 5);
  ck_assert_int_eq(tr_msg_decode(sb.data, sb.size, all_types, NALL, &out), 0);
  ck_assert_int_eq(((rec_t *)out)->seq, 5);
  tr_msg_free(out);
  msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_tr_msg_decode_huge_container) {
  /* A few bytes declaring 2^32 - 1 elements: no crash, TR_ECODEC. */
  static const char a32[] = "\x92\xa5rec_t\xdd\xff\xff\xff\xff";
  static const char m32[] = "\x92\xa5rec_t\xdf\xff\xff\xff\xff";
  static const char s32[] = "\x92\xdb\xff\xff\xff\xff";
  void *out = NULL;
  ck_assert_int_eq(tr_msg_decode(a32, sizeof(a32) - 1, all_types, NALL, &out),
                   TR_ECODEC);
  ck_assert_int_eq(tr_msg_decode(m32, sizeof(m32) - 1, all_types, NALL, &out),
                   TR_ECODEC);
  ck_assert_int_eq(tr_msg_decode(s32, sizeof(s32) - 1, all_types, NALL, &out),
                   TR_ECODEC);
}
END_TEST

/* ---- limits ------------------------------------------------------------ */

/* ["any_t", <payload>] with the payload's header written by the caller. */
static void pack_any_head(msgpack_sbuffer *sb, msgpack_packer *pk) {
  msgpack_sbuffer_init(sb);
  msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
  msgpack_pack_array(pk, 2);
  pack_str(pk, "any_t", 5);
}

static int decode_any(const msgpack_sbuffer *sb, const tr_msg_limits_t *lim) {
  void *out = (void *)1;
  int rc = tr_msg_decode_ex(sb->data, sb->size, any_types, 1, lim, &out);
  if (rc == 0) {
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(((any_t *)out)->got, 1);
    tr_msg_free(out);
  } else {
    ck_assert_ptr_null(out);
  }
  return rc;
}

/* Containers nested `levels` deep in all, the message's own array being
 * the first; the innermost holds a nil, so every level is non-empty. */
static void pack_nested(msgpack_sbuffer *sb, unsigned levels) {
  msgpack_packer pk;
  pack_any_head(sb, &pk);
  for (unsigned i = 1; i < levels; i++)
    msgpack_pack_array(&pk, 1);
  msgpack_pack_nil(&pk);
}

/* The peak resident set since reset_peak_rss(), in KiB. */
static void reset_peak_rss(void) {
  /* "5" resets the high-water mark (Linux 4.0+); without it the peak is
   * the process's, which only makes the check below weaker */
  FILE *f = fopen("/proc/self/clear_refs", "w");
  if (f != NULL) {
    fputs("5", f);
    fclose(f);
  }
}

static long peak_rss_kb(void) {
  char line[128];
  long kb = -1;
  FILE *f = fopen("/proc/self/status", "r");
  if (f != NULL) {
    while (fgets(line, sizeof(line), f) != NULL)
      if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
        break;
    fclose(f);
  }
  if (kb < 0) {
    struct rusage ru;
    ck_assert_int_eq(getrusage(RUSAGE_SELF, &ru), 0);
    kb = ru.ru_maxrss;
  }
  return kb;
}

START_TEST(test_tr_msg_decode_ex_huge_array) {
  /* ["any_t", [nil x 16 Mi]]: 16 MiB that msgpack-c alone would turn
   * into 16 Mi objects of 24 bytes (400 MB). It must be refused, under
   * any limits that do not allow that many objects, before anything is
   * built. */
  const size_t count = (size_t)16 << 20;
  const size_t hlen = 1 + 6 + 5;
  size_t len = hlen + count;
  char *buf = malloc(len);
  ck_assert_ptr_nonnull(buf);
  memcpy(buf, "\x92\xa5" "any_t" "\xdd", 8);
  buf[8] = (char)(count >> 24);
  buf[9] = (char)(count >> 16);
  buf[10] = (char)(count >> 8);
  buf[11] = (char)count;
  memset(buf + hlen, 0xc0, count); /* and touch every page now */
  tr_msg_limits_t lim;
  void *out = NULL;
  reset_peak_rss();
  long before = peak_rss_kb();

  /* the defaults: too long */
  ck_assert_int_eq(tr_msg_decode(buf, len, any_types, 1, &out),
                   TR_EMSGSIZE);
  ck_assert_ptr_null(out);
  /* long enough, the array too long */
  tr_msg_limits_init(&lim);
  lim.max_bytes = len;
  ck_assert_int_eq(tr_msg_decode_ex(buf, len, any_types, 1, &lim, &out),
                   TR_EMSGSIZE);
  /* any array length, too many objects */
  lim.max_items = UINT32_MAX;
  ck_assert_int_eq(tr_msg_decode_ex(buf, len, any_types, 1, &lim, &out),
                   TR_EMSGSIZE);
  lim.max_objects = count + 2; /* one short */
  ck_assert_int_eq(tr_msg_decode_ex(buf, len, any_types, 1, &lim, &out),
                   TR_EMSGSIZE);
  /* one nil short: malformed, still nothing built */
  lim.max_objects = count + 3;
  ck_assert_int_eq(tr_msg_decode_ex(buf, len - 1, any_types, 1, &lim, &out),
                   TR_ECODEC);

  long grew = peak_rss_kb() - before;
  ck_assert_msg(grew < 64 * 1024, "decoding grew the peak RSS by %ld KiB",
                grew);
  free(buf);
}
END_TEST

START_TEST(test_tr_msg_decode_ex_depth) {
  msgpack_sbuffer sb;
  tr_msg_limits_t lim;
  /* the default is the most msgpack-c decodes, and it does decode */
  pack_nested(&sb, TR_MSG_DEFAULT_MAX_DEPTH);
  ck_assert_int_eq(decode_any(&sb, NULL), 0);
  msgpack_sbuffer_destroy(&sb);
  pack_nested(&sb, TR_MSG_DEFAULT_MAX_DEPTH + 1);
  ck_assert_int_eq(decode_any(&sb, NULL), TR_EMSGSIZE);
  msgpack_sbuffer_destroy(&sb);
  /* a thousand levels: refused, not a deep recursion */
  pack_nested(&sb, 1000);
  ck_assert_int_eq(decode_any(&sb, NULL), TR_EMSGSIZE);
  msgpack_sbuffer_destroy(&sb);
  /* a lower limit */
  tr_msg_limits_init(&lim);
  lim.max_depth = 4;
  pack_nested(&sb, 4);
  ck_assert_int_eq(decode_any(&sb, &lim), 0);
  msgpack_sbuffer_destroy(&sb);
  pack_nested(&sb, 5);
  ck_assert_int_eq(decode_any(&sb, &lim), TR_EMSGSIZE);
  /* empty containers count too */
  msgpack_sbuffer_clear(&sb);
  {
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    pack_str(&pk, "any_t", 5);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 0);
  }
  ck_assert_int_eq(decode_any(&sb, &lim), 0);
  lim.max_depth = 3;
  ck_assert_int_eq(decode_any(&sb, &lim), TR_EMSGSIZE);
  /* more than msgpack-c can decode is a bad argument */
  lim.max_depth = TR_MSG_MAX_DEPTH + 1;
  ck_assert_int_eq(decode_any(&sb, &lim), TR_EINVAL);
  msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_tr_msg_decode_trailing_bytes) {
  msgpack_sbuffer sb;
  void *out = (void *)1;
  pt_t *p = pt_t_new();
  ck_assert_ptr_nonnull(p);
  p->x = 1;
  p->y = 2;
  encode_ok(p, &sb);
  size_t one = sb.size;
  /* one nil after the message */
  msgpack_sbuffer_write(&sb, "\xc0", 1);
  ck_assert_int_eq(tr_msg_decode(sb.data, sb.size, all_types, NALL, &out),
                   TR_ECODEC);
  ck_assert_ptr_null(out);
  /* two whole messages: one call decodes one */
  sb.size = one;
  ck_assert_int_eq(tr_msg_encode(p, &sb), 0);
  ck_assert_uint_eq(sb.size, 2 * one);
  ck_assert_int_eq(tr_msg_decode(sb.data, sb.size, all_types, NALL, &out),
                   TR_ECODEC);
  /* each of them alone is fine */
  ck_assert_int_eq(tr_msg_decode(sb.data + one, one, all_types, NALL, &out),
                   0);
  ck_assert_int_eq(((pt_t *)out)->y, 2);
  tr_msg_free(out);
  msgpack_sbuffer_destroy(&sb);
  tr_msg_free(p);
}
END_TEST

START_TEST(test_tr_msg_decode_ex_limits_honoured) {
  enum { N = 100 };
  msgpack_sbuffer sb;
  msgpack_packer pk;
  tr_msg_limits_t lim;

  /* ["any_t", [nil x N]]: N + 3 objects, an array of N items */
  pack_any_head(&sb, &pk);
  msgpack_pack_array(&pk, N);
  for (int i = 0; i < N; i++)
    msgpack_pack_nil(&pk);
  tr_msg_limits_init(&lim);
  ck_assert_int_eq(decode_any(&sb, &lim), 0);
  lim.max_bytes = sb.size;
  ck_assert_int_eq(decode_any(&sb, &lim), 0);
  lim.max_bytes = sb.size - 1;
  ck_assert_int_eq(decode_any(&sb, &lim), TR_EMSGSIZE);
  tr_msg_limits_init(&lim);
  lim.max_items = N;
  ck_assert_int_eq(decode_any(&sb, &lim), 0);
  lim.max_items = N - 1;
  ck_assert_int_eq(decode_any(&sb, &lim), TR_EMSGSIZE);
  tr_msg_limits_init(&lim);
  lim.max_objects = N + 3;
  ck_assert_int_eq(decode_any(&sb, &lim), 0);
  lim.max_objects = N + 2;
  ck_assert_int_eq(decode_any(&sb, &lim), TR_EMSGSIZE);
  msgpack_sbuffer_destroy(&sb);

  /* ["any_t", {i: nil for i < N}]: N pairs are N items and 2N objects */
  pack_any_head(&sb, &pk);
  msgpack_pack_map(&pk, N);
  for (int i = 0; i < N; i++) {
    msgpack_pack_int(&pk, i);
    msgpack_pack_nil(&pk);
  }
  tr_msg_limits_init(&lim);
  lim.max_items = N;
  ck_assert_int_eq(decode_any(&sb, &lim), 0);
  lim.max_items = N - 1;
  ck_assert_int_eq(decode_any(&sb, &lim), TR_EMSGSIZE);
  tr_msg_limits_init(&lim);
  lim.max_objects = 2 * N + 3;
  ck_assert_int_eq(decode_any(&sb, &lim), 0);
  lim.max_objects = 2 * N + 2;
  ck_assert_int_eq(decode_any(&sb, &lim), TR_EMSGSIZE);
  msgpack_sbuffer_destroy(&sb);

  /* objects are counted across containers: [[nil x N], [nil x N]] */
  pack_any_head(&sb, &pk);
  msgpack_pack_array(&pk, 2);
  for (int k = 0; k < 2; k++) {
    msgpack_pack_array(&pk, N);
    for (int i = 0; i < N; i++)
      msgpack_pack_nil(&pk);
  }
  tr_msg_limits_init(&lim);
  lim.max_items = N;
  lim.max_objects = 2 * N + 5;
  ck_assert_int_eq(decode_any(&sb, &lim), 0);
  lim.max_objects = 2 * N + 4;
  ck_assert_int_eq(decode_any(&sb, &lim), TR_EMSGSIZE);
  msgpack_sbuffer_destroy(&sb);

  /* the defaults take a message at their own limits */
  pack_any_head(&sb, &pk);
  msgpack_pack_array(&pk, TR_MSG_DEFAULT_MAX_ITEMS);
  for (unsigned i = 0; i < TR_MSG_DEFAULT_MAX_ITEMS; i++)
    msgpack_pack_nil(&pk);
  ck_assert_int_eq(decode_any(&sb, NULL), 0);
  msgpack_pack_nil(&pk); /* one item more: 65537 */
  ck_assert_uint_eq((unsigned char)sb.data[7], 0xdd); /* array 32 */
  sb.data[11]++;
  ck_assert_int_eq(decode_any(&sb, NULL), TR_EMSGSIZE);
  msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_tr_msg_decode_ex_limits_size) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  pack_any_head(&sb, &pk);
  msgpack_pack_array(&pk, 3);
  for (int i = 0; i < 3; i++)
    msgpack_pack_nil(&pk);

  tr_msg_limits_t lim;
  tr_msg_limits_init(&lim);
  ck_assert_uint_eq(lim.size, sizeof(lim));
  ck_assert_uint_eq(lim.max_bytes, 0);
  ck_assert_uint_eq(lim.max_depth, 0);
  ck_assert_uint_eq(lim.max_items, 0);
  ck_assert_uint_eq(lim.max_objects, 0);
  /* size 0 (written as {0}): this release's struct, all defaults */
  lim.size = 0;
  ck_assert_int_eq(decode_any(&sb, &lim), 0);
  lim.max_bytes = sb.size - 1;
  ck_assert_int_eq(decode_any(&sb, &lim), TR_EMSGSIZE);
  lim.size = 3; /* not even the size field */
  ck_assert_int_eq(decode_any(&sb, &lim), TR_EINVAL);

  /* an older caller knew only size and max_bytes: the rest is not read */
  memset(&lim, 0xff, sizeof(lim));
  lim.size = offsetof(tr_msg_limits_t, max_depth);
  lim.max_bytes = sb.size;
  ck_assert_int_eq(decode_any(&sb, &lim), 0);
  lim.max_bytes = sb.size - 1; /* what it knows is honoured */
  ck_assert_int_eq(decode_any(&sb, &lim), TR_EMSGSIZE);

  /* a newer caller: fields this library does not know must be 0 */
  struct {
    tr_msg_limits_t l;
    uint64_t later;
  } big;
  memset(&big, 0, sizeof(big));
  big.l.size = sizeof(big);
  big.l.max_items = 3;
  ck_assert_int_eq(decode_any(&sb, &big.l), 0);
  big.l.max_items = 2;
  ck_assert_int_eq(decode_any(&sb, &big.l), TR_EMSGSIZE);
  big.l.max_items = 3;
  big.later = 1;
  ck_assert_int_eq(decode_any(&sb, &big.l), TR_EINVAL);

  /* bad arguments */
  void *out = (void *)1;
  ck_assert_int_eq(tr_msg_decode_ex(NULL, 1, any_types, 1, NULL, &out),
                   TR_EINVAL);
  ck_assert_ptr_null(out);
  ck_assert_int_eq(tr_msg_decode_ex(sb.data, sb.size, NULL, 1, NULL, &out),
                   TR_EINVAL);
  ck_assert_int_eq(tr_msg_decode_ex(sb.data, sb.size, any_types, 1, NULL,
                                    NULL),
                   TR_EINVAL);
  msgpack_sbuffer_destroy(&sb);
}
END_TEST

#if !TU_TSAN /* see msg_suite() */
static uint64_t rng_state;
static uint64_t rng(void) {
  /* xorshift64*: deterministic so a failure can be reproduced. */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ull;
}

START_TEST(test_tr_msg_decode_garbage) {
  unsigned char buf[96];
  msgpack_sbuffer sb;
  rec_t *m = rec_make(31337, "mutate", 1, 1.5);
  rng_state = 0x9e3779b97f4a7c15ull;
  /* Random bytes. */
  for (int i = 0; i < 20000; i++) {
    size_t len = (size_t)(rng() % sizeof(buf));
    void *out = NULL;
    int rc;
    for (size_t j = 0; j < len; j++)
      buf[j] = (unsigned char)rng();
    if (len > 0 && i % 2 == 0)
      buf[0] = 0x92; /* start like a real message: a 2-array */
    rc = tr_msg_decode((const char *)buf, len, all_types, NALL, &out);
    ck_assert_msg(rc == 0 || rc == TR_ECODEC, "rc %d", rc);
    if (rc == 0)
      tr_msg_free(out);
  }
  /* Mutations of a valid encoding. */
  encode_ok(m, &sb);
  ck_assert_uint_le(sb.size, sizeof(buf));
  for (int i = 0; i < 20000; i++) {
    void *out = NULL;
    int rc;
    memcpy(buf, sb.data, sb.size);
    for (int k = 0; k < 1 + i % 3; k++)
      buf[rng() % sb.size] = (unsigned char)rng();
    rc = tr_msg_decode((const char *)buf, sb.size, all_types, NALL, &out);
    ck_assert_msg(rc == 0 || rc == TR_ECODEC, "rc %d", rc);
    if (rc == 0)
      tr_msg_free(out);
  }
  msgpack_sbuffer_destroy(&sb);
  tr_msg_free(m);
}
END_TEST
#endif

/* ---- typed references -------------------------------------------------- */

TR_TYPED_REF(pt_sink_ref)
TR_ACCEPTS(pt_sink_ref, pt_t)

static _Atomic uint64_t pt_sum;
static _Atomic uint64_t pt_seen;

static int pt_sink_on_pt(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  (void)state;
  atomic_fetch_add(&pt_sum, (uint64_t)((pt_t *)msg)->x);
  atomic_fetch_add(&pt_seen, 1);
  return 0;
}

static const tr_handler_t pt_sink_handlers[] = {
    {.type = TR_TYPE(pt_t), .fn = pt_sink_on_pt}};
static const tr_behavior_t pt_sink = {
    .name = "pt_sink",
    .handlers = TR_HANDLERS(pt_sink_handlers),
};

START_TEST(test_tr_typed_ref_send) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_ref_t r;
  pt_sink_ref to;
  pt_t *p;
  atomic_store(&pt_sum, 0);
  atomic_store(&pt_seen, 0);
  ck_assert_int_eq(tr_spawn(rt, &pt_sink, NULL, &r), 0);
  to = pt_sink_ref_from(r);
  ck_assert(tr_ref_eq(to.ref, r));
  for (int i = 1; i <= 10; i++) {
    p = pt_t_new();
    ck_assert_ptr_nonnull(p);
    p->x = i;
    ck_assert_int_eq(pt_sink_ref_send_pt_t(NULL, to, p), 0);
  }
  ck_assert(tu_wait_ge(&pt_seen, 10, 10000));
  ck_assert_uint_eq(atomic_load(&pt_sum), 55);
  ck_assert_int_eq(tr_actor_stop(r, TR_EXIT_NORMAL), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  /* A failed typed send consumes the message, as tr_send does (ASan
   * builds see a leak or a double free otherwise). */
  p = pt_t_new();
  ck_assert_ptr_nonnull(p);
  p->x = 1000;
  ck_assert_int_eq(pt_sink_ref_send_pt_t(NULL, to, p), TR_ENOACTOR);
  tu_runtime_finish(rt);
}
END_TEST

static Suite *msg_suite(void) {
  Suite *s = suite_create("msg");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_tr_message_define_descriptor);
  tcase_add_test(tc, test_tr_msg_new_zeroed_typed);
  tcase_add_test(tc, test_tr_msg_free_runs_dtor);
  tcase_add_test(tc, test_tr_msg_encode_layout);
  tcase_add_test(tc, test_tr_msg_decode_roundtrip);
  tcase_add_test(tc, test_tr_msg_decode_picks_type_by_name);
  tcase_add_test(tc, test_tr_msg_encode_no_encoder);
  tcase_add_test(tc, test_tr_msg_decode_no_decoder);
  tcase_add_test(tc, test_tr_msg_decode_unknown_type);
  tcase_add_test(tc, test_tr_msg_decode_truncated);
  tcase_add_test(tc, test_tr_msg_decode_malformed);
  tcase_add_test(tc, test_tr_msg_decode_huge_container);
  tcase_add_test(tc, test_tr_msg_decode_ex_huge_array);
  tcase_add_test(tc, test_tr_msg_decode_ex_depth);
  tcase_add_test(tc, test_tr_msg_decode_trailing_bytes);
  tcase_add_test(tc, test_tr_msg_decode_ex_limits_honoured);
  tcase_add_test(tc, test_tr_msg_decode_ex_limits_size);
#if !TU_TSAN
  /* Random input makes msgpack-c reserve memory for the container sizes it
   * declares (gigabytes); TSan then maps shadow for all of it and the test
   * takes minutes. It is single-threaded, so TSan adds nothing here. */
  tcase_add_test(tc, test_tr_msg_decode_garbage);
#endif
  tcase_add_test(tc, test_tr_typed_ref_send);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(msg_suite()); }
