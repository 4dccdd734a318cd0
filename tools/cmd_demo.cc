// tconv3d demo: the main job in one command. Loads the bundled Keras model
// (or any model file, or a suite-style .json list of layer configs),
// specializes every transposed convolution, checks each against the
// reference kernel, and prints the specialized speed against the generic
// kernel's.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "tconv3d/error.hpp"
#include "tools/commands.hpp"
#include "tools/support/accuracy.hpp"
#include "tools/support/suite.hpp"
#include "tools/support/timing.hpp"

#ifdef TCONV3D_HAVE_MODELS
#include "tconv3d/model.hpp"
#endif

namespace tconv3d::cli {
namespace {

constexpr const char* kDefaultModel = TCONV3D_SOURCE_DIR "/examples/models/unet3d_decoder.keras";
constexpr const char* kDefaultSuite = TCONV3D_SOURCE_DIR "/examples/unet3d_decoder.json";
constexpr double kTolerance = 1e-5;

double min_time_option(const Args& args) {
  const auto text = args.get("--min-time");
  if (!text) return 0.3;
  try {
    size_t used = 0;
    const double seconds = std::stod(*text, &used);
    if (used != text->size() || !(seconds >= 0) || seconds > 3600) throw std::invalid_argument("range");
    return seconds;
  } catch (const std::exception&) {
    throw Error("--min-time", "expected seconds between 0 and 3600, got '" + *text + "'");
  }
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct LayerCheck {
  double error = 0;
  TimingResult specialized, generic;
  bool ok() const { return error <= kTolerance; }
};

// Runs both fast layers and the reference on one random input, then times
// the specialized and the generic layer. min_seconds 0: one quick round.
LayerCheck check_and_time(const Layer& specialized, const Layer& generic, const Layer& reference, uint64_t seed,
                          double min_seconds) {
  const std::vector<float> input = random_values(specialized.geometry().input_elements(), seed);
  std::vector<float> expected(static_cast<size_t>(reference.output_elements()));
  std::vector<float> actual(expected.size()), generic_out(expected.size());
  reference.forward(input.data(), expected.data());
  specialized.forward(input.data(), actual.data());
  generic.forward(input.data(), generic_out.data());
  LayerCheck check;
  check.error = std::max(scaled_max_error(actual.data(), expected.data(), expected.size()),
                         scaled_max_error(generic_out.data(), expected.data(), expected.size()));
  // Interleave the two timings so machine noise hits both alike.
  const int rounds = min_seconds > 0 ? 3 : 1, repetitions = min_seconds > 0 ? 3 : 1;
  for (int round = 0; round < rounds; ++round) {
    const TimingResult s =
        time_repeated([&] { specialized.forward(input.data(), actual.data()); }, min_seconds / rounds, repetitions);
    const TimingResult g =
        time_repeated([&] { generic.forward(input.data(), generic_out.data()); }, min_seconds / rounds, repetitions);
    if (round == 0 || s.median_ms < check.specialized.median_ms) check.specialized = s;
    if (round == 0 || g.median_ms < check.generic.median_ms) check.generic = g;
  }
  return check;
}

double gflops(const Layer& layer, const TimingResult& t) { return layer.geometry().flops() / (t.median_ms * 1e-3) / 1e9; }

void print_summary(bool all_ok) {
  std::printf(all_ok ? "all layers match the reference (max error <= 1e-5 of the output scale)\n"
                     : "SOME LAYERS DO NOT MATCH THE REFERENCE\n");
}

int run_suite(const std::string& path, int threads, double min_seconds) {
  const std::vector<SuiteLayer> layers = load_suite(path);
  std::printf("tconv3d demo: %zu layers from %s (random weights)\n", layers.size(), path.c_str());
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
    const LayerCheck c = check_and_time(specialized, generic, reference, 7, min_seconds);
    all_ok = all_ok && c.ok();
    std::printf("%-14s %-9s %-7s %-10.2e %10.3f %10.3f %10.1f %8.2fx %s\n", entry.name.c_str(),
                to_string(specialized.backend()).c_str(), specialized.isa().c_str(), c.error,
                c.specialized.median_ms, c.generic.median_ms, gflops(specialized, c.specialized),
                c.generic.median_ms / c.specialized.median_ms, c.ok() ? "ok" : "MISMATCH");
    std::fflush(stdout);
  }
  print_summary(all_ok);
  return all_ok ? 0 : 1;
}

#ifdef TCONV3D_HAVE_MODELS
std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "(";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? "," : "") + std::to_string(shape[i]);
  return out + ")";
}

