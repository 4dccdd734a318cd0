"""accelerate(model) and load_model(path): every Conv3DTranspose through tconv3d."""
import keras

from tconv3d.keras._layer import Conv3DTranspose


def accelerate(model, *, threads=0):
    """Makes every keras.layers.Conv3DTranspose of `model` (nested models and layers included) run
    through tconv3d, in place, and returns the model.

    The layers keep their weights, names and connections: each becomes an
    instance of tconv3d.keras.Conv3DTranspose (a subclass with the same
    state), so Functional, Sequential and subclassed models all work. User
    subclasses of Conv3DTranspose keep their own class (their call may differ).
    """
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(f"model: expected a Keras model or layer, got {type(model).__name__}")
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if type(layer) is keras.layers.Conv3DTranspose or type(layer) is Conv3DTranspose:
            layer.__class__ = Conv3DTranspose
            layer.tconv3d_threads = int(threads)
    # Compiled predict/train functions traced the old call; drop them.
    for attribute in ("predict_function", "train_function", "test_function"):
        if getattr(model, attribute, None) is not None:
            setattr(model, attribute, None)
    return model


def load_model(path, *, threads=0, **kwargs):
    """keras.models.load_model(path, **kwargs) followed by accelerate()."""
    return accelerate(keras.models.load_model(path, **kwargs), threads=threads)
