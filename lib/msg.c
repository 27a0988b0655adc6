/* SPDX-License-Identifier: MIT */
/*
 * Message memory and the runtime's own message types. A message is
 * allocated once by its sender and freed once by whoever owns it last;
 * freeing an unanswered request tells the asker (TR_ENOREPLY).
 */
#include "internal.h"
#include "mem.h"

#ifdef TR_HAVE_JEMALLOC
#include <pthread.h>

__thread tr__mcache_t tr__mc __attribute__((tls_model("initial-exec")));
uint32_t tr__mc_cap;
static pthread_key_t mc_key;
static pthread_once_t mc_once = PTHREAD_ONCE_INIT;

/* The free lists hand a block of class c out for any size from
 * 16(c-1)+1 to 16c: only right if jemalloc gives all of them the same
 * class (a jemalloc built with an 8-byte quantum does not). */
__attribute__((constructor)) static void mc_check_classes(void) {
  for (size_t c = 2; c < TR__MC_CLASSES; c++)
    if (nallocx(((c - 1) << 4) + 1, 0) != c << 4 || nallocx(c << 4, 0) != c << 4)
      return;
  tr__mc_cap = TR__MC_CAP;
}

/* The thread exits: its cached blocks go back to jemalloc, and what it
 * frees from now on (other destructors may run after this one) goes
 * straight there. */
static void mc_flush(void *unused) {
  (void)unused;
  for (size_t c = 2; c < TR__MC_CLASSES; c++) {
    void *p = tr__mc.head[c];
    while (p) {
      void *nx = *(void **)p;
      sdallocx(p, c << 4, 0);
      p = nx;
    }
    tr__mc.head[c] = NULL;
    tr__mc.n[c] = UINT32_MAX;
  }
}

static void mc_key_init(void) {
  if (pthread_key_create(&mc_key, mc_flush) != 0) abort();
}

/* First block cached by this thread: arrange for mc_flush at its exit
 * (pthread runs the destructor when the value is not NULL). */
void tr__mc_register(void) {
  pthread_once(&mc_once, mc_key_init);
  tr__mc.registered = 1;
  pthread_setspecific(mc_key, &tr__mc);
}
#endif

/* Debug builds mark a freed message: its spare header word gets
 * MSG_FREED, and its type is kept in the sender field (the allocator may
 * overwrite the first two words of a freed block, not the next ones), so
 * that freeing or sending it again names its type. A new message is zeroed
 * whole. Release builds write nothing. */
#define MSG_FREED 0xf7eed00du

#ifdef TR_DEBUG
static void msg_check_live(const tr_msg_t *m, const char *fn,
                           const char *what) {
  if (__builtin_expect(m->reserved_ == MSG_FREED, 0)) {
    const tr_msgtype_t *t = (const tr_msgtype_t *)(uintptr_t)m->sender;
    tr__fatal(fn, "message %s (type %s)", what, t && t->name ? t->name : "?");
  }
}
void tr__msg_check_send(const tr_msg_t *m, const char *fn) {
  msg_check_live(m, fn, "sent after it was freed");
}
#endif

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
#ifdef TR_DEBUG
  msg_check_live(m, __func__, "freed twice");
#endif
  if (m->tag && !(m->tag & TR__TAG_REPLY) && m->sender) {
    tr__noreply_msg_t *r = tr_msg_new(&tr__noreply_type);
    if (r) {
      r->status = TR_ENOREPLY;
      r->hdr.tag = m->tag | TR__TAG_REPLY;
      tr_ref_t to = {m->sender};
      tr_runtime_t *rt = tr__ref_runtime(to.id);
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
#ifdef TR_DEBUG
  /* volatile: plain stores just before a free are optimised away */
  *(volatile uint32_t *)&m->reserved_ = MSG_FREED;
  *(volatile uint64_t *)&m->sender = (uint64_t)(uintptr_t)t;
#endif
  tr__free(m, t->size);
}

void tr_msg_free(void *msg) {
#ifdef TR_DEBUG
  if (msg) msg_check_live(msg, __func__, "freed twice");
#endif
  if (msg) tr__msg_release(msg);
}
