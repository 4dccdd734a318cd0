"""tconv3d.jax.conv3d_transpose under jit, vmap and grad, against Keras's own layer on JAX."""
import json

import numpy as np
import pytest

from conftest import BACKEND, assert_close, keras_layer, random_config, requires_backend

pytestmark = requires_backend("jax")

if BACKEND == "jax":
    import jax
    import jax.numpy as jnp

    import tconv3d.jax as tj

KWARGS = ("strides", "padding", "output_padding", "data_format", "dilation_rate", "activation")


def _setup(seed, **overrides):
    rng = np.random.default_rng(seed)
    config, shape = random_config(rng, **overrides)
    layer = keras_layer(config, shape)
    x = rng.standard_normal(shape).astype(np.float32)
    kwargs = {k: config[k] for k in KWARGS}
    return config, layer, x, kwargs


@pytest.mark.parametrize("seed", range(12))
def test_jit_vmap_and_grad_match_keras(seed):
    # Activations JAX's table covers exactly as Keras defines them.
    config, layer, x, kwargs = _setup(100 + seed)
    weights = [jnp.asarray(w) for w in layer.get_weights()]
    kernel, bias = weights[0], (weights[1] if config["use_bias"] else None)

    def ours(x, kernel, bias):
        return tj.conv3d_transpose(x, kernel, bias, **kwargs)

    def theirs(x, kernel, bias):
        y, _ = layer.stateless_call([kernel] + ([bias] if bias is not None else []), [], x)
        return y

    what = json.dumps(config)
    expected = theirs(x, kernel, bias)
    assert_close(jax.jit(ours)(x, kernel, bias), expected, "jit " + what)

    xs = np.stack([x, -0.5 * x])
    assert_close(jax.vmap(ours, in_axes=(0, None, None))(xs, kernel, bias),
                 jax.vmap(theirs, in_axes=(0, None, None))(xs, kernel, bias), "vmap x " + what)

    # Loss weights that make the gradient depend on every output element.
    w = jnp.asarray(np.random.default_rng(seed).standard_normal(expected.shape).astype(np.float32))
    argnums = (0, 1, 2) if bias is not None else (0, 1)
    g_ours = jax.jit(jax.grad(lambda *a: jnp.sum(ours(*a) * w), argnums=argnums))(x, kernel, bias)
    g_theirs = jax.grad(lambda *a: jnp.sum(theirs(*a) * w), argnums=argnums)(x, kernel, bias)
    for name, a, b in zip(("dx", "dkernel", "dbias"), g_ours, g_theirs):
        assert_close(a, b, f"{name} {what}")


def test_vmap_over_weights_and_nested_vmap():
    config, layer, x, kwargs = _setup(7, activation="relu", data_format="channels_first")
    kernel, *rest = [jnp.asarray(w) for w in layer.get_weights()]
    bias = rest[0] if rest else None
    kernels = jnp.stack([kernel, 2.0 * kernel, -kernel])
    f = lambda x, k: tj.conv3d_transpose(x, k, bias, **kwargs)  # noqa: E731
    got = jax.jit(jax.vmap(f, in_axes=(None, 0)))(x, kernels)
    for i in range(3):
        assert_close(got[i], f(x, kernels[i]), f"kernel {i}")
    xs = jnp.stack([jnp.stack([x, x + 1.0]), jnp.stack([x - 1.0, 2.0 * x])])
    nested = jax.vmap(jax.vmap(f, in_axes=(0, None)), in_axes=(0, None))(xs, kernel)
    assert_close(nested[1, 0], f(x - 1.0, kernel), "nested vmap")


def test_handler_keeps_the_layer_and_follows_weight_changes():
    rng = np.random.default_rng(21)
    x = rng.standard_normal((1, 4, 4, 4, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 5, 3)).astype(np.float32)
    op = tj.Op({"filters": 5, "kernel_size": 3, "strides": 2, "padding": "same", "use_bias": False})
    f = jax.jit(lambda x, k: op(x, k))
    spec = op.specializers()[0]
    first = f(x, kernel)
    for _ in range(3):
        assert_close(f(x, kernel), first, "same weights")
    assert spec.builds == 1, "the handler specialized or packed again for unchanged weights"
    kernel2 = kernel * 2.0
    assert_close(f(x, kernel2), 2.0 * np.asarray(first), "new weights, same compiled program")
    assert spec.builds == 2
    f(x, kernel2)
    assert spec.builds == 2


