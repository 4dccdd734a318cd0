"""tconv3d.Layer: one Keras Conv3DTranspose with fixed weights, on NumPy arrays."""
import numpy as np

from tconv3d import _core
from tconv3d._arrays import as_bf16_bits, as_float32, bfloat16, dtype_name, from_bf16_bits
from tconv3d._config import config_json


class Layer:
    """A Keras Conv3DTranspose layer run by tconv3d.

    config: Keras's layer config (get_config() dict, {"class_name", "config"}
    dict, or JSON text). kernel: (kd, kh, kw, filters, in_channels) float32
    (Keras's layout); bias: (filters,) or None. The weights are copied, so
    later changes to the caller's arrays do not reach the layer.

    The layer specializes (plans, compiles, packs) on the first call for the
    input shape it sees and keeps that specialization for the next calls of
    the same shape; input_shape specializes at construction instead.
    threads=0 uses all cores OpenMP allows (OMP_NUM_THREADS).

    dtype="bfloat16" computes as Keras's mixed_bfloat16 policy: inputs and
    outputs are bf16 (ml_dtypes.bfloat16 arrays), the weights stay float32
    (the Keras variables) and the layer rounds the kernel to bf16 once;
    accumulation, bias and activation are float32 and the result is rounded
    to bf16 once. It needs AVX512_BF16 (tconv3d.Error otherwise). A layer
    takes only its own dtype: nothing is converted silently.
    """

    def __init__(self, config, kernel, bias=None, *, input_shape=None, backend="auto", isa="auto", threads=0,
                 flavor=None, dtype="float32"):
        self._dtype = dtype_name(dtype)
        self._spec = _core.Specializer(config_json(config), flavor, backend, isa, int(threads), False, self._dtype)
        # Copies: the caller may change or free its arrays afterwards.
        self._kernel = np.array(as_float32(kernel, "kernel"), copy=True)
        self._bias = None if bias is None else np.array(as_float32(bias, "bias"), copy=True)
        self._spec.check_weights(list(self._kernel.shape), None if self._bias is None else list(self._bias.shape))
        if input_shape is not None:
            # Specializing needs an input; zeros of the right shape are enough.
            self(np.zeros(tuple(input_shape), self._numpy_dtype()))

    def _numpy_dtype(self):
        return bfloat16() if self._dtype == "bfloat16" else np.float32

    def __call__(self, x):
        """Runs the layer on x (the layer's dtype and the config's data format); returns a new array."""
        # The weights were copied at construction and never change: no comparison per call.
        if self._dtype == "bfloat16":
            return from_bf16_bits(self._spec.forward_bf16(as_bf16_bits(x, "x"), self._kernel, self._bias, False))
        return self._spec.forward(as_float32(x, "x"), self._kernel, self._bias, False)

    def gradients(self, x, dy, y=None):
        """(dx, dkernel, dbias) for the output gradient dy: the layer's backward pass.

        y is the output of self(x) when the caller holds it (computed here
        otherwise, unless the activation is linear). The activation's
        derivative is Keras's (as JAX differentiates it); dbias is None
        without a bias.

        A bf16 layer takes bf16 x, dy and y and returns a bf16 dx with
        float32 dkernel and dbias (the gradients of Keras's float32
        variables), from Layer::backward_bf16: the bf16-rounded kernel,
        float32 accumulation, dx rounded to bf16 once.
        """
        if self._dtype == "bfloat16":
            return self._bf16_gradients(x, dy, y)
        x, dy = as_float32(x, "x"), as_float32(dy, "dy")
        if y is None and self._spec.activation != "linear":
            y = self(x)
        y = None if y is None else as_float32(y, "y")
        return self._spec.backward(x, self._kernel, self._bias, y, dy, True, True, True)

    def _bf16_gradients(self, x, dy, y):
        x, dy = as_bf16_bits(x, "x"), as_bf16_bits(dy, "dy")
        if y is None and self._spec.activation != "linear":
            y = self(x.view(bfloat16()))
        y = None if y is None else as_bf16_bits(y, "y")
        dx, dk, db = self._spec.backward_bf16(x, self._kernel, self._bias, y, dy, True, True, True)
        return from_bf16_bits(dx), dk, db

    def output_shape(self, input_shape):
        """The output shape for an input shape (after the activation)."""
        return tuple(self._spec.output_shape([int(d) for d in input_shape]))

    def _latest(self):
        return self._spec.latest()

    @property
    def kernel_name(self):
        """What runs for the most recent input shape (None before the first call)."""
        latest = self._latest()
        return None if latest is None else latest[0]

    @property
    def backend(self):
        latest = self._latest()
        return None if latest is None else latest[1]

    @property
    def isa(self):
        latest = self._latest()
        return None if latest is None else latest[2]

    @property
    def threads(self):
        latest = self._latest()
        return None if latest is None else latest[3]

    @property
    def dtype(self):
        """"float32" or "bfloat16": what the layer takes and returns."""
        return self._dtype

    @property
    def warnings(self):
        return list(self._spec.warnings)

    @property
    def kernel(self):
        return self._kernel

    @property
    def bias(self):
        return self._bias

    def __repr__(self):
        return (f"tconv3d.Layer(filters={self._spec.filters}, activation={self._spec.activation!r}, "
                f"data_format={self._spec.data_format!r}, kernel_name={self.kernel_name!r})")
