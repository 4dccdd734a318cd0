#!/usr/bin/env python3
"""Writes the backward-pass fixtures for tconv3d's tests (tests/data/backward/).

Gradients come from jax.grad of a real keras.layers.Conv3DTranspose on the JAX
backend, so they are what a Keras 3 user training on JAX gets. Run with a venv
that has Keras 3 and JAX:

    KERAS_BACKEND=jax /work/main/.venv-test/bin/python scripts/make_backward_fixtures.py

What it writes, all deterministic (fixed seeds, no clock):
  <case>/layer.json       the layer serialized as in a model file
  <case>/input.npy, kernel.npy, bias.npy (when use_bias), grad_output.npy (dy, random),
  <case>/output.npy       Keras's forward output y
  <case>/grad_input.npy, grad_kernel.npy, grad_bias.npy (when use_bias)
                          d(sum(y * dy)) / d(x, kernel, bias), by jax.grad of the layer's stateless_call
  index.json              every case: kwargs, shapes, use_bias, note
  activation_grads.json   jax.grad of each Keras 3 activation at its kinks and at random points
                          (float32, as Keras runs: its ops cast float64 to floatx), for the
                          elementwise derivative tests

Notes:
  * sparsemax: Keras 3 <= 3.15 computes the threshold from the sum of all cumulative sums in the
    support (keras-team/keras#23425); tconv3d implements the correct sparsemax (see
    make_keras_fixtures.py), so its gradients here are jax.grad of the layer with a linear
    activation followed by the correct sparsemax, written in jax.numpy the way Keras writes its own.
"""
import json
import os
import shutil
import zlib

os.environ.setdefault("KERAS_BACKEND", "jax")
assert os.environ["KERAS_BACKEND"] == "jax", "the fixtures are jax.grad of Keras on the JAX backend"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import keras  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "backward")
CL, CF = "channels_last", "channels_first"


def seed_of(*parts):
    return zlib.crc32("/".join(str(p) for p in parts).encode())


def to_json(value):
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(to_json(value), f, indent=1, sort_keys=True)
        f.write("\n")


def save(path, array):
    np.save(path, np.ascontiguousarray(np.asarray(array, dtype=np.float32)))


def simplex_sparsemax(z):
    """Martins & Astudillo's sparsemax over the last axis, tau = (cumsum[k] - 1) / k, in jax.numpy."""
    z_sorted = -jnp.sort(-z, axis=-1)
    cumsum = jnp.cumsum(z_sorted, axis=-1)
    r = jnp.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    support = z_sorted - (cumsum - 1) / r > 0
    k = jnp.sum(support, axis=-1, keepdims=True)
    tau = (jnp.take_along_axis(cumsum, k - 1, axis=-1) - 1) / k.astype(z.dtype)
    return jnp.maximum(z - tau, 0.0)


# ---------------------------------------------------------------------------
# Layer cases: every Keras 3 activation, over geometries that cover both
# paddings, strides 1-3, dilation, output_padding, both data formats, batch > 1
# and no bias. Shapes are tiny so the whole folder stays well under 2 MB.

GEOMETRIES = [
    (dict(kernel_size=3, strides=2, padding="same"), (2, 2, 3, 2, 3)),
    (dict(kernel_size=2, strides=1, padding="valid"), (2, 3, 2, 3, 3)),
    (dict(kernel_size=(2, 3, 1), strides=(3, 1, 2), padding="valid"), (1, 2, 3, 2, 5)),
    (dict(kernel_size=3, strides=2, padding="valid", output_padding=1), (1, 2, 2, 3, 3)),
    (dict(kernel_size=3, dilation_rate=2, padding="same"), (1, 3, 3, 3, 3)),
    (dict(kernel_size=(2, 4, 2), strides=(2, 3, 2), padding="same", output_padding=(1, 2, 0)), (2, 2, 2, 2, 3)),
    (dict(kernel_size=3, strides=2, padding="same", data_format=CF), (2, 3, 2, 3, 2)),
    (dict(kernel_size=(1, 2, 3), strides=(1, 2, 2), padding="valid", data_format=CF, use_bias=False),
     (1, 5, 2, 2, 3)),
    (dict(kernel_size=(3, 2, 2), dilation_rate=(2, 1, 2), padding="valid", data_format=CF), (2, 3, 3, 2, 2)),
]

ELEMENTWISE = ["linear", "relu", "leaky_relu", "relu6", "elu", "celu", "selu", "softplus", "softsign",
               "squareplus", "soft_shrink", "hard_shrink", "sparse_plus", "silu", "hard_silu", "gelu", "tanh",
               "tanh_shrink", "hard_tanh", "sigmoid", "hard_sigmoid", "sparse_sigmoid", "log_sigmoid",
               "exponential", "mish"]
AXIS = ["softmax", "log_softmax", "glu", "sparsemax"]


def cases():
    out = []
    for i, act in enumerate(ELEMENTWISE):
        kwargs, shape = GEOMETRIES[i % len(GEOMETRIES)]
        out.append((f"{act}_g{i % len(GEOMETRIES)}", dict(kwargs, filters=4 + i % 2, activation=act), shape))
    for j, act in enumerate(AXIS):
        for g in (j % 3, 6 + j % 3):  # one channels_last and one channels_first geometry each
            kwargs, shape = GEOMETRIES[g]
            out.append((f"{act}_g{g}", dict(kwargs, filters=4 if act == "glu" else 5, activation=act), shape))
    return out


def make_layer(kwargs):
    return keras.layers.Conv3DTranspose(**kwargs)


