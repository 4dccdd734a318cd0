// --isa auto per layer: a layer whose AVX2 plan needs at least an eighth
// fewer 256-bit FMAs than its AVX-512 plan (AVX-512 lanes left idle: few
// filters) runs its generated forward kernel with AVX2; a forced ISA, on the
// options or in TCONV3D_ISA, is kept.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "core/cpu_features.hpp"
#include "core/problem.hpp"
#include "plan/plan.hpp"
#include "tconv3d/layer.hpp"

namespace tconv3d {
namespace {

LayerConfig head(int64_t filters) {
  LayerConfig config;
  config.filters = filters;
  config.kernel_size = {4, 4, 4};
  config.strides = {2, 2, 2};
  config.padding = Padding::kSame;
  return config;
}

Problem problem_of(const LayerConfig& config, int64_t in_channels) {
  const ConvGeometry g = resolve_geometry(config, {1, 6, 7, 9, in_channels});
  return make_problem(g, config.use_bias, config.activation);
}

Isa llvm_auto(const Problem& problem, Isa widest) {
  return codegen::automatic_forward_isa(problem, widest, Backend::kLlvm);
}

TEST(AutomaticIsa, HalfEmptyZmmVectorsNarrowToAvx2) {
  // The LLVM backend's plans (zmm vectors only). 4 filters, W stride 2: two
  // W phases share a vector, 8 of 16 lanes.
  EXPECT_EQ(llvm_auto(problem_of(head(4), 32), Isa::kAvx512), Isa::kAvx2);
  // 8 filters with W stride 2 pack two phases into all 16 lanes; with stride 1, 8 of 16.
  EXPECT_EQ(llvm_auto(problem_of(head(8), 32), Isa::kAvx512), Isa::kAvx512);
  LayerConfig unstrided = head(8);
  unstrided.strides = {1, 1, 1};
  EXPECT_EQ(llvm_auto(problem_of(unstrided, 32), Isa::kAvx512), Isa::kAvx2);
  // 32 filters fill every lane of both: AVX-512 stays (more registers).
  EXPECT_EQ(llvm_auto(problem_of(head(32), 16), Isa::kAvx512), Isa::kAvx512);
  // Never wider than the CPU's widest.
  EXPECT_EQ(llvm_auto(problem_of(head(32), 16), Isa::kAvx2), Isa::kAvx2);
  EXPECT_EQ(codegen::automatic_forward_isa(problem_of(head(32), 16), Isa::kAvx2), Isa::kAvx2);
  // Xbyak's AVX-512 plan takes ymm vectors itself: as few FMAs as AVX2, twice the registers.
  const codegen::KernelPlan plan = codegen::make_plan(problem_of(head(4), 32), Isa::kAvx512);
  EXPECT_EQ(plan.lanes, 8);
  EXPECT_EQ(plan.vector_registers, 32);
  EXPECT_EQ(codegen::automatic_forward_isa(problem_of(head(4), 32), Isa::kAvx512), Isa::kAvx512);
  EXPECT_EQ(codegen::make_plan(problem_of(head(32), 16), Isa::kAvx512).lanes, 16);
}

TEST(AutomaticIsa, AnEighthFewerFmaHalvesTakesYmmVectors) {
  // k3s2_op1_odd: 2 W phases x 20 filters per super voxel: 5 ymm vectors,
  // offset 1 skipping 2 (8 FMAs), or 3 zmm, offset 1 skipping 1 (5 zmm = 10
  // halves).
  LayerConfig odd = head(20);
  odd.kernel_size = {3, 3, 3};
  odd.output_padding = Triple{1, 1, 1};
  const Problem problem = make_problem(resolve_geometry(odd, {2, 7, 9, 11, 24}), true, odd.activation);
  codegen::PlanOptions zmm;
  zmm.narrow_avx512 = false;
  EXPECT_EQ(codegen::w_fma_halves(codegen::make_plan(problem, Isa::kAvx2)), 8);
  EXPECT_EQ(codegen::w_fma_halves(codegen::make_plan(problem, Isa::kAvx512, zmm)), 10);
  const codegen::KernelPlan ymm = codegen::make_plan(problem, Isa::kAvx512);
  EXPECT_EQ(ymm.lanes, 8);
  EXPECT_EQ(codegen::w_fma_halves(ymm), 8);
  EXPECT_EQ(codegen::automatic_forward_isa(problem, Isa::kAvx512), Isa::kAvx512);
  // Unpacked (LLVM): 3 ymm vectors for 3 taps of 11 voxels against 2 zmm.
  EXPECT_EQ(llvm_auto(problem, Isa::kAvx512), Isa::kAvx2);
  // Stride 1: 24 filters fill 3 ymm vectors, but 24 of 32 zmm lanes (3 halves against 4).
  LayerConfig plain = head(24);
  plain.strides = {1, 1, 1};
  EXPECT_EQ(codegen::make_plan(problem_of(plain, 8), Isa::kAvx512).lanes, 8);
  EXPECT_EQ(llvm_auto(problem_of(plain, 8), Isa::kAvx512), Isa::kAvx2);
  // 28 filters idle 4 lanes of 32 either way: the same halves, zmm stays.
  plain.filters = 28;
  EXPECT_EQ(codegen::make_plan(problem_of(plain, 8), Isa::kAvx512).lanes, 16);
  EXPECT_EQ(llvm_auto(problem_of(plain, 8), Isa::kAvx512), Isa::kAvx512);
  // 20 filters with a k4 s2 kernel: every offset uses every vector, 5 ymm against 3 zmm.
  EXPECT_EQ(llvm_auto(problem_of(head(20), 24), Isa::kAvx512), Isa::kAvx2);
}

TEST(AutomaticIsa, LayersRunTheNarrowedIsaUnlessOneIsForced) {
  if (!cpu_features().avx512) GTEST_SKIP() << "this CPU has no AVX-512: auto is AVX2 for every layer";
  if (isa_set_by_environment()) GTEST_SKIP() << "TCONV3D_ISA forces an ISA in this environment";
  LayerOptions jit;
  jit.backend = Backend::kXbyak;
  try {
    // Xbyak: AVX-512 in ymm vectors for the 4-filter head, zmm for 32 filters.
    const Layer narrow = Layer::create_initialized(head(4), {1, 6, 7, 9, 32}, 1, jit);
    EXPECT_EQ(narrow.isa(), "avx512") << narrow.kernel_name();
    EXPECT_NE(narrow.kernel_name().find("_ymm"), std::string::npos) << narrow.kernel_name();
    const Layer wide = Layer::create_initialized(head(32), {1, 6, 7, 9, 16}, 1, jit);
    EXPECT_EQ(wide.isa(), "avx512") << wide.kernel_name();
    EXPECT_EQ(wide.kernel_name().find("_ymm"), std::string::npos) << wide.kernel_name();
    LayerOptions forced = jit;
    forced.isa = Isa::kAvx2;
    EXPECT_EQ(Layer::create_initialized(head(4), {1, 6, 7, 9, 32}, 1, forced).isa(), "avx2");
  } catch (const Error& e) {
    if (std::string(e.argument()) == "backend") GTEST_SKIP() << e.what();
    throw;
  }
}

}  // namespace
}  // namespace tconv3d
