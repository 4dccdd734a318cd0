"""tconv3d.load_model: the transposed convolutions of a model file, by name."""
import os

from tconv3d import _core
from tconv3d._arrays import as_float32


class ModelLayer:
    """One transposed convolution of a model file; call it on a float32 array."""

    def __init__(self, ref):
        self._ref = ref

    def __call__(self, x):
        return self._ref.forward(as_float32(x, "x"))

    def output_shape(self, input_shape):
        return tuple(self._ref.output_shape([int(d) for d in input_shape]))

    def describe(self, input_shape):
        """(kernel_name, backend, isa) of the specialization for input_shape."""
        return self._ref.description([int(d) for d in input_shape])

    name = property(lambda self: self._ref.name)
    op = property(lambda self: self._ref.op)
    summary = property(lambda self: self._ref.summary)
    input_shape = property(lambda self: tuple(self._ref.input_shape))
    data_format = property(lambda self: self._ref.data_format)
    warnings = property(lambda self: list(self._ref.warnings))
    specialized_shapes = property(lambda self: [tuple(s) for s in self._ref.specialized_shapes])

    def __repr__(self):
        return f"tconv3d.ModelLayer({self.name!r}: {self.summary})"


def load_model(path, *, backend="auto", isa="auto", threads=0, flavor=None, config_path=None):
    """Loads every Conv3DTranspose (Keras .keras/.h5) or 5-D ConvTranspose (.onnx) of a model file.

    Returns {name: ModelLayer}; nested Keras models name layers "outer/inner".
    A bare .weights.h5 needs config_path (the model's JSON config).
    """
    model = _core.load_model(os.fspath(path), backend, isa, int(threads), flavor,
                             None if config_path is None else os.fspath(config_path))
    return {ref.name: ModelLayer(ref) for ref in _core.model_layers(model)}
