//! squid: the compiled squid.conf (with `private_instance=true`, so its own
//! pid file and logs), unchanged except for harness lines (hosts_file, the
//! test's DNS stub, a unique service name), run by the real squid and probed
//! with curl and raw CONNECT and plain proxy requests.
//!
//! Everything happens in one network namespace the test creates: squid, curl
//! and the upstream listeners. "Public" destinations cannot live on loopback
//! (127/8 is a special range capgate refuses), so the namespace's own `lo`
//! also carries single addresses from 11.0.0.0/24 and 2a00:cafe::/64 (outside
//! capgate's special ranges) next to private 10.0.0.x, fd00:cafe::9 and
//! 203.0.113.10 (squid's ACLs see only the destination address, never the
//! interface). The namespace has no route out. Names resolve through the
//! test's hosts_file (one address each) or, for names with several records,
//! through a DNS stub (dnsstub.py) on the namespace's own 127.0.0.1:53.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;

const LOCAL_ADDRS: &[&str] = &[
    "11.0.0.2/32",
    "11.0.0.3/32",
    "11.0.0.4/32",
    "11.0.0.5/32",
    "10.0.0.5/32",
    "10.0.0.9/32",
    "203.0.113.10/32",
    "2a00:cafe::2/128",
    "fd00:cafe::9/128",
    // egress-mix.json's literals, only ever inside this namespace
    "1.1.1.1/32",
    "2606:4700:4700::1111/128",
    "fd12:3456::7/128",
    // targets of the name-based attacks (F7, F8, F16): cloud metadata, the
    // Azure wire server, an undeclared public IPv6, and 127.0.0.1 spelled as
    // IPv4-compatible and IPv4-translated IPv6 addresses
    "169.254.169.254/32",
    "168.63.129.16/32",
    "2a00:cafe::3/128",
    "::7f00:1/128",
    "::ffff:0:7f00:1/128",
];
const UPSTREAM_PORTS: &[u16] = &[443, 853, 5432, 6379, 8443, 9443];
const HOSTS: &str = "\
11.0.0.2 allowed.test
11.0.0.3 other.test api.example.com api.github.com
11.0.0.4 sub.wild.test evilwild.test raw.githubusercontent.com
10.0.0.9 rebind.test
127.0.0.1 loopback.test
";

/// Names with several records, answered by dnsstub.py (A and AAAA in this
/// order): each mixes a declared IP literal with an address that must stay
/// unreachable.
const DNS: &str = r#"{
  "dual.test": ["127.0.0.1", "10.0.0.5"],
  "dual2.test": ["10.0.0.5", "127.0.0.1"],
  "meta2.test": ["10.0.0.5", "169.254.169.254"],
  "only5.test": ["10.0.0.5"],
  "v6loop.test": ["10.0.0.5", "::1"],
  "v6compat.test": ["10.0.0.5", "::7f00:1"],
  "rt203.test": ["127.0.0.1", "203.0.113.10"],
  "10.0.0.5": ["127.0.0.1", "10.0.0.5"],
  "11.0.0.5": ["11.0.0.3", "11.0.0.5"],
  "pubmix.test": ["11.0.0.3", "11.0.0.5"],
  "pubmix6.test": ["2a00:cafe::3", "2a00:cafe::2"],
  "v6dual.test": ["::1", "fd12:3456::7"],
  "azure.test": ["168.63.129.16"],
  "v6c.test": ["::7f00:1"],
  "v6t.test": ["::ffff:0:7f00:1"]
}"#;

/// DNS stub, see [`DNS`].
const DNSSTUB_PY: &str = include_str!("dnsstub.py");

/// Sends one CONNECT with exactly `authority` (no client-side normalisation,
/// unlike curl) and, once tunnelled, `GET /ID`; or, in mode `get`, one plain
/// proxy request `GET http://AUTHORITY/ID`. Prints the proxy's (or, for a
/// forwarded GET, the upstream's) status code, a newline and the upstream's body.
const RAW_CONNECT_PY: &str = r#"
import socket, sys
port, authority, ident, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = socket.create_connection(("127.0.0.1", port), timeout=5)
if mode == "get":
    s.sendall(("GET http://%s/%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (authority, ident, authority)).encode())
else:
    s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority)).encode())
