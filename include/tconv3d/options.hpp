// How a layer is run: which backend and instruction set, on how many threads.
#pragma once

#if __cplusplus < 201703L
#error "tconv3d's C++ API needs C++17 or later (-std=c++17)"
#endif

#include <string>

#include "tconv3d/export.h"

namespace tconv3d {

enum class Backend { kAuto, kReference, kGeneric, kXbyak, kLlvm };
enum class Isa { kAuto, kAvx2, kAvx512 };
// The compute data type of a layer's tensors (input, output, packed weights).
// kBfloat16: Keras's mixed_bfloat16 policy: float32 weights rounded to bf16
// once, bf16 inputs and outputs, float32 accumulation, float32 bias and
// activation. Needs the Xbyak backend and a CPU with AVX512_BF16.
enum class DataType { kFloat32, kBfloat16 };

TCONV3D_API std::string to_string(Backend);
TCONV3D_API std::string to_string(Isa);
TCONV3D_API Backend parse_backend(const std::string& text);  // auto|reference|generic|xbyak|llvm
TCONV3D_API Isa parse_isa(const std::string& text);          // auto|avx2|avx512
TCONV3D_API std::string to_string(DataType);                 // "float32", "bf16"
TCONV3D_API DataType parse_data_type(const std::string& text);  // float32|f32|bf16|bfloat16

struct LayerOptions {
  Backend backend = Backend::kAuto;
  Isa isa = Isa::kAuto;  // kAuto also honours TCONV3D_ISA
  int threads = 0;       // 0: all the process may use (OpenMP's default)
  // bf16: run with Layer::forward_bf16 (forward() is then an error).
  DataType dtype = DataType::kFloat32;
};

}  // namespace tconv3d
