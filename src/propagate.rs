//! Label propagation over the memory bank: what the bank's neighbourhood structure says about
//! each unlabeled entry.
//!
//! A confident teacher pseudo-labels mostly the samples it already gets right (DESIGN.md, the
//! reference runs). The bank holds thousands of embeddings, labelled and not, and their
//! neighbourhoods carry information the head does not have yet. Every
//! [`PropagationParams::every`] unlabeled samples a [`Propagation`] is refreshed from the bank:
//!
//! 1. PCA of the bank's L2-normalized embeddings to `pca_dim` dimensions, whitened (each
//!    component divided by its standard deviation), rows L2-normalized again. Whitening matters
//!    for the graph: in the raw 1280-d embedding of a frozen ImageNet backbone a few directions
//!    dominate every distance.
//! 2. A `neighbours`-nearest-neighbour graph on cosine similarity, weights `max(s, 0)^gamma`
//!    (Iscen et al. 2019, "Label Propagation for Deep Semi-supervised Learning", gamma = 3),
//!    symmetrized `W = A + A^T` and normalized `S = D^{-1/2} W D^{-1/2}`.
//! 3. The start labels `Y0`: one-hot for given entries, the teacher's probabilities for
//!    pseudo entries (propagating the head's own predictions, the "smooth" step of
//!    Correct-and-Smooth, Huang et al. 2021, rather than the few labels alone).
//! 4. `iters` steps of `F <- alpha S F + (1 - alpha) Y0` (Zhou et al. 2004), which converge to
//!    `(1 - alpha)(I - alpha S)^{-1} Y0`.
//! 5. For each pseudo entry: the propagated class `argmax F_i`, weighted by its certainty
//!    `1 - H(F_i) / ln K` times a class balance `n / (K n_c)` (Iscen et al.); and the
//!    neighbour memory `D^{-1} W Y0` (the similarity-weighted labels of its neighbours, the
//!    memory-smoothed pseudo-label of CoMatch, Li et al. 2021).
//!
//! Entries stored after the last refresh have no propagated label until the next one.
//! Every buffer is allocated in [`PropagationParams::build`] for the bank's capacity: a refresh
//! allocates nothing.
//!
//! # Examples
//! ```
//! use edge_ssl::bank::BankParams;
//! use edge_ssl::gate::Admitted;
//! use edge_ssl::propagate::PropagationParams;
//! use rand::{Rng, SeedableRng, rngs::StdRng};
//!
//! // two clusters on a ring; one label each, many unlabeled points
//! let mut rng = StdRng::seed_from_u64(1);
//! let mut bank = BankParams::new(200, 3, 2).build()?;
//! let point = |c: usize, rng: &mut StdRng| {
//!     let a: f32 = rng.random::<f32>() * 1.2 + if c == 0 { 0.0 } else { 3.14 };
//!     [a.cos(), a.sin(), 0.3 * rng.random::<f32>()]
//! };
//! bank.insert_given(&point(0, &mut rng), 0, &mut rng)?;
//! bank.insert_given(&point(1, &mut rng), 1, &mut rng)?;
//! for i in 0..100 {
//!     // the stored pseudo-label is deliberately uninformative (always class 0)
//!     bank.insert_pseudo(Admitted::ungated(&point(i % 2, &mut rng)), 0, 0.5, &mut rng)?;
//! }
//! let mut p = PropagationParams::default();
//! p.pca_dim = 3;
//! p.neighbours = 5;
//! let mut prop = p.build(200, 3, 2)?;
//! // an uninformed teacher: uniform probabilities
//! prop.refresh(&bank, |_x, probs| { probs.fill(0.5); Ok(()) })?;
//! let right = bank
//!     .iter()
//!     .filter_map(|e| {
//!         let mut x = [0f32; 3];
//!         e.embedding_into(&mut x).ok()?;
//!         let truth = u32::from(x[0] < 0.0 && x[1] < 0.5);
//!         prop.target(&bank, e.slot()).map(|(c, _)| (c == truth) as usize)
//!     })
//!     .sum::<usize>();
//! assert!(right >= 90, "{right} of 100 propagated labels right");
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use crate::bank::{Bank, LabelKind};
use crate::error::{Error, Result};
use crate::gate::linalg::{SubspaceWork, top_eigen_into};

/// Parameters of a [`Propagation`]. Defaults: the configuration that closed the most of the
/// labels-only -> oracle gap in the reference runs (DESIGN.md: PCA-128 whitened, alpha = 0.9)
/// with the neighbour count measured here (k = 10; see EVALUATION.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PropagationParams {
    /// Dimension of the PCA space of the graph (clamped to the embedding dimension). Default 128.
    pub pca_dim: usize,
    /// Whitening exponent `e` in `[0, 1]`: each PCA component is divided by its standard
    /// deviation to the power `e` (1: whitened, 0: a rotation, 0.5: half-way). Default 1.
    pub whiten: f32,
    /// The rows are channel-major feature maps of this many spatial positions
    /// (`value[c * positions + p]`): each position's channel vector is L2-normalized before
    /// the row is (so that every position weighs the same in the graph). Default 1 (the row
    /// as one vector).
    pub positions: usize,
    /// Sinkhorn-Knopp iterations that balance the propagated distributions `F` towards equal
    /// class totals (alternately normalizing its columns and its rows) before they are read
    /// out; 0 (default) reads them out as propagated. It assumes every entry belongs to one
    /// of the classes in roughly equal shares: on a long-tailed stream (Fashion-MNIST, the
    /// first class 10 times as frequent as the last) 30 rounds cost 3.83 points of test
    /// accuracy, and strange input must stay out of the bank (the OOD gate). Measured on
    /// Fashion-MNIST with 30% MNIST digits and no gate (seed 1): 0.651 test accuracy with 30
    /// rounds against 0.778 without when the pseudo entries start from the teacher's
    /// probabilities; starting from zero ([`PropagationParams::teacher_start`] false, as
    /// [`PropagationParams::maps`]) 0.775 with 30 rounds (EVALUATION.md).
    pub balance_iters: usize,
    /// Start the propagation from the teacher's probabilities on the pseudo entries (the
    /// "smooth" step of Correct-and-Smooth); false starts them at zero, as Zhou et al. and
    /// Iscen et al. do, so that only the given labels spread. Default true.
    pub teacher_start: bool,
    /// Neighbours per entry `k >= 1`. Default 10 (Fashion-MNIST 10/class, seeds 1-2: 33.7% of
    /// the gap closed vs 30.0% with 20 and 32.6% with 5).
    pub neighbours: usize,
    /// Propagation weight `alpha` in `(0, 1)`. Default 0.9 (Zhou et al. 2004).
    pub alpha: f32,
    /// Similarity exponent `gamma > 0` of the edge weights. Default 3 (Iscen et al. 2019).
    pub gamma: f32,
    /// Propagation iterations `>= 1`. Default 20 (`alpha^20 = 0.12`).
    pub iters: usize,
    /// Subspace iterations of the PCA `>= 1`. Default 8.
    pub pca_iters: usize,
    /// At most this many bank entries (an even stride over the bank) estimate the covariance
    /// of the PCA, `>= 2`. Default 1024: the covariance is the refresh's largest cost
    /// (`rows x dim^2 / 2`; above 2048 dimensions the Gram matrix, `rows^2 x dim / 2` plus
    /// `pca_dim x rows x dim` for the basis), and 1024 rows estimate 128 components well
    /// enough for a graph.
    pub pca_rows: usize,
    /// Unlabeled samples between refreshes `>= 1`. Default 500.
    pub every: u64,
}

impl Default for PropagationParams {
    fn default() -> Self {
        PropagationParams {
            pca_dim: 128,
            whiten: 1.0,
            positions: 1,
            balance_iters: 0,
            teacher_start: true,
            neighbours: 10,
            alpha: 0.9,
            gamma: 3.0,
            iters: 20,
            pca_iters: 8,
            pca_rows: 1024,
            every: 500,
        }
    }
}

