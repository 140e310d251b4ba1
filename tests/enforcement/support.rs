//! Harness for the enforcement suite: tool gating, compiling manifests
//! through capgate, temp dirs, processes, network namespaces and a check list,
//! each cleaned up by a `Drop` guard so a panicking test leaves nothing behind.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write as _};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

use capgate::artifact::Artifact;
use capgate::assets::Assets;
use capgate::compile::{Compiler, Settings};
use serde_json::Value;

/// The probe helper (serve / connect / facts), run with python3.
pub const PROBE_PY: &str = include_str!("probe.py");

/// Prefix of every name this suite creates (netns, veth, squid service,
/// temp dirs), followed by the pid of the test process.
pub const PREFIX: &str = "cgenf";

// ---------------------------------------------------------------- gating

/// Whether CI demands the real tools (`CI=true`).
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// An executable on PATH or in the sbin directories (root's tools live there).
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

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        == Some("0")
}

/// Whether the test can run: every tool present (and root when asked). A
/// missing requirement fails the test under `CI=true` and is otherwise
/// skipped with a loud message.
pub fn require(test: &str, tools: &[&str], root: bool) -> bool {
    let mut missing: Vec<String> = tools
        .iter()
        .filter(|t| which(t).is_none())
        .map(|t| format!("`{t}`"))
        .collect();
    if root && !is_root() {
        missing.push("root (uid 0)".to_owned());
    }
    if missing.is_empty() {
        reap_stale();
        return true;
    }
    skip(
        test,
        &format!(
            "needs {} — not available on this machine",
            missing.join(", ")
        ),
    )
}

/// A test that cannot run here: fails under `CI=true`, else a loud skip.
/// Returns false, for `if !require(..) { return; }`-style callers.
pub fn skip(test: &str, why: &str) -> bool {
    let msg = format!("enforcement test `{test}` {why}");
    if in_ci() {
        panic!("{msg} (CI=true: a missing enforcement tool is a failure, see .ci/run)");
    }
    // Straight to fd 2: libtest captures eprintln!, and a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!! SKIPPED: {msg}; install the tools or run as root (see docs/enforcement.md) !!!!!!!!\n"
    );
    false
}

/// Removes namespaces and squid shm segments left by enforcement runs whose
/// process is gone (a SIGKILLed `cargo test` cannot run its Drop guards).
fn reap_stale() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let dead = |name: &str| -> bool {
            let digits: String = name
                .trim_start_matches(PREFIX)
                .trim_start_matches(|c: char| !c.is_ascii_digit())
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            !digits.is_empty() && !Path::new(&format!("/proc/{digits}")).exists()
        };
        if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let name = line.split_whitespace().next().unwrap_or("");
                if name.starts_with(PREFIX) && dead(name) {
                    let _ = Command::new("ip").args(["netns", "del", name]).status();
                }
            }
        }
        if let Ok(entries) = fs::read_dir("/dev/shm") {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(PREFIX) && dead(&name) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    });
}

/// A name unique to this process and call: `cgenf<pid>n<k>`.
pub fn unique() -> String {
    format!("{PREFIX}{}", short())
}

