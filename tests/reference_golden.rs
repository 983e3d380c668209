//! Objectives against an independent numpy reference.
//!
//! `tests/reference/objectives.py` (numpy 2.4.6, Python 3.11) writes the inputs and expected
//! outputs to `tests/reference/objectives.golden`, a flat text file of `name: v1 v2 ...` lines
//! committed with the tests; Python is only needed to regenerate it. Tolerance: the reference
//! is float64, the crate float32 on f32-rounded inputs, so values agree to ~1e-6 relative.

use edge_ssl::objective::{
    divergence::{augmix_consistency, kl_into},
    fixmatch::FixMatchParams,
    infonce::InfoNceParams,
    kd::KdParams,
    mixmatch::MixMatchParams,
    softmax::{CrossEntropyParams, sharpen_into, softmax_into},
    temporal::TemporalEnsembleParams,
    uda::{TsaParams, TsaSchedule, UdaParams},
};
use std::collections::HashMap;

const K: usize = 5;
const N: usize = 4;
const D: usize = 6;

fn golden() -> HashMap<String, Vec<f32>> {
    include_str!("reference/objectives.golden")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, vals) = l.split_once(':').expect("name: values");
            let v = vals.split_whitespace().map(|x| x.parse::<f64>().unwrap() as f32).collect();
            (name.trim().to_string(), v)
        })
        .collect()
}

fn assert_close(name: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 2e-6 + 2e-5 * w.abs(), "{name}[{i}]: got {g}, numpy {w}");
    }
}

#[test]
fn objectives_match_numpy_reference() {
    let g = golden();
    let (z, z2, z3, p) = (&g["z"], &g["z2"], &g["z3"], &g["p"]);
    let y: Vec<u32> = g["y"].iter().map(|&v| v as u32).collect();
    let mut out = vec![0.0f32; N * K];
    let mut grad = vec![0.0f32; N * K];

    softmax_into(z, K, 2.0, &mut out).unwrap();
    assert_close("softmax_T2", &out, &g["softmax_T2"]);
    let mut hand = [0.0; 3];
    softmax_into(&[1.4, 2.8, 0.9], 3, 1.0, &mut hand).unwrap();
    assert_close("hand_softmax", &hand, &g["hand_softmax"]);

    let ce = CrossEntropyParams { label_smoothing: 0.1, temperature: 1.5 }.check().unwrap();
    let l = ce.hard(z, &y, &mut grad).unwrap();
    assert_close("ce_smooth_loss", &[l], &g["ce_smooth_loss"]);
    assert_close("ce_smooth_grad", &grad, &g["ce_smooth_grad"]);

    let l = kl_into(p, z, K, 2.0, &mut grad).unwrap();
    assert_close("kl_T2_loss", &[l], &g["kl_T2_loss"]);

    let (mut g1, mut g2, mut g3) = (vec![0.0; N * K], vec![0.0; N * K], vec![0.0; N * K]);
    let l = augmix_consistency([z, z2, z3], K, [&mut g1, &mut g2, &mut g3]).unwrap();
    assert_close("augmix_loss", &[l], &g["augmix_loss"]);

    sharpen_into(p, K, 0.5, &mut out).unwrap();
    assert_close("sharpen_half", &out, &g["sharpen_half"]);

    let kd = KdParams { temperature: 4.0 }.check().unwrap();
    let l = kd.loss(z, z2, K, &mut grad).unwrap();
    assert_close("kd_T4_loss", &[l], &g["kd_T4_loss"]);
    assert_close("kd_T4_grad", &grad, &g["kd_T4_grad"]);

    let fm = FixMatchParams { threshold: 0.5, ..FixMatchParams::default() }.check().unwrap();
    let r = fm.unlabeled_loss(p, z, K, &mut grad).unwrap();
    assert_close("fixmatch_tau05_loss", &[r.loss], &g["fixmatch_tau05_loss"]);
    assert_eq!(r.selected as f32, g["fixmatch_tau05_selected"][0]);

    let uda = UdaParams { confidence: 0.4, ..UdaParams::default() }.check().unwrap();
    let r = uda.unlabeled_loss(z2, z, K, &mut grad).unwrap();
    assert_close("uda_loss", &[r.loss], &g["uda_loss"]);
    assert_eq!(r.selected as f32, g["uda_selected"][0]);

    let mm = MixMatchParams { lambda_u: 1.0, ..MixMatchParams::default() }.check().unwrap();
    let l = mm.unlabeled_loss(z, p, K, &mut grad).unwrap();
    assert_close("mixmatch_l2_loss", &[l], &g["mixmatch_l2_loss"]);
    let (mut s2, mut s3) = (vec![0.0; N * K], vec![0.0; N * K]);
    softmax_into(z2, K, 1.0, &mut s2).unwrap();
    softmax_into(z3, K, 1.0, &mut s3).unwrap();
    mm.guess_labels_into(&[&s2, &s3], K, &mut out).unwrap();
    assert_close("mixmatch_guess", &out, &g["mixmatch_guess"]);

    let tsa = TsaParams { schedule: TsaSchedule::Linear, total_steps: 10 }.check().unwrap();
    let r = tsa.supervised_loss(z, &y, K, 2, &mut grad).unwrap();
    assert_close("tsa_linear_fifth_loss", &[r.loss], &g["tsa_linear_fifth_loss"]);
    assert_eq!(r.selected as f32, g["tsa_linear_fifth_selected"][0]);

    let nce = InfoNceParams { temperature: 0.2 }.check().unwrap();
    let mut dq = vec![0.0; N * D];
    let l = nce.loss(&g["nce_q"], &g["nce_k"], &g["nce_queue"], D, &mut dq).unwrap();
    assert_close("nce_T02_loss", &[l], &g["nce_T02_loss"]);

    let mut te = TemporalEnsembleParams::new(N, K).check().unwrap().build();
    let idx: Vec<usize> = (0..N).collect();
    softmax_into(z, K, 1.0, &mut out).unwrap();
    te.accumulate(&idx, &out).unwrap();
    te.accumulate(&idx, &s2).unwrap();
    te.targets_into(&idx, &mut out).unwrap();
    assert_close("te_targets", &out, &g["te_targets"]);
}
