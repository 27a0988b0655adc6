/* SPDX-License-Identifier: MIT */
/*
 * The kqueue backend (FreeBSD, NetBSD, OpenBSD, macOS). One-shot interest
 * comes from EV_DISPATCH (a reported filter is disabled until EV_ENABLE),
 * which keeps the registration so that mod is one kevent() call. Read and
 * write are separate filters in kqueue; the udata rides on both.
 * kevent() changes are thread-safe, so TR__BK_MT_CTL is set.
 *
 * This file compiles to nothing on Linux, and it has not been run by the
 * project's CI (which is Linux only): treat it as untested until a BSD or
 * macOS builder runs the backend contract suite against it.
 */
#include "backend.h"

#if defined(TR_HAVE_KQUEUE_BACKEND)

#include <errno.h>
#include <stdlib.h>
#include <sys/event.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#include <troupe/errno.h>

typedef struct kq_state {
  int kq;
  struct kevent evs[256];
} kq_state_t;

static int kq_init(void **out) {
  kq_state_t *s = calloc(1, sizeof(*s));
  if (!s) return TR_ENOMEM;
  s->kq = kqueue();
  if (s->kq < 0) {
    int e = -errno;
    free(s);
    return e;
  }
  *out = s;
  return 0;
}

static void kq_fini(void *st) {
  kq_state_t *s = st;
  if (!s) return;
  if (close(s->kq) != 0) {
    /* the descriptor is released even when close reports an error */
  }
  free(s);
}

/* Sets both filters of fd: enabled (dispatch) when asked for, else
 * disabled. add registers them, mod only flips them. */
static int kq_set(kq_state_t *s, int fd, uint32_t events, uint64_t udata,
                  int adding) {
  struct kevent ch[2];
  u_short base = adding ? (EV_ADD | EV_DISPATCH) : 0;
  EV_SET(&ch[0], fd, EVFILT_READ,
         base | ((events & TR__EV_IN) ? EV_ENABLE : EV_DISABLE), 0, 0,
         (void *)(uintptr_t)udata);
  EV_SET(&ch[1], fd, EVFILT_WRITE,
         base | ((events & TR__EV_OUT) ? EV_ENABLE : EV_DISABLE), 0, 0,
         (void *)(uintptr_t)udata);
  if (kevent(s->kq, ch, 2, NULL, 0, NULL) != 0) return -errno;
  return 0;
}

static int kq_add(void *st, int fd, uint32_t events, uint64_t udata) {
  return kq_set(st, fd, events, udata, 1);
}

static int kq_mod(void *st, int fd, uint32_t events, uint64_t udata) {
  return kq_set(st, fd, events, udata, 0);
}

static int kq_del(void *st, int fd) {
  kq_state_t *s = st;
  struct kevent ch[2];
  EV_SET(&ch[0], fd, EVFILT_READ, EV_DELETE, 0, 0, NULL);
  EV_SET(&ch[1], fd, EVFILT_WRITE, EV_DELETE, 0, 0, NULL);
  /* EV_RECEIPT reports each change separately, so a filter that was
   * never added (ENOENT) is not an error for the other one. */
  ch[0].flags |= EV_RECEIPT;
  ch[1].flags |= EV_RECEIPT;
  struct kevent res[2];
  int n = kevent(s->kq, ch, 2, res, 2, NULL);
  if (n < 0) return -errno;
  for (int i = 0; i < n; i++)
    if ((res[i].flags & EV_ERROR) && res[i].data != 0 &&
        res[i].data != ENOENT)
      return -(int)res[i].data;
  return 0;
}

static int kq_wait(void *st, tr__bk_event_t *ev, int max, int timeout_ms) {
  kq_state_t *s = st;
  struct timespec ts, *tsp = NULL;
  if (timeout_ms >= 0) {
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
    tsp = &ts;
  }
  if (max > 256) max = 256;
  int n = kevent(s->kq, NULL, 0, s->evs, max, tsp);
  if (n < 0) return errno == EINTR ? 0 : -errno;
  for (int i = 0; i < n; i++) {
    uint32_t e = s->evs[i].filter == EVFILT_READ ? TR__EV_IN : TR__EV_OUT;
    if (s->evs[i].flags & EV_EOF) e |= TR__EV_HUP;
    if (s->evs[i].flags & EV_ERROR) e |= TR__EV_ERR;
    ev[i].udata = (uint64_t)(uintptr_t)s->evs[i].udata;
    ev[i].events = e;
    ev[i].res = 0;
  }
  return n;
}

const tr__backend_ops_t tr__backend_kqueue = {
    .name = "kqueue",
    .flags = TR__BK_MT_CTL,
    .init = kq_init,
    .fini = kq_fini,
    .add = kq_add,
    .mod = kq_mod,
    .del = kq_del,
    .wait = kq_wait,
    .submit = NULL,
};

#endif