/// `<pid>n<k>`: for names with a length limit (interfaces: 15 bytes).
pub fn short() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}n{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

// ---------------------------------------------------------------- manifests

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A manifest from the repository, e.g. `fixtures/manifests/github.json`.
pub fn fixture(rel: &str) -> String {
    fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// The manifest with every `fs:` path moved below `root`
/// (`fs:read:/workspace/**` becomes `fs:read:<root>/workspace/**`), so a
/// fixture's binds point into the test's own temp dir.
pub fn relocate(manifest: &str, root: &Path) -> String {
    let mut doc: Value = serde_json::from_str(manifest).expect("fixture is JSON");
    let prefix = root.to_str().expect("UTF-8 temp path");
    let fix = |caps: &mut Value| {
        for cap in caps.as_array_mut().into_iter().flatten() {
            let Some(s) = cap.as_str() else { continue };
            if let Some(rest) = s.strip_prefix("fs:") {
                let (actions, path) = rest.split_once(':').expect("fs:<actions>:<path>");
                *cap = Value::String(format!("fs:{actions}:{prefix}{path}"));
            }
        }
    };
    if let Some(caps) = doc.get_mut("serverCapabilities") {
        fix(caps);
    }
    for tool in doc
        .get_mut("tools")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(caps) = tool.get_mut("capabilities") {
            fix(caps);
        }
    }
    serde_json::to_string_pretty(&doc).unwrap()
}

/// Creates (as 0755 directories) every declared fs path of a relocated
/// manifest that the test did not create itself, so that strict binds
/// (`--ro-bind`, `--mount`) find their source.
pub fn materialize(manifest: &str) {
    let doc: Value = serde_json::from_str(manifest).expect("manifest is JSON");
    let tools = doc["tools"].as_array().cloned().unwrap_or_default();
    let caps = doc["serverCapabilities"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            tools
                .iter()
                .flat_map(|t| t["capabilities"].as_array().into_iter().flatten()),
        );
    for cap in caps.filter_map(Value::as_str) {
        let Some((_, path)) = cap.strip_prefix("fs:").and_then(|r| r.split_once(':')) else {
            continue;
        };
        let dir = path.trim_end_matches("/**").trim_end_matches("/*");
        if !Path::new(dir).exists() {
            fs::create_dir_all(dir).unwrap();
            chmod(Path::new(dir), 0o755);
        }
    }
}

/// Compiles a manifest through capgate's library API (the same pipeline as
/// `capgate compile`). Panics with the rendered diagnostics on failure.
pub fn compile(
    label: &str,
    manifest: &str,
    target: &str,
    permissive: bool,
    set: &[(&str, &str)],
) -> Artifact {
    let compiler = Compiler::new(&Assets::default(), target)
        .unwrap_or_else(|e| panic!("target {target} loads: {e:?}"));
    let settings = Settings {
        permissive,
        set: set
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    match compiler.compile(label, manifest.as_bytes(), &settings) {
        Ok(out) => out.artifact,
        Err(diags) => panic!(
            "capgate could not compile {label} for {target}:\n{}",
            diags.iter().map(|d| d.render()).collect::<String>()
        ),
    }
}

pub fn argv(artifact: &Artifact) -> (Vec<String>, Vec<String>) {
    match artifact {
        Artifact::Argv(a) => (a.argv.clone(), a.env_injections.clone()),
        Artifact::Config(_) => panic!("expected an argv artifact"),
    }
}

/// The artifact's `launcher`: the argv the host puts before `bwrap`.
pub fn launcher(artifact: &Artifact) -> Vec<String> {
    match artifact {
        Artifact::Argv(a) => a.launcher.clone().expect("a bwrap artifact has a launcher"),
        Artifact::Config(_) => panic!("expected an argv artifact"),
    }
}

/// `LAUNCHER... bwrap ARGV...`: a compiled bwrap policy started the way
/// docs/cli.md documents it (the caller appends `--setenv`s, `--` and the
/// program), by a host that does its duties (see [`host_duties`]). An empty
/// `launcher` is the root launch the docs forbid (only for controls).
pub fn bwrap_command(launcher: &[String], argv: &[String]) -> Command {
    let mut c = bare_bwrap_command(launcher, argv);
    host_duties(&mut c);
    c
}

// x86_64 and aarch64 (asm-generic) syscall numbers: std links libc, and
// these two calls have no std wrapper.
#[cfg(target_arch = "x86_64")]
const SYS_ADD_KEY: std::ffi::c_long = 248;
#[cfg(target_arch = "x86_64")]
const SYS_KEYCTL: std::ffi::c_long = 250;
#[cfg(target_arch = "aarch64")]
const SYS_ADD_KEY: std::ffi::c_long = 217;
#[cfg(target_arch = "aarch64")]
const SYS_KEYCTL: std::ffi::c_long = 219;
const SYS_CLOSE_RANGE: std::ffi::c_long = 436;
const KEYCTL_JOIN_SESSION_KEYRING: std::ffi::c_long = 1;
const KEY_SPEC_SESSION_KEYRING: std::ffi::c_long = -3;
const CLOSE_RANGE_CLOEXEC: std::ffi::c_long = 4;

extern "C" {
    fn syscall(number: std::ffi::c_long, ...) -> std::ffi::c_long;
    fn dup2(old: std::ffi::c_int, new: std::ffi::c_int) -> std::ffi::c_int;
    fn close(fd: std::ffi::c_int) -> std::ffi::c_int;
}

/// The host's duties before it runs the launcher (docs/security.md "What the
/// host must do"; the launcher argv cannot do them): only fds 0-2 survive the
/// exec (every other fd is marked close-on-exec, `close_range(3, ~0,
/// CLOSE_RANGE_CLOEXEC)`), and the launcher starts in a fresh, empty session
/// keyring (`keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)`, what `keyctl
/// session -` does), so neither the broker's open files nor its keys reach
/// the sandbox.
pub fn host_duties(c: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe system calls between fork and exec.
    unsafe {
        c.pre_exec(|| {
            if syscall(
                SYS_CLOSE_RANGE,
                3 as std::ffi::c_long,
                std::ffi::c_long::from(u32::MAX),
                CLOSE_RANGE_CLOEXEC,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if syscall(
                SYS_KEYCTL,
                KEYCTL_JOIN_SESSION_KEYRING,
                std::ptr::null::<u8>(),
            ) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// What a careless broker leaves to the process it starts: inherited fds
/// (`(open fd, number it gets in the child)`) and keys in its session
/// keyring (`(description, payload)`, added to a fresh session keyring of
/// the child, so the test process's own keyring is untouched). Installed
/// before [`host_duties`] when `duties`, so the duties are what removes them.
pub fn broker_command(
    launcher: &[String],
    argv: &[String],
    fds: &[(std::os::fd::RawFd, std::os::fd::RawFd)],
    keys: &[(&str, &str)],
    duties: bool,
) -> Command {
    use std::os::unix::process::CommandExt;
    let fds = fds.to_vec();
    let keys: Vec<(std::ffi::CString, Vec<u8>)> = keys
        .iter()
        .map(|(d, p)| (std::ffi::CString::new(*d).unwrap(), p.as_bytes().to_vec()))
        .collect();
    let user = std::ffi::CString::new("user").unwrap();
    let mut c = bare_bwrap_command(launcher, argv);
    // SAFETY: only system calls between fork and exec; every buffer is prepared before.
    unsafe {
        c.pre_exec(move || {
            // Through numbers above every source first, so a target number
            // that is another source's current number overwrites nothing.
            for (i, &(from, _)) in fds.iter().enumerate() {
                if dup2(from, 900 + i as std::ffi::c_int) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, &(_, to)) in fds.iter().enumerate() {
                // dup2 leaves the new number without close-on-exec: inherited.
                if dup2(900 + i as std::ffi::c_int, to) < 0 || close(900 + i as std::ffi::c_int) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if !keys.is_empty()
                && syscall(
                    SYS_KEYCTL,
                    KEYCTL_JOIN_SESSION_KEYRING,
                    std::ptr::null::<u8>(),
                ) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            for (desc, payload) in &keys {
                let id = syscall(
                    SYS_ADD_KEY,
                    user.as_ptr(),
                    desc.as_ptr(),
                    payload.as_ptr(),
                    payload.len(),
                    KEY_SPEC_SESSION_KEYRING,
                );
                if id < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    if duties {
        host_duties(&mut c);
    }
    c
}

/// `LAUNCHER... bwrap ARGV...` without the host's duties.
fn bare_bwrap_command(launcher: &[String], argv: &[String]) -> Command {
    let mut c = match launcher.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg("bwrap");
            c
        }
        None => Command::new("bwrap"),
    };
    c.args(argv);
    c
}

pub fn config(artifact: &Artifact) -> String {
    match artifact {
        Artifact::Config(c) => c.config.clone(),
        Artifact::Argv(_) => panic!("expected a config artifact"),
    }
}

/// `argv` without the first occurrence of `flag` and the `arity` values after
/// it. Absent flags are not an error: a control run must not mask a mutation.
pub fn without(argv: &[String], flag: &[&str]) -> Vec<String> {
    let Some(at) = argv
        .windows(flag.len())
        .position(|w| w.iter().zip(flag).all(|(a, b)| a == b))
    else {
        return argv.to_vec();
    };
    let mut out = argv[..at].to_vec();
    out.extend_from_slice(&argv[at + flag.len()..]);
    out
}

/// `argv` with the value after `flag` replaced.
pub fn with_value(argv: &[String], flag: &str, value: &str) -> Vec<String> {
    let mut out = argv.to_vec();
    if let Some(at) = out.iter().position(|a| a == flag) {
        out[at + 1] = value.to_owned();
    }
    out
}

// ---------------------------------------------------------------- files

/// A directory below /tmp, removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        TempDir::new_in(&std::env::temp_dir(), tag)
    }

    /// A temporary directory in `base`.
    pub fn new_in(base: &Path, tag: &str) -> TempDir {
        let path = base.join(format!("{}-{tag}", unique()));
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        chmod(&path, 0o755);
        TempDir { path }
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel.trim_start_matches('/'))
    }

    /// Creates `rel` (and its parents) with `mode`.
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
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn read(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok()
}

pub fn s(path: &Path) -> String {
    path.to_str().expect("UTF-8 path").to_owned()
}

// ---------------------------------------------------------------- busybox

/// Whether an ELF file has no program interpreter (is statically linked).
fn is_static_elf(path: &Path) -> bool {
    let Ok(b) = std::fs::read(path) else {
        return false;
    };
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).all(|i| {
        let o = phoff + i * size;
        o + 4 <= b.len() && u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) != 3
    })
}

/// A static busybox: the installed busybox-static, or one fetched with
/// `apt-get download busybox-static` into `work` (the podman and runc tests'
/// rootfs are built from it).
pub fn static_busybox(work: &Path) -> PathBuf {
    for p in ["/usr/bin/busybox", "/bin/busybox"] {
        if is_static_elf(Path::new(p)) {
            return PathBuf::from(p);
        }
    }
    let dir = work.join(format!("busybox-{}", short()));
    std::fs::create_dir_all(&dir).unwrap();
    ok(Command::new("apt-get")
        .args(["download", "-q", "busybox-static"])
        .current_dir(&dir));
    let deb = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".deb"))
        .expect("busybox-static .deb")
        .path();
    ok(&mut cmd("dpkg-deb", &["-x", &s(&deb), &s(&dir.join("x"))]));
    let bin = dir.join("x/bin/busybox");
    assert!(is_static_elf(&bin), "busybox-static is not static");
    bin
}

// ---------------------------------------------------------------- processes

/// Runs a command to completion, killing it after `timeout` (then panics).
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {desc}: {e}"));
    let mut pipe_out = child.stdout.take().unwrap();
    let mut pipe_err = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = pipe_out.read_to_end(&mut v);
        v
    });
    let err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = pipe_err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("timed out after {timeout:?}: {desc}");
        }
        thread::sleep(Duration::from_millis(2));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Runs a command that must succeed; returns its stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "command failed ({}): {cmd:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn cmd(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args);
    c
}

