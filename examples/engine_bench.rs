//! The per-engine tables of `BENCHMARKS.md`, from one command:
//!
//! ```sh
//! scripts/fetch-onnxruntime.sh                        # the onnxruntime library (PyPI wheel)
//! python3 models/scripts/effnet_lite0.py --f32-only   # optional: the f32 camera model
//! cargo run --release --features onnxruntime,multithread --example engine_bench [-- --reps 30]
//! ```
//!
//! 1. Backbone latency: one `Backbone::embed` call on the camera model (int8 shipped, f32 when
//!    built), 112 and 224, batch 1 and 8, 1 and 2 threads, tract and onnxruntime. Median of
//!    `--reps` calls after 2 warm-up calls; the engines alternate call by call, so both see the
//!    same machine load.
//! 2. End-to-end learner throughput: the default run's learner (FlexMatch + OOD gate, 10 labels
//!    per class) in a [`Device`] on Fashion-MNIST frames (28x28 resized to 112x112, batch 1,
//!    1 thread): samples/s over a stream of `--stream` frames (backbone pass + learning step),
//!    and the learner step alone on the cached embeddings.
//!
//! An engine that is not compiled in or whose library is missing shows as `n/a` with the reason
//! below the table; tract with 2 threads needs `--features multithread`.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use edge_ssl::backbone::Engine;
use edge_ssl::data::{idx, image::Geometry};
use edge_ssl::device::{Device, Frame};
use edge_ssl::learner::LearnerParams;
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

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let reps = arg("--reps", 30).max(1);
    let stream = arg("--stream", 500).max(1);
    let mut notes: Vec<String> = Vec::new();
    let mut note = |n: String| {
        if !notes.contains(&n) {
            notes.push(n);
        }
    };

    let mut models = vec![("int8", models::CAMERA_INT8)];
    if Path::new(CAMERA_F32).exists() {
        models.push(("f32", CAMERA_F32));
    } else {
        note(format!("f32: {CAMERA_F32} not built (models/scripts/effnet_lite0.py --f32-only)"));
    }
    println!("## Backbone latency (EfficientNet-Lite0, ms per call, median of {reps})\n");
    println!(
        "| model | size | batch | threads | tract ms | onnxruntime ms | tract / onnxruntime |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &(kind, path) in &models {
        for size in [112, 224] {
            for batch in [1, 8] {
                for threads in [1, 2] {
                    let x = pseudo_random_bytes(batch * size * size * 3);
                    let mut bbs: Vec<Option<(Backbone, Vec<f32>)>> = Vec::new();
                    for engine in Engine::ALL {
                        let spec = BackboneSpec::efficientnet_lite0(size, batch)
                            .with_engine(engine)
                            .with_threads(threads);
                        match Backbone::load(path, spec) {
                            Ok(bb) => {
                                let out = vec![0.0; batch * bb.embedding_dim()];
                                bbs.push(Some((bb, out)));
                            }
                            Err(e) => {
                                note(format!("{engine}, {threads} threads: {e}"));
                                bbs.push(None);
                            }
                        }
                    }
                    let mut times: Vec<Vec<f64>> = vec![Vec::new(); bbs.len()];
                    for rep in 0..reps + 2 {
                        for (slot, t) in bbs.iter_mut().zip(&mut times) {
                            if let Some((bb, out)) = slot {
                                let t0 = Instant::now();
                                bb.embed(Input::U8(black_box(&x)), black_box(out))?;
                                if rep >= 2 {
                                    t.push(t0.elapsed().as_secs_f64() * 1e3);
                                }
                            }
                        }
                    }
                    let cell = |t: &mut Vec<f64>| {
                        if t.is_empty() { None } else { Some(median(t)) }
                    };
                    let (tr, or) = (cell(&mut times[0]), cell(&mut times[1]));
                    let fmt = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.2}"));
                    let ratio = match (tr, or) {
                        (Some(a), Some(b)) => format!("{:.1}x", a / b),
                        _ => "-".into(),
                    };
                    println!(
                        "| {kind} | {size} | {batch} | {threads} | {} | {} | {ratio} |",
                        fmt(tr),
                        fmt(or)
                    );
                }
            }
        }
    }

    // End to end: the default run's learner in a Device, per engine.
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/data/fashion-mnist");
    let set = idx::read_images(
        format!("{data}/train-images-idx3-ubyte.gz"),
        Some(format!("{data}/train-labels-idx1-ubyte.gz")),
    )?;
    let labels = set.labels.clone().unwrap_or_default();
    let geometry = Geometry { height: 28, width: 28, channels: 1 };
    let frame = |i: usize| Frame::Image { pixels: set.image(i), geometry };
    println!(
        "\n## End-to-end learner throughput (default learner: FlexMatch + OOD gate, 10 labels \
         per class, {stream}-frame stream, 112x112, batch 1, 1 thread)\n"
    );
    println!(
        "| engine | samples/s (backbone + learning) | ms per sample | learner step alone, samples/s |"
    );
    println!("|---|---|---|---|");
    for engine in Engine::ALL {
        let spec = BackboneSpec::efficientnet_lite0(112, 1).with_engine(engine);
        let backbone = match Backbone::load(models::CAMERA_INT8, spec) {
            Ok(b) => b,
            Err(e) => {
                note(format!("{engine}: {e}"));
                println!("| {engine} | n/a | n/a | n/a |");
                continue;
            }
        };
        let params = LearnerParams::new(backbone.embedding_dim(), 10);
        let mut device = Device::new(backbone, &params)?;
        let mut given = [0; 10];
        let mut labelled = Vec::new();
        let mut first_unlabeled = 0;
        for (i, &y) in labels.iter().enumerate() {
            if given[y as usize] < 10 {
                given[y as usize] += 1;
                device.observe_labeled(frame(i), y)?;
                labelled.push((i, y));
            }
            if given.iter().all(|&g| g == 10) {
                first_unlabeled = i + 1;
                break;
            }
        }
        let rows: Vec<usize> = (first_unlabeled..set.len()).take(stream).collect();
        // The learner alone on precomputed embeddings (what the default run's samples/s is).
        let mut embs = Vec::with_capacity(rows.len() * device.backbone().embedding_dim());
        for &i in &rows {
            embs.extend_from_slice(device.embed(frame(i))?);
        }
        let t0 = Instant::now();
        for &i in &rows {
            device.observe(frame(i))?;
        }
        let end_to_end = rows.len() as f64 / t0.elapsed().as_secs_f64();
        let mut learner = params.build()?;
        let d = device.backbone().embedding_dim();
        for &(i, y) in &labelled {
            learner.observe_labeled(device.embed(frame(i))?, y)?;
        }
        let t0 = Instant::now();
        for e in embs.chunks(d) {
            learner.observe(e)?;
        }
        let learner_only = rows.len() as f64 / t0.elapsed().as_secs_f64();
        println!("| {engine} | {end_to_end:.0} | {:.2} | {learner_only:.0} |", 1e3 / end_to_end);
    }
    if !notes.is_empty() {
        println!();
        for n in notes {
            println!("- n/a: {n}");
        }
    }
    Ok(())
}
