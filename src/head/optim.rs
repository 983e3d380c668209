//! SGD with (Nesterov) momentum, decoupled-from-nothing L2 weight decay (PyTorch `SGD`
//! semantics) and a learning-rate schedule with linear warm-up.
//!
//! One step, for gradient `g` and parameters `p` (PyTorch `torch.optim.SGD`):
//! ```text
//! g   <- g + weight_decay * p
//! buf <- momentum * buf + g
//! g   <- g + momentum * buf     (nesterov)   |   g <- buf   (classic)
//! p   <- p - lr(step) * g
//! ```
//! Weight decay applies to every parameter, biases included.
//!
//! # Examples
//! ```
//! use edge_ssl::head::optim::{Decay, Schedule, SgdParams};
//!
//! let params = SgdParams { schedule: Schedule { warmup_steps: 0, total_steps: 100, decay: Decay::FixMatchCosine }, ..SgdParams::default() };
//! let mut sgd = params.check()?.build(2);
//! let mut p = [1.0, -1.0];
//! sgd.step(&mut p, &[0.5, 0.5])?;
//! assert!(p[0] < 1.0 && p[1] < -1.0);
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use super::{Checked, ParamsError, check_len};
use crate::error::{Result, check_finite};
use std::f64::consts::PI;

/// How the learning rate decays after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Decay {
    /// Constant `lr`.
    Constant,
    /// Half-cosine from `lr` to 0 over the steps after warm-up:
    /// `lr * 0.5 * (1 + cos(pi * s / S))`, `s` steps since warm-up, `S = total - warmup`
    /// (Loshchilov & Hutter 2017, SGDR, without restarts).
    #[default]
    Cosine,
    /// FixMatch's schedule `lr * cos(7 pi s / (16 S))`: ends at `lr * cos(7 pi / 16) ~ 0.2 lr`
    /// (Sohn et al. 2020, FixMatch, §4 / Appendix B.1).
    FixMatchCosine,
}

/// Learning-rate schedule: linear warm-up from `lr / warmup_steps` to `lr`, then [`Decay`]
/// until `total_steps`; after `total_steps` the rate stays at its final value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Steps of linear warm-up (`< total_steps`; 0 for none).
    pub warmup_steps: u64,
    /// Length of the schedule (>= 1).
    pub total_steps: u64,
    /// Decay after warm-up.
    pub decay: Decay,
}

impl Default for Schedule {
    /// FixMatch's `2^20` total steps, no warm-up, [`Decay::Cosine`].
    fn default() -> Self {
        Schedule { warmup_steps: 0, total_steps: 1 << 20, decay: Decay::Cosine }
    }
}

impl Schedule {
    /// Learning-rate multiplier in `[0, 1]` at `step` (0-based).
    pub fn factor(&self, step: u64) -> f32 {
        if step < self.warmup_steps {
            return (step + 1) as f32 / self.warmup_steps as f32;
        }
        let span = (self.total_steps - self.warmup_steps).max(1) as f64;
        let s = (step - self.warmup_steps).min(self.total_steps - self.warmup_steps) as f64;
        let f = match self.decay {
            Decay::Constant => 1.0,
            Decay::Cosine => 0.5 * (1.0 + (PI * s / span).cos()),
            Decay::FixMatchCosine => (7.0 * PI * s / (16.0 * span)).cos(),
        };
        f as f32
    }
}

/// Parameters of [`Sgd`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdParams {
    /// Base learning rate (> 0). Default 0.03 (FixMatch, Sohn et al. 2020, §4).
    pub lr: f32,
    /// Momentum in `[0, 1)`. Default 0.9 (FixMatch §4).
    pub momentum: f32,
    /// Nesterov momentum. Default true (FixMatch §4).
    pub nesterov: bool,
    /// L2 weight decay (>= 0). Default 5e-4 (FixMatch §4, CIFAR-10). On frozen embeddings the
    /// reference run (DESIGN.md) found 5e-2 better calibrated: pseudo-label precision rose from
    /// ~0.83 to 0.92; use [`SgdParams::frozen_features`] for that.
    pub weight_decay: f32,
    /// Learning-rate schedule. Default: no warm-up, [`Decay::Cosine`] over `2^20` steps.
    pub schedule: Schedule,
}

impl Default for SgdParams {
    fn default() -> Self {
        SgdParams {
            lr: 0.03,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            schedule: Schedule::default(),
        }
    }
}

