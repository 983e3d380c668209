//! One module per pipeline stage.

pub mod backbone;
pub mod backbone_cpu;
pub mod bank;
pub mod cpu_time;
pub mod gate;
pub mod head;
pub mod learner;
pub mod persist;
pub mod propagate;