def test_bad_inputs_raise_at_trace_time():
    kernel = jnp.zeros((3, 3, 3, 4, 2), jnp.float32)
    with pytest.raises(ValueError, match="channel|kernel"):
        jax.jit(lambda x: tj.conv3d_transpose(x, kernel))(jnp.zeros((1, 2, 2, 2, 3), jnp.float32))
    with pytest.raises(TypeError, match="float32"):  # bf16 is a bf16 op (test_bf16.py); float16 is refused
        tj.conv3d_transpose(jnp.zeros((1, 2, 2, 2, 2), jnp.float16), kernel)
    with pytest.raises(ValueError, match="padding"):
        tj.conv3d_transpose(jnp.zeros((1, 2, 2, 2, 2), jnp.float32), kernel, padding="causal")


def test_activation_without_a_jax_gradient_says_so():
    x = jnp.ones((1, 2, 2, 2, 2), jnp.float32)
    kernel = jnp.ones((2, 2, 2, 4, 2), jnp.float32)
    # sparsemax runs forward (fused in C++) but has no JAX table entry for the backward pass.
    y = tj.conv3d_transpose(x, kernel, activation="sparsemax")
    assert y.shape == (1, 3, 3, 3, 4)
    with pytest.raises(NotImplementedError, match="sparsemax"):
        jax.grad(lambda x: jnp.sum(tj.conv3d_transpose(x, kernel, activation="sparsemax")))(x)


def test_per_example_gradients_under_vmap_of_grad():
    # vmap(grad): one kernel and bias gradient per batch element, each from
    # tconv3d's backward kernels on that element alone.
    config, layer, x, kwargs = _setup(31, activation="tanh", data_format="channels_last")
    kernel, *rest = [jnp.asarray(w) for w in layer.get_weights()]
    bias = rest[0] if rest else jnp.zeros((config["filters"],), jnp.float32)
    xs = jnp.stack([x, 0.5 * x, -x])

    def loss(x, k, b, f):
        return jnp.sum(f(x, k, b) ** 2)

    ours = lambda x, k, b: tj.conv3d_transpose(x, k, b, **{**kwargs, "activation": "tanh"})  # noqa: E731
    theirs = lambda x, k, b: layer.stateless_call([k, b], [], x)[0]  # noqa: E731
    if not config["use_bias"]:
        ours = lambda x, k, b: tj.conv3d_transpose(x, k, None, **{**kwargs, "activation": "tanh"})  # noqa: E731
        theirs = lambda x, k, b: layer.stateless_call([k], [], x)[0]  # noqa: E731
    per_example = jax.vmap(jax.grad(lambda *a: loss(*a, ours), argnums=(0, 1, 2)), in_axes=(0, None, None))
    reference = jax.vmap(jax.grad(lambda *a: loss(*a, theirs), argnums=(0, 1, 2)), in_axes=(0, None, None))
    got, want = jax.jit(per_example)(xs, kernel, bias), reference(xs, kernel, bias)
    for name, a, b in zip(("dx", "dkernel", "dbias"), got, want):
        assert a.shape == b.shape, name
        assert_close(a, b, name + " " + json.dumps(config))


@pytest.mark.parametrize("seed", range(20))
def test_numpy_gradients_match_jax_grad_of_keras(seed):
    # tconv3d.Layer.gradients: the whole backward pass in C++, the activation's
    # derivative included, against JAX's autodiff of Keras's own layer.
    import tconv3d

    config, layer, x, _ = _setup(500 + seed)
    weights = layer.get_weights()
    ours = tconv3d.Layer(config, *weights)
    y = ours(x)
    dy = np.random.default_rng(seed).standard_normal(y.shape).astype(np.float32)

    def theirs(x, *w):
        return jnp.sum(layer.stateless_call(list(w), [], x)[0] * dy)

    want = jax.grad(theirs, argnums=tuple(range(1 + len(weights))))(x, *[jnp.asarray(w) for w in weights])
    got = ours.gradients(x, dy, y)
    what = json.dumps(config)
    for name, a, b in zip(("dx", "dkernel", "dbias"), got, want):
        assert_close(a, b, f"{name} {what}")
    again = ours.gradients(x, dy)  # y recomputed inside
    for a, b in zip(again, got):
        if a is not None:
            np.testing.assert_array_equal(a, b)
