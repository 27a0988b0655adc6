/* SPDX-License-Identifier: MIT */
/*
 * Prints the table rows of doc/errors.md from TR_ERRNO_MAP, so that the
 * errors page is made from the same list as the enum and tr_strerror().
 * `make errors-doc` splices its output between the page's markers.
 */
#include <stdio.h>

#include <troupe/errno.h>

int main(void) {
#define ROW(name, value, desc) printf("| `TR_%s` | %d | %s |\n", #name, (value), desc);
  TR_ERRNO_MAP(ROW)
#undef ROW
  return 0;
}
