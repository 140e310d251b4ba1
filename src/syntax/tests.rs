//! Grammar unit tests: every accepted form and every rejection, with its code
//! and the exact text the caret points at.

use super::*;
use crate::diag::Code::*;

fn ok(raw: &str) -> Capability {
    parse_capability(raw).unwrap_or_else(|e| panic!("{raw:?} rejected: {e:?}"))
}

#[track_caller]
fn rejects(raw: &str, code: Code, caret: &str) {
    let e = match parse_capability(raw) {
        Ok(c) => panic!("{raw:?} accepted as {c:?}, expected {}", code.as_str()),
        Err(e) => e,
    };
    assert_eq!(e.code, code, "{raw:?}: {e:?}");
    assert_eq!(&raw[e.span.clone()], caret, "{raw:?}: caret of {e:?}");
}

fn path(p: &str, glob: Glob) -> FsPath {
    FsPath {
        path: AbsPath::new_unchecked(p.to_owned()),
        glob,
    }
}

#[test]
fn fs_forms() {
    assert_eq!(
        ok("fs:read:/workspace/**"),
        Capability::Fs {
            actions: FsActions::READ,
            path: path("/workspace", Glob::Recursive)
        }
    );
    assert_eq!(
        ok("fs:read,write:/w/*"),
        Capability::Fs {
            actions: FsActions::READ.union(FsActions::WRITE),
            path: path("/w", Glob::Children)
        }
    );
    assert_eq!(
        ok("fs: read , delete :/etc/app.conf"),
        Capability::Fs {
            actions: FsActions::READ.union(FsActions::DELETE),
            path: path("/etc/app.conf", Glob::None)
        }
    );
    assert_eq!(
        ok("fs:read,read:\"/home/u/.ssh\""),
        Capability::Fs {
            actions: FsActions::READ,
            path: path("/home/u/.ssh", Glob::None)
        }
    );
    ok("fs:create:/a/b-c_d.e+f@g~h/**");
}

#[test]
fn fs_rejections() {
    rejects("fs", CapMalformed, "fs");
    rejects("", CapMalformed, "");
    rejects("fs:read", CapFsShape, "fs:read");
    rejects("fs:read:/a:/b", CapFsShape, "fs:read:/a:/b");
    rejects("fs::/a", CapActionsEmpty, "");
    rejects("fs:exec:/a", CapActionUnknown, "exec");
    rejects("fs:read,:/a", CapActionUnknown, "");
    rejects("fs:Read:/a", CapActionUnknown, "Read");
    rejects("fs:read:workspace", CapFsRelative, "workspace");
    rejects("fs:read:", CapFsRelative, "");
    rejects("fs:read:/w/../etc", CapFsPath, "..");
    rejects("fs:read:/w/./x", CapFsPath, ".");
    rejects("fs:read:/w//x", CapFsPath, "//");
    rejects("fs:read:/w/", CapFsPath, "/");
    rejects("fs:read:/data/**/x.json", CapFsGlob, "**");
    rejects("fs:read:/py/*.py", CapFsGlob, "*.py");
    rejects("fs:read:/code/src*", CapFsGlob, "src*");
    rejects("fs:read:/q/[ab]", CapFsGlob, "[ab]");
    rejects("fs:read:/my dir", CapFsPath, " ");
    rejects("fs:read:/a;b", CapFsPath, ";");
    rejects("fs:read:/a,b", CapFsPath, ",");
    rejects("fs:read:/a=b", CapFsPath, "=");
    rejects("fs:read:/caf\u{e9}", CapFsPath, "\u{e9}");
    rejects("fs:read:/a\u{202e}b", CapChar, "\u{202e}");
    rejects("fs:read:/a\u{200b}b", CapChar, "\u{200b}");
    rejects("fs:read:/a\nb", CapChar, "\n");
    rejects("fs:read:/a\0b", CapChar, "\0");
    rejects("fs:read:/", CapFsReserved, "/");
    rejects("fs:read:/**", CapFsReserved, "/**");
    rejects("fs:read:/*", CapFsReserved, "/*");
    rejects("fs:read:/proc/self", CapFsReserved, "/proc/self");
    rejects("fs:write:/dev/**", CapFsReserved, "/dev/**");
    rejects("fs:read:/sys", CapFsReserved, "/sys");
    rejects("fs:read:/a\"b\"", CapSyntax, "\"");
    rejects("fs:read:\"/a", CapSyntax, "");
    rejects("fs:read:/a?b", CapRefinement, "b");
    rejects("FS:read:/a", CapUnknownKind, "FS");
    rejects(":x", CapUnknownKind, "");
}

#[test]
fn net_forms() {
    assert_eq!(
        ok("net:connect:API.GitHub.com:443"),
        Capability::Net {
            host: Host::Name(DnsName::new_unchecked("api.github.com".into())),
            port: Port::new(443)
        }
    );
    assert_eq!(
        ok("net:connect:*"),
        Capability::Net {
            host: Host::Any,
            port: None
        }
    );
    assert_eq!(
        ok("net:connect:*.example.com:8443"),
        Capability::Net {
            host: Host::Wildcard(DnsName::new_unchecked("example.com".into())),
            port: Port::new(8443)
        }
    );
    assert_eq!(
        ok("net:connect:10.0.0.5:5432"),
        Capability::Net {
            host: Host::V4("10.0.0.5".parse().unwrap()),
            port: Port::new(5432)
        }
    );
    assert_eq!(
        ok("net:connect:\"2606:4700:0::1111\":443"),
        Capability::Net {
            host: Host::V6("2606:4700::1111".parse().unwrap()),
            port: Port::new(443)
        }
    );
    ok("net:connect:10.example.com:443");
    ok("net:connect:xn--bcher-kva.example:443");
    ok("net:connect:1.2.3.4:65535");
    ok("net:connect:\"::1\":5432");
}

