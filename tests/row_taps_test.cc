// The row taps (plan/row_taps.*) against a brute-force enumeration: for every
// output row (od, oh), every (kd, id, kh, ih) whose product lands on it, on
// random geometries (strides, dilations, paddings, output_padding, stride >
// kernel); the row order and D order grouped by phase; and the split of rows
// among threads into chunks of about equal cost.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <tuple>
#include <vector>

#include "plan/plan.hpp"
#include "plan/row_taps.hpp"
#include "tests/isa_harness.hpp"
#include "tests/test_support.hpp"

namespace tconv3d {
namespace {

using codegen::KernelPlan;

KernelPlan plan_of(const testing::RandomCase& c, Isa isa) {
  return codegen::make_plan(make_problem(resolve_geometry(c.config, c.input_shape), c.config.use_bias,
                                        c.config.activation),
                           isa);
}

// Every (tap, input index) of one axis whose transposed product reaches output
// o: input i with tap a writes full output i*stride + a*dilation, of which the
// first crop_begin are cut. Walks all inputs instead of solving for them.
std::vector<std::pair<int64_t, int64_t>> brute_force_taps(const AxisGeometry& ax, int64_t o) {
  std::vector<std::pair<int64_t, int64_t>> taps;
  for (int64_t a = 0; a < ax.kernel; ++a)
    for (int64_t i = 0; i < ax.in; ++i)
      if (i * ax.stride + a * ax.dilation - ax.crop_begin == o) taps.emplace_back(a, i);
  return taps;
}

int64_t phase_of(int64_t o, const AxisGeometry& ax) { return (o + ax.crop_begin) % ax.stride; }

class RowTaps : public ::testing::TestWithParam<Isa> {};

TEST_P(RowTaps, EveryRowListsExactlyTheTapsThatReachIt) {
  std::mt19937_64 rng(2718 + static_cast<int>(GetParam()));
  for (int n = 0; n < 150; ++n) {
    const testing::RandomCase c = testing::random_case(rng);
    const KernelPlan plan = plan_of(c, GetParam());
    const ConvGeometry& g = plan.geometry;
    const AxisGeometry &d = g.axes[0], &h = g.axes[1];
    const tconv3d::RowTaps taps = build_row_taps(plan);
    // Input rows are channels_last (the executor transposes channels_first
    // inputs first); weights come in one block per (kd, kh), row-major.
    const int64_t row_bytes = 4 * g.axes[2].in * g.in_channels;
    const int64_t block_bytes = 4 * plan.packed_weight_count() / (d.kernel * h.kernel);
    ASSERT_EQ(taps.begin.size(), static_cast<size_t>(d.out * h.out + 1)) << c.describe();
    ASSERT_EQ(taps.begin.front(), 0);
    ASSERT_EQ(taps.begin.back(), static_cast<int64_t>(taps.pairs.size())) << c.describe();
    for (int64_t od = 0; od < d.out; ++od) {
      for (int64_t oh = 0; oh < h.out; ++oh) {
        std::vector<int64_t> expected;
        for (const auto& [kd, id] : brute_force_taps(d, od))
          for (const auto& [kh, ih] : brute_force_taps(h, oh)) {
            expected.push_back((id * h.in + ih) * row_bytes);
            expected.push_back((kd * h.kernel + kh) * block_bytes);
          }
        const int64_t row = od * h.out + oh;
        const std::vector<int64_t> actual(taps.pairs_of(row), taps.pairs_of(row) + 2 * taps.taps_of(row));
        ASSERT_EQ(actual, expected) << "row (" << od << ", " << oh << ") of " << c.describe();
        EXPECT_EQ(taps.cost[static_cast<size_t>(row)], codegen::row_cost(plan, od, oh));
        EXPECT_GT(taps.cost[static_cast<size_t>(row)], 0) << "a row without taps still stores bias";
      }
    }
  }
}

TEST_P(RowTaps, RowsRunGroupedByPhaseAndEachOnce) {
  std::mt19937_64 rng(31 + static_cast<int>(GetParam()));
  for (int n = 0; n < 150; ++n) {
    const testing::RandomCase c = testing::random_case(rng);
    const KernelPlan plan = plan_of(c, GetParam());
    const AxisGeometry &d = plan.geometry.axes[0], &h = plan.geometry.axes[1];
    const tconv3d::RowTaps taps = build_row_taps(plan);
    // Sorting by (D phase, H phase, row) must give the order itself: grouped
    // by phase class, ascending within a class, every row exactly once.
    std::vector<int64_t> rows(static_cast<size_t>(d.out * h.out));
    std::iota(rows.begin(), rows.end(), 0);
    std::stable_sort(rows.begin(), rows.end(), [&](int64_t a, int64_t b) {
      return std::make_tuple(phase_of(a / h.out, d), phase_of(a % h.out, h)) <
             std::make_tuple(phase_of(b / h.out, d), phase_of(b % h.out, h));
    });
    EXPECT_EQ(taps.order, rows) << c.describe();
    std::vector<int64_t> ds(static_cast<size_t>(d.out));
    std::iota(ds.begin(), ds.end(), 0);
    std::stable_sort(ds.begin(), ds.end(), [&](int64_t a, int64_t b) { return phase_of(a, d) < phase_of(b, d); });
    EXPECT_EQ(taps.d_order, ds) << c.describe();
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, RowTaps, ::testing::ValuesIn(testing::all_isas()), testing::isa_name);

}  // namespace
}  // namespace tconv3d
