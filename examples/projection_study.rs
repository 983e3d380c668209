//! Issue 10: does a projection `g: D -> d` learned on the unlabeled stream with InfoNCE help
//! (a) the kNN graph of label propagation, (b) the OOD gate, (c) the classifier's input?
//!
//! Offline, on the cached EfficientNet-Lite0 embeddings of `experiments/fmnist-10-ood30.toml`
//! (pool, test and the MNIST `ood` set; the same cache folder as the CLI, so nothing is
//! re-embedded). Per seed the labelled set and the stream are drawn exactly as
//! `edge_ssl::experiment::run` draws them for `experiments/fmnist-10-clean.toml` (10 labels per
//! class, a clean 5000-sample stream), so the numbers pair with EVALUATION.md's.
//!
//! Feature spaces (every learned or PCA map acts on `u = normalize(x) - mean`, the mean of the
//! normalized labelled + stream rows, and its output rows are L2-normalized):
//! - `raw`: what the crate does today. Graph: the PCA-128 whitened map that `propagate.rs` fits
//!   (replicated here: same row stride, same subspace iterations); head: the raw 1280-d
//!   embedding (the learner's input); gate: PCA-16 of the raw embedding (the learner's gate).
//! - `pcaw128`, `pcaw64`, `pcaw16`: the whitened PCA map to 128/64/16 dims used for every
//!   metric (the starting point of the `pca`-initialised projections). `pcaw128-mixfit`: the
//!   same map fitted on labelled + the ood30 stream (30% digits) instead of the clean stream.
//! - `g{d}-{init}-t{T}`: a linear `d x 1280` map trained by MoCo-style InfoNCE between two
//!   strong embedding-space views (`LearnerParams::strong_view`: noise 0.1 x RMS, dropout 0.1)
//!   of the same stream sample: query `g(view1)`, key = a momentum copy `g'(view2)` (momentum
//!   0.99, no gradient), negatives = a queue of the last 1024 keys, `objective::infonce`'s
//!   loss and gradient, the crate's SGD (momentum 0.9, no weight decay, cosine decay), batches
//!   of 32 queries, `EPOCHS` passes over the stream in a random order. `init` = `pca` (the
//!   PCA-whitening above, truncated to `d` rows) or `rand` (Gaussian / sqrt(D)); either is
//!   rescaled so that the RMS of `|W u|` is 1 (the output is normalized, so this changes only
//!   the step size, and one learning rate fits both inits).
//! - `...-supcon`: as above plus 8 labelled queries per batch whose positive key is another
//!   labelled sample of the same class (a sampled form of SupCon on the 100 labels).
//!
//! Metrics, per seed and space:
//! 1. graph: the crate's `Propagation` (10-NN, s^3, alpha 0.9, 20 iterations) on a `Bank` of the
//!    100 labelled rows (clamped) and the 5000 stream rows mapped into the space (`pca_dim` =
//!    the space's dimension, `whiten = false`: a rotation of the centred rows, so the graph is
//!    the cosine graph of the space). Stream rows start UNIFORM (no teacher), so this measures
//!    the graph alone. `prop@100` / `prop@50`: accuracy of the propagated labels on all stream
//!    rows / on the half with the largest weight (certainty x class balance, as
//!    `scenario.rs` ranks them). `kNN`: test accuracy of a 10-NN classifier (cosine in the
//!    centred space, votes weighted s^3) over the 100 labels + the 5000 propagated labels.
//!    The `raw-exact` row is `propagate.rs` itself on the raw 1280-d bank (PCA-128 whitened
//!    inside), a check of the replication.
//! 2. classifier: `scenario::run_stream` with `Algorithm::Supervised` (the learner's linear head,
//!    SGD, weight decay 5e-2, replay batch 16, `feature_scale = sqrt(dim)`), no gate, on the
//!    space's rows: `head` = labels only (the baseline of every algorithm), `oracle` = labels
//!    plus every stream label.
//! 3. gate: tied-covariance Mahalanobis (OAS, `GateParams`) on PCA-16 of the space, trusted =
//!    the 100 labelled rows; AUROC of the 2000 Fashion-MNIST test images (in) vs the held-out
//!    half of the MNIST `ood` set (1000 digits, out). Three columns: `clean-PCA` = PCA fitted on
//!    labelled + the clean stream (in distribution only); `ood30-PCA` = PCA fitted on labelled +
//!    the stream the ood30 spec draws for the same seed (70% pool rows, 30% digits from the
//!    other half of the ood set), as the learner's gate sees its warm-up; `+norm` = the latter
//!    z-scored on the labelled rows plus the z-scored negative norm of the RAW embedding (the
//!    learner's combined score). `g` itself is always trained on the clean stream: it never
//!    saw a digit.
//!
//! Printed: mean +- sample std over the seeds and, in brackets, the paired difference to `raw`
//! (mean +- std of the per-seed differences), then the training cost of each projection.
//!
//! Run (about 8 min on 2 shared cores for 5 seeds; default lr 0.05, 3 epochs; `--seeds 1,2,3`, `--epochs N`, `--lr X`,
//! `--only g128-pca-t0.1,...` to restrict):
//! `nice -n 10 cargo run --release --example projection_study`

