//! Issue 10: do features that adapt on the device close more of the labels-only -> oracle gap
//! than label propagation on the frozen embedding?
//!
//! The trainable block is the camera model's own head convolution (320 -> 1280, 1x1, ReLU6,
//! then the global average pool that makes the embedding), trained on the last MBConv block's
//! feature map (`models::CAMERA_LAST_BLOCK`, 4 x 4 x 320 at 112 input), starting from the
//! shipped weights (`PointwiseConv::read_qdq`). Everything before that map stays frozen, so a
//! device would store the map (5120 values) per bank entry instead of the embedding (1280),
//! and every view costs one backbone pass up to the map.
//!
//! Offline, on `experiments/fmnist-10-clean.toml`'s data, with the labelled set and stream that
//! `edge-ssl experiment` draws for each seed (`experiment::draw`), so the seeds pair with
//! EVALUATION.md's tables. Per seed, every configuration is trained by the same trainer from
//! the same start:
//!
//! - trainer: minibatch SGD (momentum 0.9, cosine decay to 0, `STEPS` steps), each batch 16
//!   labelled samples plus (if the configuration has stream targets) 48 stream samples, loss =
//!   mean cross-entropy on the labelled part + the mean of weight x cross-entropy on the stream
//!   part. The linear head (zero init, bias) reads `u = s e`, `s` fixed so that the labelled
//!   embeddings have mean norm 1; weight decay `WD_HEAD` on it. The block, when trained, has
//!   L2-SP decay (Li et al. 2018) towards its shipped weights, `WD_BLOCK`, and its own learning
//!   rate (`--block-lr`).
//! - views (`Views`): `clean` feeds every training sample as its clean map; `weak` as the
//!   clean map or one of `VIEWS` weak views (the crate's `ImageAugmenter::weak_into`:
//!   FixMatch's flip and shift); `mixed` half the time a weak choice, half a strong view
//!   (`strong_into`: flip-and-shift, 2 RandAugment ops, Cutout); `strong` a strong view only.
//!   Views are made on the 28 x 28 image before the resize, fixed per pool row (cached), and
//!   drawn afresh per step; targets always come from the clean image (FixMatch's weak ->
//!   strong).
//! - stream targets (`Targets`): `labels` = none (labels-only); `oracle` = the true label of
//!   every stream sample, weight 1; `prop` = label propagation (the crate's `Propagation`, its
//!   defaults: PCA-128 whitened 10-NN graph, alpha 0.9) over the labelled + stream embeddings
//!   of the shipped block, started from the frozen labels-only model's predictions, hard labels
//!   weighted by certainty x class balance, as the learner's `labelprop` uses them; `prop2` = a
//!   second round: the graph rebuilt on the embeddings of the block that `prop` adapted with
//!   the same views (the `adapt-prop-*` row of those views, or trained here if it did not run), started from that model's predictions, then the block and head retrained from the
//!   shipped weights on the new targets; `online` = the learner's schedule: every 500 stream
//!   samples, the graph over the labelled rows and the stream seen so far is rebuilt on the
//!   current model's embeddings from its predictions, and the current model trains on the new
//!   targets for `steps / 10` more steps (a fresh cosine cycle and momentum each time), starting
//!   from the frozen labels-only model.
//! - `frozen-*` train the head only (the block keeps the shipped weights: the embedding the
//!   learner uses today); `adapt-*` train the block and the head.
//!
//! Printed per configuration: test accuracy, mean +- std over the seeds, and gap closed
//! against the frozen labels-only and frozen oracle rows of the same run (the harness's
//! definition), and against the adapted oracle.
//!
//! The maps of the pool, the test set and the pool's `VIEWS` weak and `VIEWS` strong views
//! (8000 + 24000 backbone passes up to the map, 15 ms each here) are computed once by tract and
//! kept in `target/tmp/embeddings` by `EmbeddingCache`.
//!
//! Run: `nice cargo run --release --example adapt_study -- --seeds 1,2,3,4,5`
//! (`--block-lr X`, `--steps N`, `--only adapt-prop-clean,adapt-prop2-clean` to restrict; the
//! two baselines always run.)

use std::time::Instant;

