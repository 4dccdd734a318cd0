#include <algorithm>
#include <sstream>

#include "tconv3d/config.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {
namespace {

std::string tuple_text(const Triple& t) {
  std::ostringstream out;
  out << "(" << t[0] << ", " << t[1] << ", " << t[2] << ")";
  return out.str();
}

// Keras 3's standardize_tuple and tf.keras 2.x's normalize_tuple word the same
// check differently; `minimum` is 1 (value > 0) or 0 (value >= 0, allow_zero).
void require_at_least(const Triple& values, const char* argument, int64_t minimum, Flavor flavor) {
  std::vector<int64_t> bad;
  for (int64_t v : values)
    if (v < minimum) bad.push_back(v);
  if (bad.empty()) return;
  std::ostringstream out;
  const char* requirement = minimum > 0 ? "> 0" : ">= 0";
  if (flavor == Flavor::kKeras3) {
    out << "The `" << argument << "` argument must be a tuple of 3 integers. Received " << argument
        << "=" << tuple_text(values) << ", including values {";
    for (size_t i = 0; i < bad.size(); ++i) out << (i ? ", " : "") << bad[i];
    out << "} that do not satisfy `value " << requirement << "`";
  } else {
    out << "The `" << argument << "` argument must be a tuple of 3 integers. Received: "
        << tuple_text(values) << " including {";
    for (size_t i = 0; i < bad.size(); ++i) out << (i ? ", " : "") << bad[i];
    out << "} that does not satisfy the requirement `" << requirement << "`.";
  }
  throw Error(argument, out.str());
}

}  // namespace

void validate(const LayerConfig& c) {
  if (c.filters <= 0) {
    throw Error("filters",
                "Invalid value for argument `filters`. Expected a strictly positive value. "
                "Received filters=" + std::to_string(c.filters) + ".");
  }
  require_at_least(c.kernel_size, "kernel_size", 1, c.flavor);
  if (c.flavor == Flavor::kTfKeras2) {
    // normalize_tuple(allow_zero=True) rejects negatives first; _validate_init then rejects 0.
    require_at_least(c.strides, "strides", 0, c.flavor);
    if (std::find(c.strides.begin(), c.strides.end(), 0) != c.strides.end())
      throw Error("strides", "The argument `strides` cannot contains 0(s). Received: " + tuple_text(c.strides));
  }
  require_at_least(c.strides, "strides", 1, c.flavor);
  require_at_least(c.dilation_rate, "dilation_rate", 1, c.flavor);
  if (c.output_padding) {
    const Triple& op = *c.output_padding;
    require_at_least(op, "output_padding", 0, c.flavor);
    for (int i = 0; i < 3; ++i) {
      if (op[i] >= c.strides[i]) {
        if (c.flavor == Flavor::kKeras3) {
          throw Error("output_padding",
                      "`output_padding` must be strictly less than `strides` for all dimensions. "
                      "At dimension " + std::to_string(i) + ", `output_padding` is " +
                          std::to_string(op[i]) + " but `strides` is " + std::to_string(c.strides[i]) +
                          ". Received: output_padding=" + tuple_text(op) + ", strides=" +
                          tuple_text(c.strides));
        }
        throw Error("output_padding", "Strides must be greater than output padding. Received strides=" +
                                          tuple_text(c.strides) + ", output_padding=" + tuple_text(op) + ".");
      }
    }
  }
  const int64_t max_stride = *std::max_element(c.strides.begin(), c.strides.end());
  const int64_t max_dilation = *std::max_element(c.dilation_rate.begin(), c.dilation_rate.end());
  if (max_stride > 1 && max_dilation > 1) {
    throw Error("dilation_rate", "`strides > 1` not supported in conjunction with `dilation_rate > 1`. "
                                 "Received: strides=" + tuple_text(c.strides) +
                                     " and dilation_rate=" + tuple_text(c.dilation_rate));
  }
  if (c.activation.kind == ActivationKind::kHardSigmoidTfKeras2 && c.flavor == Flavor::kKeras3) {
    throw Error("activation", "internal: tf.keras 2.x hard_sigmoid in a Keras 3 config");
  }
}

std::string to_string(Padding p) { return p == Padding::kValid ? "valid" : "same"; }
std::string to_string(DataFormat f) {
  return f == DataFormat::kChannelsLast ? "channels_last" : "channels_first";
}
std::string to_string(Flavor f) { return f == Flavor::kKeras3 ? "keras3" : "tf_keras2"; }

Flavor parse_flavor(const std::string& text) {
  if (text == "keras3") return Flavor::kKeras3;
  if (text == "tf_keras2") return Flavor::kTfKeras2;
  throw Error("keras_flavor", "expected keras3 or tf_keras2, got '" + text + "'");
}

}  // namespace tconv3d
