#include "emit/llvm/llvm_target.hpp"

#include <llvm/ADT/StringMap.h>
#include <llvm/ADT/Triple.h>
#include <llvm/Config/llvm-config.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Support/Host.h>

#include <algorithm>
#include <vector>

#include "core/cpu_features.hpp"
#include "emit/llvm/llvm_init.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::llvm_backend {
namespace {

// The host's features as LLVM names them, sorted so the string is stable.
std::vector<std::string> host_feature_flags() {
  llvm::StringMap<bool> features;
  std::vector<std::string> flags;
  if (!llvm::sys::getHostCPUFeatures(features)) return flags;
  for (const auto& f : features) flags.push_back((f.getValue() ? "+" : "-") + f.getKey().str());
  std::sort(flags.begin(), flags.end());
  return flags;
}

std::string join(const std::vector<std::string>& flags) {
  std::string out;
  for (const std::string& f : flags) out += (out.empty() ? "" : ",") + f;
  return out;
}

void check_registered(const std::string& triple, const std::string& argument) {
  std::string error;
  if (!llvm::TargetRegistry::lookupTarget(triple, error))
    throw Error(argument, "LLVM cannot generate code for '" + triple + "': " + error);
}

}  // namespace

std::string LlvmTarget::key() const {
  return "llvm" + llvm_version_string() + "|" + triple + "|" + cpu + "|" + features + "|v" +
         std::to_string(vector_floats);
}

std::string llvm_version_string() { return LLVM_VERSION_STRING; }

LlvmTarget host_target(Isa isa) {
  initialize_llvm_targets();
  LlvmTarget t;
  t.triple = llvm::Triple::normalize(llvm::sys::getProcessTriple());
  t.cpu = llvm::sys::getHostCPUName().str();
  std::vector<std::string> flags = host_feature_flags();
  const llvm::Triple triple(t.triple);
  t.x86 = triple.getArch() == llvm::Triple::x86_64;
  if (t.x86) {
    const Isa resolved = resolve_isa(isa);  // throws if the CPU lacks a forced ISA
    if (resolved == Isa::kAuto) throw Error("isa", "this CPU has neither AVX2+FMA nor AVX-512");
    if (resolved == Isa::kAvx2) {
      // Clearing avx512f also clears every AVX-512 extension that implies it.
      flags.erase(std::remove_if(flags.begin(), flags.end(),
                                 [](const std::string& f) { return f.rfind("+avx512", 0) == 0; }),
                  flags.end());
      flags.push_back("-avx512f");
    }
    t.vector_floats = resolved == Isa::kAvx512 ? 16 : 8;
    t.isa_name = resolved == Isa::kAvx512 ? "avx512" : "avx2";
  } else if (triple.getArch() == llvm::Triple::aarch64) {
    if (isa != Isa::kAuto) throw Error("isa", to_string(isa) + " is an x86 ISA; this host is aarch64");
    t.vector_floats = 4;
    t.isa_name = "neon";
  } else {
    throw Error("backend", "llvm: host architecture '" + triple.getArchName().str() + "' is not supported");
  }
  t.features = join(flags);
  check_registered(t.triple, "backend");
  return t;
}

LlvmTarget aot_target(const std::string& triple_text, Isa isa, const std::string& triple_argument) {
  initialize_llvm_targets();
  const std::string requested = triple_text.empty() ? llvm::sys::getProcessTriple() : triple_text;
  const llvm::Triple triple(llvm::Triple::normalize(requested));
  if (triple.getArch() == llvm::Triple::UnknownArch)
    throw Error(triple_argument, "unknown target triple '" + requested + "' (try x86_64-linux-gnu or aarch64-linux-gnu)");
  if (triple.getArch() != llvm::Triple::x86_64 && triple.getArch() != llvm::Triple::aarch64)
    throw Error(triple_argument, "target '" + requested + "': only x86_64 and aarch64 are supported, not " +
                                     triple.getArchName().str());
  if (triple.getObjectFormat() != llvm::Triple::ELF)
    throw Error(triple_argument, "target '" + requested + "': only ELF objects are supported");
  LlvmTarget t;
  t.triple = triple.str();
  t.x86 = triple.getArch() == llvm::Triple::x86_64;
  if (t.x86) {
    // The psABI's x86-64 levels: v3 is AVX2+FMA (Haswell, Zen 1 on), v4 adds
    // AVX-512 F/BW/CD/DQ/VL. The object runs on any CPU of that level, not only
    // on the one that built it.
    const bool avx512 = isa == Isa::kAvx512;
    t.cpu = avx512 ? "x86-64-v4" : "x86-64-v3";
    t.features = "";
    t.vector_floats = avx512 ? 16 : 8;
    t.isa_name = avx512 ? "avx512" : "avx2";
  } else {
    if (isa != Isa::kAuto)
      throw Error("--isa", to_string(isa) + " cannot be emitted for '" + requested + "': aarch64 gets NEON; leave --isa out");
    t.cpu = "generic";
    t.features = "+neon";
    t.vector_floats = 4;
    t.isa_name = "neon";
  }
  check_registered(t.triple, triple_argument);
  return t;
}

}  // namespace tconv3d::llvm_backend
