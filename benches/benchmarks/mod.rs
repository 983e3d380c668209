//! One module per pipeline stage.

pub mod backbone;
pub mod head;
