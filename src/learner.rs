//! The learner: what a device runs on every embedding of its stream.
//!
//! ```text
//! observe_labeled(x, y) ── bank (given) ── gate statistics (trusted only)
//! observe(x) ──▶ gate ──rejected──▶ counted, forgotten
//!                  │ accepted
//!                  ▼
//!          teacher pseudo-label ──▶ bank (pseudo, class-balanced reservoir)
//! every sample: `steps_per_sample` learning steps on a replay batch:
//!   B given entries (cross-entropy, label smoothing)
//!   + mu*B admitted entries: teacher on the clean embedding, student on an embedding-space
//!     strong view (noise + dropout), the algorithm's unlabeled loss
//!   -> SGD (Nesterov) on the student, EMA of the student into the teacher
//! ```
//!
//! The learner works on embeddings; [`crate::backbone::Backbone`] produces them (see
//! `examples/quickstart.rs`). Every buffer is allocated in [`LearnerParams::build`]: a
//! steady-state [`Learner::observe`] allocates nothing (tested with a counting allocator).
//!
//! # The gate
//! With a gate ([`LearnerParams::gate`] `Some`), unlabeled samples are first held in a
//! fixed-size warm-up buffer. Once it is full and every class has a given label, the gate is
//! fitted: a tied-covariance Mahalanobis score in a PCA space fitted on the trusted (given) and
//! warm-up embeddings, combined with the embedding's norm (low-norm embeddings are the typical
//! strange input for a frozen ImageNet backbone); each part is z-scored with the trusted
//! samples' own scores and the threshold accepts [`crate::gate::GateParams::target_accept`] of
//! them. The warm-up samples then go through the gate like any other. The gate is refreshed
//! with every new given label, never with pseudo-labels. Until it is fitted, unlabeled samples
//! beyond the warm-up buffer are counted as `deferred` and not learned from.
//!
//! # Features that adapt on the device
//! With [`LearnerParams::with_adapt`] the input rows are feature maps one layer below the
//! embedding, and a trainable block ([`crate::adapt`]) makes the embeddings: the bank stores
//! each entry's embedding (for the head and the graph) and its int8-coded map; every
//! [`crate::adapt::AdaptParams::every`] samples one block step trains the block through the
//! student head's loss on replayed entries; every entry's embedding is recomputed with the
//! block's averaged weights every [`crate::adapt::AdaptParams::refresh_every`] samples and
//! before each graph refresh. The gate scores the embedding of the block's shipped weights, the
//! one it was calibrated on.
//!
//! # Reproducibility, checkpoints and resume
//! Every random choice of an `observe` call draws from an RNG seeded with
//! `(seed, samples observed so far)`, so a learner resumed from a checkpoint continues exactly
//! as one that was never interrupted. With [`LearnerParams::checkpoint`] the learner saves itself
//! every `every` samples (atomically: a power cut leaves the previous or the new state); the
//! steady state allocates nothing between checkpoints.
//!
//! # Examples
//! ```
//! use edge_ssl::learner::{Algorithm, LearnerParams};
//!
//! let mut p = LearnerParams::new(4, 3); // 4-d embeddings, 3 classes
//! p.algorithm = Algorithm::FixMatch;
//! p.gate = None;
//! p.bank_capacity = 64;
//! let mut learner = p.build()?;
//! for (x, y) in [([1.0, 0.0, 0.0, 0.1], 0), ([0.0, 1.0, 0.0, 0.1], 1), ([0.0, 0.0, 1.0, 0.1], 2)] {
//!     learner.observe_labeled(&x, y)?;
//! }
//! for _ in 0..200 {
//!     learner.observe(&[0.9, 0.1, 0.0, 0.1])?;
//! }
//! assert_eq!(learner.predict(&[1.0, 0.0, 0.0, 0.1])?.class, 0);
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use std::path::Path;

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::adapt::{AdaptParams, Block, MapStore, Weights};
use crate::augment::embedding::{EmbeddingAugParams, EmbeddingAugmenter};
use crate::backbone::PointwiseConv;
use crate::bank::{Bank, BankParams, LabelKind};
use crate::error::{Error, Result, check_finite};
use crate::gate::{Admitted, Gate, GateParams, Projection, ZScore};
use crate::head::ema::{Ema, EmaParams, sigmoid_rampup};
use crate::head::linear::LinearParams;
use crate::head::mlp::MlpParams;
use crate::head::optim::{Sgd, SgdParams};
use crate::head::{Grads, Head};
use crate::objective::align::DistributionAlignment;
use crate::objective::divergence::squared_error;
use crate::objective::fixmatch::{
    AdaptiveThreshold, AdaptiveThresholdParams, FixMatch, FixMatchParams, argmax,
    weighted_pseudo_ce,
};
use crate::objective::mixmatch::{MixMatch, MixMatchParams};
use crate::objective::mixup::mix_rows_into;
use crate::objective::softmax::{
    CrossEntropy, CrossEntropyParams, fit_temperature, one_hot_into, softmax_into,
};
use crate::objective::uda::{Uda, UdaParams};
use crate::persist::{Dims, SectionId, StateFile, StateWriter};
use crate::propagate::{Propagation, PropagationParams};

/// The semi-supervised algorithm of a learner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Labels only: the same head, replay and number of steps, no unlabeled loss (the baseline).
    Supervised,
    /// FixMatch (Sohn et al. 2020): hard teacher pseudo-labels above tau train the strong view.
    FixMatch,
    /// FixMatch with the FreeMatch self-adaptive per-class threshold (Wang et al. 2023).
    FlexMatch,
    /// UDA (Xie et al. 2020): KL(sharpened teacher || student strong) above a confidence.
    Uda,
    /// Mean Teacher (Tarvainen & Valpola 2017): squared error between student (strong view) and
    /// teacher (clean) probabilities on every admitted sample.
    MeanTeacher,
    /// MixMatch (Berthelot et al. 2019): the teacher's guesses on K = 2 strong views, averaged
    /// and sharpened (T = 0.5), mixup (alpha 0.75, lambda' = max(lambda, 1 - lambda)) of the
    /// labelled and unlabeled rows, soft cross-entropy on the mixed labelled rows and
    /// lambda_u = 100 times the squared error on the mixed unlabeled rows.
    MixMatch,
    /// Label propagation over the bank (Iscen et al. 2019, with the "smooth" step of
    /// Correct-and-Smooth, Huang et al. 2021; see [`crate::propagate`]): every
    /// [`PropagationParams::every`] samples the teacher's predictions on the bank are propagated
    /// over a kNN graph in a whitened PCA space; the student's strong view is trained on each
    /// entry's propagated class, weighted by certainty x class balance.
    LabelProp,
    /// CoMatch's memory-smoothed pseudo-labels (Li et al. 2021): the teacher's probabilities
    /// blended with the similarity-weighted labels of the entry's bank neighbours,
    /// `q = alpha p + (1 - alpha) sum_j a_j q_j` ([`LearnerParams::comatch_alpha`]), then
    /// FixMatch's threshold on `q`. The neighbours come from the same graph as `LabelProp`.
    /// CoMatch's graph-contrastive term on a projection head is not implemented.
    CoMatch,
}

impl Algorithm {
    /// Every algorithm, baseline first.
    pub const ALL: [Algorithm; 8] = [
        Algorithm::Supervised,
        Algorithm::FixMatch,
        Algorithm::FlexMatch,
        Algorithm::Uda,
        Algorithm::MeanTeacher,
        Algorithm::MixMatch,
        Algorithm::LabelProp,
        Algorithm::CoMatch,
    ];

    /// The name used on the command line and in experiment specs.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Supervised => "supervised",
            Algorithm::FixMatch => "fixmatch",
            Algorithm::FlexMatch => "flexmatch",
            Algorithm::Uda => "uda",
            Algorithm::MeanTeacher => "meanteacher",
            Algorithm::MixMatch => "mixmatch",
            Algorithm::LabelProp => "labelprop",
            Algorithm::CoMatch => "comatch",
        }
    }

    /// True for the algorithms that need the bank's neighbourhood graph.
    pub fn uses_graph(self) -> bool {
        matches!(self, Algorithm::LabelProp | Algorithm::CoMatch)
    }
}

impl Algorithm {
    /// Parses `main[+extra...]`, e.g. `"fixmatch+meanteacher"`, into the main algorithm and the
    /// extra unlabeled losses (see [`LearnerParams::extra`]).
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for an unknown name.
    pub fn parse_combination(s: &str) -> Result<(Algorithm, Vec<Algorithm>)> {
        let mut parts = s.split('+').map(str::parse::<Algorithm>);
        let main = parts
            .next()
            .transpose()?
            .ok_or_else(|| Error::InvalidParam { name: "algorithm", reason: "empty".into() })?;
        Ok((main, parts.collect::<Result<_>>()?))
    }
}

impl std::str::FromStr for Algorithm {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Algorithm::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| Error::InvalidParam {
            name: "algorithm",
            reason: format!(
                "unknown algorithm {s:?} (known: {})",
                Algorithm::ALL.map(Algorithm::name).join(", ")
            ),
        })
    }
}

