// tconv3d_backward, the XLA FFI custom call behind tconv3d.jax's gradient:
// the input, kernel and bias gradients of the linear transposed convolution
// (Layer::backward of the linear specialization) for the cotangent dz of its
// output. The activation's own derivative stays in JAX, where autodiff of
// Keras's activation function defines it. The layer comes from the same
// SpecializationCache entry the forward call made, so nothing is repacked.
#include <cstdint>
#include <exception>
#include <string>

#include "python/src/ffi_common.hpp"
#include "python/src/ffi_handler.hpp"
#include "python/src/registry.hpp"
#include "tconv3d/error.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace tconv3d::python {
namespace {

void run(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> kernel, ffi::Buffer<ffi::F32> bias,
         ffi::Buffer<ffi::F32> dz, ffi::ResultBuffer<ffi::F32> dx, ffi::ResultBuffer<ffi::F32> dk,
         ffi::ResultBuffer<ffi::F32> db, int64_t cache_id) {
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
    layer->backward(x.typed_data() + broadcast_offset(g, xd, dxd, lead, x_size), nullptr,
                    dz.typed_data() + broadcast_offset(g, zd, dxd, lead, z_size), dx->typed_data() + g * x_size,
                    dk->typed_data() + g * k_size, use_bias ? db->typed_data() + g * b_size : nullptr);
  }
}

ffi::Error backward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> kernel, ffi::Buffer<ffi::F32> bias,
                    ffi::Buffer<ffi::F32> dz, ffi::ResultBuffer<ffi::F32> dx, ffi::ResultBuffer<ffi::F32> dk,
                    ffi::ResultBuffer<ffi::F32> db, int64_t cache_id) {
  return guarded([&] { run(x, kernel, bias, dz, dx, dk, db, cache_id); });
}

}  // namespace
}  // namespace tconv3d::python

XLA_FFI_DEFINE_HANDLER_SYMBOL(tconv3d_ffi_backward, tconv3d::python::backward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // x
                                  .Arg<ffi::Buffer<ffi::F32>>()  // kernel
                                  .Arg<ffi::Buffer<ffi::F32>>()  // bias ((0,) without one)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // dz, the linear output's cotangent
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dx
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dkernel
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dbias ((0,) without one)
                                  .Attr<int64_t>("cache_id"));

namespace tconv3d::python {
void* ffi_backward_handler() { return reinterpret_cast<void*>(&tconv3d_ffi_backward); }
}  // namespace tconv3d::python
