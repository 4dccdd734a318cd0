"""TensorFlow backend: tconv3d's registered op (or tf.numpy_function) forward, tf.custom_gradient for Keras's gradient.

The forward pass runs tconv3d with the activation fused. It goes through the
op library _tf_op.so (python/src/tf_op.cc), built when TensorFlow was
importable at build time: a kernel like TensorFlow's own, which runs without
Python, the GIL or copies. Without the library (or when it does not load:
TensorFlow upgraded since the build) it goes through tf.numpy_function, which
pays all three on every call; see op_library_status().

The gradient recomputes the pre-activation output with tconv3d (a linear
activation skips this: the output is the pre-activation), differentiates
Keras's activation with a tape (so its kinks are Keras-on-TensorFlow's), and
takes dx, dkernel and dbias from tconv3d's backward kernels (through
tf.numpy_function: a backward pass costs far more than its overhead).

Under mixed_bfloat16 the same runs in bf16: the op's T is bfloat16 (x and y
cross as their 16-bit bits, no copies), the kernel and bias are the float32
variables (tconv3d rounds the kernel to bf16, as Keras's cast does), and the
gradient is Layer::backward_bf16 (dx bf16, dkernel and dbias float32).
"""
import functools
import os
import weakref

import keras
import numpy as np
import tensorflow as tf

from tconv3d import _core

try:  # Reads the float32 variables themselves under mixed_bfloat16.
    from keras.src.backend import AutocastScope as _AutocastScope
except ImportError:  # pragma: no cover - a Keras without it
    _AutocastScope = None

_OP_LIBRARY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_tf_op.so")


@functools.cache
def _load_op_library():
    """(the loaded op module, None) or (None, why the library is not used)."""
    if not os.path.isfile(_OP_LIBRARY):
        return None, "tconv3d was built without its TensorFlow op (tensorflow was not importable at build time)"
    try:
        module = tf.load_op_library(_OP_LIBRARY)
        _core._bind_tf_op(_OP_LIBRARY)
    except (tf.errors.OpError, OSError, ValueError) as e:  # e.g. built against another TensorFlow
        return None, f"{_OP_LIBRARY} does not load: {e}"
    return module, None


def op_library_status():
    """None when the forward pass runs as tconv3d's registered TensorFlow op, else why it uses tf.numpy_function."""
    return _load_op_library()[1]


def _bf16(t):
    return keras.backend.standardize_dtype(getattr(t, "dtype", "float32")) == "bfloat16"


def _dtype(t):
    return "bfloat16" if _bf16(t) else "float32"


def unsupported(layer, inputs):
    device = getattr(inputs, "device", "") or ""
    if "GPU" in device.upper():
        return f"the input is on {device}, tconv3d runs on the CPU"
    if _bf16(inputs):
        if _AutocastScope is None:
            return "this Keras has no AutocastScope to read the float32 kernel variable with"
        # A config bf16 cannot run (an axis activation) raises tconv3d.Error here.
        layer._tconv3d_specializer(False, _threads(layer), "bfloat16")
    return None


# tf.numpy_function hands bf16 tensors over as their bits: a bitcast is free
# and the bits are what tconv3d's bf16 calls take (uint16 arrays).
def _to_bits(t):
    return tf.bitcast(t, tf.uint16) if t.dtype == tf.bfloat16 else t


def _from_bits(t, dtype):
    return tf.bitcast(t, tf.bfloat16) if dtype == "bfloat16" else t


def _linear_gradients(layer, x, kernel, bias, dz):
    """(dx, dkernel[, dbias]) of the linear layer for dz, by tconv3d's backward kernels."""
    dtype = _dtype(x)
    spec = layer._tconv3d_specializer(True, _threads(layer), dtype)
    backward = spec.backward_bf16 if dtype == "bfloat16" else spec.backward

    def compute(x, kernel, dz, *bias):
        b = np.ascontiguousarray(bias[0]) if bias else None
        dx, dk, db = backward(np.ascontiguousarray(x), np.ascontiguousarray(kernel), b, None,
                              np.ascontiguousarray(dz), True, True, b is not None)
        return (dx, dk, db) if b is not None else (dx, dk)

    dz = tf.cast(dz, x.dtype)  # the cotangent of a bf16 output is bf16; the cast is a no-op then
    args = [_to_bits(x), kernel, _to_bits(dz)] + ([bias] if bias is not None else [])
    out_types = [tf.uint16 if dtype == "bfloat16" else tf.float32] + [tf.float32] * (2 if bias is not None else 1)
    grads = tf.numpy_function(compute, args, out_types, stateful=False)
    grads = [_from_bits(grads[0], dtype)] + list(grads[1:])
    for g, like in zip(grads, [x, kernel] + ([bias] if bias is not None else [])):
        g.set_shape(like.shape)
    return grads


