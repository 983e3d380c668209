//! The frozen backbone: an ONNX model run on the CPU by one of two engines.
//!
//! This is the only module that knows the inference engines. [`Engine::Tract`] (tract-onnx, pure
//! Rust, always built, the default) runs everywhere Rust compiles; [`Engine::OnnxRuntime`]
//! (behind the `onnxruntime` cargo feature) loads the onnxruntime shared library at run time and
//! is 3-15x faster on the shipped camera model (see `BENCHMARKS.md`). Everything above the
//! backbone (embedding caches, the learner, experiments, the CLI) sees only [`Backbone`].
//!
//! A [`Backbone`] is loaded once (from a path, memory mapped, or from bytes), its input shape and
//! batch size are fixed, the engine optimizes the graph, and one runnable state is kept and
//! reused for every batch. [`Backbone::embed`] writes the embedding of a batch into a
//! caller-owned buffer.
//!
//! # Examples
//! ```no_run
//! use edge_ssl::backbone::{Backbone, BackboneSpec, Engine, Input};
//!
//! let spec = BackboneSpec::efficientnet_lite0(112, 1); // tract, one thread
//! let mut backbone = Backbone::load(edge_ssl::models::CAMERA_INT8, spec)?;
//! let image = vec![127u8; 112 * 112 * 3]; // one RGB image, HWC
//! let mut embedding = vec![0.0; backbone.embedding_dim()];
//! backbone.embed(Input::U8(&image), &mut embedding)?;
//!
//! // The same model on onnxruntime (needs `--features onnxruntime` and the shared library,
//! // see `scripts/fetch-onnxruntime.sh`; otherwise a typed error says what is missing).
//! let spec = BackboneSpec::efficientnet_lite0(112, 1).with_engine("onnxruntime".parse::<Engine>()?);
//! let fast = Backbone::load(edge_ssl::models::CAMERA_INT8, spec);
//! # let _ = fast;
//! # Ok::<(), edge_ssl::Error>(())
//! ```
//!
//! # Where the onnxruntime library comes from
//! The build never downloads anything. At run time the `onnxruntime` engine loads
//! `libonnxruntime.so` from, in this order: [`BackboneSpec::library`] (spec key `library` under
//! `[backbone]`, CLI `--ort-library`) if set, else the environment variable
//! [`ORT_LIBRARY_ENV`] if set, else the executable's folder (`libonnxruntime.so*`), else the
//! system's library search path. `scripts/fetch-onnxruntime.sh` gets it from the PyPI
//! `onnxruntime` wheel (sha256 checked). The library is loaded once per process; onnxruntime
//! 1.17 or newer is required, 1.32 is the tested version.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use crate::error::{Error, Result, check_finite};

#[cfg(feature = "onnxruntime")]
mod onnxruntime;
mod tract;

/// The environment variable naming the onnxruntime shared library
/// (e.g. `/opt/ort/libonnxruntime.so.1.32.0`); the same name the `ort` crate uses.
pub const ORT_LIBRARY_ENV: &str = "ORT_DYLIB_PATH";

/// The oldest onnxruntime release the `onnxruntime` engine loads (its C API version 17).
pub const ORT_MIN_VERSION: &str = "1.17";

/// Which inference engine runs the backbone.
///
/// Parsed from `"tract"` or `"onnxruntime"` (also `"ort"`), the names used by the CLI's
/// `--engine` and the spec's `engine` key. The discriminants are stable (`0`, `1`) so a C config
/// can carry the choice as an integer ([`Engine::from_code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u32)]
pub enum Engine {
    /// tract-onnx: pure Rust, always compiled, the default.
    #[default]
    Tract = 0,
    /// onnxruntime, loaded at run time from its shared library (cargo feature `onnxruntime`).
    #[serde(alias = "ort")]
    OnnxRuntime = 1,
}

