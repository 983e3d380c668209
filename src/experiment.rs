//! Experiments: every algorithm and the two baselines on the same streams, from the same seeds.
//!
//! A spec is a TOML file (a public format, documented in the README); paths in it are relative
//! to the spec's folder:
//!
//! ```toml
//! name = "fmnist-10-ood30"
//! seeds = [1, 2, 3]
//! algorithms = ["fixmatch", "flexmatch", "labelprop", "comatch"]  # baselines always run
//!
//! [backbone]
//! model = "../models/efficientnet-lite0-int8.onnx"
//! input = "image"        # "image" | "sensor"
//! size = 112             # image side; ignored for sensor
//! engine = "tract"       # optional: "tract" (default) | "onnxruntime"
//! threads = 1            # optional: threads per backbone run
//! # library = "libonnxruntime.so.1.32.0"   # optional, for onnxruntime
//!
//! [data]
//! format = "idx"         # "idx" (plain or .gz) | "npy" | "folder"
//! train_x = "../data/fashion-mnist/train-images-idx3-ubyte.gz"
//! train_y = "../data/fashion-mnist/train-labels-idx1-ubyte.gz"
//! test_x = "../data/fashion-mnist/t10k-images-idx3-ubyte.gz"
//! test_y = "../data/fashion-mnist/t10k-labels-idx1-ubyte.gz"
//! ood_x = "../data/mnist/ood-images-idx3-ubyte.gz"   # optional
//! # for "folder": train_dir / test_dir / ood_dir, one sub-folder per class
//!
//! [protocol]
//! labels_per_class = 10
//! stream_len = 5000      # unlabeled samples from the pool, excluding the labelled ones
//! ood_fraction = 0.3     # share of the stream replaced by ood_x samples (0 if absent)
//! stream_imbalance = 10  # optional: a long-tailed stream, the first class 10x the last
//! gate = true            # run each SSL algorithm with the gate, and also without it
//!
//! [learner]              # optional overrides of the defaults, for every run (baselines too)
//! weight_decay = 5e-2    # also: learning_rate, hidden, neighbours, pca_dim,
//!                        # propagation_alpha, refresh_every, distribution_alignment,
//!                        # temperature_scaling, graph_vote
//! ```
//!
//! Per seed: `labels_per_class` labelled samples per class are drawn from the pool, the stream is
//! drawn from the rest (with `ood_fraction` of it taken from the first half of `ood_x`; the
//! second half is held out to measure the gate), and every run sees that same stream. The
//! baselines are `supervised` (labels only, same head and replay) and `oracle` (the labels plus
//! the true labels of the whole in-distribution stream). The backbone is frozen, so each
//! dataset is embedded once ([`crate::embed::EmbeddingCache`]) and reused by every run.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Deserialize;

use crate::adapt::AdaptParams;
use crate::backbone::{Backbone, BackboneSpec, Engine, InputKind, PointwiseConv};
use crate::data::{folder, idx, npy};
use crate::embed::EmbeddingCache;
use crate::error::{Error, Result};
use crate::eval::{mean_std, sample_per_class};
use crate::gate::eval::auroc;
use crate::learner::{Algorithm, LearnerParams};
use crate::scenario::{RunResult, Stream, StreamItem, run_stream};

/// `[backbone]` of a spec.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneSection {
    /// ONNX model path.
    pub model: PathBuf,
    /// `"image"` or `"sensor"`.
    pub input: String,
    /// Image side (default 112).
    #[serde(default = "default_size")]
    pub size: usize,
    /// Inference engine: `"tract"` (default) or `"onnxruntime"` (needs the `onnxruntime`
    /// feature and the shared library).
    #[serde(default)]
    pub engine: Engine,
    /// Threads per backbone run (default 1).
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// The onnxruntime shared library (optional; see [`crate::backbone`] for the search order).
    pub library: Option<PathBuf>,
    /// The tensor to read as each sample's row (default the model's embedding output), e.g.
    /// [`crate::models::CAMERA_LAST_BLOCK`] for `[learner] adapt`
    /// ([`BackboneSpec::embedding_output`]).
    pub embedding_output: Option<String>,
}

fn default_threads() -> usize {
    1
}

fn default_size() -> usize {
    112
}

/// `[data]` of a spec.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// `"idx"`, `"npy"` or `"folder"`.
    pub format: String,
    /// Pool inputs (idx / npy).
    pub train_x: Option<PathBuf>,
    /// Pool labels (idx / npy).
    pub train_y: Option<PathBuf>,
    /// Test inputs (idx / npy).
    pub test_x: Option<PathBuf>,
    /// Test labels (idx / npy).
    pub test_y: Option<PathBuf>,
    /// Out-of-distribution inputs (idx / npy), optional.
    pub ood_x: Option<PathBuf>,
    /// Pool folder (folder format).
    pub train_dir: Option<PathBuf>,
    /// Test folder (folder format).
    pub test_dir: Option<PathBuf>,
    /// Out-of-distribution folder (folder format), optional.
    pub ood_dir: Option<PathBuf>,
    /// npy only: group ids `[n]` of `train_x` (e.g. the subject). With `train_groups` and
    /// `test_groups`, pool and test are the rows of `train_x` in those groups (honest splits by
    /// subject from one file); `test_x` / `test_y` are then not used.
    pub groups: Option<PathBuf>,
    /// Groups of the pool (with `groups`).
    pub train_groups: Option<Vec<i64>>,
    /// Groups of the test set (with `groups`).
    pub test_groups: Option<Vec<i64>>,
}