int run_model(const std::string& path, int threads, double min_seconds) {
  ModelOptions options;
  options.layer.threads = threads;
  const Model model = Model::load(path, options);
  for (const std::string& w : model.warnings()) std::fprintf(stderr, "tconv3d: warning: %s\n", w.c_str());
  std::printf("tconv3d demo: %s (%s), %zu transposed convolutions, loaded and specialized in %.1f ms\n",
              path.c_str(), model.format().c_str(), model.layers().size(), model.load_ms());
  if (model.layers().empty()) {
    std::printf("the model holds no transposed convolution: nothing to check\n");
    return 1;
  }
  std::printf("%-6s %-33s %-7s %-7s %10s %-9s %9s %10s %9s %10s %8s\n", "layer", "input -> output", "backend",
              "isa", "compile ms", "max_err", "spec ms", "spec GF/s", "gen ms", "gen GF/s", "speed-up");
  bool all_ok = true;
  uint64_t seed = 7;
  int threads_used = 0;
  for (const ModelLayer& ml : model.layers()) {
    const auto chosen = ml.specialization();
    if (!chosen) {
      // Exit non-zero: an unchecked layer must not read as a matching one.
      std::printf("%-10s not checked: the file gives no input shape\n", ml.name().c_str());
      all_ok = false;
      continue;
    }
    const Layer& specialized = ml.layer_for(chosen->input_shape);
    threads_used = specialized.threads();
    LayerOptions generic_options, reference_options;
    generic_options.backend = Backend::kGeneric;
    generic_options.threads = specialized.threads();
    reference_options.backend = Backend::kReference;
    const Layer generic = ml.build(chosen->input_shape, generic_options);
    const Layer reference = ml.build(chosen->input_shape, reference_options);
    const LayerCheck c = check_and_time(specialized, generic, reference, seed++, min_seconds);
    all_ok = all_ok && c.ok();
    const std::string shapes = shape_text(chosen->input_shape) + "->" + shape_text(chosen->output_shape);
    std::printf("%-6s %-33s %-7s %-7s %10.1f %-9.2e %9.3f %10.1f %9.3f %10.1f %7.2fx %s\n", ml.name().c_str(),
                shapes.c_str(), chosen->backend.c_str(), chosen->isa.c_str(), chosen->compile_ms, c.error,
                c.specialized.median_ms, gflops(specialized, c.specialized), c.generic.median_ms,
                gflops(generic, c.generic), c.generic.median_ms / c.specialized.median_ms, c.ok() ? "ok" : "MISMATCH");
    std::fflush(stdout);
  }
  std::printf("threads: %d; times are medians, the best of interleaved rounds\n", threads_used);
  print_summary(all_ok);
  return all_ok ? 0 : 1;
}
#endif

}  // namespace

int demo_command(const std::vector<std::string>& argv) {
  const Args args(argv, {"--threads", "--min-time"}, {});
  if (args.positional().size() > 1)
    throw Error("MODEL_FILE", "expected at most one model file or .json layer list, got " +
                                  std::to_string(args.positional().size()));
  const int threads = args.get_int("--threads", 0);
  const double min_seconds = min_time_option(args);
  const bool default_file = args.positional().empty();
  const std::string path = default_file ? std::string(kDefaultModel) : args.positional()[0];
  if (!default_file && ends_with(path, ".json")) return run_suite(path, threads, min_seconds);
#ifdef TCONV3D_HAVE_MODELS
  return run_model(path, threads, min_seconds);
#else
  if (!default_file)
    throw Error("MODEL_FILE", "'" + path + "': this build cannot read model files (it was built without HDF5 "
                              "and libzip); give a .json layer list");
  std::printf("this build has no model loading (built without HDF5 and libzip): running the layer list %s "
              "instead of the bundled model\n", kDefaultSuite);
  return run_suite(kDefaultSuite, threads, min_seconds);
#endif
}

}  // namespace tconv3d::cli
