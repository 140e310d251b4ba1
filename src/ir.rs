//! Stage 3: typed capabilities → normalised facts.
//!
//! The sandbox is per server, so capabilities of every tool are unioned. Each
//! fact remembers the capabilities that produced it ([`CapId`]s), which is what
//! `explain` and every located diagnostic after this stage rely on.
//!
//! Differences from the reference's normalisation (SPEC §4), all deliberate:
//! - fs scopes are keyed by the path they bind, and a scope below another is
//!   folded into it only when the outer bind already grants at least its mode.
//!   A writable child of a read-only parent stays a separate, nested bind
//!   instead of making the whole parent writable (SPEC §13.6).
//! - every merge that gives a capability more than it declared is recorded as a
//!   [`Widening`], which becomes a note.
//! - IP literals are classified by address range, not by string prefix; a
//!   declared special-range address stays scoped to that address and port.
//! - all ordering is by bytes (fs paths segment by segment, so a directory
//!   always precedes what lies below it).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::capability::{
    AbsPath, Capability, ClockSource, Endpoint, FsActions, Glob, Host, Kind, Name, Port,
};

/// A hash map with a fast, per-process seeded hasher (foldhash): keys are
/// manifest strings, hashed tens of thousands of times in a large compile.
pub type FoldMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Index of a capability in [`Policy::caps`] (declaration order: server first, then tools).
pub type CapId = u32;

/// A capability and where it was declared.
#[derive(Debug, Clone)]
pub struct CapInfo {
    /// Index into the manifest's tools; `None` for `serverCapabilities`.
    pub tool: Option<usize>,
    /// Position within that list.
    pub index: usize,
    pub capability: Capability,
}

#[derive(Debug, Clone)]
pub struct FsFact {
    pub path: AbsPath,
    /// `Children` if any capability at this path declared `/*` (the bind grants the whole tree).
    pub glob: Glob,
    pub actions: FsActions,
    pub caps: Vec<CapId>,
    /// The nearest declared fact whose path encloses this one (set by
    /// folding): a fact kept below another is a writable path inside a
    /// read-only declared directory.
    pub parent: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct NetFact {
    pub host: Host,
    pub port: Option<Port>,
    /// An IP literal inside a special-purpose range, declared explicitly: allowed
    /// for exactly this address (and port), never opening the rest of the range.
    pub private: bool,
    pub caps: Vec<CapId>,
}

#[derive(Debug, Clone)]
pub struct ExecFact {
    pub binary: Name,
    pub nested: bool,
    pub caps: Vec<CapId>,
}

#[derive(Debug, Clone)]
pub struct EnvFact {
    pub name: Name,
    pub inject: bool,
    pub caps: Vec<CapId>,
}

#[derive(Debug, Clone)]
pub struct IpcFact {
    pub endpoint: Endpoint,
    pub caps: Vec<CapId>,
}

#[derive(Debug, Clone)]
pub struct ClockFact {
    pub source: ClockSource,
    pub caps: Vec<CapId>,
}

#[derive(Debug, Clone)]
pub struct AssertFact {
    pub id: Name,
    pub description: String,
    pub caps: Vec<CapId>,
}

/// A merge that grants some capabilities more than they declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widening {
    pub kind: Kind,
    /// Index of the fact in its list.
    pub fact: usize,
    /// What the fact grants, e.g. `read-write`.
    pub granted: String,
    /// The capabilities that declared less.
    pub widened: Vec<CapId>,
    /// The capabilities that asked for the wider grant.
    pub by: Vec<CapId>,
}

/// The normalised policy of one server.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub caps: Vec<CapInfo>,
    pub fs: Vec<FsFact>,
    pub net: Vec<NetFact>,
    pub exec: Vec<ExecFact>,
    pub env: Vec<EnvFact>,
    pub ipc: Vec<IpcFact>,
    pub clock: Option<ClockFact>,
    pub assertions: Vec<AssertFact>,
    /// Capabilities that asked for `nestedSandbox`.
    pub nested: Vec<CapId>,
    pub widenings: Vec<Widening>,
}

impl Policy {
    /// Kinds that have at least one fact, in presence-check order.
    pub fn present_kinds(&self) -> Vec<Kind> {
        Kind::ALL
            .into_iter()
            .filter(|k| match k {
                Kind::Fs => !self.fs.is_empty(),
                Kind::Net => !self.net.is_empty(),
                Kind::Exec => !self.exec.is_empty(),
                Kind::Env => !self.env.is_empty(),
                Kind::Ipc => !self.ipc.is_empty(),
                Kind::Clock => self.clock.is_some(),
                Kind::Assert => !self.assertions.is_empty(),
            })
            .collect()
    }

    /// The fs fact binding `/tmp` itself, if any.
    pub fn tmp_bind(&self) -> Option<&FsFact> {
        self.bind_of("/tmp")
    }

