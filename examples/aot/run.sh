#!/usr/bin/env bash
# Builds a small C program against ahead-of-time objects only (no tconv3d
# library, no JIT, no libm for the objects), runs it and checks its results
# against `tconv3d run --backend reference`.
#
#   examples/aot/run.sh BUILD_DIR                      host: llvm (where built) and xbyak objects, avx2 (+avx512 if the CPU has it)
#   examples/aot/run.sh BUILD_DIR aarch64-linux-gnu    cross: llvm NEON objects, linked with
#                                                      aarch64-linux-gnu-gcc, run under qemu-aarch64
# BUILD_DIR holds bin/tconv3d. Exit status 0 only if every combination matches.
# The same program built through the installed package (find_package(tconv3d)
# and tconv3d_add_kernel()) is one of scripts/test-consumers.sh's consumers.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$(cd "${1:?usage: run.sh BUILD_DIR [TRIPLE]}" && pwd)"
target="${2:-}"
tconv3d="$build/bin/tconv3d"
work="$build/aot_example${target:+_$target}"
host_cc="${CC:-cc}"
rm -rf "$work"
mkdir -p "$work"
"$host_cc" -O2 -std=c99 -o "$work/make_data" "$here/make_data.c" "$here/npy_io.c"

if [ -n "$target" ]; then
  cross_cc="${CROSS_CC:-$target-gcc}"
  command -v "$cross_cc" >/dev/null || { echo "run.sh: $cross_cc not found (apt: gcc-aarch64-linux-gnu)" >&2; exit 2; }
  command -v qemu-aarch64 >/dev/null || { echo "run.sh: qemu-aarch64 not found (apt: qemu-user)" >&2; exit 2; }
  combos=("llvm:auto")
else
  # A build without LLVM writes xbyak objects only (every layer, the same C ABI).
  backends=(xbyak)
  if "$tconv3d" aot --layer "$here/layer.json" --input-shape 1,1,1,1,24 --backend llvm --symbol probe \
      -o "$work/probe.o" >/dev/null 2>&1; then backends=(llvm xbyak); fi
  combos=()
  for backend in "${backends[@]}"; do
    combos+=("$backend:avx2")
    if grep -q -w avx512f /proc/cpuinfo; then combos+=("$backend:avx512"); fi
  done
fi

# layer file | input shape | kernel shape (kd,kh,kw,filters,cin)
layers=("layer.json|2,5,6,7,24|3,3,3,20,24" "layer_channels_first.json|1,10,4,5,6|2,3,2,12,10")
failures=0
for layer in "${layers[@]}"; do
  IFS='|' read -r json input_shape kernel_shape <<<"$layer"
  for combo in "${combos[@]}"; do
    backend="${combo%%:*}"; isa="${combo##*:}"
    dir="$work/${json%.json}_${backend}_${isa}"
    mkdir -p "$dir"
    "$work/make_data" "$dir" "$input_shape" "$kernel_shape"
    "$tconv3d" run --backend reference --layer "$here/$json" --input "$dir/input.npy" \
      --kernel "$dir/kernel.npy" --bias "$dir/bias.npy" --output "$dir/expected.npy"
    flags=(--layer "$here/$json" --input-shape "$input_shape" --backend "$backend")
    [ "$isa" != auto ] && flags+=(--isa "$isa")
    [ -n "$target" ] && flags+=(--target "$target")
    "$tconv3d" aot "${flags[@]}" --symbol up_baked -o "$dir/up_baked.o" --header "$dir/up_baked.h" \
      --kernel "$dir/kernel.npy" --bias "$dir/bias.npy" >/dev/null
    "$tconv3d" aot "${flags[@]}" --symbol up_packed -o "$dir/up_packed.o" --header "$dir/up_packed.h" >/dev/null
    echo "== $json, row kernel from $backend, isa $isa${target:+, target $target}"
    if [ -n "$target" ]; then
      "$cross_cc" -O2 -std=c99 -I "$dir" -o "$dir/example" "$here/main.c" "$here/npy_io.c" \
        "$dir/up_baked.o" "$dir/up_packed.o" -lm
      runner=(qemu-aarch64 -L "/usr/$target")
    else
      "$host_cc" -O2 -std=c99 -I "$dir" -o "$dir/example" "$here/main.c" "$here/npy_io.c" \
        "$dir/up_baked.o" "$dir/up_packed.o" -lm
      runner=()
    fi
    "${runner[@]}" "$dir/example" "$dir" || failures=$((failures + 1))
  done
done
if [ "$failures" -ne 0 ]; then
  echo "run.sh: $failures combination(s) FAILED" >&2
  exit 1
fi
echo "run.sh: every combination matches the reference"
