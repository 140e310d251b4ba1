//! capgate: compile MCP server capability manifests into sandbox policies.
//!
//! The pipeline runs one way, one module per stage:
//! [`manifest`] (JSON shape) → [`syntax`] (grammar → typed [`capability`] values)
//! → [`ir`] (normalised facts) → [`rules`] (facts → fragments)
//! → [`render`] (templates, escaped per output format) → [`artifact`].

pub mod capability;
pub mod diag;
pub mod ir;
pub mod json;
pub mod manifest;
pub mod provenance;
pub mod syntax;