    /// The fs fact binding exactly `path`, if any (a target that mounts its
    /// own tmpfs there must not mount a second thing on the same place).
    pub fn bind_of(&self, path: &str) -> Option<&FsFact> {
        self.fs.iter().find(|f| f.path.as_str() == path)
    }

    /// The nearest fs fact whose bind holds `path` (the path itself or a
    /// directory above it), if any: the bind's host path (after the well-known
    /// aliases: `/var/run` is `/run`) against every spelling of `path`.
    pub fn enclosing_bind(&self, path: &str) -> Option<&FsFact> {
        // Every spelling the host may walk: `/var/mail/s.sock` is reached
        // through `/var/spool` where `/var/mail` links to `/var/spool/mail`.
        let spellings = crate::syntax::spellings(path);
        self.fs
            .iter()
            .map(|f| (f, crate::syntax::host_path(f.path.as_str())))
            .filter(|(_, bind)| spellings.iter().any(|s| crate::syntax::tree_holds(bind, s)))
            .max_by_key(|(_, bind)| bind.len())
            .map(|(f, _)| f)
    }
}

/// Builds the policy from capabilities in declaration order.
pub fn normalise(caps: Vec<CapInfo>) -> Policy {
    let (fs, mut widenings) = fs_facts(&caps);
    let others = other_facts(&caps);
    widenings.extend(others.widenings);
    Policy {
        caps,
        fs,
        net: others.net,
        exec: others.exec,
        env: others.env,
        ipc: others.ipc,
        clock: others.clock,
        assertions: others.assertions,
        nested: others.nested,
        widenings,
    }
}

/// What [`other_facts`] builds.
struct Others {
    net: Vec<NetFact>,
    exec: Vec<ExecFact>,
    env: Vec<EnvFact>,
    ipc: Vec<IpcFact>,
    clock: Option<ClockFact>,
    assertions: Vec<AssertFact>,
    nested: Vec<CapId>,
    widenings: Vec<Widening>,
}

/// The fs facts, folded, and their widenings.
fn fs_facts(caps: &[CapInfo]) -> (Vec<FsFact>, Vec<Widening>) {
    // Keys borrow from `caps`: a large manifest has tens of thousands of
    // capabilities, and a fact's key is cloned once, when the fact is created.
    let mut fs: Vec<FsFact> = Vec::new();
    // Keyed by the host path a bind resolves on every host (after the
    // well-known aliases: `/var/run/app` is `/run/app`), so that two spellings
    // of one host path are one fact. Not after the partial aliases: where they
    // are not links the two spellings are two directories (folding still sees
    // their nesting).
    let mut fs_index: FoldMap<std::borrow::Cow<'_, str>, usize> = FoldMap::default();
    for (id, info) in caps.iter().enumerate() {
        let Capability::Fs { actions, path } = &info.capability else {
            continue;
        };
        let id = id as CapId;
        let actions = actions.closure();
        match fs_index.entry(crate::syntax::sure_host_path(path.path.as_str())) {
            Entry::Occupied(e) => {
                let f = &mut fs[*e.get()];
                // Bound under the spelling of a capability that asked for its
                // widest grant: a reviewer sees the writable path as declared.
                if actions.writable() && !f.actions.writable() {
                    f.path = path.path.clone();
                }
                f.actions = f.actions.union(actions);
                if path.glob == Glob::Children || f.glob == Glob::Children {
                    f.glob = Glob::Children;
                } else {
                    f.glob = f.glob.max(path.glob);
                }
                f.caps.push(id);
            }
            Entry::Vacant(e) => {
                e.insert(fs.len());
                fs.push(FsFact {
                    path: path.path.clone(),
                    glob: path.glob,
                    actions,
                    caps: vec![id],
                    parent: None,
                });
            }
        }
    }
    let mut widenings = Vec::new();
    let fs = fold_fs(fs, caps, &mut widenings);
    (fs, widenings)
}

