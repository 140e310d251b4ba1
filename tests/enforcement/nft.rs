//! nftables: the compiled ruleset loaded into the sandbox side of two network
//! namespaces joined by a veth. Neither namespace has a default route, so no
//! probe can leave the pair. "Public" addresses are 11.0.0.0/24 and
//! 2a00:cafe::/64 (outside capgate's special ranges); the special ones are
//! 10.0.0.0/24, 203.0.113.0/24 and fd00:cafe::/64, all routable on the veth.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

const CLIENT_ADDRS: &[&str] = &[
    "11.0.0.1/24",
    "10.0.0.1/24",
    "203.0.113.1/24",
    "2a00:cafe::1/64",
    "fd00:cafe::1/64",
    // F16: the Azure WireServer's range, and IPv4-compatible /
    // IPv4-translated IPv6 forms of 11.0.0.x
    "168.63.129.1/24",
    "::b00:1/120",
    "::ffff:0:b00:1/120",
];
const SERVER_ADDRS: &[&str] = &[
    "11.0.0.2/24",
    "11.0.0.3/24",
    "11.0.0.4/24",
    "10.0.0.5/24",
    "10.0.0.6/24",
    "203.0.113.2/24",
    "2a00:cafe::2/64",
    "2a00:cafe::3/64",
    "fd00:cafe::5/64",
    "fd00:cafe::6/64",
    "168.63.129.16/24",
    "::b00:2/120",
    "::ffff:0:b00:2/120",
];
const PORTS: &[u16] = &[80, 443, 5432, 6379, 8443];

/// (proto, address, port)
type Probe = (&'static str, &'static str, u16);

/// Declared in fixtures/enforcement/nftables.json.
const ALLOWED: &[Probe] = &[
    ("tcp", "11.0.0.2", 8443),
    ("tcp", "11.0.0.3", 80),
    ("tcp", "11.0.0.3", 8443),
    ("tcp", "2a00:cafe::2", 443),
    ("tcp", "10.0.0.5", 5432),
    ("tcp", "fd00:cafe::5", 6379),
];
/// Undeclared public destinations: dropped by `policy drop`.
const DENIED_PUBLIC: &[Probe] = &[
    ("tcp", "11.0.0.2", 80),
    ("tcp", "11.0.0.2", 443),
    ("tcp", "11.0.0.4", 8443),
    ("tcp", "2a00:cafe::2", 80),
    ("tcp", "2a00:cafe::3", 443),
    ("udp", "11.0.0.2", 8443),
];
/// Special-range destinations (other ports of declared ones included): dropped
/// by the special-range rule even when a later rule would accept them.
const DENIED_SPECIAL: &[Probe] = &[
    ("tcp", "10.0.0.5", 80),
    ("tcp", "10.0.0.6", 5432),
    ("tcp", "203.0.113.2", 8443),
    ("tcp", "fd00:cafe::5", 80),
    ("tcp", "fd00:cafe::6", 6379),
    // F16: public-looking space that is special
    ("tcp", "168.63.129.16", 80),
    ("tcp", "::11.0.0.2", 443),
    ("tcp", "::ffff:0:b00:2", 443),
];

fn prefix_len_stripped(a: &str) -> &str {
    a.split('/').next().unwrap()
}

