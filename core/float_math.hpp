// Elementary functions for the float32 activation derivatives (exp, expm1,
// log1p, tanh, erf), written once for a scalar float and for a GCC vector of
// eight floats, with the same operations per value in both: the general
// per-value path (activation_derivative<float>) and the vectorized dz loops
// (runtime/dz_loops.cc) call these and get bitwise the same results, which
// libm's scalar expf / erff / tanhf would not give a vector loop.
//
// Each works in double on the float input and rounds once to float: the
// polynomials below are accurate to about 1e-11 relative in double, so the
// float result is the correctly rounded one but for ties within that error
// (at most 1 ulp off; tests/float_math_test.cc measures the ulp error against
// libm's double functions over a dense sweep of the float range). Like libm:
// NaN in, NaN out; ±0 keep their sign where the function is odd; overflow
// gives ±inf and underflow ±0 or a subnormal (the rounding to float does both).
//
// Only +, -, *, /, comparisons, selects and bit operations: IEEE-exact on
// every instruction set, so the results do not depend on which one runs, as
// long as no product is fused into an FMA (ISO C++ mode, as the project
// builds, does not contract; dz_loops.cc also turns contraction off).
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

// Vectors pass by value between these always-inlined helpers only, so the
// generic target's ABI for 32-byte vectors (GCC's -Wpsabi note) never applies.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

