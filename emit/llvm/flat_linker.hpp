// Turns an x86-64 ELF relocatable object from LLVM into one flat block of
// position-independent machine code, the same form the Xbyak emitter produces,
// so LLVM kernels share the kernel cache, W^X mapping, dumps and perf names.
//
// Every allocatable read-only section (code, constant pools) is laid out in
// one buffer, the entry function's section first (so the entry is offset 0),
// and every PC-relative relocation is resolved inside it. Anything that would
// need the outside world (an undefined symbol such as a libm call, an absolute
// address, a GOT entry, writable data) is refused with tconv3d::Error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tconv3d::llvm_backend {

std::vector<uint8_t> link_flat_x86_64(const std::vector<uint8_t>& object, const std::string& entry_symbol);

}  // namespace tconv3d::llvm_backend
