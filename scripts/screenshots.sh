#!/usr/bin/env bash
# Takes the README's screenshots of the real app under Xvfb: live training on the demo preset,
# two finished runs compared, the experiment editor, the dataset check, the ERF figure (DeepLabV3+
# vs SegFormer-B0 trained on the demo) and the predictions views. Writes docs/screenshots/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${SEGSCOPE_BUILD_DIR:-$root/build}
out=$root/docs/screenshots
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
app=("xvfb-run" "-a" "-s" "-screen 0 1366x768x24" "$build/app/segscope" --workspace "$work/ws")

# Two short recorded runs for the comparison.
"$build/app/segscope-cli" train --config "$root/resources/presets/demo.json" --workspace "$work/ws" \
  --name "segformer-b0 lr 6e-4" --set training.epochs=4 > /dev/null
"$build/app/segscope-cli" train --config "$root/resources/presets/demo.json" --workspace "$work/ws" \
  --name "segformer-b0 lr 1e-4" --set training.epochs=4 --set optimizer.lr=0.0001 > /dev/null

# DeepLabV3+/ResNet-50 vs SegFormer-B0 on the demo, both recording ERF snapshots, for the ERF figure
# and the predictions views.
"$build/app/segscope-cli" train --config "$root/resources/presets/demo-deeplabv3plus.json" --workspace "$work/erf" \
  --set training.epochs=3 > /dev/null
"$build/app/segscope-cli" train --config "$root/resources/presets/demo.json" --workspace "$work/erf" \
  --set training.epochs=4 --set training.erf_every_epochs=1 > /dev/null
run_of() {  # newest run of a model in the ERF workspace
  "$build/app/segscope-cli" runs --workspace "$work/erf" --json |
    python3 -c "import json,sys; print(next(r['id'] for r in json.load(sys.stdin)['runs'] if r['model']==sys.argv[1]))" "$1"
}
cnn=$(run_of deeplabv3plus-resnet50)
transformer=$(run_of segformer-b0)
erf=("xvfb-run" "-a" "-s" "-screen 0 1366x768x24" "$build/app/segscope" --workspace "$work/erf")
"${erf[@]}" --erf-compare cnn-vs-transformer --erf-images 16 --screenshot "$out/erf-cnn-vs-transformer.png"
"${erf[@]}" --predict "$transformer" --predictions-view images --screenshot "$out/predictions-errors.png"
"${erf[@]}" --predict "$transformer" --predictions-view gallery --screenshot "$out/predictions-gallery.png"
"${erf[@]}" --predict "$transformer" --predictions-view confusion --screenshot "$out/predictions-confusion.png"
"${erf[@]}" --predict "$transformer" --predictions-view side-by-side --compare-runs "$cnn,$transformer" \
  --screenshot "$out/predictions-side-by-side.png"

"${app[@]}" "$root/resources/presets/demo.json" --start --screenshot "$out/training.png" --screenshot-delay 45000
"${app[@]}" --compare-all --screenshot "$out/runs-compare.png" --screenshot-delay 4000
"${app[@]}" --tab 0 --screenshot "$out/experiment.png" --screenshot-delay 3000
"${app[@]}" --tab 3 --check --screenshot "$out/dataset-check.png" --screenshot-delay 5000
echo "screenshots in $out"