/// Parameters of a [`Learner`]. [`LearnerParams::new`] gives the defaults listed on each field.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnerParams {
    /// Embedding dimension `D`.
    pub dim: usize,
    /// Number of classes `K` (2..=64).
    pub n_classes: usize,
    /// The algorithm. Default [`Algorithm::LabelProp`]: on Fashion-MNIST (10 labels/class,
    /// 5000-sample stream, 5 seeds, paired) it closed 37% of the labels-only -> oracle gap on a
    /// clean stream and 34% with 30% MNIST behind the gate, against 29% and 30% for
    /// [`Algorithm::FlexMatch`] (the best confidence-based method; FixMatch, UDA, Mean Teacher
    /// and MixMatch closed 8-23% on 3 seeds). See EVALUATION.md.
    pub algorithm: Algorithm,
    /// Further unlabeled losses summed with the main algorithm's in every step (e.g. FixMatch +
    /// Mean Teacher). Default none. Not allowed: `Supervised`, `MixMatch`, the main algorithm
    /// again, duplicates, or any extra when the main algorithm is `MixMatch`.
    pub extra: Vec<Algorithm>,
    /// Hidden width of an MLP head; `0` (default) for a linear head.
    pub hidden: usize,
    /// Bank capacity (entries). Default 4096.
    pub bank_capacity: usize,
    /// Given entries per replay batch `B`. Default 16.
    pub labeled_batch: usize,
    /// Admitted entries per given entry, `mu`. Default 7 (FixMatch).
    pub unlabeled_ratio: usize,
    /// Learning steps per observed sample (labeled or not). Default 1.
    pub steps_per_sample: usize,
    /// Embeddings are L2-normalized and multiplied by this before the head. Default `sqrt(dim)`
    /// (unit mean square per component). Measured on Fashion-MNIST, 10 labels/class, 3 seeds:
    /// scale 4 leaves the head too unsure for FixMatch's tau (no pseudo-label passes), 25 and
    /// `sqrt(1280)` = 35.8 let FixMatch gain (+0.5 and +1.2 points over labels-only).
    pub feature_scale: f32,
    /// Optimizer. Default: FixMatch's SGD with the stronger weight decay 5e-2 that calibrates
    /// heads on frozen features ([`SgdParams::frozen_features`]), constant learning rate.
    pub sgd: SgdParams,
    /// Teacher EMA. Default [`EmaParams::default`] (0.99 then 0.999).
    pub ema: EmaParams,
    /// Cross-entropy on given labels. Default: no label smoothing (smoothing caps the teacher's
    /// confidence below FixMatch's tau = 0.95: with 0.1 over 10 classes the target is 0.91).
    pub cross_entropy: CrossEntropyParams,
    /// FixMatch threshold and weight (tau 0.95, lambda_u 1).
    pub fixmatch: FixMatchParams,
    /// UDA temperature and confidence (0.4, 0.8).
    pub uda: UdaParams,
    /// MixMatch (K = 2, T = 0.5, alpha 0.75, lambda_u 100).
    pub mixmatch: MixMatchParams,
    /// Weight of the Mean Teacher consistency. Default 10 (squared error over K classes is
    /// small; Tarvainen & Valpola use weights up to 100 with a ramp-up).
    pub mean_teacher_weight: f32,
    /// Steps over which the unlabeled loss weight ramps up as `exp(-5 (1 - t)^2)` (Laine &
    /// Aila 2017; Tarvainen & Valpola 2017), so early, unreliable pseudo-labels weigh less.
    /// Default 2000. Measured (seeds 1 and 2): on the camera stream it kept or raised FlexMatch's
    /// gap closed (14% -> 19%, 26% -> 25%); on the small sensor stream (~800 samples, each
    /// replayed ~100 times) it turned a collapse (0.60 vs 0.73 labels-only) into parity.
    pub unlabeled_rampup: u64,
    /// The strong view in embedding space. Default noise 0.1 x RMS, dropout 0.1.
    pub strong_view: EmbeddingAugParams,
    /// The bank's kNN graph and label propagation, used by [`Algorithm::LabelProp`] and
    /// [`Algorithm::CoMatch`]. Default [`PropagationParams::default`] (PCA-128 whitened,
    /// k = 10, alpha = 0.9, refreshed every 500 unlabeled samples).
    pub propagation: PropagationParams,
    /// Weight of the [`Algorithm::LabelProp`] loss. Default 1.
    pub propagation_weight: f32,
    /// CoMatch's memory-smoothing weight `alpha` of the teacher (the neighbours get
    /// `1 - alpha`). Default 0.9 (Li et al. 2021).
    pub comatch_alpha: f32,
    /// Weight `beta` in `[0, 1]` of the bank graph's vote in [`Learner::predict`], for the
    /// learners with a graph ([`LearnerParams::uses_graph`]: [`Algorithm::LabelProp`] or
    /// [`Algorithm::CoMatch`], main or extra; ignored by the others): the prediction is
    /// `(1 - beta) p_teacher + beta v`, where `v` is [`Propagation::vote_into`], the
    /// similarity-weighted class distributions of the sample's
    /// `neighbours` nearest bank entries of the last refresh (given entries vote with their
    /// label, pseudo entries with their propagated distribution). The head and the
    /// non-parametric bank make different errors: their blend beats either. 0: the teacher
    /// alone. Default 0.5; measured (EVALUATION.md, 5 seeds, paired, `labelprop`):
    /// Fashion-MNIST clean +0.71 +- 0.35 points (0.3: +0.46, 0.7: +0.81 +- 0.52, 1 (the vote
    /// alone): -0.16), with 30% OOD behind the gate +0.60 +- 0.17, the sensor task +0.62
    /// without the gate. Costs one projection (`dim x pca_dim`) and a scan of the graph
    /// (`entries x pca_dim`) per prediction: ~0.7 M multiply-adds at the defaults.
    pub graph_vote: f32,
    /// Distribution alignment of the teacher's probabilities on the unlabeled rows before
    /// every unlabeled loss (ReMixMatch; [`DistributionAlignment`]), with this momentum of the
    /// running class distribution; `None` (default) leaves them as they are. Not applied to
    /// MixMatch's guesses.
    pub distribution_alignment: Option<f32>,
    /// Temperature scaling of the teacher (Guo et al. 2017): every this many unlabeled samples,
    /// the temperature `T` that best fits the teacher's logits on the bank's given entries
    /// ([`crate::objective::softmax::fit_temperature`]) divides its logits wherever its
    /// probabilities are used: pseudo-labels and their confidences, the unlabeled losses'
    /// targets and masks, the graph's start labels, and [`Learner::predict`]'s confidence.
    /// `None` (default): `T = 1`. Fitted on the labels the head trains on: on Fashion-MNIST
    /// (1280-d, 10 labels per class) the head separates them perfectly and the fit ends at its
    /// floor `T = 1/20`, i.e. one-hot teacher probabilities. Measured (5 seeds, EVALUATION.md):
    /// FlexMatch -2 points, label propagation +0.28 on a clean stream and -0.49 with 30% OOD.
    pub temperature_scaling: Option<u64>,
    /// The OOD gate; `None` admits every sample. Default: PCA-16, tied covariance, OAS, 95%.
    pub gate: Option<GateParams>,
    /// Unlabeled samples collected before the gate is fitted. Default 512.
    pub gate_warmup: usize,
    /// Seed of every random choice. Default 0.
    pub seed: u64,
    /// Save the state automatically every so many observed samples. Default `None`.
    pub checkpoint: Option<AutoCheckpoint>,
    /// Features that adapt on the device (see [`crate::adapt`]): the learner's input rows
    /// are then feature maps of `adapt.input_dim()` values (`dim`), and a trainable block
    /// turns them into `adapt.output_dim()`-dimensional embeddings for the bank, the head and
    /// the graph; the gate scores the block's shipped-weights embedding. The bank also keeps
    /// every entry's map, int8-coded ([`MapStore`]). Set with [`LearnerParams::with_adapt`].
    /// Default `None` (the input rows are the embeddings). Not with [`Algorithm::MixMatch`].
    pub adapt: Option<AdaptParams>,
}

/// [`LearnerParams::graph_vote`] of [`LearnerParams::with_map_graph`]: chosen on Fashion-MNIST
/// seeds 1-5 (+0.44 +- 0.44 points over 0.5) and held on the fresh seeds 6-10 (+0.43); the
/// library default 0.5 was measured with the graph on the embedding.
pub const MAP_GRAPH_VOTE: f32 = 0.7;

/// Where and how often a learner saves itself (see [`Learner::checkpoint`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoCheckpoint {
    /// The state file.
    pub path: std::path::PathBuf,
    /// Save after every `every` observed samples (labeled or not), `>= 1`.
    pub every: u64,
}

impl LearnerParams {
    /// Defaults for `dim`-dimensional embeddings and `n_classes` classes.
    pub fn new(dim: usize, n_classes: usize) -> Self {
        let mut sgd = SgdParams::frozen_features(1);
        sgd.schedule.decay = crate::head::optim::Decay::Constant;
        sgd.schedule.warmup_steps = 0;
        LearnerParams {
            dim,
            n_classes,
            algorithm: Algorithm::LabelProp,
            extra: Vec::new(),
            hidden: 0,
            bank_capacity: 4096,
            labeled_batch: 16,
            unlabeled_ratio: 7,
            steps_per_sample: 1,
            feature_scale: (dim.max(1) as f32).sqrt(),
            sgd,
            ema: EmaParams::default(),
            cross_entropy: CrossEntropyParams::plain(),
            fixmatch: FixMatchParams::default(),
            uda: UdaParams::default(),
            mixmatch: MixMatchParams::default(),
            mean_teacher_weight: 10.0,
            unlabeled_rampup: 2000,
            strong_view: EmbeddingAugParams::default(),
            propagation: PropagationParams::default(),
            propagation_weight: 1.0,
            comatch_alpha: 0.9,
            graph_vote: 0.5,
            distribution_alignment: None,
            temperature_scaling: None,
            gate: Some(GateParams { projection: Projection::Pca(16), ..GateParams::default() }),
            gate_warmup: 512,
            seed: 0,
            checkpoint: None,
            adapt: None,
        }
    }

    /// These parameters with an adaptive block: `dim` becomes the map size
    /// `adapt.input_dim()` and `feature_scale` the default for the block's embeddings,
    /// `sqrt(adapt.output_dim())`.
    pub fn with_adapt(mut self, adapt: AdaptParams) -> Self {
        self.dim = adapt.input_dim();
        self.feature_scale = (adapt.output_dim().max(1) as f32).sqrt();
        self.adapt = Some(adapt);
        self
    }

    /// These parameters for rows that are feature maps of `dim` values (the backbone's output
    /// one convolution before its embedding, e.g. [`crate::models::CAMERA_LAST_BLOCK`]), with
    /// `conv` the backbone's own last convolution (e.g. [`crate::models::CAMERA_HEAD_CONV`]),
    /// kept frozen: the learner computes the embedding with it for the head, the teacher and
    /// the gate, and builds the bank's graph (label propagation and its vote) on the maps
    /// ([`AdaptParams::frozen_map_graph`]) as [`PropagationParams::maps`] configures it, with
    /// the vote's weight at [`MAP_GRAPH_VOTE`].
    /// The best camera configuration measured: Fashion-MNIST, 10 labels/class, 64.3% of the
    /// labels-only -> oracle gap closed over 15 clean seeds, 64.7% over 5 seeds with 30%
    /// MNIST digits behind the gate and 68.4% on a long-tailed stream (43% with the default
    /// graph on the maps; 31.2% for the graph on the embedding over 10 seeds; EVALUATION.md).
    /// What the default job (`cargo run --release`), the
    /// command's `run` and the C ABI's image input use for the shipped camera model.
    ///
    /// # Errors
    /// As [`AdaptParams::for_rows`].
    ///
    /// # Examples
    /// ```no_run
    /// use edge_ssl::backbone::PointwiseConv;
    /// use edge_ssl::learner::LearnerParams;
    /// use edge_ssl::{Backbone, BackboneSpec, models};
    ///
    /// let spec = BackboneSpec::efficientnet_lite0(112, 1).with_output(models::CAMERA_LAST_BLOCK);
    /// let backbone = Backbone::load(models::CAMERA_INT8, spec)?; // 320 x 4 x 4 maps
    /// let conv = PointwiseConv::read_qdq(models::CAMERA_INT8, models::CAMERA_HEAD_CONV)?;
    /// let params = LearnerParams::new(backbone.embedding_dim(), 10).with_map_graph(conv)?;
    /// assert_eq!((params.dim, params.feature_dim()), (5120, 1280));
    /// # Ok::<(), edge_ssl::Error>(())
    /// ```
    pub fn with_map_graph(mut self, conv: PointwiseConv) -> Result<Self> {
        let a = AdaptParams::for_rows(conv, self.dim)?.frozen_map_graph();
        self.graph_vote = MAP_GRAPH_VOTE;
        self.propagation = PropagationParams::maps(a.positions);
        Ok(self.with_adapt(a))
    }

