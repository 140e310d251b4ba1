//! `cap-duplicate` and `cap-subsumed`: capabilities that grant nothing beyond
//! another one the same tool (or every tool, through serverCapabilities) has.
//!
//! Both are indexed, not pairwise: a large manifest has tens of thousands of
//! capabilities, and comparing every pair would make lint quadratic. Duplicates
//! are found by a canonical key of the grant; subsumption looks up only the
//! places a wider grant can be: for fs the declared ancestors of the path (a
//! stack over the paths in segment order, as [`crate::ir`] folds them), for
//! net the same host on any port, `*` and the wildcards over the name's
//! suffixes, for env, exec and clock the same name.

use super::{Context, Hit};
use crate::capability::{Capability, ClockSource, FsActions, Glob, Host};
use crate::ir::{self, CapId, FoldMap};

/// The list a capability is declared in: a tool's index, `None` for
/// serverCapabilities. A capability is compared with its own list and with
/// serverCapabilities, which every tool shares; never with another tool's.
type List = Option<usize>;

fn lists(own: List) -> impl DoubleEndedIterator<Item = List> {
    std::iter::once(own).chain(own.is_some().then_some(None))
}

/// A canonical form of the grant: two capabilities have the same key exactly
/// when they grant the same (fs actions after their implications, so
/// `fs:write:/x` is `fs:read,write:/x`).
fn grant_key(c: &Capability) -> String {
    match c {
        Capability::Fs { actions, path } => {
            format!("fs {:?} {:?} {}", actions.closure(), path.glob, path.path)
        }
        other => format!("{other:?}"),
    }
}

/// The first capability of each distinct grant per list, and for every other
/// one the capability it repeats (a serverCapabilities one first).
fn first_of_each(ctx: &Context<'_>) -> (Vec<CapId>, Vec<(CapId, CapId)>) {
    let mut first: FoldMap<(List, String), CapId> = FoldMap::default();
    let mut distinct = Vec::new();
    let mut repeats = Vec::new();
    for (id, info) in ctx.policy.caps.iter().enumerate() {
        let id = id as CapId;
        if matches!(info.capability, Capability::Assert { .. }) {
            continue;
        }
        let key = grant_key(&info.capability);
        let earlier = lists(info.tool)
            .rev()
            .find_map(|l| first.get(&(l, key.clone())).copied());
        match earlier {
            Some(o) => repeats.push((id, o)),
            None => distinct.push(id),
        }
        first.entry((info.tool, key)).or_insert(id);
    }
    (distinct, repeats)
}

pub fn cap_duplicate(ctx: &Context<'_>, out: &mut Vec<Hit>) {
    let (_, repeats) = first_of_each(ctx);
    for (id, o) in repeats {
        let server = ctx.policy.caps[o as usize].tool.is_none()
            && ctx.policy.caps[id as usize].tool.is_some();
        out.push(Hit {
            cap: id,
            message: if server {
                "this capability repeats one of serverCapabilities".to_owned()
            } else {
                "this capability repeats an earlier one of the same list".to_owned()
            },
            related: Some(o),
        });
    }
}

fn subsumed_hit(ctx: &Context<'_>, id: CapId, by: CapId) -> Hit {
    let by_server =
        ctx.policy.caps[by as usize].tool.is_none() && ctx.policy.caps[id as usize].tool.is_some();
    Hit {
        cap: id,
        message: format!(
            "already granted by a wider capability{}",
            if by_server {
                " of serverCapabilities"
            } else {
                " of the same list"
            }
        ),
        related: Some(by),
    }
}

pub fn cap_subsumed(ctx: &Context<'_>, out: &mut Vec<Hit>) {
    let (distinct, _) = first_of_each(ctx);
    fs_subsumed(ctx, &distinct, out);
    other_subsumed(ctx, &distinct, out);
}

/// Whether an fs grant declared at a strict ancestor `w` of `n`'s path, `depth`
/// segments above it, covers `n`. A path without a glob binds the whole
/// directory (it is one, since something lies below it); `/d/*` covers the
/// children of `/d` named without a glob.
fn fs_ancestor_covers(w: (FsActions, Glob), n: (FsActions, Glob), depth: usize) -> bool {
    w.0.contains(n.0)
        && match w.1 {
            Glob::Recursive | Glob::None => true,
            Glob::Children => depth == 1 && n.1 == Glob::None,
        }
}

