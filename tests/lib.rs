//! Workspace-level end-to-end tests live in `pipeline.rs`; this crate has no code of its own.
//! Test support shared by every crate's tests (the reference Python) is in `support/`.
