// How a layer is run: which backend and instruction set, on how many threads.
#pragma once

#include <string>

namespace tconv3d {

enum class Backend { kAuto, kReference, kGeneric, kXbyak, kLlvm };
enum class Isa { kAuto, kAvx2, kAvx512 };

std::string to_string(Backend);
std::string to_string(Isa);
Backend parse_backend(const std::string& text);  // auto|reference|generic|xbyak|llvm
Isa parse_isa(const std::string& text);          // auto|avx2|avx512

struct LayerOptions {
  Backend backend = Backend::kAuto;
  Isa isa = Isa::kAuto;  // kAuto also honours TCONV3D_ISA
  int threads = 0;       // 0: all the process may use (OpenMP's default)
};

}  // namespace tconv3d
