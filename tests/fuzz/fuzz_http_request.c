/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for tr_http_request_parse, the parser of what a
 * client sends a server: any input must give a head, a wait for more
 * bytes or a refusal with a listed status, never a crash or a read past
 * the input, and the same answer whether the bytes come whole, one at a
 * time (in a buffer that moves) or in two pieces; with tight limits and
 * with the defaults. The checks are in http_fuzz.h. Build and run with
 * tests/fuzz/run.sh.
 */
#include <stddef.h>
#include <stdint.h>

#include "http_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_head_all(0, (const char *)data, size, 0);
  return 0;
}
