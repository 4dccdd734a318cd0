#!/usr/bin/env bash
# Gathers what scripts/xeon-check.sh needs on a machine without our Debian
# packages into .device/ (ignored by git; the device tool carries it).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .device && mkdir -p .device/xbyak .device/json
# Separate folders, so the carried json headers never shadow an installed copy.
cp -r /usr/include/xbyak .device/xbyak/
cp -r /usr/include/nlohmann .device/json/
cp -r /usr/src/googletest .device/googletest
du -sh .device
