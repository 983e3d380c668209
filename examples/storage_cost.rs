//! Accuracy cost of the bank's f16 and i8 storage on real embeddings: Fashion-MNIST train pool
//! (6000, int8 EfficientNet-Lite0 at 112) stored in a bank, decoded, then a cosine
//! nearest-class-mean classifier (all 6000, and 10 per class) and a 10-NN classifier scored on
//! the 2000 test embeddings (stored at f32). `cargo run --release --example storage_cost`
use edge_ssl::bank::{BankParams, Storage};
use edge_ssl::data::idx;
use edge_ssl::embed::EmbeddingCache;
use edge_ssl::{Backbone, BackboneSpec, models};
use rand::{SeedableRng, rngs::StdRng};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data");

/// Embeddings of an IDX image file, cached under `target/tmp/embeddings`.
fn embeddings(path: &str) -> Vec<f32> {
    let set = idx::read_images(path, None::<&str>).unwrap();
    let mut bb =
        Backbone::load(models::CAMERA_INT8, BackboneSpec::efficientnet_lite0(112, 1)).unwrap();
    let cache = EmbeddingCache::new(concat!(env!("CARGO_MANIFEST_DIR"), "/target/tmp/embeddings"));
    cache.images(&mut bb, &set, |_| {}).unwrap()
}

fn norm(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

fn main() {
    let d = 1280;
    let xs = embeddings(&format!("{DATA}/fashion-mnist/train-images-idx3-ubyte.gz"));
    let xt = embeddings(&format!("{DATA}/fashion-mnist/t10k-images-idx3-ubyte.gz"));
    let ys = idx::read_labels(format!("{DATA}/fashion-mnist/train-labels-idx1-ubyte.gz")).unwrap();
    let yt = idx::read_labels(format!("{DATA}/fashion-mnist/t10k-labels-idx1-ubyte.gz")).unwrap();
    let n = ys.len();
    let mut test: Vec<f32> = xt.clone();
    test.chunks_exact_mut(d).for_each(norm);
    for s in [Storage::F32, Storage::F16, Storage::I8] {
        let mut rng = StdRng::seed_from_u64(0);
        let mut bank = BankParams::new(n, d, 10).with_storage(s).build().unwrap();
        for (x, &y) in xs.chunks_exact(d).zip(&ys) {
            bank.insert_given(x, y, &mut rng).unwrap();
        }
        let mut dec = vec![0f32; n * d];
        for (i, row) in dec.chunks_exact_mut(d).enumerate() {
            bank.entry(i).unwrap().embedding_into(row).unwrap();
        }
        let err: f64 = dec.iter().zip(&xs).map(|(a, b)| f64::from((a - b).abs())).sum::<f64>()
            / xs.len() as f64;
        dec.chunks_exact_mut(d).for_each(norm);
        let ncm = |use_row: &dyn Fn(usize) -> bool| -> f64 {
            let mut m = vec![0f32; 10 * d];
            for i in (0..n).filter(|&i| use_row(i)) {
                let c = ys[i] as usize;
                m[c * d..(c + 1) * d]
                    .iter_mut()
                    .zip(&dec[i * d..(i + 1) * d])
                    .for_each(|(a, b)| *a += b);
            }
            m.chunks_exact_mut(d).for_each(norm);
            let ok = test.chunks_exact(d).zip(&yt).filter(|(t, y)| {
                let best = (0..10)
                    .max_by(|&a, &b| {
                        let da: f32 =
                            m[a * d..(a + 1) * d].iter().zip(*t).map(|(u, v)| u * v).sum();
                        let db: f32 =
                            m[b * d..(b + 1) * d].iter().zip(*t).map(|(u, v)| u * v).sum();
                        da.total_cmp(&db)
                    })
                    .unwrap();
                best as u32 == **y
            });
            ok.count() as f64 / yt.len() as f64
        };
        let mut first10 = [0usize; 10];
        let few: Vec<bool> = ys
            .iter()
            .map(|&y| {
                first10[y as usize] += 1;
                first10[y as usize] <= 10
            })
            .collect();
        let (all, ten) = (ncm(&|_| true), ncm(&|i| few[i]));
        // 10-NN (cosine), majority vote
        let mut ok = 0;
        for (t, &y) in test.chunks_exact(d).zip(&yt) {
            let mut sims: Vec<(f32, u32)> = dec
                .chunks_exact(d)
                .zip(&ys)
                .map(|(r, &l)| (r.iter().zip(t).map(|(u, v)| u * v).sum(), l))
                .collect();
            sims.select_nth_unstable_by(10, |a, b| b.0.total_cmp(&a.0));
            let mut votes = [0; 10];
            sims[..10].iter().for_each(|&(_, l)| votes[l as usize] += 1);
            let pred = (0..10).max_by_key(|&c| votes[c]).unwrap();
            ok += usize::from(pred as u32 == y);
        }
        println!(
            "| {s:?} | {} B | {err:.2e} | {all:.4} | {ten:.4} | {:.4} |",
            bank.memory_bytes(),
            ok as f64 / yt.len() as f64
        );
    }
}
