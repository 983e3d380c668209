//! The learner end to end: resume after a checkpoint is bit-identical, bad input leaves it
//! untouched, the OOD gate keeps strange inputs out of the bank, and on shipped data the
//! semi-supervised learner beats labels-only while the gate raises pseudo-label precision.

use edge_ssl::adapt::AdaptParams;
use edge_ssl::backbone::PointwiseConv;
use edge_ssl::data::idx;
use edge_ssl::embed::EmbeddingCache;
use edge_ssl::eval::{accuracy, sample_per_class};
use edge_ssl::learner::{Algorithm, LearnerParams, Outcome};
use edge_ssl::{Backbone, BackboneSpec, Error, models};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};

/// Three Gaussian classes in 8-d around distinct means, plus far-away "strange" points.
fn synthetic(rng: &mut StdRng, class: Option<u32>) -> Vec<f32> {
    let mut x: Vec<f32> = (0..8).map(|_| rng.random::<f32>() * 0.6 - 0.3).collect();
    match class {
        Some(c) => x[c as usize] += 3.0,
        None => x.iter_mut().for_each(|v| *v = *v * 0.2 + 0.05),
    }
    x
}

fn small_params(seed: u64) -> LearnerParams {
    let mut p = LearnerParams::new(8, 3);
    p.bank_capacity = 128;
    p.gate = Some(edge_ssl::gate::GateParams {
        projection: edge_ssl::gate::Projection::Pca(4),
        ..Default::default()
    });
    p.gate_warmup = 32;
    // the default algorithm propagates labels over the bank: refresh it within these streams
    p.propagation.pca_dim = 4;
    p.propagation.neighbours = 5;
    p.propagation.every = 25;
    p.seed = seed;
    p
}

#[test]
fn resumed_learner_continues_identically() {
    resumes_identically(small_params(11), "default");
}

/// A block over maps of 8 channels x 2 positions that starts as (almost) the identity.
fn block(lr: f32) -> AdaptParams {
    let mut weight = vec![0f32; 64];
    (0..8).for_each(|i| weight[i * 8 + i] = 1.0);
    let conv = PointwiseConv { inputs: 8, outputs: 8, weight, bias: vec![0.1; 8] };
    let mut a = AdaptParams::new(conv, 2);
    a.lr = lr;
    a.refresh_every = 40;
    a
}

/// `x` as a map: each channel at 2 positions, slightly apart (NCHW).
fn as_map(x: &[f32]) -> Vec<f32> {
    x.iter().flat_map(|&v| [v + 0.05, v - 0.05]).collect()
}

#[test]
fn resumed_adaptive_learner_continues_identically() {
    let mut p = small_params(15).with_adapt(block(0.05));
    p.adapt.as_mut().unwrap().unlabeled_rows = 8;
    resumes_identically(p, "adapt");
    // a frozen block with the graph (and the vote) on the maps
    let mut p = small_params(17).with_adapt(block(0.0));
    p.adapt.as_mut().unwrap().graph_on_map = true;
    p.algorithm = Algorithm::LabelProp;
    resumes_identically(p, "adapt-map");
}

#[test]
fn resumed_graph_and_aligned_learners_continue_identically() {
    for alg in [Algorithm::LabelProp, Algorithm::CoMatch] {
        let mut p = small_params(12);
        p.algorithm = alg;
        resumes_identically(p, alg.name());
    }
    let mut p = small_params(13);
    p.distribution_alignment = Some(0.99);
    resumes_identically(p, "aligned");
    let mut p = small_params(14);
    p.temperature_scaling = Some(30);
    resumes_identically(p, "temperature");
}

