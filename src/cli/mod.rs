//! Parts of the `edge-ssl` command that are too large for `main.rs`.

pub mod user;
