/* SPDX-License-Identifier: MIT */
/*
 * The runtime and its actors: configuring and running the work-stealing
 * scheduler, spawning and stopping actors, sending, asking and replying,
 * the blocking handle for code outside the runtime, and counters.
 *
 * Threads: a handler runs on one worker thread at a time and must not block.
 * Functions taking a tr_ctx_t * are meant for the actor that ctx belongs to,
 * and only during its handler (or its init). Functions taking a
 * tr_runtime_t * may be called from any thread.
 */
#ifndef TROUPE_ACTOR_H
#define TROUPE_ACTOR_H

#include <troupe/common.h>
#include <troupe/mailbox.h>

TR_BEGIN_DECLS

typedef struct tr_runtime tr_runtime_t;
typedef struct tr_ctx tr_ctx_t;
typedef struct tr_handle tr_handle_t;

/* ---- Runtime ---------------------------------------------------------- */

typedef struct tr_runtime_config {
  size_t size;          /* set by tr_runtime_config_init (<troupe/common.h>:
                           growable config structs); 0 = this release's */
  unsigned workers;     /* worker threads; 0 = number of online CPUs */
  int pin_cpus;         /* nonzero: pin worker i to CPU i mod ncpu */
  unsigned budget;      /* messages handled + sent per run; 0 = 100 */
  unsigned spin_us;     /* busy search before parking; 0 = 50 us (after
                           the first 5 us it yields the CPU between looks) */
} tr_runtime_config_t;

/* Fills cfg with the defaults (every field 0, meaning "choose") and its
 * size. Inline: the size is the one the caller was compiled with. */
static inline void tr_runtime_config_init(tr_runtime_config_t *cfg) {
  TR_CONFIG_SIZE_INIT(cfg);
}

/* Creates a runtime (threads are not started yet). cfg may be NULL. Any
 * number of workers may be asked for; memory and the system's thread
 * limit are the only bounds. Returns 0, TR_EINVAL (also: cfg has fields
 * unknown to this library set, see <troupe/common.h>), TR_ENOMEM, or
 * TR_ENOSPC (255 runtimes alive at once).
 *
 * Refs of a runtime are never valid in another one: once a runtime is
 * freed, sending to its refs fails with TR_ENOACTOR, even after later
 * runtimes of the process have taken its place. */
TR_EXTERN int tr_runtime_new(const tr_runtime_config_t *cfg,
                             tr_runtime_t **out);

/* Starts the worker threads. Actors may be spawned and sent to before the
 * start; they run once it has happened. The workers run with SIGPIPE
 * blocked (sendfile(2) to a closed peer raises it; see tr_tcp_write_map),
 * and actor code should leave it so. Returns 0, TR_EBUSY if started,
 * TR_ESHUTDOWN if it was shut down, or the negated errno of a failed
 * pthread_create (the runtime is then shut down: only tr_runtime_free is
 * left). */
TR_EXTERN int tr_runtime_start(tr_runtime_t *rt);

/* Blocks until the runtime is quiescent: no actor has mail or is running,
 * no worker has work and no timer is armed, or until timeout passes
 * (TR_FOREVER: no limit; a huge one waits very long; time is
 * CLOCK_MONOTONIC: a change of the wall clock does not affect it).
 * Returns 0, TR_ETIMEDOUT, TR_EINVAL (the runtime was not started; a
 * negative timeout other than TR_FOREVER), or TR_EDEADLK when called from actor code
 * (a handler, or an init inside tr_spawn), whose actor keeps the runtime
 * busy: call from a thread outside the runtime. */
TR_EXTERN int tr_runtime_await_quiescent(tr_runtime_t *rt,
                                          tr_duration_t timeout);

