//! Helpers shared by the tests that compare backbone outputs (`tests/backbone.rs` against the
//! golden outputs, `tests/engines.rs` across engines). Each test crate includes it with
//! `mod golden_common;`.

use std::path::Path;

use edge_ssl::data::npy;

/// A golden array from `models/golden/`.
pub fn golden(name: &str) -> npy::NpyArray {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/golden");
    npy::read(dir.join(name)).unwrap()
}

/// Cosine similarity of two rows, in f64.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Index of the largest value (the first one on ties).
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |b, (i, &x)| if x > b.1 { (i, x) } else { b })
        .0
}
