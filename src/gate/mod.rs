//! Out-of-distribution gate: Mahalanobis distance to class means under a shared, shrunk
//! covariance, with a threshold calibrated on trusted in-distribution data.
//!
//! `GateParams -> check() -> fit(trusted, labels, unlabeled) -> Gate`.
//!
//! - **Statistics**: streaming (Welford) class means, pooled within-class scatter and the scatter
//!   of all samples pooled (the background), see [`GateStats`]. [`Gate::update`] adds a trusted
//!   sample in `O(p^2)`; [`Gate::refit`] re-derives the solver from the statistics.
//! - **Shrinkage** ([`Shrinkage`]): OAS (default), Ledoit-Wolf, or a fixed amount toward
//!   `(tr(S)/p) I`, so the covariance is usable with 10 samples per class.
//! - **Variants** ([`Variant`]): tied-covariance Mahalanobis (Lee et al. 2018), relative
//!   Mahalanobis (Ren et al. 2021: class distance minus the distance under one background
//!   Gaussian of all trusted data), and a diagonal covariance.
//! - **Projection** ([`Projection`]): optional PCA to `k` dims, fitted on the trusted data
//!   together with unlabeled data the caller passes (the PCA is unsupervised, so the unlabeled
//!   stream or the bank may be used; its labels and its cleanliness are never needed).
//! - **Score** (`min_c d_c(x)` for tied/diagonal, `min_c d_c(x) - d_0(x)` for relative, with
//!   `d` the squared Mahalanobis distance), computed in f64 from a precomputed whitening map
//!   `A = L^{-1} P` (Cholesky factor `L` of the shrunk covariance, projection `P`), so scoring
//!   a sample costs one `k x D` product plus `K k`, allocation-free.
//! - **Threshold**: the `target_accept` quantile of leave-one-out scores of the trusted data
//!   (each sample's own class mean recomputed without it, which scales its own-class distance by
//!   `(n_c / (n_c - 1))^2`; the covariance still contains it, a small residual optimism). A
//!   class with one sample cannot be left out; such a sample is scored against the other classes.
//!   [`Gate::calibrate`] replaces it by the quantile of scores of held-out in-distribution data.
//! - **Admission**: [`Gate::admit`] returns [`Verdict::Accepted`] with an [`Admitted`] token
//!   (the only way, besides the explicit [`Admitted::ungated`], to insert a pseudo-label into the
//!   bank) or [`Verdict::Rejected`]; both are counted in [`GateCounters`].
//! - **CLP** ([`clp`], [`Gate::clp`]): the confusion log probability of Winkens et al. (2020)
//!   as a dataset-level score of a batch.

mod clp;
pub mod eval;
pub mod linalg;
mod stats;

pub use clp::clp;
pub use stats::GateStats;

use crate::bank::MAX_CLASSES;
use crate::error::{Error, Result, check_finite};

/// How the covariance is shrunk toward a scaled identity.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Shrinkage {
    /// Oracle approximating shrinkage (Chen et al. 2010).
    #[default]
    Oas,
    /// Ledoit & Wolf (2004).
    LedoitWolf,
    /// A fixed amount in `[0, 1]`.
    Fixed(f64),
}

/// Which Mahalanobis score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Variant {
    /// `min_c (x - mu_c)^T S^-1 (x - mu_c)` with one shared covariance `S`.
    #[default]
    Tied,
    /// Relative Mahalanobis (Ren et al. 2021): tied distance minus the distance to a single
    /// Gaussian fitted to all trusted data.
    Relative,
    /// Tied, but only the diagonal of the covariance.
    Diagonal,
}

/// Optional dimension reduction before the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Projection {
    /// Work in the input space.
    #[default]
    None,
    /// PCA to `k` dims (top eigenvectors of the covariance of trusted + unlabeled data).
    Pca(usize),
}

/// Gate parameters. Default: OAS, tied, no projection, 95% target acceptance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateParams {
    /// Covariance shrinkage.
    pub shrinkage: Shrinkage,
    /// Score variant.
    pub variant: Variant,
    /// Optional projection.
    pub projection: Projection,
    /// Fraction of in-distribution samples the threshold should accept, in `(0, 1]`.
    pub target_accept: f64,
}

