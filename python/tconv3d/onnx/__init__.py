"""tconv3d inside ONNX Runtime: 5-D ConvTranspose nodes run by tconv3d.

    import tconv3d.onnx
    sess = tconv3d.onnx.session("decoder.onnx", threads=2)   # an onnxruntime.InferenceSession
    y, = sess.run(None, {"x": x})

or by hand:

    model = tconv3d.onnx.accelerate("decoder.onnx")          # an onnx.ModelProto
    so = onnxruntime.SessionOptions()
    so.register_custom_ops_library(tconv3d.onnx.custom_ops_library())
    sess = onnxruntime.InferenceSession(model.SerializeToString(), so)

The ops are Python custom ops of onnxruntime-extensions (domain
ai.onnx.contrib), which call tconv3d's C++ library; no ONNX Runtime C headers
are shipped by any Debian or PyPI package, so no native ORT op library is
built. Needs the packages onnx, onnxruntime and onnxruntime-extensions.
"""
try:
    import onnx as _onnx  # noqa: F401
    import onnxruntime as _ort
    import onnxruntime_extensions as _ortx  # noqa: F401
except ImportError as _e:
    raise ImportError(f"tconv3d.onnx needs onnx, onnxruntime and onnxruntime-extensions "
                      f"(pip install onnx onnxruntime onnxruntime-extensions): {_e}") from _e

from tconv3d.onnx import _kernels, _rewrite

DOMAIN = _kernels.DOMAIN

__all__ = ["DOMAIN", "accelerate", "clear_cache", "custom_ops_library", "register", "rewritten_nodes", "session"]


def accelerate(model, threads=0, skipped=None):
    """A copy of `model` whose 5-D ConvTranspose nodes tconv3d can run are moved to tconv3d.

    model: a path, serialized bytes or an onnx.ModelProto (not changed).
    Returns an onnx.ModelProto. A node is moved when its weight (and bias)
    are float32 initializers and tconv3d takes its attributes (group=1, pads,
    auto_pad, output_padding, output_shape, strides, dilations, kernel_shape:
    the same reader as tconv3d.load_model); every other node stays on ONNX
    Runtime's kernel, and so does any input shape tconv3d cannot run at run
    time (the moved node keeps the original as the else branch of an If).
    threads: tconv3d's threads per node (0: all OpenMP allows).
    skipped: a list to which (node name, reason) is appended for each 5-D
    ConvTranspose left on ONNX Runtime's kernel.
    The weights are registered in this process (see register()).
    """
    return _rewrite.accelerate(model, threads, skipped)


def register(model):
    """Registers the weights of an accelerated model in this process; returns how many nodes.

    accelerate() and session() do this themselves; call it when a process
    loads an accelerated model saved by another one into its own
    InferenceSession. Without it the moved nodes run on ONNX Runtime's kernel.
    """
    return _rewrite.register(model)


def custom_ops_library():
    """The path to pass to onnxruntime.SessionOptions.register_custom_ops_library."""
    return _kernels.library_path()


def rewritten_nodes(model):
    """Names of the nodes of an accelerated model that run through tconv3d."""
    return _rewrite.rewritten_nodes(model)


def clear_cache():
    """Forgets the registered weights and packed layers of every model in this process."""
    _kernels.clear()


def session(model, sess_options=None, threads=0, providers=None):
    """An onnxruntime.InferenceSession of accelerate(model) with tconv3d's ops registered.

    threads > 0 sets both ONNX Runtime's intra_op_num_threads (unless
    sess_options already sets it) and tconv3d's threads per node. A model
    accelerate() already rewrote is only registered, not rewritten again.
    """
    proto = _rewrite.load(model)
    if _rewrite.rewritten_nodes(proto):
        _rewrite.register(proto)
    else:
        proto = _rewrite.accelerate(proto, threads)
    so = sess_options if sess_options is not None else _ort.SessionOptions()
    if threads and not so.intra_op_num_threads:
        so.intra_op_num_threads = int(threads)
    try:
        so.get_session_config_entry("session.intra_op.allow_spinning")
    except RuntimeError:  # not set by the caller
        # ONNX Runtime's idle pool threads spin by default, on the cores
        # tconv3d's threads then compute on.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.register_custom_ops_library(custom_ops_library())
    return _ort.InferenceSession(proto.SerializeToString(), so,
                                 providers=providers or ["CPUExecutionProvider"])
