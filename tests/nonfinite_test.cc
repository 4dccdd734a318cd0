// NaN, +Inf and -Inf inputs reach exactly the outputs Keras (and the
// reference backend) gives them, on every target, in float32 and bf16.
// Lane-packed plans (kernel names with _p2.._p4) hold several W phases in one
// vector, with a padding weight of 0 in the lanes of a phase that has no tap
// at an input offset: an FMA of a NaN or Inf input into those lanes would make
// NaNs (0 * Inf, 0 * NaN) in outputs that are finite in Keras.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.hpp"
#include "isa_harness.hpp"
#include "tconv3d/bfloat16.hpp"
#include "tconv3d/layer.hpp"
#include "test_support.hpp"

namespace tconv3d {
namespace {

using testing::RandomCase;

// 0 finite, 1 NaN, 2 +Inf, 3 -Inf.
int kind_of(float x) {
  if (std::isnan(x)) return 1;
  if (std::isinf(x)) return x > 0 ? 2 : 3;
  return 0;
}

bool lane_packed(const std::string& kernel) {
  for (const char* p : {"_p2", "_p3", "_p4"})
    if (kernel.find(p) != std::string::npos) return true;
  return false;
}

// Index of input element (n, d, h, w, c) in the case's layout.
int64_t input_index(const RandomCase& c, int64_t n, int64_t d, int64_t h, int64_t w, int64_t ch) {
  const auto& s = c.input_shape;
  if (c.config.data_format == DataFormat::kChannelsLast) return (((n * s[1] + d) * s[2] + h) * s[3] + w) * s[4] + ch;
  return (((n * s[1] + ch) * s[2] + d) * s[3] + h) * s[4] + w;
}

// NaN, +Inf and -Inf at random voxels and channels; the W coordinate is the
// row's first, its last or any (the border super voxels are partial).
template <typename Set>
void place_nonfinite(const RandomCase& c, std::mt19937_64& rng, Set set) {
  const auto& s = c.input_shape;
  const bool last = c.config.data_format == DataFormat::kChannelsLast;
  const int64_t cin = last ? s[4] : s[1];
  const int64_t d = last ? s[1] : s[2], h = last ? s[2] : s[3], w = last ? s[3] : s[4];
  auto pick = [&](int64_t n) { return static_cast<int64_t>(rng() % static_cast<uint64_t>(n)); };
  const float values[] = {NAN, INFINITY, -INFINITY};
  for (int i = 0; i < 3; ++i) {
    const int64_t where = pick(3);
    const int64_t x = where == 0 ? 0 : where == 1 ? w - 1 : pick(w);
    set(input_index(c, pick(s[0]), pick(d), pick(h), x, pick(cin)), values[i]);
  }
}

RandomCase linear(RandomCase c) {
  c.config.activation = Activation{};  // NaN/Inf reach the output unchanged
  return c;
}

// The float32 cases: lane-packed in one vector, lane-packed over several
// vectors (stride x filters past the lanes), and unpacked.
std::vector<RandomCase> float32_cases(int64_t lanes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<RandomCase> cases;
  for (int i = 0; cases.size() < 16; ++i)
    if (auto c = testing::random_lane_packed_case(rng, lanes)) cases.push_back(linear(*c));
  while (cases.size() < 26) {
    auto c = testing::random_lane_packed_case(rng, lanes);
    if (!c) continue;
    const int64_t stride = c->config.strides[2];
    const int64_t lo = lanes / stride + 1, hi = 62 / stride;
    c->config.filters = lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo + 1));
    cases.push_back(linear(*c));
  }
  while (cases.size() < 32) cases.push_back(linear(testing::random_case(rng)));
  return cases;
}

class NonFinite : public testing::TargetTest {};

TEST_P(NonFinite, Float32PositionsEqualTheReference) {
  int packed = 0;
  uint64_t seed = 100;
  for (const RandomCase& c : float32_cases(target().lanes(), 7)) {
    ++seed;
    std::mt19937_64 rng(seed);
    const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
    const std::vector<int64_t> kshape = {g.axes[0].kernel, g.axes[1].kernel, g.axes[2].kernel, g.out_channels,
                                         g.in_channels};
    const std::vector<float> kernel = testing::random_tensor(g.kernel_elements(), rng);
    const std::vector<float> bias = testing::random_tensor(g.out_channels, rng);
    std::vector<float> input = testing::random_tensor(g.input_elements(), rng);
    place_nonfinite(c, rng, [&](int64_t i, float v) { input[static_cast<size_t>(i)] = v; });
    const ConstTensor k{kernel.data(), kshape};
    const ConstTensor b = c.config.use_bias ? ConstTensor{bias.data(), {g.out_channels}} : ConstTensor{};
    LayerOptions ref_options;
    ref_options.backend = Backend::kReference;
    const Layer reference = Layer::create(c.config, c.input_shape, k, b, ref_options);
    const Layer tested = Layer::create(c.config, c.input_shape, k, b, options());
    std::vector<float> expected(static_cast<size_t>(reference.output_elements()));
    std::vector<float> actual(expected.size(), 0.0f);
    reference.forward(input.data(), expected.data());
    tested.forward(input.data(), actual.data());
    packed += lane_packed(tested.kernel_name());
    int64_t wrong = 0, first = -1, nonfinite = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
      nonfinite += kind_of(expected[i]) != 0;
      if (kind_of(expected[i]) != kind_of(actual[i])) {
        if (first < 0) first = static_cast<int64_t>(i);
        ++wrong;
      }
    }
    EXPECT_EQ(wrong, 0) << c.describe() << " kernel " << tested.kernel_name() << ": " << wrong
                        << " outputs of another kind (" << nonfinite << " non-finite expected), first at " << first
                        << ": " << actual[static_cast<size_t>(first < 0 ? 0 : first)] << " against "
                        << expected[static_cast<size_t>(first < 0 ? 0 : first)];
  }
  // The JIT backends pack most of the lane-packed draws.
  if (target().backend != Backend::kGeneric) EXPECT_GE(packed, 8) << "too few lane-packed kernels drawn";
}

