//! Resident memory stays flat over a long stream: a learner (no backbone, small dims, gate and
//! bank on, capacities fixed at build) fed 20k then 100k synthetic embeddings has the same VmRSS
//! after both, within page noise. One test in its own file, so no other test shares the process.
//! `examples/rss.rs` runs the same measurement at the default 1280-d size up to 1M samples.
//! Linux only (reads `/proc/self/status`); elsewhere it checks nothing.

use edge_ssl::learner::LearnerParams;
use rand::{Rng, SeedableRng, rngs::StdRng};

/// VmRSS of this process in KiB, if `/proc` has it.
fn vm_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn rss_is_flat_from_20k_to_100k_samples() {
    let (d, k) = (16, 4);
    let mut p = LearnerParams::new(d, k);
    p.bank_capacity = 512;
    p.gate_warmup = 128;
    p.gate = Some(edge_ssl::gate::GateParams {
        projection: edge_ssl::gate::Projection::Pca(4),
        ..Default::default()
    });
    let mut learner = p.build().unwrap();
    let mut rng = StdRng::seed_from_u64(4);
    let mut x = vec![0f32; d];
    let sample = |c: usize, rng: &mut StdRng, x: &mut [f32]| {
        x.iter_mut().for_each(|v| *v = rng.random::<f32>() * 0.5);
        x[c] += 2.0;
    };
    for i in 0..5 * k {
        sample(i % k, &mut rng, &mut x);
        learner.observe_labeled(&x, (i % k) as u32).unwrap();
    }
    let mut feed = |n: usize, learner: &mut edge_ssl::learner::Learner| {
        for _ in 0..n {
            sample(rng.random_range(0..k), &mut rng, &mut x);
            learner.observe(&x).unwrap();
        }
    };
    feed(20_000, &mut learner);
    let Some(at_20k) = vm_rss_kib() else { return };
    feed(80_000, &mut learner);
    let at_100k = vm_rss_kib().unwrap();
    assert!(learner.bank().is_full() && learner.gate_fitted());
    let growth = at_100k.saturating_sub(at_20k);
    eprintln!("VmRSS {at_20k} KiB after 20k samples, {at_100k} KiB after 100k");
    assert!(growth <= 256, "VmRSS grew by {growth} KiB from 20k ({at_20k}) to 100k ({at_100k})");
}
