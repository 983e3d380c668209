//! Weak and strong views of `f32` sensor windows (`[T, C]`, time-major).
//!
//! The ops are those of Um et al. 2017 ("Data augmentation of wearable sensor data for
//! Parkinson's disease monitoring using convolutional neural networks", ICMI; arXiv 1706.00527)
//! with the default magnitudes of Iwana & Uchida's reference implementation
//! (`uchidalab/time_series_augmentation`, `utils/augmentation.py`; "An empirical survey of data
//! augmentation for time series classification with neural networks", PLOS ONE 2021):
//!
//! | op | what | default | source |
//! |---|---|---|---|
//! | jitter | `+ N(0, sigma^2)` per value | sigma 0.03 | Iwana & Uchida `jitter(sigma=0.03)` |
//! | scaling | `x N(1, sigma^2)` per channel | sigma 0.1 | Iwana & Uchida `scaling(sigma=0.1)` |
//! | magnitude warp | `x` a smooth curve through `knots + 2` points `~ N(1, sigma^2)`, per channel | sigma 0.2, 4 knots | `magnitude_warp(sigma=0.2, knot=4)` |
//! | time warp | resample at a smooth monotone time map, linear interpolation | sigma 0.2, 4 knots | `time_warp(sigma=0.2, knot=4)` |
//! | permutation | cut into 2..=`max_segments` equal segments, shuffle them | 5 | `permutation(max_segments=5)` |
//! | channel dropout | zero each channel with probability `p` (one always survives) | 0.2 | our choice |
//! | rotation | one uniform random 3-D rotation applied to every channel triplet | accel + gyro | Um et al. (rotation) |
//!
//! The sigmas are absolute: they assume windows standardized per channel (zero mean, unit
//! variance over the training set), as in the reference implementation. On raw units (m/s^2,
//! rad/s), standardize first or scale the sigmas. Channel dropout zeroes a channel, which is
//! its mean after standardization.
//!
//! Deviations from the reference code, each deliberate: the smooth curves are uniform
//! Catmull-Rom splines through the knots (C1, no linear solve, no allocation) instead of scipy's
//! not-a-knot cubic spline; the time warp integrates positive knot speeds so the map is monotone
//! by construction (the reference's spline of `knot positions x N(1, sigma)` can fold back), and
//! one warp is shared by all channels so the sensors stay synchronized; the permutation draws
//! 2..=`max_segments` segments (the reference's `randint(1, max_segments)` draws 1..=4, where 1 is
//! the identity).

use rand::Rng;
use rand_distr::StandardNormal;

use super::{Checked, ParamsError, choose_distinct, non_negative, unit_interval};
use crate::error::{Error, Result, check_finite};

/// Which channels the rotation op rotates, as triplets `[x, y, z]` of channel indices.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Rotation {
    /// `[0, 1, 2]` and `[3, 4, 5]` when `C >= 6` (accelerometer and gyroscope), `[0, 1, 2]` when
    /// `3 <= C < 6`, none when `C < 3`.
    #[default]
    Auto,
    /// No rotation: the op is left out of the strong view's pool.
    Off,
    /// These triplets, all rotated by the same rotation. An empty list is [`Rotation::Off`].
    Triplets(Vec<[usize; 3]>),
}

/// Parameters of [`SensorAugmenter`]; see the [module docs](self) for the sources of the
/// defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorAugParams {
    /// Standard deviation of the additive Gaussian jitter (weak view). Default 0.03.
    pub jitter_sigma: f32,
    /// Standard deviation of the per-channel scale factor around 1 (weak view). Default 0.1.
    pub scale_sigma: f32,
    /// Standard deviation of the magnitude-warp knots around 1. Default 0.2.
    pub magnitude_warp_sigma: f32,
    /// Standard deviation of the time-warp knot speeds around 1. Default 0.2.
    pub time_warp_sigma: f32,
    /// Interior knots of both warps (the curves pass through `knots + 2` evenly spaced points,
    /// ends included), >= 1. Default 4.
    pub knots: usize,
    /// Largest number of segments of the permutation op, >= 1 (1 disables it). Default 5.
    pub max_segments: usize,
    /// Probability of zeroing each channel in the channel-dropout op, in `[0, 1)`. Default 0.2
    /// (our choice: about one channel of six; no published default).
    pub channel_dropout: f32,
    /// Strong ops per strong view, drawn without replacement from [`SensorOp::ALL`] (rotation
    /// only when there is a triplet), at most 5. Default 2, as RandAugment's `N` in FixMatch.
    pub n_ops: usize,
    /// The channel triplets the rotation op rotates. Default [`Rotation::Auto`].
    pub rotation: Rotation,
}

