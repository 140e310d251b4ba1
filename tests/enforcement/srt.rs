//! srt (Anthropic sandbox-runtime 0.0.83, from `$CAPGATE_MCP_PREFIX/npm`): the
//! compiled `srt-settings.json`, run by the real `srt --settings FILE -- sh -c
//! PROBES` (bubblewrap, socat, srt's seccomp helper and proxy) and probed from
//! inside. Every check is then mutation-checked in the same test: a settings
//! file with exactly the relevant part of capgate's output removed or widened
//! must flip that probe, so no probe passes whatever the policy says.
//!
//! Network: srt and its proxy run in a network namespace the test creates,
//! with a mount namespace whose /etc/hosts names the test's destinations; the
//! upstream listeners live in a second namespace joined by a veth pair (srt
//! refuses names that resolve to its own namespace's addresses). Nothing
//! routes out of either namespace.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

fn prefix() -> PathBuf {
    PathBuf::from(std::env::var("CAPGATE_MCP_PREFIX").unwrap_or_else(|_| "/opt/capgate-mcp".into()))
}

fn srt_bin() -> PathBuf {
    prefix().join("npm/bin/srt")
}

fn srt_package() -> PathBuf {
    prefix().join("npm/lib/node_modules/@anthropic-ai/sandbox-runtime")
}

/// The directory of srt's seccomp helper: capgate's `helper_dir` option.
fn helper_dir() -> String {
    s(&srt_package().join("vendor/seccomp"))
}

/// Root, the tools srt runs (bwrap, socat, ripgrep) and srt itself.
fn require_srt(test: &str, extra: &[&str]) -> bool {
    let mut tools = vec!["bwrap", "socat", "rg", "node", "sh"];
    tools.extend_from_slice(extra);
    if !require(test, &tools, true) {
        return false;
    }
    if !srt_bin().exists() {
        return skip(
            test,
            &format!("needs srt at {} (see .ci/run)", srt_bin().display()),
        );
    }
    true
}

/// Compiles for srt with the test's helper and socket directories; returns
/// the settings and the capabilities listed in `unenforceable[]`.
fn compile_srt(label: &str, manifest: &str, socket_dir: &Path) -> (Value, Vec<String>) {
    let artifact = compile(
        label,
        manifest,
        "srt",
        false,
        &[
            ("helper_dir", &helper_dir()),
            ("socket_dir", &s(socket_dir)),
        ],
    );
    let unenforced = match &artifact {
        capgate::artifact::Artifact::Config(c) => c
            .unenforceable
            .iter()
            .flat_map(|u| u.capabilities.iter().map(|c| c.capability.clone()))
            .collect(),
        capgate::artifact::Artifact::Argv(_) => panic!("expected a config artifact"),
    };
    let settings = serde_json::from_str(&config(&artifact)).expect("srt settings are JSON");
    (settings, unenforced)
}

/// Runs `sh -c script` under srt with `settings`, from a cleared environment
/// holding TMPDIR=`<dir>/sock` (as the target's notes ask), in `cwd`; `wrap`
/// is the argv prefix that places srt (e.g. into a network namespace);
/// `env` adds `NAME=VALUE` entries to srt's own environment. Returns stdout
/// and stderr.
fn run_srt(
    dir: &TempDir,
    name: &str,
    settings: &Value,
    wrap: &[&str],
    env: &[&str],
    cwd: &Path,
    script: &str,
) -> (String, String) {
    let file = dir.file(
        &format!("{name}.json"),
        &serde_json::to_string_pretty(settings).unwrap(),
        0o644,
    );
    let srt = s(&srt_bin());
    let file = s(&file);
    let tmpdir = format!("TMPDIR={}", s(&dir.join("sock")));
    let mut argv: Vec<&str> = wrap.to_vec();
    argv.extend([
        "env",
        "-i",
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "HOME=/root",
        tmpdir.as_str(),
    ]);
    argv.extend(env);
    argv.extend([
        srt.as_str(),
        "--settings",
        file.as_str(),
        "--",
        "sh",
        "-c",
        script,
    ]);
    let mut c = Command::new(argv[0]);
    c.args(&argv[1..]).current_dir(cwd);
    let out = run(&mut c, Duration::from_secs(60));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One settings change and the probes it must flip.
struct Mutation {
    what: &'static str,
    apply: Box<dyn Fn(&mut Value)>,
    flips: &'static [&'static str],
}