/* Graceful shutdown, top-down, within deadline (TR_FOREVER: no deadline;
 * TR_NOWAIT: nothing is waited for, what is alive is stopped by force):
 *  1. lets actors drain their mailboxes until the runtime is quiescent;
 *  2. asks the roots of the spawn tree (actors spawned from outside the
 *     runtime, or whose parent is gone) to stop with TR_EXIT_SHUTDOWN; a
 *     supervisor traps that and stops its children in reverse start order;
 *  3. asks every actor still alive to stop, and waits for quiescence;
 *  4. joins the workers and stops whatever is left by force
 *     (tr_runtime_stats_t.shutdown_forced counts them).
 * Messages still queued when an actor stops are counted in
 * tr_runtime_stats_t.dead_letters, and requests among them get TR_ENOREPLY
 * replies. Returns 0 if the mail drained and every actor stopped in time,
 * TR_ETIMEDOUT otherwise.
 *
 * Call from a thread outside the runtime: from actor code (a handler, or
 * an init inside tr_spawn) it returns TR_EDEADLK and does nothing, since
 * the worker would wait for itself. Several threads may call it: one shuts
 * down, the others wait until it has finished (their deadlines unused)
 * and return its result, as does any later call. */
TR_EXTERN int tr_runtime_shutdown(tr_runtime_t *rt, tr_duration_t deadline);

/* Starts the runtime (if needed), waits for quiescence, shuts down.
 * Returns what tr_runtime_shutdown returns, the error of
 * tr_runtime_start, or TR_EDEADLK from actor code (nothing is done). */
TR_EXTERN int tr_runtime_run(tr_runtime_t *rt);

/* Frees a runtime. One that was started and not shut down is shut down
 * first with no deadline to wait for (tr_runtime_shutdown(rt, 0)): mail
 * still queued is dropped and live actors are stopped by force; a shutdown
 * in progress on another thread is waited for. Returns 0 (also for a NULL
 * rt), or TR_EDEADLK when called from actor code (a handler, or an init
 * inside tr_spawn): then nothing is freed. No other call on rt may run
 * concurrently with or after it. */
TR_EXTERN int tr_runtime_free(tr_runtime_t *rt);

/* Number of worker threads. */
TR_EXTERN unsigned tr_runtime_workers(const tr_runtime_t *rt);

/* Library version string ("0.1.0"). */
TR_EXTERN const char *tr_version(void);

/* ---- Actors ----------------------------------------------------------- */

/* Exit reasons, passed to on_stop, links, monitors and join handles:
 * TR_EXIT_NORMAL, TR_EXIT_SHUTDOWN, TR_EXIT_KILLED (not trappable), a
 * negative error code (the actor failed: a handler returned it), or a
 * user-defined reason TR_EXIT_USER + n. Only TR_EXIT_NORMAL is "normal"
 * for links: any other reason stops linked actors that do not trap exits. */
#define TR_EXIT_NORMAL 0
#define TR_EXIT_SHUTDOWN 1
#define TR_EXIT_KILLED TR_EKILLED
#define TR_EXIT_USER 1000

typedef enum tr_priority {
  TR_PRIO_NORMAL = 0, /* the default: zeroed options mean normal */
  TR_PRIO_CRITICAL = 1,
  TR_PRIO_HIGH = 2,
  TR_PRIO_LOW = 3
} tr_priority_t;
#define TR_PRIO_COUNT 4

/* A handler: runs to completion on a worker thread, never blocks.
 * msg belongs to the handler while it runs (see <troupe/mailbox.h>).
 * Return 0 to go on; a negative code fails the actor with that reason. */
typedef int (*tr_handler_fn)(tr_ctx_t *ctx, void *state, void *msg);

typedef struct tr_handler {
  const tr_msgtype_t *type;
  tr_handler_fn fn;
} tr_handler_t;

/* ---- Mailboxes ---------------------------------------------------------
 * By default an actor has one data mailbox, unbounded. A behaviour may
 * declare several; each lists the message types it receives. A type
 * listed nowhere goes to the first mailbox with an empty list (or to
 * mailbox 0 if there is none), so a message type goes to exactly one
 * mailbox of the receiver (the first that lists it). The system
 * mailbox (stop requests, exits, downs, replies of the runtime, timers,
 * I/O) is separate, unbounded, and always served first. */

