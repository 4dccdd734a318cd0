"""bf16: tconv3d.Layer(dtype="bfloat16"), the bf16 JAX op, and tconv3d.keras under Keras's mixed_bfloat16.

Tolerances. eps = 2**-8 is bf16's relative rounding error (half an ulp; 8
significand bits). tconv3d accumulates, adds the float32 bias and applies
the activation in float32 and rounds once; Keras (JAX backend) rounds the
convolution to bf16, adds the bf16-cast bias in bf16 and applies the
activation in bf16. Both accumulate the convolution in float32 (XLA's CPU
convolution does, measured), so the forward difference does not grow with
the reduction size R = in_channels * taps: it is bounded by a few bf16
roundings, plus the float32 accumulation term R * 2**-24. The bias
gradient is where Keras differs: it sums dy in bf16 over R = batch *
output positions, an error that grows with R (about eps * sqrt(R) at
most, measured); tconv3d sums in float32. Errors are measured relative
to the largest magnitude of the exact result (the same computation in
float32 on the bf16 values and the bf16-rounded kernel).
"""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import tconv3d
from conftest import BACKEND, random_config, requires_backend, tconv3d_warnings

EPS = 2.0 ** -8   # bf16: half an ulp, relative
EPS32 = 2.0 ** -24
# Activations whose derivative stays within about 1 (so Keras's rounding of
# the pre-activation to bf16 is not amplified beyond the stated bound).
BOUNDED = ["linear", "relu", "sigmoid", "tanh", "elu", "leaky_relu", "gelu", "silu", "softplus", "relu6",
           "hard_sigmoid", "mish"]

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = ml_dtypes.bfloat16
needs_bf16 = pytest.mark.skipif(tconv3d._core.bf16_unavailable() is not None,
                                reason=str(tconv3d._core.bf16_unavailable()))


def forward_tolerance(reduction):
    """|tconv3d - Keras| / max|exact| for the forward: Keras's three roundings, tconv3d's one, the bias cast
    and float32 accumulation over `reduction` = in_channels * taps products."""
    return 4 * EPS + reduction * EPS32


def bias_gradient_tolerance(reduction):
    """Keras sums the bias gradient in bf16 over `reduction` = batch * output positions."""
    return EPS * (2 + math.sqrt(reduction))


def _scaled_error(actual, expected, exact):
    actual, expected, exact = (np.asarray(a, np.float32) for a in (actual, expected, exact))
    return float(np.abs(actual - expected).max(initial=0.0)) / max(float(np.abs(exact).max(initial=0.0)), 1e-30)


def _weights(rng, config, in_channels):
    k = config["kernel_size"]
    k = [k] * 3 if isinstance(k, int) else list(k)
    taps = int(np.prod(k))
    kernel = (rng.standard_normal(tuple(k) + (config["filters"], in_channels)) / math.sqrt(taps * in_channels))
    bias = rng.standard_normal(config["filters"]) * 0.1 if config["use_bias"] else None
    return kernel.astype(np.float32), None if bias is None else bias.astype(np.float32)


def _random_config(rng, activations):
    """random_config with one of `activations`, redrawn until the output is not empty."""
    while True:
        config, shape = random_config(rng, activation=str(rng.choice(activations)))
        spec = tconv3d._core.Specializer(tconv3d._config.config_json(config), None, "auto", "auto", 1, False)
        try:
            spec.output_shape(shape)
            return config, shape
        except tconv3d.Error:
            continue


def _in_channels(config, shape):
    return shape[-1] if config["data_format"] == "channels_last" else shape[1]


def _reduction(config, shape):
    """in_channels * taps: the most products one output sums."""
    return _in_channels(config, shape) * int(np.prod(config["kernel_size"]))


def _exact(config, kernel, bias, x_bf16):
    """The float32 computation on the bf16 values and the bf16-rounded kernel (what a single rounding rounds)."""
    return tconv3d.Layer(config, kernel.astype(BF16).astype(np.float32), bias)(np.asarray(x_bf16, np.float32))


# --- The NumPy API -------------------------------------------------------------------------------------


@needs_bf16
@pytest.mark.parametrize("seed", range(10))
def test_layer_rounds_once(seed):
    rng = np.random.default_rng(900 + seed)
    config, shape = _random_config(rng, BOUNDED)
    kernel, bias = _weights(rng, config, _in_channels(config, shape))
    x = rng.standard_normal(shape).astype(BF16)
    layer = tconv3d.Layer(config, kernel, bias, dtype="bfloat16")
    y = layer(x)
    assert y.dtype == BF16 and layer.dtype == "bfloat16" and "bf16" in layer.kernel_name
    exact = _exact(config, kernel, bias, x)
    # One rounding per element: within half an ulp of the float32 result, plus float32 accumulation.
    slack = _reduction(config, shape) * EPS32 * max(float(np.abs(exact).max()), 1.0)
    err = np.abs(y.astype(np.float32) - exact) - (EPS * np.abs(exact) + slack)
    assert err.max() <= 0, f"{config}: {err.max()}"
    # The one-shot form picks bf16 from the input and gives the same bits.
    keys = ("strides", "padding", "output_padding", "data_format", "dilation_rate", "activation")
    y2 = tconv3d.conv3d_transpose(x, kernel, bias, **{k: config[k] for k in keys})
    assert y2.dtype == BF16 and np.array_equal(y.view(np.uint16), y2.view(np.uint16))


