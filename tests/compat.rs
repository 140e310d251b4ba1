//! Compatibility with the reference tool's goldens (`tests/reference/`, copied verbatim
//! from the reference tool's fixtures; see tests/reference/README.md).
//!
//! For every upstream manifest and target:
//! - `provenance`, `egress`, `envInjections` and `assertions` are identical to the golden;
//! - on squid/nftables, the allowed destinations (parsed from the config text) and the
//!   `rule` objects of `unenforceable[]` are identical;
//! - every other difference (argv groups, config lines, notes, fields) must be explained
//!   by one of the named deviations in [`DEVIATIONS`], each of which is documented in
//!   `docs/compatibility.md` under its id. A new, unexplained difference fails the test.
//!
//! `CAPGATE_COMPAT_VERBOSE=1 cargo test --test compat -- --nocapture` prints every
//! difference with the deviations that explain it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use capgate::assets::Assets;
use capgate::compile::{Compiler, Settings};
use capgate::diag::{Code, Diagnostic};
use serde_json::Value;

const MANIFESTS: [&str; 4] = ["fetch", "filesystem", "github", "puppeteer"];
const TARGETS: [&str; 4] = ["bwrap", "docker", "squid", "nftables"];

/// SPEC §6: the reference's manifest hashes of its four fixtures.
const HASHES: [(&str, &str); 4] = [
    (
        "fetch",
        "sha256:4640312ccf5624e8705172f1ba19683a5d4094d9246b4b9f0d3193dbca554622",
    ),
    (
        "filesystem",
        "sha256:c11fb317f65f860e3b7cdc0ebd4bc384242d11c0aef445f97bde8e5f0f0af5a0",
    ),
    (
        "github",
        "sha256:d8da1f29408ab8473e2b5e67fd79b33e0996479e5181a7d2954e2d35f4a30b81",
    ),
    (
        "puppeteer",
        "sha256:77ed07deea05db7bc7f7a05ee4da6cc7effe2b4d88832620a0c27a9cb8ba164e",
    ),
];

// ------------------------------------------------------------------ inputs

fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference")
}

fn manifest_path(manifest: &str) -> PathBuf {
    reference_dir().join(format!("manifests/{manifest}.json"))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The golden of a manifest for a target, if the reference shipped one.
fn golden(manifest: &str, target: &str) -> Option<Value> {
    let dir = match target {
        "squid" | "nftables" => format!("egress/{target}"),
        t => t.to_owned(),
    };
    let path = reference_dir().join(format!("policies/{dir}/{manifest}.json"));
    path.exists().then(|| read_json(&path))
}

/// The reference's normalised policy of a manifest, as its bwrap golden shows it
/// (`egress`, `envInjections`, `assertions`, `provenance`).
fn reference_policy(manifest: &str) -> Value {
    golden(manifest, "bwrap").expect("every upstream manifest has a bwrap golden")
}

/// Every capability string of a manifest, in declaration order.
fn capability_strings(manifest: &str) -> Vec<String> {
    let m = read_json(&manifest_path(manifest));
    let mut out: Vec<String> = Vec::new();
    let server = m["serverCapabilities"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let tools = m["tools"].as_array().cloned().unwrap_or_default();
    for c in server.iter().chain(
        tools
            .iter()
            .flat_map(|t| t["capabilities"].as_array().unwrap().iter()),
    ) {
        out.push(c.as_str().unwrap().to_owned());
    }
    out
}

fn render(diags: &[Diagnostic]) -> String {
    diags.iter().map(Diagnostic::render).collect()
}

/// Compiles an upstream manifest; the egress targets permissively, as the goldens were made.
fn try_compile(manifest: &str, target: &str, permissive: bool) -> Result<Value, Vec<Diagnostic>> {
    let compiler = Compiler::new(&Assets::default(), target).expect("built-in target loads");
    let path = manifest_path(manifest);
    let bytes = std::fs::read(&path).unwrap();
    let out = compiler.compile(
        &format!("tests/reference/manifests/{manifest}.json"),
        &bytes,
        &Settings {
            permissive,
            set: vec![],
        },
    )?;
    Ok(serde_json::from_str(&out.artifact.to_json(false)).expect("artifact is JSON"))
}

fn compile(manifest: &str, target: &str) -> Value {
    let permissive = matches!(target, "squid" | "nftables");
    try_compile(manifest, target, permissive)
        .unwrap_or_else(|d| panic!("{manifest} × {target} does not compile:\n{}", render(&d)))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
        .iter()
        .map(|s| s.as_str().expect("array of strings").to_owned())
        .collect()
}

// ------------------------------------------------------------------ differences

/// One difference between a golden and capgate's output.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Diff {
    /// A field capgate adds (path like `unenforceable[].capabilities`).
    FieldAdded(String),
    FieldRemoved(String),
    /// The fields both have appear in another order.
    FieldOrder(Vec<String>, Vec<String>),
    /// A field whose value must be identical is not.
    ValueChanged {
        field: String,
        golden: String,
        ours: String,
    },
    /// An argv option (flag and its operands) only in the golden / only in capgate's output.
    ArgvRemoved(Vec<String>),
    ArgvAdded(Vec<String>),
    NoteRemoved(String),
    NoteAdded(String),
    /// A config line only in the golden / only in capgate's output.
    LineRemoved(String),
    LineAdded(String),
    /// An `unenforceable[]` entry capgate adds (its JSON).
    UnenforceableAdded(String),
    UnenforceableRemoved(String),
    /// The reason of a net `unenforceable[]` entry changed.
    ReasonChanged {
        golden: String,
        ours: String,
    },
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diff::FieldAdded(p) => write!(f, "field added: {p}"),
            Diff::FieldRemoved(p) => write!(f, "field removed: {p}"),
            Diff::FieldOrder(g, o) => write!(f, "field order: golden {g:?}, ours {o:?}"),
            Diff::ValueChanged {
                field,
                golden,
                ours,
            } => {
                write!(
                    f,
                    "{field} changed:\n      golden: {golden}\n      ours:   {ours}"
                )
            }
            Diff::ArgvRemoved(g) => write!(f, "argv removed: {}", g.join(" ")),
            Diff::ArgvAdded(g) => write!(f, "argv added: {}", g.join(" ")),
            Diff::NoteRemoved(n) => write!(f, "note removed: {n}"),
            Diff::NoteAdded(n) => write!(f, "note added: {n}"),
            Diff::LineRemoved(l) => write!(f, "config line removed: {l}"),
            Diff::LineAdded(l) => write!(f, "config line added: {l}"),
            Diff::UnenforceableAdded(u) => write!(f, "unenforceable entry added: {u}"),
            Diff::UnenforceableRemoved(u) => write!(f, "unenforceable entry removed: {u}"),
            Diff::ReasonChanged { golden, ours } => {
                write!(
                    f,
                    "unenforceable reason changed:\n      golden: {golden}\n      ours:   {ours}"
                )
            }
        }
    }
}

