#include "emit/x64/activation_emitter.hpp"

#include <cmath>
#include <string>

#include "tconv3d/error.hpp"

namespace tconv3d::x64 {

namespace {

constexpr uint32_t kSignBit = 0x80000000u;
constexpr uint32_t kAbsMask = 0x7fffffffu;

constexpr float kSeluAlpha = 1.6732632423543772848170429916717f;
constexpr float kSeluScale = 1.0507009873554804934193349852946f;
// gelu_tanh: 0.5 (1 + tanh(z)) = sigmoid(2z), 2z = x (k0 + k1 x^2).
constexpr float kGeluTanhK0 = 1.5957691216057308f;   // 2 sqrt(2/pi)
constexpr float kGeluTanhK1 = 0.07135481627159562f;  // 2 sqrt(2/pi) * 0.044715
// gelu: Phi(-|x|) = erfc(a)/2 with a = |x|/sqrt(2) is t exp(-a^2 + Q(t)), where
// t = 2/(2 + a) = k/(k + |x|). Q is our fit of log(erfc(a) e^(a^2) / (2t)) on
// a in [0, 9.5] (below that erfc underflows floats), degree 9, absolute error
// 4.3e-8, i.e. that relative error in Phi(-|x|). Q(t) at t in [0, 0.17)
// (|x| > 13.4) stays moderate, so there exp(-a^2 + Q) is 0.
constexpr float kGeluK = 2.82842712474619f;  // 2 sqrt(2)
constexpr float kGeluQ[10] = {-1.95857418f, 0.998205066f, 0.390317947f, 0.0170179382f,
                              0.0529585741f, -0.177481025f, -0.578919828f, 1.06876624f,
                              -0.643541038f, 0.138103172f};
// Squareplus: above this |x|, x^2 + b rounds to x^2 (and x^2 could overflow),
// so sqrt(x^2 + b) is |x|.
constexpr float kSquareplusLarge = 1e18f;
// tanh(softplus(x)) is 1 in float well before x = 20; clamping keeps e^x (e^x + 2) finite.
constexpr float kMishHighClamp = 20.0f;

bool is_plain_relu(const Activation& a) {
  return a.alpha == 0.0 && a.threshold == 0.0 && !a.max_value;
}

}  // namespace

template <typename Vmm>
struct ActivationEmitter<Vmm>::Impl {
  using Math = VectorMath<Vmm>;
  static constexpr bool kAvx512 = Math::kAvx512;

  Xbyak::CodeGenerator& g;
  Math& m;
  const Vmm& x;
  const std::vector<Vmm>& s;

  static int scratch_count(const Activation& a);
  void emit(const Activation& a);

  typename Math::Mask mask(int opmask_index, int scratch_index) const {
    if constexpr (kAvx512) {
      return Xbyak::Opmask(opmask_index);
    } else {
      return s[scratch_index];
    }
  }

