//! The frozen backbone: an ONNX model run by tract-onnx on the CPU.
//!
//! This is the only module that knows tract. A [`Backbone`] is loaded once (from a path, memory
//! mapped, or from bytes), its input shape and batch size are fixed, tract optimizes it, and one
//! runnable state is kept and reused for every batch. [`Backbone::embed`] writes the embedding of
//! a batch into a caller-owned buffer.
//!
//! # Examples
//! ```no_run
//! use edge_ssl::backbone::{Backbone, BackboneSpec, Input};
//!
//! let spec = BackboneSpec::efficientnet_lite0(112, 1);
//! let mut backbone = Backbone::load(edge_ssl::models::CAMERA_INT8, spec)?;
//! let image = vec![127u8; 112 * 112 * 3]; // one RGB image, HWC
//! let mut embedding = vec![0.0; backbone.embedding_dim()];
//! backbone.embed(Input::U8(&image), &mut embedding)?;
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use crate::error::{Error, Result, check_finite};

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

/// Everything needed to run an ONNX graph as a backbone.
#[derive(Debug, Clone, PartialEq)]
pub struct BackboneSpec {
    /// What one sample is.
    pub input: InputKind,
    /// Samples per run; the graph is optimized for exactly this batch size.
    pub batch: usize,
    /// How samples become the graph input.
    pub preprocessing: Preprocessing,
    /// Name of the graph output that is the embedding (`[B, D]`, or any shape with `B` first).
    pub embedding_output: String,
    /// Name of an optional second output (e.g. ImageNet logits `[B, 1000]`); computed only when
    /// set, otherwise tract prunes the nodes that only it needs.
    pub logits_output: Option<String>,
}

impl BackboneSpec {
    /// The shipped EfficientNet-Lite0 at `size x size` (112 and 224 are tested; any size that
    /// survives five stride-2 stages works): u8 RGB in, `embedding` `[B, 1280]` out.
    pub fn efficientnet_lite0(size: usize, batch: usize) -> Self {
        BackboneSpec {
            input: InputKind::Image { height: size, width: size },
            batch,
            preprocessing: Preprocessing::InGraph,
            embedding_output: "embedding".into(),
            logits_output: None,
        }
    }

    /// The shipped MiniRocket IMU extractor: f32 `[B, 128, 6]` raw accelerometer + gyroscope in,
    /// `embedding` out.
    pub fn minirocket_imu(batch: usize) -> Self {
        BackboneSpec {
            input: InputKind::Sensor { steps: 128, channels: 6 },
            batch,
            preprocessing: Preprocessing::InGraph,
            embedding_output: "embedding".into(),
            logits_output: None,
        }
    }

    /// Also compute the output named `name` (e.g. `"logits"`).
    pub fn with_logits(mut self, name: impl Into<String>) -> Self {
        self.logits_output = Some(name.into());
        self
    }

