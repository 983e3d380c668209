//! The IDX format of MNIST and Fashion-MNIST, plain or gzipped.
//!
//! Layout: two zero bytes, a type byte (`0x08` = u8; the only type these datasets use), a byte
//! giving the number of dimensions, then each dimension as a big-endian u32, then the data.

use std::path::Path;

use super::{ImageSet, read_maybe_gz};
use crate::error::{Error, Result};

/// A decoded IDX array of bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first.
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Parses IDX bytes (already gunzipped); `path` only names the source in errors.
///
/// # Errors
/// [`Error::BadData`] for a wrong magic, a type other than u8, zero dims, or a length that does
/// not match the dims (truncated or trailing bytes).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<IdxArray> {
    if bytes.len() < 4 {
        return Err(Error::bad_data(path, format!("truncated IDX header: {} bytes", bytes.len())));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::bad_data(
            path,
            format!("bad IDX magic {:02x} {:02x} (expected 00 00)", bytes[0], bytes[1]),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(Error::bad_data(
            path,
            format!("unsupported IDX element type 0x{:02x} (only 0x08 = u8)", bytes[2]),
        ));
    }
    let ndim = bytes[3] as usize;
    if ndim == 0 {
        return Err(Error::bad_data(path, "IDX file declares zero dimensions"));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(Error::bad_data(path, format!("truncated IDX header: {ndim} dims declared")));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::bad_data(path, format!("IDX dims {dims:?} overflow")))?;
    let got = bytes.len() - header;
    if got != expected {
        let what = if got < expected { "truncated" } else { "trailing bytes" };
        return Err(Error::bad_data(
            path,
            format!("{what}: dims {dims:?} need {expected} data bytes, file has {got}"),
        ));
    }
    Ok(IdxArray { dims, data: bytes[header..].to_vec() })
}

/// Reads an IDX file (plain or `.gz`).
///
/// # Errors
/// [`Error::Io`] if the file cannot be read, [`Error::BadData`] as in [`parse`].
pub fn read(path: impl AsRef<Path>) -> Result<IdxArray> {
    let path = path.as_ref();
    parse(path, &read_maybe_gz(path)?)
}

/// Reads an IDX image file `[n, h, w]` (gray) or `[n, h, w, c]`, and optionally its IDX label
/// file `[n]`.
///
/// # Errors
/// [`Error::BadData`] if the image file is not 3-D or 4-D, the label file is not 1-D, or the
/// counts differ; otherwise as [`read`].
///
/// # Examples
/// ```no_run
/// let set = edge_ssl::data::idx::read_images(
///     "data/fashion-mnist/t10k-images-idx3-ubyte.gz",
///     Some("data/fashion-mnist/t10k-labels-idx1-ubyte.gz"),
/// )?;
/// assert_eq!((set.height, set.width, set.channels), (28, 28, 1));
/// # Ok::<(), edge_ssl::Error>(())
/// ```
pub fn read_images(images: impl AsRef<Path>, labels: Option<impl AsRef<Path>>) -> Result<ImageSet> {
    let images = images.as_ref();
    let arr = read(images)?;
    let (n, height, width, channels) = match arr.dims[..] {
        [n, h, w] => (n, h, w, 1),
        [n, h, w, c] => (n, h, w, c),
        _ => {
            return Err(Error::bad_data(
                images,
                format!("expected image dims [n, h, w] or [n, h, w, c], got {:?}", arr.dims),
            ));
        }
    };
    let labels = match labels {
        None => None,
        Some(p) => {
            let p = p.as_ref();
            let l = read_labels(p)?;
            if l.len() != n {
                return Err(Error::bad_data(
                    p,
                    format!("{} labels for {n} images in {}", l.len(), images.display()),
                ));
            }
            Some(l)
        }
    };
    Ok(ImageSet { height, width, channels, pixels: arr.data, labels, class_names: Vec::new() })
}

/// Reads an IDX label file `[n]`.
///
/// # Errors
/// [`Error::BadData`] if the file is not 1-D; otherwise as [`read`].
pub fn read_labels(path: impl AsRef<Path>) -> Result<Vec<u32>> {
    let path = path.as_ref();
    let arr = read(path)?;
    if arr.dims.len() != 1 {
        return Err(Error::bad_data(path, format!("expected label dims [n], got {:?}", arr.dims)));
    }
    Ok(arr.data.into_iter().map(u32::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn parses_hand_made_array() {
        let a = parse(Path::new("x"), &encode(&[2, 3], &[1, 2, 3, 4, 5, 6])).unwrap();
        assert_eq!(a.dims, vec![2, 3]);
        assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn rejects_bad_magic() {
        let mut b = encode(&[2], &[1, 2]);
        b[1] = 7;
        let e = parse(Path::new("x"), &b).unwrap_err();
        assert!(matches!(e, Error::BadData { ref reason, .. } if reason.contains("magic")), "{e}");
    }

    #[test]
    fn rejects_truncated_data_and_trailing_bytes() {
        let b = encode(&[2, 3], &[1, 2, 3, 4, 5]);
        let e = parse(Path::new("x"), &b).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let b = encode(&[2, 3], &[0; 7]);
        assert!(parse(Path::new("x"), &b).unwrap_err().to_string().contains("trailing"));
    }

    #[test]
    fn rejects_truncated_header_and_non_u8() {
        assert!(parse(Path::new("x"), &[0, 0, 8]).is_err());
        assert!(parse(Path::new("x"), &[0, 0, 8, 3, 0, 0]).is_err());
        let mut b = encode(&[1], &[0]);
        b[2] = 0x0d; // float
        assert!(parse(Path::new("x"), &b).unwrap_err().to_string().contains("0x0d"));
    }
}