impl Engine {
    /// Every engine, compiled in or not.
    pub const ALL: [Engine; 2] = [Engine::Tract, Engine::OnnxRuntime];

    /// The name `--engine` and specs use.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Tract => "tract",
            Engine::OnnxRuntime => "onnxruntime",
        }
    }

    /// The engine with this stable code (`0` tract, `1` onnxruntime), for C configs.
    pub fn from_code(code: u32) -> Option<Engine> {
        Engine::ALL.into_iter().find(|e| *e as u32 == code)
    }

    /// Whether this build can run the engine (`onnxruntime` needs the cargo feature; whether
    /// the shared library is present is only known when a backbone is loaded).
    pub fn is_compiled(self) -> bool {
        match self {
            Engine::Tract => true,
            Engine::OnnxRuntime => cfg!(feature = "onnxruntime"),
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Engine {
    type Err = Error;

    /// # Errors
    /// [`Error::InvalidParam`] naming `engine` for anything but `tract`, `onnxruntime`, `ort`.
    fn from_str(s: &str) -> Result<Engine> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tract" => Ok(Engine::Tract),
            "onnxruntime" | "ort" => Ok(Engine::OnnxRuntime),
            other => Err(Error::InvalidParam {
                name: "engine",
                reason: format!("unknown engine {other:?}: expected tract or onnxruntime"),
            }),
        }
    }
}

/// What one sample fed to the backbone is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputKind {
    /// An RGB image, `height x width x 3` bytes (HWC).
    Image {
        /// Height in pixels.
        height: usize,
        /// Width in pixels.
        width: usize,
    },
    /// A sensor window, `steps x channels` f32 values (time-major).
    Sensor {
        /// Time steps per window.
        steps: usize,
        /// Channels per step.
        channels: usize,
    },
}

impl InputKind {
    /// Values per sample.
    pub fn sample_len(&self) -> usize {
        match *self {
            InputKind::Image { height, width } => height * width * 3,
            InputKind::Sensor { steps, channels } => steps * channels,
        }
    }

    fn channels(&self) -> usize {
        match *self {
            InputKind::Image { .. } => 3,
            InputKind::Sensor { channels, .. } => channels,
        }
    }
}

/// How samples are turned into the graph's input tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Preprocessing {
    /// The graph takes the raw sample and normalizes it itself: images as u8 `[B, H, W, 3]`,
    /// sensor windows as f32 `[B, T, C]`. The shipped models work this way.
    InGraph,
    /// The graph takes f32; each value becomes `(x - mean[c]) / std[c]` per channel `c`.
    /// With `nchw` an image is also transposed to `[B, 3, H, W]` (ignored for sensors).
    Normalize {
        /// Per-channel mean (length = channels).
        mean: Vec<f32>,
        /// Per-channel standard deviation (length = channels, all > 0).
        std: Vec<f32>,
        /// Feed images channel-first.
        nchw: bool,
    },
}

/// A 1x1 convolution `y = W x + b` read from a QDQ model's initializers (e.g. the shipped
/// camera model's head, `"head"`, 320 -> 1280 channels): the starting point of a trainable block
/// on an intermediate feature map (see [`BackboneSpec::embedding_output`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PointwiseConv {
    /// Input channels.
    pub inputs: usize,
    /// Output channels.
    pub outputs: usize,
    /// `[outputs, inputs]`, row-major, dequantized.
    pub weight: Vec<f32>,
    /// `[outputs]`, dequantized.
    pub bias: Vec<f32>,
}

