#include "bench/onednn_deconv.hpp"

#include "core/activation.hpp"

#ifdef TCONV3D_HAVE_ONEDNN

#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>
#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "bench/onednn_problem.hpp"

namespace tconv3d::bench {

using dnnl::memory;

struct OneDnnDeconv::State {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  mutable dnnl::stream stream{engine};
  dnnl::deconvolution_forward::primitive_desc pd;
  dnnl::deconvolution_forward primitive;
  memory weights, bias;
  memory::desc src_md, dst_md;
  bool has_bias = false;
  // Set when the activation runs as a plain loop after oneDNN instead of as its post-op.
  std::optional<Activation> separate_activation;
  int64_t output_elements = 0;
  int threads = 1;
};

OneDnnDeconv::OneDnnDeconv(const ConvGeometry& g, const Activation& activation, const float* kernel,
                           const float* bias, int threads)
    : state_(std::make_unique<State>()) {
  if (threads < 1) throw std::runtime_error("oneDNN threads: expected at least 1, got " + std::to_string(threads));
  // Everything below, the primitive descriptor above all, sees `threads`.
  const OmpThreadsScope scope(threads);
  State& s = *state_;
  s.threads = threads;
  const OneDnnShapes shapes = onednn_shapes(g);
  s.src_md = memory::desc(shapes.src, memory::data_type::f32, shapes.tag);
  s.dst_md = memory::desc(shapes.dst, memory::data_type::f32, shapes.tag);
  s.has_bias = bias != nullptr;
  s.output_elements = g.output_elements();
  // With TCONV3D_BENCH_ONEDNN_NO_POSTOPS=1 oneDNN computes conv + bias and a
  // plain OpenMP loop applies the activation afterwards, as a user avoiding
  // oneDNN 2.6's slow deconvolution post-ops would.
  const dnnl::primitive_attr attr = activation_attr(activation, &s.separate_activation);
  s.pd = make_forward_pd(s.engine, shapes, dnnl::prop_kind::forward_inference, memory::data_type::f32,
                         memory::data_type::f32, s.has_bias, attr);
  s.primitive = dnnl::deconvolution_forward(s.pd);
  memory user_weights(keras_weights_desc(shapes, memory::data_type::f32), s.engine, const_cast<float*>(kernel));
  s.weights = memory(s.pd.weights_desc(), s.engine);
  dnnl::reorder(user_weights, s.weights).execute(s.stream, user_weights, s.weights);
  if (s.has_bias) {
    s.bias = memory(s.pd.bias_desc(), s.engine);
    std::copy(bias, bias + g.out_channels, static_cast<float*>(s.bias.get_data_handle()));
  }
  s.stream.wait();
}

OneDnnDeconv::~OneDnnDeconv() = default;

void OneDnnDeconv::run(const float* input, float* output) const {
  const State& s = *state_;
  const int threads = s.threads;
  const OmpThreadsScope scope(threads);
  memory src(s.src_md, s.engine, const_cast<float*>(input));
  memory dst(s.dst_md, s.engine, output);
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, s.weights}, {DNNL_ARG_DST, dst}};
  if (s.has_bias) args.emplace(DNNL_ARG_BIAS, s.bias);
  s.primitive.execute(s.stream, args);
  s.stream.wait();
  if (s.separate_activation) {
    const Activation& act = *s.separate_activation;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < s.output_elements; ++i) output[i] = apply_elementwise(act, output[i]);
  }
}

int OneDnnDeconv::threads() const { return state_->threads; }

std::string OneDnnDeconv::impl() const { return state_->pd.impl_info_str(); }

bool OneDnnDeconv::uses_zmm() const { return onednn_isa_has_zmm(); }

}  // namespace tconv3d::bench

#endif  // TCONV3D_HAVE_ONEDNN
