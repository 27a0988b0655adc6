/* SPDX-License-Identifier: MIT */
/*
 * The I/O layer: the reactor (file descriptors owned by actors), timers,
 * file operations and the blocking pool. Every event is a message: the
 * reactor, the timer wheel and the pool deliver readiness, completions,
 * timer ticks and results to the owning actor's system mailbox (types
 * with TR_MSG_SYSTEM, served before data mail). Idle workers drive the
 * reactor; there is no I/O thread. See doc/reactor.md and doc/timers.md.
 *
 * The layer attaches itself to a runtime on first use with the defaults
 * (call tr_io_attach() before that to choose the backend or the size of
 * the blocking pool) and is released by tr_runtime_free(): nothing needs
 * to be called to release it.
 *
 * Functions taking a tr_ctx_t * are for the actor that ctx belongs to,
 * during one of its handlers or its init; the fds, timers and operations
 * they create belong to that actor and are released when it stops.
 */
#ifndef TROUPE_IO_H
#define TROUPE_IO_H

#include <troupe/common.h>
#include <troupe/mailbox.h>
#include <troupe/actor.h>

TR_BEGIN_DECLS

/* Declares a message type the library delivers (exported descriptor). */
#define TR_IO_MESSAGE(T, ...)                                                \
  typedef struct T {                                                         \
    tr_msg_t hdr;                                                            \
    __VA_ARGS__                                                              \
  } T;                                                                       \
  TR_EXTERN extern const tr_msgtype_t T##__type;

/* ---- Attaching the I/O layer ------------------------------------------- */

typedef enum tr_io_backend {
  TR_IO_BACKEND_AUTO = 0, /* $TROUPE_IO_BACKEND, else uring, epoll, poll */
  TR_IO_BACKEND_URING,
  TR_IO_BACKEND_EPOLL,
  TR_IO_BACKEND_KQUEUE,
  TR_IO_BACKEND_POLL
} tr_io_backend_t;

typedef struct tr_io_config {
  size_t size;               /* set by tr_io_config_init (<troupe/common.h>:
                                growable config structs); 0 = this release's */
  tr_io_backend_t backend;   /* AUTO: see above */
  unsigned blocking_threads; /* blocking pool size; 0 = 4 */
  unsigned blocking_queue;   /* jobs queued before TR_EAGAIN; 0 = 65536 */
} tr_io_config_t;

/* Fills cfg with the defaults (all fields 0) and its size (inline: the
 * size the caller was compiled with). */
static inline void tr_io_config_init(tr_io_config_t *cfg) {
  TR_CONFIG_SIZE_INIT(cfg);
}

/* Attaches the I/O layer to rt with cfg (NULL: defaults). With
 * TR_IO_BACKEND_AUTO the environment variable TROUPE_IO_BACKEND
 * (uring|epoll|kqueue|poll) forces a backend; otherwise the first of
 * uring, epoll, poll that the build and the kernel allow is used (no
 * kqueue backend is shipped yet: asking for it gives TR_ENOSYS). Under
 * valgrind, which cannot run io_uring, a backend not forced (by cfg or
 * the variable) is never uring: epoll (or poll) is used instead.
 * Returns 0, TR_EBUSY (already attached), TR_ENOSYS (the backend asked
 * for is not available here), TR_EINVAL (unknown name in the variable),
 * TR_ENOMEM, or a system error. Any thread, before or after start. */
TR_EXTERN int tr_io_attach(tr_runtime_t *rt, const tr_io_config_t *cfg);

/* The name of the backend in use ("uring", "epoll", "kqueue", "poll"),
 * attaching with the defaults if needed; NULL if that fails. The default
 * is "uring" where it works, except under valgrind (detected at attach
 * time), where it is "epoll" unless uring was forced (tr_io_attach). */
TR_EXTERN const char *tr_io_backend_name(tr_runtime_t *rt);

