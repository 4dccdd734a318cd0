// Vectors pass by value only between inlined helpers (here and in
// core/float_math.hpp), so the generic target's ABI for 32-byte vectors
// (GCC's -Wpsabi note) never applies.
#pragma GCC diagnostic ignored "-Wpsabi"

#include "runtime/dz_loops.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/activation_gradient.hpp"
#include "core/cpu_features.hpp"
#include "tconv3d/bfloat16.hpp"

// Every helper below is inlined into the per-ISA entry points at the end of
// the file (a function, or lambda, that is not inlined keeps the generic
// target's code: lambdas do not inherit their caller's target attribute).
#define TCONV3D_INLINE inline __attribute__((always_inline))
#define TCONV3D_LAMBDA_INLINE __attribute__((always_inline))
// No product is fused with an add into an FMA (GCC's C++ default fuses
// wherever the target has FMA, as AVX-512 does): the general path, built for
// the generic target, rounds every product, and these loops must match it.
#if defined(__clang__)
#pragma clang fp contract(off)
#else
#pragma GCC optimize("fp-contract=off")
#endif

namespace tconv3d {

namespace {

// Eight floats, the same on every ISA (two SSE registers on the generic
// target, a ymm register under AVX2 and AVX-512): the same operations per
// value wherever they run, none fused (above), so every result is the scalar one.
// Written in vectors rather than left to GCC's vectorizer: a scalar select
// (plain relu's y > 0 ? 1 : 0) became a branch per value, not vectorized,
// mispredicted on every other random sign (5.1 ms for k3s2_same's 1 M values).
typedef float Floats __attribute__((vector_size(32)));
typedef int32_t Ints __attribute__((vector_size(32)));
typedef uint32_t Uints __attribute__((vector_size(32)));
typedef uint16_t Halves __attribute__((vector_size(16)));
constexpr int64_t kLanes = 8;

TCONV3D_INLINE Floats load(const float* p) {
  Floats v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// bf16_to_float: the bits in the upper half.
TCONV3D_INLINE Floats load(const uint16_t* p) {
  Halves h;
  std::memcpy(&h, p, sizeof h);
  return reinterpret_cast<Floats>(__builtin_convertvector(h, Uints) << 16);
}

TCONV3D_INLINE void store(float* p, const Floats& v) { std::memcpy(p, &v, sizeof v); }

// float_to_bf16: round to nearest even on the bits; a NaN keeps its upper
// half, made quiet.
TCONV3D_INLINE void store(uint16_t* p, const Floats& v) {
  const Uints bits = reinterpret_cast<Uints>(v);
  const Ints is_nan = reinterpret_cast<Ints>(bits & 0x7FFFFFFFu) > 0x7F800000;
  const Uints rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  const Uints out = is_nan ? ((bits >> 16) | 0x0040u) : rounded;
  const Halves h = __builtin_convertvector(out, Halves);
  std::memcpy(p, &h, sizeof h);
}

TCONV3D_INLINE Floats pick(const Ints& mask, const Floats& a, const Floats& b) { return mask ? a : b; }

TCONV3D_INLINE Floats magnitude(const Floats& v) {
  return reinterpret_cast<Floats>(reinterpret_cast<Uints>(v) & 0x7FFFFFFFu);
}

// std::sqrt per lane (IEEE: correctly rounded on every ISA, so the scalar
// path's value).
TCONV3D_INLINE Floats lane_sqrt(const Floats& v) {
  Floats out;
  for (int j = 0; j < kLanes; ++j) out[j] = std::sqrt(v[j]);
  return out;
}

enum : unsigned { kToFloat = 1, kToBf16 = 2 };

// dz[i] = f(dy[i], x[i]) for i < count, eight at a time; the last partial
// vector padded with zeros (its extra lanes are dropped).
template <unsigned kOut, class In, class F>
TCONV3D_INLINE void map_dz(const In* x, const In* dy, float* dz_float, uint16_t* dz_bf16, int64_t count, const F& f) {
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes) {
    const Floats out = f(load(dy + i), load(x + i));
    if constexpr ((kOut & kToFloat) != 0) store(dz_float + i, out);
    if constexpr ((kOut & kToBf16) != 0) store(dz_bf16 + i, out);
  }
  if (i == count) return;
  const int64_t left = count - i;
  In xs[kLanes] = {}, gs[kLanes] = {};
  std::copy(x + i, x + count, xs);
  std::copy(dy + i, dy + count, gs);
  const Floats out = f(load(gs), load(xs));
  if constexpr ((kOut & kToFloat) != 0) {
    float part[kLanes];
    store(part, out);
    std::copy(part, part + left, dz_float + i);
  }
  if constexpr ((kOut & kToBf16) != 0) {
    uint16_t part[kLanes];
    store(part, out);
    std::copy(part, part + left, dz_bf16 + i);
  }
}

// dz[i] = dy[i] * table[x[i]] for bf16 x: act' looked up per bf16 value
// (see derivative_table), eight at a time.
template <unsigned kOut>
TCONV3D_INLINE void map_table(const uint16_t* x, const uint16_t* dy, const float* table, float* dz_float,
                              uint16_t* dz_bf16, int64_t count) {
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes) {
    Floats d;
    for (int j = 0; j < kLanes; ++j) d[j] = table[x[i + j]];
    const Floats out = load(dy + i) * d;
    if constexpr ((kOut & kToFloat) != 0) store(dz_float + i, out);
    if constexpr ((kOut & kToBf16) != 0) store(dz_bf16 + i, out);
  }
  for (; i < count; ++i) {
    const float out = bf16_to_float(dy[i]) * table[x[i]];
    if constexpr ((kOut & kToFloat) != 0) dz_float[i] = out;
    if constexpr ((kOut & kToBf16) != 0) dz_bf16[i] = float_to_bf16(out);
  }
}

// tf.keras 2.x relu with a threshold or clip (and maybe a slope), from z:
// detail::relu_general_derivative's operations in vectors, in its order
// (its per-layer branches taken per vector: the same way for every value).
template <class Run>
TCONV3D_INLINE bool relu_general(const Activation& act, const Run& run) {
  const Floats zero = {}, one = zero + 1.0f, half = zero + 0.5f, six = zero + 6.0f;
  const Floats slope = zero + static_cast<float>(act.alpha), threshold = zero + static_cast<float>(act.threshold);
  const Floats max_value = zero + static_cast<float>(act.max_value.value_or(0.0));
  const bool thresholded = act.threshold != 0.0, sloped = act.alpha != 0.0;
  const bool relu6 = !thresholded && act.max_value && *act.max_value == 6.0;
  const bool clip = act.max_value.has_value() && !relu6;
  return run([=](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE {
    Floats positive, positive_value;
    if (thresholded) {
      positive = pick(v > threshold, one, zero);
      positive_value = pick(v > threshold, v, zero);
    } else if (relu6) {
      positive = pick((v > zero) & (v < six), one, zero);
      positive_value = v;
    } else {
      positive = pick(v > zero, one, zero);
      positive_value = pick(v > zero, v, zero);
    }
    if (clip) {  // positive *= max_grad(pv, 0) * min_grad(lower, max)
      const Floats lower = pick(positive_value > zero, positive_value, zero);
      const Floats above = pick(positive_value > zero, one, pick(positive_value == zero, half, zero));
      const Floats below = pick(lower < max_value, one, pick(lower == max_value, half, zero));
      positive = positive * (above * below);
    }
    const Floats negative = sloped ? pick(threshold - v > zero, slope, zero) : zero;
    return g * (positive + negative);
  });
}

// The activations with loops of their own: each computes, in vectors, the
// very operations of activation_derivative_from_output (from y) or of
// activation_derivative (from z, where needs_preactivation), in the same
// order, and dz = dy * that, as activation_gradient_rows does (those on
// exp, expm1, log1p, tanh or erf through float_grad, core's float32 formulas
// on float_math, which the general path runs too). Those false return: the
// caller runs the general path (float32) or a table of it (bf16). With
// count = 0 this only answers whether there is a loop (has_dz_loop).
template <unsigned kOut, class In>
TCONV3D_INLINE bool dz_body(const Activation& act, const In* z, const In* y, const In* dy, float* dz_float,
                            uint16_t* dz_bf16, int64_t count) {
  const Floats zero = {}, one = zero + 1.0f, half = zero + 0.5f;
  const Floats alpha = zero + static_cast<float>(act.alpha);
  const bool from_z = needs_preactivation(act);
  constexpr bool kMath = std::is_same_v<In, float>;
  const In* x = from_z ? z : y;
  auto run = [&](const auto& f) TCONV3D_LAMBDA_INLINE {
    map_dz<kOut>(x, dy, dz_float, dz_bf16, count, f);
    return true;
  };
  switch (act.kind) {
    case ActivationKind::kLinear:
      x = dy;  // dz = dy, no product
      return run([](const Floats& g, const Floats&) TCONV3D_LAMBDA_INLINE { return g; });
    case ActivationKind::kRelu:
      if (!from_z)  // plain relu: y > 0
        return run([=](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE { return g * pick(v > zero, one, zero); });
      if (act.alpha != 0.0 && !act.max_value && act.threshold == 0.0)  // a slope alone: leaky
        return run([=](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE { return g * pick(v >= zero, one, alpha); });
      return relu_general(act, run);
    case ActivationKind::kLeakyRelu:  // from y or (slope <= 0) z: the same test
      return run([=](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE { return g * pick(v >= zero, one, alpha); });
    case ActivationKind::kRelu6: {
      const Floats six = zero + 6.0f;
      return run([=](const Floats& g, const Floats& v)
                     TCONV3D_LAMBDA_INLINE { return g * pick((v > zero) & (v < six), one, zero); });
    }
    case ActivationKind::kElu:
      if (from_z) {  // alpha < 0: alpha * exp(z)
        if constexpr (!kMath) return false;
        const float a = static_cast<float>(act.alpha);
        return run([=](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE { return g * float_grad::elu(v, a); });
      }
      return run([=](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE { return g * pick(v > zero, one, v + alpha); });
    case ActivationKind::kCelu:
      if (from_z) {
        if constexpr (!kMath) return false;
        const float a = static_cast<float>(act.alpha);
        return run([=](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE { return g * float_grad::celu(v, a); });
      }
      return run([=](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE { return g * pick(v > zero, one, v / alpha + one); });
    case ActivationKind::kSelu: {
      // As the template's T(double constant): the double rounded to float.
      const float selu_alpha = static_cast<float>(1.6732632423543772848170429916717);
      const float selu_scale = static_cast<float>(1.0507009873554804934193349852946);
      const Floats scale = zero + selu_scale, offset = zero + selu_scale * selu_alpha;
      return run([=](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE { return g * pick(v > zero, scale, v + offset); });
    }
    case ActivationKind::kSoftsign:
      return run([=](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE {
        const Floats d = one - magnitude(v);
        return g * (d * d);
      });
    case ActivationKind::kSquareplus: {
      if (from_z) {  // b <= 0: (1 + z / sqrt(z^2 + b)) / 2
        const Floats b = zero + static_cast<float>(act.alpha), two = zero + 2.0f;
        return run([=](const Floats& g, const Floats& v)
                       TCONV3D_LAMBDA_INLINE { return g * ((one + v / lane_sqrt(v * v + b)) / two); });
      }
      const Floats quarter_b = zero + static_cast<float>(act.alpha) / 4.0f;
      return run([=](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE {
        const Floats y2 = v * v;
        return g * (y2 / (y2 + quarter_b));
      });
    }
    case ActivationKind::kSoftShrink:
    case ActivationKind::kHardShrink:
      if (from_z) {  // threshold < 0
        const Floats minus_alpha = zero + -static_cast<float>(act.alpha);
        if (act.kind == ActivationKind::kSoftShrink)
          return run([=](const Floats& g, const Floats& v)
                         TCONV3D_LAMBDA_INLINE { return g * pick((v > alpha) | (v < minus_alpha), one, zero); });
        return run([=](const Floats& g, const Floats& v)
                       TCONV3D_LAMBDA_INLINE { return g * pick(magnitude(v) > alpha, one, zero); });
      }
      return run([=](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE { return g * pick(v != zero, one, zero); });
    case ActivationKind::kTanh:
      return run([=](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE { return g * (one - v * v); });
    case ActivationKind::kSigmoid:
      return run([=](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE { return g * (v * (one - v)); });
    case ActivationKind::kHardSigmoid: {
      const Floats sixth = zero + 1.0f / 6.0f;
      return run([=](const Floats& g, const Floats& v)
                     TCONV3D_LAMBDA_INLINE { return g * pick((v > zero) & (v < one), sixth, zero); });
    }
    case ActivationKind::kExponential:
      return run([](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE { return g * v; });
    case ActivationKind::kHardTanh:  // from z
      return run([=](const Floats& g, const Floats& v)
                     TCONV3D_LAMBDA_INLINE { return g * pick((v >= -one) & (v <= one), one, zero); });
    case ActivationKind::kHardSigmoidTfKeras2: {  // from z
      const Floats fifth = zero + 0.2f;
      return run([=](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE {
        const Floats s = fifth * v + half;
        return g * pick((s >= zero) & (s <= one), fifth, zero);
      });
    }
    case ActivationKind::kSparseSigmoid: {  // from z: 0.5 * max_grad(v, 0) * min_grad(lower, 2)
      const Floats two = zero + 2.0f;
      return run([=](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE {
        const Floats s = v + one;
        const Floats lower = pick(s > zero, s, zero);
        const Floats above = pick(s > zero, one, pick(s == zero, half, zero));
        const Floats below = pick(lower < two, one, pick(lower == two, half, zero));
        return g * (half * above * below);
      });
    }
    case ActivationKind::kHardSilu: {  // from z: min(max(x + 3, 0), 6) / 6 + x * relu6'(x + 3) / 6
      const Floats three = zero + 3.0f, six = zero + 6.0f;
      return run([=](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE {
        const Floats s = v + three;
        const Floats upper = pick(s < zero, zero, s);       // std::max(s, 0)
        const Floats clipped = pick(six < upper, six, upper);  // std::min(upper, 6)
        const Floats inside = pick((s > zero) & (s < six), one, zero);
        return g * (clipped / six + v * inside / six);
      });
    }
    case ActivationKind::kSparsePlus:  // from y: (z + 1) / 2 = sqrt(y)
      return run([=](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE { return g * pick(v >= one, one, lane_sqrt(v)); });
    // Those on float_math (exp, expm1, log1p, tanh, erf in double per value):
    // float32 only; the bf16 pass looks them up in a table (derivative_table),
    // a load per value against some 40 to 150 operations.
    case ActivationKind::kSoftplus:  // from y
      if constexpr (!kMath) return false;
      return run([](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE { return g * float_grad::softplus_from_output(v); });
    case ActivationKind::kLogSigmoid:  // from y
      if constexpr (!kMath) return false;
      return run([](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE { return g * float_grad::log_sigmoid_from_output(v); });
    case ActivationKind::kSilu:
      if constexpr (!kMath) return false;
      return run([](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE { return g * float_grad::silu(v); });
    case ActivationKind::kGelu:
      if constexpr (!kMath) return false;
      return run([](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE { return g * float_grad::gelu(v); });
    case ActivationKind::kGeluTanh: {
      if constexpr (!kMath) return false;
      const float c = std::sqrt(2.0f / static_cast<float>(3.14159265358979323846));  // as the template's T(2) / T(pi)
      return run([=](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE { return g * float_grad::gelu_tanh(v, c); });
    }
    case ActivationKind::kTanhShrink:
      if constexpr (!kMath) return false;
      return run([](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE { return g * float_grad::tanh_shrink(v); });
    case ActivationKind::kMish:
      if constexpr (!kMath) return false;
      return run([](const Floats& g, const Floats& v) TCONV3D_LAMBDA_INLINE { return g * float_grad::mish(v); });
    default: return false;
  }
}

TCONV3D_INLINE void widen_body(const uint16_t* in, float* out, int64_t count) {
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes) store(out + i, load(in + i));
  for (; i < count; ++i) out[i] = bf16_to_float(in[i]);
}

TCONV3D_INLINE void narrow_body(const float* in, uint16_t* out, int64_t count) {
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes) store(out + i, load(in + i));
  for (; i < count; ++i) out[i] = float_to_bf16(in[i]);
}

// Sum in double over eight interleaved partial sums (a single chain waits on
// the add latency for every value), combined in a fixed order.
TCONV3D_INLINE double sum_floats_body(const float* v, int64_t count) {
  double acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= count; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += double(v[i + j]);
  for (int j = 0; i < count; ++i, ++j) acc[j] += double(v[i]);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// sums[c] = sum over rows r of v[r * channels + c], each channel summed in
// two interleaved row sets (even, odd rows: one chain of adds per channel
// would wait on the add latency when channels are few), combined in a fixed
// order. Row by row, in memory order: going channel group by channel group
// instead read every row a line at a time, 2.0 ms for unet_up_k2s2's 8 MB
// from cold caches. acc: 2 * channels doubles of scratch.
TCONV3D_INLINE void sum_rows_body(const float* v, int64_t rows, int64_t channels, double* sums, double* acc) {
  double* even = acc;
  double* odd = acc + channels;
  std::fill(acc, acc + 2 * channels, 0.0);
  int64_t r = 0;
  for (; r + 2 <= rows; r += 2) {
    const float* a = v + r * channels;
    const float* b = a + channels;
    for (int64_t c = 0; c < channels; ++c) even[c] += double(a[c]);
    for (int64_t c = 0; c < channels; ++c) odd[c] += double(b[c]);
  }
  if (r < rows)
    for (int64_t c = 0; c < channels; ++c) even[c] += double(v[r * channels + c]);
  for (int64_t c = 0; c < channels; ++c) sums[c] = even[c] + odd[c];
}

// The entry points per ISA: the bodies above, compiled for each.
// The entry points per ISA: the bodies above, compiled for each. The float32
// loops stop at AVX2: their AVX-512 build (the same 8-lane vectors, the
// double sums in zmm) made k3s2_same's float32 dz+db pass 10 % slower; the
// bf16 loops gain from AVX-512's narrowing (vpermt2w, masks): 0.385 ->
// 0.335 ms for 1 M relu values.
#define TCONV3D_DZ_FLOAT_ENTRY_POINTS(SUFFIX, TARGET)                                                             \
  TARGET bool dz_float_##SUFFIX(const Activation& act, const float* z, const float* y, const float* dy,           \
                                float* dz, int64_t count) {                                                       \
    return dz_body<kToFloat>(act, z, y, dy, dz, nullptr, count);                                                  \
  }                                                                                                               \
  TARGET double sum_floats_##SUFFIX(const float* v, int64_t count) { return sum_floats_body(v, count); }          \
  TARGET void sum_rows_##SUFFIX(const float* v, int64_t rows, int64_t channels, double* sums, double* acc) {      \
    sum_rows_body(v, rows, channels, sums, acc);                                                                  \
  }
#define TCONV3D_DZ_BF16_ENTRY_POINTS(SUFFIX, TARGET)                                                              \
  TARGET bool dz_bf16_##SUFFIX(const Activation& act, const uint16_t* z, const uint16_t* y, const uint16_t* dy,   \
                               float* dz_float, uint16_t* dz_bf16, int64_t count) {                               \
    if (dz_float) return dz_body<kToFloat | kToBf16>(act, z, y, dy, dz_float, dz_bf16, count);                    \
    return dz_body<kToBf16>(act, z, y, dy, nullptr, dz_bf16, count);                                              \
  }                                                                                                               \
  TARGET void dz_table_##SUFFIX(const uint16_t* x, const uint16_t* dy, const float* table, float* dz_float,      \
                                uint16_t* dz_bf16, int64_t count) {                                               \
    if (dz_float) return map_table<kToFloat | kToBf16>(x, dy, table, dz_float, dz_bf16, count);                   \
    map_table<kToBf16>(x, dy, table, nullptr, dz_bf16, count);                                                    \
  }                                                                                                               \
  TARGET void widen_##SUFFIX(const uint16_t* in, float* out, int64_t count) { widen_body(in, out, count); }       \
  TARGET void narrow_##SUFFIX(const float* in, uint16_t* out, int64_t count) { narrow_body(in, out, count); }

#define TCONV3D_TARGET_AVX2 __attribute__((target("avx2")))
#define TCONV3D_TARGET_AVX512 __attribute__((target("avx2,avx512f,avx512vl,avx512bw,avx512dq")))
TCONV3D_DZ_FLOAT_ENTRY_POINTS(generic, )
TCONV3D_DZ_FLOAT_ENTRY_POINTS(avx2, TCONV3D_TARGET_AVX2)
TCONV3D_DZ_BF16_ENTRY_POINTS(generic, )
TCONV3D_DZ_BF16_ENTRY_POINTS(avx2, TCONV3D_TARGET_AVX2)
TCONV3D_DZ_BF16_ENTRY_POINTS(avx512, TCONV3D_TARGET_AVX512)

#undef TCONV3D_DZ_FLOAT_ENTRY_POINTS
#undef TCONV3D_DZ_BF16_ENTRY_POINTS

#define TCONV3D_DZ_DISPATCH(ISA, NAME, ...)                 \
  switch (ISA) {                                           \
    case DzIsa::kAvx512: return NAME##_avx512(__VA_ARGS__); \
    case DzIsa::kAvx2: return NAME##_avx2(__VA_ARGS__);     \
    case DzIsa::kGeneric: break;                           \
  }                                                        \
  return NAME##_generic(__VA_ARGS__)
#define TCONV3D_DZ_DISPATCH_FLOAT(ISA, NAME, ...)                                      \
  if (ISA != DzIsa::kGeneric) return NAME##_avx2(__VA_ARGS__); /* AVX-512 included */ \
  return NAME##_generic(__VA_ARGS__)

bool run_dz_float(DzIsa isa, const Activation& act, const float* z, const float* y, const float* dy, float* dz,
              int64_t count) {
  TCONV3D_DZ_DISPATCH_FLOAT(isa, dz_float, act, z, y, dy, dz, count);
}

bool run_dz_bf16(DzIsa isa, const Activation& act, const uint16_t* z, const uint16_t* y, const uint16_t* dy,
             float* dz_float, uint16_t* dz_bf16, int64_t count) {
  TCONV3D_DZ_DISPATCH(isa, dz_bf16, act, z, y, dy, dz_float, dz_bf16, count);
}

void run_dz_table(DzIsa isa, const uint16_t* x, const uint16_t* dy, const float* table, float* dz_float,
                  uint16_t* dz_bf16, int64_t count) {
  TCONV3D_DZ_DISPATCH(isa, dz_table, x, dy, table, dz_float, dz_bf16, count);
}

// act' of every bf16 value of its input (z where needs_preactivation, else
// y), computed by the general path's own function, so a lookup is bitwise
// what the general path computes on the widened value. For the activations
// without a loop of their own (exp, erf, tanh, log1p per value: 15 to 85 ns
// a value, against a lookup's 1 or 2). Built once per activation (and
// parameters) in the process, 256 KB each; past kMaxTables, none (nullptr).
constexpr size_t kMaxTables = 32;
struct TableKey {
  ActivationKind kind;
  double alpha, threshold;
  std::optional<double> max_value;
  bool matches(const Activation& act) const {
    return kind == act.kind && alpha == act.alpha && threshold == act.threshold && max_value == act.max_value;
  }
};

const float* derivative_table(const Activation& act) {
  // Each thread remembers the last table it was given (the pass asks once
  // per block): no lock after the first block. Tables are never freed.
  thread_local TableKey last_key{};
  thread_local const float* last = nullptr;
  if (last && last_key.matches(act)) return last;
  struct Entry {
    TableKey key;
    std::unique_ptr<float[]> table;
  };
  static std::mutex mutex;
  static std::vector<Entry> entries;
  std::lock_guard<std::mutex> lock(mutex);
  const float* found = nullptr;
  for (const Entry& e : entries)
    if (e.key.matches(act)) found = e.table.get();
  if (!found) {
    if (entries.size() >= kMaxTables) return nullptr;
    std::unique_ptr<float[]> table(new float[65536]);
    const bool from_z = needs_preactivation(act);
    for (uint32_t b = 0; b < 65536; ++b) {
      const float x = bf16_to_float(static_cast<uint16_t>(b));
      table[b] = from_z ? activation_derivative(act, x) : activation_derivative_from_output(act, x);
    }
    found = table.get();
    entries.push_back(Entry{TableKey{act.kind, act.alpha, act.threshold, act.max_value}, std::move(table)});
  }
  last_key = TableKey{act.kind, act.alpha, act.threshold, act.max_value};
  last = found;
  return found;
}

void sum_rows_run(DzIsa isa, const float* v, int64_t rows, int64_t channels, double* sums, double* acc) {
  TCONV3D_DZ_DISPATCH_FLOAT(isa, sum_rows, v, rows, channels, sums, acc);
}

}  // namespace

DzIsa dz_isa() {
  const CpuFeatures f = cpu_features();
  return f.avx512 ? DzIsa::kAvx512 : (f.avx2_fma ? DzIsa::kAvx2 : DzIsa::kGeneric);
}

bool has_dz_loop(const Activation& act) {
  return dz_body<kToFloat, float>(act, nullptr, nullptr, nullptr, nullptr, nullptr, 0);
}

bool has_dz_bf16_loop(const Activation& act) {
  return dz_body<kToBf16, uint16_t>(act, nullptr, nullptr, nullptr, nullptr, nullptr, 0);
}

void elementwise_dz(DzIsa isa, const Activation& act, const float* z, const float* y, const float* dy, float* dz,
                    int64_t count) {
  if (!run_dz_float(isa, act, z, y, dy, dz, count)) activation_gradient_rows(act, z, y, dy, dz, 1, count);
}

void elementwise_dz_bf16(DzIsa isa, const Activation& act, const uint16_t* z, const uint16_t* y,
                         const uint16_t* dy, float* dz_float, uint16_t* dz_bf16, int64_t count) {
  if (run_dz_bf16(isa, act, z, y, dy, dz_float, dz_bf16, count)) return;
  const bool with_z = needs_preactivation(act), with_y = needs_output(act);
  if (const float* table = derivative_table(act))
    return run_dz_table(isa, with_z ? z : y, dy, table, dz_float, dz_bf16, count);
  // The general path on float32 copies, a chunk (in L1) at a time.
  constexpr int64_t kChunk = 512;
  float zf[kChunk], yf[kChunk], gf[kChunk], df[kChunk];
  for (int64_t i = 0; i < count; i += kChunk) {
    const int64_t n = std::min(kChunk, count - i);
    if (with_z) widen_bf16(isa, z + i, zf, n);
    if (with_y) widen_bf16(isa, y + i, yf, n);
    widen_bf16(isa, dy + i, gf, n);
    float* out = dz_float ? dz_float + i : df;
    activation_gradient_rows(act, with_z ? zf : nullptr, with_y ? yf : nullptr, gf, out, 1, n);
    narrow_bf16(isa, out, dz_bf16 + i, n);
  }
}

void widen_bf16(DzIsa isa, const uint16_t* in, float* out, int64_t count) {
  TCONV3D_DZ_DISPATCH(isa, widen, in, out, count);
}

void narrow_bf16(DzIsa isa, const float* in, uint16_t* out, int64_t count) {
  TCONV3D_DZ_DISPATCH(isa, narrow, in, out, count);
}

double sum_floats(DzIsa isa, const float* v, int64_t count) { TCONV3D_DZ_DISPATCH_FLOAT(isa, sum_floats, v, count); }

// Fewer channels than a vector of eight, dividing it (a 4-filter head): the
// rows taken 8 / channels at a time as rows of eight values, lane j holding
// channel j % channels; then the rows left over.
void sum_rows(DzIsa isa, const float* v, int64_t rows, int64_t channels, double* sums) {
  std::vector<double> acc(static_cast<size_t>(2 * std::max<int64_t>(channels, 8)));
  if (channels >= 8 || 8 % channels != 0) return sum_rows_run(isa, v, rows, channels, sums, acc.data());
  const int64_t group = 8 / channels, grouped = rows / group;
  double lanes[8];
  sum_rows_run(isa, v, grouped, 8, lanes, acc.data());
  for (int64_t c = 0; c < channels; ++c) {
    double sum = 0.0;
    for (int64_t k = 0; k < group; ++k) sum += lanes[k * channels + c];
    for (int64_t r = grouped * group; r < rows; ++r) sum += double(v[r * channels + c]);
    sums[c] = sum;
  }
}

}  // namespace tconv3d
