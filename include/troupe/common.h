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

#ifdef __cplusplus
#define TR_BEGIN_DECLS extern "C" {
#define TR_END_DECLS }
#else
#define TR_BEGIN_DECLS
#define TR_END_DECLS
#endif

#endif
