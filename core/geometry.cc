#include "tconv3d/geometry.hpp"

#include <algorithm>
#include <limits>
#include <sstream>

#include "tconv3d/error.hpp"

namespace tconv3d {
namespace {

constexpr const char* kAxisNames[3] = {"depth", "height", "width"};

// Products of sizes must stay far from int64 overflow and from what a float
// buffer can hold: 2^40 elements (4 TiB of float32) is beyond any machine here.
constexpr int64_t kMaxElements = int64_t{1} << 40;

int64_t checked_product(const std::vector<int64_t>& factors, const std::string& what) {
  int64_t product = 1;
  for (int64_t f : factors) {
    if (f <= 0) return 0;
    if (product > kMaxElements / f) {
      throw Error(what, "element count overflows (more than 2^40 elements; sizes " +
                            shape_to_string(factors) + ")");
    }
    product *= f;
  }
  return product;
}

}  // namespace

Shape5 ConvGeometry::input_shape() const {
  if (data_format == DataFormat::kChannelsLast)
    return {batch, axes[0].in, axes[1].in, axes[2].in, in_channels};
  return {batch, in_channels, axes[0].in, axes[1].in, axes[2].in};
}

Shape5 ConvGeometry::output_shape() const {
  if (data_format == DataFormat::kChannelsLast)
    return {batch, axes[0].out, axes[1].out, axes[2].out, out_channels};
  return {batch, out_channels, axes[0].out, axes[1].out, axes[2].out};
}

int64_t ConvGeometry::input_elements() const {
  return batch * in_channels * axes[0].in * axes[1].in * axes[2].in;
}
int64_t ConvGeometry::output_elements() const {
  return batch * out_channels * axes[0].out * axes[1].out * axes[2].out;
}
int64_t ConvGeometry::kernel_elements() const {
  return axes[0].kernel * axes[1].kernel * axes[2].kernel * out_channels * in_channels;
}
double ConvGeometry::flops() const {
  return 2.0 * static_cast<double>(input_elements()) * static_cast<double>(out_channels) *
         static_cast<double>(axes[0].kernel * axes[1].kernel * axes[2].kernel);
}

double ConvGeometry::useful_flops() const {
  double products = 2.0 * double(batch) * double(in_channels) * double(out_channels);
  for (const AxisGeometry& ax : axes) {
    // Per tap a, the inputs i with 0 <= i*stride + a*dilation - crop_begin < out.
    int64_t pairs = 0;
    for (int64_t a = 0; a < ax.kernel; ++a) {
      const int64_t shift = a * ax.dilation - ax.crop_begin;  // o = i*stride + shift
      const int64_t first = shift >= 0 ? 0 : (-shift + ax.stride - 1) / ax.stride;
      const int64_t last = ax.out - 1 - shift < 0 ? -1 : std::min(ax.in - 1, (ax.out - 1 - shift) / ax.stride);
      pairs += std::max<int64_t>(0, last - first + 1);
    }
    products *= double(pairs);
  }
  return products;
}

int64_t keras_output_length(int64_t in, int64_t kernel, int64_t stride, int64_t dilation,
                            Padding padding, std::optional<int64_t> output_padding) {
  const int64_t keff = (kernel - 1) * dilation + 1;
  if (padding == Padding::kValid) {
    const int64_t op = output_padding ? *output_padding : std::max<int64_t>(stride - keff, 0);
    return (in - 1) * stride + keff + op;
  }
  if (!output_padding) return in * stride;
  return (in - 1) * stride + keff % 2 + *output_padding;
}

int64_t keras_crop_begin(int64_t kernel, int64_t stride, int64_t dilation, Padding padding,
                         std::optional<int64_t> output_padding) {
  if (padding == Padding::kValid) return 0;
  const int64_t keff = (kernel - 1) * dilation + 1;
  // Keras 3's JAX left pad L, and P = Keff - 1 - L (keras_semantics.md §3.1, §3.3).
  const int64_t pad_len = output_padding ? keff + keff % 2 - 2 + *output_padding : stride + keff - 2;
  const int64_t left_pad = std::min(pad_len / 2 + pad_len % 2, keff - 1);
  return keff - 1 - left_pad;
}

ConvGeometry resolve_geometry(const LayerConfig& config, const std::vector<int64_t>& input_shape,
                              std::vector<std::string>* warnings) {
  if (input_shape.size() != 5) {
    throw Error("input_shape", "expected a 5-D input (batch + 3 spatial + channels), got rank " +
                                   std::to_string(input_shape.size()) + " shape " +
                                   shape_to_string(input_shape));
  }
  const bool last = config.data_format == DataFormat::kChannelsLast;
  const int64_t channel_axis = last ? 4 : 1;
  for (size_t i = 0; i < 5; ++i) {
    if (input_shape[i] <= 0) {
      throw Error("input_shape", "every dimension must be positive, got " +
                                     shape_to_string(input_shape) + " (dimension " +
                                     std::to_string(i) + " is " + std::to_string(input_shape[i]) +
                                     ")");
    }
  }
  ConvGeometry g;
  g.data_format = config.data_format;
  g.batch = input_shape[0];
  g.in_channels = input_shape[channel_axis];
  g.out_channels = config.filters;
  const bool tf_keras2 = config.flavor == Flavor::kTfKeras2;
  const bool dilated = config.dilation_rate != Triple{1, 1, 1};
  if (tf_keras2 && dilated && warnings) {
    warnings->push_back("dilation_rate " + shape_to_string(std::vector<int64_t>(
                            config.dilation_rate.begin(), config.dilation_rate.end())) +
                        " is ignored by tf.keras 2.x Conv3DTranspose (flavor tf_keras2): "
                        "computing with dilation 1, as tf.keras 2.x does");
  }
  for (int a = 0; a < 3; ++a) {
    AxisGeometry& ax = g.axes[a];
    ax.in = input_shape[last ? 1 + a : 2 + a];
    ax.kernel = config.kernel_size[a];
    ax.stride = config.strides[a];
    ax.dilation = tf_keras2 ? 1 : config.dilation_rate[a];
    std::optional<int64_t> op;
    if (config.output_padding) op = (*config.output_padding)[a];
    if (ax.in > kMaxElements || ax.kernel > kMaxElements || ax.stride > kMaxElements ||
        ax.dilation > kMaxElements) {
      throw Error("input_shape", std::string("sizes along ") + kAxisNames[a] + " are too large");
    }
    ax.out = keras_output_length(ax.in, ax.kernel, ax.stride, ax.dilation, config.padding, op);
    ax.crop_begin = keras_crop_begin(ax.kernel, ax.stride, ax.dilation, config.padding, op);
    if (tf_keras2 && config.padding == Padding::kSame) {
      // TF's Conv3DBackpropInputV2 recomputes ceil(out/stride) and refuses a mismatch.
      const int64_t expected_in = (ax.out + ax.stride - 1) / ax.stride;
      if (expected_in != ax.in) {
        throw Error("output_padding",
                    std::string("tf.keras 2.x (TensorFlow) rejects this layer along ") +
                        kAxisNames[a] + ": padding='same' with output_padding=" +
                        std::to_string(op.value_or(0)) + " and an even kernel " +
                        std::to_string(ax.effective_kernel()) + " gives output " +
                        std::to_string(ax.out) + ", and TensorFlow reports \"Size of "
                        "out_backprop doesn't match computed: actual = " +
                        std::to_string(ax.in) + ", computed = " + std::to_string(expected_in) +
                        "\"");
      }
    }
    if (ax.out <= 0) {
      throw Error("input_shape", std::string("the output would be empty along ") + kAxisNames[a] +
                                     " (size " + std::to_string(ax.out) + ")");
    }
  }
  validate_geometry(g);
  return g;
}

void validate_geometry(const ConvGeometry& g) {
  if (g.batch <= 0) throw Error("input_shape", "batch must be positive, got " + std::to_string(g.batch));
  if (g.in_channels <= 0)
    throw Error("input_shape", "input channels must be positive, got " + std::to_string(g.in_channels));
  if (g.out_channels <= 0)
    throw Error("filters", "must be positive, got " + std::to_string(g.out_channels));
  for (int a = 0; a < 3; ++a) {
    const AxisGeometry& ax = g.axes[a];
    const std::string axis = kAxisNames[a];
    if (ax.in <= 0) throw Error("input_shape", axis + " must be positive, got " + std::to_string(ax.in));
    if (ax.kernel <= 0) throw Error("kernel_size", axis + " must be positive, got " + std::to_string(ax.kernel));
    if (ax.stride <= 0) throw Error("strides", axis + " must be positive, got " + std::to_string(ax.stride));
    if (ax.dilation <= 0)
      throw Error("dilation_rate", axis + " must be positive, got " + std::to_string(ax.dilation));
    if (ax.out <= 0) throw Error("output", axis + " output size must be positive, got " + std::to_string(ax.out));
    if (ax.crop_begin < 0 || ax.crop_begin >= ax.full_out())
      throw Error("padding", axis + " crop " + std::to_string(ax.crop_begin) +
                                 " is outside the full output of " + std::to_string(ax.full_out()));
  }
  const std::vector<int64_t> in_dims = {g.batch, g.in_channels, g.axes[0].in, g.axes[1].in, g.axes[2].in};
  const std::vector<int64_t> out_dims = {g.batch, g.out_channels, g.axes[0].out, g.axes[1].out, g.axes[2].out};
  const std::vector<int64_t> kernel_dims = {g.axes[0].kernel, g.axes[1].kernel, g.axes[2].kernel,
                                            g.out_channels, g.in_channels};
  checked_product(in_dims, "input");
  checked_product(out_dims, "output");
  checked_product(kernel_dims, "kernel");
  // FLOP count stays finite in double; the per-output work bound guards int64 loops.
  checked_product({g.in_channels, g.axes[0].kernel, g.axes[1].kernel, g.axes[2].kernel}, "kernel");
}

Shape5 activated_output_shape(const ConvGeometry& geometry, const Activation& activation) {
  Shape5 shape = geometry.output_shape();
  if (activation.kind == ActivationKind::kGlu) shape[4] /= 2;
  return shape;
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << "(";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ")";
  return out.str();
}

std::string shape_to_string(const Shape5& shape) {
  return shape_to_string(std::vector<int64_t>(shape.begin(), shape.end()));
}

}  // namespace tconv3d
