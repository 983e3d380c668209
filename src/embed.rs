//! Embedding whole datasets with a [`Backbone`], batch by batch, into one caller buffer.
//!
//! Images are resized (bilinear) and converted to RGB to the backbone's input size on the fly;
//! sensor windows must already have the backbone's `steps x channels`.

use crate::backbone::{Backbone, Input, InputKind};
use crate::data::image::{Geometry, resize_into};
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
