#include "runtime/kernels/generic_backward.hpp"

#include <string>
#include <vector>

#include "core/cpu_features.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {
namespace generic {
// Defined in generic_backward_<isa>.cc, each built for its instruction set.
void backward_sse2_input_gradient(const ConvGeometry&, const float*, const float*, float*, int);
void backward_sse2_kernel_gradient(const ConvGeometry&, const float*, const float*, float*, int);
void backward_avx2_input_gradient(const ConvGeometry&, const float*, const float*, float*, int);
void backward_avx2_kernel_gradient(const ConvGeometry&, const float*, const float*, float*, int);
void backward_avx512_input_gradient(const ConvGeometry&, const float*, const float*, float*, int);
void backward_avx512_kernel_gradient(const ConvGeometry&, const float*, const float*, float*, int);
}  // namespace generic

namespace {

using generic::GenericIsa;

bool cpu_runs_isa(GenericIsa isa) {
  const CpuFeatures cpu = cpu_features();
  return isa == GenericIsa::kSse2 || (isa == GenericIsa::kAvx2 && cpu.avx2_fma) ||
         (isa == GenericIsa::kAvx512 && cpu.avx512);
}

GenericIsa widest_backward_isa() {
  if (cpu_runs_isa(GenericIsa::kAvx512)) return GenericIsa::kAvx512;
  if (cpu_runs_isa(GenericIsa::kAvx2)) return GenericIsa::kAvx2;
  return GenericIsa::kSse2;
}

}  // namespace

void generic_input_gradient(const ConvGeometry& g, const float* kernel, const float* dz, float* dx, int threads,
                            std::optional<GenericIsa> isa) {
  switch (isa.value_or(widest_backward_isa())) {
    case GenericIsa::kAvx512: return generic::backward_avx512_input_gradient(g, kernel, dz, dx, threads);
    case GenericIsa::kAvx2: return generic::backward_avx2_input_gradient(g, kernel, dz, dx, threads);
    case GenericIsa::kSse2: return generic::backward_sse2_input_gradient(g, kernel, dz, dx, threads);
  }
}

void generic_kernel_gradient(const ConvGeometry& g, const float* x, const float* dz, float* dk, int threads,
                             std::optional<GenericIsa> isa) {
  switch (isa.value_or(widest_backward_isa())) {
    case GenericIsa::kAvx512: return generic::backward_avx512_kernel_gradient(g, x, dz, dk, threads);
    case GenericIsa::kAvx2: return generic::backward_avx2_kernel_gradient(g, x, dz, dk, threads);
    case GenericIsa::kSse2: return generic::backward_sse2_kernel_gradient(g, x, dz, dk, threads);
  }
}

namespace {

class GenericBackwardExecutor final : public BackwardExecutor {
 public:
  GenericBackwardExecutor(const Problem& problem, const float* kernel, GenericIsa isa)
      : geometry_(problem.geometry), kernel_(kernel, kernel + problem.geometry.kernel_elements()), isa_(isa) {}

  void input_gradient(const float* dz, float* dx, int threads) const override {
    generic_input_gradient(geometry_, kernel_.data(), dz, dx, threads, isa_);
  }
  void kernel_gradient(const float* x, const float* dz, float* dk, int threads) const override {
    generic_kernel_gradient(geometry_, x, dz, dk, threads, isa_);
  }
  Backend backend() const override { return Backend::kGeneric; }
  std::string isa() const override { return isa_ == GenericIsa::kSse2 ? "none" : generic::to_string(isa_); }
  std::string input_gradient_kernel_name() const override {
    return std::string("generic_dx_rows_") + generic::to_string(isa_);
  }
  std::string kernel_gradient_kernel_name() const override {
    return std::string("generic_dk_tap_blocks_") + generic::to_string(isa_);
  }

 private:
  ConvGeometry geometry_;
  std::vector<float> kernel_;
  GenericIsa isa_;
};

}  // namespace

std::unique_ptr<BackwardExecutor> make_generic_backward_executor(const Problem& problem, const float* kernel,
                                                                 std::optional<GenericIsa> isa) {
  const GenericIsa chosen = isa.value_or(widest_backward_isa());
  if (!cpu_runs_isa(chosen))
    throw Error("isa", std::string("the generic backward kernels' ") + generic::to_string(chosen) +
                           " code cannot run on this CPU (or OS)");
  return std::make_unique<GenericBackwardExecutor>(problem, kernel, chosen);
}

}  // namespace tconv3d