/// Whether an fs grant at the same path covers another (different) one.
fn fs_same_path_covers(w: (FsActions, Glob), n: (FsActions, Glob)) -> bool {
    w.0.contains(n.0)
        && match (w.1, n.1) {
            (Glob::Recursive, _) => true,
            // `/d/*` and `/d/**` say /d is a directory, which `/d` binds whole.
            (Glob::None, Glob::Children | Glob::Recursive) => true,
            (Glob::None, Glob::None) => true,
            (Glob::Children, g) => g == Glob::Children,
        }
}

/// An fs grant: actions after their implications, and the glob.
type FsGrant = (FsActions, Glob);

/// A declared fs path and its distinct grants per list.
struct Level<'a> {
    path: &'a str,
    segments: usize,
    grants: FoldMap<List, Vec<(CapId, FsGrant)>>,
}

fn is_strict_ancestor(a: &str, b: &str) -> bool {
    if a == "/" {
        return b != "/";
    }
    b.len() > a.len() && b.starts_with(a) && b.as_bytes()[a.len()] == b'/'
}

fn fs_subsumed(ctx: &Context<'_>, distinct: &[CapId], out: &mut Vec<Hit>) {
    let mut items: Vec<(CapId, List, &str, FsGrant)> = distinct
        .iter()
        .filter_map(|&id| {
            let info = &ctx.policy.caps[id as usize];
            match &info.capability {
                Capability::Fs { actions, path } => Some((
                    id,
                    info.tool,
                    path.path.as_str(),
                    (actions.closure(), path.glob),
                )),
                _ => None,
            }
        })
        .collect();
    // Segment order (`/` as NUL): every directory precedes what lies below it.
    items.sort_by_cached_key(|&(id, _, p, _)| (p.replace('/', "\0"), id));
    let mut stack: Vec<Level<'_>> = Vec::new();
    for group in items.chunk_by(|a, b| a.2 == b.2) {
        let path = group[0].2;
        while stack
            .last()
            .is_some_and(|top| !is_strict_ancestor(top.path, path))
        {
            stack.pop();
        }
        let segments = path.split('/').filter(|s| !s.is_empty()).count();
        let mut level = Level {
            path,
            segments,
            grants: FoldMap::default(),
        };
        for &(id, list, _, grant) in group {
            level.grants.entry(list).or_default().push((id, grant));
        }
        for &(id, list, _, grant) in group {
            let same = lists(list).find_map(|l| {
                level.grants.get(&l)?.iter().find_map(|&(o, w)| {
                    (o != id && w != grant && fs_same_path_covers(w, grant)).then_some(o)
                })
            });
            let above = || {
                stack.iter().rev().find_map(|a| {
                    lists(list).find_map(|l| {
                        a.grants.get(&l)?.iter().find_map(|&(o, w)| {
                            fs_ancestor_covers(w, grant, segments - a.segments).then_some(o)
                        })
                    })
                })
            };
            if let Some(by) = same.or_else(above) {
                out.push(subsumed_hit(ctx, id, by));
            }
        }
        stack.push(level);
    }
}

/// The lookup key of a non-fs grant's place: host and port, env or exec name, clock.
fn place_key(c: &Capability) -> Option<String> {
    Some(match c {
        Capability::Net { host, port } => net_key(host, port.map(|p| p.get())),
        Capability::Env { name, .. } => format!("env {name}"),
        Capability::Exec { binary, .. } => format!("exec {binary}"),
        Capability::Clock { .. } => "clock".to_owned(),
        _ => return None,
    })
}

fn net_key(host: &Host, port: Option<u16>) -> String {
    let port = port.map_or("*".to_owned(), |p| p.to_string());
    match host {
        Host::Wildcard(base) => format!("netw {} {port}", base.as_str()),
        h => format!("net {h} {port}"),
    }
}

