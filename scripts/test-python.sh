#!/usr/bin/env bash
# Builds the Python package (pip install .) into a virtual environment and
# runs its pytest suite once per Keras backend (Keras picks its backend once
# per process): JAX runs everything, torch and TensorFlow the Keras-layer and
# model-file tests. Any failure, and a session that collects no test (pytest
# exit code 5), fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${TCONV3D_PY_VENV:-$PWD/.venv-test}
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip
# torch from PyPI brings its CUDA wheels (~7 GB, ~35 s); CPU-only works with them.
"${pip[@]}" install pytest numpy keras jax h5py tensorflow-cpu torch onnx onnxruntime onnxruntime-extensions
if command -v ccache >/dev/null; then
  export CMAKE_CXX_COMPILER_LAUNCHER=ccache CMAKE_C_COMPILER_LAUNCHER=ccache
fi
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
"${pip[@]}" install --force-reinstall --no-deps .

session() {
  local backend=$1; shift
  echo "== Python tests, KERAS_BACKEND=$backend" >&2
  local rc=0 root=$PWD
  # From /tmp so the installed package, not python/tconv3d in the tree, is imported.
  # Keras calls NumPy's __array__ the pre-2.0 way on every variable; that warning is Keras's, not ours.
  (cd /tmp && KERAS_BACKEND=$backend "$venv/bin/python" -m pytest -rs -q -p no:cacheprovider \
     -W "ignore:__array__ implementation:DeprecationWarning" \
     --rootdir "$root/python/tests" "$@") || rc=$?
  if [ "$rc" -eq 5 ]; then
    echo "test-python.sh: KERAS_BACKEND=$backend collected no tests" >&2
  fi
  return "$rc"
}
tests=$PWD/python/tests
session jax "$tests" --ignore="$tests/test_torch_op.py"
session torch "$tests/test_keras_layer.py" "$tests/test_keras_models.py" "$tests/test_bf16.py"
session tensorflow "$tests/test_keras_layer.py" "$tests/test_keras_models.py" "$tests/test_keras_tf_op.py" "$tests/test_bf16.py"
# tconv3d.torch in a process without TensorFlow: TensorFlow and triton (imported by torch._dynamo,
# which custom ops and torch.compile load) register the same LLVM options and abort together.
session torch "$tests/test_torch_op.py"
