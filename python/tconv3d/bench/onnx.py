"""python -m tconv3d.bench.onnx [--layers a,b] [--threads 1,2] [--min-time S] [--no-model]

ONNX Runtime alone against ONNX Runtime with tconv3d (tconv3d.onnx.session)
on the benchmark suite's layers, each exported from torch's ConvTranspose3d
with the padding that gives the Keras layer's output size (NCDHW; the Keras
activation is left out: only the ConvTranspose is compared), and on one
exported decoder (three ConvTranspose3d with ReLU between). Both sessions run
interleaved in one process at each intra_op_num_threads; prints ms, GFLOP/s,
the ratio, and the geomean over the suite.

A layer counts as compute-bound when it does at least 90 FLOP per byte of
input, output and weights (as float32): the suite's unet_up_k2s2,
gan_k4s2_same, k3s1_same, video_k144s122 and dilated_k3d2, the layers the
README's "% of FMA peak" table calls compute-bound.

ONNX Runtime's thread pool and tconv3d's OpenMP threads share the cores; with
OpenMP's default active waiting, an idle OpenMP thread spins on a core the
other pool needs. Run with OMP_WAIT_POLICY=passive (read when the process
starts) for 2 threads and more.
"""
import argparse
import io
import json
import math
import warnings

import numpy as np

from tconv3d.bench.__main__ import _data
from tconv3d.bench._timing import interleaved_ms

COMPUTE_BOUND_FLOP_PER_BYTE = 90.0


def _torch_padding(in_size, kernel, stride, dilation, padding):
    """Symmetric torch padding and output_padding giving Keras's output size for 'same' / 'valid'."""
    span = dilation * (kernel - 1) + 1
    if padding == "valid":
        return 0, max(0, stride - span)  # Keras's valid output is (in-1)*s + max(k, s)
    pad = max(0, math.ceil((span - stride) / 2))
    return pad, stride - span + 2 * pad  # output in*stride


def _export(module, x):
    import torch

    f = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (x,), f, input_names=["x"], output_names=["y"], dynamo=False)
    return f.getvalue()


def _layer_model(entry):
    import torch

    c = entry["config"]
    shape = entry["input_shape"]
    if c["data_format"] == "channels_last":
        shape = [shape[0], shape[4], shape[1], shape[2], shape[3]]
    cin, spatial = shape[1], shape[2:]
    pads, outpads = [], []
    for a in range(3):
        p, op = _torch_padding(spatial[a], c["kernel_size"][a], c["strides"][a], c["dilation_rate"][a], c["padding"])
        pads.append(p)
        outpads.append(op)
    module = torch.nn.ConvTranspose3d(cin, c["filters"], tuple(c["kernel_size"]), stride=tuple(c["strides"]),
                                      padding=tuple(pads), output_padding=tuple(outpads),
                                      dilation=tuple(c["dilation_rate"]), bias=c["use_bias"])
    torch.manual_seed(0)
    x = torch.randn(*shape)
    k = c["kernel_size"]
    flops = 2.0 * np.prod(shape) * c["filters"] * k[0] * k[1] * k[2]
    with torch.no_grad():
        out_elems = module(x).numel()
    weights = cin * c["filters"] * k[0] * k[1] * k[2]
    intensity = flops / (4.0 * (np.prod(shape) + out_elems + weights))
    return _export(module, x), x.numpy(), flops, intensity


