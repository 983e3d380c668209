//! Streaming (Welford) class means, pooled within-class scatter and global scatter, and the
//! shrinkage estimators (OAS, Ledoit-Wolf) that make the covariance usable with few samples.

use super::Shrinkage;
use crate::error::{Error, Result};

/// Streaming sufficient statistics in the gate's (possibly projected) space of dimension `p`.
///
/// Per class `c`: count `n_c` and mean `mu_c`; pooled within-class scatter
/// `W = sum_c sum_{i in c} (z_i - mu_c)(z_i - mu_c)^T`; the same for all samples pooled as one
/// class (the "background" of relative Mahalanobis). Updated one sample at a time with Welford's
/// rule `W += (z - mu_old)(z - mu_new)^T`, exact in any order.
#[derive(Debug, Clone, PartialEq)]
pub struct GateStats {
    pub(crate) dim: usize,
    pub(crate) n_classes: usize,
    pub(crate) counts: Vec<u64>,
    /// `n_classes x dim`.
    pub(crate) means: Vec<f64>,
    /// `dim x dim`, full symmetric.
    pub(crate) scatter: Vec<f64>,
    /// Sum of `(|z - mu_old| |z - mu_new|)^2` (Ledoit-Wolf fourth moment, streaming estimate).
    pub(crate) fourth: f64,
    pub(crate) total: u64,
    pub(crate) gmean: Vec<f64>,
    pub(crate) gscatter: Vec<f64>,
    pub(crate) gfourth: f64,
}

impl GateStats {
    /// Empty statistics (allocates `2 p^2 + (k + 1) p` f64 once).
    pub fn new(dim: usize, n_classes: usize) -> Self {
        GateStats {
            dim,
            n_classes,
            counts: vec![0; n_classes],
            means: vec![0.0; n_classes * dim],
            scatter: vec![0.0; dim * dim],
            fourth: 0.0,
            total: 0,
            gmean: vec![0.0; dim],
            gscatter: vec![0.0; dim * dim],
            gfourth: 0.0,
        }
    }

    /// Dimension of the space.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Samples seen per class.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Samples seen in total.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Adds one sample `z` (`dim` values, already projected) of class `c < n_classes`, using
    /// `scratch` (`2 * dim` values) to avoid allocating. Callers validate `z` and `c`.
    pub(crate) fn update(&mut self, z: &[f64], c: usize, scratch: &mut [f64]) {
        let p = self.dim;
        let (d_old, d_new) = scratch.split_at_mut(p);
        self.counts[c] += 1;
        let n = self.counts[c] as f64;
        welford(&mut self.means[c * p..(c + 1) * p], &mut self.scatter, z, n, d_old, d_new);
        self.fourth += sq(dot(d_old, d_new));
        self.total += 1;
        let n = self.total as f64;
        welford(&mut self.gmean, &mut self.gscatter, z, n, d_old, d_new);
        self.gfourth += sq(dot(d_old, d_new));
    }

    /// The shrunk within-class covariance `(1 - s) W / N + s (tr(W / N) / p) I` and `s`.
    pub(crate) fn within_cov(&self, shrinkage: Shrinkage) -> (Vec<f64>, f64) {
        shrink(&self.scatter, self.dim, self.total as f64, self.fourth, shrinkage)
    }

    /// The shrunk covariance of all samples pooled as one class, and its shrinkage.
    pub(crate) fn global_cov(&self, shrinkage: Shrinkage) -> (Vec<f64>, f64) {
        shrink(&self.gscatter, self.dim, self.total as f64, self.gfourth, shrinkage)
    }

    /// Checks internal consistency (used when loading a state file).
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        let p = self.dim;
        if self.counts.len() != self.n_classes
            || self.means.len() != self.n_classes * p
            || self.scatter.len() != p * p
            || self.gmean.len() != p
            || self.gscatter.len() != p * p
        {
            return Err("gate statistics have inconsistent lengths".into());
        }
        if self.counts.iter().try_fold(0u64, |a, &c| a.checked_add(c)) != Some(self.total) {
            return Err("gate class counts do not add up to the total".into());
        }
        let all_finite = self
            .means
            .iter()
            .chain(&self.scatter)
            .chain(&self.gmean)
            .chain(&self.gscatter)
            .chain([&self.fourth, &self.gfourth])
            .all(|v| v.is_finite());
        if !all_finite {
            return Err("gate statistics hold a non-finite value".into());
        }
        Ok(())
    }
}

