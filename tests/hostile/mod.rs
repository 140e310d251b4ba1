//! Checks shared by the hostile-input tests (`tests/injection.rs`,
//! `tests/properties.rs`, `tests/fuzz.rs` and the cargo-fuzz targets):
//! what a manifest declared, and whether a compiled policy stays within it
//! and keeps the structure of its output format.
//!
//! The checkers parse the outputs themselves (argv by option arity, squid.conf
//! and nftables line by line, the kubernetes YAML with yaml-rust2) instead of trusting any capgate data structure,
//! so a rule or template that grants more than declared is caught here.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use capgate::artifact::Artifact;
use capgate::capability::{Capability, ClockSource, Endpoint, Host};

/// The read-only system baseline every bwrap sandbox gets (docs/security.md).
pub const BWRAP_BASELINE: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/bin",
    "/sbin",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/alternatives",
];
/// The kernel-wide files of the sandbox's /proc, bound read-only over it
/// (docs/security.md, rule `bwrap.proc-readonly`).
pub const BWRAP_PROC_READONLY: &[&str] = &[
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/proc/irq",
    "/proc/bus",
    "/proc/fs",
    "/proc/asound",
    "/proc/acpi",
];
/// Every fixed host path an oracle below accepts as bound or read beside the
/// declared paths and sockets: no writable declaration may hold one
/// (tests/injection.rs). Paths that come from a target option (srt's helper
/// and socket directories) are checked per compile instead (OPTION_IN_WRITABLE,
/// tests/overgrant.rs).
pub fn undeclared_sources() -> Vec<&'static str> {
    [
        BWRAP_BASELINE,
        BWRAP_PROC_READONLY,
        TZDATA,
        SYSTEMD_BASELINE,
        SRT_SYSTEM_READ,
    ]
    .concat()
    .into_iter()
    .chain([SRT_TIMEZONE])
    .collect()
}
/// Bound read-only only when `clock:tzdata` is declared.
pub const TZDATA: &[&str] = &["/usr/share/zoneinfo", "/etc/localtime"];
/// Holds the one display socket (`X<n>`) bound read-only when `ipc:connect:x11`
/// is declared; the directory itself (every display) is never bound.
pub const X11_DIR: &str = "/tmp/.X11-unix";

/// `/tmp/.X11-unix/X<n>`: one display's socket.
fn x11_socket(src: &str) -> bool {
    src.strip_prefix(X11_DIR)
        .and_then(|r| r.strip_prefix("/X"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}
/// Bound read-only only when `ipc:connect:"dbus:system"` is declared.
pub const DBUS_SYSTEM: &str = "/run/dbus/system_bus_socket";
/// The proxy variables the docker target sets when net is declared.
pub const PROXY_VARS: &[&str] = &["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"];

/// A declared destination host, normalised (names lower-case, IPs parsed).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostDecl {
    Any,
    Wildcard(String),
    Name(String),
    Ip(IpAddr),
}

/// What a manifest declared, in the terms a policy is checked against.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    /// fs paths (glob removed) with whether the declaration needs a writable bind.
    pub fs: Vec<(String, bool)>,
    /// unix socket paths.
    pub sockets: BTreeSet<String>,
    pub x11: bool,
    pub dbus_system: bool,
    pub tzdata: bool,
    /// env names (x11 adds DISPLAY).
    pub env: BTreeSet<String>,
    /// (host, port); `None` is any port.
    pub net: BTreeSet<(HostDecl, Option<u16>)>,
}

impl Declared {
    /// Adds one parsed capability.
    pub fn add(&mut self, cap: &Capability) {
        match cap {
            Capability::Fs { actions, path } => self
                .fs
                .push((path.path.as_str().to_owned(), actions.closure().writable())),
            Capability::Net { host, port } => {
                let h = match host {
                    Host::Any => HostDecl::Any,
                    Host::Wildcard(n) => HostDecl::Wildcard(n.as_str().to_ascii_lowercase()),
                    Host::Name(n) => HostDecl::Name(n.as_str().to_ascii_lowercase()),
                    Host::V4(a) => HostDecl::Ip(IpAddr::V4(*a)),
                    Host::V6(a) => HostDecl::Ip(IpAddr::V6(*a)),
                };
                self.net.insert((h, port.map(|p| p.get())));
            }
            Capability::Env { name, .. } => {
                self.env.insert(name.as_str().to_owned());
            }
            Capability::Ipc { endpoint } => match endpoint {
                Endpoint::X11 => {
                    self.x11 = true;
                    self.env.insert("DISPLAY".to_owned());
                }
                Endpoint::DbusSystem => self.dbus_system = true,
                Endpoint::DbusSession => {}
                Endpoint::Unix(p) => {
                    self.sockets.insert(p.as_str().to_owned());
                }
            },
            Capability::Clock { source } => self.tzdata |= *source == ClockSource::Tzdata,
            Capability::Exec { .. } | Capability::Assert { .. } => {}
        }
    }

    /// Reads the declarations of a manifest the way an independent reader would:
    /// serde_json for the JSON, `parse_capability` for each string. Strings that
    /// do not parse are skipped (a manifest containing one never compiles).
    pub fn from_manifest(bytes: &[u8]) -> Declared {
        let mut d = Declared::default();
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
            return d;
        };
        let mut lists = vec![v.get("serverCapabilities")];
        if let Some(tools) = v.get("tools").and_then(|t| t.as_array()) {
            lists.extend(tools.iter().map(|t| t.get("capabilities")));
        }
        for list in lists.into_iter().flatten() {
            for s in list
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str())
            {
                if let Ok(cap) = capgate::syntax::parse_capability(s) {
                    d.add(&cap);
                }
            }
        }
        d
    }

    fn has_net(&self) -> bool {
        !self.net.is_empty()
    }

    /// Whether `path` (a bind source) is a declared fs path, and whether a
    /// writable bind of it is covered by a writable declaration at it or above it.
    fn fs_bind(&self, path: &str) -> Option<bool> {
        if !self.fs.iter().any(|(p, _)| p == path) {
            return None;
        }
        Some(
            self.fs
                .iter()
                .any(|(p, w)| *w && (p == path || is_ancestor(p, path))),
        )
    }

    /// Whether (host, port) may be allowed by an egress rule.
    fn allows(&self, host: &HostDecl, port: Option<u16>) -> bool {
        self.net.contains(&(host.clone(), None))
            || (port.is_some() && self.net.contains(&(host.clone(), port)))
    }
}

fn is_ancestor(anc: &str, path: &str) -> bool {
    anc == "/"
        || (path.len() > anc.len() && path.starts_with(anc) && path.as_bytes()[anc.len()] == b'/')
}

type Check = Result<(), String>;

/// Checks a compiled artifact of a built-in target against the declarations.
pub fn check_artifact(target: &str, artifact: &Artifact, declared: &Declared) -> Check {
    let egress = match artifact {
        Artifact::Argv(a) => &a.egress,
        Artifact::Config(c) => &c.egress,
    };
    check_egress(egress, declared)?;
    match (target, artifact) {
        ("bwrap", Artifact::Argv(a)) => {
            check_bwrap(&a.argv, declared)?;
            check_env_injections(&a.env_injections, declared)
        }
        ("docker", Artifact::Argv(a)) => {
            check_docker(&a.argv, declared)?;
            check_env_injections(&a.env_injections, declared)
        }
        ("squid", Artifact::Config(c)) => check_squid(&c.config, declared),
        ("nftables", Artifact::Config(c)) => check_nft(&c.config, declared),
        ("oci", Artifact::Config(c)) => check_oci(&c.config, declared),
        ("systemd", Artifact::Config(c)) => check_systemd(&c.config, declared),
        ("kubernetes", Artifact::Config(c)) => {
            let files: Vec<&str> = match &c.files {
                Some(f) => f.iter().map(|f| f.config.as_str()).collect(),
                None => vec![c.config.as_str()],
            };
            check_kubernetes(&files, declared)
        }
        ("srt", Artifact::Config(c)) => check_srt(&c.config, declared),
        _ => Err(format!("unexpected artifact shape for target {target}")),
    }
}

