// Ahead-of-time kernels: a relocatable ELF object that defines one layer's
// whole forward pass as a plain C function, and a standalone C header that
// declares it (standard C headers only). A program links the object and calls
// it with no tconv3d runtime, no JIT and no other library (not even libm).
//
// The object is built from the same KernelPlan as the JIT (plan_for_backend),
// so with one thread it computes bit for bit what the JIT computes. With
// --backend xbyak on x86-64 Linux everything is our own code and needs no
// LLVM in the build (runtime/aot_native.hpp): the JIT's row kernel(s), a
// driver that loops over the output rows on the calling thread, transposes
// channels_first data through the workspace and applies axis activations
// (softmax, log_softmax, glu, sparsemax), and NAME_pack for run-time weights.
// LLVM builds the rest: its own row kernel, other targets (aarch64), and
// elementwise activations only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tconv3d/config.hpp"
#include "tconv3d/layer.hpp"

namespace tconv3d {

struct AotRequest {
  LayerConfig config;
  std::vector<int64_t> input_shape;  // in the config's data format
  std::string symbol;                // a C identifier
  std::string object_path;           // "-o"
  std::string header_path;           // "--header"; empty: none
  // Keras-layout weights to bake into read-only data; null: the object
  // exports NAME_packed_size() and NAME_pack() instead.
  const float* kernel = nullptr;
  const float* bias = nullptr;       // with a kernel, required iff use_bias
  Backend backend = Backend::kAuto;  // kAuto: llvm (xbyak in a build without LLVM); kLlvm or kXbyak
  Isa isa = Isa::kAuto;              // x86: kAuto = avx2 (portable); aarch64: kAuto only
  std::string triple;                // empty: the host's
};

struct AotResult {
  std::string backend;  // "llvm" or "xbyak"
  std::string isa;      // "avx2", "avx512", "neon"
  std::string triple;
  size_t object_bytes = 0;
  bool baked_weights = false;
  int64_t workspace_bytes = 0;
  int64_t packed_floats = 0;  // without baked weights
  std::vector<std::string> warnings;
};

// Validates everything before writing anything; writes the object and the
// header through temporary files and renames, so on any error (thrown as
// tconv3d::Error naming the argument: "--symbol", "--target", "--isa",
// "--backend", "-o", "--header", "activation", ...) neither file is left
// behind or half-written.
AotResult write_aot(const AotRequest& request);

// [A-Za-z_][A-Za-z0-9_]*, not a C keyword, at most 200 characters.
bool is_c_identifier(const std::string& name);

// The C header text for a request (also used by write_aot).
std::string aot_header_text(const AotRequest& request, const AotResult& result);

}  // namespace tconv3d
