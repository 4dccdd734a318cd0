"""Input checks shared by the NumPy API: float32 only, copy only when needed."""
import numpy as np


def as_float32(array, name):
    """`array` as a C-contiguous float32 NumPy array; a copy only if it is not one already."""
    a = np.asarray(array)
    if a.dtype != np.float32:
        raise TypeError(f"{name}: expected float32, got {a.dtype}")
    if not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    return a


def optional_float32(array, name):
    return None if array is None else as_float32(array, name)
