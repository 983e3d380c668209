//! Weak and strong views of `u8` HWC images, and CutMix, as in FixMatch.
//!
//! - weak: horizontal flip with probability 0.5, then an integer shift of up to 12.5 % of each side
//!   with reflect padding (FixMatch, Sohn et al. 2020: the "flip-and-shift" weak augmentation).
//! - strong: the weak view, then `n_ops` RandAugment ops ([`RandOp`]) drawn with replacement, each
//!   with a magnitude drawn uniformly from its range in FixMatch's Appendix Table 12 (the
//!   "RA" variant of FixMatch samples a fresh magnitude per op instead of RandAugment's global
//!   `M`), then Cutout: one square of side up to `cutout` x the shorter side, filled with gray
//!   127 (FixMatch's reference code, `libml/ctaugment.py` `cutout`).
//! - CutMix (Yun et al. 2019): a box of `b` pasted into `a`, area ratio `1 - lambda` with
//!   `lambda ~ Beta(alpha, alpha)`; the returned `lambda` is recomputed from the clipped box.
//!
//! The photometric ops follow PIL's definitions (`ImageOps.autocontrast`, `ImageOps.equalize`,
//! `ImageOps.solarize`, `ImageOps.posterize`, `ImageEnhance.*`), which FixMatch's reference code
//! calls. The geometric ops sample with nearest neighbour (PIL's default), about the image centre,
//! and fill the uncovered area with gray 127 (PIL's default is black; gray maps to about 0 under the
//! backbones' `(x - 127) / 128` preprocessing, so it adds no spurious edge energy).

use rand::Rng;
use rand_distr::{Beta, Distribution};

use super::{Checked, ParamsError, unit_interval};
use crate::data::image::Geometry;
use crate::error::{Error, Result};

/// Gray value for Cutout and for pixels that a geometric op uncovers.
pub const FILL: u8 = 127;

/// Parameters of [`ImageAugmenter`]. Defaults follow FixMatch (Sohn et al. 2020) and CutMix
/// (Yun et al. 2019).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageAugParams {
    /// Probability of the horizontal flip in the weak view. Default 0.5 (FixMatch).
    pub flip_prob: f32,
    /// Largest shift of the weak view, as a fraction of each side, in `[0, 0.5]`. Default 0.125
    /// (FixMatch: "randomly translating by up to 12.5% vertically and horizontally").
    pub translate: f32,
    /// RandAugment ops per strong view, at most [`RandOp::ALL`]`.len()`. Default 2 (FixMatch's RA).
    pub n_ops: usize,
    /// Largest Cutout side as a fraction of the shorter image side, in `[0, 1]`; 0 disables
    /// Cutout. Default 0.5 (FixMatch's reference `cutout`: side up to ~0.5 of the shorter side).
    pub cutout: f32,
    /// CutMix's `Beta(alpha, alpha)` parameter, > 0. Default 1.0 (uniform lambda; Yun et al. 2019).
    pub cutmix_alpha: f32,
}

impl Default for ImageAugParams {
    fn default() -> Self {
        Self { flip_prob: 0.5, translate: 0.125, n_ops: 2, cutout: 0.5, cutmix_alpha: 1.0 }
    }
}

impl ImageAugParams {
    /// Validates the parameters.
    ///
    /// # Errors
    /// One [`ParamsError`] per rule: [`FlipProb`](ParamsError::FlipProb),
    /// [`Translate`](ParamsError::Translate), [`NOps`](ParamsError::NOps),
    /// [`Cutout`](ParamsError::Cutout), [`CutmixAlpha`](ParamsError::CutmixAlpha).
    pub fn check(self) -> std::result::Result<Checked<Self>, ParamsError> {
        unit_interval(self.flip_prob, true, |value| ParamsError::FlipProb { value })?;
        if !(0.0..=0.5).contains(&self.translate) {
            return Err(ParamsError::Translate { value: self.translate });
        }
        if self.n_ops > RandOp::ALL.len() {
            return Err(ParamsError::NOps { value: self.n_ops, max: RandOp::ALL.len() });
        }
        unit_interval(self.cutout, true, |value| ParamsError::Cutout { value })?;
        if !(self.cutmix_alpha.is_finite() && self.cutmix_alpha > 0.0) {
            return Err(ParamsError::CutmixAlpha { value: self.cutmix_alpha });
        }
        Ok(Checked(self))
    }
}

/// One RandAugment op. The magnitude `level` in `[0, 1]` maps linearly onto the op's range in
/// FixMatch's Appendix Table 12, listed on each variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RandOp {
    /// Returns the image unchanged.
    Identity,
    /// Stretches each channel so its darkest pixel becomes 0 and its lightest 255 (no parameter).
    AutoContrast,
    /// Equalizes each channel's histogram (PIL's `ImageOps.equalize`; no parameter).
    Equalize,
    /// Rotates by `theta` in `[-30, 30]` degrees (counter-clockwise positive).
    Rotate,
    /// Inverts every pixel `>= 256 T`, `T` in `[0, 1]`.
    Solarize,
    /// Blends with the grayscale image, factor `C` in `[0.05, 0.95]` (1 = original).
    Color,
    /// Keeps the top `B` bits of each pixel, `B` in `{4, ..., 8}`.
    Posterize,
    /// Blends with the mean gray, factor `C` in `[0.05, 0.95]` (1 = original).
    Contrast,
    /// Blends with black, factor `B` in `[0.05, 0.95]` (1 = original).
    Brightness,
    /// Blends with PIL's `SMOOTH` blur, factor `S` in `[0.05, 0.95]` (1 = original).
    Sharpness,
    /// Shears along x by `R` in `[-0.3, 0.3]`.
    ShearX,
    /// Shears along y by `R` in `[-0.3, 0.3]`.
    ShearY,
    /// Shifts along x by `lambda` in `[-0.3, 0.3]` of the width.
    TranslateX,
    /// Shifts along y by `lambda` in `[-0.3, 0.3]` of the height.
    TranslateY,
}

