/* SPDX-License-Identifier: MIT */
/*
 * Message memory and the runtime's own message types. A message is
 * allocated once by its sender and freed once by whoever owns it last;
 * freeing an unanswered request tells the asker (TR_ENOREPLY).
 */
#include "internal.h"
#include "mem.h"

const tr_msgtype_t tr__stop_type = {
    .name = "tr.stop", .size = sizeof(tr__stop_msg_t), .flags = TR_MSG_SYSTEM};
const tr_msgtype_t tr__noreply_type = {
    .name = "tr.noreply", .size = sizeof(tr__noreply_msg_t)};

void *tr_msg_new(const tr_msgtype_t *type) {
  if (!type || type->size < sizeof(tr_msg_t)) return NULL;
  tr_msg_t *m = tr__zalloc(type->size);
  if (m) m->type = type;
  return m;
}

/* Frees m; an unanswered request first produces a TR_ENOREPLY reply. */
void tr__msg_release(tr_msg_t *m) {
  if (m->tag && !(m->tag & TR__TAG_REPLY) && m->sender) {
    tr__noreply_msg_t *r = tr_msg_new(&tr__noreply_type);
    if (r) {
      r->status = TR_ENOREPLY;
      r->hdr.tag = m->tag | TR__TAG_REPLY;
      tr_ref_t to = {m->sender};
      tr_runtime_t *rt = atomic_load(&tr__runtimes[tr__ref_rt(to.id)]);
      tr__worker_t *w = rt ? tr__current_worker(rt) : NULL;
      if (tr__send_raw(w, NULL, to, &r->hdr, 0) != 0) {
        tr__free(r, sizeof(*r));
        if (rt)
          atomic_fetch_add_explicit(&rt->dead_letters, 1, memory_order_relaxed);
      }
    }
  }
  const tr_msgtype_t *t = m->type;
  if (t->dtor) t->dtor(m);
  tr__free(m, t->size);
}

void tr_msg_free(void *msg) {
  if (msg) tr__msg_release(msg);
}