#[test]
fn net_rejections() {
    rejects(
        "net:connect:2606:4700::1111:443",
        CapNetShape,
        "net:connect:2606:4700::1111:443",
    );
    rejects("net:connect", CapNetShape, "net:connect");
    rejects("net:bind:a.com:443", CapActionUnknown, "bind");
    rejects("net:connect::443", CapNetHost, "");
    rejects("net:connect:a.com:443abc", CapNetPort, "443abc");
    rejects("net:connect:a.com:+443", CapNetPort, "+443");
    rejects("net:connect:a.com:0", CapNetPort, "0");
    rejects("net:connect:a.com:0443", CapNetPort, "0443");
    rejects("net:connect:a.com:65536", CapNetPort, "65536");
    rejects("net:connect:a.com:9999999999", CapNetPort, "9999999999");
    rejects("net:connect:a.com:", CapNetPort, "");
    rejects("net:connect:api.github.com .:443", CapNetHost, " ");
    rejects("net:connect:010.0.0.1:443", CapNetHost, "010.0.0.1");
    rejects("net:connect:10.1:443", CapNetHost, "10.1");
    rejects("net:connect:256.1.1.1:443", CapNetHost, "256.1.1.1");
    rejects("net:connect:0.0.0.0:443", CapNetHostSpecial, "0.0.0.0");
    rejects("net:connect:0.0.0.0/0:443", CapNetHost, "/");
    rejects("net:connect:\"::/0\":443", CapNetHost, "/");
    rejects("net:connect:\"::\":443", CapNetHostSpecial, "::");
    rejects(
        "net:connect:\"::ffff:10.0.0.1\":443",
        CapNetHostSpecial,
        "::ffff:10.0.0.1",
    );
    rejects(
        "net:connect:\"64:ff9b::a00:1\":443",
        CapNetHostSpecial,
        "64:ff9b::a00:1",
    );
    // IPv4-translated (::ffff:0:a.b.c.d) and IPv4-compatible (::a.b.c.d), in
    // every spelling: they name an IPv4 address through IPv6 (F16)
    for host in [
        "::ffff:0:7f00:1",
        "::ffff:0:127.0.0.1",
        "0:0:0:0:ffff:0:a9fe:a9fe",
        "::FFFF:0:A00:1",
        "::7f00:1",
        "::127.0.0.1",
        "0::a9fe:a9fe",
    ] {
        rejects(
            &format!("net:connect:\"{host}\":443"),
            CapNetHostSpecial,
            host,
        );
    }
    ok("net:connect:\"::1\":5432");
    rejects("net:connect:224.0.0.1:443", CapNetHostSpecial, "224.0.0.1");
    rejects(
        "net:connect:255.255.255.255:443",
        CapNetHostSpecial,
        "255.255.255.255",
    );
    rejects("net:connect:\"fe80::1%eth0\":443", CapNetHost, "%");
    rejects("net:connect:-a.com:443", CapNetHost, "-");
    rejects("net:connect:a_b.com:443", CapNetHost, "_");
    rejects("net:connect:a.com.:443", CapNetHost, ".");
    rejects(
        "net:connect:\u{430}pi.github.com:443",
        CapNetHost,
        "\u{430}",
    );
    rejects("net:connect:0x7f.0.0.1:443", CapNetHost, "0x7f.0.0.1");
    rejects("net:connect:127.0X1:443", CapNetHost, "127.0X1");
    rejects("net:connect:a.example.0x:443", CapNetHost, "a.example.0x");
    rejects("net:connect:*.example.123:443", CapNetHost, "*.example.123");
    ok("net:connect:0x7f.example.com:443");
    ok("net:connect:a.example.x1:443");
    rejects("assert:a:one\u{2028}two", CapChar, "\u{2028}");
    rejects("fs:read:/a\u{2029}", CapChar, "\u{2029}");
    rejects("net:connect:**.a.com:443", CapNetHost, "*");
    rejects("net:connect:a.*.com:443", CapNetHost, "*");
    let long = format!("net:connect:{}.com:443", "a".repeat(64));
    rejects(&long, CapNetHost, &format!("{}.com", "a".repeat(64)));
}

