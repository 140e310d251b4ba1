//! Property tests (proptest) for the guarantees capgate makes on any input:
//!
//! - any accepted manifest, for every target, grants nothing undeclared: every
//!   bind is a declared path, socket or the documented read-only baseline, with
//!   the declared mode or narrower; every squid allow and nftables accept is a
//!   declared destination and port; only declared env names pass
//!   (`tests/hostile` has the checkers). The generator keeps its own model of
//!   what it declared, independent of capgate's parser.
//! - the escapers never accept a value that could change the output's structure;
//! - the grammar never panics, its error spans always fit the input, and an
//!   accepted capability re-parses from its canonical form to the same value.
//!
//! Case counts keep the whole file well under 20 s in a debug build.

mod common;
mod hostile;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use capgate::assets::Assets;
use capgate::capability::{Capability, ClockSource, Endpoint, Glob, Host};
use capgate::compile::{Compiler, Settings};
use capgate::diag::{CapContext, Diagnostic};
use capgate::escape::Escaper;
use capgate::rules::Format;
use capgate::syntax::parse_capability;
use hostile::{Declared, HostDecl};
use proptest::prelude::*;
use proptest::sample::select;

// ------------------------------------------------------------------ generator

/// One declared capability: the string written in the manifest plus what it
/// means, kept by the generator itself.
#[derive(Debug, Clone)]
struct Decl {
    text: String,
    effect: Effect,
}

#[derive(Debug, Clone)]
enum Effect {
    Fs(String, bool),
    Net(HostDecl, Option<u16>),
    Env(String),
    X11,
    DbusSystem,
    Socket(String),
    Tzdata,
    Nothing,
}

impl Effect {
    fn apply(&self, d: &mut Declared) {
        match self {
            Effect::Fs(p, w) => d.fs.push((p.clone(), *w)),
            Effect::Net(h, p) => {
                d.net.insert((h.clone(), *p));
            }
            Effect::Env(n) => {
                d.env.insert(n.clone());
            }
            Effect::X11 => {
                d.x11 = true;
                d.env.insert("DISPLAY".to_owned());
            }
            Effect::DbusSystem => d.dbus_system = true,
            Effect::Socket(p) => {
                d.sockets.insert(p.clone());
            }
            Effect::Tzdata => d.tzdata = true,
            Effect::Nothing => {}
        }
    }
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        // A small alphabet so that paths nest inside each other often.
        3 => "[ab]{1,2}",
        2 => "[a-z0-9_+@~-][a-z0-9._+@~-]{0,7}",
        1 => select(vec!["tmp", "workspace", "etc", "home", "usr", "var", "run", "data.json", "-rf", "--bind"])
            .prop_map(str::to_owned),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 1..4)
        .prop_filter("reserved or engine path (docs/security.md)", |s| {
            // /run holds engine sockets, /var/run is /run, /var/lib and /var/snap hold LXD's,
            // /etc/mtab is /proc: all refused, with /proc, /sys and /dev.
            let seg = |i: usize| s.get(i).map(String::as_str);
            !(matches!(seg(0), Some("proc" | "sys" | "dev" | "run"))
                || (seg(0) == Some("var") && matches!(seg(1), None | Some("run" | "lib" | "snap")))
                || (seg(0) == Some("etc") && seg(1) == Some("mtab")))
        })
        .prop_map(|s| format!("/{}", s.join("/")))
        // Writable, a path holding a system bind source (/usr, /etc/ssl, ...) is refused.
        .prop_filter("holds a system bind source (docs/security.md)", |p| {
            let real = capgate::syntax::host_path(p);
            !capgate::syntax::SYSTEM_BIND_SOURCES.iter().any(|s| {
                capgate::syntax::spellings(s)
                    .iter()
                    .any(|sp| sp == &*real || sp.starts_with(&format!("{real}/")))
            })
        })
        // Writable, a path at, above or in /usr/local/bin or /usr/local/sbin is refused.
        .prop_filter("touches a tool directory (docs/security.md)", |p| {
            !capgate::syntax::TOOL_DIRS_RESERVED.iter().any(|d| {
                d.starts_with(&format!("{p}/")) || p == d || p.starts_with(&format!("{d}/"))
            })
        })
}

