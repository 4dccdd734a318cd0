// The LLVM backend through the shared row executor: weights large enough to
// split the channel groups (one LLVM kernel per group, each activating only
// its own channels), channels_first inputs (blocked output transpose), both
// against the reference and bitwise identical for any thread count; and the
// lane-packed plans (few filters, W stride > 1) the LLVM kernels implement.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tconv3d/error.hpp"
#include "tconv3d/geometry.hpp"
#include "tconv3d/layer.hpp"
#include "tests/isa_harness.hpp"
#include "tests/test_support.hpp"

namespace tconv3d {
namespace {

#ifdef TCONV3D_HAVE_LLVM

// Each test runs once per ISA (tests/isa_harness.hpp).
class LlvmRowExecutor : public testing::TargetTest {};

// 200 filters x 160 input channels x 27 taps: 3.5 MB of weights, split into
// channel groups; 200 = 12.5 AVX-512 vectors, so the last group has a masked tail.
LayerConfig split_group_config(DataFormat format) {
  LayerConfig config;
  config.filters = 200;
  config.kernel_size = {3, 3, 3};
  config.strides = {2, 1, 2};
  config.padding = Padding::kSame;
  config.data_format = format;
  config.activation.kind = ActivationKind::kElu;  // applied twice or never would show
  config.activation.alpha = 1.0;
  config.activation.name = "elu";
  return config;
}

std::vector<int64_t> shape_of(DataFormat format) {
  return format == DataFormat::kChannelsLast ? std::vector<int64_t>{2, 2, 3, 9, 160}
                                             : std::vector<int64_t>{2, 160, 2, 3, 9};
}

TEST_P(LlvmRowExecutor, SplitChannelGroupsMatchReferenceInBothLayouts) {
  for (DataFormat format : {DataFormat::kChannelsLast, DataFormat::kChannelsFirst}) {
    testing::RandomCase c;
    c.config = split_group_config(format);
    c.input_shape = shape_of(format);
    const Layer probe = Layer::create_initialized(c.config, c.input_shape, 1, options(2));
    const std::string name = probe.kernel_name();
    EXPECT_NE(name.find("__llvm"), std::string::npos) << name;
    EXPECT_NE(name.find("_per_group"), std::string::npos) << name;
    EXPECT_LE(testing::compare_with_reference(c, options(2), 5), 1e-5) << to_string(format) << ": " << name;
  }
}

TEST_P(LlvmRowExecutor, SplitGroupsAndChannelsFirstAreBitwiseIdenticalForAnyThreadCount) {
  std::mt19937_64 rng(17);
  for (DataFormat format : {DataFormat::kChannelsLast, DataFormat::kChannelsFirst}) {
    const LayerConfig config = split_group_config(format);
    const std::vector<int64_t> shape = shape_of(format);
    std::vector<float> input = testing::random_tensor(2 * 2 * 3 * 9 * 160, rng);
    std::vector<float> reference_output;
    for (int threads : {1, 2, 3, 7}) {
      const Layer layer = Layer::create_initialized(config, shape, 9, options(threads));
      std::vector<float> output(static_cast<size_t>(layer.output_elements()));
      layer.forward(input.data(), output.data());
      if (reference_output.empty()) {
        reference_output = output;
        continue;
      }
      ASSERT_EQ(output.size(), reference_output.size());
      for (size_t i = 0; i < output.size(); ++i)
        ASSERT_EQ(output[i], reference_output[i]) << to_string(format) << " threads " << threads << " at " << i;
    }
  }
}

// Few output channels and a W stride > 1: one vector holds several W phases,
// and super voxels at the row ends store only their lanes inside the row.
TEST_P(LlvmRowExecutor, LanePackedFewChannelsMatchReference) {
  std::mt19937_64 rng(23 + static_cast<int>(isa()));
  int packed = 0;
  for (int i = 0; i < 60; ++i) {
    const std::optional<testing::RandomCase> drawn = testing::random_lane_packed_case(rng, target().lanes());
    if (!drawn) continue;
    const testing::RandomCase& c = *drawn;
    const Layer layer = Layer::create_initialized(c.config, c.input_shape, 1, options(1 + i % 2));
    packed += layer.kernel_name().find("_p") != std::string::npos;
    ASSERT_LE(testing::compare_with_reference(c, options(1 + i % 2), 700 + i), 1e-5)
        << "case " << i << ": " << c.describe() << " " << layer.kernel_name();
  }
  EXPECT_GE(packed, 25) << "too few random layers took the lane-packed kernel";
}

INSTANTIATE_TEST_SUITE_P(Targets, LlvmRowExecutor, ::testing::ValuesIn(testing::targets({Backend::kLlvm})),
                         testing::target_name);

#endif  // TCONV3D_HAVE_LLVM

}  // namespace
}  // namespace tconv3d