use std::time::Instant;

use edge_ssl::Result;
use edge_ssl::augment::embedding::EmbeddingAugmenter;
use edge_ssl::bank::BankParams;
use edge_ssl::embed::EmbeddingCache;
use edge_ssl::eval::mean_std;
use edge_ssl::experiment::{Embedded, Spec, StreamRow, draw, embed_spec};
use edge_ssl::gate::eval::auroc;
use edge_ssl::gate::linalg::top_eigen;
use edge_ssl::gate::{Admitted, GateParams, Projection, ZScore};
use edge_ssl::head::optim::{Decay, Schedule, SgdParams};
use edge_ssl::learner::{Algorithm, LearnerParams};
use edge_ssl::objective::infonce::InfoNceParams;
use edge_ssl::propagate::PropagationParams;
use edge_ssl::scenario::{Stream, StreamItem, run_stream};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

const K: usize = 10;
const QUEUE: usize = 1024;
const BATCH: usize = 32;
const SUP_BATCH: usize = 8;
const KEY_MOMENTUM: f32 = 0.99;
const KNN: usize = 10;

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn normalize(v: &mut [f32]) {
    let n = dot(v, v).sqrt();
    if n > 1e-12 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// A linear map `z = normalize(W (normalize(x) - mean))`, `W: m x dim_in`.
#[derive(Clone)]
struct Map {
    dim_in: usize,
    m: usize,
    mean: Vec<f32>,
    w: Vec<f32>,
}

impl Map {
    /// `u = normalize(x) - mean`.
    fn pre(&self, x: &[f32], u: &mut [f32]) {
        u.copy_from_slice(x);
        normalize(u);
        u.iter_mut().zip(&self.mean).for_each(|(v, m)| *v -= m);
    }

    fn apply_rows(&self, xs: &[f32]) -> Vec<f32> {
        let mut u = vec![0f32; self.dim_in];
        let mut out = vec![0f32; xs.len() / self.dim_in * self.m];
        for (x, z) in xs.chunks_exact(self.dim_in).zip(out.chunks_exact_mut(self.m)) {
            self.pre(x, &mut u);
            for (o, w) in z.iter_mut().zip(self.w.chunks_exact(self.dim_in)) {
                *o = dot(w, &u);
            }
            normalize(z);
        }
        out
    }

    fn truncate(&self, m: usize) -> Map {
        Map { m, w: self.w[..m * self.dim_in].to_vec(), ..self.clone() }
    }
}

/// The PCA-whitening `propagate.rs` fits on the bank (rows in bank order: an even stride of at
/// most 1024 of them, 8 subspace iterations, eigenvalue floor 1e-6 of the largest).
fn fit_pcaw(rows: &[f32], d: usize, p: usize) -> Map {
    let pp = PropagationParams::default();
    let n_all = rows.len() / d;
    let stride = n_all.div_ceil(pp.pca_rows);
    let sub: Vec<Vec<f64>> = rows
        .chunks_exact(d)
        .step_by(stride)
        .map(|r| {
            let mut v = r.to_vec();
            normalize(&mut v);
            v.into_iter().map(f64::from).collect()
        })
        .collect();
    let n = sub.len() as f64;
    let mut mean = vec![0f64; d];
    for r in &sub {
        mean.iter_mut().zip(r).for_each(|(m, v)| *m += v / n);
    }
    let mut cov = vec![0f64; d * d];
    let mut c = vec![0f64; d];
    for r in &sub {
        c.iter_mut().zip(r.iter().zip(&mean)).for_each(|(o, (v, m))| *o = v - m);
        for i in 0..d {
            let ci = c[i];
            let row = &mut cov[i * d..(i + 1) * d];
            for (o, &cj) in row[i..].iter_mut().zip(&c[i..]) {
                *o += ci * cj;
            }
        }
    }
    for i in 0..d {
        for j in 0..i {
            cov[i * d + j] = cov[j * d + i];
        }
    }
    cov.iter_mut().for_each(|v| *v /= n);
    let (vals, vecs) = top_eigen(&cov, d, p, pp.pca_iters);
    let floor = vals[0].max(f64::MIN_POSITIVE) * 1e-6;
    let mut w = vec![0f32; p * d];
    for (r, (out, v)) in w.chunks_exact_mut(d).zip(vecs.chunks_exact(d)).enumerate() {
        let s = 1.0 / vals[r].max(floor).sqrt();
        out.iter_mut().zip(v).for_each(|(o, &x)| *o = (x * s) as f32);
    }
    Map { dim_in: d, m: p, mean: mean.iter().map(|&m| m as f32).collect(), w }
}

/// One seed's split, `experiment::draw`'s: the labelled pool rows and the stream
/// in its order, each item a pool row (`Ok`) or a row of the first half of the `ood` set (`Err`).
struct Split {
    labeled: Vec<usize>,
    stream: Vec<std::result::Result<usize, usize>>,
}

fn split(data: &Embedded, spec: &Spec, seed: u64) -> Result<Split> {
    // a spec without `ood_x` (the clean one) has no ood rows
    let d = data.dim;
    let half = if spec.data.ood_x.is_some() { data.ood.len() / d.max(1) / 2 } else { 0 };
    let dr = draw(spec, &data.pool.1, data.n_classes, half, seed)?;
    let stream = dr
        .stream
        .iter()
        .map(|r| match *r {
            StreamRow::Pool(i) => Ok(i),
            StreamRow::Ood(j) => Err(j),
        })
        .collect();
    Ok(Split { labeled: dr.labeled, stream })
}

fn gather(x: &[f32], d: usize, idx: &[usize]) -> Vec<f32> {
    idx.iter().flat_map(|&i| x[i * d..(i + 1) * d].iter().copied()).collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Init {
    Pca,
    Random,
}

#[derive(Clone)]
struct Variant {
    name: String,
    d: usize,
    init: Init,
    t: f32,
    supcon: bool,
}

/// What training a projection cost and did.
struct Trained {
    map: Map,
    secs: f64,
    updates: usize,
    loss_first: f32,
    loss_last: f32,
}

struct TrainCfg {
    epochs: usize,
    lr: f32,
}

/// MoCo-style InfoNCE training of `v.d x D` (see the module docs).
#[allow(clippy::too_many_arguments)]
fn train_g(
    v: &Variant,
    pcaw: &Map,
    x_stream: &[f32],
    x_lab: &[f32],
    y_lab: &[u32],
    cfg: &TrainCfg,
    seed: u64,
) -> Result<Trained> {
    let dd = pcaw.dim_in;
    let d = v.d;
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(7919) ^ 0x5eed);
    let mut map = match v.init {
        Init::Pca => pcaw.truncate(d),
        Init::Random => {
            let s = 1.0 / (dd as f32).sqrt();
            let w = (0..d * dd).map(|_| s * rng.sample::<f32, _>(StandardNormal)).collect();
            Map { m: d, w, ..pcaw.clone() }
        }
    };
    let n = x_stream.len() / dd;
    // rescale W so that the RMS of |W u| over the stream is 1
    let mut u = vec![0f32; dd];
    let mut ss = 0f64;
    for x in x_stream.chunks_exact(dd).step_by(10) {
        map.pre(x, &mut u);
        for w in map.w.chunks_exact(dd) {
            ss += f64::from(dot(w, &u)).powi(2);
        }
    }
    let rms = (ss / n.div_ceil(10) as f64).sqrt() as f32;
    map.w.iter_mut().for_each(|w| *w /= rms);
    let mut key_w = map.w.clone();

    let aug = EmbeddingAugmenter::new(LearnerParams::new(dd, K).strong_view.check()?);
    let nce = InfoNceParams { temperature: v.t }.check()?;
    let batches_per_epoch = n.div_ceil(BATCH);
    let total = (cfg.epochs * batches_per_epoch) as u64;
    let mut sgd = SgdParams {
        lr: cfg.lr,
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.0,
        schedule: Schedule { warmup_steps: 0, total_steps: total, decay: Decay::Cosine },
    }
    .check()?
    .build(d * dd);
    let by_class: Vec<Vec<usize>> =
        (0..K as u32).map(|c| (0..y_lab.len()).filter(|&i| y_lab[i] == c).collect()).collect();

    let nq_max = BATCH + if v.supcon { SUP_BATCH } else { 0 };
    let mut us = vec![0f32; nq_max * dd];
    let mut q = vec![0f32; nq_max * d];
    let mut k = vec![0f32; nq_max * d];
    let mut dq = vec![0f32; nq_max * d];
    let mut grad = vec![0f32; d * dd];
    let mut queue = vec![0f32; QUEUE * d];
    let (mut q_len, mut q_at) = (0usize, 0usize);
    let mut view = vec![0f32; dd];
    let mut u2 = vec![0f32; dd];
    let (mut loss_first, mut loss_last) = (0f32, 0f32);
    let mut order: Vec<usize> = (0..n).collect();
    let t0 = Instant::now();
    let mut updates = 0usize;
    for epoch in 0..cfg.epochs {
        order.shuffle(&mut rng);
        let mut loss_sum = 0f32;
        for chunk in order.chunks(BATCH) {
            // (query source, key source) rows
            let mut pairs: Vec<(&[f32], &[f32])> = chunk
                .iter()
                .map(|&i| (&x_stream[i * dd..(i + 1) * dd], &x_stream[i * dd..(i + 1) * dd]))
                .collect();
            if v.supcon {
                for _ in 0..SUP_BATCH {
                    let c = &by_class[rng.random_range(0..K)];
                    let i = c[rng.random_range(0..c.len())];
                    let mut j = c[rng.random_range(0..c.len())];
                    while j == i && c.len() > 1 {
                        j = c[rng.random_range(0..c.len())];
                    }
                    pairs.push((&x_lab[i * dd..(i + 1) * dd], &x_lab[j * dd..(j + 1) * dd]));
                }
            }
            let nq = pairs.len();
            for (r, (xq, xk)) in pairs.iter().enumerate() {
                view.copy_from_slice(xq);
                aug.perturb(&mut view, &mut rng)?;
                let ur = &mut us[r * dd..(r + 1) * dd];
                map.pre(&view, ur);
                for (o, w) in q[r * d..(r + 1) * d].iter_mut().zip(map.w.chunks_exact(dd)) {
                    *o = dot(w, ur);
                }
                view.copy_from_slice(xk);
                aug.perturb(&mut view, &mut rng)?;
                map.pre(&view, &mut u2);
                let kr = &mut k[r * d..(r + 1) * d];
                for (o, w) in kr.iter_mut().zip(key_w.chunks_exact(dd)) {
                    *o = dot(w, &u2);
                }
                normalize(kr);
            }
            let loss =
                nce.loss(&q[..nq * d], &k[..nq * d], &queue[..q_len * d], d, &mut dq[..nq * d])?;
            loss_sum += loss;
            grad.fill(0.0);
            for r in 0..nq {
                let ur = &us[r * dd..(r + 1) * dd];
                for (g, &dqr) in grad.chunks_exact_mut(dd).zip(&dq[r * d..(r + 1) * d]) {
                    g.iter_mut().zip(ur).for_each(|(g, &u)| *g += dqr * u);
                }
            }
            sgd.step(&mut map.w, &grad)?;
            key_w
                .iter_mut()
                .zip(&map.w)
                .for_each(|(kw, &w)| *kw = KEY_MOMENTUM * *kw + (1.0 - KEY_MOMENTUM) * w);
            // enqueue the stream keys
            for r in 0..chunk.len() {
                queue[q_at * d..(q_at + 1) * d].copy_from_slice(&k[r * d..(r + 1) * d]);
                q_at = (q_at + 1) % QUEUE;
                q_len = (q_len + 1).min(QUEUE);
            }
            updates += chunk.len();
        }
        let mean_loss = loss_sum / batches_per_epoch as f32;
        if epoch == 0 {
            loss_first = mean_loss;
        }
        loss_last = mean_loss;
    }
    Ok(Trained { map, secs: t0.elapsed().as_secs_f64(), updates, loss_first, loss_last })
}

/// Rows of one feature space: labelled, clean stream, test, ood held-out, and the stream of the
/// ood30 split (70% pool rows, 30% MNIST from the first half of the ood set).
struct Rows {
    m: usize,
    lab: Vec<f32>,
    stream: Vec<f32>,
    test: Vec<f32>,
    ood: Vec<f32>,
    mixed: Vec<f32>,
}

impl Rows {
    fn mapped(map: &Map, raw: &Rows) -> Rows {
        Rows {
            m: map.m,
            lab: map.apply_rows(&raw.lab),
            stream: map.apply_rows(&raw.stream),
            test: map.apply_rows(&raw.test),
            ood: map.apply_rows(&raw.ood),
            mixed: map.apply_rows(&raw.mixed),
        }
    }
}

struct Truth<'a> {
    y_lab: &'a [u32],
    y_stream: &'a [u32],
    y_test: &'a [u32],
}

