// bf16 kernels for few channels: the Xbyak plans in ymm vectors (8 float32
// lanes, 16 bf16) and lane-packed super voxels of several vectors, forward
// and input gradient, against the bf16 reference on random small-channel
// layers (filters 1-24, odd sizes, strides, paddings, dilations, both data
// formats, batches), NaN/Inf positions, bitwise thread-count independence,
// and which plans the layers get (LLVM's plans stay zmm, one-vector packing).
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <random>

#include "core/activation.hpp"
#include "core/cpu_features.hpp"
#include "core/problem.hpp"
#include "plan/bf16_input_gradient_plan.hpp"
#include "plan/plan.hpp"
#include "tconv3d/bfloat16.hpp"
#include "tconv3d/layer.hpp"
#include "tests/bf16_test_support.hpp"

namespace tconv3d {
namespace {

using testing::RandomCase;

#define REQUIRE_BF16() \
  if (!detected_cpu_features().avx512_bf16) GTEST_SKIP() << "this CPU lacks avx512_bf16"

using testing::bf16_options;
using testing::first_bf16_mismatch;
using testing::random_bf16;

// A random layer (testing::random_case) cut down to few filters (1-24) and
// input channels (1-26), mostly with W phases to pack, W up to 13: the
// regime of the ymm and multi-vector lane-packed plans.
RandomCase small_channel_case(std::mt19937_64& rng) {
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (;;) {
    RandomCase rc = testing::random_case(rng);
    LayerConfig& c = rc.config;
    c.filters = pick(1, 24);
    const bool dilated = c.dilation_rate[0] * c.dilation_rate[1] * c.dilation_rate[2] > 1;  // strides stay 1
    if (!dilated && pick(0, 4) != 0) c.strides[2] = pick(2, 3);
    if (c.output_padding) (*c.output_padding)[2] = std::min((*c.output_padding)[2], c.strides[2] - 1);
    const bool last = c.data_format == DataFormat::kChannelsLast;
    rc.input_shape[last ? 4 : 1] = pick(1, 26);
    rc.input_shape[last ? 3 : 4] = pick(1, 13);
    try {
      const ConvGeometry g = resolve_geometry(c, rc.input_shape);
      if (g.output_elements() > 200000 || g.flops() > 2e7) continue;
    } catch (const std::exception&) {
      continue;
    }
    return rc;
  }
}

codegen::KernelPlan xbyak_plan(const RandomCase& c, Backend backend = Backend::kXbyak) {
  const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
  Problem p = make_problem(g, c.config.use_bias, c.config.activation);
  p.dtype = DataType::kBfloat16;
  return codegen::plan_for_backend(p, Isa::kAvx512, backend);
}

// A random small-channel layer with its weights and a bf16 input.
struct Drawn {
  RandomCase c;
  ConvGeometry g;
  std::vector<float> kernel, bias;
  std::vector<uint16_t> x;
  Drawn(RandomCase rc, std::mt19937_64& rng) : c(std::move(rc)), g(resolve_geometry(c.config, c.input_shape)) {
    kernel = testing::random_tensor(g.kernel_elements(), rng);
    bias = testing::random_tensor(g.out_channels, rng);
    x = random_bf16(g.input_elements(), rng);
  }
  Layer layer(Backend backend, int threads = 1) const {
    const ConstTensor k{kernel.data(), {g.axes[0].kernel, g.axes[1].kernel, g.axes[2].kernel, g.out_channels,
                                        g.in_channels}};
    const ConstTensor b = c.config.use_bias ? ConstTensor{bias.data(), {g.out_channels}} : ConstTensor{};
    return Layer::create(c.config, c.input_shape, k, b, bf16_options(backend, threads));
  }
};

std::vector<uint16_t> forward(const Layer& layer, const std::vector<uint16_t>& x) {
  std::vector<uint16_t> y(static_cast<size_t>(layer.output_elements()), 0x7FC1);
  layer.forward_bf16(x.data(), y.data());
  return y;
}

TEST(Bf16Small, PlansForFewFiltersUseYmmAndMultiVectorPacking) {
  auto plan = [](int64_t filters, int64_t k, int64_t s, int64_t cin, Backend backend) {
    LayerConfig c;
    c.filters = filters;
    c.kernel_size = {k, k, k};
    c.strides = {s, s, s};
    c.padding = Padding::kSame;
    return xbyak_plan(RandomCase{c, {1, 5, 5, 11, cin}}, backend);
  };
  // The 4-filter head: two W phases x 4 filters fill a ymm, half a zmm.
  const codegen::KernelPlan head = plan(4, 4, 2, 32, Backend::kXbyak);
  EXPECT_EQ(head.lanes, 8);
  EXPECT_EQ(head.w_pack, 2);
  // 20 filters x 2 phases: 5 ymm vectors, the second offset's last 2 skipped.
  const codegen::KernelPlan odd = plan(20, 3, 2, 24, Backend::kXbyak);
  EXPECT_EQ(odd.lanes, 8);
  EXPECT_EQ(odd.w_pack, 2);
  EXPECT_EQ(odd.oc_vectors, 5);
  EXPECT_LT(codegen::w_fma_halves(odd), codegen::w_fma_halves(plan(20, 3, 2, 24, Backend::kLlvm)));
  // Full zmm vectors stay zmm.
  EXPECT_EQ(plan(32, 3, 2, 24, Backend::kXbyak).lanes, 16);
  // LLVM's bf16 emitter takes zmm plans with one-vector super voxels only.
  for (int64_t filters : {4, 20}) {
    const codegen::KernelPlan llvm = plan(filters, filters == 4 ? 4 : 3, 2, 24, Backend::kLlvm);
    EXPECT_EQ(llvm.lanes, 16);
    EXPECT_TRUE(llvm.w_pack == 1 || llvm.oc_vectors == 1) << filters;
  }
}

TEST(Bf16Small, RandomSmallChannelLayersMatchTheReferenceOnAnyThreadCount) {
  REQUIRE_BF16();
  std::mt19937_64 rng(2027);
  int ymm = 0, multi_vector = 0, channels_first = 0, batched = 0, odd_cin = 0;
  for (int i = 0; i < 120; ++i) {
    const Drawn d(small_channel_case(rng), rng);
    const codegen::KernelPlan plan = xbyak_plan(d.c);
    ymm += plan.lanes == 8;
    multi_vector += plan.w_pack > 1 && plan.oc_vectors > 1;
    channels_first += d.c.config.data_format == DataFormat::kChannelsFirst;
    batched += d.g.batch > 1;
    odd_cin += d.g.in_channels % 2;
    const std::vector<uint16_t> expected = forward(d.layer(Backend::kReference), d.x);
    std::vector<uint16_t> one;
    for (int threads : {1, 2, 3}) {
      const Layer tested = d.layer(Backend::kXbyak, threads);
      const std::vector<uint16_t> y = forward(tested, d.x);
      if (threads == 1) {
        one = y;
        const int64_t bad = first_bf16_mismatch(expected, y);
        ASSERT_LT(bad, 0) << d.c.describe() << " kernel " << tested.kernel_name() << ": element " << bad << " got "
                          << bf16_to_float(y[size_t(bad)]) << ", reference " << bf16_to_float(expected[size_t(bad)]);
      } else {
        ASSERT_EQ(y, one) << d.c.describe() << ": " << threads << " threads changed a result";
      }
    }
  }
  // The draw covers the new plans and what the kernels must get right.
  RecordProperty("ymm_multi_vector_channels_first_batched_odd_cin",
                 std::to_string(ymm) + " " + std::to_string(multi_vector) + " " + std::to_string(channels_first) + " " +
                     std::to_string(batched) + " " + std::to_string(odd_cin));
  EXPECT_GT(ymm, 30);
  EXPECT_GT(multi_vector, 10);
  EXPECT_GT(channels_first, 10);
  EXPECT_GT(batched, 10);
  EXPECT_GT(odd_cin, 20);
}

// A small-channel case with a linear activation (NaN/Inf and bits reach the
// output unchanged).
RandomCase linear_case(std::mt19937_64& rng) {
  RandomCase c = small_channel_case(rng);
  c.config.activation = Activation{};
  return c;
}

TEST(Bf16Small, NanAndInfReachExactlyTheReferencesOutputs) {
  REQUIRE_BF16();
  // Lane-packed vectors hold padding weights of 0 for the other phases'
  // lanes: 0 * Inf would put a NaN where the reference has a finite value.
  std::mt19937_64 rng(77);
  int packed = 0;
  for (int i = 0; i < 60; ++i) {
    Drawn d(linear_case(rng), rng);
    packed += xbyak_plan(d.c).w_pack > 1;
    d.x[rng() % d.x.size()] = float_to_bf16(INFINITY);
    d.x[rng() % d.x.size()] = float_to_bf16(-INFINITY);
    d.x[rng() % d.x.size()] = float_to_bf16(NAN);
    const Layer tested = d.layer(Backend::kXbyak);
    const std::vector<uint16_t> expected = forward(d.layer(Backend::kReference), d.x), y = forward(tested, d.x);
    const int64_t bad = first_bf16_mismatch(expected, y);
    ASSERT_LT(bad, 0) << d.c.describe() << " kernel " << tested.kernel_name() << ": element " << bad << " got "
                      << bf16_to_float(y[size_t(bad)]) << ", reference " << bf16_to_float(expected[size_t(bad)]);
  }
  RecordProperty("lane_packed", packed);
  EXPECT_GT(packed, 15);
}

// Scales every input and weight by 2^-12 .. 2^12: float32 sums of bf16
// products in [-1, 1] are mostly exact, whatever their order; these are not.
void spread_exponents(Drawn& d, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> e(-12, 12);
  for (uint16_t& v : d.x) v = float_to_bf16(std::ldexp(bf16_to_float(v), e(rng)));
  for (float& v : d.kernel) v = std::ldexp(v, e(rng));
}

TEST(Bf16Small, SameBitsAsTheLlvmZmmPlansWithoutActivation) {
  REQUIRE_BF16();
  // The ymm, multi-vector and shared-broadcast steps add the same products in
  // the same order per output (the skipped vectors and masked lanes add
  // nothing), so they agree bit for bit with LLVM's zmm plans, also where
  // the order changes the rounding.
  std::mt19937_64 rng(31);
  int differing_plans = 0;
  for (int i = 0; i < 60; ++i) {
    Drawn d(linear_case(rng), rng);
    spread_exponents(d, rng);
    std::optional<Layer> llvm;
    try {
      llvm.emplace(d.layer(Backend::kLlvm));
    } catch (const Error& e) {
      GTEST_SKIP() << "no llvm backend: " << e.what();
    }
    const Layer xbyak = d.layer(Backend::kXbyak);
    differing_plans += xbyak_plan(d.c).cache_key() != xbyak_plan(d.c, Backend::kLlvm).cache_key();
    ASSERT_EQ(forward(xbyak, d.x), forward(*llvm, d.x)) << d.c.describe() << " kernel " << xbyak.kernel_name();
  }
  RecordProperty("plans_unlike_llvm", differing_plans);
  EXPECT_GT(differing_plans, 15);
}

TEST(Bf16Small, InputGradientInYmmVectorsMatchesTheReference) {
  REQUIRE_BF16();
  // dx's lanes are the layer's input channels: 1-8 or 17-24 of them take ymm vectors.
  std::mt19937_64 rng(404);
  int ymm = 0;
  for (int i = 0; i < 40; ++i) {
    const Drawn d(linear_case(rng), rng);
    const Problem p = make_problem(d.g, d.c.config.use_bias, d.c.config.activation);
    ymm += codegen::bf16_input_gradient_plan_for_backend(p, Backend::kXbyak).lanes == 8;
    EXPECT_EQ(codegen::bf16_input_gradient_plan_for_backend(p, Backend::kLlvm).lanes, 16);
    const Layer reference = d.layer(Backend::kReference);
    const std::vector<uint16_t> y = forward(reference, d.x), dy = random_bf16(reference.output_elements(), rng);
    std::vector<uint16_t> expected(d.x.size()), one;
    reference.backward_bf16(d.x.data(), y.data(), dy.data(), expected.data(), nullptr, nullptr);
    for (int threads : {1, 2}) {
      const Layer tested = d.layer(Backend::kXbyak, threads);
      std::vector<uint16_t> dx(d.x.size(), 0x7FC1);
      tested.backward_bf16(d.x.data(), y.data(), dy.data(), dx.data(), nullptr, nullptr);
      if (threads == 1) {
        one = dx;
        const int64_t bad = first_bf16_mismatch(expected, dx);
        ASSERT_LT(bad, 0) << d.c.describe() << " kernels " << tested.backward_bf16_kernel_names() << ": element "
                          << bad << " got " << bf16_to_float(dx[size_t(bad)]) << ", reference "
                          << bf16_to_float(expected[size_t(bad)]);
      } else {
        ASSERT_EQ(dx, one) << d.c.describe() << ": 2 threads changed dx";
      }
    }
  }
  RecordProperty("ymm_dx", ymm);
  EXPECT_GT(ymm, 10);
}

}  // namespace
}  // namespace tconv3d
