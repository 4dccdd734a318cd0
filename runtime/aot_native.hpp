// Ahead-of-time objects without LLVM: for an Xbyak row kernel on a
// channels_last layer with baked weights, the whole object is assembled here:
// the kernel's bytes, the driver from emit/x64/aot_driver_emitter.hpp, and
// the packed weights, bias and row tables as read-only data, written by
// runtime/object_writer.hpp. Layers that need more (channels_first
// transposes, run-time packing, other targets) go through LLVM.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "plan/plan.hpp"

namespace tconv3d {

// Whether build_native_aot_object serves this plan (channels_last).
bool native_aot_supports(const codegen::KernelPlan& plan);

// The ELF object defining `symbol` (the driver) and `symbol`_workspace_size.
// kernel: Keras layout; bias: (filters,) or null. Throws tconv3d::Error where
// native_aot_supports is false.
std::vector<uint8_t> build_native_aot_object(const codegen::KernelPlan& plan, const std::vector<uint8_t>& kernel_bytes,
                                             const float* kernel, const float* bias, const std::string& symbol);

}  // namespace tconv3d