impl Default for SensorAugParams {
    fn default() -> Self {
        Self {
            jitter_sigma: 0.03,
            scale_sigma: 0.1,
            magnitude_warp_sigma: 0.2,
            time_warp_sigma: 0.2,
            knots: 4,
            max_segments: 5,
            channel_dropout: 0.2,
            n_ops: 2,
            rotation: Rotation::Auto,
        }
    }
}

impl SensorAugParams {
    /// Validates the parameters (rotation channel ranges are checked by
    /// [`SensorAugmenter::new`], which knows the channel count).
    ///
    /// # Errors
    /// One [`ParamsError`] per rule: [`JitterSigma`](ParamsError::JitterSigma),
    /// [`ScaleSigma`](ParamsError::ScaleSigma),
    /// [`MagnitudeWarpSigma`](ParamsError::MagnitudeWarpSigma),
    /// [`TimeWarpSigma`](ParamsError::TimeWarpSigma), [`Knots`](ParamsError::Knots),
    /// [`MaxSegments`](ParamsError::MaxSegments),
    /// [`ChannelDropout`](ParamsError::ChannelDropout),
    /// [`SensorNOps`](ParamsError::SensorNOps),
    /// [`TripletRepeatsChannel`](ParamsError::TripletRepeatsChannel),
    /// [`TripletsOverlap`](ParamsError::TripletsOverlap).
    pub fn check(self) -> std::result::Result<Checked<Self>, ParamsError> {
        non_negative(self.jitter_sigma, |value| ParamsError::JitterSigma { value })?;
        non_negative(self.scale_sigma, |value| ParamsError::ScaleSigma { value })?;
        non_negative(self.magnitude_warp_sigma, |value| ParamsError::MagnitudeWarpSigma { value })?;
        non_negative(self.time_warp_sigma, |value| ParamsError::TimeWarpSigma { value })?;
        if self.knots == 0 {
            return Err(ParamsError::Knots { value: self.knots });
        }
        if self.max_segments == 0 {
            return Err(ParamsError::MaxSegments { value: self.max_segments });
        }
        unit_interval(self.channel_dropout, false, |value| ParamsError::ChannelDropout { value })?;
        if self.n_ops > SensorOp::ALL.len() {
            return Err(ParamsError::SensorNOps { value: self.n_ops, max: SensorOp::ALL.len() });
        }
        if let Rotation::Triplets(triplets) = &self.rotation {
            for (i, t) in triplets.iter().enumerate() {
                if t[0] == t[1] || t[1] == t[2] || t[0] == t[2] {
                    return Err(ParamsError::TripletRepeatsChannel { triplet: *t });
                }
                for other in &triplets[..i] {
                    if let Some(&channel) = t.iter().find(|c| other.contains(c)) {
                        return Err(ParamsError::TripletsOverlap { channel });
                    }
                }
            }
        }
        Ok(Checked(self))
    }
}

/// One strong sensor op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SensorOp {
    /// Multiplies each channel by its own smooth random curve.
    MagnitudeWarp,
    /// Resamples all channels at one smooth monotone random time map.
    TimeWarp,
    /// Shuffles equal-length time segments.
    Permutation,
    /// Zeroes random channels.
    ChannelDropout,
    /// Rotates each channel triplet by one uniform random rotation.
    Rotation,
}

impl SensorOp {
    /// All strong ops, in pool order.
    pub const ALL: [SensorOp; 5] = [
        SensorOp::MagnitudeWarp,
        SensorOp::TimeWarp,
        SensorOp::Permutation,
        SensorOp::ChannelDropout,
        SensorOp::Rotation,
    ];
}

/// Speeds below this are clamped in the time warp, keeping the time map strictly increasing.
const MIN_SPEED: f32 = 0.1;

/// Builds weak and strong views of windows of `steps x channels` values.
///
/// Owns its scratch (a window, the spline knots, the time map, per-channel factors), allocated
/// in [`SensorAugmenter::new`]; the `*_into` methods allocate nothing.
#[derive(Debug, Clone)]
pub struct SensorAugmenter {
    params: SensorAugParams,
    steps: usize,
    channels: usize,
    triplets: Vec<[usize; 3]>,
    scratch: Vec<f32>,
    knots: Vec<f32>,
    warp: Vec<f32>,
    per_channel: Vec<f32>,
    order: Vec<usize>,
}