    /// Dimension of the embeddings the bank, head, gate and graph see: `dim`, or the adaptive
    /// block's output dimension.
    pub fn feature_dim(&self) -> usize {
        self.adapt.as_ref().map_or(self.dim, AdaptParams::output_dim)
    }

    /// True if the algorithm or an extra loss needs the bank's graph ([`Algorithm::uses_graph`]).
    pub fn uses_graph(&self) -> bool {
        self.algorithm.uses_graph() || self.extra.iter().any(|a| a.uses_graph())
    }

    /// The dimension of the rows the bank's graph is built on: the input rows (maps) with
    /// [`AdaptParams::graph_on_map`], else the embeddings ([`LearnerParams::feature_dim`]).
    pub fn graph_dim(&self) -> usize {
        if self.adapt.as_ref().is_some_and(|a| a.graph_on_map) {
            self.dim
        } else {
            self.feature_dim()
        }
    }

    /// Validates every parameter and allocates the learner.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for a zero batch, ratio, step count, feature scale or warm-up
    /// (with a gate), or a warm-up larger than the bank; the component errors of the head,
    /// optimizer, EMA, objectives, augmenter, bank and gate parameters.
    pub fn build(&self) -> Result<Learner> {
        let p = self.clone();
        for (name, v) in [
            ("labeled_batch", p.labeled_batch),
            ("unlabeled_ratio", p.unlabeled_ratio),
            ("steps_per_sample", p.steps_per_sample),
        ] {
            if v == 0 {
                return Err(Error::InvalidParam { name, reason: "must be >= 1".into() });
            }
        }
        for (i, &a) in p.extra.iter().enumerate() {
            if matches!(a, Algorithm::Supervised | Algorithm::MixMatch)
                || a == p.algorithm
                || p.algorithm == Algorithm::MixMatch
                || p.extra[..i].contains(&a)
            {
                return Err(Error::InvalidParam {
                    name: "extra",
                    reason: format!("{} cannot be combined with {}", a.name(), p.algorithm.name()),
                });
            }
        }
        if !(0.0..=1.0).contains(&p.comatch_alpha) {
            return Err(Error::InvalidParam {
                name: "comatch_alpha",
                reason: format!("{} not in [0, 1]", p.comatch_alpha),
            });
        }
        if !(p.propagation_weight.is_finite() && p.propagation_weight >= 0.0) {
            return Err(Error::InvalidParam {
                name: "propagation_weight",
                reason: format!("{} must be finite and >= 0", p.propagation_weight),
            });
        }
        if !(0.0..=1.0).contains(&p.graph_vote) {
            return Err(Error::InvalidParam {
                name: "graph_vote",
                reason: format!("{} not in [0, 1]", p.graph_vote),
            });
        }
        if p.temperature_scaling == Some(0) {
            return Err(Error::InvalidParam {
                name: "temperature_scaling",
                reason: "the refit interval must be >= 1".into(),
            });
        }
        if p.checkpoint.as_ref().is_some_and(|c| c.every == 0) {
            return Err(Error::InvalidParam {
                name: "checkpoint",
                reason: "every must be >= 1".into(),
            });
        }
        if !(p.feature_scale.is_finite() && p.feature_scale > 0.0) {
            return Err(Error::InvalidParam {
                name: "feature_scale",
                reason: format!("{} must be finite and > 0", p.feature_scale),
            });
        }
        if let Some(a) = &p.adapt {
            a.check()?;
            if a.input_dim() != p.dim {
                return Err(Error::InvalidParam {
                    name: "adapt",
                    reason: format!("block input {} != dim {}", a.input_dim(), p.dim),
                });
            }
            if p.algorithm == Algorithm::MixMatch {
                return Err(Error::InvalidParam {
                    name: "adapt",
                    reason: "MixMatch has its own step; the block trains with the others".into(),
                });
            }
        }
        if let Some(g) = &p.gate {
            g.check()?;
            if p.gate_warmup == 0 || p.gate_warmup > p.bank_capacity {
                return Err(Error::InvalidParam {
                    name: "gate_warmup",
                    reason: format!("{} not in 1..=bank_capacity", p.gate_warmup),
                });
            }
        }
        let (d, k) = (p.feature_dim(), p.n_classes);
        let nl = p.labeled_batch;
        let nu = p.labeled_batch * p.unlabeled_ratio;
        let nb = p.adapt.as_ref().map_or(0, |a| a.unlabeled_rows);
        let mut rng = StdRng::seed_from_u64(p.seed);
        let (student, teacher): (Box<dyn Head + Send>, Box<dyn Head + Send>) = if p.hidden == 0 {
            let hp = LinearParams::new(d, k).check()?;
            let s = hp.build(&mut rng);
            let mut t = hp.build(&mut rng);
            t.load_params(s.params())?;
            (Box::new(s), Box::new(t))
        } else {
            let hp = MlpParams::new(d, p.hidden, k, nu.max(nl + nb)).check()?;
            let s = hp.build(&mut rng);
            let mut t = hp.build(&mut rng);
            t.load_params(s.params())?;
            (Box::new(s), Box::new(t))
        };
        let sgd = p.sgd.check()?.build(student.n_params());
        let ema = p.ema.check()?;
        let ce = p.cross_entropy.check()?;
        let fixmatch = p.fixmatch.check()?;
        let uda = p.uda.check()?;
        let mixmatch = p.mixmatch.check()?;
        let adaptive = AdaptiveThresholdParams::new(k).check()?.build();
        let aug = EmbeddingAugmenter::new(p.strong_view.check()?);
        let bank = BankParams::new(p.bank_capacity, d, k).build()?;
        let warmup_cap = if p.gate.is_some() { p.gate_warmup } else { 0 };
        let prop = if p.uses_graph() {
            Some(p.propagation.build(p.bank_capacity, p.graph_dim(), k)?)
        } else {
            None
        };
        let align =
            p.distribution_alignment.map(|m| DistributionAlignment::uniform(k, m)).transpose()?;
        let graph = Graph {
            uses: prop.is_some(),
            comatch: p.algorithm == Algorithm::CoMatch || p.extra.contains(&Algorithm::CoMatch),
        };
        Ok(Learner {
            grads: student.grads(),
            student,
            teacher,
            sgd,
            ema,
            ce,
            fixmatch,
            uda,
            mixmatch,
            adaptive,
            aug,
            bank,
            ood: None,
            prop,
            align,
            warmup: vec![0.0; warmup_cap * p.dim],
            adapt: p.adapt.as_ref().map(|a| Adapt::new(a, p.bank_capacity, nl, k)).transpose()?,
            warmup_len: 0,
            temperature: 1.0,
            calib: p
                .temperature_scaling
                .map(|_| Calibration {
                    logits: vec![0.0; p.bank_capacity * k],
                    labels: vec![0; p.bank_capacity],
                })
                .unwrap_or_default(),
            counters: Counters::default(),
            s: Scratch::new(d, k, nl, nu, p.algorithm == Algorithm::MixMatch, graph),
            p,
        })
    }
}

/// What [`Learner::predict`] says about one embedding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// The teacher's class (with [`LearnerParams::graph_vote`], of the teacher's
    /// probabilities blended with the bank graph's vote).
    pub class: u32,
    /// Its probability (softmax, or the blend).
    pub confidence: f32,
    /// The OOD score (higher is stranger), `None` before the gate is fitted or without a gate.
    pub ood_score: Option<f32>,
    /// True if the gate rejects the sample.
    pub gated: bool,
}

/// What happened to one unlabeled sample in [`Learner::observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Held in the gate's warm-up buffer.
    WarmingUp,
    /// The gate is not fitted yet and the warm-up buffer is full: not learned from.
    Deferred,
    /// Rejected by the gate: counted, never pseudo-labelled, never in the bank.
    Gated,
    /// Admitted and pseudo-labelled with this class.
    Admitted(u32),
}

/// Running counts of a learner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Labeled samples observed.
    pub labeled: u64,
    /// Unlabeled samples observed.
    pub unlabeled: u64,
    /// Unlabeled samples the gate rejected.
    pub gated: u64,
    /// Unlabeled samples admitted (pseudo-labelled).
    pub admitted: u64,
    /// Unlabeled samples deferred (gate not fitted, warm-up full).
    pub deferred: u64,
    /// Learning steps taken.
    pub steps: u64,
    /// Unlabeled rows that passed the algorithm's confidence mask, summed over steps.
    pub masked_in: u64,
}

impl Counters {
    const LEN: usize = 7;

    fn to_array(self) -> [u64; Self::LEN] {
        [
            self.labeled,
            self.unlabeled,
            self.gated,
            self.admitted,
            self.deferred,
            self.steps,
            self.masked_in,
        ]
    }

    fn from_slice(v: &[u64]) -> Self {
        Counters {
            labeled: v[0],
            unlabeled: v[1],
            gated: v[2],
            admitted: v[3],
            deferred: v[4],
            steps: v[5],
            masked_in: v[6],
        }
    }
}

/// The fitted OOD gate: Mahalanobis in a PCA space plus the negative norm, each z-scored on the
/// trusted samples.
#[derive(Debug, Clone)]
struct Ood {
    gate: Gate,
    /// Standardization of the Mahalanobis score on the trusted samples.
    maha: ZScore,
    /// Standardization of `-norm` on the trusted samples.
    norm: ZScore,
    threshold: f32,
}

fn neg_norm(x: &[f32]) -> f32 {
    -x.iter().map(|v| v * v).sum::<f32>().sqrt()
}

impl Ood {
    fn combined(&self, maha: f32, x: &[f32]) -> f32 {
        self.maha.apply(maha) + self.norm.apply(neg_norm(x))
    }

    fn score(&self, x: &[f32]) -> Result<f32> {
        Ok(self.combined(self.gate.score(x)?, x))
    }

