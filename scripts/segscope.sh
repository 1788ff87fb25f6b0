#!/usr/bin/env bash
# One entry point for a fresh Debian machine; idempotent and quick when everything is in place.
#
#   scripts/segscope.sh run    install what is missing, build, and run the main job: the workbench
#                              on the built-in demo dataset, or, without a display, the headless demo
#   scripts/segscope.sh test   install what is missing, build, and run the whole test suite, then
#                              the fuzz targets for a fixed time (scripts/fuzz.sh)
#   scripts/segscope.sh build  install what is missing and build
#
# Environment: SEGSCOPE_BUILD_DIR (default build), SEGSCOPE_BUILD_TYPE (default Release),
# SEGSCOPE_ENV (the LibTorch environment, default ~/.cache/segscope/venv), SEGSCOPE_WORKSPACE,
# SEGSCOPE_WERROR (ON: warnings are errors, as in CI; default OFF).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
action=${1:-run}
build_dir=${SEGSCOPE_BUILD_DIR:-build}
build_type=${SEGSCOPE_BUILD_TYPE:-Release}
env_dir=${SEGSCOPE_ENV:-$HOME/.cache/segscope/venv}
jobs=$(nproc)

bash scripts/setup.sh

export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-8G}
# Paths relative to the checkout, so clones in other folders (CI) reuse the same cache entries.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$root}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-true}
werror=${SEGSCOPE_WERROR:-OFF}
if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="$build_type" -DSEGSCOPE_PYTHON="$env_dir/bin/python" \
    -DSEGSCOPE_WERROR="$werror"
elif ! grep -q "^SEGSCOPE_WERROR:BOOL=$werror\$" "$build_dir/CMakeCache.txt"; then
  cmake "$build_dir" -DSEGSCOPE_WERROR="$werror" >/dev/null
fi
cmake --build "$build_dir" -j "$jobs"

case "$action" in
  build) ;;
  test)
    (cd "$build_dir" && ctest -j "$jobs" --output-on-failure --timeout 900)
    # The fuzz targets, 20 s each (scripts/fuzz.sh; SEGSCOPE_FUZZ_SECONDS, SEGSCOPE_FUZZ=0 skips).
    [ "${SEGSCOPE_FUZZ:-1}" = 0 ] || bash scripts/fuzz.sh
    ;;
  run)
    workspace=${SEGSCOPE_WORKSPACE:-${XDG_DATA_HOME:-$HOME/.local/share}/SegScope}
    if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
      exec "$build_dir/app/segscope" --workspace "$workspace"
    fi
    echo "No display: training the demo headless (resources/presets/demo.json)."
    "$build_dir/app/segscope-cli" --version
    "$build_dir/app/segscope-cli" train --config resources/presets/demo.json --workspace "$workspace"
    "$build_dir/app/segscope-cli" runs --workspace "$workspace"
    ;;
  *)
    echo "usage: scripts/segscope.sh run|test|build" >&2
    exit 2
    ;;
esac