/// Joins two namespaces with a veth, addresses both ends and pins every
/// neighbour entry (no ARP/ND round trips, no DAD: no first-packet stalls).
fn veth(client: &Netns, server: &Netns) -> (String, String) {
    let id = short();
    let (ci, si) = (format!("vc{id}"), format!("vs{id}"));
    ok(&mut cmd(
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
    for (ns, dev, addrs) in [(client, &ci, CLIENT_ADDRS), (server, &si, SERVER_ADDRS)] {
        for a in addrs {
            if a.contains(':') {
                ns.ip(&["addr", "add", a, "dev", dev, "nodad"]);
            } else {
                ns.ip(&["addr", "add", a, "dev", dev]);
            }
        }
        ns.ip(&["link", "set", dev, "up"]);
    }
    let (cmac, smac) = (mac(client, &ci), mac(server, &si));
    for (ns, dev, peer_addrs, peer_mac) in [
        (client, &ci, SERVER_ADDRS, &smac),
        (server, &si, CLIENT_ADDRS, &cmac),
    ] {
        for a in peer_addrs {
            let a = prefix_len_stripped(a);
            ns.ip(&[
                "neigh",
                "replace",
                a,
                "lladdr",
                peer_mac,
                "dev",
                dev,
                "nud",
                "permanent",
            ]);
        }
    }
    (ci, si)
}

/// Runs every probe at once from the client namespace; returns (probe, reply
/// or None when it did not connect, error).
fn probe_all(
    client: &Netns,
    probes: &[Probe],
    token: &str,
) -> Vec<(Probe, Option<String>, String)> {
    let list: Vec<Value> = probes
        .iter()
        .map(|(proto, host, port)| {
            json!([proto, host, port, format!("{token} {proto} {host} {port}")])
        })
        .collect();
    let out = ok(&mut client.exec(
        &python(),
        &[
            "-c",
            PROBE_PY,
            "connect",
            "1.0",
            &Value::Array(list).to_string(),
        ],
    ));
    let results: Vec<Value> = serde_json::from_str(&out).expect("probe results");
    probes
        .iter()
        .zip(results)
        .map(|(p, r)| {
            let reply = (r["ok"] == json!(true)).then(|| r["reply"].as_str().unwrap().to_owned());
            (*p, reply, r["err"].as_str().unwrap_or("").to_owned())
        })
        .collect()
}

/// What the server namespace saw for `token`: (proto, addr, port).
fn seen(log: &std::path::Path, token: &str) -> BTreeSet<(String, String, u16)> {
    hits(log)
        .into_iter()
        .filter(|h| h.data.starts_with(&format!("{token} ")))
        .map(|h| (h.proto, h.addr, h.port))
        .collect()
}

fn expected(probes: &[Probe]) -> BTreeSet<(String, String, u16)> {
    probes
        .iter()
        .map(|(p, a, port)| ((*p).to_owned(), (*a).to_owned(), *port))
        .collect()
}

fn connected(reply: &Option<String>, probe: &Probe) -> bool {
    match (probe.0, reply) {
        ("udp", Some(_)) => true,
        (_, Some(r)) => r.contains(&format!("UPSTREAM {} {}", probe.1, probe.2)),
        (_, None) => false,
    }
}

fn list_table(client: &Netns) -> String {
    ok(&mut client.exec("nft", &["list", "table", "inet", "capgate"]))
}

#[test]
fn nftables_egress_allowlist() {
    if !require(
        "nftables_egress_allowlist",
        &["nft", "ip", "unshare", "python3", "bwrap", "setpriv"],
        true,
    ) {
        return;
    }
    let manifest = fixture("fixtures/enforcement/nftables.json");
    let artifact = compile("nftables.json", &manifest, "nftables", false, &[]);
    let ruleset = config(&artifact);
    let dir = TempDir::new("nft");
    let rules = dir.file("capgate.nft", &ruleset, 0o644);
    let log = dir.file("server.log", "", 0o666);
    let mut c = Checks::new();

    // The hostname is listed as unenforceable and emits nothing.
    let capgate::artifact::Artifact::Config(cfg) = &artifact else {
        unreachable!()
    };
    c.check(
        "hostname listed in unenforceable[]",
        cfg.unenforceable.iter().any(|u| {
            u.capabilities
                .iter()
                .any(|k| k.capability.contains("api.example.com"))
        }),
        || "api.example.com missing".to_owned(),
    );
    c.check(
        "hostname not in the ruleset",
        !ruleset.contains("api.example.com"),
        || ruleset.clone(),
    );

    // Syntax check where nothing can resolve names (see the notes on nft -c).
    ok(&mut cmd("unshare", &["-n", "nft", "-c", "-f", &s(&rules)]));

    let client = Netns::new();
    let mut server = Netns::new();
    veth(&client, &server);
    let mut endpoints: Vec<String> = PORTS
        .iter()
        .flat_map(|p| [format!("tcp:0.0.0.0:{p}"), format!("tcp:[::]:{p}")])
        .collect();
    endpoints.push("udp:11.0.0.2:8443".to_owned());
    let proc = serve("nft servers", &server.exec_prefix(), &log, &endpoints);
    server.adopt(proc);

    let every: Vec<Probe> = [ALLOWED, DENIED_PUBLIC, DENIED_SPECIAL].concat();

    // ---- baseline without the ruleset: every destination answers (control
    // for every drop below).
    for (p, reply, err) in probe_all(&client, &every, "base") {
        c.check(
            &format!("baseline: {p:?} reachable"),
            connected(&reply, &p),
            || err.clone(),
        );
    }
    c.eq(
        "baseline: server saw every probe",
        seen(&log, "base"),
        expected(&every),
    );

    // ---- the ruleset
    ok(&mut client.exec("nft", &["-f", &s(&rules)]));
    let first = list_table(&client);
    for (p, reply, err) in probe_all(&client, &every, "enforced") {
        let want = ALLOWED.contains(&p);
        let got = connected(&reply, &p);
        c.check(
            &format!(
                "ruleset: {p:?} {}",
                if want { "allowed" } else { "dropped" }
            ),
            got == want,
            || format!("connected={got} err={err}"),
        );
    }
    c.eq(
        "ruleset: server saw exactly the declared endpoints",
        seen(&log, "enforced"),
        expected(ALLOWED),
    );

    // ---- loading again replaces, never duplicates
    ok(&mut client.exec("nft", &["-f", &s(&rules)]));
    let second = list_table(&client);
    c.eq("second load lists the same table", &second, &first);
    let tables = ok(&mut client.exec("nft", &["list", "tables"]));
    c.eq("one table", tables.trim(), "table inet capgate");

    // ---- a sandboxed process (capgate's own bwrap argv, compiled for a
    // broker with inherit_netns=true so it keeps this namespace) cannot undo
    // the ruleset, and its traffic obeys it.
    let sandboxed = compile(
        "nftables.json",
        &manifest,
        "bwrap",
        false,
        &[("inherit_netns", "true")],
    );
    let (sandbox, _) = argv(&sandboxed);
    assert!(!sandbox.iter().any(|a| a == "--unshare-net"));
    // Launched as documented: `ip netns exec NS LAUNCHER bwrap ARGV`.
    let mut launched = launcher(&sandboxed);
    launched.push("bwrap".to_owned());
    let mut bw = client.exec(&launched[0], &[]);
    bw.args(&launched[1..]);
    bw.args(&sandbox);
    bw.args(["--", "/usr/bin/python3", "-c", PROBE_PY, "facts"]);
    bw.arg(
        json!({
            "run": [["nft", "flush", "ruleset"], ["nft", "delete", "table", "inet", "capgate"]],
            "connect": [["tcp", "11.0.0.2", 8443, "sandbox allowed"], ["tcp", "11.0.0.4", 8443, "sandbox denied"]],
            "timeout": 1.0,
        })
        .to_string(),
    );
    let out = run(&mut bw, Duration::from_secs(20));
    let f: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "sandbox probe failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    c.check(
        "sandbox: nft flush ruleset refused",
        f["run"][0]["rc"] != json!(0),
        || format!("{}", f["run"][0]),
    );
    c.check(
        "sandbox: nft delete table refused",
        f["run"][1]["rc"] != json!(0),
        || format!("{}", f["run"][1]),
    );
    c.eq(
        "sandbox: table untouched",
        list_table(&client),
        first.clone(),
    );
    c.check(
        "sandbox: declared endpoint reachable",
        f["connect"][0]["reply"]
            .as_str()
            .is_some_and(|r| r.contains("UPSTREAM 11.0.0.2 8443")),
        || format!("{}", f["connect"][0]),
    );
    c.check(
        "sandbox: undeclared endpoint dropped",
        f["connect"][1]["ok"] == json!(false),
        || format!("{}", f["connect"][1]),
    );

    // ---- defence in depth: even if something appended an accept-all to the
    // chain, special ranges stay dropped (control: public ones now pass).
    ok(&mut client.exec(
        "nft",
        &["add", "rule", "inet", "capgate", "egress", "accept"],
    ));
    let relaxed: Vec<Probe> = [DENIED_SPECIAL, &DENIED_PUBLIC[..5]].concat();
    for (p, reply, err) in probe_all(&client, &relaxed, "appended") {
        let want = !DENIED_SPECIAL.contains(&p);
        let got = connected(&reply, &p);
        let label = if want {
            "control: public now reachable"
        } else {
            "special still dropped"
        };
        c.check(
            &format!("appended accept: {p:?} {label}"),
            got == want,
            || format!("connected={got} err={err}"),
        );
    }

    // ---- control for the flush probe: the same command as root outside the
    // sandbox does remove the table.
    ok(&mut client.exec("nft", &["flush", "ruleset"]));
    let tables = ok(&mut client.exec("nft", &["list", "tables"]));
    c.eq(
        "control: root outside the sandbox can flush",
        tables.trim(),
        "",
    );
    c.finish("nftables_egress_allowlist");
}

// ------------------------------------------------------------ neighbour discovery

/// Sniffs the server end of the veth (AF_PACKET: sees every frame that
/// arrives, whether or not the server's IP stack would accept it) and logs one
/// JSON line per ICMPv6 packet carrying the marker `CGND`: ICMPv6 type, hop
/// limit, destination and the marker text.
const ND_SNIFF_PY: &str = r#"
import json, socket, sys
dev, log = sys.argv[1], open(sys.argv[2], "a", buffering=1)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86dd))
s.bind((dev, 0))
print("READY", flush=True)
while True:
    f = s.recv(65535)
    ip = f[14:]
    if len(ip) < 48 or ip[6] != 58:
        continue
    i = ip.find(b"CGND")
    if i < 0:
        continue
    log.write(json.dumps({"type": ip[40], "hlim": ip[7],
        "dst": socket.inet_ntop(socket.AF_INET6, ip[24:40]),
        "marker": ip[i:i + 64].split(b"\0")[0].decode("latin-1")}) + "\n")
