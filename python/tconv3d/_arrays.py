"""Input checks shared by the NumPy API: float32 or bf16, copy only when needed, never convert.

NumPy has no bf16: bf16 arrays are ml_dtypes.bfloat16 (ml_dtypes ships with
JAX). They cross into the library as their uint16 bits, a view, not a copy.
"""
import numpy as np

DTYPES = ("float32", "bfloat16")


def dtype_name(dtype):
    """"float32" or "bfloat16" for a dtype given by name ("bf16" too) or object (np.float32, ml_dtypes.bfloat16)."""
    if isinstance(dtype, str) and dtype.lower() in ("bf16", "bfloat16"):
        return "bfloat16"
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise ValueError(f"dtype: expected float32 or bfloat16, got {dtype!r}")
    return name


def is_bfloat16(array):
    return getattr(getattr(array, "dtype", None), "name", None) == "bfloat16"


def bfloat16():
    """The NumPy bf16 dtype (ml_dtypes.bfloat16)."""
    try:
        import ml_dtypes
    except ImportError:
        raise ImportError("tconv3d's bf16 arrays are ml_dtypes.bfloat16: pip install ml_dtypes "
                          "(it comes with jax)") from None
    return ml_dtypes.bfloat16


def as_float32(array, name):
    """`array` as a C-contiguous float32 NumPy array; a copy only if it is not one already."""
    a = np.asarray(array)
    if a.dtype != np.float32:
        hint = ""
        if a.dtype.name == "bfloat16" and name in ("kernel", "bias"):
            hint = " (weights stay float32, as Keras keeps its variables under mixed_bfloat16; a bf16 layer rounds the kernel itself)"
        elif a.dtype.name == "bfloat16":
            hint = " (this layer computes float32; bf16 arrays need a bf16 layer: dtype='bfloat16')"
        raise TypeError(f"{name}: expected float32, got {a.dtype}{hint}")
    if not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    return a


def optional_float32(array, name):
    return None if array is None else as_float32(array, name)


def as_bf16_bits(array, name):
    """A bf16 array (ml_dtypes.bfloat16) as C-contiguous uint16 bits; a copy only if it is not contiguous."""
    a = np.asarray(array)
    if a.dtype.name != "bfloat16":
        raise TypeError(f"{name}: expected bfloat16 (ml_dtypes.bfloat16), got {a.dtype}; tconv3d converts "
                        f"nothing itself: cast with x.astype(ml_dtypes.bfloat16) (round to nearest even, as Keras)")
    if not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    return a.view(np.uint16)


def from_bf16_bits(bits):
    """uint16 bits from the library as an ml_dtypes.bfloat16 array (a view)."""
    return bits.view(bfloat16())
