//! Embedding-space perturbation: a strong view that costs no backbone pass.
//!
//! With a frozen backbone, an input-space strong view costs one more backbone pass per sample;
//! perturbing the weak view's embedding costs microseconds. DESIGN.md's reference run on
//! Fashion-MNIST found FixMatch with embedding-space views (dropout + Gaussian noise on the weak
//! embedding) closed ~15-18 % of the supervised-to-oracle gap, where input-space views were
//! unstable across seeds.
//!
//! Two in-place ops on a `&mut [f32]`, applied by [`EmbeddingAugmenter::perturb`] in this order:
//! - Gaussian noise `N(0, (noise * rms(x))^2)` per component, so `noise` is a noise-to-signal
//!   amplitude ratio independent of the embedding's scale (`noise = 0.1` is a 20 dB SNR);
//! - inverted dropout: each component is zeroed with probability `p` and the survivors are scaled
//!   by `1 / (1 - p)`, so the expectation of every component is unchanged (Srivastava et al.
//!   2014, in the "inverted" form used by PyTorch's `nn.Dropout`).

use rand::Rng;
use rand_distr::StandardNormal;

use super::{Checked, ParamsError, non_negative, unit_interval};
use crate::error::{Result, check_finite};

/// Parameters of [`EmbeddingAugmenter`].
///
/// The defaults are our choice: DESIGN.md's reference run used dropout + Gaussian noise but does
/// not record the magnitudes, so treat them as a starting point to tune on the stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmbeddingAugParams {
    /// Noise standard deviation relative to the embedding's RMS, >= 0 (0 disables). Default 0.1.
    pub noise: f32,
    /// Dropout probability per component, in `[0, 1)` (0 disables). Default 0.1.
    pub dropout: f32,
}

impl Default for EmbeddingAugParams {
    fn default() -> Self {
        Self { noise: 0.1, dropout: 0.1 }
    }
}

impl EmbeddingAugParams {
    /// Validates the parameters.
    ///
    /// # Errors
    /// [`ParamsError::EmbeddingNoise`] if `noise` is negative or not finite;
    /// [`ParamsError::EmbeddingDropout`] if `dropout` is outside `[0, 1)`.
    pub fn check(self) -> std::result::Result<Checked<Self>, ParamsError> {
        non_negative(self.noise, |value| ParamsError::EmbeddingNoise { value })?;
        unit_interval(self.dropout, false, |value| ParamsError::EmbeddingDropout { value })?;
        Ok(Checked(self))
    }
}

/// Perturbs embeddings in place; holds no buffers and allocates nothing.
///
/// # Examples
/// ```
/// use edge_ssl::augment::embedding::{EmbeddingAugParams, EmbeddingAugmenter};
/// use rand::{SeedableRng, rngs::StdRng};
/// # fn main() -> edge_ssl::Result<()> {
/// let aug = EmbeddingAugmenter::new(EmbeddingAugParams::default().check()?);
/// let weak = vec![0.25f32; 1280];
/// let mut strong = weak.clone();
/// aug.perturb(&mut strong, &mut StdRng::seed_from_u64(1))?;
/// assert_ne!(strong, weak);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmbeddingAugmenter {
    params: EmbeddingAugParams,
}

impl EmbeddingAugmenter {
    /// Builds the augmenter.
    pub fn new(params: Checked<EmbeddingAugParams>) -> Self {
        Self { params: *params.get() }
    }

    /// The parameters this augmenter was built with.
    pub fn params(&self) -> &EmbeddingAugParams {
        &self.params
    }

    /// Adds relative Gaussian noise, then applies inverted dropout, in place.
    ///
    /// # Shapes
    /// `x: [d]` (any `d`; one embedding, or a flat batch when the RMS is meant batch-wide).
    ///
    /// # Errors
    /// [`crate::Error::NonFinite`] if `x` holds NaN or infinity (checked before any change).
    pub fn perturb<R: Rng + ?Sized>(&self, x: &mut [f32], rng: &mut R) -> Result<()> {
        check_finite("EmbeddingAugmenter::perturb", x)?;
        add_relative_noise(x, self.params.noise, rng);
        dropout(x, self.params.dropout, rng);
        Ok(())
    }

    /// Adds `N(0, (noise * rms(x))^2)` to every component, in place.
    ///
    /// # Errors
    /// [`crate::Error::NonFinite`] if `x` holds NaN or infinity.
    pub fn noise<R: Rng + ?Sized>(&self, x: &mut [f32], rng: &mut R) -> Result<()> {
        check_finite("EmbeddingAugmenter::noise", x)?;
        add_relative_noise(x, self.params.noise, rng);
        Ok(())
    }

    /// Zeroes each component with probability `dropout` and scales survivors by
    /// `1 / (1 - dropout)`, in place.
    ///
    /// # Errors
    /// [`crate::Error::NonFinite`] if `x` holds NaN or infinity.
    pub fn dropout<R: Rng + ?Sized>(&self, x: &mut [f32], rng: &mut R) -> Result<()> {
        check_finite("EmbeddingAugmenter::dropout", x)?;
        dropout(x, self.params.dropout, rng);
        Ok(())
    }
}

