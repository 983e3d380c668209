//! Validation errors of objective parameters: one rule, one variant.

/// An invalid objective parameter. Each variant is one validation rule.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// A temperature must be finite and > 0.
    #[error("temperature must be finite and > 0, got {value}")]
    Temperature {
        /// The rejected value.
        value: f32,
    },
    /// Label smoothing must be in `[0, 1)`.
    #[error("label smoothing must be in [0, 1), got {value}")]
    LabelSmoothing {
        /// The rejected value.
        value: f32,
    },
    /// A confidence threshold (FixMatch tau, UDA beta) must be in `[0, 1]`.
    #[error("confidence threshold must be in [0, 1], got {value}")]
    Threshold {
        /// The rejected value.
        value: f32,
    },
    /// The unlabeled ratio `mu` must be at least 1.
    #[error("unlabeled ratio mu must be >= 1, got {value}")]
    UnlabeledRatio {
        /// The rejected value.
        value: usize,
    },
    /// A loss weight (`lambda_u`, ...) must be finite and >= 0.
    #[error("loss weight must be finite and >= 0, got {value}")]
    LossWeight {
        /// The rejected value.
        value: f32,
    },
    /// A Beta(a, a) concentration must be finite and > 0.
    #[error("Beta concentration alpha must be finite and > 0, got {value}")]
    BetaAlpha {
        /// The rejected value.
        value: f32,
    },
    /// A noise standard deviation must be finite and >= 0.
    #[error("noise std must be finite and >= 0, got {value}")]
    NoiseStd {
        /// The rejected value.
        value: f32,
    },
    /// A probability (of perturbing a sample) must be in `[0, 1]`.
    #[error("probability must be in [0, 1], got {value}")]
    Probability {
        /// The rejected value.
        value: f32,
    },
    /// An EMA momentum must be in `[0, 1)`.
    #[error("momentum {name} must be in [0, 1), got {value}")]
    Momentum {
        /// Which momentum.
        name: &'static str,
        /// The rejected value.
        value: f32,
    },
    /// A number of views / augmentations must be in `1..=MAX_VIEWS`.
    #[error("number of views must be in 1..={max}, got {value}")]
    Views {
        /// The rejected value.
        value: usize,
        /// The largest accepted.
        max: usize,
    },
    /// `n_classes` must be at least 2.
    #[error("n_classes must be >= 2, got {value}")]
    NumClasses {
        /// The rejected value.
        value: usize,
    },
    /// A sample capacity must be at least 1.
    #[error("capacity must be >= 1, got {value}")]
    Capacity {
        /// The rejected value.
        value: usize,
    },
    /// A schedule length must be at least 1 step.
    #[error("total_steps must be >= 1, got {value}")]
    TotalSteps {
        /// The rejected value.
        value: u64,
    },
}
