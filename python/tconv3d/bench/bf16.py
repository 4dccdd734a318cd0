"""python -m tconv3d.bench.bf16 [--layers a,b] [--threads N] [--min-time S] [--stat median|min] [--no-keras] [--json]

bf16 inference (Keras's mixed_bfloat16: bf16 activations, float32 weights
rounded to bf16, float32 accumulation), per suite layer (bench/layers.json),
interleaved in one process:
- tconv3d bf16 (tconv3d.Layer(dtype="bfloat16") through its binding: vdpbf16ps kernels),
- tconv3d float32 (the same layer in float32),
- PyTorch bf16 (F.conv_transpose3d on bf16 tensors on the CPU, the layer's
  memory layout (channels_last_3d for channels_last), bias and activation in
  bf16; PyTorch runs it through oneDNN),
- Keras's own Conv3DTranspose under mixed_bfloat16 on the JAX backend (jax.jit).
Milliseconds per call, GFLOP/s, and each one's time over tconv3d bf16's, with geomeans.
"""
import argparse
import json
import math
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

from tconv3d.bench.__main__ import _data  # noqa: E402
from tconv3d.bench._child import _flops  # noqa: E402
from tconv3d.bench._timing import interleaved_ms_all  # noqa: E402
from tconv3d.bench.backward import _torch_arguments  # noqa: E402

COLUMNS = ("tconv3d_bf16", "tconv3d_f32", "torch_bf16", "keras_jax_bf16")


def _torch_runner(config, shape, kernel, bias, x, spec, threads):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    activations = {"linear": None, "relu": F.relu, "sigmoid": torch.sigmoid, "elu": F.elu, "tanh": torch.tanh}
    if config["activation"] not in activations:
        return None, f"activation {config['activation']} not mapped"
    stride, padding, output_padding, dilation, exact = _torch_arguments(spec, shape)
    last = config["data_format"] == "channels_last"
    memory = torch.channels_last_3d if last else torch.contiguous_format
    tx = torch.from_numpy(x.astype(np.float32))
    tx = (tx.permute(0, 4, 1, 2, 3) if last else tx).to(torch.bfloat16).contiguous(memory_format=memory)
    weight = torch.from_numpy(np.ascontiguousarray(kernel.transpose(4, 3, 0, 1, 2))).to(torch.bfloat16)
    weight = weight.contiguous(memory_format=memory)
    tb = None if bias is None else torch.from_numpy(bias).to(torch.bfloat16)
    act = activations[config["activation"]]

    def run():
        with torch.no_grad():
            y = F.conv_transpose3d(tx, weight, tb, stride, padding, output_padding, 1, dilation)
            return y if act is None else act(y)

    return run, None if exact else "PyTorch: one output row more"


def _keras_runner(config, shape, kernel, bias):
    import jax
    import jax.numpy as jnp
    import keras

    # A model around the layer: Keras casts inputs and autocasts the variables in Layer.__call__.
    model = keras.Sequential([keras.Input(tuple(shape[1:]), batch_size=shape[0]),
                              keras.layers.Conv3DTranspose(**config, dtype="mixed_bfloat16")])
    model.set_weights([kernel] + ([bias] if bias is not None else []))
    weights = [v.value for v in model.trainable_variables]
    f = jax.jit(lambda w, x: model.stateless_call(w, [], x)[0])
    return lambda x: f(weights, x).block_until_ready(), jnp


