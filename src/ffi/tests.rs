//! The C ABI called from Rust: every failure class returns its status and message, the learner
//! is unchanged by bad input, and no panic escapes.

use std::ffi::CStr;
use std::ptr::{null, null_mut};

use super::*;

fn last_error() -> String {
    let n = unsafe { edge_ssl_last_error(null_mut(), 0) };
    let mut buf = vec![0 as c_char; n + 1];
    assert_eq!(unsafe { edge_ssl_last_error(buf.as_mut_ptr(), buf.len()) }, n);
    unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap().to_owned()
}

fn config(dim: usize, k: usize) -> EdgeSslConfig {
    let mut c = std::mem::MaybeUninit::uninit();
    assert_eq!(unsafe { edge_ssl_config_default(dim, k, c.as_mut_ptr()) }, EDGE_SSL_OK);
    let mut c = unsafe { c.assume_init() };
    c.bank_capacity = 64;
    c.gate_warmup = 16;
    c
}

/// An owned handle for tests.
struct H(*mut EdgeSslLearner);

impl H {
    fn new(c: &EdgeSslConfig) -> Result<H, (c_int, String)> {
        let mut h = null_mut();
        match unsafe { edge_ssl_learner_new(c, &mut h) } {
            EDGE_SSL_OK => Ok(H(h)),
            code => {
                assert!(h.is_null(), "no handle on failure");
                Err((code, last_error()))
            }
        }
    }

    fn labeled(&self, x: &[f32], y: u32) -> c_int {
        unsafe { edge_ssl_observe_labeled(self.0, x.as_ptr(), x.len(), &x.len(), 1, y) }
    }

    fn observe(&self, x: &[f32]) -> (c_int, EdgeSslOutcome) {
        let mut o = EdgeSslOutcome { kind: -1, label: 99 };
        let s = unsafe { edge_ssl_observe(self.0, x.as_ptr(), x.len(), &x.len(), 1, &mut o) };
        (s, o)
    }

    fn predict(&self, x: &[f32]) -> (c_int, EdgeSslPrediction) {
        let mut p = EdgeSslPrediction {
            label: 99,
            confidence: -1.0,
            ood_score: 0.0,
            has_ood_score: 7,
            gated: 7,
        };
        let s = unsafe { edge_ssl_predict(self.0, x.as_ptr(), x.len(), &x.len(), 1, &mut p) };
        (s, p)
    }

    fn info(&self) -> EdgeSslInfo {
        let mut i = std::mem::MaybeUninit::uninit();
        assert_eq!(unsafe { edge_ssl_info(self.0, i.as_mut_ptr()) }, EDGE_SSL_OK);
        unsafe { i.assume_init() }
    }
}

impl Drop for H {
    fn drop(&mut self) {
        unsafe { edge_ssl_learner_free(self.0) };
    }
}

/// Class `c` of three, 4-d, with a small deterministic wiggle.
fn sample(c: u32, i: u32) -> [f32; 4] {
    let w = ((i * 7919) % 13) as f32 * 0.02;
    let mut x = [w, 0.1 - w, w * 0.5, 0.2];
    x[c as usize] += 1.0;
    x
}

