//! ONNX Runtime through the `ort` crate, loaded at run time (`load-dynamic`) from the library
//! that `ORT_DYLIB_PATH` names, e.g. `.../site-packages/onnxruntime/capi/libonnxruntime.so.1.*`
//! from the PyPI wheel. Nothing is downloaded at build time. One session per bundle, reused.
//!
//! The CUDA and TensorRT execution providers are registered with `error_on_failure`: a library
//! without them (the CPU wheel) or a machine without a usable GPU is an error naming the
//! provider, so a run never reports CPU speed under a GPU label.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use ort::environment::Environment;
use ort::ep::{self, ExecutionProviderDispatch};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::TensorRef;

use super::{Engine, EngineKind, OrtProvider, TensorIn, TensorOut};
use crate::bundle::BundleGraph;
use crate::error::{Error, Result};

pub struct OrtEngine {
    session: Session,
    input_names: Vec<String>,
    provider: OrtProvider,
    /// The model, as a panic inside ONNX Runtime's bindings names it.
    model: String,
}

/// ONNX Runtime allows one environment per process: it is created on first use and shared, and
/// so is the reason it could not be created.
static ENVIRONMENT: OnceLock<std::result::Result<Environment, Unavailable>> = OnceLock::new();

/// Why ONNX Runtime could not start, kept so that every later load reports the same.
#[derive(Debug)]
enum Unavailable {
    NoLibrary,
    Failed { context: &'static str, source: Arc<dyn std::error::Error + Send + Sync> },
}

fn environment() -> Result<&'static Environment> {
    let environment = ENVIRONMENT.get_or_init(|| {
        let library = std::env::var_os("ORT_DYLIB_PATH")
            .filter(|path| !path.is_empty())
            .ok_or(Unavailable::NoLibrary)?;
        ort::init_from(&library)
            .map_err(|err| Unavailable::Failed {
                context: "cannot load ONNX Runtime (ORT_DYLIB_PATH)",
                source: Arc::new(err),
            })?
            .build()
            .map_err(|err| Unavailable::Failed {
                context: "cannot create the ONNX Runtime environment",
                source: Arc::new(err),
            })
    });
    match environment {
        Ok(environment) => Ok(environment),
        Err(Unavailable::NoLibrary) => Err(Error::Engine {
            engine: "ort",
            message: "ORT_DYLIB_PATH is not set; point it at libonnxruntime.so.1.* (the PyPI onnxruntime wheel has one in onnxruntime/capi/)".to_owned(),
        }),
        Err(Unavailable::Failed { context, source }) => {
            Err(Error::engine_failed("ort", *context, Arc::clone(source)))
        }
    }
}

/// ONNX Runtime failed while doing `context`.
fn engine_error<E: Into<ort::Error>>(context: &'static str) -> impl FnOnce(E) -> Error {
    move |err| Error::engine_failed("ort", context, err.into())
}

impl OrtEngine {
    /// A panic inside the `ort` bindings is an error naming the model.
    pub fn load(
        graph: &BundleGraph<'_>,
        threads: usize,
        provider: OrtProvider,
    ) -> Result<OrtEngine> {
        let model = graph.path.display().to_string();
        super::guarded("ort", &format!("loading {model}"), || {
            Self::load_unguarded(graph, threads, provider, model.clone())
        })
    }

    fn load_unguarded(
        graph: &BundleGraph<'_>,
        threads: usize,
        provider: OrtProvider,
        model: String,
    ) -> Result<OrtEngine> {
        let environment = environment()?;
        let threads = super::resolve_threads(threads);
        let mut builder = Session::builder(environment)
            .map_err(engine_error("cannot create a session"))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(engine_error("cannot set the optimisation level"))?
            .with_intra_threads(threads)
            .map_err(engine_error("cannot set the number of threads"))?;
        let providers = execution_providers(provider);
        if !providers.is_empty() {
            builder = builder.with_execution_providers(providers).map_err(|err| {
                Error::engine_failed(
                    "ort",
                    format!("cannot use ONNX Runtime's {} execution provider (does the library at ORT_DYLIB_PATH include it, and is the GPU visible?)", provider_name(provider)),
                    ort::Error::<()>::from(err),
                )
            })?;
        }
        let session = builder.commit_from_memory(graph.bytes).map_err(|err| {
            Error::bundle_unreadable(&graph.path, "ONNX Runtime cannot load the model", err)
        })?;
        let input_names = graph.spec.inputs.iter().map(|input| input.name.clone()).collect();
        Ok(OrtEngine { session, input_names, provider, model })
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

    /// A panic inside the `ort` bindings is an error naming the model.
    fn run_tensor(&mut self, inputs: &[TensorIn<'_>]) -> Result<TensorOut> {
        let context = format!("running {}", self.model);
        super::guarded("ort", &context, || self.run_unguarded(inputs))
    }
}

impl OrtEngine {
    fn run_unguarded(&mut self, inputs: &[TensorIn<'_>]) -> Result<TensorOut> {
        super::check_inputs("ort", inputs)?;
        if inputs.len() != self.input_names.len() {
            return Err(Error::Engine {
                engine: "ort",
                message: format!(
                    "{} inputs given; the graph takes {}",
                    inputs.len(),
                    self.input_names.len()
                ),
            });
        }
        let mut values: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            Vec::with_capacity(inputs.len());
        for (name, input) in self.input_names.iter().zip(inputs) {
            let tensor = TensorRef::from_array_view((input.shape.to_vec(), input.data))
                .map_err(engine_error("cannot build the input tensors"))?;
            values.push((Cow::Borrowed(name.as_str()), tensor.into()));
        }
        let outputs = self.session.run(values).map_err(engine_error("running the model failed"))?;
        let first = outputs.values().next().ok_or_else(|| Error::Engine {
            engine: "ort",
            message: "the model returned no output; expected the samples as its first output"
                .to_owned(),
        })?;
        let (shape, data) =
            first.try_extract_tensor::<f32>().map_err(engine_error("the output is not f32"))?;
        let shape = shape
            .iter()
            .map(|&dim| usize::try_from(dim))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| Error::Engine {
                engine: "ort",
                message: format!("the output has the shape {shape}, with a negative dimension"),
            })?;
        Ok(TensorOut { data: data.to_vec(), shape })
    }
}