    /// Z-statistics and threshold from the trusted embeddings.
    fn calibrate(gate: Gate, trusted: &[f32], dim: usize, accept: f64) -> Result<Ood> {
        let n = trusted.len() / dim;
        let mut maha = vec![0f32; n];
        gate.score_into(trusted, &mut maha)?;
        let norms: Vec<f32> = trusted.chunks_exact(dim).map(neg_norm).collect();
        let mut ood = Ood {
            gate,
            maha: ZScore::fit(&maha),
            norm: ZScore::fit(&norms),
            threshold: f32::INFINITY,
        };
        let mut combined: Vec<f32> =
            trusted.chunks_exact(dim).zip(&maha).map(|(r, &m)| ood.combined(m, r)).collect();
        combined.sort_by(f32::total_cmp);
        let at = ((accept * n as f64).ceil() as usize).clamp(1, n) - 1;
        ood.threshold = combined[at];
        Ok(ood)
    }
}

/// Buffers of one learning step, allocated once.
#[derive(Debug, Clone)]
struct Scratch {
    xl: Vec<f32>,
    yl: Vec<u32>,
    xu: Vec<f32>,
    yu: Vec<u32>,
    xs: Vec<f32>,
    logits_l: Vec<f32>,
    dlog_l: Vec<f32>,
    logits_t: Vec<f32>,
    probs_t: Vec<f32>,
    logits_s: Vec<f32>,
    dlog_u: Vec<f32>,
    dlog_tmp: Vec<f32>,
    /// The current sample's clean and input-space strong features, used in row 0 while
    /// `pending` (only during [`Learner::observe_with_view`]).
    pending_weak: Vec<f32>,
    pending_strong: Vec<f32>,
    pending: bool,
    one: Vec<f32>,
    one_logits: Vec<f32>,
    one_probs: Vec<f32>,
    /// The graph's vote in [`Learner::predict`].
    vote: Vec<f32>,
    /// MixMatch only (empty otherwise): second view, its probabilities, the guesses, the
    /// concatenated batch W, its targets, their mixed versions, the partners.
    xs2: Vec<f32>,
    probs2: Vec<f32>,
    guess: Vec<f32>,
    w: Vec<f32>,
    wt: Vec<f32>,
    mixed: Vec<f32>,
    mixed_t: Vec<f32>,
    partner: Vec<usize>,
    /// Graph algorithms only (empty otherwise): the slots of the unlabeled rows, their
    /// propagated classes and weights, and (CoMatch) the memory-smoothed probabilities.
    su: Vec<u32>,
    prop_y: Vec<u32>,
    prop_w: Vec<f32>,
    smoothed: Vec<f32>,
}

/// Which graph buffers a learner needs.
#[derive(Debug, Clone, Copy)]
struct Graph {
    uses: bool,
    comatch: bool,
}

impl Scratch {
    fn new(d: usize, k: usize, nl: usize, nu: usize, mixmatch: bool, graph: Graph) -> Self {
        let m = usize::from(mixmatch);
        let n = nl + nu;
        let g = usize::from(graph.uses);
        Scratch {
            su: vec![0; g * nu],
            prop_y: vec![0; g * nu],
            prop_w: vec![0.0; g * nu],
            smoothed: vec![0.0; usize::from(graph.comatch) * nu * k],
            xs2: vec![0.0; m * nu * d],
            probs2: vec![0.0; m * nu * k],
            guess: vec![0.0; m * nu * k],
            w: vec![0.0; m * n * d],
            wt: vec![0.0; m * n * k],
            mixed: vec![0.0; m * n * d],
            mixed_t: vec![0.0; m * n * k],
            partner: vec![0; m * n],
            xl: vec![0.0; nl * d],
            yl: vec![0; nl],
            xu: vec![0.0; nu * d],
            yu: vec![0; nu],
            xs: vec![0.0; nu * d],
            logits_l: vec![0.0; nl * k],
            dlog_l: vec![0.0; nl * k],
            logits_t: vec![0.0; nu * k],
            probs_t: vec![0.0; nu * k],
            logits_s: vec![0.0; nu * k],
            dlog_u: vec![0.0; nu * k],
            dlog_tmp: vec![0.0; nu * k],
            pending_weak: vec![0.0; d],
            pending_strong: vec![0.0; d],
            pending: false,
            one: vec![0.0; d],
            one_logits: vec![0.0; k],
            one_probs: vec![0.0; k],
            vote: vec![0.0; k],
        }
    }
}

/// A semi-supervised learner over embeddings. Build with [`LearnerParams::build`].
pub struct Learner {
    p: LearnerParams,
    student: Box<dyn Head + Send>,
    teacher: Box<dyn Head + Send>,
    grads: Grads,
    sgd: Sgd,
    ema: Ema,
    ce: CrossEntropy,
    fixmatch: FixMatch,
    uda: Uda,
    mixmatch: MixMatch,
    adaptive: AdaptiveThreshold,
    aug: EmbeddingAugmenter,
    bank: Bank,
    ood: Option<Ood>,
    prop: Option<Propagation>,
    align: Option<DistributionAlignment>,
    warmup: Vec<f32>,
    warmup_len: usize,
    /// The teacher's temperature (1 unless [`LearnerParams::temperature_scaling`]).
    temperature: f32,
    calib: Calibration,
    counters: Counters,
    s: Scratch,
    adapt: Option<Adapt>,
}

/// The adaptive block, the bank's maps and the buffers of a block step, allocated once.
#[derive(Debug, Clone)]
struct Adapt {
    block: Block,
    maps: MapStore,
    /// The gate's (shipped weights) and the bank's (current weights) embedding of one row.
    fe: Vec<f32>,
    cf: Vec<f32>,
    /// A block step's rows (`labeled_batch` given, then up to `unlabeled_rows` pseudo): slots,
    /// labels, maps, embeddings, head inputs, logits and gradients.
    slots: Vec<u32>,
    y: Vec<u32>,
    x: Vec<f32>,
    e: Vec<f32>,
    h: Vec<f32>,
    logits: Vec<f32>,
    dlog: Vec<f32>,
    dh: Vec<f32>,
    /// The pseudo rows' teacher logits and probabilities, graph targets, a second gradient.
    logits_t: Vec<f32>,
    probs_t: Vec<f32>,
    prop_y: Vec<u32>,
    prop_w: Vec<f32>,
    smoothed: Vec<f32>,
    dlog_tmp: Vec<f32>,
    /// Every occupied slot (the embedding refresh).
    all: Vec<u32>,
    /// Observed samples (labelled + unlabeled) at the last embedding refresh.
    refreshed_at: u64,
}

impl Adapt {
    fn new(a: &AdaptParams, capacity: usize, nl: usize, k: usize) -> Result<Adapt> {
        let (nb, fd, dim) = (a.unlabeled_rows, a.output_dim(), a.input_dim());
        let n = nl + nb;
        Ok(Adapt {
            block: a.build(n)?,
            maps: MapStore::new(capacity, dim),
            fe: vec![0.0; fd],
            cf: vec![0.0; fd],
            slots: vec![0; n],
            y: vec![0; n],
            x: vec![0.0; n * dim],
            e: vec![0.0; n * fd],
            h: vec![0.0; n * fd],
            logits: vec![0.0; n * k],
            dlog: vec![0.0; n * k],
            dh: vec![0.0; n * fd],
            logits_t: vec![0.0; nb * k],
            probs_t: vec![0.0; nb * k],
            prop_y: vec![0; nb],
            prop_w: vec![0.0; nb],
            smoothed: vec![0.0; nb * k],
            dlog_tmp: vec![0.0; nb * k],
            all: vec![0; capacity],
            refreshed_at: u64::MAX,
        })
    }
}

/// Buffers of the temperature fit, allocated for the bank's capacity (empty when off).
#[derive(Debug, Default)]
struct Calibration {
    logits: Vec<f32>,
    labels: Vec<u32>,
}

impl std::fmt::Debug for Learner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Learner")
            .field("params", &self.p)
            .field("counters", &self.counters)
            .field("bank_len", &self.bank.len())
            .field("gate_fitted", &self.ood.is_some())
            .finish_non_exhaustive()
    }
}

/// L2-normalizes `x` into `out` and scales it.
fn features_into(x: &[f32], scale: f32, out: &mut [f32]) {
    let n = x.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    out.iter_mut().zip(x).for_each(|(o, v)| *o = v / n * scale);
}

fn features_rows(x: &mut [f32], d: usize, scale: f32) {
    for row in x.chunks_exact_mut(d) {
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v = *v / n * scale);
    }
}

/// Writes the unlabeled loss gradient of `alg` into `out` (`[n, k]`) and returns how many rows
/// its mask selected. `(probs_t, logits_t, logits_s)`: teacher probabilities and logits on the
/// clean rows, student logits on the strong views.
#[allow(clippy::too_many_arguments)]
fn unlabeled_grad(
    alg: Algorithm,
    fixmatch: &FixMatch,
    adaptive: &mut AdaptiveThreshold,
    uda: &Uda,
    mean_teacher_weight: f32,
    (probs_t, logits_t, logits_s): (&[f32], &[f32], &[f32]),
    (prop_y, prop_w, propagation_weight, smoothed): (&[u32], &[f32], f32, &[f32]),
    k: usize,
    out: &mut [f32],
) -> Result<usize> {
    Ok(match alg {
        Algorithm::Supervised => {
            out.fill(0.0);
            0
        }
        Algorithm::FixMatch => fixmatch.unlabeled_loss(probs_t, logits_s, k, out)?.selected,
        Algorithm::FlexMatch => {
            adaptive.update(probs_t)?;
            adaptive.unlabeled_loss(probs_t, logits_s, out)?.selected
        }
        Algorithm::Uda => uda.unlabeled_loss(logits_t, logits_s, k, out)?.selected,
        Algorithm::MeanTeacher => {
            squared_error(logits_s, probs_t, k, out)?;
            out.iter_mut().for_each(|g| *g *= mean_teacher_weight);
            out.len() / k
        }
        Algorithm::LabelProp => {
            weighted_pseudo_ce(prop_y, prop_w, logits_s, k, propagation_weight, out)?.selected
        }
        Algorithm::CoMatch => fixmatch.unlabeled_loss(smoothed, logits_s, k, out)?.selected,
        Algorithm::MixMatch => {
            return Err(Error::InvalidParam {
                name: "algorithm",
                reason: "MixMatch has its own step and cannot be combined".into(),
            });
        }
    })
}

