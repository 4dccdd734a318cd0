#!/usr/bin/env bash
# Sets up and runs the main job: installs dependencies, builds tconv3d, then
# specializes the bundled example model's layers, checks each against the
# reference, and prints specialized vs generic speed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target tconv3d_cli
build/bin/tconv3d demo "$@"
