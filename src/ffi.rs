//! The C ABI: a small C API over [`Learner`] and [`Device`], declared in `include/edge_ssl.h`.
//!
//! - One opaque handle, [`EdgeSslLearner`], made from an [`EdgeSslConfig`]
//!   ([`edge_ssl_learner_new`]) or a TOML file ([`edge_ssl_learner_from_file`]), or resumed
//!   from a state file ([`edge_ssl_learner_resume`], [`edge_ssl_learner_resume_from_file`]),
//!   and released with [`edge_ssl_learner_free`].
//! - The config's `input` says what the handle learns from: embeddings of `dim` floats that
//!   the caller computed (`EDGE_SSL_INPUT_EMBEDDING`: a [`Learner`]), or raw samples run through
//!   the ONNX backbone at `model_path` (a [`Device`]): sensor windows `[T, C]` f32
//!   (`EDGE_SSL_INPUT_SENSOR`) or u8 images `[H, W, C]` of any size (`EDGE_SSL_INPUT_IMAGE`).
//! - Every sample is passed as pointer + length + shape (`x, len, shape, ndim`); a leading batch
//!   dimension of 1 is accepted. A length that differs from the shape's product (a short
//!   buffer), a shape that is not the learner's, a misaligned `float*` or a NaN is an error.
//! - Every function returns an `int` status: [`EDGE_SSL_OK`] (0) or a negative `EDGE_SSL_ERR_*`
//!   code per failure class ([`status_of`] maps [`Error`] variants). The message of the last
//!   failure on the calling thread is read with [`edge_ssl_last_error`]; every other function
//!   clears it on entry. Output structs and handles are written only on success.
//! - No panic crosses the boundary: every body runs under [`std::panic::catch_unwind`]. A
//!   panic is a bug; it returns [`EDGE_SSL_ERR_PANIC`] and poisons the handle it happened on
//!   (later calls return [`EDGE_SSL_ERR_POISONED`]; free it and resume from the last
//!   checkpoint). Rust's default panic hook still prints the panic message to stderr.
//!
//! # Thread safety
//! A handle may be created on one thread and used on another, but it must not be used by two
//! threads at the same time: guard it with a mutex if it is shared. Different handles are fully
//! independent and may run in parallel. The last-error message is per thread.
//!
//! # Memory
//! All buffers are allocated when a handle is created; `observe` and `predict` on an
//! embedding handle allocate nothing in the steady state (only an error message or an
//! automatic checkpoint allocates).

use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::backbone::{Backbone, BackboneSpec, Engine as BackboneEngine, InputKind};
use crate::data::image::Geometry;
use crate::device::{Device, Feed, Frame, Rows};
use crate::error::Error;
use crate::gate::{GateParams, Projection};
use crate::learner::{Algorithm, AutoCheckpoint, Learner, LearnerParams, Outcome, Prediction};

/// Version of the structs and functions of `include/edge_ssl.h`; [`EdgeSslConfig::abi_version`]
/// must hold it.
pub const EDGE_SSL_ABI_VERSION: u32 = 3;

/// Success.
pub const EDGE_SSL_OK: c_int = 0;
/// A required pointer argument is NULL.
pub const EDGE_SSL_ERR_NULL: c_int = -1;
/// A buffer's length does not match its shape (e.g. a short buffer), the shape is not the
/// learner's, the pointer is misaligned, or the sample kind is not the handle's.
pub const EDGE_SSL_ERR_SHAPE: c_int = -2;
/// An input holds NaN or infinity.
pub const EDGE_SSL_ERR_NON_FINITE: c_int = -3;
/// A parameter is out of range: a config field, a label `>= n_classes`, an unknown algorithm,
/// a string that is not UTF-8, another ABI version, an engine this library was built without.
pub const EDGE_SSL_ERR_INVALID_ARG: c_int = -4;
/// A file could not be read or written, or the onnxruntime library could not be loaded (or is
/// too old).
pub const EDGE_SSL_ERR_IO: c_int = -5;
/// A state file is damaged or was written for other dimensions or another format version.
pub const EDGE_SSL_ERR_STATE: c_int = -6;
/// The ONNX model was rejected, does not fit the config, or failed to run.
pub const EDGE_SSL_ERR_MODEL: c_int = -7;
/// A config file or data is malformed, or a numeric step failed on the data seen so far.
pub const EDGE_SSL_ERR_DATA: c_int = -8;
/// A previous call on this handle panicked (a bug); free it and resume from a checkpoint.
pub const EDGE_SSL_ERR_POISONED: c_int = -9;
/// An internal error (a caught panic: a bug in edge-ssl, please report it).
pub const EDGE_SSL_ERR_PANIC: c_int = -10;

/// [`EdgeSslConfig::input`]: embeddings of `dim` floats computed by the caller.
pub const EDGE_SSL_INPUT_EMBEDDING: u32 = 0;
/// [`EdgeSslConfig::input`]: f32 sensor windows `[T, C]`, time-major, run through the model.
pub const EDGE_SSL_INPUT_SENSOR: u32 = 1;
/// [`EdgeSslConfig::input`]: u8 images `[H, W, C]` (C = 1, 3 or 4), resized and run through
/// the model.
pub const EDGE_SSL_INPUT_IMAGE: u32 = 2;

/// [`EdgeSslConfig::engine`]: tract, pure Rust, always compiled in (the default).
pub const EDGE_SSL_ENGINE_TRACT: u32 = 0;
/// [`EdgeSslConfig::engine`]: onnxruntime, loaded at run time from `libonnxruntime.so` (needs a
/// library built with the cargo feature `onnxruntime`).
pub const EDGE_SSL_ENGINE_ONNXRUNTIME: u32 = 1;

/// [`EdgeSslConfig::rows`]: for image input, the last feature map when the model has the
/// shipped camera model's layout and the engine is tract, else the embedding
/// ([`Rows::Auto`]). The default.
pub const EDGE_SSL_ROWS_AUTO: u32 = 0;
/// [`EdgeSslConfig::rows`]: the image model's last feature map, pooled by its own frozen head
/// convolution, with the bank's graph on the maps ([`Rows::Map`]; the best camera
/// configuration measured, EVALUATION.md).
pub const EDGE_SSL_ROWS_MAP: u32 = 1;
/// [`EdgeSslConfig::rows`]: the model's `embedding` output ([`Rows::Embedding`]).
pub const EDGE_SSL_ROWS_EMBEDDING: u32 = 2;

