// The generic kernel against the reference: hundreds of random layers through
// the Layer API, then every instruction set this CPU runs (SSE2 baseline,
// AVX2, AVX-512) on random layers and on awkward channel counts in both data
// formats, and bitwise identity across thread counts.
#include <gtest/gtest.h>

#include <cstring>

#include "core/activation.hpp"
#include "core/cpu_features.hpp"
#include "runtime/kernels/generic.hpp"
#include "runtime/kernels/reference.hpp"
#include "tconv3d/error.hpp"
#include "tests/isa_harness.hpp"
#include "tests/test_support.hpp"

namespace tconv3d {
namespace {

using generic::GenericIsa;

TEST(GenericKernel, MatchesReferenceOnRandomConfigs) {
  std::mt19937_64 rng(20261126);
  constexpr int kCases = 520;
  for (int i = 0; i < kCases; ++i) {
    const testing::RandomCase c = testing::random_case(rng, /*elementwise_activation_only=*/false);
    for (int threads : {1, 2}) {
      LayerOptions options;
      options.backend = Backend::kGeneric;
      options.threads = threads;
      const double error = testing::compare_with_reference(c, options, 1000 + i);
      ASSERT_LE(error, 1e-5) << "case " << i << " threads " << threads << ": " << c.describe();
    }
  }
}

// Runs the generic kernel of one ISA and the reference on the same random
// weights and input; returns the scaled max error and checks that 1, 2 and 3
// threads give bitwise the same output.
double check_isa(const LayerConfig& config, const std::vector<int64_t>& input_shape, GenericIsa isa, uint64_t seed,
                 const std::string& what) {
  std::mt19937_64 rng(seed);
  const Problem problem = make_problem(resolve_geometry(config, input_shape), config.use_bias, config.activation);
  const ConvGeometry& g = problem.geometry;
  std::vector<float> kernel = testing::random_tensor(g.kernel_elements(), rng);
  std::vector<float> bias = config.use_bias ? testing::random_tensor(g.out_channels, rng) : std::vector<float>{};
  const std::vector<float> input = testing::random_tensor(g.input_elements(), rng);
  const auto tested = make_generic_executor_for(problem, kernel.data(), config.use_bias ? bias.data() : nullptr, isa);
  EXPECT_EQ(tested->isa(), generic::to_string(isa));
  const auto reference = make_reference_executor(problem, kernel, bias);
  std::vector<float> expected(size_t(g.output_elements()));
  reference->run(input.data(), expected.data(), 1);
  std::vector<float> first(size_t(g.output_elements()), NAN);
  tested->run(input.data(), first.data(), 1);
  for (int threads : {2, 3}) {
    std::vector<float> again(size_t(g.output_elements()), NAN);
    tested->run(input.data(), again.data(), threads);
    EXPECT_EQ(0, std::memcmp(first.data(), again.data(), first.size() * sizeof(float)))
        << what << ": " << threads << " threads differ bitwise from 1 thread";
  }
  return testing::scaled_max_error(first, expected);
}

// Once per instruction set of the generic kernel (tests/isa_harness.hpp).
class GenericKernelIsa : public testing::TargetTest {};

TEST_P(GenericKernelIsa, MatchesReferenceOnRandomConfigs) {
  std::mt19937_64 rng(77 + int(target().generic_isa()));
  for (int i = 0; i < 80; ++i) {
    const testing::RandomCase c = testing::random_case(rng, /*elementwise_activation_only=*/true);
    const double error = check_isa(c.config, c.input_shape, target().generic_isa(), 5000 + i, c.describe());
    ASSERT_LE(error, 1e-5) << "case " << i << ": " << c.describe();
  }
}

// Filter and input-channel counts around every vector width and register
// tile (1, 4, 8, 16 lanes; 1-4 vectors per voxel), in both data formats, with
// strides and kernels whose phases have 0, 1 or several taps.
TEST_P(GenericKernelIsa, AwkwardChannelCountsBothFormats) {
  const int64_t filters[] = {1, 3, 4, 5, 7, 9, 12, 15, 17, 20, 24, 31, 33, 40, 47, 49, 63, 65, 80, 97, 130};
  const int64_t in_channels[] = {1, 3, 17, 33};
  int index = 0;
  for (int64_t f : filters) {
    for (int64_t cin : in_channels) {
      for (DataFormat format : {DataFormat::kChannelsLast, DataFormat::kChannelsFirst}) {
        ++index;
        LayerConfig config;
        config.filters = f;
        const int shape_kind = index % 4;
        config.kernel_size = shape_kind == 0 ? Triple{3, 3, 3} : shape_kind == 1 ? Triple{2, 4, 1} : Triple{1, 3, 2};
        config.strides = shape_kind == 2 ? Triple{3, 1, 3} : Triple{2, 2, 1};  // stride 3 > kernel 1, 2
        config.padding = index % 3 == 0 ? Padding::kValid : Padding::kSame;
        if (shape_kind == 3) config.output_padding = Triple{1, 0, 0};
        config.data_format = format;
        config.use_bias = index % 5 != 0;
        config.activation = parse_activation_name(index % 2 ? "relu" : "sigmoid", Flavor::kKeras3);
        const int64_t d = 2 + index % 3, h = 3, w = 2 + index % 5, batch = index % 7 == 0 ? 2 : 1;
        const std::vector<int64_t> shape = format == DataFormat::kChannelsLast
                                               ? std::vector<int64_t>{batch, d, h, w, cin}
                                               : std::vector<int64_t>{batch, cin, d, h, w};
        const std::string what = "filters " + std::to_string(f) + " in_channels " + std::to_string(cin) +
                                 (format == DataFormat::kChannelsLast ? " channels_last" : " channels_first") +
                                 " shape_kind " + std::to_string(shape_kind);
        const double error = check_isa(config, shape, target().generic_isa(), 9000 + index, what);
        ASSERT_LE(error, 1e-5) << what;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, GenericKernelIsa, ::testing::ValuesIn(testing::targets({Backend::kGeneric})),
                         testing::target_name);

TEST(GenericKernel, ForcingAnIsaTheCpuLacksIsAnError) {
  Problem problem;
  LayerConfig config;
  config.filters = 2;
  config.kernel_size = Triple{1, 1, 1};
  problem.geometry = resolve_geometry(config, {1, 1, 1, 1, 1});
  const float kernel[2] = {1, 2}, bias[2] = {0, 0};
  {
    const ScopedCpuFeatureMask no_avx512(CpuFeature::kAvx512);  // as on an AVX2-only CPU
    EXPECT_THROW(make_generic_executor_for(problem, kernel, bias, GenericIsa::kAvx512), Error);
    EXPECT_NE(best_generic_isa(), GenericIsa::kAvx512);
  }
  const ScopedCpuFeatureMask no_avx2(CpuFeature::kAvx2Fma);  // as on an SSE2-only CPU
  EXPECT_THROW(make_generic_executor_for(problem, kernel, bias, GenericIsa::kAvx2), Error);
  EXPECT_THROW(make_generic_executor_for(problem, kernel, bias, GenericIsa::kAvx512), Error);
  EXPECT_EQ(best_generic_isa(), GenericIsa::kSse2);
  EXPECT_EQ(make_generic_executor(problem, kernel, bias)->isa(), "sse2");
}

}  // namespace
}  // namespace tconv3d
