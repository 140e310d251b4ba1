//! `capgate lint`, `capgate completions` and `capgate man`.
//!
//! - The rule registry: ids unique and well formed, every rule documented in
//!   docs/lint.md and exercised by `fixtures/lint/<id>.fires.json` (every
//!   capability of a tool named `fires*` is flagged by the rule, nothing else is)
//!   and `fixtures/lint/<id>.clean.json` (near misses: the rule never fires).
//! - Other spellings of each risk, through the library.
//! - The binary: exit codes (`--deny`), stdout/stderr discipline, a manifest that
//!   does not compile is `compile`'s error, `--explain`, JSON and SARIF (the
//!   SARIF validated against the OASIS 2.1.0 schema with python3 `jsonschema`).
//! - Completion scripts parse (`bash -n`), the man page renders (`man -l`, groff).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use capgate::lint::{self, RULES};
use serde_json::Value;

mod common;
use common::capgate;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn lint_dir() -> PathBuf {
    root().join("fixtures/lint")
}

/// Whether CI demands every tool (`CI=true`).
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/local/bin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// Whether a test's external tool is there: a missing one fails under
/// `CI=true` and is otherwise skipped loudly.
fn require(test: &str, ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    let msg = format!("lint test `{test}` needs {what} — not available on this machine");
    if in_ci() {
        panic!("{msg} (CI=true: a missing tool is a failure, see .ci/run)");
    }
    let _ = writeln!(std::io::stderr(), "\n!!!!!!!! SKIPPED: {msg} !!!!!!!!\n");
    false
}

fn manifest(tools: &[(&str, &[&str])], server: &[&str]) -> Vec<u8> {
    let tools: Vec<Value> = tools
        .iter()
        .map(|(n, caps)| serde_json::json!({"name": n, "capabilities": caps}))
        .collect();
    serde_json::to_vec_pretty(&serde_json::json!({
        "name": "m", "version": "1", "serverCapabilities": server, "tools": tools,
    }))
    .unwrap()
}

/// `(rule, capability)` of every finding of a manifest built from one tool's capabilities.
fn findings_of(caps: &[&str]) -> Vec<(String, String)> {
    let bytes = manifest(&[("t", caps)], &[]);
    let report = lint::lint("m.json", &bytes).expect("the manifest compiles");
    report
        .findings
        .iter()
        .map(|f| (f.rule.to_owned(), f.capability.clone()))
        .collect()
}

fn fires(rule: &str, cap: &str) -> bool {
    findings_of(&[cap]).iter().any(|(r, _)| r == rule)
}

/// Line and column (1-based, in characters) of every occurrence of `needle`
/// in `text`, computed here rather than by capgate.
fn positions(text: &str, needle: &str) -> Vec<(usize, usize)> {
    text.match_indices(needle)
        .map(|(i, _)| {
            let before = &text[..i];
            let line = before.matches('\n').count() + 1;
            let col = before[before.rfind('\n').map_or(0, |n| n + 1)..]
                .chars()
                .count()
                + 1;
            (line, col)
        })
        .collect()
}

// ------------------------------------------------------------------ registry

#[test]
fn registry_ids_are_unique_well_formed_and_documented() {
    let doc = std::fs::read_to_string(root().join("docs/lint.md")).expect("docs/lint.md");
    let mut seen = BTreeSet::new();
    for r in RULES {
        assert!(seen.insert(r.id), "duplicate rule id {}", r.id);
        assert!(lint::valid_id(r.id), "malformed rule id {}", r.id);
        assert!(
            !r.summary.is_empty() && !r.summary.contains('\n'),
            "{}: the summary is one line",
            r.id
        );
        assert!(
            r.doc.contains("Why:") && r.doc.contains("Fix:"),
            "{}: the doc says why and how to fix",
            r.id
        );
        let heading = format!("\n## `{}`\n", r.id);
        let Some(at) = doc.find(&heading) else {
            panic!("docs/lint.md has no section {heading:?}");
        };
        let section = &doc[at + heading.len()..];
        let section = &section[..section.find("\n## ").unwrap_or(section.len())];
        for needed in [
            format!("Level: **{}**", r.level.as_str()),
            "Why".to_owned(),
            "Example".to_owned(),
            "Fix".to_owned(),
        ] {
            assert!(
                section.contains(&needed),
                "docs/lint.md section of {} lacks {needed:?}",
                r.id
            );
        }
    }
    // No section documents a rule that does not exist.
    for line in doc.lines() {
        if let Some(id) = line.strip_prefix("## `").and_then(|l| l.strip_suffix('`')) {
            assert!(
                lint::rule(id).is_some(),
                "docs/lint.md documents unknown rule {id}"
            );
        }
    }
}

