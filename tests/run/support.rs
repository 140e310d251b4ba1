//! Helpers of the `capgate run` suites: tool gating (a missing tool skips
//! loudly, or fails under `CI=true`), unique names with the pid, temp
//! directories and processes cleaned up by `Drop` guards.

#![allow(dead_code)]

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Prefix of every name these suites create, followed by the pid.
pub const PREFIX: &str = "cgrun";

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|dir| Path::new(dir).join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        });
    found
}

pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        == Some("0")
}

/// Whether the test can run; otherwise a loud skip, or a panic under CI=true.
pub fn require(test: &str, missing: Vec<String>) -> bool {
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "run test `{test}` needs {} — not available on this machine",
        missing.join(", ")
    );
    if in_ci() {
        panic!("{msg} (CI=true: a missing requirement is a failure, see .ci/run)");
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!! SKIPPED: {msg} (see docs/run.md \"Tests\") !!!!!!!!\n"
    );
    false
}

/// bwrap, setpriv and root: what every run test needs.
pub fn require_tools(test: &str, tools: &[&str]) -> bool {
    let mut missing: Vec<String> = tools
        .iter()
        .filter(|t| which(t).is_none())
        .map(|t| format!("`{t}`"))
        .collect();
    if !is_root() {
        missing.push("root (uid 0), as CI runs".into());
    }
    require(test, missing)
}

pub fn short() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}n{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn unique() -> String {
    format!("{PREFIX}{}", short())
}

pub fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
}

/// A directory below /var/tmp (not /tmp: the sandbox has its own /tmp),
/// removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = PathBuf::from("/var/tmp").join(format!("{}-{tag}", unique()));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        chmod(&path, 0o755);
        TempDir { path }
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel.trim_start_matches('/'))
    }

    pub fn dir(&self, rel: &str, mode: u32) -> PathBuf {
        let p = self.join(rel);
        fs::create_dir_all(&p).unwrap();
        chmod(&p, mode);
        p
    }

    pub fn file(&self, rel: &str, data: &str, mode: u32) -> PathBuf {
        let p = self.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
        chmod(&p, mode);
        p
    }

    /// A manifest with these server capabilities, as a file.
    pub fn manifest(&self, name: &str, caps: &[String]) -> PathBuf {
        let m = serde_json::json!({
            "name": name,
            "version": "1",
            "grammar": "0.0",
            "serverCapabilities": caps,
            "tools": [],
        });
        self.file(&format!("{name}.json"), &m.to_string(), 0o644)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

pub fn capgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_capgate"))
}

/// `capgate run MANIFEST FLAGS -- CMD`, stdin closed, output collected.
pub fn run(manifest: &Path, flags: &[&str], cmd: &[&str]) -> Output {
    let mut c = capgate();
    c.arg("run").arg(manifest).args(flags).arg("--").args(cmd);
    c.stdin(Stdio::null());
    c.output().expect("capgate runs")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Pids whose command line contains `marker`.
pub fn pids_with(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        if let Ok(cmd) = fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(marker) {
                out.push(pid);
            }
        }
    }
    out
}

/// Waits up to `secs` for `cond`.
pub fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// A child killed (SIGKILL) and reaped on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends a signal with kill(1).
pub fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
}

/// The upstream servers of the network tests (HTTP and UDP sinks that log
/// every request they get).
pub const UPSTREAM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/run/upstream.py");

/// What a [`NetLab`] holds.
#[derive(Default)]
pub struct LabSpec<'a> {
    /// Addresses of the "internet" (`11.0.0.2/32`, ...), on the upstream
    /// namespace's loopback, and the upstream's `ADDR:PORT` listeners there.
    pub addrs: &'a [&'a str],
    pub tcp: &'a [&'a str],
    pub udp: &'a [&'a str],
    /// Files the upstream serves.
    pub www: Option<&'a Path>,
    /// `/etc/netns/NAME/hosts` of the host namespace (localhost is added).
    pub hosts: &'a str,
    /// The host namespace's resolver (`/etc/netns/NAME/resolv.conf`).
    pub resolver: Option<&'a str>,
    /// The host's own extra addresses and services (in the namespace capgate
    /// runs in): what a sandbox must not reach through the run.
    pub host_addrs: &'a [&'a str],
    pub host_tcp: &'a [&'a str],
    pub host_udp: &'a [&'a str],
}

