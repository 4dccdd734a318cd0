// The scoped CPU feature mask: what it hides, how masks nest and unwind, and
// that every ISA decision (resolve_isa, best_isa, TCONV3D_ISA) sees the masked
// view. The decisions of the kernels themselves are checked where they are
// tested (generic, xbyak, llvm, C API, CLI).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/cpu_features.hpp"
#include "tconv3d/error.hpp"
#include "tests/test_support.hpp"

namespace tconv3d {
namespace {

TEST(CpuFeatureMask, HidesAvx512AndRestoresTheViewAfterwards) {
  const CpuFeatures before = cpu_features();
  {
    const ScopedCpuFeatureMask mask(CpuFeature::kAvx512);
    EXPECT_FALSE(cpu_features().avx512);
    EXPECT_EQ(cpu_features().avx2_fma, before.avx2_fma) << "hiding AVX-512 must leave AVX2+FMA alone";
    EXPECT_EQ(cpu_features().brand, before.brand);
    EXPECT_EQ(best_isa(), before.avx2_fma ? Isa::kAvx2 : Isa::kAuto);
    try {
      resolve_isa(Isa::kAvx512);
      FAIL() << "avx512 was resolved with AVX-512 hidden";
    } catch (const Error& e) {
      EXPECT_EQ(e.argument(), "isa");
      EXPECT_NE(std::string(e.what()).find("avx512"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(cpu_features().avx512, before.avx512);
  EXPECT_EQ(cpu_features().avx2_fma, before.avx2_fma);
}

TEST(CpuFeatureMask, HidingAvx2HidesAvx512AndNestedMasksUnwindInOrder) {
  const CpuFeatures before = cpu_features();
  {
    const ScopedCpuFeatureMask outer(CpuFeature::kAvx512);
    {
      const ScopedCpuFeatureMask inner(CpuFeature::kAvx2Fma);
      EXPECT_FALSE(cpu_features().avx2_fma);
      EXPECT_FALSE(cpu_features().avx512) << "AVX-512 without AVX2+FMA is not a CPU the library supports";
      EXPECT_EQ(best_isa(), Isa::kAuto);
      EXPECT_EQ(resolve_isa(Isa::kAuto), Isa::kAuto);
      EXPECT_THROW(resolve_isa(Isa::kAvx2), Error);
    }
    EXPECT_EQ(cpu_features().avx2_fma, before.avx2_fma) << "the inner mask did not unwind";
    EXPECT_FALSE(cpu_features().avx512) << "the outer mask was lost with the inner one";
  }
  EXPECT_EQ(cpu_features().avx512, before.avx512);
}

TEST(CpuFeatureMask, NeverShowsWhatTheHardwareLacks) {
  const CpuFeatures& hardware = detected_cpu_features();
  EXPECT_LE(cpu_features().avx512, hardware.avx512);
  EXPECT_LE(cpu_features().avx2_fma, hardware.avx2_fma);
  const ScopedCpuFeatureMask mask(CpuFeature::kAvx512);
  EXPECT_EQ(detected_cpu_features().avx512, hardware.avx512) << "the mask changed the detected features";
}

// TCONV3D_ISA goes through the same check: forcing a hidden ISA from the
// environment is refused as well.
TEST(CpuFeatureMask, TconvIsaCannotForceAHiddenIsa) {
  const testing::ScopedEnv isa("TCONV3D_ISA", "avx512");
  const ScopedCpuFeatureMask mask(CpuFeature::kAvx512);
  EXPECT_THROW(resolve_isa(Isa::kAuto), Error);
}

// TCONV3D_CPU_MASK is read once per process: each check runs in a fresh child
// (the threadsafe death-test style re-executes this binary with the variable set).
TEST(CpuFeatureMaskDeathTest, EnvironmentVariableHidesFeaturesInAFreshProcess) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto exit_with_view = [](const char* mask) {
    setenv("TCONV3D_CPU_MASK", mask, 1);
    try {
      const CpuFeatures f = cpu_features();
      std::exit((f.avx2_fma ? 1 : 0) + (f.avx512 ? 2 : 0));
    } catch (const Error& e) {
      std::fprintf(stderr, "%s\n", e.what());
      std::exit(255);
    }
  };
  const CpuFeatures& hardware = detected_cpu_features();
  const int avx2_bit = hardware.avx2_fma ? 1 : 0;
  EXPECT_EXIT(exit_with_view("avx512"), ::testing::ExitedWithCode(avx2_bit), "");
  EXPECT_EXIT(exit_with_view("avx2"), ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(exit_with_view("avx512,avx2"), ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(exit_with_view(""), ::testing::ExitedWithCode(avx2_bit + (hardware.avx512 ? 2 : 0)), "");
  EXPECT_EXIT(exit_with_view("sse4"), ::testing::ExitedWithCode(255), "TCONV3D_CPU_MASK.*sse4");
}

}  // namespace
}  // namespace tconv3d
