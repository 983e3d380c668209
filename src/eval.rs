//! Small, shared evaluation helpers: seeded per-class sampling, accuracy, mean and std.

use rand::Rng;
use rand::seq::SliceRandom;

use crate::error::{Error, Result};

/// Picks `per_class` indices of each class `0..n_classes` from `labels` (restricted to the
/// indices in `pool`, or all if `None`), uniformly without replacement, using `rng`.
/// The result is grouped by class, in class order.
///
/// # Errors
/// [`Error::InvalidParam`] if a class has fewer than `per_class` candidates.
pub fn sample_per_class<R: Rng + ?Sized>(
    labels: &[u32],
    pool: Option<&[usize]>,
    n_classes: usize,
    per_class: usize,
    rng: &mut R,
) -> Result<Vec<usize>> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    let all: Vec<usize>;
    let pool = match pool {
        Some(p) => p,
        None => {
            all = (0..labels.len()).collect();
            &all
        }
    };
    for &i in pool {
        if let Some(v) = by_class.get_mut(labels[i] as usize) {
            v.push(i);
        }
    }
    let mut out = Vec::with_capacity(n_classes * per_class);
    for (c, v) in by_class.iter_mut().enumerate() {
        if v.len() < per_class {
            return Err(Error::InvalidParam {
                name: "per_class",
                reason: format!("class {c} has {} candidates, {per_class} requested", v.len()),
            });
        }
        v.shuffle(rng);
        out.extend_from_slice(&v[..per_class]);
    }
    Ok(out)
}

/// Fraction of `predicted[i] == truth[i]` (0 for empty input).
pub fn accuracy(predicted: &[u32], truth: &[u32]) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    predicted.iter().zip(truth).filter(|(a, b)| a == b).count() as f64 / truth.len() as f64
}

/// Mean and sample standard deviation (n - 1; 0 for fewer than two values).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sampling_is_per_class_seeded_and_checked() {
        let labels = [0, 1, 0, 1, 0, 1, 2, 2];
        let mut r1 = rand::rngs::StdRng::seed_from_u64(7);
        let mut r2 = rand::rngs::StdRng::seed_from_u64(7);
        let a = sample_per_class(&labels, None, 3, 2, &mut r1).unwrap();
        let b = sample_per_class(&labels, None, 3, 2, &mut r2).unwrap();
        assert_eq!(a, b);
        let classes: Vec<u32> = a.iter().map(|&i| labels[i]).collect();
        assert_eq!(classes, vec![0, 0, 1, 1, 2, 2]);
        assert!(sample_per_class(&labels, Some(&[0, 1, 2]), 3, 1, &mut r1).is_err());
    }

    #[test]
    fn mean_std_hand_values() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert!((m - 2.5).abs() < 1e-12);
        assert!((s - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(accuracy(&[1, 2, 3], &[1, 0, 3]), 2.0 / 3.0);
    }
}