/// `[protocol]` of a spec.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolSection {
    /// Labelled samples per class (default 10).
    #[serde(default = "default_labels")]
    pub labels_per_class: usize,
    /// Unlabeled stream length (default 5000; capped by the pool).
    #[serde(default = "default_stream")]
    pub stream_len: usize,
    /// Share of the stream replaced by out-of-distribution samples (default 0).
    #[serde(default)]
    pub ood_fraction: f64,
    /// Run each SSL algorithm with the gate and without it (true, default) or only without.
    #[serde(default = "default_gate")]
    pub gate: bool,
    /// With `gate = true`, also run each SSL algorithm without the gate (default true);
    /// `false` runs only the gated variant.
    #[serde(default = "default_gate")]
    pub ungated: bool,
    /// Test accuracy along the stream every this many samples (default 1000).
    #[serde(default = "default_eval")]
    pub eval_every: usize,
    /// A long-tailed stream: class `c` (of `K`, in label order) keeps the share
    /// `imbalance^(-c / (K - 1))` of its pool rows, so the first class is `imbalance` times as
    /// frequent as the last (the exponential profile of the long-tailed SSL literature); the
    /// labelled set and the test set stay balanced, and the stream is shorter than
    /// `stream_len` if the pool runs out. Default 1: every class as the pool has it.
    #[serde(default = "default_imbalance")]
    pub stream_imbalance: f64,
}

fn default_imbalance() -> f64 {
    1.0
}

fn default_labels() -> usize {
    10
}
fn default_stream() -> usize {
    5000
}
fn default_gate() -> bool {
    true
}
fn default_eval() -> usize {
    1000
}

/// `[learner]` of a spec: overrides of [`LearnerParams::new`]'s defaults, applied to every run of
/// the spec, the two baselines included, so that rows stay paired. Every key is optional; an
/// absent key keeps the library default.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnerSection {
    /// SGD weight decay ([`crate::head::optim::SgdParams::weight_decay`]; default 5e-2).
    pub weight_decay: Option<f32>,
    /// SGD learning rate (default 0.03).
    pub learning_rate: Option<f32>,
    /// Hidden width of an MLP head; 0 for the linear head (default).
    pub hidden: Option<usize>,
    /// Neighbours per bank entry in the propagation graph (default 10).
    pub neighbours: Option<usize>,
    /// PCA dimension of the propagation graph (default 128).
    pub pca_dim: Option<usize>,
    /// Whitening exponent of the graph's PCA ([`crate::propagate::PropagationParams::whiten`],
    /// default 1).
    pub pca_whiten: Option<f32>,
    /// Rows per PCA fit of the graph ([`crate::propagate::PropagationParams::pca_rows`],
    /// default 1024).
    pub pca_rows: Option<usize>,
    /// Spatial positions of the graph's map rows, each normalized on its own
    /// ([`crate::propagate::PropagationParams::positions`], default 1).
    pub graph_positions: Option<usize>,
    /// Sinkhorn iterations balancing the propagated labels
    /// ([`crate::propagate::PropagationParams::balance_iters`], default 0).
    pub graph_balance: Option<usize>,
    /// The propagation starts from the teacher's probabilities on pseudo entries
    /// ([`crate::propagate::PropagationParams::teacher_start`], default true).
    pub graph_teacher_start: Option<bool>,
    /// Propagation weight alpha (default 0.9).
    pub propagation_alpha: Option<f32>,
    /// Unlabeled samples between graph refreshes (default 500).
    pub refresh_every: Option<u64>,
    /// Distribution alignment with this momentum (default off).
    pub distribution_alignment: Option<f32>,
    /// Temperature scaling of the teacher, refitted every this many unlabeled samples
    /// (default off; [`LearnerParams::temperature_scaling`]).
    pub temperature_scaling: Option<u64>,
    /// Weight of the bank graph's vote in predictions ([`LearnerParams::graph_vote`],
    /// default 0.5; 0 for the teacher alone).
    pub graph_vote: Option<f32>,
    /// Features that adapt on the device ([`LearnerParams::adapt`]): the name of the
    /// backbone's 1x1 convolution that makes the embedding from the rows
    /// (`backbone.embedding_output`), e.g. [`crate::models::CAMERA_HEAD_CONV`]. Every row of
    /// the spec, the baselines included, then trains that block. Default off.
    pub adapt: Option<String>,
    /// The block's learning rate ([`AdaptParams::lr`], default 0.05).
    pub adapt_lr: Option<f32>,
    /// Observed samples between block steps ([`AdaptParams::every`], default 2).
    pub adapt_every: Option<u64>,
    /// Pseudo entries per block step ([`AdaptParams::unlabeled_rows`], default 48).
    pub adapt_rows: Option<usize>,
    /// Decay of the block's weight average ([`AdaptParams::average_decay`], default 0.999).
    pub adapt_average: Option<f32>,
    /// The graph on the shipped block's embeddings ([`AdaptParams::graph_on_shipped`]).
    pub adapt_graph_on_shipped: Option<bool>,
    /// The graph on the feature maps ([`AdaptParams::graph_on_map`]).
    pub adapt_graph_on_map: Option<bool>,
    /// The block trains on the surer half of the propagated labels
    /// ([`AdaptParams::surest_half`]).
    pub adapt_surest_half: Option<bool>,
    /// Observed samples between recomputations of the bank's embeddings
    /// ([`AdaptParams::refresh_every`], default 500).
    pub adapt_refresh: Option<u64>,
}

