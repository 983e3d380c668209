//! One module per pipeline stage.

pub mod backbone;
pub mod bank;
pub mod gate;
pub mod head;
pub mod learner;
pub mod persist;
pub mod propagate;