typedef struct tr_mailbox_spec {
  const char *name;
  const tr_msgtype_t *const *types; /* the types routed here */
  size_t ntypes;
  size_t capacity;    /* 0 = unbounded */
  tr_overflow_t overflow; /* when full (<troupe/mailbox.h>); a thread
                         outside the runtime gets TR_EAGAIN for BLOCK */
  size_t low_water;   /* backpressure: resume senders below (0: half the
                         capacity, at least 1) */
  unsigned weight;    /* TR_SELECT_WEIGHTED: messages per round; 0 = 1 */
} tr_mailbox_spec_t;

/* How the next data mailbox is chosen when several have mail. */
#define TR_SELECT_PRIORITY 0 /* the lowest index with mail, always */
#define TR_SELECT_WEIGHTED 1 /* rounds of `weight` messages per mailbox */

/* An actor's behaviour: what it is and which messages it accepts. Usually
 * a static const object shared by every actor of that kind. */
typedef struct tr_behavior {
  const char *name;
  size_t state_size;          /* bytes of zeroed state given to the actor */
  /* Runs in spawn, before the ref is returned: may send, spawn, ask.
   * A negative return makes spawn fail with that code. May be NULL. */
  int (*init)(tr_ctx_t *ctx, void *state, void *arg);
  /* Runs once when the actor stops, with the exit reason. May be NULL. */
  void (*on_stop)(tr_ctx_t *ctx, void *state, int reason);
  const tr_handler_t *handlers; /* table of accepted types */
  size_t nhandlers;
  /* Called for types not in the table; NULL = such sends fail with
   * TR_EBADMSG at the sender. */
  tr_handler_fn fallback;
  /* Data mailboxes (NULL/0: one unbounded mailbox) and how to pick. */
  const tr_mailbox_spec_t *mailboxes;
  size_t nmailboxes;
  int select; /* TR_SELECT_* */
} tr_behavior_t;

/* Builds the handlers/nhandlers pair from a static array. */
#define TR_HANDLERS(arr) (arr), (sizeof(arr) / sizeof((arr)[0]))

typedef struct tr_join tr_join_t;

/* Spawn flags. LINK and MONITOR need a calling actor (spawn from inside a
 * handler); they take effect before the child's init runs, so not even an
 * exit during init is missed. */
#define TR_SPAWN_LINK 0x1u    /* link the caller and the child */
#define TR_SPAWN_MONITOR 0x2u /* the caller monitors the child */

typedef struct tr_spawn_opts {
  tr_priority_t priority; /* default TR_PRIO_NORMAL */
  unsigned flags;         /* TR_SPAWN_* */
  uint64_t *monitor_id;   /* with TR_SPAWN_MONITOR: receives the id */
  /* Non-NULL: receives a join handle that delivers the child's result or
   * exit reason. The caller owns it (tr_join_free). */
  tr_join_t **join;
} tr_spawn_opts_t;

/* Spawns an actor. Its state (behavior->state_size bytes, zeroed) is owned
 * by the runtime; init runs on the calling thread before this returns.
 * Called from a handler, the running actor becomes the child's parent (for
 * TR_SPAWN_LINK/MONITOR and top-down shutdown). opts may be NULL.
 * Returns 0 and the ref in *out, or TR_EINVAL (bad behaviour, priority or
 * mailbox table; LINK/MONITOR outside an actor), TR_ENOMEM, TR_ESHUTDOWN,
 * or init's error. */
TR_EXTERN int tr_spawn(tr_runtime_t *rt, const tr_behavior_t *behavior,
                       void *arg, tr_ref_t *out);
TR_EXTERN int tr_spawn_ex(tr_runtime_t *rt, const tr_behavior_t *behavior,
                          void *arg, const tr_spawn_opts_t *opts,
                          tr_ref_t *out);

/* Stops an actor with the given reason: the one call for stopping an
 * actor, itself or another. Called by an actor's handler (or init) for
 * that actor itself (tr_actor_stop(tr_ctx_self(ctx), reason)), the actor
 * stops when the handler returns; this cannot fail. Otherwise the request
 * is a system message: it overtakes data messages already queued, which
 * become dead letters. Returns 0, TR_ENOACTOR, or TR_ENOMEM. */
