/* SPDX-License-Identifier: MIT */
/*
 * The poll(2) backend: the portable fallback. Registrations live in a
 * dense pollfd array (O(1) add and swap-remove through an fd-indexed
 * position table); a disarmed entry has a negative fd so poll() skips it,
 * which gives the one-shot contract of io/backend.h. wait() costs O(n) in
 * the registered fds, as poll does. Not thread-safe: the reactor queues
 * changes and applies them from the poll-token holder.
 */
#include "backend.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <troupe/errno.h>

typedef struct poll_state {
  struct pollfd *pfd;
  uint64_t *udata;
  int *realfd;
  int n, cap;
  int *pos;     /* fd -> index in pfd, -1 if absent */
  int poscap;
} poll_state_t;

static int pp_init(void **out) {
  poll_state_t *s = calloc(1, sizeof(*s));
  if (!s) return TR_ENOMEM;
  *out = s;
  return 0;
}

static void pp_fini(void *st) {
  poll_state_t *s = st;
  if (!s) return;
  free(s->pfd);
  free(s->udata);
  free(s->realfd);
  free(s->pos);
  free(s);
}

static int grow(poll_state_t *s, int fd) {
  if (fd >= s->poscap) {
    int nc = s->poscap ? s->poscap : 64;
    while (nc <= fd) nc *= 2;
    int *np = realloc(s->pos, (size_t)nc * sizeof(int));
    if (!np) return TR_ENOMEM;
    for (int i = s->poscap; i < nc; i++) np[i] = -1;
    s->pos = np;
    s->poscap = nc;
  }
  if (s->n == s->cap) {
    int nc = s->cap ? s->cap * 2 : 64;
    struct pollfd *p = realloc(s->pfd, (size_t)nc * sizeof(*p));
    if (!p) return TR_ENOMEM;
    s->pfd = p;
    uint64_t *u = realloc(s->udata, (size_t)nc * sizeof(*u));
    if (!u) return TR_ENOMEM;
    s->udata = u;
    int *r = realloc(s->realfd, (size_t)nc * sizeof(*r));
    if (!r) return TR_ENOMEM;
    s->realfd = r;
    s->cap = nc;
  }
  return 0;
}

static short to_poll(uint32_t ev) {
  short e = 0;
  if (ev & TR__EV_IN) e |= POLLIN;
  if (ev & TR__EV_OUT) e |= POLLOUT;
  return e;
}

static void arm(poll_state_t *s, int i, uint32_t events, uint64_t udata) {
  s->pfd[i].events = to_poll(events);
  s->pfd[i].revents = 0;
  s->pfd[i].fd = events ? s->realfd[i] : -1;
  s->udata[i] = udata;
}

static int pp_add(void *st, int fd, uint32_t events, uint64_t udata) {
  poll_state_t *s = st;
  if (fd < 0) return TR_EINVAL;
  if (fd < s->poscap && s->pos[fd] >= 0) return TR_EEXIST;
  int rc = grow(s, fd);
  if (rc) return rc;
  int i = s->n++;
  s->realfd[i] = fd;
  s->pos[fd] = i;
  arm(s, i, events, udata);
  return 0;
}

static int pp_mod(void *st, int fd, uint32_t events, uint64_t udata) {
  poll_state_t *s = st;
  if (fd < 0 || fd >= s->poscap || s->pos[fd] < 0) return TR_ENOENT;
  arm(s, s->pos[fd], events, udata);
  return 0;
}

static int pp_del(void *st, int fd) {
  poll_state_t *s = st;
  if (fd < 0 || fd >= s->poscap || s->pos[fd] < 0) return TR_ENOENT;
  int i = s->pos[fd], last = --s->n;
  if (i != last) {
    s->pfd[i] = s->pfd[last];
    s->udata[i] = s->udata[last];
    s->realfd[i] = s->realfd[last];
    s->pos[s->realfd[i]] = i;
  }
  s->pos[fd] = -1;
  return 0;
}

static int pp_wait(void *st, tr__bk_event_t *ev, int max, int timeout_ms) {
  poll_state_t *s = st;
  int n = poll(s->pfd, (nfds_t)s->n, timeout_ms);
  if (n < 0) return errno == EINTR ? 0 : -errno;
  int got = 0;
  for (int i = 0; i < s->n && n > 0 && got < max; i++) {
    short r = s->pfd[i].revents;
    if (!r || s->pfd[i].fd < 0) continue;
    n--;
    uint32_t e = 0;
    if (r & POLLIN) e |= TR__EV_IN;
    if (r & POLLOUT) e |= TR__EV_OUT;
    if (r & POLLERR) e |= TR__EV_ERR;
    if (r & POLLHUP) e |= TR__EV_HUP | TR__EV_IN;
    if (r & POLLNVAL) e |= TR__EV_ERR;
    ev[got].udata = s->udata[i];
    ev[got].events = e;
    ev[got].res = 0;
    got++;
    /* one-shot: quiet until mod() */
    s->pfd[i].fd = -1;
    s->pfd[i].revents = 0;
  }
  return got;
}

const tr__backend_ops_t tr__backend_poll = {
    .name = "poll",
    .flags = 0,
    .init = pp_init,
    .fini = pp_fini,
    .add = pp_add,
    .mod = pp_mod,
    .del = pp_del,
    .wait = pp_wait,
    .submit = NULL,
};