impl SensorAugmenter {
    /// Builds an augmenter for windows of `steps x channels` values.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] if `steps` or `channels` is zero;
    /// [`ParamsError::TripletOutOfRange`] (as [`Error::AugmentParams`]) if a rotation
    /// triplet names a channel `>= channels`.
    ///
    /// # Examples
    /// ```
    /// use edge_ssl::augment::sensor::{SensorAugParams, SensorAugmenter};
    /// use rand::{SeedableRng, rngs::StdRng};
    /// # fn main() -> edge_ssl::Result<()> {
    /// let mut aug = SensorAugmenter::new(SensorAugParams::default().check()?, 128, 6)?;
    /// let window = vec![0.5f32; 128 * 6];
    /// let mut view = vec![0.0; 128 * 6];
    /// aug.strong_into(&window, &mut view, &mut StdRng::seed_from_u64(0))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(params: Checked<SensorAugParams>, steps: usize, channels: usize) -> Result<Self> {
        if steps == 0 {
            return Err(Error::InvalidParam { name: "steps", reason: "must be >= 1".into() });
        }
        if channels == 0 {
            return Err(Error::InvalidParam { name: "channels", reason: "must be >= 1".into() });
        }
        let params = params.get().clone();
        let triplets = match &params.rotation {
            Rotation::Auto if channels >= 6 => vec![[0, 1, 2], [3, 4, 5]],
            Rotation::Auto if channels >= 3 => vec![[0, 1, 2]],
            Rotation::Auto | Rotation::Off => Vec::new(),
            Rotation::Triplets(t) => {
                if let Some(triplet) = t.iter().find(|t| t.iter().any(|&c| c >= channels)) {
                    return Err(
                        ParamsError::TripletOutOfRange { triplet: *triplet, channels }.into()
                    );
                }
                t.clone()
            }
        };
        Ok(Self {
            steps,
            channels,
            triplets,
            scratch: vec![0.0; steps * channels],
            knots: vec![0.0; (params.knots + 2) * channels],
            warp: vec![0.0; steps],
            per_channel: vec![0.0; channels],
            order: vec![0; params.max_segments],
            params,
        })
    }

    /// The parameters this augmenter was built with.
    pub fn params(&self) -> &SensorAugParams {
        &self.params
    }

    /// The channel triplets the rotation op rotates (resolved from [`Rotation`]).
    pub fn triplets(&self) -> &[[usize; 3]] {
        &self.triplets
    }

    /// Writes the weak view of `src` into `dst`: each channel scaled by its own `N(1,
    /// scale_sigma^2)` factor, plus `N(0, jitter_sigma^2)` noise on every value.
    ///
    /// # Shapes
    /// `src: [T, C]` -> `dst: [T, C]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if a buffer length is not `T * C`; [`Error::NonFinite`] if `src`
    /// holds NaN or infinity.
    pub fn weak_into<R: Rng + ?Sized>(
        &mut self,
        src: &[f32],
        dst: &mut [f32],
        rng: &mut R,
    ) -> Result<()> {
        self.check_io("SensorAugmenter::weak_into", src, dst)?;
        self.weak(src, dst, rng);
        Ok(())
    }

    /// Writes the strong view of `src` into `dst`: the weak view, then `n_ops` distinct ops
    /// drawn from [`SensorOp::ALL`] (without [`SensorOp::Rotation`] when no triplet rotates;
    /// all of them if fewer than `n_ops` are available), applied in the drawn order.
    ///
    /// # Shapes
    /// `src: [T, C]` -> `dst: [T, C]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if a buffer length is not `T * C`; [`Error::NonFinite`] if `src`
    /// holds NaN or infinity.
    pub fn strong_into<R: Rng + ?Sized>(
        &mut self,
        src: &[f32],
        dst: &mut [f32],
        rng: &mut R,
    ) -> Result<()> {
        self.check_io("SensorAugmenter::strong_into", src, dst)?;
        self.weak(src, dst, rng);
        let mut pool = [0u8, 1, 2, 3, 4];
        let available = if self.triplets.is_empty() { 4 } else { 5 };
        let k = self.params.n_ops.min(available);
        choose_distinct(&mut pool[..available], k, rng);
        for &i in &pool[..k] {
            // Each op reads `dst` through the scratch window and writes `dst`.
            self.scratch.copy_from_slice(dst);
            self.apply(SensorOp::ALL[usize::from(i)], dst, rng);
        }
        Ok(())
    }

    /// Writes `op` applied to `src` into `dst` (no jitter or scaling): the building block of
    /// [`SensorAugmenter::strong_into`], for tests and custom pipelines.
    ///
    /// # Shapes
    /// `src: [T, C]` -> `dst: [T, C]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if a buffer length is not `T * C`; [`Error::NonFinite`] if `src`
    /// holds NaN or infinity.
    pub fn op_into<R: Rng + ?Sized>(
        &mut self,
        op: SensorOp,
        src: &[f32],
        dst: &mut [f32],
        rng: &mut R,
    ) -> Result<()> {
        self.check_io("SensorAugmenter::op_into", src, dst)?;
        self.scratch.copy_from_slice(src);
        self.apply(op, dst, rng);
        Ok(())
    }

    fn check_io(&self, op: &'static str, src: &[f32], dst: &[f32]) -> Result<()> {
        let n = self.steps * self.channels;
        if src.len() != n || dst.len() != n {
            return Err(Error::ShapeMismatch {
                op,
                expected: format!(
                    "[{}, {}] = {n} values for src and dst",
                    self.steps, self.channels
                ),
                got: format!("src {} values, dst {} values", src.len(), dst.len()),
            });
        }
        check_finite(op, src)
    }

    fn weak<R: Rng + ?Sized>(&mut self, src: &[f32], dst: &mut [f32], rng: &mut R) {
        let (jitter, scale) = (self.params.jitter_sigma, self.params.scale_sigma);
        for s in &mut self.per_channel {
            *s = 1.0 + scale * rng.sample::<f32, _>(StandardNormal);
        }
        for (s_row, d_row) in
            src.chunks_exact(self.channels).zip(dst.chunks_exact_mut(self.channels))
        {
            for ((s, d), f) in s_row.iter().zip(d_row.iter_mut()).zip(&self.per_channel) {
                *d = s * f + jitter * rng.sample::<f32, _>(StandardNormal);
            }
        }
    }

    /// Applies `op` to the window in `self.scratch`, writing `dst`.
    fn apply<R: Rng + ?Sized>(&mut self, op: SensorOp, dst: &mut [f32], rng: &mut R) {
        let (t_len, c_len) = (self.steps, self.channels);
        let src = &self.scratch;
        match op {
            SensorOp::MagnitudeWarp => {
                let sigma = self.params.magnitude_warp_sigma;
                for k in &mut self.knots {
                    *k = 1.0 + sigma * rng.sample::<f32, _>(StandardNormal);
                }
                let n_knots = self.params.knots + 2;
                for t in 0..t_len {
                    let u = knot_position(t, t_len, n_knots);
                    for c in 0..c_len {
                        let curve = catmull_rom(&self.knots, c_len, c, u);
                        dst[t * c_len + c] = src[t * c_len + c] * curve;
                    }
                }
            }
            SensorOp::TimeWarp => {
                let sigma = self.params.time_warp_sigma;
                let n_knots = self.params.knots + 2;
                let speeds = &mut self.knots[..n_knots];
                for k in speeds.iter_mut() {
                    *k = 1.0 + sigma * rng.sample::<f32, _>(StandardNormal);
                }
                time_warp_map(speeds, &mut self.warp);
                for (t, &tau) in self.warp.iter().enumerate() {
                    let i = (tau.floor() as usize).min(t_len.saturating_sub(2));
                    let f = tau - i as f32;
                    let j = (i + 1).min(t_len - 1);
                    for c in 0..c_len {
                        let (a, b) = (src[i * c_len + c], src[j * c_len + c]);
                        dst[t * c_len + c] = a * (1.0 - f) + b * f;
                    }
                }
            }
            SensorOp::Permutation => {
                let max = self.params.max_segments.min(t_len);
                let n = if max >= 2 { rng.random_range(2..=max) } else { 1 };
                let order = &mut self.order[..n];
                for (i, o) in order.iter_mut().enumerate() {
                    *o = i;
                }
                for i in (1..n).rev() {
                    order.swap(i, rng.random_range(0..=i));
                }
                // numpy.array_split: the first `t_len % n` segments are one step longer.
                let (base, extra) = (t_len / n, t_len % n);
                let mut at = 0;
                for &seg in order.iter() {
                    let start = seg * base + seg.min(extra);
                    let len = base + usize::from(seg < extra);
                    dst[at * c_len..(at + len) * c_len]
                        .copy_from_slice(&src[start * c_len..(start + len) * c_len]);
                    at += len;
                }
            }
            SensorOp::ChannelDropout => {
                let p = f64::from(self.params.channel_dropout);
                let mut kept = 0;
                for k in &mut self.per_channel {
                    let keep = !rng.random_bool(p);
                    kept += usize::from(keep);
                    *k = if keep { 1.0 } else { 0.0 };
                }
                if kept == 0 {
                    self.per_channel[rng.random_range(0..c_len)] = 1.0;
                }
                for (s_row, d_row) in src.chunks_exact(c_len).zip(dst.chunks_exact_mut(c_len)) {
                    for ((s, d), &keep) in s_row.iter().zip(d_row.iter_mut()).zip(&self.per_channel)
                    {
                        *d = if keep > 0.0 { *s } else { 0.0 };
                    }
                }
            }
            SensorOp::Rotation => {
                dst.copy_from_slice(src);
                if self.triplets.is_empty() {
                    return;
                }
                let r = random_rotation(rng);
                for row in dst.chunks_exact_mut(c_len) {
                    for t in &self.triplets {
                        let v = [row[t[0]], row[t[1]], row[t[2]]];
                        for (i, &c) in t.iter().enumerate() {
                            row[c] = r[i][0] * v[0] + r[i][1] * v[1] + r[i][2] * v[2];
                        }
                    }
                }
            }
        }
    }
}

