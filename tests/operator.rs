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

/// The rendered errors of loading operator target `target` from `dir`, which must fail.
fn load_error(dir: &Path, target: &str) -> String {
    match Compiler::new(&assets(dir), target) {
        Ok(_) => panic!("target {target} loaded"),
        Err(e) => common::render_errors(&e),
    }
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
            let builtin = compile_with(&Assets::default(), target, &m, true);
            let mine = compile_with(&assets(&dir.0), &copy, &m, true);
            // A refusal the model predicts must be the copy's too.
            let (builtin, mine) =
                match common::default_option_refusal(target, &fs::read(&m).unwrap()) {
                    None => (builtin.unwrap(), mine.unwrap()),
                    Some(_) => (builtin.unwrap_err(), mine.unwrap_err()),
                };
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

/// A target that exists only as data: the built-in `oci` target, ejected and
/// renamed `myoci`, is a target capgate knows nothing about except through
/// `--rules`/`--templates`. It compiles every fixture exactly as the built-in
/// does (only the name differs), strict where the built-in is strict.
#[test]
fn data_only_target() {
    let dir = ejected("data-only");
    fs::rename(dir.0.join("rules/oci.toml"), dir.0.join("rules/myoci.toml")).unwrap();
    fs::rename(dir.0.join("templates/oci"), dir.0.join("templates/myoci")).unwrap();
    // Only the renamed copy: the built-in oci files are not in the ejected tree any more.
    assert!(!dir.0.join("rules/oci.toml").exists());
    let operator = assets(&dir.0);
    assert!(operator.target_names().unwrap().contains("myoci"));
    let mut strict = 0;
    for m in manifests() {
        for permissive in [false, true] {
            let builtin = compile_with(&Assets::default(), "oci", &m, permissive);
            let mine = compile_with(&operator, "myoci", &m, permissive);
            match (&builtin, &mine) {
                (Ok(b), Ok(o)) => {
                    assert_eq!(b, &o.replace("myoci", "oci"), "{}", m.display());
                    strict += usize::from(!permissive);
                    let artifact: serde_json::Value = serde_json::from_str(o).unwrap();
                    assert_eq!(artifact["target"], "myoci");
                    let config: serde_json::Value = serde_json::from_str(
                        artifact["config"].as_str().unwrap(),
                    )
                    .unwrap_or_else(|e| panic!("{}: config.json is not JSON: {e}", m.display()));
                    assert_eq!(config["process"]["noNewPrivileges"], true);
                    assert_eq!(config["root"]["readonly"], true);
                    assert_eq!(
                        config["process"]["capabilities"]["bounding"],
                        serde_json::json!([])
                    );
                }
                (Err(b), Err(o)) => {
                    assert!(!permissive, "{}: permissive fails: {o}", m.display());
                    assert_eq!(b, &o.replace("myoci", "oci"), "{}", m.display());
                }
                _ => panic!(
                    "{}: built-in {builtin:?} vs data-only {mine:?}",
                    m.display()
                ),
            }
        }
    }
    assert!(strict >= 10, "only {strict} fixtures compiled strictly");
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
        ("template-include-without-suffix", "nftables", |d| {
            write(
                d,
                "templates/nftables/table.nft.j2",
                "{% include \"nftables/table.j2\" %}\n",
            );
            write(
                d,
                "templates/nftables/table.j2",
                "table inet {{ \"x; flush ruleset\" }}\n",
            )
        }),
        ("template-fuel", "squid", |d| {
            write(
                d,
                "templates/squid/header.squid.j2",
                "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}\n",
            )
        }),
        ("template-symlink-out", "squid", |d| {
            write(d, "outside.squid.j2", "http_port 1\n");
            fs::remove_file(d.join("templates/squid/header.squid.j2")).unwrap();
            std::os::unix::fs::symlink(
                d.join("outside.squid.j2"),
                d.join("templates/squid/header.squid.j2"),
            )
            .unwrap()
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

    // An operator target: the ejected oci target under another name.
    fs::rename(dir.0.join("rules/oci.toml"), dir.0.join("rules/myoci.toml")).unwrap();
    fs::rename(dir.0.join("templates/oci"), dir.0.join("templates/myoci")).unwrap();
    let listed = run(&[
        "targets",
        "--rules",
        dir.0.join("rules").to_str().unwrap(),
        "--templates",
        dir.0.join("templates").to_str().unwrap(),
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
    assert_eq!(
        names,
        [
            "bwrap",
            "docker",
            "kubernetes",
            "myoci",
            "nftables",
            "oci",
            "squid",
            "srt",
            "systemd"
        ]
    );
    let myoci = &list[3];
    assert_eq!(myoci["builtin"], false);
    assert_eq!(myoci["format"], "json");
    assert_eq!(list[5]["builtin"], true);
    assert!(myoci["options"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["name"] == "rootfs" && o["default"] == "rootfs"));
}

// ------------------------------------------------- escaping cannot be turned off
//
// F10/F11 of the first adversarial review: operator templates could print a
// value past the per-format check with minijinja's `|e` (a "safe" string) or
// from an `{% include %}`d file without the `.<format>.j2` suffix. Each case
// below is one spelling of "print this value unchecked"; the real tool shows
// the injected output would have been accepted, and capgate must refuse it.

#[path = "enforcement/support.rs"]
#[allow(dead_code)]
mod support;

/// One operator template that prints `{{ VALUE }}` some way, plus the helper
/// files it pulls in. `VALUE` is replaced by the expression naming the value.
struct Spelling {
    name: &'static str,
    main: &'static str,
    helpers: &'static [(&'static str, &'static str)],
    /// The code capgate must refuse it with.
    code: &'static str,
}

const UNSAFE: &str = "TEMPLATE_UNSAFE_VALUE";
const INVALID: &str = "TEMPLATE_INVALID";

fn spellings() -> Vec<Spelling> {
    vec![
        Spelling { name: "|e", main: "{{ VALUE | e }}", helpers: &[], code: UNSAFE },
        Spelling { name: "|escape", main: "{{ VALUE | escape }}", helpers: &[], code: UNSAFE },
        Spelling { name: "|e|e", main: "{{ VALUE | e | e }}", helpers: &[], code: UNSAFE },
        // Removed or never present: unknown filters.
        Spelling { name: "|safe", main: "{{ VALUE | safe }}", helpers: &[], code: INVALID },
        Spelling { name: "|string|safe", main: "{{ VALUE | string | safe }}", helpers: &[], code: INVALID },
        Spelling { name: "|forceescape", main: "{{ VALUE | forceescape }}", helpers: &[], code: INVALID },
        Spelling { name: "|string", main: "{{ VALUE | string }}", helpers: &[], code: UNSAFE },
        Spelling { name: "|indent", main: "{{ VALUE | indent(2) }}", helpers: &[], code: UNSAFE },
        Spelling { name: "|format", main: "{{ \"%s\" | format(VALUE) }}", helpers: &[], code: UNSAFE },
        Spelling { name: "~ concatenation", main: "{{ \"\" ~ VALUE ~ \"\" }}", helpers: &[], code: UNSAFE },
        Spelling { name: "autoescape false", main: "{% autoescape false %}{{ VALUE }}{% endautoescape %}", helpers: &[], code: UNSAFE },
        Spelling { name: "autoescape false + |e", main: "{% autoescape false %}{{ VALUE | e }}{% endautoescape %}", helpers: &[], code: UNSAFE },
        Spelling {
            name: "macro",
            main: "{% macro m(v) %}{{ v }}{% endmacro %}{{ m(VALUE) }}",
            helpers: &[],
            code: UNSAFE,
        },
        Spelling {
            name: "macro + |e",
            main: "{% macro m(v) %}{{ v | e }}{% endmacro %}{{ m(VALUE) }}",
            helpers: &[],
            code: UNSAFE,
        },
        Spelling {
            name: "caller()",
            main: "{% macro m() %}{{ caller() }}{% endmacro %}{% call m() %}{{ VALUE | e }}{% endcall %}",
            helpers: &[],
            code: UNSAFE,
        },
        Spelling {
            name: "set block",
            main: "{% set x %}{{ VALUE | e }}{% endset %}{{ x }}",
            helpers: &[],
            code: UNSAFE,
        },
        Spelling {
            name: "filter block",
            main: "{% filter lower %}{{ VALUE | e }}{% endfilter %}",
            helpers: &[],
            code: UNSAFE,
        },
        Spelling {
            name: "include of a file without the format suffix",
            main: "{% include \"HELPERDIR/line.j2\" %}",
            helpers: &[("line.j2", "{{ VALUE }}")],
            code: UNSAFE,
        },
        Spelling {
            name: "include of a .txt.j2 file",
            main: "{% include \"HELPERDIR/line.txt.j2\" %}",
            helpers: &[("line.txt.j2", "{{ VALUE }}")],
            code: UNSAFE,
        },
        Spelling {
            name: "macro imported from a file without the format suffix",
            main: "{% from \"HELPERDIR/m.j2\" import m %}{{ m(VALUE) }}",
            helpers: &[("m.j2", "{% macro m(v) %}{{ v }}{% endmacro %}")],
            code: UNSAFE,
        },
        Spelling {
            name: "module import from a file without the format suffix",
            main: "{% import \"HELPERDIR/m.j2\" as h %}{{ h.m(VALUE) }}",
            helpers: &[("m.j2", "{% macro m(v) %}{{ v | e }}{% endmacro %}")],
            code: UNSAFE,
        },
    ]
}

/// Runs the capgate binary; returns (exit code, stdout, stderr).
fn capgate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes the spelling's template as `templates/<target>/<file>`, with the
/// line around it, and its helpers beside it.
fn write_spelling(
    dir: &support::TempDir,
    target: &str,
    file: &str,
    line: &str,
    value: &str,
    sp: &Spelling,
) {
    let body = sp.main.replace("VALUE", value).replace("HELPERDIR", target);
    dir.file(
        &format!("templates/{target}/{file}"),
        // A space after the body, so `trim_blocks` after a closing block tag
        // cannot eat the newline (output lines are trimmed at the end).
        &line.replace("BODY", &format!("{body} ")),
        0o644,
    );
    for (name, text) in sp.helpers {
        dir.file(
            &format!("templates/{target}/{name}"),
            &text.replace("VALUE", value),
            0o644,
        );
    }
}

/// Whether the attack output was refused: exit 4, nothing on stdout, the
/// spelling's code on stderr. Returns what went wrong otherwise.
fn refused(
    what: &str,
    sp: &Spelling,
    (code, out, err): (i32, String, String),
) -> Result<(), String> {
    if code == 4 && out.is_empty() && err.contains(&format!("capgate: {}:", sp.code)) {
        return Ok(());
    }
    Err(format!(
        "{what} [{}]: expected exit 4 with {} and no output, got exit {code}\nstdout: {}\nstderr: {err}",
        sp.name,
        sp.code,
        out.chars().take(2000).collect::<String>()
    ))
}

/// F10: a manifest `assert:` description printed by an operator nftables
/// template in the `private` slot (before the special-range drop) cannot
/// become a second nft statement, however the template prints it.
#[test]
fn manifest_values_cannot_inject_nft_rules_through_operator_templates() {
    if !support::require(
        "manifest_values_cannot_inject_nft_rules_through_operator_templates",
        &["nft", "unshare"],
        true,
    ) {
        return;
    }
    let builtin = Assets::default().rules("nftables").unwrap().unwrap().text;
    // An operator's overlay that records each assertion as a rule in the
    // private slot (security-review.md F10, templates/include-nft/rules).
    let rules = format!(
        "{builtin}\n[[rule]]\nid = \"nftables.assert-comment\"\ndoc = \"operator: record each assertion\"\nfact = \"assert\"\nverdict = \"host-enforced\"\nslot = \"private\"\ntemplate = \"assert.nft.j2\"\n"
    );
    let control =
        r#"{"name":"t","version":"1","tools":[{"name":"a","capabilities":["assert:x:drop"]}]}"#;
    let injected = "drop; ip daddr 169.254.169.254 accept";
    let attack = format!(
        r#"{{"name":"t","version":"1","tools":[{{"name":"a","capabilities":["assert:x:{injected}"]}}]}}"#
    );
    let line = "    ip daddr 192.0.2.1 tcp dport 1 BODY\n";
    let mut failures = Vec::new();
    for sp in spellings() {
        let dir = support::TempDir::new("f10");
        dir.file("rules/nftables.toml", &rules, 0o644);
        write_spelling(
            &dir,
            "nftables",
            "assert.nft.j2",
            line,
            "fact.description",
            &sp,
        );
        let m_control = dir.file("control.json", control, 0o644);
        let m_attack = dir.file("attack.json", &attack, 0o644);
        let (r, t) = (
            support::s(&dir.join("rules")),
            support::s(&dir.join("templates")),
        );
        let args = |m: &Path| {
            vec![
                "compile".to_owned(),
                support::s(m),
                "--target".into(),
                "nftables".into(),
                "--rules".into(),
                r.clone(),
                "--templates".into(),
                t.clone(),
            ]
        };
        let run = |m: &Path| capgate(&args(m).iter().map(String::as_str).collect::<Vec<_>>());
        let result = run(&m_attack);
        if sp.code == UNSAFE {
            // The spelling works as a template: the harmless value compiles
            // into the private slot, before the special-range drop.
            let (code, out, err) = run(&m_control);
            assert_eq!(code, 0, "[{}] control: {err}", sp.name);
            let config = serde_json::from_str::<serde_json::Value>(&out).unwrap()["config"]
                .as_str()
                .unwrap()
                .to_owned();
            let ours = "ip daddr 192.0.2.1 tcp dport 1 drop\n";
            let at = config
                .find(ours)
                .unwrap_or_else(|| panic!("[{}] {config}", sp.name));
            // Before the special-range drop (the ND-typed drop above it is not it).
            assert!(at < config.find("ip daddr { ").unwrap(), "{config}");
            // What the attack would have written: nft accepts it, with an
            // accept for the metadata address before the special-range drop.
            let forged = config.replacen(
                ours,
                &format!("ip daddr 192.0.2.1 tcp dport 1 {injected}\n"),
                1,
            );
            let file = dir.file("forged.nft", &forged, 0o644);
            support::ok(&mut support::cmd(
                "unshare",
                &["-n", "nft", "-c", "-f", &support::s(&file)],
            ));
        }
        failures.extend(refused("nft", &sp, result).err());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// F11: an operator option with a newline cannot add a squid directive
/// through an operator template, however the template prints it.
#[test]
fn options_cannot_inject_squid_directives_through_operator_templates() {
    if !support::require(
        "options_cannot_inject_squid_directives_through_operator_templates",
        &["squid"],
        true,
    ) {
        return;
    }
    let header = Assets::default()
        .template("squid/header.squid.j2")
        .unwrap()
        .unwrap()
        .0;
    assert!(
        header.contains("http_port {{ options.listen }}\n"),
        "{header}"
    );
    let manifest = r#"{"name":"t","version":"1","tools":[{"name":"a","capabilities":["net:connect:api.example.com:443"]}]}"#;
    let injected = "http_access allow all";
    let mut failures = Vec::new();
    for sp in spellings() {
        let dir = support::TempDir::new("f11");
        write_spelling(
            &dir,
            "squid",
            "header.squid.j2",
            &header.replace("http_port {{ options.listen }}\n", "http_port BODY\n"),
            "options.listen",
            &sp,
        );
        let m = dir.file("m.json", manifest, 0o644);
        let (m, t) = (support::s(&m), support::s(&dir.join("templates")));
        let base = [
            "compile",
            &m,
            "--target",
            "squid",
            "--templates",
            &t,
            "--set",
        ];
        let attack = format!("listen=127.0.0.1:3128\n{injected}");
        let result = capgate(&[&base[..], &[attack.as_str()]].concat());
        if sp.code == UNSAFE {
            let (code, out, err) = capgate(&[&base[..], &["listen=127.0.0.1:3128"]].concat());
            assert_eq!(code, 0, "[{}] control: {err}", sp.name);
            let config = serde_json::from_str::<serde_json::Value>(&out).unwrap()["config"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(
                config.contains("\nhttp_port 127.0.0.1:3128\n"),
                "[{}] {config}",
                sp.name
            );
            assert!(!config.contains(injected));
            // What the attack would have written: squid parses it, and the
            // directive allows every request.
            let forged = config.replacen(
                "\nhttp_port 127.0.0.1:3128\n",
                &format!("\nhttp_port 127.0.0.1:3128\n{injected}\n"),
                1,
            );
            let file = dir.file("forged.conf", &forged, 0o644);
            support::ok(&mut support::cmd(
                "squid",
                &["-k", "parse", "-f", &support::s(&file)],
            ));
        }
        failures.extend(refused("squid", &sp, result).err());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ------------------------------------------------- operator paths are not followed out

/// F14 of the first adversarial review: `init --eject DIR` wrote through a
/// symlink planted in DIR (a `rules -> /elsewhere` directory link, and with
/// `--force` file links), and `--templates`/`--rules` read files through
/// symlinks leading out of their directory. Every spelling is refused with
/// OPERATOR_PATH_UNSAFE, nothing on stdout, and nothing outside is touched.
#[test]
fn eject_and_operator_dirs_refuse_symlinks_leading_out() {
    use std::os::unix::fs::symlink;
    let victim_text = "VICTIM-UNCHANGED\n";
    // (what, setup(dir, outside), extra init args)
    type Setup = fn(&Path, &Path);
    let eject_cases: [(&str, Setup, &[&str]); 5] = [
        (
            "rules -> outside dir",
            |d, o| symlink(o, d.join("rules")).unwrap(),
            &[],
        ),
        (
            "templates/squid -> outside dir",
            |d, o| {
                fs::create_dir_all(d.join("templates")).unwrap();
                symlink(o, d.join("templates/squid")).unwrap()
            },
            &[],
        ),
        (
            "--force over a file symlink",
            |d, o| {
                fs::create_dir_all(d.join("rules")).unwrap();
                symlink(o.join("victim.txt"), d.join("rules/bwrap.toml")).unwrap()
            },
            &["--force"],
        ),
        (
            "--force over a dangling file symlink",
            |d, o| {
                fs::create_dir_all(d.join("rules")).unwrap();
                symlink(o.join("created.toml"), d.join("rules/squid.toml")).unwrap()
            },
            &["--force"],
        ),
        (
            "--force over a symlinked template dir",
            |d, o| {
                fs::create_dir_all(d.join("templates")).unwrap();
                symlink(o, d.join("templates/nftables")).unwrap()
            },
            &["--force"],
        ),
    ];
    for (what, setup, extra) in eject_cases {
        let dir = TempDir::new("eject-link");
        let (ej, outside) = (dir.0.join("ej"), dir.0.join("outside"));
        fs::create_dir_all(&ej).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("victim.txt"), victim_text).unwrap();
        setup(&ej, &outside);
        let mut args = vec!["init", "--eject", ej.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (code, out, err) = capgate(&args);
        assert_eq!(code, 4, "{what}: {err}");
        assert!(out.is_empty(), "{what}: {out}");
        assert!(
            err.starts_with("capgate: OPERATOR_PATH_UNSAFE:"),
            "{what}: {err}"
        );
        let left: Vec<_> = fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["victim.txt"], "{what}: wrote outside");
        assert_eq!(
            fs::read_to_string(outside.join("victim.txt")).unwrap(),
            victim_text
        );
    }
    // Without planted links, --force overwrites the real files it finds.
    let dir = TempDir::new("eject-force");
    let ej = dir.0.join("ej");
    assert_eq!(capgate(&["init", "--eject", ej.to_str().unwrap()]).0, 0);
    fs::write(ej.join("rules/bwrap.toml"), "changed").unwrap();
    let (code, out, err) = capgate(&["init", "--eject", ej.to_str().unwrap(), "--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("wrote "), "{out}");
    assert_eq!(
        fs::read_to_string(ej.join("rules/bwrap.toml")).unwrap(),
        Assets::default().rules("bwrap").unwrap().unwrap().text
    );

    // --templates and --rules: links out of the directory, and special files.
    let manifest = r#"{"name":"t","version":"1","tools":[{"name":"a","capabilities":["net:connect:api.example.com:443"]}]}"#;
    let dir_cases: [(&str, &str, Setup); 6] = [
        ("template file -> outside", "templates", |d, o| {
            fs::create_dir_all(d.join("squid")).unwrap();
            symlink(o.join("victim.txt"), d.join("squid/header.squid.j2")).unwrap()
        }),
        ("template dir -> outside", "templates", |d, o| {
            fs::write(o.join("header.squid.j2"), "SECRET {{ options.listen }}\n").unwrap();
            symlink(o, d.join("squid")).unwrap()
        }),
        ("dangling template link", "templates", |d, o| {
            fs::create_dir_all(d.join("squid")).unwrap();
            symlink(o.join("nothing"), d.join("squid/header.squid.j2")).unwrap()
        }),
        ("template FIFO", "templates", |d, _| {
            fs::create_dir_all(d.join("squid")).unwrap();
            let ok = Command::new("mkfifo")
                .arg(d.join("squid/header.squid.j2"))
                .status()
                .unwrap();
            assert!(ok.success());
        }),
        ("rules file -> outside", "rules", |d, o| {
            fs::write(
                o.join("squid.toml"),
                Assets::default().rules("squid").unwrap().unwrap().text,
            )
            .unwrap();
            symlink(o.join("squid.toml"), d.join("squid.toml")).unwrap()
        }),
        ("rules file -> /dev/zero", "rules", |d, _| {
            symlink("/dev/zero", d.join("squid.toml")).unwrap()
        }),
    ];
    for (what, kind, setup) in dir_cases {
        let dir = TempDir::new("dir-link");
        let (op, outside) = (dir.0.join(kind), dir.0.join("outside"));
        fs::create_dir_all(&op).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("victim.txt"), victim_text).unwrap();
        setup(&op, &outside);
        let m = dir.0.join("m.json");
        fs::write(&m, manifest).unwrap();
        let flag = format!("--{kind}");
        let (m, op) = (m.to_str().unwrap(), op.to_str().unwrap());
        for args in [
            vec!["compile", m, "--target", "squid", &flag, op],
            vec!["explain", m, "--target", "squid", &flag, op],
            vec!["targets", &flag, op],
            vec!["diff", m, m, "--target", "squid", &flag, op],
        ] {
            let (code, out, err) = capgate(&args);
            assert_eq!(code, 4, "{what} {args:?}: {err}");
            assert!(out.is_empty(), "{what} {args:?}: {out}");
            assert!(
                err.starts_with("capgate: OPERATOR_PATH_UNSAFE:"),
                "{what} {args:?}: {err}"
            );
        }
    }
    // Through the library too (no command-line pre-check): refused, not read.
    let dir = TempDir::new("lib-link");
    let (tpl, outside) = (dir.0.join("templates"), dir.0.join("outside"));
    fs::create_dir_all(tpl.join("squid")).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("s.j2"), "SECRET-OUTSIDE\n").unwrap();
    symlink(outside.join("s.j2"), tpl.join("squid/header.squid.j2")).unwrap();
    let assets = Assets {
        rules_dir: None,
        templates_dir: Some(tpl.clone()),
    };
    let err = assets.template("squid/header.squid.j2").unwrap_err();
    assert!(capgate::assets::UnsafePath::of(&err).is_some(), "{err}");
    let compiler = Compiler::new(&assets, "squid");
    let d = compiler.err().expect("refused");
    assert_eq!(d[0].code, capgate::diag::Code::OperatorPathUnsafe, "{d:?}");
    // A symlink that stays inside the directory is fine.
    fs::remove_file(tpl.join("squid/header.squid.j2")).unwrap();
    fs::write(
        tpl.join("common.squid.j2"),
        Assets::default()
            .template("squid/header.squid.j2")
            .unwrap()
            .unwrap()
            .0,
    )
    .unwrap();
    symlink("../common.squid.j2", tpl.join("squid/header.squid.j2")).unwrap();
    assert!(Compiler::new(&assets, "squid").is_ok());
    let (code, _, err) = capgate(&["targets", "--templates", tpl.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}

/// F18: an operator template that loops too long fails with its own code
/// (TEMPLATE_FUEL, documented limit), not TEMPLATE_INVALID's "undefined
/// variables" help; the same manifest compiles with the built-in template.
#[test]
fn operator_templates_have_a_documented_fuel_limit() {
    let dir = TempDir::new("fuel");
    let manifest = dir.0.join("m.json");
    fs::write(&manifest, r#"{"name":"t","version":"1","tools":[{"name":"a","capabilities":["net:connect:api.example.com:443"]}]}"#).unwrap();
    let header = Assets::default()
        .template("squid/header.squid.j2")
        .unwrap()
        .unwrap()
        .0;
    // Spellings of "too much work": nested loops, a loop in a macro, a loop in an include.
    let spellings = [
        "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        "{% macro m() %}{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}{% endmacro %}{{ m() }}",
        "{% include \"squid/loop.j2\" %}",
    ];
    for body in spellings {
        fs::create_dir_all(dir.0.join("templates/squid")).unwrap();
        fs::write(
            dir.0.join("templates/squid/header.squid.j2"),
            format!("{body}{header}"),
        )
        .unwrap();
        fs::write(
            dir.0.join("templates/squid/loop.j2"),
            "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        )
        .unwrap();
        let (code, out, err) = capgate(&[
            "compile",
            manifest.to_str().unwrap(),
            "--target",
            "squid",
            "--templates",
            dir.0.join("templates").to_str().unwrap(),
        ]);
        assert_eq!(code, 4, "{body}: {err}");
        assert!(out.is_empty());
        assert!(err.starts_with("capgate: TEMPLATE_FUEL:"), "{body}: {err}");
    }
    let (code, _, err) = capgate(&["compile", manifest.to_str().unwrap(), "--target", "squid"]);
    assert_eq!(code, 0, "{err}");
}

/// A misspelt field fails when the target loads, whatever the manifest: an
/// empty manifest never reaches the net rules, yet their templates are
/// checked against capgate's sample facts (src/samples.rs). Spellings: a
/// field of a fact kind the manifest lacks, a field used only when a nullable
/// field is set, a field inside a boolean option's branch, and a note.
#[test]
fn misspelt_fields_fail_when_the_target_loads() {
    let empty = common::root().join("fixtures/manifests/empty.json");
    assert!(empty.is_file(), "fixture {}", empty.display());
    type Break = fn(&Path);
    let cases: &[(&str, &str, &str, Break)] = &[
        ("net field, squid", "squid", "allow-name.squid.j2", |d| {
            edit(
                d,
                "templates/squid/allow-name.squid.j2",
                "fact.domain",
                "fact.domian",
            )
        }),
        ("port branch, nftables", "nftables", "accept.nft.j2", |d| {
            edit(
                d,
                "templates/nftables/accept.nft.j2",
                "else fact.port",
                "else fact.prot",
            )
        }),
        (
            "boolean option branch, squid",
            "squid",
            "header.squid.j2",
            |d| {
                edit(
                    d,
                    "templates/squid/header.squid.j2",
                    "{{ options.instance_dir }}/squid.pid",
                    "{{ options.instance_dri }}/squid.pid",
                )
            },
        ),
        ("note, nftables", "nftables", "rules/nftables.toml:", |d| {
            edit(
                d,
                "rules/nftables.toml",
                "every TCP port of {{ fact.host }} is accepted",
                "every TCP port of {{ fact.hots }} is accepted",
            )
        }),
    ];
    for (label, target, names, brk) in cases {
        let dir = ejected("misspelt");
        brk(&dir.0);
        let err = compile_with(&assets(&dir.0), target, &empty, false)
            .expect_err(&format!("{label}: compiled"));
        assert!(err.contains("TEMPLATE_INVALID"), "{label}: {err}");
        assert!(err.contains(names), "{label}: {err}");
        assert!(err.contains("sample facts"), "{label}: {err}");
    }
}

/// A `yaml` target: every printed string is a double-quoted scalar written by
/// the formatter, so a value reads back as the same string whatever it spells
/// (YAML 1.1 booleans, null, numbers in every base, flow and block syntax,
/// comments, anchors, tags, document markers); the output is checked to parse.
#[test]
fn yaml_values_read_back_as_the_same_strings() {
    let dir = TempDir::new("yaml");
    let d = &dir.0;
    fs::create_dir_all(d.join("rules")).unwrap();
    fs::create_dir_all(d.join("templates/labels")).unwrap();
    write(
        d,
        "rules/labels.toml",
        r#"[target]
description = "test: one label and the declared env names, as YAML"
format = "yaml"
artifact = "config"
filename = "labels.yaml"

[options.label]
type = "string"
default = "plain"
doc = "any text"

[[rule]]
id = "labels.head"
doc = "the label"
fact = "baseline"
slot = "head"
template = "head.yaml.j2"

[[rule]]
id = "labels.env"
doc = "one key per env name"
fact = "env"
slot = "env"
template = "env.yaml.j2"
verdict = "exact"
"#,
    );
    write(
        d,
        "templates/labels/main.yaml.j2",
        "{% for f in slots.head %}{{ f }}{% endfor %}env:\n  []\n{% for f in slots.env %}{{ f }}{% endfor %}",
    );
    write(
        d,
        "templates/labels/head.yaml.j2",
        "label: {{ options.label }}\nflow: [{{ [options.label, \"x\"] | join_tokens(\", \") }}]\n",
    );
    // A key built from a value is one expression, so it is quoted whole.
    write(
        d,
        "templates/labels/env.yaml.j2",
        "{{ \"names_\" ~ fact.name }}: {{ fact.name }}\n",
    );
    let m = d.join("m.json");
    fs::write(
        &m,
        r#"{"name":"y","version":"1","grammar":"0.0","serverCapabilities":["env:read:ON","env:read:NO","env:read:Y","env:read:NULL","env:read:_1"],"tools":[]}"#,
    )
    .unwrap();
    let values = [
        "ON",
        "off",
        "yes",
        "n",
        "y",
        "~",
        "null",
        "Null",
        "true",
        "0x1F",
        "0o17",
        "017",
        "1e3",
        ".inf",
        "-.nan",
        "1_000",
        "12:30:00",
        "2001-12-14",
        "- item",
        "a: b",
        "key: [1, 2]",
        "{a: 1}",
        "# comment",
        "x # not a comment",
        "*anchor",
        "&anchor v",
        "!tag v",
        "!!str",
        "%YAML 1.2",
        "---",
        "...",
        "|",
        ">",
        "@at",
        "`tick",
        "'single'",
        "\"double\"",
        "back\\slash",
        "ünïcode ✓",
        "  padded  ",
        "",
    ];
    for v in values {
        let compiler = Compiler::new(&assets(d), "labels").unwrap();
        let out = compiler
            .compile(
                "m.json",
                &fs::read(&m).unwrap(),
                &Settings {
                    permissive: false,
                    set: vec![("label".into(), v.into())],
                },
            )
            .unwrap_or_else(|e| panic!("{v:?}: {}", common::render_errors(&e)));
        let capgate::artifact::Artifact::Config(c) = &out.artifact else {
            panic!("config artifact")
        };
        let docs = yaml_rust2::YamlLoader::load_from_str(&c.config)
            .unwrap_or_else(|e| panic!("{v:?}: not YAML: {e}\n{}", c.config));
        let doc = &docs[0];
        assert_eq!(doc["label"].as_str(), Some(v), "{v:?}:\n{}", c.config);
        assert_eq!(doc["flow"][0].as_str(), Some(v), "{v:?}:\n{}", c.config);
        assert_eq!(doc["flow"][1].as_str(), Some("x"));
        for name in ["ON", "NO", "Y", "NULL", "_1"] {
            assert_eq!(
                doc[format!("names_{name}").as_str()].as_str(),
                Some(name),
                "{name}:\n{}",
                c.config
            );
        }
    }
    // A template that breaks the structure is refused with its output checked.
    write(
        d,
        "templates/labels/env.yaml.j2",
        "names: {{ fact.name }}\n  bad: indent\n",
    );
    let err = compile_with(&assets(d), "labels", &m, false).unwrap_err();
    assert!(
        err.contains("TEMPLATE_INVALID") && err.contains("not valid YAML"),
        "{err}"
    );
}

/// JSON arrays from fragments, with separators: `join_tokens` places each
/// fragment of a slot unchanged with the separator between them, so no
/// template needs a trailing comma or a sentinel last element.
#[test]
fn fragment_lists_join_with_separators() {
    let dir = TempDir::new("jsonlist");
    let d = &dir.0;
    fs::create_dir_all(d.join("rules")).unwrap();
    fs::create_dir_all(d.join("templates/names")).unwrap();
    write(
        d,
        "rules/names.toml",
        r#"[target]
description = "test: the declared env names as a JSON array"
format = "json"
artifact = "config"
filename = "names.json"

[[rule]]
id = "names.env"
doc = "one array element per env name"
fact = "env"
slot = "env"
template = "env.json.j2"
verdict = "exact"
"#,
    );
    write(
        d,
        "templates/names/main.json.j2",
        "{ \"names\": [\n{{ slots.env | join_tokens(\",\\n\") }}\n] }\n",
    );
    write(d, "templates/names/env.json.j2", "  \"{{ fact.name }}\"\n");
    for names in [vec![], vec!["A"], vec!["A", "B", "C"]] {
        let caps: Vec<String> = names.iter().map(|n| format!("\"env:read:{n}\"")).collect();
        let m = d.join("m.json");
        fs::write(
            &m,
            format!(
                r#"{{"name":"n","version":"1","grammar":"0.0","serverCapabilities":[{}],"tools":[]}}"#,
                caps.join(",")
            ),
        )
        .unwrap();
        let out = compile_with(&assets(d), "names", &m, false)
            .unwrap_or_else(|e| panic!("{names:?}: {e}"));
        let artifact: serde_json::Value = serde_json::from_str(&out).unwrap();
        let config: serde_json::Value = serde_json::from_str(artifact["config"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{names:?}: not JSON: {e}\n{}", artifact["config"]));
        assert_eq!(config["names"], serde_json::json!(names), "{names:?}");
    }
    // The separator is still punctuation only.
    write(
        d,
        "templates/names/main.json.j2",
        "{ \"names\": [ {{ slots.env | join_tokens(\"], \\\"x\\\": [\") }} ] }\n",
    );
    let m = d.join("m.json");
    let err = compile_with(&assets(d), "names", &m, false).unwrap_err();
    assert!(err.contains("TEMPLATE_UNSAFE_VALUE"), "{err}");
}

/// A two-file target: the env names in one file, the net hosts in another.
fn two_file_target(d: &Path, extra_rules: &str) {
    fs::create_dir_all(d.join("rules")).unwrap();
    fs::create_dir_all(d.join("templates/pair")).unwrap();
    write(
        d,
        "rules/pair.toml",
        &format!(
            r#"[target]
description = "test: env names in env.txt, hosts in hosts.txt"
format = "lines"
artifact = "config"
filename = "env.txt"
{extra_rules}
[[file]]
filename = "hosts.txt"
template = "hosts.lines.j2"

[[rule]]
id = "pair.env"
doc = "one line per env name"
fact = "env"
slot = "env"
template = "env.lines.j2"
verdict = "exact"

[[rule]]
id = "pair.net"
doc = "one line per host"
fact = "net"
slot = "net"
template = "net.lines.j2"
verdict = "exact"
"#
        ),
    );
    write(
        d,
        "templates/pair/main.lines.j2",
        "env-file\n{% for f in slots.env %}\n{{ f }}\n{% endfor %}\n",
    );
    write(
        d,
        "templates/pair/hosts.lines.j2",
        "hosts-file\n{% for f in slots.net %}\n{{ f }}\n{% endfor %}\n",
    );
    write(d, "templates/pair/env.lines.j2", "env {{ fact.name }}\n");
    write(d, "templates/pair/net.lines.j2", "host {{ fact.host }}\n");
}

const PAIR_MANIFEST: &str = r#"{"name":"n","version":"1","grammar":"0.0","serverCapabilities":["env:read:TOKEN","net:connect:api.example.com:443"],"tools":[]}"#;

#[test]
fn a_target_writes_several_files() {
    let dir = TempDir::new("pair");
    let d = &dir.0;
    two_file_target(d, "");
    let m = d.join("m.json");
    fs::write(&m, PAIR_MANIFEST).unwrap();
    let out = compile_with(&assets(d), "pair", &m, false).unwrap();
    let artifact: serde_json::Value = serde_json::from_str(&out).unwrap();
    let files = artifact["files"].as_array().expect("files[] for two files");
    let got: Vec<(&str, &str)> = files
        .iter()
        .map(|f| {
            (
                f["filename"].as_str().unwrap(),
                f["config"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("env.txt", "env-file\nenv TOKEN"),
            ("hosts.txt", "hosts-file\nhost api.example.com")
        ]
    );
    // `config` and `filename` stay the first file's, for one-file readers.
    assert_eq!(artifact["config"], files[0]["config"]);
    assert_eq!(artifact["filename"], files[0]["filename"]);
    // A one-file target has no `files`.
    let squid = compile_with(&Assets::default(), "squid", &m, true).unwrap();
    let squid: serde_json::Value = serde_json::from_str(&squid).unwrap();
    assert!(squid.get("files").is_none(), "{squid}");

    // explain names the file of every line, and each line's rule.
    let (code, text, err) = capgate(&[
        "explain",
        m.to_str().unwrap(),
        "--target",
        "pair",
        "--rules",
        d.join("rules").to_str().unwrap(),
        "--templates",
        d.join("templates").to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let explained: serde_json::Value = serde_json::from_str(&text).unwrap();
    let lines: Vec<(String, String, String)> = explained["fragments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| {
            f["output"].as_array().unwrap().iter().map(|l| {
                (
                    f["file"].as_str().unwrap().to_owned(),
                    l.as_str().unwrap().to_owned(),
                    f["rule"].as_str().unwrap().to_owned(),
                )
            })
        })
        .collect();
    let expected = [
        ("env.txt", "env-file", "pair.main-template"),
        ("env.txt", "env TOKEN", "pair.env"),
        ("hosts.txt", "hosts-file", "pair.main-template"),
        ("hosts.txt", "host api.example.com", "pair.net"),
    ];
    assert_eq!(
        lines,
        expected.map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    );
    let main_sources: Vec<&str> = explained["fragments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "pair.main-template")
        .map(|f| f["ruleSource"].as_str().unwrap())
        .collect();
    assert_eq!(
        main_sources,
        [
            "templates/pair/main.lines.j2:1",
            "templates/pair/hosts.lines.j2:1"
        ]
    );

    // diff keeps the files apart: the same text in another file is another line.
    let old = d.join("old.json");
    fs::write(
        &old,
        PAIR_MANIFEST.replace("net:connect:api.example.com:443", "env:read:SECOND"),
    )
    .unwrap();
    let (_, text, err) = capgate(&[
        "diff",
        old.to_str().unwrap(),
        m.to_str().unwrap(),
        "--target",
        "pair",
        "--rules",
        d.join("rules").to_str().unwrap(),
        "--templates",
        d.join("templates").to_str().unwrap(),
        "--format",
        "json",
    ]);
    let diff: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}{err}"));
    let changes = |side: &str| -> Vec<(String, String)> {
        diff["targets"][0][side]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["file"].as_str().unwrap().to_owned(),
                    l["line"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        changes("added"),
        [("hosts.txt".to_owned(), "host api.example.com".to_owned())]
    );
    assert_eq!(
        changes("removed"),
        [("env.txt".to_owned(), "env SECOND".to_owned())]
    );
}

/// Each fragment is placed exactly once across all the files: one file
/// cannot drop what another does not place, nor may two files both place it.
#[test]
fn fragments_are_placed_once_across_files() {
    let dir = TempDir::new("pairfrag");
    let d = &dir.0;
    two_file_target(d, "");
    let m = d.join("m.json");
    fs::write(&m, PAIR_MANIFEST).unwrap();
    // Dropped: neither file places the net fragment.
    write(d, "templates/pair/hosts.lines.j2", "hosts-file\n");
    let err = compile_with(&assets(d), "pair", &m, false).unwrap_err();
    assert!(err.contains("TEMPLATE_FRAGMENTS"), "{err}");
    assert!(err.contains("dropped 1 and duplicated 0"), "{err}");
    // Duplicated: the second file also places the env fragment.
    write(
        d,
        "templates/pair/hosts.lines.j2",
        "{% for f in slots.net %}\n{{ f }}\n{% endfor %}\n{% for f in slots.env %}\n{{ f }}\n{% endfor %}\n",
    );
    let err = compile_with(&assets(d), "pair", &m, false).unwrap_err();
    assert!(err.contains("dropped 0 and duplicated 1"), "{err}");
    // Moved: the env fragment in the second file instead of the first is fine.
    write(d, "templates/pair/main.lines.j2", "env-file\n");
    let out = compile_with(&assets(d), "pair", &m, false).unwrap();
    let artifact: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(artifact["files"][0]["config"], "env-file");
    assert_eq!(
        artifact["files"][1]["config"],
        "host api.example.com\nenv TOKEN"
    );
}

/// A file name is one plain path component, written once; an argv target
/// writes no files.
#[test]
fn bad_output_files_are_located_errors() {
    for (label, extra, file, expect) in [
        ("parent", "", "../hosts.txt", "must be a plain file name"),
        ("absolute", "", "/etc/hosts", "must be a plain file name"),
        ("hidden", "", ".hosts", "must be a plain file name"),
        (
            "same as the first",
            "",
            "env.txt",
            "already written by this target",
        ),
    ] {
        let dir = TempDir::new("pairbad");
        let d = &dir.0;
        two_file_target(d, extra);
        edit(
            d,
            "rules/pair.toml",
            "filename = \"hosts.txt\"",
            &format!("filename = \"{file}\""),
        );
        let err = load_error(d, "pair");
        assert!(
            err.contains("RULES_INVALID") && err.contains(expect),
            "{label}: {err}"
        );
        // Located to the `filename` key of the [[file]] table (line 8).
        assert!(err.contains("pair.toml:8:1"), "{label}: {err}");
    }
    let dir = TempDir::new("pairbad");
    let d = &dir.0;
    two_file_target(d, "");
    edit(
        d,
        "rules/pair.toml",
        "template = \"hosts.lines.j2\"",
        "template = \"hosts.json.j2\"",
    );
    let err = load_error(d, "pair");
    assert!(
        err.contains("must be a file name ending in `.lines.j2`") && err.contains("pair.toml:9:1"),
        "{err}"
    );
    edit(
        d,
        "rules/pair.toml",
        "template = \"hosts.json.j2\"",
        "template = \"main.lines.j2\"",
    );
    let err = load_error(d, "pair");
    assert!(err.contains("already renders another file"), "{err}");
    edit(
        d,
        "rules/pair.toml",
        "filename = \"env.txt\"",
        "filename = \"../env.txt\"",
    );
    let err = load_error(d, "pair");
    assert!(
        err.contains("[target] filename `../env.txt`") && err.contains("pair.toml:5:1"),
        "{err}"
    );
    edit(
        d,
        "rules/pair.toml",
        "artifact = \"config\"",
        "artifact = \"argv\"",
    );
    let err = load_error(d, "pair");
    assert!(err.contains("an argv artifact is one argv"), "{err}");
}

/// `when_sandbox` conditions a rule on the policy's baseline: a net rule can
/// say `exact` where nothing else widens and `superset` where something does.
#[test]
fn rules_can_depend_on_the_sandbox() {
    let dir = TempDir::new("whensandbox");
    let d = &dir.0;
    fs::create_dir_all(d.join("rules")).unwrap();
    fs::create_dir_all(d.join("templates/cond")).unwrap();
    let rules = r#"[target]
description = "test: one line per host, worded by whether the sandbox declares a writable path"
format = "lines"
artifact = "config"
filename = "hosts.txt"

[[rule]]
id = "cond.net.alone"
doc = "no writable path declared"
fact = "net"
when_sandbox = { fs_writable = false }
slot = "net"
template = "alone.lines.j2"
verdict = "exact"

[[rule]]
id = "cond.net.shared"
doc = "a writable path and one or two net facts declared"
fact = "net"
when_sandbox = { fs_writable = true, net_count = [1, 2] }
slot = "net"
template = "shared.lines.j2"
verdict = "superset"
"#;
    write(d, "rules/cond.toml", rules);
    write(
        d,
        "templates/cond/main.lines.j2",
        "{% for f in slots.net %}\n{{ f }}\n{% endfor %}\n",
    );
    write(
        d,
        "templates/cond/alone.lines.j2",
        "alone {{ fact.host }}\n",
    );
    write(
        d,
        "templates/cond/shared.lines.j2",
        "shared {{ fact.host }}\n",
    );
    let compile = |caps: &[&str]| {
        let m = d.join("m.json");
        let caps: Vec<String> = caps.iter().map(|c| format!("\"{c}\"")).collect();
        fs::write(
            &m,
            format!(
                r#"{{"name":"n","version":"1","grammar":"0.0","serverCapabilities":[{}],"tools":[]}}"#,
                caps.join(",")
            ),
        )
        .unwrap();
        compile_with(&assets(d), "cond", &m, true)
    };
    let out = compile(&["net:connect:a.example.com:443"]).unwrap();
    let artifact: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(artifact["config"], "alone a.example.com");
    let out = compile(&["net:connect:a.example.com:443", "fs:read,write:/srv/x/**"]).unwrap();
    let artifact: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(artifact["config"], "shared a.example.com");
    // Neither matches (three net facts): the net facts are unlowered, never dropped silently.
    let out = compile(&[
        "net:connect:a.example.com:443",
        "net:connect:b.example.com:443",
        "net:connect:c.example.com:443",
        "fs:read,write:/srv/x/**",
    ])
    .unwrap();
    let artifact: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(artifact["config"], "");
    let unlowered_hosts = artifact["unenforceable"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["rule"]["host"].is_string())
        .count();
    assert_eq!(unlowered_hosts, 3, "{artifact}");

    // explain --rule shows the condition.
    let (code, text, _) = capgate(&[
        "explain",
        "--rule",
        "cond.net.shared",
        "--target",
        "cond",
        "--rules",
        d.join("rules").to_str().unwrap(),
        "--templates",
        d.join("templates").to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert!(
        text.contains("when_sandbox: fs_writable = true, net_count = 1 | 2"),
        "{text}"
    );

    // A baseline field that does not exist, or a value it can never have, is a located error.
    for (from, to, says, at) in [
        (
            "fs_writable = false",
            "writable = false",
            "`when_sandbox.writable` is not a field of baseline facts",
            "cond.toml:11:18",
        ),
        (
            "fs_writable = false",
            "fs_writable = \"no\"",
            "`when_sandbox.fs_writable` can never match",
            "cond.toml:11:18",
        ),
    ] {
        write(d, "rules/cond.toml", &rules.replacen(from, to, 1));
        let err = load_error(d, "cond");
        assert!(err.contains(says) && err.contains(at), "{err}");
    }
}