impl Default for GateParams {
    fn default() -> Self {
        GateParams {
            shrinkage: Shrinkage::Oas,
            variant: Variant::Tied,
            projection: Projection::None,
            target_accept: 0.95,
        }
    }
}

/// A sample the gate accepted (or an explicit opt-out): the only way to insert a pseudo-label
/// into the [`crate::bank::Bank`].
#[derive(Debug, Clone, Copy)]
pub struct Admitted<'x> {
    x: &'x [f32],
    score: Option<f32>,
}

impl<'x> Admitted<'x> {
    /// Admits `x` WITHOUT a gate: an explicit opt-out for pipelines that run no OOD gate.
    pub fn ungated(x: &'x [f32]) -> Self {
        Admitted { x, score: None }
    }

    /// Admits `x` with a `score` computed by a gate built on top of [`Gate`] (the learner's
    /// combined Mahalanobis + norm gate).
    pub(crate) fn scored(x: &'x [f32], score: f32) -> Self {
        Admitted { x, score: Some(score) }
    }

    /// The embedding.
    pub fn embedding(&self) -> &'x [f32] {
        self.x
    }

    /// The gate score, `None` if ungated.
    pub fn score(&self) -> Option<f32> {
        self.score
    }
}

/// The gate's decision about one sample.
#[derive(Debug, Clone, Copy)]
pub enum Verdict<'x> {
    /// In distribution: may be pseudo-labelled.
    Accepted(Admitted<'x>),
    /// Out of distribution: gets no pseudo-label, never enters the bank as pseudo-labelled.
    Rejected {
        /// Its score (above the threshold).
        score: f32,
    },
}

/// Counts of the gate's decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GateCounters {
    /// Samples accepted by [`Gate::admit`].
    pub accepted: u64,
    /// Samples rejected by [`Gate::admit`].
    pub rejected: u64,
    /// Trusted samples added by [`Gate::update`] (after the fit).
    pub updates: u64,
}

/// A fitted PCA projection `z = P (x - m)` (top-`k` eigenvectors of the data's covariance).
///
/// # Examples
/// ```
/// use edge_ssl::gate::Pca;
///
/// // points along the diagonal: one direction carries all the variance
/// let x = [0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0];
/// let pca = Pca::fit(&x, 2, 1)?;
/// let z = pca.project_rows(&[3.0, 3.0, 0.0, 0.0])?;
/// assert!((z[0] - z[1]).abs() > 4.0); // 3 * sqrt(2) apart
/// # Ok::<(), edge_ssl::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    pub(crate) mean: Vec<f32>,
    /// `k x dim` row-major, orthonormal rows.
    pub(crate) basis: Vec<f32>,
}

/// The whitening map of one Gaussian family: `w = A x - e_c`, distance `|w|^2`.
#[derive(Debug, Clone, PartialEq)]
struct Whitener {
    /// `k x dim` dense map, or `None` for a diagonal map without projection (`w_j = s_j x_j`).
    a: Option<Vec<f32>>,
    /// Diagonal scales when `a` is `None`.
    scale: Vec<f64>,
    /// `n_centres x k` whitened centres.
    e: Vec<f64>,
    /// `log det` of the covariance.
    log_det: f64,
}

/// A fitted gate. See the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub(crate) params: GateParams,
    pub(crate) dim: usize,
    pub(crate) n_classes: usize,
    pub(crate) pca: Option<Pca>,
    pub(crate) stats: GateStats,
    pub(crate) threshold: f32,
    pub(crate) counters: GateCounters,
    classes: Whitener,
    background: Option<Whitener>,
    /// Diagonal background for [`Gate::clp`].
    clp_background: Whitener,
}

