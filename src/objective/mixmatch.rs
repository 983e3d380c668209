//! MixMatch (Berthelot et al. 2019): label guessing by averaging the predictions on `K`
//! augmentations and sharpening, mixup with `lambda' = max(lambda, 1 - lambda)`, and a squared
//! error loss on the unlabeled part.
//!
//! One step, as in the paper's Algorithm 1: guess `q = sharpen(mean_k p(y | aug_k(u)), T)` with
//! [`MixMatch::guess_labels_into`]; mix inputs and targets of the concatenated labeled +
//! unlabeled batch with a shuffled partner ([`super::mixup::mix_rows_into`]) and
//! [`MixMatch::sample_lambda`]; cross-entropy ([`super::softmax::CrossEntropy::soft`]) on the
//! labeled rows, [`MixMatch::unlabeled_loss`] on the unlabeled rows. The paper ramps
//! `lambda_u` linearly over its first 16 000 steps; apply that to the returned loss/gradient.
//!
//! # Examples
//! ```
//! use edge_ssl::objective::mixmatch::MixMatchParams;
//!
//! let mm = MixMatchParams::default().check()?;
//! let (a1, a2) = ([0.6, 0.3, 0.1], [0.4, 0.5, 0.1]);
//! let mut q = [0.0; 3];
//! mm.guess_labels_into(&[&a1, &a2], 3, &mut q)?; // mean [0.5, 0.4, 0.1], sharpened at T = 0.5
//! assert!((q[0] - 0.25 / 0.42).abs() < 1e-6);
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use super::divergence::squared_error;
use super::mixup::{Mixup, MixupParams};
use super::{MAX_VIEWS, ParamsError, check_temperature, rows, same_len};
use crate::error::{Error, Result, check_finite};

/// Parameters of [`MixMatch`] (defaults: Berthelot et al. 2019, §4.1: "T = 0.5, K = 2,
/// alpha = 0.75, lambda_U = 100" as the starting point for every dataset).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixMatchParams {
    /// Number of augmentations `K` averaged for a guess, `1..=MAX_VIEWS`. Default 2.
    pub augmentations: usize,
    /// Sharpening temperature `T > 0`. Default 0.5.
    pub temperature: f32,
    /// Mixup's Beta concentration. Default 0.75.
    pub alpha: f32,
    /// Weight `lambda_U >= 0` of the unlabeled loss. Default 100.
    pub lambda_u: f32,
}

impl Default for MixMatchParams {
    fn default() -> Self {
        MixMatchParams { augmentations: 2, temperature: 0.5, alpha: 0.75, lambda_u: 100.0 }
    }
}

impl MixMatchParams {
    /// Validates the parameters.
    ///
    /// # Errors
    /// [`ParamsError::Views`], [`ParamsError::Temperature`], [`ParamsError::BetaAlpha`],
    /// [`ParamsError::LossWeight`].
    pub fn check(self) -> Result<MixMatch, ParamsError> {
        if !(1..=MAX_VIEWS).contains(&self.augmentations) {
            return Err(ParamsError::Views { value: self.augmentations, max: MAX_VIEWS });
        }
        check_temperature(self.temperature)?;
        let mixup = MixupParams { alpha: self.alpha }.check()?;
        if !(self.lambda_u.is_finite() && self.lambda_u >= 0.0) {
            return Err(ParamsError::LossWeight { value: self.lambda_u });
        }
        Ok(MixMatch { p: self, mixup })
    }
}

/// MixMatch's label guessing, mixing weight and unlabeled loss (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct MixMatch {
    p: MixMatchParams,
    mixup: Mixup,
}

impl MixMatch {
    /// The mixup sampler (for the partner permutation).
    pub fn mixup(&self) -> &Mixup {
        &self.mixup
    }

    /// `lambda' = max(lambda, 1 - lambda)`, `lambda ~ Beta(alpha, alpha)` (Eq. 8-9): the mixed
    /// sample stays closer to its own input.
    pub fn sample_lambda<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> f32 {
        let l = self.mixup.sample_lambda(rng);
        l.max(1.0 - l)
    }

