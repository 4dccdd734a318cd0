"""tconv3d.keras on this session's Keras backend: predict, fit, set_weights, saving, fallback."""
import subprocess
import sys
import warnings

import numpy as np
import pytest

import keras
import tconv3d.keras as tk
from conftest import BACKEND, assert_close, random_config


def _model(configs, shape, seed=0):
    """A Functional model of Conv3DTranspose layers with random weights."""
    inputs = keras.Input(tuple(shape[1:]))
    y = inputs
    for config in configs:
        y = keras.layers.Conv3DTranspose(**config)(y)
    model = keras.Model(inputs, y)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.3 for w in model.get_weights()])
    return model


def _plain_copy(model):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _tconv3d_ran(model):
    layers = [l for l in model._flatten_layers(recursive=True) if isinstance(l, tk.Conv3DTranspose)]
    assert layers, "accelerate() replaced no layer"
    for layer in layers:
        state = getattr(layer, "_tconv3d", None)
        specs = state.all_specializers() if state is not None else []
        assert any(s.latest() is not None for s in specs), f"{layer.name} never ran through tconv3d"


def _no_fallback():
    return warnings.catch_warnings(record=True)


def _check_no_fallback(caught):
    messages = [str(w.message) for w in caught if "tconv3d.keras" in str(w.message)]
    assert not messages, messages


@pytest.mark.parametrize("seed", range(8))
def test_predict_matches_keras(seed):
    rng = np.random.default_rng(200 + seed)
    config, shape = random_config(rng)
    model = _model([config], shape, seed)
    x = rng.standard_normal(shape).astype(np.float32)
    expected = model.predict(x, verbose=0)
    tk.accelerate(model)
    assert isinstance(model.layers[1], tk.Conv3DTranspose)
    with _no_fallback() as caught:
        warnings.simplefilter("always")
        got = model.predict(x, verbose=0)
    _check_no_fallback(caught)
    _tconv3d_ran(model)
    assert_close(got, expected, str(config))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_fit_matches_keras(data_format):
    # Two layers, so the first one's update needs the second's input gradient.
    rng = np.random.default_rng(31)
    first, shape = random_config(rng, data_format=data_format, activation="relu", padding="same")
    second = {"filters": 3, "kernel_size": [2, 3, 2], "strides": [2, 1, 2], "padding": "valid",
              "data_format": data_format, "activation": "sigmoid", "use_bias": True}
    ours = _model([first, second], shape, 1)
    plain = _plain_copy(ours)
    tk.accelerate(ours)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.standard_normal(plain.predict(x, verbose=0).shape).astype(np.float32)
    for m in (ours, plain):
        m.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss="mse")
    before = plain.get_weights()
    with _no_fallback() as caught:
        warnings.simplefilter("always")
        ours.fit(x, y, epochs=2, batch_size=shape[0], verbose=0)
    _check_no_fallback(caught)
    plain.fit(x, y, epochs=2, batch_size=shape[0], verbose=0)
    for a, b, w0 in zip(ours.get_weights(), plain.get_weights(), before):
        assert np.abs(b - w0).max() > 1e-6, "the step changed nothing: the test would not see a wrong gradient"
        assert_close(a - w0, b - w0, "weight update")
    _tconv3d_ran(ours)


def test_set_weights_repacks():
    rng = np.random.default_rng(41)
    config, shape = random_config(rng, activation="linear")
    model = tk.accelerate(_model([config], shape))
    x = rng.standard_normal(shape).astype(np.float32)
    model.predict(x, verbose=0)
    model.predict(x, verbose=0)
    (layer,) = [l for l in model.layers if isinstance(l, tk.Conv3DTranspose)]
    assert sum(s.builds for s in layer._tconv3d.all_specializers()) == 1, "packed again for the same weights"
    new = [w * -2.0 for w in model.get_weights()]
    model.set_weights(new)
    plain = _plain_copy(model)  # clone_model builds plain Keras layers
    assert_close(model.predict(x, verbose=0), plain.predict(x, verbose=0), "after set_weights")


def test_nested_models_and_saving(tmp_path):
    rng = np.random.default_rng(51)
    inner_in = keras.Input((3, 3, 3, 4))
    inner = keras.Model(inner_in, keras.layers.Conv3DTranspose(5, 3, strides=2, padding="same",
                                                               activation="relu")(inner_in), name="inner")
    outer_in = keras.Input((3, 3, 3, 4))
    outer = keras.Model(outer_in, keras.layers.Conv3DTranspose(2, 2, activation="tanh")(inner(outer_in)))
    x = rng.standard_normal((2, 3, 3, 3, 4)).astype(np.float32)
    expected = outer.predict(x, verbose=0)
    tk.accelerate(outer)
    assert isinstance(inner.layers[1], tk.Conv3DTranspose)
    assert_close(outer.predict(x, verbose=0), expected, "nested")
    _tconv3d_ran(outer)
    path = tmp_path / "accelerated.keras"
    outer.save(path)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", expected)
    # Plain Keras, in a process where tconv3d cannot even be imported.
    script = (
        "import sys; sys.modules['tconv3d'] = None\n"
        "import numpy as np, keras\n"
        f"m = keras.models.load_model({str(path)!r})\n"
        "assert all(type(l) is keras.layers.Conv3DTranspose for l in m._flatten_layers(recursive=True)"
        " if isinstance(l, keras.layers.Conv3DTranspose))\n"
        f"y = m.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0)\n"
        f"e = np.load({str(tmp_path / 'y.npy')!r})\n"
        "assert np.abs(y - e).max() < 1e-4, np.abs(y - e).max()\n"
        "print('plain keras ok')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "plain keras ok" in result.stdout, result.stderr[-3000:]


def test_unsupported_dtype_falls_back_with_one_warning():
    rng = np.random.default_rng(61)
    inputs = keras.Input((3, 3, 3, 2), dtype="float64")
    layer = keras.layers.Conv3DTranspose(3, 2, dtype="float64")
    model = keras.Model(inputs, layer(inputs))
    x = rng.standard_normal((1, 3, 3, 3, 2))
    expected = model.predict(x, verbose=0)
    tk.accelerate(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = model.predict(x, verbose=0)
        model.predict(x, verbose=0)
    messages = [str(w.message) for w in caught if "tconv3d.keras" in str(w.message)]
    assert len(messages) == 1 and "float64" in messages[0], messages
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_accelerate_rejects_non_models():
    with pytest.raises(TypeError, match="model"):
        tk.accelerate("model.keras")


def test_backend_is_the_sessions():
    assert keras.config.backend() == BACKEND
