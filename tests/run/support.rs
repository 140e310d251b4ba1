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

/// A network namespace a test runs `capgate run` in, so that nothing leaves
/// the machine: the "internet" is addresses on the namespace's own loopback,
/// served by tests/run/upstream.py, and names resolve through
/// `/etc/netns/NAME/hosts` (which `ip netns exec` puts at /etc/hosts, where
/// squid reads it). Removed with everything in it on drop.
pub struct NetLab {
    pub name: String,
    /// The upstream's log: one line per request or datagram it got.
    pub log: PathBuf,
    upstream: Option<Proc>,
}

impl NetLab {
    /// `addrs` go on the namespace's loopback (`11.0.0.2/32`, ...); `tcp` and
    /// `udp` are the upstream's `ADDR:PORT` listeners; `www` serves files.
    pub fn new(
        dir: &TempDir,
        addrs: &[&str],
        hosts: &str,
        tcp: &[&str],
        udp: &[&str],
        www: Option<&Path>,
    ) -> NetLab {
        let name = unique();
        let ok = |c: &mut Command| {
            let out = c.output().unwrap();
            assert!(
                out.status.success(),
                "{c:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ok(Command::new("ip").args(["netns", "add", &name]));
        let mut lab = NetLab {
            log: dir.join(&format!("{name}-upstream.log")),
            name,
            upstream: None,
        };
        ok(Command::new("ip").args(["-n", &lab.name, "link", "set", "lo", "up"]));
        for a in addrs {
            ok(Command::new("ip").args(["-n", &lab.name, "addr", "add", a, "dev", "lo"]));
        }
        let etc = PathBuf::from("/etc/netns").join(&lab.name);
        fs::create_dir_all(&etc).unwrap();
        fs::write(etc.join("hosts"), hosts).unwrap();
        let mut c = lab.exec("python3");
        c.arg(UPSTREAM).arg(&lab.log);
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
        lab.upstream = Some(Proc(c.spawn().unwrap()));
        assert!(
            wait_for(10, || lab.lines().iter().any(|l| l == "READY")),
            "upstream not ready"
        );
        lab
    }

    /// `ip netns exec NAME PROGRAM`.
    pub fn exec(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// The upstream's log lines.
    pub fn lines(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        self.upstream = None;
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
        let _ = fs::remove_dir_all(PathBuf::from("/etc/netns").join(&self.name));
    }
}