impl GateParams {
    /// Validates the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] named `shrinkage` (fixed amount outside `[0, 1]`),
    /// `target_accept` (outside `(0, 1]`) or `projection` (`Pca(0)`).
    pub fn check(&self) -> Result<()> {
        stats::check_shrinkage(self.shrinkage)?;
        if !(self.target_accept > 0.0 && self.target_accept <= 1.0) {
            return Err(Error::InvalidParam {
                name: "target_accept",
                reason: format!("{} not in (0, 1]", self.target_accept),
            });
        }
        if self.projection == Projection::Pca(0) {
            return Err(Error::InvalidParam { name: "projection", reason: "Pca(0)".into() });
        }
        Ok(())
    }

    /// Fits a gate on trusted in-distribution embeddings `x` (`[n, dim]`) with `labels`
    /// (`[n]`, each `< n_classes`), and calibrates its threshold (leave-one-out, see the module
    /// docs). `unlabeled` (`[m, dim]`, may be empty) is used only to fit the PCA basis.
    ///
    /// # Shapes
    /// `x`: `[n, dim]`, `labels`: `[n]`, `unlabeled`: `[m, dim]`.
    ///
    /// # Errors
    /// As [`GateParams::check`]; [`Error::InvalidParam`] named `dim` (zero), `n_classes` (zero or
    /// above [`MAX_CLASSES`]), `projection` (`k > dim`), `labels` (a label out of range, a class
    /// without sample, or fewer than `n_classes + 1` samples); [`Error::ShapeMismatch`];
    /// [`Error::NonFinite`]; [`Error::NotPositiveDefinite`] if the shrunk covariance is singular
    /// (all samples identical).
    pub fn fit(
        &self,
        x: &[f32],
        dim: usize,
        labels: &[u32],
        n_classes: usize,
        unlabeled: &[f32],
    ) -> Result<Gate> {
        self.check()?;
        if dim == 0 {
            return Err(Error::InvalidParam { name: "dim", reason: "must be >= 1".into() });
        }
        if n_classes == 0 || n_classes > MAX_CLASSES {
            return Err(Error::InvalidParam {
                name: "n_classes",
                reason: format!("{n_classes} not in 1..={MAX_CLASSES}"),
            });
        }
        if let Projection::Pca(k) = self.projection
            && k > dim
        {
            return Err(Error::InvalidParam {
                name: "projection",
                reason: format!("Pca({k}) > dim {dim}"),
            });
        }
        if x.len() != labels.len() * dim {
            return Err(Error::ShapeMismatch {
                op: "GateParams::fit",
                expected: format!("[{}, {dim}] values", labels.len()),
                got: format!("{} values", x.len()),
            });
        }
        if !unlabeled.len().is_multiple_of(dim) {
            return Err(Error::ShapeMismatch {
                op: "GateParams::fit (unlabeled)",
                expected: format!("[m, {dim}] values"),
                got: format!("{} values", unlabeled.len()),
            });
        }
        check_finite("GateParams::fit", x)?;
        check_finite("GateParams::fit (unlabeled)", unlabeled)?;
        let mut counts = vec![0usize; n_classes];
        for &y in labels {
            let Some(c) = counts.get_mut(y as usize) else {
                return Err(Error::InvalidParam {
                    name: "labels",
                    reason: format!("label {y} >= n_classes {n_classes}"),
                });
            };
            *c += 1;
        }
        if let Some(c) = counts.iter().position(|&c| c == 0) {
            return Err(Error::InvalidParam {
                name: "labels",
                reason: format!("class {c} has no sample"),
            });
        }
        if labels.len() <= n_classes {
            return Err(Error::InvalidParam {
                name: "labels",
                reason: format!("{} samples, need at least n_classes + 1", labels.len()),
            });
        }
        let pca = match self.projection {
            Projection::None => None,
            Projection::Pca(k) => Some(fit_pca(x, unlabeled, dim, k)),
        };
        let p = pca.as_ref().map_or(dim, |q| q.basis.len() / dim);
        let mut stats = GateStats::new(p, n_classes);
        let mut z = vec![0f64; p];
        let mut scratch = vec![0f64; 2 * p];
        for (row, &y) in x.chunks_exact(dim).zip(labels) {
            project(pca.as_ref(), row, &mut z);
            stats.update(&z, y as usize, &mut scratch);
        }
        let mut gate = Gate::from_parts(*self, dim, pca, stats, 0.0, GateCounters::default())?;
        // leave-one-out calibration
        let mut scores: Vec<f32> = Vec::with_capacity(labels.len());
        let n_all = gate.stats.total as f64;
        for (row, &y) in x.chunks_exact(dim).zip(labels) {
            let mut d = [0f64; MAX_CLASSES];
            let d0 = gate.distances(row, &mut d);
            let n_c = gate.stats.counts[y as usize] as f64;
            d[y as usize] =
                if n_c > 1.0 { d[y as usize] * sq(n_c / (n_c - 1.0)) } else { f64::INFINITY };
            let d0 = d0.map(|v| v * sq(n_all / (n_all - 1.0)));
            scores.push(gate.combine(&d[..n_classes], d0));
        }
        gate.threshold = quantile(&mut scores, self.target_accept);
        Ok(gate)
    }
}

