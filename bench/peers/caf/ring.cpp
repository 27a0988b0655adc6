// SPDX-License-Identifier: MIT
// ring: a event-based actors in a ring pass a token n times; each hop
// decrements it. The first node spawns the others so that the last can point
// back at it. Afterwards a stop message goes once around the ring.
#include "bench.hpp"

using namespace caf;

static behavior node(event_based_actor* self, actor next, actor done,
                     uint64_t actors) {
  // The first node (actors > 0) builds the rest of the ring.
  if (actors > 0) {
    next = actor{self};
    for (uint64_t i = 1; i < actors; i++)
      next = self->spawn(node, next, done, uint64_t{0});
  }
  return {
    [=](uint64_t left, uint64_t hops) {
      if (left == 0) {
        self->send(done, hops);
        self->send(next, stop_atom::value);
        return;
      }
      self->send(next, left - 1, hops + 1);
    },
    [=](stop_atom) {
      self->send(next, stop_atom::value);
      self->quit();
    },
  };
}

uint64_t run_ring(actor_system& sys, const params& p, uint64_t& items,
                  std::string&) {
  scoped_actor self{sys};
  auto first = sys.spawn(node, actor{}, actor{self}, p.actors);
  self->send(first, p.n, uint64_t{0});
  uint64_t hops = 0;
  self->receive([&](uint64_t v) { hops = v; });
  items = hops;
  return hops;
}
