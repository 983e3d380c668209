//! tract and onnxruntime on the same shipped models, golden inputs and experiment specs.
//!
//! Needs a build with `--features onnxruntime` and the shared library (found through
//! `ORT_DYLIB_PATH`, else where `scripts/fetch-onnxruntime.sh` puts it). Without either, every
//! test here prints a `SKIPPED` line straight to stderr (visible even when the harness captures
//! output) and passes, except with `EDGE_SSL_REQUIRE_ORT=1` (set by `.ci/run`), where a missing
//! engine fails the test.
//!
//! Agreement thresholds (measured on this machine with onnxruntime 1.32.0, see `BENCHMARKS.md`):
//! f32 and int8 embeddings cosine >= 0.999 per row, same ImageNet top-1 on the golden images.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use edge_ssl::backbone::Engine;
use edge_ssl::embed::EmbeddingCache;
use edge_ssl::experiment::{self, Spec};
use edge_ssl::{Backbone, BackboneSpec, Error, Input, models};

mod golden_common;
use golden_common::{argmax, cosine, golden};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const CAMERA_F32: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/models/build/efficientnet-lite0-f32.onnx");

/// Writes past the harness's capture, so a skip is never silent.
fn say(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
}

/// The onnxruntime library for these tests: `ORT_DYLIB_PATH`, else the fetch script's default
/// place for the host.
fn library() -> PathBuf {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    Path::new(ROOT)
        .join("target/onnxruntime")
        .join(std::env::consts::ARCH)
        .join("libonnxruntime.so.1.32.0")
}

/// `Ok(())` when onnxruntime can run here; otherwise the reason, once per test binary.
fn availability() -> &'static Result<(), String> {
    static A: OnceLock<Result<(), String>> = OnceLock::new();
    A.get_or_init(|| {
        let spec = ort(BackboneSpec::minirocket_imu(1));
        match Backbone::load(models::SENSOR_F32, spec) {
            Ok(_) => Ok(()),
            Err(e @ (Error::EngineNotBuilt { .. } | Error::RuntimeLibraryMissing { .. })) => {
                Err(e.to_string())
            }
            Err(e) => panic!("onnxruntime failed on the shipped sensor model: {e}"),
        }
    })
}

/// True when the test should run; prints a visible SKIPPED line otherwise (or fails under
/// `EDGE_SSL_REQUIRE_ORT=1`).
fn ort_available(test: &str) -> bool {
    match availability() {
        Ok(()) => true,
        Err(reason) => {
            if std::env::var("EDGE_SSL_REQUIRE_ORT").is_ok_and(|v| v == "1") {
                panic!("{test}: onnxruntime is required here (EDGE_SSL_REQUIRE_ORT=1): {reason}");
            }
            say(&format!("SKIPPED engines::{test}: onnxruntime engine unavailable: {reason}"));
            false
        }
    }
}

fn ort(spec: BackboneSpec) -> BackboneSpec {
    spec.with_engine(Engine::OnnxRuntime).with_library(library())
}

/// Embeds `input` with both engines; returns the smallest per-row cosine (and prints it).
fn agree(what: &str, model: &str, spec: BackboneSpec, input: Input<'_>, min_cos: f64) -> f64 {
    let mut t = Backbone::load(model, spec.clone()).unwrap();
    let mut o = Backbone::load(model, ort(spec)).unwrap();
    assert_eq!(t.embedding_dim(), o.embedding_dim());
    let d = t.embedding_dim();
    let n = match input {
        Input::U8(v) => v.len(),
        Input::F32(v) => v.len(),
    } / t.sample_len();
    let (mut et, mut eo) = (vec![0.0; n * d], vec![0.0; n * d]);
    t.embed(input, &mut et).unwrap();
    o.embed(input, &mut eo).unwrap();
    let worst = et.chunks(d).zip(eo.chunks(d)).map(|(a, b)| cosine(a, b)).fold(1.0, f64::min);
    say(&format!("engines::{what}: tract vs onnxruntime, {n} rows, min cosine {worst:.6}"));
    assert!(worst >= min_cos, "{what}: min row cosine {worst:.6} < {min_cos}");
    worst
}

