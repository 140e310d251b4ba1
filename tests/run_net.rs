//! `capgate run` with declared network (docs/run.md "Network"), as root as CI
//! runs it: every test runs capgate inside a network namespace it creates
//! ([`NetLab`]), whose loopback carries the "internet" (11.0.0.x, outside
//! capgate's special ranges) and private addresses (10.0.0.x), served by
//! tests/run/upstream.py, which logs every request it gets. Names resolve
//! through /etc/netns/NAME/hosts. Nothing leaves the machine.
//!
//! What reached the upstream is checked from its own log, not only from what
//! the client in the sandbox saw.

#[path = "run/support.rs"]
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use support::*;

const TOOLS: &[&str] = &[
    "bwrap", "setpriv", "env", "ip", "nsenter", "nft", "squid", "curl", "python3",
];

const ADDRS: &[&str] = &["11.0.0.2/32", "11.0.0.3/32", "10.0.0.5/32", "10.0.0.9/32"];
const HOSTS: &str = "\
11.0.0.2 allowed.test
11.0.0.3 other.test
10.0.0.9 rebind.test
11.0.0.50 hostself.test
";
const TCP: &[&str] = &[
    "11.0.0.2:8080",
    "11.0.0.2:8081",
    "11.0.0.3:8080",
    "10.0.0.5:5432",
    "10.0.0.9:8080",
];
const UDP: &[&str] = &["10.0.0.5:5432", "11.0.0.2:53"];

fn declared() -> Vec<String> {
    vec![
        "net:connect:allowed.test:8080".into(),
        "net:connect:10.0.0.5:5432".into(),
        "net:connect:rebind.test:8080".into(),
        // A name that resolves to one of the host's own addresses.
        "net:connect:hostself.test:9090".into(),
    ]
}

/// The lab: the "internet" above, and on the host (where capgate runs) a
/// public address of its own, 11.0.0.50, a TCP service on every host
/// address (so also on the host end of the run's veth) and UDP sinks.
fn lab(dir: &TempDir) -> NetLab {
    NetLab::new(
        dir,
        &LabSpec {
            addrs: ADDRS,
            tcp: TCP,
            udp: UDP,
            hosts: HOSTS,
            // The host's own public address, and a prefix on lo: every address
            // in it is the host too.
            host_addrs: &["11.0.0.50/32", "11.0.1.1/24"],
            host_tcp: &["0.0.0.0:9090", "0.0.0.0:9191"],
            host_udp: &["0.0.0.0:53", "0.0.0.0:5353"],
            // The host's resolver is the upstream's UDP sink: every query
            // squid sends shows up in the upstream's log.
            resolver: Some("11.0.0.2"),
            ..LabSpec::default()
        },
    )
}

/// `ip netns exec LAB capgate run MANIFEST FLAGS -- CMD`.
fn capgate_in(lab: &NetLab, manifest: &Path, flags: &[&str], cmd: &[&str]) -> Command {
    let mut c = lab.exec(env!("CARGO_BIN_EXE_capgate"));
    c.arg("run").arg(manifest).args(flags).arg("--").args(cmd);
    c.stdin(Stdio::null());
    c
}

/// What probe `id` printed (`ID RESULT` lines of the sandbox's stdout).
fn probe(stdout: &str, stderr: &str, id: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{id} ")))
        .unwrap_or_else(|| panic!("no probe {id}:\n{stdout}\n{stderr}"))
        .to_owned()
}

