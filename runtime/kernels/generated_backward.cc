#include "runtime/kernels/generated_backward.hpp"

#include <optional>

#include "runtime/kernels/generated_input_gradient.hpp"
#include "runtime/kernels/generated_kernel_gradient.hpp"
#include "runtime/kernels/generic_backward.hpp"

namespace tconv3d {
namespace {

class GeneratedBackwardExecutor final : public BackwardExecutor {
 public:
  GeneratedBackwardExecutor(const Problem& problem, WeightStore& weights, Backend backend, Isa isa)
      : dx_(problem, weights, backend, isa) {
    if (backend == Backend::kXbyak) {
      dk_.emplace(problem, backend, isa);
    } else {
      portable_dk_ = make_generic_backward_executor(
          problem, weights.kernel().data(),
          isa == Isa::kAvx512 ? generic::GenericIsa::kAvx512 : generic::GenericIsa::kAvx2);
    }
  }

  void input_gradient(const float* dz, float* dx, int threads) const override { dx_.run(dz, dx, threads); }

  void kernel_gradient(const float* x, const float* dz, float* dk, int threads) const override {
    if (dk_) {
      dk_->run(x, dz, dk, threads);
    } else {
      portable_dk_->kernel_gradient(x, dz, dk, threads);
    }
  }

  Backend backend() const override { return dx_.backend(); }
  std::string isa() const override { return dx_.isa(); }
  std::string input_gradient_kernel_name() const override { return dx_.kernel_name(); }
  std::string kernel_gradient_kernel_name() const override {
    return dk_ ? dk_->kernel_name() : portable_dk_->kernel_gradient_kernel_name();
  }

 private:
  GeneratedInputGradient dx_;
  std::optional<GeneratedKernelGradient> dk_;      // Xbyak
  std::unique_ptr<BackwardExecutor> portable_dk_;  // LLVM: no generated dK yet
};

}  // namespace

std::unique_ptr<BackwardExecutor> make_generated_backward_executor(const Problem& problem, WeightStore& weights,
                                                                   Backend backend, Isa isa) {
  return std::make_unique<GeneratedBackwardExecutor>(problem, weights, backend, isa);
}

}  // namespace tconv3d
