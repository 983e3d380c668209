//! Backbone latency in the bench thread's CPU time (see `cpu_time.rs`), for the int8 vs f32
//! comparison and the physical limit (`python3 benches/peers/macs.py --measured`): one
//! `Backbone::embed` call (tract, single thread) per iteration for the shipped int8 camera model
//! and the f32 camera model when it has been rebuilt into `models/build/`
//! (`models/scripts/effnet_lite0.py`) and the pointwise-int8 experiment
//! (`benches/peers/int8_pointwise.py`), at 112 and 224, batch 1 and 8, and the MiniRocket IMU
//! extractor (int8 and f32, batch 1 and 8). The wall-clock twin of this bench is `backbone.rs`.

use std::hint::black_box;
use std::path::Path;

use criterion::measurement::WallTime;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use edge_ssl::{Backbone, BackboneSpec, Input, models};
use rand::{Rng, SeedableRng, rngs::StdRng};

use super::cpu_time::ThreadCpuTime;

const CAMERA_F32: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/models/build/efficientnet-lite0-f32.onnx");
/// Pointwise convs int8 (QLinearConv), the rest f32: `benches/peers/int8_pointwise.py`.
const CAMERA_PW_INT8: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/models/build/efficientnet-lite0-pw-int8.onnx");

fn bytes(n: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(5);
    (0..n).map(|_| rng.random()).collect()
}

fn camera(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("backbone_cpu/camera");
    g.sample_size(20);
    let mut models = vec![("int8", models::CAMERA_INT8)];
    for (kind, path) in [("f32", CAMERA_F32), ("pw-int8", CAMERA_PW_INT8)] {
        if Path::new(path).exists() {
            models.push((kind, path));
        }
    }
    for size in [112, 224] {
        for batch in [1, 8] {
            let x = bytes(batch * size * size * 3);
            for &(kind, path) in &models {
                g.throughput(Throughput::Elements(batch as u64));
                let id = BenchmarkId::new(kind, format!("size{size}/batch{batch}"));
                // Loaded on first use: criterion calls the closure only when the filter selects it.
                let mut state = None;
                g.bench_function(id, |b| {
                    let (bb, out) = state.get_or_insert_with(|| {
                        let spec = BackboneSpec::efficientnet_lite0(size, batch);
                        let bb = Backbone::load(path, spec).expect("model loads");
                        let out = vec![0.0; batch * bb.embedding_dim()];
                        (bb, out)
                    });
                    b.iter(|| bb.embed(Input::U8(black_box(&x)), black_box(out)).unwrap())
                });
            }
        }
    }
    g.finish();
}

fn sensor(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("backbone_cpu/sensor");
    for batch in [1, 8] {
        let x: Vec<f32> =
            bytes(batch * 128 * 6).iter().map(|&v| f32::from(v) / 25.0 - 5.0).collect();
        for (kind, path) in [("int8", models::SENSOR_INT8), ("f32", models::SENSOR_F32)] {
            let mut bb = Backbone::load(path, BackboneSpec::minirocket_imu(batch)).unwrap();
            let mut out = vec![0.0; batch * bb.embedding_dim()];
            g.throughput(Throughput::Elements(batch as u64));
            g.bench_function(BenchmarkId::new(kind, format!("batch{batch}")), |b| {
                b.iter(|| bb.embed(Input::F32(black_box(&x)), black_box(&mut out)).unwrap())
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime(WallTime));
    targets = camera, sensor
}
