#!/usr/bin/env bash
# Installs tconv3d's build and test dependencies from Debian 12's packages.
# Skips apt entirely when everything is already there (CI re-runs stay fast).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libxbyak-dev llvm-dev libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev
  libzip-dev libdnnl-dev zlib1g-dev
  python3-dev python3-venv ccache
  clang-14 libclang-rt-14-dev
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "tconv3d: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
