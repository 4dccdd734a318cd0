// The compact table printed after Google Benchmark's own output: per layer and
// thread count, the median GFLOP/s of each implementation over the
// (interleaved) repetitions, its share of the measured FMA peak, the speed-up
// ratios, and each implementation's max error against the reference.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace tconv3d::bench {

struct MeasurementKey {
  std::string layer, impl;
  int threads = 1;
  auto operator<=>(const MeasurementKey&) const = default;
};

// What a benchmark learnt about its implementation besides the time.
struct ImplementationInfo {
  std::string label;
  bool uses_zmm = false;
  double max_error = -1;  // < 0: not checked
  std::string skipped;    // why it did not run, if it did not
};

struct FmaPeaks {
  std::map<int, double> ymm, zmm;  // threads -> GFLOP/s (zmm empty without AVX-512)
};

// TCONV3D_BENCH_CPU_TIME=1: the summaries use each benchmark's process CPU
// time instead of the wall clock, for a shared machine where other processes
// stretch wall time (exact on 1 thread; with more, OpenMP's waiting threads
// spin and count). The reference keeps its own manual time.
bool cpu_time_mode();
// What every timed benchmark registers with: wall clock, and process CPU time
// in that mode.
benchmark::internal::Benchmark* timed(benchmark::internal::Benchmark* benchmark);

// Forwards everything to Google Benchmark's display reporter (console or
// json, per --benchmark_format) and keeps each repetition's time per iteration.
class CollectingReporter final : public benchmark::BenchmarkReporter {
 public:
  explicit CollectingReporter(benchmark::BenchmarkReporter* display) : display_(display) {}
  void name(const std::string& function_name, const MeasurementKey& key) { keys_[function_name] = key; }

  bool ReportContext(const Context& context) override { return display_->ReportContext(context); }
  void ReportRuns(const std::vector<Run>& runs) override;
  void Finalize() override { display_->Finalize(); }

  // Per benchmark, seconds per iteration: every repetition when the display
  // saw them, else the median aggregate (--benchmark_display_aggregates_only).
  std::map<MeasurementKey, std::vector<double>> seconds() const;

 private:
  benchmark::BenchmarkReporter* display_;
  std::map<std::string, MeasurementKey> keys_;
  std::map<MeasurementKey, std::vector<double>> seconds_;
  std::map<MeasurementKey, double> median_aggregate_;
};

struct SummaryInput {
  std::vector<std::string> layers;           // in suite order
  std::map<std::string, double> flops;       // per layer
  std::map<std::string, double> useful_share;  // per layer: useful_flops() / flops(), for % of peak
  std::vector<int> threads;
  std::map<MeasurementKey, std::vector<double>> seconds;
  std::map<MeasurementKey, ImplementationInfo> info;
  FmaPeaks peaks;
};

void print_summary(std::FILE* out, const SummaryInput& input);

// The median of a measurement's seconds per iteration, NaN where it did not run.
double median_seconds(const SummaryInput& in, const MeasurementKey& key);
// The layer's useful_flops / flops, 1 where unknown.
double useful_share(const SummaryInput& in, const std::string& layer);

}  // namespace tconv3d::bench
