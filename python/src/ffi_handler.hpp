// The XLA FFI handlers behind tconv3d.jax (forward, and the linear part's
// gradients): pointers for jax.ffi.register_ffi_target (built only when the XLA FFI headers were found).
#pragma once

namespace tconv3d::python {

void* ffi_forward_handler();   // ffi_handler.cc
void* ffi_forward_bf16_handler();  // ffi_handler.cc: bf16 activations, float32 weights
void* ffi_backward_handler();  // ffi_backward.cc
void* ffi_backward_bf16_handler();  // ffi_backward.cc: bf16 x, dz, dx; float32 weights and their gradients

}  // namespace tconv3d::python
