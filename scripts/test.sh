#!/usr/bin/env bash
# Sets up and runs every test: installs dependencies, builds Release and the
# sanitize configuration (ASan + UBSan), and runs the whole suite in both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

jobs=$(nproc)
# Rebuilds of the same sources (CI re-runs, the Python package's own build) come from the cache.
if command -v ccache >/dev/null; then
  export CMAKE_CXX_COMPILER_LAUNCHER=ccache CMAKE_C_COMPILER_LAUNCHER=ccache
fi
run_suite() {
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  ctest --test-dir "$dir" -j "$jobs" --output-on-failure --timeout 1200
}

echo "== Release build and tests" >&2
run_suite build -DCMAKE_BUILD_TYPE=Release

echo "== The installed package from C++ and C projects (find_package, pkg-config)" >&2
bash scripts/test-consumers.sh build

echo "== Sanitize build (AddressSanitizer + UndefinedBehaviorSanitizer) and tests" >&2
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite build-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTCONV3D_SANITIZE=ON -DTCONV3D_BUILD_BENCH=OFF

bash scripts/test-python.sh  # the Python package, its tests on Keras's JAX, torch and TensorFlow backends

echo "== Ahead-of-time example: x86-64 objects, then aarch64 objects under qemu" >&2
examples/aot/run.sh build
examples/aot/run.sh build aarch64-linux-gnu

echo "== Fuzzing the model parsers briefly (libFuzzer, fork mode)" >&2
env -u ASAN_OPTIONS FUZZ_BUILD_DIR=build-fuzz bash fuzz/run.sh 15
