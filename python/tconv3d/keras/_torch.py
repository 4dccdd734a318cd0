"""torch backend: a torch.autograd.Function over the NumPy path (zero-copy on CPU tensors).

Training runs the linear part through tconv3d both ways (forward, and the
backward kernels for the input, kernel and bias gradients) and the
activation through Keras's own function on torch tensors, so autograd
differentiates it as Keras-on-torch does. The geometry is tconv3d's (Keras
on JAX and TensorFlow), so Keras-on-torch's own padding bugs,
keras-team/keras#22876, do not leak in.
"""
import numpy as np
import torch


def symbolic(inputs):
    return isinstance(inputs, torch.Tensor) and inputs.device.type == "meta"


def unsupported(layer, inputs):
    for name, t in (("input", inputs), ("kernel", layer.kernel.value)):
        if isinstance(t, torch.Tensor) and t.device.type != "cpu":
            return f"the {name} is on {t.device}, tconv3d runs on the CPU"
    return None


def _threads(layer):
    # Share the cores torch was told to use rather than oversubscribing them.
    return layer.tconv3d_threads or torch.get_num_threads()


def _numpy(t):
    return np.ascontiguousarray(t.detach().numpy())


class _LinearFunction(torch.autograd.Function):
    """conv_transpose(x, kernel) + bias, forward and backward by tconv3d."""

    @staticmethod
    def forward(ctx, x, kernel, bias, spec):
        y = spec.forward(_numpy(x), _numpy(kernel), None if bias is None else _numpy(bias), True)
        # Saved as tensors, so autograd's version check catches in-place changes;
        # the backward finds the same specialization (no repacking).
        ctx.save_for_backward(x, kernel, bias)
        ctx.spec = spec
        return torch.from_numpy(y)

    @staticmethod
    def backward(ctx, dy):
        need_x, need_k, need_b = ctx.needs_input_grad[:3]
        x, kernel, bias = ctx.saved_tensors
        grads = ctx.spec.backward(_numpy(x), _numpy(kernel), None if bias is None else _numpy(bias), None,
                                  _numpy(dy), need_x, need_k, need_b and bias is not None)
        return tuple(None if g is None else torch.from_numpy(g) for g in grads) + (None,)


def call(layer, inputs):
    kernel = layer.kernel.value
    bias = layer.bias.value if layer.use_bias else None
    threads = _threads(layer)
    tensors = [t for t in (inputs, kernel, bias) if t is not None]
    if not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors)):
        # Inference: the activation fused into tconv3d's kernel.
        spec = layer._tconv3d_specializer(False, threads)
        y = spec.forward(_numpy(inputs), _numpy(kernel), None if bias is None else _numpy(bias), True)
        return torch.from_numpy(y)
    # Training: the linear part by tconv3d, the activation by Keras's own
    # function on torch tensors, so autograd sees it.
    z = _LinearFunction.apply(inputs, kernel, bias, layer._tconv3d_specializer(True, threads))
    return layer.activation(z)
