// The run-time half of the plan's row kernel contract (core/kernel_args.hpp):
// for every output row (od, oh), the (input row byte offset, packed-weight
// byte offset) pairs of the D/H taps that reach it, in tap order (for an
// input-gradient plan: the dz rows a dx row reads); plus the
// order the rows run in and their costs, for splitting them among threads.
// Used by every generated-kernel executor (row_executor.hpp) and baked as
// tables into the ahead-of-time objects.
#pragma once

#include <cstdint>
#include <vector>

#include "plan/plan.hpp"

namespace tconv3d {

struct RowTaps {
  std::vector<int64_t> pairs;  // flattened (input bytes, weight bytes) pairs
  std::vector<int64_t> begin;  // per row od*out_h + oh: index into pairs (2 per tap), plus the end
  std::vector<int64_t> cost;   // per row: codegen::row_cost
  // Rows of one (D phase, H phase) class read the same weight blocks: they
  // run one after the other, so those weights stay in L2.
  std::vector<int64_t> order;    // the rows od*out_h + oh in run order
  std::vector<int64_t> d_order;  // od in D phase order (channels_first blocks)

  int64_t taps_of(int64_t row) const { return (begin[static_cast<size_t>(row) + 1] - begin[static_cast<size_t>(row)]) / 2; }
  const int64_t* pairs_of(int64_t row) const { return pairs.data() + begin[static_cast<size_t>(row)]; }
};

RowTaps build_row_taps(const codegen::KernelPlan& plan);

}  // namespace tconv3d
