// Derivatives of the Keras activations, as JAX's autodiff differentiates
// Keras 3's definitions (keras/src/backend/jax/nn.py and jax.nn), kinks
// included: jax.nn.relu has derivative 0 at 0, leaky_relu 1 at 0, a clip's
// bound (jnp.minimum/maximum) gets half the gradient at a tie, and so on.
// Where tf.keras 2.x has its own function (its hard_sigmoid) the derivative is
// TensorFlow's (tf.clip_by_value passes the gradient at the bounds).
//
// Two ways in, templated like apply_elementwise (double for the reference,
// float for the kernels):
//   activation_derivative(act, z)             act'(z), for every elementwise activation;
//   activation_derivative_from_output(act, y) act'(z) from y = act(z), for those where
//                                             needs_preactivation(act) is false.
// The axis activations (softmax, log_softmax, glu, sparsemax) have their
// vector-Jacobian products over the last axis in activation_gradient_rows().
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/activation.hpp"
#include "core/float_math.hpp"
#include "tconv3d/config.hpp"

namespace tconv3d {

// True when dz cannot be computed from the forward output y alone and the
// caller must recompute the pre-activation z: activations that are not
// invertible from y (silu, gelu, mish, tanh_shrink, hard_silu), those whose
// kinks are ambiguous in y (hard_tanh, sparse_sigmoid, a clipped or
// thresholded relu, tf.keras 2.x's hard_sigmoid), and glu (y has half the
// values). Linear needs neither (its derivative is 1).
bool needs_preactivation(const Activation& act);

// True when the gradient reads y (the forward output): every activation but
// linear that does not need z.
bool needs_output(const Activation& act);

namespace detail {
// JAX's derivative of jnp.maximum(x, bound) / jnp.minimum(x, bound) with
// respect to x: 1 on x's side, 1/2 at a tie, 0 beyond.
template <typename T>
T max_grad(T x, T bound) {
  return x > bound ? T(1) : (x == bound ? T(0.5) : T(0));
}
template <typename T>
T min_grad(T x, T bound) {
  return x < bound ? T(1) : (x == bound ? T(0.5) : T(0));
}
// jax.nn.relu6's custom derivative: 1 strictly inside (0, 6).
template <typename T>
T relu6_grad(T x) {
  return x > T(0) && x < T(6) ? T(1) : T(0);
}

// keras.activations.relu(x, negative_slope, max_value, threshold) as ReLU.static_call
// builds it, differentiated term by term.
template <typename T>
T relu_general_derivative(const Activation& act, T x) {
  const T slope = static_cast<T>(act.alpha);
  const T threshold = static_cast<T>(act.threshold);
  if (act.alpha != 0.0 && !act.max_value && act.threshold == 0.0) return x >= T(0) ? T(1) : slope;  // leaky_relu
  T positive;       // d(positive part)/dx
  T positive_value; // the positive part's value, for the clip's ties
  bool clip = act.max_value.has_value();
  if (act.threshold != 0.0) {
    positive = x > threshold ? T(1) : T(0);  // where(x > threshold, x, 0)
    positive_value = x > threshold ? x : T(0);
  } else if (act.max_value && *act.max_value == 6.0) {
    positive = relu6_grad(x);  // relu6 replaces relu + clip
    positive_value = x;
    clip = false;
  } else {
    positive = x > T(0) ? T(1) : T(0);  // jax.nn.relu: 0 at 0
    positive_value = x > T(0) ? x : T(0);
  }
  if (clip) {
    // jnp.clip(v, 0, max) = minimum(maximum(v, 0), max).
    const T max_value = static_cast<T>(*act.max_value);
    const T lower = positive_value > T(0) ? positive_value : T(0);
    positive *= max_grad(positive_value, T(0)) * min_grad(lower, max_value);
  }
  // - slope * relu(threshold - x): jax.nn.relu's derivative is 0 at 0.
  const T negative = act.alpha != 0.0 && threshold - x > T(0) ? slope : T(0);
  return positive + negative;
}
}  // namespace detail

// The float32 derivatives that need exp, expm1, log1p, tanh or erf, written
// once for a float and for eight floats (float_math::Floats8) on
// float_math's functions: activation_derivative<float> (the general path)
// and the dz loops (runtime/dz_loops.cc) run these very operations, so they
// agree bit for bit. The double reference keeps libm (the templates below).
// Most are the double formula's operations in the same order, in float (so
// with float32's cancellations, as Keras's float32 autodiff has them: silu'
// near its zero at -1.28, gelu_tanh's 1 + tanh far below 0); mish' and gelu'
// are computed in double with one exp and rounded once (MishOp, GeluOp).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // as in float_math.hpp
namespace float_grad {
using float_math::detail::pick;
using float_math::detail::splat;

// jax.nn.sigmoid as detail::sigmoid computes it: 1 / (1 + e^-x) for x >= 0,
// e^x / (1 + e^x) below, with e = e^-|x| shared by both sides.
template <class F>
TCONV3D_MATH_INLINE F sigmoid_from(F x, F e) {
  return pick(x >= 0.0f, 1.0f / (1.0f + e), e / (1.0f + e));
}
template <class F>
TCONV3D_MATH_INLINE F exp_minus_abs(F x) {
  return float_math::exp(pick(x < 0.0f, x, -x));
}
template <class F>
TCONV3D_MATH_INLINE F sigmoid(F x) {
  return sigmoid_from(x, exp_minus_abs(x));
}
template <class F>
TCONV3D_MATH_INLINE F silu(F x) {  // in float: 2.2 ms per 1 M values against 3.0 all in double (one more vdivpd)
  const F s = sigmoid(x);
  return s * (1.0f + x * (1.0f - s));
}
// gelu' = Phi(x) + x phi(x) in double, one rounding at the end, one exp
// shared: with a = x / sqrt(2) and e = e^{-a^2} = sqrt(2 pi) phi(x),
// 2 Phi = 1 + erf(a) = 1 + the Taylor series for |a| < 0.75, else
// erfc(-a) = e g(|a|) below, 2 - e g(|a|) above (g = erfc(a) e^{a^2}:
// float_math's fit up to 4, its asymptotic series past). Far below zero this
// keeps Phi where float32's 1 + erf (Keras's) rounds it to 0.
struct GeluOp {
  template <class D>
  static TCONV3D_MATH_INLINE D apply(D x) {
    using namespace float_math::detail;
    const D a = x * 0.70710678118654752;
    const D e = exp_d(-(a * a));
    // Past 4 in |a|, g from its asymptotic series (1 / (a sqrt(pi))) (1 - 1/(2a^2)
    // + 3/(4a^4) - ...) to a^-12: error under 4e-6 of g at 4, falling fast,
    // where Phi is at most 3 % of the value.
    const D m = magnitude(a);
    const D r = 1.0 / pick(m > 4.0, m, splat<D>(4.0));
    const D w = r * r;
    D series = splat<D>(10395.0 / 64.0);
    series = series * w - 945.0 / 32.0;
    series = series * w + 105.0 / 16.0;
    series = series * w - 15.0 / 8.0;
    series = series * w + 3.0 / 4.0;
    series = series * w - 0.5;
    series = series * w + 1.0;
    const D g = pick(m > 4.0, r * 0.56418958354775629 * series, erfc_scaled_d(a));  // 1 / sqrt(pi)
    const D erfc = e * g;
    const D tail = pick(a < 0.0, erfc, 2.0 - erfc);
    const D twice_phi = pick(magnitude(a) < 0.75, 1.0 + erf_taylor_d(a), tail);
    return 0.5 * twice_phi + x * 0.39894228040143268 * e;  // 1 / sqrt(2 pi)
  }
};
template <class F>
TCONV3D_MATH_INLINE F gelu(F x) {
  return float_math::through_double<GeluOp>(x);
}
template <class F>
TCONV3D_MATH_INLINE F gelu_tanh(F x, float c) {  // c = sqrt(2 / pi) in float, as the template computes it
  const F t = float_math::tanh(c * (x + 0.044715f * x * x * x));
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * c * (1.0f + static_cast<float>(3 * 0.044715) * x * x);
}
template <class F>
TCONV3D_MATH_INLINE F tanh_shrink(F x) {
  const F t = float_math::tanh(x);
  return t * t;
}
// mish' = tanh(sp) + x (1 - tanh(sp)^2) sigmoid(x), sp = softplus(x), in
// double with one rounding at the end. 1 + e^x = e^sp makes tanh(sp) =
// n / (n + 2) with n = e^x (e^x + 2): no log1p, no tanh, one exp. With
// e = e^-|x| (no overflow): x > 0: t = (1 + 2e) / d, 1 - t = 2e^2 / d,
// d = 1 + 2e + 2e^2; x <= 0: n = e (e + 2), t = n / (n + 2), 1 - t = 2 / (n + 2);
// sigmoid as above. ±inf give NaN (inf * 0), as the composed formula does.
struct MishOp {
  template <class D>
  static TCONV3D_MATH_INLINE D apply(D x) {
    using float_math::detail::exp_d;
    const D e = exp_d(pick(x < 0.0, x, -x));
    const D two_e2 = 2.0 * (e * e);
    const D n = e * (e + 2.0);
    const auto positive = x > 0.0;
    const D inv = 1.0 / pick(positive, (1.0 + 2.0 * e) + two_e2, n + 2.0);
    const D t = pick(positive, 1.0 + 2.0 * e, n) * inv;
    const D one_minus_t = pick(positive, two_e2, splat<D>(2.0)) * inv;
    const D s = pick(x >= 0.0, splat<D>(1.0), e) / (1.0 + e);
    return t + x * (one_minus_t * (1.0 + t)) * s;
  }
};
template <class F>
TCONV3D_MATH_INLINE F mish(F x) {
  return float_math::through_double<MishOp>(x);
}
template <class F>
TCONV3D_MATH_INLINE F elu(F x, float alpha) {  // from z
  return pick(x > 0.0f, splat<F>(1.0), alpha * float_math::exp(x));
}
template <class F>
TCONV3D_MATH_INLINE F celu(F x, float alpha) {  // from z
  return pick(x >= 0.0f, splat<F>(1.0), float_math::exp(x / alpha));
}
template <class F>
TCONV3D_MATH_INLINE F softplus_from_output(F y) {  // sigmoid(z) = 1 - e^-y
  return -float_math::expm1(-y);
}
template <class F>
TCONV3D_MATH_INLINE F log_sigmoid_from_output(F y) {  // 1 - sigmoid(z), sigmoid(z) = e^y
  return -float_math::expm1(y);
}
}  // namespace float_grad
#pragma GCC diagnostic pop

// act'(z) for an elementwise activation (axis activations: 1, never used).
template <typename T>
T activation_derivative(const Activation& act, T x) {
  using detail::sigmoid;
  const T alpha = static_cast<T>(act.alpha);
  constexpr bool kFloat = std::is_same_v<T, float>;  // float_grad's functions, not libm
  switch (act.kind) {
    case ActivationKind::kLinear: return T(1);
    case ActivationKind::kRelu: return detail::relu_general_derivative(act, x);
    case ActivationKind::kLeakyRelu: return x >= T(0) ? T(1) : alpha;
    case ActivationKind::kRelu6: return detail::relu6_grad(x);
    case ActivationKind::kElu:
      if constexpr (kFloat) return float_grad::elu(x, alpha);
      return x > T(0) ? T(1) : alpha * std::exp(x);
    case ActivationKind::kCelu:
      // maximum(x, 0) + alpha * expm1(minimum(x, 0) / alpha): the two half
      // gradients at 0 add up to 1.
      if constexpr (kFloat) return float_grad::celu(x, alpha);
      return x >= T(0) ? T(1) : std::exp(x / alpha);
    case ActivationKind::kSelu: {
      const T selu_alpha = T(1.6732632423543772848170429916717);
      const T selu_scale = T(1.0507009873554804934193349852946);
      return x > T(0) ? selu_scale : selu_scale * selu_alpha * std::exp(x);
    }
    case ActivationKind::kSoftplus:
      if constexpr (kFloat) return float_grad::sigmoid(x);
      return sigmoid(x);
    case ActivationKind::kSoftsign: {
      const T d = T(1) + std::abs(x);
      return T(1) / (d * d);
    }
    case ActivationKind::kSquareplus: return (T(1) + x / std::sqrt(x * x + alpha)) / T(2);
    case ActivationKind::kSoftShrink: return x > alpha || x < -alpha ? T(1) : T(0);
    case ActivationKind::kHardShrink: return std::abs(x) > alpha ? T(1) : T(0);
    case ActivationKind::kSparsePlus: return x <= T(-1) ? T(0) : (x >= T(1) ? T(1) : (x + T(1)) / T(2));
    case ActivationKind::kSilu: {
      if constexpr (kFloat) return float_grad::silu(x);
      const T s = sigmoid(x);
      return s * (T(1) + x * (T(1) - s));
    }
    case ActivationKind::kHardSilu: {
      // x * relu6(x + 3) / 6.
      const T shifted = x + T(3);
      return std::min(std::max(shifted, T(0)), T(6)) / T(6) + x * detail::relu6_grad(shifted) / T(6);
    }
    case ActivationKind::kGelu: {
      if constexpr (kFloat) return float_grad::gelu(x);
      const T inv_sqrt2 = T(0.70710678118654752440084436210485);
      const T inv_sqrt_2pi = T(0.39894228040143267793994605993438);
      return T(0.5) * (T(1) + std::erf(x * inv_sqrt2)) + x * inv_sqrt_2pi * std::exp(-T(0.5) * x * x);
    }
    case ActivationKind::kGeluTanh: {
      const T c = std::sqrt(T(2) / T(3.14159265358979323846));
      if constexpr (kFloat) return float_grad::gelu_tanh(x, c);
      const T t = std::tanh(c * (x + T(0.044715) * x * x * x));
      return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * c * (T(1) + T(3 * 0.044715) * x * x);
    }
    case ActivationKind::kTanh: {
      const T t = std::tanh(x);
      return T(1) - t * t;
    }
    case ActivationKind::kTanhShrink: {
      if constexpr (kFloat) return float_grad::tanh_shrink(x);
      const T t = std::tanh(x);
      return t * t;
    }
    case ActivationKind::kHardTanh: return x >= T(-1) && x <= T(1) ? T(1) : T(0);  // where(x > 1, ...): 1 at ±1
    case ActivationKind::kSigmoid: {
      const T s = sigmoid(x);
      return s * (T(1) - s);
    }
    case ActivationKind::kHardSigmoid: return detail::relu6_grad(x + T(3)) / T(6);  // relu6(x + 3) / 6
    case ActivationKind::kHardSigmoidTfKeras2: {
      // tf.clip_by_value(0.2 x + 0.5, 0, 1): TensorFlow passes the gradient at the bounds.
      const T v = T(0.2) * x + T(0.5);
      return v >= T(0) && v <= T(1) ? T(0.2) : T(0);
    }
    case ActivationKind::kSparseSigmoid: {
      // 0.5 * clip(x + 1, 0, 2): half the gradient at each bound.
      const T v = x + T(1);
      const T lower = v > T(0) ? v : T(0);
      return T(0.5) * detail::max_grad(v, T(0)) * detail::min_grad(lower, T(2));
    }
    case ActivationKind::kLogSigmoid:
      if constexpr (kFloat) return float_grad::sigmoid(-x);
      return sigmoid(-x);
    case ActivationKind::kExponential: return std::exp(x);
    case ActivationKind::kMish: {
      if constexpr (kFloat) return float_grad::mish(x);
      const T t = std::tanh(detail::stable_softplus(x));
      return t + x * (T(1) - t * t) * sigmoid(x);
    }
    case ActivationKind::kSoftmax:
    case ActivationKind::kLogSoftmax:
    case ActivationKind::kGlu:
    case ActivationKind::kSparsemax: break;
  }
  return T(1);
}

// act'(z) from y = act(z); only for activations where needs_preactivation()
// is false (others return act'(y), which is wrong: callers check first).
template <typename T>
T activation_derivative_from_output(const Activation& act, T y) {
  const T alpha = static_cast<T>(act.alpha);
  switch (act.kind) {
    case ActivationKind::kLinear: return T(1);
    case ActivationKind::kRelu: return y > T(0) ? T(1) : T(0);  // plain relu only
    case ActivationKind::kLeakyRelu: return y >= T(0) ? T(1) : alpha;  // slope > 0
    case ActivationKind::kRelu6: return y > T(0) && y < T(6) ? T(1) : T(0);
    case ActivationKind::kElu: return y > T(0) ? T(1) : y + alpha;            // alpha * exp(z) = y + alpha
    case ActivationKind::kCelu: return y > T(0) ? T(1) : y / alpha + T(1);    // exp(z / alpha)
    case ActivationKind::kSelu: {
      const T selu_alpha = T(1.6732632423543772848170429916717);
      const T selu_scale = T(1.0507009873554804934193349852946);
      return y > T(0) ? selu_scale : y + selu_scale * selu_alpha;
    }
    case ActivationKind::kSoftplus:
      if constexpr (std::is_same_v<T, float>) return float_grad::softplus_from_output(y);
      return -std::expm1(-y);  // sigmoid(z) = 1 - exp(-softplus(z))
    case ActivationKind::kSoftsign: {
      const T d = T(1) - std::abs(y);  // 1 / (1 + |z|)
      return d * d;
    }
    case ActivationKind::kSquareplus: {
      // z = y - b / (4y), so (1 + z / sqrt(z^2 + b)) / 2 = y^2 / (y^2 + b / 4).
      const T y2 = y * y;
      return y2 / (y2 + alpha / T(4));
    }
    case ActivationKind::kSoftShrink:
    case ActivationKind::kHardShrink: return y != T(0) ? T(1) : T(0);  // threshold >= 0
    case ActivationKind::kSparsePlus: return y >= T(1) ? T(1) : std::sqrt(y);  // (z + 1) / 2 = sqrt(y)
    case ActivationKind::kTanh: return T(1) - y * y;
    case ActivationKind::kSigmoid: return y * (T(1) - y);
    case ActivationKind::kHardSigmoid: return y > T(0) && y < T(1) ? T(1) / T(6) : T(0);
    case ActivationKind::kLogSigmoid:
      if constexpr (std::is_same_v<T, float>) return float_grad::log_sigmoid_from_output(y);
      return -std::expm1(y);  // 1 - sigmoid(z), sigmoid(z) = exp(y)
    case ActivationKind::kExponential: return y;
    default: break;  // needs z
  }
  return activation_derivative(act, y);
}

// The gradient with respect to the pre-activation output for `rows` rows of
// the last axis (the channels under channels_last, W under channels_first):
// z and dz rows have `length` values; y and dy rows have length / 2 for glu,
// `length` otherwise. z may be null unless needs_preactivation(act); y may be
// null unless needs_output(act). dz may alias dy (not for glu). Elementwise
// derivatives in float, the axis activations' sums over a row in double; no
// threads, so the result depends only on the values.
void activation_gradient_rows(const Activation& act, const float* z, const float* y, const float* dy, float* dz,
                              int64_t rows, int64_t length);

}  // namespace tconv3d
