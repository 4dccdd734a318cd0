// The packing runs (plan/weight_pack.hpp) against a straightforward
// per-element statement of the packed layout: for every packed float, which
// Keras weight (or zero) it holds. Plans of both ISAs' lane counts, phase-
// split and lane-packed W, split channel groups, with and without a bias.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "plan/plan.hpp"
#include "plan/weight_pack.hpp"
#include "tests/test_support.hpp"

namespace tconv3d {
namespace {

using codegen::KernelPlan;

Problem problem_of(const LayerConfig& config, const std::vector<int64_t>& input_shape) {
  Problem p;
  p.geometry = resolve_geometry(config, input_shape);
  p.has_bias = config.use_bias;
  if (config.activation.is_elementwise()) p.fused_activation = config.activation;
  return p;
}

// Element (dh, a_w, f, ci) of the Keras kernel, or zero outside it.
float keras_at(const KernelPlan& plan, const std::vector<float>& kernel, int64_t dh, int64_t a_w, int64_t f,
               int64_t ci) {
  const ConvGeometry& g = plan.geometry;
  if (a_w < 0 || a_w >= g.axes[2].kernel || f >= g.out_channels) return 0.0f;
  return kernel[static_cast<size_t>(((dh * g.axes[2].kernel + a_w) * g.out_channels + f) * g.in_channels + ci)];
}

// The layout of plan/weight_pack.hpp, one float at a time.
std::vector<float> expected_weights(const KernelPlan& plan, const std::vector<float>& kernel) {
  const ConvGeometry& g = plan.geometry;
  std::vector<float> packed(static_cast<size_t>(plan.packed_weight_count()), 0.0f);
  for (int64_t dh = 0; dh < g.axes[0].kernel * g.axes[1].kernel; ++dh) {
    for (int rw = 0; rw < static_cast<int>(plan.phases[2].size()); ++rw) {
      const auto& taps = plan.phases[2][rw].taps;
      const int64_t wt = static_cast<int64_t>(taps.size());
      for (int group = 0; group < plan.oc_groups; ++group) {
        const int64_t vectors = group + 1 == plan.oc_groups ? plan.last_group_vectors : plan.oc_block;
        const int64_t base = dh * plan.weights_per_dh_tap() + plan.weights_phase_offset(rw) +
                             group * plan.weights_group_stride(rw);
        for (int64_t ci = 0; ci < g.in_channels; ++ci)
          for (int64_t t = 0; t < wt; ++t)
            for (int64_t v = 0; v < vectors; ++v)
              for (int64_t lane = 0; lane < plan.lanes; ++lane) {
                const int64_t at = base + ((ci * wt + t) * vectors + v) * plan.lanes + lane;
                const int64_t slot = (group * plan.oc_block + v) * plan.lanes + lane;  // lane of the voxel
                float value = 0.0f;
                if (plan.w_pack == 1) {
                  value = keras_at(plan, kernel, dh, taps[static_cast<size_t>(t)].tap, slot, ci);
                } else if (slot < plan.vector_channels()) {
                  const AxisGeometry& w = g.axes[2];
                  const int64_t reach = taps[static_cast<size_t>(t)].offset * w.stride + slot / g.out_channels;
                  if (reach % w.dilation == 0) value = keras_at(plan, kernel, dh, reach / w.dilation, slot % g.out_channels, ci);
                }
                packed[static_cast<size_t>(at)] = value;
              }
      }
    }
  }
  return packed;
}

std::vector<float> expected_bias(const KernelPlan& plan, const std::vector<float>& bias) {
  std::vector<float> packed(static_cast<size_t>(plan.padded_out_channels()), 0.0f);
  if (!plan.has_bias) return packed;
  for (int64_t lane = 0; lane < plan.vector_channels(); ++lane)
    packed[static_cast<size_t>(lane)] = bias[static_cast<size_t>(lane % plan.geometry.out_channels)];
  return packed;
}

// Distinct nonzero values, so a float packed into the wrong place shows.
std::vector<float> numbered(int64_t count) {
  std::vector<float> values(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) values[static_cast<size_t>(i)] = float(i + 1);
  return values;
}

void expect_packs_like_the_formula(const KernelPlan& plan, const std::string& what) {
  SCOPED_TRACE(what + "\n" + plan.to_string());
  const ConvGeometry& g = plan.geometry;
  const std::vector<float> kernel = numbered(g.kernel_elements());
  const std::vector<float> bias = numbered(g.out_channels);
  const AlignedFloats weights = pack_weights(plan, kernel.data());
  ASSERT_EQ(weights.size(), static_cast<size_t>(plan.packed_weight_count()));
  EXPECT_EQ(std::vector<float>(weights.data(), weights.data() + weights.size()), expected_weights(plan, kernel));
  const AlignedFloats packed_bias = pack_bias(plan, bias.data());
  EXPECT_EQ(std::vector<float>(packed_bias.data(), packed_bias.data() + packed_bias.size()), expected_bias(plan, bias));
  const AlignedFloats no_bias = pack_bias(plan, nullptr);
  for (size_t i = 0; i < no_bias.size(); ++i) ASSERT_EQ(no_bias.data()[i], 0.0f);

  // Every run stays inside both buffers, so a table applied by generated code cannot stray.
  const PackRuns runs = packing_runs(plan);
  EXPECT_EQ(runs.weight_stride, g.in_channels);
  for (const PackRun& r : runs.weights) {
    ASSERT_GT(r.count, 0);
    ASSERT_GE(r.dst, 0);
    ASSERT_LE(r.dst + r.count, plan.packed_weight_count());
    ASSERT_GE(r.src, 0);
    ASSERT_LT(r.src + (r.count - 1) * runs.weight_stride, g.kernel_elements());
  }
  for (const PackRun& r : runs.bias) ASSERT_LE(r.dst + r.count, plan.padded_out_channels());
}

TEST(WeightPack, RandomPlansOfBothIsas) {
  std::mt19937_64 rng(2026);
  for (int i = 0; i < 40; ++i) {
    const testing::RandomCase c = testing::random_case(rng);
    const Problem problem = problem_of(c.config, c.input_shape);
    for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
      expect_packs_like_the_formula(codegen::make_plan(problem, isa), c.describe());
      expect_packs_like_the_formula(codegen::make_plan(problem, isa, codegen::PlanOptions::baseline()),
                                    "baseline " + c.describe());
    }
  }
}

TEST(WeightPack, LanePackedPlans) {
  std::mt19937_64 rng(11);
  int packed_plans = 0;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    const int64_t lanes = isa == Isa::kAvx512 ? 16 : 8;
    for (int i = 0; i < 30; ++i) {
      const auto c = testing::random_lane_packed_case(rng, lanes);
      if (!c) continue;
      const KernelPlan plan = codegen::make_plan(problem_of(c->config, c->input_shape), isa);
      packed_plans += plan.w_pack > 1;
      expect_packs_like_the_formula(plan, c->describe());
    }
  }
  EXPECT_GE(packed_plans, 10) << "too few draws were lane-packed to test the lane-packed runs";
}

TEST(WeightPack, SplitChannelGroups) {
  LayerConfig config;
  config.filters = 200;  // not a whole number of 16-lane vectors: a masked last vector
  config.kernel_size = {3, 3, 3};
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    const KernelPlan plan = codegen::make_plan(problem_of(config, {1, 2, 2, 3, 160}), isa);
    ASSERT_TRUE(plan.split_groups) << plan.to_string();
    expect_packs_like_the_formula(plan, "split groups");
    // Each group's kernel reads the same packed buffer.
    expect_packs_like_the_formula(plan.for_group(plan.oc_groups - 1), "last group");
  }
}

}  // namespace
}  // namespace tconv3d
