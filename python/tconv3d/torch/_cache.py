"""Packed weights per weight tensor, one specialized layer per input shape, and a per-call fast lookup.

Everything is filed under the weight tensor object. A pack (one layer's
copied and packed weights) is keyed by the bias tensor, the convolution's
arguments, the data format and the thread count, and is valid while weight
and bias still have the storage address, shape, strides and version counter
they had when packed: an in-place update (an optimizer step, `with
torch.no_grad(): w.mul_(2)`) bumps the version, so the next call repacks.
Weak references tell a live tensor from a new one that reuses a dead one's
id, and drop the weight's packs when it goes away.

Within a pack, each new input shape gets its layer from Layer::reshape, which
shares the packed weights, so only the first shape packs. A call seen before
(same input shape, strides, dtype and arguments) finds its layer in one dict
lookup plus the validity check.
"""
import math
import weakref

import torch

from tconv3d import _core

# Weight tensors with live packs; beyond this the oldest is dropped first
# (a model with hundreds of transposed convolutions, or weights recomputed every call).
CAPACITY = 256

_by_weight = {}
_stats = {"packs": 0, "layers": 0}


class Unsupported(Exception):
    """The core rejected this geometry (tconv3d.Error); PyTorch's op runs it instead."""


def state(t):
    if t is None:
        return None
    if t.is_inference():
        # No version counter to read: the pack keeps a copy and compares contents (see _Pack.valid_for).
        return (t.data_ptr(), t.shape, t.stride(), "inference")
    return (t.data_ptr(), t.shape, t.stride(), t._version)


class _Weight:
    """Everything cached for one weight tensor."""
    __slots__ = ("ref", "packs", "calls")

    def __init__(self, weight):
        key = id(weight)

        def drop(ref):  # no reference to self: no cycle through the weakref
            entry = _by_weight.get(key)
            if entry is not None and entry.ref is ref:
                del _by_weight[key]

        self.ref = weakref.ref(weight, drop)
        self.packs = {}  # (id(bias), stride, padding, output_padding, dilation, data_format, threads) -> _Pack
        self.calls = {}  # call key -> Call


class _Pack:
    __slots__ = ("bias_ref", "state", "roots", "layers", "copies")

    def __init__(self, weight, bias, state):
        self.bias_ref = None if bias is None else weakref.ref(bias)
        self.state = state
        self.roots = None  # the first GeometryLayer of each group; the others are reshaped from them
        # input shape (data format order) -> (parts, output shape NCDHW), or None where the core refused it
        self.layers = {}
        # Inference tensors (made under torch.inference_mode) track no version, so an in-place
        # change can only be seen by comparing contents with a copy, every call (O(weights)).
        self.copies = None
        if weight.is_inference() or (bias is not None and bias.is_inference()):
            self.copies = (weight.clone(), None if bias is None else bias.clone())

    def valid_for(self, weight, bias, state):
        if not ((bias is None if self.bias_ref is None else self.bias_ref() is bias) and self.state == state):
            return False
        if self.copies is not None:
            w, b = self.copies
            return torch.equal(w, weight) and (b is None or torch.equal(b, bias))
        return True


class Call:
    """What a repeated call needs: the parts to run, the output's shape and memory format, the pack to validate.

    parts: (GeometryLayer, input byte offset, output byte offset) each; one for
    groups=1, one per group and batch item otherwise (each a contiguous block of NCDHW).
    """
    __slots__ = ("pack", "parts", "out_shape", "memory_format")

    def __init__(self, pack, parts, out_shape, memory_format):
        self.pack, self.parts, self.out_shape, self.memory_format = pack, parts, out_shape, memory_format


def _weight_entry(weight):
    entry = _by_weight.get(id(weight))
    if entry is None or entry.ref() is not weight:
        if len(_by_weight) >= CAPACITY:
            del _by_weight[next(iter(_by_weight))]
        entry = _by_weight[id(weight)] = _Weight(weight)
    return entry


