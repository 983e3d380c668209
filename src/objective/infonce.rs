//! InfoNCE over a queue of negatives, MoCo style (He et al. 2020, "Momentum Contrast", Eq. 1;
//! Oord et al. 2018): for a query `q` with positive key `k+` and negatives `v_1..v_M` (the
//! queue, e.g. embeddings from the bank), with cosine similarities
//! `s_0 = cos(q, k+) / T`, `s_j = cos(q, v_j) / T`,
//! `L = -ln( exp(s_0) / sum_{j=0..M} exp(s_j) )`, mean over the queries.
//!
//! All vectors are L2-normalised inside (this is NT-Xent, "normalised temperature-scaled
//! cross-entropy", SimCLR's form; SimCLR's in-batch negatives are the special case where the
//! queue holds the other keys). Only the queries get a gradient: keys come from the momentum
//! encoder / teacher and the queue from the bank, as in MoCo. The gradient goes through the
//! normalisation: `dL/dq = (g - q^ <q^, g>) / |q|` with `g = dL/dq^`.
//!
//! The log-sum-exp over the queue is streamed (two passes over it, no buffer), so the cost is
//! `2 (M + 1) D` multiply-adds per query and no allocation for any queue length.
//!
//! # Examples
//! ```
//! use edge_ssl::objective::infonce::InfoNceParams;
//!
//! let nce = InfoNceParams::default().check()?;
//! let q = [1.0, 0.0];
//! let key = [0.9, 0.1];
//! let queue = [0.0, 1.0, -1.0, 0.0]; // two negatives
//! let mut dq = [0.0; 2];
//! let loss = nce.loss(&q, &key, &queue, 2, &mut dq)?;
//! assert!(loss < 0.01); // the positive is far more similar than the negatives at T = 0.07
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use super::{ParamsError, check_temperature, rows, same_len};
use crate::error::{Result, check_finite};
use crate::head::{axpy, dot};

/// Parameters of [`InfoNce`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InfoNceParams {
    /// Temperature `T > 0`. Default 0.07 (MoCo, He et al. 2020, §3.3 / §4).
    pub temperature: f32,
}

impl Default for InfoNceParams {
    fn default() -> Self {
        InfoNceParams { temperature: 0.07 }
    }
}

impl InfoNceParams {
    /// Validates the parameters.
    ///
    /// # Errors
    /// [`ParamsError::Temperature`].
    pub fn check(self) -> Result<InfoNce, ParamsError> {
        check_temperature(self.temperature)?;
        Ok(InfoNce { t: self.temperature })
    }
}

/// The contrastive loss (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InfoNce {
    t: f32,
}

/// Floor on vector norms, so a zero vector gives a zero similarity instead of NaN.
const NORM_EPS: f32 = 1e-12;

#[inline]
fn norm(v: &[f32]) -> f32 {
    dot(v, v).sqrt().max(NORM_EPS)
}