/// A background process, SIGKILLed and reaped on drop.
pub struct Proc {
    pub child: Child,
    pub label: String,
}

impl Proc {
    pub fn spawn(label: &str, cmd: &mut Command) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {label} ({cmd:?}): {e}"));
        Proc {
            child,
            label: label.to_owned(),
        }
    }

    /// Panics if the process has already exited.
    pub fn assert_alive(&mut self, detail: &dyn Fn() -> String) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{} exited early ({status}):\n{}", self.label, detail());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `probe.py serve` with `prefix` (e.g. `ip netns exec NS`) and waits
/// for READY. Each connection is logged as JSON to `log`.
pub fn serve(label: &str, prefix: &[&str], log: &Path, endpoints: &[String]) -> Proc {
    let python = python();
    let mut argv: Vec<&str> = prefix.to_vec();
    argv.extend([
        python.as_str(),
        "-c",
        PROBE_PY,
        "serve",
        log.to_str().unwrap(),
    ]);
    argv.extend(endpoints.iter().map(String::as_str));
    let mut c = Command::new(argv[0]);
    c.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut proc = Proc::spawn(label, &mut c);
    let mut stdout = proc.child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut buf = [0u8; 6];
        let got = stdout.read_exact(&mut buf).is_ok() && &buf == b"READY\n";
        let _ = tx.send(got);
        // Keep the pipe open (and drained) for the server's lifetime.
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(true) => proc,
        _ => {
            let _ = proc.child.kill();
            let mut err = String::new();
            if let Some(mut e) = proc.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("{label}: probe server did not become ready:\n{err}");
        }
    }
}

