//! The shipped backbones under tract against onnxruntime's golden outputs, a real photo, and the
//! typed errors for bad models and bad inputs.

use std::path::Path;

use edge_ssl::backbone::PointwiseConv;
use edge_ssl::data::folder;
use edge_ssl::{Backbone, BackboneSpec, Error, Input, models};

mod golden_common;
use golden_common::{argmax, cosine, golden};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn assert_rows_match(what: &str, got: &[f32], want: &[f32], dim: usize, min_cos: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (r, (g, w)) in got.chunks(dim).zip(want.chunks(dim)).enumerate() {
        let c = cosine(g, w);
        assert!(c >= min_cos, "{what}: row {r} cosine {c:.6} < {min_cos}");
    }
}

/// Golden files: `effnet_{size}{tag}_input.npy` (u8) and `effnet_int8_{size}{tag}_*.npy`.
fn camera_golden(size: usize, tag: &str, batch: usize) {
    let input = golden(&format!("effnet_{size}{tag}_input.npy"));
    let prefix = format!("effnet_int8_{size}{tag}");
    let want_emb = golden(&format!("{prefix}_embedding.npy")).to_f32().unwrap();
    let want_logits = golden(&format!("{prefix}_logits.npy")).to_f32().unwrap();
    assert_eq!(input.shape, vec![batch, size, size, 3]);
    let spec = BackboneSpec::efficientnet_lite0(size, batch).with_logits("logits");
    let mut bb = Backbone::load(models::CAMERA_INT8, spec).unwrap();
    assert_eq!((bb.embedding_dim(), bb.logits_dim()), (1280, Some(1000)));
    let mut emb = vec![0.0; batch * 1280];
    let mut logits = vec![0.0; batch * 1000];
    bb.embed_with_logits(Input::U8(&input.bytes), &mut emb, &mut logits).unwrap();
    assert_rows_match(&format!("{prefix} embedding"), &emb, &want_emb, 1280, 0.999);
    for (r, (g, w)) in logits.chunks(1000).zip(want_logits.chunks(1000)).enumerate() {
        assert_eq!(argmax(g), argmax(w), "{prefix}: row {r} ImageNet argmax");
    }
}

#[test]
fn camera_int8_matches_onnxruntime_golden_at_112() {
    camera_golden(112, "", 1);
}

#[test]
fn camera_int8_matches_onnxruntime_golden_at_224() {
    camera_golden(224, "", 1);
}

#[test]
fn camera_int8_matches_onnxruntime_golden_on_a_batch_of_four() {
    camera_golden(112, "_batch4", 4);
}

#[test]
fn partial_batch_equals_single_sample() {
    let input = golden("effnet_112_batch4_input.npy");
    let one = &input.bytes[..112 * 112 * 3];
    let mut single =
        Backbone::load(models::CAMERA_INT8, BackboneSpec::efficientnet_lite0(112, 1)).unwrap();
    let mut e1 = vec![0.0; 1280];
    single.embed(Input::U8(one), &mut e1).unwrap();
    let mut batched =
        Backbone::load(models::CAMERA_INT8, BackboneSpec::efficientnet_lite0(112, 4)).unwrap();
    let mut e4 = vec![0.0; 1280];
    batched.embed(Input::U8(one), &mut e4).unwrap(); // 1 of 4, zero-padded
    assert_rows_match("partial batch", &e4, &e1, 1280, 0.99999);
    // and the state is reusable: a second call gives the same answer
    let mut again = vec![0.0; 1280];
    batched.embed(Input::U8(one), &mut again).unwrap();
    assert_eq!(again, e4);
}

