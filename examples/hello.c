/* SPDX-License-Identifier: MIT */
/*
 * hello: the smallest troupe program. One actor, the greeter, answers a
 * greet_t request with a greeting_t reply. main is not an actor: it asks
 * through a blocking handle (tr_handle_call) and prints the reply.
 */
#include <stdio.h>
#include <string.h>

#include <troupe.h>

/* Two message types: each is a struct that starts with a tr_msg_t header. */
TR_MESSAGE_TYPE(greet_t, char name[32];)
TR_MESSAGE_TYPE(greeting_t, char text[64];)
TR_MESSAGE_DEFINE(greet_t);
TR_MESSAGE_DEFINE(greeting_t);

/* The greeter's only handler. It runs on a worker thread; the request
 * belongs to it while it runs and is freed by the runtime afterwards. */
static int greeter_on_greet(tr_ctx_t *ctx, void *state, void *msg) {
  const greet_t *req = msg;
  greeting_t *rep;
  int rc;

  (void)state;
  if ((rep = greeting_t_new()) == NULL) return TR_ENOMEM;
  snprintf(rep->text, sizeof rep->text, "hello, %s", req->name);
  /* The reply is consumed either way: handed over, or freed if the
   * asker is gone. */
  rc = tr_reply(ctx, rep);
  return rc;
}

static const tr_handler_t greeter_handlers[] = {
    {TR_TYPE(greet_t), greeter_on_greet},
};

static const tr_behavior_t greeter = {
    .name = "greeter",
    .handlers = TR_HANDLERS(greeter_handlers),
};

static int fail(const char *what, int rc) {
  fprintf(stderr, "hello: %s: %s\n", what, tr_strerror(rc));
  return 1;
}

int main(void) {
  tr_runtime_config_t cfg;
  tr_runtime_t *rt;
  tr_handle_t *h;
  tr_ref_t ref;
  greet_t *req;
  void *reply;
  int rc;

  tr_runtime_config_init(&cfg);
  cfg.workers = 1; /* one worker thread is plenty here */
  if ((rc = tr_runtime_new(&cfg, &rt)) != 0) return fail("tr_runtime_new", rc);
  if ((rc = tr_runtime_start(rt)) != 0) return fail("tr_runtime_start", rc);
  if ((rc = tr_spawn(rt, &greeter, NULL, &ref)) != 0)
    return fail("tr_spawn", rc);
  if ((rc = tr_handle_new(rt, &h)) != 0) return fail("tr_handle_new", rc);

  if ((req = greet_t_new()) == NULL) return fail("greet_t_new", TR_ENOMEM);
  strcpy(req->name, "world");
  /* Sends the request and blocks for the reply, at most one second. */
  if ((rc = tr_handle_call(h, ref, req, 1000, &reply)) != 0)
    return fail("tr_handle_call", rc);
  printf("%s\n", ((const greeting_t *)reply)->text);
  tr_msg_free(reply);

  tr_handle_free(h);
  if ((rc = tr_runtime_shutdown(rt, 1000)) != 0)
    return fail("tr_runtime_shutdown", rc);
  tr_runtime_free(rt);
  return 0;
}
