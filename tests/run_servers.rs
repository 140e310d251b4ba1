//! Real MCP servers under `capgate run`, driven by the official MCP Python
//! client (`mcp`, tests/run/drive.py): initialize, list tools, call tools.
//! Declared operations work; undeclared reads and writes fail even with the
//! server's own allowlist opened. The servers are installed by .ci/run into
//! `$CAPGATE_MCP_PREFIX` (default /opt/capgate-mcp): `venv/` (pip: mcp,
//! mcp-server-time, mcp-server-git, mcp-server-fetch) and `npm/` (npm -g
//! --prefix: server-filesystem, server-memory). Without them the tests skip
//! loudly, and fail under `CI=true`.

#[path = "run/support.rs"]
mod support;

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::*;

const DRIVE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/run/drive.py");

fn prefix() -> PathBuf {
    PathBuf::from(std::env::var("CAPGATE_MCP_PREFIX").unwrap_or_else(|_| "/opt/capgate-mcp".into()))
}

/// Whether the servers this test needs (paths below the prefix) are installed.
fn require_servers(test: &str, files: &[&str]) -> bool {
    let mut missing: Vec<String> = ["bwrap", "setpriv"]
        .iter()
        .filter(|t| which(t).is_none())
        .map(|t| format!("`{t}`"))
        .collect();
    if !is_root() {
        missing.push("root (uid 0), as CI runs".into());
    }
    for f in files.iter().chain(&["venv/bin/python"]) {
        if !prefix().join(f).exists() {
            missing.push(format!(
                "{} (installed by .ci/run)",
                prefix().join(f).display()
            ));
        }
    }
    require(test, missing)
}

/// Runs drive.py with `spec` against `cmd`; returns its summary.
fn drive(dir: &TempDir, spec: Value, cmd: &[String]) -> Value {
    let path = dir.join(&format!("spec-{}.json", unique()));
    let mut spec = spec;
    spec["errlog"] = json!(dir
        .join(&format!("stderr-{}.log", unique()))
        .display()
        .to_string());
    fs::write(&path, spec.to_string()).unwrap();
    let out = Command::new(prefix().join("venv/bin/python"))
        .arg(DRIVE)
        .arg(&path)
        .arg("--")
        .args(cmd)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("SUMMARY "))
        .unwrap_or_else(|| panic!("no summary: {stdout}\n{}", text(&out.stderr)));
    let summary: Value = serde_json::from_str(line).unwrap();
    eprintln!("{stdout}");
    summary
}