/// The places a grant covering `c` can be declared at.
fn wider_places(c: &Capability) -> Vec<String> {
    match c {
        Capability::Net { host, port } => {
            let mut ports = vec![None];
            if let Some(p) = port {
                ports.push(Some(p.get()));
            }
            let mut keys = Vec::new();
            for p in ports {
                keys.push(net_key(host, p));
                keys.push(net_key(&Host::Any, p));
                if let Host::Name(x) | Host::Wildcard(x) = host {
                    // `*.b.c` and `*.c` for `a.b.c`, and for `*.a.b.c`.
                    let mut rest = x.as_str();
                    while let Some((_, tail)) = rest.split_once('.') {
                        keys.push(format!(
                            "netw {tail} {}",
                            p.map_or("*".to_owned(), |p| p.to_string())
                        ));
                        rest = tail;
                    }
                    if matches!(host, Host::Wildcard(_)) {
                        keys.push(format!(
                            "netw {} {}",
                            x.as_str(),
                            p.map_or("*".to_owned(), |p| p.to_string())
                        ));
                    }
                }
            }
            keys
        }
        other => place_key(other).into_iter().collect(),
    }
}

fn other_subsumed(ctx: &Context<'_>, distinct: &[CapId], out: &mut Vec<Hit>) {
    let mut at: FoldMap<(List, String), Vec<CapId>> = FoldMap::default();
    for &id in distinct {
        let info = &ctx.policy.caps[id as usize];
        if let Some(k) = place_key(&info.capability) {
            at.entry((info.tool, k)).or_default().push(id);
        }
    }
    for &id in distinct {
        let info = &ctx.policy.caps[id as usize];
        if place_key(&info.capability).is_none() {
            continue;
        }
        let by = wider_places(&info.capability).into_iter().find_map(|k| {
            lists(info.tool).find_map(|l| {
                at.get(&(l, k.clone()))?.iter().copied().find(|&o| {
                    o != id && covers(&ctx.policy.caps[o as usize].capability, &info.capability)
                })
            })
        });
        if let Some(by) = by {
            out.push(subsumed_hit(ctx, id, by));
        }
    }
}

/// Whether `wide` grants everything `narrow` does, for net, env, exec and
/// clock grants that are not the same grant.
fn covers(wide: &Capability, narrow: &Capability) -> bool {
    if grant_key(wide) == grant_key(narrow) {
        return false;
    }
    match (wide, narrow) {
        (Capability::Net { host: wh, port: wp }, Capability::Net { host: nh, port: np }) => {
            (wp.is_none() || wp == np) && host_covers(wh, nh)
        }
        (
            Capability::Env {
                actions: wa,
                name: wn,
            },
            Capability::Env {
                actions: na,
                name: nn,
            },
        ) => wn == nn && (wa.read || !na.read) && (wa.inject || !na.inject),
        (
            Capability::Exec {
                binary: wb,
                nested_sandbox: wn,
            },
            Capability::Exec {
                binary: nb,
                nested_sandbox: nn,
            },
        ) => wb == nb && (*wn || !*nn),
        (Capability::Clock { source: ws }, Capability::Clock { source: ns }) => {
            *ws == ClockSource::Tzdata || ws == ns
        }
        _ => false,
    }
}

/// Whether every destination `n` names is one `w` names. `*` is every public
/// destination, so it never covers a special-range address.
fn host_covers(w: &Host, n: &Host) -> bool {
    let ip = |h: &Host| match h {
        Host::V4(a) => Some(std::net::IpAddr::V4(*a)),
        Host::V6(a) => Some(std::net::IpAddr::V6(*a)),
        _ => None,
    };
    match (w, n) {
        (Host::Any, Host::Any | Host::Name(_) | Host::Wildcard(_)) => true,
        (Host::Any, h) => ip(h).is_some_and(|a| !ir::is_special(a)),
        (Host::Wildcard(b), Host::Name(x) | Host::Wildcard(x)) => {
            x.as_str().ends_with(&format!(".{}", b.as_str()))
        }
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_ancestry_is_by_segment() {
        assert!(is_strict_ancestor("/", "/a"));
        assert!(is_strict_ancestor("/a", "/a/b"));
        assert!(!is_strict_ancestor("/a", "/a"));
        assert!(!is_strict_ancestor("/a", "/ab"));
        assert!(!is_strict_ancestor("/a/b", "/a"));
    }
}
