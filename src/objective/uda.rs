//! UDA: unsupervised data augmentation (Xie et al. 2020), with training-signal annealing.
//!
//! Consistency: for each unlabeled sample, the target is the weak view's prediction sharpened
//! with temperature `T`, `softmax(z_weak / T)`; it is used only if the unsharpened confidence
//! `max softmax(z_weak) >= beta`. `L_u = lambda_u (1/n) sum_i mask_i KL(target_i ||
//! softmax(z_strong_i))`, the mean over all `n` rows (the reference code's
//! `reduce_mean(loss * mask)`). Both views' logits are taken (not probabilities) so that the
//! sharpened target is exact at any logit size.
//!
//! Training-signal annealing (TSA, §3.2 of the paper): a labeled sample contributes to the
//! supervised loss only while its correct-class probability is below
//! `eta_t = a_t (1 - 1/K) + 1/K`, `t = step / total_steps`, with `a_t = t` (linear),
//! `1 - exp(-5 t)` (log) or `exp(5 (t - 1))` (exp).
//!
//! # Examples
//! ```
//! use edge_ssl::objective::uda::{TsaParams, TsaSchedule, UdaParams};
//!
//! let uda = UdaParams::default().check()?;
//! let mut g = [0.0; 3];
//! let out = uda.unlabeled_loss(&[4.0, 0.0, 0.0], &[1.0, 0.5, 0.0], 3, &mut g)?;
//! assert_eq!(out.selected, 1); // softmax([4, 0, 0]) max = 0.96 >= 0.8
//!
//! let tsa = TsaParams { schedule: TsaSchedule::Linear, total_steps: 100 }.check()?;
//! assert!((tsa.threshold(50, 10) - (0.5 * 0.9 + 0.1)).abs() < 1e-6);
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use super::softmax::{ce_row, shifted_lse, softmax_row};
use super::{MaskedLoss, ParamsError, check_labels, check_temperature, check_unit, rows, same_len};
use crate::error::{Result, check_finite};

/// Parameters of [`Uda`] (defaults: Xie et al. 2020, §3.2 / Appendix for image tasks).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UdaParams {
    /// Sharpening temperature `T > 0`. Default 0.4.
    pub temperature: f32,
    /// Confidence mask `beta` in `[0, 1]`. Default 0.8.
    pub confidence: f32,
    /// Weight `lambda_u >= 0`. Default 1.
    pub lambda_u: f32,
}

impl Default for UdaParams {
    fn default() -> Self {
        UdaParams { temperature: 0.4, confidence: 0.8, lambda_u: 1.0 }
    }
}

impl UdaParams {
    /// Validates the parameters.
    ///
    /// # Errors
    /// [`ParamsError::Temperature`], [`ParamsError::Threshold`], [`ParamsError::LossWeight`].
    pub fn check(self) -> Result<Uda, ParamsError> {
        check_temperature(self.temperature)?;
        if !check_unit(self.confidence) {
            return Err(ParamsError::Threshold { value: self.confidence });
        }
        if !(self.lambda_u.is_finite() && self.lambda_u >= 0.0) {
            return Err(ParamsError::LossWeight { value: self.lambda_u });
        }
        Ok(Uda { p: self })
    }
}

/// UDA's consistency objective (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Uda {
    p: UdaParams,
}

impl Uda {
    /// Masked `KL(sharpen(p_weak) || p_strong)`, weighted by `lambda_u`, and its gradient with
    /// respect to the strong-view logits.
    ///
    /// # Shapes
    /// `weak_logits: [n, k]` (teacher), `strong_logits: [n, k]` -> `dlogits: [n, k]`.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`], [`crate::Error::NonFinite`].
    pub fn unlabeled_loss(
        &self,
        weak_logits: &[f32],
        strong_logits: &[f32],
        k: usize,
        dlogits: &mut [f32],
    ) -> Result<MaskedLoss> {
        const OP: &str = "Uda::unlabeled_loss";
        let n = rows(OP, "weak_logits", weak_logits.len(), k)?;
        same_len(OP, "strong_logits", weak_logits.len(), strong_logits.len())?;
        same_len(OP, "dlogits", weak_logits.len(), dlogits.len())?;
        check_finite(OP, weak_logits)?;
        check_finite(OP, strong_logits)?;
        if n == 0 {
            return Ok(MaskedLoss::default());
        }
        let inv_t = 1.0 / self.p.temperature;
        let scale = self.p.lambda_u / n as f32;
        let (mut loss, mut selected) = (0.0, 0);
        for ((w, z), g) in weak_logits
            .chunks_exact(k)
            .zip(strong_logits.chunks_exact(k))
            .zip(dlogits.chunks_exact_mut(k))
        {
            // max softmax(w) = exp(-s) with s the shifted log-sum-exp.
            let confidence = (-shifted_lse(w, 1.0).1).exp();
            if confidence >= self.p.confidence {
                selected += 1;
                softmax_row(w, inv_t, g);
                loss += kl_in_place(z, g, scale);
            } else {
                g.fill(0.0);
            }
        }
        Ok(MaskedLoss { loss: self.p.lambda_u * loss / n as f32, selected })
    }
}

