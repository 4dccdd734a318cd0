"""python -m tconv3d.bench.torch_op [--layers a,b] [--threads 1,2] [--modes eager,compile]
                                  [--formats contiguous,channels_last] [--min-time S] [--no-overhead]

The benchmark suite's layers (bench/layers.json) as PyTorch layers: torch's own
F.conv_transpose3d against tconv3d.torch.conv_transpose3d, interleaved in one
process, per thread count (torch.set_num_threads), mode (eager under no_grad,
or torch.compile) and input memory format. Then the per-call cost of a
1-voxel layer on one thread. Prints GFLOP/s and ratios (torch time / tconv3d time).

A suite entry is a Keras config; its PyTorch twin has the same kernel, strides,
dilation and output size (Keras's crops as PyTorch's symmetric padding plus
output_padding). Activations are left out: F.conv_transpose3d has none.
"""
import argparse
import json
import math

import torch
import torch.nn.functional as F

import tconv3d.torch as tt
from tconv3d import _core
from tconv3d.bench.__main__ import _data
from tconv3d.bench._timing import interleaved_ms, per_call_us


def torch_layer(entry):
    """(input shape NCDHW, weight shape, kwargs for conv_transpose3d, FLOPs) of a suite entry."""
    config = dict(entry["config"], activation="linear")
    shape = entry["input_shape"]
    spec = _core.Specializer(json.dumps(config), None, "auto", "auto", 1, True)
    axes = spec.geometry(shape)
    channels_last = config.get("data_format", "channels_last") == "channels_last"
    n, cin = shape[0], shape[4] if channels_last else shape[1]
    spatial = shape[1:4] if channels_last else shape[2:5]
    padding, output_padding = [], []
    for (size, k, s, d, _, out) in axes:
        crop = (size - 1) * s + (k - 1) * d + 1 - out  # both ends together
        p = (crop + 1) // 2
        padding.append(p)
        output_padding.append(2 * p - crop)
    kwargs = dict(stride=[a[2] for a in axes], padding=padding, output_padding=output_padding,
                  dilation=[a[3] for a in axes])
    weight = [cin, config["filters"]] + [a[1] for a in axes]
    flops = 2.0 * n * math.prod(spatial) * cin * config["filters"] * math.prod(weight[2:])
    return [n, cin] + list(spatial), weight, kwargs, flops


def _functions(x_shape, w_shape, kwargs, mode, memory_format):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(x_shape, generator=g).contiguous(memory_format=memory_format)
    w = torch.randn(w_shape, generator=g) * 0.05
    b = torch.randn(w_shape[1], generator=g)

    def theirs(x):
        return F.conv_transpose3d(x, w, b, **kwargs)

    def ours(x):
        return tt.conv_transpose3d(x, w, b, **kwargs)

    if mode == "compile":
        torch._dynamo.reset()  # a fresh budget of recompilations per layer
        theirs, ours = torch.compile(theirs, fullgraph=True), torch.compile(ours, fullgraph=True)
    return x, theirs, ours


def suite(layers, threads_list, modes, formats, min_seconds):
    for entry in layers:
        x_shape, w_shape, kwargs, flops = torch_layer(entry)
        for threads in threads_list:
            torch.set_num_threads(threads)
            for mode in modes:
                for fmt_name in formats:
                    fmt = torch.channels_last_3d if fmt_name == "channels_last" else torch.contiguous_format
                    x, theirs, ours = _functions(x_shape, w_shape, kwargs, mode, fmt)
                    with torch.no_grad():
                        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-3, atol=1e-3)
                        torch_ms, ours_ms, runs = interleaved_ms(lambda: theirs(x), lambda: ours(x), min_seconds)
                    yield {"name": entry["name"], "threads": threads, "mode": mode, "format": fmt_name,
                           "torch_ms": torch_ms, "tconv3d_ms": ours_ms, "torch_gflops": flops / torch_ms / 1e6,
                           "tconv3d_gflops": flops / ours_ms / 1e6, "runs": runs}