INSTANTIATE_TEST_SUITE_P(Targets, NonFinite,
                         ::testing::ValuesIn(testing::targets({Backend::kXbyak, Backend::kLlvm})),
                         testing::target_name);

// bf16 (AVX-512 with AVX512_BF16, channels_last): the same against the bf16
// reference, lane-packed in one zmm of 16 lanes.
class NonFiniteBf16 : public testing::TargetTest {};

TEST_P(NonFiniteBf16, PositionsEqualTheBf16Reference) {
  if (isa() != Isa::kAvx512) GTEST_SKIP() << "bf16 runs on avx512 only";
  if (!detected_cpu_features().avx512_bf16) GTEST_SKIP() << "this CPU lacks avx512_bf16";
  std::mt19937_64 draw(11);
  int packed = 0, cases = 0;
  uint64_t seed = 200;
  while (cases < 24) {
    auto drawn = cases < 18 ? testing::random_lane_packed_case(draw, 16)
                            : std::optional<RandomCase>(testing::random_case(draw));
    if (!drawn) continue;
    RandomCase c = linear(*drawn);
    if (c.config.data_format == DataFormat::kChannelsFirst) {
      const auto s = c.input_shape;
      c.input_shape = {s[0], s[2], s[3], s[4], s[1]};
      c.config.data_format = DataFormat::kChannelsLast;
    }
    ++cases;
    std::mt19937_64 rng(++seed);
    const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
    const std::vector<int64_t> kshape = {g.axes[0].kernel, g.axes[1].kernel, g.axes[2].kernel, g.out_channels,
                                         g.in_channels};
    const std::vector<float> kernel = testing::random_tensor(g.kernel_elements(), rng);
    const std::vector<float> bias = testing::random_tensor(g.out_channels, rng);
    std::vector<uint16_t> input;
    for (float x : testing::random_tensor(g.input_elements(), rng)) input.push_back(float_to_bf16(x));
    place_nonfinite(c, rng, [&](int64_t i, float v) { input[static_cast<size_t>(i)] = float_to_bf16(v); });
    const ConstTensor k{kernel.data(), kshape};
    const ConstTensor b = c.config.use_bias ? ConstTensor{bias.data(), {g.out_channels}} : ConstTensor{};
    LayerOptions ref_options;
    ref_options.backend = Backend::kReference;
    ref_options.dtype = DataType::kBfloat16;
    LayerOptions tested_options = options();
    tested_options.dtype = DataType::kBfloat16;
    const Layer reference = Layer::create(c.config, c.input_shape, k, b, ref_options);
    const Layer tested = Layer::create(c.config, c.input_shape, k, b, tested_options);
    std::vector<uint16_t> expected(static_cast<size_t>(reference.output_elements()));
    std::vector<uint16_t> actual(expected.size(), 0);
    reference.forward_bf16(input.data(), expected.data());
    tested.forward_bf16(input.data(), actual.data());
    packed += lane_packed(tested.kernel_name());
    int64_t wrong = 0, first = -1;
    for (size_t i = 0; i < expected.size(); ++i)
      if (kind_of(bf16_to_float(expected[i])) != kind_of(bf16_to_float(actual[i]))) {
        if (first < 0) first = static_cast<int64_t>(i);
        ++wrong;
      }
    EXPECT_EQ(wrong, 0) << c.describe() << " kernel " << tested.kernel_name() << ": " << wrong
                        << " outputs of another kind, first at " << first;
  }
  EXPECT_GE(packed, 6) << "too few lane-packed bf16 kernels drawn";
}

INSTANTIATE_TEST_SUITE_P(Targets, NonFiniteBf16,
                         ::testing::ValuesIn(testing::targets({Backend::kXbyak, Backend::kLlvm})),
                         testing::target_name);

}  // namespace
}  // namespace tconv3d