/// `egress[]` lists exactly declared destinations; `blockPrivate` is false
/// only for an explicitly declared special-range address.
fn check_egress(egress: &[capgate::artifact::Egress], declared: &Declared) -> Check {
    for e in egress {
        let host = if e.host == "*" {
            HostDecl::Any
        } else if let Some(d) = e.host.strip_prefix("*.") {
            HostDecl::Wildcard(d.to_owned())
        } else if let Ok(ip) = e.host.parse::<IpAddr>() {
            HostDecl::Ip(ip)
        } else {
            HostDecl::Name(e.host.clone())
        };
        let special = matches!(host, HostDecl::Ip(ip) if capgate::ir::is_special(ip));
        if e.block_private == special {
            return Err(format!("egress {e:?}: blockPrivate is wrong"));
        }
        if !declared.net.contains(&(host, e.port)) {
            return Err(format!("egress {e:?} is not declared"));
        }
    }
    Ok(())
}

fn check_env_injections(names: &[String], declared: &Declared) -> Check {
    for n in names {
        if !declared.env.contains(n) {
            return Err(format!("envInjections lists undeclared {n:?}"));
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ argv

/// Option arities of the options capgate's argv targets may emit. An option
/// outside the table fails the check, so a new flag is reviewed here first.
const BWRAP_OPTIONS: &[(&str, usize)] = &[
    ("--unshare-user", 0),
    ("--unshare-ipc", 0),
    ("--unshare-pid", 0),
    ("--unshare-net", 0),
    ("--unshare-uts", 0),
    ("--unshare-cgroup", 0),
    ("--unshare-all", 0),
    ("--disable-userns", 0),
    ("--die-with-parent", 0),
    ("--new-session", 0),
    ("--clearenv", 0),
    ("--as-pid-1", 0),
    ("--uid", 1),
    ("--gid", 1),
    ("--cap-drop", 1),
    ("--proc", 1),
    ("--dev", 1),
    ("--tmpfs", 1),
    ("--dir", 1),
    ("--perms", 1),
    ("--chdir", 1),
    ("--hostname", 1),
    ("--unsetenv", 1),
    ("--ro-bind", 2),
    ("--ro-bind-try", 2),
    ("--bind", 2),
    ("--bind-try", 2),
    ("--symlink", 2),
    ("--setenv", 2),
];

const DOCKER_OPTIONS: &[(&str, usize)] = &[
    ("--rm", 0),
    // stdin kept open for stdio MCP servers (issue 12).
    ("--interactive", 0),
    ("--read-only", 0),
    ("--init", 0),
    ("--cap-drop", 1),
    ("--security-opt", 1),
    ("--user", 1),
    ("--pids-limit", 1),
    ("--memory", 1),
    ("--memory-swap", 1),
    ("--shm-size", 1),
    ("--cpus", 1),
    ("--tmpfs", 1),
    ("--network", 1),
    ("--env", 1),
    ("--mount", 1),
    ("--workdir", 1),
    ("--hostname", 1),
    ("--ipc", 1),
];

/// Splits an argv into (option, arguments) by arity. Every element must be
/// one line without controls or surrounding whitespace; an argument never
/// starts with `-`, so no value can become an option.
pub fn split_options<'a>(
    argv: &'a [String],
    table: &[(&str, usize)],
) -> Result<Vec<(&'a str, Vec<&'a str>)>, String> {
    for e in argv {
        if e.is_empty() || e.chars().any(char::is_control) || e.trim() != e {
            return Err(format!(
                "argv element {e:?} is empty, has a control character or surrounding whitespace"
            ));
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let opt = argv[i].as_str();
        let Some(&(_, arity)) = table.iter().find(|(o, _)| *o == opt) else {
            return Err(format!("argv element {i} {opt:?} is not a known option"));
        };
        let args: Vec<&str> = argv
            .get(i + 1..i + 1 + arity)
            .ok_or_else(|| format!("option {opt:?} lacks its {arity} argument(s)"))?
            .iter()
            .map(String::as_str)
            .collect();
        if let Some(a) = args.iter().find(|a| a.starts_with('-')) {
            return Err(format!("argument {a:?} of {opt:?} starts with `-`"));
        }
        out.push((opt, args));
        i += 1 + arity;
    }
    Ok(out)
}

pub fn check_bwrap(argv: &[String], declared: &Declared) -> Check {
    let opts = split_options(argv, BWRAP_OPTIONS)?;
    let has = |o: &str| opts.iter().any(|(x, _)| *x == o);
    for must in [
        "--unshare-net",
        "--unshare-user",
        "--unshare-pid",
        "--clearenv",
    ] {
        if !has(must) {
            return Err(format!("bwrap argv lacks {must}"));
        }
    }
    if !opts
        .iter()
        .any(|(o, a)| *o == "--cap-drop" && a == &["ALL"])
    {
        return Err("bwrap argv lacks --cap-drop ALL".to_owned());
    }
    let mut seen_clearenv = false;
    // (source, destination, writable) of every bind, in mount order.
    let mut binds: Vec<(&str, &str, bool)> = Vec::new();
    for (opt, args) in &opts {
        match *opt {
            "--clearenv" => seen_clearenv = true,
            "--setenv" if !seen_clearenv || !matches!(args[0], "PATH" | "HOME") => {
                return Err(format!(
                    "--setenv {} (only PATH and HOME, after --clearenv)",
                    args[0]
                ));
            }
            "--ro-bind" | "--ro-bind-try" | "--bind" | "--bind-try" => {
                let (src, dst) = (args[0], args[1]);
                if src != dst {
                    return Err(format!("{opt} {src} {dst}: source and destination differ"));
                }
                bind_allowed(src, opt.starts_with("--bind"), declared, true)
                    .map_err(|e| format!("{opt} {src}: {e}"))?;
                binds.push((src, dst, opt.starts_with("--bind")));
            }
            "--symlink" => return Err(format!("--symlink {args:?} is not expected")),
            _ => {}
        }
    }
    walked_through_writable(&binds)
}

/// No declared bind's source is walked, under any spelling the host may use
/// (`capgate::syntax::spellings`), through a writable bind's directory, where
/// the sandbox could leave a symlink that the next start follows; unless it is
/// mounted before the writable bind and beneath its destination (then hidden
/// by it). Left out: the baseline's system paths (replacing `/usr/lib` needs
/// write access to root's `/usr`, which the sandbox's uid lacks). An X
/// display's socket is not left out: `/tmp/.X11-unix` is sticky, but 1777, so
/// the sandbox can create a display that is not running as a symlink.
fn walked_through_writable(binds: &[(&str, &str, bool)]) -> Check {
    for (iw, &(w_src, w_dst, writable)) in binds.iter().enumerate() {
        if !writable {
            continue;
        }
        let w_host = capgate::syntax::host_path(w_src);
        for (ib, &(b_src, b_dst, _)) in binds.iter().enumerate() {
            if ib == iw || BWRAP_BASELINE.contains(&b_src) {
                continue;
            }
            let hidden = ib < iw && (b_dst == w_dst || is_ancestor(w_dst, b_dst));
            let walked = capgate::syntax::spellings(b_src)
                .into_iter()
                .find(|s| is_ancestor(&w_host, s));
            if let (Some(s), false) = (walked, hidden) {
                return Err(format!(
                    "bind of {b_src} is walked through the writable bind of {w_src} (as {s}): a symlink the sandbox leaves there is followed at the next start"
                ));
            }
        }
    }
    Ok(())
}

/// Whether a bind of `src` (writable or not) is within the declarations.
fn bind_allowed(src: &str, writable: bool, d: &Declared, bwrap_baseline: bool) -> Check {
    if let Some(rw_ok) = d.fs_bind(src) {
        return if writable && !rw_ok {
            Err("bound read-write but no declaration at or above it is writable".to_owned())
        } else {
            Ok(())
        };
    }
    let conditional = (d.tzdata && TZDATA.contains(&src))
        || (d.x11 && x11_socket(src))
        || (d.dbus_system && src == DBUS_SYSTEM)
        || d.sockets.contains(src);
    let baseline =
        bwrap_baseline && (BWRAP_BASELINE.contains(&src) || BWRAP_PROC_READONLY.contains(&src));
    if !(conditional || baseline) {
        return Err("not a declared path, socket or baseline path".to_owned());
    }
    if writable {
        return Err("a baseline or ipc path is bound read-write".to_owned());
    }
    Ok(())
}

/// Mount types an OCI config of capgate may hold besides declared binds, with
/// the destinations they may have: the runtime's own filesystems, never the host's.
const OCI_SYSTEM_MOUNTS: &[(&str, &str)] = &[
    ("proc", "/proc"),
    ("tmpfs", "/dev"),
    ("devpts", "/dev/pts"),
    ("tmpfs", "/dev/shm"),
    ("mqueue", "/dev/mqueue"),
    ("sysfs", "/sys"),
    ("tmpfs", "/tmp"),
];

/// The oci target's config.json: the hardening every config must keep, no
/// joined (host) namespace, and every bind a declared path, socket or tzdata
/// file, read-write only where a writable declaration covers it.
pub fn check_oci(config: &str, declared: &Declared) -> Check {
    let c: serde_json::Value =
        serde_json::from_str(config).map_err(|e| format!("config.json is not JSON: {e}"))?;
    let p = &c["process"];
    if p["noNewPrivileges"] != true || c["root"]["readonly"] != true || p["terminal"] != false {
        return Err("noNewPrivileges, root.readonly or terminal changed".to_owned());
    }
    for set in [
        "bounding",
        "effective",
        "inheritable",
        "permitted",
        "ambient",
    ] {
        if p["capabilities"][set] != serde_json::json!([]) {
            return Err(format!("capabilities.{set} is not empty"));
        }
    }
    for id in ["uid", "gid"] {
        if p["user"][id].as_u64().is_none_or(|v| v == 0) {
            return Err(format!("process.user.{id} is root or missing"));
        }
    }
    for e in p["env"].as_array().ok_or("process.env is not a list")? {
        let e = e.as_str().ok_or("process.env holds a non-string")?;
        if !e.starts_with("PATH=") && e != "HOME=/tmp" {
            return Err(format!("process.env {e:?} was not derived by capgate"));
        }
    }
    let linux = &c["linux"];
    let mut types = BTreeSet::new();
    for ns in linux["namespaces"]
        .as_array()
        .ok_or("no linux.namespaces")?
    {
        if ns.get("path").is_some() {
            return Err(format!("namespace {ns} joins an existing namespace"));
        }
        types.insert(ns["type"].as_str().unwrap_or_default().to_owned());
    }
    for t in ["pid", "network", "ipc", "uts", "mount", "cgroup"] {
        if !types.contains(t) {
            return Err(format!("no new {t} namespace"));
        }
    }
    if linux["seccomp"]["defaultAction"] != "SCMP_ACT_ERRNO" {
        return Err("seccomp is missing or not an allowlist".to_owned());
    }
    for key in ["maskedPaths", "readonlyPaths"] {
        if linux[key].as_array().is_none_or(|a| a.len() < 5) {
            return Err(format!("linux.{key} lost its entries"));
        }
    }
    let allowed: BTreeSet<&str> = [
        "bind",
        "rbind",
        "ro",
        "rro",
        "rw",
        "rprivate",
        "nosuid",
        "nodev",
        "noexec",
        "strictatime",
        "newinstance",
    ]
    .into();
    let mounts = c["mounts"].as_array().ok_or("no mounts")?;
    for (i, m) in mounts.iter().enumerate() {
        let (ty, src, dst) = (
            m["type"].as_str().unwrap_or_default(),
            m["source"].as_str().unwrap_or_default(),
            m["destination"].as_str().unwrap_or_default(),
        );
        if ty != "bind" {
            if !OCI_SYSTEM_MOUNTS.contains(&(ty, dst)) {
                return Err(format!("mount {m} is neither a bind nor a system mount"));
            }
            continue;
        }
        let opts: Vec<&str> = m["options"]
            .as_array()
            .ok_or("bind without options")?
            .iter()
            .filter_map(|o| o.as_str())
            .collect();
        if let Some(o) = opts.iter().find(|o| !allowed.contains(*o)) {
            return Err(format!("mount {m}: option {o}"));
        }
        // A socket's placeholder (rules/oci.toml, oci.ipc.unix): /dev/null, read-only
        // and nodev, under a bind of the same destination (checked as every bind), so
        // that a directory in the socket's place fails the start.
        if src == "/dev/null" && src != dst {
            let next = &mounts
                .get(i + 1)
                .ok_or(format!("mount {m}: /dev/null at the end"))?;
            if !(opts.contains(&"ro") && opts.contains(&"nodev") && !opts.contains(&"rw"))
                || next["type"] != "bind"
                || next["destination"] != m["destination"]
            {
                return Err(format!(
                    "mount {m}: /dev/null is not a socket's read-only placeholder"
                ));
            }
            continue;
        }
        if src != dst {
            return Err(format!("mount {m}: source and destination differ"));
        }
        let readonly = opts.contains(&"ro") || opts.contains(&"rro");
        if readonly == opts.contains(&"rw") {
            return Err(format!("mount {m}: neither or both of ro and rw"));
        }
        bind_allowed(src, !readonly, declared, false).map_err(|e| format!("mount {m}: {e}"))?;
    }
    Ok(())
}

pub fn check_docker(argv: &[String], declared: &Declared) -> Check {
    let opts = split_options(argv, DOCKER_OPTIONS)?;
    let mut network = None;
    for (opt, args) in &opts {
        match *opt {
            "--network" => network = Some(args[0]),
            "--cap-drop" if args[0] != "ALL" => return Err(format!("--cap-drop {}", args[0])),
            // Only the no-new-privileges flag and a seccomp profile by absolute
            // path: never `seccomp=unconfined`, `apparmor=unconfined`, `label=disable`.
            "--security-opt"
                if args[0] != "no-new-privileges" && !args[0].starts_with("seccomp=/") =>
            {
                return Err(format!("--security-opt {}", args[0]))
            }
            "--env" => match args[0].split_once('=') {
                Some((name, _)) => {
                    if !(declared.has_net() && PROXY_VARS.contains(&name)) {
                        return Err(format!(
                            "--env {} sets a value capgate did not derive from net",
                            args[0]
                        ));
                    }
                }
                None => {
                    if !declared.env.contains(args[0]) {
                        return Err(format!("--env {} is not declared", args[0]));
                    }
                }
            },
            "--mount" => check_mount(args[0], declared)?,
            _ => {}
        }
    }
    match network {
        Some("host") => Err("--network host".to_owned()),
        Some("none") => Ok(()),
        Some(_) if declared.has_net() => Ok(()),
        Some(n) => Err(format!("--network {n} without declared net")),
        None => Err("docker argv has no --network".to_owned()),
    }
}

fn check_mount(spec: &str, declared: &Declared) -> Check {
    let mut kv: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    for part in spec.split(',') {
        let (k, v) = match part.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (part, None),
        };
        if kv.insert(k, v).is_some() {
            return Err(format!("--mount {spec}: key {k} repeated"));
        }
    }
    let keys: BTreeSet<&str> = kv.keys().copied().collect();
    let allowed: BTreeSet<&str> = [
        "type",
        "source",
        "target",
        "readonly",
        "bind-nonrecursive",
        "bind-recursive",
    ]
    .into();
    if kv.get("bind-nonrecursive").is_some_and(Option::is_some) {
        return Err(format!("--mount {spec}: bind-nonrecursive takes no value"));
    }
    if kv
        .get("bind-recursive")
        .is_some_and(|v| *v != Some("readonly"))
    {
        return Err(format!(
            "--mount {spec}: bind-recursive other than readonly"
        ));
    }
    if !keys.is_subset(&allowed) || kv.get("type") != Some(&Some("bind")) {
        return Err(format!("--mount {spec}: unexpected keys or type"));
    }
    let (Some(Some(src)), Some(Some(dst))) = (kv.get("source"), kv.get("target")) else {
        return Err(format!("--mount {spec}: source and target needed"));
    };
    if src != dst {
        return Err(format!("--mount {spec}: source and target differ"));
    }
    let readonly = match kv.get("readonly") {
        None => false,
        Some(None) => true,
        Some(Some(v)) => return Err(format!("--mount {spec}: readonly={v}")),
    };
    bind_allowed(src, !readonly, declared, false).map_err(|e| format!("--mount {spec}: {e}"))
}

// ------------------------------------------------------------------ squid

/// Directives a capgate squid.conf may contain.
const SQUID_DIRECTIVES: &[&str] = &[
    "http_port",
    "visible_hostname",
    "cache",
    "acl",
    "http_access",
];

pub fn check_squid(config: &str, declared: &Declared) -> Check {
    let mut acls: BTreeMap<&str, (&str, Vec<&str>)> = BTreeMap::new();
    let mut access: Vec<(usize, Vec<&str>)> = Vec::new();
    for (n, line) in config.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if line.contains('#') || line.contains('"') || line.chars().any(char::is_control) {
            return Err(format!(
                "squid line {n} {line:?} has a comment, quote or control character inside"
            ));
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if !SQUID_DIRECTIVES.contains(&words[0]) {
            return Err(format!("squid line {n} {line:?}: unknown directive"));
        }
        match words[0] {
            "acl" => {
                let (name, kind) = (words[1], words[2]);
                let values: Vec<&str> = words[3..].iter().copied().filter(|w| *w != "-n").collect();
                match acls.get_mut(name) {
                    Some((k, vs)) if name == "capgate_special" && *k == kind => vs.extend(values),
                    Some(_) => return Err(format!("acl {name} defined twice")),
                    None => {
                        acls.insert(name, (kind, values));
                    }
                }
            }
            "http_access" => access.push((n, words[1..].to_vec())),
            _ => {}
        }
    }
    // squid's own cache manager is denied before anything can allow it.
    if access.first().map(|(_, w)| w.as_slice()) != Some(&["deny", "manager"][..]) {
        return Err("first http_access is not `deny manager`".to_owned());
    }
    let Some(((_, last), rest)) = access.split_last() else {
        return Err("squid.conf has no http_access".to_owned());
    };
    if last != &["deny", "all"] {
        return Err(format!("last http_access is {last:?}, not deny all"));
    }
    let mut special_denied = false;
    let mut undeclared_denied = false;
    for (n, words) in rest {
        match words.first() {
            Some(&"deny") => {
                // Without `*`, undeclared destinations are refused before the
                // special-range check, whose `dst` resolves names (R1).
                undeclared_denied |= words[1..] == ["all"]
                    || words[1..]
                        .iter()
                        .all(|w| w.starts_with("!capgate_declared"));
                if words[1..] == ["capgate_special"] {
                    let any = declared.net.iter().any(|(h, _)| *h == HostDecl::Any);
                    if !any && !undeclared_denied {
                        return Err(format!(
                            "line {n}: the special-range check comes before undeclared names are denied (squid would look them up)"
                        ));
                    }
                    special_denied = true;
                }
                continue;
            }
            Some(&"allow") => {}
            _ => return Err(format!("line {n}: http_access {words:?}")),
        }
        // Every method is allowed to a declared destination; `all` alone is
        // squid's built-in "anything" (a declared `*` without a port).
        let names: &[&str] = if words[1..] == ["all"] {
            &[]
        } else {
            &words[1..]
        };
        if names.is_empty() && words[1..] != ["all"] {
            return Err(format!("line {n}: allow without an acl: {words:?}"));
        }
        let mut dst: Option<(&str, Vec<&str>)> = None;
        let mut port: Option<u16> = None;
        for name in names {
            let Some((kind, values)) = acls.get(name) else {
                return Err(format!("line {n}: acl {name} is not defined before use"));
            };
            match *kind {
                "dst" | "dstdomain" if dst.is_none() && values.len() == 1 => {
                    dst = Some((kind, values.clone()))
                }
                "port" if port.is_none() && values.len() == 1 => {
                    port = Some(
                        values[0]
                            .parse()
                            .map_err(|_| format!("port acl {values:?}"))?,
                    )
                }
                _ => {
                    return Err(format!(
                    "line {n}: acl {name} ({kind} {values:?}) is not a single destination or port"
                ))
                }
            }
        }
        let host = match &dst {
            None => HostDecl::Any,
            Some(("dst", v)) => HostDecl::Ip(
                v[0].parse()
                    .map_err(|_| format!("dst value {:?} is not one address", v[0]))?,
            ),
            Some((_, v)) => match v[0].strip_prefix('.') {
                Some(d) => HostDecl::Wildcard(d.to_owned()),
                None => HostDecl::Name(v[0].to_owned()),
            },
        };
        if !declared.allows(&host, port) {
            return Err(format!(
                "line {n}: allows {host:?} port {port:?}, which is not declared"
            ));
        }
        let special = matches!(host, HostDecl::Ip(ip) if capgate::ir::is_special(ip));
        if !special_denied && !special {
            return Err(format!(
                "line {n}: allow of {host:?} comes before the special-range deny"
            ));
        }
        if special_denied && special {
            return Err(format!("line {n}: special address {host:?} allowed after the special-range deny (unreachable)"));
        }
    }
    if !special_denied {
        return Err("squid.conf has no `http_access deny capgate_special`".to_owned());
    }
    Ok(())
}

// ------------------------------------------------------------------ nftables

pub fn check_nft(config: &str, declared: &Declared) -> Check {
    let mut depth: i64 = 0;
    let mut special_dropped = false;
    let mut saw_policy_drop = false;
    // Inside the input chain: nothing may connect into the sandbox.
    let mut ingress = false;
    let mut saw_ingress = false;
    for (n, line) in config.lines().enumerate() {
        if line.chars().any(char::is_control) {
            return Err(format!("nft line {n} has a control character"));
        }
        if line.contains('#') && n != 0 {
            return Err(format!("nft line {n} {line:?} contains `#`"));
        }
        if n == 0 {
            if !line.starts_with('#') {
                return Err("nft line 0 is not the header comment".to_owned());
            }
            continue;
        }
        let t = line.trim();
        if t.contains(';') && !t.starts_with("type filter hook ") {
            return Err(format!("nft line {n} {line:?} contains `;`"));
        }
        if t.starts_with("type filter hook ") {
            if !t.ends_with("policy drop;") {
                return Err(format!("nft line {n}: a chain without `policy drop`"));
            }
            saw_policy_drop = true;
            ingress = t.starts_with("type filter hook input ");
            saw_ingress |= ingress;
        }
        if line.matches('"').count() % 2 != 0 {
            return Err(format!("nft line {n} {line:?} has an unbalanced quote"));
        }
        for c in line.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth < 0 {
                return Err(format!("nft line {n}: `}}` closes more than was opened"));
            }
        }
        if t.ends_with(" drop") && (t.starts_with("ip daddr {") || t.starts_with("ip6 daddr {")) {
            special_dropped = true;
            continue;
        }
        if !t.ends_with(" accept") {
            continue;
        }
        if ingress {
            let allowed = t == "iifname \"lo\" accept"
                || t == "ct state established,related accept"
                || t == "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept";
            if !allowed {
                return Err(format!("nft line {n} {t:?}: an inbound accept"));
            }
            continue;
        }
        // Neighbour discovery: only to link-scope destinations, hop limit 255 (G4).
        let fixed = t == "oifname \"lo\" accept"
            || t == "ct state established,related accept"
            || t == "icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } \
                     ip6 hoplimit 255 ip6 daddr { fe80::/10, ff02::/16 } accept";
        if fixed {
            continue;
        }
        let w: Vec<&str> = t.split(' ').collect();
        let ok_shape = w.len() == 7
            && matches!(w[0], "ip" | "ip6")
            && w[1] == "daddr"
            && matches!(w[3], "tcp" | "udp")
            && w[4] == "dport"
            && w[6] == "accept";
        if !ok_shape {
            return Err(format!(
                "nft line {n} {t:?} is an accept of an unexpected shape"
            ));
        }
        let ip: IpAddr = w[2]
            .parse()
            .map_err(|_| format!("nft line {n}: {:?} is not one address", w[2]))?;
        if (w[0] == "ip") != ip.is_ipv4() {
            return Err(format!("nft line {n}: address family mismatch"));
        }
        let port = match w[5] {
            "1-65535" => None,
            p => Some(
                p.parse::<u16>()
                    .map_err(|_| format!("nft line {n}: port {p:?}"))?,
            ),
        };
        if !declared.allows(&HostDecl::Ip(ip), port) {
            return Err(format!(
                "nft line {n}: accepts {ip} port {port:?}, which is not declared"
            ));
        }
        let special = capgate::ir::is_special(ip);
        if special == special_dropped {
            return Err(format!(
                "nft line {n}: accept of {ip} is on the wrong side of the special-range drop"
            ));
        }
    }
    if depth != 0 {
        return Err(format!("nft braces unbalanced at end ({depth})"));
    }
    if !saw_policy_drop {
        return Err("nft chain is not `policy drop`".to_owned());
    }
    if !saw_ingress {
        return Err("nft ruleset has no input chain: inbound is not dropped".to_owned());
    }
    if !special_dropped {
        return Err("nft ruleset has no special-range drop".to_owned());
    }
    Ok(())
}

// ------------------------------------------------------------------ helpers

/// A file under the system temp directory, removed on drop (also on panic).
pub struct TempFile(pub std::path::PathBuf);

impl TempFile {
    pub fn new(tag: &str, contents: &[u8]) -> TempFile {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "capgate-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).expect("write temp file");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Checks the diagnostics of a failed compile: at least one, each with a
/// stable code, a one-line message, a help line and (when `located`) a
/// location in `file`; a capability span lies on character boundaries.
pub fn check_diagnostics(diags: &[capgate::diag::Diagnostic], file: &str, located: bool) -> Check {
    if diags.is_empty() {
        return Err("compile failed without a diagnostic".to_owned());
    }
    for d in diags {
        let code = d.code.as_str();
        if d.message.is_empty() || d.message.contains('\n') {
            return Err(format!(
                "{code}: message {:?} is empty or not one line",
                d.message
            ));
        }
        if d.help_text().is_empty() {
            return Err(format!("{code}: no help"));
        }
        match &d.location {
            Some(l) if l.file == file && l.line >= 1 && l.column >= 1 => {}
            Some(l) => return Err(format!("{code}: bad location {l:?}")),
            None if located => return Err(format!("{code}: {} has no location", d.message)),
            None => {}
        }
        if let Some(cap) = &d.cap {
            let s = &cap.capability;
            if cap.span.start > cap.span.end
                || cap.span.end > s.len()
                || !s.is_char_boundary(cap.span.start)
                || !s.is_char_boundary(cap.span.end)
            {
                return Err(format!("{code}: span {:?} does not fit {s:?}", cap.span));
            }
        }
        let text = d.render();
        if !text.starts_with(&format!("capgate: {code}: ")) || !text.contains("= help: ") {
            return Err(format!("{code}: rendering lacks the code or help:\n{text}"));
        }
        if d.cap.is_some() && !text.contains('^') {
            return Err(format!("{code}: rendering lacks a caret:\n{text}"));
        }
    }
    Ok(())
}

/// Whether the external validator `tool` is installed; without it the caller
/// skips with a message, except under CI=true where it must be there.
pub fn tool_available(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
        || ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| std::path::Path::new(d).join(tool).is_file());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is required when CI=true"
        );
        eprintln!("skipping {tool} validation: {tool} is not installed");
    }
    found
}

