/* SPDX-License-Identifier: MIT */
/* Error names and descriptions, generated from TR_ERRNO_MAP. */
#include "internal.h"

const char *tr_strerror(int err) {
  if (err == 0) return "success";
  switch (err) {
#define TR__ERR_STR(name, value, desc) \
  case (value):                         \
    return desc;
    TR_ERRNO_MAP(TR__ERR_STR)
#undef TR__ERR_STR
  default:
    return "unknown error";
  }
}

const char *tr_err_name(int err) {
  if (err == 0) return "TR_OK";
  switch (err) {
#define TR__ERR_NAME(name, value, desc) \
  case (value):                          \
    return "TR_" #name;
    TR_ERRNO_MAP(TR__ERR_NAME)
#undef TR__ERR_NAME
  default:
    return "TR_UNKNOWN";
  }
}