/// `KL(p || softmax(z))` with `p` stored in `pg`; overwrites `pg` with `scale (q - p)`.
fn kl_in_place(z: &[f32], pg: &mut [f32], scale: f32) -> f32 {
    let (m, s) = shifted_lse(z, 1.0);
    let mut loss = 0.0;
    for (gc, &zc) in pg.iter_mut().zip(z) {
        let (pc, lq) = (*gc, (zc - m) - s);
        if pc > 0.0 {
            loss += pc * (pc.ln() - lq);
        }
        *gc = scale * (lq.exp() - pc);
    }
    loss
}

/// How the TSA threshold grows from `1/K` to 1 over training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TsaSchedule {
    /// `a_t = t`.
    Linear,
    /// `a_t = 1 - exp(-5 t)`: releases the signal early.
    Log,
    /// `a_t = exp(5 (t - 1))`: releases it late. Default: the paper recommends it when the
    /// model overfits the few labels easily (§3.2), which is the few-label regime here.
    #[default]
    Exp,
}

/// Parameters of [`Tsa`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsaParams {
    /// The schedule. Default [`TsaSchedule::Exp`].
    pub schedule: TsaSchedule,
    /// Steps over which the threshold reaches 1 (>= 1).
    pub total_steps: u64,
}

impl TsaParams {
    /// Validates the parameters.
    ///
    /// # Errors
    /// [`ParamsError::TotalSteps`] if `total_steps == 0`.
    pub fn check(self) -> Result<Tsa, ParamsError> {
        if self.total_steps == 0 {
            return Err(ParamsError::TotalSteps { value: self.total_steps });
        }
        Ok(Tsa { p: self })
    }
}

/// Training-signal annealing of the supervised cross-entropy (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tsa {
    p: TsaParams,
}

impl Tsa {
    /// `eta_t = a_t (1 - 1/K) + 1/K` at `step` for `k` classes.
    pub fn threshold(&self, step: u64, k: usize) -> f32 {
        let t = (step as f64 / self.p.total_steps as f64).min(1.0);
        let a = match self.p.schedule {
            TsaSchedule::Linear => t,
            TsaSchedule::Log => 1.0 - (-5.0 * t).exp(),
            TsaSchedule::Exp => (5.0 * (t - 1.0)).exp(),
        };
        let inv_k = 1.0 / k as f64;
        (a * (1.0 - inv_k) + inv_k) as f32
    }