impl PointwiseConv {
    /// Reads the convolution `prefix` of the QDQ ONNX file at `path`: the initializers
    /// `{prefix}.w_quantized` (int8 `[outputs, inputs, 1, 1]`), `{prefix}.w_scale` and
    /// `{prefix}.w_zero_point` (per output channel), `{prefix}.b_quantized` (int32) and
    /// `{prefix}.b_quantized_scale`, as onnxruntime's `quantize_static` writes them.
    ///
    /// ```no_run
    /// # fn main() -> edge_ssl::Result<()> {
    /// use edge_ssl::backbone::PointwiseConv;
    /// let head = PointwiseConv::read_qdq(edge_ssl::models::CAMERA_INT8, "head")?;
    /// assert_eq!((head.inputs, head.outputs), (320, 1280));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::ModelRejected`] if the file is not an ONNX model; [`Error::ModelContract`] if an
    /// initializer is missing or its shape does not fit a 1x1 convolution.
    pub fn read_qdq(path: impl AsRef<Path>, prefix: &str) -> Result<PointwiseConv> {
        let path = path.as_ref();
        let names = ["w_quantized", "w_scale", "w_zero_point", "b_quantized", "b_quantized_scale"]
            .map(|n| format!("{prefix}.{n}"));
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let t = tract::initializers(path, &refs)?;
        let contract =
            |what: String| Error::ModelContract { origin: path.display().to_string(), what };
        let (ws, w) = &t[0];
        let (outputs, inputs) = match ws.as_slice() {
            [o, i, 1, 1] | [o, i] => (*o, *i),
            other => return Err(contract(format!("{prefix}: weight shape {other:?} is not 1x1"))),
        };
        let per_out = |k: usize, what: &str| -> Result<&[f32]> {
            let v = &t[k].1;
            if v.len() == outputs {
                Ok(v)
            } else {
                Err(contract(format!(
                    "{prefix}: {what} has {} values, expected {outputs}",
                    v.len()
                )))
            }
        };
        let (scale, zero, bias_q, bias_s) = (
            per_out(1, "w_scale")?,
            per_out(2, "w_zero_point")?,
            per_out(3, "b_quantized")?,
            per_out(4, "b_quantized_scale")?,
        );
        let weight = w
            .chunks_exact(inputs)
            .zip(scale.iter().zip(zero))
            .flat_map(|(row, (&s, &z))| row.iter().map(move |&q| (q - z) * s))
            .collect();
        let bias = bias_q.iter().zip(bias_s).map(|(&q, &s)| q * s).collect();
        Ok(PointwiseConv { inputs, outputs, weight, bias })
    }
}

/// The output name [`BackboneSpec`] reads the embedding from unless told otherwise.
pub const DEFAULT_EMBEDDING_OUTPUT: &str = "embedding";

/// Everything needed to run an ONNX graph as a backbone.
#[derive(Debug, Clone, PartialEq)]
pub struct BackboneSpec {
    /// What one sample is.
    pub input: InputKind,
    /// Samples per run; the graph is optimized for exactly this batch size.
    pub batch: usize,
    /// How samples become the graph input.
    pub preprocessing: Preprocessing,
    /// Name of the graph output that is the embedding (`[B, D]`, or any shape with `B` first,
    /// flattened per sample). With [`Engine::Tract`] it may also name any tensor inside the
    /// graph, e.g. an intermediate feature map such as EfficientNet-Lite0's last block,
    /// `"b15_proj_DequantizeLinear_Output"` (`[B, 320, H/32, W/32]`); the nodes after it are
    /// then never run.
    pub embedding_output: String,
    /// Name of an optional second output (e.g. ImageNet logits `[B, 1000]`); computed only when
    /// set, otherwise the engine prunes the nodes that only it needs.
    pub logits_output: Option<String>,
    /// The inference engine (default [`Engine::Tract`]).
    pub engine: Engine,
    /// Threads one run may use (default 1). tract uses more than one only when built with the
    /// `multithread` feature; onnxruntime sets its intra-op thread count.
    pub threads: usize,
    /// The onnxruntime shared library (ignored by tract). `None`: the environment variable
    /// [`ORT_LIBRARY_ENV`], then the executable's folder, then the system search path.
    pub library: Option<PathBuf>,
}

