//! The C ABI from C: `include/edge_ssl.h` declares exactly what `src/ffi.rs` exports (names,
//! constant values, struct layouts, the shared library's symbols); `examples/c/watch.c` learns
//! on the shipped IMU data through the shipped model; `tests/c/abi_check.c` misuses the API on
//! purpose. Both C programs also run under AddressSanitizer with no report.
//!
//! Needs a C compiler (`$EDGE_SSL_CC`, else `$CC`, else `cc`) with `-fsanitize=address` (gcc +
//! libasan, or clang) and `nm` (`$EDGE_SSL_NM`, binutils). `cargo test --release` builds
//! `libedge_ssl.a` / `.so` next to the test binaries' folder, which is where these tests link
//! from. Cross (see `scripts/cross-aarch64.sh`): `EDGE_SSL_CC` / `EDGE_SSL_NM` name the cross
//! tools (not `CC`, which would make cargo rebuild every C build script) and `EDGE_SSL_C_RUNNER`
//! the emulator the C programs run under (e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`); the
//! AddressSanitizer tests are for the host only.

use std::collections::BTreeMap;
use std::mem::offset_of;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edge_ssl::ffi::{EdgeSslConfig, EdgeSslInfo, EdgeSslOutcome, EdgeSslPrediction};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// What a Rust staticlib needs from the system (`rustc --print native-static-libs`), and a
/// non-executable stack (tract's assembly kernels lack the `.note.GNU-stack` section).
const NATIVE_LIBS: [&str; 8] =
    ["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc", "-Wl,-z,noexecstack"];

/// `target/release` (or whichever profile dir this test binary runs from).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

fn out_dir() -> PathBuf {
    let d = profile_dir().join("c-abi");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The library artifact `name`: uplifted into the profile dir, or still only in `deps/`.
fn lib(name: &str) -> PathBuf {
    let dir = profile_dir();
    [dir.join(name), dir.join("deps").join(name)]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} missing in {}: cargo build --release", dir.display()))
}

#[derive(Clone, Copy, PartialEq)]
enum Link {
    Static,
    Shared,
    StaticAsan,
}

