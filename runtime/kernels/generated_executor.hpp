// The executor of a code-generating backend (Xbyak or LLVM): the backend's
// plan (plan_for_backend), its row kernels from the kernel cache, and the
// layer's weights packed for the plan, run by the shared row executor
// (each thread owns a run of rows of equal tap cost, results bitwise
// identical for any number of threads).
#pragma once

#include <memory>

#include "core/problem.hpp"
#include "plan/code_backend.hpp"
#include "runtime/executor.hpp"
#include "runtime/weight_store.hpp"
#include "tconv3d/options.hpp"

namespace tconv3d {

// The code backends this build has: xbyak and llvm where they are built,
// null otherwise (and for backends that generate no code).
const codegen::CodeBackend* code_backend(Backend backend);

// isa: kAvx2 or kAvx512, already checked against the CPU.
std::unique_ptr<Executor> make_generated_executor(const Problem& problem, WeightStore& weights, Isa isa,
                                                  const codegen::CodeBackend& backend);

}  // namespace tconv3d
