"""The bundled model files through tconv3d.keras.load_model and accelerate (this session's backend)."""
import warnings

import numpy as np
import pytest

import keras
import tconv3d.keras as tk
from conftest import BACKEND, MODELS, REPO, assert_close

KERAS3_FILES = sorted(p.name for p in MODELS.glob("k3_*.keras")) + ["unet3d_decoder.keras"]
TF_KERAS_FILES = sorted(p.name for p in MODELS.glob("tfk_*.h5") if "legacy" not in p.name and ".weights." not in p.name)


def _path(name):
    return REPO / "examples" / "models" / name if name == "unet3d_decoder.keras" else MODELS / name


def _input_for(model, seed=0):
    shape = [2 if d is None else d for d in model.inputs[0].shape]
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("name", KERAS3_FILES)
def test_keras3_files(name):
    if name == "unet3d_decoder.keras" and BACKEND == "jax":
        pytest.skip("plain Keras on JAX needs ~3 min for the demo decoder on 2 cores (the reason for tconv3d); "
                    "compared on the torch and TensorFlow sessions, timed by python -m tconv3d.bench")
    plain = keras.models.load_model(_path(name))
    x = _input_for(plain)
    expected = plain.predict(x, verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = tk.load_model(_path(name))
        got = ours.predict(x, verbose=0)
    assert not [w for w in caught if "tconv3d.keras" in str(w.message)]
    assert any(isinstance(l, tk.Conv3DTranspose) for l in ours._flatten_layers(recursive=True))
    assert_close(got, expected, name)


@pytest.mark.parametrize("name", TF_KERAS_FILES)
def test_tf_keras_files(name):
    try:
        plain = keras.models.load_model(_path(name), compile=False)
    except Exception as e:  # noqa: BLE001 - Keras 3's own limits on legacy files
        pytest.skip(f"Keras 3 itself cannot load this tf.keras file: {type(e).__name__}: {str(e)[:200]}")
    x = _input_for(plain)
    expected = plain.predict(x, verbose=0)
    ours = tk.accelerate(plain)
    assert_close(ours.predict(x, verbose=0), expected, name)