#[test]
fn every_rule_has_a_firing_and_a_clean_fixture_and_no_fixture_is_stray() {
    let mut names = BTreeSet::new();
    for e in std::fs::read_dir(lint_dir()).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            names.insert(e.file_name().to_string_lossy().into_owned());
        }
    }
    for r in RULES {
        for kind in ["fires", "clean"] {
            assert!(
                names.remove(&format!("{}.{kind}.json", r.id)),
                "fixtures/lint/{}.{kind}.json is missing",
                r.id
            );
        }
    }
    assert!(names.is_empty(), "fixtures for no rule: {names:?}");
}

/// Every capability of a `fires*` tool is flagged by the rule, at the place
/// of its JSON string; no other capability is.
#[test]
fn firing_fixtures_flag_exactly_the_marked_capabilities_at_their_location() {
    for r in RULES {
        let path = lint_dir().join(format!("{}.fires.json", r.id));
        let text = std::fs::read_to_string(&path).unwrap();
        let json: Value = serde_json::from_str(&text).unwrap();
        let mut expected: BTreeMap<String, usize> = BTreeMap::new();
        for t in json["tools"].as_array().unwrap() {
            if t["name"].as_str().unwrap().starts_with("fires") {
                for c in t["capabilities"].as_array().unwrap() {
                    *expected.entry(c.as_str().unwrap().to_owned()).or_default() += 1;
                }
            }
        }
        assert!(!expected.is_empty(), "{}: the fixture marks nothing", r.id);
        let report = lint::lint("fixture.json", text.as_bytes())
            .unwrap_or_else(|d| panic!("{}: fixture does not compile: {d:?}", r.id));
        let mut got: BTreeMap<String, usize> = BTreeMap::new();
        for f in report.findings.iter().filter(|f| f.rule == r.id) {
            *got.entry(f.capability.clone()).or_default() += 1;
            assert_eq!(f.level, r.level, "{}: a finding has the rule's level", r.id);
            assert!(
                f.tool.as_deref().is_some_and(|t| t.starts_with("fires")),
                "{}: {} flagged outside a fires tool",
                r.id,
                f.capability
            );
            let quoted = serde_json::to_string(&f.capability).unwrap();
            let at = (f.location.line, f.location.column);
            assert!(
                positions(&text, &quoted).contains(&at),
                "{}: {} located at {at:?}, which is not where its string is",
                r.id,
                f.capability
            );
            assert_eq!(f.location.file, "fixture.json");
        }
        assert_eq!(got, expected, "{}: flagged vs marked capabilities", r.id);
    }
}

#[test]
fn clean_fixtures_never_fire_their_rule() {
    for r in RULES {
        let path = lint_dir().join(format!("{}.clean.json", r.id));
        let text = std::fs::read(&path).unwrap();
        let report = lint::lint("fixture.json", &text)
            .unwrap_or_else(|d| panic!("{}: fixture does not compile: {d:?}", r.id));
        let hits: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.rule == r.id)
            .map(|f| &f.capability)
            .collect();
        assert!(hits.is_empty(), "{}: clean fixture flagged {hits:?}", r.id);
    }
}

// ------------------------------------------------------------ other spellings

#[test]
fn spellings_of_broad_and_credential_paths() {
    // The whole home, by each way capgate spells it.
    for cap in [
        "fs:read:/home",
        "fs:read:/home/*",
        "fs:read:/root/**",
        "fs:read:/home/u/*",
        "fs:read,write:/Users/u/**",
        "fs:read:/usr",
    ] {
        assert!(fires("fs-broad-grant", cap), "{cap}");
    }
    // Credentials under every home spelling and at every depth, including
    // a directory above the store that is still inside the home.
    for cap in [
        "fs:read:/root/.ssh",
        "fs:read:/root/.ssh/*",
        "fs:read:/home/u/.ssh/id_rsa",
        "fs:read:/Users/u/.aws/**",
        "fs:read:/home/u/.config",
        "fs:read:/home/u/.config/*",
        "fs:read:/home/u/.kube/config",
        "fs:read:/home/u/.docker/**",
        "fs:read:/home/u/.config/gcloud/application_default_credentials.json",
        "fs:read:/var/run/secrets/**",
    ] {
        assert!(fires("fs-credentials", cap), "{cap}");
    }
    // Names that only look alike.
    for cap in [
        "fs:read:/home/u/.ssh-keys-docs/**",
        "fs:read:/home/u/ssh/**",
        "fs:read:/srv/home/u/.ssh/**",
        "fs:read:/home/u/.configs/**",
    ] {
        assert!(!fires("fs-credentials", cap), "{cap}");
    }
}

