#!/usr/bin/env bash
# Gathers what scripts/xeon-check.sh needs on a machine without our Debian
# packages into .device/ (ignored by git; the device tool carries it).
# usage: prepare-device.sh [BASELINE_REV]
# With a git revision, its source tree goes to .device/baseline too, and the
# check times that build against this one, layer by layer, alternating.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .device && mkdir -p .device/xbyak .device/json
# Separate folders, so the carried json headers never shadow an installed copy.
cp -r /usr/include/xbyak .device/xbyak/
cp -r /usr/include/nlohmann .device/json/
cp -r /usr/src/googletest .device/googletest
if [ $# -ge 1 ]; then
  mkdir -p .device/baseline
  git archive "$1" | tar -x -C .device/baseline
  echo "baseline: $(git rev-parse --short "$1")" > .device/baseline/REVISION
fi
du -sh .device