/// Position of step `t` of `t_len` on the knot axis `[0, n_knots - 1]` (knots evenly spaced over
/// the window, ends included).
fn knot_position(t: usize, t_len: usize, n_knots: usize) -> f32 {
    if t_len <= 1 { 0.0 } else { t as f32 * (n_knots - 1) as f32 / (t_len - 1) as f32 }
}

/// Uniform Catmull-Rom spline through the knots `values[k * stride + offset]`, evaluated at `u`
/// in `[0, n - 1]`; the end tangents use the duplicated end knot. Passes through every knot.
fn catmull_rom(values: &[f32], stride: usize, offset: usize, u: f32) -> f32 {
    let n = values.len() / stride;
    let at = |k: usize| values[k.min(n - 1) * stride + offset];
    let i = (u.floor() as usize).min(n - 2);
    let f = u - i as f32;
    let (p0, p1, p2, p3) = (at(i.saturating_sub(1)), at(i), at(i + 1), at(i + 2));
    0.5 * (2.0 * p1
        + (p2 - p0) * f
        + (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3) * f * f
        + (3.0 * p1 - p0 - 3.0 * p2 + p3) * f * f * f)
}

/// Fills `warp[t]` with a monotone time map from `0` to `T - 1`: the trapezoid integral of the
/// speed curve through `speeds` (clamped to [`MIN_SPEED`]), rescaled to end at `T - 1`. All
/// speeds 1 gives exactly `warp[t] = t`.
fn time_warp_map(speeds: &[f32], warp: &mut [f32]) {
    let t_len = warp.len();
    let speed = |t: usize| catmull_rom(speeds, 1, 0, knot_position(t, t_len, speeds.len()));
    let mut prev = speed(0).max(MIN_SPEED);
    let mut acc = 0.0;
    warp[0] = 0.0;
    for (t, w) in warp.iter_mut().enumerate().skip(1) {
        let s = speed(t).max(MIN_SPEED);
        acc += 0.5 * (prev + s);
        *w = acc;
        prev = s;
    }
    if t_len > 1 {
        let scale = (t_len - 1) as f32 / acc;
        for w in warp.iter_mut() {
            *w = (*w * scale).min((t_len - 1) as f32);
        }
    }
}

