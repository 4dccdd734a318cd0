// tconv3d_forward and tconv3d_forward_bf16, the XLA FFI custom calls of
// tconv3d.jax. Each call finds its layer through the `cache_id` attribute, so
// the specialized, packed layer survives between calls; the weights arrive
// with the call (under jax.jit they are ordinary arguments) and are compared
// with the cached ones, repacking only when they changed. The bf16 call takes
// and returns bf16 activations (XLA's BF16 buffers are raw uint16 bits, what
// Layer::forward_bf16 reads), with the float32 weights (Keras's variables;
// the layer rounds the kernel to bf16 once when it packs it).
#include "python/src/ffi_handler.hpp"

#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "python/src/ffi_common.hpp"
#include "python/src/registry.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/geometry.hpp"
#include "tconv3d/layer.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace tconv3d::python {
namespace {

using Dims = FfiDims;

// Element is float (F32) or uint16_t (BF16 bits): the layer's dtype must match,
// else Layer::forward / forward_bf16 raises an error naming it.
inline void forward_layer(const Layer& layer, const float* x, float* y) { layer.forward(x, y); }
inline void forward_layer(const Layer& layer, const uint16_t* x, uint16_t* y) { layer.forward_bf16(x, y); }

template <ffi::DataType T>
void run(ffi::Buffer<T> x, ffi::Buffer<ffi::F32> kernel, ffi::Buffer<ffi::F32> bias, ffi::ResultBuffer<T> y,
         int64_t cache_id) {
  using Element = ffi::NativeType<T>;
  SpecializationCache& cache = *lookup_cache(cache_id);
  const Dims xd = x.dimensions(), kd = kernel.dimensions(), bd = bias.dimensions(), yd = y->dimensions();
  if (xd.size() < 5) throw Error("x", "expected a 5-D input, got rank " + std::to_string(xd.size()));
  const size_t lead = xd.size() - 5;
  if (kd.size() != 5 + lead || bd.size() != 1 + lead || yd.size() != 5 + lead) {
    throw Error("kernel", "operand ranks do not match the input's batch axes");
  }
  check_lead("x", xd, yd, lead);
  check_lead("kernel", kd, yd, lead);
  check_lead("bias", bd, yd, lead);
  const bool use_bias = cache.config().use_bias;
  const int64_t groups = product(yd, 0, lead);
  const int64_t x_size = product(xd, lead, xd.size()), k_size = product(kd, lead, kd.size());
  const int64_t b_size = product(bd, lead, bd.size()), y_size = product(yd, lead, yd.size());
  const bool weights_shared = product(kd, 0, lead) == 1 && product(bd, 0, lead) == 1;
  const bool x_batched_fully = product(xd, 0, lead) == groups;

  auto call = [&](const Element* xp, const float* kp, const float* bp, Element* yp, std::vector<int64_t> shape,
                  int64_t y_elements) {
    const ConstTensor k{kp, tail(kd, lead)};
    const ConstTensor b{use_bias ? bp : nullptr, use_bias ? tail(bd, lead) : std::vector<int64_t>{}};
    auto layer = cache.get(shape, k, b, /*compare_weights=*/true);
    if (layer->output_elements() != y_elements) {
      throw Error("y", "the output buffer holds " + std::to_string(y_elements) + " elements, the layer writes " +
                           std::to_string(layer->output_elements()));
    }
    forward_layer(*layer, xp, yp);
  };

  if (weights_shared && x_batched_fully) {
    // vmap over the input only: its batch axes fold into the layer's batch.
    std::vector<int64_t> shape = tail(xd, lead);
    shape[0] *= groups;
    call(x.typed_data(), kernel.typed_data(), bias.typed_data(), y->typed_data(), shape, groups * y_size);
    return;
  }
  // Batched weights: one layer call per batch element (each weight set is
  // its own cache entry).
  for (int64_t g = 0; g < groups; ++g) {
    call(x.typed_data() + broadcast_offset(g, xd, yd, lead, x_size),
         kernel.typed_data() + broadcast_offset(g, kd, yd, lead, k_size),
         bias.typed_data() + broadcast_offset(g, bd, yd, lead, b_size), y->typed_data() + g * y_size,
         tail(xd, lead), y_size);
  }
}

template <ffi::DataType T>
ffi::Error forward(ffi::Buffer<T> x, ffi::Buffer<ffi::F32> kernel, ffi::Buffer<ffi::F32> bias, ffi::ResultBuffer<T> y,
                   int64_t cache_id) {
  return guarded([&] { run<T>(x, kernel, bias, y, cache_id); });
}

}  // namespace
}  // namespace tconv3d::python

XLA_FFI_DEFINE_HANDLER_SYMBOL(tconv3d_ffi_forward, tconv3d::python::forward<ffi::F32>,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // x
                                  .Arg<ffi::Buffer<ffi::F32>>()  // kernel
                                  .Arg<ffi::Buffer<ffi::F32>>()  // bias ((0,) without one)
                                  .Ret<ffi::Buffer<ffi::F32>>()  // y
                                  .Attr<int64_t>("cache_id"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(tconv3d_ffi_forward_bf16, tconv3d::python::forward<ffi::BF16>,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::BF16>>()  // x
                                  .Arg<ffi::Buffer<ffi::F32>>()   // kernel (float32: the variable)
                                  .Arg<ffi::Buffer<ffi::F32>>()   // bias ((0,) without one)
                                  .Ret<ffi::Buffer<ffi::BF16>>()  // y
                                  .Attr<int64_t>("cache_id"));

namespace tconv3d::python {
void* ffi_forward_handler() { return reinterpret_cast<void*>(&tconv3d_ffi_forward); }
void* ffi_forward_bf16_handler() { return reinterpret_cast<void*>(&tconv3d_ffi_forward_bf16); }
}  // namespace tconv3d::python
