//! The OOD measurement protocol shared by `examples/ood_table.rs` (3 seeds, full table) and
//! `tests/ood_measure.rs` (one seed, asserted): embeddings of the shipped data (cached under
//! `target/tmp/embeddings`), pixels, PCA projections, gate scores and z-score combinations.
#![allow(dead_code)] // each user takes what it needs

use edge_ssl::data::idx;
use edge_ssl::embed::EmbeddingCache;
use edge_ssl::gate::{GateParams, Pca, ZScore};
use edge_ssl::{Backbone, BackboneSpec, models};

/// Embeddings of an IDX image file with the shipped int8 camera model at 112.
pub fn embeddings(path: &str) -> Vec<f32> {
    let set = idx::read_images(path, None::<&str>).unwrap();
    let mut bb =
        Backbone::load(models::CAMERA_INT8, BackboneSpec::efficientnet_lite0(112, 1)).unwrap();
    let cache = EmbeddingCache::new(concat!(env!("CARGO_MANIFEST_DIR"), "/target/tmp/embeddings"));
    cache.images(&mut bb, &set, |_| {}).unwrap()
}

pub fn pixels(path: &str) -> Vec<f32> {
    let set = idx::read_images(path, None::<&str>).unwrap();
    set.pixels.iter().map(|&p| f32::from(p) / 255.0).collect()
}

/// PCA basis of `data` (`[n, d]`), `k` components.
pub fn basis(data: &[f32], d: usize, k: usize) -> Pca {
    Pca::fit(data, d, k).unwrap()
}

/// The first `k` principal components of every row of `data`.
pub fn project(data: &[f32], pca: &Pca, k: usize) -> Vec<f32> {
    let z = pca.project_rows(data).unwrap();
    z.chunks_exact(pca.k()).flat_map(|r| r[..k].iter().copied()).collect()
}

pub struct Scores {
    pub trusted: Vec<f32>,
    pub ins: Vec<f32>,
    pub outs: Vec<f32>,
}

pub fn gate_scores(
    p: GateParams,
    tx: &[f32],
    ty: &[u32],
    d: usize,
    unl: &[f32],
    ins: &[f32],
    outs: &[f32],
) -> Scores {
    let g = p.fit(tx, d, ty, 10, unl).unwrap();
    let sc = |x: &[f32]| {
        let mut s = vec![0f32; x.len() / d];
        g.score_into(x, &mut s).unwrap();
        s
    };
    Scores { trusted: sc(tx), ins: sc(ins), outs: sc(outs) }
}

pub fn norm_scores(tx: &[f32], ins: &[f32], outs: &[f32], d: usize) -> Scores {
    let f = |x: &[f32]| -> Vec<f32> {
        x.chunks_exact(d).map(|r| -r.iter().map(|v| v * v).sum::<f32>().sqrt()).collect()
    };
    Scores { trusted: f(tx), ins: f(ins), outs: f(outs) }
}

pub fn zsum(parts: &[&Scores]) -> Scores {
    let z = |s: &Scores, v: &[f32]| -> Vec<f32> {
        let zs = ZScore::fit(&s.trusted);
        v.iter().map(|&x| zs.apply(x)).collect()
    };
    let add = |pick: &dyn Fn(&Scores) -> &Vec<f32>| -> Vec<f32> {
        let mut acc = vec![0f32; pick(parts[0]).len()];
        for s in parts {
            acc.iter_mut().zip(z(s, pick(s))).for_each(|(a, b)| *a += b);
        }
        acc
    };
    Scores { trusted: add(&|s| &s.trusted), ins: add(&|s| &s.ins), outs: add(&|s| &s.outs) }
}
