// Ahead-of-time objects without LLVM: for Xbyak row kernels on x86-64 ELF,
// the whole object is assembled here: the row kernel(s) (one per channel
// group when the plan splits them), the driver from
// emit/x64/aot_driver_emitter.hpp (channels_first transposes, axis
// activations, and NAME_pack for run-time weights), and the packed weights,
// bias, row tables or packing runs as read-only data, written by
// runtime/object_writer.hpp. Every layer the JIT runs can be written this
// way; LLVM is needed only for other targets.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "plan/plan.hpp"

namespace tconv3d {

struct NativeAotObject {
  std::vector<uint8_t> bytes;
  int64_t workspace_bytes = 0;
  int64_t packed_floats = 0;  // run-time weights: NAME_packed_size()
};

// The ELF object defining `symbol` (the driver), `symbol`_workspace_size and,
// without a kernel, `symbol`_packed_size and `symbol`_pack. axis_activation:
// the layer's activation when it is not elementwise (the plan's fused
// activation is then linear), else linear. kernel: Keras layout, or null for
// run-time weights; bias: (filters,) or null. Throws tconv3d::Error.
NativeAotObject build_native_aot_object(const codegen::KernelPlan& plan, const Activation& axis_activation,
                                        const float* kernel, const float* bias, const std::string& symbol);

}  // namespace tconv3d
