// Which machine an LLVM kernel is compiled for: the host (JIT, with the
// host CPU's name and features as LLVM sees them) or a named triple (AOT).
// Plain C++ types only, so callers outside codegen/llvm need no LLVM headers.
#pragma once

#include <string>

#include "tconv3d/options.hpp"

namespace tconv3d::llvm_backend {

struct LlvmTarget {
  std::string triple;    // normalized, e.g. x86_64-pc-linux-gnu, aarch64-unknown-linux-gnu
  std::string cpu;       // e.g. skylake-avx512, znver3, generic
  std::string features;  // comma-separated +feat/-feat, as LLVM takes them
  int vector_floats = 8; // lanes of the vectors the emitter uses (4 NEON, 8 AVX2, 16 AVX-512)
  bool x86 = true;
  std::string isa_name;  // "avx2", "avx512", "neon": kernel names and reports

  // Everything that changes the machine code, for cache keys.
  std::string key() const;
};

// The host CPU, restricted to `isa` (kAvx2 turns AVX-512 off; kAuto is not
// allowed here: resolve it first). Throws tconv3d::Error if the host lacks it.
LlvmTarget host_target(Isa isa);

// An ahead-of-time target. `triple` empty means the host's triple. x86-64
// triples take --isa avx2|avx512 (kAuto: avx2, the portable choice) and get a
// generic CPU with exactly those features; aarch64 triples take kAuto only
// and get NEON. Unknown triples, other architectures and non-ELF targets throw
// tconv3d::Error naming `triple_argument` / "--isa".
LlvmTarget aot_target(const std::string& triple, Isa isa, const std::string& triple_argument = "--target");

// "14.0.6": part of every cache key.
std::string llvm_version_string();

}  // namespace tconv3d::llvm_backend