impl LearnerSection {
    /// The adaptive block of `adapt`, read from `model` for rows of `dim` values.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] (`adapt`) if `dim` is not a whole number of the convolution's
    /// input channels; the errors of [`PointwiseConv::read_qdq`].
    pub fn adapt_params(&self, model: &Path, dim: usize) -> Result<Option<AdaptParams>> {
        let Some(prefix) = &self.adapt else { return Ok(None) };
        let conv = PointwiseConv::read_qdq(model, prefix)?;
        let mut a = AdaptParams::for_rows(conv, dim)?;
        if let Some(v) = self.adapt_lr {
            a.lr = v;
        }
        if let Some(v) = self.adapt_every {
            a.every = v;
        }
        if let Some(v) = self.adapt_rows {
            a.unlabeled_rows = v;
        }
        if let Some(v) = self.adapt_average {
            a.average_decay = v;
        }
        if let Some(v) = self.adapt_graph_on_shipped {
            a.graph_on_shipped = v;
        }
        if let Some(v) = self.adapt_graph_on_map {
            a.graph_on_map = v;
        }
        if let Some(v) = self.adapt_surest_half {
            a.surest_half = v;
        }
        if let Some(v) = self.adapt_refresh {
            a.refresh_every = v;
        }
        Ok(Some(a))
    }

    /// Applies the overrides to `p`.
    pub fn apply(&self, p: &mut LearnerParams) {
        if let Some(v) = self.weight_decay {
            p.sgd.weight_decay = v;
        }
        if let Some(v) = self.learning_rate {
            p.sgd.lr = v;
        }
        if let Some(v) = self.hidden {
            p.hidden = v;
        }
        if let Some(v) = self.neighbours {
            p.propagation.neighbours = v;
        }
        if let Some(v) = self.pca_dim {
            p.propagation.pca_dim = v;
        }
        if let Some(v) = self.pca_whiten {
            p.propagation.whiten = v;
        }
        if let Some(v) = self.pca_rows {
            p.propagation.pca_rows = v;
        }
        if let Some(v) = self.graph_positions {
            p.propagation.positions = v;
        }
        if let Some(v) = self.graph_balance {
            p.propagation.balance_iters = v;
        }
        if let Some(v) = self.graph_teacher_start {
            p.propagation.teacher_start = v;
        }
        if let Some(v) = self.propagation_alpha {
            p.propagation.alpha = v;
        }
        if let Some(v) = self.refresh_every {
            p.propagation.every = v;
        }
        if let Some(v) = self.graph_vote {
            p.graph_vote = v;
        }
        if self.distribution_alignment.is_some() {
            p.distribution_alignment = self.distribution_alignment;
        }
        if self.temperature_scaling.is_some() {
            p.temperature_scaling = self.temperature_scaling;
        }
    }
}

/// An experiment spec (see the module docs for the format).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Name, copied into the results.
    pub name: String,
    /// Seeds: one label draw and stream per seed.
    pub seeds: Vec<u64>,
    /// Semi-supervised algorithms (names as in `edge-ssl run --algorithm`, `a+b` combines).
    pub algorithms: Vec<String>,
    /// The backbone.
    pub backbone: BackboneSection,
    /// The data.
    pub data: DataSection,
    /// The protocol.
    pub protocol: ProtocolSection,
    /// Learner overrides (optional section).
    #[serde(default)]
    pub learner: LearnerSection,
    /// The folder paths are relative to (the spec file's folder).
    #[serde(skip)]
    pub base: PathBuf,
}

