// The layer lifecycle: create once, reshape for other input shapes, run.
// Reshaped layers match the reference, share one packing of the weights (its
// layout depends only on the layer and the ISA), and a shape seen before
// compiles nothing.
#include <gtest/gtest.h>

#include <random>

#include "core/cpu_features.hpp"
#include "plan/plan.hpp"
#include "runtime/kernel_cache.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/tconv3d.h"
#include "tests/test_support.hpp"

namespace tconv3d {
namespace {

constexpr double kTolerance = 2e-5;

struct Target {
  Backend backend;
  Isa isa;
};

// The code-generating backends this build has, on the ISAs this CPU runs.
std::vector<Target> generated_targets() {
  std::vector<Target> targets;
  std::vector<Backend> backends;
#ifdef TCONV3D_HAVE_XBYAK
  backends.push_back(Backend::kXbyak);
#endif
#ifdef TCONV3D_HAVE_LLVM
  backends.push_back(Backend::kLlvm);
#endif
  for (Backend b : backends) {
    if (cpu_features().avx2_fma) targets.push_back({b, Isa::kAvx2});
    if (cpu_features().avx512) targets.push_back({b, Isa::kAvx512});
  }
  return targets;
}

std::vector<float> run(const Layer& layer, const std::vector<float>& input) {
  std::vector<float> out(static_cast<size_t>(layer.output_elements()));
  layer.forward(input.data(), out.data());
  return out;
}

std::vector<float> reference(const Layer& layer, const std::vector<float>& input) {
  LayerOptions o;
  o.backend = Backend::kReference;
  const LayerConfig& c = layer.config();
  const Shape5 in = layer.input_shape();
  const std::vector<int64_t> kernel_shape{c.kernel_size[0], c.kernel_size[1], c.kernel_size[2], c.filters,
                                          layer.geometry().in_channels};
  const ConstTensor bias = c.use_bias ? ConstTensor{layer.bias().data(), {c.filters}} : ConstTensor{};
  const Layer ref = Layer::create(c, std::vector<int64_t>(in.begin(), in.end()),
                                  {layer.kernel().data(), kernel_shape}, bias, o);
  return run(ref, input);
}

// Another shape of the same layer: batch and every spatial size redrawn.
std::vector<int64_t> other_shape(const std::vector<int64_t>& shape, DataFormat format, std::mt19937_64& rng) {
  std::vector<int64_t> s = shape;
  std::uniform_int_distribution<int64_t> batch(1, 3), size(1, 9);
  s[0] = batch(rng);
  const int first = format == DataFormat::kChannelsLast ? 1 : 2;
  for (int a = 0; a < 3; ++a) s[static_cast<size_t>(first + a)] = size(rng);
  return s;
}

TEST(LayerReshape, EveryShapeMatchesTheReferenceAndSharesOnePacking) {
  const std::vector<Target> targets = generated_targets();
  if (targets.empty()) GTEST_SKIP() << "no code-generating backend runs on this CPU in this build";
  std::mt19937_64 rng(4242);
  for (const Target& t : targets) {
    const int cases = t.backend == Backend::kLlvm ? 8 : 24;  // LLVM compiles take ~20 ms each
    for (int i = 0; i < cases; ++i) {
      const testing::RandomCase c = testing::random_case(rng, /*elementwise_activation_only=*/i % 3 != 0);
      LayerOptions o;
      o.backend = t.backend;
      o.isa = t.isa;
      o.threads = 1 + i % 2;
      const Layer first = Layer::create_initialized(c.config, c.input_shape, 900 + i, o);
      for (int k = 0; k < 4; ++k) {
        std::vector<int64_t> shape = other_shape(c.input_shape, c.config.data_format, rng);
        Layer shaped = [&] {
          try {
            return first.reshape(shape);
          } catch (const Error&) {
            return first.reshape(c.input_shape);  // a drawn shape Keras rejects (e.g. glu on an odd axis)
          }
        }();
        const std::vector<float> input =
            testing::random_tensor(shaped.geometry().input_elements(), rng);
        const double error = testing::scaled_max_error(run(shaped, input), reference(shaped, input));
        ASSERT_LE(error, kTolerance) << to_string(t.backend) << "/" << to_string(t.isa) << " case " << i
                                     << " reshaped to " << shape_to_string(shape) << ": " << c.describe();
      }
      EXPECT_EQ(first.weight_packs(), 1) << to_string(t.backend) << "/" << to_string(t.isa) << " case " << i
                                         << ": " << c.describe();
    }
  }
}

TEST(LayerReshape, AShapeSeenBeforeCompilesNothing) {
  const std::vector<Target> targets = generated_targets();
  if (targets.empty()) GTEST_SKIP() << "no code-generating backend runs on this CPU in this build";
  LayerConfig config;
  config.filters = 24;
  config.kernel_size = {3, 3, 3};
  config.strides = {2, 2, 2};
  config.padding = Padding::kSame;
  for (const Target& t : targets) {
    LayerOptions o;
    o.backend = t.backend;
    o.isa = t.isa;
    const Layer layer = Layer::create_initialized(config, {1, 5, 6, 7, 12}, 3, o);
    const Layer wider = layer.reshape({2, 5, 6, 11, 12});
    const uint64_t compiles = KernelCache::global().stats().misses;
    const Layer again = layer.reshape({2, 5, 6, 11, 12});
    const Layer deeper_batch = layer.reshape({7, 9, 3, 11, 12});  // D, H and the batch never change the code
    EXPECT_EQ(KernelCache::global().stats().misses, compiles) << to_string(t.backend) << "/" << to_string(t.isa);
    EXPECT_EQ(again.kernel_name(), wider.kernel_name());
    EXPECT_EQ(layer.weight_packs(), 1);
  }
}

TEST(LayerReshape, OtherChannelsOrRankAreClearErrors) {
  LayerConfig config;
  config.filters = 4;
  config.kernel_size = {2, 2, 2};
  const Layer layer = Layer::create_initialized(config, {1, 3, 3, 3, 5}, 1);
  try {
    (void)layer.reshape({1, 3, 3, 3, 6});
    FAIL() << "6 input channels for a kernel that takes 5 were accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "input_shape");
    EXPECT_NE(std::string(e.what()).find("takes 5"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)layer.reshape({1, 3, 3, 5}), Error);
  EXPECT_THROW((void)layer.reshape({1, 0, 3, 3, 5}), Error);
}

// ONNX and PyTorch layers carry their crops in the geometry: a reshaped one
// keeps them at both ends of every axis.
TEST(LayerReshape, ExplicitGeometryKeepsItsCrops) {
  ConvGeometry g;
  g.batch = 1;
  g.in_channels = 3;
  g.out_channels = 5;
  const int64_t crop_begin[3] = {1, 0, 2}, crop_end[3] = {0, 1, 1};
  for (int a = 0; a < 3; ++a) {
    AxisGeometry& ax = g.axes[a];
    ax.in = 4;
    ax.kernel = 3;
    ax.stride = 2;
    ax.crop_begin = crop_begin[a];
    ax.out = ax.full_out() - crop_begin[a] - crop_end[a];
  }
  std::mt19937_64 rng(99);
  const std::vector<float> kernel = testing::random_tensor(g.kernel_elements(), rng);
  const std::vector<float> bias = testing::random_tensor(5, rng);
  const std::vector<int64_t> kshape{3, 3, 3, 5, 3};
  const Layer layer = Layer::create_from_geometry(g, Activation{}, {kernel.data(), kshape}, {bias.data(), {5}});
  const Layer shaped = layer.reshape({2, 6, 3, 5, 3});
  ConvGeometry expected = g;
  expected.batch = 2;
  const int64_t ins[3] = {6, 3, 5};
  for (int a = 0; a < 3; ++a) {
    expected.axes[a].in = ins[a];
    expected.axes[a].out = expected.axes[a].full_out() - crop_begin[a] - crop_end[a];
  }
  EXPECT_EQ(shaped.geometry(), expected);
  LayerOptions o;
  o.backend = Backend::kReference;
  const Layer direct = Layer::create_from_geometry(expected, Activation{}, {kernel.data(), kshape},
                                                   {bias.data(), {5}}, o);
  const std::vector<float> input = testing::random_tensor(expected.input_elements(), rng);
  EXPECT_LE(testing::scaled_max_error(run(shaped, input), run(direct, input)), kTolerance);
}

// The packed layout depends only on the layer and the ISA.
TEST(LayerReshape, WeightLayoutIgnoresTheInputSize) {
  std::mt19937_64 rng(17);
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    for (int i = 0; i < 200; ++i) {
      const testing::RandomCase c = testing::random_case(rng);
      std::vector<std::string> warnings;
      const ConvGeometry g = resolve_geometry(c.config, c.input_shape, &warnings);
      const std::string key =
          codegen::make_plan(make_problem(g, c.config.use_bias, c.config.activation), isa).weight_layout_key();
      for (int k = 0; k < 3; ++k) {
        const std::vector<int64_t> shape = other_shape(c.input_shape, c.config.data_format, rng);
        ConvGeometry other;
        try {
          other = resolve_geometry(c.config, shape, &warnings);
        } catch (const Error&) {
          continue;
        }
        const codegen::KernelPlan plan =
            codegen::make_plan(make_problem(other, c.config.use_bias, c.config.activation), isa);
        ASSERT_EQ(plan.weight_layout_key(), key) << c.describe() << " at " << shape_to_string(shape);
      }
    }
  }
}

TEST(LayerReshape, CApiReshapesAndReportsBadShapes) {
  const char* config = R"({"filters": 6, "kernel_size": 3, "strides": 2, "padding": "same"})";
  const int64_t shape[5] = {1, 4, 4, 4, 5};
  char error[256] = {};
  tconv3d_layer* layer = nullptr;
  ASSERT_EQ(tconv3d_layer_create_initialized_from_json(config, shape, 5, 7, nullptr, &layer, error, sizeof error),
            TCONV3D_OK)
      << error;
  const int64_t bigger[5] = {3, 5, 2, 7, 5};
  tconv3d_layer* reshaped = nullptr;
  ASSERT_EQ(tconv3d_layer_reshape(layer, bigger, 5, &reshaped, error, sizeof error), TCONV3D_OK) << error;
  int64_t out[5] = {};
  ASSERT_EQ(tconv3d_layer_output_shape(reshaped, out), TCONV3D_OK);
  EXPECT_EQ(std::vector<int64_t>(out, out + 5), (std::vector<int64_t>{3, 10, 4, 14, 6}));

  std::mt19937_64 rng(5);
  const std::vector<float> input = testing::random_tensor(3 * 5 * 2 * 7 * 5, rng);
  std::vector<float> y(3 * 10 * 4 * 14 * 6);
  ASSERT_EQ(tconv3d_layer_forward(reshaped, input.data(), y.data(), error, sizeof error), TCONV3D_OK) << error;
  LayerConfig keras;
  keras.filters = 6;
  keras.kernel_size = {3, 3, 3};
  keras.strides = {2, 2, 2};
  keras.padding = Padding::kSame;
  const Layer cpp = Layer::create_initialized(keras, {3, 5, 2, 7, 5}, 7);
  EXPECT_LE(testing::scaled_max_error(y, run(cpp, input)), kTolerance);

  const int64_t wrong_channels[5] = {1, 4, 4, 4, 6};
  tconv3d_layer* bad = reinterpret_cast<tconv3d_layer*>(&error);
  EXPECT_EQ(tconv3d_layer_reshape(layer, wrong_channels, 5, &bad, error, sizeof error), TCONV3D_INVALID_ARGUMENT);
  EXPECT_EQ(bad, nullptr);
  EXPECT_NE(std::string(error).find("input_shape"), std::string::npos) << error;
  EXPECT_EQ(tconv3d_layer_reshape(nullptr, bigger, 5, &bad, error, sizeof error), TCONV3D_INVALID_ARGUMENT);
  tconv3d_layer_destroy(reshaped);
  tconv3d_layer_destroy(layer);
}

}  // namespace
}  // namespace tconv3d
