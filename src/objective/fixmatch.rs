//! FixMatch (Sohn et al. 2020) and the FreeMatch self-adaptive threshold (Wang et al. 2023).
//!
//! FixMatch's unlabeled loss: for each unlabeled sample, the teacher's probabilities on the
//! weak view give a hard pseudo-label `argmax p`; if `max p >= tau` the student's logits on the
//! strong view get cross-entropy against it:
//! `L_u = lambda_u (1 / n) sum_i 1[max p_i >= tau] CE(z_i, argmax p_i)`, the mean over *all*
//! `n = mu B` unlabeled rows (masked rows count in the denominator, as in the paper's Eq. 4).
//!
//! # Examples
//! ```
//! use edge_ssl::objective::fixmatch::FixMatchParams;
//!
//! let fm = FixMatchParams::default().check()?;
//! let weak = [0.97, 0.02, 0.01, 0.5, 0.3, 0.2]; // teacher, weak view, [2, 3]
//! let strong = [0.5, 1.0, -1.0, 0.0, 0.0, 0.0]; // student, strong view
//! let mut g = [0.0; 6];
//! let out = fm.unlabeled_loss(&weak, &strong, 3, &mut g)?;
//! assert_eq!(out.selected, 1); // only the first row clears tau = 0.95
//! assert!(g[3..].iter().all(|&v| v == 0.0));
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use super::softmax::ce_row;
use super::{MaskedLoss, ParamsError, check_unit, rows, same_len};
use crate::error::{Result, check_finite};
use crate::head::Checked;

fn check_weight(value: f32) -> Result<f32, ParamsError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(ParamsError::LossWeight { value })
    }
}

/// Index and value of the largest entry (first on ties).
#[inline]
pub(crate) fn argmax(p: &[f32]) -> (usize, f32) {
    p.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
}

/// Masked hard-pseudo-label cross-entropy shared by FixMatch and FreeMatch.
fn masked_pseudo_ce(
    op: &'static str,
    weak_probs: &[f32],
    strong_logits: &[f32],
    k: usize,
    threshold: impl Fn(usize) -> f32,
    weight: f32,
    dlogits: &mut [f32],
) -> Result<MaskedLoss> {
    rows(op, "weak_probs", weak_probs.len(), k)?;
    same_len(op, "strong_logits", weak_probs.len(), strong_logits.len())?;
    check_finite(op, weak_probs)?;
    pseudo_ce_rows(op, strong_logits, k, weight, dlogits, |i| {
        let (y, conf) = argmax(&weak_probs[i * k..(i + 1) * k]);
        (conf >= threshold(y)).then_some((y, 1.0))
    })
}

/// `lambda (1 / n) sum_i w_i CE(z_i, y_i)` over the rows with a target `(y_i, w_i)`; rows
/// without one get zero gradient but count in `n`.
fn pseudo_ce_rows(
    op: &'static str,
    strong_logits: &[f32],
    k: usize,
    weight: f32,
    dlogits: &mut [f32],
    target: impl Fn(usize) -> Option<(usize, f32)>,
) -> Result<MaskedLoss> {
    let n = rows(op, "strong_logits", strong_logits.len(), k)?;
    same_len(op, "dlogits", strong_logits.len(), dlogits.len())?;
    check_finite(op, strong_logits)?;
    if n == 0 {
        return Ok(MaskedLoss::default());
    }
    let scale = weight / n as f32;
    let (mut loss, mut selected) = (0.0, 0);
    for (i, (z, g)) in strong_logits.chunks_exact(k).zip(dlogits.chunks_exact_mut(k)).enumerate() {
        match target(i) {
            Some((y, w)) if w > 0.0 => {
                selected += 1;
                loss += w * ce_row(z, 1.0, |c| if c == y { 1.0 } else { 0.0 }, g, scale * w);
            }
            _ => g.fill(0.0),
        }
    }
    Ok(MaskedLoss { loss: weight * loss / n as f32, selected })
}

