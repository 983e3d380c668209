//! Nearest class mean (NCM): each class is the mean of its labelled feature vectors; a sample
//! gets the class of the nearest mean. Training-free, so it is the honest few-shot baseline.
//!
//! # Examples
//! ```
//! use edge_ssl::head::ncm::{Metric, NcmParams};
//!
//! // two classes in 2-D
//! let x = [0.0, 1.0, 0.1, 0.9, 1.0, 0.0, 0.9, 0.2];
//! let y = [0, 0, 1, 1];
//! let ncm = NcmParams { metric: Metric::Euclidean }.fit(&x, 2, &y, 2)?;
//! assert_eq!(ncm.predict(&[0.8, 0.1])?, 1);
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use crate::error::{Error, Result, check_finite};

/// Distance used to find the nearest mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Metric {
    /// Squared Euclidean distance to the class mean.
    Euclidean,
    /// Cosine: samples are L2-normalized before averaging and before comparing (the usual
    /// choice for deep embeddings).
    #[default]
    Cosine,
}

/// Parameters of a nearest-class-mean classifier. Default: [`Metric::Cosine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NcmParams {
    /// The distance.
    pub metric: Metric,
}

/// A fitted nearest-class-mean classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct Ncm {
    metric: Metric,
    dim: usize,
    /// `n_classes x dim` class means (normalized for cosine).
    means: Vec<f32>,
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

impl NcmParams {
    /// Fits the class means of `features` (`n x dim`, row-major) with `labels` (`n`, each
    /// `< n_classes`).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the lengths disagree; [`Error::NonFinite`] for NaN features;
    /// [`Error::InvalidParam`] if `dim` or `n_classes` is zero, a label is out of range, or a
    /// class has no example.
    pub fn fit(
        &self,
        features: &[f32],
        dim: usize,
        labels: &[u32],
        n_classes: usize,
    ) -> Result<Ncm> {
        if dim == 0 || n_classes == 0 {
            return Err(Error::InvalidParam {
                name: "dim/n_classes",
                reason: "must be >= 1".into(),
            });
        }
        if features.len() != labels.len() * dim {
            return Err(Error::ShapeMismatch {
                op: "NcmParams::fit",
                expected: format!("[{}, {dim}] features", labels.len()),
                got: format!("{} values", features.len()),
            });
        }
        check_finite("NcmParams::fit", features)?;
        let mut means = vec![0f32; n_classes * dim];
        let mut counts = vec![0usize; n_classes];
        let mut row = vec![0f32; dim];
        for (x, &y) in features.chunks_exact(dim).zip(labels) {
            let y = y as usize;
            if y >= n_classes {
                return Err(Error::InvalidParam {
                    name: "labels",
                    reason: format!("label {y} >= n_classes {n_classes}"),
                });
            }
            row.copy_from_slice(x);
            if self.metric == Metric::Cosine {
                normalize(&mut row);
            }
            means[y * dim..(y + 1) * dim].iter_mut().zip(&row).for_each(|(m, v)| *m += v);
            counts[y] += 1;
        }
        if let Some(c) = counts.iter().position(|&c| c == 0) {
            return Err(Error::InvalidParam {
                name: "labels",
                reason: format!("class {c} has no example"),
            });
        }
        for (m, &c) in means.chunks_exact_mut(dim).zip(&counts) {
            m.iter_mut().for_each(|v| *v /= c as f32);
            if self.metric == Metric::Cosine {
                normalize(m);
            }
        }
        Ok(Ncm { metric: self.metric, dim, means })
    }
}

impl Ncm {
    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.means.len() / self.dim
    }

    /// Feature dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Score of class `c` for `x` (higher is nearer): cosine similarity, or minus the squared
    /// Euclidean distance.
    fn score(&self, x: &[f32], x_norm: f32, c: usize) -> f32 {
        let m = &self.means[c * self.dim..(c + 1) * self.dim];
        match self.metric {
            Metric::Cosine => {
                m.iter().zip(x).map(|(a, b)| a * b).sum::<f32>() / x_norm.max(f32::MIN_POSITIVE)
            }
            Metric::Euclidean => -m.iter().zip(x).map(|(a, b)| (a - b) * (a - b)).sum::<f32>(),
        }
    }

    /// The class of one sample.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x.len() != dim`; [`Error::NonFinite`] for NaN input.
    pub fn predict(&self, x: &[f32]) -> Result<u32> {
        let mut out = [0u32];
        self.predict_into(x, &mut out)?;
        Ok(out[0])
    }

    /// Classes of `n` samples (`x`: `n x dim`) into `out` (`n`), without allocating.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the lengths disagree; [`Error::NonFinite`] for NaN input.
    pub fn predict_into(&self, x: &[f32], out: &mut [u32]) -> Result<()> {
        if x.len() != out.len() * self.dim {
            return Err(Error::ShapeMismatch {
                op: "Ncm::predict_into",
                expected: format!("[{}, {}] features", out.len(), self.dim),
                got: format!("{} values", x.len()),
            });
        }
        check_finite("Ncm::predict_into", x)?;
        for (row, o) in x.chunks_exact(self.dim).zip(out.iter_mut()) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            let mut best = (0u32, f32::NEG_INFINITY);
            for c in 0..self.n_classes() {
                let s = self.score(row, norm, c);
                if s > best.1 {
                    best = (c as u32, s);
                }
            }
            *o = best.0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn euclidean_and_cosine_differ_as_hand_computed() {
        // class 0 mean (1, 0), class 1 mean (10, 10).
        let x = [1.0, 0.0, 10.0, 10.0];
        let y = [0, 1];
        let e = NcmParams { metric: Metric::Euclidean }.fit(&x, 2, &y, 2).unwrap();
        let c = NcmParams { metric: Metric::Cosine }.fit(&x, 2, &y, 2).unwrap();
        // (3, 3): Euclid d0 = 4 + 9 = 13, d1 = 49 + 49 -> class 0; cosine: 45 degrees = class 1.
        assert_eq!(e.predict(&[3.0, 3.0]).unwrap(), 0);
        assert_eq!(c.predict(&[3.0, 3.0]).unwrap(), 1);
    }

    #[test]
    fn fit_rejects_missing_class_bad_label_and_nan() {
        let p = NcmParams::default();
        assert!(matches!(p.fit(&[1.0, 2.0], 1, &[0, 0], 2), Err(Error::InvalidParam { .. })));
        assert!(matches!(p.fit(&[1.0, 2.0], 1, &[0, 5], 2), Err(Error::InvalidParam { .. })));
        assert!(matches!(
            p.fit(&[1.0, f32::NAN], 1, &[0, 1], 2),
            Err(Error::NonFinite { index: 1, .. })
        ));
        assert!(matches!(p.fit(&[1.0], 1, &[0, 1], 2), Err(Error::ShapeMismatch { .. })));
    }
}
