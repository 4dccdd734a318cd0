// The xbyak backend against the reference: random layers, the benchmark
// suite's layers at reduced size, both data formats, every elementwise
// activation, bitwise identity across thread counts, and the forced-ISA error.
// Each test runs once per ISA (tests/isa_harness.hpp); an ISA this CPU lacks
// is skipped with a message.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "core/activation.hpp"
#include "core/cpu_features.hpp"
#include "plan/plan.hpp"
#include "tconv3d/error.hpp"
#include "tests/isa_harness.hpp"
#include "tests/test_support.hpp"
#include "tools/support/suite.hpp"

#ifdef TCONV3D_HAVE_XBYAK
#include "emit/x64/tconv_emitter.hpp"
#endif

namespace tconv3d {
namespace {

#ifdef TCONV3D_HAVE_XBYAK

constexpr double kTolerance = 2e-5;

class JitKernelTest : public testing::TargetTest {};

TEST_P(JitKernelTest, MatchesReferenceOnRandomConfigs) {
  std::mt19937_64 rng(777 + static_cast<int>(isa()));
  constexpr int kCases = 520;
  for (int i = 0; i < kCases; ++i) {
    const testing::RandomCase c = testing::random_case(rng, /*elementwise_activation_only=*/i % 4 != 0);
    const double error = testing::compare_with_reference(c, options(1 + i % 2), 5000 + i);
    ASSERT_LE(error, kTolerance) << "case " << i << ": " << c.describe();
  }
}

// Every suite layer with its spatial size cut down (so the reference stays
// quick), in both data formats.
TEST_P(JitKernelTest, MatchesReferenceOnSuiteLayersBothFormats) {
  const std::vector<SuiteLayer> suite = load_suite(std::string(TCONV3D_SOURCE_DIR) + "/bench/layers.json");
  ASSERT_FALSE(suite.empty());
  int index = 0;
  for (const SuiteLayer& layer : suite) {
    for (DataFormat format : {DataFormat::kChannelsLast, DataFormat::kChannelsFirst}) {
      testing::RandomCase c;
      c.config = layer.config;
      const bool was_last = layer.config.data_format == DataFormat::kChannelsLast;
      const int64_t n = layer.input_shape[0];
      const int64_t channels = was_last ? layer.input_shape[4] : layer.input_shape[1];
      std::vector<int64_t> spatial(layer.input_shape.begin() + (was_last ? 1 : 2),
                                   layer.input_shape.begin() + (was_last ? 4 : 5));
      for (int64_t& s : spatial) s = std::min<int64_t>(s, 5);
      c.config.data_format = format;
      if (format == DataFormat::kChannelsLast)
        c.input_shape = {std::min<int64_t>(n, 2), spatial[0], spatial[1], spatial[2], channels};
      else
        c.input_shape = {std::min<int64_t>(n, 2), channels, spatial[0], spatial[1], spatial[2]};
      const double error = testing::compare_with_reference(c, options(2), 900 + index++);
      EXPECT_LE(error, kTolerance) << layer.name << " (" << to_string(format) << "): " << c.describe();
    }
  }
}

TEST_P(JitKernelTest, EveryElementwiseActivation) {
  static const char* kNames[] = {"linear",      "relu",        "leaky_relu",   "relu6",      "elu",
                                 "celu",        "selu",        "softplus",     "softsign",   "squareplus",
                                 "soft_shrink", "hard_shrink", "sparse_plus",  "silu",       "hard_silu",
                                 "gelu",        "tanh",        "tanh_shrink",  "hard_tanh",  "sigmoid",
                                 "hard_sigmoid", "sparse_sigmoid", "log_sigmoid", "exponential", "mish"};
  int index = 0;
  for (const char* name : kNames) {
    testing::RandomCase c;
    c.config.filters = 19;  // two full AVX2 vectors and a tail; one AVX-512 vector and a tail
    c.config.kernel_size = {3, 2, 3};
    c.config.strides = {2, 1, 2};
    c.config.padding = Padding::kSame;
    c.config.activation = parse_activation_name(name, Flavor::kKeras3);
    c.input_shape = {1, 3, 4, 5, 6};
    const double error = testing::compare_with_reference(c, options(2), 300 + index++);
    EXPECT_LE(error, kTolerance) << "activation " << name;
  }
  // tf.keras 2.x's own hard_sigmoid (slope 0.2).
  testing::RandomCase c;
  c.config.filters = 5;
  c.config.kernel_size = {2, 2, 2};
  c.config.strides = {2, 2, 2};
  c.config.flavor = Flavor::kTfKeras2;
  c.config.activation = parse_activation_name("hard_sigmoid", Flavor::kTfKeras2);
  c.input_shape = {1, 2, 3, 4, 3};
  EXPECT_LE(testing::compare_with_reference(c, options(1), 299), kTolerance) << "tf.keras 2.x hard_sigmoid";
}

// Few output channels and a W stride > 1: the lanes hold several W phases
// (lane packing). Random layers in that regime, W sizes that leave partial
// super voxels at both ends of a row, every padding, output_padding.
TEST_P(JitKernelTest, LanePackedFewChannels) {
  std::mt19937_64 rng(31 + static_cast<int>(isa()));
  int packed = 0;
  for (int i = 0; i < 120; ++i) {
    const std::optional<testing::RandomCase> drawn =
        testing::random_lane_packed_case(rng, target().lanes());
    if (!drawn) continue;
    const testing::RandomCase& c = *drawn;
    const Layer layer = Layer::create_initialized(c.config, c.input_shape, 1, options());
    packed += layer.kernel_name().find("_p") != std::string::npos;
    const double error = testing::compare_with_reference(c, options(1 + i % 2), 9000 + i);
    ASSERT_LE(error, kTolerance) << "case " << i << ": " << c.describe();
  }
  EXPECT_GE(packed, 60) << "too few random layers took the lane-packed kernel";
}

// Strided and dilated W (ONNX allows it, Keras does not): lanes of a phase
// without a tap at some input offset get zero weights, and whole phases with
// no taps at all hold bias only.
TEST_P(JitKernelTest, LanePackedStridedAndDilated) {
  std::mt19937_64 rng(5);
  struct WAxis {
    int64_t stride, dilation, kernel, crop_begin;
  };
  for (const WAxis& w : {WAxis{4, 2, 4, 1}, WAxis{3, 2, 5, 2}, WAxis{3, 2, 5, 0}}) {
    ConvGeometry g;
    g.batch = 2;
    g.in_channels = 5;
    g.out_channels = 2;
    for (int a = 0; a < 2; ++a) g.axes[a] = {.in = 4, .kernel = 3, .stride = 2, .dilation = 1, .crop_begin = 1};
    g.axes[2] = {.in = 9, .kernel = w.kernel, .stride = w.stride, .dilation = w.dilation, .crop_begin = w.crop_begin};
    for (AxisGeometry& ax : g.axes) ax.out = ax.full_out() - 2 * ax.crop_begin;
    const std::vector<float> kernel = testing::random_tensor(g.kernel_elements(), rng);
    const std::vector<float> bias = testing::random_tensor(g.out_channels, rng);
    const std::vector<float> input = testing::random_tensor(g.input_elements(), rng);
    const std::vector<int64_t> kshape = {3, 3, w.kernel, g.out_channels, g.in_channels};
    const ConstTensor b{bias.data(), {g.out_channels}};
    Activation linear;
    const Layer jit = Layer::create_from_geometry(g, linear, {kernel.data(), kshape}, b, options());
    LayerOptions ref_options;
    ref_options.backend = Backend::kReference;
    const Layer ref = Layer::create_from_geometry(g, linear, {kernel.data(), kshape}, b, ref_options);
    std::vector<float> actual(static_cast<size_t>(jit.output_elements())), expected(actual.size());
    jit.forward(input.data(), actual.data());
    ref.forward(input.data(), expected.data());
    const std::string what = "W stride " + std::to_string(w.stride) + " dilation " + std::to_string(w.dilation);
    EXPECT_NE(jit.kernel_name().find("_p" + std::to_string(w.stride)), std::string::npos)
        << what << ": " << jit.kernel_name();
    EXPECT_LE(testing::scaled_max_error(actual, expected), kTolerance) << what;
  }
}

// Lane packing over several vectors (e.g. 2 W phases x 20 filters = 5 ymm
// vectors): an input offset skips the vectors none of its phases has a tap
// for, and a super voxel reaching outside the row stores each vector under
// its own lane mask. Random layers with 2-3 W phases of more filters than
// one vector holds, W sizes that leave partial super voxels at both ends.
TEST_P(JitKernelTest, LanePackedSeveralVectors) {
  std::mt19937_64 rng(91 + static_cast<int>(isa()));
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  const int64_t lanes = target().lanes();
  int packed = 0;
  for (int i = 0; i < 100; ++i) {
    testing::RandomCase c = testing::random_case(rng, /*elementwise_activation_only=*/true);
    LayerConfig& config = c.config;
    config.dilation_rate = {1, 1, 1};
    config.strides[2] = pick(2, 3);
    config.filters = pick(lanes / config.strides[2] + 1, 62 / config.strides[2]);
    config.kernel_size[2] = pick(2, 5);
    if (config.output_padding) {
      Triple& op = *config.output_padding;
      op[2] = pick(0, config.strides[2] - 1);
      for (int a = 0; a < 2; ++a)
        if (op[a] >= config.strides[a]) op[a] = 0;
    }
    c.input_shape[config.data_format == DataFormat::kChannelsLast ? 4 : 1] = pick(1, 9);
    c.input_shape[config.data_format == DataFormat::kChannelsLast ? 3 : 4] = pick(1, 12);
    try {
      resolve_geometry(config, c.input_shape);
    } catch (const std::exception&) {
      continue;
    }
    const Layer layer = Layer::create_initialized(config, c.input_shape, 1, options());
    packed += layer.kernel_name().find("_p") != std::string::npos;
    const double error = testing::compare_with_reference(c, options(1 + i % 2), 9500 + i);
    ASSERT_LE(error, kTolerance) << "case " << i << ": " << c.describe() << " kernel " << layer.kernel_name();
  }
  EXPECT_GE(packed, 25) << "too few random layers took a lane-packed kernel of several vectors";
}

// The suite's k3s2_op1_odd shape (2 W phases x 20 filters: 5 ymm or 3 zmm
// vectors per super voxel), with W sizes that do and do not leave partial
// super voxels (crop at the start, output_padding at the end).
TEST_P(JitKernelTest, LanePackedTwentyFilters) {
  int index = 0;
  for (int64_t w : {1, 2, 5, 11}) {
    for (int op : {0, 1}) {
      for (Padding padding : {Padding::kSame, Padding::kValid}) {
        testing::RandomCase c;
        c.config.filters = 20;
        c.config.kernel_size = {3, 3, 3};
        c.config.strides = {2, 2, 2};
        c.config.padding = padding;
        c.config.output_padding = Triple{op, op, op};
        c.config.activation = parse_activation_name(index % 2 ? "elu" : "linear", Flavor::kKeras3);
        c.input_shape = {2, 3, 4, w, 24};
        const Layer layer = Layer::create_initialized(c.config, c.input_shape, 1, options());
        EXPECT_NE(layer.kernel_name().find("_p2"), std::string::npos) << layer.kernel_name();
        // AVX-512 takes ymm vectors here (8 ymm FMAs per super voxel against 5 zmm ones).
        if (isa() == Isa::kAvx512)
          EXPECT_NE(layer.kernel_name().find("_ymm"), std::string::npos) << layer.kernel_name();
        const double error = testing::compare_with_reference(c, options(2), 700 + index++);
        EXPECT_LE(error, kTolerance) << c.describe() << " kernel " << layer.kernel_name();
      }
    }
  }
}

TEST_P(JitKernelTest, BitwiseIdenticalAcrossThreadCounts) {
  std::mt19937_64 rng(4242);
  for (int i = 0; i < 13; ++i) {
    testing::RandomCase c = testing::random_case(rng);
    if (i == 12) c = {testing::config_of(70, 4, 2, Padding::kSame), {1, 3, 4, 5, 250}};  // one kernel per channel group
    const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
    const testing::RandomLayerData d = testing::random_layer_data(g, rng);
    const ConstTensor b = c.config.use_bias ? ConstTensor{d.bias.data(), {g.out_channels}} : ConstTensor{};
    std::vector<std::vector<float>> outputs;
    for (int threads : {1, 2, 3}) {
      const Layer layer =
          Layer::create(c.config, c.input_shape, {d.kernel.data(), d.kernel_shape}, b, options(threads));
      outputs.emplace_back(static_cast<size_t>(layer.output_elements()));
      layer.forward(d.input.data(), outputs.back().data());
    }
    for (size_t t = 1; t < outputs.size(); ++t)
      ASSERT_EQ(0, std::memcmp(outputs[0].data(), outputs[t].data(), outputs[0].size() * sizeof(float)))
          << "threads 1 vs " << t + 1 << ": " << c.describe();
  }
}

TEST_P(JitKernelTest, ReportsWhatRuns) {
  testing::RandomCase c;
  c.config.filters = 8;
  c.config.kernel_size = {3, 3, 3};
  c.config.strides = {2, 2, 2};
  c.input_shape = {1, 4, 4, 4, 8};
  const Layer layer = Layer::create_initialized(c.config, c.input_shape, 1, options());
  EXPECT_EQ(layer.backend(), Backend::kXbyak);
  EXPECT_EQ(layer.isa(), to_string(isa()));
  EXPECT_NE(layer.kernel_name().find("tconv3d_f32_k3x3x3_s2x2x2"), std::string::npos);
  EXPECT_NE(layer.kernel_name().find("__" + to_string(isa())), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Targets, JitKernelTest, ::testing::ValuesIn(testing::targets({Backend::kXbyak})),
                         testing::target_name);

// A plan whose register tile needs more registers than the ISA has is
// refused by the emitter (it once compiled and silently computed garbage).
TEST(JitKernel, EmitterRefusesATileBeyondTheRegisters) {
  LayerConfig config;
  config.filters = 32;
  config.kernel_size = {3, 3, 3};
  Problem problem;
  problem.geometry = resolve_geometry(config, {1, 4, 4, 40, 8});
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    codegen::KernelPlan plan = codegen::make_plan(problem, isa);
    EXPECT_NO_THROW(x64::emit_tconv_kernel(plan));  // generating needs no CPU support
    plan.tile_w = plan.vector_registers / plan.oc_block;
    try {
      x64::emit_tconv_kernel(plan);
      ADD_FAILURE() << "a " << plan.tile_w << "x" << plan.oc_block << " tile was emitted for " << to_string(isa);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("does not fit"), std::string::npos) << e.what();
    }
  }
}

TEST(JitKernel, ForcingAvx512WithoutItIsAClearError) {
  const ScopedCpuFeatureMask no_avx512(CpuFeature::kAvx512);  // as on a CPU without it
  LayerConfig config;
  config.filters = 4;
  config.kernel_size = {2, 2, 2};
  LayerOptions o;
  o.backend = Backend::kXbyak;
  o.isa = Isa::kAvx512;
  try {
    Layer::create_initialized(config, {1, 2, 2, 2, 3}, 1, o);
    FAIL() << "forcing avx512 on a CPU without it was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "isa");
    EXPECT_NE(std::string(e.what()).find("avx512"), std::string::npos) << e.what();
  }
}

TEST(JitKernel, AutoPicksXbyakWhereTheCpuRunsIt) {
  if (!cpu_features().avx2_fma) GTEST_SKIP() << "no AVX2+FMA here: auto falls back to the generic kernel";
  LayerConfig config;
  config.filters = 4;
  config.kernel_size = {2, 2, 2};
  LayerOptions o;  // auto
  const Layer layer = Layer::create_initialized(config, {1, 2, 2, 2, 3}, 1, o);
  EXPECT_EQ(layer.backend(), Backend::kXbyak);
}

TEST(JitKernel, WithoutAvx2AutoFallsBackAndForcingXbyakIsAClearError) {
  const ScopedCpuFeatureMask no_avx2(CpuFeature::kAvx2Fma);  // as on a CPU with neither ISA
  LayerConfig config;
  config.filters = 4;
  config.kernel_size = {2, 2, 2};
  const Layer automatic = Layer::create_initialized(config, {1, 2, 2, 2, 3}, 1, LayerOptions{});
  EXPECT_EQ(automatic.backend(), Backend::kGeneric);
  EXPECT_EQ(automatic.isa(), "sse2");
  LayerOptions o;
  o.backend = Backend::kXbyak;
  try {
    Layer::create_initialized(config, {1, 2, 2, 2, 3}, 1, o);
    FAIL() << "xbyak was accepted on a CPU with neither AVX2+FMA nor AVX-512";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "backend");
    EXPECT_NE(std::string(e.what()).find("AVX2+FMA"), std::string::npos) << e.what();
  }
}

#else

TEST(JitKernel, XbyakBackendIsAClearErrorWithoutXbyak) {
  LayerConfig config;
  config.filters = 4;
  config.kernel_size = {2, 2, 2};
  LayerOptions o;
  o.backend = Backend::kXbyak;
  EXPECT_THROW(Layer::create_initialized(config, {1, 2, 2, 2, 3}, 1, o), Error);
}

#endif

}  // namespace
}  // namespace tconv3d
