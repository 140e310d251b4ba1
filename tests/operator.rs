//! Operator-owned targets: ejected copies, overlays, a data-only target, and
//! located errors for broken operator files.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use capgate::assets::Assets;
use capgate::compile::{Compiler, Settings};

/// A temporary directory removed on drop (also when a test panics).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "capgate-operator-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn manifests() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(common::root().join("fixtures/manifests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn compile_with(
    assets: &Assets,
    target: &str,
    path: &Path,
    permissive: bool,
) -> Result<String, String> {
    let compiler = Compiler::new(assets, target).map_err(|d| common::render_errors(&d))?;
    compiler
        .compile(
            &common::display(path),
            &fs::read(path).unwrap(),
            &Settings {
                permissive,
                set: vec![],
            },
        )
        .map(|o| o.artifact.to_json(true))
        .map_err(|d| common::render_errors(&d))
}

fn ejected(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    Assets::eject(&dir.0).unwrap();
    dir
}

fn assets(dir: &Path) -> Assets {
    Assets {
        rules_dir: Some(dir.join("rules")),
        templates_dir: Some(dir.join("templates")),
    }
}

#[test]
fn ejected_copy_compiles_the_same_policy() {
    let dir = ejected("copy");
    for target in common::TARGETS {
        let copy = format!("my{target}");
        fs::rename(
            dir.0.join(format!("rules/{target}.toml")),
            dir.0.join(format!("rules/{copy}.toml")),
        )
        .unwrap();
        fs::rename(
            dir.0.join(format!("templates/{target}")),
            dir.0.join(format!("templates/{copy}")),
        )
        .unwrap();
        for m in manifests() {
            let builtin = compile_with(&Assets::default(), target, &m, true).unwrap();
            let mine = compile_with(&assets(&dir.0), &copy, &m, true).unwrap();
            // Only the target name differs.
            assert_eq!(
                builtin,
                mine.replace(&copy, target),
                "{target} vs {copy} on {}",
                m.display()
            );
        }
    }
}

#[test]
fn a_changed_operator_template_changes_the_output() {
    let dir = TempDir::new("overlay");
    fs::create_dir_all(dir.0.join("templates/bwrap")).unwrap();
    fs::write(
        dir.0.join("templates/bwrap/tmpfs.argv.j2"),
        "--tmpfs\n/tmp\n--chmod\n1700\n/tmp\n",
    )
    .unwrap();
    let m = common::root().join("fixtures/manifests/github.json");
    let overlay = Assets {
        rules_dir: None,
        templates_dir: Some(dir.0.join("templates")),
    };
    let builtin = compile_with(&Assets::default(), "bwrap", &m, false).unwrap();
    let changed = compile_with(&overlay, "bwrap", &m, false).unwrap();
    assert!(!builtin.contains("--chmod"));
    assert!(
        changed.contains(
            "\"--tmpfs\",\n    \"/tmp\",\n    \"--chmod\",\n    \"1700\",\n    \"/tmp\","
        ),
        "{changed}"
    );
}

