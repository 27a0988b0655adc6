/* SPDX-License-Identifier: MIT */
/*
 * Sending one message to a group of refs. A message has one owner, so a
 * group send makes one message per member: the members but the last get
 * copies, the last gets the message itself. A copy is either a byte copy
 * of the payload (only sound for types that own nothing, hence refused
 * for types with a destructor) or made by the caller's clone function.
 * Built on tr_send: every member is an ordinary send, with its codes.
 */
#include "internal.h"

#include <string.h>

/* A fresh message with msg's payload: the header is the new one's (no
 * tag, no flags), so a copy of a request is a plain message. */
static void *byte_copy(const void *msg) {
  const tr_msgtype_t *t = tr_msg_type(msg);
  tr_msg_t *c = tr_msg_new(t);
  if (c && t->size > sizeof(tr_msg_t))
    memcpy((char *)c + sizeof(tr_msg_t), (const char *)msg + sizeof(tr_msg_t),
           t->size - sizeof(tr_msg_t));
  return c;
}

int tr_send_group(tr_ctx_t *ctx, const tr_ref_t *to, size_t n, void *msg,
                  tr_msg_clone_fn clone, size_t *sent) {
  tr_msg_t *m = msg;
  if (sent) *sent = 0;
  if (!m || !m->type) return TR_EINVAL; /* not a message: not touched */
  if ((n && !to) || (!clone && m->type->dtor))
    return tr__msg_drop_failed(ctx, m, TR_EINVAL);
  if (n == 0) return tr__msg_drop_failed(ctx, m, 0);
  int first = 0;
  size_t ok = 0;
  /* copies first: msg must stay untouched until the last member has it */
  for (size_t i = 0; i + 1 < n; i++) {
    void *c = clone ? clone(m) : byte_copy(m);
    int rc = c ? tr_send(ctx, to[i], c) : TR_ENOMEM;
    if (rc == 0) ok++;
    else if (!first) first = rc;
  }
  int rc = tr_send(ctx, to[n - 1], m);
  if (rc == 0) ok++;
  else if (!first) first = rc;
  if (sent) *sent = ok;
  return first;
}
