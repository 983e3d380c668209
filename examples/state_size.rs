//! Prints the size of a default-sized state file: 1280-d embeddings, 10 classes, a 1024-entry
//! f32 bank (and f16/i8), a tied OAS gate with PCA-16, linear student + teacher heads
//! (1280 x 10 + 10) and one momentum buffer, 4 counters.
use edge_ssl::bank::{BankParams, Storage};
use edge_ssl::gate::{GateParams, Projection};
use edge_ssl::persist::{Dims, SectionId, StateWriter};
use rand::{Rng, SeedableRng, rngs::StdRng};

fn main() {
    let (d, k, cap) = (1280, 10, 1024);
    let mut rng = StdRng::seed_from_u64(0);
    let x: Vec<f32> = (0..100 * d).map(|_| rng.random()).collect();
    let y: Vec<u32> = (0..100).map(|i| i % 10).collect();
    let gate = GateParams { projection: Projection::Pca(16), ..GateParams::default() }
        .fit(&x, d, &y, k, &[])
        .unwrap();
    let head = vec![0f32; d * k + k];
    for s in [Storage::F32, Storage::F16, Storage::I8] {
        let bank = BankParams::new(cap, d, k).with_storage(s).build().unwrap();
        let dims = Dims { embedding_dim: d as u32, n_classes: k as u32, bank_capacity: cap as u32 };
        let mut w = StateWriter::new(dims, 0);
        w.bank(&bank).unwrap().gate(&gate).unwrap();
        w.f32_blob(SectionId::STUDENT, &head).unwrap();
        w.f32_blob(SectionId::TEACHER, &head).unwrap();
        w.f32_blob(SectionId::OPTIMIZER, &head).unwrap();
        w.counters(&[0; 4]).unwrap();
        println!("{s:?} bank: {} bytes", w.to_bytes().unwrap().len());
    }
}