fn sq(v: f64) -> f64 {
    v * v
}

/// The `q` quantile (nearest rank, `ceil(q n)`-th smallest) of `v`; `+inf` for an empty slice.
fn quantile(v: &mut [f32], q: f64) -> f32 {
    if v.is_empty() {
        return f32::INFINITY;
    }
    v.sort_by(f32::total_cmp);
    let r = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[r - 1]
}

impl Pca {
    /// Fits the top-`k` principal directions of `data` (`[n, dim]`).
    ///
    /// # Errors
    /// [`Error::InvalidParam`] if `k` is not in `1..=dim` or `data` has fewer than 2 rows;
    /// [`Error::ShapeMismatch`]; [`Error::NonFinite`].
    pub fn fit(data: &[f32], dim: usize, k: usize) -> Result<Pca> {
        if dim == 0 || k == 0 || k > dim {
            return Err(Error::InvalidParam { name: "k", reason: format!("{k} not in 1..={dim}") });
        }
        if !data.len().is_multiple_of(dim) || data.len() / dim < 2 {
            return Err(Error::ShapeMismatch {
                op: "Pca::fit",
                expected: format!("[n >= 2, {dim}] values"),
                got: format!("{} values", data.len()),
            });
        }
        check_finite("Pca::fit", data)?;
        Ok(fit_pca(data, &[], dim, k))
    }

    /// Output dimension `k`.
    pub fn k(&self) -> usize {
        self.basis.len() / self.mean.len().max(1)
    }

    /// Input dimension.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Projects one row `x` (`dim`) into `out` (`k`), without allocating.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if a length is wrong.
    pub fn project_into(&self, x: &[f32], out: &mut [f32]) -> Result<()> {
        if x.len() != self.dim() || out.len() != self.k() {
            return Err(Error::ShapeMismatch {
                op: "Pca::project_into",
                expected: format!("{} -> {} values", self.dim(), self.k()),
                got: format!("{} -> {} values", x.len(), out.len()),
            });
        }
        for (o, b) in out.iter_mut().zip(self.basis.chunks_exact(self.dim())) {
            *o = b.iter().zip(x).zip(&self.mean).map(|((&b, &v), &m)| b * (v - m)).sum();
        }
        Ok(())
    }

    /// Projects every row of `data` (`[n, dim]`) into a new `[n, k]` buffer.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `data` is not whole rows.
    pub fn project_rows(&self, data: &[f32]) -> Result<Vec<f32>> {
        let (d, k) = (self.dim(), self.k());
        if !data.len().is_multiple_of(d) {
            return Err(Error::ShapeMismatch {
                op: "Pca::project_rows",
                expected: format!("[n, {d}] values"),
                got: format!("{} values", data.len()),
            });
        }
        let mut out = vec![0f32; data.len() / d * k];
        for (x, o) in data.chunks_exact(d).zip(out.chunks_exact_mut(k)) {
            self.project_into(x, o)?;
        }
        Ok(out)
    }
}