impl PropagationParams {
    /// The graph for channel-major feature maps of `positions` positions (e.g. the camera
    /// model's 320 x 4 x 4 map, `positions` 16): each position normalized on its own, PCA-512
    /// half-whitened (`whiten` 0.5), the pseudo entries starting the propagation at zero
    /// (`teacher_start` false), no class balancing (`balance_iters` 0); the rest as
    /// [`PropagationParams::default`]. Measured in the learner on Fashion-MNIST, 10 labels per
    /// class (EVALUATION.md, "Where the camera default lands"): starting from zero is what
    /// carries the gain over the teacher's probabilities (+1.8 points, 15 seeds, both
    /// balanced). Balancing the propagated labels to equal class totals (30 Sinkhorn rounds)
    /// adds only 0.37 points on a class-balanced stream (15 seeds) but costs 3.83 on a
    /// long-tailed one (ratio 10, 5 of 5 seeds) and needs the OOD gate when strange input
    /// reaches the bank, so it is off. Offline on the cached maps (100 labels, 10 seeds; the
    /// test vote of the propagated labels) the normalization, PCA-512 and half whitening gave
    /// 0.819 against 0.807 for the default graph.
    pub fn maps(positions: usize) -> Self {
        PropagationParams {
            pca_dim: 512,
            whiten: 0.5,
            positions,
            teacher_start: false,
            ..Self::default()
        }
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] naming the first bad field.
    pub fn check(&self) -> Result<()> {
        let bad = |name, reason: String| Err(Error::InvalidParam { name, reason });
        if self.pca_dim == 0 {
            return bad("pca_dim", "must be >= 1".into());
        }
        if self.neighbours == 0 {
            return bad("neighbours", "must be >= 1".into());
        }
        if !(0.0..=1.0).contains(&self.whiten) {
            return bad("whiten", format!("{} not in [0, 1]", self.whiten));
        }
        if self.positions == 0 {
            return bad("positions", "must be >= 1".into());
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return bad("alpha", format!("{} not in (0, 1)", self.alpha));
        }
        if !(self.gamma.is_finite() && self.gamma > 0.0) {
            return bad("gamma", format!("{} must be finite and > 0", self.gamma));
        }
        if self.pca_rows < 2 {
            return bad("pca_rows", format!("{} must be >= 2", self.pca_rows));
        }
        if self.iters == 0 || self.pca_iters == 0 || self.every == 0 {
            return bad("iters", "iters, pca_iters and every must be >= 1".into());
        }
        Ok(())
    }

    /// Allocates every buffer for a bank of `capacity` entries of `dim` values and
    /// `n_classes` classes.
    ///
    /// # Errors
    /// As [`PropagationParams::check`]; [`Error::InvalidParam`] for a zero size or fewer than
    /// two classes.
    pub fn build(&self, capacity: usize, dim: usize, n_classes: usize) -> Result<Propagation> {
        self.check()?;
        if capacity == 0 || dim == 0 || n_classes < 2 {
            return Err(Error::InvalidParam {
                name: "propagation",
                reason: format!("capacity {capacity}, dim {dim}, {n_classes} classes"),
            });
        }
        if !dim.is_multiple_of(self.positions) {
            return Err(Error::InvalidParam {
                name: "positions",
                reason: format!(
                    "rows of {dim} values are not maps of {} positions",
                    self.positions
                ),
            });
        }
        Ok(self.build_with(capacity, dim, n_classes, dim > GRAM_ABOVE))
    }

    /// [`PropagationParams::build`], with the PCA on the Gram matrix of the sampled rows
    /// (`gram`) or on their covariance.
    fn build_with(&self, capacity: usize, dim: usize, n_classes: usize, gram: bool) -> Propagation {
        let (kn, k) = (self.neighbours, n_classes);
        // the Gram path samples at most `ns` rows and finds at most `ns` components
        let ns = self.pca_rows.min(capacity);
        let p = if gram { self.pca_dim.min(dim).min(ns) } else { self.pca_dim.min(dim) };
        let m = if gram { ns } else { dim };
        Propagation {
            params: *self,
            dim,
            k,
            pdim: p,
            gram,
            sample: vec![0.0; if gram { ns * dim } else { 0 }],
            row: vec![0.0; dim],
            rows: vec![0.0; ROWS * dim],
            mean: vec![0.0; dim],
            block: vec![0.0; if gram { 0 } else { dim * BLOCK }],
            cov: vec![0.0; m * m],
            eig: SubspaceWork::new(m, p),
            vals: vec![0.0; p],
            vecs: vec![0.0; p * m],
            basis: vec![0.0; p * dim],
            z: vec![0.0; capacity * p],
            slot_of: vec![0; capacity],
            nbr: vec![0; capacity * kn],
            w: vec![0.0; capacity * kn],
            deg: vec![0.0; capacity],
            y0: vec![0.0; capacity * k],
            f: vec![0.0; capacity * k],
            f2: vec![0.0; capacity * k],
            counts: vec![0; k],
            colsum: vec![0.0; k],
            target: vec![0; capacity],
            weight: vec![0.0; capacity],
            memory: vec![0.0; capacity * k],
            n: 0,
            q: vec![0.0; p],
            qn: vec![0; kn],
            qw: vec![0.0; kn],
            refreshed_tick: 0,
            refreshes: 0,
        }
    }
}

/// Above this dimension the PCA works on the Gram matrix of the sampled rows
/// (`pca_rows^2` values) instead of their covariance (`dim^2`): 5120-d feature maps would need
/// a 200 MiB covariance.
const GRAM_ABOVE: usize = 2048;

/// Rows per block of the covariance accumulation.
const BLOCK: usize = 32;

/// What one [`Propagation::refresh`] did.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RefreshStats {
    /// Bank entries in the graph.
    pub entries: usize,
    /// Pseudo entries that received a propagated label.
    pub pseudo: usize,
    /// Pseudo entries whose propagated class differs from the class they were stored with.
    pub relabelled: usize,
    /// Mean certainty `1 - H / ln K` of the propagated labels.
    pub mean_certainty: f32,
}

/// Label propagation state over one bank: preallocated buffers and the per-slot results of the
/// last refresh. Build with [`PropagationParams::build`]. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Propagation {
    params: PropagationParams,
    dim: usize,
    k: usize,
    pdim: usize,
    /// PCA through the Gram matrix of the sampled rows (dimensions above [`GRAM_ABOVE`]).
    gram: bool,
    /// `pca_rows x dim`: the sampled, centred rows (Gram path only).
    sample: Vec<f32>,
    row: Vec<f32>,
    /// `ROWS x dim`: the rows [`Propagation::project`] projects together.
    rows: Vec<f32>,
    mean: Vec<f64>,
    /// `dim x BLOCK`, transposed block of centred rows (covariance path only).
    block: Vec<f64>,
    /// The covariance (`dim x dim`) or the Gram matrix (`pca_rows x pca_rows`).
    cov: Vec<f64>,
    eig: SubspaceWork,
    vals: Vec<f64>,
    vecs: Vec<f64>,
    /// `pdim x dim` projection (whitened if asked).
    basis: Vec<f32>,
    /// `n x pdim` projected, unit rows.
    z: Vec<f32>,
    slot_of: Vec<u32>,
    nbr: Vec<u32>,
    w: Vec<f32>,
    deg: Vec<f32>,
    y0: Vec<f32>,
    f: Vec<f32>,
    f2: Vec<f32>,
    counts: Vec<usize>,
    /// Column sums of `F` ([`balance`]).
    colsum: Vec<f64>,
    /// Per slot: propagated class, its weight (0 for given entries) and the neighbour memory.
    target: Vec<u32>,
    weight: Vec<f32>,
    memory: Vec<f32>,
    /// Entries in the graph of the last refresh (rows of `z` and `f`).
    n: usize,
    /// Scratch of [`Propagation::vote_into`]: the query's projection, its neighbours and weights.
    q: Vec<f32>,
    qn: Vec<u32>,
    qw: Vec<f32>,
    refreshed_tick: u64,
    refreshes: u64,
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 1e-12 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// `row` L2-normalized as a whole after each of its `positions` interleaved channel vectors
/// (`row[c * positions + p]`, see [`PropagationParams::positions`]) was; 1: the whole row only.
fn normalize_map(row: &mut [f32], positions: usize) {
    if positions > 1 {
        for p in 0..positions {
            let n = row[p..].iter().step_by(positions).map(|x| x * x).sum::<f32>().sqrt();
            if n > 1e-12 {
                row[p..].iter_mut().step_by(positions).for_each(|x| *x /= n);
            }
        }
    }
    normalize(row);
}

/// Sinkhorn-Knopp balancing of `f` (rows of `colsum.len()` class values, clipped at `1e-9`):
/// `iters` rounds of dividing each column by its sum, then each row by its sum. The rows end
/// as distributions whose class totals are (nearly) equal: a propagation that pulls most
/// entries into a few classes spreads them out again (the class-balance prior of
/// self-labelling by optimal transport, Asano et al. 2020).
fn balance(f: &mut [f32], colsum: &mut [f64], iters: usize) {
    let k = colsum.len();
    f.iter_mut().for_each(|v| *v = v.max(0.0) + 1e-9);
    for _ in 0..iters {
        colsum.fill(0.0);
        for r in f.chunks_exact(k) {
            colsum.iter_mut().zip(r).for_each(|(c, &v)| *c += f64::from(v));
        }
        for r in f.chunks_exact_mut(k) {
            r.iter_mut().zip(colsum.iter()).for_each(|(v, &c)| *v = (f64::from(*v) / c) as f32);
            let sum: f32 = r.iter().sum();
            r.iter_mut().for_each(|v| *v /= sum);
        }
    }
}

