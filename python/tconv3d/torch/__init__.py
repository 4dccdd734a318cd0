"""tconv3d for PyTorch: conv_transpose3d (torch.ops.tconv3d.conv_transpose3d), ConvTranspose3d, accelerate.

CPU float32 tensors run through tconv3d's specialized kernels; everything
else (other devices and dtypes, groups > 1, what the core refuses) runs
PyTorch's own conv_transpose3d, with the same result and errors.
"""
from tconv3d.torch._cache import clear as clear_cache
from tconv3d.torch._cache import stats as cache_stats
from tconv3d.torch._module import ConvTranspose3d, accelerate
from tconv3d.torch._op import backward_torch, conv_transpose3d, conv_transpose3d_op

__all__ = ["ConvTranspose3d", "accelerate", "backward_torch", "cache_stats", "clear_cache", "conv_transpose3d",
           "conv_transpose3d_op"]