    /// Supervised cross-entropy over the labeled rows whose correct-class probability is below
    /// `eta_t`; the others get zero gradient. As in UDA's code, the loss is normalised by the
    /// number of rows kept (`max(selected, 1)`), not by `n`.
    ///
    /// # Shapes
    /// `logits: [n, k]`, `labels: [n]` -> `dlogits: [n, k]`.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`], [`crate::Error::NonFinite`],
    /// [`crate::Error::IndexOutOfRange`].
    pub fn supervised_loss(
        &self,
        logits: &[f32],
        labels: &[u32],
        k: usize,
        step: u64,
        dlogits: &mut [f32],
    ) -> Result<MaskedLoss> {
        const OP: &str = "Tsa::supervised_loss";
        let n = rows(OP, "logits", logits.len(), k)?;
        same_len(OP, "labels [n]", n, labels.len())?;
        same_len(OP, "dlogits", logits.len(), dlogits.len())?;
        check_finite(OP, logits)?;
        check_labels(OP, labels, k)?;
        let eta = self.threshold(step, k);
        // Pass 1: count the rows kept, so the gradient can be scaled by 1 / count.
        let keep = |z: &[f32], y: usize| {
            let (m, s) = shifted_lse(z, 1.0);
            ((z[y] - m) - s).exp() < eta
        };
        let selected =
            logits.chunks_exact(k).zip(labels).filter(|(z, y)| keep(z, **y as usize)).count();
        let scale = 1.0 / selected.max(1) as f32;
        let mut loss = 0.0;
        for ((z, g), &y) in logits.chunks_exact(k).zip(dlogits.chunks_exact_mut(k)).zip(labels) {
            let y = y as usize;
            if keep(z, y) {
                loss += ce_row(z, 1.0, |c| if c == y { 1.0 } else { 0.0 }, g, scale);
            } else {
                g.fill(0.0);
            }
        }
        Ok(MaskedLoss { loss: loss * scale, selected })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::divergence::kl_into;
    use crate::objective::softmax::softmax_into;
    use crate::objective::testutil::{check_grad, logits};

    #[test]
    fn temperature_must_be_positive() {
        let r = UdaParams { temperature: -0.4, ..UdaParams::default() }.check();
        assert!(matches!(r, Err(ParamsError::Temperature { .. })));
    }

    #[test]
    fn confidence_must_be_in_0_1() {
        let r = UdaParams { confidence: 1.1, ..UdaParams::default() }.check();
        assert!(matches!(r, Err(ParamsError::Threshold { .. })));
    }

    #[test]
    fn loss_weight_must_be_non_negative() {
        let r = UdaParams { lambda_u: f32::NAN, ..UdaParams::default() }.check();
        assert!(matches!(r, Err(ParamsError::LossWeight { .. })));
    }

    #[test]
    fn tsa_total_steps_must_be_positive() {
        let r = TsaParams { schedule: TsaSchedule::Exp, total_steps: 0 }.check();
        assert!(matches!(r, Err(ParamsError::TotalSteps { .. })));
    }

    #[test]
    fn tsa_thresholds_hand_values() {
        let k = 10;
        let at = |s: TsaSchedule, step| {
            TsaParams { schedule: s, total_steps: 100 }.check().unwrap().threshold(step, k)
        };
        for s in [TsaSchedule::Linear, TsaSchedule::Log] {
            assert!((at(s, 0) - 0.1).abs() < 1e-7);
        }
        assert!((at(TsaSchedule::Exp, 0) - ((-5f32).exp() * 0.9 + 0.1)).abs() < 1e-7);
        assert!((at(TsaSchedule::Linear, 30) - (0.3 * 0.9 + 0.1)).abs() < 1e-6);
        assert!((at(TsaSchedule::Log, 30) - ((1.0 - (-1.5f32).exp()) * 0.9 + 0.1)).abs() < 1e-6);
        assert!((at(TsaSchedule::Exp, 30) - ((-3.5f32).exp() * 0.9 + 0.1)).abs() < 1e-6);
        for s in [TsaSchedule::Linear, TsaSchedule::Exp] {
            assert!((at(s, 100) - 1.0).abs() < 1e-6);
        }
        // The log schedule ends at 1 - e^-5, not 1.
        assert!((at(TsaSchedule::Log, 100) - ((1.0 - (-5f32).exp()) * 0.9 + 0.1)).abs() < 1e-6);
    }

    #[test]
    fn uda_equals_masked_kl_of_sharpened_target() {
        let uda = UdaParams::default().check().unwrap();
        let w = [4.0, 0.0, 0.0, 0.5, 0.2, 0.0];
        let z = [1.0, 0.5, 0.0, 0.3, 0.3, 0.3];
        let mut g = [0.0; 6];
        let out = uda.unlabeled_loss(&w, &z, 3, &mut g).unwrap();
        assert_eq!(out.selected, 1);
        let mut t = [0.0; 3];
        softmax_into(&w[..3], 3, 0.4, &mut t).unwrap();
        let kl = kl_into(&t, &z[..3], 3, 1.0, &mut [0.0; 3]).unwrap();
        assert!((out.loss - kl / 2.0).abs() < 1e-6);
        assert!(g[3..].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn uda_gradient_matches_finite_differences() {
        let uda = UdaParams { confidence: 0.3, ..UdaParams::default() }.check().unwrap();
        for (seed, offset) in [(1, 0.0), (2, 1e3)] {
            let w = logits(seed, 5, 4, 3.0, offset);
            let z = logits(seed + 3, 5, 4, 3.0, offset);
            let mut g = vec![0.0; 20];
            assert!(uda.unlabeled_loss(&w, &z, 4, &mut g).unwrap().selected > 0);
            let mut s = vec![0.0; 20];
            check_grad(|z| uda.unlabeled_loss(&w, z, 4, &mut s).unwrap().loss, &z, &g, 1e-2);
        }
    }

    #[test]
    fn tsa_gradient_matches_finite_differences_and_masks() {
        let tsa = TsaParams { schedule: TsaSchedule::Linear, total_steps: 10 }.check().unwrap();
        let z = logits(9, 6, 3, 2.0, 0.0);
        let y = [0, 1, 2, 0, 1, 2];
        let mut g = vec![0.0; 18];
        let out = tsa.supervised_loss(&z, &y, 3, 5, &mut g).unwrap();
        assert!(out.selected > 0 && out.selected < 6, "{}", out.selected);
        let mut s = vec![0.0; 18];
        check_grad(|z| tsa.supervised_loss(z, &y, 3, 5, &mut s).unwrap().loss, &z, &g, 1e-3);
        let all = tsa.supervised_loss(&z, &y, 3, 10, &mut s).unwrap();
        assert_eq!(all.selected, 6);
    }
}
