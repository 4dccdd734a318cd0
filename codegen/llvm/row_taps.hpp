// The run-time half of the plan's row kernel contract: for every output row
// (od, oh), the (input row byte offset, packed-weight byte offset) pairs of
// the D/H taps that reach it, in tap order (see codegen/kernel_args.hpp).
// Shared by the LLVM executor and the AOT drivers, which bake it as a table.
#pragma once

#include <cstdint>
#include <vector>

#include "codegen/plan.hpp"

namespace tconv3d::llvm_backend {

struct RowTaps {
  std::vector<int64_t> pairs;  // flattened (input bytes, weight bytes) pairs
  std::vector<int64_t> begin;  // per row od*out_h + oh: index into pairs (2 per tap), plus the end
  std::vector<int64_t> cost;   // per row: codegen::row_cost, for balancing threads
};

RowTaps build_row_taps(const codegen::KernelPlan& plan);

// First row of each of `threads` contiguous chunks of about equal cost over
// `rows` = batch * out_d * out_h rows, plus `rows` at the end.
std::vector<int64_t> partition_rows(const RowTaps& taps, int64_t rows, int threads);

}  // namespace tconv3d::llvm_backend
