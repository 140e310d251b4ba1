//! Denied requests as the capabilities that would allow them, read from the
//! run's squid access log (the squid target's `capgate` logformat:
//! `TIME RESULT/STATUS METHOD URL`).
//!
//! Only exact `net:connect:HOST:PORT` capabilities are suggested, never a
//! wildcard; a refused destination the manifest already declares (a name
//! that resolved to a special-purpose address) is reported as such, with no
//! suggestion, because declaring it again would not help.

use crate::artifact::Egress;

/// One distinct refused destination.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Denial {
    /// `host:port` as squid saw it (names lowercased, IPv6 in brackets).
    pub destination: String,
    /// The capability that would allow it; absent when the manifest already
    /// declares the destination and squid refused its address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
    /// How many requests were refused.
    pub requests: usize,
}

impl Denial {
    /// The stderr line for it.
    pub fn line(&self) -> String {
        match &self.suggestion {
            Some(cap) => format!(
                "denied {} ({} request{}): to allow it, declare {cap}",
                self.destination,
                self.requests,
                if self.requests == 1 { "" } else { "s" }
            ),
            None => format!(
                "denied {} ({} request{}) although declared: it resolved to a special-purpose (private, loopback, link-local, ...) address; declare that address as an IP literal if the server must reach it",
                self.destination,
                self.requests,
                if self.requests == 1 { "" } else { "s" }
            ),
        }
    }
}

/// `(host, port)` of a logged request URL: `host:port` for CONNECT,
/// `http://host[:port]/...` for a plain proxy request.
fn destination(method: &str, url: &str) -> Option<(String, u16)> {
    let authority = if method == "CONNECT" {
        url
    } else {
        let rest = url
            .strip_prefix("http://")
            .map(|r| (r, 80))
            .or_else(|| url.strip_prefix("https://").map(|r| (r, 443)))?;
        let end = rest.0.find(['/', '?', '#']).unwrap_or(rest.0.len());
        return split_authority(&rest.0[..end], Some(rest.1));
    };
    split_authority(authority, None)
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

/// Every distinct refused destination in `log`, in first-seen order.
pub fn denials(log: &str, egress: &[Egress]) -> Vec<Denial> {
    let mut out: Vec<Denial> = Vec::new();
    for line in log.lines() {
        let mut w = line.split_whitespace();
        let (Some(_time), Some(result), Some(method), Some(url)) =
            (w.next(), w.next(), w.next(), w.next())
        else {
            continue;
        };
        if !result.starts_with("TCP_DENIED/") {
            continue;
        }
        let Some((host, port)) = destination(method, url) else {
            continue;
        };
        let shown = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        if let Some(d) = out.iter_mut().find(|d| d.destination == shown) {
            d.requests += 1;
            continue;
        }
        let suggestion = if declared(&host, port, egress) {
            None
        } else {
            match capability(&host, port) {
                Some(cap) => Some(cap),
                // Not a destination a manifest can name: nothing to suggest.
                None => continue,
            }
        };
        out.push(Denial {
            destination: shown,
            suggestion,
            requests: 1,
        });
    }
    out
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

    #[test]
    fn connect_and_plain_requests_become_exact_capabilities() {
        let log = "\
1.000 TCP_DENIED/403 CONNECT registry.npmjs.org:443
1.100 TCP_DENIED/403 CONNECT registry.npmjs.org:443
1.200 TCP_TUNNEL/200 CONNECT api.github.com:443
1.300 TCP_DENIED/403 GET http://Example.COM/robots.txt
1.400 TCP_DENIED/403 GET http://example.com:8080/x?y
1.500 TCP_DENIED/403 CONNECT [2a00:1450::1]:443
1.600 TCP_DENIED/403 GET http://user:pw@evil.test:81/
";
        let d = denials(log, &[egress("api.github.com", Some(443))]);
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
    fn declared_destinations_are_reported_without_a_suggestion() {
        let log = "\
1 TCP_DENIED/403 CONNECT rebind.test:443
2 TCP_DENIED/403 CONNECT a.wild.test:443
3 TCP_DENIED/403 CONNECT wild.test:443
";
        let d = denials(
            log,
            &[
                egress("rebind.test", Some(443)),
                egress("*.wild.test", None),
            ],
        );
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].suggestion, None);
        assert_eq!(d[1].suggestion, None);
        // `*.wild.test` does not cover wild.test itself.
        assert_eq!(
            d[2].suggestion.as_deref(),
            Some("net:connect:wild.test:443")
        );
        assert!(d[0].line().contains("although declared"));
    }

    #[test]
    fn garbage_is_never_suggested() {
        let log = "\
garbage
1 TCP_DENIED/403 CONNECT -
1 TCP_DENIED/403 CONNECT a.test:0
1 TCP_DENIED/403 CONNECT a.test:99999
1 TCP_DENIED/403 GET ftp://a.test/x
1 TCP_DENIED/403 CONNECT *.evil.test:443
1 TCP_DENIED/403 CONNECT a b:443
1 NONE_NONE/000 - error:transaction-end-before-headers
";
        assert_eq!(denials(log, &[]), []);
    }
}
