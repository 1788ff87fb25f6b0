#!/usr/bin/env bash
# Installs what is missing for SegScope on Debian: system packages and the pinned LibTorch
# environment. Idempotent: a second run with everything in place takes a second or two.
#
#   SEGSCOPE_ENV   where the Python/LibTorch environment lives (default ~/.cache/segscope/venv)
#   SEGSCOPE_NO_APT=1   never call apt-get (for machines where packages are managed elsewhere)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
env_dir=${SEGSCOPE_ENV:-$HOME/.cache/segscope/venv}

apt_packages=(
  build-essential cmake ninja-build ccache pkg-config git file
  qt6-base-dev qt6-svg-dev libqcustomplot-dev libgl-dev
  libopencv-dev libgtest-dev libgmock-dev nlohmann-json3-dev libsqlite3-dev libspng-dev
  xvfb xauth python3 python3-venv
  clang libclang-rt-14-dev lld clang-format libcli11-dev
)

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "${SEGSCOPE_NO_APT:-0}" = 1 ]; then
    echo "setup: missing Debian packages (SEGSCOPE_NO_APT=1, not installing): ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Python environment carries LibTorch (headers, libraries, CMake config) and the reference
# packages. A stamp holding the requirements' hash makes the check a file comparison.
req="$here/requirements-reference.txt"
want=$(sha256sum "$req" | cut -d' ' -f1)
stamp="$env_dir/.segscope-requirements"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: preparing the LibTorch environment in $env_dir"
  py=${SEGSCOPE_PYTHON:-python3}
  [ -x "$env_dir/bin/python" ] || "$py" -m venv "$env_dir"
  "$env_dir/bin/python" -m pip install -q --upgrade pip
  "$env_dir/bin/python" -m pip install -q -r "$req"
  echo "$want" > "$stamp"
fi

# A second environment with the newest releases of transformers, timm and smp
# (requirements-newest.txt), for the interoperability tests. It reuses the pinned environment's
# torch and torchvision through a .pth file (about 220 MB, half a minute to install, instead of a
# second multi-GB torch); its own packages shadow the pinned ones. Same stamp scheme.
newest_dir="${env_dir}-newest"
newest_req="$here/requirements-newest.txt"
newest_want=$( (cat "$newest_req"; echo "$want") | sha256sum | cut -d' ' -f1)
newest_stamp="$newest_dir/.segscope-requirements"
if [ ! -f "$newest_stamp" ] || [ "$(cat "$newest_stamp")" != "$newest_want" ]; then
  echo "setup: preparing the newest-references environment in $newest_dir"
  py=${SEGSCOPE_PYTHON:-python3}
  [ -x "$newest_dir/bin/python" ] || "$py" -m venv "$newest_dir"
  pinned_site=$("$env_dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  newest_site=$("$newest_dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$pinned_site" > "$newest_site/segscope-pinned.pth"
  "$newest_dir/bin/python" -m pip install -q --upgrade pip
  "$newest_dir/bin/python" -m pip install -q -r "$newest_req"
  echo "$newest_want" > "$newest_stamp"
fi