/// Standardizes a score with the mean and standard deviation of reference (trusted) scores, so
/// that scores of different feature spaces can be summed (the combined gates of the learner and
/// of `examples/ood_table.rs`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZScore {
    /// Mean of the reference scores.
    pub mean: f32,
    /// Standard deviation of the reference scores (at least 1e-6).
    pub sd: f32,
}

impl ZScore {
    /// Fits on reference scores (population standard deviation; `sd` floored at 1e-6).
    pub fn fit(reference: &[f32]) -> ZScore {
        let n = reference.len().max(1) as f32;
        let mean = reference.iter().sum::<f32>() / n;
        let var = reference.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n;
        ZScore { mean, sd: var.sqrt().max(1e-6) }
    }

    /// `(score - mean) / sd`.
    pub fn apply(&self, score: f32) -> f32 {
        (score - self.mean) / self.sd
    }
}

fn fit_pca(x: &[f32], unlabeled: &[f32], dim: usize, k: usize) -> Pca {
    let n = (x.len() + unlabeled.len()) / dim;
    let mut mean = vec![0f64; dim];
    for row in x.chunks_exact(dim).chain(unlabeled.chunks_exact(dim)) {
        mean.iter_mut().zip(row).for_each(|(m, &v)| *m += f64::from(v));
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut cov = vec![0f64; dim * dim];
    let mut c = vec![0f64; dim];
    for row in x.chunks_exact(dim).chain(unlabeled.chunks_exact(dim)) {
        c.iter_mut().zip(row).zip(&mean).for_each(|((o, &v), m)| *o = f64::from(v) - m);
        for i in 0..dim {
            let a = c[i];
            cov[i * dim..(i + 1) * dim].iter_mut().zip(&c).for_each(|(s, b)| *s += a * b);
        }
    }
    let (_, vecs) = linalg::top_eigen(&cov, dim, k, 16);
    Pca {
        mean: mean.iter().map(|&m| m as f32).collect(),
        basis: vecs.iter().map(|&v| v as f32).collect(),
    }
}

fn project(pca: Option<&Pca>, x: &[f32], z: &mut [f64]) {
    match pca {
        None => z.iter_mut().zip(x).for_each(|(o, &v)| *o = f64::from(v)),
        Some(p) => {
            let d = x.len();
            for (o, b) in z.iter_mut().zip(p.basis.chunks_exact(d)) {
                *o = b
                    .iter()
                    .zip(x)
                    .zip(&p.mean)
                    .map(|((&b, &v), &m)| f64::from(b) * f64::from(v - m))
                    .sum();
            }
        }
    }
}

/// Builds the whitening map for covariance `cov` (`p x p`) and centres `mu` (`n x p`, in the
/// projected space), given the projection.
fn whitener(
    cov: &[f64],
    mu: &[f64],
    pca: Option<&Pca>,
    dim: usize,
    diagonal: bool,
    op: &'static str,
) -> Result<Whitener> {
    let p = cov.len().isqrt();
    // centre offsets in projected coordinates: z = P x - P m, so w = A x - L^-1 (P m + mu_c)
    let pm: Vec<f64> = match pca {
        None => vec![0.0; p],
        Some(q) => q
            .basis
            .chunks_exact(dim)
            .map(|b| b.iter().zip(&q.mean).map(|(&b, &m)| f64::from(b) * f64::from(m)).sum())
            .collect(),
    };
    if diagonal {
        let mut scale = vec![0f64; p];
        let mut log_det = 0.0;
        for j in 0..p {
            let v = cov[j * p + j];
            if !(v > 0.0 && v.is_finite()) {
                return Err(Error::NotPositiveDefinite { op, row: j, pivot: v });
            }
            scale[j] = 1.0 / v.sqrt();
            log_det += v.ln();
        }
        let e = mu
            .chunks_exact(p)
            .flat_map(|m| (0..p).map(|j| (pm[j] + m[j]) * scale[j]).collect::<Vec<_>>())
            .collect();
        let a = pca.map(|q| {
            q.basis
                .chunks_exact(dim)
                .zip(&scale)
                .flat_map(|(b, &s)| b.iter().map(move |&v| (f64::from(v) * s) as f32))
                .collect()
        });
        return Ok(Whitener { a, scale, e, log_det });
    }
    let mut l = cov.to_vec();
    linalg::cholesky(&mut l, p, op)?;
    let log_det = 2.0 * (0..p).map(|i| l[i * p + i].ln()).sum::<f64>();
    // A = L^-1 P, column by column
    let mut a = vec![0f32; p * dim];
    let mut col = vec![0f64; p];
    for j in 0..dim {
        match pca {
            None => {
                col.iter_mut().for_each(|v| *v = 0.0);
                col[j] = 1.0;
            }
            Some(q) => col.iter_mut().enumerate().for_each(|(i, v)| {
                *v = f64::from(q.basis[i * dim + j]);
            }),
        }
        linalg::forward_solve(&l, p, &mut col);
        for i in 0..p {
            a[i * dim + j] = col[i] as f32;
        }
    }
    let mut e = Vec::with_capacity(mu.len());
    for m in mu.chunks_exact(p) {
        col.iter_mut().zip(m).zip(&pm).for_each(|((c, &m), &o)| *c = m + o);
        linalg::forward_solve(&l, p, &mut col);
        e.extend_from_slice(&col);
    }
    Ok(Whitener { a: Some(a), scale: Vec::new(), e, log_det })
}

/// Dot product with 8 independent f32 accumulators (vectorizes), summed in f64.
fn dot_f32(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 =
        ca.remainder().iter().zip(cb.remainder()).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
    for (u, v) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += u[l] * v[l];
        }
    }
    acc.iter().map(|&v| f64::from(v)).sum::<f64>() + tail
}

