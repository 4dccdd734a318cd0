#!/usr/bin/env bash
# Installs a built tree into a fresh prefix and uses it as projects outside
# this repository would. Exit status 0 only if every consumer builds and runs:
#   - the shared library exports only the API (scripts/check-exports.sh), with an SONAME;
#   - every public header compiles alone as C++17, and tconv3d.h and export.h as C99;
#   (a) tests/consumers: a C++-only CMake project (find_package), linked to the
#       default tconv3d::tconv3d (libtconv3d.so) and to the static component;
#   (b) the same program through pkg-config: tconv3d, tconv3d --static, tconv3d-static;
#   (c) a C program on the C API (tests/consumers/app_c.c) through pkg-config;
#   (d) the ahead-of-time example (examples/aot): a C-only CMake project that
#       calls tconv3d_add_kernel(), checked against `tconv3d run --backend reference`.
#   scripts/test-consumers.sh BUILD_DIR     (a configured and built tree)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:?usage: test-consumers.sh BUILD_DIR}" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/tconv3d-consumers.XXXXXX")"
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
consumers="$repo/tests/consumers"
started=$SECONDS
step() { echo "== consumers: $* ($((SECONDS - started)) s)"; }

step "cmake --install into a fresh prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
pc_file="$(find "$prefix" -name tconv3d.pc)"
export PKG_CONFIG_PATH="$(dirname "$pc_file")"
libdir="$(pkg-config --variable=libdir tconv3d)"
includedir="$(pkg-config --variable=includedir tconv3d)"
rpath="-Wl,-rpath,$libdir"
# The model check needs a build with model loading; the installed tool says.
model="$repo/examples/models/unet3d_decoder.keras"
model_args=("$model")
if ! "$prefix/bin/tconv3d" model inspect "$model" >/dev/null 2>&1; then
  echo "consumers: this build cannot load models; the programs run without the model check"
  model_args=()
fi

# Whether BINARY loads libtconv3d.so (want: yes|no).
linkage() {
  local binary=$1 want=$2 got=no
  readelf -d "$binary" | grep -q 'NEEDED.*\[libtconv3d\.so' && got=yes
  if [ "$got" != "$want" ]; then
    echo "consumers: $binary: loads libtconv3d.so: $got, expected $want" >&2
    return 1
  fi
}

step "the shared library's exports and SONAME"
bash "$repo/scripts/check-exports.sh" "$libdir/libtconv3d.so"
soname="$(readelf -d "$libdir/libtconv3d.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')"
[ -n "$soname" ] && [ -e "$libdir/$soname" ] || { echo "consumers: no usable SONAME ('$soname')" >&2; exit 1; }

step "every public header alone: C++17 (and C99 for the C headers)"
for header in "$includedir"/tconv3d/*; do
  name="tconv3d/$(basename "$header")"
  g++ -std=c++17 -Wall -Wextra -Werror -fsyntax-only -I"$includedir" -x c++ - <<<"#include <$name>"
  case "$name" in
    # The typedef: ISO C forbids a translation unit with no declaration (export.h has only macros).
    *.h) gcc -std=c99 -pedantic-errors -Wall -Wextra -Werror -fsyntax-only -I"$includedir" -x c - \
           <<<"#include <$name>"$'\n'"typedef int header_check;" ;;
  esac
done

step "(a) CMake, project(app CXX) + find_package(tconv3d): default (shared)"
cmake -S "$consumers" -B "$work/cmake-default" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cmake-default" >/dev/null
linkage "$work/cmake-default/app" yes
"$work/cmake-default/app" "${model_args[@]}"

step "(a) CMake, find_package(tconv3d COMPONENTS static)"
cmake -S "$consumers" -B "$work/cmake-static" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DLINKAGE=static >/dev/null
cmake --build "$work/cmake-static" >/dev/null
linkage "$work/cmake-static/app" no
"$work/cmake-static/app" "${model_args[@]}"

# g++ with its default standard (C++17 in g++ 11 and later), as the issue tried.
step "(b) pkg-config: g++ app.cc \$(pkg-config --cflags --libs tconv3d)"
g++ -O2 -o "$work/app-pc" "$consumers/app.cc" $(pkg-config --cflags --libs tconv3d) "$rpath"
linkage "$work/app-pc" yes
"$work/app-pc"

step "(b) pkg-config --static tconv3d (libtconv3d.so still comes first)"
g++ -O2 -o "$work/app-pc-static" "$consumers/app.cc" $(pkg-config --static --cflags --libs tconv3d) "$rpath"
"$work/app-pc-static"

step "(b) pkg-config tconv3d-static (libtconv3d.a)"
g++ -O2 -o "$work/app-pc-archive" "$consumers/app.cc" $(pkg-config --static --cflags --libs tconv3d-static)
linkage "$work/app-pc-archive" no
"$work/app-pc-archive" "${model_args[@]}"

step "(c) C99 on the C API: gcc app_c.c \$(pkg-config --cflags --libs tconv3d)"
gcc -std=c99 -pedantic-errors -Wall -Wextra -Werror -O2 -o "$work/app-c" "$consumers/app_c.c" \
  $(pkg-config --cflags --libs tconv3d) "$rpath" -lm
linkage "$work/app-c" yes
"$work/app-c"

step "(d) examples/aot: project(C) + find_package(tconv3d) + tconv3d_add_kernel()"
aot="$repo/examples/aot"
data="$work/aot-data"
mkdir -p "$data"
cc -O2 -std=c99 -o "$work/make_data" "$aot/make_data.c" "$aot/npy_io.c"
"$work/make_data" "$data" 2,5,6,7,24 3,3,3,20,24
"$prefix/bin/tconv3d" run --backend reference --layer "$aot/layer.json" --input "$data/input.npy" \
  --kernel "$data/kernel.npy" --bias "$data/bias.npy" --output "$data/expected.npy"
cmake -S "$aot" -B "$work/aot-build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DEXAMPLE_DATA="$data" >/dev/null
cmake --build "$work/aot-build" >/dev/null
"$work/aot-build/aot_example" "$data"

step "every consumer builds and runs"