/// [`EdgeSslOutcome::kind`]: held in the gate's warm-up buffer.
pub const EDGE_SSL_OUTCOME_WARMING_UP: i32 = 0;
/// [`EdgeSslOutcome::kind`]: the gate is not fitted yet and its warm-up buffer is full.
pub const EDGE_SSL_OUTCOME_DEFERRED: i32 = 1;
/// [`EdgeSslOutcome::kind`]: rejected by the out-of-distribution gate.
pub const EDGE_SSL_OUTCOME_GATED: i32 = 2;
/// [`EdgeSslOutcome::kind`]: admitted and pseudo-labelled with [`EdgeSslOutcome::label`].
pub const EDGE_SSL_OUTCOME_ADMITTED: i32 = 3;

/// Most dimensions a sample's shape may have (a batch of 1 plus `[H, W, C]`).
const MAX_NDIM: usize = 4;

/// Learner configuration, filled with defaults by [`edge_ssl_config_default`].
///
/// Strings are NUL-terminated UTF-8 and only read during the call that takes the config.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EdgeSslConfig {
    /// Must be [`EDGE_SSL_ABI_VERSION`].
    pub abi_version: u32,
    /// `EDGE_SSL_INPUT_*`. Default [`EDGE_SSL_INPUT_EMBEDDING`].
    pub input: u32,
    /// The ONNX backbone for sensor or image input (an output named `embedding`; input u8
    /// `[1, S, S, 3]` or f32 `[1, T, C]`); must be NULL for embedding input. Default NULL.
    pub model_path: *const c_char,
    /// Image side `S` the model runs at (image input). Default 112.
    pub image_size: usize,
    /// Window length `T` (sensor input). Default 128.
    pub sensor_steps: usize,
    /// Channels `C` per step (sensor input). Default 6.
    pub sensor_channels: usize,
    /// Embedding dimension; 0 takes the model's (required for embedding input).
    pub dim: usize,
    /// Number of classes, 2..=64.
    pub n_classes: usize,
    /// Algorithm name, e.g. `"fixmatch"` or `"fixmatch+meanteacher"`; NULL for the library's
    /// default (`"labelprop"`, see `LearnerParams::algorithm`).
    pub algorithm: *const c_char,
    /// Hidden width of an MLP head; 0 (default) for a linear head.
    pub hidden: usize,
    /// Memory bank capacity in entries. Default 4096.
    pub bank_capacity: usize,
    /// Non-zero (default): out-of-distribution gate on.
    pub gate: i32,
    /// Unlabeled samples collected before the gate is fitted. Default 512.
    pub gate_warmup: usize,
    /// Learning steps per observed sample. Default 1.
    pub steps_per_sample: usize,
    /// Seed of every random choice. Default 0.
    pub seed: u64,
    /// Save the state here automatically every `checkpoint_every` samples; NULL (default): no
    /// automatic checkpoints.
    pub checkpoint_path: *const c_char,
    /// See `checkpoint_path`. Default 0.
    pub checkpoint_every: u64,
    /// `EDGE_SSL_ENGINE_*`: the engine that runs the model (sensor or image input). Default
    /// [`EDGE_SSL_ENGINE_TRACT`].
    pub engine: u32,
    /// Threads the engine may use. Default 1 (tract uses more only when built with the
    /// `multithread` feature).
    pub threads: usize,
    /// The onnxruntime shared library; NULL (default): `ORT_DYLIB_PATH`, then next to the
    /// executable (see the README's Engines section).
    pub engine_library: *const c_char,
    /// `EDGE_SSL_ROWS_*`: what an image model hands the learner. Default
    /// [`EDGE_SSL_ROWS_AUTO`] (the shipped camera model's last feature map); sensor and
    /// embedding input take embeddings (`EDGE_SSL_ROWS_MAP` is an error there). `dim` is the
    /// rows' size: 5120 for the camera model's 320 x 4 x 4 maps at 112.
    pub rows: u32,
    /// Weight in `[0, 1]` of the bank graph's vote in predictions
    /// (`LearnerParams::graph_vote`); negative (default): the library's default for the rows
    /// (0.5, and 0.7 on maps).
    pub graph_vote: f32,
}

/// What [`edge_ssl_predict`] says about one sample.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdgeSslPrediction {
    /// The predicted class.
    pub label: u32,
    /// Its probability.
    pub confidence: f32,
    /// The out-of-distribution score (higher is stranger); NaN when `has_ood_score` is 0.
    pub ood_score: f32,
    /// 1 once the gate is fitted, else 0.
    pub has_ood_score: i32,
    /// 1 if the gate rejects the sample (strange input), else 0.
    pub gated: i32,
}

/// What [`edge_ssl_observe`] did with one unlabeled sample.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeSslOutcome {
    /// `EDGE_SSL_OUTCOME_*`.
    pub kind: i32,
    /// The pseudo-label when `kind` is [`EDGE_SSL_OUTCOME_ADMITTED`], else 0.
    pub label: u32,
}

/// Dimensions and running counts of a handle ([`edge_ssl_info`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeSslInfo {
    /// `EDGE_SSL_INPUT_*`.
    pub input: u32,
    /// 1 once the out-of-distribution gate is fitted.
    pub gate_fitted: i32,
    /// Embedding dimension.
    pub dim: usize,
    /// Number of classes.
    pub n_classes: usize,
    /// Values of one sample (`dim`, `T * C`, or the model's `S * S * 3`).
    pub sample_len: usize,
    /// Labeled samples observed.
    pub labeled: u64,
    /// Unlabeled samples observed.
    pub unlabeled: u64,
    /// Unlabeled samples admitted (pseudo-labelled).
    pub admitted: u64,
    /// Unlabeled samples the gate rejected.
    pub gated: u64,
    /// Unlabeled samples deferred (gate not fitted yet, warm-up full).
    pub deferred: u64,
    /// Learning steps taken.
    pub steps: u64,
}

/// An opaque learner handle: a [`Learner`] on embeddings, or a [`Device`] (backbone + learner)
/// on raw samples. See the module docs for thread safety.
#[derive(Debug)]
pub struct EdgeSslLearner {
    engine: Engine,
    poisoned: bool,
}

#[derive(Debug)]
enum Engine {
    Embedding(Box<Learner>),
    Device(Box<Device>),
}

/// A failure on its way to C: a status code and a message.
#[derive(Debug)]
struct Fail {
    code: c_int,
    message: String,
}

impl Fail {
    fn new(code: c_int, message: impl Into<String>) -> Self {
        Fail { code, message: message.into() }
    }

