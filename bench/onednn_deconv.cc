#include "bench/onednn_deconv.hpp"

#ifdef TCONV3D_HAVE_ONEDNN

#include "bench/onednn_problem.hpp"
#include "core/activation.hpp"

namespace tconv3d::bench {

struct OneDnnDeconv::State : OneDnnForward {
  using OneDnnForward::OneDnnForward;
};

OneDnnDeconv::OneDnnDeconv(const ConvGeometry& g, const Activation& activation, const float* kernel,
                           const float* bias, int threads)
    : state_(std::make_unique<State>(g, activation, kernel, bias, threads, dnnl::memory::data_type::f32)) {}

OneDnnDeconv::~OneDnnDeconv() = default;

void OneDnnDeconv::run(const float* input, float* output) const {
  const State& s = *state_;
  s.execute(input, output);
  if (s.separate_activation()) {
    // TCONV3D_BENCH_ONEDNN_NO_POSTOPS=1: a plain OpenMP loop after oneDNN.
    const Activation& act = *s.separate_activation();
    const int threads = s.threads();
    const int64_t n = s.output_elements();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; ++i) output[i] = apply_elementwise(act, output[i]);
  }
}

int OneDnnDeconv::threads() const { return state_->threads(); }

std::string OneDnnDeconv::impl() const { return state_->impl(); }

bool OneDnnDeconv::uses_zmm() const { return onednn_isa_has_zmm(); }

}  // namespace tconv3d::bench

#endif  // TCONV3D_HAVE_ONEDNN