impl Spec {
    /// Parses a spec from TOML text; relative paths are resolved against `base`.
    ///
    /// # Errors
    /// [`Error::BadData`] for malformed TOML, unknown keys or values out of range, naming
    /// `origin`.
    pub fn parse(text: &str, base: &Path, origin: &Path) -> Result<Spec> {
        let mut spec: Spec =
            toml::from_str(text).map_err(|e| Error::bad_data(origin, format!("bad spec: {e}")))?;
        spec.base = base.to_path_buf();
        let bad = |r: String| Error::bad_data(origin, r);
        if spec.seeds.is_empty() {
            return Err(bad("seeds is empty".into()));
        }
        for a in &spec.algorithms {
            Algorithm::parse_combination(a)?;
        }
        if !matches!(spec.backbone.input.as_str(), "image" | "sensor") {
            return Err(bad(format!(
                "backbone.input {:?}: expected image or sensor",
                spec.backbone.input
            )));
        }
        if spec.backbone.threads == 0 {
            return Err(bad("backbone.threads must be >= 1".into()));
        }
        if !matches!(spec.data.format.as_str(), "idx" | "npy" | "folder") {
            return Err(bad(format!(
                "data.format {:?}: expected idx, npy or folder",
                spec.data.format
            )));
        }
        if !(0.0..1.0).contains(&spec.protocol.ood_fraction) {
            return Err(bad(format!(
                "protocol.ood_fraction {} not in [0, 1)",
                spec.protocol.ood_fraction
            )));
        }
        if !(spec.protocol.stream_imbalance >= 1.0 && spec.protocol.stream_imbalance.is_finite()) {
            return Err(bad(format!(
                "protocol.stream_imbalance {} is not a finite ratio >= 1",
                spec.protocol.stream_imbalance
            )));
        }
        if spec.protocol.labels_per_class == 0 || spec.protocol.stream_len == 0 {
            return Err(bad("labels_per_class and stream_len must be >= 1".into()));
        }
        // Out-of-range overrides fail here, before any embedding, with the parameter's name.
        let mut probe = LearnerParams::new(16, 2);
        spec.learner.apply(&mut probe);
        probe.build().map_err(|e| bad(format!("[learner]: {e}")))?;
        Ok(spec)
    }

    /// Learner runs of the whole experiment: per seed, the two baselines plus each algorithm
    /// with and/or without the gate.
    pub fn n_runs(&self) -> usize {
        let p = &self.protocol;
        let per_algorithm = usize::from(p.gate) + usize::from(!p.gate || p.ungated);
        self.seeds.len() * (2 + self.algorithms.len() * per_algorithm)
    }

    /// Reads and parses a spec file.
    ///
    /// # Errors
    /// [`Error::Io`], or as [`Spec::parse`].
    pub fn load(path: impl AsRef<Path>) -> Result<Spec> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Spec::parse(&text, &base, path)
    }

    /// `base` with the spec's engine, threads and library (relative to the spec's folder).
    pub fn backbone_spec(&self, base: BackboneSpec) -> BackboneSpec {
        let mut s = base.with_engine(self.backbone.engine).with_threads(self.backbone.threads);
        s.library = self.backbone.library.as_ref().map(|p| self.base.join(p));
        if let Some(o) = &self.backbone.embedding_output {
            s.embedding_output.clone_from(o);
        }
        s
    }

    /// The data path `p` (a `[data]` field named `key`) resolved against the spec's folder.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] naming `key` if the spec does not set it.
    pub fn path(&self, p: &Option<PathBuf>, key: &'static str) -> Result<PathBuf> {
        p.as_ref().map(|p| self.base.join(p)).ok_or_else(|| Error::InvalidParam {
            name: key,
            reason: format!("data.{key} is required for format {:?}", self.data.format),
        })
    }
}

/// Embedded datasets of an experiment.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// Embedding dimension.
    pub dim: usize,
    /// Number of classes.
    pub n_classes: usize,
    /// Pool embeddings and labels.
    pub pool: (Vec<f32>, Vec<u32>),
    /// Test embeddings and labels.
    pub test: (Vec<f32>, Vec<u32>),
    /// Out-of-distribution embeddings (may be empty).
    pub ood: Vec<f32>,
}

