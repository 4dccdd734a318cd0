"""Bad input: a Python exception with the library's message, never a crash."""
import numpy as np
import pytest

import tconv3d
from conftest import MODELS

CONFIG = {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"}
KERNEL = np.zeros((3, 3, 3, 4, 2), np.float32)
BIAS = np.zeros(4, np.float32)


def test_wrong_dtype_is_a_type_error():
    layer = tconv3d.Layer(CONFIG, KERNEL, BIAS)
    with pytest.raises(TypeError, match="x: expected float32, got float64"):
        layer(np.zeros((1, 2, 2, 2, 2)))
    with pytest.raises(TypeError, match="kernel: expected float32"):
        tconv3d.Layer(CONFIG, KERNEL.astype(np.float16), BIAS)


@pytest.mark.parametrize("shape, match", [
    ((2, 2, 2, 2), "rank|5"),
    ((1, 2, 2, 2, 3), "channel|kernel"),
    ((1, 0, 2, 2, 2), "positive|0"),
])
def test_misshaped_input_names_the_problem(shape, match):
    layer = tconv3d.Layer(CONFIG, KERNEL, BIAS)
    with pytest.raises(tconv3d.Error, match=match) as info:
        layer(np.zeros(shape, np.float32))
    assert isinstance(info.value, ValueError)


def test_misshaped_weights():
    with pytest.raises(ValueError, match="kernel"):
        tconv3d.Layer(CONFIG, np.zeros((3, 3, 4, 2), np.float32), BIAS)
    with pytest.raises(ValueError, match="bias"):
        tconv3d.Layer(CONFIG, KERNEL, np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="bias"):
        tconv3d.Layer(CONFIG, KERNEL)  # use_bias defaults to True, as in Keras


@pytest.mark.parametrize("bad, argument", [
    ({"filters": 0, "kernel_size": 3}, "filters"),
    ({"filters": 4, "kernel_size": 3, "padding": "full"}, "padding"),
    ({"filters": 4, "kernel_size": 3, "strides": 2, "output_padding": 2}, "output_padding"),
    ({"filters": 4, "kernel_size": 3, "activation": "no_such_activation"}, "activation"),
])
def test_configs_keras_rejects(bad, argument):
    with pytest.raises(tconv3d.Error) as info:
        tconv3d.Layer(bad, np.zeros((3, 3, 3, 4, 2), np.float32), np.zeros(4, np.float32))
    assert info.value.argument == argument, str(info.value)


def test_config_of_the_wrong_type():
    with pytest.raises(TypeError, match="config"):
        tconv3d.Layer(42, KERNEL, BIAS)
    with pytest.raises(ValueError):
        tconv3d.Layer("{not json", KERNEL, BIAS)


def test_options():
    with pytest.raises(ValueError, match="backend"):
        tconv3d.Layer(CONFIG, KERNEL, BIAS, backend="cuda")
    with pytest.raises(ValueError, match="threads"):
        tconv3d.Layer(CONFIG, KERNEL, BIAS, threads=-1)
    with pytest.raises(TypeError, match="unexpected argument"):
        tconv3d.conv3d_transpose(np.zeros((1, 2, 2, 2, 2), np.float32), KERNEL, BIAS, stride=2)


def test_model_files_that_are_not_models(tmp_path):
    not_a_model = tmp_path / "notes.keras"
    not_a_model.write_text("hello")
    with pytest.raises(tconv3d.Error, match="notes.keras"):
        tconv3d.load_model(not_a_model)
    with pytest.raises(tconv3d.Error):
        tconv3d.load_model(tmp_path / "missing.h5")
    for name in ("bad_missing_weights.keras", "bad_wrong_shape.keras", "bad_onnx_grouped.onnx"):
        with pytest.raises(tconv3d.Error):
            tconv3d.load_model(MODELS / name)
