#!/usr/bin/env bash
# ctest package_deb: builds the DEB with cpack, unpacks it with dpkg-deb -x into a temporary
# folder, and runs the unpacked programs from there with an environment that sees neither the
# build tree nor the LibTorch environment (env -i, no LD_LIBRARY_PATH, working folder elsewhere).
#
#   test_package_deb.sh BUILD_DIR PRIVATE_LIBDIR BUILD_UI PACKAGE_CUDA [CPACK]
#     PRIVATE_LIBDIR  the private library folder under the prefix, e.g. lib/segscope
#     CPACK           the cpack of the CMake that configured BUILD_DIR (default: cpack on PATH)
set -euo pipefail
build=$(realpath "$1")
private_libdir=$2
build_ui=$3
package_cuda=$4
cpack=${5:-cpack}

tmp=$(realpath "$(mktemp -d "${TMPDIR:-/tmp}/segscope-deb.XXXXXX")")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "package_deb: FAIL: $*" >&2; exit 1; }
step() { echo "package_deb: [${SECONDS}s] $*"; }
is_on() { case "${1^^}" in ON|1|TRUE|YES|Y) return 0 ;; *) return 1 ;; esac; }

"$cpack" -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/cpack" > "$tmp/cpack.log" 2>&1 \
  || { cat "$tmp/cpack.log"; fail "cpack -G DEB failed"; }
shopt -s nullglob
debs=("$tmp"/cpack/segscope_*.deb)
[ ${#debs[@]} -eq 1 ] || fail "expected one segscope_*.deb, found ${#debs[@]}"
deb=${debs[0]}
step "cpack: $(basename "$deb"), $(( $(stat -c %s "$deb") / 1000000 )) MB"
depends=$(dpkg-deb --field "$deb" Depends)
for package in libopencv-core libsqlite3 libspng; do
  grep -q "$package" <<< "$depends" || fail "Depends lacks $package: $depends"
done
if is_on "$build_ui"; then
  grep -q 'libqt6widgets6' <<< "$depends" || fail "Depends lacks Qt 6 Widgets: $depends"
fi
rm -rf "$tmp/cpack/_CPack_Packages"

root=$tmp/root
dpkg-deb -x "$deb" "$root"
step "unpacked"
lib=$root/usr/$private_libdir
for f in usr/bin/segscope-cli "usr/$private_libdir/libsegscope_core.so.0" "usr/$private_libdir/libtorch_cpu.so" \
         "usr/$private_libdir/libc10.so" usr/share/segscope/presets/demo.json \
         usr/share/applications/segscope.desktop usr/share/icons/hicolor/scalable/apps/segscope.svg \
         usr/share/icons/hicolor/256x256/apps/segscope.png; do
  [ -e "$root/$f" ] || fail "the package lacks $f"
done
is_on "$build_ui" && { [ -x "$root/usr/bin/segscope" ] || fail "the package lacks usr/bin/segscope"; }

# Everything below runs in a folder outside the build tree, with a bare environment.
mkdir -p "$tmp/work" "$tmp/home"
clean() { (cd "$tmp/work" && env -i PATH=/usr/bin:/bin HOME="$tmp/home" LANG=C.UTF-8 "$@"); }

# Each library must resolve, either inside the unpacked tree or in the system folders, and
# LibTorch must come from the tree.
check_libraries() {
  local binary=$1 listing
  listing=$(clean ldd "$binary") || fail "ldd $binary failed"
  if grep -q 'not found' <<< "$listing"; then
    echo "$listing"
    fail "$(basename "$binary"): unresolved libraries"
  fi
  while read -r path; do
    path=$(realpath "$path")
    case "$path" in
      "$root"/*|/lib/*|/lib64/*|/usr/lib/*|/usr/lib64/*) ;;
      *) echo "$listing"; fail "$(basename "$binary") loads $path from outside the package and the system" ;;
    esac
  done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 }' <<< "$listing")
  local torch
  torch=$(awk '$1 == "libtorch_cpu.so" { print $3 }' <<< "$listing")
  [ -n "$torch" ] && [ "$(realpath "$torch")" = "$lib/libtorch_cpu.so" ] \
    || { echo "$listing"; fail "$(basename "$binary"): libtorch_cpu.so resolves to '${torch}', not inside the package"; }
}
check_libraries "$root/usr/bin/segscope-cli"
check_libraries "$lib/libsegscope_core.so.0"
is_on "$build_ui" && check_libraries "$root/usr/bin/segscope"
step "ldd: every library resolves; LibTorch from $lib"

version=$(clean "$root/usr/bin/segscope-cli" --version) || fail "segscope-cli --version failed"
echo "$version"
grep -qx 'SegScope [0-9.]*' <<< "$version" || fail "--version lacks the SegScope line"
if is_on "$package_cuda"; then
  grep -qxF "CUDA backend: loaded ($lib/libtorch_cuda.so)" <<< "$version" || fail "the packaged CUDA backend did not load"
else
  [ ! -e "$lib/libtorch_cuda.so" ] || fail "libtorch_cuda.so is packaged with SEGSCOPE_PACKAGE_CUDA off"
  grep -qxF "CUDA backend: not installed (no $lib/libtorch_cuda.so)" <<< "$version" \
    || fail "expected 'CUDA backend: not installed (no $lib/libtorch_cuda.so)'"
fi
if is_on "$build_ui"; then
  gui=$(clean QT_QPA_PLATFORM=offscreen "$root/usr/bin/segscope" --version 2> "$tmp/gui.err") \
    || { cat "$tmp/gui.err"; fail "segscope --version failed"; }
  grep -q '^SegScope [0-9.]*$' <<< "$gui" \
    || { echo "$gui"; cat "$tmp/gui.err"; fail "segscope --version printed no version"; }
fi
step "--version"

# The demo: a tiny dataset and a 3-step training run of the packaged demo preset.
clean "$root/usr/bin/segscope-cli" demo-data --out "$tmp/demo" --images 16 --size 64 64 > /dev/null \
  || fail "demo-data failed"
train=$(clean "$root/usr/bin/segscope-cli" --threads 1 train --config "$root/usr/share/segscope/presets/demo.json" \
          --workspace "$tmp/ws" --set "dataset.root=$tmp/demo" --set transforms.height=64 --set transforms.width=64 \
          --set training.epochs=1 --set training.batch_size=4 --set runtime.workers=1 2>&1) \
  || { echo "$train"; fail "demo training failed"; }
grep -q '^finished: 3 steps in ' <<< "$train" || { echo "$train"; fail "demo training did not finish its 3 steps"; }
runs=$(clean "$root/usr/bin/segscope-cli" runs --workspace "$tmp/ws") || fail "runs failed"
grep -q ' finished .*demo-segformer-b0$' <<< "$runs" || { echo "$runs"; fail "the demo run is not recorded as finished"; }
step "demo training: 3 steps, recorded as finished"