impl RandOp {
    /// The ops a strong view draws from (FixMatch Table 12).
    pub const ALL: [RandOp; 14] = [
        RandOp::Identity,
        RandOp::AutoContrast,
        RandOp::Equalize,
        RandOp::Rotate,
        RandOp::Solarize,
        RandOp::Color,
        RandOp::Posterize,
        RandOp::Contrast,
        RandOp::Brightness,
        RandOp::Sharpness,
        RandOp::ShearX,
        RandOp::ShearY,
        RandOp::TranslateX,
        RandOp::TranslateY,
    ];
}

/// Builds weak and strong views and CutMix composites of images of one [`Geometry`].
///
/// Owns one scratch image, allocated in [`ImageAugmenter::new`]; the `*_into` methods allocate
/// nothing.
#[derive(Debug, Clone)]
pub struct ImageAugmenter {
    params: ImageAugParams,
    geometry: Geometry,
    beta: Beta<f32>,
    scratch: Vec<u8>,
}

impl ImageAugmenter {
    /// Builds an augmenter for images of `geometry`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `geometry` is empty or has a channel count other than 1 or 3.
    pub fn new(params: Checked<ImageAugParams>, geometry: Geometry) -> Result<Self> {
        if geometry.is_empty() || !matches!(geometry.channels, 1 | 3) {
            return Err(Error::ShapeMismatch {
                op: "ImageAugmenter::new",
                expected: "a non-empty geometry with 1 or 3 channels".into(),
                got: format!("{geometry:?}"),
            });
        }
        let params = *params.get();
        let beta = Beta::new(params.cutmix_alpha, params.cutmix_alpha)
            .map_err(|_| ParamsError::CutmixAlpha { value: params.cutmix_alpha })?;
        Ok(Self { params, geometry, beta, scratch: vec![0; geometry.len()] })
    }

    /// The parameters this augmenter was built with.
    pub fn params(&self) -> &ImageAugParams {
        &self.params
    }

    /// The image geometry this augmenter accepts.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Writes the weak view of `src` into `dst`: a horizontal flip with probability
    /// `flip_prob`, then a shift by a uniform integer number of pixels in
    /// `[-round(translate * side), round(translate * side)]` along each axis, reflect-padded.
    ///
    /// # Shapes
    /// `src: [H, W, C]` -> `dst: [H, W, C]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if a buffer length is not `geometry.len()`.
    pub fn weak_into<R: Rng + ?Sized>(
        &mut self,
        src: &[u8],
        dst: &mut [u8],
        rng: &mut R,
    ) -> Result<()> {
        self.check_lengths("ImageAugmenter::weak_into", src, dst)?;
        self.weak(src, dst, rng);
        Ok(())
    }

    /// Writes the strong view of `src` into `dst`: the weak view, then `n_ops` ops drawn with
    /// replacement from [`RandOp::ALL`], each at a uniform random level, then Cutout.
    ///
    /// # Shapes
    /// `src: [H, W, C]` -> `dst: [H, W, C]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if a buffer length is not `geometry.len()`.
    pub fn strong_into<R: Rng + ?Sized>(
        &mut self,
        src: &[u8],
        dst: &mut [u8],
        rng: &mut R,
    ) -> Result<()> {
        self.check_lengths("ImageAugmenter::strong_into", src, dst)?;
        let g = self.geometry;
        self.weak(src, dst, rng);
        // Ping-pong between `dst` and the scratch image; `in_dst` says where the current image is.
        let mut in_dst = true;
        for _ in 0..self.params.n_ops {
            let op = RandOp::ALL[rng.random_range(0..RandOp::ALL.len())];
            let level = rng.random::<f32>();
            if in_dst {
                apply(op, level, dst, &mut self.scratch, g);
            } else {
                apply(op, level, &self.scratch, dst, g);
            }
            in_dst = !in_dst;
        }
        if !in_dst {
            dst.copy_from_slice(&self.scratch);
        }
        let side = rng.random::<f32>() * self.params.cutout * g.height.min(g.width) as f32;
        let side = side.round() as usize;
        let (cy, cx) = (rng.random_range(0..g.height), rng.random_range(0..g.width));
        cutout(dst, g, cy, cx, side);
        Ok(())
    }

    /// Applies one RandAugment op at magnitude `level` (clamped to `[0, 1]`, mapped linearly onto
    /// the op's range, see [`RandOp`]). Deterministic: the RNG-free building block of
    /// [`ImageAugmenter::strong_into`].
    ///
    /// # Shapes
    /// `src: [H, W, C]` -> `dst: [H, W, C]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if a buffer length is not `geometry.len()`.
    pub fn apply_op(&self, op: RandOp, level: f32, src: &[u8], dst: &mut [u8]) -> Result<()> {
        self.check_lengths("ImageAugmenter::apply_op", src, dst)?;
        apply(op, level.clamp(0.0, 1.0), src, dst, self.geometry);
        Ok(())
    }