"#;

/// Sends raw ICMPv6 messages (needs CAP_NET_RAW, as root in the client
/// namespace): argv[1] is the interface, argv[2] a JSON list of
/// [type, destination, hop limit, marker]. The body is a neighbour-discovery
/// shaped message (4 reserved bytes, then for NS/NA a target address) followed
/// by the marker. Prints a JSON list of "sent" / the errno name.
const ND_SEND_PY: &str = r#"
import errno, json, socket, sys
ifindex = socket.if_nametoindex(sys.argv[1])
out = []
for typ, dst, hops, marker in json.loads(sys.argv[2]):
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, hops)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, hops)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
    body = bytes([typ, 0, 0, 0, 0, 0, 0, 0])
    if typ in (135, 136):
        body += socket.inet_pton(socket.AF_INET6, dst)
    body += marker.encode() + b"\0"
    scope = ifindex if dst.lower().startswith(("fe8", "fe9", "fea", "feb", "ff02")) else 0
    try:
        s.sendto(body, (dst, 0, 0, scope))
        out.append("sent")
    except OSError as e:
        out.append(errno.errorcode.get(e.errno, str(e)))
    s.close()
print(json.dumps(out))
"#;

/// One ND-typed ICMPv6 message: (type, destination, hop limit, label).
type NdProbe = (u8, &'static str, u8, &'static str);

