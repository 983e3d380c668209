//! Temporal ensembling (Laine & Aila 2017, "Temporal Ensembling for Semi-Supervised
//! Learning", §2.2): each sample keeps an ensemble prediction `Z <- a Z + (1 - a) z` of the
//! network's past outputs `z` (probabilities), and the training target is the bias-corrected
//! `Z / (1 - a^t)`, `t` the number of updates of *that* sample (the paper counts epochs; here
//! every sample has its own count, since a stream has no epochs). The loss is the squared
//! error [`super::divergence::squared_error`] weighted by the sigmoid ramp
//! [`crate::head::ema::sigmoid_rampup`].
//!
//! The state is `capacity x K` values, allocated once at build and indexed by the caller's
//! sample slot (e.g. the bank's index).
//!
//! # Examples
//! ```
//! use edge_ssl::objective::temporal::TemporalEnsembleParams;
//!
//! let mut te = TemporalEnsembleParams::new(100, 2).check()?.build();
//! te.accumulate(&[7], &[0.8, 0.2])?;
//! let mut target = [0.0; 2];
//! te.targets_into(&[7], &mut target)?;
//! assert!((target[0] - 0.8).abs() < 1e-6); // (0.4 * 0.8) / (1 - 0.6)
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use super::{ParamsError, rows, same_len};
use crate::error::{Error, Result, check_finite};
use crate::head::Checked;

/// Parameters of [`TemporalEnsemble`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TemporalEnsembleParams {
    /// Number of sample slots (>= 1).
    pub capacity: usize,
    /// Number of classes `K >= 2`.
    pub n_classes: usize,
    /// Ensemble momentum `a` in `[0, 1)`. Default 0.6 (Laine & Aila 2017, §3).
    pub momentum: f32,
}

impl TemporalEnsembleParams {
    /// Defaults for `capacity` samples and `n_classes` classes.
    pub fn new(capacity: usize, n_classes: usize) -> Self {
        TemporalEnsembleParams { capacity, n_classes, momentum: 0.6 }
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`ParamsError::Capacity`], [`ParamsError::NumClasses`], [`ParamsError::Momentum`].
    pub fn check(self) -> Result<Checked<Self>, ParamsError> {
        if self.capacity == 0 {
            return Err(ParamsError::Capacity { value: self.capacity });
        }
        if self.n_classes < 2 {
            return Err(ParamsError::NumClasses { value: self.n_classes });
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(ParamsError::Momentum { name: "momentum", value: self.momentum });
        }
        Ok(Checked(self))
    }
}

impl Checked<TemporalEnsembleParams> {
    /// Allocates the ensemble (`capacity x K` zeros, as in the paper).
    pub fn build(&self) -> TemporalEnsemble {
        TemporalEnsemble {
            p: self.0,
            z: vec![0.0; self.capacity * self.n_classes],
            updates: vec![0; self.capacity],
        }
    }
}

/// Per-sample ensemble predictions (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct TemporalEnsemble {
    p: TemporalEnsembleParams,
    z: Vec<f32>,
    updates: Vec<u32>,
}

impl TemporalEnsemble {
    fn check_indices(&self, op: &'static str, indices: &[usize]) -> Result<()> {
        match indices.iter().find(|&&i| i >= self.p.capacity) {
            Some(&index) => Err(Error::IndexOutOfRange { op, index, len: self.p.capacity }),
            None => Ok(()),
        }
    }

