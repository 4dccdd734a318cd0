#!/usr/bin/env bash
# Fails unless the shared library LIB exports exactly the API: C++ symbols in
# namespace tconv3d (functions, data, their type_info and vtables) and C
# symbols named tconv3d_*. Anything else is an internal symbol or std::
# template code that leaked, which could clash with a program's own. The one
# exception is llvm::Any::TypeId<T>::Id, which LLVM makes visible on purpose
# (cmake/tconv3d.version says why).
#   scripts/check-exports.sh build/lib/libtconv3d.so
set -euo pipefail
lib="${1:?usage: check-exports.sh LIB}"
symbols=$(nm -D --defined-only "$lib" | awk '{print $3}')
[ -n "$symbols" ] || { echo "check-exports: $lib exports nothing" >&2; exit 1; }
demangled=$(c++filt <<<"$symbols")
bad=$(grep -v -E '^(tconv3d::|(typeinfo|typeinfo name|vtable) for tconv3d::|tconv3d_[A-Za-z0-9_]+$|llvm::Any::TypeId<.*>::Id$)' <<<"$demangled" || true)
if [ -n "$bad" ]; then
  echo "check-exports: $lib exports $(wc -l <<<"$bad") symbol(s) outside the API:" >&2
  head -n 40 <<<"$bad" >&2
  exit 1
fi
# And the API is there: a C function, a C++ factory and the exception's type_info.
for required in 'tconv3d_layer_create_from_json' 'tconv3d::Layer::create(' 'typeinfo for tconv3d::Error'; do
  grep -q -F "$required" <<<"$demangled" || { echo "check-exports: $lib lacks $required" >&2; exit 1; }
done
echo "check-exports: $(wc -l <<<"$symbols") symbols, all tconv3d::*, tconv3d_* or llvm::Any type ids"
