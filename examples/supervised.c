/* SPDX-License-Identifier: MIT */
/*
 * A supervised service: a "cache" actor that keeps a small key-value table
 * and a "flaky" worker that crashes on bad input, both under a one-for-one
 * supervisor. main() talks to them through a blocking handle, feeds the
 * worker a poisoned request, watches the supervisor restart it, and shows
 * that the cache was not disturbed. Shutdown stops the tree top-down.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <troupe.h>

/* --- messages ------------------------------------------------------------ */

TR_MESSAGE_TYPE(put_t, int key; int value;);
TR_MESSAGE_DEFINE(put_t);
TR_MESSAGE_TYPE(get_t, int key; int value; int found;);
TR_MESSAGE_DEFINE(get_t);
TR_MESSAGE_TYPE(job_t, int input; int output;);
TR_MESSAGE_DEFINE(job_t);

/* --- the cache: survives its sibling's crashes ---------------------------- */

typedef struct {
  int keys[16], values[16], n;
} cache_t;

static int cache_put(tr_ctx_t *ctx, void *state, void *msg) {
  (void)ctx;
  cache_t *c = state;
  put_t *p = msg;
  for (int i = 0; i < c->n; i++)
    if (c->keys[i] == p->key) {
      c->values[i] = p->value;
      return 0;
    }
  if (c->n == 16) return 0; /* full: a real cache would evict */
  c->keys[c->n] = p->key;
  c->values[c->n++] = p->value;
  return 0;
}

static int cache_get(tr_ctx_t *ctx, void *state, void *msg) {
  cache_t *c = state;
  get_t *g = msg;
  g->found = 0;
  for (int i = 0; i < c->n; i++)
    if (c->keys[i] == g->key) {
      g->value = c->values[i];
      g->found = 1;
    }
  return tr_reply(ctx, g); /* the request itself is the reply */
}

static const tr_handler_t cache_handlers[] = {
    {TR_TYPE(put_t), cache_put},
    {TR_TYPE(get_t), cache_get},
};
static const tr_behavior_t cache_behavior = {
    .name = "cache",
    .state_size = sizeof(cache_t),
    .handlers = TR_HANDLERS(cache_handlers),
};

/* --- the flaky worker: a negative input makes it fail --------------------- */

static _Atomic int generation; /* how many times the worker has been started */

static int worker_init(tr_ctx_t *ctx, void *state, void *arg) {
  (void)ctx;
  (void)state;
  (void)arg;
  generation++;
  printf("worker: started (generation %d)\n", generation);
  return 0;
}

static int worker_job(tr_ctx_t *ctx, void *state, void *msg) {
  (void)state;
  job_t *j = msg;
  if (j->input < 0) {
    printf("worker: bad input %d, failing\n", j->input);
    return TR_EINVAL; /* the actor fails with this reason */
  }
  j->output = j->input * j->input;
  return tr_reply(ctx, j);
}

static void worker_stop(tr_ctx_t *ctx, void *state, int reason) {
  (void)ctx;
  (void)state;
  printf("worker: stopped (%s)\n", reason == TR_EXIT_SHUTDOWN ? "shutdown"
                                                              : tr_err_name(reason));
}

static const tr_handler_t worker_handlers[] = {{TR_TYPE(job_t), worker_job}};
static const tr_behavior_t worker_behavior = {
    .name = "worker",
    .init = worker_init,
    .on_stop = worker_stop,
    .handlers = TR_HANDLERS(worker_handlers),
};

/* --- the tree ---------------------------------------------------------------- */

static const tr_child_spec_t children[] = {
    {.name = "cache", .behavior = &cache_behavior, .restart = TR_RESTART_PERMANENT},
    {.name = "worker", .behavior = &worker_behavior, .restart = TR_RESTART_PERMANENT},
};
static const tr_sup_spec_t service = {
    .strategy = TR_SUP_ONE_FOR_ONE,
    .max_restarts = 3,
    .period_ms = 5000,
    .children = children,
    .nchildren = 2,
};

/* The current ref of child i, asked of the supervisor. */
static tr_ref_t child(tr_handle_t *h, tr_ref_t sup, int i) {
  tr_sup_info_t *q = tr_sup_info_t_new();
  void *r;
  if (!q || tr_handle_call(h, sup, q, 1000, &r) != 0) return TR_REF_NULL;
  tr_ref_t ref = ((tr_sup_info_t *)r)->children[i];
  tr_msg_free(r);
  return ref;
}

static int square(tr_handle_t *h, tr_ref_t worker, int x, int *out) {
  job_t *j = job_t_new();
  void *r;
  j->input = x;
  int rc = tr_handle_call(h, worker, j, 1000, &r);
  if (rc == 0) {
    *out = ((job_t *)r)->output;
    tr_msg_free(r);
  } else if (rc != TR_ENOREPLY) {
    /* the failed call freed the request */
  }
  return rc;
}

int main(void) {
  tr_runtime_t *rt;
  tr_handle_t *h;
  tr_ref_t sup;
  int rc, out = 0;

  if (tr_runtime_new(NULL, &rt) || tr_runtime_start(rt) || tr_handle_new(rt, &h))
    return 1;
  if ((rc = tr_sup_spawn(rt, &service, &sup)) != 0) {
    fprintf(stderr, "supervisor: %s\n", tr_strerror(rc));
    return 1;
  }

  put_t *p = put_t_new();
  p->key = 7;
  p->value = 700;
  tr_send(NULL, child(h, sup, 0), p);

  tr_ref_t w = child(h, sup, 1);
  square(h, w, 12, &out);
  printf("main: 12 squared is %d\n", out);

  /* The poisoned request: the worker fails instead of replying, so the
   * call comes back with TR_ENOREPLY and the supervisor restarts it. */
  rc = square(h, w, -1, &out);
  printf("main: bad request -> %s\n", tr_err_name(rc));

  tr_ref_t w2;
  do { /* wait for the restart */
    w2 = child(h, sup, 1);
  } while (tr_ref_is_null(w2) || tr_ref_eq(w2, w));
  square(h, w2, 9, &out);
  printf("main: after restart, 9 squared is %d\n", out);

  get_t *g = get_t_new();
  void *r;
  g->key = 7;
  if (tr_handle_call(h, child(h, sup, 0), g, 1000, &r) == 0) {
    printf("main: cache still holds 7 -> %d\n", ((get_t *)r)->value);
    tr_msg_free(r);
  }

  rc = tr_runtime_shutdown(rt, 2000);
  printf("main: shutdown %s\n", rc == 0 ? "clean" : tr_err_name(rc));
  tr_handle_free(h);
  tr_runtime_free(rt);
  return generation == 2 && out == 81 && rc == 0 ? 0 : 1;
}