/// Facts of every kind but fs, and the widenings of net facts.
fn other_facts(caps: &[CapInfo]) -> Others {
    let mut net: Vec<NetFact> = Vec::new();
    let mut net_index: FoldMap<(&Host, Option<Port>), usize> = FoldMap::default();
    let mut exec: BTreeMap<&Name, ExecFact> = BTreeMap::new();
    let mut env: BTreeMap<&Name, EnvFact> = BTreeMap::new();
    let mut ipc: BTreeMap<String, IpcFact> = BTreeMap::new();
    let mut clock: Option<ClockFact> = None;
    let mut assertions: BTreeMap<&Name, AssertFact> = BTreeMap::new();
    let mut nested = Vec::new();
    let display = Name::new_unchecked("DISPLAY".to_owned());

    for (id, info) in caps.iter().enumerate() {
        let id = id as CapId;
        match &info.capability {
            Capability::Fs { .. } => {}
            Capability::Net { host, port } => match net_index.entry((host, *port)) {
                Entry::Occupied(e) => net[*e.get()].caps.push(id),
                Entry::Vacant(e) => {
                    e.insert(net.len());
                    net.push(NetFact {
                        host: host.clone(),
                        port: *port,
                        private: host_is_special(host),
                        caps: vec![id],
                    });
                }
            },
            Capability::Exec {
                binary,
                nested_sandbox,
            } => {
                let f = exec.entry(binary).or_insert_with(|| ExecFact {
                    binary: binary.clone(),
                    nested: false,
                    caps: Vec::new(),
                });
                f.nested |= nested_sandbox;
                f.caps.push(id);
                if *nested_sandbox {
                    nested.push(id);
                }
            }
            Capability::Env { actions, name } => {
                let f = env.entry(name).or_insert_with(|| EnvFact {
                    name: name.clone(),
                    inject: false,
                    caps: Vec::new(),
                });
                f.inject |= actions.inject;
                f.caps.push(id);
            }
            Capability::Ipc { endpoint } => {
                // An X11 connection needs DISPLAY; the reference appended it to
                // envInjections, possibly twice. As a fact it is deduplicated.
                if *endpoint == Endpoint::X11 {
                    let f = env.entry(&display).or_insert_with(|| EnvFact {
                        name: display.clone(),
                        inject: true,
                        caps: Vec::new(),
                    });
                    // Also when `env:read:DISPLAY` came first: x11 needs it injected.
                    f.inject = true;
                    f.caps.push(id);
                }
                ipc.entry(endpoint.to_string())
                    .or_insert_with(|| IpcFact {
                        endpoint: endpoint.clone(),
                        caps: Vec::new(),
                    })
                    .caps
                    .push(id);
            }
            Capability::Clock { source } => match &mut clock {
                Some(c) => {
                    c.source = c.source.max(*source);
                    c.caps.push(id);
                }
                None => {
                    clock = Some(ClockFact {
                        source: *source,
                        caps: vec![id],
                    })
                }
            },
            Capability::Assert {
                id: aid,
                description,
            } => {
                // Last description wins, as in the reference.
                let f = assertions.entry(aid).or_insert_with(|| AssertFact {
                    id: aid.clone(),
                    description: String::new(),
                    caps: Vec::new(),
                });
                f.description.clone_from(description);
                f.caps.push(id);
            }
        }
    }
    let exec = exec.into_values().collect();
    let env = env.into_values().collect();
    let assertions = assertions.into_values().collect();

    let mut widenings = Vec::new();
    let net = fold_net(net, &mut widenings);
    Others {
        net,
        exec,
        env,
        ipc: ipc.into_values().collect(),
        clock,
        assertions,
        nested,
        widenings,
    }
}

fn fs_declared_writable(caps: &[CapInfo], id: CapId) -> bool {
    match &caps[id as usize].capability {
        Capability::Fs { actions, .. } => actions.closure().writable(),
        _ => false,
    }
}

/// Sorts fs facts so that every directory precedes its contents, then folds
/// each fact into its nearest kept ancestor when that ancestor's bind already
/// grants at least the fact's mode. Linear after the sort: kept ancestors of
/// the current path form a stack.
fn fold_fs(mut fs: Vec<FsFact>, caps: &[CapInfo], widenings: &mut Vec<Widening>) -> Vec<FsFact> {
    // Sorted and nested by host path (after the aliases): a bind's source is
    // resolved on the host, so `/run/app/sub` lies inside `/var/run/app`, and a
    // read-only bind of it inside a writable one would follow whatever the
    // sandbox left there.
    let host = |f: &FsFact| crate::syntax::host_path(f.path.as_str()).into_owned();
    fs.sort_by_cached_key(|f| segment_key(&host(f)));
    let mut kept: Vec<FsFact> = Vec::with_capacity(fs.len());
    let mut stack: Vec<(usize, String)> = Vec::new();
    // Capabilities folded into each kept fact from below, for the widening report.
    for f in fs {
        let fhost = host(&f);
        while let Some((_, top)) = stack.last() {
            if crate::syntax::tree_holds(top, &fhost) {
                break;
            }
            stack.pop();
        }
        match stack.last().map(|(a, _)| *a) {
            Some(a) if kept[a].actions.writable() || !f.actions.writable() => {
                let anc = &mut kept[a];
                anc.actions = anc.actions.union(f.actions);
                anc.caps.extend(f.caps);
            }
            parent => {
                stack.push((kept.len(), fhost));
                kept.push(FsFact { parent, ..f });
            }
        }
    }
    fold_through_links(&mut kept);
    for (i, f) in kept.iter_mut().enumerate() {
        f.caps.sort_unstable();
        if f.actions.writable() {
            let (by, widened): (Vec<CapId>, Vec<CapId>) =
                f.caps.iter().partition(|&&c| fs_declared_writable(caps, c));
            if !widened.is_empty() {
                widenings.push(Widening {
                    kind: Kind::Fs,
                    fact: i,
                    granted: "read-write".to_owned(),
                    widened,
                    by,
                });
            }
        }
    }
    kept
}

