#include "tools/bench_bf16_backward.hpp"

#include <algorithm>
#include <cstdio>
#include <optional>

#include <nlohmann/json.hpp>

#include "tconv3d/bfloat16.hpp"
#include "tconv3d/error.hpp"
#include "tools/commands.hpp"
#include "tools/support/fma_peak.hpp"
#include "tools/support/timing.hpp"

namespace tconv3d::cli {

namespace {

std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = float_to_bf16(v[i]);
  return out;
}

// The vdpbf16ps ceiling at `threads`, measured once per run of the command.
double bf16_peak_gflops(int threads) {
  static double peak = -1.0;
  if (peak < 0.0) {
    FmaPeakOptions options;
    options.threads = threads;
    peak = measure_bf16_peak(options);
  }
  return peak;
}

}  // namespace

// Three things, alternated in three rounds (best of the rounds' medians), so
// all see the same machine load: the bf16 backward (dx + dK + db), its dx
// alone (dk and db skipped: dz's pass and the dx kernel), and the float32
// backward of the float32 twin. FLOPs: the backward counts 2x the forward's,
// dx alone 1x; dx's share of the vdpbf16ps ceiling is printed.
void bench_bf16_backward(const std::string& name, const LayerConfig& config, const std::vector<int64_t>& input_shape,
                         const LayerOptions& options, double min_seconds, bool json) {
  std::optional<Layer> made;
  try {
    made.emplace(Layer::create_initialized(config, input_shape, 1, options));
  } catch (const Error& e) {
    std::printf("%-18s bf16 not run: %s\n", name.c_str(), e.what());
    std::fflush(stdout);
    return;
  }
  const Layer& layer = *made;
  LayerOptions f32_options = options;
  f32_options.dtype = DataType::kFloat32;
  const Layer f32 = Layer::create_initialized(config, input_shape, 1, f32_options);
  print_warnings(layer.warnings());
  const ConvGeometry& g = layer.geometry();
  const std::vector<float> x = random_values(g.input_elements(), 7), dy = random_values(layer.output_elements(), 11);
  std::vector<float> y(static_cast<size_t>(f32.output_elements())), dx(x.size()), dk(layer.kernel().size()),
      db(layer.bias().size());
  f32.forward(x.data(), y.data());
  const std::vector<uint16_t> x_b = to_bf16(x), dy_b = to_bf16(dy);
  std::vector<uint16_t> y_b(y.size()), dx_b(x.size());
  layer.forward_bf16(x_b.data(), y_b.data());
  float* db_or_null = db.empty() ? nullptr : db.data();
  const std::string kernels = layer.backward_bf16_kernel_names();
  double bf16_ms = 1e300, dx_ms = 1e300, f32_ms = 1e300;
  for (int round = 0; round < 3; ++round) {
    const TimingResult b = time_repeated(
        [&] { layer.backward_bf16(x_b.data(), y_b.data(), dy_b.data(), dx_b.data(), dk.data(), db_or_null); },
        min_seconds / 3, 3);
    const TimingResult d = time_repeated(
        [&] { layer.backward_bf16(x_b.data(), y_b.data(), dy_b.data(), dx_b.data(), nullptr, nullptr); },
        min_seconds / 3, 3);
    const TimingResult f = time_repeated(
        [&] { f32.backward(x.data(), y.data(), dy.data(), dx.data(), dk.data(), db_or_null); }, min_seconds / 3, 3);
    bf16_ms = std::min(bf16_ms, b.median_ms);
    dx_ms = std::min(dx_ms, d.median_ms);
    f32_ms = std::min(f32_ms, f.median_ms);
  }
  const double gflops = 2.0 * g.flops() / (bf16_ms * 1e-3) / 1e9, f32_gflops = 2.0 * g.flops() / (f32_ms * 1e-3) / 1e9;
  const double dx_gflops = g.flops() / (dx_ms * 1e-3) / 1e9;
  const double peak = bf16_peak_gflops(layer.threads());
  const double dx_percent = peak > 0 ? 100.0 * dx_gflops / peak : 0.0;
  if (json) {
    nlohmann::json line = {{"name", name},
                           {"dtype", "bf16"},
                           {"pass", "backward"},
                           {"kernel", kernels},
                           {"threads", layer.threads()},
                           {"ms", bf16_ms},
                           {"gflops", gflops},
                           {"dx_ms", dx_ms},
                           {"dx_gflops", dx_gflops},
                           {"bf16_peak_gflops", peak},
                           {"dx_percent_of_bf16_peak", dx_percent},
                           {"float32_ms", f32_ms},
                           {"float32_gflops", f32_gflops},
                           {"float32_kernel", f32.backward_kernel_names()},
                           {"speedup", f32_ms / bf16_ms}};
    std::printf("%s\n", line.dump().c_str());
  } else {
    std::printf("%-18s bf16 backward threads=%-2d %9.3f ms %8.2f GFLOP/s (dx alone %8.3f ms, %5.1f%% of the "
                "vdpbf16ps peak) | float32 %9.3f ms %8.2f GFLOP/s | x%.2f  (kernels %s)\n",
                name.c_str(), layer.threads(), bf16_ms, gflops, dx_ms, dx_percent, f32_ms, f32_gflops,
                f32_ms / bf16_ms, kernels.c_str());
  }
  std::fflush(stdout);
}

}  // namespace tconv3d::cli
