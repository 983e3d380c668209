#!/usr/bin/env bash
# Fetches the onnxruntime shared library for edge-ssl's `onnxruntime` engine from the PyPI
# `onnxruntime` wheel (its onnxruntime/capi/ folder), checks the wheel's sha256 and extracts
# libonnxruntime.so.<version> (plus a libonnxruntime.so link) to a folder.
#
#   scripts/fetch-onnxruntime.sh                      # host arch -> target/onnxruntime/<arch>/
#   scripts/fetch-onnxruntime.sh --target aarch64     # for a Pi / Jetson (cross builds)
#   scripts/fetch-onnxruntime.sh --dest target/release  # next to the edge-ssl executable
#   scripts/fetch-onnxruntime.sh --print-path         # only print where the library would be
#
# Needs python3 with pip (`pip download`, no install; any Python version: the wheel is chosen by
# platform tag). The build never runs this: cargo only compiles the `ort` crate with
# `load-dynamic`, and the library is opened at run time from, in order, the spec's/CLI's
# library path, $ORT_DYLIB_PATH, the executable's folder, the system library path.
# Prints the library's path on the last line of stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

version=1.32.0
target=$(uname -m)
dest=""
print_only=0
while [ $# -gt 0 ]; do
    case "$1" in
        --target) target="$2"; shift 2 ;;
        --dest) dest="$2"; shift 2 ;;
        --print-path) print_only=1; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
case "$target" in
    x86_64|x86_64-unknown-linux-gnu|amd64) arch=x86_64 ;;
    aarch64|aarch64-unknown-linux-gnu|arm64) arch=aarch64 ;;
    *) echo "no onnxruntime wheel known for target $target (x86_64 or aarch64 Linux)" >&2; exit 2 ;;
esac
# sha256 of onnxruntime-$version-cp311-cp311-manylinux_2_28_$arch.whl (PyPI).
case "$arch" in
    x86_64) sha=5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d ;;
    aarch64) sha=2303372a85299b6757b0e11e1cbf13e410ddf7e10c37f4b37e99d1c90e7daf7c ;;
esac
dest=${dest:-target/onnxruntime/$arch}
lib="$dest/libonnxruntime.so.$version"
if [ "$print_only" = 1 ]; then
    echo "$lib"
    exit 0
fi
if [ -f "$lib" ] && [ -f "$dest/.wheel-sha256" ] && [ "$(cat "$dest/.wheel-sha256")" = "$sha" ]; then
    echo "already there (wheel sha256 $sha)" >&2
    echo "$lib"
    exit 0
fi

cache=target/onnxruntime/cache
mkdir -p "$cache" "$dest"
wheel="$cache/onnxruntime-$version-cp311-cp311-manylinux_2_28_$arch.whl"
if [ ! -f "$wheel" ] || [ "$(sha256sum "$wheel" | cut -d' ' -f1)" != "$sha" ]; then
    rm -f "$wheel"
    python3 -m pip download "onnxruntime==$version" --no-deps --only-binary=:all: \
        --platform "manylinux_2_28_$arch" --python-version 3.11 --implementation cp --abi cp311 \
        --quiet -d "$cache" >&2
fi
got=$(sha256sum "$wheel" | cut -d' ' -f1)
if [ "$got" != "$sha" ]; then
    echo "$wheel: sha256 $got, expected $sha: refusing to use it" >&2
    exit 1
fi
python3 - "$wheel" "$dest" "$version" <<'EOF'
import shutil, sys, zipfile
wheel, dest, version = sys.argv[1:]
name = f"onnxruntime/capi/libonnxruntime.so.{version}"
with zipfile.ZipFile(wheel) as z, z.open(name) as src, open(f"{dest}/libonnxruntime.so.{version}", "wb") as out:
    shutil.copyfileobj(src, out)
EOF
ln -sf "libonnxruntime.so.$version" "$dest/libonnxruntime.so"
echo "$sha" > "$dest/.wheel-sha256"
echo "onnxruntime $version ($arch) from the PyPI wheel (sha256 $sha):" >&2
echo "  export ORT_DYLIB_PATH=$(cd "$dest" && pwd)/libonnxruntime.so.$version" >&2
echo "$lib"
