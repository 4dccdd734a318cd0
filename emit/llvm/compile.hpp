// LLVM module -> optimized -> ELF object bytes, for one LlvmTarget. Used by the
// JIT path (host target, then flattened by flat_linker) and by AOT (any
// target, written as is). The TargetMachine comes from ORC's
// JITTargetMachineBuilder and the object from ORC's SimpleCompiler.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <llvm/IR/Module.h>
#include <llvm/Target/TargetMachine.h>

#include "emit/llvm/llvm_target.hpp"

namespace tconv3d::llvm_backend {

// Position-independent, small code model, one section per function (so a
// function starts its own section), no unwind tables.
std::unique_ptr<llvm::TargetMachine> make_target_machine(const LlvmTarget& target);

// Sets the module's triple and data layout to the machine's (on non-x86
// targets the emitters' register pins become plain barriers, see
// IrSupport::pin); runs a short cleanup pipeline (SROA, early CSE,
// instcombine, simplifycfg), then code generation at -O3. Throws tconv3d::Error if the module does
// not verify or LLVM fails.
std::vector<uint8_t> compile_to_object(llvm::Module& module, llvm::TargetMachine& machine);

}  // namespace tconv3d::llvm_backend
