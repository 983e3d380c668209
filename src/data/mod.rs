//! Readers for the standard dataset formats, and the in-memory sets they produce.
//!
//! | format | reader | produces |
//! |---|---|---|
//! | IDX (`*-idx3-ubyte`, plain or `.gz`) | [`idx::read_images`], [`idx::read_labels`] | [`ImageSet`] |
//! | PNG/JPEG, one sub-folder per class | [`folder::read_folder`] | [`ImageSet`] |
//! | NPY (`X` float32 `[n, T, C]`, `y` int `[n]`, optional groups `[n]`) | [`npy::read_windows`] | [`SensorSet`] |
//!
//! Every reader validates what it reads and returns [`crate::Error::BadData`] naming the file and
//! what is wrong (truncated, wrong magic, wrong dims, NaN), never panics.

pub mod folder;
pub mod idx;
pub mod image;
pub mod npy;

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// A set of `n` images of `height x width x channels` bytes (HWC, row-major), with optional labels.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Channels per pixel (1 = gray, 3 = RGB).
    pub channels: usize,
    /// `n * height * width * channels` bytes.
    pub pixels: Vec<u8>,
    /// One label per image, if known.
    pub labels: Option<Vec<u32>>,
    /// Class names, if the source names them (folder reader).
    pub class_names: Vec<String>,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.pixels.len() / self.sample_len().max(1)
    }

    /// True if the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes per image.
    pub fn sample_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// The bytes of image `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let l = self.sample_len();
        &self.pixels[i * l..(i + 1) * l]
    }
}

/// A set of `n` sensor windows of `steps x channels` f32 values (time-major), with optional labels
/// and group ids (e.g. the subject who wore the sensor, for honest splits).
#[derive(Debug, Clone, PartialEq)]
pub struct SensorSet {
    /// Time steps per window.
    pub steps: usize,
    /// Channels per time step.
    pub channels: usize,
    /// `n * steps * channels` values, all finite.
    pub values: Vec<f32>,
    /// One label per window, if known.
    pub labels: Option<Vec<u32>>,
    /// One group id per window, if known.
    pub groups: Option<Vec<i64>>,
}

impl SensorSet {
    /// Number of windows.
    pub fn len(&self) -> usize {
        self.values.len() / self.sample_len().max(1)
    }

    /// True if the set holds no window.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values per window.
    pub fn sample_len(&self) -> usize {
        self.steps * self.channels
    }

    /// The values of window `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn window(&self, i: usize) -> &[f32] {
        let l = self.sample_len();
        &self.values[i * l..(i + 1) * l]
    }
}

/// Reads a whole file, transparently gunzipping it when it starts with the gzip magic `1f 8b`.
pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::bad_data(path, format!("corrupt gzip stream: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}
