//! Denied requests as the capabilities that would allow them, read from the
//! run's squid access log (the squid target's `capgate` logformat:
//! `TIME CLIENT RESULT/STATUS METHOD URL`).
//!
//! Only the sandbox's own requests count (the client address is the
//! sandbox's end of the veth); only exact `net:connect:HOST:PORT`
//! capabilities are suggested, never a wildcard, never a special-purpose
//! address (loopback, link-local, metadata, private: declaring one is a
//! decision for a reviewer, not a fix); a refused destination the manifest
//! already declares is reported as such, with no suggestion.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::artifact::Egress;

/// At most this many distinct destinations are reported; the rest are
/// counted (a server that probes thousands of addresses must not turn the
/// run's exit into minutes of work and pages of stderr).
pub const MAX_REPORTED: usize = 200;

/// One distinct refused destination.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Denial {
    /// `host:port` as squid saw it (names lowercased, IPv6 in brackets).
    pub destination: String,
    /// The capability that would allow it; absent when none is suggested
    /// (see `why`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
    /// Why there is no suggestion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// How many requests were refused.
    pub requests: usize,
}

impl Denial {
    /// The stderr line for it.
    pub fn line(&self) -> String {
        let count = format!(
            "{} request{}",
            self.requests,
            if self.requests == 1 { "" } else { "s" }
        );
        match (&self.suggestion, &self.why) {
            (Some(cap), _) => format!(
                "denied {} ({count}): to allow it, declare {cap}",
                self.destination
            ),
            (None, why) => format!(
                "denied {} ({count}): {}",
                self.destination,
                why.as_deref().unwrap_or("not suggested")
            ),
        }
    }
}

const DECLARED: &str = "although declared: squid refused it for the address the name resolved to (a special-purpose address: private, loopback, link-local, metadata, ...; never allowed for a name) or for its scheme (only CONNECT and http:// or https:// URLs pass)";
const SPECIAL: &str = "a special-purpose address (private, loopback, link-local, metadata, ...): not suggested; declare it only if the server must reach exactly that address";

/// `(host, port)` of a logged request URL: `host:port` for CONNECT,
/// `http://host[:port]/...` for a plain proxy request.
fn destination(method: &str, url: &str) -> Option<(String, u16)> {
    if method == "CONNECT" {
        return split_authority(url, None);
    }
    let (rest, port) = url
        .strip_prefix("http://")
        .map(|r| (r, 80))
        .or_else(|| url.strip_prefix("https://").map(|r| (r, 443)))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    split_authority(&rest[..end], Some(port))
}

fn split_authority(authority: &str, default_port: Option<u16>) -> Option<(String, u16)> {
    let authority = authority.rsplit('@').next()?;
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return None,
        };
        (h.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0)?,
        None => default_port?,
    };
    Some((host.to_ascii_lowercase(), port))
}

/// Whether `host:port` is declared by one of `egress` (exact host, `*.domain`
/// below the domain, or `*`; a missing declared port is any port).
fn declared(host: &str, port: u16, egress: &[Egress]) -> bool {
    egress.iter().any(|e| {
        let pattern = e.host.to_ascii_lowercase();
        let host_ok = pattern == "*"
            || pattern == host
            || pattern
                .strip_prefix("*.")
                .is_some_and(|d| host.len() > d.len() + 1 && host.ends_with(&format!(".{d}")));
        host_ok && e.port.is_none_or(|p| p == port)
    })
}

/// The capability for `host:port`, if capgate's own grammar accepts it.
fn capability(host: &str, port: u16) -> Option<String> {
    // Never a wildcard, whatever a client sent.
    if host.contains('*') {
        return None;
    }
    let cap = if host.contains(':') {
        format!("net:connect:\"{host}\":{port}")
    } else {
        format!("net:connect:{host}:{port}")
    };
    crate::syntax::parse_capability(&cap).ok().map(|_| cap)
}

/// What the report says about one new destination; `None`: nothing a
/// manifest could name.
fn judge(host: &str, port: u16, egress: &[Egress]) -> Option<Denial> {
    let (suggestion, why) = if declared(host, port, egress) {
        (None, Some(DECLARED.to_owned()))
    } else if host.parse::<IpAddr>().is_ok_and(crate::ir::is_special) {
        (None, Some(SPECIAL.to_owned()))
    } else {
        (Some(capability(host, port)?), None)
    };
    Some(Denial {
        destination: if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        },
        suggestion,
        why,
        requests: 0,
    })
}

