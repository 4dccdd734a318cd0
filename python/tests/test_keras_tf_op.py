"""tconv3d.keras on TensorFlow: the registered op (_tf_op.so) and the tf.numpy_function fallback."""
import json
import os

import numpy as np
import pytest

from conftest import BACKEND, assert_close, random_config

if BACKEND != "tensorflow":
    pytest.skip(f"TensorFlow's op path; this session's Keras backend is {BACKEND}", allow_module_level=True)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import tconv3d.keras as tk  # noqa: E402
from tconv3d import _core  # noqa: E402
from tconv3d._config import config_json  # noqa: E402
from tconv3d.keras import _tf  # noqa: E402


def _valid_config(rng, **kwargs):
    """random_config, drawn again until the layer's output is not empty."""
    while True:
        config, shape = random_config(rng, **kwargs)
        try:
            _core.Specializer(config_json(config), None, "auto", "auto", 1, False).output_shape(shape)
            return config, shape
        except ValueError:
            continue


def _op_or_skip():
    # A package built with the library must load it; one built without says why it has none.
    if not os.path.isfile(_tf._OP_LIBRARY):
        pytest.skip(_tf.op_library_status())
    assert _tf.op_library_status() is None, _tf.op_library_status()
    return _tf._load_op_library()[0]


def _pair(config, shape, seed=0):
    plain = keras.layers.Conv3DTranspose(**config)
    plain.build(tuple(shape))
    rng = np.random.default_rng(seed)
    plain.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.3 for w in plain.get_weights()])
    ours = tk.Conv3DTranspose.from_config(plain.get_config())
    ours.build(tuple(shape))
    ours.set_weights(plain.get_weights())
    return plain, ours


def _op_types(layer, x):
    graph = tf.function(layer).get_concrete_function(tf.TensorSpec(x.shape, tf.float32)).graph
    return {op.type for op in graph.get_operations()}


@pytest.mark.parametrize("seed", range(4))
def test_forward_is_the_registered_op(seed):
    _op_or_skip()
    rng = np.random.default_rng(700 + seed)
    config, shape = _valid_config(rng)
    plain, ours = _pair(config, shape, seed)
    x = rng.standard_normal(shape).astype(np.float32)
    types = _op_types(ours, x)
    assert "Tconv3dForward" in types and not types & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}, types
    assert_close(tf.function(ours)(x).numpy(), plain(x).numpy(), str(config))
    assert_close(ours(x).numpy(), plain(x).numpy(), "eager " + str(config))


def test_gradients_through_the_op_match_keras():
    _op_or_skip()
    rng = np.random.default_rng(71)
    config, shape = _valid_config(rng, activation="elu", padding="same")
    plain, ours = _pair(config, shape, 3)
    x = tf.constant(rng.standard_normal(shape).astype(np.float32))
    grads = []
    for layer in (plain, ours):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x)))
        grads.append(tape.gradient(loss, [x] + [w.value for w in layer.trainable_weights]))
    for got, expected in zip(grads[1], grads[0]):
        assert_close(got.numpy(), expected.numpy(), "gradient")


def test_unknown_spatial_sizes_take_the_op():
    # Shapes known only when the graph runs: the op sizes its output itself.
    _op_or_skip()
    rng = np.random.default_rng(81)
    config = {"filters": 5, "kernel_size": [3, 2, 3], "strides": [2, 1, 2], "padding": "same",
              "activation": "relu", "use_bias": True}
    inputs = keras.Input((None, None, None, 4))
    model = keras.Model(inputs, keras.layers.Conv3DTranspose(**config)(inputs))
    xs = [rng.standard_normal(s).astype(np.float32) for s in ((1, 3, 4, 5, 4), (2, 5, 2, 3, 4))]
    expected = [model.predict(x, verbose=0) for x in xs]
    tk.accelerate(model)
    for x, e in zip(xs, expected):
        assert_close(model.predict(x, verbose=0), e, f"input {x.shape}")


def test_op_errors_name_the_argument():
    op = _op_or_skip()
    spec = _core.Specializer(json.dumps({"filters": 4, "kernel_size": 2, "use_bias": True}), None, "auto", "auto",
                             1, False)
    cache_id = spec.register_for_ffi()
    try:
        x, k, b = tf.ones((1, 2, 2, 2, 3)), tf.ones((2, 2, 2, 4, 3)), tf.ones((4,))
        with pytest.raises(tf.errors.InvalidArgumentError, match="channels"):
            op.tconv3d_forward(tf.ones((1, 2, 2, 2, 5)), k, b, cache_id=cache_id)
        with pytest.raises(tf.errors.InvalidArgumentError, match="bias"):
            op.tconv3d_forward(x, k, tf.zeros([0]), cache_id=cache_id)
        assert op.tconv3d_forward(x, k, b, cache_id=cache_id).shape == (1, 3, 3, 3, 4)
    finally:
        _core.release_ffi(cache_id)
    with pytest.raises(tf.errors.InvalidArgumentError, match="cache_id"):
        op.tconv3d_forward(x, k, b, cache_id=cache_id)


def test_bind_refuses_a_library_not_loaded(tmp_path):
    with pytest.raises(ValueError, match="not loaded"):
        _core._bind_tf_op(str(tmp_path / "missing.so"))


def test_numpy_function_fallback_matches_keras(monkeypatch):
    # The path of a package built without TensorFlow, or whose library does not load.
    monkeypatch.setattr(_tf, "_load_op_library", lambda: (None, "forced by the test"))
    rng = np.random.default_rng(91)
    config, shape = _valid_config(rng, activation="sigmoid")
    plain, ours = _pair(config, shape, 5)
    x = rng.standard_normal(shape).astype(np.float32)
    types = _op_types(ours, x)
    assert "Tconv3dForward" not in types and types & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}, types
    assert_close(tf.function(ours)(x).numpy(), plain(x).numpy(), str(config))
    xt = tf.constant(x)
    grads = []
    for layer in (plain, ours):
        with tf.GradientTape() as tape:
            tape.watch(xt)
            loss = tf.reduce_sum(tf.square(layer(xt)))
        grads.append(tape.gradient(loss, [xt] + [w.value for w in layer.trainable_weights]))
    for got, expected in zip(grads[1], grads[0]):
        assert_close(got.numpy(), expected.numpy(), "gradient")


def test_threads_follow_tensorflow():
    # No tconv3d_threads: TensorFlow's intra-op setting (0 here: all cores, as TensorFlow's own pool);
    # the attribute overrides it.
    _op_or_skip()
    rng = np.random.default_rng(101)
    config, shape = _valid_config(rng)
    plain, ours = _pair(config, shape)
    x = rng.standard_normal(shape).astype(np.float32)
    assert _tf._threads(ours) == tf.config.threading.get_intra_op_parallelism_threads()
    tf.function(ours)(x)
    (spec,) = ours._tconv3d.specializers.values()
    intra = tf.config.threading.get_intra_op_parallelism_threads()
    if intra == 0 and "OMP_NUM_THREADS" not in os.environ:
        assert spec.latest()[3] == len(os.sched_getaffinity(0)), spec.latest()
    single = tk.Conv3DTranspose.from_config(plain.get_config())
    single.build(tuple(shape))
    single.set_weights(plain.get_weights())
    single.tconv3d_threads = 1
    assert_close(tf.function(single)(x).numpy(), plain(x).numpy(), "threads=1")
    assert [s.latest()[3] for s in single._tconv3d.specializers.values()] == [1]