/// Weighted hard-label cross-entropy on the strong view against given per-row targets (the
/// propagated labels of [`crate::propagate`], weighted by certainty and class balance):
/// `L = lambda (1 / n) sum_i w_i CE(z_i, y_i)`; rows with `w_i = 0` are masked out but count
/// in `n`, as in FixMatch.
///
/// # Shapes
/// `labels: [n]`, `weights: [n]`, `strong_logits: [n, k]` -> `dlogits: [n, k]`.
///
/// # Errors
/// [`crate::Error::ShapeMismatch`]; [`crate::Error::NonFinite`] for non-finite logits or
/// weights; [`crate::Error::InvalidParam`] for a negative weight or `lambda`;
/// [`crate::Error::IndexOutOfRange`] for a label `>= k`.
pub fn weighted_pseudo_ce(
    labels: &[u32],
    weights: &[f32],
    strong_logits: &[f32],
    k: usize,
    lambda: f32,
    dlogits: &mut [f32],
) -> Result<MaskedLoss> {
    const OP: &str = "weighted_pseudo_ce";
    same_len(OP, "labels [n] vs logits [n, k]", labels.len() * k, strong_logits.len())?;
    same_len(OP, "weights", labels.len(), weights.len())?;
    check_finite(OP, weights)?;
    super::check_labels(OP, labels, k)?;
    if let Some(w) = weights.iter().chain([&lambda]).find(|w| **w < 0.0) {
        return Err(crate::Error::InvalidParam { name: "weight", reason: format!("{w} < 0") });
    }
    pseudo_ce_rows(OP, strong_logits, k, lambda, dlogits, |i| {
        Some((labels[i] as usize, weights[i]))
    })
}

/// Parameters of [`FixMatch`] (defaults: Sohn et al. 2020, §4 "Implementation details").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixMatchParams {
    /// Confidence threshold `tau` in `[0, 1]`. Default 0.95.
    pub threshold: f32,
    /// Unlabeled-to-labeled batch ratio `mu >= 1`. Default 7.
    pub unlabeled_ratio: usize,
    /// Weight `lambda_u >= 0` of the unlabeled loss. Default 1.
    pub lambda_u: f32,
}

impl Default for FixMatchParams {
    fn default() -> Self {
        FixMatchParams { threshold: 0.95, unlabeled_ratio: 7, lambda_u: 1.0 }
    }
}

impl FixMatchParams {
    /// Validates the parameters.
    ///
    /// # Errors
    /// [`ParamsError::Threshold`], [`ParamsError::UnlabeledRatio`], [`ParamsError::LossWeight`].
    pub fn check(self) -> Result<FixMatch, ParamsError> {
        if !check_unit(self.threshold) {
            return Err(ParamsError::Threshold { value: self.threshold });
        }
        if self.unlabeled_ratio == 0 {
            return Err(ParamsError::UnlabeledRatio { value: self.unlabeled_ratio });
        }
        check_weight(self.lambda_u)?;
        Ok(FixMatch { p: self })
    }
}

/// FixMatch's unlabeled objective (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixMatch {
    p: FixMatchParams,
}

impl FixMatch {
    /// Unlabeled batch size for a labeled batch of `labeled`: `mu * labeled`.
    pub fn unlabeled_batch(&self, labeled: usize) -> usize {
        self.p.unlabeled_ratio * labeled
    }

    /// The masked pseudo-label cross-entropy, weighted by `lambda_u`, with its gradient with
    /// respect to the strong-view logits (rows below the threshold get zero gradient).
    ///
    /// # Shapes
    /// `weak_probs: [n, k]` (teacher), `strong_logits: [n, k]` (student) -> `dlogits: [n, k]`.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`], [`crate::Error::NonFinite`].
    pub fn unlabeled_loss(
        &self,
        weak_probs: &[f32],
        strong_logits: &[f32],
        k: usize,
        dlogits: &mut [f32],
    ) -> Result<MaskedLoss> {
        let tau = self.p.threshold;
        masked_pseudo_ce(
            "FixMatch::unlabeled_loss",
            weak_probs,
            strong_logits,
            k,
            |_| tau,
            self.p.lambda_u,
            dlogits,
        )
    }
}

/// Parameters of the FreeMatch self-adaptive threshold [`AdaptiveThreshold`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveThresholdParams {
    /// Number of classes `K >= 2`.
    pub n_classes: usize,
    /// EMA momentum `lambda` in `[0, 1)`. Default 0.999 (Wang et al. 2023, FreeMatch, §4).
    pub momentum: f32,
    /// Weight of the unlabeled loss. Default 1 (FreeMatch `w_u = 1`).
    pub lambda_u: f32,
}

