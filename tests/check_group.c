/* SPDX-License-Identifier: MIT */
/*
 * Tests of sending one message to a group of refs (<troupe/actor.h>,
 * tr_send_group): every live member gets its own message with the
 * payload, the last one the original; dead members make the call return
 * the first error while the others still get theirs and *sent counts
 * them; a type with a destructor is refused without a clone function and
 * consumed, and with one every member owns its own copy (nothing leaks or
 * is freed twice); an empty group frees the message; an actor may send
 * the message it is handling to a group.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <troupe.h>

#include "testutil.h"

#define NMEMB 4

/* A type that owns nothing: byte copies are fine. */
TR_MESSAGE_TYPE(blob_t, uint64_t a; uint64_t b;)
TR_MESSAGE_DEFINE(blob_t);

/* A type that owns a buffer: needs a clone function. */
TR_MESSAGE_TYPE(owned_t, char *text;)
static _Atomic uint64_t owned_freed;
static void owned_dtor(void *m) {
  free(((owned_t *)m)->text);
  atomic_fetch_add(&owned_freed, 1);
}
TR_MESSAGE_DEFINE(owned_t, .dtor = owned_dtor);

static _Atomic uint64_t clones;
static void *owned_clone(const void *msg) {
  const owned_t *o = msg;
  owned_t *c = owned_t_new();
  if (c == NULL)
    return NULL;
  c->text = strdup(o->text);
  if (c->text == NULL) {
    tr_msg_free(c);
    return NULL;
  }
  atomic_fetch_add(&clones, 1);
  return c;
}

/* What each member saw, by its index (given at spawn). */
static _Atomic uint64_t got[NMEMB], got_sum[NMEMB], errors;
static _Atomic(void *) got_ptr[NMEMB];

static void reset(void) {
  for (int i = 0; i < NMEMB; i++) {
    atomic_store(&got[i], 0);
    atomic_store(&got_sum[i], 0);
    atomic_store(&got_ptr[i], NULL);
  }
  atomic_store(&errors, 0);
  atomic_store(&owned_freed, 0);
  atomic_store(&clones, 0);
}

typedef struct member {
  int index;
} member_t;

static int member_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  ((member_t *)state)->index = (int)(intptr_t)arg;
  return 0;
}

static int member_on_blob(tr_ctx_t *ctx, void *state, void *msg) {
  member_t *s = state;
  blob_t *b = msg;
  (void)ctx;
  atomic_fetch_add(&got[s->index], 1);
  atomic_fetch_add(&got_sum[s->index], b->a + b->b);
  return 0;
}

static int member_on_owned(tr_ctx_t *ctx, void *state, void *msg) {
  member_t *s = state;
  owned_t *o = msg;
  (void)ctx;
  if (o->text == NULL || strcmp(o->text, "shared") != 0)
    atomic_fetch_add(&errors, 1);
  atomic_store(&got_ptr[s->index], o->text);
  atomic_fetch_add(&got[s->index], 1);
  return 0;
}

static const tr_handler_t member_h[] = {
    {.type = TR_TYPE(blob_t), .fn = member_on_blob},
    {.type = TR_TYPE(owned_t), .fn = member_on_owned}};
static const tr_behavior_t member = {.name = "member",
                                     .state_size = sizeof(member_t),
                                     .init = member_init,
                                     .handlers = TR_HANDLERS(member_h)};

static void spawn_members(tr_runtime_t *rt, tr_ref_t *refs) {
  for (int i = 0; i < NMEMB; i++)
    ck_assert_int_eq(tr_spawn(rt, &member, (void *)(intptr_t)i, &refs[i]), 0);
}

/* A ref that names nothing any more: a freed handle's. */
static tr_ref_t dead_ref(tr_runtime_t *rt) {
  tr_handle_t *h;
  ck_assert_int_eq(tr_handle_new(rt, &h), 0);
  tr_ref_t r = tr_handle_ref(h);
  tr_handle_free(h);
  return r;
}