/// The gradients of the main algorithm's unlabeled loss plus every extra one's, summed into
/// `out` (`tmp`: a buffer of the same size); returns the rows their masks selected.
fn all_unlabeled_grads(
    p: &LearnerParams,
    (fixmatch, adaptive, uda): (&FixMatch, &mut AdaptiveThreshold, &Uda),
    teacher_student: (&[f32], &[f32], &[f32]),
    (prop_y, prop_w, smoothed): (&[u32], &[f32], &[f32]),
    out: &mut [f32],
    tmp: &mut [f32],
) -> Result<usize> {
    let mut selected = 0;
    for (i, &alg) in std::iter::once(&p.algorithm).chain(&p.extra).enumerate() {
        selected += unlabeled_grad(
            alg,
            fixmatch,
            adaptive,
            uda,
            p.mean_teacher_weight,
            teacher_student,
            (prop_y, prop_w, p.propagation_weight, smoothed),
            p.n_classes,
            if i == 0 { &mut *out } else { &mut *tmp },
        )?;
        if i > 0 {
            out.iter_mut().zip(&*tmp).for_each(|(a, b)| *a += b);
        }
    }
    Ok(selected)
}

/// Recomputes every bank entry's embedding from its stored map with the block's `weights`.
fn embed_bank(a: &mut Adapt, bank: &mut Bank, dim: usize, weights: Weights) -> Result<()> {
    let n = bank.len();
    for (o, e) in a.all.iter_mut().zip(bank.iter()) {
        *o = e.slot() as u32;
    }
    let (fd, rows) = (a.block.params().output_dim(), a.block.max_rows());
    for chunk in a.all[..n].chunks(rows) {
        let m = chunk.len();
        for (&slot, x) in chunk.iter().zip(a.x.chunks_exact_mut(dim)) {
            a.maps.get_into(slot as usize, x);
        }
        a.block.forward_into(&a.x[..m * dim], &mut a.e[..m * fd], weights)?;
        for (&slot, e) in chunk.iter().zip(a.e.chunks_exact(fd)) {
            bank.set_embedding(slot as usize, e)?;
        }
    }
    Ok(())
}

/// The graph's view of the sampled unlabeled rows in `slots`: their propagated targets
/// (LabelProp) and memory-smoothed probabilities (CoMatch; `smoothed` empty if unused) from the
/// teacher's `probs_t`. A row 0 replaced by the current sample (`pending`) has neither: its
/// target is masked and its smoothed probabilities are the teacher's.
#[allow(clippy::too_many_arguments)]
fn graph_rows(
    (prop, bank, alpha, k): (&Propagation, &Bank, f32, usize),
    slots: &[u32],
    pending: bool,
    probs_t: &[f32],
    prop_y: &mut [u32],
    prop_w: &mut [f32],
    smoothed: &mut [f32],
) {
    for (i, &slot) in slots.iter().enumerate() {
        let own = !(pending && i == 0);
        let (c, w) = prop.target(bank, slot as usize).filter(|_| own).unwrap_or((0, 0.0));
        prop_y[i] = c;
        prop_w[i] = w;
        if smoothed.is_empty() {
            continue;
        }
        let (p, q) = (&probs_t[i * k..(i + 1) * k], &mut smoothed[i * k..(i + 1) * k]);
        match prop.memory(bank, slot as usize).filter(|_| own) {
            Some(m) => {
                q.iter_mut()
                    .zip(p)
                    .zip(m)
                    .for_each(|((q, &p), &m)| *q = alpha * p + (1.0 - alpha) * m);
            }
            None => q.copy_from_slice(p),
        }
    }
}

impl Learner {
    /// The parameters this learner was built with.
    pub fn params(&self) -> &LearnerParams {
        &self.p
    }

    /// Running counts.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The memory bank.
    pub fn bank(&self) -> &Bank {
        &self.bank
    }

    /// The label propagation over the bank, for the graph algorithms
    /// ([`LearnerParams::uses_graph`]).
    pub fn propagation(&self) -> Option<&Propagation> {
        self.prop.as_ref()
    }

    /// The adaptive block, if the learner has one ([`LearnerParams::adapt`]).
    pub fn block(&self) -> Option<&Block> {
        self.adapt.as_ref().map(|a| &a.block)
    }

    /// The input row kept for the bank entry in `slot`: its embedding, or (with an adaptive
    /// block) its int8-coded map. Compare with [`Learner::stored_form_into`] of a row to find
    /// which row an entry came from.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] (`slot`) for an empty slot; [`Error::ShapeMismatch`] if
    /// `out.len() != dim`.
    pub fn stored_row_into(&self, slot: usize, out: &mut [f32]) -> Result<()> {
        let Some(e) = self.bank.entry(slot) else {
            return Err(Error::InvalidParam {
                name: "slot",
                reason: format!("slot {slot} holds no entry"),
            });
        };
        if out.len() != self.p.dim {
            return Err(Error::ShapeMismatch {
                op: "Learner::stored_row_into",
                expected: format!("{} values", self.p.dim),
                got: format!("{} values", out.len()),
            });
        }
        match &self.adapt {
            None => e.embedding_into(out),
            Some(a) => {
                a.maps.get_into(slot, out);
                Ok(())
            }
        }
    }

    /// The input row `x` as [`Learner::stored_row_into`] returns it once stored (a copy, or
    /// with an adaptive block its int8 round trip).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless `x` and `out` have `dim` values.
    pub fn stored_form_into(&self, x: &[f32], out: &mut [f32]) -> Result<()> {
        if x.len() != self.p.dim || out.len() != self.p.dim {
            return Err(Error::ShapeMismatch {
                op: "Learner::stored_form_into",
                expected: format!("{} values", self.p.dim),
                got: format!("{} and {} values", x.len(), out.len()),
            });
        }
        match &self.adapt {
            None => out.copy_from_slice(x),
            Some(_) => MapStore::stored_form(x, out),
        }
        Ok(())
    }

    /// True once the OOD gate is fitted (always false without a gate).
    pub fn gate_fitted(&self) -> bool {
        self.ood.is_some()
    }

    /// The gate's threshold on [`Prediction::ood_score`], once fitted.
    pub fn gate_threshold(&self) -> Option<f32> {
        self.ood.as_ref().map(|o| o.threshold)
    }

