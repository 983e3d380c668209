//! OOD gate: scoring a batch of 256 embeddings, and a refit (shrinkage + Cholesky + whitening
//! map) from the streaming statistics, at gate dim d in {128, 1280} (no projection, 10 classes,
//! 200 trusted samples), plus scoring through a PCA-128 projection of 1280-d inputs.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use edge_ssl::gate::{Gate, GateParams, Projection};
use rand::{Rng, SeedableRng, rngs::StdRng};

fn fitted(d: usize, projection: Projection) -> (Gate, Vec<f32>) {
    let mut rng = StdRng::seed_from_u64(2);
    let x: Vec<f32> = (0..200 * d).map(|_| rng.random_range(-1.0..1.0)).collect();
    let y: Vec<u32> = (0..200).map(|i| i % 10).collect();
    let g = GateParams { projection, ..GateParams::default() }.fit(&x, d, &y, 10, &[]).unwrap();
    (g, x)
}

fn score(c: &mut Criterion) {
    let mut g = c.benchmark_group("gate/score_into");
    g.sample_size(20);
    for (d, proj, name) in [
        (128, Projection::None, "d128"),
        (1280, Projection::None, "d1280"),
        (1280, Projection::Pca(128), "d1280/pca128"),
    ] {
        let (gate, x) = fitted(d, proj);
        let batch = &x[..256 * d.min(x.len() / 256)];
        let n = batch.len() / d;
        let mut out = vec![0f32; n];
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("tied", format!("{name}/n{n}")), &d, |b, _| {
            b.iter(|| gate.score_into(black_box(batch), &mut out).unwrap())
        });
    }
    g.finish();
}

fn refit(c: &mut Criterion) {
    let mut g = c.benchmark_group("gate/refit");
    g.sample_size(10);
    for d in [128, 1280] {
        let (gate, _) = fitted(d, Projection::None);
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("tied", format!("d{d}/k10")), &d, |b, _| {
            b.iter_batched(
                || gate.clone(),
                |mut gg| {
                    gg.refit().unwrap();
                    gg
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, score, refit);