/* Releases the I/O layer of a runtime that tr_runtime_shutdown() has shut
 * down: closes the fds still registered, drops armed timers, joins the
 * blocking pool (waiting for running jobs). Not needed: tr_runtime_free()
 * does the same for a layer still attached. It is kept for programs that
 * want those resources back before freeing the runtime; the layer is not
 * released by the shutdown itself, since threads outside the runtime may
 * still call tr_timer_cancel or tr_io_now_ms until tr_runtime_free. A
 * later call that attaches the layer again (tr_io_now_ms,
 * tr_io_backend_name) attaches a new one, which tr_runtime_free releases.
 * Returns 0 (also when called again, or for a runtime without the I/O
 * layer) or TR_EBUSY (not shut down yet). Call from a thread outside the
 * runtime, with no other call on rt's I/O layer running. */
TR_EXTERN int tr_io_fini(tr_runtime_t *rt);

/* Milliseconds on the runtime's monotonic timer clock (the clock that
 * tr_timer_deadline takes). Attaches if needed. */
TR_EXTERN uint64_t tr_io_now_ms(tr_runtime_t *rt);

/* ---- File descriptors owned by actors ----------------------------------- */

/* Names a registered fd: its slot and a generation, so an id that has
 * been closed never names a later registration. 0 is never valid. */
typedef uint64_t tr_io_id_t;

#define TR_IO_READ 0x1u   /* readable (or peer hang-up) */
#define TR_IO_WRITE 0x2u  /* writable */
#define TR_IO_ERROR 0x4u  /* error condition (reported, never asked) */
#define TR_IO_HUP 0x8u    /* hang-up (reported, never asked) */

/* Readiness of a registered fd. Interest is one-shot: after this message
 * the fd is quiet until the owner calls tr_io_want() again. */
TR_IO_MESSAGE(tr_io_ready_t, tr_io_id_t id; int fd; uint32_t events;)

/* Acknowledges tr_io_close(): the fd is closed and no message about id
 * follows. status is 0. */
TR_IO_MESSAGE(tr_io_closed_t, tr_io_id_t id; int fd; int status;)

/* Registers fd (which should be non-blocking) for the calling actor and
 * arms it for events (TR_IO_READ | TR_IO_WRITE, or 0). The fd now belongs
 * to the reactor: close it only with tr_io_close(); it is closed when the
 * actor stops. Returns 0 and *id, TR_EINVAL, TR_ENOMEM, or the backend's
 * error (the caller then still owns fd). */
TR_EXTERN int tr_io_register(tr_ctx_t *ctx, int fd, uint32_t events,
                             tr_io_id_t *id);

/* Arms id for events (replacing the previous interest; 0 disarms).
 * Returns 0, TR_ENOENT (closed or unknown id), TR_EPERM (another actor's
 * fd), TR_EINVAL. */
TR_EXTERN int tr_io_want(tr_ctx_t *ctx, tr_io_id_t id, uint32_t events);

/* Closes id asynchronously: no tr_io_ready_t for id is delivered after
 * this call returns that was not already in the mailbox, and a
 * tr_io_closed_t follows once the fd is closed (after it, the fd number
 * may be reused). Returns 0, TR_ENOENT, TR_EPERM. */
TR_EXTERN int tr_io_close(tr_ctx_t *ctx, tr_io_id_t id);

/* ---- Timers ------------------------------------------------------------- */

/* Names an armed timer; 0 is never valid. */
typedef uint64_t tr_timer_id_t;

/* Delays and intervals are tr_duration_t (milliseconds, <troupe/common.h>);
 * deadlines are points of the tr_io_now_ms clock. The arithmetic
 * saturates: a delay of TR_FOREVER, or one too large to reach, means
 * "never": the timer stays armed, and keeps the runtime from being
 * quiescent, until it is cancelled or its actor stops. A delay of
 * TR_NOWAIT (0) fires on the next millisecond tick. A negative duration
 * other than TR_FOREVER is TR_EINVAL. */

/* A timer armed with tr_timer_start or tr_timer_deadline fired.
 * seq counts periods since the start (1 for the first tick); missed is
 * how many periods passed unseen since the previous tick (an interval
 * that fell behind does not burst; it skips, and says so); when_ms is the
 * scheduled time on the tr_io_now_ms clock. when_ns is the same instant
 * as a CLOCK_MONOTONIC time in nanoseconds (comparable with
 * clock_gettime(CLOCK_MONOTONIC), a whole number of ms after the
 * tr_io_now_ms origin), and fired_ns the CLOCK_MONOTONIC time at which
 * the timer was found due and its message made: fired_ns >= when_ns, and
 * fired_ns - when_ns is how late the timer fired (the time the message
 * then waits in the mailbox is not included). */