#[test]
fn sensor_f32_embeddings_agree() {
    if !ort_available("sensor_f32_embeddings_agree") {
        return;
    }
    let x = golden("minirocket_input.npy");
    let n = x.shape[0];
    let v = x.to_f32().unwrap();
    agree("sensor f32", models::SENSOR_F32, BackboneSpec::minirocket_imu(n), Input::F32(&v), 0.999);
}

#[test]
fn sensor_int8_embeddings_agree() {
    if !ort_available("sensor_int8_embeddings_agree") {
        return;
    }
    let x = golden("minirocket_input.npy");
    let n = x.shape[0];
    let v = x.to_f32().unwrap();
    agree(
        "sensor int8",
        models::SENSOR_INT8,
        BackboneSpec::minirocket_imu(n),
        Input::F32(&v),
        0.999,
    );
}

/// Camera goldens: both engines on the same uint8 images, and the same ImageNet top-1.
fn camera(model: &str, tag: &str, size: usize, file: &str, batch: usize) {
    let x = golden(file);
    assert_eq!(x.shape, vec![batch, size, size, 3]);
    let spec = BackboneSpec::efficientnet_lite0(size, batch).with_logits("logits");
    agree(
        &format!("camera {tag} @{size} batch {batch}"),
        model,
        spec.clone(),
        Input::U8(&x.bytes),
        0.999,
    );
    let mut t = Backbone::load(model, spec.clone()).unwrap();
    let mut o = Backbone::load(model, ort(spec)).unwrap();
    let (mut e, mut lt, mut lo) =
        (vec![0.0; batch * 1280], vec![0.0; batch * 1000], vec![0.0; batch * 1000]);
    t.embed_with_logits(Input::U8(&x.bytes), &mut e, &mut lt).unwrap();
    o.embed_with_logits(Input::U8(&x.bytes), &mut e, &mut lo).unwrap();
    for (r, (a, b)) in lt.chunks(1000).zip(lo.chunks(1000)).enumerate() {
        assert_eq!(argmax(a), argmax(b), "camera {tag} @{size}: row {r} ImageNet top-1");
    }
}

#[test]
fn camera_int8_embeddings_agree_at_112_224_and_batch_4() {
    if !ort_available("camera_int8_embeddings_agree_at_112_224_and_batch_4") {
        return;
    }
    camera(models::CAMERA_INT8, "int8", 112, "effnet_112_input.npy", 1);
    camera(models::CAMERA_INT8, "int8", 224, "effnet_224_input.npy", 1);
    camera(models::CAMERA_INT8, "int8", 112, "effnet_112_batch4_input.npy", 4);
}

#[test]
fn camera_f32_embeddings_agree_when_built() {
    if !ort_available("camera_f32_embeddings_agree_when_built") {
        return;
    }
    if !Path::new(CAMERA_F32).exists() {
        say(&format!(
            "SKIPPED engines::camera_f32_embeddings_agree_when_built: {CAMERA_F32} not built \
             (python3 models/scripts/effnet_lite0.py --f32-only); the shipped f32 sensor model \
             is checked by sensor_f32_embeddings_agree"
        ));
        return;
    }
    camera(CAMERA_F32, "f32", 112, "effnet_112_input.npy", 1);
    camera(CAMERA_F32, "f32", 224, "effnet_224_input.npy", 1);
    camera(CAMERA_F32, "f32", 112, "effnet_112_batch4_input.npy", 4);
}

#[test]
fn onnxruntime_threads_do_not_change_the_embedding() {
    if !ort_available("onnxruntime_threads_do_not_change_the_embedding") {
        return;
    }
    let x = golden("effnet_112_batch4_input.npy");
    let run = |threads| {
        let spec = ort(BackboneSpec::efficientnet_lite0(112, 4)).with_threads(threads);
        let mut bb = Backbone::load(models::CAMERA_INT8, spec).unwrap();
        let mut e = vec![0.0; 4 * 1280];
        bb.embed(Input::U8(&x.bytes), &mut e).unwrap();
        e
    };
    let (one, two) = (run(1), run(2));
    for (a, b) in one.chunks(1280).zip(two.chunks(1280)) {
        assert!(cosine(a, b) >= 0.99999);
    }
}