/// Folds a kept fact into another whose directory strictly holds any
/// spelling the host may walk to reach it ([`crate::syntax::spellings`]),
/// under [`fold_fs`]'s condition (the holder is writable, or the fact is not).
/// The host-path order cannot see this nesting: `/var/spool/mail/u` resolves
/// to `/var/mail/u`, yet it is walked through `/var/spool`, and a writable
/// bind of `/var/spool` lets the sandbox replace the `mail` link with a
/// symlink to anywhere, which a separate bind would follow at the next start.
/// Only facts with more than one spelling are looked at: an ordinary manifest
/// pays one scan of its paths for alias prefixes.
fn fold_through_links(kept: &mut Vec<FsFact>) {
    if !kept
        .iter()
        .any(|f| crate::syntax::has_other_spellings(f.path.as_str()))
    {
        return;
    }
    let hosts: Vec<String> = kept
        .iter()
        .map(|f| crate::syntax::host_path(f.path.as_str()).into_owned())
        .collect();
    // Two kept facts can share a host path (partial aliases do not merge).
    let mut by_host: FoldMap<&str, Vec<usize>> = FoldMap::default();
    for (j, h) in hosts.iter().enumerate() {
        by_host.entry(h.as_str()).or_default().push(j);
    }
    // The nearest holder of each fact with several spellings: a kept fact
    // whose host path is a strict ancestor of one of them. Ancestors are
    // looked up, not scanned, so this stays linear in the manifest.
    let mut into: Vec<Option<usize>> = vec![None; kept.len()];
    for (i, f) in kept.iter().enumerate() {
        if !crate::syntax::has_other_spellings(f.path.as_str()) {
            continue;
        }
        let spellings = crate::syntax::spellings(f.path.as_str());
        let mut best: Option<(usize, usize)> = None;
        for s in &spellings {
            for (cut, _) in s.match_indices('/').filter(|(cut, _)| *cut > 0) {
                let Some(holders) = by_host.get(&s[..cut]) else {
                    continue;
                };
                for &j in holders {
                    let fits = j != i && (kept[j].actions.writable() || !f.actions.writable());
                    if fits && best.is_none_or(|(len, _)| cut > len) {
                        best = Some((cut, j));
                    }
                }
            }
        }
        into[i] = best.map(|(_, j)| j);
    }
    // Where a holder folds too, its facts go where it goes (a chain is at
    // most as long as the list; a cycle, which distinct host paths cannot
    // form, would fold nothing).
    let target = |mut i: usize| -> Option<usize> {
        let mut steps = 0;
        while let Some(j) = into[i] {
            i = j;
            steps += 1;
            if steps > into.len() {
                return None;
            }
        }
        Some(i)
    };
    let targets: Vec<Option<usize>> = (0..kept.len())
        .map(|i| into[i].and_then(|_| target(i)))
        .collect();
    if targets.iter().all(Option::is_none) {
        return;
    }
    for (i, t) in targets.iter().enumerate() {
        if let Some(t) = *t {
            let (actions, caps) = (kept[i].actions, std::mem::take(&mut kept[i].caps));
            kept[t].actions = kept[t].actions.union(actions);
            kept[t].caps.extend(caps);
        }
    }
    // New indices of the facts that stay; a parent that folded becomes its holder.
    let mut new_index = vec![usize::MAX; kept.len()];
    let mut n = 0;
    for (i, t) in targets.iter().enumerate() {
        if t.is_none() {
            new_index[i] = n;
            n += 1;
        }
    }
    let old = std::mem::take(kept);
    for (i, mut f) in old.into_iter().enumerate() {
        if targets[i].is_some() {
            continue;
        }
        let me = kept.len();
        f.parent = f
            .parent
            .map(|p| new_index[targets[p].unwrap_or(p)])
            .filter(|&p| p != me);
        kept.push(f);
    }
}

/// A key whose byte order is the order of paths segment by segment (as
/// comparing their `split('/')` would): `/` written as NUL, which ranks below
/// every other byte and cannot occur in a path. Sorting by it compares with memcmp.
fn segment_key(path: &str) -> String {
    path.replace('/', "\0")
}

/// Sorts net facts by host (bytes) then port (any-port first), and folds a
/// port-specific fact into an any-port fact for the same host.
fn fold_net(mut net: Vec<NetFact>, widenings: &mut Vec<Widening>) -> Vec<NetFact> {
    let key = |f: &NetFact| (f.host.to_string(), f.port);
    net.sort_by_cached_key(key);
    let mut kept: Vec<NetFact> = Vec::with_capacity(net.len());
    for f in net {
        let i = kept.len().wrapping_sub(1);
        match kept.last() {
            Some(last) if last.host == f.host && last.port.is_none() => {
                match widenings.last_mut() {
                    Some(w) if w.kind == Kind::Net && w.fact == i => w.widened.extend(&f.caps),
                    _ => widenings.push(Widening {
                        kind: Kind::Net,
                        fact: i,
                        granted: "open on any port".to_owned(),
                        widened: f.caps.clone(),
                        by: last.caps.clone(),
                    }),
                }
                kept[i].caps.extend(f.caps);
            }
            _ => kept.push(f),
        }
    }
    kept
}