use edge_ssl::augment::image::{ImageAugParams, ImageAugmenter};
use edge_ssl::backbone::PointwiseConv;
use edge_ssl::bank::BankParams;
use edge_ssl::data::ImageSet;
use edge_ssl::data::idx;
use edge_ssl::data::image::Geometry;
use edge_ssl::embed::EmbeddingCache;
use edge_ssl::eval::mean_std;
use edge_ssl::experiment::{Spec, StreamRow, draw};
use edge_ssl::gate::Admitted;
use edge_ssl::propagate::PropagationParams;
use edge_ssl::{Backbone, BackboneSpec, Result, models};
use ndarray::Array2;
use ndarray::linalg::general_mat_mul;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const K: usize = 10;
const C: usize = 320;
const P: usize = 16;
const D: usize = 1280;
const MAP: usize = C * P;
const VIEWS: usize = 2;
const LAB_BATCH: usize = 16;
const STREAM_BATCH: usize = 48;
const WD_HEAD: f32 = 5e-4;
const WD_BLOCK: f32 = 1e-2;
const HEAD_LR: f32 = 0.5;

/// Feature maps, position-major: sample `i` is `[P, C]` at `i * MAP`.
struct Maps {
    clean: Vec<f32>,
    weak: Vec<Vec<f32>>,
    strong: Vec<Vec<f32>>,
}

/// Which maps a training sample is fed as.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Views {
    /// The clean image only.
    Clean,
    /// The clean image or one of the weak views, uniformly.
    Weak,
    /// Half the time as `Weak`, half a strong view.
    Mixed,
    /// A strong view only.
    Strong,
}

impl Maps {
    fn pick<'a, R: Rng>(&'a self, views: Views, rng: &mut R) -> &'a [f32] {
        let weak = |rng: &mut R| {
            let k = rng.random_range(0..=VIEWS);
            if k == 0 { &self.clean } else { &self.weak[k - 1] }
        };
        let strong = |rng: &mut R| &self.strong[rng.random_range(0..VIEWS)];
        match views {
            Views::Clean => &self.clean,
            Views::Weak => weak(rng),
            Views::Mixed => {
                if rng.random::<bool>() {
                    weak(rng)
                } else {
                    strong(rng)
                }
            }
            Views::Strong => strong(rng),
        }
    }
}

/// `[C, P]` (the graph's NCHW) -> `[P, C]` per sample.
fn to_position_major(x: Vec<f32>) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for (src, dst) in x.chunks_exact(MAP).zip(out.chunks_exact_mut(MAP)) {
        for c in 0..C {
            for p in 0..P {
                dst[p * C + c] = src[c * P + p];
            }
        }
    }
    out
}

/// The trainable model: block `W [D, C]`, `b [D]`, and the head `V [K, D]`, `c [K]` on `s e`.
#[derive(Clone)]
struct Model {
    w: Array2<f32>,
    b: Vec<f32>,
    v: Array2<f32>,
    c: Vec<f32>,
    s: f32,
}

/// Scratch for a batch of `n` samples.
struct Work {
    z: Array2<f32>,      // [n P, C]
    h: Array2<f32>,      // [n P, D] pre-activation, then gradient
    e: Array2<f32>,      // [n, D]
    logits: Array2<f32>, // [n, K]
}

impl Work {
    fn new(n: usize) -> Work {
        Work {
            z: Array2::zeros((n * P, C)),
            h: Array2::zeros((n * P, D)),
            e: Array2::zeros((n, D)),
            logits: Array2::zeros((n, K)),
        }
    }
}

impl Model {
    fn forward_embed(&self, wk: &mut Work, n: usize) {
        let z = wk.z.slice(ndarray::s![..n * P, ..]);
        let mut h = wk.h.slice_mut(ndarray::s![..n * P, ..]);
        general_mat_mul(1.0, &z, &self.w.t(), 0.0, &mut h);
        for (i, mut er) in wk.e.rows_mut().into_iter().take(n).enumerate() {
            er.fill(0.0);
            for p in 0..P {
                let hr = h.row(i * P + p);
                for ((o, &x), &bb) in er.iter_mut().zip(hr.iter()).zip(&self.b) {
                    *o += (x + bb).clamp(0.0, 6.0);
                }
            }
            er.mapv_inplace(|x| x / P as f32);
        }
    }

