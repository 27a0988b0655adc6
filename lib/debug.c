/* SPDX-License-Identifier: MIT */
/*
 * The one way a failed debug check ends the program (lib/debug.h): a line
 * on stderr that says which call went wrong, then abort(), so that a core
 * file or a debugger stops at the misuse itself.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "debug.h"

void tr__fatal(const char *fn, const char *fmt, ...) {
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  (void)vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  /* one write, so that lines from several threads do not interleave */
  (void)fprintf(stderr, "troupe: %s: %s\n", fn, line);
  (void)fflush(stderr);
  abort();
}