#[test]
fn spellings_of_writes_into_code() {
    for cap in [
        "fs:create:/usr/local/lib/**",
        "fs:delete:/etc/app.conf",
        "fs:read,create:/home/u/.zshrc",
        "fs:write:/root/**",
        "fs:write:/work/a/b/.git/config",
        "fs:write:/opt",
    ] {
        assert!(fires("fs-write-code", cap), "{cap}");
    }
    for cap in [
        "fs:read:/etc/app.conf",
        "fs:write:/work/.gitkeep",
        "fs:write:/work/git/**",
        "fs:write:/home/u/.cache/**",
    ] {
        assert!(!fires("fs-write-code", cap), "{cap}");
    }
}

#[test]
fn spellings_of_wildcard_egress() {
    for cap in [
        "net:connect:*:80",
        "net:connect:*.org:443",
        "net:connect:*.com.au:443",
        "net:connect:*.herokuapp.com:443",
        "net:connect:*.s3.amazonaws.com:443",
        "net:connect:*.ck",
        "net:connect:*.foo.ck",
    ] {
        assert!(fires("net-wildcard-egress", cap), "{cap}");
    }
    for cap in [
        "net:connect:*.www.ck",
        "net:connect:*.example.org:443",
        "net:connect:*.sub.example.com.au:443",
        "net:connect:com:443",
    ] {
        assert!(!fires("net-wildcard-egress", cap), "{cap}");
    }
}

#[test]
fn spellings_of_metadata_and_private_addresses() {
    // Metadata: an error, not also a private-address warning.
    for cap in [
        "net:connect:\"fd00:ec2:0:0:0:0:0:254\":80",
        "net:connect:\"fd00:ec2::0254\":80",
        "net:connect:169.254.169.254:443",
    ] {
        let f = findings_of(&[cap]);
        assert!(
            f.iter().any(|(r, _)| r == "net-metadata-endpoint"),
            "{cap}: {f:?}"
        );
        assert!(
            !f.iter().any(|(r, _)| r == "net-private-address"),
            "{cap}: {f:?}"
        );
    }
    for cap in [
        "net:connect:127.0.0.53:53",
        "net:connect:\"fe80::1\":80",
        "net:connect:\"fec0::1\":80",
        "net:connect:api.localhost:80",
        "net:connect:*.internal:443",
    ] {
        assert!(fires("net-private-address", cap), "{cap}");
    }
}

#[test]
fn spellings_of_secrets_nested_sandbox_and_system_bus() {
    for cap in [
        "env:inject,read:SLACK_BOT_TOKEN",
        "env:read:PGPASSWORD",
        "env:read:AZURE_CLIENT_SECRET",
        "env:read:GOOGLE_APPLICATION_CREDENTIALS",
        "env:read:PRIVATE_KEY_PEM",
    ] {
        assert!(fires("env-secret-read", cap), "{cap}");
    }
    for cap in [
        "env:inject:SLACK_BOT_TOKEN",
        "env:read:HOME_DIR",
        "env:read:PATCH_LEVEL",
    ] {
        assert!(!fires("env-secret-read", cap), "{cap}");
    }
    assert!(fires(
        "exec-nested-sandbox",
        "exec:spawn:node?nestedSandbox=true"
    ));
    for cap in [
        "ipc:connect:\"dbus:system\"",
        "ipc:connect:\"unix:/run/dbus/system_bus_socket\"",
        "fs:read:/var/run/dbus/system_bus_socket",
        "fs:read,write:/run/dbus/system_bus_socket",
    ] {
        assert!(fires("ipc-system-bus", cap), "{cap}");
    }
}