    /// Validates the spec.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for a zero batch or zero-sized input, or normalization vectors
    /// whose length differs from the channel count or with a non-positive std.
    pub fn check(&self) -> Result<()> {
        if self.batch == 0 {
            return Err(Error::InvalidParam { name: "batch", reason: "must be >= 1".into() });
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

    fn input_dt_shape(&self) -> (DatumType, Vec<usize>) {
        let b = self.batch;
        match (&self.input, &self.preprocessing) {
            (InputKind::Image { height, width }, Preprocessing::InGraph) => {
                (u8::datum_type(), vec![b, *height, *width, 3])
            }
            (InputKind::Image { height, width }, Preprocessing::Normalize { nchw: true, .. }) => {
                (f32::datum_type(), vec![b, 3, *height, *width])
            }
            (InputKind::Image { height, width }, Preprocessing::Normalize { .. }) => {
                (f32::datum_type(), vec![b, *height, *width, 3])
            }
            (InputKind::Sensor { steps, channels }, _) => {
                (f32::datum_type(), vec![b, *steps, *channels])
            }
        }
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

/// A loaded, optimized backbone with one reusable tract state.
///
/// Thread-safety: `Backbone` is `Send` (move it to a worker thread) but each call needs
/// `&mut self`: one state, one batch at a time.
pub struct Backbone {
    spec: BackboneSpec,
    origin: String,
    state: TypedSimpleState,
    input: Arc<Tensor>,
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

fn one_line(e: &TractError) -> String {
    format!("{e:#}").replace('\n', " ")
}

impl Backbone {
    /// Loads the ONNX model at `path` (memory mapped while tract parses it).
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be opened; otherwise as [`Backbone::from_bytes`].
    pub fn load(path: impl AsRef<Path>, spec: BackboneSpec) -> Result<Self> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only and lives only while tract parses it (tract copies the
        // weights into its own tensors). If another process truncates the file meanwhile, reads
        // may fault (SIGBUS); model files are not expected to change under a running device.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Self::build(&map, spec, path.display().to_string())
    }

    /// Loads an ONNX model from bytes (e.g. `include_bytes!`).
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for an invalid spec, [`Error::ModelRejected`] if tract cannot
    /// parse, type or optimize the model (with tract's message on one line),
    /// [`Error::MissingOutput`] if a named output does not exist, [`Error::ModelContract`] if the
    /// graph's input type or output shapes do not fit the spec.
    pub fn from_bytes(bytes: &[u8], spec: BackboneSpec) -> Result<Self> {
        Self::build(bytes, spec, "<bytes>".into())
    }

    fn build(mut bytes: &[u8], spec: BackboneSpec, origin: String) -> Result<Self> {
        spec.check()?;
        let fingerprint = fnv1a64(bytes, 0);
        let rejected = |e: TractError| Error::ModelRejected {
            origin: origin.clone(),
            message: one_line(&e),
            source: e.into(),
        };
        // onnxruntime's quantizer writes symbolic shapes into value_info that tract cannot unify
        // with a fixed batch; the facts we need come from the input fact below.
        let mut model = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .model_for_read(&mut bytes)
            .map_err(rejected)?;

        let available: Vec<String> = model
            .output_outlets()
            .map_err(rejected)?
            .iter()
            .map(|o| {
                model
                    .outlet_label(*o)
                    .map_or_else(|| model.node(o.node).name.clone(), str::to_owned)
            })
            .collect();
        let find = |name: &str| -> Result<OutletId> {
            let ix =
                available.iter().position(|a| a == name).ok_or_else(|| Error::MissingOutput {
                    origin: origin.clone(),
                    name: name.to_owned(),
                    available: available.clone(),
                })?;
            Ok(model.output_outlets().map_err(rejected)?[ix])
        };
        let mut outlets = vec![find(&spec.embedding_output)?];
        if let Some(l) = &spec.logits_output {
            outlets.push(find(l)?);
        }
        model.select_output_outlets(&outlets).map_err(rejected)?;

        if model.input_outlets().map_err(rejected)?.len() != 1 {
            return Err(Error::ModelContract {
                origin,
                what: format!("expected one graph input, found {}", model.inputs.len()),
            });
        }
        let (dt, shape) = spec.input_dt_shape();
        if let Some(declared) = model.input_fact(0).map_err(rejected)?.datum_type.concretize()
            && declared != dt
        {
            return Err(Error::ModelContract {
                origin,
                what: format!("graph input is {declared:?}, the spec feeds {dt:?}"),
            });
        }
        let model = model
            .with_input_fact(0, InferenceFact::dt_shape(dt, shape.clone()))
            .and_then(|m| m.into_optimized())
            .map_err(rejected)?;

        let mut dims = Vec::with_capacity(2);
        for ix in 0..outlets.len() {
            let fact = model.output_fact(ix).map_err(rejected)?;
            let out_shape = fact.shape.as_concrete().map(<[usize]>::to_vec);
            let dim = match out_shape {
                Some(s)
                    if fact.datum_type == f32::datum_type() && s.first() == Some(&spec.batch) =>
                {
                    s[1..].iter().product::<usize>()
                }
                _ => {
                    return Err(Error::ModelContract {
                        origin,
                        what: format!(
                            "output {ix} must be f32 with batch {} first, got {fact:?}",
                            spec.batch
                        ),
                    });
                }
            };
            dims.push(dim);
        }
        let plan = model.into_runnable().map_err(rejected)?;
        let state = plan.spawn().map_err(rejected)?;
        let input = Tensor::zero_dt(dt, &shape).map_err(rejected)?;
        Ok(Backbone {
            embedding_dim: dims[0],
            logits_dim: dims.get(1).copied(),
            fingerprint,
            spec,
            origin,
            state,
            input: Arc::new(input),
        })
    }

    /// The spec this backbone was built with.
    pub fn spec(&self) -> &BackboneSpec {
        &self.spec
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
    /// [`Error::NonFinite`] for NaN or infinity in an f32 input; [`Error::Inference`] if tract
    /// fails.
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
        self.fill_input(input, n)?;

        let outputs = self
            .state
            .run(tvec!(TValue::from_const(self.input.clone())))
            .map_err(|e| Error::Inference { message: one_line(&e), source: e.into() })?;
        let copy = |v: &TValue, out: &mut [f32]| -> Result<()> {
            let view =
                v.try_as_plain_ram().and_then(|p| p.as_slice::<f32>().map(|s| &s[..out.len()]));
            match view {
                Ok(s) => {
                    out.copy_from_slice(s);
                    Ok(())
                }
                Err(e) => Err(Error::Inference { message: one_line(&e), source: e.into() }),
            }
        };
        copy(&outputs[0], emb)?;
        if let Some(l) = logits {
            copy(&outputs[1], l)?;
        }
        Ok(())
    }

    fn fill_input(&mut self, input: Input<'_>, n: usize) -> Result<()> {
        if Arc::get_mut(&mut self.input).is_none() {
            // tract kept a reference to the previous input: start a fresh tensor.
            let t = &*self.input;
            let fresh = Tensor::zero_dt(t.datum_type(), t.shape())
                .map_err(|e| Error::Inference { message: one_line(&e), source: e.into() })?;
            self.input = Arc::new(fresh);
        }
        let tensor = Arc::get_mut(&mut self.input).expect("exclusive input tensor");
        let mut plain = tensor
            .try_as_plain_ram_mut()
            .map_err(|e| Error::Inference { message: one_line(&e), source: e.into() })?;
        let sl = self.spec.input.sample_len();
        let mismatch = |want: &str| Error::ShapeMismatch {
            op: "Backbone::embed(input)",
            expected: format!("{want} samples"),
            got: "the other element type".into(),
        };
        match (&self.spec.preprocessing, input) {
            (Preprocessing::InGraph, Input::U8(src)) => {
                let dst = plain.as_slice_mut::<u8>().map_err(|_| mismatch("f32"))?;
                dst[..src.len()].copy_from_slice(src);
                dst[src.len()..].fill(0);
            }
            (Preprocessing::InGraph, Input::F32(src)) => {
                let dst = plain.as_slice_mut::<f32>().map_err(|_| mismatch("u8"))?;
                dst[..src.len()].copy_from_slice(src);
                dst[src.len()..].fill(0.0);
            }
            (Preprocessing::Normalize { mean, std, nchw }, input) => {
                let dst = plain.as_slice_mut::<f32>().map_err(|_| mismatch("f32"))?;
                let c = self.spec.input.channels();
                let value = |i: usize| match input {
                    Input::U8(s) => f32::from(s[i]),
                    Input::F32(s) => s[i],
                };
                let hw = sl / c;
                let image_nchw = *nchw && matches!(self.spec.input, InputKind::Image { .. });
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
}

/// Runs tract's matrix products of every later backbone pass on `n` threads (a process-wide
/// rayon pool; `n = 1` returns to tract's single-threaded default). Only with the `multithread`
/// cargo feature (tract-linalg's `multithread-mm`). Small products stay on the calling thread.
///
/// # Errors
/// [`Error::InvalidParam`] for `n == 0`.
#[cfg(feature = "multithread")]
pub fn set_threads(n: usize) -> Result<()> {
    use tract_linalg::multithread::{Executor, set_default_executor};
    if n == 0 {
        return Err(Error::InvalidParam { name: "threads", reason: "must be >= 1".into() });
    }
    set_default_executor(if n == 1 { Executor::SingleThread } else { Executor::multithread(n) });
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

    #[cfg(feature = "multithread")]
    #[test]
    fn threads_must_be_at_least_one() {
        assert!(matches!(set_threads(0), Err(Error::InvalidParam { name: "threads", .. })));
    }

    #[test]
    fn backbone_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Backbone>();
    }
}