def layer_rows(layers, threads, min_seconds, statistic="median", keras_too=True):
    import ml_dtypes

    from tconv3d import _core
    from tconv3d._config import config_json

    for entry in layers:
        config, shape = dict(entry["config"]), entry["input_shape"]
        text = config_json(config)
        bf16 = _core.Specializer(text, None, "auto", "auto", threads, False, "bfloat16")
        f32 = _core.Specializer(text, None, "auto", "auto", threads, False, "float32")
        geometry = _core.Specializer(text, None, "auto", "auto", threads, True)
        rng = np.random.default_rng(0)
        cin = shape[-1] if config["data_format"] == "channels_last" else shape[1]
        kernel = (rng.standard_normal(tuple(config["kernel_size"]) + (config["filters"], cin)) * 0.05).astype(np.float32)
        bias = (rng.standard_normal(config["filters"]) * 0.1).astype(np.float32) if config["use_bias"] else None
        x32 = rng.standard_normal(shape).astype(np.float32)
        xb = x32.astype(ml_dtypes.bfloat16)
        bits = xb.view(np.uint16)
        runners = [lambda: bf16.forward_bf16(bits, kernel, bias, False), lambda: f32.forward(x32, kernel, bias, False)]
        torch_run, note = _torch_runner(config, shape, kernel, bias, x32, geometry, threads)
        runners.append(torch_run)
        keras_run = None
        if keras_too:
            keras_call, jnp = _keras_runner(config, shape, kernel, bias)
            xj = jnp.asarray(xb)
            keras_run = lambda: keras_call(xj)  # noqa: E731
        runners.append(keras_run)
        times, rounds = interleaved_ms_all(runners, min_seconds, statistic=statistic)
        flops = _flops(config, shape)
        row = {"name": entry["name"], "threads": threads, "rounds": rounds, "statistic": statistic,
               "kernel": bf16.latest()[0], "note": note}
        for column, ms in zip(COLUMNS, times):
            row[column + "_ms"] = ms
            row[column + "_gflops"] = None if ms is None else flops / ms / 1e6
        yield row


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tconv3d.bench.bf16", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default=_data("layers.json"))
    parser.add_argument("--layers", default="", help="comma-separated suite layer names (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="tconv3d's and PyTorch's (JAX uses its own pool)")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per layer")
    parser.add_argument("--stat", choices=["median", "min"], default="median")
    parser.add_argument("--no-keras", action="store_true", help="leave out Keras on JAX (slow on large layers)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads: must be >= 1")
    with open(args.suite) as f:
        layers = json.load(f)["layers"]
    if args.layers:
        wanted = args.layers.split(",")
        unknown = sorted(set(wanted) - {entry["name"] for entry in layers})
        if unknown:
            parser.error(f"--layers: no suite layer named {', '.join(unknown)}")
        layers = [entry for entry in layers if entry["name"] in wanted]
    from tconv3d import _core

    if _core.bf16_unavailable() is not None:
        print(f"tconv3d.bench.bf16: {_core.bf16_unavailable()}", file=sys.stderr)
        return 1
    rows = []
    for row in layer_rows(layers, args.threads, args.min_time, args.stat, not args.no_keras):
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
    if args.json:
        return 0
    print(f"bf16 forward, ms per call ({args.stat} of interleaved runs), {args.threads} threads; "
          f"x: that column's time / tconv3d bf16's")
    print(f"{'layer':<16} {'tconv3d bf16':>13} {'tconv3d f32':>16} {'PyTorch bf16':>16} {'Keras/JAX bf16':>18}")
    ratios = {c: [] for c in COLUMNS[1:]}
    for r in rows:
        line = f"{r['name']:<16} {r['tconv3d_bf16_ms']:8.3f} ms "
        for c, width in zip(COLUMNS[1:], (16, 16, 18)):
            ms = r[c + "_ms"]
            if ms is None:
                line += f" {'-':>{width}}"
                continue
            ratio = ms / r["tconv3d_bf16_ms"]
            ratios[c].append(ratio)
            line += f" {f'{ms:.3f} ms {ratio:5.2f}x':>{width}}"
        if r["note"]:
            line += f"  ({r['note']})"
        print(line)
    geo = "".join(f" {('geomean ' + format(math.exp(sum(map(math.log, v)) / len(v)), '.2f') + 'x') if v else '-':>{w}}"
                  for v, w in zip(ratios.values(), (16, 16, 18)))
    print(f"{'':<16} {'':>13}{geo}")
    gflops = ", ".join(f"{r['name']} {r['tconv3d_bf16_gflops']:.0f}" for r in rows)
    print(f"tconv3d bf16 GFLOP/s: {gflops}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