    fn null(op: &str, arg: &str) -> Self {
        Fail::new(EDGE_SSL_ERR_NULL, format!("{op}: {arg} is NULL"))
    }

    fn shape(op: &str, message: impl std::fmt::Display) -> Self {
        Fail::new(EDGE_SSL_ERR_SHAPE, format!("{op}: {message}"))
    }

    fn invalid(op: &str, message: impl std::fmt::Display) -> Self {
        Fail::new(EDGE_SSL_ERR_INVALID_ARG, format!("{op}: {message}"))
    }

    fn panic(op: &str, payload: &(dyn std::any::Any + Send)) -> Self {
        let what = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("unknown panic payload");
        Fail::new(EDGE_SSL_ERR_PANIC, format!("{op}: internal error (bug, please report): {what}"))
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::new(status_of(&e), e.to_string())
    }
}

/// The status code of an [`Error`]: one failure class per code.
pub fn status_of(e: &Error) -> c_int {
    match e {
        Error::Io { .. }
        | Error::Plot { .. }
        | Error::RuntimeLibraryMissing { .. }
        | Error::RuntimeLibraryTooOld { .. } => EDGE_SSL_ERR_IO,
        Error::ModelRejected { .. }
        | Error::MissingOutput { .. }
        | Error::ModelContract { .. }
        | Error::Inference { .. } => EDGE_SSL_ERR_MODEL,
        Error::ShapeMismatch { .. } | Error::CapacityExceeded { .. } => EDGE_SSL_ERR_SHAPE,
        Error::NonFinite { .. } => EDGE_SSL_ERR_NON_FINITE,
        Error::BadData { .. } | Error::BadImage { .. } | Error::NotPositiveDefinite { .. } => {
            EDGE_SSL_ERR_DATA
        }
        Error::InvalidParam { .. }
        | Error::HeadParams(_)
        | Error::AugmentParams(_)
        | Error::ObjectiveParams(_)
        | Error::IndexOutOfRange { .. }
        | Error::EngineNotBuilt { .. } => EDGE_SSL_ERR_INVALID_ARG,
        Error::StateTruncated { .. }
        | Error::StateBadMagic { .. }
        | Error::StateVersion { .. }
        | Error::StateChecksum { .. }
        | Error::StateDims { .. }
        | Error::StateMalformed { .. }
        | Error::StateMissingSection { .. }
        | Error::StateTooLarge { .. } => EDGE_SSL_ERR_STATE,
    }
}

thread_local! {
    /// The message of the last failed call on this thread (empty after a successful one).
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs `f` behind `catch_unwind`, records a failure's message and returns the status.
fn run(op: &str, f: impl FnOnce() -> Result<(), Fail>) -> c_int {
    LAST_ERROR.with(|m| m.borrow_mut().clear());
    let fail = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => return EDGE_SSL_OK,
        Ok(Err(fail)) => fail,
        Err(payload) => Fail::panic(op, payload.as_ref()),
    };
    LAST_ERROR.with(|m| {
        let mut m = m.borrow_mut();
        m.clear();
        // C strings end at the first NUL: keep the message readable.
        m.extend(fail.message.chars().map(|c| if c == '\0' { '?' } else { c }));
    });
    fail.code
}

/// Like [`run`] on a live handle; a panic poisons the handle.
///
/// # Safety
/// `h` is NULL or a handle from `edge_ssl_learner_*` not yet freed and not in use by another
/// thread.
unsafe fn run_handle(
    op: &str,
    h: *mut EdgeSslLearner,
    f: impl FnOnce(&mut EdgeSslLearner) -> Result<(), Fail>,
) -> c_int {
    run(op, || {
        // SAFETY: by this function's contract `h` is NULL or valid and exclusively ours.
        let h = unsafe { h.as_mut() }.ok_or_else(|| Fail::null(op, "learner"))?;
        if h.poisoned {
            return Err(Fail::new(
                EDGE_SSL_ERR_POISONED,
                format!("{op}: an earlier call on this learner panicked; free it and resume"),
            ));
        }
        match catch_unwind(AssertUnwindSafe(|| f(h))) {
            Ok(r) => r,
            Err(payload) => {
                h.poisoned = true;
                Err(Fail::panic(op, payload.as_ref()))
            }
        }
    })
}

/// Reads an optional C string.
///
/// # Safety
/// `s` is NULL or points to a NUL-terminated string.
unsafe fn opt_str<'a>(op: &str, arg: &str, s: *const c_char) -> Result<Option<&'a str>, Fail> {
    if s.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null and NUL-terminated by the caller's contract.
    let c = unsafe { CStr::from_ptr(s) };
    c.to_str().map(Some).map_err(|_| Fail::invalid(op, format!("{arg} is not valid UTF-8")))
}

/// Reads a required C string.
///
/// # Safety
/// As [`opt_str`].
unsafe fn req_str<'a>(op: &str, arg: &str, s: *const c_char) -> Result<&'a str, Fail> {
    // SAFETY: forwarded contract.
    unsafe { opt_str(op, arg, s) }?.ok_or_else(|| Fail::null(op, arg))
}

/// Borrows `len` values at `ptr` after checking null, alignment and size.
///
/// # Safety
/// `ptr` is NULL or valid for reads of `len` values of `T`, unchanged during the call.
unsafe fn slice<'a, T>(op: &str, arg: &str, ptr: *const T, len: usize) -> Result<&'a [T], Fail> {
    if ptr.is_null() {
        return Err(Fail::null(op, arg));
    }
    if !ptr.is_aligned() {
        return Err(Fail::shape(
            op,
            format!("{arg} is not aligned to {} bytes", std::mem::align_of::<T>()),
        ));
    }
    if len.checked_mul(std::mem::size_of::<T>()).is_none_or(|b| b > isize::MAX as usize) {
        return Err(Fail::shape(op, format!("{arg}: length {len} is too large")));
    }
    // SAFETY: non-null, aligned, size within isize::MAX, valid for `len` reads (contract).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Reads a sample's shape and checks that it describes exactly `len` values.
///
/// # Safety
/// `shape` is NULL or valid for reads of `ndim` values.
unsafe fn shape_of<'a>(
    op: &str,
    shape: *const usize,
    ndim: usize,
    len: usize,
) -> Result<&'a [usize], Fail> {
    if !(1..=MAX_NDIM).contains(&ndim) {
        return Err(Fail::shape(op, format!("ndim {ndim} not in 1..={MAX_NDIM}")));
    }
    // SAFETY: forwarded contract.
    let s = unsafe { slice(op, "shape", shape, ndim) }?;
    let n = s.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    match n {
        Some(n) if n == len => Ok(s),
        Some(n) if n > len => {
            Err(Fail::shape(op, format!("short buffer: shape {s:?} needs {n} values, got {len}")))
        }
        Some(n) => Err(Fail::shape(op, format!("shape {s:?} is {n} values, buffer has {len}"))),
        None => Err(Fail::shape(op, format!("shape {s:?} overflows"))),
    }
}

