#!/usr/bin/env bash
# The formatting gate: every tracked C++ file as .clang-format wants it, with the clang-format
# that scripts/setup.sh installs (Debian's, 14). Prints the files that differ; exit 1 if any.
#   scripts/check_format.sh          check
#   scripts/check_format.sh --fix    rewrite them in place
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode=(--dry-run --Werror)
[ "${1:-}" = --fix ] && mode=(-i)
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.hpp' | grep -v '^tests/fuzz/corpus/')
bad=()
for f in "${files[@]}"; do
  [ -f "$f" ] || continue
  clang-format "${mode[@]}" --style=file "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  printf 'check_format: not formatted (run scripts/check_format.sh --fix):\n' >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "check_format: ${#files[@]} files formatted"