/// Elements only in `a` and only in `b`, by longest common subsequence (order matters).
fn lcs_diff<T: PartialEq + Clone>(a: &[T], b: &[T]) -> (Vec<T>, Vec<T>) {
    let (n, m) = (a.len(), b.len());
    let mut dp = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            dp[i][j] = if a[i] == b[j] {
                dp[i + 1][j + 1] + 1
            } else {
                dp[i + 1][j].max(dp[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    while i < n && j < m {
        if a[i] == b[j] {
            i += 1;
            j += 1;
        } else if dp[i + 1][j] >= dp[i][j + 1] {
            removed.push(a[i].clone());
            i += 1;
        } else {
            added.push(b[j].clone());
            j += 1;
        }
    }
    removed.extend_from_slice(&a[i..]);
    added.extend_from_slice(&b[j..]);
    (removed, added)
}

/// Splits an argv into options: a `--flag` followed by its operands.
fn argv_groups(argv: &[String]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for a in argv {
        match out.last_mut() {
            Some(g) if !a.starts_with("--") => g.push(a.clone()),
            _ => out.push(vec![a.clone()]),
        }
    }
    out
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .expect("artifact is an object")
        .keys()
        .cloned()
        .collect()
}

/// Net `unenforceable[]` entries have the reference's rule shape; capgate's entries for
/// other kinds carry `rule.kind`.
fn is_net_entry(e: &Value) -> bool {
    e["rule"].get("kind").is_none()
}

/// Every difference between a golden and capgate's artifact.
fn differences(golden: &Value, ours: &Value) -> Vec<Diff> {
    let mut diffs = Vec::new();
    let (gk, ok) = (keys(golden), keys(ours));
    for k in ok.iter().filter(|k| !gk.contains(k)) {
        diffs.push(Diff::FieldAdded(k.clone()));
    }
    for k in gk.iter().filter(|k| !ok.contains(k)) {
        diffs.push(Diff::FieldRemoved(k.clone()));
    }
    let common_g: Vec<String> = gk.iter().filter(|k| ok.contains(k)).cloned().collect();
    let common_o: Vec<String> = ok.iter().filter(|k| gk.contains(k)).cloned().collect();
    if common_g != common_o {
        diffs.push(Diff::FieldOrder(common_g.clone(), common_o));
    }
    for k in &common_g {
        let (g, o) = (&golden[k], &ours[k]);
        match k.as_str() {
            "argv" => {
                let (removed, added) =
                    lcs_diff(&argv_groups(&strings(g)), &argv_groups(&strings(o)));
                diffs.extend(removed.into_iter().map(Diff::ArgvRemoved));
                diffs.extend(added.into_iter().map(Diff::ArgvAdded));
            }
            "notes" => {
                let (removed, added) = lcs_diff(&strings(g), &strings(o));
                diffs.extend(removed.into_iter().map(Diff::NoteRemoved));
                diffs.extend(added.into_iter().map(Diff::NoteAdded));
            }
            "config" => {
                let lines = |v: &Value| -> Vec<String> {
                    v.as_str().unwrap().split('\n').map(str::to_owned).collect()
                };
                let (removed, added) = lcs_diff(&lines(g), &lines(o));
                diffs.extend(removed.into_iter().map(Diff::LineRemoved));
                diffs.extend(added.into_iter().map(Diff::LineAdded));
            }
            "unenforceable" => diffs.extend(unenforceable_differences(g, o)),
            _ if g != o => diffs.push(Diff::ValueChanged {
                field: k.clone(),
                golden: g.to_string(),
                ours: o.to_string(),
            }),
            _ => {}
        }
    }
    diffs
}

fn unenforceable_differences(golden: &Value, ours: &Value) -> Vec<Diff> {
    let mut diffs = Vec::new();
    let g = golden.as_array().unwrap();
    let o = ours.as_array().unwrap();
    let ours_net: Vec<&Value> = o.iter().filter(|e| is_net_entry(e)).collect();
    let g_rules: Vec<&Value> = g.iter().map(|e| &e["rule"]).collect();
    let o_rules: Vec<&Value> = ours_net.iter().map(|e| &e["rule"]).collect();
    if g_rules != o_rules {
        diffs.push(Diff::ValueChanged {
            field: "unenforceable[].rule".to_owned(),
            golden: format!("{g_rules:?}"),
            ours: format!("{o_rules:?}"),
        });
    }
    for (ge, oe) in g.iter().zip(&ours_net) {
        if ge["reason"] != oe["reason"] {
            diffs.push(Diff::ReasonChanged {
                golden: ge["reason"].to_string(),
                ours: oe["reason"].to_string(),
            });
        }
    }
    // SPEC §11: every reference entry is `{rule, reason}` (also when the golden has none).
    let g_fields: BTreeSet<String> = g
        .iter()
        .flat_map(keys)
        .chain(["rule".to_owned(), "reason".to_owned()])
        .collect();
    let o_fields: BTreeSet<String> = o.iter().flat_map(keys).collect();
    for f in o_fields.difference(&g_fields) {
        diffs.push(Diff::FieldAdded(format!("unenforceable[].{f}")));
    }
    for f in g_fields.difference(&o_fields).filter(|_| !o.is_empty()) {
        diffs.push(Diff::FieldRemoved(format!("unenforceable[].{f}")));
    }
    for e in o.iter().filter(|e| !is_net_entry(e)) {
        diffs.push(Diff::UnenforceableAdded(e.to_string()));
    }
    for e in g.iter().filter(|e| !is_net_entry(e)) {
        diffs.push(Diff::UnenforceableRemoved(e.to_string()));
    }
    diffs
}

// ------------------------------------------------------------------ config semantics

/// The `http_access` rules and ACLs of a squid.conf.
#[derive(Debug, Default)]
struct Squid {
    /// name → (type, values); `-n` and other flags dropped.
    acls: BTreeMap<String, (String, Vec<String>)>,
    /// (allow?, acl names), in order.
    access: Vec<(bool, Vec<String>)>,
}

fn parse_squid(config: &str) -> Squid {
    let mut s = Squid::default();
    for line in config.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["acl", name, ty, rest @ ..] => {
                let values = rest
                    .iter()
                    .filter(|v| !v.starts_with('-'))
                    .map(|v| v.to_string());
                let e = s
                    .acls
                    .entry(name.to_string())
                    .or_insert_with(|| (ty.to_string(), Vec::new()));
                assert_eq!(e.0, *ty, "acl {name} redefined with another type");
                e.1.extend(values);
            }
            ["http_access", verdict, names @ ..] => s.access.push((
                *verdict == "allow",
                names.iter().map(|n| n.to_string()).collect(),
            )),
            _ => {}
        }
    }
    s
}

type Dest = (String, Option<u16>);

/// The (host, port) pairs a squid.conf allows requests to; `*` for any host,
/// `None` for any port. The reference allows CONNECT only, capgate every
/// method (DEV-SQUID-PLAIN-HTTP): the method is not part of a destination.
fn squid_allowed(s: &Squid) -> BTreeSet<Dest> {
    let mut out = BTreeSet::new();
    for (allow, names) in &s.access {
        if !allow {
            continue;
        }
        let mut hosts: Vec<String> = Vec::new();
        let mut ports: Vec<Option<u16>> = Vec::new();
        for n in names.iter().filter(|n| *n != "CONNECT" && *n != "all") {
            let (ty, values) = s
                .acls
                .get(n)
                .unwrap_or_else(|| panic!("acl {n} used but not defined"));
            match ty.as_str() {
                "dstdomain" | "dst" => hosts.extend(values.iter().map(|v| {
                    if v == "." {
                        "*".to_owned()
                    } else {
                        v.clone()
                    }
                })),
                "port" => ports.extend(values.iter().map(|p| Some(p.parse().unwrap()))),
                other => panic!("unexpected acl type {other} in an allow rule"),
            }
        }
        if hosts.is_empty() {
            hosts.push("*".to_owned());
        }
        if ports.is_empty() {
            ports.push(None);
        }
        for h in &hosts {
            for p in &ports {
                out.insert((h.clone(), *p));
            }
        }
    }
    out
}

/// The `dst` values of squid deny rules placed before the first allow.
fn squid_denied_first(s: &Squid) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (allow, names) in &s.access {
        if *allow {
            break;
        }
        for n in names {
            if let Some((ty, values)) = s.acls.get(n) {
                if ty == "dst" {
                    out.extend(values.iter().cloned());
                }
            }
        }
    }
    out
}

