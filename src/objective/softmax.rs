//! Softmax with temperature, sharpening, one-hot targets with label smoothing, cross-entropy.
//!
//! `softmax(z / T)` is computed as `exp((z - max z) / T - s)` with
//! `s = ln sum exp((z - max z) / T)`, so it is exact for logits of any finite size.
//!
//! # Examples
//! ```
//! use edge_ssl::objective::softmax::{CrossEntropyParams, softmax_into};
//!
//! let mut p = [0.0; 3];
//! softmax_into(&[1.4, 2.8, 0.9], 3, 1.0, &mut p)?;
//! assert!((p[1] - 0.71624742).abs() < 1e-6);
//!
//! let ce = CrossEntropyParams::plain().check()?;
//! let mut g = [0.0; 3];
//! let loss = ce.hard(&[1.4, 2.8, 0.9], &[1], &mut g)?; // -ln 0.71624742
//! assert!((loss - 0.33373).abs() < 1e-4);
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use super::{ParamsError, check_labels, check_temperature, rows, same_len};
use crate::error::{Result, check_finite};

/// `(max z, ln sum_c exp((z_c - max z) * inv_t))`: with it, `ln softmax(z / T)_c =
/// (z_c - max) * inv_t - s`.
#[inline]
pub(crate) fn shifted_lse(z: &[f32], inv_t: f32) -> (f32, f32) {
    let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let s: f32 = z.iter().map(|&v| ((v - m) * inv_t).exp()).sum();
    (m, s.ln())
}

/// Writes `softmax(z / T)` of one row into `out`.
#[inline]
pub(crate) fn softmax_row(z: &[f32], inv_t: f32, out: &mut [f32]) {
    let (m, s) = shifted_lse(z, inv_t);
    for (o, &v) in out.iter_mut().zip(z) {
        *o = ((v - m) * inv_t - s).exp();
    }
}

/// Cross-entropy of one row against `target(c)`; writes `scale * (p - t)` into `g`.
/// Returns `-sum_c t_c ln p_c` with `p = softmax(z / T)`.
#[inline]
pub(crate) fn ce_row(
    z: &[f32],
    inv_t: f32,
    target: impl Fn(usize) -> f32,
    g: &mut [f32],
    scale: f32,
) -> f32 {
    let (m, s) = shifted_lse(z, inv_t);
    let mut loss = 0.0;
    for (c, (gc, &v)) in g.iter_mut().zip(z).enumerate() {
        let lp = (v - m) * inv_t - s;
        let t = target(c);
        if t != 0.0 {
            loss -= t * lp;
        }
        *gc = scale * (lp.exp() - t);
    }
    loss
}

/// `softmax(logits / temperature)` row by row.
///
/// # Shapes
/// `logits: [n, k]` -> `probs: [n, k]`.
///
/// # Errors
/// [`crate::Error::ShapeMismatch`], [`crate::Error::NonFinite`], and
/// [`ParamsError::Temperature`] (wrapped in [`crate::Error::ObjectiveParams`]) unless
/// `temperature` is finite and > 0.
pub fn softmax_into(logits: &[f32], k: usize, temperature: f32, probs: &mut [f32]) -> Result<()> {
    const OP: &str = "softmax_into";
    let inv_t = 1.0 / check_temperature(temperature)?;
    rows(OP, "logits", logits.len(), k)?;
    same_len(OP, "probs", logits.len(), probs.len())?;
    check_finite(OP, logits)?;
    for (z, p) in logits.chunks_exact(k).zip(probs.chunks_exact_mut(k)) {
        softmax_row(z, inv_t, p);
    }
    Ok(())
}

