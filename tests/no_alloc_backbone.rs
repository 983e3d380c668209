//! Allocations per `Backbone::embed` pass in steady state, for the shipped camera and sensor
//! models. tract allocates its intermediate tensors on every run (its own, not ours); this test
//! records how many and proves the count is the same on every pass (nothing accumulates) and
//! that our side adds none: a pass costs exactly what tract's `SimpleState::run` costs on the
//! same input tensor.
//!
//! `cargo test --release --test no_alloc_backbone -- --nocapture` prints the counts.

use std::sync::Arc;

use edge_ssl::{Backbone, BackboneSpec, Input, models};
use tract_onnx::prelude::*;

mod common;

use common::allocations_in;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

fn per_pass(backbone: &mut Backbone, input: Input<'_>) -> Vec<usize> {
    let mut out = vec![0f32; backbone.embedding_dim()];
    for _ in 0..2 {
        backbone.embed(input, &mut out).unwrap();
    }
    (0..3).map(|_| allocations_in(|| backbone.embed(input, &mut out).unwrap())).collect()
}

/// Allocations of tract's own `run` on the same model, built as `Backbone::load` builds it.
fn tract_alone(path: &str, input: Tensor, output: &str) -> Vec<usize> {
    let mut model = tract_onnx::onnx().with_ignore_value_info(true).model_for_path(path).unwrap();
    let out = model.find_outlet_label(output).expect("named output");
    model.select_output_outlets(&[out]).unwrap();
    let fact = InferenceFact::dt_shape(input.datum_type(), input.shape().to_vec());
    let plan = model.with_input_fact(0, fact).unwrap().into_optimized().unwrap();
    let mut state = plan.into_runnable().unwrap().spawn().unwrap();
    let input = Arc::new(input);
    let mut run = || drop(state.run(tvec!(TValue::from_const(input.clone()))).unwrap());
    for _ in 0..2 {
        run();
    }
    (0..3).map(|_| allocations_in(&mut run)).collect()
}

#[test]
fn embed_allocations_are_tracts_own_and_constant() {
    let image = vec![100u8; 112 * 112 * 3];
    let window = vec![0.5f32; 128 * 6];
    let image_t = Tensor::from_shape(&[1, 112, 112, 3], &image).unwrap();
    let window_t = Tensor::from_shape(&[1, 128, 6], &window).unwrap();
    for (name, path, spec, input, tensor) in [
        (
            "camera int8 112",
            models::CAMERA_INT8,
            BackboneSpec::efficientnet_lite0(112, 1),
            Input::U8(&image),
            image_t,
        ),
        (
            "sensor int8",
            models::SENSOR_INT8,
            BackboneSpec::minirocket_imu(1),
            Input::F32(&window),
            window_t.clone(),
        ),
        (
            "sensor f32",
            models::SENSOR_F32,
            BackboneSpec::minirocket_imu(1),
            Input::F32(&window),
            window_t,
        ),
    ] {
        let mut bb = Backbone::load(path, spec).unwrap();
        let counts = per_pass(&mut bb, input);
        let tract = tract_alone(path, tensor, "embedding");
        eprintln!(
            "{name}: allocations per pass: Backbone::embed {counts:?}, tract alone {tract:?}"
        );
        assert!(counts.windows(2).all(|w| w[0] == w[1]), "{name}: {counts:?} not constant");
        assert_eq!(counts, tract, "{name}: our side of embed allocates");
    }
}