/// Elements of an nft anonymous set `{ a, b }` or a single value.
fn nft_values(text: &str) -> Vec<String> {
    text.trim_matches(|c| c == '{' || c == '}' || c == ' ')
        .split(',')
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// (accepted destinations, dropped ranges) of an nftables ruleset.
fn parse_nft(config: &str) -> (BTreeSet<Dest>, BTreeSet<String>) {
    let mut accepted = BTreeSet::new();
    let mut dropped = BTreeSet::new();
    for line in config.lines().map(str::trim) {
        let Some(rest) = line
            .strip_prefix("ip daddr ")
            .or_else(|| line.strip_prefix("ip6 daddr "))
        else {
            continue;
        };
        if let Some(set) = rest.strip_suffix(" drop") {
            dropped.extend(nft_values(set));
        } else if let Some(body) = rest.strip_suffix(" accept") {
            let (addr, port) = match body.split_once(" tcp dport ") {
                Some((a, "1-65535")) => (a, None),
                Some((a, p)) => (a, Some(p.parse().unwrap())),
                None => (body, None),
            };
            accepted.insert((addr.to_owned(), port));
        } else {
            panic!("unexpected nft daddr line: {line}");
        }
    }
    (accepted, dropped)
}

fn is_ip_literal(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok()
}

/// The reference policy's destinations, as (host, port) pairs.
fn reference_destinations(manifest: &str) -> Vec<Dest> {
    reference_policy(manifest)["egress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["host"].as_str().unwrap().to_owned(),
                e["port"].as_u64().map(|p| p as u16),
            )
        })
        .collect()
}

// ------------------------------------------------------------------ deviations

/// One manifest × target comparison.
struct Case {
    manifest: &'static str,
    target: &'static str,
    golden: Value,
    ours: Value,
    diffs: Vec<Diff>,
}

impl Case {
    fn new(manifest: &'static str, target: &'static str, golden: Value, ours: Value) -> Case {
        let diffs = differences(&golden, &ours);
        Case {
            manifest,
            target,
            golden,
            ours,
            diffs,
        }
    }

    fn argv_target(&self) -> bool {
        matches!(self.target, "bwrap" | "docker")
    }

    fn has(&self, d: &Diff) -> bool {
        self.diffs.contains(d)
    }

    fn added(&self, group: &[&str]) -> bool {
        self.has(&Diff::ArgvAdded(
            group.iter().map(|s| s.to_string()).collect(),
        ))
    }

    fn notes_added(&self) -> impl Iterator<Item = &str> {
        self.diffs.iter().filter_map(|d| match d {
            Diff::NoteAdded(n) => Some(n.as_str()),
            _ => None,
        })
    }

    fn notes_removed(&self) -> impl Iterator<Item = &str> {
        self.diffs.iter().filter_map(|d| match d {
            Diff::NoteRemoved(n) => Some(n.as_str()),
            _ => None,
        })
    }

    fn ours_argv(&self) -> Vec<String> {
        strings(&self.ours["argv"])
    }

    /// Whether the manifest asks for `nestedSandbox`.
    fn nested(&self) -> bool {
        capability_strings(self.manifest)
            .iter()
            .any(|c| c.contains("nestedSandbox=true") || c.contains("nestedSandbox=1"))
    }

    fn config(&self, which: &Value) -> String {
        which["config"].as_str().unwrap().to_owned()
    }
}

/// A deliberate, documented difference from the reference.
struct Deviation {
    /// Stable id; `docs/compatibility.md` has a section for each.
    id: &'static str,
    /// Whether this deviation explains a difference of a case.
    explains: fn(&Case, &Diff) -> bool,
}

/// The reference's namespace flags and capgate's strict replacements.
const STRICT_UNSHARE: [&str; 6] = [
    "--unshare-user",
    "--unshare-ipc",
    "--unshare-pid",
    "--unshare-net",
    "--unshare-uts",
    "--unshare-cgroup",
];

/// `fs: "P/**" lowered to directory bind "P" — ...` (bwrap) or `... volume mount "P" — ...` (docker).
fn is_recursive_glob_note(note: &str) -> bool {
    let Some(rest) = note.strip_prefix("fs: \"") else {
        return false;
    };
    let Some((glob, rest)) = rest.split_once("\" lowered to ") else {
        return false;
    };
    let Some(dir) = glob.strip_suffix("/**") else {
        return false;
    };
    [
        format!("directory bind \"{dir}\" — bwrap binds directories, not globs."),
        format!("volume mount \"{dir}\" — Docker mounts directories, not globs."),
    ]
    .iter()
    .any(|p| rest.starts_with(p.as_str()))
}

/// `net: N endpoint(s) declared ...`: the count N.
fn endpoint_count(note: &str) -> Option<&str> {
    note.strip_prefix("net: ")?
        .split_once(" endpoint(s) declared")
        .map(|(n, _)| n)
}

const BWRAP_NET_NOTE_TAIL: &str = "whose egress honors egress[]. ";

fn is_permissive_kind_note(case: &Case, note: &str) -> bool {
    ["fs", "exec", "env", "ipc", "clock"].iter().any(|k| {
        note.strip_prefix(&format!("{k}: "))
            .and_then(|r| r.split_once(" fact(s) not enforced by target "))
            .is_some_and(|(n, rest)| {
                n.parse::<usize>().is_ok()
                    && rest == format!("\"{}\" — see unenforceable[] (--permissive)", case.target)
            })
    })
}

const SQUID_STANDALONE: [&str; 2] = ["http_port ", "visible_hostname "];

fn is_squid_allow_line(l: &str) -> bool {
    l.starts_with("http_access allow ")
        || [
            "acl cg_dst_",
            "acl cg_port_",
            "acl capgate_dst_",
            "acl capgate_port_",
        ]
        .iter()
        .any(|p| l.starts_with(p))
}

fn is_nft_drop_line(l: &str) -> bool {
    let l = l.trim();
    (l.starts_with("ip daddr {") || l.starts_with("ip6 daddr {")) && l.ends_with("} drop")
}

/// The reference's dropped/denied special ranges are all still dropped/denied.
fn special_ranges_kept(case: &Case) -> bool {
    match case.target {
        "squid" => {
            let g = squid_denied_first(&parse_squid(&case.config(&case.golden)));
            let o = squid_denied_first(&parse_squid(&case.config(&case.ours)));
            !o.is_empty() && ranges_covered(&g, &o)
        }
        "nftables" => {
            let (_, g) = parse_nft(&case.config(&case.golden));
            let (_, o) = parse_nft(&case.config(&case.ours));
            !o.is_empty() && ranges_covered(&g, &o)
        }
        _ => false,
    }
}

/// Whether every range of `inner` lies inside a range of `outer` (capgate's
/// `::/96` covers the reference's `::1/128`).
fn ranges_covered(inner: &BTreeSet<String>, outer: &BTreeSet<String>) -> bool {
    fn parse(cidr: &str) -> Option<(u128, u32, bool)> {
        let (a, l) = cidr.split_once('/').unwrap_or((cidr, ""));
        let ip: std::net::IpAddr = a.parse().ok()?;
        let (bits, max, v4) = match ip {
            std::net::IpAddr::V4(a) => (u128::from(u32::from(a)), 32, true),
            std::net::IpAddr::V6(a) => (u128::from(a), 128, false),
        };
        let len = if l.is_empty() { max } else { l.parse().ok()? };
        Some((bits << (128 - max), len, v4))
    }
    let outer: Vec<_> = outer.iter().filter_map(|c| parse(c)).collect();
    inner.iter().all(|c| {
        parse(c).is_some_and(|(a, l, v4)| {
            outer.iter().any(|&(b, m, w)| {
                let mask = u128::MAX.checked_shl(128 - m).unwrap_or(0);
                v4 == w && m <= l && a & mask == b & mask
            })
        })
    })
}

