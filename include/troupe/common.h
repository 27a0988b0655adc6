/* SPDX-License-Identifier: MIT */
/*
 * Definitions shared by every public troupe header: the export macro and
 * the calling conventions that apply to the whole API.
 *
 * Conventions: functions return 0 on success or a negative TR_E* code
 * (see <troupe/errno.h>). Unless a function says otherwise it may be called
 * from any thread, inside or outside the runtime.
 */
#ifndef TROUPE_COMMON_H
#define TROUPE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) && __GNUC__ >= 4
#define TR_EXTERN __attribute__((visibility("default")))
#else
#define TR_EXTERN
#endif

/* Durations: every timeout, delay and deadline of the API is a
 * tr_duration_t, a count of milliseconds. Two values have one meaning in
 * every call: TR_NOWAIT (0) does not wait (a receive polls, a timed send
 * fails at once if it cannot proceed, a timer fires on the next tick) and
 * TR_FOREVER (-1) waits without limit. Any other negative value is
 * TR_EINVAL. Time is measured on CLOCK_MONOTONIC; arithmetic on durations
 * saturates instead of overflowing. */
typedef int64_t tr_duration_t;
#define TR_NOWAIT ((tr_duration_t)0)
#define TR_FOREVER ((tr_duration_t)-1)

/* Configuration structs that may grow (tr_runtime_config_t,
 * tr_io_config_t, tr_chan_opts_t, tr_tcp_listen_opts_t, tr_msg_limits_t)
 * start with `size_t size`: how much of the struct the caller knows.
 * Their tr_*_init function is inline: it zeroes the struct and sets size
 * to the sizeof the caller was compiled with. The library reads only the
 * fields inside size (later ones take their defaults) and refuses, with
 * TR_EINVAL, a struct larger than its own whose extra bytes are not all 0,
 * so an old program runs on a new library and a new program fails cleanly
 * on an old one instead of losing a setting (a nonzero size smaller than
 * the size field itself is TR_EINVAL too). size 0 (a struct written as
 * {0} or with designated initialisers) stands for the struct as first
 * published with a size field, i.e. this release's; a field added in a
 * later release is read only from a struct whose size covers it, so use
 * the init function to reach it. Fixed tables that programs write as
 * static data (behaviours, handlers, mailbox and child specs) do not grow:
 * a later release adds a new struct instead. */
#define TR_CONFIG_SIZE_INIT(p)                                                \
  do {                                                                        \
    unsigned char *tr_p_ = (unsigned char *)(p);                              \
    for (size_t tr_i_ = 0; tr_i_ < sizeof(*(p)); tr_i_++) tr_p_[tr_i_] = 0;   \
    (p)->size = sizeof(*(p));                                                 \
  } while (0)

#ifdef __cplusplus
#define TR_BEGIN_DECLS extern "C" {
#define TR_END_DECLS }
#else
#define TR_BEGIN_DECLS
#define TR_END_DECLS
#endif

#endif
