// tconv3d_bench: the layer suite (bench/layers.json) side by side: reference
// (once, 1 thread), generic, xbyak (when built) and oneDNN's
// deconvolution_forward (when built), with 1 and 2 threads, plus JIT compile
// time and kernel-cache latency. Google Benchmark's table comes first, then a
// summary with medians, % of the measured FMA peak and speed-up ratios.
//
// Defaults (each overridable on the command line): --benchmark_repetitions=3
// --benchmark_enable_random_interleaving=true (repetitions of different
// implementations alternate, so a ratio is not an artefact of a noisy moment)
// --benchmark_min_time=0.1 --benchmark_display_aggregates_only=true.
// Limit oneDNN's ISA with ONEDNN_MAX_CPU_ISA=AVX2 (or DNNL_MAX_CPU_ISA=AVX2);
// oneDNN reads it itself. TCONV3D_ISA=avx2 does the same for tconv3d.
// Environment TCONV3D_BENCH_THREADS=1,2 picks the thread counts.
// Environment TCONV3D_BENCH_CPU_TIME=1 makes the summaries use process CPU
// time (for a shared machine; see summary.hpp).
// Environment TCONV3D_BENCH_PARTS=forward,backward,bf16 (the default: all)
// picks what is registered: the forward table above, the backward
// side-by-side (backward_bench.hpp) and the bf16 one (bf16_bench.hpp). A
// --benchmark_filter=/backward/ or =/bf16/ selects the same way.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>

#include "bench/backward_bench.hpp"
#include "bench/bench_data.hpp"
#include "bench/bench_jit.hpp"
#include "bench/bf16_bench.hpp"
#include "bench/implementations.hpp"
#include "bench/side_by_side.hpp"
#include "bench/summary.hpp"
#include "core/cpu_features.hpp"
#include "tools/support/accuracy.hpp"
#include "tools/support/fma_peak.hpp"

namespace tconv3d::bench {
namespace {

// Errors above this (relative to the output scale) fail the benchmark.
constexpr double kMaxError = 1e-4;

ImplementationCache<Implementation> g_implementations;
FmaPeaks g_peaks;

// Builds and checks an implementation the first time a benchmark needs it.
const Implementation* implementation_for(LayerData& data, const MeasurementKey& key) {
  return g_implementations.find_or_build(key, [&](ImplementationInfo& info) {
    auto impl = make_implementation(key.impl, data, key.threads);
    impl->run(data.input.data(), data.output.data());
    info.max_error = scaled_max_error(data.output.data(), data.reference().data(), data.reference().size());
    info.label = impl->label();
    info.uses_zmm = impl->uses_zmm();
    skip_above(info, kMaxError, "the reference");
    return impl;
  });
}

void bench_implementation(benchmark::State& state, LayerData* data, MeasurementKey key) {
  const Implementation* impl = implementation_for(*data, key);
  const ImplementationInfo& info = g_implementations.info(key);
  if (!time_or_skip(state, impl != nullptr, info.skipped,
                    [&] { impl->run(data->input.data(), data->output.data()); }))
    return;
  set_rate_counters(state, data->flops, fma_peak(g_peaks, info.uses_zmm, key.threads));
  state.SetLabel(info.label);
}

// The reference runs once per layer (it is slow); its time is reported as
// manual time, and its output checks every other implementation.
void bench_reference(benchmark::State& state, LayerData* data) {
  const double seconds = data->reference_seconds();
  for (auto _ : state) state.SetIterationTime(seconds);
  set_rate_counters(state, data->flops);
  state.SetLabel("naive loops, double accumulation, 1 thread");
}

std::vector<int> thread_counts() {
  std::vector<int> counts;
  const char* text = std::getenv("TCONV3D_BENCH_THREADS");
  std::stringstream stream(text && *text ? text : "1,2");
  std::string item;
  while (std::getline(stream, item, ',')) {
    const int t = std::atoi(item.c_str());
    if (t < 1 || t > 1024) {
      std::fprintf(stderr, "TCONV3D_BENCH_THREADS: expected a list like 1,2, got '%s'\n", text);
      std::exit(2);
    }
    counts.push_back(t);
  }
  return counts;
}

void measure_peaks(const std::vector<int>& threads) {
  const CpuFeatures& cpu = cpu_features();
  for (int t : threads) {
    FmaPeakOptions options;
    options.threads = t;
    if (cpu.avx2_fma) g_peaks.ymm[t] = measure_fma_peak(Isa::kAvx2, options);
    if (cpu.avx512) g_peaks.zmm[t] = measure_fma_peak(Isa::kAvx512, options);
  }
}

struct Parts {
  bool forward = true, backward = true, bf16 = true;
};

Parts parts() {
  const char* text = std::getenv("TCONV3D_BENCH_PARTS");
  if (!text || !*text) return {};
  Parts p{false, false, false};
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    if (item == "forward") {
      p.forward = true;
    } else if (item == "backward") {
      p.backward = true;
    } else if (item == "bf16") {
      p.bf16 = true;
    } else {
      std::fprintf(stderr, "TCONV3D_BENCH_PARTS: expected a list of forward, backward, bf16, got '%s'\n", text);
      std::exit(2);
    }
  }
  return p;
}

bool has_flag(const std::vector<char*>& args, const char* flag) {
  for (const char* a : args)
    if (std::strncmp(a, flag, std::strlen(flag)) == 0) return true;
  return false;
}

}  // namespace
}  // namespace tconv3d::bench

