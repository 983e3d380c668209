//! NumPy `.npy` files (versions 1-3, C order, little-endian), plain or gzipped.
//!
//! Sensor windows ship as three files: `X` float32 (or float64) `[n, T, C]`, `y` integer `[n]`,
//! and optional group ids integer `[n]` (e.g. the subject), read together by [`read_windows`].
//! [`write_f32`] writes the `[n, D]` embeddings of `edge-ssl embed`.

use std::io::Write;
use std::path::Path;

use super::{SensorSet, read_maybe_gz};
use crate::error::{Error, Result};

/// Element types this reader understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// `<f4`
    F32,
    /// `<f8`
    F64,
    /// `|u1`
    U8,
    /// `|i1`
    I8,
    /// `<i4`
    I32,
    /// `<i8`
    I64,
    /// `<u4`
    U32,
    /// `<u8`
    U64,
}

impl Dtype {
    fn parse(descr: &str) -> Option<Dtype> {
        Some(match descr {
            "<f4" => Dtype::F32,
            "<f8" => Dtype::F64,
            "|u1" | "<u1" => Dtype::U8,
            "|i1" | "<i1" => Dtype::I8,
            "<i4" => Dtype::I32,
            "<i8" => Dtype::I64,
            "<u4" => Dtype::U32,
            "<u8" => Dtype::U64,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::U8 | Dtype::I8 => 1,
            Dtype::F32 | Dtype::I32 | Dtype::U32 => 4,
            Dtype::F64 | Dtype::I64 | Dtype::U64 => 8,
        }
    }
}

/// A decoded `.npy` array: shape, element type and raw little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The shape, outermost first (empty for a scalar).
    pub shape: Vec<usize>,
    /// The element type.
    pub dtype: Dtype,
    /// `product(shape) * dtype.size()` bytes.
    pub bytes: Vec<u8>,
}

impl NpyArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.bytes.len() / self.dtype.size()
    }

    /// True if the array holds no element.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The values as f32 (float64 is narrowed); `None` for integer arrays.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        let b = &self.bytes;
        match self.dtype {
            Dtype::F32 => Some(
                b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            ),
            Dtype::F64 => Some(
                b.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The values as i64; `None` for float arrays or u64 values above `i64::MAX`.
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        let b = &self.bytes;
        match self.dtype {
            Dtype::U8 => Some(b.iter().map(|&v| i64::from(v)).collect()),
            Dtype::I8 => Some(b.iter().map(|&v| i64::from(v as i8)).collect()),
            Dtype::I32 => Some(
                b.chunks_exact(4)
                    .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
            ),
            Dtype::U32 => Some(
                b.chunks_exact(4)
                    .map(|c| i64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
            ),
            Dtype::I64 => Some(
                b.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8"))).collect(),
            ),
            Dtype::U64 => b
                .chunks_exact(8)
                .map(|c| i64::try_from(u64::from_le_bytes(c.try_into().expect("8"))).ok())
                .collect(),
            Dtype::F32 | Dtype::F64 => None,
        }
    }
}

fn header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    Some(rest)
}

/// Parses `.npy` bytes (already gunzipped); `path` only names the source in errors.
///
/// # Errors
/// [`Error::BadData`] for a wrong magic, an unknown version, an unreadable header, an
/// unsupported dtype, Fortran order, or a data length that does not match the shape.
pub fn parse(path: &Path, b: &[u8]) -> Result<NpyArray> {
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err(Error::bad_data(path, "not an .npy file (bad magic)"));
    }
    let (hlen, off) = match b[6] {
        1 => (usize::from(u16::from_le_bytes([b[8], b[9]])), 10),
        2 | 3 if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        v => return Err(Error::bad_data(path, format!("unsupported .npy version {v}"))),
    };
    let header =
        b.get(off..off + hlen).ok_or_else(|| Error::bad_data(path, "truncated .npy header"))?;
    let header =
        std::str::from_utf8(header).map_err(|_| Error::bad_data(path, "non-UTF-8 .npy header"))?;
    let descr = header_value(header, "descr")
        .and_then(|r| r.strip_prefix('\''))
        .and_then(|r| r.split('\'').next())
        .ok_or_else(|| Error::bad_data(path, format!("no descr in .npy header {header:?}")))?;
    let dtype = Dtype::parse(descr)
        .ok_or_else(|| Error::bad_data(path, format!("unsupported .npy dtype {descr:?}")))?;
    let fortran = header_value(header, "fortran_order")
        .ok_or_else(|| Error::bad_data(path, "no fortran_order in .npy header"))?;
    if fortran.starts_with("True") {
        return Err(Error::bad_data(path, "Fortran-order .npy arrays are not supported"));
    }
    let shape_s = header_value(header, "shape")
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.split(')').next())
        .ok_or_else(|| Error::bad_data(path, format!("no shape in .npy header {header:?}")))?;
    let shape = shape_s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Error::bad_data(path, format!("bad .npy shape ({shape_s})")))?;
    let expected = shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::bad_data(path, format!("shape {shape:?} overflows")))?;
    let data = &b[off + hlen..];
    if data.len() != expected {
        let what = if data.len() < expected { "truncated" } else { "trailing bytes" };
        return Err(Error::bad_data(
            path,
            format!(
                "{what}: shape {shape:?} of {descr} needs {expected} bytes, file has {}",
                data.len()
            ),
        ));
    }
    Ok(NpyArray { shape, dtype, bytes: data.to_vec() })
}

