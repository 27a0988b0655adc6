// SPDX-License-Identifier: MIT
// fanin: s event-based sender actors each send n messages, carrying the
// values n, n-1, ..., 1, to one receiver that counts them and sums the
// values. Senders send chunks of 1000 and mail themselves a "more" message in
// between, like the troupe program. Checksum: the sum, s*n*(n+1)/2.
#include <algorithm>

#include "bench.hpp"

using namespace caf;

static constexpr uint64_t chunk = 1000;

static behavior receiver(event_based_actor* self, uint64_t expected,
                         actor done) {
  auto count = std::make_shared<uint64_t>(0);
  auto sum = std::make_shared<uint64_t>(0);
  return {[=](uint64_t v) {
    *sum += v;
    if (++*count == expected) {
      self->send(done, *sum);
      self->quit();
    }
  }};
}

static behavior sender(event_based_actor* self, actor to, uint64_t n) {
  auto left = std::make_shared<uint64_t>(n);
  self->send(self, more_atom::value);
  return {[=](more_atom) {
    uint64_t k = std::min(*left, chunk);
    for (uint64_t i = 0; i < k; i++)
      self->send(to, *left - i);
    *left -= k;
    if (*left > 0)
      self->send(self, more_atom::value);
    else
      self->quit();
  }};
}

uint64_t run_fanin(actor_system& sys, const params& p, uint64_t& items,
                   std::string&) {
  scoped_actor self{sys};
  auto recv = sys.spawn(receiver, p.senders * p.n, actor{self});
  for (uint64_t i = 0; i < p.senders; i++)
    sys.spawn(sender, recv, p.n);
  uint64_t sum = 0;
  self->receive([&](uint64_t v) { sum = v; });
  items = p.senders * p.n;
  return sum;
}
