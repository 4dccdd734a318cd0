// core/float_math.hpp's functions against libm's double ones: the largest
// error in float ulps over a dense sweep of every float bit pattern (a
// stride through all 2^32, both signs, subnormals, the extremes) plus the
// specials; the float and eight-lane versions bitwise equal; and the float32
// activation derivatives built on them (core/activation_gradient.hpp's
// float_grad) close to the double reference.
// Floats8 by value between this file's helpers (inlined or not): one ABI
// throughout, so GCC's -Wpsabi note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

#include "core/float_math.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/activation_gradient.hpp"
#include "tconv3d/config.hpp"
#include "tests/test_support.hpp"

namespace tconv3d {
namespace {

namespace fm = float_math;

using testing::bits_of;
using testing::from_bits;

// The size of a float ulp at the exact value `want` (the subnormal ulp below
// FLT_MIN; FLT_MAX's above it).
double ulp_at(double want) {
  const double a = std::min(std::abs(want), double(std::numeric_limits<float>::max()));
  if (a < double(std::numeric_limits<float>::min())) return std::ldexp(1.0, -149);
  int exponent;
  std::frexp(a, &exponent);
  return std::ldexp(1.0, exponent - 24);
}

// Every float bit pattern at this stride (prime: it visits every exponent and
// many mantissas of each), then the specials and the range edges.
std::vector<float> sweep_values() {
  std::vector<float> out;
  for (uint64_t b = 0; b < (uint64_t(1) << 32); b += 4099) out.push_back(from_bits(static_cast<uint32_t>(b)));
  const float specials[] = {0.0f, -0.0f, std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::denorm_min(),
                            -std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::min(),
                            std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(), 88.72283f,
                            88.72284f, -87.33654f, -103.97208f, -103.97209f, -1.0f, -0.99999994f, 0.75f, -0.75f,
                            4.0f, -4.0f, 20.0f, 0.34657359f, -0.34657359f, 1e-10f, -1e-10f};
  out.insert(out.end(), std::begin(specials), std::end(specials));
  // A dense run where the functions bend (1e-3 < |x| < 8): every 61st pattern.
  for (uint32_t b = bits_of(1e-3f); b < bits_of(8.0f); b += 61) {
    out.push_back(from_bits(b));
    out.push_back(-from_bits(b));
  }
  return out;
}

struct Result {
  double worst_ulp = 0.0;
  float worst_at = 0.0f;
  std::vector<std::string> failures;  // wrong class of value (NaN, inf, zero sign) or lanes differing
};

template <class Fn, class Ref>
Result measure(const Fn& fn, const Ref& ref, bool odd) {
  Result r;
  for (float x : sweep_values()) {
    const float got = fn(x);
    const double want = ref(double(x));
    // The eight-lane version, x in a different lane each time, agrees bit for bit.
    fm::Floats8 v = {0.5f, -2.0f, 1e-3f, 30.0f, -0.0f, 7.0f, -100.0f, 1.0f};
    const int lane = static_cast<int>(bits_of(x) % 8);
    v[lane] = x;
    const float got_lane = fn(v)[lane];
    if (bits_of(got_lane) != bits_of(got) && !(std::isnan(got) && std::isnan(got_lane)))
      r.failures.push_back("lanes differ at " + std::to_string(x));
    if (std::isnan(want) || std::isnan(got)) {
      if (std::isnan(want) != std::isnan(got)) r.failures.push_back("NaN mismatch at " + std::to_string(x));
      continue;
    }
    const float rounded = static_cast<float>(want);
    if (std::isinf(rounded) || std::isinf(got)) {
      if (rounded != got) r.failures.push_back("inf mismatch at " + std::to_string(x) + ": " + std::to_string(got));
      continue;
    }
    if (odd && want == 0.0 && std::signbit(got) != std::signbit(want))
      r.failures.push_back("sign of zero at " + std::to_string(x));
    const double err = std::abs(double(got) - want) / ulp_at(want);
    if (err > r.worst_ulp) r.worst_ulp = err, r.worst_at = x;
  }
  return r;
}

// Rounding the double result to float alone costs 0.5 ulp; the polynomials
// add about 1e-11 relative, so a correct implementation stays within a hair
// of 0.5. 1 ulp leaves room; a broken coefficient or range reduction gives
// far more.
constexpr double kMaxUlp = 1.0;

void check(const char* name, const Result& r) {
  EXPECT_LE(r.worst_ulp, kMaxUlp) << name << " at " << r.worst_at;
  EXPECT_TRUE(r.failures.empty()) << name << ": " << r.failures.size() << " failures, first: " << r.failures[0];
  std::printf("%-6s max error %.4f ulp (at %a)\n", name, r.worst_ulp, double(r.worst_at));
}

TEST(FloatMath, Exp) {
  check("exp", measure([](auto x) { return fm::exp(x); }, [](double x) { return std::exp(x); }, false));
}
TEST(FloatMath, Expm1) {
  check("expm1", measure([](auto x) { return fm::expm1(x); }, [](double x) { return std::expm1(x); }, true));
}
TEST(FloatMath, Log1p) {
  check("log1p", measure([](auto x) { return fm::log1p(x); }, [](double x) { return std::log1p(x); }, true));
}
TEST(FloatMath, Tanh) {
  check("tanh", measure([](auto x) { return fm::tanh(x); }, [](double x) { return std::tanh(x); }, true));
}
TEST(FloatMath, Erf) {
  check("erf", measure([](auto x) { return fm::erf(x); }, [](double x) { return std::erf(x); }, true));
}

TEST(FloatMath, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(fm::exp(-inf), 0.0f);
  EXPECT_EQ(fm::exp(inf), inf);
  EXPECT_EQ(fm::exp(89.0f), inf);          // overflow
  EXPECT_EQ(fm::exp(-104.0f), 0.0f);       // underflow
  EXPECT_GT(fm::exp(-100.0f), 0.0f);       // a subnormal, as expf
  EXPECT_EQ(fm::expm1(-inf), -1.0f);
  EXPECT_EQ(fm::log1p(-1.0f), -inf);
  EXPECT_TRUE(std::isnan(fm::log1p(-2.0f)));
  EXPECT_EQ(fm::log1p(inf), inf);
  EXPECT_EQ(fm::tanh(inf), 1.0f);
  EXPECT_EQ(fm::tanh(-inf), -1.0f);
  EXPECT_EQ(fm::erf(inf), 1.0f);
  EXPECT_EQ(fm::erf(-inf), -1.0f);
  for (float x : {-0.0f, 0.0f}) {
    EXPECT_EQ(bits_of(fm::expm1(x)), bits_of(x));
    EXPECT_EQ(bits_of(fm::log1p(x)), bits_of(x));
    EXPECT_EQ(bits_of(fm::tanh(x)), bits_of(x));
    EXPECT_EQ(bits_of(fm::erf(x)), bits_of(x));
    EXPECT_EQ(fm::exp(x), 1.0f);
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (float v : {fm::exp(nan), fm::expm1(nan), fm::log1p(nan), fm::tanh(nan), fm::erf(nan)}) EXPECT_TRUE(std::isnan(v));
}

// The float32 derivatives on these functions against the double reference
// (libm), over [-12, 12] densely: within a few float ulps of the value's
// scale (the float formulas' own cancellations, silu' near -1.28 and
// gelu_tanh's 1 + tanh below -3, hence the absolute floor).
TEST(FloatMath, DerivativesMatchDoubleReference) {
  for (ActivationKind kind : {ActivationKind::kGelu, ActivationKind::kGeluTanh, ActivationKind::kSilu,
                              ActivationKind::kSoftplus, ActivationKind::kMish, ActivationKind::kLogSigmoid,
                              ActivationKind::kTanhShrink, ActivationKind::kElu, ActivationKind::kCelu}) {
    Activation act;
    act.kind = kind;
    act.alpha = kind == ActivationKind::kCelu ? -1.5 : -0.5;  // z-based elu / celu
    double worst = 0.0;
    for (int i = -120000; i <= 120000; ++i) {
      const float x = static_cast<float>(i) * 1e-4f;
      const double want = activation_derivative<double>(act, double(x));
      const double got = activation_derivative<float>(act, x);
      worst = std::max(worst, std::abs(got - want) / std::max(1.0, std::abs(want)));
    }
    EXPECT_LT(worst, 1e-6) << "kind " << static_cast<int>(kind);
  }
}

}  // namespace
}  // namespace tconv3d

namespace tconv3d {
namespace {

// mish' and gelu' are computed in double and rounded once (float_grad's
// MishOp, GeluOp): mish' within 0.5 ulp of the value, gelu' within 2 (1.94
// where its erfc switches to the asymptotic series, x = -5.66; bound 2.5), far
// tails included
// (gelu' against Phi from erfc: the double 1 + erf of the reference template
// loses Phi below -5). A broken tail (erfc's scaling clamped instead of its
// asymptotic series) is 1e5 ulp off near -11.
double ulp_error(float got, double want) {
  const double ulp = std::abs(want) < double(std::numeric_limits<float>::min())
                         ? std::ldexp(1.0, -149)
                         : std::ldexp(1.0, std::ilogb(std::abs(want)) - 23);
  return std::abs(double(got) - want) / ulp;
}

TEST(FloatMath, MishAndGeluDerivativesWithinAFewUlp) {
  Activation gelu, mish;
  gelu.kind = ActivationKind::kGelu;
  mish.kind = ActivationKind::kMish;
  double worst_gelu = 0.0, worst_mish = 0.0;
  for (int i = -300000; i <= 300000; ++i) {
    const float x = static_cast<float>(i) * 1e-4f;
    const double xd = x;
    const double gelu_want = 0.5 * std::erfc(-xd / std::sqrt(2.0)) + xd * 0.3989422804014327 * std::exp(-0.5 * xd * xd);
    if (gelu_want != 0.0) worst_gelu = std::max(worst_gelu, ulp_error(activation_derivative<float>(gelu, x), gelu_want));
    if (std::abs(x) <= 20.0f)
      worst_mish = std::max(worst_mish, ulp_error(activation_derivative<float>(mish, x), activation_derivative<double>(mish, xd)));
  }
  std::printf("gelu' max error %.3f ulp, mish' %.3f ulp\n", worst_gelu, worst_mish);
  EXPECT_LE(worst_gelu, 2.5);
  EXPECT_LE(worst_mish, 1.0);
}

}  // namespace
}  // namespace tconv3d
