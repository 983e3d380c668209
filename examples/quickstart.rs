//! A first program: load the shipped camera backbone, learn from 3 labels per class and an
//! unlabeled stream, predict. `cargo run --release --example quickstart`
use edge_ssl::data::idx;
use edge_ssl::data::image::{Geometry, resize_into};
use edge_ssl::learner::LearnerParams;
use edge_ssl::{Backbone, BackboneSpec, Input, models};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/data/fashion-mnist");
    let set = idx::read_images(
        format!("{data}/train-images-idx3-ubyte.gz"),
        Some(format!("{data}/train-labels-idx1-ubyte.gz")),
    )?;
    let labels = set.labels.clone().unwrap_or_default();
    let mut backbone =
        Backbone::load(models::CAMERA_INT8, BackboneSpec::efficientnet_lite0(112, 1))?;
    let (src, dst) = (
        Geometry { height: 28, width: 28, channels: 1 },
        Geometry { height: 112, width: 112, channels: 3 },
    );
    let (mut rgb, mut emb) = (vec![0u8; dst.len()], vec![0f32; backbone.embedding_dim()]);
    let mut embed = |i: usize, emb: &mut [f32]| -> edge_ssl::Result<()> {
        resize_into(set.image(i), src, &mut rgb, dst)?; // 28x28 gray -> 112x112 RGB
        backbone.embed(Input::U8(&rgb), emb)
    };

    let mut params = LearnerParams::new(emb.len(), 10);
    params.gate_warmup = 64; // fit the OOD gate after 64 unlabeled frames
    let mut learner = params.build()?;
    let mut seen = [0; 10];
    for (i, &label) in labels.iter().enumerate() {
        let y = label as usize;
        if seen[y] < 3 {
            seen[y] += 1;
            embed(i, &mut emb)?;
            learner.observe_labeled(&emb, y as u32)?; // a user labelled this frame
        }
    }
    for i in 1000..1300 {
        embed(i, &mut emb)?;
        learner.observe(&emb)?; // the unlabeled stream
    }
    let mut right = 0;
    for (i, &label) in labels.iter().enumerate().skip(2000).take(100) {
        embed(i, &mut emb)?;
        let p = learner.predict(&emb)?;
        right += usize::from(p.class == label);
    }
    println!(
        "{right}/100 right after 30 labels and 300 unlabeled frames; {:?}",
        learner.counters()
    );
    Ok(())
}