/// One logged connection of `probe.py serve`.
#[derive(Debug, Clone)]
pub struct Hit {
    pub proto: String,
    pub addr: String,
    pub port: u16,
    pub bytes: u64,
    pub data: String,
    /// `unixpath` listeners: the client's uid/gid as the kernel reports them
    /// (SO_PEERCRED, and SCM_CREDENTIALS when a message carried them).
    pub peer: Option<(u64, u64)>,
    pub scm: Option<(u64, u64)>,
}

pub fn hits(log: &Path) -> Vec<Hit> {
    read(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("log line is JSON");
            Hit {
                proto: v["proto"].as_str().unwrap().to_owned(),
                addr: v["addr"].as_str().unwrap().to_owned(),
                port: v["port"].as_u64().unwrap() as u16,
                bytes: v["bytes"].as_u64().unwrap(),
                data: v["data"].as_str().unwrap().to_owned(),
                peer: v["uid"].as_u64().zip(v["gid"].as_u64()),
                scm: v["scm_uid"].as_u64().zip(v["scm_gid"].as_u64()),
            }
        })
        .collect()
}

/// The python3 that sandboxes can see too (/usr/bin), else the one on PATH.
pub fn python() -> String {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3".to_owned()
    } else {
        s(&which("python3").expect("python3"))
    }
}