#[test]
fn exec_env_clock_assert() {
    assert_eq!(
        ok("exec:spawn:chromium?nestedSandbox=true"),
        Capability::Exec {
            binary: Name::new_unchecked("chromium".into()),
            nested_sandbox: true
        }
    );
    assert_eq!(
        ok("exec:spawn:git?nestedSandbox=0"),
        Capability::Exec {
            binary: Name::new_unchecked("git".into()),
            nested_sandbox: false
        }
    );
    rejects("exec:spawn:/usr/bin/git", CapExecPath, "/usr/bin/git");
    rejects("exec:spawn:", CapExecName, "");
    rejects("exec:spawn:-rf", CapExecName, "-");
    rejects("exec:spawn:a b", CapExecName, " ");
    rejects("exec:run:git", CapActionUnknown, "run");
    rejects("exec:spawn:git:x", CapExecShape, "exec:spawn:git:x");

    assert_eq!(
        ok("env:read,inject:GITHUB_TOKEN"),
        Capability::Env {
            actions: EnvActions {
                read: true,
                inject: true
            },
            name: Name::new_unchecked("GITHUB_TOKEN".into())
        }
    );
    rejects("env:inject:github", CapEnvName, "github");
    rejects("env:inject:1X", CapEnvName, "1X");
    rejects("env:inject:LD_PRELOAD", CapEnvDangerous, "LD_PRELOAD");
    rejects("env:read:PATH", CapEnvDangerous, "PATH");
    rejects("env:read:NODE_OPTIONS", CapEnvDangerous, "NODE_OPTIONS");
    rejects("env:write:X", CapActionUnknown, "write");
    rejects("env:read:X:Y", CapEnvShape, "env:read:X:Y");

    assert_eq!(
        ok("clock:tzdata"),
        Capability::Clock {
            source: ClockSource::Tzdata
        }
    );
    assert_eq!(
        ok("clock:system"),
        Capability::Clock {
            source: ClockSource::System
        }
    );
    rejects("clock:utc", CapClockSource, "utc");
    rejects("clock:read:system", CapClockShape, "clock:read:system");

    assert_eq!(
        ok("assert:fetch.block_rfc1918:outbound: to private ranges"),
        Capability::Assert {
            id: Name::new_unchecked("fetch.block_rfc1918".into()),
            description: "outbound: to private ranges".into()
        }
    );
    assert_eq!(
        ok("assert:x"),
        Capability::Assert {
            id: Name::new_unchecked("x".into()),
            description: "x".into()
        }
    );
    assert_eq!(
        ok("assert:x:\"a:b\":c"),
        Capability::Assert {
            id: Name::new_unchecked("x".into()),
            description: "a:b:c".into()
        }
    );
    rejects("assert::desc", CapAssertShape, "");
    rejects("assert:a b:desc", CapAssertShape, "a b");
    rejects("assert:x:is it? yes", CapRefinement, " yes");
    // Inside quotes, a `?` of the description is text (the reference cut it off).
    for (raw, description) in [
        ("assert:x:\"why? because\"", "why? because"),
        ("assert:x:\"?\"", "?"),
        ("assert:x:\"a?b=c&d\"", "a?b=c&d"),
        ("assert:x:\"why?\":\"really?\"", "why?:really?"),
        ("assert:x:\"a:b?\":c", "a:b?:c"),
    ] {
        assert_eq!(
            ok(raw),
            Capability::Assert {
                id: Name::new_unchecked("x".into()),
                description: description.into()
            },
            "{raw}"
        );
    }
    // ... but not in the id, not after the closing quote, and not in any other kind.
    rejects("assert:\"x?\":d", CapSyntax, "?");
    rejects("assert:x:\"why\"? because", CapRefinement, " because");
    rejects("assert:x:\"why? because", CapSyntax, "");
    rejects("fs:read:\"/a?b\"", CapSyntax, "?");
    rejects("net:connect:\"a.example?x\":443", CapSyntax, "?");
    rejects("ipc:connect:\"unix:/run/a?/s.sock\"", CapSyntax, "?");
    rejects("FS:read:\"/a?b\"", CapSyntax, "?");
    rejects("exec:spawn:\"git?nestedSandbox=true\"", CapSyntax, "?");
}

#[test]
fn ipc_forms() {
    assert_eq!(
        ok("ipc:connect:x11"),
        Capability::Ipc {
            endpoint: Endpoint::X11
        }
    );
    assert_eq!(
        ok("ipc:connect:\"dbus:system\""),
        Capability::Ipc {
            endpoint: Endpoint::DbusSystem
        }
    );
    assert_eq!(
        ok("ipc:connect:dbus:session"),
        Capability::Ipc {
            endpoint: Endpoint::DbusSession
        }
    );
    assert_eq!(
        ok("ipc:connect:\"unix:/run/app/app.sock\""),
        Capability::Ipc {
            endpoint: Endpoint::Unix(AbsPath::new_unchecked("/run/app/app.sock".into()))
        }
    );
    assert_eq!(
        ok("ipc:connect:unix:/run/app.sock"),
        Capability::Ipc {
            endpoint: Endpoint::Unix(AbsPath::new_unchecked("/run/app.sock".into()))
        }
    );
    rejects("ipc:connect:\"unix:/\"", CapIpcSocket, "/");
    rejects("ipc:connect:\"unix:/run\"", CapIpcSocket, "/run");
    rejects("ipc:connect:\"unix:/run/**\"", CapIpcSocket, "/run/**");
    rejects(
        "ipc:connect:\"unix:/var/run/docker.sock\"",
        CapIpcSocket,
        "/var/run/docker.sock",
    );
    rejects(
        "ipc:connect:\"unix:run/a.sock\"",
        CapIpcEndpoint,
        "run/a.sock",
    );
    rejects("ipc:connect:\"unix:/run/../a.sock\"", CapIpcEndpoint, "..");
    rejects(
        "ipc:connect:\"unix:/proc/1/root/etc\"",
        CapIpcSocket,
        "/proc/1/root/etc",
    );
    rejects(
        "ipc:connect:unix:/sys/fs/x.sock",
        CapIpcSocket,
        "/sys/fs/x.sock",
    );
    rejects("ipc:connect:unix:/dev/log", CapIpcSocket, "/dev/log");
    rejects("ipc:connect:wayland", CapIpcEndpoint, "wayland");
    rejects("ipc:connect:", CapIpcEndpoint, "");
    rejects("ipc:listen:x11", CapActionUnknown, "listen");
    rejects("ipc:connect:a:b:c", CapIpcShape, "ipc:connect:a:b:c");
}

#[test]
fn refinements() {
    rejects(
        "fs:read:/a?nestedSandbox=true",
        CapRefinement,
        "nestedSandbox=true",
    );
    rejects(
        "env:read:X?nestedSandbox=1",
        CapRefinement,
        "nestedSandbox=1",
    );
    rejects(
        "exec:spawn:x?nestedSandbox=yes",
        CapRefinement,
        "nestedSandbox=yes",
    );
    rejects("exec:spawn:x?nestedSandbox", CapRefinement, "nestedSandbox");
    rejects(
        "exec:spawn:x?nestedSandbox=true&nestedSandbox=true",
        CapRefinement,
        "nestedSandbox=true",
    );
    rejects("exec:spawn:x?foo=bar", CapRefinement, "foo=bar");
    rejects("exec:spawn:x?", CapRefinement, "");
    rejects("exec:spawn:x?&", CapRefinement, "");
}

#[test]
fn limits() {
    let long = format!("fs:read:/{}", "a".repeat(MAX_CAPABILITY_LEN));
    let e = parse_capability(&long).unwrap_err();
    assert_eq!(e.code, CapTooLong);
}

