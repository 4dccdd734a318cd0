// tconv3d bench: times a layer (or a suite of layers) on random data.
#include <cstdio>
#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "tconv3d/error.hpp"
#include "tools/commands.hpp"
#include "tools/support/suite.hpp"
#include "tools/support/timing.hpp"

namespace tconv3d::cli {
namespace {

void bench_one(const std::string& name, const LayerConfig& config, const std::vector<int64_t>& input_shape,
               const LayerOptions& options, double min_seconds, bool json) {
  std::vector<std::string> warnings;
  const Layer layer = Layer::create_initialized(config, input_shape, 1, options);
  print_warnings(layer.warnings());
  const ConvGeometry& g = layer.geometry();
  const std::vector<float> input = random_values(g.input_elements(), 7);
  std::vector<float> output(static_cast<size_t>(layer.output_elements()));
  const TimingResult t = time_repeated([&] { layer.forward(input.data(), output.data()); }, min_seconds, 5);
  const double gflops = g.flops() / (t.median_ms * 1e-3) / 1e9;
  const Layer& ex = layer;
  if (json) {
    nlohmann::json line = {{"name", name},         {"backend", to_string(ex.backend())},
                           {"isa", ex.isa()},      {"kernel", ex.kernel_name()},
                           {"threads", layer.threads()}, {"ms", t.median_ms},
                           {"min_ms", t.min_ms},   {"gflops", gflops},
                           {"useful_gflops", g.useful_flops() / (t.median_ms * 1e-3) / 1e9},
                           {"repetitions", t.repetitions}};
    std::printf("%s\n", line.dump().c_str());
  } else {
    std::printf("%-18s %-9s %-6s threads=%-2d %9.3f ms  %8.2f GFLOP/s  (%d runs, kernel %s)\n", name.c_str(),
                to_string(ex.backend()).c_str(), ex.isa().c_str(), layer.threads(), t.median_ms, gflops,
                t.repetitions, ex.kernel_name().c_str());
  }
  std::fflush(stdout);
}

}  // namespace

int bench_command(const std::vector<std::string>& argv) {
  const Args args(argv,
                  {"--layer", "--input-shape", "--suite", "--backend", "--isa", "--threads", "--keras-flavor",
                   "--min-time"},
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
  if (auto suite_path = args.get("--suite")) {
    if (args.get("--layer")) throw Error("--suite", "give either --suite or --layer, not both");
    std::error_code ec;
    if (std::filesystem::is_directory(*suite_path, ec)) throw Error(*suite_path, "is a directory, not a file");
    const std::vector<SuiteLayer> suite = load_suite(*suite_path);
    for (size_t i = 0; i < suite.size(); ++i) {
      std::fprintf(stderr, "[%zu/%zu] %s\n", i + 1, suite.size(), suite[i].name.c_str());
      bench_one(suite[i].name, suite[i].config, suite[i].input_shape, options, min_seconds, json);
    }
    return 0;
  }
  std::vector<std::string> warnings;
  const LayerConfig config = load_layer_config(args.require("--layer"), flavor_option(args), &warnings);
  print_warnings(warnings);
  const std::vector<int64_t> input_shape = parse_shape(args.require("--input-shape"), "--input-shape");
  bench_one(config.name.empty() ? "layer" : config.name, config, input_shape, options, min_seconds, json);
  return 0;
}

}  // namespace tconv3d::cli
