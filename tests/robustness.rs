//! Robust input handling: malformed, oversized and pathological manifests end
//! in a clear coded error or a correct result, in bounded time and memory,
//! through the library and through the `capgate` binary (nothing on stdout on
//! failure, documented exit codes, all errors reported, `--error-format json`).
//!
//! Limits (docs/security.md): JSON nesting 128 levels (`json::MAX_DEPTH`),
//! capability 4096 bytes (`syntax::MAX_CAPABILITY_LEN`), manifest 64 MiB
//! (`manifest::MAX_MANIFEST_BYTES`).

mod common;
mod hostile;

use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use capgate::assets::Assets;
use capgate::compile::{Compiler, Settings};
use capgate::diag::{Code, Diagnostic};
use hostile::{Declared, TempFile};

use common::TARGETS;

/// Generous budget for refusing one hostile input in a debug build (a release
/// build takes a fraction of it).
const BUDGET: Duration = Duration::from_secs(10);
/// Budget for compiling a very large valid manifest in a debug build.
const LARGE_BUDGET: Duration = Duration::from_secs(30);

/// The tests that measure time on large inputs run one at a time, so that
/// they do not measure each other.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

fn compile(bytes: &[u8], target: &str) -> Result<capgate::compile::Output, Vec<Diagnostic>> {
    Compiler::new(&Assets::default(), target)
        .expect("built-in target")
        .compile(
            "m.json",
            bytes,
            &Settings {
                permissive: true,
                set: vec![],
            },
        )
}

/// Compiles for every target within `budget` each and returns the first error code.
fn timed_error(bytes: &[u8], budget: Duration) -> Vec<Diagnostic> {
    let mut first = None;
    for target in TARGETS {
        let start = Instant::now();
        let result = compile(bytes, target);
        let took = start.elapsed();
        assert!(took < budget, "{target}: {took:?} exceeds {budget:?}");
        let diags = result
            .err()
            .unwrap_or_else(|| panic!("{target} accepted the input"));
        hostile::check_diagnostics(&diags, "m.json", diags[0].code != Code::ManifestTooLarge)
            .unwrap_or_else(|e| panic!("{target}: {e}"));
        first.get_or_insert(diags);
    }
    first.unwrap()
}

fn manifest_with(caps: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "name": "m", "version": "1", "tools": [{"name": "t", "capabilities": caps}]
    }))
    .unwrap()
}

// ------------------------------------------------------------------ library

#[test]
fn invalid_utf8_is_a_located_json_error() {
    let cases: [&[u8]; 5] = [
        b"{\"name\": \"\xff\", \"version\": \"1\", \"tools\": []}",
        b"{\"name\": \"a\xc0\xafb\", \"version\": \"1\", \"tools\": []}",
        b"{\"name\": \"\xed\xa0\x80\", \"version\": \"1\", \"tools\": []}",
        b"{\"name\": \"m\", \"version\": \"1\", \"tools\": [{\"name\": \"t\", \"capabilities\": [\"fs:read:/\xe2\x80\"]}]}",
        b"\xfe\xff{}",
    ];
    for bytes in cases {
        let d = timed_error(bytes, BUDGET);
        assert_eq!(d[0].code, Code::InputJson, "{}", d[0].render());
        assert!(d[0].location.is_some());
    }
}

#[test]
fn bom_is_refused_with_a_clear_message() {
    let d = timed_error(
        b"\xef\xbb\xbf{\"name\":\"m\",\"version\":\"1\",\"tools\":[]}",
        BUDGET,
    );
    assert_eq!(d[0].code, Code::InputJson);
    assert!(d[0].message.contains("BOM"), "{}", d[0].message);
    let loc = d[0].location.as_ref().unwrap();
    assert_eq!((loc.line, loc.column), (1, 1));
}

