//! Proves that the augmentation hot paths allocate nothing after construction: a counting global
//! allocator records every allocation made on the current thread, and each `*_into` /
//! perturbation call must leave the count unchanged.

use edge_ssl::augment::embedding::{EmbeddingAugParams, EmbeddingAugmenter};
use edge_ssl::augment::image::{ImageAugParams, ImageAugmenter, RandOp};
use edge_ssl::augment::sensor::{SensorAugParams, SensorAugmenter, SensorOp};
use edge_ssl::data::image::Geometry;
use rand::{SeedableRng, rngs::StdRng};

/// Counts allocations per thread, so the test harness's other threads do not interfere.
mod common;

use common::allocations_in;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

#[test]
fn counter_sees_allocations() {
    let n = allocations_in(|| {
        std::hint::black_box(vec![1u8; 16]);
    });
    assert_eq!(n, 1);
}

#[test]
fn image_views_allocate_nothing_after_construction() {
    for geometry in [
        Geometry { height: 32, width: 32, channels: 3 },
        Geometry { height: 28, width: 28, channels: 1 },
    ] {
        let params = ImageAugParams { n_ops: 14, ..Default::default() };
        let mut aug = ImageAugmenter::new(params.check().unwrap(), geometry).unwrap();
        let a: Vec<u8> = (0..geometry.len()).map(|i| (i * 31 % 256) as u8).collect();
        let b: Vec<u8> = a.iter().rev().copied().collect();
        let mut dst = vec![0u8; geometry.len()];
        let mut rng = StdRng::seed_from_u64(1);
        let n = allocations_in(|| {
            for _ in 0..50 {
                aug.weak_into(&a, &mut dst, &mut rng).unwrap();
                aug.strong_into(&a, &mut dst, &mut rng).unwrap();
                aug.cutmix_into(&a, &b, &mut dst, &mut rng).unwrap();
            }
            for op in RandOp::ALL {
                aug.apply_op(op, 0.8, &a, &mut dst).unwrap();
            }
        });
        assert_eq!(n, 0, "{geometry:?}");
    }
}

#[test]
fn sensor_views_allocate_nothing_after_construction() {
    let (steps, channels) = (128, 6);
    let params = SensorAugParams { n_ops: 5, ..Default::default() };
    let mut aug = SensorAugmenter::new(params.check().unwrap(), steps, channels).unwrap();
    let src: Vec<f32> = (0..steps * channels).map(|i| (i as f32 * 0.05).sin()).collect();
    let mut dst = vec![0f32; src.len()];
    let mut rng = StdRng::seed_from_u64(2);
    let n = allocations_in(|| {
        for _ in 0..50 {
            aug.weak_into(&src, &mut dst, &mut rng).unwrap();
            aug.strong_into(&src, &mut dst, &mut rng).unwrap();
        }
        for op in SensorOp::ALL {
            aug.op_into(op, &src, &mut dst, &mut rng).unwrap();
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn embedding_perturbations_allocate_nothing() {
    let aug = EmbeddingAugmenter::new(EmbeddingAugParams::default().check().unwrap());
    let mut x: Vec<f32> = (0..1280).map(|i| (i as f32 * 0.01).cos()).collect();
    let mut rng = StdRng::seed_from_u64(3);
    let n = allocations_in(|| {
        for _ in 0..50 {
            aug.perturb(&mut x, &mut rng).unwrap();
            aug.noise(&mut x, &mut rng).unwrap();
            aug.dropout(&mut x, &mut rng).unwrap();
        }
    });
    assert_eq!(n, 0);
}