/// The server's link-local address is filled in at run time (`LL`).
#[rustfmt::skip]
const ND_ATTACKS: &[NdProbe] = &[
    (135, "2a00:cafe::3", 255, "NS to an undeclared global address"),
    (136, "2a00:cafe::3", 255, "NA to an undeclared global address"),
    (133, "2a00:cafe::3", 255, "RS to an undeclared global address"),
    (135, "fd00:cafe::9", 255, "NS to a special (ULA) address"),
    (136, "fd00:cafe::9", 255, "NA to a special (ULA) address"),
    (135, "2a00:cafe::2", 255, "NS to the declared peer's global address"),
    (133, "ff02::2", 64, "RS to all-routers with hop limit 64"),
    (135, "LL", 1, "NS to the peer's link-local address with hop limit 1"),
    (136, "ff05::1", 255, "NA to site-scope multicast"),
    (135, "ff0e::1", 255, "NS to global-scope multicast"),
    (137, "LL", 255, "redirect to the peer's link-local address"),
    (134, "ff02::1", 255, "RA to all-nodes"),
];

/// Link-scope neighbour discovery the ruleset must keep.
#[rustfmt::skip]
const ND_KEPT: &[NdProbe] = &[
    (135, "ff02::1:ff00:2", 255, "NS to the peer's solicited-node group"),
    (135, "LL", 255, "NS (unreachability probe) to the peer's link-local address"),
    (136, "LL", 255, "NA to the peer's link-local address"),
    (136, "ff02::1", 255, "unsolicited NA to all-nodes"),
    (133, "ff02::2", 255, "RS to all-routers"),
];

