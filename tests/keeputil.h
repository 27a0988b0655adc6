/* SPDX-License-Identifier: MIT */
/*
 * The fixture of the "kept messages" tests of check_chan_broadcast.c and
 * check_chan_select.c: a keeper actor keeps some of the lent messages it
 * is handed (views, envelopes) and forwards others to a sink actor; both
 * report into a keep_obs_t. The includer defines KEEP_CAP (how many the
 * keeper may keep) and writes the handlers, which differ by message kind.
 */
#ifndef TROUPE_KEEPUTIL_H
#define TROUPE_KEEPUTIL_H

#include <troupe.h>

typedef struct keep_obs {
  _Atomic uint64_t seen, sunk, bad, kept_ok, closed;
} keep_obs_t;

typedef struct keeper {
  keep_obs_t *o;
  tr_ref_t sink;
  void *kept[KEEP_CAP];
  size_t nkept;
} keeper_t;

typedef struct keeper_arg {
  keep_obs_t *o;
  tr_ref_t sink;
} keeper_arg_t;

/* The sink's state is the keep_obs_t * it gets as arg. */
static int sink_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  *(keep_obs_t **)state = arg;
  return 0;
}

static int keeper_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  keeper_t *k = state;
  const keeper_arg_t *a = arg;
  k->o = a->o;
  k->sink = a->sink;
  return 0;
}

#endif
