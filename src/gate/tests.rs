use super::*;
use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, StandardNormal};

/// `k` Gaussian classes in `d` dims, class means spread on the axes.
fn blobs(n_per: usize, d: usize, k: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut r = StdRng::seed_from_u64(seed);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for c in 0..k {
        for _ in 0..n_per {
            for j in 0..d {
                let m = if j % k == c { 4.0 } else { 0.0 };
                let e: f32 = StandardNormal.sample(&mut r);
                x.push(m + e);
            }
            y.push(c as u32);
        }
    }
    (x, y)
}

#[test]
fn target_accept_must_be_in_0_1() {
    let p = GateParams { target_accept: 0.0, ..GateParams::default() };
    assert!(matches!(p.check(), Err(Error::InvalidParam { name: "target_accept", .. })));
    let p = GateParams { target_accept: f64::NAN, ..GateParams::default() };
    assert!(matches!(p.check(), Err(Error::InvalidParam { name: "target_accept", .. })));
}

#[test]
fn fixed_shrinkage_must_be_in_0_1() {
    let p = GateParams { shrinkage: Shrinkage::Fixed(-0.1), ..GateParams::default() };
    assert!(matches!(p.check(), Err(Error::InvalidParam { name: "shrinkage", .. })));
}

#[test]
fn projection_must_be_positive_and_at_most_dim() {
    let p = GateParams { projection: Projection::Pca(0), ..GateParams::default() };
    assert!(matches!(p.check(), Err(Error::InvalidParam { name: "projection", .. })));
    let (x, y) = blobs(5, 4, 2, 0);
    let p = GateParams { projection: Projection::Pca(5), ..GateParams::default() };
    assert!(matches!(
        p.fit(&x, 4, &y, 2, &[]),
        Err(Error::InvalidParam { name: "projection", .. })
    ));
}

#[test]
fn fit_rejects_bad_shapes_and_labels() {
    let (x, y) = blobs(5, 4, 2, 0);
    let p = GateParams::default();
    assert!(matches!(p.fit(&x[..7], 4, &y, 2, &[]), Err(Error::ShapeMismatch { .. })));
    assert!(matches!(p.fit(&x, 4, &y, 2, &[1.0]), Err(Error::ShapeMismatch { .. })));
    assert!(matches!(p.fit(&x, 0, &y, 2, &[]), Err(Error::InvalidParam { name: "dim", .. })));
    assert!(matches!(p.fit(&x, 4, &y, 0, &[]), Err(Error::InvalidParam { name: "n_classes", .. })));
    let mut bad = y.clone();
    bad[0] = 2;
    assert!(matches!(p.fit(&x, 4, &bad, 2, &[]), Err(Error::InvalidParam { name: "labels", .. })));
    assert!(matches!(p.fit(&x, 4, &y, 3, &[]), Err(Error::InvalidParam { name: "labels", .. })));
    let mut nan = x.clone();
    nan[3] = f32::NAN;
    assert!(matches!(p.fit(&nan, 4, &y, 2, &[]), Err(Error::NonFinite { index: 3, .. })));
}

#[test]
fn fit_needs_more_samples_than_classes() {
    let p = GateParams::default();
    let r = p.fit(&[0.0, 1.0], 1, &[0, 1], 2, &[]);
    assert!(matches!(r, Err(Error::InvalidParam { name: "labels", .. })));
}

#[test]
fn identical_samples_are_not_positive_definite() {
    let p = GateParams::default();
    let r = p.fit(&[1.0; 6], 2, &[0, 0, 0], 1, &[]);
    assert!(matches!(r, Err(Error::NotPositiveDefinite { .. })), "{r:?}");
}

#[test]
fn tied_score_matches_naive_mahalanobis() {
    let (x, y) = blobs(20, 3, 2, 1);
    let g = GateParams { shrinkage: Shrinkage::Fixed(0.1), ..GateParams::default() }
        .fit(&x, 3, &y, 2, &[])
        .unwrap();
    // naive: invert the shrunk covariance by Gauss-Jordan, score = min_c (x-mu)^T S^-1 (x-mu)
    let (s, _) = g.stats.within_cov(Shrinkage::Fixed(0.1));
    let inv = naive_inverse(&s, 3);
    let q = [1.0f32, 2.0, -1.0];
    let mut best = f64::INFINITY;
    for c in 0..2 {
        let d: Vec<f64> = (0..3).map(|j| f64::from(q[j]) - g.stats.means[c * 3 + j]).collect();
        let m: f64 =
            (0..3).map(|i| (0..3).map(|j| d[i] * inv[i * 3 + j] * d[j]).sum::<f64>()).sum();
        best = best.min(m);
    }
    assert!((f64::from(g.score(&q).unwrap()) - best).abs() < 1e-4 * best.max(1.0));
}

fn naive_inverse(a: &[f64], n: usize) -> Vec<f64> {
    let mut m = a.to_vec();
    let mut inv = vec![0.0; n * n];
    for i in 0..n {
        inv[i * n + i] = 1.0;
    }
    for c in 0..n {
        let p = m[c * n + c];
        for j in 0..n {
            m[c * n + j] /= p;
            inv[c * n + j] /= p;
        }
        for r in 0..n {
            if r != c {
                let f = m[r * n + c];
                for j in 0..n {
                    m[r * n + j] -= f * m[c * n + j];
                    inv[r * n + j] -= f * inv[c * n + j];
                }
            }
        }
    }
    inv
}

