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

#ifdef __cplusplus
#define TR_BEGIN_DECLS extern "C" {
#define TR_END_DECLS }
#else
#define TR_BEGIN_DECLS
#define TR_END_DECLS
#endif

#endif