/// Loads the spec's data and embeds it with its backbone (through `cache`); `progress` gets a
/// short description of each dataset being embedded.
///
/// # Errors
/// Reader, model and cache errors; [`Error::InvalidParam`] for missing paths or unlabeled data.
pub fn embed_spec(
    spec: &Spec,
    cache: &EmbeddingCache,
    mut progress: impl FnMut(&str),
) -> Result<Embedded> {
    let model = spec.base.join(&spec.backbone.model);
    let image = spec.backbone.input == "image";
    let s = spec.backbone.size;
    let labels_of = |l: Option<Vec<u32>>, what: &'static str| {
        l.ok_or_else(|| Error::InvalidParam { name: what, reason: "labels are required".into() })
    };
    let (pool, test, ood) = match (spec.data.format.as_str(), image) {
        ("folder", true) => {
            let mut bb =
                Backbone::load(&model, spec.backbone_spec(BackboneSpec::efficientnet_lite0(s, 1)))?;
            let mut one = |dir: &PathBuf, what: &str| -> Result<(Vec<f32>, Option<Vec<u32>>)> {
                progress(what);
                let set = folder::read_folder(spec.base.join(dir), s, s)?;
                Ok((cache.images(&mut bb, &set, |_| {})?, set.labels))
            };
            let pool = one(&spec.path(&spec.data.train_dir, "train_dir")?, "pool")?;
            let test = one(&spec.path(&spec.data.test_dir, "test_dir")?, "test")?;
            let ood = match &spec.data.ood_dir {
                Some(d) => one(d, "ood")?.0,
                None => Vec::new(),
            };
            (pool, test, ood)
        }
        ("idx", true) => {
            let mut bb =
                Backbone::load(&model, spec.backbone_spec(BackboneSpec::efficientnet_lite0(s, 1)))?;
            let mut one = |x: PathBuf,
                           y: Option<PathBuf>,
                           what: &str|
             -> Result<(Vec<f32>, Option<Vec<u32>>)> {
                progress(what);
                let set = idx::read_images(x, y)?;
                Ok((cache.images(&mut bb, &set, |_| {})?, set.labels))
            };
            let pool = one(
                spec.path(&spec.data.train_x, "train_x")?,
                Some(spec.path(&spec.data.train_y, "train_y")?),
                "pool",
            )?;
            let test = one(
                spec.path(&spec.data.test_x, "test_x")?,
                Some(spec.path(&spec.data.test_y, "test_y")?),
                "test",
            )?;
            let ood = match &spec.data.ood_x {
                Some(x) => one(spec.base.join(x), None, "ood")?.0,
                None => Vec::new(),
            };
            (pool, test, ood)
        }
        ("npy", false) => {
            let mut bb: Option<Backbone> = None;
            let mut one = |x: PathBuf,
                           y: Option<PathBuf>,
                           what: &str|
             -> Result<(Vec<f32>, Option<Vec<u32>>)> {
                progress(what);
                let set = npy::read_windows(x, y, None::<&Path>)?;
                if bb.is_none() {
                    let mut bs = BackboneSpec::minirocket_imu(1);
                    bs.input = InputKind::Sensor { steps: set.steps, channels: set.channels };
                    bb = Some(Backbone::load(&model, spec.backbone_spec(bs))?);
                }
                let b = bb.as_mut().expect("set above");
                Ok((cache.windows(b, &set, |_| {})?, set.labels))
            };
            let train_x = spec.path(&spec.data.train_x, "train_x")?;
            let train_y = spec.path(&spec.data.train_y, "train_y")?;
            let d = &spec.data;
            let (pool, test) = match (&d.groups, &d.train_groups, &d.test_groups) {
                (Some(g), Some(tr), Some(te)) => {
                    let (all, labels) = one(train_x.clone(), Some(train_y), "pool and test")?;
                    let groups =
                        npy::read_windows(train_x, None::<&Path>, Some(spec.base.join(g)))?
                            .groups
                            .unwrap_or_default();
                    let labels = labels.unwrap_or_default();
                    let dim = if labels.is_empty() { 0 } else { all.len() / labels.len() };
                    let split = |keep: &[i64]| -> (Vec<f32>, Option<Vec<u32>>) {
                        let rows: Vec<usize> =
                            (0..labels.len()).filter(|&i| keep.contains(&groups[i])).collect();
                        let x =
                            rows.iter().flat_map(|&i| all[i * dim..(i + 1) * dim].iter().copied());
                        (x.collect(), Some(rows.iter().map(|&i| labels[i]).collect()))
                    };
                    (split(tr), split(te))
                }
                (None, None, None) => {
                    let pool = one(train_x, Some(train_y), "pool")?;
                    let test_x = spec.path(&d.test_x, "test_x")?;
                    let test = one(test_x, Some(spec.path(&d.test_y, "test_y")?), "test")?;
                    (pool, test)
                }
                _ => {
                    return Err(Error::InvalidParam {
                        name: "groups",
                        reason: "groups, train_groups and test_groups go together".into(),
                    });
                }
            };
            let ood = match &spec.data.ood_x {
                Some(x) => one(spec.base.join(x), None, "ood")?.0,
                None => Vec::new(),
            };
            (pool, test, ood)
        }
        (f, _) => {
            return Err(Error::InvalidParam {
                name: "data.format",
                reason: format!(
                    "format {f:?} does not fit backbone input {:?}",
                    spec.backbone.input
                ),
            });
        }
    };
    let pool_y = labels_of(pool.1, "train_y")?;
    let test_y = labels_of(test.1, "test_y")?;
    let n_classes = pool_y.iter().chain(&test_y).max().map_or(0, |m| *m as usize + 1);
    let dim = if pool_y.is_empty() { 0 } else { pool.0.len() / pool_y.len() };
    Ok(Embedded { dim, n_classes, pool: (pool.0, pool_y), test: (test.0, test_y), ood })
}