/// Label propagation on labelled + stream rows; `(prop@100, prop@50, kNN test accuracy)`.
fn graph(r: &Rows, t: &Truth<'_>, pp: PropagationParams, knn_test: bool) -> Result<[f64; 3]> {
    let m = r.m;
    let n = t.y_lab.len() + t.y_stream.len();
    let mut rng = StdRng::seed_from_u64(0);
    let mut bank = BankParams::new(n, m, K).build()?;
    for (x, &y) in r.lab.chunks_exact(m).zip(t.y_lab) {
        bank.insert_given(x, y, &mut rng)?;
    }
    let mut slots = Vec::with_capacity(t.y_stream.len());
    for x in r.stream.chunks_exact(m) {
        let o = bank.insert_pseudo(Admitted::ungated(x), 0, 0.5, &mut rng)?;
        slots.push(o.slot().expect("the bank has room for every row"));
    }
    let mut prop = pp.build(n, m, K)?;
    prop.refresh(&bank, |_, p| {
        p.fill(1.0 / K as f32);
        Ok(())
    })?;
    let mut ranked: Vec<(f32, bool)> = Vec::with_capacity(slots.len());
    let mut labels: Vec<u32> = t.y_lab.to_vec();
    for (&s, &y) in slots.iter().zip(t.y_stream) {
        let (c, w) = prop.target(&bank, s).expect("refreshed");
        ranked.push((w, c == y));
        labels.push(c);
    }
    let prec = |v: &[(f32, bool)]| v.iter().filter(|e| e.1).count() as f64 / v.len() as f64;
    let p100 = prec(&ranked);
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let p50 = prec(&ranked[..ranked.len() / 2]);
    let acc = if knn_test { knn_accuracy(r, &labels, t.y_test) } else { f64::NAN };
    Ok([p100, p50, acc])
}

