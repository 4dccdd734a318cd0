#include "emit/llvm/llvm_backend.hpp"

#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include <chrono>
#include <functional>
#include <mutex>

#include "emit/llvm/compile.hpp"
#include "emit/llvm/flat_linker.hpp"
#include "emit/llvm/ir_bf16_kernel.hpp"
#include "emit/llvm/ir_kernel.hpp"
#include "emit/llvm/ir_kernel_gradient.hpp"
#include "emit/llvm/llvm_target.hpp"
#include "emit/llvm/object_cache.hpp"
#include "plan/kernel_name.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::llvm_backend {
namespace {

std::mutex stats_mutex;
LlvmStats stats;

template <typename F>
void update_stats(F&& f) {
  std::lock_guard<std::mutex> lock(stats_mutex);
  f(stats);
}

constexpr const char* kEntry = "tconv3d_row_kernel";
// LLVM's code generation time grows with the unrolled body; beyond 2 Cin steps
// per iteration the loop overhead is already negligible next to the FMAs.
constexpr int kMaxCinUnroll = 2;

}  // namespace

LlvmStats llvm_stats() {
  std::lock_guard<std::mutex> lock(stats_mutex);
  return stats;
}

std::string llvm_kernel_key(const codegen::KernelPlan& plan) {
  return "llvm-ir" + std::to_string(kIrEmitterVersion) + "u" + std::to_string(kMaxCinUnroll) + "/" + host_target(plan.isa).key() + "/" + plan.cache_key();
}

namespace {

// vdpbf16ps kernels need the target feature: without it LLVM's instruction
// selection aborts the process instead of reporting an error.
void require_bf16_target(bool bf16, Isa isa, const std::string& what) {
  if (!bf16) return;
  const std::string features = "," + host_target(isa).features + ",";
  if (features.find(",+avx512bf16,") == std::string::npos)
    throw Error("dtype", "the llvm " + what + " is vdpbf16ps code, which needs avx512_bf16: the " + to_string(isa) +
                             " target of this CPU lacks it");
}

// The kernel of `key`, from TCONV3D_CACHE_DIR or compiled: `emit` adds the
// function kEntry to a fresh module, which is compiled for the host (isa)
// and flattened into position-independent bytes.
CompiledCode compile_cached(const std::string& key, std::string name, Isa isa,
                            const std::function<void(llvm::Module&)>& emit) {
  const auto start = std::chrono::steady_clock::now();
  const ObjectDiskCache disk = ObjectDiskCache::from_environment();
  CompiledCode code;
  code.name = std::move(name);
  bool corrupt = false;
  if (auto cached = disk.load(key, &corrupt)) {
    try {
      code.bytes = link_flat_x86_64(*cached, kEntry);
      update_stats([](LlvmStats& s) { ++s.disk_hits; });
    } catch (const Error&) {
      corrupt = true;  // intact framing around an unusable object: rebuild it
    }
  }
  if (code.bytes.empty()) {
    if (disk.enabled()) update_stats([&](LlvmStats& s) { ++s.disk_misses, s.disk_corrupt += corrupt ? 1 : 0; });
    const LlvmTarget target = host_target(isa);
    auto machine = make_target_machine(target);
    llvm::LLVMContext context;
    llvm::Module module("tconv3d_llvm_kernel", context);
    emit(module);
    const std::vector<uint8_t> object = compile_to_object(module, *machine);
    code.bytes = link_flat_x86_64(object, kEntry);
    update_stats([](LlvmStats& s) { ++s.compiles; });
    if (disk.store(key, object)) update_stats([](LlvmStats& s) { ++s.disk_stores; });
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  update_stats([&](LlvmStats& s) { s.compile_seconds += seconds; });
  return code;
}

}  // namespace

CompiledCode compile_row_kernel(const codegen::KernelPlan& plan) {
  require_bf16_target(plan.bf16(), plan.isa, "bf16 row kernel");
  return compile_cached(llvm_kernel_key(plan), codegen::kernel_name(plan) + "__llvm", plan.isa,
                        [&plan](llvm::Module& module) {
                          if (plan.bf16())
                            emit_bf16_row_kernel(module, plan, kEntry, kMaxCinUnroll);
                          else
                            emit_row_kernel(module, plan, kEntry, kMaxCinUnroll);
                        });
}

std::string llvm_kernel_gradient_key(const codegen::KernelGradientPlan& plan) {
  return "llvm-dk-ir" + std::to_string(kIrKernelGradientVersion) + "/" + host_target(plan.isa).key() + "/" +
         plan.cache_key();
}

CompiledCode compile_kernel_gradient_kernel(const codegen::KernelGradientPlan& plan) {
  require_bf16_target(plan.bf16(), plan.isa, "bf16 kernel-gradient kernel");
  return compile_cached(llvm_kernel_gradient_key(plan), codegen::kernel_gradient_name(plan) + "__llvm", plan.isa,
                        [&plan](llvm::Module& module) { emit_kernel_gradient_kernel(module, plan, kEntry); });
}

const codegen::CodeBackend& llvm_code_backend() {
  static const codegen::CodeBackend backend{Backend::kLlvm, "__llvm", llvm_kernel_key, compile_row_kernel};
  return backend;
}

}  // namespace tconv3d::llvm_backend
