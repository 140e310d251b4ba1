//! Manifest → every target, strict and permissive: no panic; a failure is a
//! coded, located diagnostic; a success keeps its output format's structure
//! and grants nothing undeclared (the checks of tests/hostile).
#![no_main]

#[path = "../../tests/hostile/mod.rs"]
mod hostile;

use std::sync::OnceLock;

use capgate::assets::Assets;
use capgate::compile::{Compiler, Settings};
use capgate::diag::Code;
use libfuzzer_sys::fuzz_target;

/// Every built-in target.
fn compilers() -> &'static [(String, Compiler)] {
    static C: OnceLock<Vec<(String, Compiler)>> = OnceLock::new();
    C.get_or_init(|| {
        Assets::default()
            .target_names()
            .expect("built-in targets")
            .into_iter()
            .map(|t| {
                let compiler = Compiler::new(&Assets::default(), &t).expect("built-in target");
                (t, compiler)
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let declared = hostile::Declared::from_manifest(data);
    for (target, c) in compilers() {
        for permissive in [false, true] {
            let settings = Settings {
                permissive,
                set: vec![],
            };
            let checked = match c.compile("fuzz.json", data, &settings) {
                Err(diags) => {
                    let located = diags
                        .first()
                        .is_some_and(|d| d.code != Code::ManifestTooLarge);
                    hostile::check_diagnostics(&diags, "fuzz.json", located)
                }
                Ok(out) => hostile::check_artifact(target, &out.artifact, &declared),
            };
            if let Err(e) = checked {
                panic!("{target} (permissive: {permissive}): {e}");
            }
        }
    }
});
