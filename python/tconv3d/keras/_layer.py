"""tconv3d.keras.Conv3DTranspose: Keras's layer, computed by tconv3d on CPU."""
import warnings

import keras

from tconv3d import _core
from tconv3d._config import config_json

# Saved models name Keras's own class, so they load in plain Keras without
# tconv3d (and tconv3d.keras.load_model accelerates them again). Keras looks
# a class's public name up in this table; there is no public way to set it.
try:
    from keras.src import api_export as _api_export
except ImportError:  # pragma: no cover - a Keras without the table
    _api_export = None


class Conv3DTranspose(keras.layers.Conv3DTranspose):
    """keras.layers.Conv3DTranspose with the same arguments, weights and get_config().

    `tconv3d_threads` (attribute, default 0: the backend's own thread count
    under torch, all cores otherwise) sets tconv3d's threads.

    Under the mixed_bfloat16 policy (JAX, torch and TensorFlow backends, a CPU with AVX512_BF16)
    tconv3d computes in bf16: bf16 input and output, the float32 kernel
    variable rounded to bf16 by tconv3d (to nearest even, as Keras's cast).
    Keras rounds to bf16 after the convolution, after the bias add and after
    the activation; tconv3d accumulates, adds the float32 bias and applies
    the activation in float32 and rounds once, so results differ from
    Keras's within bf16 rounding.
    """

    tconv3d_threads = 0

    def call(self, inputs):
        runner = self._tconv3d_runner(inputs)
        if runner is None:
            return super().call(inputs)
        return runner(inputs)

    # The per-backend runner, or None (after one warning) where tconv3d cannot run.
    def _tconv3d_runner(self, inputs):
        backend = keras.config.backend()
        reason = None
        dtype = keras.backend.standardize_dtype(getattr(inputs, "dtype", self.compute_dtype))
        bf16 = (self.compute_dtype, dtype, self.variable_dtype) == ("bfloat16", "bfloat16", "float32")
        if not bf16 and (self.compute_dtype != "float32" or dtype != "float32"):
            reason = (f"dtype {dtype} with compute dtype {self.compute_dtype} and variable dtype {self.variable_dtype} "
                      f"(tconv3d computes float32, and bfloat16 with float32 variables: mixed_bfloat16)")
        elif bf16 and backend not in ("jax", "torch", "tensorflow"):
            reason = (f"mixed_bfloat16 on the {backend} backend "
                      f"(tconv3d's bf16 runs on the JAX, torch and TensorFlow backends)")
        elif bf16 and _core.bf16_unavailable() is not None:
            reason = _core.bf16_unavailable()
        else:
            try:
                if backend == "jax":
                    from tconv3d.keras import _jax as impl
                elif backend == "torch":
                    from tconv3d.keras import _torch as impl
                elif backend == "tensorflow":
                    from tconv3d.keras import _tf as impl
                else:
                    impl = None
                    reason = f"the {backend} backend"
                if impl is not None and getattr(impl, "symbolic", lambda x: False)(inputs):
                    return None  # shape inference (torch's meta tensors): nothing is computed
                if impl is not None:
                    reason = impl.unsupported(self, inputs)
                    if reason is None:
                        return lambda x: impl.call(self, x)
            except (ValueError, TypeError, ImportError, NotImplementedError) as e:
                reason = str(e)
        self._tconv3d_fallback(reason)
        return None

    def _tconv3d_fallback(self, reason):
        if not getattr(self, "_tconv3d_warned", False):
            self._tconv3d_warned = True
            warnings.warn(f"tconv3d.keras: layer {self.name!r} runs through Keras's own Conv3DTranspose: {reason}",
                          RuntimeWarning, stacklevel=3)

    def _tconv3d_state(self):
        """Per-layer state the backends keep: specializers (packed weights) and the JAX op."""
        state = getattr(self, "_tconv3d", None)
        if state is None:
            state = _State(config_json(self.get_config()))
            self._tconv3d = state
        return state

    def _tconv3d_specializer(self, linear, threads=0, dtype="float32"):
        state = self._tconv3d_state()
        key = (linear, threads, dtype)
        if key not in state.specializers:
            state.specializers[key] = _core.Specializer(state.config, None, "auto", "auto", threads, linear, dtype)
        return state.specializers[key]


class _State:
    """A plain object: Keras would wrap (and copy) a dict assigned to a layer attribute."""

    def __init__(self, config):
        self.config = config
        self.specializers = {}  # (linear, threads, dtype) -> _core.Specializer
        self.jax_op = None
        self.jax_op_bf16 = None  # mixed_bfloat16

    def all_specializers(self):
        """Every specializer, the JAX op's included (for tests and reports)."""
        found = list(self.specializers.values())
        for op in (self.jax_op, self.jax_op_bf16):
            if op is not None:
                found += op.specializers()
        return found


if _api_export is not None:
    _api_export.REGISTERED_OBJS_TO_NAMES[Conv3DTranspose] = "keras.layers.Conv3DTranspose"
else:  # pragma: no cover
    keras.saving.register_keras_serializable(package="tconv3d")(Conv3DTranspose)
