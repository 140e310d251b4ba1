//! The real validators accept every squid.conf and nftables ruleset capgate emits for the
//! fixtures: `squid -k parse -f FILE` (exit 0, no warning, FATAL or Bungled line) and
//! `unshare -n nft -c -f FILE` (exit 0; inside a fresh network namespace, so a bad token can
//! never trigger a DNS lookup). nftables rulesets are also loaded twice for real inside a
//! throwaway network namespace, which checks that they are idempotent.
//!
//! When a tool is missing the tests print a loud skip notice, unless `CI=true`, where a
//! missing tool fails the test.

mod common;

use common::TempDir;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use capgate::assets::Assets;
use capgate::compile::{Compiler, Settings};
use capgate::diag::Diagnostic;

// ------------------------------------------------------------------ helpers

/// Whether a program can be run; otherwise skip loudly, or fail when `CI=true`.
fn available(program: &str, probe: &[&str]) -> bool {
    let found = Command::new(program).args(probe).output().is_ok();
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{program} is required in CI (CI=true) but could not be run");
        }
        eprintln!();
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        eprintln!("!!! SKIPPED: {program} is not installed; this validator did not run.");
        eprintln!("!!! Install it (see .ci/run) or set CI=true to make this a failure.");
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    }
    found
}

/// Every fixture manifest capgate should compile: valid, hostile and upstream ones.
fn manifests() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        "fixtures/manifests",
        "fixtures/injection",
        "tests/reference/manifests",
    ] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    assert!(out.len() >= 10, "fixtures not found: {out:?}");
    out
}

/// The config text of a fixture compiled permissively; `None` if the grammar rejects it
/// (an injection fixture may be an error case: then there is nothing to validate).
fn config(path: &Path, target: &str) -> Option<String> {
    let compiler = Compiler::new(&Assets::default(), target).unwrap();
    let bytes = std::fs::read(path).unwrap();
    let settings = Settings {
        permissive: true,
        set: vec![],
    };
    match compiler.compile(&path.display().to_string(), &bytes, &settings) {
        Ok(out) => {
            let json: serde_json::Value =
                serde_json::from_str(&out.artifact.to_json(false)).unwrap();
            Some(json["config"].as_str().expect("config artifact").to_owned())
        }
        Err(diags)
            if common::default_option_refusal(target, &bytes)
                .is_some_and(|code| diags.iter().all(|d| d.code == code)) =>
        {
            None
        }
        Err(diags) => {
            let in_injection = path.components().any(|c| c.as_os_str() == "injection");
            assert!(
                in_injection,
                "{} does not compile for {target}:\n{}",
                path.display(),
                diags.iter().map(Diagnostic::render).collect::<String>()
            );
            None
        }
    }
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false)
}

/// `unshare -n` (root) or `unshare -rn` (unprivileged: a user namespace owns the netns).
fn unshare_net() -> Command {
    let mut cmd = Command::new("unshare");
    cmd.arg(if is_root() { "-n" } else { "-rn" });
    cmd
}

// ------------------------------------------------------------------ squid

