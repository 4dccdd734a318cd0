// The XLA FFI handler behind tconv3d.jax: a pointer for
// jax.ffi.register_ffi_target (built only when the XLA FFI headers were found).
#pragma once

namespace tconv3d::python {

void* ffi_forward_handler();

}  // namespace tconv3d::python
