//! Paths of the models shipped in `models/` (see `models/README.md` for their cards).
//!
//! The paths are absolute, resolved at compile time from this crate's folder, so that
//! `cargo run` and `cargo test` find them from any working directory.

/// EfficientNet-Lite0 (ImageNet weights), int8 QDQ graph (per-channel weights): u8 `[B, H, W, 3]`
/// in, `embedding` `[B, 1280]` and `logits` `[B, 1000]` out.
pub const CAMERA_INT8: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/models/efficientnet-lite0-int8.onnx");

/// The tensor of [`CAMERA_INT8`] that feeds its head: the last MBConv block's output,
/// `[B, 320, H/32, W/32]` (`[B, 320, 4, 4]` at 112 input). Name it as
/// [`BackboneSpec::embedding_output`](crate::BackboneSpec::embedding_output) to embed up to there.
pub const CAMERA_LAST_BLOCK: &str = "b15_proj_DequantizeLinear_Output";

/// The prefix of [`CAMERA_INT8`]'s head convolution (320 -> 1280, then ReLU6 and the global
/// average pool that make `embedding`); read it with
/// [`PointwiseConv::read_qdq`](crate::backbone::PointwiseConv::read_qdq).
pub const CAMERA_HEAD_CONV: &str = "head";

/// MiniRocket-style random-convolution extractor for 6-channel IMU windows, int8:
/// f32 `[B, 128, 6]` in, `embedding` out.
pub const SENSOR_INT8: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/models/minirocket-imu-int8.onnx");

/// The same extractor in f32.
pub const SENSOR_F32: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/minirocket-imu-f32.onnx");

/// The head convolution ([`CAMERA_HEAD_CONV`]) of an image model with the shipped camera
/// model's layout, when the model can hand the learner its last feature map
/// ([`CAMERA_LAST_BLOCK`]) on `engine`: what
/// [`LearnerParams::with_map_graph`](crate::learner::LearnerParams::with_map_graph) needs.
/// `Ok(None)` for a model without that convolution (another architecture) and for
/// onnxruntime, which runs only to a graph's declared outputs: such models hand the learner
/// their embedding.
///
/// # Errors
/// [`Error::ModelRejected`](crate::Error::ModelRejected) if the file is not an ONNX model.
pub fn camera_head_conv(
    model: impl AsRef<std::path::Path>,
    engine: crate::backbone::Engine,
) -> crate::Result<Option<crate::backbone::PointwiseConv>> {
    if engine != crate::backbone::Engine::Tract {
        return Ok(None);
    }
    match crate::backbone::PointwiseConv::read_qdq(model, CAMERA_HEAD_CONV) {
        Ok(conv) => Ok(Some(conv)),
        Err(crate::Error::ModelContract { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}
