#include "runtime/kernels/generated_backward.hpp"

#include "runtime/kernels/generated_input_gradient.hpp"
#include "runtime/kernels/generated_kernel_gradient.hpp"

namespace tconv3d {
namespace {

class GeneratedBackwardExecutor final : public BackwardExecutor {
 public:
  GeneratedBackwardExecutor(const Problem& problem, WeightStore& weights, Backend backend, Isa isa)
      : dx_(problem, weights, backend, isa), dk_(problem, backend, isa) {}

  void input_gradient(const float* dz, float* dx, int threads) const override { dx_.run(dz, dx, threads); }

  void kernel_gradient(const float* x, const float* dz, float* dk, int threads) const override {
    dk_.run(x, dz, dk, threads);
  }

  Backend backend() const override { return dx_.backend(); }
  std::string isa() const override { return dx_.isa(); }
  std::string input_gradient_kernel_name() const override { return dx_.kernel_name(); }
  std::string kernel_gradient_kernel_name() const override { return dk_.kernel_name(); }

 private:
  GeneratedInputGradient dx_;
  GeneratedKernelGradient dk_;
};

}  // namespace

std::unique_ptr<BackwardExecutor> make_generated_backward_executor(const Problem& problem, WeightStore& weights,
                                                                   Backend backend, Isa isa) {
  return std::make_unique<GeneratedBackwardExecutor>(problem, weights, backend, isa);
}

}  // namespace tconv3d