def write_case(name, kwargs, shape):
    rng = np.random.default_rng(seed_of(name))
    act = kwargs["activation"]
    layer = make_layer(kwargs)
    channels_first = kwargs.get("data_format") == CF
    x = rng.uniform(-1, 1, size=shape).astype(np.float32)
    in_channels = shape[1] if channels_first else shape[-1]
    kernel = rng.uniform(-0.5, 0.5, size=(*layer.kernel_size, kwargs["filters"], in_channels)).astype(np.float32)
    use_bias = kwargs.get("use_bias", True)
    bias = rng.uniform(-0.5, 0.5, size=(kwargs["filters"],)).astype(np.float32) if use_bias else None
    layer.build(x.shape)
    layer.set_weights([kernel, bias] if use_bias else [kernel])
    # sparsemax: the correct one after a linear twin (see the module notes).
    twin = None
    if act == "sparsemax":
        twin = make_layer(dict(kwargs, activation="linear"))
        twin.build(x.shape)
        twin.set_weights([kernel, bias] if use_bias else [kernel])

    def forward(xv, kv, bv):
        weights = [kv, bv] if use_bias else [kv]
        if twin is not None:
            z, _ = twin.stateless_call(weights, [], xv)
            return simplex_sparsemax(z)
        y, _ = layer.stateless_call(weights, [], xv)
        return y

    y = np.asarray(forward(jnp.asarray(x), jnp.asarray(kernel), jnp.asarray(bias) if use_bias else None))
    if glu_odd := (act == "glu" and y.shape[-1] * 2 != layer.compute_output_shape(x.shape)[-1]):
        raise AssertionError(f"{name}: glu output {y.shape} {glu_odd}")
    dy = rng.uniform(-1, 1, size=y.shape).astype(np.float32)
    loss = lambda xv, kv, bv: jnp.sum(forward(xv, kv, bv) * dy)  # noqa: E731
    if use_bias:
        gx, gk, gb = jax.grad(loss, argnums=(0, 1, 2))(jnp.asarray(x), jnp.asarray(kernel), jnp.asarray(bias))
    else:
        gx, gk = jax.grad(lambda a, b: loss(a, b, None), argnums=(0, 1))(jnp.asarray(x), jnp.asarray(kernel))
        gb = None
    d = os.path.join(OUT, name)
    os.makedirs(d)
    write_json(os.path.join(d, "layer.json"), keras.saving.serialize_keras_object(layer))
    save(os.path.join(d, "input.npy"), x)
    save(os.path.join(d, "kernel.npy"), kernel)
    if use_bias:
        save(os.path.join(d, "bias.npy"), bias)
    save(os.path.join(d, "output.npy"), y)
    save(os.path.join(d, "grad_output.npy"), dy)
    save(os.path.join(d, "grad_input.npy"), gx)
    save(os.path.join(d, "grad_kernel.npy"), gk)
    if use_bias:
        save(os.path.join(d, "grad_bias.npy"), gb)
    return dict(name=name, kwargs=kwargs, input_shape=list(shape), output_shape=list(y.shape), use_bias=use_bias,
                note="sparsemax: the correct one (Keras's has a bug)" if act == "sparsemax" else "")


# ---------------------------------------------------------------------------
# Elementwise derivatives at the kinks. Each entry: the activation (Keras name
# plus the parameters tconv3d's Activation carries), points and jax.grad there.

KINKS = [-7.0, -6.0, -3.5, -3.0, -2.5, -2.0, -1.5, -1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0,
         2.5, 3.0, 3.5, 5.0, 6.0, 7.0]


def activation_table():
    from keras import activations as A
    entries = []

    def add(name, fn, params=None, extra=()):
        rng = np.random.default_rng(seed_of("act", name, json.dumps(params, sort_keys=True)))
        xs = np.asarray(sorted(set(KINKS) | set(extra) | set(rng.uniform(-8, 8, 12).tolist())), np.float32)
        grad = jax.vmap(jax.grad(lambda v: fn(v)))(jnp.asarray(xs))
        entries.append(dict(name=name, params=params or {}, x=[float(v) for v in xs],
                            grad=[float(g) for g in np.asarray(grad)]))

    for name in ELEMENTWISE:
        add(name, A.get(name))
    add("gelu_tanh", lambda v: A.gelu(v, approximate=True))
    add("leaky_relu", lambda v: A.leaky_relu(v, negative_slope=0.1), dict(alpha=0.1))
    add("elu", lambda v: A.elu(v, alpha=0.5), dict(alpha=0.5))
    add("celu", lambda v: A.celu(v, alpha=2.0), dict(alpha=2.0))
    add("soft_shrink", lambda v: A.soft_shrink(v, threshold=1.0), dict(alpha=1.0))
    add("hard_shrink", lambda v: A.hard_shrink(v, threshold=1.0), dict(alpha=1.0))
    add("squareplus", lambda v: A.squareplus(v, b=1.0), dict(alpha=1.0))
    for params in [dict(alpha=0.1), dict(max_value=5.0), dict(max_value=6.0), dict(alpha=0.1, max_value=6.0),
                   dict(threshold=1.0), dict(alpha=0.1, threshold=1.0, max_value=5.0),
                   dict(threshold=-1.0, max_value=5.0), dict(threshold=-1.0, max_value=0.0)]:
        add("relu", lambda v, p=params: A.relu(v, negative_slope=p.get("alpha", 0.0), max_value=p.get("max_value"),
                                               threshold=p.get("threshold", 0.0)), params)
    return entries


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    index = [write_case(*c) for c in cases()]
    write_json(os.path.join(OUT, "index.json"), dict(keras=keras.__version__, jax=jax.__version__, cases=index))
    write_json(os.path.join(OUT, "activation_grads.json"), activation_table())
    print(f"wrote {len(index)} cases to {OUT}")


if __name__ == "__main__":
    main()
