/* SPDX-License-Identifier: MIT */
/*
 * Tests of file operations (<troupe/io.h>, "Files") with the default
 * backend (io_uring where available) and with epoll (blocking pool): a
 * 1 MiB file written in 64 KiB pieces at their offsets, fsynced, read back
 * in pieces and compared; a read past the end returns 0 bytes; an
 * operation on a bad fd completes with -EBADF. Memory-mapped files: the
 * bytes and size of a mapping, an empty file, a missing file, a directory
 * and bad arguments; references; a prefetch that outlives the caller's
 * reference, and one whose actor stopped before it finished.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
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
        tr_actor_stop(tr_ctx_self(ctx), 0);
        return 0;
      }
  }
  if (++f->reads == NPIECES + 1) {
    atomic_store(&verdict, 1);
    tr_actor_stop(tr_ctx_self(ctx), 0);
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

/* ---- memory-mapped files ------------------------------------------------------- */

enum { MAPLEN = 3 * 4096 + 123 };

/* A file of MAPLEN pattern bytes; returns its path in buf. */
static void map_file(char *path) {
  strcpy(path, "/tmp/troupe-map-XXXXXX");
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  static uint8_t b[MAPLEN];
  for (size_t i = 0; i < MAPLEN; i++) b[i] = pattern(i);
  ck_assert_int_eq(write(fd, b, MAPLEN), MAPLEN);
  ck_assert_int_eq(close(fd), 0);
}

START_TEST(test_map_basics) {
  char path[64];
  map_file(path);
  tr_file_map_t *m = NULL;
  ck_assert_int_eq(tr_file_map(path, 0, &m), 0);
  ck_assert_uint_eq(tr_file_map_size(m), MAPLEN);
  const uint8_t *d = tr_file_map_data(m);
  ck_assert_ptr_nonnull(d);
  for (size_t i = 0; i < MAPLEN; i++) ck_assert_uint_eq(d[i], pattern(i));
  /* a second reference keeps the bytes after the first is dropped */
  ck_assert_ptr_eq(tr_file_map_ref(m), m);
  tr_file_map_unref(m);
  ck_assert_uint_eq(d[MAPLEN - 1], pattern(MAPLEN - 1));
  tr_file_map_unref(m);
  /* populated at map time, through an fd the caller keeps */
  int fd = open(path, O_RDONLY);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(tr_file_map_fd(fd, TR_FILE_MAP_POPULATE, &m), 0);
  ck_assert_uint_eq(((const uint8_t *)tr_file_map_data(m))[4096], pattern(4096));
  tr_file_map_unref(m);
  ck_assert_int_eq(fcntl(fd, F_GETFD) >= 0, 1); /* still open */
  ck_assert_int_eq(close(fd), 0);
  ck_assert_int_eq(unlink(path), 0);
}
END_TEST

START_TEST(test_map_errors) {
  tr_file_map_t *m = (tr_file_map_t *)0x1;
  ck_assert_int_eq(tr_file_map("/nonexistent/troupe-map", 0, &m), -ENOENT);
  ck_assert_ptr_null(m);
  ck_assert_int_eq(tr_file_map("/tmp", 0, &m), TR_EINVAL); /* a directory */
  ck_assert_int_eq(tr_file_map(NULL, 0, &m), TR_EINVAL);
  ck_assert_int_eq(tr_file_map("/tmp", 0, NULL), TR_EINVAL);
  ck_assert_int_eq(tr_file_map_fd(-1, 0, &m), TR_EINVAL);
  ck_assert_int_eq(tr_file_map_fd(1000000, 0, &m), -EBADF);
  char path[64];
  map_file(path);
  ck_assert_int_eq(tr_file_map(path, 0x80, &m), TR_EINVAL); /* unknown flag */
  /* a pipe is no regular file */
  int pfd[2];
  ck_assert_int_eq(pipe(pfd), 0);
  ck_assert_int_eq(tr_file_map_fd(pfd[0], 0, &m), TR_EINVAL);
  ck_assert_int_eq(close(pfd[0]), 0);
  ck_assert_int_eq(close(pfd[1]), 0);
  /* an empty file maps to nothing, and that is no error */
  ck_assert_int_eq(truncate(path, 0), 0);
  ck_assert_int_eq(tr_file_map(path, 0, &m), 0);
  ck_assert_uint_eq(tr_file_map_size(m), 0);
  ck_assert_ptr_null(tr_file_map_data(m));
  tr_file_map_unref(m);
  tr_file_map_unref(NULL);
  ck_assert_uint_eq(tr_file_map_size(NULL), 0);
  ck_assert_int_eq(unlink(path), 0);
}
END_TEST