impl InfoNce {
    /// The InfoNCE loss (mean over queries) and its gradient with respect to the queries.
    ///
    /// # Shapes
    /// `queries: [n, d]`, `keys: [n, d]` (row `i` is the positive of query `i`),
    /// `queue: [m, d]` (negatives shared by all queries; `m` may be 0) -> `dqueries: [n, d]`.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`], [`crate::Error::NonFinite`].
    pub fn loss(
        &self,
        queries: &[f32],
        keys: &[f32],
        queue: &[f32],
        d: usize,
        dqueries: &mut [f32],
    ) -> Result<f32> {
        const OP: &str = "InfoNce::loss";
        let n = rows(OP, "queries", queries.len(), d)?;
        same_len(OP, "keys", queries.len(), keys.len())?;
        rows(OP, "queue", queue.len(), d)?;
        same_len(OP, "dqueries", queries.len(), dqueries.len())?;
        check_finite(OP, queries)?;
        check_finite(OP, keys)?;
        check_finite(OP, queue)?;
        if n == 0 {
            return Ok(0.0);
        }
        let inv_t = 1.0 / self.t;
        let mut loss = 0.0;
        for ((q, kp), g) in
            queries.chunks_exact(d).zip(keys.chunks_exact(d)).zip(dqueries.chunks_exact_mut(d))
        {
            let qn = norm(q);
            let sim = |v: &[f32]| dot(q, v) / (qn * norm(v)) * inv_t;
            let s0 = sim(kp);
            // Pass 1: streaming log-sum-exp over [s0, s_1..s_m].
            let (mut mx, mut acc) = (s0, 1.0f32);
            for v in queue.chunks_exact(d) {
                let s = sim(v);
                if s > mx {
                    acc = acc * (mx - s).exp() + 1.0;
                    mx = s;
                } else {
                    acc += (s - mx).exp();
                }
            }
            let lse = mx + acc.ln();
            loss += lse - s0;
            // Pass 2: g = dL/dq^ = (1/T) sum_j (p_j - [j = 0]) v^_j.
            g.fill(0.0);
            let p0 = (s0 - lse).exp();
            axpy((p0 - 1.0) * inv_t / norm(kp), kp, g);
            for v in queue.chunks_exact(d) {
                let p = (sim(v) - lse).exp();
                if p > 0.0 {
                    axpy(p * inv_t / norm(v), v, g);
                }
            }
            // Through the normalisation q^ = q / |q|, and the mean over n.
            let qg = dot(q, g) / qn;
            let scale = 1.0 / (qn * n as f32);
            for (gc, &qc) in g.iter_mut().zip(q) {
                *gc = scale * (*gc - qc / qn * qg);
            }
        }
        Ok(loss / n as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::testutil::{check_grad, logits};

    #[test]
    fn temperature_must_be_positive() {
        let r = InfoNceParams { temperature: 0.0 }.check();
        assert!(matches!(r, Err(ParamsError::Temperature { .. })));
    }

    #[test]
    fn hand_value_with_orthogonal_vectors() {
        // q = e0, key = e0 (cos 1), queue = [e1, -e0] (cos 0, -1); T = 1:
        // L = -ln(e / (e + 1 + 1/e)).
        let nce = InfoNceParams { temperature: 1.0 }.check().unwrap();
        let mut g = [0.0; 2];
        let l = nce.loss(&[2.0, 0.0], &[3.0, 0.0], &[0.0, 1.0, -1.0, 0.0], 2, &mut g).unwrap();
        let e = std::f32::consts::E;
        assert!((l + (e / (e + 1.0 + 1.0 / e)).ln()).abs() < 1e-6);
        let none = nce.loss(&[2.0, 0.0], &[3.0, 0.0], &[], 2, &mut g).unwrap();
        assert!(none.abs() < 1e-7 && g.iter().all(|v| v.abs() < 1e-7));
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (n, d, m) = (3, 6, 5);
        for t in [0.5, 0.07] {
            let nce = InfoNceParams { temperature: t }.check().unwrap();
            let q = logits(1, n, d, 1.0, 0.0);
            let k = logits(2, n, d, 1.0, 0.0);
            let queue = logits(3, m, d, 1.0, 0.0);
            let mut g = vec![0.0; n * d];
            nce.loss(&q, &k, &queue, d, &mut g).unwrap();
            let mut s = vec![0.0; n * d];
            check_grad(|q| nce.loss(q, &k, &queue, d, &mut s).unwrap(), &q, &g, 1e-3);
        }
    }

    #[test]
    fn finite_for_huge_and_zero_vectors() {
        let nce = InfoNceParams::default().check().unwrap();
        let q = logits(4, 2, 8, 1e3, 0.0);
        let k = logits(5, 2, 8, 1e3, 0.0);
        let mut queue = logits(6, 4, 8, 1e3, 0.0);
        queue[..8].fill(0.0);
        let mut g = vec![0.0; 16];
        let l = nce.loss(&q, &k, &queue, 8, &mut g).unwrap();
        assert!(l.is_finite() && g.iter().all(|v| v.is_finite()));
    }
}
