"""tconv3d.conv3d_transpose: the one-shot NumPy form, cached by configuration."""
import functools
import json

from tconv3d import _core
from tconv3d._arrays import as_float32, optional_float32
from tconv3d._config import config_from_arguments


@functools.lru_cache(maxsize=64)
def specializer(config_text, backend="auto", isa="auto", threads=0, linear=False):
    """One Specializer per distinct configuration (the layers it made stay cached in it)."""
    return _core.Specializer(config_text, None, backend, isa, threads, linear)


def config_text(kernel_shape, use_bias, arguments):
    return json.dumps(config_from_arguments(kernel_shape, use_bias, arguments), sort_keys=True)


def conv3d_transpose(x, kernel, bias=None, **keras_arguments):
    """Keras's Conv3DTranspose on NumPy arrays.

    kernel: (kd, kh, kw, filters, in_channels) float32; bias: (filters,) or
    None. keras_arguments: strides, padding, output_padding, data_format
    (default channels_last), dilation_rate, activation. The specialized layer
    is kept per configuration and input shape and reused while the weights
    are equal to the last call's (compared every call; a change repacks).
    """
    kernel = as_float32(kernel, "kernel")
    bias = optional_float32(bias, "bias")
    spec = specializer(config_text(kernel.shape, bias is not None, keras_arguments))
    spec.check_weights(list(kernel.shape), None if bias is None else list(bias.shape))
    return spec.forward(as_float32(x, "x"), kernel, bias, True)
