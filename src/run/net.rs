//! The network of a `capgate run` whose manifest declares `net:connect`
//! (docs/run.md "Network"): a network namespace for the sandbox, a veth to
//! the host, the nftables target's ruleset inside the namespace and a private
//! squid (the squid target's config) on the host end of the veth.
//!
//! ```text
//! sandbox netns                              host (capgate's netns)
//!   lo                                         squid  HOST_IP:PORT (private instance)
//!   cgnetNs  SANDBOX_IP/30  <── veth ──>  cgnetNh  HOST_IP/30
//!   nft: proxy, declared IP:ports; all else dropped
//! ```
//!
//! Hostnames reach the world only through squid (the run sets the proxy
//! variables); declared IP literals also directly, through a default route
//! via the host end (masqueraded there). The namespace belongs to the
//! initial user namespace, so nothing in the sandbox can change its rules.
//!
//! Every run owns `/run/capgate/net-N` (created with `mkdir`, so two runs never
//! take the same N): its squid.conf, ruleset, squid's pid file and logs, and
//! an `owner` file with capgate's pid and start time. The namespace and the
//! veth go away with the sandbox's last process; squid and the host's
//! masquerade table are removed on exit, and by the next run when the owner
//! is gone (a SIGKILLed capgate).

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::artifact::Egress;
use crate::diag::{Code, Diagnostic};

/// Where runs keep their state.
pub const RUN_ROOT: &str = "/run/capgate";
/// The proxy's port on the host end of the veth.
pub const PROXY_PORT: u16 = 3128;
/// 253 /24s of 169.254.0.0/16 (169.254.169.0/24, the metadata range, is
/// skipped), 64 /30s each.
const SLOTS: u32 = 253 * 64;

/// One run's network, from allocation to teardown (on drop).
#[derive(Debug)]
pub struct Network {
    pub index: u32,
    pub dir: PathBuf,
    pub host_ip: Ipv4Addr,
    pub sandbox_ip: Ipv4Addr,
    pub host_if: String,
    pub sandbox_if: String,
    /// Declared IPv4 literals: the namespace gets a default route and the
    /// host a masquerade rule for the sandbox's address.
    pub direct: bool,
    squid: Option<Child>,
    masquerade: bool,
}

/// Whether `ip` lies in the range the runs' links are taken from.
pub fn in_link_range(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 169 && o[1] == 254 && o[2] != 169
}

/// The /30 of slot `i`: (host end, sandbox end).
fn subnet(i: u32) -> (Ipv4Addr, Ipv4Addr) {
    let mut third = 1 + i / 64;
    if third >= 169 {
        third += 1;
    }
    let fourth = (i % 64) * 4;
    (
        Ipv4Addr::new(169, 254, third as u8, fourth as u8 + 1),
        Ipv4Addr::new(169, 254, third as u8, fourth as u8 + 2),
    )
}

fn err(what: impl std::fmt::Display) -> Diagnostic {
    Diagnostic::new(Code::RunNetwork, what.to_string())
}

/// Start time of a process (field 22 of /proc/PID/stat).
pub fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19).map(str::to_owned)
}

/// `PID START` of a process, as the state files hold it.
fn identity(pid: u32) -> String {
    format!("{pid} {}", start_time(pid).unwrap_or_default())
}

/// Whether a state file's `PID START` names a process that still runs.
fn alive(text: &str) -> bool {
    let mut words = text.split_whitespace();
    let (Some(pid), Some(start)) = (words.next(), words.next()) else {
        return false;
    };
    pid.parse::<u32>()
        .ok()
        .and_then(start_time)
        .is_some_and(|s| s == start)
}