/// 10-NN test accuracy, cosine in the space centred on the bank rows, votes `max(s, 0)^3`.
fn knn_accuracy(r: &Rows, labels: &[u32], y_test: &[u32]) -> f64 {
    let m = r.m;
    let bank: Vec<f32> = r.lab.iter().chain(&r.stream).copied().collect();
    let n = bank.len() / m;
    let mut mean = vec![0f32; m];
    for x in bank.chunks_exact(m) {
        mean.iter_mut().zip(x).for_each(|(a, &v)| *a += v / n as f32);
    }
    let centred = |xs: &[f32]| -> Vec<f32> {
        let mut out = xs.to_vec();
        for z in out.chunks_exact_mut(m) {
            z.iter_mut().zip(&mean).for_each(|(v, a)| *v -= a);
            normalize(z);
        }
        out
    };
    let (zb, zt) = (centred(&bank), centred(&r.test));
    let mut right = 0usize;
    for (z, &y) in zt.chunks_exact(m).zip(y_test) {
        let mut top = [(f32::NEG_INFINITY, 0u32); KNN];
        for (b, &l) in zb.chunks_exact(m).zip(labels) {
            let s = dot(z, b);
            if s <= top[KNN - 1].0 {
                continue;
            }
            let mut at = KNN - 1;
            while at > 0 && top[at - 1].0 < s {
                top[at] = top[at - 1];
                at -= 1;
            }
            top[at] = (s, l);
        }
        let mut votes = [0f32; K];
        for &(s, l) in &top {
            votes[l as usize] += s.max(0.0).powi(3);
        }
        let c = (0..K).max_by(|&a, &b| votes[a].total_cmp(&votes[b])).unwrap_or(0);
        right += usize::from(c as u32 == y);
    }
    right as f64 / y_test.len() as f64
}

