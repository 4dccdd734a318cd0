"""Shared helpers: the Keras backend of this session, random layer configs, tolerances.

Keras picks its backend once per process (KERAS_BACKEND), so
scripts/test-python.sh runs one pytest session per backend; tests that need a
particular backend skip, with the reason, in the others.
"""
import contextlib
import os
import pathlib
import warnings

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
BACKEND = os.environ["KERAS_BACKEND"]
REPO = pathlib.Path(__file__).resolve().parents[2]
MODELS = REPO / "tests" / "data" / "models"

ACTIVATIONS = ["linear", "relu", "sigmoid", "tanh", "elu", "leaky_relu", "gelu", "silu", "softplus", "softmax",
               "relu6", "selu", "hard_sigmoid", "exponential", "mish"]


def random_config(rng, *, data_format=None, activation=None, padding=None):
    """A random valid Keras Conv3DTranspose setup: (get_config()-style dict, input shape).

    Covers both paddings, strides 1..3 (and stride > kernel), dilation (with
    stride 1, as every Keras backend accepts), output_padding, both data
    formats, odd sizes and channel counts that are no multiple of 8 or 16.
    """
    kernel = [int(k) for k in rng.integers(1, 5, size=3)]
    dilate = rng.random() < 0.25
    strides = [1, 1, 1] if dilate else [int(s) for s in rng.integers(1, 4, size=3)]
    dilation = [int(d) for d in rng.integers(1, 3, size=3)] if dilate else [1, 1, 1]
    output_padding = None
    if rng.random() < 0.3 and not dilate:
        output_padding = [int(rng.integers(0, s)) if s > 1 else 0 for s in strides]
    config = {
        "filters": int(rng.integers(1, 20)),
        "kernel_size": kernel,
        "strides": strides,
        "padding": padding or str(rng.choice(["valid", "same"])),
        "output_padding": output_padding,
        "data_format": data_format or str(rng.choice(["channels_last", "channels_first"])),
        "dilation_rate": dilation,
        "activation": activation or str(rng.choice(ACTIVATIONS)),
        "use_bias": bool(rng.random() < 0.8),
    }
    batch = int(rng.integers(1, 4))
    spatial = [int(v) for v in rng.integers(1, 7, size=3)]
    channels = int(rng.integers(1, 14))
    shape = [batch] + spatial + [channels] if config["data_format"] == "channels_last" else [batch, channels] + spatial
    return config, shape


def keras_layer(config, input_shape):
    """A built Keras layer with random (non-zero) weights."""
    import keras

    layer = keras.layers.Conv3DTranspose(**config)
    layer.build(tuple(input_shape))
    rng = np.random.default_rng(1)
    layer.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.3 for w in layer.get_weights()])
    return layer


def assert_close(actual, expected, what=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    err = float(np.abs(actual - expected).max(initial=0.0)) / scale
    assert err < 2e-5, f"{what}: scaled max error {err:.3g}"


def requires_backend(name):
    return pytest.mark.skipif(BACKEND != name, reason=f"needs KERAS_BACKEND={name} (this session: {BACKEND})")


@contextlib.contextmanager
def tconv3d_warnings():
    """Records every warning raised inside the block (none is shown or filtered out); the list it yields holds
    the tconv3d.keras ones, in order, once the block has ended."""
    messages = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield messages
    messages.extend(str(w.message) for w in caught if "tconv3d.keras" in str(w.message))
