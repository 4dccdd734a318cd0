"""torch.ops.tconv3d.conv_transpose3d and tconv3d.torch.conv_transpose3d.

The registered op (torch.library.custom_op) carries a fake implementation
for torch.compile and torch.export, and autograd. Going through PyTorch's
dispatcher costs tens of microseconds per call from Python, so the public
function calls tconv3d directly when nothing needs the dispatcher: eager
mode, plain CPU float32 tensors, no gradient to record. Everything else goes
through the op, which is the same computation.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from tconv3d.torch import _args, _cache

# Explicit, so torch.set_default_dtype / set_default_device never change what tconv3d writes into.
_CPU = torch.device("cpu")


def _run(input, weight, bias, stride, padding, output_padding, groups, dilation):
    """The forward pass: tconv3d where it can, PyTorch's own op otherwise (same result, same errors).

    stride, padding, output_padding, dilation: as the caller gave them.
    """
    threads = torch.get_num_threads()
    try:
        # A call like one before: same input shape, strides, dtype, device and arguments.
        call_key = (input.shape, input.stride(), input.dtype, input.is_cpu, id(bias), stride, padding,
                    output_padding, groups, dilation, threads)
        try:
            hash(call_key)
        except TypeError:  # lists for stride etc.: the same call as tuples
            call_key = call_key[:5] + tuple(tuple(v) if type(v) is list else v for v in call_key[5:])
        call = _cache.lookup(weight, bias, call_key)
    except (AttributeError, TypeError, RuntimeError):  # not a tensor, unhashable arguments, no strides
        call_key = call = None
    if call is not None:
        y = torch.empty(call.out_shape, dtype=torch.float32, device=_CPU, memory_format=call.memory_format)
        px, py = input.data_ptr(), y.data_ptr()
        for layer, x_offset, y_offset in call.parts:
            layer.forward(px + x_offset, py + y_offset)
        return y
    return _first_run(input, weight, bias, stride, padding, output_padding, groups, dilation, threads, call_key)


def _first_run(input, weight, bias, stride, padding, output_padding, groups, dilation, threads, call_key):
    s, p, op, d = _args.triple(stride), _args.triple(padding), _args.triple(output_padding), _args.triple(dilation)
    unbatched = isinstance(input, torch.Tensor) and input.dim() == 4
    x = input.unsqueeze(0) if unbatched else input
    if _args.unsupported(x, weight, bias, s, p, op, groups, d) is None:
        fmt = _args.output_format(x, weight)
        data_format = "channels_last" if fmt is _args.CHANNELS_LAST else "channels_first"
        # The layer reads the input in the output's layout; this copies only
        # an input in the other layout (or not dense).
        x = x.contiguous(memory_format=fmt)
        try:
            pack, parts, out_shape = _cache.layer_for(x, data_format, weight, bias, groups, s, p, op, d, threads)
        except _cache.Unsupported:
            pass
        else:
            y = torch.empty(out_shape, dtype=torch.float32, device=_CPU, memory_format=fmt)
            px, py = x.data_ptr(), y.data_ptr()
            for layer, x_offset, y_offset in parts:
                layer.forward(px + x_offset, py + y_offset)
            if call_key is not None and x is input:
                # Only a batched input already in the layer's layout takes the fast route next time.
                _cache.remember(weight, call_key, _cache.Call(pack, parts, out_shape, fmt))
            return y.squeeze(0) if unbatched else y
    return F.conv_transpose3d(input, weight, bias, stride, padding, output_padding, groups, dilation)


def _strides(shape, fmt):
    """The strides torch.empty(shape, memory_format=fmt) gives a 5-D tensor, without allocating it."""
    if 0 in shape:
        return torch.empty(shape, memory_format=fmt).stride()  # nothing to allocate; torch's own zero-size rules
    n, c, d, h, w = shape
    if fmt is _args.CHANNELS_LAST:
        return (d * h * w * c, 1, h * w * c, w * c, c)
    return (c * d * h * w, d * h * w, h * w, w, 1)


def _in_format(y, fmt):
    """y with exactly the strides torch.empty(..., memory_format=fmt) gives, as the fake promises."""
    if y.dim() != 5:
        return y.contiguous()
    if y.stride() == _strides(y.shape, fmt):
        return y
    return torch.empty(y.shape, dtype=y.dtype, device=y.device, memory_format=fmt).copy_(y)


@torch.library.custom_op("tconv3d::conv_transpose3d", mutates_args=())
def conv_transpose3d_op(input: Tensor, weight: Tensor, bias: Optional[Tensor], stride: Sequence[int],
                        padding: Sequence[int], output_padding: Sequence[int], groups: int,
                        dilation: Sequence[int]) -> Tensor:
    y = _run(input, weight, bias, tuple(stride), tuple(padding), tuple(output_padding), groups, tuple(dilation))
    return _in_format(y, _args.output_format(input, weight))


@conv_transpose3d_op.register_fake
def _fake(input, weight, bias, stride, padding, output_padding, groups, dilation):
    # PyTorch's own shape function: its output shape, and its errors for bad shapes.
    y = F.conv_transpose3d(input, weight, bias, stride, padding, output_padding, groups, dilation)
    if y.dim() != 5:
        return torch.empty_like(y, memory_format=torch.contiguous_format)
    return torch.empty_like(y, memory_format=_args.output_format(input, weight))


def backward_torch(grad_output, input, weight, bias_shape, stride, padding, output_padding, groups, dilation,
                   output_mask):
    """(grad_input, grad_weight, grad_bias) of conv_transpose3d by PyTorch's own convolution backward.

    The one place the gradient is computed: tconv3d's backward kernels replace this function.
    """
    unbatched = input.dim() == 4
    if unbatched:
        input, grad_output = input.unsqueeze(0), grad_output.unsqueeze(0)
    gi, gw, gb = torch.ops.aten.convolution_backward(grad_output, input, weight, bias_shape, list(stride),
                                                     list(padding), list(dilation), True, list(output_padding),
                                                     groups, output_mask)
    if unbatched and gi is not None:
        gi = gi.squeeze(0)
    return gi, gw, gb


def _setup_context(ctx, inputs, output):
    input, weight, bias, stride, padding, output_padding, groups, dilation = inputs
    ctx.save_for_backward(input, weight)
    ctx.bias_shape = None if bias is None else list(bias.shape)
    ctx.arguments = (stride, padding, output_padding, groups, dilation)


def _backward(ctx, grad_output):
    input, weight = ctx.saved_tensors
    stride, padding, output_padding, groups, dilation = ctx.arguments
    need_input, need_weight, need_bias = ctx.needs_input_grad[:3]
    mask = [need_input, need_weight, need_bias and ctx.bias_shape is not None]
    if not any(mask):
        return None, None, None, None, None, None, None, None
    gi, gw, gb = backward_torch(grad_output, input, weight, ctx.bias_shape, stride, padding, output_padding, groups,
                                dilation, mask)
    return (gi if mask[0] else None, gw if mask[1] else None, gb if mask[2] else None,
            None, None, None, None, None)


conv_transpose3d_op.register_autograd(_backward, setup_context=_setup_context)


def _vmap(info, in_dims, input, weight, bias, stride, padding, output_padding, groups, dilation):
    """torch.func.vmap: a batched input alone folds into the batch axis; batched weights loop."""
    x_dim, w_dim, b_dim = in_dims[:3]
    args = (stride, padding, output_padding, groups, dilation)
    if w_dim is None and b_dim is None:
        x = input.movedim(x_dim, 0)
        if x.dim() == 5:  # unbatched examples: the vmapped axis is the batch
            return conv_transpose3d_op(x, weight, bias, *args), 0
        y = conv_transpose3d_op(x.flatten(0, 1), weight, bias, *args)
        return y.unflatten(0, x.shape[:2]), 0
    outs = []
    for i in range(info.batch_size):
        pick = lambda t, d: t if d is None or t is None else t.select(d, i)  # noqa: E731
        outs.append(conv_transpose3d_op(pick(input, x_dim), pick(weight, w_dim), pick(bias, b_dim), *args))
    return torch.stack(outs), 0


conv_transpose3d_op.register_vmap(_vmap)


def _direct(input, weight, bias):
    """Whether the call may skip the dispatcher: eager, plain tensors, nothing for autograd to record."""
    if (torch.compiler.is_compiling() or torch._C._is_torch_function_mode_enabled()
            or torch._C._are_functorch_transforms_active()):
        return False
    for t in (input, weight, bias):
        if not isinstance(t, torch.Tensor):
            continue  # not a tensor at all: PyTorch's own op raises its TypeError
        if type(t) is not torch.Tensor and type(t) is not torch.nn.Parameter:
            return False  # subclasses and wrappers (FakeTensor, functorch) need the dispatcher
        if t.requires_grad and torch.is_grad_enabled():
            return False
    return True


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch.nn.functional.conv_transpose3d, computed by tconv3d on CPU float32 tensors.

    Same signature, semantics and errors; weight (in_channels, out_channels / groups, kd, kh, kw).
    Other devices and dtypes, groups > 1 and the cases the core refuses run
    PyTorch's own op. Differentiable, and traceable by torch.compile and
    torch.export (as torch.ops.tconv3d.conv_transpose3d).
    """
    if _direct(input, weight, bias):
        return _run(input, weight, bias, stride, padding, output_padding, groups, dilation)
    return conv_transpose3d_op(input, weight, bias, _args.triple_list(stride, "stride"),
                               _args.triple_list(padding, "padding"),
                               _args.triple_list(output_padding, "output_padding"), groups,
                               _args.triple_list(dilation, "dilation"))
