// tconv3d bench: times a layer (or a suite of layers) on random data.
#include <cstdio>
#include <filesystem>
#include <optional>
#include <random>

#include <nlohmann/json.hpp>

#include "core/cpu_features.hpp"
#include "tconv3d/bfloat16.hpp"
#include "tconv3d/error.hpp"
#include "tools/bench_bf16_backward.hpp"
#include "tools/commands.hpp"
#include "tools/support/fma_peak.hpp"
#include "tools/support/suite.hpp"
#include "tools/support/timing.hpp"

namespace tconv3d::cli {
namespace {

// bf16: the bf16 layer and its float32 twin (same backend choice), timed in
// alternation so both see the same machine load; prints both and the ratio.
void bench_bf16(const std::string& name, const LayerConfig& config, const std::vector<int64_t>& input_shape,
                const LayerOptions& options, double min_seconds, bool json) {
  std::optional<Layer> made;
  try {
    made.emplace(Layer::create_initialized(config, input_shape, 1, options));
  } catch (const Error& e) {
    // A suite may hold layers bf16 does not run yet (channels_first): say so, go on.
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
  const std::vector<float> input = random_values(g.input_elements(), 7);
  std::vector<uint16_t> input_bf16(input.size());
  for (size_t i = 0; i < input.size(); ++i) input_bf16[i] = float_to_bf16(input[i]);
  std::vector<uint16_t> output_bf16(static_cast<size_t>(layer.output_elements()));
  std::vector<float> output(static_cast<size_t>(f32.output_elements()));
  double bf16_ms = 1e300, f32_ms = 1e300;  // best of three alternating rounds of medians
  int reps = 0;
  for (int round = 0; round < 3; ++round) {
    const TimingResult b =
        time_repeated([&] { layer.forward_bf16(input_bf16.data(), output_bf16.data()); }, min_seconds / 3, 3);
    const TimingResult f = time_repeated([&] { f32.forward(input.data(), output.data()); }, min_seconds / 3, 3);
    bf16_ms = std::min(bf16_ms, b.median_ms);
    f32_ms = std::min(f32_ms, f.median_ms);
    reps += b.repetitions;
  }
  const double bf16_gflops = g.flops() / (bf16_ms * 1e-3) / 1e9, f32_gflops = g.flops() / (f32_ms * 1e-3) / 1e9;
  if (json) {
    nlohmann::json line = {{"name", name},
                           {"dtype", "bf16"},
                           {"backend", to_string(layer.backend())},
                           {"kernel", layer.kernel_name()},
                           {"threads", layer.threads()},
                           {"ms", bf16_ms},
                           {"gflops", bf16_gflops},
                           {"float32_ms", f32_ms},
                           {"float32_gflops", f32_gflops},
                           {"float32_kernel", f32.kernel_name()},
                           {"speedup", f32_ms / bf16_ms},
                           {"repetitions", reps}};
    std::printf("%s\n", line.dump().c_str());
  } else {
    std::printf("%-18s bf16 threads=%-2d %9.3f ms %8.2f GFLOP/s | float32 %9.3f ms %8.2f GFLOP/s | x%.2f"
                "  (kernel %s)\n",
                name.c_str(), layer.threads(), bf16_ms, bf16_gflops, f32_ms, f32_gflops, f32_ms / bf16_ms,
                layer.kernel_name().c_str());
  }
  std::fflush(stdout);
}

// What a bench times: the forward (the default), the backward (dx + dK + db,
// counted as 2x the forward's FLOPs), or both (3x).
enum class Pass { kForward, kBackward, kForwardBackward };

Pass parse_pass(const std::string& text) {
  if (text == "forward") return Pass::kForward;
  if (text == "backward") return Pass::kBackward;
  if (text == "forward+backward") return Pass::kForwardBackward;
  throw Error("--pass", "expected forward, backward or forward+backward, got '" + text + "'");
}

// The machine's FMA ceiling at `threads`, measured once per run of the
// command for the widest vectors the CPU has (0 without AVX2).
double fma_peak_gflops(int threads) {
  static double peak = -1.0;
  if (peak < 0.0) {
    const CpuFeatures& cpu = cpu_features();
    FmaPeakOptions options;
    options.threads = threads;
    peak = cpu.avx512 ? measure_fma_peak(Isa::kAvx512, options)
           : cpu.avx2_fma ? measure_fma_peak(Isa::kAvx2, options)
                          : 0.0;
  }
  return peak;
}

void bench_one(const std::string& name, const LayerConfig& config, const std::vector<int64_t>& input_shape,
               const LayerOptions& options, double min_seconds, bool json, Pass pass) {
  if (options.dtype == DataType::kBfloat16) {
    if (pass == Pass::kForwardBackward) throw Error("--pass", "--dtype bf16 times forward or backward, not both");
    if (pass == Pass::kBackward) {
      bench_bf16_backward(name, config, input_shape, options, min_seconds, json);
    } else {
      bench_bf16(name, config, input_shape, options, min_seconds, json);
    }
    return;
  }
  std::vector<std::string> warnings;
  const Layer layer = Layer::create_initialized(config, input_shape, 1, options);
  print_warnings(layer.warnings());
  const ConvGeometry& g = layer.geometry();
  const std::vector<float> input = random_values(g.input_elements(), 7);
  std::vector<float> output(static_cast<size_t>(layer.output_elements()));
  TimingResult t;
  double flop_factor = 1.0;
  std::string kernel = layer.kernel_name();
  if (pass == Pass::kForward) {
    t = time_repeated([&] { layer.forward(input.data(), output.data()); }, min_seconds, 5);
  } else {
    layer.forward(input.data(), output.data());
    const std::vector<float> dy = random_values(layer.output_elements(), 11);
    std::vector<float> dx(input.size()), dk(layer.kernel().size()), db(layer.bias().size());
    float* db_or_null = db.empty() ? nullptr : db.data();
    kernel = layer.backward_kernel_names();
    if (pass == Pass::kBackward) {
      flop_factor = 2.0;
      t = time_repeated([&] { layer.backward(input.data(), output.data(), dy.data(), dx.data(), dk.data(), db_or_null); },
                        min_seconds, 5);
    } else {
      flop_factor = 3.0;
      kernel = layer.kernel_name() + " + " + kernel;
      t = time_repeated(
          [&] {
            layer.forward(input.data(), output.data());
            layer.backward(input.data(), output.data(), dy.data(), dx.data(), dk.data(), db_or_null);
          },
          min_seconds, 5);
    }
  }
  const double gflops = flop_factor * g.flops() / (t.median_ms * 1e-3) / 1e9;
  const Layer& ex = layer;
  if (json) {
    nlohmann::json line = {{"name", name},         {"backend", to_string(ex.backend())},
                           {"isa", ex.isa()},      {"kernel", kernel},
                           {"threads", layer.threads()}, {"ms", t.median_ms},
                           {"min_ms", t.min_ms},   {"gflops", gflops},
                           {"useful_gflops", flop_factor * g.useful_flops() / (t.median_ms * 1e-3) / 1e9},
                           {"repetitions", t.repetitions}};
    if (pass != Pass::kForward) {
      line["pass"] = pass == Pass::kBackward ? "backward" : "forward+backward";
      const double peak = fma_peak_gflops(layer.threads());
      line["peak_gflops"] = peak;
      if (peak > 0) line["percent_of_peak"] = 100.0 * gflops / peak;
    }
    std::printf("%s\n", line.dump().c_str());
  } else {
    std::printf("%-18s %-9s %-6s threads=%-2d %9.3f ms  %8.2f GFLOP/s  (%d runs, kernel %s)\n", name.c_str(),
                to_string(ex.backend()).c_str(), ex.isa().c_str(), layer.threads(), t.median_ms, gflops,
                t.repetitions, kernel.c_str());
  }
  std::fflush(stdout);
}

}  // namespace

int bench_command(const std::vector<std::string>& argv) {
  const Args args(argv,
                  {"--layer", "--input-shape", "--suite", "--backend", "--isa", "--threads", "--keras-flavor",
                   "--min-time", "--pass", "--dtype"},
                  {"--json"});
  args.reject_positional();
  const LayerOptions options = layer_options(args);
  double min_seconds = 0.5;
  if (auto text = args.get("--min-time")) {
    try {
      min_seconds = std::stod(*text);
    } catch (const std::exception&) {
      throw Error("--min-time", "expected seconds, got '" + *text + "'");
    }
    if (!(min_seconds >= 0 && min_seconds < 3600)) throw Error("--min-time", "expected 0..3600 seconds");
  }
  const bool json = args.has("--json");
  const Pass pass = args.get("--pass") ? parse_pass(*args.get("--pass")) : Pass::kForward;
  if (auto suite_path = args.get("--suite")) {
    if (args.get("--layer")) throw Error("--suite", "give either --suite or --layer, not both");
    std::error_code ec;
    if (std::filesystem::is_directory(*suite_path, ec)) throw Error(*suite_path, "is a directory, not a file");
    const std::vector<SuiteLayer> suite = load_suite(*suite_path);
    for (size_t i = 0; i < suite.size(); ++i) {
      std::fprintf(stderr, "[%zu/%zu] %s\n", i + 1, suite.size(), suite[i].name.c_str());
      bench_one(suite[i].name, suite[i].config, suite[i].input_shape, options, min_seconds, json, pass);
    }
    return 0;
  }
  std::vector<std::string> warnings;
  const LayerConfig config = load_layer_config(args.require("--layer"), flavor_option(args), &warnings);
  print_warnings(warnings);
  const std::vector<int64_t> input_shape = parse_shape(args.require("--input-shape"), "--input-shape");
  bench_one(config.name.empty() ? "layer" : config.name, config, input_shape, options, min_seconds, json, pass);
  return 0;
}

}  // namespace tconv3d::cli
