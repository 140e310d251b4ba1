//! The injection corpus (`fixtures/injection/*.json`): hostile manifests, one
//! attack each. For every case, every target, strict and permissive, compile
//! must either fail with coded, located diagnostics or produce a policy that
//! keeps its output format's structure and grants nothing undeclared
//! (`tests/hostile`). Successful squid and nftables outputs are also run
//! through `squid -k parse` and `nft -c` when those tools are installed
//! (required with CI=true). The snapshots in tests/compile.rs show each outcome.

mod common;
mod hostile;

use std::collections::BTreeSet;
use std::path::PathBuf;

use capgate::artifact::Artifact;
use capgate::diag::Code;
use common::{compile, display, root, TARGETS};
use hostile::Declared;

fn corpus() -> Vec<PathBuf> {
    let dir = root().join("fixtures/injection");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures/injection exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn corpus_is_large_and_every_case_says_what_it_attacks() {
    let files = corpus();
    assert!(files.len() >= 60, "only {} injection cases", files.len());
    for f in &files {
        let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
        // Cases that are invalid JSON on purpose still carry the key textually.
        let described = match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) => v["description"]
                .as_str()
                .is_some_and(|d| d.trim().len() >= 5),
            Err(_) => text.contains("\"description\": \""),
        };
        assert!(described, "{} has no \"description\"", display(f));
    }
}

