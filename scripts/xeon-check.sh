#!/usr/bin/env bash
# The AVX-512 check for a machine without our Debian packages (the 16-core
# Xeon lent by the device tool): builds from what travels with the repository
# (.device/: xbyak and nlohmann headers, GoogleTest sources; see
# scripts/prepare-device.sh), without LLVM, model loading or oneDNN; runs the
# whole test suite with AVX-512 forced and with AVX2 forced; then the layer
# suite benchmark (xbyak and generic) at 1 and all threads, the FMA peak, and
# PyTorch's conv_transpose3d on the same layers. Results go to $1 (or $OUT).
# It runs on our own machines too.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-xeon-out}}
mkdir -p "$out"
threads=$(nproc)
deps=${TCONV3D_DEVICE_DEPS:-.device}
{
  echo "date: $(date -u)"; nproc; grep -m1 'model name' /proc/cpuinfo
  grep -o -w 'avx512[a-z0-9_]*\|amx[a-z0-9_]*\|fma\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
  g++ --version | head -1; cmake --version | head -1
} > "$out/machine.txt" 2>&1
cat "$out/machine.txt"

gtest_args=()
[ -d "$deps/googletest" ] && gtest_args=(-DTCONV3D_GTEST_SOURCE_DIR="$PWD/$deps/googletest")
generator=(); command -v ninja >/dev/null && generator=(-G Ninja)
rm -f build-xeon/CMakeCache.txt  # a warm machine keeps an old cache with stale paths
cmake -S . -B build-xeon "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DTCONV3D_XBYAK_DIR="$PWD/$deps/xbyak" \
  -DTCONV3D_JSON_DIR="$PWD/$deps/json" \
  "${gtest_args[@]}" -DTCONV3D_WITH_LLVM=OFF -DTCONV3D_WITH_MODELS=OFF -DTCONV3D_WITH_ONEDNN=OFF \
  -DTCONV3D_BUILD_BENCH=OFF > "$out/build.log" 2>&1
cmake --build build-xeon -j "$threads" >> "$out/build.log" 2>&1 || { tail -50 "$out/build.log"; exit 1; }
echo "build ok"

# TCONV3D_BENCH_ONLY=1 skips the tests (a rerun of the benchmark on a warm machine).
for isa in $([ -n "${TCONV3D_BENCH_ONLY:-}" ] || echo avx512 avx2); do
  TCONV3D_ISA=$isa ctest --test-dir build-xeon -j "$threads" --timeout 600 > "$out/tests-$isa.log" 2>&1
  echo "tests with TCONV3D_ISA=$isa: exit $?"; grep -E 'tests passed|tests failed|Failed|\*\*\*' "$out/tests-$isa.log" | head -20
done

cli=build-xeon/bin/tconv3d
# Rounds of our suite (xbyak, generic, xbyak forced to AVX2) at 1 and all
# threads, each followed by PyTorch on the same layers: the summary keeps
# each one's best median, so a burst of load on this shared machine (a VM)
# cannot favour one side.
have_torch=$(python3 -c 'import torch' 2>/dev/null && echo yes)
: > "$out/bench.jsonl"
: > "$out/torch.jsonl"
for round in $(seq "${TCONV3D_XEON_ROUNDS:-3}"); do
  # The FMA peak too, every round (the summary keeps the highest).
  $cli peak --threads "$threads" --json >> "$out/bench.jsonl" 2>> "$out/bench.err"
  for t in 1 "$threads"; do
    for backend in xbyak generic; do
      $cli bench --suite bench/layers.json --backend "$backend" --threads "$t" --json --min-time 0.3 2>>"$out/bench.err"
    done
    $cli bench --suite bench/layers.json --backend xbyak --isa avx2 --threads "$t" --json --min-time 0.3 2>>"$out/bench.err"
  done >> "$out/bench.jsonl"
  if [ -n "$have_torch" ]; then
    PYTHONUNBUFFERED=1 timeout 300 python3 scripts/torch_anchor.py bench/layers.json "1,$threads" >> "$out/torch.jsonl" 2>> "$out/torch.err"
  fi