fn list_mut<'a>(settings: &'a mut Value, section: &str, key: &str) -> &'a mut Vec<Value> {
    settings[section][key]
        .as_array_mut()
        .unwrap_or_else(|| panic!("{section}.{key} is a list"))
}

fn remove_entry(settings: &mut Value, section: &str, key: &str, entry: &str) {
    let list = list_mut(settings, section, key);
    let before = list.len();
    list.retain(|v| v.as_str() != Some(entry));
    assert_eq!(before, list.len() + 1, "{section}.{key} held {entry} once");
}

// ---------------------------------------------------------------- filesystem

/// Probe script: one `NAME=ok|no` line per probe, `STARTED=ok` first.
const FS_PROBES: &str = r#"
echo STARTED=ok
p() { name=$1; shift; if "$@" >/dev/null 2>&1; then echo "$name=ok"; else echo "$name=no"; fi; }
p read_declared grep -qx READ-OK "$T/ws/r.txt"
p read_declared_deep grep -qx DEEP "$T/ws/sub/deep.txt"
p read_nested_writable grep -qx PRE "$T/ws/out/pre.txt"
p see_sibling_dir ls "$T/sib"
p see_sibling_file cat "$T/undeclared.txt"
p see_sys_kernel test -e /sys/kernel
p see_host_root_file cat "$R"
p see_srt_tmp cat /tmp/claude/$N
p write_nested sh -c "echo NEW > '$T/ws/out/$N'"
p write_parent sh -c "echo NEW > '$T/ws/$N'"
p read_file_in_readonly grep -qx LOG "$T/ws/log.txt"
p write_file_in_readonly sh -c "echo NEW >> '$T/ws/log.txt'"
p write_flat sh -c "echo NEW > '$T/flat/$N'"
p write_srt_tmp sh -c "echo NEW > /tmp/claude/$N.w"
p write_hidden_scratch sh -c "mkdir -p '$T/sib2' && echo NEW > '$T/sib2/$N'"
p unix_socket python3 -c 'import socket; socket.socket(socket.AF_UNIX)'
"#;

