//! Heads on top of the frozen embedding.
//!
//! - [`ncm`]: nearest class mean, the training-free few-shot baseline.

pub mod ncm;
