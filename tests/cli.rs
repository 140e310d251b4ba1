//! The `capgate` binary: exit codes, stderr/stdout discipline, input from stdin, output
//! formatting, the reference's `--target egress` spelling, `--set`, `--help`; and
//! docs/errors.md covering every error code. The deviation ids (`DEV-...`) refer to
//! `docs/compatibility.md`.

use std::path::Path;
use std::process::{Command, Stdio};

use capgate::diag::Code;
use serde_json::Value;

mod common;
use common::{capgate, Run};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> String {
    root()
        .join("fixtures/manifests")
        .join(name)
        .display()
        .to_string()
}

/// A failing run: the exit code, nothing on stdout, and (for capgate's own diagnostics)
/// stderr starting with `capgate: <CODE>:`.
fn assert_fails(run: &Run, code: i32, diag: Option<&str>, what: &str) {
    assert_eq!(run.code, code, "{what}: stderr:\n{}", run.stderr);
    assert!(
        run.stdout.is_empty(),
        "{what}: stdout must be empty on failure, got:\n{}",
        run.stdout
    );
    assert!(!run.stderr.is_empty(), "{what}: stderr is empty");
    if let Some(diag) = diag {
        assert!(
            run.stderr.starts_with(&format!("capgate: {diag}: ")),
            "{what}: stderr must start with `capgate: {diag}: `, got:\n{}",
            run.stderr
        );
    }
}

fn json(run: &Run) -> Value {
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", run.stdout))
}

fn manifest(caps: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "name": "srv", "version": "1", "tools": [{"name": "t", "capabilities": caps}]
    }))
    .unwrap()
}

// ------------------------------------------------------------------ exit codes

