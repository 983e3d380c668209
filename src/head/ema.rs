//! Mean Teacher: the teacher's weights are an exponential moving average of the student's
//! (Tarvainen & Valpola 2017, "Mean teachers are better role models").
//!
//! At step `s` (the number of optimizer steps done), with `a = decay_at(s)`:
//! `teacher <- a * teacher + (1 - a) * student`, where
//! ```text
//! base(s)    = rampup_decay  (0.99)   if s < rampup_steps
//!            = decay         (0.999)  otherwise              (paper, Appendix B.1)
//! decay_at(s) = min(1 - 1/(s + 1), base(s))   if warm_start   (the authors' code,
//!                                                             `update_ema_variables`)
//!             = base(s)                       otherwise
//! ```
//! The warm start makes the first teacher a plain average of the first students instead of
//! being stuck near its random initialisation. The sigmoid ramp `exp(-5 (1 - t)^2)` with
//! `t = s / rampup_steps` ([`sigmoid_rampup`]) is what the paper ramps the *consistency weight*
//! (and the learning rate) with over the same `rampup_steps`; it is offered here to weight the
//! consistency objective, and is not applied to the decay itself.
//!
//! # Examples
//! ```
//! use edge_ssl::head::ema::EmaParams;
//!
//! let ema = EmaParams { warm_start: false, ..EmaParams::default() }.check()?;
//! let mut teacher = [0.0f32];
//! ema.update(&mut teacher, &[1.0], 0)?;
//! assert!((teacher[0] - 0.01).abs() < 1e-6); // 0.99 during ramp-up
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use super::{Checked, ParamsError, check_len};
use crate::error::Result;

/// Parameters of the EMA teacher (defaults from Mean Teacher, see each field).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmaParams {
    /// Decay during ramp-up. Default 0.99 (Tarvainen & Valpola 2017, Appendix B.1).
    pub rampup_decay: f32,
    /// Decay after ramp-up. Default 0.999 (same source).
    pub decay: f32,
    /// Length of the ramp-up in optimizer steps. Default 40 000, the ramp-up of the paper's
    /// SVHN / CIFAR-10 ConvNet runs (Appendix B.1). Scale it to the run: the same length drives
    /// [`sigmoid_rampup`] for the consistency weight.
    pub rampup_steps: u64,
    /// Apply `min(1 - 1/(step + 1), decay)` as the authors' code does. Default true.
    pub warm_start: bool,
}

impl Default for EmaParams {
    fn default() -> Self {
        EmaParams { rampup_decay: 0.99, decay: 0.999, rampup_steps: 40_000, warm_start: true }
    }
}

impl EmaParams {
    /// Validates the parameters; the result is the ready-to-use [`Ema`].
    ///
    /// # Errors
    /// [`ParamsError::EmaDecay`] if a decay is outside `[0, 1]` (or NaN).
    pub fn check(self) -> Result<Ema, ParamsError> {
        for (name, value) in [("rampup_decay", self.rampup_decay), ("decay", self.decay)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(ParamsError::EmaDecay { name, value });
            }
        }
        Ok(Ema { p: Checked(self) })
    }
}

/// The EMA update rule (stateless: the step comes from the optimizer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ema {
    p: Checked<EmaParams>,
}

impl Ema {
    /// The decay used at `step` (see the module docs for the formula).
    pub fn decay_at(&self, step: u64) -> f32 {
        let base = if step < self.p.rampup_steps { self.p.rampup_decay } else { self.p.decay };
        if self.p.warm_start { base.min(1.0 - 1.0 / (step as f32 + 1.0)) } else { base }
    }

    /// The consistency-weight ramp at `step` over this EMA's `rampup_steps`.
    pub fn rampup(&self, step: u64) -> f32 {
        sigmoid_rampup(step, self.p.rampup_steps)
    }

    /// `teacher <- a teacher + (1 - a) student` with `a = decay_at(step)`; returns `a`.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] if the slices differ in length.
    pub fn update(&self, teacher: &mut [f32], student: &[f32], step: u64) -> Result<f32> {
        check_len("Ema::update", "teacher params", student.len(), teacher.len())?;
        let a = self.decay_at(step);
        let b = 1.0 - a;
        for (t, s) in teacher.iter_mut().zip(student) {
            *t = a * *t + b * s;
        }
        Ok(a)
    }
}

/// Mean Teacher's sigmoid ramp-up `exp(-5 (1 - t)^2)`, `t = min(step / rampup_steps, 1)`
/// (Laine & Aila 2017, §3.1; Tarvainen & Valpola 2017, Appendix B.1). 1 when `rampup_steps`
/// is 0.
pub fn sigmoid_rampup(step: u64, rampup_steps: u64) -> f32 {
    if rampup_steps == 0 {
        return 1.0;
    }
    let t = (step as f64 / rampup_steps as f64).min(1.0);
    (-5.0 * (1.0 - t) * (1.0 - t)).exp() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_must_be_in_0_1() {
        for (rampup_decay, decay) in [(1.5, 0.999), (0.99, -0.1), (f32::NAN, 0.9)] {
            let r = EmaParams { rampup_decay, decay, ..EmaParams::default() }.check();
            assert!(matches!(r, Err(ParamsError::EmaDecay { .. })));
        }
    }

    #[test]
    fn decay_follows_the_mean_teacher_ramp() {
        let ema = EmaParams { rampup_steps: 10, ..EmaParams::default() }.check().unwrap();
        assert_eq!(ema.decay_at(0), 0.0); // warm start: teacher = student
        assert_eq!(ema.decay_at(1), 0.5);
        assert_eq!(ema.decay_at(9), 0.9);
        assert_eq!(ema.decay_at(10), 1.0 - 1.0 / 11.0);
        assert_eq!(ema.decay_at(5_000), 0.999);
        let cold = EmaParams { warm_start: false, rampup_steps: 10, ..EmaParams::default() };
        let cold = cold.check().unwrap();
        assert_eq!(cold.decay_at(9), 0.99);
        assert_eq!(cold.decay_at(10), 0.999);
    }

    #[test]
    fn sigmoid_rampup_hand_values() {
        assert!((sigmoid_rampup(0, 100) - (-5.0f32).exp()).abs() < 1e-9);
        assert!((sigmoid_rampup(50, 100) - (-1.25f32).exp()).abs() < 1e-7);
        assert_eq!(sigmoid_rampup(100, 100), 1.0);
        assert_eq!(sigmoid_rampup(1000, 100), 1.0);
        assert_eq!(sigmoid_rampup(3, 0), 1.0);
    }

    #[test]
    fn update_moves_teacher_towards_student() {
        let ema = EmaParams { warm_start: false, ..EmaParams::default() }.check().unwrap();
        let mut t = [1.0, 0.0];
        let a = ema.update(&mut t, &[0.0, 1.0], 50_000).unwrap();
        assert_eq!(a, 0.999);
        assert!((t[0] - 0.999).abs() < 1e-7 && (t[1] - 0.001).abs() < 1e-7);
        assert!(matches!(ema.update(&mut t, &[0.0], 0), Err(crate::Error::ShapeMismatch { .. })));
    }
}