fn resumes_identically(p: LearnerParams, tag: &str) {
    let dir = std::env::temp_dir().join(format!("edge-ssl-learner-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.bin");
    let mut data = StdRng::seed_from_u64(5);
    let row = |x: Vec<f32>| if p.adapt.is_some() { as_map(&x) } else { x };
    let labeled: Vec<(Vec<f32>, u32)> =
        (0..9).map(|i| (row(synthetic(&mut data, Some(i % 3))), i % 3)).collect();
    let stream: Vec<Vec<f32>> = (0..200)
        .map(|i| row(synthetic(&mut data, if i % 5 == 0 { None } else { Some(i % 3) })))
        .collect();
    let probes: Vec<Vec<f32>> = (0..20).map(|i| row(synthetic(&mut data, Some(i % 3)))).collect();

    let mut a = p.build().unwrap();
    for (x, y) in &labeled {
        a.observe_labeled(x, *y).unwrap();
    }
    for x in &stream[..120] {
        a.observe(x).unwrap();
    }
    assert!(a.gate_fitted(), "the gate is fitted mid-stream");
    if p.uses_graph() {
        assert!(a.propagation().unwrap().refreshes() > 0, "{tag}: refreshed before the checkpoint");
    }
    a.checkpoint(&state).unwrap();
    let mut b = edge_ssl::learner::Learner::resume(&p, &state).unwrap();
    // right after the resume (before any refresh): the graph's vote came back with the state
    for x in &probes {
        assert_eq!(a.predict(x).unwrap(), b.predict(x).unwrap(), "{tag}: predict after resume");
    }
    for x in &stream[120..] {
        assert_eq!(a.observe(x).unwrap(), b.observe(x).unwrap());
    }
    assert_eq!(a.counters(), b.counters());
    for x in &probes {
        assert_eq!(a.predict(x).unwrap(), b.predict(x).unwrap());
    }
    // A state written for other dims is refused, not misread.
    let mut other = p.clone();
    other.n_classes = 4;
    let e = edge_ssl::learner::Learner::resume(&other, &state).unwrap_err();
    assert!(matches!(e, Error::StateDims { .. }), "{e:?}");
}

/// Four blobs whose classes are an XOR (no linear head separates them), ten labels each and
/// a stream of 200: the bank graph's vote in `predict` gets what the linear head cannot.
#[test]
fn the_graph_vote_predicts_what_a_linear_head_cannot() {
    let blob = |rng: &mut StdRng, b: usize| -> (Vec<f32>, u32) {
        let (sx, sy) = (if b & 1 == 0 { 2.0 } else { -2.0 }, if b & 2 == 0 { 2.0 } else { -2.0 });
        let mut x: Vec<f32> = (0..3).map(|_| rng.random::<f32>() * 0.8 - 0.4).collect();
        x[0] += sx;
        x[1] += sy;
        (x, u32::from(sx * sy > 0.0))
    };
    let run = |vote: f32| {
        let mut p = LearnerParams::new(3, 2);
        p.gate = None;
        p.bank_capacity = 512;
        p.propagation.pca_dim = 2;
        p.propagation.every = 100;
        p.algorithm = Algorithm::LabelProp;
        p.graph_vote = vote;
        let mut l = p.build().unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        for b in 0..40 {
            let (x, y) = blob(&mut rng, b % 4);
            l.observe_labeled(&x, y).unwrap();
        }
        for i in 0..200 {
            l.observe(&blob(&mut rng, i % 4).0).unwrap();
        }
        let right = (0..200)
            .filter(|&i| {
                let (x, y) = blob(&mut rng, i % 4);
                l.predict(&x).unwrap().class == y
            })
            .count();
        right as f64 / 200.0
    };
    let (head, voted) = (run(0.0), run(0.5));
    eprintln!("XOR blobs: linear head {head:.3}, with the graph's vote {voted:.3}");
    assert!(head <= 0.8, "a linear head cannot separate an XOR: {head}");
    assert!(voted >= 0.9, "{voted}");
    let mut p = LearnerParams::new(3, 2);
    for bad in [-0.1, 1.5, f32::NAN] {
        p.graph_vote = bad;
        assert!(matches!(p.build(), Err(Error::InvalidParam { name: "graph_vote", .. })), "{bad}");
    }
}

#[test]
fn bad_input_is_a_typed_error_and_leaves_the_learner_untouched() {
    let mut l = small_params(1).build().unwrap();
    let mut data = StdRng::seed_from_u64(2);
    for i in 0..6 {
        l.observe_labeled(&synthetic(&mut data, Some(i % 3)), i % 3).unwrap();
    }
    let probe = synthetic(&mut data, Some(1));
    let before = (l.counters(), l.predict(&probe).unwrap(), l.bank().len());
    assert!(matches!(l.observe(&[0.0; 7]), Err(Error::ShapeMismatch { .. })));
    let mut nan = synthetic(&mut data, Some(0));
    nan[3] = f32::NAN;
    assert!(matches!(l.observe(&nan), Err(Error::NonFinite { index: 3, .. })));
    assert!(matches!(l.observe_labeled(&nan, 0), Err(Error::NonFinite { .. })));
    assert!(matches!(l.observe_labeled(&probe, 3), Err(Error::InvalidParam { name: "label", .. })));
    assert_eq!((l.counters(), l.predict(&probe).unwrap(), l.bank().len()), before);
}

#[test]
fn strange_inputs_never_enter_the_bank() {
    let mut l = small_params(3).build().unwrap();
    let mut data = StdRng::seed_from_u64(4);
    for i in 0..15 {
        l.observe_labeled(&synthetic(&mut data, Some(i % 3)), i % 3).unwrap();
    }
    let (mut strange_admitted, mut strange) = (0, 0);
    for i in 0..3000 {
        let is_strange = i % 3 == 0;
        let x = synthetic(&mut data, if is_strange { None } else { Some(i % 3) });
        let out = l.observe(&x).unwrap();
        if is_strange && l.gate_fitted() {
            strange += 1;
            strange_admitted += usize::from(matches!(out, Outcome::Admitted(_)));
        }
    }
    assert!(strange > 900);
    assert!(strange_admitted * 100 <= strange, "{strange_admitted} of {strange} strange admitted");
    assert!(l.counters().gated as usize >= strange - strange_admitted);
}

/// Embeddings of the shipped data: pool and its labels, test and its labels, MNIST (OOD).
struct Shipped {
    pool: Vec<f32>,
    pool_y: Vec<u32>,
    test: Vec<f32>,
    test_y: Vec<u32>,
    ood: Vec<f32>,
}

/// Shipped Fashion-MNIST (in) and MNIST (out) embeddings, cached under target/tmp.
fn shipped() -> Shipped {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/data");
    let cache = EmbeddingCache::new(concat!(env!("CARGO_TARGET_TMPDIR"), "/embeddings"));
    let mut bb =
        Backbone::load(models::CAMERA_INT8, BackboneSpec::efficientnet_lite0(112, 1)).unwrap();
    let mut load = |images: &str, labels: Option<&str>| {
        let set =
            idx::read_images(format!("{data}/{images}"), labels.map(|l| format!("{data}/{l}")))
                .unwrap();
        (cache.images(&mut bb, &set, |_| {}).unwrap(), set.labels.unwrap_or_default())
    };
    let (pool, pool_y) = load(
        "fashion-mnist/train-images-idx3-ubyte.gz",
        Some("fashion-mnist/train-labels-idx1-ubyte.gz"),
    );
    let (test, test_y) = load(
        "fashion-mnist/t10k-images-idx3-ubyte.gz",
        Some("fashion-mnist/t10k-labels-idx1-ubyte.gz"),
    );
    let (ood, _) = load("mnist/ood-images-idx3-ubyte.gz", None);
    Shipped { pool, pool_y, test, test_y, ood }
}

struct Run {
    accuracy: f64,
    pseudo_precision: f64,
}

/// One learner over a 3000-sample stream (30% MNIST when `ood`), 10 labels per class.
fn run(alg: Algorithm, gate: bool, ood: bool, seed: u64) -> Run {
    let Shipped { pool, pool_y: py, test, test_y: ty, ood: mn } = shipped();
    let d = 1280;
    let mut rng = StdRng::seed_from_u64(seed);
    let lab = sample_per_class(&py, None, 10, 10, &mut rng).unwrap();
    let mut rest: Vec<usize> = (0..py.len()).filter(|i| !lab.contains(i)).collect();
    rest.shuffle(&mut rng);
    let n_ood = if ood { 900 } else { 0 };
    let mut stream: Vec<Option<usize>> = rest[..3000 - n_ood].iter().map(|&i| Some(i)).collect();
    stream.extend((0..n_ood).map(|_| None));
    stream.shuffle(&mut rng);
    let mut p = LearnerParams::new(d, 10);
    p.algorithm = alg;
    p.seed = seed;
    if !gate {
        p.gate = None;
    }
    let mut l = p.build().unwrap();
    for &i in &lab {
        l.observe_labeled(&pool[i * d..(i + 1) * d], py[i]).unwrap();
    }
    let (mut correct, mut admitted) = (0usize, 0usize);
    for (k, s) in stream.iter().enumerate() {
        let x = match s {
            Some(i) => &pool[i * d..(i + 1) * d],
            None => &mn[(k % 2000) * d..(k % 2000 + 1) * d],
        };
        if let Outcome::Admitted(c) = l.observe(x).unwrap() {
            admitted += 1;
            correct += usize::from(s.is_some_and(|i| py[i] == c));
        }
    }
    let pred: Vec<u32> = test.chunks_exact(d).map(|x| l.predict(x).unwrap().class).collect();
    Run {
        accuracy: accuracy(&pred, &ty),
        pseudo_precision: correct as f64 / admitted.max(1) as f64,
    }
}

#[test]
fn ssl_with_gate_beats_labels_only_and_the_gate_raises_precision() {
    let seed = 1;
    let sup = run(Algorithm::Supervised, true, true, seed);
    let ssl = run(Algorithm::FixMatch, true, true, seed);
    let ungated = run(Algorithm::FixMatch, false, true, seed);
    eprintln!(
        "labels-only {:.4}, fixmatch+gate {:.4} (precision {:.3}), fixmatch ungated {:.4} (precision {:.3})",
        sup.accuracy,
        ssl.accuracy,
        ssl.pseudo_precision,
        ungated.accuracy,
        ungated.pseudo_precision
    );
    assert!(
        ssl.accuracy >= sup.accuracy + 0.002,
        "SSL {} vs labels-only {}",
        ssl.accuracy,
        sup.accuracy
    );
    assert!(ssl.pseudo_precision >= ungated.pseudo_precision + 0.15);
}

#[test]
fn label_propagation_over_the_bank_beats_labels_only() {
    let seed = 1;
    let sup = run(Algorithm::Supervised, true, true, seed);
    let lp = run(Algorithm::LabelProp, true, true, seed);
    eprintln!("labels-only {:.4}, labelprop+gate {:.4}", sup.accuracy, lp.accuracy);
    assert!(lp.accuracy >= sup.accuracy + 0.01, "labelprop {} vs {}", lp.accuracy, sup.accuracy);
}

#[test]
fn auto_checkpoint_saves_every_n_samples() {
    let dir = std::env::temp_dir().join(format!("edge-ssl-auto-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("auto.state");
    let mut p = small_params(7);
    p.checkpoint = Some(edge_ssl::learner::AutoCheckpoint { path: path.clone(), every: 50 });
    let mut l = p.build().unwrap();
    let mut data = StdRng::seed_from_u64(8);
    for i in 0..6 {
        l.observe_labeled(&synthetic(&mut data, Some(i % 3)), i % 3).unwrap();
    }
    for i in 0..120 {
        l.observe(&synthetic(&mut data, Some(i % 3))).unwrap();
    }
    // 126 samples seen: the last save was at sample 100.
    let r = edge_ssl::learner::Learner::resume(&p, &path).unwrap();
    assert_eq!(r.counters().labeled + r.counters().unlabeled, 100);
    let mut bad = p.clone();
    bad.checkpoint = Some(edge_ssl::learner::AutoCheckpoint { path, every: 0 });
    assert!(matches!(bad.build(), Err(Error::InvalidParam { name: "checkpoint", .. })));
}

#[test]
fn combinations_are_validated_and_learn() {
    let (main, extra) = Algorithm::parse_combination("fixmatch+meanteacher").unwrap();
    assert_eq!((main, extra.as_slice()), (Algorithm::FixMatch, &[Algorithm::MeanTeacher][..]));
    assert!(Algorithm::parse_combination("fixmatch+nope").is_err());
    for bad in [
        (Algorithm::FixMatch, vec![Algorithm::FixMatch]),
        (Algorithm::FixMatch, vec![Algorithm::MixMatch]),
        (Algorithm::MixMatch, vec![Algorithm::Uda]),
        (Algorithm::Uda, vec![Algorithm::MeanTeacher, Algorithm::MeanTeacher]),
    ] {
        let mut p = small_params(1);
        (p.algorithm, p.extra) = bad;
        assert!(matches!(p.build(), Err(Error::InvalidParam { name: "extra", .. })));
    }
    let mut p = small_params(2);
    (p.algorithm, p.extra) = (Algorithm::FixMatch, vec![Algorithm::MeanTeacher]);
    let mut l = p.build().unwrap();
    let mut data = StdRng::seed_from_u64(3);
    for i in 0..9 {
        l.observe_labeled(&synthetic(&mut data, Some(i % 3)), i % 3).unwrap();
    }
    for i in 0..300 {
        l.observe(&synthetic(&mut data, Some(i % 3))).unwrap();
    }
    let right = (0..60)
        .filter(|&i| {
            let c = (i % 3) as u32;
            l.predict(&synthetic(&mut data, Some(c))).unwrap().class == c
        })
        .count();
    assert!(right >= 57, "{right}/60");
    assert!(l.counters().masked_in > 0);
}

#[test]
fn device_checks_frames_and_dims() {
    use edge_ssl::data::image::Geometry;
    use edge_ssl::device::{Device, Frame};
    let bb = || Backbone::load(models::SENSOR_INT8, BackboneSpec::minirocket_imu(1)).unwrap();
    let e = Device::new(bb(), &LearnerParams::new(10, 7)).unwrap_err();
    assert!(matches!(e, Error::InvalidParam { name: "dim", .. }), "{e:?}");
    let mut p = LearnerParams::new(936, 7);
    p.gate = None;
    let mut dev = Device::new(bb(), &p).unwrap();
    let w = vec![0.25f32; 128 * 6];
    dev.observe_labeled(Frame::Window(&w), 3).unwrap();
    let before = dev.learner().counters();
    let g = Geometry { height: 2, width: 2, channels: 1 };
    let img = Frame::Image { pixels: &[0; 4], geometry: g };
    assert!(matches!(dev.observe(img), Err(Error::ShapeMismatch { .. })));
    assert!(matches!(dev.observe(Frame::Window(&w[1..])), Err(Error::ShapeMismatch { .. })));
    let mut nan = w.clone();
    nan[5] = f32::NAN;
    assert!(matches!(dev.observe(Frame::Window(&nan)), Err(Error::NonFinite { .. })));
    assert_eq!(dev.learner().counters(), before);
    assert_eq!(dev.predict(Frame::Window(&w)).unwrap().class, 3);
}

#[test]
fn input_space_strong_views_feed_the_learner() {
    use edge_ssl::device::{Device, Frame};
    let bb = || Backbone::load(models::SENSOR_INT8, BackboneSpec::minirocket_imu(1)).unwrap();
    let w = concat!(env!("CARGO_MANIFEST_DIR"), "/data/watch");
    let set = edge_ssl::data::npy::read_windows(
        format!("{w}/windows_x.npy"),
        Some(format!("{w}/windows_y.npy")),
        None::<&str>,
    )
    .unwrap();
    let y = set.labels.clone().unwrap();
    let mut p = LearnerParams::new(936, 7);
    p.gate = None;
    p.algorithm = Algorithm::FixMatch;
    let mut dev = Device::new(bb(), &p).unwrap().with_strong_views().unwrap();
    let mut given = [0; 7];
    for (i, &c) in y.iter().enumerate() {
        if given[c as usize] < 3 {
            given[c as usize] += 1;
            dev.observe_labeled(Frame::Window(set.window(i)), c).unwrap();
        }
    }
    for i in 0..60 {
        assert!(matches!(dev.observe(Frame::Window(set.window(i))).unwrap(), Outcome::Admitted(_)));
    }
    assert_eq!(dev.learner().counters().unlabeled, 60);
    // A NaN in the strong view is refused before anything changes.
    let mut l = small_params(1).build().unwrap();
    let mut data = StdRng::seed_from_u64(1);
    l.observe_labeled(&synthetic(&mut data, Some(0)), 0).unwrap();
    let x = synthetic(&mut data, Some(0));
    let mut bad = x.clone();
    bad[2] = f32::NAN;
    let before = l.counters();
    assert!(matches!(l.observe_with_view(&x, &bad), Err(Error::NonFinite { .. })));
    assert_eq!(l.counters(), before);
}

/// Class information only in channel 3 of the map, which the shipped block ignores (its row 3
/// is a constant, mid-way in ReLU6's range): the frozen block's embedding cannot separate the
/// classes, the adapted one learns to.
/// A 1 x 1 "map" of 4 channels whose class (0 or 1) lives only in channel 3.
fn channel3_sample(c: u32, rng: &mut StdRng) -> Vec<f32> {
    let mut x: Vec<f32> = (0..4).map(|_| 0.5 + rng.random::<f32>() * 0.6 - 0.3).collect();
    x[3] = if c == 0 { 1.0 } else { 3.0 } + rng.random::<f32>() * 0.2;
    x
}

/// A shipped block that passes channels 0-2 and ignores channel 3 (a constant output).
fn channel3_conv() -> PointwiseConv {
    PointwiseConv {
        inputs: 4,
        outputs: 4,
        weight: vec![1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 0.],
        bias: vec![0.0, 0.0, 0.0, 3.0],
    }
}

#[test]
fn an_adaptive_block_learns_what_the_frozen_embedding_lacks() {
    let (sample, conv) = (channel3_sample, channel3_conv());
    let accuracy = |lr: f32| -> f64 {
        let mut a = AdaptParams::new(conv.clone(), 1);
        a.lr = lr;
        // 300 block steps: a shorter average than the default's 1000-step horizon
        a.average_decay = 0.9;
        let mut p = LearnerParams::new(4, 2).with_adapt(a);
        p.algorithm = Algorithm::Supervised;
        p.gate = None;
        p.bank_capacity = 64;
        let mut l = p.build().unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        for i in 0..600 {
            l.observe_labeled(&sample(i % 2, &mut rng), i % 2).unwrap();
        }
        let right = (0..200)
            .filter(|&i| {
                let c = (i % 2) as u32;
                l.predict(&sample(c, &mut rng)).unwrap().class == c
            })
            .count();
        assert_eq!(l.block().unwrap().weights().0[15] != 0.0, lr > 0.0, "w[3, 3] moved iff lr > 0");
        right as f64 / 200.0
    };
    let (frozen, adapted) = (accuracy(0.0), accuracy(0.05));
    assert!(frozen < 0.7, "the frozen embedding holds no class information: {frozen}");
    assert!(adapted > 0.95, "the adapted block found channel 3: {adapted} (frozen {frozen})");
}

/// The same task with the block kept frozen (`lr` 0): the head sees no class, but the graph
/// built on the maps (`graph_on_map`) does, and its vote in `predict` recovers the class.
#[test]
fn a_graph_on_the_maps_sees_what_the_frozen_embedding_lacks() {
    let (sample, conv) = (channel3_sample, channel3_conv());
    let accuracy = |on_map: bool| -> f64 {
        let mut a = AdaptParams::new(conv.clone(), 1);
        a.lr = 0.0;
        a.graph_on_map = on_map;
        let mut p = LearnerParams::new(4, 2).with_adapt(a);
        p.algorithm = Algorithm::LabelProp;
        p.gate = None;
        p.bank_capacity = 256;
        // the map's largest principal direction is its class channel
        p.propagation.pca_dim = 1;
        p.propagation.every = 50;
        let mut l = p.build().unwrap();
        let mut rng = StdRng::seed_from_u64(4);
        for i in 0..20 {
            l.observe_labeled(&sample(i % 2, &mut rng), i % 2).unwrap();
        }
        for i in 0..300 {
            l.observe(&sample(i % 2, &mut rng)).unwrap();
        }
        let (mw, mb) = l.block().unwrap().momentum();
        assert!(mw.iter().chain(mb).all(|&m| m == 0.0), "a frozen block makes no steps");
        let right = (0..200)
            .filter(|&i| {
                let c = (i % 2) as u32;
                l.predict(&sample(c, &mut rng)).unwrap().class == c
            })
            .count();
        right as f64 / 200.0
    };
    let (on_embedding, on_map) = (accuracy(false), accuracy(true));
    assert!(on_embedding < 0.7, "the shipped embedding holds no class: {on_embedding}");
    assert!(on_map > 0.85, "the maps' graph votes the class: {on_map} ({on_embedding})");
    let mut a = AdaptParams::new(conv, 1);
    (a.graph_on_map, a.graph_on_shipped) = (true, true);
    let e = LearnerParams::new(4, 2).with_adapt(a).build().unwrap_err();
    assert!(matches!(e, Error::InvalidParam { name: "adapt.graph_on_map", .. }), "{e:?}");
}

#[test]
fn adaptive_learner_checks_its_params_and_rows() {
    let p = small_params(16).with_adapt(block(0.05));
    assert_eq!((p.dim, p.feature_dim()), (16, 8));
    let mut bad = p.clone();
    bad.dim = 15;
    assert!(matches!(bad.build(), Err(Error::InvalidParam { name: "adapt", .. })));
    let mut bad = p.clone();
    bad.algorithm = Algorithm::MixMatch;
    assert!(matches!(bad.build(), Err(Error::InvalidParam { name: "adapt", .. })));
    let mut l = p.build().unwrap();
    let e = l.observe(&[0.5; 8]).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "an embedding is not a map: {e:?}");
    let mut nan = vec![0.5; 16];
    nan[3] = f32::NAN;
    assert!(matches!(l.observe_labeled(&nan, 0), Err(Error::NonFinite { .. })));
    assert_eq!(l.counters().labeled + l.counters().unlabeled, 0, "untouched");
}
