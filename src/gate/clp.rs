//! Confusion log probability (CLP), Winkens et al., "Contrastive Training for Improved
//! Out-of-Distribution Detection", arXiv:2007.05566 (2020), section 3: for a set of test samples
//! `D` and a classifier over in-distribution classes `C_in` and other classes,
//! `CLP(D) = ln( (1 / |D|) sum_{x in D} sum_{k in C_in} p(k | x) )`.
//! The paper uses it to measure how close (hard) an OOD dataset is to the in-distribution one;
//! here it scores a batch of the stream as a whole.

use crate::error::{Error, Result, check_finite};

/// CLP of a batch of class probabilities `probs` (`[n, n_total]`, rows summing to ~1) whose
/// first `n_in` columns are the in-distribution classes.
///
/// # Shapes
/// `probs`: `[n, n_total]`, `n >= 1`, `1 <= n_in <= n_total`.
///
/// # Errors
/// [`Error::InvalidParam`] (`n_in`) if `n_in` is 0 or above `n_total`, (`probs`) for an empty
/// batch or a negative probability; [`Error::ShapeMismatch`] if `probs.len()` is not a multiple
/// of `n_total`; [`Error::NonFinite`].
pub fn clp(probs: &[f32], n_total: usize, n_in: usize) -> Result<f64> {
    if n_in == 0 || n_in > n_total {
        return Err(Error::InvalidParam {
            name: "n_in",
            reason: format!("{n_in} not in 1..={n_total}"),
        });
    }
    if !probs.len().is_multiple_of(n_total) {
        return Err(Error::ShapeMismatch {
            op: "clp",
            expected: format!("[n, {n_total}] values"),
            got: format!("{} values", probs.len()),
        });
    }
    if probs.is_empty() {
        return Err(Error::InvalidParam { name: "probs", reason: "empty batch".into() });
    }
    check_finite("clp", probs)?;
    if let Some(v) = probs.iter().find(|v| **v < 0.0) {
        return Err(Error::InvalidParam { name: "probs", reason: format!("negative value {v}") });
    }
    let n = probs.len() / n_total;
    let mass: f64 = probs
        .chunks_exact(n_total)
        .map(|r| r[..n_in].iter().map(|&v| f64::from(v)).sum::<f64>())
        .sum();
    Ok((mass / n as f64).ln())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clp_hand_values() {
        // two samples, 2 in-classes + 1 out-class: in-mass 0.9 and 0.1 -> ln(0.5)
        let p = [0.5, 0.4, 0.1, 0.05, 0.05, 0.9];
        assert!((clp(&p, 3, 2).unwrap() - 0.5f64.ln()).abs() < 1e-6);
        assert!(clp(&p, 3, 3).unwrap().abs() < 1e-6);
    }

    #[test]
    fn clp_n_in_must_be_in_range() {
        assert!(matches!(clp(&[1.0], 1, 0), Err(Error::InvalidParam { name: "n_in", .. })));
        assert!(matches!(clp(&[1.0], 1, 2), Err(Error::InvalidParam { name: "n_in", .. })));
    }

    #[test]
    fn clp_rejects_empty_batch() {
        assert!(matches!(clp(&[], 2, 1), Err(Error::InvalidParam { name: "probs", .. })));
    }

    #[test]
    fn clp_rejects_negative_probability() {
        assert!(matches!(clp(&[-0.1, 1.1], 2, 1), Err(Error::InvalidParam { name: "probs", .. })));
    }

    #[test]
    fn clp_rejects_ragged_batch() {
        assert!(matches!(clp(&[0.5, 0.5, 1.0], 2, 1), Err(Error::ShapeMismatch { .. })));
    }
}
