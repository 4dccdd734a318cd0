"""torch backend: a torch.autograd.Function over the NumPy path (zero-copy on CPU tensors).

The backward pass is Keras's gradient computed by torch's own ops: autograd
of a reference transposed convolution with exactly the crops tconv3d used
(torch's conv_transpose3d gives the uncropped output; the crop is explicit,
so Keras-on-torch's own padding bugs, keras-team/keras#22876, do not leak in).
"""
import numpy as np
import torch
import torch.nn.functional as F


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


def reference_linear(x, kernel, geometry, data_format):
    """Keras's transposed convolution without activation and bias, in torch ops."""
    if data_format == "channels_last":
        x = x.permute(0, 4, 1, 2, 3)
    weight = kernel.permute(4, 3, 0, 1, 2)  # (in, out, kd, kh, kw)
    strides = [a[2] for a in geometry]
    dilations = [a[3] for a in geometry]
    full = F.conv_transpose3d(x, weight, stride=strides, dilation=dilations)
    # Crop crop_begin leading samples per axis; a negative end crop is zeros.
    pad = []
    for axis, (_, _, _, _, crop_begin, out) in enumerate(geometry):
        extra = crop_begin + out - full.shape[2 + axis]
        pad = [0, max(extra, 0)] + pad
    full = F.pad(full, pad)
    y = full[:, :, geometry[0][4]:geometry[0][4] + geometry[0][5], geometry[1][4]:geometry[1][4] + geometry[1][5],
             geometry[2][4]:geometry[2][4] + geometry[2][5]]
    return y.permute(0, 2, 3, 4, 1) if data_format == "channels_last" else y


class _LinearFunction(torch.autograd.Function):
    """conv_transpose(x, kernel) + bias by tconv3d; gradients by torch."""

    @staticmethod
    def forward(ctx, x, kernel, bias, spec):
        y = spec.forward(_numpy(x), _numpy(kernel), None if bias is None else _numpy(bias), True)
        ctx.save_for_backward(x, kernel)
        ctx.geometry = spec.geometry(list(x.shape))
        ctx.data_format = spec.data_format
        ctx.has_bias = bias is not None
        return torch.from_numpy(y)

    @staticmethod
    def backward(ctx, dy):
        x, kernel = ctx.saved_tensors
        need_x, need_k, need_b = ctx.needs_input_grad[:3]
        dx = dk = db = None
        if need_x or need_k:
            with torch.enable_grad():
                xr = x.detach().requires_grad_(need_x)
                kr = kernel.detach().requires_grad_(need_k)
                z = reference_linear(xr, kr, ctx.geometry, ctx.data_format)
                wanted = [t for t, need in ((xr, need_x), (kr, need_k)) if need]
                grads = list(torch.autograd.grad(z, wanted, dy))
            dx = grads.pop(0) if need_x else None
            dk = grads.pop(0) if need_k else None
        if ctx.has_bias and need_b:
            channel = 4 if ctx.data_format == "channels_last" else 1
            db = dy.sum(dim=[d for d in range(dy.dim()) if d != channel])
        return dx, dk, db, None


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
