// The kernel plan: the polyphase split matches the definition of the
// transposed convolution, the W tiles cover every voxel once with the right
// taps, the register tile fits the ISA, and names and cache keys are stable.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "plan/kernel_name.hpp"
#include "plan/plan.hpp"
#include "tconv3d/error.hpp"
#include "tests/isa_harness.hpp"
#include "tests/test_support.hpp"

namespace tconv3d::codegen {
namespace {

Problem problem_of(const LayerConfig& config, const std::vector<int64_t>& input_shape) {
  return make_problem(resolve_geometry(config, input_shape), config.use_bias, config.activation);
}

LayerConfig k3s2_same(int64_t filters) {
  LayerConfig c;
  c.filters = filters;
  c.kernel_size = {3, 3, 3};
  c.strides = {2, 2, 2};
  c.padding = Padding::kSame;
  return c;
}

// Tests of plans made for each ISA (no CPU needed: nothing runs, nothing skips).
class PlanIsa : public ::testing::TestWithParam<Isa> {};

TEST(Plan, PhasesOfK3S2) {
  const KernelPlan plan = make_plan(problem_of(k3s2_same(32), {1, 8, 8, 8, 64}), Isa::kAvx2);
  for (int axis = 0; axis < 3; ++axis) {
    ASSERT_EQ(plan.phases[axis].size(), 2u);
    size_t taps = 0;
    int64_t outputs = 0;
    for (const AxisPhase& p : plan.phases[axis]) {
      taps += p.taps.size();
      outputs += p.count;
    }
    EXPECT_EQ(taps, 3u);  // every tap in exactly one phase
    EXPECT_EQ(outputs, 16);
  }
}

// valid_taps() must list exactly the (tap, input) pairs with
// o + crop_begin = i*stride + a*dilation, on many random geometries.
TEST_P(PlanIsa, ValidTapsMatchTheDefinition) {
  std::mt19937_64 rng(99 + static_cast<int>(GetParam()));
  for (int i = 0; i < 150; ++i) {
    const testing::RandomCase c = testing::random_case(rng);
    const KernelPlan plan = make_plan(problem_of(c.config, c.input_shape), GetParam());
    for (int axis = 0; axis < 3; ++axis) {
      const AxisGeometry& ax = plan.geometry.axes[axis];
      for (int64_t o = 0; o < ax.out; ++o) {
        std::vector<std::pair<int64_t, int64_t>> expected;
        for (int64_t a = 0; a < ax.kernel; ++a)
          for (int64_t in = 0; in < ax.in; ++in)
            if (o + ax.crop_begin == in * ax.stride + a * ax.dilation) expected.emplace_back(a, in);
        ASSERT_EQ(valid_taps(plan, axis, o), expected) << "axis " << axis << " o " << o << ": " << c.describe();
      }
    }
  }
}

// W segments: every voxel of every phase exactly once; interior tiles only
// where every tap is valid; tiles never wider than the register tile.
TEST_P(PlanIsa, WSegmentsCoverEveryVoxelOnce) {
  std::mt19937_64 rng(7 + static_cast<int>(GetParam()));
  for (int i = 0; i < 150; ++i) {
    const testing::RandomCase c = testing::random_case(rng);
    const KernelPlan plan = make_plan(problem_of(c.config, c.input_shape), GetParam());
    ASSERT_EQ(plan.w_segments.size(), plan.phases[2].size());
    for (size_t rw = 0; rw < plan.phases[2].size(); ++rw) {
      std::vector<int> seen(static_cast<size_t>(plan.phases[2][rw].count), 0);
      for (const WSegment& s : plan.w_segments[rw]) {
        ASSERT_GE(s.width, 1);
        ASSERT_LE(s.width, plan.tile_w);
        for (int64_t t = 0; t < s.tiles; ++t)
          for (int p = 0; p < s.width; ++p) {
            const int64_t j = s.first + t * s.width + p;
            ASSERT_LT(j, int64_t(seen.size())) << c.describe();
            ++seen[static_cast<size_t>(j)];
            if (s.interior)
              for (size_t tap = 0; tap < plan.phases[2][rw].taps.size(); ++tap)
                ASSERT_TRUE(plan.w_tap_valid(static_cast<int>(rw), j, tap)) << c.describe();
          }
      }
      for (int count : seen) ASSERT_EQ(count, 1) << c.describe();
    }
  }
}

TEST_P(PlanIsa, RegisterTileFitsTheIsa) {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 200; ++i) {
    const testing::RandomCase c = testing::random_case(rng);
    const KernelPlan plan = make_plan(problem_of(c.config, c.input_shape), GetParam());
    // accumulators + one weight register per vector + at least one broadcast
    EXPECT_LE(plan.tile_w * plan.oc_block + plan.oc_block + 1, plan.vector_registers) << c.describe();
    EXPECT_EQ(plan.vector_channels(), plan.w_pack * plan.geometry.out_channels);
    EXPECT_EQ(plan.oc_vectors, (plan.vector_channels() + plan.lanes - 1) / plan.lanes);
    EXPECT_EQ((plan.oc_groups - 1) * plan.oc_block + plan.last_group_vectors, plan.oc_vectors);
    EXPECT_EQ(plan.tail_lanes, plan.vector_channels() % plan.lanes);
    const ConvGeometry& g = plan.geometry;
    const int64_t w_taps = plan.w_pack > 1 ? plan.w_taps(0) : g.axes[2].kernel;
    EXPECT_EQ(plan.packed_weight_count(),
              g.axes[0].kernel * g.axes[1].kernel * w_taps * g.in_channels * plan.padded_out_channels());
  }
}

// Lane packing: every output voxel of a row is stored by exactly one lane
// group of one super voxel, and the W taps each lane's weights stand for
// reach exactly the inputs the definition says.
TEST_P(PlanIsa, LanePackedSuperVoxelsCoverEveryOutputOnce) {
  std::mt19937_64 rng(17 + static_cast<int>(GetParam()));
  int packed = 0;
  for (int i = 0; i < 150; ++i) {
    testing::RandomCase c = testing::random_case(rng);
    c.config.filters = 1 + i % 4;
    const KernelPlan plan = make_plan(problem_of(c.config, c.input_shape), GetParam());
    if (plan.w_pack == 1) continue;
    ++packed;
    const AxisGeometry& w = plan.geometry.axes[2];
    const int64_t cout = plan.geometry.out_channels;
    ASSERT_EQ(plan.phases[2].size(), 1u);
    const AxisPhase& p = plan.phases[2].front();
    std::vector<int> stored(static_cast<size_t>(w.out), 0);
    for (int64_t j = 0; j < p.count; ++j) {
      const int64_t mask = plan.w_pack_lane_mask(j);
      for (int64_t r = 0; r < plan.w_pack; ++r) {
        const int64_t o = p.first_out + j * w.stride + r;
        const bool on = (mask >> (r * cout)) & 1;
        ASSERT_EQ(on, o >= 0 && o < w.out) << c.describe();
        if (!on) continue;
        ++stored[static_cast<size_t>(o)];
        // The (tap, input) pairs the lanes of r reach, against valid_taps.
        std::vector<std::pair<int64_t, int64_t>> reached;
        for (size_t t = 0; t < p.taps.size(); ++t) {
          const int64_t reach = p.taps[t].offset * w.stride + r;
          const int64_t i_in = p.first_q + j - p.taps[t].offset;
          if (reach % w.dilation == 0 && reach / w.dilation < w.kernel && plan.w_tap_valid(0, j, t))
            reached.emplace_back(reach / w.dilation, i_in);
        }
        std::sort(reached.begin(), reached.end());
        ASSERT_EQ(reached, valid_taps(plan, 2, o)) << "o " << o << ": " << c.describe();
      }
    }
    for (int n : stored) ASSERT_EQ(n, 1) << c.describe();
  }
  EXPECT_GT(packed, 15);
}

INSTANTIATE_TEST_SUITE_P(Isas, PlanIsa, ::testing::ValuesIn(testing::all_isas()), testing::isa_name);

TEST(Plan, FourFilterHeadIsLanePacked) {
  LayerConfig c;
  c.filters = 4;
  c.kernel_size = {4, 4, 4};
  c.strides = {2, 2, 2};
  c.padding = Padding::kSame;
  PlanOptions zmm;
  zmm.narrow_avx512 = false;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    const KernelPlan plan = make_plan(problem_of(c, {1, 8, 8, 8, 32}), isa, zmm);
    EXPECT_EQ(plan.w_pack, 2) << to_string(isa);
    EXPECT_EQ(plan.tail_lanes, isa == Isa::kAvx2 ? 0 : 8);
    EXPECT_NE(plan.to_string().find("lane-packed"), std::string::npos);
    EXPECT_NE(kernel_name(plan).find("_p2"), std::string::npos);
    EXPECT_EQ(make_plan(problem_of(c, {1, 8, 8, 8, 32}), isa, PlanOptions::baseline()).w_pack, 1);
  }
  c.filters = 16;  // fills the lanes already
  EXPECT_EQ(make_plan(problem_of(c, {1, 8, 8, 8, 32}), Isa::kAvx2).w_pack, 1);
}

