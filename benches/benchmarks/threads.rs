//! tract on 1 vs 2 threads (`--features multithread`, tract-linalg's `multithread-mm`): one
//! `Backbone::embed` of the int8 and f32 camera models at 224, batch 1 and 8, after
//! `backbone::set_threads(n)`. Wall-clock time (CPU time would miss the pool's other thread),
//! so it needs an otherwise idle machine to mean anything.
//!
//! `cargo bench --features multithread --bench bench_main -- backbone_threads`; without the
//! feature the group is empty.

use criterion::{Criterion, criterion_group};

#[cfg(not(feature = "multithread"))]
fn threads(_: &mut Criterion) {}

#[cfg(feature = "multithread")]
use {
    criterion::{BenchmarkId, Throughput},
    edge_ssl::backbone::set_threads,
    edge_ssl::{Backbone, BackboneSpec, Input, models},
    std::hint::black_box,
    std::path::Path,
};

#[cfg(feature = "multithread")]
const CAMERA_F32: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/models/build/efficientnet-lite0-f32.onnx");

#[cfg(feature = "multithread")]
fn threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("backbone_threads");
    g.sample_size(10);
    let mut models = vec![("int8", models::CAMERA_INT8)];
    if Path::new(CAMERA_F32).exists() {
        models.push(("f32", CAMERA_F32));
    }
    let size = 224;
    for batch in [1, 8] {
        let x = vec![97u8; batch * size * size * 3];
        for &(kind, path) in &models {
            for n in [1, 2] {
                g.throughput(Throughput::Elements(batch as u64));
                let id = BenchmarkId::new(format!("{kind}/threads{n}"), format!("batch{batch}"));
                let mut state = None;
                g.bench_function(id, |b| {
                    let (bb, out) = state.get_or_insert_with(|| {
                        let spec = BackboneSpec::efficientnet_lite0(size, batch);
                        let bb = Backbone::load(path, spec).expect("model loads");
                        let out = vec![0.0; batch * bb.embedding_dim()];
                        (bb, out)
                    });
                    set_threads(n).unwrap();
                    b.iter(|| bb.embed(Input::U8(black_box(&x)), black_box(out)).unwrap())
                });
            }
        }
    }
    set_threads(1).unwrap();
    g.finish();
}

criterion_group!(benches, threads);
