// Google Benchmark over the layer suite (bench/layers.json): every layer with
// every backend this build has, reporting GFLOP/s.
#include <benchmark/benchmark.h>

#include <random>

#include "runtime/suite.hpp"
#include "tconv3d/layer.hpp"

namespace {

void run_layer(benchmark::State& state, const tconv3d::SuiteLayer& entry, tconv3d::Backend backend) {
  tconv3d::LayerOptions options;
  options.backend = backend;
  options.threads = static_cast<int>(state.range(0));
  const tconv3d::Layer layer = tconv3d::Layer::create_initialized(entry.config, entry.input_shape, 1, options);
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> input(static_cast<size_t>(layer.geometry().input_elements()));
  for (auto& v : input) v = dist(rng);
  std::vector<float> output(static_cast<size_t>(layer.output_elements()));
  for (auto _ : state) {
    layer.forward(input.data(), output.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(layer.geometry().flops() * double(state.iterations()) / 1e9,
                                                 benchmark::Counter::kIsRate);
  state.SetLabel(layer.executor().kernel_name());
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<tconv3d::SuiteLayer> suite = tconv3d::load_suite(TCONV3D_SUITE_PATH);
  for (const auto& entry : suite) {
    for (auto backend : {tconv3d::Backend::kGeneric, tconv3d::Backend::kReference}) {
      auto* b = benchmark::RegisterBenchmark(
          (entry.name + "/" + tconv3d::to_string(backend)).c_str(),
          [entry, backend](benchmark::State& state) { run_layer(state, entry, backend); });
      b->Arg(1)->Arg(2)->ArgName("threads")->Unit(benchmark::kMillisecond)->UseRealTime();
      if (backend == tconv3d::Backend::kReference) b->Iterations(1);
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