TEST(Plan, TwentyFiltersPackTwoPhasesIntoSeveralVectors) {
  // k3s2_op1_odd: 2 W phases x 20 filters = 40 lanes. Input offset 0 holds
  // taps of both phases, offset 1 only phase 0's (lanes 0..19).
  LayerConfig c = k3s2_same(20);
  c.output_padding = Triple{1, 1, 1};
  const Problem problem = problem_of(c, {2, 7, 9, 11, 24});
  const KernelPlan avx2 = make_plan(problem, Isa::kAvx2);
  ASSERT_EQ(avx2.w_pack, 2);
  EXPECT_EQ(avx2.oc_vectors, 5);
  EXPECT_EQ(avx2.oc_groups, 1);
  EXPECT_EQ(avx2.tail_lanes, 0);
  ASSERT_EQ(avx2.phases[2].front().taps.size(), 2u);
  for (int v = 0; v < 5; ++v) {
    EXPECT_TRUE(avx2.w_pack_vector_used(0, v)) << v;
    EXPECT_EQ(avx2.w_pack_vector_used(1, v), v < 3) << v;  // lanes 0..23 reach phase 0's 0..19
  }
  // AVX-512 in ymm vectors: AVX2's plan with 32 registers (a larger tile).
  const KernelPlan ymm = make_plan(problem, Isa::kAvx512);
  EXPECT_EQ(ymm.lanes, 8);
  EXPECT_EQ(ymm.oc_vectors, 5);
  EXPECT_GT(ymm.tile_w, avx2.tile_w);
  EXPECT_NE(kernel_name(ymm).find("_ymm"), std::string::npos);
  EXPECT_NE(ymm.cache_key(), avx2.cache_key());
  PlanOptions zmm;
  zmm.narrow_avx512 = false;
  const KernelPlan avx512 = make_plan(problem, Isa::kAvx512, zmm);
  ASSERT_EQ(avx512.w_pack, 2);
  EXPECT_EQ(avx512.oc_vectors, 3);
  EXPECT_EQ(avx512.tail_lanes, 8);
  EXPECT_TRUE(avx512.w_pack_vector_used(1, 1));
  EXPECT_FALSE(avx512.w_pack_vector_used(1, 2));
  // Not for emitters that decline it (the LLVM backend), nor for more than 62 lanes.
  PlanOptions single;
  single.pack_w_multi_vector = false;
  EXPECT_EQ(make_plan(problem, Isa::kAvx2, single).w_pack, 1);
  EXPECT_EQ(plan_for_backend(problem, Isa::kAvx2, Backend::kLlvm).w_pack, 1);
  EXPECT_EQ(plan_for_backend(problem, Isa::kAvx2, Backend::kXbyak).w_pack, 2);
  EXPECT_EQ(make_plan(problem_of(k3s2_same(32), {1, 4, 4, 4, 8}), Isa::kAvx512).w_pack, 1);
  // Where packing saves no FMA (every offset uses every vector) the phases stay apart.
  LayerConfig k4 = k3s2_same(16);
  k4.kernel_size = {4, 4, 4};
  EXPECT_EQ(make_plan(problem_of(k4, {1, 4, 4, 4, 8}), Isa::kAvx2).w_pack, 1);
}

