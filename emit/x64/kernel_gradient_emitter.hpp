// The Xbyak code generator of the kernel-gradient (dK) kernel: reads a
// KernelGradientPlan, writes the machine code of one call (see
// plan/kernel_gradient_plan.hpp for what a call computes). One template serves
// AVX2 and AVX-512 through the ISA traits; the bytes are position-independent,
// ready to be copied into W^X memory by the runtime.
#pragma once

#include "core/compiled_code.hpp"
#include "plan/kernel_gradient_plan.hpp"

namespace tconv3d::x64 {

// Emits the dK kernel for plan.isa (kAvx2 or kAvx512). Throws tconv3d::Error
// when code generation fails.
CompiledCode emit_kernel_gradient_kernel(const codegen::KernelGradientPlan& plan);

}  // namespace tconv3d::x64
