"""tconv3d.conv3d_transpose: the one-shot NumPy form, cached by configuration."""
import functools
import json

from tconv3d import _core
from tconv3d._arrays import as_bf16_bits, as_float32, from_bf16_bits, is_bfloat16, optional_float32
from tconv3d._config import config_from_arguments


@functools.lru_cache(maxsize=64)
def specializer(config_text, backend="auto", isa="auto", threads=0, linear=False, dtype="float32"):
    """One Specializer per distinct configuration (the layers it made stay cached in it)."""
    return _core.Specializer(config_text, None, backend, isa, threads, linear, dtype)


def config_text(kernel_shape, use_bias, arguments):
    return json.dumps(config_from_arguments(kernel_shape, use_bias, arguments), sort_keys=True)


def conv3d_transpose(x, kernel, bias=None, **keras_arguments):
    """Keras's Conv3DTranspose on NumPy arrays.

    x: float32, or bf16 (ml_dtypes.bfloat16: computed as Keras's
    mixed_bfloat16 policy, the result is bf16). kernel: (kd, kh, kw, filters,
    in_channels) float32; bias: (filters,) float32 or None (Keras's variables
    are float32 in both cases; a bf16 layer rounds the kernel to bf16).
    keras_arguments: strides, padding, output_padding, data_format (default
    channels_last), dilation_rate, activation. The specialized layer is kept
    per configuration and input shape and reused while the weights are equal
    to the last call's (compared every call; a change repacks).
    """
    kernel = as_float32(kernel, "kernel")
    bias = optional_float32(bias, "bias")
    bf16 = is_bfloat16(x)
    spec = specializer(config_text(kernel.shape, bias is not None, keras_arguments),
                       dtype="bfloat16" if bf16 else "float32")
    spec.check_weights(list(kernel.shape), None if bias is None else list(bias.shape))
    if bf16:
        return from_bf16_bits(spec.forward_bf16(as_bf16_bits(x, "x"), kernel, bias, True))
    return spec.forward(as_float32(x, "x"), kernel, bias, True)
