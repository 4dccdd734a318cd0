"""Keras's transposed convolution (linear part) in JAX's own ops, for the backward pass.

A transposed convolution is a convolution of the stride-dilated input with the
spatially flipped kernel, padded by (effective_kernel - 1 - crop) on each
side; its transpose with respect to x is the strided convolution of dy with
the kernel, and with respect to the kernel a correlation of x with dy.
jax.linear_transpose derives both from this one definition, so the backward
pass has exactly the geometry tconv3d's forward pass used.
"""
import jax
import jax.numpy as jnp
from jax import lax


def conv_transpose_linear(x, kernel, geometry, data_format):
    """geometry: per axis (in, kernel, stride, dilation, crop_begin, out) from the C++ library."""
    padding, strides, dilations = [], [], []
    for size, k, stride, dilation, crop_begin, out in geometry:
        effective = (k - 1) * dilation + 1
        full = (size - 1) * stride + effective
        crop_end = full - crop_begin - out
        padding.append((effective - 1 - crop_begin, effective - 1 - crop_end))
        strides.append(stride)
        dilations.append(dilation)
    spec = ("NDHWC", "DHWOI", "NDHWC") if data_format == "channels_last" else ("NCDHW", "DHWOI", "NCDHW")
    return lax.conv_general_dilated(
        x, jnp.flip(kernel, axis=(0, 1, 2)), window_strides=(1, 1, 1), padding=padding,
        lhs_dilation=strides, rhs_dilation=dilations, dimension_numbers=spec,
        precision=lax.Precision.HIGHEST)


def linear_vjp(x, kernel, dz, geometry, data_format):
    """(dx, dkernel) of the linear transposed convolution for the output cotangent dz."""
    (dx,) = jax.linear_transpose(lambda xx: conv_transpose_linear(xx, kernel, geometry, data_format), x)(dz)
    (dk,) = jax.linear_transpose(lambda kk: conv_transpose_linear(x, kk, geometry, data_format), kernel)(dz)
    return dx, dk