  void relu(float alpha, float threshold, std::optional<float> max_value);
  void leaky_relu(float alpha);
  void elu_like(float argument_scale, float negative_factor, float positive_scale,
                std::optional<float> high_clamp);
  void softplus_like(bool log_sigmoid);
  void squareplus(float b);
  void soft_shrink(float threshold);
  void hard_shrink(float threshold);
  void sparse_plus();
  void sigmoid_of(const Vmm& w);  // result in s[2]; w may be x
  void gelu_tanh();
  void gelu();
  void tanh_into_s2();
  void exponential();
  void mish();
};

template <typename Vmm>
int ActivationEmitter<Vmm>::Impl::scratch_count(const Activation& a) {
  switch (a.kind) {
    case ActivationKind::kLinear: return 0;
    case ActivationKind::kRelu:
      if (kAvx512) return 0;
      return is_plain_relu(a) || a.alpha == 0.0 ? 1 : 2;
    case ActivationKind::kLeakyRelu: return kAvx512 ? 0 : 1;
    case ActivationKind::kCelu:
      if (a.alpha == 0.0) return kAvx512 ? 0 : 1;  // relu
      return 3;
    case ActivationKind::kElu:
    case ActivationKind::kSelu: return 3;
    case ActivationKind::kSoftplus:
    case ActivationKind::kLogSigmoid: return kAvx512 ? 3 : 4;
    case ActivationKind::kSoftsign: return 1;
    case ActivationKind::kSquareplus:
      if (a.alpha == 0.0) return kAvx512 ? 0 : 1;  // relu
      return 3;
    case ActivationKind::kSoftShrink: return kAvx512 ? 1 : 2;
    case ActivationKind::kHardShrink: return 1;
    case ActivationKind::kSparsePlus: return kAvx512 ? 1 : 2;
    case ActivationKind::kSilu:
    case ActivationKind::kSigmoid: return 3;
    case ActivationKind::kHardSilu:
    case ActivationKind::kRelu6:
    case ActivationKind::kHardTanh:
    case ActivationKind::kHardSigmoid:
    case ActivationKind::kHardSigmoidTfKeras2:
    case ActivationKind::kSparseSigmoid: return 1;
    case ActivationKind::kGelu:
    case ActivationKind::kGeluTanh: return 4;
    case ActivationKind::kTanh:
    case ActivationKind::kTanhShrink: return 3;
    case ActivationKind::kExponential: return 2;
    case ActivationKind::kMish: return 3;
    case ActivationKind::kSoftmax:
    case ActivationKind::kLogSoftmax:
    case ActivationKind::kGlu:
    case ActivationKind::kSparsemax: break;
  }
  return 0;  // rejected by the constructor
}

template <typename Vmm>
void ActivationEmitter<Vmm>::Impl::emit(const Activation& a) {
  const float alpha = static_cast<float>(a.alpha);
  switch (a.kind) {
    case ActivationKind::kLinear: return;
    case ActivationKind::kRelu:
      return relu(alpha, static_cast<float>(a.threshold),
                  a.max_value ? std::optional<float>(static_cast<float>(*a.max_value))
                              : std::nullopt);
    case ActivationKind::kLeakyRelu: return leaky_relu(alpha);
    case ActivationKind::kRelu6: return m.clamp(x, 0.0f, 6.0f, s[0]);
    case ActivationKind::kElu: return elu_like(1.0f, alpha, 1.0f, 0.0f);
    case ActivationKind::kCelu:
      // max(x,0) + min(0, a expm1(x/a)) is x for x > 0 and a expm1(x/a)
      // otherwise, for either sign of a; a = 0 leaves relu.
      if (a.alpha == 0.0) return relu(0.0f, 0.0f, std::nullopt);
      return elu_like(static_cast<float>(1.0 / a.alpha), alpha, 1.0f,
                      a.alpha > 0.0 ? 0.0f : VectorMath<Vmm>::kExpHighClamp);
    case ActivationKind::kSelu:
      return elu_like(1.0f, kSeluScale * kSeluAlpha, kSeluScale, 0.0f);
    case ActivationKind::kSoftplus: return softplus_like(false);
    case ActivationKind::kLogSigmoid: return softplus_like(true);
    case ActivationKind::kSoftsign:
      g.vandps(s[0], x, m.c_bits(kAbsMask));
      g.vaddps(s[0], s[0], m.c(1.0f));
      g.vdivps(x, x, s[0]);
      return;
    case ActivationKind::kSquareplus: return squareplus(alpha);
    case ActivationKind::kSoftShrink: return soft_shrink(alpha);
    case ActivationKind::kHardShrink: return hard_shrink(alpha);
    case ActivationKind::kSparsePlus: return sparse_plus();
    case ActivationKind::kSilu:
      sigmoid_of(x);
      g.vmulps(x, x, s[2]);
      return;
    case ActivationKind::kSigmoid:
      sigmoid_of(x);
      g.vmovaps(x, s[2]);
      return;
    case ActivationKind::kHardSilu:
      // x * (relu6(x + 3) / 6), dividing first so x * 6 cannot overflow; a
      // NaN propagates through the product.
      g.vaddps(s[0], x, m.c(3.0f));
      g.vmaxps(s[0], s[0], m.c(0.0f));
      g.vminps(s[0], s[0], m.c(6.0f));
      g.vmulps(s[0], s[0], m.c(1.0f / 6.0f));
      g.vmulps(x, x, s[0]);
      return;
    case ActivationKind::kGelu: return gelu();
    case ActivationKind::kGeluTanh: return gelu_tanh();
    case ActivationKind::kTanh:
      tanh_into_s2();
      g.vmovaps(x, s[2]);
      return;
    case ActivationKind::kTanhShrink:
      tanh_into_s2();
      g.vsubps(x, x, s[2]);
      return;
    case ActivationKind::kHardTanh: return m.clamp(x, -1.0f, 1.0f, s[0]);
    case ActivationKind::kHardSigmoid:
      g.vaddps(x, x, m.c(3.0f));
      m.clamp(x, 0.0f, 6.0f, s[0]);
      g.vmulps(x, x, m.c(1.0f / 6.0f));
      return;
    case ActivationKind::kHardSigmoidTfKeras2:
      g.vmulps(x, x, m.c(0.2f));
      g.vaddps(x, x, m.c(0.5f));
      return m.clamp(x, 0.0f, 1.0f, s[0]);
    case ActivationKind::kSparseSigmoid:
      g.vaddps(x, x, m.c(1.0f));
      g.vmulps(x, x, m.c(0.5f));
      return m.clamp(x, 0.0f, 1.0f, s[0]);
    case ActivationKind::kExponential: return exponential();
    case ActivationKind::kMish: return mish();
    case ActivationKind::kSoftmax:
    case ActivationKind::kLogSoftmax:
    case ActivationKind::kGlu:
    case ActivationKind::kSparsemax: return;  // rejected by the constructor
  }
}

template <typename Vmm>
void ActivationEmitter<Vmm>::Impl::relu(float alpha, float threshold,
                                        std::optional<float> max_value) {
  if (alpha == 0.0f && threshold == 0.0f && !max_value) {
    if constexpr (kAvx512) {
      m.compare(Xbyak::util::k1, x, m.c(0.0f), Compare::kNotLessUnordered);
      m.keep_where(x, x, Xbyak::util::k1);
    } else {
      m.zero(s[0]);
      g.vmaxps(x, s[0], x);  // zero first: a NaN x stays NaN
    }
    return;
  }
  // tf.keras 2.x: x >= threshold ? x : alpha (x - threshold), then min(., max_value).
  const auto below = mask(1, 0);
  m.compare(below, x, m.c(threshold), Compare::kLessOrdered);
  if constexpr (kAvx512) {
    if (alpha != 0.0f) {
      g.vsubps(x | below, x, m.c(threshold));
      g.vmulps(x | below, x, m.c(alpha));
    } else {
      g.vpxord(x | below, x, x);
    }
  } else {
    if (alpha != 0.0f) {
      g.vsubps(s[1], x, m.c(threshold));
      g.vmulps(s[1], s[1], m.c(alpha));
      m.blend(x, x, s[1], below);
    } else {
      g.vandnps(x, below, x);
    }
  }
  if (max_value) {
    const auto above = mask(2, 0);
    m.compare(above, x, m.c(*max_value), Compare::kGreaterOrdered);
    m.blend(x, x, m.c(*max_value), above);
  }
}

template <typename Vmm>
void ActivationEmitter<Vmm>::Impl::leaky_relu(float alpha) {
  if constexpr (kAvx512) {
    m.compare(Xbyak::util::k1, x, m.c(0.0f), Compare::kLessOrdered);
    g.vmulps(x | Xbyak::util::k1, x, m.c(alpha));
  } else {
    g.vmulps(s[0], x, m.c(alpha));
    m.blend_by_sign(x, x, s[0], x);
  }
}

template <typename Vmm>
void ActivationEmitter<Vmm>::Impl::elu_like(float argument_scale, float negative_factor,
                                            float positive_scale,
                                            std::optional<float> high_clamp) {
  // positive_scale * x where x > 0, negative_factor * expm1(argument_scale * x)
  // elsewhere (selecting on the sign bit, so -0 takes the expm1 branch: 0).
  const typename Math::ExpParts parts{s[0], s[1], s[2]};
  if (argument_scale == 1.0f) {
    g.vmovaps(s[0], x);
  } else {
    g.vmulps(s[0], x, m.c(argument_scale));
  }
  m.exp_reduce(parts, high_clamp);
  m.expm1_finish(parts, negative_factor);
  if (positive_scale != 1.0f) g.vmulps(x, x, m.c(positive_scale));
  m.blend_by_sign(x, x, s[2], x);
}

template <typename Vmm>
void ActivationEmitter<Vmm>::Impl::softplus_like(bool log_sigmoid) {
  // softplus(x) = max(x, 0) + log1p(exp(-|x|)); log_sigmoid(x) = -softplus(-x)
  // = min(x, 0) - log1p(exp(-|x|)). exp(-|x|) is in [0, 1]: no overflow.
  const typename Math::ExpParts parts{s[0], s[1], s[2]};
  g.vorps(s[0], x, m.c_bits(kSignBit));
  m.exp_reduce(parts, std::nullopt);
  m.exp_finish(parts);
  m.log1p_unit(s[2], s[0], s[1], kAvx512 ? s[0] : s[3]);
  m.zero(s[0]);
  if (log_sigmoid) {
    g.vminps(s[0], s[0], x);  // zero first: a NaN x stays NaN
    g.vsubps(x, s[0], s[2]);
  } else {
    g.vmaxps(s[0], s[0], x);
    g.vaddps(x, s[0], s[2]);
  }
}

template <typename Vmm>
void ActivationEmitter<Vmm>::Impl::squareplus(float b) {
  if (b == 0.0f) return relu(0.0f, 0.0f, std::nullopt);  // (x + |x|) / 2
  // q = sqrt(x^2 + b); (x + q) / 2 for x >= 0, and the same value written as
  // (b/2) / (q - x) for x < 0, where x + q would cancel.
  const Vmm& a = s[0];
  const Vmm& q = s[1];
  g.vandps(a, x, m.c_bits(kAbsMask));
  m.load(q, kSquareplusLarge);
  g.vminps(q, q, a);
  g.vfmadd213ps(q, q, m.c(b));
  g.vsqrtps(q, q);
  g.vmaxps(q, q, a);  // |x| where |x| > 1e18; a NaN |x| stays NaN
  g.vmulps(a, q, m.c(0.5f));
  g.vfmadd231ps(a, x, m.c(0.5f));  // halves first: x + q may overflow
  g.vsubps(q, q, x);
  m.load(s[2], 0.5f * b);
  g.vdivps(s[2], s[2], q);
  m.blend_by_sign(x, a, s[2], x);
}

template <typename Vmm>
void ActivationEmitter<Vmm>::Impl::soft_shrink(float threshold) {
  // x > t ? x - t : (x < -t ? x + t : 0); a NaN gives 0, as in Keras.
  if constexpr (kAvx512) {
    using Xbyak::util::k1;
    using Xbyak::util::k2;
    m.compare(k1, x, m.c(threshold), Compare::kGreaterOrdered);
    m.compare(k2, x, m.c(-threshold), Compare::kLessOrdered);
    g.vaddps(s[0] | k2 | Xbyak::util::T_z, x, m.c(threshold));
    g.vsubps(s[0] | k1, x, m.c(threshold));
    g.vmovaps(x, s[0]);
  } else {
    m.compare(s[1], x, m.c(-threshold), Compare::kLessOrdered);
    g.vaddps(s[0], x, m.c(threshold));
    g.vandps(s[0], s[0], s[1]);
    m.compare(s[1], x, m.c(threshold), Compare::kGreaterOrdered);
    g.vsubps(x, x, m.c(threshold));
    m.blend(x, s[0], x, s[1]);
  }
}

template <typename Vmm>
void ActivationEmitter<Vmm>::Impl::hard_shrink(float threshold) {
  // |x| > t ? x : 0; a NaN gives 0, as in Keras.
  g.vandps(s[0], x, m.c_bits(kAbsMask));
  const auto keep = mask(1, 0);
  m.compare(keep, s[0], m.c(threshold), Compare::kGreaterOrdered);
  m.keep_where(x, x, keep);
}

template <typename Vmm>
void ActivationEmitter<Vmm>::Impl::sparse_plus() {
  // x <= -1 ? 0 : (x >= 1 ? x : (x + 1)^2 / 4); a NaN stays NaN.
  g.vaddps(s[0], x, m.c(1.0f));
  g.vmulps(s[0], s[0], s[0]);
  g.vmulps(s[0], s[0], m.c(0.25f));
  if constexpr (kAvx512) {
    using Xbyak::util::k1;
    using Xbyak::util::k2;
    m.compare(k1, x, m.c(1.0f), Compare::kNotGreaterEqualUnordered);
    m.compare(k2, x, m.c(-1.0f), Compare::kLessEqualOrdered);
    g.vmovaps(x | k1, s[0]);
    g.vpxord(x | k2, x, x);
  } else {
    m.compare(s[1], x, m.c(1.0f), Compare::kGreaterEqualOrdered);
    m.blend(s[0], s[0], x, s[1]);
    m.compare(s[1], x, m.c(-1.0f), Compare::kNotLessEqualUnordered);
    g.vandps(x, s[0], s[1]);
  }
}

template <typename Vmm>
void ActivationEmitter<Vmm>::Impl::sigmoid_of(const Vmm& w) {
  // e = exp(-|w|) never overflows; e/(1+e) is sigmoid(-|w|) with full relative
  // accuracy, 1 - e/(1+e) >= 1/2 is sigmoid(|w|).
  const typename Math::ExpParts parts{s[0], s[1], s[2]};
  g.vorps(s[0], w, m.c_bits(kSignBit));
  m.exp_reduce(parts, std::nullopt);
  m.exp_finish(parts);
  g.vaddps(s[1], s[2], m.c(1.0f));
  g.vdivps(s[2], s[2], s[1]);
  m.load(s[1], 1.0f);
  g.vsubps(s[1], s[1], s[2]);
  m.blend_by_sign(s[2], s[1], s[2], w);
}

template <typename Vmm>
void ActivationEmitter<Vmm>::Impl::gelu_tanh() {
  // 0.5 x (1 + tanh(z)) = x sigmoid(2z): no cancellation for negative x.
  const Vmm& w = s[3];
  g.vmulps(w, x, x);
  g.vmulps(w, w, m.c(kGeluTanhK1));
  g.vaddps(w, w, m.c(kGeluTanhK0));
  g.vmulps(w, w, x);
  sigmoid_of(w);
  g.vmulps(x, x, s[2]);
}

template <typename Vmm>
void ActivationEmitter<Vmm>::Impl::gelu() {
  // x Phi(x): Phi(-|x|) = h = t exp(-x^2/2 + Q(t)) directly, Phi(|x|) = 1 - h.
  const Vmm& t = s[1];
  g.vandps(s[0], x, m.c_bits(kAbsMask));
  g.vaddps(s[0], s[0], m.c(kGeluK));
  m.load(t, kGeluK);
  g.vdivps(t, t, s[0]);
  m.load(s[0], kGeluQ[9]);
  for (int i = 8; i >= 0; --i) g.vfmadd213ps(s[0], t, m.c(kGeluQ[i]));
  g.vmulps(s[2], x, m.c(-0.5f));
  g.vfmadd231ps(s[0], s[2], x);
  const typename Math::ExpParts parts{s[0], s[2], s[3]};
  m.exp_reduce(parts, std::nullopt);
  m.exp_finish(parts);
  g.vmulps(s[3], s[3], t);
  m.load(s[2], 1.0f);
  g.vsubps(s[2], s[2], s[3]);
  m.blend_by_sign(s[3], s[2], s[3], x);
  g.vmulps(x, x, s[3]);
}

template <typename Vmm>
void ActivationEmitter<Vmm>::Impl::tanh_into_s2() {
  // tanh|x| = -m / (2 + m) with m = expm1(-2|x|) in [-1, 0]: accurate near 0
  // (no 1 - e cancellation), exactly 1 for large |x|; then x's sign.
  const typename Math::ExpParts parts{s[0], s[1], s[2]};
  g.vorps(s[0], x, m.c_bits(kSignBit));
  g.vaddps(s[0], s[0], s[0]);
  m.exp_reduce(parts, std::nullopt);
  m.expm1_finish(parts);
  g.vaddps(s[1], s[2], m.c(2.0f));
  g.vdivps(s[2], s[2], s[1]);
  m.copy_sign(s[2], x, s[0]);
}

template <typename Vmm>
void ActivationEmitter<Vmm>::Impl::exponential() {
  const typename Math::ExpParts parts{x, s[0], s[1]};
  m.exp_reduce(parts);
  m.exp_finish(parts);
  g.vmovaps(x, s[1]);
}

template <typename Vmm>
void ActivationEmitter<Vmm>::Impl::mish() {
  // tanh(softplus(x)) = n / (n + 2) with n = e^x (e^x + 2): no log, no tanh.
  const typename Math::ExpParts parts{s[0], s[1], s[2]};
  g.vmovaps(s[0], x);
  m.exp_reduce(parts, kMishHighClamp);
  m.exp_finish(parts);
  g.vaddps(s[1], s[2], m.c(2.0f));
  g.vmulps(s[2], s[2], s[1]);
  g.vaddps(s[1], s[2], m.c(2.0f));
  g.vdivps(s[2], s[2], s[1]);
  g.vmulps(x, x, s[2]);
}

template <typename Vmm>
ActivationEmitter<Vmm>::ActivationEmitter(Xbyak::CodeGenerator& gen, const Activation& activation)
    : gen_(gen), activation_(activation) {
  if (!activation.is_elementwise()) {
    throw Error("activation", "'" + activation.name +
                                  "' works along an axis and cannot be fused into a store");
  }
  auto check_finite = [&](double value, const char* what) {
    if (!std::isfinite(value)) {
      throw Error("activation", std::string(what) + " of '" + activation.name +
                                    "' must be finite, got " + std::to_string(value));
    }
  };
  check_finite(activation.alpha, "alpha");
  check_finite(activation.threshold, "threshold");
  if (activation.max_value) check_finite(*activation.max_value, "max_value");
  if (activation.kind == ActivationKind::kCelu && activation.alpha != 0.0 &&
      std::fabs(activation.alpha) < 1e-30) {
    throw Error("activation", "celu alpha must be 0 or of magnitude >= 1e-30 (x/alpha is "
                              "evaluated in float), got " + std::to_string(activation.alpha));
  }
  if (activation.kind == ActivationKind::kSquareplus && activation.alpha < 0.0) {
    throw Error("activation", "squareplus b must be >= 0, got " + std::to_string(activation.alpha));
  }
}

template <typename Vmm>
int ActivationEmitter<Vmm>::scratch_registers() const {
  return Impl::scratch_count(activation_);
}

template <typename Vmm>
void ActivationEmitter<Vmm>::emit(const Vmm& x, const std::vector<Vmm>& scratch) {
  const int needed = scratch_registers();
  if (static_cast<int>(scratch.size()) < needed) {
    throw Error("scratch", "activation '" + activation_.name + "' needs " +
                               std::to_string(needed) + " scratch registers, got " +
                               std::to_string(scratch.size()));
  }
  for (int i = 0; i < needed; ++i) {
    const int index = scratch[i].getIdx();
    bool clash = index == x.getIdx();
    for (int j = 0; j < i; ++j) clash = clash || scratch[j].getIdx() == index;
    if (clash) {
      throw Error("scratch", "register " + std::to_string(index) +
                                 " is used twice (value and scratch must all differ)");
    }
    if (!VectorMath<Vmm>::kAvx512 && index >= 16) {
      throw Error("scratch", "AVX2 code can only use ymm0-ymm15, got ymm" + std::to_string(index));
    }
  }
  if (!VectorMath<Vmm>::kAvx512 && x.getIdx() >= 16) {
    throw Error("x", "AVX2 code can only use ymm0-ymm15, got ymm" + std::to_string(x.getIdx()));
  }
  if (activation_.kind == ActivationKind::kLinear) return;
  VectorMath<Vmm> math(gen_, constants_, table_);
  Impl{gen_, math, x, scratch}.emit(activation_);
  used_ = true;
}

template <typename Vmm>
void ActivationEmitter<Vmm>::emit_constants() {
  if (!used_ || table_.empty()) return;
  table_.emit(gen_, constants_);
}

template class ActivationEmitter<Xbyak::Ymm>;
template class ActivationEmitter<Xbyak::Zmm>;

}  // namespace tconv3d::x64
