"""python -m tconv3d.bench [--backends jax,tensorflow,torch] [--layers a,b] [--min-time S] [--no-model]
                         [--stat median|min] [--tf-numpy-function]

Runs the benchmark suite's layers (bench/layers.json: a Keras config and an
input shape each) through Keras's own Conv3DTranspose and through
tconv3d.keras side by side, interleaved, in one process per Keras backend;
then predict() of the demo decoder model both ways; then the call overhead
of the NumPy API and of the FFI op inside jax.jit. Prints GFLOP/s and ratios.
"""
import argparse
import json
import math
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path


_IN_TREE = {"layers.json": ("bench", "layers.json"), "unet3d_decoder.keras": ("examples", "models", "unet3d_decoder.keras")}


def _data(name):
    """Installed packages carry the suite and the demo model in tconv3d/data; a source tree has them in place."""
    installed = resources.files("tconv3d") / "data" / name
    if installed.is_file():
        return str(installed)
    return str(Path(__file__).resolve().parents[3].joinpath(*_IN_TREE[name]))


def _run_backend(backend, layers, args):
    request = {"backend": backend, "layers": layers, "min_seconds": args.min_time,
               "tf_numpy_function": args.tf_numpy_function, "statistic": args.stat,
               "model": None if args.no_model else args.model, "overhead": backend == "jax" and not args.no_overhead}
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "tconv3d.bench._child", json.dumps(request)], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"{backend}: failed (exit {proc.returncode})\n{proc.stderr[-2000:]}", file=sys.stderr)
        return []
    return [json.loads(l.split(" ", 1)[1]) for l in proc.stdout.splitlines() if l.startswith("TCONV3D_BENCH ")]


def _print(results, backends, statistic):
    names = [r["name"] for r in results if r["kind"] == "layer" and r["backend"] == backends[0]]
    head = f"{'layer':<18}" + "".join(f" | {'Keras/' + b[:5]:>12} {'tconv3d':>9} {'ratio':>7}" for b in backends)
    what = "median" if statistic == "median" else "fastest"
    print(f"GFLOP/s, Keras's own layer vs tconv3d.keras, per Keras backend ({what} of interleaved runs)")
    print(head)
    ratios = {b: [] for b in backends}
    for name in names:
        row = f"{name:<18}"
        for b in backends:
            r = next((r for r in results if r["kind"] == "layer" and r["backend"] == b and r["name"] == name), None)
            if r is None:
                row += f" | {'-':>12} {'-':>9} {'-':>7}"
                continue
            ratio = r["keras_ms"] / r["tconv3d_ms"]
            ratios[b].append(ratio)
            row += f" | {r['keras_gflops']:12.1f} {r['tconv3d_gflops']:9.1f} {ratio:6.1f}x"
        print(row)
    geo = "".join(f" | {'':>12} {'geomean':>9} {math.exp(sum(map(math.log, v)) / len(v)):6.1f}x" if v else ""
                  for v in ratios.values())
    print(f"{'':<18}{geo}")
    for r in results:
        if r["kind"] == "model":
            print(f"predict({r['name']}) on {r['backend']}: Keras {r['keras_ms']:.1f} ms, tconv3d.keras "
                  f"{r['tconv3d_ms']:.1f} ms, {r['keras_ms'] / r['tconv3d_ms']:.1f}x")
        if r["kind"] == "tf_path":
            print(f"tconv3d.keras on TensorFlow ran through: {r['path']}")
        if r["kind"] == "overhead":
            # Each includes the 1-voxel kernel itself, so each is an upper bound on its overhead.
            print(f"per call, 1-voxel layer on 1 thread, kernel included: raw binding {r['binding_us']:.2f} us, "
                  f"NumPy API {r['numpy_api_us']:.2f} us, FFI op inside jax.jit {r['ffi_in_jit_us']:.2f} us")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tconv3d.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="jax,tensorflow,torch")
    parser.add_argument("--suite", default=_data("layers.json"))
    parser.add_argument("--layers", default="", help="comma-separated suite layer names (default: all)")
    parser.add_argument("--model", default=_data("unet3d_decoder.keras"))
    parser.add_argument("--no-model", action="store_true")
    parser.add_argument("--no-overhead", action="store_true")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per layer and backend")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON lines instead")
    parser.add_argument("--stat", choices=["median", "min"], default="median",
                        help="per-layer time: the median of the interleaved runs, or the fastest (on a loaded machine)")
    parser.add_argument("--tf-numpy-function", action="store_true",
                        help="run tconv3d.keras on TensorFlow through its tf.numpy_function fallback, not its op")
    args = parser.parse_args(argv)
    with open(args.suite) as f:
        layers = json.load(f)["layers"]
    if args.layers:
        wanted = args.layers.split(",")
        unknown = sorted(set(wanted) - {l["name"] for l in layers})
        if unknown:
            parser.error(f"--layers: no suite layer named {', '.join(unknown)}")
        layers = [l for l in layers if l["name"] in wanted]
    backends = args.backends.split(",")
    results = []
    for backend in backends:
        if backend not in ("jax", "tensorflow", "torch"):
            parser.error(f"--backends: unknown Keras backend {backend!r}")
        print(f"[{backend}] running {len(layers)} layers...", file=sys.stderr, flush=True)
        results += _run_backend(backend, layers, args)
    if args.json:
        for r in results:
            print(json.dumps(r))
    else:
        _print(results, backends, args.stat)
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
