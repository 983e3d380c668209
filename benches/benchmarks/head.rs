//! One training step of a linear head per objective, at embedding dims D in {64, 256, 1280},
//! K = 10 classes, batch n = 64.
//!
//! A step is: student forward on the batch, the objective (loss + d/dlogits), student backward
//! into preallocated gradients, one SGD (Nesterov) update and one EMA teacher update. The
//! teacher-based objectives (KD, FixMatch, FreeMatch, UDA, MixMatch, temporal ensembling,
//! InfoNCE) also include one teacher forward on the same batch; MixMatch and mixup include the
//! input mixing. InfoNCE uses the head's K-dim output as the embedding and a queue of 4096
//! negatives. `mlp_ce` is the supervised step of an MLP head with H = 128.
//! Throughput is reported in samples (n) per second. All buffers are built outside `b.iter`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use edge_ssl::head::{
    Grads, Head, ema::Ema, ema::EmaParams, linear::LinearParams, mlp::MlpParams, optim::Sgd,
    optim::SgdParams,
};
use edge_ssl::objective::{
    divergence::augmix_consistency,
    fixmatch::{AdaptiveThresholdParams, FixMatchParams},
    infonce::InfoNceParams,
    kd::KdParams,
    mixmatch::MixMatchParams,
    mixup::{MixupParams, mix_rows_into},
    softmax::{CrossEntropyParams, softmax_into},
    temporal::TemporalEnsembleParams,
    uda::UdaParams,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::hint::black_box;
use std::time::Duration;

const N: usize = 64;
const K: usize = 10;
const DIMS: [usize; 3] = [64, 256, 1280];
const QUEUE: usize = 4096;

struct Setup<H> {
    student: H,
    teacher: H,
    grads: Grads,
    sgd: Sgd,
    ema: Ema,
    rng: StdRng,
    x: Vec<f32>,
    x2: Vec<f32>,
    labels: Vec<u32>,
    z: Vec<f32>,
    zt: Vec<f32>,
    p: Vec<f32>,
    t: Vec<f32>,
    g: Vec<f32>,
    g2: Vec<f32>,
    g3: Vec<f32>,
}

impl<H: Head + Clone> Setup<H> {
    fn new(student: H, d: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(0);
        let mut v = |len| (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<_>>();
        let (x, x2) = (v(N * d), v(N * d));
        Setup {
            teacher: student.clone(),
            grads: student.grads(),
            sgd: SgdParams::default().check().unwrap().build(student.n_params()),
            student,
            ema: EmaParams::default().check().unwrap(),
            rng: StdRng::seed_from_u64(1),
            x,
            x2,
            labels: (0..N as u32).map(|i| i % K as u32).collect(),
            z: vec![0.0; N * K],
            zt: vec![0.0; N * K],
            p: vec![0.0; N * K],
            t: vec![0.0; N * K],
            g: vec![0.0; N * K],
            g2: vec![0.0; N * K],
            g3: vec![0.0; N * K],
        }
    }

    /// Backward of `self.g` on `x`, SGD, EMA.
    fn finish(&mut self, strong: bool) {
        self.grads.zero();
        let x = if strong { &self.x2 } else { &self.x };
        self.student.backward_into(x, &self.g, &mut self.grads).unwrap();
        self.sgd.step(self.student.params_mut(), self.grads.as_slice()).unwrap();
        let step = self.sgd.steps_done();
        self.ema.update(self.teacher.params_mut(), self.student.params(), step).unwrap();
    }

    fn teacher_probs(&mut self) {
        self.teacher.forward_into(&self.x, &mut self.zt).unwrap();
        softmax_into(&self.zt, K, 1.0, &mut self.p).unwrap();
    }
}

fn linear(d: usize) -> Setup<edge_ssl::head::linear::Linear> {
    let h = LinearParams::new(d, K).check().unwrap().build(&mut StdRng::seed_from_u64(2));
    Setup::new(h, d)
}

fn bench_steps(c: &mut Criterion) {
    let mut group = c.benchmark_group("head_step");
    group.throughput(Throughput::Elements(N as u64));
    let ce = CrossEntropyParams::plain().check().unwrap();
    let kd = KdParams::default().check().unwrap();
    let fm = FixMatchParams::default().check().unwrap();
    let uda = UdaParams::default().check().unwrap();
    let mm = MixMatchParams::default().check().unwrap();
    let mixup = MixupParams::default().check().unwrap();
    let nce = InfoNceParams::default().check().unwrap();
    for d in DIMS {
        let id = |name: &str| BenchmarkId::new(name, format!("d{d}_k{K}_n{N}"));

        let mut s = linear(d);
        group.bench_function(id("ce"), |b| {
            b.iter(|| {
                s.student.forward_into(black_box(&s.x), &mut s.z).unwrap();
                black_box(ce.hard(&s.z, &s.labels, &mut s.g).unwrap());
                s.finish(false);
            })
        });

        let mut s = linear(d);
        group.bench_function(id("kd"), |b| {
            b.iter(|| {
                s.teacher.forward_into(black_box(&s.x), &mut s.zt).unwrap();
                s.student.forward_into(&s.x, &mut s.z).unwrap();
                black_box(kd.loss(&s.z, &s.zt, K, &mut s.g).unwrap());
                s.finish(false);
            })
        });

        let mut s = linear(d);
        group.bench_function(id("fixmatch"), |b| {
            b.iter(|| {
                s.teacher_probs();
                s.student.forward_into(black_box(&s.x2), &mut s.z).unwrap();
                black_box(fm.unlabeled_loss(&s.p, &s.z, K, &mut s.g).unwrap());
                s.finish(true);
            })
        });

        let mut s = linear(d);
        let mut at = AdaptiveThresholdParams::new(K).check().unwrap().build();
        group.bench_function(id("freematch"), |b| {
            b.iter(|| {
                s.teacher_probs();
                at.update(&s.p).unwrap();
                s.student.forward_into(black_box(&s.x2), &mut s.z).unwrap();
                black_box(at.unlabeled_loss(&s.p, &s.z, &mut s.g).unwrap());
                s.finish(true);
            })
        });

        let mut s = linear(d);
        group.bench_function(id("uda"), |b| {
            b.iter(|| {
                s.teacher.forward_into(black_box(&s.x), &mut s.zt).unwrap();
                s.student.forward_into(&s.x2, &mut s.z).unwrap();
                black_box(uda.unlabeled_loss(&s.zt, &s.z, K, &mut s.g).unwrap());
                s.finish(true);
            })
        });

        let mut s = linear(d);
        let mut partner = vec![0usize; N];
        let mut xm = vec![0.0f32; N * d];
        group.bench_function(id("mixmatch"), |b| {
            b.iter(|| {
                s.teacher_probs();
                softmax_into(&s.zt, K, 1.0, &mut s.g3).unwrap();
                mm.guess_labels_into(&[&s.p, &s.g3], K, &mut s.t).unwrap();
                let lambda = mm.sample_lambda(&mut s.rng);
                mm.mixup().shuffle_partners(&mut s.rng, &mut partner);
                mix_rows_into(&s.x, d, &partner, lambda, &mut xm).unwrap();
                mix_rows_into(&s.t, K, &partner, lambda, &mut s.g3).unwrap();
                s.student.forward_into(&xm, &mut s.z).unwrap();
                black_box(mm.unlabeled_loss(&s.z, &s.g3, K, &mut s.g).unwrap());
                s.grads.zero();
                s.student.backward_into(&xm, &s.g, &mut s.grads).unwrap();
                s.sgd.step(s.student.params_mut(), s.grads.as_slice()).unwrap();
                s.ema.update(s.teacher.params_mut(), s.student.params(), 1).unwrap();
            })
        });

        let mut s = linear(d);
        let ce_s = CrossEntropyParams::plain().check().unwrap();
        group.bench_function(id("mixup"), |b| {
            b.iter(|| {
                let lambda = mixup.sample_lambda(&mut s.rng);
                mixup.shuffle_partners(&mut s.rng, &mut partner);
                mix_rows_into(&s.x, d, &partner, lambda, &mut xm).unwrap();
                edge_ssl::objective::softmax::one_hot_into(&s.labels, K, 0.0, &mut s.t).unwrap();
                mix_rows_into(&s.t, K, &partner, lambda, &mut s.g3).unwrap();
                s.student.forward_into(&xm, &mut s.z).unwrap();
                black_box(ce_s.soft(&s.z, &s.g3, K, &mut s.g).unwrap());
                s.grads.zero();
                s.student.backward_into(&xm, &s.g, &mut s.grads).unwrap();
                s.sgd.step(s.student.params_mut(), s.grads.as_slice()).unwrap();
                s.ema.update(s.teacher.params_mut(), s.student.params(), 1).unwrap();
            })
        });

        let mut s = linear(d);
        group.bench_function(id("augmix_js"), |b| {
            b.iter(|| {
                s.student.forward_into(black_box(&s.x), &mut s.zt).unwrap();
                s.student.forward_into(&s.x2, &mut s.z).unwrap();
                let (g, g2, g3) = (&mut s.g, &mut s.g2, &mut s.g3);
                black_box(augmix_consistency([&s.z, &s.zt, &s.zt], K, [g, g2, g3]).unwrap());
                s.finish(true);
            })
        });

        let mut s = linear(d);
        let mut te = TemporalEnsembleParams::new(N, K).check().unwrap().build();
        let idx: Vec<usize> = (0..N).collect();
        group.bench_function(id("temporal"), |b| {
            b.iter(|| {
                s.student.forward_into(black_box(&s.x), &mut s.z).unwrap();
                softmax_into(&s.z, K, 1.0, &mut s.p).unwrap();
                te.accumulate(&idx, &s.p).unwrap();
                te.targets_into(&idx, &mut s.t).unwrap();
                black_box(
                    edge_ssl::objective::divergence::squared_error(&s.z, &s.t, K, &mut s.g)
                        .unwrap(),
                );
                s.finish(false);
            })
        });

        let mut s = linear(d);
        let queue: Vec<f32> =
            (0..QUEUE * K).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        group.bench_function(id("infonce_q4096"), |b| {
            b.iter(|| {
                s.teacher.forward_into(black_box(&s.x), &mut s.zt).unwrap();
                s.student.forward_into(&s.x2, &mut s.z).unwrap();
                black_box(nce.loss(&s.z, &s.zt, &queue, K, &mut s.g).unwrap());
                s.finish(true);
            })
        });

        let h = MlpParams::new(d, 128, K, N).check().unwrap().build(&mut StdRng::seed_from_u64(3));
        let mut s = Setup::new(h, d);
        group.bench_function(id("mlp_ce_h128"), |b| {
            b.iter(|| {
                s.student.forward_into(black_box(&s.x), &mut s.z).unwrap();
                black_box(ce.hard(&s.z, &s.labels, &mut s.g).unwrap());
                s.finish(false);
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    targets = bench_steps
}