/// `ln softmax(logits / temperature)` row by row (finite for finite logits).
///
/// # Shapes
/// `logits: [n, k]` -> `out: [n, k]`.
///
/// # Errors
/// As [`softmax_into`].
pub fn log_softmax_into(logits: &[f32], k: usize, temperature: f32, out: &mut [f32]) -> Result<()> {
    const OP: &str = "log_softmax_into";
    let inv_t = 1.0 / check_temperature(temperature)?;
    rows(OP, "logits", logits.len(), k)?;
    same_len(OP, "out", logits.len(), out.len())?;
    check_finite(OP, logits)?;
    for (z, o) in logits.chunks_exact(k).zip(out.chunks_exact_mut(k)) {
        let (m, s) = shifted_lse(z, inv_t);
        for (oc, &v) in o.iter_mut().zip(z) {
            *oc = (v - m) * inv_t - s;
        }
    }
    Ok(())
}

/// Sharpening `p_c^(1/T) / sum_j p_j^(1/T)` of probability rows (MixMatch uses `T = 0.5`,
/// Berthelot et al. 2019, Eq. 7), computed in the log domain. A row of zeros stays uniform.
/// For probabilities that come from logits, `sharpen(softmax(z), T) = softmax(z / T)`: prefer
/// [`softmax_into`] then.
///
/// # Shapes
/// `probs: [n, k]` -> `out: [n, k]`.
///
/// # Errors
/// [`crate::Error::ShapeMismatch`]; [`crate::Error::NonFinite`] for NaN/inf (or a negative
/// probability, reported with its index); [`ParamsError::Temperature`].
pub fn sharpen_into(probs: &[f32], k: usize, temperature: f32, out: &mut [f32]) -> Result<()> {
    const OP: &str = "sharpen_into";
    let inv_t = 1.0 / check_temperature(temperature)?;
    rows(OP, "probs", probs.len(), k)?;
    same_len(OP, "out", probs.len(), out.len())?;
    check_finite(OP, probs)?;
    if let Some(index) = probs.iter().position(|&p| p < 0.0) {
        return Err(crate::Error::NonFinite { op: OP, index, value: probs[index] });
    }
    for (p, o) in probs.chunks_exact(k).zip(out.chunks_exact_mut(k)) {
        let m = p.iter().fold(0f32, |a, &b| a.max(b));
        if m == 0.0 {
            o.fill(1.0 / k as f32);
            continue;
        }
        // (p / m)^(1/T) in (0, 1], exact ratio of the sharpened values.
        let mut s = 0.0;
        for (oc, &pc) in o.iter_mut().zip(p) {
            *oc = if pc > 0.0 { ((pc / m).ln() * inv_t).exp() } else { 0.0 };
            s += *oc;
        }
        o.iter_mut().for_each(|v| *v /= s);
    }
    Ok(())
}

/// One-hot targets with label smoothing: `t = y (1 - a) + a / K` (Szegedy et al. 2016, §7).
///
/// # Shapes
/// `labels: [n]` -> `out: [n, k]`.
///
/// # Errors
/// [`crate::Error::ShapeMismatch`]; [`crate::Error::IndexOutOfRange`] for a label `>= k`;
/// [`ParamsError::LabelSmoothing`] unless `smoothing` is in `[0, 1)`.
pub fn one_hot_into(labels: &[u32], k: usize, smoothing: f32, out: &mut [f32]) -> Result<()> {
    const OP: &str = "one_hot_into";
    if !(0.0..1.0).contains(&smoothing) {
        return Err(ParamsError::LabelSmoothing { value: smoothing }.into());
    }
    same_len(OP, "out [n, k]", labels.len() * k, out.len())?;
    check_labels(OP, labels, k)?;
    for (&y, o) in labels.iter().zip(out.chunks_exact_mut(k.max(1))) {
        o.fill(smoothing / k as f32);
        o[y as usize] += 1.0 - smoothing;
    }
    Ok(())
}

/// Parameters of [`CrossEntropy`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CrossEntropyParams {
    /// Label smoothing `a` in `[0, 1)`, targets `y (1 - a) + a / K`. Default 0.1 (Szegedy et
    /// al. 2016, "Rethinking the Inception Architecture", §7). Applies to [`CrossEntropy::hard`]
    /// only; soft targets are used as given.
    pub label_smoothing: f32,
    /// Softmax temperature `T > 0`: `p = softmax(z / T)`. Default 1.
    pub temperature: f32,
}

