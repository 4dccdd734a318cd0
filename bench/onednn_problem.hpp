// The one mapping of a tconv3d layer onto oneDNN's deconvolution, shared by
// the benchmark's forward (onednn_deconv), backward (onednn_deconv_backward)
// and bf16 (onednn_bf16) side-by-sides, so that all three see the same
// descriptor: the layer's own activation layout (ndhwc for channels_last,
// ncdhw for channels_first), Keras's crops as oneDNN's paddings (asymmetric
// where 'same' crops an odd total), dilation as oneDNN's gap count, and the
// Keras kernel (kd, kh, kw, filters, in) as a strided view over oneDNN's
// (o, i, d, h, w) weights. Only in builds with oneDNN.
#pragma once

#ifdef TCONV3D_HAVE_ONEDNN

#include <oneapi/dnnl/dnnl.hpp>
#include <cstdint>
#include <optional>
#include <string>

#include "tconv3d/config.hpp"
#include "tconv3d/geometry.hpp"

namespace tconv3d::bench {

struct OneDnnShapes {
  dnnl::memory::dims src, dst, weights;  // (n, c, d, h, w); weights (o, i, d, h, w)
  dnnl::memory::dim out_channels = 0;
  dnnl::memory::format_tag tag{};  // the layer's own layout
  dnnl::memory::dims strides, dilates, padding_l, padding_r;
};

OneDnnShapes onednn_shapes(const ConvGeometry& geometry);

// The Keras kernel layout (kd, kh, kw, filters, in) as a oneDNN descriptor.
dnnl::memory::desc keras_weights_desc(const OneDnnShapes& shapes, dnnl::memory::data_type type);

// deconvolution_forward's primitive descriptor: src/dst of `data_type` in the
// layer's layout, weights of `weights_type` in the format oneDNN picks
// (format_tag::any), f32 bias when has_bias. Throws std::runtime_error naming
// the paddings when oneDNN rejects the layer.
dnnl::deconvolution_forward::primitive_desc make_forward_pd(const dnnl::engine& engine, const OneDnnShapes& shapes,
                                                           dnnl::prop_kind prop, dnnl::memory::data_type data_type,
                                                           dnnl::memory::data_type weights_type, bool has_bias,
                                                           const dnnl::primitive_attr& attr = {});

// The activation as an eltwise post-op, or, with
// TCONV3D_BENCH_ONEDNN_NO_POSTOPS=1 (oneDNN 2.6 runs deconvolution post-ops
// through a slow path), no post-op and *separate set to the activation for
// the caller to apply after oneDNN. Throws std::runtime_error for an
// activation with no eltwise mapping.
dnnl::primitive_attr activation_attr(const Activation& activation, std::optional<Activation>* separate);

// "a,b,c", for messages.
std::string dims_text(const dnnl::memory::dims& dims);

// Whether a primitive's weights descriptor is not the plain Keras layout (so
// the benchmark reordered them once, outside the timed region).
bool is_reordered(const dnnl::memory::desc& picked, const OneDnnShapes& shapes);

// The effective ISA oneDNN will use (honours ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA).
std::string onednn_isa_name();

// The CPU ISA oneDNN dispatches to has 512-bit vectors (honours ONEDNN_MAX_CPU_ISA).
bool onednn_isa_has_zmm();

// What each oneDNN wrapper holds: a CPU engine, its stream, and the thread
// count its primitives are made and run for (throws std::runtime_error when
// below 1).
struct OneDnnContext {
  explicit OneDnnContext(int threads);
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  mutable dnnl::stream stream{engine};
  int threads = 1;
};

// The float32 Keras-layout kernel reordered (converted where `desc` is not
// f32, rounding to nearest even) into new memory of `desc`; waits for it.
dnnl::memory reorder_keras_weights(const OneDnnContext& context, const OneDnnShapes& shapes, const float* kernel,
                                   const dnnl::memory::desc& desc);

// deconvolution_forward on one layer, what the float32 (OneDnnDeconv) and
// bf16 (OneDnnDeconvBf16) wrappers are: src and dst of `type` in the layer's
// layout, weights of `type` reordered once into the layout oneDNN picks, f32
// bias, the activation as an eltwise post-op or, with
// TCONV3D_BENCH_ONEDNN_NO_POSTOPS=1 (oneDNN 2.6 runs deconvolution post-ops
// through a slow path), as a plain OpenMP loop after oneDNN, as a user
// avoiding them would. `threads` is fixed here: oneDNN's OpenMP build splits
// the work when the primitive is made.
class OneDnnForward {
 public:
  OneDnnForward(const ConvGeometry& geometry, const Activation& activation, const float* kernel, const float* bias,
                int threads, dnnl::memory::data_type type);
  OneDnnForward(const OneDnnForward&) = delete;
  OneDnnForward& operator=(const OneDnnForward&) = delete;

  int threads() const { return context_.threads; }
  std::string impl() const { return pd_.impl_info_str(); }
  bool weights_reordered() const { return is_reordered(pd_.weights_desc(), shapes_); }

 protected:
  // On the constructor's thread count, the caller's OpenMP setting put back
  // after; each for the type it was made for.
  void run_f32(const float* input, float* output) const;
  // bf16 as raw bits. oneDNN has rounded to bf16 before a separate
  // activation, which rounds again (a user without the post-op gets the same
  // double rounding).
  void run_bf16(const uint16_t* input, uint16_t* output) const;

 private:
  void execute(const void* input, void* output) const;

  OneDnnContext context_;
  OneDnnShapes shapes_;
  dnnl::deconvolution_forward::primitive_desc pd_;
  dnnl::deconvolution_forward primitive_;
  dnnl::memory weights_, bias_;
  dnnl::memory::desc src_md_, dst_md_;
  bool has_bias_ = false;
  std::optional<Activation> separate_activation_;  // set: applied after oneDNN, not as its post-op
  int64_t output_elements_ = 0;
};

// Sets this thread's OpenMP thread count (what oneDNN reads through
// omp_get_max_threads()) for one scope and puts the caller's back after:
// oneDNN's OpenMP build fixes its split when a primitive is made.
class OmpThreadsScope {
 public:
  explicit OmpThreadsScope(int threads);
  ~OmpThreadsScope();
  OmpThreadsScope(const OmpThreadsScope&) = delete;
  OmpThreadsScope& operator=(const OmpThreadsScope&) = delete;

 private:
  int saved_;
};

}  // namespace tconv3d::bench

#endif  // TCONV3D_HAVE_ONEDNN
