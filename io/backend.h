/* SPDX-License-Identifier: MIT */
/*
 * The reactor's backend interface: one const ops table per kernel
 * mechanism (io_uring, epoll, poll), each implemented in its own
 * io/poll_<name>.c with its state struct private to that file. The
 * reactor (io/reactor.c) picks one at run time and is the only caller.
 *
 * Contract every backend honours:
 *
 *  - Interest is one-shot. add(fd, events, udata) arms fd for the events
 *    (TR__EV_IN and/or TR__EV_OUT). When wait() reports fd, its
 *    registration is disarmed until mod() arms it again; a disarmed fd
 *    reports nothing, not even errors or hang-ups. mod(fd, 0, udata)
 *    disarms without removing. del(fd) removes fd; after del returns, no
 *    event for fd is reported by a later wait() and the caller may close
 *    fd at once (a backend that holds a reference to the file, as
 *    io_uring's poll requests do, must drop it before del returns).
 *  - Edge registrations (optional, backends with TR__BK_EDGE): events
 *    with TR__EV_EDGE added to add/mod arm fd persistently. The backend
 *    reports fd whenever new readiness arrives (an edge: new data, new
 *    buffer space, hang-up) and stays armed, so the caller needs no mod
 *    after a report; such a report carries TR__EV_ARMED. A report without
 *    TR__EV_ARMED means the registration ended (as for one-shot interest:
 *    disarmed until mod). The caller must consume the readiness (read until
 *    a short read or EAGAIN) or call mod, which re-evaluates the fd and
 *    reports it again if it is still ready. mod(fd, 0) disarms it as well.
 *    Several edges of one fd may be merged into one report.
 *  - TR__EV_ERR and TR__EV_HUP are always reported for an armed fd, even
 *    if not asked for. Spurious reports are allowed (callers do
 *    non-blocking I/O and re-arm), lost reports are not.
 *  - udata is opaque to the backend and comes back with every report of
 *    that registration; mod may change it. Its bit 63 is always clear
 *    (entry ids and file-op pointers), so a backend may use that bit.
 *  - wait(ev, max, timeout_ms) blocks until at least one report is ready,
 *    timeout_ms passes (< 0: no limit; 0: just poll), or a signal
 *    interrupts it; it fills at most max reports and returns their number
 *    (0 on timeout or interruption) or a negative TR_E* code.
 *  - Threads: the reactor calls every op from the one thread holding the
 *    poll token, except that a backend whose flags contain TR__BK_MT_CTL
 *    (epoll) lets add/mod/del run on any thread concurrently with
 *    a wait() blocked in another. Backends without it get their changes
 *    queued by the reactor and applied by the token holder.
 *  - submit (optional, NULL when the backend has no completion API): starts
 *    a file read, write or fsync; its completion is reported by wait() as
 *    TR__EV_DONE with op->udata and the result in res (bytes, or a
 *    negative errno). Called by the poll-token holder only. The buffer
 *    must stay valid until the completion is reported.
 *
 * Every op returns 0 (or a count) on success and a negative TR_E* code
 * (TR_EXXX == -EXXX) on failure; none ignores a system call's result.
 */
#ifndef TR_IO_BACKEND_H
#define TR_IO_BACKEND_H

#include "config.h"

#include <stddef.h>
#include <stdint.h>

#define TR__EV_IN 0x1u
#define TR__EV_OUT 0x2u
#define TR__EV_ERR 0x4u
#define TR__EV_HUP 0x8u
#define TR__EV_DONE 0x10u /* completion of a submitted operation */
#define TR__EV_EDGE 0x20u /* add/mod: persistent, edge-triggered interest */
#define TR__EV_ARMED 0x40u /* report: an edge registration is still armed */
#define TR__EV_RDHUP 0x80u /* report: the peer shut down its side (with IN);
                            * a read may return less than is queued before
                            * the end-of-file, so edge users read on */

#define TR__BK_MT_CTL 0x1u /* add/mod/del are safe from any thread */
#define TR__BK_EDGE 0x2u   /* supports TR__EV_EDGE registrations */

typedef struct tr__bk_event {
  uint64_t udata;
  uint32_t events;
  int32_t res; /* result of a completion (TR__EV_DONE), else 0 */
} tr__bk_event_t;

enum { TR__FOP_READ = 1, TR__FOP_WRITE = 2, TR__FOP_FSYNC = 3 };

typedef struct tr__bk_fileop {
  int kind; /* TR__FOP_* */
  int fd;
  void *buf;
  size_t len;
  int64_t off;
  uint64_t udata;
} tr__bk_fileop_t;

typedef struct tr__backend_ops {
  const char *name; /* "uring", "epoll", "poll" */
  unsigned flags;   /* TR__BK_* */
  /* Creates the backend state. TR_ENOSYS when the kernel refuses it
   * (the reactor then tries the next backend). */
  int (*init)(void **state);
  void (*fini)(void *state);
  int (*add)(void *state, int fd, uint32_t events, uint64_t udata);
  int (*mod)(void *state, int fd, uint32_t events, uint64_t udata);
  int (*del)(void *state, int fd);
  int (*wait)(void *state, tr__bk_event_t *ev, int max, int timeout_ms);
  int (*submit)(void *state, const tr__bk_fileop_t *op);
} tr__backend_ops_t;

/* Which backends this build has, from configure's checks. No kqueue
 * backend yet: TR_IO_BACKEND_KQUEUE is refused with TR_ENOSYS until one
 * can be built and tested on a BSD. */
#if defined(HAVE_SYS_EPOLL_H)
#define TR_HAVE_EPOLL_BACKEND 1
#endif
#if defined(TR_HAVE_URING) && defined(__linux__)
#define TR_HAVE_URING_BACKEND 1
#endif

#if defined(TR_HAVE_URING_BACKEND)
extern const tr__backend_ops_t tr__backend_uring;
#endif
#if defined(TR_HAVE_EPOLL_BACKEND)
extern const tr__backend_ops_t tr__backend_epoll;
#endif
extern const tr__backend_ops_t tr__backend_poll; /* everywhere */

#endif
