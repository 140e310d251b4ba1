//! bwrap: the compiled argv plus a probe command, run for real. The probe
//! (`probe.py facts`, run by /usr/bin/python3 inside the sandbox) reports what
//! the sandbox actually saw and did; the host then checks its own side (file
//! contents, bytes received by its listeners).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

const SECRET: &str = "capgate-host-secret-must-not-leak";
const SANDBOX_UID: u64 = 65534;

/// Runs `bwrap ARGV [--setenv NAME VALUE]... -- python3 probe.py facts REQ`
/// with a host environment that holds a secret, and returns the facts.
fn facts(argv: &[String], inject: &[(&str, &str)], req: &Value) -> Value {
    let mut c = Command::new("bwrap");
    c.args(argv);
    for (name, value) in inject {
        c.args(["--setenv", name, value]);
    }
    c.args(["--", "/usr/bin/python3", "-c", PROBE_PY, "facts"]);
    c.arg(req.to_string());
    c.env("CAPGATE_SECRET", SECRET);
    for (name, value) in inject {
        c.env(name, value);
    }
    let out = run(&mut c, Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|_| {
        panic!(
            "bwrap probe produced no facts ({}):\nargv: {argv:?}\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn status(f: &Value) -> std::collections::BTreeMap<String, String> {
    f["status"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
        .collect()
}

fn pids(f: &Value) -> Vec<u64> {
    f["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect()
}

fn write_ok(f: &Value, path: &Path) -> bool {
    f["write"][s(path)]["ok"] == json!(true)
}

/// `argv` with the `--ro-bind P P` of `path` turned into `--bind P P`.
fn rw_instead_of_ro(argv: &[String], path: &Path) -> Vec<String> {
    let p = s(path);
    let mut out = argv.to_vec();
    for i in 0..out.len().saturating_sub(2) {
        if out[i] == "--ro-bind" && out[i + 1] == p && out[i + 2] == p {
            out[i] = "--bind".to_owned();
        }
    }
    out
}

/// A TCP listener on the host's 127.0.0.1 and an abstract unix socket, both
/// recording every line a client sends.
struct HostListeners {
    port: u16,
    name: String,
    got: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl HostListeners {
    fn start() -> HostListeners {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        tcp.set_nonblocking(true).unwrap();
        let port = tcp.local_addr().unwrap().port();
        let name = unique();
        let unix =
            UnixListener::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        unix.set_nonblocking(true).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, st) = (got.clone(), stop.clone());
        thread::spawn(move || {
            fn serve(mut conn: impl Read + Write, kind: &str, got: &Mutex<Vec<String>>) {
                let mut buf = Vec::new();
                let mut byte = [0u8; 1];
                while buf.len() < 256 && conn.read(&mut byte).unwrap_or(0) == 1 {
                    if byte[0] == b'\n' {
                        break;
                    }
                    buf.push(byte[0]);
                }
                got.lock()
                    .unwrap()
                    .push(format!("{kind}:{}", String::from_utf8_lossy(&buf)));
                let _ = conn.write_all(b"HOST\n");
            }
            while !st.load(Ordering::Relaxed) {
                if let Ok((c, _)) = tcp.accept() {
                    c.set_nonblocking(false).unwrap();
                    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    serve(c, "tcp", &g);
                }
                if let Ok((c, _)) = unix.accept() {
                    c.set_nonblocking(false).unwrap();
                    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    serve(c, "unix", &g);
                }
                thread::sleep(Duration::from_millis(2));
            }
        });
        HostListeners {
            port,
            name,
            got,
            stop,
        }
    }

    fn received(&self) -> Vec<String> {
        self.got.lock().unwrap().clone()
    }

    fn probes(&self, token: &str) -> Value {
        json!([
            ["tcp", "127.0.0.1", self.port, format!("{token}-tcp")],
            ["unix", self.name, 0, format!("{token}-unix")]
        ])
    }
}

impl Drop for HostListeners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Host paths that exist here and must not exist in any sandbox.
fn host_only_paths(extra: &[&Path]) -> Vec<String> {
    let mut paths: Vec<String> = [
        "/root",
        "/home",
        "/etc/shadow",
        "/etc/passwd",
        "/etc/hostname",
        "/var/log",
        "/work",
        "/srv",
        "/opt",
        "/boot",
        "/run/netns",
    ]
    .iter()
    .filter(|p| Path::new(p).exists())
    .map(|p| (*p).to_owned())
    .collect();
    paths.extend(extra.iter().map(|p| s(p)));
    paths
}

/// github.json (fs read-write, env, net) relocated into a temp dir: identity,
/// capabilities, environment, pid namespace, network, hidden host paths and
/// the user-namespace ban, each with a control run of the same probe under a
/// policy relaxed in exactly that respect.
#[test]
fn bwrap_isolation_github() {
    if !require("bwrap_isolation_github", &["bwrap"], true) {
        return;
    }
    let root = TempDir::new("bwrap-gh");
    let other = TempDir::new("bwrap-other");
    let ws = root.dir("workspace", 0o777);
    let readme = root.file("workspace/README", "github-checkout\n", 0o666);
    let secret = root.file("secret/key", "host-only\n", 0o644);
    let other_file = other.file("other.txt", "another test's data\n", 0o644);
    let out_file = ws.join("from-sandbox");
    let manifest = relocate(&fixture("fixtures/manifests/github.json"), &root.path);
    materialize(&manifest);
    let artifact = compile("github.json", &manifest, "bwrap", false, &[]);
    let (argv, injections) = argv(&artifact);
    assert_eq!(injections, ["GITHUB_PERSONAL_ACCESS_TOKEN"]);
    let token = ("GITHUB_PERSONAL_ACCESS_TOKEN", "ghp-test-value");
    let listeners = HostListeners::start();
    let hidden = host_only_paths(&[&secret, &root.join("secret"), &other.path, &other_file]);
    for must in ["/etc/shadow", "/root"] {
        assert!(
            hidden.iter().any(|p| p == must),
            "{must} missing on the host"
        );
    }
    let req = json!({
        "exists": hidden,
        "read": [s(&readme), s(&secret)],
        "write": [[s(&out_file), "written-inside\n"]],
        "connect": listeners.probes("strict"),
        "run": [["unshare", "-U", "true"]],
        "timeout": 1.0,
    });
    let f = facts(&argv, &[token], &req);
    let mut c = Checks::new();

    // identity and privileges
    c.eq("uid is 65534", f["uid"].as_u64(), Some(SANDBOX_UID));
    c.eq("gid is 65534", f["gid"].as_u64(), Some(SANDBOX_UID));
    let st = status(&f);
    c.check("every capability set is empty", caps_zero(&st), || {
        format!("{st:?}")
    });
    c.eq("NoNewPrivs is 1", st["NoNewPrivs"].as_str(), "1");

    // environment: only what the policy sets plus the host's injection
    let env = f["env"].as_object().unwrap();
    let path_value = argv
        .windows(3)
        .find(|w| w[0] == "--setenv" && w[1] == "PATH")
        .map(|w| w[2].clone());
    c.check(
        "env holds only PATH, HOME, PWD and the injection",
        env.keys()
            .all(|k| ["PATH", "HOME", "PWD", token.0].contains(&k.as_str())),
        || format!("{:?}", env.keys().collect::<Vec<_>>()),
    );
    c.check(
        "host secret does not leak",
        !env.contains_key("CAPGATE_SECRET"),
        || format!("{env:?}"),
    );
    c.eq(
        "PATH is the policy's",
        env.get("PATH").and_then(Value::as_str),
        path_value.as_deref(),
    );
    c.eq(
        "HOME is /tmp",
        env.get("HOME").and_then(Value::as_str),
        Some("/tmp"),
    );
    c.eq(
        "injected token arrives",
        env.get(token.0).and_then(Value::as_str),
        Some(token.1),
    );

    // pid namespace
    let p = pids(&f);
    c.check(
        "host processes invisible",
        p.len() <= 5 && !p.contains(&u64::from(std::process::id())),
        || format!("pids {p:?}"),
    );

    // network: neither the host's loopback TCP listener nor its abstract socket
    for (i, kind) in ["tcp", "unix"].iter().enumerate() {
        c.check(
            &format!("{kind} to host listener refused"),
            f["connect"][i]["ok"] == json!(false),
            || format!("{}", f["connect"][i]),
        );
    }
    c.check(
        "host listeners received nothing",
        listeners.received().is_empty(),
        || format!("{:?}", listeners.received()),
    );

    // filesystem
    for path in &hidden {
        c.check(
            &format!("{path} absent"),
            f["exists"][path] == json!(false),
            || "visible inside the sandbox".to_owned(),
        );
    }
    c.eq(
        "declared file readable (control for the absence probes)",
        f["read"][s(&readme)]["data"].as_str(),
        Some("github-checkout\n"),
    );
    c.check(
        "undeclared sibling unreadable",
        f["read"][s(&secret)]["ok"] == json!(false),
        || format!("{}", f["read"][s(&secret)]),
    );
    c.check(
        "declared read-write path writable",
        write_ok(&f, &out_file),
        || format!("{}", f["write"]),
    );
    c.eq(
        "write visible on the host",
        read(&out_file).as_deref(),
        Some("written-inside\n"),
    );

    // own session (no TIOCSTI into the launcher's terminal)
    c.check(
        "own session",
        f["sid"].as_u64().is_some_and(|sid| sid != 0),
        || format!("sid {}", f["sid"]),
    );

    // no nested user namespaces
    c.check(
        "nested user namespace forbidden",
        f["run"][0]["rc"] != json!(0),
        || format!("{}", f["run"][0]),
    );

    // ---- controls: the same probe, the policy relaxed in one respect
    let ctl = facts(
        &without(&argv, &["--unshare-net"]),
        &[token],
        &json!({
            "connect": listeners.probes("control"), "timeout": 2.0
        }),
    );
    for (i, kind) in ["tcp", "unix"].iter().enumerate() {
        c.check(
            &format!("control: {kind} connects without --unshare-net"),
            ctl["connect"][i]["reply"] == json!("HOST\n"),
            || format!("{}", ctl["connect"][i]),
        );
    }
    let got = listeners.received();
    c.check(
        "control: host listeners received the tokens",
        got.contains(&"tcp:control-tcp".to_owned())
            && got.contains(&"unix:control-unix".to_owned()),
        || format!("{got:?}"),
    );

    let ctl = facts(&without(&argv, &["--clearenv"]), &[token], &json!({}));
    c.eq(
        "control: secret visible without --clearenv",
        ctl["env"]["CAPGATE_SECRET"].as_str(),
        Some(SECRET),
    );

    let ctl = facts(&without(&argv, &["--unshare-pid"]), &[token], &json!({}));
    let p = pids(&ctl);
    c.check(
        "control: host pids visible without --unshare-pid",
        p.contains(&u64::from(std::process::id())),
        || format!("{} pids", p.len()),
    );

    let ctl = facts(
        &without(&argv, &["--cap-drop", "ALL"]),
        &[token],
        &json!({}),
    );
    let st = status(&ctl);
    c.check(
        "control: bounding set non-empty without --cap-drop ALL",
        !caps_zero(&st),
        || format!("{st:?}"),
    );

    let ctl = facts(
        &without(&argv, &["--disable-userns"]),
        &[token],
        &json!({"run": [["unshare", "-U", "true"]]}),
    );
    c.eq(
        "control: nested userns works without --disable-userns",
        ctl["run"][0]["rc"].as_i64(),
        Some(0),
    );

    let ctl = facts(&without(&argv, &["--new-session"]), &[token], &json!({}));
    c.eq(
        "control: launcher's session without --new-session",
        ctl["sid"].as_u64(),
        Some(0),
    );

    let ctl = facts(&with_value(&argv, "--uid", "0"), &[token], &json!({}));
    c.eq(
        "control: probe reports uid 0 with --uid 0",
        ctl["uid"].as_u64(),
        Some(0),
    );

    c.finish("bwrap_isolation_github");
}

/// nested-writes.json relocated: a read-only checkout with a writable child,
/// a single bound file, and a remount attempt.
#[test]
fn bwrap_filesystem_nested_writes() {
    if !require("bwrap_filesystem_nested_writes", &["bwrap"], true) {
        return;
    }
    let root = TempDir::new("bwrap-fs");
    // 0777/0666: only the mount can refuse a write, never file permissions.
    let ws = root.dir("workspace", 0o777);
    let readme = root.file("workspace/README", "checkout\n", 0o666);
    root.file("workspace/src/main.rs", "fn main() {}\n", 0o666);
    let target = root.dir("workspace/target", 0o777);
    let conf = root.file("etc/app.conf", "conf\n", 0o666);
    let neighbour = root.file("etc/neighbour.conf", "undeclared\n", 0o666);
    let manifest = relocate(
        &fixture("fixtures/manifests/nested-writes.json"),
        &root.path,
    );
    materialize(&manifest);
    let (argv, _) = argv(&compile(
        "nested-writes.json",
        &manifest,
        "bwrap",
        false,
        &[],
    ));

    let new_in_ro = ws.join("new-file");
    let built = target.join("built");
    let req = json!({
        "exists": [s(&neighbour)],
        "read": [s(&conf), s(&readme)],
        "write": [
            [s(&readme), "overwritten\n"],
            [s(&new_in_ro), "x\n"],
            [s(&built), "artifact\n"],
            [s(&conf), "overwritten\n"],
        ],
        "remount": [[s(&ws), s(&ws.join("remounted")), "x\n"]],
    });
    let f = facts(&argv, &[], &req);
    let mut c = Checks::new();
    c.check(
        "read-only file not writable",
        !write_ok(&f, &readme),
        || format!("{}", f["write"]),
    );
    c.check(
        "read-only dir: no new files",
        !write_ok(&f, &new_in_ro),
        || format!("{}", f["write"]),
    );
    c.eq(
        "read-only file unchanged on the host",
        read(&readme).as_deref(),
        Some("checkout\n"),
    );
    c.check(
        "new file absent on the host",
        !new_in_ro.exists(),
        String::new,
    );
    c.check(
        "writable child of a read-only dir is writable",
        write_ok(&f, &built),
        || format!("{}", f["write"]),
    );
    c.eq(
        "child write visible on the host",
        read(&built).as_deref(),
        Some("artifact\n"),
    );
    c.eq(
        "bound file readable",
        f["read"][s(&conf)]["data"].as_str(),
        Some("conf\n"),
    );
    c.check("bound file not writable", !write_ok(&f, &conf), || {
        format!("{}", f["write"])
    });
    c.eq(
        "bound file unchanged on the host",
        read(&conf).as_deref(),
        Some("conf\n"),
    );
    c.check(
        "file bind exposes only the file",
        f["exists"][s(&neighbour)] == json!(false),
        String::new,
    );
    let rm = &f["remount"][s(&ws)];
    c.check(
        "remount read-write refused",
        rm["mount_ok"] == json!(false) && rm["write_ok"] == json!(false),
        || format!("{rm}"),
    );
    c.check(
        "nothing written through a remount",
        !ws.join("remounted").exists(),
        String::new,
    );

    // ---- controls
    let ctl = facts(
        &rw_instead_of_ro(&argv, &ws),
        &[],
        &json!({"write": [[s(&ws.join("ctl-bind")), "y\n"]]}),
    );
    c.check(
        "control: --bind instead of --ro-bind makes it writable",
        write_ok(&ctl, &ws.join("ctl-bind")),
        || format!("{}", ctl["write"]),
    );
    c.eq(
        "control: that write reaches the host",
        read(&ws.join("ctl-bind")).as_deref(),
        Some("y\n"),
    );
    // root with capabilities in the sandbox's user namespace can remount:
    // proves the remount probe would notice. `--disable-userns` goes too: bwrap
    // implements it with a second user namespace, which also locks the mounts.
    let relaxed = without(
        &without(&argv, &["--cap-drop", "ALL"]),
        &["--disable-userns"],
    );
    let privileged = with_value(&with_value(&relaxed, "--uid", "0"), "--gid", "0");
    let ctl = facts(
        &privileged,
        &[],
        &json!({"remount": [[s(&ws), s(&ws.join("ctl-remount")), "z\n"]]}),
    );
    let rm = &ctl["remount"][s(&ws)];
    c.check(
        "control: uid 0 with capabilities can remount",
        rm["mount_ok"] == json!(true) && rm["write_ok"] == json!(true),
        || format!("{rm}"),
    );
    c.eq(
        "control: remounted write reaches the host",
        read(&ws.join("ctl-remount")).as_deref(),
        Some("z\n"),
    );
    c.finish("bwrap_filesystem_nested_writes");
}

/// puppeteer.json (exec:spawn:chromium?nestedSandbox=true) relocated: the
/// program may build its own user, pid and mount namespaces, while the outer
/// sandbox keeps every capability dropped and the host's processes hidden,
/// and the inner root cannot unlock the outer read-only mounts.
#[test]
fn bwrap_nested_sandbox_puppeteer() {
    if !require("bwrap_nested_sandbox_puppeteer", &["bwrap"], true) {
        return;
    }
    let root = TempDir::new("bwrap-nested");
    root.dir("tmp", 0o777);
    let manifest = relocate(&fixture("fixtures/manifests/puppeteer.json"), &root.path);
    materialize(&manifest);
    let (argv, _) = argv(&compile("puppeteer.json", &manifest, "bwrap", false, &[]));
    let req = json!({
        "run": [
            ["unshare", "-Ur", "sh", "-c", "id -u; grep CapEff /proc/self/status"],
            ["unshare", "-Urpf", "sh", "-c", "echo $$"],
            ["unshare", "-Urm", "sh", "-c", "mount -o remount,rw,bind /usr && touch /usr/cgenf-probe"],
            ["unshare", "-Urm", "sh", "-c", "mount -t tmpfs none /tmp && echo inner > /tmp/x && cat /tmp/x"],
        ],
    });
    let f = facts(&argv, &[("DISPLAY", ":99")], &req);
    let mut c = Checks::new();
    let run = |i: usize| &f["run"][i];
    c.check(
        "outer sandbox keeps every capability dropped",
        caps_zero(&status(&f)),
        || format!("{:?}", status(&f)),
    );
    c.eq("outer uid is 65534", f["uid"].as_u64(), Some(SANDBOX_UID));
    let p = pids(&f);
    c.check(
        "outer sandbox hides host processes",
        p.len() <= 5 && !p.contains(&u64::from(std::process::id())),
        || format!("pids {p:?}"),
    );
    c.check(
        "inner program creates its own user namespace (root inside)",
        run(0)["rc"] == json!(0)
            && run(0)["stdout"]
                .as_str()
                .unwrap_or("")
                .starts_with("0\nCapEff:"),
        || format!("{}", run(0)),
    );
    c.check(
        "inner program creates its own pid namespace",
        run(1)["rc"] == json!(0) && run(1)["stdout"] == json!("1\n"),
        || format!("{}", run(1)),
    );
    c.check(
        "inner root cannot remount the outer read-only /usr",
        run(2)["rc"] != json!(0),
        || format!("{}", run(2)),
    );
    c.check(
        "nothing written to the host /usr",
        !Path::new("/usr/cgenf-probe").exists(),
        String::new,
    );
    // control: mounting works at all in the inner namespace, so the refused
    // remount above is the kernel's lock on the outer mounts.
    c.check(
        "control: inner root can mount its own tmpfs",
        run(3)["rc"] == json!(0) && run(3)["stdout"] == json!("inner\n"),
        || format!("{}", run(3)),
    );
    c.check(
        "nestedSandbox omits --disable-userns",
        !argv.iter().any(|a| a == "--disable-userns"),
        || format!("{argv:?}"),
    );
    c.finish("bwrap_nested_sandbox_puppeteer");
}
