"""tconv3d's backward against PyTorch's on a shared machine.

Runs python -m tconv3d.bench.backward's layer comparison (the same calls:
Specializer.backward and aten.convolution_backward, interleaved in one
process) but reports the fastest run of each, by wall clock and by process
CPU time (time.process_time, all threads: what other processes taking the
cores do not add to; run with OMP_WAIT_POLICY=passive so that idle OpenMP
threads sleep instead of spinning on the CPU clock).

  python bench/backward_profile/vs_torch.py [--layers a,b] [--threads 2] [--min-time 1]
"""
import argparse
import json
import time

import tconv3d.bench.backward as backward


def best_of_both(a, b, min_seconds, min_runs=5, statistic="median"):
    a()
    b()
    best = {"a_wall": 1e300, "b_wall": 1e300, "a_cpu": 1e300, "b_cpu": 1e300}
    runs = 0
    start = time.perf_counter()
    while runs < min_runs or time.perf_counter() - start < min_seconds:
        for f, key in ((a, "a"), (b, "b")):
            w0, c0 = time.perf_counter(), time.process_time()
            f()
            c1, w1 = time.process_time(), time.perf_counter()
            best[key + "_wall"] = min(best[key + "_wall"], (w1 - w0) * 1e3)
            best[key + "_cpu"] = min(best[key + "_cpu"], (c1 - c0) * 1e3)
        runs += 1
        if runs >= 400:
            break
    best_of_both.last = best
    return best["a_wall"], best["b_wall"], runs


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", default="")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-time", type=float, default=1.0)
    args = parser.parse_args()
    with open(backward._data("layers.json")) as f:
        layers = json.load(f)["layers"]
    if args.layers:
        wanted = args.layers.split(",")
        layers = [e for e in layers if e["name"] in wanted]
    backward.interleaved_ms = best_of_both
    print(f"{'layer':<18} {'torch_ms':>9} {'ours_ms':>9} {'ratio':>6} | {'torch_cpu':>9} {'ours_cpu':>9} {'ratio':>6}"
          f"  runs  ({args.threads} threads, fastest run)")
    for row in backward.layer_rows(layers, args.threads, args.min_time):
        b = best_of_both.last
        print(f"{row['name']:<18} {b['b_wall']:9.2f} {b['a_wall']:9.2f} {b['b_wall'] / b['a_wall']:5.2f}x | "
              f"{b['b_cpu']:9.2f} {b['a_cpu']:9.2f} {b['b_cpu'] / b['a_cpu']:5.2f}x  {row['runs']:4d}", flush=True)


if __name__ == "__main__":
    main()
