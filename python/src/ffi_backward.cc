// tconv3d_backward, the XLA FFI custom call behind tconv3d.jax's gradient:
// the input, kernel and bias gradients of the linear transposed convolution
// (Layer::backward of the linear specialization) for the cotangent dz of its
// output. The activation's own derivative stays in JAX, where autodiff of
// Keras's activation function defines it. The layer comes from the same
// SpecializationCache entry the forward call made, so nothing is repacked.
// tconv3d_backward_bf16 is the same for a bf16 layer: x, dz and dx bf16
// (raw uint16 bits), the weights and their gradients float32
// (Layer::backward_bf16).
#include <cstdint>
#include <exception>
#include <string>

#include "python/src/ffi_common.hpp"
#include "python/src/ffi_handler.hpp"
#include "python/src/registry.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/layer.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace tconv3d::python {
namespace {

// The layer's dtype must match the element type, else Layer raises an error naming it.
inline void backward_layer(const Layer& layer, const float* x, const float* dz, float* dx, float* dk, float* db) {
  layer.backward(x, nullptr, dz, dx, dk, db);
}
inline void backward_layer(const Layer& layer, const uint16_t* x, const uint16_t* dz, uint16_t* dx, float* dk,
                           float* db) {
  layer.backward_bf16(x, nullptr, dz, dx, dk, db);
}

template <ffi::DataType T>
void run(ffi::Buffer<T> x, ffi::Buffer<ffi::F32> kernel, ffi::Buffer<ffi::F32> bias, ffi::Buffer<T> dz,
         ffi::ResultBuffer<T> dx, ffi::ResultBuffer<ffi::F32> dk, ffi::ResultBuffer<ffi::F32> db, int64_t cache_id) {
  SpecializationCache& cache = *lookup_cache(cache_id);
  const FfiDims xd = x.dimensions(), kd = kernel.dimensions(), bd = bias.dimensions(), zd = dz.dimensions();
  const FfiDims dxd = dx->dimensions();
  if (xd.size() < 5) throw Error("x", "expected a 5-D input, got rank " + std::to_string(xd.size()));
  const size_t lead = xd.size() - 5;
  if (kd.size() != 5 + lead || bd.size() != 1 + lead || zd.size() != 5 + lead || dxd.size() != 5 + lead ||
      dk->dimensions().size() != 5 + lead || db->dimensions().size() != 1 + lead) {
    throw Error("kernel", "operand ranks do not match the input's batch axes");
  }
  for (auto [name, dims] : {std::pair{"x", xd}, {"kernel", kd}, {"bias", bd}, {"dz", zd}}) {
    check_lead(name, dims, dxd, lead);
  }
  const bool use_bias = cache.config().use_bias;
  const int64_t groups = product(dxd, 0, lead);
  const int64_t x_size = product(xd, lead, xd.size()), k_size = product(kd, lead, kd.size());
  const int64_t b_size = product(bd, lead, bd.size()), z_size = product(zd, lead, zd.size());
  // One layer call per vmap element: the kernel and bias gradients are per
  // element, whatever the operands share.
  for (int64_t g = 0; g < groups; ++g) {
    const float* bp = bias.typed_data() + broadcast_offset(g, bd, dxd, lead, b_size);
    const ConstTensor k{kernel.typed_data() + broadcast_offset(g, kd, dxd, lead, k_size), tail(kd, lead)};
    const ConstTensor b{use_bias ? bp : nullptr, use_bias ? tail(bd, lead) : std::vector<int64_t>{}};
    auto layer = cache.get(tail(xd, lead), k, b, /*compare_weights=*/true);
    if (layer->output_elements() != z_size) {
      throw Error("dz", "the output gradient holds " + std::to_string(z_size) + " elements, the layer's output " +
                            std::to_string(layer->output_elements()));
    }
    backward_layer(*layer, x.typed_data() + broadcast_offset(g, xd, dxd, lead, x_size),
                   dz.typed_data() + broadcast_offset(g, zd, dxd, lead, z_size), dx->typed_data() + g * x_size,
                   dk->typed_data() + g * k_size, use_bias ? db->typed_data() + g * b_size : nullptr);
  }
}

template <ffi::DataType T>
ffi::Error backward(ffi::Buffer<T> x, ffi::Buffer<ffi::F32> kernel, ffi::Buffer<ffi::F32> bias, ffi::Buffer<T> dz,
                    ffi::ResultBuffer<T> dx, ffi::ResultBuffer<ffi::F32> dk, ffi::ResultBuffer<ffi::F32> db,
                    int64_t cache_id) {
  return guarded([&] { run<T>(x, kernel, bias, dz, dx, dk, db, cache_id); });
}

}  // namespace
}  // namespace tconv3d::python

XLA_FFI_DEFINE_HANDLER_SYMBOL(tconv3d_ffi_backward, tconv3d::python::backward<ffi::F32>,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // x
                                  .Arg<ffi::Buffer<ffi::F32>>()  // kernel
                                  .Arg<ffi::Buffer<ffi::F32>>()  // bias ((0,) without one)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // dz, the linear output's cotangent
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dx
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dkernel
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dbias ((0,) without one)
                                  .Attr<int64_t>("cache_id"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(tconv3d_ffi_backward_bf16, tconv3d::python::backward<ffi::BF16>,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::BF16>>()  // x
                                  .Arg<ffi::Buffer<ffi::F32>>()   // kernel (float32: the variable)
                                  .Arg<ffi::Buffer<ffi::F32>>()   // bias ((0,) without one)
                                  .Arg<ffi::Buffer<ffi::BF16>>()  // dz, the linear output's cotangent
                                  .Ret<ffi::Buffer<ffi::BF16>>()  // dx
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dkernel
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dbias ((0,) without one)
                                  .Attr<int64_t>("cache_id"));

namespace tconv3d::python {
void* ffi_backward_handler() { return reinterpret_cast<void*>(&tconv3d_ffi_backward); }
void* ffi_backward_bf16_handler() { return reinterpret_cast<void*>(&tconv3d_ffi_backward_bf16); }
}  // namespace tconv3d::python