    fn forward_head(&self, wk: &mut Work, n: usize) {
        let e = wk.e.slice(ndarray::s![..n, ..]);
        let mut l = wk.logits.slice_mut(ndarray::s![..n, ..]);
        general_mat_mul(self.s, &e, &self.v.t(), 0.0, &mut l);
        for mut r in l.rows_mut() {
            r.iter_mut().zip(&self.c).for_each(|(x, &cc)| *x += cc);
        }
    }

    /// Embeddings `[n, D]` of the maps `rows` (each `MAP` values).
    fn embed_all(&self, maps: &[f32]) -> Vec<f32> {
        let n = maps.len() / MAP;
        let mut out = vec![0f32; n * D];
        let mut wk = Work::new(64);
        for (chunk, o) in maps.chunks(64 * MAP).zip(out.chunks_mut(64 * D)) {
            let m = chunk.len() / MAP;
            wk.z.as_slice_mut().expect("standard layout")[..chunk.len()].copy_from_slice(chunk);
            self.forward_embed(&mut wk, m);
            o.copy_from_slice(&wk.e.as_slice().expect("standard layout")[..m * D]);
        }
        out
    }

    fn probs_of_embedding(&self, e: &[f32], out: &mut [f32]) {
        for (k, o) in out.iter_mut().enumerate() {
            let row = self.v.row(k);
            *o = self.s * row.iter().zip(e).map(|(a, b)| a * b).sum::<f32>() + self.c[k];
        }
        softmax(out);
    }

    fn accuracy(&self, emb: &[f32], y: &[u32]) -> f64 {
        let mut p = [0f32; K];
        let right = emb
            .chunks_exact(D)
            .zip(y)
            .filter(|(e, y)| {
                self.probs_of_embedding(e, &mut p);
                argmax(&p) == **y as usize
            })
            .count();
        right as f64 / y.len() as f64
    }
}

fn softmax(x: &mut [f32]) {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    x.iter_mut().for_each(|v| {
        *v = (*v - m).exp();
        sum += *v;
    });
    x.iter_mut().for_each(|v| *v /= sum);
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap_or(0)
}

/// Where the stream's training targets come from.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Targets {
    /// None: labels only.
    Labels,
    /// The true labels.
    Oracle,
    /// Label propagation on the frozen embedding.
    Prop,
    /// Label propagation on the embedding of the block adapted with `Prop` targets.
    Prop2,
    /// The learner's schedule: every `ONLINE_CHUNK` stream samples, propagate over the stream
    /// seen so far on the current model's embeddings, from its predictions, then continue
    /// training the current model on the new targets.
    Online,
}

/// Stream samples between the `Online` refreshes (the learner's `refresh_every`).
const ONLINE_CHUNK: usize = 500;

/// A training sample: its pool row, target class and weight.
#[derive(Clone, Copy)]
struct Sample {
    row: usize,
    class: u32,
    weight: f32,
}

struct TrainCfg {
    steps: usize,
    block_lr: f32,
    train_block: bool,
    views: Views,
}

