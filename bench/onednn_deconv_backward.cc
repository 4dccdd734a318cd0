#include "bench/onednn_deconv_backward.hpp"

#ifdef TCONV3D_HAVE_ONEDNN

#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>
#include <unordered_map>

#include "bench/onednn_problem.hpp"

namespace tconv3d::bench {

using dnnl::memory;

struct OneDnnDeconvBackward::State {
  explicit State(int threads) : context(threads) {}
  OneDnnContext context;
  OneDnnShapes shapes;
  dnnl::deconvolution_backward_data::primitive_desc data_pd;
  dnnl::deconvolution_backward_weights::primitive_desc weights_pd;
  dnnl::deconvolution_backward_data data_primitive;
  dnnl::deconvolution_backward_weights weights_primitive;
  memory weights;
  mutable memory diff_weights;  // dK in oneDNN's layout, written by each run
  memory::desc src_md, dst_md;
  bool with_bias = false;
};

OneDnnDeconvBackward::OneDnnDeconvBackward(const ConvGeometry& g, const float* kernel, bool with_bias, int threads)
    : state_(std::make_unique<State>(threads)) {
  const OmpThreadsScope scope(threads);
  State& s = *state_;
  const dnnl::engine& engine = s.context.engine;
  s.with_bias = with_bias;
  s.shapes = onednn_shapes(g);
  const OneDnnShapes& sh = s.shapes;
  const auto f32 = memory::data_type::f32;
  s.src_md = memory::desc(sh.src, f32, sh.tag);
  s.dst_md = memory::desc(sh.dst, f32, sh.tag);
  const memory::desc weights_any(sh.weights, f32, memory::format_tag::any);
  const memory::desc bias_md({sh.out_channels}, f32, memory::format_tag::x);
  const auto alg = dnnl::algorithm::deconvolution_direct;
  // The hint: the same forward descriptor the forward benchmark makes, for training.
  const auto hint = make_forward_pd(engine, sh, dnnl::prop_kind::forward_training, f32, f32, with_bias);
  try {
    const dnnl::deconvolution_backward_data::desc data_desc(alg, s.src_md, weights_any, s.dst_md, sh.strides,
                                                            sh.dilates, sh.padding_l, sh.padding_r);
    s.data_pd = dnnl::deconvolution_backward_data::primitive_desc(data_desc, engine, hint);
    const auto weights_desc =
        with_bias ? dnnl::deconvolution_backward_weights::desc(alg, s.src_md, weights_any, bias_md, s.dst_md,
                                                               sh.strides, sh.dilates, sh.padding_l, sh.padding_r)
                  : dnnl::deconvolution_backward_weights::desc(alg, s.src_md, weights_any, s.dst_md, sh.strides,
                                                               sh.dilates, sh.padding_l, sh.padding_r);
    s.weights_pd = dnnl::deconvolution_backward_weights::primitive_desc(weights_desc, engine, hint);
  } catch (const dnnl::error& e) {
    throw std::runtime_error("oneDNN has no f32 backward deconvolution for this layer on its ISA " +
                             onednn_isa_name() + " (padding_l " + dims_text(sh.padding_l) + ", padding_r " +
                             dims_text(sh.padding_r) + "): " + e.what());
  }
  s.data_primitive = dnnl::deconvolution_backward_data(s.data_pd);
  s.weights_primitive = dnnl::deconvolution_backward_weights(s.weights_pd);
  s.weights = reorder_keras_weights(s.context, sh, kernel, s.data_pd.weights_desc());
  s.diff_weights = memory(s.weights_pd.diff_weights_desc(), engine);
}

OneDnnDeconvBackward::~OneDnnDeconvBackward() = default;

void OneDnnDeconvBackward::run(const float* x, const float* dy, float* dx, float* db) const {
  const State& s = *state_;
  const OneDnnContext& c = s.context;
  const OmpThreadsScope scope(c.threads);
  memory src(s.src_md, c.engine, const_cast<float*>(x));
  memory diff_dst(s.dst_md, c.engine, const_cast<float*>(dy));
  memory diff_src(s.src_md, c.engine, dx);
  s.data_primitive.execute(
      c.stream, {{DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_WEIGHTS, s.weights}, {DNNL_ARG_DIFF_SRC, diff_src}});
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_WEIGHTS, s.diff_weights}};
  // db straight into the caller's buffer: its plain (filters,) layout is oneDNN's.
  if (s.with_bias) args.emplace(DNNL_ARG_DIFF_BIAS, memory(s.weights_pd.diff_bias_desc(), c.engine, db));
  s.weights_primitive.execute(c.stream, args);
  c.stream.wait();
}

void OneDnnDeconvBackward::kernel_gradient(float* dk) const {
  const State& s = *state_;
  const OneDnnContext& c = s.context;
  const OmpThreadsScope scope(c.threads);
  memory user(keras_weights_desc(s.shapes, memory::data_type::f32), c.engine, dk);
  dnnl::reorder(s.diff_weights, user).execute(c.stream, s.diff_weights, user);
  c.stream.wait();
}

int OneDnnDeconvBackward::threads() const { return state_->context.threads; }
std::string OneDnnDeconvBackward::data_impl() const { return state_->data_pd.impl_info_str(); }
std::string OneDnnDeconvBackward::weights_impl() const { return state_->weights_pd.impl_info_str(); }
bool OneDnnDeconvBackward::weights_reordered() const {
  return is_reordered(state_->data_pd.weights_desc(), state_->shapes);
}
bool OneDnnDeconvBackward::kernel_gradient_reordered() const {
  return is_reordered(state_->weights_pd.diff_weights_desc(), state_->shapes);
}

}  // namespace tconv3d::bench

#endif  // TCONV3D_HAVE_ONEDNN