done
echo "bench rows: $(wc -l < "$out/bench.jsonl"), torch rows: $(wc -l < "$out/torch.jsonl")"
python3 scripts/compare_bench.py "$out/bench.jsonl" "$out/torch.jsonl" > "$out/summary.txt" 2>&1 || true
cat "$out/summary.txt"

# Thread scaling (issue 17): the larger copies of the suite layers
# (bench/layers_large.json) at all threads, forward and backward in float32,
# and forward in bf16 where the CPU has AVX512_BF16; once each (TCONV3D_XEON_LARGE=0 skips).
# The share of the FMA peak is against the highest peak this run measured.
if [ "${TCONV3D_XEON_LARGE:-1}" != 0 ]; then
  for pass in forward backward; do
    $cli bench --suite bench/layers_large.json --backend xbyak --pass "$pass" --threads "$threads" --json \
      --min-time 0.3 2>>"$out/bench.err"
  done > "$out/large.jsonl"
  if grep -q -w avx512_bf16 /proc/cpuinfo; then
    $cli bench --suite bench/layers_large.json --dtype bf16 --threads "$threads" --json --min-time 0.3 \
      >> "$out/large.jsonl" 2>>"$out/bench.err"
  fi
  python3 - "$out/bench.jsonl" "$out/large.jsonl" "$threads" <<'PY' | tee "$out/large.txt"
import json, sys
peak, threads = 0.0, int(sys.argv[3])
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "gflops_per_thread" in r and r.get("threads") == threads and r.get("isa") != "avx512_bf16":
        peak = max(peak, r["gflops"])
print(f"larger layers at {threads} threads; FMA peak {peak:.0f} GFLOP/s")
for line in open(sys.argv[2]):
    r = json.loads(line)
    if r.get("dtype") == "bf16":
        print(f"{r['name']:20} bf16 forward {r['ms']:9.3f} ms, x{r['speedup']:.2f} float32")
        continue
    useful = r.get("useful_gflops", r["gflops"])
    share = f"{100 * useful / peak:5.1f}% of peak" if peak else ""
    print(f"{r['name']:20} {r.get('pass', 'forward'):8} {r['ms']:9.3f} ms {useful:8.1f} GFLOP/s {share}")
PY
fi

# A baseline revision (prepare-device.sh REV): the same CLI built from it, and
# each suite layer timed at 1 thread with both builds alternately, 3 rounds.
if [ -d "$deps/baseline" ]; then
  cat "$deps/baseline/REVISION"
  rm -f build-baseline/CMakeCache.txt
  cmake -S "$deps/baseline" -B build-baseline "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DTCONV3D_XBYAK_DIR="$PWD/$deps/xbyak" -DTCONV3D_JSON_DIR="$PWD/$deps/json" -DTCONV3D_WITH_LLVM=OFF \
    -DTCONV3D_WITH_MODELS=OFF -DTCONV3D_WITH_ONEDNN=OFF -DTCONV3D_BUILD_BENCH=OFF -DTCONV3D_BUILD_TESTS=OFF \
    > "$out/baseline-build.log" 2>&1
  if cmake --build build-baseline -j "$threads" --target tconv3d_cli >> "$out/baseline-build.log" 2>&1 ||
     cmake --build build-baseline -j "$threads" >> "$out/baseline-build.log" 2>&1; then
    for round in 1 2 3; do
      for build in build-baseline build-xeon; do
        "$build/bin/tconv3d" bench --suite bench/layers.json --backend xbyak --threads 1 --json --min-time 0.3 2>/dev/null |
          sed "s/^{/{\"build\": \"$build\", /"
      done
    done > "$out/ab.jsonl"
    python3 - "$out/ab.jsonl" <<'PY' | tee "$out/ab.txt"
import json, sys
best = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    key = (r["name"], r["build"])
    best[key] = min(best.get(key, 1e30), r["ms"])
print(f"{'layer':18} {'baseline ms':>12} {'this ms':>10} {'speed-up':>9}")
for name in dict.fromkeys(k[0] for k in best):
    b, x = best.get((name, "build-baseline")), best.get((name, "build-xeon"))
    if b and x:
        print(f"{name:18} {b:12.3f} {x:10.3f} {b / x:8.3f}x")
PY
  else
    echo "baseline build failed: see baseline-build.log"
  fi
fi
