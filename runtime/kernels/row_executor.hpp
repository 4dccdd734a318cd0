// The executor of every generated row kernel (Xbyak and LLVM), of the
// forward pass and of the input gradient (plan.pass: then the input is dz,
// the output dx, both channels_last, and the row taps are the dz rows each dx
// row reads): it owns the plan, the packed weights and bias, the row-tap
// list, and runs the rows (n, od, oh) on OpenMP threads; channels_first goes
// through one channels_last input copy and a blocked, fused output
// transpose. A backend only supplies the compiled code of the plan's row
// kernel(s).
//
// Each thread owns a contiguous run of rows of equal tap cost and helps the
// others at the end (work_split.hpp); every row is computed by the same code
// in the same order whatever the thread count, so results are bitwise
// identical for any number of threads.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/problem.hpp"
#include "plan/plan.hpp"
#include "runtime/exec_memory.hpp"
#include "runtime/executor.hpp"
#include "runtime/weight_store.hpp"
#include "tconv3d/options.hpp"

namespace tconv3d {

// Returns the code of one row kernel: for the whole plan, or for
// plan.for_group(k), one call per channel group, when plan.split_groups.
using RowKernelCompiler = std::function<std::shared_ptr<const ExecutableCode>(const codegen::KernelPlan&)>;

// The weights come packed for the plan from `weights` (packed there once per
// layout). name: what kernel_name() reports ("_per_group" is appended when
// the plan splits its channel groups).
std::unique_ptr<Executor> make_row_executor(codegen::KernelPlan plan, WeightStore& weights, Backend backend,
                                            const std::string& name, const RowKernelCompiler& compile);

}  // namespace tconv3d
