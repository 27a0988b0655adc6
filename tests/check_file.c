/* SPDX-License-Identifier: MIT */
/*
 * Tests of file operations (<troupe/io.h>, "Files") with the default
 * backend (io_uring where available) and with epoll (blocking pool): a
 * 1 MiB file written in 64 KiB pieces at their offsets, fsynced, read back
 * in pieces and compared; a read past the end returns 0 bytes; an
 * operation on a bad fd completes with -EBADF.
 */
#include <check.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <troupe.h>
#include <troupe/io.h>

#include "testutil.h"

enum { PIECE = 65536, NPIECES = 16 };

typedef struct fst {
  int fd, writes, reads, synced;
} fst_t;
static _Atomic int verdict;

static uint8_t pattern(size_t i) { return (uint8_t)(i * 13 + (i >> 9)); }

static int f_init(tr_ctx_t *ctx, void *st, void *arg) {
  fst_t *f = st;
  f->fd = *(int *)arg;
  static uint8_t buf[PIECE];
  for (int p = 0; p < NPIECES; p++) {
    for (size_t i = 0; i < PIECE; i++) buf[i] = pattern((size_t)p * PIECE + i);
    ck_assert_int_eq(tr_file_write(ctx, f->fd, buf, PIECE, (int64_t)p * PIECE,
                                   (uint64_t)p),
                     0);
  }
  ck_assert_int_eq(tr_file_read(ctx, -1, 10, 0, 999), TR_EINVAL);
  ck_assert_int_eq(tr_file_fsync(ctx, 1000000, 777), 0);
  return 0;
}
static int f_done(tr_ctx_t *ctx, void *st, void *msg) {
  fst_t *f = st;
  tr_file_done_t *d = msg;
  if (d->cookie == 777) {
    ck_assert_int_eq(d->result, -EBADF);
    return 0;
  }
  if (d->op == TR_FILE_WRITE) {
    ck_assert_int_eq(d->result, PIECE);
    if (++f->writes == NPIECES) ck_assert_int_eq(tr_file_fsync(ctx, f->fd, 500), 0);
    return 0;
  }
  if (d->op == TR_FILE_FSYNC) {
    ck_assert_int_eq(d->result, 0);
    for (int p = 0; p < NPIECES; p++)
      ck_assert_int_eq(tr_file_read(ctx, f->fd, PIECE, (int64_t)p * PIECE,
                                    (uint64_t)p),
                       0);
    ck_assert_int_eq(tr_file_read(ctx, f->fd, 100, NPIECES * PIECE, 600), 0);
    return 0;
  }
  if (d->cookie == 600) {
    ck_assert_int_eq(d->result, 0);
    ck_assert_ptr_null(d->data);
  } else {
    ck_assert_int_eq(d->result, PIECE);
    const uint8_t *b = d->data;
    for (size_t i = 0; i < PIECE; i++)
      if (b[i] != pattern(d->cookie * PIECE + i)) {
        atomic_store(&verdict, -1);
        tr_stop(ctx, 0);
        return 0;
      }
  }
  if (++f->reads == NPIECES + 1) {
    atomic_store(&verdict, 1);
    tr_stop(ctx, 0);
  }
  return 0;
}
static const tr_handler_t f_h[] = {{&tr_file_done_t__type, f_done}};
static const tr_behavior_t f_b = {.name = "f",
                                  .state_size = sizeof(fst_t),
                                  .init = f_init,
                                  .handlers = TR_HANDLERS(f_h)};

static void roundtrip(tr_io_backend_t backend) {
  char path[] = "/tmp/troupe-file-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(unlink(path), 0);
  atomic_store(&verdict, 0);
  tr_runtime_t *rt = tu_runtime(2, 0, 0);
  tr_io_config_t cfg;
  tr_io_config_init(&cfg);
  cfg.backend = backend;
  ck_assert_int_eq(tr_io_attach(rt, &cfg), 0);
  ck_assert_int_eq(tr_runtime_start(rt), 0);
  ck_assert_int_eq(tr_spawn(rt, &f_b, &fd, NULL), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_int_eq(atomic_load(&verdict), 1);
  ck_assert_int_eq(tr_runtime_shutdown(rt, 10000), 0);
  ck_assert_int_eq(tr_io_fini(rt), 0);
  tr_runtime_free(rt);
  ck_assert_int_eq(close(fd), 0);
}

START_TEST(test_file_roundtrip_default) { roundtrip(TR_IO_BACKEND_AUTO); }
END_TEST

START_TEST(test_file_roundtrip_pool) { roundtrip(TR_IO_BACKEND_EPOLL); }
END_TEST

int main(void) {
  Suite *s = suite_create("file");
  TCase *tc = tcase_create("file");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_file_roundtrip_default);
  tcase_add_test(tc, test_file_roundtrip_pool);
  suite_add_tcase(s, tc);
  return tu_run(s);
}
