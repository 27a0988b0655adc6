/* SPDX-License-Identifier: MIT */
/*
 * Name resolution (<troupe/net.h>, tr_resolve): getaddrinfo has no
 * non-blocking form, so it runs on the blocking pool and its answer comes
 * back to the asking actor as a tr_resolved_t.
 */
#include "io_internal.h"

#include <troupe/net.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

TR_MESSAGE_DEFINE(tr_resolved_t, .flags = TR_MSG_SYSTEM);

#define HOST_MAX 253 /* longest DNS name */

typedef struct rjob {
  tr__io_t *io;
  uint64_t to;
  int family;
  tr_resolved_t *msg;
  char host[HOST_MAX + 1];
} rjob_t;

static int status_of(int gai) {
  switch (gai) {
  case EAI_NONAME:
#ifdef EAI_NODATA
  case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
  case EAI_ADDRFAMILY:
#endif
    return TR_ENOENT;
  case EAI_AGAIN: return TR_EAGAIN;
  case EAI_MEMORY: return TR_ENOMEM;
  default: return TR_EIO;
  }
}

/* Pool thread. */
static void resolve_run(void *arg) {
  rjob_t *j = arg;
  tr_resolved_t *m = j->msg;
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = j->family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  int g = getaddrinfo(j->host, NULL, &hints, &res);
  if ((g == EAI_NONAME && j->family != AF_UNSPEC)
#ifdef EAI_ADDRFAMILY
      || g == EAI_ADDRFAMILY
#endif
  ) {
    /* AI_ADDRCONFIG hides addresses of a family no interface has (e.g.
     * "::1" asked as AF_INET6 without IPv6 configured): ask again without
     * it (only then: a name that does not exist is not looked up twice) */
    hints.ai_flags = 0;
    g = getaddrinfo(j->host, NULL, &hints, &res);
  }
  if (g != 0) {
    m->status = status_of(g);
  } else {
    for (struct addrinfo *ai = res; ai && m->naddrs < TR_RESOLVE_MAX;
         ai = ai->ai_next) {
      tr_addr_t a;
      memset(&a, 0, sizeof(a));
      a.family = ai->ai_family;
      const void *src;
      if (ai->ai_family == AF_INET)
        src = &((const struct sockaddr_in *)ai->ai_addr)->sin_addr;
      else if (ai->ai_family == AF_INET6)
        src = &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
      else
        continue;
      if (!inet_ntop(ai->ai_family, src, a.host, sizeof(a.host))) continue;
      int dup = 0;
      for (unsigned k = 0; k < m->naddrs && !dup; k++)
        dup = strcmp(m->addrs[k].host, a.host) == 0;
      if (!dup) m->addrs[m->naddrs++] = a;
    }
    freeaddrinfo(res);
    m->status = m->naddrs ? 0 : TR_ENOENT;
  }
  /* delivered by the reactor, which also ends the pending operation */
  tr__io_done_push(j->io, j->to, &m->hdr);
  free(j);
}

int tr_resolve(tr_ctx_t *ctx, const char *host, int family, uint64_t cookie) {
  if (!ctx || !ctx->a || !host || !*host) return TR_EINVAL;
  if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
    return TR_EINVAL;
  size_t n = strlen(host);
  if (n > HOST_MAX) return TR_EINVAL;
  tr__io_t *io = tr__io_of_ctx(ctx);
  if (!io) return TR_ENOSYS;
  tr_resolved_t *m = tr_msg_new(&tr_resolved_t__type);
  rjob_t *j = malloc(sizeof(*j));
  if (!m || !j) {
    tr_msg_free(m);
    free(j);
    return TR_ENOMEM;
  }
  m->cookie = cookie;
  j->io = io;
  j->to = tr__self_ref(ctx->a).id;
  j->family = family;
  j->msg = m;
  memcpy(j->host, host, n + 1);
  int rc = tr__pool_submit_op(io, resolve_run, j);
  if (rc) {
    tr_msg_free(m);
    free(j);
  }
  return rc;
}