@needs_bf16
def test_layer_gradients_are_bf16_dx_and_float32_weights():
    rng = np.random.default_rng(5)
    config = {"filters": 6, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "relu"}
    kernel, bias = _weights(rng, dict(config, use_bias=True), 5)
    x = rng.standard_normal((2, 3, 4, 5, 5)).astype(BF16)
    layer = tconv3d.Layer(config, kernel, bias, dtype="bf16")
    y = layer(x)
    dy = rng.standard_normal(y.shape).astype(BF16)
    dx, dk, db = layer.gradients(x, dy, y)
    assert (dx.dtype, dk.dtype, db.dtype) == (BF16, np.float32, np.float32)
    # The float32 layer's gradients at the bf16 values, with the bf16 output's relu mask.
    ref = tconv3d.Layer(dict(config, activation="linear"), kernel.astype(BF16).astype(np.float32), bias)
    dz = np.where(y.astype(np.float32) > 0, dy.astype(np.float32), 0).astype(np.float32)
    rdx, rdk, rdb = ref.gradients(x.astype(np.float32), dz)
    assert np.all(np.abs(dx.astype(np.float32) - rdx) <= EPS * np.abs(rdx))
    np.testing.assert_allclose(dk, rdk, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(db, rdb, rtol=1e-5, atol=1e-5)


@needs_bf16
def test_dtype_mismatches_are_errors_never_conversions():
    config = {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"}
    kernel, bias = np.zeros((3, 3, 3, 4, 2), np.float32), np.zeros(4, np.float32)
    x32 = np.zeros((1, 2, 2, 2, 2), np.float32)
    bf16_layer = tconv3d.Layer(config, kernel, bias, dtype="bfloat16")
    with pytest.raises(TypeError, match="x: expected bfloat16.*got float32"):
        bf16_layer(x32)
    with pytest.raises(TypeError, match="x: expected float32, got bfloat16.*dtype='bfloat16'"):
        tconv3d.Layer(config, kernel, bias)(x32.astype(BF16))
    with pytest.raises(TypeError, match="kernel: expected float32, got bfloat16.*variables"):
        tconv3d.Layer(config, kernel.astype(BF16), bias, dtype="bfloat16")
    with pytest.raises(TypeError, match="bias: expected float32, got bfloat16"):
        tconv3d.conv3d_transpose(x32.astype(BF16), kernel, bias.astype(BF16), strides=2, padding="same")
    with pytest.raises(TypeError, match="x: expected float32, got float16"):
        tconv3d.conv3d_transpose(x32.astype(np.float16), kernel, bias)
    with pytest.raises(ValueError, match="dtype: expected float32 or bfloat16"):
        tconv3d.Layer(config, kernel, bias, dtype="float16")
    with pytest.raises(TypeError, match="dy: expected bfloat16"):
        bf16_layer.gradients(x32.astype(BF16), np.zeros((1, 4, 4, 4, 4), np.float32))
    # The binding itself refuses the other dtype's call.
    spec = tconv3d._core.Specializer('{"filters": 4, "kernel_size": 3}', None, "auto", "auto", 1, False, "bfloat16")
    with pytest.raises(tconv3d.Error, match="forward on a bfloat16") as info:
        spec.forward(x32, kernel, bias, True)
    assert info.value.argument == "dtype"
    # Axis activations have no bf16 kernels: said at construction.
    with pytest.raises(tconv3d.Error, match="elementwise") as info:
        tconv3d.Layer(dict(config, activation="softmax"), kernel, bias, dtype="bfloat16")
    assert info.value.argument == "activation"


def test_without_avx512_bf16_a_bf16_layer_says_why():
    script = (
        "import numpy as np, ml_dtypes, tconv3d\n"
        "assert 'avx512_bf16' in tconv3d._core.bf16_unavailable()\n"
        "layer = tconv3d.Layer({'filters': 2, 'kernel_size': 2}, np.ones((2, 2, 2, 2, 3), np.float32), "
        "np.zeros(2, np.float32), dtype='bfloat16')\n"
        "try:\n"
        "    layer(np.ones((1, 2, 2, 2, 3), ml_dtypes.bfloat16))\n"
        "except tconv3d.Error as e:\n"
        "    assert 'avx512_bf16' in str(e), e\n"
        "    print('refused:', e.argument)\n")
    env = dict(os.environ, TCONV3D_CPU_MASK="avx512_bf16")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0 and "refused: dtype" in result.stdout, result.stderr[-3000:]


# --- The JAX op ----------------------------------------------------------------------------------------

if BACKEND == "jax":
    import jax
    import jax.numpy as jnp

    import tconv3d.jax as tj


@requires_backend("jax")
@needs_bf16
def test_jax_op_jit_vmap_and_no_silent_conversion():
    rng = np.random.default_rng(31)
    kernel = jnp.asarray(rng.standard_normal((3, 2, 3, 5, 3)), jnp.float32)
    bias = jnp.asarray(rng.standard_normal(5), jnp.float32)
    x = jnp.asarray(rng.standard_normal((2, 4, 5, 3, 3)), jnp.bfloat16)
    kw = dict(strides=2, padding="same", activation="relu")
    f = jax.jit(lambda x, k, b: tj.conv3d_transpose(x, k, b, **kw))
    y = f(x, kernel, bias)
    assert y.dtype == jnp.bfloat16
    numpy_y = tconv3d.conv3d_transpose(np.asarray(x), np.asarray(kernel), np.asarray(bias), **kw)
    assert np.array_equal(np.asarray(y).view(np.uint16), numpy_y.view(np.uint16))
    ys = jax.vmap(f, in_axes=(0, None, None))(jnp.stack([x, -x]), kernel, bias)
    assert np.array_equal(np.asarray(ys[1]).view(np.uint16), np.asarray(f(-x, kernel, bias)).view(np.uint16))
    # jax.grad runs the bf16 backward handler: the same bits as the NumPy layer's gradients.
    linear = dict(kw, activation="linear")
    cotangent = jnp.asarray(rng.standard_normal(y.shape), jnp.bfloat16)
    loss = lambda x, k, b: jnp.sum(tj.conv3d_transpose(x, k, b, **linear).astype(jnp.float32)  # noqa: E731
                                   * cotangent.astype(jnp.float32))
    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(x, kernel, bias)
    assert [g.dtype for g in grads] == [jnp.bfloat16, jnp.float32, jnp.float32]
    layer = tconv3d.Layer(dict(linear, filters=5, kernel_size=[3, 2, 3]), np.asarray(kernel), np.asarray(bias),
                          dtype="bfloat16")
    expected = layer.gradients(np.asarray(x), np.asarray(cotangent))
    assert np.array_equal(np.asarray(grads[0]).view(np.uint16), expected[0].view(np.uint16))
    np.testing.assert_array_equal(np.asarray(grads[1]), expected[1])
    np.testing.assert_array_equal(np.asarray(grads[2]), expected[2])
    op = tj.Op({"filters": 5, "kernel_size": [3, 2, 3], "strides": 2, "padding": "same"}, dtype="bfloat16")
    with pytest.raises(TypeError, match="x: expected bfloat16, got float32"):
        op(x.astype(jnp.float32), kernel, bias)
    with pytest.raises(TypeError, match="kernel: expected float32, got bfloat16"):
        op(x, kernel.astype(jnp.bfloat16), bias)


@requires_backend("jax")
@needs_bf16
def test_jax_op_vmap_over_weights_and_per_example_gradients():
    rng = np.random.default_rng(32)
    x = jnp.asarray(rng.standard_normal((3, 1, 3, 4, 5, 2)), jnp.bfloat16)
    kernel = jnp.asarray(rng.standard_normal((2, 2, 3, 4, 2)), jnp.float32)
    bias = jnp.asarray(rng.standard_normal(4), jnp.float32)
    f = lambda x, k: tj.conv3d_transpose(x, k, bias, strides=2, padding="same", activation="tanh")  # noqa: E731
    loss = lambda k, x: jnp.sum(f(x, k).astype(jnp.float32) ** 2)  # noqa: E731
    per_example = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0)))(kernel, x)
    for i in range(3):
        np.testing.assert_array_equal(np.asarray(per_example[i]), np.asarray(jax.grad(loss)(kernel, x[i])))
    kernels = jnp.stack([kernel, -2 * kernel])
    ys = jax.jit(jax.vmap(f, in_axes=(None, 0)))(x[0], kernels)
    for i in range(2):
        assert np.array_equal(np.asarray(ys[i]).view(np.uint16), np.asarray(f(x[0], kernels[i])).view(np.uint16))


