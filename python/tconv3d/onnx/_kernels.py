"""The two Python custom ops tconv3d adds to ONNX Runtime (through onnxruntime-extensions).

Every rewritten ConvTranspose becomes, in the model (see _rewrite.py):

    shape = Shape(X)
    ok    = ai.onnx.contrib::TConv3dReady(shape)            attribute key
    Y     = If(ok, then: ai.onnx.contrib::TConv3dConvTranspose(X),
                   else: the original ConvTranspose(X, W, B))

TConv3dReady builds (plans, compiles, packs) the tconv3d layer for the input
shape the first time it sees it and answers whether tconv3d runs it; a shape,
a node or weights tconv3d cannot take go to ONNX Runtime's own kernel, which
also gives ONNX Runtime's own error for input ONNX itself rejects. The
branch is needed because onnxruntime-extensions aborts the process on any
exception raised inside a Python op: neither op may raise, so the ready check
turns every failure into "not ours" instead.

Weights never travel with a call: they are taken from the model's
initializers once (register()), keyed by the initializer's name and a digest
of its content (and the node's attributes), so each is packed once per input
shape, not on every run.
"""
import hashlib
import logging
import threading

import numpy as np

import onnxruntime_extensions as _ortx
from onnxruntime_extensions import _ocos

from tconv3d import _core

# The Python-op machinery of onnxruntime-extensions this module builds on
# (checked with 0.15.2 and onnxruntime 1.32): say so if a release moved it.
if not all(hasattr(_ocos, name) for name in ("Opdef", "_on_pyop_invocation")) or \
        not hasattr(_ortx.PyCustomOpDef, "install_hooker"):
    raise ImportError(f"tconv3d.onnx: onnxruntime-extensions {getattr(_ortx, '__version__', '?')} lacks the "
                      "Python-op hooks tconv3d.onnx uses (Opdef, _on_pyop_invocation, install_hooker); "
                      "0.15 has them")

DOMAIN = _ortx.default_opset_domain()  # "ai.onnx.contrib": the only domain Python ops can live in
READY_OP = "TConv3dReady"
CONV_OP = "TConv3dConvTranspose"

_log = logging.getLogger("tconv3d.onnx")
_PyOp = _ortx.PyCustomOpDef

# key -> (attributes as _core takes them, weight, bias or None): the weights of
# every node registered in this process.
_weights = {}
# (key, threads) -> _core.OnnxConvTranspose: one packed op per thread count.
_ops = {}
_lock = threading.Lock()
_reported = set()  # (key, reason) logged once, not on every run
# Per thread: (key, threads, input shape) -> the output array TConv3dConvTranspose
# computes into. onnxruntime-extensions copies it into ONNX Runtime's tensor
# before the op returns, so a thread can reuse it on its next call; a new
# array every call would cost its page faults (about 1 ms for 16 MB).
_outputs = threading.local()
_MAX_OUTPUTS = 16  # per thread: beyond it (many dynamic shapes) the oldest goes
_generation = [0]  # bumped by clear(): every thread's arrays are then stale


def weight_key(name, attributes, weight, bias):
    """The cache key of a node: its weight initializer's name and a digest of the weights and attributes."""
    h = hashlib.blake2b(digest_size=12)
    h.update(repr(attributes).encode())
    h.update(repr(weight.shape).encode())
    h.update(np.ascontiguousarray(weight).tobytes())
    if bias is not None:
        h.update(np.ascontiguousarray(bias).tobytes())
    return f"{name}:{h.hexdigest()}"


def make_op(attributes, weight, bias, threads):
    """A _core.OnnxConvTranspose; raises tconv3d.Error for a node tconv3d cannot run."""
    return _core.OnnxConvTranspose(attributes, weight, bias, int(threads))


def register(key, attributes, weight, bias):
    """Makes a node's weights available to the ops under `key` (idempotent)."""
    with _lock:
        _weights.setdefault(key, (attributes, np.ascontiguousarray(weight, np.float32),
                                  None if bias is None else np.ascontiguousarray(bias, np.float32)))


