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

    /// The engine could not load, type or optimize the model.
    #[error("model {origin}: rejected by {engine}: {message}")]
    ModelRejected {
        /// Where the model came from (a path, or `<bytes>`).
        origin: String,
        /// The engine that rejected it.
        engine: crate::backbone::Engine,
        /// The engine's error chain on one line.
        message: String,
        /// The engine's error.
        #[source]
        source: BoxError,
    },

    /// The spec asks for an engine this build does not contain.
    #[error("engine {engine} is not compiled in: rebuild edge-ssl with `--features {feature}`")]
    EngineNotBuilt {
        /// The engine asked for.
        engine: crate::backbone::Engine,
        /// The cargo feature that adds it.
        feature: &'static str,
    },

    /// The onnxruntime shared library was not found or could not be loaded.
    #[error(
        "onnxruntime library not loaded ({reason}); tried {tried:?}. Get it with \
         `scripts/fetch-onnxruntime.sh` (PyPI wheel, sha256 checked), then point to it with \
         ORT_DYLIB_PATH=.../libonnxruntime.so.<version>, `library = \"...\"` under [backbone], \
         --ort-library, or put it next to the executable"
    )]
    RuntimeLibraryMissing {
        /// The places tried, in order.
        tried: Vec<PathBuf>,
        /// Why each failed.
        reason: String,
    },

    /// The onnxruntime shared library is older than this build supports.
    #[error(
        "{path}: onnxruntime {found} is too old, edge-ssl needs {required} or newer; get a \
         newer one with `scripts/fetch-onnxruntime.sh`"
    )]
    RuntimeLibraryTooOld {
        /// The library file.
        path: PathBuf,
        /// Its version.
        found: String,
        /// The oldest version this build loads ([`crate::backbone::ORT_MIN_VERSION`]).
        required: &'static str,
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

    /// The engine failed while running an already-loaded model.
    #[error("backbone run failed: {message}")]
    Inference {
        /// The engine's error chain on one line.
        message: String,
        /// The engine's error.
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

    /// A state file is shorter than its header or a section says (a crash or copy cut it).
    #[error("{path}: truncated state file: needs {needed} bytes, has {got}")]
    StateTruncated {
        /// The file (`<bytes>` when parsed from memory).
        path: PathBuf,
        /// Bytes the header or a section needs.
        needed: u64,
        /// Bytes present.
        got: u64,
    },

    /// A state file does not start with the `edge-ssl` magic `EDGESSL\0`.
    #[error("{path}: not an edge-ssl state file (magic {found:02x?})")]
    StateBadMagic {
        /// The file.
        path: PathBuf,
        /// The first 8 bytes found.
        found: [u8; 8],
    },

    /// A state file was written in a format version this build cannot read.
    #[error("{path}: state format version {found}, this build reads version {supported}")]
    StateVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },

    /// A checksum does not match: the header or a section was corrupted (bit flip, torn write).
    #[error("{path}: checksum mismatch in {section}: stored {stored:08x}, computed {computed:08x}")]
    StateChecksum {
        /// The file.
        path: PathBuf,
        /// `header` or the section's name.
        section: String,
        /// The checksum stored in the file.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },

    /// A state file was written for other dimensions (embedding dim, classes, bank capacity...).
    #[error("{path}: state file has {field} = {found}, expected {expected}")]
    StateDims {
        /// The file.
        path: PathBuf,
        /// The dimension that differs.
        field: &'static str,
        /// The value the caller expects.
        expected: u64,
        /// The value in the file.
        found: u64,
    },

    /// A state file or section passed its checksums but its content is inconsistent (bad
    /// lengths, unknown tags, non-zero reserved bytes, impossible counts). Written by a buggy or
    /// foreign writer; never produced by [`crate::persist`] itself.
    #[error("{path}: malformed state file: {reason}")]
    StateMalformed {
        /// The file.
        path: PathBuf,
        /// What is inconsistent.
        reason: String,
    },

    /// A state file lacks a section the caller asked for.
    #[error("{path}: state file has no section {section}")]
    StateMissingSection {
        /// The file.
        path: PathBuf,
        /// The missing section's name.
        section: String,
    },

    /// A state file or state is larger than the format allows.
    #[error("{path}: state of {size} bytes exceeds the limit of {limit} bytes")]
    StateTooLarge {
        /// The file.
        path: PathBuf,
        /// The size found or requested.
        size: u64,
        /// The limit ([`crate::persist::MAX_FILE_BYTES`]).
        limit: u64,
    },

    /// A covariance matrix is not positive definite even after shrinkage (e.g. every sample
    /// identical, or all variance zero), so the Cholesky factorization failed.
    #[error("{op}: matrix not positive definite (pivot {pivot} at row {row})")]
    NotPositiveDefinite {
        /// The operation that factorized.
        op: &'static str,
        /// The row whose pivot failed.
        row: usize,
        /// The failing pivot value.
        pivot: f64,
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

    /// The plotting library failed to lay out or draw a report plot (see [`crate::report`]).
    #[error("{path}: cannot draw plot: {source}")]
    Plot {
        /// The plot file that was being written.
        path: PathBuf,
        /// The plotting library's error.
        #[source]
        source: BoxError,
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
