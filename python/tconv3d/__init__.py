"""tconv3d: JIT-specialized Keras Conv3DTranspose on x86 CPUs.

NumPy API here; the JAX op in tconv3d.jax and the Keras 3 layer in
tconv3d.keras are imported on demand (they import JAX or Keras).
"""
from tconv3d._core import Error
from tconv3d._core import bf16_unavailable
from tconv3d.functional import conv3d_transpose
from tconv3d.layer import Layer
from tconv3d.model import ModelLayer, load_model

__all__ = ["Error", "Layer", "ModelLayer", "bf16_unavailable", "conv3d_transpose", "load_model"]
__version__ = "0.1.0"
