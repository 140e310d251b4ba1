//! capgate: compile MCP server capability manifests into sandbox policies.
//!
//! The pipeline runs one way, one module per stage:
//! [`manifest`] (JSON shape) → [`syntax`] (grammar → typed [`capability`] values)
//! → [`ir`] (normalised facts) → [`lower`] (facts × [`rules`] → fragments)
//! → [`render`] (templates, escaped per output format by [`escape`])
//! → [`artifact`]. [`compile`] runs the stages on one thread (real manifests
//! have 1–100 capabilities; [`batch`] spreads many manifests over every
//! core); [`assets`] holds the built-in rules and templates and overlays the
//! operator's.

// Diagnostics are returned by value on the cold path; boxing them everywhere
// would only add noise.
#![allow(clippy::result_large_err)]

pub mod artifact;
pub mod assets;
pub mod batch;
pub mod capability;
pub mod cli;
pub mod compile;
pub mod diag;
pub mod diff;
pub mod escape;
pub mod explain;
pub mod facts;
/// Synthetic manifests for benchmarks and tests (feature `testing`), not part
/// of the shipped library.
#[cfg(any(test, feature = "testing"))]
pub mod generate;
pub mod import;
pub mod ir;
pub mod json;
pub mod lint;
pub mod lower;
pub mod manifest;
pub mod provenance;
pub mod render;
pub mod rules;
pub mod run;
pub mod samples;
pub mod schema;
pub mod source;
pub mod syntax;
