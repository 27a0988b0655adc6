/* SPDX-License-Identifier: MIT */
/*
 * Tests of <troupe/errno.h>: the TR_ERRNO_MAP list, tr_strerror() and
 * tr_err_name() for every listed code, for 0 and for codes not in the list;
 * that codes mirroring POSIX equal -errno, and that troupe's own codes are
 * distinct, negative and far from any errno value.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <troupe.h>

struct entry {
  int code;
  const char *name;
  const char *desc;
};

static const struct entry entries[] = {
#define XX(name, value, desc) {(value), "TR_" #name, (desc)},
    TR_ERRNO_MAP(XX)
#undef XX
};
#define NENTRIES (sizeof(entries) / sizeof(entries[0]))

/* Codes that are not in the list (checked against it below). */
static const int unknown_codes[] = {
    1,         EPERM,    EINVAL,   12345,        INT_MAX,
    INT_MIN,   -EDOM,    -9999,    TR__EOWN_BASE, TR__EOWN_BASE - 9,
    TR__EOWN_BASE - 100, -29999,
};

static int listed(int code) {
  for (size_t i = 0; i < NENTRIES; i++)
    if (entries[i].code == code)
      return 1;
  return 0;
}

START_TEST(test_tr_strerror_known) {
  for (size_t i = 0; i < NENTRIES; i++) {
    const char *s = tr_strerror(entries[i].code);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, entries[i].desc);
  }
}
END_TEST

START_TEST(test_tr_err_name_known) {
  for (size_t i = 0; i < NENTRIES; i++) {
    const char *s = tr_err_name(entries[i].code);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, entries[i].name);
  }
}
END_TEST

START_TEST(test_tr_err_name_zero) { ck_assert_str_eq(tr_err_name(0), "TR_OK"); }
END_TEST

START_TEST(test_tr_strerror_zero) {
  /* 0 is success: it must not be described as one of the errors. */
  const char *s = tr_strerror(0);
  ck_assert_ptr_nonnull(s);
  ck_assert_int_gt((int)strlen(s), 0);
  for (size_t i = 0; i < NENTRIES; i++)
    ck_assert_str_ne(s, entries[i].desc);
}
END_TEST

START_TEST(test_tr_strerror_unknown) {
  for (size_t i = 0; i < sizeof(unknown_codes) / sizeof(unknown_codes[0]);
       i++) {
    int c = unknown_codes[i];
    ck_assert_msg(!listed(c), "code %d unexpectedly listed", c);
    ck_assert_ptr_nonnull(tr_strerror(c));
    ck_assert_str_eq(tr_strerror(c), "unknown error");
  }
}
END_TEST

START_TEST(test_tr_err_name_unknown) {
  for (size_t i = 0; i < sizeof(unknown_codes) / sizeof(unknown_codes[0]);
       i++) {
    int c = unknown_codes[i];
    ck_assert_ptr_nonnull(tr_err_name(c));
    ck_assert_str_eq(tr_err_name(c), "TR_UNKNOWN");
  }
}
END_TEST

START_TEST(test_tr_errno_map_posix_values) {
  ck_assert_int_eq(TR_EPERM, -EPERM);
  ck_assert_int_eq(TR_ENOENT, -ENOENT);
  ck_assert_int_eq(TR_EAGAIN, -EAGAIN);
  ck_assert_int_eq(TR_ENOMEM, -ENOMEM);
  ck_assert_int_eq(TR_EBUSY, -EBUSY);
  ck_assert_int_eq(TR_EEXIST, -EEXIST);
  ck_assert_int_eq(TR_EDEADLK, -EDEADLK);
  ck_assert_int_eq(TR_EINVAL, -EINVAL);
  ck_assert_int_eq(TR_ENOSPC, -ENOSPC);
  ck_assert_int_eq(TR_ERANGE, -ERANGE);
  ck_assert_int_eq(TR_ENOSYS, -ENOSYS);
  ck_assert_int_eq(TR_EBADMSG, -EBADMSG);
  ck_assert_int_eq(TR_EPROTO, -EPROTO);
  ck_assert_int_eq(TR_EMSGSIZE, -EMSGSIZE);
  ck_assert_int_eq(TR_ESHUTDOWN, -ESHUTDOWN);
  ck_assert_int_eq(TR_ETIMEDOUT, -ETIMEDOUT);
  ck_assert_int_eq(TR_ECANCELED, -ECANCELED);
  ck_assert_int_eq(TR_EBADF, -EBADF);
  ck_assert_int_eq(TR_EIO, -EIO);
  ck_assert_int_eq(TR_EPIPE, -EPIPE);
  ck_assert_int_eq(TR_ECONNREFUSED, -ECONNREFUSED);
  ck_assert_int_eq(TR_ECONNRESET, -ECONNRESET);
  ck_assert_int_eq(TR_ENOTCONN, -ENOTCONN);
  ck_assert_int_eq(TR_EADDRINUSE, -EADDRINUSE);
}
END_TEST

START_TEST(test_tr_errno_map_own_range) {
  const int own[] = {TR_ENOACTOR, TR_ECLOSED, TR_ENOREPLY, TR_EFAILED,
                     TR_EKILLED,  TR_ECODEC,  TR_ETLS,     TR_ECERT};
  for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
    /* Linux errno values stay below 4096. */
    ck_assert_int_lt(own[i], -4096);
    ck_assert_int_lt(own[i], TR__EOWN_BASE);
  }
  ck_assert_int_eq(TR_EXIT_KILLED, TR_EKILLED);
}
END_TEST

START_TEST(test_tr_errno_map_distinct_negative) {
  ck_assert_uint_eq(NENTRIES, 32);
  for (size_t i = 0; i < NENTRIES; i++) {
    ck_assert_int_lt(entries[i].code, 0);
    ck_assert_int_gt((int)strlen(entries[i].desc), 0);
    for (size_t j = i + 1; j < NENTRIES; j++) {
      ck_assert_int_ne(entries[i].code, entries[j].code);
      ck_assert_str_ne(entries[i].name, entries[j].name);
    }
  }
}
END_TEST

/* The version is written once (configure.ac): the library, the header's
 * string, its numbers and the package all say the same. */
START_TEST(test_tr_version_agrees) {
  char buf[32];
  ck_assert_str_eq(tr_version(), TR_VERSION_STRING);
  ck_assert_str_eq(tr_version(), PACKAGE_VERSION);
  snprintf(buf, sizeof(buf), "%d.%d.%d", TR_VERSION_MAJOR, TR_VERSION_MINOR,
           TR_VERSION_PATCH);
  ck_assert_str_eq(buf, TR_VERSION_STRING);
  ck_assert_int_eq(TR_VERSION_HEX, (TR_VERSION_MAJOR << 16) |
                                       (TR_VERSION_MINOR << 8) |
                                       TR_VERSION_PATCH);
}
END_TEST

static Suite *errno_suite(void) {
  Suite *s = suite_create("errno");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_tr_strerror_known);
  tcase_add_test(tc, test_tr_err_name_known);
  tcase_add_test(tc, test_tr_err_name_zero);
  tcase_add_test(tc, test_tr_strerror_zero);
  tcase_add_test(tc, test_tr_strerror_unknown);
  tcase_add_test(tc, test_tr_err_name_unknown);
  tcase_add_test(tc, test_tr_errno_map_posix_values);
  tcase_add_test(tc, test_tr_errno_map_own_range);
  tcase_add_test(tc, test_tr_errno_map_distinct_negative);
  tcase_add_test(tc, test_tr_version_agrees);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(errno_suite());
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
