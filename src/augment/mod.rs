//! Weak and strong views of a sample, for consistency-based semi-supervised learning.
//!
//! | family | input | weak view | strong view | type |
//! |---|---|---|---|---|
//! | image | `u8 [H, W, C]`, C = 1 or 3 | flip + shift (FixMatch) | weak + RandAugment (2 ops) + Cutout; CutMix | [`image::ImageAugmenter`] |
//! | sensor | `f32 [T, C]`, time-major | jitter + scaling | weak + 2 of: magnitude warp, time warp, permutation, channel dropout, 3-D rotation | [`sensor::SensorAugmenter`] |
//! | embedding | `f32 [d]` | — | Gaussian noise + dropout, in place (no backbone pass) | [`embedding::EmbeddingAugmenter`] |
//!
//! Every family follows the same shape: a params struct with documented paper defaults, whose
//! `check()` returns [`Checked`] params or one [`ParamsError`] variant per broken rule; an
//! augmenter built from checked params that allocates its scratch once; and `*_into` methods that
//! write into caller-owned buffers and allocate nothing. Every random choice draws from the RNG the
//! caller passes, so the same seed gives the same view.
//!
//! # Examples
//! ```
//! use edge_ssl::augment::image::{ImageAugParams, ImageAugmenter};
//! use edge_ssl::data::image::Geometry;
//! use rand::{SeedableRng, rngs::StdRng};
//! # fn main() -> edge_ssl::Result<()> {
//! let geometry = Geometry { height: 32, width: 32, channels: 3 };
//! let mut aug = ImageAugmenter::new(ImageAugParams::default().check()?, geometry)?;
//! let src = vec![100u8; geometry.len()];
//! let (mut weak, mut strong) = (vec![0u8; geometry.len()], vec![0u8; geometry.len()]);
//! let mut rng = StdRng::seed_from_u64(7);
//! aug.weak_into(&src, &mut weak, &mut rng)?;
//! aug.strong_into(&src, &mut strong, &mut rng)?;
//! # Ok(())
//! # }
//! ```

pub mod embedding;
mod errors;
pub mod image;
pub mod sensor;

pub use errors::ParamsError;

/// Validated parameters: the crate's one `Checked` type (see [`crate::head::Checked`]).
pub use crate::head::Checked;

/// `Ok(())` if `value` is finite and `>= 0`, else `err(value)`.
fn non_negative(value: f32, err: fn(f32) -> ParamsError) -> std::result::Result<(), ParamsError> {
    if value.is_finite() && value >= 0.0 { Ok(()) } else { Err(err(value)) }
}

/// `Ok(())` if `value` is in `[0, 1)` (`[0, 1]` when `closed`), else `err(value)`.
fn unit_interval(
    value: f32,
    closed: bool,
    err: fn(f32) -> ParamsError,
) -> std::result::Result<(), ParamsError> {
    let ok = value >= 0.0 && if closed { value <= 1.0 } else { value < 1.0 };
    if ok { Ok(()) } else { Err(err(value)) }
}

/// Draws `k` distinct indices from `0..n` into `out[..k]` (partial Fisher-Yates over `pool`,
/// which must hold `0..n` in any order). No allocation.
fn choose_distinct<R: rand::Rng + ?Sized>(pool: &mut [u8], k: usize, rng: &mut R) {
    let n = pool.len();
    for i in 0..k.min(n) {
        let j = rng.random_range(i..n);
        pool.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autotraits() {
        fn check<T: Send + Sync + Unpin + Clone + std::fmt::Debug>() {}
        check::<Checked<image::ImageAugParams>>();
        check::<ParamsError>();
        check::<image::ImageAugmenter>();
        check::<sensor::SensorAugmenter>();
        check::<embedding::EmbeddingAugmenter>();
    }

    #[test]
    fn choose_distinct_picks_distinct_indices() {
        use rand::{SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(1);
        let mut pool: Vec<u8> = (0..14).collect();
        for _ in 0..100 {
            choose_distinct(&mut pool, 3, &mut rng);
            let (a, b, c) = (pool[0], pool[1], pool[2]);
            assert!(a != b && b != c && a != c);
            let mut sorted = pool.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..14).collect::<Vec<u8>>());
        }
    }
}