/// Sends `probes` from the client; returns, per probe, the sender's result and
/// whether the server end of the veth saw it (with the hop limit it was sent with).
fn nd_round(
    client: &Netns,
    dev: &str,
    log: &std::path::Path,
    ll: &str,
    probes: &[NdProbe],
    token: &str,
) -> Vec<(NdProbe, String, bool)> {
    let list: Vec<Value> = probes
        .iter()
        .enumerate()
        .map(|(i, (t, dst, h, _))| {
            let dst = if *dst == "LL" { ll } else { dst };
            json!([t, dst, h, format!("CGND {token} {i}")])
        })
        .collect();
    let out = ok(&mut client.exec(
        &python(),
        &["-c", ND_SEND_PY, dev, &Value::Array(list).to_string()],
    ));
    let sent: Vec<String> = serde_json::from_str(&out).expect("nd sender output");
    std::thread::sleep(Duration::from_millis(300));
    let seen: Vec<Value> = read(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("sniffer line"))
        .collect();
    probes
        .iter()
        .zip(sent)
        .enumerate()
        .map(|(i, (p, r))| {
            let marker = format!("CGND {token} {i}");
            let got = seen
                .iter()
                .any(|v| v["marker"] == json!(marker) && v["type"] == json!(p.0));
            (*p, r, got)
        })
        .collect()
}

/// The first link-local address of `dev` in `ns`.
fn link_local(ns: &Netns, dev: &str) -> String {
    let out = ns.ip(&["-6", "-o", "addr", "show", "dev", dev, "scope", "link"]);
    out.split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("no link-local address on {dev}: {out}"))
        .to_owned()
}

