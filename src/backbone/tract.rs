//! The tract engine: tract-onnx parses, types and optimizes the graph once; one runnable state
//! and one input tensor are kept and reused. The only file that imports tract.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use super::{
    BackboneSpec, Built, Elem, Engine, InputBuf, find_outputs, input_type_mismatch, output_dim,
};
use crate::error::{Error, Result};

/// One loaded tract model: its state, its input tensor and (with `multithread`) its thread pool.
pub(super) struct TractRunner {
    state: TypedSimpleState,
    input: Arc<Tensor>,
    #[cfg(feature = "multithread")]
    executor: tract_linalg::multithread::Executor,
}

/// The instruction-set features tract detected on this CPU and dispatches its kernels on.
pub(super) fn cpu_features() -> String {
    format!("{:?}", tract_linalg::isa::native())
}

fn one_line(e: &TractError) -> String {
    format!("{e:#}").replace('\n', " ")
}

fn inference(e: TractError) -> Error {
    Error::Inference { message: one_line(&e), source: e.into() }
}

fn datum(e: Elem) -> DatumType {
    match e {
        Elem::U8 => u8::datum_type(),
        Elem::F32 => f32::datum_type(),
    }
}

fn elem(dt: DatumType) -> Option<Elem> {
    if dt == u8::datum_type() {
        Some(Elem::U8)
    } else if dt == f32::datum_type() {
        Some(Elem::F32)
    } else {
        None
    }
}

/// The executor for `threads`: a private rayon pool with the `multithread` feature.
#[cfg(feature = "multithread")]
fn executor(threads: usize) -> Result<tract_linalg::multithread::Executor> {
    use tract_linalg::multithread::Executor;
    if threads == 1 {
        return Ok(Executor::SingleThread);
    }
    // Built here rather than with `Executor::multithread`, which panics when the pool cannot
    // be created.
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("edge-ssl-tract-{i}"))
        .build()
        .map(|pool| Executor::MultiThread(Arc::new(pool)))
        .map_err(|e| Error::InvalidParam {
            name: "threads",
            reason: format!("cannot start {threads} tract threads: {e}"),
        })
}

