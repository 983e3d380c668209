#!/usr/bin/env bash
# Cross-builds edge-ssl for 64-bit ARM Linux (Raspberry Pi 4/5, Jetson), runs the test suite and
# the benches' test mode under user-mode qemu emulating a Cortex-A72 (the Pi 4's core), and prints
# which SIMD kernels tract selected. For Debian 12 (bookworm) x86_64 as root; see docs/deploy.md.
#
#   scripts/cross-aarch64.sh           # full: build, every test and bench (test mode) under qemu
#   scripts/cross-aarch64.sh --quick   # build, then a fast subset (what .ci/run does)
#
# Installs (apt-get, if missing): gcc-aarch64-linux-gnu, libc6-dev-arm64-cross,
# binutils-aarch64-linux-gnu, qemu-user. The aarch64 Rust std comes from rustup
# (`rustup target add`); if that fails, from Debian (rustc-web + libstd-rust-web-dev:arm64, Rust
# 1.96 in bookworm; the crate needs >= 1.91), whose dynamically linked std is why the qemu runner
# in .cargo/config.toml sets LD_LIBRARY_PATH.
#
# Builds into target/aarch64/. The full run first fills the camera embedding caches natively on
# the host (see below). Timings go to stdout; the last line says PASSED.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
case "${1:-}" in
    "") ;;
    --quick) mode=quick ;;
    *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac

T=aarch64-unknown-linux-gnu
TD=target/aarch64
cross_rustc=
SYSROOT=/usr/aarch64-linux-gnu
start=$(date +%s)
step() { echo "== [$(( $(date +%s) - start )) s] $*"; }

step "Debian packages"
need=()
for p in gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu qemu-user; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
aarch64-linux-gnu-gcc --version | sed -n 1p
qemu-aarch64 --version | sed -n 1p

step "Rust std for $T"
if command -v rustup >/dev/null && { rustup target list --installed | grep -qx "$T" ||
    rustup target add "$T"; }; then
    echo "rustup: $(rustc --version) with $T"
else
    echo "rustup cannot provide $T: falling back to Debian's rustc-web + libstd-rust-web-dev:arm64"
    dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web libstd-rust-web-dev:arm64 >/dev/null
    cross_rustc=/usr/bin/rustc # Debian's, for the aarch64 builds only (host builds keep theirs)
    "$cross_rustc" --version
    v=$("$cross_rustc" --version | awk '{print $2}')
    if [ "$(printf '%s\n1.91.0\n' "$v" | sort -V | head -n1)" != 1.91.0 ]; then
        echo "Debian rustc $v is older than 1.91 (tract-onnx 0.23.9): cannot build" >&2
        exit 1
    fi
fi

# cargo SUBCOMMAND [args] for aarch64 (options go before any `--`).
cargo_x() {
    local sub=$1
    shift
    env ${cross_rustc:+RUSTC="$cross_rustc"} \
        nice -n 10 cargo "$sub" --release --target "$T" --target-dir "$TD" "$@"
}

# Tests that spawn a program (the CLI, a crash-test child) exec an aarch64 binary from inside
# qemu: the kernel needs a binfmt_misc entry for it (what Debian's qemu-user-binfmt sets up).
# QEMU_LD_PREFIX / QEMU_CPU tell those child qemus what -L / -cpu tell the runner.
step "binfmt_misc entry for aarch64 ELF binaries"
export QEMU_LD_PREFIX=$SYSROOT QEMU_CPU=cortex-a72
bf=/proc/sys/fs/binfmt_misc
if [ ! -e "$bf/register" ]; then
    mount -t binfmt_misc binfmt_misc "$bf" 2>/dev/null || true
fi
if [ -e "$bf/qemu-aarch64" ]; then
    echo "already registered: $(sed -n 's/^interpreter //p' "$bf/qemu-aarch64")"
elif [ -w "$bf/register" ]; then
    printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64:' \
        >"$bf/register"
    echo "registered /usr/bin/qemu-aarch64"
else
    echo "cannot register binfmt_misc (not root?): tests that spawn programs will fail" >&2
fi

step "build: library (rlib, .so, .a), CLI, tests, benches, examples"
b0=$(date +%s)
cargo_x test --all-targets --no-run
echo "build took $(( $(date +%s) - b0 )) s"
file "$TD/$T/release/edge-ssl" | sed 's/, BuildID[^,]*//'
echo "glibc symbol versions needed by the CLI / libedge_ssl.so:"
for f in "$TD/$T/release/edge-ssl" "$TD/$T/release/deps/libedge_ssl.so"; do
    v=$(aarch64-linux-gnu-objdump -T "$f" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n1)
    echo "  $(basename "$f"): $v"
done

step "SIMD kernels tract selects under qemu-aarch64 -cpu cortex-a72 (Raspberry Pi 4)"
cargo_x run --example kernels
# tract reads dot-product support from the auxiliary vector (qemu emulates it per -cpu) but fp16
# and the core's part number from /proc/cpuinfo, which qemu-user takes from the host: under
# emulation no fp16 kernel and no core-specific tuning is picked.
step "... and under -cpu cortex-a76 (Raspberry Pi 5; Jetson Orin's A78AE has the same features)"
qemu-aarch64 -cpu cortex-a76 -L "$SYSROOT" "$TD/$T/release/examples/kernels"

# The C ABI tests compile C with the cross gcc and run it under the same qemu; AddressSanitizer
# is for the host (.ci/run), not under qemu.
export EDGE_SSL_CC=aarch64-linux-gnu-gcc EDGE_SSL_NM=aarch64-linux-gnu-nm
export EDGE_SSL_C_RUNNER="qemu-aarch64 -cpu cortex-a72 -L $SYSROOT"
# tests/persist_crash.rs SIGKILLs a child 1-40 ms after spawning it; a child under qemu-user
# needs longer than that just to start, so it never saves and the test's progress check fails.
# Crash safety is tested on the host (.ci/run), not under emulation.
skip=(--skip under_address_sanitizer --skip sigkill_at_random_moments)

t0=$(date +%s)
if [ "$mode" = quick ]; then
    # A few minutes under qemu: unit tests, the sensor model against onnxruntime's goldens and the
    # backbone's typed errors, the C ABI checks (header, layouts, .so exports, misuse from C),
    # allocation-free learner.
    step "quick subset under qemu"
    cargo_x test --lib
    cargo_x test --test backbone -- --skip camera_int8
    cargo_x test --test c_abi -- "${skip[@]}" --skip c_example
    cargo_x test --test no_alloc_learner
else
    # The camera tests embed ~10000 shipped images with EfficientNet-Lite0. Under qemu that is
    # ~1.7 s per image (~5 h), so the embedding caches are computed natively on the host and
    # copied into the aarch64 target dir; the aarch64 backbone itself is checked against the
    # onnxruntime goldens (tests/backbone.rs) and runs the sensor model in every sensor test.
    step "embedding caches of the shipped camera and sensor data, computed on the host"
    nice -n 10 cargo run --release --quiet -- run --stream 100 --report "$TD/host-report" \
        >"$TD/host-run.log" 2>&1 || { cat "$TD/host-run.log"; exit 1; }
    mkdir -p "$TD/$T/tmp/embeddings" # the aarch64 tests' CARGO_TARGET_TMPDIR
    cp -u target/tmp/embeddings/*.npy "$TD/$T/tmp/embeddings/"
    step "the whole test suite under qemu"
    cargo_x test -- "${skip[@]}"
    step "benches' test mode under qemu"
    cargo_x test --benches
fi
echo "tests took $(( $(date +%s) - t0 )) s under qemu"
step "aarch64 ($mode) PASSED"
