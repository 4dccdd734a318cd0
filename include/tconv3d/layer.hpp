// tconv3d::Layer: one Keras Conv3DTranspose layer made for one input shape.
// Creation validates everything, packs the weights once and picks (or
// generates) the kernel; forward() then only computes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tconv3d/config.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/export.h"
#include "tconv3d/geometry.hpp"
#include "tconv3d/options.hpp"

namespace tconv3d {

// A read-only float32 tensor given by the caller: data plus its shape.
struct ConstTensor {
  const float* data = nullptr;
  std::vector<int64_t> shape;
};

class TCONV3D_API Layer {
 public:
  // kernel: Keras layout (kd, kh, kw, filters, in_channels), float32.
  // bias: (filters,) float32; required iff config.use_bias (data == nullptr: none).
  // Shapes are checked; both are copied and packed, so the caller's buffers may
  // go away afterwards. input_shape is in the config's data format.
  static Layer create(const LayerConfig& config, const std::vector<int64_t>& input_shape,
                      const ConstTensor& kernel, const ConstTensor& bias,
                      const LayerOptions& options = {});
  // Same, with weights drawn from the config's initializers (seeded).
  static Layer create_initialized(const LayerConfig& config, const std::vector<int64_t>& input_shape,
                                  uint64_t seed, const LayerOptions& options = {});
  // From an explicit geometry (ONNX, PyTorch: crops no Keras padding can
  // express). kernel in Keras layout (kd, kh, kw, filters, in_channels); bias
  // (filters,) or none (data == nullptr). config() then describes the
  // geometry's kernel, strides, dilation and data format with padding valid.
  static Layer create_from_geometry(const ConvGeometry& geometry, const Activation& activation,
                                    const ConstTensor& kernel, const ConstTensor& bias,
                                    const LayerOptions& options = {});

  Layer(Layer&&) noexcept;
  Layer& operator=(Layer&&) noexcept;
  ~Layer();

  // The same layer for another input shape (batch, spatial sizes; the same
  // channels): it shares this layer's weights and their packing, which
  // depends only on the layer and the ISA, so nothing is repacked; a shape
  // seen before finds its kernels in the kernel cache. Throws tconv3d::Error
  // for a shape the layer cannot take.
  Layer reshape(const std::vector<int64_t>& input_shape) const;

  // input: input_shape(); output: output_shape() elements. Thread-safe.
  // A float32 layer only (LayerOptions::dtype, the default).
  void forward(const float* input, float* output) const;
  // A bf16 layer only (LayerOptions::dtype = DataType::kBfloat16): the same
  // shapes in bf16, as raw bits (tconv3d/bfloat16.hpp converts). channels_last
  // and elementwise activations; needs AVX512_BF16 (or the reference backend).
  void forward_bf16(const uint16_t* input, uint16_t* output) const;
  DataType dtype() const;

  // The gradients of the layer's output y = act(conv3d_transpose(x, K) + b)
  // for an output gradient dy, as Keras's autodiff computes them (JAX's, at
  // the activations' kinks). All arrays in the layer's data format, float32:
  //   x: the input (input_shape()); y: the forward output the caller holds
  //   (output_shape()); dy: the gradient with respect to y (output_shape()).
  //   dx: input_shape(); dk: Keras layout (kd, kh, kw, filters, in_channels);
  //   db: (filters,). Each may be nullptr to skip it (db must be when the
  //   layer has no bias).
  // x is needed for dk and for activations whose derivative needs the
  // pre-activation z (the layer recomputes it from x); y for the others but
  // linear. Regularizer terms are not included (Keras adds their gradients
  // itself). Results do not depend on the thread count. Thread-safe.
  void backward(const float* x, const float* y, const float* dy, float* dx, float* dk, float* db) const;
  // What backward() (or, on a bf16 layer, backward_bf16()) runs, for reports ("dx kernel + dK kernel").
  std::string backward_kernel_names() const;
  // A bf16 layer's backward pass (Keras mixed_bfloat16): x, y, dy and dx in
  // bf16 (raw bits, the layer's data format), dk and db float32 (the float32
  // variables' gradients). The kernel is the float32 kernel rounded to bf16,
  // as the forward computes with it; dz = dy * act'(z) is computed in float32
  // (z: the bf16 forward's pre-activation), db sums it in float32, and dx and
  // dk are computed from dz rounded to bf16, with float32 accumulation.
  // Otherwise as backward(): nullptr skips, the same errors, results that do
  // not depend on the thread count. A bf16 layer only (backward() is float32
  // only); needs AVX512_BF16 (or the reference backend). Thread-safe.
  void backward_bf16(const uint16_t* x, const uint16_t* y, const uint16_t* dy, uint16_t* dx, float* dk,
                     float* db) const;
  // What backward_bf16() runs, for reports ("dx kernel + dK kernel").
  std::string backward_bf16_kernel_names() const;

  const LayerConfig& config() const;
  const ConvGeometry& geometry() const;
  Shape5 input_shape() const;
  Shape5 output_shape() const;  // after the activation (GLU halves the last axis)
  int64_t output_elements() const;
  const std::vector<float>& kernel() const;  // Keras layout, as given
  const std::vector<float>& bias() const;    // empty without bias
  const std::vector<std::string>& warnings() const;
  Backend backend() const;           // the backend that runs (never kAuto)
  std::string isa() const;           // "avx2", "avx512", "none"
  std::string kernel_name() const;   // what runs, for reports
  int threads() const;
  // How many packed weight layouts this layer and the layers reshaped from
  // it have made (1 once a generated kernel ran; 0 for the portable kernels).
  int64_t weight_packs() const;

  // The loss terms Keras would add: kernel and bias regularizers on the
  // weights, the activity regularizer on an output (after the activation)
  // divided by the batch size. Zero where no regularizer is set.
  struct Losses {
    double kernel = 0.0, bias = 0.0, activity = 0.0;
  };
  Losses losses(const float* output) const;

 private:
  struct State;
  explicit Layer(std::unique_ptr<State> state);
  static Layer finish(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace tconv3d
