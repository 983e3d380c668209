//! Validation errors of augmentation parameters: one rule, one variant.

/// An invalid augmentation parameter. Each variant is one validation rule.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// [`super::image::ImageAugParams::flip_prob`] must be in `[0, 1]`.
    #[error("image flip_prob must be in [0, 1], got {value}")]
    FlipProb {
        /// The rejected value.
        value: f32,
    },
    /// [`super::image::ImageAugParams::translate`] must be in `[0, 0.5]`.
    #[error("image translate must be in [0, 0.5] (fraction of the side), got {value}")]
    Translate {
        /// The rejected value.
        value: f32,
    },
    /// [`super::image::ImageAugParams::n_ops`] must be at most [`super::image::RandOp::ALL`]`.len()`.
    #[error("image n_ops must be <= {max}, got {value}")]
    NOps {
        /// The rejected value.
        value: usize,
        /// The number of RandAugment ops.
        max: usize,
    },
    /// [`super::image::ImageAugParams::cutout`] must be in `[0, 1]`.
    #[error("image cutout must be in [0, 1] (fraction of the shorter side), got {value}")]
    Cutout {
        /// The rejected value.
        value: f32,
    },
    /// [`super::image::ImageAugParams::cutmix_alpha`] must be finite and > 0.
    #[error("image cutmix_alpha must be finite and > 0, got {value}")]
    CutmixAlpha {
        /// The rejected value.
        value: f32,
    },
    /// [`super::sensor::SensorAugParams::jitter_sigma`] must be finite and >= 0.
    #[error("sensor jitter_sigma must be finite and >= 0, got {value}")]
    JitterSigma {
        /// The rejected value.
        value: f32,
    },
    /// [`super::sensor::SensorAugParams::scale_sigma`] must be finite and >= 0.
    #[error("sensor scale_sigma must be finite and >= 0, got {value}")]
    ScaleSigma {
        /// The rejected value.
        value: f32,
    },
    /// [`super::sensor::SensorAugParams::magnitude_warp_sigma`] must be finite and >= 0.
    #[error("sensor magnitude_warp_sigma must be finite and >= 0, got {value}")]
    MagnitudeWarpSigma {
        /// The rejected value.
        value: f32,
    },
    /// [`super::sensor::SensorAugParams::time_warp_sigma`] must be finite and >= 0.
    #[error("sensor time_warp_sigma must be finite and >= 0, got {value}")]
    TimeWarpSigma {
        /// The rejected value.
        value: f32,
    },
    /// [`super::sensor::SensorAugParams::knots`] must be >= 1.
    #[error("sensor knots must be >= 1, got {value}")]
    Knots {
        /// The rejected value.
        value: usize,
    },
    /// [`super::sensor::SensorAugParams::max_segments`] must be >= 1.
    #[error("sensor max_segments must be >= 1, got {value}")]
    MaxSegments {
        /// The rejected value.
        value: usize,
    },
    /// [`super::sensor::SensorAugParams::channel_dropout`] must be in `[0, 1)`.
    #[error("sensor channel_dropout must be in [0, 1), got {value}")]
    ChannelDropout {
        /// The rejected value.
        value: f32,
    },
    /// [`super::sensor::SensorAugParams::n_ops`] must be at most [`super::sensor::SensorOp::ALL`]`.len()`.
    #[error("sensor n_ops must be <= {max}, got {value}")]
    SensorNOps {
        /// The rejected value.
        value: usize,
        /// The number of strong sensor ops.
        max: usize,
    },
    /// A rotation triplet of [`super::sensor::Rotation::Triplets`] names the same channel twice.
    #[error("rotation triplet {triplet:?} names a channel twice")]
    TripletRepeatsChannel {
        /// The rejected triplet.
        triplet: [usize; 3],
    },
    /// Two rotation triplets of [`super::sensor::Rotation::Triplets`] share a channel.
    #[error("rotation triplets share channel {channel}")]
    TripletsOverlap {
        /// The shared channel.
        channel: usize,
    },
    /// A rotation triplet names a channel the window does not have (checked at construction).
    #[error("rotation triplet {triplet:?} is out of range for {channels} channels")]
    TripletOutOfRange {
        /// The rejected triplet.
        triplet: [usize; 3],
        /// The window's channel count.
        channels: usize,
    },
    /// [`super::embedding::EmbeddingAugParams::noise`] must be finite and >= 0.
    #[error("embedding noise must be finite and >= 0, got {value}")]
    EmbeddingNoise {
        /// The rejected value.
        value: f32,
    },
    /// [`super::embedding::EmbeddingAugParams::dropout`] must be in `[0, 1)`.
    #[error("embedding dropout must be in [0, 1), got {value}")]
    EmbeddingDropout {
        /// The rejected value.
        value: f32,
    },
}