/// Reads a `.npy` (or gzipped `.npy.gz`) file.
///
/// # Errors
/// [`Error::Io`] if it cannot be read, otherwise as [`parse`].
pub fn read(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    parse(path, &read_maybe_gz(path)?)
}

/// Reads sensor windows: `x` float `[n, T, C]`, labels `y` integer `[n]` and optional group ids
/// integer `[n]`.
///
/// # Errors
/// [`Error::BadData`] if `x` is not a 3-D float array, holds NaN or infinity (naming the window,
/// step and channel), if `y`/`groups` are not 1-D integer arrays of length `n`, or if a label is
/// negative; otherwise as [`read`].
///
/// # Examples
/// ```no_run
/// let set = edge_ssl::data::npy::read_windows(
///     "data/watch/windows_x.npy",
///     Some("data/watch/windows_y.npy"),
///     Some("data/watch/windows_groups.npy"),
/// )?;
/// assert_eq!((set.steps, set.channels), (128, 6));
/// # Ok::<(), edge_ssl::Error>(())
/// ```
pub fn read_windows(
    x: impl AsRef<Path>,
    y: Option<impl AsRef<Path>>,
    groups: Option<impl AsRef<Path>>,
) -> Result<SensorSet> {
    let xp = x.as_ref();
    let xa = read(xp)?;
    let [n, steps, channels] = xa.shape[..] else {
        return Err(Error::bad_data(
            xp,
            format!("expected X of shape [n, T, C], got {:?}", xa.shape),
        ));
    };
    let values = xa
        .to_f32()
        .ok_or_else(|| Error::bad_data(xp, format!("expected float X, got {:?}", xa.dtype)))?;
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        let per = steps * channels;
        return Err(Error::bad_data(
            xp,
            format!(
                "non-finite value {} at window {}, step {}, channel {}",
                values[i],
                i / per,
                (i % per) / channels,
                i % channels
            ),
        ));
    }
    let read_ints = |p: &Path, what: &str| -> Result<Vec<i64>> {
        let a = read(p)?;
        if a.shape != [n] {
            return Err(Error::bad_data(
                p,
                format!("expected {what} of shape [{n}], got {:?}", a.shape),
            ));
        }
        a.to_i64().ok_or_else(|| {
            Error::bad_data(p, format!("expected integer {what}, got {:?}", a.dtype))
        })
    };
    let labels = match y {
        None => None,
        Some(p) => {
            let p = p.as_ref();
            let v = read_ints(p, "labels")?;
            let labels = v
                .iter()
                .map(|&l| u32::try_from(l))
                .collect::<Result<Vec<u32>, _>>()
                .map_err(|_| Error::bad_data(p, "labels must be in 0..2^32"))?;
            Some(labels)
        }
    };
    let groups = match groups {
        None => None,
        Some(p) => Some(read_ints(p.as_ref(), "groups")?),
    };
    Ok(SensorSet { steps, channels, values, labels, groups })
}

/// Serializes a little-endian float32 C-order array as `.npy` version 1 bytes.
///
/// # Errors
/// [`Error::ShapeMismatch`] if `values.len()` is not the product of `shape`.
pub fn encode_f32(shape: &[usize], values: &[f32]) -> Result<Vec<u8>> {
    let n: usize = shape.iter().product();
    if n != values.len() {
        return Err(Error::ShapeMismatch {
            op: "npy::encode_f32",
            expected: format!("{shape:?} = {n} values"),
            got: format!("{} values", values.len()),
        });
    }
    let dims: String = shape.iter().map(|d| format!("{d},")).collect();
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * values.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// Writes a float32 array as `.npy`, atomically (unique temporary file, fsync, rename).
///
/// # Errors
/// As [`encode_f32`], or [`Error::Io`].
pub fn write_f32(path: impl AsRef<Path>, shape: &[usize], values: &[f32]) -> Result<()> {
    let path = path.as_ref();
    let bytes = encode_f32(shape, values)?;
    // A unique temporary name, so that concurrent writers of the same path never interleave.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp.{}.{n}", std::process::id()));
    let tmp = path.with_file_name(name);
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replaces the first `from` in `b` by `to` (same length, so the header stays consistent).
    fn patch(b: &[u8], from: &str, to: &str) -> Vec<u8> {
        assert_eq!(from.len(), to.len());
        let at = b.windows(from.len()).position(|w| w == from.as_bytes()).expect("pattern");
        let mut out = b.to_vec();
        out[at..at + to.len()].copy_from_slice(to.as_bytes());
        out
    }

    #[test]
    fn round_trips_f32() {
        let b = encode_f32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]).unwrap();
        let a = parse(Path::new("x"), &b).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.to_f32().unwrap(), vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
        assert_eq!((b.len() - 24) % 64, 0, "header padded to 64 bytes");
    }

    #[test]
    fn rejects_bad_magic_truncation_and_fortran() {
        let mut b = encode_f32(&[2], &[1.0, 2.0]).unwrap();
        let e = parse(Path::new("x"), &b[..b.len() - 1]).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let f = patch(&b, "False", "True ");
        assert!(parse(Path::new("x"), &f).unwrap_err().to_string().contains("Fortran"));
        b[1] = b'X';
        assert!(parse(Path::new("x"), &b).unwrap_err().to_string().contains("magic"));
    }

    #[test]
    fn rejects_unsupported_dtype() {
        let b = encode_f32(&[1], &[1.0]).unwrap();
        let e = parse(Path::new("x"), &patch(&b, "<f4", "<c8")).unwrap_err();
        assert!(e.to_string().contains("unsupported .npy dtype"), "{e}");
    }
}