def _decoder_model():
    import torch

    nn = torch.nn
    decoder = nn.Sequential(
        nn.ConvTranspose3d(128, 64, 2, stride=2), nn.ReLU(),
        nn.ConvTranspose3d(64, 32, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
        nn.ConvTranspose3d(32, 16, 3, stride=1, padding=1))
    torch.manual_seed(0)
    x = torch.randn(1, 128, 8, 8, 8)
    flops = 2.0 * (8 ** 3 * 128 * 64 * 8 + 16 ** 3 * 64 * 32 * 27 + 32 ** 3 * 32 * 16 * 27)
    return _export(decoder, x), x.numpy(), flops


def _compare(model, x, threads, min_seconds):
    import onnxruntime as ort
    import tconv3d.onnx

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    # Two sessions share this process: a pool that spins after its run
    # (ONNX Runtime's default) takes a core from the session timed next.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    alone = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    ours = tconv3d.onnx.session(model, threads=threads)
    want = alone.run(None, {"x": x})[0]
    got = ours.run(None, {"x": x})[0]
    err = float(np.abs(got - want).max() / max(1.0, np.abs(want).max()))
    ort_ms, tc_ms, runs = interleaved_ms(lambda: alone.run(None, {"x": x}), lambda: ours.run(None, {"x": x}),
                                         min_seconds)
    return ort_ms, tc_ms, runs, err


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tconv3d.bench.onnx", description=__doc__.split("\n\n")[1])
    parser.add_argument("--layers", help="comma-separated suite layer names (default: all)")
    parser.add_argument("--threads", default="1,2", help="intra_op_num_threads values (default 1,2)")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per side and layer (default 1)")
    parser.add_argument("--no-model", action="store_true", help="skip the whole decoder")
    args = parser.parse_args(argv)

    import onnxruntime
    import onnxruntime_extensions

    with open(_data("layers.json")) as f:
        layers = json.load(f)["layers"]
    if args.layers:
        wanted = args.layers.split(",")
        unknown = sorted(set(wanted) - {l["name"] for l in layers})
        if unknown:
            parser.error(f"no such suite layer: {', '.join(unknown)} (have: {', '.join(l['name'] for l in layers)})")
        layers = [l for l in layers if l["name"] in wanted]
    thread_counts = [int(t) for t in args.threads.split(",")]
    print(f"onnxruntime {onnxruntime.__version__}, onnxruntime-extensions {onnxruntime_extensions.__version__}")
    print(f"{'layer':18} {'thr':>3} {'FLOP/B':>6} {'ORT ms':>8} {'+tconv3d ms':>11} {'ORT GF/s':>8} "
          f"{'tc GF/s':>8} {'ratio':>6} {'max err':>8}")
    ratios = {t: [] for t in thread_counts}
    bound = {t: [] for t in thread_counts}
    for entry in layers:
        model, x, flops, intensity = _layer_model(entry)
        for t in thread_counts:
            ort_ms, tc_ms, _, err = _compare(model, x, t, args.min_time)
            ratio = ort_ms / tc_ms
            ratios[t].append(ratio)
            if intensity >= COMPUTE_BOUND_FLOP_PER_BYTE:
                bound[t].append((entry["name"], ratio))
            print(f"{entry['name']:18} {t:3d} {intensity:6.0f} {ort_ms:8.2f} {tc_ms:11.2f} "
                  f"{flops / ort_ms / 1e6:8.1f} {flops / tc_ms / 1e6:8.1f} {ratio:5.2f}x {err:8.1e}", flush=True)
    for t in thread_counts:
        if ratios[t]:
            geo = math.exp(sum(math.log(r) for r in ratios[t]) / len(ratios[t]))
            worst = min(bound[t], key=lambda b: b[1]) if bound[t] else ("-", float("nan"))
            print(f"suite, {t} thread(s): geomean {geo:.2f}x ORT's ConvTranspose; "
                  f"slowest compute-bound layer {worst[0]} {worst[1]:.2f}x")
    if not args.no_model:
        model, x, flops = _decoder_model()
        for t in thread_counts:
            ort_ms, tc_ms, _, err = _compare(model, x, t, args.min_time)
            print(f"decoder (3 ConvTranspose3d + ReLU), {t} thread(s): ORT {ort_ms:.2f} ms, "
                  f"ORT + tconv3d {tc_ms:.2f} ms, {ort_ms / tc_ms:.2f}x, max err {err:.1e}", flush=True)


if __name__ == "__main__":
    main()