# --- Keras's mixed_bfloat16 (JAX backend) ----------------------------------------------------------------

if BACKEND in ("jax", "tensorflow"):
    import keras

    import tconv3d.keras as tk


def _check_forward(config, shape, got, expected, exact):
    """tconv3d's bf16 output against Keras's (`expected`; None where Keras refused the layer) within
    forward_tolerance, and against the exact result within its own single rounding."""
    if expected is not None:
        assert expected.dtype == BF16
        tolerance = forward_tolerance(_reduction(config, shape))
        err = _scaled_error(got, expected, exact)
        assert err <= tolerance, f"{config}: {err / EPS:.2f} eps > {tolerance / EPS:.2f} eps"
    # tconv3d itself rounds once.
    assert _scaled_error(got, exact, exact) <= EPS + _reduction(config, shape) * EPS32


def _exact_model(config, shape, kernel, bias):
    """Keras's float32 layer on the bf16-rounded kernel: the exact gradients of what both bf16 layers compute."""
    model = keras.Sequential([keras.Input(tuple(shape[1:]), batch_size=shape[0]),
                              keras.layers.Conv3DTranspose(**config, dtype="float32")])
    model.set_weights([kernel.astype(BF16).astype(np.float32)] + ([bias] if bias is not None else []))
    return model


def _check_gradients(config, shape, out_shape, got, expected, exact):
    """[dx, dkernel, dbias] of tconv3d (`got`) against Keras's (`expected`) and the exact ones, for the smooth
    activations (linear, tanh, sigmoid) the gradient tests draw."""
    out_positions = int(np.prod(out_shape)) // config["filters"]
    filters_taps = config["filters"] * int(np.prod(config["kernel_size"]))
    in_positions = int(np.prod(shape)) // _in_channels(config, shape)
    # dx rounds once to bf16 (tconv3d) where Keras may or may not (XLA keeps excess precision); dkernel:
    # Keras rounds once, tconv3d stays float32; dbias: Keras sums in bf16.
    # The activation's derivative at Keras's bf16 pre-activation adds up to about 2 eps more (tanh, sigmoid).
    tolerances = [4 * EPS + filters_taps * EPS32, 4 * EPS + in_positions * EPS32,
                  bias_gradient_tolerance(out_positions)]
    for name, a, b, e, tolerance in zip(("dx", "dkernel", "dbias"), got, expected, exact, tolerances):
        assert a.dtype == b.dtype, name
        err = _scaled_error(a, b, e)
        assert err <= tolerance, f"{name} {config}: {err / EPS:.2f} eps > {tolerance / EPS:.2f} eps"
    # Against the exact gradient: linear, dx within one bf16 rounding and the weights' within float32
    # accumulation; tanh and sigmoid, the derivative at the bf16 pre-activation (a few eps).
    linear = config["activation"] == "linear"
    assert _scaled_error(got[0], exact[0], exact[0]) <= (EPS if linear else 4 * EPS) + filters_taps * EPS32
    for a, e in zip(got[1:], exact[1:]):
        assert _scaled_error(a, e, e) <= (1e-4 if linear else 3 * EPS)


