// tconv3d model inspect | run | bench: the transposed convolutions of a Keras
// or ONNX model file, specialized at load.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "tconv3d/error.hpp"
#include "tools/commands.hpp"

#ifdef TCONV3D_HAVE_MODELS
#include <nlohmann/json.hpp>

#include "tconv3d/geometry.hpp"
#include "tconv3d/model.hpp"
#include "tools/support/npy.hpp"
#include "tools/support/timing.hpp"
#endif

namespace tconv3d::cli {

#ifdef TCONV3D_HAVE_MODELS
namespace {

constexpr const char* kModelUsage =
    "usage: tconv3d model inspect FILE [--json]\n"
    "       tconv3d model run FILE --layer NAME --input X.npy --output Y.npy\n"
    "       tconv3d model bench FILE [--layer NAME] [--min-time SECONDS] [--json]\n"
    "common: [--config MODEL.json] (for a bare .weights.h5) [--keras-flavor keras3|tf_keras2]\n"
    "        [--input-shape NAME=N,D,H,W,C[;NAME=...]] [--backend ...] [--isa ...] [--threads N]\n";

const std::set<std::string> kModelFlags = {"--config", "--keras-flavor", "--input-shape", "--backend",
                                           "--isa", "--threads"};

std::set<std::string> with(std::set<std::string> base, std::initializer_list<std::string> more) {
  base.insert(more);
  return base;
}

ModelOptions model_options(const Args& args) {
  ModelOptions options;
  options.layer = layer_options(args);
  options.flavor = flavor_option(args);
  if (auto config = args.get("--config")) options.config_path = *config;
  if (auto shapes = args.get("--input-shape")) {
    size_t start = 0;
    while (start <= shapes->size()) {
      size_t end = shapes->find(';', start);
      if (end == std::string::npos) end = shapes->size();
      const std::string item = shapes->substr(start, end - start);
      const size_t eq = item.rfind('=');
      if (eq == std::string::npos || eq == 0)
        throw Error("--input-shape", "expected NAME=N,D,H,W,C, got '" + item + "'");
      options.input_shapes[item.substr(0, eq)] = parse_shape(item.substr(eq + 1), "--input-shape");
      start = end + 1;
    }
  }
  return options;
}

std::string file_argument(const Args& args) {
  if (args.positional().size() != 1)
    throw Error("FILE", std::string("expected exactly one model file\n") + kModelUsage);
  return args.positional()[0];
}

std::string shape_text(const std::vector<int64_t>& shape) {
  if (shape.empty()) return "?";
  std::string out = "(";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? "," : "") + (shape[i] < 0 ? std::string("?") : std::to_string(shape[i]));
  return out + ")";
}

std::string bytes_text(int64_t bytes) {
  char buffer[32];
  if (bytes < 10 * 1024) std::snprintf(buffer, sizeof buffer, "%lld B", static_cast<long long>(bytes));
  else if (bytes < 10 * 1024 * 1024) std::snprintf(buffer, sizeof buffer, "%.1f KiB", bytes / 1024.0);
  else std::snprintf(buffer, sizeof buffer, "%.1f MiB", bytes / 1048576.0);
  return buffer;
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size(); ++c) {
      if (width.size() <= c) width.push_back(0);
      width[c] = std::max(width[c], row[c].size());
    }
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      std::string cell = row[c];
      if (c + 1 < row.size()) cell.resize(width[c] + 2, ' ');
      line += cell;
    }
    std::printf("%s\n", line.c_str());
  }
}

// The shape a layer is benchmarked at: its load-time specialization's.
std::vector<int64_t> concrete_shape(const ModelLayer& layer) {
  if (auto s = layer.specialization()) return s->input_shape;
  return {};
}

int inspect(const Args& args) {
  const std::string path = file_argument(args);
  const Model model = Model::load(path, model_options(args));
  print_warnings(model.warnings());
  if (args.has("--json")) {
    nlohmann::json out = {{"file", path}, {"format", model.format()}, {"load_ms", model.load_ms()}};
    out["layers"] = nlohmann::json::array();
    for (const auto& layer : model.layers()) {
      const auto& info = layer.info();
      nlohmann::json row = {{"name", info.name},       {"op", info.op},
                            {"config", info.summary},  {"input_shape", info.input_shape},
                            {"weight_bytes", info.weight_bytes}};
      if (auto s = layer.specialization()) {
        row["specialized_shape"] = s->input_shape;
        row["output_shape"] = s->output_shape;
        row["backend"] = s->backend;
        row["isa"] = s->isa;
        row["kernel"] = s->kernel_name;
        row["compile_ms"] = s->compile_ms;
      }
      out["layers"].push_back(row);
    }
    std::printf("%s\n", out.dump(1).c_str());
    return 0;
  }
  std::printf("%s: %s, %zu transposed convolution%s, loaded and specialized in %.1f ms\n", path.c_str(),
              model.format().c_str(), model.layers().size(), model.layers().size() == 1 ? "" : "s", model.load_ms());
  std::vector<std::vector<std::string>> rows = {
      {"layer", "op", "config", "input -> output", "backend/isa", "compile ms", "weights"}};
  for (const auto& layer : model.layers()) {
    const auto& info = layer.info();
    const auto s = layer.specialization();
    char ms[32] = "-";
    if (s) std::snprintf(ms, sizeof ms, "%.2f", s->compile_ms);
    // A free batch shows as '?': the layer runs any batch with the kernel made for 1.
    std::vector<int64_t> out_shape;
    if (s) {
      out_shape = s->output_shape;
      if (!info.input_shape.empty() && info.input_shape[0] < 0) out_shape[0] = -1;
    }
    rows.push_back({info.name, info.op, info.summary, shape_text(info.input_shape) + " -> " + shape_text(out_shape),
                    s ? s->backend + "/" + s->isa : "on first call", ms, bytes_text(info.weight_bytes)});
  }
  print_table(rows);
  for (const auto& layer : model.layers())
    for (const auto& w : layer.info().warnings) std::fprintf(stderr, "tconv3d: warning: %s: %s\n", layer.name().c_str(), w.c_str());
  return 0;
}