namespace tconv3d::float_math {

// Eight floats, and their halves widened to double.
typedef float Floats8 __attribute__((vector_size(32)));
typedef float Floats4 __attribute__((vector_size(16)));
typedef double Doubles4 __attribute__((vector_size(32)));
typedef int64_t Int64s4 __attribute__((vector_size(32)));
typedef int32_t Ints8 __attribute__((vector_size(32)));

// Everything here is inlined into its caller, so the dz loops' AVX2 entry
// points compile it for AVX2 (a function left out of line keeps the generic
// target's code).
#define TCONV3D_MATH_INLINE inline __attribute__((always_inline))

namespace detail {

// The lane helpers, for a scalar (double / float) or a vector of them.
template <class D>
struct Lanes {
  using Int = std::remove_cv_t<std::remove_reference_t<decltype(D{} < D{})>>;  // a vector compare's mask
};
template <>
struct Lanes<double> {
  using Int = int64_t;
};
template <>
struct Lanes<float> {
  using Int = int32_t;
};

template <class D>
TCONV3D_MATH_INLINE D splat(double c) {
  if constexpr (std::is_same_v<D, double> || std::is_same_v<D, float>)
    return static_cast<D>(c);
  else
    return D{} + static_cast<std::remove_reference_t<decltype(D{}[0])>>(c);
}

TCONV3D_MATH_INLINE double pick(bool mask, double a, double b) { return mask ? a : b; }
TCONV3D_MATH_INLINE float pick(bool mask, float a, float b) { return mask ? a : b; }
template <class M, class D>
TCONV3D_MATH_INLINE D pick(M mask, D a, D b) {
  return mask ? a : b;
}

template <class D>
TCONV3D_MATH_INLINE typename Lanes<D>::Int to_bits(D v) {
  typename Lanes<D>::Int i;
  std::memcpy(&i, &v, sizeof v);
  return i;
}
template <class D>
TCONV3D_MATH_INLINE D from_bits(typename Lanes<D>::Int i) {
  D v;
  std::memcpy(&v, &i, sizeof v);
  return v;
}
template <class D>
TCONV3D_MATH_INLINE D to_double(typename Lanes<D>::Int i) {
  if constexpr (std::is_same_v<D, double>)
    return static_cast<double>(i);
  else
    return __builtin_convertvector(i, D);
}

template <class D>
TCONV3D_MATH_INLINE D magnitude(D x) {
  return pick(x < 0.0, -x, x);  // -0 stays -0: only used where the sign does not matter
}

// Clamp to [low, high]; NaN stays NaN (both compares are false).
template <class D>
TCONV3D_MATH_INLINE D clamp(D x, double low, double high) {
  x = pick(x > high, splat<D>(high), x);
  return pick(x < low, splat<D>(low), x);
}

// x = n ln2 + r with |r| <= ln2 / 2 (|x| <= 200: n fits the double exponent
// with room); returns expm1(r) by its Taylor series (degree 9: error under
// 1e-11 relative for |r| <= 0.35) and sets scale = 2^n.
template <class D>
TCONV3D_MATH_INLINE D exp_reduced(D x, D& scale) {
  const double round_magic = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer
  const D shifted = x * 1.4426950408889634 + round_magic;
  const D n = shifted - round_magic;
  // ln2 in two parts (Cody and Waite): n * hi is exact for |n| < 2^20.
  const D r = (x - n * 0.693147180369123816490) - n * 1.90821492927058770002e-10;
  // The low bits of `shifted` hold n; add the exponent bias and move it up.
  scale = from_bits<D>((to_bits(shifted) + 1023) << 52);
  D p = splat<D>(1.0 / 362880.0);
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  return p * r;
}

// e^x in double for any x (0 below -200 and inf above 200: far past
// float's range).
template <class D>
TCONV3D_MATH_INLINE D exp_d(D x) {
  D scale;
  const D q = exp_reduced(clamp(x, -200.0, 200.0), scale);
  const D out = pick(x < -200.0, splat<D>(0.0), scale * (q + 1.0));  // e^-inf = 0, as libm
  return pick(x > 200.0, splat<D>(std::numeric_limits<double>::infinity()), out);
}

// e^x - 1: 2^n expm1(r) + (2^n - 1), exact in r when n = 0 (|x| < ln2 / 2).
template <class D>
TCONV3D_MATH_INLINE D expm1_d(D x) {
  D scale;
  const D q = exp_reduced(clamp(x, -200.0, 200.0), scale);
  return pick(x == 0.0, x, scale * q + (scale - 1.0));  // ±0 kept
}

// log(v) for a finite, normal v > 0: v = 2^e m with m in [sqrt(1/2), sqrt(2)),
// log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.172 (series to s^13:
// error under 2e-12 relative).
template <class D>
TCONV3D_MATH_INLINE D log_positive_d(D v) {
  using Int = typename Lanes<D>::Int;
  const Int bits = to_bits(v);
  const Int offset = bits - 0x3FE6A09E667F3BCDLL;  // bits of sqrt(1/2)
  const Int e = offset >> 52;                      // arithmetic: floor
  const D m = from_bits<D>(bits - (e << 52));
  const D s = (m - 1.0) / (m + 1.0);
  const D s2 = s * s;
  D p = splat<D>(2.0 / 13.0);
  p = p * s2 + 2.0 / 11.0;
  p = p * s2 + 2.0 / 9.0;
  p = p * s2 + 2.0 / 7.0;
  p = p * s2 + 2.0 / 5.0;
  p = p * s2 + 2.0 / 3.0;
  p = p * s2 + 2.0;
  return to_double<D>(e) * 0.6931471805599453 + s * p;
}

// log(1 + u) for u a float value (widened): 1 + u is exact in double for
// 2^-29 <= |u| <= 2^29, and rounds harmlessly above; below, u - u^2 / 2.
template <class D>
TCONV3D_MATH_INLINE D log1p_d(D u) {
  const double inf = std::numeric_limits<double>::infinity();
  const D v = u + 1.0;
  D out = log_positive_d(pick(v > 0.0, v, splat<D>(1.0)));  // away from v <= 0: no garbage bits
  out = pick(v == inf, splat<D>(inf), out);
  out = pick(v == 0.0, splat<D>(-inf), out);
  out = pick(v < 0.0, splat<D>(std::numeric_limits<double>::quiet_NaN()), out);
  out = pick(magnitude(u) < 0x1p-29, u - u * u * 0.5, out);  // ±0 kept
  return pick(u != u, u, out);                                  // NaN
}

// tanh x = expm1(2x) / (expm1(2x) + 2); |x| > 20 is ±1 in float (and in
// double to 1e-17).
template <class D>
TCONV3D_MATH_INLINE D tanh_d(D x) {
  const D e = expm1_d(clamp(x, -20.0, 20.0) * 2.0);
  return e / (e + 2.0);
}

// erf x for |x| < 0.75: x times its Taylor series in x^2 (to x^21: error
// under 1e-11 relative).
template <class D>
TCONV3D_MATH_INLINE D erf_taylor_d(D x) {
  const D x2 = x * x;
  // (-1)^n / (n! (2n + 1)), n = 10 down to 0.
  static constexpr double kTaylor[11] = {
      1.0 / (3628800.0 * 21.0),      -1.0 / (362880.0 * 19.0),   1.0 / (40320.0 * 17.0),
      -1.0 / (5040.0 * 15.0),        1.0 / (720.0 * 13.0),       -1.0 / (120.0 * 11.0),
      1.0 / (24.0 * 9.0),            -1.0 / (6.0 * 7.0),         1.0 / (2.0 * 5.0),
      -1.0 / 3.0,                    1.0};
  D taylor = splat<D>(kTaylor[0]);
  for (int i = 1; i < 11; ++i) taylor = taylor * x2 + kTaylor[i];
  return x * taylor * 1.1283791670955126;  // 2 / sqrt(pi)
}

// g(a) = erfc(a) e^{a^2} for a = |x| clamped to [0.75, 4]: a degree-17
// polynomial in t = (a - 2.375) / 1.625 (Chebyshev fit of double erfc on
// [0.75, 4], rewritten in powers of t: error 1e-11 relative).
template <class D>
TCONV3D_MATH_INLINE D erfc_scaled_d(D x) {
  const D a = clamp(magnitude(x), 0.75, 4.0);
  const D t = (a - 2.375) * (1.0 / 1.625);
  static constexpr double kErfcScaled[18] = {
      -5.363925971687063e-07, 1.4320331720502065e-06, -1.4722785438771203e-06, 3.910300831668566e-06,
      -1.4173260459549766e-05, 3.5290331886078904e-05, -8.226809526210222e-05, 0.0001967985353746678,
      -0.00046137956635097, 0.0010487278951636023, -0.0023182075127987493, 0.004976269672316239,
      -0.010345814785697523, 0.02077438976067729, -0.04015740961346595, 0.07442604322176066,
      -0.13158783482858474, 0.2205056922063651};
  D g = splat<D>(kErfcScaled[0]);
  for (int i = 1; i < 18; ++i) g = g * t + kErfcScaled[i];
  return g;
}

// erf x: the Taylor series below 0.75 in |x|; up to 4, 1 - e^{-x^2} g(|x|);
// past 4, erfc x < 1.6e-8 and the float result is ±1 (g taken at 4).
template <class D>
TCONV3D_MATH_INLINE D erf_d(D x) {
  const D a = clamp(magnitude(x), 0.75, 4.0);
  const D tail = 1.0 - exp_d(-(a * a)) * erfc_scaled_d(x);
  const D signed_tail = pick(x < 0.0, -tail, tail);
  return pick(magnitude(x) < 0.75, erf_taylor_d(x), signed_tail);  // NaN: the tail's NaN
}

#define TCONV3D_MATH_OP(NAME, FN)                \
  struct NAME {                                  \
    template <class D>                           \
    static TCONV3D_MATH_INLINE D apply(D x) {    \
      return FN(x);                              \
    }                                            \
  };
TCONV3D_MATH_OP(ExpOp, exp_d)
TCONV3D_MATH_OP(Expm1Op, expm1_d)
TCONV3D_MATH_OP(Log1pOp, log1p_d)
TCONV3D_MATH_OP(TanhOp, tanh_d)
TCONV3D_MATH_OP(ErfOp, erf_d)
#undef TCONV3D_MATH_OP

}  // namespace detail

// A float function through its double one, Op::apply (a static member
// template over double or Doubles4): per value for a float, per half (four
// doubles) for eight floats; one rounding to float at the end.
template <class Op, class F>
TCONV3D_MATH_INLINE F through_double(F x) {
  if constexpr (std::is_same_v<F, float>) {
    return static_cast<float>(Op::apply(static_cast<double>(x)));
  } else {
    static_assert(std::is_same_v<F, Floats8>, "float or Floats8");
    const Floats4 lo = __builtin_shufflevector(x, x, 0, 1, 2, 3), hi = __builtin_shufflevector(x, x, 4, 5, 6, 7);
    const Floats4 out_lo = __builtin_convertvector(Op::apply(__builtin_convertvector(lo, Doubles4)), Floats4);
    const Floats4 out_hi = __builtin_convertvector(Op::apply(__builtin_convertvector(hi, Doubles4)), Floats4);
    return __builtin_shufflevector(out_lo, out_hi, 0, 1, 2, 3, 4, 5, 6, 7);
  }
}

// The float functions (F: float or Floats8).
template <class F>
TCONV3D_MATH_INLINE F exp(F x) { return through_double<detail::ExpOp>(x); }
template <class F>
TCONV3D_MATH_INLINE F expm1(F x) { return through_double<detail::Expm1Op>(x); }
template <class F>
TCONV3D_MATH_INLINE F log1p(F x) { return through_double<detail::Log1pOp>(x); }
template <class F>
TCONV3D_MATH_INLINE F tanh(F x) { return through_double<detail::TanhOp>(x); }
template <class F>
TCONV3D_MATH_INLINE F erf(F x) { return through_double<detail::ErfOp>(x); }

}  // namespace tconv3d::float_math

#pragma GCC diagnostic pop