def _pair(config, shape, seed, policy="mixed_bfloat16"):
    """Keras's layer and tconv3d.keras's, each in a Sequential model (so Keras's __call__ casts inputs and
    autocasts the variables), with the same weights."""
    rng = np.random.default_rng(seed)
    kernel, bias = _weights(rng, config, _in_channels(config, shape))
    weights = [kernel] + ([bias] if bias is not None else [])
    models = []
    for cls in (keras.layers.Conv3DTranspose, tk.Conv3DTranspose):
        kwargs = {} if policy is None else {"dtype": policy}
        model = keras.Sequential([keras.Input(tuple(shape[1:]), batch_size=shape[0]), cls(**config, **kwargs)])
        model.set_weights(weights)
        models.append(model)
    return models[0], models[1], kernel, bias


def _ran_bf16(model):
    state = model.layers[-1]._tconv3d
    assert state.jax_op_bf16 is not None and any(s.latest() is not None for s in state.jax_op_bf16.specializers())


def _jit_forward(model):
    return jax.jit(lambda vals, x: model.stateless_call(vals, [], x)[0])


@requires_backend("jax")
@needs_bf16
@pytest.mark.parametrize("seed", range(12))
def test_keras_mixed_bfloat16_forward(seed):
    rng = np.random.default_rng(700 + seed)
    config, shape = _random_config(rng, BOUNDED)
    plain, ours, kernel, bias = _pair(config, shape, seed)
    x = rng.standard_normal(shape).astype(np.float32)
    with tconv3d_warnings() as messages:
        expected = np.asarray(plain(x))
        got = np.asarray(ours(x))
        got_jit = np.asarray(_jit_forward(ours)([v.value for v in ours.trainable_variables], x))
    assert not messages
    _ran_bf16(ours)
    assert got.dtype == expected.dtype == BF16
    assert np.array_equal(got.view(np.uint16), got_jit.view(np.uint16))
    _check_forward(config, shape, got, expected, _exact(config, kernel, bias, x.astype(BF16)))


def _gradients(model, x, cotangent):
    vals = [v.value for v in model.trainable_variables]

    def loss(vals, x):
        y, _ = model.stateless_call(vals, [], x)
        return jnp.sum(y.astype(jnp.float32) * cotangent)

    (dvals, dx) = jax.jit(jax.grad(loss, argnums=(0, 1)))(vals, x)
    return [dx] + list(dvals)


@requires_backend("jax")
@needs_bf16
@pytest.mark.parametrize("seed", range(8))
def test_keras_mixed_bfloat16_gradients(seed):
    rng = np.random.default_rng(800 + seed)
    # Smooth activations: a kink (relu) turns a pre-activation that Keras and tconv3d round to opposite
    # sides of 0 into a whole cotangent of difference, no rounding bound.
    config, shape = _random_config(rng, ["linear", "tanh", "sigmoid"])
    plain, ours, kernel, bias = _pair(config, shape, seed)
    exact_model = _exact_model(config, shape, kernel, bias)
    x = jnp.asarray(rng.standard_normal(shape).astype(BF16).astype(np.float32))
    out_shape = plain.output_shape
    # bf16 values, so the cotangent Keras casts to bf16 is exact.
    cotangent = jnp.asarray(rng.standard_normal(out_shape).astype(BF16).astype(np.float32))
    got = _gradients(ours, x, cotangent)
    expected = _gradients(plain, x, cotangent)
    exact = _gradients(exact_model, x, cotangent)
    _ran_bf16(ours)
    _check_gradients(config, shape, out_shape, got, expected, exact)


@requires_backend("jax")
@needs_bf16
def test_global_policy_accelerate_predict_and_fit():
    previous = keras.config.dtype_policy()
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        rng = np.random.default_rng(3)
        inputs = keras.Input((3, 4, 5, 6))
        y = keras.layers.Conv3DTranspose(7, 3, strides=2, padding="same", activation="relu")(inputs)
        y = keras.layers.Conv3DTranspose(5, 2, strides=(1, 2, 2), data_format="channels_last")(y)
        model = keras.Model(inputs, y)
        model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.2 for w in model.get_weights()])
        plain = keras.models.clone_model(model)
        plain.set_weights(model.get_weights())
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    x = rng.standard_normal((2, 3, 4, 5, 6)).astype(np.float32)
    expected = plain.predict(x, verbose=0)
    tk.accelerate(model)
    with tconv3d_warnings() as messages:
        got = model.predict(x, verbose=0)
    assert not messages
    for layer in model.layers[1:]:
        assert layer.compute_dtype == "bfloat16" and layer._tconv3d.jax_op_bf16 is not None
    assert got.dtype == BF16
    scale = float(np.abs(expected.astype(np.float32)).max())
    # Two layers: the second sees the first's differently rounded output, so twice the one-layer bound.
    assert np.abs(got.astype(np.float32) - expected.astype(np.float32)).max() <= 2 * forward_tolerance(7 * 8) * scale
    target = rng.standard_normal(got.shape).astype(np.float32)
    for m in (plain, model):
        m.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    losses = [m.train_on_batch(x, target) for m in (plain, model)]
    assert all(np.isfinite(losses)) and abs(losses[0] - losses[1]) <= 0.05 * abs(losses[0]), losses
    assert model.layers[1].kernel.dtype == "float32"


