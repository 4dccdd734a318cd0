// What a code-generating backend (an emitter) offers the layers above it:
// from a plan (plan_for_backend), its row kernel's machine code, and the
// cache key under which that code is the same. The runtime runs and caches
// the code; the emitter only produces it.
#pragma once

#include <string>

#include "core/compiled_code.hpp"
#include "plan/plan.hpp"
#include "tconv3d/options.hpp"

namespace tconv3d::codegen {

struct CodeBackend {
  Backend id = Backend::kXbyak;
  std::string kernel_name_suffix;  // appended to kernel_name(plan): "" or "__llvm"
  // Everything that changes the code of plan's row kernel on this host.
  std::string (*kernel_key)(const KernelPlan& plan) = nullptr;
  // The row kernel for plan (plan.isa, or one channel group with for_group).
  CompiledCode (*compile_row_kernel)(const KernelPlan& plan) = nullptr;
};

}  // namespace tconv3d::codegen
