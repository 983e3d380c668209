//! Backbone latency: one `Backbone::embed` call per iteration, per engine, for the shipped int8
//! camera model at 112 and 224 (batch 1 and 8), the f32 camera model when it has been rebuilt
//! into `models/build/` (`models/scripts/effnet_lite0.py --f32-only`; not shipped, 18 MB), and
//! the MiniRocket IMU extractor (int8 and f32). Ids are `<engine>/<model>/...`: tract always,
//! onnxruntime when built with `--features onnxruntime` and its library loads (otherwise its
//! benches are left out; `examples/engine_bench.rs` prints why). One thread. Throughput is in
//! samples. Input: a fixed pseudo-random image or window, so every model sees the same bytes.
//! The side-by-side table of `BENCHMARKS.md` comes from `examples/engine_bench.rs`.

use std::hint::black_box;
use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput};
use edge_ssl::backbone::Engine;
use edge_ssl::{Backbone, BackboneSpec, Input, models};

const CAMERA_F32: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/models/build/efficientnet-lite0-f32.onnx");

fn pseudo_random_bytes(n: usize) -> Vec<u8> {
    let mut s = 0x2545_f491_4f6c_dd1d_u64;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 56) as u8
        })
        .collect()
}

/// The backbone, or `None` for onnxruntime when it is not built or its library is missing.
/// tract must load: the shipped models are its contract.
fn load(engine: Engine, path: &str, spec: BackboneSpec) -> Option<Backbone> {
    match Backbone::load(path, spec) {
        Ok(bb) => Some(bb),
        Err(e) if engine == Engine::Tract => panic!("{path} on tract: {e}"),
        Err(_) => None,
    }
}

fn camera(c: &mut Criterion) {
    let mut group = c.benchmark_group("backbone/camera");
    group.sample_size(20);
    let mut models = vec![("int8", models::CAMERA_INT8)];
    if Path::new(CAMERA_F32).exists() {
        models.push(("f32", CAMERA_F32));
    }
    for size in [112, 224] {
        for batch in [1, 8] {
            for &(kind, path) in &models {
                for engine in Engine::ALL {
                    let spec = BackboneSpec::efficientnet_lite0(size, batch).with_engine(engine);
                    let Some(mut bb) = load(engine, path, spec) else { continue };
                    let x = pseudo_random_bytes(batch * size * size * 3);
                    let mut out = vec![0.0; batch * bb.embedding_dim()];
                    group.throughput(Throughput::Elements(batch as u64));
                    let id = BenchmarkId::new(
                        format!("{engine}/{kind}"),
                        format!("size{size}/batch{batch}"),
                    );
                    group.bench_function(id, |b| {
                        b.iter(|| {
                            bb.embed(Input::U8(black_box(&x)), black_box(&mut out)).expect("embed")
                        })
                    });
                }
            }
        }
    }
    group.finish();
}

fn sensor(c: &mut Criterion) {
    let mut group = c.benchmark_group("backbone/sensor");
    for batch in [1, 8] {
        for (kind, path) in [("int8", models::SENSOR_INT8), ("f32", models::SENSOR_F32)] {
            for engine in Engine::ALL {
                let spec = BackboneSpec::minirocket_imu(batch).with_engine(engine);
                let Some(mut bb) = load(engine, path, spec) else { continue };
                let x: Vec<f32> = pseudo_random_bytes(batch * 128 * 6)
                    .iter()
                    .map(|&v| f32::from(v) / 25.0 - 5.0)
                    .collect();
                let mut out = vec![0.0; batch * bb.embedding_dim()];
                group.throughput(Throughput::Elements(batch as u64));
                let id = BenchmarkId::new(format!("{engine}/{kind}"), format!("batch{batch}"));
                group.bench_function(id, |b| {
                    b.iter(|| {
                        bb.embed(Input::F32(black_box(&x)), black_box(&mut out)).expect("embed")
                    })
                });
            }
        }
    }
    group.finish();
}

criterion::criterion_group!(benches, camera, sensor);