/// The probes, one line each (`ID CONNECT/HTTP` codes from curl, 000 when
/// nothing answered), run by sh inside the sandbox. HOST is the host end of
/// the run's veth, taken from the proxy variable the run sets.
const PROBES: &str = r#"
h=${HTTP_PROXY#http://}; h=${h%:*}
p() { id=$1; shift; printf '%s %s\n' "$id" "$(curl -s -o /dev/null -m 4 -w '%{http_connect}/%{http_code}' "$@")"; }
p get http://allowed.test:8080/get
p connect -p http://allowed.test:8080/connect
p port http://allowed.test:8081/port
p name http://other.test:8080/name
p rebind http://rebind.test:8080/rebind
p ipproxy http://11.0.0.3:8080/ipproxy
p around --noproxy '*' http://11.0.0.2:8080/around
p private --noproxy '*' http://10.0.0.9:8080/private
p direct --noproxy '*' http://10.0.0.5:5432/direct
p hostport --noproxy '*' "http://$h:9090/hostport"
p noproxyenv --noproxy '*' http://allowed.test:8080/noproxyenv
p hostself http://hostself.test:9090/hostself
p hostip http://11.0.0.50:9090/hostip
p exfil http://secretexfil1.exfil.test:8080/exfil
p exfil2 -p http://secretexfil2.exfil.test:443/exfil2
p ftp ftp://allowed.test:8080/ftp
p whois whois://allowed.test:8080/whois
p gopher gopher://allowed.test:8080/gopher
nft flush ruleset 2>/dev/null; echo "flush $?"
ip addr add 11.0.0.99/32 dev lo 2>/dev/null; echo "addr $?"
ip route add 11.0.0.0/24 dev lo 2>/dev/null; echo "route $?"
p after --noproxy '*' http://11.0.0.2:8080/after
python3 - "$h" <<'PY'
import socket, sys
for addr, data in [((sys.argv[1], 53), b"udp-escape"), ((sys.argv[1], 5353), b"udp-escape"),
                   (("11.0.0.2", 53), b"udp-escape"), (("10.0.0.5", 5432), b"udp-declared")]:
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(data, addr)
    except OSError:
        pass
PY
echo "ipv6 $(awk '{print $6}' /proc/net/if_inet6 | sort -u | tr '\n' ' ')"
"#;

#[test]
fn declared_network_and_nothing_else() {
    if !require_tools("declared_network_and_nothing_else", TOOLS) {
        return;
    }
    let dir = TempDir::new("net");
    let lab = lab(&dir);
    let m = dir.manifest("net", &declared());
    let report = dir.join("report.json");
    let out = capgate_in(
        &lab,
        &m,
        &["--report", &report.display().to_string()],
        &["/bin/sh", "-c", PROBES],
    )
    .output()
    .unwrap();
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let got = |id: &str| probe(&stdout, &stderr, id);
    // Allowed: the declared name by GET and by CONNECT through the proxy,
    // and the declared IP:port directly.
    assert_eq!(got("get"), "000/200", "{stdout}");
    assert_eq!(got("connect"), "200/200", "{stdout}");
    assert_eq!(got("direct"), "000/200", "{stdout}");
    // Refused by the proxy (403), or by the namespace's ruleset (no answer).
    for id in [
        "port", "name", "rebind", "ipproxy", "hostself", "hostip", "exfil",
    ] {
        assert_eq!(got(id), "000/403", "{id}: {stdout}");
    }
    assert_eq!(got("exfil2"), "403/000", "{stdout}");
    // Other schemes are refused by the proxy (whatever curl makes of the answer).
    for id in ["ftp", "whois", "gopher"] {
        assert!(!got(id).ends_with("/200"), "{id}: {stdout}");
    }
    for id in ["around", "private", "hostport", "noproxyenv", "after"] {
        assert_eq!(got(id), "000/000", "{id}: {stdout}");
    }
    // The sandbox cannot change its namespace's rules, addresses or routes.
    for id in ["flush", "addr", "route"] {
        assert_ne!(got(id), "0", "{id}: {stdout}");
    }
    // No IPv6 address but loopback's.
    assert_eq!(got("ipv6").trim(), "lo", "{stdout}");
    // What the upstream got: the three allowed requests (and squid's
    // robots-free GET carries the probe's own path), nothing else, no UDP.
    // squid looked up no name nobody declared (no DNS channel out); UDP
    // reached the declared IP:port and nothing else.
    let all = lab.lines();
    assert!(!all.iter().any(|l| l.contains("secretexfil")), "{all:#?}");
    assert!(!all.iter().any(|l| l.contains("udp-escape")), "{all:#?}");
    assert!(
        wait_for(3, || lab
            .lines()
            .iter()
            .any(|l| l == "UDP 10.0.0.5:5432 udp-declared")),
        "UDP to the declared 10.0.0.5:5432 did not arrive: {all:#?}"
    );
    let mut hits: Vec<String> = all.into_iter().filter(|l| l.starts_with("HIT ")).collect();
    hits.sort();
    assert_eq!(
        hits,
        [
            "HIT 10.0.0.5:5432 /direct",
            "HIT 11.0.0.2:8080 /connect",
            "HIT 11.0.0.2:8080 /get",
        ],
        "{stdout}"
    );

    // Denials became the capabilities that would allow them.
    let r: Value = serde_json::from_str(&fs::read_to_string(&report).unwrap()).unwrap();
    let denials: Vec<(String, Option<String>)> = r["denials"]
        .as_array()
        .unwrap_or_else(|| panic!("no denials in {r:#}"))
        .iter()
        .map(|d| {
            (
                d["destination"].as_str().unwrap().to_owned(),
                d["suggestion"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        denials,
        [
            (
                "allowed.test:8081".into(),
                Some("net:connect:allowed.test:8081".into())
            ),
            (
                "other.test:8080".into(),
                Some("net:connect:other.test:8080".into())
            ),
            // Declared, refused for its address: nothing to suggest.
            ("rebind.test:8080".into(), None),
            (
                "11.0.0.3:8080".into(),
                Some("net:connect:11.0.0.3:8080".into())
            ),
            ("hostself.test:9090".into(), None),
            (
                "11.0.0.50:9090".into(),
                Some("net:connect:11.0.0.50:9090".into())
            ),
            (
                "secretexfil1.exfil.test:8080".into(),
                Some("net:connect:secretexfil1.exfil.test:8080".into())
            ),
            (
                "secretexfil2.exfil.test:443".into(),
                Some("net:connect:secretexfil2.exfil.test:443".into())
            ),
        ]
    );
    assert!(
        stderr.contains("capgate: denied other.test:8080 (1 request): to allow it, declare net:connect:other.test:8080"),
        "{stderr}"
    );
    assert!(
        stderr.contains("capgate: denied rebind.test:8080 (1 request): although declared"),
        "{stderr}"
    );

    // Nothing stays: the run's directory, squid, the veth, the masquerade table.
    let state = r["network"]["stateDir"].as_str().unwrap().to_owned();
    assert_nothing_left(&lab, &state);
}

/// The run's directory, its squid, the lab's veth ends and masquerade tables are gone.
fn assert_nothing_left(lab: &NetLab, state: &str) {
    assert!(
        wait_for(5, || !Path::new(state).exists()
            && pids_with(state).is_empty()),
        "{state} or its squid is still there: {:?}",
        pids_with(state)
    );
    let links = Command::new("ip")
        .args(["-n", &lab.name, "-o", "link"])
        .output()
        .unwrap();
    assert!(
        !text(&links.stdout).contains("cgnet"),
        "{}",
        text(&links.stdout)
    );
    let tables = lab.exec("nft").args(["list", "tables"]).output().unwrap();
    assert!(
        !text(&tables.stdout).contains("capgate_run_"),
        "{}",
        text(&tables.stdout)
    );
}

/// The state directory of the run whose capgate has pid `pid` (`ip netns
/// exec` executes capgate in its own process).
fn state_dir_of(pid: u32) -> Option<PathBuf> {
    fs::read_dir("/run/capgate").ok()?.flatten().find_map(|e| {
        let owner = fs::read_to_string(e.path().join("owner")).ok()?;
        (owner.split_whitespace().next()? == pid.to_string()).then(|| e.path())
    })
}

/// Pids of `sleep SECS` processes (argv exactly that: the sandboxed
/// command, not the command lines that carry it).
fn sleeps(secs: &str) -> Vec<u32> {
    let want = format!("/usr/bin/sleep\0{secs}\0");
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_string_lossy().parse().ok()?;
            let cmd = fs::read(e.path().join("cmdline")).ok()?;
            (String::from_utf8_lossy(&cmd) == want).then_some(pid)
        })
        .collect()
}

/// Starts a networked run of `sleep` that stays up, and waits until its
/// squid runs; returns the run (capgate itself), its state directory and
/// the sleep's duration (unique to the run).
fn start_long_run(lab: &NetLab, m: &Path) -> (Proc, PathBuf, String) {
    // `sleep PID0K`: unique to this process and call.
    let secs = short().replace('n', "0");
    let child = capgate_in(lab, m, &[], &["/usr/bin/sleep", &secs])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let run = Proc(child);
    let pid = run.0.id();
    assert!(
        wait_for(20, || !sleeps(&secs).is_empty()),
        "the sandbox did not start"
    );
    let state = state_dir_of(pid).expect("a state dir");
    assert!(
        !pids_with(&state.display().to_string()).is_empty(),
        "no squid"
    );
    (run, state, secs)
}

/// `*` reaches the world, never the host itself: not a host address on
/// another port than a declared literal's, not an address inside a prefix on
/// the host's loopback; the declared host literal is reached directly, on its
/// port only (R12, R13 of docs/security.md).
#[test]
fn any_host_never_reaches_the_host_itself() {
    if !require_tools("any_host_never_reaches_the_host_itself", TOOLS) {
        return;
    }
    let dir = TempDir::new("netany");
    let lab = lab(&dir);
    let m = dir.manifest(
        "any",
        &["net:connect:*".into(), "net:connect:11.0.0.50:9090".into()],
    );
    let probes = r#"
p() { id=$1; shift; printf '%s %s\n' "$id" "$(curl -s -o /dev/null -m 4 -w '%{http_connect}/%{http_code}' "$@")"; }
p world http://allowed.test:8080/world
p otherport --noproxy '' -x "$HTTP_PROXY" http://11.0.0.50:9191/otherport
p otherport_tunnel -p --noproxy '' -x "$HTTP_PROXY" http://11.0.0.50:9191/otherport_tunnel
p declaredport_proxy --noproxy '' -x "$HTTP_PROXY" http://11.0.0.50:9090/declaredport_proxy
p prefix --noproxy '' -x "$HTTP_PROXY" http://11.0.1.7:9090/prefix
p declared http://11.0.0.50:9090/declared
p declared_other --noproxy '*' http://11.0.0.50:9191/declared_other
echo "no_proxy $NO_PROXY"
"#;
    let out = capgate_in(&lab, &m, &[], &["/bin/sh", "-c", probes])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let got = |id: &str| probe(&stdout, "", id);
    assert_eq!(got("world"), "000/200", "{stdout}");
    assert_eq!(got("declared"), "000/200", "{stdout}");
    assert!(got("no_proxy").contains("11.0.0.50"), "{stdout}");
    for id in ["otherport", "declaredport_proxy", "prefix"] {
        assert_eq!(got(id), "000/403", "{id}: {stdout}");
    }
    assert_eq!(got("otherport_tunnel"), "403/000", "{stdout}");
    assert_eq!(got("declared_other"), "000/000", "{stdout}");
    let hits: Vec<String> = lab
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("HIT "))
        .collect();
    let mut paths: Vec<&str> = hits.iter().filter_map(|l| l.rsplit(' ').next()).collect();
    paths.sort();
    assert_eq!(paths, ["/declared", "/world"], "{hits:?}");
}

/// An address the host gains during a run is denied to the proxy too, within
/// about a second (R14): the run re-reads the host's addresses and squid is
/// reconfigured.
#[test]
fn host_addresses_gained_during_the_run_are_denied() {
    if !require_tools("host_addresses_gained_during_the_run_are_denied", TOOLS) {
        return;
    }
    let dir = TempDir::new("netgain");
    let lab = lab(&dir);
    let m = dir.manifest("any", &["net:connect:*".into()]);
    // Before, and well after, the test gives the host 11.0.3.1 (its service
    // on 0.0.0.0:9090 answers there at once).
    let probes = r#"
p() { id=$1; shift; printf '%s %s\n' "$id" "$(curl -s -o /dev/null -m 4 -w '%{http_code}' "$@")"; }
p before http://11.0.3.1:9090/before
read -r go
p after http://11.0.3.1:9090/after
p world http://allowed.test:8080/world
"#;
    let mut run = capgate_in(&lab, &m, &[], &["/bin/sh", "-c", probes])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(run.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    // Not yet the host's: routed to the upstream namespace, where nothing listens.
    assert!(first.starts_with("before "), "{first}");
    let ok = Command::new("ip")
        .args(["-n", &lab.name, "addr", "add", "11.0.3.1/32", "dev", "lo"])
        .status()
        .unwrap();
    assert!(ok.success());
    // Wait (up to 10 s) until the run has recompiled squid.conf with the new
    // address and squid has reconfigured and accepts again.
    let state = state_dir_of(run.id()).expect("the run's state directory");
    let reconfigured = || {
        let conf = fs::read_to_string(state.join("squid.conf")).unwrap_or_default();
        let log = fs::read_to_string(state.join("squid/cache.log")).unwrap_or_default();
        let after = log.rsplit("Reconfiguring").next().unwrap_or_default();
        conf.contains("11.0.3.1")
            && log.contains("Reconfiguring")
            && after.contains("Accepting HTTP")
    };
    assert!(wait_for(10, reconfigured), "squid was not reconfigured");
    let mut stdin = run.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"go\n").unwrap();
    drop(stdin);
    let status = run.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("after 403"), "{rest}");
    assert!(rest.contains("world 200"), "{rest}");
    assert!(
        !lab.lines().iter().any(|l| l.ends_with("/after")),
        "{:?}",
        lab.lines()
    );
}

