//! tract: one optimised plan per bundle with the batch dimension left symbolic, so the same plan
//! serves batch 1 and batch 256. Each worker keeps its own state of that plan; a large batch is
//! split into one contiguous slice per worker and the slices run concurrently on rayon's pool.

use std::io::Cursor;
use std::sync::Arc;

use rayon::prelude::*;
use tract_onnx::prelude::*;

use super::{Engine, EngineKind, TensorIn};
use crate::bundle::Bundle;
use crate::error::{Error, Result};

type Plan = TypedRunnableModel;
type State = TypedSimpleState;

/// Below this many rows per thread, splitting a batch costs more than it saves.
const MIN_ROWS_PER_THREAD: usize = 32;

pub struct TractEngine {
    states: Vec<State>,
}

/// tract failed while doing `context`.
fn engine_error(context: &'static str) -> impl FnOnce(TractError) -> Error {
    move |source| Error::engine_failed("tract", context, source)
}

impl TractEngine {
    /// Builds the engine for a verified bundle; a model tract cannot read names `model.onnx`.
    pub fn load(bundle: &Bundle, threads: usize) -> Result<TractEngine> {
        let plan = optimised_plan(&bundle.model).map_err(|source| {
            Error::bundle_unreadable(&bundle.model_path(), "tract cannot load the model", source)
        })?;
        Self::from_plan(&plan, threads)
    }

    /// Builds the engine from ONNX bytes that were already verified.
    pub fn from_onnx(model: &[u8], threads: usize) -> Result<TractEngine> {
        let plan = optimised_plan(model).map_err(engine_error("cannot load the model"))?;
        Self::from_plan(&plan, threads)
    }

    fn from_plan(plan: &Arc<Plan>, threads: usize) -> Result<TractEngine> {
        let threads = super::resolve_threads(threads);
        let states = (0..threads)
            .map(|_| State::new(plan))
            .collect::<TractResult<Vec<_>>>()
            .map_err(engine_error("cannot create the workers' states"))?;
        Ok(TractEngine { states })
    }
}

fn optimised_plan(model: &[u8]) -> TractResult<Arc<Plan>> {
    onnx().model_for_read(&mut Cursor::new(model))?.into_optimized()?.into_runnable()
}

fn run_state(
    state: &mut State,
    inputs: &[TensorIn<'_>],
    rows: std::ops::Range<usize>,
) -> Result<Vec<f32>> {
    let values: TVec<TValue> = inputs
        .iter()
        .map(|input| {
            let batch = input.shape[0].max(1);
            let row_len = input.data.len() / batch;
            let mut shape = input.shape.to_vec();
            shape[0] = rows.len();
            Tensor::from_shape(&shape, &input.data[rows.start * row_len..rows.end * row_len])
                .map(TValue::from)
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
    Ok(view.as_slice::<f32>().map_err(engine_error("the output is not f32"))?.to_vec())
}

impl Engine for TractEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Tract
    }

    fn run(&mut self, inputs: &[TensorIn<'_>]) -> Result<Vec<f32>> {
        let batch = inputs.first().map_or(0, |input| input.shape[0]);
        let workers = self.states.len().min(batch / MIN_ROWS_PER_THREAD).max(1);
        if workers == 1 {
            return run_state(&mut self.states[0], inputs, 0..batch);
        }
        let chunk = batch.div_ceil(workers);
        // Rayon's pool is already running: no thread is spawned per call.
        let results: Vec<Result<Vec<f32>>> = self.states[..workers]
            .par_iter_mut()
            .enumerate()
            .map(|(idx, state)| {
                run_state(state, inputs, idx * chunk..((idx + 1) * chunk).min(batch))
            })
            .collect();
        let mut out = Vec::new();
        for part in results {
            out.extend(part?);
        }
        Ok(out)
    }
}