/// Root mean square of `x` (0 for an empty slice), accumulated in f64.
fn rms(x: &[f32]) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    let ss: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    (ss / x.len() as f64).sqrt() as f32
}

fn add_relative_noise<R: Rng + ?Sized>(x: &mut [f32], noise: f32, rng: &mut R) {
    let sigma = noise * rms(x);
    if sigma == 0.0 {
        return;
    }
    for v in x.iter_mut() {
        *v += sigma * rng.sample::<f32, _>(StandardNormal);
    }
}

fn dropout<R: Rng + ?Sized>(x: &mut [f32], p: f32, rng: &mut R) {
    if p == 0.0 {
        return;
    }
    let keep_scale = 1.0 / (1.0 - p);
    let p = f64::from(p);
    for v in x.iter_mut() {
        *v = if rng.random_bool(p) { 0.0 } else { *v * keep_scale };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use rand::{SeedableRng, rngs::StdRng};

    fn aug(noise: f32, dropout: f32) -> EmbeddingAugmenter {
        EmbeddingAugmenter::new(EmbeddingAugParams { noise, dropout }.check().unwrap())
    }

    #[test]
    fn defaults_pass_check() {
        assert!(EmbeddingAugParams::default().check().is_ok());
    }

    #[test]
    fn embedding_noise_must_be_non_negative() {
        let p = EmbeddingAugParams { noise: -0.1, ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::EmbeddingNoise { .. })));
        let p = EmbeddingAugParams { noise: f32::NAN, ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::EmbeddingNoise { .. })));
    }

    #[test]
    fn embedding_dropout_must_be_in_0_1() {
        let p = EmbeddingAugParams { dropout: 1.0, ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::EmbeddingDropout { .. })));
        let p = EmbeddingAugParams { dropout: -0.01, ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::EmbeddingDropout { .. })));
    }

    #[test]
    fn rejects_non_finite_input_untouched() {
        let a = aug(0.1, 0.1);
        let mut x = vec![1.0, f32::INFINITY, 2.0];
        let r = a.perturb(&mut x, &mut StdRng::seed_from_u64(0));
        assert!(matches!(r, Err(Error::NonFinite { index: 1, .. })));
        assert_eq!(x[0], 1.0);
    }

    #[test]
    fn dropout_keeps_the_expected_mean() {
        // x = 1 everywhere: each output is 0 w.p. p, 1/(1-p) otherwise, so E = 1 and
        // Var = p / (1 - p); the mean of n outputs has standard error sqrt(p / ((1 - p) n)).
        let (n, p) = (100_000, 0.3f32);
        let a = aug(0.0, p);
        let mut x = vec![1.0f32; n];
        a.dropout(&mut x, &mut StdRng::seed_from_u64(12)).unwrap();
        let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
        let se = (f64::from(p) / ((1.0 - f64::from(p)) * n as f64)).sqrt();
        assert!((mean - 1.0).abs() < 5.0 * se, "mean {mean}, 5 se = {}", 5.0 * se);
        let zeros = x.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
        let se_p = (f64::from(p) * (1.0 - f64::from(p)) / n as f64).sqrt();
        assert!((zeros - f64::from(p)).abs() < 5.0 * se_p, "dropped fraction {zeros}");
        assert!(x.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-6));
    }

    #[test]
    fn noise_scales_with_rms() {
        // x = 3 everywhere: rms 3, noise 0.1 -> sigma 0.3. The sample variance of n draws has
        // standard error sigma^2 sqrt(2 / n).
        let n = 100_000;
        let a = aug(0.1, 0.0);
        let mut x = vec![3.0f32; n];
        a.noise(&mut x, &mut StdRng::seed_from_u64(3)).unwrap();
        let d: Vec<f64> = x.iter().map(|&v| f64::from(v) - 3.0).collect();
        let mean = d.iter().sum::<f64>() / n as f64;
        let var = d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 5.0 * 0.3 / (n as f64).sqrt(), "{mean}");
        assert!((var - 0.09).abs() < 5.0 * 0.09 * (2.0 / n as f64).sqrt(), "{var}");
    }

    #[test]
    fn zero_params_and_zero_vectors_are_unchanged() {
        let mut rng = StdRng::seed_from_u64(0);
        let mut x = vec![0.5, -1.0, 2.0];
        aug(0.0, 0.0).perturb(&mut x, &mut rng).unwrap();
        assert_eq!(x, vec![0.5, -1.0, 2.0]);
        let mut z = vec![0.0; 8];
        aug(0.5, 0.0).perturb(&mut z, &mut rng).unwrap();
        assert_eq!(z, vec![0.0; 8]);
        aug(0.5, 0.5).perturb(&mut [], &mut rng).unwrap();
    }

    #[test]
    fn same_seed_same_view_different_seed_different_view() {
        let a = EmbeddingAugmenter::new(EmbeddingAugParams::default().check().unwrap());
        let base: Vec<f32> = (0..256).map(|i| (i as f32 * 0.37).sin()).collect();
        let view = |seed: u64| {
            let mut x = base.clone();
            a.perturb(&mut x, &mut StdRng::seed_from_u64(seed)).unwrap();
            assert!(x.iter().all(|v| v.is_finite()));
            x
        };
        assert_eq!(view(1), view(1));
        assert_ne!(view(1), view(2));
    }
}