NAN_CONFIG = {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "linear",
              "data_format": "channels_last", "use_bias": True, "dilation_rate": 1, "output_padding": None}


def _nan_inf_outputs():
    shape = [1, 4, 4, 4, 3]
    plain, ours, kernel, bias = _pair(NAN_CONFIG, shape, 0)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    x[0, 0, 0, 0, 0] = np.nan
    x[0, 3, 2, 1, 2] = np.inf
    x[0, 1, 3, 3, 1] = -np.inf
    expected, got = np.asarray(plain(x)).astype(np.float32), np.asarray(ours(x)).astype(np.float32)
    _ran_bf16(ours)
    # tconv3d's own float32 layer on the same values.
    float32 = tconv3d.Layer(NAN_CONFIG, kernel.astype(BF16).astype(np.float32), bias)(x.astype(BF16).astype(np.float32))
    return got, expected, float32


@requires_backend("jax")
@needs_bf16
def test_nan_and_inf_propagate():
    got, expected, float32 = _nan_inf_outputs()
    assert np.isnan(expected).any() and np.isposinf(expected).any() and np.isneginf(expected).any()
    # bf16 propagates exactly as tconv3d's float32 kernels do (and both as
    # Keras: test_nan_and_inf_positions_equal_keras).
    for check in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(check(got), check(float32))
    # Every output Keras computes finite is finite and close.
    finite = np.isfinite(expected)
    assert np.all(np.isfinite(got)[finite])
    scale = float(np.abs(expected[finite]).max())
    assert np.abs(got[finite] - expected[finite]).max() <= forward_tolerance(81) * scale


@requires_backend("jax")
@needs_bf16
def test_nan_and_inf_positions_equal_keras():
    # Lane-packed kernels keep an input out of the lanes of another W phase's
    # zero-padded taps, so 0 * NaN or 0 * Inf never makes an extra NaN.
    got, expected, _ = _nan_inf_outputs()
    for check in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(check(got), check(expected))


# --- The torch backend --------------------------------------------------------------------------------------


def _torch_model(config, shape, cls, kernel, bias):
    import keras

    model = keras.Sequential([keras.Input(tuple(shape[1:]), batch_size=shape[0]), cls(**config, dtype="mixed_bfloat16")])
    model.set_weights([kernel] + ([bias] if bias is not None else []))
    return model


@requires_backend("torch")
@needs_bf16
@pytest.mark.parametrize("seed", range(6))
def test_torch_backend_mixed_bfloat16_forward_and_gradients(seed):
    import torch

    import tconv3d.keras as tk

    rng = np.random.default_rng(1000 + seed)
    config, shape = _random_config(rng, ["linear"] if seed % 2 else BOUNDED)
    kernel, bias = _weights(rng, config, _in_channels(config, shape))
    model = _torch_model(config, shape, tk.Conv3DTranspose, kernel, bias)
    x = rng.standard_normal(shape).astype(np.float32)
    exact = _exact(config, kernel, bias, x.astype(BF16))
    with tconv3d_warnings() as messages, torch.no_grad():
        y = model(torch.from_numpy(x))
    assert not messages
    assert y.dtype == torch.bfloat16
    layer = model.layers[-1]
    assert any(k[2] == "bfloat16" and s.latest() is not None for k, s in layer._tconv3d.specializers.items())
    assert _scaled_error(y.float().numpy(), exact, exact) <= EPS + _reduction(config, shape) * EPS32
    if config["activation"] != "linear":
        return
    # Training: autograd through tconv3d's bf16 backward; the kernel and bias gradients are float32.
    tx = torch.from_numpy(x).requires_grad_(True)
    cotangent = rng.standard_normal(exact.shape).astype(BF16).astype(np.float32)
    (model(tx).float() * torch.from_numpy(cotangent)).sum().backward()
    dk = layer.kernel.value.grad.numpy()
    reference = tconv3d.Layer(config, kernel.astype(BF16).astype(np.float32), bias)
    rdx, rdk, rdb = reference.gradients(x.astype(BF16).astype(np.float32), cotangent)
    filters_taps = config["filters"] * int(np.prod(config["kernel_size"]))
    assert _scaled_error(tx.grad.numpy(), rdx, rdx) <= EPS + filters_taps * EPS32
    assert _scaled_error(dk, rdk, rdk) <= 1e-4
    if bias is not None:
        db = layer.bias.value.grad.numpy()
        assert _scaled_error(db, rdb, rdb) <= 1e-4


@requires_backend("torch")
@needs_bf16
def test_torch_backend_matches_keras_on_torch():
    import torch

    import keras
    import tconv3d.keras as tk

    # valid padding: a geometry Keras-on-torch computes right (keras-team/keras#22876 is about "same").
    config = {"filters": 7, "kernel_size": [3, 2, 3], "strides": [2, 1, 2], "padding": "valid", "activation": "relu",
              "data_format": "channels_last", "use_bias": True, "dilation_rate": 1, "output_padding": None}
    shape = [2, 4, 5, 3, 6]
    rng = np.random.default_rng(4)
    kernel, bias = _weights(rng, config, 6)
    x = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
    with torch.no_grad():
        got = _torch_model(config, shape, tk.Conv3DTranspose, kernel, bias)(x).float().numpy()
        expected = _torch_model(config, shape, keras.layers.Conv3DTranspose, kernel, bias)(x).float().numpy()
    exact = _exact(config, kernel, bias, x.numpy().astype(BF16))
    assert _scaled_error(got, expected, exact) <= forward_tolerance(_reduction(config, shape))


