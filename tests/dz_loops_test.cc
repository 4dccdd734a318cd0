// The dz pass's loops (runtime/dz_loops.hpp) against the general per-value
// path (activation_gradient_rows) and the scalar bf16 conversions, bit for
// bit, on every instruction set this CPU runs, with special values (±0,
// denormals, NaN, ±Inf, huge magnitudes, the activations' kinks) and lengths
// off the vector width; then the bf16 dz pass (preactivation_gradient_bf16)
// against widen -> general path -> narrow, and its db for any thread count.
#include "runtime/dz_loops.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/activation_gradient.hpp"
#include "core/cpu_features.hpp"
#include "runtime/preactivation_gradient_bf16.hpp"
#include "tconv3d/bfloat16.hpp"
#include "tconv3d/config.hpp"
#include "tests/test_support.hpp"

namespace tconv3d {
namespace {

std::vector<DzIsa> isas() {
  std::vector<DzIsa> out{DzIsa::kGeneric};
  if (detected_cpu_features().avx2_fma) out.push_back(DzIsa::kAvx2);
  if (detected_cpu_features().avx512) out.push_back(DzIsa::kAvx512);
  return out;
}

const char* isa_name(DzIsa isa) {
  return isa == DzIsa::kAvx512 ? "avx512" : (isa == DzIsa::kAvx2 ? "avx2" : "generic");
}

using testing::bits_of;
using testing::from_bits;

// Values where the derivatives have kinks or edge cases, and IEEE specials.
const std::vector<float>& special_values() {
  static const std::vector<float> values = {
      0.0f, -0.0f, 1e-40f, -1e-40f, std::numeric_limits<float>::min(), -std::numeric_limits<float>::min(),
      std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
      from_bits(0x7F800001u),  // a signaling NaN
      std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(), 1e30f, -1e30f,
      std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(), 1.0f, -1.0f, 0.5f, -0.5f, 2.0f,
      -2.0f, 3.0f, -3.0f, 6.0f, -6.0f, 0.2f, 2.5f, -2.5f, 1.0f / 6.0f, 0.3f, -0.3f, 1.5f};
  return values;
}

// A mix: mostly uniform in [-8, 8], a fifth special values, a few huge.
std::vector<float> mixed_values(int64_t count, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> uniform(-8.0f, 8.0f), huge(-1e20f, 1e20f);
  std::uniform_int_distribution<int> kind(0, 9);
  std::uniform_int_distribution<size_t> pick(0, special_values().size() - 1);
  std::vector<float> v(static_cast<size_t>(count));
  for (float& x : v) {
    const int k = kind(rng);
    x = k < 2 ? special_values()[pick(rng)] : (k == 2 ? huge(rng) : uniform(rng));
  }
  return v;
}

// Equal bits; two NaNs count as equal (which NaN a product of two NaNs
// keeps depends on the order of the operands, which the compiler may swap).
bool same_value(float a, float b) { return bits_of(a) == bits_of(b) || (std::isnan(a) && std::isnan(b)); }

Activation make(ActivationKind kind, double alpha = 0.0, std::optional<double> max_value = {},
                double threshold = 0.0) {
  Activation a;
  a.kind = kind;
  a.alpha = alpha;
  a.max_value = max_value;
  a.threshold = threshold;
  a.name = "test";
  return a;
}

// Every elementwise activation, with the parameters that change its path
// (from y or z, a loop of its own or the general one).
std::vector<Activation> elementwise_activations() {
  std::vector<Activation> out;
  for (int k = static_cast<int>(ActivationKind::kLinear); k <= static_cast<int>(ActivationKind::kMish); ++k) {
    const auto kind = static_cast<ActivationKind>(k);
    for (double alpha : {0.0, 0.3, 1.0, -0.4}) out.push_back(make(kind, alpha));
  }
  out.push_back(make(ActivationKind::kRelu, 0.0, 6.0));
  out.push_back(make(ActivationKind::kRelu, 0.0, 2.5));
  out.push_back(make(ActivationKind::kRelu, 0.1, 2.5, 0.5));
  out.push_back(make(ActivationKind::kRelu, 0.0, {}, 0.5));
  out.push_back(make(ActivationKind::kRelu, 0.2, 6.0));
  out.push_back(make(ActivationKind::kRelu, 0.2, {}, -0.5));
  out.push_back(make(ActivationKind::kRelu, 0.0, 6.0, 2.0));
  out.push_back(make(ActivationKind::kRelu, 0.0, 1.0, -1.0));
  return out;
}

std::string describe(const Activation& a) {
  return "kind " + std::to_string(static_cast<int>(a.kind)) + " alpha " + std::to_string(a.alpha) +
         (a.max_value ? " max " + std::to_string(*a.max_value) : "") + " threshold " + std::to_string(a.threshold);
}

const int64_t kLengths[] = {0, 1, 7, 8, 9, 15, 16, 17, 31, 100, 1001, 1537};

TEST(DzLoops, CommonActivationsHaveLoops) {
  // The activations the backward's layers use most take the fast loops; a
  // change that sends one back to the general path fails here.
  for (const Activation& a :
       {make(ActivationKind::kRelu), make(ActivationKind::kRelu, 0.2), make(ActivationKind::kLeakyRelu, 0.2),
        make(ActivationKind::kRelu6), make(ActivationKind::kElu, 1.0), make(ActivationKind::kCelu, 1.0),
        make(ActivationKind::kSelu), make(ActivationKind::kSoftsign), make(ActivationKind::kSquareplus, 4.0),
        make(ActivationKind::kSoftShrink, 0.5), make(ActivationKind::kHardShrink, 0.5),
        make(ActivationKind::kTanh), make(ActivationKind::kSigmoid), make(ActivationKind::kHardSigmoid),
        make(ActivationKind::kHardSigmoidTfKeras2), make(ActivationKind::kSparseSigmoid),
        make(ActivationKind::kHardSilu), make(ActivationKind::kHardTanh), make(ActivationKind::kExponential),
        make(ActivationKind::kLinear), make(ActivationKind::kRelu, 0.0, 2.5), make(ActivationKind::kRelu, 0.0, 6.0),
        make(ActivationKind::kRelu, 0.1, 2.5, 0.5), make(ActivationKind::kSquareplus, -1.0),
        make(ActivationKind::kSoftShrink, -0.5), make(ActivationKind::kHardShrink, -0.5),
        make(ActivationKind::kSparsePlus)})
    EXPECT_TRUE(has_dz_loop(a)) << describe(a);
  // Those on exp, expm1, log1p, tanh or erf per value (core/float_math.hpp)
  // too, in float32; the bf16 pass looks them up in a table instead.
  for (const Activation& a :
       {make(ActivationKind::kGelu), make(ActivationKind::kGeluTanh), make(ActivationKind::kSilu),
        make(ActivationKind::kSoftplus), make(ActivationKind::kMish), make(ActivationKind::kLogSigmoid),
        make(ActivationKind::kTanhShrink), make(ActivationKind::kElu, -0.5), make(ActivationKind::kCelu, -1.0)})
    EXPECT_TRUE(has_dz_loop(a)) << describe(a);
}

TEST(DzLoops, Float32LoopsAreBitwiseTheGeneralPath) {
  std::mt19937_64 rng(21);
  int mismatches = 0;
  for (const Activation& act : elementwise_activations()) {
    for (int64_t n : kLengths) {
      const std::vector<float> z = mixed_values(n, rng), y = mixed_values(n, rng), dy = mixed_values(n, rng);
      std::vector<float> want(static_cast<size_t>(n));
      activation_gradient_rows(act, z.data(), y.data(), dy.data(), want.data(), 1, n);
      for (DzIsa isa : isas()) {
        std::vector<float> got(static_cast<size_t>(n) + 1, -7.0f);  // one past: untouched
        elementwise_dz(isa, act, z.data(), y.data(), dy.data(), got.data(), n);
        for (int64_t i = 0; i < n; ++i) {
          if (same_value(got[i], want[i])) continue;
          if (++mismatches <= 20)
            ADD_FAILURE() << describe(act) << " " << isa_name(isa) << " n " << n << " at " << i << ": z " << z[i]
                          << " y " << y[i] << " dy " << dy[i] << " got " << got[i] << " want " << want[i];
        }
        EXPECT_EQ(got[n], -7.0f) << describe(act) << " wrote past the end";
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(DzLoops, NarrowAndWidenAreTheScalarConversions) {
  for (DzIsa isa : isas()) {
    SCOPED_TRACE(isa_name(isa));
    // Every bf16 value widens exactly.
    std::vector<uint16_t> all(65536);
    for (uint32_t b = 0; b < 65536; ++b) all[b] = static_cast<uint16_t>(b);
    std::vector<float> wide(all.size());
    widen_bf16(isa, all.data(), wide.data(), 65536);
    for (uint32_t b = 0; b < 65536; ++b) ASSERT_EQ(bits_of(wide[b]), b << 16) << b;
    // Random bit patterns (every class: NaNs signaling and quiet, denormals,
    // Inf) plus ties and the edges of rounding, narrowed at odd lengths.
    std::mt19937_64 rng(22);
    std::vector<float> values;
    for (uint32_t bits : {0x3F808000u, 0x3F818000u, 0x3F808001u, 0x3F817FFFu, 0x7F7FFFFFu, 0x7F7F8000u,
                          0xFF7F8000u, 0x7F800001u, 0xFF800001u, 0x7FC00000u, 0xFFFFFFFFu, 0x7F800000u,
                          0xFF800000u, 0x00008000u, 0x80018000u, 0x0000FFFFu, 0x00000000u, 0x80000000u})
      values.push_back(from_bits(bits));
    for (int i = 0; i < 100000; ++i) values.push_back(from_bits(static_cast<uint32_t>(rng())));
    for (int64_t n : {int64_t(values.size()), int64_t(13), int64_t(8), int64_t(3)}) {
      std::vector<uint16_t> got(static_cast<size_t>(n) + 1, 0xABCDu);
      narrow_bf16(isa, values.data(), got.data(), n);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(got[i], float_to_bf16(values[i])) << std::hex << bits_of(values[i]) << " at " << std::dec << i;
      EXPECT_EQ(got[n], 0xABCDu);
    }
  }
}

std::vector<uint16_t> random_bf16(int64_t n, std::mt19937_64& rng) {
  // Every bit pattern now and then (NaNs, Inf, denormals), else the bf16 of mixed values.
  const std::vector<float> f = mixed_values(n, rng);
  std::vector<uint16_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[i] = rng() % 8 == 0 ? static_cast<uint16_t>(rng()) : float_to_bf16(f[i]);
  return out;
}

// widen -> general path -> the float dz, and narrowed with float_to_bf16.
void bf16_reference(const Activation& act, const std::vector<uint16_t>& z, const std::vector<uint16_t>& y,
                    const std::vector<uint16_t>& dy, std::vector<float>& dz, std::vector<uint16_t>& dz16) {
  const size_t n = dy.size();
  std::vector<float> zf(n), yf(n), gf(n);
  for (size_t i = 0; i < n; ++i) zf[i] = bf16_to_float(z[i]), yf[i] = bf16_to_float(y[i]), gf[i] = bf16_to_float(dy[i]);
  dz.assign(n, 0.0f);
  if (act.kind == ActivationKind::kLinear)
    dz = gf;
  else
    activation_gradient_rows(act, zf.data(), yf.data(), gf.data(), dz.data(), 1, static_cast<int64_t>(n));
  dz16.resize(n);
  for (size_t i = 0; i < n; ++i) dz16[i] = float_to_bf16(dz[i]);
}

TEST(DzLoops, Bf16LoopsAreWidenGeneralPathNarrow) {
  std::mt19937_64 rng(23);
  int mismatches = 0;
  for (const Activation& act : elementwise_activations()) {
    for (int64_t n : kLengths) {
      const std::vector<uint16_t> z = random_bf16(n, rng), y = random_bf16(n, rng), dy = random_bf16(n, rng);
      std::vector<float> want;
      std::vector<uint16_t> want16;
      bf16_reference(act, z, y, dy, want, want16);
      for (DzIsa isa : isas()) {
        for (bool with_float : {true, false}) {
          std::vector<float> got(static_cast<size_t>(n) + 1, -7.0f);
          std::vector<uint16_t> got16(static_cast<size_t>(n) + 1, 0xABCDu);
          elementwise_dz_bf16(isa, act, z.data(), y.data(), dy.data(), with_float ? got.data() : nullptr,
                              got16.data(), n);
          for (int64_t i = 0; i < n; ++i) {
            const bool ok16 = got16[i] == want16[i] ||
                              (std::isnan(bf16_to_float(got16[i])) && std::isnan(bf16_to_float(want16[i])));
            const bool ok = !with_float || same_value(got[i], want[i]);
            if (ok16 && ok) continue;
            if (++mismatches <= 20)
              ADD_FAILURE() << describe(act) << " " << isa_name(isa) << " n " << n << " at " << i << ": z "
                            << bf16_to_float(z[i]) << " y " << bf16_to_float(y[i]) << " dy " << bf16_to_float(dy[i])
                            << " got " << got[i] << " / " << got16[i] << " want " << want[i] << " / " << want16[i];
          }
          EXPECT_EQ(got16[n], 0xABCDu);
          EXPECT_EQ(got[n], -7.0f);
        }
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

// The activations without a float32 loop take a table of act' per bf16 value
// in the bf16 pass: every one of the 65536 inputs against the general path.
// Run alone, this test builds the tables; after the tests above (which use
// more activations than the 32 tables a process keeps) some of these run the
// general path on widened chunks instead: either must give the same bits.
TEST(DzLoops, Bf16TablesAreTheGeneralPathForEveryInput) {
  std::mt19937_64 rng(26);
  for (const Activation& act : {make(ActivationKind::kGelu), make(ActivationKind::kSilu),
                                make(ActivationKind::kSoftplus), make(ActivationKind::kMish),
                                make(ActivationKind::kElu, -0.5), make(ActivationKind::kLogSigmoid),
                                make(ActivationKind::kGeluTanh), make(ActivationKind::kTanhShrink)}) {
    ASSERT_FALSE(has_dz_bf16_loop(act)) << describe(act);
    EXPECT_TRUE(has_dz_loop(act)) << describe(act);  // float32 computes them (float_math)
    std::vector<uint16_t> x(65536);
    for (uint32_t b = 0; b < 65536; ++b) x[b] = static_cast<uint16_t>(b);
    const std::vector<uint16_t> dy = random_bf16(65536, rng);
    std::vector<float> want;
    std::vector<uint16_t> want16;
    bf16_reference(act, x, x, dy, want, want16);
    for (DzIsa isa : isas()) {
      std::vector<float> got(65536);
      std::vector<uint16_t> got16(65536);
      elementwise_dz_bf16(isa, act, x.data(), x.data(), dy.data(), got.data(), got16.data(), 65536);
      int bad = 0;
      for (int64_t i = 0; i < 65536; ++i)
        if (!same_value(got[i], want[i]) && ++bad <= 5)
          ADD_FAILURE() << describe(act) << " " << isa_name(isa) << " x " << bf16_to_float(x[i]) << " got "
                        << got[i] << " want " << want[i];
      EXPECT_EQ(bad, 0);
    }
  }
}

TEST(DzLoops, SumsAreTheSameOnEveryIsaAndCloseToTheExactSum) {
  std::mt19937_64 rng(24);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (int64_t channels : {1, 2, 3, 4, 8, 20, 64}) {
    for (int64_t rows : {0, 1, 2, 3, 255, 256}) {
      std::vector<float> v(static_cast<size_t>(rows * channels));
      for (float& x : v) x = uniform(rng);
      std::vector<double> exact(static_cast<size_t>(channels), 0.0);
      double total = 0.0;
      for (int64_t i = 0; i < rows * channels; ++i) exact[i % channels] += double(v[i]), total += double(v[i]);
      std::vector<double> first;
      double first_total = 0.0;
      for (DzIsa isa : isas()) {
        std::vector<double> sums(static_cast<size_t>(channels), -7.0);
        sum_rows(isa, v.data(), rows, channels, sums.data());
        const double t = sum_floats(isa, v.data(), rows * channels);
        for (int64_t c = 0; c < channels; ++c) EXPECT_NEAR(sums[c], exact[c], 1e-12) << channels << " " << rows;
        EXPECT_NEAR(t, total, 1e-12);
        if (first.empty()) {
          first = sums;
          first_total = t;
        }
        EXPECT_EQ(std::memcmp(first.data(), sums.data(), sums.size() * sizeof(double)), 0) << isa_name(isa);
        EXPECT_EQ(bits_of(float(first_total)), bits_of(float(t)));
      }
    }
  }
}

LayerConfig config_for(ActivationKind kind, double alpha, DataFormat format, int64_t filters) {
  LayerConfig c = testing::config_of(filters, 2, 2, Padding::kValid);
  c.data_format = format;
  c.use_bias = true;
  c.activation = make(kind, alpha);
  return c;
}

TEST(DzLoops, Bf16PassIsTheReferenceAndTheSameForAnyThreadCount) {
  std::mt19937_64 rng(25);
  struct Case {
    ActivationKind kind;
    double alpha;
    DataFormat format;
    std::vector<int64_t> input_shape;
    int64_t filters;
  };
  // Several 256-row blocks each way, partial last blocks, channel counts off
  // the vector widths; fast loops and the general path.
  const Case cases[] = {
      {ActivationKind::kRelu, 0.0, DataFormat::kChannelsLast, {1, 9, 8, 7, 5}, 12},
      {ActivationKind::kElu, 1.0, DataFormat::kChannelsLast, {2, 7, 9, 5, 3}, 20},
      {ActivationKind::kSigmoid, 0.0, DataFormat::kChannelsLast, {1, 20, 17, 9, 3}, 4},
      {ActivationKind::kLinear, 0.0, DataFormat::kChannelsLast, {1, 9, 8, 7, 5}, 3},
      {ActivationKind::kGelu, 0.0, DataFormat::kChannelsLast, {1, 9, 8, 7, 5}, 9},
      {ActivationKind::kSilu, 0.0, DataFormat::kChannelsFirst, {1, 5, 9, 8, 7}, 8},
      {ActivationKind::kSelu, 0.0, DataFormat::kChannelsFirst, {2, 5, 9, 18, 21}, 6},
      {ActivationKind::kLinear, 0.0, DataFormat::kChannelsFirst, {2, 5, 9, 18, 21}, 7},
      {ActivationKind::kHardSilu, 0.0, DataFormat::kChannelsFirst, {1, 5, 20, 17, 9}, 4},
  };
  for (const Case& k : cases) {
    const LayerConfig config = config_for(k.kind, k.alpha, k.format, k.filters);
    SCOPED_TRACE(describe(config.activation) + (k.format == DataFormat::kChannelsLast ? " last" : " first"));
    const ConvGeometry g = resolve_geometry(config, k.input_shape);
    const int64_t n = g.output_elements(), filters = g.out_channels;
    // Finite values here: db is a sum.
    std::vector<uint16_t> z(static_cast<size_t>(n)), y(z.size()), dy(z.size());
    std::uniform_real_distribution<float> uniform(-3.0f, 3.0f);
    for (int64_t i = 0; i < n; ++i) {
      z[i] = float_to_bf16(uniform(rng));
      y[i] = float_to_bf16(static_cast<float>(apply_elementwise(config.activation, double(bf16_to_float(z[i])))));
      dy[i] = float_to_bf16(uniform(rng));
    }
    std::vector<float> want;
    std::vector<uint16_t> want16;
    bf16_reference(config.activation, z, y, dy, want, want16);
    const bool last = k.format == DataFormat::kChannelsLast;
    const int64_t spatial = n / (g.batch * filters);
    std::vector<double> exact(static_cast<size_t>(filters), 0.0);
    for (int64_t i = 0; i < n; ++i) exact[last ? i % filters : i / spatial % filters] += double(want[i]);
    std::vector<float> first_db;
    for (int threads : {1, 2, 3, 7}) {
      std::vector<uint16_t> storage;
      std::vector<float> db(static_cast<size_t>(filters), -7.0f);
      const uint16_t* dz = preactivation_gradient_bf16(g, config.activation, z.data(), y.data(), dy.data(),
                                                       db.data(), storage, threads);
      EXPECT_EQ(std::memcmp(dz, want16.data(), want16.size() * 2), 0) << threads << " threads";
      for (int64_t c = 0; c < filters; ++c)
        EXPECT_NEAR(db[c], exact[c], 1e-5 * (1.0 + std::abs(exact[c]))) << c << ", " << threads << " threads";
      if (first_db.empty()) first_db = db;
      EXPECT_EQ(std::memcmp(first_db.data(), db.data(), db.size() * sizeof(float)), 0) << threads << " threads";
      // Without db: the same dz.
      std::vector<uint16_t> storage2;
      const uint16_t* dz2 = preactivation_gradient_bf16(g, config.activation, z.data(), y.data(), dy.data(),
                                                        nullptr, storage2, threads);
      EXPECT_EQ(std::memcmp(dz2, want16.data(), want16.size() * 2), 0) << threads << " threads, no db";
    }
  }
}

}  // namespace
}  // namespace tconv3d