fn fs_decl() -> impl Strategy<Value = Decl> {
    let actions = prop::collection::vec(select(vec!["read", "write", "create", "delete"]), 1..4);
    (actions, path(), 0..3u8, any::<bool>()).prop_map(|(actions, path, glob, spaced)| {
        let writable = actions.iter().any(|a| *a != "read");
        let suffix = ["", "/*", "/**"][glob as usize];
        let sep = if spaced { " , " } else { "," };
        Decl {
            text: format!("fs:{}:{path}{suffix}", actions.join(sep)),
            effect: Effect::Fs(path, writable),
        }
    })
}

fn dns_name() -> impl Strategy<Value = String> {
    let label = "[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?";
    (prop::collection::vec(label, 0..3), "[a-z]{2,5}").prop_map(|(mut labels, tld)| {
        labels.push(tld);
        labels.join(".")
    })
}

fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        any::<u32>().prop_map(Ipv4Addr::from),
        any::<[u8; 3]>().prop_map(|[a, b, c]| Ipv4Addr::new(10, a, b, c)),
        Just(Ipv4Addr::new(169, 254, 169, 254)),
        Just(Ipv4Addr::new(127, 0, 0, 1)),
    ]
    .prop_filter("not a grantable destination", |a| {
        let o = a.octets()[0];
        o != 0 && o < 224
    })
}

fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    prop_oneof![
        any::<u128>().prop_map(Ipv6Addr::from),
        any::<u64>().prop_map(|x| Ipv6Addr::from((0xfd00u128 << 112) | u128::from(x))),
        any::<u32>().prop_map(|x| Ipv6Addr::from((0x2001_0db8u128 << 96) | u128::from(x))),
        any::<u16>().prop_map(|x| Ipv6Addr::new(0x2606, 0x4700, 0, 0, 0, 0, 0, x)),
        Just(Ipv6Addr::LOCALHOST),
    ]
    .prop_filter("not a grantable destination", |a| {
        let s = a.segments();
        !a.is_unspecified()
            && !a.is_multicast()
            && a.to_ipv4_mapped().is_none()
            && (s[..6] != [0; 6] || a.is_loopback())
            && (s[0], s[1]) != (0x64, 0xff9b)
    })
}

fn net_decl() -> impl Strategy<Value = Decl> {
    let host = prop_oneof![
        3 => (dns_name(), any::<bool>()).prop_map(|(n, upper)| {
            let written = if upper { n.to_uppercase() } else { n.clone() };
            (written, HostDecl::Name(n))
        }),
        1 => dns_name().prop_map(|n| (format!("*.{n}"), HostDecl::Wildcard(n))),
        1 => Just(("*".to_owned(), HostDecl::Any)),
        2 => ipv4().prop_map(|a| (a.to_string(), HostDecl::Ip(IpAddr::V4(a)))),
        2 => (ipv6(), any::<bool>()).prop_map(|(a, expanded)| {
            let s = a.segments();
            let written = if expanded {
                s.iter().map(|x| format!("{x:x}")).collect::<Vec<_>>().join(":")
            } else {
                a.to_string()
            };
            (format!("\"{written}\""), HostDecl::Ip(IpAddr::V6(a)))
        }),
    ];
    let port = prop_oneof![
        1 => Just(None),
        2 => select(vec![80u16, 443]).prop_map(Some),
        2 => (1..=65535u16).prop_map(Some),
    ];
    (host, port).prop_map(|((written, host), port)| Decl {
        text: match port {
            Some(p) => format!("net:connect:{written}:{p}"),
            None => format!("net:connect:{written}"),
        },
        effect: Effect::Net(host, port),
    })
}