/// `shape` without a leading batch dimension of 1, if it has `want` dims then.
fn unbatched(shape: &[usize], want: usize) -> Option<&[usize]> {
    match shape {
        s if s.len() == want => Some(s),
        [1, rest @ ..] if rest.len() == want => Some(rest),
        _ => None,
    }
}

/// A sample as passed by C, after the pointer and shape checks.
#[derive(Debug, Clone, Copy)]
enum Sample<'a> {
    F32(&'a [f32], &'a [usize]),
    U8(&'a [u8], &'a [usize]),
}

/// What to do with a sample.
#[derive(Debug, Clone, Copy)]
enum Action {
    Labeled(u32),
    Observe,
    Predict,
}

#[derive(Debug)]
enum Done {
    Labeled,
    Observed(Outcome),
    Predicted(Prediction),
}

impl EdgeSslLearner {
    fn learner(&self) -> &Learner {
        match &self.engine {
            Engine::Embedding(l) => l,
            Engine::Device(d) => d.learner(),
        }
    }

    fn input(&self) -> (u32, usize) {
        match &self.engine {
            Engine::Embedding(l) => (EDGE_SSL_INPUT_EMBEDDING, l.params().dim),
            Engine::Device(d) => match d.backbone().spec().input {
                InputKind::Sensor { .. } => (EDGE_SSL_INPUT_SENSOR, d.backbone().sample_len()),
                InputKind::Image { .. } => (EDGE_SSL_INPUT_IMAGE, d.backbone().sample_len()),
            },
        }
    }

    fn apply(&mut self, op: &str, sample: Sample<'_>, action: Action) -> Result<Done, Fail> {
        match (&mut self.engine, sample) {
            (Engine::Embedding(l), Sample::F32(x, shape)) => {
                let d = l.params().dim;
                if unbatched(shape, 1) != Some(&[d]) {
                    return Err(Fail::shape(op, format!("expected shape [{d}], got {shape:?}")));
                }
                Ok(match action {
                    Action::Labeled(y) => l.observe_labeled(x, y).map(|()| Done::Labeled)?,
                    Action::Observe => Done::Observed(l.observe(x)?),
                    Action::Predict => Done::Predicted(l.predict(x)?),
                })
            }
            (Engine::Device(dev), sample) => {
                let frame = match (sample, &dev.backbone().spec().input) {
                    (Sample::F32(x, shape), &InputKind::Sensor { steps, channels }) => {
                        if unbatched(shape, 2) != Some(&[steps, channels]) {
                            return Err(Fail::shape(
                                op,
                                format!("expected shape [{steps}, {channels}], got {shape:?}"),
                            ));
                        }
                        Frame::Window(x)
                    }
                    (Sample::U8(pixels, shape), InputKind::Image { .. }) => {
                        let Some(&[height, width, channels]) = unbatched(shape, 3) else {
                            return Err(Fail::shape(
                                op,
                                format!("expected an image shape [H, W, C], got {shape:?}"),
                            ));
                        };
                        Frame::Image { pixels, geometry: Geometry { height, width, channels } }
                    }
                    (Sample::U8(..), _) => {
                        return Err(kind_mismatch(op, "f32 sensor windows", "a u8 image"));
                    }
                    (Sample::F32(..), _) => {
                        return Err(kind_mismatch(op, "u8 images", "f32 values"));
                    }
                };
                Ok(match action {
                    Action::Labeled(y) => dev.observe_labeled(frame, y).map(|()| Done::Labeled)?,
                    Action::Observe => Done::Observed(dev.observe(frame)?),
                    Action::Predict => Done::Predicted(dev.predict(frame)?),
                })
            }
            (Engine::Embedding(_), Sample::U8(..)) => {
                Err(kind_mismatch(op, "f32 embeddings", "a u8 image"))
            }
        }
    }
}

fn kind_mismatch(op: &str, takes: &str, got: &str) -> Fail {
    Fail::shape(op, format!("this learner takes {takes}, got {got}"))
}

/// The configuration of a handle, from a [`EdgeSslConfig`] or a TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    input: String,
    model: Option<PathBuf>,
    image_size: usize,
    sensor_steps: usize,
    sensor_channels: usize,
    dim: usize,
    n_classes: usize,
    algorithm: String,
    hidden: usize,
    bank_capacity: usize,
    gate: bool,
    gate_warmup: usize,
    steps_per_sample: usize,
    seed: u64,
    checkpoint: Option<CheckpointConfig>,
    engine: BackboneEngine,
    threads: usize,
    engine_library: Option<PathBuf>,
    rows: Rows,
    graph_vote: Option<f32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointConfig {
    path: PathBuf,
    every: u64,
}

const INPUT_NAMES: [&str; 3] = ["embedding", "sensor", "image"];

impl Default for Config {
    fn default() -> Self {
        let p = LearnerParams::new(0, 0);
        Config {
            input: INPUT_NAMES[0].into(),
            model: None,
            image_size: 112,
            sensor_steps: 128,
            sensor_channels: 6,
            dim: 0,
            n_classes: 0,
            algorithm: p.algorithm.name().into(),
            hidden: p.hidden,
            bank_capacity: p.bank_capacity,
            gate: p.gate.is_some(),
            gate_warmup: p.gate_warmup,
            steps_per_sample: p.steps_per_sample,
            seed: p.seed,
            checkpoint: None,
            engine: BackboneEngine::default(),
            threads: 1,
            engine_library: None,
            rows: Rows::default(),
            graph_vote: None,
        }
    }
}