TEST(Plan, BigChannelLayersGetEnoughAccumulators) {
  LayerConfig c = k3s2_same(128);
  c.kernel_size = {4, 4, 4};
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    const KernelPlan plan = make_plan(problem_of(c, {1, 8, 8, 8, 256}), isa);
    EXPECT_GE(plan.tile_w * plan.oc_block, 8) << to_string(isa);  // hides the 4-cycle FMA latency
    EXPECT_GE(plan.oc_block, 2) << to_string(isa);                // each broadcast feeds several FMAs
  }
}

TEST(Plan, LargeWeightSetsSplitTheChannelGroups) {
  LayerConfig c = k3s2_same(128);
  c.kernel_size = {4, 4, 4};
  const KernelPlan big = make_plan(problem_of(c, {1, 8, 8, 8, 256}), Isa::kAvx512);  // 2 MB per row
  EXPECT_TRUE(big.split_groups);
  const KernelPlan last = big.for_group(big.oc_groups - 1);
  EXPECT_EQ(last.only_group, big.oc_groups - 1);
  EXPECT_NE(last.cache_key(), big.for_group(0).cache_key());
  EXPECT_NE(kernel_name(last).find("_g"), std::string::npos);
  EXPECT_THROW(big.for_group(big.oc_groups), Error);
  EXPECT_FALSE(make_plan(problem_of(k3s2_same(32), {1, 8, 8, 8, 64}), Isa::kAvx512).split_groups);
}