/// Special-purpose address ranges: never reachable through a grant for a name
/// or `*`, only through an explicitly declared address. Every entry of the
/// IANA IPv4 and IPv6 Special-Purpose Address Registries that is not globally
/// reachable, plus multicast, reserved space, deprecated IPv4-embedding IPv6
/// forms and cloud platform addresses in public space. Each entry names its
/// source.
pub const SPECIAL_V4: &[(Ipv4Addr, u8)] = &[
    // IANA IPv4 special-purpose: "This network" (RFC 791)
    (Ipv4Addr::new(0, 0, 0, 0), 8),
    // IANA IPv4 special-purpose: Private-Use (RFC 1918)
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    // IANA IPv4 special-purpose: Shared Address Space (RFC 6598; Alibaba metadata)
    (Ipv4Addr::new(100, 64, 0, 0), 10),
    // IANA IPv4 special-purpose: Loopback (RFC 1122)
    (Ipv4Addr::new(127, 0, 0, 0), 8),
    // Azure WireServer / host agent (168.63.129.16): public space, reachable
    // from every Azure VM, serves the host's certificates and metadata
    (Ipv4Addr::new(168, 63, 129, 16), 32),
    // IANA IPv4 special-purpose: Link Local (RFC 3927; cloud metadata)
    (Ipv4Addr::new(169, 254, 0, 0), 16),
    // IANA IPv4 special-purpose: Private-Use (RFC 1918)
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    // IANA IPv4 special-purpose: IETF Protocol Assignments (RFC 6890)
    (Ipv4Addr::new(192, 0, 0, 0), 24),
    // IANA IPv4 special-purpose: Documentation (TEST-NET-1, RFC 5737)
    (Ipv4Addr::new(192, 0, 2, 0), 24),
    // IANA IPv4 special-purpose: Deprecated 6to4 Relay Anycast (RFC 7526)
    (Ipv4Addr::new(192, 88, 99, 0), 24),
    // IANA IPv4 special-purpose: Private-Use (RFC 1918)
    (Ipv4Addr::new(192, 168, 0, 0), 16),
    // IANA IPv4 special-purpose: Benchmarking (RFC 2544)
    (Ipv4Addr::new(198, 18, 0, 0), 15),
    // IANA IPv4 special-purpose: Documentation (TEST-NET-2, RFC 5737)
    (Ipv4Addr::new(198, 51, 100, 0), 24),
    // IANA IPv4 special-purpose: Documentation (TEST-NET-3, RFC 5737)
    (Ipv4Addr::new(203, 0, 113, 0), 24),
    // IANA IPv4 address space: Multicast (RFC 5771)
    (Ipv4Addr::new(224, 0, 0, 0), 4),
    // IANA IPv4 special-purpose: Reserved (RFC 1112) and Limited Broadcast (RFC 919)
    (Ipv4Addr::new(240, 0, 0, 0), 4),
];

/// See [`SPECIAL_V4`]. `::/96` covers the registry's `::/128` (Unspecified)
/// and `::1/128` (Loopback); listing them too would only make squid warn
/// about subnetworks.
pub const SPECIAL_V6: &[(Ipv6Addr, u8)] = &[
    // IPv4-Compatible IPv6 addresses (deprecated, RFC 4291 2.5.5.1), with the
    // IANA IPv6 special-purpose Unspecified (::/128) and Loopback (::1/128)
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96),
    // IPv4-translated addresses (SIIT, RFC 2765 2.1; ::ffff:0:a.b.c.d)
    (Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, 0, 0), 96),
    // IANA IPv6 special-purpose: IPv4-IPv6 Translat. (RFC 6052)
    (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96),
    // IANA IPv6 special-purpose: IPv4-IPv6 Translat. (local-use, RFC 8215)
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48),
    // IANA IPv6 special-purpose: Discard-Only Address Block (RFC 6666)
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),
    // IANA IPv6 special-purpose: Dummy IPv6 Prefix (RFC 9780)
    (Ipv6Addr::new(0x100, 0, 0, 1, 0, 0, 0, 0), 64),
    // IANA IPv6 special-purpose: IETF Protocol Assignments (RFC 2928;
    // Teredo, ORCHIDv2, benchmarking, ...)
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
    // IANA IPv6 special-purpose: Documentation (RFC 3849)
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
    // IANA IPv6 special-purpose: 6to4 (RFC 3056)
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16),
    // IANA IPv6 special-purpose: Documentation (RFC 9637)
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),
    // IANA IPv6 special-purpose: Segment Routing (SRv6) SIDs (RFC 9602)
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16),
    // IANA IPv6 special-purpose: Unique-Local (RFC 4193)
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),
    // IANA IPv6 special-purpose: Link-Local Unicast (RFC 4291)
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
    // Site-local (deprecated, RFC 3879)
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10),
    // IANA IPv6 address space: Multicast (RFC 4291)
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),
];

