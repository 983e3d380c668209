//! Noisy teacher (Sau & Balasubramanian 2016, "Deep Model Compression: Distilling Knowledge
//! from Noisy Teachers", arXiv:1610.09650): the teacher's logits are perturbed as
//! `z' = (1 + xi) z`, `xi ~ N(0, sigma^2)` drawn independently for every logit, and each
//! sample of the batch is perturbed with probability `alpha` (otherwise left as is). The
//! perturbed logits then feed [`super::kd::Kd`] as the teacher. This is a regulariser on the
//! targets: there is no gradient through it.
//!
//! # Examples
//! ```
//! use edge_ssl::objective::noisy::NoisyTeacherParams;
//! use rand::{SeedableRng, rngs::StdRng};
//!
//! let noisy = NoisyTeacherParams { std: 0.1, probability: 1.0 }.check()?;
//! let mut z = [2.0, -1.0, 0.5, 0.0];
//! let perturbed = noisy.perturb(&mut StdRng::seed_from_u64(0), &mut z, 2)?;
//! assert_eq!(perturbed, 2);
//! assert_eq!(z[3], 0.0); // (1 + xi) * 0 = 0
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use super::{ParamsError, check_unit, rows};
use crate::error::{Result, check_finite};
use rand_distr::{Distribution, StandardNormal};

/// Parameters of [`NoisyTeacher`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoisyTeacherParams {
    /// Noise standard deviation `sigma >= 0`. Default 0.1.
    pub std: f32,
    /// Probability `alpha` in `[0, 1]` that a sample's logits are perturbed. Default 0.5.
    pub probability: f32,
}

impl Default for NoisyTeacherParams {
    /// `sigma = 0.1`, `alpha = 0.5`. NOTE: these are the values we recall from the paper's
    /// MNIST/CIFAR experiments (§4); they have not been re-checked against the PDF here.
    fn default() -> Self {
        NoisyTeacherParams { std: 0.1, probability: 0.5 }
    }
}

impl NoisyTeacherParams {
    /// Validates the parameters.
    ///
    /// # Errors
    /// [`ParamsError::NoiseStd`] unless `std` is finite and >= 0; [`ParamsError::Probability`]
    /// unless `probability` is in `[0, 1]`.
    pub fn check(self) -> Result<NoisyTeacher, ParamsError> {
        if !(self.std.is_finite() && self.std >= 0.0) {
            return Err(ParamsError::NoiseStd { value: self.std });
        }
        if !check_unit(self.probability) {
            return Err(ParamsError::Probability { value: self.probability });
        }
        Ok(NoisyTeacher { p: self })
    }
}

/// The logit perturbation (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoisyTeacher {
    p: NoisyTeacherParams,
}

impl NoisyTeacher {
    /// Perturbs `logits` in place; returns how many rows were perturbed.
    ///
    /// # Shapes
    /// `logits: [n, k]`.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`], [`crate::Error::NonFinite`].
    pub fn perturb<R: rand::Rng + ?Sized>(
        &self,
        rng: &mut R,
        logits: &mut [f32],
        k: usize,
    ) -> Result<usize> {
        const OP: &str = "NoisyTeacher::perturb";
        rows(OP, "logits", logits.len(), k)?;
        check_finite(OP, logits)?;
        let mut count = 0;
        for row in logits.chunks_exact_mut(k) {
            if rng.random::<f32>() < self.p.probability {
                count += 1;
                for z in row {
                    let xi: f32 = StandardNormal.sample(rng);
                    *z *= 1.0 + self.p.std * xi;
                }
            }
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn noise_std_must_be_non_negative() {
        let r = NoisyTeacherParams { std: -0.1, probability: 0.5 }.check();
        assert!(matches!(r, Err(ParamsError::NoiseStd { .. })));
    }

    #[test]
    fn probability_must_be_in_0_1() {
        let r = NoisyTeacherParams { std: 0.1, probability: 1.5 }.check();
        assert!(matches!(r, Err(ParamsError::Probability { .. })));
    }

    #[test]
    fn noise_statistics_match_sigma_and_alpha() {
        let noisy = NoisyTeacherParams { std: 0.2, probability: 0.3 }.check().unwrap();
        let mut rng = StdRng::seed_from_u64(42);
        let (n, k) = (20_000, 4);
        let mut z = vec![1.0f32; n * k];
        let count = noisy.perturb(&mut rng, &mut z, k).unwrap();
        assert!((count as f32 / n as f32 - 0.3).abs() < 0.02, "{count}");
        let changed: Vec<f32> = z.iter().copied().filter(|&v| v != 1.0).map(|v| v - 1.0).collect();
        assert_eq!(changed.len(), count * k);
        let var = changed.iter().map(|x| x * x).sum::<f32>() / changed.len() as f32;
        assert!((var.sqrt() - 0.2).abs() < 0.01, "{}", var.sqrt());
        let none = NoisyTeacherParams { std: 0.2, probability: 0.0 }.check().unwrap();
        let mut w = [1.0, 2.0];
        assert_eq!(none.perturb(&mut rng, &mut w, 2).unwrap(), 0);
        assert_eq!(w, [1.0, 2.0]);
    }
}
