//! `capgate explain`: every output element is attributed, and the JSON form
//! reassembles exactly the compiled output.

mod common;

use std::process::Command;

use capgate::assets::Assets;
use capgate::compile::{Compiler, Settings};
use capgate::explain::explain;

fn manifests() -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(common::root().join("fixtures/manifests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn fragments_reassemble_the_output_and_every_capability_has_a_verdict() {
    for target in common::TARGETS {
        let compiler = Compiler::new(&Assets::default(), target).unwrap();
        for m in manifests() {
            let name = common::display(&m);
            let settings = Settings {
                permissive: true,
                set: vec![],
            };
            let out = compiler
                .compile(&name, &std::fs::read(&m).unwrap(), &settings)
                .unwrap();
            let e = explain(&compiler.target, &name, &out.trace, &[]);
            let joined: Vec<&str> = e
                .fragments
                .iter()
                .flat_map(|f| f.output.iter().map(String::as_str))
                .collect();
            assert_eq!(joined, out.artifact.output(), "{target} {name}");
            for f in &e.fragments {
                assert!(
                    compiler.target.rule(&f.rule).is_some(),
                    "{target} {name}: unknown rule {}",
                    f.rule
                );
                assert!(
                    f.rule_source.starts_with(&format!("rules/{target}.toml:")),
                    "{}",
                    f.rule_source
                );
            }
            assert_eq!(e.capabilities.len(), out.trace.policy.caps.len());
            for c in &e.capabilities {
                assert!(
                    ["exact", "superset", "host-enforced", "unenforceable"].contains(&c.verdict)
                );
                assert!(
                    c.location.starts_with(&format!("{name}:")),
                    "{}",
                    c.location
                );
            }
        }
    }
}

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_capgate"))
        .current_dir(common::root())
        .args(args)
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap())
}

#[test]
fn explain_text_and_json() {
    for (manifest, target) in [
        ("github", "squid"),
        ("github", "bwrap"),
        ("puppeteer", "bwrap"),
        ("database", "nftables"),
        ("nested-writes", "docker"),
    ] {
        let path = format!("fixtures/manifests/{manifest}.json");
        let (code, text) = run(&["explain", &path, "--target", target]);
        assert_eq!(code, Some(0));
        insta::assert_snapshot!(format!("text-{manifest}-{target}"), text);
        let (code, json) = run(&["explain", &path, "--target", target, "--format", "json"]);
        assert_eq!(code, Some(0));
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        insta::assert_json_snapshot!(format!("json-{manifest}-{target}"), value);
    }
}

#[test]
fn explain_rule_prints_its_doc_and_source() {
    let (code, text) = run(&["explain", "--rule", "squid.deny-special"]);
    assert_eq!(code, Some(0));
    assert!(
        text.starts_with("squid.deny-special  (target squid, rules/squid.toml:"),
        "{text}"
    );
    assert!(text.contains("DNS rebinding"), "{text}");
    let (code, _) = run(&["explain", "--rule", "no.such.rule"]);
    assert_eq!(code, Some(2));
}
