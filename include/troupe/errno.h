/* SPDX-License-Identifier: MIT */
/*
 * Error codes. Every troupe function that can fail returns 0 or one of the
 * negative codes below. Codes that mirror a POSIX condition equal -E<name>
 * of <errno.h>; troupe's own conditions live in a reserved range far below
 * any errno value. TR_ERRNO_MAP is the single list from which the enum,
 * tr_strerror(), tr_err_name() and the errors page of the manual are made.
 */
#ifndef TROUPE_ERRNO_H
#define TROUPE_ERRNO_H

#include <errno.h>

#include <troupe/common.h>

#define TR__EOWN_BASE (-30000)

/* XX(name, value, description) */
#define TR_ERRNO_MAP(XX)                                                     \
  XX(EPERM, -EPERM, "operation not permitted")                               \
  XX(ENOENT, -ENOENT, "no such entry")                                       \
  XX(EAGAIN, -EAGAIN, "resource temporarily unavailable, try again")         \
  XX(ENOMEM, -ENOMEM, "out of memory")                                       \
  XX(EBUSY, -EBUSY, "resource busy")                                         \
  XX(EEXIST, -EEXIST, "already exists")                                      \
  XX(EDEADLK, -EDEADLK, "would deadlock (a blocking call from actor code)")  \
  XX(EINVAL, -EINVAL, "invalid argument")                                    \
  XX(ENOSPC, -ENOSPC, "no space left (limit reached)")                       \
  XX(ERANGE, -ERANGE, "value out of range")                                  \
  XX(ENOSYS, -ENOSYS, "function not implemented")                            \
  XX(EBADMSG, -EBADMSG, "actor does not accept this message type")           \
  XX(EPROTO, -EPROTO, "protocol error")                                      \
  XX(EMSGSIZE, -EMSGSIZE, "message too long")                                \
  XX(ESHUTDOWN, -ESHUTDOWN, "runtime is shutting down")                      \
  XX(ETIMEDOUT, -ETIMEDOUT, "timed out")                                     \
  XX(ECANCELED, -ECANCELED, "operation canceled")                            \
  XX(EBADF, -EBADF, "bad file descriptor")                                   \
  XX(EIO, -EIO, "input/output error")                                        \
  XX(EPIPE, -EPIPE, "broken pipe")                                           \
  XX(ECONNREFUSED, -ECONNREFUSED, "connection refused")                      \
  XX(ECONNRESET, -ECONNRESET, "connection reset by peer")                    \
  XX(ENOTCONN, -ENOTCONN, "socket is not connected")                         \
  XX(EADDRINUSE, -EADDRINUSE, "address already in use")                      \
  XX(ENOACTOR, TR__EOWN_BASE - 1, "no such actor (stopped or never existed)")\
  XX(ECLOSED, TR__EOWN_BASE - 2, "mailbox or channel is closed")             \
  XX(ENOREPLY, TR__EOWN_BASE - 3, "request dropped without a reply")         \
  XX(EFAILED, TR__EOWN_BASE - 4, "actor failed")                             \
  XX(EKILLED, TR__EOWN_BASE - 5, "actor was killed")                         \
  XX(ECODEC, TR__EOWN_BASE - 6, "message cannot be encoded or decoded")      \
  XX(ETLS, TR__EOWN_BASE - 7, "TLS handshake or record failure")             \
  XX(ECERT, TR__EOWN_BASE - 8,                                               \
     "peer certificate not trusted, expired or not for this host")

TR_BEGIN_DECLS

typedef enum tr_errno {
#define TR__ERR_ENUM(name, value, desc) TR_##name = (value),
  TR_ERRNO_MAP(TR__ERR_ENUM)
#undef TR__ERR_ENUM
  TR__ERRNO_END_ = 0
} tr_errno_t;

/* Human-readable description of an error code; never NULL. For a code
 * that is not in the list the result is "unknown error". */
TR_EXTERN const char *tr_strerror(int err);

/* Symbolic name of an error code ("TR_EAGAIN"); "TR_UNKNOWN" for a code
 * not in the list, "TR_OK" for 0. */
TR_EXTERN const char *tr_err_name(int err);

TR_END_DECLS

#endif
