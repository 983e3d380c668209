//! Proves that a full training step allocates nothing once warm: student and teacher forward,
//! every objective, backward, SGD and the EMA update, for both heads.
//!
//! A counting `#[global_allocator]` counts allocations made on this test's thread while a
//! thread-local flag is set (the test harness's own threads are not counted).

use edge_ssl::head::{
    Grads, Head, ema::Ema, ema::EmaParams, linear::LinearParams, mlp::MlpParams, optim::Sgd,
    optim::SgdParams,
};
use edge_ssl::objective::{
    divergence::{augmix_consistency, kl_into, squared_error},
    fixmatch::{AdaptiveThreshold, AdaptiveThresholdParams, FixMatch, FixMatchParams},
    infonce::{InfoNce, InfoNceParams},
    kd::{Kd, KdParams},
    mixmatch::{MixMatch, MixMatchParams},
    mixup::{Mixup, MixupParams, cutmix_lambda, mix_into, mix_rows_into},
    noisy::{NoisyTeacher, NoisyTeacherParams},
    softmax::{
        CrossEntropy, CrossEntropyParams, log_softmax_into, one_hot_into, sharpen_into,
        softmax_into,
    },
    temporal::{TemporalEnsemble, TemporalEnsembleParams},
    uda::{Tsa, TsaParams, TsaSchedule, Uda, UdaParams},
};
use rand::{Rng, SeedableRng, rngs::StdRng};

mod common;

use common::allocations_in;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

const N: usize = 16;
const D: usize = 32;
const K: usize = 10;
const Q: usize = 64;

/// Everything a step needs, allocated once.
struct Step<H> {
    student: H,
    teacher: H,
    grads: Grads,
    sgd: Sgd,
    ema: Ema,
    ce: CrossEntropy,
    kd: Kd,
    noisy: NoisyTeacher,
    fixmatch: FixMatch,
    adaptive: AdaptiveThreshold,
    uda: Uda,
    tsa: Tsa,
    mixmatch: MixMatch,
    mixup: Mixup,
    temporal: TemporalEnsemble,
    nce: InfoNce,
    rng: StdRng,
    x: Vec<f32>,
    x_strong: Vec<f32>,
    x_mixed: Vec<f32>,
    labels: Vec<u32>,
    indices: Vec<usize>,
    partner: Vec<usize>,
    queue: Vec<f32>,
    bufs: [Vec<f32>; 10],
}

impl<H: Head + Clone> Step<H> {
    fn new(student: H) -> Self {
        let mut rng = StdRng::seed_from_u64(7);
        let x = (0..N * D).map(|_| rng.random_range(-1.0..1.0)).collect();
        let x_strong = (0..N * D).map(|_| rng.random_range(-1.0..1.0)).collect();
        let queue = (0..Q * K).map(|_| rng.random_range(-1.0..1.0)).collect();
        Step {
            teacher: student.clone(),
            grads: student.grads(),
            sgd: SgdParams::default().check().unwrap().build(student.n_params()),
            student,
            ema: EmaParams::default().check().unwrap(),
            ce: CrossEntropyParams::default().check().unwrap(),
            kd: KdParams::default().check().unwrap(),
            noisy: NoisyTeacherParams::default().check().unwrap(),
            fixmatch: FixMatchParams { threshold: 0.2, ..FixMatchParams::default() }
                .check()
                .unwrap(),
            adaptive: AdaptiveThresholdParams::new(K).check().unwrap().build(),
            uda: UdaParams { confidence: 0.2, ..UdaParams::default() }.check().unwrap(),
            tsa: TsaParams { schedule: TsaSchedule::Exp, total_steps: 100 }.check().unwrap(),
            mixmatch: MixMatchParams::default().check().unwrap(),
            mixup: MixupParams::default().check().unwrap(),
            temporal: TemporalEnsembleParams::new(N, K).check().unwrap().build(),
            nce: InfoNceParams::default().check().unwrap(),
            rng,
            x,
            x_strong,
            x_mixed: vec![0.0; N * D],
            labels: (0..N as u32).map(|i| i % K as u32).collect(),
            indices: (0..N).collect(),
            partner: vec![0; N],
            queue,
            bufs: std::array::from_fn(|_| vec![0.0; N * K]),
        }
    }