    /// Writes the CutMix of `a` and `b` into `dst` and returns the weight of `a`.
    ///
    /// Draws `lambda ~ Beta(alpha, alpha)`, a box of `floor(W sqrt(1 - lambda))` by
    /// `floor(H sqrt(1 - lambda))` pixels centred on a uniform pixel and clipped to the image (Yun
    /// et al. 2019, reference code), copies `a` and pastes `b` inside the box. Returns the actual
    /// `1 - box area / image area` after clipping: mix the labels as
    /// `lambda * y_a + (1 - lambda) * y_b`.
    ///
    /// # Shapes
    /// `a, b: [H, W, C]` -> `dst: [H, W, C]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if a buffer length is not `geometry.len()`.
    pub fn cutmix_into<R: Rng + ?Sized>(
        &mut self,
        a: &[u8],
        b: &[u8],
        dst: &mut [u8],
        rng: &mut R,
    ) -> Result<f32> {
        self.check_lengths("ImageAugmenter::cutmix_into(a)", a, dst)?;
        self.check_lengths("ImageAugmenter::cutmix_into(b)", b, dst)?;
        let g = self.geometry;
        let lambda: f32 = self.beta.sample(rng);
        let ratio = (1.0 - lambda).clamp(0.0, 1.0).sqrt();
        let (cut_h, cut_w) =
            ((g.height as f32 * ratio) as usize, (g.width as f32 * ratio) as usize);
        let (cy, cx) = (rng.random_range(0..g.height), rng.random_range(0..g.width));
        let (y0, y1) = (cy.saturating_sub(cut_h / 2), (cy + cut_h / 2).min(g.height));
        let (x0, x1) = (cx.saturating_sub(cut_w / 2), (cx + cut_w / 2).min(g.width));
        dst.copy_from_slice(a);
        let row = g.width * g.channels;
        for y in y0..y1 {
            let r = y * row + x0 * g.channels..y * row + x1 * g.channels;
            dst[r.clone()].copy_from_slice(&b[r]);
        }
        let area = ((y1 - y0) * (x1 - x0)) as f32;
        Ok(1.0 - area / (g.height * g.width) as f32)
    }

    fn check_lengths(&self, op: &'static str, src: &[u8], dst: &[u8]) -> Result<()> {
        let n = self.geometry.len();
        if src.len() != n || dst.len() != n {
            return Err(Error::ShapeMismatch {
                op,
                expected: format!("{:?} = {n} bytes for src and dst", self.geometry),
                got: format!("src {} bytes, dst {} bytes", src.len(), dst.len()),
            });
        }
        Ok(())
    }

    fn weak<R: Rng + ?Sized>(&self, src: &[u8], dst: &mut [u8], rng: &mut R) {
        let g = self.geometry;
        let flip = rng.random_bool(f64::from(self.params.flip_prob));
        let max_dy = (self.params.translate * g.height as f32).round() as i64;
        let max_dx = (self.params.translate * g.width as f32).round() as i64;
        let dy = rng.random_range(-max_dy..=max_dy) as isize;
        let dx = rng.random_range(-max_dx..=max_dx) as isize;
        flip_shift(src, dst, g, flip, dy, dx);
    }
}

/// `dst(y, x) = flipped(reflect(y - dy), reflect(x - dx))` where `flipped` mirrors `src`
/// horizontally when `flip`.
fn flip_shift(src: &[u8], dst: &mut [u8], g: Geometry, flip: bool, dy: isize, dx: isize) {
    let (h, w, c) = (g.height, g.width, g.channels);
    for y in 0..h {
        let sy = reflect(y as isize - dy, h);
        for x in 0..w {
            let mut sx = reflect(x as isize - dx, w);
            if flip {
                sx = w - 1 - sx;
            }
            let (s, d) = ((sy * w + sx) * c, (y * w + x) * c);
            dst[d..d + c].copy_from_slice(&src[s..s + c]);
        }
    }
}

/// Reflects index `i` into `0..n` without repeating the edge (numpy's / TF's `reflect`).
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m >= n as isize { period - m } else { m }) as usize
}

/// Fills the `side x side` square centred on `(cy, cx)`, clipped to the image, with [`FILL`].
fn cutout(img: &mut [u8], g: Geometry, cy: usize, cx: usize, side: usize) {
    if side == 0 {
        return;
    }
    let (y0, x0) = (cy.saturating_sub(side / 2), cx.saturating_sub(side / 2));
    let (y1, x1) = ((y0 + side).min(g.height), (x0 + side).min(g.width));
    let row = g.width * g.channels;
    for y in y0..y1 {
        img[y * row + x0 * g.channels..y * row + x1 * g.channels].fill(FILL);
    }
}

/// Rounds and saturates to `u8`.
fn clip8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// PIL's `Image.blend(degenerate, image, f)` for one value: `degenerate + f (image -
/// degenerate)`, computed in f32 and truncated as PIL's `ImagingBlend` does, saturated to `u8`.
fn blend(degenerate: u8, image: u8, f: f32) -> u8 {
    let (d, i) = (f32::from(degenerate), f32::from(image));
    (d + f * (i - d)).clamp(0.0, 255.0) as u8
}

/// PIL's `L` conversion (ITU-R 601 luma in 16-bit fixed point, `ImagingConvert` `L24`).
fn luma(p: &[u8]) -> u8 {
    let l = u32::from(p[0]) * 19595 + u32::from(p[1]) * 38470 + u32::from(p[2]) * 7471 + 0x8000;
    (l >> 16) as u8
}

