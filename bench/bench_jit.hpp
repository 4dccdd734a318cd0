// JIT costs, when the build has the Xbyak backend: Layer::create with a cold
// kernel cache (the kernel is generated) and a warm one (it is found), the
// generator's own compile time from the cache's counters, and the latency of
// one kernel-cache hit. In other builds this registers nothing.
#pragma once

#include <memory>
#include <vector>

#include "bench/bench_data.hpp"
#include "bench/summary.hpp"

namespace tconv3d::bench {

void register_jit_benchmarks(const std::vector<std::unique_ptr<LayerData>>& layers, CollectingReporter& reporter);

}  // namespace tconv3d::bench
