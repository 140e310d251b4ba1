//! The check of every lint rule. Each reads typed capabilities
//! ([`crate::ir::Policy::caps`]) or facts, never capability text.

use std::net::IpAddr;

use super::{Context, Hit};
use crate::capability::{Capability, Endpoint, FsPath, Glob, Host};
use crate::ir::{self, CapId, CapInfo};

/// Every capability with its id.
fn caps<'a>(ctx: &'a Context<'_>) -> impl Iterator<Item = (CapId, &'a CapInfo)> {
    ctx.policy
        .caps
        .iter()
        .enumerate()
        .map(|(i, c)| (i as CapId, c))
}

fn hit(cap: CapId, message: String) -> Hit {
    Hit {
        cap,
        message,
        related: None,
    }
}

/// The fs scope as written: `/a`, `/a/*` or `/a/**`.
fn scope(p: &FsPath) -> String {
    let base = p.path.as_str();
    match p.glob {
        Glob::None => base.to_owned(),
        Glob::Children => format!("{}/*", base.trim_end_matches('/')),
        Glob::Recursive => format!("{}/**", base.trim_end_matches('/')),
    }
}

/// Segments of a path: `/a/b` → `["a", "b"]`; `/` → `[]`.
fn segments(p: &str) -> Vec<&str> {
    p.split('/').filter(|s| !s.is_empty()).collect()
}

/// `a` is `b` or an ancestor of `b`, both given as segments.
fn prefix_of(a: &[&str], b: &[&str]) -> bool {
    a.len() <= b.len() && a == &b[..a.len()]
}

/// Whether two paths are the same or one lies below the other.
fn related(a: &[&str], b: &[&str]) -> bool {
    prefix_of(a, b) || prefix_of(b, a)
}

/// Top-level trees no server needs whole (`/` itself is refused by the grammar).
const BROAD: &[&str] = &[
    "/",
    "/home",
    "/root",
    "/Users",
    "/etc",
    "/usr",
    "/var",
    "/opt",
    "/srv",
    "/mnt",
    "/media",
    "/boot",
    "/run",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/snap",
    "/nix",
    "/usr/local",
    "/var/lib",
];

/// How capgate paths spell a home directory: `/root`, `/home/<user>`, `/Users/<user>`.
/// Returns the number of segments the home takes when `segs` lies at or below one.
fn home_len(segs: &[&str]) -> Option<usize> {
    match segs {
        ["root", ..] => Some(1),
        ["home" | "Users", _, ..] => Some(2),
        _ => None,
    }
}

pub fn fs_broad_grant(ctx: &Context<'_>, out: &mut Vec<Hit>) {
    for (id, c) in caps(ctx) {
        let Capability::Fs { actions, path } = &c.capability else {
            continue;
        };
        let segs = segments(path.path.as_str());
        let what = if BROAD.contains(&path.path.as_str()) {
            format!("the whole {} tree", path.path)
        } else if home_len(&segs) == Some(segs.len()) {
            format!("the whole home directory {}", path.path)
        } else {
            continue;
        };
        out.push(hit(
            id,
            format!(
                "fs:{} on {} grants {what}",
                actions.names().join(","),
                scope(path)
            ),
        ));
    }
}

/// Credential stores below a home directory (relative to it).
const HOME_CREDENTIALS: &[&str] = &[
    ".ssh",
    ".aws",
    ".azure",
    ".kube",
    ".docker",
    ".gnupg",
    ".config/gcloud",
    ".config/gh",
    ".config/hub",
    ".config/doctl",
    ".oci",
    ".terraform.d",
    ".vault-token",
    ".password-store",
    ".git-credentials",
    ".netrc",
    ".npmrc",
    ".pypirc",
    ".pgpass",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".local/share/keyrings",
];

/// Credential stores outside homes.
const SYSTEM_CREDENTIALS: &[&str] = &[
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/ssh",
    "/etc/kubernetes",
    "/var/lib/kubelet",
    "/run/secrets",
    "/var/run/secrets",
    "/var/run/docker.sock",
    "/run/docker.sock",
];

