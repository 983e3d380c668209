//! Divergences between distributions: KL, Jensen-Shannon (AugMix), and the squared error on
//! probabilities (MixMatch's unlabeled loss, the Π-model / temporal-ensembling consistency).
//!
//! # Examples
//! AugMix's consistency term over a clean and two augmented views:
//! ```
//! use edge_ssl::objective::divergence::augmix_consistency;
//!
//! let (clean, a1, a2) = ([2.0, 0.0, -1.0], [1.5, 0.2, -1.0], [2.5, -0.5, 0.0]);
//! let (mut g0, mut g1, mut g2) = ([0.0; 3], [0.0; 3], [0.0; 3]);
//! let loss = augmix_consistency([&clean, &a1, &a2], 3, [&mut g0, &mut g1, &mut g2])?;
//! assert!(loss > 0.0);
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use super::softmax::shifted_lse;
use super::{MAX_VIEWS, ParamsError, check_temperature, rows, same_len};
use crate::error::{Result, check_finite};

/// AugMix's weight on the Jensen-Shannon consistency term, `lambda = 12` (Hendrycks et al.
/// 2020, "AugMix", §4.1).
pub const AUGMIX_JS_WEIGHT: f32 = 12.0;

/// `KL(p || softmax(z / T))`, mean over rows; writes its gradient with respect to `z`,
/// `(softmax(z / T) - p) / (T n)`, into `dlogits`. `p` is a target (no gradient); `0 ln 0 = 0`.
///
/// # Shapes
/// `target: [n, k]`, `logits: [n, k]` -> `dlogits: [n, k]`.
///
/// # Errors
/// [`crate::Error::ShapeMismatch`], [`crate::Error::NonFinite`], [`ParamsError::Temperature`].
pub fn kl_into(
    target: &[f32],
    logits: &[f32],
    k: usize,
    temperature: f32,
    dlogits: &mut [f32],
) -> Result<f32> {
    const OP: &str = "kl_into";
    let inv_t = 1.0 / check_temperature(temperature)?;
    let n = rows(OP, "logits", logits.len(), k)?;
    same_len(OP, "target", logits.len(), target.len())?;
    same_len(OP, "dlogits", logits.len(), dlogits.len())?;
    check_finite(OP, logits)?;
    check_finite(OP, target)?;
    if n == 0 {
        return Ok(0.0);
    }
    let scale = inv_t / n as f32;
    let mut loss = 0.0;
    for ((z, p), g) in
        logits.chunks_exact(k).zip(target.chunks_exact(k)).zip(dlogits.chunks_exact_mut(k))
    {
        loss += kl_row(p, z, inv_t, g, scale);
    }
    Ok(loss / n as f32)
}

/// `KL(p || softmax(z inv_t))` of one row, gradient `scale (q - p)` into `g`.
#[inline]
pub(crate) fn kl_row(p: &[f32], z: &[f32], inv_t: f32, g: &mut [f32], scale: f32) -> f32 {
    let (m, s) = shifted_lse(z, inv_t);
    let mut loss = 0.0;
    for ((gc, &zc), &pc) in g.iter_mut().zip(z).zip(p) {
        let lq = (zc - m) * inv_t - s;
        if pc > 0.0 {
            loss += pc * (pc.ln() - lq);
        }
        *gc = scale * (lq.exp() - pc);
    }
    loss
}

