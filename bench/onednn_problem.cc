#include "bench/onednn_problem.hpp"

#ifdef TCONV3D_HAVE_ONEDNN

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <unordered_map>

#include "core/activation.hpp"
#include "tconv3d/bfloat16.hpp"

namespace tconv3d::bench {

using dnnl::memory;

namespace {

// Keras activation -> eltwise post-op, or false when there is none.
bool eltwise_for(const Activation& act, dnnl::algorithm* alg, float* alpha) {
  switch (act.kind) {
    case ActivationKind::kRelu:
      if (act.threshold != 0.0 || act.max_value) return false;
      *alg = dnnl::algorithm::eltwise_relu;
      *alpha = float(act.alpha);
      return true;
    case ActivationKind::kLeakyRelu:
      *alg = dnnl::algorithm::eltwise_relu;
      *alpha = float(act.alpha);
      return true;
    case ActivationKind::kElu:
      *alg = dnnl::algorithm::eltwise_elu;
      *alpha = float(act.alpha);
      return true;
    case ActivationKind::kSigmoid:
      *alg = dnnl::algorithm::eltwise_logistic;
      *alpha = 0;
      return true;
    case ActivationKind::kTanh:
      *alg = dnnl::algorithm::eltwise_tanh;
      *alpha = 0;
      return true;
    default: return false;
  }
}

}  // namespace

OneDnnShapes onednn_shapes(const ConvGeometry& g) {
  OneDnnShapes s;
  const auto& [ad, ah, aw] = g.axes;
  s.tag = g.data_format == DataFormat::kChannelsLast ? memory::format_tag::ndhwc : memory::format_tag::ncdhw;
  s.out_channels = g.out_channels;
  s.src = {g.batch, g.in_channels, ad.in, ah.in, aw.in};
  s.dst = {g.batch, g.out_channels, ad.out, ah.out, aw.out};
  s.weights = {g.out_channels, g.in_channels, ad.kernel, ah.kernel, aw.kernel};
  // Our crops are oneDNN's paddings: padding_l = crop_begin, padding_r = crop_end
  // (one more than padding_l where 'same' crops an odd total; negative where
  // Keras's output_padding adds samples no input reaches).
  for (const AxisGeometry& ax : g.axes) {
    s.strides.push_back(ax.stride);
    s.dilates.push_back(ax.dilation - 1);  // oneDNN counts the gaps
    s.padding_l.push_back(ax.crop_begin);
    s.padding_r.push_back(ax.crop_end());
  }
  return s;
}

memory::desc keras_weights_desc(const OneDnnShapes& s, memory::data_type type) {
  const memory::dim o = s.weights[0], i = s.weights[1], kh = s.weights[3], kw = s.weights[4];
  return memory::desc(s.weights, type, memory::dims{i, 1, kh * kw * o * i, kw * o * i, o * i});
}

dnnl::deconvolution_forward::primitive_desc make_forward_pd(const dnnl::engine& engine, const OneDnnShapes& s,
                                                           dnnl::prop_kind prop, memory::data_type data_type,
                                                           memory::data_type weights_type, bool has_bias,
                                                           const dnnl::primitive_attr& attr) {
  const memory::desc src_md(s.src, data_type, s.tag), dst_md(s.dst, data_type, s.tag);
  const memory::desc weights_any(s.weights, weights_type, memory::format_tag::any);
  const memory::desc bias_md({s.out_channels}, memory::data_type::f32, memory::format_tag::x);
  const auto alg = dnnl::algorithm::deconvolution_direct;
  try {
    const auto desc = has_bias ? dnnl::deconvolution_forward::desc(prop, alg, src_md, weights_any, bias_md, dst_md,
                                                                   s.strides, s.dilates, s.padding_l, s.padding_r)
                               : dnnl::deconvolution_forward::desc(prop, alg, src_md, weights_any, dst_md, s.strides,
                                                                   s.dilates, s.padding_l, s.padding_r);
    return dnnl::deconvolution_forward::primitive_desc(desc, attr, engine);
  } catch (const dnnl::error& e) {
    // Either the descriptor (paddings) or no implementation for this data
    // type on the ISA oneDNN may use (e.g. bf16 under ONEDNN_MAX_CPU_ISA=AVX2).
    const char* type = data_type == memory::data_type::bf16 ? "bf16" : "f32";
    throw std::runtime_error(std::string("oneDNN has no ") + type + " deconvolution for this layer on its ISA " +
                             onednn_isa_name() + " (padding_l " + dims_text(s.padding_l) + ", padding_r " +
                             dims_text(s.padding_r) + "): " + e.what());
  }
}

dnnl::primitive_attr activation_attr(const Activation& activation, std::optional<Activation>* separate) {
  dnnl::primitive_attr attr;
  separate->reset();
  if (activation.kind == ActivationKind::kLinear) return attr;
  const char* no_postops = std::getenv("TCONV3D_BENCH_ONEDNN_NO_POSTOPS");
  if (no_postops && std::string(no_postops) == "1") {
    *separate = activation;
    return attr;
  }
  dnnl::algorithm alg;
  float alpha = 0;
  if (!eltwise_for(activation, &alg, &alpha))
    throw std::runtime_error("activation '" + activation.name + "' has no oneDNN eltwise post-op mapping here");
  dnnl::post_ops ops;
  ops.append_eltwise(1.0f, alg, alpha, 0.0f);
  attr.set_post_ops(ops);
  return attr;
}

std::string dims_text(const memory::dims& dims) {
  std::string text;
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? "," : "") + std::to_string(dims[i]);
  return text;
}