pub fn fs_credentials(ctx: &Context<'_>, out: &mut Vec<Hit>) {
    for (id, c) in caps(ctx) {
        let Capability::Fs { path, .. } = &c.capability else {
            continue;
        };
        let segs = segments(path.path.as_str());
        let mut found = None;
        if let Some(h) = home_len(&segs).filter(|&h| segs.len() > h) {
            // Below a home (the whole home is fs-broad-grant's).
            let rest = &segs[h..];
            found = HOME_CREDENTIALS
                .iter()
                .find(|cred| related(rest, &segments(cred)))
                .map(|cred| format!("{}/{cred}", segs[..h].join("/")));
        }
        if found.is_none() && !BROAD.contains(&path.path.as_str()) {
            found = SYSTEM_CREDENTIALS
                .iter()
                .find(|cred| related(&segs, &segments(cred)))
                .map(|cred| cred[1..].to_owned());
        }
        if let Some(cred) = found {
            out.push(hit(
                id,
                format!("{} reaches the credential store /{cred}", scope(path)),
            ));
        }
    }
}

/// Trees programs and their configuration are loaded from.
const SYSTEM_CODE: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/opt",
    "/etc",
    "/boot",
    "/snap",
    "/nix",
    "/var/lib/dpkg",
    "/var/spool/cron",
];

/// Files and directories below a home that shells, editors and tools execute or load.
const HOME_CODE: &[&str] = &[
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zshenv",
    ".zprofile",
    ".zlogin",
    ".config",
    ".local/bin",
    ".local/share/applications",
    ".gitconfig",
    ".ssh",
    ".vimrc",
    ".emacs",
    ".emacs.d",
    ".cargo/bin",
    ".cargo/config.toml",
    ".npmrc",
    ".pip",
    ".pythonrc",
    ".xinitrc",
    ".xprofile",
];

/// Directory names that hold code anywhere: repository hooks and CI definitions.
const CODE_SEGMENTS: &[&str] = &[
    ".git",
    ".github",
    ".gitlab-ci.yml",
    ".hg",
    ".husky",
    ".vscode",
];

pub fn fs_write_code(ctx: &Context<'_>, out: &mut Vec<Hit>) {
    for (id, c) in caps(ctx) {
        let Capability::Fs { actions, path } = &c.capability else {
            continue;
        };
        if !actions.closure().writable() {
            continue;
        }
        let segs = segments(path.path.as_str());
        let mut found = SYSTEM_CODE
            .iter()
            .find(|d| related(&segs, &segments(d)))
            .map(|d| (*d).to_owned());
        if found.is_none() {
            if let Some(h) = home_len(&segs) {
                let rest = &segs[h..];
                found = HOME_CODE
                    .iter()
                    .find(|f| related(rest, &segments(f)))
                    .map(|f| format!("/{}/{f}", segs[..h].join("/")));
            }
        }
        if found.is_none() {
            found = segs
                .iter()
                .position(|s| CODE_SEGMENTS.contains(s))
                .map(|i| format!("/{}", segs[..=i].join("/")));
        }
        if let Some(code) = found {
            out.push(hit(
                id,
                format!(
                    "fs:{} on {} can write {code}, which holds code or configuration the host runs",
                    actions.names().join(","),
                    scope(path)
                ),
            ));
        }
    }
}

/// `*.<base>` reaches names that third parties can register: `base` is a
/// single label (a TLD) or a public suffix lies at or below it.
fn public_wildcard(base: &str) -> Option<String> {
    if !base.contains('.') {
        return Some(format!("{base} is a top-level domain"));
    }
    super::psl::suffix_at_or_below(base).map(|s| {
        if s == base {
            format!("{base} is a public suffix")
        } else {
            format!("{s} below it is a public suffix")
        }
    })
}

