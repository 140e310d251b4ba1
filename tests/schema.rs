//! `capgate schema`: the JSON Schema is a valid 2020-12 schema, every fixture
//! that compiles validates, every error fixture fails validation unless its
//! error is one the schema documents it cannot express
//! (`capgate::schema::LOOSER`, docs/schema.md), and no capability capgate
//! accepts is refused by the schema (the schema is only ever looser).
//! Checked with the `jsonschema` crate, an independent validator.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::prelude::*;
use serde_json::{json, Value};

use capgate::assets::Assets;
use capgate::compile::{Compiler, Settings};

fn schema_from_binary() -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_capgate"))
        .arg("schema")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty());
    assert!(out.stdout.is_ascii(), "the schema is printed as ASCII");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn validator() -> &'static jsonschema::Validator {
    static V: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        jsonschema::validator_for(&capgate::schema::schema()).expect("the schema compiles")
    })
}

fn fixtures() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "json") {
                out.push(p);
            }
        }
    }
    let mut v = Vec::new();
    walk(&common::root().join("fixtures"), &mut v);
    v.sort();
    v
}

#[test]
fn schema_is_a_valid_2020_12_schema_and_the_command_prints_it() {
    let s = schema_from_binary();
    assert_eq!(s, capgate::schema::schema());
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    jsonschema::meta::validate(&s).expect("valid against the 2020-12 meta-schema");
    insta::assert_snapshot!("schema", capgate::schema::to_string());
}

#[test]
fn every_fixture_that_compiles_validates_and_every_error_fixture_fails_or_is_documented() {
    let v = validator();
    let compiler = Compiler::new(&Assets::default(), "bwrap").unwrap();
    let settings = Settings {
        permissive: true,
        set: vec![],
    };
    let looser: Vec<&str> = capgate::schema::LOOSER.iter().map(|(c, _)| *c).collect();
    let (mut valid, mut refused, mut documented) = (0, 0, Vec::new());
    for path in fixtures() {
        let name = common::display(&path);
        let bytes = std::fs::read(&path).unwrap();
        let compiled = compiler.compile(&name, &bytes, &settings);
        let Ok(instance) = serde_json::from_slice::<Value>(&bytes) else {
            // Not JSON at all: compile refuses it with INPUT_JSON, a schema never sees it.
            let code = compiled.err().expect("not JSON, not compiled")[0].code;
            assert_eq!(code.as_str(), "INPUT_JSON", "{name}");
            continue;
        };
        let errors: Vec<String> = v.iter_errors(&instance).map(|e| e.to_string()).collect();
        match compiled {
            Ok(_) => {
                assert!(
                    errors.is_empty(),
                    "{name} compiles but the schema refuses it: {errors:?}"
                );
                valid += 1;
            }
            Err(diags) if errors.is_empty() => {
                // Accepted by the schema, refused by capgate: only for documented reasons.
                let code = diags[0].code.as_str();
                assert!(
                    looser.contains(&code),
                    "{name}: capgate refuses it ({code}) but the schema accepts it; \
                     tighten the pattern or document the gap in schema::LOOSER and docs/schema.md"
                );
                documented.push(format!("{name} {code}"));
            }
            Err(_) => refused += 1,
        }
    }
    // The corpus is what it is: these counts only guard against an empty walk.
    assert!(valid >= 20, "{valid} valid fixtures");
    assert!(refused >= 100, "{refused} refused fixtures");
    // The path checks after host aliases and engine locations (F5/F6) added
    // the CAP_FS_RESERVED and CAP_IPC_SOCKET gaps; the bound keeps new ones visible.
    assert!(documented.len() <= 16, "{documented:#?}");
}

#[test]
fn shape_errors_fail_validation() {
    let v = validator();
    let base = json!({"name": "s", "version": "1", "tools": []});
    assert!(v.is_valid(&base));
    let mut cases = Vec::new();
    for (key, value) in [
        ("name", json!("")),
        ("name", json!(1)),
        ("version", json!(null)),
        ("tools", json!({})),
        ("tools", json!([{"name": "t"}])),
        ("tools", json!([{"name": "", "capabilities": []}])),
        ("tools", json!([{"name": "t", "capabilities": [1]}])),
        ("serverCapabilities", json!(0)),
        ("serverCapabilities", json!("fs:read:/a")),
        ("grammar", json!("1.0")),
    ] {
        let mut m = base.clone();
        m[key] = value;
        cases.push(m);
    }
    for m in cases {
        assert!(!v.is_valid(&m), "{m}");
        // capgate refuses the same manifests.
        let compiler = Compiler::new(&Assets::default(), "bwrap").unwrap();
        assert!(compiler
            .compile("m.json", m.to_string().as_bytes(), &Settings::default())
            .is_err());
    }
    let mut m = base.clone();
    m["serverCapabilities"] = json!(null);
    m["description"] = json!("other keys are ignored");
    assert!(v.is_valid(&m));
}

