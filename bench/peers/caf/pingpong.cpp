// SPDX-License-Identifier: MIT
// pingpong: two event-based actors bounce one message back and forth n times.
#include "bench.hpp"

using namespace caf;

static behavior ponger(event_based_actor* self) {
  return {[=](ping_atom, uint64_t trips) {
    self->send(actor_cast<actor>(self->current_sender()), pong_atom::value,
               trips);
  }};
}

static behavior pinger(event_based_actor* self, actor pong, uint64_t n,
                       actor done) {
  self->send(pong, ping_atom::value, uint64_t{0});
  return {[=](pong_atom, uint64_t trips) {
    if (trips + 1 == n) {
      self->send(done, n);
      self->send_exit(pong, exit_reason::user_shutdown);
      self->quit();
      return;
    }
    self->send(pong, ping_atom::value, trips + 1);
  }};
}

uint64_t run_pingpong(actor_system& sys, const params& p, uint64_t& items,
                      std::string&) {
  scoped_actor self{sys};
  sys.spawn(pinger, sys.spawn(ponger), p.n, actor{self});
  uint64_t trips = 0;
  self->receive([&](uint64_t v) { trips = v; });
  items = trips;
  return trips;
}