const DEVIATIONS: &[Deviation] = &[
    // -------------------------------------------------------------- fields
    Deviation {
        id: "DEV-FIELD-ARGV-EXTRA",
        explains: |c, d| {
            c.argv_target()
                && matches!(d, Diff::FieldAdded(f) if f == "target" || f == "unenforceable")
                && c.ours["target"] == c.target
        },
    },
    Deviation {
        id: "DEV-FIELD-CONFIG-EXTRA",
        explains: |c, d| {
            let policy = reference_policy(c.manifest);
            !c.argv_target()
                && matches!(d, Diff::FieldAdded(f) if (f == "assertions" || f == "egress")
                    && c.ours[f.as_str()] == policy[f.as_str()])
        },
    },
    Deviation {
        id: "DEV-FIELD-UNENFORCEABLE-CAPABILITIES",
        explains: |_, d| matches!(d, Diff::FieldAdded(f) if f == "unenforceable[].capabilities"),
    },
    // -------------------------------------------------------------- bwrap argv
    Deviation {
        id: "DEV-BWRAP-NAMESPACES",
        explains: |c, d| {
            if c.target != "bwrap" {
                return false;
            }
            let argv = c.ours_argv();
            let strict = STRICT_UNSHARE.iter().all(|f| argv.iter().any(|a| a == f))
                && !argv
                    .iter()
                    .any(|a| a.starts_with("--unshare-") && a.ends_with("-try"));
            strict
                && matches!(d, Diff::ArgvAdded(g) | Diff::ArgvRemoved(g)
                    if g.len() == 1 && g[0].starts_with("--unshare-"))
        },
    },
    Deviation {
        id: "DEV-BWRAP-UID",
        explains: |c, d| {
            c.target == "bwrap"
                && matches!(d, Diff::ArgvAdded(g) if g.len() == 2
                    && (g[0] == "--uid" || g[0] == "--gid")
                    && g[1].parse::<u32>().is_ok_and(|id| id != 0))
        },
    },
    Deviation {
        id: "DEV-BWRAP-DISABLE-USERNS",
        explains: |c, d| {
            c.target == "bwrap"
                && !c.nested()
                && c.added(&["--disable-userns"])
                && *d == Diff::ArgvAdded(vec!["--disable-userns".into()])
        },
    },
    Deviation {
        id: "DEV-BWRAP-LAUNCHER",
        explains: |c, d| {
            // The privilege drop the host puts before `bwrap`, environment emptied first.
            let launcher: Vec<&str> = c.ours["launcher"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            c.target == "bwrap"
                && matches!(d, Diff::FieldAdded(f) if f == "launcher")
                && launcher.starts_with(&["env", "-i", "setpriv"])
                && launcher.iter().any(|a| a.starts_with("--reuid="))
        },
    },
    Deviation {
        id: "DEV-BWRAP-PROC-READONLY",
        explains: |c, d| {
            c.target == "bwrap"
                && matches!(d, Diff::ArgvAdded(g) if g.len() == 3
                    && g[0] == "--ro-bind-try"
                    && g[1].starts_with("/proc/")
                    && g[1] == g[2])
        },
    },
    Deviation {
        id: "DEV-BWRAP-CAP-DROP",
        explains: |c, d| {
            c.target == "bwrap" && *d == Diff::ArgvAdded(vec!["--cap-drop".into(), "ALL".into()])
        },
    },
    Deviation {
        id: "DEV-BWRAP-DEV",
        explains: |c, d| {
            c.target == "bwrap"
                && !c.nested()
                && *d == Diff::ArgvAdded(vec!["--dev".into(), "/dev".into()])
        },
    },
    Deviation {
        id: "DEV-BWRAP-ALTERNATIVES",
        explains: |c, d| {
            c.target == "bwrap"
                && *d
                    == Diff::ArgvAdded(
                        ["--ro-bind-try", "/etc/alternatives", "/etc/alternatives"]
                            .map(String::from)
                            .to_vec(),
                    )
        },
    },
    Deviation {
        id: "DEV-X11-COVERED",
        explains: |c, d| {
            // A declared path holds /tmp/.X11-unix (puppeteer's /tmp): the display is
            // reached through that bind, and a bind of its own, walked through the
            // writable /tmp, is gone (docs/security.md, A9). The note says so.
            let note = |n: &str| {
                n.starts_with("ipc: x11 is reached through the ")
                    && n.contains("which holds /tmp/.X11-unix (every display in it)")
            };
            let reference = |g: &[String]| match (c.target, g) {
                ("bwrap", [flag, src, dst]) => {
                    flag == "--bind-try" && src == "/tmp/.X11-unix" && dst == "/tmp/.X11-unix"
                }
                ("docker", [flag, spec]) => {
                    flag == "--volume" && spec == "/tmp/.X11-unix:/tmp/.X11-unix:ro"
                }
                _ => false,
            };
            match d {
                Diff::ArgvRemoved(g) if reference(g) => c
                    .diffs
                    .iter()
                    .any(|a| matches!(a, Diff::NoteAdded(n) if note(n))),
                Diff::NoteAdded(n) if note(n) => c
                    .diffs
                    .iter()
                    .any(|r| matches!(r, Diff::ArgvRemoved(r) if reference(r))),
                _ => false,
            }
        },
    },
    // -------------------------------------------------------------- docker argv
    Deviation {
        id: "DEV-DOCKER-USER-PIDS",
        explains: |c, d| {
            c.target == "docker"
                && matches!(d, Diff::ArgvAdded(g) if g.len() == 2
                    && ((g[0] == "--user" && !g[1].starts_with('0') && !g[1].starts_with("root"))
                        || (g[0] == "--pids-limit" && g[1].parse::<u32>().is_ok_and(|n| n > 0))))
        },
    },
    Deviation {
        id: "DEV-DOCKER-RESOURCES",
        explains: |c, d| {
            let size = |v: &str| {
                let digits = v.trim_end_matches(['k', 'm', 'g']);
                !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && digits != "0"
            };
            let tmpfs = |v: &str| {
                ["/tmp:size=", "/var/tmp:size=", "/run:size="]
                    .iter()
                    .any(|p| v.strip_prefix(p).is_some_and(size))
            };
            c.target == "docker"
                && match d {
                    Diff::ArgvAdded(g) if g.len() == 2 => {
                        (["--memory", "--memory-swap", "--shm-size"].contains(&g[0].as_str())
                            && size(&g[1]))
                            || (g[0] == "--tmpfs" && tmpfs(&g[1]))
                    }
                    Diff::ArgvRemoved(g) if g.len() == 2 && g[0] == "--tmpfs" => c
                        .diffs
                        .iter()
                        .any(|a| matches!(a, Diff::ArgvAdded(n) if n.len() == 2 && n[0] == "--tmpfs"
                            && n[1].strip_prefix(g[1].as_str()).is_some_and(|r| r.starts_with(":size=")))),
                    _ => false,
                }
        },
    },
    Deviation {
        id: "DEV-DOCKER-STDIN",
        explains: |c, d| {
            c.target == "docker" && matches!(d, Diff::ArgvAdded(g) if g == &["--interactive"])
        },
    },
    Deviation {
        id: "DEV-DOCKER-SECCOMP",
        explains: |c, d| {
            c.target == "docker"
                && matches!(d, Diff::ArgvAdded(g) if g.len() == 2 && g[0] == "--security-opt"
                    && g[1].strip_prefix("seccomp=").is_some_and(|p| p.starts_with('/')))
        },
    },
    Deviation {
        id: "DEV-DOCKER-NETWORK",
        explains: |c, d| {
            let declared = c.golden["egress"].as_array().is_some_and(|e| !e.is_empty());
            c.target == "docker"
                && declared
                && matches!(d, Diff::ArgvAdded(g) if g.len() == 2
                    && ((g[0] == "--network" && !["host", "bridge", "default", "none"].contains(&g[1].as_str()))
                        || (g[0] == "--env"
                            && ["HTTPS_PROXY=", "HTTP_PROXY=", "https_proxy=", "http_proxy="]
                                .iter()
                                .any(|p| g[1].starts_with(p)))))
        },
    },
    Deviation {
        id: "DEV-DOCKER-MOUNT",
        explains: |c, d| {
            // Read-only: `readonly,bind-recursive=readonly` (fs, sockets; `engine=podman`:
            // `readonly,bind-nonrecursive`), or `readonly` alone.
            let mounts = |volume: &str| -> Vec<Vec<String>> {
                let mut parts = volume.split(':');
                let (Some(src), Some(dst), Some(mode)) = (parts.next(), parts.next(), parts.next())
                else {
                    return vec![];
                };
                let options: &[&str] = match mode {
                    "ro" => &[
                        ",readonly,bind-recursive=readonly",
                        ",readonly,bind-nonrecursive",
                        ",readonly",
                    ],
                    "rw" => &[""],
                    _ => &[],
                };
                options
                    .iter()
                    .map(|o| {
                        vec![
                            "--mount".into(),
                            format!("type=bind,source={src},target={dst}{o}"),
                        ]
                    })
                    .collect()
            };
            c.target == "docker"
                && match d {
                    Diff::ArgvRemoved(g) if g.len() == 2 && g[0] == "--volume" => mounts(&g[1])
                        .into_iter()
                        .any(|m| c.has(&Diff::ArgvAdded(m))),
                    Diff::ArgvAdded(g) if g.len() == 2 && g[0] == "--mount" => {
                        c.diffs.iter().any(|r| {
                            matches!(r, Diff::ArgvRemoved(v) if v.len() == 2 && v[0] == "--volume"
                            && mounts(&v[1]).contains(g))
                        })
                    }
                    _ => false,
                }
        },
    },
    // -------------------------------------------------------------- notes
    Deviation {
        id: "DEV-NOTE-RECURSIVE-GLOB",
        explains: |c, d| {
            c.argv_target() && matches!(d, Diff::NoteRemoved(n) if is_recursive_glob_note(n))
        },
    },
    Deviation {
        id: "DEV-NOTE-NET-BWRAP",
        explains: |c, d| {
            // Same count and opening; ours explains the broker's `inherit_netns=true`.
            let head = |n: &str| n.split_once(" — ").map(|(h, _)| h.to_owned());
            let reference = |n: &str| n.contains(BWRAP_NET_NOTE_TAIL);
            let ours = |n: &str| n.contains("inherit_netns=true");
            c.target == "bwrap"
                && match d {
                    Diff::NoteRemoved(g) if reference(g) => c
                        .notes_added()
                        .any(|o| ours(o) && head(o).is_some() && head(o) == head(g)),
                    Diff::NoteAdded(o) if ours(o) => c
                        .notes_removed()
                        .any(|g| reference(g) && head(o).is_some() && head(o) == head(g)),
                    _ => false,
                }
        },
    },
    Deviation {
        id: "DEV-NOTE-NET-DOCKER",
        explains: |c, d| {
            let reference =
                |n: &str| n.contains("declared — host MUST attach the container to a network");
            let ours = |n: &str| n.contains("declared — the container joins network");
            c.target == "docker"
                && match d {
                    Diff::NoteRemoved(g) if reference(g) => c
                        .notes_added()
                        .any(|o| ours(o) && endpoint_count(o) == endpoint_count(g)),
                    Diff::NoteAdded(o) if ours(o) => c
                        .notes_removed()
                        .any(|g| reference(g) && endpoint_count(o) == endpoint_count(g)),
                    _ => false,
                }
        },
    },
    Deviation {
        id: "DEV-NOTE-NESTED",
        explains: |c, d| {
            let nested_caps: Vec<String> = capability_strings(c.manifest)
                .into_iter()
                .filter(|s| s.contains("nestedSandbox="))
                .collect();
            let ours = |n: &str| {
                n.starts_with("nestedSandbox: requested by ")
                    && nested_caps.iter().all(|cap| n.contains(cap.as_str()))
            };
            let reference = |n: &str| {
                n == "nestedSandbox: keeping user/pid/ipc namespaces for inner sandbox compatibility"
                    || n.starts_with("nestedSandbox: declared — Docker default seccomp")
            };
            c.argv_target()
                && match d {
                    Diff::NoteRemoved(g) => reference(g) && c.notes_added().any(ours),
                    Diff::NoteAdded(o) => ours(o) && c.notes_removed().any(reference),
                    _ => false,
                }
        },
    },
    Deviation {
        id: "DEV-NOTE-EXEC-BWRAP",
        explains: |c, d| {
            const REF: &str = " (resolved from PATH inside sandbox)";
            const OURS: &str = " (resolved from PATH inside sandbox; bwrap does not restrict which baseline programs run)";
            c.target == "bwrap"
                && match d {
                    Diff::NoteRemoved(g) => g
                        .strip_suffix(REF)
                        .is_some_and(|b| c.has(&Diff::NoteAdded(format!("{b}{OURS}")))),
                    Diff::NoteAdded(o) => o
                        .strip_suffix(OURS)
                        .is_some_and(|b| c.has(&Diff::NoteRemoved(format!("{b}{REF}")))),
                    _ => false,
                }
        },
    },
    Deviation {
        id: "DEV-NOTE-WIDENING",
        explains: |_, d| {
            matches!(d, Diff::NoteAdded(n) if n.starts_with("fs: \"")
                && n.contains("\" is read-write for the whole server because of ")
                && n.ends_with("One sandbox serves every tool."))
        },
    },
    Deviation {
        id: "DEV-NOTE-PARTIAL-WRITE",
        explains: |c, d| {
            c.argv_target()
                && matches!(d, Diff::NoteAdded(n) if n.starts_with("fs: \"")
                    && n.contains("\" declares ")
                    && (n.contains(" but is bound read-write, so the sandbox may also ")
                        || n.contains(" but is mounted read-write, so the container may also ")))
        },
    },
    Deviation {
        id: "DEV-NOTE-SHARED-LAUNCHER-UID",
        explains: |c, d| {
            c.target == "bwrap"
                && matches!(d, Diff::NoteAdded(n) if n.starts_with("fs: the writable grants are written as host uid 65534 (nobody), the default launcher_uid shared by every server"))
        },
    },
    Deviation {
        id: "DEV-NOTE-HOST-TMP-SOCKETS",
        explains: |c, d| {
            const REF: &str = " all user tmpfiles to the ";
            const OURS_SANDBOX: &str = "sandbox, and the socket directories in it (/tmp/.X11-unix: every X display; /tmp/.ICE-unix);";
            const OURS_CONTAINER: &str = "container, and the socket directories in it (/tmp/.X11-unix: every X display; /tmp/.ICE-unix);";
            let ours = |n: &str| {
                n.starts_with("fs: ")
                    && n.contains(REF)
                    && (n.contains(OURS_SANDBOX) || n.contains(OURS_CONTAINER))
            };
            let reference = |n: &str| {
                n.starts_with("fs: ")
                    && n.contains(REF)
                    && (n.contains("exposes all user tmpfiles to the sandbox; prefer")
                        || n.contains("exposes all user tmpfiles to the container; prefer"))
            };
            c.argv_target()
                && match d {
                    Diff::NoteRemoved(g) => reference(g) && c.notes_added().any(ours),
                    Diff::NoteAdded(o) => ours(o) && c.notes_removed().any(reference),
                    _ => false,
                }
        },
    },
    Deviation {
        id: "DEV-NOTE-SQUID-ANY",
        explains: |c, d| {
            let reference =
                |n: &str| n.contains(": host \"*\" degenerates to allow-any (dstdomain .)");
            let ours =
                |n: &str| n.contains(": host \"*\" allows requests to any public destination");
            let index = |n: &str| n.split_once(':').map(|(i, _)| i.to_owned());
            c.target == "squid"
                && match d {
                    Diff::NoteRemoved(g) if reference(g) => {
                        c.notes_added().any(|o| ours(o) && index(o) == index(g))
                    }
                    Diff::NoteAdded(o) if ours(o) => c
                        .notes_removed()
                        .any(|g| reference(g) && index(o) == index(g)),
                    _ => false,
                }
        },
    },
    Deviation {
        id: "DEV-NOTE-NFT-UNENFORCEABLE",
        explains: |c, d| {
            let net_entries = c.ours["unenforceable"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| is_net_entry(e))
                .count();
            let per_rule = |n: &str| {
                n.starts_with("net[")
                    && n.contains(" is unenforceable by nftables (dropped) — see unenforceable[]")
            };
            let summary = format!("net: {net_entries} rule(s) unenforceable by nftables (hostname/wildcard) — see unenforceable[]; compile those to the \"squid\" target.");
            c.target == "nftables"
                && match d {
                    Diff::NoteRemoved(g) => {
                        *g == summary
                            && c.notes_added().filter(|n| per_rule(n)).count() == net_entries
                    }
                    Diff::NoteAdded(o) => per_rule(o) && c.has(&Diff::NoteRemoved(summary.clone())),
                    _ => false,
                }
        },
    },
    Deviation {
        id: "DEV-PERMISSIVE-UNENFORCEABLE",
        explains: |c, d| {
            !c.argv_target()
                && match d {
                    Diff::UnenforceableAdded(e) => {
                        let e: Value = serde_json::from_str(e).unwrap();
                        ["fs", "exec", "env", "ipc", "clock"]
                            .contains(&e["rule"]["kind"].as_str().unwrap_or(""))
                            && e["reason"]
                                .as_str()
                                .is_some_and(|r| r.contains("(--permissive)"))
                            && !e["capabilities"].as_array().is_none_or(|a| a.is_empty())
                    }
                    Diff::NoteAdded(n) => is_permissive_kind_note(c, n),
                    _ => false,
                }
        },
    },
    // -------------------------------------------------------------- squid config
    Deviation {
        id: "DEV-SQUID-STANDALONE",
        explains: |c, d| {
            c.target == "squid"
                && matches!(d, Diff::LineAdded(l) if SQUID_STANDALONE.iter().any(|p| l.starts_with(p)) || l == "cache deny all")
        },
    },
    Deviation {
        id: "DEV-SQUID-SPECIAL-RANGES",
        explains: |c, d| {
            c.target == "squid"
                && special_ranges_kept(c)
                && matches!(d, Diff::LineRemoved(l) | Diff::LineAdded(l)
                    if l.starts_with("acl to_private dst ") || l == "http_access deny to_private"
                        || l.starts_with("acl capgate_special dst ") || l == "http_access deny capgate_special")
        },
    },
    Deviation {
        id: "DEV-SQUID-PLAIN-HTTP",
        explains: |c, d| {
            c.target == "squid"
                && matches!(d, Diff::LineRemoved(l) if l == "acl CONNECT method CONNECT")
                || matches!(d, Diff::LineAdded(l) if l == "http_access deny manager")
        },
    },
    Deviation {
        id: "DEV-SQUID-ALLOW-RULES",
        explains: |c, d| {
            c.target == "squid"
                && squid_allowed(&parse_squid(&c.config(&c.golden)))
                    == squid_allowed(&parse_squid(&c.config(&c.ours)))
                && matches!(d, Diff::LineRemoved(l) | Diff::LineAdded(l) if is_squid_allow_line(l))
        },
    },
    // -------------------------------------------------------------- nftables config
    Deviation {
        id: "DEV-NFT-IDEMPOTENT",
        explains: |c, d| {
            if c.target != "nftables" {
                return false;
            }
            let lines: Vec<String> = c.config(&c.ours).lines().map(str::to_owned).collect();
            let table = lines
                .iter()
                .position(|l| l.starts_with("table inet ") && l.ends_with(" {"));
            let name = table.map(|i| lines[i].trim_end_matches(" {").to_owned());
            matches!((d, &name, table), (Diff::LineAdded(l), Some(t), Some(i))
                    if (l == t || *l == format!("delete {t}")) && lines[..i].contains(l))
        },
    },
    Deviation {
        id: "DEV-NFT-LOOPBACK-ESTABLISHED",
        explains: |c, d| {
            c.target == "nftables"
                && matches!(d, Diff::LineAdded(l) if matches!(l.trim(),
                    "oifname \"lo\" accept" | "ct state established,related accept")
                    || (l.trim().starts_with("icmpv6 type { nd-")
                        && (l.trim().ends_with("} accept") || l.trim().ends_with("} drop"))))
        },
    },
    Deviation {
        id: "DEV-NFT-INGRESS",
        explains: |c, d| {
            c.target == "nftables"
                && matches!(d, Diff::LineAdded(l) if matches!(l.trim(),
                    "chain ingress {"
                    | "type filter hook input priority 0; policy drop;"
                    | "iifname \"lo\" accept"
                    | "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept"
                    | "}"))
        },
    },
    Deviation {
        id: "DEV-SQUID-SCHEMES",
        explains: |c, d| {
            c.target == "squid"
                && matches!(d, Diff::LineAdded(l) if matches!(l.as_str(),
                    "acl capgate_connect method CONNECT"
                    | "acl capgate_schemes proto HTTP HTTPS"
                    | "http_access deny !capgate_connect !capgate_schemes"))
        },
    },
    Deviation {
        id: "DEV-SQUID-UNDECLARED-FIRST",
        explains: |c, d| {
            c.target == "squid"
                && matches!(d, Diff::LineAdded(l)
                    if l.starts_with("acl capgate_declared dstdomain -n ")
                        || l.starts_with("acl capgate_declared_ip dst -n ")
                        || (l.starts_with("http_access deny !capgate_declared")
                            && l.split(' ').skip(2).all(|w| w == "!capgate_declared" || w == "!capgate_declared_ip")))
        },
    },
    Deviation {
        id: "DEV-NFT-SPECIAL-RANGES",
        explains: |c, d| {
            c.target == "nftables"
                && special_ranges_kept(c)
                && matches!(d, Diff::LineRemoved(l) | Diff::LineAdded(l) if is_nft_drop_line(l))
        },
    },
];

/// Every manifest × target that has a golden.
fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for m in MANIFESTS {
        for t in TARGETS {
            if let Some(g) = golden(m, t) {
                out.push(Case::new(m, t, g, compile(m, t)));
            }
        }
    }
    out
}