TR_EXTERN int tr_actor_stop(tr_ref_t ref, int reason);

/* Whether ref names a live actor (racy by nature: for diagnostics). */
TR_EXTERN int tr_actor_alive(tr_ref_t ref);

/* ---- Inside a handler ------------------------------------------------- */

TR_EXTERN tr_ref_t tr_ctx_self(const tr_ctx_t *ctx);
TR_EXTERN tr_runtime_t *tr_ctx_runtime(const tr_ctx_t *ctx);

/* Keeps the message being handled: the runtime will not free it; the
 * handler now owns it (and must free or send it later). */
TR_EXTERN void tr_ctx_take(tr_ctx_t *ctx);

/* ---- Sending ---------------------------------------------------------- */

/* Sends msg to `to`. ctx is the sending actor's context, or NULL from
 * outside the runtime (then the message has no sender).
 * Returns 0, TR_ENOACTOR (dead or unknown actor), TR_EBADMSG (the receiver
 * does not accept the type), TR_EINVAL.
 * Ownership (the rule of every call that takes a message: sends, asks,
 * replies, channel sends, timers): the message is consumed. On success it
 * is handed over; on failure it is freed (tr_msg_free: a request among
 * them answers its asker with TR_ENOREPLY), so a fire-and-forget send is
 * one line. A caller that wants the message back to retry passes
 * TR_SEND_KEEP to tr_send_ex / tr_chan_send_ex. The message being handled
 * stays the runtime's when its forward fails: it is freed after the
 * handler as usual. Only a NULL or typeless msg (TR_EINVAL) is not
 * touched. */
TR_EXTERN int tr_send(tr_ctx_t *ctx, tr_ref_t to, void *msg);

/* Typed references. TR_TYPED_REF(R) declares a ref type R that wraps a
 * tr_ref_t; each TR_ACCEPTS(R, T) adds
 *   int R_send_T(tr_ctx_t *ctx, R to, T *msg);
 * so that sending a message type R does not accept does not compile. */
#define TR_TYPED_REF(R)                                                      \
  typedef struct R {                                                         \
    tr_ref_t ref;                                                            \
  } R;                                                                       \
  static inline R R##_from(tr_ref_t r) {                                    \
    R x;                                                                     \
    x.ref = r;                                                               \
    return x;                                                                \
  }

#define TR_ACCEPTS(R, T)                                                     \
  static inline int R##_send_##T(tr_ctx_t *ctx, R to, T *msg) {            \
    return tr_send(ctx, to.ref, &msg->hdr);                                  \
  }

/* Makes a copy of msg for one member of a group send: a new message
 * (from tr_msg_new) that owns its own copies of whatever msg owns, or
 * NULL when out of memory. Runs on the sending thread. */
typedef void *(*tr_msg_clone_fn)(const void *msg);

/* Sends msg to the n refs of `to`, in order. A message has one owner, so
 * every member but the last gets a copy and the last gets msg itself.
 * clone makes the copies; NULL copies the struct's bytes (type->size),
 * which is only sound for types that own nothing: a type with a
 * destructor without a clone is refused (TR_EINVAL). A copy is a plain
 * message: a request sent to a group is a request for the last member
 * only. msg is consumed (every member's message is sent as by tr_send:
 * handed over, or freed if that send fails; n == 0 frees msg), except a
 * NULL or typeless msg (TR_EINVAL, not touched). A failed member does not
 * stop the others. Returns 0 if every member got its message, else the
 * first member's error (the codes of tr_send, TR_ENOMEM for a failed
 * copy) or TR_EINVAL (to NULL with n > 0, the refused type: nothing sent);
 * *sent (if not NULL) gets the number of members the message reached.
 * Cost: n sends and n - 1 copies. Thread: as tr_send. */
TR_EXTERN int tr_send_group(tr_ctx_t *ctx, const tr_ref_t *to, size_t n,
                            void *msg, tr_msg_clone_fn clone, size_t *sent);