#[test]
fn duplicate_keys_are_refused_where_capgate_reads_them() {
    let cases = [
        (r#"{"name":"a","name":"b","version":"1","tools":[]}"#, 1, 13),
        (
            "{\"name\":\"a\",\"version\":\"1\",\"tools\":[\n{\"name\":\"t\",\"capabilities\":[],\"capabilities\":[\"fs:write:/etc/**\"]}]}",
            2,
            31,
        ),
        (
            "{\"name\":\"a\",\"version\":\"1\",\"tools\":[],\n \"serverCapabilities\":[],\"serverCapabilities\":[\"net:connect:*\"]}",
            2,
            26,
        ),
    ];
    for (text, line, column) in cases {
        let d = timed_error(text.as_bytes(), BUDGET);
        assert_eq!(d[0].code, Code::ManifestDuplicateKey, "{}", d[0].render());
        let loc = d[0].location.as_ref().unwrap();
        assert_eq!((loc.line, loc.column), (line, column), "{text}");
    }
}

#[test]
fn deep_nesting_fails_fast_at_the_documented_depth() {
    assert_eq!(capgate::json::MAX_DEPTH, 128);
    for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
        let hostile = open.repeat(100_000);
        let d = timed_error(hostile.as_bytes(), BUDGET);
        assert_eq!(d[0].code, Code::InputJson);
        assert!(d[0].message.contains("128"), "{}", d[0].message);

        // 128 levels parse (then fail the shape check); 129 do not.
        let ok = format!("{}{}", open.repeat(128), close.repeat(128));
        let ok = ok.replace("{\"a\":}", "{\"a\":0}");
        assert_eq!(
            timed_error(ok.as_bytes(), BUDGET)[0].code,
            Code::ManifestShape
        );
        let deep = format!("{}0{}", open.repeat(129), close.repeat(129));
        assert_eq!(
            timed_error(deep.as_bytes(), BUDGET)[0].code,
            Code::InputJson
        );
    }
}

#[test]
fn ten_megabyte_capability_is_refused_quickly() {
    let _serial = heavy();
    let huge = format!("fs:read:/{}", "a".repeat(10 << 20));
    let d = timed_error(&manifest_with(&[&huge]), BUDGET);
    assert_eq!(d[0].code, Code::CapTooLong);
    assert!(d[0].message.contains("4096"), "{}", d[0].message);

    // The limit is exact: 4096 bytes are parsed, 4097 are not.
    assert_eq!(capgate::syntax::MAX_CAPABILITY_LEN, 4096);
    let at = format!("fs:read:/{}", "a".repeat(4096 - "fs:read:/".len()));
    assert_eq!(at.len(), 4096);
    assert!(capgate::syntax::parse_capability(&at).is_ok());
    let over = format!("{at}a");
    assert_eq!(
        capgate::syntax::parse_capability(&over).unwrap_err().code,
        Code::CapTooLong
    );

    // Also a long JSON string that is not a capability (a tool name) is fine.
    let name = "n".repeat(10 << 20);
    let bytes = serde_json::to_vec(&serde_json::json!({
        "name": "m", "version": "1", "tools": [{"name": name, "capabilities": ["fs:read:/w"]}]
    }))
    .unwrap();
    let start = Instant::now();
    compile(&bytes, "bwrap").expect("a long tool name is only a label");
    assert!(start.elapsed() < BUDGET);
}

#[test]
fn manifest_size_limit_is_enforced_before_parsing() {
    let _serial = heavy();
    assert_eq!(capgate::manifest::MAX_MANIFEST_BYTES, 64 << 20);
    let mut bytes = manifest_with(&["fs:read:/w"]);
    bytes.resize((64 << 20) + 1, b' ');
    let d = timed_error(&bytes, BUDGET);
    assert_eq!(d[0].code, Code::ManifestTooLarge);
    assert!(d[0].message.contains("64 MiB"), "{}", d[0].message);
}

/// 100,000 tools: a correct policy in bounded time. The capabilities repeat
/// across tools (as real servers' do), so the policy has few facts but every
/// one of the 100,000 capabilities is tracked.
#[test]
fn hundred_thousand_tools_compile_correctly() {
    let _serial = heavy();
    let caps = [
        "fs:read:/data/**",
        "fs:write:/data/out/**",
        "net:connect:api.example.com:443",
        "net:connect:1.1.1.1:853",
        "env:inject:API_TOKEN",
        "clock:tzdata",
    ];
    let tools: Vec<_> = (0..100_000)
        .map(|i| serde_json::json!({"name": format!("tool{i}"), "capabilities": [caps[i % caps.len()]]}))
        .collect();
    let bytes =
        serde_json::to_vec(&serde_json::json!({"name": "m", "version": "1", "tools": tools}))
            .unwrap();
    compiles_within_large_budget(&bytes);
}

