"""TensorFlow backend: tconv3d's registered op (or tf.numpy_function) forward, tf.custom_gradient for Keras's gradient.

The forward pass runs tconv3d with the activation fused. It goes through the
op library _tf_op.so (python/src/tf_op.cc), built when TensorFlow was
importable at build time: a kernel like TensorFlow's own, which runs without
Python, the GIL or copies. Without the library (or when it does not load:
TensorFlow upgraded since the build) it goes through tf.numpy_function, which
pays all three on every call; see op_library_status().

The gradient recomputes the pre-activation output with tconv3d (cheap),
differentiates Keras's activation with a tape, and takes dx and dkernel from
a tape over Keras's own ops.conv_transpose on TensorFlow.
"""
import functools
import os
import weakref

import numpy as np
import tensorflow as tf
from keras import ops

from tconv3d import _core

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


def unsupported(layer, inputs):
    device = getattr(inputs, "device", "") or ""
    if "GPU" in device.upper():
        return f"the input is on {device}, tconv3d runs on the CPU"
    return None


def _keras_linear(layer, x, kernel, bias):
    y = ops.conv_transpose(x, kernel, strides=list(layer.strides), padding=layer.padding,
                           output_padding=layer.output_padding, dilation_rate=layer.dilation_rate,
                           data_format=layer.data_format)
    if bias is not None:
        shape = (1, 1, 1, 1, layer.filters) if layer.data_format == "channels_last" else (1, layer.filters, 1, 1, 1)
        y = y + tf.reshape(bias, shape)
    return y


def _cache_id(layer, linear, threads):
    """The handle the op names the layer's specializer by, registered once per layer (released with it)."""
    state = layer._tconv3d_state()
    ids = getattr(state, "tf_cache_ids", None)
    if ids is None:
        ids = state.tf_cache_ids = {}
    key = (linear, threads)
    if key not in ids:
        ids[key] = layer._tconv3d_specializer(linear, threads).register_for_ffi()
        weakref.finalize(state, _core.release_ffi, ids[key])
    return ids[key]


def _run(layer, linear, x, kernel, bias, like):
    threads = _threads(layer)
    op = _load_op_library()[0]
    if op is not None:
        # The op takes a bias tensor always; an empty one for a layer without bias.
        b = bias if bias is not None else tf.zeros([0], tf.float32)
        y = op.tconv3d_forward(x, kernel, b, cache_id=_cache_id(layer, linear, threads))
    else:
        spec = layer._tconv3d_specializer(linear, threads)

        def compute(x, kernel, *bias):
            return spec.forward(np.ascontiguousarray(x), np.ascontiguousarray(kernel),
                                np.ascontiguousarray(bias[0]) if bias else None, True)

        args = [x, kernel] + ([bias] if bias is not None else [])
        y = tf.numpy_function(compute, args, tf.float32, stateful=False)
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


def call(layer, inputs):
    fused = layer._tconv3d_specializer(False, _threads(layer))
    x = tf.convert_to_tensor(inputs)
    kernel = tf.convert_to_tensor(layer.kernel.value)
    out_shape = _static_output_shape(fused, x)
    if x.shape.rank == 5 and all(d is not None for d in x.shape[1:]):
        fused.output_shape([1] + [int(d) for d in x.shape[1:]])  # a bad shape raises here, with the message

    def gradients(x, kernel, bias, dy):
        z = _run(layer, True, x, kernel, bias, tf.TensorShape(None))
        with tf.GradientTape() as tape:
            tape.watch(z)
            y = layer.activation(z)
        dz = tape.gradient(y, z, output_gradients=dy)
        watched = [x, kernel] + ([bias] if bias is not None else [])
        with tf.GradientTape() as tape:
            tape.watch(watched)
            z_ref = _keras_linear(layer, x, kernel, bias)
        return tape.gradient(z_ref, watched, output_gradients=dz)

    if layer.use_bias:
        @tf.custom_gradient
        def apply(x, kernel, bias):
            return _run(layer, False, x, kernel, bias, out_shape), lambda dy: gradients(x, kernel, bias, dy)

        return apply(x, kernel, tf.convert_to_tensor(layer.bias.value))

    @tf.custom_gradient
    def apply_no_bias(x, kernel):
        return _run(layer, False, x, kernel, None, out_shape), lambda dy: gradients(x, kernel, None, dy)

    return apply_no_bias(x, kernel)
