/* SPDX-License-Identifier: MIT */
/* The helpers of proto.h. */
#include "config.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <troupe/errno.h>

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
