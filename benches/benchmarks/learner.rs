//! The learner's cost per sample, next to one backbone pass (goal 1 of the performance issue:
//! everything in an unlabeled `observe` except backbone passes <= 5% of one backbone pass).
//!
//! - `learner/observe/<algorithm>/d1280`: one `Learner::observe` on a synthetic 1280-d
//!   embedding stream with `LearnerParams::new(1280, 10)` (FlexMatch, OOD gate, bank 4096, replay
//!   16 given + 112 admitted rows per step): gate score, teacher pseudo-label, bank insert
//!   (eviction), one replay step (teacher forward, embedding-space strong view, student forward
//!   and backward, SGD, EMA). `labelprop` includes its graph refresh every 500 samples, amortized
//!   over the iterations (the refresh alone: `propagate/refresh`). `flexmatch-noview` is the
//!   default with the strong view switched off (noise 0, dropout 0): the difference is what the
//!   embedding-space view costs. `adapt-labelprop/d5120`: the same stream spread over 320 x
//!   4 x 4 maps, with the adaptive block ([`edge_ssl::adapt`], the shipped head convolution):
//!   its block step every 2 samples and the bank's embedding refresh every 500, amortized.
//! - `learner/predict/labelprop/d1280`: one `Learner::predict` of the default learner, with
//!   the bank graph's vote; `labelprop-novote` without it (the teacher alone).
//! - `learner/backbone/int8/size112`: one `Backbone::embed` of the default camera model (int8
//!   EfficientNet-Lite0, 112x112, batch 1), measured in the same run as the learner step.
//! - `learner/device/int8/size112`: `Device::observe` of a 112x112 frame: resize (identity),
//!   backbone pass and the learner step.
//!
//! Time is the bench thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`, see `cpu_time.rs`), not wall
//! time, so the ratios hold on a shared, loaded machine.
//!
//! Every learner is warmed past the gate fit and a full bank before it is measured (several
//! thousand steps, ~10-40 s per learner); in criterion's test mode (`cargo test --benches`, no
//! `--bench` argument) only past the gate fit, so the smoke test stays cheap.
//! `python3 benches/peers/ratios.py` prints the ratios from criterion's saved estimates.

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use edge_ssl::adapt::AdaptParams;
use edge_ssl::backbone::PointwiseConv;
use edge_ssl::data::image::Geometry;
use edge_ssl::device::{Device, Frame};
use edge_ssl::learner::{Algorithm, Learner, LearnerParams};
use edge_ssl::{Backbone, BackboneSpec, Input, models};
use rand::{Rng, SeedableRng, rngs::StdRng};

use super::cpu_time::ThreadCpuTime;

const D: usize = 1280;
const K: usize = 10;
/// Distinct stream samples, cycled through by the measured iterations.
const POOL: usize = 1024;

/// True under `cargo bench` (criterion gets `--bench`), false in `cargo test --benches`.
fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A synthetic embedding stream: `K` class centres in `[0, 1]^D` plus uniform noise, clipped
/// at 0 like a pooled ReLU6 embedding; one sample in ten is a low-norm "strange" input. With
/// `map`, each sample is spread over a 320 x 4 x 4 map (`MAP` values) for an adaptive learner.
struct Stream {
    centres: Vec<f32>,
    rng: StdRng,
    map: bool,
}

/// Values of the camera model's last block map (320 channels x 16 positions).
const MAP: usize = 320 * 16;

impl Stream {
    fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let centres = (0..K * D).map(|_| rng.random::<f32>()).collect();
        Stream { centres, rng, map: false }
    }

    fn sample(&mut self, class: Option<usize>) -> Vec<f32> {
        let centre = &self.centres[class.unwrap_or(0) * D..][..D];
        let scale = if class.is_some() { 1.0 } else { 0.2 };
        let x: Vec<f32> = centre
            .iter()
            .map(|m| scale * (m + self.rng.random_range(-0.3..0.3f32)).max(0.0))
            .collect();
        if self.map { (0..MAP).map(|i| x[i % D] - 0.5).collect() } else { x }
    }

    fn unlabeled(&mut self) -> Vec<f32> {
        let c = self.rng.random_range(0..K);
        let strange = self.rng.random_bool(0.1);
        self.sample((!strange).then_some(c))
    }
}

/// 10 labels per class, then enough unlabeled samples to fit the gate (512) and, in a full
/// run, fill the bank (4096 entries; ~87% of the stream is admitted).
fn warm(learner: &mut Learner, stream: &mut Stream) {
    for i in 0..10 * K {
        learner.observe_labeled(&stream.sample(Some(i % K)), (i % K) as u32).unwrap();
    }
    let n = if full_run() { 5200 } else { 520 };
    for _ in 0..n {
        learner.observe(&stream.unlabeled()).unwrap();
    }
    assert!(learner.gate_fitted() || learner.params().gate.is_none());
    if full_run() {
        assert!(learner.bank().is_full(), "bank full");
    }
}

