"""torch backend: a torch.autograd.Function over the NumPy path (zero-copy on CPU tensors).

Training runs the linear part through tconv3d both ways (forward, and the
backward kernels for the input, kernel and bias gradients) and the
activation through Keras's own function on torch tensors, so autograd
differentiates it as Keras-on-torch does. The geometry is tconv3d's (Keras
on JAX and TensorFlow), so Keras-on-torch's own padding bugs,
keras-team/keras#22876, do not leak in.

Under mixed_bfloat16 the same runs in bf16: bf16 tensors cross as their
int16 bits (a view, no copy), the kernel and bias as the float32 variables
(tconv3d rounds the kernel to bf16, as Keras's cast does), and the kernel
and bias gradients come back float32.
"""
import numpy as np
import torch

try:  # Reads the float32 variables themselves under mixed_bfloat16.
    from keras.src.backend import AutocastScope as _AutocastScope
except ImportError:  # pragma: no cover - a Keras without it
    _AutocastScope = None


def symbolic(inputs):
    return isinstance(inputs, torch.Tensor) and inputs.device.type == "meta"


def unsupported(layer, inputs):
    for name, t in (("input", inputs), ("kernel", layer.kernel.value)):
        if isinstance(t, torch.Tensor) and t.device.type != "cpu":
            return f"the {name} is on {t.device}, tconv3d runs on the CPU"
    if _bf16(inputs):
        if _AutocastScope is None:
            return "this Keras has no AutocastScope to read the float32 kernel variable with"
        # A config bf16 cannot run (an axis activation) raises tconv3d.Error here.
        layer._tconv3d_specializer(False, _threads(layer), "bfloat16")
    return None


def _bf16(t):
    return isinstance(t, torch.Tensor) and t.dtype == torch.bfloat16


def _bits(t):
    """A bf16 tensor's bits as a uint16 NumPy array (a view of the tensor's memory)."""
    return t.detach().contiguous().view(torch.int16).numpy().view(np.uint16)


def _from_bits(a):
    return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)


def _weights(layer, bf16):
    if not bf16:
        return layer.kernel.value, layer.bias.value if layer.use_bias else None
    with _AutocastScope(None):  # the float32 variables, not Keras's bf16 casts
        return layer.kernel.value, layer.bias.value if layer.use_bias else None


def _threads(layer):
    # Share the cores torch was told to use rather than oversubscribing them.
    return layer.tconv3d_threads or torch.get_num_threads()


def _numpy(t):
    return np.ascontiguousarray(t.detach().numpy())


class _LinearFunction(torch.autograd.Function):
    """conv_transpose(x, kernel) + bias, forward and backward by tconv3d."""

    @staticmethod
    def forward(ctx, x, kernel, bias, spec):
        b = None if bias is None else _numpy(bias)
        if spec.dtype == "bfloat16":
            y = _from_bits(spec.forward_bf16(_bits(x), _numpy(kernel), b, True))
        else:
            y = torch.from_numpy(spec.forward(_numpy(x), _numpy(kernel), b, True))
        # Saved as tensors, so autograd's version check catches in-place changes;
        # the backward finds the same specialization (no repacking).
        ctx.save_for_backward(x, kernel, bias)
        ctx.spec = spec
        return y

    @staticmethod
    def backward(ctx, dy):
        need_x, need_k, need_b = ctx.needs_input_grad[:3]
        x, kernel, bias = ctx.saved_tensors
        b = None if bias is None else _numpy(bias)
        if ctx.spec.dtype == "bfloat16":
            dx, dk, db = ctx.spec.backward_bf16(_bits(x), _numpy(kernel), b, None, _bits(dy.to(torch.bfloat16)),
                                                need_x, need_k, need_b and bias is not None)
            return (None if dx is None else _from_bits(dx),) + tuple(
                None if g is None else torch.from_numpy(g) for g in (dk, db)) + (None,)
        grads = ctx.spec.backward(_numpy(x), _numpy(kernel), b, None, _numpy(dy), need_x, need_k,
                                  need_b and bias is not None)
        return tuple(None if g is None else torch.from_numpy(g) for g in grads) + (None,)


def call(layer, inputs):
    bf16 = _bf16(inputs)
    dtype = "bfloat16" if bf16 else "float32"
    kernel, bias = _weights(layer, bf16)
    threads = _threads(layer)
    tensors = [t for t in (inputs, kernel, bias) if t is not None]
    if not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors)):
        # Inference: the activation fused into tconv3d's kernel.
        spec = layer._tconv3d_specializer(False, threads, dtype)
        b = None if bias is None else _numpy(bias)
        if bf16:
            return _from_bits(spec.forward_bf16(_bits(inputs), _numpy(kernel), b, True))
        return torch.from_numpy(spec.forward(_numpy(inputs), _numpy(kernel), b, True))
    # Training: the linear part by tconv3d, the activation by Keras's own
    # function on torch tensors, so autograd sees it.
    z = _LinearFunction.apply(inputs, kernel, bias, layer._tconv3d_specializer(True, threads, dtype))
    return layer.activation(z)