/* Options of tr_send_ex (and TR_SEND_KEEP of tr_chan_send_ex). */
#define TR_SEND_RETURN_DEAD 0x1u /* if the message is dropped undelivered
                                    (receiver stopped, mailbox overflow),
                                    return it to the sending actor inside a
                                    tr_dead_letter_t */
#define TR_SEND_KEEP 0x2u        /* on failure the caller keeps the message
                                    (to retry it, e.g. after TR_EAGAIN) */

/* tr_send with options (TR_SEND_*). Same codes as tr_send, plus TR_EAGAIN
 * when a bounded TR_OVERFLOW_FAIL mailbox is full. */
TR_EXTERN int tr_send_ex(tr_ctx_t *ctx, tr_ref_t to, void *msg,
                         unsigned flags);

/* A message that could not be delivered, returned to its sender (which
 * asked for it with TR_SEND_RETURN_DEAD). msg is owned by this envelope:
 * take it with tr_dead_letter_take, or it is freed with the envelope. */
typedef struct tr_dead_letter {
  tr_msg_t hdr;
  tr_ref_t to;   /* the intended receiver */
  int reason;    /* TR_ENOACTOR (receiver stopped) or TR_ENOSPC (dropped
                    by a full mailbox) */
  void *msg;
} tr_dead_letter_t;
TR_MESSAGE_DECLARE(tr_dead_letter_t)

/* Takes the returned message out of a dead letter; the caller owns it. */
static inline void *tr_dead_letter_take(tr_dead_letter_t *d) {
  void *m = d->msg;
  d->msg = NULL;
  return m;
}

/* Continuation of an ask (tr_ask, tr_ask_timeout) or of a join
 * (tr_join_await): runs on the asking actor like a handler. status is 0
 * with the reply (owned by the continuation like a handled message), or a
 * negative code with reply == NULL: TR_ENOREPLY (the request was dropped
 * without a reply: the target freed it unanswered, or stopped with it
 * still queued), TR_ETIMEDOUT (tr_ask_timeout). For a join, status is the
 * child's exit reason and reply its result (or NULL).
 * Returns what a handler returns: 0 to go on; a negative code fails the
 * actor with that code as its exit reason (links and monitors see it).
 * An ask continuation that returns status fails the actor on any error. */
typedef int (*tr_reply_fn)(tr_ctx_t *ctx, void *state, int status,
                           void *reply, void *cookie);

/* Sends a request; its reply is handed to k on the asking actor (k's
 * return value counts as a handler's). Returns 0, or the codes of tr_send
 * (then k never runs and req is freed, as for tr_send). A target that is
 * already gone is TR_ENOACTOR from this call; one that stops with the
 * request queued answers TR_ENOREPLY through k. tr_ask has no timeout: a
 * target that keeps the request unanswered leaves k waiting for as long
 * as it lives. For a bound use tr_ask_timeout (<troupe/io.h>), whose k
 * gets TR_ETIMEDOUT when no reply came in time. */
TR_EXTERN int tr_ask(tr_ctx_t *ctx, tr_ref_t to, void *req, tr_reply_fn k,
                     void *cookie);

/* Replies to the request being handled. The reply is consumed (freed on
 * failure, as for tr_send). Returns 0, TR_EINVAL (the current message is
 * not a request or was already answered), TR_ENOACTOR (the asker is
 * gone). */
TR_EXTERN int tr_reply(tr_ctx_t *ctx, void *reply);

/* Replies to a request the handler took earlier (tr_ctx_take), then frees
 * the request. Same codes as tr_reply. */
TR_EXTERN int tr_reply_to(tr_ctx_t *ctx, void *req, void *reply);

/* ---- Failure: links, monitors, join handles ----------------------------- */

/* Delivered to an actor that traps exits when a linked actor stops (or
 * when it is asked to stop with tr_actor_stop and a reason other than
 * TR_EXIT_KILLED; then from is the stopper or TR_REF_NULL). */
typedef struct tr_exit {
  tr_msg_t hdr;
  tr_ref_t from;
  int reason;
} tr_exit_t;
TR_MESSAGE_DECLARE(tr_exit_t)