/// Generalised Jensen-Shannon divergence of `m` predictive distributions
/// `JS = (1/m) sum_i KL(p_i || M)`, `M = (1/m) sum_i p_i`, `p_i = softmax(z_i)`, mean over
/// rows; writes `d JS / d z_i` into `dlogits[i]` for every view (all views get gradient).
///
/// Computed in the log domain (`ln M` by log-sum-exp over the views), so it is finite at any
/// logit size. AugMix's reference code instead clamps `M` to `[1e-7, 1]` before the log; the
/// two agree unless a mixture probability is below 1e-7.
///
/// # Shapes
/// `logits`: `m` slices `[n, k]` -> `dlogits`: `m` slices `[n, k]`; `2 <= m <= MAX_VIEWS`.
///
/// # Errors
/// [`ParamsError::Views`] for `m` outside `2..=MAX_VIEWS` or `dlogits.len() != m`;
/// [`crate::Error::ShapeMismatch`]; [`crate::Error::NonFinite`].
pub fn jensen_shannon(logits: &[&[f32]], k: usize, dlogits: &mut [&mut [f32]]) -> Result<f32> {
    const OP: &str = "jensen_shannon";
    let m = logits.len();
    if !(2..=MAX_VIEWS).contains(&m) || dlogits.len() != m {
        return Err(ParamsError::Views { value: m, max: MAX_VIEWS }.into());
    }
    let n = rows(OP, "logits[0]", logits[0].len(), k)?;
    for (z, g) in logits.iter().zip(dlogits.iter()) {
        same_len(OP, "logits[i]", logits[0].len(), z.len())?;
        same_len(OP, "dlogits[i]", logits[0].len(), g.len())?;
        check_finite(OP, z)?;
    }
    if n == 0 {
        return Ok(0.0);
    }
    let inv_m = 1.0 / m as f32;
    let ln_m = (m as f32).ln();
    let inv_n = 1.0 / n as f32;
    let mut loss = 0.0;
    // Per view: (max, shifted lse) and s_i = sum_c p_ic g_ic.
    let mut lse = [(0f32, 0f32); MAX_VIEWS];
    let mut dotpg = [0f32; MAX_VIEWS];
    for r in 0..n {
        let span = r * k..(r + 1) * k;
        for i in 0..m {
            lse[i] = shifted_lse(&logits[i][span.clone()], 1.0);
            dotpg[i] = 0.0;
        }
        let lp = |i: usize, c: usize| (logits[i][r * k + c] - lse[i].0) - lse[i].1;
        // Pass 1: g_ic = (1/m)(ln p_ic - ln M_c) into dlogits, and s_i.
        for c in 0..k {
            let mx = (0..m).map(|i| lp(i, c)).fold(f32::NEG_INFINITY, f32::max);
            let ln_mix = mx + (0..m).map(|i| (lp(i, c) - mx).exp()).sum::<f32>().ln() - ln_m;
            for i in 0..m {
                let l = lp(i, c);
                let g = inv_m * (l - ln_mix);
                dlogits[i][r * k + c] = g;
                dotpg[i] += l.exp() * g;
            }
        }
        // Pass 2: through the softmax, dz_ic = p_ic (g_ic - s_i) / n.
        for i in 0..m {
            loss += dotpg[i];
            for c in 0..k {
                let p = lp(i, c).exp();
                let g = &mut dlogits[i][r * k + c];
                *g = inv_n * p * (*g - dotpg[i]);
            }
        }
    }
    Ok(loss * inv_n)
}

/// AugMix's consistency loss `12 * JS(p_clean, p_aug1, p_aug2)` (Hendrycks et al. 2020, Eq. 1
/// and §4.1), mean over rows, with gradients for the three views.
///
/// # Shapes
/// Three `[n, k]` logit slices -> three `[n, k]` gradients.
///
/// # Errors
/// As [`jensen_shannon`].
pub fn augmix_consistency(logits: [&[f32]; 3], k: usize, dlogits: [&mut [f32]; 3]) -> Result<f32> {
    let mut dlogits = dlogits;
    let loss = jensen_shannon(&logits, k, &mut dlogits)?;
    for g in dlogits {
        g.iter_mut().for_each(|v| *v *= AUGMIX_JS_WEIGHT);
    }
    Ok(AUGMIX_JS_WEIGHT * loss)
}

