#!/usr/bin/env bash
# Builds the model-parser fuzz targets (clang-14, libFuzzer, ASan + UBSan) and
# runs each briefly in fork mode, so that a crash inside a library (libhdf5,
# libzip) is reported and fuzzing goes on. Seeds come from tests/data/models.
#
#   fuzz/run.sh [SECONDS_PER_TARGET]      (default 20; env FUZZ_BUILD_DIR, FUZZ_JOBS)
#
# Exit status: 0 when no crash or hang lies in our code, 1 otherwise (one whose
# top frame lies inside libhdf5/libzip/zlib is reported but does not fail). Crash inputs stay in
# $FUZZ_BUILD_DIR/artifacts/<target>/ and each crash's top frames are printed
# with whether they lie inside a library. Sanitizer frames (an intercepted
# memcpy, say) are skipped: the frame that called them is the one that counts.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
seconds="${1:-20}"
build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"

mkdir -p "$build"
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 > "$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; exit 2; }
cmake --build "$build" -j"${FUZZ_JOBS:-2}" --target fuzz_keras_zip fuzz_hdf5 fuzz_onnx

seed() {  # target, file patterns...
  local dir="$build/corpus/$1"; shift
  mkdir -p "$dir"
  for pattern in "$@"; do
    for f in "$root"/tests/data/models/$pattern; do [ -f "$f" ] && cp "$f" "$dir/"; done
  done
}
seed keras_zip '*.keras'
seed hdf5 '*.h5'
seed onnx '*.onnx'

status=0
for target in keras_zip hdf5 onnx; do
  artifacts="$build/artifacts/$target"
  mkdir -p "$artifacts"
  log="$build/fuzz_$target.log"
  echo "== fuzz_$target: ${seconds}s in fork mode"
  # ASan's allocator limit keeps a malformed size from being a false "crash" by OOM.
  ASAN_OPTIONS="${ASAN_OPTIONS:-allocator_may_return_null=1:detect_leaks=1}" \
    "$build/fuzz_$target" "$build/corpus/$target" -fork=1 -ignore_crashes=1 -max_total_time="$seconds" \
    -rss_limit_mb=4096 -timeout=20 -artifact_prefix="$artifacts/" > "$log" 2>&1 || true
  grep -E "^#[0-9]+: cov" "$log" | tail -1 || true
  crashes=$(find "$artifacts" -type f | wc -l)
  if [ "$crashes" -gt 0 ]; then
    ours=0
    echo "   $crashes crash/timeout input(s) in $artifacts"
    # Replays each input for its stack, and says whose code the top frames are in.
    for input in "$artifacts"/*; do
      echo "   -- $(basename "$input")"
      frames=$("$build/fuzz_$target" -timeout=10 -runs=1 "$input" 2>&1 |
               grep -E "^ +#[0-9]+ " | grep -v -E "sanitizer|__interceptor_|__asan_|__ubsan_|fuzzer::|libc\.so|AlarmCallback" |
               head -6 || true)
      echo "$frames" | sed 's/^/      /'
      if echo "$frames" | head -1 | grep -q -E "libhdf5|libzip|libz\.so"; then
        echo "      => inside a library (reported, not counted as our failure)"
      else
        ours=$((ours + 1))
      fi
    done
    if [ "$ours" -gt 0 ]; then status=1; fi
  else
    echo "   no crash"
  fi
done
exit $status