TR_IO_MESSAGE(tr_timer_fired_t, tr_timer_id_t id; uint64_t cookie;
              uint64_t seq; uint64_t missed; uint64_t when_ms;
              uint64_t when_ns; uint64_t fired_ns;)

/* After delay, sends msg to `to` (sender: the calling actor, or none
 * when ctx is NULL from outside the runtime). The timer owns msg until
 * then; a cancelled timer frees it. A timer armed by an actor is
 * cancelled when that actor stops. The message is sent without the
 * accepts-check, as system messages are. msg is consumed: freed if the
 * call fails (the rule of every send, <troupe/actor.h>).
 * Returns 0 (and *id if id is not NULL), TR_EINVAL, TR_ENOACTOR (from
 * outside the runtime: `to`'s runtime is gone), TR_ENOSYS (the I/O layer
 * could not attach), TR_ENOMEM. */
TR_EXTERN int tr_timer_send_after(tr_ctx_t *ctx, tr_ref_t to,
                                  tr_duration_t delay, void *msg,
                                  tr_timer_id_t *id);

/* Arms a timer on the calling actor: a tr_timer_fired_t arrives after
 * delay, then every interval after that, on a fixed schedule start +
 * k * interval (no drift accumulates), until cancelled or the actor stops.
 * interval is the time to the next repetition: TR_FOREVER makes a one-shot
 * timer; 0 (no pause between firings) is TR_EINVAL.
 * Returns 0 and *id, TR_EINVAL, TR_ENOSYS, TR_ENOMEM. */
TR_EXTERN int tr_timer_start(tr_ctx_t *ctx, tr_duration_t delay,
                             tr_duration_t interval, uint64_t cookie,
                             tr_timer_id_t *id);

/* One tr_timer_fired_t at the absolute time at_ms of tr_io_now_ms (at
 * once if that has passed). Returns as tr_timer_start. */
TR_EXTERN int tr_timer_deadline(tr_ctx_t *ctx, uint64_t at_ms,
                                uint64_t cookie, tr_timer_id_t *id);

/* Cancels a timer. Returns 0 if it was armed: it will not fire any more
 * (a message it sent before may still be in the mailbox: check the id);
 * TR_ENOENT if it already fired (one-shot), was cancelled, or never
 * existed. Any thread. */
TR_EXTERN int tr_timer_cancel(tr_runtime_t *rt, tr_timer_id_t id);

/* Like tr_ask, and if no reply arrives within timeout, k runs with
 * TR_ETIMEDOUT (reply NULL); a reply arriving later is dropped (counted
 * as a dead letter). TR_FOREVER: no timeout (tr_ask). req is consumed as
 * by tr_ask. Returns 0, or the codes of tr_ask, TR_ENOSYS or TR_ENOMEM
 * (then k never runs). */
TR_EXTERN int tr_ask_timeout(tr_ctx_t *ctx, tr_ref_t to, void *req,
                             tr_duration_t timeout, tr_reply_fn k,
                             void *cookie);

/* ---- The blocking pool ---------------------------------------------------- */

/* A blocking function: runs on a pool thread, never on a worker. */
typedef int64_t (*tr_blocking_fn)(void *arg);

/* The result of tr_blocking_run: fn's return value and the arguments. */
TR_IO_MESSAGE(tr_blocking_done_t, uint64_t job; int64_t result; void *arg;
              uint64_t cookie;)

/* Runs fn(arg) on the blocking pool (at most blocking_threads at once,
 * the rest queued) and sends its result to the calling actor (or to the
 * actor `to` if ctx is NULL) as tr_blocking_done_t. arg stays the
 * caller's; it must live until the result arrives. If the actor stops
 * first the result is dropped (fn still runs to the end). Returns 0 and
 * *job (if job is not NULL), TR_EAGAIN (queue full), TR_EINVAL, TR_ENOMEM. */
TR_EXTERN int tr_blocking_run(tr_ctx_t *ctx, tr_blocking_fn fn, void *arg,
                              uint64_t cookie, uint64_t *job);

/* ---- Files ------------------------------------------------------------------ */

