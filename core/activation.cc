#include "core/activation.hpp"

#include <algorithm>
#include <map>
#include <vector>

#include "tconv3d/error.hpp"

namespace tconv3d {

bool Activation::is_elementwise() const {
  return kind != ActivationKind::kSoftmax && kind != ActivationKind::kLogSoftmax &&
         kind != ActivationKind::kGlu && kind != ActivationKind::kSparsemax;
}

Activation parse_activation_name(const std::string& name, Flavor flavor) {
  struct Entry {
    ActivationKind kind;
    double alpha;
    const char* canonical;
  };
  // Keras 3 names (keras/src/activations/__init__.py) with their default
  // parameters, then aliases.
  static const std::map<std::string, Entry> kKeras3 = {
      {"linear", {ActivationKind::kLinear, 0, "linear"}},
      {"relu", {ActivationKind::kRelu, 0, "relu"}},
      {"leaky_relu", {ActivationKind::kLeakyRelu, 0.2, "leaky_relu"}},
      {"relu6", {ActivationKind::kRelu6, 0, "relu6"}},
      {"elu", {ActivationKind::kElu, 1.0, "elu"}},
      {"celu", {ActivationKind::kCelu, 1.0, "celu"}},
      {"selu", {ActivationKind::kSelu, 0, "selu"}},
      {"softplus", {ActivationKind::kSoftplus, 0, "softplus"}},
      {"softsign", {ActivationKind::kSoftsign, 0, "softsign"}},
      {"squareplus", {ActivationKind::kSquareplus, 4.0, "squareplus"}},
      {"soft_shrink", {ActivationKind::kSoftShrink, 0.5, "soft_shrink"}},
      {"hard_shrink", {ActivationKind::kHardShrink, 0.5, "hard_shrink"}},
      {"sparse_plus", {ActivationKind::kSparsePlus, 0, "sparse_plus"}},
      {"silu", {ActivationKind::kSilu, 0, "silu"}},
      {"swish", {ActivationKind::kSilu, 0, "silu"}},
      {"hard_silu", {ActivationKind::kHardSilu, 0, "hard_silu"}},
      {"hard_swish", {ActivationKind::kHardSilu, 0, "hard_silu"}},
      {"gelu", {ActivationKind::kGelu, 0, "gelu"}},
      {"glu", {ActivationKind::kGlu, 0, "glu"}},
      {"tanh", {ActivationKind::kTanh, 0, "tanh"}},
      {"tanh_shrink", {ActivationKind::kTanhShrink, 0, "tanh_shrink"}},
      {"hard_tanh", {ActivationKind::kHardTanh, 0, "hard_tanh"}},
      {"sigmoid", {ActivationKind::kSigmoid, 0, "sigmoid"}},
      {"hard_sigmoid", {ActivationKind::kHardSigmoid, 0, "hard_sigmoid"}},
      {"sparse_sigmoid", {ActivationKind::kSparseSigmoid, 0, "sparse_sigmoid"}},
      {"log_sigmoid", {ActivationKind::kLogSigmoid, 0, "log_sigmoid"}},
      {"exponential", {ActivationKind::kExponential, 0, "exponential"}},
      {"mish", {ActivationKind::kMish, 0, "mish"}},
      {"softmax", {ActivationKind::kSoftmax, 0, "softmax"}},
      {"log_softmax", {ActivationKind::kLogSoftmax, 0, "log_softmax"}},
      {"sparsemax", {ActivationKind::kSparsemax, 0, "sparsemax"}},
  };
  // tf.keras 2.x: its own list plus tf.nn aliases and activation-layer class names.
  static const std::map<std::string, std::string> kTfKeras2Names = {
      {"softmax", "softmax"}, {"elu", "elu"}, {"selu", "selu"}, {"softplus", "softplus"},
      {"softsign", "softsign"}, {"swish", "silu"}, {"silu", "silu"}, {"relu", "relu"},
      {"gelu", "gelu"}, {"tanh", "tanh"}, {"sigmoid", "sigmoid"}, {"exponential", "exponential"},
      {"hard_sigmoid", "hard_sigmoid"}, {"linear", "linear"}, {"mish", "mish"},
      {"leaky_relu", "leaky_relu"}, {"log_softmax", "log_softmax"}, {"relu6", "relu6"},
      {"ReLU", "relu"}, {"ELU", "elu"}, {"LeakyReLU", "leaky_relu"}, {"Softmax", "softmax"},
  };
  if (name == "threshold") {
    throw Error("activation",
                "'threshold' needs arguments (threshold, default_value) and cannot be used as a "
                "bare name, as in Keras");
  }
  std::string keras3_name = name;
  if (flavor == Flavor::kTfKeras2) {
    auto it = kTfKeras2Names.find(name);
    if (it == kTfKeras2Names.end()) {
      throw Error("activation", "Could not interpret activation function identifier: " + name +
                                    " (flavor tf_keras2)");
    }
    keras3_name = it->second;
  }
  auto it = kKeras3.find(keras3_name);
  if (it == kKeras3.end()) {
    throw Error("activation", "Could not interpret activation function identifier: " + name);
  }
  Activation act;
  act.kind = it->second.kind;
  act.alpha = it->second.alpha;
  act.name = it->second.canonical;
  if (flavor == Flavor::kTfKeras2) {
    if (act.kind == ActivationKind::kHardSigmoid) act.kind = ActivationKind::kHardSigmoidTfKeras2;
    // tf.nn.leaky_relu's default slope, which tf.keras 2.x's "leaky_relu" alias reaches.
    if (act.kind == ActivationKind::kLeakyRelu) act.alpha = 0.2;
    if (name == "LeakyReLU") act.alpha = 0.3;  // tf.keras 2.x LeakyReLU layer default
  }
  return act;
}

namespace {

void sparsemax_row(const float* in, float* out, int64_t length) {
  // Martins & Astudillo (2016): project onto the simplex. Sort descending,
  // find the support size k, threshold tau, then max(x - tau, 0).
  std::vector<double> sorted(in, in + length);
  std::sort(sorted.begin(), sorted.end(), std::greater<double>());
  double cumulative = 0.0, tau = 0.0;
  for (int64_t k = 1; k <= length; ++k) {
    cumulative += sorted[k - 1];
    if (1.0 + static_cast<double>(k) * sorted[k - 1] > cumulative) {
      tau = (cumulative - 1.0) / static_cast<double>(k);
    }
  }
  for (int64_t i = 0; i < length; ++i) out[i] = static_cast<float>(std::max(in[i] - tau, 0.0));
}

}  // namespace

void apply_last_axis(const Activation& act, const float* in, float* out, int64_t rows,
                     int64_t length) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = in + r * length;
    switch (act.kind) {
      case ActivationKind::kSoftmax:
      case ActivationKind::kLogSoftmax: {
        float* y = out + r * length;
        double max_value = x[0];
        for (int64_t i = 1; i < length; ++i) max_value = std::max<double>(max_value, x[i]);
        double sum = 0.0;
        for (int64_t i = 0; i < length; ++i) sum += std::exp(static_cast<double>(x[i]) - max_value);
        if (act.kind == ActivationKind::kSoftmax) {
          for (int64_t i = 0; i < length; ++i)
            y[i] = static_cast<float>(std::exp(static_cast<double>(x[i]) - max_value) / sum);
        } else {
          const double log_sum = std::log(sum);
          for (int64_t i = 0; i < length; ++i)
            y[i] = static_cast<float>(static_cast<double>(x[i]) - max_value - log_sum);
        }
        break;
      }
      case ActivationKind::kGlu: {
        const int64_t half = length / 2;
        float* y = out + r * half;
        for (int64_t i = 0; i < half; ++i) {
          y[i] = static_cast<float>(static_cast<double>(x[i]) *
                                    detail::sigmoid(static_cast<double>(x[i + half])));
        }
        break;
      }
      case ActivationKind::kSparsemax: sparsemax_row(x, out + r * length, length); break;
      default: {
        float* y = out + r * length;
        for (int64_t i = 0; i < length; ++i) y[i] = apply_elementwise(act, x[i]);
      }
    }
  }
}

}  // namespace tconv3d