impl SgdParams {
    /// FixMatch's optimizer exactly: lr 0.03, Nesterov momentum 0.9, weight decay 5e-4,
    /// `lr cos(7 pi k / 16 K)` over `total_steps` (Sohn et al. 2020, §4 and Appendix B.1).
    pub fn fixmatch(total_steps: u64) -> Self {
        SgdParams {
            schedule: Schedule { warmup_steps: 0, total_steps, decay: Decay::FixMatchCosine },
            ..SgdParams::default()
        }
    }

    /// FixMatch's optimizer with weight decay 5e-2, which the frozen-feature reference run
    /// found better calibrated (DESIGN.md, "What a reference run ... showed").
    pub fn frozen_features(total_steps: u64) -> Self {
        SgdParams { weight_decay: 5e-2, ..SgdParams::fixmatch(total_steps) }
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`ParamsError::LearningRate`], [`ParamsError::Momentum`],
    /// [`ParamsError::NesterovWithoutMomentum`], [`ParamsError::WeightDecay`],
    /// [`ParamsError::TotalSteps`], [`ParamsError::WarmupSteps`]: one per rule.
    pub fn check(self) -> Result<Checked<Self>, ParamsError> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(ParamsError::LearningRate { value: self.lr });
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(ParamsError::Momentum { value: self.momentum });
        }
        if self.nesterov && self.momentum == 0.0 {
            return Err(ParamsError::NesterovWithoutMomentum);
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(ParamsError::WeightDecay { value: self.weight_decay });
        }
        let s = self.schedule;
        if s.total_steps == 0 {
            return Err(ParamsError::TotalSteps { value: s.total_steps });
        }
        if s.warmup_steps >= s.total_steps {
            return Err(ParamsError::WarmupSteps { warmup: s.warmup_steps, total: s.total_steps });
        }
        Ok(Checked(self))
    }
}

impl Checked<SgdParams> {
    /// An optimizer for `n_params` parameters; allocates its momentum buffer once.
    pub fn build(&self, n_params: usize) -> Sgd {
        Sgd { p: self.0, step: 0, buf: vec![0.0; n_params] }
    }
}

/// SGD with momentum; holds its momentum buffer and step counter.
#[derive(Debug, Clone, PartialEq)]
pub struct Sgd {
    p: SgdParams,
    step: u64,
    buf: Vec<f32>,
}

impl Sgd {
    /// The learning rate the next [`Sgd::step`] will use.
    pub fn lr(&self) -> f32 {
        self.p.lr * self.p.schedule.factor(self.step)
    }

    /// Number of steps taken so far.
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    /// The momentum buffer (for persistence, with [`Sgd::steps_done`]).
    pub fn momentum_buffer(&self) -> &[f32] {
        &self.buf
    }

    /// Restores a persisted state: the step counter and momentum buffer.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] if `buf` has the wrong length; [`crate::Error::NonFinite`].
    pub fn restore(&mut self, steps_done: u64, buf: &[f32]) -> Result<()> {
        check_len("Sgd::restore", "momentum buffer", self.buf.len(), buf.len())?;
        check_finite("Sgd::restore", buf)?;
        self.buf.copy_from_slice(buf);
        self.step = steps_done;
        Ok(())
    }