/// Every target compiles a large valid manifest within [`LARGE_BUDGET`],
/// granting nothing it does not declare.
fn compiles_within_large_budget(bytes: &[u8]) {
    let declared = Declared::from_manifest(bytes);
    for target in TARGETS {
        let start = Instant::now();
        let out = compile(bytes, target).unwrap_or_else(|d| panic!("{}", d[0].render()));
        let took = start.elapsed();
        assert!(took < LARGE_BUDGET, "{target}: {took:?}");
        hostile::check_artifact(target, &out.artifact, &declared).unwrap();
    }
}

/// Many distinct facts: the policy grows linearly and stays correct.
#[test]
fn ten_thousand_distinct_paths_and_hosts() {
    let _serial = heavy();
    let caps: Vec<String> = (0..10_000)
        .map(|i| {
            if i % 2 == 0 {
                format!("fs:read:/data/d{i}")
            } else {
                format!("net:connect:h{i}.example.com:{}", 1 + i % 65535)
            }
        })
        .collect();
    let refs: Vec<&str> = caps.iter().map(String::as_str).collect();
    let bytes = manifest_with(&refs);
    compiles_within_large_budget(&bytes);
}

#[test]
fn odd_but_wellformed_json_is_a_shape_error_not_a_crash() {
    let cases = [
        ("", Code::InputJson),
        ("   \n\t ", Code::InputJson),
        ("null", Code::ManifestShape),
        ("[]", Code::ManifestShape),
        ("\"manifest\"", Code::ManifestShape),
        ("{}x", Code::InputJson),
        ("{\"name\":\"m\",\"version\":1e999999,\"tools\":[]}", Code::ManifestShape),
        ("{\"name\":\"m\",\"version\":\"1\",\"tools\":[null,7,\"x\",[]]}", Code::ManifestShape),
        ("{\"name\":\"m\",\"version\":\"1\",\"tools\":[{\"name\":\"t\",\"capabilities\":[1,null,{}]}]}", Code::ManifestShape),
        ("{\"name\":\"m\",\"version\":\"1\",\"tools\":[],\"serverCapabilities\":false}", Code::ManifestShape),
        ("{\"name\":\"m\",\"version\":\"1\",\"tools\":[{\"name\":\"t\",\"capabilities\":[\"\"]}]}", Code::CapMalformed),
        ("{\"name\":\"m\",\"version\":\"1\",\"grammar\":\"9.9\",\"tools\":[]}", Code::GrammarVersionMismatch),
        ("{\"name\":\"m\",\"version\":\"1\",\"tools\":[]", Code::InputJson),
        ("{\"name\":\"m\\u0000\",\"version\":\"1\",\"tools\":[], \"x\": \"\\ud83d\"}", Code::InputJson),
    ];
    for (text, code) in cases {
        let d = timed_error(text.as_bytes(), BUDGET);
        assert_eq!(d[0].code, code, "{text:?}: {}", d[0].render());
    }
}

// ------------------------------------------------------------------ binary

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run capgate");
    let mut pipe = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        pipe.write_all(bytes).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// Runs the binary on a manifest file under an address-space limit (bounded memory).
fn run_limited(bytes: &[u8], args: &[&str]) -> Output {
    let f = TempFile::new("robust", bytes);
    let script = format!(
        "ulimit -v {}; exec \"$0\" compile \"$1\" {}",
        2 << 20, // KiB: 2 GiB of address space
        args.join(" ")
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_capgate"))
        .arg(&f.0)
        .output()
        .expect("run capgate under ulimit")
}

fn json_errors(stderr: &[u8]) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(stderr).unwrap_or_else(|e| {
        panic!(
            "--error-format json is not JSON ({e}): {}",
            String::from_utf8_lossy(stderr)
        )
    });
    let list = v.as_array().expect("a JSON array of errors").clone();
    for e in &list {
        assert!(e["code"].as_str().is_some_and(|c| !c.is_empty()), "{e}");
        assert!(
            e["message"].as_str().is_some_and(|m| !m.contains('\n')),
            "{e}"
        );
        assert!(e["help"].as_str().is_some_and(|h| !h.is_empty()), "{e}");
    }
    list
}