impl BackboneSpec {
    fn new(input: InputKind, batch: usize) -> Self {
        BackboneSpec {
            input,
            batch,
            preprocessing: Preprocessing::InGraph,
            embedding_output: DEFAULT_EMBEDDING_OUTPUT.into(),
            logits_output: None,
            engine: Engine::Tract,
            threads: 1,
            library: None,
        }
    }

    /// The shipped EfficientNet-Lite0 at `size x size` (112 and 224 are tested; any size that
    /// survives five stride-2 stages works): u8 RGB in, `embedding` `[B, 1280]` out. tract, one
    /// thread.
    pub fn efficientnet_lite0(size: usize, batch: usize) -> Self {
        Self::new(InputKind::Image { height: size, width: size }, batch)
    }

    /// The shipped MiniRocket IMU extractor: f32 `[B, 128, 6]` raw accelerometer + gyroscope in,
    /// `embedding` out. tract, one thread.
    pub fn minirocket_imu(batch: usize) -> Self {
        Self::new(InputKind::Sensor { steps: 128, channels: 6 }, batch)
    }

    /// Also compute the output named `name` (e.g. `"logits"`).
    pub fn with_logits(mut self, name: impl Into<String>) -> Self {
        self.logits_output = Some(name.into());
        self
    }

    /// Take the tensor named `name` as the embedding ([`BackboneSpec::embedding_output`]),
    /// e.g. [`crate::models::CAMERA_LAST_BLOCK`] for the camera model's last feature map.
    pub fn with_output(mut self, name: impl Into<String>) -> Self {
        self.embedding_output = name.into();
        self
    }

    /// Run on `engine`.
    pub fn with_engine(mut self, engine: Engine) -> Self {
        self.engine = engine;
        self
    }

    /// Use up to `threads` threads per run.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Load onnxruntime from this shared library file.
    pub fn with_library(mut self, path: impl Into<PathBuf>) -> Self {
        self.library = Some(path.into());
        self
    }

    /// Validates the spec.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for a zero batch, thread count or zero-sized input, or
    /// normalization vectors whose length differs from the channel count or with a non-positive
    /// std.
    pub fn check(&self) -> Result<()> {
        if self.batch == 0 {
            return Err(Error::InvalidParam { name: "batch", reason: "must be >= 1".into() });
        }
        if self.threads == 0 {
            return Err(Error::InvalidParam { name: "threads", reason: "must be >= 1".into() });
        }
        if self.input.sample_len() == 0 {
            return Err(Error::InvalidParam { name: "input", reason: "zero-sized sample".into() });
        }
        if let Preprocessing::Normalize { mean, std, .. } = &self.preprocessing {
            let c = self.input.channels();
            if mean.len() != c || std.len() != c {
                return Err(Error::InvalidParam {
                    name: "preprocessing",
                    reason: format!("mean/std need {c} values, got {}/{}", mean.len(), std.len()),
                });
            }
            if std.iter().any(|s| !(*s > 0.0 && s.is_finite())) {
                return Err(Error::InvalidParam {
                    name: "preprocessing",
                    reason: "std must be finite and > 0".into(),
                });
            }
        }
        Ok(())
    }

    /// Element type and shape of the graph input.
    fn input_elem_shape(&self) -> (Elem, Vec<usize>) {
        let b = self.batch;
        match (&self.input, &self.preprocessing) {
            (InputKind::Image { height, width }, Preprocessing::InGraph) => {
                (Elem::U8, vec![b, *height, *width, 3])
            }
            (InputKind::Image { height, width }, Preprocessing::Normalize { nchw: true, .. }) => {
                (Elem::F32, vec![b, 3, *height, *width])
            }
            (InputKind::Image { height, width }, Preprocessing::Normalize { .. }) => {
                (Elem::F32, vec![b, *height, *width, 3])
            }
            (InputKind::Sensor { steps, channels }, _) => (Elem::F32, vec![b, *steps, *channels]),
        }
    }
}

