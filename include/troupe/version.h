/* SPDX-License-Identifier: MIT */
/*
 * Version of the troupe headers. The library reports its own version through
 * tr_version(); a program can compare the two to detect a mismatch between
 * the headers it was compiled with and the library it runs against.
 */
#ifndef TROUPE_VERSION_H
#define TROUPE_VERSION_H

#define TR_VERSION_MAJOR 0
#define TR_VERSION_MINOR 1
#define TR_VERSION_PATCH 0
#define TR_VERSION_HEX                                                       \
  ((TR_VERSION_MAJOR << 16) | (TR_VERSION_MINOR << 8) | TR_VERSION_PATCH)
#define TR_VERSION_STRING "0.1.0"

#endif
