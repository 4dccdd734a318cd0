"""One Keras backend's measurements (run in its own process: Keras picks a backend once per process).

Prints one JSON object per line: a suite layer, the demo model, the call overhead.
"""
import json
import os
import sys

import numpy as np

from tconv3d.bench._timing import interleaved_ms, per_call_us


def _flops(config, shape):
    """2*N*D*H*W*Cin*filters*kd*kh*kw over the input, as bench/ and tools/cmd_bench.cc count it."""
    channels_last = config.get("data_format", "channels_last") == "channels_last"
    spatial, cin = (shape[1:4], shape[4]) if channels_last else (shape[2:5], shape[1])
    return 2.0 * shape[0] * float(np.prod(spatial)) * cin * config["filters"] * float(np.prod(config["kernel_size"]))


def _compiled(layer, backend):
    """The layer as each backend runs it fastest: jit, tf.function, torch.no_grad."""
    if backend == "jax":
        import jax

        weights = [v.value for v in layer.weights]
        f = jax.jit(lambda w, x: layer.stateless_call(w, [], x)[0])
        return lambda x: f(weights, x).block_until_ready()
    if backend == "tensorflow":
        import tensorflow as tf

        f = tf.function(layer, jit_compile=False)
        return lambda x: f(x).numpy()
    import torch

    def run(x):
        with torch.no_grad():
            return layer(x).numpy()
    return run


def _pair(config, shape, backend, seed=0):
    import keras

    import tconv3d.keras as tk

    plain = keras.layers.Conv3DTranspose(**config)
    plain.build(tuple(shape))
    rng = np.random.default_rng(seed)
    plain.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.05 for w in plain.get_weights()])
    ours = tk.Conv3DTranspose.from_config(plain.get_config())
    ours.build(tuple(shape))
    ours.set_weights(plain.get_weights())
    x = rng.standard_normal(shape).astype(np.float32)
    if backend == "torch":
        import torch

        x = torch.from_numpy(x)
    return _compiled(plain, backend), _compiled(ours, backend), x


def suite(backend, layers, min_seconds, statistic="median"):
    for entry in layers:
        config, shape = dict(entry["config"]), entry["input_shape"]
        keras_fn, ours_fn, x = _pair(config, shape, backend)
        keras_ms, ours_ms, runs = interleaved_ms(lambda: keras_fn(x), lambda: ours_fn(x), min_seconds,
                                                 statistic=statistic)
        flops = _flops(config, shape)
        yield {"kind": "layer", "backend": backend, "name": entry["name"], "keras_ms": keras_ms, "tconv3d_ms": ours_ms,
               "keras_gflops": flops / keras_ms / 1e6, "tconv3d_gflops": flops / ours_ms / 1e6, "runs": runs}


def model(backend, path, min_seconds, statistic="median"):
    import keras

    import tconv3d.keras as tk

    plain = keras.models.load_model(path)
    ours = tk.accelerate(keras.models.load_model(path))
    shape = [1 if d is None else d for d in plain.inputs[0].shape]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    keras_ms, ours_ms, runs = interleaved_ms(lambda: plain.predict(x, verbose=0),
                                             lambda: ours.predict(x, verbose=0), min_seconds, min_runs=2,
                                             statistic=statistic)
    yield {"kind": "model", "backend": backend, "name": os.path.basename(path), "keras_ms": keras_ms,
           "tconv3d_ms": ours_ms, "runs": runs}


def overhead():
    """µs per call of a 1-voxel layer: the binding alone, the NumPy API, and the FFI call inside jax.jit."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    import tconv3d
    import tconv3d.jax as tj

    config = {"filters": 8, "kernel_size": 1, "use_bias": False}
    kernel = np.eye(8, dtype=np.float32).reshape(1, 1, 1, 8, 8)
    x = np.ones((1, 1, 1, 1, 8), np.float32)
    layer = tconv3d.Layer(config, kernel, threads=1)
    spec, k = layer._spec, layer.kernel
    binding = per_call_us(lambda: spec.forward(x, k, None, False), 20000)
    numpy_api = per_call_us(lambda: layer(x), 20000)
    op = tj.Op(config, threads=1)
    n = 2000
    loop = jax.jit(lambda x, k: lax.fori_loop(0, n, lambda i, y: op(y, k), x))
    empty = jax.jit(lambda x, k: lax.fori_loop(0, n, lambda i, y: y * 1.0, x))
    xj, kj = jnp.asarray(x), jnp.asarray(kernel)
    ffi = per_call_us(lambda: loop(xj, kj).block_until_ready(), 20) / n
    loop_cost = per_call_us(lambda: empty(xj, kj).block_until_ready(), 20) / n
    # The loop's own cost (an elementwise op per iteration) is taken out of the FFI figure.
    yield {"kind": "overhead", "binding_us": binding, "numpy_api_us": numpy_api, "ffi_in_jit_us": ffi - loop_cost}


def tf_path():
    """How tconv3d.keras ran on TensorFlow: its registered op, or tf.numpy_function (and why)."""
    from tconv3d.keras import _tf

    reason = _tf.op_library_status()
    return {"kind": "tf_path", "backend": "tensorflow", "path": "registered op" if reason is None else
            f"tf.numpy_function ({reason})"}


def main():
    request = json.loads(sys.argv[1])
    backend = request["backend"]
    os.environ["KERAS_BACKEND"] = backend
    import keras  # noqa: F401 - after KERAS_BACKEND

    if backend == "tensorflow" and request.get("tf_numpy_function"):
        from tconv3d.keras import _tf

        _tf._load_op_library = lambda: (None, "--tf-numpy-function")

    out = []
    statistic = request.get("statistic", "median")
    out += list(suite(backend, request["layers"], request["min_seconds"], statistic))
    if request.get("model"):
        out += list(model(backend, request["model"], request["min_seconds"], statistic))
    if request.get("overhead"):
        out += list(overhead())
    if backend == "tensorflow":
        out.append(tf_path())
    for line in out:
        print("TCONV3D_BENCH " + json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
