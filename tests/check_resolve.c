/* SPDX-License-Identifier: MIT */
/*
 * Tests of tr_resolve (<troupe/net.h>): "localhost" and numeric addresses
 * resolve (each family on its own), a numeric address of the other family
 * and a name under .invalid do not (TR_ENOENT, or TR_EAGAIN / TR_EIO
 * where the machine's resolver cannot be reached), bad arguments are refused at once, and
 * a resolved "localhost" is connected to with tr_tcp_connect.
 */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <troupe.h>
#include <troupe/io.h>
#include <troupe/net.h>

#include "testutil.h"

enum { Q_LOCAL4 = 1, Q_NUM4, Q_NUM6, Q_WRONGFAM, Q_INVALID, Q_LOCALANY, NQ };

static tr_resolved_t got[NQ];
static _Atomic int ngot, connected_status = 1;
static uint16_t listen_port;

static int r_init(tr_ctx_t *ctx, void *st, void *arg) {
  (void)st;
  (void)arg;
  ck_assert_int_eq(tr_resolve(ctx, NULL, AF_UNSPEC, 0), TR_EINVAL);
  ck_assert_int_eq(tr_resolve(ctx, "", AF_UNSPEC, 0), TR_EINVAL);
  ck_assert_int_eq(tr_resolve(ctx, "localhost", 12345, 0), TR_EINVAL);
  char longname[300];
  memset(longname, 'a', sizeof(longname) - 1);
  longname[sizeof(longname) - 1] = '\0';
  ck_assert_int_eq(tr_resolve(ctx, longname, AF_UNSPEC, 0), TR_EINVAL);
  ck_assert_int_eq(tr_resolve(NULL, "localhost", AF_UNSPEC, 0), TR_EINVAL);

  ck_assert_int_eq(tr_resolve(ctx, "localhost", AF_INET, Q_LOCAL4), 0);
  ck_assert_int_eq(tr_resolve(ctx, "127.0.0.1", AF_UNSPEC, Q_NUM4), 0);
  ck_assert_int_eq(tr_resolve(ctx, "::1", AF_INET6, Q_NUM6), 0);
  ck_assert_int_eq(tr_resolve(ctx, "127.0.0.1", AF_INET6, Q_WRONGFAM), 0);
  ck_assert_int_eq(tr_resolve(ctx, "no-such-host.invalid", AF_UNSPEC, Q_INVALID), 0);
  ck_assert_int_eq(tr_resolve(ctx, "localhost", AF_UNSPEC, Q_LOCALANY), 0);
  return 0;
}

static int r_resolved(tr_ctx_t *ctx, void *st, void *msg) {
  (void)st;
  tr_resolved_t *m = msg;
  ck_assert_uint_gt(m->cookie, 0);
  ck_assert_uint_lt(m->cookie, NQ);
  got[m->cookie] = *m;
  ck_assert_uint_le(m->naddrs, TR_RESOLVE_MAX);
  if (m->cookie == Q_LOCAL4 && m->status == 0) {
    tr_tcp_id_t id;
    ck_assert_int_eq(tr_tcp_connect(ctx, m->addrs[0].host, listen_port, 2000,
                                    9, &id),
                     0);
  }
  atomic_fetch_add(&ngot, 1);
  return 0;
}
static int r_connected(tr_ctx_t *ctx, void *st, void *msg) {
  (void)st;
  tr_tcp_connected_t *m = msg;
  ck_assert_uint_eq(m->cookie, 9);
  atomic_store(&connected_status, m->status);
  if (m->status == 0) ck_assert_int_eq(tr_tcp_close(ctx, m->conn), 0);
  return 0;
}
static int r_closed(tr_ctx_t *ctx, void *st, void *msg) {
  (void)st;
  (void)msg;
  (void)ctx;
  return 0;
}
static const tr_handler_t r_h[] = {{&tr_resolved_t__type, r_resolved},
                                   {&tr_tcp_connected_t__type, r_connected},
                                   {&tr_tcp_closed_t__type, r_closed}};
static const tr_behavior_t r_b = {
    .name = "resolver", .init = r_init, .handlers = TR_HANDLERS(r_h)};

static int has(const tr_resolved_t *m, const char *host, int family) {
  for (unsigned i = 0; i < m->naddrs; i++)
    if (m->addrs[i].family == family && strcmp(m->addrs[i].host, host) == 0)
      return 1;
  return 0;
}

START_TEST(test_resolve) {
  struct sockaddr_in sa;
  int l = tu_listen_loopback(8, &sa);
  listen_port = ntohs(sa.sin_port);

  tr_runtime_t *rt = tu_runtime(2, 0, 1);
  tr_ref_t a;
  ck_assert_int_eq(tr_spawn(rt, &r_b, NULL, &a), 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 20000), 0);
  ck_assert_int_eq(atomic_load(&ngot), NQ - 1);

  ck_assert_int_eq(got[Q_LOCAL4].status, 0);
  ck_assert_uint_ge(got[Q_LOCAL4].naddrs, 1);
  for (unsigned i = 0; i < got[Q_LOCAL4].naddrs; i++)
    ck_assert_int_eq(got[Q_LOCAL4].addrs[i].family, AF_INET);
  ck_assert(has(&got[Q_LOCAL4], "127.0.0.1", AF_INET));
  ck_assert_int_eq(atomic_load(&connected_status), 0);

  ck_assert_int_eq(got[Q_NUM4].status, 0);
  ck_assert_uint_eq(got[Q_NUM4].naddrs, 1); /* duplicates are merged */
  ck_assert(has(&got[Q_NUM4], "127.0.0.1", AF_INET));
  ck_assert_int_eq(got[Q_NUM6].status, 0);
  ck_assert(has(&got[Q_NUM6], "::1", AF_INET6));
  ck_assert_int_eq(got[Q_WRONGFAM].status, TR_ENOENT);
  ck_assert_uint_eq(got[Q_WRONGFAM].naddrs, 0);
  /* TR_EAGAIN or TR_EIO: a machine whose resolver cannot be reached */
  ck_assert_msg(got[Q_INVALID].status == TR_ENOENT ||
                    got[Q_INVALID].status == TR_EAGAIN ||
                    got[Q_INVALID].status == TR_EIO,
                "a .invalid name resolved: %d", got[Q_INVALID].status);
  ck_assert_uint_eq(got[Q_INVALID].naddrs, 0);
  ck_assert_int_eq(got[Q_LOCALANY].status, 0);
  ck_assert_uint_ge(got[Q_LOCALANY].naddrs, 1);

  tr_actor_stop(a, 0);
  ck_assert_int_eq(tr_runtime_await_quiescent(rt, 10000), 0);
  ck_assert_int_eq(tr_runtime_shutdown(rt, 10000), 0);
  ck_assert_int_eq(tr_io_fini(rt), 0);
  tr_runtime_free(rt);
  ck_assert_int_eq(close(l), 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("resolve");
  TCase *tc = tcase_create("resolve");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_resolve);
  suite_add_tcase(s, tc);
  return tu_run(s);
}
