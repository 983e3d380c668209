//! The onnxruntime engine (cargo feature `onnxruntime`): the `ort` crate with `load-dynamic`,
//! so nothing is linked or downloaded at build time and the shared library is opened when the
//! first onnxruntime backbone is loaded. The only file that imports `ort`.
//!
//! The library and the `ort` environment are process-wide (the `ort` crate allows one
//! environment per process): the first successful load wins and every later onnxruntime
//! backbone shares it. Each backbone has its own session (its own intra-op threads), one input
//! tensor reused for every batch, and run options that select only the outputs it needs.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{HasSelectedOutputs, OutputSelector, RunOptions, Session};
use ort::value::{Tensor, TensorElementType};

use super::{
    BackboneSpec, Built, Elem, Engine, InputBuf, ORT_LIBRARY_ENV, ORT_MIN_VERSION, find_outputs,
    input_type_mismatch, output_dim,
};
use crate::error::{BoxError, Error, Result};

/// The loaded library and the process's one `ort` environment.
struct Runtime {
    env: Environment,
    path: PathBuf,
}

static RUNTIME: Mutex<Option<Runtime>> = Mutex::new(None);

/// A panic payload as text (the `ort` crate panics in a few load paths, e.g. when the
/// executable's path is unknown; those are turned into typed errors here).
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panic while loading".into())
}

/// Where to look for the library, in order (see the module docs of [`crate::backbone`]).
fn candidates(configured: Option<&Path>) -> Vec<PathBuf> {
    let absolute = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().map_or_else(|_| p.to_path_buf(), |d| d.join(p))
        }
    };
    if let Some(p) = configured {
        return vec![absolute(p)];
    }
    if let Some(p) = std::env::var_os(ORT_LIBRARY_ENV).filter(|p| !p.is_empty()) {
        return vec![absolute(Path::new(&p))];
    }
    let mut out = Vec::new();
    if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf))
    {
        let mut next_to: Vec<PathBuf> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libonnxruntime.so"))
            })
            .collect();
        next_to.sort();
        out.extend(next_to);
    }
    // The system's library search path (LD_LIBRARY_PATH, ld.so.cache).
    out.push(PathBuf::from("libonnxruntime.so"));
    out
}

/// The process's environment, loading the library on first use.
fn environment(configured: Option<&Path>) -> Result<Environment> {
    let mut rt = RUNTIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(r) = rt.as_ref() {
        if let Some(want) = configured {
            let want = candidates(Some(want)).remove(0);
            if !want.exists() {
                return Err(Error::RuntimeLibraryMissing {
                    tried: vec![want],
                    reason: "no such file".into(),
                });
            }
            let same = |a: &Path, b: &Path| {
                a.canonicalize().ok().zip(b.canonicalize().ok()).is_some_and(|(a, b)| a == b)
            };
            if !same(&want, &r.path) {
                return Err(Error::InvalidParam {
                    name: "library",
                    reason: format!(
                        "onnxruntime is already loaded from {} in this process; {} cannot be \
                         loaded as well",
                        r.path.display(),
                        want.display()
                    ),
                });
            }
        }
        return Ok(r.env.clone());
    }
    let tried = candidates(configured);
    let mut reasons = Vec::new();
    for path in &tried {
        let loaded = catch_unwind(AssertUnwindSafe(|| ort::init_from(path)));
        let builder = match loaded {
            Ok(Ok(b)) => b,
            Ok(Err(ort::LoadDynamicError::BadVersion { version_str, path })) => {
                return Err(Error::RuntimeLibraryTooOld {
                    path,
                    found: version_str,
                    required: ORT_MIN_VERSION,
                });
            }
            Ok(Err(e)) => {
                reasons.push(e.to_string());
                continue;
            }
            Err(p) => {
                reasons.push(format!("{}: {}", path.display(), panic_text(&*p)));
                continue;
            }
        };
        // ORT's own log lines are dropped: library code does not print. Failures come back
        // as statuses and become typed errors.
        let built = catch_unwind(AssertUnwindSafe(|| {
            builder
                .with_name("edge-ssl")
                .with_telemetry(false)
                .with_logger(Arc::new(|_, _, _, _, _| {}))
                .build()
        }));
        let env = match built {
            Ok(Ok(env)) => env,
            Ok(Err(e)) => {
                return Err(Error::RuntimeLibraryMissing {
                    tried: vec![path.clone()],
                    reason: format!("loaded, but no environment: {e}"),
                });
            }
            Err(p) => {
                return Err(Error::RuntimeLibraryMissing {
                    tried: vec![path.clone()],
                    reason: format!("loaded, but no environment: {}", panic_text(&*p)),
                });
            }
        };
        *rt = Some(Runtime { env: env.clone(), path: path.clone() });
        return Ok(env);
    }
    Err(Error::RuntimeLibraryMissing { tried, reason: reasons.join("; ") })
}

/// The input tensor of one session, reused for every batch.
enum InputTensor {
    U8(Tensor<u8>),
    F32(Tensor<f32>),
}

/// One onnxruntime session with its input tensor and output selection.
pub(super) struct OrtRunner {
    session: Session,
    input: InputTensor,
    outputs: Vec<String>,
    options: RunOptions<HasSelectedOutputs>,
}

