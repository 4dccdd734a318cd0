#include "bench/onednn_bf16.hpp"

#ifdef TCONV3D_HAVE_ONEDNN

#include "bench/onednn_problem.hpp"
#include "core/activation.hpp"
#include "tconv3d/bfloat16.hpp"

namespace tconv3d::bench {

// The weights reorder converts f32 to bf16 (round to nearest even, as tconv3d and Keras do).
struct OneDnnDeconvBf16::State : OneDnnForward {
  using OneDnnForward::OneDnnForward;
};

OneDnnDeconvBf16::OneDnnDeconvBf16(const ConvGeometry& g, const Activation& activation, const float* kernel,
                                   const float* bias, int threads)
    : state_(std::make_unique<State>(g, activation, kernel, bias, threads, dnnl::memory::data_type::bf16)) {}

OneDnnDeconvBf16::~OneDnnDeconvBf16() = default;

void OneDnnDeconvBf16::run(const uint16_t* input, uint16_t* output) const {
  const State& s = *state_;
  s.execute(input, output);
  if (s.separate_activation()) {
    // oneDNN has rounded to bf16 already; the activation rounds again (a
    // user without the post-op gets the same double rounding).
    const Activation& act = *s.separate_activation();
    const int threads = s.threads();
    const int64_t n = s.output_elements();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; ++i) output[i] = float_to_bf16(apply_elementwise(act, bf16_to_float(output[i])));
  }
}

int OneDnnDeconvBf16::threads() const { return state_->threads(); }
std::string OneDnnDeconvBf16::impl() const { return state_->impl(); }
bool OneDnnDeconvBf16::weights_reordered() const { return state_->weights_reordered(); }

}  // namespace tconv3d::bench

#endif  // TCONV3D_HAVE_ONEDNN