impl TractRunner {
    /// The names of the matrix-multiplication kernels tract picked, sorted, without duplicates.
    pub(super) fn kernels(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .state
            .model()
            .nodes()
            .iter()
            .filter_map(|n| n.op_as::<tract_onnx::tract_core::ops::matmul::optimized::OptMatMul>())
            .flat_map(|op| op.mmm.iter().map(|k| k.name().to_string()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    pub(super) fn build(
        mut bytes: &[u8],
        spec: &BackboneSpec,
        origin: &str,
    ) -> Result<Built<TractRunner>> {
        #[cfg(not(feature = "multithread"))]
        if spec.threads > 1 {
            return Err(Error::InvalidParam {
                name: "threads",
                reason: format!(
                    "{} threads asked, but tract runs one thread in this build: rebuild with \
                     `--features multithread`",
                    spec.threads
                ),
            });
        }
        #[cfg(feature = "multithread")]
        let executor = executor(spec.threads)?;
        let rejected = |e: TractError| Error::ModelRejected {
            origin: origin.to_owned(),
            engine: Engine::Tract,
            message: one_line(&e),
            source: e.into(),
        };
        // onnxruntime's quantizer writes symbolic shapes into value_info that tract cannot unify
        // with a fixed batch; the facts we need come from the input fact below.
        let mut model = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .model_for_read(&mut bytes)
            .map_err(rejected)?;

        let all_outlets = model.output_outlets().map_err(rejected)?.to_vec();
        let available: Vec<String> = all_outlets
            .iter()
            .map(|o| {
                model
                    .outlet_label(*o)
                    .map_or_else(|| model.node(o.node).name.clone(), str::to_owned)
            })
            .collect();
        // A name that is not a graph output may name any tensor inside the graph (an
        // intermediate feature map): the ONNX loader labels every node output with its name.
        let mut names = available.clone();
        let mut candidates = all_outlets.clone();
        for name in std::iter::once(&spec.embedding_output).chain(&spec.logits_output) {
            if !names.contains(name)
                && let Some(o) = model.find_outlet_label(name)
            {
                names.push(name.clone());
                candidates.push(o);
            }
        }
        let outlets: Vec<OutletId> =
            find_outputs(&names, spec, origin)?.into_iter().map(|i| candidates[i]).collect();
        model.select_output_outlets(&outlets).map_err(rejected)?;

        if model.input_outlets().map_err(rejected)?.len() != 1 {
            return Err(Error::ModelContract {
                origin: origin.to_owned(),
                what: format!("expected one graph input, found {}", model.inputs.len()),
            });
        }
        let (want, shape) = spec.input_elem_shape();
        let dt = datum(want);
        if let Some(declared) = model.input_fact(0).map_err(rejected)?.datum_type.concretize()
            && declared != dt
        {
            return Err(input_type_mismatch(declared, want, origin));
        }
        let model = model
            .with_input_fact(0, InferenceFact::dt_shape(dt, shape.clone()))
            .and_then(|m| m.into_optimized())
            .map_err(rejected)?;

        let mut dims = Vec::with_capacity(2);
        for ix in 0..outlets.len() {
            let fact = model.output_fact(ix).map_err(rejected)?;
            let out_shape = fact.shape.as_concrete();
            let is_f32 = elem(fact.datum_type) == Some(Elem::F32);
            dims.push(output_dim(ix, is_f32, out_shape, spec.batch, origin, fact)?);
        }
        let plan = model.into_runnable().map_err(rejected)?;
        let state = plan.spawn().map_err(rejected)?;
        let input = Tensor::zero_dt(dt, &shape).map_err(rejected)?;
        Ok(Built {
            runner: TractRunner {
                state,
                input: Arc::new(input),
                #[cfg(feature = "multithread")]
                executor,
            },
            embedding_dim: dims[0],
            logits_dim: dims.get(1).copied(),
        })
    }

    /// Lets `fill` write the input tensor (`batch * sample_len` values).
    pub(super) fn fill(&mut self, fill: impl FnOnce(InputBuf<'_>) -> Result<()>) -> Result<()> {
        if Arc::get_mut(&mut self.input).is_none() {
            // tract kept a reference to the previous input: start a fresh tensor.
            let t = &*self.input;
            let fresh = Tensor::zero_dt(t.datum_type(), t.shape()).map_err(inference)?;
            self.input = Arc::new(fresh);
        }
        let tensor = Arc::get_mut(&mut self.input).expect("exclusive input tensor");
        let is_u8 = tensor.datum_type() == u8::datum_type();
        let mut plain = tensor.try_as_plain_ram_mut().map_err(inference)?;
        if is_u8 {
            fill(InputBuf::U8(plain.as_slice_mut::<u8>().map_err(inference)?))
        } else {
            fill(InputBuf::F32(plain.as_slice_mut::<f32>().map_err(inference)?))
        }
    }

    pub(super) fn run(&mut self, emb: &mut [f32], logits: Option<&mut [f32]>) -> Result<()> {
        let input = tvec!(TValue::from_const(self.input.clone()));
        #[cfg(feature = "multithread")]
        let outputs =
            tract_linalg::multithread::multithread_tract_scope(self.executor.clone(), || {
                self.state.run(input)
            });
        #[cfg(not(feature = "multithread"))]
        let outputs = self.state.run(input);
        let outputs = outputs.map_err(inference)?;
        let copy = |v: &TValue, out: &mut [f32]| -> Result<()> {
            let s = v
                .try_as_plain_ram()
                .and_then(|p| p.as_slice::<f32>().map(|s| &s[..out.len()]))
                .map_err(inference)?;
            out.copy_from_slice(s);
            Ok(())
        };
        copy(&outputs[0], emb)?;
        if let Some(l) = logits {
            copy(&outputs[1], l)?;
        }
        Ok(())
    }
}

/// The initializers `names` of the ONNX file at `path`, as f32 with their shapes, read from the
/// protobuf (no graph is built). Handles float, int8, uint8 and int32 tensors stored as
/// `raw_data` or in the typed fields.
pub(super) fn initializers(
    path: &std::path::Path,
    names: &[&str],
) -> Result<Vec<(Vec<usize>, Vec<f32>)>> {
    use tract_onnx::pb::tensor_proto::DataType;
    let origin = path.display().to_string();
    let proto =
        tract_onnx::onnx().proto_model_for_path(path).map_err(|e| Error::ModelRejected {
            origin: origin.clone(),
            engine: Engine::Tract,
            message: one_line(&e),
            source: e.into(),
        })?;
    let contract = |what: String| Error::ModelContract { origin: origin.clone(), what };
    let graph = proto.graph.as_ref().ok_or_else(|| contract("the file has no graph".into()))?;
    names
        .iter()
        .map(|&name| {
            let t = graph
                .initializer
                .iter()
                .find(|t| t.name == name)
                .ok_or_else(|| contract(format!("no initializer named {name:?}")))?;
            let shape: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
            let raw = &t.raw_data;
            let values: Vec<f32> = match DataType::try_from(t.data_type) {
                Ok(DataType::Float) if raw.is_empty() => t.float_data.clone(),
                Ok(DataType::Float) => raw
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Ok(DataType::Int8) if !raw.is_empty() => {
                    raw.iter().map(|&b| b as i8 as f32).collect()
                }
                Ok(DataType::Uint8) if !raw.is_empty() => raw.iter().map(|&b| b as f32).collect(),
                Ok(DataType::Int32) if !raw.is_empty() => raw
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
                    .collect(),
                Ok(DataType::Int8 | DataType::Uint8 | DataType::Int32) => {
                    t.int32_data.iter().map(|&v| v as f32).collect()
                }
                other => {
                    return Err(contract(format!(
                        "initializer {name:?} has an unsupported type {other:?}"
                    )));
                }
            };
            let expected: usize = shape.iter().product();
            if values.len() != expected {
                return Err(contract(format!(
                    "initializer {name:?} has {} values for shape {shape:?}",
                    values.len()
                )));
            }
            Ok((shape, values))
        })
        .collect()
}
