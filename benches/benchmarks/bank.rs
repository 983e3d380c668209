//! Memory bank: one insert into a full bank (the eviction path) and replay sampling of a batch
//! of 64 decoded embeddings, at d in {128, 1280}, capacity 4096, 10 classes, f32 and i8.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use edge_ssl::bank::{Bank, BankParams, Storage};
use edge_ssl::gate::Admitted;
use rand::{Rng, SeedableRng, rngs::StdRng};

fn full_bank(d: usize, storage: Storage, rng: &mut StdRng) -> Bank {
    let mut bank = BankParams::new(4096, d, 10).with_storage(storage).build().unwrap();
    let x: Vec<f32> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
    for i in 0..8192u32 {
        if i % 20 == 0 {
            bank.insert_given(&x, i % 10, rng).unwrap();
        } else {
            bank.insert_pseudo(Admitted::ungated(&x), i % 10, 0.9, rng).unwrap();
        }
    }
    bank
}

fn insert(c: &mut Criterion) {
    let mut g = c.benchmark_group("bank/insert_pseudo");
    g.throughput(Throughput::Elements(1));
    for d in [128, 1280] {
        for storage in [Storage::F32, Storage::I8] {
            let mut rng = StdRng::seed_from_u64(0);
            let mut bank = full_bank(d, storage, &mut rng);
            let x: Vec<f32> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut i = 0u32;
            g.bench_with_input(
                BenchmarkId::new(format!("{storage:?}"), format!("d{d}/n4096")),
                &d,
                |b, _| {
                    b.iter(|| {
                        i = i.wrapping_add(1);
                        let conf = 0.5 + (i % 100) as f32 * 0.005;
                        black_box(
                            bank.insert_pseudo(Admitted::ungated(&x), i % 10, conf, &mut rng)
                                .unwrap(),
                        )
                    })
                },
            );
        }
    }
    g.finish();
}

fn replay(c: &mut Criterion) {
    let mut g = c.benchmark_group("bank/sample_into");
    for d in [128, 1280] {
        for storage in [Storage::F32, Storage::I8] {
            let mut rng = StdRng::seed_from_u64(1);
            let bank = full_bank(d, storage, &mut rng);
            let mut x = vec![0f32; 64 * d];
            let mut y = vec![0u32; 64];
            g.throughput(Throughput::Elements(64));
            g.bench_with_input(
                BenchmarkId::new(format!("{storage:?}"), format!("d{d}/batch64")),
                &d,
                |b, _| b.iter(|| black_box(bank.sample_into(&mut rng, &mut x, &mut y).unwrap())),
            );
        }
    }
    g.finish();
}

criterion_group!(benches, insert, replay);