    /// `Z[i] <- a Z[i] + (1 - a) probs[row]` for each `i = indices[row]`.
    ///
    /// # Shapes
    /// `indices: [n]`, `probs: [n, K]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`], [`Error::IndexOutOfRange`], [`Error::NonFinite`].
    pub fn accumulate(&mut self, indices: &[usize], probs: &[f32]) -> Result<()> {
        const OP: &str = "TemporalEnsemble::accumulate";
        let k = self.p.n_classes;
        let n = rows(OP, "probs", probs.len(), k)?;
        same_len(OP, "indices [n]", n, indices.len())?;
        self.check_indices(OP, indices)?;
        check_finite(OP, probs)?;
        let a = self.p.momentum;
        for (&i, p) in indices.iter().zip(probs.chunks_exact(k)) {
            for (z, v) in self.z[i * k..(i + 1) * k].iter_mut().zip(p) {
                *z = a * *z + (1.0 - a) * v;
            }
            self.updates[i] = self.updates[i].saturating_add(1);
        }
        Ok(())
    }

    /// Bias-corrected targets `Z[i] / (1 - a^t_i)`; a sample never updated gets the uniform
    /// `1 / K`.
    ///
    /// # Shapes
    /// `indices: [n]` -> `out: [n, K]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`], [`Error::IndexOutOfRange`].
    pub fn targets_into(&self, indices: &[usize], out: &mut [f32]) -> Result<()> {
        const OP: &str = "TemporalEnsemble::targets_into";
        let k = self.p.n_classes;
        same_len(OP, "out [n, K]", indices.len() * k, out.len())?;
        self.check_indices(OP, indices)?;
        for (&i, o) in indices.iter().zip(out.chunks_exact_mut(k)) {
            let t = self.updates[i];
            if t == 0 {
                o.fill(1.0 / k as f32);
                continue;
            }
            let corr =
                1.0 / (1.0 - (self.p.momentum as f64).powi(t.min(i32::MAX as u32) as i32)) as f32;
            for (oc, z) in o.iter_mut().zip(&self.z[i * k..(i + 1) * k]) {
                *oc = z * corr;
            }
        }
        Ok(())
    }

    /// Number of updates of sample `i` (0 if out of range).
    pub fn updates(&self, i: usize) -> u32 {
        self.updates.get(i).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_must_be_positive() {
        let r = TemporalEnsembleParams::new(0, 3).check();
        assert!(matches!(r, Err(ParamsError::Capacity { .. })));
    }

    #[test]
    fn n_classes_must_be_at_least_two() {
        let r = TemporalEnsembleParams::new(4, 1).check();
        assert!(matches!(r, Err(ParamsError::NumClasses { .. })));
    }

    #[test]
    fn momentum_must_be_in_0_1() {
        let r =
            TemporalEnsembleParams { momentum: 1.0, ..TemporalEnsembleParams::new(4, 3) }.check();
        assert!(matches!(r, Err(ParamsError::Momentum { .. })));
    }

    #[test]
    fn bias_correction_is_hand_computed() {
        let mut te = TemporalEnsembleParams::new(3, 2).check().unwrap().build();
        te.accumulate(&[1], &[1.0, 0.0]).unwrap();
        te.accumulate(&[1], &[0.0, 1.0]).unwrap();
        // Z = 0.6 * 0.4 * [1, 0] + 0.4 * [0, 1] = [0.24, 0.4]; 1 - 0.36 = 0.64
        let mut t = [0.0; 4];
        te.targets_into(&[1, 0], &mut t).unwrap();
        let want = [0.24 / 0.64, 0.4 / 0.64, 0.5, 0.5];
        assert!(t.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{t:?}");
        assert_eq!(te.updates(1), 2);
        let r = te.accumulate(&[3], &[0.5, 0.5]);
        assert!(matches!(r, Err(Error::IndexOutOfRange { index: 3, len: 3, .. })));
    }

    #[test]
    fn constant_predictions_are_unbiased() {
        let mut te = TemporalEnsembleParams::new(1, 3).check().unwrap().build();
        let p = [0.2, 0.3, 0.5];
        let mut t = [0.0; 3];
        for _ in 0..5 {
            te.accumulate(&[0], &p).unwrap();
            te.targets_into(&[0], &mut t).unwrap();
            assert!(t.iter().zip(&p).all(|(a, b)| (a - b).abs() < 1e-6));
        }
    }
}