def until(data, mark):
    while mark not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data
try:
    head, _, rest = until(b"", b"\r\n\r\n").partition(b"\r\n\r\n")
    code = head.split(b" ")[1].decode() if head.count(b" ") else "000"
    body = ""
    if mode == "get":
        reply = rest
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        body = reply.decode("latin-1") if code == "200" else ""
    elif code == "200":
        s.sendall(("GET /%s HTTP/1.0\r\n\r\n" % ident).encode())
        reply = rest
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        body = reply.partition(b"\r\n\r\n")[2].decode("latin-1")
except OSError as e:
    code, body = "000", "ERR %s" % e
print(code)
sys.stdout.write(body)
"#;

/// A running squid; SIGKILLed on drop (SIGTERM takes seconds), then its shm
/// segments are removed.
struct Squid {
    proc: Proc,
    service: String,
    run_dir: PathBuf,
}

impl Squid {
    /// The instance directory for `name`'s squid (`instance_dir`), created
    /// and owned by squid's user.
    fn instance_dir(dir: &Path, name: &str) -> PathBuf {
        let run_dir = dir.join(format!("run-{name}"));
        std::fs::create_dir(&run_dir).unwrap();
        ok(&mut cmd("chown", &["proxy:proxy", &s(&run_dir)]));
        run_dir
    }

