// SPDX-License-Identifier: MIT
// The CAF 0.17 peer of troupe's actor-core benchmarks: event-based actors on
// the default work-stealing scheduler, scheduler.max-threads = workers.
// Usage: caf-bench <workload> [-n N] [-w W] [-a A] [-s S]
// It prints the parameters, then the same RESULT line as the troupe programs.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "bench.hpp"

static void usage() {
  std::fprintf(stderr, "usage: caf-bench pingpong|ring|skynet|fanin|spawn|"
                       "idle_memory [-n N] [-w W] [-a A] [-s S]\n");
  std::exit(64);
}

int main(int argc, char** argv) {
  struct entry {
    workload_fn fn;
    uint64_t n;
  };
  const std::map<std::string, entry> workloads = {
    {"pingpong", {run_pingpong, 2000000}}, {"ring", {run_ring, 10000000}},
    {"skynet", {run_skynet, 1000000}},     {"fanin", {run_fanin, 5000000}},
    {"spawn", {run_spawn, 1000000}},       {"idle_memory", {run_idle_memory, 1000000}},
  };
  if (argc < 2 || workloads.count(argv[1]) == 0)
    usage();
  const std::string name = argv[1];
  const entry& w = workloads.at(name);
  params p{w.n, 2, 1000, 0};
  for (int i = 2; i < argc; i += 2) {
    if (i + 1 >= argc || std::strlen(argv[i]) != 2 || argv[i][0] != '-')
      usage();
    uint64_t v = std::strtoull(argv[i + 1], nullptr, 10);
    switch (argv[i][1]) {
      case 'n': p.n = v; break;
      case 'w': p.workers = v; break;
      case 'a': p.actors = v; break;
      case 's': p.senders = v; break;
      case 't': break; // timeout: enforced by the driver
      default: usage();
    }
  }
  if (p.senders == 0)
    p.senders = p.workers;
  // fanin and spawn: the checksum is the sum of the values received.
  const char* formula = name == "fanin"   ? " checksum=s*n*(n+1)/2"
                        : name == "spawn" ? " checksum=n*(n+1)/2"
                                          : "";
  std::printf("%s caf 0.%d.%d: n=%llu workers=%llu actors=%llu senders=%llu%s\n",
              name.c_str(), CAF_MINOR_VERSION, CAF_PATCH_VERSION, (unsigned long long)p.n,
              (unsigned long long)p.workers, (unsigned long long)p.actors,
              (unsigned long long)p.senders, formula);
  std::fflush(stdout);

  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", static_cast<int64_t>(p.workers));
  caf::actor_system sys{cfg};

  uint64_t items = 0;
  std::string extra;
  auto t0 = std::chrono::steady_clock::now();
  uint64_t checksum = w.fn(sys, p, items, extra);
  std::chrono::duration<double> secs = std::chrono::steady_clock::now() - t0;
  std::printf("RESULT %s caf %.6f %llu rate=%.0f%s\n", name.c_str(),
              secs.count(), (unsigned long long)checksum,
              (double)items / secs.count(), extra.c_str());
  std::fflush(stdout);
  return 0; // ~actor_system waits for the remaining actors to quit
}