fn cap_valid(v: &jsonschema::Validator, cap: &str) -> bool {
    v.is_valid(
        &json!({"name": "s", "version": "1", "tools": [{"name": "t", "capabilities": [cap]}]}),
    )
}

#[test]
fn patterns_follow_the_grammar_on_examples() {
    let v = validator();
    for ok in [
        "fs:read:/workspace/**",
        "fs: read , write :/a",
        "fs:read:\"/a/b\"",
        "fs:delete:/a/b.c/*",
        "net:connect:api.github.com:443",
        "net:connect:*.githubusercontent.com:443",
        "net:connect:*",
        "net:connect:10.0.0.5:5432",
        "net:connect:\"2606:4700:4700::1111\":853",
        "net:connect:a--b.example",
        "exec:spawn:git",
        "exec:spawn:chromium?nestedSandbox=true",
        "env:inject:GITHUB_TOKEN",
        "env:read:PATHS",
        "ipc:connect:x11",
        "ipc:connect:dbus:system",
        "ipc:connect:\"unix:/run/app/app.sock\"",
        "clock:tzdata",
        "assert:db.readonly:\"read-only: enforced\"",
        "assert:why:\"why? because\"",
        "assert:x",
    ] {
        assert!(cap_valid(v, ok), "{ok} should validate");
        capgate::syntax::parse_capability(ok).unwrap_or_else(|e| panic!("{ok}: {e:?}"));
    }
    for bad in [
        "fs:read:/",
        "fs:read:/dev/sda",
        "fs:read:/a/../b",
        "fs:read:/a/*/b",
        "net:connect:0.0.0.0:80",
        "net:connect:224.0.0.1:80",
        "net:connect:255.255.255.255:80",
        "net:connect:10.1:80",
        "net:connect:a.b.123",
        "net:connect:256.1.1.1",
        "net:connect:-a.example",
        "net:connect:*.*.example",
        "exec:spawn:git?nestedSandbox",
        "env:read:LD_PRELOAD",
        "env:read:PATH",
        "env:read:\"PATH\"",
        "ipc:connect:\"unix:/run\"",
        "ipc:connect:\"unix:/run/containerd/containerd.sock\"",
        "clock:utc",
        "assert:a:why? because",
        "assert:a:line\u{2028}break",
        "assert:\"a?\":d",
    ] {
        assert!(!cap_valid(v, bad), "{bad} should fail validation");
        assert!(capgate::syntax::parse_capability(bad).is_err(), "{bad}");
    }
}

/// Capability-like strings from the grammar's vocabulary.
fn capability_like() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "fs",
        "net",
        "exec",
        "env",
        "ipc",
        "clock",
        "assert",
        ":",
        ":",
        ":",
        "read",
        "write",
        "create",
        "delete",
        "connect",
        "spawn",
        "inject",
        ",",
        " ",
        "/",
        "/",
        "a",
        "b.c",
        "..",
        "*",
        "**",
        "proc",
        "-",
        "\"",
        "?",
        "nestedSandbox=true",
        "x11",
        "dbus:system",
        "unix:",
        "443",
        "0",
        "10.0.0.1",
        "255",
        "*.",
        "example.com",
        "HOME",
        "LD_X",
        "PATH",
        "tzdata",
        "system",
        "2606::1",
        "docker.sock",
        "\u{2028}",
        "=",
        "&",
    ]);
    prop::collection::vec(atoms, 1..10).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn the_schema_never_refuses_what_capgate_accepts(raw in capability_like()) {
        let v = validator();
        if capgate::syntax::parse_capability(&raw).is_ok() {
            prop_assert!(cap_valid(v, &raw), "capgate accepts {:?}, the schema refuses it", raw);
        }
    }
}

#[test]
fn every_gap_is_documented() {
    let doc = std::fs::read_to_string(common::root().join("docs/schema.md")).unwrap();
    for (code, _) in capgate::schema::LOOSER {
        assert!(
            doc.contains(&format!("| `{code}` |")),
            "docs/schema.md lacks {code}"
        );
    }
}
