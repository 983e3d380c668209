//! Knowledge distillation from a teacher's soft targets (Hinton, Vinyals & Dean 2015,
//! "Distilling the Knowledge in a Neural Network").
//!
//! `L = T^2 KL(softmax(t / T) || softmax(s / T))`, mean over rows, for student logits `s` and
//! teacher logits `t`. The `T^2` keeps the gradient's scale independent of `T` (§2 of the
//! paper): `dL/ds = T (softmax(s / T) - softmax(t / T)) / n`. Add the hard-label loss
//! ([`super::softmax::CrossEntropy`]) separately with its own weight.
//!
//! # Examples
//! ```
//! use edge_ssl::objective::kd::KdParams;
//!
//! let kd = KdParams::default().check()?;
//! let mut g = [0.0; 3];
//! let same = kd.loss(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], 3, &mut g)?;
//! assert!(same.abs() < 1e-6);
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use super::softmax::softmax_row;
use super::{ParamsError, check_temperature, rows, same_len};
use crate::error::{Result, check_finite};

/// Parameters of [`Kd`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KdParams {
    /// Distillation temperature `T > 0`. Default 4: Hinton et al. 2015 (§3, MNIST) report
    /// that for small students temperatures of 2.5 to 4 worked best; 4 is also the common
    /// setting in later benchmarks (e.g. Tian et al. 2020, CRD).
    pub temperature: f32,
}

impl Default for KdParams {
    fn default() -> Self {
        KdParams { temperature: 4.0 }
    }
}

impl KdParams {
    /// Validates the parameters.
    ///
    /// # Errors
    /// [`ParamsError::Temperature`].
    pub fn check(self) -> Result<Kd, ParamsError> {
        check_temperature(self.temperature)?;
        Ok(Kd { t: self.temperature })
    }
}

/// The distillation loss (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kd {
    t: f32,
}

impl Kd {
    /// The temperature.
    pub fn temperature(&self) -> f32 {
        self.t
    }

    /// `T^2 KL(softmax(teacher / T) || softmax(student / T))`, mean over rows; gradient with
    /// respect to the student's logits into `dlogits`. The teacher gets no gradient.
    ///
    /// # Shapes
    /// `student: [n, k]`, `teacher: [n, k]` -> `dlogits: [n, k]`.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`], [`crate::Error::NonFinite`].
    pub fn loss(
        &self,
        student: &[f32],
        teacher: &[f32],
        k: usize,
        dlogits: &mut [f32],
    ) -> Result<f32> {
        const OP: &str = "Kd::loss";
        let n = rows(OP, "student", student.len(), k)?;
        same_len(OP, "teacher", student.len(), teacher.len())?;
        same_len(OP, "dlogits", student.len(), dlogits.len())?;
        check_finite(OP, student)?;
        check_finite(OP, teacher)?;
        if n == 0 {
            return Ok(0.0);
        }
        let inv_t = 1.0 / self.t;
        // KL gradient is (q - p) inv_t / n; times T^2 -> T (q - p) / n.
        let scale = self.t / n as f32;
        let mut loss = 0.0;
        for ((s, t), g) in
            student.chunks_exact(k).zip(teacher.chunks_exact(k)).zip(dlogits.chunks_exact_mut(k))
        {
            // The teacher's softened probabilities go in `g` first, then the gradient replaces
            // them element by element (kl_row reads p_c before writing g_c).
            softmax_row(t, inv_t, g);
            loss += kl_row_in_place(s, inv_t, g, scale);
        }
        Ok(self.t * self.t * loss / n as f32)
    }
}

/// `KL(p || softmax(z inv_t))` of one row with the target `p` stored in the gradient buffer;
/// writes `scale (q - p)` over it.
#[inline]
fn kl_row_in_place(z: &[f32], inv_t: f32, pg: &mut [f32], scale: f32) -> f32 {
    let (m, s) = super::softmax::shifted_lse(z, inv_t);
    let mut loss = 0.0;
    for (gc, &zc) in pg.iter_mut().zip(z) {
        let pc = *gc;
        let lq = (zc - m) * inv_t - s;
        if pc > 0.0 {
            loss += pc * (pc.ln() - lq);
        }
        *gc = scale * (lq.exp() - pc);
    }
    loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::divergence::kl_into;
    use crate::objective::softmax::softmax_into;
    use crate::objective::testutil::{check_grad, logits};

    #[test]
    fn temperature_must_be_positive() {
        let r = KdParams { temperature: 0.0 }.check();
        assert!(matches!(r, Err(ParamsError::Temperature { .. })));
    }

    #[test]
    fn kd_equals_t_squared_kl() {
        let (s, t) = (logits(1, 3, 4, 3.0, 0.0), logits(2, 3, 4, 3.0, 0.0));
        let kd = KdParams { temperature: 3.0 }.check().unwrap();
        let mut p = vec![0.0; 12];
        softmax_into(&t, 4, 3.0, &mut p).unwrap();
        let kl = kl_into(&p, &s, 4, 3.0, &mut [0.0; 12]).unwrap();
        let l = kd.loss(&s, &t, 4, &mut [0.0; 12]).unwrap();
        assert!((l - 9.0 * kl).abs() < 1e-5, "{l} vs {}", 9.0 * kl);
    }

    #[test]
    fn kd_gradient_matches_finite_differences() {
        for (seed, offset, temp) in [(3, 0.0, 4.0), (4, 1e3, 2.0), (5, 0.0, 1.0)] {
            let kd = KdParams { temperature: temp }.check().unwrap();
            let (s, t) = (logits(seed, 4, 5, 4.0, offset), logits(seed + 9, 4, 5, 4.0, offset));
            let mut g = vec![0.0; 20];
            kd.loss(&s, &t, 5, &mut g).unwrap();
            let mut scratch = vec![0.0; 20];
            check_grad(|s| kd.loss(s, &t, 5, &mut scratch).unwrap(), &s, &g, 1e-2);
        }
    }

    #[test]
    fn kd_is_finite_at_extreme_logits() {
        let kd = KdParams::default().check().unwrap();
        let (s, t) = (logits(6, 4, 10, 1e3, 0.0), logits(7, 4, 10, 1e3, 0.0));
        let mut g = vec![0.0; 40];
        let l = kd.loss(&s, &t, 10, &mut g).unwrap();
        assert!(l.is_finite() && g.iter().all(|v| v.is_finite()));
    }
}
