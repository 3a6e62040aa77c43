#!/usr/bin/env bash
# Puts a pjsua2 built from pjproject source (server limits: scripts/pjsua2/config_site.h) into a
# venv. The PyPI wheel `pjsua2-python` carries 4 calls per process and no SRTP, so it is only the
# fallback when a build is impossible; the engine then warns and runs 4 calls per worker.
#
#   scripts/build-pjsua2.sh VENV_PYTHON
#
# Source: ../shared/vendor/pjproject-2.16.tar.gz beside the checkout when present (sha256
# checked), else the upstream repository at tag 2.16 (commit checked); then our patches in
# scripts/pjsua2/*.patch. The built wheel is cached
# under ${IVR_CACHE:-~/.cache/ivr}/pjsua2/, keyed by version, config_site.h and Python, so a second
# setup or CI run installs it in seconds. IVR_PJSUA2_BUILD=0 skips the build (wheel fallback);
# IVR_PJPROJECT_GIT names another clone source.
set -uo pipefail

PY=${1:?usage: build-pjsua2.sh VENV_PYTHON}
# absolute (the build runs in other directories), without resolving the venv's symlink
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PJ_VERSION=2.16
PJ_SHA256=da6d93e1fc2b0d73e6991824fad9345eb3b15e9a53b04065896fb8ffff1a42c0
PJ_COMMIT=6cab30cec44af36ba7c8a45ff7af2f74a8ed288c
PJ_GIT=${IVR_PJPROJECT_GIT:-https://github.com/pjsip/pjproject.git}
CONFIG_SITE="$HERE/pjsua2/config_site.h"
CACHE=${IVR_CACHE:-$HOME/.cache/ivr}/pjsua2

say() { echo "build-pjsua2: $*" >&2; }

fallback() {
  say "WARNING: $1"
  say "WARNING: falling back to the PyPI wheel pjsua2-python (4 calls per worker, no SRTP)"
  if ! "$PY" -c 'import importlib.metadata as m; m.version("pjsua2-python")' 2>/dev/null; then
    "$PY" -m pip uninstall -q -y pjsua2 >/dev/null 2>&1
    "$PY" -m pip install -q 'pjsua2-python>=2.15.1' || { say "cannot install pjsua2-python either"; exit 1; }
  fi
  exit 0
}

pyver=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
CONFIGURE_FLAGS="--disable-video --disable-sound --disable-libwebrtc --disable-opencore-amr \
  --disable-libyuv --disable-ffmpeg --disable-v4l2 --disable-openh264 --disable-vpx --disable-sdl \
  --enable-epoll"
PATCHES=$(ls "$HERE"/pjsua2/*.patch 2>/dev/null | sort)
# shellcheck disable=SC2086
key="$PJ_VERSION-$( (cat "$CONFIG_SITE" $PATCHES; echo "$CONFIGURE_FLAGS") | sha256sum | cut -c1-12)-$pyver-$(uname -m)"
dest="$CACHE/$key"

installed_key=$("$PY" -c 'import importlib.resources as r; print(r.files("pjsua2_build").joinpath("KEY").read_text().strip())' 2>/dev/null)
if [ "$installed_key" = "$key" ] && "$PY" -c 'import pjsua2' 2>/dev/null; then
  exit 0
fi

if [ "${IVR_PJSUA2_BUILD:-1}" = "0" ]; then
  fallback "IVR_PJSUA2_BUILD=0: not building pjproject"
fi

if ! ls "$dest"/*.whl >/dev/null 2>&1; then
  for tool in gcc g++ make swig patch; do
    command -v "$tool" >/dev/null || fallback "no $tool (Debian: build-essential swig libssl-dev uuid-dev)"
  done
  work=$(mktemp -d "${TMPDIR:-/tmp}/pjsua2-build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  tarball="$ROOT/../shared/vendor/pjproject-$PJ_VERSION.tar.gz"
  if [ -f "$tarball" ]; then
    echo "$PJ_SHA256  $tarball" | sha256sum -c --quiet - || fallback "$tarball: sha256 mismatch"
    tar -xzf "$tarball" -C "$work" || fallback "cannot unpack $tarball"
    src="$work/pjproject-$PJ_VERSION"
  else
    say "no vendored tarball; cloning $PJ_GIT at tag $PJ_VERSION"
    timeout 300 git clone -q --depth 1 --branch "$PJ_VERSION" "$PJ_GIT" "$work/pjproject-$PJ_VERSION" \
      || fallback "cannot fetch pjproject $PJ_VERSION"
    src="$work/pjproject-$PJ_VERSION"
    got=$(git -C "$src" rev-parse HEAD)
    [ "$got" = "$PJ_COMMIT" ] || fallback "tag $PJ_VERSION is $got, expected $PJ_COMMIT"
  fi
  cp "$CONFIG_SITE" "$src/pjlib/include/pj/config_site.h"
  # our fixes to the release, one file each (scripts/pjsua2/NNNN-*.patch, -p1 from the tree top)
  for patch in $PATCHES; do
    (cd "$src" && patch -p1 --quiet --forward <"$patch") || fallback "cannot apply $(basename "$patch")"
  done
  jobs=$(nproc 2>/dev/null || echo 2)
  say "building pjproject $PJ_VERSION ($jobs jobs, about 5 minutes on 2 cores); log in $work/build.log"
  started=$(date +%s)
  (
    set -e
    cd "$src"
    # shellcheck disable=SC2086
    CFLAGS="-O2 -fPIC" CXXFLAGS="-O2 -fPIC" ./configure $CONFIGURE_FLAGS
    make dep -j"$jobs"
    make -j"$jobs"
    cd pjsip-apps/src/swig/python
    "$PY" -m pip install -q setuptools wheel
    make pjsua2_wrap.cpp
    "$PY" setup.py -q bdist_wheel
  ) >"$work/build.log" 2>&1 || { tail -30 "$work/build.log" >&2; fallback "pjproject build failed"; }
  mkdir -p "$dest"
  cp "$src"/pjsip-apps/src/swig/python/dist/*.whl "$dest/"
  cp "$src/COPYING" "$dest/COPYING"
  say "built in $(( $(date +%s) - started )) s, cached in $dest"
fi

# The marker package says which build the engine loaded (`/health`: pjsua2 build "source").
marker=$(mktemp -d "${TMPDIR:-/tmp}/pjsua2-marker.XXXXXX")
mkdir -p "$marker/pjsua2_build"
cat >"$marker/pjsua2_build/__init__.py" <<EOF
"""Written by scripts/build-pjsua2.sh: pjsua2 in this environment was built from pjproject source."""
EOF
echo "$key" >"$marker/pjsua2_build/KEY"
cp "$dest/COPYING" "$marker/pjsua2_build/COPYING"
cat >"$marker/pyproject.toml" <<EOF
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"
[project]
name = "pjsua2-build"
version = "$PJ_VERSION"
description = "Marker: pjsua2 built from pjproject $PJ_VERSION source ($key), GPL-2.0-or-later"
[tool.setuptools]
packages = ["pjsua2_build"]
[tool.setuptools.package-data]
pjsua2_build = ["KEY", "COPYING"]
EOF
"$PY" -m pip install -q setuptools wheel || fallback "cannot install setuptools"
"$PY" -m pip uninstall -q -y pjsua2-python >/dev/null 2>&1
"$PY" -m pip install -q --force-reinstall --no-deps "$dest"/*.whl || fallback "cannot install the built wheel"
"$PY" -m pip install -q --no-build-isolation "$marker" >/dev/null 2>&1 || fallback "cannot install the build marker"
rm -rf "$marker"
"$PY" -c 'import pjsua2; assert pjsua2.UaConfig().maxCalls > 4' || fallback "the built pjsua2 does not load"
say "pjsua2 from pjproject $PJ_VERSION source installed ($key)"