bool is_reordered(const memory::desc& picked, const OneDnnShapes& shapes) {
  return picked != keras_weights_desc(shapes, picked.data_type());
}

bool onednn_isa_has_zmm() {
  // dnnl_cpu_isa_t values are feature masks; 0x8 and 0x20 are the AVX-512 bits.
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  return (isa & 0x28u) != 0;
}

std::string onednn_isa_name() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

OneDnnContext::OneDnnContext(int threads_) : threads(threads_) {
  if (threads < 1) throw std::runtime_error("oneDNN threads: expected at least 1, got " + std::to_string(threads));
}

memory reorder_keras_weights(const OneDnnContext& context, const OneDnnShapes& shapes, const float* kernel,
                             const memory::desc& desc) {
  memory user(keras_weights_desc(shapes, memory::data_type::f32), context.engine, const_cast<float*>(kernel));
  memory weights(desc, context.engine);
  dnnl::reorder(user, weights).execute(context.stream, user, weights);
  context.stream.wait();
  return weights;
}

OneDnnForward::OneDnnForward(const ConvGeometry& g, const Activation& activation, const float* kernel,
                             const float* bias, int threads, memory::data_type type)
    : context_(threads), shapes_(onednn_shapes(g)) {
  // Everything below, the primitive descriptor above all, sees `threads`.
  const OmpThreadsScope scope(threads);
  src_md_ = memory::desc(shapes_.src, type, shapes_.tag);
  dst_md_ = memory::desc(shapes_.dst, type, shapes_.tag);
  has_bias_ = bias != nullptr;
  output_elements_ = g.output_elements();
  const dnnl::primitive_attr attr = activation_attr(activation, &separate_activation_);
  pd_ = make_forward_pd(context_.engine, shapes_, dnnl::prop_kind::forward_inference, type, type, has_bias_, attr);
  primitive_ = dnnl::deconvolution_forward(pd_);
  weights_ = reorder_keras_weights(context_, shapes_, kernel, pd_.weights_desc());
  if (has_bias_) {
    bias_ = memory(pd_.bias_desc(), context_.engine);
    std::copy(bias, bias + g.out_channels, static_cast<float*>(bias_.get_data_handle()));
  }
}

namespace {

// The activation after oneDNN, in place, as a user's OpenMP loop would apply it.
template <typename T, typename Apply>
void apply_after(T* output, int64_t n, int threads, Apply apply) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) output[i] = apply(output[i]);
}

}  // namespace

void OneDnnForward::run_f32(const float* input, float* output) const {
  execute(input, output);
  if (!separate_activation_) return;
  const Activation& act = *separate_activation_;
  apply_after(output, output_elements_, context_.threads, [&](float v) { return apply_elementwise(act, v); });
}

void OneDnnForward::run_bf16(const uint16_t* input, uint16_t* output) const {
  execute(input, output);
  if (!separate_activation_) return;
  const Activation& act = *separate_activation_;
  apply_after(output, output_elements_, context_.threads,
              [&](uint16_t v) { return float_to_bf16(apply_elementwise(act, bf16_to_float(v))); });
}

void OneDnnForward::execute(const void* input, void* output) const {
  const OmpThreadsScope scope(context_.threads);
  memory src(src_md_, context_.engine, const_cast<void*>(input));
  memory dst(dst_md_, context_.engine, output);
  std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights_}, {DNNL_ARG_DST, dst}};
  if (has_bias_) args.emplace(DNNL_ARG_BIAS, bias_);
  primitive_.execute(context_.stream, args);
  context_.stream.wait();
}

OmpThreadsScope::OmpThreadsScope(int threads) : saved_(omp_get_max_threads()) { omp_set_num_threads(threads); }
OmpThreadsScope::~OmpThreadsScope() { omp_set_num_threads(saved_); }

}  // namespace tconv3d::bench

#endif  // TCONV3D_HAVE_ONEDNN