/// Labels-only and oracle test accuracy of the learner's supervised head on the space's rows.
fn heads(r: &Rows, t: &Truth<'_>, seed: u64) -> Result<[f64; 2]> {
    let m = r.m;
    let stream = Stream {
        dim: m,
        labeled: r.lab.chunks_exact(m).zip(t.y_lab.iter().copied()).collect(),
        items: r
            .stream
            .chunks_exact(m)
            .zip(t.y_stream)
            .map(|(x, &y)| StreamItem { x, truth: Some(y) })
            .collect(),
        test: &r.test,
        test_y: t.y_test,
        ood_test: &[],
    };
    let mut lp = LearnerParams::new(m, K);
    lp.algorithm = Algorithm::Supervised;
    lp.seed = seed;
    lp.gate = None;
    let n = t.y_stream.len();
    let sup = run_stream(&lp, &stream, false, n, |_| {})?.accuracy;
    let orc = run_stream(&lp, &stream, true, n, |_| {})?.accuracy;
    Ok([sup, orc])
}

/// Raw-embedding norms (the learner's gate adds `-|x|` to the Mahalanobis score).
struct Norms {
    lab: Vec<f32>,
    test: Vec<f32>,
    ood: Vec<f32>,
}

/// AUROC of test (in) vs held-out MNIST (out) of the tied Mahalanobis gate with PCA-16 fitted
/// on labelled + clean stream, on labelled + ood30 stream, and the latter z-scored plus the
/// z-scored negative raw norm (the learner's combined score).
fn gate_aurocs(r: &Rows, t: &Truth<'_>, norms: &Norms) -> Result<[f64; 3]> {
    let gp = GateParams { projection: Projection::Pca(16.min(r.m)), ..GateParams::default() };
    let mut out = [0f64; 3];
    for (i, unl) in [&r.stream, &r.mixed].into_iter().enumerate() {
        let gate = gp.fit(&r.lab, r.m, t.y_lab, K, unl)?;
        let score = |xs: &[f32]| -> Result<Vec<f32>> {
            xs.chunks_exact(r.m).map(|x| gate.score(x)).collect()
        };
        let (s_in, s_out) = (score(&r.test)?, score(&r.ood)?);
        out[i] = auroc(&s_in, &s_out);
        if i == 1 {
            let zm = ZScore::fit(&score(&r.lab)?);
            let neg: Vec<f32> = norms.lab.iter().map(|v| -v).collect();
            let zn = ZScore::fit(&neg);
            let comb = |s: &[f32], n: &[f32]| -> Vec<f32> {
                s.iter().zip(n).map(|(&m, &v)| zm.apply(m) + zn.apply(-v)).collect()
            };
            out[2] = auroc(&comb(&s_in, &norms.test), &comb(&s_out, &norms.ood));
        }
    }
    Ok(out)
}