static blob_t *blob_new(uint64_t a, uint64_t b) {
  blob_t *m = blob_t_new();
  ck_assert_ptr_nonnull(m);
  m->a = a;
  m->b = b;
  return m;
}

START_TEST(test_tr_send_group_all_members) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t refs[NMEMB];
  size_t sent = 99;
  reset();
  spawn_members(rt, refs);
  ck_assert_int_eq(tr_send_group(NULL, refs, NMEMB, blob_new(40, 2), NULL,
                                 &sent),
                   0);
  ck_assert_uint_eq(sent, NMEMB);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 30000), 0);
  for (int i = 0; i < NMEMB; i++) {
    ck_assert_uint_eq(atomic_load(&got[i]), 1);
    ck_assert_uint_eq(atomic_load(&got_sum[i]), 42);
  }
  tu_runtime_finish(rt);
}
END_TEST

/* Dead members: the first error is returned, the live members still get
 * the message, and every copy for a dead one is freed. */
START_TEST(test_tr_send_group_dead_members) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t refs[NMEMB];
  size_t sent = 99;
  reset();
  spawn_members(rt, refs);
  refs[1] = dead_ref(rt);
  refs[3] = dead_ref(rt); /* the last one: the original is freed */
  owned_t *o = owned_t_new();
  ck_assert_ptr_nonnull(o);
  o->text = strdup("shared");
  ck_assert_int_eq(tr_send_group(NULL, refs, NMEMB, o, owned_clone, &sent),
                   TR_ENOACTOR);
  ck_assert_uint_eq(sent, 2);
  ck_assert_uint_eq(atomic_load(&clones), NMEMB - 1);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 30000), 0);
  ck_assert_uint_eq(atomic_load(&got[0]), 1);
  ck_assert_uint_eq(atomic_load(&got[2]), 1);
  /* each member had its own buffer */
  ck_assert_ptr_ne(atomic_load(&got_ptr[0]), atomic_load(&got_ptr[2]));
  ck_assert_uint_eq(atomic_load(&owned_freed), NMEMB);
  ck_assert_uint_eq(atomic_load(&errors), 0);
  /* a plain type too, and a NULL `sent` */
  ck_assert_int_eq(tr_send_group(NULL, refs, NMEMB, blob_new(1, 2), NULL,
                                 NULL),
                   TR_ENOACTOR);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 30000), 0);
  ck_assert_uint_eq(atomic_load(&got_sum[0]), 3);
  ck_assert_uint_eq(atomic_load(&got_sum[2]), 3);
  tu_runtime_finish(rt);
}
END_TEST

/* Byte copies of a type that owns memory would free it twice: refused,
 * and the message is consumed like any refused send. */
START_TEST(test_tr_send_group_dtor_needs_clone) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_ref_t refs[NMEMB];
  size_t sent = 99;
  reset();
  spawn_members(rt, refs);
  owned_t *o = owned_t_new();
  ck_assert_ptr_nonnull(o);
  o->text = strdup("shared");
  ck_assert_int_eq(tr_send_group(NULL, refs, NMEMB, o, NULL, &sent),
                   TR_EINVAL);
  ck_assert_uint_eq(sent, 0);
  ck_assert_uint_eq(atomic_load(&owned_freed), 1);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 30000), 0);
  for (int i = 0; i < NMEMB; i++)
    ck_assert_uint_eq(atomic_load(&got[i]), 0);
  tu_runtime_finish(rt);
}
END_TEST