#[test]
fn exit_codes() {
    // DEV-CLI-EXIT-CODES
    let github = fixture("github.json");
    let ok = capgate(&["compile", &github, "--target", "bwrap"], None);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(
        ok.stderr.is_empty(),
        "nothing on stderr on success: {}",
        ok.stderr
    );

    assert_fails(
        &capgate(&["compile", &github, "--target", "nope"], None),
        2,
        Some("TARGET_UNKNOWN"),
        "unknown target",
    );
    assert_fails(
        &capgate(&["compile", "/nonexistent/m.json"], None),
        3,
        Some("INPUT_UNREADABLE"),
        "missing file",
    );
    assert_fails(
        &capgate(&["compile", "-"], Some(b"{\"name\": ")),
        3,
        Some("INPUT_JSON"),
        "invalid JSON",
    );
    assert_fails(
        &capgate(&["compile", "-"], Some(b"")),
        3,
        Some("INPUT_JSON"),
        "empty input",
    );
    assert_fails(
        &capgate(&["compile", "-"], Some(&manifest(&["fs:read:/w/../etc"]))),
        4,
        Some("CAP_FS_PATH"),
        "grammar error",
    );
    assert_fails(
        &capgate(&["compile", "-"], Some(br#"{"name":"x","version":"1"}"#)),
        4,
        Some("MANIFEST_SHAPE"),
        "shape error",
    );
    let strict = capgate(&["compile", &github, "--target", "squid"], None);
    assert_fails(
        &strict,
        4,
        Some("ADAPTER_UNSUPPORTED"),
        "strict squid on github.json",
    );
    // The --permissive form of the same compile succeeds.
    json(&capgate(
        &["compile", &github, "--target", "squid", "--permissive"],
        None,
    ));
}

#[test]
fn unknown_target_is_checked_before_the_manifest_is_read() {
    // DEV-CLI-EXIT-CODES: the reference read the manifest first (exit 3/4 with a bad target).
    assert_fails(
        &capgate(
            &["compile", "/nonexistent/m.json", "--target", "nope"],
            None,
        ),
        2,
        Some("TARGET_UNKNOWN"),
        "missing file",
    );
    assert_fails(
        &capgate(&["compile", "-", "--target", "nope"], Some(b"not json")),
        2,
        Some("TARGET_UNKNOWN"),
        "invalid JSON",
    );
    assert_fails(
        &capgate(
            &["compile", "-", "--target", "nope"],
            Some(&manifest(&["fs:read:/a/../b"])),
        ),
        2,
        Some("TARGET_UNKNOWN"),
        "grammar error",
    );
}

#[test]
fn usage_errors_exit_2_with_nothing_on_stdout() {
    // DEV-CLI-EXIT-CODES: unknown flags, missing values and extra positionals are usage
    // errors (the reference took unknown flags as positionals and ignored extras).
    let github = fixture("github.json");
    let cases: &[&[&str]] = &[
        &[],
        &["compile"],
        &["frobnicate"],
        &["compile", &github, "--frobnicate"],
        &["compile", &github, "extra"],
        &["compile", &github, "--target"],
        &[
            "compile",
            &github,
            "--target",
            "egress",
            "--egress-target",
            "iptables",
        ],
        &["compile", &github, "--set"],
        &["compile", &github, "--set", "no-equals-sign"],
        &["compile", &github, "--error-format", "xml"],
    ];
    for args in cases {
        let run = capgate(args, None);
        assert_fails(&run, 2, Some("USAGE"), &format!("{args:?}"));
        assert_ne!(run.code, 1);
    }
}

#[test]
fn set_options() {
    let github = fixture("github.json");
    assert_fails(
        &capgate(&["compile", &github, "--set", "nope=1"], None),
        2,
        Some("OPTION_INVALID"),
        "unknown option",
    );
    assert_fails(
        &capgate(&["compile", &github, "--set", "uid=abc"], None),
        2,
        Some("OPTION_INVALID"),
        "bad value",
    );
    assert_fails(
        &capgate(&["compile", &github, "--set", "uid=0"], None),
        2,
        Some("OPTION_INVALID"),
        "root uid",
    );
    assert_fails(
        &capgate(
            &[
                "compile", &github, "--target", "docker", "--set", "uid=1000",
            ],
            None,
        ),
        2,
        Some("OPTION_INVALID"),
        "option of another target",
    );
    let v = json(&capgate(
        &["compile", &github, "--set", "uid=1000", "--set", "gid=1001"],
        None,
    ));
    let argv: Vec<&str> = v["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let uid = argv.iter().position(|a| *a == "--uid").unwrap();
    assert_eq!(argv[uid + 1], "1000");
    let gid = argv.iter().position(|a| *a == "--gid").unwrap();
    assert_eq!(argv[gid + 1], "1001");
}

// ------------------------------------------------------------------ input and output

#[test]
fn dash_reads_stdin() {
    let path = fixture("github.json");
    let bytes = std::fs::read(&path).unwrap();
    for target in ["bwrap", "docker", "squid", "nftables"] {
        let from_file = capgate(
            &["compile", &path, "--target", target, "--permissive"],
            None,
        );
        let from_stdin = capgate(
            &["compile", "-", "--target", target, "--permissive"],
            Some(&bytes),
        );
        assert_eq!(from_stdin.code, 0, "{}", from_stdin.stderr);
        assert_eq!(from_file.stdout, from_stdin.stdout, "{target}");
    }
    // Errors from stdin are located in `<stdin>`.
    let run = capgate(&["compile", "-"], Some(&manifest(&["net:connect:a b:443"])));
    assert_fails(&run, 4, Some("CAP_NET_HOST"), "stdin grammar error");
    assert!(run.stderr.contains("<stdin>:1:"), "{}", run.stderr);
}

#[test]
fn pretty_and_compact_output() {
    let path = fixture("puppeteer.json");
    for target in ["bwrap", "docker", "squid", "nftables"] {
        let compact = capgate(
            &["compile", &path, "--target", target, "--permissive"],
            None,
        );
        let pretty = capgate(
            &[
                "compile",
                &path,
                "--target",
                target,
                "--permissive",
                "--pretty",
            ],
            None,
        );
        let (c, p) = (json(&compact), json(&pretty));
        assert_eq!(c, p, "{target}: same artifact");
        // Compact: one line, no insignificant whitespace (SPEC §12.1).
        assert_eq!(compact.stdout.matches('\n').count(), 1, "{target}");
        assert!(compact.stdout.ends_with('\n'));
        assert_eq!(compact.stdout, serde_json::to_string(&c).unwrap() + "\n");
        // Pretty: JSON.stringify(x, null, 2) + "\n".
        assert_eq!(
            pretty.stdout,
            serde_json::to_string_pretty(&p).unwrap() + "\n"
        );
        assert!(pretty.stdout.starts_with("{\n  \""), "{target}");
    }
}

#[test]
fn egress_alias_reaches_the_same_targets() {
    // DEV-CLI-SUBCOMMANDS: the reference's `--target egress [--egress-target X]` is kept.
    let path = fixture("egress-mix.json");
    let nft = capgate(&["compile", &path, "--target", "nftables"], None);
    let alias = capgate(
        &[
            "compile",
            &path,
            "--target",
            "egress",
            "--egress-target",
            "nftables",
        ],
        None,
    );
    assert_eq!(json(&nft), json(&alias));
    assert_eq!(nft.stdout, alias.stdout);
    let squid = capgate(&["compile", &path, "--target", "squid"], None);
    let default_backend = capgate(&["compile", &path, "--target", "egress"], None);
    assert_eq!(squid.stdout, default_backend.stdout);
    assert_eq!(json(&squid)["target"], "squid");
    // `--egress-target` is ignored by the other targets, as in the reference; `-t` is `--target`.
    let bwrap = capgate(&["compile", &path], None);
    assert_eq!(
        bwrap.stdout,
        capgate(&["compile", &path, "--egress-target", "nftables"], None).stdout
    );
    assert_eq!(
        bwrap.stdout,
        capgate(&["compile", &path, "-t", "bwrap"], None).stdout
    );
    assert_eq!(json(&bwrap)["target"], "bwrap");
}

#[test]
fn diagnostics_are_located_and_complete() {
    // DEV-CLI-MESSAGES: the code once, a location, a caret, a help line; every error reported.
    let run = capgate(
        &["compile", "-"],
        Some(&manifest(&["fs:read:/a/../b", "net:connect:a b:443"])),
    );
    assert_fails(&run, 4, Some("CAP_FS_PATH"), "two grammar errors");
    assert!(
        !run.stderr.contains("[CAP_FS_PATH]"),
        "the code is not repeated: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("capgate: CAP_NET_HOST: "),
        "every error is reported:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("--> <stdin>:1:"), "{}", run.stderr);
    assert!(
        run.stderr.contains("tool \"t\", capability 0"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("tool \"t\", capability 1"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains('^'), "{}", run.stderr);
    assert!(run.stderr.contains("= help: "), "{}", run.stderr);

    let json_run = capgate(
        &["compile", "-", "--error-format", "json"],
        Some(&manifest(&["fs:read:/a/../b"])),
    );
    assert_eq!(json_run.code, 4);
    assert!(json_run.stdout.is_empty());
    let diags: Value = serde_json::from_str(&json_run.stderr).expect("stderr is a JSON array");
    assert_eq!(diags[0]["code"], "CAP_FS_PATH");
    assert_eq!(diags[0]["tool"], "t");
    assert_eq!(diags[0]["capabilityIndex"], 0);
    assert_eq!(diags[0]["capability"], "fs:read:/a/../b");
}

#[test]
fn adapter_unsupported_names_the_target() {
    // DEV-ADAPTER-NAME
    let run = capgate(
        &["compile", &fixture("github.json"), "--target", "nftables"],
        None,
    );
    assert_fails(&run, 4, Some("ADAPTER_UNSUPPORTED"), "strict nftables");
    let first = run.stderr.lines().next().unwrap();
    assert!(
        first.contains("Adapter \"nftables\" cannot lower capability kind(s) \"fs\", \"env\"")
            && first.contains("supported for \"nftables\" is \"net\", \"assert\"")
            && first.ends_with("Choose a different target or re-run with --permissive (notes/unenforceable instead of fail-closed)."),
        "{first}"
    );
    assert!(
        run.stderr
            .contains("env:inject:GITHUB_PERSONAL_ACCESS_TOKEN"),
        "located per capability:\n{}",
        run.stderr
    );
}

#[test]
fn json_input_strictness() {
    // DEV-JSON-DUPLICATE-KEYS
    let dup = br#"{"name":"x","version":"1","tools":[{"name":"t","capabilities":["fs:read:/a"],"capabilities":["fs:write:/"]}]}"#;
    assert_fails(
        &capgate(&["compile", "-"], Some(dup)),
        4,
        Some("MANIFEST_DUPLICATE_KEY"),
        "duplicate key",
    );
    // DEV-JSON-LONE-SURROGATES
    let lone = br#"{"name":"x\ud800","version":"1","tools":[]}"#;
    assert_fails(
        &capgate(&["compile", "-"], Some(lone)),
        3,
        Some("INPUT_JSON"),
        "lone surrogate",
    );
    let pair = br#"{"name":"x\ud83d\ude00","version":"1","tools":[]}"#;
    json(&capgate(&["compile", "-"], Some(pair)));
    // A BOM is invalid JSON, as in the reference.
    let bom = b"\xef\xbb\xbf{\"name\":\"x\",\"version\":\"1\",\"tools\":[]}";
    assert_fails(
        &capgate(&["compile", "-"], Some(bom)),
        3,
        Some("INPUT_JSON"),
        "BOM",
    );
    // Invalid UTF-8 is invalid JSON.
    assert_fails(
        &capgate(&["compile", "-"], Some(b"{\"name\":\"\xff\"}")),
        3,
        Some("INPUT_JSON"),
        "bad UTF-8",
    );
}

// ------------------------------------------------------------------ help

/// Every flag of `capgate compile`.
const COMPILE_FLAGS: [&str; 9] = [
    "--target",
    "--egress-target",
    "--set",
    "--rules",
    "--templates",
    "--pretty",
    "--permissive",
    "--error-format",
    "--help",
];

#[test]
fn help_mentions_every_flag() {
    let help = capgate(&["compile", "--help"], None);
    assert_eq!(help.code, 0);
    assert!(help.stderr.is_empty());
    for flag in COMPILE_FLAGS {
        assert!(
            help.stdout.contains(flag),
            "`capgate compile --help` does not mention {flag}:\n{}",
            help.stdout
        );
    }
    assert!(help.stdout.contains("MANIFEST|-"));
    // Flags that take a value show an example value. An entry starts with `-x, --flag` or
    // `--flag` and continues on deeper-indented lines.
    let mut entries: Vec<String> = Vec::new();
    for line in help.stdout.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.starts_with('-') && indent <= 6 {
            entries.push(trimmed.to_owned());
        } else if indent > 6 && !trimmed.is_empty() {
            if let Some(e) = entries.last_mut() {
                e.push(' ');
                e.push_str(trimmed);
            }
        }
    }
    for flag in [
        "--target",
        "--egress-target",
        "--set",
        "--rules",
        "--templates",
        "--error-format",
    ] {
        let entry = entries
            .iter()
            .find(|e| e.starts_with(&format!("{flag} ")) || e.contains(&format!(", {flag} ")))
            .unwrap_or_else(|| panic!("no help entry for {flag}: {entries:#?}"));
        assert!(
            entry.contains(&format!("Example: {flag}")),
            "{flag} has no example: {entry}"
        );
    }
    // Every example manifest the help names exists.
    for word in help
        .stdout
        .split_whitespace()
        .filter(|w| w.starts_with("fixtures/"))
    {
        assert!(
            root().join(word).exists(),
            "help names a missing file: {word}"
        );
    }
    // DEV-CLI-SUBCOMMANDS: the top-level help lists the commands.
    let top = capgate(&["--help"], None);
    assert_eq!(top.code, 0);
    for cmd in ["compile", "explain", "targets"] {
        assert!(top.stdout.contains(cmd), "{cmd}:\n{}", top.stdout);
    }
    assert_eq!(capgate(&["compile", "-h"], None).stdout, help.stdout);
}

#[test]
fn compile_help_snapshot() {
    let help = capgate(&["compile", "--help"], None);
    assert_eq!(help.code, 0);
    insta::assert_snapshot!("compile_help", help.stdout);
}

/// A failed write is not a success: `> /dev/full` gets OUTPUT_UNWRITABLE and exit 3.
#[test]
fn unwritable_stdout_is_an_error() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full exists on Linux");
    let out = Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(["compile", "fixtures/manifests/github-api.json"])
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.starts_with("capgate: OUTPUT_UNWRITABLE: failed to write the artifact to stdout: "),
        "{stderr}"
    );
}

// ------------------------------------------------------------------ docs/errors.md

#[test]
fn errors_doc_covers_every_code() {
    let doc =
        std::fs::read_to_string(root().join("docs/errors.md")).expect("docs/errors.md exists");
    let missing: Vec<&str> = Code::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|name| !doc.contains(&format!("## `{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/errors.md has no `## \\`CODE\\`` section for {missing:?}"
    );
    // And documents no code that does not exist.
    for line in doc.lines().filter(|l| l.starts_with("## `")) {
        let name = line.trim_start_matches("## `").trim_end_matches('`');
        assert!(
            Code::ALL.iter().any(|c| c.as_str() == name),
            "docs/errors.md documents unknown code {name}"
        );
    }
    // Each section states the code's exit status.
    for code in Code::ALL {
        let start = doc.find(&format!("## `{}`", code.as_str())).unwrap();
        let section = &doc[start..];
        let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
        assert!(
            section.contains(&format!("exit {}", code.exit_code())),
            "{}: exit code not stated",
            code.as_str()
        );
        assert!(
            section.contains(&format!("summary: {}\n", code.summary())),
            "{}: summary differs from src/diag.rs",
            code.as_str()
        );
        assert!(
            section.contains(&format!("help:    {}\n", code.help())),
            "{}: help differs from src/diag.rs",
            code.as_str()
        );
        assert!(
            section.contains(&format!("capgate: {}: ", code.as_str())),
            "{}: no example output",
            code.as_str()
        );
    }
}

// ------------------------------------------------------------------ batch mode

#[test]
fn batch_compiles_every_manifest_and_summarises_failures() {
    let out = std::env::temp_dir().join(format!("capgate-cli-batch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let out_s = out.display().to_string();
    let manifests = root().join("fixtures/manifests").display().to_string();
    let bad = root()
        .join("fixtures/errors/cap-fs-glob.json")
        .display()
        .to_string();
    let run = capgate(
        &[
            "compile", &manifests, &bad, "--target", "docker", "--out", &out_s,
        ],
        None,
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.starts_with("capgate: CAP_FS_GLOB:"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("capgate: batch: "), "{}", run.stderr);
    // A failed batch prints nothing on stdout; the files it wrote are listed
    // on stderr. Every good manifest was written, byte-identical to a single
    // compile.
    assert_eq!(run.stdout, "", "stdout on a failed batch");
    let written: Vec<&str> = run
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("capgate: batch: wrote "))
        .collect();
    assert!(written.iter().all(|w| w.starts_with(&out_s)), "{written:?}");
    let good = std::fs::read_dir(root().join("fixtures/manifests"))
        .unwrap()
        .count();
    assert_eq!(written.len(), good, "{}", run.stdout);
    let github = std::fs::read_to_string(out.join("github.docker.json")).unwrap();
    let single = capgate(
        &["compile", &fixture("github.json"), "--target", "docker"],
        None,
    );
    assert_eq!(github, single.stdout);
    assert!(!out.join("cap-fs-glob.docker.json").exists());
    let _ = std::fs::remove_dir_all(&out);

    // Several manifests without --out, and stdin with --out, are usage errors.
    let two = capgate(
        &["compile", &fixture("github.json"), &fixture("fetch.json")],
        None,
    );
    assert_fails(&two, 2, Some("USAGE"), "two manifests without --out");
    let stdin = capgate(&["compile", "-", "--out", &out_s], Some(b"{}"));
    assert_fails(&stdin, 2, Some("USAGE"), "stdin with --out");
}

/// G6 of the second adversarial review: a failed command prints nothing on
/// stdout, whatever the command. A broken operator rules file beside working
/// ones used to leave `targets` printing a complete-looking listing.
#[test]
fn failed_commands_print_nothing_on_stdout() {
    let dir = std::env::temp_dir().join(format!("capgate-cli-g6-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    struct Rm(std::path::PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _rm = Rm(dir.clone());
    let rules = dir.join("rules").display().to_string();
    let github = fixture("github.json");
    let out_dir = dir.join("out").display().to_string();
    // Three ways for a rules file to be broken: bad TOML, a bad template
    // path, a rule without its required fields.
    for (i, broken) in [
        "[target\n",
        "[target]\ndescription = \"d\"\nformat = \"argv\"\nartifact = \"argv\"\n[[rule]]\nid = \"x\"\ndoc = \"d\"\nfact = \"fs\"\nslot = \"s\"\ntemplate = \"../../../../etc/passwd\"\n",
        "[target]\ndescription = \"d\"\n[[rule]]\nid = \"bwrap.cap-drop\"\n",
    ]
    .iter()
    .enumerate()
    {
        let _ = std::fs::remove_dir_all(dir.join("rules"));
        std::fs::create_dir_all(dir.join("rules")).unwrap();
        std::fs::write(dir.join("rules/broken.toml"), broken).unwrap();
        let runs = [
            ("targets", vec!["targets", "--rules", &rules]),
            ("targets json", vec!["targets", "--rules", &rules, "--format", "json"]),
            ("explain --rule", vec!["explain", "--rule", "bwrap.cap-drop", "--rules", &rules]),
            (
                "explain --rule json",
                vec!["explain", "--rule", "bwrap.cap-drop", "--rules", &rules, "--format", "json"],
            ),
            ("explain", vec!["explain", &github, "--target", "broken", "--rules", &rules]),
            ("compile", vec!["compile", &github, "--target", "broken", "--rules", &rules]),
            (
                "batch",
                vec!["compile", &github, "--target", "broken", "--rules", &rules, "--out", &out_dir],
            ),
        ];
        for (what, args) in runs {
            let run = capgate(&args, None);
            assert_eq!(run.code, 4, "{what} [{i}]: {}", run.stderr);
            assert_eq!(run.stdout, "", "{what} [{i}]: stdout of a failed command");
            assert!(run.stderr.starts_with("capgate: RULES_INVALID:") || run.stderr.starts_with("capgate: TEMPLATE_INVALID:"), "{what} [{i}]: {}", run.stderr);
        }
    }
    // init into a directory where writing fails part-way: nothing on stdout.
    std::fs::write(dir.join("file"), "x").unwrap();
    let run = capgate(
        &["init", "--eject", &dir.join("file").display().to_string()],
        None,
    );
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "", "init: stdout of a failed command");
}
