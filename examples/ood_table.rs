//! Fashion-MNIST (in) vs MNIST (out): AUROC and FPR at 95% TPR of the OOD gate variants on the
//! int8 EfficientNet-Lite0 embeddings (112x112) and on raw pixels, side by side.
//!
//! Protocol (what a device could run): per seed, the gate's TRUSTED data is 10 labelled images
//! per class drawn from the 6000-image Fashion-MNIST pool. The unlabelled stream is the whole
//! pool plus 1000 MNIST digits (14% contamination, never labelled, not known to be clean); it
//! is used ONLY for unsupervised PCA bases. Test: the 2000 Fashion-MNIST test images (in) vs
//! the other 1000 MNIST digits (out). Combinations z-score each score with the mean and sd of
//! the trusted samples' own scores.
//!
//! `cargo run --release --example ood_table` (embeddings computed once with the shipped int8 backbone into target/tmp/embeddings)

use edge_ssl::data::idx;
use edge_ssl::gate::eval::{auroc, fpr_at_tpr};
use edge_ssl::gate::{GateParams, Projection, Variant};
use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};

#[path = "../tests/ood_common/mod.rs"]
mod ood_common;
use ood_common::*;

fn main() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/data");
    let (de, dp) = (1280, 784);
    let e_pool = embeddings(&format!("{data}/fashion-mnist/train-images-idx3-ubyte.gz"));
    let e_test = embeddings(&format!("{data}/fashion-mnist/t10k-images-idx3-ubyte.gz"));
    let e_mn = embeddings(&format!("{data}/mnist/ood-images-idx3-ubyte.gz"));
    let p_pool = pixels(&format!("{data}/fashion-mnist/train-images-idx3-ubyte.gz"));
    let p_test = pixels(&format!("{data}/fashion-mnist/t10k-images-idx3-ubyte.gz"));
    let p_mn = pixels(&format!("{data}/mnist/ood-images-idx3-ubyte.gz"));
    let y_pool =
        idx::read_labels(format!("{data}/fashion-mnist/train-labels-idx1-ubyte.gz")).unwrap();
    assert_eq!(e_pool.len() / de, y_pool.len());
    assert_eq!(e_mn.len() / de, p_mn.len() / dp);
    let n_mn = e_mn.len() / de;
    let half = n_mn / 2;
    // stream = pool + first half of MNIST (contamination); test OOD = second half
    let e_stream: Vec<f32> = e_pool.iter().chain(&e_mn[..half * de]).copied().collect();
    let p_stream: Vec<f32> = p_pool.iter().chain(&p_mn[..half * dp]).copied().collect();
    let (e_out, p_out) = (&e_mn[half * de..], &p_mn[half * dp..]);
    let t0 = std::time::Instant::now();
    let ep = basis(&e_stream, de, 128);
    let pp = basis(&p_stream, dp, 64);
    eprintln!("PCA bases on the stream: {:.1} s", t0.elapsed().as_secs_f64());
    let e_test_k = project(&e_test, &ep, 128);
    let e_out_k = project(e_out, &ep, 128);
    let e_pool_k = project(&e_pool, &ep, 128);
    let p_test_k = project(&p_test, &pp, 64);
    let p_out_k = project(p_out, &pp, 64);
    let p_pool_k = project(&p_pool, &pp, 64);

    let mut rows: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut record = |name: &str, s: &Scores| {
        let r = (auroc(&s.ins, &s.outs), fpr_at_tpr(&s.ins, &s.outs, 0.95));
        match rows.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => v.push(r),
            None => rows.push((name.to_string(), vec![r])),
        }
    };
    let tied = GateParams::default();
    let rel = GateParams { variant: Variant::Relative, ..tied };
    let diag = GateParams { variant: Variant::Diagonal, ..tied };
    for seed in 0..3u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut idx: Vec<usize> = Vec::new();
        for c in 0..10u32 {
            let mut cand: Vec<usize> = (0..y_pool.len()).filter(|&i| y_pool[i] == c).collect();
            cand.shuffle(&mut rng);
            idx.extend_from_slice(&cand[..10]);
        }
        let ty: Vec<u32> = idx.iter().map(|&i| y_pool[i]).collect();
        let rows_of = |x: &[f32], d: usize| -> Vec<f32> {
            idx.iter().flat_map(|&i| x[i * d..(i + 1) * d].to_vec()).collect()
        };
        let sub = |x: &[f32], k: usize| -> Vec<f32> {
            x.chunks_exact(128).flat_map(|r| r[..k].to_vec()).collect()
        };
        let psub = |x: &[f32], k: usize| -> Vec<f32> {
            x.chunks_exact(64).flat_map(|r| r[..k].to_vec()).collect()
        };
        let (te, tp) = (rows_of(&e_pool, de), rows_of(&p_pool, dp));
        let s = gate_scores(tied, &tp, &ty, dp, &[], &p_test, p_out);
        record("pixels 784-d, tied", &s);
        let pix32 = {
            let tk = rows_of(&psub(&p_pool_k, 32), 32);
            gate_scores(tied, &tk, &ty, 32, &[], &psub(&p_test_k, 32), &psub(&p_out_k, 32))
        };
        record("pixels PCA-32 (stream), tied", &pix32);
        let pix32r = {
            let tk = rows_of(&psub(&p_pool_k, 32), 32);
            gate_scores(rel, &tk, &ty, 32, &[], &psub(&p_test_k, 32), &psub(&p_out_k, 32))
        };
        record("pixels PCA-32 (stream), relative", &pix32r);
        for (name, p) in [("tied", tied), ("relative", rel), ("diagonal", diag)] {
            let s = gate_scores(p, &te, &ty, de, &[], &e_test, e_out);
            record(&format!("emb 1280-d, {name}"), &s);
        }
        let s = gate_scores(
            GateParams { projection: Projection::Pca(32), ..tied },
            &te,
            &ty,
            de,
            &[],
            &e_test,
            e_out,
        );
        record("emb PCA-32 (trusted only), tied", &s);
        let norm = norm_scores(&te, &e_test, e_out, de);
        record("emb -L2 norm", &norm);
        let mut best = None;
        for k in [8, 16, 32, 64, 128] {
            let tk = rows_of(&sub(&e_pool_k, k), k);
            let (ik, ok) = (sub(&e_test_k, k), sub(&e_out_k, k));
            for (name, p) in [("tied", tied), ("relative", rel), ("diagonal", diag)] {
                let s = gate_scores(p, &tk, &ty, k, &[], &ik, &ok);
                record(&format!("emb PCA-{k} (stream), {name}"), &s);
                if k == 16 && name == "tied" {
                    best = Some(s);
                }
            }
        }
        let e16 = best.unwrap();
        record("z: emb PCA-16 + pixels PCA-32", &zsum(&[&e16, &pix32]));
        record("z: emb PCA-16 + norm", &zsum(&[&e16, &norm]));
        record("z: emb PCA-16 + norm + pixels PCA-32", &zsum(&[&e16, &norm, &pix32]));
        record("z: norm + pixels PCA-32", &zsum(&[&norm, &pix32]));
        eprintln!("seed {seed} done at {:.1} s", t0.elapsed().as_secs_f64());
    }
    println!("| scorer | AUROC | FPR@95TPR |");
    println!("|---|---|---|");
    for (name, v) in &rows {
        let n = v.len() as f64;
        let (ma, mf) =
            (v.iter().map(|r| r.0).sum::<f64>() / n, v.iter().map(|r| r.1).sum::<f64>() / n);
        let sa = (v.iter().map(|r| (r.0 - ma).powi(2)).sum::<f64>() / n).sqrt();
        println!("| {name} | {ma:.3} ± {sa:.3} | {mf:.3} |");
    }
}