#[test]
fn onnxruntime_errors_are_typed() {
    let missing = BackboneSpec::minirocket_imu(1)
        .with_engine(Engine::OnnxRuntime)
        .with_library("/nonexistent/libonnxruntime.so.1.32.0");
    let e = Backbone::load(models::SENSOR_INT8, missing).unwrap_err();
    if cfg!(feature = "onnxruntime") {
        match &e {
            Error::RuntimeLibraryMissing { tried, .. } => {
                assert_eq!(tried, &[PathBuf::from("/nonexistent/libonnxruntime.so.1.32.0")]);
                assert!(e.to_string().contains("scripts/fetch-onnxruntime.sh"), "{e}");
            }
            other => panic!("expected RuntimeLibraryMissing, got {other:?}"),
        }
    } else {
        assert!(matches!(e, Error::EngineNotBuilt { engine: Engine::OnnxRuntime, .. }), "{e:?}");
        assert!(e.to_string().contains("--features onnxruntime"), "{e}");
    }
    if !ort_available("onnxruntime_errors_are_typed (model errors)") {
        return;
    }
    // A file that is not a library is as missing as no file.
    let not_a_lib = Path::new(env!("CARGO_TARGET_TMPDIR")).join("libonnxruntime-garbage.so");
    std::fs::write(&not_a_lib, b"not an ELF file").unwrap();
    let e = Backbone::load(
        models::SENSOR_INT8,
        ort(BackboneSpec::minirocket_imu(1)).with_library(&not_a_lib),
    );
    assert!(
        matches!(
            e,
            Err(Error::RuntimeLibraryMissing { .. })
                | Err(Error::InvalidParam { name: "library", .. })
        ),
        "{e:?}"
    );
    // The same typed model errors as tract.
    let bytes = std::fs::read(models::SENSOR_INT8).unwrap();
    let e = Backbone::from_bytes(&bytes[..bytes.len() / 2], ort(BackboneSpec::minirocket_imu(1)))
        .unwrap_err();
    assert!(matches!(e, Error::ModelRejected { engine: Engine::OnnxRuntime, .. }), "{e:?}");
    let mut spec = ort(BackboneSpec::minirocket_imu(1));
    spec.embedding_output = "features".into();
    let e = Backbone::load(models::SENSOR_INT8, spec).unwrap_err();
    assert!(matches!(e, Error::MissingOutput { .. }), "{e:?}");
    let e = Backbone::load(models::SENSOR_INT8, ort(BackboneSpec::efficientnet_lite0(112, 1)))
        .unwrap_err();
    assert!(matches!(e, Error::ModelContract { .. }), "{e:?}");
    let mut bb = Backbone::load(models::SENSOR_INT8, ort(BackboneSpec::minirocket_imu(1))).unwrap();
    let mut out = vec![0.0; bb.embedding_dim()];
    let mut x = vec![0.1f32; 128 * 6];
    x[5] = f32::NAN;
    assert!(matches!(bb.embed(Input::F32(&x), &mut out), Err(Error::NonFinite { index: 5, .. })));
    let e = bb.embed(Input::U8(&[0; 128 * 6]), &mut out).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e:?}");
}

/// Writes an IDX file (u8 images `[n, 28, 28]` or labels `[n]`), uncompressed.
fn write_idx(path: &Path, dims: &[usize], data: &[u8]) {
    let mut b = vec![0u8, 0, 0x08, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&(*d as u32).to_be_bytes());
    }
    b.extend_from_slice(data);
    std::fs::write(path, b).unwrap();
}

/// The first `n` images (and labels) of a shipped IDX set, as a plain IDX pair in `dir`.
fn subset(dir: &Path, name: &str, images: &str, labels: Option<&str>, n: usize) -> String {
    let fm = Path::new(ROOT).join("data");
    let set =
        edge_ssl::data::idx::read_images(fm.join(images), labels.map(|l| fm.join(l))).unwrap();
    let px = set.height * set.width;
    write_idx(&dir.join(format!("{name}-x")), &[n, set.height, set.width], &set.pixels[..n * px]);
    if let Some(l) = &set.labels {
        let y: Vec<u8> = l[..n].iter().map(|&v| v as u8).collect();
        write_idx(&dir.join(format!("{name}-y")), &[n], &y);
    }
    format!("{}/{name}", dir.display())
}