// ---------------------------------------------------------------- netns

/// A network namespace with `lo` up; deleted on drop after the processes
/// started in it (through [`Netns::spawn`]) are killed.
pub struct Netns {
    pub name: String,
    procs: Vec<Proc>,
}

impl Netns {
    pub fn new() -> Netns {
        let name = unique();
        ok(&mut cmd("ip", &["netns", "add", &name]));
        let ns = Netns {
            name,
            procs: Vec::new(),
        };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut c = cmd("ip", &["-n", &self.name]);
        c.args(args);
        ok(&mut c)
    }

    /// The argv prefix that runs a program inside the namespace.
    pub fn exec_prefix(&self) -> Vec<&str> {
        vec!["ip", "netns", "exec", &self.name]
    }

    pub fn exec(&self, program: &str, args: &[&str]) -> Command {
        let mut c = cmd("ip", &["netns", "exec", &self.name, program]);
        c.args(args);
        c
    }

    /// Keeps a process alive until the namespace is dropped.
    pub fn adopt(&mut self, proc: Proc) {
        self.procs.push(proc);
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.procs.clear();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// The MAC address of an interface inside a namespace.
pub fn mac(ns: &Netns, dev: &str) -> String {
    let out = ok(&mut ns.exec("cat", &[&format!("/sys/class/net/{dev}/address")]));
    out.trim().to_owned()
}

// ---------------------------------------------------------------- checks

/// Collects every failed expectation so one run reports all of them.
#[derive(Default)]
pub struct Checks {
    failures: Vec<String>,
    passed: usize,
}

impl Checks {
    pub fn new() -> Checks {
        Checks::default()
    }

    pub fn check(&mut self, label: &str, ok: bool, detail: impl FnOnce() -> String) {
        if ok {
            self.passed += 1;
        } else {
            self.failures.push(format!("{label}\n    {}", detail()));
        }
    }

    pub fn eq<T: PartialEq + std::fmt::Debug>(&mut self, label: &str, got: T, want: T) {
        let ok = got == want;
        self.check(label, ok, || format!("got {got:?}, want {want:?}"));
    }

    /// Panics listing every failure (the test's verdict).
    pub fn finish(self, test: &str) {
        if !self.failures.is_empty() {
            let mut msg = format!(
                "{test}: {} of {} checks FAILED:\n",
                self.failures.len(),
                self.failures.len() + self.passed
            );
            for f in &self.failures {
                let _ = writeln!(msg, "  - {f}");
            }
            panic!("{msg}");
        }
        eprintln!("{test}: all {} checks passed", self.passed);
    }
}

/// Parses `KEY=VALUE` lines.
pub fn kv(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Whether every capability set in a status map is empty.
pub fn caps_zero(status: &BTreeMap<String, String>) -> bool {
    ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
        .iter()
        .all(|k| status.get(*k).map(String::as_str) == Some("0000000000000000"))
}
