"""tconv3d.jax: Keras's Conv3DTranspose as a JAX op (XLA FFI custom call).

Works under jax.jit, jax.vmap (any leading axes, on the input or the
weights) and jax.grad: a custom VJP whose backward pass differentiates the
activation in JAX (so its kinks are Keras's) and runs tconv3d's own backward
kernels for dx, dkernel and dbias through the tconv3d_backward FFI handler
(tconv3d_backward_bf16 for a bf16 op).
"""
from tconv3d.jax._op import Op, conv3d_transpose

__all__ = ["Op", "conv3d_transpose"]