# --- Keras's mixed_bfloat16 on TensorFlow: the registered op with T = bfloat16 ---------------------------------

if BACKEND == "tensorflow":
    import keras
    import tensorflow as tf

    import tconv3d.keras as tk
    from tconv3d.keras import _tf

PY_FUNCS = {"PyFunc", "EagerPyFunc", "PyFuncStateless"}


def _tf_op_or_skip():
    # A package built with the op library must load it; one built without says why it has none.
    if not os.path.isfile(_tf._OP_LIBRARY):
        pytest.skip(_tf.op_library_status())
    assert _tf.op_library_status() is None, _tf.op_library_status()
    return _tf._load_op_library()[0]


def _keras_on_tf(compute):
    """compute(), or None where Keras-on-TensorFlow's bf16 convolution refuses the layer (TensorFlow's oneDNN
    kernel has no bf16 primitive for some strided geometries: "could not create a primitive descriptor");
    tconv3d computes those, and the tests then hold it to the exact result alone."""
    try:
        return compute()
    except tf.errors.OpError as e:
        assert "primitive" in str(e), e
        return None


def _ran_tf_bf16(model):
    layer = model.layers[-1]
    assert any(k[2] == "bfloat16" and s.latest() is not None for k, s in layer._tconv3d.specializers.items())


def _tf_graph_ops(model, shape):
    graph = tf.function(model).get_concrete_function(tf.TensorSpec(shape, tf.float32)).graph
    return {op.type: op for op in graph.get_operations()}


@requires_backend("tensorflow")
@needs_bf16
@pytest.mark.parametrize("seed", range(10))
def test_tensorflow_mixed_bfloat16_forward(seed):
    _tf_op_or_skip()
    rng = np.random.default_rng(1100 + seed)
    config, shape = _random_config(rng, BOUNDED)
    plain, ours, kernel, bias = _pair(config, shape, seed)
    x = rng.standard_normal(shape).astype(np.float32)
    with tconv3d_warnings() as messages:
        expected = _keras_on_tf(lambda: plain(x).numpy())
        got = ours(x).numpy()
        got_graph = tf.function(ours)(x).numpy()
    assert not messages
    _ran_tf_bf16(ours)
    # The registered op with T = bfloat16 in the graph, no Python function.
    ops = _tf_graph_ops(ours, shape)
    assert "Tconv3dForward" in ops and not set(ops) & PY_FUNCS, sorted(ops)
    assert ops["Tconv3dForward"].get_attr("T") == tf.bfloat16
    assert got.dtype == got_graph.dtype == BF16
    assert np.array_equal(got.view(np.uint16), got_graph.view(np.uint16))
    _check_forward(config, shape, got, expected, _exact(config, kernel, bias, x.astype(BF16)))
    # The same bits as tconv3d's NumPy bf16 layer.
    numpy_layer = tconv3d.Layer(config, kernel, bias, dtype="bfloat16")
    assert np.array_equal(got.view(np.uint16), numpy_layer(x.astype(BF16)).view(np.uint16))


def _tf_gradients(model, x, cotangent):
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(tf.cast(model(xt), tf.float32) * cotangent)
    return [g.numpy() for g in tape.gradient(loss, [xt] + [v.value for v in model.trainable_variables])]


@requires_backend("tensorflow")
@needs_bf16
@pytest.mark.parametrize("seed", range(8))
def test_tensorflow_mixed_bfloat16_gradients(seed):
    _tf_op_or_skip()
    rng = np.random.default_rng(1200 + seed)
    # Smooth activations, as on JAX (a kink turns opposite roundings into a whole cotangent).
    config, shape = _random_config(rng, ["linear", "tanh", "sigmoid"])
    plain, ours, kernel, bias = _pair(config, shape, seed)
    exact_model = _exact_model(config, shape, kernel, bias)
    # bf16 values, so Keras's casts of the input and the cotangent are exact.
    x = rng.standard_normal(shape).astype(BF16).astype(np.float32)
    out_shape = plain.output_shape
    cotangent = rng.standard_normal(out_shape).astype(BF16).astype(np.float32)
    got = _tf_gradients(ours, x, cotangent)
    expected = _keras_on_tf(lambda: _tf_gradients(plain, x, cotangent))
    exact = _tf_gradients(exact_model, x, cotangent)
    _ran_tf_bf16(ours)
    # The bounds of test_keras_mixed_bfloat16_gradients (JAX backend); where Keras-on-TensorFlow refused the
    # layer, against the exact gradients alone.
    _check_gradients(config, shape, out_shape, got, expected or exact, exact)
    # The kernel gradient is the float32 variable's: tconv3d's bf16 backward, not a Keras cast.
    assert ours.layers[-1].kernel.dtype == "float32"