/// Every hostile input through the binary: the documented exit code, nothing
/// on stdout, a coded error on stderr in text and JSON, bounded memory.
#[test]
fn binary_fails_cleanly_on_hostile_input() {
    let _serial = heavy();
    let huge_cap = manifest_with(&[&format!("net:connect:{}", "a".repeat(10 << 20))]);
    let cases: Vec<(&str, Vec<u8>, i32, &str)> = vec![
        (
            "invalid UTF-8",
            b"{\"name\": \"\xff\"}".to_vec(),
            3,
            "INPUT_JSON",
        ),
        ("BOM", b"\xef\xbb\xbf{}".to_vec(), 3, "INPUT_JSON"),
        (
            "deep nesting",
            "[".repeat(100_000).into_bytes(),
            3,
            "INPUT_JSON",
        ),
        (
            "duplicate key",
            br#"{"name":"a","name":"b","version":"1","tools":[]}"#.to_vec(),
            4,
            "MANIFEST_DUPLICATE_KEY",
        ),
        ("10 MB capability", huge_cap, 4, "CAP_TOO_LONG"),
        (
            "newline injection",
            manifest_with(&["net:connect:a.com\nhttp_access allow all:443"]),
            4,
            "CAP_CHAR",
        ),
    ];
    for (what, bytes, exit, code) in cases {
        for format in ["text", "json"] {
            let start = Instant::now();
            let out = run_limited(&bytes, &["--target", "squid", "--error-format", format]);
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{what}: too slow"
            );
            assert_eq!(
                out.status.code(),
                Some(exit),
                "{what} ({format}): {}",
                String::from_utf8_lossy(&out.stderr[..out.stderr.len().min(2000)])
            );
            assert!(out.stdout.is_empty(), "{what}: stdout not empty on failure");
            if format == "json" {
                let errs = json_errors(&out.stderr);
                assert_eq!(errs[0]["code"], code, "{what}");
                assert!(
                    errs[0]["location"]["line"].as_u64().is_some(),
                    "{what}: {}",
                    errs[0]
                );
            } else {
                let text = String::from_utf8_lossy(&out.stderr);
                assert!(
                    text.starts_with(&format!("capgate: {code}: ")),
                    "{what}: {}",
                    &text[..text.len().min(500)]
                );
            }
        }
    }
}

/// Exit codes and empty stdout for usage and input errors.
#[test]
fn binary_usage_and_input_errors() {
    let ok = manifest_with(&["fs:read:/w"]);
    let f = TempFile::new("usage", &ok);
    let path = f.0.to_str().unwrap();

    let out = run(&["compile", path, "--target", "no-such-target"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TARGET_UNKNOWN"));

    let out = run(&["compile", "/nonexistent/capgate/manifest.json"], None);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("INPUT_UNREADABLE"));

    let out = run(
        &["compile", "-", "--target", "bwrap"],
        Some(b"\xef\xbb\xbf{}"),
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());

    // The same manifest succeeds, and then stdout is the artifact.
    let out = run(&["compile", "-", "--target", "bwrap"], Some(&ok));
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["target"], "bwrap");
}

