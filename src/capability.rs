//! Typed capability values: the output of the grammar boundary.
//!
//! Every value here was produced by [`crate::syntax`] from a pest parse and
//! cannot hold text the grammar did not admit. Later stages never look at the
//! raw capability string again; they only see these types.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;

/// One parsed capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// `fs:<actions>:<path>`
    Fs { actions: FsActions, path: FsPath },
    /// `net:connect:<host>[:<port>]`
    Net { host: Host, port: Option<Port> },
    /// `exec:spawn:<binary>[?nestedSandbox=true]`
    Exec { binary: Name, nested_sandbox: bool },
    /// `env:<read|inject>:<NAME>`
    Env { actions: EnvActions, name: Name },
    /// `ipc:connect:<endpoint>`
    Ipc { endpoint: Endpoint },
    /// `clock:<system|tzdata>`
    Clock { source: ClockSource },
    /// `assert:<id>[:<description>]`
    Assert { id: Name, description: String },
}

impl Capability {
    /// The kind keyword, as written in manifests.
    pub fn kind(&self) -> Kind {
        match self {
            Capability::Fs { .. } => Kind::Fs,
            Capability::Net { .. } => Kind::Net,
            Capability::Exec { .. } => Kind::Exec,
            Capability::Env { .. } => Kind::Env,
            Capability::Ipc { .. } => Kind::Ipc,
            Capability::Clock { .. } => Kind::Clock,
            Capability::Assert { .. } => Kind::Assert,
        }
    }
}

/// Capability kinds, in the reference's fixed presence-check order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Fs,
    Net,
    Exec,
    Env,
    Ipc,
    Clock,
    Assert,
}

impl Kind {
    /// All kinds in presence-check order.
    pub const ALL: [Kind; 7] = [
        Kind::Fs,
        Kind::Net,
        Kind::Exec,
        Kind::Env,
        Kind::Ipc,
        Kind::Clock,
        Kind::Assert,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Fs => "fs",
            Kind::Net => "net",
            Kind::Exec => "exec",
            Kind::Env => "env",
            Kind::Ipc => "ipc",
            Kind::Clock => "clock",
            Kind::Assert => "assert",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of fs actions. The reference's implications (delete ⇒ write;
/// write, create or delete ⇒ read) are applied by [`FsActions::closure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct FsActions(u8);

impl FsActions {
    pub const READ: FsActions = FsActions(1);
    pub const CREATE: FsActions = FsActions(2);
    pub const WRITE: FsActions = FsActions(4);
    pub const DELETE: FsActions = FsActions(8);
    /// Output order of the reference: read, create, write, delete.
    const ORDER: [(FsActions, &'static str); 4] = [
        (FsActions::READ, "read"),
        (FsActions::CREATE, "create"),
        (FsActions::WRITE, "write"),
        (FsActions::DELETE, "delete"),
    ];

    pub fn from_name(name: &str) -> Option<FsActions> {
        FsActions::ORDER
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(a, _)| *a)
    }

    pub fn union(self, other: FsActions) -> FsActions {
        FsActions(self.0 | other.0)
    }

    pub fn contains(self, other: FsActions) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Applies the reference's action implications.
    pub fn closure(self) -> FsActions {
        let mut a = self;
        if a.contains(FsActions::DELETE) {
            a = a.union(FsActions::WRITE);
        }
        if a.0 & (FsActions::WRITE.0 | FsActions::CREATE.0 | FsActions::DELETE.0) != 0 {
            a = a.union(FsActions::READ);
        }
        a
    }

    /// Whether a bind must be writable to honour these actions.
    pub fn writable(self) -> bool {
        self.0 & (FsActions::WRITE.0 | FsActions::CREATE.0 | FsActions::DELETE.0) != 0
    }

    pub fn names(self) -> Vec<&'static str> {
        FsActions::ORDER
            .iter()
            .filter(|(a, _)| self.contains(*a))
            .map(|(_, n)| *n)
            .collect()
    }
}

/// `read` and/or `inject` for env capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct EnvActions {
    pub read: bool,
    pub inject: bool,
}

/// A normalised absolute path: no `.`, `..`, empty segments, trailing slash or
/// glob characters, and only characters from the grammar's allowlist.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct AbsPath(String);

impl AbsPath {
    /// Only the syntax module constructs paths, after the grammar accepted them.
    pub(crate) fn new_unchecked(s: String) -> AbsPath {
        AbsPath(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `self` is `other` or an ancestor directory of it.
    pub fn is_ancestor_or_self(&self, other: &AbsPath) -> bool {
        other.0 == self.0
            || (other.0.len() > self.0.len()
                && other.0.starts_with(&self.0)
                && other.0.as_bytes()[self.0.len()] == b'/')
    }
}

impl fmt::Display for AbsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How an fs scope extends below its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Glob {
    /// `/a/b`: exactly this file or directory (a directory bind is recursive).
    None,
    /// `/a/*`: the direct children of `/a`.
    Children,
    /// `/a/**`: everything below `/a`.
    Recursive,
}

/// An fs scope: a path plus how far below it the grant reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsPath {
    pub path: AbsPath,
    pub glob: Glob,
}

/// A DNS name, lower-cased, with valid label lengths.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DnsName(String);

impl DnsName {
    pub(crate) fn new_unchecked(s: String) -> DnsName {
        DnsName(s)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A destination host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// `*`: any public destination.
    Any,
    /// `*.example.com`: any subdomain of the name (not the name itself).
    Wildcard(DnsName),
    Name(DnsName),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl Host {
    pub fn is_ip(&self) -> bool {
        matches!(self, Host::V4(_) | Host::V6(_))
    }

    /// The kind name templates and rules match on.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Host::Any => "any",
            Host::Wildcard(_) => "wildcard",
            Host::Name(_) => "name",
            Host::V4(_) => "ipv4",
            Host::V6(_) => "ipv6",
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Any => f.write_str("*"),
            Host::Wildcard(n) => write!(f, "*.{}", n.0),
            Host::Name(n) => f.write_str(&n.0),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "{a}"),
        }
    }
}

/// A TCP port, 1..=65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Port(u16);

impl Port {
    pub fn new(p: u16) -> Option<Port> {
        (p != 0).then_some(Port(p))
    }
    pub fn get(self) -> u16 {
        self.0
    }
}

/// A validated identifier: env name, binary basename or assertion id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    pub(crate) fn new_unchecked(s: String) -> Name {
        Name(s)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ipc endpoint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    X11,
    DbusSession,
    DbusSystem,
    Unix(AbsPath),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::X11 => f.write_str("x11"),
            Endpoint::DbusSession => f.write_str("dbus:session"),
            Endpoint::DbusSystem => f.write_str("dbus:system"),
            Endpoint::Unix(p) => write!(f, "unix:{p}"),
        }
    }
}

/// `clock:` sources; `Tzdata` includes `System`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClockSource {
    System,
    Tzdata,
}

impl ClockSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ClockSource::System => "system",
            ClockSource::Tzdata => "tzdata",
        }
    }
}