/// Runs `squid -k parse` on a squid.conf.
pub fn squid_parse(config: &str) -> Check {
    let f = TempFile::new("squid", config.as_bytes());
    let out = std::process::Command::new(find_tool("squid"))
        .args(["-k", "parse", "-f"])
        .arg(&f.0)
        .output()
        .map_err(|e| format!("squid: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "squid -k parse failed:\n{}\n{config}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs `nft -c -f` inside a throwaway network namespace (no resolver reachable).
pub fn nft_check(config: &str) -> Check {
    let f = TempFile::new("nft", config.as_bytes());
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let out = std::process::Command::new("unshare")
        .arg(if root { "-n" } else { "-rn" })
        .arg(find_tool("nft"))
        .args(["-c", "-f"])
        .arg(&f.0)
        .output()
        .map_err(|e| format!("unshare nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft -c failed:\n{}\n{config}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn find_tool(tool: &str) -> std::path::PathBuf {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| std::path::Path::new(d).join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| tool.into())
}

// ------------------------------------------------------------------ systemd

/// Directives the systemd target may emit. Any other fails the check, so a new
/// directive is reviewed here first.
const SYSTEMD_DIRECTIVES: &[&str] = &[
    "User",
    "Group",
    "PrivateUsers",
    "NoNewPrivileges",
    "CapabilityBoundingSet",
    "AmbientCapabilities",
    "SecureBits",
    "UMask",
    "TasksMax",
    "PrivateDevices",
    "DevicePolicy",
    "ProtectProc",
    "ProcSubset",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectClock",
    "ProtectHostname",
    "PrivateIPC",
    "PrivateMounts",
    "LockPersonality",
    "RestrictRealtime",
    "RestrictSUIDSGID",
    "RemoveIPC",
    "KeyringMode",
    "NotifyAccess",
    "MemoryDenyWriteExecute",
    "SystemCallArchitectures",
    "SystemCallFilter",
    "SystemCallErrorNumber",
    "RestrictNamespaces",
    "TemporaryFileSystem",
    "ProtectHome",
    "PrivateTmp",
    "BindReadOnlyPaths",
    "BindPaths",
    "PrivateNetwork",
    "RestrictAddressFamilies",
    "IPAddressDeny",
    "IPAddressAllow",
    "Environment",
    "EnvironmentFile",
    "DynamicUser",
    "ProtectSystem",
    "SupplementaryGroups",
    "RootDirectory",
    "RootImage",
    "MountImages",
    "ExtensionImages",
    "ExtensionDirectories",
    "ReadWritePaths",
    "StateDirectory",
    "CacheDirectory",
    "LogsDirectory",
    "RuntimeDirectory",
    "ConfigurationDirectory",
    "LoadCredential",
    "LoadCredentialEncrypted",
    "SetCredential",
    "SetCredentialEncrypted",
    "DeviceAllow",
    "NetworkNamespacePath",
    "IPCNamespacePath",
    "PassEnvironment",
];

/// The system paths the drop-in binds back read-only over its empty root.
pub const SYSTEMD_BASELINE: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/bin",
    "/sbin",
    "/etc/ssl/certs",
    "/etc/ssl/openssl.cnf",
    "/etc/ca-certificates",
    "/etc/alternatives",
];

/// Directives the drop-in must reset with an empty assignment before anything else sets
/// them: systemd merges the drop-in with the operator's unit, and these add up (a unit's
/// `IPAddressAllow=localhost`, `RestrictAddressFamilies=~AF_PACKET`, `BindPaths=`...).
/// After the reset they must never be empty again (a later empty assignment would wipe
/// the drop-in's own value). `DynamicUser=no` and `ProtectSystem=no` are checked apart.
const SYSTEMD_RESETS: &[&str] = &[
    "SupplementaryGroups",
    "RootDirectory",
    "RootImage",
    "MountImages",
    "ExtensionImages",
    "ExtensionDirectories",
    "BindPaths",
    "BindReadOnlyPaths",
    "TemporaryFileSystem",
    "ReadWritePaths",
    "StateDirectory",
    "CacheDirectory",
    "LogsDirectory",
    "RuntimeDirectory",
    "ConfigurationDirectory",
    "LoadCredential",
    "LoadCredentialEncrypted",
    "SetCredential",
    "SetCredentialEncrypted",
    "DeviceAllow",
    "NetworkNamespacePath",
    "IPCNamespacePath",
    "RestrictAddressFamilies",
    "IPAddressAllow",
    "SystemCallArchitectures",
    "SystemCallFilter",
    "Environment",
    "EnvironmentFile",
    "PassEnvironment",
];

/// A systemd drop-in: one `[Service]` section of known directives, no specifier or
/// escape, a non-root numeric identity, an empty read-only root, binds only of the
/// system baseline and what is declared (read-write only where declared writable),
/// IP literals only as declared, unix sockets with net only for a declared ipc.
pub fn check_systemd(config: &str, declared: &Declared) -> Check {
    let mut lines = config.lines();
    if !lines.next().is_some_and(|l| l.starts_with('#')) {
        return Err("systemd line 0 is not the header comment".to_owned());
    }
    if lines.next() != Some("[Service]") {
        return Err("systemd line 1 is not [Service]".to_owned());
    }
    let mut seen: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    // The one [Unit] section, last, holds only the cgroup v2 assertion (net declared).
    let all: Vec<&str> = lines.collect();
    let (service, unit) = match all.iter().position(|l| *l == "[Unit]") {
        Some(i) => (&all[..i], &all[i + 1..]),
        None => (&all[..], &[][..]),
    };
    let want_unit: &[&str] = if declared.has_net() {
        &["AssertControlGroupController=v2"]
    } else {
        &[]
    };
    if unit != want_unit || (declared.has_net() && service.len() == all.len()) {
        return Err(format!("systemd: [Unit] section {unit:?}"));
    }
    for (n, line) in service.iter().copied().enumerate() {
        if line.chars().any(char::is_control) || line.contains(['%', '\\', '"', '\'', '[']) {
            return Err(format!(
                "systemd line {n} {line:?}: control, specifier, escape, quote or section"
            ));
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("systemd line {n} {line:?} is not Key=Value"));
        };
        if !SYSTEMD_DIRECTIVES.contains(&key) {
            return Err(format!("systemd line {n}: unreviewed directive {key}"));
        }
        seen.entry(key).or_default().push(value);
    }
    for key in SYSTEMD_RESETS {
        let values = seen.remove(key).unwrap_or_default();
        match values.split_first() {
            Some((&"", rest)) if !rest.contains(&"") => {
                if !rest.is_empty() {
                    seen.insert(key, rest.to_vec());
                }
            }
            _ => {
                return Err(format!(
                    "systemd: {key} is not reset first (and only first): {values:?}"
                ))
            }
        }
    }
    let one = |key: &str| -> Result<&str, String> {
        match seen.get(key).map(Vec::as_slice) {
            Some([v]) => Ok(v),
            other => Err(format!("systemd: {key} expected once, found {other:?}")),
        }
    };
    for key in ["User", "Group"] {
        let id: u64 = one(key)?
            .parse()
            .map_err(|_| format!("systemd: {key} is not numeric"))?;
        if id == 0 {
            return Err(format!("systemd: {key}=0"));
        }
    }
    for (key, want) in [
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("PrivateUsers", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectHome", "tmpfs"),
        ("DynamicUser", "no"),
        ("ProtectSystem", "no"),
    ] {
        if one(key)? != want {
            return Err(format!("systemd: {key} is not {want:?}"));
        }
    }
    let tmpfs = seen.get("TemporaryFileSystem").cloned().unwrap_or_default();
    if tmpfs.first() != Some(&"/:ro")
        || !tmpfs.contains(&"/dev/shm:mode=1777,nosuid,nodev")
        || tmpfs
            .iter()
            .skip(1)
            .any(|t| *t != "/tmp:mode=1777,nosuid,nodev" && *t != "/dev/shm:mode=1777,nosuid,nodev")
    {
        return Err(format!("systemd: TemporaryFileSystem {tmpfs:?}"));
    }
    for path in seen.get("BindPaths").into_iter().flatten() {
        if declared.fs_bind(path) != Some(true) {
            return Err(format!(
                "systemd: BindPaths={path} is not a declared writable path"
            ));
        }
    }
    for value in seen.get("BindReadOnlyPaths").into_iter().flatten() {
        for token in value.split(' ') {
            let path = token.strip_prefix('-').unwrap_or(token);
            // The bwrap baseline, with /etc/ssl narrowed to its certificates (its
            // private/ holds the host's TLS keys).
            let ok = SYSTEMD_BASELINE.contains(&path)
                || declared.fs_bind(path).is_some()
                || declared.sockets.contains(path)
                || (declared.x11 && x11_socket(path))
                || (declared.dbus_system && path == DBUS_SYSTEM)
                || (declared.tzdata && path == "/etc/localtime");
            if !ok {
                return Err(format!("systemd: BindReadOnlyPaths {path} is not declared"));
            }
        }
    }
    let families: BTreeSet<&str> = seen
        .get("RestrictAddressFamilies")
        .into_iter()
        .flatten()
        .flat_map(|v| v.split(' '))
        .collect();
    let any = declared.net.iter().any(|(h, _)| *h == HostDecl::Any);
    let ipc_unix = !declared.sockets.is_empty() || declared.x11 || declared.dbus_system;
    if declared.has_net() {
        if seen.contains_key("PrivateNetwork") {
            return Err("systemd: PrivateNetwork with net declared".to_owned());
        }
        if families.contains("AF_UNIX") != ipc_unix
            || !families
                .iter()
                .all(|f| ["AF_UNIX", "AF_INET", "AF_INET6"].contains(f))
        {
            return Err(format!("systemd: address families {families:?}"));
        }
        let deny = seen.get("IPAddressDeny").cloned().unwrap_or_default();
        let loopback_denied = if any {
            deny.iter()
                .any(|d| d.split(' ').any(|t| t == "127.0.0.0/8"))
                && deny.iter().any(|d| d.split(' ').any(|t| t == "::/96"))
        } else {
            deny == ["any"]
        };
        if !loopback_denied {
            return Err(format!("systemd: IPAddressDeny {deny:?}"));
        }
        for ip in seen.get("IPAddressAllow").into_iter().flatten() {
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| format!("systemd: IPAddressAllow={ip} is not one address"))?;
            if !declared.net.iter().any(|(h, _)| *h == HostDecl::Ip(ip)) {
                return Err(format!("systemd: IPAddressAllow={ip} is not declared"));
            }
        }
    } else if one("PrivateNetwork")? != "yes"
        || families != BTreeSet::from(["AF_UNIX"])
        || one("IPAddressDeny")? != "any"
        || seen.contains_key("IPAddressAllow")
    {
        return Err("systemd: no net declared but the network is not closed".to_owned());
    }
    for value in seen.get("Environment").into_iter().flatten() {
        if value
            .split(' ')
            .any(|a| !a.starts_with("PATH=") && !a.starts_with("HOME="))
        {
            return Err(format!("systemd: Environment={value}"));
        }
    }
    // Reset and never set again: only what the drop-in itself sets may follow its reset.
    let sets = [
        "BindPaths",
        "BindReadOnlyPaths",
        "TemporaryFileSystem",
        "RestrictAddressFamilies",
        "IPAddressAllow",
        "SystemCallArchitectures",
        "SystemCallFilter",
        "Environment",
        "EnvironmentFile",
    ];
    for key in SYSTEMD_RESETS.iter().filter(|k| !sets.contains(k)) {
        if seen.contains_key(key) {
            return Err(format!("systemd: {key} set after its reset"));
        }
    }
    if one("SystemCallArchitectures")? != "native"
        || seen.get("SystemCallFilter").and_then(|v| v.first()) != Some(&"@system-service")
    {
        return Err(
            "systemd: the system call filter is not the @system-service allow list".to_owned(),
        );
    }
    if seen.contains_key("EnvironmentFile") == declared.env.is_empty() {
        return Err("systemd: EnvironmentFile without env declared (or the reverse)".to_owned());
    }
    Ok(())
}

// ------------------------------------------------------------------ kubernetes

fn yaml_to_json(y: &yaml_rust2::Yaml) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    use yaml_rust2::Yaml;
    Ok(match y {
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Null => Value::Null,
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect::<Result<_, _>>()?),
        Yaml::Hash(h) => {
            let mut m = serde_json::Map::new();
            for (k, v) in h {
                let k = k.as_str().ok_or(format!("a non-string key {k:?}"))?;
                if m.insert(k.to_owned(), yaml_to_json(v)?).is_some() {
                    return Err(format!("duplicate key {k}"));
                }
            }
            Value::Object(m)
        }
        other => return Err(format!("unexpected YAML node {other:?}")),
    })
}

/// TCP ports a Kubernetes or Cilium port list opens: `Some(p)` one port,
/// `None` every port. Anything but TCP is an error (nothing declares UDP).
fn k8s_tcp_ports(ports: &serde_json::Value, cilium: bool) -> Result<Vec<Option<u16>>, String> {
    let mut out = vec![];
    for p in ports.as_array().ok_or("ports is not a list")? {
        if p["protocol"] != "TCP" {
            return Err(format!("port {p}: not TCP"));
        }
        let port = if cilium {
            p["port"]
                .as_str()
                .ok_or("a Cilium port is a string")?
                .parse::<u16>()
                .map_err(|e| e.to_string())?
        } else {
            u16::try_from(p["port"].as_u64().ok_or("port")?).map_err(|e| e.to_string())?
        };
        let end = p.get("endPort").map(|e| e.as_u64().unwrap_or(0));
        out.push(match (port, end) {
            (0, None) if cilium => None,
            (1, Some(65535)) => None,
            (p, None) if p > 0 => Some(p),
            _ => return Err(format!("port range {p}")),
        });
    }
    if out.is_empty() {
        return Err("an empty port list (every protocol and port)".to_owned());
    }
    Ok(out)
}

fn k8s_cidr(s: &serde_json::Value) -> Result<(IpAddr, u8), String> {
    let s = s.as_str().ok_or("cidr is not a string")?;
    let (a, l) = s.split_once('/').ok_or(format!("{s}: no prefix length"))?;
    Ok((
        a.parse().map_err(|_| format!("{s}: bad address"))?,
        l.parse().map_err(|_| format!("{s}: bad length"))?,
    ))
}

fn kube_dns(peer: &serde_json::Value, cilium: bool) -> bool {
    if cilium {
        *peer
            == serde_json::json!({"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system", "k8s:k8s-app": "kube-dns"}})
    } else {
        *peer
            == serde_json::json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                  "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}})
    }
}

