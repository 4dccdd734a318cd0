// The generic kernel against the reference on hundreds of random layers.
#include <gtest/gtest.h>

#include "tests/test_support.hpp"

namespace tconv3d {
namespace {

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

}  // namespace
}  // namespace tconv3d
