//! Property tests: any truncation or bit flips of a valid state file give a typed error or the
//! original state; never a panic.

use std::sync::OnceLock;

use edge_ssl::bank::{Bank, BankParams, Storage};
use edge_ssl::gate::{Admitted, Gate, GateParams, Projection, Variant};
use edge_ssl::persist::{Dims, SectionId, StateFile, StateWriter};
use proptest::prelude::*;
use rand::{Rng, SeedableRng, rngs::StdRng};

const DIMS: Dims = Dims { embedding_dim: 6, n_classes: 3, bank_capacity: 10 };

struct Fixture {
    bank: Bank,
    gate: Gate,
    blob: Vec<f32>,
    bytes: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut rng = StdRng::seed_from_u64(5);
        let mut bank = BankParams::new(10, 6, 3).with_storage(Storage::F16).build().unwrap();
        for i in 0..25u32 {
            let x: Vec<f32> = (0..6).map(|_| rng.random_range(-2.0..2.0)).collect();
            if i % 3 == 0 {
                bank.insert_given(&x, i % 3, &mut rng).unwrap();
            } else {
                bank.insert_pseudo(Admitted::ungated(&x), i % 3, 0.8, &mut rng).unwrap();
            }
        }
        let tx: Vec<f32> = (0..6 * 15).map(|_| rng.random_range(-1.0..1.0)).collect();
        let ty: Vec<u32> = (0..15).map(|i| i % 3).collect();
        let params = GateParams {
            variant: Variant::Relative,
            projection: Projection::Pca(4),
            ..GateParams::default()
        };
        let gate = params.fit(&tx, 6, &ty, 3, &[]).unwrap();
        let blob: Vec<f32> = (0..50).map(|i| i as f32 * 0.5).collect();
        let mut w = StateWriter::new(DIMS, 3);
        w.bank(&bank).unwrap().gate(&gate).unwrap();
        w.f32_blob(SectionId::STUDENT, &blob).unwrap().counters(&[1, 2, 3]).unwrap();
        let bytes = w.to_bytes().unwrap();
        Fixture { bank, gate, blob, bytes }
    })
}

/// Loads every section; `Ok(true)` if the state equals the fixture.
fn load_all(bytes: Vec<u8>) -> edge_ssl::Result<bool> {
    let fx = fixture();
    let f = StateFile::from_bytes(bytes, &DIMS)?;
    let bank = f.bank()?;
    let gate = f.gate()?;
    let mut blob = vec![0f32; fx.blob.len()];
    f.f32_blob_into(SectionId::STUDENT, &mut blob)?;
    let counters = f.counters()?;
    Ok(bank == fx.bank
        && gate == fx.gate
        && blob == fx.blob
        && counters == [1, 2, 3]
        && f.generation() == 3)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn truncation_is_always_an_error(cut in 0usize..100_000) {
        let b = &fixture().bytes;
        let cut = cut % b.len();
        prop_assert!(load_all(b[..cut].to_vec()).is_err());
    }

    #[test]
    fn bit_flips_give_an_error_or_the_same_state(
        flips in proptest::collection::vec((0usize..1_000_000, 0u8..8), 1..6)
    ) {
        let mut b = fixture().bytes.clone();
        let n = b.len();
        for (pos, bit) in &flips {
            b[pos % n] ^= 1 << bit;
        }
        match load_all(b) {
            Err(_) => {}
            Ok(same) => prop_assert!(same, "a corrupted file loaded as a different state"),
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = load_all(bytes);
    }
}

#[test]
fn fixture_loads_intact() {
    assert!(load_all(fixture().bytes.clone()).unwrap());
}