fn other_decl() -> impl Strategy<Value = Decl> {
    let env_name = prop_oneof![
        "CG_[A-Z0-9_]{0,8}",
        select(vec!["GITHUB_TOKEN", "API_KEY", "DISPLAY", "LANG", "HOME"]).prop_map(str::to_owned),
    ];
    let env = (select(vec!["read", "inject", "read,inject"]), env_name).prop_map(|(a, n)| Decl {
        text: format!("env:{a}:{n}"),
        effect: Effect::Env(n),
    });
    let exec = (
        "[a-z][a-z0-9._+-]{0,8}",
        select(vec![
            "",
            "?nestedSandbox=true",
            "?nestedSandbox=false",
            "?nestedSandbox=1",
        ]),
    )
        .prop_map(|(b, r)| Decl {
            text: format!("exec:spawn:{b}{r}"),
            effect: Effect::Nothing,
        });
    // Not an engine's socket directory (docs/security.md), nor the user runtime root.
    let socket_dir = "[a-z][a-z0-9]{0,5}".prop_filter("engine socket directory", |d| {
        !matches!(
            d.as_str(),
            "docker" | "podman" | "crio" | "k3s" | "user" | "dbus"
        )
    });
    let socket = (socket_dir, "[a-z0-9]{0,5}", any::<bool>()).prop_map(|(dir, file, quoted)| {
        let p = format!("/run/{dir}/s{file}.sock");
        let text = if quoted {
            format!("ipc:connect:\"unix:{p}\"")
        } else {
            format!("ipc:connect:unix:{p}")
        };
        Decl {
            text,
            effect: Effect::Socket(p),
        }
    });
    let fixed = select(vec![
        ("ipc:connect:x11", Effect::X11),
        ("ipc:connect:\"dbus:system\"", Effect::DbusSystem),
        ("ipc:connect:dbus:session", Effect::Nothing),
        ("clock:system", Effect::Nothing),
        ("clock:tzdata", Effect::Tzdata),
    ])
    .prop_map(|(t, e)| Decl {
        text: t.to_owned(),
        effect: e,
    });
    let assert =
        ("[a-z][a-z0-9_.-]{0,8}", "[a-zA-Z0-9 ,.;#{}=()-]{0,16}").prop_map(|(id, desc)| Decl {
            text: if desc.is_empty() {
                format!("assert:{id}")
            } else {
                format!("assert:{id}:{desc}")
            },
            effect: Effect::Nothing,
        });
    prop_oneof![env, exec, socket, fixed, assert]
}

fn decl() -> impl Strategy<Value = Decl> {
    prop_oneof![3 => fs_decl(), 3 => net_decl(), 2 => other_decl()]
}

