"""tconv3d.keras: a drop-in Keras 3 Conv3DTranspose computed by tconv3d.

    model = tconv3d.keras.accelerate(model)          # every Conv3DTranspose, nested models too
    model = tconv3d.keras.load_model("model.keras")  # keras.models.load_model + accelerate

Runs on CPU under the JAX (XLA FFI op), torch (autograd.Function) and
TensorFlow (registered op, or numpy_function without it, + custom_gradient) backends, gradients included;
anything else falls back to Keras's own computation with one warning.
"""
from tconv3d.keras._accelerate import accelerate, load_model
from tconv3d.keras._layer import Conv3DTranspose

__all__ = ["Conv3DTranspose", "accelerate", "load_model"]
