// Keras activations, exactly as Keras 3 (and, where it differs, tf.keras 2.x)
// define them. One templated scalar definition serves the reference (double)
// and the portable kernels (float).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "tconv3d/config.hpp"

namespace tconv3d {

// Parses a Keras activation name (Keras 3 names, aliases and tf.keras 2.x
// spellings); throws tconv3d::Error for unknown names and for `threshold`.
Activation parse_activation_name(const std::string& name, Flavor flavor);

namespace detail {
template <typename T>
T stable_softplus(T x) {
  // log(1 + exp(x)) without overflow, as jax.nn.softplus (logaddexp(x, 0)).
  return x > T(0) ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}
template <typename T>
T sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}
}  // namespace detail

template <typename T>
T apply_elementwise(const Activation& act, T x) {
  using detail::sigmoid;
  using detail::stable_softplus;
  const T alpha = static_cast<T>(act.alpha);
  switch (act.kind) {
    case ActivationKind::kLinear: return x;
    case ActivationKind::kRelu: {
      // tf.keras 2.x relu(alpha, max_value, threshold); plain relu is alpha=0, threshold=0.
      const T threshold = static_cast<T>(act.threshold);
      // alpha = 0 gives +0 below the threshold, as max(x, 0) does (0 * negative
      // would be -0); NaN is not below it, so it passes through.
      T y = x < threshold ? (alpha == T(0) ? T(0) : alpha * (x - threshold)) : x;
      if (act.max_value) y = std::min(y, static_cast<T>(*act.max_value));
      return y;
    }
    case ActivationKind::kLeakyRelu: return x >= T(0) ? x : alpha * x;
    case ActivationKind::kRelu6: return std::min(std::max(x, T(0)), T(6));
    case ActivationKind::kElu: return x > T(0) ? x : alpha * std::expm1(x);
    case ActivationKind::kCelu:
      return std::max(x, T(0)) + std::min(T(0), alpha * std::expm1(x / alpha));
    case ActivationKind::kSelu: {
      const T selu_alpha = T(1.6732632423543772848170429916717);
      const T selu_scale = T(1.0507009873554804934193349852946);
      return selu_scale * (x > T(0) ? x : selu_alpha * std::expm1(x));
    }
    case ActivationKind::kSoftplus: return stable_softplus(x);
    case ActivationKind::kSoftsign: return x / (T(1) + std::abs(x));
    case ActivationKind::kSquareplus: return (x + std::sqrt(x * x + alpha)) / T(2);
    case ActivationKind::kSoftShrink: return x > alpha ? x - alpha : (x < -alpha ? x + alpha : T(0));
    case ActivationKind::kHardShrink: return std::abs(x) > alpha ? x : T(0);
    case ActivationKind::kSparsePlus:
      return x <= T(-1) ? T(0) : (x >= T(1) ? x : (x + T(1)) * (x + T(1)) / T(4));
    case ActivationKind::kSilu: return x * sigmoid(x);
    case ActivationKind::kHardSilu: return x * std::min(std::max(x + T(3), T(0)), T(6)) / T(6);
    case ActivationKind::kGelu: return T(0.5) * x * (T(1) + std::erf(x / std::sqrt(T(2))));
    case ActivationKind::kGeluTanh: {
      const T c = std::sqrt(T(2) / T(3.14159265358979323846));
      return T(0.5) * x * (T(1) + std::tanh(c * (x + T(0.044715) * x * x * x)));
    }
    case ActivationKind::kTanh: return std::tanh(x);
    case ActivationKind::kTanhShrink: return x - std::tanh(x);
    case ActivationKind::kHardTanh: return std::min(std::max(x, T(-1)), T(1));
    case ActivationKind::kSigmoid: return sigmoid(x);
    case ActivationKind::kHardSigmoid: return std::min(std::max(x + T(3), T(0)), T(6)) / T(6);
    case ActivationKind::kHardSigmoidTfKeras2:
      return std::min(std::max(T(0.2) * x + T(0.5), T(0)), T(1));
    case ActivationKind::kSparseSigmoid:
      return x <= T(-1) ? T(0) : (x >= T(1) ? T(1) : (x + T(1)) / T(2));
    case ActivationKind::kLogSigmoid: return -stable_softplus(-x);
    case ActivationKind::kExponential: return std::exp(x);
    case ActivationKind::kMish: return x * std::tanh(stable_softplus(x));
    case ActivationKind::kSoftmax:
    case ActivationKind::kLogSoftmax:
    case ActivationKind::kGlu:
    case ActivationKind::kSparsemax: break;
  }
  return x;  // axis activations are not elementwise; callers route them elsewhere
}

// Applies an axis activation (softmax, log_softmax, glu, sparsemax) along the
// last axis of a tensor with `rows` rows of `length` values. GLU writes rows
// of length/2 to `out`; the others may work in place (out == in).
void apply_last_axis(const Activation& act, const float* in, float* out, int64_t rows,
                     int64_t length);

}  // namespace tconv3d