impl Config {
    /// Reads a C config.
    ///
    /// # Safety
    /// `c` is NULL or points to a config whose strings are NULL or NUL-terminated.
    unsafe fn from_c(op: &str, c: *const EdgeSslConfig) -> Result<Config, Fail> {
        // SAFETY: NULL or valid by contract.
        let c = unsafe { c.as_ref() }.ok_or_else(|| Fail::null(op, "config"))?;
        if c.abi_version != EDGE_SSL_ABI_VERSION {
            return Err(Fail::invalid(
                op,
                format!(
                    "config abi_version {} but this library is version {EDGE_SSL_ABI_VERSION} \
                     (fill the config with edge_ssl_config_default)",
                    c.abi_version
                ),
            ));
        }
        let input = INPUT_NAMES
            .get(c.input as usize)
            .ok_or_else(|| Fail::invalid(op, format!("input {} unknown", c.input)))?;
        // SAFETY (all three): NULL or NUL-terminated by contract.
        let model = unsafe { opt_str(op, "model_path", c.model_path) }?;
        let algorithm = unsafe { opt_str(op, "algorithm", c.algorithm) }?;
        let ck = unsafe { opt_str(op, "checkpoint_path", c.checkpoint_path) }?;
        // SAFETY: NULL or NUL-terminated by contract.
        let library = unsafe { opt_str(op, "engine_library", c.engine_library) }?;
        let engine = BackboneEngine::from_code(c.engine).ok_or_else(|| {
            Fail::invalid(
                op,
                format!(
                    "engine {} unknown (EDGE_SSL_ENGINE_TRACT {EDGE_SSL_ENGINE_TRACT}, \
                     EDGE_SSL_ENGINE_ONNXRUNTIME {EDGE_SSL_ENGINE_ONNXRUNTIME})",
                    c.engine
                ),
            )
        })?;
        let rows = Rows::from_code(c.rows).ok_or_else(|| {
            Fail::invalid(
                op,
                format!(
                    "rows {} unknown (EDGE_SSL_ROWS_AUTO {EDGE_SSL_ROWS_AUTO}, EDGE_SSL_ROWS_MAP \
                     {EDGE_SSL_ROWS_MAP}, EDGE_SSL_ROWS_EMBEDDING {EDGE_SSL_ROWS_EMBEDDING})",
                    c.rows
                ),
            )
        })?;
        Ok(Config {
            input: (*input).into(),
            model: model.map(PathBuf::from),
            image_size: c.image_size,
            sensor_steps: c.sensor_steps,
            sensor_channels: c.sensor_channels,
            dim: c.dim,
            n_classes: c.n_classes,
            algorithm: algorithm.unwrap_or(Config::default().algorithm.as_str()).into(),
            hidden: c.hidden,
            bank_capacity: c.bank_capacity,
            gate: c.gate != 0,
            gate_warmup: c.gate_warmup,
            steps_per_sample: c.steps_per_sample,
            seed: c.seed,
            checkpoint: ck.map(|p| CheckpointConfig { path: p.into(), every: c.checkpoint_every }),
            engine,
            threads: c.threads,
            engine_library: library.map(PathBuf::from),
            rows,
            // NaN is passed on to the learner's check (an error), negative means the default.
            graph_vote: if c.graph_vote < 0.0 { None } else { Some(c.graph_vote) },
        })
    }

    /// Reads a TOML config file; `model` and `checkpoint.path` are relative to its folder.
    fn from_file(path: &Path) -> Result<Config, Fail> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut c: Config = toml::from_str(&text)
            .map_err(|e| Error::bad_data(path, format!("bad learner config: {e}")))?;
        let dir = path.parent().unwrap_or(Path::new(""));
        c.model = c.model.map(|m| dir.join(m));
        c.engine_library = c.engine_library.map(|l| dir.join(l));
        if let Some(ck) = &mut c.checkpoint {
            ck.path = dir.join(&ck.path);
        }
        Ok(c)
    }

    /// The learner parameters for rows of `dim` values fed as `feed` says.
    fn params(&self, feed: &Feed, dim: usize) -> Result<LearnerParams, Fail> {
        let mut p = feed.params(dim, self.n_classes)?;
        let (main, extra) = Algorithm::parse_combination(&self.algorithm)?;
        p.algorithm = main;
        p.extra = extra;
        p.hidden = self.hidden;
        p.bank_capacity = self.bank_capacity;
        p.steps_per_sample = self.steps_per_sample;
        p.seed = self.seed;
        p.gate_warmup = self.gate_warmup;
        // The default PCA-16 gate, in fewer dimensions for small embeddings.
        p.gate = self.gate.then(|| GateParams {
            projection: Projection::Pca(16.min(p.feature_dim().max(1))),
            ..GateParams::default()
        });
        if let Some(v) = self.graph_vote {
            p.graph_vote = v;
        }
        p.checkpoint = self
            .checkpoint
            .as_ref()
            .map(|c| AutoCheckpoint { path: c.path.clone(), every: c.every });
        Ok(p)
    }

    /// Builds the handle, resuming from `state` if given.
    fn build(&self, op: &str, state: Option<&Path>) -> Result<EdgeSslLearner, Fail> {
        let make = |p: &LearnerParams| match state {
            Some(s) => Learner::resume(p, s),
            None => p.build(),
        };
        let engine = match self.input.as_str() {
            "embedding" => {
                if let Some(m) = &self.model {
                    return Err(Fail::invalid(
                        op,
                        format!("model {} given for embedding input", m.display()),
                    ));
                }
                if self.dim == 0 {
                    return Err(Fail::invalid(op, "dim must be > 0 for embedding input"));
                }
                let feed = self
                    .rows
                    .feed(false, Path::new(""), self.engine)
                    .map_err(|_| Fail::invalid(op, "map rows need image input (and its model)"))?;
                Engine::Embedding(Box::new(make(&self.params(&feed, self.dim)?)?))
            }
            kind @ ("sensor" | "image") => {
                let model = self
                    .model
                    .as_ref()
                    .ok_or_else(|| Fail::invalid(op, format!("{kind} input needs a model path")))?;
                let feed = self.rows.feed(kind == "image", model, self.engine)?;
                let spec = if kind == "sensor" {
                    let mut s = BackboneSpec::minirocket_imu(1);
                    s.input = InputKind::Sensor {
                        steps: self.sensor_steps,
                        channels: self.sensor_channels,
                    };
                    s
                } else {
                    BackboneSpec::efficientnet_lite0(self.image_size, 1)
                };
                let mut spec = feed.spec(spec).with_engine(self.engine).with_threads(self.threads);
                if let Some(l) = &self.engine_library {
                    spec = spec.with_library(l);
                }
                let backbone = Backbone::load(model, spec)?;
                let dim = if self.dim == 0 { backbone.embedding_dim() } else { self.dim };
                let p = self.params(&feed, dim)?;
                let dev = match state {
                    Some(s) => Device::resume(backbone, &p, s)?,
                    None => Device::new(backbone, &p)?,
                };
                Engine::Device(Box::new(dev))
            }
            other => {
                return Err(Fail::invalid(
                    op,
                    format!("input {other:?} unknown (known: {})", INPUT_NAMES.join(", ")),
                ));
            }
        };
        Ok(EdgeSslLearner { engine, poisoned: false })
    }
}

