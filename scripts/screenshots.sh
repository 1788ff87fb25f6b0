#!/usr/bin/env bash
# Takes the README's screenshots of the real app under Xvfb: live training on the demo preset,
# two finished runs compared, the experiment editor and the dataset check. Writes docs/screenshots/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${SEGSCOPE_BUILD_DIR:-$root/build}
out=$root/docs/screenshots
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
app=("xvfb-run" "-a" "-s" "-screen 0 1400x900x24" "$build/app/segscope" --workspace "$work/ws")

# Two short recorded runs for the comparison.
"$build/app/segscope-cli" train --config "$root/resources/presets/demo.json" --workspace "$work/ws" \
  --name "segformer-b0 lr 6e-4" --set training.epochs=4 > /dev/null
"$build/app/segscope-cli" train --config "$root/resources/presets/demo.json" --workspace "$work/ws" \
  --name "segformer-b0 lr 1e-4" --set training.epochs=4 --set optimizer.lr=0.0001 > /dev/null

"${app[@]}" "$root/resources/presets/demo.json" --start --screenshot "$out/training.png" --screenshot-delay 45000
"${app[@]}" --compare-all --screenshot "$out/runs-compare.png" --screenshot-delay 4000
"${app[@]}" --tab 0 --screenshot "$out/experiment.png" --screenshot-delay 3000
"${app[@]}" --tab 3 --check --screenshot "$out/dataset-check.png" --screenshot-delay 5000
echo "screenshots in $out"