/// Element type of a graph input, as both engines name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    U8,
    F32,
}

/// The engine's input buffer, borrowed for filling (`batch * sample_len` values).
enum InputBuf<'a> {
    U8(&'a mut [u8]),
    F32(&'a mut [f32]),
}

/// What an engine found when it built the graph.
struct Built<R> {
    runner: R,
    embedding_dim: usize,
    logits_dim: Option<usize>,
}

/// Indices of the spec's outputs (embedding, then optional logits) among the graph's outputs.
fn find_outputs(available: &[String], spec: &BackboneSpec, origin: &str) -> Result<Vec<usize>> {
    let find = |name: &str| {
        available.iter().position(|a| a == name).ok_or_else(|| Error::MissingOutput {
            origin: origin.to_owned(),
            name: name.to_owned(),
            available: available.to_vec(),
        })
    };
    let mut ix = vec![find(&spec.embedding_output)?];
    if let Some(l) = &spec.logits_output {
        ix.push(find(l)?);
    }
    Ok(ix)
}

/// The graph's input type is not what the spec feeds.
fn input_type_mismatch(declared: impl std::fmt::Debug, want: Elem, origin: &str) -> Error {
    Error::ModelContract {
        origin: origin.to_owned(),
        what: format!("graph input is {declared:?}, the spec feeds {want:?}"),
    }
}

/// An output's per-sample size, from its shape, if it is f32 with `batch` first.
fn output_dim(
    ix: usize,
    is_f32: bool,
    shape: Option<&[usize]>,
    batch: usize,
    origin: &str,
    what: impl std::fmt::Debug,
) -> Result<usize> {
    match shape {
        Some(s) if is_f32 && s.first() == Some(&batch) => Ok(s[1..].iter().product()),
        _ => Err(Error::ModelContract {
            origin: origin.to_owned(),
            what: format!("output {ix} must be f32 with batch {batch} first, got {what:?}"),
        }),
    }
}

/// A batch of samples, as the caller holds them: `n * sample_len` values, `1 <= n <= batch`.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// Image bytes, HWC, one image after the other.
    U8(&'a [u8]),
    /// Sensor values, time-major, one window after the other (must be finite).
    F32(&'a [f32]),
}

impl Input<'_> {
    fn len(&self) -> usize {
        match self {
            Input::U8(v) => v.len(),
            Input::F32(v) => v.len(),
        }
    }
}

/// The instruction-set features tract detected on this CPU and dispatches its kernels on (e.g.
/// `IsaSet(Aarch64)`, `IsaSet(X86_64 | Avx2 | Fma ...)`), as tract prints them.
pub fn cpu_features() -> String {
    tract::cpu_features()
}

/// The engine behind a [`Backbone`].
enum Runner {
    Tract(tract::TractRunner),
    #[cfg(feature = "onnxruntime")]
    OnnxRuntime(onnxruntime::OrtRunner),
}

impl Runner {
    fn fill(&mut self, fill: impl FnOnce(InputBuf<'_>) -> Result<()>) -> Result<()> {
        match self {
            Runner::Tract(r) => r.fill(fill),
            #[cfg(feature = "onnxruntime")]
            Runner::OnnxRuntime(r) => r.fill(fill),
        }
    }

    fn run(&mut self, emb: &mut [f32], logits: Option<&mut [f32]>) -> Result<()> {
        match self {
            Runner::Tract(r) => r.run(emb, logits),
            #[cfg(feature = "onnxruntime")]
            Runner::OnnxRuntime(r) => r.run(emb, logits),
        }
    }
}

/// A loaded, optimized backbone with one reusable engine state.
///
/// Thread-safety: `Backbone` is `Send` (move it to a worker thread) but each call needs
/// `&mut self`: one state, one batch at a time.
pub struct Backbone {
    spec: BackboneSpec,
    origin: String,
    runner: Runner,
    embedding_dim: usize,
    logits_dim: Option<usize>,
    fingerprint: u64,
}

/// FNV-1a, 64-bit: a fast, stable content fingerprint (not a cryptographic hash).
pub(crate) fn fnv1a64(bytes: &[u8], seed: u64) -> u64 {
    let mut h = seed ^ 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl std::fmt::Debug for Backbone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backbone")
            .field("origin", &self.origin)
            .field("spec", &self.spec)
            .field("embedding_dim", &self.embedding_dim)
            .field("logits_dim", &self.logits_dim)
            .finish_non_exhaustive()
    }
}

impl Backbone {
    /// Loads the ONNX model at `path` (memory mapped while the engine parses it).
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be opened; otherwise as [`Backbone::from_bytes`].
    pub fn load(path: impl AsRef<Path>, spec: BackboneSpec) -> Result<Self> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only and lives only while the engine parses it (both engines
        // copy the weights into their own tensors). If another process truncates the file
        // meanwhile, reads may fault (SIGBUS); model files are not expected to change under a
        // running device.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Self::build(&map, spec, path.display().to_string())
    }

    /// Loads an ONNX model from bytes (e.g. `include_bytes!`).
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for an invalid spec (or `threads > 1` on tract without the
    /// `multithread` feature), [`Error::EngineNotBuilt`] for an engine this build lacks,
    /// [`Error::RuntimeLibraryMissing`] / [`Error::RuntimeLibraryTooOld`] when onnxruntime's
    /// shared library cannot be loaded, [`Error::ModelRejected`] if the engine cannot parse,
    /// type or optimize the model (with its message on one line), [`Error::MissingOutput`] if a
    /// named output does not exist, [`Error::ModelContract`] if the graph's input type or output
    /// shapes do not fit the spec.
    pub fn from_bytes(bytes: &[u8], spec: BackboneSpec) -> Result<Self> {
        Self::build(bytes, spec, "<bytes>".into())
    }

    fn build(bytes: &[u8], spec: BackboneSpec, origin: String) -> Result<Self> {
        spec.check()?;
        let fingerprint = fnv1a64(bytes, 0);
        let (runner, embedding_dim, logits_dim) = match spec.engine {
            Engine::Tract => {
                let b = tract::TractRunner::build(bytes, &spec, &origin)?;
                (Runner::Tract(b.runner), b.embedding_dim, b.logits_dim)
            }
            #[cfg(feature = "onnxruntime")]
            Engine::OnnxRuntime => {
                let b = onnxruntime::OrtRunner::build(bytes, &spec, &origin)?;
                (Runner::OnnxRuntime(b.runner), b.embedding_dim, b.logits_dim)
            }
            #[cfg(not(feature = "onnxruntime"))]
            Engine::OnnxRuntime => {
                return Err(Error::EngineNotBuilt {
                    engine: Engine::OnnxRuntime,
                    feature: "onnxruntime",
                });
            }
        };
        Ok(Backbone { spec, origin, runner, embedding_dim, logits_dim, fingerprint })
    }

    /// The spec this backbone was built with.
    pub fn spec(&self) -> &BackboneSpec {
        &self.spec
    }

    /// The engine that runs it.
    pub fn engine(&self) -> Engine {
        self.spec.engine
    }

    /// A fingerprint of the model bytes (FNV-1a 64), e.g. to key caches of embeddings.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Dimension `D` of one embedding.
    pub fn embedding_dim(&self) -> usize {
        self.embedding_dim
    }

    /// Dimension of the second output, if the spec asked for one.
    pub fn logits_dim(&self) -> Option<usize> {
        self.logits_dim
    }

    /// Values per sample (`H * W * 3` bytes or `T * C` floats).
    pub fn sample_len(&self) -> usize {
        self.spec.input.sample_len()
    }

    /// Largest number of samples per call.
    pub fn batch(&self) -> usize {
        self.spec.batch
    }

    /// The names of the matrix-multiplication kernels tract picked for this model on this CPU
    /// (e.g. `arm64simd_mmm_f32_16x4_a53`, `avx2_mmm_i32_8x8`), sorted, without duplicates.
    /// With [`cpu_features`], this tells which SIMD code a board really runs. Empty for the
    /// onnxruntime engine, which does not expose its kernel choice.
    pub fn kernels(&self) -> Vec<String> {
        match &self.runner {
            Runner::Tract(r) => r.kernels(),
            #[cfg(feature = "onnxruntime")]
            Runner::OnnxRuntime(_) => Vec::new(),
        }
    }

    /// Embeds `n` samples (`1 <= n <= batch`) into `embeddings` (`n * D` values).
    ///
    /// A partial batch is zero-padded: it costs as much as a full one.
    ///
    /// # Shapes
    /// `[n, sample_len] -> [n, D]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the input is not a whole number of samples between 1 and
    /// `batch`, is of the wrong element type, or `embeddings` is not `n * D` long;
    /// [`Error::NonFinite`] for NaN or infinity in an f32 input; [`Error::Inference`] if the
    /// engine fails.
    pub fn embed(&mut self, input: Input<'_>, embeddings: &mut [f32]) -> Result<()> {
        self.run(input, embeddings, None)
    }

    /// Like [`Backbone::embed`], and also writes the second output (`n * logits_dim` values).
    ///
    /// # Errors
    /// As [`Backbone::embed`]; [`Error::InvalidParam`] if the spec named no second output.
    pub fn embed_with_logits(
        &mut self,
        input: Input<'_>,
        embeddings: &mut [f32],
        logits: &mut [f32],
    ) -> Result<()> {
        if self.logits_dim.is_none() {
            return Err(Error::InvalidParam {
                name: "logits_output",
                reason: "the backbone was built without a second output".into(),
            });
        }
        self.run(input, embeddings, Some(logits))
    }

    fn run(&mut self, input: Input<'_>, emb: &mut [f32], logits: Option<&mut [f32]>) -> Result<()> {
        let sl = self.sample_len();
        let len = input.len();
        let n = len / sl;
        if !len.is_multiple_of(sl) || n == 0 || n > self.spec.batch {
            return Err(Error::ShapeMismatch {
                op: "Backbone::embed(input)",
                expected: format!("1..={} samples of {sl} values", self.spec.batch),
                got: format!("{len} values"),
            });
        }
        let check_out = |buf: &[f32], d: usize, op| {
            if buf.len() == n * d {
                Ok(())
            } else {
                Err(Error::ShapeMismatch {
                    op,
                    expected: format!("[{n}, {d}] = {} values", n * d),
                    got: format!("{} values", buf.len()),
                })
            }
        };
        check_out(emb, self.embedding_dim, "Backbone::embed(embeddings)")?;
        if let (Some(l), Some(d)) = (logits.as_deref(), self.logits_dim) {
            check_out(l, d, "Backbone::embed(logits)")?;
        }
        if let Input::F32(v) = input {
            check_finite("Backbone::embed(input)", v)?;
        }
        let spec = &self.spec;
        self.runner.fill(|dst| fill_input(spec, input, n, dst))?;
        self.runner.run(emb, logits)
    }
}

/// Writes `n` samples of `input` into the engine's input buffer, preprocessed as the spec says,
/// and zero-pads the rest of the batch.
fn fill_input(spec: &BackboneSpec, input: Input<'_>, n: usize, dst: InputBuf<'_>) -> Result<()> {
    let sl = spec.input.sample_len();
    let mismatch = |want: &str| Error::ShapeMismatch {
        op: "Backbone::embed(input)",
        expected: format!("{want} samples"),
        got: "the other element type".into(),
    };
    match (&spec.preprocessing, input, dst) {
        (Preprocessing::InGraph, Input::U8(src), InputBuf::U8(dst)) => {
            dst[..src.len()].copy_from_slice(src);
            dst[src.len()..].fill(0);
        }
        (Preprocessing::InGraph, Input::F32(src), InputBuf::F32(dst)) => {
            dst[..src.len()].copy_from_slice(src);
            dst[src.len()..].fill(0.0);
        }
        (Preprocessing::InGraph, Input::U8(_), InputBuf::F32(_)) => return Err(mismatch("f32")),
        (Preprocessing::InGraph, Input::F32(_), InputBuf::U8(_)) => return Err(mismatch("u8")),
        (Preprocessing::Normalize { .. }, _, InputBuf::U8(_)) => return Err(mismatch("u8")),
        (Preprocessing::Normalize { mean, std, nchw }, input, InputBuf::F32(dst)) => {
            let c = spec.input.channels();
            let value = |i: usize| match input {
                Input::U8(s) => f32::from(s[i]),
                Input::F32(s) => s[i],
            };
            let hw = sl / c;
            let image_nchw = *nchw && matches!(spec.input, InputKind::Image { .. });
            for i in 0..n * sl {
                let (s, within) = (i / sl, i % sl);
                let ch = within % c;
                let v = (value(i) - mean[ch]) / std[ch];
                let j = if image_nchw { s * sl + ch * hw + within / c } else { i };
                dst[j] = v;
            }
            dst[n * sl..].fill(0.0);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_check_rejects_zero_batch_and_bad_normalization() {
        let mut s = BackboneSpec::efficientnet_lite0(112, 0);
        assert!(matches!(s.check(), Err(Error::InvalidParam { name: "batch", .. })));
        s.batch = 1;
        s.preprocessing =
            Preprocessing::Normalize { mean: vec![0.0; 2], std: vec![1.0; 2], nchw: true };
        assert!(matches!(s.check(), Err(Error::InvalidParam { name: "preprocessing", .. })));
        s.preprocessing =
            Preprocessing::Normalize { mean: vec![0.0; 3], std: vec![1.0, 0.0, 1.0], nchw: true };
        assert!(matches!(s.check(), Err(Error::InvalidParam { name: "preprocessing", .. })));
    }

    #[test]
    fn garbage_bytes_are_rejected_with_a_typed_error() {
        let e =
            Backbone::from_bytes(b"definitely not an onnx model", BackboneSpec::minirocket_imu(1))
                .unwrap_err();
        assert!(matches!(e, Error::ModelRejected { .. }), "{e}");
    }

    #[test]
    fn backbone_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Backbone>();
    }

    #[test]
    fn spec_check_rejects_zero_threads() {
        let s = BackboneSpec::minirocket_imu(1).with_threads(0);
        assert!(matches!(s.check(), Err(Error::InvalidParam { name: "threads", .. })));
    }

    #[test]
    fn engine_names_and_codes_round_trip() {
        for e in Engine::ALL {
            assert_eq!(e.name().parse::<Engine>().unwrap(), e);
            assert_eq!(Engine::from_code(e as u32), Some(e));
        }
        assert_eq!("ORT".parse::<Engine>().unwrap(), Engine::OnnxRuntime);
        assert!(matches!(
            "tensorrt".parse::<Engine>(),
            Err(Error::InvalidParam { name: "engine", .. })
        ));
        assert_eq!(Engine::from_code(2), None);
        assert_eq!(Engine::default(), Engine::Tract);
        assert!(Engine::Tract.is_compiled());
    }

    #[cfg(not(feature = "onnxruntime"))]
    #[test]
    fn onnxruntime_without_the_feature_is_a_typed_error() {
        let spec = BackboneSpec::minirocket_imu(1).with_engine(Engine::OnnxRuntime);
        let e = Backbone::load(crate::models::SENSOR_INT8, spec).unwrap_err();
        assert!(matches!(e, Error::EngineNotBuilt { engine: Engine::OnnxRuntime, .. }), "{e:?}");
    }
}