impl Default for CrossEntropyParams {
    fn default() -> Self {
        CrossEntropyParams { label_smoothing: 0.1, temperature: 1.0 }
    }
}

impl CrossEntropyParams {
    /// Plain cross-entropy: no smoothing, `T = 1` (FixMatch's supervised and unlabeled loss).
    pub fn plain() -> Self {
        CrossEntropyParams { label_smoothing: 0.0, temperature: 1.0 }
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`ParamsError::LabelSmoothing`], [`ParamsError::Temperature`].
    pub fn check(self) -> Result<CrossEntropy, ParamsError> {
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(ParamsError::LabelSmoothing { value: self.label_smoothing });
        }
        check_temperature(self.temperature)?;
        Ok(CrossEntropy { p: self })
    }
}

/// Cross-entropy `-(1/n) sum_i sum_c t_ic ln softmax(z_i / T)_c`; gradient
/// `(softmax(z / T) - t) / (T n)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CrossEntropy {
    p: CrossEntropyParams,
}

impl CrossEntropy {
    /// Cross-entropy against hard labels (smoothed by `label_smoothing`).
    ///
    /// # Shapes
    /// `logits: [n, K]`, `labels: [n]` -> `dlogits: [n, K]`; returns the mean loss.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`]; [`crate::Error::NonFinite`];
    /// [`crate::Error::IndexOutOfRange`] for a label `>= K`.
    pub fn hard(&self, logits: &[f32], labels: &[u32], dlogits: &mut [f32]) -> Result<f32> {
        const OP: &str = "CrossEntropy::hard";
        let k = if labels.is_empty() { 1 } else { logits.len() / labels.len() };
        same_len(OP, "logits [n, K]", labels.len() * k.max(1), logits.len())?;
        same_len(OP, "dlogits", logits.len(), dlogits.len())?;
        if labels.is_empty() {
            return Ok(0.0);
        }
        check_finite(OP, logits)?;
        check_labels(OP, labels, k)?;
        let (a, inv_t) = (self.p.label_smoothing, 1.0 / self.p.temperature);
        let scale = inv_t / labels.len() as f32;
        let mut loss = 0.0;
        for ((z, g), &y) in logits.chunks_exact(k).zip(dlogits.chunks_exact_mut(k)).zip(labels) {
            let y = y as usize;
            let t = |c: usize| if c == y { 1.0 - a + a / k as f32 } else { a / k as f32 };
            loss += ce_row(z, inv_t, t, g, scale);
        }
        Ok(loss / labels.len() as f32)
    }

    /// Cross-entropy against soft targets (rows of `targets` should sum to 1; mixup and
    /// MixMatch targets are soft).
    ///
    /// # Shapes
    /// `logits: [n, k]`, `targets: [n, k]` -> `dlogits: [n, k]`; returns the mean loss.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`]; [`crate::Error::NonFinite`].
    pub fn soft(
        &self,
        logits: &[f32],
        targets: &[f32],
        k: usize,
        dlogits: &mut [f32],
    ) -> Result<f32> {
        const OP: &str = "CrossEntropy::soft";
        let n = rows(OP, "logits", logits.len(), k)?;
        same_len(OP, "targets", logits.len(), targets.len())?;
        same_len(OP, "dlogits", logits.len(), dlogits.len())?;
        if n == 0 {
            return Ok(0.0);
        }
        check_finite(OP, logits)?;
        check_finite(OP, targets)?;
        let inv_t = 1.0 / self.p.temperature;
        let scale = inv_t / n as f32;
        let mut loss = 0.0;
        for ((z, g), t) in
            logits.chunks_exact(k).zip(dlogits.chunks_exact_mut(k)).zip(targets.chunks_exact(k))
        {
            loss += ce_row(z, inv_t, |c| t[c], g, scale);
        }
        Ok(loss / n as f32)
    }
}

/// Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks", §4.2): the
/// `T` in `[1/20, 20]` that minimizes the mean negative log-likelihood `mean_i -ln
/// softmax(z_i / T)_{y_i}` of `labels` under `logits` (`n x k`, row-major).
///
/// The NLL is convex in `beta = 1/T`, with derivative `mean_i (E_{p_i}[z_i] - z_{i, y_i})`
/// (increasing in `beta`), so its zero is found by bisection on `ln beta` (48 halvings, 2 passes
/// over the logits each, no allocation). Separable data (the derivative is negative up to
/// `beta = 20`) give `T = 1/20`; data no better than chance give `T = 20`.
///
/// # Errors
/// [`crate::Error::ShapeMismatch`] if `logits` is not `labels.len() x k` or is empty,
/// [`crate::Error::IndexOutOfRange`] for a label `>= k`, [`crate::Error::NonFinite`].
///
/// # Examples
/// ```
/// use edge_ssl::objective::softmax::fit_temperature;
///
/// // Two classes, logits (2, 0) on every row, label 0 on 80% of them: the calibrated
/// // probability of class 0 is 0.8, so sigmoid(2 / T) = 0.8 and T = 2 / ln 4.
/// let logits: Vec<f32> = [2.0, 0.0].repeat(10);
/// let labels = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1];
/// let t = fit_temperature(&logits, &labels, 2)?;
/// assert!((t - 2.0 / 4f32.ln()).abs() < 1e-3);
/// # Ok::<(), edge_ssl::Error>(())
/// ```
pub fn fit_temperature(logits: &[f32], labels: &[u32], k: usize) -> Result<f32> {
    const OP: &str = "fit_temperature";
    rows(OP, "logits", logits.len(), k)?;
    same_len(OP, "logits", labels.len() * k, logits.len())?;
    if labels.is_empty() {
        return Err(crate::error::Error::ShapeMismatch {
            op: OP,
            expected: "at least one labelled row".into(),
            got: "none".into(),
        });
    }
    check_labels(OP, labels, k)?;
    check_finite(OP, logits)?;
    // d NLL / d beta at beta, as a sum over rows (its sign is all that matters).
    let slope = |beta: f32| -> f64 {
        let mut g = 0f64;
        for (z, &y) in logits.chunks_exact(k).zip(labels) {
            let (m, lse) = shifted_lse(z, beta);
            let expect: f32 = z.iter().map(|&v| v * ((v - m) * beta - lse).exp()).sum();
            g += f64::from(expect - z[y as usize]);
        }
        g
    };
    const T_MAX: f32 = 20.0;
    if slope(T_MAX) <= 0.0 {
        return Ok(1.0 / T_MAX);
    }
    if slope(1.0 / T_MAX) >= 0.0 {
        return Ok(T_MAX);
    }
    let (mut lo, mut hi) = ((1.0 / T_MAX).ln(), T_MAX.ln());
    for _ in 0..48 {
        let mid = 0.5 * (lo + hi);
        if slope(mid.exp()) > 0.0 {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(1.0 / (0.5 * (lo + hi)).exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::objective::testutil::{check_grad, logits, probs};

    fn close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol, "{a:?} vs {b:?}");
        }
    }

    #[test]
    #[allow(clippy::excessive_precision)] // the issue's hand values, digit for digit
    fn softmax_hand_values() {
        let z = [1.4, 2.8, 0.9];
        let mut p = [0.0; 3];
        softmax_into(&z, 3, 1.0, &mut p).unwrap();
        close(&p, &[0.17662444, 0.71624742, 0.10712814], 1e-7);
        softmax_into(&z, 3, 1.0 / 0.3, &mut p).unwrap();
        close(&p, &[0.2956245, 0.44992913, 0.25444637], 1e-7);
        softmax_into(&z, 3, 1.0 / 0.5, &mut p).unwrap();
        close(&p, &[0.26367459, 0.53097543, 0.20534998], 1e-7);
        // The same through scaled logits at T = 1.
        softmax_into(&z.map(|v| v * 0.3), 3, 1.0, &mut p).unwrap();
        close(&p, &[0.2956245, 0.44992913, 0.25444637], 1e-7);
    }

    #[test]
    #[allow(clippy::excessive_precision)]
    fn softmax_is_finite_and_exact_at_extreme_logits() {
        let mut p = [0.0; 3];
        softmax_into(&[1000.0, 1001.0, -1000.0], 3, 1.0, &mut p).unwrap();
        close(&p, &[0.26894142, 0.73105858, 0.0], 1e-7);
        let mut lp = [0.0; 3];
        log_softmax_into(&[1000.0, 1001.0, -1000.0], 3, 1.0, &mut lp).unwrap();
        assert!(lp.iter().all(|v| v.is_finite()));
        assert!((lp[2] + 2001.3133).abs() < 1e-3, "{lp:?}");
    }

    #[test]
    fn temperature_must_be_positive() {
        for t in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            let r = CrossEntropyParams { temperature: t, ..CrossEntropyParams::plain() }.check();
            assert!(matches!(r, Err(ParamsError::Temperature { .. })), "{t}");
        }
        let r = softmax_into(&[0.0; 2], 2, 0.0, &mut [0.0; 2]);
        assert!(matches!(r, Err(Error::ObjectiveParams(ParamsError::Temperature { .. }))));
    }

    #[test]
    fn label_smoothing_must_be_in_0_1() {
        for a in [-0.1, 1.0, f32::NAN] {
            let r =
                CrossEntropyParams { label_smoothing: a, ..CrossEntropyParams::plain() }.check();
            assert!(matches!(r, Err(ParamsError::LabelSmoothing { .. })), "{a}");
        }
    }

    #[test]
    fn one_hot_smoothing_hand_values() {
        let mut t = [0.0; 6];
        one_hot_into(&[2, 0], 3, 0.3, &mut t).unwrap();
        close(&t, &[0.1, 0.1, 0.8, 0.8, 0.1, 0.1], 1e-7);
        assert!(matches!(
            one_hot_into(&[3], 3, 0.0, &mut [0.0; 3]),
            Err(Error::IndexOutOfRange { .. })
        ));
    }

    #[test]
    fn sharpen_hand_values() {
        let mut o = [0.0; 3];
        sharpen_into(&[0.2, 0.3, 0.5], 3, 0.5, &mut o).unwrap();
        close(&o, &[0.04 / 0.38, 0.09 / 0.38, 0.25 / 0.38], 1e-6);
        sharpen_into(&[0.0, 0.0, 0.0], 3, 0.5, &mut o).unwrap();
        close(&o, &[1.0 / 3.0; 3], 1e-7);
        let r = sharpen_into(&[0.5, -0.1, 0.6], 3, 0.5, &mut o);
        assert!(matches!(r, Err(Error::NonFinite { index: 1, .. })));
    }

    #[test]
    fn hard_ce_gradient_matches_finite_differences() {
        let (n, k) = (4, 5);
        let y = [0u32, 4, 2, 2];
        for (seed, scale, offset, t, a) in
            [(1, 3.0, 0.0, 1.0, 0.0), (2, 3.0, 0.0, 2.0, 0.1), (3, 3.0, 1e3, 0.5, 0.2)]
        {
            let ce = CrossEntropyParams { label_smoothing: a, temperature: t }.check().unwrap();
            let z = logits(seed, n, k, scale, offset);
            let mut g = vec![0.0; n * k];
            ce.hard(&z, &y, &mut g).unwrap();
            let mut scratch = vec![0.0; n * k];
            check_grad(|z| ce.hard(z, &y, &mut scratch).unwrap(), &z, &g, 1e-2);
        }
    }

    #[test]
    fn soft_ce_gradient_matches_finite_differences() {
        let (n, k) = (3, 4);
        let ce = CrossEntropyParams { label_smoothing: 0.0, temperature: 1.5 }.check().unwrap();
        let z = logits(7, n, k, 2.0, 0.0);
        let t = probs(8, n, k);
        let mut g = vec![0.0; n * k];
        ce.soft(&z, &t, k, &mut g).unwrap();
        let mut s = vec![0.0; n * k];
        check_grad(|z| ce.soft(z, &t, k, &mut s).unwrap(), &z, &g, 1e-2);
    }

    #[test]
    fn ce_is_finite_at_extreme_logits() {
        let ce = CrossEntropyParams::plain().check().unwrap();
        let z = logits(11, 6, 10, 1e3, 0.0);
        let mut g = vec![0.0; 60];
        let loss = ce.hard(&z, &[0, 1, 2, 3, 4, 5], &mut g).unwrap();
        assert!(loss.is_finite() && loss > 10.0 && g.iter().all(|v| v.is_finite()));
        // Piecewise linear far from ties: check with a larger step.
        let mut s = vec![0.0; 60];
        check_grad(|z| ce.hard(z, &[0, 1, 2, 3, 4, 5], &mut s).unwrap(), &z, &g, 0.5);
    }

    #[test]
    fn shape_label_and_nan_errors() {
        let ce = CrossEntropyParams::plain().check().unwrap();
        let mut g = [0.0; 4];
        assert!(matches!(
            ce.hard(&[0.0; 4], &[0, 1], &mut [0.0; 3]),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(ce.hard(&[0.0; 4], &[0, 2], &mut g), Err(Error::IndexOutOfRange { .. })));
        let r = ce.hard(&[0.0, f32::NAN, 0.0, 0.0], &[0, 1], &mut g);
        assert!(matches!(r, Err(Error::NonFinite { index: 1, .. })));
        assert!(matches!(
            softmax_into(&[0.0; 5], 2, 1.0, &mut [0.0; 5]),
            Err(Error::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn fitted_temperature_matches_hand_values_and_minimizes_the_nll() {
        // (2, 0) with 80% label 0: sigmoid(2 / T) = 0.8, T = 2 / ln 4 = 1.4427.
        let logits: Vec<f32> = [2.0, 0.0].repeat(10);
        let mut labels = [0u32; 10];
        labels[8..].fill(1);
        let t = fit_temperature(&logits, &labels, 2).unwrap();
        assert!((t - 2.0 / 4f32.ln()).abs() < 1e-4, "{t}");
        // Three classes, mixed rows: the NLL at T is below its value a little either side.
        let z = [3.0, 1.0, -1.0, 0.5, 2.5, 0.0, -1.0, 0.0, 4.0, 1.0, 1.2, 0.8];
        let y = [0, 1, 0, 2];
        let nll = |t: f32| -> f32 {
            let mut p = [0.0; 12];
            softmax_into(&z, 3, t, &mut p).unwrap();
            y.iter().enumerate().map(|(i, &c)| -p[3 * i + c as usize].ln()).sum::<f32>()
        };
        let t = fit_temperature(&z, &y, 3).unwrap();
        assert!(nll(t) < nll(t * 1.05) && nll(t) < nll(t / 1.05), "T {t}");
        assert!((nll(t) - nll(1.0)).abs() > 1e-3, "T = {t} differs from 1");
    }

    #[test]
    fn fitted_temperature_clamps_and_rejects_bad_input() {
        // Always right: as sharp as allowed. Always wrong: as flat as allowed.
        let z = [1.0, 0.0, 0.0, 1.0];
        assert_eq!(fit_temperature(&z, &[0, 1], 2).unwrap(), 1.0 / 20.0);
        assert_eq!(fit_temperature(&z, &[1, 0], 2).unwrap(), 20.0);
        assert!(fit_temperature(&[], &[], 2).is_err());
        assert!(fit_temperature(&z, &[0], 2).is_err(), "one label for two rows");
        assert!(fit_temperature(&z, &[0, 2], 2).is_err(), "label out of range");
        assert!(fit_temperature(&[f32::NAN, 0.0], &[0], 2).is_err());
    }
}
