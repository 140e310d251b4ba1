//! bwrap: the compiled argv plus a probe command, run for real. The probe
//! (`probe.py facts`, run by /usr/bin/python3 inside the sandbox) reports what
//! the sandbox actually saw and did; the host then checks its own side (file
//! contents, bytes received by its listeners).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

const SECRET: &str = "capgate-host-secret-must-not-leak";
const SANDBOX_UID: u64 = 65534;

/// Runs `LAUNCHER bwrap ARGV [--setenv NAME VALUE]... -- python3 probe.py
/// facts REQ` (the launch docs/cli.md documents) with a host environment
/// that holds a secret, and returns the facts. An empty `launcher` is the
/// root launch, for controls only.
fn facts(launcher: &[String], argv: &[String], inject: &[(&str, &str)], req: &Value) -> Value {
    let mut c = bwrap_command(launcher, argv);
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
            "bwrap probe produced no facts ({}):\nlauncher: {launcher:?}\nargv: {argv:?}\nstdout: {stdout}\nstderr: {}",
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
    if !require("bwrap_isolation_github", &["bwrap", "setpriv"], true) {
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
    let launch = launcher(&artifact);
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
    let f = facts(&launch, &argv, &[token], &req);
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

    // ---- defence in depth: the argv alone, started by root without the
    // launcher (which the docs forbid), still sets the non-root uid, drops
    // every capability and clears the environment. Under the launcher the
    // sandbox would be the launcher's uid (65534 too) without `--uid`, and
    // unprivileged bwrap drops capabilities by itself.
    let bare = facts(&[], &argv, &[token], &json!({}));
    c.eq(
        "root launch: uid is 65534",
        bare["uid"].as_u64(),
        Some(SANDBOX_UID),
    );
    c.eq(
        "root launch: gid is 65534",
        bare["gid"].as_u64(),
        Some(SANDBOX_UID),
    );
    let st = status(&bare);
    c.check(
        "root launch: every capability set is empty",
        caps_zero(&st),
        || format!("{st:?}"),
    );
    c.check(
        "root launch: host secret does not leak",
        !bare["env"]
            .as_object()
            .is_some_and(|e| e.contains_key("CAPGATE_SECRET")),
        || format!("{}", bare["env"]),
    );

    // ---- controls: the same probe, the policy relaxed in one respect
    let ctl = facts(
        &launch,
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

    // The launcher's `env -i` empties bwrap's environment too, so the secret
    // needs both to go.
    let ctl = facts(
        &without(&launch, &["env", "-i"]),
        &without(&argv, &["--clearenv"]),
        &[token],
        &json!({}),
    );
    c.eq(
        "control: secret visible without --clearenv and the launcher's env -i",
        ctl["env"]["CAPGATE_SECRET"].as_str(),
        Some(SECRET),
    );

    let ctl = facts(
        &launch,
        &without(&argv, &["--unshare-pid"]),
        &[token],
        &json!({}),
    );
    let p = pids(&ctl);
    c.check(
        "control: host pids visible without --unshare-pid",
        p.contains(&u64::from(std::process::id())),
        || format!("{} pids", p.len()),
    );

    // Unprivileged bwrap drops every capability by itself: only a root
    // launch (which the launcher prevents) shows what `--cap-drop ALL` adds.
    let ctl = facts(
        &[],
        &without(&argv, &["--cap-drop", "ALL"]),
        &[token],
        &json!({}),
    );
    let st = status(&ctl);
    c.check(
        "control (root launch): bounding set non-empty without --cap-drop ALL",
        !caps_zero(&st),
        || format!("{st:?}"),
    );

    let ctl = facts(
        &launch,
        &without(&argv, &["--disable-userns"]),
        &[token],
        &json!({"run": [["unshare", "-U", "true"]]}),
    );
    c.eq(
        "control: nested userns works without --disable-userns",
        ctl["run"][0]["rc"].as_i64(),
        Some(0),
    );

    let ctl = facts(
        &launch,
        &without(&argv, &["--new-session"]),
        &[token],
        &json!({}),
    );
    c.eq(
        "control: launcher's session without --new-session",
        ctl["sid"].as_u64(),
        Some(0),
    );

    let ctl = facts(
        &launch,
        &with_value(&argv, "--uid", "0"),
        &[token],
        &json!({}),
    );
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
    if !require(
        "bwrap_filesystem_nested_writes",
        &["bwrap", "setpriv"],
        true,
    ) {
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
    let artifact = compile("nested-writes.json", &manifest, "bwrap", false, &[]);
    let (argv, _) = argv(&artifact);
    let launch = launcher(&artifact);

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
    let f = facts(&launch, &argv, &[], &req);
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
        &launch,
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
    // A root launch: unprivileged bwrap drops the capabilities by itself.
    let relaxed = without(
        &without(&argv, &["--cap-drop", "ALL"]),
        &["--disable-userns"],
    );
    let privileged = with_value(&with_value(&relaxed, "--uid", "0"), "--gid", "0");
    let ctl = facts(
        &[],
        &privileged,
        &[],
        &json!({"remount": [[s(&ws), s(&ws.join("ctl-remount")), "z\n"]]}),
    );
    let rm = &ctl["remount"][s(&ws)];
    c.check(
        "control (root launch): uid 0 with capabilities can remount",
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
    if !require(
        "bwrap_nested_sandbox_puppeteer",
        &["bwrap", "setpriv"],
        true,
    ) {
        return;
    }
    let root = TempDir::new("bwrap-nested");
    root.dir("tmp", 0o777);
    let manifest = relocate(&fixture("fixtures/manifests/puppeteer.json"), &root.path);
    materialize(&manifest);
    let artifact = compile("puppeteer.json", &manifest, "bwrap", false, &[]);
    let (argv, _) = argv(&artifact);
    let launch = launcher(&artifact);
    let req = json!({
        "run": [
            ["unshare", "-Ur", "sh", "-c", "id -u; grep CapEff /proc/self/status"],
            ["unshare", "-Urpf", "sh", "-c", "echo $$"],
            ["unshare", "-Urm", "sh", "-c", "mount -o remount,rw,bind /usr && touch /usr/cgenf-probe"],
            ["unshare", "-Urm", "sh", "-c", "mount -t tmpfs none /tmp && echo inner > /tmp/x && cat /tmp/x"],
        ],
    });
    let f = facts(&launch, &argv, &[("DISPLAY", ":99")], &req);
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

// ---------------------------------------------------------------- the launcher
//
// The review's F1–F4 and G5: under `--unshare-user --uid 65534`, bwrap maps the
// sandbox's uid to whoever started it. Started by root, the sandbox is host
// kuid 0 and passes every owner==root check the kernel makes. These tests
// check the KERNEL's view (host sysctls, ownership stat'ed from outside,
// SO_PEERCRED seen by a server outside), never the uid inside the namespace,
// and launch exactly as documented: `LAUNCHER bwrap ARGV -- PROGRAM`.

/// The host uid/gid the launcher drops to (`--reuid=`/`--regid=`), to give
/// the tests' writable grants to; 65534 when there is no such element.
fn launch_ids(launch: &[String]) -> (u32, u32) {
    let id = |flag: &str| {
        launch
            .iter()
            .find_map(|a| a.strip_prefix(flag))
            .map_or(65534, |v| v.parse().expect("numeric id in the launcher"))
    };
    (id("--reuid="), id("--regid="))
}

/// `argv` without the read-only binds over the sandbox's /proc
/// (`--ro-bind[-try] /proc/X /proc/X`).
fn without_proc_ro(argv: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let ro = matches!(argv[i].as_str(), "--ro-bind" | "--ro-bind-try")
            && i + 2 < argv.len()
            && argv[i + 1].starts_with("/proc/")
            && argv[i + 1] == argv[i + 2];
        if ro {
            i += 3;
        } else {
            out.push(argv[i].clone());
            i += 1;
        }
    }
    out
}

const CORE_PATTERN: &str = "/proc/sys/kernel/core_pattern";

/// Writes the host's `kernel.core_pattern` back on drop if a sandbox changed
/// it (the probes write the current value, so a failing test changes nothing;
/// this restores anyway).
struct CorePatternGuard(String);

impl CorePatternGuard {
    fn new() -> CorePatternGuard {
        CorePatternGuard(read(Path::new(CORE_PATTERN)).expect("read core_pattern"))
    }
}

impl Drop for CorePatternGuard {
    fn drop(&mut self) {
        if read(Path::new(CORE_PATTERN)).as_deref() != Some(self.0.as_str()) {
            let _ = std::fs::write(CORE_PATTERN, &self.0);
        }
    }
}

/// A manifest of one tool with these capabilities.
fn manifest_of(caps: &[String]) -> String {
    json!({"name": "launcher", "version": "1", "tools": [{"name": "t", "capabilities": caps}]})
        .to_string()
}

/// F1: host sysctls (not namespaced) and /proc/sysrq-trigger are not writable
/// from an empty manifest's sandbox. Probes write the host's CURRENT value
/// (or only open, where a write would act), through several paths and from a
/// nested user namespace. Each defence is also checked alone: the privilege
/// drop without the read-only /proc binds, and the binds under a root launch.
#[test]
fn bwrap_launcher_host_sysctls() {
    if !require("bwrap_launcher_host_sysctls", &["bwrap", "setpriv"], true) {
        return;
    }
    let guard = CorePatternGuard::new();
    let artifact = compile("empty.json", &manifest_of(&[]), "bwrap", false, &[]);
    let (argv, _) = argv(&artifact);
    let launch = launcher(&artifact);
    let current = |p: &str| read(Path::new(p)).unwrap_or_else(|| panic!("read {p}"));
    let mut probes: Vec<(String, Option<String>)> = [
        CORE_PATTERN,
        "/proc/sys/kernel/modprobe",
        "/proc/sys/kernel/core_uses_pid",
        "/proc/sys/fs/suid_dumpable",
    ]
    .iter()
    .filter(|p| Path::new(p).exists())
    .map(|p| ((*p).to_owned(), Some(current(p))))
    .collect();
    // The same file through other paths.
    for p in [
        "/proc/self/root/proc/sys/kernel/core_pattern",
        "/proc/1/root/proc/sys/kernel/core_pattern",
    ] {
        probes.push((p.to_owned(), Some(guard.0.clone())));
    }
    // Open only: a write would act.
    for p in ["/proc/sysrq-trigger", "/proc/sys/vm/drop_caches"] {
        probes.push((p.to_owned(), None));
    }
    let req = json!({ "sysctl": probes });
    let refused = |f: &Value, label: &str, c: &mut Checks| {
        for (p, _) in &probes {
            let e = &f["sysctl"][p];
            c.check(
                &format!("{label}: {p} not writable"),
                e["open_ok"] == json!(false) && e["write_ok"] == json!(false),
                || format!("{e}"),
            );
        }
    };
    let mut c = Checks::new();

    let f = facts(&launch, &argv, &[], &req);
    refused(&f, "documented launch", &mut c);
    c.check(
        "documented launch: the launcher drops root",
        !launch.is_empty(),
        || "the artifact has no launcher".to_owned(),
    );
    // Each defence alone.
    let f = facts(&launch, &without_proc_ro(&argv), &[], &req);
    refused(&f, "launcher, /proc not read-only", &mut c);
    let f = facts(&[], &argv, &[], &req);
    refused(&f, "root launch, read-only /proc", &mut c);
    let f = facts(
        &launch,
        &argv,
        &[],
        &json!({"remount": [["/proc/sys", "/proc/sys/kernel/core_pattern", guard.0]]}),
    );
    c.check(
        "documented launch: /proc/sys cannot be remounted read-write",
        f["remount"]["/proc/sys"]["mount_ok"] == json!(false)
            && f["remount"]["/proc/sys"]["write_ok"] == json!(false),
        || format!("{}", f["remount"]),
    );

    // From a nested user namespace (nestedSandbox): root there, with every
    // capability over its own namespaces, is still the launcher's uid on the host.
    let nested = compile(
        "nested.json",
        &manifest_of(&["exec:spawn:sh?nestedSandbox=true".to_owned()]),
        "bwrap",
        false,
        &[],
    );
    let (nargv, _) = crate::support::argv(&nested);
    let script = "printf '%s' \"$1\" > /proc/sys/kernel/core_pattern";
    let f = facts(
        &launcher(&nested),
        &nargv,
        &[],
        &json!({"run": [
            ["unshare", "-Ur", "sh", "-c", script, "sh", guard.0.trim_end()],
            ["unshare", "-Urm", "sh", "-c", "mount -o remount,rw,bind /proc/sys"],
            ["unshare", "-Urm", "sh", "-c", "umount /proc/sys"],
        ]}),
    );
    for (i, what) in [
        "write core_pattern",
        "remount /proc/sys rw",
        "unmount /proc/sys",
    ]
    .iter()
    .enumerate()
    {
        c.check(
            &format!("nested user namespace: {what} refused"),
            f["run"][i]["rc"] != json!(0),
            || format!("{}", f["run"][i]),
        );
    }

    // ---- control: a root launch without the read-only binds writes it.
    let ctl = facts(
        &[],
        &without_proc_ro(&argv),
        &[],
        &json!({"sysctl": [[CORE_PATTERN, guard.0]]}),
    );
    c.check(
        "control (root launch, /proc writable): core_pattern written",
        ctl["sysctl"][CORE_PATTERN]["write_ok"] == json!(true),
        || format!("{}", ctl["sysctl"]),
    );
    c.eq(
        "host core_pattern unchanged",
        read(Path::new(CORE_PATTERN)),
        Some(guard.0.clone()),
    );
    drop(guard);
    c.finish("bwrap_launcher_host_sysctls");
}

/// Every entry below `dir` (not following symlinks).
fn walk(dir: &Path) -> Vec<(std::path::PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            out.extend(walk(&p));
        }
        out.push((p, m));
    }
    out
}

/// A setuid-root program on the host (for `cp -p` and `ln`).
fn host_setuid_root() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    [
        "/usr/bin/passwd",
        "/usr/bin/su",
        "/usr/bin/mount",
        "/bin/mount",
    ]
    .iter()
    .find(|p| std::fs::metadata(p).is_ok_and(|m| m.uid() == 0 && m.mode() & 0o4000 != 0))
    .map(|p| (*p).to_owned())
}

/// F2: through a writable grant the sandbox cannot plant a setuid- or
/// setgid-root file, a root-owned file or a device node on the host: files it
/// creates belong to the launcher's uid. Spellings: cp + chmod 4755,
/// open(O_CREAT, 06755) + chmod, install -m 6755, cp -p and a hard link of a
/// host setuid-root program, a setgid directory, chown to 0, mknod.
#[test]
fn bwrap_launcher_no_setuid_root() {
    use std::os::unix::fs::MetadataExt;
    if !require("bwrap_launcher_no_setuid_root", &["bwrap", "setpriv"], true) {
        return;
    }
    let root = TempDir::new("bwrap-suid");
    // 0777: writable by the launcher's uid and, for the control, by a root
    // launch without capabilities (as the review's host had it: root-owned).
    let rw = root.dir("rw", 0o777);
    let artifact = compile(
        "suid.json",
        &manifest_of(&[format!("fs:read,write,create,delete:{}/**", s(&rw))]),
        "bwrap",
        false,
        &[],
    );
    let (argv, _) = argv(&artifact);
    let launch = launcher(&artifact);
    let (uid, gid) = launch_ids(&launch);
    // Docs: a writable grant must be writable by the launcher's uid.
    std::os::unix::fs::chown(&rw, Some(uid), Some(gid)).unwrap();
    chmod(&rw, 0o777);
    let suid = host_setuid_root();
    let p = |name: &str| s(&rw.join(name));
    let py = format!(
        "import os; fd = os.open({:?}, os.O_CREAT | os.O_WRONLY, 0o6755); os.write(fd, b'x'); os.close(fd); os.chmod({:?}, 0o6755)",
        p("b"),
        p("b")
    );
    let mut run = vec![
        json!([
            "sh",
            "-c",
            format!("cp /bin/sh {0} && chmod 4755 {0}", p("a"))
        ]),
        json!(["/usr/bin/python3", "-c", py]),
        json!(["install", "-m", "6755", "/bin/true", p("c")]),
        json!([
            "sh",
            "-c",
            format!("mkdir {0} && chmod 2775 {0} && touch {0}/f", p("dir"))
        ]),
        json!(["sh", "-c", format!("touch {0}; chown 0:0 {0}", p("g"))]),
        json!(["mknod", p("h"), "c", "1", "3"]),
    ];
    if let Some(bin) = &suid {
        run.push(json!(["cp", "-p", bin, p("d")]));
        run.push(json!(["ln", bin, p("e")]));
    }
    let f = facts(&launch, &argv, &[], &json!({ "run": run }));
    let mut c = Checks::new();
    c.check(
        "the sandbox created its files (cp + chmod ran)",
        rw.join("a").exists(),
        || format!("{}", f["run"]),
    );
    let entries = walk(&rw);
    for (path, m) in &entries {
        c.check(
            &format!("{} not owned by root on the host", path.display()),
            m.uid() != 0 && m.gid() != 0,
            || format!("uid {} gid {} mode {:o}", m.uid(), m.gid(), m.mode()),
        );
        c.check(
            &format!("{} is not a device node", path.display()),
            !matches!(m.mode() & 0o170000, 0o020000 | 0o060000),
            || format!("mode {:o}", m.mode()),
        );
    }
    if let Ok(m) = std::fs::metadata(rw.join("a")) {
        c.eq("created file belongs to the launcher's uid", m.uid(), uid);
        // The kernel's verdict: run it as nobody, as an attacker would.
        let out = run_as_nobody(&rw.join("a"));
        c.check(
            "planted shell does not give euid 0",
            !out.contains("euid=0"),
            || out.clone(),
        );
    }

    // ---- control: a root launch plants a setuid-root shell.
    let ctl_path = rw.join("ctl");
    facts(
        &[],
        &argv,
        &[],
        &json!({"run": [["sh", "-c", format!("cp /bin/sh {0} && chmod 4755 {0}", s(&ctl_path))]]}),
    );
    let ctl = std::fs::metadata(&ctl_path);
    c.check(
        "control (root launch): setuid-root file planted",
        ctl.as_ref()
            .is_ok_and(|m| m.uid() == 0 && m.mode() & 0o4000 != 0),
        || format!("{ctl:?}"),
    );
    let _ = std::fs::remove_file(&ctl_path);
    c.finish("bwrap_launcher_no_setuid_root");
}

/// `PROGRAM -p -c 'id'` run as uid/gid 65534 with no groups: prints `euid=0`
/// when PROGRAM is a setuid-root shell.
fn run_as_nobody(program: &Path) -> String {
    let out = run(
        &mut cmd(
            "setpriv",
            &[
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                &s(program),
                "-p",
                "-c",
                "id",
            ],
        ),
        Duration::from_secs(10),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// F3: root-only files inside granted paths stay unreadable: 0600 and 0640
/// root:root files in a read-only grant, a 0644 file below a 0710 root
/// directory, a declared 0600 file, a root file inside a writable grant, and
/// the keys in the baseline's /etc/ssl/private.
#[test]
fn bwrap_launcher_root_only_files() {
    if !require(
        "bwrap_launcher_root_only_files",
        &["bwrap", "setpriv"],
        true,
    ) {
        return;
    }
    let root = TempDir::new("bwrap-keys");
    let public = root.file("keys/public.txt", "public\n", 0o644);
    let mut secret = vec![
        root.file("keys/a.key", "KEY-0600\n", 0o600),
        root.file("keys/b.key", "KEY-0640\n", 0o640),
        root.file("keys/private/c.key", "KEY-0710-DIR\n", 0o644),
        root.file("single.key", "KEY-SINGLE\n", 0o600),
        root.file("rwk/root.key", "KEY-IN-RW\n", 0o600),
    ];
    chmod(&root.join("keys/private"), 0o710);
    let artifact = compile(
        "keys.json",
        &manifest_of(&[
            format!("fs:read:{}/**", s(&root.join("keys"))),
            format!("fs:read:{}", s(&root.join("single.key"))),
            format!("fs:read,write,create,delete:{}/**", s(&root.join("rwk"))),
        ]),
        "bwrap",
        false,
        &[],
    );
    let (argv, _) = argv(&artifact);
    let launch = launcher(&artifact);
    let (uid, gid) = launch_ids(&launch);
    std::os::unix::fs::chown(root.join("rwk"), Some(uid), Some(gid)).unwrap();
    // The baseline binds /etc/ssl: its private keys are root-only.
    for e in std::fs::read_dir("/etc/ssl/private")
        .into_iter()
        .flatten()
        .flatten()
    {
        secret.push(e.path());
    }
    let mut reads: Vec<String> = secret.iter().map(|p| s(p)).collect();
    reads.push(s(&public));
    let req = json!({ "read": reads });
    let f = facts(&launch, &argv, &[], &req);
    let mut c = Checks::new();
    c.eq(
        "control: the grant's public file is readable",
        f["read"][s(&public)]["data"].as_str(),
        Some("public\n"),
    );
    for p in &secret {
        c.check(
            &format!("{} unreadable", p.display()),
            f["read"][s(p)]["ok"] == json!(false),
            || format!("{}", f["read"][s(p)]),
        );
    }
    // ---- control: a root launch reads the 0600 key.
    let ctl = facts(&[], &argv, &[], &req);
    c.eq(
        "control (root launch): 0600 key readable",
        ctl["read"][s(&secret[0])]["data"].as_str(),
        Some("KEY-0600\n"),
    );
    c.finish("bwrap_launcher_root_only_files");
}

/// F4: a server outside the sandbox, on a declared unix socket, sees the
/// launcher's uid (SO_PEERCRED, and SCM_CREDENTIALS), never 0: a plain
/// connect, a message claiming uid 0 in SCM_CREDENTIALS, and root of a
/// nested user namespace connecting.
#[test]
fn bwrap_launcher_peercred() {
    if !require("bwrap_launcher_peercred", &["bwrap", "setpriv"], true) {
        return;
    }
    let root = TempDir::new("bwrap-peer");
    let dir = root.dir("ipc", 0o755);
    let sock = s(&dir.join("app.sock"));
    let log = root.join("peer.log");
    let _server = serve(
        "peercred server",
        &[],
        &log,
        &[format!("unixpath:{sock}:0")],
    );
    let artifact = compile(
        "peer.json",
        &manifest_of(&[
            format!("ipc:connect:\"unix:{sock}\""),
            "exec:spawn:python3?nestedSandbox=true".to_owned(),
        ]),
        "bwrap",
        false,
        &[],
    );
    let (argv, _) = argv(&artifact);
    let launch = launcher(&artifact);
    let (uid, _) = launch_ids(&launch);
    let nested = json!([["unixpath", sock, 0, "nested-root"]]).to_string();
    let f = facts(
        &launch,
        &argv,
        &[],
        &json!({
            "connect": [["unixpath", sock, 0, "plain"], ["unixcred", sock, 0, "claim-root"]],
            "run": [["unshare", "-Ur", "/usr/bin/python3", "-c", PROBE_PY, "connect", "2.0", nested]],
            "timeout": 2.0,
        }),
    );
    let mut c = Checks::new();
    let got = hits(&log);
    let by = |token: &str| got.iter().find(|h| h.data.trim_end() == token).cloned();
    for token in ["plain", "nested-root"] {
        match by(token) {
            Some(h) => {
                c.eq(
                    &format!("{token}: SO_PEERCRED uid is the launcher's"),
                    h.peer.map(|p| p.0),
                    Some(u64::from(uid)),
                );
                c.check(
                    &format!("{token}: SO_PEERCRED not root"),
                    h.peer.is_some_and(|(u, g)| u != 0 && g != 0),
                    || format!("{h:?}"),
                );
                c.eq(
                    &format!("{token}: SCM_CREDENTIALS are the same ids"),
                    h.scm,
                    h.peer,
                );
            }
            None => c.check(
                &format!("{token}: the server got the connection"),
                false,
                || format!("hits {got:?}; facts {} {}", f["connect"], f["run"]),
            ),
        }
    }
    // Claiming uid 0 must fail at sendmsg (EINVAL: uid 0 is not mapped in
    // the sandbox's user namespace; EPERM without CAP_SETUID), or reach the
    // server with the real credentials.
    let claim = by("claim-root");
    c.check(
        "claim-root: SCM_CREDENTIALS uid 0 refused",
        claim
            .as_ref()
            .map_or(f["connect"][1]["ok"] == json!(false), |h| {
                h.scm.is_some_and(|(u, g)| u != 0 && g != 0) && h.peer.is_some_and(|(u, _)| u != 0)
            }),
        || format!("{claim:?} {}", f["connect"][1]),
    );
    // Another launcher_uid/launcher_gid: the kernel reports exactly those.
    let other = compile(
        "peer.json",
        &manifest_of(&[format!("ipc:connect:\"unix:{sock}\"")]),
        "bwrap",
        false,
        &[("launcher_uid", "4242"), ("launcher_gid", "4243")],
    );
    facts(
        &launcher(&other),
        &crate::support::argv(&other).0,
        &[],
        &json!({"connect": [["unixpath", sock, 0, "uid-4242"]], "timeout": 2.0}),
    );
    c.eq(
        "launcher_uid=4242 launcher_gid=4243: SO_PEERCRED",
        by_token(&hits(&log), "uid-4242").and_then(|h| h.peer),
        Some((4242, 4243)),
    );
    // ---- control: a root launch connects as uid 0.
    facts(
        &[],
        &argv,
        &[],
        &json!({"connect": [["unixpath", sock, 0, "control"]], "timeout": 2.0}),
    );
    c.eq(
        "control (root launch): SO_PEERCRED uid 0",
        by_token(&hits(&log), "control").and_then(|h| h.peer.map(|p| p.0)),
        Some(0),
    );
    c.finish("bwrap_launcher_peercred");
}

fn by_token(hits: &[Hit], token: &str) -> Option<Hit> {
    hits.iter().find(|h| h.data.trim_end() == token).cloned()
}

/// G5: nothing of the launcher's environment is visible inside: pid 1
/// (bwrap's reaper) has an empty environment, every visible
/// /proc/PID/environ and cmdline is free of the launcher's secret, pid 1's
/// memory read through ptrace holds none of it, and root of a nested user
/// namespace sees nothing more.
#[test]
fn bwrap_launcher_environment() {
    if !require("bwrap_launcher_environment", &["bwrap", "setpriv"], true) {
        return;
    }
    let artifact = compile(
        "env.json",
        &manifest_of(&[
            "env:inject:TOKEN".to_owned(),
            "exec:spawn:sh?nestedSandbox=true".to_owned(),
        ]),
        "bwrap",
        false,
        &[],
    );
    let (argv, injections) = argv(&artifact);
    assert_eq!(injections, ["TOKEN"]);
    let launch = launcher(&artifact);
    let hex = |t: &str| t.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let req = json!({
        "proc_env": true,
        "memscan": [hex(SECRET), hex("CAPGATE_SECRET=")],
        "run": [
            ["cat", "/proc/1/task/1/environ"],
            ["unshare", "-Ur", "cat", "/proc/1/environ"],
        ],
    });
    let token = ("TOKEN", "token-value");
    let f = facts(&launch, &argv, &[token], &req);
    let mut c = Checks::new();
    let environs = f["environs"].as_object().unwrap();
    c.check(
        "pid 1 and the probe are visible",
        environs.contains_key("1") && environs.len() >= 2,
        || format!("{:?}", environs.keys().collect::<Vec<_>>()),
    );
    c.eq(
        "pid 1's environment is empty",
        environs
            .get("1")
            .map(|e| e["environ"].as_str().unwrap_or("<unreadable>").to_owned()),
        Some(String::new()),
    );
    for (pid, e) in environs {
        let environ = e["environ"].as_str().unwrap_or("");
        let names: Vec<&str> = environ
            .split('\0')
            .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
            .collect();
        c.check(
            &format!("pid {pid}: only the policy's variables"),
            names
                .iter()
                .all(|n| ["PATH", "HOME", "PWD", token.0].contains(n)),
            || format!("{names:?}"),
        );
        for what in ["environ", "cmdline"] {
            c.check(
                &format!("pid {pid}: launcher's secret not in {what}"),
                !e[what].as_str().unwrap_or("").contains(SECRET),
                || format!("{e}"),
            );
        }
    }
    let m = &f["memscan"];
    c.check(
        "pid 1's memory (ptrace) holds no launcher data",
        m["found"].as_array().is_some_and(Vec::is_empty),
        || format!("{m}"),
    );
    for (i, what) in ["/proc/1/task/1/environ", "nested userns /proc/1/environ"]
        .iter()
        .enumerate()
    {
        c.check(
            &format!("{what}: no launcher variable"),
            !f["run"][i]["stdout"]
                .as_str()
                .unwrap_or("")
                .contains("CAPGATE_SECRET"),
            || format!("{}", f["run"][i]),
        );
    }

    // The unprivileged launch (`root_launcher=false`): a broker that is
    // already uid 65534 (simulated with setpriv) runs the launcher, `env -i`.
    let unpriv = compile(
        "env.json",
        &manifest_of(&["env:inject:TOKEN".to_owned()]),
        "bwrap",
        false,
        &[("root_launcher", "false")],
    );
    let broker: Vec<String> = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .chain(launcher(&unpriv))
    .collect();
    let u = facts(
        &broker,
        &crate::support::argv(&unpriv).0,
        &[token],
        &json!({"proc_env": true, "memscan": [hex(SECRET)]}),
    );
    c.eq(
        "unprivileged launcher: pid 1's environment is empty",
        u["environs"]["1"]["environ"].as_str(),
        Some(""),
    );
    c.check(
        "unprivileged launcher: pid 1's memory holds no launcher data",
        u["memscan"]["found"].as_array().is_some_and(Vec::is_empty),
        || format!("{}", u["memscan"]),
    );

    // ---- control: without the launcher's `env -i`, pid 1 carries the
    // launcher's environment and the probes see it.
    let ctl = facts(&without(&launch, &["env", "-i"]), &argv, &[token], &req);
    c.check(
        "control (no env -i): secret in /proc/1/environ",
        ctl["environs"]["1"]["environ"]
            .as_str()
            .is_some_and(|e| e.contains(SECRET)),
        || format!("{}", ctl["environs"]["1"]),
    );
    c.check(
        "control (no env -i): secret in pid 1's memory",
        ctl["memscan"]["found"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        || format!("{}", ctl["memscan"]),
    );
    c.finish("bwrap_launcher_environment");
}

/// Run inside the sandbox by `bwrap_launcher_fds_and_keyring`: what of the
/// broker's open fds and session keyring the sandbox can use.
const BROKER_STATE_PY: &str = r#"
import ctypes, errno, json, os
out = {}
def attempt(f):
    try:
        return f()
    except OSError as e:
        return "!" + errno.errorcode.get(e.errno, str(e.errno))
def fds(pid):
    d = "/proc/%s/fd" % pid
    try:
        return {n: attempt(lambda n=n: os.readlink(d + "/" + n)) for n in os.listdir(d)}
    except OSError as e:
        return {"!": str(e)}
out["self_fds"] = fds("self")
out["pid1_fds"] = fds(1)
out["read9"] = attempt(lambda: os.pread(9, 4096, 0).decode(errors="replace"))
out["list7"] = attempt(lambda: sorted(os.listdir(7)))
out["write8"] = attempt(lambda: os.write(8, b"appended-from-sandbox\n"))
def sock():
    os.write(200, b"hello-broker")
    return "sent"
out["sock200"] = attempt(sock)
out["pid1_fd9"] = attempt(lambda: open("/proc/1/fd/9").read())
m = os.uname().machine
REQUEST_KEY, KEYCTL = {"x86_64": (249, 250), "aarch64": (218, 219)}[m]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
L = ctypes.c_long
def read_key(kid):
    buf = ctypes.create_string_buffer(4096)
    n = libc.syscall(L(KEYCTL), L(11), L(kid), buf, L(4096))
    if n < 0:
        return "!" + errno.errorcode.get(ctypes.get_errno(), "?")
    return buf.raw[:n]
keys = []
r = libc.syscall(L(REQUEST_KEY), b"user", b"capgate-broker-key", None, L(0))
out["request_key"] = ("!" + errno.errorcode.get(ctypes.get_errno(), "?")) if r < 0 else read_key(r).decode(errors="replace")
sid = libc.syscall(L(KEYCTL), L(0), L(-3), L(0))
ring = read_key(sid) if sid >= 0 else "!nosession"
if isinstance(ring, bytes):
    for i in range(0, len(ring) - 3, 4):
        k = int.from_bytes(ring[i:i + 4], "little")
        v = read_key(k)
        keys.append(v.decode(errors="replace") if isinstance(v, bytes) else v)
out["session_keys"] = keys
r = libc.syscall(L(KEYCTL), L(10), L(-3), b"user", b"capgate-broker-key", L(0))
out["search"] = ("!" + errno.errorcode.get(ctypes.get_errno(), "?")) if r < 0 else read_key(r).decode(errors="replace")
out["proc_keys"] = attempt(lambda: [l for l in open("/proc/keys").read().splitlines() if "capgate" in l])
print(json.dumps(out))
"#;

/// V1 and V2: a root broker's open fds and its session keyring reach the
/// sandbox through `env -i setpriv ... bwrap` (the launcher argv cannot close
/// fds or change keyrings). The host's duty (docs/security.md "What the host
/// must do": only fds 0-2 across exec, a fresh session keyring) is what
/// `bwrap_command` does; under it, an EMPTY manifest's sandbox has no fd and
/// no key of the broker's, by every spelling: a read fd of a root-only file,
/// a directory fd, an append fd, a socket to the broker, the same fd reopened
/// through pid 1's /proc/1/fd; request_key, the session keyring read by id,
/// KEYCTL_SEARCH and /proc/keys. Control: the same broker without the duty
/// leaks all of it.
#[test]
fn bwrap_launcher_fds_and_keyring() {
    if !require(
        "bwrap_launcher_fds_and_keyring",
        &["bwrap", "setpriv"],
        true,
    ) {
        return;
    }
    use std::os::fd::AsRawFd;
    let tmp = TempDir::new("bwrap-fds");
    let shadow = tmp.file("shadow", "root-only-secret-line\n", 0o600);
    let rootdir = tmp.dir("rootdir", 0o700);
    std::fs::write(rootdir.join("broker-private-file"), "x").unwrap();
    let append = tmp.file("rootfile", "root-owned\n", 0o600);
    let read_fd = std::fs::File::open(&shadow).unwrap();
    let dir_fd = std::fs::File::open(&rootdir).unwrap();
    let append_fd = std::fs::OpenOptions::new()
        .append(true)
        .open(&append)
        .unwrap();
    let (broker_end, sandbox_end) = std::os::unix::net::UnixStream::pair().unwrap();
    broker_end
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let fds = [
        (read_fd.as_raw_fd(), 9),
        (dir_fd.as_raw_fd(), 7),
        (append_fd.as_raw_fd(), 8),
        (sandbox_end.as_raw_fd(), 200),
    ];
    let key_secret = "s3cr3t-in-broker-keyring";
    let artifact = compile("fds.json", &manifest_of(&[]), "bwrap", false, &[]);
    let (argv, _) = argv(&artifact);
    let launch = launcher(&artifact);
    let probe = |duties: bool| -> Value {
        let mut c = broker_command(
            &launch,
            &argv,
            &fds,
            &[("capgate-broker-key", key_secret)],
            duties,
        );
        c.args(["--", "/usr/bin/python3", "-c", BROKER_STATE_PY]);
        let out = run(&mut c, Duration::from_secs(30));
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(&stdout).unwrap_or_else(|_| {
            panic!(
                "no broker-state facts (duties {duties}, {}):\nstdout: {stdout}\nstderr: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })
    };
    let leaked = |f: &Value| -> Vec<String> {
        let mut l = Vec::new();
        for which in ["self_fds", "pid1_fds"] {
            for (n, target) in f[which].as_object().into_iter().flatten() {
                let t = target.as_str().unwrap_or("");
                let broker = [s(&shadow), s(&rootdir), s(&append)].iter().any(|p| t == p)
                    || t.starts_with("socket:");
                if broker {
                    l.push(format!("{which}/{n} -> {t}"));
                }
            }
        }
        l
    };
    let drain = |b: &std::os::unix::net::UnixStream| -> String {
        let mut buf = [0u8; 64];
        match (&*b).read(&mut buf) {
            Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(_) => String::new(),
        }
    };
    let mut c = Checks::new();
    let f = probe(true);
    c.eq(
        "no fd of the broker's in the sandbox",
        leaked(&f),
        Vec::<String>::new(),
    );
    for (what, label) in [
        ("read9", "fd 9 (root-only file) unusable"),
        ("list7", "fd 7 (root-only directory) unusable"),
        ("write8", "fd 8 (root-owned append file) unusable"),
        ("sock200", "fd 200 (socket to the broker) unusable"),
        ("pid1_fd9", "/proc/1/fd/9 cannot be reopened"),
    ] {
        c.check(
            label,
            f[what].as_str().is_some_and(|v| v.starts_with('!')),
            || format!("{}", f[what]),
        );
    }
    c.check(
        "host file untouched",
        read(&append).as_deref() == Some("root-owned\n"),
        || format!("{:?}", read(&append)),
    );
    c.check(
        "broker received nothing",
        drain(&broker_end).is_empty(),
        String::new,
    );
    for what in ["request_key", "search"] {
        c.check(
            &format!("{what}: no broker key"),
            f[what].as_str().is_some_and(|v| v.starts_with('!')),
            || format!("{}", f[what]),
        );
    }
    c.check(
        "session keyring holds no broker key",
        !f["session_keys"].to_string().contains(key_secret),
        || format!("{}", f["session_keys"]),
    );
    c.eq(
        "/proc/keys shows no broker key",
        f["proc_keys"].as_array().map(Vec::len),
        Some(0),
    );

    // ---- control: the same broker state without the host's duty reaches
    // the sandbox through the launcher (what V1/V2 found).
    let ctl = probe(false);
    c.check("control: fds leak", !leaked(&ctl).is_empty(), || {
        format!("{ctl}")
    });
    c.check(
        "control: fd 9 reads the root-only file",
        ctl["read9"]
            .as_str()
            .is_some_and(|v| v.contains("root-only-secret-line")),
        || format!("{}", ctl["read9"]),
    );
    c.check(
        "control: fd 8 appends to the root-owned file",
        read(&append).is_some_and(|t| t.contains("appended-from-sandbox")),
        || format!("{:?}", read(&append)),
    );
    let heard = drain(&broker_end);
    c.check(
        "control: the broker hears the sandbox",
        heard.contains("hello-broker"),
        || format!("heard {heard:?}; sandbox: {}", ctl["sock200"]),
    );
    c.eq(
        "control: request_key reads the broker's key",
        ctl["request_key"].as_str(),
        Some(key_secret),
    );
    c.finish("bwrap_launcher_fds_and_keyring");
}

/// V7: a `root_launcher=false` launcher that root starts anyway (the docs
/// forbid it, nothing can detect it at compile time) used to run the sandbox
/// as host uid 0. Its `setpriv --reuid/--regid` of `launcher_uid` and
/// `launcher_gid` is a no-op for the user it is compiled for, drops root to
/// that uid, and fails closed for any other user. Spellings: root with the
/// default ids, root with supplementary groups, root with launcher_uid=1000,
/// the intended user (65534 and 1000), and a wrong user (fails to start).
#[test]
fn bwrap_unprivileged_launcher_under_root() {
    use std::os::unix::fs::MetadataExt;
    if !require(
        "bwrap_unprivileged_launcher_under_root",
        &["bwrap", "setpriv"],
        true,
    ) {
        return;
    }
    let root = TempDir::new("bwrap-unpriv");
    let rw = root.dir("rw", 0o777);
    let secret = root.file("secret", "root-only-0600\n", 0o600);
    let caps = [
        format!("fs:read,write,create,delete:{}/**", s(&rw)),
        format!("fs:read:{}", s(&secret)),
    ];
    let ids = |uid: &str| -> Vec<(&'static str, String)> {
        vec![
            ("root_launcher", "false".to_owned()),
            ("launcher_uid", uid.to_owned()),
            ("launcher_gid", uid.to_owned()),
        ]
    };
    let cases: [(&str, Vec<&str>, &str, Option<u32>); 6] = [
        ("root starts it (default ids)", vec![], "65534", Some(65534)),
        (
            "root with supplementary groups 0,42",
            vec!["setpriv", "--groups=0,42", "--"],
            "65534",
            Some(65534),
        ),
        ("root, launcher_uid=1000", vec![], "1000", Some(1000)),
        (
            "user 65534 (the intended user)",
            vec![
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
            ],
            "65534",
            Some(65534),
        ),
        (
            "user 1000 with launcher_uid=1000",
            vec![
                "setpriv",
                "--reuid=1000",
                "--regid=1000",
                "--clear-groups",
                "--",
            ],
            "1000",
            Some(1000),
        ),
        (
            "user 1000 with the default launcher_uid",
            vec![
                "setpriv",
                "--reuid=1000",
                "--regid=1000",
                "--clear-groups",
                "--",
            ],
            "65534",
            None,
        ),
    ];
    let mut c = Checks::new();
    for (i, (label, broker, uid, want)) in cases.iter().enumerate() {
        let set = ids(uid);
        let set: Vec<(&str, &str)> = set.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let artifact = compile("unpriv.json", &manifest_of(&caps), "bwrap", false, &set);
        let (argv, _) = argv(&artifact);
        let launch: Vec<String> = broker
            .iter()
            .map(|a| (*a).to_owned())
            .chain(launcher(&artifact))
            .collect();
        let file = rw.join(format!("f{i}"));
        let req = json!({"run": [
            ["touch", s(&file)],
            ["cat", s(&secret)],
        ]});
        match want {
            Some(owner) => {
                let f = facts(&launch, &argv, &[], &req);
                match std::fs::metadata(&file) {
                    Ok(m) => c.eq(&format!("{label}: file owner on the host"), m.uid(), *owner),
                    Err(e) => c.check(&format!("{label}: file created"), false, || {
                        format!("{e}: {}", f["run"])
                    }),
                }
                c.check(
                    &format!("{label}: root-only file unreadable"),
                    !f["run"][1]["stdout"]
                        .as_str()
                        .unwrap_or("")
                        .contains("root-only-0600"),
                    || format!("{}", f["run"][1]),
                );
            }
            None => {
                let mut cmd = bwrap_command(&launch, &argv);
                cmd.args(["--", "touch", &s(&file)]);
                let out = run(&mut cmd, Duration::from_secs(30));
                c.check(
                    &format!("{label}: fails to start"),
                    !out.status.success() && !file.exists(),
                    || format!("{} {}", out.status, String::from_utf8_lossy(&out.stderr)),
                );
            }
        }
    }
    c.finish("bwrap_unprivileged_launcher_under_root");
}

fn notes_of(a: &capgate::artifact::Artifact) -> Vec<String> {
    match a {
        capgate::artifact::Artifact::Argv(a) => a.notes.clone(),
        capgate::artifact::Artifact::Config(c) => c.notes.clone(),
    }
}

/// V8: with the default launcher_uid (65534, shared by every server compiled
/// with the default and by host daemons running as nobody) a setuid file
/// planted through a writable grant runs as that shared uid for anyone. The
/// artifact notes every writable grant while the shared default is set; with
/// a server's own uid the planted file belongs to that uid and the note is
/// gone. Spellings: a full rw tree, `fs:write` alone, `fs:create` alone, a
/// writable file; read-only grants, another uid and `root_launcher=false`
/// carry no note.
#[test]
fn bwrap_shared_launcher_uid_is_noted() {
    use std::os::unix::fs::MetadataExt;
    if !require(
        "bwrap_shared_launcher_uid_is_noted",
        &["bwrap", "setpriv"],
        true,
    ) {
        return;
    }
    let root = TempDir::new("bwrap-shared-uid");
    let rw = root.dir("rw", 0o777);
    let file = root.file("rw-file", "", 0o666);
    let mut c = Checks::new();
    let shared = |n: &String| n.contains("65534") && n.contains("launcher_uid");
    for (cap, noted) in [
        (format!("fs:read,write,create,delete:{}/**", s(&rw)), true),
        (format!("fs:write:{}", s(&rw)), true),
        (format!("fs:create:{}/**", s(&rw)), true),
        (format!("fs:write:{}", s(&file)), true),
        (format!("fs:read:{}/**", s(&rw)), false),
    ] {
        for (set, want) in [
            (vec![], noted),
            (
                vec![("launcher_uid", "4242"), ("launcher_gid", "4242")],
                false,
            ),
            (vec![("root_launcher", "false")], false),
        ] {
            let a = compile(
                "shared.json",
                &manifest_of(std::slice::from_ref(&cap)),
                "bwrap",
                false,
                &set,
            );
            let notes = notes_of(&a);
            c.eq(
                &format!("{cap} {set:?}: shared-uid note"),
                notes.iter().filter(|n| shared(n)).count(),
                usize::from(want),
            );
        }
    }
    // What the note says, under the real launcher: the planted setuid file
    // belongs to the launcher's uid (65534 by default, 4242 when set).
    for (set, owner) in [
        (vec![], 65534u32),
        (
            vec![("launcher_uid", "4242"), ("launcher_gid", "4242")],
            4242,
        ),
    ] {
        let a = compile(
            "shared.json",
            &manifest_of(&[format!("fs:read,write,create,delete:{}/**", s(&rw))]),
            "bwrap",
            false,
            &set,
        );
        let planted = rw.join(format!("sh-{owner}"));
        let f = facts(
            &launcher(&a),
            &argv(&a).0,
            &[],
            &json!({"run": [["sh", "-c", format!("cp /bin/sh {0} && chmod 4755 {0}", s(&planted))]]}),
        );
        match std::fs::metadata(&planted) {
            Ok(m) => {
                c.eq(&format!("planted file owner ({set:?})"), m.uid(), owner);
                c.check(
                    &format!("planted file is setuid ({set:?})"),
                    m.mode() & 0o4000 != 0,
                    || format!("{:o}", m.mode()),
                );
            }
            Err(e) => c.check(&format!("planted ({set:?})"), false, || {
                format!("{e} {}", f["run"])
            }),
        }
    }
    c.finish("bwrap_shared_launcher_uid_is_noted");
}