impl AdaptiveThresholdParams {
    /// Defaults for `n_classes` classes.
    pub fn new(n_classes: usize) -> Self {
        AdaptiveThresholdParams { n_classes, momentum: 0.999, lambda_u: 1.0 }
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`ParamsError::NumClasses`], [`ParamsError::Momentum`], [`ParamsError::LossWeight`].
    pub fn check(self) -> Result<Checked<Self>, ParamsError> {
        if self.n_classes < 2 {
            return Err(ParamsError::NumClasses { value: self.n_classes });
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(ParamsError::Momentum { name: "momentum", value: self.momentum });
        }
        check_weight(self.lambda_u)?;
        Ok(Checked(self))
    }
}

impl Checked<AdaptiveThresholdParams> {
    /// Allocates the per-class state, initialised to `1 / K` as in FreeMatch.
    pub fn build(&self) -> AdaptiveThreshold {
        let k = self.n_classes;
        AdaptiveThreshold { p: self.0, global: 1.0 / k as f32, class: vec![1.0 / k as f32; k] }
    }
}

/// FreeMatch's self-adaptive threshold (Wang et al. 2023, "FreeMatch: Self-adaptive
/// Thresholding for Semi-supervised Learning", Eq. 6-9): a global confidence
/// `tau <- lambda tau + (1 - lambda) mean_b max p_b` and class means
/// `p~(c) <- lambda p~(c) + (1 - lambda) mean_b p_b(c)`, giving the class thresholds
/// `tau(c) = tau p~(c) / max_c' p~(c')`. A class the model predicts less often ("under-learned")
/// gets a lower threshold, like FlexMatch's curriculum, without a per-sample history.
///
/// Call [`AdaptiveThreshold::update`] with each batch of weak-view probabilities, then
/// [`AdaptiveThreshold::unlabeled_loss`] (FreeMatch updates before masking).
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveThreshold {
    p: AdaptiveThresholdParams,
    global: f32,
    class: Vec<f32>,
}

impl AdaptiveThreshold {
    /// Number of values in [`AdaptiveThreshold::state_into`]: `1 + n_classes`.
    pub fn state_len(&self) -> usize {
        1 + self.class.len()
    }

    /// Writes the running state (global EMA, then the per-class EMAs) for persistence.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] if `out.len() != state_len()`.
    pub fn state_into(&self, out: &mut [f32]) -> Result<()> {
        same_len("AdaptiveThreshold::state_into", "out", self.state_len(), out.len())?;
        out[0] = self.global;
        out[1..].copy_from_slice(&self.class);
        Ok(())
    }

