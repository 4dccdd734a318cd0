#!/usr/bin/env python3
"""Summarizes one machine's benchmark run: tconv3d bench/peak JSON lines and,
optionally, scripts/torch_anchor.py lines, into per-layer GFLOP/s, share of
the measured FMA peak, and speed-ups (all measured in the same run).

usage: compare_bench.py BENCH.jsonl [TORCH.jsonl]
"""
import json
import math
import sys
from collections import defaultdict


def read_lines(path):
    rows = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    rows.append(json.loads(line))
    except FileNotFoundError:
        pass
    return rows


def geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def main():
    rows = read_lines(sys.argv[1])
    torch_rows = read_lines(sys.argv[2]) if len(sys.argv) > 2 else []
    peaks = {}
    for r in rows:
        if "vector" in r:
            key = (r["isa"], r["threads"])
            peaks[key] = max(peaks.get(key, 0.0), r["gflops"])
    layers = defaultdict(dict)
    useful_share = {}  # FMAs that reach the output / counted FLOPs, for % of peak
    order = []
    for r in rows:
        if "name" not in r:
            continue
        if r["name"] not in order:
            order.append(r["name"])
        key = (r["backend"], r["isa"], r["threads"])
        layers[r["name"]][key] = max(layers[r["name"]].get(key, 0.0), r["gflops"])  # best of rounds
        if "useful_gflops" in r:
            useful_share[r["name"]] = r["useful_gflops"] / r["gflops"]
    # torch_same: PyTorch on the layer's own memory layout (the same bytes in
    # and out); torch_best: its faster layout, even where that skips the
    # layout changes a channels_first layer needs.
    torch_best, torch_same = defaultdict(float), defaultdict(float)
    for r in torch_rows:
        key = (r["name"], r["threads"])
        torch_best[key] = max(torch_best[key], r["gflops"])
        if r.get("layer_layout", True):
            torch_same[key] = max(torch_same[key], r["gflops"])
    thread_counts = sorted({k[2] for layer in layers.values() for k in layer})
    for p in sorted(peaks):
        print(f"FMA peak {p[0]} threads={p[1]}: {peaks[p]:.1f} GFLOP/s")
    for t in thread_counts:
        print(f"\n== threads={t}")
        print(f"{'layer':18} {'isa':7} {'xbyak':>8} {'%peak':>6} {'generic':>8} {'x/gen':>6} {'torch':>8} {'x/torch':>7}"
              f" {'torch*':>8} {'x/torch*':>8}")
        vs_generic, vs_torch, vs_torch_best = [], [], []
        for name in order:
            entries = layers[name]
            for (backend, isa, threads), gf in sorted(entries.items()):
                if backend != "xbyak" or threads != t:
                    continue
                peak = peaks.get((isa, t))
                generic = next((g for (b, _, th), g in entries.items() if b == "generic" and th == t), None)
                torch_gf = torch_same.get((name, t))
                torch_any = torch_best.get((name, t))
                ratio_g = gf / generic if generic else None
                ratio_t = gf / torch_gf if torch_gf else None
                ratio_any = gf / torch_any if torch_any else None
                if isa == "avx512" or len({k[1] for k in entries if k[0] == "xbyak"}) == 1:
                    if ratio_g:
                        vs_generic.append(ratio_g)
                    if ratio_t:
                        vs_torch.append(ratio_t)
                    if ratio_any:
                        vs_torch_best.append(ratio_any)
                fmt = lambda v, spec: format(v, spec) if v is not None else "-"
                print(f"{name:18} {isa:7} {gf:8.1f} {fmt(100 * gf * useful_share.get(name, 1.0) / peak if peak else None, '6.1f')} "
                      f"{fmt(generic, '8.1f')} {fmt(ratio_g, '6.2f')} {fmt(torch_gf, '8.1f')} {fmt(ratio_t, '7.2f')}"
                      f" {fmt(torch_any, '8.1f')} {fmt(ratio_any, '8.2f')}")
        print(f"geomean speed-up (best ISA): vs generic {geomean(vs_generic):.2f}x, vs torch {geomean(vs_torch):.2f}x"
              f" (same memory layout), vs torch* {geomean(vs_torch_best):.2f}x (torch's faster layout)")
    print("\ntorch: the layer's own memory layout; torch*: PyTorch's faster of channels_last_3d and contiguous")
    print("%peak: the FMAs that reach the output (the cropped border excluded) against the measured FMA peak")


if __name__ == "__main__":
    main()