def _cache_id(layer, linear, threads, dtype):
    """The handle the op names the layer's specializer by, registered once per layer (released with it)."""
    state = layer._tconv3d_state()
    ids = getattr(state, "tf_cache_ids", None)
    if ids is None:
        ids = state.tf_cache_ids = {}
    key = (linear, threads, dtype)
    if key not in ids:
        ids[key] = layer._tconv3d_specializer(linear, threads, dtype).register_for_ffi()
        weakref.finalize(state, _core.release_ffi, ids[key])
    return ids[key]


def _run(layer, linear, x, kernel, bias, like):
    threads = _threads(layer)
    dtype = _dtype(x)
    op = _load_op_library()[0]
    if op is not None:
        # The op takes a bias tensor always; an empty one for a layer without bias. Its T follows x.
        b = bias if bias is not None else tf.zeros([0], tf.float32)
        y = op.tconv3d_forward(x, kernel, b, cache_id=_cache_id(layer, linear, threads, dtype))
    else:
        spec = layer._tconv3d_specializer(linear, threads, dtype)
        forward = spec.forward_bf16 if dtype == "bfloat16" else spec.forward

        def compute(x, kernel, *bias):
            return forward(np.ascontiguousarray(x), np.ascontiguousarray(kernel),
                           np.ascontiguousarray(bias[0]) if bias else None, True)

        args = [_to_bits(x), kernel] + ([bias] if bias is not None else [])
        y = _from_bits(tf.numpy_function(compute, args, tf.uint16 if dtype == "bfloat16" else tf.float32,
                                         stateful=False), dtype)
    y.set_shape(like)
    return y


def _static_output_shape(spec, x):
    shape = x.shape
    if shape.rank != 5 or any(d is None for d in shape[1:]):
        return tf.TensorShape([None] * 5)
    out = spec.output_shape([1] + [int(d) for d in shape[1:]])
    return tf.TensorShape([shape[0]] + list(out[1:]))


def _threads(layer):
    # TensorFlow's own intra-op setting when one was made (0: TF uses every core, and so does tconv3d).
    return layer.tconv3d_threads or tf.config.threading.get_intra_op_parallelism_threads()


def _weights(layer, bf16):
    """The kernel and bias tensors (bias None without one): under mixed_bfloat16 the float32 variables
    themselves, not the bf16 casts Keras would hand call() (tconv3d rounds the kernel; gradients stay float32)."""
    def read():
        kernel = tf.convert_to_tensor(layer.kernel.value)
        return kernel, tf.convert_to_tensor(layer.bias.value) if layer.use_bias else None

    if not bf16:
        return read()
    with _AutocastScope(None):
        return read()


def call(layer, inputs):
    x = tf.convert_to_tensor(inputs)
    fused = layer._tconv3d_specializer(False, _threads(layer), _dtype(x))
    kernel, bias = _weights(layer, _bf16(x))
    out_shape = _static_output_shape(fused, x)
    if x.shape.rank == 5 and all(d is not None for d in x.shape[1:]):
        fused.output_shape([1] + [int(d) for d in x.shape[1:]])  # a bad shape raises here, with the message

    def gradients(x, kernel, bias, dy):
        if layer.activation is keras.activations.linear:
            # y is z: the pre-activation output need not be recomputed.
            return _linear_gradients(layer, x, kernel, bias, dy)
        z = _run(layer, True, x, kernel, bias, tf.TensorShape(None))
        with tf.GradientTape() as tape:
            tape.watch(z)
            y = layer.activation(z)
        dz = tape.gradient(y, z, output_gradients=dy)
        return _linear_gradients(layer, x, kernel, bias, dz)

    if layer.use_bias:
        @tf.custom_gradient
        def apply(x, kernel, bias):
            return _run(layer, False, x, kernel, bias, out_shape), lambda dy: gradients(x, kernel, bias, dy)

        return apply(x, kernel, bias)

    @tf.custom_gradient
    def apply_no_bias(x, kernel):
        return _run(layer, False, x, kernel, None, out_shape), lambda dy: gradients(x, kernel, None, dy)

    return apply_no_bias(x, kernel)