@requires_backend("tensorflow")
@needs_bf16
def test_tensorflow_mixed_bfloat16_unknown_shapes_and_fit():
    _tf_op_or_skip()
    rng = np.random.default_rng(13)
    config = {"filters": 5, "kernel_size": [3, 2, 3], "strides": [2, 1, 2], "padding": "same",
              "activation": "tanh", "use_bias": True, "dtype": "mixed_bfloat16"}
    inputs = keras.Input((None, None, None, 4))
    model = keras.Model(inputs, keras.layers.Conv3DTranspose(**config)(inputs))
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.3 for w in model.get_weights()])
    plain = keras.models.clone_model(model)
    plain.set_weights(model.get_weights())
    tk.accelerate(model)
    kernel, bias = model.get_weights()
    # Spatial sizes known only when the graph runs: the op sizes its bf16 output itself.
    for s in ((1, 3, 4, 5, 4), (2, 5, 2, 3, 4)):
        x = rng.standard_normal(s).astype(np.float32)
        with tconv3d_warnings() as messages:
            got = model.predict(x, verbose=0)
        assert not messages
        expected = plain.predict(x, verbose=0)
        assert got.dtype == BF16 and got.shape == expected.shape
        exact = _exact(model.layers[-1].get_config(), kernel, bias, x.astype(BF16))
        assert _scaled_error(got, expected, exact) <= forward_tolerance(4 * 18), s
    _ran_tf_bf16(model)
    # fit: the gradient through the op and tconv3d's bf16 backward updates the float32 variables as Keras's does.
    x = rng.standard_normal((2, 3, 4, 5, 4)).astype(np.float32)
    target = rng.standard_normal((2, 6, 4, 10, 5)).astype(np.float32)
    for m in (plain, model):
        m.compile(optimizer=keras.optimizers.SGD(1e-2), loss="mse")
    losses = [[m.train_on_batch(x, target) for _ in range(2)] for m in (plain, model)]
    assert np.all(np.isfinite(losses)) and losses[1][1] < losses[1][0], losses
    assert abs(losses[0][1] - losses[1][1]) <= 0.02 * abs(losses[0][1]), losses
    assert model.layers[-1].kernel.dtype == "float32"
    np.testing.assert_allclose(model.get_weights()[0], plain.get_weights()[0], rtol=0, atol=2e-3)


@requires_backend("tensorflow")
@needs_bf16
@pytest.mark.parametrize("policy", ["mixed_bfloat16", "float32"])
def test_tensorflow_in_place_weight_updates_are_seen(policy):
    # assign / assign_add change a TensorFlow variable in place (its buffer keeps its address), between calls
    # of one traced graph: the op compares the weights' bytes, so it repacks and never computes with old ones.
    _tf_op_or_skip()
    config = {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "linear",
              "data_format": "channels_last", "use_bias": True, "dilation_rate": 1, "output_padding": None}
    shape = [1, 3, 4, 2, 5]
    plain, ours, _, _ = _pair(config, shape, 6, policy=policy)
    x = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
    f, g = tf.function(ours), tf.function(plain)
    layer, reference = ours.layers[-1], plain.layers[-1]
    updates = [lambda v: v.assign(v * -0.5), lambda v: v.assign_add(tf.ones_like(v) * 0.25)]
    before = f(x).numpy()
    for update in updates:
        for v in (layer.kernel, layer.bias, reference.kernel, reference.bias):
            update(v)
        got, expected = f(x).numpy(), g(x).numpy()
        assert not np.array_equal(got, before)
        before = got
        if policy == "float32":
            exact = tconv3d.Layer(config, layer.kernel.numpy(), layer.bias.numpy())(x)
            assert _scaled_error(got, exact, exact) <= 5 * 27 * 4 * EPS32
            continue
        exact = tconv3d.Layer(config, layer.kernel.numpy().astype(BF16).astype(np.float32), layer.bias.numpy())(
            x.astype(BF16).astype(np.float32))
        assert _scaled_error(got, expected, exact) <= forward_tolerance(5 * 27)
        assert _scaled_error(got, exact, exact) <= EPS + 5 * 27 * EPS32


@requires_backend("tensorflow")
@needs_bf16
def test_tensorflow_bf16_op_errors_name_the_argument():
    op = _tf_op_or_skip()
    config = {"filters": 4, "kernel_size": 2, "use_bias": True}
    specs = {dtype: tconv3d._core.Specializer(json.dumps(config), None, "auto", "auto", 1, False, dtype)
             for dtype in ("float32", "bfloat16")}
    ids = {dtype: spec.register_for_ffi() for dtype, spec in specs.items()}
    try:
        x, k, b = tf.ones((1, 2, 2, 2, 3), tf.bfloat16), tf.ones((2, 2, 2, 4, 3)), tf.ones((4,))
        y = op.tconv3d_forward(x, k, b, cache_id=ids["bfloat16"])
        assert y.dtype == tf.bfloat16 and y.shape == (1, 3, 3, 3, 4)
        # The op's T and the registered layer's dtype disagree: an error, never a conversion.
        with pytest.raises(tf.errors.InvalidArgumentError, match="x: expected float32, got bfloat16"):
            op.tconv3d_forward(x, k, b, cache_id=ids["float32"])
        with pytest.raises(tf.errors.InvalidArgumentError, match="x: expected bfloat16, got float32"):
            op.tconv3d_forward(tf.cast(x, tf.float32), k, b, cache_id=ids["bfloat16"])
        # The weights are the float32 variables: TensorFlow's type check refuses bf16 ones.
        with pytest.raises((TypeError, tf.errors.InvalidArgumentError)):
            op.tconv3d_forward(x, tf.cast(k, tf.bfloat16), b, cache_id=ids["bfloat16"])
        with pytest.raises(tf.errors.InvalidArgumentError, match="channels"):
            op.tconv3d_forward(tf.ones((1, 2, 2, 2, 5), tf.bfloat16), k, b, cache_id=ids["bfloat16"])
        # Types outside {float, bfloat16}.
        with pytest.raises((TypeError, tf.errors.InvalidArgumentError)):
            op.tconv3d_forward(tf.cast(x, tf.float16), k, b, cache_id=ids["bfloat16"])
    finally:
        for i in ids.values():
            tconv3d._core.release_ffi(i)