/// Aggregated results of one (algorithm, gate) over the seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Algorithm name (`supervised`, `oracle`, or a spec entry).
    pub algorithm: String,
    /// Gate on.
    pub gate: bool,
    /// Per-seed results.
    pub runs: Vec<RunResult>,
}

impl Row {
    /// Mean and sample standard deviation of test accuracy over the seeds.
    pub fn accuracy(&self) -> (f64, f64) {
        mean_std(&self.runs.iter().map(|r| r.accuracy).collect::<Vec<_>>())
    }

    fn mean(&self, f: impl Fn(&RunResult) -> f64) -> f64 {
        let v: Vec<f64> = self.runs.iter().map(f).filter(|x| x.is_finite()).collect();
        if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 }
    }

    /// Mean pseudo-label precision.
    pub fn pseudo_precision(&self) -> f64 {
        self.mean(|r| r.pseudo_precision)
    }

    /// Mean pseudo-label coverage.
    pub fn pseudo_coverage(&self) -> f64 {
        self.mean(|r| r.pseudo_coverage)
    }

    /// Mean share of admitted samples that were out of distribution.
    pub fn admitted_ood_share(&self) -> f64 {
        self.mean(|r| r.admitted_ood_share)
    }

    /// Mean gate AUROC on the held-out out-of-distribution samples (NaN without).
    pub fn ood_auroc(&self) -> f64 {
        self.mean(|r| {
            if r.in_scores.is_empty() || r.out_scores.is_empty() {
                f64::NAN
            } else {
                auroc(&r.in_scores, &r.out_scores)
            }
        })
    }

    /// Mean over the seeds of [`RunResult::bank_precision`] (teacher pseudo-labels in the bank,
    /// by confidence) and of [`RunResult::propagated_precision`] (by weight), at
    /// [`crate::scenario::COVERAGE`].
    pub fn precision_curves(&self) -> ([f64; 4], [f64; 4]) {
        (
            std::array::from_fn(|i| self.mean(|r| r.bank_precision[i])),
            std::array::from_fn(|i| self.mean(|r| r.propagated_precision[i])),
        )
    }

    /// Mean stream samples per second of learner time.
    pub fn samples_per_s(&self) -> f64 {
        self.mean(|r| r.samples_per_s)
    }
}

/// All rows of an experiment, baselines first.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The spec's name.
    pub name: String,
    /// `supervised`, `oracle`, then each algorithm (with gate, without gate).
    pub rows: Vec<Row>,
}

impl Outcome {
    /// `(acc - supervised) / (oracle - supervised)` on the mean accuracies.
    pub fn gap_closed(&self, row: &Row) -> f64 {
        let sup = self.rows[0].accuracy().0;
        let orc = self.rows[1].accuracy().0;
        if orc > sup { (row.accuracy().0 - sup) / (orc - sup) } else { f64::NAN }
    }
}

/// Where one stream sample comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRow {
    /// Row `i` of the pool (in distribution, labelled in the data).
    Pool(usize),
    /// Row `j` of the first half of the `ood` set (the second half is held out for the test).
    Ood(usize),
}

/// One seed's draw: which pool rows are labelled, and the stream in its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draw {
    /// The labelled pool rows, `labels_per_class` per class.
    pub labeled: Vec<usize>,
    /// The stream, `stream_len` samples (fewer if the pool runs out), `ood_fraction` of them
    /// from the `ood` set.
    pub stream: Vec<StreamRow>,
}

/// The labelled set and the stream that [`run`] uses for `seed`: tools that study the same
/// setting offline (the `examples/*_study.rs`) call it to pair with the harness's rows.
/// `ood_rows` is the number of `ood` rows the stream may draw from (half the set; 0 for none).
///
/// # Errors
/// [`Error::InvalidParam`] if some class has fewer than `labels_per_class` pool rows.
pub fn draw(
    spec: &Spec,
    pool_y: &[u32],
    n_classes: usize,
    ood_rows: usize,
    seed: u64,
) -> Result<Draw> {
    let p = &spec.protocol;
    let mut rng = StdRng::seed_from_u64(seed);
    let labeled = sample_per_class(pool_y, None, n_classes, p.labels_per_class, &mut rng)?;
    let mut rest: Vec<usize> = (0..pool_y.len()).filter(|i| !labeled.contains(i)).collect();
    rest.shuffle(&mut rng);
    if p.stream_imbalance > 1.0 {
        // each class keeps the first rows of its share, in the shuffled order
        let mut left: Vec<usize> = (0..n_classes)
            .map(|c| {
                let have = rest.iter().filter(|&&i| pool_y[i] as usize == c).count();
                let e = c as f64 / (n_classes.max(2) - 1) as f64;
                (have as f64 * p.stream_imbalance.powf(-e)).round() as usize
            })
            .collect();
        rest.retain(|&i| {
            let k = &mut left[pool_y[i] as usize];
            let keep = *k > 0;
            *k = k.saturating_sub(1);
            keep
        });
    }
    let n_ood =
        if ood_rows > 0 { (p.stream_len as f64 * p.ood_fraction).round() as usize } else { 0 };
    let n_in = p.stream_len.saturating_sub(n_ood).min(rest.len());
    let mut stream: Vec<StreamRow> = rest[..n_in].iter().map(|&i| StreamRow::Pool(i)).collect();
    let mut ood_order: Vec<usize> = (0..ood_rows).collect();
    ood_order.shuffle(&mut rng);
    stream.extend((0..n_ood).map(|k| StreamRow::Ood(ood_order[k % ood_rows])));
    stream.shuffle(&mut rng);
    Ok(Draw { labeled, stream })
}

