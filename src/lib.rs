#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod augment;
pub mod backbone;
pub mod data;
pub mod embed;
pub mod error;
pub mod eval;
pub mod head;
pub mod models;
pub mod objective;
pub mod stream;

pub use backbone::{Backbone, BackboneSpec, Input, InputKind, Preprocessing};
pub use error::{Error, Result};
