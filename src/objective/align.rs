//! Distribution alignment (Berthelot et al. 2020, ReMixMatch §3.2): the teacher's
//! probabilities on unlabeled rows are multiplied by `p_target / p_model` and renormalized,
//! where `p_model` is a running average of the teacher's mean prediction on unlabeled data and
//! `p_target` the class distribution the stream should have (uniform by default: a few labels
//! per class). A head that drifts toward a few classes then stops pseudo-labelling only those.
//!
//! # Examples
//! ```
//! use edge_ssl::objective::align::DistributionAlignment;
//!
//! let mut da = DistributionAlignment::uniform(2, 0.0)?; // momentum 0: p_model = batch mean
//! let mut p = [0.9, 0.1, 0.7, 0.3]; // the teacher favours class 0: batch mean [0.8, 0.2]
//! da.align(&mut p)?;
//! // row 0: [0.9 / 0.8, 0.1 / 0.2] normalized = [0.6923, 0.3077]
//! assert!((p[0] - 0.6923).abs() < 1e-4 && (p[1] - 0.3077).abs() < 1e-4);
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use crate::error::{Error, Result, check_finite};

/// Running `p_model` and fixed `p_target` of one learner. No allocation after construction.
#[derive(Debug, Clone, PartialEq)]
pub struct DistributionAlignment {
    momentum: f32,
    target: Vec<f32>,
    running: Vec<f32>,
    batch: Vec<f32>,
}

impl DistributionAlignment {
    /// Uniform target over `k >= 2` classes; `p_model` starts uniform and moves as
    /// `p_model <- m p_model + (1 - m) mean(batch)` with momentum `m` in `[0, 1)` (ReMixMatch
    /// averages the last 128 batches; `m = 0.999` is the EMA of comparable memory used here).
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for `k < 2` or a momentum outside `[0, 1)`.
    pub fn uniform(k: usize, momentum: f32) -> Result<Self> {
        if k < 2 {
            return Err(Error::InvalidParam { name: "n_classes", reason: format!("{k} < 2") });
        }
        if !(0.0..1.0).contains(&momentum) {
            return Err(Error::InvalidParam {
                name: "momentum",
                reason: format!("{momentum} not in [0, 1)"),
            });
        }
        let u = vec![1.0 / k as f32; k];
        Ok(DistributionAlignment { momentum, target: u.clone(), running: u.clone(), batch: u })
    }

    /// The running `p_model`.
    pub fn running(&self) -> &[f32] {
        &self.running
    }

    /// Restores a saved `p_model` (`k` positive finite values).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for another length, [`Error::NonFinite`] / [`Error::InvalidParam`]
    /// for values that are not finite and positive.
    pub fn restore(&mut self, running: &[f32]) -> Result<()> {
        super::same_len("DistributionAlignment::restore", "running", self.k(), running.len())?;
        check_finite("DistributionAlignment::restore", running)?;
        if running.iter().any(|&v| v <= 0.0) {
            return Err(Error::InvalidParam {
                name: "running",
                reason: "p_model must be positive".into(),
            });
        }
        self.running.copy_from_slice(running);
        Ok(())
    }

    fn k(&self) -> usize {
        self.target.len()
    }

    /// Updates `p_model` with the batch mean of `probs` (`[n, k]`), then aligns every row in
    /// place.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `probs` is not whole rows; [`Error::NonFinite`].
    pub fn align(&mut self, probs: &mut [f32]) -> Result<()> {
        const OP: &str = "DistributionAlignment::align";
        let k = self.k();
        let n = super::rows(OP, "probs", probs.len(), k)?;
        check_finite(OP, probs)?;
        if n == 0 {
            return Ok(());
        }
        self.batch.fill(0.0);
        for row in probs.chunks_exact(k) {
            self.batch.iter_mut().zip(row).for_each(|(b, &p)| *b += p / n as f32);
        }
        let m = self.momentum;
        for (r, &b) in self.running.iter_mut().zip(&self.batch) {
            *r = (m * *r + (1.0 - m) * b).max(1e-6);
        }
        for row in probs.chunks_exact_mut(k) {
            row.iter_mut()
                .zip(self.target.iter().zip(&self.running))
                .for_each(|(p, (t, r))| *p *= t / r);
            let s: f32 = row.iter().sum();
            if s > 0.0 {
                row.iter_mut().for_each(|p| *p /= s);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_mean_moves_with_momentum_and_rows_stay_distributions() {
        let mut da = DistributionAlignment::uniform(2, 0.5).unwrap();
        let mut p = [1.0, 0.0, 0.6, 0.4];
        da.align(&mut p).unwrap();
        // batch mean [0.8, 0.2]; running = 0.5 * 0.5 + 0.5 * [0.8, 0.2] = [0.65, 0.35]
        assert!((da.running()[0] - 0.65).abs() < 1e-6 && (da.running()[1] - 0.35).abs() < 1e-6);
        // row 1: [0.6 / 0.65, 0.4 / 0.35] normalized
        let (a, b) = (0.6 / 0.65, 0.4 / 0.35);
        assert!((p[2] - a / (a + b)).abs() < 1e-5, "{p:?}");
        assert!((p[0] - 1.0).abs() < 1e-6 && p[1] == 0.0);
        for row in p.chunks_exact(2) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn a_balanced_teacher_is_left_alone() {
        let mut da = DistributionAlignment::uniform(3, 0.9).unwrap();
        let mut p = [0.7, 0.2, 0.1, 0.1, 0.7, 0.2, 0.2, 0.1, 0.7];
        let before = p;
        da.align(&mut p).unwrap();
        for (a, b) in p.iter().zip(before) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn bad_input_and_params_are_errors() {
        assert!(DistributionAlignment::uniform(1, 0.5).is_err());
        assert!(DistributionAlignment::uniform(3, 1.0).is_err());
        let mut da = DistributionAlignment::uniform(2, 0.5).unwrap();
        assert!(da.align(&mut [0.5, 0.5, 0.1]).is_err());
        assert!(da.align(&mut [f32::NAN, 0.5]).is_err());
        assert!(da.restore(&[0.5, 0.0]).is_err());
        assert!(da.restore(&[0.5]).is_err());
        da.restore(&[0.25, 0.75]).unwrap();
        assert_eq!(da.running(), &[0.25, 0.75]);
    }
}
