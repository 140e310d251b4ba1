//! Subsumption per kind: is every reach of one policy covered by another?
//!
//! Each kind has one function that answers the question exactly and, when the
//! answer is no, returns a concrete *witness*: a path, a `host:port`, a
//! program, a variable, an endpoint, a clock source or an assertion that the
//! wider policy reaches and the narrower one does not.
//!
//! The meaning of a grant (documented in docs/review.md):
//!
//! - fs `P` and `P/**` reach `P` and everything below it (a plain path may
//!   name a directory, whose bind is recursive); `P/*` reaches everything
//!   strictly below `P`, not `P` itself (creating or removing an entry of `P`
//!   is a write to `P`). Each point has the closure of the declared actions.
//! - net `name` reaches that name, `*.d` every name strictly below `d`, `*`
//!   every name and every IP literal outside the special ranges; an IP literal
//!   reaches that address. No port means every port 1-65535. Names and
//!   addresses are compared as written: a name's DNS records are not looked up.
//! - exec reaches the program; `nestedSandbox` is a separate grant per program.
//! - env `read` < `inject`; ipc endpoints are compared as written; clock
//!   `system` < `tzdata`.
//! - assertions are obligations of the host: dropping one, or changing its
//!   description, widens.
//!
//! Why two points are enough for fs: for one action, a grant `(Q, glob)` of the
//! old policy contains `P` only if `Q` is an ancestor of `P` (or `P` itself,
//! without `/*`), and then it contains everything below `P` too. A child
//! `P/c` whose name `c` occurs in neither policy (*fresh*) is contained only by
//! grants at `P` or above, which contain every child of `P`. So a new grant
//! `P`/`P/**` is covered iff the point `P` is, and `P/*` iff the point `P/c`.
//! The same argument gives the net witness: a fresh label below `d` is covered
//! only by grants that cover all of `*.d`.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::capability::{Capability, ClockSource, FsActions, Glob, Host, Port};
use crate::ir::{is_special, CapId, Policy};

/// What a grant newly reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// `fs`, `net`, `exec`, `nestedSandbox`, `env`, `ipc`, `clock` or `assert`.
    pub kind: &'static str,
    /// The concrete thing: `/data/b`, `x.example.com:443`, `git`, ...
    pub witness: String,
    /// What is newly allowed on it: fs actions, `connect`, `spawn`, `inject`, ...
    pub access: Vec<String>,
    /// One sentence for humans.
    pub detail: String,
    /// The capabilities that grant it (or, for a dropped assertion, declared it).
    pub caps: Vec<CapId>,
    /// Whether `caps` index the new policy (else the old one).
    pub in_new: bool,
}

/// Everything `new` reaches that `old` does not, one witness per new grant
/// (merged when two grants give the same witness). Assertions dropped from
/// `old` are included. Empty iff `new` is covered by `old`.
pub fn widened(old: &Policy, new: &Policy) -> Vec<Reach> {
    let mut out = Vec::new();
    fs(old, new, "OLD", &mut out);
    net(old, new, "OLD", &mut out);
    exec(old, new, "OLD", &mut out);
    env(old, new, "OLD", &mut out);
    ipc(old, new, "OLD", &mut out);
    clock(old, new, "OLD", &mut out);
    assertions_dropped(old, new, &mut out);
    merge(out)
}

/// Everything `old` reached that `new` does not (assertions `new` adds are
/// included): `widened` with the roles swapped.
pub fn narrowed(old: &Policy, new: &Policy) -> Vec<Reach> {
    let mut out = Vec::new();
    fs(new, old, "NEW", &mut out);
    net(new, old, "NEW", &mut out);
    exec(new, old, "NEW", &mut out);
    env(new, old, "NEW", &mut out);
    ipc(new, old, "NEW", &mut out);
    clock(new, old, "NEW", &mut out);
    for r in &mut out {
        r.in_new = false;
    }
    let old_ids: HashSet<&str> = old.assertions.iter().map(|o| o.id.as_str()).collect();
    for a in &new.assertions {
        if !old_ids.contains(a.id.as_str()) {
            out.push(Reach {
                kind: "assert",
                witness: a.id.to_string(),
                access: vec!["promise".into()],
                detail: format!("NEW adds the host's promise {:?}", a.description),
                caps: a.caps.clone(),
                in_new: true,
            });
        }
    }
    merge(out)
}

