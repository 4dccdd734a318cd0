// What every side-by-side in tconv3d_bench (the forward table in
// bench_suite.cc, backward_bench.cc, bf16_bench.cc) does the same way: build
// and check each implementation once per (layer, implementation, threads)
// and remember why one was skipped; time it, or skip the benchmark with that
// reason; register "LAYER/IMPL/threads:T" for each; and, in the summary, list
// the checks.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_data.hpp"
#include "bench/summary.hpp"

namespace tconv3d::bench {

// The implementations of one side-by-side, built on first use, with what
// was learnt about each (Info: ImplementationInfo or the like, with a
// `skipped` reason and the check's results).
template <typename Impl, typename Info = ImplementationInfo>
class ImplementationCache {
 public:
  // The implementation for `key`: built and checked by `build(info)` the
  // first time, which returns it having filled `info`. A build that throws
  // (info.skipped = the exception's message) or sets info.skipped (a failed
  // check) leaves the key skipped: nullptr now and on every later call.
  template <typename Build>
  const Impl* find_or_build(const MeasurementKey& key, Build&& build) {
    Info& info = info_[key];
    if (!info.skipped.empty()) return nullptr;
    if (auto found = built_.find(key); found != built_.end()) return found->second.get();
    try {
      std::unique_ptr<Impl> impl = build(info);
      if (!info.skipped.empty()) return nullptr;
      return built_.emplace(key, std::move(impl)).first->second.get();
    } catch (const std::exception& e) {
      info.skipped = e.what();
      return nullptr;
    }
  }

  Info& info(const MeasurementKey& key) { return info_[key]; }
  const std::map<MeasurementKey, Info>& info() const { return info_; }

 private:
  std::map<MeasurementKey, Info> info_;
  std::map<MeasurementKey, std::unique_ptr<Impl>> built_;
};

// The timed loop: run() once per iteration. Where nothing was built
// (`built` false) the benchmark is skipped with `skipped` as its reason
// instead (Google Benchmark still wants the loop entered). Returns `built`.
template <typename Run>
bool time_or_skip(benchmark::State& state, bool built, const std::string& skipped, Run&& run) {
  if (!built) {
    state.SkipWithError(skipped.c_str());
    for (auto _ : state) {
    }
    return false;
  }
  for (auto _ : state) {
    run();
    benchmark::ClobberMemory();
  }
  return true;
}

// "GFLOP/s" (`flops` per iteration) and, where `peak` (GFLOP/s) is a
// positive number, "%peak" counters.
void set_rate_counters(benchmark::State& state, double flops, double peak = 0);

// The measured FMA peak for these vectors and threads, NaN where none was
// measured.
double fma_peak(const FmaPeaks& peaks, bool zmm, int threads);

using SideBySideFunction = void (*)(benchmark::State&, LayerData*, MeasurementKey);

// Registers `function` as "LAYER/IMPL/threads:T" for each thread count and
// implementation name (threads outermost), named for the reporter, timed
// (summary.hpp) and in milliseconds.
void register_side_by_side(LayerData* data, const std::vector<int>& threads, const std::vector<std::string>& impls,
                           CollectingReporter& reporter, SideBySideFunction function);

// The per-implementation lines after a summary table, in key order:
// "  LAYER IMPL t=T  skipped: why" for every skipped measurement, and
// "  LAYER IMPL <describe(info)>" once per implementation that ran, for the
// first thread count. `prefix` ("bf16/", ...) is left out of the names.
template <typename Info, typename Describe>
void print_checks(std::FILE* out, const std::map<MeasurementKey, Info>& info, int first_threads,
                  const std::string& prefix, Describe&& describe) {
  for (const auto& [key, i] : info) {
    const char* impl = key.impl.c_str() + (key.impl.rfind(prefix, 0) == 0 ? prefix.size() : 0);
    if (!i.skipped.empty()) {
      std::fprintf(out, "  %-16s %-8s t=%d  skipped: %s\n", key.layer.c_str(), impl, key.threads, i.skipped.c_str());
    } else if (key.threads == first_threads) {
      std::fprintf(out, "  %-16s %-8s %s\n", key.layer.c_str(), impl, describe(i).c_str());
    }
  }
}

// A forward implementation's check: where info.max_error is above `limit`
// (or NaN), info.skipped = "output differs from REFERENCE: max error E".
void skip_above(ImplementationInfo& info, double limit, const char* reference);

// "max error E  LABEL": the check line of a forward implementation.
std::string max_error_text(const ImplementationInfo& info);

// The geometric mean of speed ratios, for the "geomean" lines.
class Geomean {
 public:
  void add(double ratio);
  int count() const { return count_; }
  double value() const;  // NaN when empty

 private:
  double log_sum_ = 0;
  int count_ = 0;
};

// "%.2fx" of a / b, or "-" where either is missing (NaN).
std::string ratio_text(double a, double b);

}  // namespace tconv3d::bench
