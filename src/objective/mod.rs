//! Objectives: pure functions over logits and probabilities that return the loss and write
//! d(loss)/d(logits) into a slice the caller owns. None of them allocates.
//!
//! Conventions shared by every function here:
//! - Logits, probabilities and gradients are row-major `[n, K]` `f32` slices; `K` is passed
//!   explicitly and `n` is `len / K`.
//! - The returned loss is the **mean over the `n` rows** of the batch (masked rows count in the
//!   denominator unless a function documents otherwise), and the gradient is the gradient of
//!   that mean, so it can go straight into [`crate::head::Head::backward_into`].
//! - Gradient slices are **overwritten**, not accumulated.
//! - Every softmax is computed with max subtraction / log-sum-exp, so the loss and gradient stay
//!   finite for logits of any finite magnitude (tested at `|z| ~ 1e3`).
//! - Inputs are checked at the boundary: shapes ([`crate::Error::ShapeMismatch`]), NaN/inf
//!   ([`crate::Error::NonFinite`], one linear scan), label range
//!   ([`crate::Error::IndexOutOfRange`]). Parameter structs follow `Params -> check()` with one
//!   [`ParamsError`] variant per rule.
//! - Randomness (noisy teacher, mixup's lambda) takes an explicit `&mut R: rand::Rng`.
//!
//! | module | what |
//! |---|---|
//! | [`softmax`] | softmax / log-softmax with temperature, sharpening, one-hot + label smoothing, cross-entropy |
//! | [`divergence`] | KL, Jensen-Shannon (AugMix), squared error on probabilities (MixMatch, Π-model) |
//! | [`kd`] | knowledge distillation with temperature, `T^2`-scaled (Hinton et al. 2015) |
//! | [`noisy`] | noisy-teacher logits `(1 + xi) z` (Sau & Balasubramanian 2016) |
//! | [`mixup`] | mixup / manifold mixup / CutMix label mixing |
//! | [`fixmatch`] | FixMatch and the FreeMatch self-adaptive threshold |
//! | [`uda`] | UDA consistency and training-signal annealing |
//! | [`mixmatch`] | MixMatch label guessing and unlabeled loss |
//! | [`temporal`] | temporal ensembling targets |
//! | [`infonce`] | InfoNCE over a queue of negatives (MoCo) |
//! | [`align`] | distribution alignment of the teacher's probabilities (ReMixMatch) |

pub mod align;
pub mod divergence;
mod errors;
pub mod fixmatch;
pub mod infonce;
pub mod kd;
pub mod mixmatch;
pub mod mixup;
pub mod noisy;
pub mod softmax;
pub mod temporal;
pub mod uda;

pub use errors::ParamsError;

use crate::error::{Error, Result};

/// A loss over a batch where only some rows contribute (confidence mask, TSA).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MaskedLoss {
    /// The loss (see each function for its denominator).
    pub loss: f32,
    /// How many rows passed the mask.
    pub selected: usize,
}

/// Largest number of views [`divergence::jensen_shannon`] and [`mixmatch::MixMatch`] accept.
pub const MAX_VIEWS: usize = 8;

pub(crate) fn check_temperature(value: f32) -> Result<f32, ParamsError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(ParamsError::Temperature { value })
    }
}

pub(crate) fn check_unit(value: f32) -> bool {
    (0.0..=1.0).contains(&value)
}

/// Rows of `[n, k]` `what`, checking the length.
pub(crate) fn rows(op: &'static str, what: &str, len: usize, k: usize) -> Result<usize> {
    crate::head::rows_of(op, what, len, k)
}

/// [`Error::ShapeMismatch`] unless `got == expected`.
pub(crate) fn same_len(op: &'static str, what: &str, expected: usize, got: usize) -> Result<()> {
    crate::head::check_len(op, what, expected, got)
}

/// [`Error::IndexOutOfRange`] for the first label `>= k`.
pub(crate) fn check_labels(op: &'static str, labels: &[u32], k: usize) -> Result<()> {
    match labels.iter().find(|&&y| y as usize >= k) {
        Some(&y) => Err(Error::IndexOutOfRange { op, index: y as usize, len: k }),
        None => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Finite-difference checks and random logits for the objective tests.

    use rand::{Rng, SeedableRng, rngs::StdRng};

    /// Random logits in `[-scale, scale]`, plus a common offset per row.
    pub fn logits(seed: u64, n: usize, k: usize, scale: f32, offset: f32) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut z: Vec<f32> = (0..n * k).map(|_| rng.random_range(-scale..=scale)).collect();
        for row in z.chunks_exact_mut(k) {
            let o = rng.random_range(-offset..=offset);
            row.iter_mut().for_each(|v| *v += o);
        }
        z
    }

    /// Random probability rows.
    pub fn probs(seed: u64, n: usize, k: usize) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut p: Vec<f32> = (0..n * k).map(|_| rng.random_range(0.01f32..1.0).powi(3)).collect();
        for row in p.chunks_exact_mut(k) {
            let s: f32 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= s);
        }
        p
    }

    /// Checks `grad` against central finite differences of `f` at `x`.
    ///
    /// Tolerance (f32 code, f64 differences): the step actually taken is `fl(x + h) - fl(x - h)`
    /// (exact in f64, so large offsets like 1e3 lose nothing), the loss is rounded to ~6e-8
    /// relative, so with `h = 1e-2` and `|L| <= 10` the rounding noise on a difference quotient
    /// is ~3e-5 and the truncation error `h^2 f''' / 6` ~ 2e-5 for the smooth losses here. We
    /// require `max |fd - g| <= 1e-3 * max(max |g|, 1e-2)`: a relative error of 1e-3 against
    /// the gradient's scale.
    pub fn check_grad(mut f: impl FnMut(&[f32]) -> f32, x: &[f32], grad: &[f32], h: f32) {
        assert_eq!(x.len(), grad.len());
        assert!(grad.iter().all(|g| g.is_finite()), "non-finite gradient {grad:?}");
        let scale = grad.iter().fold(0f32, |m, g| m.max(g.abs())).max(1e-2) as f64;
        let mut xp = x.to_vec();
        let mut worst = (0.0f64, 0usize, 0.0f64);
        for i in 0..x.len() {
            xp[i] = x[i] + h;
            let (up, fp) = (xp[i] as f64, f(&xp) as f64);
            xp[i] = x[i] - h;
            let (dn, fm) = (xp[i] as f64, f(&xp) as f64);
            xp[i] = x[i];
            let fd = (fp - fm) / (up - dn);
            let err = (fd - grad[i] as f64).abs() / scale;
            if err > worst.0 {
                worst = (err, i, fd);
            }
        }
        assert!(
            worst.0 < 1e-3,
            "relative error {:.3e} at {} (fd {} vs analytic {})",
            worst.0,
            worst.1,
            worst.2,
            grad[worst.1]
        );
    }
}
