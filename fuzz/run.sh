#!/usr/bin/env bash
# Builds the model-parser fuzz targets (clang-14, libFuzzer, ASan + UBSan) and
# runs each in fork mode for a while. Seeds come from tests/data (real Keras,
# tf.keras and ONNX files; the configs and weights inside .keras zips; .npy
# arrays) and from fuzz/known (inputs that once crashed or hung a loader).
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]   (default 20 s, every target;
#                                                   env FUZZ_BUILD_DIR, FUZZ_JOBS)
#
# Exit status: 0 when no target crashed, hung (an input over 10 s), ran out of
# memory or leaked; 1 otherwise, whoever's code the failure is in: a library we
# link (libzip, zlib) is our choice, so its crash is our crash. Failing inputs
# stay in $FUZZ_BUILD_DIR/artifacts/<target>/, and each one's top frames are printed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
seconds="${1:-20}"
shift || true
all_targets=(keras_zip zip hdf5 hdf5_reader onnx config_json npy)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi
build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"

mkdir -p "$build"
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 > "$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; exit 2; }
cmake --build "$build" -j"${FUZZ_JOBS:-2}" --target $(printf 'fuzz_%s ' "${targets[@]}")

seed() {  # target, files...
  local dir="$build/corpus/$1"; shift
  mkdir -p "$dir"
  for f in "$@"; do [ -f "$f" ] && cp "$f" "$dir/"; done
  return 0
}
models="$root/tests/data/models"
# The members of each .keras zip: its config for the JSON target, its weights for the HDF5 one.
unzipped="$build/unzipped"
mkdir -p "$unzipped"
for k in "$models"/*.keras; do
  name=$(basename "$k" .keras)
  python3 - "$k" "$unzipped/$name" <<'PY' || true
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for member, suffix in (("config.json", ".config.json"), ("model.weights.h5", ".weights.h5")):
        if member in z.namelist():
            open(sys.argv[2] + suffix, "wb").write(z.read(member))
PY
done
seed keras_zip "$models"/*.keras
seed zip "$models"/*.keras "$models"/*.npz
seed hdf5 "$models"/*.h5 "$unzipped"/*.weights.h5 "$root"/tests/data/hdf5/*.h5 "$here"/known/*.h5
seed hdf5_reader "$models"/*.h5 "$unzipped"/*.weights.h5 "$root"/tests/data/hdf5/*.h5 "$here"/known/*.h5
seed onnx "$models"/*.onnx
seed config_json "$models"/*.config.json "$unzipped"/*.config.json
seed npy $(find "$root/tests/data" -name '*.npy' | head -50)

status=0
for target in "${targets[@]}"; do
  artifacts="$build/artifacts/$target"
  mkdir -p "$artifacts"
  log="$build/fuzz_$target.log"
  echo "== fuzz_$target: ${seconds}s in fork mode"
  # ASan's allocator limit keeps a malformed size from being a false "crash" by OOM;
  # a real allocation beyond what the input justifies still trips -rss_limit_mb.
  ASAN_OPTIONS="${ASAN_OPTIONS:-allocator_may_return_null=1:detect_leaks=1}" \
    "$build/fuzz_$target" "$build/corpus/$target" -fork="${FUZZ_FORKS:-1}" -ignore_crashes=1 -ignore_timeouts=1 \
    -ignore_ooms=1 -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 -artifact_prefix="$artifacts/" \
    > "$log" 2>&1 || true
  grep -E "^#[0-9]+: cov" "$log" | tail -1 || true
  found=$(find "$artifacts" -type f | wc -l)
  if [ "$found" -gt 0 ]; then
    status=1
    echo "   FAILED: $found crash/timeout/oom input(s) in $artifacts"
    for input in "$artifacts"/*; do
      echo "   -- $(basename "$input")"
      "$build/fuzz_$target" -timeout=10 -runs=1 "$input" 2>&1 |
        grep -E "^ +#[0-9]+ |ERROR|timeout|out-of-memory" | grep -v -E "__interceptor_|fuzzer::" | head -8 |
        sed 's/^/      /' || true
    done
  else
    echo "   no crash, hang or memory exhaustion"
  fi
done
exit $status
