// The test harness itself (tests/isa_harness.hpp): it lists every target of
// the build, and inside a target's test the layers created with its options
// run on that backend and ISA, with the wider ISAs hidden.
#include <gtest/gtest.h>

#include <set>

#include "tests/isa_harness.hpp"

namespace tconv3d {
namespace {

TEST(IsaHarness, ListsEveryBuiltTargetOnceWhateverTheCpu) {
  std::set<std::string> names;
  for (const testing::Target& t : testing::targets({Backend::kReference, Backend::kGeneric, Backend::kXbyak,
                                                    Backend::kLlvm}))
    EXPECT_TRUE(names.insert(t.name()).second) << t.name() << " listed twice";
  std::set<std::string> expected = {"reference", "generic_sse2", "generic_avx2", "generic_avx512"};
#ifdef TCONV3D_HAVE_XBYAK
  expected.insert({"xbyak_avx2", "xbyak_avx512"});
#endif
#ifdef TCONV3D_HAVE_LLVM
  expected.insert({"llvm_avx2", "llvm_avx512"});
#endif
  EXPECT_EQ(names, expected);
}

class IsaHarnessTarget : public testing::TargetTest {};

TEST_P(IsaHarnessTarget, LayersRunOnTheTargetsBackendAndIsa) {
  LayerConfig config;
  config.filters = 5;
  config.kernel_size = {2, 3, 2};
  config.strides = {2, 1, 2};
  const Layer forced = Layer::create_initialized(config, {1, 3, 2, 4, 3}, 1, options());
  EXPECT_EQ(forced.backend(), target().backend);
  EXPECT_EQ(forced.isa(), target().isa_name());
  // Nothing wider than the target is visible, so an automatic choice is the target's ISA.
  const CpuFeatures cpu = cpu_features();
  if (target().backend != Backend::kReference) {
    EXPECT_EQ(cpu.avx512, isa() == Isa::kAvx512);
    EXPECT_EQ(cpu.avx2_fma, isa() != Isa::kAuto);
    LayerOptions automatic = options();
    automatic.isa = Isa::kAuto;
    EXPECT_EQ(Layer::create_initialized(config, {1, 3, 2, 4, 3}, 1, automatic).isa(), target().isa_name());
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, IsaHarnessTarget,
                         ::testing::ValuesIn(testing::targets({Backend::kReference, Backend::kGeneric,
                                                               Backend::kXbyak, Backend::kLlvm})),
                         testing::target_name);

}  // namespace
}  // namespace tconv3d
