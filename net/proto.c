/* SPDX-License-Identifier: MIT */
/* The helpers of proto.h. */
#include "config.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

#include <troupe.h>

#include "proto.h"

int tr__grow(void *pp, size_t *cap, size_t need) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 256;
  while (c < need) {
    if (c > SIZE_MAX / 2) return TR_ENOMEM;
    c *= 2;
  }
  void *p = realloc(*(void **)pp, c);
  if (!p) return TR_ENOMEM;
  *(void **)pp = p;
  *cap = c;
  return 0;
}

int tr__is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
      (c >= '0' && c <= '9'))
    return 1;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int tr__is_token(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (!tr__is_tchar((unsigned char)*s)) return 0;
  return 1;
}

int tr__list_has(tr_http_str_t v, const char *t) {
  size_t tl = strlen(t), i = 0;
  while (i < v.n) {
    while (i < v.n && (v.p[i] == ' ' || v.p[i] == '\t' || v.p[i] == ','))
      i++;
    size_t b = i;
    while (i < v.n && v.p[i] != ',') i++;
    size_t e = i;
    while (e > b && (v.p[e - 1] == ' ' || v.p[e - 1] == '\t')) e--;
    if (e - b == tl && !strncasecmp(v.p + b, t, tl)) return 1;
  }
  return 0;
}

int tr__is_ip(const char *s) {
  unsigned char b[16];
  return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

void *tr__ws_realloc(void *arg, void *ptr, size_t size) {
  (void)arg;
  if (!size) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, size);
}

int tr__ws_frame_put(char **out, size_t *len, size_t *off, size_t *cap,
                     int opcode, const void *p, size_t n, int masked) {
  uint8_t mask[4];
  if (masked && RAND_bytes(mask, 4) != 1) return TR_EIO;
  size_t need = tr_ws_header_size(n, masked) + n;
  if (*off && *off == *len) *off = *len = 0;
  if (tr__grow(out, cap, *len + need)) return TR_ENOMEM;
  int64_t k = tr_ws_message_write((uint8_t *)*out + *len, need, opcode, p,
                                  n, masked ? mask : NULL);
  if (k < 0) return (int)k;
  *len += (size_t)k;
  return 0;
}

int tr__ws_close_payload(uint8_t *pl, int code, const char *why) {
  size_t wl = why ? strlen(why) : 0;
  if (wl > TR_WS_REASON_MAX) wl = TR_WS_REASON_MAX;
  return tr_ws_close_build(pl, (unsigned)code, why, wl);
}

size_t tr__ws_close_echo(const tr_ws_event_t *ev, uint8_t pl[2]) {
  if (ev->code == TR_WS_CLOSE_NO_STATUS) return 0;
  pl[0] = (uint8_t)(ev->code >> 8);
  pl[1] = (uint8_t)ev->code;
  return 2;
}

tr_ws_message_t *tr__ws_message_new(tr_ref_t conn, const tr_ws_event_t *ev) {
  tr_ws_message_t *m = tr_msg_new(&tr_ws_message_t__type);
  uint8_t *d = m ? malloc(ev->len + 1) : NULL;
  if (!d) {
    tr_msg_free(m);
    return NULL;
  }
  memcpy(d, ev->data, ev->len);
  d[ev->len] = 0;
  m->conn = conn;
  m->opcode = ev->kind == TR_WS_EV_TEXT ? TR_WS_OP_TEXT : TR_WS_OP_BINARY;
  m->data = d;
  m->len = ev->len;
  return m;
}

tr_ws_closed_t *tr__ws_closed_new(tr_ref_t conn, int code, int clean,
                                  const uint8_t *reason, size_t rlen) {
  tr_ws_closed_t *m = tr_msg_new(&tr_ws_closed_t__type);
  if (!m) return NULL;
  m->conn = conn;
  m->code = code;
  m->clean = clean;
  if (rlen >= sizeof(m->reason)) rlen = sizeof(m->reason) - 1;
  if (rlen) memcpy(m->reason, reason, rlen);
  return m;
}
