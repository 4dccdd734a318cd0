#!/usr/bin/env bash
# Gathers what scripts/xeon-check.sh needs on a machine without our Debian
# packages into .device/ (ignored by git; the device tool carries it).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .device && mkdir -p .device/include
cp -r /usr/include/xbyak /usr/include/nlohmann .device/include/
cp -r /usr/src/googletest .device/googletest
du -sh .device