    fn rng(&self) -> StdRng {
        let n = self.counters.labeled + self.counters.unlabeled;
        StdRng::seed_from_u64(self.p.seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn check_row(&self, op: &'static str, x: &[f32]) -> Result<()> {
        if x.len() != self.p.dim {
            return Err(Error::ShapeMismatch {
                op,
                expected: format!("{} values", self.p.dim),
                got: format!("{} values", x.len()),
            });
        }
        check_finite(op, x)
    }

    /// Learns from one labelled embedding: stores it in the bank as a given label, adds it to
    /// the gate's trusted statistics, and takes `steps_per_sample` steps.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] / [`Error::NonFinite`] for a bad embedding,
    /// [`Error::InvalidParam`] for a label `>= n_classes`; the learner is untouched then.
    pub fn observe_labeled(&mut self, x: &[f32], label: u32) -> Result<()> {
        self.check_row("Learner::observe_labeled", x)?;
        if label as usize >= self.p.n_classes {
            return Err(Error::InvalidParam {
                name: "label",
                reason: format!("{label} >= n_classes {}", self.p.n_classes),
            });
        }
        let mut rng = self.rng();
        self.counters.labeled += 1;
        self.with_embeddings(x, false, |l, fe, cf| {
            let slot = l.bank.insert_given(cf, label, &mut rng)?.slot();
            if let (Some(a), Some(slot)) = (&mut l.adapt, slot) {
                a.maps.put(slot, x);
            }
            if let Some(ood) = &mut l.ood {
                ood.gate.update(fe, label)?;
                ood.gate.refit()?;
            }
            Ok(())
        })?;
        self.learn(&mut rng)?;
        self.auto_checkpoint()
    }

    /// Runs `f` with the gate's and the bank's embedding of the input row `x`: `x` itself
    /// for both without an adaptive block; with one, the block's embeddings with its shipped
    /// and its averaged weights. The shipped one is computed only once the gate is fitted or,
    /// in `predict` (`predicting`), when the graph's vote reads it (else nothing uses it and
    /// `f` gets an empty slice). Allocation-free.
    fn with_embeddings<T>(
        &mut self,
        x: &[f32],
        predicting: bool,
        f: impl FnOnce(&mut Self, &[f32], &[f32]) -> Result<T>,
    ) -> Result<T> {
        let gate = self.ood.is_some() || (predicting && self.vote_on_shipped());
        let Some(a) = &mut self.adapt else { return f(self, x, x) };
        let (mut fe, mut cf) = (std::mem::take(&mut a.fe), std::mem::take(&mut a.cf));
        let shipped =
            if gate { a.block.forward_into(x, &mut fe, Weights::Shipped) } else { Ok(()) };
        let r = shipped
            .and_then(|()| a.block.forward_into(x, &mut cf, Weights::Average))
            .and_then(|()| f(self, if gate { &fe } else { &[] }, &cf));
        let a = self.adapt.as_mut().expect("the block stays");
        (a.fe, a.cf) = (fe, cf);
        r
    }

    /// True if [`Learner::predict`]'s graph vote reads the shipped block's embedding (the graph
    /// is built on it: [`AdaptParams::graph_on_shipped`]).
    fn vote_on_shipped(&self) -> bool {
        self.p.graph_vote > 0.0
            && self.prop.is_some()
            && self.adapt.as_ref().is_some_and(|a| a.block.params().graph_on_shipped_weights())
    }

    /// Saves the state if an [`AutoCheckpoint`] is due (allocates while writing the file).
    fn auto_checkpoint(&self) -> Result<()> {
        if let Some(c) = &self.p.checkpoint
            && (self.counters.labeled + self.counters.unlabeled).is_multiple_of(c.every)
        {
            self.checkpoint(&c.path)?;
        }
        Ok(())
    }

    /// Learns from one unlabeled embedding (see the module docs for what happens to it).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] / [`Error::NonFinite`] for a bad embedding; the learner is
    /// untouched then.
    pub fn observe(&mut self, x: &[f32]) -> Result<Outcome> {
        self.observe_inner(x, None)
    }

    /// Like [`Learner::observe`], with the embedding of an input-space strong view of the same
    /// sample (e.g. RandAugment of the frame, one more backbone pass; see
    /// [`crate::device::Device::with_strong_views`]). If the sample is admitted, the learning
    /// steps of this call put it in row 0 of the unlabeled batch: the teacher sees `x`, the
    /// student `x_strong` (FixMatch's weak/strong pair). Replayed rows keep embedding-space views.
    ///
    /// # Errors
    /// As [`Learner::observe`], for either embedding; the learner is untouched then.
    pub fn observe_with_view(&mut self, x: &[f32], x_strong: &[f32]) -> Result<Outcome> {
        self.check_row("Learner::observe_with_view(strong)", x_strong)?;
        self.observe_inner(x, Some(x_strong))
    }

    fn observe_inner(&mut self, x: &[f32], strong: Option<&[f32]>) -> Result<Outcome> {
        self.check_row("Learner::observe", x)?;
        let mut rng = self.rng();
        self.counters.unlabeled += 1;
        let outcome = if self.p.gate.is_none() {
            self.with_embeddings(x, false, |l, _, cf| l.admit(Admitted::ungated(cf), x, &mut rng))?
        } else if self.ood.is_some() {
            self.gate_and_admit(x, &mut rng)?
        } else if self.warmup_len * self.p.dim < self.warmup.len() {
            let d = self.p.dim;
            self.warmup[self.warmup_len * d..(self.warmup_len + 1) * d].copy_from_slice(x);
            self.warmup_len += 1;
            self.try_fit_gate(&mut rng)?;
            Outcome::WarmingUp
        } else {
            self.try_fit_gate(&mut rng)?;
            self.counters.deferred += 1;
            Outcome::Deferred
        };
        let pending = matches!(outcome, Outcome::Admitted(_)) && strong.is_some();
        if let (true, Some(xs)) = (pending, strong) {
            let (scale, s) = (self.p.feature_scale, &mut self.s);
            match &mut self.adapt {
                None => {
                    features_into(x, scale, &mut s.pending_weak);
                    features_into(xs, scale, &mut s.pending_strong);
                }
                Some(a) => {
                    a.block.forward_into(x, &mut a.cf, Weights::Average)?;
                    features_into(&a.cf, scale, &mut s.pending_weak);
                    a.block.forward_into(xs, &mut a.cf, Weights::Average)?;
                    features_into(&a.cf, scale, &mut s.pending_strong);
                }
            }
        }
        self.s.pending = pending;
        if let Some(every) = self.p.temperature_scaling
            && self.counters.unlabeled.is_multiple_of(every)
        {
            self.refit_temperature()?;
        }
        if let Some(every) = self.prop.as_ref().map(|p| p.params().every)
            && self.counters.unlabeled.is_multiple_of(every)
        {
            self.refresh_embeddings()?;
            self.refresh_propagation()?;
        }
        let learned = self.learn(&mut rng);
        self.s.pending = false;
        learned?;
        self.auto_checkpoint()?;
        Ok(outcome)
    }

    /// Gates the input row `x` and admits it if the gate accepts it.
    fn gate_and_admit(&mut self, x: &[f32], rng: &mut StdRng) -> Result<Outcome> {
        self.with_embeddings(x, false, |l, fe, cf| {
            let ood = l.ood.as_mut().expect("gate fitted");
            let score = ood.score(fe)?;
            if score.is_nan() || score > ood.threshold {
                l.counters.gated += 1;
                return Ok(Outcome::Gated);
            }
            // The gate's own Mahalanobis verdict is replaced by the combined score above; the
            // sample is admitted as scored by this gate.
            l.admit(Admitted::scored(cf, score), x, rng)
        })
    }

    /// The teacher's top class and its probability for one embedding (allocation-free).
    fn teacher_top(&mut self, x: &[f32]) -> Result<(usize, f32)> {
        let s = &mut self.s;
        features_into(x, self.p.feature_scale, &mut s.one);
        self.teacher.forward_into(&s.one, &mut s.one_logits)?;
        softmax_into(&s.one_logits, self.p.n_classes, self.temperature, &mut s.one_probs)?;
        Ok(argmax(&s.one_probs))
    }

    /// Scales the unlabeled gradient by the sigmoid ramp-up at the current step.
    fn ramp_unlabeled(dlog_u: &mut [f32], steps: u64, rampup: u64) {
        let ramp = sigmoid_rampup(steps, rampup);
        if ramp < 1.0 {
            dlog_u.iter_mut().for_each(|g| *g *= ramp);
        }
    }

    /// Pseudo-labels the admitted embedding and offers it to the bank (with its input row
    /// `x`, the map an adaptive block keeps).
    fn admit(&mut self, a: Admitted<'_>, x: &[f32], rng: &mut StdRng) -> Result<Outcome> {
        let (class, conf) = self.teacher_top(a.embedding())?;
        let slot = self.bank.insert_pseudo(a, class as u32, conf, rng)?.slot();
        if let (Some(ad), Some(slot)) = (&mut self.adapt, slot) {
            ad.maps.put(slot, x);
        }
        self.counters.admitted += 1;
        Ok(Outcome::Admitted(class as u32))
    }

    /// Rebuilds the bank's graph and propagates the teacher's predictions (allocation-free).
    fn refresh_propagation(&mut self) -> Result<()> {
        let Some(prop) = &mut self.prop else { return Ok(()) };
        let (teacher, s) = (&mut self.teacher, &mut self.s);
        let (scale, k, t) = (self.p.feature_scale, self.p.n_classes, self.temperature);
        let shipped =
            self.adapt.as_ref().is_some_and(|a| a.block.params().graph_on_shipped_weights());
        if let Some(a) = self.adapt.as_mut().filter(|a| a.block.params().graph_on_map) {
            // The graph on the stored maps, the start labels from the bank's embeddings.
            let (bank, maps, e) = (&self.bank, &a.maps, &mut a.cf);
            prop.refresh_on(
                bank,
                |slot, out| {
                    maps.get_into(slot, out);
                    Ok(())
                },
                |slot, _, probs| {
                    bank.entry(slot).expect("slot from bank.iter").embedding_into(e)?;
                    features_into(e, scale, &mut s.one);
                    teacher.forward_into(&s.one, &mut s.one_logits)?;
                    softmax_into(&s.one_logits, k, t, probs)
                },
            )?;
            return Ok(());
        }
        if !shipped {
            prop.refresh(&self.bank, |x, probs| {
                features_into(x, scale, &mut s.one);
                teacher.forward_into(&s.one, &mut s.one_logits)?;
                softmax_into(&s.one_logits, k, t, probs)
            })?;
            return Ok(());
        }
        // The graph on the shipped embeddings, the start labels from the adapted ones.
        let a = self.adapt.as_mut().expect("checked above");
        embed_bank(a, &mut self.bank, self.p.dim, Weights::Shipped)?;
        let dim = self.p.dim;
        prop.refresh_by_slot(&self.bank, |slot, _, probs| {
            a.maps.get_into(slot, &mut a.x[..dim]);
            a.block.forward_into(&a.x[..dim], &mut a.cf, Weights::Average)?;
            features_into(&a.cf, scale, &mut s.one);
            teacher.forward_into(&s.one, &mut s.one_logits)?;
            softmax_into(&s.one_logits, k, t, probs)
        })?;
        embed_bank(a, &mut self.bank, self.p.dim, Weights::Average)
    }

    /// Recomputes every bank entry's embedding from its map with the adaptive block's averaged
    /// weights (allocation-free; nothing without a block, or if done at this sample already).
    fn refresh_embeddings(&mut self) -> Result<()> {
        let seen = self.counters.labeled + self.counters.unlabeled;
        let Some(a) =
            self.adapt.as_mut().filter(|a| a.refreshed_at != seen && a.block.params().trains())
        else {
            return Ok(());
        };
        embed_bank(a, &mut self.bank, self.p.dim, Weights::Average)?;
        a.refreshed_at = seen;
        Ok(())
    }

    /// Refits the teacher's temperature on the bank's given entries (allocation-free).
    fn refit_temperature(&mut self) -> Result<()> {
        let (d, scale, k) = (self.p.feature_dim(), self.p.feature_scale, self.p.n_classes);
        let (c, s) = (&mut self.calib, &mut self.s);
        let mut n = 0;
        for e in self.bank.iter().filter(|e| e.kind() == LabelKind::Given) {
            e.embedding_into(&mut s.one)?;
            features_rows(&mut s.one, d, scale);
            self.teacher.forward_into(&s.one, &mut c.logits[n * k..(n + 1) * k])?;
            c.labels[n] = e.label();
            n += 1;
        }
        if n > 0 {
            self.temperature = fit_temperature(&c.logits[..n * k], &c.labels[..n], k)?;
        }
        Ok(())
    }

    /// The teacher's temperature: 1, or the last fit of [`LearnerParams::temperature_scaling`].
    pub fn temperature(&self) -> f32 {
        self.temperature
    }

    /// Fits the gate once the warm-up buffer is full and every class has a given label.
    fn try_fit_gate(&mut self, rng: &mut StdRng) -> Result<()> {
        let (dim, d, k) = (self.p.dim, self.p.feature_dim(), self.p.n_classes);
        let Some(params) = self.p.gate else { return Ok(()) };
        if self.warmup_len * dim < self.warmup.len()
            || (0..k as u32).any(|c| self.bank.count(c, LabelKind::Given) == 0)
        {
            return Ok(());
        }
        let given: Vec<(Vec<f32>, u32, usize)> = self
            .bank
            .iter()
            .filter(|e| e.kind() == LabelKind::Given)
            .map(|e| {
                let mut v = vec![0f32; d];
                e.embedding_into(&mut v).map(|()| (v, e.label(), e.slot()))
            })
            .collect::<Result<_>>()?;
        if given.len() <= k {
            return Ok(());
        }
        let mut x: Vec<f32> = given.iter().flat_map(|(v, _, _)| v.iter().copied()).collect();
        let y: Vec<u32> = given.iter().map(|(_, l, _)| *l).collect();
        let warm = &self.warmup[..self.warmup_len * dim];
        let warm_fe: std::borrow::Cow<'_, [f32]> = match &mut self.adapt {
            None => warm.into(),
            Some(a) => {
                // The gate sees the shipped block's embeddings, of the stored maps too.
                let mut map = vec![0f32; dim];
                for ((_, _, slot), xe) in given.iter().zip(x.chunks_exact_mut(d)) {
                    a.maps.get_into(*slot, &mut map);
                    a.block.forward_into(&map, xe, Weights::Shipped)?;
                }
                let mut fe = vec![0f32; self.warmup_len * d];
                a.block.forward_into(warm, &mut fe, Weights::Shipped)?;
                fe.into()
            }
        };
        let gate = params.fit(&x, d, &y, k, &warm_fe)?;
        self.ood = Some(Ood::calibrate(gate, &x, d, params.target_accept)?);
        let held = std::mem::take(&mut self.warmup);
        for row in held[..self.warmup_len * dim].chunks_exact(dim) {
            match self.gate_and_admit(row, rng)? {
                Outcome::Gated | Outcome::Admitted(_) => {}
                Outcome::WarmingUp | Outcome::Deferred => unreachable!("gate is fitted"),
            }
        }
        self.warmup_len = 0;
        Ok(())
    }

    /// The teacher's prediction (blended with the bank graph's vote for the graph algorithms,
    /// see [`LearnerParams::graph_vote`]) and the gate's verdict for one embedding.
    /// Allocation-free.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] / [`Error::NonFinite`] for a bad embedding.
    pub fn predict(&mut self, x: &[f32]) -> Result<Prediction> {
        self.check_row("Learner::predict", x)?;
        self.with_embeddings(x, true, |l, fe, cf| {
            let (mut class, mut confidence) = l.teacher_top(cf)?;
            let (beta, shipped) = (l.p.graph_vote, l.vote_on_shipped());
            if let Some(prop) = l.prop.as_mut().filter(|_| beta > 0.0) {
                // the row the graph was built on: the int8-coded map (as the bank keeps it),
                // the shipped block's embedding, or the learner's embedding
                let on = match l.adapt.as_mut().filter(|a| a.block.params().graph_on_map) {
                    Some(a) => {
                        MapStore::stored_form(x, &mut a.x[..x.len()]);
                        &a.x[..x.len()]
                    }
                    None if shipped => fe,
                    None => cf,
                };
                if prop.vote_into(on, &mut l.s.vote)? {
                    let s = &mut l.s;
                    let blend = |(p, &v): (&mut f32, &f32)| *p = (1.0 - beta) * *p + beta * v;
                    s.one_probs.iter_mut().zip(&s.vote).for_each(blend);
                    (class, confidence) = argmax(&s.one_probs);
                }
            }
            let (ood_score, gated) = match &l.ood {
                Some(o) => {
                    let sc = o.score(fe)?;
                    (Some(sc), sc.is_nan() || sc > o.threshold)
                }
                None => (None, false),
            };
            Ok(Prediction { class: class as u32, confidence, ood_score, gated })
        })
    }

    /// `steps_per_sample` learning steps (none until the bank holds a given label).
    fn learn(&mut self, rng: &mut StdRng) -> Result<()> {
        if self.bank.kind_len(LabelKind::Given) == 0 {
            return Ok(());
        }
        let seen = self.counters.labeled + self.counters.unlabeled;
        let adapt = self
            .adapt
            .as_ref()
            .filter(|a| a.block.params().trains())
            .map(|a| (a.block.params().refresh_every, a.block.params().every));
        if adapt.is_some_and(|(refresh, _)| seen.is_multiple_of(refresh)) {
            self.refresh_embeddings()?;
        }
        for _ in 0..self.p.steps_per_sample {
            self.step(rng)?;
        }
        if adapt.is_some_and(|(_, every)| seen.is_multiple_of(every)) {
            self.adapt_step(rng)?;
        }
        Ok(())
    }

    /// One step of the adaptive block (allocation-free): `labeled_batch` given and up to
    /// `unlabeled_rows` pseudo entries from the bank, their maps through the block with its
    /// current weights, the student head's losses (cross-entropy on the given rows; the
    /// algorithm's unlabeled loss with the teacher's targets on the entries' stored
    /// embeddings, on the clean embedding: no strong view), the gradient back through the
    /// head and the normalization into the block, one block SGD step. The head is not
    /// updated here, and the bank keeps the averaged weights' embeddings. Distribution
    /// alignment is not applied (its running estimate moves in the head's steps only).
    fn adapt_step(&mut self, rng: &mut StdRng) -> Result<()> {
        let Some(a) = &mut self.adapt else { return Ok(()) };
        let (dim, fd, k, scale) =
            (self.p.dim, self.p.feature_dim(), self.p.n_classes, self.p.feature_scale);
        let nl = self.p.labeled_batch;
        let nb = if self.p.algorithm != Algorithm::Supervised
            && self.bank.kind_len(LabelKind::Pseudo) > 0
        {
            a.prop_y.len()
        } else {
            0
        };
        let n = nl + nb;
        // Draw the rows; `h` receives their stored embeddings (the teacher's input).
        let (hl, hu) = a.h[..n * fd].split_at_mut(nl * fd);
        let (yl, yu) = a.y[..n].split_at_mut(nl);
        let (sl, su) = a.slots[..n].split_at_mut(nl);
        self.bank.sample_kind_slots_into(LabelKind::Given, rng, hl, yl, sl)?;
        if nb > 0 {
            self.bank.sample_kind_slots_into(LabelKind::Pseudo, rng, hu, yu, su)?;
            features_rows(hu, fd, scale);
            self.teacher.forward_into(hu, &mut a.logits_t)?;
            softmax_into(&a.logits_t, k, self.temperature, &mut a.probs_t)?;
            if let Some(prop) = &self.prop {
                graph_rows(
                    (prop, &self.bank, self.p.comatch_alpha, k),
                    su,
                    false,
                    &a.probs_t,
                    &mut a.prop_y,
                    &mut a.prop_w,
                    &mut a.smoothed,
                );
                if a.block.params().surest_half {
                    let mean = a.prop_w.iter().sum::<f32>() / a.prop_w.len() as f32;
                    a.prop_w.iter_mut().filter(|w| **w < mean).for_each(|w| *w = 0.0);
                }
            }
        }
        for (&slot, x) in a.slots[..n].iter().zip(a.x.chunks_exact_mut(dim)) {
            a.maps.get_into(slot as usize, x);
        }
        a.block.forward_into(&a.x[..n * dim], &mut a.e[..n * fd], Weights::Current)?;
        a.h[..n * fd].copy_from_slice(&a.e[..n * fd]);
        features_rows(&mut a.h[..n * fd], fd, scale);
        self.student.forward_into(&a.h[..n * fd], &mut a.logits[..n * k])?;
        let (dl, du) = a.dlog[..n * k].split_at_mut(nl * k);
        self.ce.hard(&a.logits[..nl * k], &a.y[..nl], dl)?;
        if nb > 0 {
            all_unlabeled_grads(
                &self.p,
                (&self.fixmatch, &mut self.adaptive, &self.uda),
                (&a.probs_t, &a.logits_t, &a.logits[nl * k..n * k]),
                (&a.prop_y, &a.prop_w, &a.smoothed),
                du,
                &mut a.dlog_tmp,
            )?;
            Self::ramp_unlabeled(du, self.counters.steps, self.p.unlabeled_rampup);
        }
        self.student.input_grad_into(&a.dlog[..n * k], &mut a.dh[..n * fd])?;
        // Through h = scale e / |e|: de = scale / |e| (dh - u (u . dh)), u = e / |e|.
        for (e, g) in a.e.chunks_exact(fd).zip(a.dh.chunks_exact_mut(fd)).take(n) {
            let norm = e.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            let ug = e.iter().zip(g.iter()).map(|(e, g)| e * g).sum::<f32>() / norm;
            g.iter_mut().zip(e).for_each(|(g, &e)| *g = scale / norm * (*g - e / norm * ug));
        }
        a.block.backward(&a.dh[..n * fd])?;
        a.block.step();
        Ok(())
    }

    fn step(&mut self, rng: &mut StdRng) -> Result<()> {
        if self.p.algorithm == Algorithm::MixMatch && self.bank.kind_len(LabelKind::Pseudo) > 0 {
            return self.mixmatch_step(rng);
        }
        let (d, k, scale) = (self.p.feature_dim(), self.p.n_classes, self.p.feature_scale);
        let s = &mut self.s;
        self.grads.zero();
        // Supervised part: replay of given labels.
        self.bank.sample_kind_into(LabelKind::Given, rng, &mut s.xl, &mut s.yl)?;
        features_rows(&mut s.xl, d, scale);
        self.student.forward_into(&s.xl, &mut s.logits_l)?;
        self.ce.hard(&s.logits_l, &s.yl, &mut s.dlog_l)?;
        self.student.backward_into(&s.xl, &s.dlog_l, &mut self.grads)?;
        // Unlabeled part: replay of admitted entries.
        let have_u = self.p.algorithm != Algorithm::Supervised
            && self.bank.sample_kind_slots_into(
                LabelKind::Pseudo,
                rng,
                &mut s.xu,
                &mut s.yu,
                &mut s.su,
            )? > 0;
        if have_u {
            features_rows(&mut s.xu, d, scale);
            if s.pending {
                s.xu[..d].copy_from_slice(&s.pending_weak);
            }
            self.teacher.forward_into(&s.xu, &mut s.logits_t)?;
            softmax_into(&s.logits_t, k, self.temperature, &mut s.probs_t)?;
            if let Some(da) = &mut self.align {
                da.align(&mut s.probs_t)?;
            }
            if let Some(prop) = &self.prop {
                graph_rows(
                    (prop, &self.bank, self.p.comatch_alpha, k),
                    &s.su,
                    s.pending,
                    &s.probs_t,
                    &mut s.prop_y,
                    &mut s.prop_w,
                    &mut s.smoothed,
                );
            }
            s.xs.copy_from_slice(&s.xu);
            for row in s.xs.chunks_exact_mut(d) {
                self.aug.perturb(row, rng)?;
            }
            if s.pending {
                s.xs[..d].copy_from_slice(&s.pending_strong);
            }
            self.student.forward_into(&s.xs, &mut s.logits_s)?;
            let selected = all_unlabeled_grads(
                &self.p,
                (&self.fixmatch, &mut self.adaptive, &self.uda),
                (&s.probs_t, &s.logits_t, &s.logits_s),
                (&s.prop_y, &s.prop_w, &s.smoothed),
                &mut s.dlog_u,
                &mut s.dlog_tmp,
            )?;
            self.counters.masked_in += selected as u64;
            Self::ramp_unlabeled(&mut s.dlog_u, self.counters.steps, self.p.unlabeled_rampup);
            self.student.backward_into(&s.xs, &s.dlog_u, &mut self.grads)?;
        }
        self.sgd.step(self.student.params_mut(), self.grads.as_slice())?;
        self.counters.steps += 1;
        self.ema.update(self.teacher.params_mut(), self.student.params(), self.counters.steps)?;
        Ok(())
    }

    /// One MixMatch step (Berthelot et al. 2019, Algorithm 1) on a replay batch.
    fn mixmatch_step(&mut self, rng: &mut StdRng) -> Result<()> {
        let (d, k, scale) = (self.p.feature_dim(), self.p.n_classes, self.p.feature_scale);
        let (nl, nu) = (self.s.yl.len(), self.s.yu.len());
        let s = &mut self.s;
        self.grads.zero();
        self.bank.sample_kind_into(LabelKind::Given, rng, &mut s.xl, &mut s.yl)?;
        self.bank.sample_kind_into(LabelKind::Pseudo, rng, &mut s.xu, &mut s.yu)?;
        features_rows(&mut s.xl, d, scale);
        features_rows(&mut s.xu, d, scale);
        if s.pending {
            s.xu[..d].copy_from_slice(&s.pending_weak);
        }
        // Guess labels from two strong views with the teacher.
        s.xs.copy_from_slice(&s.xu);
        s.xs2.copy_from_slice(&s.xu);
        for (a, b) in s.xs.chunks_exact_mut(d).zip(s.xs2.chunks_exact_mut(d)) {
            self.aug.perturb(a, rng)?;
            self.aug.perturb(b, rng)?;
        }
        if s.pending {
            s.xs[..d].copy_from_slice(&s.pending_strong);
        }
        self.teacher.forward_into(&s.xs, &mut s.logits_t)?;
        softmax_into(&s.logits_t, k, self.temperature, &mut s.probs_t)?;
        self.teacher.forward_into(&s.xs2, &mut s.logits_t)?;
        softmax_into(&s.logits_t, k, self.temperature, &mut s.probs2)?;
        self.mixmatch.guess_labels_into(&[&s.probs_t, &s.probs2], k, &mut s.guess)?;
        // W = labelled rows (one-hot) then unlabeled rows (guesses); mix with a shuffled W.
        s.w[..nl * d].copy_from_slice(&s.xl);
        s.w[nl * d..].copy_from_slice(&s.xs);
        one_hot_into(&s.yl, k, 0.0, &mut s.wt[..nl * k])?;
        s.wt[nl * k..].copy_from_slice(&s.guess);
        self.mixmatch.mixup().shuffle_partners(rng, &mut s.partner);
        let lambda = self.mixmatch.sample_lambda(rng);
        mix_rows_into(&s.w, d, &s.partner, lambda, &mut s.mixed)?;
        mix_rows_into(&s.wt, k, &s.partner, lambda, &mut s.mixed_t)?;
        // Soft cross-entropy on the mixed labelled rows.
        let (xl_mix, xu_mix) = s.mixed.split_at(nl * d);
        let (tl_mix, tu_mix) = s.mixed_t.split_at(nl * k);
        self.student.forward_into(xl_mix, &mut s.logits_l)?;
        self.ce.soft(&s.logits_l, tl_mix, k, &mut s.dlog_l)?;
        self.student.backward_into(xl_mix, &s.dlog_l, &mut self.grads)?;
        // lambda_u x squared error on the mixed unlabeled rows, ramped up.
        self.student.forward_into(xu_mix, &mut s.logits_s)?;
        self.mixmatch.unlabeled_loss(&s.logits_s, tu_mix, k, &mut s.dlog_u)?;
        Self::ramp_unlabeled(&mut s.dlog_u, self.counters.steps, self.p.unlabeled_rampup);
        self.counters.masked_in += nu as u64;
        self.student.backward_into(xu_mix, &s.dlog_u, &mut self.grads)?;
        self.sgd.step(self.student.params_mut(), self.grads.as_slice())?;
        self.counters.steps += 1;
        self.ema.update(self.teacher.params_mut(), self.student.params(), self.counters.steps)?;
        Ok(())
    }

    fn dims(&self) -> Dims {
        Dims {
            embedding_dim: self.p.feature_dim() as u32,
            n_classes: self.p.n_classes as u32,
            bank_capacity: self.p.bank_capacity as u32,
        }
    }

    /// Saves the whole learner state to `path`, atomically (see [`crate::persist`]): after a
    /// crash at any point the file holds either the previous or this state.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be written.
    pub fn checkpoint(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut w = StateWriter::new(self.dims(), self.counters.steps);
        w.f32_blob(SectionId::STUDENT, self.student.params())?;
        w.f32_blob(SectionId::TEACHER, self.teacher.params())?;
        w.f32_blob(SectionId::OPTIMIZER, self.sgd.momentum_buffer())?;
        w.f32_blob(SectionId(SectionId::USER.0), &self.warmup[..self.warmup_len * self.p.dim])?;
        let mut ad = vec![0f32; self.adaptive.state_len()];
        self.adaptive.state_into(&mut ad)?;
        w.f32_blob(SectionId(SectionId::USER.0 + 1), &ad)?;
        if let Some(o) = &self.ood {
            w.gate(&o.gate)?;
            let z = [o.maha.mean, o.maha.sd, o.norm.mean, o.norm.sd, o.threshold];
            w.f32_blob(SectionId(SectionId::USER.0 + 2), &z)?;
        }
        w.bank(&self.bank)?;
        let mut c = self.counters.to_array().to_vec();
        c.push(self.sgd.steps_done());
        if let Some(prop) = &self.prop {
            let (target, weight, memory, tick, refreshes) = prop.state();
            let tw: Vec<f32> =
                target.iter().map(|&t| t as f32).chain(weight.iter().copied()).collect();
            w.f32_blob(SectionId(SectionId::USER.0 + 3), &tw)?;
            w.f32_blob(SectionId(SectionId::USER.0 + 4), memory)?;
            c.extend([tick, refreshes]);
            w.f32_blob(SectionId(SectionId::USER.0 + 14), &prop.vote_state())?;
        }
        if self.p.temperature_scaling.is_some() {
            c.push(u64::from(self.temperature.to_bits()));
        }
        if let Some(da) = &self.align {
            w.f32_blob(SectionId(SectionId::USER.0 + 5), da.running())?;
        }
        if let Some(a) = &self.adapt {
            let ((wt, b), (wa, ba), (mw, mb)) =
                (a.block.weights(), a.block.averages(), a.block.momentum());
            let (q, scales) = a.maps.raw();
            for (i, v) in [wt, b, wa, ba, mw, mb, scales].into_iter().enumerate() {
                w.f32_blob(SectionId(SectionId::USER.0 + 6 + i as u32), v)?;
            }
            let bytes: Vec<u8> = q.iter().map(|&v| v.to_le_bytes()[0]).collect();
            w.bytes_blob(SectionId(SectionId::USER.0 + 13), &bytes)?;
        }
        w.counters(&c)?;
        w.save(path)
    }

    /// Rebuilds a learner from `params` and the state saved at `path` by
    /// [`Learner::checkpoint`]; it continues exactly as the saved one would have.
    ///
    /// # Errors
    /// As [`LearnerParams::build`]; the state-file errors of [`StateFile::open`] (truncated,
    /// corrupt, other version or other dims: never a silently wrong state).
    pub fn resume(params: &LearnerParams, path: impl AsRef<Path>) -> Result<Learner> {
        let mut l = params.build()?;
        let f = StateFile::open(path.as_ref(), &l.dims())?;
        let malformed = |e: Error| Error::StateMalformed {
            path: path.as_ref().to_path_buf(),
            reason: e.to_string(),
        };
        let mut buf = vec![0f32; l.student.n_params()];
        f.f32_blob_into(SectionId::STUDENT, &mut buf)?;
        l.student.load_params(&buf)?;
        f.f32_blob_into(SectionId::TEACHER, &mut buf)?;
        l.teacher.load_params(&buf)?;
        let c = f.counters()?;
        let expected = Counters::LEN
            + 1
            + if l.prop.is_some() { 2 } else { 0 }
            + usize::from(l.p.temperature_scaling.is_some());
        if c.len() != expected {
            return Err(Error::StateMalformed {
                path: path.as_ref().to_path_buf(),
                reason: format!("{} counters, expected {expected}", c.len()),
            });
        }
        if let Some(prop) = &mut l.prop {
            let cap = l.p.bank_capacity;
            let mut tw = vec![0f32; 2 * cap];
            f.f32_blob_into(SectionId(SectionId::USER.0 + 3), &mut tw)?;
            let mut memory = vec![0f32; cap * l.p.n_classes];
            f.f32_blob_into(SectionId(SectionId::USER.0 + 4), &mut memory)?;
            let (t, w) = tw.split_at(cap);
            let tick = c[Counters::LEN + 1];
            prop.restore(t, w, &memory, tick, c[Counters::LEN + 2]).map_err(malformed)?;
            let vote = SectionId(SectionId::USER.0 + 14);
            let mut v = vec![0f32; f.f32_len(vote)?];
            f.f32_blob_into(vote, &mut v)?;
            prop.restore_vote(&v).map_err(malformed)?;
        }
        f.f32_blob_into(SectionId::OPTIMIZER, &mut buf)?;
        l.sgd.restore(c[Counters::LEN], &buf)?;
        l.counters = Counters::from_slice(&c);
        if l.p.temperature_scaling.is_some() {
            let t = u32::try_from(c[expected - 1]).ok().map(f32::from_bits);
            l.temperature =
                t.filter(|t| t.is_finite() && *t > 0.0).ok_or_else(|| Error::StateMalformed {
                    path: path.as_ref().to_path_buf(),
                    reason: format!("temperature counter {}", c[expected - 1]),
                })?;
        }
        let wl = f.f32_len(SectionId(SectionId::USER.0))?;
        if wl > l.warmup.len() || wl % l.p.dim != 0 {
            return Err(Error::StateMalformed {
                path: path.as_ref().to_path_buf(),
                reason: format!("warm-up buffer of {wl} values"),
            });
        }
        f.f32_blob_into(SectionId(SectionId::USER.0), &mut l.warmup[..wl])?;
        l.warmup_len = wl / l.p.dim;
        let mut ad = vec![0f32; l.adaptive.state_len()];
        f.f32_blob_into(SectionId(SectionId::USER.0 + 1), &mut ad)?;
        l.adaptive.restore(&ad)?;
        if let Some(da) = &mut l.align {
            let mut running = vec![0f32; l.p.n_classes];
            f.f32_blob_into(SectionId(SectionId::USER.0 + 5), &mut running)?;
            da.restore(&running).map_err(malformed)?;
        }
        if let Some(a) = &mut l.adapt {
            let sec = |i: u32| SectionId(SectionId::USER.0 + 6 + i);
            let ((wt, b), (mw, mb)) = (a.block.weights(), a.block.momentum());
            let lens = [wt.len(), b.len(), wt.len(), b.len(), mw.len(), mb.len()];
            let mut v: Vec<Vec<f32>> =
                lens.iter().chain([&a.maps.raw().1.len()]).map(|&n| vec![0f32; n]).collect();
            for (i, buf) in v.iter_mut().enumerate() {
                f.f32_blob_into(sec(i as u32), buf)?;
            }
            let mut bytes = vec![0u8; a.maps.raw().0.len()];
            f.bytes_blob_into(sec(7), &mut bytes)?;
            let q: Vec<i8> = bytes.iter().map(|&b| i8::from_le_bytes([b])).collect();
            a.block.restore([&v[0], &v[1], &v[2], &v[3], &v[4], &v[5]]).map_err(malformed)?;
            a.maps.restore(&q, &v[6]).map_err(malformed)?;
        }
        l.bank = f.bank()?;
        if f.section_ids().any(|s| s == SectionId::GATE) {
            let mut z = [0f32; 5];
            f.f32_blob_into(SectionId(SectionId::USER.0 + 2), &mut z)?;
            l.ood = Some(Ood {
                gate: f.gate()?,
                maha: ZScore { mean: z[0], sd: z[1] },
                norm: ZScore { mean: z[2], sd: z[3] },
                threshold: z[4],
            });
            l.warmup = Vec::new();
        }
        Ok(l)
    }
}
