//! A first program: load the shipped camera backbone, learn from 3 labels per class and an
//! unlabeled stream, predict. `cargo run --release --example quickstart`
use edge_ssl::data::{idx, image::Geometry};
use edge_ssl::device::{Device, Frame};
use edge_ssl::learner::LearnerParams;
use edge_ssl::{Backbone, BackboneSpec, models};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/data/fashion-mnist");
    let set = idx::read_images(
        format!("{data}/train-images-idx3-ubyte.gz"),
        Some(format!("{data}/train-labels-idx1-ubyte.gz")),
    )?;
    let labels = set.labels.clone().unwrap_or_default();
    let geometry = Geometry { height: 28, width: 28, channels: 1 }; // resized to 112x112 RGB
    let frame = |i: usize| Frame::Image { pixels: set.image(i), geometry };

    let backbone = Backbone::load(models::CAMERA_INT8, BackboneSpec::efficientnet_lite0(112, 1))?;
    let mut params = LearnerParams::new(backbone.embedding_dim(), 10);
    params.gate_warmup = 64; // fit the OOD gate after 64 unlabeled frames
    let mut device = Device::new(backbone, &params)?;

    let mut given = [0; 10];
    for (i, &y) in labels.iter().enumerate() {
        if given[y as usize] < 3 {
            given[y as usize] += 1;
            device.observe_labeled(frame(i), y)?; // a user labelled this frame
        }
    }
    for i in 1000..1300 {
        device.observe(frame(i))?; // the unlabeled stream
    }
    let mut right = 0;
    for (i, &y) in labels.iter().enumerate().skip(2000).take(100) {
        right += usize::from(device.predict(frame(i))?.class == y);
    }
    println!("{right}/100 right after 30 labels and 300 unlabeled frames");
    println!("{:?}", device.learner().counters());
    Ok(())
}
