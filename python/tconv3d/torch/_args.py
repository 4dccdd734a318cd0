"""PyTorch's conv_transpose3d arguments: normalized, and checked for what tconv3d runs.

Anything this module does not accept is left to torch.nn.functional.conv_transpose3d,
which either computes it or raises PyTorch's own error for it, so a bad
argument gets exactly the exception PyTorch users expect.
"""
import torch

CHANNELS_LAST = torch.channels_last_3d
CONTIGUOUS = torch.contiguous_format
# Grouped convolutions run as one tconv3d layer per group only with at least this many channels per group.
MIN_GROUP_CHANNELS = 8


def triple(value):
    """(a, b, c) for an int or a sequence of three ints; None for anything else."""
    if type(value) is int:
        return (value, value, value)
    if isinstance(value, (tuple, list)) and len(value) == 3 and all(type(v) is int for v in value):
        return tuple(value)
    return None


def triple_list(value, name):
    """The op's int[] argument: three ints (PyTorch's own functional accepts these forms)."""
    t = triple(value)
    if t is None:
        if isinstance(value, (tuple, list)) and len(value) == 1 and type(value[0]) is int:
            return [value[0]] * 3
        raise ValueError(f"conv_transpose3d: {name} must be an int or 3 ints, got {value!r}")
    return list(t)


def _channels_last_only(t):
    # Strides that only channels_last_3d explains (a tensor that is both, e.g.
    # one channel or 1x1x1 spatial, counts as contiguous, as PyTorch's
    # suggest_memory_format makes it).
    return t.dim() == 5 and not t.is_contiguous() and t.is_contiguous(memory_format=CHANNELS_LAST)


def output_format(input, weight):
    """The memory format of the result: channels_last_3d when the input or the
    weight is channels_last_3d, as PyTorch's CPU convolution propagates it
    (its batch-1 path returns contiguous instead; tconv3d keeps channels_last
    there too, to spare a layout round trip)."""
    if input.dim() == 5 and (_channels_last_only(input) or _channels_last_only(weight)):
        return CHANNELS_LAST
    return CONTIGUOUS


def output_size(in_size, kernel, stride, padding, output_padding, dilation):
    return (in_size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def _plain_cpu_float(t):
    return t.device.type == "cpu" and t.dtype is torch.float32 and t.layout is torch.strided


def unsupported(input, weight, bias, stride, padding, output_padding, groups, dilation):
    """Why tconv3d does not run this call (then PyTorch's own op does), or None.

    stride, padding, output_padding, dilation: triples (or None if malformed).
    """
    if not isinstance(input, torch.Tensor) or not isinstance(weight, torch.Tensor):
        return "input and weight must be tensors"
    if bias is not None and not isinstance(bias, torch.Tensor):
        return "bias must be a tensor"
    if not (_plain_cpu_float(input) and _plain_cpu_float(weight) and (bias is None or _plain_cpu_float(bias))):
        return "tconv3d runs float32 CPU tensors only"
    if stride is None or padding is None or output_padding is None or dilation is None:
        return "malformed stride, padding, output_padding or dilation"
    if type(groups) is not int or groups < 1:
        return "groups"
    if input.dim() != 5 or weight.dim() != 5:
        return "not a batched 5-D input and 5-D weight"
    n, c, d, h, w = input.shape
    if c != weight.shape[0] or n <= 0 or c <= 0 or weight.shape[1] <= 0 or c % groups != 0:
        return "channels do not match, or an empty dimension"
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != weight.shape[1] * groups):
        return "bias shape"
    if groups > 1:
        # One layer per group and batch item: worth it where each group has enough channels to fill
        # vectors; a channels_last tensor has no contiguous group blocks.
        if output_format(input, weight) is CHANNELS_LAST:
            return "groups > 1 with channels_last_3d"
        if c // groups < MIN_GROUP_CHANNELS or weight.shape[1] < MIN_GROUP_CHANNELS:
            return f"groups with fewer than {MIN_GROUP_CHANNELS} input or output channels each"
    for i, size in enumerate((d, h, w)):
        k, s, p, op, dl = weight.shape[2 + i], stride[i], padding[i], output_padding[i], dilation[i]
        if size <= 0 or k <= 0 or s <= 0 or dl <= 0 or p < 0 or op < 0 or op >= max(s, dl):
            return "an argument PyTorch rejects"
        if output_size(size, k, s, p, op, dl) <= 0:
            return "an empty output"
    return None