#[test]
fn duplicates_and_subsumption_within_one_list() {
    // The later of two equal spellings is the duplicate, pointing at the first.
    let bytes = manifest(
        &[(
            "t",
            &[
                "fs:read,write:/w/**",
                "fs:write,read:/w/**",
                "net:connect:a.example.com:443",
                "net:connect:a.example.com",
                "env:read:A_MODE",
                "env:read,inject:A_MODE",
                "exec:spawn:git?nestedSandbox=false",
                "exec:spawn:git",
            ],
        )],
        &[],
    );
    let report = lint::lint("m.json", &bytes).unwrap();
    let got: Vec<(&str, usize, Option<usize>)> = report
        .findings
        .iter()
        .filter(|f| f.rule.starts_with("cap-"))
        .map(|f| {
            (
                f.rule,
                f.capability_index,
                f.related.as_ref().map(|r| r.capability_index),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("cap-duplicate", 1, Some(0)),
            ("cap-subsumed", 2, Some(3)),
            ("cap-subsumed", 4, Some(5)),
            ("cap-duplicate", 7, Some(6)),
        ]
    );
}

// ------------------------------------------------------------------ binary

#[test]
fn exit_codes_follow_deny() {
    let warn = lint_dir().join("env-secret-read.fires.json");
    let err = lint_dir().join("fs-credentials.fires.json");
    let note = lint_dir().join("cap-duplicate.fires.json");
    let clean = root().join("fixtures/manifests/github.json");
    let p = |p: &Path| p.display().to_string();
    for (file, deny, code) in [
        (&err, None, 1),
        (&warn, None, 0),
        (&warn, Some("warning"), 1),
        (&warn, Some("error"), 0),
        (&note, None, 0),
        (&note, Some("warning"), 0),
        (&note, Some("note"), 1),
        (&clean, Some("note"), 0),
    ] {
        let mut args = vec!["lint".to_owned(), p(file)];
        if let Some(d) = deny {
            args.extend(["--deny".to_owned(), d.to_owned()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = capgate(&args, None);
        assert_eq!(r.code, code, "{args:?}: {}", r.stderr);
        assert!(r.stderr.is_empty(), "{args:?}: findings go to stdout");
    }
    let r = capgate(&["lint", "x.json", "--deny", "fatal"], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.starts_with("capgate: USAGE:"), "{}", r.stderr);
}

#[test]
fn a_manifest_that_does_not_compile_is_compiles_error_and_stdout_stays_empty() {
    for bad in [
        "fixtures/errors/cap-fs-glob.json",
        "fixtures/errors/cap-env-dangerous.json",
        "no/such/manifest.json",
    ] {
        let c = capgate(&["compile", bad, "--target", "bwrap"], None);
        let l = capgate(&["lint", bad], None);
        assert!(c.code == 3 || c.code == 4, "{bad}: {}", c.stderr);
        assert_eq!(l.code, c.code, "{bad}");
        assert_eq!(l.stderr, c.stderr, "{bad}: same diagnostics as compile");
        assert!(l.stdout.is_empty(), "{bad}: stdout empty on failure");
        // With good manifests beside it, still a failure with empty stdout.
        let l = capgate(
            &[
                "lint",
                "fixtures/lint/fs-credentials.fires.json",
                bad,
                "--format",
                "sarif",
            ],
            None,
        );
        assert_eq!(l.code, c.code, "{bad}");
        assert!(l.stdout.is_empty(), "{bad}");
    }
    let j = capgate(
        &[
            "lint",
            "fixtures/errors/cap-fs-glob.json",
            "--error-format",
            "json",
        ],
        None,
    );
    let diags: Value = serde_json::from_str(&j.stderr).unwrap();
    assert_eq!(diags[0]["code"], "CAP_FS_GLOB");
}

#[test]
fn stdin_and_text_output() {
    let bytes = manifest(&[("t", &["fs:read:/root/.ssh/**"])], &[]);
    let r = capgate(&["lint", "-"], Some(&bytes));
    assert_eq!(r.code, 1, "{}", r.stderr);
    let text = String::from_utf8(bytes).unwrap();
    let (line, col) = positions(&text, "\"fs:read:/root/.ssh/**\"")[0];
    assert!(r.stdout.contains("error[fs-credentials]: "), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "  --> <stdin>:{line}:{col}: tool \"t\", capability 0\n"
        )),
        "{}",
        r.stdout
    );
    assert!(r
        .stdout
        .ends_with("1 error(s), 0 warning(s), 0 note(s) in 1 manifest(s)\n"));
    let r = capgate(&["lint", "-", "-"], Some(b"{}"));
    assert_eq!(r.code, 2);
}

#[test]
fn json_output_counts_match_findings() {
    let r = capgate(
        &[
            "lint",
            "fixtures/lint/net-private-address.fires.json",
            "fixtures/lint/cap-subsumed.fires.json",
            "fixtures/lint/fs-broad-grant.fires.json",
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(r.code, 1);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let findings = v["findings"].as_array().unwrap();
    for level in ["error", "warning", "note"] {
        let n = findings.iter().filter(|f| f["level"] == level).count();
        assert_eq!(v["summary"][level], n, "{level}");
    }
    assert_eq!(v["manifests"].as_array().unwrap().len(), 3);
    for f in findings {
        let rule = lint::rule(f["rule"].as_str().unwrap()).expect("known rule");
        assert_eq!(f["level"], rule.level.as_str());
        let loc = &f["location"];
        assert!(loc["line"].as_u64().unwrap() >= 1 && loc["column"].as_u64().unwrap() >= 1);
    }
}

#[test]
fn explain_prints_a_rule_and_refuses_unknown_ids() {
    for r in RULES {
        let out = capgate(&["lint", "--explain", r.id], None);
        assert_eq!(out.code, 0);
        assert!(out
            .stdout
            .starts_with(&format!("{}  ({})\n", r.id, r.level.as_str())));
        assert!(out.stdout.contains(r.summary));
        let j = capgate(&["lint", "--explain", r.id, "--format", "json"], None);
        let v: Value = serde_json::from_str(&j.stdout).unwrap();
        assert_eq!(v["id"], r.id);
    }
    let out = capgate(&["lint", "--explain", "fs-everything"], None);
    assert_eq!(out.code, 2);
    assert!(out.stdout.is_empty());
    assert!(out
        .stderr
        .starts_with("capgate: OPTION_INVALID: no lint rule with id \"fs-everything\""));
    let out = capgate(&["lint", "--explain", "fs-credentials", "m.json"], None);
    assert_eq!(out.code, 2, "--explain takes no manifest");
}

#[test]
fn lint_never_crashes_on_any_fixture() {
    let mut files = Vec::new();
    for dir in [
        "fixtures/manifests",
        "fixtures/errors",
        "fixtures/injection",
        "fixtures/lint",
    ] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                files.push(p);
            }
        }
    }
    assert!(files.len() > 40);
    for p in files {
        let s = p.display().to_string();
        for format in ["text", "json", "sarif"] {
            let r = capgate(&["lint", &s, "--format", format], None);
            assert!([0, 1, 3, 4].contains(&r.code), "{s}: exit {}", r.code);
            assert_eq!(r.stdout.is_empty(), r.code > 1, "{s}: {}", r.stderr);
        }
    }
}

// ------------------------------------------------------------------ SARIF

fn sarif_of(files: &[&str]) -> (String, Value) {
    let mut args = vec!["lint"];
    args.extend(files);
    args.extend(["--format", "sarif"]);
    let r = capgate(&args, None);
    assert!(r.code <= 1, "{}", r.stderr);
    let v = serde_json::from_str(&r.stdout).unwrap();
    (r.stdout, v)
}

/// The schema: fixtures/lint/schema/sarif-schema-2.1.0.json (OASIS SARIF 2.1.0, via the serde-sarif 0.8.0 crate; provenance in fixtures/lint/schema/README.md).
#[test]
fn sarif_validates_against_the_oasis_schema() {
    let python = which("python3").is_some()
        && Command::new("python3")
            .args(["-c", "import jsonschema"])
            .status()
            .is_ok_and(|s| s.success());
    if !require(
        "sarif_validates_against_the_oasis_schema",
        python,
        "python3 with jsonschema (Debian: python3-jsonschema)",
    ) {
        return;
    }
    let all: Vec<String> = RULES
        .iter()
        .map(|r| format!("fixtures/lint/{}.fires.json", r.id))
        .collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let empty = ["fixtures/manifests/github.json"];
    for files in [&all[..], &empty[..]] {
        let (text, _) = sarif_of(files);
        let dir = std::env::temp_dir().join(format!("capgate-lint-sarif-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("out.sarif");
        std::fs::write(&log, &text).unwrap();
        let script = "import json,sys,jsonschema\n\
            schema=json.load(open(sys.argv[1]))\n\
            log=json.load(open(sys.argv[2]))\n\
            v=jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)\n\
            errs=sorted(v.iter_errors(log), key=str)\n\
            [print(e.json_path, e.message) for e in errs]\n\
            sys.exit(1 if errs else 0)\n";
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(root().join("fixtures/lint/schema/sarif-schema-2.1.0.json"))
            .arg(&log)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            out.status.success(),
            "SARIF does not validate:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The validator is not a no-op: a log without `version` is refused.
    let (text, mut v) = sarif_of(&empty);
    assert!(!text.is_empty());
    v.as_object_mut().unwrap().remove("version");
    let broken =
        std::env::temp_dir().join(format!("capgate-lint-broken-{}.sarif", std::process::id()));
    std::fs::write(&broken, v.to_string()).unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1])))",
        ])
        .arg(root().join("fixtures/lint/schema/sarif-schema-2.1.0.json"))
        .arg(&broken)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&broken);
    assert!(
        !out.status.success(),
        "the schema check must reject a log without version"
    );
}

