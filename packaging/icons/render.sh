#!/usr/bin/env bash
# Renders the 256x256 PNG icon from segscope.svg (needs rsvg-convert: apt-get install librsvg2-bin).
# Both files are committed; run this after editing the SVG.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rsvg-convert --width 256 --height 256 "$here/segscope.svg" --output "$here/segscope-256.png"
