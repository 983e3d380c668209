//! Validation errors of head, optimizer and EMA parameters: one rule, one variant.

/// An invalid head, optimizer or EMA parameter. Each variant is one validation rule.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// `input_dim` must be at least 1.
    #[error("input_dim must be >= 1, got {value}")]
    InputDim {
        /// The rejected value.
        value: usize,
    },
    /// `n_classes` must be at least 2.
    #[error("n_classes must be >= 2, got {value}")]
    NumClasses {
        /// The rejected value.
        value: usize,
    },
    /// `hidden_dim` must be at least 1.
    #[error("hidden_dim must be >= 1, got {value}")]
    HiddenDim {
        /// The rejected value.
        value: usize,
    },
    /// `max_batch` must be at least 1.
    #[error("max_batch must be >= 1, got {value}")]
    MaxBatch {
        /// The rejected value.
        value: usize,
    },
    /// The learning rate must be finite and > 0.
    #[error("learning rate must be finite and > 0, got {value}")]
    LearningRate {
        /// The rejected value.
        value: f32,
    },
    /// Momentum must be in `[0, 1)`.
    #[error("momentum must be in [0, 1), got {value}")]
    Momentum {
        /// The rejected value.
        value: f32,
    },
    /// Nesterov momentum needs `momentum > 0`.
    #[error("nesterov needs momentum > 0")]
    NesterovWithoutMomentum,
    /// Weight decay must be finite and >= 0.
    #[error("weight decay must be finite and >= 0, got {value}")]
    WeightDecay {
        /// The rejected value.
        value: f32,
    },
    /// The schedule's total steps must be at least 1.
    #[error("total_steps must be >= 1, got {value}")]
    TotalSteps {
        /// The rejected value.
        value: u64,
    },
    /// Warm-up must be shorter than the whole schedule.
    #[error("warmup_steps {warmup} must be < total_steps {total}")]
    WarmupSteps {
        /// The rejected warm-up.
        warmup: u64,
        /// The total steps.
        total: u64,
    },
    /// An EMA decay must be in `[0, 1]`.
    #[error("EMA decay {name} must be in [0, 1], got {value}")]
    EmaDecay {
        /// Which decay (`rampup_decay` or `decay`).
        name: &'static str,
        /// The rejected value.
        value: f32,
    },
}