#[test]
fn learns_predicts_checkpoints_and_resumes() {
    let mut c = config(4, 3);
    c.gate = 0;
    let h = H::new(&c).unwrap();
    for i in 0..9 {
        assert_eq!(h.labeled(&sample(i % 3, i), i % 3), EDGE_SSL_OK);
    }
    for i in 0..60 {
        let (s, o) = h.observe(&sample(i % 3, i + 100));
        assert_eq!(s, EDGE_SSL_OK, "{}", last_error());
        assert_eq!(o.kind, EDGE_SSL_OUTCOME_ADMITTED, "no gate: every sample admitted");
    }
    for i in 0..3 {
        let (s, p) = h.predict(&sample(i, 500 + i));
        assert_eq!(s, EDGE_SSL_OK);
        assert_eq!(p.label, i);
        assert!(p.confidence > 1.0 / 3.0 && p.confidence <= 1.0);
        assert_eq!((p.has_ood_score, p.gated), (0, 0));
        assert!(p.ood_score.is_nan());
    }
    let i = h.info();
    assert_eq!((i.input, i.dim, i.n_classes, i.sample_len), (EDGE_SSL_INPUT_EMBEDDING, 4, 3, 4));
    assert_eq!((i.labeled, i.unlabeled, i.admitted, i.gate_fitted), (9, 60, 60, 0));
    assert!(i.steps > 0);

    let dir = std::env::temp_dir().join(format!("edge-ssl-ffi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = std::ffi::CString::new(dir.join("s.state").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { edge_ssl_checkpoint(h.0, state.as_ptr()) }, EDGE_SSL_OK);
    let mut r = null_mut();
    assert_eq!(unsafe { edge_ssl_learner_resume(&c, state.as_ptr(), &mut r) }, EDGE_SSL_OK);
    let r = H(r);
    assert_eq!(r.info(), h.info());
    for i in 0..20 {
        let x = sample(i % 3, 900 + i);
        assert_eq!(h.observe(&x), r.observe(&x), "resumed learner continues identically");
    }
    // (`{:?}` because NaN != NaN: no OOD score without a gate.)
    assert_eq!(
        format!("{:?}", h.predict(&sample(1, 3))),
        format!("{:?}", r.predict(&sample(1, 3)))
    );

    // A state saved for other dimensions is refused, not loaded.
    let other = config(5, 3);
    let mut bad = null_mut();
    let s = unsafe { edge_ssl_learner_resume(&other, state.as_ptr(), &mut bad) };
    assert_eq!(s, EDGE_SSL_ERR_STATE, "{}", last_error());
    assert!(bad.is_null());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_gate_fits_after_warmup_and_reports_outcomes() {
    let h = H::new(&config(4, 3)).unwrap();
    for i in 0..9 {
        assert_eq!(h.labeled(&sample(i % 3, i), i % 3), EDGE_SSL_OK);
    }
    let first = h.observe(&sample(0, 50));
    assert_eq!(
        first,
        (EDGE_SSL_OK, EdgeSslOutcome { kind: EDGE_SSL_OUTCOME_WARMING_UP, label: 0 })
    );
    for i in 1..40 {
        assert_eq!(h.observe(&sample(i % 3, 50 + i)).0, EDGE_SSL_OK, "{}", last_error());
    }
    assert_eq!(h.info().gate_fitted, 1);
    let (s, p) = h.predict(&sample(2, 7));
    assert_eq!(s, EDGE_SSL_OK);
    assert_eq!(p.has_ood_score, 1);
    assert!(p.ood_score.is_finite());
}

#[test]
fn null_pointers_are_errors() {
    let mut h = null_mut();
    assert_eq!(unsafe { edge_ssl_learner_new(null(), &mut h) }, EDGE_SSL_ERR_NULL);
    assert!(last_error().contains("config is NULL"), "{}", last_error());
    assert_eq!(unsafe { edge_ssl_learner_new(&config(4, 3), null_mut()) }, EDGE_SSL_ERR_NULL);
    assert!(last_error().contains("out is NULL"));
    assert_eq!(unsafe { edge_ssl_config_default(4, 3, null_mut()) }, EDGE_SSL_ERR_NULL);
    assert_eq!(unsafe { edge_ssl_learner_from_file(null(), &mut h) }, EDGE_SSL_ERR_NULL);
    let c = config(4, 3);
    assert_eq!(unsafe { edge_ssl_learner_resume(&c, null(), &mut h) }, EDGE_SSL_ERR_NULL);
    assert!(h.is_null());

    let x = [0.0f32; 4];
    let s = unsafe { edge_ssl_observe_labeled(null_mut(), x.as_ptr(), 4, &4, 1, 0) };
    assert_eq!(s, EDGE_SSL_ERR_NULL);
    assert!(last_error().contains("learner is NULL"));

    let h = H::new(&c).unwrap();
    let s = unsafe { edge_ssl_observe_labeled(h.0, null(), 4, &4, 1, 0) };
    assert_eq!(s, EDGE_SSL_ERR_NULL);
    assert_eq!(last_error(), "edge_ssl_observe_labeled: x is NULL");
    let s = unsafe { edge_ssl_observe(h.0, x.as_ptr(), 4, null(), 1, null_mut()) };
    assert_eq!(s, EDGE_SSL_ERR_NULL, "a NULL outcome is allowed, a NULL shape is not");
    assert!(last_error().contains("shape is NULL"));
    let s = unsafe { edge_ssl_predict(h.0, x.as_ptr(), 4, &4, 1, null_mut()) };
    assert_eq!(s, EDGE_SSL_ERR_NULL);
    assert_eq!(unsafe { edge_ssl_checkpoint(h.0, null()) }, EDGE_SSL_ERR_NULL);
    assert_eq!(unsafe { edge_ssl_info(h.0, null_mut()) }, EDGE_SSL_ERR_NULL);
    assert_eq!(unsafe { edge_ssl_info(null_mut(), null_mut()) }, EDGE_SSL_ERR_NULL);
    let s = unsafe { edge_ssl_observe(h.0, x.as_ptr(), 4, &4, 1, null_mut()) };
    assert_eq!(s, EDGE_SSL_OK, "outcome may be NULL");
    unsafe { edge_ssl_learner_free(null_mut()) };
}

#[test]
fn short_buffers_and_bad_shapes_are_errors() {
    let h = H::new(&config(4, 3)).unwrap();
    let x = [0.5f32; 8];
    let call = |len: usize, shape: &[usize]| unsafe {
        edge_ssl_observe_labeled(h.0, x.as_ptr(), len, shape.as_ptr(), shape.len(), 1)
    };
    assert_eq!(call(3, &[4]), EDGE_SSL_ERR_SHAPE);
    assert!(
        last_error().contains("short buffer: shape [4] needs 4 values, got 3"),
        "{}",
        last_error()
    );
    assert_eq!(call(5, &[4]), EDGE_SSL_ERR_SHAPE);
    assert_eq!(call(4, &[2, 2]), EDGE_SSL_ERR_SHAPE);
    assert!(last_error().contains("expected shape [4], got [2, 2]"), "{}", last_error());
    assert_eq!(call(8, &[8]), EDGE_SSL_ERR_SHAPE);
    assert_eq!(call(8, &[2, 4]), EDGE_SSL_ERR_SHAPE, "one sample per call");
    assert_eq!(call(0, &[]), EDGE_SSL_ERR_SHAPE, "ndim 0");
    assert_eq!(call(4, &[1, 1, 1, 1, 4]), EDGE_SSL_ERR_SHAPE, "ndim 5");
    assert_eq!(call(0, &[usize::MAX, 2]), EDGE_SSL_ERR_SHAPE, "overflowing shape");
    assert_eq!(h.info().labeled, 0, "nothing learned from bad calls");
    assert_eq!(call(4, &[1, 4]), EDGE_SSL_OK, "a leading batch of 1 is fine");
    assert_eq!(call(4, &[4]), EDGE_SSL_OK);

    // A float pointer that is not 4-byte aligned.
    let bytes = [0u8; 24];
    let odd = bytes[1..].as_ptr().cast::<f32>();
    let s = unsafe { edge_ssl_observe_labeled(h.0, odd, 4, &4, 1, 1) };
    assert_eq!(s, EDGE_SSL_ERR_SHAPE);
    assert!(last_error().contains("not aligned"));

    // Images on an embedding handle.
    let px = [0u8; 12];
    let s =
        unsafe { edge_ssl_observe_image(h.0, px.as_ptr(), 12, [2, 2, 3].as_ptr(), 3, null_mut()) };
    assert_eq!(s, EDGE_SSL_ERR_SHAPE);
    assert!(last_error().contains("takes f32 embeddings"), "{}", last_error());
    assert_eq!(h.info().labeled, 2);
}

#[test]
fn nan_and_bad_labels_leave_the_learner_unchanged() {
    let h = H::new(&config(4, 3)).unwrap();
    assert_eq!(h.labeled(&sample(0, 0), 0), EDGE_SSL_OK);
    let before = h.info();
    assert_eq!(h.labeled(&[0.0, f32::NAN, 0.0, 0.0], 1), EDGE_SSL_ERR_NON_FINITE);
    assert!(last_error().contains("non-finite value NaN at index 1"), "{}", last_error());
    assert_eq!(h.observe(&[f32::INFINITY, 0.0, 0.0, 0.0]).0, EDGE_SSL_ERR_NON_FINITE);
    assert_eq!(h.predict(&[0.0, 0.0, 0.0, f32::NAN]).0, EDGE_SSL_ERR_NON_FINITE);
    assert_eq!(h.labeled(&sample(0, 1), 3), EDGE_SSL_ERR_INVALID_ARG);
    assert!(last_error().contains("label"), "{}", last_error());
    assert_eq!(h.info(), before);
    let (s, o) = h.observe(&[f32::NAN; 4]);
    assert_eq!((s, o.kind, o.label), (EDGE_SSL_ERR_NON_FINITE, -1, 99), "outputs untouched");
}

#[test]
fn invalid_configs_are_errors_not_panics() {
    type Edit = fn(&mut EdgeSslConfig);
    let cases: [(&str, Edit); 13] = [
        ("engine 7 unknown", |c| c.engine = 7),
        ("rows 7 unknown", |c| c.rows = 7),
        ("map rows need image input", |c| c.rows = EDGE_SSL_ROWS_MAP),
        ("graph_vote", |c| c.graph_vote = 1.5),
        ("n_classes", |c| c.n_classes = 1),
        ("n_classes", |c| c.n_classes = 0),
        ("abi_version", |c| c.abi_version = 99),
        ("input 7 unknown", |c| c.input = 7),
        ("unknown algorithm", |c| c.algorithm = c"nope".as_ptr()),
        ("cannot be combined", |c| c.algorithm = c"fixmatch+fixmatch".as_ptr()),
        ("given for embedding input", |c| c.model_path = c"m.onnx".as_ptr()),
        ("dim must be > 0", |c| c.dim = 0),
        ("steps_per_sample", |c| c.steps_per_sample = 0),
    ];
    for (what, edit) in cases {
        let mut c = config(4, 3);
        edit(&mut c);
        let (code, msg) = H::new(&c).err().expect(what);
        assert_eq!(code, EDGE_SSL_ERR_INVALID_ARG, "{what}: {msg}");
        assert!(msg.contains(what), "{what}: {msg}");
    }
    let mut c = config(4, 3);
    c.algorithm = c"\xff".as_ptr();
    assert_eq!(H::new(&c).err().unwrap().0, EDGE_SSL_ERR_INVALID_ARG);
    let mut c = config(4, 3);
    c.input = EDGE_SSL_INPUT_SENSOR;
    c.model_path = c"/nonexistent/model.onnx".as_ptr();
    assert_eq!(H::new(&c).err().unwrap().0, EDGE_SSL_ERR_IO);
    c.input = EDGE_SSL_INPUT_IMAGE;
    c.model_path = null();
    assert!(H::new(&c).err().unwrap().1.contains("needs a model path"));
    let mut c = config(4, 3);
    c.input = EDGE_SSL_INPUT_SENSOR;
    c.dim = 0;
    c.model_path =
        concat!(env!("CARGO_MANIFEST_DIR"), "/models/minirocket-imu-int8.onnx\0").as_ptr().cast();
    c.engine = EDGE_SSL_ENGINE_ONNXRUNTIME;
    c.engine_library = c"/nonexistent/libonnxruntime.so".as_ptr();
    let (code, msg) = H::new(&c).err().expect("no onnxruntime here");
    if cfg!(feature = "onnxruntime") {
        assert_eq!(code, EDGE_SSL_ERR_IO, "{msg}");
        assert!(msg.contains("/nonexistent/libonnxruntime.so"), "{msg}");
    } else {
        assert_eq!(code, EDGE_SSL_ERR_INVALID_ARG, "{msg}");
        assert!(msg.contains("not compiled in"), "{msg}");
    }
    c.engine = EDGE_SSL_ENGINE_TRACT;
    assert!(H::new(&c).is_ok(), "the same config on tract");
    let mut c = config(4, 3);
    c.algorithm = c"fixmatch+meanteacher".as_ptr();
    c.hidden = 8;
    assert!(H::new(&c).is_ok());
}

#[test]
fn image_input_takes_the_camera_models_maps_unless_told_otherwise() {
    let camera = concat!(env!("CARGO_MANIFEST_DIR"), "/models/efficientnet-lite0-int8.onnx\0");
    let sensor = concat!(env!("CARGO_MANIFEST_DIR"), "/models/minirocket-imu-int8.onnx\0");
    for (code, rows) in [
        (EDGE_SSL_ROWS_AUTO, Rows::Auto),
        (EDGE_SSL_ROWS_MAP, Rows::Map),
        (EDGE_SSL_ROWS_EMBEDDING, Rows::Embedding),
    ] {
        assert_eq!(Rows::from_code(code), Some(rows));
    }
    let mut c = config(0, 3);
    c.input = EDGE_SSL_INPUT_IMAGE;
    c.model_path = camera.as_ptr().cast();
    // the default (auto): the 320 x 4 x 4 map, pooled by the frozen head convolution
    let h = H::new(&c).unwrap();
    assert_eq!(h.info().dim, 5120);
    let px = [128u8; 20 * 30 * 3];
    let shape = [20usize, 30, 3];
    let mut p =
        EdgeSslPrediction { label: 9, confidence: 0.0, ood_score: 0.0, has_ood_score: 0, gated: 0 };
    let st =
        unsafe { edge_ssl_predict_image(h.0, px.as_ptr(), px.len(), shape.as_ptr(), 3, &mut p) };
    assert_eq!(st, EDGE_SSL_OK, "{}", last_error());
    assert!(p.label < 3 && (0.0..=1.0).contains(&p.confidence), "{p:?}");
    c.rows = EDGE_SSL_ROWS_EMBEDDING;
    assert_eq!(H::new(&c).unwrap().info().dim, 1280);
    // a model without the camera's head convolution: auto takes its embedding, map is an error
    c.input = EDGE_SSL_INPUT_SENSOR;
    c.model_path = sensor.as_ptr().cast();
    c.rows = EDGE_SSL_ROWS_AUTO;
    assert!(H::new(&c).is_ok());
    c.rows = EDGE_SSL_ROWS_MAP;
    let (code, msg) = H::new(&c).err().unwrap();
    assert_eq!(code, EDGE_SSL_ERR_INVALID_ARG);
    assert!(msg.contains("no spatial map"), "{msg}");
}

#[test]
fn toml_configs() {
    let dir = std::env::temp_dir().join(format!("edge-ssl-ffi-toml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let open = |text: &str| -> Result<H, (c_int, String)> {
        let p = dir.join("c.toml");
        std::fs::write(&p, text).unwrap();
        let p = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        let mut h = null_mut();
        match unsafe { edge_ssl_learner_from_file(p.as_ptr(), &mut h) } {
            EDGE_SSL_OK => Ok(H(h)),
            code => Err((code, last_error())),
        }
    };
    let h = open(
        "dim = 4\nn_classes = 3\nalgorithm = \"fixmatch\"\ngate = false\nbank_capacity = 32\n\
         [checkpoint]\npath = \"auto.state\"\nevery = 5\n",
    )
    .unwrap();
    for i in 0..5 {
        assert_eq!(h.labeled(&sample(i % 3, i), i % 3), EDGE_SSL_OK);
    }
    assert!(dir.join("auto.state").exists(), "automatic checkpoint relative to the config");
    let s = std::ffi::CString::new(dir.join("auto.state").to_str().unwrap()).unwrap();
    let c = std::ffi::CString::new(dir.join("c.toml").to_str().unwrap()).unwrap();
    let mut r = null_mut();
    let st = unsafe { edge_ssl_learner_resume_from_file(c.as_ptr(), s.as_ptr(), &mut r) };
    assert_eq!(st, EDGE_SSL_OK, "{}", last_error());
    let r = H(r);
    assert_eq!(r.info().labeled, 5);

    assert!(open("dim = 4\nn_classes = 3\nrows = \"embedding\"\ngraph_vote = 0.7\n").is_ok());
    let (code, msg) = open("dim = 4\nn_classes = 3\nrows = \"map\"\n").err().unwrap();
    assert_eq!(code, EDGE_SSL_ERR_INVALID_ARG);
    assert!(msg.contains("map rows need image input"), "{msg}");
    let (code, msg) = open("dim = 4\nn_classes = 3\nlearning_rate = 1\n").err().unwrap();
    assert_eq!(code, EDGE_SSL_ERR_DATA);
    assert!(msg.contains("unknown field `learning_rate`"), "{msg}");
    let (code, _) = open("dim = [").err().unwrap();
    assert_eq!(code, EDGE_SSL_ERR_DATA);
    let (code, msg) = open("input = \"video\"\ndim = 4\nn_classes = 3\n").err().unwrap();
    assert_eq!(code, EDGE_SSL_ERR_INVALID_ARG);
    assert!(msg.contains("\"video\" unknown"), "{msg}");
    let missing = c"/nonexistent/edge-ssl.toml";
    let mut h = null_mut();
    assert_eq!(unsafe { edge_ssl_learner_from_file(missing.as_ptr(), &mut h) }, EDGE_SSL_ERR_IO);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn last_error_is_truncated_safely_and_cleared_on_success() {
    let x = [0.0f32; 4];
    let s = unsafe { edge_ssl_observe_labeled(null_mut(), x.as_ptr(), 4, &4, 1, 0) };
    assert_eq!(s, EDGE_SSL_ERR_NULL);
    let full = last_error();
    let mut small = [0x55 as c_char; 8];
    let n = unsafe { edge_ssl_last_error(small.as_mut_ptr(), small.len()) };
    assert_eq!(n, full.len());
    let got = unsafe { CStr::from_ptr(small.as_ptr()) }.to_str().unwrap();
    assert_eq!(got, &full[..7], "7 bytes and a NUL");
    let mut one = [0x55 as c_char; 1];
    unsafe { edge_ssl_last_error(one.as_mut_ptr(), 1) };
    assert_eq!(one[0], 0);

    let mut c = std::mem::MaybeUninit::uninit();
    assert_eq!(unsafe { edge_ssl_config_default(4, 3, c.as_mut_ptr()) }, EDGE_SSL_OK);
    assert_eq!(unsafe { edge_ssl_last_error(null_mut(), 0) }, 0, "cleared by a successful call");

    // Per thread.
    let s = unsafe { edge_ssl_observe_labeled(null_mut(), x.as_ptr(), 4, &4, 1, 0) };
    assert_eq!(s, EDGE_SSL_ERR_NULL);
    let other = std::thread::spawn(|| unsafe { edge_ssl_last_error(null_mut(), 0) });
    assert_eq!(other.join().unwrap(), 0);
    assert!(!last_error().is_empty());
}

#[test]
fn a_panic_is_caught_and_poisons_the_handle() {
    let h = H::new(&config(4, 3)).unwrap();
    let s = unsafe { run_handle("test_op", h.0, |_| panic!("boom")) };
    assert_eq!(s, EDGE_SSL_ERR_PANIC);
    assert!(last_error().contains("test_op: internal error") && last_error().contains("boom"));
    assert_eq!(h.labeled(&sample(0, 0), 0), EDGE_SSL_ERR_POISONED);
    let mut i = std::mem::MaybeUninit::uninit();
    assert_eq!(unsafe { edge_ssl_info(h.0, i.as_mut_ptr()) }, EDGE_SSL_ERR_POISONED);
    let s = run("no_handle", || panic!("{}", String::from("owned message")));
    assert_eq!(s, EDGE_SSL_ERR_PANIC);
    assert!(last_error().contains("owned message"));
}

#[test]
fn status_names_and_version() {
    for (code, name) in [
        (EDGE_SSL_OK, "EDGE_SSL_OK"),
        (EDGE_SSL_ERR_NULL, "EDGE_SSL_ERR_NULL"),
        (EDGE_SSL_ERR_SHAPE, "EDGE_SSL_ERR_SHAPE"),
        (EDGE_SSL_ERR_NON_FINITE, "EDGE_SSL_ERR_NON_FINITE"),
        (EDGE_SSL_ERR_INVALID_ARG, "EDGE_SSL_ERR_INVALID_ARG"),
        (EDGE_SSL_ERR_IO, "EDGE_SSL_ERR_IO"),
        (EDGE_SSL_ERR_STATE, "EDGE_SSL_ERR_STATE"),
        (EDGE_SSL_ERR_MODEL, "EDGE_SSL_ERR_MODEL"),
        (EDGE_SSL_ERR_DATA, "EDGE_SSL_ERR_DATA"),
        (EDGE_SSL_ERR_POISONED, "EDGE_SSL_ERR_POISONED"),
        (EDGE_SSL_ERR_PANIC, "EDGE_SSL_ERR_PANIC"),
        (-77, "unknown"),
    ] {
        let got = unsafe { CStr::from_ptr(edge_ssl_status_name(code)) };
        assert_eq!(got.to_str().unwrap(), name);
    }
    let v = unsafe { CStr::from_ptr(edge_ssl_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn autotraits() {
    fn send<T: Send>() {}
    send::<EdgeSslLearner>();
}