/// A capability's one parse reads each segment with its leaf rule; a segment
/// kept whole is parsed alone. Both must give the same answer, error or value,
/// as parsing with every segment kept whole (`any_capability`).
fn agree(raw: &str) {
    let typed = convert(raw, Rule::capability);
    let whole = convert(raw, Rule::any_capability);
    match (&typed, &whole) {
        (Ok(t), Ok(w)) => assert_eq!(t, w, "{raw:?}: values differ"),
        (Err(t), Err(w)) => assert_eq!(
            (t.code, &t.message, &t.span),
            (w.code, &w.message, &w.span),
            "{raw:?}: errors differ"
        ),
        _ => panic!("{raw:?}: {typed:?} with the kinds' forms, {whole:?} with whole segments"),
    }
}

/// How many segments of a capability its one parse kept whole (not matched
/// by their leaf rule inside the capability).
fn kept_whole(raw: &str) -> usize {
    CapParser::parse(Rule::capability, raw)
        .unwrap()
        .next()
        .unwrap()
        .into_inner()
        .filter(|p| p.as_rule() == Rule::segment)
        .count()
}

/// Every capability of every fixture agrees; every valid one (an assertion's
/// description aside) is read in one run, no segment parsed twice.
#[test]
fn forms_agree_with_whole_segments_on_every_fixture() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut seen = 0;
    for dir in ["manifests", "injection", "errors", "enforcement"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap_or_default();
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            let mut caps: Vec<String> = Vec::new();
            let mut collect = |list: &serde_json::Value| {
                for c in list.as_array().into_iter().flatten() {
                    if let Some(s) = c.as_str() {
                        caps.push(s.to_owned());
                    }
                }
            };
            collect(&v["serverCapabilities"]);
            for t in v["tools"].as_array().into_iter().flatten() {
                collect(&t["capabilities"]);
            }
            for c in caps {
                agree(&c);
                if dir == "manifests" && !c.starts_with("assert:") {
                    seen += 1;
                    assert_eq!(kept_whole(&c), 0, "{c:?} was parsed twice");
                }
            }
        }
    }
    assert!(seen > 50, "only {seen} capabilities found");
}

/// The benchmark's generated manifests: every capability in one run.
#[test]
fn every_generated_capability_is_read_in_one_run() {
    let text = crate::generate::manifest(300, 10, 42);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let caps = v["serverCapabilities"]
        .as_array()
        .into_iter()
        .chain(
            v["tools"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["capabilities"].as_array().unwrap()),
        )
        .flatten()
        .map(|c| c.as_str().unwrap());
    for raw in caps {
        assert_eq!(kept_whole(raw), 0, "{raw:?} was parsed twice");
        agree(raw);
    }
}

