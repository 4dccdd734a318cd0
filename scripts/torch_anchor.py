#!/usr/bin/env python3
"""Times torch.nn.functional.conv_transpose3d on the layers of a suite file
(bench/layers.json), as a PyTorch user would run the same Keras layer, and
prints one JSON object per line: name, layout, threads, ms, gflops, and
layer_layout: whether that memory layout is the layer's own (a channels_first
layer's data is NCDHW in memory, so only "contiguous" computes the same
problem; channels_last_3d would skip both layout changes). No activation is
applied (tconv3d's timings include it).

Keras's crop (keras_semantics.md §3) maps to PyTorch's symmetric `padding`
plus `output_padding` when the left crop P satisfies the output size; when it
does not, the layer is computed with padding=0 and sliced, and the row says so.
"""
import json
import sys
import time

import torch
import torch.nn.functional as F


def triple(v):
    return list(v) if isinstance(v, (list, tuple)) else [v, v, v]


def keras_axis(i, k, s, d, padding, op):
    keff = (k - 1) * d + 1
    if padding == "valid":
        n = (i - 1) * s + keff + (op if op is not None else max(s - keff, 0))
        crop = 0
    else:
        n = i * s if op is None else (i - 1) * s + keff % 2 + op
        pad_len = s + keff - 2 if op is None else keff + keff % 2 - 2 + op
        left = min(pad_len // 2 + pad_len % 2, keff - 1)
        crop = keff - 1 - left
    return n, crop


def median_ms(fn, min_seconds=0.4, min_reps=5):
    fn()
    samples = []
    start = time.perf_counter()
    while len(samples) < min_reps or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
        if len(samples) > 2000:
            break
    samples.sort()
    return samples[len(samples) // 2]


def main():
    suite = json.load(open(sys.argv[1]))["layers"]
    thread_counts = [int(t) for t in sys.argv[2].split(",")] if len(sys.argv) > 2 else [1]
    torch.manual_seed(0)
    for layer in suite:
        c = layer["config"]
        shape = layer["input_shape"]
        first = c.get("data_format", "channels_last") == "channels_first"
        n, cin = shape[0], (shape[1] if first else shape[4])
        spatial = shape[2:5] if first else shape[1:4]
        k, s, d = triple(c["kernel_size"]), triple(c.get("strides", 1)), triple(c.get("dilation_rate", 1))
        ops = c.get("output_padding")
        ops = triple(ops) if ops is not None else [None] * 3
        outs, crops = zip(*[keras_axis(spatial[a], k[a], s[a], d[a], c.get("padding", "valid").lower(), ops[a])
                            for a in range(3)])
        pads, out_pads, sliced = [], [], False
        for a in range(3):
            keff = (k[a] - 1) * d[a] + 1
            p = crops[a]
            natural = (spatial[a] - 1) * s[a] - 2 * p + keff
            op = outs[a] - natural
            if not (0 <= op < max(s[a], d[a])):
                sliced = True
            pads.append(p)
            out_pads.append(op)
        if sliced:
            pads, out_pads = [0, 0, 0], [0, 0, 0]
        x = torch.randn(n, cin, *spatial)
        w = torch.randn(cin, c["filters"], *k) * 0.05
        b = torch.randn(c["filters"])
        flops = 2.0 * n * cin * c["filters"] * spatial[0] * spatial[1] * spatial[2] * k[0] * k[1] * k[2]
        for layout in ("channels_last_3d", "contiguous"):
            xl = x.contiguous(memory_format=torch.channels_last_3d) if layout == "channels_last_3d" else x

            def run():
                y = F.conv_transpose3d(xl, w, b, stride=s, padding=pads, output_padding=out_pads, dilation=d)
                if sliced:
                    y = y[:, :, crops[0]:crops[0] + outs[0], crops[1]:crops[1] + outs[1], crops[2]:crops[2] + outs[2]]
                return y

            for threads in thread_counts:
                torch.set_num_threads(threads)
                with torch.inference_mode():
                    ms = median_ms(run)
                print(json.dumps({"name": layer["name"], "impl": "torch", "torch": torch.__version__, "layout": layout,
                                  "threads": threads, "ms": ms, "gflops": flops / (ms * 1e-3) / 1e9,
                                  "sliced": sliced,
                                  # the layer's own memory layout in and out (NCDHW for channels_first)
                                  "layer_layout": (layout == "contiguous") == first}), flush=True)


if __name__ == "__main__":
    main()
