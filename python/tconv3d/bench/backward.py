"""python -m tconv3d.bench.backward [--layers a,b] [--threads N] [--min-time S] [--no-model]

The backward pass, side by side in one process:
- per suite layer (bench/layers.json), tconv3d's input, kernel and bias
  gradients of the linear layer (the Layer::backward kernels) against
  PyTorch's (aten.convolution_backward of the same transposed convolution:
  the dx + dK + db that autograd runs), GFLOP/s counting 2x the forward's
  FLOPs;
- a training step (train_on_batch) of the demo decoder on Keras's JAX
  backend, plain and after tconv3d.keras.accelerate.
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
from tconv3d.bench._timing import interleaved_ms  # noqa: E402


def _torch_arguments(spec, shape):
    """PyTorch's stride, padding, output_padding, dilation for the geometry tconv3d resolved.

    PyTorch crops `padding` from both ends; where Keras crops one sample more
    at the end than at the start (padding "same" with an odd total), the
    extra output row comes back through output_padding when PyTorch allows
    it, else PyTorch computes one row more than Keras (noted in the result).
    """
    stride, padding, output_padding, dilation, exact = [], [], [], [], True
    for size, kernel, s, d, crop_begin, out in spec.geometry(list(shape)):
        base = (size - 1) * s - 2 * crop_begin + d * (kernel - 1) + 1
        extra = out - base
        if not 0 <= extra < max(s, d):
            exact = False
            extra = min(max(extra, 0), max(s, d) - 1)
        stride.append(s)
        padding.append(crop_begin)
        output_padding.append(extra)
        dilation.append(d)
    return stride, padding, output_padding, dilation, exact


def layer_rows(layers, threads, min_seconds):
    import torch

    from tconv3d import _core
    from tconv3d._config import config_json

    torch.set_num_threads(threads)
    for entry in layers:
        config, shape = dict(entry["config"]), entry["input_shape"]
        spec = _core.Specializer(config_json(config), None, "auto", "auto", threads, True)
        rng = np.random.default_rng(0)
        kernel = (rng.standard_normal(tuple(config["kernel_size"]) + (config["filters"], shape[-1] if
                  config["data_format"] == "channels_last" else shape[1])) * 0.05).astype(np.float32)
        bias = np.zeros(config["filters"], np.float32) if config["use_bias"] else None
        x = rng.standard_normal(shape).astype(np.float32)
        dy = rng.standard_normal(spec.output_shape(list(shape))).astype(np.float32)
        ours = lambda: spec.backward(x, kernel, bias, None, dy, True, True, bias is not None)  # noqa: E731

        stride, padding, output_padding, dilation, exact = _torch_arguments(spec, shape)
        last = config["data_format"] == "channels_last"
        memory = torch.channels_last_3d if last else torch.contiguous_format
        tx = torch.from_numpy(x)
        tx = tx.permute(0, 4, 1, 2, 3) if last else tx
        tx = tx.contiguous(memory_format=memory)
        weight = torch.from_numpy(np.ascontiguousarray(kernel.transpose(4, 3, 0, 1, 2)))  # (in, out, kd, kh, kw)
        with torch.no_grad():
            ty = torch.ops.aten.convolution(tx, weight, None, stride, padding, dilation, True, output_padding, 1)
        tdy = torch.randn(ty.shape).contiguous(memory_format=memory)
        bias_sizes = [config["filters"]] if bias is not None else None
        mask = [True, True, bias is not None]

        def theirs():
            with torch.no_grad():
                return torch.ops.aten.convolution_backward(tdy, tx, weight, bias_sizes, stride, padding, dilation,
                                                           True, output_padding, 1, mask)

        ours_ms, torch_ms, runs = interleaved_ms(ours, theirs, min_seconds)
        flops = 2 * _flops(config, shape)
        yield {"name": entry["name"], "threads": threads, "tconv3d_ms": ours_ms, "torch_ms": torch_ms,
               "tconv3d_gflops": flops / ours_ms / 1e6, "torch_gflops": flops / torch_ms / 1e6,
               "torch_same_geometry": exact, "runs": runs}


def training_step(path, min_seconds):
    import keras

    import tconv3d.keras as tk

    def compiled(model):
        model.compile(optimizer=keras.optimizers.SGD(1e-4), loss="mse")
        return model

    plain = compiled(keras.models.load_model(path))
    ours = compiled(tk.accelerate(keras.models.load_model(path)))
    shape = [1 if d is None else d for d in plain.inputs[0].shape]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    target = rng.standard_normal(plain.predict(x, verbose=0).shape).astype(np.float32)
    plain_ms, ours_ms, runs = interleaved_ms(lambda: plain.train_on_batch(x, target),
                                             lambda: ours.train_on_batch(x, target), min_seconds, min_runs=3)
    return {"model": os.path.basename(path), "backend": keras.config.backend(), "keras_ms": plain_ms,
            "tconv3d_ms": ours_ms, "runs": runs}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tconv3d.bench.backward", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default=_data("layers.json"))
    parser.add_argument("--layers", default="", help="comma-separated suite layer names (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default=_data("unet3d_decoder.keras"))
    parser.add_argument("--no-model", action="store_true")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per layer")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with open(args.suite) as f:
        layers = json.load(f)["layers"]
    if args.layers:
        wanted = args.layers.split(",")
        unknown = sorted(set(wanted) - {entry["name"] for entry in layers})
        if unknown:
            parser.error(f"--layers: no suite layer named {', '.join(unknown)}")
        layers = [entry for entry in layers if entry["name"] in wanted]
    rows = list(layer_rows(layers, args.threads, args.min_time))
    model = None if args.no_model else training_step(args.model, args.min_time)
    if args.json:
        for r in rows + ([model] if model else []):
            print(json.dumps(r))
        return 0
    print(f"backward (dx + dK + db), GFLOP/s counting 2x the forward FLOPs, {args.threads} threads")
    print(f"{'layer':<18} {'PyTorch':>9} {'tconv3d':>9} {'ratio':>7}")
    for r in rows:
        note = "" if r["torch_same_geometry"] else "  (PyTorch: one output row more)"
        print(f"{r['name']:<18} {r['torch_gflops']:9.1f} {r['tconv3d_gflops']:9.1f} "
              f"{r['torch_ms'] / r['tconv3d_ms']:6.2f}x{note}")
    if rows:
        geo = math.exp(sum(math.log(r["torch_ms"] / r["tconv3d_ms"]) for r in rows) / len(rows))
        print(f"{'':<18} {'':>9} {'geomean':>9} {geo:6.2f}x")
    if model:
        print(f"train_on_batch({model['model']}) on {model['backend']}: Keras {model['keras_ms']:.1f} ms, "
              f"tconv3d.keras {model['tconv3d_ms']:.1f} ms, {model['keras_ms'] / model['tconv3d_ms']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