/// The `kubernetes` target's files: a Pod that runs restricted and mounts only
/// declared paths (writable only where declared), a NetworkPolicy that denies
/// ingress and allows only declared IP:ports (`*` only with every special range
/// excepted), and a CiliumNetworkPolicy that allows only declared names.
pub fn check_kubernetes(files: &[&str], declared: &Declared) -> Check {
    use serde_json::{json, Value};
    let mut docs = vec![];
    for f in files {
        for d in yaml_rust2::YamlLoader::load_from_str(f).map_err(|e| format!("not YAML: {e}"))? {
            docs.push(yaml_to_json(&d)?);
        }
    }
    let kinds: Vec<&str> = docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or("?"))
        .collect();
    if kinds != ["Pod", "NetworkPolicy", "CiliumNetworkPolicy"] {
        return Err(format!("documents {kinds:?}"));
    }
    let (pod, np, cnp) = (&docs[0], &docs[1], &docs[2]);

    // Pod
    let spec = &pod["spec"];
    for (k, v) in [
        ("automountServiceAccountToken", false),
        ("hostNetwork", false),
        ("hostPID", false),
        ("hostIPC", false),
    ] {
        if spec[k] != json!(v) {
            return Err(format!("pod spec.{k} is {}", spec[k]));
        }
    }
    if spec["securityContext"]["runAsNonRoot"] != json!(true)
        || spec["securityContext"]["seccompProfile"] != json!({"type": "RuntimeDefault"})
    {
        return Err("pod securityContext".to_owned());
    }
    let containers = spec["containers"].as_array().ok_or("containers")?;
    if containers.len() != 1 || spec.get("initContainers").is_some() {
        return Err("not exactly one container".to_owned());
    }
    let c = &containers[0];
    let sc = &c["securityContext"];
    if sc["privileged"] != json!(false)
        || sc["allowPrivilegeEscalation"] != json!(false)
        || sc["readOnlyRootFilesystem"] != json!(true)
        || sc["capabilities"] != json!({"drop": ["ALL"]})
    {
        return Err(format!("container securityContext {sc}"));
    }
    for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
        let name = e["name"].as_str().ok_or("env name")?;
        if !declared.env.contains(name) || e.get("value").is_some() {
            return Err(format!("env {e} is not declared"));
        }
    }
    let volumes = spec["volumes"].as_array().ok_or("volumes")?;
    for m in c["volumeMounts"].as_array().ok_or("volumeMounts")? {
        let v = volumes
            .iter()
            .find(|v| v["name"] == m["name"])
            .ok_or(format!("mount {m} has no volume"))?;
        let path = m["mountPath"].as_str().ok_or("mountPath")?;
        let writable = m["readOnly"] != json!(true);
        if v.get("emptyDir").is_some() {
            if path != "/tmp" {
                return Err(format!("an emptyDir at {path}"));
            }
            continue;
        }
        let hp = &v["hostPath"];
        if hp["path"] != json!(path) {
            return Err(format!("hostPath {} mounted at {path}", hp["path"]));
        }
        if !matches!(hp["type"].as_str(), Some("File" | "Directory" | "Socket")) {
            return Err(format!("{path}: hostPath type {}", hp["type"]));
        }
        if hp["type"] == "Socket" {
            if !declared.sockets.contains(path) {
                return Err(format!("socket {path} is not declared"));
            }
            continue;
        }
        match declared.fs_bind(path) {
            None => return Err(format!("hostPath {path} is not declared")),
            Some(false) if writable => {
                return Err(format!("{path} is writable, declared read-only"))
            }
            _ => {}
        }
        if !writable && m["recursiveReadOnly"] != json!("Enabled") {
            return Err(format!("{path}: read-only, not recursively"));
        }
    }

    // NetworkPolicy
    let spec = &np["spec"];
    if spec["policyTypes"] != json!(["Ingress", "Egress"]) || spec["ingress"] != json!([]) {
        return Err("the NetworkPolicy does not deny ingress".to_owned());
    }
    let any_declared = declared.net.iter().any(|(h, _)| *h == HostDecl::Any);
    for rule in spec["egress"].as_array().ok_or("egress")? {
        let to = rule["to"]
            .as_array()
            .ok_or("a rule without `to` (every peer)")?;
        if to.is_empty() {
            return Err("an empty `to`".to_owned());
        }
        if to.iter().all(|p| kube_dns(p, false)) {
            if !any_declared
                || rule["ports"]
                    != json!([{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}])
            {
                return Err(format!("DNS rule {rule} without `*`"));
            }
            continue;
        }
        let ports = k8s_tcp_ports(&rule["ports"], false)?;
        for peer in to {
            let b = peer
                .get("ipBlock")
                .ok_or(format!("peer {peer} is not an ipBlock"))?;
            if peer.as_object().map(|o| o.len()) != Some(1) {
                return Err(format!("peer {peer}"));
            }
            let (addr, len) = k8s_cidr(&b["cidr"])?;
            let full = if addr.is_ipv4() { 32 } else { 128 };
            let host = if len == full {
                HostDecl::Ip(addr)
            } else if len == 0 {
                let except: BTreeSet<(IpAddr, u8)> = b["except"]
                    .as_array()
                    .ok_or("`*` without except")?
                    .iter()
                    .map(k8s_cidr)
                    .collect::<Result<_, _>>()?;
                let special: Vec<(IpAddr, u8)> = if addr.is_ipv4() {
                    capgate::ir::SPECIAL_V4
                        .iter()
                        .map(|(a, l)| (IpAddr::V4(*a), *l))
                        .collect()
                } else {
                    capgate::ir::SPECIAL_V6
                        .iter()
                        .map(|(a, l)| (IpAddr::V6(*a), *l))
                        .collect()
                };
                if let Some(r) = special.iter().find(|r| !except.contains(r)) {
                    return Err(format!("`*` does not except {r:?}"));
                }
                HostDecl::Any
            } else {
                return Err(format!("cidr {addr}/{len}"));
            };
            for port in &ports {
                if !declared.allows(&host, *port) {
                    return Err(format!("{host:?} port {port:?} is not declared"));
                }
            }
        }
    }

    // CiliumNetworkPolicy
    let spec = &cnp["spec"];
    if spec["enableDefaultDeny"] != json!({"egress": true, "ingress": true}) {
        return Err("the CiliumNetworkPolicy is not default-deny".to_owned());
    }
    let fqdn_host = |sel: &Value| -> Result<HostDecl, String> {
        match (sel.get("matchName"), sel.get("matchPattern")) {
            (Some(n), None) => Ok(HostDecl::Name(n.as_str().ok_or("matchName")?.to_owned())),
            (None, Some(p)) => {
                let p = p.as_str().ok_or("matchPattern")?;
                let d = p.strip_prefix("**.").ok_or(format!("pattern {p}"))?;
                if d.contains('*') {
                    return Err(format!("pattern {p}"));
                }
                Ok(HostDecl::Wildcard(d.to_owned()))
            }
            _ => Err(format!("selector {sel}")),
        }
    };
    for rule in spec["egress"].as_array().ok_or("cnp egress")? {
        let keys: BTreeSet<&str> = rule
            .as_object()
            .ok_or("rule")?
            .keys()
            .map(String::as_str)
            .collect();
        if keys == BTreeSet::from(["toEndpoints", "toPorts"]) {
            let to = rule["toEndpoints"].as_array().ok_or("toEndpoints")?;
            let tp = &rule["toPorts"][0];
            if to.len() != 1
                || !kube_dns(&to[0], true)
                || rule["toPorts"].as_array().map(Vec::len) != Some(1)
                || tp["ports"]
                    != json!([{"port": "53", "protocol": "UDP"}, {"port": "53", "protocol": "TCP"}])
            {
                return Err(format!("cnp rule {rule}"));
            }
            for sel in tp["rules"]["dns"]
                .as_array()
                .ok_or("a DNS rule without names")?
            {
                let h = fqdn_host(sel)?;
                if !declared.net.iter().any(|(d, _)| *d == h) {
                    return Err(format!("DNS for undeclared {h:?}"));
                }
            }
        } else if keys == BTreeSet::from(["toFQDNs", "toPorts"]) {
            let tp = rule["toPorts"].as_array().ok_or("toPorts")?;
            let mut ports = vec![];
            for t in tp {
                if t.as_object().map(|o| o.len()) != Some(1) {
                    return Err(format!("toPorts {t} has rules"));
                }
                ports.extend(k8s_tcp_ports(&t["ports"], true)?);
            }
            if ports.is_empty() {
                return Err("toFQDNs without ports".to_owned());
            }
            for sel in rule["toFQDNs"].as_array().ok_or("toFQDNs")? {
                let h = fqdn_host(sel)?;
                for port in &ports {
                    if !declared.allows(&h, *port) {
                        return Err(format!("{h:?} port {port:?} is not declared"));
                    }
                }
            }
        } else {
            return Err(format!("cnp rule {rule}"));
        }
    }
    for k in ["ingress", "ingressDeny"] {
        if spec.get(k).is_some() {
            return Err(format!("cnp {k}"));
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ srt

/// srt's `system_read` default (rules/srt.toml): the bwrap baseline plus what
/// clients need to resolve `localhost`, where srt's proxy relay listens.
pub const SRT_SYSTEM_READ: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/bin",
    "/sbin",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/alternatives",
    "/etc/hosts",
    "/etc/nsswitch.conf",
];
/// Read by srt beside [`TZDATA`] when `clock:tzdata` is declared.
pub const SRT_TIMEZONE: &str = "/etc/timezone";
pub const SRT_HELPER_DIR: &str =
    "/usr/local/lib/node_modules/@anthropic-ai/sandbox-runtime/vendor/seccomp";
pub const SRT_SOCKET_DIR: &str = "/tmp/capgate-srt";

/// An `allowedDomains` entry as srt splits it: `host`, `host:port`,
/// `[v6]`, `[v6]:port`.
fn srt_domain(entry: &str) -> Result<(HostDecl, Option<u16>), String> {
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("allowedDomains {entry:?}: unclosed bracket"))?;
        (ip, after.strip_prefix(':'))
    } else if entry.matches(':').count() > 1 {
        return Err(format!(
            "allowedDomains {entry:?}: unbracketed IPv6 literal"
        ));
    } else {
        match entry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (entry, None),
        }
    };
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|n| *n > 0 && !p.starts_with('0'))
                .ok_or_else(|| format!("allowedDomains {entry:?}: bad port"))?,
        ),
        None => None,
    };
    let host = if let Ok(ip) = host.parse::<IpAddr>() {
        HostDecl::Ip(ip)
    } else if let Some(d) = host.strip_prefix("*.") {
        HostDecl::Wildcard(d.to_owned())
    } else if host.contains('*') || host.is_empty() {
        return Err(format!("allowedDomains {entry:?}: not a name"));
    } else {
        HostDecl::Name(host.to_owned())
    };
    Ok((host, port))
}

