#!/usr/bin/env bash
# The sanitizer gate: the core, the CLI and the core tests built with AddressSanitizer and UBSan,
# without precompiled headers (so a missing include fails here) and with warnings as errors,
# then the core tests run (CMakePresets.json: the asan presets, build dir build-asan).
# LibTorch is not instrumented: leaks are not tracked (its allocator caches), and allocation
# mismatches across its boundary are not reported.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
env_dir=${SEGSCOPE_ENV:-$HOME/.cache/segscope/venv}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$root}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-true}
if [ ! -f build-asan/build.ninja ]; then
  cmake --preset asan -DSEGSCOPE_PYTHON="$env_dir/bin/python" >/dev/null
fi
cmake --build --preset asan -j "$(nproc)"
ctest --preset asan -j "$(nproc)"
