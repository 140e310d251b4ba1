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

use std::collections::{BTreeMap, BTreeSet};

use crate::capability::{Capability, ClockSource, FsActions, Glob, Host};
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
    for a in &new.assertions {
        if !old.assertions.iter().any(|o| o.id == a.id) {
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
    for r in list {
        match merged
            .iter_mut()
            .find(|m| m.kind == r.kind && m.witness == r.witness)
        {
            Some(m) => {
                for a in r.access {
                    if !m.access.contains(&a) {
                        m.access.push(a);
                    }
                }
                m.caps.extend(r.caps);
                m.caps.sort_unstable();
                m.caps.dedup();
            }
            None => merged.push(r),
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

fn fs_grants(p: &Policy) -> Vec<FsGrant<'_>> {
    p.caps
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
        .collect()
}

/// `a` is `b` or an ancestor directory of `b`.
fn ancestor_or_self(a: &str, b: &str) -> bool {
    b == a || (b.len() > a.len() && b.starts_with(a) && b.as_bytes()[a.len()] == b'/')
}

/// Whether the grant's region contains the point `x` (a normalised path).
fn fs_contains(g: &FsGrant<'_>, x: &str) -> bool {
    match g.glob {
        Glob::Children => x != g.path && ancestor_or_self(g.path, x),
        Glob::None | Glob::Recursive => ancestor_or_self(g.path, x),
    }
}

/// Actions a policy grants on one point.
fn fs_actions_at(grants: &[FsGrant<'_>], x: &str) -> FsActions {
    grants
        .iter()
        .filter(|g| fs_contains(g, x))
        .fold(FsActions::default(), |a, g| a.union(g.actions))
}

/// Fresh names, shortest first: `a`..`z`, then `a0`.. . Single letters come first so
/// witnesses read naturally (`/data/b` when `/data/a` is taken).
fn fresh_names() -> impl Iterator<Item = String> {
    let letters = ('a'..='z').map(String::from);
    let longer = (0..).flat_map(|n: u32| ('a'..='z').map(move |c| format!("{c}{n}")));
    letters.chain(longer)
}

/// A child name of `dir` that no path of either policy uses directly below `dir`.
fn fresh_child(dir: &str, used: &[&str]) -> String {
    let taken: BTreeSet<&str> = used
        .iter()
        .filter_map(|p| {
            let rest = p.strip_prefix(dir)?.strip_prefix('/')?;
            Some(rest.split('/').next().unwrap_or(rest))
        })
        .collect();
    fresh_names()
        .find(|n| !taken.contains(n.as_str()))
        .expect("an unbounded supply of names")
}

fn fs(old: &Policy, new: &Policy, other: &str, out: &mut Vec<Reach>) {
    let old_grants = fs_grants(old);
    let new_grants = fs_grants(new);
    let used: Vec<&str> = old_grants
        .iter()
        .chain(&new_grants)
        .map(|g| g.path)
        .collect();
    for g in &new_grants {
        let child = format!("{}/{}", g.path, fresh_child(g.path, &used));
        let mut points = vec![child];
        if g.glob != Glob::Children {
            points.push(g.path.to_owned());
        }
        for x in points {
            let before = fs_actions_at(&old_grants, &x);
            let missing: Vec<&str> = g
                .actions
                .names()
                .into_iter()
                .filter(|a| !before.contains(FsActions::from_name(a).expect("known action")))
                .collect();
            if missing.is_empty() {
                continue;
            }
            let caps = new_grants
                .iter()
                .filter(|h| {
                    fs_contains(h, &x)
                        && missing
                            .iter()
                            .any(|a| h.actions.contains(FsActions::from_name(a).expect("known")))
                })
                .map(|h| h.cap)
                .collect();
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
#[derive(Debug, Clone, PartialEq, Eq)]
enum Point {
    Name(String),
    Ip(std::net::IpAddr),
}

fn net_contains(h: &Host, x: &Point) -> bool {
    match (h, x) {
        (Host::Any, Point::Name(_)) => true,
        (Host::Any, Point::Ip(a)) => !is_special(*a),
        (Host::Wildcard(d), Point::Name(n)) => n
            .strip_suffix(d.as_str())
            .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        (Host::Name(m), Point::Name(n)) => m.as_str() == n,
        (Host::V4(a), Point::Ip(b)) => std::net::IpAddr::V4(*a) == *b,
        (Host::V6(a), Point::Ip(b)) => std::net::IpAddr::V6(*a) == *b,
        _ => false,
    }
}

/// Every DNS label either policy writes (for choosing fresh ones).
fn labels(policies: [&Policy; 2]) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for p in policies {
        for n in &p.net {
            if let Host::Name(d) | Host::Wildcard(d) = &n.host {
                set.extend(d.as_str().split('.').map(str::to_owned));
            }
        }
    }
    set
}

/// A host of `h` that only grants containing all of `h` contain.
fn net_witness(h: &Host, old: &Policy, taken: &BTreeSet<String>) -> Option<Point> {
    // `x`, `y`, `z`, then the rest: `x.example.com` reads as "any subdomain".
    let fresh = || {
        fresh_names()
            .skip(23)
            .take(3)
            .chain(fresh_names())
            .find(|n| !taken.contains(n))
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
            candidates.map(Point::Name).find(|x| {
                !old.net
                    .iter()
                    .any(|o| o.host != Host::Any && net_contains(&o.host, x))
            })
        }
    }
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
    for f in &new.net {
        let Some(x) = net_witness(&f.host, old, &taken) else {
            continue;
        };
        // Ports the old policy opens to x: None = every port.
        let mut open: Option<BTreeSet<u16>> = Some(BTreeSet::new());
        for o in old.net.iter().filter(|o| net_contains(&o.host, &x)) {
            match (o.port, open.as_mut()) {
                (None, _) => open = None,
                (Some(p), Some(set)) => {
                    set.insert(p.get());
                }
                (Some(_), None) => {}
            }
        }
        let Some(open) = open else { continue };
        let (port, detail) = match f.port {
            Some(p) if open.contains(&p.get()) => continue,
            Some(p) if open.is_empty() => (p.get(), format!("{other} opens no port to this host")),
            Some(p) => (
                p.get(),
                format!(
                    "{other} opens only port(s) {} to this host",
                    open.iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
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
                        open.iter()
                            .map(u16::to_string)
                            .collect::<Vec<_>>()
                            .join(",")
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
    for f in &new.exec {
        let before = old.exec.iter().find(|o| o.binary == f.binary);
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
    for f in &new.env {
        let before = old.env.iter().find(|o| o.name == f.name);
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
    for f in &new.ipc {
        if !old.ipc.iter().any(|o| o.endpoint == f.endpoint) {
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