/// Stores a new handle in `*out`.
///
/// # Safety
/// `out` is NULL or valid for one write.
unsafe fn store(op: &str, out: *mut *mut EdgeSslLearner, h: EdgeSslLearner) -> Result<(), Fail> {
    if out.is_null() {
        return Err(Fail::null(op, "out"));
    }
    // SAFETY: non-null and writable by contract.
    unsafe { out.write(Box::into_raw(Box::new(h))) };
    Ok(())
}

/// The library version, e.g. `"0.1.0"` (a static string; never free it).
#[unsafe(no_mangle)]
pub extern "C" fn edge_ssl_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// A static, human-readable name of a status code (`"EDGE_SSL_ERR_NULL"`, ...); `"unknown"`
/// for codes this library never returns.
#[unsafe(no_mangle)]
pub extern "C" fn edge_ssl_status_name(status: c_int) -> *const c_char {
    let s: &'static str = match status {
        EDGE_SSL_OK => "EDGE_SSL_OK\0",
        EDGE_SSL_ERR_NULL => "EDGE_SSL_ERR_NULL\0",
        EDGE_SSL_ERR_SHAPE => "EDGE_SSL_ERR_SHAPE\0",
        EDGE_SSL_ERR_NON_FINITE => "EDGE_SSL_ERR_NON_FINITE\0",
        EDGE_SSL_ERR_INVALID_ARG => "EDGE_SSL_ERR_INVALID_ARG\0",
        EDGE_SSL_ERR_IO => "EDGE_SSL_ERR_IO\0",
        EDGE_SSL_ERR_STATE => "EDGE_SSL_ERR_STATE\0",
        EDGE_SSL_ERR_MODEL => "EDGE_SSL_ERR_MODEL\0",
        EDGE_SSL_ERR_DATA => "EDGE_SSL_ERR_DATA\0",
        EDGE_SSL_ERR_POISONED => "EDGE_SSL_ERR_POISONED\0",
        EDGE_SSL_ERR_PANIC => "EDGE_SSL_ERR_PANIC\0",
        _ => "unknown\0",
    };
    s.as_ptr().cast()
}

/// Copies the message of the last failed call on this thread into `buf` (NUL-terminated,
/// truncated at a character boundary to fit `len` bytes) and returns the message's full length
/// in bytes, without the NUL: 0 if the last call succeeded. With `buf` NULL or `len` 0 nothing
/// is written (ask for the length first, like `snprintf`).
///
/// # Safety
/// `buf` is NULL or valid for writes of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edge_ssl_last_error(buf: *mut c_char, len: usize) -> usize {
    // No catch_unwind needed: nothing here can panic (RefCell is only borrowed here and in `run`,
    // never re-entrantly).
    LAST_ERROR.with(|m| {
        let m = m.borrow();
        if !buf.is_null() && len > 0 {
            let mut n = m.len().min(len - 1);
            while !m.is_char_boundary(n) {
                n -= 1;
            }
            // SAFETY: `buf` is valid for `len > n` bytes by contract; `m` does not overlap it.
            unsafe {
                std::ptr::copy_nonoverlapping(m.as_ptr(), buf.cast::<u8>(), n);
                buf.add(n).write(0);
            }
        }
        m.len()
    })
}

/// Fills `*out` with the defaults for `dim`-dimensional embeddings (0: the model's) and
/// `n_classes` classes: embedding input, the default algorithm (label propagation), gate on, bank 4096, seed 0 (see
/// [`EdgeSslConfig`] for every default).
///
/// # Errors
/// [`EDGE_SSL_ERR_NULL`] if `out` is NULL.
///
/// # Safety
/// `out` is NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edge_ssl_config_default(
    dim: usize,
    n_classes: usize,
    out: *mut EdgeSslConfig,
) -> c_int {
    run("edge_ssl_config_default", || {
        if out.is_null() {
            return Err(Fail::null("edge_ssl_config_default", "out"));
        }
        let d = Config::default();
        let c = EdgeSslConfig {
            abi_version: EDGE_SSL_ABI_VERSION,
            input: EDGE_SSL_INPUT_EMBEDDING,
            model_path: std::ptr::null(),
            image_size: d.image_size,
            sensor_steps: d.sensor_steps,
            sensor_channels: d.sensor_channels,
            dim,
            n_classes,
            algorithm: std::ptr::null(),
            hidden: d.hidden,
            bank_capacity: d.bank_capacity,
            gate: i32::from(d.gate),
            gate_warmup: d.gate_warmup,
            steps_per_sample: d.steps_per_sample,
            seed: d.seed,
            checkpoint_path: std::ptr::null(),
            checkpoint_every: 0,
            engine: d.engine as u32,
            threads: d.threads,
            engine_library: std::ptr::null(),
            rows: d.rows as u32,
            graph_vote: -1.0,
        };
        // SAFETY: non-null and writable by contract.
        unsafe { out.write(c) };
        Ok(())
    })
}

/// Creates a learner from `*config` and stores it in `*out` (free it with
/// [`edge_ssl_learner_free`]). For sensor or image input this loads and optimizes the model
/// (tens of milliseconds to seconds).
///
/// # Errors
/// [`EDGE_SSL_ERR_NULL`], [`EDGE_SSL_ERR_INVALID_ARG`] (a config field), [`EDGE_SSL_ERR_IO`] /
/// [`EDGE_SSL_ERR_MODEL`] (the model file).
///
/// # Safety
/// `config` is NULL or a valid config whose strings are NULL or NUL-terminated; `out` is NULL
/// or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edge_ssl_learner_new(
    config: *const EdgeSslConfig,
    out: *mut *mut EdgeSslLearner,
) -> c_int {
    let op = "edge_ssl_learner_new";
    run(op, || {
        // SAFETY: forwarded contract.
        let h = unsafe { Config::from_c(op, config) }?.build(op, None)?;
        // SAFETY: forwarded contract.
        unsafe { store(op, out, h) }
    })
}

