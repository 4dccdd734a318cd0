// Registers the LLVM targets tconv3d generates code for (x86-64 and AArch64),
// once per process; safe to call from any thread.
#pragma once

namespace tconv3d::llvm_backend {

void initialize_llvm_targets();

}  // namespace tconv3d::llvm_backend