#[test]
fn threshold_accepts_about_the_target_on_fresh_in_distribution_data() {
    let (x, y) = blobs(200, 8, 3, 2);
    for variant in [Variant::Tied, Variant::Relative, Variant::Diagonal] {
        let g = GateParams { variant, ..GateParams::default() }.fit(&x, 8, &y, 3, &[]).unwrap();
        let (t, _) = blobs(300, 8, 3, 3);
        let mut s = vec![0f32; 900];
        g.score_into(&t, &mut s).unwrap();
        let acc = s.iter().filter(|&&v| !g.is_ood(v)).count() as f64 / 900.0;
        assert!((acc - 0.95).abs() < 0.04, "{variant:?}: {acc}");
    }
}

#[test]
fn far_samples_are_rejected_and_counted() {
    let (x, y) = blobs(30, 4, 2, 4);
    let mut g = GateParams::default().fit(&x, 4, &y, 2, &[]).unwrap();
    let far = [40.0f32, -40.0, 40.0, 0.0];
    assert!(matches!(g.admit(&far).unwrap(), Verdict::Rejected { .. }));
    let near = [4.0f32, 0.0, 4.0, 0.0];
    assert!(matches!(g.admit(&near).unwrap(), Verdict::Accepted(_)));
    assert_eq!((g.counters().accepted, g.counters().rejected), (1, 1));
}

#[test]
fn streaming_update_then_refit_equals_batch_fit() {
    let (x, y) = blobs(10, 3, 2, 5);
    let first: Vec<usize> = (0..5).chain(10..15).collect();
    let rest: Vec<usize> = (5..10).chain(15..20).collect();
    let rows = |idx: &[usize]| -> (Vec<f32>, Vec<u32>) {
        (
            idx.iter().flat_map(|&i| x[i * 3..i * 3 + 3].to_vec()).collect(),
            idx.iter().map(|&i| y[i]).collect(),
        )
    };
    let p = GateParams::default();
    let (x1, y1) = rows(&first);
    let mut a = p.fit(&x1, 3, &y1, 2, &[]).unwrap();
    for &i in &rest {
        a.update(&x[i * 3..i * 3 + 3], y[i]).unwrap();
    }
    a.refit().unwrap();
    assert_eq!(a.counters().updates, 10);
    let all: Vec<usize> = first.iter().chain(&rest).copied().collect();
    let (xa, ya) = rows(&all);
    let full = p.fit(&xa, 3, &ya, 2, &[]).unwrap();
    let q = [1.0f32, 0.5, 2.0];
    let (sa, sf) = (a.score(&q).unwrap(), full.score(&q).unwrap());
    assert!((sa - sf).abs() < 1e-4 * sf.abs().max(1.0), "{sa} vs {sf}");
}

#[test]
fn update_rejects_label_out_of_range() {
    let (x, y) = blobs(5, 2, 2, 6);
    let mut g = GateParams::default().fit(&x, 2, &y, 2, &[]).unwrap();
    assert!(matches!(g.update(&[0.0, 0.0], 2), Err(Error::InvalidParam { name: "label", .. })));
}

#[test]
fn score_into_rejects_ragged_batch() {
    let (x, y) = blobs(5, 2, 2, 6);
    let g = GateParams::default().fit(&x, 2, &y, 2, &[]).unwrap();
    let mut out = [0f32; 2];
    assert!(matches!(g.score_into(&[0.0; 3], &mut out), Err(Error::ShapeMismatch { .. })));
}

#[test]
fn calibrate_rejects_empty_heldout() {
    let (x, y) = blobs(5, 2, 2, 6);
    let mut g = GateParams::default().fit(&x, 2, &y, 2, &[]).unwrap();
    assert!(matches!(g.calibrate(&[]), Err(Error::InvalidParam { name: "heldout", .. })));
    let t = g.calibrate(&x).unwrap();
    assert_eq!(t, g.threshold());
}

#[test]
fn pca_projection_recovers_the_informative_subspace() {
    // informative dims 0..2, 30 noise dims of small variance
    let mut r = StdRng::seed_from_u64(8);
    let d = 32;
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..200 {
        let c = i % 2;
        for j in 0..d {
            let e: f32 = StandardNormal.sample(&mut r);
            x.push(if j < 2 { 6.0 * c as f32 + e * 2.0 } else { 0.1 * e });
        }
        y.push(c as u32);
    }
    let g = GateParams { projection: Projection::Pca(2), ..GateParams::default() }
        .fit(&x, d, &y, 2, &[])
        .unwrap();
    assert_eq!(g.proj_dim(), 2);
    let basis = &g.pca.as_ref().unwrap().basis;
    let energy: f32 = basis.iter().enumerate().filter(|(i, _)| i % d < 2).map(|(_, v)| v * v).sum();
    assert!(energy > 1.9, "{energy}");
    let _ = r.random::<u8>();
}

#[test]
fn clp_is_higher_for_in_distribution_batches() {
    let (x, y) = blobs(50, 4, 2, 9);
    let g = GateParams::default().fit(&x, 4, &y, 2, &[]).unwrap();
    let inside = g.clp(&x).unwrap();
    let far: Vec<f32> = (0..40).map(|i| if i % 2 == 0 { 30.0 } else { -30.0 }).collect();
    let outside = g.clp(&far).unwrap();
    assert!(inside > -0.5 && outside < inside - 1.0, "{inside} {outside}");
}

#[test]
fn autotraits() {
    fn check<T: Send + Sync + Unpin>() {}
    check::<Gate>();
    check::<GateParams>();
    check::<Verdict<'_>>();
    check::<GateStats>();
}
