#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang with ASan+UBSan) in their own build folder and
# runs each for a fixed time, seeded with the committed corpus (tests/fuzz/corpus/TARGET, which also
# holds every crash found so far: each run replays them first). Idempotent and quick when built.
#
#   scripts/fuzz.sh [TARGET ...]     default: every target (image mask safetensors pth pth_pickle experiment)
#
# Exits non-zero when a target crashes, trips a sanitizer, runs out of its memory or time limit,
# or breaks the readers' contract (tests/fuzz/fuzz_support.h); the input is saved under
# BUILD/artifacts/TARGET/ and its path printed. Reproduce with: BUILD/fuzz_TARGET FILE
#
# Environment: SEGSCOPE_FUZZ_SECONDS (per target, default 20), SEGSCOPE_FUZZ_BUILD_DIR (default
# build-fuzz), SEGSCOPE_FUZZ_JOBS (build jobs, default nproc), SEGSCOPE_FUZZ_RSS_MB (default 2048),
# SEGSCOPE_FUZZ_MALLOC_MB (largest single allocation, default 1024), SEGSCOPE_FUZZ_TIMEOUT (seconds
# per input, default 10), SEGSCOPE_ENV (the LibTorch environment, default ~/.cache/segscope/venv).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build_dir=${SEGSCOPE_FUZZ_BUILD_DIR:-build-fuzz}
seconds=${SEGSCOPE_FUZZ_SECONDS:-20}
jobs=${SEGSCOPE_FUZZ_JOBS:-$(nproc)}
rss_mb=${SEGSCOPE_FUZZ_RSS_MB:-2048}
malloc_mb=${SEGSCOPE_FUZZ_MALLOC_MB:-1024}
timeout_s=${SEGSCOPE_FUZZ_TIMEOUT:-10}
env_dir=${SEGSCOPE_ENV:-$HOME/.cache/segscope/venv}
all_targets=(image mask safetensors pth pth_pickle experiment)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

for tool in clang clang++; do
  command -v "$tool" >/dev/null || { echo "fuzz: $tool not found (scripts/setup.sh installs clang)" >&2; exit 1; }
done

export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-8G}
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$root}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-true}
start=$(date +%s)
if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S tests/fuzz -B "$build_dir" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DSEGSCOPE_PYTHON="$env_dir/bin/python" >/dev/null
fi
mkdir -p "$build_dir/logs"
if ! cmake --build "$build_dir" -j "$jobs" --target $(printf 'fuzz_%s ' "${targets[@]}") \
    >"$build_dir/logs/build.log" 2>&1; then
  tail -60 "$build_dir/logs/build.log" >&2
  echo "fuzz: build failed (log: $build_dir/logs/build.log)" >&2
  exit 1
fi
echo "fuzz: built in $(( $(date +%s) - start )) s; ${seconds} s per target"

# Per target: the longest input libFuzzer may generate, and a dictionary where one helps.
max_len() {
  case $1 in
    image|mask) echo 16384 ;;
    pth) echo 8192 ;;
    experiment) echo 8192 ;;
    *) echo 4096 ;;
  esac
}
dictionary() {
  case $1 in
    image|mask) echo tests/fuzz/png.dict ;;
    experiment) echo tests/fuzz/experiment.dict ;;
    safetensors) echo tests/fuzz/safetensors.dict ;;
  esac
}

export OMP_NUM_THREADS=1
# Leaks are not findings here (LibTorch keeps one-time allocations); everything else aborts.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/segscope-fuzz.XXXXXX")
[ -d /dev/shm ] && { rmdir "$scratch"; scratch=$(mktemp -d /dev/shm/segscope-fuzz.XXXXXX); }
trap 'rm -rf "$scratch"' EXIT
export SEGSCOPE_FUZZ_SCRATCH=$scratch
export SEGSCOPE_FUZZ_BASE_EXPERIMENT=$root/resources/presets/demo.json

failed=()
summary=()
for target in "${targets[@]}"; do
  binary="$build_dir/fuzz_$target"
  work="$build_dir/corpus/$target"        # what this machine found; the committed corpus stays as is
  artifacts="$build_dir/artifacts/$target"
  log="$build_dir/logs/$target.log"
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  options=(-max_total_time="$seconds" -rss_limit_mb="$rss_mb" -malloc_limit_mb="$malloc_mb" -timeout="$timeout_s"
           -max_len="$(max_len "$target")" -artifact_prefix="$artifacts/" -print_final_stats=1)
  dict=$(dictionary "$target")
  [ -z "$dict" ] || options+=(-dict="$dict")
  rc=0
  "$binary" "${options[@]}" "$work" "tests/fuzz/corpus/$target" >"$log" 2>&1 || rc=$?
  executed=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)
  if [ -z "$executed" ]; then  # a crash ends the run before the final stats
    executed=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#' || true)
  fi
  corpus=$(grep -o 'corp: [0-9]*/[0-9A-Za-z]*' "$log" | tail -1 | cut -d' ' -f2 || true)
  line=$(printf '%-12s %s s  %10s inputs  corpus %s' "$target" "$seconds" "${executed:-?}" "${corpus:-?}")
  if [ "$rc" != 0 ]; then
    line="$line  FAILED (exit $rc)"
    failed+=("$target")
    echo "fuzz: $target failed; the end of $log:" >&2
    grep -v '^INFO: \|^#[0-9]\|^stat::\|NEW_FUNC' "$log" | grep -v '^    #\(1[2-9]\|[2-9][0-9]\)' | tail -40 | cut -c1-240 >&2
    for artifact in "$artifacts"/*; do
      if [ -f "$artifact" ]; then echo "fuzz: input saved: $artifact (reproduce: $binary $artifact)" >&2; fi
    done
  fi
  summary+=("$line")
  echo "fuzz: $line"
done

echo "fuzz: summary (budget ${seconds} s per target, $(( $(date +%s) - start )) s in all, build included)"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
