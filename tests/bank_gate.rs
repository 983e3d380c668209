//! Bank + gate together: bounded memory under a long stream, and an OOD stream that must not
//! leak into the bank as pseudo-labels.

use edge_ssl::bank::{BankParams, ENTRY_OVERHEAD_BYTES, InsertOutcome, LabelKind, Storage};
use edge_ssl::gate::{Admitted, GateParams, Verdict};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, StandardNormal};

#[test]
fn bank_memory_is_exact_after_a_million_inserts() {
    for storage in [Storage::F32, Storage::I8] {
        let params = BankParams::new(1024, 32, 10).with_storage(storage);
        let mut bank = params.build().unwrap();
        let expected = 1024 * 32 * storage.bytes_per_value()
            + 1024 * (storage.bytes_per_entry() + ENTRY_OVERHEAD_BYTES)
            + std::mem::size_of::<edge_ssl::bank::Bank>();
        assert_eq!(bank.memory_bytes(), expected);
        assert_eq!(params.memory_bytes(), expected);
        let mut rng = StdRng::seed_from_u64(11);
        let mut x = [0f32; 32];
        for i in 0..1_000_000u32 {
            x.iter_mut().for_each(|v| *v = rng.random_range(-1.0..1.0));
            let c = rng.random_range(0..10);
            if i % 50 == 0 {
                bank.insert_given(&x, c, &mut rng).unwrap();
            } else {
                let conf = rng.random_range(0.5..1.0);
                bank.insert_pseudo(Admitted::ungated(&x), c, conf, &mut rng).unwrap();
            }
        }
        assert_eq!(bank.memory_bytes(), expected, "{storage:?}");
        assert!(bank.is_full());
        assert_eq!(bank.counters().stored + bank.counters().rejected, 1_000_000);
    }
}

fn gaussian(rng: &mut StdRng, mean: &[f32], sd: f32, out: &mut [f32]) {
    for (o, m) in out.iter_mut().zip(mean) {
        let e: f32 = StandardNormal.sample(rng);
        *o = m + sd * e;
    }
}

#[test]
fn ood_stream_leaves_at_most_one_percent_of_the_bank() {
    let (d, k) = (32, 5);
    let mut rng = StdRng::seed_from_u64(12);
    let means: Vec<Vec<f32>> =
        (0..k).map(|c| (0..d).map(|j| if j % k == c { 3.0 } else { 0.0 }).collect()).collect();
    // 10 trusted samples per class
    let mut tx = Vec::new();
    let mut ty = Vec::new();
    let mut row = vec![0f32; d];
    for (c, mean) in means.iter().enumerate() {
        for _ in 0..10 {
            gaussian(&mut rng, mean, 1.0, &mut row);
            tx.extend_from_slice(&row);
            ty.push(c as u32);
        }
    }
    // no projection: a PCA fitted on the 50 trusted samples alone would not see the directions
    // in which the OOD stream differs (see the measurement example)
    let mut gate = GateParams::default().fit(&tx, d, &ty, k, &[]).unwrap();
    let mut bank = BankParams::new(500, d, k).build().unwrap();
    for (x, &y) in tx.chunks_exact(d).zip(&ty) {
        bank.insert_given(x, y, &mut rng).unwrap();
    }
    // origin of each slot: true = from the OOD stream
    let mut from_ood = vec![false; 500];
    // OOD: another cluster (a "new kind of object"), 100k samples interleaved with 20k in-dist.
    let ood_mean: Vec<f32> = (0..d).map(|j| if j % 3 == 0 { 2.5 } else { -0.5 }).collect();
    let mut x = vec![0f32; d];
    for i in 0..120_000 {
        let ood = i % 6 != 0;
        let c = rng.random_range(0..k);
        if ood {
            gaussian(&mut rng, &ood_mean, 1.0, &mut x);
        } else {
            gaussian(&mut rng, &means[c], 1.0, &mut x);
        }
        // the "teacher": nearest class mean, confident
        let pred = (0..k)
            .min_by(|&a, &b| {
                let da: f32 = x.iter().zip(&means[a]).map(|(u, v)| (u - v) * (u - v)).sum();
                let db: f32 = x.iter().zip(&means[b]).map(|(u, v)| (u - v) * (u - v)).sum();
                da.total_cmp(&db)
            })
            .unwrap();
        if let Verdict::Accepted(adm) = gate.admit(&x).unwrap() {
            match bank.insert_pseudo(adm, pred as u32, 0.97, &mut rng).unwrap() {
                InsertOutcome::Stored { slot } | InsertOutcome::Replaced { slot, .. } => {
                    from_ood[slot] = ood
                }
                InsertOutcome::Rejected => {}
            }
        }
    }
    let c = gate.counters();
    assert_eq!(c.accepted + c.rejected, 120_000);
    let n_ood = bank.iter().filter(|e| from_ood[e.slot()]).count();
    let frac = n_ood as f64 / bank.len() as f64;
    assert!(bank.is_full());
    assert!(frac <= 0.01, "{n_ood} of {} bank entries come from the OOD stream", bank.len());
    // every given label survived
    let given: usize = (0..k as u32).map(|c| bank.count(c, LabelKind::Given)).sum();
    assert_eq!(given, 50);
}
