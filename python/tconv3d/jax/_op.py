"""The differentiable JAX op over the XLA FFI handlers tconv3d_forward and tconv3d_backward.

The gradient: JAX differentiates the activation (Keras's own function, so its
kinks and limits are Keras's), and tconv3d's backward kernels compute the
input, kernel and bias gradients of the linear part.

A bf16 op (dtype="bfloat16", Keras's mixed_bfloat16) takes bf16 x and
float32 weights (the variables; the layer rounds the kernel to bf16 as
Keras's cast does) and returns bf16, through tconv3d_forward_bf16 on the
arrays' own buffers. Its gradients are bf16 dx and float32 dkernel, dbias,
from tconv3d_backward_bf16 (Layer::backward_bf16: the bf16-rounded kernel,
float32 accumulation, dx rounded to bf16 once).
"""
import functools
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from tconv3d import _core
from tconv3d._arrays import dtype_name
from tconv3d._config import config_json
from tconv3d.functional import config_text
from tconv3d.jax._activations import activation_function

TARGET = "tconv3d_forward"
BF16_TARGET = "tconv3d_forward_bf16"
BACKWARD_TARGET = "tconv3d_backward"
BF16_BACKWARD_TARGET = "tconv3d_backward_bf16"


@functools.cache
def _register_target():
    handler = _core.ffi_handler()
    if handler is None:
        raise ImportError("tconv3d was built without the XLA FFI headers (jax was not importable at build "
                          "time); reinstall it with jax installed to use tconv3d.jax")
    jax.ffi.register_ffi_target(TARGET, handler, platform="cpu")
    jax.ffi.register_ffi_target(BACKWARD_TARGET, _core.ffi_backward_handler(), platform="cpu")
    jax.ffi.register_ffi_target(BF16_TARGET, _core.ffi_forward_bf16_handler(), platform="cpu")
    jax.ffi.register_ffi_target(BF16_BACKWARD_TARGET, _core.ffi_backward_bf16_handler(), platform="cpu")


class _Specialized:
    """A Specializer registered with the FFI handler; unregistered when dropped."""

    def __init__(self, text, flavor, backend, isa, threads, linear, dtype="float32"):
        self.spec = _core.Specializer(text, flavor, backend, isa, threads, linear, dtype)
        self.cache_id = np.int64(self.spec.register_for_ffi())
        self.bf16 = dtype == "bfloat16"
        weakref.finalize(self, _core.release_ffi, int(self.cache_id))

    def __call__(self, x, kernel, bias):
        # Runs at trace time: a bad shape raises tconv3d.Error here, with the
        # library's message, before XLA compiles anything.
        out_shape = tuple(self.spec.output_shape(list(x.shape)))
        target, dtype = (BF16_TARGET, jnp.bfloat16) if self.bf16 else (TARGET, jnp.float32)
        call = jax.ffi.ffi_call(target, jax.ShapeDtypeStruct(out_shape, dtype), vmap_method="expand_dims")
        return call(x, kernel, bias, cache_id=self.cache_id)

    def gradients(self, x, kernel, bias, dz):
        """(dx, dkernel, dbias) of this (linear) specialization for its output's cotangent dz.

        bf16: x, dz and dx bf16, the weights' gradients float32 (Layer::backward_bf16)."""
        dtype = jnp.bfloat16 if self.bf16 else jnp.float32
        shapes = (jax.ShapeDtypeStruct(x.shape, dtype),) + tuple(
            jax.ShapeDtypeStruct(a.shape, jnp.float32) for a in (kernel, bias))
        call = jax.ffi.ffi_call(BF16_BACKWARD_TARGET if self.bf16 else BACKWARD_TARGET, shapes,
                                vmap_method="expand_dims")
        return call(x, kernel, bias, dz, cache_id=self.cache_id)