/// Two network namespaces a test runs `capgate run` in, so that nothing
/// leaves the machine: the "host" (`name`, where capgate runs, with its own
/// services) and the "internet" (`up`: addresses on its loopback served by
/// tests/run/upstream.py), joined by a veth; the host routes 11.0.0.0/24 and
/// 10.0.0.0/24 to it and forwards (its own namespace's sysctl). Names
/// resolve through `/etc/netns/NAME/hosts` (which `ip netns exec` puts at
/// /etc/hosts, where squid reads it). Removed with everything in it on drop.
pub struct NetLab {
    pub name: String,
    pub up: String,
    /// The upstream's log: one line per request or datagram it got.
    pub log: PathBuf,
    /// The host services' log.
    pub host_log: PathBuf,
    procs: Vec<Proc>,
}

fn ok(c: &mut Command) {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl NetLab {
    pub fn new(dir: &TempDir, spec: &LabSpec) -> NetLab {
        let tag = short();
        let name = format!("{PREFIX}{tag}");
        let mut lab = NetLab {
            log: dir.join(&format!("{name}-upstream.log")),
            host_log: dir.join(&format!("{name}-host.log")),
            up: format!("{name}u"),
            name,
            procs: Vec::new(),
        };
        let ip = |ns: &str, args: &[&str]| ok(Command::new("ip").arg("-n").arg(ns).args(args));
        for ns in [&lab.name, &lab.up] {
            ok(Command::new("ip").args(["netns", "add", ns]));
            ip(ns, &["link", "set", "lo", "up"]);
        }
        let (h, u) = (format!("cgl{tag}"), format!("cgu{tag}"));
        ip(
            &lab.name,
            &[
                "link", "add", &h, "type", "veth", "peer", "name", &u, "netns", &lab.up,
            ],
        );
        ip(&lab.name, &["addr", "add", "10.99.0.1/30", "dev", &h]);
        ip(&lab.up, &["addr", "add", "10.99.0.2/30", "dev", &u]);
        ip(&lab.name, &["link", "set", &h, "up"]);
        ip(&lab.up, &["link", "set", &u, "up"]);
        for net in ["11.0.0.0/24", "10.0.0.0/24"] {
            ip(&lab.name, &["route", "add", net, "via", "10.99.0.2"]);
        }
        ok(lab
            .exec("sh")
            .args(["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]));
        for a in spec.addrs {
            ip(&lab.up, &["addr", "add", a, "dev", "lo"]);
        }
        for a in spec.host_addrs {
            ip(&lab.name, &["addr", "add", a, "dev", "lo"]);
        }
        let etc = PathBuf::from("/etc/netns").join(&lab.name);
        fs::create_dir_all(&etc).unwrap();
        fs::write(
            etc.join("hosts"),
            format!("127.0.0.1 localhost\n::1 localhost\n{}", spec.hosts),
        )
        .unwrap();
        if let Some(r) = spec.resolver {
            fs::write(etc.join("resolv.conf"), format!("nameserver {r}\n")).unwrap();
        }
        let start = |lab: &mut NetLab,
                     ns: String,
                     log: PathBuf,
                     tcp: &[&str],
                     udp: &[&str],
                     www: Option<&Path>| {
            if tcp.is_empty() && udp.is_empty() {
                return;
            }
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns, "python3", UPSTREAM])
                .arg(&log);
            if let Some(w) = www {
                c.arg("--www").arg(w);
            }
            for t in tcp {
                c.args(["--tcp", t]);
            }
            for u in udp {
                c.args(["--udp", u]);
            }
            c.stdin(Stdio::null()).stdout(Stdio::null());
            lab.procs.push(Proc(c.spawn().unwrap()));
            let read = || fs::read_to_string(&log).unwrap_or_default();
            assert!(
                wait_for(10, || read().lines().any(|l| l == "READY")),
                "upstream in {ns} not ready"
            );
        };
        let (up, name) = (lab.up.clone(), lab.name.clone());
        let (log, host_log) = (lab.log.clone(), lab.host_log.clone());
        start(&mut lab, up, log, spec.tcp, spec.udp, spec.www);
        start(&mut lab, name, host_log, spec.host_tcp, spec.host_udp, None);
        lab
    }

    /// `ip netns exec NAME PROGRAM` (the host namespace).
    pub fn exec(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// What the upstream and the host services got, without their READY lines.
    pub fn lines(&self) -> Vec<String> {
        [&self.log, &self.host_log]
            .iter()
            .flat_map(|p| {
                fs::read_to_string(p)
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| *l != "READY")
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        self.procs.clear();
        for ns in [&self.name, &self.up] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        let _ = fs::remove_dir_all(PathBuf::from("/etc/netns").join(&self.name));
    }
}
