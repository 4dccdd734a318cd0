#include "bench/onednn_bf16.hpp"

#ifdef TCONV3D_HAVE_ONEDNN

#include <oneapi/dnnl/dnnl.hpp>
#include <algorithm>
#include <optional>
#include <stdexcept>
#include <unordered_map>

#include "bench/onednn_problem.hpp"
#include "core/activation.hpp"
#include "tconv3d/bfloat16.hpp"

namespace tconv3d::bench {

using dnnl::memory;

struct OneDnnDeconvBf16::State {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  mutable dnnl::stream stream{engine};
  OneDnnShapes shapes;
  dnnl::deconvolution_forward::primitive_desc pd;
  dnnl::deconvolution_forward primitive;
  memory weights, bias;
  memory::desc src_md, dst_md;
  bool has_bias = false;
  std::optional<Activation> separate_activation;
  int64_t output_elements = 0;
  int threads = 1;
};

OneDnnDeconvBf16::OneDnnDeconvBf16(const ConvGeometry& g, const Activation& activation, const float* kernel,
                                   const float* bias, int threads)
    : state_(std::make_unique<State>()) {
  if (threads < 1) throw std::runtime_error("oneDNN threads: expected at least 1, got " + std::to_string(threads));
  const OmpThreadsScope scope(threads);
  State& s = *state_;
  s.threads = threads;
  s.shapes = onednn_shapes(g);
  const auto bf16 = memory::data_type::bf16;
  s.src_md = memory::desc(s.shapes.src, bf16, s.shapes.tag);
  s.dst_md = memory::desc(s.shapes.dst, bf16, s.shapes.tag);
  s.has_bias = bias != nullptr;
  s.output_elements = g.output_elements();
  const dnnl::primitive_attr attr = activation_attr(activation, &s.separate_activation);
  s.pd = make_forward_pd(s.engine, s.shapes, dnnl::prop_kind::forward_inference, bf16, bf16, s.has_bias, attr);
  s.primitive = dnnl::deconvolution_forward(s.pd);
  // The reorder converts f32 to bf16 (round to nearest even, as tconv3d and Keras do).
  memory user_weights(keras_weights_desc(s.shapes, memory::data_type::f32), s.engine, const_cast<float*>(kernel));
  s.weights = memory(s.pd.weights_desc(), s.engine);
  dnnl::reorder(user_weights, s.weights).execute(s.stream, user_weights, s.weights);
  if (s.has_bias) {
    s.bias = memory(s.pd.bias_desc(), s.engine);
    std::copy(bias, bias + g.out_channels, static_cast<float*>(s.bias.get_data_handle()));
  }
  s.stream.wait();
}

OneDnnDeconvBf16::~OneDnnDeconvBf16() = default;

void OneDnnDeconvBf16::run(const uint16_t* input, uint16_t* output) const {
  const State& s = *state_;
  const int threads = s.threads;
  const OmpThreadsScope scope(threads);
  memory src(s.src_md, s.engine, const_cast<uint16_t*>(input));
  memory dst(s.dst_md, s.engine, output);
  std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, s.weights}, {DNNL_ARG_DST, dst}};
  if (s.has_bias) args.emplace(DNNL_ARG_BIAS, s.bias);
  s.primitive.execute(s.stream, args);
  s.stream.wait();
  if (s.separate_activation) {
    // oneDNN has rounded to bf16 already; the activation rounds again (a
    // user without the post-op gets the same double rounding).
    const Activation& act = *s.separate_activation;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < s.output_elements; ++i)
      output[i] = float_to_bf16(apply_elementwise(act, bf16_to_float(output[i])));
  }
}

int OneDnnDeconvBf16::threads() const { return state_->threads; }
std::string OneDnnDeconvBf16::impl() const { return state_->pd.impl_info_str(); }
bool OneDnnDeconvBf16::weights_reordered() const { return is_reordered(state_->pd.weights_desc(), state_->shapes); }

}  // namespace tconv3d::bench

#endif  // TCONV3D_HAVE_ONEDNN