/* Delivered to a watcher when the monitored actor stops. reason is
 * TR_ENOACTOR if the target was already gone when the monitor was set. */
typedef struct tr_down {
  tr_msg_t hdr;
  tr_ref_t ref;
  int reason;
  uint64_t monitor;
} tr_down_t;
TR_MESSAGE_DECLARE(tr_down_t)

/* Turns exit trapping on or off for the calling actor. While on, exits of
 * linked actors and stop requests (except TR_EXIT_KILLED) arrive as
 * tr_exit_t messages instead of stopping the actor. */
TR_EXTERN void tr_ctx_trap_exit(tr_ctx_t *ctx, int on);

/* Links the calling actor and `other` (both directions): when one stops
 * with a reason other than TR_EXIT_NORMAL, the other stops with the same
 * reason, or receives a tr_exit_t if it traps exits. Linking twice is a
 * no-op. The memory for both exits is taken here, so a stop never loses
 * one. Returns 0, TR_EINVAL (self or null ref), TR_ENOACTOR (other is
 * already gone), TR_ENOMEM (then nothing was linked). */
TR_EXTERN int tr_link(tr_ctx_t *ctx, tr_ref_t other);

/* Removes a link; exits already in flight from `other` are ignored.
 * Returns 0 or TR_ENOENT (not linked). */
TR_EXTERN int tr_unlink(tr_ctx_t *ctx, tr_ref_t other);

/* The calling actor monitors target: one tr_down_t arrives when target
 * stops (at once, with TR_ENOACTOR, if it is already gone). *id names the
 * monitor. The memory for the down is taken here, so the target's stop
 * never loses it. Returns 0, TR_EINVAL, TR_ENOMEM (then nothing was
 * monitored). */
TR_EXTERN int tr_monitor(tr_ctx_t *ctx, tr_ref_t target, uint64_t *id);

/* Cancels a monitor: no tr_down_t for it is delivered afterwards.
 * Returns 0 or TR_ENOENT. */
TR_EXTERN int tr_demonitor(tr_ctx_t *ctx, uint64_t id);

/* Sets the result the calling actor's join handle delivers when it stops
 * (replacing an earlier one, which is freed). Takes ownership of msg.
 * Returns 0 or TR_EINVAL. */
TR_EXTERN int tr_ctx_set_result(tr_ctx_t *ctx, void *msg);

/* Awaits a join handle from an actor: k runs once on the caller with
 * status = the child's exit reason and reply = its result (or NULL), owned
 * like a handled message; a negative return from k fails the caller, as
 * from a handler. A join handle has one awaiter. Returns 0,
 * TR_EBUSY (already awaited), TR_EINVAL, TR_ENOMEM. */
TR_EXTERN int tr_join_await(tr_ctx_t *ctx, tr_join_t *j, tr_reply_fn k,
                            void *cookie);

/* Blocks (outside the runtime) until the actor has stopped or timeout
 * passes (TR_NOWAIT: only looks; TR_FOREVER: no limit; CLOCK_MONOTONIC).
 * On 0, *reason has the exit reason and *result the result (or NULL), now
 * owned by the caller. Returns 0, TR_ETIMEDOUT, TR_EBUSY (awaited by an actor
 * or already taken). */
TR_EXTERN int tr_join_wait(tr_join_t *j, tr_duration_t timeout, int *reason,
                           void **result);

/* Releases the caller's join handle (an untaken result is freed). */
TR_EXTERN void tr_join_free(tr_join_t *j);

/* ---- Blocking handle for code outside the runtime --------------------- */

/* A handle is an address outside the runtime: it has a ref, receives
 * messages and replies, and its calls block the calling thread. One thread
 * uses a handle at a time. */
TR_EXTERN int tr_handle_new(tr_runtime_t *rt, tr_handle_t **out);
TR_EXTERN void tr_handle_free(tr_handle_t *h);
TR_EXTERN tr_ref_t tr_handle_ref(const tr_handle_t *h);

