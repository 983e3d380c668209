#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod adapt;
pub mod augment;
pub mod backbone;
pub mod bank;
pub mod data;
pub mod device;
pub mod embed;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod ffi;
pub mod gate;
pub mod head;
pub mod learner;
pub mod models;
pub mod objective;
pub mod persist;
pub mod propagate;
pub mod report;
pub mod scenario;
pub mod stream;

pub use backbone::{Backbone, BackboneSpec, Input, InputKind, Preprocessing};
pub use error::{Error, Result};
