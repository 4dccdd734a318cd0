"""TensorFlow backend: tf.numpy_function for the forward pass, tf.custom_gradient for Keras's gradient.

The forward pass runs tconv3d with the activation fused. The gradient
recomputes the pre-activation output with tconv3d (cheap), differentiates
Keras's activation with a tape, and takes dx and dkernel from a tape over
Keras's own ops.conv_transpose on TensorFlow.
"""
import numpy as np
import tensorflow as tf
from keras import ops


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


def _run(spec, x, kernel, bias, like):
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
    linear = layer._tconv3d_specializer(True, _threads(layer))
    x = tf.convert_to_tensor(inputs)
    kernel = tf.convert_to_tensor(layer.kernel.value)
    out_shape = _static_output_shape(fused, x)
    if x.shape.rank == 5 and all(d is not None for d in x.shape[1:]):
        fused.output_shape([1] + [int(d) for d in x.shape[1:]])  # a bad shape raises here, with the message

    def gradients(x, kernel, bias, dy):
        z = _run(linear, x, kernel, bias, tf.TensorShape(None))
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
            return _run(fused, x, kernel, bias, out_shape), lambda dy: gradients(x, kernel, bias, dy)

        return apply(x, kernel, tf.convert_to_tensor(layer.bias.value))

    @tf.custom_gradient
    def apply_no_bias(x, kernel):
        return _run(fused, x, kernel, None, out_shape), lambda dy: gradients(x, kernel, None, dy)

    return apply_no_bias(x, kernel)
