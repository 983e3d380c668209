//! Embedding whole datasets with a [`Backbone`], batch by batch, into one caller buffer.
//!
//! Images are resized (bilinear) and converted to RGB to the backbone's input size on the fly;
//! sensor windows must already have the backbone's `steps x channels`.
//!
//! The backbone is frozen, so an embedding never changes: [`EmbeddingCache`] stores the
//! embeddings of a whole dataset as `.npy` under a folder, keyed by the model's fingerprint, the
//! input spec and the data's fingerprint, and experiments and tests reuse them.

use std::path::{Path, PathBuf};

use crate::backbone::{Backbone, DEFAULT_EMBEDDING_OUTPUT, Engine, Input, InputKind, fnv1a64};
use crate::data::image::{Geometry, resize_into};
use crate::data::npy;
use crate::data::{ImageSet, SensorSet};
use crate::error::{Error, Result};

fn check_out(op: &'static str, n: usize, d: usize, out: &[f32]) -> Result<()> {
    if out.len() == n * d {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            op,
            expected: format!("[{n}, {d}] = {} values", n * d),
            got: format!("{} values", out.len()),
        })
    }
}

/// Embeds images `indices` of `set` into `out` (`indices.len() x D`), calling `progress` with
/// the number of images done after each batch.
///
/// # Errors
/// [`Error::ShapeMismatch`] if the backbone does not take images, `out` has the wrong length or
/// an index is out of range; otherwise as [`Backbone::embed`].
pub fn embed_images(
    backbone: &mut Backbone,
    set: &ImageSet,
    indices: &[usize],
    out: &mut [f32],
    mut progress: impl FnMut(usize),
) -> Result<()> {
    let InputKind::Image { height, width } = backbone.spec().input else {
        return Err(Error::ShapeMismatch {
            op: "embed_images",
            expected: "an image backbone".into(),
            got: format!("{:?}", backbone.spec().input),
        });
    };
    let d = backbone.embedding_dim();
    check_out("embed_images(out)", indices.len(), d, out)?;
    if let Some(&bad) = indices.iter().find(|&&i| i >= set.len()) {
        return Err(Error::ShapeMismatch {
            op: "embed_images(indices)",
            expected: format!("indices < {}", set.len()),
            got: format!("index {bad}"),
        });
    }
    let src_g = Geometry { height: set.height, width: set.width, channels: set.channels };
    let dst_g = Geometry { height, width, channels: 3 };
    let mut buf = vec![0u8; backbone.batch() * dst_g.len()];
    let mut done = 0;
    for chunk in indices.chunks(backbone.batch()) {
        for (k, &i) in chunk.iter().enumerate() {
            resize_into(
                set.image(i),
                src_g,
                &mut buf[k * dst_g.len()..(k + 1) * dst_g.len()],
                dst_g,
            )?;
        }
        let n = chunk.len();
        backbone.embed(Input::U8(&buf[..n * dst_g.len()]), &mut out[done * d..(done + n) * d])?;
        done += n;
        progress(done);
    }
    Ok(())
}

/// Embeds windows `indices` of `set` into `out` (`indices.len() x D`), calling `progress` with
/// the number of windows done after each batch.
///
/// # Errors
/// [`Error::ShapeMismatch`] if the backbone does not take windows of `set`'s shape, `out` has the
/// wrong length or an index is out of range; otherwise as [`Backbone::embed`].
pub fn embed_windows(
    backbone: &mut Backbone,
    set: &SensorSet,
    indices: &[usize],
    out: &mut [f32],
    mut progress: impl FnMut(usize),
) -> Result<()> {
    let want = InputKind::Sensor { steps: set.steps, channels: set.channels };
    if backbone.spec().input != want {
        return Err(Error::ShapeMismatch {
            op: "embed_windows",
            expected: format!("{:?}", backbone.spec().input),
            got: format!("{want:?}"),
        });
    }
    let d = backbone.embedding_dim();
    check_out("embed_windows(out)", indices.len(), d, out)?;
    if let Some(&bad) = indices.iter().find(|&&i| i >= set.len()) {
        return Err(Error::ShapeMismatch {
            op: "embed_windows(indices)",
            expected: format!("indices < {}", set.len()),
            got: format!("index {bad}"),
        });
    }
    let sl = set.sample_len();
    let mut buf = vec![0f32; backbone.batch() * sl];
    let mut done = 0;
    for chunk in indices.chunks(backbone.batch()) {
        for (k, &i) in chunk.iter().enumerate() {
            buf[k * sl..(k + 1) * sl].copy_from_slice(set.window(i));
        }
        let n = chunk.len();
        backbone.embed(Input::F32(&buf[..n * sl]), &mut out[done * d..(done + n) * d])?;
        done += n;
        progress(done);
    }
    Ok(())
}