int run(const Args& args) {
  const std::string path = file_argument(args);
  ModelOptions options = model_options(args);
  options.specialize_at_load = false;  // only the requested layer is compiled, for its input
  const Model model = Model::load(path, options);
  print_warnings(model.warnings());
  const ModelLayer& layer = model.layer(args.require("--layer"));
  const std::string output_path = args.require("--output");
  const NpyArray input = read_npy_for_flag("--input", args.require("--input"));
  std::vector<float> output;
  std::vector<int64_t> output_shape;
  layer.forward(input.data.data(), input.shape, output, output_shape);
  write_npy(output_path, output_shape, output.data());
  return 0;
}

int bench(const Args& args) {
  const std::string path = file_argument(args);
  const double min_time = args.get("--min-time") ? std::stod(*args.get("--min-time")) : 0.3;
  const Model model = Model::load(path, model_options(args));
  print_warnings(model.warnings());
  const auto only = args.get("--layer");
  if (only) model.layer(*only);  // a clear error for a name that is not there
  std::vector<std::vector<std::string>> rows = {
      {"layer", "shape", "specialized", "ms", "GFLOP/s", "generic ms", "GFLOP/s", "speedup"}};
  nlohmann::json out = nlohmann::json::array();
  for (const auto& ml : model.layers()) {
    if (only && ml.name() != *only) continue;
    const std::vector<int64_t> shape = concrete_shape(ml);
    if (shape.empty()) {
      rows.push_back({ml.name(), "?", "skipped: unknown input shape (give --input-shape)", "", "", "", "", ""});
      continue;
    }
    const Layer& fast = ml.layer_for(shape);
    LayerOptions generic_options;
    generic_options.backend = Backend::kGeneric;
    generic_options.threads = fast.threads();
    const Layer generic = ml.build(shape, generic_options);
    std::vector<float> input(static_cast<size_t>(fast.geometry().input_elements()), 0.5f);
    std::vector<float> output(static_cast<size_t>(fast.output_elements()));
    const TimingResult a = time_repeated([&] { fast.forward(input.data(), output.data()); }, min_time, 5);
    const TimingResult b = time_repeated([&] { generic.forward(input.data(), output.data()); }, min_time, 5);
    const double gflop = fast.geometry().flops() * 1e-9;
    char buf[5][32];
    std::snprintf(buf[0], 32, "%.3f", a.median_ms);
    std::snprintf(buf[1], 32, "%.1f", gflop / (a.median_ms * 1e-3));
    std::snprintf(buf[2], 32, "%.3f", b.median_ms);
    std::snprintf(buf[3], 32, "%.1f", gflop / (b.median_ms * 1e-3));
    std::snprintf(buf[4], 32, "%.2fx", b.median_ms / a.median_ms);
    const std::string chosen = to_string(fast.backend()) + "/" + fast.isa();
    rows.push_back({ml.name(), shape_text(shape), chosen, buf[0], buf[1], buf[2], buf[3], buf[4]});
    out.push_back({{"layer", ml.name()}, {"shape", shape}, {"backend", chosen}, {"median_ms", a.median_ms},
                   {"generic_median_ms", b.median_ms}, {"gflop", gflop}});
  }
  if (args.has("--json")) std::printf("%s\n", out.dump(1).c_str());
  else print_table(rows);
  return 0;
}

}  // namespace

int model_command(const std::vector<std::string>& argv) {
  if (argv.empty() || argv[0] == "--help" || argv[0] == "-h") {
    std::fputs(kModelUsage, argv.empty() ? stderr : stdout);
    return argv.empty() ? 2 : 0;
  }
  const std::string sub = argv[0];
  const std::vector<std::string> rest(argv.begin() + 1, argv.end());
  if (sub == "inspect") return inspect(Args(rest, kModelFlags, {"--json"}));
  if (sub == "run") return run(Args(rest, with(kModelFlags, {"--layer", "--input", "--output"}), {}));
  if (sub == "bench") return bench(Args(rest, with(kModelFlags, {"--layer", "--min-time"}), {"--json"}));
  throw Error("model", "unknown subcommand '" + sub + "': expected inspect, run or bench\n" + kModelUsage);
}

#else

int model_command(const std::vector<std::string>&) {
  throw Error("model", "this build of tconv3d has no model loading: rebuild with libzip-dev "
                       "installed (CMake option TCONV3D_WITH_MODELS)");
}

#endif

}  // namespace tconv3d::cli