impl Whitener {
    /// Squared distances of `x` to each centre into `out`.
    fn distances(&self, x: &[f32], out: &mut [f64]) {
        let p = self.e.len() / out.len().max(1);
        out.iter_mut().for_each(|v| *v = 0.0);
        for j in 0..p {
            let w = match &self.a {
                Some(a) => {
                    let d = x.len();
                    dot_f32(&a[j * d..(j + 1) * d], x)
                }
                None => self.scale[j] * f64::from(x[j]),
            };
            for (c, o) in out.iter_mut().enumerate() {
                *o += sq(w - self.e[c * p + j]);
            }
        }
    }
}

impl Gate {
    /// Rebuilds the solver from parts (fit, refit, load).
    pub(crate) fn from_parts(
        params: GateParams,
        dim: usize,
        pca: Option<Pca>,
        stats: GateStats,
        threshold: f32,
        counters: GateCounters,
    ) -> Result<Gate> {
        let diagonal = params.variant == Variant::Diagonal;
        let (cov, _) = stats.within_cov(params.shrinkage);
        let classes =
            whitener(&cov, &stats.means, pca.as_ref(), dim, diagonal, "Gate::fit (classes)")?;
        let (gcov, _) = stats.global_cov(params.shrinkage);
        let background = if params.variant == Variant::Relative {
            Some(whitener(&gcov, &stats.gmean, pca.as_ref(), dim, false, "Gate::fit (background)")?)
        } else {
            None
        };
        let clp_background =
            whitener(&gcov, &stats.gmean, pca.as_ref(), dim, true, "Gate::fit (clp background)")?;
        Ok(Gate {
            params,
            dim,
            n_classes: stats.n_classes,
            pca,
            stats,
            threshold,
            counters,
            classes,
            background,
            clp_background,
        })
    }

    /// The parameters it was fitted with.
    pub fn params(&self) -> &GateParams {
        &self.params
    }