/// Differences no deviation explains, and the ids of the deviations that explained something.
fn explain(cases: &[Case]) -> (Vec<String>, BTreeSet<&'static str>) {
    let mut unexplained = Vec::new();
    let mut used = BTreeSet::new();
    for c in cases {
        for d in &c.diffs {
            let by: Vec<&str> = DEVIATIONS
                .iter()
                .filter(|dev| (dev.explains)(c, d))
                .map(|dev| dev.id)
                .collect();
            if std::env::var_os("CAPGATE_COMPAT_VERBOSE").is_some() {
                eprintln!(
                    "{} × {}: {d}\n    explained by {by:?}",
                    c.manifest, c.target
                );
            }
            if by.is_empty() {
                unexplained.push(format!("{} × {}: {d}", c.manifest, c.target));
            }
            used.extend(by);
        }
    }
    (unexplained, used)
}

// ------------------------------------------------------------------ tests

#[test]
fn every_difference_from_the_goldens_is_a_named_deviation() {
    let cases = cases();
    assert_eq!(
        cases.len(),
        12,
        "4 bwrap + 4 docker + 2 squid + 2 nftables goldens"
    );
    let (unexplained, used) = explain(&cases);
    assert!(
        unexplained.is_empty(),
        "{} difference(s) from the reference goldens are not explained by a named deviation \
         (add one to DEVIATIONS and docs/compatibility.md, or fix the output):\n  {}",
        unexplained.len(),
        unexplained.join("\n  ")
    );
    let stale: Vec<&str> = DEVIATIONS
        .iter()
        .map(|d| d.id)
        .filter(|id| !used.contains(id))
        .collect();
    assert!(
        stale.is_empty(),
        "deviations that explain nothing any more (remove them here and in the docs): {stale:?}"
    );
}

