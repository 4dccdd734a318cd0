"""tconv3d.jax: Keras's Conv3DTranspose as a JAX op (XLA FFI custom call).

Works under jax.jit, jax.vmap (any leading axes, on the input or the
weights) and jax.grad (a custom VJP whose backward pass runs JAX's own
convolutions, with Keras's semantics).
"""
from tconv3d.jax._op import Op, conv3d_transpose

__all__ = ["Op", "conv3d_transpose"]
