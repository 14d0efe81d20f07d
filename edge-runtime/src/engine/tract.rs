//! tract: one optimised plan per bundle with the batch dimension left symbolic, so the same plan
//! serves batch 1 and batch 256. Each worker keeps its own state of that plan; a large batch is
//! split into one contiguous slice per worker and the slices run concurrently on rayon's pool.

use std::io::Cursor;
use std::sync::Arc;

use rayon::prelude::*;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;

use super::{Engine, EngineKind, TensorIn, TensorOut};
use crate::bundle::BundleGraph;
use crate::error::{Error, Result};

type Plan = TypedRunnableModel;
type State = TypedSimpleState;

/// Below this many rows per thread, splitting a batch costs more than it saves.
const MIN_ROWS_PER_THREAD: usize = 32;

pub struct TractEngine {
    states: Vec<State>,
    /// The model, as a panic inside tract names it.
    model: String,
}

/// tract failed while doing `context`.
fn engine_error(context: &'static str) -> impl FnOnce(TractError) -> Error {
    move |source| Error::engine_failed("tract", context, source)
}

impl TractEngine {
    /// Builds the engine for a verified bundle; a model tract cannot read names `model.onnx`.
    /// The output's shape, as tract infers it, must be the manifest's: a graph that would
    /// produce a tensor of another size is refused before it runs.
    /// A panic inside tract is an error naming the model.
    pub fn load(graph: &BundleGraph<'_>, threads: usize) -> Result<TractEngine> {
        let model = graph.path.display().to_string();
        super::guarded("tract", &format!("loading {model}"), || {
            let plan = optimised_plan(graph.bytes).map_err(|source| {
                Error::bundle_unreadable(&graph.path, "tract cannot load the model", source)
            })?;
            check_output_fact(&plan, graph)?;
            Self::from_plan(&plan, threads, model.clone())
        })
    }

    /// Builds the engine from ONNX bytes that were already verified.
    pub fn from_onnx(model: &[u8], threads: usize) -> Result<TractEngine> {
        super::guarded("tract", "loading the model", || {
            let plan = optimised_plan(model).map_err(engine_error("cannot load the model"))?;
            Self::from_plan(&plan, threads, "the model".to_owned())
        })
    }

    fn from_plan(plan: &Arc<Plan>, threads: usize, model: String) -> Result<TractEngine> {
        let threads = super::resolve_threads(threads);
        let states = (0..threads)
            .map(|_| State::new(plan))
            .collect::<TractResult<Vec<_>>>()
            .map_err(engine_error("cannot create the workers' states"))?;
        Ok(TractEngine { states, model })
    }
}

/// The dimensions after the batch of the plan's first output must be those the manifest
/// declares, and the batch dimension must be symbolic.
fn check_output_fact(plan: &Plan, graph: &BundleGraph<'_>) -> Result<()> {
    let expected: Vec<Option<usize>> = graph
        .spec
        .outputs
        .first()
        .map(|output| output.shape.iter().skip(1).copied().collect())
        .unwrap_or_default();
    let fact = plan
        .model()
        .output_fact(0)
        .map_err(|source| Error::bundle_unreadable(&graph.path, "tract finds no output", source))?;
    let inferred: Vec<Option<usize>> =
        fact.shape.iter().skip(1).map(|dim| dim.to_usize().ok()).collect();
    let batch_is_symbolic = fact.shape.iter().next().is_some_and(|dim| dim.to_usize().is_err());
    if inferred != expected || !batch_is_symbolic {
        return Err(Error::bundle(
            &graph.path,
            format!(
                "the graph's first output has the inferred shape {:?}, but the manifest expects [N, {}]; refusing to run it",
                fact.shape,
                expected
                    .iter()
                    .map(|dim| dim.map_or_else(|| "?".to_owned(), |dim| dim.to_string()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(())
}

fn optimised_plan(model: &[u8]) -> TractResult<Arc<Plan>> {
    onnx().model_for_read(&mut Cursor::new(model))?.into_optimized()?.into_runnable()
}

fn run_state(
    state: &mut State,
    inputs: &[TensorIn<'_>],
    rows: std::ops::Range<usize>,
) -> Result<TensorOut> {
    let values: TVec<TValue> = inputs
        .iter()
        .map(|input| {
            // `check_inputs` made every shape non-empty with the batch first and the values whole.
            let row_len: usize = input.shape.iter().skip(1).product();
            let mut shape = input.shape.to_vec();
            if let Some(first) = shape.first_mut() {
                *first = rows.len();
            }
            let data = input.data.get(rows.start * row_len..rows.end * row_len).unwrap_or_default();
            Tensor::from_shape(&shape, data).map(TValue::from)
        })
        .collect::<TractResult<_>>()
        .map_err(engine_error("cannot build the input tensors"))?;
    let outputs = state.run(values).map_err(engine_error("running the model failed"))?;
    let first = outputs.first().ok_or_else(|| Error::Engine {
        engine: "tract",
        message: "the model returned no output; expected the samples as its first output"
            .to_owned(),
    })?;
    let view = first.try_as_plain_ram().map_err(engine_error("cannot read the output"))?;
    let data = view.as_slice::<f32>().map_err(engine_error("the output is not f32"))?.to_vec();
    Ok(TensorOut { data, shape: first.shape().to_vec() })
}

impl Engine for TractEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Tract
    }

    /// A panic inside tract, on any worker, is an error naming the model.
    fn run_tensor(&mut self, inputs: &[TensorIn<'_>]) -> Result<TensorOut> {
        let context = format!("running {}", self.model);
        super::guarded("tract", &context, || self.run_unguarded(inputs))
    }
}

impl TractEngine {
    fn run_unguarded(&mut self, inputs: &[TensorIn<'_>]) -> Result<TensorOut> {
        let batch = super::check_inputs("tract", inputs)?;
        let workers = self.states.len().min(batch / MIN_ROWS_PER_THREAD).max(1);
        if workers == 1 {
            let Some(state) = self.states.first_mut() else {
                return Err(Error::Engine {
                    engine: "tract",
                    message: "the engine has no worker state".to_owned(),
                });
            };
            return run_state(state, inputs, 0..batch);
        }
        let chunk = batch.div_ceil(workers);
        // Rayon's pool is already running: no thread is spawned per call.
        let results: Vec<Result<TensorOut>> = self.states[..workers]
            .par_iter_mut()
            .enumerate()
            .map(|(idx, state)| {
                run_state(state, inputs, idx * chunk..((idx + 1) * chunk).min(batch))
            })
            .collect();
        // The parts stack along the batch; they must agree on the per-sample dimensions.
        let mut out = TensorOut { data: Vec::new(), shape: Vec::new() };
        let mut rows = 0;
        for part in results {
            let part = part?;
            rows += part.shape.first().copied().unwrap_or(0);
            if out.shape.is_empty() {
                out.shape = part.shape.clone();
            } else if out.shape.get(1..) != part.shape.get(1..) {
                return Err(Error::Engine {
                    engine: "tract",
                    message: format!(
                        "the workers' outputs have the shapes {:?} and {:?}; expected one per-sample shape",
                        out.shape, part.shape
                    ),
                });
            }
            out.data.extend(part.data);
        }
        if let Some(first) = out.shape.first_mut() {
            *first = rows;
        }
        Ok(out)
    }
}