#[test]
fn squid_parses_every_fixture_config() {
    if !available("squid", &["-v"]) {
        return;
    }
    let dir = TempDir::new("validators-squid");
    let mut checked = 0;
    for path in manifests() {
        let Some(conf) = config(&path, "squid") else {
            continue;
        };
        let file = dir.write(
            &format!("{}.squid.conf", path.file_stem().unwrap().to_string_lossy()),
            &conf,
        );
        let out = Command::new("squid")
            .args(["-k", "parse", "-f"])
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let bad: Vec<&str> = stderr
            .lines()
            .filter(|l| {
                let lower = l.to_ascii_lowercase();
                lower.contains("warning")
                    || l.contains("FATAL")
                    || l.contains("Bungled")
                    || l.contains("ERROR")
            })
            .collect();
        assert!(
            out.status.success() && bad.is_empty(),
            "squid -k parse rejected the config of {}:\n{bad:#?}\n{conf}\n{}",
            path.display(),
            show(&out)
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} configs checked");
}

#[test]
fn squid_rejects_a_broken_config() {
    // The validator itself must be able to fail: an undefined ACL is FATAL.
    if !available("squid", &["-v"]) {
        return;
    }
    let dir = TempDir::new("validators-squid-bad");
    let file = dir.write(
        "bad.conf",
        "http_port 127.0.0.1:3128\nhttp_access allow capgate_nosuchacl\nhttp_access deny all\n",
    );
    let out = Command::new("squid")
        .args(["-k", "parse", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", show(&out));
}

// ------------------------------------------------------------------ nftables

#[test]
fn nft_checks_every_fixture_ruleset() {
    if !available("nft", &["--version"]) || !available("unshare", &["--version"]) {
        return;
    }
    let dir = TempDir::new("validators-nft");
    let mut checked = 0;
    for path in manifests() {
        let Some(rules) = config(&path, "nftables") else {
            continue;
        };
        let file = dir.write(
            &format!("{}.nft", path.file_stem().unwrap().to_string_lossy()),
            &rules,
        );
        let out = unshare_net()
            .args(["nft", "-c", "-f"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nft -c rejected the ruleset of {}:\n{rules}\n{}",
            path.display(),
            show(&out)
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} rulesets checked");
}

#[test]
fn nft_rejects_a_broken_ruleset() {
    if !available("nft", &["--version"]) || !available("unshare", &["--version"]) {
        return;
    }
    let dir = TempDir::new("validators-nft-bad");
    let file = dir.write(
        "bad.nft",
        "table inet capgate_bad {\n  chain egress {\n    type filter hook output priority 0; policy drop;\n    ip daddr 10.0.0.1 tcp dport 99999 accept\n  }\n}\n",
    );
    let out = unshare_net()
        .args(["nft", "-c", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", show(&out));
}

#[test]
fn nft_rulesets_load_twice_into_a_private_netns() {
    // DEV-NFT-IDEMPOTENT: loading the same file twice leaves one table with one copy of the
    // rules. Runs in a network namespace created for this command only, so the host's
    // ruleset is never touched.
    if !available("nft", &["--version"]) || !available("unshare", &["--version"]) {
        return;
    }
    let dir = TempDir::new("validators-nft-load");
    for name in ["egress-mix", "database", "github", "empty"] {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/manifests/{name}.json"));
        if !path.exists() {
            continue;
        }
        let Some(rules) = config(&path, "nftables") else {
            continue;
        };
        let file = dir.write(&format!("{name}.nft"), &rules);
        let f = file.display();
        let script = format!("nft -f '{f}' && nft -f '{f}' && nft list ruleset");
        let out = unshare_net().args(["sh", "-c", &script]).output().unwrap();
        assert!(
            out.status.success(),
            "{name}: loading twice failed:\n{}",
            show(&out)
        );
        let listed = String::from_utf8_lossy(&out.stdout);
        assert_eq!(listed.matches("table inet ").count(), 1, "{name}: {listed}");
        let accepts_file = rules
            .lines()
            .filter(|l| l.trim_end().ends_with(" accept"))
            .count();
        let accepts_loaded = listed
            .lines()
            .filter(|l| l.trim_end().ends_with(" accept"))
            .count();
        assert_eq!(
            accepts_loaded, accepts_file,
            "{name}: rules duplicated after a second load:\n{listed}"
        );
        assert!(listed.contains("policy drop"), "{name}: {listed}");
    }
}

// ------------------------------------------------------------------ srt

/// The installed sandbox-runtime package (.ci/run: npm -g --prefix $CAPGATE_MCP_PREFIX/npm).
fn srt_package() -> PathBuf {
    PathBuf::from(std::env::var("CAPGATE_MCP_PREFIX").unwrap_or_else(|_| "/opt/capgate-mcp".into()))
        .join("npm/lib/node_modules/@anthropic-ai/sandbox-runtime")
}

/// node and the package, or a loud skip (a failure under `CI=true`).
fn srt_available() -> bool {
    if !available("node", &["--version"]) {
        return false;
    }
    let pkg = srt_package();
    let found = pkg.join("package.json").exists();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "sandbox-runtime is required in CI (CI=true) at {}",
            pkg.display()
        );
        eprintln!(
            "\n!!! SKIPPED: sandbox-runtime is not installed at {}; see .ci/run\n",
            pkg.display()
        );
    }
    found
}

/// One line per file of tests/data/srt/validate-settings.mjs.
fn srt_validate(files: &[PathBuf]) -> (Output, Vec<serde_json::Value>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/srt/validate-settings.mjs");
    let out = Command::new("node")
        .arg(&script)
        .arg(srt_package())
        .args(files)
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{}", show(&out))))
        .collect();
    (out, lines)
}

#[test]
fn srt_schema_accepts_every_fixture_settings() {
    // Strict compiles of the fixtures: none is refused (every fact kind has a
    // srt rule), and what srt cannot grant is in unenforceable[]: exactly the
    // `net:connect:*` and `ipc:` capabilities and writable paths without a
    // glob inside a read-only declared directory (fails closed; see
    // docs/targets/srt.md). The permissive compiles of every other manifest
    // are validated too.
    if !srt_available() {
        return;
    }
    let dir = TempDir::new("validators-srt");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let compiler = Compiler::new(&Assets::default(), "srt").unwrap();
    let mut files = Vec::new();
    let mut strict = 0;
    for path in manifests() {
        let fixture = path.parent() == Some(&root.join("fixtures/manifests"));
        let conf = if fixture {
            let bytes = std::fs::read(&path).unwrap();
            let settings = Settings {
                permissive: false,
                set: vec![],
            };
            // puppeteer's writable /tmp holds srt's default socket_dir (OPTION_IN_WRITABLE).
            let Some(out) = common::compile_unless_refused(
                &compiler,
                "srt",
                &path.display().to_string(),
                &bytes,
                &settings,
            ) else {
                continue;
            };
            let artifact: serde_json::Value =
                serde_json::from_str(&out.artifact.to_json(false)).unwrap();
            let manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let declared = manifest["serverCapabilities"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(
                    manifest["tools"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|t| t["capabilities"].as_array().into_iter().flatten()),
                )
                .filter_map(|c| c.as_str())
                .map(str::to_owned);
            let declared: Vec<String> = declared.collect();
            // fs capabilities as (writable, base path, has a glob).
            let fs: Vec<(bool, &str, bool)> = declared
                .iter()
                .filter_map(|c| c.strip_prefix("fs:")?.split_once(':'))
                .map(|(actions, path)| {
                    let base = path.trim_end_matches("/**").trim_end_matches("/*");
                    let writable = actions.split(',').any(|a| a != "read");
                    (writable, base, base != path)
                })
                .collect();
            let below = |p: &str, dir: &str| {
                p.len() > dir.len() && p.starts_with(dir) && p.as_bytes()[dir.len()] == b'/'
            };
            // A writable path without a glob inside a read-only declared
            // directory and inside no writable one (srt.fs.write-under-readonly-path).
            let nested_file = |c: &str| {
                let Some((true, base, false)) = c
                    .strip_prefix("fs:")
                    .and_then(|r| r.split_once(':'))
                    .map(|(a, p)| (a.split(',').any(|a| a != "read"), p, p.ends_with('*')))
                else {
                    return false;
                };
                fs.iter().any(|(w, d, _)| !w && below(base, d))
                    && !fs.iter().any(|(w, d, _)| *w && below(base, d))
            };
            let mut want: Vec<String> = declared
                .iter()
                .filter(|c| {
                    c.starts_with("ipc:")
                        || *c == "net:connect:*"
                        || c.starts_with("net:connect:*:")
                        // srt.net.loopback-name: `localhost` and `*.localhost`.
                        || c.split(':').nth(2).is_some_and(|h| h == "localhost" || h == "*.localhost")
                        || nested_file(c)
                })
                .cloned()
                .collect();
            let mut got: Vec<String> = artifact["unenforceable"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|u| u["capabilities"].as_array().unwrap().clone())
                .map(|c| c["capability"].as_str().unwrap().to_owned())
                .collect();
            for v in [&mut want, &mut got] {
                v.sort();
                v.dedup();
            }
            assert_eq!(got, want, "{}: unenforceable capabilities", path.display());
            strict += 1;
            artifact["config"].as_str().unwrap().to_owned()
        } else {
            let Some(conf) = config(&path, "srt") else {
                continue;
            };
            conf
        };
        let name = format!(
            "{}-{}.srt-settings.json",
            path.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy(),
            path.file_stem().unwrap().to_string_lossy()
        );
        files.push(dir.write(&name, &conf));
    }
    assert!(strict >= 10, "only {strict} fixtures compiled strictly");
    let (out, lines) = srt_validate(&files);
    let bad: Vec<&serde_json::Value> = lines.iter().filter(|l| l["ok"] != true).collect();
    assert!(
        out.status.success() && bad.is_empty() && lines.len() == files.len(),
        "srt's schema rejected capgate's settings:\n{bad:#?}\n{}",
        show(&out)
    );
    assert_eq!(
        lines[0]["version"], "0.0.83",
        "the pinned sandbox-runtime version"
    );
}

#[test]
fn srt_schema_rejects_broken_settings() {
    // The validator itself must be able to fail: a `*` domain, an unbracketed
    // IPv6 literal, a single-label name and a key srt does not know (zod strips
    // it silently, which the validator reports as dropped).
    if !srt_available() {
        return;
    }
    let dir = TempDir::new("validators-srt-bad");
    let base = |network: &str| {
        format!(
            r#"{{"network":{{"allowedDomains":[{network}],"deniedDomains":[]}},
               "filesystem":{{"denyRead":[],"allowWrite":[],"denyWrite":[]}}}}"#
        )
    };
    let good = dir.write("good.json", &base(r#""api.example.com:443""#));
    let bad = [
        dir.write("star.json", &base(r#""*""#)),
        dir.write("ipv6.json", &base(r#""2001:db8::1""#)),
        dir.write("label.json", &base(r#""intranet""#)),
        dir.write(
            "unknown.json",
            &base(r#""a.example.com""#).replace(
                r#""deniedDomains""#,
                r#""allowAllDomains":true,"deniedDomains""#,
            ),
        ),
    ];
    let (_, lines) = srt_validate(&[good]);
    assert_eq!(lines[0]["ok"], true, "{lines:?}");
    let (out, lines) = srt_validate(&bad);
    assert!(!out.status.success(), "{}", show(&out));
    assert_eq!(lines.len(), bad.len(), "{}", show(&out));
    for l in &lines {
        assert_eq!(l["ok"], false, "{l}");
    }
    assert_eq!(
        lines[3]["dropped"],
        serde_json::json!(["network.allowAllDomains"])
    );

    // A name srt refuses compiles with a note, and srt refuses the whole file:
    // it starts nothing (fails closed).
    let manifest = br#"{"name":"s","version":"1.0.0","grammar":"0.0",
        "serverCapabilities":["net:connect:intranet:80"],"tools":[]}"#;
    let out = Compiler::new(&Assets::default(), "srt")
        .unwrap()
        .compile(
            "single-label.json",
            manifest,
            &Settings {
                permissive: false,
                set: vec![],
            },
        )
        .unwrap_or_else(|d| panic!("{d:?}"));
    let artifact: serde_json::Value = serde_json::from_str(&out.artifact.to_json(false)).unwrap();
    let noted = artifact["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n.as_str().unwrap().contains("srt refuses \"intranet\""));
    assert!(noted, "{}", artifact["notes"]);
    let file = dir.write("single-label.json", artifact["config"].as_str().unwrap());
    let (_, lines) = srt_validate(&[file]);
    assert_eq!(lines[0]["ok"], false, "{lines:?}");
}