fn merge(list: Vec<Reach>) -> Vec<Reach> {
    let mut merged: Vec<Reach> = Vec::new();
    let mut index: HashMap<(&'static str, String), usize> = HashMap::new();
    for r in list {
        match index.entry((r.kind, r.witness.clone())) {
            Entry::Occupied(e) => {
                let m = &mut merged[*e.get()];
                for a in r.access {
                    if !m.access.contains(&a) {
                        m.access.push(a);
                    }
                }
                m.caps.extend(r.caps);
                m.caps.sort_unstable();
                m.caps.dedup();
            }
            Entry::Vacant(e) => {
                e.insert(merged.len());
                merged.push(r);
            }
        }
    }
    merged
}

// ---------------------------------------------------------------- fs

/// One fs grant as declared: the region and the closed action set.
struct FsGrant<'p> {
    path: &'p str,
    glob: Glob,
    actions: FsActions,
    cap: CapId,
}

/// A policy's fs grants indexed by path. The grants whose region contains a
/// point are at the point's own path or at one of its ancestors, so a lookup
/// walks the point's ancestors (linear in its depth, not in the policy).
struct FsIndex<'p> {
    grants: Vec<FsGrant<'p>>,
    /// Per path: the actions of its `P`/`P/**` grants, of its `P/*` grants,
    /// and the grants themselves.
    by_path: HashMap<&'p str, (FsActions, FsActions, Vec<usize>)>,
}

impl<'p> FsIndex<'p> {
    fn new(p: &'p Policy) -> FsIndex<'p> {
        let grants: Vec<FsGrant<'p>> = p
            .caps
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match &c.capability {
                Capability::Fs { actions, path } => Some(FsGrant {
                    path: path.path.as_str(),
                    glob: path.glob,
                    actions: actions.closure(),
                    cap: i as CapId,
                }),
                _ => None,
            })
            .collect();
        let mut by_path: HashMap<&'p str, (FsActions, FsActions, Vec<usize>)> = HashMap::new();
        for (i, g) in grants.iter().enumerate() {
            let e = by_path.entry(g.path).or_default();
            if g.glob == Glob::Children {
                e.1 = e.1.union(g.actions);
            } else {
                e.0 = e.0.union(g.actions);
            }
            e.2.push(i);
        }
        FsIndex { grants, by_path }
    }

    /// Actions granted on the point `x`.
    fn actions_at(&self, x: &str) -> FsActions {
        ancestors_or_self(x).fold(FsActions::default(), |acc, a| match self.by_path.get(a) {
            // `x/*` does not contain `x` itself.
            Some((tree, _, _)) if a == x => acc.union(*tree),
            Some((tree, below, _)) => acc.union(*tree).union(*below),
            None => acc,
        })
    }

    /// The grants whose region contains `x`.
    fn grants_at<'a>(&'a self, x: &'a str) -> impl Iterator<Item = &'a FsGrant<'p>> + 'a {
        ancestors_or_self(x).flat_map(move |a| {
            self.by_path
                .get(a)
                .into_iter()
                .flat_map(|(_, _, ids)| ids.iter().map(|&i| &self.grants[i]))
                .filter(move |g| !(g.glob == Glob::Children && a == x))
        })
    }
}

/// `x`, then each ancestor directory of `x` (not `/`).
fn ancestors_or_self(x: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(x), |p| {
        p.rfind('/').filter(|&i| i > 0).map(|i| &p[..i])
    })
}

/// Fresh names, shortest first: `a`..`z`, then `a0`.. . Single letters come first so
/// witnesses read naturally (`/data/b` when `/data/a` is taken).
fn fresh_names() -> impl Iterator<Item = String> {
    let letters = ('a'..='z').map(String::from);
    let longer = (0..).flat_map(|n: u32| ('a'..='z').map(move |c| format!("{c}{n}")));
    letters.chain(longer)
}

/// Child names used directly below each directory by any grant of either policy.
fn used_children<'p>(indexes: [&FsIndex<'p>; 2]) -> HashMap<&'p str, HashSet<&'p str>> {
    let mut used: HashMap<&'p str, HashSet<&'p str>> = HashMap::new();
    for idx in indexes {
        for path in idx.by_path.keys() {
            let mut p: &'p str = path;
            while let Some(i) = p.rfind('/').filter(|&i| i > 0) {
                used.entry(&p[..i]).or_default().insert(&p[i + 1..]);
                p = &p[..i];
            }
        }
    }
    used
}

