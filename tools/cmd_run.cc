// tconv3d run | shape | constrain
#include <cstdio>

#include <nlohmann/json.hpp>

#include "core/weights.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/geometry.hpp"
#include "tools/commands.hpp"
#include "tools/support/npy.hpp"

namespace tconv3d::cli {
namespace {

const std::set<std::string> kLayerFlags = {"--layer", "--keras-flavor", "--backend", "--isa", "--threads"};

std::set<std::string> with(std::set<std::string> base, std::initializer_list<std::string> more) {
  base.insert(more);
  return base;
}

}  // namespace

int run_command(const std::vector<std::string>& argv) {
  const Args args(argv, with(kLayerFlags, {"--input", "--kernel", "--bias", "--output", "--seed", "--dtype"}),
                  {"--losses"});
  args.reject_positional();
  std::vector<std::string> warnings;
  const LayerConfig config = load_layer_config(args.require("--layer"), flavor_option(args), &warnings);
  const std::string output_path = args.require("--output");
  const LayerOptions options = layer_options(args);
  // bf16 (--dtype bf16): input and output .npy hold bf16 raw bits (npy.hpp);
  // kernel and bias stay float32, the Keras mixed-precision variables.
  const bool bf16 = options.dtype == DataType::kBfloat16;
  if (bf16 && args.has("--losses")) throw Error("--losses", "not available with --dtype bf16");
  NpyBf16Array input_bf16;
  NpyArray input;
  if (bf16) {
    try {
      input_bf16 = read_npy_bf16(args.require("--input"));
    } catch (const Error& e) {
      throw Error("--input", e.what());
    }
    input.shape = input_bf16.shape;
  } else {
    input = read_npy_for_flag("--input", args.require("--input"));
  }
  if (args.get("--bias") && !args.get("--kernel")) throw Error("--bias", "given without --kernel");
  if (args.get("--seed") && args.get("--kernel")) throw Error("--seed", "weights come from --kernel; --seed is for initializers");

  std::optional<Layer> layer;
  if (auto kernel_path = args.get("--kernel")) {
    const NpyArray kernel = read_npy_for_flag("--kernel", *kernel_path);
    NpyArray bias;
    if (auto bias_path = args.get("--bias")) bias = read_npy_for_flag("--bias", *bias_path);
    const bool has_bias = args.get("--bias").has_value();
    layer.emplace(Layer::create(config, input.shape, ConstTensor{kernel.data.data(), kernel.shape},
                                has_bias ? ConstTensor{bias.data.data(), bias.shape} : ConstTensor{}, options));
  } else {
    const int seed = args.get_int("--seed", 0);
    layer.emplace(Layer::create_initialized(config, input.shape, static_cast<uint64_t>(seed), options));
  }
  warnings.insert(warnings.end(), layer->warnings().begin(), layer->warnings().end());
  print_warnings(warnings);

  const Shape5 out_shape = layer->output_shape();
  if (bf16) {
    std::vector<uint16_t> output(static_cast<size_t>(layer->output_elements()));
    layer->forward_bf16(input_bf16.data.data(), output.data());
    write_npy_bf16(output_path, std::vector<int64_t>(out_shape.begin(), out_shape.end()), output.data());
    return 0;
  }
  std::vector<float> output(static_cast<size_t>(layer->output_elements()));
  layer->forward(input.data.data(), output.data());
  write_npy(output_path, std::vector<int64_t>(out_shape.begin(), out_shape.end()), output.data());
  if (args.has("--losses")) {
    const Layer::Losses losses = layer->losses(output.data());
    nlohmann::json line = {{"kernel_regularization", losses.kernel},
                           {"bias_regularization", losses.bias},
                           {"activity_regularization", losses.activity}};
    std::printf("%s\n", line.dump().c_str());
  }
  return 0;
}

int shape_command(const std::vector<std::string>& argv) {
  const Args args(argv, {"--layer", "--input-shape", "--keras-flavor"}, {});
  args.reject_positional();
  std::vector<std::string> warnings;
  const LayerConfig config = load_layer_config(args.require("--layer"), flavor_option(args), &warnings);
  const std::vector<int64_t> input_shape = parse_shape(args.require("--input-shape"), "--input-shape");
  const ConvGeometry geometry = resolve_geometry(config, input_shape, &warnings);
  if (config.activation.kind == ActivationKind::kGlu && geometry.output_shape()[4] % 2 != 0) {
    throw Error("activation", "glu needs an even last axis, got " + std::to_string(geometry.output_shape()[4]));
  }
  print_warnings(warnings);
  const Shape5 shape = activated_output_shape(geometry, config.activation);
  std::printf("%lld,%lld,%lld,%lld,%lld\n", (long long)shape[0], (long long)shape[1], (long long)shape[2],
              (long long)shape[3], (long long)shape[4]);
  return 0;
}

int constrain_command(const std::vector<std::string>& argv) {
  const Args args(argv, {"--layer", "--kernel", "--bias", "--output-kernel", "--output-bias", "--keras-flavor"}, {});
  args.reject_positional();
  std::vector<std::string> warnings;
  const LayerConfig config = load_layer_config(args.require("--layer"), flavor_option(args), &warnings);
  print_warnings(warnings);
  NpyArray kernel = read_npy(args.require("--kernel"));
  const std::string out_kernel = args.require("--output-kernel");
  if (kernel.shape.size() != 5 || kernel.shape[0] != config.kernel_size[0] || kernel.shape[1] != config.kernel_size[1] ||
      kernel.shape[2] != config.kernel_size[2] || kernel.shape[3] != config.filters) {
    throw Error("--kernel", "shape " + shape_to_string(kernel.shape) + " does not match the layer: expected (" +
                                std::to_string(config.kernel_size[0]) + ", " + std::to_string(config.kernel_size[1]) +
                                ", " + std::to_string(config.kernel_size[2]) + ", " + std::to_string(config.filters) +
                                ", in_channels)");
  }
  if (args.get("--output-bias") && !args.get("--bias")) throw Error("--output-bias", "given without --bias");
  if (args.get("--bias") && !args.get("--output-bias")) throw Error("--output-bias", "is required with --bias");
  std::optional<NpyArray> bias;
  if (auto path = args.get("--bias")) {
    bias = read_npy(*path);
    if (bias->shape != std::vector<int64_t>{config.filters}) {
      throw Error("--bias", "shape " + shape_to_string(bias->shape) + " does not match the layer: expected (" +
                                std::to_string(config.filters) + ",)");
    }
  }
  if (config.kernel_constraint) apply_constraint(*config.kernel_constraint, kernel.data.data(), kernel.shape);
  if (bias && config.bias_constraint) apply_constraint(*config.bias_constraint, bias->data.data(), bias->shape);
  write_npy(out_kernel, kernel.shape, kernel.data.data());
  if (bias) {
    try {
      write_npy(*args.get("--output-bias"), bias->shape, bias->data.data());
    } catch (const Error&) {
      // Leave no half-done pair: a constrained kernel without its bias.
      std::remove(out_kernel.c_str());
      throw;
    }
  }
  return 0;
}

}  // namespace tconv3d::cli
