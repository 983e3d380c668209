//! Typed errors for the whole crate.
//!
//! Library code never panics on data and never prints: every failure a caller can cause (a bad
//! file, a wrong shape, a NaN) is one variant here, with the fields needed to act on it.

use std::path::PathBuf;

/// A boxed error from a dependency (tract's `anyhow` error, `image`'s decoder error, ...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in `edge-ssl`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error while reading or writing `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// tract could not load, type or optimize the model.
    #[error("model {origin}: rejected by tract: {message}")]
    ModelRejected {
        /// Where the model came from (a path, or `<bytes>`).
        origin: String,
        /// tract's error chain on one line.
        message: String,
        /// tract's error.
        #[source]
        source: BoxError,
    },

    /// The model has no output with the requested name.
    #[error("model {origin}: no output named {name:?} (outputs: {available:?})")]
    MissingOutput {
        /// Where the model came from.
        origin: String,
        /// The requested output name.
        name: String,
        /// The names the model does have.
        available: Vec<String>,
    },

    /// The model's input or output does not match what the [`crate::backbone::BackboneSpec`] says.
    #[error("model {origin}: {what}")]
    ModelContract {
        /// Where the model came from.
        origin: String,
        /// What does not match.
        what: String,
    },

    /// tract failed while running an already-loaded model.
    #[error("backbone run failed: {message}")]
    Inference {
        /// tract's error chain on one line.
        message: String,
        /// tract's error.
        #[source]
        source: BoxError,
    },

    /// A buffer or tensor has the wrong shape or length.
    #[error("{op}: shape mismatch: expected {expected}, got {got}")]
    ShapeMismatch {
        /// The operation that checked the shape.
        op: &'static str,
        /// What it expected, e.g. `[8, 112, 112, 3] = 301056 values`.
        expected: String,
        /// What it got.
        got: String,
    },

    /// An input holds NaN or infinity.
    #[error("{op}: non-finite value {value} at index {index}")]
    NonFinite {
        /// The operation that checked its input.
        op: &'static str,
        /// Flat index of the first bad value.
        index: usize,
        /// The bad value.
        value: f32,
    },

    /// A data file is malformed: truncated, wrong magic, unsupported type, inconsistent dims.
    #[error("{path}: {reason}")]
    BadData {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An image file could not be decoded.
    #[error("{path}: cannot decode image: {source}")]
    BadImage {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: BoxError,
    },

    /// A parameter is out of its valid range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParam {
        /// The parameter.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },

    /// A head, optimizer or EMA parameter failed validation (see [`crate::head::ParamsError`]).
    #[error(transparent)]
    HeadParams(#[from] crate::head::ParamsError),

    /// Augmentation parameters broke one rule of their `check()` (see
    /// [`crate::augment::ParamsError`] for the rules, one variant each).
    #[error(transparent)]
    AugmentParams(#[from] crate::augment::ParamsError),

    /// An objective parameter failed validation (see [`crate::objective::ParamsError`]).
    #[error(transparent)]
    ObjectiveParams(#[from] crate::objective::ParamsError),

    /// A batch is larger than the capacity fixed at construction.
    #[error("{op}: {got} exceeds the capacity {capacity} fixed at construction")]
    CapacityExceeded {
        /// The operation that checked the capacity.
        op: &'static str,
        /// The capacity.
        capacity: usize,
        /// What was asked for.
        got: usize,
    },

    /// An index (a sample slot, a label) is out of range.
    #[error("{op}: index {index} out of range (len {len})")]
    IndexOutOfRange {
        /// The operation that checked the index.
        op: &'static str,
        /// The bad index.
        index: usize,
        /// The number of valid indices.
        len: usize,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds [`Error::BadData`].
    pub(crate) fn bad_data(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::BadData { path: path.into(), reason: reason.into() }
    }

    /// Builds [`Error::Io`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

/// Returns [`Error::NonFinite`] for the first NaN or infinity in `values`.
pub(crate) fn check_finite(op: &'static str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NonFinite { op, index, value: values[index] }),
        None => Ok(()),
    }
}