#[test]
fn camera_int8_sees_a_cat_in_chelsea() {
    let mut rgb = Vec::new();
    folder::read_image_into(&Path::new(FIXTURES).join("chelsea.png"), 224, 224, &mut rgb).unwrap();
    let spec = BackboneSpec::efficientnet_lite0(224, 1).with_logits("logits");
    let mut bb = Backbone::load(models::CAMERA_INT8, spec).unwrap();
    let (mut emb, mut logits) = (vec![0.0; 1280], vec![0.0; 1000]);
    bb.embed_with_logits(Input::U8(&rgb), &mut emb, &mut logits).unwrap();
    // ImageNet-1k: 281 tabby, 282 tiger cat, 283 Persian, 284 Siamese, 285 Egyptian cat.
    let top = argmax(&logits);
    assert!((281..=285).contains(&top), "chelsea classified as ImageNet class {top}");
    let mut coffee = Vec::new();
    folder::read_image_into(&Path::new(FIXTURES).join("coffee.png"), 224, 224, &mut coffee)
        .unwrap();
    bb.embed_with_logits(Input::U8(&coffee), &mut emb, &mut logits).unwrap();
    // 967 espresso, 968 cup, 504 coffee mug
    let top = argmax(&logits);
    assert!([967, 968, 504].contains(&top), "coffee classified as ImageNet class {top}");
}

#[test]
fn an_intermediate_tensor_is_an_embedding_and_the_head_conv_rebuilds_the_embedding() {
    // The golden batch of four at 112: its `embedding` must equal ReLU6(head conv) of the last
    // block's map, averaged over the 4x4 positions (the head's output is quantized to 6/255 in
    // the graph, so the match is close, not exact).
    let input = golden("effnet_112_batch4_input.npy");
    let mut spec = BackboneSpec::efficientnet_lite0(112, 4);
    let mut full = Backbone::load(models::CAMERA_INT8, spec.clone()).unwrap();
    spec.embedding_output = models::CAMERA_LAST_BLOCK.into();
    let mut inner = Backbone::load(models::CAMERA_INT8, spec).unwrap();
    assert_eq!(inner.embedding_dim(), 320 * 4 * 4);
    let (mut emb, mut map) = (vec![0.0; 4 * 1280], vec![0.0; 4 * 5120]);
    full.embed(Input::U8(&input.bytes), &mut emb).unwrap();
    inner.embed(Input::U8(&input.bytes), &mut map).unwrap();
    let head = PointwiseConv::read_qdq(models::CAMERA_INT8, models::CAMERA_HEAD_CONV).unwrap();
    assert_eq!((head.inputs, head.outputs), (320, 1280));
    let mut rebuilt = vec![0.0f32; 4 * 1280];
    for (z, e) in map.chunks(5120).zip(rebuilt.chunks_mut(1280)) {
        for (o, (w, b)) in head.weight.chunks(320).zip(&head.bias).enumerate() {
            let mut sum = 0.0;
            for p in 0..16 {
                let pre: f32 = w.iter().enumerate().map(|(c, wc)| wc * z[c * 16 + p]).sum();
                sum += (pre + b).clamp(0.0, 6.0);
            }
            e[o] = sum / 16.0;
        }
    }
    assert_rows_match("head conv over the last block", &rebuilt, &emb, 1280, 0.9999);
    let worst = rebuilt.iter().zip(&emb).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(worst < 6.0 / 255.0, "largest difference {worst}");

    // an unknown name still lists what the graph offers
    let mut bad = BackboneSpec::efficientnet_lite0(112, 1);
    bad.embedding_output = "no_such_tensor".into();
    let err = Backbone::load(models::CAMERA_INT8, bad).unwrap_err();
    assert!(matches!(err, Error::MissingOutput { .. }), "{err}");
    let err = PointwiseConv::read_qdq(models::CAMERA_INT8, "no_such_conv").unwrap_err();
    assert!(matches!(err, Error::ModelContract { .. }), "{err}");
}

fn sensor_golden(model: &str, golden_name: &str) {
    let input = golden("minirocket_input.npy");
    let x = input.to_f32().unwrap();
    let want = golden(golden_name).to_f32().unwrap();
    let n = input.shape[0];
    let mut bb = Backbone::load(model, BackboneSpec::minirocket_imu(n)).unwrap();
    let d = bb.embedding_dim();
    assert_eq!(want.len(), n * d);
    let mut emb = vec![0.0; n * d];
    bb.embed(Input::F32(&x), &mut emb).unwrap();
    assert_rows_match(golden_name, &emb, &want, d, 0.999);
    let equal = emb.iter().zip(&want).filter(|(a, b)| (*a - *b).abs() < 1e-6).count();
    assert!(
        equal as f64 >= 0.99 * want.len() as f64,
        "{golden_name}: {equal}/{} features equal",
        want.len()
    );
}