    /// Guessed labels: the mean of the `K` augmentations' probabilities, sharpened.
    ///
    /// # Shapes
    /// `aug_probs`: `K` slices `[n, k]` -> `out: [n, k]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if there are not `K` slices of equal length;
    /// [`Error::NonFinite`].
    pub fn guess_labels_into(&self, aug_probs: &[&[f32]], k: usize, out: &mut [f32]) -> Result<()> {
        const OP: &str = "MixMatch::guess_labels_into";
        same_len(OP, "augmentations", self.p.augmentations, aug_probs.len())?;
        rows(OP, "aug_probs[0]", aug_probs[0].len(), k)?;
        same_len(OP, "out", aug_probs[0].len(), out.len())?;
        for p in aug_probs {
            same_len(OP, "aug_probs[i]", out.len(), p.len())?;
            check_finite(OP, p)?;
        }
        let inv = 1.0 / aug_probs.len() as f32;
        for (j, o) in out.iter_mut().enumerate() {
            *o = inv * aug_probs.iter().map(|p| p[j]).sum::<f32>();
            if *o < 0.0 {
                return Err(Error::NonFinite { op: OP, index: j, value: *o });
            }
        }
        let inv_t = 1.0 / self.p.temperature;
        for row in out.chunks_exact_mut(k) {
            let m = row.iter().fold(0f32, |a, &b| a.max(b));
            if m == 0.0 {
                row.fill(1.0 / k as f32);
                continue;
            }
            let mut s = 0.0;
            for v in row.iter_mut() {
                *v = if *v > 0.0 { ((*v / m).ln() * inv_t).exp() } else { 0.0 };
                s += *v;
            }
            row.iter_mut().for_each(|v| *v /= s);
        }
        Ok(())
    }

    /// `lambda_U (1 / (n k)) sum ||softmax(z) - q||^2` and its gradient.
    ///
    /// # Shapes
    /// `logits: [n, k]`, `targets: [n, k]` -> `dlogits: [n, k]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`], [`Error::NonFinite`].
    pub fn unlabeled_loss(
        &self,
        logits: &[f32],
        targets: &[f32],
        k: usize,
        dlogits: &mut [f32],
    ) -> Result<f32> {
        let loss = squared_error(logits, targets, k, dlogits)?;
        dlogits.iter_mut().for_each(|g| *g *= self.p.lambda_u);
        Ok(self.p.lambda_u * loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::testutil::{check_grad, logits, probs};
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn augmentations_must_be_in_range() {
        let r = MixMatchParams { augmentations: 0, ..MixMatchParams::default() }.check();
        assert!(matches!(r, Err(ParamsError::Views { .. })));
    }

    #[test]
    fn temperature_must_be_positive() {
        let r = MixMatchParams { temperature: 0.0, ..MixMatchParams::default() }.check();
        assert!(matches!(r, Err(ParamsError::Temperature { .. })));
    }

    #[test]
    fn alpha_must_be_positive() {
        let r = MixMatchParams { alpha: 0.0, ..MixMatchParams::default() }.check();
        assert!(matches!(r, Err(ParamsError::BetaAlpha { .. })));
    }

    #[test]
    fn loss_weight_must_be_non_negative() {
        let r = MixMatchParams { lambda_u: -1.0, ..MixMatchParams::default() }.check();
        assert!(matches!(r, Err(ParamsError::LossWeight { .. })));
    }

    #[test]
    fn lambda_prime_is_at_least_half() {
        let mm = MixMatchParams::default().check().unwrap();
        let mut rng = StdRng::seed_from_u64(0);
        assert!((0..1000).all(|_| mm.sample_lambda(&mut rng) >= 0.5));
    }

    #[test]
    fn guess_needs_k_augmentations() {
        let mm = MixMatchParams::default().check().unwrap();
        let r = mm.guess_labels_into(&[&[0.5, 0.5]], 2, &mut [0.0; 2]);
        assert!(matches!(r, Err(Error::ShapeMismatch { .. })));
    }

    #[test]
    fn unlabeled_gradient_matches_finite_differences() {
        let mm = MixMatchParams { lambda_u: 3.0, ..MixMatchParams::default() }.check().unwrap();
        let z = logits(4, 4, 5, 2.0, 1e3);
        let q = probs(5, 4, 5);
        let mut g = vec![0.0; 20];
        mm.unlabeled_loss(&z, &q, 5, &mut g).unwrap();
        let mut s = vec![0.0; 20];
        check_grad(|z| mm.unlabeled_loss(z, &q, 5, &mut s).unwrap(), &z, &g, 1e-2);
    }
}