/// Trains a copy of `start` on `labeled` + `stream` (see the module docs).
fn train(
    start: &Model,
    w0: &Array2<f32>,
    maps: &Maps,
    labeled: &[Sample],
    stream: &[Sample],
    cfg: &TrainCfg,
    seed: u64,
) -> Model {
    let mut m = start.clone();
    let n = LAB_BATCH + if stream.is_empty() { 0 } else { STREAM_BATCH };
    let mut wk = Work::new(n);
    let mut rng = StdRng::seed_from_u64(seed ^ 0xada9);
    let (mut mv, mut mc) = (Array2::<f32>::zeros((K, D)), vec![0f32; K]);
    let (mut mw, mut mb) = (Array2::<f32>::zeros((D, C)), vec![0f32; D]);
    let mut gv = Array2::<f32>::zeros((K, D));
    let mut gw = Array2::<f32>::zeros((D, C));
    let mut targets: Vec<(u32, f32)> = vec![(0, 0.0); n];
    let mut de = Array2::<f32>::zeros((n, D));
    let mut gb = vec![0f32; D];
    for step in 0..cfg.steps {
        let lr_scale = 0.5 * (1.0 + (std::f32::consts::PI * step as f32 / cfg.steps as f32).cos());
        // gather the batch
        let zs = wk.z.as_slice_mut().expect("standard layout");
        for i in 0..n {
            let s = if i < LAB_BATCH {
                labeled[rng.random_range(0..labeled.len())]
            } else {
                stream[rng.random_range(0..stream.len())]
            };
            let part = if i < LAB_BATCH { LAB_BATCH } else { STREAM_BATCH };
            targets[i] = (s.class, s.weight / part as f32);
            let src = maps.pick(cfg.views, &mut rng);
            zs[i * MAP..(i + 1) * MAP].copy_from_slice(&src[s.row * MAP..(s.row + 1) * MAP]);
        }
        m.forward_embed(&mut wk, n);
        m.forward_head(&mut wk, n);
        // dL/dlogits, in place of the logits
        let mut gc = [0f32; K];
        for (mut r, &(y, w)) in wk.logits.rows_mut().into_iter().zip(&targets) {
            let p = r.as_slice_mut().expect("row");
            softmax(p);
            p[y as usize] -= 1.0;
            p.iter_mut().for_each(|x| *x *= w);
            gc.iter_mut().zip(p.iter()).for_each(|(g, x)| *g += x);
        }
        let gl = &wk.logits;
        // head gradient
        general_mat_mul(m.s, &gl.t(), &wk.e, 0.0, &mut gv);
        if cfg.train_block {
            // dL/de = s gl V, then through the mean pool and ReLU6
            general_mat_mul(m.s, gl, &m.v, 0.0, &mut de);
            gb.fill(0.0);
            for i in 0..n {
                let der = de.row(i);
                for p in 0..P {
                    let mut hr = wk.h.row_mut(i * P + p);
                    for ((x, &g), (&bb, gbj)) in
                        hr.iter_mut().zip(der.iter()).zip(m.b.iter().zip(gb.iter_mut()))
                    {
                        let pre = *x + bb;
                        *x = if pre > 0.0 && pre < 6.0 { g / P as f32 } else { 0.0 };
                        *gbj += *x;
                    }
                }
            }
            let h = wk.h.slice(ndarray::s![..n * P, ..]);
            let z = wk.z.slice(ndarray::s![..n * P, ..]);
            general_mat_mul(1.0, &h.t(), &z, 0.0, &mut gw);
            // L2-SP towards the shipped weights, momentum SGD
            let lr = cfg.block_lr * lr_scale;
            ndarray::Zip::from(&mut mw).and(&gw).and(&m.w).and(w0).for_each(|mo, &g, &wv, &w0v| {
                *mo = 0.9 * *mo + g + WD_BLOCK * (wv - w0v);
            });
            m.w.scaled_add(-lr, &mw);
            for ((mo, g), bv) in mb.iter_mut().zip(&gb).zip(m.b.iter_mut()) {
                *mo = 0.9 * *mo + g;
                *bv -= lr * *mo;
            }
        }
        let lr = HEAD_LR * lr_scale;
        ndarray::Zip::from(&mut mv).and(&gv).and(&m.v).for_each(|mo, &g, &vv| {
            *mo = 0.9 * *mo + g + WD_HEAD * vv;
        });
        m.v.scaled_add(-lr, &mv);
        for ((mo, g), cv) in mc.iter_mut().zip(&gc).zip(m.c.iter_mut()) {
            *mo = 0.9 * *mo + g;
            *cv -= lr * *mo;
        }
    }
    m
}