/// Runs every row of `spec` on `data`; `progress(row, seed)` is called before each run.
///
/// # Errors
/// [`Error::InvalidParam`] if a class has too few pool samples; the learner's errors.
pub fn run(spec: &Spec, data: &Embedded, mut progress: impl FnMut(&str, u64)) -> Result<Outcome> {
    let d = data.dim;
    let p = &spec.protocol;
    let (pool, pool_y) = (&data.pool.0, &data.pool.1);
    let half = data.ood.len() / d.max(1) / 2;
    let adapt = spec.learner.adapt_params(&spec.base.join(&spec.backbone.model), d)?;
    let mut plans: Vec<(String, Algorithm, Vec<Algorithm>, bool, bool)> = vec![
        ("supervised".into(), Algorithm::Supervised, vec![], true, false),
        ("oracle".into(), Algorithm::Supervised, vec![], true, true),
    ];
    for a in &spec.algorithms {
        let (main, extra) = Algorithm::parse_combination(a)?;
        if p.gate {
            plans.push((a.clone(), main, extra.clone(), true, false));
        }
        if !p.gate || p.ungated {
            plans.push((a.clone(), main, extra, false, false));
        }
    }
    let mut rows: Vec<Row> = plans
        .iter()
        .map(|(n, _, _, g, _)| Row { algorithm: n.clone(), gate: *g, runs: Vec::new() })
        .collect();
    for &seed in &spec.seeds {
        let dr = draw(spec, pool_y, data.n_classes, half, seed)?;
        let labeled = dr.labeled;
        let row = |i: usize| &pool[i * d..(i + 1) * d];
        let items: Vec<StreamItem<'_>> = dr
            .stream
            .iter()
            .map(|r| match *r {
                StreamRow::Pool(i) => StreamItem { x: row(i), truth: Some(pool_y[i]) },
                StreamRow::Ood(j) => StreamItem { x: &data.ood[j * d..(j + 1) * d], truth: None },
            })
            .collect();
        let stream = Stream {
            dim: d,
            labeled: labeled.iter().map(|&i| (row(i), pool_y[i])).collect(),
            items,
            test: &data.test.0,
            test_y: &data.test.1,
            ood_test: &data.ood[half * d..2 * half * d],
        };
        for (r, (name, main, extra, gate, oracle)) in rows.iter_mut().zip(&plans) {
            progress(
                &format!(
                    "{name}{}",
                    if *gate && name != "supervised" && name != "oracle" { "+gate" } else { "" }
                ),
                seed,
            );
            let mut lp = LearnerParams::new(d, data.n_classes);
            if let Some(a) = &adapt {
                lp = lp.with_adapt(a.clone());
            }
            lp.algorithm = *main;
            lp.extra = extra.clone();
            lp.seed = seed;
            spec.learner.apply(&mut lp);
            if !gate {
                lp.gate = None;
            }
            r.runs.push(run_stream(&lp, &stream, *oracle, p.eval_every, |_| {})?);
        }
    }
    Ok(Outcome { name: spec.name.clone(), rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
name = "t"
seeds = [1]
algorithms = ["labelprop"]
[backbone]
model = "m.onnx"
input = "sensor"
[data]
format = "npy"
[protocol]
"#;

    fn parse(extra: &str) -> Result<Spec> {
        Spec::parse(&format!("{BASE}{extra}"), Path::new("."), Path::new("t.toml"))
    }

    #[test]
    fn draw_takes_the_labels_per_class_the_stream_from_the_rest_and_its_ood_share() {
        let spec = parse("labels_per_class = 3\nstream_len = 40\nood_fraction = 0.25\n").unwrap();
        // 4 classes x 20 pool rows; 7 ood rows to draw from (so some repeat)
        let pool_y: Vec<u32> = (0..80).map(|i| i % 4).collect();
        let d = draw(&spec, &pool_y, 4, 7, 9).unwrap();
        assert_eq!(d.labeled.len(), 12);
        for c in 0..4 {
            assert_eq!(d.labeled.iter().filter(|&&i| pool_y[i] == c).count(), 3, "class {c}");
        }
        assert_eq!(d.stream.len(), 40);
        let pool: Vec<usize> = d
            .stream
            .iter()
            .filter_map(|r| if let StreamRow::Pool(i) = *r { Some(i) } else { None })
            .collect();
        assert_eq!(pool.len(), 30, "25% of 40 come from the ood set");
        assert!(pool.iter().all(|i| !d.labeled.contains(i)), "no labelled row in the stream");
        let mut unique = pool.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 30, "pool rows are drawn without replacement");
        assert!(d.stream.iter().all(|r| !matches!(*r, StreamRow::Ood(j) if j >= 7)));
        // the same seed draws the same; another seed draws differently; no ood rows, no ood
        assert_eq!(draw(&spec, &pool_y, 4, 7, 9).unwrap(), d);
        assert_ne!(draw(&spec, &pool_y, 4, 7, 10).unwrap(), d);
        let clean = draw(&spec, &pool_y, 4, 0, 9).unwrap();
        assert!(clean.stream.iter().all(|r| matches!(r, StreamRow::Pool(_))));
        assert_eq!(clean.stream.len(), 40);
        // a class with too few rows is an error, not a short draw
        assert!(draw(&spec, &pool_y[..8], 4, 0, 9).is_err());
    }

    #[test]
    fn a_long_tailed_stream_keeps_each_class_its_share_and_balance_changes_nothing() {
        // 5 classes x 100 pool rows, 2 labelled per class: 98 left per class
        let pool_y: Vec<u32> = (0..500).map(|i| i % 5).collect();
        let spec =
            parse("labels_per_class = 2\nstream_len = 1000\nstream_imbalance = 16\n").unwrap();
        let d = draw(&spec, &pool_y, 5, 0, 4).unwrap();
        let count = |c: u32| {
            d.stream.iter().filter(|r| matches!(**r, StreamRow::Pool(i) if pool_y[i] == c)).count()
        };
        // 98 * 16^(-c/4): 98, 49, 24.5 -> 25 (rounded), 12.25 -> 12, 6.125 -> 6
        assert_eq!([0, 1, 2, 3, 4].map(count), [98, 49, 25, 12, 6]);
        assert_eq!(d.stream.len(), 190, "shorter than stream_len: the pool ran out");
        // the labelled set stays balanced; a ratio of 1 draws exactly what no key draws
        assert_eq!(d.labeled.len(), 10);
        let plain = parse("labels_per_class = 2\nstream_len = 300\n").unwrap();
        let one = parse("labels_per_class = 2\nstream_len = 300\nstream_imbalance = 1\n").unwrap();
        assert_eq!(draw(&one, &pool_y, 5, 0, 4).unwrap(), draw(&plain, &pool_y, 5, 0, 4).unwrap());
        for bad in ["0.5", "nan", "inf"] {
            let e = parse(&format!("stream_imbalance = {bad}\n")).unwrap_err().to_string();
            assert!(e.contains("stream_imbalance"), "{e}");
        }
    }

    #[test]
    fn learner_overrides_apply_to_the_params() {
        let spec = parse("[learner]\nweight_decay = 5e-3\nneighbours = 20\nhidden = 64\n").unwrap();
        let mut p = LearnerParams::new(32, 4);
        let before = p.clone();
        spec.learner.apply(&mut p);
        assert_eq!(p.sgd.weight_decay, 5e-3);
        assert_eq!(p.propagation.neighbours, 20);
        assert_eq!(p.hidden, 64);
        assert_eq!(p.sgd.lr, before.sgd.lr, "absent keys keep the defaults");
        assert_eq!(p.propagation.alpha, before.propagation.alpha);
        assert_eq!(parse("").unwrap().learner, LearnerSection::default());
    }

    #[test]
    fn every_shipped_spec_parses_and_the_map_graph_spec_keeps_its_block_frozen() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
        let mut n = 0;
        for f in std::fs::read_dir(&dir).unwrap() {
            let path = f.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Spec::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                n += 1;
            }
        }
        assert!(n >= 5, "{n} specs");
        let spec = Spec::load(dir.join("fmnist-10-mapgraph.toml")).unwrap();
        let model = spec.base.join(&spec.backbone.model);
        let mut p = LearnerParams::new(5120, 10);
        spec.learner.apply(&mut p);
        p = p.with_adapt(spec.learner.adapt_params(&model, 5120).unwrap().unwrap());
        let a = p.adapt.as_ref().unwrap();
        assert!(a.graph_on_map && !a.trains() && a.positions == 16);
        assert_eq!(p.graph_vote, 0.7);
        assert_eq!((p.graph_dim(), p.feature_dim()), (5120, 1280));
    }

    #[test]
    fn bad_learner_overrides_are_named_errors() {
        for (extra, want) in [
            ("[learner]\nweight_decay = -1.0\n", "weight"),
            ("[learner]\npropagation_alpha = 1.5\n", "alpha"),
            ("[learner]\nneighbours = 0\n", "neighbours"),
            ("[learner]\nmomentum = 0.5\n", "unknown field"),
        ] {
            let e = parse(extra).unwrap_err().to_string();
            assert!(e.contains("t.toml") && e.to_lowercase().contains(want), "{extra}: {e}");
        }
    }
}