/// The refused requests of the log's client `client` (every client when
/// `None`): the distinct destinations in first-seen order, at most
/// [`MAX_REPORTED`], and how many more distinct ones there were.
pub fn denials(log: &str, egress: &[Egress], client: Option<&str>) -> (Vec<Denial>, usize) {
    let mut out: Vec<Denial> = Vec::new();
    // destination -> index in `out`, or None for one over the limit or unnamable.
    let mut seen: HashMap<(String, u16), Option<usize>> = HashMap::new();
    let mut more = 0;
    for line in log.lines() {
        let mut w = line.split_whitespace();
        let (Some(_time), Some(from), Some(result), Some(method), Some(url)) =
            (w.next(), w.next(), w.next(), w.next(), w.next())
        else {
            continue;
        };
        if !result.starts_with("TCP_DENIED/") || client.is_some_and(|c| c != from) {
            continue;
        }
        let Some(dest) = destination(method, url) else {
            continue;
        };
        let slot = seen.entry(dest).or_insert_with_key(|(host, port)| {
            if out.len() >= MAX_REPORTED {
                more += 1;
                return None;
            }
            let d = judge(host, *port, egress)?;
            out.push(d);
            Some(out.len() - 1)
        });
        if let Some(i) = *slot {
            out[i].requests += 1;
        }
    }
    (out, more)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn egress(host: &str, port: Option<u16>) -> Egress {
        Egress {
            host: host.into(),
            port,
            block_private: true,
        }
    }

    const SANDBOX: &str = "169.254.1.2";

    #[test]
    fn connect_and_plain_requests_become_exact_capabilities() {
        let log = "\
1.000 169.254.1.2 TCP_DENIED/403 CONNECT registry.npmjs.org:443
1.100 169.254.1.2 TCP_DENIED/403 CONNECT registry.npmjs.org:443
1.200 169.254.1.2 TCP_TUNNEL/200 CONNECT api.github.com:443
1.300 169.254.1.2 TCP_DENIED/403 GET http://Example.COM/robots.txt
1.400 169.254.1.2 TCP_DENIED/403 GET http://example.com:8080/x?y
1.500 169.254.1.2 TCP_DENIED/403 CONNECT [2a00:1450::1]:443
1.600 169.254.1.2 TCP_DENIED/403 GET http://user:pw@evil.test:81/
";
        let (d, more) = denials(log, &[egress("api.github.com", Some(443))], Some(SANDBOX));
        assert_eq!(more, 0);
        let caps: Vec<_> = d
            .iter()
            .map(|d| (d.suggestion.clone().unwrap(), d.requests))
            .collect();
        assert_eq!(
            caps,
            [
                ("net:connect:registry.npmjs.org:443".to_owned(), 2),
                ("net:connect:example.com:80".to_owned(), 1),
                ("net:connect:example.com:8080".to_owned(), 1),
                ("net:connect:\"2a00:1450::1\":443".to_owned(), 1),
                ("net:connect:evil.test:81".to_owned(), 1),
            ]
        );
    }

    #[test]
    fn other_clients_are_not_the_sandbox() {
        let log = "\
1 169.254.1.2 TCP_DENIED/403 CONNECT mine.test:443
2 169.254.9.9 TCP_DENIED/403 CONNECT injected.test:443
3 127.0.0.1 TCP_DENIED/403 CONNECT injected2.test:443
";
        let (d, _) = denials(log, &[], Some(SANDBOX));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].destination, "mine.test:443");
    }

    #[test]
    fn declared_and_special_destinations_get_no_suggestion() {
        let log = "\
1 169.254.1.2 TCP_DENIED/403 CONNECT rebind.test:443
2 169.254.1.2 TCP_DENIED/403 CONNECT a.wild.test:443
3 169.254.1.2 TCP_DENIED/403 CONNECT wild.test:443
4 169.254.1.2 TCP_DENIED/403 GET http://169.254.169.254/latest
5 169.254.1.2 TCP_DENIED/403 GET http://127.0.0.1:7777/
6 169.254.1.2 TCP_DENIED/403 CONNECT [::1]:22
7 169.254.1.2 TCP_DENIED/403 GET http://169.254.1.1:9090/
";
        let (d, _) = denials(
            log,
            &[
                egress("rebind.test", Some(443)),
                egress("*.wild.test", None),
            ],
            Some(SANDBOX),
        );
        let got: Vec<(&str, Option<&str>)> = d
            .iter()
            .map(|d| (d.destination.as_str(), d.suggestion.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("rebind.test:443", None),
                ("a.wild.test:443", None),
                // `*.wild.test` does not cover wild.test itself.
                ("wild.test:443", Some("net:connect:wild.test:443")),
                ("169.254.169.254:80", None),
                ("127.0.0.1:7777", None),
                ("[::1]:22", None),
                ("169.254.1.1:9090", None),
            ]
        );
        assert!(d[0].line().contains("although declared"));
        assert!(d[3].line().contains("special-purpose address"));
        assert!(!d.iter().any(|d| d.line().contains("declare that address")));
    }

    #[test]
    fn garbage_is_never_suggested() {
        let log = "\
garbage
1 169.254.1.2 TCP_DENIED/403 CONNECT -
1 169.254.1.2 TCP_DENIED/403 CONNECT a.test:0
1 169.254.1.2 TCP_DENIED/403 CONNECT a.test:99999
1 169.254.1.2 TCP_DENIED/403 GET ftp://a.test/x
1 169.254.1.2 TCP_DENIED/403 CONNECT *.evil.test:443
1 169.254.1.2 TCP_DENIED/403 CONNECT a b:443
1 169.254.1.2 NONE_NONE/000 - error:transaction-end-before-headers
";
        assert_eq!(denials(log, &[], Some(SANDBOX)), (vec![], 0));
    }

    #[test]
    fn distinct_destinations_are_bounded_and_counted_in_linear_time() {
        let mut log = String::new();
        for i in 0..50_000u32 {
            log.push_str(&format!(
                "1 {SANDBOX} TCP_DENIED/403 CONNECT h{i}.flood.test:443\n"
            ));
        }
        let (d, more) = denials(&log, &[], Some(SANDBOX));
        assert_eq!(d.len(), MAX_REPORTED);
        assert_eq!(more, 50_000 - MAX_REPORTED);
    }
}
