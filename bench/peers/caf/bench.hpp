// SPDX-License-Identifier: MIT
// Shared declarations of the CAF 0.17 peer of troupe's actor-core
// benchmarks: the parameters, the atoms, and one entry point per workload.
#pragma once

#include <cstdint>
#include <string>

#include "caf/all.hpp"

struct params {
  uint64_t n;
  uint64_t workers;
  uint64_t actors;
  uint64_t senders;
};

using ping_atom = caf::atom_constant<caf::atom("ping")>;
using pong_atom = caf::atom_constant<caf::atom("pong")>;
using more_atom = caf::atom_constant<caf::atom("more")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;

// Each runs the measured part and returns its checksum; `items` is what the
// rate is computed from, `extra` more " k=v" figures for the RESULT line.
using workload_fn = uint64_t (*)(caf::actor_system&, const params&,
                                 uint64_t& items, std::string& extra);

uint64_t run_pingpong(caf::actor_system&, const params&, uint64_t&, std::string&);
uint64_t run_ring(caf::actor_system&, const params&, uint64_t&, std::string&);
uint64_t run_skynet(caf::actor_system&, const params&, uint64_t&, std::string&);
uint64_t run_fanin(caf::actor_system&, const params&, uint64_t&, std::string&);
uint64_t run_spawn(caf::actor_system&, const params&, uint64_t&, std::string&);
uint64_t run_idle_memory(caf::actor_system&, const params&, uint64_t&, std::string&);