def overhead():
    """µs per call of a 1-voxel, 8-channel layer on one thread."""
    torch.set_num_threads(1)
    x, w = torch.ones(1, 8, 1, 1, 1), torch.randn(8, 8, 1, 1, 1)
    with torch.no_grad():
        tt.conv_transpose3d(x, w)
        layer = next(iter(tt._cache._by_weight[id(w)].calls.values())).parts[0][0]
        y = torch.empty(1, 8, 1, 1, 1)
        px, py = x.data_ptr(), y.data_ptr()
        n = 20000
        kernel = min(per_call_us(lambda: layer.forward(px, py), n) for _ in range(3))
        ours = min(per_call_us(lambda: tt.conv_transpose3d(x, w), n) for _ in range(3))
        theirs = min(per_call_us(lambda: F.conv_transpose3d(x, w), n) for _ in range(3))
        op = min(per_call_us(lambda: tt.conv_transpose3d_op(x, w, None, [1] * 3, [0] * 3, [0] * 3, 1, [1] * 3),
                             n // 4) for _ in range(3))
    return {"kernel_us": kernel, "tconv3d_us": ours, "torch_us": theirs, "registered_op_us": op}


def _geomean(values):
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tconv3d.bench.torch_op", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default=_data("layers.json"))
    parser.add_argument("--layers", default="", help="comma-separated suite layer names (default: all)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--modes", default="eager,compile")
    parser.add_argument("--formats", default="contiguous,channels_last")
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds per measurement (default 0.3)")
    parser.add_argument("--no-overhead", action="store_true")
    parser.add_argument("--json", action="store_true", help="also print one JSON object per result")
    args = parser.parse_args(argv)
    with open(args.suite) as f:
        layers = json.load(f)["layers"]
    if args.layers:
        wanted = args.layers.split(",")
        unknown = set(wanted) - {e["name"] for e in layers}
        if unknown:
            parser.error(f"unknown suite layers: {', '.join(sorted(unknown))}")
        layers = [e for e in layers if e["name"] in wanted]
    threads = [int(t) for t in args.threads.split(",")]
    modes, formats = args.modes.split(","), args.formats.split(",")
    for value, allowed, what in ((modes, {"eager", "compile"}, "--modes"),
                                 (formats, {"contiguous", "channels_last"}, "--formats")):
        if not set(value) <= allowed:
            parser.error(f"{what}: expected some of {sorted(allowed)}, got {value}")

    print(f"GFLOP/s, F.conv_transpose3d vs tconv3d.torch.conv_transpose3d (torch {torch.__version__}; "
          "median of interleaved runs; ratio = torch time / tconv3d time)")
    print(f"{'layer':<17} {'thr':>3} {'mode':<7} {'format':<13} {'torch':>8} {'tconv3d':>8} {'ratio':>7}")
    ratios = {}
    for r in suite(layers, threads, modes, formats, args.min_time):
        ratio = r["torch_ms"] / r["tconv3d_ms"]
        ratios.setdefault((r["threads"], r["mode"], r["format"]), []).append(ratio)
        print(f"{r['name']:<17} {r['threads']:>3} {r['mode']:<7} {r['format']:<13} {r['torch_gflops']:8.1f} "
              f"{r['tconv3d_gflops']:8.1f} {ratio:6.2f}x", flush=True)
        if args.json:
            print("TCONV3D_BENCH " + json.dumps(r))
    for (threads_, mode, fmt), values in ratios.items():
        print(f"geomean {threads_} thread(s), {mode}, {fmt}: {_geomean(values):.2f}x "
              f"(min {min(values):.2f}x over {len(values)} layers)")
    if not args.no_overhead:
        o = overhead()
        dispatch = o["tconv3d_us"] - o["kernel_us"]
        print(f"per call, 1-voxel layer, 1 thread: tconv3d.torch {o['tconv3d_us']:.2f} us "
              f"(of which the kernel call {o['kernel_us']:.2f} us: dispatch {dispatch:.2f} us), "
              f"F.conv_transpose3d {o['torch_us']:.2f} us, "
              f"torch.ops.tconv3d.conv_transpose3d {o['registered_op_us']:.2f} us")
        if args.json:
            print("TCONV3D_BENCH " + json.dumps(dict(o, kind="overhead")))


if __name__ == "__main__":
    main()