    fn run(&mut self) {
        let [zs, zt, p, g, g2, g3, t, t2, zw, za] = &mut self.bufs;
        self.grads.zero();
        // Teacher on the weak view: probabilities, noisy logits, adaptive threshold, TE.
        self.teacher.forward_into(&self.x, zt).unwrap();
        softmax_into(zt, K, 1.0, p).unwrap();
        log_softmax_into(zt, K, 1.0, t).unwrap();
        sharpen_into(p, K, 0.5, t).unwrap();
        self.adaptive.update(p).unwrap();
        self.temporal.accumulate(&self.indices, p).unwrap();
        zw.copy_from_slice(zt);
        self.noisy.perturb(&mut self.rng, zw, K).unwrap();

        // Student on the weak view: supervised CE, TSA, KD, KL, temporal ensembling, InfoNCE.
        self.student.forward_into(&self.x, zs).unwrap();
        self.ce.hard(zs, &self.labels, g).unwrap();
        self.tsa.supervised_loss(zs, &self.labels, K, 3, g2).unwrap();
        add(g, g2);
        self.kd.loss(zs, zw, K, g2).unwrap();
        add(g, g2);
        kl_into(p, zs, K, 1.0, g2).unwrap();
        add(g, g2);
        self.temporal.targets_into(&self.indices, t2).unwrap();
        squared_error(zs, t2, K, g2).unwrap();
        add(g, g2);
        self.nce.loss(zs, zt, &self.queue, K, g2).unwrap();
        add(g, g2);
        self.student.backward_into(&self.x, g, &mut self.grads).unwrap();

        // Student on the strong view: FixMatch, FreeMatch, UDA, AugMix JS.
        self.student.forward_into(&self.x_strong, zs).unwrap();
        self.fixmatch.unlabeled_loss(p, zs, K, g).unwrap();
        self.adaptive.unlabeled_loss(p, zs, g2).unwrap();
        add(g, g2);
        self.uda.unlabeled_loss(zt, zs, K, g2).unwrap();
        add(g, g2);
        za.copy_from_slice(zs);
        za.iter_mut().zip(zt.iter()).for_each(|(a, b)| *a = 0.5 * (*a + b));
        let (mut j1, mut j2) = ([0.0; N * K], [0.0; N * K]);
        augmix_consistency([zs, zt, za], K, [g2, &mut j1, &mut j2]).unwrap();
        add(g, g2);
        self.student.backward_into(&self.x_strong, g, &mut self.grads).unwrap();

        // Mixup / MixMatch / CutMix labels on mixed inputs.
        let lambda = self.mixmatch.sample_lambda(&mut self.rng);
        self.mixup.shuffle_partners(&mut self.rng, &mut self.partner);
        mix_rows_into(&self.x, D, &self.partner, lambda, &mut self.x_mixed).unwrap();
        softmax_into(zt, K, 1.0, t).unwrap();
        self.mixmatch.guess_labels_into(&[p, t], K, t2).unwrap();
        mix_rows_into(t2, K, &self.partner, lambda, t).unwrap();
        self.student.forward_into(&self.x_mixed, zs).unwrap();
        self.mixmatch.unlabeled_loss(zs, t, K, g).unwrap();
        one_hot_into(&self.labels, K, 0.0, t2).unwrap();
        let l2 = self.mixup.sample_lambda(&mut self.rng).min(cutmix_lambda(16, 64).unwrap());
        mix_into(t2, t, l2, g3).unwrap();
        self.ce.soft(zs, g3, K, g2).unwrap();
        add(g, g2);
        self.student.backward_into(&self.x_mixed, g, &mut self.grads).unwrap();

        // Optimizer and teacher.
        self.sgd.step(self.student.params_mut(), self.grads.as_slice()).unwrap();
        self.ema
            .update(self.teacher.params_mut(), self.student.params(), self.sgd.steps_done())
            .unwrap();
    }
}

fn add(a: &mut [f32], b: &[f32]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
}

#[test]
fn a_warm_step_allocates_nothing() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut linear = Step::new(LinearParams::new(D, K).check().unwrap().build(&mut rng));
    let mut mlp = Step::new(MlpParams::new(D, 24, K, N).check().unwrap().build(&mut rng));
    linear.run();
    mlp.run();
    // The counter works: a Vec allocates.
    assert_eq!(allocations_in(|| drop(std::hint::black_box(vec![1u8; 10]))), 1);
    assert_eq!(allocations_in(|| (0..5).for_each(|_| linear.run())), 0, "linear head step");
    assert_eq!(allocations_in(|| (0..5).for_each(|_| mlp.run())), 0, "MLP head step");
    assert!(linear.student.params().iter().all(|v| v.is_finite()));
    assert!(mlp.student.params().iter().all(|v| v.is_finite()));
}