    /// Input (embedding) dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Dimension after projection.
    pub fn proj_dim(&self) -> usize {
        self.stats.dim
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// The calibrated threshold: scores above it are out of distribution.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Decision counts.
    pub fn counters(&self) -> GateCounters {
        self.counters
    }

    /// The streaming statistics.
    pub fn stats(&self) -> &GateStats {
        &self.stats
    }

    /// Class distances into `d[..n_classes]`, and the background distance (relative variant).
    fn distances(&self, x: &[f32], d: &mut [f64; MAX_CLASSES]) -> Option<f64> {
        self.classes.distances(x, &mut d[..self.n_classes]);
        self.background.as_ref().map(|b| {
            let mut d0 = [0f64];
            b.distances(x, &mut d0);
            d0[0]
        })
    }

    fn combine(&self, d: &[f64], d0: Option<f64>) -> f32 {
        let m = d.iter().copied().fold(f64::INFINITY, f64::min);
        (m - d0.unwrap_or(0.0)) as f32
    }

    fn check_row(&self, op: &'static str, x: &[f32]) -> Result<()> {
        if x.len() != self.dim {
            return Err(Error::ShapeMismatch {
                op,
                expected: format!("{} values", self.dim),
                got: format!("{} values", x.len()),
            });
        }
        check_finite(op, x)
    }

    /// The OOD score of one embedding (higher = more out of distribution).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x.len() != dim`; [`Error::NonFinite`].
    pub fn score(&self, x: &[f32]) -> Result<f32> {
        self.check_row("Gate::score", x)?;
        let mut d = [0f64; MAX_CLASSES];
        let d0 = self.distances(x, &mut d);
        Ok(self.combine(&d[..self.n_classes], d0))
    }

    /// Scores of a batch into `out`, without allocating.
    ///
    /// # Shapes
    /// `x`: `[n, dim]` -> `out`: `[n]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x.len() != out.len() * dim`; [`Error::NonFinite`].
    pub fn score_into(&self, x: &[f32], out: &mut [f32]) -> Result<()> {
        if x.len() != out.len() * self.dim {
            return Err(Error::ShapeMismatch {
                op: "Gate::score_into",
                expected: format!("[{}, {}] values", out.len(), self.dim),
                got: format!("{} values", x.len()),
            });
        }
        check_finite("Gate::score_into", x)?;
        let mut d = [0f64; MAX_CLASSES];
        for (row, o) in x.chunks_exact(self.dim).zip(out.iter_mut()) {
            let d0 = self.distances(row, &mut d);
            *o = self.combine(&d[..self.n_classes], d0);
        }
        Ok(())
    }

    /// True if `score` is above the threshold (NaN counts as out of distribution).
    pub fn is_ood(&self, score: f32) -> bool {
        score.is_nan() || score > self.threshold
    }

    /// Scores `x` and decides; counts the decision.
    ///
    /// # Errors
    /// As [`Gate::score`].
    pub fn admit<'x>(&mut self, x: &'x [f32]) -> Result<Verdict<'x>> {
        let score = self.score(x)?;
        if self.is_ood(score) {
            self.counters.rejected += 1;
            Ok(Verdict::Rejected { score })
        } else {
            self.counters.accepted += 1;
            Ok(Verdict::Accepted(Admitted { x, score: Some(score) }))
        }
    }

    /// Adds one TRUSTED sample (a given label) to the statistics in `O(p^2)` (plus the
    /// projection); takes effect at the next [`Gate::refit`]. Never feed it pseudo-labels:
    /// a gate refitted on its own pseudo-labels absorbs the out-of-distribution samples.
    ///
    /// # Errors
    /// As [`Gate::score`]; [`Error::InvalidParam`] (`label`) if `label >= n_classes`.
    pub fn update(&mut self, x: &[f32], label: u32) -> Result<()> {
        self.check_row("Gate::update", x)?;
        if label as usize >= self.n_classes {
            return Err(Error::InvalidParam {
                name: "label",
                reason: format!("label {label} >= n_classes {}", self.n_classes),
            });
        }
        let p = self.stats.dim;
        let mut z = vec![0f64; 3 * p];
        let (z, scratch) = z.split_at_mut(p);
        project(self.pca.as_ref(), x, z);
        self.stats.update(z, label as usize, scratch);
        self.counters.updates += 1;
        Ok(())
    }

    /// Re-derives shrinkage, Cholesky factors and whitened means from the statistics
    /// (the threshold is kept; recalibrate with [`Gate::calibrate`]).
    ///
    /// # Errors
    /// [`Error::NotPositiveDefinite`] if the shrunk covariance is singular.
    pub fn refit(&mut self) -> Result<()> {
        *self = Gate::from_parts(
            self.params,
            self.dim,
            self.pca.clone(),
            self.stats.clone(),
            self.threshold,
            self.counters,
        )?;
        Ok(())
    }

    /// Sets the threshold to the `target_accept` quantile of the scores of `heldout`
    /// (`[n, dim]` in-distribution samples NOT used in the statistics); returns it.
    ///
    /// # Errors
    /// As [`Gate::score_into`]; [`Error::InvalidParam`] (`heldout`) if it is empty.
    pub fn calibrate(&mut self, heldout: &[f32]) -> Result<f32> {
        if heldout.is_empty() || !heldout.len().is_multiple_of(self.dim) {
            return Err(Error::InvalidParam {
                name: "heldout",
                reason: format!("{} values is not a non-empty [n, {}]", heldout.len(), self.dim),
            });
        }
        let mut s = vec![0f32; heldout.len() / self.dim];
        self.score_into(heldout, &mut s)?;
        self.threshold = quantile(&mut s, self.params.target_accept);
        Ok(self.threshold)
    }

    /// Class probabilities over the `n_classes` in-distribution classes plus one background
    /// class (last column): a generative classifier with equal priors, the tied (or diagonal)
    /// class Gaussians and a diagonal Gaussian of all trusted data as the background.
    ///
    /// # Shapes
    /// `x`: `[n, dim]` -> `out`: `[n, n_classes + 1]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`]; [`Error::NonFinite`].
    pub fn class_probs_into(&self, x: &[f32], out: &mut [f32]) -> Result<()> {
        let k = self.n_classes;
        if !out.len().is_multiple_of(k + 1) || x.len() != out.len() / (k + 1) * self.dim {
            return Err(Error::ShapeMismatch {
                op: "Gate::class_probs_into",
                expected: format!("x [n, {}] and out [n, {}]", self.dim, k + 1),
                got: format!("{} and {} values", x.len(), out.len()),
            });
        }
        check_finite("Gate::class_probs_into", x)?;
        let mut d = [0f64; MAX_CLASSES + 1];
        for (row, o) in x.chunks_exact(self.dim).zip(out.chunks_exact_mut(k + 1)) {
            self.classes.distances(row, &mut d[..k]);
            for v in d[..k].iter_mut() {
                *v = -0.5 * (*v + self.classes.log_det);
            }
            let mut d0 = [0f64];
            self.clp_background.distances(row, &mut d0);
            d[k] = -0.5 * (d0[0] + self.clp_background.log_det);
            let m = d[..=k].iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = d[..=k].iter().map(|v| (v - m).exp()).sum();
            for (o, v) in o.iter_mut().zip(&d[..=k]) {
                *o = ((v - m).exp() / z) as f32;
            }
        }
        Ok(())
    }

    /// Confusion log probability (Winkens et al. 2020) of a batch under
    /// [`Gate::class_probs_into`]'s classifier: `ln(mean_i sum_{c in C_in} p(c | x_i))`.
    /// Near 0 for an in-distribution batch, strongly negative for a far-OOD one.
    ///
    /// # Errors
    /// As [`Gate::class_probs_into`]; [`Error::InvalidParam`] (`x`) for an empty batch.
    pub fn clp(&self, x: &[f32]) -> Result<f64> {
        let n = x.len() / self.dim;
        let mut probs = vec![0f32; n * (self.n_classes + 1)];
        if x.len() != n * self.dim {
            return Err(Error::ShapeMismatch {
                op: "Gate::clp",
                expected: format!("[n, {}] values", self.dim),
                got: format!("{} values", x.len()),
            });
        }
        self.class_probs_into(x, &mut probs)?;
        clp(&probs, self.n_classes + 1, self.n_classes)
    }
}

#[cfg(test)]
mod tests;