/// All errors of a manifest are reported, each with its code, location,
/// tool, capability with a caret, and help; the JSON form carries the same.
#[test]
fn every_error_is_reported_located_with_caret_and_help() {
    let bad = [
        "fs:read:/workspace/../etc",
        "net:connect:api.example.com:443abc",
        "env:inject:LD_PRELOAD",
        "exec:spawn:--privileged",
        "ipc:connect:\"unix:/\"",
        "net:connect:\"::/0\":443",
        "fs:read:/w\u{202e}x",
    ];
    let mut caps = vec!["fs:read:/ok/**"];
    caps.extend(bad);
    caps.push("clock:system");
    let bytes = serde_json::to_vec_pretty(&serde_json::json!({
        "name": "m", "version": "1",
        "serverCapabilities": ["net:connect:10.1:80"],
        "tools": [{"name": "t", "capabilities": caps}, {"name": "u", "capabilities": ["kind:x"]}]
    }))
    .unwrap();
    let f = TempFile::new("many", &bytes);
    let path = f.0.to_str().unwrap();
    let expected = bad.len() + 2;

    let out = run(&["compile", path, "--target", "bwrap"], None);
    assert_eq!(out.status.code(), Some(4));
    assert!(out.stdout.is_empty());
    let text = String::from_utf8(out.stderr).unwrap();
    let blocks: Vec<&str> = text
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .collect();
    assert_eq!(blocks.len(), expected, "{text}");
    for b in &blocks {
        let lines: Vec<&str> = b.lines().collect();
        assert!(lines[0].starts_with("capgate: CAP_"), "{b}");
        assert!(lines[1].starts_with(&format!("  --> {path}:")), "{b}");
        assert!(
            lines[1].contains(": tool \"") || lines[1].contains(": serverCapabilities["),
            "{b}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.trim_start().starts_with("| ") && l.contains('^')),
            "{b}"
        );
        assert!(
            lines.last().unwrap().trim_start().starts_with("= help: "),
            "{b}"
        );
    }

    let out = run(
        &[
            "compile",
            path,
            "--target",
            "bwrap",
            "--error-format",
            "json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(4));
    assert!(out.stdout.is_empty());
    let errs = json_errors(&out.stderr);
    assert_eq!(errs.len(), expected);
    for e in &errs {
        assert_eq!(e["location"]["file"], path, "{e}");
        assert!(e["location"]["line"].as_u64().unwrap() >= 1);
        assert!(e["location"]["column"].as_u64().unwrap() >= 1);
        assert!(e["capability"].as_str().is_some(), "{e}");
        let span = e["span"].as_array().expect("span");
        assert!(span[0].as_u64().unwrap() <= span[1].as_u64().unwrap());
    }
    let codes: Vec<&str> = errs.iter().map(|e| e["code"].as_str().unwrap()).collect();
    for code in [
        "CAP_FS_PATH",
        "CAP_NET_PORT",
        "CAP_ENV_DANGEROUS",
        "CAP_EXEC_NAME",
        "CAP_IPC_SOCKET",
        "CAP_NET_HOST",
        "CAP_CHAR",
        "CAP_UNKNOWN_KIND",
    ] {
        assert!(codes.contains(&code), "{code} missing from {codes:?}");
    }
}

/// F17 of the first adversarial review: input is read through a bounded
/// reader, so an endless or huge input is refused with MANIFEST_TOO_LARGE
/// after the limit + 1 byte, in bounded memory, whatever it comes from.
#[test]
fn oversized_input_is_not_read_past_the_limit() {
    let _serial = heavy();
    let limit = capgate::manifest::MAX_MANIFEST_BYTES as u64;
    let bin = env!("CARGO_BIN_EXE_capgate");
    // 512 MiB of address space: the whole input never fits, the limit does.
    let limited = |script: &str, args: &[&str]| {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!("ulimit -v {}; {script}", 512 << 10))
            .arg(bin)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };
    let check = |what: &str, out: &Output| {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{what}: {stderr}");
        assert!(out.stdout.is_empty(), "{what}: stdout on failure");
        assert!(
            stderr.contains("capgate: MANIFEST_TOO_LARGE:"),
            "{what}: {stderr}"
        );
    };
    // A character device that never ends, as a file argument and in a batch.
    let out = limited("exec \"$0\" compile /dev/zero --target bwrap", &[])
        .output()
        .unwrap();
    check("/dev/zero", &out);
    let dir = std::env::temp_dir().join(format!("capgate-f17-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    struct Rm(std::path::PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _rm = Rm(dir.clone());
    let out_dir = dir.join("out");
    let out = limited(
        "exec \"$0\" compile /dev/zero \"$1\" --target squid --out \"$2\"",
        &[
            dir.join("missing.json").to_str().unwrap(),
            out_dir.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "batch: {stderr}");
    assert!(out.stdout.is_empty(), "batch: stdout on failure");
    assert!(stderr.contains("MANIFEST_TOO_LARGE"), "batch: {stderr}");

    // An endless writer on stdin and on a FIFO: capgate stops reading at the
    // limit, so the writer is cut off (EPIPE) soon after it.
    let feed = |mut sink: Box<dyn std::io::Write + Send>| {
        std::thread::spawn(move || {
            let chunk = vec![b' '; 1 << 20];
            let mut written: u64 = 0;
            while written < 4 << 30 {
                match sink.write(&chunk) {
                    Ok(n) => written += n as u64,
                    Err(_) => break,
                }
            }
            written
        })
    };
    let mut child = limited("exec \"$0\" compile - --target nftables", &[])
        .spawn()
        .unwrap();
    let writer = feed(Box::new(child.stdin.take().unwrap()));
    let out = child.wait_with_output().unwrap();
    check("stdin", &out);
    let fed = writer.join().unwrap();
    assert!(
        fed <= limit + (8 << 20),
        "stdin: capgate read {fed} bytes of an endless input (limit {limit})"
    );

    let fifo = dir.join("m.json");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let child = limited(
        "exec \"$0\" compile \"$1\" --target docker",
        &[fifo.to_str().unwrap()],
    )
    .spawn()
    .unwrap();
    // Opening a FIFO for writing waits for the reader.
    let sink = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let writer = feed(Box::new(sink));
    let out = child.wait_with_output().unwrap();
    check("FIFO", &out);
    let fed = writer.join().unwrap();
    assert!(
        fed <= limit + (8 << 20),
        "FIFO: capgate read {fed} bytes of an endless input (limit {limit})"
    );
}

/// F20 of the first adversarial review: a long tool name was repeated in
/// every note (and diagnostic, `unenforceable[]` entry and explain line)
/// naming one of its capabilities, so output and memory grew with
/// (capabilities x name length): a 557 KB manifest gave 750 MB of stdout, a
/// 1.1 MB one aborted on allocation. Output must stay within a constant
/// factor of the input, for a short and a long name alike, under a 2 GiB
/// address-space limit, for every command that names tools.
#[test]
fn output_grows_linearly_with_a_long_tool_name() {
    let _serial = heavy();
    let manifest = |name_bytes: usize, paths: usize| -> Vec<u8> {
        let mut caps = Vec::new();
        for i in 0..paths {
            // A widening (write beside read), a children glob, nestedSandbox.
            caps.push(format!("fs:write:/srv/p{i}/**"));
            caps.push(format!("fs:read:/srv/p{i}/sub"));
            caps.push(format!("exec:spawn:prog{i}?nestedSandbox=true"));
            caps.push(format!("fs:read:/srv/q{i}/*"));
        }
        serde_json::to_vec(&serde_json::json!({
            "name": "m", "version": "1",
            "tools": [{"name": "T".repeat(name_bytes), "capabilities": caps}]
        }))
        .unwrap()
    };
    let commands: Vec<Vec<&str>> = {
        let mut v = Vec::new();
        for t in TARGETS {
            v.push(vec!["compile", "FILE", "--target", t]);
            v.push(vec!["compile", "FILE", "--target", t, "--permissive"]);
        }
        // squid refuses fs and exec: one diagnostic per capability.
        v.push(vec![
            "compile",
            "FILE",
            "--target",
            "squid",
            "--error-format",
            "json",
        ]);
        for t in ["bwrap", "squid"] {
            v.push(vec!["explain", "FILE", "--target", t]);
            v.push(vec!["explain", "FILE", "--target", t, "--format", "json"]);
        }
        v
    };
    // Per command: output bytes for a short and for a long tool name.
    let mut sizes: Vec<(String, [usize; 2], [usize; 2])> = Vec::new();
    for (n, name_bytes) in [100, 1_000_000].into_iter().enumerate() {
        let bytes = manifest(name_bytes, 1000);
        let f = TempFile::new("amplify", &bytes);
        for (c, args) in commands.iter().enumerate() {
            let args: Vec<&str> = args
                .iter()
                .map(|a| {
                    if *a == "FILE" {
                        f.0.to_str().unwrap()
                    } else {
                        a
                    }
                })
                .collect();
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("ulimit -v {}; exec \"$0\" \"$@\"", 2 << 20))
                .arg(env!("CARGO_BIN_EXE_capgate"))
                .args(&args)
                .output()
                .unwrap();
            let what = format!("{args:?} with a {name_bytes}-byte tool name");
            assert!(
                matches!(out.status.code(), Some(0 | 4)),
                "{what}: {:?} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr[..out.stderr.len().min(500)])
            );
            if n == 0 {
                sizes.push((format!("{:?}", &args[2..]), [0; 2], [0; 2]));
            }
            sizes[c].1[n] = out.stdout.len() + out.stderr.len();
            sizes[c].2[n] = bytes.len();
        }
    }
    for (what, out, input) in &sizes {
        // The name's marginal cost: 1 MB more of tool name may add a few
        // copies of it at most, never one per note (before the fix: x1350).
        let marginal = (out[1] as f64 - out[0] as f64) / (input[1] - input[0]) as f64;
        assert!(
            marginal < 4.0,
            "{what}: each byte of tool name adds {marginal:.1} bytes of output"
        );
        // Per capability the output stays a bounded multiple of the input
        // (explain JSON of a short name, where per-fact text dominates).
        let ratio = out[0] as f64 / input[0] as f64;
        assert!(
            ratio < 100.0,
            "{what}: output/input ratio {ratio:.0} with a short tool name"
        );
    }
}