#[test]
fn an_unexplained_difference_fails() {
    // The comparison itself must be able to fail: weaken capgate's output in ways no
    // deviation allows and check that each one is reported.
    type Mutation = (&'static str, &'static str, fn(&mut Value));
    let mutations: Vec<Mutation> = vec![
        ("bwrap", "fetch", |v| {
            v["argv"].as_array_mut().unwrap().push("--share-net".into())
        }),
        ("bwrap", "filesystem", |v| {
            let argv = v["argv"].as_array_mut().unwrap();
            // The read-only system baseline made writable.
            let i = argv.iter().position(|a| a == "/usr").unwrap();
            argv[i - 1] = "--bind-try".into();
        }),
        ("docker", "github", |v| {
            let argv = v["argv"].as_array_mut().unwrap();
            let i = argv.iter().position(|a| a == "capgate-egress").unwrap();
            argv[i] = "bridge".into();
        }),
        ("docker", "filesystem", |v| {
            let argv = v["argv"].as_array_mut().unwrap();
            let i = argv
                .iter()
                .position(|a| a.as_str().unwrap().starts_with("type=bind"))
                .unwrap();
            argv[i] = "type=bind,source=/,target=/workspace".into();
        }),
        ("bwrap", "github", |v| {
            v["envInjections"] = serde_json::json!(["GITHUB_PERSONAL_ACCESS_TOKEN", "AWS_SECRET"])
        }),
        ("docker", "fetch", |v| {
            v["assertions"] = serde_json::json!([])
        }),
        ("bwrap", "puppeteer", |v| {
            v["notes"]
                .as_array_mut()
                .unwrap()
                .push("net: anything goes".into())
        }),
        ("squid", "github", |v| {
            let c = v["config"].as_str().unwrap().replace(
                "http_access deny all",
                "http_access allow CONNECT\nhttp_access deny all",
            );
            v["config"] = c.into();
        }),
        ("squid", "fetch", |v| {
            let c = v["config"].as_str().unwrap().replace("10.0.0.0/8 ", "");
            v["config"] = c.into();
        }),
        ("nftables", "github", |v| {
            let c = v["config"]
                .as_str()
                .unwrap()
                .replace("policy drop;", "policy accept;");
            v["config"] = c.into();
        }),
        ("nftables", "fetch", |v| {
            v["unenforceable"] = serde_json::json!([])
        }),
        ("squid", "github", |v| {
            v["provenance"]["manifestHash"] = "sha256:00".into()
        }),
    ];
    for (target, manifest, mutate) in mutations {
        let mut ours = compile(manifest, target);
        let before = explain(&[Case::new(
            manifest,
            target,
            golden(manifest, target).unwrap(),
            ours.clone(),
        )])
        .0;
        assert!(
            before.is_empty(),
            "{manifest} × {target} unexplained before mutation: {before:?}"
        );
        mutate(&mut ours);
        let case = Case::new(manifest, target, golden(manifest, target).unwrap(), ours);
        let (unexplained, _) = explain(&[case]);
        assert!(
            !unexplained.is_empty(),
            "a mutation of {manifest} × {target} went unnoticed"
        );
    }
}

