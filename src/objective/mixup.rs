//! Mixup, manifold mixup and CutMix label mixing.
//!
//! Mixup (Zhang et al. 2018) trains on `x = lambda x_a + (1 - lambda) x_b` with target
//! `lambda y_a + (1 - lambda) y_b`, `lambda ~ Beta(alpha, alpha)`. Because cross-entropy is
//! linear in the target, `CE(z, mix(y_a, y_b))` equals the usual
//! `lambda CE(z, y_a) + (1 - lambda) CE(z, y_b)`, so the loss is
//! [`super::softmax::CrossEntropy::soft`] on targets mixed with [`mix_into`].
//!
//! Here mixing happens at the head's input, the frozen backbone's embedding. Relative to the
//! whole network that *is* manifold mixup (Verma et al. 2019) at the embedding layer, and it
//! costs no backbone pass; [`MixupParams::manifold`] gives that paper's `alpha`. Mixing inside
//! the MLP's hidden layer is not offered.
//!
//! CutMix (Yun et al. 2019) pastes a box of image `b` into image `a`; the box is drawn in
//! `augment`, and the labels mix by area with [`cutmix_lambda`] and [`mix_into`].
//!
//! # Examples
//! ```
//! use edge_ssl::objective::mixup::{MixupParams, mix_rows_into};
//! use rand::{SeedableRng, rngs::StdRng};
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let mixup = MixupParams::default().check()?;
//! let lambda = mixup.sample_lambda(&mut rng);
//! let x = [1.0, 0.0, 0.0, 1.0]; // [2, 2]
//! let mut partner = [0usize; 2];
//! mixup.shuffle_partners(&mut rng, &mut partner);
//! let mut mixed = [0.0; 4];
//! mix_rows_into(&x, 2, &partner, lambda, &mut mixed)?;
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use super::{ParamsError, rows, same_len};
use crate::error::{Error, Result, check_finite};
use rand::seq::SliceRandom;
use rand_distr::{Beta, Distribution};

/// Parameters of [`Mixup`] (also used for CutMix's `lambda`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixupParams {
    /// Beta(alpha, alpha) concentration, > 0. Default 1.0 (Zhang et al. 2018, CIFAR-10, §3.2;
    /// also CutMix's alpha, Yun et al. 2019, §4.1).
    pub alpha: f32,
}

impl Default for MixupParams {
    fn default() -> Self {
        MixupParams { alpha: 1.0 }
    }
}

impl MixupParams {
    /// Manifold mixup's `alpha = 2.0` (Verma et al. 2019, best value in their CIFAR-10
    /// PreActResNet sweep, §5.1).
    pub fn manifold() -> Self {
        MixupParams { alpha: 2.0 }
    }

    /// MixMatch's `alpha = 0.75` (Berthelot et al. 2019, §4.1).
    pub fn mixmatch() -> Self {
        MixupParams { alpha: 0.75 }
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`ParamsError::BetaAlpha`] unless `alpha` is finite and > 0.
    pub fn check(self) -> Result<Mixup, ParamsError> {
        let beta = match Beta::new(self.alpha, self.alpha) {
            Ok(b) if self.alpha.is_finite() => b,
            _ => return Err(ParamsError::BetaAlpha { value: self.alpha }),
        };
        Ok(Mixup { alpha: self.alpha, beta })
    }
}

/// A mixup sampler.
#[derive(Debug, Clone, Copy)]
pub struct Mixup {
    alpha: f32,
    beta: Beta<f32>,
}

impl Mixup {
    /// The Beta concentration.
    pub fn alpha(&self) -> f32 {
        self.alpha
    }

    /// Draws `lambda ~ Beta(alpha, alpha)`.
    pub fn sample_lambda<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> f32 {
        self.beta.sample(rng)
    }

    /// Fills `partner` with a random permutation of `0..partner.len()`: row `i` mixes with row
    /// `partner[i]` (mixup's "shuffled batch").
    pub fn shuffle_partners<R: rand::Rng + ?Sized>(&self, rng: &mut R, partner: &mut [usize]) {
        for (i, p) in partner.iter_mut().enumerate() {
            *p = i;
        }
        partner.shuffle(rng);
    }
}

