//! ONNX Runtime through the `ort` crate, loaded at run time (`load-dynamic`) from the library
//! that `ORT_DYLIB_PATH` names, e.g. `.../site-packages/onnxruntime/capi/libonnxruntime.so.1.*`
//! from the PyPI wheel. Nothing is downloaded at build time. One session per bundle, reused.
//!
//! The CUDA and TensorRT execution providers are registered with `error_on_failure`: a library
//! without them (the CPU wheel) or a machine without a usable GPU is an error naming the
//! provider, so a run never reports CPU speed under a GPU label.

use std::borrow::Cow;
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::ep::{self, ExecutionProviderDispatch};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::TensorRef;

use super::{Engine, EngineKind, OrtProvider, TensorIn};
use crate::bundle::Bundle;
use crate::error::{Error, Result};

pub struct OrtEngine {
    session: Session,
    input_names: Vec<String>,
    provider: OrtProvider,
}

/// ONNX Runtime allows one environment per process: it is created on first use and shared.
static ENVIRONMENT: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();

fn environment() -> Result<&'static Environment> {
    ENVIRONMENT
        .get_or_init(|| {
            let library = std::env::var_os("ORT_DYLIB_PATH").filter(|path| !path.is_empty()).ok_or_else(|| {
                "ORT_DYLIB_PATH is not set; point it at libonnxruntime.so.1.* (the PyPI onnxruntime wheel has one in onnxruntime/capi/)"
                    .to_owned()
            })?;
            ort::init_from(&library)
                .map_err(|err| format!("cannot load ONNX Runtime from {}: {err}", library.to_string_lossy()))?
                .build()
                .map_err(|err| err.to_string())
        })
        .as_ref()
        .map_err(engine_error)
}

fn engine_error(err: impl std::fmt::Display) -> Error {
    Error::Engine { engine: "ort", message: err.to_string() }
}

impl OrtEngine {
    pub fn load(bundle: &Bundle, threads: usize, provider: OrtProvider) -> Result<OrtEngine> {
        let environment = environment()?;
        let threads = super::resolve_threads(threads);
        let mut builder = Session::builder(environment)
            .map_err(engine_error)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(engine_error)?
            .with_intra_threads(threads)
            .map_err(engine_error)?;
        let providers = execution_providers(provider);
        if !providers.is_empty() {
            builder = builder.with_execution_providers(providers).map_err(|err| {
                engine_error(format!("cannot use ONNX Runtime's {} execution provider (does the library at ORT_DYLIB_PATH include it, and is the GPU visible?): {err}", provider_name(provider)))
            })?;
        }
        let session = builder.commit_from_memory(&bundle.model).map_err(|err| {
            Error::bundle(
                &bundle.model_path(),
                format!("ONNX Runtime cannot load the model: {err}"),
            )
        })?;
        let input_names =
            bundle.manifest.graph.inputs.iter().map(|input| input.name.clone()).collect();
        Ok(OrtEngine { session, input_names, provider })
    }
}

fn execution_providers(provider: OrtProvider) -> Vec<ExecutionProviderDispatch> {
    match provider {
        OrtProvider::Cpu => Vec::new(),
        OrtProvider::Cuda => vec![ep::CUDA::default().build().error_on_failure()],
        OrtProvider::TensorRt => vec![
            ep::TensorRT::default().build().error_on_failure(),
            ep::CUDA::default().build().error_on_failure(),
        ],
    }
}

fn provider_name(provider: OrtProvider) -> &'static str {
    match provider {
        OrtProvider::Cpu => "CPU",
        OrtProvider::Cuda => "CUDA",
        OrtProvider::TensorRt => "TensorRT",
    }
}

impl Engine for OrtEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Ort(self.provider)
    }

    fn run(&mut self, inputs: &[TensorIn<'_>]) -> Result<Vec<f32>> {
        let mut values: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            Vec::with_capacity(inputs.len());
        for (name, input) in self.input_names.iter().zip(inputs) {
            let tensor = TensorRef::from_array_view((input.shape.to_vec(), input.data))
                .map_err(engine_error)?;
            values.push((Cow::Borrowed(name.as_str()), tensor.into()));
        }
        let outputs = self.session.run(values).map_err(engine_error)?;
        let (_, data) = outputs[0].try_extract_tensor::<f32>().map_err(engine_error)?;
        Ok(data.to_vec())
    }
}
