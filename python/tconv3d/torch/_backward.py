"""The gradient of tconv3d.torch's op: tconv3d's backward kernels where its forward ran on tconv3d.

Grouped calls, traced graphs (torch.compile, torch.export, functorch) and
everything the forward leaves to PyTorch's own op take PyTorch's convolution
backward (backward_torch in _op.py).
"""
import torch

from tconv3d.torch import _args, _cache


def backward_tconv3d(grad_output, input, weight, bias, stride, padding, output_padding, groups, dilation,
                     output_mask):
    """(grad_input, grad_weight, grad_bias) by Layer::backward, or None where tconv3d does not run this call."""
    if (torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active()
            or any(t is not None and type(t) is not torch.Tensor for t in (grad_output, input, weight, bias))):
        # Traced (torch.compile's fake tensors, functorch wrappers): PyTorch's
        # backward, whose ops the tracer sees; tconv3d's kernels need real buffers.
        return None
    s, p, op, d = (_args.triple(v) for v in (stride, padding, output_padding, dilation))
    unbatched = input.dim() == 4
    x = input.unsqueeze(0) if unbatched else input
    if groups != 1 or _args.unsupported(x, weight, bias, s, p, op, groups, d) is not None:
        return None
    fmt = _args.output_format(x, weight)
    data_format = "channels_last" if fmt is _args.CHANNELS_LAST else "channels_first"
    x = x.contiguous(memory_format=fmt)
    try:
        _, parts, _ = _cache.layer_for(x, data_format, weight, bias, groups, s, p, op, d, torch.get_num_threads())
    except _cache.Unsupported:
        return None
    layer = parts[0][0]
    dy = grad_output.unsqueeze(0) if unbatched else grad_output
    dy = dy.to(torch.float32).contiguous(memory_format=fmt)
    want_input, want_weight, want_bias = output_mask
    grad_input = torch.empty_like(x, memory_format=fmt) if want_input else None
    # Keras layout (kd, kh, kw, filters, in_channels); PyTorch's is (in, filters, kd, kh, kw).
    kd, kh, kw = weight.shape[2:]
    grad_kernel = torch.empty((kd, kh, kw, weight.shape[1], weight.shape[0])) if want_weight else None
    grad_bias = torch.empty(bias.shape) if want_bias and bias is not None else None
    address = lambda t: 0 if t is None else t.data_ptr()  # noqa: E731
    layer.backward(x.data_ptr(), dy.data_ptr(), address(grad_input), address(grad_kernel), address(grad_bias))
    if grad_input is not None and unbatched:
        grad_input = grad_input.squeeze(0)
    grad_weight = None if grad_kernel is None else grad_kernel.permute(4, 3, 0, 1, 2).contiguous()
    return grad_input, grad_weight, grad_bias
