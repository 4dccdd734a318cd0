// The Keras Conv3DTranspose layer configuration, every argument Keras takes.
// Values here are already validated and normalized (tuples expanded, names
// canonical); parse_layer_config() and validate() are the only ways in.
#pragma once

#if __cplusplus < 201703L
#error "tconv3d's C++ API needs C++17 or later (-std=c++17)"
#endif

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tconv3d/error.hpp"
#include "tconv3d/export.h"

namespace tconv3d {

using Triple = std::array<int64_t, 3>;
// A 5-D shape in the layer's own data format: (N, D, H, W, C) or (N, C, D, H, W).
using Shape5 = std::array<int64_t, 5>;

enum class Padding { kValid, kSame };
enum class DataFormat { kChannelsLast, kChannelsFirst };
// Where tf.keras 2.x and Keras 3 differ, the flavor decides (see keras_semantics.md §3.4, §5).
enum class Flavor { kKeras3, kTfKeras2 };

enum class ActivationKind {
  kLinear, kRelu, kLeakyRelu, kRelu6, kElu, kCelu, kSelu, kSoftplus, kSoftsign,
  kSquareplus, kSoftShrink, kHardShrink, kSparsePlus, kSilu, kHardSilu, kGelu,
  kGeluTanh, kTanh, kTanhShrink, kHardTanh, kSigmoid, kHardSigmoid,
  kHardSigmoidTfKeras2, kSparseSigmoid, kLogSigmoid, kExponential, kMish,
  // Activations over the last axis of the output tensor, whatever the data format.
  kSoftmax, kLogSoftmax, kGlu, kSparsemax,
};

struct TCONV3D_API Activation {
  ActivationKind kind = ActivationKind::kLinear;
  // leaky_relu slope, elu/celu alpha, shrink threshold, squareplus b, relu's
  // tf.keras 2.x alpha. Meaning depends on kind; defaults are Keras's.
  double alpha = 0.0;
  // tf.keras 2.x relu(max_value, threshold); unused elsewhere.
  std::optional<double> max_value;
  double threshold = 0.0;
  std::string name = "linear";  // canonical Keras name, for printing

  // Elementwise activations can be fused into any kernel's store.
  bool is_elementwise() const;
};

struct Initializer {
  // Canonical Keras 3 class name: Zeros, Ones, Constant, RandomNormal,
  // RandomUniform, TruncatedNormal, VarianceScaling, GlorotUniform, GlorotNormal,
  // HeUniform, HeNormal, LecunUniform, LecunNormal, Orthogonal.
  std::string class_name = "GlorotUniform";
  double value = 0.0;                     // Constant
  double mean = 0.0, stddev = 0.05;       // RandomNormal, TruncatedNormal
  double minval = -0.05, maxval = 0.05;   // RandomUniform
  double scale = 1.0;                     // VarianceScaling
  std::string mode = "fan_in";            // VarianceScaling: fan_in|fan_out|fan_avg
  std::string distribution = "truncated_normal";  // truncated_normal|untruncated_normal|uniform
  double gain = 1.0;                      // Orthogonal
  std::optional<int64_t> seed;
};

inline Initializer zeros_initializer() {
  Initializer init;
  init.class_name = "Zeros";
  return init;
}

struct Regularizer {
  // L1, L2, L1L2 all reduce to l1*sum|w| + l2*sum(w^2).
  std::string class_name;  // "L1", "L2", "L1L2"
  double l1 = 0.0;
  double l2 = 0.0;
};

struct Constraint {
  std::string class_name;  // MaxNorm, MinMaxNorm, NonNeg, UnitNorm
  double max_value = 2.0;
  double min_value = 0.0;
  double rate = 1.0;
  std::vector<int64_t> axis = {0};
};

struct LayerConfig {
  std::string name;  // optional; Keras's layer name when read from a model
  int64_t filters = 0;
  Triple kernel_size = {0, 0, 0};
  Triple strides = {1, 1, 1};
  Padding padding = Padding::kValid;
  std::optional<Triple> output_padding;
  DataFormat data_format = DataFormat::kChannelsLast;
  Triple dilation_rate = {1, 1, 1};
  Activation activation;
  bool use_bias = true;
  Initializer kernel_initializer;  // glorot_uniform
  Initializer bias_initializer = zeros_initializer();
  std::optional<Regularizer> kernel_regularizer, bias_regularizer, activity_regularizer;
  std::optional<Constraint> kernel_constraint, bias_constraint;
  Flavor flavor = Flavor::kKeras3;
};

// Throws tconv3d::Error naming the argument for every value Keras rejects
// (in the config's flavor). parse_layer_config() already calls it.
TCONV3D_API void validate(const LayerConfig& config);

// Parses Keras's JSON: a get_config() dict, or {"class_name": "Conv3DTranspose",
// "config": {...}} as in a model file. Keras 2 and Keras 3 spellings.
// `flavor` forces a flavor; without it a config in the tf.keras 2.x dialect
// (`groups` present, `dilation_rate` absent) gets kTfKeras2, others kKeras3,
// and the choice is reported in `warnings`.
TCONV3D_API LayerConfig parse_layer_config(const std::string& json_text, std::optional<Flavor> flavor = {},
                                           std::vector<std::string>* warnings = nullptr);

TCONV3D_API std::string to_string(Padding);
TCONV3D_API std::string to_string(DataFormat);
TCONV3D_API std::string to_string(Flavor);
TCONV3D_API Flavor parse_flavor(const std::string& text);  // "keras3" | "tf_keras2"

}  // namespace tconv3d