fn fs(old: &Policy, new: &Policy, other: &str, out: &mut Vec<Reach>) {
    let old_index = FsIndex::new(old);
    let new_index = FsIndex::new(new);
    let used = used_children([&old_index, &new_index]);
    let none = HashSet::new();
    // Grants with the same path, glob and actions have the same witness: decide once.
    let mut seen: HashSet<(&str, Glob, FsActions)> = HashSet::new();
    for g in &new_index.grants {
        if !seen.insert((g.path, g.glob, g.actions)) {
            continue;
        }
        let taken = used.get(g.path).unwrap_or(&none);
        let fresh = fresh_names()
            .find(|n| !taken.contains(n.as_str()))
            .expect("an unbounded supply of names");
        // Both points are always checked; the order only picks the nicer
        // witness: a child of a declared tree, the path itself for a plain
        // path (which may name a file).
        let child = format!("{}/{fresh}", g.path);
        let points = match g.glob {
            Glob::Children => vec![child],
            Glob::Recursive => vec![child, g.path.to_owned()],
            Glob::None => vec![g.path.to_owned(), child],
        };
        for x in points {
            let before = old_index.actions_at(&x);
            let missing: Vec<&str> = g
                .actions
                .names()
                .into_iter()
                .filter(|a| !before.contains(FsActions::from_name(a).expect("known action")))
                .collect();
            if missing.is_empty() {
                continue;
            }
            let mut caps: Vec<CapId> = new_index
                .grants_at(&x)
                .filter(|h| {
                    missing
                        .iter()
                        .any(|a| h.actions.contains(FsActions::from_name(a).expect("known")))
                })
                .map(|h| h.cap)
                .collect();
            caps.sort_unstable();
            let had = if before.is_empty() {
                "no access".to_owned()
            } else {
                format!("only {}", before.names().join(","))
            };
            out.push(Reach {
                kind: "fs",
                witness: x.clone(),
                access: missing.iter().map(|s| (*s).to_owned()).collect(),
                detail: format!("{} on {x}; {other} grants {had} there", missing.join(",")),
                caps,
                in_new: true,
            });
            break;
        }
    }
}

// ---------------------------------------------------------------- net

/// A concrete destination host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Point {
    Name(String),
    Ip(std::net::IpAddr),
}

/// A policy's net facts indexed by host, so that the facts containing a
/// point are found by looking up the point and its parent domains.
struct NetIndex<'p> {
    exact: HashMap<Point, Vec<Option<Port>>>,
    wild: HashMap<&'p str, Vec<Option<Port>>>,
    any: Vec<Option<Port>>,
}