/// `out = lambda a + (1 - lambda) b`, elementwise (inputs or soft targets).
///
/// # Errors
/// [`Error::ShapeMismatch`] if the lengths differ; [`Error::NonFinite`] for NaN input or a
/// non-finite `lambda`.
pub fn mix_into(a: &[f32], b: &[f32], lambda: f32, out: &mut [f32]) -> Result<()> {
    const OP: &str = "mix_into";
    same_len(OP, "b", a.len(), b.len())?;
    same_len(OP, "out", a.len(), out.len())?;
    check_finite(OP, &[lambda])?;
    check_finite(OP, a)?;
    check_finite(OP, b)?;
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = lambda * x + (1.0 - lambda) * y;
    }
    Ok(())
}

/// Row `i` of `out` is `lambda x_i + (1 - lambda) x_{partner[i]}`.
///
/// # Shapes
/// `x: [n, width]`, `partner: [n]` -> `out: [n, width]`.
///
/// # Errors
/// [`Error::ShapeMismatch`]; [`Error::IndexOutOfRange`] for a partner `>= n`;
/// [`Error::NonFinite`].
pub fn mix_rows_into(
    x: &[f32],
    width: usize,
    partner: &[usize],
    lambda: f32,
    out: &mut [f32],
) -> Result<()> {
    const OP: &str = "mix_rows_into";
    let n = rows(OP, "x", x.len(), width)?;
    same_len(OP, "partner [n]", n, partner.len())?;
    same_len(OP, "out", x.len(), out.len())?;
    if let Some(&j) = partner.iter().find(|&&j| j >= n) {
        return Err(Error::IndexOutOfRange { op: OP, index: j, len: n });
    }
    check_finite(OP, &[lambda])?;
    check_finite(OP, x)?;
    for (i, (o, &j)) in out.chunks_exact_mut(width).zip(partner).enumerate() {
        let (a, b) = (&x[i * width..(i + 1) * width], &x[j * width..(j + 1) * width]);
        for ((oc, xa), xb) in o.iter_mut().zip(a).zip(b) {
            *oc = lambda * xa + (1.0 - lambda) * xb;
        }
    }
    Ok(())
}

/// CutMix's label weight `lambda = 1 - box_area / image_area`: the share of image `a` left
/// after pasting a box of image `b` (Yun et al. 2019, Eq. 1-2). Mix the targets with
/// `mix_into(y_a, y_b, lambda, ..)`.
///
/// # Errors
/// [`Error::InvalidParam`] if `image_area` is 0 or `box_area > image_area`.
pub fn cutmix_lambda(box_area: usize, image_area: usize) -> Result<f32> {
    if image_area == 0 || box_area > image_area {
        return Err(Error::InvalidParam {
            name: "box_area",
            reason: format!("box area {box_area} must be <= image area {image_area} > 0"),
        });
    }
    Ok(1.0 - (box_area as f64 / image_area as f64) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn beta_alpha_must_be_positive() {
        for alpha in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            let r = MixupParams { alpha }.check();
            assert!(matches!(r, Err(ParamsError::BetaAlpha { .. })), "{alpha}");
        }
    }

    #[test]
    fn lambda_has_the_beta_mean_and_variance() {
        let m = MixupParams { alpha: 0.75 }.check().unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let n = 20_000;
        let xs: Vec<f32> = (0..n).map(|_| m.sample_lambda(&mut rng)).collect();
        let mean = xs.iter().sum::<f32>() / n as f32;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n as f32;
        // Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)) = 0.1.
        assert!((mean - 0.5).abs() < 0.01 && (var - 0.1).abs() < 0.005, "{mean} {var}");
    }

    #[test]
    fn mixing_is_hand_computed() {
        let mut out = [0.0; 4];
        mix_rows_into(&[1.0, 2.0, 3.0, 4.0], 2, &[1, 0], 0.25, &mut out).unwrap();
        assert_eq!(out, [2.5, 3.5, 1.5, 2.5]);
        let r = mix_rows_into(&[1.0, 2.0], 2, &[1], 0.5, &mut [0.0; 2]);
        assert!(matches!(r, Err(Error::IndexOutOfRange { index: 1, len: 1, .. })));
        let mut t = [0.0; 3];
        mix_into(&[1.0, 0.0, 0.0], &[0.0, 0.0, 1.0], cutmix_lambda(16, 64).unwrap(), &mut t)
            .unwrap();
        assert_eq!(t, [0.75, 0.0, 0.25]);
        assert!(cutmix_lambda(65, 64).is_err());
    }

    #[test]
    fn partners_are_a_permutation() {
        let m = MixupParams::default().check().unwrap();
        let mut p = [0usize; 10];
        m.shuffle_partners(&mut StdRng::seed_from_u64(3), &mut p);
        let mut s = p;
        s.sort_unstable();
        assert_eq!(s, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }
}
