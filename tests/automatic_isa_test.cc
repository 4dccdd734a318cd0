// --isa auto per layer: a layer whose AVX-512 vectors would be at least half
// empty (few filters) runs its generated forward kernel with AVX2; a forced
// ISA, on the options or in TCONV3D_ISA, is kept.
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

TEST(AutomaticIsa, HalfEmptyZmmVectorsNarrowToAvx2) {
  // 4 filters, W stride 2: two W phases share a vector, 8 of 16 lanes.
  EXPECT_EQ(codegen::automatic_forward_isa(problem_of(head(4), 32), Isa::kAvx512), Isa::kAvx2);
  // 8 filters with W stride 2 pack two phases into all 16 lanes; with stride 1, 8 of 16.
  EXPECT_EQ(codegen::automatic_forward_isa(problem_of(head(8), 32), Isa::kAvx512), Isa::kAvx512);
  LayerConfig unstrided = head(8);
  unstrided.strides = {1, 1, 1};
  EXPECT_EQ(codegen::automatic_forward_isa(problem_of(unstrided, 32), Isa::kAvx512), Isa::kAvx2);
  // 20 filters fill 20 of 32 lanes, 32 filters all of them: AVX-512 stays.
  EXPECT_EQ(codegen::automatic_forward_isa(problem_of(head(20), 24), Isa::kAvx512), Isa::kAvx512);
  EXPECT_EQ(codegen::automatic_forward_isa(problem_of(head(32), 16), Isa::kAvx512), Isa::kAvx512);
  // Never wider than the CPU's widest.
  EXPECT_EQ(codegen::automatic_forward_isa(problem_of(head(32), 16), Isa::kAvx2), Isa::kAvx2);
}

TEST(AutomaticIsa, LayersRunTheNarrowedIsaUnlessOneIsForced) {
  if (!cpu_features().avx512) GTEST_SKIP() << "this CPU has no AVX-512: auto is AVX2 for every layer";
  if (isa_set_by_environment()) GTEST_SKIP() << "TCONV3D_ISA forces an ISA in this environment";
  LayerOptions jit;
  jit.backend = Backend::kXbyak;
  try {
    const Layer narrow = Layer::create_initialized(head(4), {1, 6, 7, 9, 32}, 1, jit);
    EXPECT_EQ(narrow.isa(), "avx2") << narrow.kernel_name();
    const Layer wide = Layer::create_initialized(head(32), {1, 6, 7, 9, 16}, 1, jit);
    EXPECT_EQ(wide.isa(), "avx512") << wide.kernel_name();
    LayerOptions forced = jit;
    forced.isa = Isa::kAvx512;
    EXPECT_EQ(Layer::create_initialized(head(4), {1, 6, 7, 9, 32}, 1, forced).isa(), "avx512");
  } catch (const Error& e) {
    if (std::string(e.argument()) == "backend") GTEST_SKIP() << e.what();
    throw;
  }
}

}  // namespace
}  // namespace tconv3d