int main(int argc, char** argv) {
  using namespace tconv3d::bench;
  std::vector<char*> args(argv, argv + argc);
  static char defaults[][64] = {"--benchmark_repetitions=3", "--benchmark_enable_random_interleaving=true",
                                "--benchmark_min_time=0.1", "--benchmark_display_aggregates_only=true"};
  for (char* flag : defaults) {
    const std::string name = std::string(flag).substr(0, std::string(flag).find('=') + 1);
    if (!has_flag(args, name.c_str())) args.insert(args.begin() + 1, flag);
  }
  bool json = false;
  for (const char* a : args) json = json || std::strcmp(a, "--benchmark_format=json") == 0;
  int count = int(args.size());
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 2;

  const std::vector<int> threads = thread_counts();
  const Parts selected = parts();
  const auto layers = load_layers(TCONV3D_SUITE_PATH);
  auto display = std::unique_ptr<benchmark::BenchmarkReporter>(benchmark::CreateDefaultDisplayReporter());
  CollectingReporter reporter(display.get());
  SummaryInput summary;
  summary.threads = threads;
  for (const auto& data : layers) {
    const std::string& layer = data->entry.name;
    summary.layers.push_back(layer);
    summary.flops[layer] = data->flops;
    summary.useful_share[layer] = data->useful_flops / data->flops;
    if (!selected.forward) continue;
    const std::string ref_name = layer + "/reference/threads:1";
    reporter.name(ref_name, MeasurementKey{layer, "reference", 1});
    benchmark::RegisterBenchmark(ref_name.c_str(), bench_reference, data.get())
        ->Iterations(1)
        ->Repetitions(1)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
    register_side_by_side(data.get(), threads, implementation_names(), reporter, bench_implementation);
  }
  if (selected.forward) register_jit_benchmarks(layers, reporter);
  if (selected.backward) register_backward_benchmarks(layers, threads, reporter);
  if (selected.bf16) register_bf16_benchmarks(layers, threads, reporter);

  measure_peaks(threads);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  summary.seconds = reporter.seconds();
  summary.info = g_implementations.info();
  summary.peaks = g_peaks;
  std::FILE* out = json ? stderr : stdout;
  if (cpu_time_mode()) std::fprintf(out, "\n(TCONV3D_BENCH_CPU_TIME=1: the summaries below use process CPU time)\n");
  // Forward measurements' names have no '/' ("xbyak", "jit_create_cold"); a
  // --benchmark_filter=/backward/ run leaves none, and no empty table.
  bool forward_ran = false;
  for (const auto& [key, values] : summary.seconds)
    forward_ran = forward_ran || key.impl.find('/') == std::string::npos;
  if (selected.forward && (forward_ran || !g_implementations.info().empty())) print_summary(out, summary);
  print_backward_summary(out, summary);
  print_bf16_summary(out, summary);
  benchmark::Shutdown();
  return 0;
}
