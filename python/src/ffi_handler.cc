// tconv3d_forward, the XLA FFI custom call of tconv3d.jax. Each call finds its
// layer through the `cache_id` attribute, so the specialized, packed layer
// survives between calls; the weights arrive with the call (under jax.jit they
// are ordinary arguments) and are compared with the cached ones, repacking
// only when they changed.
#include "python/src/ffi_handler.hpp"

#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "python/src/ffi_common.hpp"
#include "python/src/registry.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/geometry.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace tconv3d::python {
namespace {

using Dims = FfiDims;

void run(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> kernel, ffi::Buffer<ffi::F32> bias,
         ffi::ResultBuffer<ffi::F32> y, int64_t cache_id) {
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

  auto call = [&](const float* xp, const float* kp, const float* bp, float* yp, std::vector<int64_t> shape,
                  int64_t y_elements) {
    const ConstTensor k{kp, tail(kd, lead)};
    const ConstTensor b{use_bias ? bp : nullptr, use_bias ? tail(bd, lead) : std::vector<int64_t>{}};
    auto layer = cache.get(shape, k, b, /*compare_weights=*/true);
    if (layer->output_elements() != y_elements) {
      throw Error("y", "the output buffer holds " + std::to_string(y_elements) + " elements, the layer writes " +
                           std::to_string(layer->output_elements()));
    }
    layer->forward(xp, yp);
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

ffi::Error forward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> kernel, ffi::Buffer<ffi::F32> bias,
                   ffi::ResultBuffer<ffi::F32> y, int64_t cache_id) {
  return guarded([&] { run(x, kernel, bias, y, cache_id); });
}

}  // namespace
}  // namespace tconv3d::python

XLA_FFI_DEFINE_HANDLER_SYMBOL(tconv3d_ffi_forward, tconv3d::python::forward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // x
                                  .Arg<ffi::Buffer<ffi::F32>>()  // kernel
                                  .Arg<ffi::Buffer<ffi::F32>>()  // bias ((0,) without one)
                                  .Ret<ffi::Buffer<ffi::F32>>()  // y
                                  .Attr<int64_t>("cache_id"));

namespace tconv3d::python {
void* ffi_forward_handler() { return reinterpret_cast<void*>(&tconv3d_ffi_forward); }
}  // namespace tconv3d::python