impl Network {
    /// Removes what runs whose capgate is gone left behind, then takes a free
    /// slot. The caller fills the directory and calls [`Network::start`].
    pub fn allocate() -> Result<Network, Diagnostic> {
        std::fs::create_dir_all(RUN_ROOT)
            .map_err(|e| err(format!("cannot create {RUN_ROOT}: {e}")))?;
        // One run at a time reaps and takes a slot: a slow reaper must never
        // remove a directory a new run has just taken.
        let _lock = Lock::take()?;
        reap_stale();
        let first = std::process::id() % SLOTS;
        for k in 0..SLOTS {
            let index = (first + k) % SLOTS;
            let dir = Path::new(RUN_ROOT).join(format!("net-{index}"));
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(err(format!("cannot create {}: {e}", dir.display()))),
            }
            let (host_ip, sandbox_ip) = subnet(index);
            let net = Network {
                index,
                dir,
                host_ip,
                sandbox_ip,
                host_if: format!("cgnet{index}h"),
                sandbox_if: format!("cgnet{index}s"),
                direct: false,
                squid: None,
                masquerade: false,
            };
            let io = |what: &Path, e: std::io::Error| {
                err(format!("cannot write {}: {e}", what.display()))
            };
            std::fs::write(net.dir.join("netns"), netns_id() + "\n")
                .map_err(|e| io(&net.dir.join("netns"), e))?;
            std::fs::write(net.dir.join("owner"), identity(std::process::id()) + "\n")
                .map_err(|e| io(&net.dir.join("owner"), e))?;
            std::fs::set_permissions(&net.dir, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| io(&net.dir, e))?;
            // squid's user writes only below squid/ (pid file, logs): what
            // root later trusts (owner, pids, configs) stays root's.
            let instance = net.instance_dir();
            std::fs::create_dir(&instance).map_err(|e| io(&instance, e))?;
            if let Some((uid, gid)) = squid_user() {
                std::os::unix::fs::chown(&instance, Some(uid), Some(gid))
                    .map_err(|e| io(&instance, e))?;
            }
            return Ok(net);
        }
        Err(err(format!(
            "no free network slot below {RUN_ROOT} ({SLOTS} runs at once?)"
        )))
    }

    /// squid's `instance_dir`: its pid file and logs, owned by squid's user.
    pub fn instance_dir(&self) -> PathBuf {
        self.dir.join("squid")
    }

    /// The proxy URL the sandbox's environment names.
    pub fn proxy_url(&self) -> String {
        format!("http://{}:{PROXY_PORT}", self.host_ip)
    }

    /// squid's service name (`-n`, alphanumeric): its shared-memory segments are named after it.
    fn service(&self) -> String {
        format!("capgatenet{}", self.index)
    }

    pub fn squid_conf(&self) -> PathBuf {
        self.dir.join("squid.conf")
    }

    pub fn ruleset(&self) -> PathBuf {
        self.dir.join("egress.nft")
    }

    /// squid's access log, read as root although squid's user owns it: a
    /// regular file only (no symlink, no FIFO), at most 64 MiB.
    pub fn read_access_log(&self) -> String {
        read_untrusted(&self.instance_dir().join("access.log"))
    }

    /// Writes the compiled configs into the run's directory.
    pub fn write_configs(&self, squid_conf: &str, ruleset: &str) -> Result<(), Diagnostic> {
        for (path, text) in [(self.squid_conf(), squid_conf), (self.ruleset(), ruleset)] {
            std::fs::write(&path, text)
                .and_then(|()| {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
                })
                .map_err(|e| err(format!("cannot write {}: {e}", path.display())))?;
        }
        Ok(())
    }

    /// Wires the namespace of `pid` (the sandbox's first process, waiting)
    /// to the host, loads the ruleset in it and starts squid.
    pub fn start(&mut self, pid: u32) -> Result<(), Diagnostic> {
        let ns = format!("--net=/proc/{pid}/ns/net");
        let host = format!("{}/30", self.host_ip);
        let sandbox = format!("{}/30", self.sandbox_ip);
        let pid_s = pid.to_string();
        tool(
            "ip",
            &[
                "link",
                "add",
                &self.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &self.sandbox_if,
                "netns",
                &pid_s,
            ],
        )?;
        tool("ip", &["addr", "add", &host, "dev", &self.host_if])?;
        tool("ip", &["link", "set", &self.host_if, "up"])?;
        // No IPv6 on the sandbox's link (addrgenmode none: not even a
        // link-local address); the ruleset drops link-local IPv6 as well.
        let mut batch = format!(
            "link set lo up\n\
             link set {s} addrgenmode none\n\
             addr add {sandbox} dev {s}\n\
             link set {s} up\n",
            s = self.sandbox_if
        );
        if self.direct {
            batch.push_str(&format!("route add default via {}\n", self.host_ip));
        }
        let batch_file = self.dir.join("netns.ip");
        std::fs::write(&batch_file, batch)
            .map_err(|e| err(format!("cannot write {}: {e}", batch_file.display())))?;
        // nsenter runs its program by name through PATH: give it the path.
        let ip = path_str(&super::tool_path("ip"));
        let nft = path_str(&super::tool_path("nft"));
        tool("nsenter", &[&ns, &ip, "-batch", &path_str(&batch_file)])?;
        tool("nsenter", &[&ns, &nft, "-f", &path_str(&self.ruleset())])?;
        if self.direct {
            let table = format!(
                "table ip capgate_run_{i} {{\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    ip saddr {sip} oifname != \"{hif}\" masquerade\n  }}\n}}\n",
                i = self.index,
                sip = self.sandbox_ip,
                hif = self.host_if
            );
            let path = self.dir.join("masquerade.nft");
            std::fs::write(&path, table)
                .map_err(|e| err(format!("cannot write {}: {e}", path.display())))?;
            self.masquerade = true;
            tool("nft", &["-f", &path_str(&path)])?;
        }
        self.start_squid()
    }

    fn start_squid(&mut self) -> Result<(), Diagnostic> {
        let squid = super::find_tool("squid").ok_or_else(|| {
            err("the manifest declares hostnames, and squid is not installed").with_help(
                "install squid (Debian/Ubuntu: apt-get install squid); capgate starts a private instance per run",
            )
        })?;
        let stderr_path = self.dir.join("squid.stderr");
        let stderr = std::fs::File::create(&stderr_path)
            .map_err(|e| err(format!("cannot write {}: {e}", stderr_path.display())))?;
        let mut c = Command::new(squid);
        c.args(["-N", "-n", &self.service(), "-f"])
            .arg(self.squid_conf())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        // The supervisor blocks the signals it forwards, and a spawned child
        // inherits the mask: squid must get SIGHUP (reconfigure) itself.
        // SAFETY: only signal-mask system calls between fork and exec.
        unsafe {
            c.pre_exec(|| {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
        let child = c
            .spawn()
            .map_err(|e| err(format!("cannot start squid: {e}")))?;
        let _ = std::fs::write(self.dir.join("squid-process"), identity(child.id()) + "\n");
        self.squid = Some(child);
        // Ready when squid says it accepts on the veth address.
        let want = format!("local={}:{PROXY_PORT}", self.host_ip);
        let log = self.instance_dir().join("cache.log");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = read_untrusted(&log);
            if text
                .lines()
                .any(|l| l.contains("Accepting HTTP") && l.contains(&want))
            {
                return Ok(());
            }
            let exited = self
                .squid
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
                .is_some();
            if exited || Instant::now() > deadline {
                let text = text + &std::fs::read_to_string(&stderr_path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(err(format!(
                    "squid {} (its log and stderr in {}: {})",
                    if exited {
                        "exited at start"
                    } else {
                        "did not start within 20 s"
                    },
                    self.dir.display(),
                    if tail.is_empty() {
                        "empty".into()
                    } else {
                        tail.join(" | ")
                    }
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What rewrites squid.conf and has the running squid read it, for a
    /// thread beside the run.
    pub fn reconfigurer(&self) -> Reconfigurer {
        Reconfigurer {
            dir: self.dir.clone(),
            squid: self.squid.as_ref().map(Child::id),
        }
    }

    /// Stops squid. SIGKILL at once: squid -N takes its time over SIGTERM, and
    /// an MCP client gives its server two seconds after closing stdin. Its
    /// access log is written line by line (`buffered_logs off`), so it is
    /// read before, and complete.
    pub fn stop_squid(&mut self) {
        if let Some(mut child) = self.squid.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Rewrites a run's squid.conf and signals its squid (see [`Network::reconfigurer`]).
pub struct Reconfigurer {
    dir: PathBuf,
    squid: Option<u32>,
}

impl Reconfigurer {
    /// Writes the new config and sends SIGHUP (squid: reconfigure). The caller
    /// stops using it before the run stops squid.
    pub fn apply(&self, conf: &str) -> Result<(), Diagnostic> {
        let path = self.dir.join("squid.conf");
        let tmp = self.dir.join("squid.conf.new");
        std::fs::write(&tmp, conf)
            .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| err(format!("cannot write {}: {e}", path.display())))?;
        if let Some(pid) = self.squid {
            // SAFETY: kill(2) on the run's squid, which the run stops only after this thread ended.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) };
        }
        Ok(())
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.stop_squid();
        teardown(&self.dir, self.index, self.masquerade, Remains::Here);
    }
}

/// The identity (`dev:inode`) of capgate's own network namespace, so that a
/// reaper in another namespace does not delete a veth or a table in its own
/// by the same name. `/run/capgate` is shared by every namespace of the host.
fn netns_id() -> String {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self/ns/net")
        .map(|m| format!("{}:{}", m.dev(), m.ino()))
        .unwrap_or_default()
}

/// The recorded squid's pid, while it still runs.
fn live_squid(dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(dir.join("squid-process")).ok()?;
    alive(&text)
        .then(|| text.split_whitespace().next()?.parse().ok())
        .flatten()
}

/// Where a run's per-namespace remains (veth host end, masquerade table) are.
enum Remains {
    /// In capgate's own network namespace.
    Here,
    /// In another one, entered through this path.
    Enter(String),
    /// Nowhere any more.
    Gone,
}

/// Removes a run's host-side remains: the veth's host end (gone with the
/// namespace normally) and the masquerade table, where they are, then squid
/// (by its recorded pid and start time), squid's shared memory and the
/// directory.
fn teardown(dir: &Path, index: u32, masquerade: bool, remains: Remains) {
    let quiet = |program: &str, args: &[&str]| {
        let mut c = match &remains {
            Remains::Gone => return,
            Remains::Enter(ns) => {
                let mut c = Command::new(super::tool_path("nsenter"));
                c.arg(format!("--net={ns}")).arg(super::tool_path(program));
                c
            }
            Remains::Here => Command::new(super::tool_path(program)),
        };
        let _ = c
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    quiet("ip", &["link", "del", &format!("cgnet{index}h")]);
    if masquerade || dir.join("masquerade.nft").exists() {
        quiet(
            "nft",
            &["delete", "table", "ip", &format!("capgate_run_{index}")],
        );
    }
    if let Some(pid) = live_squid(dir) {
        // SAFETY: kill(2) on the recorded squid (pid and start time checked).
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    if let Ok(entries) = std::fs::read_dir("/dev/shm") {
        use std::os::unix::fs::MetadataExt as _;
        let prefix = format!("capgatenet{index}-");
        let owner = squid_user().map(|(uid, _)| uid);
        for e in entries.flatten() {
            // Only squid's own segments: anyone can create a file by that name.
            let squids = e
                .metadata()
                .is_ok_and(|m| owner.is_none_or(|uid| m.uid() == uid || m.uid() == 0));
            if squids && e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Tears down every run directory whose capgate is gone. A directory without
/// an owner file is a run being set up, unless it is more than a minute old.
/// A run of another network namespace is torn down inside it, entered through
/// its squid while that runs; without a squid and with a masquerade table
/// there, it is left for a run in that namespace.
fn reap_stale() {
    let Ok(entries) = std::fs::read_dir(RUN_ROOT) else {
        return;
    };
    let here = netns_id();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(index) = name
            .strip_prefix("net-")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = e.path();
        let stale = match std::fs::read_to_string(dir.join("owner")) {
            Ok(text) => !alive(&text),
            Err(_) => e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(60)),
        };
        if !stale {
            continue;
        }
        let theirs = std::fs::read_to_string(dir.join("netns")).unwrap_or_default();
        if theirs.trim() == here || theirs.is_empty() {
            teardown(&dir, index, false, Remains::Here);
        } else if let Some(pid) = live_squid(&dir) {
            teardown(
                &dir,
                index,
                false,
                Remains::Enter(format!("/proc/{pid}/ns/net")),
            );
        } else if !dir.join("masquerade.nft").exists() {
            // The veth went with the sandbox: nothing is left in that namespace.
            teardown(&dir, index, false, Remains::Gone);
        }
    }
}

/// A file squid's user can write, read without following a link or
/// blocking on a FIFO, and bounded.
fn read_untrusted(path: &Path) -> String {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    else {
        return String::new();
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return String::new();
    }
    let mut bytes = Vec::new();
    let _ = f.take(64 << 20).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// An exclusive lock on /run/capgate/lock, held while stale runs are reaped
/// and a slot is taken; released on drop (the descriptor closes).
struct Lock {
    _file: std::fs::File,
}

impl Lock {
    fn take() -> Result<Lock, Diagnostic> {
        use std::os::fd::AsRawFd as _;
        let path = Path::new(RUN_ROOT).join("lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| err(format!("cannot open {}: {e}", path.display())))?;
        // SAFETY: flock(2) on a descriptor this function owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(err(format!(
                "cannot lock {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            )));
        }
        Ok(Lock { _file: f })
    }
}

/// uid and gid of squid's effective user (`proxy` on Debian).
fn squid_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == "proxy").then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Runs one host tool; its stderr is the error.
fn tool(program: &str, args: &[&str]) -> Result<(), Diagnostic> {
    let out = Command::new(super::tool_path(program))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            err(format!("cannot run {program}: {e}")).with_help(
                "capgate run with network needs ip (iproute2), nsenter (util-linux), nft (nftables) and squid",
            )
        })?;
    if !out.status.success() {
        return Err(err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Declared IPv4 literals (reached directly, not only through the proxy).
pub fn direct_ipv4(egress: &[Egress]) -> Vec<Ipv4Addr> {
    egress.iter().filter_map(|e| e.host.parse().ok()).collect()
}

/// Whether the host forwards IPv4 (a declared IP that is not one of the
/// host's own addresses needs it; capgate does not change host sysctls).
pub fn forwarding() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|s| s.trim() == "1")
}

/// The host's own addresses, IPv4 and IPv6 (`ip -o addr`).
pub fn local_addresses() -> Vec<std::net::IpAddr> {
    let Ok(out) = Command::new(super::tool_path("ip"))
        .args(["-o", "addr", "show"])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.find(|x| *x == "inet" || *x == "inet6")?;
            w.next()?.split('/').next()?.parse().ok()
        })
        .collect()
}

/// Every address and prefix the host delivers locally (`ip route show table
/// local type local`, IPv4 and IPv6): an address inside a prefix assigned to
/// `lo` (`11.9.9.1/24`) is the host as much as the assigned one.
pub fn local_prefixes() -> Vec<String> {
    let mut out = Vec::new();
    for family in ["-4", "-6"] {
        let Ok(o) = Command::new(super::tool_path("ip"))
            .args([
                family, "-o", "route", "show", "table", "local", "type", "local",
            ])
            .output()
        else {
            continue;
        };
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let mut w = line.split_whitespace();
            if w.next() == Some("local") {
                if let Some(dest) = w.next() {
                    out.push(dest.to_owned());
                }
            }
        }
    }
    out
}

/// Why `capgate run` refuses a declared IP literal, if it does: an address
/// whose meaning the run would change.
pub fn refused_literal(ip: std::net::IpAddr) -> Option<&'static str> {
    match ip {
        std::net::IpAddr::V4(v4) if in_link_range(v4) => Some(
            "inside 169.254.0.0/16, which capgate run uses for its links to the host (only 169.254.169.0/24, the metadata range, is left out): the address could be the host itself or another run's proxy",
        ),
        ip if ip.is_loopback() || ip.is_unspecified() => Some(
            "a loopback (or unspecified) address, which under capgate run would mean the sandbox's own loopback directly but the host's through the proxy: the sandbox's own loopback needs no capability, and a host service must be declared by its address on another interface",
        ),
        _ => None,
    }
}

/// Lets the sandbox's first process go on: one byte down the pipe it waits on.
pub fn release(fd: std::os::fd::OwnedFd) -> std::io::Result<()> {
    let mut f = std::fs::File::from(fd);
    f.write_all(b"g")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_distinct_link_local_30s_outside_the_metadata_range() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..SLOTS {
            let (h, s) = subnet(i);
            let o = h.octets();
            assert_eq!((o[0], o[1]), (169, 254));
            assert!(o[2] != 169 && o[2] != 0 && o[2] != 255, "{h}");
            assert!(in_link_range(h) && in_link_range(s));
            assert_eq!(o[3] % 4, 1, "{h} is not the first host of its /30");
            assert_eq!(u32::from(s), u32::from(h) + 1);
            assert!(seen.insert(h), "slot {i} repeats {h}");
        }
    }

    #[test]
    fn files_squid_writes_are_read_without_links_or_fifos() {
        let dir = std::env::temp_dir().join(format!("capgate-untrusted-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, "1 TCP_DENIED/403 CONNECT leaked.test:443\n").unwrap();
        std::os::unix::fs::symlink(&secret, dir.join("link")).unwrap();
        let fifo = std::ffi::CString::new(dir.join("fifo").to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(read_untrusted(&secret).contains("leaked.test"));
        assert_eq!(read_untrusted(&dir.join("link")), "");
        // A FIFO with no writer would block a plain read forever.
        assert_eq!(read_untrusted(&dir.join("fifo")), "");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn literals_whose_meaning_the_run_changes_are_refused() {
        for bad in [
            "169.254.1.1",
            "169.254.0.2",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "0.0.0.0",
            "::",
        ] {
            assert!(refused_literal(bad.parse().unwrap()).is_some(), "{bad}");
        }
        for ok in [
            "169.254.169.254",
            "10.0.0.5",
            "11.0.0.2",
            "fd00::1",
            "2a00::1",
        ] {
            assert!(refused_literal(ok.parse().unwrap()).is_none(), "{ok}");
        }
    }

    #[test]
    fn liveness_needs_pid_and_start_time() {
        assert!(alive(&identity(std::process::id())));
        assert!(!alive(&format!("{} 1", std::process::id())));
        assert!(!alive(""));
        assert!(!alive("notapid 5"));
    }
}
