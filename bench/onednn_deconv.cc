#include "bench/onednn_deconv.hpp"

#include "core/activation.hpp"

#ifdef TCONV3D_HAVE_ONEDNN

#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace tconv3d::bench {
namespace {

using dnnl::memory;

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

// Sets this thread's OpenMP thread count (what oneDNN reads through
// omp_get_max_threads()) for one scope and puts the caller's back after.
class OmpThreadsScope {
 public:
  explicit OmpThreadsScope(int threads) : saved_(omp_get_max_threads()) { omp_set_num_threads(threads); }
  ~OmpThreadsScope() { omp_set_num_threads(saved_); }
  OmpThreadsScope(const OmpThreadsScope&) = delete;
  OmpThreadsScope& operator=(const OmpThreadsScope&) = delete;

 private:
  int saved_;
};

}  // namespace

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
  const auto& [ad, ah, aw] = g.axes;
  const auto tag = g.data_format == DataFormat::kChannelsLast ? memory::format_tag::ndhwc
                                                              : memory::format_tag::ncdhw;
  const memory::dim cin = g.in_channels, cout = g.out_channels;
  s.src_md = memory::desc({g.batch, cin, ad.in, ah.in, aw.in}, memory::data_type::f32, tag);
  s.dst_md = memory::desc({g.batch, cout, ad.out, ah.out, aw.out}, memory::data_type::f32, tag);
  const memory::dims wdims = {cout, cin, ad.kernel, ah.kernel, aw.kernel};
  const memory::desc weights_any(wdims, memory::data_type::f32, memory::format_tag::any);
  const memory::desc bias_md({cout}, memory::data_type::f32, memory::format_tag::x);
  // Our crops are oneDNN's paddings: padding_l = crop_begin, padding_r = crop_end
  // (negative where Keras's output_padding adds samples no input reaches).
  memory::dims strides, dilates, pad_l, pad_r;
  for (const AxisGeometry& ax : g.axes) {
    strides.push_back(ax.stride);
    dilates.push_back(ax.dilation - 1);  // oneDNN counts the gaps
    pad_l.push_back(ax.crop_begin);
    pad_r.push_back(ax.crop_end());
  }
  s.has_bias = bias != nullptr;
  dnnl::primitive_attr attr;
  // oneDNN 2.6 runs deconvolution post-ops through a slow path; with
  // TCONV3D_BENCH_ONEDNN_NO_POSTOPS=1 oneDNN computes conv + bias and a plain
  // OpenMP loop applies the activation afterwards, as a user avoiding it would.
  const char* no_postops = std::getenv("TCONV3D_BENCH_ONEDNN_NO_POSTOPS");
  s.output_elements = g.output_elements();
  if (activation.kind != ActivationKind::kLinear && no_postops && std::string(no_postops) == "1") {
    s.separate_activation = activation;
  } else if (activation.kind != ActivationKind::kLinear) {
    dnnl::algorithm alg;
    float alpha = 0;
    if (!eltwise_for(activation, &alg, &alpha))
      throw std::runtime_error("activation '" + activation.name + "' has no oneDNN eltwise post-op mapping here");
    dnnl::post_ops ops;
    ops.append_eltwise(1.0f, alg, alpha, 0.0f);
    attr.set_post_ops(ops);
  }
  try {
    const auto desc =
        s.has_bias ? dnnl::deconvolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                       dnnl::algorithm::deconvolution_direct, s.src_md, weights_any,
                                                       bias_md, s.dst_md, strides, dilates, pad_l, pad_r)
                   : dnnl::deconvolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                       dnnl::algorithm::deconvolution_direct, s.src_md, weights_any,
                                                       s.dst_md, strides, dilates, pad_l, pad_r);
    s.pd = dnnl::deconvolution_forward::primitive_desc(desc, attr, s.engine);
  } catch (const dnnl::error& e) {
    std::string pads;
    for (size_t i = 0; i < 3; ++i) pads += (i ? "," : "") + std::to_string(pad_r[i]);
    throw std::runtime_error(std::string("oneDNN rejects this layer (padding_r ") + pads + "): " + e.what());
  }
  s.primitive = dnnl::deconvolution_forward(s.pd);
  // Keras (kd, kh, kw, filters, in) described by strides over oneDNN's (o, i, d, h, w).
  const memory::desc user_weights_md(wdims, memory::data_type::f32,
                                     memory::dims{cin, 1, ah.kernel * aw.kernel * cout * cin,
                                                  aw.kernel * cout * cin, cout * cin});
  memory user_weights(user_weights_md, s.engine, const_cast<float*>(kernel));
  s.weights = memory(s.pd.weights_desc(), s.engine);
  dnnl::reorder(user_weights, s.weights).execute(s.stream, user_weights, s.weights);
  if (s.has_bias) {
    s.bias = memory(bias_md, s.engine);
    std::copy(bias, bias + cout, static_cast<float*>(s.bias.get_data_handle()));
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

bool OneDnnDeconv::uses_zmm() const {
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

}  // namespace tconv3d::bench

#endif  // TCONV3D_HAVE_ONEDNN
