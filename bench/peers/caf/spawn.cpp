// SPDX-License-Identifier: MIT
// spawn: a spawner actor creates n short-lived event-based actors; each gets
// one message carrying its number (1..n), sends it back and quits; the
// spawner counts the answers and sums them. Checksum: n*(n+1)/2. CAF's default scheduler lets an actor
// handle its whole mailbox in one run (no message budget), so a spawner that
// mails itself "more" would never yield; instead it keeps a window of
// `window` children in flight and spawns a new one for each answer.
#include "bench.hpp"

using namespace caf;

static constexpr uint64_t window = 1000;

static behavior child(event_based_actor* self) {
  return {[=](uint64_t v) {
    self->send(actor_cast<actor>(self->current_sender()), v);
    self->quit();
  }};
}

struct spawner_state {
  uint64_t spawned = 0;
  uint64_t answered = 0;
  uint64_t sum = 0;
};

static void spawn_child(stateful_actor<spawner_state>* self) {
  self->send(self->spawn(child), ++self->state.spawned);
}

static behavior spawner(stateful_actor<spawner_state>* self, uint64_t n,
                        actor done) {
  for (uint64_t i = 0; i < window && self->state.spawned < n; i++)
    spawn_child(self);
  return {[=](uint64_t v) {
    auto& s = self->state;
    s.sum += v;
    if (++s.answered == n) {
      self->send(done, s.sum);
      self->quit();
    } else if (s.spawned < n) {
      spawn_child(self);
    }
  }};
}

uint64_t run_spawn(actor_system& sys, const params& p, uint64_t& items,
                   std::string&) {
  scoped_actor self{sys};
  sys.spawn(spawner, p.n, actor{self});
  uint64_t sum = 0;
  self->receive([&](uint64_t v) { sum = v; });
  items = p.n;
  return sum;
}