/* Monitors target from the handle: a tr_down_t arrives through
 * tr_handle_receive when it stops. Returns 0, TR_EINVAL, TR_ENOMEM. */
TR_EXTERN int tr_handle_monitor(tr_handle_t *h, tr_ref_t target, uint64_t *id);

/* Sends with the handle as sender (replies come back to the handle).
 * Codes and ownership as tr_send (msg is freed on failure). */
TR_EXTERN int tr_handle_send(tr_handle_t *h, tr_ref_t to, void *msg);

/* Waits up to timeout (TR_NOWAIT: only looks; TR_FOREVER: no limit) for
 * the next message and hands it over in *msg. Returns 0, TR_ETIMEDOUT, or
 * TR_EINVAL (NULL argument, a negative timeout other than TR_FOREVER). */
TR_EXTERN int tr_handle_receive(tr_handle_t *h, tr_duration_t timeout,
                                void **msg);

/* Waits up to timeout (as tr_handle_receive) for the next message of the
 * given type and hands it over in *msg; messages of other types stay
 * queued, in their order, for tr_handle_receive. Each call scans the
 * messages queued ahead, so a handle that lets many pile up pays for
 * them. Returns 0, TR_ETIMEDOUT, or TR_EINVAL (NULL argument, a negative
 * timeout other than TR_FOREVER). */
TR_EXTERN int tr_handle_receive_type(tr_handle_t *h, const tr_msgtype_t *type,
                                     tr_duration_t timeout, void **msg);

/* Sends req as a request and waits up to timeout for its reply.
 * Returns 0 with the reply in *reply, TR_ETIMEDOUT, TR_ENOREPLY, or the
 * codes of tr_send. req is consumed: freed if the send fails; after a
 * successful send it belongs to the receiver, also when the call times out
 * (a reply that arrives later is dropped and counted as a dead letter).
 * Other messages arriving meanwhile stay queued for tr_handle_receive. */
TR_EXTERN int tr_handle_call(tr_handle_t *h, tr_ref_t to, void *req,
                             tr_duration_t timeout, void **reply);

/* ---- Counters --------------------------------------------------------- */

typedef struct tr_worker_stats {
  uint64_t runs;        /* actor runs (batches) */
  uint64_t handled;     /* messages handled */
  uint64_t steals;      /* actors stolen from other workers */
  uint64_t parks;       /* times parked on the futex */
  uint64_t injected;    /* actors taken from the global queue */
} tr_worker_stats_t;

typedef struct tr_runtime_stats {
  unsigned workers;           /* tr_runtime_worker_stats takes 0..workers-1 */
  uint64_t actors_live;
  uint64_t actors_spawned;
  uint64_t actors_stopped;
  uint64_t messages_handled;  /* sum over workers */
  uint64_t dead_letters;      /* messages dropped undelivered */
  uint64_t shutdown_forced;   /* actors stopped forcibly at shutdown */
} tr_runtime_stats_t;

/* Counters of the whole runtime. Returns 0 or TR_EINVAL. */
TR_EXTERN int tr_runtime_stats(tr_runtime_t *rt, tr_runtime_stats_t *out);

/* Counters of worker `index` (0 .. tr_runtime_workers(rt) - 1), read
 * while it runs (each counter is exact, the set is not a snapshot).
 * Returns 0, TR_ERANGE (no such worker) or TR_EINVAL. */
TR_EXTERN int tr_runtime_worker_stats(tr_runtime_t *rt, unsigned index,
                                      tr_worker_stats_t *out);

typedef struct tr_actor_stats {
  const char *name;       /* behaviour name */
  tr_priority_t priority;
  uint64_t handled;       /* messages handled */
  uint64_t depth;         /* mailbox depth at its last run */
  uint64_t depth_hwm;     /* high-water mark of depth */
} tr_actor_stats_t;

/* Counters of a live actor. Returns 0 or TR_ENOACTOR. */
TR_EXTERN int tr_actor_stats(tr_ref_t ref, tr_actor_stats_t *out);

TR_END_DECLS

#endif
