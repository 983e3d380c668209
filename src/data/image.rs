//! Pixel helpers shared by the readers and the backbone input path: resizing and channel
//! conversion into caller-owned buffers (no allocation).

use crate::error::{Error, Result};

/// Geometry of an HWC u8 image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// Channels: 1 (gray), 3 (RGB) or 4 (RGBA, alpha dropped on conversion).
    pub channels: usize,
}

impl Geometry {
    /// Bytes of one image.
    pub fn len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// True for an empty geometry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Resizes `src` (geometry `sg`) into `dst` (geometry `dg`) with bilinear interpolation
/// (half-pixel centres, edge clamp, no antialiasing: the OpenCV/PyTorch `align_corners=False`
/// convention) and converts channels: gray is replicated to RGB, RGB to gray uses ITU-R 601
/// luma, an alpha channel is dropped. Same size and channels is a plain copy.
///
/// # Shapes
/// `src: [sg.height, sg.width, sg.channels]` -> `dst: [dg.height, dg.width, dg.channels]`.
///
/// # Errors
/// [`Error::ShapeMismatch`] if a buffer length does not match its geometry, or a channel count
/// is not 1, 3 or 4 (destination: 1 or 3).
pub fn resize_into(src: &[u8], sg: Geometry, dst: &mut [u8], dg: Geometry) -> Result<()> {
    if src.len() != sg.len() || sg.is_empty() || !matches!(sg.channels, 1 | 3 | 4) {
        return Err(Error::ShapeMismatch {
            op: "resize_into(src)",
            expected: format!("{sg:?} with 1, 3 or 4 channels = {} bytes", sg.len()),
            got: format!("{} bytes", src.len()),
        });
    }
    if dst.len() != dg.len() || dg.is_empty() || !matches!(dg.channels, 1 | 3) {
        return Err(Error::ShapeMismatch {
            op: "resize_into(dst)",
            expected: format!("{dg:?} with 1 or 3 channels = {} bytes", dg.len()),
            got: format!("{} bytes", dst.len()),
        });
    }
    let (sh, sw, sc) = (sg.height, sg.width, sg.channels);
    let (dh, dw, dc) = (dg.height, dg.width, dg.channels);
    let pixel = |y: usize, x: usize, out: &mut [f32; 3]| {
        let p = &src[(y * sw + x) * sc..];
        if sc == 1 {
            *out = [f32::from(p[0]); 3];
        } else {
            *out = [f32::from(p[0]), f32::from(p[1]), f32::from(p[2])];
        }
    };
    let coord = |i: usize, scale: f32, max: usize| -> (usize, usize, f32) {
        let f = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
        let lo = (f.floor() as usize).min(max - 1);
        let hi = (lo + 1).min(max - 1);
        (lo, hi, f - lo as f32)
    };
    let (sy, sx) = (sh as f32 / dh as f32, sw as f32 / dw as f32);
    let (mut a, mut b, mut c, mut d) = ([0f32; 3], [0f32; 3], [0f32; 3], [0f32; 3]);
    for y in 0..dh {
        let (y0, y1, fy) = coord(y, sy, sh);
        for x in 0..dw {
            let (x0, x1, fx) = coord(x, sx, sw);
            pixel(y0, x0, &mut a);
            pixel(y0, x1, &mut b);
            pixel(y1, x0, &mut c);
            pixel(y1, x1, &mut d);
            let mut rgb = [0f32; 3];
            for k in 0..3 {
                let top = a[k] + (b[k] - a[k]) * fx;
                let bottom = c[k] + (d[k] - c[k]) * fx;
                rgb[k] = top + (bottom - top) * fy;
            }
            let o = &mut dst[(y * dw + x) * dc..];
            if dc == 1 {
                let luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
                o[0] = luma.round().clamp(0.0, 255.0) as u8;
            } else {
                for k in 0..3 {
                    o[k] = rgb[k].round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn g(height: usize, width: usize, channels: usize) -> Geometry {
        Geometry { height, width, channels }
    }

    #[test]
    fn same_size_is_identity_and_gray_replicates() {
        let src: Vec<u8> = (0..12).collect();
        let mut dst = vec![0; 12];
        resize_into(&src, g(2, 2, 3), &mut dst, g(2, 2, 3)).unwrap();
        assert_eq!(src, dst);
        let mut rgb = vec![0; 12];
        resize_into(&[10, 20, 30, 40], g(2, 2, 1), &mut rgb, g(2, 2, 3)).unwrap();
        assert_eq!(rgb, vec![10, 10, 10, 20, 20, 20, 30, 30, 30, 40, 40, 40]);
    }

    #[test]
    fn upsampling_matches_hand_computed_bilinear() {
        // 1x2 gray [0, 100] -> 1x4: centres at src x = -0.25, 0.25, 0.75, 1.25 -> clamp.
        let mut dst = vec![0; 4];
        resize_into(&[0, 100], g(1, 2, 1), &mut dst, g(1, 4, 1)).unwrap();
        assert_eq!(dst, vec![0, 25, 75, 100]);
    }

    #[test]
    fn rejects_wrong_lengths() {
        let mut dst = vec![0; 4];
        assert!(resize_into(&[0, 1, 2], g(1, 2, 1), &mut dst, g(1, 4, 1)).is_err());
        assert!(resize_into(&[0, 1], g(1, 2, 1), &mut dst, g(1, 2, 1)).is_err());
        assert!(resize_into(&[0, 1], g(1, 1, 2), &mut dst[..2], g(1, 2, 1)).is_err());
    }
}
