// SPDX-License-Identifier: MIT
// skynet: a 10-ary tree of event-based actors; leaves send their number to
// the parent, inner nodes sum their 10 children and send the sum up.
#include "bench.hpp"

using namespace caf;

struct skynet_state {
  uint64_t sum = 0;
  int pending = 10;
};

static behavior skynet(stateful_actor<skynet_state>* self, actor parent,
                       uint64_t num, uint64_t size) {
  if (size == 1) {
    self->send(parent, num);
    self->quit();
    return {};
  }
  size /= 10;
  for (uint64_t i = 0; i < 10; i++)
    self->spawn(skynet, actor{self}, num + i * size, size);
  return {[=](uint64_t v) {
    self->state.sum += v;
    if (--self->state.pending == 0) {
      self->send(parent, self->state.sum);
      self->quit();
    }
  }};
}

uint64_t run_skynet(actor_system& sys, const params& p, uint64_t& items,
                    std::string&) {
  scoped_actor self{sys};
  sys.spawn(skynet, actor{self}, uint64_t{0}, p.n);
  uint64_t sum = 0;
  self->receive([&](uint64_t v) { sum = v; });
  items = (p.n * 10 - 1) / 9;
  return sum;
}