/// A manifest (JSON bytes) and the generator's model of what it declares.
fn manifest() -> impl Strategy<Value = (Vec<u8>, Declared)> {
    let tool = ("[a-z][a-z0-9_-]{0,8}", prop::collection::vec(decl(), 0..8));
    (
        prop::collection::vec(tool, 1..4),
        prop::collection::vec(decl(), 0..3),
    )
        .prop_map(|(tools, server)| {
            let mut declared = Declared::default();
            for d in server.iter().chain(tools.iter().flat_map(|t| &t.1)) {
                d.effect.apply(&mut declared);
            }
            let json = serde_json::json!({
                "name": "generated",
                "version": "1.0.0",
                "serverCapabilities": server.iter().map(|d| d.text.clone()).collect::<Vec<_>>(),
                "tools": tools.iter().map(|(name, caps)| serde_json::json!({
                    "name": name,
                    "capabilities": caps.iter().map(|d| d.text.clone()).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            });
            (serde_json::to_vec_pretty(&json).unwrap(), declared)
        })
}

fn compilers() -> Vec<(&'static str, Compiler)> {
    common::TARGETS
        .into_iter()
        .map(|t| {
            (
                t,
                Compiler::new(&Assets::default(), t).expect("built-in target"),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any generated manifest compiles for every target (permissive), and the
    /// policy grants nothing beyond the generator's own model of the manifest.
    #[test]
    fn accepted_manifests_grant_nothing_undeclared((bytes, declared) in manifest()) {
        thread_local!(static COMPILERS: Vec<(&'static str, Compiler)> = compilers());
        COMPILERS.with(|cs| {
            for (target, c) in cs {
                let settings = Settings { permissive: true, set: vec![] };
                if let Some(code) = common::default_option_refusal(target, &bytes) {
                    let d = c.compile("generated.json", &bytes, &settings).err()
                        .unwrap_or_else(|| panic!("{target} compiled, expected {code:?}"));
                    assert!(d.iter().all(|d| d.code == code), "{target}: {d:?}");
                    continue;
                }
                let out = c.compile("generated.json", &bytes, &settings).unwrap_or_else(|d| {
                    panic!("{target} refused a valid manifest:\n{}\n{}",
                        d.iter().map(Diagnostic::render).collect::<String>(),
                        String::from_utf8_lossy(&bytes))
                });
                if let Err(e) = hostile::check_artifact(target, &out.artifact, &declared) {
                    panic!("{target}: {e}\nmanifest:\n{}\noutput:\n{}",
                        String::from_utf8_lossy(&bytes), out.artifact.to_json(true));
                }
            }
        });
    }
}

// ------------------------------------------------------------------ escapers

fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".*",
        "[-\n\r\t\0 #\";{},=:/.a-z0-9\u{202e}\u{200b}\u{85}\u{2028}]{0,12}",
        "-?[a-z0-9./:_]{1,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn argv_escaper_keeps_one_element_and_no_option(s in hostile_text()) {
        if Escaper::Output(Format::Argv).check(&s).is_ok() {
            prop_assert!(!s.is_empty());
            prop_assert!(!s.contains(['\n', '\r', '\0']), "{s:?}");
            prop_assert!(!s.chars().any(char::is_control), "{s:?}");
            prop_assert!(!s.starts_with('-'), "{s:?}");
            prop_assert_eq!(s.trim(), s.as_str());
        }
    }

    #[test]
    fn config_token_escapers_keep_one_token(s in hostile_text()) {
        for format in [Format::Squid, Format::Nft, Format::Lines] {
            if Escaper::Output(format).check(&s).is_ok() {
                prop_assert!(!s.is_empty());
                prop_assert!(!s.chars().any(|c| c.is_whitespace() || c.is_control()), "{s:?}");
                prop_assert!(!s.contains(['#', '"', ';', '{', '}', ',', '\\']), "{s:?}");
                prop_assert!(!s.starts_with('-'), "{s:?}");
            }
        }
    }

    #[test]
    fn json_escaper_cannot_close_a_string(s in hostile_text()) {
        if Escaper::Output(Format::Json).check(&s).is_ok() {
            prop_assert!(!s.contains(['"', '\\']) && !s.chars().any(char::is_control), "{s:?}");
        }
    }
}

// ------------------------------------------------------------------ grammar

const PIECES: &[&str] = &[
    "fs",
    "net",
    "exec",
    "env",
    "ipc",
    "clock",
    "assert",
    ":",
    ":",
    ":",
    "\"",
    "?",
    "&",
    "=",
    ",",
    "read",
    "write",
    "create",
    "delete",
    "connect",
    "spawn",
    "inject",
    "/",
    "/",
    "**",
    "*",
    "..",
    ".",
    "-",
    "a",
    "Z",
    "0",
    "443",
    "65536",
    "::1",
    "::ffff:",
    "10.0.0.1",
    "unix",
    "dbus",
    "system",
    "session",
    "x11",
    "tzdata",
    "nestedSandbox",
    "true",
    "1",
    " ",
    "\n",
    "\t",
    "\0",
    "é",
    "e\u{301}",
    "\u{202e}",
    "\u{200b}",
    "\u{feff}",
    "а",
    "[",
    "]",
    "{",
    "}",
    "%",
    "@",
    "~",
    "+",
    "#",
    ";",
    "\\",
    "proc",
    "docker.sock",
    "0x7f",
    "\u{2028}",
    "\u{10ffff}",
];

fn capability_like() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(select(PIECES), 0..24).prop_map(|p| p.concat()),
        ".*",
        any::<Vec<char>>().prop_map(|c| c.into_iter().collect()),
    ]
}

/// Checks the span of a grammar error and that the diagnostic built from it renders.
fn check_error(raw: &str, span: &Range<usize>) -> Result<(), TestCaseError> {
    prop_assert!(
        span.start <= span.end && span.end <= raw.len(),
        "{raw:?}: {span:?}"
    );
    prop_assert!(
        raw.is_char_boundary(span.start) && raw.is_char_boundary(span.end),
        "{raw:?}: {span:?}"
    );
    let mut d = Diagnostic::new(capgate::diag::Code::CapSyntax, "x");
    d.cap = Some(CapContext {
        tool: Some("t".into()),
        index: 0,
        capability: raw.to_owned(),
        span: span.clone(),
    });
    let text = d.render();
    prop_assert!(text.contains('^'));
    let _ = d.to_json();
    Ok(())
}

/// The canonical text of a parsed capability.
fn canonical(cap: &Capability) -> String {
    match cap {
        Capability::Fs { actions, path } => {
            let glob = match path.glob {
                Glob::None => "",
                Glob::Children => "/*",
                Glob::Recursive => "/**",
            };
            let p = if path.path.as_str() == "/" && glob.is_empty() {
                "/"
            } else {
                path.path.as_str()
            };
            format!("fs:{}:{p}{glob}", actions.names().join(","))
        }
        Capability::Net { host, port } => {
            let h = match host {
                Host::V6(a) => format!("\"{a}\""),
                h => h.to_string(),
            };
            match port {
                Some(p) => format!("net:connect:{h}:{}", p.get()),
                None => format!("net:connect:{h}"),
            }
        }
        Capability::Exec {
            binary,
            nested_sandbox,
        } => {
            format!("exec:spawn:{binary}?nestedSandbox={nested_sandbox}")
        }
        Capability::Env { actions, name } => {
            let a: Vec<&str> = [(actions.read, "read"), (actions.inject, "inject")]
                .into_iter()
                .filter_map(|(on, n)| on.then_some(n))
                .collect();
            format!("env:{}:{name}", a.join(","))
        }
        Capability::Ipc { endpoint } => format!("ipc:connect:\"{endpoint}\""),
        Capability::Clock { source } => format!("clock:{}", source.as_str()),
        Capability::Assert { id, description } => format!("assert:{id}:\"{description}\""),
    }
}

/// What an accepted value may contain: nothing any output format interprets.
fn check_accepted(raw: &str, cap: &Capability) -> Result<(), TestCaseError> {
    let path_ok = |p: &str| {
        p.starts_with('/')
            && !p.contains("//")
            && (p == "/" || !p.ends_with('/'))
            && p.split('/').skip(1).all(|s| s != "." && s != "..")
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-+@~".contains(c))
    };
    match cap {
        Capability::Fs { path, .. } => prop_assert!(
            path_ok(path.path.as_str()) && path.path.as_str() != "/",
            "{raw:?}"
        ),
        Capability::Net { host, .. } => {
            let h = host.to_string();
            prop_assert!(
                h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:*".contains(c)),
                "{raw:?}"
            );
            prop_assert!(!h.starts_with('-'), "{raw:?}");
            if let Host::V4(a) = host {
                prop_assert!(
                    a.octets()[0] != 0 && !a.is_multicast() && !a.is_broadcast(),
                    "{raw:?}"
                );
            }
        }
        Capability::Exec { binary, .. } => prop_assert!(
            !binary.as_str().starts_with('-') && !binary.as_str().contains('/'),
            "{raw:?}"
        ),
        Capability::Env { name, .. } => prop_assert!(
            name.as_str()
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                && !name.as_str().starts_with("LD_"),
            "{raw:?}"
        ),
        Capability::Ipc {
            endpoint: Endpoint::Unix(p),
        } => {
            prop_assert!(
                path_ok(p.as_str()) && p.as_str().matches('/').count() >= 2,
                "{raw:?}"
            );
            prop_assert!(!p.as_str().starts_with("/proc/"), "{raw:?}");
        }
        Capability::Clock { source } => {
            prop_assert!(matches!(source, ClockSource::System | ClockSource::Tzdata))
        }
        _ => {}
    }
    prop_assert!(
        !raw.chars().any(char::is_control),
        "{raw:?} accepted with a control character"
    );
    // The canonical form re-parses to the same value.
    let again = parse_capability(&canonical(cap));
    prop_assert_eq!(again.as_ref(), Ok(cap), "canonical form of {:?}", raw);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn grammar_never_panics_and_errors_fit_the_input(raw in capability_like()) {
        match parse_capability(&raw) {
            Ok(cap) => check_accepted(&raw, &cap)?,
            Err(e) => check_error(&raw, &e.span)?,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Every capability the manifest generator writes is accepted and canonical.
    #[test]
    fn generated_capabilities_parse(d in decl()) {
        match parse_capability(&d.text) {
            Ok(cap) => check_accepted(&d.text, &cap)?,
            Err(e) => prop_assert!(false, "{:?} rejected: {:?}", d.text, e),
        }
    }
}