impl<'p> NetIndex<'p> {
    fn new(p: &'p Policy) -> NetIndex<'p> {
        let mut idx = NetIndex {
            exact: HashMap::new(),
            wild: HashMap::new(),
            any: Vec::new(),
        };
        for f in &p.net {
            let ports = match &f.host {
                Host::Any => &mut idx.any,
                Host::Wildcard(d) => idx.wild.entry(d.as_str()).or_default(),
                Host::Name(n) => idx
                    .exact
                    .entry(Point::Name(n.as_str().to_owned()))
                    .or_default(),
                Host::V4(a) => idx.exact.entry(Point::Ip((*a).into())).or_default(),
                Host::V6(a) => idx.exact.entry(Point::Ip((*a).into())).or_default(),
            };
            ports.push(f.port);
        }
        idx
    }

    /// Ports of the grants that contain `x` other than `*`.
    fn specific<'a>(&'a self, x: &'a Point) -> impl Iterator<Item = Option<Port>> + 'a {
        let parents: Vec<&str> = match x {
            // `*.d` contains every name strictly below `d`.
            Point::Name(n) => n
                .match_indices('.')
                .filter(|(i, _)| *i > 0)
                .map(|(i, _)| &n[i + 1..])
                .collect(),
            Point::Ip(_) => Vec::new(),
        };
        let wild = parents
            .into_iter()
            .filter_map(|d| self.wild.get(d))
            .flatten()
            .copied();
        self.exact.get(x).into_iter().flatten().copied().chain(wild)
    }

    /// Ports open to `x`: `None` is every port.
    fn open_ports(&self, x: &Point) -> Option<BTreeSet<u16>> {
        let any_applies = match x {
            Point::Name(_) => true,
            Point::Ip(a) => !is_special(*a),
        };
        let from_any = self.any.iter().copied().filter(|_| any_applies);
        let mut open = BTreeSet::new();
        for p in self.specific(x).chain(from_any) {
            open.insert(p?.get());
        }
        Some(open)
    }
}

/// Every DNS label either policy writes (for choosing fresh ones).
fn labels(policies: [&Policy; 2]) -> HashSet<&str> {
    let mut set = HashSet::new();
    for p in policies {
        for n in &p.net {
            if let Host::Name(d) | Host::Wildcard(d) = &n.host {
                set.extend(d.as_str().split('.'));
            }
        }
    }
    set
}

/// A host of `h` that only grants containing all of `h` contain.
fn net_witness(h: &Host, old: &NetIndex<'_>, taken: &HashSet<&str>) -> Option<Point> {
    // `x`, `y`, `z`, then the rest: `x.example.com` reads as "any subdomain".
    let fresh = || {
        fresh_names()
            .skip(23)
            .take(3)
            .chain(fresh_names())
            .find(|n| !taken.contains(n.as_str()))
    };
    match h {
        Host::Name(n) => Some(Point::Name(n.as_str().to_owned())),
        Host::V4(a) => Some(Point::Ip((*a).into())),
        Host::V6(a) => Some(Point::Ip((*a).into())),
        Host::Wildcard(d) => {
            // Single-letter labels first: a long `d` leaves room for little more.
            let label = fresh()?;
            let name = format!("{label}.{}", d.as_str());
            // A name is at most 253 characters: a `*.d` with no room below has no members.
            (name.len() <= 253).then_some(Point::Name(name))
        }
        Host::Any => {
            // A name no grant but `*` contains: a readable one if the old
            // policy's names and wildcards leave one free, else a fresh label.
            let candidates = ["example.net", "example.org", "example.com"]
                .into_iter()
                .map(str::to_owned)
                .chain(fresh().map(|l| format!("{l}.{l}")));
            candidates
                .map(Point::Name)
                .find(|x| old.specific(x).next().is_none())
        }
    }
}

/// At most ten ports, for a sentence.
fn show_ports(open: &BTreeSet<u16>) -> String {
    let mut s: Vec<String> = open.iter().take(10).map(u16::to_string).collect();
    if open.len() > 10 {
        s.push(format!("... ({} in all)", open.len()));
    }
    s.join(",")
}

fn show_point(x: &Point, port: u16) -> String {
    match x {
        Point::Name(n) => format!("{n}:{port}"),
        Point::Ip(std::net::IpAddr::V4(a)) => format!("{a}:{port}"),
        Point::Ip(std::net::IpAddr::V6(a)) => format!("[{a}]:{port}"),
    }
}

fn net(old: &Policy, new: &Policy, other: &str, out: &mut Vec<Reach>) {
    let taken = labels([old, new]);
    let index = NetIndex::new(old);
    for f in &new.net {
        let Some(x) = net_witness(&f.host, &index, &taken) else {
            continue;
        };
        // Ports the old policy opens to x: None = every port.
        let open = index.open_ports(&x);
        let Some(open) = open else { continue };
        let (port, detail) = match f.port {
            Some(p) if open.contains(&p.get()) => continue,
            Some(p) if open.is_empty() => (p.get(), format!("{other} opens no port to this host")),
            Some(p) => (
                p.get(),
                format!(
                    "{other} opens only port(s) {} to this host",
                    show_ports(&open)
                ),
            ),
            None => {
                let Some(p) = [443, 80]
                    .into_iter()
                    .chain(1..=u16::MAX)
                    .find(|p| !open.contains(p))
                else {
                    continue;
                };
                let detail = if open.is_empty() {
                    format!("every port; {other} opens none to this host")
                } else {
                    format!(
                        "every port; {other} opens only port(s) {} to this host",
                        show_ports(&open)
                    )
                };
                (p, detail)
            }
        };
        let witness = show_point(&x, port);
        out.push(Reach {
            kind: "net",
            detail,
            witness,
            access: vec!["connect".into()],
            caps: f.caps.clone(),
            in_new: true,
        });
    }
}

// ---------------------------------------------------------------- exec, env, ipc, clock

fn exec(old: &Policy, new: &Policy, other: &str, out: &mut Vec<Reach>) {
    let by_name: HashMap<&str, &crate::ir::ExecFact> =
        old.exec.iter().map(|o| (o.binary.as_str(), o)).collect();
    for f in &new.exec {
        let before = by_name.get(f.binary.as_str()).copied();
        if before.is_none() {
            out.push(Reach {
                kind: "exec",
                witness: f.binary.to_string(),
                access: vec!["spawn".into()],
                detail: format!("{other} does not allow running {}", f.binary),
                caps: f.caps.clone(),
                in_new: true,
            });
        }
        if f.nested && !before.is_some_and(|o| o.nested) {
            let caps = f
                .caps
                .iter()
                .copied()
                .filter(|&c| {
                    matches!(
                        new.caps[c as usize].capability,
                        Capability::Exec {
                            nested_sandbox: true,
                            ..
                        }
                    )
                })
                .collect();
            out.push(Reach {
                kind: "nestedSandbox",
                witness: f.binary.to_string(),
                access: vec!["nestedSandbox".into()],
                detail: format!(
                    "{} may create its own sandbox (user namespaces allowed); {other} does not allow it",
                    f.binary
                ),
                caps,
                in_new: true,
            });
        }
    }
}

/// Whether a variable is injected: declared `inject`, or DISPLAY for an x11
/// connection (the fact's own flag depends on declaration order there).
fn injected(p: &Policy, f: &crate::ir::EnvFact) -> bool {
    f.inject
        || f.caps.iter().any(|&c| {
            matches!(
                p.caps[c as usize].capability,
                Capability::Ipc {
                    endpoint: crate::capability::Endpoint::X11
                } | Capability::Env {
                    actions: crate::capability::EnvActions { inject: true, .. },
                    ..
                }
            )
        })
}

fn env(old: &Policy, new: &Policy, other: &str, out: &mut Vec<Reach>) {
    let by_name: HashMap<&str, &crate::ir::EnvFact> =
        old.env.iter().map(|o| (o.name.as_str(), o)).collect();
    for f in &new.env {
        let before = by_name.get(f.name.as_str()).copied();
        let inject = injected(new, f);
        let access = match before {
            None if inject => "inject",
            None => "read",
            Some(o) if inject && !injected(old, o) => "inject",
            Some(_) => continue,
        };
        out.push(Reach {
            kind: "env",
            witness: f.name.to_string(),
            access: vec![access.into()],
            detail: match before {
                None => format!("{other} does not pass {} to the server", f.name),
                Some(_) => format!("{other} only reads {}", f.name),
            },
            caps: f.caps.clone(),
            in_new: true,
        });
    }
}

fn ipc(old: &Policy, new: &Policy, other: &str, out: &mut Vec<Reach>) {
    let endpoints: HashSet<&crate::capability::Endpoint> =
        old.ipc.iter().map(|o| &o.endpoint).collect();
    for f in &new.ipc {
        if !endpoints.contains(&f.endpoint) {
            out.push(Reach {
                kind: "ipc",
                witness: f.endpoint.to_string(),
                access: vec!["connect".into()],
                detail: format!("{other} does not connect to {}", f.endpoint),
                caps: f.caps.clone(),
                in_new: true,
            });
        }
    }
}

fn clock(old: &Policy, new: &Policy, other: &str, out: &mut Vec<Reach>) {
    let rank = |p: &Policy| p.clock.as_ref().map(|c| c.source);
    if let Some(c) = &new.clock {
        let wider = match rank(old) {
            None => true,
            Some(o) => o < c.source,
        };
        if wider {
            out.push(Reach {
                kind: "clock",
                witness: c.source.as_str().to_owned(),
                access: vec![c.source.as_str().to_owned()],
                detail: match (c.source, rank(old)) {
                    (ClockSource::Tzdata, Some(_)) => {
                        format!("time zone data; {other} declares only the system clock")
                    }
                    (s, _) => format!("clock:{}; {other} declares no clock", s.as_str()),
                },
                caps: c.caps.clone(),
                in_new: true,
            });
        }
    }
}

/// Assertions of `old` that `new` drops or changes: the host promised them.
fn assertions_dropped(old: &Policy, new: &Policy, out: &mut Vec<Reach>) {
    let new_by_id: BTreeMap<&str, _> = new.assertions.iter().map(|a| (a.id.as_str(), a)).collect();
    for a in &old.assertions {
        match new_by_id.get(a.id.as_str()) {
            None => out.push(Reach {
                kind: "assert",
                witness: a.id.to_string(),
                access: vec!["dropped".into()],
                detail: format!("NEW drops the host's promise {:?}", a.description),
                // The old policy's capabilities: the new one has none for it.
                caps: a.caps.clone(),
                in_new: false,
            }),
            Some(n) if n.description != a.description => out.push(Reach {
                kind: "assert",
                witness: a.id.to_string(),
                access: vec!["changed".into()],
                detail: format!(
                    "NEW changes the host's promise from {:?} to {:?}",
                    a.description, n.description
                ),
                caps: n.caps.clone(),
                in_new: true,
            }),
            Some(_) => {}
        }
    }
}
