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
    __slots__ = ("bias_ref", "state", "root", "layers", "copies")

    def __init__(self, weight, bias, state):
        self.bias_ref = None if bias is None else weakref.ref(bias)
        self.state = state
        self.root = None  # the first GeometryLayer; the others are reshaped from it
        # input shape (data format order) -> (GeometryLayer, output shape NCDHW), or None where the core refused it
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
    """What a repeated call needs: the layer, the output's shape and memory format, and the pack to validate."""
    __slots__ = ("pack", "layer", "out_shape", "memory_format")

    def __init__(self, pack, layer, out_shape, memory_format):
        self.pack, self.layer, self.out_shape, self.memory_format = pack, layer, out_shape, memory_format


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


def _build_root(shape, data_format, weight, bias, stride, padding, output_padding, dilation, threads):
    # Keras layout (kd, kh, kw, filters, in_channels) from PyTorch's (in, out, kd, kh, kw):
    # one transposing copy per pack; the core copies it once more and packs it.
    kernel = weight.detach().permute(2, 3, 4, 1, 0).contiguous()
    b = None if bias is None else bias.detach().contiguous()
    _stats["packs"] += 1
    return _core.GeometryLayer(list(shape), data_format, int(weight.shape[1]), tuple(weight.shape[2:]), stride,
                               dilation, padding, output_padding, kernel.data_ptr(),
                               0 if b is None else b.data_ptr(), threads)


def layer_for(x, data_format, weight, bias, stride, padding, output_padding, dilation, threads):
    """(pack, GeometryLayer, output shape in NCDHW order) for input x, in data_format's memory layout.

    Raises Unsupported where the core rejects the geometry.
    """
    entry = _weight_entry(weight)
    key = (id(bias), stride, padding, output_padding, dilation, data_format, threads)
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
    try:
        if pack.root is None:
            layer = pack.root = _build_root(shape, data_format, weight, bias, stride, padding, output_padding,
                                            dilation, threads)
        else:
            layer = pack.root.reshape(list(shape))
    except _core.Error as e:
        pack.layers[shape] = None
        raise Unsupported(str(e)) from e
    _stats["layers"] += 1
    out = layer.output_shape
    if data_format == "channels_last":
        out = [out[0], out[4], out[1], out[2], out[3]]
    found = pack.layers[shape] = (layer, torch.Size(out))
    return (pack, *found)


def stats():
    """Weight packs and specialized layers made so far, and the weight tensors with live packs."""
    return {"packs": _stats["packs"], "layers": _stats["layers"], "live_weights": len(_by_weight)}


def clear():
    _by_weight.clear()
