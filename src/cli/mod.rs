//! Parts of the `edge-ssl` command that are too large for `main.rs`.

pub mod user;

use std::path::PathBuf;

use edge_ssl::backbone::{BackboneSpec, Engine};

/// How the backbone runs: engine, threads, onnxruntime library. Each is optional so that
/// `experiment` can keep its spec's values unless one is given.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EngineArgs {
    /// Backbone inference engine: tract (built in) or onnxruntime (needs a build with
    /// `--features onnxruntime` and libonnxruntime.so: scripts/fetch-onnxruntime.sh)
    /// [default: tract, or the spec's `engine`].
    #[arg(long, value_name = "tract|onnxruntime")]
    pub engine: Option<Engine>,
    /// Threads per backbone run (tract needs `--features multithread` for more than 1)
    /// [default: 1, or the spec's `threads`].
    #[arg(long)]
    pub threads: Option<usize>,
    /// The onnxruntime shared library [default: $ORT_DYLIB_PATH, then next to the executable,
    /// then the system's library path].
    #[arg(long, value_name = "FILE")]
    pub ort_library: Option<PathBuf>,
}

impl EngineArgs {
    /// `spec` with the options that were given.
    pub fn apply(&self, mut spec: BackboneSpec) -> BackboneSpec {
        if let Some(e) = self.engine {
            spec.engine = e;
        }
        if let Some(t) = self.threads {
            spec.threads = t;
        }
        if let Some(l) = &self.ort_library {
            spec.library = Some(l.clone());
        }
        spec
    }
}

/// A JSON number, or `null` for NaN and infinities.
pub fn json_num(v: f64) -> String {
    if v.is_finite() { format!("{v:.6}") } else { "null".into() }
}
