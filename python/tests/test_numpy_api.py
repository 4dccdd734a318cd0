"""tconv3d.Layer and tconv3d.conv3d_transpose against Keras's own layer (this session's backend)."""
import json

import numpy as np
import pytest

import tconv3d
from conftest import assert_close, keras_layer, random_config


@pytest.mark.parametrize("seed", range(30))
def test_layer_matches_keras_on_random_configs(seed):
    rng = np.random.default_rng(seed)
    config, shape = random_config(rng)
    layer = keras_layer(config, shape)
    x = rng.standard_normal(shape).astype(np.float32)
    expected = np.asarray(layer(x))
    weights = layer.get_weights()
    ours = tconv3d.Layer(layer.get_config(), *weights)
    assert_close(ours(x), expected, json.dumps(config))
    assert ours.output_shape(shape) == expected.shape
    assert ours.kernel_name and ours.backend and ours.isa
    # The one-shot form: same result, Keras argument names.
    kwargs = {k: config[k] for k in ("strides", "padding", "output_padding", "data_format", "dilation_rate",
                                     "activation")}
    assert_close(tconv3d.conv3d_transpose(x, *weights, **kwargs), expected, "conv3d_transpose")


def test_each_padding_and_format_specializes_per_shape():
    rng = np.random.default_rng(7)
    for data_format in ("channels_last", "channels_first"):
        config, shape = random_config(rng, data_format=data_format, padding="same", activation="relu")
        layer = keras_layer(config, shape)
        ours = tconv3d.Layer(config, *layer.get_weights())
        assert ours.kernel_name is None  # nothing specialized before the first call
        for batch in (1, 3):
            x = rng.standard_normal([batch] + shape[1:]).astype(np.float32)
            assert_close(ours(x), layer(x), f"{data_format} batch {batch}")


def test_strided_input_is_copied_and_result_is_a_new_array():
    rng = np.random.default_rng(3)
    config, shape = random_config(rng, data_format="channels_last")
    layer = keras_layer(config, shape)
    ours = tconv3d.Layer({"class_name": "Conv3DTranspose", "config": layer.get_config()}, *layer.get_weights())
    x = rng.standard_normal(shape).astype(np.float32)
    expected = np.asarray(layer(x))
    assert_close(ours(np.asfortranarray(x)), expected, "Fortran order")
    wide = np.zeros(shape[:-1] + [shape[-1] * 2], np.float32)
    wide[..., ::2] = x
    assert_close(ours(wide[..., ::2]), expected, "strided view")
    y1, y2 = ours(x), ours(x)
    assert y1 is not y2 and not np.shares_memory(y1, y2)


def test_weights_are_copied_at_construction():
    config = {"filters": 3, "kernel_size": 2, "use_bias": False}
    kernel = np.ones((2, 2, 2, 3, 2), np.float32)
    ours = tconv3d.Layer(json.dumps(config), kernel)
    x = np.ones((1, 2, 2, 2, 2), np.float32)
    before = ours(x)
    kernel[:] = 5
    np.testing.assert_array_equal(ours(x), before)


def test_one_shot_cache_follows_weight_changes():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 3, 3, 3, 4)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 5, 4)).astype(np.float32)
    first = tconv3d.conv3d_transpose(x, kernel, strides=2, padding="same")
    kernel[1, 1, 1] += 1.0  # same array object, new contents: must not reuse the packed weights
    second = tconv3d.conv3d_transpose(x, kernel, strides=2, padding="same")
    assert not np.allclose(first, second)
    fresh = tconv3d.Layer({"filters": 5, "kernel_size": 3, "strides": 2, "padding": "same", "use_bias": False},
                          kernel)
    assert_close(second, fresh(x), "after the change")


def test_input_shape_specializes_at_construction_and_threads_are_settable():
    ours = tconv3d.Layer({"filters": 4, "kernel_size": 3, "strides": 2, "use_bias": False},
                         np.ones((3, 3, 3, 4, 2), np.float32), input_shape=(1, 4, 4, 4, 2), threads=1)
    assert ours.kernel_name is not None and ours.threads == 1
    assert ours.output_shape((1, 4, 4, 4, 2)) == (1, 9, 9, 9, 4)


@pytest.mark.parametrize("backend", ["reference", "generic"])
def test_backends_agree(backend):
    rng = np.random.default_rng(5)
    config, shape = random_config(rng, data_format="channels_last", activation="elu")
    layer = keras_layer(config, shape)
    x = rng.standard_normal(shape).astype(np.float32)
    ours = tconv3d.Layer(config, *layer.get_weights(), backend=backend)
    assert_close(ours(x), layer(x), backend)
    assert ours.backend == backend