#[test]
fn common_forms_are_read_in_one_run() {
    for raw in [
        "fs:read:/workspace/**",
        "fs:read,write:/etc/app.conf",
        "fs:read,read,delete:\"/home/u/.ssh/..x/...\"",
        "fs:create:/a/b-c_d.e+f@g~h/*",
        "fs: read , write :/a",
        "net:connect:api.github.com:443",
        "net:connect:1.2.3.4:443",
        "net:connect:\"2606:4700::1111\":443",
        "net:connect:*",
        "net:connect:*.example.com:8443",
        "net:connect:a--b.c0",
        "net:connect:\"10.0.0.5\"",
        "exec:spawn:chromium?nestedSandbox=true",
        "env:inject:GITHUB_TOKEN",
        "env:read,inject:A_1",
        "ipc:connect:x11",
        "ipc:connect:\"unix:/run/app/app.sock\"",
        "ipc:connect:unix:/run/app/app.sock",
        "ipc:connect:dbus:system",
        "clock:tzdata",
        "assert:fetch.no_rfc1918",
    ] {
        assert_eq!(kept_whole(raw), 0, "{raw:?} was parsed twice");
        agree(raw);
        ok(raw);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
    #[test]
    fn forms_agree_with_whole_segments_on_capability_like_strings(
        parts in proptest::collection::vec(
            proptest::sample::select(vec![
                "fs", "net", "exec", "env", "ipc", "clock", "assert", ":", "\"", "?", ",", "=", "&",
                "read", "write", "connect", "spawn", "inject", "/", "/**", "/*", "..", ".", "a", "A_B",
                "1", "0", "443", "65536", "1.2.3.4", "10.0.0.5", "::1", "2606:4700::1", "*", "*.",
                "example.com", "unix:", "x11", "dbus:system", "nestedSandbox", "true", "0x7f", " ", "-",
                "proc", "docker.sock", "system", "tzdata", "LD_PRELOAD", "é",
                "create", "delete", "/.", "/..", "/.a", "/..a", "/...", "~", "@", "+", "_", "Z", "*/",
                "\"/a\"", "a-", "-b", "x.0x1", "fs:read:/", "net:connect:", ",connect", "exec:spawn:",
                "env:read:", "false", "=1",
            ]),
            1..12,
        )
    ) {
        agree(&parts.concat());
    }
}

/// F5/F6: every reserved-path and engine-socket check runs on the path after
/// the host aliases (`/var/run` → `/run`, `/run/shm` → `/dev/shm`, ...), for
/// `fs:` and `ipc:` alike, with or without a glob.
#[test]
fn host_aliases_of_reserved_and_engine_paths() {
    for (raw, caret) in [
        ("fs:write:/run/shm", "/run/shm"),
        ("fs:read:/run/shm/**", "/run/shm/**"),
        ("fs:read:/run/shm/*", "/run/shm/*"),
        ("fs:read:/run/shm/key", "/run/shm/key"),
        ("fs:write:/var/run/shm", "/var/run/shm"),
        ("fs:read:/etc/mtab", "/etc/mtab"),
        ("fs:read:/var/run/docker.sock", "/var/run/docker.sock"),
        ("fs:read:/run/docker.sock", "/run/docker.sock"),
        ("fs:write:/srv/x/podman.sock", "/srv/x/podman.sock"),
        (
            "fs:read:/a/containerd.sock.ttrpc",
            "/a/containerd.sock.ttrpc",
        ),
        (
            "fs:read:/run/buildkit/buildkitd.sock",
            "/run/buildkit/buildkitd.sock",
        ),
        ("fs:read:/run", "/run"),
        ("fs:read:/run/**", "/run/**"),
        ("fs:read:/run/*", "/run/*"),
        ("fs:read:/var/run", "/var/run"),
        ("fs:read:/var/run/**", "/var/run/**"),
        ("fs:read:/run/containerd/**", "/run/containerd/**"),
        (
            "fs:read:/run/containerd/io.containerd.runtime.v2.task",
            "/run/containerd/io.containerd.runtime.v2.task",
        ),
        ("fs:read:/var/run/docker", "/var/run/docker"),
        ("fs:read:/run/podman", "/run/podman"),
        ("fs:read:/run/crio/*", "/run/crio/*"),
        ("fs:read:/run/k3s", "/run/k3s"),
        ("fs:read:/run/user", "/run/user"),
        ("fs:read:/run/user/1000", "/run/user/1000"),
        ("fs:read:/var/run/user/1000/**", "/var/run/user/1000/**"),
        (
            "fs:read:/run/user/1000/podman/podman.sock",
            "/run/user/1000/podman/podman.sock",
        ),
        (
            "fs:read:/var/lib/lxd/unix.socket",
            "/var/lib/lxd/unix.socket",
        ),
        ("fs:read:/var/lib", "/var/lib"),
        (
            "fs:read:/var/lib/docker/volumes/**",
            "/var/lib/docker/volumes/**",
        ),
        (
            "fs:write:/var/lib/containers/storage",
            "/var/lib/containers/storage",
        ),
        ("fs:read:/var/lib/containerd", "/var/lib/containerd"),
        ("fs:read:/var", "/var"),
        ("fs:read:/var/**", "/var/**"),
    ] {
        rejects(raw, CapFsReserved, caret);
    }
    for (raw, caret) in [
        ("ipc:connect:unix:/var/run", "/var/run"),
        ("ipc:connect:\"unix:/var/run\"", "/var/run"),
        ("ipc:connect:unix:/run/shm/x.sock", "/run/shm/x.sock"),
        (
            "ipc:connect:unix:/var/run/shm/x.sock",
            "/var/run/shm/x.sock",
        ),
        ("ipc:connect:unix:/run/docker", "/run/docker"),
        ("ipc:connect:unix:/run/containerd", "/run/containerd"),
        ("ipc:connect:unix:/run/podman", "/run/podman"),
        ("ipc:connect:unix:/run/user/1000", "/run/user/1000"),
        (
            "ipc:connect:unix:/run/user/1000/docker.sock",
            "/run/user/1000/docker.sock",
        ),
        (
            "ipc:connect:unix:/var/run/crio/crio.sock",
            "/var/run/crio/crio.sock",
        ),
        (
            "ipc:connect:unix:/run/cri-dockerd.sock",
            "/run/cri-dockerd.sock",
        ),
        (
            "ipc:connect:unix:/var/snap/lxd/common/lxd/unix.socket",
            "/var/snap/lxd/common/lxd/unix.socket",
        ),
    ] {
        rejects(raw, CapIpcSocket, caret);
    }
    // The message names the host path an alias stands for.
    let e = parse_capability("fs:write:/run/shm").unwrap_err();
    assert!(e.message.contains("/dev/shm"), "{e:?}");
    let e = parse_capability("ipc:connect:unix:/var/run").unwrap_err();
    assert!(e.message.contains("the host's /run"), "{e:?}");
    // Neighbours that are neither reserved nor engine paths stay accepted.
    for raw in [
        "fs:read:/var/lock/app",
        "fs:read:/run/lock/app",
        "fs:write:/var/tmp/app/**",
        "fs:read:/run/app/**",
        "fs:read:/run/user/1000/app",
        "fs:read:/run/dockerish",
        "fs:read:/var/log/app",
        "fs:read:/var/lib/app",
        "fs:read:/lib/x86_64-linux-gnu",
        "fs:read:/srv/docker.sock.d",
        "fs:read:/etc/mtab.d",
        "ipc:connect:unix:/run/user/1000/bus",
        "ipc:connect:unix:/var/run/app/app.sock",
        "ipc:connect:unix:/run/dbus/system_bus_socket",
    ] {
        ok(raw);
    }
}

#[test]
fn host_path_maps_aliases_repeatedly_and_only_on_segment_boundaries() {
    assert_eq!(host_path("/var/run/shm/x"), "/dev/shm/x");
    assert_eq!(host_path("/var/run"), "/run");
    assert_eq!(host_path("/var/lock"), "/run/lock");
    assert_eq!(host_path("/etc/mtab"), "/proc/self/mounts");
    assert_eq!(host_path("/var/running"), "/var/running");
    assert_eq!(host_path("/run/shmem"), "/run/shmem");
    assert!(matches!(host_path("/srv/a"), std::borrow::Cow::Borrowed(_)));
}

/// F15: the names of the adversarial review and their families, by category;
/// the message names the category. Written out here, not taken from the
/// table, so a name dropped from the table fails this test.
#[test]
fn dangerous_env_names_by_category() {
    let cases: &[(EnvCategory, &[&str])] = &[
        (
            EnvCategory::CodeLoading,
            &[
                "LD_PRELOAD",
                "LD_AUDIT",
                "DYLD_INSERT_LIBRARIES",
                "GCONV_PATH",
                "MALLOC_TRACE",
                "GLIBC_TUNABLES",
                "PYTHONPATH",
                "PYTHONWARNINGS",
                "PYTHONBREAKPOINT",
                "PYTHONSTARTUP",
                "NODE_OPTIONS",
                "PERL5LIB",
                "PERL5OPT",
                "PERL5DB",
                "RUBYOPT",
                "RUBYLIB",
                "GEM_PATH",
                "JAVA_TOOL_OPTIONS",
                "_JAVA_OPTIONS",
                "JDK_JAVA_OPTIONS",
                "LUA_INIT",
                "LUA_INIT_5_4",
                "LUA_PATH_5_3",
                "LUA_CPATH",
                "DOTNET_STARTUP_HOOKS",
                "CORECLR_PROFILER_PATH",
                "CORECLR_ENABLE_PROFILING",
                "COR_PROFILER_PATH",
                "ERL_AFLAGS",
                "ERL_ZFLAGS",
                "OPENSSL_ENGINES",
                "OPENSSL_MODULES",
                "GIT_EXEC_PATH",
            ],
        ),
        (
            EnvCategory::CommandHook,
            &[
                "PATH",
                "BASH_ENV",
                "ENV",
                "PS4",
                "PROMPT_COMMAND",
                "GIT_ASKPASS",
                "SSH_ASKPASS",
                "SSH_ASKPASS_REQUIRE",
                "SUDO_ASKPASS",
                "GIT_SSH_COMMAND",
                "GIT_PROXY_COMMAND",
                "GIT_EXTERNAL_DIFF",
                "GIT_EDITOR",
                "GIT_PAGER",
                "EDITOR",
                "PAGER",
                "BROWSER",
                "LESSOPEN",
                "LESSCLOSE",
            ],
        ),
        (
            EnvCategory::ConfigCode,
            &[
                "GIT_CONFIG_COUNT",
                "GIT_CONFIG_KEY_0",
                "GIT_CONFIG_VALUE_0",
                "GIT_CONFIG_KEY_12",
                "GIT_CONFIG_PARAMETERS",
                "GIT_CONFIG_GLOBAL",
                "GIT_CONFIG",
                "GIT_DIR",
                "GIT_TEMPLATE_DIR",
                "OPENSSL_CONF",
                "PHPRC",
                "VIMINIT",
                "EXINIT",
                "NPM_CONFIG_SCRIPT_SHELL",
                "NPM_CONFIG_NODE_OPTIONS",
            ],
        ),
        (
            EnvCategory::TlsTrust,
            &[
                "NODE_TLS_REJECT_UNAUTHORIZED",
                "NODE_EXTRA_CA_CERTS",
                "SSL_CERT_FILE",
                "SSL_CERT_DIR",
                "REQUESTS_CA_BUNDLE",
                "CURL_CA_BUNDLE",
                "GIT_SSL_NO_VERIFY",
                "PYTHONHTTPSVERIFY",
                "SSLKEYLOGFILE",
            ],
        ),
        (
            EnvCategory::Redirection,
            &[
                "HTTPS_PROXY",
                "HTTP_PROXY",
                "ALL_PROXY",
                "NO_PROXY",
                "RES_OPTIONS",
                "LOCALDOMAIN",
                "HOSTALIASES",
                "RESOLV_HOST_CONF",
                "TMPDIR",
            ],
        ),
    ];
    for (category, names) in cases {
        for name in *names {
            for action in ["read", "inject", "read,inject"] {
                let raw = format!("env:{action}:{name}");
                rejects(&raw, CapEnvDangerous, name);
                let e = parse_capability(&raw).unwrap_err();
                assert!(
                    e.message.contains(category.as_str()),
                    "{raw}: message does not name {:?}: {}",
                    category,
                    e.message
                );
            }
        }
    }
    // Every category is exercised, and every table entry refuses its own name.
    for category in EnvCategory::ALL {
        assert!(cases.iter().any(|(c, _)| *c == category), "{category:?}");
    }
    for d in DANGEROUS_ENV {
        let name = if d.prefix {
            format!("{}X", d.name)
        } else {
            d.name.to_owned()
        };
        let e = parse_capability(&format!("env:read:{name}")).unwrap_err();
        assert_eq!(e.code, CapEnvDangerous, "{name}");
        assert!(
            e.message.contains(d.category.as_str()) && e.message.contains(d.reason),
            "{e:?}"
        );
    }
    // Ordinary names, including neighbours of refused names and families, stay accepted.
    for name in [
        "GITHUB_TOKEN",
        "LANG",
        "LC_ALL",
        "DISPLAY",
        "HOME",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONIOENCODING",
        "NODE_ENV",
        "LD",
        "LDFLAGS_X",
        "GIT_AUTHOR_NAME",
        "GIT_COMMITTER_EMAIL",
        "CORE_URL",
        "ERLANG_COOKIE_X",
        "SSL_MODE",
        "PATHS",
        "MY_PATH",
        "LUA_VERSION",
        "PROXY_TOKEN",
        "PGPASSWORD",
        "API_TOKEN",
    ] {
        ok(&format!("env:inject:{name}"));
    }
}

/// G3, other spellings: naming the X11 (or another well-known) socket
/// directory as a unix endpoint would reach every display; one socket is fine.
#[test]
fn unix_endpoint_socket_directories_are_directory_sized() {
    for (raw, caret) in [
        ("ipc:connect:unix:/tmp/.X11-unix", "/tmp/.X11-unix"),
        ("ipc:connect:\"unix:/tmp/.X11-unix\"", "/tmp/.X11-unix"),
        ("ipc:connect:unix:/tmp/.X11-unix/*", "/tmp/.X11-unix/*"),
        ("ipc:connect:unix:/tmp/.ICE-unix", "/tmp/.ICE-unix"),
        ("ipc:connect:unix:/run/dbus", "/run/dbus"),
        ("ipc:connect:unix:/var/run/dbus", "/var/run/dbus"),
    ] {
        rejects(raw, CapIpcSocket, caret);
    }
    ok("ipc:connect:unix:/tmp/.X11-unix/X1");
    ok("ipc:connect:unix:/run/dbus/system_bus_socket");
    ok("ipc:connect:unix:/var/run/dbus/system_bus_socket");
}

/// V4: a well-known socket directory through `fs:` (a read-only bind still
/// connects to every socket in it) is refused like its `unix:` form; one
/// socket file below it is one socket. A declared /tmp is noted by the rules.
#[test]
fn fs_socket_directories_are_refused() {
    for (raw, caret) in [
        ("fs:read:/tmp/.X11-unix", "/tmp/.X11-unix"),
        ("fs:read:/tmp/.X11-unix/**", "/tmp/.X11-unix/**"),
        ("fs:read:/tmp/.X11-unix/*", "/tmp/.X11-unix/*"),
        ("fs:read,write:/tmp/.X11-unix", "/tmp/.X11-unix"),
        ("fs:read:\"/tmp/.X11-unix\"", "/tmp/.X11-unix"),
        ("fs:read:/tmp/.ICE-unix/**", "/tmp/.ICE-unix/**"),
        ("fs:read:/tmp/.font-unix", "/tmp/.font-unix"),
        ("fs:read:/tmp/.X11-unix/sub/**", "/tmp/.X11-unix/sub/**"),
    ] {
        rejects(raw, CapFsReserved, caret);
        agree(raw);
    }
    // /run/dbus through an alias too (/run itself is an engine ancestor).
    for raw in ["fs:read:/run/dbus", "fs:read:/var/run/dbus/**"] {
        let e = parse_capability(raw).unwrap_err();
        assert_eq!(e.code, CapFsReserved, "{raw}");
        agree(raw);
    }
    ok("fs:read:/tmp/.X11-unix/X0");
    ok("fs:read:/tmp");
    ok("fs:read:/tmp/.X11-unixes");
}

/// V5: engines and state directories added to the tables; a home directory
/// stays declarable while rootless engine state below it is refused.
#[test]
fn more_engine_locations_are_refused() {
    for raw in [
        "ipc:connect:unix:/var/run/balena-engine.sock",
        "ipc:connect:unix:/var/run/balena.sock",
        "ipc:connect:unix:/srv/x/balena-engine.sock",
        "ipc:connect:unix:/run/k0s/containerd.sock",
        "ipc:connect:unix:/run/user/1000/containers/x.sock",
    ] {
        assert_eq!(
            parse_capability(raw).unwrap_err().code,
            CapIpcSocket,
            "{raw}"
        );
        agree(raw);
    }
    for raw in [
        "fs:read:/var/lib/balena-engine/**",
        "fs:read:/var/snap/docker/**",
        "fs:read:/run/k0s/**",
        "fs:read:/var/lib/rancher/**",
        "fs:read:/var/lib/kubelet/pods/x/volumes/**",
        "fs:read:/var/lib/lxc/**",
        "fs:read:/var/lib/machines/**",
        "fs:read:/run/containers/0/auth.json",
        "fs:read:/var/run/containers/**",
        "fs:read:/home/u/.local/share/containers/**",
        "fs:write:/home/u/.local/share/docker",
        "fs:read:/root/.local/share/containers/storage/**",
        "fs:read:/run/runc/**",
        "fs:read:/run/crun",
        "fs:read:/run/user/1000/libpod/**",
    ] {
        assert_eq!(
            parse_capability(raw).unwrap_err().code,
            CapFsReserved,
            "{raw}"
        );
        agree(raw);
    }
    // Directories above rootless engine state stay declarable.
    for raw in [
        "fs:read:/home/u/**",
        "fs:read:/home/u/.local/share",
        "fs:read:/root/.local/**",
        "fs:read:/home/u/.local/share/containers-notes",
    ] {
        ok(raw);
        agree(raw);
    }
}

/// Root-equivalent sockets a review found accepted: libvirt's, incus's,
/// snapd's and Docker Desktop's; the home directory above the last stays
/// declarable.
#[test]
fn vm_manager_and_desktop_engine_sockets_are_refused() {
    for raw in [
        "ipc:connect:unix:/run/libvirt/libvirt-sock",
        "ipc:connect:unix:/var/run/libvirt/virtqemud-sock",
        "ipc:connect:unix:/srv/x/libvirt-sock",
        "ipc:connect:unix:/run/incus/unix.socket",
        "ipc:connect:unix:/run/snapd.socket",
        "ipc:connect:unix:/home/u/.docker/run/docker.sock",
    ] {
        assert_eq!(
            parse_capability(raw).unwrap_err().code,
            CapIpcSocket,
            "{raw}"
        );
        agree(raw);
    }
    for raw in [
        "fs:read:/run/libvirt/**",
        "fs:read:/run/incus",
        "fs:read:/home/u/.docker/run/**",
        "fs:read:/root/.docker/run",
    ] {
        assert_eq!(
            parse_capability(raw).unwrap_err().code,
            CapFsReserved,
            "{raw}"
        );
        agree(raw);
    }
    for raw in ["fs:read:/home/u/.docker/config.json", "fs:read:/home/u/**"] {
        ok(raw);
        agree(raw);
    }
}

/// V6: names of the documented categories the first table missed.
#[test]
fn more_dangerous_env_names_are_refused() {
    for name in [
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "PIP_TRUSTED_HOST",
        "PIP_CERT",
        "PIP_CONFIG_FILE",
        "UV_INDEX_URL",
        "UV_INDEX",
        "UV_DEFAULT_INDEX",
        "UV_EXTRA_INDEX_URL",
        "UV_INSECURE_HOST",
        "GOINSECURE",
        "GONOSUMDB",
        "GOPROXY",
        "GOFLAGS",
        "GOSUMDB",
        "GOTOOLCHAIN",
        "JAVA_OPTS",
        "BUN_OPTIONS",
        "ELIXIR_ERL_OPTIONS",
        "R_PROFILE",
        "R_PROFILE_USER",
        "TCLLIBPATH",
        "JULIA_LOAD_PATH",
        "JULIA_DEPOT_PATH",
        "PERL_MB_OPT",
        "RUSTC_WRAPPER",
        "DOTNET_ROOT",
        "PYTHONEXECUTABLE",
        "ZDOTDIR",
        "XDG_CONFIG_HOME",
        "XDG_CONFIG_DIRS",
        "KUBECONFIG",
        "DOCKER_CONFIG",
        "AWS_CONFIG_FILE",
        "CARGO_HOME",
        "CURL_HOME",
        "WGETRC",
        "INPUTRC",
        "SYSTEMD_PAGER",
        "SHELL",
        "YARN_REGISTRY",
        "YARN_YARN_PATH",
        "BUN_CONFIG_REGISTRY",
        "DOCKER_HOST",
        "CONTAINER_HOST",
        "SOCKS_PROXY",
        "SOCKS5_PROXY",
        "GRPC_PROXY",
        "GIT_TRACE",
        "GIT_TRACE_PACKET",
        "AWS_CA_BUNDLE",
        "DENO_CERT",
        "DENO_TLS_CA_STORE",
        "NIX_SSL_CERT_FILE",
        "HTTPLIB2_CA_CERTS",
    ] {
        let raw = format!("env:inject:{name}");
        let e = parse_capability(&raw).unwrap_err();
        assert_eq!(e.code, CapEnvDangerous, "{name}");
        agree(&raw);
    }
    // Neighbours that are not settings of those programs stay accepted.
    for name in [
        "PIPELINE_ID",
        "UVICORN_PORT",
        "GO_ENV",
        "GOOGLE_API_KEY",
        "R_HOME_X",
        "SHELLCHECK_OPTS",
        "XDG_RUNTIME_DIR",
        "DOCKER_IMAGE_TAG",
        "AWS_REGION",
        "CARGO_PKG_NAME",
        "YARNISH",
    ] {
        ok(&format!("env:inject:{name}"));
    }
}

/// A differential review found a quoted path ending in `.` or `..` accepted
/// (the dot rules' end lookahead saw the closing quote and the segment fell
/// through to a name). Segments are now read from the path's text.
#[test]
fn quoted_paths_ending_in_dots_are_refused() {
    rejects("fs:write:\"/..\"", CapFsPath, "..");
    rejects("fs:read:\"/d/.\"", CapFsPath, ".");
    rejects("fs:read:\"/run/user/1000/..\"", CapFsPath, "..");
    rejects("ipc:connect:\"unix:/tmp/..\"", CapIpcEndpoint, "..");
    rejects("ipc:connect:\"unix:/a/.\"", CapIpcEndpoint, ".");
    rejects("fs:read:/a/..?x=1", CapRefinement, "x=1");
}

/// Cargo.toml pins pest 2.8 because 2.9's per-call stack probe guards only
/// against recursion, which this grammar must not have: no rule may reach
/// itself through the rules it names, so parse depth is bounded by the
/// grammar, whatever the input.
#[test]
fn grammar_has_no_recursive_rule() {
    let text = include_str!("../../grammar/capability.pest");
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    // `name = modifier? { body }`; bodies hold no braces (string literals
    // of braces would need quoting, and the grammar has none).
    let mut rules: Vec<(&str, &str)> = Vec::new();
    let mut rest = code.as_str();
    while let Some(open) = rest.find('{') {
        let head = rest[..open].trim_end_matches(['_', '@', '$', '!', ' ', '\n']);
        let name = head
            .trim_end()
            .strip_suffix('=')
            .expect("a rule is `name = {...}`")
            .trim_end();
        let name = name.rsplit(char::is_whitespace).next().unwrap();
        let close = open + rest[open..].find('}').expect("closed rule");
        rules.push((name, &rest[open + 1..close]));
        rest = &rest[close + 1..];
    }
    assert!(rules.len() > 40, "read {} rules", rules.len());
    let refs = |body: &str| -> Vec<usize> {
        let mut out = Vec::new();
        let mut word = String::new();
        let mut chars = body.chars().chain([' ']);
        while let Some(c) = chars.next() {
            if c == '"' || c == '\'' {
                // A literal: skip to its closing quote, past escapes.
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => {
                            chars.next();
                        }
                        d if d == c => break,
                        _ => {}
                    }
                }
            } else if c.is_ascii_alphanumeric() || c == '_' {
                word.push(c);
                continue;
            }
            if let Some(i) = rules.iter().position(|(n, _)| *n == word) {
                out.push(i);
            }
            word.clear();
        }
        out
    };
    let edges: Vec<Vec<usize>> = rules.iter().map(|(_, b)| refs(b)).collect();
    assert!(
        edges.iter().any(|e| !e.is_empty()),
        "no rule names another: the reader is broken"
    );
    // A rule is recursive when it is reachable from the rules it names.
    for start in 0..rules.len() {
        let mut seen = vec![false; rules.len()];
        let mut todo = edges[start].clone();
        while let Some(at) = todo.pop() {
            assert!(at != start, "recursive rule: {}", rules[start].0);
            if !std::mem::replace(&mut seen[at], true) {
                todo.extend(&edges[at]);
            }
        }
    }
}