/// A uniformly random 3-D rotation matrix (Haar measure on SO(3)), from a uniform random unit
/// quaternion (Shoemake 1992, "Uniform random rotations", Graphics Gems III).
pub fn random_rotation<R: Rng + ?Sized>(rng: &mut R) -> [[f32; 3]; 3] {
    let (u1, u2, u3): (f64, f64, f64) = (rng.random(), rng.random(), rng.random());
    let tau = std::f64::consts::TAU;
    let (a, b) = ((1.0 - u1).sqrt(), u1.sqrt());
    let (x, y, z, w) =
        (a * (tau * u2).sin(), a * (tau * u2).cos(), b * (tau * u3).sin(), b * (tau * u3).cos());
    let m = [
        [1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - z * w), 2.0 * (x * z + y * w)],
        [2.0 * (x * y + z * w), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - x * w)],
        [2.0 * (x * z - y * w), 2.0 * (y * z + x * w), 1.0 - 2.0 * (x * x + y * y)],
    ];
    m.map(|row| row.map(|v| v as f32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    fn aug(params: SensorAugParams, steps: usize, channels: usize) -> SensorAugmenter {
        SensorAugmenter::new(params.check().unwrap(), steps, channels).unwrap()
    }

    fn window(steps: usize, channels: usize) -> Vec<f32> {
        (0..steps * channels)
            .map(|i| {
                ((i / channels) as f32 * 0.1 + (i % channels) as f32).sin() + 0.1 * (i % 7) as f32
            })
            .collect()
    }

    #[test]
    fn defaults_pass_check() {
        assert!(SensorAugParams::default().check().is_ok());
    }

    #[test]
    fn jitter_sigma_must_be_non_negative() {
        let p = SensorAugParams { jitter_sigma: -0.1, ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::JitterSigma { .. })));
        let p = SensorAugParams { jitter_sigma: f32::NAN, ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::JitterSigma { .. })));
    }

    #[test]
    fn scale_sigma_must_be_non_negative() {
        let p = SensorAugParams { scale_sigma: -1.0, ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::ScaleSigma { .. })));
    }

    #[test]
    fn magnitude_warp_sigma_must_be_non_negative() {
        let p = SensorAugParams { magnitude_warp_sigma: f32::INFINITY, ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::MagnitudeWarpSigma { .. })));
    }

    #[test]
    fn time_warp_sigma_must_be_non_negative() {
        let p = SensorAugParams { time_warp_sigma: -0.2, ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::TimeWarpSigma { .. })));
    }

    #[test]
    fn knots_must_be_positive() {
        let p = SensorAugParams { knots: 0, ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::Knots { value: 0 })));
    }

    #[test]
    fn max_segments_must_be_positive() {
        let p = SensorAugParams { max_segments: 0, ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::MaxSegments { value: 0 })));
    }

    #[test]
    fn channel_dropout_must_be_in_0_1() {
        let p = SensorAugParams { channel_dropout: 1.0, ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::ChannelDropout { .. })));
    }

    #[test]
    fn sensor_n_ops_must_not_exceed_op_count() {
        let p = SensorAugParams { n_ops: 6, ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::SensorNOps { value: 6, max: 5 })));
    }

    #[test]
    fn triplet_must_not_repeat_a_channel() {
        let p =
            SensorAugParams { rotation: Rotation::Triplets(vec![[0, 1, 1]]), ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::TripletRepeatsChannel { .. })));
    }

    #[test]
    fn triplets_must_not_overlap() {
        let rotation = Rotation::Triplets(vec![[0, 1, 2], [2, 3, 4]]);
        let p = SensorAugParams { rotation, ..Default::default() };
        assert!(matches!(p.check(), Err(ParamsError::TripletsOverlap { channel: 2 })));
    }

    #[test]
    fn triplet_must_be_in_range() {
        let rotation = Rotation::Triplets(vec![[3, 4, 5]]);
        let p = SensorAugParams { rotation, ..Default::default() }.check().unwrap();
        assert!(matches!(
            SensorAugmenter::new(p, 10, 5),
            Err(Error::AugmentParams(ParamsError::TripletOutOfRange { channels: 5, .. }))
        ));
    }

    #[test]
    fn rejects_empty_windows_bad_lengths_and_nan() {
        let p = SensorAugParams::default().check().unwrap();
        assert!(matches!(
            SensorAugmenter::new(p.clone(), 0, 3),
            Err(Error::InvalidParam { name: "steps", .. })
        ));
        assert!(matches!(
            SensorAugmenter::new(p, 4, 0),
            Err(Error::InvalidParam { name: "channels", .. })
        ));
        let mut a = aug(SensorAugParams::default(), 4, 3);
        let mut rng = StdRng::seed_from_u64(0);
        let mut dst = vec![0.0; 12];
        assert!(matches!(
            a.weak_into(&[0.0; 11], &mut dst, &mut rng),
            Err(Error::ShapeMismatch { .. })
        ));
        let mut src = vec![0.0; 12];
        src[5] = f32::NAN;
        assert!(matches!(
            a.strong_into(&src, &mut dst, &mut rng),
            Err(Error::NonFinite { index: 5, .. })
        ));
        assert!(matches!(
            a.op_into(SensorOp::TimeWarp, &src, &mut dst, &mut rng),
            Err(Error::NonFinite { index: 5, .. })
        ));
    }

    #[test]
    fn auto_rotation_picks_accel_and_gyro_triplets() {
        assert_eq!(aug(SensorAugParams::default(), 4, 6).triplets(), &[[0, 1, 2], [3, 4, 5]]);
        assert_eq!(aug(SensorAugParams::default(), 4, 9).triplets(), &[[0, 1, 2], [3, 4, 5]]);
        assert_eq!(aug(SensorAugParams::default(), 4, 4).triplets(), &[[0, 1, 2]]);
        assert!(aug(SensorAugParams::default(), 4, 2).triplets().is_empty());
        let off = SensorAugParams { rotation: Rotation::Off, ..Default::default() };
        assert!(aug(off, 4, 6).triplets().is_empty());
    }

    #[test]
    fn random_rotation_is_proper_and_orthogonal() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut mean = [[0f64; 3]; 3];
        let n = 4000;
        for _ in 0..n {
            let r = random_rotation(&mut rng);
            let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
                - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
                + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
            assert!((det - 1.0).abs() < 1e-5, "det {det}");
            for i in 0..3 {
                for j in 0..3 {
                    let dot: f32 = (0..3).map(|k| r[i][k] * r[j][k]).sum();
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-5);
                    mean[i][j] += f64::from(r[i][j]) / f64::from(n);
                }
            }
        }
        // Haar-uniform: every entry has mean 0 and variance 1/3; 5 standard errors.
        let tol = 5.0 * (1.0 / 3.0 / f64::from(n)).sqrt();
        assert!(mean.iter().flatten().all(|m| m.abs() < tol), "{mean:?}");
    }

    #[test]
    fn rotation_preserves_triplet_norms_and_shares_the_rotation() {
        let (t_len, c_len) = (50, 7);
        let mut a = aug(SensorAugParams::default(), t_len, c_len);
        let src = window(t_len, c_len);
        let mut dst = vec![0.0; src.len()];
        a.op_into(SensorOp::Rotation, &src, &mut dst, &mut StdRng::seed_from_u64(9)).unwrap();
        assert_ne!(dst, src);
        let norm = |v: &[f32], t: usize, c0: usize| {
            (0..3).map(|k| v[t * c_len + c0 + k].powi(2)).sum::<f32>().sqrt()
        };
        for t in 0..t_len {
            for c0 in [0, 3] {
                assert!((norm(&src, t, c0) - norm(&dst, t, c0)).abs() < 1e-5);
            }
            assert_eq!(src[t * c_len + 6], dst[t * c_len + 6], "channel 6 is not rotated");
        }
        // Same rotation on both triplets: the angle between accel and gyro is preserved.
        for t in 0..t_len {
            let dot =
                |v: &[f32]| (0..3).map(|k| v[t * c_len + k] * v[t * c_len + 3 + k]).sum::<f32>();
            assert!((dot(&src) - dot(&dst)).abs() < 1e-4);
        }
    }

    #[test]
    fn time_warp_with_zero_sigma_is_identity() {
        let p = SensorAugParams { time_warp_sigma: 0.0, ..Default::default() };
        for (t_len, c_len) in [(1, 2), (2, 3), (128, 6), (37, 1)] {
            let mut a = aug(p.clone(), t_len, c_len);
            let src = window(t_len, c_len);
            let mut dst = vec![0.0; src.len()];
            a.op_into(SensorOp::TimeWarp, &src, &mut dst, &mut StdRng::seed_from_u64(1)).unwrap();
            assert_eq!(dst, src);
        }
    }

    #[test]
    fn time_warp_map_is_monotone_and_spans_the_window() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut warp = vec![0.0; 100];
        let mut speeds = [0f32; 6];
        for _ in 0..200 {
            for s in &mut speeds {
                *s = 1.0 + 0.8 * rng.sample::<f32, _>(StandardNormal);
            }
            time_warp_map(&speeds, &mut warp);
            assert_eq!(warp[0], 0.0);
            assert!((warp[99] - 99.0).abs() < 1e-3);
            assert!(warp.windows(2).all(|w| w[1] > w[0]));
        }
    }

    #[test]
    fn magnitude_warp_with_zero_sigma_is_identity_and_curve_hits_knots() {
        let p = SensorAugParams { magnitude_warp_sigma: 0.0, ..Default::default() };
        let mut a = aug(p, 40, 3);
        let src = window(40, 3);
        let mut dst = vec![0.0; src.len()];
        a.op_into(SensorOp::MagnitudeWarp, &src, &mut dst, &mut StdRng::seed_from_u64(1)).unwrap();
        assert_eq!(dst, src);
        let knots = [1.0, 2.0, 0.5, 1.5];
        for (k, &v) in knots.iter().enumerate() {
            assert!((catmull_rom(&knots, 1, 0, k as f32) - v).abs() < 1e-6);
        }
    }

    #[test]
    fn permutation_preserves_the_multiset_of_time_steps() {
        let (t_len, c_len) = (23, 3);
        let mut a = aug(SensorAugParams::default(), t_len, c_len);
        let src = window(t_len, c_len);
        let mut dst = vec![0.0; src.len()];
        let mut rng = StdRng::seed_from_u64(4);
        let sorted_rows = |v: &[f32]| {
            let mut rows: Vec<Vec<u32>> =
                v.chunks_exact(c_len).map(|r| r.iter().map(|x| x.to_bits()).collect()).collect();
            rows.sort();
            rows
        };
        let mut changed = false;
        for _ in 0..20 {
            a.op_into(SensorOp::Permutation, &src, &mut dst, &mut rng).unwrap();
            assert_eq!(sorted_rows(&dst), sorted_rows(&src));
            changed |= dst != src;
        }
        assert!(changed);
    }

    #[test]
    fn channel_dropout_zeroes_whole_channels_and_keeps_one() {
        let p = SensorAugParams { channel_dropout: 0.99, ..Default::default() };
        let (t_len, c_len) = (10, 6);
        let mut a = aug(p, t_len, c_len);
        let src: Vec<f32> = (0..t_len * c_len).map(|i| 1.0 + i as f32).collect();
        let mut dst = vec![0.0; src.len()];
        let mut rng = StdRng::seed_from_u64(6);
        for _ in 0..20 {
            a.op_into(SensorOp::ChannelDropout, &src, &mut dst, &mut rng).unwrap();
            let mut kept = 0;
            for c in 0..c_len {
                let col: Vec<f32> = (0..t_len).map(|t| dst[t * c_len + c]).collect();
                let orig: Vec<f32> = (0..t_len).map(|t| src[t * c_len + c]).collect();
                assert!(col == orig || col.iter().all(|&v| v == 0.0));
                kept += usize::from(col == orig);
            }
            assert!(kept >= 1);
        }
    }

    #[test]
    fn weak_with_zero_sigmas_is_identity() {
        let p = SensorAugParams { jitter_sigma: 0.0, scale_sigma: 0.0, ..Default::default() };
        let mut a = aug(p, 16, 6);
        let src = window(16, 6);
        let mut dst = vec![0.0; src.len()];
        a.weak_into(&src, &mut dst, &mut StdRng::seed_from_u64(0)).unwrap();
        assert_eq!(dst, src);
    }

    #[test]
    fn views_are_finite_shaped_and_seeded() {
        for (t_len, c_len) in [(128, 6), (50, 3), (3, 1), (1, 6)] {
            let p = SensorAugParams { n_ops: 5, ..Default::default() };
            let mut a = aug(p, t_len, c_len);
            let src = window(t_len, c_len);
            let run = |a: &mut SensorAugmenter, seed: u64, strong: bool| {
                let mut rng = StdRng::seed_from_u64(seed);
                let mut out = vec![0.0; t_len * c_len];
                for _ in 0..3 {
                    if strong {
                        a.strong_into(&src, &mut out, &mut rng).unwrap();
                    } else {
                        a.weak_into(&src, &mut out, &mut rng).unwrap();
                    }
                    assert!(out.iter().all(|v| v.is_finite()));
                }
                out
            };
            for strong in [false, true] {
                let first = run(&mut a, 42, strong);
                assert_eq!(first.len(), t_len * c_len);
                assert_eq!(first, run(&mut a, 42, strong), "same seed, same view");
                assert_ne!(first, run(&mut a, 43, strong), "different seed, different view");
            }
        }
    }
}
