/* SPDX-License-Identifier: MIT */
/*
 * The epoll backend (Linux): one epoll instance, EPOLLONESHOT interest so
 * that a reported fd stays quiet until the reactor re-arms it, or
 * EPOLLET for edge registrations (TR__EV_EDGE), which stay armed and cost
 * no epoll_ctl per event. epoll_ctl is thread-safe, so this backend lets
 * actors change interest directly (TR__BK_MT_CTL) without waking the
 * poller. Disarming (events 0) removes the fd from the epoll set, since
 * epoll would report errors and hang-ups of a registered fd whatever its
 * mask; a later mod adds it back. Edge registrations are marked in bit 63
 * of the registered data, so that wait() can tell them apart without a
 * per-fd table.
 */
#include "backend.h"

#if defined(TR_HAVE_EPOLL_BACKEND)

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <troupe/errno.h>

typedef struct epoll_state {
  int epfd;
  int cap;
  struct epoll_event *evs;
} epoll_state_t;

static int ep_init(void **out) {
  epoll_state_t *s = calloc(1, sizeof(*s));
  if (!s) return TR_ENOMEM;
  s->cap = 256;
  s->evs = calloc((size_t)s->cap, sizeof(*s->evs));
  if (!s->evs) {
    free(s);
    return TR_ENOMEM;
  }
  s->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (s->epfd < 0) {
    int e = -errno;
    free(s->evs);
    free(s);
    return e;
  }
  *out = s;
  return 0;
}

static void ep_fini(void *st) {
  epoll_state_t *s = st;
  if (!s) return;
  if (close(s->epfd) != 0) {
    /* nothing to recover: the descriptor is gone either way */
  }
  free(s->evs);
  free(s);
}

static uint32_t to_epoll(uint32_t ev) {
  uint32_t e = 0;
  if (ev & TR__EV_IN) e |= EPOLLIN | EPOLLRDHUP;
  if (ev & TR__EV_OUT) e |= EPOLLOUT;
  return e;
}

#define UD_EDGE (1ull << 63)

static int ep_ctl(epoll_state_t *s, int op, int fd, uint32_t events,
                  uint64_t udata) {
  struct epoll_event e;
  if (events & TR__EV_EDGE) {
    e.events = to_epoll(events) | EPOLLET;
    e.data.u64 = udata | UD_EDGE;
  } else {
    e.events = to_epoll(events) | EPOLLONESHOT;
    e.data.u64 = udata;
  }
  if (epoll_ctl(s->epfd, op, fd, &e) != 0) return -errno;
  return 0;
}

static int ep_add(void *st, int fd, uint32_t events, uint64_t udata) {
  epoll_state_t *s = st;
  if (!(events & (TR__EV_IN | TR__EV_OUT))) {
    /* registered but disarmed: nothing in the set (checks fd, though) */
    struct epoll_event e = {0};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e) != 0) return -errno;
    if (epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, &e) != 0) return -errno;
    return 0;
  }
  return ep_ctl(s, EPOLL_CTL_ADD, fd, events, udata);
}

static int ep_mod(void *st, int fd, uint32_t events, uint64_t udata) {
  epoll_state_t *s = st;
  struct epoll_event e = {0};
  if (!(events & (TR__EV_IN | TR__EV_OUT))) {
    if (epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, &e) != 0 && errno != ENOENT)
      return -errno;
    return 0;
  }
  int rc = ep_ctl(s, EPOLL_CTL_MOD, fd, events, udata);
  if (rc == -ENOENT) rc = ep_ctl(s, EPOLL_CTL_ADD, fd, events, udata);
  return rc;
}

static int ep_del(void *st, int fd) {
  epoll_state_t *s = st;
  struct epoll_event e = {0};
  /* ENOENT: disarmed, so not in the set */
  if (epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, &e) != 0 && errno != ENOENT)
    return -errno;
  return 0;
}

static int ep_wait(void *st, tr__bk_event_t *ev, int max, int timeout_ms) {
  epoll_state_t *s = st;
  if (max > s->cap) max = s->cap;
  int n = epoll_wait(s->epfd, s->evs, max, timeout_ms);
  if (n < 0) return errno == EINTR ? 0 : -errno;
  for (int i = 0; i < n; i++) {
    uint32_t e = s->evs[i].events, r = 0;
    if (e & (EPOLLIN | EPOLLRDHUP)) r |= TR__EV_IN;
    if (e & EPOLLRDHUP) r |= TR__EV_RDHUP;
    if (e & EPOLLOUT) r |= TR__EV_OUT;
    if (e & EPOLLERR) r |= TR__EV_ERR;
    if (e & EPOLLHUP) r |= TR__EV_HUP | TR__EV_IN; /* read sees EOF */
    uint64_t ud = s->evs[i].data.u64;
    if (ud & UD_EDGE) r |= TR__EV_ARMED;
    ev[i].udata = ud & ~UD_EDGE;
    ev[i].events = r;
    ev[i].res = 0;
  }
  return n;
}

const tr__backend_ops_t tr__backend_epoll = {
    .name = "epoll",
    .flags = TR__BK_MT_CTL | TR__BK_EDGE,
    .init = ep_init,
    .fini = ep_fini,
    .add = ep_add,
    .mod = ep_mod,
    .del = ep_del,
    .wait = ep_wait,
    .submit = NULL,
};

#endif