#[test]
fn provenance_hash_is_the_reference_hash_on_every_target() {
    for (manifest, hash) in HASHES {
        for target in TARGETS {
            let ours = compile(manifest, target);
            assert_eq!(
                ours["provenance"]["manifestHash"], hash,
                "{manifest} × {target}"
            );
            assert_eq!(
                ours["provenance"],
                reference_policy(manifest)["provenance"],
                "{manifest} × {target}"
            );
            if let Some(g) = golden(manifest, target) {
                assert_eq!(ours["provenance"], g["provenance"], "{manifest} × {target}");
            }
        }
        // Strictness does not change the hash (nor does the target).
        let strict = try_compile(manifest, "bwrap", false).unwrap();
        assert_eq!(strict["provenance"]["manifestHash"], hash);
    }
}

#[test]
fn argv_targets_keep_egress_env_injections_and_assertions() {
    for manifest in MANIFESTS {
        for target in ["bwrap", "docker"] {
            let g = golden(manifest, target).unwrap();
            let ours = compile(manifest, target);
            for field in ["egress", "envInjections", "assertions", "provenance"] {
                assert_eq!(ours[field], g[field], "{manifest} × {target}: {field}");
            }
        }
    }
}

#[test]
fn config_targets_carry_the_reference_policy_assertions_and_egress() {
    for manifest in MANIFESTS {
        let policy = reference_policy(manifest);
        for target in ["squid", "nftables"] {
            let ours = compile(manifest, target);
            assert_eq!(
                ours["assertions"], policy["assertions"],
                "{manifest} × {target}"
            );
            assert_eq!(ours["egress"], policy["egress"], "{manifest} × {target}");
            assert_eq!(ours["target"], target);
            assert_eq!(
                ours["filename"],
                format!(
                    "capgate-egress.{}",
                    if target == "squid" {
                        "squid.conf"
                    } else {
                        "nftables"
                    }
                )
            );
        }
    }
}

#[test]
fn squid_allows_exactly_the_reference_destinations() {
    for manifest in MANIFESTS {
        let ours = compile(manifest, "squid");
        let allowed = squid_allowed(&parse_squid(ours["config"].as_str().unwrap()));
        let expected: BTreeSet<Dest> = reference_destinations(manifest).into_iter().collect();
        assert_eq!(
            allowed, expected,
            "{manifest}: squid allows other destinations than the reference policy declares"
        );
        if let Some(g) = golden(manifest, "squid") {
            assert_eq!(
                allowed,
                squid_allowed(&parse_squid(g["config"].as_str().unwrap())),
                "{manifest}"
            );
        }
        // The reference's net rules are never unenforceable on squid.
        assert!(
            ours["unenforceable"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| !is_net_entry(e)),
            "{manifest}: {}",
            ours["unenforceable"]
        );
    }
}

#[test]
fn nftables_accepts_exactly_the_reference_ip_destinations() {
    for manifest in MANIFESTS {
        let ours = compile(manifest, "nftables");
        let (accepted, _) = parse_nft(ours["config"].as_str().unwrap());
        let dests = reference_destinations(manifest);
        let expected: BTreeSet<Dest> = dests
            .iter()
            .filter(|(h, _)| is_ip_literal(h))
            .cloned()
            .collect();
        assert_eq!(accepted, expected, "{manifest}");
        if let Some(g) = golden(manifest, "nftables") {
            assert_eq!(
                accepted,
                parse_nft(g["config"].as_str().unwrap()).0,
                "{manifest}"
            );
        }
        // Hostname and wildcard rules are unenforceable, with the reference's rule objects, in order.
        let policy = reference_policy(manifest);
        let expected_rules: Vec<&Value> = policy["egress"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| !is_ip_literal(e["host"].as_str().unwrap()))
            .collect();
        let rules: Vec<&Value> = ours["unenforceable"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| is_net_entry(e))
            .map(|e| &e["rule"])
            .collect();
        assert_eq!(rules, expected_rules, "{manifest}");
        if let Some(g) = golden(manifest, "nftables") {
            let golden_rules: Vec<&Value> = g["unenforceable"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| &e["rule"])
                .collect();
            assert_eq!(rules, golden_rules, "{manifest}");
        }
    }
}