fn boxed(e: ort::Error) -> BoxError {
    Box::new(e)
}

fn inference(e: ort::Error) -> Error {
    Error::Inference { message: e.to_string().replace('\n', " "), source: boxed(e) }
}

impl OrtRunner {
    pub(super) fn build(bytes: &[u8], spec: &BackboneSpec, origin: &str) -> Result<Built<Self>> {
        let env = environment(spec.library.as_deref())?;
        let rejected = |e: ort::Error| Error::ModelRejected {
            origin: origin.to_owned(),
            engine: Engine::OnnxRuntime,
            message: e.to_string().replace('\n', " "),
            source: boxed(e),
        };
        let option = |e: ort::Error<_>| rejected(e.into());
        let session = Session::builder(&env)
            .map_err(rejected)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(option)?
            .with_intra_threads(spec.threads)
            .map_err(option)?
            .with_inter_threads(1)
            .map_err(option)?
            .commit_from_memory(bytes)
            .map_err(rejected)?;

        if session.inputs().len() != 1 {
            return Err(Error::ModelContract {
                origin: origin.to_owned(),
                what: format!("expected one graph input, found {}", session.inputs().len()),
            });
        }
        let (want, shape) = spec.input_elem_shape();
        let declared = session.inputs()[0].dtype().tensor_type();
        let expected = match want {
            Elem::U8 => TensorElementType::Uint8,
            Elem::F32 => TensorElementType::Float32,
        };
        if let Some(d) = declared
            && d != expected
        {
            return Err(input_type_mismatch(d, want, origin));
        }
        let available: Vec<String> =
            session.outputs().iter().map(|o| o.name().to_owned()).collect();
        let outputs: Vec<String> = find_outputs(&available, spec, origin)?
            .into_iter()
            .map(|i| available[i].clone())
            .collect();
        let selector =
            outputs.iter().fold(OutputSelector::no_default(), |s, name| s.with(name.clone()));
        let options = RunOptions::new().map_err(rejected)?.with_outputs(selector);
        let len: usize = shape.iter().product();
        let input = match want {
            Elem::U8 => Tensor::from_array((shape.clone(), vec![0u8; len])).map(InputTensor::U8),
            Elem::F32 => Tensor::from_array((shape.clone(), vec![0f32; len])).map(InputTensor::F32),
        }
        .map_err(rejected)?;
        let mut runner = OrtRunner { session, input, outputs, options };

        // One run on zeros: the output shapes (onnxruntime's declared ones may be symbolic),
        // and the first-run allocations happen here rather than on the first frame.
        let dims = runner.output_dims(spec.batch, origin)?;
        Ok(Built { runner, embedding_dim: dims[0], logits_dim: dims.get(1).copied() })
    }

    fn output_dims(&mut self, batch: usize, origin: &str) -> Result<Vec<usize>> {
        let input = match &self.input {
            InputTensor::U8(t) => ort::inputs![t],
            InputTensor::F32(t) => ort::inputs![t],
        };
        let out = self.session.run_with_options(input, &self.options).map_err(inference)?;
        let mut dims = Vec::with_capacity(self.outputs.len());
        for (ix, name) in self.outputs.iter().enumerate() {
            let v = out.get(name.as_str());
            let extracted = v.map(|v| v.try_extract_tensor::<f32>());
            let (is_f32, shape) = match extracted {
                Some(Ok((s, _))) => {
                    (true, s.iter().map(|&d| usize::try_from(d).ok()).collect::<Option<Vec<_>>>())
                }
                _ => (false, None),
            };
            let what = v.map(|v| format!("{:?}", v.dtype()));
            dims.push(output_dim(ix, is_f32, shape.as_deref(), batch, origin, what)?);
        }
        Ok(dims)
    }

    /// Lets `fill` write the input tensor (`batch * sample_len` values).
    pub(super) fn fill(&mut self, fill: impl FnOnce(InputBuf<'_>) -> Result<()>) -> Result<()> {
        match &mut self.input {
            InputTensor::U8(t) => fill(InputBuf::U8(t.extract_tensor_mut().1)),
            InputTensor::F32(t) => fill(InputBuf::F32(t.extract_tensor_mut().1)),
        }
    }

    pub(super) fn run(&mut self, emb: &mut [f32], logits: Option<&mut [f32]>) -> Result<()> {
        let input = match &self.input {
            InputTensor::U8(t) => ort::inputs![t],
            InputTensor::F32(t) => ort::inputs![t],
        };
        let out = self.session.run_with_options(input, &self.options).map_err(inference)?;
        let copy = |ix: usize, dst: &mut [f32]| -> Result<()> {
            let name = self.outputs[ix].as_str();
            let v = out.get(name).ok_or_else(|| Error::Inference {
                message: format!("onnxruntime returned no output {name:?}"),
                source: format!("missing output {name:?}").into(),
            })?;
            let (_, data) = v.try_extract_tensor::<f32>().map_err(inference)?;
            dst.copy_from_slice(&data[..dst.len()]);
            Ok(())
        };
        copy(0, emb)?;
        if let Some(l) = logits {
            copy(1, l)?;
        }
        Ok(())
    }
}