/// `sqrt(var)^e`, exact for the whitened (`e = 1`) and plain (`e = 0`) cases.
fn std_power(var: f64, e: f32) -> f64 {
    match e {
        1.0 => var.sqrt(),
        0.0 => 1.0,
        e => var.powf(0.5 * f64::from(e)),
    }
}

/// The dot products of `b` with each of the `R` rows `xs` (each `b.len()` long) in one pass
/// over `b`: with `wide` each as [`dot_wide`], else summed in order from `-0.0` as
/// `Iterator::sum` does. Bit-identical to one product at a time; `R` at once read `b` once
/// and run `R` independent chains of sums (the refresh's projection and kNN scan).
fn dots<const R: usize>(wide: bool, b: &[f32], xs: [&[f32]; R]) -> [f32; R] {
    if wide {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU supports AVX (checked just above).
            return unsafe { dots_wide_avx(b, xs) };
        }
        return dots_wide(b, xs);
    }
    let d = b.len();
    let xs = xs.map(|x| &x[..d]);
    let mut out = [-0.0f32; R];
    for (t, &y) in b.iter().enumerate() {
        for (o, x) in out.iter_mut().zip(&xs) {
            *o += x[t] * y;
        }
    }
    out
}

/// [`dot_wide`] of `b` with each row of `xs`: each row's 8 partial sums vectorize on their own
/// while `b` stays in L1.
#[inline(always)]
fn dots_wide<const R: usize>(b: &[f32], xs: [&[f32]; R]) -> [f32; R] {
    let mut out = [0f32; R];
    for (o, x) in out.iter_mut().zip(xs) {
        *o = dot_wide(x, b);
    }
    out
}

/// [`dots_wide`] compiled for AVX: the 8 partial sums fill one 256-bit register. The same
/// operations lane by lane (AVX has no fused multiply-add), so the same bits.
///
/// # Safety
/// The CPU must support AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn dots_wide_avx<const R: usize>(b: &[f32], xs: [&[f32]; R]) -> [f32; R] {
    dots_wide(b, xs)
}

/// Rows projected together in [`Propagation::project`] and scanned together in the kNN search.
const ROWS: usize = 4;

/// Rows `i0..i0 + rows` (`rows` in `1..=ROWS`) of the row-major `[_, d]` matrix `m`, for
/// [`dots`]; a short block repeats its last row in the unused lanes.
fn row_block(m: &[f32], d: usize, i0: usize, rows: usize) -> [&[f32]; ROWS] {
    std::array::from_fn(|r| &m[(i0 + r.min(rows - 1)) * d..][..d])
}

/// `row` normalized as [`normalize_map`] with `positions` and centred in place.
fn centre_row(row: &mut [f32], positions: usize, mean: &[f64]) {
    normalize_map(row, positions);
    row.iter_mut().zip(mean).for_each(|(v, &m)| *v -= m as f32);
}

/// An edge's weight from its cosine similarity `s` (`-inf` for an empty neighbour slot):
/// `max(s, 0)^gamma`, 0 for a missing neighbour.
fn edge_weight(s: f32, gamma: f32) -> f32 {
    if s.is_finite() { s.max(0.0).powf(gamma) } else { 0.0 }
}

/// Inserts neighbour `j` with similarity `s` into the top list `ws` (descending, `nb` its
/// indices) if it beats the last entry.
fn insert_top(ws: &mut [f32], nb: &mut [u32], s: f32, j: usize) {
    let last = ws.len() - 1;
    if s <= ws[last] {
        return;
    }
    let mut at = last;
    while at > 0 && ws[at - 1] < s {
        ws[at] = ws[at - 1];
        nb[at] = nb[at - 1];
        at -= 1;
    }
    ws[at] = s;
    nb[at] = j as u32;
}

