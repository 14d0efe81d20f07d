//! The workstation half of fieldsynth: trains class-conditional VAE, GAN and DDPM models with
//! candle on tabular and image data, exports each as an ONNX bundle the edge runtime loads, runs
//! the study grid over families, datasets, scarcity fractions and seeds, and writes the study's
//! report.
//!
//! Flow: [`fit::prepare`] (split, fit the transform, encode) → [`train::train`] (candle) →
//! [`onnx::export`] (the same [`graph::Graph`] the candle model was built from) →
//! [`bundle::Staging::commit`] (atomic bundle folder). A study logs each cell ([`cell`]) to its
//! logbook; [`report::write_report`] turns that logbook into report.html and report.md.

pub mod augment;
pub mod blocks;
pub mod bundle;
pub mod cell;
pub mod channel;
pub mod cli;
pub mod commands;
pub mod conv;
pub mod device;
pub mod error;
pub mod exec;
pub mod fit;
pub mod graph;
pub mod nets;
pub mod onnx;
pub mod params;
pub mod report;
pub mod study;
pub mod train;

pub use error::{Error, Result};