/// Compiles `src` against the header and the library into `out_dir()/name`.
fn compile(src: &str, name: &str, link: Link) -> PathBuf {
    let exe = out_dir().join(name);
    let cc = std::env::var("EDGE_SSL_CC")
        .or_else(|_| std::env::var("CC"))
        .unwrap_or_else(|_| "cc".into());
    let mut cmd = Command::new(&cc);
    cmd.args(["-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror"])
        .arg(format!("-I{ROOT}/include"))
        .arg(Path::new(ROOT).join(src))
        .arg("-o")
        .arg(&exe);
    match link {
        Link::Static => {
            cmd.arg(lib("libedge_ssl.a")).args(NATIVE_LIBS);
        }
        Link::StaticAsan => {
            cmd.args(["-fsanitize=address", "-fno-omit-frame-pointer"])
                .arg(lib("libedge_ssl.a"))
                .args(NATIVE_LIBS);
        }
        Link::Shared => {
            let dir = lib("libedge_ssl.so").parent().unwrap().to_path_buf();
            cmd.arg(format!("-L{}", dir.display()))
                .arg(format!("-Wl,-rpath,{}", dir.display()))
                .args(["-ledge_ssl", "-lm"]);
        }
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
    assert!(out.status.success(), "{cc} {src} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    exe
}

/// Runs a C program; asserts it exits 0 and, under ASan, that no sanitizer reported anything.
fn run(exe: &Path, args: &[&str], asan: bool) -> String {
    let runner = std::env::var("EDGE_SSL_C_RUNNER").unwrap_or_default();
    let mut runner = runner.split_whitespace();
    let mut cmd = match runner.next() {
        Some(emulator) => {
            let mut c = Command::new(emulator);
            c.args(runner).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args(args).current_dir(ROOT);
    if asan {
        cmd.env("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1:abort_on_error=0");
    }
    let Output { status, stdout, stderr } = cmd.output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&stderr));
    assert!(status.success(), "{} {args:?}: {status}\n{stdout}\n{stderr}", exe.display());
    assert!(!stderr.contains("Sanitizer"), "sanitizer report:\n{stderr}");
    stdout.into_owned()
}

/// `edge_ssl_*` function names declared in the header (outside comments).
fn header_functions(h: &str) -> Vec<String> {
    let mut code = String::new();
    let mut rest = h;
    while let Some(i) = rest.find("/*") {
        code.push_str(&rest[..i]);
        rest = rest[i..].split_once("*/").map_or("", |(_, after)| after);
    }
    code.push_str(rest);
    let mut names: Vec<String> = code
        .match_indices("edge_ssl_")
        .filter_map(|(i, _)| {
            let ident: String =
                code[i..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            code[i + ident.len()..].starts_with('(').then_some(ident)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn header_declares_exactly_what_rust_exports() {
    let h = std::fs::read_to_string(Path::new(ROOT).join("include/edge_ssl.h")).unwrap();
    let rs = std::fs::read_to_string(Path::new(ROOT).join("src/ffi.rs")).unwrap();

    let mut rust_fns: Vec<String> = rs
        .lines()
        .filter_map(|l| l.split("extern \"C\" fn ").nth(1))
        .map(|rest| rest.split('(').next().unwrap().to_string())
        .collect();
    rust_fns.sort();
    assert!(rust_fns.len() >= 15, "{rust_fns:?}");
    assert_eq!(header_functions(&h), rust_fns, "functions: header vs src/ffi.rs");
    let no_mangle = rs.matches("#[unsafe(no_mangle)]").count();
    assert_eq!(no_mangle, rust_fns.len(), "every extern fn is #[unsafe(no_mangle)]");

    let header_consts: BTreeMap<String, i64> = h
        .lines()
        .filter_map(|l| l.strip_prefix("#define EDGE_SSL_"))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next()?;
            let v = it.next()?.trim_matches(['(', ')']).trim_end_matches('u');
            Some((format!("EDGE_SSL_{name}"), v.parse().ok()?))
        })
        .collect();
    let rust_consts: BTreeMap<String, i64> = rs
        .lines()
        .filter_map(|l| l.strip_prefix("pub const EDGE_SSL_"))
        .map(|l| {
            let (name, rest) = l.split_once(':').unwrap();
            let v = rest.split('=').nth(1).unwrap().trim().trim_end_matches(';');
            (format!("EDGE_SSL_{name}"), v.parse().unwrap())
        })
        .collect();
    assert!(rust_consts.len() >= 15, "{rust_consts:?}");
    assert_eq!(header_consts, rust_consts, "constants: header vs src/ffi.rs");
}

#[test]
fn shared_library_exports_the_header_functions() {
    let h = std::fs::read_to_string(Path::new(ROOT).join("include/edge_ssl.h")).unwrap();
    let nm = std::env::var("EDGE_SSL_NM").unwrap_or_else(|_| "nm".into());
    let out = Command::new(&nm)
        .args(["-D", "--defined-only"])
        .arg(lib("libedge_ssl.so"))
        .output()
        .unwrap_or_else(|e| panic!("{nm} (binutils) is needed: {e}"));
    assert!(out.status.success());
    let mut exported: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|s| s.starts_with("edge_ssl_"))
        .map(str::to_string)
        .collect();
    exported.sort();
    assert_eq!(exported, header_functions(&h));
}

/// Offsets and sizes of the `#[repr(C)]` structs, as Rust lays them out.
fn rust_layouts() -> BTreeMap<String, (usize, usize)> {
    let mut m = BTreeMap::new();
    macro_rules! fields {
        ($t:ty: $($f:ident),*) => {$(
            m.insert(
                format!("{}.{}", stringify!($t), stringify!($f)),
                (offset_of!($t, $f), std::mem::size_of::<$t>()),
            );
        )*};
    }
    fields!(EdgeSslConfig: abi_version, input, model_path, image_size, sensor_steps,
        sensor_channels, dim, n_classes, algorithm, hidden, bank_capacity, gate, gate_warmup,
        steps_per_sample, seed, checkpoint_path, checkpoint_every, engine, threads,
        engine_library, rows, graph_vote);
    fields!(EdgeSslPrediction: label, confidence, ood_score, has_ood_score, gated);
    fields!(EdgeSslOutcome: kind, label);
    fields!(EdgeSslInfo: input, gate_fitted, dim, n_classes, sample_len, labeled, unlabeled,
        admitted, gated, deferred, steps);
    m
}

fn check_abi_output(out: &str) {
    let layouts: BTreeMap<String, (usize, usize)> = out
        .lines()
        .filter_map(|l| l.strip_prefix("layout "))
        .map(|l| {
            let v: Vec<&str> = l.split_whitespace().collect();
            (v[0].to_string(), (v[1].parse().unwrap(), v[2].parse().unwrap()))
        })
        .collect();
    assert_eq!(layouts, rust_layouts(), "struct layouts: C (left) vs Rust (right)");
    assert!(!out.contains("FAIL"), "{out}");
    assert!(out.contains("abi_check: 0 failure(s)"), "{out}");
    for line in [
        "ok observe_labeled(x = NULL) -> EDGE_SSL_ERR_NULL: edge_ssl_observe_labeled: x is NULL",
        "ok observe_labeled(short buffer) -> EDGE_SSL_ERR_SHAPE: edge_ssl_observe_labeled: short \
         buffer: shape [4] needs 4 values, got 3",
        "ok observe_labeled(NaN) -> EDGE_SSL_ERR_NON_FINITE: Learner::observe_labeled: non-finite \
         value NaN at index 2",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
}

#[test]
fn misuse_from_c_returns_status_codes() {
    let exe = compile("tests/c/abi_check.c", "abi_check_shared", Link::Shared);
    check_abi_output(&run(&exe, &[], false));
}

#[test]
fn misuse_from_c_under_address_sanitizer() {
    let exe = compile("tests/c/abi_check.c", "abi_check_asan", Link::StaticAsan);
    check_abi_output(&run(&exe, &[], true));
}

/// Runs the watch example, returns its test accuracy.
fn watch(link: Link, name: &str) -> f64 {
    let exe = compile("examples/c/watch.c", name, link);
    let state = out_dir().join(format!("{name}.state"));
    let out = run(&exe, &["examples/c/watch.toml", "data/watch", state.to_str().unwrap()], {
        link == Link::StaticAsan
    });
    assert!(out.contains("resumed from") && out.contains(": same prediction"), "{out}");
    let acc: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("accuracy on users 6-10: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no accuracy line in\n{out}"))
        .parse()
        .unwrap();
    eprintln!("{out}");
    acc
}

#[test]
fn c_example_learns_on_shipped_data() {
    let acc = watch(Link::Static, "watch");
    assert!(acc > 0.5, "accuracy {acc} (chance 1/7)");
}

#[test]
fn c_example_under_address_sanitizer() {
    let acc = watch(Link::StaticAsan, "watch_asan");
    assert!(acc > 0.5, "accuracy {acc} (chance 1/7)");
}