def clear():
    """Forgets every registered node and packed layer of this process."""
    with _lock:
        _weights.clear()
        _ops.clear()
        _reported.clear()
        _generation[0] += 1


def op_for(key, threads):
    """The packed op for a key, or None when the key's weights were never registered here."""
    with _lock:
        op = _ops.get((key, threads))
        if op is not None:
            return op
        entry = _weights.get(key)
    if entry is None:
        return None
    op = make_op(*entry, threads)
    with _lock:
        return _ops.setdefault((key, threads), op)


def _report_once(key, reason):
    if (key, reason) not in _reported:
        _reported.add((key, reason))
        _log.warning("tconv3d.onnx: node %s runs on ONNX Runtime's own ConvTranspose: %s", key, reason)


def _threads(attrs):
    try:
        return max(0, int(attrs.get("threads", "0") or 0))
    except ValueError:
        return 0


def _ready(shape, key="", threads="0"):
    try:
        op = op_for(key, _threads({"threads": threads}))
        if op is None:
            _report_once(key, "its weights were not registered in this process "
                              "(use tconv3d.onnx.session() or tconv3d.onnx.register(model))")
            return np.array(False)
        op.prepare([int(d) for d in shape])
        return np.array(True)
    except Exception as e:  # noqa: BLE001 - an exception here would abort the process
        _report_once(key, f"input shape {tuple(int(d) for d in shape)}: {e}")
        return np.array(False)


def _output_array(op, slot):
    cache = getattr(_outputs, "arrays", None)
    if cache is None or getattr(_outputs, "generation", None) != _generation[0]:
        cache = _outputs.arrays = {}
        _outputs.generation = _generation[0]
    out = cache.get(slot)
    if out is None:
        if len(cache) >= _MAX_OUTPUTS:
            del cache[next(iter(cache))]
        out = cache[slot] = np.empty(op.output_shape(list(slot[2])), np.float32)
    return out


def _conv(x, key="", threads="0"):
    op = None
    try:
        t = _threads({"threads": threads})
        op = op_for(key, t)
        out = _output_array(op, (key, t, x.shape))
        op.forward_into(x, out)
        return out
    except Exception as e:  # noqa: BLE001 - an exception here would abort the process
        # Unreachable in practice: TConv3dReady built this exact shape first.
        # Returning is the only way out that does not kill the process; NaN
        # makes the failure visible in the result, and the log says why.
        _log.error("tconv3d.onnx: node %s failed on input %s: %s", key, getattr(x, "shape", None), e)
        try:
            shape = op.output_shape(list(x.shape))
        except Exception:  # noqa: BLE001
            shape = (0,)
        return np.full(shape, np.nan, np.float32)


_ready_def = _ocos.Opdef.create(_ready, op_type=READY_OP, inputs=[_PyOp.dt_int64], outputs=[_PyOp.dt_bool],
                                attrs={"key": _PyOp.dt_string, "threads": _PyOp.dt_string})
_conv_def = _ocos.Opdef.create(_conv, op_type=CONV_OP, inputs=[_PyOp.dt_float], outputs=[_PyOp.dt_float],
                               attrs={"key": _PyOp.dt_string, "threads": _PyOp.dt_string})
_ours = {_ready_def._id: _ready, _conv_def._id: _conv}
_default_hook = _ocos._on_pyop_invocation


def _hook(op_id, feed, attributes):
    # onnxruntime-extensions' own hook returns the output as a Python list
    # (flatten().tolist()): seconds for a large volume. Its C++ side takes a
    # NumPy array just as well, so our ops hand theirs over directly; every
    # other Python op keeps the default path.
    body = _ours.get(op_id)
    if body is None:
        return _default_hook(op_id, feed, attributes)
    result = body(*feed, **attributes)
    return (op_id, result.shape, result)


_PyOp.install_hooker(_hook)


def library_path():
    return _ortx.get_library_path()