/// Squared error between `softmax(z)` and target probabilities,
/// `(1 / (n K)) sum_i ||softmax(z_i) - q_i||^2` (MixMatch's `L_U`, Berthelot et al. 2019,
/// Eq. 5; the Π-model / temporal-ensembling consistency of Laine & Aila 2017 up to the
/// constant). Writes the gradient with respect to `z` into `dlogits`.
///
/// # Shapes
/// `logits: [n, k]`, `targets: [n, k]` -> `dlogits: [n, k]`.
///
/// # Errors
/// [`crate::Error::ShapeMismatch`], [`crate::Error::NonFinite`].
pub fn squared_error(
    logits: &[f32],
    targets: &[f32],
    k: usize,
    dlogits: &mut [f32],
) -> Result<f32> {
    const OP: &str = "squared_error";
    let n = rows(OP, "logits", logits.len(), k)?;
    same_len(OP, "targets", logits.len(), targets.len())?;
    same_len(OP, "dlogits", logits.len(), dlogits.len())?;
    check_finite(OP, logits)?;
    check_finite(OP, targets)?;
    if n == 0 {
        return Ok(0.0);
    }
    let scale = 2.0 / (n * k) as f32;
    let mut loss = 0.0;
    for ((z, q), g) in
        logits.chunks_exact(k).zip(targets.chunks_exact(k)).zip(dlogits.chunks_exact_mut(k))
    {
        super::softmax::softmax_row(z, 1.0, g);
        // dL/dp = scale (p - q); dz = p (dL/dp - <p, dL/dp>).
        let mut pdp = 0.0;
        for (p, qc) in g.iter().zip(q) {
            let d = p - qc;
            loss += d * d;
            pdp += p * scale * d;
        }
        for (p, qc) in g.iter_mut().zip(q) {
            *p = *p * (scale * (*p - qc) - pdp);
        }
    }
    Ok(loss / (n * k) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::objective::testutil::{check_grad, logits, probs};

    #[test]
    fn kl_hand_value_and_zero_at_match() {
        // KL([0.5, 0.5] || softmax([0, ln 3]) = [0.25, 0.75]) = 0.5 ln 2 + 0.5 ln(2/3)
        let mut g = [0.0; 2];
        let l = kl_into(&[0.5, 0.5], &[0.0, 3f32.ln()], 2, 1.0, &mut g).unwrap();
        assert!((l - (0.5 * 2f32.ln() + 0.5 * (2.0f32 / 3.0).ln())).abs() < 1e-6);
        let mut p = [0.0; 3];
        crate::objective::softmax::softmax_into(&[1.0, 2.0, 3.0], 3, 1.0, &mut p).unwrap();
        let l = kl_into(&p, &[1.0, 2.0, 3.0], 3, 1.0, &mut [0.0; 3]).unwrap();
        assert!(l.abs() < 1e-6);
    }

    #[test]
    fn kl_gradient_matches_finite_differences() {
        for (seed, offset, t) in [(1, 0.0, 1.0), (2, 1e3, 2.0), (3, 0.0, 0.5)] {
            let z = logits(seed, 4, 5, 3.0, offset);
            let p = probs(seed + 10, 4, 5);
            let mut g = vec![0.0; 20];
            kl_into(&p, &z, 5, t, &mut g).unwrap();
            let mut s = vec![0.0; 20];
            check_grad(|z| kl_into(&p, z, 5, t, &mut s).unwrap(), &z, &g, 1e-2);
        }
    }

    #[test]
    fn js_is_zero_for_equal_views_and_symmetric() {
        let a = [1.0, -2.0, 0.5, 0.0, 0.0, 3.0];
        let b = [0.0, 1.0, 0.5, 2.0, -1.0, 0.0];
        let (mut g0, mut g1) = ([0.0; 6], [0.0; 6]);
        let same = jensen_shannon(&[&a, &a], 3, &mut [&mut g0, &mut g1]).unwrap();
        assert!(same.abs() < 1e-6 && g0.iter().all(|v| v.abs() < 1e-6));
        let ab = jensen_shannon(&[&a, &b], 3, &mut [&mut g0, &mut g1]).unwrap();
        let ba = jensen_shannon(&[&b, &a], 3, &mut [&mut g1, &mut g0]).unwrap();
        assert!((ab - ba).abs() < 1e-6 && ab > 0.0 && ab <= 2f32.ln());
    }

    #[test]
    fn js_gradient_matches_finite_differences() {
        let (n, k) = (3, 4);
        for (seed, offset) in [(4, 0.0), (5, 1e3)] {
            let zs: Vec<Vec<f32>> =
                (0..3).map(|i| logits(seed * 10 + i, n, k, 2.0, offset)).collect();
            let mut gs = vec![vec![0.0; n * k]; 3];
            {
                let [g0, g1, g2] = &mut gs[..] else { unreachable!() };
                augmix_consistency([&zs[0], &zs[1], &zs[2]], k, [g0, g1, g2]).unwrap();
            }
            for view in 0..3 {
                let mut s = vec![vec![0.0; n * k]; 3];
                let f = |z: &[f32]| {
                    let mut v: Vec<&[f32]> = zs.iter().map(|z| z.as_slice()).collect();
                    v[view] = z;
                    let [s0, s1, s2] = &mut s[..] else { unreachable!() };
                    augmix_consistency([v[0], v[1], v[2]], k, [s0, s1, s2]).unwrap()
                };
                check_grad(f, &zs[view], &gs[view], 1e-2);
            }
        }
    }

    #[test]
    fn js_is_finite_at_extreme_logits() {
        let a = logits(21, 4, 10, 1e3, 0.0);
        let b = logits(22, 4, 10, 1e3, 0.0);
        let (mut g0, mut g1) = (vec![0.0; 40], vec![0.0; 40]);
        let l = jensen_shannon(&[&a, &b], 10, &mut [&mut g0, &mut g1]).unwrap();
        assert!(l.is_finite() && l <= 2f32.ln() + 1e-6);
        assert!(g0.iter().chain(&g1).all(|v| v.is_finite()));
    }

    #[test]
    fn views_must_be_in_range() {
        let a = [0.0; 2];
        let r = jensen_shannon(&[&a], 2, &mut [&mut [0.0; 2]]);
        assert!(matches!(r, Err(Error::ObjectiveParams(ParamsError::Views { .. }))));
    }

    #[test]
    fn squared_error_gradient_matches_finite_differences() {
        for (seed, offset) in [(6, 0.0), (7, 1e3)] {
            let z = logits(seed, 4, 3, 2.0, offset);
            let q = probs(seed + 1, 4, 3);
            let mut g = vec![0.0; 12];
            squared_error(&z, &q, 3, &mut g).unwrap();
            let mut s = vec![0.0; 12];
            check_grad(|z| squared_error(z, &q, 3, &mut s).unwrap(), &z, &g, 1e-2);
        }
    }
}
