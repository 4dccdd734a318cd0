#include "bench/bench_jit.hpp"

#ifdef TCONV3D_HAVE_XBYAK
#include "runtime/kernel_cache.hpp"
#endif

namespace tconv3d::bench {

#ifdef TCONV3D_HAVE_XBYAK
namespace {

// Layer::create with the kernel cache emptied before every call: planning,
// weight packing and code generation. "compile_ms" is the cache's own
// measurement of the generation alone.
void bench_create_cold(benchmark::State& state, LayerData* data) {
  KernelCache& cache = KernelCache::global();
  const KernelCache::Stats before = cache.stats();
  for (auto _ : state) {
    state.PauseTiming();
    cache.clear();
    state.ResumeTiming();
    try {
      benchmark::DoNotOptimize(data->make_layer(Backend::kXbyak, 1));
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
      break;
    }
  }
  const KernelCache::Stats after = cache.stats();
  if (after.misses > before.misses)
    state.counters["compile_ms"] =
        1e3 * (after.compile_seconds - before.compile_seconds) / double(after.misses - before.misses);
}

// Layer::create when the kernel is already cached: what a second model load pays.
void bench_create_warm(benchmark::State& state, LayerData* data) {
  try {
    const Layer first = data->make_layer(Backend::kXbyak, 1);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    for (auto _ : state) {
    }
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(data->make_layer(Backend::kXbyak, 1));
}

// One hit in the process-wide cache: lookup, LRU touch, shared_ptr copy.
void bench_cache_hit(benchmark::State& state) {
  KernelCache& cache = KernelCache::global();
  const std::string key = "tconv3d_bench_cache_probe";
  auto compile = [] { return CompiledCode{{0xC3}, "tconv3d_bench_cache_probe"}; };  // a lone `ret`
  cache.get_or_compile(key, compile);
  for (auto _ : state) benchmark::DoNotOptimize(cache.get_or_compile(key, compile));
}

}  // namespace

void register_jit_benchmarks(const std::vector<std::unique_ptr<LayerData>>& layers, CollectingReporter& reporter) {
  for (const auto& data : layers) {
    const std::string& layer = data->entry.name;
    const std::string cold = "jit/create_cold/" + layer, warm = "jit/create_warm/" + layer;
    reporter.name(cold, MeasurementKey{layer, "jit_create_cold", 1});
    reporter.name(warm, MeasurementKey{layer, "jit_create_warm", 1});
    benchmark::RegisterBenchmark(cold.c_str(), bench_create_cold, data.get())->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(warm.c_str(), bench_create_warm, data.get())->Unit(benchmark::kMicrosecond);
  }
  reporter.name("jit/cache_hit", MeasurementKey{"(cache)", "jit_cache_hit", 1});
  benchmark::RegisterBenchmark("jit/cache_hit", bench_cache_hit)->Unit(benchmark::kNanosecond);
}

#else

void register_jit_benchmarks(const std::vector<std::unique_ptr<LayerData>>&, CollectingReporter&) {}

#endif

}  // namespace tconv3d::bench