/// Every check passed and the server started.
fn assert_all_pass(summary: &Value) {
    assert_eq!(
        summary["started"], true,
        "server did not start: {summary:#}"
    );
    let failed: Vec<&Value> = summary["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["pass"] != true)
        .collect();
    assert!(
        failed.is_empty(),
        "failed checks: {failed:#?}\nstderr: {}",
        summary["stderr_tail"]
    );
}

fn capgate_run(manifest: &Path, flags: &[&str], cmd: &[&str]) -> Vec<String> {
    let mut v = vec![
        env!("CARGO_BIN_EXE_capgate").to_owned(),
        "run".into(),
        manifest.display().to_string(),
    ];
    v.extend(flags.iter().map(|s| s.to_string()));
    v.push("--".into());
    v.extend(cmd.iter().map(|s| s.to_string()));
    v
}

fn manifest(
    dir: &TempDir,
    name: &str,
    server: &[String],
    tools: &[(&str, Vec<String>)],
) -> PathBuf {
    let tools: Vec<Value> = tools
        .iter()
        .map(|(n, caps)| json!({"name": n, "capabilities": caps}))
        .collect();
    let m = json!({"name": name, "version": "1", "grammar": "0.0",
                   "serverCapabilities": server, "tools": tools});
    dir.file(&format!("{name}.json"), &m.to_string(), 0o644)
}

fn call(name: &str, tool: &str, args: Value, expect: &str) -> Value {
    json!({"name": name, "tool": tool, "args": args, "expect": expect})
}

// ------------------------------------------------------------------ filesystem

#[test]
fn filesystem_server_given_root_reaches_only_the_grants() {
    let bin = "npm/bin/mcp-server-filesystem";
    if !require_servers(
        "filesystem_server_given_root_reaches_only_the_grants",
        &[bin],
    ) {
        return;
    }
    let dir = TempDir::new("fs");
    let rw = dir.dir("granted", 0o755);
    chown(&rw, 65534, 65534);
    dir.file("granted/hello.txt", "hello from granted", 0o644);
    let ro = dir.dir("ro", 0o755);
    dir.file("ro/readme.txt", "read only data", 0o644);
    let secret = dir.file("outside/secret.txt", "TOP SECRET", 0o644);
    let root_only = dir.file("ro/root-only.txt", "ROOT ONLY", 0o600);
    let (g, r) = (rw.display().to_string(), ro.display().to_string());
    let m = manifest(
        &dir,
        "filesystem",
        &[],
        &[
            (
                "read_text_file",
                vec![format!("fs:read:{g}/**"), format!("fs:read:{r}/**")],
            ),
            (
                "list_directory",
                vec![format!("fs:read:{g}/**"), format!("fs:read:{r}/**")],
            ),
            ("write_file", vec![format!("fs:read,write,create:{g}/**")]),
            ("create_directory", vec![format!("fs:create:{g}/**")]),
            (
                "move_file",
                vec![format!("fs:read,write,create,delete:{g}/**")],
            ),
        ],
    );
    let spec = json!({"label": "filesystem", "env": {}, "calls": [
        call("read granted", "read_text_file", json!({"path": format!("{g}/hello.txt")}), "ok"),
        call("write granted", "write_file", json!({"path": format!("{g}/new.txt"), "content": "written in the sandbox"}), "ok"),
        call("mkdir granted", "create_directory", json!({"path": format!("{g}/sub")}), "ok"),
        call("read ro", "read_text_file", json!({"path": format!("{r}/readme.txt")}), "ok"),
        call("list ro", "list_directory", json!({"path": r}), "ok"),
        call("DENY write into ro", "write_file", json!({"path": format!("{r}/evil.txt"), "content": "x"}), "deny"),
        call("DENY edit ro", "edit_file", json!({"path": format!("{r}/readme.txt"), "edits": [{"oldText": "read only", "newText": "pwned"}]}), "deny"),
        call("DENY move rw->ro", "move_file", json!({"source": format!("{g}/new.txt"), "destination": format!("{r}/moved.txt")}), "deny"),
        call("DENY root-only file in ro grant", "read_text_file", json!({"path": root_only.display().to_string()}), "deny"),
        call("DENY /etc/shadow", "read_text_file", json!({"path": "/etc/shadow"}), "deny"),
        call("DENY sibling outside grant", "read_text_file", json!({"path": secret.display().to_string()}), "deny"),
        call("DENY list /root", "list_directory", json!({"path": "/root"}), "deny"),
        // The test dir holds only the grants' mount points: not outside/ or the manifest.
        {"name": "list the test dir: grants only", "tool": "list_directory", "args": {"path": dir.path.display().to_string()}, "expect": "ok", "absent": "outside"},
        {"name": "list the test dir: no manifest", "tool": "list_directory", "args": {"path": dir.path.display().to_string()}, "expect": "ok", "absent": "filesystem.json"},
        call("DENY write outside", "write_file", json!({"path": dir.join("outside/planted.txt").display().to_string(), "content": "x"}), "deny"),
    ]});
    let server = prefix().join(bin).display().to_string();
    // The server's own allowlist is `/`: only the sandbox stands in the way.
    let s = drive(&dir, spec, &capgate_run(&m, &[], &[&server, "/"]));
    assert_all_pass(&s);
    // On the host: the write landed, owned by the sandbox's uid; nothing else changed.
    assert_eq!(
        fs::read_to_string(rw.join("new.txt")).unwrap(),
        "written in the sandbox"
    );
    assert_eq!(fs::metadata(rw.join("new.txt")).unwrap().uid(), 65534);
    assert!(rw.join("sub").is_dir());
    assert_eq!(
        fs::read_to_string(ro.join("readme.txt")).unwrap(),
        "read only data"
    );
    for p in ["ro/evil.txt", "ro/moved.txt", "outside/planted.txt"] {
        assert!(!dir.join(p).exists(), "{p} exists");
    }
}

// ------------------------------------------------------------------ memory

#[test]
fn memory_server_gets_memory_file_path_from_the_clients_env() {
    let bin = "npm/bin/mcp-server-memory";
    if !require_servers(
        "memory_server_gets_memory_file_path_from_the_clients_env",
        &[bin],
    ) {
        return;
    }
    let dir = TempDir::new("mem");
    let data = dir.dir("memory", 0o755);
    chown(&data, 65534, 65534);
    let outside = dir.dir("elsewhere", 0o777);
    let d = data.display().to_string();
    let m = manifest(
        &dir,
        "memory",
        &["env:read:MEMORY_FILE_PATH".into()],
        &[
            (
                "create_entities",
                vec![format!("fs:read,write,create:{d}/**")],
            ),
            ("read_graph", vec![format!("fs:read:{d}/**")]),
            ("search_nodes", vec![format!("fs:read:{d}/**")]),
        ],
    );
    let server = prefix().join(bin).display().to_string();
    let file = data.join("memory.jsonl");
    let spec = json!({"label": "memory", "env": {"MEMORY_FILE_PATH": file.display().to_string()}, "calls": [
        call("create_entities", "create_entities", json!({"entities": [{"name": "capgate", "entityType": "project", "observations": ["compiles MCP manifests to sandboxes"]}]}), "ok"),
        {"name": "read_graph", "tool": "read_graph", "args": {}, "expect": "ok", "contains": "capgate"},
        {"name": "search_nodes", "tool": "search_nodes", "args": {"query": "sandbox"}, "expect": "ok", "contains": "capgate"},
    ]});
    let s = drive(&dir, spec, &capgate_run(&m, &[], &[&server]));
    assert_all_pass(&s);
    let stored = fs::read_to_string(&file).expect("the graph is persisted on the host");
    assert!(stored.contains("capgate"));
    // A second run reads what the first stored: the value came from the client.
    let spec = json!({"label": "memory-again", "env": {"MEMORY_FILE_PATH": file.display().to_string()}, "calls": [
        {"name": "read_graph", "tool": "read_graph", "args": {}, "expect": "ok", "contains": "compiles MCP manifests"},
    ]});
    assert_all_pass(&drive(&dir, spec, &capgate_run(&m, &[], &[&server])));
    // MEMORY_FILE_PATH outside the grant: the write fails, nothing on the host.
    let bad = outside.join("memory.jsonl");
    let spec = json!({"label": "memory-outside", "env": {"MEMORY_FILE_PATH": bad.display().to_string()}, "calls": [
        call("DENY create outside", "create_entities", json!({"entities": [{"name": "x", "entityType": "y", "observations": []}]}), "deny"),
    ]});
    let s = drive(&dir, spec, &capgate_run(&m, &[], &[&server]));
    assert_all_pass(&s);
    assert!(!bad.exists());
}

// ------------------------------------------------------------------ time

#[test]
fn time_server_runs_from_its_venv_with_the_hosts_zone() {
    let bin = "venv/bin/mcp-server-time";
    if !require_servers("time_server_runs_from_its_venv_with_the_hosts_zone", &[bin]) {
        return;
    }
    if which("unshare").is_none() || !Path::new("/usr/share/zoneinfo/Europe/Warsaw").exists() {
        assert!(!in_ci(), "CI needs unshare and tzdata");
        return;
    }
    let dir = TempDir::new("time");
    // The manifest names no install path: the venv is a launcher grant.
    let m = manifest(
        &dir,
        "time",
        &["clock:tzdata".into()],
        &[
            ("get_current_time", vec!["clock:tzdata".into()]),
            ("convert_time", vec!["clock:tzdata".into()]),
        ],
    );
    let server = prefix().join(bin).display().to_string();
    let spec = json!({"label": "time", "env": {}, "calls": [
        {"name": "get_current_time", "tool": "get_current_time", "args": {"timezone": "Europe/Warsaw"}, "expect": "ok", "contains": "Europe/Warsaw"},
        {"name": "convert_time", "tool": "convert_time", "args": {"source_timezone": "America/New_York", "time": "16:30", "target_timezone": "Asia/Tokyo"}, "expect": "ok", "contains": "Asia/Tokyo"},
    ]});
    // A Europe/Warsaw host: a private mount namespace with its own /etc.
    let script = format!(
        "mount -t tmpfs tmpfs /etc && ln -s /usr/share/zoneinfo/Europe/Warsaw /etc/localtime && exec {} run {} -- {}",
        env!("CARGO_BIN_EXE_capgate"),
        m.display(),
        server
    );
    let cmd: Vec<String> = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let s = drive(&dir, spec, &cmd);
    assert_all_pass(&s);
    let desc = s["descriptions"]["get_current_time"]
        .as_str()
        .unwrap_or_default();
    assert!(
        desc.contains("'Europe/Warsaw'"),
        "local zone not seen: {desc}"
    );
}

// ------------------------------------------------------------------ git

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.test",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn git_server_cannot_commit_to_a_read_only_repo() {
    let bin = "venv/bin/mcp-server-git";
    if !require_servers("git_server_cannot_commit_to_a_read_only_repo", &[bin])
        || which("git").is_none()
            && !require(
                "git_server_cannot_commit_to_a_read_only_repo",
                vec!["`git`".into()],
            )
    {
        return;
    }
    let dir = TempDir::new("git");
    let repo = dir.dir("repo", 0o755);
    let other = dir.dir("other", 0o755);
    for (r, msg) in [(&repo, "first commit"), (&other, "other secret commit")] {
        git(r, &["init", "-q", "-b", "main"]);
        fs::write(r.join("a.txt"), "line1\n").unwrap();
        git(r, &["add", "a.txt"]);
        git(r, &["commit", "-q", "-m", msg]);
    }
    fs::write(repo.join("a.txt"), "line1\nline2\n").unwrap();
    let _ = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&dir.path)
        .status();
    let state = |r: &Path| {
        (
            git(r, &["rev-parse", "HEAD"]),
            git(r, &["status", "--porcelain"]),
            git(r, &["branch", "--list"]),
        )
    };
    let before = state(&repo);
    let rp = repo.display().to_string();
    let m = manifest(
        &dir,
        "git",
        &["exec:spawn:git".into()],
        &[
            ("git_status", vec![format!("fs:read:{rp}/**")]),
            ("git_log", vec![format!("fs:read:{rp}/**")]),
            ("git_diff_unstaged", vec![format!("fs:read:{rp}/**")]),
        ],
    );
    let spec = json!({"label": "git", "env": {}, "calls": [
        {"name": "git_status", "tool": "git_status", "args": {"repo_path": rp}, "expect": "ok", "contains": "a.txt"},
        {"name": "git_log", "tool": "git_log", "args": {"repo_path": rp}, "expect": "ok", "contains": "first commit"},
        {"name": "git_diff_unstaged", "tool": "git_diff_unstaged", "args": {"repo_path": rp}, "expect": "ok", "contains": "line2"},
        call("DENY git_add", "git_add", json!({"repo_path": rp, "files": ["a.txt"]}), "deny"),
        call("DENY git_commit", "git_commit", json!({"repo_path": rp, "message": "evil"}), "deny"),
        call("DENY git_create_branch", "git_create_branch", json!({"repo_path": rp, "branch_name": "evil"}), "deny"),
        {"name": "DENY undeclared repo", "tool": "git_log", "args": {"repo_path": other.display().to_string()}, "expect": "deny", "absent": "other secret commit"},
    ]});
    let server = prefix().join(bin).display().to_string();
    // No --repository: the server's own check is off.
    let s = drive(&dir, spec, &capgate_run(&m, &[], &[&server]));
    assert_all_pass(&s);
    assert_eq!(state(&repo), before, "the host repo changed");
}