#define TR_FILE_READ 1
#define TR_FILE_WRITE 2
#define TR_FILE_FSYNC 3

/* Completion of a file operation. result: bytes read or written, 0 for
 * fsync, or a negative code. For reads, data holds the bytes (len ==
 * result); the message owns it and frees it, unless the handler takes it
 * by setting data to NULL (then free() it). */
TR_IO_MESSAGE(tr_file_done_t, int op; int fd; int64_t result;
              uint64_t cookie; void *data; size_t len;)

/* Reads up to len bytes at offset off of fd (a regular file the caller
 * keeps open until the completion). Through io_uring where the backend is
 * uring, else on the blocking pool. The completion goes to the calling
 * actor. Returns 0, TR_EINVAL, TR_ENOMEM, TR_EAGAIN. */
TR_EXTERN int tr_file_read(tr_ctx_t *ctx, int fd, size_t len, int64_t off,
                           uint64_t cookie);

/* Writes len bytes of buf (copied: the caller may reuse buf at once) at
 * offset off. Returns as tr_file_read. */
TR_EXTERN int tr_file_write(tr_ctx_t *ctx, int fd, const void *buf,
                            size_t len, int64_t off, uint64_t cookie);

/* fsync(fd). Returns as tr_file_read. */
TR_EXTERN int tr_file_fsync(tr_ctx_t *ctx, int fd, uint64_t cookie);

/* ---- Memory-mapped files ---------------------------------------------------- */

/* A read-only mapping of a whole regular file, for read-mostly data
 * (static assets, lookup tables, configuration) that many actors read
 * without copying. Reference counted: any actor or thread may hold one;
 * the mapping goes when the last reference is dropped. Pages come in on
 * first touch, which blocks the touching thread on a cold cache: map with
 * TR_FILE_MAP_POPULATE, or call tr_file_map_prefetch, to read them in
 * beforehand. The file should not shrink while mapped: touching a page
 * past its new end raises SIGBUS (as with any mmap). */
typedef struct tr_file_map tr_file_map_t;

#define TR_FILE_MAP_POPULATE 0x1u /* read every page in while mapping */
#define TR_FILE_PREFETCH 4        /* tr_file_done_t.op of a prefetch */

/* Maps the file at path (opened read-only) or the open regular file fd
 * (left open: the caller's to close). *out gets a mapping with one
 * reference. The mapping keeps a descriptor of the file of its own (the
 * one it opened, or a close-on-exec duplicate of fd; none when the
 * process is short of descriptors), closed with the last reference:
 * tr_tcp_write_map sends from it with sendfile(2).
 * An empty file maps to data NULL, size 0. Returns 0, TR_EINVAL (NULL
 * argument, unknown flag, not a regular file), TR_ENOMEM, or a negative
 * errno of open/fstat/mmap (e.g. -ENOENT, -EACCES). */
TR_EXTERN int tr_file_map(const char *path, unsigned flags,
                          tr_file_map_t **out);
TR_EXTERN int tr_file_map_fd(int fd, unsigned flags, tr_file_map_t **out);

/* The mapped bytes and their number (the file's size when mapped). */
TR_EXTERN const void *tr_file_map_data(const tr_file_map_t *m);
TR_EXTERN size_t tr_file_map_size(const tr_file_map_t *m);

/* Takes one more reference (returns m) / drops one (NULL: no-op). */
TR_EXTERN tr_file_map_t *tr_file_map_ref(tr_file_map_t *m);
TR_EXTERN void tr_file_map_unref(tr_file_map_t *m);

/* Reads every page of m into memory on the blocking pool, holding a
 * reference meanwhile, then sends the calling actor a tr_file_done_t with
 * op TR_FILE_PREFETCH, fd -1 and result the bytes made resident (or a
 * negative code). Returns 0, TR_EINVAL, TR_ENOMEM, TR_EAGAIN (pool queue
 * full), TR_ESHUTDOWN (the pool is stopping), TR_ENOSYS (no reactor), or
 * a negative errno if a pool thread could not be started. */
TR_EXTERN int tr_file_map_prefetch(tr_ctx_t *ctx, tr_file_map_t *m,
                                   uint64_t cookie);

TR_END_DECLS

#endif