TEST(Plan, StrideLargerThanKernelLeavesPhasesWithoutTaps) {
  LayerConfig c;
  c.filters = 3;
  c.kernel_size = {1, 2, 2};
  c.strides = {3, 3, 3};
  // Unpacked W phases (with lane packing, 3 phases x 3 filters share one vector).
  const KernelPlan plan = make_plan(problem_of(c, {1, 2, 2, 2, 4}), Isa::kAvx2, PlanOptions::baseline());
  int empty = 0;
  for (const AxisPhase& p : plan.phases[2]) empty += p.taps.empty();
  EXPECT_EQ(empty, 1);
  EXPECT_NE(plan.to_string().find("no taps"), std::string::npos);
}

TEST(Plan, NameAndCacheKey) {
  LayerConfig c = k3s2_same(32);
  c.activation.kind = ActivationKind::kRelu;
  c.activation.name = "relu";
  const KernelPlan a = make_plan(problem_of(c, {1, 16, 16, 16, 64}), Isa::kAvx2);
  const std::string name = kernel_name(a);
  EXPECT_EQ(name.rfind("tconv3d_f32_k3x3x3_s2x2x2_d1x1x1_c64to32_w16to32c", 0), 0u) << name;
  EXPECT_NE(name.find("_cl_relu__avx2_"), std::string::npos) << name;
  EXPECT_EQ(a.cache_key(), make_plan(problem_of(c, {1, 16, 16, 16, 64}), Isa::kAvx2).cache_key());
  // Batch and the D/H sizes only change the row list, not the code.
  EXPECT_EQ(a.cache_key(), make_plan(problem_of(c, {3, 9, 5, 16, 64}), Isa::kAvx2).cache_key());
  std::set<std::string> keys = {a.cache_key()};
  keys.insert(make_plan(problem_of(c, {1, 16, 16, 17, 64}), Isa::kAvx2).cache_key());  // W size
  keys.insert(make_plan(problem_of(c, {1, 16, 16, 16, 64}), Isa::kAvx512).cache_key());  // ISA
  keys.insert(make_plan(problem_of(c, {1, 16, 16, 16, 63}), Isa::kAvx2).cache_key());  // Cin
  LayerConfig other = c;
  other.activation.kind = ActivationKind::kLeakyRelu;
  other.activation.alpha = 0.2;
  keys.insert(make_plan(problem_of(other, {1, 16, 16, 16, 64}), Isa::kAvx2).cache_key());
  other.activation.alpha = 0.3;
  keys.insert(make_plan(problem_of(other, {1, 16, 16, 16, 64}), Isa::kAvx2).cache_key());
  EXPECT_EQ(keys.size(), 6u);
  const std::string text = a.to_string();
  for (const char* part : {"register tile", "axis D", "axis W", "W phase 1", "cache key", "threads"})
    EXPECT_NE(text.find(part), std::string::npos) << part << " missing from:\n" << text;
}

TEST(Plan, RejectsAnUnresolvedIsaAndAxisActivations) {
  const Problem p = problem_of(k3s2_same(8), {1, 4, 4, 4, 8});
  EXPECT_THROW(make_plan(p, Isa::kAuto), Error);
  Problem softmax = p;
  softmax.fused_activation.kind = ActivationKind::kSoftmax;
  softmax.fused_activation.name = "softmax";
  EXPECT_THROW(make_plan(softmax, Isa::kAvx2), Error);
}

}  // namespace
}  // namespace tconv3d::codegen