/// IPv4-mapped IPv6 addresses. Kept apart from [`SPECIAL_V6`] because some
/// programs (squid) store every IPv4 address in this form: for them this range
/// means "all of IPv4", and the IPv4 list already covers what it should.
pub const V4_MAPPED: (Ipv6Addr, u8) = (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96);

/// Cloud instance-metadata endpoints (AWS, GCP, Azure, OpenStack: 169.254.169.254;
/// AWS ECS task metadata: 169.254.170.2; Alibaba: 100.100.100.200; AWS IPv6:
/// fd00:ec2::254; Azure WireServer: 168.63.129.16). They are special-range addresses, so only an explicit
/// declaration reaches them, and such a grant hands the host's cloud
/// credentials to the sandbox: it always gets a note.
pub const METADATA_ADDRS: &[IpAddr] = &[
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)),
];

impl NetFact {
    /// Whether the destination is a cloud instance-metadata endpoint.
    pub fn is_metadata(&self) -> bool {
        match self.host {
            Host::V4(a) => METADATA_ADDRS.contains(&IpAddr::V4(a)),
            Host::V6(a) => METADATA_ADDRS.contains(&IpAddr::V6(a)),
            _ => false,
        }
    }
}

/// Whether an address lies in a special-purpose range.
pub fn is_special(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => SPECIAL_V4.iter().any(|(net, len)| {
            let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(*net)
        }),
        IpAddr::V6(a) => SPECIAL_V6.iter().chain([&V4_MAPPED]).any(|(net, len)| {
            let mask = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(*net)
        }),
    }
}