/// Nothing connects into the sandbox: a listener in it is not reachable from
/// the host through the veth (the ruleset's ingress chain).
#[test]
fn nothing_connects_into_the_sandbox() {
    if !require_tools("nothing_connects_into_the_sandbox", TOOLS) {
        return;
    }
    let dir = TempDir::new("netin");
    let lab = lab(&dir);
    let m = dir.manifest("net", &declared());
    let listener = r#"
import os, socket
h = os.environ["HTTP_PROXY"][len("http://"):].rsplit(":", 1)[0]
a = h.split("."); a[3] = str(int(a[3]) + 1); me = ".".join(a)
s = socket.socket(); s.bind(("0.0.0.0", 4444)); s.listen(1); s.settimeout(6)
print("ready", me, flush=True)
try:
    c, peer = s.accept(); c.sendall(b"from the sandbox"); print("accepted", peer, flush=True)
except socket.timeout:
    print("timeout", flush=True)
"#;
    let mut run = capgate_in(&lab, &m, &[], &["/usr/bin/python3", "-c", listener])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(run.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    let me = first
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("no listener: {first:?}"))
        .trim()
        .to_owned();
    let probe = format!(
        "import socket\ntry:\n  s = socket.create_connection(('{me}', 4444), timeout=3); print(s.recv(100))\nexcept OSError as e:\n  print('refused', e)"
    );
    let reach = lab.exec("python3").args(["-c", &probe]).output().unwrap();
    assert!(
        text(&reach.stdout).starts_with("refused"),
        "the host reached the sandbox's listener: {}",
        text(&reach.stdout)
    );
    // The run's proxy serves the sandbox alone: the host asking it for a
    // declared destination is refused (R2), and nothing reaches the upstream.
    let mut host_end: Vec<u32> = me.split('.').map(|o| o.parse().unwrap()).collect();
    host_end[3] -= 1;
    let proxy = format!(
        "http://{}:3128",
        host_end
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(".")
    );
    let via = lab
        .exec("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "4",
            "-w",
            "%{http_code}",
            "-x",
            &proxy,
        ])
        .arg("http://allowed.test:8080/from-the-host")
        .output()
        .unwrap();
    assert_eq!(
        text(&via.stdout),
        "403",
        "the host used the sandbox's proxy"
    );
    assert!(
        !lab.lines().iter().any(|l| l.contains("from-the-host")),
        "{:?}",
        lab.lines()
    );
    let status = run.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(status.success(), "{rest}");
    assert_eq!(rest.trim(), "timeout", "the listener accepted: {rest}");
}