// ------------------------------------------------------------------ fetch

#[test]
fn fetch_server_fetches_the_declared_page_and_npm_becomes_a_suggestion() {
    let test = "fetch_server_fetches_the_declared_page_and_npm_becomes_a_suggestion";
    let bin = "venv/bin/mcp-server-fetch";
    if !require_servers(test, &[bin]) {
        return;
    }
    let missing: Vec<String> = ["ip", "nsenter", "nft", "squid", "node", "npm"]
        .iter()
        .filter(|t| which(t).is_none())
        .map(|t| format!("`{t}`"))
        .collect();
    if !require(test, missing) {
        return;
    }
    let dir = TempDir::new("fetch");
    let www = dir.dir("www", 0o755);
    fs::write(
        www.join("page.html"),
        "<html><head><title>Marker</title></head><body><article><h1>capgate</h1>\
         <p>The quick brown fox capgate-fetch-marker jumps over the lazy dog, \
         in a paragraph long enough to count as content.</p></article></body></html>",
    )
    .unwrap();
    let lab = NetLab::new(
        &dir,
        &LabSpec {
            addrs: &["11.0.0.2/32"],
            tcp: &["11.0.0.2:8080"],
            www: Some(&www),
            hosts: "11.0.0.2 page.test\n",
            ..LabSpec::default()
        },
    );
    let m = manifest(
        &dir,
        "fetch",
        &[],
        &[("fetch", vec!["net:connect:page.test:8080".into()])],
    );
    let server = prefix().join(bin).display().to_string();
    let report = dir.join("report.json");
    let report_s = report.display().to_string();
    // The raw page comes through the proxy. Simplified, readabilipy runs a
    // first-use `npm install` (node is on the sandbox's PATH), which the
    // proxy refuses: the tool fails and registry.npmjs.org:443 becomes a
    // suggested capability.
    let spec = json!({"label": "fetch", "env": {}, "calls": [
        {"name": "fetch the declared page", "tool": "fetch",
         "args": {"url": "http://page.test:8080/page.html", "raw": true},
         "expect": "ok", "contains": "capgate-fetch-marker"},
        call("DENY simplified (npm install refused)", "fetch",
             json!({"url": "http://page.test:8080/page.html"}), "deny"),
        call("DENY undeclared port", "fetch",
             json!({"url": "http://page.test:8081/page.html", "raw": true}), "deny"),
    ]});
    let mut cmd = vec![
        "ip".to_owned(),
        "netns".into(),
        "exec".into(),
        lab.name.clone(),
    ];
    cmd.extend(capgate_run(&m, &["--report", &report_s], &[&server]));
    let s = drive(&dir, spec, &cmd);
    assert_all_pass(&s);
    let hits = lab.lines();
    assert!(
        hits.iter().any(|l| l == "HIT 11.0.0.2:8080 /page.html"),
        "{hits:?}"
    );
    assert!(
        hits.iter().all(|l| l.starts_with("HIT 11.0.0.2:8080 ")),
        "{hits:?}"
    );
    assert!(
        wait_for(10, || fs::read_to_string(&report)
            .is_ok_and(|r| r.contains("\"denials\""))),
        "no denials in the report"
    );
    let r: Value = serde_json::from_str(&fs::read_to_string(&report).unwrap()).unwrap();
    let suggested: Vec<&str> = r["denials"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["suggestion"].as_str())
        .collect();
    assert_eq!(
        suggested,
        [
            "net:connect:registry.npmjs.org:443",
            "net:connect:page.test:8081"
        ],
        "{r:#}"
    );
}