    /// Writes the harness preamble plus the compiled config (compiled with
    /// `private_instance=true` and `instance_dir=run_dir`: the pid file and
    /// logs are the artifact's own), checks it with `squid -k parse` and starts
    /// squid inside `ns`, listening where the compiled `http_port` says.
    fn start(
        ns: &Netns,
        dir: &Path,
        name: &str,
        run_dir: PathBuf,
        compiled: &str,
        port: u16,
    ) -> Squid {
        let conf = format!(
            "# ---- test harness (tests/enforcement/squid.rs)\n\
             hosts_file {hosts}\n\
             dns_nameservers 127.0.0.1\n\
             cache_effective_user proxy\n\
             # ---- compiled by capgate, unchanged\n\
             {compiled}\n",
            hosts = s(&dir.join("hosts")),
        );
        let conf_path = dir.join(format!("{name}.conf"));
        std::fs::write(&conf_path, conf).unwrap();
        chmod(&conf_path, 0o644);
        let parse = run(
            &mut cmd("squid", &["-k", "parse", "-f", &s(&conf_path)]),
            Duration::from_secs(20),
        );
        assert!(
            parse.status.success(),
            "squid -k parse rejected the {name} config:\n{}",
            String::from_utf8_lossy(&parse.stderr)
        );
        let service = unique();
        let mut c = ns.exec("squid", &["-N", "-n", &service, "-f", &s(&conf_path)]);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut squid = Squid {
            proc: Proc::spawn(&format!("squid {name}"), &mut c),
            service,
            run_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        let want = format!("local=127.0.0.1:{port}");
        loop {
            let log = read(&squid.run_dir.join("cache.log")).unwrap_or_default();
            if log
                .lines()
                .any(|l| l.contains("Accepting HTTP") && l.contains(&want))
            {
                break squid;
            }
            squid.proc.assert_alive(&|| log.clone());
            assert!(Instant::now() < deadline, "squid {name} not ready:\n{log}");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
        if let Ok(entries) = std::fs::read_dir("/dev/shm") {
            for e in entries.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{}-", self.service))
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// What one curl request through the proxy gave.
#[derive(Debug)]
struct Answer {
    /// `%{http_connect}` for CONNECT, `%{http_code}` for a plain request.
    code: String,
    body: String,
}

/// `curl -x http://127.0.0.1:PORT [--proxytunnel] http://HOST:PORT/ID` inside
/// the namespace. The ID in the path lets the upstream log say which probe
/// reached it.
fn request(ns: &Netns, proxy: u16, host: &str, port: u16, id: &str, tunnel: bool) -> Answer {
    let url_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let url = format!("http://{url_host}:{port}/{id}");
    let proxy = format!("http://127.0.0.1:{proxy}");
    let fmt = if tunnel {
        "\n%{http_connect}"
    } else {
        "\n%{http_code}"
    };
    let mut args = vec!["-s", "-g", "--max-time", "5", "-x", &proxy, "-w", fmt];
    if tunnel {
        args.push("--proxytunnel");
    }
    args.push(&url);
    let out = run(&mut ns.exec("curl", &args), Duration::from_secs(10));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Answer {
        code: code.to_owned(),
        body: body.to_owned(),
    }
}

/// A CONNECT (or with `tunnel` false, a plain GET) for exactly `host:port`
/// (IPv6 hosts in brackets) sent by RAW_CONNECT_PY inside the namespace.
fn raw_request(ns: &Netns, proxy: u16, host: &str, port: u16, id: &str, tunnel: bool) -> Answer {
    let authority = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let out = run(
        &mut ns.exec(
            &python(),
            &[
                "-c",
                RAW_CONNECT_PY,
                &proxy.to_string(),
                &authority,
                id,
                if tunnel { "connect" } else { "get" },
            ],
        ),
        Duration::from_secs(10),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, body) = text.split_once('\n').unwrap_or((&text, ""));
    Answer {
        code: code.to_owned(),
        body: body.to_owned(),
    }
}

/// One CONNECT expectation: through proxy `proxy` to `host:port`; `reach` is
/// the upstream address that must answer, `None` for a denial.
struct Case {
    proxy: u16,
    label: &'static str,
    host: &'static str,
    port: u16,
    reach: Option<&'static str>,
}

const fn case(
    proxy: u16,
    label: &'static str,
    host: &'static str,
    port: u16,
    reach: Option<&'static str>,
) -> Case {
    Case {
        proxy,
        label,
        host,
        port,
        reach,
    }
}

/// squid.json on 3128, database.json on 3129, squid-private-only.json on
/// 3130, puppeteer.json (`net:connect:*`) on 3131, egress-mix.json on 3132.
#[rustfmt::skip]
const CASES: &[Case] = &[
    // squid.json: names, a wildcard and public literals
    case(3128, "declared host:port", "allowed.test", 8443, Some("11.0.0.2")),
    case(3128, "wildcard subdomain", "sub.wild.test", 8443, Some("11.0.0.4")),
    case(3128, "declared public IPv4 literal", "11.0.0.5", 443, Some("11.0.0.5")),
    case(3128, "declared public IPv6 literal", "2a00:cafe::2", 8443, Some("2a00:cafe::2")),
    case(3128, "declared host, undeclared port", "allowed.test", 9443, None),
    case(3128, "undeclared host", "other.test", 8443, None),
    case(3128, "name suffix outside the wildcard", "evilwild.test", 8443, None),
    case(3128, "IP literal of a declared name (dstdomain -n)", "11.0.0.2", 8443, None),
    case(3128, "IP literal of a wildcard-matched name (dstdomain -n)", "11.0.0.4", 8443, None),
    case(3128, "declared IPv4 literal, other port", "11.0.0.5", 8443, None),
    case(3128, "declared IPv6 literal, other port", "2a00:cafe::2", 9443, None),
    case(3128, "declared name resolving to 10.0.0.9 (rebinding)", "rebind.test", 8443, None),
    case(3128, "declared name resolving to 127.0.0.1 (rebinding)", "loopback.test", 8443, None),
    case(3128, "raw private IPv4", "10.0.0.9", 8443, None),
    case(3128, "raw loopback", "127.0.0.1", 8443, None),
    case(3128, "raw private IPv6", "fd00:cafe::9", 8443, None),
    case(3128, "IPv4-mapped IPv6 private", "::ffff:10.0.0.9", 8443, None),
    case(3128, "IPv4-mapped IPv6 loopback", "::ffff:127.0.0.1", 8443, None),
    case(3128, "undeclared public IPv4", "11.0.0.3", 443, None),
    // database.json: private and special-range literals, exactly their port
    case(3129, "declared private IP:port", "10.0.0.5", 5432, Some("10.0.0.5")),
    case(3129, "declared private IP, other port", "10.0.0.5", 443, None),
    case(3129, "declared special-range IP:port", "203.0.113.10", 8443, Some("203.0.113.10")),
    case(3129, "declared special-range IP, other port", "203.0.113.10", 443, None),
    case(3129, "other private IP, declared port", "10.0.0.9", 5432, None),
    case(3129, "declared host:port", "api.example.com", 443, Some("11.0.0.3")),
    case(3129, "declared host, undeclared port", "api.example.com", 8443, None),
    // squid-private-only.json: the controls for the private denials above
    case(3130, "control: declared 10.0.0.9:8443 reachable", "10.0.0.9", 8443, Some("10.0.0.9")),
    case(3130, "control: declared 127.0.0.1:8443 reachable", "127.0.0.1", 8443, Some("127.0.0.1")),
    case(3130, "declared private IP, other port", "10.0.0.9", 9443, None),
    case(3130, "undeclared public IP (needs deny all)", "11.0.0.2", 8443, None),
    case(3130, "undeclared host (needs deny all)", "allowed.test", 8443, None),
    // puppeteer.json: any host, any port, but never a special range
    case(3131, "any host: public name, any port", "other.test", 9443, Some("11.0.0.3")),
    case(3131, "any host: public literal", "11.0.0.2", 443, Some("11.0.0.2")),
    case(3131, "any host: name resolving to 10.0.0.9 (rebinding)", "rebind.test", 8443, None),
    case(3131, "any host: name resolving to 127.0.0.1 (rebinding)", "loopback.test", 8443, None),
    case(3131, "any host: raw private IPv4", "10.0.0.9", 8443, None),
    case(3131, "any host: raw special-range IPv4", "203.0.113.10", 8443, None),
    case(3131, "any host: raw private IPv6", "fd00:cafe::9", 8443, None),
    case(3131, "any host: IPv4-mapped IPv6 private", "::ffff:10.0.0.9", 8443, None),
    // egress-mix.json: a name on any port, a wildcard, literals, a private IPv6
    case(3132, "name declared without port: any port", "api.github.com", 9443, Some("11.0.0.3")),
    case(3132, "wildcard subdomain", "raw.githubusercontent.com", 443, Some("11.0.0.4")),
    case(3132, "wildcard subdomain, undeclared port", "raw.githubusercontent.com", 8443, None),
    case(3132, "declared IPv4 literal", "1.1.1.1", 853, Some("1.1.1.1")),
    case(3132, "declared IPv4 literal, other port", "1.1.1.1", 443, None),
    case(3132, "declared IPv6 literal", "2606:4700:4700::1111", 443, Some("2606:4700:4700::1111")),
    case(3132, "declared IPv6 literal, other port", "2606:4700:4700::1111", 853, None),
    case(3132, "declared private IPv6:port", "fd12:3456::7", 6379, Some("fd12:3456::7")),
    case(3132, "declared private IPv6, other port", "fd12:3456::7", 443, None),
    case(3132, "undeclared host", "other.test", 443, None),
];

/// Names and spellings that must never pass an allow for an IP literal (F7,
/// F8), and special addresses that `*` must never reach (F16); sent verbatim
/// by [`raw_request`]. Names resolve through [`DNS`].
#[rustfmt::skip]
const RAW_CASES: &[Case] = &[
    // database.json: declared special-range 10.0.0.5:5432 and 203.0.113.10:8443
    case(3129, "F7: name with A [127.0.0.1, 10.0.0.5]", "dual.test", 5432, None),
    case(3129, "F7: name with A [10.0.0.5, 127.0.0.1]", "dual2.test", 5432, None),
    case(3129, "F7: name with A [10.0.0.5, 169.254.169.254]", "meta2.test", 5432, None),
    case(3129, "F7: name resolving only to the declared 10.0.0.5", "only5.test", 5432, None),
    case(3129, "F7: name with A 10.0.0.5 and AAAA ::1", "v6loop.test", 5432, None),
    case(3129, "F7: name with A 10.0.0.5 and AAAA ::7f00:1", "v6compat.test", 5432, None),
    case(3129, "F7: name with A [127.0.0.1, 203.0.113.10]", "rt203.test", 8443, None),
    // squid drops a trailing dot before it parses the host, so this is the
    // literal (no DNS: the stub's "10.0.0.5" record starts with 127.0.0.1)
    case(3129, "squid strips the trailing dot: the literal itself", "10.0.0.5.", 5432, Some("10.0.0.5")),
    case(3129, "control: the declared literal itself", "10.0.0.5", 5432, Some("10.0.0.5")),
    case(3129, "control: the declared special literal itself", "203.0.113.10", 8443, Some("203.0.113.10")),
    // squid.json: declared public 11.0.0.5:443 and 2a00:cafe::2:8443
    case(3128, "F8: name with A [11.0.0.3, 11.0.0.5]", "pubmix.test", 443, None),
    case(3128, "F8: name with AAAA [2a00:cafe::3, 2a00:cafe::2]", "pubmix6.test", 8443, None),
    case(3128, "squid strips the trailing dot: the literal itself", "11.0.0.5.", 443, Some("11.0.0.5")),
    case(3128, "control: the declared IPv4 literal itself", "11.0.0.5", 443, Some("11.0.0.5")),
    case(3128, "control: the declared IPv6 literal, other spelling", "[2A00:CAFE:0::2]", 8443, Some("2a00:cafe::2")),
    // userinfo in front of an undeclared host (plain GET: the host is other.test)
    case(3128, "userinfo naming the declared host:port", "allowed.test:8443@other.test", 8443, None),
    case(3128, "declared name, upper case", "ALLOWED.TEST", 8443, Some("11.0.0.2")),
    // egress-mix.json: declared private IPv6 fd12:3456::7:6379
    case(3132, "F7: name with AAAA [::1, fd12:3456::7]", "v6dual.test", 6379, None),
    case(3132, "control: the declared IPv6 literal itself", "fd12:3456::7", 6379, Some("fd12:3456::7")),
    case(3129, "control: the declared literal, IPv4-mapped: that address", "[::ffff:10.0.0.5]", 5432, Some("10.0.0.5")),
    case(3129, "control: the declared literal as one decimal number: that address", "167772165", 5432, Some("10.0.0.5")),
    // puppeteer.json (`*`): special ranges stay unreachable (F16)
    case(3131, "F16: Azure wire server literal", "168.63.129.16", 443, None),
    case(3131, "F16: name resolving to the Azure wire server", "azure.test", 443, None),
    case(3131, "F16: IPv4-compatible ::7f00:1 literal", "::7f00:1", 443, None),
    case(3131, "F16: IPv4-compatible literal, dotted", "[::127.0.0.1]", 443, None),
    case(3131, "F16: IPv4-translated ::ffff:0:7f00:1 literal", "::ffff:0:7f00:1", 443, None),
    case(3131, "F16: name with AAAA ::7f00:1", "v6c.test", 443, None),
    case(3131, "F16: name with AAAA ::ffff:0:7f00:1", "v6t.test", 443, None),
    case(3131, "control: any host reaches a public literal", "11.0.0.3", 443, Some("11.0.0.3")),
];

#[test]
fn squid_connect_allowlist() {
    if !require(
        "squid_connect_allowlist",
        &["squid", "curl", "ip", "python3"],
        true,
    ) {
        return;
    }
    let dir = TempDir::new("squid");
    std::fs::write(dir.join("hosts"), HOSTS).unwrap();
    chmod(&dir.join("hosts"), 0o644);
    let log = dir.file("upstream.log", "", 0o666);

    let mut ns = Netns::new();
    for a in LOCAL_ADDRS {
        ns.ip(&["addr", "add", a, "dev", "lo"]);
    }
    let endpoints: Vec<String> = UPSTREAM_PORTS
        .iter()
        .flat_map(|p| [format!("tcp:0.0.0.0:{p}"), format!("tcp:[::]:{p}")])
        .collect();
    let upstream = serve("squid upstreams", &ns.exec_prefix(), &log, &endpoints);
    ns.adopt(upstream);
    let dns_log = dir.join("dns.log");
    let dns = dnsstub(&ns, &dns_log);
    ns.adopt(dns);

    #[rustfmt::skip]
    let configs = [
        ("names", "fixtures/enforcement/squid.json", false, 3128),
        ("database", "fixtures/manifests/database.json", true, 3129),
        ("private", "fixtures/enforcement/squid-private-only.json", false, 3130),
        ("any", "fixtures/manifests/puppeteer.json", true, 3131),
        ("mix", "fixtures/manifests/egress-mix.json", false, 3132),
    ];
    // The instance directories lie outside /tmp, which puppeteer declares
    // writable: a writable path holding one is OPTION_IN_WRITABLE.
    let runs = TempDir::new_in(Path::new("/run"), "squid");
    let mut squids = Vec::new();
    for (name, path, permissive, port) in configs {
        let listen = format!("127.0.0.1:{port}");
        let run_dir = Squid::instance_dir(&runs.path, name);
        let artifact = compile(
            path,
            &fixture(path),
            "squid",
            permissive,
            &[
                ("listen", &listen),
                ("private_instance", "true"),
                ("instance_dir", &s(&run_dir)),
            ],
        );
        let conf = config(&artifact);
        squids.push(Squid::start(&ns, &dir.path, name, run_dir, &conf, port));
    }

    let mut c = Checks::new();
    // Every case twice: as a CONNECT tunnel and as a plain proxy GET (a
    // declared host:port allows both; everything else refuses both).
    let probes: Vec<(&Case, bool, bool)> = [true, false]
        .into_iter()
        .flat_map(|tunnel| {
            let curl = CASES.iter().map(move |k| (k, false, tunnel));
            let raw = RAW_CASES.iter().map(move |k| (k, true, tunnel));
            curl.chain(raw)
        })
        .collect();
    let answers: Vec<Answer> = thread::scope(|sc| {
        let handles: Vec<_> = probes
            .iter()
            .enumerate()
            .map(|(i, &(k, raw, tunnel))| {
                let ns = &ns;
                let id = format!("probe{i}");
                sc.spawn(move || {
                    if raw {
                        raw_request(ns, k.proxy, k.host, k.port, &id, tunnel)
                    } else {
                        request(ns, k.proxy, k.host, k.port, &id, tunnel)
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Under `*` (3131), a refused name proves nothing unless squid resolved
    // it: every name case must have been answered by the stub with records.
    // Every other proxy must refuse these undeclared names without looking
    // them up at all (no DNS channel out of the sandbox, R1).
    let queries = std::fs::read_to_string(&dns_log).unwrap_or_default();
    for k in RAW_CASES
        .iter()
        .filter(|k| k.host.ends_with(".test") && !k.host.contains('@'))
    {
        let resolved = queries.lines().any(|l| {
            l.starts_with(&format!("{} type=", k.host))
                && l.contains("rcode=0")
                && !l.ends_with("-> []")
        });
        let looked_up = queries
            .lines()
            .any(|l| l.starts_with(&format!("{} type=", k.host)));
        let (what, ok) = if k.proxy == 3131 {
            ("squid resolved", resolved)
        } else {
            ("squid never looked up", !looked_up)
        };
        c.check(
            &format!(
                "[{}] {}: {what} {} through the stub",
                k.proxy, k.label, k.host
            ),
            ok,
            || queries.clone(),
        );
    }
    let hits = hits(&log);
    for (i, (&(k, _, tunnel), a)) in probes.iter().zip(&answers).enumerate() {
        let id = format!("probe{i}");
        let reached: Vec<&Hit> = hits
            .iter()
            .filter(|h| h.data.starts_with(&format!("GET /{id} ")))
            .collect();
        let how = if tunnel { "CONNECT" } else { "plain GET" };
        let label = format!("[{}] {how} {} {}:{}", k.proxy, k.label, k.host, k.port);
        match k.reach {
            Some(addr) => {
                c.eq(&format!("{label}: 200"), a.code.as_str(), "200");
                c.eq(
                    &format!("{label}: upstream answered"),
                    a.body.trim_end(),
                    format!("UPSTREAM {addr} {}", k.port).as_str(),
                );
                c.check(
                    &format!("{label}: upstream received the request"),
                    reached.len() == 1 && reached[0].addr == addr && reached[0].bytes > 0,
                    || format!("{reached:?}"),
                );
            }
            None => {
                c.eq(&format!("{label}: 403"), a.code.as_str(), "403");
                c.check(
                    &format!("{label}: nothing reached an upstream"),
                    reached.is_empty(),
                    || format!("{reached:?}"),
                );
            }
        }
    }
    // squid's own cache manager is never reachable through an allow, not even
    // with `*` (3131) and by squid's own names.
    for (proxy, host) in [
        (3131, "capgate-egress"),
        (3131, "127.0.0.1"),
        (3131, "localhost"),
        (3128, "capgate-egress"),
    ] {
        let url = format!("http://{host}:{proxy}/squid-internal-mgr/menu");
        let out = run(
            &mut ns.exec(
                "curl",
                &[
                    "-s",
                    "--max-time",
                    "5",
                    "-x",
                    &format!("http://127.0.0.1:{proxy}"),
                    "-w",
                    "\n%{http_code}",
                    &url,
                ],
            ),
            Duration::from_secs(10),
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let code = text.rsplit('\n').next().unwrap_or("");
        c.eq(
            &format!("[{proxy}] cache manager {url} refused"),
            code,
            "403",
        );
    }
    // private_instance: each squid wrote its own pid file and its access log in
    // the `capgate` logformat (what `capgate run` reads denials from).
    for sq in &squids {
        let pid = read(&sq.run_dir.join("squid.pid")).unwrap_or_default();
        c.eq(
            &format!("{}: pid file in instance_dir", s(&sq.run_dir)),
            pid.trim(),
            sq.proc.child.id().to_string().as_str(),
        );
    }
    let access = read(&squids[0].run_dir.join("access.log")).unwrap_or_default();
    for want in [
        " TCP_DENIED/403 CONNECT other.test:8443",
        " TCP_DENIED/403 GET http://other.test:8443/probe",
        " TCP_TUNNEL/200 CONNECT allowed.test:8443",
        " TCP_MISS/200 GET http://allowed.test:8443/probe",
    ] {
        c.check(
            &format!("access.log has a line with {want:?}"),
            access.lines().any(|l| l.contains(want)),
            || access.clone(),
        );
    }
    drop(squids);
    c.finish("squid_connect_allowlist");
}

/// Starts dnsstub.py on the namespace's 127.0.0.1:53 with [`DNS`] and waits
/// for READY.
fn dnsstub(ns: &Netns, log: &Path) -> Proc {
    use std::io::Read as _;
    let mut c = ns.exec(&python(), &["-c", DNSSTUB_PY, "127.0.0.1", DNS, &s(log)]);
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut proc = Proc::spawn("dns stub", &mut c);
    let mut ready = [0u8; 6];
    let got = proc
        .child
        .stdout
        .take()
        .is_some_and(|mut o| o.read_exact(&mut ready).is_ok());
    assert!(got && &ready == b"READY\n", "dns stub did not start");
    proc
}