#[test]
fn sigterm_and_sigkill_leave_nothing_behind() {
    if !require_tools("sigterm_and_sigkill_leave_nothing_behind", TOOLS) {
        return;
    }
    let dir = TempDir::new("netlife");
    let lab = lab(&dir);
    let m = dir.manifest("net", &declared());

    // SIGTERM: forwarded to the sandbox; capgate removes the rest and exits 128+15.
    let (mut run, state, marker) = start_long_run(&lab, &m);
    signal(run.0.id(), "TERM");
    let status = run.0.wait().unwrap();
    assert_eq!(status.code(), Some(143), "{status:?}");
    assert!(sleeps(&marker).is_empty(), "the sandbox survived SIGTERM");
    assert_nothing_left(&lab, &state.display().to_string());

    // SIGKILL: the sandbox dies with capgate; the next networked run removes
    // squid and the directory, found stale by the owner's pid.
    let (mut run, state, marker) = start_long_run(&lab, &m);
    signal(run.0.id(), "KILL");
    let _ = run.0.wait();
    assert!(
        wait_for(10, || sleeps(&marker).is_empty()),
        "the sandbox survived capgate's SIGKILL"
    );
    let next = capgate_in(&lab, &m, &[], &["/bin/true"]).output().unwrap();
    assert!(next.status.success(), "{}", text(&next.stderr));
    assert_nothing_left(&lab, &state.display().to_string());

    // The same after a SIGKILL, reaped by a run in another network namespace
    // (/run/capgate is shared): the veth and masquerade table of the first
    // are removed inside its own namespace, not looked for in the reaper's.
    let (mut run, state, marker) = start_long_run(&lab, &m);
    signal(run.0.id(), "KILL");
    let _ = run.0.wait();
    assert!(wait_for(10, || sleeps(&marker).is_empty()));
    let other_dir = TempDir::new("netlife2");
    let other = self::lab(&other_dir);
    let next = capgate_in(&other, &m, &[], &["/bin/true"])
        .output()
        .unwrap();
    assert!(next.status.success(), "{}", text(&next.stderr));
    assert_nothing_left(&lab, &state.display().to_string());
}