/// Applies `op` at `level` in `[0, 1]`; `src` and `dst` have geometry `g` (validated).
fn apply(op: RandOp, level: f32, src: &[u8], dst: &mut [u8], g: Geometry) {
    let lerp = |lo: f32, hi: f32| lo + (hi - lo) * level;
    match op {
        RandOp::Identity => dst.copy_from_slice(src),
        RandOp::AutoContrast => autocontrast(src, dst, g.channels),
        RandOp::Equalize => equalize(src, dst, g.channels),
        RandOp::Rotate => {
            // PIL's `Image.rotate`: angle counter-clockwise; output -> input matrix at -theta.
            let a = -f64::from(lerp(-30.0, 30.0)).to_radians();
            let (s, c) = a.sin_cos();
            affine(src, dst, g, [c, s, -s, c], [0.0, 0.0]);
        }
        RandOp::Solarize => {
            let threshold = (level * 256.0).floor() as u16;
            point(src, dst, |v| if u16::from(v) < threshold { v } else { 255 - v });
        }
        RandOp::Color => {
            let f = lerp(0.05, 0.95);
            if g.channels == 1 {
                dst.copy_from_slice(src);
            } else {
                for (s, d) in src.chunks_exact(3).zip(dst.chunks_exact_mut(3)) {
                    let gray = luma(s);
                    for k in 0..3 {
                        d[k] = blend(gray, s[k], f);
                    }
                }
            }
        }
        RandOp::Posterize => {
            let bits = 4 + (level * 4.999).floor() as u32;
            let mask = !((1u16 << (8 - bits)) - 1) as u8;
            point(src, dst, |v| v & mask);
        }
        RandOp::Contrast => {
            // PIL's `ImageEnhance.Contrast`: blend with the rounded mean of the `L` image.
            let f = lerp(0.05, 0.95);
            let sum: u64 = if g.channels == 1 {
                src.iter().map(|&v| u64::from(v)).sum()
            } else {
                src.chunks_exact(3).map(|p| u64::from(luma(p))).sum()
            };
            let mean = (sum as f64 / (g.height * g.width) as f64 + 0.5).floor() as u8;
            for (s, d) in src.iter().zip(dst.iter_mut()) {
                *d = blend(mean, *s, f);
            }
        }
        RandOp::Brightness => {
            let f = lerp(0.05, 0.95);
            for (s, d) in src.iter().zip(dst.iter_mut()) {
                *d = blend(0, *s, f);
            }
        }
        RandOp::Sharpness => sharpness(src, dst, g, lerp(0.05, 0.95)),
        RandOp::ShearX => {
            affine(src, dst, g, [1.0, f64::from(lerp(-0.3, 0.3)), 0.0, 1.0], [0.0, 0.0]);
        }
        RandOp::ShearY => {
            affine(src, dst, g, [1.0, 0.0, f64::from(lerp(-0.3, 0.3)), 1.0], [0.0, 0.0]);
        }
        RandOp::TranslateX => {
            let t = f64::from((lerp(-0.3, 0.3) * g.width as f32).round());
            affine(src, dst, g, [1.0, 0.0, 0.0, 1.0], [-t, 0.0]);
        }
        RandOp::TranslateY => {
            let t = f64::from((lerp(-0.3, 0.3) * g.height as f32).round());
            affine(src, dst, g, [1.0, 0.0, 0.0, 1.0], [0.0, -t]);
        }
    }
}

/// Applies the same 256-entry map to every byte.
fn point(src: &[u8], dst: &mut [u8], f: impl Fn(u8) -> u8) {
    let mut lut = [0u8; 256];
    for (i, v) in lut.iter_mut().enumerate() {
        *v = f(i as u8);
    }
    for (s, d) in src.iter().zip(dst.iter_mut()) {
        *d = lut[usize::from(*s)];
    }
}

/// Applies one 256-entry map per channel.
fn point_per_channel(src: &[u8], dst: &mut [u8], channels: usize, luts: &[[u8; 256]; 3]) {
    for (s, d) in src.chunks_exact(channels).zip(dst.chunks_exact_mut(channels)) {
        for k in 0..channels {
            d[k] = luts[k][usize::from(s[k])];
        }
    }
}

/// Per-channel histograms (`channels <= 3`).
fn histograms(src: &[u8], channels: usize) -> [[u32; 256]; 3] {
    let mut h = [[0u32; 256]; 3];
    for p in src.chunks_exact(channels) {
        for k in 0..channels {
            h[k][usize::from(p[k])] += 1;
        }
    }
    h
}

/// PIL's `ImageOps.autocontrast(cutoff=0)`, per channel: `lo -> 0`, `hi -> 255`, truncating.
fn autocontrast(src: &[u8], dst: &mut [u8], channels: usize) {
    let h = histograms(src, channels);
    let mut luts = [[0u8; 256]; 3];
    for k in 0..channels {
        let lo = h[k].iter().position(|&n| n > 0).unwrap_or(0);
        let hi = h[k].iter().rposition(|&n| n > 0).unwrap_or(255);
        for (i, v) in luts[k].iter_mut().enumerate() {
            *v = if hi <= lo {
                i as u8
            } else {
                let scale = 255.0 / (hi - lo) as f64;
                (i as f64 * scale - lo as f64 * scale).clamp(0.0, 255.0) as u8
            };
        }
    }
    point_per_channel(src, dst, channels, &luts);
}

/// PIL's `ImageOps.equalize`, per channel: `step = (n - count of the last used value) / 255`,
/// `lut[i] = (step / 2 + count below i) / step`, identity when `step` is 0.
fn equalize(src: &[u8], dst: &mut [u8], channels: usize) {
    let h = histograms(src, channels);
    let mut luts = [[0u8; 256]; 3];
    for k in 0..channels {
        let total: u32 = h[k].iter().sum();
        let last = h[k].iter().rev().copied().find(|&n| n > 0).unwrap_or(0);
        let step = (total - last) / 255;
        let mut n = step / 2;
        for (i, v) in luts[k].iter_mut().enumerate() {
            *v = match n.checked_div(step) {
                Some(q) => q.min(255) as u8,
                None => i as u8,
            };
            n += h[k][i];
        }
    }
    point_per_channel(src, dst, channels, &luts);
}

