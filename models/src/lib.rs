//! The contract that the trainer and the edge runtime share.
//!
//! Everything that must agree byte for byte on both sides of a bundle lives here: how a CSV or an
//! image folder is parsed into a [`Dataset`], how a dataset is split into train, hold-out and a
//! scarce train subset ([`split`]), how rows are encoded into model features and decoded back
//! ([`transform`]), the noise schedules of diffusion ([`schedule`]), the seeded random streams
//! ([`rng`]) and the bundle manifest ([`manifest`]).
//!
//! This crate does no I/O beyond parsing the bytes it is handed: reading files is the callers'
//! business, so the same parsing serves a workstation, a Jetson and a test.

pub mod dataset;
pub mod error;
pub mod image;
pub mod manifest;
pub mod rng;
pub mod schedule;
pub mod split;
pub mod table;
pub mod transform;

pub use dataset::Dataset;
pub use error::{Error, Result};
pub use image::{ImageFile, ImageSet, ImageShape};
pub use manifest::{Family, Manifest, Modality};
pub use split::{Partition, SplitSpec};
pub use table::{Column, ColumnData, ColumnKind, MissingPolicy, Table, TableOptions};
pub use transform::Encoder;