    /// One update of `params` with `grads`, then advances the schedule. Returns the learning
    /// rate used.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] if a slice does not have `n_params` values;
    /// [`crate::Error::NonFinite`] for a NaN/inf gradient (the parameters are left untouched).
    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) -> Result<f32> {
        check_len("Sgd::step", "params", self.buf.len(), params.len())?;
        check_len("Sgd::step", "grads", self.buf.len(), grads.len())?;
        check_finite("Sgd::step", grads)?;
        let lr = self.lr();
        let (m, wd) = (self.p.momentum, self.p.weight_decay);
        for ((p, g), b) in params.iter_mut().zip(grads).zip(self.buf.iter_mut()) {
            let g = g + wd * *p;
            *b = m * *b + g;
            let u = if self.p.nesterov { g + m * *b } else { *b };
            *p -= lr * u;
        }
        self.step += 1;
        Ok(lr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rate_must_be_positive() {
        for lr in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            let r = SgdParams { lr, ..SgdParams::default() }.check();
            assert!(matches!(r, Err(ParamsError::LearningRate { .. })), "{lr}");
        }
    }

    #[test]
    fn momentum_must_be_in_0_1() {
        for momentum in [-0.1, 1.0, f32::NAN] {
            let r = SgdParams { momentum, ..SgdParams::default() }.check();
            assert!(matches!(r, Err(ParamsError::Momentum { .. })), "{momentum}");
        }
    }

    #[test]
    fn nesterov_needs_momentum() {
        let r = SgdParams { momentum: 0.0, nesterov: true, ..SgdParams::default() }.check();
        assert!(matches!(r, Err(ParamsError::NesterovWithoutMomentum)));
    }

    #[test]
    fn weight_decay_must_be_non_negative() {
        let r = SgdParams { weight_decay: -1e-4, ..SgdParams::default() }.check();
        assert!(matches!(r, Err(ParamsError::WeightDecay { .. })));
    }

    #[test]
    fn total_steps_must_be_positive() {
        let schedule = Schedule { total_steps: 0, warmup_steps: 0, decay: Decay::Cosine };
        let r = SgdParams { schedule, ..SgdParams::default() }.check();
        assert!(matches!(r, Err(ParamsError::TotalSteps { .. })));
    }

    #[test]
    fn warmup_must_be_shorter_than_schedule() {
        let schedule = Schedule { total_steps: 10, warmup_steps: 10, decay: Decay::Cosine };
        let r = SgdParams { schedule, ..SgdParams::default() }.check();
        assert!(matches!(r, Err(ParamsError::WarmupSteps { warmup: 10, total: 10 })));
    }

    #[test]
    fn schedule_hand_values() {
        let s = Schedule { warmup_steps: 4, total_steps: 14, decay: Decay::Cosine };
        assert_eq!(s.factor(0), 0.25);
        assert_eq!(s.factor(3), 1.0);
        assert!((s.factor(4) - 1.0).abs() < 1e-7);
        assert!((s.factor(9) - 0.5).abs() < 1e-6); // half-way: cos(pi/2) = 0
        assert!(s.factor(14).abs() < 1e-7);
        assert!(s.factor(100).abs() < 1e-7);
        let f = Schedule { warmup_steps: 0, total_steps: 16, decay: Decay::FixMatchCosine };
        assert!((f.factor(16) - (7.0 * std::f32::consts::PI / 16.0).cos()).abs() < 1e-6);
        assert!((f.factor(8) - (7.0 * std::f32::consts::PI / 32.0).cos()).abs() < 1e-6);
    }

    #[test]
    fn nesterov_step_is_hand_computed() {
        let s = Schedule { warmup_steps: 0, total_steps: 10, decay: Decay::Constant };
        let p =
            SgdParams { lr: 0.1, momentum: 0.5, nesterov: true, weight_decay: 0.1, schedule: s };
        let mut sgd = p.check().unwrap().build(1);
        let mut w = [2.0f32];
        // step 1: g = 1 + 0.2 = 1.2, buf = 1.2, u = 1.2 + 0.6 = 1.8, w = 2 - 0.18 = 1.82
        sgd.step(&mut w, &[1.0]).unwrap();
        assert!((w[0] - 1.82).abs() < 1e-6);
        // step 2: g = 1 + 0.182 = 1.182, buf = 0.6 + 1.182 = 1.782, u = 1.182 + 0.891 = 2.073
        sgd.step(&mut w, &[1.0]).unwrap();
        assert!((w[0] - (1.82 - 0.2073)).abs() < 1e-6, "{}", w[0]);
        let mut classic = SgdParams { nesterov: false, ..p }.check().unwrap().build(1);
        let mut v = [2.0f32];
        classic.step(&mut v, &[1.0]).unwrap();
        assert!((v[0] - 1.88).abs() < 1e-6);
    }

    #[test]
    fn nan_gradient_is_rejected_and_leaves_params() {
        let mut sgd = SgdParams::default().check().unwrap().build(2);
        let mut p = [1.0, 2.0];
        let r = sgd.step(&mut p, &[0.0, f32::NAN]);
        assert!(matches!(r, Err(crate::Error::NonFinite { index: 1, .. })));
        assert_eq!(p, [1.0, 2.0]);
        assert_eq!(sgd.steps_done(), 0);
    }

    #[test]
    fn sgd_minimises_a_quadratic() {
        let p = SgdParams { lr: 0.1, weight_decay: 0.0, ..SgdParams::default() };
        let mut sgd = p.check().unwrap().build(2);
        let mut w = [3.0f32, -2.0];
        for _ in 0..200 {
            let g = [w[0] - 1.0, 2.0 * (w[1] + 1.0)];
            sgd.step(&mut w, &g).unwrap();
        }
        assert!((w[0] - 1.0).abs() < 1e-3 && (w[1] + 1.0).abs() < 1e-3, "{w:?}");
    }
}
