//! State file: encoding to bytes and validating + decoding a bank of 4096 x 128 f32 entries.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use edge_ssl::bank::BankParams;
use edge_ssl::gate::Admitted;
use edge_ssl::persist::{Dims, StateFile, StateWriter};
use rand::{Rng, SeedableRng, rngs::StdRng};

fn persist(c: &mut Criterion) {
    let (cap, d) = (4096, 128);
    let mut rng = StdRng::seed_from_u64(3);
    let mut bank = BankParams::new(cap, d, 10).build().unwrap();
    let x: Vec<f32> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
    for i in 0..cap as u32 {
        bank.insert_pseudo(Admitted::ungated(&x), i % 10, 0.9, &mut rng).unwrap();
    }
    let dims = Dims { embedding_dim: d as u32, n_classes: 10, bank_capacity: cap as u32 };
    let mut w = StateWriter::new(dims, 0);
    w.bank(&bank).unwrap();
    let bytes = w.to_bytes().unwrap();
    let mut g = c.benchmark_group("persist");
    g.throughput(Throughput::Elements(cap as u64));
    g.bench_with_input(BenchmarkId::new("to_bytes", format!("d{d}/n{cap}")), &d, |b, _| {
        b.iter(|| black_box(w.to_bytes().unwrap()))
    });
    g.bench_with_input(BenchmarkId::new("load_bank", format!("d{d}/n{cap}")), &d, |b, _| {
        b.iter(|| black_box(StateFile::from_bytes(bytes.clone(), &dims).unwrap().bank().unwrap()))
    });
    g.finish();
}

criterion_group!(benches, persist);
