//! Label propagation over the bank: one refresh (PCA of the bank, kNN graph, propagation,
//! read-out) of a full bank of 4096 entries, 10 classes, at d in {128, 1280, 5120}, with the
//! default parameters (PCA-128 whitened, k = 10, 1024 rows for the PCA, 20 iterations). At
//! d = 5120 (the camera model's 320 x 4 x 4 maps, `AdaptParams::graph_on_map`) the PCA goes
//! through the Gram matrix of the 1024 rows instead of the covariance. `d5120-maps` is the
//! camera default's graph (`PropagationParams::maps(16)`: PCA-512 half-whitened, each of the
//! 16 positions normalized, propagation from zero), timed in thread CPU time like the learner
//! benches (BENCHMARKS.md).

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{BenchmarkId, Criterion, criterion_group};
use edge_ssl::bank::{Bank, BankParams};
use edge_ssl::gate::Admitted;
use edge_ssl::propagate::PropagationParams;
use rand::{Rng, SeedableRng, rngs::StdRng};

use super::cpu_time::ThreadCpuTime;

/// A full bank of clustered embeddings: 10 class centres plus noise, 1 in 20 entries given.
fn full_bank(d: usize, rng: &mut StdRng) -> Bank {
    let centres: Vec<Vec<f32>> =
        (0..10).map(|_| (0..d).map(|_| rng.random_range(-1.0..1.0)).collect()).collect();
    let mut bank = BankParams::new(4096, d, 10).build().unwrap();
    for i in 0..4096u32 {
        let c = (i % 10) as usize;
        let x: Vec<f32> = centres[c].iter().map(|m| m + rng.random_range(-1.5..1.5)).collect();
        if i % 20 == 0 {
            bank.insert_given(&x, c as u32, rng).unwrap();
        } else {
            bank.insert_pseudo(Admitted::ungated(&x), c as u32, 0.9, rng).unwrap();
        }
    }
    bank
}

/// A cheap stand-in teacher: softmax of the first 10 components.
fn teacher(x: &[f32], p: &mut [f32]) -> edge_ssl::Result<()> {
    let m = x[..10].iter().fold(f32::MIN, |a, &v| a.max(v));
    p.iter_mut().zip(&x[..10]).for_each(|(p, v)| *p = (v - m).exp());
    let s: f32 = p.iter().sum();
    p.iter_mut().for_each(|p| *p /= s);
    Ok(())
}

fn refresh(c: &mut Criterion) {
    let mut g = c.benchmark_group("propagate/refresh");
    g.sample_size(10);
    for d in [128, 1280, 5120] {
        let mut rng = StdRng::seed_from_u64(0);
        let bank = full_bank(d, &mut rng);
        let mut prop = PropagationParams::default().build(4096, d, 10).unwrap();
        g.bench_with_input(BenchmarkId::new("n4096", format!("d{d}")), &d, |b, _| {
            b.iter(|| black_box(prop.refresh(&bank, teacher).unwrap()))
        });
    }
    g.finish();
}

fn refresh_maps(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("propagate/refresh");
    g.sample_size(10);
    let mut rng = StdRng::seed_from_u64(0);
    let bank = full_bank(5120, &mut rng);
    let mut prop = PropagationParams::maps(16).build(4096, 5120, 10).unwrap();
    g.bench_function("n4096/d5120-maps", |b| {
        b.iter(|| black_box(prop.refresh(&bank, teacher).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, refresh);
criterion_group! {
    name = maps;
    config = Criterion::default().with_measurement(ThreadCpuTime(WallTime));
    targets = refresh_maps
}