/// PIL's `ImageEnhance.Sharpness`: blend of the `SMOOTH` blur (kernel `[1 1 1; 1 5 1; 1 1 1] / 13`,
/// border pixels unfiltered) and the image, factor `f` (1 = original).
fn sharpness(src: &[u8], dst: &mut [u8], g: Geometry, f: f32) {
    let (h, w, c) = (g.height, g.width, g.channels);
    dst.copy_from_slice(src);
    if h < 3 || w < 3 {
        return;
    }
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            for k in 0..c {
                let at = |yy: usize, xx: usize| u32::from(src[(yy * w + xx) * c + k]);
                let mut sum = 4 * at(y, x);
                for yy in y - 1..=y + 1 {
                    for xx in x - 1..=x + 1 {
                        sum += at(yy, xx);
                    }
                }
                let blur = clip8(sum as f32 / 13.0);
                let i = (y * w + x) * c + k;
                dst[i] = blend(blur, src[i], f);
            }
        }
    }
}

/// Nearest-neighbour affine warp about the image centre: the output pixel centre `p` (relative
/// to the centre) reads the input at `m p + t`; outside the image reads [`FILL`]. In f64, as PIL.
fn affine(src: &[u8], dst: &mut [u8], g: Geometry, m: [f64; 4], t: [f64; 2]) {
    let (h, w, c) = (g.height, g.width, g.channels);
    let (hc, wc) = (h as f64 / 2.0, w as f64 / 2.0);
    for y in 0..h {
        let py = y as f64 + 0.5 - hc;
        for x in 0..w {
            let px = x as f64 + 0.5 - wc;
            let sx = (m[0] * px + m[1] * py + t[0] + wc).floor();
            let sy = (m[2] * px + m[3] * py + t[1] + hc).floor();
            let d = (y * w + x) * c;
            if sx >= 0.0 && sy >= 0.0 && (sx as usize) < w && (sy as usize) < h {
                let s = (sy as usize * w + sx as usize) * c;
                dst[d..d + c].copy_from_slice(&src[s..s + c]);
            } else {
                dst[d..d + c].fill(FILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    const fn g(height: usize, width: usize, channels: usize) -> Geometry {
        Geometry { height, width, channels }
    }

    fn aug(params: ImageAugParams, geometry: Geometry) -> ImageAugmenter {
        ImageAugmenter::new(params.check().unwrap(), geometry).unwrap()
    }

    fn ramp(geometry: Geometry) -> Vec<u8> {
        (0..geometry.len()).map(|i| (i * 37 % 251) as u8).collect()
    }

    #[test]
    fn defaults_pass_check() {
        assert!(ImageAugParams::default().check().is_ok());
    }

    #[test]
    fn flip_prob_must_be_in_0_1() {
        let p = ImageAugParams { flip_prob: 1.5, ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::FlipProb { .. })));
        let p = ImageAugParams { flip_prob: f32::NAN, ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::FlipProb { .. })));
    }

    #[test]
    fn translate_must_be_in_0_half() {
        let p = ImageAugParams { translate: 0.6, ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::Translate { .. })));
        let p = ImageAugParams { translate: -0.1, ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::Translate { .. })));
    }

    #[test]
    fn n_ops_must_not_exceed_op_count() {
        let p = ImageAugParams { n_ops: 15, ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::NOps { value: 15, max: 14 })));
    }

    #[test]
    fn cutout_must_be_in_0_1() {
        let p = ImageAugParams { cutout: 1.01, ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::Cutout { .. })));
    }

    #[test]
    fn cutmix_alpha_must_be_positive() {
        let p = ImageAugParams { cutmix_alpha: 0.0, ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::CutmixAlpha { .. })));
        let p = ImageAugParams { cutmix_alpha: f32::INFINITY, ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::CutmixAlpha { .. })));
    }

    #[test]
    fn rejects_bad_geometry_and_lengths() {
        let p = ImageAugParams::default().check().unwrap();
        assert!(matches!(ImageAugmenter::new(p, g(4, 4, 4)), Err(Error::ShapeMismatch { .. })));
        assert!(matches!(ImageAugmenter::new(p, g(0, 4, 3)), Err(Error::ShapeMismatch { .. })));
        let mut a = aug(ImageAugParams::default(), g(4, 4, 3));
        let mut rng = StdRng::seed_from_u64(0);
        let (src, mut dst) = (vec![0u8; 48], vec![0u8; 47]);
        assert!(matches!(a.weak_into(&src, &mut dst, &mut rng), Err(Error::ShapeMismatch { .. })));
        assert!(matches!(
            a.strong_into(&src[..47], &mut dst, &mut rng),
            Err(Error::ShapeMismatch { .. })
        ));
        let mut dst = vec![0u8; 48];
        assert!(matches!(
            a.cutmix_into(&src, &src[..47], &mut dst, &mut rng),
            Err(Error::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn reflect_matches_numpy_reflect() {
        // numpy.pad([0, 1, 2, 3], 3, mode="reflect") = [3, 2, 1, 0, 1, 2, 3, 2, 1, 0].
        let got: Vec<usize> = (-3..7).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
        assert_eq!(reflect(-5, 1), 0);
    }

    #[test]
    fn flip_twice_is_identity_and_zero_shift_is_identity() {
        let geo = g(5, 7, 3);
        let src = ramp(geo);
        let (mut once, mut twice) = (vec![0; geo.len()], vec![0; geo.len()]);
        flip_shift(&src, &mut once, geo, true, 0, 0);
        assert_ne!(once, src);
        assert_eq!(&once[0..3], &src[6 * 3..7 * 3]);
        flip_shift(&once, &mut twice, geo, true, 0, 0);
        assert_eq!(twice, src);
        flip_shift(&src, &mut once, geo, false, 0, 0);
        assert_eq!(once, src);
    }

    #[test]
    fn weak_with_no_flip_and_no_translate_is_identity() {
        let geo = g(6, 6, 1);
        let mut a =
            aug(ImageAugParams { flip_prob: 0.0, translate: 0.0, ..Default::default() }, geo);
        let src = ramp(geo);
        let mut dst = vec![0; geo.len()];
        a.weak_into(&src, &mut dst, &mut StdRng::seed_from_u64(3)).unwrap();
        assert_eq!(dst, src);
    }

    #[test]
    fn shift_reflects_at_the_border() {
        // One row [10, 20, 30, 40] shifted right by 2 with reflect padding: [30, 20, 10, 20].
        let geo = g(1, 4, 1);
        let mut dst = vec![0; 4];
        flip_shift(&[10, 20, 30, 40], &mut dst, geo, false, 0, 2);
        assert_eq!(dst, vec![30, 20, 10, 20]);
    }

    #[test]
    fn solarize_inverts_at_and_above_threshold() {
        // level 0.5 -> threshold 128 (PIL: i if i < threshold else 255 - i).
        let a = aug(ImageAugParams::default(), g(1, 4, 1));
        let mut dst = vec![0; 4];
        a.apply_op(RandOp::Solarize, 0.5, &[0, 127, 128, 255], &mut dst).unwrap();
        assert_eq!(dst, vec![0, 127, 127, 0]);
    }

    #[test]
    fn posterize_keeps_top_bits() {
        // level 0 -> 4 bits -> mask 0xF0.
        let a = aug(ImageAugParams::default(), g(1, 4, 1));
        let mut dst = vec![0; 4];
        a.apply_op(RandOp::Posterize, 0.0, &[0x1F, 0xFF, 0x80, 0x0F], &mut dst).unwrap();
        assert_eq!(dst, vec![0x10, 0xF0, 0x80, 0x00]);
        a.apply_op(RandOp::Posterize, 1.0, &[0x1F, 0xFF, 0x80, 0x0F], &mut dst).unwrap();
        assert_eq!(dst, vec![0x1F, 0xFF, 0x80, 0x0F]);
    }

    #[test]
    fn autocontrast_matches_hand_computed_lut() {
        // Channel 0 spans [64, 192]: scale 255/128, offset -127.5, truncated:
        // 64 -> 0, 128 -> int(127.5) = 127, 192 -> 255. Channel 1 is constant: identity.
        // Channel 2 spans [0, 255]: identity.
        let a = aug(ImageAugParams::default(), g(1, 3, 3));
        let src = [64, 9, 0, 128, 9, 100, 192, 9, 255];
        let mut dst = vec![0; 9];
        a.apply_op(RandOp::AutoContrast, 0.3, &src, &mut dst).unwrap();
        assert_eq!(dst, vec![0, 9, 0, 127, 9, 100, 255, 9, 255]);
    }

    #[test]
    fn equalize_matches_hand_computed_lut() {
        // 100 px of 0, 410 of 100, 510 of 200: step = (1020 - 510) / 255 = 2, n0 = 1:
        // 0 -> 1/2 = 0, 100 -> (1 + 100)/2 = 50, 200 -> (1 + 510)/2 = 255.
        let geo = g(34, 30, 1);
        let mut src = vec![0u8; 100];
        src.extend(std::iter::repeat_n(100u8, 410));
        src.extend(std::iter::repeat_n(200u8, 510));
        let a = aug(ImageAugParams::default(), geo);
        let mut dst = vec![0; geo.len()];
        a.apply_op(RandOp::Equalize, 0.0, &src, &mut dst).unwrap();
        assert!(dst[..100].iter().all(|&v| v == 0));
        assert!(dst[100..510].iter().all(|&v| v == 50));
        assert!(dst[510..].iter().all(|&v| v == 255));
        // Too few pixels for one step: identity, as in PIL.
        let a = aug(ImageAugParams::default(), g(1, 4, 1));
        let mut dst = vec![0; 4];
        a.apply_op(RandOp::Equalize, 0.0, &[0, 0, 128, 255], &mut dst).unwrap();
        assert_eq!(dst, vec![0, 0, 128, 255]);
    }

    #[test]
    fn enhance_ops_match_hand_values() {
        let a = aug(ImageAugParams::default(), g(1, 2, 3));
        let src = [200, 100, 0, 10, 10, 10];
        let mut dst = vec![0; 6];
        // Brightness at level 0.5 -> factor 0.5.
        a.apply_op(RandOp::Brightness, 0.5, &src, &mut dst).unwrap();
        assert_eq!(dst, vec![100, 50, 0, 5, 5, 5]);
        // Color at level 0.5 -> factor 0.5 around luma(200, 100, 0) = 118 (L24: 118.5 truncated).
        assert_eq!(luma(&src[..3]), 118);
        a.apply_op(RandOp::Color, 0.5, &src, &mut dst).unwrap();
        assert_eq!(dst, vec![159, 109, 59, 10, 10, 10]);
        // Contrast at level 0.5 -> factor 0.5 around the rounded mean luma (118 + 10) / 2 = 64.
        a.apply_op(RandOp::Contrast, 0.5, &src, &mut dst).unwrap();
        assert_eq!(dst, vec![132, 82, 32, 37, 37, 37]);
    }

    #[test]
    fn geometric_ops_at_zero_magnitude_are_identity() {
        let geo = g(6, 8, 3);
        let a = aug(ImageAugParams::default(), geo);
        let src = ramp(geo);
        let mut dst = vec![0; geo.len()];
        for op in [RandOp::Rotate, RandOp::ShearX, RandOp::ShearY, RandOp::TranslateX] {
            a.apply_op(op, 0.5, &src, &mut dst).unwrap();
            assert_eq!(dst, src, "{op:?}");
        }
        a.apply_op(RandOp::TranslateY, 0.5, &src, &mut dst).unwrap();
        assert_eq!(dst, src);
    }

    #[test]
    fn translate_x_shifts_and_fills_gray() {
        // level 1 -> +0.3 * 10 = 3 pixels to the right.
        let geo = g(1, 10, 1);
        let a = aug(ImageAugParams::default(), geo);
        let src: Vec<u8> = (0..10).collect();
        let mut dst = vec![0; 10];
        a.apply_op(RandOp::TranslateX, 1.0, &src, &mut dst).unwrap();
        assert_eq!(dst, vec![FILL, FILL, FILL, 0, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn rotate_keeps_the_centre_pixel() {
        // Rotation by 30 degrees about the centre keeps the centre pixel of an odd-sized image.
        let geo = g(5, 5, 1);
        let a = aug(ImageAugParams::default(), geo);
        let src = ramp(geo);
        let mut dst = vec![0; geo.len()];
        a.apply_op(RandOp::Rotate, 1.0, &src, &mut dst).unwrap();
        assert_eq!(dst[12], src[12]);
        assert_ne!(dst, src);
    }

    #[test]
    fn sharpness_blurs_interior_only() {
        // 3x3 gray with a bright centre: SMOOTH gives (5*130 + 8*0) / 13 = 50 at the centre;
        // factor 0.05 (level 0) -> 50 + 0.05 * (130 - 50) = 54. Border pixels stay.
        let a = aug(ImageAugParams::default(), g(3, 3, 1));
        let src = [0, 0, 0, 0, 130, 0, 0, 0, 0];
        let mut dst = vec![0; 9];
        a.apply_op(RandOp::Sharpness, 0.0, &src, &mut dst).unwrap();
        assert_eq!(dst, vec![0, 0, 0, 0, 54, 0, 0, 0, 0]);
    }

    #[test]
    fn cutout_fills_clipped_square() {
        let geo = g(4, 4, 1);
        let mut img = vec![0u8; 16];
        cutout(&mut img, geo, 0, 0, 2);
        // Centre (0, 0), side 2: rows 0..2 x cols 0..2.
        let expect: Vec<u8> =
            (0..16).map(|i| if i / 4 < 2 && i % 4 < 2 { FILL } else { 0 }).collect();
        assert_eq!(img, expect);
    }

    #[test]
    fn cutmix_lambda_equals_one_minus_box_fraction() {
        let geo = g(16, 12, 3);
        let mut a = aug(ImageAugParams::default(), geo);
        let (x, y) = (vec![0u8; geo.len()], vec![255u8; geo.len()]);
        let mut dst = vec![0; geo.len()];
        let mut rng = StdRng::seed_from_u64(11);
        let mut lambdas = Vec::new();
        for _ in 0..200 {
            let lambda = a.cutmix_into(&x, &y, &mut dst, &mut rng).unwrap();
            let from_b = dst.iter().filter(|&&v| v == 255).count() as f32 / geo.len() as f32;
            assert!((lambda - (1.0 - from_b)).abs() < 1e-6, "{lambda} vs {from_b}");
            assert!((0.0..=1.0).contains(&lambda));
            lambdas.push(lambda);
        }
        // Beta(1, 1) before clipping: the mean of the clipped lambda sits at or above 0.5.
        let mean = lambdas.iter().sum::<f32>() / lambdas.len() as f32;
        assert!((0.45..0.8).contains(&mean), "{mean}");
    }

    #[test]
    fn views_preserve_shape_and_are_seeded() {
        for geo in [g(32, 32, 3), g(28, 28, 1), g(7, 13, 3)] {
            let mut a = aug(ImageAugParams::default(), geo);
            let src = ramp(geo);
            let run = |a: &mut ImageAugmenter, seed: u64, strong: bool| {
                let mut rng = StdRng::seed_from_u64(seed);
                let mut out = vec![0u8; geo.len()];
                for _ in 0..5 {
                    if strong {
                        a.strong_into(&src, &mut out, &mut rng).unwrap();
                    } else {
                        a.weak_into(&src, &mut out, &mut rng).unwrap();
                    }
                }
                out
            };
            for strong in [false, true] {
                let first = run(&mut a, 42, strong);
                assert_eq!(first.len(), geo.len());
                assert_eq!(first, run(&mut a, 42, strong), "same seed, same view");
                assert_ne!(first, run(&mut a, 43, strong), "different seed, different view");
            }
        }
    }

    #[test]
    fn every_op_runs_on_gray_and_rgb_at_extreme_levels() {
        for geo in [g(9, 11, 1), g(9, 11, 3), g(1, 1, 3)] {
            let a = aug(ImageAugParams::default(), geo);
            let src = ramp(geo);
            let mut dst = vec![0; geo.len()];
            for op in RandOp::ALL {
                for level in [0.0, 0.37, 1.0] {
                    a.apply_op(op, level, &src, &mut dst).unwrap();
                }
            }
        }
    }

    // Oracle: Pillow 13.0.0 (`ImageOps` / `ImageEnhance`) on this 4x5 RGB image, level 0.77
    // (factor 0.05 + 0.9 * 0.77 in f32, solarize threshold 197, posterize 7 bits).
    const GOLDEN_SRC: [u8; 60] = [
        153, 216, 188, 61, 79, 210, 11, 198, 193, 117, 79, 74, 68, 112, 126, 137, 238, 192, 153,
        237, 59, 46, 150, 20, 18, 128, 117, 220, 154, 128, 124, 66, 12, 54, 169, 56, 94, 10, 200,
        45, 71, 212, 127, 204, 157, 180, 31, 134, 126, 210, 93, 147, 23, 99, 84, 44, 197, 97, 235,
        145,
    ];
    const GOLDEN: [(RandOp, [u8; 60]); 8] = [
        (
            RandOp::AutoContrast,
            [
                173, 230, 224, 61, 77, 252, 0, 210, 230, 129, 77, 79, 69, 114, 145, 153, 255, 229,
                173, 253, 59, 42, 156, 10, 8, 131, 133, 255, 161, 147, 137, 62, 0, 52, 177, 56,
                101, 0, 239, 41, 68, 254, 141, 216, 184, 206, 23, 155, 140, 223, 103, 165, 14, 110,
                89, 38, 235, 104, 251, 169,
            ],
        ),
        (
            RandOp::Equalize,
            [
                153, 216, 188, 61, 79, 210, 11, 198, 193, 117, 79, 74, 68, 112, 126, 137, 238, 192,
                153, 237, 59, 46, 150, 20, 18, 128, 117, 220, 154, 128, 124, 66, 12, 54, 169, 56,
                94, 10, 200, 45, 71, 212, 127, 204, 157, 180, 31, 134, 126, 210, 93, 147, 23, 99,
                84, 44, 197, 97, 235, 145,
            ],
        ),
        (
            RandOp::Solarize,
            [
                153, 39, 188, 61, 79, 45, 11, 57, 193, 117, 79, 74, 68, 112, 126, 137, 17, 192,
                153, 18, 59, 46, 150, 20, 18, 128, 117, 35, 154, 128, 124, 66, 12, 54, 169, 56, 94,
                10, 55, 45, 71, 43, 127, 51, 157, 180, 31, 134, 126, 45, 93, 147, 23, 99, 84, 44,
                58, 97, 20, 145,
            ],
        ),
        (
            RandOp::Color,
            [
                163, 210, 189, 68, 81, 178, 44, 183, 179, 110, 81, 78, 76, 108, 119, 153, 229, 194,
                163, 225, 93, 60, 138, 41, 37, 119, 111, 207, 158, 139, 111, 68, 28, 71, 156, 72,
                84, 22, 163, 53, 73, 177, 139, 196, 161, 156, 45, 121, 137, 200, 113, 126, 34, 91,
                81, 51, 165, 119, 221, 154,
            ],
        ),
        (
            RandOp::Posterize,
            [
                152, 216, 188, 60, 78, 210, 10, 198, 192, 116, 78, 74, 68, 112, 126, 136, 238, 192,
                152, 236, 58, 46, 150, 20, 18, 128, 116, 220, 154, 128, 124, 66, 12, 54, 168, 56,
                94, 10, 200, 44, 70, 212, 126, 204, 156, 180, 30, 134, 126, 210, 92, 146, 22, 98,
                84, 44, 196, 96, 234, 144,
            ],
        ),
        (
            RandOp::Contrast,
            [
                145, 192, 171, 77, 90, 187, 40, 178, 175, 118, 90, 86, 82, 115, 125, 133, 208, 174,
                145, 207, 75, 66, 143, 46, 45, 126, 118, 195, 146, 126, 124, 80, 40, 71, 157, 73,
                101, 39, 180, 65, 84, 189, 126, 183, 148, 165, 54, 131, 125, 187, 100, 141, 48,
                105, 94, 64, 178, 103, 206, 139,
            ],
        ),
        (
            RandOp::Brightness,
            [
                113, 160, 139, 45, 58, 156, 8, 147, 143, 86, 58, 54, 50, 83, 93, 101, 176, 142,
                113, 176, 43, 34, 111, 14, 13, 95, 86, 163, 114, 95, 92, 49, 8, 40, 125, 41, 69, 7,
                148, 33, 52, 157, 94, 151, 116, 133, 23, 99, 93, 156, 69, 109, 17, 73, 62, 32, 146,
                72, 174, 107,
            ],
        ),
        (
            RandOp::Sharpness,
            [
                153, 216, 188, 61, 79, 210, 11, 198, 193, 117, 79, 74, 68, 112, 126, 137, 238, 192,
                142, 221, 70, 49, 145, 39, 29, 126, 120, 220, 154, 128, 124, 66, 12, 65, 161, 63,
                92, 28, 185, 54, 78, 199, 127, 204, 157, 180, 31, 134, 126, 210, 93, 147, 23, 99,
                84, 44, 197, 97, 235, 145,
            ],
        ),
    ];

    #[test]
    fn photometric_ops_match_pillow_golden() {
        let a = aug(ImageAugParams::default(), g(4, 5, 3));
        let mut dst = [0u8; 60];
        for (op, want) in GOLDEN {
            a.apply_op(op, 0.77, &GOLDEN_SRC, &mut dst).unwrap();
            assert_eq!(dst, want, "{op:?}");
        }
    }
}
