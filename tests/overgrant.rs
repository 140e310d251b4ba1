//! One test per over-grant, fail-open or non-determinism item of SPEC §13 (the reference
//! tool's weaknesses), named `s13_<item>_...`. Each test compiles hostile or edge-case
//! capabilities and checks the rejection code or the safe lowering in the compiled output.
//! The deviation ids (`DEV-...`) refer to `docs/compatibility.md`.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use capgate::assets::Assets;
use capgate::compile::{Compiler, Settings};
use capgate::diag::{Code, Diagnostic};
use serde_json::{json, Value};

const TARGETS: [&str; 4] = ["bwrap", "docker", "squid", "nftables"];

// ------------------------------------------------------------------ helpers

/// A manifest with one tool per capability list.
fn manifest(tools: &[&[&str]]) -> Vec<u8> {
    let tools: Vec<Value> = tools
        .iter()
        .enumerate()
        .map(|(i, caps)| json!({"name": format!("tool{i}"), "capabilities": caps}))
        .collect();
    serde_json::to_vec_pretty(&json!({"name": "srv", "version": "1.0.0", "tools": tools})).unwrap()
}

fn render(diags: &[Diagnostic]) -> String {
    diags.iter().map(Diagnostic::render).collect()
}

fn compile_bytes(
    target: &str,
    bytes: &[u8],
    permissive: bool,
    set: &[(&str, &str)],
) -> Result<Value, Vec<Diagnostic>> {
    let compiler = Compiler::new(&Assets::default(), target).expect("built-in target loads");
    let out = compiler.compile(
        "test.json",
        bytes,
        &Settings {
            permissive,
            set: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
    )?;
    Ok(serde_json::from_str(&out.artifact.to_json(false)).unwrap())
}

/// Compiles capabilities (one tool) that must be accepted.
fn ok(target: &str, caps: &[&str]) -> Value {
    ok_tools(target, &[caps])
}

fn ok_tools(target: &str, tools: &[&[&str]]) -> Value {
    compile_bytes(target, &manifest(tools), false, &[])
        .unwrap_or_else(|d| panic!("{tools:?} × {target} must compile:\n{}", render(&d)))
}

fn ok_permissive(target: &str, caps: &[&str]) -> Value {
    compile_bytes(target, &manifest(&[caps]), true, &[])
        .unwrap_or_else(|d| panic!("{caps:?} × {target} must compile:\n{}", render(&d)))
}

/// The first error code of a capability that must be rejected; it must be the same on
/// every target (grammar errors come before any target is involved).
fn rejected(cap: &str) -> Code {
    let mut codes = BTreeSet::new();
    for target in TARGETS {
        match compile_bytes(target, &manifest(&[&[cap]]), true, &[]) {
            Ok(v) => panic!("{cap:?} was accepted by {target}: {v}"),
            Err(d) => {
                codes.insert(d[0].code.as_str());
            }
        }
    }
    assert_eq!(
        codes.len(),
        1,
        "{cap:?}: different codes per target: {codes:?}"
    );
    let d = compile_bytes("bwrap", &manifest(&[&[cap]]), false, &[]).unwrap_err();
    d[0].code
}

fn assert_rejected(cases: &[(&str, Code)]) {
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(cap, code)| {
            let got = rejected(cap);
            (got != *code)
                .then(|| format!("{cap:?}: expected {}, got {}", code.as_str(), got.as_str()))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn argv(v: &Value) -> Vec<String> {
    v["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// argv split into options: a `--flag` and its operands.
fn groups(v: &Value) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for a in argv(v) {
        match out.last_mut() {
            Some(g) if !a.starts_with("--") => g.push(a),
            _ => out.push(vec![a]),
        }
    }
    out
}

fn has_group(v: &Value, g: &[&str]) -> bool {
    groups(v).iter().any(|x| x == g)
}

fn group_index(v: &Value, g: &[&str]) -> usize {
    groups(v)
        .iter()
        .position(|x| x == g)
        .unwrap_or_else(|| panic!("{g:?} not in {:?}", argv(v)))
}

fn notes(v: &Value) -> Vec<String> {
    v["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn lines(v: &Value) -> Vec<String> {
    v["config"]
        .as_str()
        .unwrap()
        .lines()
        .map(|l| l.trim().to_owned())
        .collect()
}

fn line_index(v: &Value, pred: impl Fn(&str) -> bool, what: &str) -> usize {
    lines(v)
        .iter()
        .position(|l| pred(l))
        .unwrap_or_else(|| panic!("no line {what} in\n{}", v["config"].as_str().unwrap()))
}

/// Every bind of a bwrap argv: (flag, source, destination).
fn bwrap_binds(v: &Value) -> Vec<(String, String, String)> {
    groups(v)
        .into_iter()
        .filter(|g| g.len() == 3 && g[0].contains("bind"))
        .map(|g| (g[0].clone(), g[1].clone(), g[2].clone()))
        .collect()
}

/// Every docker `--mount`: (source, target, readonly).
fn docker_mounts(v: &Value) -> Vec<(String, String, bool)> {
    groups(v)
        .into_iter()
        .filter(|g| g.len() == 2 && g[0] == "--mount")
        .map(|g| {
            let mut src = String::new();
            let mut dst = String::new();
            let mut ro = false;
            for part in g[1].split(',') {
                match part.split_once('=') {
                    Some(("source", s)) => src = s.to_owned(),
                    Some(("target", t)) => dst = t.to_owned(),
                    Some(("type", t)) => assert_eq!(t, "bind"),
                    None if part == "readonly" => ro = true,
                    // A read-only bind is not recursive (F9): host submounts stay out.
                    None if part == "bind-nonrecursive" => {}
                    Some(("bind-recursive", "readonly")) => {}
                    _ => panic!("unexpected mount option {part} in {}", g[1]),
                }
            }
            (src, dst, ro)
        })
        .collect()
}

/// A CIDR `addr/len` (or a bare address).
fn cidr(s: &str) -> (IpAddr, u8) {
    let (a, l) = s
        .split_once('/')
        .unwrap_or((s, if s.contains(':') { "128" } else { "32" }));
    (
        a.parse().unwrap_or_else(|_| panic!("bad address {s}")),
        l.parse().unwrap(),
    )
}

fn in_cidr(addr: IpAddr, net: &str) -> bool {
    match (addr, cidr(net)) {
        (IpAddr::V4(a), (IpAddr::V4(n), len)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), (IpAddr::V6(n), len)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// A squid.conf as data: acls (name → type, values) and http_access rules in order.
struct Squid {
    acls: Vec<(String, String, Vec<String>)>,
    access: Vec<(bool, Vec<String>)>,
    /// For each http_access rule, whether every acl it names was defined before it.
    defined_before_use: bool,
}

fn squid(v: &Value) -> Squid {
    let mut s = Squid {
        acls: Vec::new(),
        access: Vec::new(),
        defined_before_use: true,
    };
    for line in lines(v) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["acl", name, ty, rest @ ..] => s.acls.push((
                name.to_string(),
                ty.to_string(),
                rest.iter()
                    .filter(|w| !w.starts_with('-'))
                    .map(|w| w.to_string())
                    .collect(),
            )),
            ["http_access", verdict, names @ ..] => {
                let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
                for n in &names {
                    // `all` and `manager` are squid's predefined acls.
                    let n = n.strip_prefix('!').unwrap_or(n);
                    if n != "all" && n != "manager" && !s.acls.iter().any(|(a, _, _)| a == n) {
                        s.defined_before_use = false;
                    }
                }
                s.access.push((*verdict == "allow", names));
            }
            _ => {}
        }
    }
    s
}

impl Squid {
    fn acl(&self, name: &str) -> (String, Vec<String>) {
        let mut ty = String::new();
        let mut values = Vec::new();
        for (n, t, v) in &self.acls {
            if n == name {
                ty = t.clone();
                values.extend(v.iter().cloned());
            }
        }
        (ty, values)
    }

    /// `dst` values denied by rules before the first allow that is not for a special address.
    fn denied_special(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (allow, names) in &self.access {
            if !allow {
                for n in names {
                    let (ty, values) = self.acl(n);
                    if ty == "dst" {
                        out.extend(values);
                    }
                }
            }
        }
        out
    }

    /// Index of the rule allowing requests to `host` (and `port`).
    fn allow_index(&self, host: &str, port: Option<u16>) -> Option<usize> {
        self.access.iter().position(|(allow, names)| {
            *allow && {
                let mut hosts = Vec::new();
                let mut ports = Vec::new();
                for n in names.iter().filter(|n| *n != "all") {
                    let (ty, values) = self.acl(n);
                    match ty.as_str() {
                        "dst" | "dstdomain" => hosts.extend(values),
                        "port" => ports.extend(values),
                        _ => {}
                    }
                }
                let host_ok = if host == "*" {
                    hosts.is_empty()
                } else {
                    hosts == [host]
                };
                let port_ok = match port {
                    Some(p) => ports == [p.to_string()],
                    None => ports.is_empty(),
                };
                host_ok && port_ok
            }
        })
    }

    fn deny_index(&self) -> usize {
        self.access
            .iter()
            .position(|(allow, names)| !allow && names.iter().any(|n| self.acl(n).0 == "dst"))
            .expect("a special-range deny rule")
    }
}

/// The addresses of `ip daddr { ... } drop` / `ip6 daddr { ... } drop` lines.
fn nft_dropped(v: &Value) -> Vec<String> {
    lines(v)
        .iter()
        .filter(|l| {
            (l.starts_with("ip daddr {") || l.starts_with("ip6 daddr {")) && l.ends_with("} drop")
        })
        .flat_map(|l| {
            let inner = &l[l.find('{').unwrap() + 1..l.rfind('}').unwrap()];
            inner
                .split(',')
                .map(|s| s.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_capgate")
}

/// Runs the binary with a manifest on stdin.
fn run(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> (i32, String, String) {
    use std::io::Write as _;
    let mut child = Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // capgate may exit before reading stdin (usage errors): ignore EPIPE.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().expect("exited normally"),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn fixture_manifests() -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for dir in [
        "fixtures/manifests",
        "fixtures/injection",
        "tests/reference/manifests",
    ] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "json") {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    assert!(out.len() >= 4);
    out
}

/// Compiles a fixture file; `None` when it is rejected (injection fixtures may be).
fn compile_fixture(path: &Path, target: &str) -> Option<Value> {
    compile_bytes(target, &std::fs::read(path).unwrap(), true, &[]).ok()
}

// ------------------------------------------------------------------ §13.1 injection

#[test]
fn s13_1_squid_newline_injection_rejected() {
    // DEV-GRAMMAR-STRICT: a newline (or any control / line-separator character) ends nowhere.
    assert_rejected(&[
        (
            "net:connect:10.0.0.1\nhttp_access allow all:443",
            Code::CapChar,
        ),
        (
            "net:connect:a.example\r\nhttp_access allow all:443",
            Code::CapChar,
        ),
        (
            "net:connect:a.example\u{2028}http_access allow all:443",
            Code::CapChar,
        ),
        ("net:connect:a.example:443\n", Code::CapChar),
        ("fs:read:/w\n--bind / /", Code::CapChar),
    ]);
}

#[test]
fn s13_1_squid_space_list_rejected() {
    assert_rejected(&[
        ("net:connect:api.github.com .:443", Code::CapNetHost),
        ("net:connect:\"api.github.com .\":443", Code::CapNetHost),
        ("net:connect:a.example\tb.example:443", Code::CapChar),
        ("net:connect:.:443", Code::CapNetHost),
        ("net:connect:.example.com:443", Code::CapNetHost),
        ("net:connect:all:443x", Code::CapNetPort),
    ]);
}

#[test]
fn s13_1_nft_newline_injection_rejected() {
    assert_rejected(&[
        (
            "net:connect:\"::1 accept\n    ip daddr 0.0.0.0/0\":443",
            Code::CapChar,
        ),
        (
            "net:connect:\"::1 accept ip daddr 0.0.0.0/0\":443",
            Code::CapNetHost,
        ),
        ("net:connect:\"::1}\":443", Code::CapNetHost),
        ("net:connect:\"{ ::1 }\":443", Code::CapNetHost),
        ("net:connect:\"::1;\":443", Code::CapNetHost),
    ]);
}

#[test]
fn s13_1_nft_ipv6_any_cidr_rejected() {
    assert_rejected(&[
        ("net:connect:\"::/0\":443", Code::CapNetHost),
        ("net:connect:0.0.0.0/0:443", Code::CapNetHost),
        ("net:connect:\"2001:db8::/32\":443", Code::CapNetHost),
        ("net:connect:1.2.3.4/32:443", Code::CapNetHost),
    ]);
}

#[test]
fn s13_1_accepted_hosts_stay_single_tokens() {
    // Whatever is accepted appears in the configs as exactly one token per value, and every
    // declared rule yields exactly one allow rule / accept line.
    let caps = [
        "net:connect:API.Example.COM:443",
        "net:connect:*.cdn.example:443",
        "net:connect:93.184.215.14:8443",
        "net:connect:\"2606:4700:4700::1111\":853",
    ];
    let s = ok("squid", &caps);
    let conf = squid(&s);
    assert!(conf.allow_index("api.example.com", Some(443)).is_some());
    assert!(conf.allow_index(".cdn.example", Some(443)).is_some());
    assert!(conf.allow_index("93.184.215.14", Some(8443)).is_some());
    assert!(conf
        .allow_index("2606:4700:4700::1111", Some(853))
        .is_some());
    assert_eq!(conf.access.iter().filter(|(a, _)| *a).count(), caps.len());
    assert_eq!(
        conf.access.last().unwrap(),
        &(false, vec!["all".to_owned()])
    );

    let n = ok_permissive("nftables", &caps);
    let accepts: BTreeSet<String> = lines(&n)
        .into_iter()
        .filter(|l| l.contains(" daddr ") && l.ends_with(" accept") && !l.contains("icmpv6"))
        .collect();
    let expected: BTreeSet<String> = [
        "ip daddr 93.184.215.14 tcp dport 8443 accept",
        "ip6 daddr 2606:4700:4700::1111 tcp dport 853 accept",
    ]
    .map(String::from)
    .into();
    assert_eq!(accepts, expected);
}

// ------------------------------------------------------------------ §13.2 docker network

#[test]
fn s13_2_docker_never_default_bridge() {
    // DEV-DOCKER-NETWORK
    for caps in [
        &["net:connect:api.github.com:443"][..],
        &["net:connect:*"],
        &["net:connect:10.0.0.5:5432"],
    ] {
        let v = ok("docker", caps);
        let networks: Vec<Vec<String>> = groups(&v)
            .into_iter()
            .filter(|g| g[0] == "--network" || g[0] == "--net")
            .collect();
        assert_eq!(networks.len(), 1, "{caps:?}: {:?}", argv(&v));
        let net = &networks[0][1];
        assert!(
            !["host", "bridge", "default", "none"].contains(&net.as_str())
                && !net.starts_with("container:"),
            "{net}"
        );
        for var in ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"] {
            assert!(
                argv(&v).iter().any(|a| a.starts_with(&format!("{var}="))),
                "{caps:?}: {var} missing"
            );
        }
        assert!(
            notes(&v)
                .iter()
                .any(|n| n.contains(&format!("--internal {net}"))),
            "{:?}",
            notes(&v)
        );
        assert!(!argv(&v)
            .iter()
            .any(|a| a == "--publish" || a == "-p" || a == "--add-host"));
    }
    let v = ok("docker", &["fs:read:/data/**"]);
    assert!(has_group(&v, &["--network", "none"]), "{:?}", argv(&v));
}

#[test]
fn s13_2_docker_network_option_cannot_select_host_or_bridge() {
    // `none` stays allowed: it is narrower than declared (no egress at all).
    let bytes = manifest(&[&["net:connect:api.github.com:443"]]);
    for value in [
        "host",
        "bridge",
        "default",
        "container:other",
        "ns:/proc/1/ns/net",
    ] {
        match compile_bytes("docker", &bytes, false, &[("network", value)]) {
            Ok(v) => panic!("--set network={value} accepted: {:?}", argv(&v)),
            Err(d) => assert_eq!(d[0].code, Code::OptionInvalid, "{}", render(&d)),
        }
    }
}

// ------------------------------------------------------------------ §13.3 nestedSandbox

const STRICT_UNSHARE: [&str; 6] = [
    "--unshare-user",
    "--unshare-ipc",
    "--unshare-pid",
    "--unshare-net",
    "--unshare-uts",
    "--unshare-cgroup",
];

#[test]
fn s13_3_nested_sandbox_keeps_namespaces() {
    // DEV-NESTED-EXEC-ONLY, DEV-BWRAP-NAMESPACES, DEV-BWRAP-DISABLE-USERNS
    let nested_cap = "exec:spawn:chromium?nestedSandbox=true";
    let nested = ok("bwrap", &[nested_cap, "fs:read:/opt/app/**"]);
    let plain = ok("bwrap", &["exec:spawn:chromium", "fs:read:/opt/app/**"]);
    let a = argv(&nested);
    for flag in STRICT_UNSHARE {
        assert!(a.iter().any(|x| x == flag), "{flag} missing: {a:?}");
    }
    assert!(!a
        .iter()
        .any(|x| x.ends_with("-try") && x.starts_with("--unshare")));
    assert!(!a
        .iter()
        .any(|x| x == "--share-net" || x == "--disable-userns"));
    assert!(has_group(&nested, &["--cap-drop", "ALL"]));
    assert!(has_group(&nested, &["--uid", "65534"]));
    // The only difference from the same manifest without nestedSandbox is --disable-userns.
    let mut without: Vec<String> = argv(&plain);
    let i = without
        .iter()
        .position(|x| x == "--disable-userns")
        .expect("non-nested forbids userns");
    without.remove(i);
    assert_eq!(a, without);
    assert!(
        notes(&nested)
            .iter()
            .any(|n| n.starts_with("nestedSandbox:") && n.contains(nested_cap)),
        "{:?}",
        notes(&nested)
    );

    // docker: no capability is added; the only difference is that capgate's
    // seccomp profile (no user namespaces) gives way to the engine default.
    let d_nested = ok("docker", &[nested_cap]);
    let d_plain = ok("docker", &["exec:spawn:chromium"]);
    let mut d_without = argv(&d_plain);
    let i = d_without
        .windows(2)
        .position(|w| w[0] == "--security-opt" && w[1].starts_with("seccomp=/"))
        .expect("non-nested docker selects capgate's seccomp profile");
    d_without.drain(i..i + 2);
    assert_eq!(argv(&d_nested), d_without);
    assert!(!argv(&d_nested)
        .iter()
        .any(|x| x == "--privileged" || x == "--cap-add" || x.contains("unconfined")));
    assert!(notes(&d_nested)
        .iter()
        .any(|n| n.starts_with("nestedSandbox:") && n.contains(nested_cap)));

    // `false` / `0` mean no nested sandbox.
    for cap in [
        "exec:spawn:chromium?nestedSandbox=false",
        "exec:spawn:chromium?nestedSandbox=0",
    ] {
        assert_eq!(
            argv(&ok("bwrap", &[cap, "fs:read:/opt/app/**"])),
            argv(&plain),
            "{cap}"
        );
    }
}

#[test]
fn s13_3_nested_sandbox_only_on_exec() {
    assert_rejected(&[
        ("env:read:X?nestedSandbox=1", Code::CapRefinement),
        ("fs:read:/a?nestedSandbox=true", Code::CapRefinement),
        ("net:connect:*?nestedSandbox=true", Code::CapRefinement),
        ("ipc:connect:x11?nestedSandbox=true", Code::CapRefinement),
        ("assert:a?nestedSandbox=true", Code::CapRefinement),
        ("clock:system?nestedSandbox=true", Code::CapRefinement),
    ]);
}

// ------------------------------------------------------------------ §13.4 ipc sockets

#[test]
fn s13_4_unix_root_socket_rejected() {
    // DEV-IPC-SOCKETS
    assert_rejected(&[
        ("ipc:connect:\"unix:/\"", Code::CapIpcSocket),
        ("ipc:connect:unix:/", Code::CapIpcSocket),
        ("ipc:connect:\"unix:/run\"", Code::CapIpcSocket),
        ("ipc:connect:\"unix:/tmp\"", Code::CapIpcSocket),
        ("ipc:connect:\"unix:/run/*\"", Code::CapIpcSocket),
        ("ipc:connect:\"unix:/run/**\"", Code::CapIpcSocket),
        (
            "ipc:connect:\"unix:/var/run/docker.sock\"",
            Code::CapIpcSocket,
        ),
        ("ipc:connect:\"unix:/run/docker.sock\"", Code::CapIpcSocket),
        (
            "ipc:connect:\"unix:/run/podman/podman.sock\"",
            Code::CapIpcSocket,
        ),
        (
            "ipc:connect:\"unix:/run/containerd/containerd.sock\"",
            Code::CapIpcSocket,
        ),
        (
            "ipc:connect:\"unix:/proc/1/root/x.sock\"",
            Code::CapIpcSocket,
        ),
        ("ipc:connect:\"unix:relative.sock\"", Code::CapIpcEndpoint),
        (
            "ipc:connect:\"unix:/run/../etc/x.sock\"",
            Code::CapIpcEndpoint,
        ),
        ("ipc:connect:\"unix:\"", Code::CapIpcEndpoint),
        ("ipc:connect:\"dbus:other\"", Code::CapIpcEndpoint),
    ]);
}

#[test]
fn s13_4_sockets_are_bound_read_only() {
    // DEV-BWRAP-IPC-READONLY
    let caps = [
        "ipc:connect:\"unix:/run/app/app.sock\"",
        "ipc:connect:\"dbus:system\"",
        "ipc:connect:x11",
    ];
    let paths = [
        "/run/app/app.sock",
        "/run/dbus/system_bus_socket",
        "/tmp/.X11-unix/X0",
    ];
    let b = ok("bwrap", &caps);
    for p in paths {
        assert!(
            has_group(&b, &["--ro-bind-try", p, p]),
            "{p}: {:?}",
            argv(&b)
        );
    }
    for (flag, src, _) in bwrap_binds(&b) {
        assert!(
            !(flag.starts_with("--bind") && paths.contains(&src.as_str())),
            "{flag} {src}"
        );
    }
    let d = ok("docker", &caps);
    let mounts = docker_mounts(&d);
    for p in paths {
        assert!(
            mounts.contains(&(p.to_owned(), p.to_owned(), true)),
            "{p}: {mounts:?}"
        );
    }
    assert!(!argv(&d).iter().any(|a| a == "--volume" || a == "-v"));
}

// ------------------------------------------------------------------ §13.5 file paths

#[test]
fn s13_5_file_path_binds_file_not_parent() {
    // DEV-FS-FILE-BIND
    let b = ok(
        "bwrap",
        &[
            "fs:write:/etc/app.conf",
            "fs:read:/opt/app.v2",
            "fs:read:/home/u/notes.txt",
        ],
    );
    assert!(
        has_group(&b, &["--bind", "/etc/app.conf", "/etc/app.conf"]),
        "{:?}",
        argv(&b)
    );
    assert!(has_group(&b, &["--ro-bind", "/opt/app.v2", "/opt/app.v2"]));
    assert!(has_group(
        &b,
        &["--ro-bind", "/home/u/notes.txt", "/home/u/notes.txt"]
    ));
    for parent in ["/etc", "/opt", "/home/u", "/home"] {
        assert!(
            !bwrap_binds(&b)
                .iter()
                .any(|(_, s, d)| s == parent || d == parent),
            "{parent} bound: {:?}",
            argv(&b)
        );
    }
    let d = ok("docker", &["fs:write:/etc/app.conf"]);
    assert_eq!(
        docker_mounts(&d),
        [(
            "/etc/app.conf".to_owned(),
            "/etc/app.conf".to_owned(),
            false
        )]
    );
}

// ------------------------------------------------------------------ §13.6 widening

#[test]
fn s13_6_child_write_does_not_widen_parent() {
    // DEV-FS-NESTED-BINDS
    let b = ok_tools(
        "bwrap",
        &[&["fs:read:/workspace/**"], &["fs:write:/workspace/tmp/**"]],
    );
    let ro = group_index(&b, &["--ro-bind", "/workspace", "/workspace"]);
    let rw = group_index(&b, &["--bind", "/workspace/tmp", "/workspace/tmp"]);
    assert!(ro < rw, "the child is mounted on top of the parent");
    assert!(!has_group(&b, &["--bind", "/workspace", "/workspace"]));
    assert!(
        !notes(&b).iter().any(|n| n.contains("for the whole server")),
        "{:?}",
        notes(&b)
    );

    let d = ok_tools(
        "docker",
        &[&["fs:read:/workspace/**"], &["fs:write:/workspace/tmp/**"]],
    );
    assert_eq!(
        docker_mounts(&d),
        [
            ("/workspace".to_owned(), "/workspace".to_owned(), true),
            (
                "/workspace/tmp".to_owned(),
                "/workspace/tmp".to_owned(),
                false
            )
        ]
    );
}

#[test]
fn s13_6_widening_merges_are_noted() {
    // DEV-NOTE-WIDENING: a read-only path folded into a writable ancestor.
    let b = ok_tools("bwrap", &[&["fs:write:/w/**"], &["fs:read:/w/sub/**"]]);
    assert!(has_group(&b, &["--bind", "/w", "/w"]));
    let n = notes(&b);
    assert!(
        n.iter()
            .any(|n| n.contains("\"/w\" is read-write for the whole server")
                && n.contains("fs:read:/w/sub/**")
                && n.contains("tool1")),
        "{n:?}"
    );
    // DEV-NET-ANY-PORT-MERGE: a port-specific rule folded into an any-port rule.
    let v = ok_tools(
        "bwrap",
        &[&["net:connect:a.example:443"], &["net:connect:a.example"]],
    );
    assert_eq!(
        v["egress"],
        json!([{"host": "a.example", "port": null, "blockPrivate": true}])
    );
    assert!(
        notes(&v)
            .iter()
            .any(|n| n.contains("\"a.example\" is open on any port")
                && n.contains("net:connect:a.example:443")),
        "{:?}",
        notes(&v)
    );
    // `/x/*` is a recursive bind: said so, on both argv targets.
    for target in ["bwrap", "docker"] {
        let v = ok(target, &["fs:read:/x/*"]);
        assert!(
            notes(&v)
                .iter()
                .any(|n| n.contains("\"/x/*\"") && n.contains("\"/x\"")),
            "{target}: {:?}",
            notes(&v)
        );
    }
}

// ------------------------------------------------------------------ §13.7 normalisation

#[test]
fn s13_7_dotdot_rejected() {
    assert_rejected(&[
        ("fs:read:/w/../etc", Code::CapFsPath),
        ("fs:read:/w/..", Code::CapFsPath),
        ("fs:read:/..", Code::CapFsPath),
        ("fs:read:/w/./x", Code::CapFsPath),
        ("fs:read:/w/.", Code::CapFsPath),
        ("fs:read://etc", Code::CapFsPath),
        ("fs:read:/w//x", Code::CapFsPath),
        ("fs:read:/w/", Code::CapFsPath),
        ("fs:read:/w/../**", Code::CapFsPath),
    ]);
}

#[test]
fn s13_7_docker_mount_refuses_missing_sources() {
    // DEV-DOCKER-MOUNT: `--mount type=bind` fails on a missing source; `-v` created it as root.
    // DEV-SYMLINKS-KEPT: capgate compiles without touching the host: a path that does not
    // exist (or is a symlink) is emitted as declared.
    let d = ok(
        "docker",
        &["fs:read:/nonexistent/capgate-test/**", "fs:write:/srv/data"],
    );
    assert!(!argv(&d)
        .iter()
        .any(|a| a == "--volume" || a == "-v" || a.starts_with("--volume=")));
    assert_eq!(
        docker_mounts(&d),
        [
            (
                "/nonexistent/capgate-test".to_owned(),
                "/nonexistent/capgate-test".to_owned(),
                true
            ),
            ("/srv/data".to_owned(), "/srv/data".to_owned(), false)
        ]
    );
}

// ------------------------------------------------------------------ §13.8 private ranges

#[test]
fn s13_8_private_by_range_not_prefix() {
    // DEV-NET-PRIVATE-BY-RANGE
    let v = ok(
        "bwrap",
        &[
            "net:connect:10.attacker.example:443",
            "net:connect:127.x.example:443",
            "net:connect:localhost:80",
            "net:connect:10.0.0.5:5432",
            "net:connect:100.100.100.200:80",
            "net:connect:169.254.169.254:80",
            "net:connect:\"fd00::1\":80",
            "net:connect:\"::1\":80",
            "net:connect:8.8.8.8:53",
            "net:connect:*",
        ],
    );
    let block: Vec<(String, bool)> = v["egress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["host"].as_str().unwrap().to_owned(),
                e["blockPrivate"].as_bool().unwrap(),
            )
        })
        .collect();
    for (host, expected) in [
        ("10.attacker.example", true),
        ("127.x.example", true),
        ("localhost", true),
        ("10.0.0.5", false),
        ("100.100.100.200", false),
        ("169.254.169.254", false),
        ("fd00::1", false),
        ("::1", false),
        ("8.8.8.8", true),
        ("*", true),
    ] {
        assert!(
            block.contains(&(host.to_owned(), expected)),
            "{host}: {block:?}"
        );
    }
}

#[test]
fn s13_8_all_private_rules_still_deny_special_ranges() {
    // DEV-SQUID-SPECIAL-RANGES: the reference emitted no deny when every rule looked private.
    let caps = [
        "net:connect:10.0.0.5:5432",
        "net:connect:10.attacker.example:443",
    ];
    let s = ok("squid", &caps);
    let conf = squid(&s);
    let denied = conf.denied_special();
    for net in ["10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16"] {
        assert!(
            denied.iter().any(|d| d == net),
            "{net} not denied: {denied:?}"
        );
    }
    let deny = conf.deny_index();
    let private = conf
        .allow_index("10.0.0.5", Some(5432))
        .expect("declared address allowed");
    let name = conf
        .allow_index("10.attacker.example", Some(443))
        .expect("name allowed");
    assert!(
        private < deny,
        "the declared address is allowed before the range deny"
    );
    assert!(
        deny < name,
        "a name is allowed only after the range deny (checked on the resolved address)"
    );
    let n = ok_permissive("nftables", &caps);
    let accept = line_index(
        &n,
        |l| l == "ip daddr 10.0.0.5 tcp dport 5432 accept",
        "accept 10.0.0.5:5432",
    );
    let drop = line_index(
        &n,
        |l| l.starts_with("ip daddr {") && l.ends_with("drop"),
        "ip drop",
    );
    assert!(accept < drop);
    assert!(n["unenforceable"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["rule"]["host"] == "10.attacker.example"));
}

// ------------------------------------------------------------------ §13.9 special ranges

/// Special-purpose ranges that must never be reachable through a name or `*`
/// (IANA IPv4/IPv6 special-purpose registries, multicast, reserved).
const MUST_DENY: &[&str] = &[
    "0.0.0.1",
    "10.1.2.3",
    "100.64.0.1",
    "100.100.100.200",
    "127.0.0.1",
    "169.254.169.254",
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.170",
    "192.0.2.1",
    "192.168.1.1",
    "198.18.0.1",
    "198.51.100.1",
    "203.0.113.1",
    "224.0.0.251",
    "240.0.0.1",
    "255.255.255.255",
    "168.63.129.16",
    "::",
    "::1",
    "::7f00:1",
    "::a9fe:a9fe",
    "::ffff:0:7f00:1",
    "::ffff:0:a9fe:a9fe",
    "100::1",
    "100:0:0:1::1",
    "64:ff9b:1::1",
    "2001::1",
    "3fff::1",
    "5f00::1",
    "fec0::1",
    "64:ff9b::a00:1",
    "2002:a00:1::1",
    "2001:db8::1",
    "fc00::1",
    "fd12:3456::7",
    "fe80::1",
    "ff02::1",
];

#[test]
fn s13_9_complete_special_ranges() {
    let s = ok("squid", &["net:connect:*"]);
    let squid_denied = squid(&s).denied_special();
    let n = ok_permissive("nftables", &["net:connect:*"]);
    let nft_dropped = nft_dropped(&n);
    for addr in MUST_DENY {
        let a: IpAddr = addr.parse().unwrap();
        assert!(
            squid_denied.iter().any(|net| in_cidr(a, net)),
            "squid does not deny {addr}: {squid_denied:?}"
        );
        assert!(
            nft_dropped.iter().any(|net| in_cidr(a, net)),
            "nftables does not drop {addr}: {nft_dropped:?}"
        );
    }
    // nftables sees IPv4-mapped IPv6 as its own family: it drops that range too.
    let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
    assert!(
        nft_dropped.iter().any(|net| in_cidr(mapped, net)),
        "{nft_dropped:?}"
    );
    // Public addresses stay reachable through `*`.
    for addr in [
        "1.1.1.1",
        "8.8.8.8",
        "93.184.215.14",
        "2606:4700:4700::1111",
    ] {
        let a: IpAddr = addr.parse().unwrap();
        assert!(
            !squid_denied.iter().any(|net| in_cidr(a, net)),
            "squid denies public {addr}"
        );
        assert!(
            !nft_dropped.iter().any(|net| in_cidr(a, net)),
            "nftables drops public {addr}"
        );
    }
    // The library's own lists are what the configs contain.
    for (net, len) in capgate::ir::SPECIAL_V4 {
        let text = format!("{net}/{len}");
        assert!(
            squid_denied.contains(&text) && nft_dropped.contains(&text),
            "{text}"
        );
    }
    for (net, len) in capgate::ir::SPECIAL_V6 {
        let text = format!("{net}/{len}");
        assert!(
            squid_denied.contains(&text) && nft_dropped.contains(&text),
            "{text}"
        );
    }
}

/// F7: nothing placed before the special-range deny can match a request by
/// name: every acl of an allow there is `dst -n` (IP literals only, no DNS),
/// or a port.
#[test]
fn s13_9_nothing_before_the_special_deny_matches_a_name() {
    let v = ok_permissive(
        "squid",
        &[
            "net:connect:10.0.0.5:5432",
            "net:connect:\"fd00::5\":6379",
            "net:connect:169.254.169.254:80",
            "net:connect:168.63.129.16",
            "net:connect:api.example.com:443",
            "net:connect:*.example.org",
            "net:connect:11.0.0.2:8443",
        ],
    );
    let conf = squid(&v);
    let deny = conf.deny_index();
    assert_eq!(
        deny, 7,
        "deny manager, deny other schemes, four private allows, deny undeclared: {:?}",
        conf.access
    );
    assert_eq!(
        conf.access[6],
        (
            false,
            vec![
                "!capgate_declared".to_owned(),
                "!capgate_declared_ip".to_owned()
            ]
        ),
        "undeclared destinations are denied before the special-range check resolves them"
    );
    assert_eq!(
        conf.access[1],
        (
            false,
            vec!["!capgate_connect".to_owned(), "!capgate_schemes".to_owned()]
        ),
        "only CONNECT and http(s) URLs pass"
    );
    let l = lines(&v);
    for (allow, names) in &conf.access[2..6] {
        assert!(*allow);
        for n in names {
            let def = l
                .iter()
                .find(|x| x.starts_with(&format!("acl {n} ")))
                .unwrap();
            let ty = conf.acl(n).0;
            assert!(
                ty == "port" || (ty == "dst" && def.starts_with(&format!("acl {n} dst -n "))),
                "{def}"
            );
        }
    }
}

#[test]
fn s13_9_special_addresses_cannot_be_declared() {
    assert_rejected(&[
        ("net:connect:0.0.0.0:80", Code::CapNetHostSpecial),
        ("net:connect:0.1.2.3:80", Code::CapNetHostSpecial),
        ("net:connect:224.0.0.1:80", Code::CapNetHostSpecial),
        ("net:connect:239.255.255.250:1900", Code::CapNetHostSpecial),
        ("net:connect:240.0.0.1:80", Code::CapNetHostSpecial),
        ("net:connect:255.255.255.255:80", Code::CapNetHostSpecial),
        ("net:connect:\"::\":80", Code::CapNetHostSpecial),
        (
            "net:connect:\"::ffff:127.0.0.1\":80",
            Code::CapNetHostSpecial,
        ),
        ("net:connect:\"::ffff:7f00:1\":80", Code::CapNetHostSpecial),
        ("net:connect:\"::127.0.0.1\":80", Code::CapNetHostSpecial),
        ("net:connect:\"::7f00:1\":80", Code::CapNetHostSpecial),
        (
            "net:connect:\"::ffff:0:7f00:1\":80",
            Code::CapNetHostSpecial,
        ),
        (
            "net:connect:\"::ffff:0:127.0.0.1\":80",
            Code::CapNetHostSpecial,
        ),
        ("net:connect:\"64:ff9b::a00:1\":80", Code::CapNetHostSpecial),
        ("net:connect:\"ff02::1\":80", Code::CapNetHostSpecial),
    ]);
}

// ------------------------------------------------------------------ §13.10 squid

#[test]
fn s13_10_squid_standalone() {
    // DEV-SQUID-STANDALONE
    let v = ok(
        "squid",
        &[
            "net:connect:api.github.com:443",
            "net:connect:*.example.com:443",
            "net:connect:1.1.1.1:853",
        ],
    );
    let l = lines(&v);
    let conf = squid(&v);
    assert!(l.contains(&"http_port 127.0.0.1:3128".to_owned()), "{l:?}");
    assert_eq!(
        conf.access.first().unwrap(),
        &(false, vec!["manager".to_owned()]),
        "squid's cache manager is denied first"
    );
    assert!(
        conf.defined_before_use,
        "an acl is used before it is defined:\n{}",
        v["config"].as_str().unwrap()
    );
    assert!(l.contains(&"cache deny all".to_owned()));
    assert_eq!(
        conf.access.last().unwrap(),
        &(false, vec!["all".to_owned()]),
        "deny all is the last http_access"
    );
    // Names never match IP-literal CONNECTs through reverse DNS.
    for line in l.iter().filter(|l| l.contains(" dstdomain ")) {
        assert!(line.contains(" dstdomain -n "), "{line}");
    }
    // IP-literal allows never match a name that resolves to the address (F8).
    for line in l
        .iter()
        .filter(|l| l.contains(" capgate_dst_") && l.contains(" dst "))
    {
        assert!(line.contains(" dst -n "), "{line}");
    }
    // Where squid listens is an option.
    let bytes = manifest(&[&["net:connect:api.github.com:443"]]);
    let moved = compile_bytes("squid", &bytes, false, &[("listen", "10.9.8.7:3129")]).unwrap();
    assert!(lines(&moved).contains(&"http_port 10.9.8.7:3129".to_owned()));
}

#[test]
fn s13_10_squid_any_host_is_noted() {
    // DEV-NOTE-SQUID-ANY: `*` is an open CONNECT proxy to the public internet; the note says so.
    let v = ok("squid", &["net:connect:*"]);
    assert!(
        notes(&v)
            .iter()
            .any(|n| n.contains("host \"*\"") && n.contains("on any port")),
        "{:?}",
        notes(&v)
    );
    let v = ok("squid", &["net:connect:*:443"]);
    let conf = squid(&v);
    assert!(conf.allow_index("*", Some(443)).is_some());
    assert!(
        conf.allow_index("*", None).is_none(),
        "a port-scoped `*` does not open other ports"
    );
}

// ------------------------------------------------------------------ §13.11 nftables

#[test]
fn s13_11_nft_loopback_established_and_private_scoping() {
    // DEV-NFT-LOOPBACK-ESTABLISHED, DEV-NFT-IDEMPOTENT, DEV-NFT-TCP-ONLY
    let v = ok(
        "nftables",
        &[
            "net:connect:10.0.0.5:5432",
            "net:connect:1.1.1.1:853",
            "net:connect:9.9.9.9",
        ],
    );
    let l = lines(&v);
    let table = line_index(
        &v,
        |l| l.starts_with("table inet ") && l.ends_with('{'),
        "table {",
    );
    let name = l[table].trim_end_matches(" {").to_owned();
    assert_eq!(
        l.iter().position(|x| *x == name),
        Some(table - 2),
        "table declared first: {l:?}"
    );
    assert_eq!(
        l[table - 1],
        format!("delete {name}"),
        "then deleted, so loading twice is idempotent"
    );
    let policy = line_index(
        &v,
        |l| l.contains("hook output") && l.contains("policy drop;"),
        "policy drop",
    );
    let lo = line_index(&v, |l| l == "oifname \"lo\" accept", "lo accept");
    let est = line_index(
        &v,
        |l| l == "ct state established,related accept",
        "established",
    );
    // G4: neighbour discovery only to link-scope destinations with hop limit
    // 255, then every other ND-typed message dropped, before any address accept.
    let nd = line_index(
        &v,
        |l| {
            l == "icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } \
                  ip6 hoplimit 255 ip6 daddr { fe80::/10, ff02::/16 } accept"
        },
        "link-scope ND accept",
    );
    let nd_drop = line_index(
        &v,
        |l| {
            l == "icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, \
                  nd-neighbor-advert, nd-redirect } drop"
        },
        "ND drop",
    );
    assert_eq!(
        l.iter().filter(|x| x.contains("icmpv6")).count(),
        3,
        "no other ICMPv6 rule: {l:?}"
    );
    // Inbound: only loopback, replies and on-link NS/NA (hop limit 255).
    let ingress = line_index(&v, |l| l == "chain ingress {", "ingress chain");
    assert_eq!(
        &l[ingress + 1..ingress + 5],
        [
            "type filter hook input priority 0; policy drop;",
            "iifname \"lo\" accept",
            "ct state established,related accept",
            "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept",
        ],
        "{l:?}"
    );
    let private = line_index(
        &v,
        |l| l == "ip daddr 10.0.0.5 tcp dport 5432 accept",
        "private accept",
    );
    assert!(est < nd && nd + 1 == nd_drop && nd_drop < private);
    let drop4 = line_index(
        &v,
        |l| l.starts_with("ip daddr {") && l.ends_with("} drop"),
        "ip drop",
    );
    let drop6 = line_index(
        &v,
        |l| l.starts_with("ip6 daddr {") && l.ends_with("} drop"),
        "ip6 drop",
    );
    let public = line_index(
        &v,
        |l| l == "ip daddr 1.1.1.1 tcp dport 853 accept",
        "public accept",
    );
    let any_port = line_index(
        &v,
        |l| l == "ip daddr 9.9.9.9 tcp dport 1-65535 accept",
        "any-port accept",
    );
    assert!(
        policy < lo
            && lo < est
            && est < private
            && private < drop4
            && drop4 < drop6
            && drop6 < public
            && public < any_port
    );
    // The declared private address opens exactly itself: no other accept names 10.x.
    let accepts: Vec<&String> = l
        .iter()
        .filter(|x| x.ends_with(" accept") && x.contains("daddr") && !x.contains("icmpv6"))
        .collect();
    assert_eq!(accepts.len(), 3, "{accepts:?}");
    // Null port: every TCP port, not every protocol; noted.
    assert!(
        notes(&v)
            .iter()
            .any(|n| n.contains("9.9.9.9") && n.contains("TCP")),
        "{:?}",
        notes(&v)
    );
    // Only declared special addresses come before the drops; a metadata IP declared
    // explicitly is reachable, exactly.
    let m = ok(
        "nftables",
        &["net:connect:169.254.169.254:80", "net:connect:1.1.1.1:443"],
    );
    let meta = line_index(
        &m,
        |l| l == "ip daddr 169.254.169.254 tcp dport 80 accept",
        "metadata accept",
    );
    assert!(
        meta < line_index(
            &m,
            |l| l.starts_with("ip daddr {") && l.ends_with("} drop"),
            "drop"
        )
    );
}

// ------------------------------------------------------------------ §13.12 honesty

#[test]
fn s13_12_permissive_notes_and_assertions() {
    // DEV-PERMISSIVE-UNENFORCEABLE, DEV-FIELD-CONFIG-EXTRA
    let caps = [
        "fs:read:/data/**",
        "exec:spawn:git",
        "env:inject:API_TOKEN",
        "ipc:connect:x11",
        "clock:tzdata",
        "net:connect:api.example.com:443",
        "assert:srv.readonly:the server never writes",
    ];
    for target in ["squid", "nftables"] {
        let strict = compile_bytes(target, &manifest(&[&caps]), false, &[]).unwrap_err();
        assert_eq!(strict[0].code, Code::AdapterUnsupported);
        let located: BTreeSet<String> = strict[1..]
            .iter()
            .filter_map(|d| d.cap.as_ref().map(|c| c.capability.clone()))
            .collect();
        for cap in &caps[..5] {
            assert!(
                located.contains(*cap),
                "{target}: no located error for {cap}: {located:?}"
            );
        }

        let v = ok_permissive(target, &caps);
        let entries = v["unenforceable"].as_array().unwrap();
        for kind in ["fs", "exec", "env", "ipc", "clock"] {
            let e = entries
                .iter()
                .find(|e| e["rule"]["kind"] == kind)
                .unwrap_or_else(|| {
                    panic!("{target}: no unenforceable entry for {kind}: {entries:?}")
                });
            assert!(!e["capabilities"].as_array().unwrap().is_empty());
            assert!(
                notes(&v)
                    .iter()
                    .any(|n| n.starts_with(&format!("{kind}: ")) && n.contains("not enforced")),
                "{target} {kind}: {:?}",
                notes(&v)
            );
        }
        assert!(
            !entries.iter().any(|e| e["rule"]["kind"] == "assert"),
            "assert is supported on {target}"
        );
        assert_eq!(
            v["assertions"],
            json!([{"id": "srv.readonly", "description": "the server never writes"}])
        );
        assert_eq!(
            v["egress"],
            json!([{"host": "api.example.com", "port": 443, "blockPrivate": true}])
        );
    }
    // A manifest of net + assert compiles strictly on the egress targets, as in the reference.
    for target in ["squid", "nftables"] {
        let v = ok(target, &["net:connect:1.1.1.1:443", "assert:a.b:c"]);
        assert_eq!(v["assertions"], json!([{"id": "a.b", "description": "c"}]));
    }
}

#[test]
fn s13_12_exec_and_env_lowerings_are_documented() {
    // DEV-EXEC-KEPT, DEV-NOTE-EXEC-BWRAP: exec restricts nothing on bwrap, and the note says so.
    let v = ok("bwrap", &["exec:spawn:git"]);
    assert!(
        notes(&v)
            .iter()
            .any(|n| n.starts_with("exec: git") && n.contains("does not restrict")),
        "{:?}",
        notes(&v)
    );
    assert_eq!(argv(&v), argv(&ok("bwrap", &[])), "exec changes no argv");
    let d = ok("docker", &["exec:spawn:git"]);
    assert!(notes(&d)
        .iter()
        .any(|n| n.starts_with("exec: git") && n.contains("image")));
    // DEV-ENV-ACTION-KEPT: read and inject lower the same way.
    for target in ["bwrap", "docker"] {
        let read = ok(target, &["env:read:API_TOKEN"]);
        let inject = ok(target, &["env:inject:API_TOKEN"]);
        assert_eq!(argv(&read), argv(&inject), "{target}");
        assert_eq!(read["envInjections"], json!(["API_TOKEN"]));
        assert_eq!(inject["envInjections"], json!(["API_TOKEN"]));
    }
}

// ------------------------------------------------------------------ §13.13 grammar

#[test]
fn s13_13_grammar_fails_closed() {
    // DEV-GRAMMAR-STRICT
    assert_rejected(&[
        ("exec:spawn:git?foo=1", Code::CapRefinement),
        ("exec:spawn:git?", Code::CapRefinement),
        ("exec:spawn:git?nestedSandbox", Code::CapRefinement),
        ("exec:spawn:git?nestedSandbox=yes", Code::CapRefinement),
        (
            "exec:spawn:git?nestedSandbox=true&nestedSandbox=true",
            Code::CapRefinement,
        ),
        ("fs:read:/a?b", Code::CapRefinement),
        ("fs:read:\"/a?b\"", Code::CapSyntax),
        ("fs:read:/a\"b", Code::CapSyntax),
        ("fs:read:/a\"", Code::CapSyntax),
        ("net:connect:\"a.example:443", Code::CapSyntax),
        ("net:connect:a.example:443abc", Code::CapNetPort),
        ("net:connect:a.example:443.9", Code::CapNetPort),
        ("net:connect:a.example: 443", Code::CapNetPort),
        ("net:connect:a.example:+443", Code::CapNetPort),
        ("net:connect:a.example:0443", Code::CapNetPort),
        ("net:connect:a.example:0x1bb", Code::CapNetPort),
        ("net:connect:a.example:", Code::CapNetPort),
        ("net:connect:a.example:0", Code::CapNetPort),
        ("net:connect:a.example:65536", Code::CapNetPort),
        ("net:connect::443", Code::CapNetHost),
        ("net:connect:", Code::CapNetHost),
        ("ipc:connect:", Code::CapIpcEndpoint),
        ("exec:spawn:", Code::CapExecName),
        ("assert:", Code::CapAssertShape),
        ("assert::only a description", Code::CapAssertShape),
        // Unquoted IPv6 is still a shape error (the help says to quote it).
        ("net:connect:2606:4700::1111:443", Code::CapNetShape),
        // Codes shared with the reference.
        ("", Code::CapMalformed),
        ("fs", Code::CapMalformed),
        (":x", Code::CapUnknownKind),
        ("FS:read:/a", Code::CapUnknownKind),
        ("fs:read:/a:b", Code::CapFsShape),
        ("fs:read:a", Code::CapFsRelative),
        ("fs::/a", Code::CapActionsEmpty),
        ("fs:read,:/a", Code::CapActionUnknown),
        ("fs:execute:/a", Code::CapActionUnknown),
        ("net:connect:a:1:2", Code::CapNetShape),
        ("exec:spawn:a:b", Code::CapExecShape),
        ("exec:spawn:/usr/bin/git", Code::CapExecPath),
        ("env:read:A:B", Code::CapEnvShape),
        ("env:read:lower", Code::CapEnvName),
        ("ipc:connect:a:b:c", Code::CapIpcShape),
        ("clock:system:x", Code::CapClockShape),
        ("clock:utc", Code::CapClockSource),
    ]);
    let long = format!("fs:read:/{}", "a".repeat(5000));
    assert_eq!(rejected(&long), Code::CapTooLong);
}

#[test]
fn s13_13_quoting_keeps_the_reference_meaning() {
    let v = ok(
        "bwrap",
        &[
            "net:connect:\"2606:4700::1111\":443",
            "assert:a.b:\"why: because\"",
        ],
    );
    assert_eq!(
        v["egress"],
        json!([{"host": "2606:4700::1111", "port": 443, "blockPrivate": true}])
    );
    assert_eq!(
        v["assertions"],
        json!([{"id": "a.b", "description": "why: because"}])
    );
    // The reference joined the rest of an assertion with ':'.
    let v = ok("bwrap", &["assert:a.b:why:because"]);
    assert_eq!(
        v["assertions"],
        json!([{"id": "a.b", "description": "why:because"}])
    );
    let v = ok("bwrap", &["assert:a.b"]);
    assert_eq!(
        v["assertions"],
        json!([{"id": "a.b", "description": "a.b"}])
    );
    // Actions are trimmed and deduplicated as in the reference.
    assert_eq!(
        argv(&ok("bwrap", &["fs: read , write ,read:/a"])),
        argv(&ok("bwrap", &["fs:read,write:/a"]))
    );
}

/// Rows `| \`capability\` | ... | \`CODE\` ... |` between two markers of docs/compatibility.md.
fn doc_table(marker: &str) -> Vec<(String, String)> {
    let docs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/compatibility.md"),
    )
    .unwrap();
    let start = docs
        .find(&format!("<!-- {marker}:start -->"))
        .expect("table start marker");
    let end = docs
        .find(&format!("<!-- {marker}:end -->"))
        .expect("table end marker");
    let unescape = |s: &str| -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('\\') {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(t) = tail.strip_prefix("\\n") {
                out.push('\n');
                rest = t;
            } else if let Some(t) = tail.strip_prefix("\\u{") {
                let close = t.find('}').unwrap();
                out.push(char::from_u32(u32::from_str_radix(&t[..close], 16).unwrap()).unwrap());
                rest = &t[close + 1..];
            } else {
                out.push('\\');
                rest = &tail[1..];
            }
        }
        out.push_str(rest);
        out
    };
    docs[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 3, "{l}");
            let cap = cells[0]
                .strip_prefix('`')
                .and_then(|c| c.strip_suffix('`'))
                .expect(l);
            (unescape(cap), cells[2].to_owned())
        })
        .collect()
}

#[test]
fn s13_13_documented_rejections_are_exact() {
    // Every row of the grammar table in docs/compatibility.md (DEV-GRAMMAR-STRICT).
    let rows = doc_table("grammar-table");
    assert!(rows.len() >= 40, "{} rows", rows.len());
    let cases: Vec<(String, Code)> = rows
        .iter()
        .map(|(cap, cell)| {
            let name = cell.trim_matches('`');
            let code = *Code::ALL
                .iter()
                .find(|c| c.as_str() == name)
                .unwrap_or_else(|| panic!("unknown code {name}"));
            (cap.clone(), code)
        })
        .collect();
    let refs: Vec<(&str, Code)> = cases.iter().map(|(c, k)| (c.as_str(), *k)).collect();
    assert_rejected(&refs);
}

#[test]
fn s13_13_documented_unquoted_endpoints_mean_the_quoted_ones() {
    // DEV-GRAMMAR-UNQUOTED-ENDPOINTS
    let rows = doc_table("accepted-table");
    assert_eq!(rows.len(), 3);
    for (cap, cell) in rows {
        let quoted = cell.split('`').nth(1).expect("accepted, same as `...`");
        for target in ["bwrap", "docker"] {
            let a = ok(target, &[&cap]);
            let b = ok(target, &[quoted]);
            assert_eq!(argv(&a), argv(&b), "{cap} vs {quoted}");
            assert_eq!(a["envInjections"], b["envInjections"]);
        }
    }
}

// ------------------------------------------------------------------ §13.14 ordering

#[test]
fn s13_14_byte_order() {
    // DEV-ORDER-BYTES
    let caps = [
        "env:read:_A",
        "env:read:B",
        "env:read:AB",
        "env:read:A1",
        "env:read:A_B",
        "env:read:A",
        "fs:read:/a-b",
        "fs:read:/a.b",
        "fs:read:/B",
        "fs:read:/a_b",
        "fs:write:/a",
        "fs:write:/a/b",
        "net:connect:b.example:443",
        "net:connect:a-b.example:443",
        "net:connect:a.example:443",
        "net:connect:a.example:80",
        "net:connect:_x.example:443",
        "assert:b:x",
        "assert:B:x",
        "assert:a:x",
    ];
    let v = ok(
        "docker",
        &caps
            .iter()
            .copied()
            .filter(|c| !c.starts_with("net:connect:_"))
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        v["envInjections"],
        json!(["A", "A1", "AB", "A_B", "B", "_A"])
    );
    let targets: Vec<String> = docker_mounts(&v).into_iter().map(|(_, t, _)| t).collect();
    // Byte order, except that a directory precedes what lies below it (/a, /a/b, /a-b).
    assert_eq!(
        targets,
        ["/B", "/a", "/a-b", "/a.b", "/a_b"],
        "/a/b is folded into the writable /a"
    );
    let hosts: Vec<(String, Value)> = v["egress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["host"].as_str().unwrap().to_owned(), e["port"].clone()))
        .collect();
    assert_eq!(
        hosts,
        [
            ("a-b.example".to_owned(), json!(443)),
            ("a.example".to_owned(), json!(80)),
            ("a.example".to_owned(), json!(443)),
            ("b.example".to_owned(), json!(443)),
        ]
    );
    let ids: Vec<&str> = v["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["B", "a", "b"]);
    // Nested fs binds: segment order keeps children after their parent.
    let b = ok(
        "bwrap",
        &["fs:read:/a/**", "fs:read:/a-b", "fs:write:/a/b/**"],
    );
    let order: Vec<String> = bwrap_binds(&b)
        .into_iter()
        .map(|(_, _, d)| d)
        .filter(|d| d.starts_with("/a"))
        .collect();
    assert_eq!(order, ["/a", "/a/b", "/a-b"]);
}

#[test]
fn s13_14_output_does_not_depend_on_the_locale() {
    let bytes = manifest(&[&[
        "env:read:_A",
        "env:read:A_B",
        "env:read:AB",
        "fs:read:/ch",
        "fs:read:/d",
        "fs:read:/i",
        "fs:read:/I",
        "net:connect:zz.example:1",
        "net:connect:aa.example:1",
    ]]);
    let mut outputs = BTreeSet::new();
    for target in TARGETS {
        for locale in [
            "C",
            "C.UTF-8",
            "en_US.UTF-8",
            "sv_SE.UTF-8",
            "cs_CZ.UTF-8",
            "tr_TR.UTF-8",
        ] {
            let (rc, out, err) = run(
                &["compile", "-", "--target", target, "--permissive"],
                &bytes,
                &[("LC_ALL", locale), ("LANG", locale)],
            );
            assert_eq!(rc, 0, "{err}");
            outputs.insert((target, out));
        }
    }
    assert_eq!(
        outputs.len(),
        TARGETS.len(),
        "one output per target whatever the locale"
    );
}

// ------------------------------------------------------------------ §13.15 crash

#[test]
fn s13_15_falsy_server_capabilities() {
    // DEV-MANIFEST-FALSY-SERVER-CAPS
    for value in ["\"\"", "0", "false", "{}", "\"fs:read:/a\"", "1", "true"] {
        let text = format!(
            "{{\"name\":\"x\",\"version\":\"1\",\"serverCapabilities\":{value},\"tools\":[]}}"
        );
        let (rc, out, err) = run(&["compile", "-"], text.as_bytes(), &[]);
        assert_eq!(rc, 4, "serverCapabilities {value}: {err}");
        assert!(out.is_empty());
        assert!(
            err.starts_with("capgate: MANIFEST_SHAPE:"),
            "{value}: {err}"
        );
    }
    for value in ["null", "[]"] {
        let text = format!(
            "{{\"name\":\"x\",\"version\":\"1\",\"serverCapabilities\":{value},\"tools\":[]}}"
        );
        let (rc, _, err) = run(&["compile", "-"], text.as_bytes(), &[]);
        assert_eq!(rc, 0, "serverCapabilities {value}: {err}");
    }
}

// ------------------------------------------------------------------ §13.16 duplicates

#[test]
fn s13_16_no_duplicate_mounts() {
    // DEV-FS-DIR-GLOB-MERGE
    let b = ok("bwrap", &["fs:read:/a", "fs:write:/a/**", "fs:read:/a/*"]);
    let binds: Vec<_> = bwrap_binds(&b)
        .into_iter()
        .filter(|(_, _, d)| d == "/a")
        .collect();
    assert_eq!(
        binds,
        [("--bind".to_owned(), "/a".to_owned(), "/a".to_owned())]
    );
    let d = ok("docker", &["fs:read:/a", "fs:write:/a/**"]);
    assert_eq!(
        docker_mounts(&d),
        [("/a".to_owned(), "/a".to_owned(), false)]
    );

    // DEV-ENV-DISPLAY-DEDUP
    for target in ["bwrap", "docker"] {
        let v = ok(
            target,
            &["env:read:DISPLAY", "ipc:connect:x11", "env:inject:DISPLAY"],
        );
        assert_eq!(v["envInjections"], json!(["DISPLAY"]), "{target}");
        if target == "docker" {
            assert_eq!(
                argv(&v).iter().filter(|a| *a == "DISPLAY").count(),
                1,
                "{:?}",
                argv(&v)
            );
        }
    }

    // No destination is mounted twice in any fixture, on either argv target.
    for path in fixture_manifests() {
        if let Some(v) = compile_fixture(&path, "bwrap") {
            let dests: Vec<String> = bwrap_binds(&v).into_iter().map(|(_, _, d)| d).collect();
            let unique: BTreeSet<&String> = dests.iter().collect();
            assert_eq!(unique.len(), dests.len(), "{}: {dests:?}", path.display());
        }
        if let Some(v) = compile_fixture(&path, "docker") {
            let dests: Vec<String> = docker_mounts(&v).into_iter().map(|(_, d, _)| d).collect();
            let unique: BTreeSet<&String> = dests.iter().collect();
            assert_eq!(unique.len(), dests.len(), "{}: {dests:?}", path.display());
            let envs: Vec<String> = groups(&v)
                .into_iter()
                .filter(|g| g[0] == "--env")
                .map(|g| g[1].clone())
                .collect();
            let unique: BTreeSet<&String> = envs.iter().collect();
            assert_eq!(unique.len(), envs.len(), "{}: {envs:?}", path.display());
        }
    }
}

#[test]
fn tmpfs_stays_private_below_a_declared_tmp_subdirectory() {
    // DEV-TMPFS-UNDER-TMP: only /tmp itself binds the host's /tmp.
    let v = ok("bwrap", &["fs:write:/tmp/work/**"]);
    let tmpfs = group_index(&v, &["--tmpfs", "/tmp"]);
    let bind = group_index(&v, &["--bind", "/tmp/work", "/tmp/work"]);
    assert!(tmpfs < bind);
    let v = ok("bwrap", &["fs:write:/tmp/**"]);
    assert!(!has_group(&v, &["--tmpfs", "/tmp"]));
    assert!(has_group(&v, &["--bind", "/tmp", "/tmp"]));
    assert!(notes(&v).iter().any(|n| n.contains("host /tmp")));
}

// ------------------------------------------------------------------ §13.17 globs

#[test]
fn s13_17_mid_path_globs_rejected() {
    assert_rejected(&[
        ("fs:read:/data/**/*.json", Code::CapFsGlob),
        ("fs:read:/data/*/x", Code::CapFsGlob),
        ("fs:read:/data/**/x", Code::CapFsGlob),
        ("fs:read:/src*", Code::CapFsGlob),
        ("fs:read:/py/*.py", Code::CapFsGlob),
        ("fs:read:/q/[ab]", Code::CapFsGlob),
        ("fs:read:/a/{b,c}", Code::CapFsGlob),
        ("fs:read:/a/?", Code::CapRefinement),
        ("fs:read:/a/***", Code::CapFsGlob),
    ]);
    // Whole-last-segment globs are what a bind can honour.
    let v = ok("bwrap", &["fs:read:/data/**", "fs:read:/src/*"]);
    assert!(has_group(&v, &["--ro-bind", "/data", "/data"]));
    assert!(has_group(&v, &["--ro-bind", "/src", "/src"]));
    assert!(!argv(&v).iter().any(|a| a.contains('*') || a.contains('[')));
}

// ------------------------------------------------------------------ §13.18 hardening

/// Whether the manifest text declares `path` writable (`fs:<..write|create|delete..>:path[/**|/*]`).
fn declared_writable(caps: &[String], path: &str) -> bool {
    caps.iter().any(|c| {
        let mut parts = c.splitn(3, ':');
        let (Some("fs"), Some(actions), Some(p)) = (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let p = p.trim_end_matches("/**").trim_end_matches("/*");
        p == path
            && actions
                .split(',')
                .any(|a| matches!(a.trim(), "write" | "create" | "delete"))
    })
}

fn all_caps(path: &Path) -> Vec<String> {
    let m: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut out = Vec::new();
    let server = m["serverCapabilities"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in server.iter().chain(
        m["tools"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| t["capabilities"].as_array().unwrap().iter()),
    ) {
        out.push(c.as_str().unwrap().to_owned());
    }
    out
}

#[test]
fn s13_18_bwrap_hardening() {
    // DEV-BWRAP-NAMESPACES, DEV-BWRAP-CAP-DROP, DEV-BWRAP-UID, DEV-BWRAP-DEV
    for path in fixture_manifests() {
        let Some(v) = compile_fixture(&path, "bwrap") else {
            continue;
        };
        let a = argv(&v);
        let name = path.display();
        for flag in
            STRICT_UNSHARE
                .iter()
                .chain(&["--die-with-parent", "--new-session", "--clearenv"])
        {
            assert!(a.iter().any(|x| x == flag), "{name}: {flag} missing");
        }
        assert!(
            !a.iter()
                .any(|x| x.starts_with("--unshare-") && x.ends_with("-try")),
            "{name}"
        );
        assert!(
            !a.iter()
                .any(|x| x == "--share-net" || x == "--dev-bind" || x == "--dev-bind-try"),
            "{name}"
        );
        assert!(has_group(&v, &["--cap-drop", "ALL"]), "{name}");
        assert!(has_group(&v, &["--dev", "/dev"]), "{name}");
        let uid = groups(&v)
            .into_iter()
            .find(|g| g[0] == "--uid")
            .expect("--uid");
        assert_ne!(uid[1], "0", "{name}");
        // Every writable bind is a path the manifest declares writable.
        let caps = all_caps(&path);
        for (flag, src, dst) in bwrap_binds(&v) {
            assert_eq!(src, dst, "{name}: binds map a path onto itself");
            if flag == "--bind" || flag == "--bind-try" {
                assert!(
                    declared_writable(&caps, &src),
                    "{name}: {src} writable but not declared writable"
                );
            }
        }
    }
    let bytes = manifest(&[&["fs:read:/a"]]);
    let d = compile_bytes("bwrap", &bytes, false, &[("uid", "0")]).unwrap_err();
    assert_eq!(d[0].code, Code::OptionInvalid);
}

#[test]
fn s13_18_docker_hardening() {
    // DEV-DOCKER-USER-PIDS
    for path in fixture_manifests() {
        let Some(v) = compile_fixture(&path, "docker") else {
            continue;
        };
        let name = path.display();
        for g in [
            &["--cap-drop", "ALL"][..],
            &["--security-opt", "no-new-privileges"],
            &["--read-only"],
            &["--rm"],
        ] {
            assert!(has_group(&v, g), "{name}: {g:?}");
        }
        let user = groups(&v)
            .into_iter()
            .find(|g| g[0] == "--user")
            .expect("--user");
        assert!(
            !user[1].starts_with('0') && !user[1].starts_with("root"),
            "{name}: {user:?}"
        );
        let pids = groups(&v)
            .into_iter()
            .find(|g| g[0] == "--pids-limit")
            .expect("--pids-limit");
        assert!(pids[1].parse::<u32>().unwrap() > 0);
        assert!(
            !argv(&v)
                .iter()
                .any(|a| a == "--privileged" || a == "--cap-add" || a == "--volume" || a == "-v"),
            "{name}"
        );
        // Writable mounts are declared writable; `--env NAME` only for listed names.
        let caps = all_caps(&path);
        for (src, dst, ro) in docker_mounts(&v) {
            assert_eq!(src, dst);
            if !ro {
                assert!(
                    declared_writable(&caps, &src),
                    "{name}: {src} mounted writable but not declared writable"
                );
            }
        }
        let injections: Vec<String> = v["envInjections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().to_owned())
            .collect();
        for g in groups(&v).into_iter().filter(|g| g[0] == "--env") {
            let forwarded = !g[1].contains('=');
            assert!(
                !forwarded || injections.contains(&g[1]),
                "{name}: --env {} not declared",
                g[1]
            );
        }
    }
}

#[test]
fn s13_18_docker_user_option_cannot_be_root() {
    let bytes = manifest(&[&["fs:read:/a"]]);
    for value in ["0", "0:0", "root", "root:root", "0:65534"] {
        match compile_bytes("docker", &bytes, false, &[("user", value)]) {
            Ok(v) => panic!("--set user={value} accepted: {:?}", argv(&v)),
            Err(d) => assert_eq!(d[0].code, Code::OptionInvalid, "{}", render(&d)),
        }
    }
}

#[test]
fn s13_18_dangerous_env_names_rejected() {
    // DEV-ENV-DANGEROUS
    assert_rejected(&[
        ("env:inject:LD_PRELOAD", Code::CapEnvDangerous),
        ("env:read:LD_LIBRARY_PATH", Code::CapEnvDangerous),
        ("env:read:DYLD_INSERT_LIBRARIES", Code::CapEnvDangerous),
        ("env:read:PATH", Code::CapEnvDangerous),
        ("env:read:BASH_ENV", Code::CapEnvDangerous),
        ("env:read:NODE_OPTIONS", Code::CapEnvDangerous),
        ("env:read:PYTHONPATH", Code::CapEnvDangerous),
        ("env:read:GIT_SSH_COMMAND", Code::CapEnvDangerous),
        ("env:read:GCONV_PATH", Code::CapEnvDangerous),
    ]);
    // Ordinary secrets are fine.
    let v = ok("docker", &["env:inject:GITHUB_TOKEN", "env:read:LANG_X"]);
    assert_eq!(v["envInjections"], json!(["GITHUB_TOKEN", "LANG_X"]));
}

#[test]
fn s13_18_no_seccomp_profile_yet() {
    // DEV-SECCOMP-KEPT: documents that no seccomp filter is emitted for bwrap; update the docs
    // when one is. docker selects capgate's profile by absolute path (DEV-DOCKER-SECCOMP).
    let b = ok("bwrap", &["fs:read:/a"]);
    assert!(!argv(&b)
        .iter()
        .any(|a| a == "--seccomp" || a == "--add-seccomp-fd"));
    let d = argv(&ok("docker", &["fs:read:/a"]));
    let seccomp: Vec<&String> = d.iter().filter(|a| a.starts_with("seccomp=")).collect();
    assert_eq!(seccomp.len(), 1, "{seccomp:?}");
    assert!(seccomp[0].starts_with("seccomp=/"), "{seccomp:?}");
}

// ------------------------------------------------------------------ §13.19 provenance

#[test]
fn s13_19_provenance_hash_kept() {
    // DEV-PROVENANCE-KEPT: the reference's hash, unchanged by target, options or strictness.
    let known =
        br#"{"name":"srv","version":"1.0.0","tools":[{"name":"t","capabilities":["fs:read:/x"]}]}"#;
    let expected = "sha256:ed84115385089df118983e03900f9b6c473327cb48a663ca6d824a8cd3a5f807";
    for target in TARGETS {
        for permissive in [false, true] {
            if !permissive && matches!(target, "squid" | "nftables") {
                continue; // fs is not a kind the egress targets lower
            }
            let v = compile_bytes(target, known, permissive, &[]).unwrap();
            assert_eq!(v["provenance"]["manifestHash"], expected, "{target}");
            assert_eq!(v["provenance"]["grammarVersion"], "0.0");
            assert_eq!(v["provenance"]["canonicalization"], "RFC8785");
        }
    }
    let v = compile_bytes("bwrap", known, false, &[("uid", "1000")]).unwrap();
    assert_eq!(v["provenance"]["manifestHash"], expected);
    // Descriptions and unknown keys do not count; tool order and spelling do (kept weakness).
    let described = br#"{"name":"srv","version":"1.0.0","x":1,"tools":[{"name":"t","description":"d","capabilities":["fs:read:/x"]}]}"#;
    assert_eq!(
        compile_bytes("bwrap", described, false, &[]).unwrap()["provenance"]["manifestHash"],
        expected
    );
    let respelled = br#"{"name":"srv","version":"1.0.0","tools":[{"name":"t","capabilities":["fs: read:/x"]}]}"#;
    let other = compile_bytes("bwrap", respelled, false, &[]).unwrap();
    assert_ne!(other["provenance"]["manifestHash"], expected);
    assert_eq!(
        argv(&other),
        argv(&compile_bytes("bwrap", known, false, &[]).unwrap())
    );
}

// ------------------------------------------------------------------ §13.20 exit codes

#[test]
fn s13_20_exit_codes_unambiguous() {
    // DEV-CLI-EXIT-CODES: no command is a usage error; nothing exits 1.
    let (rc, out, _) = run(&[], b"", &[]);
    assert_eq!(rc, 2);
    assert!(out.is_empty());
    let good = manifest(&[&["fs:read:/a"]]);
    let cases: Vec<(Vec<&str>, Vec<u8>, i32)> = vec![
        (vec!["compile", "-"], good.clone(), 0),
        (vec!["frobnicate"], good.clone(), 2),
        (vec!["compile"], good.clone(), 2),
        (vec!["compile", "-", "--target", "nope"], good.clone(), 2),
        (vec!["compile", "-", "--target"], good.clone(), 2),
        (
            vec!["compile", "-", "--egress-target", "nope"],
            good.clone(),
            2,
        ),
        (vec!["compile", "-", "--wat"], good.clone(), 2),
        (vec!["compile", "-", "extra"], good.clone(), 2),
        (
            vec!["compile", "/nonexistent/capgate.json"],
            good.clone(),
            3,
        ),
        (vec!["compile", env!("CARGO_MANIFEST_DIR")], good.clone(), 3),
        (vec!["compile", "-"], b"{".to_vec(), 3),
        (vec!["compile", "-"], b"".to_vec(), 3),
        (vec!["compile", "-"], vec![0xff, 0xfe], 3),
        (vec!["compile", "-"], b"[]".to_vec(), 4),
        (vec!["compile", "-"], b"null".to_vec(), 4),
        (vec!["compile", "-"], manifest(&[&["fs:read:/a/../b"]]), 4),
        (vec!["compile", "-", "--target", "squid"], good.clone(), 4),
    ];
    for (args, stdin, expected) in cases {
        let (rc, out, err) = run(&args, &stdin, &[]);
        assert_eq!(rc, expected, "{args:?}: {err}");
        assert_ne!(rc, 1);
        if rc != 0 {
            assert!(out.is_empty(), "{args:?}: stdout not empty on failure");
        }
    }
}

// ------------------------------------------------------------------ docs/capabilities.md

fn capabilities_doc_section(marker: &str) -> String {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/capabilities.md"))
            .unwrap();
    let start = docs
        .find(&format!("<!-- {marker}:start -->"))
        .expect("start marker");
    let end = docs
        .find(&format!("<!-- {marker}:end -->"))
        .expect("end marker");
    docs[start..end].to_owned()
}

/// Backticked words of a text.
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn docs_special_ranges_are_the_ranges_capgate_denies() {
    let documented: BTreeSet<String> = backticked(&capabilities_doc_section("special-ranges"))
        .into_iter()
        .collect();
    let library: BTreeSet<String> = capgate::ir::SPECIAL_V4
        .iter()
        .map(|(a, l)| format!("{a}/{l}"))
        .chain(
            capgate::ir::SPECIAL_V6
                .iter()
                .map(|(a, l)| format!("{a}/{l}")),
        )
        .collect();
    assert_eq!(
        documented, library,
        "docs/capabilities.md special ranges differ from capgate::ir"
    );
}

#[test]
fn docs_dangerous_env_names_are_refused() {
    // DEV-ENV-DANGEROUS
    let words = backticked(&capabilities_doc_section("dangerous-env"));
    assert!(words.len() > 40, "{words:?}");
    let caps: Vec<String> = words
        .iter()
        .map(|w| match w.strip_suffix('*') {
            Some(prefix) => format!("env:read:{prefix}CAPGATE_TEST"),
            None => format!("env:read:{w}"),
        })
        .collect();
    let cases: Vec<(&str, Code)> = caps
        .iter()
        .map(|c| (c.as_str(), Code::CapEnvDangerous))
        .collect();
    assert_rejected(&cases);
}

// ------------------------------------------------------------------ adversarial review: paths, sockets, env, widening

/// F5/F6: aliases of reserved paths and engine sockets (`/var/run` is `/run`,
/// `/run/shm` is `/dev/shm`, `/etc/mtab` is /proc) are refused on every target,
/// through `fs:` and `ipc:` alike, and so are directories holding engine sockets.
#[test]
fn review_f5_f6_aliases_and_engine_paths_refused_on_every_target() {
    assert_rejected(&[
        ("fs:write:/run/shm", Code::CapFsReserved),
        ("fs:read:/var/run/shm/**", Code::CapFsReserved),
        ("fs:read:/etc/mtab", Code::CapFsReserved),
        ("fs:read:/var/run/docker.sock", Code::CapFsReserved),
        ("fs:read,write:/srv/ci/docker.sock", Code::CapFsReserved),
        ("fs:read:/run", Code::CapFsReserved),
        ("fs:read:/var/run/*", Code::CapFsReserved),
        ("fs:read:/run/containerd/**", Code::CapFsReserved),
        ("fs:read:/run/user/1000", Code::CapFsReserved),
        ("ipc:connect:\"unix:/var/run\"", Code::CapIpcSocket),
        ("ipc:connect:unix:/run/shm/s.sock", Code::CapIpcSocket),
        ("ipc:connect:unix:/run/podman", Code::CapIpcSocket),
        (
            "ipc:connect:unix:/run/user/1000/podman/podman.sock",
            Code::CapIpcSocket,
        ),
    ]);
    // What is accepted binds exactly the declared path, alias included.
    let b = ok(
        "bwrap",
        &[
            "fs:read:/var/lock/app",
            "ipc:connect:unix:/var/run/app/app.sock",
        ],
    );
    assert!(
        has_group(&b, &["--ro-bind", "/var/lock/app", "/var/lock/app"]),
        "{:?}",
        argv(&b)
    );
    assert!(has_group(
        &b,
        &[
            "--ro-bind-try",
            "/var/run/app/app.sock",
            "/var/run/app/app.sock"
        ]
    ));
}

/// G3: x11 binds one display's socket (option `x11_display`), never the directory
/// (DEV-X11-ONE-DISPLAY: no reference golden shows it since DEV-X11-COVERED).
#[test]
fn review_g3_x11_binds_one_display() {
    for (set, display) in [(None, "0"), (Some("3"), "3")] {
        let opts: Vec<(&str, &str)> = set.map(|v| ("x11_display", v)).into_iter().collect();
        let sock = format!("/tmp/.X11-unix/X{display}");
        let b = compile_bytes("bwrap", &manifest(&[&["ipc:connect:x11"]]), false, &opts).unwrap();
        assert!(
            has_group(&b, &["--ro-bind-try", &sock, &sock]),
            "{:?}",
            argv(&b)
        );
        assert!(
            !argv(&b).iter().any(|a| a == "/tmp/.X11-unix"),
            "{:?}",
            argv(&b)
        );
        let d = compile_bytes("docker", &manifest(&[&["ipc:connect:x11"]]), false, &opts).unwrap();
        assert_eq!(docker_mounts(&d), [(sock.clone(), sock.clone(), true)]);
    }
    for bad in ["-1", "65536", "1.0", ":1", "0/../X1"] {
        for target in ["bwrap", "docker"] {
            let e = compile_bytes(
                target,
                &manifest(&[&["ipc:connect:x11"]]),
                false,
                &[("x11_display", bad)],
            )
            .unwrap_err();
            assert_eq!(e[0].code, Code::OptionInvalid, "{target} x11_display={bad}");
        }
    }
}

/// F15: the review's names and their families, through the binary for docker
/// (which would forward the launcher's own value with `--env NAME`).
#[test]
fn review_f15_dangerous_env_refused_through_the_binary() {
    for name in [
        "GIT_CONFIG_COUNT",
        "GIT_CONFIG_KEY_0",
        "GIT_CONFIG_VALUE_0",
        "GIT_ASKPASS",
        "SSH_ASKPASS",
        "GIT_PROXY_COMMAND",
        "GIT_EXTERNAL_DIFF",
        "OPENSSL_CONF",
        "OPENSSL_ENGINES",
        "LUA_INIT",
        "LUA_INIT_5_4",
        "DOTNET_STARTUP_HOOKS",
        "CORECLR_PROFILER_PATH",
        "PYTHONWARNINGS",
        "PYTHONBREAKPOINT",
        "ERL_AFLAGS",
        "PERL5DB",
        "VIMINIT",
        "BROWSER",
        "LESSOPEN",
        "SSL_CERT_FILE",
        "NODE_EXTRA_CA_CERTS",
        "NODE_TLS_REJECT_UNAUTHORIZED",
        "REQUESTS_CA_BUNDLE",
        "RES_OPTIONS",
        "LOCALDOMAIN",
        "GEM_PATH",
    ] {
        let m = manifest(&[&[&format!("env:read:{name}")]]);
        let (rc, out, err) = run(&["compile", "-", "--target", "docker"], &m, &[]);
        assert_eq!(rc, 4, "{name}: {out}");
        assert!(
            out.is_empty() && err.contains("CAP_ENV_DANGEROUS") && err.contains("category: "),
            "{name}: {err}"
        );
    }
}

/// F19: every target that widens a partial fs grant says so in the artifact,
/// naming the path and what the bind allows beyond the declaration; explain's
/// verdict agrees (superset), and a full declaration gets neither.
#[test]
fn review_f19_partial_fs_write_is_noted_where_it_widens() {
    let cases: [(&str, &[&str]); 5] = [
        ("fs:write:/srv/d", &["create", "delete"]),
        ("fs:create:/srv/d", &["write", "delete"]),
        ("fs:delete:/srv/d", &["create"]),
        ("fs:write,delete:/srv/d/**", &["create"]),
        ("fs:read,create,write,delete:/srv/d", &[]),
    ];
    for (cap, widened) in cases {
        for target in ["bwrap", "docker"] {
            let v = ok(target, &[cap]);
            let n: Vec<String> = notes(&v)
                .into_iter()
                .filter(|n| n.contains("\"/srv/d\""))
                .collect();
            if widened.is_empty() {
                assert!(n.is_empty(), "{target} {cap}: {n:?}");
            } else {
                assert_eq!(n.len(), 1, "{target} {cap}: {:?}", notes(&v));
                let tail = n[0]
                    .split("may also")
                    .nth(1)
                    .and_then(|t| t.split(" there").next())
                    .unwrap_or_default();
                for w in ["create", "write", "delete"] {
                    assert_eq!(
                        tail.contains(w),
                        widened.contains(&w),
                        "{target} {cap}: {}",
                        n[0]
                    );
                }
            }
            let (rc, out, _) = run(
                &["explain", "-", "--target", target, "--format", "json"],
                &manifest(&[&[cap]]),
                &[],
            );
            assert_eq!(rc, 0);
            let e: Value = serde_json::from_str(&out).unwrap();
            let verdict = e["capabilities"][0]["verdict"].as_str().unwrap().to_owned();
            assert_eq!(
                verdict,
                if widened.is_empty() {
                    "exact"
                } else {
                    "superset"
                },
                "{target} {cap}"
            );
        }
    }
}

fn security_doc_section(marker: &str) -> String {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/security.md"))
            .unwrap();
    let start = docs
        .find(&format!("<!-- {marker}:start -->"))
        .expect("start marker");
    let end = docs
        .find(&format!("<!-- {marker}:end -->"))
        .expect("end marker");
    docs[start..end].to_owned()
}

/// Table rows (`| a | b | c |`) of a doc section, header and rule skipped.
fn table_rows(section: &str) -> Vec<Vec<String>> {
    section
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().replace("\\|", "|"))
                .collect()
        })
        .collect()
}

#[test]
fn docs_host_aliases_and_engine_sockets_are_the_checked_ones() {
    let documented: Vec<(String, String)> = table_rows(&security_doc_section("host-aliases"))
        .into_iter()
        .map(|r| {
            (
                r[0].trim_matches('`').to_owned(),
                r[1].trim_matches('`').to_owned(),
            )
        })
        .collect();
    let library: Vec<(String, String)> = capgate::syntax::HOST_ALIASES
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    assert_eq!(
        documented, library,
        "docs/security.md host aliases differ from capgate::syntax"
    );
    let words: BTreeSet<String> = backticked(&security_doc_section("engine-sockets"))
        .into_iter()
        .collect();
    let library: BTreeSet<String> = capgate::syntax::ENGINE_SOCKETS
        .iter()
        .chain(capgate::syntax::ENGINE_PATHS)
        .chain(capgate::syntax::ENGINE_HOME_PATHS)
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(
        words, library,
        "docs/security.md engine sockets differ from capgate::syntax"
    );
}

#[test]
fn docs_dangerous_env_table_is_the_refused_list() {
    let documented: Vec<(String, String, String)> =
        table_rows(&security_doc_section("dangerous-env-table"))
            .into_iter()
            .map(|r| {
                (
                    r[0].trim_matches('`').to_owned(),
                    r[1].clone(),
                    r[2].clone(),
                )
            })
            .collect();
    let library: Vec<(String, String, String)> = capgate::syntax::DANGEROUS_ENV
        .iter()
        .map(|d| {
            (
                format!("{}{}", d.name, if d.prefix { "*" } else { "" }),
                d.category.as_str().to_owned(),
                d.reason.to_owned(),
            )
        })
        .collect();
    assert_eq!(
        documented, library,
        "docs/security.md refused env names differ from capgate::syntax"
    );
    // docs/capabilities.md lists the same names.
    let listed: BTreeSet<String> = backticked(&capabilities_doc_section("dangerous-env"))
        .into_iter()
        .collect();
    let names: BTreeSet<String> = library.into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(
        listed, names,
        "docs/capabilities.md refused env names differ"
    );
}

/// srt's `system_read`, `helper_dir` and `socket_dir` options land in
/// `allowRead`: each path is checked as `fs:read:PATH/**` is, so an option
/// makes readable nothing a manifest could not declare (the host root, /proc,
/// an engine socket or directory, a socket directory, an unnormalised path).
/// tests/enforcement/srt.rs shows under srt what `/` in allowRead exposes.
#[test]
fn srt_read_path_options_grant_no_more_than_a_capability() {
    let bytes = manifest(&[&["fs:read:/data/**", "net:connect:api.github.com:443"]]);
    let allow_read = |v: &Value| -> Vec<String> {
        let config: Value = serde_json::from_str(v["config"].as_str().unwrap()).unwrap();
        serde_json::from_value(config["filesystem"]["allowRead"].clone()).unwrap()
    };
    let refused = [
        "/",
        "/proc",
        "/sys/kernel",
        "/dev",
        "/var/run/docker.sock",
        "/run",
        "/var/lib/docker/overlay2",
        "/run/dbus",
        "/tmp/.X11-unix",
        "/usr/../etc",
        "/usr/",
        "//etc",
        "relative",
    ];
    for option in ["system_read", "helper_dir", "socket_dir"] {
        for value in refused {
            // A list option refuses a bad path anywhere in the list.
            let value = if option == "system_read" {
                format!("/usr {value}")
            } else {
                value.to_owned()
            };
            match compile_bytes("srt", &bytes, false, &[(option, &value)]) {
                Ok(v) => panic!("--set {option}={value:?} accepted: {:?}", allow_read(&v)),
                Err(d) => {
                    assert_eq!(d[0].code, Code::OptionInvalid, "{}", render(&d));
                    assert!(d[0].message.contains(option), "{}", render(&d));
                }
            }
        }
    }
    // srt's TMPDIR is a directory of its own, never a shared one (any spelling).
    for value in ["/tmp", "/var/tmp", "/usr/tmp"] {
        match compile_bytes("srt", &bytes, false, &[("socket_dir", value)]) {
            Ok(v) => panic!("--set socket_dir={value} accepted: {:?}", allow_read(&v)),
            Err(d) => assert_eq!(d[0].code, Code::OptionInvalid, "{}", render(&d)),
        }
    }
    // Control: accepted paths are what allowRead gets, in order, once each.
    let v = compile_bytes(
        "srt",
        &bytes,
        false,
        &[
            ("system_read", "/usr /opt/tools /usr"),
            ("helper_dir", "/opt/srt/vendor/seccomp"),
            ("socket_dir", "/var/lib/capgate-srt/s1"),
        ],
    )
    .unwrap_or_else(|d| panic!("{}", render(&d)));
    let read = allow_read(&v);
    assert_eq!(
        read[..4],
        [
            "/usr",
            "/opt/tools",
            "/opt/srt/vendor/seccomp",
            "/var/lib/capgate-srt/s1"
        ],
        "{read:?}"
    );
}

/// A host path option that the output uses (a path srt grants, the seccomp
/// profile docker reads, systemd's environment file, squid's log directory)
/// must not lie in a writable declaration: the server could rewrite it, or
/// put a symlink in its place, before the next start. Every built-in target
/// with such an option, its default and `--set` spellings, the path itself
/// and aliases; a writable sibling and an unused option stay accepted.
#[test]
fn host_path_options_never_lie_in_a_writable_declaration() {
    let rw = |path: &str| format!("fs:read,write,create,delete:{path}");
    // (target, the capabilities that make the output use the option, option, value)
    let cases: &[(&str, &[&str], &str, Option<&str>)] = &[
        (
            "srt",
            &["net:connect:api.github.com:443"],
            "socket_dir",
            None,
        ),
        ("srt", &[], "system_read", Some("/usr /opt/tools")),
        ("srt", &[], "helper_dir", Some("/opt/tools/srt")),
        ("docker", &[], "seccomp_profile", None),
        ("systemd", &["env:inject:API_TOKEN"], "env_file", None),
        // Its default, /run/capgate-squid, has /run for parent, which no
        // declaration may name (CAP_FS_RESERVED): the parent case needs a deeper value.
        (
            "squid",
            &["net:connect:api.github.com:443"],
            "instance_dir",
            Some("/run/capgate/squid"),
        ),
    ];
    let permissive = |target: &str| target == "squid";
    for &(target, uses, option, value) in cases {
        let default = capgate::rules::Target::load(&Assets::default(), target)
            .unwrap_or_else(|d| panic!("{}", render(&d)))
            .options
            .iter()
            .find(|o| o.name == option)
            .unwrap_or_else(|| panic!("{target} has option {option}"))
            .default
            .to_string();
        let value = value.map_or(default, str::to_owned);
        // The last path of a list option is the one each writable path holds.
        let path = value.rsplit(' ').next().unwrap().to_owned();
        let parent = Path::new(&path)
            .parent()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let set: Vec<(&str, &str)> = match target {
            "squid" => vec![(option, value.as_str()), ("private_instance", "true")],
            _ => vec![(option, value.as_str())],
        };
        let compile = |writable: &str, set: &[(&str, &str)]| {
            let mut caps = vec![rw(writable)];
            caps.extend(uses.iter().map(|c| c.to_string()));
            let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
            compile_bytes(target, &manifest(&[&caps]), permissive(target), set)
        };
        // The parent directory, the path itself, a spelling through a host alias.
        let mut writable = vec![format!("{parent}/**"), path.clone()];
        if let Some(rest) = parent.strip_prefix("/run/") {
            writable.push(format!("/var/run/{rest}/**"));
        }
        for w in &writable {
            match compile(w, &set) {
                Ok(_) => panic!("{target}: writable {w} holds option {option}={value}, accepted"),
                Err(d) => {
                    assert_eq!(d[0].code, Code::OptionInWritable, "{}", render(&d));
                    assert!(d[0].message.contains(option), "{}", render(&d));
                    assert!(d[0].location.is_some(), "{}", render(&d));
                }
            }
        }
        // A `..` spelling: refused as an option value, since after a link the
        // server plants in the writable tree the host resolves it elsewhere.
        let name = Path::new(&parent).file_name().unwrap().to_str().unwrap();
        for odd in [
            format!("{parent}/./../{name}{}", &path[parent.len()..]),
            format!(
                "{parent}/d/../..{}",
                &path[Path::new(&parent).parent().unwrap().to_str().unwrap().len()..]
            ),
            format!("/{path}"),
        ] {
            let mut odd_set = set.clone();
            odd_set[0] = (option, odd.as_str());
            match compile(&format!("{parent}/**"), &odd_set) {
                Ok(_) => panic!("{target}: --set {option}={odd} in writable {parent}, accepted"),
                Err(d) => assert_eq!(d[0].code, Code::OptionInvalid, "{odd}: {}", render(&d)),
            }
        }
        // Control: a writable sibling of the option's directory.
        let sibling = format!("{parent}-data/**");
        compile(&sibling, &set).unwrap_or_else(|d| {
            panic!(
                "{target}: writable {sibling} beside {option}={value}:\n{}",
                render(&d)
            )
        });
    }
    // Control: srt without net never uses socket_dir, so a writable /tmp stays accepted.
    compile_bytes("srt", &manifest(&[&[&rw("/tmp/**")]]), false, &[])
        .unwrap_or_else(|d| panic!("{}", render(&d)));
}