/// A folder of cached dataset embeddings (`<dir>/<key>.npy`, float32 `[n, D]`).
///
/// The key covers the model bytes, the backbone's input spec and engine, and every byte (and
/// label) of the data, so a changed model or dataset never reads a stale entry. Writes are atomic (temporary
/// file + rename), so concurrent processes filling the same entry are safe. An unreadable or
/// inconsistent entry is recomputed, never trusted.
#[derive(Debug, Clone)]
pub struct EmbeddingCache {
    dir: PathBuf,
}

impl EmbeddingCache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        EmbeddingCache { dir: dir.into() }
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, backbone: &Backbone, data_key: u64) -> PathBuf {
        let mut spec = format!("{:?}", backbone.spec().input);
        // Engines agree to ~1e-3, not bit for bit: each keeps its own entries (tract's keys are
        // unchanged from before there were two engines).
        if backbone.engine() != Engine::Tract {
            spec = format!("{spec}/{}", backbone.engine());
        }
        // Entries of the default output keep the keys they had before other outputs could be
        // named.
        if backbone.spec().embedding_output != DEFAULT_EMBEDDING_OUTPUT {
            spec = format!("{spec}/{}", backbone.spec().embedding_output);
        }
        let key = fnv1a64(spec.as_bytes(), backbone.fingerprint() ^ data_key);
        self.dir.join(format!("emb-{key:016x}.npy"))
    }

    fn get_or_fill(
        &self,
        path: &Path,
        n: usize,
        d: usize,
        fill: impl FnOnce(&mut [f32]) -> Result<()>,
    ) -> Result<Vec<f32>> {
        if let Ok(a) = npy::read(path)
            && a.shape == [n, d]
            && let Some(v) = a.to_f32()
            && v.iter().all(|x| x.is_finite())
        {
            return Ok(v);
        }
        let mut out = vec![0f32; n * d];
        fill(&mut out)?;
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        npy::write_f32(path, &[n, d], &out)?;
        Ok(out)
    }

    /// The embeddings of every image of `set` (`[set.len(), D]`), computed with
    /// [`embed_images`] on a miss.
    ///
    /// # Errors
    /// As [`embed_images`], or [`Error::Io`] if the cache folder cannot be written.
    pub fn images(
        &self,
        backbone: &mut Backbone,
        set: &ImageSet,
        progress: impl FnMut(usize),
    ) -> Result<Vec<f32>> {
        let mut key =
            fnv1a64(&set.pixels, (set.height * 31 + set.width) as u64 * 7 + set.channels as u64);
        if let Some(l) = &set.labels {
            key = l.iter().fold(key, |h, &v| fnv1a64(&v.to_le_bytes(), h));
        }
        let path = self.path(backbone, key);
        let (n, d) = (set.len(), backbone.embedding_dim());
        let all: Vec<usize> = (0..n).collect();
        self.get_or_fill(&path, n, d, |out| embed_images(backbone, set, &all, out, progress))
    }

    /// The embeddings of every window of `set` (`[set.len(), D]`), computed with
    /// [`embed_windows`] on a miss.
    ///
    /// # Errors
    /// As [`embed_windows`], or [`Error::Io`] if the cache folder cannot be written.
    pub fn windows(
        &self,
        backbone: &mut Backbone,
        set: &SensorSet,
        progress: impl FnMut(usize),
    ) -> Result<Vec<f32>> {
        let key = set
            .values
            .iter()
            .fold((set.steps * 131 + set.channels) as u64, |h, v| fnv1a64(&v.to_le_bytes(), h));
        let path = self.path(backbone, key);
        let (n, d) = (set.len(), backbone.embedding_dim());
        let all: Vec<usize> = (0..n).collect();
        self.get_or_fill(&path, n, d, |out| embed_windows(backbone, set, &all, out, progress))
    }
}