#[test]
fn strict_egress_compiles_where_the_reference_did() {
    // SPEC §7: the reference's egress adapter supports net and assert; strict mode fails
    // with ADAPTER_UNSUPPORTED for any other kind (SPEC §12.6) and compiles otherwise.
    for manifest in MANIFESTS {
        let kinds: BTreeSet<String> = capability_strings(manifest)
            .iter()
            .map(|c| c.split(':').next().unwrap().to_owned())
            .collect();
        let supported = kinds.iter().all(|k| k == "net" || k == "assert");
        for target in ["squid", "nftables"] {
            match try_compile(manifest, target, false) {
                Ok(_) => assert!(
                    supported,
                    "{manifest} × {target} compiled strictly despite {kinds:?}"
                ),
                Err(d) => {
                    assert!(!supported, "{manifest} × {target} (kinds {kinds:?}) must compile strictly, as in the reference:\n{}", render(&d));
                    assert_eq!(d[0].code, Code::AdapterUnsupported, "{}", render(&d));
                }
            }
        }
        for target in ["bwrap", "docker"] {
            try_compile(manifest, target, false)
                .unwrap_or_else(|d| panic!("{manifest} × {target} strict:\n{}", render(&d)));
        }
    }
}

#[test]
fn reference_cli_invocations_print_the_same_artifacts() {
    // The reference's spellings (default target bwrap, `--target egress`, default
    // egress-target squid) reach the same artifacts as the library.
    let bin = env!("CARGO_BIN_EXE_capgate");
    for manifest in MANIFESTS {
        let path = manifest_path(manifest);
        let path = path.to_str().unwrap();
        let runs: [(&[&str], &str); 4] = [
            (&["compile", path, "--pretty"], "bwrap"),
            (
                &["compile", path, "--target", "docker", "--pretty"],
                "docker",
            ),
            (
                &[
                    "compile",
                    path,
                    "--target",
                    "egress",
                    "--permissive",
                    "--pretty",
                ],
                "squid",
            ),
            (
                &[
                    "compile",
                    path,
                    "--target",
                    "egress",
                    "--egress-target",
                    "nftables",
                    "--pretty",
                    "--permissive",
                ],
                "nftables",
            ),
        ];
        for (args, target) in runs {
            let out = Command::new(bin).args(args).output().unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let stdout = String::from_utf8(out.stdout).unwrap();
            let expected = serde_json::to_string_pretty(&compile(manifest, target)).unwrap() + "\n";
            assert_eq!(stdout, expected, "{args:?}");
        }
    }
}

#[test]
fn pretty_output_is_serialised_like_the_reference() {
    // SPEC §12.1: JSON.stringify(artifact, null, 2) + "\n". Re-serialising each golden with
    // serde_json's pretty printer (the one capgate uses) must give the golden's bytes.
    for manifest in MANIFESTS {
        for target in TARGETS {
            let Some(g) = golden(manifest, target) else {
                continue;
            };
            let dir = if matches!(target, "squid" | "nftables") {
                format!("egress/{target}")
            } else {
                target.to_owned()
            };
            let text = std::fs::read_to_string(
                reference_dir().join(format!("policies/{dir}/{manifest}.json")),
            )
            .unwrap();
            assert_eq!(
                serde_json::to_string_pretty(&g).unwrap() + "\n",
                text,
                "{manifest} × {target}"
            );
        }
    }
}

#[test]
fn reference_fixtures_are_verbatim_copies_of_an_upstream_checkout() {
    // The project stands alone: nothing reads outside the checkout unless asked.
    // To check the vendored copy against the reference tool's fixtures, point
    // CAPGATE_REFERENCE_FIXTURES at them (tests/reference/README.md has the source).
    let Some(upstream) =
        std::env::var_os("CAPGATE_REFERENCE_FIXTURES").map(std::path::PathBuf::from)
    else {
        eprintln!("note: CAPGATE_REFERENCE_FIXTURES not set; skipping the verbatim-copy check");
        return;
    };
    let mut checked = 0;
    for sub in [
        "manifests",
        "policies/bwrap",
        "policies/docker",
        "policies/egress/squid",
        "policies/egress/nftables",
    ] {
        for entry in std::fs::read_dir(upstream.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let ours = reference_dir().join(sub).join(path.file_name().unwrap());
            assert_eq!(
                std::fs::read(&path).unwrap(),
                std::fs::read(&ours).unwrap_or_else(|_| panic!("{} missing", ours.display())),
                "{} differs from upstream",
                ours.display()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 16);
}

#[test]
fn deviation_ids_are_documented() {
    let docs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/compatibility.md"),
    )
    .expect("docs/compatibility.md exists");
    let missing: Vec<&str> = DEVIATIONS
        .iter()
        .map(|d| d.id)
        .filter(|id| !docs.contains(&format!("`{id}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "deviations missing from docs/compatibility.md: {missing:?}"
    );
    let ids: BTreeSet<&str> = DEVIATIONS.iter().map(|d| d.id).collect();
    assert_eq!(ids.len(), DEVIATIONS.len(), "duplicate deviation ids");

    // Every DEV- id the document mentions is checked by a test: this table, or a test file that names it.
    let tests_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let test_text: String = ["overgrant.rs", "cli.rs", "validators.rs", "compat.rs"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(tests_dir.join(f)).ok())
        .collect();
    let mut unchecked = Vec::new();
    for word in docs.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        if word.starts_with("DEV-")
            && word.len() > 4
            && !ids.contains(word)
            && !test_text.contains(word)
        {
            unchecked.push(word.to_owned());
        }
    }
    unchecked.dedup();
    assert!(
        unchecked.is_empty(),
        "documented deviations no test names: {unchecked:?}"
    );
}

#[test]
fn quoted_question_mark_stays_in_the_assertion_description() {
    // DEV-ASSERT-QUOTED-QMARK: the reference cut at the first `?` and kept "why".
    let compiler = Compiler::new(&Assets::default(), "bwrap").unwrap();
    let manifest = serde_json::json!({
        "name": "m", "version": "1",
        "tools": [{ "name": "t", "capabilities": ["assert:why:\"why? because\""] }]
    });
    let out = compiler
        .compile(
            "m.json",
            manifest.to_string().as_bytes(),
            &Settings::default(),
        )
        .unwrap();
    let v: Value = serde_json::from_str(&out.artifact.to_json(false)).unwrap();
    assert_eq!(
        v["assertions"],
        serde_json::json!([{ "id": "why", "description": "why? because" }])
    );
    // Everywhere else the reference's meaning of `?` stands.
    for (cap, code) in [
        ("assert:why:why? because", Code::CapRefinement),
        ("fs:read:\"/a?b\"", Code::CapSyntax),
        ("assert:\"why?\":because", Code::CapSyntax),
    ] {
        let manifest = serde_json::json!({
            "name": "m", "version": "1",
            "tools": [{ "name": "t", "capabilities": [cap] }]
        });
        let err = compiler
            .compile(
                "m.json",
                manifest.to_string().as_bytes(),
                &Settings::default(),
            )
            .err()
            .unwrap_or_else(|| panic!("{cap} accepted"));
        assert_eq!(err[0].code, code, "{cap}");
    }
}
