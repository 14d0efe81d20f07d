//! Inference engines behind one interface: tract (pure Rust, the default) and ONNX Runtime
//! through the `ort` crate (feature `ort`, library loaded at run time from `ORT_DYLIB_PATH`).
//!
//! An engine is built once per bundle and then run on batches of any size: inputs are given in
//! the graph's input order as row-major `f32` with the batch first; the first output comes back
//! the same way, with the shape the engine actually produced ([`TensorOut`]), so the caller can
//! check it against the manifest rather than trust the graph.

use std::fmt;

use crate::bundle::{Bundle, BundleGraph};
use crate::error::{Error, Result};

#[cfg(feature = "ort")]
pub mod ort;
pub mod tract;

/// One input tensor: row-major values and the full shape (batch first).
#[derive(Debug, Clone, Copy)]
pub struct TensorIn<'a> {
    pub data: &'a [f32],
    pub shape: &'a [usize],
}

/// The batch size of `inputs`, once each is checked to have a batch dimension, the same batch
/// as the others and as many values as its shape says.
pub fn check_inputs(engine: &'static str, inputs: &[TensorIn<'_>]) -> Result<usize> {
    let batch = inputs.first().and_then(|input| input.shape.first()).copied().unwrap_or(0);
    for (idx, input) in inputs.iter().enumerate() {
        let values = input.shape.iter().try_fold(1_usize, |acc, &dim| acc.checked_mul(dim));
        if input.shape.first() != Some(&batch) || values != Some(input.data.len()) {
            return Err(Error::Engine {
                engine,
                message: format!(
                    "input {idx} has shape {:?} and {} values; expected batch {batch} and one value per element",
                    input.shape,
                    input.data.len()
                ),
            });
        }
    }
    Ok(batch)
}

/// The first output of a run: row-major values and the shape the engine produced.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorOut {
    pub data: Vec<f32>,
    pub shape: Vec<usize>,
}

pub trait Engine: Send {
    fn kind(&self) -> EngineKind;
    /// Runs the graph; returns the first output and its actual shape.
    fn run_tensor(&mut self, inputs: &[TensorIn<'_>]) -> Result<TensorOut>;

    /// Runs the graph; returns the first output's values, row-major.
    fn run(&mut self, inputs: &[TensorIn<'_>]) -> Result<Vec<f32>> {
        Ok(self.run_tensor(inputs)?.data)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineKind {
    #[default]
    Tract,
    /// ONNX Runtime with one of its execution providers.
    Ort(OrtProvider),
}

/// Where ONNX Runtime runs the graph. CUDA and TensorRT need an ONNX Runtime library built with
/// them (e.g. NVIDIA's `onnxruntime-gpu` for a Jetson); asking for one that the library lacks is
/// an error, never a silent fall-back to the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrtProvider {
    #[default]
    Cpu,
    Cuda,
    /// TensorRT, with CUDA for the nodes TensorRT does not take.
    TensorRt,
}

impl EngineKind {
    /// ONNX Runtime on the CPU.
    pub const ORT: EngineKind = EngineKind::Ort(OrtProvider::Cpu);

    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Tract => "tract",
            EngineKind::Ort(OrtProvider::Cpu) => "ort",
            EngineKind::Ort(OrtProvider::Cuda) => "ort-cuda",
            EngineKind::Ort(OrtProvider::TensorRt) => "ort-tensorrt",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EngineKind {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "tract" => Ok(EngineKind::Tract),
            "ort" => Ok(EngineKind::ORT),
            "ort-cuda" => Ok(EngineKind::Ort(OrtProvider::Cuda)),
            "ort-tensorrt" => Ok(EngineKind::Ort(OrtProvider::TensorRt)),
            other => Err(Error::Invalid(format!(
                "invalid engine `{other}`: expected tract, ort, ort-cuda or ort-tensorrt"
            ))),
        }
    }
}

/// Builds the engine for a verified bundle, with `threads` worker threads (0: all cores).
pub fn load(bundle: &Bundle, kind: EngineKind, threads: usize) -> Result<Box<dyn Engine>> {
    load_graph(&bundle.model_graph(), kind, threads)
}

/// Builds the engine for one verified graph of a bundle (the model, or latent diffusion's
/// decoder).
pub fn load_graph(
    graph: &BundleGraph<'_>,
    kind: EngineKind,
    threads: usize,
) -> Result<Box<dyn Engine>> {
    match kind {
        EngineKind::Tract => Ok(Box::new(tract::TractEngine::load(graph, threads)?)),
        EngineKind::Ort(provider) => load_ort(graph, threads, provider),
    }
}

#[cfg(feature = "ort")]
fn load_ort(
    graph: &BundleGraph<'_>,
    threads: usize,
    provider: OrtProvider,
) -> Result<Box<dyn Engine>> {
    Ok(Box::new(ort::OrtEngine::load(graph, threads, provider)?))
}

#[cfg(not(feature = "ort"))]
fn load_ort(
    _graph: &BundleGraph<'_>,
    _threads: usize,
    _provider: OrtProvider,
) -> Result<Box<dyn Engine>> {
    Err(Error::Engine {
        engine: "ort",
        message: "this synth-edge was built without ONNX Runtime support; rebuild with `--features ort` and set ORT_DYLIB_PATH".to_owned(),
    })
}

/// Runs `call` into an engine library, turning a panic inside it into
/// [`Error::EngineFailed`] naming the engine, what it was doing and the panic's message: a
/// hostile or unforeseen graph must end in an error (the run marked failed, temporary files
/// removed), never in exit 101. The workspace builds with `panic = "unwind"` for this.
pub fn guarded<T>(
    engine: &'static str,
    context: &str,
    call: impl FnOnce() -> Result<T>,
) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|text| (*text).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        Err(Error::engine_failed(
            engine,
            format!("{context}: the engine panicked; refusing the model"),
            EnginePanic(message),
        ))
    })
}

/// The message of a panic inside an engine library.
#[derive(Debug)]
struct EnginePanic(String);

impl fmt::Display for EnginePanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "panic: {}", self.0)
    }
}

impl std::error::Error for EnginePanic {}

/// The number of worker threads to use: `requested`, or all available cores for 0.
pub fn resolve_threads(requested: usize) -> usize {
    if requested > 0 {
        requested
    } else {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_an_engine_call_is_an_error_naming_engine_context_and_message() {
        let err =
            guarded::<()>("tract", "loading /b/model.onnx", || panic!("attempt to divide by zero"))
                .unwrap_err();
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert_eq!(
            chain,
            "tract: loading /b/model.onnx: the engine panicked; refusing the model: panic: \
             attempt to divide by zero"
        );
        assert!(matches!(err, Error::EngineFailed { engine: "tract", .. }));
        let size = 687_194_767_360_usize;
        let err =
            guarded::<()>("ort", "running", || panic!("failed to allocate {size}")).unwrap_err();
        assert!(
            std::error::Error::source(&err).unwrap().to_string().contains("687194767360"),
            "{err}"
        );
        assert_eq!(guarded("tract", "running", || Ok(7)).unwrap(), 7);
        let err = guarded::<()>("tract", "running", || {
            Err(Error::Invalid("an ordinary error".to_owned()))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "an ordinary error", "errors pass through unchanged");
    }
}
