//! `capgate diff`: exit codes and witnesses through the binary; the
//! subsumption decision checked against a brute-force model on small random
//! manifests (the model enumerates a finite universe of paths, hosts and
//! ports and knows nothing of capgate's code); and witnesses checked under
//! the real tools (bwrap for paths, nftables for addresses), which skip
//! loudly without root or the tool, and fail under `CI=true`.

mod common;

// The enforcement suite's helpers (temp dirs, compile, the bwrap launch, the probe).
#[allow(dead_code)]
#[path = "enforcement/support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};

use proptest::prelude::*;

use capgate::assets::Assets;
use capgate::diff::{diff, DiffReport, Input};

fn capgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capgate"))
        .current_dir(common::root())
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap()
}

fn witnesses(v: &serde_json::Value, list: &str) -> Vec<(String, String)> {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().to_owned(),
                c["witness"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------- CLI

#[test]
fn widening_fs_glob_names_a_sibling_path() {
    let o = capgate(&[
        "diff",
        "fixtures/diff/base.json",
        "fixtures/diff/widen-fs.json",
        "--format",
        "json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(&o);
    assert_eq!(v["widens"], true);
    assert_eq!(witnesses(&v, "added"), [("fs".into(), "/data/b".into())]);
    let cap = &v["added"][0]["capabilities"][0];
    assert_eq!(cap["capability"], "fs:read:/data/**");
    assert_eq!(cap["tool"], "read_file");
    assert_eq!(cap["location"], "fixtures/diff/widen-fs.json:6:45");
}

#[test]
fn widening_net_wildcard_names_a_subdomain() {
    let o = capgate(&[
        "diff",
        "fixtures/diff/base.json",
        "fixtures/diff/widen-net.json",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        witnesses(&json(&o), "added"),
        [("net".into(), "x.example.com:443".into())]
    );
}

#[test]
fn narrowing_reordering_and_renaming_exit_0() {
    for new in ["narrow", "renamed", "base"] {
        let o = capgate(&[
            "diff",
            "fixtures/diff/base.json",
            &format!("fixtures/diff/{new}.json"),
            "--format",
            "json",
        ]);
        assert_eq!(o.status.code(), Some(0), "{new}: {}", stdout(&o));
        let v = json(&o);
        assert_eq!(v["widens"], false);
        assert!(v["added"].as_array().unwrap().is_empty(), "{new}");
    }
    // The renamed manifest grants the same: nothing removed either.
    let v = json(&capgate(&[
        "diff",
        "fixtures/diff/base.json",
        "fixtures/diff/renamed.json",
        "--format",
        "json",
    ]));
    assert!(v["removed"].as_array().unwrap().is_empty(), "{v}");
    // Narrowing the other way round is a widening.
    let o = capgate(&[
        "diff",
        "fixtures/diff/narrow.json",
        "fixtures/diff/base.json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    assert!(text.contains("+ fs /data/a/a  [read]"), "{text}");
    assert!(text.contains("+ env LANG  [read]"), "{text}");
    // base drops the `audit` assertion narrow.json promised.
    assert!(text.contains("+ assert audit  [dropped]"), "{text}");
}

#[test]
fn bad_input_on_either_side_is_the_compile_error() {
    for (old, new, code, marker) in [
        ("bad-cap", "base", 4, "CAP_FS_PATH"),
        ("base", "bad-cap", 4, "CAP_FS_PATH"),
        ("base", "bad-json", 3, "INPUT_JSON"),
        ("bad-json", "base", 3, "INPUT_JSON"),
        ("base", "missing", 3, "INPUT_UNREADABLE"),
    ] {
        let old_path = format!("fixtures/diff/{old}.json");
        let new_path = format!("fixtures/diff/{new}.json");
        let o = capgate(&["diff", &old_path, &new_path]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{old} {new}: {err}");
        assert!(o.stdout.is_empty(), "stdout must be empty on failure");
        assert!(err.starts_with(&format!("capgate: {marker}:")), "{err}");
        // Located in the file that is wrong, as compile locates it.
        let bad = if old.starts_with("bad") || old == "missing" {
            &old_path
        } else {
            &new_path
        };
        assert!(err.contains(bad.as_str()), "{err}");
        let compiled = capgate(&["compile", bad, "--target", "bwrap"]);
        assert_eq!(compiled.status.code(), Some(code));
        assert_eq!(String::from_utf8_lossy(&compiled.stderr), err);
    }
    for args in [
        vec!["diff", "fixtures/diff/base.json"],
        vec!["diff", "-", "-"],
        vec!["diff", "a", "b", "--format", "yaml"],
    ] {
        let o = capgate(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(o.stdout.is_empty());
    }
    let o = capgate(&[
        "diff",
        "fixtures/diff/base.json",
        "fixtures/diff/base.json",
        "--target",
        "nosuch",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
}

#[test]
fn target_output_lines_carry_rule_and_capability() {
    let o = capgate(&[
        "diff",
        "fixtures/diff/base.json",
        "fixtures/diff/widen-fs.json",
        "--target",
        "bwrap",
        "--target",
        "squid",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    let bwrap = &v["targets"][0];
    assert_eq!(bwrap["target"], "bwrap");
    let added: Vec<&str> = bwrap["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap())
        .collect();
    assert_eq!(added, ["--ro-bind /data /data"]);
    assert_eq!(bwrap["added"][0]["rule"], "bwrap.fs.ro-bind");
    assert_eq!(
        bwrap["added"][0]["capabilities"][0]["capability"],
        "fs:read:/data/**"
    );
    assert_eq!(
        bwrap["removed"][0]["capabilities"][0]["location"],
        "fixtures/diff/base.json:6:45"
    );
    // squid: the fs change does not touch the proxy config.
    assert_eq!(v["targets"][1]["target"], "squid");
    assert!(v["targets"][1]["added"].as_array().unwrap().is_empty());
    assert!(v["targets"][1]["removed"].as_array().unwrap().is_empty());
}

#[test]
fn text_report_snapshot() {
    let o = capgate(&[
        "diff",
        "fixtures/diff/narrow.json",
        "fixtures/diff/widen-net.json",
        "--target",
        "squid",
    ]);
    assert_eq!(o.status.code(), Some(1));
    insta::assert_snapshot!("diff_text_narrow_to_widen_net", stdout(&o));
}

/// The examples in docs/cli.md and docs/review.md are what the binary prints.
#[test]
fn documented_examples_are_current() {
    for (doc, old, new) in [
        ("docs/cli.md", "base", "widen-fs"),
        ("docs/review.md", "base", "widen-net"),
    ] {
        let text = std::fs::read_to_string(common::root().join(doc)).unwrap();
        let o = capgate(&[
            "diff",
            &format!("fixtures/diff/{old}.json"),
            &format!("fixtures/diff/{new}.json"),
        ]);
        let out = stdout(&o);
        assert!(
            text.contains(&out),
            "{doc} shows an outdated example; now:\n{out}"
        );
    }
}

/// A large manifest (60 000 capabilities) is compared in time linear in its
/// size: grants are indexed by path and host, never compared pairwise (the
/// pairwise version took minutes here).
#[test]
fn large_manifests_compare_quickly() {
    let mut caps = Vec::new();
    for i in 0..20_000 {
        caps.push(format!("fs:read:/data/d{i}/**"));
        caps.push(format!("net:connect:h{i}.example.com:443"));
        caps.push(format!("env:read:V{i}"));
    }
    let m = |caps: &[String]| {
        serde_json::json!({"name": "big", "version": "1", "tools": [{"name": "t", "capabilities": caps}]})
            .to_string()
    };
    let old = m(&caps);
    caps.push("fs:read:/data/**".into());
    caps.push("net:connect:*.example.com:443".into());
    let new = m(&caps);
    let started = std::time::Instant::now();
    let report = run(&old, &new);
    let took = started.elapsed();
    let got: Vec<(&str, &str)> = report
        .added
        .iter()
        .map(|c| (c.kind, c.witness.as_str()))
        .collect();
    assert_eq!(got, [("fs", "/data/a"), ("net", "x.example.com:443")]);
    assert!(report.removed.is_empty());
    assert!(took < std::time::Duration::from_secs(60), "took {took:?}");
}

// ---------------------------------------------------------------- brute-force model

/// A capability of the random manifests, in a form the model reads directly.
#[derive(Debug, Clone)]
enum Cap {
    Fs {
        segs: Vec<&'static str>,
        glob: &'static str,
        actions: Vec<&'static str>,
    },
    Net {
        host: &'static str,
        port: Option<u16>,
    },
    Exec {
        bin: &'static str,
        nested: bool,
    },
    Env {
        name: &'static str,
        inject: bool,
    },
    Ipc(&'static str),
    Clock(&'static str),
    Assert {
        id: &'static str,
        desc: &'static str,
    },
}

impl Cap {
    fn text(&self) -> String {
        match self {
            Cap::Fs {
                segs,
                glob,
                actions,
            } => format!("fs:{}:/r/{}{glob}", actions.join(","), segs.join("/")),
            Cap::Net { host, port } => match port {
                Some(p) => format!("net:connect:{host}:{p}"),
                None => format!("net:connect:{host}"),
            },
            Cap::Exec { bin, nested } => {
                if *nested {
                    format!("exec:spawn:{bin}?nestedSandbox=true")
                } else {
                    format!("exec:spawn:{bin}")
                }
            }
            Cap::Env { name, inject } => {
                format!("env:{}:{name}", if *inject { "inject" } else { "read" })
            }
            Cap::Ipc(e) if e.contains(':') => format!("ipc:connect:\"{e}\""),
            Cap::Ipc(e) => format!("ipc:connect:{e}"),
            Cap::Clock(s) => format!("clock:{s}"),
            Cap::Assert { id, desc } => format!("assert:{id}:\"{desc}\""),
        }
    }
}

const SEGS: [&str; 2] = ["a", "b"];
const HOSTS: [&str; 10] = [
    "a.com",
    "b.a.com",
    "c.b.a.com",
    "*.a.com",
    "*.b.a.com",
    "*.com",
    "*",
    "1.2.3.4",
    "10.0.0.1",
    "b.com",
];
const ACTIONS: [&str; 4] = ["read", "create", "write", "delete"];

fn cap() -> impl Strategy<Value = Cap> {
    prop_oneof![
        4 => (
            prop::collection::vec(prop::sample::select(SEGS.to_vec()), 1..=2),
            prop::sample::select(vec!["", "/*", "/**"]),
            prop::sample::subsequence(ACTIONS.to_vec(), 1..=2),
        )
            .prop_map(|(segs, glob, actions)| Cap::Fs { segs, glob, actions }),
        4 => (
            prop::sample::select(HOSTS.to_vec()),
            prop::sample::select(vec![None, Some(80), Some(443)]),
        )
            .prop_map(|(host, port)| Cap::Net { host, port }),
        1 => (prop::sample::select(vec!["git", "node"]), any::<bool>())
            .prop_map(|(bin, nested)| Cap::Exec { bin, nested }),
        1 => (prop::sample::select(vec!["A", "DISPLAY"]), any::<bool>())
            .prop_map(|(name, inject)| Cap::Env { name, inject }),
        1 => prop::sample::select(vec!["x11", "dbus:system", "unix:/run/a/s.sock"]).prop_map(Cap::Ipc),
        1 => prop::sample::select(vec!["system", "tzdata"]).prop_map(Cap::Clock),
        1 => (prop::sample::select(vec!["p", "q"]), prop::sample::select(vec!["d1", "d2"]))
            .prop_map(|(id, desc)| Cap::Assert { id, desc }),
    ]
}

/// Capabilities split over the tools in contiguous runs, so declaration order is list order.
fn manifest(caps: &[Cap], tool_names: &[&str]) -> String {
    let n = tool_names.len().max(1);
    let per = caps.len().div_ceil(n).max(1);
    let mut tools: Vec<Vec<String>> = vec![Vec::new(); n];
    for (i, c) in caps.iter().enumerate() {
        tools[i / per].push(c.text());
    }
    let tools: Vec<serde_json::Value> = tools
        .into_iter()
        .enumerate()
        .map(|(i, caps)| {
            serde_json::json!({ "name": tool_names.get(i).copied().unwrap_or("t"), "capabilities": caps })
        })
        .collect();
    serde_json::json!({ "name": "m", "version": "1", "tools": tools }).to_string()
}

fn run(old: &str, new: &str) -> DiffReport {
    diff(
        Input {
            name: "old.json",
            bytes: old.as_bytes(),
        },
        Input {
            name: "new.json",
            bytes: new.as_bytes(),
        },
        &[],
        &Assets::default(),
    )
    .expect("generated manifests are valid")
}

/// The model: what a list of capabilities reaches, evaluated point by point.
struct Model<'a>(&'a [Cap]);

fn closure(actions: &[&str]) -> BTreeSet<&'static str> {
    let mut s: BTreeSet<&'static str> = actions
        .iter()
        .map(|a| *ACTIONS.iter().find(|b| *b == a).unwrap())
        .collect();
    if s.contains("delete") {
        s.insert("write");
    }
    if s.iter().any(|a| *a != "read") {
        s.insert("read");
    }
    s
}

fn is_public_ip(h: &str) -> bool {
    h == "1.2.3.4" || h == "5.6.7.8"
}

fn is_ip(h: &str) -> bool {
    h.chars().all(|c| c.is_ascii_digit() || c == '.')
}

impl Model<'_> {
    fn fs(&self, x: &str) -> BTreeSet<&'static str> {
        let mut out = BTreeSet::new();
        for c in self.0 {
            if let Cap::Fs {
                segs,
                glob,
                actions,
            } = c
            {
                let p = format!("/r/{}", segs.join("/"));
                let below = x.starts_with(&format!("{p}/"));
                let hit = match *glob {
                    "/*" => below,
                    _ => below || x == p,
                };
                if hit {
                    out.extend(closure(actions));
                }
            }
        }
        out
    }

    fn net(&self, host: &str, port: u16) -> bool {
        self.0.iter().any(|c| match c {
            Cap::Net { host: h, port: p } => {
                let host_ok = match *h {
                    "*" => !is_ip(host) || is_public_ip(host),
                    h if h.starts_with("*.") => {
                        !is_ip(host) && host.ends_with(&h[1..]) && host.len() > h.len() - 1
                    }
                    h => h == host,
                };
                host_ok && p.is_none_or(|p| p == port)
            }
            _ => false,
        })
    }

    fn exec(&self) -> BTreeMap<&'static str, bool> {
        let mut m = BTreeMap::new();
        for c in self.0 {
            if let Cap::Exec { bin, nested } = c {
                *m.entry(*bin).or_insert(false) |= nested;
            }
        }
        m
    }

    /// Variable → 1 read, 2 inject (x11 passes DISPLAY).
    fn env(&self) -> BTreeMap<&'static str, u8> {
        let mut m = BTreeMap::new();
        for c in self.0 {
            let (name, level) = match c {
                Cap::Env { name, inject } => (*name, if *inject { 2 } else { 1 }),
                Cap::Ipc("x11") => ("DISPLAY", 2),
                _ => continue,
            };
            let e = m.entry(name).or_insert(0);
            *e = (*e).max(level);
        }
        m
    }

    fn ipc(&self) -> BTreeSet<&'static str> {
        self.0
            .iter()
            .filter_map(|c| match c {
                Cap::Ipc(e) => Some(*e),
                _ => None,
            })
            .collect()
    }

    fn clock(&self) -> u8 {
        self.0
            .iter()
            .map(|c| match c {
                Cap::Clock("tzdata") => 2,
                Cap::Clock(_) => 1,
                _ => 0,
            })
            .max()
            .unwrap_or(0)
    }

    fn asserts(&self) -> BTreeMap<&'static str, &'static str> {
        let mut m = BTreeMap::new();
        for c in self.0 {
            if let Cap::Assert { id, desc } = c {
                m.insert(*id, *desc);
            }
        }
        m
    }
}

fn fs_points() -> Vec<String> {
    let segs = ["a", "b", "c", "z"];
    let mut out = vec!["/r".to_owned()];
    let mut frontier = vec!["/r".to_owned()];
    for _ in 0..4 {
        let mut next = Vec::new();
        for p in &frontier {
            for s in segs {
                next.push(format!("{p}/{s}"));
            }
        }
        out.extend(next.iter().cloned());
        frontier = next;
    }
    out
}

const NET_POINTS: [&str; 12] = [
    "a.com",
    "b.com",
    "b.a.com",
    "c.b.a.com",
    "z.a.com",
    "z.b.a.com",
    "z.com",
    "com",
    "zz.org",
    "1.2.3.4",
    "10.0.0.1",
    "5.6.7.8",
];

/// Whether the model finds anything `new` reaches that `old` does not.
fn model_widens(old: &[Cap], new: &[Cap]) -> Vec<String> {
    let (o, n) = (Model(old), Model(new));
    let mut found = Vec::new();
    for x in fs_points() {
        if !n.fs(&x).is_subset(&o.fs(&x)) {
            found.push(format!("fs {x}"));
        }
    }
    for h in NET_POINTS {
        for p in [80, 443, 22] {
            if n.net(h, p) && !o.net(h, p) {
                found.push(format!("net {h}:{p}"));
            }
        }
    }
    let (oe, ne) = (o.exec(), n.exec());
    for (b, nested) in &ne {
        match oe.get(b) {
            None => found.push(format!("exec {b}")),
            Some(false) if *nested => found.push(format!("nested {b}")),
            _ => {}
        }
    }
    let (oe, ne) = (o.env(), n.env());
    for (v, level) in &ne {
        if oe.get(v).copied().unwrap_or(0) < *level {
            found.push(format!("env {v}"));
        }
    }
    if !n.ipc().is_subset(&o.ipc()) {
        found.push("ipc".into());
    }
    if n.clock() > o.clock() {
        found.push("clock".into());
    }
    let na = n.asserts();
    for (id, desc) in o.asserts() {
        if na.get(id) != Some(&desc) {
            found.push(format!("assert {id}"));
        }
    }
    found
}

/// Every witness capgate names is one in the model: NEW has the access there, OLD does not.
fn check_witnesses(report: &DiffReport, old: &[Cap], new: &[Cap]) {
    let (o, n) = (Model(old), Model(new));
    for c in &report.added {
        let w = c.witness.as_str();
        match c.kind {
            "fs" => {
                let (nf, of) = (n.fs(w), o.fs(w));
                for a in &c.access {
                    assert!(
                        nf.contains(a.as_str()) && !of.contains(a.as_str()),
                        "fs witness {w} {a}: new {nf:?} old {of:?}"
                    );
                }
            }
            "net" => {
                let (h, p) = w.rsplit_once(':').unwrap();
                let p: u16 = p.parse().unwrap();
                assert!(n.net(h, p) && !o.net(h, p), "net witness {w}");
            }
            "exec" => assert!(n.exec().contains_key(w) && !o.exec().contains_key(w)),
            "nestedSandbox" => {
                assert_eq!(n.exec().get(w), Some(&true));
                assert_ne!(o.exec().get(w), Some(&true));
            }
            "env" => assert!(n.env()[w] > o.env().get(w).copied().unwrap_or(0), "env {w}"),
            "ipc" => {
                let e = w.trim_start_matches("unix:");
                let in_set =
                    |s: BTreeSet<&str>| s.iter().any(|x| x.trim_start_matches("unix:") == e);
                assert!(in_set(n.ipc()) && !in_set(o.ipc()), "ipc {w}");
            }
            "clock" => assert!(n.clock() > o.clock()),
            "assert" => assert_ne!(n.asserts().get(w), o.asserts().get(w)),
            k => panic!("unknown kind {k}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn diff_agrees_with_the_brute_force_model(
        old in prop::collection::vec(cap(), 0..6),
        new in prop::collection::vec(cap(), 0..6),
    ) {
        let report = run(&manifest(&old, &["t1", "t2"]), &manifest(&new, &["u1"]));
        let model = model_widens(&old, &new);
        prop_assert_eq!(report.widens, !model.is_empty(), "model found {:?}; capgate {:?}", model, report.added);
        check_witnesses(&report, &old, &new);
        // `removed` is `added` with the roles swapped (assertions aside).
        let back = run(&manifest(&new, &["u1"]), &manifest(&old, &["t1", "t2"]));
        let strip = |l: &[capgate::diff::Change]| -> Vec<(String, String)> {
            l.iter().filter(|c| c.kind != "assert").map(|c| (c.kind.to_owned(), c.witness.clone())).collect()
        };
        prop_assert_eq!(strip(&report.removed), strip(&back.added));
    }

    #[test]
    fn a_subset_of_grants_never_widens(
        caps in prop::collection::vec(cap(), 1..8),
        keep in prop::collection::vec(any::<bool>(), 8),
    ) {
        // Dropping grants never widens, except dropping an assertion (a promise).
        let kept: Vec<Cap> = caps
            .iter()
            .zip(&keep)
            .filter(|(c, k)| **k || matches!(c, Cap::Assert { .. }))
            .map(|(c, _)| c.clone())
            .collect();
        let report = run(&manifest(&caps, &["t"]), &manifest(&kept, &["t"]));
        prop_assert!(!report.widens, "{:?}", report.added);
    }

    #[test]
    fn reordering_and_renaming_tools_changes_nothing(
        caps in prop::collection::vec(cap(), 0..8),
        seed in any::<u64>(),
    ) {
        // One description per id: with several, the last declared wins, so order would matter.
        let caps: Vec<Cap> = caps
            .into_iter()
            .map(|c| match c {
                Cap::Assert { id, .. } => Cap::Assert { id, desc: "d1" },
                c => c,
            })
            .collect();
        let mut shuffled = caps.clone();
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let j = (s >> 33) as usize % (i + 1);
            shuffled.swap(i, j);
        }
        let report = run(&manifest(&caps, &["a", "b"]), &manifest(&shuffled, &["renamed", "x", "y"]));
        prop_assert!(!report.widens, "{:?}", report.added);
        prop_assert!(report.removed.is_empty(), "{:?}", report.removed);
    }
}

#[test]
fn model_finds_the_brief_examples() {
    // The model itself is not vacuous: it sees the two documented widenings.
    let old = [Cap::Fs {
        segs: vec!["a", "a"],
        glob: "/**",
        actions: vec!["read"],
    }];
    let new = [Cap::Fs {
        segs: vec!["a"],
        glob: "/**",
        actions: vec!["read"],
    }];
    assert!(model_widens(&old, &new).contains(&"fs /r/a/z".to_owned()));
    let old = [Cap::Net {
        host: "b.a.com",
        port: Some(443),
    }];
    let new = [Cap::Net {
        host: "*.a.com",
        port: Some(443),
    }];
    let found = model_widens(&old, &new);
    assert!(found.contains(&"net z.a.com:443".to_owned()), "{found:?}");
    assert!(!found.contains(&"net b.a.com:443".to_owned()), "{found:?}");
}

/// Boundary cases the random search hits rarely, each checked against the model too.
#[test]
fn boundary_cases() {
    let fs = |segs: &[&'static str], glob: &'static str, actions: &[&'static str]| Cap::Fs {
        segs: segs.to_vec(),
        glob,
        actions: actions.to_vec(),
    };
    let net = |host: &'static str, port: Option<u16>| Cap::Net { host, port };
    // (OLD, NEW, the one expected witness or none)
    type Case = (Vec<Cap>, Vec<Cap>, Option<(&'static str, &'static str)>);
    let cases: Vec<Case> = vec![
        // `/a/*` does not reach `/a` itself; `/a` and `/a/**` do.
        (
            vec![fs(&["a"], "/*", &["read"])],
            vec![fs(&["a"], "", &["read"])],
            Some(("fs", "/r/a")),
        ),
        (
            vec![fs(&["a"], "", &["read"])],
            vec![fs(&["a"], "/**", &["read"])],
            None,
        ),
        (
            vec![fs(&["a"], "/**", &["read"])],
            vec![fs(&["a"], "/*", &["read"])],
            None,
        ),
        (
            vec![fs(&["a"], "/*", &["read"])],
            vec![fs(&["a", "b"], "/**", &["read"])],
            None,
        ),
        // Actions: delete implies write and read; create is its own.
        (
            vec![fs(&["a"], "", &["write"])],
            vec![fs(&["a"], "", &["create"])],
            Some(("fs", "/r/a")),
        ),
        (
            vec![fs(&["a"], "", &["delete"])],
            vec![fs(&["a", "b"], "", &["read", "write"])],
            None,
        ),
        // Read from one grant and write from another cover a read-write grant.
        (
            vec![
                fs(&["a"], "/**", &["read"]),
                fs(&["a", "b"], "/**", &["write"]),
            ],
            vec![fs(&["a", "b"], "", &["read", "write"])],
            None,
        ),
        // Hosts: `*.d` is not `d`; `*` is not a private address; ports.
        (
            vec![net("*.a.com", None)],
            vec![net("a.com", Some(443))],
            Some(("net", "a.com:443")),
        ),
        (
            vec![net("*.com", None)],
            vec![net("*.a.com", Some(80))],
            None,
        ),
        (
            vec![net("*", None)],
            vec![net("10.0.0.1", Some(80))],
            Some(("net", "10.0.0.1:80")),
        ),
        (vec![net("*", None)], vec![net("1.2.3.4", Some(80))], None),
        (
            vec![net("a.com", Some(443))],
            vec![net("a.com", None)],
            Some(("net", "a.com:80")),
        ),
        (
            vec![net("*.a.com", Some(443)), net("b.a.com", None)],
            vec![net("*.a.com", None)],
            Some(("net", "x.a.com:80")),
        ),
        (
            vec![net("*.a.com", Some(443))],
            vec![net("*", Some(443))],
            Some(("net", "example.net:443")),
        ),
        // DISPLAY comes with x11, whatever the order.
        (
            vec![Cap::Ipc("x11")],
            vec![
                Cap::Env {
                    name: "DISPLAY",
                    inject: false,
                },
                Cap::Ipc("x11"),
            ],
            None,
        ),
        (
            vec![Cap::Env {
                name: "DISPLAY",
                inject: false,
            }],
            vec![Cap::Env {
                name: "DISPLAY",
                inject: true,
            }],
            Some(("env", "DISPLAY")),
        ),
        (
            vec![Cap::Exec {
                bin: "git",
                nested: false,
            }],
            vec![Cap::Exec {
                bin: "git",
                nested: true,
            }],
            Some(("nestedSandbox", "git")),
        ),
        (vec![Cap::Clock("tzdata")], vec![Cap::Clock("system")], None),
        (
            vec![Cap::Assert {
                id: "p",
                desc: "d1",
            }],
            vec![Cap::Assert {
                id: "p",
                desc: "d2",
            }],
            Some(("assert", "p")),
        ),
    ];
    for (old, new, expect) in cases {
        let report = run(&manifest(&old, &["t"]), &manifest(&new, &["t"]));
        let got: Vec<(&str, &str)> = report
            .added
            .iter()
            .map(|c| (c.kind, c.witness.as_str()))
            .collect();
        match expect {
            Some(w) => assert_eq!(got, [w], "{old:?} -> {new:?}"),
            None => assert!(got.is_empty(), "{old:?} -> {new:?}: {got:?}"),
        }
        assert_eq!(
            report.widens,
            !model_widens(&old, &new).is_empty(),
            "model disagrees on {old:?} -> {new:?}"
        );
        check_witnesses(&report, &old, &new);
    }
}

// ---------------------------------------------------------------- under the real tool

/// Runs the probe in the compiled bwrap sandbox of `manifest` and returns its facts.
fn probe_bwrap(manifest: &str, req: &serde_json::Value) -> serde_json::Value {
    let artifact = support::compile("m.json", manifest, "bwrap", false, &[]);
    let (argv, _) = support::argv(&artifact);
    let launch = support::launcher(&artifact);
    let mut c = support::bwrap_command(&launch, &argv);
    c.args(["--", "/usr/bin/python3", "-c", support::PROBE_PY, "facts"]);
    c.arg(req.to_string());
    let out = support::run(&mut c, std::time::Duration::from_secs(30));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "no facts: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Every fs witness `capgate diff` names is reachable in NEW's bwrap sandbox
/// and not in OLD's: the witness is real, not an artefact of the model.
/// Four spellings of a widening: a parent glob, a mode, `*` over a file, a
/// writable tree over a read-only one with a writable child.
#[test]
fn fs_witnesses_are_reachable_under_bwrap_only_with_new() {
    if !support::require(
        "fs_witnesses_are_reachable_under_bwrap_only_with_new",
        &["bwrap", "setpriv"],
        true,
    ) {
        return;
    }
    let root = support::TempDir::new("diff");
    let r = support::s(&root.path);
    root.file("data/a/in-old", "old\n", 0o644);
    root.dir("w", 0o777);
    root.file("f/a.txt", "a\n", 0o644);
    root.dir("g/sub", 0o777);
    chmod_tree(&root.join("g"));
    let cases: [(&[String], &[String]); 4] = [
        (
            &[format!("fs:read:{r}/data/a/**")],
            &[format!("fs:read:{r}/data/**")],
        ),
        (
            &[format!("fs:read:{r}/w/**")],
            &[format!("fs:read,write:{r}/w/**")],
        ),
        (
            &[format!("fs:read:{r}/f/a.txt")],
            &[format!("fs:read:{r}/f/*")],
        ),
        (
            &[
                format!("fs:read:{r}/g/**"),
                format!("fs:write:{r}/g/sub/**"),
            ],
            &[format!("fs:write:{r}/g/**")],
        ),
    ];
    let dir = support::TempDir::new("diff-manifests");
    for (i, (old, new)) in cases.iter().enumerate() {
        let m = |caps: &[String]| {
            serde_json::json!({"name": "m", "version": "1", "tools": [{"name": "t", "capabilities": caps}]})
                .to_string()
        };
        let (old_m, new_m) = (m(old), m(new));
        support::materialize(&old_m);
        support::materialize(&new_m);
        let old_path = dir.file(&format!("old{i}.json"), &old_m, 0o644);
        let new_path = dir.file(&format!("new{i}.json"), &new_m, 0o644);
        let o = capgate(&[
            "diff",
            &support::s(&old_path),
            &support::s(&new_path),
            "--format",
            "json",
        ]);
        assert_eq!(o.status.code(), Some(1), "case {i}: {}", stdout(&o));
        let v = json(&o);
        let added = v["added"].as_array().unwrap();
        assert!(!added.is_empty(), "case {i}");
        for w in added {
            assert_eq!(w["kind"], "fs", "case {i}: {w}");
            let path = w["witness"].as_str().unwrap().to_owned();
            let write = w["access"].as_array().unwrap().iter().any(|a| a != "read");
            let req = if write {
                let _ = std::fs::remove_file(&path);
                serde_json::json!({ "write": [[path, "from-sandbox\n"]] })
            } else {
                std::fs::write(&path, "witness\n").unwrap();
                support::chmod(std::path::Path::new(&path), 0o644);
                serde_json::json!({ "read": [path] })
            };
            let field = if write { "write" } else { "read" };
            let before = probe_bwrap(&old_m, &req);
            assert_eq!(
                before[field][&path]["ok"], false,
                "case {i}: OLD already reaches the witness {path}: {}",
                before[field]
            );
            let after = probe_bwrap(&new_m, &req);
            assert_eq!(
                after[field][&path]["ok"], true,
                "case {i}: NEW does not reach the witness {path}: {}",
                after[field]
            );
            if write {
                assert_eq!(
                    std::fs::read_to_string(&path).unwrap(),
                    "from-sandbox\n",
                    "case {i}: the host sees NEW's write"
                );
            }
        }
    }
}

/// Directories the sandbox user may write into.
fn chmod_tree(p: &std::path::Path) {
    support::chmod(p, 0o777);
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() {
            chmod_tree(&e);
        }
    }
}

/// Two namespaces joined by a veth: the client (where the ruleset is loaded)
/// and the server (listeners on `ports`). No default route: nothing leaves.
fn veth_pair(ports: &[u16], log: &std::path::Path) -> (support::Netns, support::Netns) {
    let client = support::Netns::new();
    let mut server = support::Netns::new();
    let id = support::short();
    let (ci, si) = (format!("dc{id}"), format!("ds{id}"));
    support::ok(&mut support::cmd(
        "ip",
        &[
            "link",
            "add",
            &ci,
            "netns",
            &client.name,
            "type",
            "veth",
            "peer",
            "name",
            &si,
            "netns",
            &server.name,
        ],
    ));
    for (ns, dev, addrs) in [
        (&client, &ci, ["11.0.0.1/24", "10.0.0.1/24"]),
        (&server, &si, ["11.0.0.2/24", "10.0.0.5/24"]),
    ] {
        for a in addrs {
            ns.ip(&["addr", "add", a, "dev", dev]);
        }
        ns.ip(&["link", "set", dev, "up"]);
    }
    let endpoints: Vec<String> = ports.iter().map(|p| format!("tcp:0.0.0.0:{p}")).collect();
    let proc = support::serve("diff servers", &server.exec_prefix(), log, &endpoints);
    server.adopt(proc);
    (client, server)
}

/// Whether a TCP connection from the client namespace to `host:port` is answered.
fn connects(client: &support::Netns, host: &str, port: u16, token: &str) -> bool {
    let list = serde_json::json!([["tcp", host, port, token]]);
    let out = support::ok(&mut client.exec(
        &support::python(),
        &["-c", support::PROBE_PY, "connect", "2.0", &list.to_string()],
    ));
    let results: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    results[0]["ok"] == true
        && results[0]["reply"]
            .as_str()
            .is_some_and(|r| r.contains(&format!("UPSTREAM {host} {port}")))
}

/// Every net witness `capgate diff` names for IP grants is reachable through
/// NEW's nftables ruleset and dropped by OLD's. Three spellings: a port
/// widened to every port, a declared private address widened likewise, and a
/// private address next to `*` (which never covers special ranges).
#[test]
fn net_witnesses_are_reachable_under_nftables_only_with_new() {
    if !support::require(
        "net_witnesses_are_reachable_under_nftables_only_with_new",
        &["nft", "ip", "python3"],
        true,
    ) {
        return;
    }
    let dir = support::TempDir::new("diff-nft");
    let log = dir.file("server.log", "", 0o666);
    let (client, _server) = veth_pair(&[80, 443, 5432], &log);
    let cases: [(&[&str], &[&str], &str); 3] = [
        (
            &["net:connect:11.0.0.2:443"],
            &["net:connect:11.0.0.2"],
            "11.0.0.2:80",
        ),
        (
            &["net:connect:10.0.0.5:5432"],
            &["net:connect:10.0.0.5"],
            "10.0.0.5:443",
        ),
        (
            &["net:connect:*", "net:connect:11.0.0.2:443"],
            &["net:connect:11.0.0.2:443", "net:connect:10.0.0.5:443"],
            "10.0.0.5:443",
        ),
    ];
    // Control: without a ruleset every listener answers.
    assert!(connects(&client, "11.0.0.2", 80, "control"));
    assert!(connects(&client, "10.0.0.5", 443, "control"));
    for (i, (old, new, want)) in cases.iter().enumerate() {
        let m = |caps: &[&str]| {
            serde_json::json!({"name": "m", "version": "1", "tools": [{"name": "t", "capabilities": caps}]})
                .to_string()
        };
        let (old_m, new_m) = (m(old), m(new));
        let old_path = dir.file(&format!("old{i}.json"), &old_m, 0o644);
        let new_path = dir.file(&format!("new{i}.json"), &new_m, 0o644);
        let o = capgate(&[
            "diff",
            &support::s(&old_path),
            &support::s(&new_path),
            "--format",
            "json",
        ]);
        assert_eq!(o.status.code(), Some(1), "case {i}: {}", stdout(&o));
        let v = json(&o);
        assert_eq!(
            witnesses(&v, "added"),
            [("net".to_owned(), (*want).to_owned())],
            "case {i}"
        );
        let (host, port) = want.rsplit_once(':').unwrap();
        let port: u16 = port.parse().unwrap();
        for (label, manifest, reach) in [("OLD", &old_m, false), ("NEW", &new_m, true)] {
            // `*` has no nftables form: it is unenforceable (dropped), as `compile --permissive` says.
            let artifact = support::compile(label, manifest, "nftables", true, &[]);
            let rules = dir.file(
                &format!("{label}{i}.nft"),
                &support::config(&artifact),
                0o644,
            );
            support::ok(&mut client.exec("nft", &["-f", &support::s(&rules)]));
            assert_eq!(
                connects(&client, host, port, &format!("case{i}-{label}")),
                reach,
                "case {i}: {label} and the witness {want}"
            );
        }
    }
}