class Op:
    """One Conv3DTranspose configuration as a differentiable JAX function: op(x, kernel, bias).

    config: Keras's layer config (dict or JSON). activation: the JAX function
    of the config's activation for the backward pass (default: looked up by
    name); Keras's layer passes its own. Each Op keeps its own specialized,
    packed layers between calls (repacked only when the weights change).
    dtype: "float32", or "bfloat16" (bf16 x and result, float32 weights).
    """

    def __init__(self, config, *, flavor=None, backend="auto", isa="auto", threads=0, activation=None,
                 dtype="float32"):
        _register_target()
        self.dtype = dtype_name(dtype)
        self._args = (config_json(config), flavor, backend, isa, int(threads))
        self._fused = _Specialized(*self._args, linear=False, dtype=self.dtype)
        self._linear = None  # made on the first differentiation
        self._activation = activation
        self.use_bias = self._fused.spec.use_bias
        self.data_format = self._fused.spec.data_format
        self.activation_name = self._fused.spec.activation

        @jax.custom_vjp
        def apply(x, kernel, bias):
            return self._fused(x, kernel, self._bias_operand(bias))

        apply.defvjp(self._forward_with_residuals, self._backward)
        self._apply = apply

    def __call__(self, x, kernel, bias=None):
        # Nothing is converted silently: the activations in the op's dtype, the weights float32.
        for name, a, want in (("x", x, self.dtype), ("kernel", kernel, "float32"), ("bias", bias, "float32")):
            if a is not None and jnp.result_type(a) != jnp.dtype(want):
                hint = "" if name == "x" else " (weights stay float32 under mixed_bfloat16, as Keras keeps them)"
                raise TypeError(f"{name}: expected {want}, got {jnp.result_type(a)}{hint}")
        x, kernel = jnp.asarray(x), jnp.asarray(kernel)
        bias = None if bias is None else jnp.asarray(bias)
        self._fused.spec.check_weights(list(kernel.shape), None if bias is None else list(bias.shape))
        self._fused.spec.output_shape(list(x.shape))  # rank and sizes, with the library's message
        channels = x.shape[4] if self.data_format == "channels_last" else x.shape[1]
        if channels != kernel.shape[4]:
            raise _core.Error(f"kernel: shape {tuple(kernel.shape)} expects {kernel.shape[4]} input channels, "
                              f"the input {tuple(x.shape)} has {channels}")
        return self._apply(x, kernel, bias)

    def specializers(self):
        """The _core.Specializer objects behind this op (forward, and linear once differentiated)."""
        return [s.spec for s in (self._fused, self._linear) if s is not None]

    def _bias_operand(self, bias):
        # The handler always takes three operands; (0,) stands for "no bias".
        return jnp.zeros((0,), jnp.float32) if bias is None else bias

    def _activation_fn(self):
        return self._activation if self._activation is not None else activation_function(self.activation_name)

    def _forward_with_residuals(self, x, kernel, bias):
        if self.activation_name == "linear":
            return self._fused(x, kernel, self._bias_operand(bias)), (x, kernel, bias, None)
        # Differentiating through the activation needs the pre-activation
        # output: compute it without the activation, apply the activation in JAX.
        if self._linear is None:
            self._linear = _Specialized(*self._args, linear=True, dtype=self.dtype)
        z = self._linear(x, kernel, self._bias_operand(bias))
        return self._activation_fn()(z), (x, kernel, bias, z)

    def _backward(self, residuals, dy):
        x, kernel, bias, z = residuals
        linear = self._fused
        if z is not None:
            _, activation_vjp = jax.vjp(self._activation_fn(), z)
            (dy,) = activation_vjp(dy)
            linear = self._linear
        # bf16: dz is bf16 (the output's cotangent, through the activation's bf16 derivative).
        dz = dy.astype(jnp.bfloat16 if self.dtype == "bfloat16" else jnp.float32)
        dx, dk, db = linear.gradients(x, kernel, self._bias_operand(bias), dz)
        return dx, dk, None if bias is None else db


@functools.lru_cache(maxsize=64)
def _op(text, backend, isa, threads, dtype):
    return Op(text, backend=backend, isa=isa, threads=threads, dtype=dtype)


def conv3d_transpose(x, kernel, bias=None, *, backend="auto", isa="auto", threads=0, **keras_arguments):
    """Keras's Conv3DTranspose on JAX arrays through tconv3d (jit, vmap and grad work).

    kernel: (kd, kh, kw, filters, in_channels); bias: (filters,) or None.
    keras_arguments: strides, padding, output_padding, data_format (default
    channels_last), dilation_rate, activation (a Keras name). A bf16 x
    computes as Keras's mixed_bfloat16 (bf16 result; the weights stay float32).
    """
    dtype = "bfloat16" if jnp.result_type(x) == jnp.bfloat16 else "float32"
    return _op(config_text(tuple(kernel.shape), bias is not None, keras_arguments), backend, isa, int(threads),
               dtype)(x, kernel, bias)