/// Like [`edge_ssl_learner_new`], resuming from the state file written by
/// [`edge_ssl_checkpoint`] (or an automatic checkpoint) with the same config.
///
/// # Errors
/// As [`edge_ssl_learner_new`]; [`EDGE_SSL_ERR_IO`] if the state cannot be read,
/// [`EDGE_SSL_ERR_STATE`] if it is damaged or was saved with other dimensions.
///
/// # Safety
/// As [`edge_ssl_learner_new`]; `state_path` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edge_ssl_learner_resume(
    config: *const EdgeSslConfig,
    state_path: *const c_char,
    out: *mut *mut EdgeSslLearner,
) -> c_int {
    let op = "edge_ssl_learner_resume";
    run(op, || {
        // SAFETY: forwarded contract.
        let c = unsafe { Config::from_c(op, config) }?;
        // SAFETY: forwarded contract.
        let state = unsafe { req_str(op, "state_path", state_path) }?;
        let h = c.build(op, Some(Path::new(state)))?;
        // SAFETY: forwarded contract.
        unsafe { store(op, out, h) }
    })
}

/// Creates a learner from a TOML config file (keys as the fields of [`EdgeSslConfig`], with
/// `input = "embedding" | "sensor" | "image"`, `model = "path"` and an optional
/// `[checkpoint] path = "..." every = N`; paths relative to the file's folder; see the README).
///
/// # Errors
/// As [`edge_ssl_learner_new`]; [`EDGE_SSL_ERR_IO`] if the file cannot be read,
/// [`EDGE_SSL_ERR_DATA`] if it is not valid TOML or has an unknown key.
///
/// # Safety
/// `config_path` is NULL or NUL-terminated; `out` is NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edge_ssl_learner_from_file(
    config_path: *const c_char,
    out: *mut *mut EdgeSslLearner,
) -> c_int {
    let op = "edge_ssl_learner_from_file";
    run(op, || {
        // SAFETY: forwarded contract.
        let path = unsafe { req_str(op, "config_path", config_path) }?;
        let h = Config::from_file(Path::new(path))?.build(op, None)?;
        // SAFETY: forwarded contract.
        unsafe { store(op, out, h) }
    })
}

/// Like [`edge_ssl_learner_from_file`], resuming from a state file.
///
/// # Errors
/// As [`edge_ssl_learner_from_file`] and [`edge_ssl_learner_resume`].
///
/// # Safety
/// As [`edge_ssl_learner_from_file`]; `state_path` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edge_ssl_learner_resume_from_file(
    config_path: *const c_char,
    state_path: *const c_char,
    out: *mut *mut EdgeSslLearner,
) -> c_int {
    let op = "edge_ssl_learner_resume_from_file";
    run(op, || {
        // SAFETY: forwarded contract.
        let (path, state) = unsafe {
            (req_str(op, "config_path", config_path)?, req_str(op, "state_path", state_path)?)
        };
        let h = Config::from_file(Path::new(path))?.build(op, Some(Path::new(state)))?;
        // SAFETY: forwarded contract.
        unsafe { store(op, out, h) }
    })
}

/// Frees a learner. NULL is a no-op. The handle must not be used afterwards.
///
/// # Safety
/// `learner` is NULL or a handle from `edge_ssl_learner_*` not yet freed and not in use by
/// another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edge_ssl_learner_free(learner: *mut EdgeSslLearner) {
    if learner.is_null() {
        return;
    }
    // SAFETY: a pointer from Box::into_raw in `store`, not freed yet (contract).
    let h = unsafe { Box::from_raw(learner) };
    // Dropping frees buffers only; a panic here would be a bug, and must not unwind into C.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(h)));
}

/// Shared body of the f32 sample functions.
///
/// # Safety
/// `h` as in [`run_handle`]; `x` valid for `len` reads; `shape` for `ndim` reads.
unsafe fn f32_call(
    op: &str,
    h: *mut EdgeSslLearner,
    (x, len, shape, ndim): (*const f32, usize, *const usize, usize),
    action: Action,
    done: impl FnOnce(Done),
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        run_handle(op, h, |h| {
            let x = slice(op, "x", x, len)?;
            let s = shape_of(op, shape, ndim, len)?;
            h.apply(op, Sample::F32(x, s), action).map(done)
        })
    }
}

/// Shared body of the u8 image functions.
///
/// # Safety
/// As [`f32_call`], with `pixels` valid for `len` reads.
unsafe fn u8_call(
    op: &str,
    h: *mut EdgeSslLearner,
    (pixels, len, shape, ndim): (*const u8, usize, *const usize, usize),
    action: Action,
    done: impl FnOnce(Done),
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        run_handle(op, h, |h| {
            let x = slice(op, "pixels", pixels, len)?;
            let s = shape_of(op, shape, ndim, len)?;
            h.apply(op, Sample::U8(x, s), action).map(done)
        })
    }
}

fn outcome_c(o: Outcome) -> EdgeSslOutcome {
    let (kind, label) = match o {
        Outcome::WarmingUp => (EDGE_SSL_OUTCOME_WARMING_UP, 0),
        Outcome::Deferred => (EDGE_SSL_OUTCOME_DEFERRED, 0),
        Outcome::Gated => (EDGE_SSL_OUTCOME_GATED, 0),
        Outcome::Admitted(c) => (EDGE_SSL_OUTCOME_ADMITTED, c),
    };
    EdgeSslOutcome { kind, label }
}

fn prediction_c(p: Prediction) -> EdgeSslPrediction {
    EdgeSslPrediction {
        label: p.class,
        confidence: p.confidence,
        ood_score: p.ood_score.unwrap_or(f32::NAN),
        has_ood_score: i32::from(p.ood_score.is_some()),
        gated: i32::from(p.gated),
    }
}

/// Learns from one labelled sample: an embedding `[dim]`, or a sensor window `[T, C]` (a
/// leading batch dimension of 1 is accepted), `len` floats at `x`, with class `label`.
///
/// # Errors
/// [`EDGE_SSL_ERR_NULL`], [`EDGE_SSL_ERR_SHAPE`] (short buffer, wrong shape, misaligned `x`,
/// an image handle), [`EDGE_SSL_ERR_NON_FINITE`], [`EDGE_SSL_ERR_INVALID_ARG`] (label `>=
/// n_classes`); the learner is unchanged then.
///
/// # Safety
/// `learner` as in [`edge_ssl_learner_free`]; `x` NULL or valid for `len` reads; `shape` NULL
/// or valid for `ndim` reads.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edge_ssl_observe_labeled(
    learner: *mut EdgeSslLearner,
    x: *const f32,
    len: usize,
    shape: *const usize,
    ndim: usize,
    label: u32,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        f32_call(
            "edge_ssl_observe_labeled",
            learner,
            (x, len, shape, ndim),
            Action::Labeled(label),
            |_| (),
        )
    }
}