#[test]
fn srt_filesystem() {
    const TEST: &str = "srt_filesystem";
    if !require_srt(TEST, &[]) {
        return;
    }
    let root = TempDir::new("srtfs");
    let t = s(&root.path);
    root.file("ws/r.txt", "READ-OK\n", 0o644);
    root.file("ws/sub/deep.txt", "DEEP\n", 0o644);
    root.file("ws/out/pre.txt", "PRE\n", 0o644);
    root.file("ws/log.txt", "LOG\n", 0o644);
    root.dir("flat", 0o755);
    root.file("sib/secret.txt", "SECRET\n", 0o644);
    root.file("undeclared.txt", "SECRET\n", 0o644);
    let n = unique();
    // A host file outside /tmp, in another top-level directory.
    let host_dir = Path::new("/var/tmp").join(format!("{n}-srtfs"));
    std::fs::create_dir(&host_dir).unwrap();
    let _host_guard = Cleanup(vec![host_dir.clone()]);
    let host_file = host_dir.join("h.txt");
    std::fs::write(&host_file, "SECRET\n").unwrap();
    // srt's own TMPDIR, which it makes writable when it exists on the host:
    // created only when absent, and removed again only then.
    let claude = Path::new("/tmp/claude");
    let made_claude = !claude.exists();
    if made_claude {
        std::fs::create_dir(claude).unwrap();
    }
    let mut claude_files = vec![claude.join(&n), claude.join(format!("{n}.w"))];
    if made_claude {
        claude_files.push(claude.to_owned());
    }
    let _claude_guard = Cleanup(claude_files);
    std::fs::write(claude.join(&n), "SECRET\n").unwrap();

    let manifest = json!({
        "name": "srt-fs", "version": "1.0.0", "grammar": "0.0",
        "serverCapabilities": [
            format!("fs:read:{t}/ws/**"),
            format!("fs:read,write,create,delete:{t}/ws/out/**"),
            format!("fs:read,write,create,delete:{t}/flat/**"),
            // A writable path without a glob inside the read-only directory:
            // unenforceable, and refused rather than wider.
            format!("fs:read,write,create,delete:{t}/ws/log.txt"),
        ],
        "tools": []
    })
    .to_string();
    let work = TempDir::new("srtfs-run");
    let (settings, unenforced) = compile_srt("srt-fs", &manifest, &work.dir("sock", 0o700));
    let script = format!("T='{t}'; R='{}'; N='{n}'\n{FS_PROBES}", s(&host_file));
    let probe = |name: &str, settings: &Value| -> (BTreeMap<String, String>, String) {
        let (out, err) = run_srt(&work, name, settings, &[], &[], &root.join("ws"), &script);
        (kv(&out), format!("stdout:\n{out}\nstderr:\n{err}"))
    };

    let mut checks = Checks::new();
    let (got, detail) = probe("control", &settings);
    let want: BTreeMap<&str, &str> = [
        ("STARTED", "ok"),
        ("read_declared", "ok"),
        ("read_declared_deep", "ok"),
        ("read_nested_writable", "ok"),
        ("see_sibling_dir", "no"),
        ("see_sibling_file", "no"),
        ("see_sys_kernel", "no"),
        ("see_host_root_file", "no"),
        ("see_srt_tmp", "no"),
        ("write_nested", "ok"),
        ("write_parent", "no"),
        ("read_file_in_readonly", "ok"),
        ("write_file_in_readonly", "no"),
        ("write_flat", "ok"),
        ("write_srt_tmp", "no"),
        // Undeclared paths are an in-memory tmpfs: writable, never the host's.
        ("write_hidden_scratch", "ok"),
        // srt's seccomp helper refuses every new AF_UNIX socket.
        ("unix_socket", "no"),
    ]
    .into();
    for (k, v) in &want {
        checks.check(
            &format!("control: {k}={v}"),
            got.get(*k).map(String::as_str) == Some(*v),
            || detail.clone(),
        );
    }
    checks.eq(
        "compile: the writable file inside the read-only directory is unenforceable",
        unenforced,
        vec![format!("fs:read,write,create,delete:{t}/ws/log.txt")],
    );
    checks.eq(
        "host: the file inside the read-only directory is unchanged",
        read(&root.join("ws/log.txt")),
        Some("LOG\n".to_owned()),
    );
    // What the writes did on the host.
    checks.eq(
        "host: the nested writable dir got the file",
        read(&root.join(&format!("ws/out/{n}"))),
        Some("NEW\n".to_owned()),
    );
    checks.eq(
        "host: the flat writable dir got the file",
        read(&root.join(&format!("flat/{n}"))),
        Some("NEW\n".to_owned()),
    );
    checks.eq(
        "host: the read-only parent did not",
        read(&root.join(&format!("ws/{n}"))),
        None,
    );
    checks.eq(
        "host: the scratch write stayed in the sandbox",
        root.join("sib2").exists(),
        false,
    );
    checks.eq(
        "host: /tmp/claude was not written",
        claude.join(format!("{n}.w")).exists(),
        false,
    );

    let ws = format!("{t}/ws");
    let out_dir = format!("{t}/ws/out");
    let mutations = [
        Mutation {
            what: "the nested writable dir left out of denyRead (srt's own layering)",
            apply: Box::new({
                let out_dir = out_dir.clone();
                move |v: &mut Value| remove_entry(v, "filesystem", "denyRead", &out_dir)
            }),
            flips: &["write_nested"],
        },
        Mutation {
            what: "the read-only parent in allowWrite",
            apply: Box::new({
                let ws = ws.clone();
                move |v: &mut Value| list_mut(v, "filesystem", "allowWrite").push(json!(ws))
            }),
            flips: &["write_parent"],
        },
        Mutation {
            what: "no denyRead of /",
            apply: Box::new(|v: &mut Value| remove_entry(v, "filesystem", "denyRead", "/")),
            flips: &["see_sibling_dir", "see_sibling_file", "see_host_root_file"],
        },
        Mutation {
            what: "no denyRead of /sys",
            apply: Box::new(|v: &mut Value| remove_entry(v, "filesystem", "denyRead", "/sys")),
            flips: &["see_sys_kernel"],
        },
        Mutation {
            what: "the declared read path left out of allowRead",
            apply: Box::new({
                let ws = ws.clone();
                move |v: &mut Value| remove_entry(v, "filesystem", "allowRead", &ws)
            }),
            flips: &["read_declared", "read_declared_deep"],
        },
        Mutation {
            what: "no credentials deny of /tmp/claude",
            apply: Box::new(|v: &mut Value| {
                v.as_object_mut().unwrap().remove("credentials");
            }),
            flips: &["see_srt_tmp", "write_srt_tmp"],
        },
        Mutation {
            what: "allowAllUnixSockets",
            apply: Box::new(|v: &mut Value| v["network"]["allowAllUnixSockets"] = json!(true)),
            flips: &["unix_socket"],
        },
        Mutation {
            // What `--set system_read=/` (or helper_dir, socket_dir) emitted
            // before those options were checked as fs:read capabilities
            // (tests/overgrant.rs::srt_read_path_options_grant_no_more_than_a_capability).
            what: "allowRead gains /",
            apply: Box::new(|v: &mut Value| {
                list_mut(v, "filesystem", "allowRead").push(json!("/"))
            }),
            flips: &["see_sibling_dir", "see_sibling_file", "see_host_root_file"],
        },
        Mutation {
            what: "srt's helper directory hidden",
            apply: Box::new(|v: &mut Value| {
                remove_entry(v, "filesystem", "allowRead", &helper_dir())
            }),
            flips: &["STARTED"],
        },
    ];
    for (i, m) in mutations.iter().enumerate() {
        let mut mutated = settings.clone();
        (m.apply)(&mut mutated);
        let (got_m, detail_m) = probe(&format!("mutation{i}"), &mutated);
        for flip in m.flips {
            let control = want[flip];
            let flipped = if control == "ok" {
                got_m.get(*flip).map(String::as_str) != Some("ok")
            } else {
                got_m.get(*flip).map(String::as_str) == Some("ok")
            };
            checks.check(
                &format!("mutation `{}` flips {flip} (control {control})", m.what),
                flipped,
                || detail_m.clone(),
            );
        }
    }
    checks.finish(TEST);
}