/// G4: the ND accept once let a process with CAP_NET_RAW send ND-typed ICMPv6
/// with any payload to any address, special ones included. Only link-scope
/// destinations with hop limit 255 may get ND now, and a declared IPv6 peer on
/// the link must still resolve (no pinned neighbour entries here).
#[test]
fn nftables_neighbour_discovery_is_link_scope_only() {
    if !require(
        "nftables_neighbour_discovery_is_link_scope_only",
        &["nft", "ip", "python3"],
        true,
    ) {
        return;
    }
    let manifest = fixture("fixtures/enforcement/nftables.json");
    let ruleset = config(&compile("nftables.json", &manifest, "nftables", false, &[]));
    let dir = TempDir::new("nftnd");
    let rules = dir.file("capgate.nft", &ruleset, 0o644);
    let sniff_log = dir.file("nd.log", "", 0o666);
    let tcp_log = dir.file("server.log", "", 0o666);
    let mut c = Checks::new();

    let client = Netns::new();
    let mut server = Netns::new();
    let id = short();
    let (ci, si) = (format!("vc{id}"), format!("vs{id}"));
    ok(&mut cmd(
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
        (&client, &ci, &["2a00:cafe::1/64", "fd00:cafe::1/64"][..]),
        (
            &server,
            &si,
            &["2a00:cafe::2/64", "2a00:cafe::3/64", "fd00:cafe::9/64"][..],
        ),
    ] {
        // No DAD for the global addresses: usable at once. Link-local
        // addresses and neighbour entries come from the kernel, as in real use.
        for a in addrs {
            ns.ip(&["addr", "add", a, "dev", dev, "nodad"]);
        }
        ns.ip(&["link", "set", dev, "up"]);
    }
    let ll = link_local(&server, &si);
    let sniffer = {
        let mut argv = server.exec_prefix();
        let py = python();
        argv.extend([
            py.as_str(),
            "-c",
            ND_SNIFF_PY,
            &si,
            sniff_log.to_str().unwrap(),
        ]);
        let mut cmd = cmd(argv[0], &argv[1..]);
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        let mut p = Proc::spawn("nd sniffer", &mut cmd);
        let mut ready = [0u8; 6];
        use std::io::Read as _;
        let got = p
            .child
            .stdout
            .take()
            .is_some_and(|mut o| o.read_exact(&mut ready).is_ok());
        assert!(got && &ready == b"READY\n", "nd sniffer did not start");
        p
    };
    server.adopt(sniffer);
    let endpoints = ["tcp:[::]:443".to_owned(), "tcp:[::]:6379".to_owned()];
    let tcp = serve("nd servers", &server.exec_prefix(), &tcp_log, &endpoints);
    server.adopt(tcp);
    // The server's link-local address may still be tentative (DAD); it
    // receives anyway, but wait until it is usable so replies flow too.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server
        .ip(&["-6", "addr", "show", "dev", &si, "tentative"])
        .contains("inet6")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }

    let every: Vec<NdProbe> = [ND_ATTACKS, ND_KEPT].concat();
    // ---- baseline without the ruleset: every message reaches the wire
    // (control: the sniffer sees what the ruleset must stop).
    for (p, sent, seen) in nd_round(&client, &ci, &sniff_log, &ll, &every, "base") {
        c.check(&format!("baseline: {} delivered", p.3), seen, || sent);
    }

    ok(&mut client.exec("nft", &["-f", &s(&rules)]));
    for (p, sent, seen) in nd_round(&client, &ci, &sniff_log, &ll, &every, "enforced") {
        let keep = ND_KEPT.contains(&p);
        let label = if keep { "still delivered" } else { "dropped" };
        c.check(&format!("ruleset: {} {label}", p.3), seen == keep, || {
            format!("sender: {sent}, server saw it: {seen}")
        });
    }

    // ---- defence in depth: with an accept-all appended to the chain,
    // ND-typed messages to other destinations are still dropped (control:
    // an ordinary TCP probe to an undeclared address now connects).
    ok(&mut client.exec(
        "nft",
        &["add", "rule", "inet", "capgate", "egress", "accept"],
    ));
    for (p, sent, seen) in nd_round(&client, &ci, &sniff_log, &ll, ND_ATTACKS, "appended") {
        c.check(
            &format!("appended accept: {} still dropped", p.3),
            !seen,
            || format!("sender: {sent}"),
        );
    }
    let control = probe_all(&client, &[("tcp", "2a00:cafe::3", 443)], "nd-appended");
    c.check(
        "appended accept: control: undeclared 2a00:cafe::3:443 now connects",
        connected(&control[0].1, &control[0].0),
        || control[0].2.clone(),
    );
    ok(&mut client.exec("nft", &["-f", &s(&rules)]));

    // ---- a declared IPv6 peer on the link resolves from scratch: flush the
    // neighbour caches on both ends, then connect (twice, flushing between).
    for round in ["fresh", "reflushed"] {
        client.ip(&["-6", "neigh", "flush", "dev", &ci]);
        server.ip(&["-6", "neigh", "flush", "dev", &si]);
        let probes: &[Probe] = &[("tcp", "2a00:cafe::2", 443), ("tcp", "2a00:cafe::3", 443)];
        let token = format!("nd-{round}");
        let results = probe_all(&client, probes, &token);
        c.check(
            &format!(
                "{round}: declared peer 2a00:cafe::2:443 reachable (neighbour resolution works)"
            ),
            connected(&results[0].1, &results[0].0),
            || results[0].2.clone(),
        );
        c.check(
            &format!("{round}: undeclared 2a00:cafe::3:443 dropped"),
            !connected(&results[1].1, &results[1].0),
            || format!("{:?}", results[1]),
        );
        c.eq(
            &format!("{round}: server saw only the declared peer"),
            seen(&tcp_log, &token),
            expected(&probes[..1]),
        );
    }
    c.finish("nftables_neighbour_discovery_is_link_scope_only");
}

/// Sends one IPv4/UDP frame through an AF_PACKET socket on DEV (bypassing the
/// inet hooks), and tries a raw inet socket; prints JSON.
const PACKET_SEND_PY: &str = r#"
import json, socket, struct, sys
dev, dmac, src, dst, port, data = sys.argv[1:7]
out = {}
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff)
    t += t >> 16
    return ~t & 0xffff
try:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((dev, 0))
    payload = data.encode()
    udp = struct.pack("!HHHH", 40000, int(port), 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    eth = bytes.fromhex(dmac.replace(":", "")) + b"\x02" * 6 + b"\x08\x00"
    s.send(eth + ip + udp)
    out["packet"] = "sent"
except OSError as e:
    out["packet"] = "!" + type(e).__name__ + ":" + str(e.errno)
try:
    r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    out["raw_inet"] = "opened"
except OSError as e:
    out["raw_inet"] = "!" + type(e).__name__ + ":" + str(e.errno)
print(json.dumps(out))
"#;

/// V3: the ruleset hooks `inet` output, which an AF_PACKET socket (CAP_NET_RAW)
/// bypasses: root in the namespace sends UDP to an undeclared public and a
/// special address (the control: docs/security.md states the ruleset holds
/// only for processes without CAP_NET_RAW/CAP_NET_ADMIN there). Without them
/// no packet socket opens: a uid with empty capability sets, capgate's bwrap
/// sandbox launched in the namespace (`inherit_netns=true`), and root of a
/// user namespace created inside (its capabilities do not reach a network
/// namespace it does not own).
#[test]
fn nftables_packet_sockets_need_cap_net_raw() {
    if !require(
        "nftables_packet_sockets_need_cap_net_raw",
        &["nft", "ip", "unshare", "python3", "bwrap", "setpriv"],
        true,
    ) {
        return;
    }
    let manifest = fixture("fixtures/enforcement/nftables.json");
    let ruleset = config(&compile("nftables.json", &manifest, "nftables", false, &[]));
    let dir = TempDir::new("nftpkt");
    let rules = dir.file("capgate.nft", &ruleset, 0o644);
    let log = dir.file("server.log", "", 0o666);
    let client = Netns::new();
    let mut server = Netns::new();
    let (ci, si) = veth(&client, &server);
    let smac = mac(&server, &si);
    let endpoints = ["udp:11.0.0.3:443".to_owned(), "udp:10.0.0.5:53".to_owned()];
    let proc = serve("packet servers", &server.exec_prefix(), &log, &endpoints);
    server.adopt(proc);
    ok(&mut client.exec("nft", &["-f", &s(&rules)]));

    let sandboxed = compile(
        "nftables.json",
        &manifest,
        "bwrap",
        false,
        &[("inherit_netns", "true")],
    );
    let (sandbox, _) = argv(&sandboxed);
    let mut bwrap: Vec<String> = launcher(&sandboxed);
    bwrap.push("bwrap".to_owned());
    bwrap.extend(sandbox);
    bwrap.push("--".to_owned());
    let unpriv: Vec<String> = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    let userns: Vec<String> = unpriv
        .iter()
        .cloned()
        .chain(["unshare".to_owned(), "-Ur".to_owned()])
        .collect();
    let mut c = Checks::new();
    let cases: [(&str, Vec<String>, bool); 4] = [
        ("root (CAP_NET_RAW) in the namespace", vec![], true),
        ("uid 65534 without capabilities", unpriv, false),
        ("capgate bwrap sandbox (inherit_netns)", bwrap, false),
        ("root of a user namespace inside", userns, false),
    ];
    for (i, (label, prefix, reaches)) in cases.iter().enumerate() {
        let mut sent = Vec::new();
        for (dst, port) in [("11.0.0.3", "443"), ("10.0.0.5", "53")] {
            let token = format!("V3-{i}-{dst}");
            let mut argv: Vec<String> = prefix.clone();
            argv.extend(
                [
                    "/usr/bin/python3",
                    "-c",
                    PACKET_SEND_PY,
                    &ci,
                    &smac,
                    "11.0.0.1",
                    dst,
                    port,
                    &token,
                ]
                .iter()
                .map(|a| (*a).to_owned()),
            );
            let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
            let out = run(&mut client.exec(&argv[0], &args), Duration::from_secs(20));
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            sent.push((
                token,
                stdout,
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        std::thread::sleep(Duration::from_millis(300));
        let got = hits(&log);
        for (token, stdout, stderr) in &sent {
            let received = got.iter().any(|h| h.data.trim_end() == token);
            c.eq(&format!("{label}: {token} received"), received, *reaches);
            if !reaches {
                c.check(
                    &format!("{label}: no packet or raw socket"),
                    stdout.contains("\"packet\": \"!PermissionError")
                        && stdout.contains("\"raw_inet\": \"!PermissionError"),
                    || format!("{stdout} {stderr}"),
                );
            }
        }
    }
    c.finish("nftables_packet_sockets_need_cap_net_raw");
}
