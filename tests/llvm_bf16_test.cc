// bf16 forward on the LLVM backend (emit/llvm/ir_bf16_kernel): against the
// bf16 reference on random layers (odd Cin, batch > 1, activations,
// channels_first, lane-packed heads, per-group kernels, 1 and 2 threads), the
// odd Cin tail, NaN/Inf, and bitwise equality with the Xbyak bf16 kernel
// without an activation (the emitters' float32 activation code differs: even
// relu, whose negative inputs give -0 in the LLVM code (alpha * x, as the
// reference computes it) and +0 in Xbyak's).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/activation.hpp"
#include "core/cpu_features.hpp"
#include "tconv3d/bfloat16.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/layer.hpp"
#include "tests/bf16_test_support.hpp"
#include "tests/test_support.hpp"

namespace tconv3d {
namespace {

#ifdef TCONV3D_HAVE_LLVM

using testing::bf16_options;
using testing::Bf16Outputs;
using testing::channels_last;
using testing::config_of;
using testing::first_bf16_mismatch;
using testing::RandomCase;

#define REQUIRE_BF16()     \
  if (!testing::have_bf16()) \
  GTEST_SKIP() << "this CPU lacks avx512_bf16: the llvm bf16 kernel is not run here"

// The LLVM bf16 layer (on `threads`) against the one on `against`, with the
// tolerance of tests/bf16_test.cc.
Bf16Outputs run_pair(const RandomCase& c, uint64_t seed, Backend against = Backend::kReference, int threads = 1,
                     const testing::Bf16Edit& edit = {}) {
  return testing::run_bf16_pair(c, seed, Backend::kLlvm, against, threads, edit);
}

TEST(LlvmBf16, RandomLayersMatchTheBf16Reference) {
  REQUIRE_BF16();
  double worst = 0;
  testing::expect_random_layers_match(Backend::kLlvm, 1718, 2, "__llvm", &worst);
}

TEST(LlvmBf16, ChannelsFirstAndLanePackedLayersMatchTheReference) {
  REQUIRE_BF16();
  std::mt19937_64 rng(4243);
  int channels_first = 0;
  for (int i = 0; i < 80 && channels_first < 15; ++i) {
    const RandomCase c = testing::random_case(rng);
    if (c.config.data_format != DataFormat::kChannelsFirst) continue;
    ++channels_first;
    const Bf16Outputs r = run_pair(c, 900 + i, Backend::kReference, 2);
    ASSERT_LT(first_bf16_mismatch(r), 0) << c.describe() << " kernel " << r.kernel;
  }
  EXPECT_GT(channels_first, 5);
  int packed = 0;
  for (int i = 0; i < 60 && packed < 20; ++i) {
    const auto c = testing::random_lane_packed_case(rng, 16);
    if (!c) continue;
    ++packed;
    const Bf16Outputs r = run_pair(channels_last(*c), 500 + i);
    ASSERT_LT(first_bf16_mismatch(r), 0) << c->describe() << " kernel " << r.kernel;
  }
  EXPECT_GT(packed, 5);
}

TEST(LlvmBf16, PerGroupKernelsAndThreadsAgree) {
  REQUIRE_BF16();
  testing::expect_per_group_kernels_and_threads_agree(Backend::kLlvm);
}

TEST(LlvmBf16, OddCinNeverReadsPastAVoxelsChannels) {
  REQUIRE_BF16();
  testing::expect_odd_cin_never_reads_past_a_voxel(Backend::kLlvm);
}

TEST(LlvmBf16, NanAndInfPropagateLikeTheReference) {
  REQUIRE_BF16();
  std::vector<std::string> no_nan;
  testing::expect_nan_and_inf_propagate(Backend::kLlvm, 6, &no_nan);
  EXPECT_LT(no_nan.size(), 5u) << "the draw hardly tests NaN propagation";
}

#ifdef TCONV3D_HAVE_XBYAK
// Same plan, same packed weights, the same vdpbf16ps sequence and rounding:
// without an activation the two emitters' bf16 outputs are bitwise equal.
TEST(LlvmBf16, SameBitsAsXbyakWithoutActivation) {
  REQUIRE_BF16();
  std::mt19937_64 rng(77);
  for (int i = 0; i < 40; ++i) {
    RandomCase c = channels_last(testing::random_case(rng));
    c.config.activation = Activation{};
    const Bf16Outputs r = run_pair(c, 300 + i, Backend::kXbyak, 1 + i % 2);
    size_t differ = 0, first = r.expected.size();
    for (size_t e = 0; e < r.expected.size(); ++e)
      if (r.expected[e] != r.actual[e]) first = std::min(first, e), ++differ;
    ASSERT_EQ(0u, differ) << c.describe() << " kernel " << r.kernel << ": " << differ << " of "
                          << r.expected.size() << " differ, first " << first << ": xbyak "
                          << bf16_to_float(r.expected[first]) << ", llvm " << bf16_to_float(r.actual[first]);
  }
}
#endif

TEST(LlvmBf16, Avx2IsAnError) {
  REQUIRE_BF16();
  LayerOptions o = bf16_options(Backend::kLlvm);
  o.isa = Isa::kAvx2;
  try {
    (void)Layer::create_initialized(config_of(8, 2, 2), {1, 2, 2, 2, 4}, 1, o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("AVX-512"), std::string::npos) << e.what();
  }
}

#else
TEST(LlvmBf16, NeedsLlvm) { GTEST_SKIP() << "built without llvm"; }
#endif

}  // namespace
}  // namespace tconv3d