/// Every case, every target, strict and permissive.
#[test]
fn every_case_is_rejected_with_a_located_code_or_lowered_safely() {
    let mut rejected = 0;
    let mut lowered = 0;
    let mut failures = Vec::new();
    for path in corpus() {
        let bytes = std::fs::read(&path).unwrap();
        let declared = Declared::from_manifest(&bytes);
        let name = display(&path);
        for target in TARGETS {
            for permissive in [false, true] {
                let result = match compile(&path, target, permissive) {
                    Err(diags) => {
                        rejected += 1;
                        hostile::check_diagnostics(&diags, &name, true)
                    }
                    Ok(out) => {
                        lowered += 1;
                        hostile::check_artifact(target, &out.artifact, &declared)
                    }
                };
                if let Err(e) = result {
                    failures.push(format!("{name} → {target} (permissive: {permissive}): {e}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        rejected > 0 && lowered > 0,
        "rejected {rejected}, lowered {lowered}"
    );
}

/// The injection cases SPEC §13 found in the reference tool, and the other
/// classic attacks, are refused with their exact codes by every target.
#[test]
fn known_attacks_are_refused_with_their_codes() {
    let expected = [
        ("inject-squid-newline", Code::CapChar),
        ("inject-squid-space-list", Code::CapNetHost),
        ("inject-nft-newline", Code::CapChar),
        ("nft-ipv6-any-cidr", Code::CapNetHost),
        ("host-cidr-v4-any", Code::CapNetHost),
        ("path-newline-argv-bind-root", Code::CapChar),
        ("path-comma-docker-mount", Code::CapFsPath),
        ("path-dotdot", Code::CapFsPath),
        ("path-glob-mid", Code::CapFsGlob),
        ("exec-leading-dash", Code::CapExecName),
        ("env-leading-dash", Code::CapEnvName),
        ("env-ld-preload", Code::CapEnvDangerous),
        ("host-homoglyph-cyrillic", Code::CapNetHost),
        ("path-bidi-override", Code::CapChar),
        ("host-ipv4-mapped", Code::CapNetHostSpecial),
        ("host-ipv4-zero-padded", Code::CapNetHost),
        ("host-ipv4-short", Code::CapNetHost),
        ("host-ipv4-hex", Code::CapNetHost),
        ("port-suffix", Code::CapNetPort),
        ("port-plus", Code::CapNetPort),
        ("port-zero", Code::CapNetPort),
        ("port-65536", Code::CapNetPort),
        ("refinement-unknown", Code::CapRefinement),
        ("refinement-repeated", Code::CapRefinement),
        ("refinement-wrong-kind", Code::CapRefinement),
        ("refinement-bad-value", Code::CapRefinement),
        ("ipc-unix-root", Code::CapIpcSocket),
        ("ipc-unix-top-dir", Code::CapIpcSocket),
        ("ipc-docker-socket", Code::CapIpcSocket),
        ("ipc-unix-proc-root", Code::CapIpcSocket),
        (
            "manifest-duplicate-capabilities",
            Code::ManifestDuplicateKey,
        ),
        ("manifest-raw-newline-in-string", Code::InputJson),
    ];
    for (case, code) in expected {
        let path = root().join(format!("fixtures/injection/{case}.json"));
        for target in TARGETS {
            for permissive in [false, true] {
                match compile(&path, target, permissive) {
                    Ok(_) => panic!("{case} compiled for {target}"),
                    Err(d) => assert_eq!(d[0].code, code, "{case} for {target}: {}", d[0].render()),
                }
            }
        }
    }
}

/// A host that only looks private (`10.example.com`) is a public name: squid
/// allows it only after the special-range deny, which applies to whatever it
/// resolves to.
#[test]
fn private_looking_name_stays_behind_the_special_range_deny() {
    let path = root().join("fixtures/injection/host-private-prefix-name.json");
    let out = compile(&path, "squid", false).expect("compiles");
    let Artifact::Config(c) = out.artifact else {
        panic!("squid gives a config")
    };
    let lines: Vec<&str> = c.config.lines().collect();
    let deny = lines
        .iter()
        .position(|l| *l == "http_access deny capgate_special")
        .unwrap();
    let acl = lines
        .iter()
        .position(|l| {
            l.starts_with("acl capgate_dst_") && l.ends_with("dstdomain -n 10.example.com")
        })
        .unwrap();
    assert!(deny < acl, "{}", c.config);
    assert!(c.egress.iter().all(|e| e.block_private));
}

/// squid -k parse and nft -c accept every config the corpus compiles to.
#[test]
fn external_validators_accept_every_lowered_config() {
    let mut squid = BTreeSet::new();
    let mut nft = BTreeSet::new();
    for path in corpus() {
        for (target, set) in [("squid", &mut squid), ("nftables", &mut nft)] {
            if let Ok(out) = compile(&path, target, true) {
                if let Artifact::Config(c) = out.artifact {
                    set.insert(c.config);
                }
            }
        }
    }
    assert!(!squid.is_empty() && !nft.is_empty());
    if hostile::tool_available("squid") {
        for c in &squid {
            hostile::squid_parse(c).unwrap();
        }
    }
    if hostile::tool_available("nft") && hostile::tool_available("unshare") {
        for c in &nft {
            hostile::nft_check(c).unwrap();
        }
    }
}

/// The checkers themselves must catch what they are for: feed them outputs
/// with an injected grant and see them fail.
#[test]
fn checkers_catch_injected_grants() {
    let path = root().join("fixtures/injection/host-private-prefix-name.json");
    let declared = Declared::from_manifest(&std::fs::read(&path).unwrap());
    let out = compile(&path, "squid", false).unwrap();
    let Artifact::Config(c) = out.artifact else {
        unreachable!()
    };
    hostile::check_squid(&c.config, &declared).unwrap();
    for (from, to) in [
        (
            "http_access deny all",
            "http_access allow all\nhttp_access deny all",
        ),
        (
            "http_access deny all",
            "http_access deny all\nhttp_access allow all",
        ),
        (
            "capgate_dst_0 dstdomain -n 10.example.com",
            "capgate_dst_0 dstdomain -n 10.example.com .",
        ),
        (
            "capgate_dst_0 dstdomain -n 10.example.com",
            "capgate_dst_0 dstdomain -n evil.example",
        ),
        ("port 443", "port 22"),
        ("http_access deny capgate_special\n", ""),
        (
            "cache deny all",
            "cache deny all\nhttp_port 0.0.0.0:3129 # x",
        ),
        ("http_access deny manager\n", ""),
        ("http_access deny !capgate_declared\n", ""),
        (
            "http_access deny manager",
            "http_access allow all\nhttp_access deny manager",
        ),
    ] {
        let bad = c.config.replacen(from, to, 1);
        assert!(
            hostile::check_squid(&bad, &declared).is_err(),
            "not caught: {to}"
        );
    }

    let path = root().join("fixtures/injection/host-metadata-ip.json");
    let declared = Declared::from_manifest(&std::fs::read(&path).unwrap());
    let out = compile(&path, "nftables", false).unwrap();
    let Artifact::Config(c) = out.artifact else {
        unreachable!()
    };
    hostile::check_nft(&c.config, &declared).unwrap();
    for (from, to) in [
        ("tcp dport 80 accept", "tcp dport 1-65535 accept"),
        ("ip daddr 169.254.169.254", "ip daddr 169.254.169.253"),
        ("policy drop;", "policy accept;"),
        (
            "tcp dport 80 accept",
            "tcp dport 80 accept; ip daddr 0.0.0.0/0 accept",
        ),
        ("tcp dport 80 accept", "tcp dport 80 accept }"),
        (
            "    oifname",
            "    ip daddr 8.8.8.8 tcp dport 53 accept\n    oifname",
        ),
        // Inbound: the input chain dropped, opened, or given an accept.
        ("type filter hook input priority 0; policy drop;", "type filter hook input priority 0; policy accept;"),
        ("    iifname \"lo\" accept", "    tcp dport 22 accept"),
        ("    iifname \"lo\" accept", "    iifname \"lo\" accept\n    ip saddr 10.0.0.0/8 accept"),
        (
            "  chain ingress {\n    type filter hook input priority 0; policy drop;\n    iifname \"lo\" accept\n    ct state established,related accept\n    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept\n  }\n",
            "",
        ),
    ] {
        let bad = c.config.replacen(from, to, 1);
        assert_ne!(bad, c.config, "the injection {from:?} found nothing to replace");
        assert!(
            hostile::check_nft(&bad, &declared).is_err(),
            "not caught: {to}"
        );
    }

    let path = root().join("fixtures/injection/path-file-write-no-parent.json");
    let declared = Declared::from_manifest(&std::fs::read(&path).unwrap());
    for target in ["bwrap", "docker"] {
        let out = compile(&path, target, false).unwrap();
        let Artifact::Argv(a) = out.artifact else {
            unreachable!()
        };
        hostile::check_artifact(target, &Artifact::Argv(a.clone()), &declared).unwrap();
        let replace = |from: &str, to: &[&str]| {
            let mut argv = a.argv.clone();
            if let Some(i) = argv.iter().position(|e| e == from) {
                argv.splice(i..=i, to.iter().map(|s| s.to_string()));
            }
            argv
        };
        let bads: Vec<Vec<String>> = if target == "bwrap" {
            vec![
                a.argv
                    .iter()
                    .map(|e| e.replace("/etc/app.conf", "/etc"))
                    .collect(),
                replace(
                    "--clearenv",
                    &["--clearenv", "--setenv", "LD_PRELOAD", "/x.so"],
                ),
                replace("--ro-bind-try", &["--bind"]),
                replace("--unshare-net", &[]),
                replace("/etc/app.conf", &["/etc/app.conf\n--bind"]),
            ]
        } else {
            vec![
                replace(
                    "type=bind,source=/etc/app.conf,target=/etc/app.conf",
                    &["type=bind,source=/etc,target=/etc"],
                ),
                replace("none", &["host"]),
                replace("--rm", &["--rm", "--env", "SECRET"]),
                replace("--rm", &["--rm", "--privileged"]),
                replace("--rm", &["--rm", "--env", "-e"]),
            ]
        };
        for bad in bads {
            assert_ne!(bad, a.argv);
            let mut art = a.clone();
            art.argv = bad.clone();
            assert!(
                hostile::check_artifact(target, &Artifact::Argv(art), &declared).is_err(),
                "not caught for {target}: {bad:?}"
            );
        }
    }
}

/// The host paths the oracles accept beside the declared ones are bound or
/// read from the host at every start, so no writable declaration may hold
/// one: the sandbox could replace it with a symlink that the next start
/// follows. Every ancestor (but `/`) is refused writable, as a path and as a
/// tree (`SYSTEM_BIND_SOURCES`, or a reserved tree such as /proc). Writable
/// at or below a source is the declaration's own grant: its parent, which
/// holds the name, stays read-only. A source added to a template without the
/// grammar knowing fails here.
#[test]
fn no_writable_declaration_holds_a_source_bound_beside_the_declared_paths() {
    // capgate run's tool directories too (the host's root PATH), where even
    // the directory itself may not be writable: a tool planted in it runs.
    let bound = hostile::undeclared_sources()
        .into_iter()
        .map(|s| (s, false));
    let tools = capgate::run::TOOL_DIRS.split(':').map(|s| (s, true));
    for (source, itself) in bound.chain(tools) {
        let mut paths: Vec<String> = Vec::new();
        if itself {
            paths.extend([source.to_owned(), format!("{source}/**")]);
            // A file in one of these is a root command; /usr/bin's files are root's.
            if capgate::syntax::TOOL_DIRS_RESERVED.contains(&source) {
                paths.push(format!("{source}/ip"));
            }
        }
        let mut dir = std::path::Path::new(source);
        while let Some(parent) = dir.parent().filter(|p| *p != std::path::Path::new("/")) {
            paths.push(parent.display().to_string());
            paths.push(format!("{}/**", parent.display()));
            dir = parent;
        }
        for path in paths {
            let cap = format!("fs:read,write,create,delete:{path}");
            if let Ok(c) = capgate::syntax::parse_capability(&cap) {
                panic!(
                    "{cap} is accepted ({c:?}) though {source} is bound beside the declared paths"
                );
            }
        }
    }
}
