"""JAX backend: the XLA FFI op of tconv3d.jax, one Op per layer and dtype (float32, mixed_bfloat16)."""
import jax
import keras

try:  # Reads the float32 variable itself under mixed_bfloat16 (tconv3d rounds it to bf16).
    from keras.src.backend import AutocastScope as _AutocastScope
except ImportError:  # pragma: no cover - a Keras without it
    _AutocastScope = None


def _bf16(inputs):
    return keras.backend.standardize_dtype(inputs.dtype) == "bfloat16"


def unsupported(layer, inputs):
    if jax.default_backend() != "cpu":
        return f"JAX's default device is {jax.default_backend()}, tconv3d runs on the CPU"
    if _bf16(inputs):
        if _AutocastScope is None:
            return "this Keras has no AutocastScope to read the float32 kernel variable with"
        _op(layer, "bfloat16")  # a config bf16 cannot run (an axis activation) raises tconv3d.Error here
    return None


def _op(layer, dtype):
    from tconv3d.jax import Op

    state = layer._tconv3d_state()
    attribute = "jax_op_bf16" if dtype == "bfloat16" else "jax_op"
    op = getattr(state, attribute)
    if op is None:
        # Keras's own activation function, so gradients match Keras exactly.
        op = Op(state.config, threads=layer.tconv3d_threads, activation=layer.activation, dtype=dtype)
        setattr(state, attribute, op)
    return op


def call(layer, inputs):
    if not _bf16(inputs):
        bias = layer.bias.value if layer.use_bias else None
        return _op(layer, "float32")(inputs, layer.kernel.value, bias)
    # mixed_bfloat16: Keras would hand call() the variables cast to bf16; tconv3d
    # takes them float32 (the kernel gradient then comes out float32 too).
    with _AutocastScope(None):
        kernel = layer.kernel.value
        bias = layer.bias.value if layer.use_bias else None
    return _op(layer, "bfloat16")(inputs, kernel, bias)