@requires_backend("tensorflow")
@needs_bf16
def test_tensorflow_numpy_function_fallback_runs_bf16(monkeypatch):
    # The path of a package built without TensorFlow's op library: the same bits through tf.numpy_function.
    monkeypatch.setattr(_tf, "_load_op_library", lambda: (None, "forced by the test"))
    rng = np.random.default_rng(17)
    config, shape = _random_config(rng, ["tanh"])
    plain, ours, kernel, bias = _pair(config, shape, 4)
    x = rng.standard_normal(shape).astype(np.float32)
    ops = _tf_graph_ops(ours, shape)
    assert "Tconv3dForward" not in ops and set(ops) & PY_FUNCS, sorted(ops)
    got = tf.function(ours)(x).numpy()
    numpy_layer = tconv3d.Layer(config, kernel, bias, dtype="bfloat16")
    assert got.dtype == BF16 and np.array_equal(got.view(np.uint16), numpy_layer(x.astype(BF16)).view(np.uint16))
    cotangent = rng.standard_normal(got.shape).astype(BF16).astype(np.float32)
    got_grads, expected_grads = _tf_gradients(ours, x, cotangent), _tf_gradients(plain, x, cotangent)
    for a, b in zip(got_grads, expected_grads):
        assert a.dtype == b.dtype and _scaled_error(a, b, b) <= 8 * EPS


# --- JAX and TensorFlow alike ---------------------------------------------------------------------------------


@pytest.fixture(params=["jax", "tensorflow"])
def jax_or_tensorflow(request):
    """The Keras backend of a test that runs alike on JAX and TensorFlow: one case per backend, each skipped
    in the other backends' sessions."""
    if BACKEND != request.param:
        pytest.skip(f"needs KERAS_BACKEND={request.param} (this session: {BACKEND})")
    return request.param


def test_no_avx512_bf16_falls_back_to_keras_with_one_warning(jax_or_tensorflow):
    script = (
        "import warnings, numpy as np, keras, tconv3d.keras as tk\n"
        "layer = dict(filters=3, kernel_size=2, strides=2, padding='same', dtype='mixed_bfloat16')\n"
        "models = [keras.Sequential([keras.Input((3, 3, 3, 2)), c(**layer)]) for c in "
        "(keras.layers.Conv3DTranspose, tk.Conv3DTranspose)]\n"
        "models[1].set_weights(models[0].get_weights())\n"
        "x = np.random.default_rng(0).standard_normal((2, 3, 3, 3, 2)).astype(np.float32)\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    got = [models[1].predict(x, verbose=0) for _ in range(2)]\n"
        "messages = [str(w.message) for w in caught if 'tconv3d.keras' in str(w.message)]\n"
        "assert len(messages) == 1 and 'avx512_bf16' in messages[0], messages\n"
        "expected = models[0].predict(x, verbose=0)\n"
        "assert got[0].dtype == expected.dtype and np.array_equal(got[0], expected)\n"
        "print('fell back once')\n")
    env = dict(os.environ, TCONV3D_CPU_MASK="avx512_bf16", KERAS_BACKEND=jax_or_tensorflow)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0 and "fell back once" in result.stdout, result.stderr[-3000:]


@needs_bf16
def test_axis_activation_and_pure_bfloat16_fall_back(jax_or_tensorflow):
    for policy, activation, reason in (("mixed_bfloat16", "softmax", "elementwise"),
                                       ("bfloat16", "relu", "variable dtype bfloat16")):
        config = {"filters": 3, "kernel_size": 2, "activation": activation, "strides": 1, "padding": "valid",
                  "data_format": "channels_last", "use_bias": True, "dilation_rate": 1, "output_padding": None}
        plain, ours, _, _ = _pair(config, [1, 2, 2, 2, 2], 0, policy=policy)
        x = np.ones((1, 2, 2, 2, 2), np.float32)
        # Two calls, one warning.
        with tconv3d_warnings() as messages:
            got = [np.asarray(ours(x)) for _ in range(2)]
        assert len(messages) == 1 and reason in messages[0], messages
        assert np.array_equal(got[0], np.asarray(plain(x)))


# Each backend's bf16 side-by-side command: its module, extra arguments, and a word its table prints.
BENCH_COMMANDS = {"jax": ("tconv3d.bench.bf16", ["--threads", "1"], "geomean"),
                  "tensorflow": ("tconv3d.bench.tf_bf16", [], "fwd+bwd")}


@needs_bf16
def test_bench_command_runs(jax_or_tensorflow):
    module, extra, word = BENCH_COMMANDS[jax_or_tensorflow]
    result = subprocess.run([sys.executable, "-m", module, "--layers", "k3s2_op1_odd", *extra, "--min-time", "0"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "k3s2_op1_odd" in result.stdout and word in result.stdout, result.stdout
    bad = subprocess.run([sys.executable, "-m", module, "--layers", "no_such_layer"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "no_such_layer" in bad.stderr
