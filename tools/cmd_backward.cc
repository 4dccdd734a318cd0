// tconv3d backward: the layer's gradients for an output gradient, from .npy files.
#include <cstdio>
#include <set>

#include "tconv3d/error.hpp"
#include "tconv3d/geometry.hpp"
#include "tools/commands.hpp"
#include "tools/support/npy.hpp"

namespace tconv3d::cli {

namespace {

NpyBf16Array read_bf16_for_flag(const std::string& flag, const std::string& path) {
  try {
    return read_npy_bf16(path);
  } catch (const Error& e) {
    throw Error(flag, e.what());
  }
}

}  // namespace

int backward_command(const std::vector<std::string>& argv) {
  const Args args(argv,
                  {"--layer", "--keras-flavor", "--backend", "--isa", "--threads", "--input", "--kernel", "--bias",
                   "--grad-output", "--grad-input", "--grad-kernel", "--grad-bias", "--dtype"},
                  {});
  args.reject_positional();
  std::vector<std::string> warnings;
  const LayerConfig config = load_layer_config(args.require("--layer"), flavor_option(args), &warnings);
  const std::string dx_path = args.require("--grad-input");
  const std::optional<std::string> dk_path = args.get("--grad-kernel"), db_path = args.get("--grad-bias");
  const LayerOptions options = layer_options(args);
  // bf16 (--dtype bf16): x, dy and dx .npy hold bf16 raw bits (npy.hpp), as
  // for `tconv3d run --dtype bf16`; kernel, bias and their gradients stay
  // float32, the Keras mixed-precision variables.
  const bool bf16 = options.dtype == DataType::kBfloat16;
  NpyArray input, dy;
  NpyBf16Array input_bf16, dy_bf16;
  if (bf16) {
    input_bf16 = read_bf16_for_flag("--input", args.require("--input"));
    dy_bf16 = read_bf16_for_flag("--grad-output", args.require("--grad-output"));
    input.shape = input_bf16.shape;
    dy.shape = dy_bf16.shape;
  } else {
    input = read_npy_for_flag("--input", args.require("--input"));
    dy = read_npy_for_flag("--grad-output", args.require("--grad-output"));
  }
  const NpyArray kernel = read_npy_for_flag("--kernel", args.require("--kernel"));
  NpyArray bias;
  if (auto bias_path = args.get("--bias")) bias = read_npy_for_flag("--bias", *bias_path);
  const bool has_bias = args.get("--bias").has_value();
  if (db_path && !has_bias) throw Error("--grad-bias", "given without --bias: a layer without bias has no bias gradient");

  const Layer layer = Layer::create(config, input.shape, ConstTensor{kernel.data.data(), kernel.shape},
                                    has_bias ? ConstTensor{bias.data.data(), bias.shape} : ConstTensor{}, options);
  warnings.insert(warnings.end(), layer.warnings().begin(), layer.warnings().end());
  print_warnings(warnings);
  const Shape5 out_shape = layer.output_shape();
  const std::vector<int64_t> expected(out_shape.begin(), out_shape.end());
  if (dy.shape != expected) {
    throw Error("--grad-output", "shape " + shape_to_string(dy.shape) + " does not match the layer's output " +
                                     shape_to_string(expected));
  }

  // y as the forward computes it: the activation's derivative reads it.
  const size_t in_count = static_cast<size_t>(layer.geometry().input_elements());
  std::vector<float> dx, dk(kernel.data.size()), db(bias.data.size());
  std::vector<uint16_t> dx_bf16;
  if (bf16) {
    std::vector<uint16_t> y(static_cast<size_t>(layer.output_elements()));
    layer.forward_bf16(input_bf16.data.data(), y.data());
    dx_bf16.resize(in_count);
    layer.backward_bf16(input_bf16.data.data(), y.data(), dy_bf16.data.data(), dx_bf16.data(),
                        dk_path ? dk.data() : nullptr, db_path ? db.data() : nullptr);
  } else {
    std::vector<float> y(static_cast<size_t>(layer.output_elements()));
    layer.forward(input.data.data(), y.data());
    dx.resize(in_count);
    layer.backward(input.data.data(), y.data(), dy.data.data(), dx.data(), dk_path ? dk.data() : nullptr,
                   db_path ? db.data() : nullptr);
  }

  // Leave no partial set of results behind when a write fails.
  std::vector<std::string> written;
  try {
    if (bf16) {
      write_npy_bf16(dx_path, input.shape, dx_bf16.data());
    } else {
      write_npy(dx_path, input.shape, dx.data());
    }
    written.push_back(dx_path);
    if (dk_path) {
      write_npy(*dk_path, kernel.shape, dk.data());
      written.push_back(*dk_path);
    }
    if (db_path) write_npy(*db_path, bias.shape, db.data());
  } catch (const Error&) {
    for (const std::string& path : written) std::remove(path.c_str());
    throw;
  }
  return 0;
}

}  // namespace tconv3d::cli