fn sq(x: f64) -> f64 {
    x * x
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn welford(
    mean: &mut [f64],
    scatter: &mut [f64],
    z: &[f64],
    n: f64,
    d_old: &mut [f64],
    d_new: &mut [f64],
) {
    let p = mean.len();
    for j in 0..p {
        d_old[j] = z[j] - mean[j];
        mean[j] += d_old[j] / n;
        d_new[j] = z[j] - mean[j];
    }
    for i in 0..p {
        let a = d_old[i];
        let row = &mut scatter[i * p..(i + 1) * p];
        row.iter_mut().zip(d_new.iter()).for_each(|(s, b)| *s += a * b);
    }
}

/// Shrinks `scatter / n` toward `mu I`. OAS: Chen, Wiesel, Eldar & Hero (2010), eq. 23, in the
/// form of scikit-learn 1.5 `oas`; Ledoit & Wolf (2004) in the form of scikit-learn
/// `ledoit_wolf_shrinkage`, with the fourth moment accumulated in streaming form.
pub(crate) fn shrink(
    scatter: &[f64],
    p: usize,
    n: f64,
    fourth: f64,
    shrinkage: Shrinkage,
) -> (Vec<f64>, f64) {
    let n = n.max(1.0);
    let mut s: Vec<f64> = scatter.iter().map(|v| v / n).collect();
    // symmetrize (Welford's update is symmetric only up to rounding)
    for i in 0..p {
        for j in i + 1..p {
            let m = 0.5 * (s[i * p + j] + s[j * p + i]);
            s[i * p + j] = m;
            s[j * p + i] = m;
        }
    }
    let pf = p as f64;
    let tr: f64 = (0..p).map(|i| s[i * p + i]).sum();
    let mu = tr / pf;
    let fro2: f64 = s.iter().map(|v| v * v).sum();
    let amount = match shrinkage {
        Shrinkage::Fixed(a) => a,
        Shrinkage::Oas => {
            let alpha = fro2 / (pf * pf);
            let num = alpha + mu * mu;
            let den = (n + 1.0) * (alpha - mu * mu / pf);
            if den <= 0.0 { 1.0 } else { (num / den).min(1.0) }
        }
        Shrinkage::LedoitWolf => {
            let delta = fro2 / pf - mu * mu;
            let beta = ((fourth / n - fro2) / (pf * n)).min(delta).max(0.0);
            if delta <= 0.0 { 1.0 } else { beta / delta }
        }
    };
    for v in s.iter_mut() {
        *v *= 1.0 - amount;
    }
    for i in 0..p {
        s[i * p + i] += amount * mu;
    }
    (s, amount)
}

/// Validates a shrinkage amount.
pub(crate) fn check_shrinkage(s: Shrinkage) -> Result<()> {
    if let Shrinkage::Fixed(a) = s
        && !(0.0..=1.0).contains(&a)
    {
        return Err(Error::InvalidParam {
            name: "shrinkage",
            reason: format!("fixed shrinkage {a} not in [0, 1]"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_scatter(z: &[f64], p: usize) -> (Vec<f64>, Vec<f64>) {
        let n = z.len() / p;
        let mut m = vec![0.0; p];
        for r in z.chunks_exact(p) {
            m.iter_mut().zip(r).for_each(|(a, b)| *a += b / n as f64);
        }
        let mut s = vec![0.0; p * p];
        for r in z.chunks_exact(p) {
            for i in 0..p {
                for j in 0..p {
                    s[i * p + j] += (r[i] - m[i]) * (r[j] - m[j]);
                }
            }
        }
        (m, s)
    }

    #[test]
    fn incremental_equals_batch() {
        let p = 3;
        let z: Vec<f64> = (0..30).map(|i| ((i * 37 % 11) as f64) * 0.3 - (i % 4) as f64).collect();
        let mut st = GateStats::new(p, 1);
        let mut scratch = vec![0.0; 2 * p];
        for r in z.chunks_exact(p) {
            st.update(r, 0, &mut scratch);
        }
        let (m, s) = batch_scatter(&z, p);
        for (a, b) in st.means.iter().zip(&m) {
            assert!((a - b).abs() < 1e-12);
        }
        for (a, b) in st.scatter.iter().zip(&s) {
            assert!((a - b).abs() < 1e-9);
        }
        assert_eq!(st.gscatter, st.scatter);
    }

    #[test]
    fn oas_matches_hand_values() {
        // S = diag(2, 0) from scatter diag(4, 0), n = 2, p = 2:
        // mu = 1, alpha = 4/4 = 1, num = 2, den = 3 * (1 - 0.5) = 1.5 -> s = 1 (clamped)
        let (c, s) = shrink(&[4.0, 0.0, 0.0, 0.0], 2, 2.0, 0.0, Shrinkage::Oas);
        assert_eq!(s, 1.0);
        assert_eq!(c, vec![1.0, 0.0, 0.0, 1.0]);
        // many samples -> little shrinkage
        let (_, s) = shrink(&[4000.0, 0.0, 0.0, 1000.0], 2, 1000.0, 0.0, Shrinkage::Oas);
        assert!(s < 0.01, "{s}");
    }

    #[test]
    fn fixed_shrinkage_must_be_in_0_1() {
        assert!(matches!(
            check_shrinkage(Shrinkage::Fixed(1.5)),
            Err(Error::InvalidParam { name: "shrinkage", .. })
        ));
        assert!(check_shrinkage(Shrinkage::Fixed(0.3)).is_ok());
    }
}
