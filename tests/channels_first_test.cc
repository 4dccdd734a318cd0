// channels_first layers against the reference kernel, on every backend that
// changes the layout itself (xbyak, llvm, generic) and every ISA
// (tests/isa_harness.hpp): random layers with batch > 1, odd spatial sizes and
// channel counts that are no multiple of any vector width; outputs large
// enough to be streamed; weights large enough to split the channel groups.
// The last two also require the exact numbers of the channels_last twin.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tconv3d/geometry.hpp"
#include "tests/isa_harness.hpp"
#include "tests/test_support.hpp"

namespace tconv3d {
namespace {

constexpr double kTolerance = 2e-5;  // of the output scale, as for channels_last

class ChannelsFirst : public testing::TargetTest {};

// A random channels_first layer: batch 2 or 3, odd D/H/W, odd channel counts.
testing::RandomCase random_channels_first_case(std::mt19937_64& rng) {
  auto odd = [&](int64_t lo, int64_t hi) { return 2 * std::uniform_int_distribution<int64_t>(lo, hi)(rng) + 1; };
  for (;;) {
    testing::RandomCase c = testing::random_case(rng, /*elementwise_activation_only=*/false);
    c.config.data_format = DataFormat::kChannelsFirst;
    c.config.filters = odd(0, 20);  // 1..41
    if (c.config.activation.kind == ActivationKind::kGlu) c.config.filters += 1;  // glu halves an even axis
    c.input_shape = {std::uniform_int_distribution<int64_t>(2, 3)(rng), odd(0, 18), odd(0, 2), odd(0, 2), odd(0, 3)};
    try {
      const ConvGeometry g = resolve_geometry(c.config, c.input_shape);
      if (c.config.activation.kind == ActivationKind::kGlu && g.output_shape()[4] % 2) continue;
      if (g.output_elements() > 400000 || g.flops() > 4e7) continue;
    } catch (const std::exception&) {
      continue;
    }
    return c;
  }
}

TEST_P(ChannelsFirst, MatchesReferenceOnRandomConfigs) {
  std::mt19937_64 rng(4040 + static_cast<int>(isa()));
  for (int i = 0; i < 30; ++i) {
    const testing::RandomCase c = random_channels_first_case(rng);
    const double error = testing::compare_with_reference(c, options(1 + i % 2), 6100 + i);
    ASSERT_LE(error, kTolerance) << "case " << i << ": " << c.describe();
  }
}

// Runs `config` channels_first into an output misaligned by `misalign` floats,
// and requires the reference's numbers and, exactly, those of the same target
// on the channels_last twin: the layout change must not round.
void expect_channels_first_right(LayerConfig config, const std::vector<int64_t>& cl_shape, const LayerOptions& options,
                                 int64_t misalign, bool per_group) {
  std::mt19937_64 rng(3);
  const int64_t n = cl_shape[0], d = cl_shape[1], h = cl_shape[2], w = cl_shape[3], c = cl_shape[4];
  const std::vector<int64_t> kshape = {config.kernel_size[0], config.kernel_size[1], config.kernel_size[2],
                                       config.filters, c};
  const std::vector<float> kernel = testing::random_tensor(kshape[0] * kshape[1] * kshape[2] * kshape[3] * c, rng);
  const std::vector<float> bias = testing::random_tensor(config.filters, rng);
  const std::vector<float> input_cl = testing::random_tensor(n * d * h * w * c, rng);
  std::vector<float> input_cf(input_cl.size());
  const int64_t spatial = d * h * w;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t v = 0; v < spatial; ++v)
      for (int64_t ch = 0; ch < c; ++ch)
        input_cf[static_cast<size_t>((b * c + ch) * spatial + v)] = input_cl[static_cast<size_t>((b * spatial + v) * c + ch)];
  const ConstTensor k{kernel.data(), kshape};
  const ConstTensor bt{bias.data(), {config.filters}};
  config.data_format = DataFormat::kChannelsLast;
  const Layer last = Layer::create(config, cl_shape, k, bt, options);
  config.data_format = DataFormat::kChannelsFirst;
  const Layer first = Layer::create(config, {n, c, d, h, w}, k, bt, options);
  LayerOptions reference_options;
  reference_options.backend = Backend::kReference;
  const Layer reference = Layer::create(config, {n, c, d, h, w}, k, bt, reference_options);
  if (options.backend != Backend::kGeneric)
    ASSERT_EQ(first.kernel_name().find("_per_group") != std::string::npos, per_group) << first.kernel_name();
  std::vector<float> out_cl(static_cast<size_t>(last.output_elements()));
  std::vector<float> expected(static_cast<size_t>(reference.output_elements()));
  std::vector<float> out_cf(static_cast<size_t>(first.output_elements() + misalign + 16), NAN);
  last.forward(input_cl.data(), out_cl.data());
  reference.forward(input_cf.data(), expected.data());
  const auto base = reinterpret_cast<uintptr_t>(out_cf.data());
  float* y = out_cf.data() + (64 - base % 64) % 64 / 4 + misalign;
  first.forward(input_cf.data(), y);
  const std::vector<float> actual(y, y + first.output_elements());
  EXPECT_LE(testing::scaled_max_error(actual, expected), kTolerance) << "against the reference, misalign " << misalign;
  const Shape5 s = first.output_shape();  // NCDHW
  const int64_t out_spatial = s[2] * s[3] * s[4], oc = s[1];
  for (int64_t b = 0; b < s[0]; ++b)
    for (int64_t ch = 0; ch < oc; ++ch)
      for (int64_t v = 0; v < out_spatial; ++v)
        ASSERT_EQ(y[(b * oc + ch) * out_spatial + v], out_cl[static_cast<size_t>((b * out_spatial + v) * oc + ch)])
            << "against channels_last: n " << b << " channel " << ch << " voxel " << v << " misalign " << misalign;
}

TEST_P(ChannelsFirst, LargeStreamedOutput) {
  LayerConfig config;
  config.filters = 28;  // a 2.4 MB output: streamed
  config.kernel_size = {2, 2, 2};
  config.strides = {2, 2, 2};
  for (int64_t misalign : {0, 1, 5})
    expect_channels_first_right(config, {1, 12, 14, 16, 9}, options(1 + misalign % 2), misalign, false);
}

TEST_P(ChannelsFirst, SplitChannelGroups) {
  LayerConfig config;
  config.filters = 200;
  config.kernel_size = {3, 3, 3};
  config.strides = {2, 1, 2};
  config.activation.kind = ActivationKind::kRelu;
  config.activation.name = "relu";
  expect_channels_first_right(config, {2, 2, 3, 9, 160}, options(2), 3, true);
}

INSTANTIATE_TEST_SUITE_P(Targets, ChannelsFirst,
                         ::testing::ValuesIn(testing::targets({Backend::kXbyak, Backend::kLlvm, Backend::kGeneric})),
                         testing::target_name);

}  // namespace
}  // namespace tconv3d
