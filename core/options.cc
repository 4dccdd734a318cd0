#include "tconv3d/options.hpp"

#include "tconv3d/error.hpp"

namespace tconv3d {

std::string to_string(Backend b) {
  switch (b) {
    case Backend::kAuto: return "auto";
    case Backend::kReference: return "reference";
    case Backend::kGeneric: return "generic";
    case Backend::kXbyak: return "xbyak";
    case Backend::kLlvm: return "llvm";
  }
  return "?";
}

std::string to_string(Isa i) {
  switch (i) {
    case Isa::kAuto: return "auto";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "?";
}

Backend parse_backend(const std::string& text) {
  if (text == "auto") return Backend::kAuto;
  if (text == "reference") return Backend::kReference;
  if (text == "generic") return Backend::kGeneric;
  if (text == "xbyak") return Backend::kXbyak;
  if (text == "llvm") return Backend::kLlvm;
  throw Error("backend", "expected auto, reference, generic, xbyak or llvm, got '" + text + "'");
}

Isa parse_isa(const std::string& text) {
  if (text == "auto") return Isa::kAuto;
  if (text == "avx2") return Isa::kAvx2;
  if (text == "avx512") return Isa::kAvx512;
  throw Error("isa", "expected auto, avx2 or avx512, got '" + text + "'");
}

std::string to_string(DataType t) { return t == DataType::kBfloat16 ? "bf16" : "float32"; }

DataType parse_data_type(const std::string& text) {
  if (text == "float32" || text == "f32") return DataType::kFloat32;
  if (text == "bf16" || text == "bfloat16") return DataType::kBfloat16;
  throw Error("dtype", "expected float32 or bf16, got '" + text + "'");
}

}  // namespace tconv3d