fn host_is_special(host: &Host) -> bool {
    match host {
        Host::V4(a) => is_special(IpAddr::V4(*a)),
        Host::V6(a) => is_special(IpAddr::V6(*a)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::parse_capability;

    fn policy(caps: &[&str]) -> Policy {
        normalise(
            caps.iter()
                .enumerate()
                .map(|(i, c)| CapInfo {
                    tool: Some(i),
                    index: 0,
                    capability: parse_capability(c).unwrap(),
                })
                .collect(),
        )
    }

    fn fs(p: &Policy) -> Vec<(String, bool, Vec<CapId>)> {
        p.fs.iter()
            .map(|f| (f.path.to_string(), f.actions.writable(), f.caps.clone()))
            .collect()
    }

    #[test]
    fn writable_child_of_readonly_root_stays_nested() {
        let p = policy(&["fs:read:/workspace/**", "fs:write:/workspace/tmp/**"]);
        assert_eq!(
            fs(&p),
            [
                ("/workspace".into(), false, vec![0]),
                ("/workspace/tmp".into(), true, vec![1])
            ]
        );
        assert!(p.widenings.is_empty());
    }

    #[test]
    fn readonly_child_of_writable_root_is_folded_and_reported() {
        let p = policy(&["fs:write:/w/**", "fs:read:/w/sub/**", "fs:read:/w-x"]);
        assert_eq!(
            fs(&p),
            [
                ("/w".into(), true, vec![0, 1]),
                ("/w-x".into(), false, vec![2])
            ]
        );
        assert_eq!(
            p.widenings,
            [Widening {
                kind: Kind::Fs,
                fact: 0,
                granted: "read-write".into(),
                widened: vec![1],
                by: vec![0]
            }]
        );
    }

    /// Every spelling of one host directory nests as that directory: a read-only path
    /// under any spelling of a writable one is folded into it, and a socket there is
    /// covered by it (bound on their own, their sources could be symlinks the server
    /// planted). tests/oci.rs proves the attack under runc.
    #[test]
    fn aliased_spellings_nest_as_one_host_directory() {
        let pairs = [
            ("/usr/lib/x", "/lib/x/cfg"),
            ("/lib/x", "/usr/lib/x/cfg"),
            ("/sbin/x", "/usr/bin/x/cfg"),
            ("/usr/bin/x", "/sbin/x/cfg"),
            ("/lib64/x", "/usr/lib/x/cfg"),
            ("/var/spool/mail/x", "/var/mail/x/cfg"),
            ("/usr/tmp/x", "/var/tmp/x/cfg"),
            ("/var/run/x", "/run/x/cfg"),
        ];
        for (writable, readonly) in pairs {
            let p = policy(&[
                &format!("fs:read,write,create,delete:{writable}/**"),
                &format!("fs:read:{readonly}/**"),
            ]);
            assert_eq!(
                fs(&p),
                [(writable.to_owned(), true, vec![0, 1])],
                "{writable} / {readonly}"
            );
            assert_eq!(p.widenings.len(), 1, "{writable} / {readonly}: a note");
            let socket = format!("{readonly}/agent.sock");
            let p = policy(&[
                &format!("fs:read,write,create,delete:{writable}/**"),
                &format!("ipc:connect:unix:{socket}"),
            ]);
            assert_eq!(
                p.enclosing_bind(&socket).map(|f| f.path.to_string()),
                Some(writable.to_owned()),
                "{writable} / {socket}"
            );
        }
    }

    /// Spellings that are one directory only on some hosts (`/usr/lib64` is
    /// `/usr/lib` on Arch, not on Debian) never merge into one fact: the
    /// read-only spelling is never bound writable, in either order. Spellings
    /// that are one directory everywhere merge under the writable spelling.
    #[test]
    fn partial_aliases_never_merge_and_merges_keep_the_writable_spelling() {
        // The policy of a read-only `ro` and a writable `rw`, declared in both orders.
        let both_orders = |ro: &str, rw: &str| {
            let (r, w) = (
                format!("fs:read:{ro}/**"),
                format!("fs:read,write,create,delete:{rw}/**"),
            );
            [policy(&[&r, &w]), policy(&[&w, &r])]
        };
        for (ro, rw) in [
            ("/usr/lib64/app", "/usr/lib/app"),
            ("/usr/sbin/t", "/usr/bin/t"),
            ("/sbin/t", "/usr/bin/t"),
        ] {
            let [ro_first, rw_first] = both_orders(ro, rw);
            for p in [&ro_first, &rw_first] {
                let writable = |path: &str| {
                    p.fs.iter()
                        .any(|f| f.path.as_str() == path && f.actions.writable())
                };
                assert!(!writable(ro) && writable(rw), "{ro} {rw}: {:?}", fs(p));
            }
            // Not merged: declared first, the read-only spelling keeps its own
            // read-only bind (on Debian it is a directory of its own).
            assert_eq!(
                fs(&ro_first),
                [
                    (ro.to_owned(), false, vec![0]),
                    (rw.to_owned(), true, vec![1])
                ],
                "{ro} {rw}"
            );
        }
        for (ro, rw) in [("/lib/app", "/usr/lib/app"), ("/var/run/app", "/run/app")] {
            for p in both_orders(ro, rw) {
                assert_eq!(fs(&p), [(rw.to_owned(), true, vec![0, 1])], "{ro} {rw}");
            }
        }
    }

    /// A path the host walks through a writable directory under another
    /// spelling (`/var/spool/mail/u` resolves to `/var/mail/u` through the
    /// `mail` link inside `/var/spool`; Fedora links `/var/mail` to
    /// `/var/spool/mail`) folds into it like any nested path, in either
    /// declaration order, and a socket there is covered by it: bound on its
    /// own, it would follow a symlink the sandbox left in place of the link.
    /// Inside a read-only directory a writable path keeps its own bind.
    #[test]
    fn paths_walked_through_a_writable_link_fold_into_it() {
        let rw = "fs:read,write,create,delete";
        for (outer, inner) in [
            ("/var/spool", "/var/spool/mail/u"),
            ("/var/spool", "/var/mail/u"),
        ] {
            for inner_access in ["fs:read", rw] {
                let (o, i) = (
                    format!("{rw}:{outer}/**"),
                    format!("{inner_access}:{inner}/**"),
                );
                for caps in [[&o, &i], [&i, &o]] {
                    let p = policy(&caps.map(String::as_str));
                    assert_eq!(
                        fs(&p)
                            .iter()
                            .map(|(path, w, _)| (path.as_str(), *w))
                            .collect::<Vec<_>>(),
                        [(outer, true)],
                        "{caps:?}"
                    );
                }
            }
            let p = policy(&[&format!("{rw}:{outer}/**")]);
            let socket = format!("{inner}/s.sock");
            assert_eq!(
                p.enclosing_bind(&socket).map(|f| f.path.to_string()),
                Some(outer.to_owned()),
                "{socket}"
            );
        }
        let p = policy(&["fs:read:/var/spool/**", &format!("{rw}:/var/mail/u/**")]);
        assert_eq!(
            fs(&p)
                .iter()
                .map(|(path, w, _)| (path.as_str(), *w))
                .collect::<Vec<_>>(),
            [("/var/mail/u", true), ("/var/spool", false)]
        );
    }

    #[test]
    fn sibling_with_lower_byte_does_not_break_ancestry() {
        // "/a-b" sorts between "/a" and "/a/b" by plain bytes; segment order keeps /a/b under /a.
        let p = policy(&["fs:write:/a/**", "fs:read:/a-b/**", "fs:read:/a/b/**"]);
        assert_eq!(
            fs(&p),
            [
                ("/a".into(), true, vec![0, 2]),
                ("/a-b".into(), false, vec![1])
            ]
        );
    }

    #[test]
    fn segment_key_is_split_order() {
        let paths = [
            "/", "/a", "/a/b", "/a-b", "/a.b", "/a/b/c", "/ab", "/a/-", "/a-/b", "/a/b-c", "/a/b/",
            "/A", "/a0", "/~", "/a/~", "/a~/b", "/@", "/.",
        ];
        for a in paths {
            for b in paths {
                assert_eq!(
                    segment_key(a).cmp(&segment_key(b)),
                    a.split('/').cmp(b.split('/')),
                    "{a} {b}"
                );
            }
        }
    }

    #[test]
    fn file_path_binds_the_file() {
        let p = policy(&["fs:write:/etc/app.conf"]);
        assert_eq!(fs(&p), [("/etc/app.conf".into(), true, vec![0])]);
    }

    #[test]
    fn action_closure() {
        let p = policy(&["fs:delete:/x"]);
        assert_eq!(p.fs[0].actions.names(), ["read", "write", "delete"]);
    }

    #[test]
    fn net_any_port_absorbs_specific_ports() {
        let p = policy(&[
            "net:connect:a.com:443",
            "net:connect:a.com",
            "net:connect:b.com:80",
        ]);
        let hosts: Vec<_> = p
            .net
            .iter()
            .map(|n| (n.host.to_string(), n.port.map(Port::get)))
            .collect();
        assert_eq!(hosts, [("a.com".into(), None), ("b.com".into(), Some(80))]);
        assert_eq!(p.widenings[0].widened, [0]);
    }

    #[test]
    fn private_by_range_not_prefix() {
        let p = policy(&[
            "net:connect:10.example.com:443",
            "net:connect:10.0.0.5:5432",
            "net:connect:100.100.100.200:80",
            "net:connect:\"fd00::1\":80",
            "net:connect:8.8.8.8:53",
        ]);
        let private: Vec<_> = p
            .net
            .iter()
            .map(|n| (n.host.to_string(), n.private))
            .collect();
        assert_eq!(
            private,
            [
                ("10.0.0.5".into(), true),
                ("10.example.com".into(), false),
                ("100.100.100.200".into(), true),
                ("8.8.8.8".into(), false),
                ("fd00::1".into(), true),
            ]
        );
    }

    #[test]
    fn metadata_endpoints_are_recognised() {
        let p = policy(&[
            "net:connect:169.254.169.254:80",
            "net:connect:\"fd00:ec2::254\":80",
            "net:connect:169.254.169.253:80",
            "net:connect:metadata.google.internal:80",
        ]);
        let meta: Vec<_> = p
            .net
            .iter()
            .map(|n| (n.host.to_string(), n.is_metadata()))
            .collect();
        assert_eq!(
            meta,
            [
                ("169.254.169.253".into(), false),
                ("169.254.169.254".into(), true),
                ("fd00:ec2::254".into(), true),
                ("metadata.google.internal".into(), false),
            ]
        );
    }

    #[test]
    fn special_ranges_cover_embedded_ipv4_and_platform_addresses() {
        // F16: the Azure WireServer, IPv4-compatible and IPv4-translated IPv6,
        // and the IANA registry entries checked again.
        for a in [
            "168.63.129.16",
            "::",
            "::1",
            "::7f00:1",
            "::a9fe:a9fe",
            "::ffff:0:7f00:1",
            "::ffff:0:a9fe:a9fe",
            "100::1",
            "100:0:0:1::1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2001::1",
            "2001:db8::1",
            "2002:a00:1::1",
            "3fff::1",
            "5f00::1",
            "fc00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1:ff00:1",
            "100.64.0.1",
            "192.0.0.9",
            "198.19.255.255",
            "240.0.0.1",
        ] {
            assert!(is_special(a.parse().unwrap()), "{a} is special");
        }
        for a in [
            "168.63.129.15",
            "168.63.129.17",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "1::7f00:1",
            "::fffe:0:7f00:1",
            "100:0:0:2::1",
        ] {
            assert!(!is_special(a.parse().unwrap()), "{a} is public");
        }
        let p = policy(&["net:connect:168.63.129.16:80"]);
        assert!(p.net[0].private && p.net[0].is_metadata());
    }

    #[test]
    fn x11_implies_display_once() {
        let p = policy(&["ipc:connect:x11", "env:read:DISPLAY"]);
        assert_eq!(p.env.len(), 1);
        assert_eq!(p.env[0].caps, [0, 1]);
        // Either order: x11 needs DISPLAY injected.
        for caps in [
            ["ipc:connect:x11", "env:read:DISPLAY"],
            ["env:read:DISPLAY", "ipc:connect:x11"],
        ] {
            assert!(policy(&caps).env[0].inject, "{caps:?}");
        }
    }

    #[test]
    fn clock_tzdata_wins_and_last_assert_description_wins() {
        let p = policy(&[
            "clock:tzdata",
            "clock:system",
            "assert:a:one",
            "assert:a:two",
        ]);
        assert_eq!(p.clock.unwrap().source, ClockSource::Tzdata);
        assert_eq!(p.assertions[0].description, "two");
    }
}
