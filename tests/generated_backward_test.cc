// Layer::backward on the code-generating backends (Xbyak and LLVM, each ISA
// through tests/isa_harness.hpp): both generated kernels, dx and dK, against
// the reference on random layers (odd sizes, both data formats, dilations,
// batch > 1, any activation), bitwise identity across 1, 2, 3 and 7 threads,
// and kernel names that say which backend emitted them.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "core/activation.hpp"
#include "tconv3d/layer.hpp"
#include "tests/isa_harness.hpp"
#include "tests/test_support.hpp"

namespace tconv3d {
namespace {

const char* const kActivations[] = {"linear", "relu", "elu", "silu", "gelu", "tanh", "sigmoid", "softmax", "glu"};

// A random layer small enough for the reference.
testing::RandomCase small_case(std::mt19937_64& rng) {
  for (;;) {
    testing::RandomCase c = testing::random_case(rng, false);
    const size_t n = sizeof kActivations / sizeof kActivations[0];
    c.config.activation = parse_activation_name(kActivations[std::uniform_int_distribution<size_t>(0, n - 1)(rng)],
                                                Flavor::kKeras3);
    try {
      const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
      if (c.config.activation.kind == ActivationKind::kGlu && g.output_shape()[4] % 2) continue;
      if (g.flops() > 3e6) continue;
    } catch (const std::exception&) {
      continue;
    }
    return c;
  }
}

struct Data {
  std::vector<float> x, k, b, y, dy;
  std::vector<int64_t> kshape;
};

struct Grads {
  std::vector<float> dx, dk, db;
};

Layer make_layer(const testing::RandomCase& c, const Data& d, const LayerOptions& options) {
  return Layer::create(c.config, c.input_shape, ConstTensor{d.k.data(), d.kshape},
                       c.config.use_bias ? ConstTensor{d.b.data(), {c.config.filters}} : ConstTensor{}, options);
}

LayerOptions reference_options() {
  LayerOptions options;
  options.backend = Backend::kReference;
  options.threads = 1;
  return options;
}

Data make_data(const testing::RandomCase& c, std::mt19937_64& rng) {
  const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
  Data d;
  d.kshape = {g.axes[0].kernel, g.axes[1].kernel, g.axes[2].kernel, g.out_channels, g.in_channels};
  d.x = testing::random_tensor(g.input_elements(), rng);
  d.k = testing::random_tensor(g.kernel_elements(), rng, -0.5f, 0.5f);
  if (c.config.use_bias) d.b = testing::random_tensor(g.out_channels, rng, -0.5f, 0.5f);
  const Layer reference = make_layer(c, d, reference_options());
  d.y.resize(size_t(reference.output_elements()));
  reference.forward(d.x.data(), d.y.data());
  d.dy = testing::random_tensor(reference.output_elements(), rng);
  return d;
}

Grads backward(const Layer& layer, const Data& d) {
  Grads g{std::vector<float>(d.x.size()), std::vector<float>(d.k.size()), std::vector<float>(d.b.size())};
  layer.backward(d.x.data(), d.y.data(), d.dy.data(), g.dx.data(), g.dk.data(), d.b.empty() ? nullptr : g.db.data());
  return g;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

class GeneratedBackward : public testing::TargetTest {};

TEST_P(GeneratedBackward, MatchesTheReferenceOnRandomLayers) {
  std::mt19937_64 rng(1600 + static_cast<int>(isa()));
  int channels_first = 0, dilated = 0, batched = 0;
  for (int i = 0; i < 120; ++i) {
    const testing::RandomCase c = small_case(rng);
    SCOPED_TRACE(c.describe());
    const Data d = make_data(c, rng);
    const Grads want = backward(make_layer(c, d, reference_options()), d);
    const Grads got = backward(make_layer(c, d, options(1 + i % 3)), d);
    EXPECT_LE(testing::scaled_max_error(got.dx, want.dx), 2e-5) << "dx";
    EXPECT_LE(testing::scaled_max_error(got.dk, want.dk), 2e-5) << "dk";
    EXPECT_LE(testing::scaled_max_error(got.db, want.db), 2e-5) << "db";
    if (HasFailure()) return;
    channels_first += c.config.data_format == DataFormat::kChannelsFirst ? 1 : 0;
    dilated += c.config.dilation_rate[0] * c.config.dilation_rate[1] * c.config.dilation_rate[2] > 1 ? 1 : 0;
    batched += c.input_shape[0] > 1 ? 1 : 0;
  }
  // The draw must reach the cases this test is meant to cover.
  EXPECT_GT(channels_first, 5);
  EXPECT_GT(dilated, 5);
  EXPECT_GT(batched, 5);
}

TEST_P(GeneratedBackward, BitwiseIdenticalForAnyThreadCount) {
  std::mt19937_64 rng(70 + static_cast<int>(isa()));
  for (int i = 0; i < 12; ++i) {
    const testing::RandomCase c = small_case(rng);
    SCOPED_TRACE(c.describe());
    const Data d = make_data(c, rng);
    const Grads one = backward(make_layer(c, d, options(1)), d);
    for (int threads : {2, 3, 7}) {
      const Grads many = backward(make_layer(c, d, options(threads)), d);
      EXPECT_TRUE(same_bits(one.dx, many.dx)) << threads << " threads, dx";
      EXPECT_TRUE(same_bits(one.dk, many.dk)) << threads << " threads, dk";
      EXPECT_TRUE(same_bits(one.db, many.db)) << threads << " threads, db";
    }
  }
}

// Both kernels are generated by the layer's backend: "tconv3d_dx_... + tconv3d_dk_...",
// each ending in "__llvm" for the LLVM backend.
TEST_P(GeneratedBackward, KernelNamesNameTheBackend) {
  std::mt19937_64 rng(5);
  const testing::RandomCase c = small_case(rng);
  const Data d = make_data(c, rng);
  const Layer layer = make_layer(c, d, options(2));
  const std::string names = layer.backward_kernel_names();
  const size_t plus = names.find(" + ");
  ASSERT_NE(std::string::npos, plus) << names;
  const std::string dx = names.substr(0, plus), dk = names.substr(plus + 3);
  EXPECT_EQ(0u, dx.rfind("tconv3d_dx_f32_", 0)) << names;
  EXPECT_EQ(0u, dk.rfind("tconv3d_dk_f32_", 0)) << names;
  const auto ends_llvm = [](const std::string& s) { return s.size() > 6 && s.compare(s.size() - 6, 6, "__llvm") == 0; };
  EXPECT_EQ(target().backend == Backend::kLlvm, ends_llvm(dx)) << names;
  EXPECT_EQ(target().backend == Backend::kLlvm, ends_llvm(dk)) << names;
  EXPECT_NE(std::string::npos, dk.find(target().isa_name())) << names;
}

INSTANTIATE_TEST_SUITE_P(Targets, GeneratedBackward,
                         ::testing::ValuesIn(testing::targets({Backend::kXbyak, Backend::kLlvm})),
                         testing::target_name);

}  // namespace
}  // namespace tconv3d
