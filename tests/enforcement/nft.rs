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
];

fn prefix_len_stripped(a: &str) -> &str {
    a.split('/').next().unwrap()
}

/// Joins two namespaces with a veth, addresses both ends and pins every
/// neighbour entry (no ARP/ND round trips, no DAD: no first-packet stalls).
fn veth(client: &Netns, server: &Netns) {
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
