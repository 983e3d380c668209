//! PNG/JPEG images in one sub-folder per class (`root/<class>/<image>.{png,jpg,jpeg}`).

use std::path::{Path, PathBuf};

use super::ImageSet;
use super::image::{Geometry, resize_into};
use crate::error::{Error, Result};

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        let e = e.to_ascii_lowercase();
        e == "png" || e == "jpg" || e == "jpeg"
    })
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|err| Error::io(dir, err)))
        .collect::<Result<Vec<_>>>()?;
    v.sort();
    Ok(v)
}

/// Decodes one PNG/JPEG file and resizes it to `height x width` RGB, appending to `out`.
///
/// # Errors
/// [`Error::Io`] if unreadable, [`Error::BadImage`] if it does not decode.
pub fn read_image_into(path: &Path, height: usize, width: usize, out: &mut Vec<u8>) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let img = image::load_from_memory(&bytes)
        .map_err(|e| Error::BadImage { path: path.to_path_buf(), source: Box::new(e) })?
        .into_rgb8();
    let (w, h) = img.dimensions();
    let start = out.len();
    out.resize(start + height * width * 3, 0);
    resize_into(
        img.as_raw(),
        Geometry { height: h as usize, width: w as usize, channels: 3 },
        &mut out[start..],
        Geometry { height, width, channels: 3 },
    )
}

/// Reads every PNG/JPEG under `root/<class>/`, classes in sorted name order (label = index),
/// files in sorted order, each resized to `height x width` RGB.
///
/// Files with other extensions are skipped; a file named `.png` that does not decode is an error.
///
/// # Errors
/// [`Error::Io`] for unreadable folders or files, [`Error::BadImage`] for undecodable images,
/// [`Error::BadData`] if `root` has no class sub-folder or no image at all.
///
/// # Examples
/// ```no_run
/// let set = edge_ssl::data::folder::read_folder("photos/train", 112, 112)?;
/// println!("{} images in {} classes", set.len(), set.class_names.len());
/// # Ok::<(), edge_ssl::Error>(())
/// ```
pub fn read_folder(root: impl AsRef<Path>, height: usize, width: usize) -> Result<ImageSet> {
    let root = root.as_ref();
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    let mut class_names = Vec::new();
    for class_dir in sorted_entries(root)?.into_iter().filter(|p| p.is_dir()) {
        let label = class_names.len() as u32;
        class_names.push(class_dir.file_name().unwrap_or_default().to_string_lossy().into_owned());
        for file in sorted_entries(&class_dir)?.into_iter().filter(|p| is_image(p)) {
            read_image_into(&file, height, width, &mut pixels)?;
            labels.push(label);
        }
    }
    if class_names.is_empty() {
        return Err(Error::bad_data(root, "no class sub-folder"));
    }
    if labels.is_empty() {
        return Err(Error::bad_data(root, "no .png/.jpg/.jpeg image in any class folder"));
    }
    Ok(ImageSet { height, width, channels: 3, pixels, labels: Some(labels), class_names })
}
