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
#include "test_support.hpp"

namespace tconv3d {
namespace {

using testing::RandomCase;

#define REQUIRE_BF16() \
  if (!detected_cpu_features().avx512_bf16) GTEST_SKIP() << "this CPU lacks avx512_bf16"

LayerOptions options_for(Backend backend, int threads = 1) {
  LayerOptions o;
  o.backend = backend;
  o.dtype = DataType::kBfloat16;
  o.threads = threads;
  return o;
}

std::vector<uint16_t> random_bf16(int64_t count, std::mt19937_64& rng) {
  const std::vector<float> v = testing::random_tensor(count, rng);
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = float_to_bf16(v[i]);
  return out;
}

// A random layer with few filters (1-24) and input channels (1-26), the
// regime of the ymm and multi-vector lane-packed plans.
RandomCase small_channel_case(std::mt19937_64& rng) {
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  static const char* kActivations[] = {"linear", "relu", "sigmoid", "elu", "tanh", "gelu", "leaky_relu"};
  for (;;) {
    RandomCase rc;
    LayerConfig& c = rc.config;
    c.filters = pick(1, 24);
    const bool dilated = pick(0, 4) == 0;
    for (int a = 0; a < 3; ++a) {
      c.kernel_size[a] = pick(1, 4);
      c.strides[a] = dilated ? 1 : pick(1, 3);
      c.dilation_rate[a] = dilated ? pick(1, 2) : 1;
    }
    c.strides[2] = dilated ? 1 : pick(2, 3);  // W phases to pack (most cases)
    c.padding = pick(0, 1) ? Padding::kSame : Padding::kValid;
    if (pick(0, 2) == 0) {
      Triple op;
      for (int a = 0; a < 3; ++a) op[a] = pick(0, c.strides[a] - 1);
      c.output_padding = op;
    }
    c.data_format = pick(0, 3) == 0 ? DataFormat::kChannelsFirst : DataFormat::kChannelsLast;
    c.use_bias = pick(0, 4) != 0;
    c.activation = parse_activation_name(kActivations[pick(0, 6)], Flavor::kKeras3);
    const int64_t batch = pick(0, 2) == 0 ? pick(2, 3) : 1;
    const int64_t channels = pick(1, 26);
    const int64_t d = pick(1, 4), h = pick(1, 5), w = pick(1, 13);
    rc.input_shape = c.data_format == DataFormat::kChannelsLast ? std::vector<int64_t>{batch, d, h, w, channels}
                                                                : std::vector<int64_t>{batch, channels, d, h, w};
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

struct Weights {
  std::vector<float> kernel, bias;
  std::vector<int64_t> kernel_shape;
  ConstTensor k() const { return {kernel.data(), kernel_shape}; }
  ConstTensor b(const LayerConfig& c) const {
    return c.use_bias ? ConstTensor{bias.data(), {int64_t(bias.size())}} : ConstTensor{};
  }
};

Weights random_weights(const ConvGeometry& g, std::mt19937_64& rng) {
  Weights w;
  w.kernel_shape = {g.axes[0].kernel, g.axes[1].kernel, g.axes[2].kernel, g.out_channels, g.in_channels};
  w.kernel = testing::random_tensor(g.kernel_elements(), rng);
  w.bias = testing::random_tensor(g.out_channels, rng);
  return w;
}

// Each element within 1 bf16 ulp (relative 2^-7: both sides round to bf16
// once) plus the float32 accumulation's error against the output scale;
// NaN where the reference has NaN, infinities equal. The first bad index, or -1.
int64_t first_mismatch(const std::vector<uint16_t>& expected, const std::vector<uint16_t>& actual) {
  if (expected.size() != actual.size()) return 0;
  double scale = 1.0;
  for (uint16_t e : expected)
    if (std::isfinite(bf16_to_float(e))) scale = std::max(scale, std::fabs(double(bf16_to_float(e))));
  for (size_t i = 0; i < expected.size(); ++i) {
    const double e = bf16_to_float(expected[i]), a = bf16_to_float(actual[i]);
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
    const RandomCase c = small_channel_case(rng);
    const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
    const codegen::KernelPlan plan = xbyak_plan(c);
    ymm += plan.lanes == 8;
    multi_vector += plan.w_pack > 1 && plan.oc_vectors > 1;
    channels_first += c.config.data_format == DataFormat::kChannelsFirst;
    batched += g.batch > 1;
    odd_cin += g.in_channels % 2;
    const Weights w = random_weights(g, rng);
    const std::vector<uint16_t> x = random_bf16(g.input_elements(), rng);
    const Layer reference = Layer::create(c.config, c.input_shape, w.k(), w.b(c.config), options_for(Backend::kReference));
    const std::vector<uint16_t> expected = forward(reference, x);
    std::vector<uint16_t> one;
    for (int threads : {1, 2, 3}) {
      const Layer tested = Layer::create(c.config, c.input_shape, w.k(), w.b(c.config), options_for(Backend::kXbyak, threads));
      const std::vector<uint16_t> y = forward(tested, x);
      if (threads == 1) {
        one = y;
        const int64_t bad = first_mismatch(expected, y);
        ASSERT_LT(bad, 0) << c.describe() << " kernel " << tested.kernel_name() << ": element " << bad << " got "
                          << bf16_to_float(y[size_t(bad)]) << ", reference " << bf16_to_float(expected[size_t(bad)]);
      } else {
        ASSERT_EQ(y, one) << c.describe() << ": " << threads << " threads changed a result";
      }
    }
  }
  // The draw covers the new plans and what the kernels must get right.
  EXPECT_GT(ymm, 30);
  EXPECT_GT(multi_vector, 10);
  EXPECT_GT(channels_first, 10);
  EXPECT_GT(batched, 10);
  EXPECT_GT(odd_cin, 20);
}

TEST(Bf16Small, NanAndInfReachExactlyTheReferencesOutputs) {
  REQUIRE_BF16();
  // Lane-packed vectors hold padding weights of 0 for the other phases'
  // lanes: 0 * Inf would put a NaN where the reference has a finite value.
  std::mt19937_64 rng(77);
  int packed = 0;
  for (int i = 0; i < 60; ++i) {
    RandomCase c = small_channel_case(rng);
    c.config.activation = Activation{};  // linear: NaN/Inf reach the output unchanged
    const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
    packed += xbyak_plan(c).w_pack > 1;
    const Weights w = random_weights(g, rng);
    std::vector<uint16_t> x = random_bf16(g.input_elements(), rng);
    x[rng() % x.size()] = float_to_bf16(INFINITY);
    x[rng() % x.size()] = float_to_bf16(-INFINITY);
    x[rng() % x.size()] = float_to_bf16(NAN);
    const Layer reference = Layer::create(c.config, c.input_shape, w.k(), w.b(c.config), options_for(Backend::kReference));
    const Layer tested = Layer::create(c.config, c.input_shape, w.k(), w.b(c.config), options_for(Backend::kXbyak));
    const std::vector<uint16_t> expected = forward(reference, x), y = forward(tested, x);
    const int64_t bad = first_mismatch(expected, y);
    ASSERT_LT(bad, 0) << c.describe() << " kernel " << tested.kernel_name() << ": element " << bad << " got "
                      << bf16_to_float(y[size_t(bad)]) << ", reference " << bf16_to_float(expected[size_t(bad)]);
  }
  EXPECT_GT(packed, 20);
}

TEST(Bf16Small, SameBitsAsTheLlvmZmmPlansWithoutActivation) {
  REQUIRE_BF16();
  // The ymm and multi-vector plans add the same products in the same order
  // per output (the skipped vectors and masked lanes add nothing), so they
  // agree bit for bit with LLVM's zmm plans.
  std::mt19937_64 rng(31);
  int differing_plans = 0;
  for (int i = 0; i < 40; ++i) {
    RandomCase c = small_channel_case(rng);
    c.config.activation = Activation{};
    const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
    const Weights w = random_weights(g, rng);
    const std::vector<uint16_t> x = random_bf16(g.input_elements(), rng);
    std::optional<Layer> llvm;
    try {
      llvm.emplace(Layer::create(c.config, c.input_shape, w.k(), w.b(c.config), options_for(Backend::kLlvm)));
    } catch (const Error& e) {
      GTEST_SKIP() << "no llvm backend: " << e.what();
    }
    const Layer xbyak = Layer::create(c.config, c.input_shape, w.k(), w.b(c.config), options_for(Backend::kXbyak));
    differing_plans += xbyak_plan(c).cache_key() != xbyak_plan(c, Backend::kLlvm).cache_key();
    ASSERT_EQ(forward(xbyak, x), forward(*llvm, x)) << c.describe() << " kernel " << xbyak.kernel_name();
  }
  EXPECT_GT(differing_plans, 15);
}

TEST(Bf16Small, InputGradientInYmmVectorsMatchesTheReference) {
  REQUIRE_BF16();
  // dx's lanes are the layer's input channels: 1-8 or 17-24 of them take ymm vectors.
  std::mt19937_64 rng(404);
  int ymm = 0;
  for (int i = 0; i < 40; ++i) {
    RandomCase c = small_channel_case(rng);
    c.config.activation = Activation{};
    const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
    const Problem p = make_problem(g, c.config.use_bias, c.config.activation);
    ymm += codegen::bf16_input_gradient_plan_for_backend(p, Backend::kXbyak).lanes == 8;
    EXPECT_EQ(codegen::bf16_input_gradient_plan_for_backend(p, Backend::kLlvm).lanes, 16);
    const Weights w = random_weights(g, rng);
    const std::vector<uint16_t> x = random_bf16(g.input_elements(), rng);
    const Layer reference = Layer::create(c.config, c.input_shape, w.k(), w.b(c.config), options_for(Backend::kReference));
    const std::vector<uint16_t> y = forward(reference, x), dy = random_bf16(reference.output_elements(), rng);
    std::vector<uint16_t> expected(x.size()), one;
    reference.backward_bf16(x.data(), y.data(), dy.data(), expected.data(), nullptr, nullptr);
    for (int threads : {1, 2}) {
      const Layer tested = Layer::create(c.config, c.input_shape, w.k(), w.b(c.config), options_for(Backend::kXbyak, threads));
      std::vector<uint16_t> dx(x.size(), 0x7FC1);
      tested.backward_bf16(x.data(), y.data(), dy.data(), dx.data(), nullptr, nullptr);
      if (threads == 1) {
        one = dx;
        const int64_t bad = first_mismatch(expected, dx);
        ASSERT_LT(bad, 0) << c.describe() << " kernels " << tested.backward_bf16_kernel_names() << ": element "
                          << bad << " got " << bf16_to_float(dx[size_t(bad)]) << ", reference "
                          << bf16_to_float(expected[size_t(bad)]);
      } else {
        ASSERT_EQ(dx, one) << c.describe() << ": 2 threads changed dx";
      }
    }
  }
  EXPECT_GT(ymm, 10);
}

}  // namespace
}  // namespace tconv3d