/// The data-only OCI target: compiles real manifests with no Rust change.
#[test]
fn data_only_oci_target() {
    let operator = Assets {
        rules_dir: Some(common::root().join("fixtures/operator/rules")),
        templates_dir: Some(common::root().join("fixtures/operator/templates")),
    };
    assert!(operator.target_names().unwrap().contains("oci"));
    insta::glob!("../fixtures", "manifests/*.json", |p| {
        let out = match compile_with(&operator, "oci", p, false) {
            Ok(out) => out,
            Err(strict) => {
                let permissive = compile_with(&operator, "oci", p, true).unwrap();
                format!("strict: error\n{strict}\n--permissive:\n{permissive}")
            }
        };
        // The config must be valid JSON with the hardening in place.
        let json_start = out.find('{').unwrap();
        let artifact: serde_json::Value = serde_json::from_str(&out[json_start..]).unwrap();
        let config: serde_json::Value = serde_json::from_str(artifact["config"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{}: config.json is not JSON: {e}", p.display()));
        assert_eq!(config["process"]["noNewPrivileges"], true);
        assert_eq!(config["root"]["readonly"], true);
        assert_eq!(
            config["process"]["capabilities"]["bounding"],
            serde_json::json!([])
        );
        insta::with_settings!({
            info => &common::display(p),
            omit_expression => true,
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!("oci", out);
        });
    });
}

/// Each broken operator file gives a located, coded error and no output.
#[test]
fn broken_operator_files_give_located_errors() {
    let m = common::root().join("fixtures/manifests/github.json");
    type Break = fn(&Path);
    let cases: &[(&str, &str, Break)] = &[
        ("toml-syntax", "bwrap", |d| {
            write(d, "rules/bwrap.toml", "[target\n")
        }),
        ("unknown-field", "bwrap", |d| {
            edit(
                d,
                "rules/bwrap.toml",
                "fact = \"baseline\"\nslot = \"sandbox\"\ntemplate = \"namespaces.argv.j2\"",
                "fact = \"baseline\"\nslot = \"sandbox\"\ntemplat = \"namespaces.argv.j2\"",
            )
        }),
        ("unknown-template", "bwrap", |d| {
            edit(
                d,
                "rules/bwrap.toml",
                "template = \"cap-drop.argv.j2\"",
                "template = \"cap-dorp.argv.j2\"",
            )
        }),
        ("template-syntax", "bwrap", |d| {
            write(d, "templates/bwrap/tmpfs.argv.j2", "--tmpfs\n{% if %}\n")
        }),
        ("undefined-variable", "bwrap", |d| {
            write(
                d,
                "templates/bwrap/tmpfs.argv.j2",
                "--tmpfs\n{{ options.tmp_dir }}\n",
            )
        }),
        ("dropped-fragment", "bwrap", |d| {
            write(d, "templates/bwrap/main.argv.j2", "{% for slot in [\"sandbox\", \"clock\", \"fs\", \"ipc\"] %}{% for f in slots[slot] %}{{ f }}{% endfor %}{% endfor %}\n")
        }),
        ("duplicated-fragment", "squid", |d| {
            write(d, "templates/squid/main.squid.j2", "{% for slot in [\"header\", \"private\", \"deny_special\", \"allow\", \"footer\", \"footer\"] %}{% for f in slots[slot] %}{{ f }}{% endfor %}{% endfor %}\n")
        }),
        ("safe-filter-removed", "squid", |d| {
            write(
                d,
                "templates/squid/allow-name.squid.j2",
                "acl x dstdomain {{ fact.domain | safe }}\n",
            )
        }),
        ("autoescape-off-ignored", "squid", |d| {
            write(
                d,
                "templates/squid/header.squid.j2",
                "{% autoescape false %}{{ \"x\\nhttp_access allow all\" }}{% endautoescape %}\n",
            )
        }),
        ("note-template-syntax", "bwrap", |d| {
            edit(
                d,
                "rules/bwrap.toml",
                "note = \"exec: {{ fact.binary }}",
                "note = \"exec: {{ fact.binary",
            )
        }),
        ("when-unknown-field", "nftables", |d| {
            edit(
                d,
                "rules/nftables.toml",
                "when = { private = true }",
                "when = { privat = true }",
            )
        }),
        ("bad-verdict", "docker", |d| {
            edit(
                d,
                "rules/docker.toml",
                "verdict = \"host-enforced\"",
                "verdict = \"mostly\"",
            )
        }),
        ("fragment-in-wrong-format", "squid", |d| {
            edit(
                d,
                "rules/squid.toml",
                "template = \"deny-all.squid.j2\"",
                "template = \"deny-all.nft.j2\"",
            )
        }),
    ];
    let mut report = String::new();
    for (name, target, breaker) in cases {
        let dir = ejected(name);
        breaker(&dir.0);
        let out = Command::new(env!("CARGO_BIN_EXE_capgate"))
            .args([
                "compile",
                m.to_str().unwrap(),
                "--permissive",
                "--target",
                target,
            ])
            .arg("--rules")
            .arg(dir.0.join("rules"))
            .arg("--templates")
            .arg(dir.0.join("templates"))
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(4), "{name}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{name}: stdout must be empty on failure"
        );
        assert!(stderr.starts_with("capgate: "), "{name}: {stderr}");
        assert!(stderr.contains("  --> "), "{name}: no location in {stderr}");
        let dir_text = dir.0.display().to_string();
        report.push_str(&format!(
            "== {name}\n{}\n",
            stderr.replace(&dir_text, "$OPERATOR")
        ));
    }
    insta::assert_snapshot!(report);
}

fn write(dir: &Path, file: &str, text: &str) {
    fs::write(dir.join(file), text).unwrap();
}

fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} does not contain {from:?}");
    fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn init_refuses_to_overwrite_and_targets_lists_operator_targets() {
    let dir = TempDir::new("init");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_capgate"))
            .args(args)
            .output()
            .unwrap()
    };
    let d = dir.0.to_str().unwrap();
    assert!(run(&["init", "--eject", d]).status.success());
    assert!(dir.0.join("rules/squid.toml").is_file());
    assert!(dir.0.join("templates/nftables/main.nft.j2").is_file());
    let again = run(&["init", "--eject", d]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exist"));
    assert!(run(&["init", "--eject", d, "--force"]).status.success());

    let operator = common::root().join("fixtures/operator/rules");
    let listed = run(&[
        "targets",
        "--rules",
        operator.to_str().unwrap(),
        "--templates",
        common::root()
            .join("fixtures/operator/templates")
            .to_str()
            .unwrap(),
        "--format",
        "json",
    ]);
    assert!(listed.status.success());
    let list: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bwrap", "docker", "nftables", "oci", "squid"]);
    let oci = &list[3];
    assert_eq!(oci["builtin"], false);
    assert_eq!(oci["format"], "json");
    assert!(oci["options"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["name"] == "rootfs" && o["default"] == "rootfs"));
}
