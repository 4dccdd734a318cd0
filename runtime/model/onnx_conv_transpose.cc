#include "runtime/model/onnx_conv_transpose.hpp"

#include <sstream>

#include "tconv3d/error.hpp"

namespace tconv3d::model {
namespace {

constexpr int kInts = 7, kInt = 2, kString = 3;

std::vector<int64_t> ints(const OnnxNode& node, const std::string& name, size_t count) {
  const OnnxAttribute* a = node.attribute(name);
  if (!a) return {};
  if (a->type != kInts && a->type != 0) throw Error(name, "expected a list of integers");
  if (a->ints.size() != count)
    throw Error(name, "expected " + std::to_string(count) + " values for a 3D ConvTranspose, got " +
                          std::to_string(a->ints.size()));
  return a->ints;
}

std::string join(const int64_t* values, size_t count, char separator) {
  std::string out;
  for (size_t i = 0; i < count; ++i) out += (i ? std::string(1, separator) : "") + std::to_string(values[i]);
  return out;
}

}  // namespace

OnnxConvTranspose read_conv_transpose(const OnnxNode& node, const std::vector<int64_t>& w) {
  OnnxConvTranspose op;
  if (w.size() != 5) throw Error("W", "expected a 5-D weight, got rank " + std::to_string(w.size()));
  for (int64_t d : w)
    if (d <= 0) throw Error("W", "weight shape has a non-positive dimension");
  if (const OnnxAttribute* g = node.attribute("group")) {
    if (g->type != kInt && g->type != 0) throw Error("group", "expected an integer");
    if (g->i != 1)
      throw Error("group", "grouped transposed convolution (group=" + std::to_string(g->i) +
                               ") is not supported by tconv3d; only group=1");
  }
  op.in_channels = w[0];
  op.out_channels = w[1];
  for (int a = 0; a < 3; ++a) op.kernel[a] = w[2 + a];
  if (auto k = ints(node, "kernel_shape", 3); !k.empty()) {
    for (int a = 0; a < 3; ++a)
      if (k[a] != op.kernel[a])
        throw Error("kernel_shape", "(" + join(k.data(), 3, ',') + ") disagrees with the weight's spatial shape (" +
                                        join(op.kernel.data(), 3, ',') + ")");
  }
  auto positive = [](const std::vector<int64_t>& values, const std::string& name, std::array<int64_t, 3>& out) {
    for (size_t a = 0; a < values.size(); ++a) {
      if (values[a] <= 0) throw Error(name, "must be positive, got " + std::to_string(values[a]));
      out[a] = values[a];
    }
  };
  positive(ints(node, "strides", 3), "strides", op.strides);
  positive(ints(node, "dilations", 3), "dilations", op.dilations);
  if (auto p = ints(node, "output_padding", 3); !p.empty()) {
    for (int a = 0; a < 3; ++a) {
      if (p[a] < 0) throw Error("output_padding", "must be >= 0, got " + std::to_string(p[a]));
      op.output_padding[a] = p[a];
    }
  }
  if (auto p = ints(node, "pads", 6); !p.empty()) {
    for (int a = 0; a < 6; ++a) {
      if (p[a] < 0) throw Error("pads", "negative pads are not supported, got " + std::to_string(p[a]));
      op.pads[a] = p[a];
    }
  }
  if (const OnnxAttribute* s = node.attribute("output_shape")) {
    if (s->ints.size() != 3 && s->ints.size() != 5)
      throw Error("output_shape", "expected 3 spatial sizes, got " + std::to_string(s->ints.size()) + " values");
    op.output_shape.assign(s->ints.end() - 3, s->ints.end());
    for (int64_t d : op.output_shape)
      if (d <= 0) throw Error("output_shape", "must be positive, got " + std::to_string(d));
  }
  if (const OnnxAttribute* a = node.attribute("auto_pad")) {
    if (a->type != kString && a->type != 0) throw Error("auto_pad", "expected a string");
    if (a->s == "NOTSET") op.auto_pad = OnnxAutoPad::kNotSet;
    else if (a->s == "SAME_UPPER") op.auto_pad = OnnxAutoPad::kSameUpper;
    else if (a->s == "SAME_LOWER") op.auto_pad = OnnxAutoPad::kSameLower;
    else if (a->s == "VALID") op.auto_pad = OnnxAutoPad::kValid;
    else throw Error("auto_pad", "expected NOTSET, SAME_UPPER, SAME_LOWER or VALID, got '" + a->s + "'");
  }
  return op;
}

ConvGeometry onnx_geometry(const OnnxConvTranspose& op, const std::vector<int64_t>& input_shape) {
  if (input_shape.size() != 5)
    throw Error("input_shape", "a 3D ConvTranspose takes 5-D input (N, C, D, H, W), got " + shape_to_string(input_shape));
  if (input_shape[1] != op.in_channels)
    throw Error("input_shape", "has " + std::to_string(input_shape[1]) + " channels but the weight expects " +
                                   std::to_string(op.in_channels));
  ConvGeometry g;
  g.batch = input_shape[0];
  g.in_channels = op.in_channels;
  g.out_channels = op.out_channels;
  g.data_format = DataFormat::kChannelsFirst;
  static const char* kAxis[3] = {"D", "H", "W"};
  for (int a = 0; a < 3; ++a) {
    AxisGeometry& ax = g.axes[a];
    ax.in = input_shape[2 + a];
    ax.kernel = op.kernel[a];
    ax.stride = op.strides[a];
    ax.dilation = op.dilations[a];
    if (ax.in <= 0) throw Error("input_shape", std::string(kAxis[a]) + " must be positive");
    const int64_t grown = ax.full_out() + op.output_padding[a];
    int64_t begin = 0, out = 0;
    const bool explicit_size = !op.output_shape.empty();
    if (explicit_size || op.auto_pad == OnnxAutoPad::kSameUpper || op.auto_pad == OnnxAutoPad::kSameLower) {
      out = explicit_size ? op.output_shape[a] : ax.in * ax.stride;
      const int64_t total = grown - out;
      // The spec: SAME_UPPER puts the odd crop at the end, everything else at the beginning.
      begin = op.auto_pad == OnnxAutoPad::kSameUpper ? total / 2 : total - total / 2;
    } else if (op.auto_pad == OnnxAutoPad::kValid) {
      out = grown;
    } else {
      begin = op.pads[a];
      out = grown - op.pads[a] - op.pads[3 + a];
    }
    if (begin < 0)
      throw Error(explicit_size ? "output_shape" : "auto_pad",
                  std::string("axis ") + kAxis[a] + " would need a negative crop (" + std::to_string(begin) +
                      "): an output larger than the transposed convolution produces is not supported");
    if (out <= 0)
      throw Error("pads", std::string("axis ") + kAxis[a] + " output size would be " + std::to_string(out));
    ax.crop_begin = begin;
    ax.out = out;
  }
  validate_geometry(g);
  return g;
}

std::string OnnxConvTranspose::summary() const {
  std::ostringstream s;
  s << "f=" << out_channels << " k=" << join(kernel.data(), 3, 'x') << " s=" << join(strides.data(), 3, 'x');
  switch (auto_pad) {
    case OnnxAutoPad::kNotSet:
      if (output_shape.empty()) s << " pads=" << join(pads.data(), 3, ',') << "/" << join(pads.data() + 3, 3, ',');
      break;
    case OnnxAutoPad::kSameUpper: s << " SAME_UPPER"; break;
    case OnnxAutoPad::kSameLower: s << " SAME_LOWER"; break;
    case OnnxAutoPad::kValid: s << " VALID"; break;
  }
  if (!output_shape.empty()) s << " out=" << join(output_shape.data(), 3, 'x');
  if (output_padding != std::array<int64_t, 3>{0, 0, 0}) s << " op=" << join(output_padding.data(), 3, 'x');
  if (dilations != std::array<int64_t, 3>{1, 1, 1}) s << " d=" << join(dilations.data(), 3, 'x');
  s << " NCDHW";
  return s.str();
}

}  // namespace tconv3d::model