/// A dot product over 8 independent partial sums (vectorizable; used by the Gram path only
/// (wide rows: its PCA, the graph and the vote), so that the covariance path keeps its
/// rounding).
#[inline(always)]
fn dot_wide(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

impl Propagation {
    /// The parameters.
    pub fn params(&self) -> &PropagationParams {
        &self.params
    }

    /// Refreshes done so far.
    pub fn refreshes(&self) -> u64 {
        self.refreshes
    }

    /// The propagated class and weight of the entry in `slot`, if it was in the bank at the
    /// last refresh and is a pseudo entry.
    pub fn target(&self, bank: &Bank, slot: usize) -> Option<(u32, f32)> {
        self.fresh(bank, slot).map(|s| (self.target[s], self.weight[s]))
    }

    /// The neighbour memory (similarity-weighted labels of the neighbours, `K` values summing
    /// to 1) of the entry in `slot`, if it was in the bank at the last refresh.
    pub fn memory(&self, bank: &Bank, slot: usize) -> Option<&[f32]> {
        self.fresh(bank, slot).map(|s| &self.memory[s * self.k..(s + 1) * self.k])
    }

    fn fresh(&self, bank: &Bank, slot: usize) -> Option<usize> {
        let e = bank.entry(slot)?;
        (self.refreshes > 0
            && e.kind() == LabelKind::Pseudo
            && e.inserted_at() < self.refreshed_tick)
            .then_some(slot)
    }

    /// Rebuilds the graph from `bank` and propagates. `predict(x, probs)` writes the teacher's
    /// class probabilities (`K`) for the raw embedding `x`. Returns `None` (and changes
    /// nothing) if the bank holds fewer than `neighbours + 2` entries.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `bank` has other dimensions than this propagation was built
    /// for; the errors of `predict`.
    pub fn refresh(
        &mut self,
        bank: &Bank,
        mut predict: impl FnMut(&[f32], &mut [f32]) -> Result<()>,
    ) -> Result<Option<RefreshStats>> {
        self.refresh_by_slot(bank, |_, x, probs| predict(x, probs))
    }

    /// [`Propagation::refresh`] with `predict(slot, x, probs)`: the teacher may predict from
    /// something else kept for the entry in `slot` than the embedding `x` the graph is built on
    /// (e.g. the adaptive block's embedding while the graph uses the shipped one).
    ///
    /// # Errors
    /// As [`Propagation::refresh`].
    pub fn refresh_by_slot(
        &mut self,
        bank: &Bank,
        predict: impl FnMut(usize, &[f32], &mut [f32]) -> Result<()>,
    ) -> Result<Option<RefreshStats>> {
        let bp = bank.params();
        if bp.n_classes != self.k || bp.capacity > self.slot_of.len() {
            return Err(Error::ShapeMismatch {
                op: "Propagation::refresh",
                expected: format!(
                    "bank of <= {} x {}, {} classes",
                    self.slot_of.len(),
                    self.dim,
                    self.k
                ),
                got: format!("{} x {}, {} classes", bp.capacity, bp.dim, bp.n_classes),
            });
        }
        if bp.dim != self.dim {
            return Err(Error::ShapeMismatch {
                op: "Propagation::refresh",
                expected: format!("embeddings of {}", self.dim),
                got: format!("{}", bp.dim),
            });
        }
        let row_of = |slot: usize, out: &mut [f32]| match bank.entry(slot) {
            Some(e) => e.embedding_into(out),
            None => unreachable!("slot from bank.iter"),
        };
        self.refresh_on(bank, row_of, predict)
    }

    /// [`Propagation::refresh_by_slot`] with the graph built on other rows than the bank's
    /// embeddings: `row_of(slot, out)` writes the `dim` values of the entry in `slot` (e.g.
    /// the feature map an adaptive learner keeps for it); `predict(slot, row, probs)` gets
    /// that row. [`Propagation::vote_into`] then takes rows of the same kind.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `bank` has another capacity or class count than this
    /// propagation was built for; the errors of `row_of` and `predict`.
    pub fn refresh_on(
        &mut self,
        bank: &Bank,
        mut row_of: impl FnMut(usize, &mut [f32]) -> Result<()>,
        mut predict: impl FnMut(usize, &[f32], &mut [f32]) -> Result<()>,
    ) -> Result<Option<RefreshStats>> {
        let bp = bank.params();
        if bp.n_classes != self.k || bp.capacity > self.slot_of.len() {
            return Err(Error::ShapeMismatch {
                op: "Propagation::refresh_on",
                expected: format!("bank of <= {} entries, {} classes", self.slot_of.len(), self.k),
                got: format!("{} entries, {} classes", bp.capacity, bp.n_classes),
            });
        }
        let n = bank.len();
        if n < self.params.neighbours + 2 {
            return Ok(None);
        }
        // no vote from a half-rebuilt graph if this refresh fails
        self.n = 0;
        if self.gram {
            self.fit_pca_gram(bank, &mut row_of)?;
        } else {
            self.fit_pca(bank, &mut row_of)?;
        }
        self.project(bank, &mut row_of)?;
        self.knn(n);
        self.start_labels(bank, n, &mut row_of, &mut predict)?;
        self.propagate(n);
        let stats = self.read_out(bank, n);
        self.n = n;
        self.refreshed_tick = bank.tick();
        self.refreshes += 1;
        Ok(Some(stats))
    }

    /// Every entry's slot into `slot_of` (bank order); every `stride`-th entry's normalized
    /// row (`row_of`, [`normalize_map`]) added to `mean`, which ends as their mean, and kept
    /// in `sample` one after the other on the Gram path, else each over `row` (the
    /// covariance path reads them again). Returns their count.
    fn sample_rows(
        &mut self,
        bank: &Bank,
        stride: usize,
        row_of: &mut impl FnMut(usize, &mut [f32]) -> Result<()>,
    ) -> Result<usize> {
        let (d, positions, keep) = (self.dim, self.params.positions, self.gram);
        let rows = if keep { &mut self.sample } else { &mut self.row };
        let mut n = 0;
        self.mean.fill(0.0);
        for (i, e) in bank.iter().enumerate() {
            self.slot_of[i] = e.slot() as u32;
            if i % stride == 0 {
                let r = if keep { &mut rows[n * d..(n + 1) * d] } else { &mut rows[..d] };
                row_of(e.slot(), r)?;
                normalize_map(r, positions);
                self.mean.iter_mut().zip(r.iter()).for_each(|(m, &v)| *m += f64::from(v));
                n += 1;
            }
        }
        self.mean.iter_mut().for_each(|m| *m /= n as f64);
        Ok(n)
    }

    /// Mean and covariance of the L2-normalized rows (an even stride of at most `pca_rows`
    /// of them), top `pdim` eigenvectors.
    fn fit_pca(
        &mut self,
        bank: &Bank,
        row_of: &mut impl FnMut(usize, &mut [f32]) -> Result<()>,
    ) -> Result<()> {
        let d = self.dim;
        let stride = bank.len().div_ceil(self.params.pca_rows);
        let n = self.sample_rows(bank, stride, row_of)?;
        self.cov.fill(0.0);
        let mut b = 0;
        for e in bank.iter().step_by(stride) {
            row_of(e.slot(), &mut self.row)?;
            normalize_map(&mut self.row, self.params.positions);
            for (j, (&v, m)) in self.row.iter().zip(&self.mean).enumerate() {
                self.block[j * BLOCK + b] = f64::from(v) - m;
            }
            b += 1;
            if b == BLOCK {
                self.add_block(BLOCK);
                b = 0;
            }
        }
        if b > 0 {
            self.add_block(b);
        }
        for i in 0..d {
            for j in 0..i {
                self.cov[i * d + j] = self.cov[j * d + i];
            }
        }
        self.cov.iter_mut().for_each(|c| *c /= n as f64);
        top_eigen_into(
            &self.cov,
            self.params.pca_iters,
            &mut self.eig,
            &mut self.vals,
            &mut self.vecs,
        );
        let floor = self.vals[0].max(f64::MIN_POSITIVE) * 1e-6;
        for (r, (out, v)) in
            self.basis.chunks_exact_mut(d).zip(self.vecs.chunks_exact(d)).enumerate()
        {
            // divided by the standard deviation to the power `whiten`
            let s = 1.0 / std_power(self.vals[r].max(floor), self.params.whiten);
            out.iter_mut().zip(v).for_each(|(o, &x)| *o = (x * s) as f32);
        }
        Ok(())
    }

    /// The same PCA through the Gram matrix `G = X X^T / n` of the (at most `pca_rows`)
    /// sampled, centred rows `X`: its eigenvectors `u` give the covariance's, `X^T u /
    /// sqrt(n lambda)`, with the same eigenvalues `lambda`. `G` is zero-padded to `pca_rows`
    /// when the bank holds fewer entries; null directions get a zero basis row.
    fn fit_pca_gram(
        &mut self,
        bank: &Bank,
        row_of: &mut impl FnMut(usize, &mut [f32]) -> Result<()>,
    ) -> Result<()> {
        let (d, p) = (self.dim, self.pdim);
        let ns = self.sample.len() / d;
        let stride = bank.len().div_ceil(ns);
        let n = self.sample_rows(bank, stride, row_of)?;
        for r in self.sample[..n * d].chunks_exact_mut(d) {
            r.iter_mut().zip(&self.mean).for_each(|(v, &m)| *v -= m as f32);
        }
        self.cov.fill(0.0);
        for i in 0..n {
            let ri = &self.sample[i * d..(i + 1) * d];
            for j0 in (i..n).step_by(ROWS) {
                let rows = ROWS.min(n - j0);
                let xs = row_block(&self.sample, d, j0, rows);
                for (r, &v) in dots(true, ri, xs)[..rows].iter().enumerate() {
                    let (j, g) = (j0 + r, f64::from(v) / n as f64);
                    self.cov[i * ns + j] = g;
                    self.cov[j * ns + i] = g;
                }
            }
        }
        top_eigen_into(
            &self.cov,
            self.params.pca_iters,
            &mut self.eig,
            &mut self.vals,
            &mut self.vecs,
        );
        let floor = self.vals[0].max(f64::MIN_POSITIVE) * 1e-6;
        // [`ROWS`] basis rows at a time share each pass over the sampled rows
        for r0 in (0..p).step_by(ROWS) {
            let rows = ROWS.min(p - r0);
            let block = &mut self.basis[r0 * d..(r0 + rows) * d];
            block.fill(0.0);
            // unit direction X^T u / sqrt(n lambda), divided by the standard deviation
            // sqrt(lambda) to the power `whiten` (whitened: 1 / (sqrt(n) lambda)); none (a
            // zero row) for a null direction
            let scale: [Option<f64>; ROWS] = std::array::from_fn(|l| {
                let lam = self.vals[(r0 + l).min(p - 1)];
                (l < rows && lam > floor).then(|| {
                    if self.params.whiten == 1.0 {
                        1.0 / ((n as f64).sqrt() * lam)
                    } else {
                        1.0 / ((n as f64 * lam).sqrt() * std_power(lam, self.params.whiten))
                    }
                })
            });
            for (i, xi) in self.sample[..n * d].chunks_exact(d).enumerate() {
                for (l, out) in block.chunks_exact_mut(d).enumerate() {
                    if let Some(s) = scale[l] {
                        let c = (self.vecs[(r0 + l) * ns + i] * s) as f32;
                        out.iter_mut().zip(xi).for_each(|(o, &x)| *o += c * x);
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds the upper triangle of `block^T block` (the first `b` columns) to the covariance.
    fn add_block(&mut self, b: usize) {
        let d = self.dim;
        for i in 0..d {
            let bi = &self.block[i * BLOCK..i * BLOCK + b];
            let row = &mut self.cov[i * d..(i + 1) * d];
            for (j, c) in row.iter_mut().enumerate().skip(i) {
                let bj = &self.block[j * BLOCK..j * BLOCK + b];
                *c += bi.iter().zip(bj).map(|(x, y)| x * y).sum::<f64>();
            }
        }
        self.block.fill(0.0);
    }

    /// Projects every entry (in `slot_of` order) into the (whitened) PCA space, unit rows;
    /// [`ROWS`] entries at a time share each pass over the basis.
    fn project(
        &mut self,
        bank: &Bank,
        row_of: &mut impl FnMut(usize, &mut [f32]) -> Result<()>,
    ) -> Result<()> {
        let (p, d, n) = (self.pdim, self.dim, bank.len());
        for i0 in (0..n).step_by(ROWS) {
            let rows = ROWS.min(n - i0);
            for (r, x) in self.rows.chunks_exact_mut(d).take(rows).enumerate() {
                row_of(self.slot_of[i0 + r] as usize, x)?;
                centre_row(x, self.params.positions, &self.mean);
            }
            let xs = row_block(&self.rows, d, 0, rows);
            for (c, b) in self.basis.chunks_exact(d).enumerate() {
                let s = dots(self.gram, b, xs);
                for (r, &v) in s[..rows].iter().enumerate() {
                    self.z[(i0 + r) * p + c] = v;
                }
            }
            self.z[i0 * p..(i0 + rows) * p].chunks_exact_mut(p).for_each(normalize);
        }
        Ok(())
    }

    /// Brute-force `neighbours` nearest neighbours by cosine similarity; edge weights
    /// `max(s, 0)^gamma`; degrees of the symmetrized graph.
    fn knn(&mut self, n: usize) {
        let (p, kn, gamma) = (self.pdim, self.params.neighbours, self.params.gamma);
        let kn_eff = kn.min(n - 1);
        self.nbr[..n * kn].fill(u32::MAX);
        self.w[..n * kn].fill(f32::NEG_INFINITY);
        // [`ROWS`] entries scan the bank together
        for i0 in (0..n).step_by(ROWS) {
            let rows = ROWS.min(n - i0);
            let xs = row_block(&self.z, p, i0, rows);
            for (j, zj) in self.z[..n * p].chunks_exact(p).enumerate() {
                let s = dots(self.gram, zj, xs);
                for (r, &v) in s[..rows].iter().enumerate() {
                    let i = i0 + r;
                    if j != i {
                        let at = i * kn..i * kn + kn_eff;
                        insert_top(&mut self.w[at.clone()], &mut self.nbr[at], v, j);
                    }
                }
            }
        }
        for w in self.w[..n * kn].iter_mut() {
            *w = edge_weight(*w, gamma);
        }
        self.deg[..n].fill(0.0);
        for i in 0..n {
            for (&j, &w) in self.nbr[i * kn..(i + 1) * kn].iter().zip(&self.w[i * kn..(i + 1) * kn])
            {
                if j != u32::MAX {
                    self.deg[i] += w;
                    self.deg[j as usize] += w;
                }
            }
        }
    }

    /// `Y0`: one-hot for given entries, teacher probabilities (or zeros, without
    /// [`PropagationParams::teacher_start`]) for pseudo entries.
    fn start_labels(
        &mut self,
        bank: &Bank,
        n: usize,
        row_of: &mut impl FnMut(usize, &mut [f32]) -> Result<()>,
        predict: &mut impl FnMut(usize, &[f32], &mut [f32]) -> Result<()>,
    ) -> Result<()> {
        let k = self.k;
        for i in 0..n {
            let e = bank.entry(self.slot_of[i] as usize).expect("slot from bank.iter");
            let y = &mut self.y0[i * k..(i + 1) * k];
            match e.kind() {
                LabelKind::Given => {
                    y.fill(0.0);
                    y[e.label() as usize] = 1.0;
                }
                LabelKind::Pseudo if self.params.teacher_start => {
                    row_of(e.slot(), &mut self.row)?;
                    predict(e.slot(), &self.row, y)?;
                }
                LabelKind::Pseudo => y.fill(0.0),
            }
        }
        Ok(())
    }

    /// `out += S x` over the symmetric graph (`x`, `out`: `[n, K]`); with `normalize_rows`,
    /// `out += D^{-1} W x` instead.
    fn spread(&self, n: usize, x: &[f32], out: &mut [f32], normalize_rows: bool) {
        let (k, kn) = (self.k, self.params.neighbours);
        let inv = |d: f32| if d > 0.0 { 1.0 / d } else { 0.0 };
        for i in 0..n {
            for (&j, &w) in self.nbr[i * kn..(i + 1) * kn].iter().zip(&self.w[i * kn..(i + 1) * kn])
            {
                if j == u32::MAX || w == 0.0 {
                    continue;
                }
                let j = j as usize;
                let (di, dj) = (self.deg[i], self.deg[j]);
                let (wij, wji) = if normalize_rows {
                    (w * inv(di), w * inv(dj))
                } else {
                    let s = w * inv((di * dj).sqrt());
                    (s, s)
                };
                for c in 0..k {
                    out[i * k + c] += wij * x[j * k + c];
                    out[j * k + c] += wji * x[i * k + c];
                }
            }
        }
    }

    fn propagate(&mut self, n: usize) {
        let (k, a) = (self.k, self.params.alpha);
        let len = n * k;
        self.f[..len].copy_from_slice(&self.y0[..len]);
        let mut f = std::mem::take(&mut self.f);
        let mut f2 = std::mem::take(&mut self.f2);
        for _ in 0..self.params.iters {
            f2[..len].fill(0.0);
            self.spread(n, &f, &mut f2, false);
            for (o, &y) in f2[..len].iter_mut().zip(&self.y0[..len]) {
                *o = a * *o + (1.0 - a) * y;
            }
            std::mem::swap(&mut f, &mut f2);
        }
        // neighbour memory D^{-1} W Y0 (into f2)
        f2[..len].fill(0.0);
        let y0 = std::mem::take(&mut self.y0);
        self.spread(n, &y0, &mut f2, true);
        self.y0 = y0;
        self.f = f;
        self.f2 = f2;
    }

    /// Per pseudo entry: class, certainty x class balance, neighbour memory.
    fn read_out(&mut self, bank: &Bank, n: usize) -> RefreshStats {
        let k = self.k;
        let ln_k = (k as f32).ln();
        if self.params.balance_iters > 0 {
            balance(&mut self.f[..n * k], &mut self.colsum, self.params.balance_iters);
        }
        self.counts.fill(0);
        let mut st = RefreshStats { entries: n, ..RefreshStats::default() };
        let mut certainty_sum = 0.0;
        for i in 0..n {
            let slot = self.slot_of[i] as usize;
            let e = bank.entry(slot).expect("slot from bank.iter");
            let f = &mut self.f[i * k..(i + 1) * k];
            f.iter_mut().for_each(|v| *v = v.max(0.0));
            let sum: f32 = f.iter().sum();
            if sum > 0.0 {
                f.iter_mut().for_each(|v| *v /= sum);
            } else {
                f.fill(1.0 / k as f32);
            }
            let m = &mut self.f2[i * k..(i + 1) * k];
            let msum: f32 = m.iter().sum();
            if msum > 0.0 {
                m.iter_mut().for_each(|v| *v /= msum);
            } else {
                m.fill(1.0 / k as f32);
            }
            self.memory[slot * k..(slot + 1) * k].copy_from_slice(m);
            if e.kind() == LabelKind::Given {
                // a given entry votes with its label
                f.fill(0.0);
                f[e.label() as usize] = 1.0;
                self.target[slot] = e.label();
                self.weight[slot] = 0.0;
                continue;
            }
            let (c, _) = crate::objective::fixmatch::argmax(f);
            let h: f32 = f.iter().filter(|&&v| v > 0.0).map(|&v| -v * v.ln()).sum();
            let cert = (1.0 - h / ln_k).clamp(0.0, 1.0);
            self.target[slot] = c as u32;
            self.weight[slot] = cert;
            self.counts[c] += 1;
            st.pseudo += 1;
            st.relabelled += usize::from(c as u32 != e.label());
            certainty_sum += cert;
        }
        st.mean_certainty = if st.pseudo > 0 { certainty_sum / st.pseudo as f32 } else { 0.0 };
        // class balance n / (K n_c)
        let total = st.pseudo as f32;
        for i in 0..n {
            let slot = self.slot_of[i] as usize;
            if self.weight[slot] > 0.0 {
                let nc = self.counts[self.target[slot] as usize] as f32;
                self.weight[slot] *= total / (k as f32 * nc);
            }
        }
        st
    }

    /// The graph's vote for a new embedding `x` (`dim` values): the similarity-weighted
    /// (`max(s, 0)^gamma`) class distributions of its `neighbours` nearest entries of the last
    /// refresh, in the same whitened PCA space (given entries vote with their label, pseudo
    /// entries with their propagated distribution). Writes `K` values summing to 1 into `out`
    /// and returns true; returns false (and leaves `out`) before the first refresh.
    /// Allocation-free.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` or `out` has the wrong length.
    pub fn vote_into(&mut self, x: &[f32], out: &mut [f32]) -> Result<bool> {
        if x.len() != self.dim || out.len() != self.k {
            return Err(Error::ShapeMismatch {
                op: "Propagation::vote_into",
                expected: format!("{} values in, {} out", self.dim, self.k),
                got: format!("{} in, {} out", x.len(), out.len()),
            });
        }
        if self.n == 0 {
            return Ok(false);
        }
        let (p, k, n) = (self.pdim, self.k, self.n);
        self.row.copy_from_slice(x);
        centre_row(&mut self.row, self.params.positions, &self.mean);
        for (o, b) in self.q.iter_mut().zip(self.basis.chunks_exact(self.dim)) {
            *o = dots(self.gram, b, [&self.row])[0];
        }
        normalize(&mut self.q);
        let kn = self.params.neighbours.min(n);
        let (ws, nb) = (&mut self.qw[..kn], &mut self.qn[..kn]);
        ws.fill(f32::NEG_INFINITY);
        nb.fill(u32::MAX);
        for (j, zj) in self.z[..n * p].chunks_exact(p).enumerate() {
            insert_top(ws, nb, dots(self.gram, zj, [&self.q])[0], j);
        }
        out.fill(0.0);
        let mut total = 0.0;
        for (&j, &s) in nb.iter().zip(ws.iter()) {
            let w = edge_weight(s, self.params.gamma);
            if j == u32::MAX || w == 0.0 {
                continue;
            }
            let fj = &self.f[j as usize * k..(j as usize + 1) * k];
            out.iter_mut().zip(fj).for_each(|(o, &v)| *o += w * v);
            total += w;
        }
        if total > 0.0 {
            out.iter_mut().for_each(|o| *o /= total);
        } else {
            out.fill(1.0 / k as f32);
        }
        Ok(true)
    }

    /// The per-slot state (class, weight, memory) and the refresh tick, for checkpoints.
    pub(crate) fn state(&self) -> (&[u32], &[f32], &[f32], u64, u64) {
        (&self.target, &self.weight, &self.memory, self.refreshed_tick, self.refreshes)
    }

    /// What [`Propagation::vote_into`] reads, for checkpoints: a header `[n, pdim, dim]`,
    /// then (if `n > 0`) the PCA mean (as the `f32` the projection uses) and basis, the last
    /// graph's projected rows and class distributions.
    pub(crate) fn vote_state(&self) -> Vec<f32> {
        let (p, k, n) = (self.pdim, self.k, self.n);
        let mut v = Vec::with_capacity(3 + self.dim + self.basis.len() + n * (p + k));
        v.extend([n as f32, p as f32, self.dim as f32]);
        if n > 0 {
            v.extend(self.mean.iter().map(|&m| m as f32));
            v.extend_from_slice(&self.basis);
            v.extend_from_slice(&self.z[..n * p]);
            v.extend_from_slice(&self.f[..n * k]);
        }
        v
    }

    /// Restores what [`Propagation::vote_state`] returned, after [`Propagation::restore`]
    /// (a refreshed propagation must have a graph, a fresh one none).
    pub(crate) fn restore_vote(&mut self, v: &[f32]) -> Result<()> {
        let (d, p, k, cap) = (self.dim, self.pdim, self.k, self.slot_of.len());
        let bad = |reason: String| Err(Error::InvalidParam { name: "graph vote state", reason });
        let Some((&[n, vp, vd], v)) = v.split_first_chunk::<3>() else {
            return bad(format!("{} values, no header", v.len()));
        };
        if (vp, vd) != (p as f32, d as f32) {
            return bad(format!("a {vd}-d graph in {vp} dimensions, expected {d} in {p}"));
        }
        if !(n >= 0.0 && n <= cap as f32 && n.fract() == 0.0) {
            return bad(format!("{n} entries, capacity {cap}"));
        }
        let n = n as usize;
        if (n > 0) != (self.refreshes > 0) {
            return bad(format!("{n} entries after {} refreshes", self.refreshes));
        }
        let want = if n > 0 { d + p * d + n * (p + k) } else { 0 };
        if v.len() != want || v.iter().any(|x| !x.is_finite()) {
            return bad(format!("{} values, expected {want} finite ones", v.len()));
        }
        if v[v.len() - n * k..].iter().any(|&x| x < 0.0) {
            return bad("a negative class probability".into());
        }
        self.n = n;
        if n == 0 {
            return Ok(());
        }
        let (mean, rest) = v.split_at(d);
        let (basis, rest) = rest.split_at(p * d);
        let (z, f) = rest.split_at(n * p);
        self.mean.iter_mut().zip(mean).for_each(|(m, &x)| *m = f64::from(x));
        self.basis.copy_from_slice(basis);
        self.z[..n * p].copy_from_slice(z);
        self.f[..n * k].copy_from_slice(f);
        Ok(())
    }

    /// Restores what [`Propagation::state`] returned.
    pub(crate) fn restore(
        &mut self,
        target: &[f32],
        weight: &[f32],
        memory: &[f32],
        refreshed_tick: u64,
        refreshes: u64,
    ) -> Result<()> {
        if target.len() != self.target.len()
            || weight.len() != self.weight.len()
            || memory.len() != self.memory.len()
        {
            return Err(Error::ShapeMismatch {
                op: "Propagation::restore",
                expected: format!("{} slots", self.target.len()),
                got: format!("{} / {} / {}", target.len(), weight.len(), memory.len() / self.k),
            });
        }
        for (o, &t) in self.target.iter_mut().zip(target) {
            if !(t >= 0.0 && (t as usize) < self.k) {
                return Err(Error::InvalidParam {
                    name: "propagated class",
                    reason: format!("{t} not a class index"),
                });
            }
            *o = t as u32;
        }
        self.weight.copy_from_slice(weight);
        self.memory.copy_from_slice(memory);
        self.refreshed_tick = refreshed_tick;
        self.refreshes = refreshes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bank::BankParams;
    use crate::gate::Admitted;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    /// Three Gaussian blobs in 8-d; `labels` given per class, the rest pseudo with a wrong
    /// stored label (always 0).
    fn blobs(n_unlabeled: usize, seed: u64) -> (Bank, Vec<u32>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut bank = BankParams::new(512, 8, 3).build().unwrap();
        let mut truth = vec![u32::MAX; 512];
        let point = |c: usize, rng: &mut StdRng| {
            let mut x: Vec<f32> = (0..8).map(|_| 0.3 * (rng.random::<f32>() - 0.5)).collect();
            x[c] += 1.0;
            x[7] += 1.0;
            x
        };
        for c in 0..3 {
            let o = bank.insert_given(&point(c, &mut rng), c as u32, &mut rng).unwrap();
            truth[o.slot().unwrap()] = c as u32;
        }
        for i in 0..n_unlabeled {
            let c = i % 3;
            let x = point(c, &mut rng);
            let o = bank.insert_pseudo(Admitted::ungated(&x), 0, 0.5, &mut rng).unwrap();
            truth[o.slot().unwrap()] = c as u32;
        }
        (bank, truth)
    }

    /// The one-product-at-a-time dot of the covariance path.
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        dots(false, a, [b])[0]
    }

    /// An uninformed teacher.
    fn uniform(_: &[f32], p: &mut [f32]) -> Result<()> {
        let k = p.len() as f32;
        p.fill(1.0 / k);
        Ok(())
    }

    fn small() -> PropagationParams {
        PropagationParams { pca_dim: 4, neighbours: 6, ..PropagationParams::default() }
    }

    #[test]
    fn propagates_three_labels_to_their_clusters() {
        let (bank, truth) = blobs(150, 3);
        let mut prop = small().build(512, 8, 3).unwrap();
        let st = prop.refresh(&bank, uniform).unwrap().unwrap();
        assert_eq!((st.entries, st.pseudo), (153, 150));
        let right = bank
            .iter()
            .filter_map(|e| prop.target(&bank, e.slot()).map(|(c, _)| c == truth[e.slot()]))
            .filter(|&ok| ok)
            .count();
        assert!(right >= 145, "{right} of 150");
        // two thirds of the stored labels (all 0) were wrong
        assert!(st.relabelled >= 95, "{st:?}");
    }

    #[test]
    fn the_neighbour_memory_is_a_distribution_of_the_neighbours_labels() {
        let (bank, truth) = blobs(90, 4);
        let mut prop = small().build(512, 8, 3).unwrap();
        // a perfect teacher: one-hot of the truth (predict sees only the embedding: argmax of
        // the first three components)
        prop.refresh(&bank, |x, p| {
            p.fill(0.0);
            let c = (0..3).max_by(|&a, &b| x[a].total_cmp(&x[b])).unwrap();
            p[c] = 1.0;
            Ok(())
        })
        .unwrap();
        for e in bank.iter().filter(|e| e.kind() == LabelKind::Pseudo) {
            let m = prop.memory(&bank, e.slot()).unwrap();
            assert!((m.iter().sum::<f32>() - 1.0).abs() < 1e-4);
            assert!(m[truth[e.slot()] as usize] > 0.9, "{m:?}");
        }
    }

    #[test]
    fn certainty_and_class_balance_weights() {
        let (bank, _) = blobs(60, 5);
        let mut prop = small().build(512, 8, 3).unwrap();
        // a weakly informed teacher: 0.6 on the cluster's class
        prop.refresh(&bank, |x, p| {
            p.fill(0.2);
            p[(0..3).max_by(|&a, &b| x[a].total_cmp(&x[b])).unwrap()] = 0.6;
            Ok(())
        })
        .unwrap();
        let (mut wsum, mut n) = (0.0, 0);
        for e in bank.iter() {
            match (e.kind(), prop.target(&bank, e.slot())) {
                (LabelKind::Given, t) => assert_eq!(t, None),
                (LabelKind::Pseudo, Some((_, w))) => {
                    assert!(w > 0.0 && w.is_finite());
                    wsum += w;
                    n += 1;
                }
                (LabelKind::Pseudo, None) => panic!("pseudo entry without a target"),
            }
        }
        // balanced clusters: class weights ~1, so the mean weight is the mean certainty
        assert_eq!(n, 60);
        assert!(wsum / 60.0 > 0.05 && wsum / 60.0 <= 1.5, "{}", wsum / 60.0);
    }

    #[test]
    fn entries_stored_after_the_refresh_have_no_target_and_small_banks_are_skipped() {
        let (mut bank, _) = blobs(30, 6);
        let mut prop = small().build(512, 8, 3).unwrap();
        let mut tiny = BankParams::new(512, 8, 3).build().unwrap();
        let mut rng = StdRng::seed_from_u64(0);
        tiny.insert_given(&[1.0; 8], 0, &mut rng).unwrap();
        assert_eq!(prop.refresh(&tiny, uniform).unwrap(), None);
        prop.refresh(&bank, uniform).unwrap();
        let o = bank.insert_pseudo(Admitted::ungated(&[0.5; 8]), 1, 0.9, &mut rng).unwrap();
        assert_eq!(prop.target(&bank, o.slot().unwrap()), None);
        let wrong = BankParams::new(512, 4, 3).build().unwrap();
        assert!(matches!(prop.refresh(&wrong, |_, _| Ok(())), Err(Error::ShapeMismatch { .. })));
    }

    #[test]
    fn the_vote_of_a_new_point_is_its_clusters_class() {
        let (bank, _) = blobs(150, 7);
        let mut prop = small().build(512, 8, 3).unwrap();
        let mut v = [0f32; 3];
        assert!(!prop.vote_into(&[0.0; 8], &mut v).unwrap(), "no vote before a refresh");
        assert_eq!(v, [0.0; 3]);
        prop.refresh(&bank, uniform).unwrap();
        let mut rng = StdRng::seed_from_u64(8);
        for i in 0..30 {
            let c = i % 3;
            let mut x: Vec<f32> = (0..8).map(|_| 0.3 * (rng.random::<f32>() - 0.5)).collect();
            x[c] += 1.0;
            x[7] += 1.0;
            assert!(prop.vote_into(&x, &mut v).unwrap());
            assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{v:?}");
            // (an uninformed teacher leaves the propagated distributions close to uniform)
            assert_eq!(crate::objective::fixmatch::argmax(&v).0, c, "cluster {c}: {v:?}");
        }
        // with one neighbour, a given entry's own embedding gets exactly its label
        let mut one = PropagationParams { neighbours: 1, ..small() }.build(512, 8, 3).unwrap();
        one.refresh(&bank, uniform).unwrap();
        for e in bank.iter().filter(|e| e.kind() == LabelKind::Given) {
            let mut x = [0f32; 8];
            e.embedding_into(&mut x).unwrap();
            one.vote_into(&x, &mut v).unwrap();
            let mut want = [0f32; 3];
            want[e.label() as usize] = 1.0;
            assert_eq!(v, want);
        }
        assert!(matches!(
            prop.vote_into(&[0.0; 7], &mut v),
            Err(Error::ShapeMismatch { op: "Propagation::vote_into", .. })
        ));
        assert!(matches!(
            prop.vote_into(&[0.0; 8], &mut [0.0; 2]),
            Err(Error::ShapeMismatch { .. })
        ));
    }

    /// The two propagations' votes agree within 1e-3 on 20 random 8-d points.
    fn same_votes(a: &mut Propagation, b: &mut Propagation, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut va, mut vb) = ([0f32; 3], [0f32; 3]);
        for _ in 0..20 {
            let x: Vec<f32> = (0..8).map(|_| rng.random::<f32>()).collect();
            a.vote_into(&x, &mut va).unwrap();
            b.vote_into(&x, &mut vb).unwrap();
            assert!(va.iter().zip(&vb).all(|(a, b)| (a - b).abs() < 1e-3), "{va:?} {vb:?}");
        }
    }

    #[test]
    fn the_gram_path_finds_the_same_graph_as_the_covariance() {
        let (bank, _) = blobs(150, 9);
        let teacher = |x: &[f32], p: &mut [f32]| {
            p.fill(0.2);
            p[(0..3).max_by(|&a, &b| x[a].total_cmp(&x[b])).unwrap()] = 0.6;
            Ok(())
        };
        let mut cov = small().build_with(512, 8, 3, false);
        let mut gram = small().build_with(512, 8, 3, true);
        let a = cov.refresh(&bank, teacher).unwrap().unwrap();
        let b = gram.refresh(&bank, teacher).unwrap().unwrap();
        assert_eq!((a.entries, a.pseudo, a.relabelled), (b.entries, b.pseudo, b.relabelled));
        assert!((a.mean_certainty - b.mean_certainty).abs() < 1e-3, "{a:?} {b:?}");
        for e in bank.iter() {
            let (ta, tb) = (cov.target(&bank, e.slot()), gram.target(&bank, e.slot()));
            assert_eq!(ta.map(|t| t.0), tb.map(|t| t.0));
            if let (Some((_, wa)), Some((_, wb))) = (ta, tb) {
                assert!((wa - wb).abs() < 1e-3, "{wa} {wb}");
            }
        }
        same_votes(&mut cov, &mut gram, 10);
        let mut vb = [0f32; 3];
        // fewer entries than the Gram matrix holds (zero padding), and null directions
        let (small_bank, _) = blobs(9, 11);
        let mut g =
            PropagationParams { pca_dim: 8, neighbours: 3, ..small() }.build_with(512, 8, 3, true);
        g.refresh(&small_bank, teacher).unwrap().unwrap();
        g.vote_into(&[0.5; 8], &mut vb).unwrap();
        assert!(vb.iter().all(|v| v.is_finite()) && (vb.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }

    #[test]
    fn dots_give_the_bits_of_one_product_at_a_time() {
        let mut rng = StdRng::seed_from_u64(3);
        for d in [1, 7, 8, 13, 40] {
            let v = |rng: &mut StdRng| (0..d).map(|_| rng.random::<f32>() - 0.5).collect();
            let b: Vec<f32> = v(&mut rng);
            let xs: Vec<Vec<f32>> = (0..4).map(|_| v(&mut rng)).collect();
            let refs = [&xs[0][..], &xs[1], &xs[2], &xs[3]];
            let (wide, seq) = (dots(true, &b, refs), dots(false, &b, refs));
            for (r, x) in xs.iter().enumerate() {
                let one: f32 = x.iter().zip(&b).map(|(x, y)| x * y).sum();
                assert_eq!(seq[r].to_bits(), one.to_bits(), "d {d} row {r}");
                assert_eq!(wide[r].to_bits(), dot_wide(x, &b).to_bits(), "d {d} row {r}");
            }
        }
        // an all-negative-zero product keeps its sign, as `Iterator::sum` does
        assert!(dots(false, &[-0.0], [&[1.0][..]])[0].is_sign_negative());
    }

    #[test]
    fn blocks_of_rows_give_the_one_row_results() {
        // 153 entries: the last block of rows is short; PCA-6: so is the last block of the
        // Gram path's basis rows
        let (bank, _) = blobs(150, 9);
        for gram in [false, true] {
            let mut prop = PropagationParams { pca_dim: 6, ..small() }.build_with(512, 8, 3, gram);
            prop.refresh(&bank, uniform).unwrap().unwrap();
            let (n, p, d, kn) = (prop.n, prop.pdim, prop.dim, prop.params.neighbours);
            assert_eq!((n, p), (153, 6));
            let dot = if gram { dot_wide } else { dot };
            if gram {
                let ns = prop.sample.len() / d;
                for i in 0..n.min(ns) {
                    for j in 0..n.min(ns) {
                        let (ri, rj) = (&prop.sample[i * d..][..d], &prop.sample[j * d..][..d]);
                        let g = f64::from(dot_wide(ri, rj)) / n.min(ns) as f64;
                        assert_eq!(prop.cov[i * ns + j].to_bits(), g.to_bits(), "gram {i} {j}");
                    }
                }
            }
            let mut row = vec![0f32; d];
            let mut z = vec![0f32; p];
            for i in 0..n {
                let e = bank.entry(prop.slot_of[i] as usize).unwrap();
                e.embedding_into(&mut row).unwrap();
                centre_row(&mut row, prop.params.positions, &prop.mean);
                for (o, b) in z.iter_mut().zip(prop.basis.chunks_exact(d)) {
                    *o = dot(b, &row);
                }
                normalize(&mut z);
                let zi = &prop.z[i * p..(i + 1) * p];
                assert!(z.iter().zip(zi).all(|(a, b)| a.to_bits() == b.to_bits()), "z {i}");
            }
            for i in 0..n {
                let (mut ws, mut nb) = (vec![f32::NEG_INFINITY; kn], vec![u32::MAX; kn]);
                let zi = &prop.z[i * p..(i + 1) * p];
                for j in (0..n).filter(|&j| j != i) {
                    insert_top(&mut ws, &mut nb, dot(zi, &prop.z[j * p..(j + 1) * p]), j);
                }
                ws.iter_mut().for_each(|w| *w = edge_weight(*w, prop.params.gamma));
                assert_eq!(nb, prop.nbr[i * kn..(i + 1) * kn], "neighbours of {i}");
                let w = &prop.w[i * kn..(i + 1) * kn];
                assert!(ws.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits()), "w {i}");
            }
        }
    }

    #[test]
    fn the_vote_state_round_trips_and_bad_states_are_refused() {
        let (bank, _) = blobs(60, 12);
        let mut a = small().build(512, 8, 3).unwrap();
        let mut b = small().build(512, 8, 3).unwrap();
        b.restore_vote(&a.vote_state()).unwrap();
        a.refresh(&bank, uniform).unwrap();
        let v = a.vote_state();
        assert!(b.restore_vote(&v).is_err(), "a graph for a propagation never refreshed");
        let (target, weight, memory, tick, refreshes) = a.state();
        let t: Vec<f32> = target.iter().map(|&t| t as f32).collect();
        let (w, m) = (weight.to_vec(), memory.to_vec());
        b.restore(&t, &w, &m, tick, refreshes).unwrap();
        b.restore_vote(&v).unwrap();
        let (mut va, mut vb) = ([0f32; 3], [0f32; 3]);
        for x in [[0.3f32; 8], [1.0, 0.0, 0.0, 0.1, 0.0, 0.0, 0.0, 1.0]] {
            a.vote_into(&x, &mut va).unwrap();
            b.vote_into(&x, &mut vb).unwrap();
            assert_eq!(va, vb);
        }
        let mut bad = v.clone();
        bad[1] = 5.0; // another PCA dimension
        assert!(b.restore_vote(&bad).is_err());
        assert!(b.restore_vote(&v[..v.len() - 1]).is_err());
        let mut bad = v.clone();
        *bad.last_mut().unwrap() = -0.5;
        assert!(b.restore_vote(&bad).is_err());
        let mut bad = v;
        bad[0] = 1e9;
        assert!(b.restore_vote(&bad).is_err());
        assert!(b.restore_vote(&[]).is_err());
    }

    #[test]
    fn map_rows_weigh_every_position_the_same() {
        // 2 channels x 2 positions, channel-major: position 0 = (3, 4), position 1 = (0, 2)
        let mut row = [3.0, 0.0, 4.0, 2.0];
        normalize_map(&mut row, 2);
        let h = 0.5f32.sqrt(); // each position a unit vector, the row then / sqrt(2)
        let want = [0.6 * h, 0.0, 0.8 * h, h];
        assert!(row.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{row:?}");
        let mut row = [3.0, 0.0, 4.0, 2.0];
        normalize_map(&mut row, 1);
        let n = 29f32.sqrt();
        assert!(
            row.iter().zip([3.0 / n, 0.0, 4.0 / n, 2.0 / n]).all(|(a, b)| (a - b).abs() < 1e-6)
        );
        // a zero position stays zero
        let mut row = [0.0, 1.0, 0.0, 0.0];
        normalize_map(&mut row, 2);
        assert_eq!(row, [0.0, 1.0, 0.0, 0.0]);
        assert!(matches!(
            PropagationParams { positions: 3, ..small() }.build(64, 8, 3),
            Err(Error::InvalidParam { name: "positions", .. })
        ));
    }

    #[test]
    fn balancing_evens_the_class_totals_and_keeps_distributions() {
        // 4 rows that all lean to class 0
        let mut f = [0.9f32, 0.1, 0.8, 0.2, 0.7, 0.3, 0.45, 0.55];
        let mut colsum = [0f64; 2];
        balance(&mut f, &mut colsum, 50);
        for r in f.chunks_exact(2) {
            assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{f:?}");
        }
        let c0: f32 = f.iter().step_by(2).sum();
        assert!((c0 - 2.0).abs() < 1e-3, "class 0 holds {c0} of 4 rows: {f:?}");
        // the order of the rows' leanings is kept: the surest class-0 row stays the surest
        assert!(f[0] > f[2] && f[2] > f[4] && f[4] > f[6], "{f:?}");
        assert!(f[6] < 0.5, "the least class-0 row now leans to class 1: {f:?}");
        // already balanced: unchanged
        let mut g = [0.8f32, 0.2, 0.2, 0.8];
        balance(&mut g, &mut colsum, 10);
        assert!(g.iter().zip([0.8, 0.2, 0.2, 0.8]).all(|(a, b)| (a - b).abs() < 1e-5), "{g:?}");
        // in a refresh: the propagated targets still find the clusters, and the vote is a
        // distribution
        let (bank, truth) = blobs(150, 13);
        let mut p = PropagationParams { balance_iters: 30, ..small() }.build(512, 8, 3).unwrap();
        p.refresh(&bank, uniform).unwrap().unwrap();
        let (mut right, mut total) = (0, 0);
        for e in bank.iter() {
            if let Some((c, _)) = p.target(&bank, e.slot()) {
                right += usize::from(c == truth[e.slot()]);
                total += 1;
            }
        }
        assert!(right * 10 >= total * 9, "{right} of {total}");
    }

    #[test]
    fn without_the_teacher_start_only_the_given_labels_spread() {
        // a sure but wrong teacher: every pseudo entry is class 0
        let wrong = |_: &[f32], p: &mut [f32]| {
            p.copy_from_slice(&[1.0, 0.0, 0.0]);
            Ok(())
        };
        let (bank, truth) = blobs(150, 16);
        let right = |teacher_start: bool| {
            let q = PropagationParams { teacher_start, ..small() };
            let mut p = q.build(512, 8, 3).unwrap();
            p.refresh(&bank, wrong).unwrap().unwrap();
            bank.iter()
                .filter_map(|e| p.target(&bank, e.slot()).map(|(c, _)| c == truth[e.slot()]))
                .filter(|&r| r)
                .count()
        };
        let (with, without) = (right(true), right(false));
        assert!(without >= 135, "{without} of 150 right from the three labels alone");
        assert!(with < without, "the wrong teacher pulls the start: {with} vs {without}");
    }

    #[test]
    fn partial_whitening_agrees_between_the_gram_and_covariance_paths() {
        let (bank, _) = blobs(150, 14);
        let q = PropagationParams { whiten: 0.5, positions: 2, ..small() };
        let mut cov = q.build_with(512, 8, 3, false);
        let mut gram = q.build_with(512, 8, 3, true);
        cov.refresh(&bank, uniform).unwrap().unwrap();
        gram.refresh(&bank, uniform).unwrap().unwrap();
        same_votes(&mut cov, &mut gram, 15);
        // whitening changes the space: the projections differ from the fully whitened ones
        let mut full = PropagationParams { positions: 2, ..small() }.build_with(512, 8, 3, false);
        full.refresh(&bank, uniform).unwrap().unwrap();
        assert_ne!(full.vote_state(), cov.vote_state());
    }

    #[test]
    fn bad_params_are_named() {
        for (p, name) in [
            (PropagationParams { alpha: 1.0, ..Default::default() }, "alpha"),
            (PropagationParams { neighbours: 0, ..Default::default() }, "neighbours"),
            (PropagationParams { gamma: f32::NAN, ..Default::default() }, "gamma"),
            (PropagationParams { every: 0, ..Default::default() }, "iters"),
            (PropagationParams { pca_rows: 1, ..Default::default() }, "pca_rows"),
            (PropagationParams { whiten: 1.5, ..Default::default() }, "whiten"),
            (PropagationParams { whiten: f32::NAN, ..Default::default() }, "whiten"),
            (PropagationParams { positions: 0, ..Default::default() }, "positions"),
        ] {
            match p.check() {
                Err(Error::InvalidParam { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{other:?}"),
            }
        }
    }
}