#[test]
fn network_is_refused_where_the_run_cannot_provide_it() {
    if !require_tools(
        "network_is_refused_where_the_run_cannot_provide_it",
        &["bwrap", "setpriv", "env", "podman"],
    ) {
        return;
    }
    let dir = TempDir::new("netrefuse");
    let m = dir.manifest("net", &["net:connect:api.example.com:443".into()]);
    // Not root: refused, unless --permissive, which runs with no network at all.
    let as_nobody = |flags: &[&str], cmd: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_capgate"))
            .arg("run")
            .arg(&m)
            .args(flags)
            .arg("--")
            .args(cmd)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = as_nobody(&[], &["/bin/true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("capgate: RUN_NETWORK: the manifest declares network (api.example.com:443): capgate run provides network only when started as root"),
        "{err}"
    );
    let out = as_nobody(
        &["--permissive"],
        &["/bin/sh", "-c", "cat /proc/net/dev | wc -l"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("the server runs with no network"),
        "{}",
        text(&out.stderr)
    );
    // Only the loopback device (2 header lines + lo).
    assert_eq!(text(&out.stdout).trim(), "3");
    // A declared literal in the range of the runs' links (the host end of a
    // veth is the host itself, or another run's proxy), in several spellings.
    // ... and loopback literals, which would be the sandbox's own loopback
    // directly but the host's through the proxy.
    for (cap, why) in [
        (
            "net:connect:169.254.1.1:9090",
            "which capgate run uses for its links",
        ),
        (
            "net:connect:169.254.200.9",
            "which capgate run uses for its links",
        ),
        (
            "net:connect:169.254.0.1:3128",
            "which capgate run uses for its links",
        ),
        (
            "net:connect:127.0.0.1:7777",
            "a loopback (or unspecified) address",
        ),
        (
            "net:connect:127.0.0.2",
            "a loopback (or unspecified) address",
        ),
        (
            "net:connect:\"::1\":22",
            "a loopback (or unspecified) address",
        ),
    ] {
        let m = dir.manifest("literal", &[cap.into()]);
        let out = run(&m, &[], &["/bin/true"]);
        assert_eq!(out.status.code(), Some(125), "{cap}");
        assert!(
            text(&out.stderr).contains(why),
            "{cap}: {}",
            text(&out.stderr)
        );
    }
    // docker: not provided yet.
    let out = run(
        &m,
        &["--target", "docker", "--image", "localhost/none"],
        &["true"],
    );
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).starts_with("capgate: RUN_NETWORK: the manifest declares network (api.example.com:443): capgate run --target docker does not provide network yet"),
        "{}",
        text(&out.stderr)
    );
}