const METRICS: [&str; 8] = [
    "prop@100",
    "prop@50",
    "kNN test",
    "head",
    "oracle",
    "AUROC clean-PCA",
    "AUROC ood30-PCA",
    "AUROC ood30-PCA+norm",
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let seeds: Vec<u64> = arg("--seeds")
        .map(|s| s.split(',').map(|v| v.parse().expect("--seeds 1,2,3")).collect())
        .unwrap_or_else(|| (1..=5).collect());
    let cfg = TrainCfg {
        epochs: arg("--epochs").map_or(3, |s| s.parse().expect("--epochs N")),
        lr: arg("--lr").map_or(0.05, |s| s.parse().expect("--lr X")),
    };
    let only: Option<Vec<String>> = arg("--only").map(|s| s.split(',').map(String::from).collect());

    let root = env!("CARGO_MANIFEST_DIR");
    let clean = Spec::load(format!("{root}/experiments/fmnist-10-clean.toml"))?;
    let ood_spec = Spec::load(format!("{root}/experiments/fmnist-10-ood30.toml"))?;
    let cache = EmbeddingCache::new(format!("{root}/target/tmp/embeddings"));
    // the ood30 spec has the same pool and test as the clean one, plus the MNIST set
    let data = embed_spec(&ood_spec, &cache, |what| eprintln!("loading {what}"))?;
    let dd = data.dim;
    let half = data.ood.len() / dd / 2;
    eprintln!(
        "pool {} x {dd}, test {}, ood held-out {half}; epochs {}, lr {}",
        data.pool.1.len(),
        data.test.1.len(),
        cfg.epochs,
        cfg.lr
    );

    let mut variants = Vec::new();
    for d in [128, 64] {
        for init in [Init::Pca, Init::Random] {
            for t in [0.1, 0.2] {
                let i = if init == Init::Pca { "pca" } else { "rand" };
                variants.push(Variant {
                    name: format!("g{d}-{i}-t{t}"),
                    d,
                    init,
                    t,
                    supcon: false,
                });
            }
        }
    }
    variants.push(Variant {
        name: "g16-pca-t0.2".into(),
        d: 16,
        init: Init::Pca,
        t: 0.2,
        supcon: false,
    });
    variants.push(Variant {
        name: "g128-pca-t0.1-supcon".into(),
        d: 128,
        init: Init::Pca,
        t: 0.1,
        supcon: true,
    });
    if let Some(o) = &only {
        variants.retain(|v| o.contains(&v.name));
    }

    // results[space][metric][seed]
    let mut names: Vec<String> = vec!["raw".into(), "raw-exact".into()];
    names.extend(["pcaw128", "pcaw128-mixfit", "pcaw64", "pcaw16"].map(String::from));
    names.extend(variants.iter().map(|v| v.name.clone()));
    let mut res: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); METRICS.len()]; names.len()];
    let mut cost: Vec<(f64, f64, f32, f32)> = vec![(0.0, 0.0, 0.0, 0.0); variants.len()];

    for &seed in &seeds {
        let t_seed = Instant::now();
        let sp = split(&data, &clean, seed)?;
        let mixed_sp = split(&data, &ood_spec, seed)?;
        assert_eq!(sp.labeled, mixed_sp.labeled, "both specs draw the same labels");
        let (pool, pool_y) = (&data.pool.0, &data.pool.1);
        let stream_idx: Vec<usize> = sp.stream.iter().map(|i| i.expect("clean")).collect();
        let y_lab: Vec<u32> = sp.labeled.iter().map(|&i| pool_y[i]).collect();
        let y_stream: Vec<u32> = stream_idx.iter().map(|&i| pool_y[i]).collect();
        let truth = Truth { y_lab: &y_lab, y_stream: &y_stream, y_test: &data.test.1 };
        let mixed: Vec<f32> = mixed_sp
            .stream
            .iter()
            .flat_map(|it| match *it {
                Ok(i) => &pool[i * dd..(i + 1) * dd],
                Err(j) => &data.ood[j * dd..(j + 1) * dd],
            })
            .copied()
            .collect();
        let raw = Rows {
            m: dd,
            lab: gather(pool, dd, &sp.labeled),
            stream: gather(pool, dd, &stream_idx),
            test: data.test.0.clone(),
            ood: data.ood[half * dd..2 * half * dd].to_vec(),
            mixed,
        };
        let norm_of =
            |xs: &[f32]| -> Vec<f32> { xs.chunks_exact(dd).map(|x| dot(x, x).sqrt()).collect() };
        let norms =
            Norms { lab: norm_of(&raw.lab), test: norm_of(&raw.test), ood: norm_of(&raw.ood) };
        // the bank in insertion order: labelled, then the stream
        let bank_rows: Vec<f32> = raw.lab.iter().chain(&raw.stream).copied().collect();
        let pcaw = fit_pcaw(&bank_rows, dd, 128);
        let flat = PropagationParams { whiten: 0.0, ..PropagationParams::default() };
        let mut record = |name: &str, metric: usize, v: f64| {
            let s = names.iter().position(|n| n == name).expect("known space");
            res[s][metric].push(v);
        };
        let eval_space = |name: &str,
                          rows: &Rows,
                          record: &mut dyn FnMut(&str, usize, f64)|
         -> Result<()> {
            let t0 = Instant::now();
            let g = graph(rows, &truth, PropagationParams { pca_dim: rows.m, ..flat }, true)?;
            let h = heads(rows, &truth, seed)?;
            let a = gate_aurocs(rows, &truth, &norms)?;
            for (i, v) in g.iter().chain(&h).chain(&a).enumerate() {
                record(name, i, *v);
            }
            eprintln!(
                "seed {seed} {name:<22} prop {:.4}/{:.4} knn {:.4} head {:.4} oracle {:.4} auroc {:.4}/{:.4}/{:.4} ({:.1} s)",
                g[0],
                g[1],
                g[2],
                h[0],
                h[1],
                a[0],
                a[1],
                a[2],
                t0.elapsed().as_secs_f64()
            );
            Ok(())
        };

        // raw: graph on PCA-128 whitened, head and gate on the raw embedding
        {
            let pr = Rows::mapped(&pcaw, &raw);
            let g = graph(&pr, &truth, PropagationParams { pca_dim: 128, ..flat }, true)?;
            let h = heads(&raw, &truth, seed)?;
            let a = gate_aurocs(&raw, &truth, &norms)?;
            for (i, v) in g.iter().chain(&h).chain(&a).enumerate() {
                record("raw", i, *v);
            }
            let ex = graph(&raw, &truth, PropagationParams::default(), false)?;
            for (i, v) in ex.iter().enumerate() {
                record("raw-exact", i, *v);
            }
            for i in 3..METRICS.len() {
                record("raw-exact", i, f64::NAN);
            }
            eprintln!(
                "seed {seed} raw                    prop {:.4}/{:.4} knn {:.4} head {:.4} oracle {:.4} auroc {:.4}/{:.4}/{:.4}; propagate.rs exact prop {:.4}/{:.4}",
                g[0], g[1], g[2], h[0], h[1], a[0], a[1], a[2], ex[0], ex[1]
            );
            eval_space("pcaw128", &pr, &mut record)?;
        }
        {
            // the whitening fitted on labelled + the ood30 stream (30% digits), as a learner
            // would fit it on a contaminated bank
            let mixed_bank: Vec<f32> = raw.lab.iter().chain(&raw.mixed).copied().collect();
            let pr = Rows::mapped(&fit_pcaw(&mixed_bank, dd, 128), &raw);
            eval_space("pcaw128-mixfit", &pr, &mut record)?;
        }
        for p in [64, 16] {
            let pr = Rows::mapped(&pcaw.truncate(p), &raw);
            eval_space(&format!("pcaw{p}"), &pr, &mut record)?;
        }
        for (vi, v) in variants.iter().enumerate() {
            let tr = train_g(v, &pcaw, &raw.stream, &raw.lab, &y_lab, &cfg, seed)?;
            eprintln!(
                "seed {seed} {:<22} trained: {:.1} s, {:.1} us/update, InfoNCE {:.3} -> {:.3}",
                v.name,
                tr.secs,
                tr.secs / tr.updates as f64 * 1e6,
                tr.loss_first,
                tr.loss_last
            );
            let c = &mut cost[vi];
            c.0 += tr.secs / seeds.len() as f64;
            c.1 += tr.secs / tr.updates as f64 / seeds.len() as f64;
            c.2 += tr.loss_first / seeds.len() as f32;
            c.3 += tr.loss_last / seeds.len() as f32;
            let pr = Rows::mapped(&tr.map, &raw);
            eval_space(&v.name, &pr, &mut record)?;
        }
        eprintln!("seed {seed} done in {:.0} s", t_seed.elapsed().as_secs_f64());
    }

    println!(
        "\nFashion-MNIST clean split, seeds {seeds:?}, g: {} epochs, lr {}, batch {BATCH}, queue {QUEUE}",
        cfg.epochs, cfg.lr
    );
    println!("cells: mean +- std over seeds [paired delta vs raw: mean +- std]; accuracies in %");
    print!("| space |");
    for m in METRICS {
        print!(" {m} |");
    }
    println!();
    println!("|---|{}", "---|".repeat(METRICS.len()));
    for (s, name) in names.iter().enumerate() {
        print!("| {name} |");
        for (mi, vals) in res[s].iter().enumerate() {
            if vals.iter().any(|v| v.is_nan()) || vals.is_empty() {
                print!(" - |");
                continue;
            }
            let scale = if mi >= 5 { 1.0 } else { 100.0 };
            let prec = if mi >= 5 { 4 } else { 2 };
            let (m, sd) = mean_std(vals);
            let diffs: Vec<f64> = vals.iter().zip(&res[0][mi]).map(|(a, b)| a - b).collect();
            let (dm, dsd) = mean_std(&diffs);
            if s == 0 {
                print!(" {:.prec$} +- {:.prec$} |", m * scale, sd * scale);
            } else {
                print!(
                    " {:.prec$} +- {:.prec$} [{:+.prec$} +- {:.prec$}] |",
                    m * scale,
                    sd * scale,
                    dm * scale,
                    dsd * scale
                );
            }
        }
        println!();
    }
    println!(
        "\ntraining cost of g (mean over seeds; {} stream samples x {} epochs):",
        5000, cfg.epochs
    );
    println!(
        "| g | s per training | us per query update | us per stream sample | InfoNCE epoch 1 -> last |"
    );
    println!("|---|---|---|---|---|");
    for (v, c) in variants.iter().zip(&cost) {
        println!(
            "| {} | {:.1} | {:.0} | {:.0} | {:.3} -> {:.3} |",
            v.name,
            c.0,
            c.1 * 1e6,
            c.0 / 5000.0 * 1e6,
            c.2,
            c.3
        );
    }
    Ok(())
}
