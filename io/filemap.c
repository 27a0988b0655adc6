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
};

int tr_file_map_fd(int fd, unsigned flags, tr_file_map_t **out) {
  if (!out) return TR_EINVAL;
  *out = NULL;
  if (fd < 0 || (flags & ~TR_FILE_MAP_POPULATE)) return TR_EINVAL;
  struct stat st;
  if (fstat(fd, &st) != 0) return -errno;
  if (!S_ISREG(st.st_mode)) return TR_EINVAL;
  if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX) return TR_ENOMEM;
  tr_file_map_t *m = malloc(sizeof(*m));
  if (!m) return TR_ENOMEM;
  atomic_init(&m->refs, 1);
  m->size = (size_t)st.st_size;
  m->addr = NULL;
  if (m->size) {
    int mf = MAP_PRIVATE;
#ifdef MAP_POPULATE
    if (flags & TR_FILE_MAP_POPULATE) mf |= MAP_POPULATE;
#endif
    void *a = mmap(NULL, m->size, PROT_READ, mf, fd, 0);
    if (a == MAP_FAILED) {
      int e = errno;
      free(m);
      return -e;
    }
    m->addr = a;
  }
  *out = m;
  return 0;
}

int tr_file_map(const char *path, unsigned flags, tr_file_map_t **out) {
  if (!out) return TR_EINVAL;
  *out = NULL;
  if (!path) return TR_EINVAL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = tr_file_map_fd(fd, flags, out);
  if (close(fd) != 0 && rc == 0) {
    /* the mapping does not need the descriptor: nothing to undo */
  }
  return rc;
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
