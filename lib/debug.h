/* SPDX-License-Identifier: MIT */
/*
 * Checks of --enable-debug builds (TR_DEBUG): misuse of the API that a
 * release build lets pass silently (a message or a handle freed twice, a
 * blocking call made by a handler on a worker thread) and the runtime's
 * own invariants. A failed check prints one line naming the function and
 * aborts:
 *
 *   troupe: tr_msg_free: message freed twice (type ping_t)
 *
 * In release builds the checks compile to nothing, and no structure
 * changes size: what they need lives in spare fields (see lib/msg.c).
 */
#ifndef TR_DEBUG_H
#define TR_DEBUG_H

/* Prints "troupe: <fn>: <message>" on stderr and aborts. */
__attribute__((noreturn, cold, format(printf, 2, 3))) void
tr__fatal(const char *fn, const char *fmt, ...);

/* Nonzero on a worker thread of any runtime (inside a handler, or the
 * worker's own loop): a call that blocks there stalls that worker's
 * actors, and when it waits for one of them, deadlocks. */
int tr__on_worker(void);

#ifdef TR_DEBUG
/* TR__ASSERT(cond, fmt, ...): in the calling function's name. */
#define TR__ASSERT(cond, ...)                                                \
  do {                                                                       \
    if (__builtin_expect(!(cond), 0)) tr__fatal(__func__, __VA_ARGS__);      \
  } while (0)
/* A call that may block: refused on a worker thread. */
#define TR__ASSERT_MAY_BLOCK()                                               \
  TR__ASSERT(!tr__on_worker(),                                               \
             "blocking call made on a worker thread (from a handler?)")
#else
#define TR__ASSERT(cond, ...) ((void)0)
#define TR__ASSERT_MAY_BLOCK() ((void)0)
#endif

#endif