#[test]
fn sarif_results_point_at_the_findings() {
    let files = [
        "fixtures/lint/cap-subsumed.fires.json",
        "fixtures/lint/net-wildcard-egress.fires.json",
    ];
    let (_, sarif) = sarif_of(&files);
    let json = capgate(&["lint", files[0], files[1], "--format", "json"], None);
    let json: Value = serde_json::from_str(&json.stdout).unwrap();
    let run = &sarif["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), RULES.len());
    let results = run["results"].as_array().unwrap();
    let findings = json["findings"].as_array().unwrap();
    assert_eq!(results.len(), findings.len());
    for (res, f) in results.iter().zip(findings) {
        let idx = res["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[idx]["id"], res["ruleId"]);
        assert_eq!(res["ruleId"], f["rule"]);
        assert_eq!(res["level"], f["level"]);
        let loc = &res["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], f["location"]["file"]);
        assert_eq!(loc["region"]["startLine"], f["location"]["line"]);
        assert_eq!(loc["region"]["startColumn"], f["location"]["column"]);
        assert_eq!(res["relatedLocations"].is_array(), !f["related"].is_null());
    }
    assert_eq!(run["columnKind"], "unicodeCodePoints");
}

// ------------------------------------------------------------ snapshots

#[test]
fn snapshots_of_each_format() {
    let files = [
        "fixtures/manifests/puppeteer.json",
        "fixtures/manifests/desktop.json",
    ];
    for format in ["text", "json", "sarif"] {
        let r = capgate(&["lint", files[0], files[1], "--format", format], None);
        insta::assert_snapshot!(format!("lint-{format}"), r.stdout);
    }
    let r = capgate(&["lint", "--explain", "fs-credentials"], None);
    insta::assert_snapshot!("lint-explain", r.stdout);
}

// ------------------------------------------------------ completions and man

#[test]
fn completion_scripts_are_generated_and_bash_parses() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let r = capgate(&["completions", shell], None);
        assert_eq!(r.code, 0, "{shell}: {}", r.stderr);
        for word in ["compile", "lint", "--deny", "completions"] {
            assert!(r.stdout.contains(word), "{shell} script lacks {word}");
        }
    }
    let r = capgate(&["completions", "tcsh"], None);
    assert_eq!(r.code, 2);
    if !require(
        "completion_scripts_are_generated_and_bash_parses",
        which("bash").is_some(),
        "`bash`",
    ) {
        return;
    }
    let script = capgate(&["completions", "bash"], None).stdout;
    for (check, input) in [
        ("-n", script.clone()),
        ("-n", format!("{script}\nif then fi\n")),
    ] {
        let mut child = Command::new("bash")
            .args([check])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        // The generated script parses; a broken one is refused (the check can fail).
        assert_eq!(
            out.status.success(),
            !input.ends_with("if then fi\n"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Sourcing it registers the completion function.
    let out = Command::new("bash")
        .args(["-c", "source /dev/stdin; complete -p capgate"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(script.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("capgate"));
}

#[test]
fn man_page_renders() {
    let r = capgate(&["man"], None);
    assert_eq!(r.code, 0);
    for section in [
        ".TH capgate 1",
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH DESCRIPTION",
        ".SH SUBCOMMANDS",
    ] {
        assert!(r.stdout.contains(section), "man page lacks {section}");
    }
    for cmd in ["compile", "explain", "lint", "completions", "man"] {
        assert!(
            r.stdout.contains(&format!("capgate\\-{cmd}")),
            "man page lacks {cmd}"
        );
    }
    let groff = which("groff").is_some();
    if !require("man_page_renders", groff, "`groff` (Debian: groff-base)") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("capgate-man-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("capgate.1");
    std::fs::write(&page, &r.stdout).unwrap();
    let out = Command::new("groff")
        .args(["-man", "-Tascii", "-P-cbou", "-ww"])
        .arg(&page)
        .output()
        .unwrap();
    let rendered = String::from_utf8_lossy(&out.stdout).into_owned();
    let warnings = String::from_utf8_lossy(&out.stderr).into_owned();
    if which("man").is_some() {
        let man = Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        assert!(
            man.status.success(),
            "{}",
            String::from_utf8_lossy(&man.stderr)
        );
        assert!(String::from_utf8_lossy(&man.stdout).contains("SYNOPSIS"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success());
    assert!(warnings.trim().is_empty(), "groff warns: {warnings}");
    for heading in ["NAME", "SYNOPSIS", "DESCRIPTION", "SUBCOMMANDS"] {
        assert!(rendered.contains(heading), "rendered page lacks {heading}");
    }
}

// ------------------------------------------- redundancy: differential check

/// The documented meaning of cap-duplicate and cap-subsumed, pairwise and
/// written independently of `src/lint/redundant.rs` (which is indexed).
mod naive {
    use capgate::capability::{Capability, ClockSource, FsActions, Glob, Host};

    pub struct Cap {
        pub list: Option<usize>,
        pub cap: Capability,
    }

    fn closure(a: FsActions) -> Vec<&'static str> {
        a.closure().names()
    }

    fn same_grant(a: &Capability, b: &Capability) -> bool {
        match (a, b) {
            (
                Capability::Fs {
                    actions: x,
                    path: p,
                },
                Capability::Fs {
                    actions: y,
                    path: q,
                },
            ) => closure(*x) == closure(*y) && p == q,
            _ => a == b,
        }
    }

    fn segs(p: &str) -> Vec<&str> {
        p.split('/').filter(|s| !s.is_empty()).collect()
    }

    fn covers(w: &Capability, n: &Capability) -> bool {
        if same_grant(w, n) {
            return false;
        }
        match (w, n) {
            (
                Capability::Fs {
                    actions: wa,
                    path: wp,
                },
                Capability::Fs {
                    actions: na,
                    path: np,
                },
            ) => {
                let (wa, na) = (closure(*wa), closure(*na));
                if !na.iter().all(|a| wa.contains(a)) {
                    return false;
                }
                let (ws, ns) = (segs(wp.path.as_str()), segs(np.path.as_str()));
                if ws == ns {
                    wp.glob == Glob::Recursive
                        || (wp.glob == Glob::None)
                        || (wp.glob == Glob::Children && np.glob == Glob::Children)
                } else if ns.len() > ws.len() && ns[..ws.len()] == ws[..] {
                    match wp.glob {
                        Glob::Recursive | Glob::None => true,
                        Glob::Children => ns.len() == ws.len() + 1 && np.glob == Glob::None,
                    }
                } else {
                    false
                }
            }
            (Capability::Net { host: wh, port: wp }, Capability::Net { host: nh, port: np }) => {
                let port_ok = wp.is_none() || wp == np;
                let host_ok = match (wh, nh) {
                    (Host::Any, Host::V4(a)) => !capgate::ir::is_special((*a).into()),
                    (Host::Any, Host::V6(a)) => !capgate::ir::is_special((*a).into()),
                    (Host::Any, _) => true,
                    (Host::Wildcard(b), Host::Name(x) | Host::Wildcard(x)) => {
                        let (b, x) = (b.as_str(), x.as_str());
                        x.len() > b.len() + 1
                            && x.ends_with(b)
                            && x.as_bytes()[x.len() - b.len() - 1] == b'.'
                    }
                    (a, b) => a == b,
                };
                port_ok && host_ok
            }
            (
                Capability::Env {
                    actions: wa,
                    name: wn,
                },
                Capability::Env {
                    actions: na,
                    name: nn,
                },
            ) => wn == nn && (wa.read || !na.read) && (wa.inject || !na.inject),
            (
                Capability::Exec {
                    binary: wb,
                    nested_sandbox: wn,
                },
                Capability::Exec {
                    binary: nb,
                    nested_sandbox: nn,
                },
            ) => wb == nb && (*wn || !*nn),
            (Capability::Clock { source: ws }, Capability::Clock { source: ns }) => {
                *ws == ClockSource::Tzdata || ws == ns
            }
            _ => false,
        }
    }

    fn comparable(a: &Cap, b: &Cap) -> bool {
        a.list == b.list || b.list.is_none()
    }

    /// Indices (in `caps` order) of duplicates and of subsumed capabilities.
    pub fn expected(caps: &[Cap]) -> (Vec<usize>, Vec<usize>) {
        let mut dup = Vec::new();
        let mut sub = Vec::new();
        for (i, a) in caps.iter().enumerate() {
            if matches!(a.cap, Capability::Assert { .. }) {
                continue;
            }
            let is_dup = caps.iter().enumerate().any(|(j, b)| {
                j != i
                    && comparable(a, b)
                    && same_grant(&a.cap, &b.cap)
                    && (a.list != b.list || j < i)
            });
            if is_dup {
                dup.push(i);
            } else if caps
                .iter()
                .any(|b| comparable(a, b) && covers(&b.cap, &a.cap))
            {
                sub.push(i);
            }
        }
        (dup, sub)
    }
}

/// A small deterministic generator (xorshift), so the test needs no seed file.
struct Rng(u64);
impl Rng {
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        xs[(self.0 % xs.len() as u64) as usize]
    }
}

#[test]
fn indexed_redundancy_matches_the_pairwise_definition() {
    let actions = [
        "read",
        "write",
        "create",
        "delete",
        "read,write",
        "write,read",
        "read,create",
    ];
    let paths = ["/a", "/a/b", "/a/b/c", "/a/bc", "/a-b", "/d", "/d/e"];
    let globs = ["", "/*", "/**"];
    let hosts = [
        "*",
        "*.x.com",
        "*.com",
        "a.x.com",
        "x.com",
        "b.a.x.com",
        "*.a.x.com",
        "8.8.8.8",
        "10.0.0.1",
    ];
    let ports = ["", ":443", ":80"];
    let others = [
        "env:read:A_MODE",
        "env:inject:A_MODE",
        "env:read,inject:A_MODE",
        "exec:spawn:git",
        "exec:spawn:git?nestedSandbox=true",
        "clock:system",
        "clock:tzdata",
        "assert:a.b:why",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut compared = 0;
    for round in 0..300 {
        let tools = 1 + round % 3;
        let mut lists: Vec<Vec<String>> = vec![Vec::new(); tools + 1];
        for list in lists.iter_mut() {
            for _ in 0..(round % 7) {
                let cap = match rng.pick(&["fs", "fs", "net", "net", "other"]) {
                    "fs" => format!(
                        "fs:{}:{}{}",
                        rng.pick(&actions),
                        rng.pick(&paths),
                        rng.pick(&globs)
                    ),
                    "net" => format!("net:connect:{}{}", rng.pick(&hosts), rng.pick(&ports)),
                    _ => rng.pick(&others).to_owned(),
                };
                list.push(cap);
            }
        }
        let server: Vec<&str> = lists[0].iter().map(String::as_str).collect();
        let tool_caps: Vec<Vec<&str>> = lists[1..]
            .iter()
            .map(|l| l.iter().map(String::as_str).collect())
            .collect();
        let names: Vec<String> = (0..tools).map(|i| format!("t{i}")).collect();
        let tool_refs: Vec<(&str, &[&str])> = names
            .iter()
            .zip(&tool_caps)
            .map(|(n, c)| (n.as_str(), c.as_slice()))
            .collect();
        let bytes = manifest(&tool_refs, &server);
        let report = lint::lint("m.json", &bytes).expect("generated manifests compile");
        // Declaration order: serverCapabilities, then each tool's.
        let mut caps = Vec::new();
        let mut places = Vec::new();
        for (li, list) in lists.iter().enumerate() {
            for (i, c) in list.iter().enumerate() {
                caps.push(naive::Cap {
                    list: li.checked_sub(1),
                    cap: capgate::syntax::parse_capability(c).unwrap(),
                });
                places.push((li.checked_sub(1).map(|t| format!("t{t}")), i));
            }
        }
        let (dup, sub) = naive::expected(&caps);
        let got = |rule: &str| -> Vec<usize> {
            let mut v: Vec<usize> = report
                .findings
                .iter()
                .filter(|f| f.rule == rule)
                .map(|f| {
                    places
                        .iter()
                        .position(|p| p.0 == f.tool && p.1 == f.capability_index)
                        .unwrap()
                })
                .collect();
            v.sort_unstable();
            v
        };
        let show = |ix: &[usize]| -> Vec<String> {
            ix.iter()
                .map(|&i| {
                    format!(
                        "{:?}:{}",
                        places[i].0,
                        lists[caps[i].list.map_or(0, |t| t + 1)][places[i].1]
                    )
                })
                .collect()
        };
        assert_eq!(
            show(&got("cap-duplicate")),
            show(&dup),
            "round {round}: duplicates of {lists:?}"
        );
        assert_eq!(
            show(&got("cap-subsumed")),
            show(&sub),
            "round {round}: subsumed in {lists:?}"
        );
        compared += caps.len();
    }
    assert!(
        compared > 1000,
        "the generator produced {compared} capabilities"
    );
}
