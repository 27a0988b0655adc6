/* SPDX-License-Identifier: MIT */
/*
 * Supervisors: ready-made actors that start children, watch them through
 * links, and restart them by strategy and policy, as OTP's supervisor does.
 *
 * A supervisor traps exits. When a child stops, its restart policy says
 * whether it is restarted (permanent: always; transient: unless it stopped
 * with TR_EXIT_NORMAL or TR_EXIT_SHUTDOWN; temporary: never) and the
 * strategy says which children restart with it (one-for-one: that child;
 * one-for-all: every child; rest-for-one: it and those started after it).
 * Children that restart with it are first stopped in reverse start order,
 * one at a time (each within its shutdown_ms, then killed), then started
 * again in start order. More than
 * max_restarts restarts within period_ms make the supervisor give up: it
 * stops its children and fails with TR_EFAILED, so failure escalates to
 * its own supervisor. A supervisor asked to stop (tr_actor_stop, its
 * parent's exit, runtime shutdown) stops its children in reverse start
 * order, then itself.
 */
#ifndef TROUPE_SUPERVISOR_H
#define TROUPE_SUPERVISOR_H

#include <troupe/actor.h>

TR_BEGIN_DECLS

typedef enum tr_restart {
  TR_RESTART_PERMANENT = 0,
  TR_RESTART_TRANSIENT = 1,
  TR_RESTART_TEMPORARY = 2
} tr_restart_t;

typedef enum tr_sup_strategy {
  TR_SUP_ONE_FOR_ONE = 0,
  TR_SUP_ONE_FOR_ALL = 1,
  TR_SUP_REST_FOR_ONE = 2
} tr_sup_strategy_t;

typedef struct tr_child_spec {
  const char *name;               /* for diagnostics */
  const tr_behavior_t *behavior;  /* the child's behaviour */
  void *arg;                      /* passed to its init at every start */
  tr_restart_t restart;
  tr_priority_t priority;
  /* How long an orderly stop may take: a child still alive this long
   * after it was asked to stop (it traps exits and lingers) is killed
   * with TR_EXIT_KILLED. 0 (a zeroed spec: the default) = 5000 ms;
   * TR_FOREVER = wait as long as it takes; other negatives: TR_EINVAL. */
  tr_duration_t shutdown_ms;
} tr_child_spec_t;

#define TR_SUP_MAX_CHILDREN 4096

typedef struct tr_sup_spec {
  tr_sup_strategy_t strategy;
  unsigned max_restarts; /* 0 = 3 */
  tr_duration_t period_ms; /* 0 (default) = 5000; negative: TR_EINVAL */
  const tr_child_spec_t *children;
  size_t nchildren;      /* at most TR_SUP_MAX_CHILDREN */
} tr_sup_spec_t;

/* The supervisor behaviour; its spawn argument is a const tr_sup_spec_t *
 * (copied during init). Use it in a child spec to nest supervisors. */
extern TR_EXTERN const tr_behavior_t tr_supervisor_behavior;

/* Spawns a supervisor and, in its init, its children in order. If a child
 * fails to start, the children started so far are stopped and the error
 * is returned. Returns 0, TR_EINVAL, TR_ENOMEM, or a child's init error. */
TR_EXTERN int tr_sup_spawn(tr_runtime_t *rt, const tr_sup_spec_t *spec,
                           tr_ref_t *out);

/* Ask a supervisor with this message (tr_ask or tr_handle_call, with a
 * message from tr_sup_info_t_new): the reply is the same message, filled
 * in. Its children array has one entry per child of the spec, whatever
 * their number; it belongs to the message and is freed with it. */
typedef struct tr_sup_info {
  tr_msg_t hdr;
  size_t nchildren;    /* children in the spec */
  size_t running;      /* children alive now */
  uint64_t restarts;   /* restarts done so far */
  int status;          /* 0, or TR_ENOMEM: children could not be had */
  tr_ref_t *children;  /* nchildren current refs (TR_REF_NULL if not
                          running); NULL when nchildren is 0 or status is
                          not 0 */
} tr_sup_info_t;
TR_MESSAGE_DECLARE(tr_sup_info_t)

/* Copies the refs of the first min(capacity, nchildren) children of a
 * reply into the caller's array out (which may be NULL when capacity is
 * 0) and returns nchildren, the real count: a caller whose array was too
 * small sees it and may retry with a larger one. Any thread. */
TR_EXTERN size_t tr_sup_info_children(const tr_sup_info_t *info,
                                      tr_ref_t *out, size_t capacity);

TR_END_DECLS

#endif
