/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for tr_http_response_parse, the parser of what a
 * server sends a client: as fuzz_http_request.c does for requests (the
 * checks are in http_fuzz.h), once as the answer to a GET and once as the
 * answer to a HEAD. The two must agree on everything but the body, which
 * a HEAD response never has. Build and run with tests/fuzz/run.sh.
 */
#include <stddef.h>
#include <stdint.h>

#include "http_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = (const char *)data;
  fz_head_all(1, p, size, 0);
  fz_head_all(1, p, size, 1);

  tr_http_field_t f[FZ_FIELDS], g[FZ_FIELDS];
  tr_http_head_t get, head;
  tr_http_head_init(&get, f, FZ_FIELDS);
  tr_http_head_init(&head, g, FZ_FIELDS);
  int rg = tr_http_response_parse(&get, p, size, NULL, 0);
  int rh = tr_http_response_parse(&head, p, size, NULL, 1);
  FZ_CHECK(rg == rh);
  if (rh > 0) {
    FZ_CHECK(head.body == TR_HTTP_BODY_NONE && head.content_length == 0);
    FZ_CHECK(get.status == head.status && get.nfields == head.nfields &&
             get.upgrade == head.upgrade);
    if (get.body != TR_HTTP_BODY_CLOSE)
      FZ_CHECK(get.keep_alive == head.keep_alive);
  }
  return 0;
}