fn srt_strings<'a>(v: &'a serde_json::Value, what: &str) -> Result<Vec<&'a str>, String> {
    v.as_array()
        .ok_or_else(|| format!("{what} is not a list"))?
        .iter()
        .map(|e| {
            e.as_str()
                .ok_or_else(|| format!("{what} holds a non-string {e}"))
        })
        .collect()
}

fn srt_keys(v: &serde_json::Value, what: &str, want: &[&str]) -> Check {
    let got: Vec<&str> = v
        .as_object()
        .ok_or_else(|| format!("{what} is not an object"))?
        .keys()
        .map(String::as_str)
        .collect();
    if got != want {
        return Err(format!("{what} has keys {got:?}, want {want:?}"));
    }
    Ok(())
}

/// srt settings: valid JSON with exactly the keys capgate writes (srt's
/// schema drops unknown keys silently), every allowed destination, socket,
/// read and write a declared one or the fixed baseline, `/` and `/sys`
/// read-denied, and srt's own writable paths closed.
pub fn check_srt(config: &str, declared: &Declared) -> Check {
    let v: serde_json::Value =
        serde_json::from_str(config).map_err(|e| format!("srt settings are not JSON: {e}"))?;
    srt_keys(
        &v,
        "settings",
        &[
            "credentials",
            "network",
            "filesystem",
            "allowNestedUserNamespaces",
            "enableWeakerNestedSandbox",
        ],
    )?;
    let net = &v["network"];
    srt_keys(
        net,
        "network",
        &[
            "allowedDomains",
            "deniedDomains",
            "deniedResolvedAddresses",
            "strictAllowlist",
            "parentProxy",
            "allowUnixSockets",
            "allowAllUnixSockets",
            "allowLocalBinding",
        ],
    )?;
    // srt's proxy connects a loopback name (`localhost`, `*.localhost`) to its
    // own host's loopback past deniedResolvedAddresses: each allowed one must
    // be denied by name too, and deniedDomains holds nothing else.
    let loopback = |d: &str| d == "localhost" || d.ends_with(".localhost");
    let mut want_denied = std::collections::BTreeSet::new();
    for entry in srt_strings(&net["allowedDomains"], "allowedDomains")? {
        let (host, port) = srt_domain(entry)?;
        match &host {
            HostDecl::Name(d) if loopback(d) => {
                want_denied.insert(d.clone());
            }
            HostDecl::Wildcard(d) if loopback(d) => {
                want_denied.insert(format!("*.{d}"));
            }
            _ => {}
        }
        if !declared.net.contains(&(host, port)) {
            return Err(format!("allowedDomains {entry:?} is not declared"));
        }
    }
    let got_denied: std::collections::BTreeSet<String> =
        srt_strings(&net["deniedDomains"], "deniedDomains")?
            .into_iter()
            .map(str::to_owned)
            .collect();
    if got_denied != want_denied {
        return Err(format!(
            "deniedDomains {got_denied:?} is not the allowed loopback names {want_denied:?}"
        ));
    }
    let denied = srt_strings(&net["deniedResolvedAddresses"], "deniedResolvedAddresses")?;
    for range in [
        "10.0.0.0/8",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
        "fe80::/10",
    ] {
        if !denied.contains(&range) {
            return Err(format!("deniedResolvedAddresses lacks {range}"));
        }
    }
    // srt would take a parent proxy from its environment and skip every
    // resolved-address check for connections through it.
    if net["parentProxy"] != serde_json::json!({ "noProxy": "*" }) {
        return Err(format!(
            "parentProxy is not {{\"noProxy\": \"*\"}}: {}",
            net["parentProxy"]
        ));
    }
    if net["strictAllowlist"] != true
        || net["allowAllUnixSockets"] != false
        || net["allowLocalBinding"] != false
    {
        return Err(format!("network flags widened: {net}"));
    }
    for socket in srt_strings(&net["allowUnixSockets"], "allowUnixSockets")? {
        if !declared.sockets.contains(socket) {
            return Err(format!("allowUnixSockets {socket:?} is not declared"));
        }
    }
    let fs = &v["filesystem"];
    srt_keys(
        fs,
        "filesystem",
        &["denyRead", "allowRead", "denyWrite", "allowWrite"],
    )?;
    let deny_read = srt_strings(&fs["denyRead"], "denyRead")?;
    if deny_read.get(..2) != Some(&["/", "/sys"][..]) {
        return Err(format!(
            "denyRead does not start with / and /sys: {deny_read:?}"
        ));
    }
    // The other denyRead entries re-layer writable directories: they must be
    // declared writable (a deny of anything else would only hide more).
    for p in &deny_read[2..] {
        if declared.fs_bind(p) != Some(true) {
            return Err(format!("denyRead {p:?} is not a declared writable path"));
        }
    }
    for p in srt_strings(&fs["allowRead"], "allowRead")? {
        let baseline = SRT_SYSTEM_READ.contains(&p)
            || p == SRT_HELPER_DIR
            || (p == SRT_SOCKET_DIR && declared.has_net())
            || (declared.tzdata && (TZDATA.contains(&p) || p == SRT_TIMEZONE));
        if !baseline && declared.fs_bind(p).is_none() {
            return Err(format!(
                "allowRead {p:?} is neither declared nor the baseline"
            ));
        }
    }
    for p in srt_strings(&fs["allowWrite"], "allowWrite")? {
        if declared.fs_bind(p) != Some(true) {
            return Err(format!("allowWrite {p:?} is not a declared writable path"));
        }
    }
    if srt_strings(&fs["denyWrite"], "denyWrite")? != ["~/.npm/_logs", "~/.claude/debug"] {
        return Err(format!("denyWrite changed: {}", fs["denyWrite"]));
    }
    if v["credentials"] != serde_json::json!({"files": [{"path": "/tmp/claude", "mode": "deny"}]}) {
        return Err(format!("credentials changed: {}", v["credentials"]));
    }
    if !v["allowNestedUserNamespaces"].is_boolean() || v["enableWeakerNestedSandbox"] != false {
        return Err("nested sandbox flags widened".to_owned());
    }
    Ok(())
}