    /// Restores a state written by [`AdaptiveThreshold::state_into`].
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] for a wrong length, [`crate::Error::NonFinite`] for NaN.
    pub fn restore(&mut self, state: &[f32]) -> Result<()> {
        same_len("AdaptiveThreshold::restore", "state", self.state_len(), state.len())?;
        check_finite("AdaptiveThreshold::restore", state)?;
        self.global = state[0];
        self.class.copy_from_slice(&state[1..]);
        Ok(())
    }

    /// Updates the global and per-class EMAs with a batch of probabilities.
    ///
    /// # Shapes
    /// `weak_probs: [n, K]`.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`], [`crate::Error::NonFinite`].
    pub fn update(&mut self, weak_probs: &[f32]) -> Result<()> {
        const OP: &str = "AdaptiveThreshold::update";
        let k = self.p.n_classes;
        let n = rows(OP, "weak_probs", weak_probs.len(), k)?;
        check_finite(OP, weak_probs)?;
        if n == 0 {
            return Ok(());
        }
        let (lam, w) = (self.p.momentum, (1.0 - self.p.momentum) / n as f32);
        let mean_max: f32 = weak_probs.chunks_exact(k).map(|p| argmax(p).1).sum();
        self.global = lam * self.global + w * mean_max;
        self.class.iter_mut().for_each(|c| *c *= lam);
        for p in weak_probs.chunks_exact(k) {
            for (c, v) in self.class.iter_mut().zip(p) {
                *c += w * v;
            }
        }
        Ok(())
    }

    /// The global threshold `tau`.
    pub fn global(&self) -> f32 {
        self.global
    }

    /// The threshold of class `c` (0 for `c >= K`).
    pub fn threshold(&self, c: usize) -> f32 {
        let max = self.class.iter().fold(0f32, |a, &b| a.max(b));
        match self.class.get(c) {
            Some(&v) if max > 0.0 => self.global * v / max,
            _ => 0.0,
        }
    }

    /// The per-class EMA `p~` (for persistence and monitoring).
    pub fn class_means(&self) -> &[f32] {
        &self.class
    }

    /// FixMatch's masked pseudo-label cross-entropy with the class thresholds `tau(c)`.
    ///
    /// # Shapes
    /// `weak_probs: [n, K]`, `strong_logits: [n, K]` -> `dlogits: [n, K]`.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`], [`crate::Error::NonFinite`].
    pub fn unlabeled_loss(
        &self,
        weak_probs: &[f32],
        strong_logits: &[f32],
        dlogits: &mut [f32],
    ) -> Result<MaskedLoss> {
        let max = self.class.iter().fold(0f32, |a, &b| a.max(b)).max(f32::MIN_POSITIVE);
        let (g, class) = (self.global, &self.class);
        masked_pseudo_ce(
            "AdaptiveThreshold::unlabeled_loss",
            weak_probs,
            strong_logits,
            self.p.n_classes,
            |c| g * class[c] / max,
            self.p.lambda_u,
            dlogits,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::softmax::CrossEntropyParams;
    use crate::objective::testutil::{check_grad, logits, probs};

    #[test]
    fn threshold_must_be_in_0_1() {
        let r = FixMatchParams { threshold: 1.2, ..FixMatchParams::default() }.check();
        assert!(matches!(r, Err(ParamsError::Threshold { .. })));
    }

    #[test]
    fn unlabeled_ratio_must_be_positive() {
        let r = FixMatchParams { unlabeled_ratio: 0, ..FixMatchParams::default() }.check();
        assert!(matches!(r, Err(ParamsError::UnlabeledRatio { .. })));
    }

    #[test]
    fn loss_weight_must_be_non_negative() {
        let r = FixMatchParams { lambda_u: -1.0, ..FixMatchParams::default() }.check();
        assert!(matches!(r, Err(ParamsError::LossWeight { .. })));
    }

    #[test]
    fn adaptive_momentum_must_be_in_0_1() {
        let r =
            AdaptiveThresholdParams { momentum: 1.0, ..AdaptiveThresholdParams::new(3) }.check();
        assert!(matches!(r, Err(ParamsError::Momentum { .. })));
    }

    #[test]
    fn adaptive_n_classes_must_be_at_least_two() {
        let r = AdaptiveThresholdParams::new(1).check();
        assert!(matches!(r, Err(ParamsError::NumClasses { .. })));
    }

    #[test]
    fn fixmatch_equals_masked_cross_entropy() {
        let fm = FixMatchParams { lambda_u: 2.0, ..FixMatchParams::default() }.check().unwrap();
        let weak = [0.96, 0.02, 0.02, 0.2, 0.7, 0.1, 0.01, 0.01, 0.98];
        let z = logits(1, 3, 3, 2.0, 0.0);
        let mut g = [0.0; 9];
        let out = fm.unlabeled_loss(&weak, &z, 3, &mut g).unwrap();
        assert_eq!(out.selected, 2);
        let ce = CrossEntropyParams::plain().check().unwrap();
        let mut g0 = [0.0; 3];
        let l0 = ce.hard(&z[..3], &[0], &mut g0).unwrap();
        let l2 = ce.hard(&z[6..], &[2], &mut g0).unwrap();
        assert!((out.loss - 2.0 * (l0 + l2) / 3.0).abs() < 1e-6);
        assert!(g[3..6].iter().all(|&v| v == 0.0));
        assert_eq!(fm.unlabeled_batch(64), 448);
    }

    #[test]
    fn weighted_pseudo_ce_hand_value_and_gradient() {
        // one row, logits 0: CE = ln 3; weight 0.5, lambda 2, n = 2 (second row masked)
        let z = [0.0, 0.0, 0.0, 1.0, 2.0, 3.0];
        let mut g = [9.0; 6];
        let out = weighted_pseudo_ce(&[1, 0], &[0.5, 0.0], &z, 3, 2.0, &mut g).unwrap();
        assert_eq!(out.selected, 1);
        assert!((out.loss - 2.0 * 0.5 * 3f32.ln() / 2.0).abs() < 1e-6, "{}", out.loss);
        let third = 1.0 / 3.0;
        let want = [0.5 * third, 0.5 * (third - 1.0), 0.5 * third];
        for (a, b) in g[..3].iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{g:?}");
        }
        assert!(g[3..].iter().all(|&v| v == 0.0));
        let (y, w) = ([2, 0, 1, 3, 1], [0.3, 1.0, 0.0, 2.0, 0.7]);
        let z = logits(11, 5, 4, 3.0, 0.0);
        let mut g = vec![0.0; 20];
        weighted_pseudo_ce(&y, &w, &z, 4, 1.5, &mut g).unwrap();
        let mut s = vec![0.0; 20];
        check_grad(|z| weighted_pseudo_ce(&y, &w, z, 4, 1.5, &mut s).unwrap().loss, &z, &g, 1e-2);
    }

    #[test]
    fn weighted_pseudo_ce_rejects_bad_input() {
        let z = [0.0; 6];
        let mut g = [0.0; 6];
        assert!(weighted_pseudo_ce(&[0, 3], &[1.0, 1.0], &z, 3, 1.0, &mut g).is_err());
        assert!(weighted_pseudo_ce(&[0, 1], &[1.0, -1.0], &z, 3, 1.0, &mut g).is_err());
        assert!(weighted_pseudo_ce(&[0, 1], &[1.0, f32::NAN], &z, 3, 1.0, &mut g).is_err());
        assert!(weighted_pseudo_ce(&[0], &[1.0], &z, 3, 1.0, &mut g).is_err());
    }

    #[test]
    fn fixmatch_gradient_matches_finite_differences() {
        let fm = FixMatchParams { threshold: 0.3, ..FixMatchParams::default() }.check().unwrap();
        for (seed, offset) in [(2, 0.0), (3, 1e3)] {
            let weak = probs(seed, 5, 4);
            let z = logits(seed + 5, 5, 4, 3.0, offset);
            let mut g = vec![0.0; 20];
            let out = fm.unlabeled_loss(&weak, &z, 4, &mut g).unwrap();
            assert!(out.selected > 0);
            let mut s = vec![0.0; 20];
            check_grad(|z| fm.unlabeled_loss(&weak, z, 4, &mut s).unwrap().loss, &z, &g, 1e-2);
        }
    }

    #[test]
    fn adaptive_threshold_lowers_tau_for_rare_classes() {
        let mut at = AdaptiveThresholdParams { momentum: 0.5, ..AdaptiveThresholdParams::new(3) }
            .check()
            .unwrap()
            .build();
        assert!((at.threshold(0) - 1.0 / 3.0).abs() < 1e-7);
        // The model is confident on class 0 and rarely predicts class 2.
        let batch = [0.9, 0.05, 0.05, 0.8, 0.15, 0.05];
        at.update(&batch).unwrap();
        // global = 0.5/3 + 0.5 * 0.85; class = 0.5/3 + 0.5 * mean
        let g = 0.5 / 3.0 + 0.5 * 0.85;
        assert!((at.global() - g).abs() < 1e-6);
        let class = [0.5 / 3.0 + 0.5 * 0.85, 0.5 / 3.0 + 0.5 * 0.1, 0.5 / 3.0 + 0.5 * 0.05];
        for (c, v) in class.iter().enumerate() {
            assert!((at.threshold(c) - g * v / class[0]).abs() < 1e-6);
        }
        assert!(at.threshold(2) < at.threshold(1) && at.threshold(1) < at.threshold(0));
        // Class 2 with p = 0.3 clears its threshold; class 0 with 0.5 does not.
        let weak = [0.3, 0.3, 0.4, 0.5, 0.25, 0.25];
        let mut gr = [0.0; 6];
        let out = at.unlabeled_loss(&weak, &[0.0; 6], &mut gr).unwrap();
        assert_eq!(out.selected, 1);
        assert!(gr[3..].iter().all(|&v| v == 0.0) && gr[..3].iter().any(|&v| v != 0.0));
    }
}