#[test]
fn sensor_f32_matches_onnxruntime_golden() {
    sensor_golden(models::SENSOR_F32, "minirocket_f32_embedding.npy");
}

#[test]
fn sensor_int8_matches_onnxruntime_golden() {
    sensor_golden(models::SENSOR_INT8, "minirocket_int8_embedding.npy");
}

#[test]
fn wrong_input_shape_and_nan_are_typed_errors() {
    let mut bb = Backbone::load(models::SENSOR_INT8, BackboneSpec::minirocket_imu(2)).unwrap();
    let d = bb.embedding_dim();
    let mut out = vec![0.0; 2 * d];
    let e = bb.embed(Input::F32(&[0.0; 128 * 6 + 1]), &mut out[..d]).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    let e = bb.embed(Input::F32(&vec![0.0; 3 * 128 * 6]), &mut out).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "too many samples: {e}");
    let e = bb.embed(Input::F32(&[0.0; 128 * 6]), &mut out).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "output sized for 2, input 1: {e}");
    let e = bb.embed(Input::U8(&[0; 128 * 6]), &mut out[..d]).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "u8 into an f32 graph: {e}");
    let mut x = vec![0.1f32; 128 * 6];
    x[77] = f32::NAN;
    let e = bb.embed(Input::F32(&x), &mut out[..d]).unwrap_err();
    assert!(matches!(e, Error::NonFinite { index: 77, .. }), "{e}");
    x[77] = f32::INFINITY;
    assert!(matches!(
        bb.embed(Input::F32(&x), &mut out[..d]),
        Err(Error::NonFinite { index: 77, .. })
    ));
}

#[test]
fn corrupt_model_is_rejected_with_tracts_message() {
    let bytes = std::fs::read(models::SENSOR_INT8).unwrap();
    let e = Backbone::from_bytes(&bytes[..bytes.len() / 2], BackboneSpec::minirocket_imu(1))
        .unwrap_err();
    match e {
        Error::ModelRejected { origin, message, .. } => {
            assert_eq!(origin, "<bytes>");
            assert!(!message.is_empty() && !message.contains('\n'));
        }
        other => panic!("expected ModelRejected, got {other:?}"),
    }
    let e = Backbone::load("/nonexistent/model.onnx", BackboneSpec::minirocket_imu(1)).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
}

#[test]
fn missing_output_and_wrong_input_type_are_contract_errors() {
    let mut spec = BackboneSpec::minirocket_imu(1);
    spec.embedding_output = "features".into();
    let e = Backbone::load(models::SENSOR_INT8, spec).unwrap_err();
    assert!(
        matches!(e, Error::MissingOutput { ref available, .. } if available.contains(&"embedding".to_string())),
        "{e:?}"
    );
    // The camera spec feeds u8 images; the sensor graph takes f32.
    let e =
        Backbone::load(models::SENSOR_INT8, BackboneSpec::efficientnet_lite0(112, 1)).unwrap_err();
    assert!(matches!(e, Error::ModelContract { .. }), "{e:?}");
}

#[test]
fn tract_threads_need_the_multithread_feature_and_keep_the_embedding() {
    let input = golden("effnet_112_batch4_input.npy");
    let embed = |threads: usize| {
        let spec = BackboneSpec::efficientnet_lite0(112, 4).with_threads(threads);
        let mut bb = Backbone::load(models::CAMERA_INT8, spec)?;
        let mut e = vec![0.0; 4 * 1280];
        bb.embed(Input::U8(&input.bytes), &mut e)?;
        Ok::<_, Error>(e)
    };
    let one = embed(1).unwrap();
    match embed(2) {
        Ok(two) if cfg!(feature = "multithread") => {
            assert_rows_match("2 tract threads", &two, &one, 1280, 0.99999)
        }
        Err(Error::InvalidParam { name: "threads", reason }) if !cfg!(feature = "multithread") => {
            assert!(reason.contains("--features multithread"), "{reason}")
        }
        other => panic!("threads = 2: {:?}", other.map(|_| "an embedding")),
    }
}