def lookup(weight, bias, call_key):
    """The Call stored under call_key for this weight, if its pack is still valid; else None."""
    entry = _by_weight.get(id(weight))
    if entry is None:
        return None
    call = entry.calls.get(call_key)
    if call is None or entry.ref() is not weight:
        return None
    return call if call.pack.valid_for(weight, bias, (state(weight), state(bias))) else None


def remember(weight, call_key, call):
    _weight_entry(weight).calls[call_key] = call


def _build_roots(shape, data_format, weight, bias, groups, stride, padding, output_padding, dilation, threads):
    # Keras layout (kd, kh, kw, filters, in_channels) from PyTorch's (in, out/groups, kd, kh, kw):
    # one transposing copy per pack; the core copies it once more and packs it.
    kernel = weight.detach().permute(2, 3, 4, 1, 0)
    b = None if bias is None else bias.detach()
    cin, cout = weight.shape[0] // groups, weight.shape[1]
    roots = []
    for g in range(groups):
        k = kernel[..., g * cin:(g + 1) * cin].contiguous()
        bg = None if b is None else b[g * cout:(g + 1) * cout].contiguous()
        roots.append(_core.GeometryLayer(list(shape), data_format, cout, tuple(weight.shape[2:]), stride, dilation,
                                         padding, output_padding, k.data_ptr(), 0 if bg is None else bg.data_ptr(),
                                         threads))
    _stats["packs"] += 1
    return roots


def layer_for(x, data_format, weight, bias, groups, stride, padding, output_padding, dilation, threads):
    """(pack, parts, output shape in NCDHW order) for input x, in data_format's memory layout (see Call).

    groups > 1 takes a contiguous (channels_first) x. Raises Unsupported where the core rejects the geometry.
    """
    entry = _weight_entry(weight)
    key = (id(bias), groups, stride, padding, output_padding, dilation, data_format, threads)
    current = (state(weight), state(bias))
    pack = entry.packs.get(key)
    if pack is None or not pack.valid_for(weight, bias, current):
        if pack is not None:
            entry.calls.clear()  # they point at the stale pack
        pack = entry.packs[key] = _Pack(weight, bias, current)
    shape = tuple(x.shape) if data_format == "channels_first" else (x.shape[0], *x.shape[2:], x.shape[1])
    found = pack.layers.get(shape, False)
    if found is None:
        raise Unsupported("the core refused this geometry before")
    if found:
        return (pack, *found)
    # Groups: one layer per group over one batch item, whose channels are a contiguous block.
    layer_shape = list(shape) if groups == 1 else [1, shape[1] // groups, *shape[2:]]
    try:
        if pack.roots is None:
            layers = pack.roots = _build_roots(layer_shape, data_format, weight, bias, groups, stride, padding,
                                               output_padding, dilation, threads)
        else:
            layers = [root.reshape(layer_shape) for root in pack.roots]
    except _core.Error as e:
        pack.layers[shape] = None
        raise Unsupported(str(e)) from e
    _stats["layers"] += 1
    out = layers[0].output_shape
    if data_format == "channels_last":
        out = [out[0], out[4], out[1], out[2], out[3]]
    if groups == 1:
        parts = [(layers[0], 0, 0)]
    else:
        out[0], out[1] = shape[0], out[1] * groups
        in_block = 4 * math.prod(layer_shape)  # bytes of one group of one batch item
        out_block = 4 * math.prod(out) // (out[0] * groups)
        parts = [(layer, (n * groups + g) * in_block, (n * groups + g) * out_block)
                 for n in range(shape[0]) for g, layer in enumerate(layers)]
    found = pack.layers[shape] = (parts, torch.Size(out))
    return (pack, *found)


def stats():
    """Weight packs and specialized layers made so far, and the weight tensors with live packs."""
    return {"packs": _stats["packs"], "layers": _stats["layers"], "live_weights": len(_by_weight)}


def clear():
    _by_weight.clear()
