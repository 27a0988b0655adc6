/* SPDX-License-Identifier: MIT */
/*
 * Memory-mapped files (<troupe/io.h>, "Memory-mapped files"): a whole
 * regular file mapped read-only and shared by reference count, and a
 * prefetch that reads its pages in on the blocking pool so that no worker
 * blocks on a page fault later.
 */
#include "io_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct tr_file_map {
  _Atomic uint64_t refs;
  void *addr;
  size_t size;
  int fd; /* a descriptor of its own, for sendfile; -1: none */
};

int tr__file_map_fd(const tr_file_map_t *m) { return m ? m->fd : -1; }

/* Maps the open file fd; the map keeps fd itself when own, else a
 * duplicate of it. On failure an owned fd is closed. */
static int map_fd(int fd, int own, unsigned flags, tr_file_map_t **out) {
  int rc = 0;
  struct stat st;
  tr_file_map_t *m = NULL;
  if (fstat(fd, &st) != 0) rc = -errno;
  else if (!S_ISREG(st.st_mode))
    rc = TR_EINVAL;
  else if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX)
    rc = TR_ENOMEM;
  else if (!(m = malloc(sizeof(*m))))
    rc = TR_ENOMEM;
  if (rc) {
    if (own && close(fd) != 0) {
      /* the descriptor is gone either way */
    }
    return rc;
  }
  atomic_init(&m->refs, 1);
  m->size = (size_t)st.st_size;
  m->addr = NULL;
  /* the caller's descriptor stays the caller's: keep a duplicate. Short
   * of descriptors the map still works; its ranges are then sent by
   * copying from the mapping (net/tcp.c) */
  m->fd = own ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (m->size) {
    int mf = MAP_PRIVATE;
#ifdef MAP_POPULATE
    if (flags & TR_FILE_MAP_POPULATE) mf |= MAP_POPULATE;
#endif
    void *a = mmap(NULL, m->size, PROT_READ, mf, fd, 0);
    if (a == MAP_FAILED) {
      rc = -errno;
      if (m->fd >= 0 && close(m->fd) != 0) {
        /* the descriptor is gone either way */
      }
      free(m);
      return rc;
    }
    m->addr = a;
  }
  *out = m;
  return 0;
}

int tr_file_map_fd(int fd, unsigned flags, tr_file_map_t **out) {
  if (!out) return TR_EINVAL;
  *out = NULL;
  if (fd < 0 || (flags & ~TR_FILE_MAP_POPULATE)) return TR_EINVAL;
  return map_fd(fd, 0, flags, out);
}

int tr_file_map(const char *path, unsigned flags, tr_file_map_t **out) {
  if (!out) return TR_EINVAL;
  *out = NULL;
  if (!path || (flags & ~TR_FILE_MAP_POPULATE)) return TR_EINVAL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  return map_fd(fd, 1, flags, out); /* the map keeps fd */
}

const void *tr_file_map_data(const tr_file_map_t *m) {
  return m ? m->addr : NULL;
}

size_t tr_file_map_size(const tr_file_map_t *m) { return m ? m->size : 0; }

tr_file_map_t *tr_file_map_ref(tr_file_map_t *m) {
  if (m) atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
  return m;
}

void tr_file_map_unref(tr_file_map_t *m) {
  if (!m || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
    return;
  if (m->addr && munmap(m->addr, m->size) != 0) {
    /* a valid mapping cannot fail to unmap; nothing to recover */
  }
  if (m->fd >= 0 && close(m->fd) != 0) {
    /* the descriptor is gone either way */
  }
  free(m);
}

/* ---- prefetch ---------------------------------------------------------------- */

typedef struct prefetch {
  tr__io_t *io;
  tr_file_map_t *map; /* one reference */
  uint64_t to;
  tr_file_done_t *msg;
} prefetch_t;

/* Pool thread: asks the kernel to read the pages in, then touches one
 * byte per page so they are resident even where the advice is ignored. */
static void prefetch_run(void *arg) {
  prefetch_t *p = arg;
  tr_file_map_t *m = p->map;
  int64_t res = (int64_t)m->size;
  if (m->size) {
#ifdef MADV_WILLNEED
    (void)madvise(m->addr, m->size, MADV_WILLNEED);
#endif
    long pg = sysconf(_SC_PAGESIZE);
    size_t step = pg > 0 ? (size_t)pg : 4096;
    const volatile unsigned char *b = m->addr;
    unsigned sum = 0;
    for (size_t i = 0; i < m->size; i += step) sum += b[i];
    sum += b[m->size - 1];
    (void)sum;
  }
  p->msg->result = res;
  tr_file_map_unref(m);
  /* delivered by the reactor, which also ends the pending operation */
  tr__io_done_push(p->io, p->to, &p->msg->hdr);
  free(p);
}

int tr_file_map_prefetch(tr_ctx_t *ctx, tr_file_map_t *m, uint64_t cookie) {
  if (!ctx || !ctx->a || !m) return TR_EINVAL;
  tr__io_t *io = tr__io_of_ctx(ctx);
  if (!io) return TR_ENOSYS;
  tr_file_done_t *msg = tr_msg_new(&tr_file_done_t__type);
  prefetch_t *p = malloc(sizeof(*p));
  if (!msg || !p) {
    tr_msg_free(msg);
    free(p);
    return TR_ENOMEM;
  }
  msg->op = TR_FILE_PREFETCH;
  msg->fd = -1;
  msg->cookie = cookie;
  p->io = io;
  p->map = tr_file_map_ref(m);
  p->to = tr__self_ref(ctx->a).id;
  p->msg = msg;
  int rc = tr__pool_submit_op(io, prefetch_run, p);
  if (rc) {
    tr_file_map_unref(m);
    tr_msg_free(msg);
    free(p);
  }
  return rc;
}