START_TEST(test_tr_send_group_edges) {
  tr_runtime_t *rt = tu_runtime(1, 0, 1);
  tr_ref_t refs[NMEMB];
  size_t sent = 99;
  reset();
  spawn_members(rt, refs);
  /* an empty group frees the message */
  owned_t *o = owned_t_new();
  ck_assert_ptr_nonnull(o);
  ck_assert_int_eq(tr_send_group(NULL, refs, 0, o, owned_clone, &sent), 0);
  ck_assert_uint_eq(sent, 0);
  ck_assert_uint_eq(atomic_load(&owned_freed), 1);
  /* no refs for n members: refused, consumed */
  o = owned_t_new();
  ck_assert_ptr_nonnull(o);
  ck_assert_int_eq(tr_send_group(NULL, NULL, 2, o, owned_clone, &sent),
                   TR_EINVAL);
  ck_assert_uint_eq(atomic_load(&owned_freed), 2);
  /* not a message: refused, untouched */
  ck_assert_int_eq(tr_send_group(NULL, refs, NMEMB, NULL, NULL, &sent),
                   TR_EINVAL);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 30000), 0);
  for (int i = 0; i < NMEMB; i++)
    ck_assert_uint_eq(atomic_load(&got[i]), 0);
  tu_runtime_finish(rt);
}
END_TEST

/* An actor sends the message it is handling to a group: the members get
 * copies and the original, and the runtime does not free it twice. */
typedef struct fan {
  tr_ref_t refs[NMEMB];
} fan_t;

static _Atomic int fan_rc = 1;
static _Atomic uint64_t fan_sent;

static int fan_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  memcpy(((fan_t *)state)->refs, arg, sizeof(((fan_t *)state)->refs));
  return 0;
}

static int fan_on_blob(tr_ctx_t *ctx, void *state, void *msg) {
  fan_t *f = state;
  size_t sent = 0;
  atomic_store(&fan_rc, tr_send_group(ctx, f->refs, NMEMB, msg, NULL, &sent));
  atomic_store(&fan_sent, sent);
  return 0;
}

static const tr_handler_t fan_h[] = {
    {.type = TR_TYPE(blob_t), .fn = fan_on_blob}};
static const tr_behavior_t fan = {.name = "fan",
                                  .state_size = sizeof(fan_t),
                                  .init = fan_init,
                                  .handlers = TR_HANDLERS(fan_h)};

START_TEST(test_tr_send_group_from_handler) {
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t refs[NMEMB], f;
  reset();
  spawn_members(rt, refs);
  refs[NMEMB - 1] = dead_ref(rt); /* the original's send fails */
  ck_assert_int_eq(tr_spawn(rt, &fan, refs, &f), 0);
  ck_assert_int_eq(tr_send(NULL, f, blob_new(5, 5)), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 30000), 0);
  ck_assert_int_eq(atomic_load(&fan_rc), TR_ENOACTOR);
  ck_assert_uint_eq(atomic_load(&fan_sent), NMEMB - 1);
  for (int i = 0; i < NMEMB - 1; i++)
    ck_assert_uint_eq(atomic_load(&got_sum[i]), 10);
  /* all alive: the original goes to the last member */
  spawn_members(rt, refs);
  ck_assert_int_eq(tr_actor_stop(f, TR_EXIT_NORMAL), 0);
  ck_assert_int_eq(tr_spawn(rt, &fan, refs, &f), 0);
  reset();
  ck_assert_int_eq(tr_send(NULL, f, blob_new(5, 6)), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 30000), 0);
  ck_assert_int_eq(atomic_load(&fan_rc), 0);
  ck_assert_uint_eq(atomic_load(&fan_sent), NMEMB);
  for (int i = 0; i < NMEMB; i++)
    ck_assert_uint_eq(atomic_load(&got_sum[i]), 11);
  tu_runtime_finish(rt);
}
END_TEST

static Suite *group_suite(void) {
  Suite *s = suite_create("group");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_tr_send_group_all_members);
  tcase_add_test(tc, test_tr_send_group_dead_members);
  tcase_add_test(tc, test_tr_send_group_dtor_needs_clone);
  tcase_add_test(tc, test_tr_send_group_edges);
  tcase_add_test(tc, test_tr_send_group_from_handler);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run(group_suite()); }
