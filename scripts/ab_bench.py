#!/usr/bin/env python3
"""A/B of two tconv3d builds on the benchmark suite, in one run: rounds of
`tconv3d bench --suite ... --json` alternate between the two CLIs, and each
layer's best time per build gives the ratio (after / before).

usage: ab_bench.py BEFORE_CLI AFTER_CLI [--rounds N] [--isa avx2|avx512]
                   [--threads T] [--backend xbyak|llvm|generic] [--suite FILE]
"""
import argparse
import json
import math
import os
import subprocess
import sys


def bench(cli, args):
    command = [cli, "bench", "--suite", args.suite, "--backend", args.backend, "--threads", str(args.threads),
               "--json"]
    if args.isa:
        command += ["--isa", args.isa]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--isa", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backend", default="xbyak")
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--suite", default=os.path.join(here, "..", "bench", "layers.json"))
    args = parser.parse_args()

    best = {"before": {}, "after": {}}
    order = []
    for _ in range(args.rounds):
        for side in ("before", "after"):
            for row in bench(getattr(args, side), args):
                name = row["name"]
                if name not in order:
                    order.append(name)
                best[side][name] = min(best[side].get(name, math.inf), row["min_ms"])
    print(f"backend {args.backend}, isa {args.isa or 'auto'}, {args.threads} thread(s), best of {args.rounds} "
          "interleaved rounds")
    print(f"{'layer':18} {'before ms':>10} {'after ms':>10} {'after/before':>12}")
    ratios = []
    for name in order:
        b, a = best["before"][name], best["after"][name]
        ratios.append(a / b)
        print(f"{name:18} {b:10.3f} {a:10.3f} {a / b:12.3f}")
    geomean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    print(f"geomean after/before time: {geomean:.3f} (below 1: faster); worst {max(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
