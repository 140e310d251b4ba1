//! Registry invariants: rules, templates, targets and error codes.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::fs;

use capgate::assets::{embedded_files, Assets};
use capgate::compile::{Compiler, Settings};
use capgate::diag::Code;
use capgate::rules::Target;

fn builtin_targets() -> Vec<Target> {
    let assets = Assets::default();
    assets
        .target_names()
        .unwrap()
        .into_iter()
        .map(|n| Target::load(&assets, &n).unwrap())
        .collect()
}

#[test]
fn builtin_targets_are_the_known_ones() {
    let names: Vec<String> = builtin_targets().into_iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "bwrap",
            "docker",
            "kubernetes",
            "nftables",
            "oci",
            "squid",
            "srt",
            "systemd"
        ]
    );
    // The integration tests that loop over common::TARGETS (explain, injection,
    // robustness, properties) cover every built-in target.
    let covered: BTreeSet<String> = common::TARGETS.iter().map(|t| (*t).to_owned()).collect();
    assert_eq!(covered, names.into_iter().collect());
}

#[test]
fn rule_ids_are_unique_prefixed_and_documented() {
    let mut seen = HashSet::new();
    for t in builtin_targets() {
        for r in &t.rules {
            assert!(seen.insert(r.id.clone()), "duplicate rule id {}", r.id);
            assert!(
                r.id.starts_with(&format!("{}.", t.name)),
                "{} in {}",
                r.id,
                t.name
            );
            assert!(r.doc.len() > 20, "rule {} needs a real doc", r.id);
        }
    }
}

#[test]
fn every_template_file_is_used_and_every_rule_fires_on_some_fixture() {
    let mut used: BTreeSet<String> = BTreeSet::new();
    for t in builtin_targets() {
        for f in &t.files {
            used.insert(format!("templates/{}", f.template));
        }
        for r in &t.rules {
            if let Some(tpl) = &r.template {
                used.insert(format!("templates/{tpl}"));
            }
        }
    }
    let on_disk: BTreeSet<String> = embedded_files()
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.starts_with("templates/"))
        .collect();
    assert_eq!(on_disk, used, "orphan or missing templates");

    let mut manifests: Vec<_> = fs::read_dir(common::root().join("fixtures/manifests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    manifests.sort();
    for t in builtin_targets() {
        let compiler = Compiler::new(&Assets::default(), &t.name).unwrap();
        let mut fired = vec![false; t.rules.len()];
        for m in &manifests {
            let settings = Settings {
                permissive: true,
                set: vec![],
            };
            let bytes = fs::read(m).unwrap();
            let Some(out) =
                common::compile_unless_refused(&compiler, &t.name, "m.json", &bytes, &settings)
            else {
                continue;
            };
            for (f, seen) in fired.iter_mut().zip(&out.trace.lowered.fired) {
                *f |= seen;
            }
        }
        let never: Vec<&str> = t
            .rules
            .iter()
            .zip(&fired)
            .filter(|(_, f)| !**f)
            .map(|(r, _)| r.id.as_str())
            .collect();
        assert!(never.is_empty(), "rules no fixture exercises: {never:?}");
    }
}

#[test]
fn embedded_trees_match_the_files_on_disk() {
    let embedded = embedded_files();
    let mut disk = Vec::new();
    for root in ["rules", "templates"] {
        let mut stack = vec![common::root().join(root)];
        while let Some(dir) = stack.pop() {
            for e in fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    disk.push((common::display(&p), fs::read(&p).unwrap()));
                }
            }
        }
    }
    disk.sort();
    let embedded: Vec<(String, Vec<u8>)> =
        embedded.into_iter().map(|(p, c)| (p, c.to_vec())).collect();
    assert_eq!(
        embedded, disk,
        "rebuild: the embedded rules/templates are stale"
    );
}

/// Every error code is exercised by a snapshot (fixtures/errors, operator
/// errors) or by a named test for the codes that come from the command line.
#[test]
fn every_error_code_is_covered() {
    let mut text = String::new();
    for e in fs::read_dir(common::root().join("tests/snapshots")).unwrap() {
        text.push_str(&fs::read_to_string(e.unwrap().path()).unwrap());
    }
    // Codes raised by the CLI or by size limits, covered by the named tests.
    let elsewhere = [
        (Code::InputUnreadable, "tests/cli.rs: missing file exits 3"),
        (
            Code::OutputUnwritable,
            "tests/cli.rs: unwritable_stdout_is_an_error",
        ),
        (
            Code::ManifestTooLarge,
            "src/manifest.rs and tests/robustness.rs: size limits",
        ),
        (Code::TargetUnknown, "tests/cli.rs: unknown target exits 2"),
        (
            Code::Usage,
            "tests/cli.rs: usage_errors_exit_2_with_nothing_on_stdout",
        ),
        (
            Code::OptionInvalid,
            "tests/cli.rs: unknown --set option exits 2",
        ),
        (
            Code::RunNetwork,
            "tests/run_net.rs: network_is_refused_where_the_run_cannot_provide_it",
        ),
        (
            Code::TemplateUnsafeValue,
            "tests/operator.rs autoescape-off-ignored, src/render.rs",
        ),
    ];
    for code in Code::ALL {
        let covered = text.contains(&format!("capgate: {}:", code.as_str()))
            || elsewhere.iter().any(|(c, _)| c == code);
        assert!(covered, "no snapshot or test shows {}", code.as_str());
    }
}