pub fn net_wildcard_egress(ctx: &Context<'_>, out: &mut Vec<Hit>) {
    for (id, c) in caps(ctx) {
        let Capability::Net { host, port } = &c.capability else {
            continue;
        };
        let on = port.map_or("any port".to_owned(), |p| format!("port {}", p.get()));
        let message = match host {
            Host::Any => format!("* reaches every public host on {on}"),
            Host::Wildcard(base) => match public_wildcard(base.as_str()) {
                Some(why) => format!(
                    "*.{} reaches names anyone can register ({why}) on {on}",
                    base.as_str()
                ),
                None => continue,
            },
            _ => continue,
        };
        out.push(hit(id, message));
    }
}

/// Names that resolve to instance-metadata endpoints.
const METADATA_NAMES: &[&str] = &[
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.azure.com",
    "metadata.tencentyun.com",
    "metadata.platformequinix.com",
];

fn ip_of(host: &Host) -> Option<IpAddr> {
    match host {
        Host::V4(a) => Some(IpAddr::V4(*a)),
        Host::V6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

fn is_metadata(host: &Host) -> bool {
    match host {
        Host::Name(n) => {
            METADATA_NAMES.contains(&n.as_str())
                || embedded_v4(n.as_str()).is_some_and(|a| ir::METADATA_ADDRS.contains(&a))
        }
        h => ip_of(h).is_some_and(|a| ir::METADATA_ADDRS.contains(&a)),
    }
}

/// An IPv4 address spelled inside a DNS name, as wildcard-DNS services
/// (nip.io, sslip.io, traefik.me, ...) resolve it: four numeric labels in a
/// row (`169.254.169.254.nip.io`) or one label of four numbers joined by `-`
/// (`10-0-0-1.sslip.io`, `app-127-0-0-1.example`).
fn embedded_v4(name: &str) -> Option<IpAddr> {
    let labels: Vec<&str> = name.split('.').collect();
    let dotted = labels
        .windows(4)
        .find_map(|w| w.join(".").parse::<std::net::Ipv4Addr>().ok());
    let dashed = || {
        labels.iter().find_map(|l| {
            let parts: Vec<&str> = l.split('-').collect();
            parts
                .windows(4)
                .find_map(|w| w.join(".").parse::<std::net::Ipv4Addr>().ok())
        })
    };
    dotted.or_else(dashed).map(IpAddr::V4)
}

pub fn net_metadata_endpoint(ctx: &Context<'_>, out: &mut Vec<Hit>) {
    for (id, c) in caps(ctx) {
        let Capability::Net { host, .. } = &c.capability else {
            continue;
        };
        if is_metadata(host) {
            out.push(hit(
                id,
                format!("{host} is a cloud instance-metadata endpoint: it serves the host's cloud credentials"),
            ));
        }
    }
}

/// Special-use names that only ever resolve to local or internal addresses
/// (RFC 6761 localhost, RFC 6762 .local, RFC 8375 home.arpa, ICANN's .internal).
const LOCAL_SUFFIXES: &[&str] = &["localhost", "local", "internal", "home.arpa", "localdomain"];

fn local_name(name: &str) -> Option<&'static str> {
    LOCAL_SUFFIXES
        .iter()
        .find(|s| name == **s || name.ends_with(&format!(".{s}")))
        .copied()
}

pub fn net_private_address(ctx: &Context<'_>, out: &mut Vec<Hit>) {
    for (id, c) in caps(ctx) {
        let Capability::Net { host, .. } = &c.capability else {
            continue;
        };
        if is_metadata(host) {
            continue; // net-metadata-endpoint
        }
        let message = match host {
            Host::Name(n) | Host::Wildcard(n) => match local_name(n.as_str()) {
                Some(s) => format!("{host} is a local-only name (.{s}): it resolves to a private or loopback address, if at all"),
                None => match embedded_v4(n.as_str()).filter(|a| ir::is_special(*a)) {
                    Some(a) => format!(
                        "{host} spells the special-purpose address {a}, which wildcard-DNS services resolve it to"
                    ),
                    None => continue,
                },
            },
            h => match ip_of(h).filter(|a| ir::is_special(*a)) {
                Some(_) => format!(
                    "{host} is in a special-purpose range (private, loopback, link-local, ...): it reaches the host or the internal network"
                ),
                None => continue,
            },
        };
        out.push(hit(id, message));
    }
}

/// Whether an env name looks like a secret: split at `_`, a word is one of
/// [`SECRET_WORDS`] or ends in TOKEN or SECRET (`GITHUBTOKEN`), or the name
/// contains PASSWORD, PASSWD or APIKEY anywhere (`MYSQLPASSWORD`). Whole words
/// keep `TOKENIZERS_PARALLELISM`, `KEYBOARD_LAYOUT` and `BYPASS_CACHE` out.
pub fn secret_name(name: &str) -> bool {
    const ANYWHERE: &[&str] = &["PASSWORD", "PASSWD", "APIKEY"];
    name.split('_')
        .any(|w| SECRET_WORDS.contains(&w) || w.ends_with("TOKEN") || w.ends_with("SECRET"))
        || ANYWHERE.iter().any(|s| name.contains(s))
}

/// Words of an env name that mark a secret.
const SECRET_WORDS: &[&str] = &[
    "TOKEN",
    "KEY",
    "SECRET",
    "SECRETS",
    "PASS",
    "PAT",
    "CREDENTIAL",
    "CREDENTIALS",
    "CREDS",
    "AUTH",
    "COOKIE",
    "SESSION",
    "PRIVATE",
    "PASSPHRASE",
];

pub fn env_secret_read(ctx: &Context<'_>, out: &mut Vec<Hit>) {
    for (id, c) in caps(ctx) {
        let Capability::Env { actions, name } = &c.capability else {
            continue;
        };
        if actions.read && secret_name(name.as_str()) {
            out.push(hit(
                id,
                format!(
                    "{name} looks like a secret but is declared env:read; declare it env:inject"
                ),
            ));
        }
    }
}

pub fn exec_nested_sandbox(ctx: &Context<'_>, out: &mut Vec<Hit>) {
    for (id, c) in caps(ctx) {
        if let Capability::Exec {
            binary,
            nested_sandbox: true,
        } = &c.capability
        {
            out.push(hit(
                id,
                format!("{binary} asks for nestedSandbox: user namespaces stay available (bwrap) and capgate's seccomp profile is dropped (docker) for the whole server"),
            ));
        }
    }
}

pub fn ipc_system_bus(ctx: &Context<'_>, out: &mut Vec<Hit>) {
    for (id, c) in caps(ctx) {
        if let Capability::Ipc {
            endpoint: Endpoint::DbusSystem,
        } = &c.capability
        {
            out.push(hit(
                id,
                "the D-Bus system bus reaches root services (systemd, NetworkManager, polkit, udisks)".to_owned(),
            ));
        }
        // A unix socket path that is the system bus socket is the same grant.
        if let Capability::Ipc {
            endpoint: Endpoint::Unix(p),
        } = &c.capability
        {
            if SYSTEM_BUS_SOCKETS.contains(&p.as_str()) {
                out.push(hit(
                    id,
                    format!("unix:{p} is the D-Bus system bus socket: it reaches root services (systemd, NetworkManager, polkit, udisks)"),
                ));
            }
        }
    }
    // fs grants of the socket reach it too.
    for (id, c) in caps(ctx) {
        if let Capability::Fs { path, .. } = &c.capability {
            let segs = segments(path.path.as_str());
            if !BROAD.contains(&path.path.as_str())
                && SYSTEM_BUS_SOCKETS
                    .iter()
                    .any(|s| prefix_of(&segs, &segments(s)))
            {
                out.push(hit(
                    id,
                    format!(
                        "{} contains the D-Bus system bus socket: it reaches root services",
                        scope(path)
                    ),
                ));
            }
        }
    }
}

/// Where the system bus listens.
const SYSTEM_BUS_SOCKETS: &[&str] = &[
    "/run/dbus/system_bus_socket",
    "/var/run/dbus/system_bus_socket",
];