/* An actor prefetches the mapping it was given, dropping its own
 * reference at once: the prefetch keeps the mapping alive, and the
 * completion reports every byte. */
typedef struct pf {
  tr_file_map_t *m;
} pf_t;
static _Atomic int64_t pf_result;
static _Atomic int pf_calls;
static int pf_init(tr_ctx_t *ctx, void *st, void *arg) {
  pf_t *p = st;
  p->m = arg;
  ck_assert_int_eq(tr_file_map_prefetch(NULL, p->m, 1), TR_EINVAL);
  ck_assert_int_eq(tr_file_map_prefetch(ctx, NULL, 1), TR_EINVAL);
  ck_assert_int_eq(tr_file_map_prefetch(ctx, p->m, 42), 0);
  tr_file_map_unref(p->m); /* the prefetch holds its own */
  return 0;
}
static int pf_done(tr_ctx_t *ctx, void *st, void *msg) {
  (void)st;
  tr_file_done_t *d = msg;
  ck_assert_int_eq(d->op, TR_FILE_PREFETCH);
  ck_assert_int_eq(d->fd, -1);
  ck_assert_uint_eq(d->cookie, 42);
  ck_assert_ptr_null(d->data);
  atomic_store(&pf_result, d->result);
  atomic_fetch_add(&pf_calls, 1);
  tr_actor_stop(tr_ctx_self(ctx), 0);
  return 0;
}
static const tr_handler_t pf_h[] = {{&tr_file_done_t__type, pf_done}};
static const tr_behavior_t pf_b = {.name = "pf",
                                   .state_size = sizeof(pf_t),
                                   .init = pf_init,
                                   .handlers = TR_HANDLERS(pf_h)};

/* Stops in init, right after starting a prefetch: the result has nobody
 * to go to and is dropped, the mapping's reference still released. */
static int pf_quit_init(tr_ctx_t *ctx, void *st, void *arg) {
  (void)st;
  ck_assert_int_eq(tr_file_map_prefetch(ctx, arg, 7), 0);
  tr_file_map_unref(arg);
  tr_actor_stop(tr_ctx_self(ctx), 0);
  return 0;
}
static const tr_behavior_t pf_quit_b = {.name = "pf_quit",
                                        .init = pf_quit_init,
                                        .handlers = TR_HANDLERS(pf_h)};

START_TEST(test_map_prefetch) {
  char path[64];
  map_file(path);
  tr_file_map_t *m;
  ck_assert_int_eq(tr_file_map(path, 0, &m), 0);
  ck_assert_int_eq(unlink(path), 0); /* the mapping keeps the data */
  atomic_store(&pf_result, -12345);
  atomic_store(&pf_calls, 0);
  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  /* each actor gets a reference and drops it right after starting its
   * prefetch; nobody else keeps one, so only the prefetches' own
   * references keep the pages mapped while they are read */
  ck_assert_int_eq(tr_spawn(rt, &pf_b, tr_file_map_ref(m), NULL), 0);
  ck_assert_int_eq(tr_spawn(rt, &pf_quit_b, m, NULL), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_int_eq(atomic_load(&pf_calls), 1);
  ck_assert_int_eq(atomic_load(&pf_result), MAPLEN);
  ck_assert_int_eq(tr_runtime_shutdown(rt, 10000), 0);
  ck_assert_int_eq(tr_io_fini(rt), 0);
  tr_runtime_free(rt);
}
END_TEST

int main(void) {
  Suite *s = suite_create("file");
  TCase *tc = tcase_create("file");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_file_roundtrip_default);
  tcase_add_test(tc, test_file_roundtrip_pool);
  tcase_add_test(tc, test_map_basics);
  tcase_add_test(tc, test_map_errors);
  tcase_add_test(tc, test_map_prefetch);
  suite_add_tcase(s, tc);
  return tu_run(s);
}
