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
            let bytes = std::fs::read(&m).unwrap();
            let Some(out) =
                common::compile_unless_refused(&compiler, target, &name, &bytes, &settings)
            else {
                continue;
            };
            let e = explain(&compiler.target, &name, &out.trace, &[]);
            let joined: Vec<&str> = e
                .fragments
                .iter()
                .flat_map(|f| f.output.iter().map(String::as_str))
                .collect();
            assert_eq!(joined, out.artifact.output(), "{target} {name}");
            for f in &e.fragments {
                // Text the entry template writes itself (the oci config's
                // skeleton) is attributed to the template, not to a rule.
                if f.rule == format!("{target}.main-template") {
                    assert!(
                        compiler
                            .target
                            .files
                            .iter()
                            .any(|file| f.rule_source == format!("templates/{}:1", file.template)),
                        "{target} {name}: {}",
                        f.rule_source
                    );
                    continue;
                }
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

/// F21 of the first adversarial review: JSON output carried tool names raw,
/// so a consumer that decodes them (`jq -r`) printed live control and bidi
/// characters, forging e.g. an `exact  fs:read:/x` line. Every JSON string
/// that carries manifest text now holds the same `\u{..}` display form as the
/// text diagnostics: no decoded string has a control, bidi or zero-width
/// character, in compile (--permissive), explain --format json and
/// --error-format json.
#[test]
fn json_output_escapes_control_bidi_and_zero_width_characters_from_manifests() {
    // Spellings: ESC + newline forging a line (the review's), RLO, an
    // isolate, zero-width space, BOM, a C1 control, tab, DEL.
    let names = [
        "a\u{202e}\u{1b}[2J\n  exact  fs:read:/x",
        "b\u{2066}x\u{2069}",
        "c\u{200b}d",
        "\u{feff}e",
        "f\u{85}g",
        "h\ti",
        "j\u{7f}",
    ];
    let tools: Vec<_> = names
        .iter()
        .map(|n| {
            serde_json::json!({"name": n, "capabilities": [
                "exec:spawn:chromium?nestedSandbox=true", "fs:write:/w/**", "fs:read:/w/sub",
                "net:connect:api.example.com:443"
            ]})
        })
        .collect();
    let manifest = serde_json::json!({"name": "m\u{202e}", "version": "1", "tools": tools});
    let file = std::env::temp_dir().join(format!("capgate-f21-{}.json", std::process::id()));
    std::fs::write(&file, manifest.to_string()).unwrap();
    struct Rm(std::path::PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _rm = Rm(file.clone());
    let path = file.to_str().unwrap();
    let bad = |c: char| capgate::diag::is_invisible(c);
    fn strings<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match v {
            serde_json::Value::String(s) => out.push(s),
            serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            // The squid/nftables config is capgate's multi-line text; what
            // it quotes from manifests passed the format's own check.
            serde_json::Value::Object(o) => {
                o.iter().filter(|(k, _)| *k != "config").for_each(|(k, x)| {
                    out.push(k);
                    strings(x, out)
                })
            }
            _ => {}
        }
    }
    let mut tool_fields = 0;
    for target in common::TARGETS {
        for args in [
            vec!["compile", path, "--target", target, "--permissive"],
            vec!["explain", path, "--target", target, "--format", "json"],
            vec![
                "compile",
                path,
                "--target",
                target,
                "--error-format",
                "json",
            ],
        ] {
            let out = Command::new(env!("CARGO_BIN_EXE_capgate"))
                .args(&args)
                .output()
                .unwrap();
            let text = if out.status.success() {
                &out.stdout
            } else {
                &out.stderr
            };
            let text = String::from_utf8(text.clone()).unwrap();
            let json: serde_json::Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"));
            let mut all = Vec::new();
            strings(&json, &mut all);
            for s in &all {
                assert!(!s.chars().any(bad), "{args:?}: decoded string {s:?}");
            }
            // The tool fields hold the display form of the names.
            for name in names {
                let shown = capgate::diag::printable(name);
                if all.iter().any(|s| *s == shown) {
                    tool_fields += 1;
                }
            }
            // The raw text never appears, even JSON-escaped.
            assert!(
                !text.contains("\\u001b") && !text.contains('\u{202e}'),
                "{args:?}"
            );
        }
    }
    assert!(
        tool_fields > 0,
        "no tool field found: the test checks nothing"
    );
}