/// A learner built from `p` and warmed ([`warm`]) on the stream of `seed` (as maps for an
/// adaptive learner), and the next `POOL` unlabeled samples of that stream.
fn warmed(p: &LearnerParams, seed: u64) -> (Learner, Vec<Vec<f32>>) {
    let mut stream = Stream::new(seed);
    stream.map = p.adapt.is_some();
    let mut learner = p.build().unwrap();
    warm(&mut learner, &mut stream);
    let pool = (0..POOL).map(|_| stream.unlabeled()).collect();
    (learner, pool)
}

fn observe(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("learner/observe");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));
    let mut noview = LearnerParams::new(D, K);
    noview.strong_view.noise = 0.0;
    noview.strong_view.dropout = 0.0;
    let mut labelprop = LearnerParams::new(D, K);
    labelprop.algorithm = Algorithm::LabelProp;
    let conv = PointwiseConv::read_qdq(models::CAMERA_INT8, models::CAMERA_HEAD_CONV).unwrap();
    let mut adapt = LearnerParams::new(D, K).with_adapt(AdaptParams::new(conv, 16));
    // No gate: the synthetic maps' shipped embeddings are too degenerate for its covariance
    // (a real map's are not); the gate costs one 16-d score per sample.
    adapt.gate = None;
    for (name, p) in [
        ("flexmatch", LearnerParams::new(D, K)),
        ("flexmatch-noview", noview),
        ("labelprop", labelprop),
        ("adapt-labelprop", adapt),
    ] {
        // Warmed on first use: criterion calls the closure only when the filter selects it.
        let mut state = None;
        let mut i = 0;
        g.bench_function(BenchmarkId::new(name, format!("d{}", p.dim)), |b| {
            let (learner, pool) = state.get_or_insert_with(|| warmed(&p, 1));
            b.iter(|| {
                i = (i + 1) % POOL;
                black_box(learner.observe(black_box(&pool[i])).unwrap())
            })
        });
    }
    g.finish();
}

/// `learner/predict/<variant>/d1280`: one `Learner::predict` of the warmed default learner
/// (label propagation, gate), with the bank graph's vote (`labelprop`, the default
/// `graph_vote` 0.5) and without it (`labelprop-novote`, the teacher alone).
fn predict(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("learner/predict");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));
    let mut novote = LearnerParams::new(D, K);
    novote.graph_vote = 0.0;
    for (name, p) in [("labelprop", LearnerParams::new(D, K)), ("labelprop-novote", novote)] {
        let mut state = None;
        let mut i = 0;
        g.bench_function(BenchmarkId::new(name, format!("d{D}")), |b| {
            let (learner, pool) = state.get_or_insert_with(|| {
                let (learner, pool) = warmed(&p, 2);
                assert!(learner.propagation().unwrap().refreshes() > 0, "the graph votes");
                (learner, pool)
            });
            b.iter(|| {
                i = (i + 1) % POOL;
                black_box(learner.predict(black_box(&pool[i])).unwrap())
            })
        });
    }
    g.finish();
}

fn pseudo_random_bytes(n: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(3);
    (0..n).map(|_| rng.random()).collect()
}

fn with_backbone(c: &mut Criterion<ThreadCpuTime>) {
    let size = 112;
    let frame = pseudo_random_bytes(size * size * 3);
    let mut g = c.benchmark_group("learner");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));
    let spec = BackboneSpec::efficientnet_lite0(size, 1);
    let load = || Backbone::load(models::CAMERA_INT8, spec.clone()).expect("shipped model loads");
    let mut backbone = None;
    g.bench_function(BenchmarkId::new("backbone/int8", format!("size{size}")), |b| {
        let (bb, out) = backbone.get_or_insert_with(|| {
            let bb = load();
            let out = vec![0.0; bb.embedding_dim()];
            (bb, out)
        });
        b.iter(|| bb.embed(Input::U8(black_box(&frame)), black_box(out)).unwrap())
    });
    let geometry = Geometry { height: size, width: size, channels: 3 };
    let mut device = None;
    g.bench_function(BenchmarkId::new("device/int8", format!("size{size}")), |b| {
        let device = device.get_or_insert_with(|| {
            let mut device = Device::new(load(), &LearnerParams::new(D, K)).unwrap();
            warm(device.learner_mut(), &mut Stream::new(1));
            device
        });
        b.iter(|| {
            black_box(device.observe(Frame::Image { pixels: black_box(&frame), geometry }).unwrap())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime(WallTime));
    targets = observe, predict, with_backbone
}
