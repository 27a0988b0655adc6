/* SPDX-License-Identifier: MIT */
/*
 * File operations as messages: read, write and fsync. With the io_uring
 * backend they are submitted to the ring by the poll-token holder and
 * complete through it; with any other backend they run on the blocking
 * pool. Either way the library owns the buffers until the completion is
 * delivered, so an actor that stops meanwhile leaves nothing dangling.
 */
#include "io_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void file_done_dtor(void *msg) {
  tr_file_done_t *m = msg;
  free(m->data);
  m->data = NULL;
}

TR_MESSAGE_DEFINE(tr_file_done_t, .flags = TR_MSG_SYSTEM,
                  .dtor = file_done_dtor);

#define MAX_IO (1u << 30) /* one operation moves at most 1 GiB */

/* Token holder only: operations queued for the ring, submitted so far. */
static void fop_finish(tr__io_t *io, tr__fop_t *f, int64_t res) {
  tr_file_done_t *m = (tr_file_done_t *)f->msg;
  m->result = res;
  if (m->op == TR_FILE_READ && res > 0) {
    m->len = (size_t)res;
  } else {
    free(m->data); /* a write's private copy, or a failed read */
    m->data = NULL;
    m->len = 0;
  }
  (void)tr__io_deliver(io->rt, f->to, &m->hdr); /* owner may be gone */
  tr__io_pending_add(io, -1);
  free(f);
}

void tr__fops_submit(tr__io_t *io) {
  pthread_mutex_lock(&io->reg_mu);
  tr__fop_t *f = io->fop_head;
  io->fop_head = io->fop_tail = NULL;
  pthread_mutex_unlock(&io->reg_mu);
  while (f) {
    tr__fop_t *nx = f->next;
    f->op.udata = (uint64_t)(uintptr_t)f;
    int rc = io->bk->submit(io->bks, &f->op);
    if (rc) {
      /* maybe inside hook_wait: hand the failure to run() */
      tr_file_done_t *m = (tr_file_done_t *)f->msg;
      m->result = rc;
      free(m->data);
      m->data = NULL;
      tr__io_done_push(io, f->to, f->msg);
      free(f);
    } else {
      io->fops_inflight++;
    }
    f = nx;
  }
}

void tr__fop_complete(tr__io_t *io, uint64_t udata, int32_t res) {
  io->fops_inflight--;
  fop_finish(io, (tr__fop_t *)(uintptr_t)udata, res);
}

void tr__fops_fini(tr__io_t *io) {
  /* never free a buffer the kernel may still write into */
  for (int tries = 0; io->fops_inflight > 0 && tries < 100; tries++) {
    int n = io->bk->wait(io->bks, io->ev, 256, 50);
    for (int i = 0; i < n; i++)
      if (io->ev[i].events & TR__EV_DONE)
        tr__fop_complete(io, io->ev[i].udata, io->ev[i].res);
  }
  pthread_mutex_lock(&io->reg_mu);
  tr__fop_t *f = io->fop_head;
  io->fop_head = io->fop_tail = NULL;
  pthread_mutex_unlock(&io->reg_mu);
  while (f) {
    tr__fop_t *nx = f->next;
    fop_finish(io, f, TR_ECANCELED);
    f = nx;
  }
}

/* The blocking-pool path. */
static void fop_run(void *arg) {
  tr__fop_t *f = arg;
  tr_file_done_t *m = (tr_file_done_t *)f->msg;
  ssize_t n;
  int64_t res;
  switch (f->op.kind) {
  case TR__FOP_READ:
    n = pread(f->op.fd, f->op.buf, f->op.len, (off_t)f->op.off);
    res = n < 0 ? -errno : n;
    break;
  case TR__FOP_WRITE:
    n = pwrite(f->op.fd, f->op.buf, f->op.len, (off_t)f->op.off);
    res = n < 0 ? -errno : n;
    break;
  default:
    res = fsync(f->op.fd) != 0 ? -errno : 0;
    break;
  }
  m->result = res;
  if (f->op.kind == TR__FOP_READ && res > 0) {
    m->len = (size_t)res;
  } else {
    free(m->data);
    m->data = NULL;
    m->len = 0;
  }
  tr__io_done_push(f->io, f->to, f->msg);
  free(f);
}

static int start(tr_ctx_t *ctx, int kind, int fd, void *buf, size_t len,
                 int64_t off, uint64_t cookie) {
  tr__io_t *io = tr__io_of_ctx(ctx);
  if (!io) {
    free(buf);
    return TR_ENOSYS;
  }
  tr_file_done_t *m = tr_msg_new(&tr_file_done_t__type);
  tr__fop_t *f = malloc(sizeof(*f));
  if (!m || !f) {
    free(buf);
    free(f);
    tr_msg_free(m);
    return TR_ENOMEM;
  }
  m->op = kind;
  m->fd = fd;
  m->cookie = cookie;
  m->data = buf;
  f->next = NULL;
  f->io = io;
  f->op.kind = kind;
  f->op.fd = fd;
  f->op.buf = buf;
  f->op.len = len;
  f->op.off = off;
  f->to = tr__self_ref(ctx->a).id;
  f->msg = &m->hdr;
  if (io->bk->submit) {
    tr__io_pending_add(io, 1);
    pthread_mutex_lock(&io->reg_mu);
    if (io->fop_tail) io->fop_tail->next = f;
    else io->fop_head = f;
    io->fop_tail = f;
    pthread_mutex_unlock(&io->reg_mu);
    tr__io_wake(io);
    return 0;
  }
  int rc = tr__pool_submit_op(io, fop_run, f);
  if (rc) {
    tr_msg_free(m); /* frees buf through the destructor */
    free(f);
  }
  return rc;
}

int tr_file_read(tr_ctx_t *ctx, int fd, size_t len, int64_t off,
                 uint64_t cookie) {
  if (!ctx || !ctx->a || fd < 0 || off < 0) return TR_EINVAL;
  if (len > MAX_IO) len = MAX_IO;
  void *buf = malloc(len ? len : 1);
  if (!buf) return TR_ENOMEM;
  return start(ctx, TR__FOP_READ, fd, buf, len, off, cookie);
}

int tr_file_write(tr_ctx_t *ctx, int fd, const void *data, size_t len,
                  int64_t off, uint64_t cookie) {
  if (!ctx || !ctx->a || fd < 0 || off < 0 || (!data && len)) return TR_EINVAL;
  if (len > MAX_IO) return TR_EINVAL;
  void *buf = malloc(len ? len : 1);
  if (!buf) return TR_ENOMEM;
  if (len) memcpy(buf, data, len);
  return start(ctx, TR__FOP_WRITE, fd, buf, len, off, cookie);
}

int tr_file_fsync(tr_ctx_t *ctx, int fd, uint64_t cookie) {
  if (!ctx || !ctx->a || fd < 0) return TR_EINVAL;
  return start(ctx, TR__FOP_FSYNC, fd, NULL, 0, 0, cookie);
}
