//! Which SIMD kernels tract runs on this CPU: the detected instruction-set features and, for
//! each shipped model, the matrix-multiplication kernels picked for it, plus one timed embed.
//! `scripts/cross-aarch64.sh` runs it under qemu (cortex-a72); on a board, run it natively.
//!
//! `cargo run --release --example kernels`

use std::time::Instant;

use edge_ssl::backbone::cpu_features;
use edge_ssl::{Backbone, BackboneSpec, Input, models};

fn main() -> edge_ssl::Result<()> {
    println!("arch {}, tract ISA: {}", std::env::consts::ARCH, cpu_features());
    for (name, path, spec) in [
        ("camera int8 (112)", models::CAMERA_INT8, BackboneSpec::efficientnet_lite0(112, 1)),
        ("sensor int8", models::SENSOR_INT8, BackboneSpec::minirocket_imu(1)),
    ] {
        let mut b = Backbone::load(path, spec)?;
        let mut e = vec![0.0; b.embedding_dim()];
        let t = Instant::now();
        match b.spec().input.clone() {
            edge_ssl::InputKind::Image { .. } => {
                b.embed(Input::U8(&vec![127u8; b.sample_len()]), &mut e)?;
            }
            edge_ssl::InputKind::Sensor { .. } => {
                b.embed(Input::F32(&vec![0.1f32; b.sample_len()]), &mut e)?;
            }
        }
        println!(
            "{name}: kernels {:?}; first embed {:.1} ms",
            b.kernels(),
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    Ok(())
}
