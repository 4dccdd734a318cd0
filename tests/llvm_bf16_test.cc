// bf16 forward on the LLVM backend (emit/llvm/ir_bf16_kernel): against the
// bf16 reference on random layers (odd Cin, batch > 1, activations,
// channels_first, lane-packed heads, per-group kernels, 1 and 2 threads), the
// odd Cin tail, NaN/Inf, and bitwise equality with the Xbyak bf16 kernel
// without an activation (the emitters' float32 activation code differs: even
// relu, whose negative inputs give -0 in the LLVM code (alpha * x, as the
// reference computes it) and +0 in Xbyak's).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/activation.hpp"
#include "core/cpu_features.hpp"
#include "tconv3d/bfloat16.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/layer.hpp"
#include "tests/test_support.hpp"

namespace tconv3d {
namespace {

#ifdef TCONV3D_HAVE_LLVM

using testing::RandomCase;

#define REQUIRE_BF16()                              \
  if (!detected_cpu_features().avx512_bf16)         \
  GTEST_SKIP() << "this CPU lacks avx512_bf16: the llvm bf16 kernel is not run here"

RandomCase channels_last(RandomCase c) {
  if (c.config.data_format == DataFormat::kChannelsFirst) {
    const auto& s = c.input_shape;
    c.input_shape = {s[0], s[2], s[3], s[4], s[1]};
    c.config.data_format = DataFormat::kChannelsLast;
  }
  return c;
}

LayerOptions bf16_options(Backend backend, int threads = 1) {
  LayerOptions o;
  o.backend = backend;
  o.dtype = DataType::kBfloat16;
  o.threads = threads;
  return o;
}

struct Outputs {
  std::vector<uint16_t> expected, actual;
  std::string kernel;
};

// The layer on `backend` and the one on `against`, same weights and input.
// `edit` may change the input (bf16 bits) and the float32 kernel.
template <typename Edit>
Outputs run_pair(const RandomCase& c, uint64_t seed, Backend against, Edit edit, int threads = 1) {
  std::mt19937_64 rng(seed);
  const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
  const std::vector<int64_t> kshape = {g.axes[0].kernel, g.axes[1].kernel, g.axes[2].kernel, g.out_channels,
                                       g.in_channels};
  std::vector<float> kernel = testing::random_tensor(g.kernel_elements(), rng);
  const std::vector<float> bias = testing::random_tensor(g.out_channels, rng);
  std::vector<uint16_t> input(static_cast<size_t>(g.input_elements()));
  const std::vector<float> values = testing::random_tensor(g.input_elements(), rng);
  for (size_t i = 0; i < values.size(); ++i) input[i] = float_to_bf16(values[i]);
  edit(input, kernel, g);
  const ConstTensor k{kernel.data(), kshape};
  const ConstTensor b = c.config.use_bias ? ConstTensor{bias.data(), {g.out_channels}} : ConstTensor{};
  const Layer expected = Layer::create(c.config, c.input_shape, k, b, bf16_options(against));
  const Layer tested = Layer::create(c.config, c.input_shape, k, b, bf16_options(Backend::kLlvm, threads));
  Outputs r;
  r.expected.assign(static_cast<size_t>(expected.output_elements()), 0);
  r.actual.assign(static_cast<size_t>(tested.output_elements()), 0x7FC1);
  expected.forward_bf16(input.data(), r.expected.data());
  tested.forward_bf16(input.data(), r.actual.data());
  r.kernel = tested.kernel_name();
  return r;
}

Outputs run_pair(const RandomCase& c, uint64_t seed, Backend against = Backend::kReference, int threads = 1) {
  return run_pair(c, seed, against, [](auto&, auto&, const ConvGeometry&) {}, threads);
}

// The bf16 tolerance of tests/bf16_test.cc: one bf16 ulp relative plus the
// float32 accumulation's error against the output scale. Returns the first
// bad element, or -1.
int64_t first_mismatch(const Outputs& r) {
  double scale = 1.0;
  for (uint16_t e : r.expected)
    if (std::isfinite(bf16_to_float(e))) scale = std::max(scale, std::fabs(double(bf16_to_float(e))));
  for (size_t i = 0; i < r.expected.size(); ++i) {
    const double e = bf16_to_float(r.expected[i]), a = bf16_to_float(r.actual[i]);
    if (std::isnan(e) || std::isnan(a)) {
      if (std::isnan(e) != std::isnan(a)) return int64_t(i);
      continue;
    }
    if (std::isinf(e) || std::isinf(a)) {
      if (e != a) return int64_t(i);
      continue;
    }
    if (std::fabs(a - e) > std::ldexp(std::max(std::fabs(e), std::fabs(a)), -7) + 2e-4 * scale) return int64_t(i);
  }
  return -1;
}

bool ends_with_llvm(const std::string& name) {
  return name.size() > 6 && name.compare(name.size() - 6, 6, "__llvm") == 0;
}

TEST(LlvmBf16, RandomLayersMatchTheBf16Reference) {
  REQUIRE_BF16();
  std::mt19937_64 rng(1718);
  int odd_cin = 0, batched = 0, activated = 0;
  for (int i = 0; i < 100; ++i) {
    const RandomCase c = channels_last(testing::random_case(rng));
    const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
    odd_cin += g.in_channels % 2;
    batched += g.batch > 1;
    activated += c.config.activation.kind != ActivationKind::kLinear;
    const Outputs r = run_pair(c, 100 + i, Backend::kReference, 1 + i % 2);
    const int64_t bad = first_mismatch(r);
    ASSERT_LT(bad, 0) << c.describe() << " kernel " << r.kernel << ": element " << bad << " got "
                      << bf16_to_float(r.actual[size_t(bad)]) << ", reference "
                      << bf16_to_float(r.expected[size_t(bad)]);
    EXPECT_EQ(r.kernel.rfind("tconv3d_bf16_", 0), 0u) << r.kernel;
    EXPECT_TRUE(ends_with_llvm(r.kernel)) << r.kernel;
  }
  EXPECT_GT(odd_cin, 10);
  EXPECT_GT(batched, 10);
  EXPECT_GT(activated, 10);
}

TEST(LlvmBf16, ChannelsFirstAndLanePackedLayersMatchTheReference) {
  REQUIRE_BF16();
  std::mt19937_64 rng(4243);
  int channels_first = 0;
  for (int i = 0; i < 80 && channels_first < 15; ++i) {
    const RandomCase c = testing::random_case(rng);
    if (c.config.data_format != DataFormat::kChannelsFirst) continue;
    ++channels_first;
    const Outputs r = run_pair(c, 900 + i, Backend::kReference, 2);
    ASSERT_LT(first_mismatch(r), 0) << c.describe() << " kernel " << r.kernel;
  }
  EXPECT_GT(channels_first, 5);
  int packed = 0;
  for (int i = 0; i < 60 && packed < 20; ++i) {
    const auto c = testing::random_lane_packed_case(rng, 16);
    if (!c) continue;
    ++packed;
    const Outputs r = run_pair(channels_last(*c), 500 + i);
    ASSERT_LT(first_mismatch(r), 0) << c->describe() << " kernel " << r.kernel;
  }
  EXPECT_GT(packed, 5);
}

LayerConfig config_of(int64_t filters, int64_t k, int64_t s, Padding padding = Padding::kSame) {
  LayerConfig c;
  c.filters = filters;
  c.kernel_size = {k, k, k};
  c.strides = {s, s, s};
  c.padding = padding;
  return c;
}

TEST(LlvmBf16, PerGroupKernelsAndThreadsAgree) {
  REQUIRE_BF16();
  // > 1 MB of packed weights per row: one kernel per channel group.
  const RandomCase c{config_of(192, 3, 2), {2, 3, 3, 5, 256}};
  const Outputs one = run_pair(c, 7);
  EXPECT_LT(first_mismatch(one), 0);
  EXPECT_NE(one.kernel.find("_per_group"), std::string::npos) << one.kernel;
  const Outputs two = run_pair(c, 7, Backend::kReference, 2);
  EXPECT_EQ(one.actual, two.actual) << "thread count changed a result";
}

TEST(LlvmBf16, OddCinNeverReadsPastAVoxelsChannels) {
  REQUIRE_BF16();
  // Channel 0 of every voxel +Inf, every weight positive: each output +Inf.
  // Pairing the last odd channel with the next voxel's would add 0 * Inf = NaN.
  for (int64_t cin : {1, 3, 5, 17}) {
    RandomCase c{config_of(20, 2, 2, Padding::kValid), {2, 2, 3, 7, cin}};
    c.config.activation = Activation{};
    const Outputs r = run_pair(c, 3, Backend::kReference,
                               [](std::vector<uint16_t>& in, std::vector<float>& k, const ConvGeometry& g) {
                                 for (float& w : k) w = 0.25f + std::fabs(w);
                                 for (size_t i = 0; i < in.size(); i += size_t(g.in_channels))
                                   in[i] = float_to_bf16(INFINITY);
                               });
    for (size_t i = 0; i < r.actual.size(); ++i) {
      ASSERT_EQ(bf16_to_float(r.actual[i]), INFINITY) << "cin " << cin << " element " << i;
      ASSERT_EQ(r.expected[i], r.actual[i]);
    }
  }
}

TEST(LlvmBf16, NanAndInfPropagateLikeTheReference) {
  REQUIRE_BF16();
  std::mt19937_64 rng(6);
  for (int i = 0; i < 10; ++i) {
    RandomCase c = channels_last(testing::random_case(rng));
    c.config.activation = Activation{};
    const Outputs r = run_pair(c, 40 + i, Backend::kReference,
                               [&](std::vector<uint16_t>& in, std::vector<float>&, const ConvGeometry&) {
                                 if (in.empty()) return;
                                 in[rng() % in.size()] = float_to_bf16(INFINITY);
                                 in[rng() % in.size()] = float_to_bf16(-INFINITY);
                                 in[rng() % in.size()] = float_to_bf16(NAN);
                               });
    ASSERT_LT(first_mismatch(r), 0) << c.describe();
  }
}

#ifdef TCONV3D_HAVE_XBYAK
// Same plan, same packed weights, the same vdpbf16ps sequence and rounding:
// without an activation the two emitters' bf16 outputs are bitwise equal.
TEST(LlvmBf16, SameBitsAsXbyakWithoutActivation) {
  REQUIRE_BF16();
  std::mt19937_64 rng(77);
  for (int i = 0; i < 40; ++i) {
    RandomCase c = channels_last(testing::random_case(rng));
    c.config.activation = Activation{};
    const Outputs r = run_pair(c, 300 + i, Backend::kXbyak, 1 + i % 2);
    size_t differ = 0, first = r.expected.size();
    for (size_t e = 0; e < r.expected.size(); ++e)
      if (r.expected[e] != r.actual[e]) first = std::min(first, e), ++differ;
    ASSERT_EQ(0u, differ) << c.describe() << " kernel " << r.kernel << ": " << differ << " of "
                          << r.expected.size() << " differ, first " << first << ": xbyak "
                          << bf16_to_float(r.expected[first]) << ", llvm " << bf16_to_float(r.actual[first]);
  }
}
#endif

TEST(LlvmBf16, Avx2IsAnError) {
  REQUIRE_BF16();
  LayerOptions o = bf16_options(Backend::kLlvm);
  o.isa = Isa::kAvx2;
  try {
    (void)Layer::create_initialized(config_of(8, 2, 2), {1, 2, 2, 2, 4}, 1, o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("AVX-512"), std::string::npos) << e.what();
  }
}

#else
TEST(LlvmBf16, NeedsLlvm) { GTEST_SKIP() << "built without llvm"; }
#endif

}  // namespace
}  // namespace tconv3d
