//! Shared helpers for integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use capgate::assets::Assets;
use capgate::compile::{Compiler, Output, Settings};
use capgate::diag::Diagnostic;

pub const TARGETS: [&str; 4] = ["bwrap", "docker", "squid", "nftables"];

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The path as shown in diagnostics and snapshots: relative to the repository.
pub fn display(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

pub fn compile(path: &Path, target: &str, permissive: bool) -> Result<Output, Vec<Diagnostic>> {
    let compiler = Compiler::new(&Assets::default(), target).expect("built-in target loads");
    let bytes = std::fs::read(path).unwrap();
    compiler.compile(
        &display(path),
        &bytes,
        &Settings {
            permissive,
            set: vec![],
        },
    )
}

pub fn render_errors(diags: &[Diagnostic]) -> String {
    diags.iter().map(Diagnostic::render).collect()
}

/// What a snapshot shows for one manifest and target: the strict result, and
/// when strict compilation fails with ADAPTER_UNSUPPORTED, the permissive one too.
pub fn outcome(path: &Path, target: &str) -> String {
    match compile(path, target, false) {
        Ok(out) => out.artifact.to_json(true),
        Err(diags) => {
            let mut s = format!("strict: error\n{}", render_errors(&diags));
            if diags[0].code == capgate::diag::Code::AdapterUnsupported {
                let out = compile(path, target, true).expect("permissive compiles");
                s.push_str("\n--permissive:\n");
                s.push_str(&out.artifact.to_json(true));
            }
            s
        }
    }
}