/// A writable path that is or holds a path the targets bind read-only beside
/// the declared ones is refused, in every spelling; read-only, or writable
/// below such a path, it is accepted.
#[test]
fn writable_paths_holding_system_bind_sources_are_refused() {
    for raw in [
        "fs:read,write,create,delete:/usr/**",
        "fs:delete:/usr",
        "fs:write:/etc/**",
        "fs:write:/etc/ssl/*",
        "fs:read,write:/usr/lib",
        "fs:read,write:/usr/share/**",
        "fs:read,write:/usr/share/zoneinfo/**",
        "fs:read,write:/etc/localtime",
        "fs:read,write:/etc/hosts",
        // srt reads it for clock:tzdata
        "fs:read,write:/etc/timezone",
        // capgate run's tools, root's PATH
        "fs:read,write,create,delete:/usr/local/bin/**",
        "fs:write:/usr/local/sbin/ip",
        "fs:read,write:/usr/local/**",
    ] {
        let e = parse_capability(raw).expect_err(raw);
        assert_eq!(e.code, Code::CapFsReserved, "{raw}: {e:?}");
        assert!(
            e.message.contains("bind read-only") || e.message.contains("root runs"),
            "{raw}: {e:?}"
        );
    }
    for raw in [
        "fs:read:/usr/**",
        "fs:read:/etc/**",
        "fs:write:/etc/app.conf",
        "fs:read,write,create,delete:/usr/local/lib/app/**",
        "fs:read,write,create,delete:/usr/lib/app/**",
        "fs:read,write:/etc/ssl/private-app/**",
    ] {
        ok(raw);
    }
}
