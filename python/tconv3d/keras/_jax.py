"""JAX backend: the XLA FFI op of tconv3d.jax, one Op per layer."""
import jax


def unsupported(layer, inputs):
    if jax.default_backend() != "cpu":
        return f"JAX's default device is {jax.default_backend()}, tconv3d runs on the CPU"
    return None


def call(layer, inputs):
    from tconv3d.jax import Op

    state = layer._tconv3d_state()
    op = state.jax_op
    if op is None:
        # Keras's own activation function, so gradients match Keras exactly.
        op = Op(state.config, threads=layer.tconv3d_threads, activation=layer.activation)
        state.jax_op = op
    bias = layer.bias.value if layer.use_bias else None
    return op(inputs, layer.kernel.value, bias)
