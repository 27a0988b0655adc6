// SPDX-License-Identifier: MIT
// idle_memory: spawns n event-based actors that wait for a message that never
// comes; reports resident memory growth per actor. Afterwards they are told
// to exit so that the actor system can shut down.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include "bench.hpp"

using namespace caf;

static uint64_t rss_bytes() {
  unsigned long long size = 0, resident = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr || std::fscanf(f, "%llu %llu", &size, &resident) != 2)
    std::abort();
  std::fclose(f);
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

static behavior idler(event_based_actor*, std::atomic<uint64_t>* alive) {
  alive->fetch_add(1, std::memory_order_relaxed);
  return {[](uint64_t) {}};
}

uint64_t run_idle_memory(actor_system& sys, const params& p, uint64_t& items,
                         std::string& extra) {
  std::atomic<uint64_t> alive{0};
  uint64_t base = rss_bytes();
  std::vector<actor> idlers;
  idlers.reserve(p.n);
  for (uint64_t i = 0; i < p.n; i++)
    idlers.push_back(sys.spawn(idler, &alive));
  while (alive.load() < p.n)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  uint64_t rss = rss_bytes();
  uint64_t grown = rss > base ? rss - base : 0;
  char buf[128];
  std::snprintf(buf, sizeof buf, " bytes_per_actor=%.0f rss_mib=%.1f",
                (double)grown / (double)p.n, (double)rss / 1048576.0);
  extra = buf;
  items = p.n;
  uint64_t count = alive.load();
  for (auto& a : idlers)
    anon_send_exit(a, exit_reason::user_shutdown);
  return count;
}