/// Removes files and directories outside the test's TempDirs on drop.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(p);
            } else {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

// ---------------------------------------------------------------- network

const HOSTS: &str = "\
127.0.0.1 localhost
::1 localhost
11.0.0.2 allowed.test sub.wild.test wild.test denied.test
198.18.0.7 private.test
127.0.0.1 a.lo.localhost db.localhost
";

#[test]
fn srt_network() {
    const TEST: &str = "srt_network";
    if !require_srt(TEST, &["ip", "unshare", "curl", "mount"]) {
        return;
    }
    let (p1, p2) = (18080u16, 18443u16);
    let mut near = Netns::new();
    let far = Netns::new();
    let (va, vb) = (format!("cgs{}a", short()), format!("cgs{}b", short()));
    ok(&mut cmd(
        "ip",
        &[
            "link", "add", &va, "netns", &near.name, "type", "veth", "peer", "name", &vb, "netns",
            &far.name,
        ],
    ));
    near.ip(&["addr", "add", "11.0.0.1/24", "dev", &va]);
    near.ip(&["link", "set", &va, "up"]);
    far.ip(&["addr", "add", "11.0.0.2/24", "dev", &vb]);
    far.ip(&["link", "set", &vb, "up"]);

    let dir = TempDir::new("srtnet");
    let log = dir.join("upstream.log");
    let upstream = serve(
        "upstream",
        &far.exec_prefix(),
        &log,
        &[format!("tcp:11.0.0.2:{p1}"), format!("tcp:11.0.0.2:{p2}")],
    );
    near.adopt(upstream);
    // A service on the loopback of srt's own namespace (the host's, for a
    // real deployment): no name may reach it.
    let loopback_log = dir.join("loopback.log");
    let loopback = serve(
        "loopback",
        &near.exec_prefix(),
        &loopback_log,
        &[format!("tcp:127.0.0.1:{p1}")],
    );
    near.adopt(loopback);
    // A would-be parent proxy on srt's loopback: srt takes one from
    // HTTP_PROXY in its own environment unless the settings pin parentProxy.
    let p3 = 18129u16;
    let parent_log = dir.join("parent.log");
    let parent = serve(
        "parent",
        &near.exec_prefix(),
        &parent_log,
        &[format!("tcp:127.0.0.1:{p3}")],
    );
    near.adopt(parent);
    let hosts = dir.file("hosts", HOSTS, 0o644);

    let manifest = json!({
        "name": "srt-net", "version": "1.0.0", "grammar": "0.0",
        "serverCapabilities": [
            format!("net:connect:allowed.test:{p1}"),
            format!("net:connect:*.wild.test:{p1}"),
            format!("net:connect:private.test:{p1}"),
            format!("net:connect:11.0.0.2:{p2}"),
            // Loopback names: srt's proxy would connect them to its own
            // host's loopback, past deniedResolvedAddresses.
            format!("net:connect:localhost:{p1}"),
            format!("net:connect:db.localhost:{p1}"),
            format!("net:connect:*.lo.localhost:{p1}"),
        ],
        "tools": []
    })
    .to_string();
    let (settings, unenforced) = compile_srt("srt-net", &manifest, &dir.dir("sock", 0o700));

    // One curl per probe, through srt's proxy (the proxy variables srt sets;
    // NO_PROXY cleared), printing the HTTP status; `direct` skips the proxy.
    let probes: Vec<(&str, String)> = vec![
        ("name_port", format!("http://allowed.test:{p1}/name_port")),
        (
            "name_other_port",
            format!("http://allowed.test:{p2}/name_other_port"),
        ),
        (
            "wildcard_sub",
            format!("http://sub.wild.test:{p1}/wildcard_sub"),
        ),
        (
            "wildcard_base",
            format!("http://wild.test:{p1}/wildcard_base"),
        ),
        ("undeclared", format!("http://denied.test:{p1}/undeclared")),
        ("ip_port", format!("http://11.0.0.2:{p2}/ip_port")),
        (
            "ip_other_port",
            format!("http://11.0.0.2:{p1}/ip_other_port"),
        ),
        (
            "private_resolve",
            format!("http://private.test:{p1}/private_resolve"),
        ),
        (
            "loopback_name",
            format!("http://localhost:{p1}/loopback_name"),
        ),
        (
            "loopback_sub",
            format!("http://db.localhost:{p1}/loopback_sub"),
        ),
        (
            "loopback_wildcard",
            format!("http://a.lo.localhost:{p1}/loopback_wildcard"),
        ),
    ];
    let mut script = String::from("echo STARTED=ok\nunset NO_PROXY no_proxy\n");
    for (name, url) in &probes {
        script.push_str(&format!(
            "echo {name}=$(curl -s -o /dev/null -m 5 -w '%{{http_code}}' '{url}')\n"
        ));
    }
    script.push_str(&format!(
        "echo direct=$(curl -s -o /dev/null -m 3 --noproxy '*' -w '%{{http_code}}' 'http://11.0.0.2:{p2}/direct')\n"
    ));
    let hosts_s = s(&hosts);
    let mount_hosts = format!("mount --bind '{hosts_s}' /etc/hosts && exec \"$@\"");
    let mut wrap: Vec<&str> = near.exec_prefix();
    wrap.extend([
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &mount_hosts,
        "sh",
    ]);
    let cwd = dir.dir("cwd", 0o755);
    let probe_env =
        |name: &str, settings: &Value, env: &[&str]| -> (BTreeMap<String, String>, String) {
            let (out, err) = run_srt(&dir, name, settings, &wrap, env, &cwd, &script);
            (kv(&out), format!("stdout:\n{out}\nstderr:\n{err}"))
        };
    let probe = |name: &str, settings: &Value| probe_env(name, settings, &[]);
    let reached = |path: &str| {
        hits(&log)
            .into_iter()
            .chain(hits(&loopback_log))
            .any(|h| h.data.contains(&format!("GET /{path} ")))
    };

    let mut checks = Checks::new();
    checks.eq(
        "compile: only the loopback name `localhost` is unenforceable",
        unenforced,
        vec![format!("net:connect:localhost:{p1}")],
    );
    let (got, detail) = probe("control", &settings);
    let allowed = ["name_port", "wildcard_sub", "ip_port"];
    checks.eq(
        "control: started",
        got.get("STARTED").map(String::as_str),
        Some("ok"),
    );
    for (name, _) in &probes {
        let want = if allowed.contains(name) { "200" } else { "403" };
        checks.check(
            &format!("control: {name} answered {want}"),
            got.get(*name).map(String::as_str) == Some(want),
            || detail.clone(),
        );
        checks.eq(
            &format!("control: {name} reached the upstream"),
            reached(name),
            allowed.contains(name),
        );
    }
    checks.check(
        "control: a direct connection (no proxy) fails",
        got.get("direct").map(String::as_str) == Some("000"),
        || detail.clone(),
    );
    checks.eq(
        "control: direct reached the upstream",
        reached("direct"),
        false,
    );

    let entry = |host: &str, port: u16| format!("{host}:{port}");
    let mutations = [
        Mutation {
            what: "allowed.test without its port",
            apply: Box::new({
                let e = entry("allowed.test", p1);
                move |v: &mut Value| {
                    remove_entry(v, "network", "allowedDomains", &e);
                    list_mut(v, "network", "allowedDomains").push(json!("allowed.test"));
                }
            }),
            flips: &["name_other_port"],
        },
        Mutation {
            what: "the IP literal without its port",
            apply: Box::new({
                let e = entry("11.0.0.2", p2);
                move |v: &mut Value| {
                    remove_entry(v, "network", "allowedDomains", &e);
                    list_mut(v, "network", "allowedDomains").push(json!("11.0.0.2"));
                }
            }),
            flips: &["ip_other_port"],
        },
        Mutation {
            what: "the undeclared name allowed",
            apply: Box::new(move |v: &mut Value| {
                list_mut(v, "network", "allowedDomains").push(json!(format!("denied.test:{p1}")));
            }),
            flips: &["undeclared"],
        },
        Mutation {
            what: "the wildcard's base name allowed",
            apply: Box::new(move |v: &mut Value| {
                list_mut(v, "network", "allowedDomains").push(json!(format!("wild.test:{p1}")));
            }),
            flips: &["wildcard_base"],
        },
        Mutation {
            what: "no deniedResolvedAddresses",
            apply: Box::new(|v: &mut Value| {
                v["network"]
                    .as_object_mut()
                    .unwrap()
                    .remove("deniedResolvedAddresses");
            }),
            flips: &["private_resolve"],
        },
        Mutation {
            what: "no deniedDomains (the loopback names)",
            apply: Box::new(|v: &mut Value| v["network"]["deniedDomains"] = json!([])),
            flips: &["loopback_name", "loopback_sub", "loopback_wildcard"],
        },
        Mutation {
            what: "srt's socket directory hidden",
            apply: Box::new({
                let sock = s(&dir.join("sock"));
                move |v: &mut Value| remove_entry(v, "filesystem", "allowRead", &sock)
            }),
            flips: &["name_port", "wildcard_sub", "ip_port"],
        },
    ];
    for (i, m) in mutations.iter().enumerate() {
        let mut mutated = settings.clone();
        (m.apply)(&mut mutated);
        let (got_m, detail_m) = probe(&format!("mutation{i}"), &mutated);
        // Any other status flips it: 200 from the upstream, 502 where nothing
        // routes, 000 where the proxy cannot be reached.
        for flip in m.flips {
            let control = if allowed.contains(flip) { "200" } else { "403" };
            checks.check(
                &format!("mutation `{}` flips {flip} (control {control})", m.what),
                got_m.get(*flip).is_some_and(|c| c != control),
                || detail_m.clone(),
            );
        }
    }

    // srt started with HTTP_PROXY in its own environment: the settings pin
    // `parentProxy.noProxy` to `*`, so srt still connects (and checks the
    // resolved addresses) itself and hands nothing to that parent. Without
    // the pin, srt sends the special-range and loopback names to the parent,
    // which resolves them unchecked.
    let parent_env = format!("HTTP_PROXY=http://127.0.0.1:{p3}");
    let parent_reqs = || {
        hits(&parent_log)
            .into_iter()
            .filter(|h| h.data.contains("GET http://"))
            .count()
    };
    let (got_p, detail_p) = probe_env("parent", &settings, &[parent_env.as_str()]);
    for (name, want) in [
        ("name_port", "200"),
        ("private_resolve", "403"),
        ("loopback_name", "403"),
        ("loopback_sub", "403"),
    ] {
        checks.check(
            &format!("HTTP_PROXY in srt's environment: {name} answered {want}"),
            got_p.get(name).map(String::as_str) == Some(want),
            || detail_p.clone(),
        );
    }
    checks.eq(
        "HTTP_PROXY in srt's environment: nothing went to that parent proxy",
        parent_reqs(),
        0,
    );
    let mut unpinned = settings.clone();
    unpinned["network"]
        .as_object_mut()
        .unwrap()
        .remove("parentProxy");
    let (got_u, detail_u) = probe_env("parent-unpinned", &unpinned, &[parent_env.as_str()]);
    checks.check(
        "mutation `no parentProxy pin` flips private_resolve (control 403)",
        got_u.get("private_resolve").is_some_and(|c| c != "403"),
        || detail_u.clone(),
    );
    checks.check(
        "mutation `no parentProxy pin` sends requests to the parent proxy",
        parent_reqs() > 0,
        || detail_u.clone(),
    );
    checks.finish(TEST);
}