/// Learns from one unlabeled sample (shapes as [`edge_ssl_observe_labeled`]); writes what
/// happened to it into `*outcome` unless `outcome` is NULL.
///
/// # Errors
/// As [`edge_ssl_observe_labeled`] (less the label).
///
/// # Safety
/// As [`edge_ssl_observe_labeled`]; `outcome` NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edge_ssl_observe(
    learner: *mut EdgeSslLearner,
    x: *const f32,
    len: usize,
    shape: *const usize,
    ndim: usize,
    outcome: *mut EdgeSslOutcome,
) -> c_int {
    // SAFETY: forwarded contract; `outcome` NULL or writable.
    unsafe {
        f32_call("edge_ssl_observe", learner, (x, len, shape, ndim), Action::Observe, |d| {
            if let (Done::Observed(o), false) = (d, outcome.is_null()) {
                outcome.write(outcome_c(o));
            }
        })
    }
}

/// Predicts the class of one sample (shapes as [`edge_ssl_observe_labeled`]) into `*out`.
///
/// # Errors
/// As [`edge_ssl_observe`]; [`EDGE_SSL_ERR_NULL`] if `out` is NULL.
///
/// # Safety
/// As [`edge_ssl_observe_labeled`]; `out` NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edge_ssl_predict(
    learner: *mut EdgeSslLearner,
    x: *const f32,
    len: usize,
    shape: *const usize,
    ndim: usize,
    out: *mut EdgeSslPrediction,
) -> c_int {
    let op = "edge_ssl_predict";
    if out.is_null() {
        return run(op, || Err(Fail::null(op, "out")));
    }
    // SAFETY: forwarded contract; `out` non-null and writable.
    unsafe {
        f32_call(op, learner, (x, len, shape, ndim), Action::Predict, |d| {
            if let Done::Predicted(p) = d {
                out.write(prediction_c(p));
            }
        })
    }
}

/// Learns from one labelled u8 image `[H, W, C]` (C = 1, 3 or 4; any size, resized to the
/// model's input; a leading batch dimension of 1 is accepted), `len` bytes at `pixels`.
///
/// # Errors
/// As [`edge_ssl_observe_labeled`] (a handle that does not take images is
/// [`EDGE_SSL_ERR_SHAPE`]).
///
/// # Safety
/// As [`edge_ssl_observe_labeled`], with `pixels` for `x`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edge_ssl_observe_labeled_image(
    learner: *mut EdgeSslLearner,
    pixels: *const u8,
    len: usize,
    shape: *const usize,
    ndim: usize,
    label: u32,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        u8_call(
            "edge_ssl_observe_labeled_image",
            learner,
            (pixels, len, shape, ndim),
            Action::Labeled(label),
            |_| (),
        )
    }
}

/// Learns from one unlabeled u8 image (see [`edge_ssl_observe_labeled_image`] and
/// [`edge_ssl_observe`]).
///
/// # Errors
/// As [`edge_ssl_observe_labeled_image`].
///
/// # Safety
/// As [`edge_ssl_observe`], with `pixels` for `x`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edge_ssl_observe_image(
    learner: *mut EdgeSslLearner,
    pixels: *const u8,
    len: usize,
    shape: *const usize,
    ndim: usize,
    outcome: *mut EdgeSslOutcome,
) -> c_int {
    // SAFETY: forwarded contract; `outcome` NULL or writable.
    unsafe {
        u8_call(
            "edge_ssl_observe_image",
            learner,
            (pixels, len, shape, ndim),
            Action::Observe,
            |d| {
                if let (Done::Observed(o), false) = (d, outcome.is_null()) {
                    outcome.write(outcome_c(o));
                }
            },
        )
    }
}

/// Predicts the class of one u8 image (see [`edge_ssl_observe_labeled_image`] and
/// [`edge_ssl_predict`]).
///
/// # Errors
/// As [`edge_ssl_predict`].
///
/// # Safety
/// As [`edge_ssl_predict`], with `pixels` for `x`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edge_ssl_predict_image(
    learner: *mut EdgeSslLearner,
    pixels: *const u8,
    len: usize,
    shape: *const usize,
    ndim: usize,
    out: *mut EdgeSslPrediction,
) -> c_int {
    let op = "edge_ssl_predict_image";
    if out.is_null() {
        return run(op, || Err(Fail::null(op, "out")));
    }
    // SAFETY: forwarded contract; `out` non-null and writable.
    unsafe {
        u8_call(op, learner, (pixels, len, shape, ndim), Action::Predict, |d| {
            if let Done::Predicted(p) = d {
                out.write(prediction_c(p));
            }
        })
    }
}

/// Saves the learner's whole state to `path`, atomically: after a power cut the file holds
/// the previous or the new state. Resume with [`edge_ssl_learner_resume`].
///
/// # Errors
/// [`EDGE_SSL_ERR_NULL`], [`EDGE_SSL_ERR_INVALID_ARG`] (path not UTF-8), [`EDGE_SSL_ERR_IO`].
///
/// # Safety
/// `learner` as in [`edge_ssl_learner_free`]; `path` NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edge_ssl_checkpoint(
    learner: *mut EdgeSslLearner,
    path: *const c_char,
) -> c_int {
    let op = "edge_ssl_checkpoint";
    // SAFETY: forwarded contract.
    unsafe {
        run_handle(op, learner, |h| {
            let path = req_str(op, "path", path)?;
            Ok(h.learner().checkpoint(path)?)
        })
    }
}

/// Writes the learner's dimensions and running counts into `*out`.
///
/// # Errors
/// [`EDGE_SSL_ERR_NULL`].
///
/// # Safety
/// `learner` as in [`edge_ssl_learner_free`]; `out` NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edge_ssl_info(
    learner: *mut EdgeSslLearner,
    out: *mut EdgeSslInfo,
) -> c_int {
    let op = "edge_ssl_info";
    // SAFETY: forwarded contract.
    unsafe {
        run_handle(op, learner, |h| {
            if out.is_null() {
                return Err(Fail::null(op, "out"));
            }
            let l = h.learner();
            let c = l.counters();
            let (input, sample_len) = h.input();
            out.write(EdgeSslInfo {
                input,
                gate_fitted: i32::from(l.gate_fitted()),
                dim: l.params().dim,
                n_classes: l.params().n_classes,
                sample_len,
                labeled: c.labeled,
                unlabeled: c.unlabeled,
                admitted: c.admitted,
                gated: c.gated,
                deferred: c.deferred,
                steps: c.steps,
            });
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests;