/// Label propagation over the `labeled` + `stream` rows of `emb` (pool embeddings, `[n, D]`),
/// started from `model`'s predictions: one `(class, weight)` per stream row, and the precision
/// of the classes against `pool_y`.
fn propagate(
    model: &Model,
    emb: &[f32],
    labeled: &[usize],
    stream: &[usize],
    pool_y: &[u32],
) -> Result<(Vec<(u32, f32)>, f64)> {
    let n = labeled.len() + stream.len();
    let row = |i: usize| &emb[i * D..(i + 1) * D];
    let mut rng = StdRng::seed_from_u64(0);
    let mut bank = BankParams::new(n, D, K).build()?;
    for &i in labeled {
        bank.insert_given(row(i), pool_y[i], &mut rng)?;
    }
    let mut slots = Vec::with_capacity(stream.len());
    for &i in stream {
        let o = bank.insert_pseudo(Admitted::ungated(row(i)), 0, 0.5, &mut rng)?;
        slots.push(o.slot().expect("the bank has room for every row"));
    }
    let mut prop = PropagationParams::default().build(n, D, K)?;
    prop.refresh(&bank, |e, p| {
        model.probs_of_embedding(e, p);
        Ok(())
    })?;
    let out: Vec<(u32, f32)> =
        slots.iter().map(|&s| prop.target(&bank, s).expect("refreshed")).collect();
    let right = out.iter().zip(stream).filter(|(t, i)| t.0 == pool_y[**i]).count();
    Ok((out, right as f64 / stream.len() as f64))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let seeds: Vec<u64> = arg("--seeds")
        .map(|s| s.split(',').map(|v| v.parse().expect("--seeds 1,2,3")).collect())
        .unwrap_or_else(|| (1..=5).collect());
    let steps: usize = arg("--steps").map_or(2000, |s| s.parse().expect("--steps N"));
    let block_lr: f32 = arg("--block-lr").map_or(0.05, |s| s.parse().expect("--block-lr X"));
    let only: Option<Vec<String>> = arg("--only").map(|s| s.split(',').map(String::from).collect());
    let want = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == name));

    let root = env!("CARGO_MANIFEST_DIR");
    let spec = Spec::load(format!("{root}/experiments/fmnist-10-clean.toml"))?;
    let cache = EmbeddingCache::new(format!("{root}/target/tmp/embeddings"));
    let t0 = Instant::now();
    let pool = idx::read_images(
        spec.path(&spec.data.train_x, "train_x")?,
        Some(spec.path(&spec.data.train_y, "train_y")?),
    )?;
    let test = idx::read_images(
        spec.path(&spec.data.test_x, "test_x")?,
        Some(spec.path(&spec.data.test_y, "test_y")?),
    )?;
    let pool_y = pool.labels.clone().expect("labelled pool");
    let test_y = test.labels.clone().expect("labelled test");
    let mut bs = BackboneSpec::efficientnet_lite0(spec.backbone.size, 1);
    bs.embedding_output = models::CAMERA_LAST_BLOCK.into();
    let mut bb = Backbone::load(spec.base.join(&spec.backbone.model), bs)?;
    assert_eq!(bb.embedding_dim(), MAP, "a 112 input gives a 4 x 4 x 320 map");
    let mut embed = |set: &ImageSet, what: &str| -> Result<Vec<f32>> {
        eprintln!("maps of {what} ({} images; cached after the first run)", set.len());
        let t = Instant::now();
        let n = set.len();
        let out = cache.images(&mut bb, set, |done| {
            if done % 1000 == 0 {
                eprintln!("  {done}/{n} ({:.0}s)", t.elapsed().as_secs_f64());
            }
        })?;
        Ok(to_position_major(out))
    };
    let clean = embed(&pool, "the pool")?;
    let test_maps = embed(&test, "the test set")?;
    let g = Geometry { height: pool.height, width: pool.width, channels: pool.channels };
    let mut aug = ImageAugmenter::new(ImageAugParams::default().check()?, g)?;
    let (mut weak, mut strong) = (Vec::new(), Vec::new());
    for v in 0..VIEWS {
        for is_strong in [false, true] {
            let mut rng = StdRng::seed_from_u64(1000 + v as u64 + if is_strong { 0 } else { 500 });
            let mut set = pool.clone();
            for (src, dst) in
                pool.pixels.chunks_exact(g.len()).zip(set.pixels.chunks_exact_mut(g.len()))
            {
                if is_strong {
                    aug.strong_into(src, dst, &mut rng)?;
                } else {
                    aug.weak_into(src, dst, &mut rng)?;
                }
            }
            let kind = if is_strong { "strong" } else { "weak" };
            let m = embed(&set, &format!("{kind} view {}", v + 1))?;
            if is_strong { strong.push(m) } else { weak.push(m) }
        }
    }
    let maps = Maps { clean, weak, strong };
    eprintln!("maps ready ({:.0}s)", t0.elapsed().as_secs_f64());

    let conv =
        PointwiseConv::read_qdq(spec.base.join(&spec.backbone.model), models::CAMERA_HEAD_CONV)?;
    let w0 = Array2::from_shape_vec((D, C), conv.weight).expect("D x C");
    let shipped =
        Model { w: w0.clone(), b: conv.bias, v: Array2::zeros((K, D)), c: vec![0.0; K], s: 1.0 };

    // (name, stream targets, train the block, views); the first two are the baselines
    let mut configs: Vec<(&str, Targets, bool, Views)> = vec![
        ("frozen-labels", Targets::Labels, false, Views::Clean),
        ("frozen-oracle", Targets::Oracle, false, Views::Clean),
        ("frozen-prop", Targets::Prop, false, Views::Clean),
        ("frozen-prop-weak", Targets::Prop, false, Views::Weak),
        ("adapt-labels-clean", Targets::Labels, true, Views::Clean),
        ("adapt-labels-weak", Targets::Labels, true, Views::Weak),
        ("adapt-oracle-clean", Targets::Oracle, true, Views::Clean),
        ("adapt-oracle-weak", Targets::Oracle, true, Views::Weak),
        ("adapt-oracle-mixed", Targets::Oracle, true, Views::Mixed),
        ("adapt-oracle-strong", Targets::Oracle, true, Views::Strong),
        ("adapt-prop-clean", Targets::Prop, true, Views::Clean),
        ("adapt-prop-weak", Targets::Prop, true, Views::Weak),
        ("adapt-prop-mixed", Targets::Prop, true, Views::Mixed),
        ("adapt-prop2-clean", Targets::Prop2, true, Views::Clean),
        ("online-frozen-prop", Targets::Online, false, Views::Clean),
        ("online-adapt-prop", Targets::Online, true, Views::Clean),
    ];
    configs.retain(|c| matches!(c.0, "frozen-labels" | "frozen-oracle") || want(c.0));
    let mut acc: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    let mut prec: Vec<Vec<f64>> = vec![Vec::new(); 2];
    for &seed in &seeds {
        let ts = Instant::now();
        let dr = draw(&spec, &pool_y, K, 0, seed)?;
        let stream_rows: Vec<usize> = dr
            .stream
            .iter()
            .map(|r| match *r {
                StreamRow::Pool(i) => i,
                StreamRow::Ood(_) => unreachable!("the clean spec has no ood rows"),
            })
            .collect();
        let samples = |rows: &[usize], t: &[(u32, f32)]| -> Vec<Sample> {
            rows.iter()
                .zip(t)
                .map(|(&row, &(class, weight))| Sample { row, class, weight })
                .collect()
        };
        let truth = |rows: &[usize]| -> Vec<(u32, f32)> {
            rows.iter().map(|&i| (pool_y[i], 1.0)).collect()
        };
        let labeled = samples(&dr.labeled, &truth(&dr.labeled));
        let oracle = samples(&stream_rows, &truth(&stream_rows));
        let mut start = shipped.clone();
        let emb_pool = start.embed_all(&maps.clean);
        let lab_norm = dr
            .labeled
            .iter()
            .map(|&i| emb_pool[i * D..(i + 1) * D].iter().map(|x| x * x).sum::<f32>().sqrt())
            .sum::<f32>()
            / dr.labeled.len() as f32;
        start.s = 1.0 / lab_norm;
        let cfg_steps = |steps: usize, train_block: bool, views: Views| TrainCfg {
            steps,
            block_lr,
            train_block,
            views,
        };
        let cfg = |train_block: bool, views: Views| cfg_steps(steps, train_block, views);
        let frozen_labels =
            train(&start, &w0, &maps, &labeled, &[], &cfg(false, Views::Clean), seed);
        let (targets, p1) =
            propagate(&frozen_labels, &emb_pool, &dr.labeled, &stream_rows, &pool_y)?;
        prec[0].push(p1);
        let prop = samples(&stream_rows, &targets);
        // the adapted `prop` model (and its views) whose graph and predictions start the
        // second round of a `prop2` row with the same views
        let mut first_round: Option<(Views, Model)> = None;
        for (k, &(name, tg, train_block, views)) in configs.iter().enumerate() {
            let m = match tg {
                Targets::Labels if !train_block && views == Views::Clean => frozen_labels.clone(),
                Targets::Labels => {
                    train(&start, &w0, &maps, &labeled, &[], &cfg(train_block, views), seed)
                }
                Targets::Oracle => {
                    train(&start, &w0, &maps, &labeled, &oracle, &cfg(train_block, views), seed)
                }
                Targets::Prop => {
                    let m =
                        train(&start, &w0, &maps, &labeled, &prop, &cfg(train_block, views), seed);
                    if train_block {
                        first_round = Some((views, m.clone()));
                    }
                    m
                }
                Targets::Prop2 => {
                    let first = match first_round.take() {
                        Some((v, f)) if v == views => f,
                        _ => train(&start, &w0, &maps, &labeled, &prop, &cfg(true, views), seed),
                    };
                    let emb2 = first.embed_all(&maps.clean);
                    let (t2, p2) = propagate(&first, &emb2, &dr.labeled, &stream_rows, &pool_y)?;
                    prec[1].push(p2);
                    train(
                        &start,
                        &w0,
                        &maps,
                        &labeled,
                        &samples(&stream_rows, &t2),
                        &cfg(train_block, views),
                        seed,
                    )
                }
                Targets::Online => {
                    let rounds = stream_rows.len().div_ceil(ONLINE_CHUNK);
                    let mut m = frozen_labels.clone();
                    for r in 1..=rounds {
                        let seen = &stream_rows[..(r * ONLINE_CHUNK).min(stream_rows.len())];
                        let adapted;
                        let emb = if train_block {
                            adapted = m.embed_all(&maps.clean);
                            &adapted
                        } else {
                            &emb_pool
                        };
                        let (t, _) = propagate(&m, emb, &dr.labeled, seen, &pool_y)?;
                        let c = cfg_steps(steps / rounds, train_block, views);
                        m = train(
                            &m,
                            &w0,
                            &maps,
                            &labeled,
                            &samples(seen, &t),
                            &c,
                            seed + r as u64,
                        );
                    }
                    m
                }
            };
            let a = m.accuracy(&m.embed_all(&test_maps), &test_y);
            eprintln!("seed {seed} {name:<20} {a:.4} ({:.0}s)", ts.elapsed().as_secs_f64());
            acc[k].push(a);
        }
    }

    let mean =
        |v: &[f64]| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
    // "-" where a row the figure needs did not run
    let percent = |x: f64| if x.is_finite() { format!("{:.1}%", 100.0 * x) } else { "-".into() };
    let (lo, hi) = (mean(&acc[0]), mean(&acc[1]));
    let ahi = configs
        .iter()
        .zip(&acc)
        .filter(|(c, _)| c.1 == Targets::Oracle && c.2)
        .map(|(_, a)| mean(a))
        .fold(f64::NAN, f64::max);
    println!(
        "adapt_study: seeds {seeds:?}, {steps} steps, block lr {block_lr}, head lr {HEAD_LR}, \
         views {VIEWS}; propagated precision {} (frozen graph), {} (adapted graph, prop2 rows)",
        percent(mean(&prec[0])),
        percent(mean(&prec[1]))
    );
    println!(
        "{:<18} {:>16} {:>14} {:>18}  per seed",
        "configuration", "accuracy", "gap (frozen)", "gap (adapt oracle)"
    );
    for ((name, ..), a) in configs.iter().zip(&acc) {
        if a.is_empty() {
            continue;
        }
        let (m, sd) = mean_std(a);
        let per: Vec<String> = a.iter().map(|x| format!("{x:.4}")).collect();
        println!(
            "{name:<18} {m:>8.4} +- {sd:.4} {:>14} {:>18}  {}",
            percent((m - lo) / (hi - lo)),
            percent((m - lo) / (ahi - lo)),
            per.join(" ")
        );
    }
    println!("total {:.0}s", t0.elapsed().as_secs_f64());
    Ok(())
}
