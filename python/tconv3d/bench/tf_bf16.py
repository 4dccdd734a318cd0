"""python -m tconv3d.bench.tf_bf16 [--layers a,b] [--min-time S] [--stat median|min]

Keras's mixed_bfloat16 on the TensorFlow backend, per suite layer
(bench/layers.json), interleaved in one process, each a tf.function:
- Keras's own Conv3DTranspose under mixed_bfloat16 (TensorFlow's oneDNN bf16 kernels),
- tconv3d.keras under mixed_bfloat16 (the Tconv3dForward op with T = bfloat16),
- tconv3d.keras in float32 (the same layer without the policy).
Milliseconds for the forward pass, and for the forward pass with the
gradients of x, the kernel and the bias (a GradientTape step). A layer
Keras-on-TensorFlow cannot run in bf16 says so in its column.
"""
import argparse
import json
import math
import os
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"

import numpy as np  # noqa: E402

from tconv3d.bench.__main__ import _data  # noqa: E402
from tconv3d.bench._timing import interleaved_ms_all  # noqa: E402

COLUMNS = ("keras_bf16", "tconv3d_bf16", "tconv3d_f32")


def _models(config, shape, rng):
    import keras

    import tconv3d.keras as tk

    classes = {"keras_bf16": (keras.layers.Conv3DTranspose, "mixed_bfloat16"),
               "tconv3d_bf16": (tk.Conv3DTranspose, "mixed_bfloat16"),
               "tconv3d_f32": (tk.Conv3DTranspose, "float32")}
    models = {name: keras.Sequential([keras.Input(tuple(shape[1:]), batch_size=shape[0]), cls(**config, dtype=policy)])
              for name, (cls, policy) in classes.items()}
    weights = [rng.standard_normal(w.shape).astype(np.float32) * 0.05 for w in models["keras_bf16"].get_weights()]
    for m in models.values():
        m.set_weights(weights)
    return models


def _callables(model, x):
    import tensorflow as tf

    forward = tf.function(model)

    @tf.function
    def train(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(tf.cast(model(x), tf.float32)))
        return tape.gradient(loss, [x] + [v.value for v in model.trainable_variables])

    # .numpy() waits for the result.
    return (lambda: forward(x).numpy()), (lambda: [g.numpy() for g in train(x)])


def _runnable(f):
    import tensorflow as tf

    try:
        f()
        return f, None
    except tf.errors.OpError as e:
        return None, str(e).splitlines()[0][:80]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tconv3d.bench.tf_bf16", description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default=_data("layers.json"))
    parser.add_argument("--layers", default="", help="comma-separated suite layer names (default: all)")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per layer and pass")
    parser.add_argument("--stat", choices=["median", "min"], default="median")
    args = parser.parse_args(argv)
    with open(args.suite) as f:
        suite = {layer["name"]: layer for layer in json.load(f)["layers"]}
    names = [n for n in args.layers.split(",") if n] or list(suite)
    unknown = [n for n in names if n not in suite]
    if unknown:
        parser.error(f"--layers: no suite layer named {', '.join(unknown)} (known: {', '.join(suite)})")

    import tensorflow as tf

    rng = np.random.default_rng(0)
    print(f"ms per call ({args.stat}), Keras mixed_bfloat16 on TensorFlow vs tconv3d.keras; "
          f"ratio = Keras / tconv3d bf16")
    print(f"{'layer':18} {'pass':8} " + " ".join(f"{c:>13}" for c in COLUMNS) + "   ratio")
    ratios = {"forward": [], "fwd+bwd": []}
    for name in names:
        layer = suite[name]
        models = _models(layer["config"], layer["input_shape"], rng)
        x = tf.constant(rng.standard_normal(layer["input_shape"]).astype(np.float32))
        passes = {c: _callables(models[c], x) for c in COLUMNS}
        for i, label in enumerate(("forward", "fwd+bwd")):
            runnable = [_runnable(passes[c][i]) for c in COLUMNS]
            times, _ = interleaved_ms_all([f for f, _ in runnable], args.min_time, statistic=args.stat)
            cells = [f"{t:13.2f}" if t is not None else f"{'refused':>13}" for t in times]
            ratio = times[0] / times[1] if None not in times[:2] else None
            if ratio is not None:
                ratios[label].append(ratio)
            print(f"{name:18} {label:8} " + " ".join(cells) + (f"   {ratio:.2f}x" if ratio else "   -"))
            for column, (_, why) in zip(COLUMNS, runnable):
                if why:
                    print(f"{'':28}{column}: {why}")
    for label, values in ratios.items():
        if values:
            print(f"geomean {label}: {math.exp(sum(map(math.log, values)) / len(values)):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
