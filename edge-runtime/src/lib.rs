//! The field runtime of fieldsynth: load an ONNX bundle, generate samples, assess them against
//! the site's own data on six axes, log results to SQLite, and sync them to a hub.
//!
//! This crate never links the training stack (candle): it is what goes to a Jetson or an ARM
//! board. The trainer uses it as a library so a study measures exactly what the field does.

pub mod assess;
pub mod bundle;
pub mod cli;
pub mod commands;
pub mod data;
pub mod engine;
pub mod error;
pub mod gate;
pub mod keys;
pub mod logbook;
pub mod memory;
pub mod metrics;
pub mod output;
pub mod sampler;
pub mod sync;

pub use error::{Error, Result};