fn run_spec(text: &str, engine: Engine) -> experiment::Outcome {
    let mut spec = Spec::parse(text, Path::new(ROOT), Path::new("<engines test>")).unwrap();
    spec.backbone.engine = engine;
    if engine == Engine::OnnxRuntime {
        spec.backbone.library = Some(library());
    }
    let cache =
        EmbeddingCache::new(Path::new(env!("CARGO_TARGET_TMPDIR")).join("engine-embeddings"));
    let data = experiment::embed_spec(&spec, &cache, |_| {}).unwrap();
    experiment::run(&spec, &data, |_, _| {}).unwrap()
}

/// Same spec on both engines: accuracies (mean over seeds) of every row within `tol`.
fn same_accuracy(what: &str, text: &str, tol: f64) {
    let t = run_spec(text, Engine::Tract);
    let o = run_spec(text, Engine::OnnxRuntime);
    for (a, b) in t.rows.iter().zip(&o.rows) {
        assert_eq!((&a.algorithm, a.gate), (&b.algorithm, b.gate));
        let ((ma, sa), (mb, sb)) = (a.accuracy(), b.accuracy());
        say(&format!(
            "engines::{what}: {:<12} gate {:<5} tract {ma:.4} +- {sa:.4}, onnxruntime {mb:.4} +- {sb:.4}",
            a.algorithm, a.gate
        ));
        assert!(
            (ma - mb).abs() <= tol,
            "{what}: {} (gate {}): tract {ma:.4} vs onnxruntime {mb:.4} (tolerance {tol})",
            a.algorithm,
            a.gate
        );
    }
}

#[test]
fn same_experiment_spec_gives_the_same_accuracy_on_either_engine() {
    if !ort_available("same_experiment_spec_gives_the_same_accuracy_on_either_engine") {
        return;
    }
    // Sensor: the whole shipped watch IMU set (MiniRocket int8; the engines agree bit for bit).
    let sensor = r#"name = "engines-sensor"
seeds = [1]
algorithms = ["labelprop"]
[backbone]
model = "models/minirocket-imu-int8.onnx"
input = "sensor"
[data]
format = "npy"
train_x = "data/watch/windows_x.npy"
train_y = "data/watch/windows_y.npy"
groups = "data/watch/windows_groups.npy"
train_groups = [1, 2, 3, 4, 5]
test_groups = [6, 7, 8, 9, 10]
[protocol]
labels_per_class = 10
stream_len = 800
gate = false
eval_every = 400
"#;
    same_accuracy("watch IMU", sensor, 0.005);

    // Camera: a Fashion-MNIST / MNIST subset at 112 (int8 EfficientNet-Lite0).
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("engines-fmnist");
    std::fs::create_dir_all(&dir).unwrap();
    let pool = subset(
        &dir,
        "pool",
        "fashion-mnist/train-images-idx3-ubyte.gz",
        Some("fashion-mnist/train-labels-idx1-ubyte.gz"),
        600,
    );
    let test = subset(
        &dir,
        "test",
        "fashion-mnist/t10k-images-idx3-ubyte.gz",
        Some("fashion-mnist/t10k-labels-idx1-ubyte.gz"),
        400,
    );
    let ood = subset(&dir, "ood", "mnist/ood-images-idx3-ubyte.gz", None, 200);
    let camera = format!(
        r#"name = "engines-camera"
seeds = [1, 2]
algorithms = ["flexmatch"]
[backbone]
model = "models/efficientnet-lite0-int8.onnx"
input = "image"
size = 112
[data]
format = "idx"
train_x = "{pool}-x"
train_y = "{pool}-y"
test_x = "{test}-x"
test_y = "{test}-y"
ood_x = "{ood}-x"
[protocol]
labels_per_class = 5
stream_len = 500
ood_fraction = 0.2
gate = true
eval_every = 500
"#
    );
    same_accuracy("Fashion-MNIST subset", &camera, 0.02);
}
