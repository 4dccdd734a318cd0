// tconv3d demo: the main job in one command. Specializes every layer of a
// bundled example, checks each against the reference kernel, and prints the
// specialized speed against the generic kernel's.
#include <cmath>
#include <cstdio>
#include <random>

#include "runtime/suite.hpp"
#include "runtime/timing.hpp"
#include "tconv3d/error.hpp"
#include "tools/commands.hpp"

namespace tconv3d::cli {
namespace {

std::vector<float> random_values(int64_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> values(static_cast<size_t>(count));
  for (auto& v : values) v = dist(rng);
  return values;
}

double scaled_max_error(const std::vector<float>& actual, const std::vector<float>& expected) {
  double scale = 1.0, error = 0.0;
  for (size_t i = 0; i < expected.size(); ++i) {
    scale = std::max(scale, double(std::fabs(expected[i])));
    const double diff = std::fabs(double(actual[i]) - double(expected[i]));
    if (std::isnan(diff)) return INFINITY;
    error = std::max(error, diff);
  }
  return error / scale;
}

}  // namespace

int demo_command(const std::vector<std::string>& argv) {
  const Args args(argv, {"--threads", "--min-time"}, {});
  const std::string path =
      args.positional().empty() ? std::string(TCONV3D_SOURCE_DIR "/examples/unet3d_decoder.json") : args.positional()[0];
  const int threads = args.get_int("--threads", 0);
  const double min_seconds = 0.3;
  const std::vector<SuiteLayer> layers = load_suite(path);
  std::printf("tconv3d demo: %zu layers from %s\n", layers.size(), path.c_str());
  std::printf("%-14s %-9s %-7s %-10s %10s %10s %10s %9s\n", "layer", "backend", "isa", "max_err", "spec ms",
              "generic ms", "spec GF/s", "speed-up");
  bool all_ok = true;
  for (const SuiteLayer& entry : layers) {
    LayerOptions spec_options, generic_options, reference_options;
    spec_options.threads = generic_options.threads = threads;
    generic_options.backend = Backend::kGeneric;
    reference_options.backend = Backend::kReference;
    const Layer specialized = Layer::create_initialized(entry.config, entry.input_shape, 1, spec_options);
    const Layer generic = Layer::create_initialized(entry.config, entry.input_shape, 1, generic_options);
    const Layer reference = Layer::create_initialized(entry.config, entry.input_shape, 1, reference_options);
    const std::vector<float> input = random_values(specialized.geometry().input_elements(), 7);
    std::vector<float> expected(static_cast<size_t>(reference.output_elements()));
    std::vector<float> actual(expected.size()), generic_out(expected.size());
    reference.forward(input.data(), expected.data());
    specialized.forward(input.data(), actual.data());
    generic.forward(input.data(), generic_out.data());
    const double error = std::max(scaled_max_error(actual, expected), scaled_max_error(generic_out, expected));
    const bool ok = error <= 1e-5;
    all_ok = all_ok && ok;
    // Interleave the two timings so machine noise hits both alike.
    TimingResult spec_t{}, generic_t{};
    for (int round = 0; round < 3; ++round) {
      const TimingResult s = time_repeated([&] { specialized.forward(input.data(), actual.data()); }, min_seconds / 3, 3);
      const TimingResult g = time_repeated([&] { generic.forward(input.data(), generic_out.data()); }, min_seconds / 3, 3);
      if (round == 0 || s.median_ms < spec_t.median_ms) spec_t = s;
      if (round == 0 || g.median_ms < generic_t.median_ms) generic_t = g;
    }
    const double gflops = specialized.geometry().flops() / (spec_t.median_ms * 1e-3) / 1e9;
    std::printf("%-14s %-9s %-7s %-10.2e %10.3f %10.3f %10.1f %8.2fx %s\n", entry.name.c_str(),
                to_string(specialized.executor().backend()).c_str(), specialized.executor().isa().c_str(), error,
                spec_t.median_ms, generic_t.median_ms, gflops, generic_t.median_ms / spec_t.median_ms,
                ok ? "ok" : "MISMATCH");
    std::fflush(stdout);
  }
  std::printf(all_ok ? "all layers match the reference (max error <= 1e-5 of the output scale)\n"
                     : "SOME LAYERS DO NOT MATCH THE REFERENCE\n");
  return all_ok ? 0 : 1;
}

}  // namespace tconv3d::cli
